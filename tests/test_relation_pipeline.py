"""Pipeline 2 end to end on a tiny generated data set: train, evaluate, predict, reload."""

import json

import pytest

from tests.conftest import TINY_ENCODER, set_flags
from tests.test_classification_pipeline import run_cli
from toolkit.config import default_config
from toolkit.data import read_relations
from toolkit.data.synthetic import write_relation_demo

TINY = [
    *TINY_ENCODER,
    "model.maxlen=64",
    "training.epochs=2",
    "training.batch_size=16",
    "training.learning_rate=0.003",
    "training.early_stopping_patience=null",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from toolkit.relations.pipeline import RelationPipeline

    root = tmp_path_factory.mktemp("pipeline2")
    write_relation_demo(root / "data", n_train=160, n_dev=40, n_test=40, seed=2)
    config = default_config("relation_extraction", data_dir=root / "data", output_dir=root / "run", overrides=TINY)
    results = RelationPipeline(config, log=lambda message: None).train()
    return config, results, root / "run"


def test_run_folder_holds_every_output(tiny_run):
    _, _, run = tiny_run
    for name in (
        "config.yaml",
        "metrics.json",
        "report.txt",
        "history.csv",
        "predictions_dev.jsonl",
        "predictions_test.jsonl",
        "per_predicate_dev.json",
        "per_predicate_test.json",
    ):
        assert (run / name).is_file(), name
    for name in ("learning_curves.png", "per_predicate_f1_dev.png"):
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run / "best").iterdir()) == ["extractor.json", "model.keras", "tokenizer"]
    history = (run / "history.csv").read_text().splitlines()
    assert "val_micro_f1" in history[0] and len(history) == 3


def test_the_logged_values_are_what_the_config_schema_lets_training_monitor(tiny_run):
    from toolkit.config import RelationConfig

    _, _, run = tiny_run
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert set(header) - {"epoch"} == set(RelationConfig.logged_metrics)


def test_scores_are_computed_from_the_written_predictions(tiny_run):
    config, results, run = tiny_run
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("dev", "test"):
        predicted = read_relations(run / f"predictions_{split}.jsonl", layout="lic2019", schema=config.data.schema_path)
        gold = read_relations(getattr(config.data, split), layout="lic2019", schema=config.data.schema_path)
        assert predicted.texts == gold.texts
        correct = sum(len(set(p) & set(g)) for p, g in zip(predicted.triples, gold.triples))
        n_predicted = sum(len(set(p)) for p in predicted.triples)
        n_gold = sum(len(set(g)) for g in gold.triples)
        assert metrics[split]["num_correct"] == correct
        assert metrics[split]["num_predicted"] == n_predicted
        assert metrics[split]["num_gold"] == n_gold
        expected_f1 = 2 * correct / (n_predicted + n_gold) if n_predicted + n_gold else 0.0
        assert metrics[split]["f1"] == pytest.approx(expected_f1)


def test_reloaded_predictor_extracts_exact_slices_of_the_text(tiny_run):
    from toolkit.relations.pipeline import RelationPredictor

    config, _, run = tiny_run
    gold = read_relations(config.data.dev, layout="lic2019", schema=config.data.schema_path)
    predictor = RelationPredictor.load(run / "best")
    first = predictor.predict(gold.texts[:10])
    second = RelationPredictor.load(run / "best").predict(gold.texts[:10])
    assert first == second
    for text, triples in zip(gold.texts[:10], first):
        for subject, predicate, obj in triples:
            assert subject in text and obj in text and predicate in predictor.predicates


def test_predict_reads_a_long_text_whole_and_says_so(tiny_run, tmp_path):
    from toolkit.pipeline import Pipeline

    config, _, run = tiny_run
    gold = read_relations(config.data.dev, layout="lic2019", schema=config.data.schema_path)
    document = " ".join(gold.texts[:12])  # 12 sentences, past model.maxlen 64
    (tmp_path / "in.txt").write_text(gold.texts[0] + "\n" + document + "\n", encoding="utf-8")
    found = {}
    for long_texts in ("sentences", "windows", "truncate"):
        lines = []
        pipeline = Pipeline.from_run(run, log=lines.append)
        pipeline.predict_file(tmp_path / "in.txt", tmp_path / f"{long_texts}.jsonl", long_texts=long_texts)
        records = [json.loads(line) for line in (tmp_path / f"{long_texts}.jsonl").read_text().splitlines()]
        found[long_texts] = {(t["subject_span"][0], t["predicate"]) for t in records[1]["spo_list"]}
        assert lines[-1].startswith("1 of 2 texts were longer than model.maxlen (64 tokens)") or (
            long_texts == "truncate" and lines[-1].startswith("warning: 1 of 2 texts were longer")
        )
    sentence_one = len(gold.texts[0])
    assert all(start < sentence_one * 3 for start, _ in found["truncate"])  # only the start was read
    with pytest.raises(ValueError, match="long_texts must be one of"):
        Pipeline.from_run(run, log=lambda line: None).predict_file(
            tmp_path / "in.txt", tmp_path / "x", long_texts="all"
        )


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_cli_trains_and_predicts(tmp_path, backend):
    write_relation_demo(tmp_path / "data", n_train=80, n_dev=20, n_test=20, seed=4)
    config = default_config("relation_extraction", data_dir=tmp_path / "data", output_dir=tmp_path / "run")
    config.save(tmp_path / "config.yaml")
    overrides = set_flags(TINY)
    done = run_cli("train", str(tmp_path / "config.yaml"), *overrides, "--set", "training.epochs=1", backend=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "f1" in json.loads((tmp_path / "run" / "metrics.json").read_text())["dev"]
    (tmp_path / "in.txt").write_text("a sentence to read\n", encoding="utf-8")
    done = run_cli(
        "predict", str(tmp_path / "run"), str(tmp_path / "in.txt"), str(tmp_path / "out.jsonl"), backend=backend
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "out.jsonl").read_text())["text"] == "a sentence to read"
