"""The `keras.ops` functions that `toolkit._formulas` uses, written with TensorFlow.

`toolkit.compat._tf_keras` passes this module as the `ops` of the shared
formulas, so that the tf-keras loss and metrics compute what the Keras 3 ones
compute without importing Keras 3 (see `toolkit.compat.bert4keras`). Each
function takes the arguments `toolkit._formulas` passes, with the names and
meaning of the `keras.ops` function of the same name.
"""

import tensorflow as tf

abs = tf.abs  # noqa: A001 (the keras.ops name)
broadcast_to = tf.broadcast_to
cast = tf.cast
convert_to_tensor = tf.convert_to_tensor
equal = tf.equal
exp = tf.exp
expand_dims = tf.expand_dims
expm1 = tf.math.expm1
log = tf.math.log
log1p = tf.math.log1p
logical_and = tf.logical_and
logical_not = tf.logical_not
maximum = tf.maximum
not_equal = tf.not_equal
ones_like = tf.ones_like
reshape = tf.reshape
scatter = tf.scatter_nd
sort = tf.sort
squeeze = tf.squeeze
stack = tf.stack
stop_gradient = tf.stop_gradient
where = tf.where
zeros = tf.zeros
zeros_like = tf.zeros_like


def arange(stop, dtype=None):
    return tf.range(stop, dtype=dtype)


def concatenate(xs, axis=0):
    return tf.concat(xs, axis=axis)


def dtype(x):
    """The dtype's name: `"float32"`, `"bfloat16"`, `"int32"`, `"bool"`, ..."""
    return x.dtype.name


def full_like(x, fill_value):
    return tf.fill(tf.shape(x), tf.cast(fill_value, x.dtype))


def max(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_max(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.reduce_mean(x, axis=axis, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_sum(x, axis=axis, keepdims=keepdims)


def shape(x):
    """A tuple: ints where the size is static, scalar tensors where it is not (as `keras.ops.shape`)."""
    static = x.shape.as_list()
    if None not in static:
        return tuple(static)
    dynamic = tf.shape(x)
    return tuple(dynamic[axis] if size is None else size for axis, size in enumerate(static))


def take_along_axis(x, indices, axis):
    """`x` gathered along its last axis, row by row (the only axis `toolkit._formulas` uses)."""
    rank = x.shape.rank
    if axis not in (-1, rank - 1):
        raise NotImplementedError(f"take_along_axis over axis {axis}: only the last axis is supported.")
    return tf.gather(x, indices, axis=rank - 1, batch_dims=rank - 1)
