"""Scores of extracted relations, and predictions written in the input layout.

A relation counts as right only when it matches a gold one exactly; how
"exactly" is read depends on the data (`scoring`, from
`toolkit.data.relations.layout_scoring`):

- `"text"`: subject, predicate and object strings equal (LIC2019, CasRel's
  NYT / WebNLG and custom data, which give strings);
- `"span"`: both entities' character spans and types and the predicate
  equal (token layouts such as CoNLL04: the strict measure of published
  results), so two mentions of the same words are two relations;
- `"duie2"`: subject, predicate and every slot of the object equal, lower
  case and book-title marks removed, as the official DuIE 2.0 evaluation.

Each sentence's predictions and gold relations are sets, so a repeated one
counts once. Relations are records, `{"subject", "predicate", "object",
...}` dicts as `RelationDataset.gold` holds them and `RelationPredictor.extract`
returns them; `relation_key` turns one into what is compared.

Example:

```python
scores = evaluate_triples(predicted, gold, predicates=predicates)
scores["micro"]["f1"], scores["per_predicate"]["父亲"]["recall"]
write_predictions_jsonl("dev_pred.json", texts, predicted)
```
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Optional

from toolkit.atomic import replace_file

__all__ = [
    "SCORINGS",
    "entity_scores",
    "evaluate_relations",
    "evaluate_triples",
    "per_predicate_scores",
    "relation_key",
    "triple_scores",
    "write_predictions_jsonl",
]

SCORINGS = ("text", "span", "duie2")


def _as_sets(predictions, references):
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have one entry per sentence; got {len(predictions)} "
            f"and {len(references)}."
        )
    return [
        ({tuple(triple) for triple in predicted}, {tuple(triple) for triple in gold})
        for predicted, gold in zip(predictions, references)
    ]


def _scores(correct: int, predicted: int, gold: int, zero_division: float) -> dict:
    precision = correct / predicted if predicted else zero_division
    recall = correct / gold if gold else zero_division
    f1 = 2 * correct / (predicted + gold) if predicted + gold else zero_division
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "num_correct": correct,
        "num_predicted": predicted,
        "num_gold": gold,
    }


def triple_scores(predictions: Sequence, references: Sequence, *, zero_division: float = 0.0) -> dict:
    """Micro precision, recall and F1 over exact triples.

    Args:
        predictions, references: per sentence, an iterable of
            `(subject, predicate, object)` triples.
        zero_division: the value of a ratio whose denominator is 0.

    Returns:
        `{"precision", "recall", "f1", "num_correct", "num_predicted", "num_gold"}`.

    Example:

    >>> triple_scores([[("a", "r", "b"), ("a", "r", "c")]], [[("a", "r", "b")]])["precision"]
    0.5
    """
    correct = predicted = gold = 0
    for predicted_set, gold_set in _as_sets(predictions, references):
        correct += len(predicted_set & gold_set)
        predicted += len(predicted_set)
        gold += len(gold_set)
    return _scores(correct, predicted, gold, zero_division)


def per_predicate_scores(
    predictions: Sequence,
    references: Sequence,
    *,
    predicates: Optional[Sequence[str]] = None,
    zero_division: float = 0.0,
) -> dict:
    """Precision, recall and F1 of each predicate (a JSON-ready dict).

    Args:
        predicates: the predicates to report, in this order (every one, even
            if never seen); by default those seen in predictions or
            references, sorted.

    Returns:
        `{predicate: {"precision", "recall", "f1", "num_correct",
        "num_predicted", "num_gold"}}`.
    """
    correct, predicted, gold = Counter(), Counter(), Counter()
    for predicted_set, gold_set in _as_sets(predictions, references):
        correct.update(triple[1] for triple in predicted_set & gold_set)
        predicted.update(triple[1] for triple in predicted_set)
        gold.update(triple[1] for triple in gold_set)
    names = list(predicates) if predicates is not None else sorted(set(predicted) | set(gold))
    return {name: _scores(correct[name], predicted[name], gold[name], zero_division) for name in names}


def evaluate_triples(
    predictions: Sequence,
    references: Sequence,
    *,
    predicates: Optional[Sequence[str]] = None,
    zero_division: float = 0.0,
) -> dict:
    """`{"micro": triple_scores(...), "per_predicate": per_predicate_scores(...)}`."""
    return {
        "micro": triple_scores(predictions, references, zero_division=zero_division),
        "per_predicate": per_predicate_scores(
            predictions, references, predicates=predicates, zero_division=zero_division
        ),
    }


def relation_key(record: dict, scoring: str = "text") -> tuple:
    """What is compared of a relation record: a `(subject, predicate, object)` tuple whose parts
    are strings (`"text"`), `(start, end, type)` entities (`"span"`) or the official DuIE 2.0 form.

    >>> relation_key({"subject": "Ada", "predicate": "born_in", "object": "London"})
    ('Ada', 'born_in', 'London')
    >>> relation_key({"subject": "Ada", "predicate": "born_in", "object": "London", "subject_span": [0, 3],
    ...               "object_span": [12, 18], "subject_type": "Peop", "object_type": "Loc"}, "span")
    ((0, 3, 'Peop'), 'born_in', (12, 18, 'Loc'))
    """
    if scoring == "text":
        return record["subject"], record["predicate"], record["object"]
    if scoring == "span":
        subject = (*record["subject_span"], record.get("subject_type"))
        object_ = (*record["object_span"], record.get("object_type"))
        return tuple(subject), record["predicate"], tuple(object_)
    if scoring == "duie2":
        from toolkit.data.duie import official_key

        return official_key(record)
    raise ValueError(f"scoring must be one of {', '.join(map(repr, SCORINGS))}; got {scoring!r}")


def _keys(records: Sequence, scoring: str) -> list:
    return [[relation_key(record, scoring) for record in sentence] for sentence in records]


def entity_scores(predictions: Sequence, references: Sequence, *, zero_division: float = 0.0) -> dict:
    """Micro scores of the entities that take part in relations, `(start, end, type)` strict.

    The semi-pointer model tags an entity only as the subject or object of a
    relation, so this is the F1 of those entities (`"span"` scoring only):
    the entities of the gold relations against those of the predicted ones.
    """

    def entities(records):
        found = set()
        for record in records:
            found.add((*record["subject_span"], record.get("subject_type")))
            found.add((*record["object_span"], record.get("object_type")))
        return found

    correct = predicted = gold = 0
    for predicted_records, gold_records in zip(predictions, references):
        predicted_set, gold_set = entities(predicted_records), entities(gold_records)
        correct += len(predicted_set & gold_set)
        predicted += len(predicted_set)
        gold += len(gold_set)
    return _scores(correct, predicted, gold, zero_division)


def evaluate_relations(
    predictions: Sequence,
    references: Sequence,
    *,
    scoring: str = "text",
    predicates: Optional[Sequence[str]] = None,
    zero_division: float = 0.0,
) -> dict:
    """`evaluate_triples` over relation records compared as `scoring` says; with `"span"`, also
    `"entities"` (`entity_scores`).

    ```python
    scores = evaluate_relations(predictor.extract(dev.texts), dev.gold, scoring=dev.scoring)
    scores["micro"]["f1"], scores["entities"]["f1"]
    ```
    """
    scores = evaluate_triples(
        _keys(predictions, scoring), _keys(references, scoring), predicates=predicates, zero_division=zero_division
    )
    if scoring == "span":
        scores["entities"] = entity_scores(predictions, references, zero_division=zero_division)
    return scores


def write_predictions_jsonl(
    path,
    texts: Sequence[str],
    predictions: Sequence,
    *,
    references: Optional[Sequence] = None,
) -> None:
    """Write one JSON line per text in the LIC2019 layout.

    Each line is `{"text": ..., "spo_list": [{"subject", "predicate",
    "object"}, ...]}`, the layout `toolkit.data.read_relations` reads
    (`predictions` are triples or relation records; records are written with
    all their keys: types, spans, DuIE 2.0 objects); with
    `references`, a `"spo_list_gold"` list in the same form is added, for
    error analysis. The file is written atomically (`toolkit.atomic`).
    """
    if len(texts) != len(predictions) or (references is not None and len(references) != len(texts)):
        raise ValueError("texts, predictions (and references) must have one entry per sentence.")

    def spo_list(triples):
        return [
            dict(item) if isinstance(item, dict) else {"subject": item[0], "predicate": item[1], "object": item[2]}
            for item in triples
        ]

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            for index, (text, triples) in enumerate(zip(texts, predictions)):
                record = {"text": text, "spo_list": spo_list(triples)}
                if references is not None:
                    record["spo_list_gold"] = spo_list(references[index])
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    replace_file(path, write)
