"""Layers of the semi-pointer semi-tagging relation extractor.

- `PaddingMask`: int32 `[batch, seq]` mask from token ids (1 = real token).
- `SpanPointer`: per-token start/end logits, `[batch, 2, seq]` (one entity
  type) or `[batch, num_types, 2, seq]`, with padding positions set to `-inf`
  (the loss and the decoder both skip `-inf`).
- `SubjectGather`: the start and end token vectors of one subject per row,
  concatenated to `[batch, 2 * hidden]`.

All are registered as Keras serializable under the package "toolkit".
"""

import keras
from keras import ops

__all__ = ["PaddingMask", "SpanPointer", "SubjectGather"]


@keras.saving.register_keras_serializable(package="toolkit")
class PaddingMask(keras.layers.Layer):
    """int32 `[batch, seq]`: 1 where `token_ids != pad_id`, 0 at padding.

    Args:
        pad_id: the id of the padding token.
    """

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, token_ids):
        return ops.cast(ops.not_equal(token_ids, self.pad_id), "int32")

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="int32")

    def get_config(self):
        config = super().get_config()
        config["pad_id"] = self.pad_id
        return config


@keras.saving.register_keras_serializable(package="toolkit")
class SpanPointer(keras.layers.Layer):
    """Start and end logits per token, with the positions as the last axis.

    A `Dense(2 * num_types)` over the token vectors, rearranged so that the
    sequence positions are the classes of the multi-label loss:
    `[batch, 2, seq]` when `num_types` is None (one entity type: the subject
    head), `[batch, num_types, 2, seq]` otherwise (one row pair per
    predicate: the object head). Index 0 of the `2` axis is the start, 1 the
    end. Padding positions get `-inf`, so that the loss leaves them out and
    `logit > 0` never selects them. The logits are float32.

    Args:
        num_types: None, or the number of span types (predicates).
        labels: optional names of the types, stored with the model (the
            predicate list travels inside the `.keras` file).
        kernel_initializer: of the dense layer.

    Call arguments:
        sequence: `[batch, seq, hidden]`.
        padding_mask: `[batch, seq]`, nonzero at real tokens.
    """

    def __init__(self, num_types=None, labels=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if num_types is not None and (isinstance(num_types, bool) or int(num_types) < 1):
            raise ValueError(f"num_types must be None or a positive integer; got {num_types!r}.")
        self.num_types = None if num_types is None else int(num_types)
        self.labels = None if labels is None else [str(label) for label in labels]
        if self.labels is not None and len(self.labels) != (self.num_types or 1):
            raise ValueError(f"labels has {len(self.labels)} names but num_types is {self.num_types}.")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = keras.layers.Dense(
            2 * (self.num_types or 1),
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, sequence_shape, padding_mask_shape=None):
        self.dense.build(sequence_shape)
        self.built = True

    def call(self, sequence, padding_mask=None):
        logits = ops.cast(self.dense(sequence), "float32")  # [batch, seq, 2 * types]
        seq_len = ops.shape(logits)[1]
        if self.num_types is None:
            logits = ops.transpose(logits, (0, 2, 1))  # [batch, 2, seq]
        else:
            logits = ops.reshape(logits, (-1, seq_len, self.num_types, 2))
            logits = ops.transpose(logits, (0, 2, 3, 1))  # [batch, types, 2, seq]
        if padding_mask is not None:
            keep = ops.cast(padding_mask, "bool")
            for _ in range(len(logits.shape) - 2):
                keep = ops.expand_dims(keep, 1)
            logits = ops.where(keep, logits, ops.full_like(logits, -float("inf")))
        return logits

    def compute_output_spec(self, sequence, padding_mask=None):
        batch, seq_len = sequence.shape[0], sequence.shape[1]
        shape = (batch, 2, seq_len) if self.num_types is None else (batch, self.num_types, 2, seq_len)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_types=self.num_types,
            labels=self.labels,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="toolkit")
class SubjectGather(keras.layers.Layer):
    """The vectors of a subject's first and last tokens, concatenated.

    Call arguments:
        sequence: `[batch, seq, hidden]`.
        spans: int `[batch, 2]`, the inclusive token span `(start, end)` of
            one subject per row.

    Returns `[batch, 2 * hidden]`: the start token's vector, then the end's.
    """

    def call(self, sequence, spans):
        hidden = sequence.shape[-1]
        indices = ops.expand_dims(ops.cast(spans, "int32"), -1)  # [batch, 2, 1]
        picked = ops.take_along_axis(sequence, indices, axis=1)  # [batch, 2, hidden]
        return ops.reshape(picked, (-1, 2 * hidden))

    def compute_output_spec(self, sequence, spans):
        return keras.KerasTensor((sequence.shape[0], 2 * sequence.shape[-1]), dtype=sequence.dtype)
