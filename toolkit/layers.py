"""Layers: a metrics layer for multi-input training graphs, and conditional layer norm."""

import keras
from keras import ops

from toolkit.losses import multilabel_categorical_crossentropy
from toolkit.metrics import MultilabelF1Score, MultilabelPrecision, MultilabelRecall, SubsetAccuracy

__all__ = ["MultilabelMetrics", "ConditionalLayerNormalization", "SequencePooling", "metric_from_name"]

_SCORES = {"f1": MultilabelF1Score, "precision": MultilabelPrecision, "recall": MultilabelRecall}


def metric_from_name(name, threshold=0.0, prefix=""):
    """Build a metric from a short name: `"micro_f1"`, `"macro_recall"`, `"subset_accuracy"`...

    `<average>_<score>` with average in micro, macro, weighted, samples and
    score in f1, precision, recall; a bare score ("f1") is per class. The
    metric is named `prefix + name`.
    """
    if name == "subset_accuracy":
        return SubsetAccuracy(threshold=threshold, name=prefix + name)
    average, _, score = name.rpartition("_")
    if score not in _SCORES or average not in ("", "micro", "macro", "weighted", "samples"):
        known = ", ".join(
            ["subset_accuracy"]
            + [f"{a}_{s}" for a in ("micro", "macro", "weighted", "samples") for s in _SCORES]
            + list(_SCORES)
        )
        raise ValueError(f"Unknown metric name {name!r}. Expected one of: {known}.")
    return _SCORES[score](threshold=threshold, average=average or None, name=prefix + name)


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelMetrics(keras.layers.Layer):
    """Passes logits through unchanged and reports multi-label metrics on them.

    Sits on a logits tensor inside a model whose targets are model inputs (the
    bert4keras way of building a multi-input training graph). The metrics
    appear in `fit` / `evaluate` logs and in `History` without any
    `compile(metrics=...)` wiring. With `loss_weight` set, the layer also adds
    `loss_weight * mean(multilabel_categorical_crossentropy)` to the model's
    losses, so `compile(loss=None)` trains the model.

    Works on the TensorFlow and PyTorch backends. The JAX backend's training
    step is stateless and cannot carry metric updates made inside a layer:
    there, pass `toolkit.metrics` objects to `compile(metrics=...)` and feed
    the targets as `y` (the layer raises an error saying so).

    Args:
        metrics: metric names (see `metric_from_name`).
        threshold: decision threshold on the logits (0.0 for this loss).
        prefix: prepended to every metric name, to tell several heads apart.
        loss_weight: if not None, also add the weighted masked loss.

    Call arguments:
        logits: `[..., num_classes]` logits.
        labels: multi-hot (or soft) targets of the same shape.
        label_mask: optional boolean mask broadcastable to the logits
            (padding positions); masked entries count in neither the loss nor
            the metrics.

    Example:

    ```python
    token_ids = keras.Input((None,), dtype="int32")
    labels = keras.Input((None,))
    logits = keras.layers.Dense(1)(keras.layers.Embedding(100, 16)(token_ids))[..., 0]
    logits = MultilabelMetrics(["micro_f1"], loss_weight=1.0)(logits, labels, token_ids > 0)
    model = keras.Model([token_ids, labels], logits)
    model.compile(optimizer="adam")
    model.fit([ids, tags], epochs=2)  # logs: loss, micro_f1
    ```
    """

    def __init__(self, metrics=("micro_f1",), threshold=0.0, prefix="", loss_weight=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(metrics, str):
            metrics = [metrics]
        self.metric_names = list(metrics)
        self.threshold = float(threshold)
        self.prefix = prefix
        self.loss_weight = None if loss_weight is None else float(loss_weight)
        self.tracked_metrics = [metric_from_name(name, self.threshold, prefix) for name in self.metric_names]

    def build(self, logits_shape, labels_shape=None, label_mask_shape=None):
        for metric in self.tracked_metrics:
            if hasattr(metric, "build_for"):
                metric.build_for(logits_shape)
        self.built = True

    def compute_output_spec(self, logits, labels, label_mask=None):
        return keras.KerasTensor(logits.shape, dtype=logits.dtype)

    def call(self, logits, labels, label_mask=None):
        if keras.backend.backend() == "jax" and not keras.backend.is_keras_tensor(logits):
            import jax

            if isinstance(logits, jax.core.Tracer):
                raise RuntimeError(
                    "MultilabelMetrics cannot update metrics inside a JAX-compiled step: JAX's "
                    "training step is stateless. Use the TensorFlow or PyTorch backend for this "
                    "layer, or on JAX pass toolkit.metrics objects to model.compile(metrics=[...]) "
                    "and feed the targets as y."
                )
        if self.loss_weight is not None:
            per_row = multilabel_categorical_crossentropy(labels, logits, mask=label_mask)
            self.add_loss(self.loss_weight * ops.mean(per_row))
        for metric in self.tracked_metrics:
            metric.update_state(labels, logits, mask=label_mask)
        return logits

    def get_config(self):
        config = super().get_config()
        config.update(
            metrics=self.metric_names,
            threshold=self.threshold,
            prefix=self.prefix,
            loss_weight=self.loss_weight,
        )
        return config


@keras.saving.register_keras_serializable(package="toolkit")
class ConditionalLayerNormalization(keras.layers.Layer):
    """Layer normalization whose scale and shift depend on a condition vector.

    `gamma(c) = gamma + c W_gamma`, `beta(c) = beta + c W_beta`, with `W_gamma`
    and `W_beta` zero-initialised so that, at the start of training, the layer
    is plain layer normalization (Su's conditional layer norm, as used in
    bert4keras's relation-extraction example to condition on a subject).

    Args:
        epsilon: added to the variance.
        hidden_units: if set, the condition first goes through a dense layer of
            this size (with `hidden_activation`), which keeps the projections
            small when the condition is wide.
        hidden_activation: activation of that dense layer.

    Call arguments:
        inputs: `[batch, ..., hidden]`.
        condition: `[batch, cond_dim]` (or any rank up to the inputs'; it is
            broadcast over the middle axes).

    Example:

    ```python
    sequence = keras.Input((None, 64))
    subject = keras.Input((128,))
    normed = ConditionalLayerNormalization()(sequence, subject)
    ```
    """

    def __init__(self, epsilon=1e-12, hidden_units=None, hidden_activation="linear", **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.hidden_units = None if hidden_units is None else int(hidden_units)
        self.hidden_activation = keras.activations.get(hidden_activation)

    def build(self, inputs_shape, condition_shape):
        hidden = inputs_shape[-1]
        condition_dim = condition_shape[-1]
        if hidden is None or condition_dim is None:
            raise ValueError(
                "ConditionalLayerNormalization needs known last axes; got inputs "
                f"{tuple(inputs_shape)} and condition {tuple(condition_shape)}."
            )
        self.gamma = self.add_weight(shape=(hidden,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(hidden,), initializer="zeros", name="beta")
        if self.hidden_units is not None:
            self.hidden_kernel = self.add_weight(
                shape=(condition_dim, self.hidden_units), initializer="glorot_uniform", name="hidden_kernel"
            )
            condition_dim = self.hidden_units
        self.gamma_kernel = self.add_weight(shape=(condition_dim, hidden), initializer="zeros", name="gamma_kernel")
        self.beta_kernel = self.add_weight(shape=(condition_dim, hidden), initializer="zeros", name="beta_kernel")
        self.built = True

    def call(self, inputs, condition):
        condition = ops.cast(condition, self.compute_dtype)
        if self.hidden_units is not None:
            condition = self.hidden_activation(ops.matmul(condition, self.hidden_kernel))
        for _ in range(len(inputs.shape) - len(condition.shape)):
            condition = ops.expand_dims(condition, 1)
        gamma = self.gamma + ops.matmul(condition, self.gamma_kernel)
        beta = self.beta + ops.matmul(condition, self.beta_kernel)
        # Statistics in float32 even under a mixed precision policy.
        values = ops.cast(inputs, "float32")
        mean = ops.mean(values, axis=-1, keepdims=True)
        variance = ops.mean(ops.square(values - mean), axis=-1, keepdims=True)
        normed = (values - mean) * ops.rsqrt(variance + self.epsilon)
        return ops.cast(normed, self.compute_dtype) * gamma + beta

    def compute_output_shape(self, inputs_shape, condition_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            epsilon=self.epsilon,
            hidden_units=self.hidden_units,
            hidden_activation=keras.activations.serialize(self.hidden_activation),
        )
        return config


@keras.saving.register_keras_serializable(package="toolkit")
class SequencePooling(keras.layers.Layer):
    """One vector per sequence: the first token's (`"cls"`), or the masked mean or max.

    Call arguments:
        sequence: `[batch, seq_len, hidden]`.
        padding_mask: `[batch, seq_len]`, nonzero at real tokens.

    Example:

    ```python
    pooled = SequencePooling("mean")(outputs["sequence_output"], inputs["padding_mask"])
    ```
    """

    def __init__(self, mode="cls", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("cls", "mean", "max"):
            raise ValueError(f"The 'mode' argument of SequencePooling must be 'cls', 'mean' or 'max'. Got {mode!r}.")
        self.mode = mode

    def call(self, sequence, padding_mask):
        if self.mode == "cls":
            return sequence[:, 0, :]
        mask = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)
        if self.mode == "mean":
            return ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        lowest = ops.cast(ops.min(sequence) - 1.0, sequence.dtype)
        return ops.max(ops.where(mask > 0, sequence, lowest), axis=1)

    def compute_output_shape(self, sequence_shape, padding_mask_shape):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
