"""Multi-label categorical crossentropy (Su, 2020; published as ZLPR).

For raw logits `s` and the set `P` of target classes of a row:

    loss = log(1 + sum_{j not in P} exp(s_j)) + log(1 + sum_{i in P} exp(-s_i))

Every target score is compared with every non-target score and with the
threshold 0, so the decision rule is simply `s > 0`: no class weights and no
threshold to tune. The loss is reduced over the last axis only; any leading
shape works (`[batch, classes]`, `[batch, heads, seq_len]`, ...).

Variants:

- `multilabel_categorical_crossentropy(y_true, y_pred, mask=None)`: multi-hot
  targets, or soft targets `t` in [0, 1], for which the loss is
  `log(1 + sum (1 - t_j) exp(s_j)) + log(1 + sum t_i exp(-s_i))` (the same
  value as the hard loss when every `t` is 0 or 1). Logits equal to `-inf`
  and entries where `mask` is False drop out of both sums.
- `sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False)`:
  `y_true` holds the indices of the target classes, padded with -1 (or with 0
  when `mask_zero=True`, in which case class 0 is reserved and never scored).

Pass logits, never probabilities: do not put a sigmoid or softmax on the
model's output. Half-precision inputs are computed in float32, and the
formulation never forms `exp` of an unshifted logit, so logits of 1e4 give
exact values and gradients.
"""

import keras
from keras import ops

__all__ = [
    "multilabel_categorical_crossentropy",
    "sparse_multilabel_categorical_crossentropy",
    "MultilabelCategoricalCrossentropy",
    "SparseMultilabelCategoricalCrossentropy",
]


def _compute_dtype(x):
    """float32 for half precision inputs, the input's own float type otherwise."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16") or not dtype.startswith("float"):
        return "float32"
    return dtype


def _log1p_sum_exp(exponents, axis=-1):
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


def _log_weight(weight, present):
    """`log(weight)` where `present` (which must imply `weight > 0`), -inf elsewhere.

    The -inf comes from log(0), so a single `where` does. Its derivative there
    is infinite and meets a zero upstream gradient (0 * inf = NaN), but only on
    the branch that `where` discards: the gradient with respect to the targets
    stays finite.
    """
    return ops.log(ops.where(present, weight, 0.0))


def _usable(y_pred, mask):
    """True where a class takes part in the loss: not masked, logit not -inf.

    NaN logits stay usable, so that they show in the loss instead of vanishing.
    """
    usable = ops.not_equal(y_pred, float("-inf"))
    if mask is not None:
        usable = ops.logical_and(usable, ops.cast(mask, "bool"))
    return usable


def multilabel_categorical_crossentropy(y_true, y_pred, mask=None):
    """Multi-label categorical crossentropy over the last axis of raw logits.

    Args:
        y_true: multi-hot targets, or soft targets in [0, 1], the shape of
            `y_pred`.
        y_pred: logits (no sigmoid), shape `[..., num_classes]`.
        mask: optional boolean tensor broadcastable to `y_pred`; False entries
            (padding, ignored classes) take no part in the loss. Logits equal
            to `-inf` are masked the same way. A row with every entry masked
            has loss 0.

    Returns:
        The loss per row, shape `y_pred.shape[:-1]`, in float32 for half
        precision logits.

    Example:

    >>> import numpy as np
    >>> y_true = np.array([[1.0, 0.0, 1.0]])
    >>> logits = np.array([[3.0, -2.0, 0.5]])
    >>> float(multilabel_categorical_crossentropy(y_true, logits)[0])  # doctest: +ELLIPSIS
    0.63...
    """
    y_pred = ops.convert_to_tensor(y_pred)
    dtype = _compute_dtype(y_pred)
    y_pred = ops.cast(y_pred, dtype)
    y_true = ops.cast(ops.convert_to_tensor(y_true), dtype)
    usable = _usable(y_pred, mask)
    # Masked logits become 0 so that -logits stays finite (-(-inf) + -inf is NaN).
    logits = ops.where(usable, y_pred, 0.0)
    # Each weight moves into the exponent, (1 - t) e^s = e^(s + log(1 - t)), and
    # a class outside a sum (masked, or t == 1 for the negatives, t == 0 for
    # the positives) gets the exponent -inf. The speed of the loss is set by
    # its elementwise passes over [batch, classes]; this form needs about half
    # as many as masking weights and exponentials one by one
    # (benchmarks/loss_benchmark.py). `t < 1` is exactly `1 - t > 0` in floats.
    log_negative = _log_weight(1.0 - y_true, ops.logical_and(usable, y_true < 1.0))
    log_positive = _log_weight(y_true, ops.logical_and(usable, y_true > 0.0))
    return _log1p_sum_exp(logits + log_negative) + _log1p_sum_exp(log_positive - logits)


def _flatten_rows(tensor, trailing):
    """Reshape `[..., trailing]` to `[rows, trailing]`."""
    return ops.reshape(tensor, (-1, trailing))


def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Multi-label categorical crossentropy with targets given as class indices.

    For label spaces far too large for multi-hot targets: `y_true` holds, per
    row, the indices of the target classes, padded to a common length with
    -1. With `mask_zero=True`, index 0 is the padding instead and class 0 is
    reserved: it is never scored, as in bert4keras. An index listed twice
    counts once, and a row with no targets, or with every class a target, is
    handled exactly (no `log(1 - exp(.))` cancellation).

    Args:
        y_true: integer tensor `[..., max_targets]`.
        y_pred: logits `[..., num_classes]` with the same leading shape.
        mask_zero: whether index 0 is padding and class 0 is left out.

    Returns:
        The loss per row, shape `y_pred.shape[:-1]`.

    Example:

    >>> import numpy as np
    >>> logits = np.array([[3.0, -2.0, 0.5]])
    >>> targets = np.array([[0, 2, -1]])  # classes 0 and 2, padded with -1
    >>> float(sparse_multilabel_categorical_crossentropy(targets, logits)[0])  # doctest: +ELLIPSIS
    0.63...
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if not keras.backend.standardize_dtype(y_true.dtype).startswith(("int", "uint")):
        y_true = ops.cast(y_true, "int32")
    dtype = _compute_dtype(y_pred)
    leading_shape = ops.shape(y_pred)[:-1]
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        raise ValueError(
            "sparse_multilabel_categorical_crossentropy needs the number of classes "
            f"(the last axis of y_pred) to be known; got y_pred of shape {y_pred.shape}."
        )
    logits = _flatten_rows(ops.cast(y_pred, dtype), num_classes)
    indices = _flatten_rows(ops.cast(y_true, "int32"), ops.shape(y_true)[-1])

    first_valid = 1 if mask_zero else 0
    valid_index = ops.logical_and(indices >= first_valid, indices < num_classes)
    # An index listed twice counts once: sort, then drop repeats of the previous one.
    ordered = ops.sort(ops.where(valid_index, indices, -ops.ones_like(indices)), axis=-1)
    repeat = ops.concatenate(
        [ops.zeros_like(ordered[:, :1], dtype="bool"), ordered[:, 1:] == ordered[:, :-1]], axis=-1
    )
    valid_index = ops.logical_and(ordered >= first_valid, ops.logical_not(repeat))
    safe_index = ops.where(valid_index, ordered, ops.zeros_like(ordered))

    rows = ops.shape(logits)[0]
    row_ids = ops.broadcast_to(ops.expand_dims(ops.arange(rows, dtype="int32"), -1), ops.shape(safe_index))
    scatter_at = ops.stack([ops.reshape(row_ids, (-1,)), ops.reshape(safe_index, (-1,))], axis=-1)
    is_target = ops.scatter(
        scatter_at, ops.reshape(ops.cast(valid_index, dtype), (-1,)), (rows, num_classes)
    )

    usable = _usable(logits, None)
    if mask_zero:
        class_ids = ops.arange(num_classes, dtype="int32")
        usable = ops.logical_and(usable, ops.expand_dims(class_ids > 0, 0))
    # The weights are all 0 or 1 here, so a `where` to -inf is the whole mask.
    is_negative = ops.logical_and(usable, ops.equal(is_target, 0.0))
    negative = _log1p_sum_exp(ops.where(is_negative, logits, float("-inf")))

    target_logits = ops.take_along_axis(logits, safe_index, axis=-1)
    is_positive = ops.logical_and(valid_index, ops.take_along_axis(usable, safe_index, axis=-1))
    positive = _log1p_sum_exp(ops.where(is_positive, -target_logits, float("-inf")))
    return ops.reshape(negative + positive, leading_shape)


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelCategoricalCrossentropy(keras.losses.Loss):
    """Keras loss wrapping `multilabel_categorical_crossentropy`.

    Targets are multi-hot or soft in [0, 1]; logits of `-inf` are masked out.
    The model must output raw logits: predict a class when its logit is > 0.

    Example:

    ```python
    model.compile(optimizer="adam", loss=MultilabelCategoricalCrossentropy())
    ```
    """

    def __init__(self, reduction="sum_over_batch_size", name="multilabel_categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return multilabel_categorical_crossentropy(y_true, y_pred)

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="toolkit")
class SparseMultilabelCategoricalCrossentropy(keras.losses.Loss):
    """Keras loss wrapping `sparse_multilabel_categorical_crossentropy`.

    Args:
        mask_zero: index 0 in the targets is padding and class 0 is reserved.

    Example:

    ```python
    # y: int array [batch, max_labels] of class ids, padded with -1
    model.compile(optimizer="adam", loss=SparseMultilabelCategoricalCrossentropy())
    ```
    """

    def __init__(
        self,
        mask_zero=False,
        reduction="sum_over_batch_size",
        name="sparse_multilabel_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mask_zero = bool(mask_zero)

    def call(self, y_true, y_pred):
        return sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=self.mask_zero)

    def get_config(self):
        config = super().get_config()
        config["mask_zero"] = self.mask_zero
        return config
