"""The optimiser and its learning-rate schedule, as a config's `training` section sets them.

- `make_optimizer(training, steps_per_epoch)`: AdamW with warmup and decay
  (`WarmupDecay`), weight decay off for biases and norms, gradient clipping,
  and the optional weight average (`training.ema`), warmed up so that a short
  run is never scored on the untrained start (`ema_decay`);
- `WarmEMAAdamW`: that AdamW; `ReplicaAwareAdamW`: the one used under a
  `tf.distribute` strategy.

Example:

```python
optimizer = make_optimizer(config.training, steps_per_epoch=len(feed))
model.compile(optimizer=optimizer, loss=...)
```
"""

import math

import keras
from keras import ops

__all__ = ["WarmupDecay", "WarmEMAAdamW", "ReplicaAwareAdamW", "ema_decay", "make_optimizer"]


@keras.saving.register_keras_serializable(package="toolkit")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then linear or cosine decay to 0 (or constant).

    Hand-written because Keras has no schedule for BERT fine-tuning's usual
    shape: `keras.optimizers.schedules.CosineDecay` warms up but only decays
    along a cosine, and starts its warmup at rate 0 on step 0 (a wasted
    step); `PolynomialDecay(power=1)` decays linearly but has no warmup. Here
    step `i` of the warmup gets `peak * (i + 1) / warmup_steps`.

    Example:

    ```python
    schedule = WarmupDecay(peak=5e-5, warmup_steps=100, total_steps=1000, decay="linear")
    ```
    """

    def __init__(self, peak, warmup_steps, total_steps, decay="linear"):
        if decay not in ("linear", "cosine", "none"):
            raise ValueError(f"decay must be 'linear', 'cosine' or 'none'; got {decay!r}.")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.decay = decay

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        rising = self.peak * ops.minimum(1.0, (step + 1.0) / warmup)
        if self.decay == "none":
            return rising if self.warmup_steps else ops.full_like(step, self.peak)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "linear":
            falling = self.peak * (1.0 - progress)
        else:
            falling = self.peak * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
        }


def ema_decay(ema, step):
    """The weight-average decay at optimizer step `step` (from 0): `min(ema, (1 + t) / (10 + t))`.

    Keras' average keeps `ema ** t` of the weights of its first step, which
    are the untrained ones: with `ema=0.999`, 37% after 1,000 steps, so a run
    of a few epochs evaluated and saved mostly its random heads (WebNLG* with
    the shipped config: dev F1 0.00002 after two epochs). Warmed up as
    TensorFlow's `ExponentialMovingAverage(num_updates=...)` and timm's model
    EMA do, the decay starts small and reaches `ema` after `(10 * ema - 1) /
    (1 - ema)` steps (8,990 for 0.999): early on the average follows the
    training weights closely, later it averages as long as `ema` says. Step 0
    has decay 0 (the average starts as the weights), as in Keras.

    >>> [round(ema_decay(0.999, t), 3) for t in (0, 1, 10, 100, 10_000)]
    [0.0, 0.182, 0.55, 0.918, 0.999]
    """
    if step <= 0:
        return 0.0
    return min(float(ema), (1.0 + step) / (10.0 + step))


class _WarmEMA:
    """Keras' optimizer weight average with the warm-up of `ema_decay` (any backend; graph-safe)."""

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        step = ops.cast(self.iterations, "float32")
        warm = ops.minimum(ops.cast(self.ema_momentum, "float32"), (1.0 + step) / (10.0 + step))
        decay = ops.where(ops.equal(self.iterations, 0), 0.0, warm)
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                momentum = ops.cast(decay, var.dtype)
                average.assign(ops.add(ops.multiply(momentum, average), ops.multiply(ops.subtract(1, momentum), var)))


@keras.saving.register_keras_serializable(package="toolkit")
class WarmEMAAdamW(_WarmEMA, keras.optimizers.AdamW):
    """AdamW whose weight average (`use_ema=True`) warms up as `ema_decay` says; otherwise AdamW.

    ```python
    optimizer = WarmEMAAdamW(learning_rate=1e-4, use_ema=True, ema_momentum=0.999)
    ```
    """


@keras.saving.register_keras_serializable(package="toolkit")
class ReplicaAwareAdamW(WarmEMAAdamW):
    """`WarmEMAAdamW` that clips gradients as one device would under `tf.distribute` replicas.

    Keras 3 applies `clipnorm` to each replica's share of the gradient before
    the shares are summed, so under `MirroredStrategy` a clipped step differs
    from the one-device step. Here each dense gradient is summed over the
    replicas first, clipped as Keras clips it, and divided by the replica
    count, so that Keras' own summation restores the clipped sum. A sparse
    (`IndexedSlices`, embedding) gradient, whose norm Keras takes over its rows,
    is scaled by the factor computed from the rows of all replicas. Keras'
    per-replica clipping then no longer binds. Outside a replica context, or
    with one replica, this is `WarmEMAAdamW`.
    """

    def apply(self, grads, trainable_variables=None):
        return super().apply(self._clipped_across_replicas(list(grads)), trainable_variables)

    def _clipped_across_replicas(self, grads):
        if not self.clipnorm or keras.backend.backend() != "tensorflow":
            return grads
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return grads
        replicas = context.num_replicas_in_sync
        dense = [i for i, g in enumerate(grads) if g is not None and not isinstance(g, tf.IndexedSlices)]
        sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)]
        squares = [tf.reduce_sum(tf.square(grads[i].values)) for i in sparse]
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in dense] + squares)
        for i, gradient in zip(dense, summed):
            grads[i] = self._clip_by_norm(gradient) / replicas  # the clipping Keras does on one device
        for i, square in zip(sparse, summed[len(dense) :]):
            norm = tf.sqrt(square)
            factor = self.clipnorm / tf.maximum(norm, self.clipnorm)
            grads[i] = tf.IndexedSlices(grads[i].values * factor, grads[i].indices, grads[i].dense_shape)
        return grads


def _replicated():
    """Whether optimizers are being created under a `tf.distribute` strategy with several replicas."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


def make_optimizer(training, steps_per_epoch):
    """AdamW with warmup and decay, weight decay off for biases and norms, optional warmed-up EMA.

    Under a `tf.distribute` strategy with several replicas it is a
    `ReplicaAwareAdamW`, which clips the summed gradient as one device would.

    Args:
        training: the config's `training` section.
        steps_per_epoch: optimizer steps in one epoch.
    """
    total_steps = steps_per_epoch * training.epochs
    if training.warmup_steps is not None:
        warmup_steps = training.warmup_steps
    else:
        warmup_steps = int(round(training.warmup_ratio * total_steps))
    schedule = WarmupDecay(training.learning_rate, warmup_steps, total_steps, training.decay)
    optimizer_class = ReplicaAwareAdamW if _replicated() else WarmEMAAdamW
    optimizer = optimizer_class(
        learning_rate=schedule,
        weight_decay=training.weight_decay,
        clipnorm=1.0,
        use_ema=training.ema is not None,
        ema_momentum=training.ema if training.ema is not None else 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
