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


def test_pairing_all_at_once_equals_pair_by_pair():
    """The vectorised pairing finds what Su's loop over subjects, objects and predicates finds, in that order."""
    import doctest

    import toolkit.relations.gplinker as gplinker

    rng = np.random.default_rng(3)
    for _ in range(20):
        predicates, seq = int(rng.integers(1, 6)), int(rng.integers(2, 12))
        heads, tails = rng.normal(size=(predicates, seq, seq)) - 0.5, rng.normal(size=(predicates, seq, seq)) - 0.5
        spans = list(dict.fromkeys((int(a), int(b)) for a, b in rng.integers(0, seq, size=(8, 2)) if a <= b))
        subjects, objects = spans[: len(spans) // 2 + 1], spans[len(spans) // 2 :] or spans[:1]
        expected = [
            (subject, obj, predicate)
            for subject in subjects
            for obj in objects
            for predicate in range(predicates)
            if heads[predicate, subject[0], obj[0]] > 0 and tails[predicate, subject[1], obj[1]] > 0
        ]
        assert gplinker._linked_pairs(heads, tails, subjects, objects) == expected
        # Past the limit, the highest head + tail scores are kept, still in that order.
        total = {t: heads[t[2], t[0][0], t[1][0]] + tails[t[2], t[0][1], t[1][1]] for t in expected}
        best = sorted(expected, key=lambda t: -total[t])[:3]
        assert gplinker._linked_pairs(heads, tails, subjects, objects, limit=3) == [t for t in expected if t in best]
    assert doctest.testmod(gplinker).failed == 0


def test_an_untrained_model_decodes_in_bounded_work(tmp_path):
    """Every span and link above 0 (an untrained model at its worst): at most 64 subjects, 64 objects and 256
    triples a sentence, the highest-scoring."""
    from toolkit.relations.gplinker import MAX_ENTITIES_PER_TEXT, MAX_TRIPLES_PER_TEXT, decode_gplinker_spans

    class Everything:
        pad_id, predicates = 0, ["p0", "p1", "p2"]

        def predict_on_batch(self, inputs):
            batch, seq = inputs["token_ids"].shape
            position = np.arange(seq, dtype="float32")
            ramp = 1.0 + position[:, None] + position[None, :] / seq  # higher scores further right, all > 0
            entities = np.broadcast_to(ramp, (batch, 2, seq, seq)).reshape(batch, 2, seq * seq)
            links = np.ones((batch, 3, seq * seq), dtype="float32")  # ties: the first in order are kept
            return {"entities": entities, "head_links": links, "tail_links": links}

    tokenizer = SimpleNamespace(
        encode_batch=lambda texts, maxlen: [
            SimpleNamespace(token_ids=[1] * 40, segment_ids=[0] * 40, text=text) for text in texts
        ],
        token_span_to_char_span=lambda encoding, start, end: (start, end + 1) if 0 < start <= end < 39 else None,
    )
    (found,) = decode_gplinker_spans(Everything(), tokenizer, ["x" * 60], maxlen=64)
    assert len(found) == MAX_TRIPLES_PER_TEXT
    subjects = {triple.subject_span for triple in found}
    # The 64 highest-scoring spans start at token 28 or later (the first 64 in order would start at 1).
    assert len(subjects) <= MAX_ENTITIES_PER_TEXT and min(span[0] for span in subjects) == 28


def test_the_loss_is_summed_over_heads_and_averaged_over_the_batch_as_su_s():
    """Su's GPLinker loss: mean over the batch of the sum over every head of the three matrices."""
    import keras

    from tests.test_relations import tiny_backbone
    from toolkit.losses import sparse_multilabel_categorical_crossentropy
    from toolkit.relations.gplinker import GPLinkerExtractor
    from toolkit.spans.targets import span_targets

    keras.utils.set_random_seed(0)
    predicates, batch, seq = ["p0", "p1", "p2"], 2, 6
    extractor = GPLinkerExtractor(tiny_backbone(50), predicates, head_size=8)
    extractor.compile(optimizer="sgd")
    token_ids = np.random.default_rng(0).integers(2, 50, size=(batch, seq)).astype("int32")
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids)}
    y = {
        "entities": span_targets([[(0, 1, 2), (1, 3, 3)], [(0, 2, 2)]], 2, seq),
        "head_links": span_targets([[(2, 1, 3)], [(0, 2, 4)]], 3, seq, ordered=False),
        "tail_links": span_targets([[(2, 2, 3)], []], 3, seq, ordered=False),
    }
    outputs = extractor.predict_on_batch(inputs)
    expected = sum(
        np.mean(
            np.sum(keras.ops.convert_to_numpy(sparse_multilabel_categorical_crossentropy(y[name], outputs[name])), -1)
        )
        for name in ("entities", "head_links", "tail_links")
    )
    loss = extractor.evaluate(inputs, y, batch_size=batch, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(float(expected), rel=1e-4)


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
