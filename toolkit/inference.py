"""One model call of a decoder or predictor: `predict_batch(model, inputs)`, traced once per model on TensorFlow.

Keras' `predict_on_batch` traces its function again for a new input shape
until it has seen two (`reduce_retracing` then generalises the axes that
changed). The decoders pad to a few shapes (`toolkit.batching`), but a run
makes several models (the training model's parts, then the best one loaded
back), and TensorFlow counts the traces of all of them together: five within
ten calls and it warns of retracing. Here, on TensorFlow, a model is called
through a `tf.function` whose input signature leaves every axis open, made
once per model: one trace, whatever the shapes. JAX and PyTorch use
`predict_on_batch` (JAX compiles once per shape: the few padded ones).

```python
outputs = predict_batch(extractor.subject_model, {"token_ids": token_ids, "segment_ids": segment_ids})
```
"""

from __future__ import annotations

import numpy as np

__all__ = ["predict_batch", "trace_count"]

_FUNCTION = "_toolkit_predict_function"


def predict_batch(model, inputs):
    """`model`'s outputs for one batch, as NumPy arrays (a dict for a dict-output model), in inference mode."""
    import keras

    if keras.backend.backend() != "tensorflow" or not isinstance(model, keras.Model):
        return model.predict_on_batch(inputs)  # (or a stand-in with that method)
    made = model.__dict__.get(_FUNCTION)
    if made is None:
        made = _open_function(model, inputs)
        object.__setattr__(model, _FUNCTION, made)  # outside Keras' attribute tracking
    function, dtypes = made
    outputs = function(keras.tree.map_structure(lambda value, dtype: np.asarray(value, dtype), inputs, dtypes))
    return keras.tree.map_structure(lambda tensor: np.asarray(tensor), outputs)


def _open_function(model, inputs):
    """A `tf.function` calling `model` on inputs shaped like `inputs`, every axis of unknown size, and the
    inputs' dtypes (later batches are cast to them)."""
    import keras
    import tensorflow as tf

    dtypes = keras.tree.map_structure(lambda value: np.asarray(value).dtype, inputs)

    def spec(value, symbolic=None):
        # The model's own input shape where it has one (batch and sequence axes open, feature axes known).
        shape = tuple(symbolic.shape) if symbolic is not None else (None,) * np.ndim(value)
        return tf.TensorSpec(shape, tf.as_dtype(np.asarray(value).dtype))

    try:
        signature = keras.tree.map_structure(spec, inputs, model.input)
    except (AttributeError, TypeError, ValueError):  # not a functional model, or its inputs are arranged otherwise
        signature = keras.tree.map_structure(spec, inputs)

    @tf.function(input_signature=[signature], reduce_retracing=True)
    def call(batch):
        return model(batch, training=False)

    return call, dtypes


def trace_count(model) -> int:
    """How many times TensorFlow traced `predict_batch`'s function for `model` (0 before its first call)."""
    made = model.__dict__.get(_FUNCTION)
    return 0 if made is None else made[0].experimental_get_tracing_count()
