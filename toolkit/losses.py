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

from toolkit import _formulas

__all__ = [
    "multilabel_categorical_crossentropy",
    "sparse_multilabel_categorical_crossentropy",
    "MultilabelCategoricalCrossentropy",
    "SparseMultilabelCategoricalCrossentropy",
]


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
    return _formulas.multilabel_categorical_crossentropy(keras.ops, y_true, y_pred, mask=mask)


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
    return _formulas.sparse_multilabel_categorical_crossentropy(keras.ops, y_true, y_pred, mask_zero=mask_zero)


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
        return {**super().get_config(), "mask_zero": self.mask_zero}
