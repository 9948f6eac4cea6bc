"""The math of the loss and the metrics, once, for Keras 3 and for tf-keras.

Every function takes as its first argument `ops`, the namespace of tensor
functions to compute with: `keras.ops` for Keras 3 (`toolkit.losses`,
`toolkit.metrics`), or `toolkit.compat._tf_ops`, the same names written with
TensorFlow, for tf-keras (`toolkit.compat.bert4keras`, whose process must
never import Keras 3). This module imports neither Keras nor TensorFlow, so
both can import it.

The metric classes are shared the same way: `ConfusionMetric` and
`SubsetAccuracyMetric` hold everything but the framework, and each
framework's public class derives from one of them and from its own `Metric`,
naming its `ops` in `_ops`. The loss classes stay with their framework: they
only call the loss functions.

The functions use these names of `ops`, with the arguments of `keras.ops`:
`abs`, `arange`, `broadcast_to`, `cast`, `concatenate`, `convert_to_tensor`,
`dtype`, `equal`, `exp`, `expand_dims`, `expm1`, `full_like`, `log`, `log1p`,
`logical_and`, `logical_not`, `max`, `maximum`, `mean`, `not_equal`,
`ones_like`, `reshape`, `scatter`, `shape`, `sort`, `squeeze`, `stack`,
`stop_gradient`, `sum`, `take_along_axis`, `where`, `zeros`, `zeros_like`.
"""

import contextlib
import math
import numbers

# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


def compute_dtype(ops, x):
    """float32 for half precision and non-float inputs, the input's own float type otherwise."""
    dtype = ops.dtype(x)
    if dtype in ("float16", "bfloat16") or not dtype.startswith("float"):
        return "float32"
    return dtype


def log1p_sum_exp(ops, exponents, axis=-1):
    """`log(1 + sum(exp(exponents)))` over `axis`, stable for any finite exponent.

    Entries equal to -inf drop out (`exp(-inf)` is 0, and so is their gradient),
    which is how masked classes, and the targets' weights, enter: see
    `multilabel_categorical_crossentropy`. The maximum that is subtracted is
    held constant for the gradient (the value does not depend on it), which
    keeps the gradient exact where `logsumexp`'s own gradient loses digits for
    large `|x|`.
    """
    # The "1 +" term is exp(0): including 0 in the maximum keeps the shift >= 0
    # and finite even when every entry is -inf.
    peak = ops.stop_gradient(ops.maximum(ops.max(exponents, axis=axis, keepdims=True), 0.0))
    total = ops.sum(ops.exp(exponents - peak), axis=axis)
    peak = ops.squeeze(peak, axis)
    # peak + log(exp(-peak) + total), written with log1p/expm1 so that a loss
    # near 0 (peak == 0, tiny total) keeps its digits.
    return peak + ops.log1p(ops.expm1(-peak) + total)


def log_weight(ops, weight, present):
    """`log(weight)` where `present` (which must imply `weight > 0`), -inf elsewhere.

    The -inf comes from log(0), so a single `where` does. Its derivative there
    is infinite and meets a zero upstream gradient (0 * inf = NaN), but only on
    the branch that `where` discards: the gradient with respect to the targets
    stays finite.
    """
    return ops.log(ops.where(present, weight, 0.0))


def usable_classes(ops, y_pred, mask):
    """True where a class takes part in the loss: not masked, logit not -inf.

    NaN logits stay usable, so that they show in the loss instead of vanishing.
    """
    usable = ops.not_equal(y_pred, float("-inf"))
    if mask is not None:
        usable = ops.logical_and(usable, ops.cast(mask, "bool"))
    return usable


def multilabel_categorical_crossentropy(ops, y_true, y_pred, mask=None):
    """The dense (multi-hot or soft targets) loss per row; see `toolkit.losses`."""
    y_pred = ops.convert_to_tensor(y_pred)
    dtype = compute_dtype(ops, y_pred)
    y_pred = ops.cast(y_pred, dtype)
    y_true = ops.cast(ops.convert_to_tensor(y_true), dtype)
    usable = usable_classes(ops, y_pred, mask)
    # Masked logits become 0 so that -logits stays finite (-(-inf) + -inf is NaN).
    logits = ops.where(usable, y_pred, 0.0)
    # Each weight moves into the exponent, (1 - t) e^s = e^(s + log(1 - t)), and
    # a class outside a sum (masked, or t == 1 for the negatives, t == 0 for
    # the positives) gets the exponent -inf. The speed of the loss is set by
    # its elementwise passes over [batch, classes]; this form needs about half
    # as many as masking weights and exponentials one by one
    # (benchmarks/loss_benchmark.py). `t < 1` is exactly `1 - t > 0` in floats.
    log_negative = log_weight(ops, 1.0 - y_true, ops.logical_and(usable, y_true < 1.0))
    log_positive = log_weight(ops, y_true, ops.logical_and(usable, y_true > 0.0))
    return log1p_sum_exp(ops, logits + log_negative) + log1p_sum_exp(ops, log_positive - logits)


def sparse_multilabel_categorical_crossentropy(ops, y_true, y_pred, mask_zero=False):
    """The loss per row for targets given as class indices; see `toolkit.losses`."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if not ops.dtype(y_true).startswith(("int", "uint")):
        y_true = ops.cast(y_true, "int32")
    dtype = compute_dtype(ops, y_pred)
    leading_shape = ops.shape(y_pred)[:-1]
    # Known when the graph is built for it; else (a traced graph whose sequence length, and so
    # GlobalPointer's seq * seq classes, changes from batch to batch) read at run time.
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        num_classes = ops.shape(y_pred)[-1]
    # Rows: [..., num_classes] -> [rows, num_classes], [..., max_targets] -> [rows, max_targets].
    logits = ops.reshape(ops.cast(y_pred, dtype), (-1, num_classes))
    indices = ops.reshape(ops.cast(y_true, "int32"), (-1, ops.shape(y_true)[-1]))

    first_valid = 1 if mask_zero else 0
    valid_index = ops.logical_and(indices >= first_valid, indices < num_classes)
    # An index listed twice counts once: sort, then drop repeats of the previous one.
    ordered = ops.sort(ops.where(valid_index, indices, -ops.ones_like(indices)), axis=-1)
    repeat = ops.concatenate([ops.zeros_like(ordered[:, :1], dtype="bool"), ordered[:, 1:] == ordered[:, :-1]], axis=-1)
    valid_index = ops.logical_and(ordered >= first_valid, ops.logical_not(repeat))
    safe_index = ops.where(valid_index, ordered, ops.zeros_like(ordered))

    rows = ops.shape(logits)[0]
    row_ids = ops.broadcast_to(ops.expand_dims(ops.arange(rows, dtype="int32"), -1), ops.shape(safe_index))
    scatter_at = ops.stack([ops.reshape(row_ids, (-1,)), ops.reshape(safe_index, (-1,))], axis=-1)
    is_target = ops.scatter(scatter_at, ops.reshape(ops.cast(valid_index, dtype), (-1,)), (rows, num_classes))

    usable = usable_classes(ops, logits, None)
    if mask_zero:
        class_ids = ops.arange(num_classes, dtype="int32")
        usable = ops.logical_and(usable, ops.expand_dims(class_ids > 0, 0))
    # The weights are all 0 or 1 here, so a `where` to -inf is the whole mask.
    is_negative = ops.logical_and(usable, ops.equal(is_target, 0.0))
    negative = log1p_sum_exp(ops, ops.where(is_negative, logits, float("-inf")))

    target_logits = ops.take_along_axis(logits, safe_index, axis=-1)
    is_positive = ops.logical_and(valid_index, ops.take_along_axis(usable, safe_index, axis=-1))
    positive = log1p_sum_exp(ops, ops.where(is_positive, -target_logits, float("-inf")))
    return ops.reshape(negative + positive, leading_shape)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------

AVERAGES = ("micro", "macro", "weighted", "samples", None)
COUNTS = ("true_positives", "false_positives", "false_negatives")
SAMPLES_STATE = ("score_sum", "row_weight")


def check_threshold(owner, threshold):
    """The decision threshold as a float; `ValueError` unless it is a finite number."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(
            f"The 'threshold' argument of {owner} must be a finite number on the logit scale "
            f"(0.0 for this loss). Got {threshold!r} instead."
        )
    return float(threshold)


def confusion_state_shapes(average, num_classes):
    """The state an F1, precision or recall metric keeps: `{name: shape}`.

    Two totals over the rows for `"samples"`, one count of each kind for
    `"micro"`, one per class otherwise; None while the number of classes is
    not known yet.
    """
    if average == "samples":
        return dict.fromkeys(SAMPLES_STATE, ())
    if average == "micro":
        return dict.fromkeys(COUNTS, ())
    if num_classes is None:
        return None
    return dict.fromkeys(COUNTS, (num_classes,))


def decisions_and_weights(ops, y_true, y_pred, threshold, mask, sample_weight):
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


def divide(ops, numerator, denominator, zero_division):
    """`numerator / denominator`, and `zero_division` where the denominator is 0."""
    numerator = ops.convert_to_tensor(numerator)
    denominator = ops.convert_to_tensor(denominator)
    safe = ops.where(denominator > 0, denominator, ops.ones_like(denominator))
    return ops.where(denominator > 0, numerator / safe, ops.full_like(numerator, zero_division))


def score(ops, metric, true_positives, false_positives, false_negatives, zero_division):
    """F1 (`metric="f1"`), precision or recall from confusion counts."""
    if metric == "f1":
        numerator = 2.0 * true_positives
        denominator = numerator + false_positives + false_negatives
    elif metric == "precision":
        numerator, denominator = true_positives, true_positives + false_positives
    elif metric == "recall":
        numerator, denominator = true_positives, true_positives + false_negatives
    else:
        raise ValueError(f"Unknown metric {metric!r}: expected 'f1', 'precision' or 'recall'.")
    return divide(ops, numerator, denominator, zero_division)


def confusion_increments(ops, metric, average, zero_division, y_true, y_pred, threshold, mask, sample_weight):
    """What one batch adds to each state of `confusion_state_shapes`: `{name: tensor}`."""
    actual, predicted, weight = decisions_and_weights(ops, y_true, y_pred, threshold, mask, sample_weight)
    hit = actual * predicted * weight
    false_alarm = (1.0 - actual) * predicted * weight
    miss = actual * (1.0 - predicted) * weight
    if average == "samples":
        row_scores = score(
            ops, metric, ops.sum(hit, axis=-1), ops.sum(false_alarm, axis=-1), ops.sum(miss, axis=-1), zero_division
        )
        # A row counts with its weight; a row whose every entry is masked does not count.
        row_weight = ops.max(weight, axis=-1)
        return {"score_sum": ops.sum(row_scores * row_weight), "row_weight": ops.sum(row_weight)}
    reduce_axes = None if average == "micro" else tuple(range(len(hit.shape) - 1))
    return {name: ops.sum(count, axis=reduce_axes) for name, count in zip(COUNTS, (hit, false_alarm, miss))}


def confusion_result(ops, metric, average, zero_division, state):
    """The metric's value from its state, `{name: tensor or variable}`."""
    if average == "samples":
        return divide(ops, state["score_sum"], state["row_weight"], 0.0)
    true_positives, false_positives, false_negatives = (ops.convert_to_tensor(state[name]) for name in COUNTS)
    scores = score(ops, metric, true_positives, false_positives, false_negatives, zero_division)
    if average in ("micro", None):
        return scores
    if average == "macro":
        return ops.mean(scores)
    support = true_positives + false_negatives
    return divide(ops, ops.sum(scores * support), ops.sum(support), zero_division)


def subset_accuracy_increments(ops, y_true, y_pred, threshold, mask, sample_weight):
    """What one batch adds to the exactly right rows and to the row weight: `{name: tensor}`."""
    actual, predicted, weight = decisions_and_weights(ops, y_true, y_pred, threshold, mask, sample_weight)
    present = ops.cast(weight > 0, "float32")
    wrong = ops.max(ops.abs(actual - predicted) * present, axis=-1)
    row_weight = ops.max(weight, axis=-1)
    return {"exact_rows": ops.sum((1.0 - wrong) * row_weight), "row_weight": ops.sum(row_weight)}


# --------------------------------------------------------------------------
# Metric classes, less their framework
# --------------------------------------------------------------------------


class _Metric:
    """The part of a metric class shared by both frameworks' metrics.

    A framework's metric class derives from a subclass of this one first and
    from its `Metric` second (`keras.metrics.Metric`,
    `tf_keras.metrics.Metric`), and sets `_ops`. State variables are made with
    `add_weight(name=..., shape=..., initializer=...)`, which both frameworks'
    metrics have.
    """

    _ops = None

    def reset_state(self):
        for variable in self.variables:
            variable.assign(self._ops.zeros(variable.shape, dtype=variable.dtype))


class ConfusionMetric(_Metric):
    """The F1, precision and recall metrics, less their framework; a subclass sets `_metric_name`.

    Per-class counts are made on the first update when `num_classes` is not
    given, inside `_state_scope()` (tf-keras makes them in its init scope).
    """

    _metric_name = None  # "f1", "precision" or "recall"

    def __init__(self, threshold=0.0, average="micro", num_classes=None, zero_division=0.0, name=None, dtype=None):
        owner = type(self).__name__
        if average not in AVERAGES:
            raise ValueError(
                f"The 'average' argument of {owner} must be one of 'micro', 'macro', 'weighted', "
                f"'samples' or None. Got {average!r} instead."
            )
        if isinstance(zero_division, bool) or zero_division not in (0, 1):
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
        self.threshold = check_threshold(owner, threshold)
        self.average = average
        self.num_classes = None if num_classes is None else int(num_classes)
        self.zero_division = float(zero_division)
        self._state_names = None  # until the number of classes is known
        shapes = confusion_state_shapes(average, self.num_classes)
        if shapes is not None:
            self._add_state(shapes)

    def _state_scope(self):
        """The context in which state made on the first update is created."""
        return contextlib.nullcontext()

    def _add_state(self, shapes):
        for state_name, shape in shapes.items():
            setattr(self, state_name, self.add_weight(name=state_name, shape=shape, initializer="zeros"))
        self._state_names = tuple(shapes)

    def build_for(self, logits_shape):
        """Create per-class state for logits of this shape (needs a known last axis)."""
        if self._state_names is not None:
            return
        num_classes = logits_shape[-1]
        if num_classes is None:
            raise ValueError(
                f"{type(self).__name__}(average={self.average!r}) keeps one count per class and "
                f"needs the number of classes: pass num_classes=..., or logits with a known last "
                f"axis. Got shape {tuple(logits_shape)}."
            )
        self.num_classes = int(num_classes)
        with self._state_scope():
            self._add_state(confusion_state_shapes(self.average, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = self._ops.convert_to_tensor(y_pred)
        self.build_for(y_pred.shape)
        if self.average not in ("micro", "samples") and y_pred.shape[-1] != self.num_classes:
            raise ValueError(
                f"{self.name}: expected logits with {self.num_classes} classes on the last axis, "
                f"got shape {tuple(y_pred.shape)}."
            )
        increments = confusion_increments(
            self._ops,
            self._metric_name,
            self.average,
            self.zero_division,
            y_true,
            y_pred,
            self.threshold,
            mask,
            sample_weight,
        )
        for state_name, increment in increments.items():
            getattr(self, state_name).assign_add(increment)

    def result(self):
        if self._state_names is None:
            raise ValueError(f"{self.name}: result() called before any update_state().")
        state = {state_name: getattr(self, state_name) for state_name in self._state_names}
        return confusion_result(self._ops, self._metric_name, self.average, self.zero_division, state)

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            average=self.average,
            num_classes=self.num_classes,
            zero_division=self.zero_division,
        )
        return config


class SubsetAccuracyMetric(_Metric):
    """The subset accuracy metric, less its framework."""

    def __init__(self, threshold=0.0, name="subset_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype or "float32")
        self.threshold = check_threshold(type(self).__name__, threshold)
        self.exact_rows = self.add_weight(name="exact_rows", shape=(), initializer="zeros")
        self.row_weight = self.add_weight(name="row_weight", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        increments = subset_accuracy_increments(self._ops, y_true, y_pred, self.threshold, mask, sample_weight)
        self.exact_rows.assign_add(increments["exact_rows"])
        self.row_weight.assign_add(increments["row_weight"])

    def result(self):
        return divide(self._ops, self.exact_rows, self.row_weight, 0.0)

    def get_config(self):
        config = super().get_config()
        config["threshold"] = self.threshold
        return config
