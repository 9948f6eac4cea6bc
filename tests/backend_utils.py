"""Backend-specific helpers the tests need: values and gradients as NumPy."""

import keras
import numpy as np


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def value_and_gradient(function, x):
    """`function(x)` summed, and its gradient with respect to `x`, as NumPy arrays."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x)
            total = tf.reduce_sum(value)
        return to_numpy(value), to_numpy(tape.gradient(total, x))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(x)
        value = function(x)
        gradient = jax.grad(lambda v: jnp.sum(function(v)))(x)
        return to_numpy(value), to_numpy(gradient)
    if backend == "torch":
        import torch

        x = torch.tensor(np.asarray(x), requires_grad=True)
        value = function(x)
        value.sum().backward()
        return value.detach().cpu().numpy(), x.grad.detach().cpu().numpy()
    raise NotImplementedError(backend)
