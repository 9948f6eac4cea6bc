"""Scores of extracted triples, and predictions written in the input layout.

A triple counts as right only when subject, predicate and object all match
exactly (string equality). Each sentence's predictions and gold triples are
sets, so a repeated triple counts once.

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

__all__ = ["evaluate_triples", "per_predicate_scores", "triple_scores", "write_predictions_jsonl"]


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


def write_predictions_jsonl(
    path,
    texts: Sequence[str],
    predictions: Sequence,
    *,
    references: Optional[Sequence] = None,
) -> None:
    """Write one JSON line per text in the LIC2019 layout.

    Each line is `{"text": ..., "spo_list": [{"subject", "predicate",
    "object"}, ...]}`, the layout `toolkit.data.read_relations` reads; with
    `references`, a `"spo_list_gold"` list in the same form is added, for
    error analysis. The file is written atomically (`toolkit.atomic`).
    """
    if len(texts) != len(predictions) or (references is not None and len(references) != len(texts)):
        raise ValueError("texts, predictions (and references) must have one entry per sentence.")

    def spo_list(triples):
        return [{"subject": s, "predicate": p, "object": o} for s, p, o in triples]

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            for index, (text, triples) in enumerate(zip(texts, predictions)):
                record = {"text": text, "spo_list": spo_list(triples)}
                if references is not None:
                    record["spo_list_gold"] = spo_list(references[index])
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    replace_file(path, write)
