"""Tests for toolkit.data.synthetic: the built-in demo data sets and their files."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations

import pytest

from toolkit.config import default_config
from toolkit.data import read_split
from toolkit.data.multilabel import build_label_vocabulary, to_multi_hot
from toolkit.data.relations import read_relations, read_schema
from toolkit.data.synthetic import (
    MULTILABEL_DEMO_FILES,
    MULTILABEL_DEMO_LABELS,
    RELATION_DEMO_FILES,
    RELATION_DEMO_SCHEMA,
    SPECIAL_TOKENS,
    basic_tokens,
    make_multilabel_demo,
    make_relation_demo,
    write_demo_vocab,
    write_multilabel_demo,
    write_relation_demo,
)


@pytest.fixture(scope="module")
def reviews():
    return make_multilabel_demo(2000, 300, 300, seed=0)


@pytest.fixture(scope="module")
def relations():
    return make_relation_demo(1500, 200, 200, seed=0)


def wordpiece(word: str, vocabulary: set) -> list:
    """Greedy longest-match-first WordPiece, as BERT tokenises one word."""
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocabulary:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def tokenize(text: str, vocabulary: set) -> list:
    return [piece for word in basic_tokens(text) for piece in wordpiece(word, vocabulary)]


# ============================================================================ multi-label reviews


def test_reviews_are_reproducible(reviews):
    assert make_multilabel_demo(2000, 300, 300, seed=0) == reviews
    assert make_multilabel_demo(50, 5, 5, seed=1)["train"] != reviews["train"][:50]
    assert make_multilabel_demo(0, 0, 3, seed=0)["test"][0]["id"] == "test-0"


def test_reviews_shape(reviews):
    assert {name: len(records) for name, records in reviews.items()} == {"train": 2000, "dev": 300, "test": 300}
    record = reviews["train"][0]
    assert set(record) == {"id", "text", "labels"} and record["id"] == "train-0"
    texts = [r["text"] for split in reviews.values() for r in split]
    assert len(set(texts)) == len(texts), "a text repeats across or within splits"
    assert 8 <= len(MULTILABEL_DEMO_LABELS) <= 12
    order = {label: i for i, label in enumerate(MULTILABEL_DEMO_LABELS)}
    for split in reviews.values():
        for r in split:
            assert 1 <= len(r["labels"]) <= 3
            assert r["labels"] == sorted(set(r["labels"]), key=order.get)


def test_label_frequencies_vary_and_labels_co_occur(reviews):
    train = reviews["train"]
    counts = Counter(label for r in train for label in r["labels"])
    assert set(counts) == set(MULTILABEL_DEMO_LABELS)
    assert counts.most_common()[0][1] >= 8 * counts.most_common()[-1][1]
    assert min(counts.values()) / len(train) < 0.05, "no rare label"
    sizes = Counter(len(r["labels"]) for r in train)
    assert sizes[1] > sizes[2] > sizes[3] > 0.05 * len(train)
    pairs = Counter(pair for r in train for pair in combinations(r["labels"], 2))
    expected = counts["shipping"] * counts["packaging"] / len(train)
    assert pairs[("shipping", "packaging")] > 1.8 * expected


def test_reviews_hold_distractors(reviews):
    texts = [r["text"].lower() for r in reviews["train"]]
    praise = sum("no complaints about the" in t or "is the best part" in t for t in texts)
    unjudged = sum("can't say anything about" in t or "did not matter to me" in t for t in texts)
    assert praise > 0.02 * len(texts) and unjudged > 0.05 * len(texts)
    battery_word = [r for r in reviews["train"] if "battery" in r["text"].lower()]
    assert sum("battery" not in r["labels"] for r in battery_word) > 0.3 * len(battery_word)


def test_reviews_are_not_trivial_for_bag_of_words(reviews):
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    vocabulary = list(MULTILABEL_DEMO_LABELS)
    y_train = to_multi_hot([r["labels"] for r in reviews["train"]], vocabulary)
    y_test = to_multi_hot([r["labels"] for r in reviews["test"]], vocabulary)
    vectorizer = CountVectorizer(binary=True)
    x_train = vectorizer.fit_transform(r["text"] for r in reviews["train"])
    x_test = vectorizer.transform(r["text"] for r in reviews["test"])
    model = OneVsRestClassifier(LogisticRegression(solver="liblinear")).fit(x_train, y_train)
    score = f1_score(y_test, model.predict(x_test), average="micro")
    # Learnable from words alone up to a point; the rest needs word order.
    assert 0.75 < score < 0.95


def test_write_multilabel_demo_goes_through_the_reader(tmp_path):
    paths = write_multilabel_demo(tmp_path / "demo", n_train=300, n_dev=50, n_test=50, seed=3)
    assert {name: p.name for name, p in paths.items()} == MULTILABEL_DEMO_FILES
    assert (tmp_path / "demo" / "labels.txt").read_text().split() == list(MULTILABEL_DEMO_LABELS)
    first = json.loads(paths["train"].read_text().splitlines()[0])
    assert first == make_multilabel_demo(300, 50, 50, seed=3)["train"][0]

    config = default_config("multilabel_classification", data_dir=tmp_path / "demo", output_dir=tmp_path / "run")
    config.check_files()
    train, test = read_split(config.data, "train"), read_split(config.data, "test")
    assert (len(train), len(test)) == (300, 50) and not train.report
    vocabulary = build_label_vocabulary([train], label_names=config.data.label_names)
    assert vocabulary == list(MULTILABEL_DEMO_LABELS)
    assert to_multi_hot(train, vocabulary).sum(axis=1).min() >= 1

    tokens = paths["vocab"].read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens[: len(SPECIAL_TOKENS)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(tokens) == len(set(tokens))
    known = set(tokens)
    for text in train.texts + test.texts:
        pieces = tokenize(text, known)
        assert "[UNK]" not in pieces
        assert len(pieces) + 2 <= config.model.maxlen


# ============================================================================ relation sentences


def test_relations_are_reproducible(relations):
    assert make_relation_demo(1500, 200, 200, seed=0) == relations
    assert make_relation_demo(20, 1, 1, seed=5)["train"] != relations["train"][:20]


def test_relation_records(relations):
    predicates = [row["predicate"] for row in RELATION_DEMO_SCHEMA]
    assert 5 <= len(set(predicates)) <= 8
    texts = [r["text"] for split in relations.values() for r in split]
    assert len(set(texts)) == len(texts)
    for record in relations["train"]:
        assert set(record) == {"text", "spo_list"}
        for spo in record["spo_list"]:
            assert set(spo) == {"subject", "predicate", "object", "subject_type", "object_type"}
            assert spo["predicate"] in predicates
            assert spo["subject"] in record["text"] and spo["object"] in record["text"]
    used = Counter(spo["predicate"] for r in relations["train"] for spo in r["spo_list"])
    assert set(used) == set(predicates)


def test_relation_sentences_have_the_hard_cases(relations):
    train = relations["train"]
    sizes = Counter(len(r["spo_list"]) for r in train)
    assert sizes[0] > 0, "no sentence without a triple"
    assert sum(n for size, n in sizes.items() if size >= 2) > 0.5 * len(train)

    def triples(record):
        return [(t["subject"], t["predicate"], t["object"]) for t in record["spo_list"]]

    shared_subject = object_then_subject = nested = same_pair = 0
    for record in train:
        spo = triples(record)
        subjects = Counter(s for s, _, _ in spo)
        shared_subject += any(n >= 2 for n in subjects.values())
        object_then_subject += bool({o for _, _, o in spo} & set(subjects))
        entities = {s for s, _, _ in spo} | {o for _, _, o in spo}
        nested += any(a != b and a in b for a in entities for b in entities)
        pairs = Counter(frozenset((s, o)) for s, _, o in spo)
        same_pair += any(n >= 2 for n in pairs.values())
    for name, count in [
        ("shared subject", shared_subject),
        ("object and subject", object_then_subject),
        ("nested entities", nested),
        ("two relations, one pair", same_pair),
    ]:
        assert count > 0.03 * len(train), name


def test_relation_names_are_an_open_vocabulary(relations):
    def names(split):
        return {e for r in relations[split] for t in r["spo_list"] for e in (t["subject"], t["object"])}

    test_names = names("test")
    assert len(test_names - names("train")) > 0.8 * len(test_names)


def test_write_relation_demo_goes_through_the_reader(tmp_path):
    paths = write_relation_demo(tmp_path / "re", n_train=200, n_dev=30, n_test=30, seed=2)
    assert {name: p.name for name, p in paths.items()} == RELATION_DEMO_FILES
    assert read_schema(paths["schema"]) == [row["predicate"] for row in RELATION_DEMO_SCHEMA]
    config = default_config("relation_extraction", data_dir=tmp_path / "re")
    config.check_files()
    train = read_split(config.data, "train")
    assert len(train) == 200 and not train.report
    assert train.predicates == read_schema(paths["schema"])
    direct = read_relations(paths["test"], layout="lic2019", schema=paths["schema"])
    assert len(direct) == 30

    known = set(paths["vocab"].read_text(encoding="utf-8").split("\n")[:-1])
    for text, triples in zip(direct.texts, direct.triples):
        pieces = tokenize(text, known)
        assert "[UNK]" not in pieces and len(pieces) + 2 <= config.model.maxlen
        for subject, _, _ in triples:
            assert all(len(wordpiece(word, known)) >= 1 for word in basic_tokens(subject))


# ============================================================================ vocabulary, arguments


def test_write_demo_vocab(tmp_path):
    tokens = write_demo_vocab(
        tmp_path / "v" / "vocab.txt", ["The box, the BOX!", "a zebra"], pieces=["Ze", "bra"], min_count=2
    )
    assert tokens[:5] == list(SPECIAL_TOKENS)
    assert (tmp_path / "v" / "vocab.txt").read_text().split("\n")[:-1] == tokens
    assert {"the", "box", ",", "!", "z", "##z", "ze", "##ze", "bra", "##bra"} <= set(tokens)
    assert "zebra" not in tokens and "a" in tokens  # "a" as a character, "zebra" seen once
    assert wordpiece("zebra", set(tokens)) == ["ze", "##bra"]
    assert basic_tokens("It's $5!") == ["it", "'", "s", "$", "5", "!"]


@pytest.mark.parametrize("maker", [make_multilabel_demo, make_relation_demo])
def test_sizes_are_checked(maker):
    with pytest.raises(ValueError, match=r"n_dev must be an integer >= 0; got -1"):
        maker(10, -1, 1)
    with pytest.raises(ValueError, match=r"n_train must be an integer >= 0; got 1.5"):
        maker(1.5, 1, 1)


def test_docstring_examples_run():
    import doctest

    import toolkit.data.synthetic

    result = doctest.testmod(toolkit.data.synthetic)
    assert result.failed == 0 and result.attempted >= 2
