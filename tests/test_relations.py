"""Relation extraction (semi-pointer semi-tagging): targets, feed, model, decoder, evaluation."""

import json
import os
import random
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from toolkit.encoders.tokenizer import WordPieceTokenizer
from toolkit.relations import (
    TargetError,
    build_targets,
    decode_per_sentence_bert4keras_style,
    decode_relations,
    evaluate_triples,
    find_spans,
    per_predicate_scores,
    triple_scores,
    write_predictions_jsonl,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

not_jax = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="the metrics layer (loss_in='layer') does not run on JAX"
)


# --- A tiny Chinese relation task, learnable in seconds --------------------------------------

SURNAMES = "王李张刘陈杨黄赵"
GIVEN_NAMES = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"
PLACES = "京沪津渝宁杭苏汉"
PREDICATES = ["父亲", "妻子", "出生地"]


def family_sentences(count, seed):
    """Sentences like `张军的妻子是李涛明，张军的父亲是黄敏。` with their triples."""
    rng = random.Random(seed)

    def name():
        return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN_NAMES) for _ in range(rng.randint(1, 2)))

    sentences = []
    for _ in range(count):
        first, second, third = name(), name(), name()
        place = rng.choice(PLACES) + rng.choice(PLACES) + "市"
        kind = rng.randrange(3)
        if kind == 0:
            sentences.append((f"{first}的父亲是{second}。", [(first, "父亲", second)]))
        elif kind == 1:
            sentences.append(
                (
                    f"{first}的妻子是{second}，{first}的父亲是{third}。",
                    [(first, "妻子", second), (first, "父亲", third)],
                )
            )
        else:
            sentences.append(
                (f"{second}出生于{place}，父亲是{first}。", [(second, "出生地", place), (second, "父亲", first)])
            )
    return sentences


@pytest.fixture(scope="module")
def chinese_tokenizer():
    characters = sorted(set(SURNAMES + GIVEN_NAMES + PLACES + "市的父亲是妻子出生于，。周杰伦耀中昆凌朋友昵称"))
    return WordPieceTokenizer(SPECIALS + characters, lowercase=False)


@pytest.fixture(scope="module")
def english_tokenizer():
    words = [
        "alan",
        "bean",
        "beans",
        ",",
        "who",
        "was",
        "born",
        "in",
        "wheeler",
        "texas",
        ".",
        "aranguiz",
        "charles",
        "(",
        ")",
        "-",
        "s",
        "'",
        "went",
        "home",
        "the",
    ]
    return WordPieceTokenizer(SPECIALS + words, lowercase=True)


def tiny_backbone(vocabulary_size, hidden_dim=32):
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=1,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        max_sequence_length=48,
        dropout=0.0,
    )


# --- Span finder on hand-built logits --------------------------------------------------------


def logits_at(length, positions, value=5.0):
    logits = np.full(length, -5.0)
    logits[list(positions)] = value
    return logits


def test_find_spans_pairs_each_start_with_the_nearest_end_at_or_after_it():
    # Two separate spans, and a one-token span (start == end).
    assert find_spans(logits_at(10, [1, 5, 8]), logits_at(10, [2, 6, 8])) == [(1, 2), (5, 6), (8, 8)]
    # Nested: two starts closed by the same end.
    assert find_spans(logits_at(8, [1, 2]), logits_at(8, [4])) == [(1, 4), (2, 4)]
    # Overlapping: the second start lies inside the first span; both take the nearest end.
    assert find_spans(logits_at(8, [1, 3]), logits_at(8, [4, 6])) == [(1, 4), (3, 4)]
    # A start with no end at or after it gives nothing; an end before any start is ignored.
    assert find_spans(logits_at(8, [5]), logits_at(8, [2])) == []
    assert find_spans(logits_at(8, [1, 6]), logits_at(8, [3])) == [(1, 3)]


def test_find_spans_respects_valid_length_threshold_and_padding():
    # The end lies past the valid length (truncated text or padding): no span.
    assert find_spans(logits_at(10, [2]), logits_at(10, [7]), valid_length=6) == []
    assert find_spans(logits_at(10, [2]), logits_at(10, [7]), valid_length=8) == [(2, 7)]
    # Exactly 0 is not > 0; -inf (padding) never counts.
    start = np.array([0.0, 1.0, -np.inf, -np.inf])
    end = np.array([1.0, 0.0, -np.inf, -np.inf])
    assert find_spans(start, end) == []
    assert find_spans(start, end, threshold=-0.5) == [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match="same length"):
        find_spans(np.zeros(3), np.zeros(4))


# --- Targets ---------------------------------------------------------------------------------


def test_targets_shared_subject_overlapping_and_self_relation(chinese_tokenizer):
    text = "周杰伦的父亲是周耀中，妻子是昆凌"
    triples = [
        ("周杰伦", "父亲", "周耀中"),
        ("周杰伦", "妻子", "昆凌"),  # shares the subject
        ("杰伦", "父亲", "周耀中"),  # overlaps 周杰伦 (nested inside it)
        ("周杰伦", "妻子", "周杰伦"),  # the same entity as subject and object
        ("周杰伦", "父亲", "周耀中"),  # duplicate: counted once
    ]
    targets, report = build_targets([text], [triples], chinese_tokenizer, PREDICATES, maxlen=32)
    item = targets[0]
    assert report.num_triples == 4 and report.num_kept == 4 and not report.dropped
    assert item.subject_spans == [(1, 3), (2, 3)]
    assert item.objects[(1, 3)] == [(0, 8, 10), (1, 1, 3), (1, 15, 16)]
    assert item.objects[(2, 3)] == [(0, 8, 10)]
    assert sorted(item.triples(PREDICATES)) == sorted(set(triples))

    subject_labels = item.subject_labels()
    assert subject_labels.shape == (2, len(item)) and subject_labels.dtype == np.float32
    assert np.flatnonzero(subject_labels[0]).tolist() == [1, 2]
    assert np.flatnonzero(subject_labels[1]).tolist() == [3]  # both subjects end at 伦
    object_labels = item.object_labels((1, 3), seq_len=20)
    assert object_labels.shape == (len(PREDICATES), 2, 20)
    assert np.flatnonzero(object_labels[0, 0]).tolist() == [8] and np.flatnonzero(object_labels[0, 1]).tolist() == [10]
    assert np.flatnonzero(object_labels[1, 0]).tolist() == [1, 15]
    assert np.flatnonzero(object_labels[1, 1]).tolist() == [3, 16]
    assert not object_labels[2].any()


def test_targets_missing_entities_are_counted_or_raised(chinese_tokenizer):
    texts = ["周杰伦的父亲是周耀中", "昆凌的父亲是王伟"]
    triples = [
        [("周杰伦", "父亲", "周耀中"), ("周杰伦", "妻子", "昆凌"), ("王伟", "父亲", "周杰伦")],
        [("昆凌", "朋友", "王伟")],
    ]
    targets, report = build_targets(texts, triples, chinese_tokenizer, PREDICATES, maxlen=32)
    assert report.num_triples == 4 and report.num_kept == 1
    assert report.dropped == {"object not in text": 1, "subject not in text": 1, "unknown predicate": 1}
    assert "kept 1 of 4 triples" in report.summary()
    assert json.loads(json.dumps(report.as_dict()))["num_dropped"] == 3
    assert targets[1].subject_spans == []  # every triple of the text dropped: the text stays, with no subject

    with pytest.raises(TargetError, match="object not in text") as raised:
        build_targets(texts, triples, chinese_tokenizer, PREDICATES, maxlen=32, on_missing="error")
    assert raised.value.index == 0


def test_targets_beyond_maxlen(chinese_tokenizer):
    text = "周杰伦的父亲是周耀中，妻子是昆凌"
    triples = [("周杰伦", "父亲", "周耀中"), ("周杰伦", "妻子", "昆凌")]
    # 12 tokens: [CLS] + 10 characters + [SEP]; 昆凌 (characters 14-15) is cut off, 周耀中 (7-9) kept.
    targets, report = build_targets([text], [triples], chinese_tokenizer, PREDICATES, maxlen=12)
    assert len(targets[0]) == 12
    assert report.dropped == {"object beyond maxlen": 1}
    assert targets[0].triples(PREDICATES) == [("周杰伦", "父亲", "周耀中")]
    # Cut through the object 周耀中 itself.
    _, report = build_targets([text], [triples[:1]], chinese_tokenizer, PREDICATES, maxlen=10)
    assert report.dropped == {"object beyond maxlen": 1}


def test_targets_use_the_first_token_aligned_occurrence(english_tokenizer):
    # "Bean" occurs first inside the token "beans"; the first aligned occurrence is the second.
    text = "Beans went home , Alan Bean was born in Wheeler , Texas ."
    triples = [("Bean", "birthPlace", "Wheeler , Texas"), ("Texas", "birthPlace", "Texas")]
    targets, report = build_targets([text], [triples], english_tokenizer, ["birthPlace"], maxlen=40)
    assert not report.dropped and not report.warnings
    assert sorted(targets[0].triples(["birthPlace"])) == sorted(triples)
    start, end = targets[0].subject_spans[0]
    assert text[targets[0].encoding.offsets[start][0] : targets[0].encoding.offsets[end][1]] == "Bean"
    # Found only inside a longer token: kept, widened to that token, and noted.
    targets, report = build_targets(
        ["Beans went home ."], [[("Bean", "birthPlace", "home")]], english_tokenizer, ["birthPlace"], maxlen=40
    )
    assert report.warnings == {"not on token boundaries": 1} and report.num_kept == 1
    assert targets[0].subject_spans == [(1, 1)]


# --- Decoding on hand-built logits: spans back to the exact text ---------------------------


class _Scripted:
    """Stands in for a Keras model: `predict_on_batch` calls a function."""

    def __init__(self, function):
        self.predict_on_batch = function


def scripted_extractor(targets_by_tokens, predicates, pad_id=0):
    """A fake extractor whose logits are +5 exactly at the gold spans of `targets_by_tokens`.

    The "sequence output" carries the token ids, so the object head can tell
    which sentence a repeated row belongs to.
    """

    def mask(token_ids, logits):
        keep = token_ids != pad_id
        while keep.ndim < logits.ndim:
            keep = keep[:, None]
        return np.where(np.broadcast_to(keep, logits.shape), logits, -np.inf)

    def sentence(row):
        return targets_by_tokens[tuple(int(t) for t in row if t != pad_id)]

    def subjects(inputs):
        token_ids = inputs["token_ids"]
        logits = np.full((len(token_ids), 2, token_ids.shape[1]), -5.0, dtype="float32")
        for row, ids in enumerate(token_ids):
            logits[row] += 10.0 * sentence(ids).subject_labels(token_ids.shape[1])
        return {"subject_logits": mask(token_ids, logits), "sequence_output": token_ids[..., None].astype("float32")}

    def objects_from_tokens(token_ids, spans):
        logits = np.full((len(token_ids), len(predicates), 2, token_ids.shape[1]), -5.0, dtype="float32")
        for row, (ids, span) in enumerate(zip(token_ids, spans)):
            logits[row] += 10.0 * sentence(ids).object_labels(tuple(int(s) for s in span), token_ids.shape[1])
        return mask(token_ids, logits)

    class Extractor:
        pass

    extractor = Extractor()
    extractor.predicates = list(predicates)
    extractor.pad_id = pad_id
    extractor.subject_model = _Scripted(subjects)
    extractor.object_model = _Scripted(
        lambda inputs: objects_from_tokens(inputs["sequence_output"][..., 0].astype("int32"), inputs["subject_span"])
    )
    extractor.encoder_object_model = _Scripted(
        lambda inputs: objects_from_tokens(inputs["token_ids"], inputs["subject_span"])
    )
    return extractor


def check_decoders_recover(tokenizer, texts, triples, predicates, maxlen, expected=None):
    targets, _ = build_targets(texts, triples, tokenizer, predicates, maxlen=maxlen)
    extractor = scripted_extractor({tuple(item.token_ids.tolist()): item for item in targets}, predicates)
    expected = expected if expected is not None else triples
    for decode in (decode_relations, decode_per_sentence_bert4keras_style):
        kwargs = {"batch_size": 2} if decode is decode_relations else {}
        decoded = decode(extractor, tokenizer, texts, maxlen=maxlen, **kwargs)
        assert [sorted(found) for found in decoded] == [sorted(set(map(tuple, gold))) for gold in expected]


def test_decoders_map_spans_back_to_chinese_text(chinese_tokenizer):
    texts = ["周杰伦的父亲是周耀中，妻子是昆凌", "王伟出生于京沪市，父亲是李强。", "张军的父亲是黄敏。"]
    triples = [
        [
            ("周杰伦", "父亲", "周耀中"),
            ("周杰伦", "妻子", "昆凌"),
            ("杰伦", "父亲", "周耀中"),
            ("周杰伦", "妻子", "周杰伦"),
        ],
        [("王伟", "出生地", "京沪市"), ("王伟", "父亲", "李强")],
        [],
    ]
    check_decoders_recover(chinese_tokenizer, texts, triples, PREDICATES, maxlen=32)
    # Truncated: 昆凌 is past maxlen=12, so it can be neither a target nor decoded.
    check_decoders_recover(
        chinese_tokenizer,
        texts[:1],
        [triples[0]],
        PREDICATES,
        maxlen=12,
        expected=[[t for t in triples[0] if t[2] != "昆凌"]],
    )


def test_decoders_map_spans_back_to_english_text_with_spaces_punctuation_and_accents(english_tokenizer):
    texts = [
        "Alan Bean, who was born in Wheeler,  Texas.",
        "Charles Aránguiz (born in Texas) went home.",
    ]
    triples = [
        [("Alan Bean", "birthPlace", "Wheeler,  Texas"), ("Bean", "birthPlace", "Texas")],
        [("Charles Aránguiz", "birthPlace", "Texas"), ("Aránguiz", "birthPlace", "(born in Texas)")],
    ]
    check_decoders_recover(english_tokenizer, texts, triples, ["birthPlace"], maxlen=32)


# --- Evaluation ------------------------------------------------------------------------------


def test_triple_scores_and_per_predicate_numbers():
    gold = [
        [("a", "p", "b"), ("a", "q", "c")],
        [("x", "p", "y")],
        [],
    ]
    predicted = [
        [("a", "p", "b"), ("a", "p", "b"), ("a", "q", "d")],  # repeat counts once; wrong object
        [("x", "p", "y"), ("y", "p", "x")],
        [("z", "q", "z")],
    ]
    scores = triple_scores(predicted, gold)
    assert (scores["num_correct"], scores["num_predicted"], scores["num_gold"]) == (2, 5, 3)
    assert scores["precision"] == pytest.approx(0.4) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 2 / 8)

    per_predicate = per_predicate_scores(predicted, gold, predicates=["p", "q", "r"])
    assert list(per_predicate) == ["p", "q", "r"]
    assert per_predicate["p"]["precision"] == pytest.approx(2 / 3) and per_predicate["p"]["recall"] == 1.0
    assert per_predicate["q"]["f1"] == 0.0 and per_predicate["q"]["num_gold"] == 1
    assert per_predicate["r"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "num_correct": 0,
        "num_predicted": 0,
        "num_gold": 0,
    }
    report = evaluate_triples(predicted, gold)
    assert json.loads(json.dumps(report))["micro"]["f1"] == pytest.approx(0.5)
    assert triple_scores([[]], [[]], zero_division=1.0)["f1"] == 1.0
    with pytest.raises(ValueError, match="one entry per sentence"):
        triple_scores([[]], [[], []])


def test_predictions_are_written_in_the_lic2019_layout(tmp_path):
    from toolkit.data.relations import read_relations

    texts = ["周杰伦的父亲是周耀中", "no triple here"]
    predicted = [[("周杰伦", "父亲", "周耀中")], []]
    path = tmp_path / "out" / "dev_pred.json"
    write_predictions_jsonl(path, texts, predicted, references=[[("周杰伦", "父亲", "周耀中")], []])
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "text": "周杰伦的父亲是周耀中",
        "spo_list": [{"subject": "周杰伦", "predicate": "父亲", "object": "周耀中"}],
        "spo_list_gold": [{"subject": "周杰伦", "predicate": "父亲", "object": "周耀中"}],
    }
    data = read_relations(path, layout="lic2019")
    assert data.texts == texts and data.triples == [[("周杰伦", "父亲", "周耀中")], []]


# --- Data feed -------------------------------------------------------------------------------


def test_feed_samples_one_subject_per_sentence_reproducibly(chinese_tokenizer):
    from toolkit.relations import RelationDataFeed

    sentences = family_sentences(40, seed=3) + [("王伟的朋友是李强。", [])]
    texts, triples = zip(*sentences)
    # Give every sentence two subjects, so the draw has a choice.
    triples = [list(found) + [(found[0][2], "父亲", found[0][0])] if found else [] for found in triples]
    targets, _ = build_targets(list(texts), triples, chinese_tokenizer, PREDICATES, maxlen=32)
    feed = RelationDataFeed(targets, batch_size=8, seed=7)
    assert len(feed.targets) == 40 and len(feed) == 5  # the sentence with no triple is skipped
    batch = feed[0]
    seq_len = max(len(feed.targets[i]) for i in feed._batches[0])
    assert batch["token_ids"].shape == (8, seq_len) and batch["token_ids"].dtype == np.int32
    assert batch["subject_span"].shape == (8, 2)
    assert batch["subject_labels"].shape == (8, 2, seq_len)
    assert batch["object_labels"].shape == (8, len(PREDICATES), 2, seq_len)
    for row, sentence in enumerate(feed._batches[0]):
        item = feed.targets[sentence]
        span = tuple(batch["subject_span"][row])
        assert span in item.subject_spans
        np.testing.assert_array_equal(batch["object_labels"][row], item.object_labels(span, seq_len))
        assert not batch["token_ids"][row, len(item) :].any()

    again = RelationDataFeed(targets, batch_size=8, seed=7)
    np.testing.assert_array_equal(again[0]["subject_span"], batch["subject_span"])
    first_epoch = [feed.sample_subjects(i) for i in range(len(feed))]
    feed.on_epoch_end()
    second_epoch = [feed.sample_subjects(i) for i in range(len(feed))]
    assert first_epoch != second_epoch  # re-sampled (and reshuffled) every epoch

    x, y = RelationDataFeed(targets, batch_size=8, targets_as="y")[0]
    assert set(x) == {"token_ids", "segment_ids", "subject_span"}
    assert set(y) == {"subject_logits", "object_logits"}
    grouped = RelationDataFeed(targets, batch_size=8, group_by_length=True, length_multiple=4)
    padded = [grouped[i]["token_ids"].size for i in range(len(grouped))]
    assert all(grouped[i]["token_ids"].shape[1] % 4 == 0 for i in range(len(grouped)))
    plain = RelationDataFeed(targets, batch_size=8, length_multiple=4)
    assert sum(padded) <= sum(plain[i]["token_ids"].size for i in range(len(plain)))
    with pytest.raises(ValueError, match="No training sentence"):
        RelationDataFeed(targets[-1:], batch_size=8)


# --- Model: training, decoding, saving -------------------------------------------------------


@pytest.fixture(scope="module")
def trained(chinese_tokenizer):
    """A one-layer extractor trained a few epochs on the family sentences (TF / torch)."""
    from toolkit.relations import RelationDataFeed, RelationExtractor

    keras.utils.set_random_seed(0)
    train = family_sentences(400, seed=0)
    targets, report = build_targets(
        [text for text, _ in train], [found for _, found in train], chinese_tokenizer, PREDICATES, maxlen=32
    )
    assert report.num_kept == report.num_triples
    extractor = RelationExtractor(tiny_backbone(chinese_tokenizer.vocabulary_size), PREDICATES)
    extractor.compile(keras.optimizers.Adam(3e-3))
    feed = RelationDataFeed(targets, batch_size=16, seed=0, length_multiple=8)
    history = extractor.fit(feed, epochs=5, verbose=0)
    return extractor, history.history


@not_jax
def test_training_model_learns_and_decoders_agree(trained, chinese_tokenizer):
    extractor, history = trained
    assert {"loss", "subject_micro_f1", "object_micro_f1"} <= set(history)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    dev = family_sentences(40, seed=1)
    texts, gold = [text for text, _ in dev], [found for _, found in dev]
    predicted = decode_relations(extractor, chinese_tokenizer, texts, maxlen=32, batch_size=16)
    assert triple_scores(predicted, gold)["f1"] > 0.6  # chance is about 0
    reference = decode_per_sentence_bert4keras_style(extractor, chinese_tokenizer, texts, maxlen=32)
    assert [sorted(found) for found in predicted] == [sorted(found) for found in reference]
    for found, text in zip(predicted, texts):
        assert all(subject in text and object_ in text for subject, _, object_ in found)


@not_jax
def test_saved_model_reloads_with_the_same_outputs(trained, chinese_tokenizer, tmp_path):
    from toolkit.relations import RelationExtractor

    extractor, _ = trained
    path = tmp_path / "relation.keras"
    extractor.save(path)
    loaded = RelationExtractor.load(path)
    assert loaded.predicates == PREDICATES and loaded.loss_in == "layer"
    encodings = chinese_tokenizer.encode_batch([text for text, _ in family_sentences(4, seed=2)], maxlen=32)
    inputs = chinese_tokenizer.to_model_inputs(encodings)
    spans = np.array([[1, 2]] * len(encodings), dtype="int32")
    for model_name, model_inputs in [
        ("subject_model", {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"]}),
        (
            "encoder_object_model",
            {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"], "subject_span": spans},
        ),
    ]:
        before = keras.tree.map_structure(keras.ops.convert_to_numpy, getattr(extractor, model_name)(model_inputs))
        after = keras.tree.map_structure(keras.ops.convert_to_numpy, getattr(loaded, model_name)(model_inputs))
        keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), before, after)
    # The object head alone, on the encoder's output, gives what the re-encoding model gives.
    encoder_inputs = {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"]}
    sequence_output = keras.ops.convert_to_numpy(loaded.subject_model(encoder_inputs)["sequence_output"])
    heads = keras.ops.convert_to_numpy(
        loaded.object_model(
            {"sequence_output": sequence_output, "padding_mask": inputs["padding_mask"], "subject_span": spans}
        )
    )
    full = keras.ops.convert_to_numpy(loaded.encoder_object_model({**encoder_inputs, "subject_span": spans}))
    np.testing.assert_allclose(heads, full, rtol=1e-5, atol=1e-5)
    # -inf exactly at the padding positions.
    is_padding = np.broadcast_to(inputs["padding_mask"][:, None, None, :] == 0, heads.shape)
    np.testing.assert_array_equal(np.isneginf(heads), is_padding)


@pytest.mark.parametrize("loss_in", ["layer", "compile"])
def test_save_and_load_keep_every_constructor_argument(loss_in, tmp_path):
    """A round trip gives back the same config (every argument) and the same outputs, on every backend."""
    from toolkit.relations import RelationExtractor

    keras.utils.set_random_seed(3)
    vocabulary_size = 40
    arguments = {
        "pad_id": 3,
        "loss_in": loss_in,
        "condition_hidden_units": 8,
        "subject_loss_weight": 1.5,
        "object_loss_weight": 4.25,
        "metrics": ["micro_recall", "micro_precision"],
    }
    extractor = RelationExtractor(tiny_backbone(vocabulary_size), PREDICATES, **arguments)
    extractor.compile(keras.optimizers.Adam(1e-3))
    extractor.optimizer.build(extractor.trainable_variables)  # saved with its slots, as after fit
    path = tmp_path / "relation.keras"
    extractor.save(path)
    loaded = RelationExtractor.load(path)

    config = loaded.get_config()
    assert config == extractor.get_config()
    assert {key: config[key] for key in arguments} == arguments and config["predicates"] == PREDICATES
    assert (loaded.predicates, loaded.pad_id, loaded.loss_in) == (PREDICATES, 3, loss_in)
    assert (loaded.subject_loss_weight, loaded.object_loss_weight) == (1.5, 4.25)
    assert loaded.metric_names == ["micro_recall", "micro_precision"]
    assert loaded.backbone.hidden_dim == 32
    assert len(loaded.optimizer.variables) == len(extractor.optimizer.variables)
    compiled = loaded.get_compile_config()
    if loss_in == "compile":
        assert compiled["loss_weights"] == {"subject_logits": 1.5, "object_logits": 4.25}
        names = [metric["config"]["name"] for metric in compiled["metrics"]["subject_logits"]]
        assert names == ["micro_recall", "micro_precision"]
    else:
        assert compiled["loss"] is None
        for head, weight in [("subject", 1.5), ("object", 4.25)]:
            layer = loaded.get_layer(f"{head}_metrics")
            assert (layer.loss_weight, layer.metric_names) == (weight, ["micro_recall", "micro_precision"])
    assert RelationExtractor.from_config(config).get_config() == config

    rng = np.random.default_rng(0)
    token_ids = rng.integers(4, vocabulary_size, size=(3, 12)).astype("int32")
    token_ids[1, 8:] = 3  # padding, with pad_id=3
    segment_ids = np.zeros_like(token_ids)
    spans = np.array([[1, 2], [3, 3], [0, 5]], dtype="int32")
    encoder_inputs = {"token_ids": token_ids, "segment_ids": segment_ids}

    def numpy(outputs):
        return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)

    before, after = numpy(extractor.subject_model(encoder_inputs)), numpy(loaded.subject_model(encoder_inputs))
    keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), before, after)
    assert np.isneginf(after["subject_logits"][1, :, 8:]).all() and np.isfinite(after["subject_logits"][0]).all()
    object_inputs = {
        "sequence_output": before["sequence_output"],
        "padding_mask": (token_ids != 3).astype("int32"),
        "subject_span": spans,
    }
    np.testing.assert_allclose(
        numpy(extractor.object_model(object_inputs)), numpy(loaded.object_model(object_inputs)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        numpy(extractor.encoder_object_model({**encoder_inputs, "subject_span": spans})),
        numpy(loaded.object_model(object_inputs)),
        rtol=1e-5,
        atol=1e-5,
    )


JAX_TRAINING = textwrap.dedent(
    """
    import json, keras, numpy as np
    from tests.test_relations import PREDICATES, family_sentences, tiny_backbone, SPECIALS
    from toolkit.encoders.tokenizer import WordPieceTokenizer
    from toolkit.relations import RelationDataFeed, RelationExtractor, build_targets

    keras.utils.set_random_seed(0)
    sentences = family_sentences(96, seed=0)
    characters = sorted(set("".join(text for text, _ in sentences)))
    tokenizer = WordPieceTokenizer(SPECIALS + characters, lowercase=False)
    targets, _ = build_targets([t for t, _ in sentences], [f for _, f in sentences], tokenizer,
                               PREDICATES, maxlen=32)
    extractor = RelationExtractor(tiny_backbone(tokenizer.vocabulary_size), PREDICATES, loss_in="compile")
    extractor.compile(keras.optimizers.Adam(3e-3), jit_compile=COMPILE)
    feed = RelationDataFeed(targets, batch_size=16, targets_as="y", length_multiple=32)
    history = extractor.fit(feed, epochs=3, verbose=0).history
    print(json.dumps({"backend": keras.backend.backend(), "history": history}))
    """
)


def _check_compile_route_history(result):
    history = result["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert {"subject_logits_micro_f1", "object_logits_micro_f1"} <= set(history)


def test_compile_loss_route_trains_on_this_backend():
    """`loss_in="compile"` (labels as y): the route that works on JAX; eager on TF to keep it fast."""
    namespace = {"COMPILE": "auto"}
    code = JAX_TRAINING.replace(
        "jit_compile=COMPILE", "jit_compile=COMPILE, run_eagerly=keras.backend.backend() != 'jax'"
    )
    captured = []
    namespace["print"] = captured.append
    exec(compile(code, "jax_training", "exec"), namespace)
    _check_compile_route_history(json.loads(captured[-1]))


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the in-process test already runs on JAX")
def test_jax_backend_trains_through_the_compile_loss_route():
    """The same training, compiled by JAX, from a TF or torch run (slow: a fresh process imports JAX)."""
    pytest.importorskip("jax")
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    code = "COMPILE = 'auto'\n" + JAX_TRAINING
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    _check_compile_route_history(result)


def test_subject_spans_are_capped_by_their_scores():
    from toolkit.encoders.tokenizer import Encoding
    from toolkit.relations.decoder import _subject_spans

    length = 12
    offsets = [(0, 0)] + [(i, i + 1) for i in range(length - 2)] + [(0, 0)]
    encoding = Encoding([5] * length, [0] * length, offsets, "abcdefghij")
    starts = np.full(length, -5.0)
    ends = np.full(length, -5.0)
    for position, score in zip(range(1, 11), [1, 9, 2, 8, 3, 7, 4, 6, 5, 0.5]):
        starts[position] = score
        ends[position] = 1.0
    logits = np.stack([starts, ends])
    every = _subject_spans(logits, encoding, 0.0, limit=None)
    assert every == [(position, position) for position in range(1, 11)]
    assert _subject_spans(logits, encoding, 0.0, limit=3) == [(2, 2), (4, 4), (6, 6)]


def _reference_object_spans(object_logits, encoding, threshold):
    """Every predicate's objects one predicate at a time with `find_spans` (the per-sentence rule)."""
    from toolkit.relations.decoder import find_spans

    length = len(encoding.token_ids)
    found = []
    for predicate in range(object_logits.shape[0]):
        for start, end in find_spans(object_logits[predicate, 0], object_logits[predicate, 1], length, threshold):
            if not encoding.is_special(start) and not encoding.is_special(end):
                found.append((predicate, start, end))
    return found


@pytest.mark.parametrize("seed", range(6))
def test_object_spans_of_all_predicates_at_once_equal_the_per_predicate_search(seed):
    from toolkit.encoders.tokenizer import Encoding
    from toolkit.relations.decoder import MAX_OBJECTS_PER_SUBJECT, _object_spans

    rng = np.random.default_rng(seed)
    length, padded = int(rng.integers(3, 40)), 48
    offsets = [(0, 0)] + [(i, i + 1) for i in range(length - 2)] + [(0, 0)]
    encoding = Encoding([5] * length, [0] * length, offsets, "x" * (length - 2))
    # Sparse positives (a trained model) for even seeds; mostly positive (an untrained one) for odd seeds.
    share = 0.1 if seed % 2 == 0 else 0.8
    logits = np.where(
        rng.random((7, 2, padded)) < share, rng.random((7, 2, padded)) + 0.01, -rng.random((7, 2, padded))
    )
    logits[:, :, length:] = 3.0  # padding past the sentence never counts
    expected = _reference_object_spans(logits, encoding, 0.0)
    assert _object_spans(logits, encoding, 0.0, limit=None) == expected
    capped = _object_spans(logits, encoding, 0.0)
    if len(expected) <= MAX_OBJECTS_PER_SUBJECT:
        assert capped == expected
    else:  # the highest start + end logits, in the same order
        scores = {span: logits[span[0], 0, span[1]] + logits[span[0], 1, span[2]] for span in expected}
        best = sorted(expected, key=lambda span: -scores[span])[:MAX_OBJECTS_PER_SUBJECT]
        assert capped == [span for span in expected if span in best]
        assert len(capped) == MAX_OBJECTS_PER_SUBJECT
