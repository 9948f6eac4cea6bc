"""GPLinker (`model.method: gplinker`): its targets, Su's pairing rule, its config rules, a tiny run."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from toolkit.config import ConfigError, default_config


def test_links_of_a_sentence():
    from toolkit.relations.gplinker import _links

    target = SimpleNamespace(objects={(1, 2): [(0, 5, 5), (1, 7, 8)], (5, 5): [(1, 1, 2)]})
    entities, heads, tails = _links(target)
    assert entities == [(0, 1, 2), (0, 5, 5), (1, 1, 2), (1, 5, 5), (1, 7, 8)]
    assert heads == [(0, 1, 5), (1, 1, 7), (1, 5, 1)]  # (predicate, subject start, object start): either order
    assert tails == [(0, 2, 5), (1, 2, 8), (1, 5, 2)]


class _Encoding:
    def __init__(self, text, offsets):
        self.text, self.offsets = text, offsets
        self.token_ids = list(range(len(offsets)))
        self.segment_ids = [0] * len(offsets)


class _Tokenizer:
    def __init__(self, encodings):
        self.encodings = encodings

    def encode_batch(self, texts, maxlen=None):
        return [self.encodings[text] for text in texts]

    def token_span_to_char_span(self, encoding, start, end):
        if start == 0 or end == len(encoding.offsets) - 1:
            return None  # [CLS] / [SEP]
        return encoding.offsets[start][0], encoding.offsets[end][1]


def test_a_triple_needs_both_its_head_and_its_tail_link():
    """Su's rule, on hand-made scores: entities (0: subjects, 1: objects), then both links per predicate."""
    from toolkit.relations.gplinker import decode_gplinker_spans

    text = "Ann met Bo in Rome"
    # [CLS] Ann met Bo in Rome [SEP]
    offsets = [(0, 0), (0, 3), (4, 7), (8, 10), (11, 13), (14, 18), (0, 0)]
    seq = 8  # padded to a multiple of 8

    def scores(heads, marked):
        array = np.full((1, heads, seq, seq), -5.0, dtype="float32")
        for head, row, column in marked:
            array[0, head, row, column] = 2.0
        return array.reshape(1, heads, seq * seq)

    outputs = {
        "entities": scores(2, [(0, 1, 1), (0, 3, 3), (1, 5, 5), (1, 3, 3)]),
        # met_in (0): Ann -> Rome by both links; Bo -> Rome by its head link only.
        "head_links": scores(2, [(0, 1, 5), (0, 3, 5), (1, 1, 3)]),
        "tail_links": scores(2, [(0, 1, 5), (1, 1, 3)]),
    }
    extractor = SimpleNamespace(pad_id=0, predicates=["lives_in", "met"], predict_on_batch=lambda inputs: outputs)
    found = decode_gplinker_spans(extractor, _Tokenizer({text: _Encoding(text, offsets)}), [text])
    assert sorted(tuple(triple[:3]) for triple in found[0]) == [("Ann", "lives_in", "Rome"), ("Ann", "met", "Bo")]
    rome = next(triple for triple in found[0] if triple.object == "Rome")
    assert rome.subject_span == (0, 3) and rome.object_span == (14, 18)


def test_config_rules_of_the_method(tmp_path):
    config = default_config("relation_extraction", tmp_path, overrides=["model.method=gplinker", "model.head_size=32"])
    assert (config.model.method, config.model.head, config.model.head_size) == (
        "gplinker",
        "efficient_global_pointer",
        32,
    )
    with pytest.raises(
        ConfigError, match=r"model\.head_size: only used with method 'gplinker' \(method is 'semi_pointer'\)"
    ):
        default_config("relation_extraction", tmp_path, overrides=["model.head_size=32"])
    with pytest.raises(
        ConfigError, match=r"training\.monitor: 'subject_micro_f1' is logged by method 'semi_pointer' only"
    ):
        default_config(
            "relation_extraction", tmp_path, overrides=["model.method=gplinker", "training.monitor=subject_micro_f1"]
        )


def test_a_tiny_gplinker_run_learns_saves_and_predicts(tmp_path):
    from tests.test_relation_layouts import _spert_records, _tiny_config
    from toolkit.relations.pipeline import RelationPipeline, RelationPredictor

    train, dev = _spert_records(96, 0), _spert_records(24, 1)
    config = _tiny_config(tmp_path, "spert", train, dev, (" ".join(r["tokens"]) for r in train))
    config = type(config).from_dict(
        {**config.to_dict(), "model": {**config.to_dict()["model"], "method": "gplinker", "head_size": 16}}
    )
    results = RelationPipeline(config, log=lambda message: None).train()
    assert results["dev"]["f1"] > 0.5, results["dev"]
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "val_micro_f1", "val_precision", "val_recall"} <= set(header)
    predictor = RelationPredictor.load(tmp_path / "run" / "best")
    assert predictor.method == "gplinker"
    text = " ".join(dev[0]["tokens"])
    for record in predictor.extract([text])[0]:
        start, end = record["subject_span"]
        assert text[start:end] == record["subject"] and record["subject_type"] in ("Peop", "Org")
    assert json.loads((tmp_path / "run" / "best" / "extractor.json").read_text())["method"] == "gplinker"
