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

import keras
from keras import ops

from toolkit import _formulas

__all__ = [
    "MultilabelF1Score",
    "MultilabelPrecision",
    "MultilabelRecall",
    "SubsetAccuracy",
    "AVERAGES",
]

AVERAGES = _formulas.AVERAGES


class _MultilabelConfusionMetric(_formulas.ConfusionMetric, keras.metrics.Metric):
    """The F1, precision and recall metrics in Keras 3: `toolkit._formulas.ConfusionMetric` on `keras.ops`."""

    _ops = ops


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


@keras.saving.register_keras_serializable(package="toolkit")
class SubsetAccuracy(_formulas.SubsetAccuracyMetric, keras.metrics.Metric):
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

    _ops = ops
