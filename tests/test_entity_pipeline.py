"""task: entity_recognition: readers, targets, batched decoding, strict scores, and a tiny run end to end."""

import json
import re

import numpy as np
import pytest

from tests.conftest import TINY_ENCODER
from toolkit.config import default_config
from toolkit.data import DataError
from toolkit.data.entities import read_entities, read_entity_types
from toolkit.entities.pipeline import entity_scores
from toolkit.spans.targets import decode_spans, span_targets


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records):
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


NESTED = {
    "text": "Ada works at the Bank of London.",
    "entities": [
        {"start": 0, "end": 3, "type": "PER"},
        {"start": 17, "end": 31, "type": "ORG"},
        {"start": 25, "end": 31, "type": "LOC"},
    ],
}


def test_spans_layout_keeps_nested_entities(tmp_path):
    data = read_entities(write(tmp_path, "train.jsonl", jsonl(NESTED)))
    assert data.entities[0] == [(0, 3, "PER"), (17, 31, "ORG"), (25, 31, "LOC")]
    assert data.types == ["LOC", "ORG", "PER"] and data.type_counts()["ORG"] == 1


@pytest.mark.parametrize(
    "entity, message",
    [
        ({"start": 5, "end": 3, "type": "PER"}, "entity 0 in 'entities': start and end must be character offsets"),
        ({"start": 0, "end": 99, "type": "PER"}, "0 <= start < end <= 32 (the text's length; end exclusive)"),
        ({"start": 0, "end": 3}, "entity 0 in 'entities' has no 'type' key"),
        ({"Start": 0, "end": 3, "type": "PER"}, "entity 0 in 'entities' has no 'start' key; did you mean 'Start'?"),
    ],
)
def test_bad_entities_name_file_and_line(tmp_path, entity, message):
    path = write(tmp_path, "bad.jsonl", jsonl(NESTED, dict(NESTED, entities=[entity])))
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        read_entities(path)


def test_types_file_and_an_unknown_type(tmp_path):
    types = write(tmp_path, "types.txt", "PER\nORG\n")
    path = write(tmp_path, "train.jsonl", jsonl(NESTED))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: entity type 'LOC' is not in the types {types}")):
        read_entities(path, types=types)
    spert_types = write(
        tmp_path, "t.json", json.dumps({"entities": {"Peop": {}, "Loc": {}}, "relations": {"Kill": {}}})
    )
    assert read_entity_types(spert_types) == ["Peop", "Loc"]


def test_spert_and_relation_layouts(tmp_path):
    record = {
        "tokens": ["John", "met", "Mary", "in", "Rome"],
        "tags": ["U-PER", "O", "U-PER", "O", "U-LOC"],
        "relations": [],
    }
    data = read_entities(write(tmp_path, "t.json", json.dumps([record])), layout="spert")
    assert data.texts == ["John met Mary in Rome"] and data.entities[0] == [
        (0, 4, "PER"),
        (9, 13, "PER"),
        (17, 21, "LOC"),
    ]
    lic = {
        "text": "周杰伦的父亲是周耀中，周杰伦出生于台湾",
        "spo_list": [
            {
                "subject": "周杰伦",
                "predicate": "父亲",
                "object": "周耀中",
                "subject_type": "人物",
                "object_type": "人物",
            },
            {"subject": "周杰伦", "predicate": "出生地", "object": "台湾", "subject_type": "人物"},
        ],
    }
    data = read_entities(write(tmp_path, "lic.json", jsonl(lic)), layout="lic2019")
    # Every occurrence of a typed entity; the untyped object is left out and counted.
    assert data.entities[0] == [(0, 3, "人物"), (7, 10, "人物"), (11, 14, "人物")]
    assert data.report.warnings == {"entity without a type": 1}


def test_targets_and_batched_decoding_agree():
    spans = [[(0, 1, 1), (1, 0, 2), (0, 2, 2)], [(1, 3, 3)]]  # nested: (0..2) holds (1..1) and (2..2)
    targets = span_targets(spans, heads=2, seq_len=4)
    scores = np.full((2, 2, 16), -5.0, dtype="float32")
    for row in range(2):
        for head in range(2):
            for index in targets[row, head]:
                if index >= 0:
                    scores[row, head, index] = 3.0
    assert decode_spans(scores) == [sorted(spans[0]), spans[1]]
    # Spans ending in the padding, or with start > end, never come back.
    scores[0, 0, 3 * 4 + 3] = 1.0
    scores[0, 0, 2 * 4 + 1] = 1.0
    assert decode_spans(scores, lengths=[3, 4])[0] == sorted(spans[0])
    with pytest.raises(ValueError, match=r"span \(0, 2, 1\) of row 0 is outside"):
        span_targets([[(0, 2, 1)]], heads=1, seq_len=4)


def test_strict_scores_need_span_and_type():
    gold = [[(0, 3, "PER"), (17, 31, "ORG"), (25, 31, "LOC")]]
    predicted = [[(0, 3, "PER"), (17, 31, "LOC"), (25, 30, "LOC")]]
    scores = entity_scores(predicted, gold, types=["LOC", "ORG", "PER"])
    assert (scores["micro"]["num_correct"], scores["micro"]["num_predicted"], scores["micro"]["num_gold"]) == (1, 3, 3)
    assert scores["per_type"]["PER"]["f1"] == 1.0 and scores["per_type"]["ORG"]["recall"] == 0.0


def test_gold_entities_cut_by_maxlen_are_counted(tmp_path):
    from toolkit.encoders.tokenizer import WordPieceTokenizer
    from toolkit.entities.feed import encode_entities

    vocab = write(
        tmp_path,
        "vocab.txt",
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "ada", "works", "at", "the", "bank", "of", "london", "."])
        + "\n",
    )
    data = read_entities(write(tmp_path, "t.jsonl", jsonl(NESTED)))
    encoded, report = encode_entities(data.texts, data.entities, WordPieceTokenizer(vocab), data.types, maxlen=6)
    assert report.summary() == "kept 1 of 3 entities; left out 2 beyond maxlen"
    assert encoded[0].spans == [(2, 1, 1)]  # PER on token 1 ("ada"), after [CLS]
    encoded, report = encode_entities(data.texts, data.entities, WordPieceTokenizer(vocab), data.types, maxlen=16)
    assert encoded[0].spans == [(0, 7, 7), (1, 5, 7), (2, 1, 1)] and report.num_kept == 3


TINY = [
    *TINY_ENCODER,
    "model.maxlen=48",
    "model.head_size=16",
    "training.epochs=3",
    "training.batch_size=16",
    "training.learning_rate=0.003",
    "training.early_stopping_patience=null",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from toolkit.data.synthetic import write_entity_demo
    from toolkit.entities.pipeline import EntityPipeline

    root = tmp_path_factory.mktemp("entities")
    write_entity_demo(root / "data", n_train=160, n_dev=40, n_test=40, seed=2)
    config = default_config("entity_recognition", data_dir=root / "data", output_dir=root / "run", overrides=TINY)
    logged = []
    results = EntityPipeline(config, log=logged.append).train()
    return config, results, root / "run", logged


def test_a_tiny_run_writes_every_output(tiny_run):
    from toolkit.config import EntityConfig

    _, results, run, logged = tiny_run
    for name in (
        "config.yaml",
        "metrics.json",
        "report.txt",
        "history.csv",
        "predictions_dev.jsonl",
        "per_type_dev.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "plots" / "per_type_f1_dev.png").read_bytes()[:4] == b"\x89PNG"
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert set(header) - {"epoch"} == set(EntityConfig.logged_metrics)
    assert any(line.startswith("types: 4 from ") for line in logged)
    assert any("lie inside another (nested entities are kept)" in line for line in logged)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dev"]["num_gold"] == sum(
        len(json.loads(line)["entities_gold"]) for line in (run / "predictions_dev.jsonl").open()
    )
    assert 0.0 <= results["dev"]["f1"] <= 1.0


def test_the_saved_predictor_returns_slices_of_the_text_and_predicts_files(tiny_run, tmp_path):
    from toolkit.entities.pipeline import EntityPipeline, EntityPredictor

    config, _, run, _ = tiny_run
    predictor = EntityPredictor.load(run / "best")
    texts = ["Loden Hulinar works for Rakka Labs, a company based in Quinel.", "x"]
    for text, found in zip(texts, predictor.predict(texts)):
        for entity in found:
            assert text[entity["start"] : entity["end"]] == entity["text"] and entity["type"] in predictor.types
    source = write(tmp_path, "texts.txt", texts[0] + "\n\n" + texts[1] + "\n")
    pipeline = EntityPipeline.from_run(run, log=lambda message: None)
    assert pipeline.predict_file(source, tmp_path / "out.jsonl") == 3
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == [texts[0], "", texts[1]] and lines[1]["entities"] == []


def test_the_cli_knows_the_demo():
    from toolkit.tasks import get_task

    assert get_task("entities").name == "entity_recognition"
