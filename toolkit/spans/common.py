"""What GlobalPointer and EfficientGlobalPointer share: rotary position embedding, the span mask,
the base layer (arguments, checks, serialisation), and `FlattenSpans` for the sparse loss."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["FlattenSpans", "SpanScorer", "rotary_embedding", "span_mask"]


def rotary_embedding(x, positions=None):
    """RoPE on the last axis of `x` (`[batch, seq, ..., dim]`, `dim` even), as bert4keras applies it.

    Pairs `(x[2i], x[2i+1])` are rotated by the angle `p * 10000^(-2i/dim)` of
    position `p` (the axis after batch). The rotated pairs come back with the
    even members first, then the odd ones (`(x'[0], x'[2], ..., x'[1], x'[3],
    ...)`): the same vector in another order, which leaves every inner product
    of two rotated vectors (all a span score uses) unchanged and needs no
    reshape, so the layer builds with unknown batch and sequence sizes.
    """
    x = ops.convert_to_tensor(x)
    dim = x.shape[-1]
    if dim is None or dim % 2:
        raise ValueError(f"rotary_embedding needs an even, known last axis; got shape {x.shape}.")
    seq_len = ops.shape(x)[1]
    if positions is None:
        positions = ops.arange(seq_len, dtype="float32")
    frequencies = ops.power(10000.0, -2.0 * ops.arange(dim // 2, dtype="float32") / dim)
    angles = ops.einsum("n,d->nd", ops.cast(positions, "float32"), frequencies)  # [seq, dim / 2]
    # [1, seq, 1..., dim / 2]: broadcast over batch and the axes between seq and dim.
    cos, sin = ops.cos(angles), ops.sin(angles)
    for _ in range(len(x.shape) - 3):
        cos, sin = ops.expand_dims(cos, 1), ops.expand_dims(sin, 1)
    cos, sin = ops.cast(cos[None], x.dtype), ops.cast(sin[None], x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return ops.concatenate([even * cos - odd * sin, odd * cos + even * sin], axis=-1)


def span_mask(scores, mask, tril_mask):
    """`scores` with padding rows/columns and (with `tril_mask`) `start > end` set to -inf."""
    seq_len = ops.shape(scores)[-1]
    keep = None
    if mask is not None:
        mask = ops.cast(mask, "bool")
        keep = ops.logical_and(mask[:, None, :, None], mask[:, None, None, :])
    if tril_mask:
        upper = ops.greater_equal(
            ops.arange(seq_len)[None, :], ops.arange(seq_len)[:, None]
        )  # [seq, seq]: end >= start
        upper = upper[None, None]
        keep = upper if keep is None else ops.logical_and(keep, upper)
    if keep is None:
        return scores
    return ops.where(keep, scores, ops.cast(float("-inf"), scores.dtype))


class SpanScorer(keras.layers.Layer):
    def __init__(self, heads, head_size, *, rope=True, tril_mask=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("heads", heads), ("head_size", head_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if rope and head_size % 2:
            raise ValueError(f"head_size must be even for rotary position embedding; got {head_size}.")
        self.heads = heads
        self.head_size = head_size
        self.rope = bool(rope)
        self.tril_mask = bool(tril_mask)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.heads, input_shape[1], input_shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads,
            "head_size": self.head_size,
            "rope": self.rope,
            "tril_mask": self.tril_mask,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }

    def _ends(self, x):
        """`(start, end)` vectors with RoPE applied, `[batch, seq, ..., head_size]`."""
        start, end = x[..., : self.head_size], x[..., self.head_size :]
        if self.rope:
            start, end = rotary_embedding(start), rotary_embedding(end)
        return start, end


@keras.saving.register_keras_serializable(package="toolkit")
class FlattenSpans(keras.layers.Layer):
    """`[batch, heads, seq, seq]` span scores as `[batch, heads, seq * seq]`, the classes of the sparse loss.

    Span `(start, end)` becomes class `start * seq + end` (`toolkit.spans.targets`).
    """

    def call(self, scores):
        shape = ops.shape(scores)
        return ops.reshape(scores, (-1, shape[1], shape[2] * shape[3]))

    def compute_output_shape(self, input_shape):
        batch, heads, rows, columns = input_shape
        return (batch, heads, None if rows is None or columns is None else rows * columns)
