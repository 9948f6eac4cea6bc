"""Stateful multi-label metrics that read logits with the decision rule `s > 0`.

A model trained with multilabel categorical crossentropy predicts a class
when its logit is above 0, so these metrics take logits and a `threshold`
(default 0.0) on the logit scale. Keras' own `F1Score` rejects a threshold
of 0, which is why they exist.

Each metric builds its state once, accumulates true positives, false
positives and false negatives in `update_state`, and computes only in
`result`. `average` follows scikit-learn: `"micro"`, `"macro"`,
`"weighted"`, `"samples"` or `None` (one score per class), with
`zero_division` the score of an undefined ratio. Rows are the entries of
every axis but the last (a `[batch, heads, seq_len]` tensor has
`batch * heads` rows of `seq_len` classes). `update_state` takes an optional
boolean `mask` broadcastable to the logits (padding positions, ignored
classes) and a per-row `sample_weight`.

Example:

```python
model.compile(
    optimizer="adam",
    loss=toolkit.losses.MultilabelCategoricalCrossentropy(),
    metrics=[
        toolkit.metrics.MultilabelF1Score(average="micro"),
        toolkit.metrics.MultilabelF1Score(average="macro"),
        toolkit.metrics.SubsetAccuracy(),
    ],
)
```
"""

import math
import numbers

import keras
from keras import ops

__all__ = [
    "MultilabelF1Score",
    "MultilabelPrecision",
    "MultilabelRecall",
    "SubsetAccuracy",
    "AVERAGES",
]

AVERAGES = ("micro", "macro", "weighted", "samples", None)


def _check_threshold(owner, threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(
            f"The 'threshold' argument of {owner} must be a finite number on the logit scale "
            f"(0.0 for this loss). Got {threshold!r} instead."
        )
    return float(threshold)


def _prepare(y_true, y_pred, threshold, mask, sample_weight):
    """Predicted and true 0/1 tensors and per-entry weights, all float32."""
    y_pred = ops.convert_to_tensor(y_pred)
    rank = len(y_pred.shape)
    predicted = ops.cast(ops.cast(y_pred, "float32") > threshold, "float32")
    actual = ops.cast(ops.cast(ops.convert_to_tensor(y_true), "float32") > 0.5, "float32")
    weight = ops.ones_like(predicted)
    if mask is not None:
        weight = weight * ops.cast(ops.convert_to_tensor(mask), "float32")
    if sample_weight is not None:
        sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
        # A per-row weight: align it with the leading axes, then broadcast.
        while len(sample_weight.shape) < rank:
            sample_weight = ops.expand_dims(sample_weight, -1)
        weight = weight * sample_weight
    return actual, predicted, weight


def _divide(numerator, denominator, zero_division):
    numerator = ops.convert_to_tensor(numerator)
    denominator = ops.convert_to_tensor(denominator)
    safe = ops.where(denominator > 0, denominator, ops.ones_like(denominator))
    return ops.where(denominator > 0, numerator / safe, ops.full_like(numerator, zero_division))


class _MultilabelConfusionMetric(keras.metrics.Metric):
    """Shared state and averaging of the F1, precision and recall metrics."""

    _metric_name = None  # "f1", "precision" or "recall"

    def __init__(self, threshold=0.0, average="micro", num_classes=None, zero_division=0.0, name=None, dtype=None):
        owner = type(self).__name__
        if average not in AVERAGES:
            raise ValueError(
                f"The 'average' argument of {owner} must be one of 'micro', 'macro', 'weighted', "
                f"'samples' or None. Got {average!r} instead."
            )
        if zero_division not in (0, 1) or isinstance(zero_division, bool):
            raise ValueError(
                f"The 'zero_division' argument of {owner} must be 0.0 or 1.0. Got {zero_division!r} instead."
            )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1
        ):
            raise ValueError(
                f"The 'num_classes' argument of {owner} must be a positive integer or None. "
                f"Got {num_classes!r} instead."
            )
        if name is None:
            name = self._metric_name if average is None else f"{average}_{self._metric_name}"
        super().__init__(name=name, dtype=dtype or "float32")
        self.threshold = _check_threshold(owner, threshold)
        self.average = average
        self.num_classes = None if num_classes is None else int(num_classes)
        self.zero_division = float(zero_division)
        self._state_built = False
        if average == "samples":
            self.score_sum = self.add_variable(shape=(), initializer="zeros", name="score_sum")
            self.row_weight = self.add_variable(shape=(), initializer="zeros", name="row_weight")
            self._state_built = True
        elif average == "micro":
            self._build_counts(())
        elif self.num_classes is not None:
            self._build_counts((self.num_classes,))

    def _build_counts(self, shape):
        self.true_positives = self.add_variable(shape=shape, initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable(shape=shape, initializer="zeros", name="false_positives")
        self.false_negatives = self.add_variable(shape=shape, initializer="zeros", name="false_negatives")
        self._state_built = True

    def build_for(self, logits_shape):
        """Create per-class state for logits of this shape (needs a known last axis)."""
        if self._state_built:
            return
        num_classes = logits_shape[-1]
        if num_classes is None:
            raise ValueError(
                f"{type(self).__name__}(average={self.average!r}) keeps one count per class and "
                f"needs the number of classes: pass num_classes=..., or logits with a known last "
                f"axis. Got shape {tuple(logits_shape)}."
            )
        self.num_classes = int(num_classes)
        self._build_counts((self.num_classes,))

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = ops.convert_to_tensor(y_pred)
        self.build_for(y_pred.shape)
        if self.average not in ("micro", "samples") and y_pred.shape[-1] != self.num_classes:
            raise ValueError(
                f"{self.name}: expected logits with {self.num_classes} classes on the last axis, "
                f"got shape {tuple(y_pred.shape)}."
            )
        actual, predicted, weight = _prepare(y_true, y_pred, self.threshold, mask, sample_weight)
        hit = actual * predicted * weight
        false_alarm = (1.0 - actual) * predicted * weight
        miss = actual * (1.0 - predicted) * weight
        if self.average == "samples":
            row_tp = ops.sum(hit, axis=-1)
            row_fp = ops.sum(false_alarm, axis=-1)
            row_fn = ops.sum(miss, axis=-1)
            # A row counts with its weight; a row whose every entry is masked does not count.
            row_weight = ops.max(weight, axis=-1)
            scores = self._score(row_tp, row_fp, row_fn)
            self.score_sum.assign_add(ops.sum(scores * row_weight))
            self.row_weight.assign_add(ops.sum(row_weight))
            return
        if self.average == "micro":
            reduce_axes = None
        else:
            reduce_axes = tuple(range(len(y_pred.shape) - 1))
        self.true_positives.assign_add(ops.sum(hit, axis=reduce_axes))
        self.false_positives.assign_add(ops.sum(false_alarm, axis=reduce_axes))
        self.false_negatives.assign_add(ops.sum(miss, axis=reduce_axes))

    def _score(self, tp, fp, fn):
        raise NotImplementedError

    def result(self):
        if self.average == "samples":
            return _divide(self.score_sum, self.row_weight, 0.0)
        if not self._state_built:
            raise ValueError(f"{self.name}: result() called before any update_state().")
        scores = self._score(self.true_positives, self.false_positives, self.false_negatives)
        if self.average in ("micro", None):
            return scores
        if self.average == "macro":
            return ops.mean(scores)
        support = self.true_positives + self.false_negatives
        return _divide(ops.sum(scores * support), ops.sum(support), self.zero_division)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            average=self.average,
            num_classes=self.num_classes,
            zero_division=self.zero_division,
        )
        return config


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelF1Score(_MultilabelConfusionMetric):
    """F1 score of multi-label predictions `logits > threshold`.

    Matches `sklearn.metrics.f1_score(y_true, logits > threshold, average=...,
    zero_division=...)`.

    Args:
        threshold: decision threshold on the logits; 0.0 for this loss.
        average: "micro", "macro", "weighted", "samples" or None (per class).
        num_classes: number of classes, for the per-class averages; taken
            from the first batch when None.
        zero_division: the score of a class (or row) with no true and no
            predicted labels: 0.0 or 1.0.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelF1Score(average="micro")
    >>> metric.update_state(np.array([[1, 0, 1]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5
    """

    _metric_name = "f1"

    def _score(self, tp, fp, fn):
        return _divide(2.0 * tp, 2.0 * tp + fp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelPrecision(_MultilabelConfusionMetric):
    """Precision of multi-label predictions `logits > threshold`.

    Same arguments as `MultilabelF1Score`; matches
    `sklearn.metrics.precision_score`.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelPrecision(average="micro")
    >>> metric.update_state(np.array([[1, 0, 1]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5
    """

    _metric_name = "precision"

    def _score(self, tp, fp, fn):
        return _divide(tp, tp + fp, self.zero_division)


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelRecall(_MultilabelConfusionMetric):
    """Recall of multi-label predictions `logits > threshold`.

    Same arguments as `MultilabelF1Score`; matches
    `sklearn.metrics.recall_score`.

    Example:

    >>> import numpy as np
    >>> metric = MultilabelRecall(average="micro")
    >>> metric.update_state(np.array([[1, 0, 1]]), np.array([[2.0, 0.5, -1.0]]))
    >>> round(float(metric.result()), 4)
    0.5
    """

    _metric_name = "recall"

    def _score(self, tp, fp, fn):
        return _divide(tp, tp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="toolkit")
class SubsetAccuracy(keras.metrics.Metric):
    """Fraction of rows whose every (unmasked) label is predicted right.

    The strictest multi-label score (`sklearn.metrics.accuracy_score` on
    multi-label indicator arrays), unlike binary accuracy, which is close to
    1 for any model when labels are sparse.

    Example:

    >>> import numpy as np
    >>> metric = SubsetAccuracy()
    >>> metric.update_state(np.array([[1, 0], [0, 1]]), np.array([[3.0, -1.0], [2.0, 1.0]]))
    >>> float(metric.result())
    0.5
    """

    def __init__(self, threshold=0.0, name="subset_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype or "float32")
        self.threshold = _check_threshold(type(self).__name__, threshold)
        self.exact_rows = self.add_variable(shape=(), initializer="zeros", name="exact_rows")
        self.row_weight = self.add_variable(shape=(), initializer="zeros", name="row_weight")

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        actual, predicted, weight = _prepare(y_true, y_pred, self.threshold, mask, sample_weight)
        present = ops.cast(weight > 0, "float32")
        wrong = ops.max(ops.abs(actual - predicted) * present, axis=-1)
        row_weight = ops.max(weight, axis=-1)
        self.exact_rows.assign_add(ops.sum((1.0 - wrong) * row_weight))
        self.row_weight.assign_add(ops.sum(row_weight))

    def result(self):
        return _divide(self.exact_rows, self.row_weight, 0.0)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config["threshold"] = self.threshold
        return config
