"""Export (`python -m toolkit export`): a SavedModel that reads raw texts and returns what the predictors
return, served by plain TensorFlow in a process that never imports the toolkit."""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_ENCODER, shared_dir
from tests.test_classification_pipeline import run_cli
from toolkit.config import default_config
from toolkit.data.synthetic import write_demo_vocab
from toolkit.encoders.tokenizer import WordPieceTokenizer
from toolkit.serving.graph_tokenizer import GraphTokenizer, tokenizer_tables

# Texts of every kind the tokenizer must read as the toolkit's does.
ENGLISH = "Hello, world! The quick brown fox's jump-over (2024) costs $3.50 & more..."
ACCENTED = "Café naïve résumé Ångström façade; cafe\u0301 e\u0301te\u0301 (combining accents)"
CHINESE = "周杰伦的父亲是周耀中，2019年在Taipei发布了新专辑《晴天》version 2.0。"
FULL_WIDTH = "（全角括号）！？：；“引号”『书名』ＡＢＣ１２３，Ｈｅｌｌｏ"
EMOJI = "emoji 😀👍🏽 family 👨\u200d👩\u200d👧 flag 🇫🇷 heart ❤️ ok"
OTHERS = [
    "",
    "   \t\n ",
    "tab\tnewline\nreturn\r\x00null\u200bzero-width\ufeffbom",
    "İstanbul STRASSE straße ΣΊΣΥΦΟΣ Ǆemal ﬁne",
    "한국어 텍스트",
    "special tokens: [MASK], [CLS]inside[SEP] and [UNK] [PAD] written in the text",
    "a" * 120 + " a word longer than max_input_chars_per_word",
    "unbelievableness and supercalifragilisticexpialidocious",
]
TEXTS = [ENGLISH, ACCENTED, CHINESE, FULL_WIDTH, EMOJI, *OTHERS]


@functools.cache
def prepared(vocabulary, lowercase=None):
    """`(tokenizer, its tables)` of a vocabulary file, made once (the tables take a few seconds)."""
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase)
    return tokenizer, tokenizer_tables(tokenizer)


def assert_same_encoding(prepared_tokenizer, texts, maxlen):
    """The graph's ids, offsets and span ends are the toolkit tokenizer's, text by text."""
    tokenizer, tables = prepared_tokenizer
    encoded = GraphTokenizer(tables, maxlen)(tf.constant(texts, tf.string))
    token_ids, offsets, lengths = (encoded[name].numpy() for name in ("token_ids", "offsets", "lengths"))
    span_ends = encoded["span_ends"].numpy()
    for row, (text, expected) in enumerate(zip(texts, tokenizer.encode_batch(texts, maxlen=maxlen))):
        count = lengths[row]
        assert token_ids[row, :count].tolist() == expected.token_ids, text
        assert [tuple(pair) for pair in offsets[row, :count].tolist()] == expected.offsets, text
        assert (token_ids[row, count:] == tokenizer.pad_id).all()
        for token in range(1, count - 1):
            assert span_ends[row, token] == tokenizer.token_span_to_char_span(expected, token, token)[1], text
    return token_ids, lengths


@pytest.fixture(scope="module")
def own_vocabulary(tmp_path_factory):
    """A vocabulary of all but the emoji and Korean texts' characters, so those read as [UNK]."""
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_demo_vocab(path, [ENGLISH, ACCENTED, CHINESE, FULL_WIDTH, "straße ﬁne", "tokens"], pieces=["ing", "ness"])
    return str(path)


@pytest.mark.parametrize("lowercase", [True, False])
def test_the_graph_tokenizer_gives_the_toolkit_tokenizers_ids_and_offsets(own_vocabulary, lowercase):
    tokenizer = prepared(own_vocabulary, lowercase)[0]
    token_ids, lengths = assert_same_encoding(prepared(own_vocabulary, lowercase), TEXTS, maxlen=512)
    assert (token_ids == tokenizer.unk_id).any() and (token_ids == tokenizer.token_to_id("[MASK]")).any()
    assert lengths[TEXTS.index("")] == 2  # [CLS] [SEP]


@pytest.mark.parametrize("maxlen", [2, 5, 16])
def test_a_text_longer_than_maxlen_is_cut_as_the_toolkit_cuts_it(own_vocabulary, maxlen):
    _, lengths = assert_same_encoding(prepared(own_vocabulary), TEXTS, maxlen=maxlen)
    assert lengths.max() == maxlen


@pytest.mark.parametrize(
    "folder, vocabulary",
    [
        (shared_dir(), "data/chinese_bert/vocab.txt"),
        (os.path.expanduser("~/.cache/pretrained/all-MiniLM-L6-v2"), "vocab.txt"),
    ],
)
def test_real_vocabularies_tokenize_alike(folder, vocabulary):
    if folder is None or not os.path.isfile(os.path.join(folder, vocabulary)):
        pytest.skip(f"{vocabulary} is not in {folder} (../shared, or `python -m toolkit get-encoder`)")
    assert_same_encoding(prepared(os.path.join(folder, vocabulary)), TEXTS, maxlen=128)


def test_no_text_at_all():
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    encoded = GraphTokenizer(tokenizer, 8)(tf.constant([], tf.string))
    assert encoded["token_ids"].shape == (0, 2) and encoded["lengths"].shape == (0,)


def test_the_one_known_difference_is_the_order_of_marks_nfd_would_reorder():
    """NFD puts combining marks in canonical order across characters: U+1D16D (a spacing mark, combining
    class 226) before U+0301 (230). `tokenizers` then drops U+0301 and misplaces the token's end (2: the
    token seems to end before U+1D16D, which it holds); normalised one character at a time, the graph
    keeps them in order and ends the token after U+1D16D (3). The ids are the same."""
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], lowercase=True)
    text = "a\u0301\U0001d16d"
    expected = tokenizer.encode(text)
    encoded = GraphTokenizer(tokenizer, 8)(tf.constant([text]))
    assert encoded["token_ids"].numpy().tolist() == [expected.token_ids]
    assert expected.offsets[1] == (0, 2) and encoded["offsets"].numpy()[0, 1].tolist() == [0, 3]


def test_the_tables_hold_runs_and_the_few_replaced_characters(own_vocabulary):
    from toolkit.serving import graph_tokenizer as graph

    tables = prepared(own_vocabulary, True)[1]
    assert len(tables.run_starts) < 5000 and len(tables.replaced) < 20000  # not one entry a code point
    kinds = tables.codes([ord("a"), ord("中"), 0x200B, ord("É"), ord("\u0301"), ord("，"), ord(" ")])
    assert (kinds & 3).tolist() == [graph.KEEP, graph.ISOLATE, graph.DROP, graph.REPLACE, graph.DROP, 0, 0]
    assert kinds[4] & graph.DROPPED_MARK and not kinds[3] & graph.DROPPED_MARK
    assert (kinds >> graph.CLASS_SHIFT).tolist() == [graph.WORD] * 5 + [graph.PUNCTUATION, graph.SPACE]


def test_the_decision_rule_is_the_predictors(rng):
    from toolkit.predictors import MultilabelPredictor
    from toolkit.serving.graph_decoders import classification_outputs

    class Logits:
        outputs = None

    logits = rng.normal(size=(200, 6)).astype("float32") * 2
    logits[:3] = -5.0  # no label above 0
    for rule in [{}, {"min_labels": 1}, {"min_labels": 2, "max_labels": 3}, {"max_labels": 1}]:
        predictor = MultilabelPredictor(Logits(), list("abcdef"), **rule)
        labels = classification_outputs(tf.constant(logits), **rule)["labels"].numpy()
        assert (labels == predictor.predict_from_logits(logits).astype(bool)).all(), rule


def test_the_caps_keep_the_highest_scores_and_break_ties_as_the_numpy_decoders_do(rng):
    """`_highest_per_group` against the NumPy decoders' own expressions: ties to the earlier candidate
    (`np.argsort(-scores, kind="stable")`, objects and GPLinker), or to the later one
    (`np.argsort(scores, kind="stable")[::-1]`, subjects)."""
    from toolkit.serving.graph_decoders import _first_of_each, _highest_per_group

    groups = np.sort(rng.integers(0, 5, size=300))
    scores = rng.integers(0, 4, size=300).astype("float32")  # many ties
    for later_first in (False, True):
        kept = _highest_per_group(tf.constant(groups), tf.constant(scores), 7, later_first=later_first).numpy()
        for group in range(5):
            members = np.flatnonzero(groups == group)
            if later_first:
                ranked = np.argsort(scores[members], kind="stable")[::-1]
            else:
                ranked = np.argsort(-scores[members], kind="stable")
            assert sorted(np.flatnonzero(kept[members])) == sorted(ranked[:7]), (group, later_first)
    keys = [rng.integers(0, 3, size=50) for _ in range(3)]
    first = _first_of_each([tf.constant(key) for key in keys]).numpy()
    seen = [tuple(key[i] for key in keys) for i in range(50)]
    assert first.tolist() == [row not in seen[:i] for i, row in enumerate(seen)]


def _stub_scores(token_ids, types):
    """`[batch, types, length * length]` span scores of a stand-in recognizer, from the token ids and
    positions only (so the padding changes none), about half of them above 0."""
    ids = np.asarray(token_ids, dtype="float32")
    length = ids.shape[1]
    heads = np.arange(types, dtype="float32")[None, :, None, None]
    ends = np.arange(length, dtype="float32")[None, None, None, :]
    values = ids[:, None, :, None] * 7 + ids[:, None, None, :] * 13 + heads * 5 + ends
    return (np.mod(values, 11) - 5.5).reshape(len(ids), types, length * length)


def test_in_graph_entities_are_decode_entities_on_any_text(own_vocabulary):
    """The same scores decoded both ways, on every kind of text (accents the normaliser drops, CJK,
    emoji, special tokens) and types not in name order: the same sorted character spans."""
    from toolkit.entities.pipeline import decode_entities
    from toolkit.serving.graph_decoders import entity_outputs

    tokenizer, tables = prepared(own_vocabulary, True)
    types = ["PER", "LOC", "ORG"]

    class Recognizer:
        pad_id = tokenizer.pad_id

        def __init__(self):
            self.types = types

        def predict_on_batch(self, inputs):
            return _stub_scores(inputs["token_ids"], len(types))

    expected = decode_entities(Recognizer(), tokenizer, TEXTS, maxlen=64)
    encoded = GraphTokenizer(tables, 64)(tf.constant(TEXTS))
    texts = tf.constant(TEXTS)
    scores = tf.constant(_stub_scores(encoded["token_ids"].numpy(), len(types)))
    outputs = entity_outputs(texts, scores, encoded, types)
    outputs = {name: value.numpy() for name, value in outputs.items()}
    found = [
        [
            (int(start), int(end), kind.decode())
            for start, end, kind in zip(*(outputs[name][row] for name in ("entity_start", "entity_end", "entity_type")))
        ][: outputs["entity_count"][row]]
        for row in range(len(TEXTS))
    ]
    assert found == expected
    assert sum(map(len, expected)) > 100 and any(
        end > start + 1 and "\u0301" in text[start:end]
        for text, spans in zip(TEXTS, expected)
        for start, end, _ in spans
    )


# --- Four tiny runs exported, served by plain TensorFlow ------------------------------------------

SERVE = r"""
import json, sys

class RefuseToolkit:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "toolkit":
            raise ImportError("the exported model must load without the toolkit")

sys.meta_path.insert(0, RefuseToolkit())
import numpy as np
import tensorflow as tf

jobs = json.load(open(sys.argv[1], encoding="utf-8"))
results = {}
for name, job in jobs.items():
    loaded = tf.saved_model.load(job["folder"])
    outputs = dict(loaded.signatures["serving_default"](texts=tf.constant(job["texts"], tf.string)))
    outputs.update(loaded.signatures["metadata"]())
    results[name] = {
        key: np.char.decode(np.asarray(value.numpy(), bytes), "utf-8").tolist() if value.dtype == tf.string
        else value.numpy().tolist()
        for key, value in outputs.items()
    }
results["modules"] = sorted(name for name in ("toolkit", "tokenizers", "tensorflow_text") if name in sys.modules)
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
"""

EXTRA_TEXTS = ["", ACCENTED, CHINESE, FULL_WIDTH, EMOJI]


def _train(task, root, name, data, overrides):
    from toolkit.pipeline import Pipeline
    from toolkit.tasks import pipeline_class

    config = default_config(task, data_dir=root / data, output_dir=root / name, overrides=overrides)
    pipeline_class(task)(config, log=lambda message: None).train()
    return Pipeline.from_run(root / name, log=lambda message: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four runs of one epoch each (an early model fires on many spans: the comparisons are not empty)."""
    from toolkit.data.synthetic import write_entity_demo, write_multilabel_demo, write_relation_demo

    root = tmp_path_factory.mktemp("export_runs")
    common = [*TINY_ENCODER, "training.epochs=1", "training.early_stopping_patience=null", "training.batch_size=16"]
    write_multilabel_demo(root / "classification_data", n_train=96, n_dev=40, n_test=8, seed=3)
    write_entity_demo(root / "entity_data", n_train=64, n_dev=30, n_test=8, seed=2)
    write_relation_demo(root / "relation_data", n_train=64, n_dev=30, n_test=8, seed=2)
    classification = [*common, "model.maxlen=64", "predict.min_labels=1", "predict.max_labels=3"]
    relation = [*common, "model.maxlen=64", "training.learning_rate=0.003"]
    gplinker = [*relation, "model.method=gplinker", "model.head_size=16"]
    return {
        "classification": _train(
            "multilabel_classification", root, "classification", "classification_data", classification
        ),
        "entities": _train("entity_recognition", root, "entities", "entity_data", [*common, "model.maxlen=64"]),
        "semi_pointer": _train("relation_extraction", root, "semi_pointer", "relation_data", relation),
        "gplinker": _train("relation_extraction", root, "gplinker", "relation_data", gplinker),
    }


def _long(texts, maxlen):
    """Texts longer than `maxlen` tokens: dev texts eight times over, and `maxlen` words."""
    return [" ".join([text] * 8) for text in texts if text][:4] + ["x " * maxlen]


def _fitting(tokenizer, texts, maxlen):
    """Whether each text fits in `maxlen` tokens, [CLS] and [SEP] included (the predictor reads it whole)."""
    uncut = tokenizer.encode_batch_arrays(texts, maxlen=1_000_000, offsets=False)
    return (uncut.lengths <= maxlen).tolist()


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    """Each run exported, then served in one clean process that cannot import the toolkit: `(texts, outputs)`."""
    from toolkit.serving.export import export_run

    root = tmp_path_factory.mktemp("exported")
    texts, jobs = {}, {}
    for name, pipeline in runs.items():
        dev = list(pipeline.read_data().dev.texts)
        texts[name] = dev + EXTRA_TEXTS
        texts[f"{name}_long"] = _long(dev, pipeline.config.model.maxlen)
        folder = export_run(pipeline.config.output.dir, root / name, log=lambda message: None)
        jobs[name] = {"folder": str(folder), "texts": texts[name]}
        jobs[f"{name}_long"] = {"folder": str(folder), "texts": texts[f"{name}_long"]}
    (root / "jobs.json").write_text(json.dumps(jobs, ensure_ascii=False), encoding="utf-8")
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(root / "jobs.json"), str(root / "outputs.json")],
        capture_output=True,
        text=True,
        env=clean,
        cwd=root,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return texts, json.loads((root / "outputs.json").read_text(encoding="utf-8"))


def test_the_exported_models_load_without_the_toolkit_or_a_python_tokenizer(served):
    _, outputs = served
    assert outputs["modules"] == []
    assert outputs["entities"]["task"] == "entity_recognition" and outputs["entities"]["maxlen"] == 64
    assert outputs["semi_pointer"]["names"] == outputs["gplinker"]["names"] and len(outputs["gplinker"]["names"]) == 7
    assert "first maxlen tokens" in outputs["classification"]["long_texts"]


def _cut(outputs, *names, count):
    """Per text, the tuples of the named padded outputs, up to the text's count."""
    columns = [outputs[name] for name in names]
    return [list(zip(*(column[row] for column in columns)))[: outputs[count][row]] for row in range(len(columns[0]))]


@pytest.mark.parametrize("long", [False, True])
def test_classification_logits_and_labels_are_the_predictors(runs, served, long):
    texts, outputs = served
    key = "classification_long" if long else "classification"
    predictor = runs["classification"].load_predictor()
    preprocessor = predictor.preprocessor
    assert preprocessor.long_texts == "truncate"  # the classification default: it reads as the export does
    if long:
        assert not any(_fitting(preprocessor.tokenizer, texts[key], preprocessor.maxlen))
    logits = predictor.decision_function(texts[key])
    np.testing.assert_allclose(np.asarray(outputs[key]["logits"]), logits, atol=1e-4)
    labels = np.asarray(outputs[key]["labels"])
    assert (labels == predictor.predict_from_logits(logits).astype(bool)).all()
    assert outputs[key]["names"] == predictor.label_names
    if not long:
        assert labels.any() and not labels.all() and (labels.sum(axis=1) >= 1).all()  # min_labels: 1


@pytest.mark.parametrize("long", [False, True])
def test_entities_are_the_predictors(runs, served, long):
    texts, outputs = served
    key = "entities_long" if long else "entities"
    predictor = runs["entities"].load_predictor()
    assert _fitting(predictor.tokenizer, texts[key], predictor.maxlen) == [not long] * len(texts[key])
    if long:
        predictor.long_texts = "truncate"  # as the export, which reads a long text's first maxlen tokens
    expected = predictor.spans(texts[key])
    found = _cut(outputs[key], "entity_start", "entity_end", "entity_type", count="entity_count")
    assert found == expected
    assert sum(map(len, expected)) > 20
    texts_found = _cut(outputs[key], "entity_text", count="entity_count")
    assert texts_found == [[(text[start:end],) for start, end, _ in spans] for text, spans in zip(texts[key], found)]


@pytest.mark.parametrize("method", ["semi_pointer", "gplinker"])
@pytest.mark.parametrize("long", [False, True])
def test_relation_triples_are_the_predictors(runs, served, method, long):
    texts, outputs = served
    key = f"{method}_long" if long else method
    predictor = runs[method].load_predictor()
    assert predictor.method == method
    assert _fitting(predictor.tokenizer, texts[key], predictor.maxlen) == [not long] * len(texts[key])
    if long:
        predictor.long_texts = "truncate"  # as the export, which reads a long text's first maxlen tokens
    expected = [
        [(t.subject, t.predicate, t.object, *t.subject_span, *t.object_span) for t in triples]
        for triples in predictor.span_triples(texts[key])
    ]
    names = ("subject", "predicate", "object", "subject_start", "subject_end", "object_start", "object_end")
    assert _cut(outputs[key], *names, count="triple_count") == expected
    assert sum(map(len, expected)) > 10
    records = [
        [(record["subject_type"], record["object_type"]) for record in found] for found in predictor.extract(texts[key])
    ]
    assert _cut(outputs[key], "subject_type", "object_type", count="triple_count") == records


def test_cli_exports_a_run_and_refuses_a_missing_run_or_a_used_folder(runs, tmp_path):
    run = runs["entities"].config.output.dir
    done = run_cli("export", str(run), str(tmp_path / "exported"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "exported") and (tmp_path / "exported" / "saved_model.pb").is_file()
    assert "Assets written to" not in done.stderr and "exported" in done.stderr
    assert "by sentences (model.long_texts); the export reads its first maxlen tokens" in done.stderr
    again = run_cli("export", str(run), str(tmp_path / "exported"))  # an earlier export is replaced
    assert again.returncode == 0, again.stderr[-3000:]

    missing = run_cli("export", str(tmp_path / "no_run"), str(tmp_path / "out"))
    assert missing.returncode == 2
    assert (
        missing.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'no_run' / 'config.yaml'}: config file not found"
    )
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine", encoding="utf-8")
    used = run_cli("export", str(run), str(tmp_path / "used"))
    assert used.returncode == 2 and "holds files and no earlier export" in used.stderr.strip().splitlines()[-1]
    assert (tmp_path / "used" / "notes.txt").read_text(encoding="utf-8") == "mine"
    on_jax = run_cli("export", str(run), str(tmp_path / "out"), backend="jax")
    assert on_jax.returncode == 2 and "needs the TensorFlow backend" in on_jax.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
