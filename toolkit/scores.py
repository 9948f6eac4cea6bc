"""Evaluation numbers for multi-label predictions, from scikit-learn.

A model trained with multilabel categorical crossentropy predicts a label
when its logit is above 0: nothing is tuned. A baseline trained with sigmoid
binary cross-entropy needs a threshold tuned on dev, which `best_threshold`
finds; `threshold_sweep` shows how much the score depends on it (drawn by
`toolkit.plots.plot_threshold_curve`). `lower_is_better` is the toolkit's one
rule for which way a logged value improves.

Every number comes from scikit-learn with `zero_division=0` and is a plain
Python `float` or `int`, so `toolkit.atomic.write_json_atomic` saves it as it is.
The threshold sweep is hand-written because scikit-learn has no multi-label
F1-against-threshold curve: it computes every threshold's micro and macro F1
from one sort of each column instead of one `f1_score` call a threshold.

Example:

```python
logits = model.predict(dev_inputs)            # [n, C], decision rule logit > 0
predicted = (logits > 0).astype("int32")
scores = multilabel_scores(dev_targets, predicted)
text, report = per_label_report(dev_targets, predicted, label_names)
sweep = threshold_sweep(dev_targets, logits)
```

This module imports neither Keras nor TensorFlow.
"""

import numpy as np
from sklearn import metrics as skm

from toolkit.atomic import json_ready

__all__ = [
    "multilabel_scores",
    "per_label_report",
    "span_class_report",
    "threshold_grid",
    "threshold_sweep",
    "best_threshold",
    "lower_is_better",
    "SWEEP_METRICS",
]

SWEEP_METRICS = ("micro_f1", "macro_f1")
_LOWER_IS_BETTER = ("loss", "hamming", "error")


def lower_is_better(name):
    """Whether a smaller value of the logged value `name` is better (losses, error rates).

    The one rule for checkpoints, early stopping and the marks on learning curves.

    >>> lower_is_better("val_loss"), lower_is_better("val_hamming_loss"), lower_is_better("val_micro_f1")
    (True, True, False)
    """
    return any(word in name for word in _LOWER_IS_BETTER)


# --------------------------------------------------------------------------
# Checking inputs


def _indicator(name, values, owner):
    """A `[n, C]` 0/1 int8 array, or a ValueError naming `name`."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"The '{name}' argument of {owner} must be a 2-D 0/1 indicator array [n, C]. "
            f"Got shape {array.shape} instead."
        )
    if array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(
            f"The '{name}' argument of {owner} needs at least 1 row and 2 label columns. "
            f"Got shape {array.shape} instead."
        )
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        found = np.unique(array[~np.isin(array, (0, 1))])[:5]
        raise ValueError(
            f"The '{name}' argument of {owner} must hold only 0 and 1 (predict with "
            f"`logits > 0` first). Got values such as {found.tolist()} instead."
        )
    return array.astype(np.int8)


def _same_shape(first, second, names, owner):
    if first.shape != second.shape:
        raise ValueError(
            f"The '{names[0]}' and '{names[1]}' arguments of {owner} must have the same shape. "
            f"Got {first.shape} and {second.shape} instead."
        )


def _logits(scores, owner):
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"The 'scores' argument of {owner} must be a 2-D array of logits [n, C]. Got shape {array.shape} instead."
        )
    if np.isnan(array).any():
        raise ValueError(f"The 'scores' argument of {owner} must not contain NaN.")
    return array


# --------------------------------------------------------------------------
# Numbers


def multilabel_scores(y_true, y_pred):
    """Scores of 0/1 predictions against 0/1 targets, as a JSON-ready dict.

    `y_true` and `y_pred` are indicator arrays `[n, C]` (predict with
    `logits > 0` first). Precision, recall and F1 come in the `micro`,
    `macro` and `samples` averages (F1 also `weighted`), with
    `zero_division=0`; then `subset_accuracy` (exact match), `hamming_loss`,
    the label cardinality (mean labels a row) of the targets and of the
    predictions, and `empty_predictions`, the fraction of rows predicted with
    no label at all.

    Example:

    >>> scores = multilabel_scores([[1, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 1, 0]])
    >>> scores["micro_f1"], scores["subset_accuracy"]
    (0.8, 0.5)
    """
    owner = "multilabel_scores"
    y_true = _indicator("y_true", y_true, owner)
    y_pred = _indicator("y_pred", y_pred, owner)
    _same_shape(y_true, y_pred, ("y_true", "y_pred"), owner)
    scores = {}
    for average in ("micro", "macro", "samples"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        scores[f"{average}_f1"] = float(f1)
        scores[f"{average}_precision"] = float(precision)
        scores[f"{average}_recall"] = float(recall)
    scores["weighted_f1"] = float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    scores["subset_accuracy"] = float(skm.accuracy_score(y_true, y_pred))
    scores["hamming_loss"] = float(skm.hamming_loss(y_true, y_pred))
    scores["n_examples"] = int(y_true.shape[0])
    scores["n_labels"] = int(y_true.shape[1])
    scores["label_cardinality_true"] = float(y_true.sum(axis=1).mean())
    scores["label_cardinality_pred"] = float(y_pred.sum(axis=1).mean())
    scores["empty_predictions"] = float((y_pred.sum(axis=1) == 0).mean())
    return scores


def per_label_report(y_true, y_pred, label_names):
    """scikit-learn's `classification_report`, as text and as a dict.

    One row a label (in the order of `label_names`, one name a column), then
    the micro, macro, weighted and samples averages; `zero_division=0`. The
    dict (`output_dict=True`) maps each name to `precision`, `recall`,
    `f1-score` and `support`, and is what `plot_per_label_f1` draws.

    Example:

    >>> text, report = per_label_report([[1, 0], [1, 1]], [[1, 0], [0, 1]], ["sports", "politics"])
    >>> report["sports"]["recall"], report["politics"]["support"]
    (0.5, 1)
    """
    owner = "per_label_report"
    y_true = _indicator("y_true", y_true, owner)
    y_pred = _indicator("y_pred", y_pred, owner)
    _same_shape(y_true, y_pred, ("y_true", "y_pred"), owner)
    names = [str(name) for name in label_names]
    if len(names) != y_true.shape[1]:
        raise ValueError(
            f"The 'label_names' argument of {owner} must name each of the {y_true.shape[1]} "
            f"label columns. Got {len(names)} names instead."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"The 'label_names' argument of {owner} must not repeat a name. Got {repeated[:5]}.")
    common = dict(labels=np.arange(len(names)), target_names=names, zero_division=0)
    text = skm.classification_report(y_true, y_pred, digits=4, **common)
    report = json_ready(skm.classification_report(y_true, y_pred, output_dict=True, **common))
    for entry in report.values():
        if isinstance(entry, dict) and "support" in entry:
            entry["support"] = int(entry["support"])
    return text, report


def span_class_report(per_class: dict, micro: dict) -> dict:
    """Span scores per class (per predicate, per entity type) in the shape of `per_label_report`'s dict,
    with its micro and macro rows, for `plot_per_label_f1`.

    `per_class` maps a class to `precision`, `recall`, `f1` and `num_gold` (as
    `toolkit.relations.evaluation.evaluate_triples` gives them); `micro` holds
    the same keys over every class. The macro row averages every class listed,
    those without gold spans included (their F1 is 0), as scikit-learn's does
    with `zero_division=0`.

    >>> per_class = {"PER": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "num_gold": 2},
    ...              "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "num_gold": 1}}
    >>> report = span_class_report(per_class, {"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "num_gold": 3})
    >>> round(report["macro avg"]["f1-score"], 4), report["micro avg"]["f1-score"], report["PER"]["support"]
    (0.3333, 0.5, 2)
    """
    report = {
        str(name): {"precision": s["precision"], "recall": s["recall"], "f1-score": s["f1"], "support": s["num_gold"]}
        for name, s in per_class.items()
    }
    rows = list(report.values())
    if rows:
        report["macro avg"] = {
            key: float(np.mean([row[key] for row in rows])) for key in ("precision", "recall", "f1-score")
        }
        report["macro avg"]["support"] = int(sum(row["support"] for row in rows))
    report["micro avg"] = {
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1-score": micro["f1"],
        "support": micro["num_gold"],
    }
    return report


def threshold_grid(scores, *, max_points=400):
    """Candidate thresholds for `scores`: midpoints between distinct values, and 0.0.

    Each midpoint between two neighbouring distinct score values gives a
    different set of predictions (`scores > t`). When there are more than
    `max_points` of them, evenly spaced ones (by rank, so a quantile grid) are
    kept. 0.0, the decision rule of the loss, is always in the grid. Sorted.

    Example:

    >>> threshold_grid([[-1.0, 3.0], [1.0, 3.0]]).tolist()
    [0.0, 2.0]
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise ValueError(
            f"The 'max_points' argument of threshold_grid must be a positive integer. Got {max_points!r} instead."
        )
    values = np.unique(_logits(np.atleast_2d(scores), "threshold_grid"))
    values = values[np.isfinite(values)]
    midpoints = (values[:-1] + values[1:]) / 2.0
    if midpoints.size > max_points:
        keep = np.unique(np.round(np.linspace(0, midpoints.size - 1, max_points)).astype(np.int64))
        midpoints = midpoints[keep]
    return np.unique(np.concatenate([midpoints, [0.0]]))


def _counts_above(sorted_columns, thresholds):
    """`[T, C]` counts of entries `> t` in each column, from columns sorted ascending `[C, n]`."""
    n = sorted_columns.shape[1]
    return np.stack([n - np.searchsorted(column, thresholds, side="right") for column in sorted_columns], axis=1)


def _f1(true_positives, true_count, predicted_count):
    """`2 tp / (true + predicted)` as scikit-learn computes it, 0 where undefined."""
    denominator = (true_count + predicted_count).astype(np.float64)
    numerator = 2.0 * true_positives.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def threshold_sweep(y_true, scores, thresholds=None):
    """Micro and macro F1 of the predictions `scores > t` for each threshold `t`.

    `scores` are logits `[n, C]`; `thresholds` default to `threshold_grid(scores)`.
    The F1 values equal scikit-learn's `f1_score(..., zero_division=0)`, but
    come from sorted columns and counts, not one call a threshold: 10,000
    rows of 100 labels take a fraction of a second. Returns plain lists:
    `{"thresholds": [...], "micro_f1": [...], "macro_f1": [...]}`.

    Example:

    >>> sweep = threshold_sweep([[1, 0], [0, 1]], [[2.0, -1.0], [0.5, 1.0]], [0.0, 0.7])
    >>> sweep["micro_f1"]
    [0.8, 1.0]
    """
    owner = "threshold_sweep"
    targets = _indicator("y_true", y_true, owner).astype(bool)
    logits = _logits(scores, owner)
    _same_shape(targets, logits, ("y_true", "scores"), owner)
    if thresholds is None:
        thresholds = threshold_grid(logits)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0 or np.isnan(thresholds).any():
        raise ValueError(f"The 'thresholds' argument of {owner} must be a non-empty list of numbers.")
    predicted_count = _counts_above(np.sort(logits.T, axis=1), thresholds)
    positive_logits = np.where(targets, logits, -np.inf).T
    true_positives = _counts_above(np.sort(positive_logits, axis=1), thresholds)
    true_count = targets.sum(axis=0)
    micro = _f1(true_positives.sum(axis=1), true_count.sum(), predicted_count.sum(axis=1))
    macro = _f1(true_positives, true_count[None, :], predicted_count).mean(axis=1)
    return {
        "thresholds": thresholds.tolist(),
        "micro_f1": micro.tolist(),
        "macro_f1": macro.tolist(),
    }


def best_threshold(y_true, scores, *, metric="micro_f1", thresholds=None):
    """The threshold on the logits with the best `metric` on (`y_true`, `scores`).

    `metric` is `"micro_f1"` or `"macro_f1"`; `thresholds` default to
    `threshold_grid(scores)` (at most about 400 points, always with 0.0).
    Among equally good thresholds the one closest to 0 wins, so a model
    trained with this loss keeps its own rule unless another is better. Tune
    on dev, never on test.

    Example:

    >>> best_threshold([[1, 0], [0, 1]], [[-0.5, -2.0], [-3.0, -1.0]])
    -1.5
    """
    if metric not in SWEEP_METRICS:
        raise ValueError(
            f"The 'metric' argument of best_threshold must be one of {list(SWEEP_METRICS)}. Got {metric!r} instead."
        )
    sweep = threshold_sweep(y_true, scores, thresholds)
    candidates = np.asarray(sweep["thresholds"])
    values = np.asarray(sweep[metric])
    tied = np.flatnonzero(values >= values.max() - 1e-12)
    return float(candidates[tied[np.argmin(np.abs(candidates[tied]))]])
