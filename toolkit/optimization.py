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
        with keras.name_scope("moving_average"):  # named for profiles
            for var, average in zip(trainable_variables, self._model_variables_moving_average):
                if average is not None:
                    momentum = ops.cast(decay, var.dtype)
                    update = ops.add(ops.multiply(momentum, average), ops.multiply(ops.subtract(1, momentum), var))
                    average.assign(update)


class _FusedUpdate:
    """On TensorFlow, AdamW's per-variable work in fewer passes over memory (`fused=True`), and
    embedding rows updated only when looked up (`sparse_updates=True`).

    Keras' AdamW writes each step as a dozen elementwise ops per variable
    (`m += (g - m) * (1 - b1)`, `v += ...`, `var -= m * alpha / (sqrt(v) + eps)`),
    plus three for the weight decay and four for `clipnorm`: each a full pass
    over the variable. For a small encoder with a large vocabulary (the
    30,522 x 384 embedding is half of MiniLM's weights) on a CPU without XLA
    these passes cost about as much as the model's matmuls when texts are
    short. Here the Adam update is TensorFlow's fused `ResourceApplyAdam`
    kernel (one pass, the same formula: `lr * sqrt(1 - b2^t) / (1 - b1^t)` as
    the step size, `eps` added after the square root), the decay is
    `var -= (lr * wd) * var`, and clipping scales by
    `clipnorm / max(norm, clipnorm)` once; the result is Keras' AdamW up to
    float rounding (tested), with one difference: an embedding row looked up
    several times in a batch gets the sum of its gradients, and Adam's second
    moment the square of that sum, as for any dense gradient (tf-keras and
    PyTorch do the same), where Keras 3's AdamW adds the squares of the
    lookups' gradients.

    With `sparse_updates`, a variable whose gradient comes as rows (an
    embedding lookup's `IndexedSlices`) has only those rows decayed and
    updated, their moments too, as TensorFlow Addons' `LazyAdam` and
    PyTorch's `SparseAdam` do; a row no batch looks up keeps its weights
    instead of drifting on its old momentum. This is a different optimizer
    from dense AdamW for those rows (measured in `docs/benchmarks.md`); rows
    looked up in every step get exactly the dense update.

    Other backends and `amsgrad` take Keras' own path.
    """

    def _fused_here(self):
        return self.fused and keras.backend.backend() == "tensorflow" and not self.amsgrad

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        self._row_wise = set()
        if self.sparse_updates and self._fused_here():
            import tensorflow as tf

            variables = trainable_variables if trainable_variables is not None else self._trainable_variables
            self._row_wise = {
                self._var_key(variable)
                for gradient, variable in zip(grads, variables)
                if isinstance(gradient, tf.IndexedSlices)
            }
        return super().apply(grads, trainable_variables)

    def _clip_by_norm(self, values, axes=None):
        if axes is not None or not self._fused_here():
            return super()._clip_by_norm(values, axes)
        import tensorflow as tf

        with tf.name_scope("clip_by_norm"):  # the scope tf.clip_by_norm's ops have (for profiles)
            dense = values.values if isinstance(values, tf.IndexedSlices) else values
            flat = tf.reshape(dense, [-1])
            norm = tf.sqrt(tf.tensordot(flat, flat, 1))  # as tf.clip_by_norm, over an IndexedSlices' rows
            factor = self.clipnorm / tf.maximum(norm, tf.cast(self.clipnorm, norm.dtype))
            if isinstance(values, tf.IndexedSlices):
                return tf.IndexedSlices(values.values * factor, values.indices, values.dense_shape)
            return values * factor

    def _decay_rate(self, dtype):
        return ops.cast(ops.cast(self.learning_rate, "float32") * ops.cast(self.weight_decay, "float32"), dtype)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self._fused_here():
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        def decay(value):
            with tf.name_scope("weight_decay"):
                value.assign_sub(value * self._decay_rate(value.dtype))

        def decay_all(distribution, variables):  # where Keras decays: on each replica's copy
            for variable in variables:
                if self._use_weight_decay(variable) and self._var_key(variable) not in self._row_wise:
                    value = variable.value if isinstance(variable, keras.Variable) else variable
                    distribution.extended.update(value, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, variables)

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused_here():
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        value = variable.value if isinstance(variable, keras.Variable) else variable
        index = self._get_variable_index(variable)
        # Handles, not variables: under `tf.distribute` this runs once per replica's copy, and a
        # mirrored slot's handle is that replica's copy.
        momentum, velocity = self._momentums[index].value.handle, self._velocities[index].value.handle
        dtype = value.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        learning_rate = tf.cast(learning_rate, dtype)
        epsilon = tf.cast(self.epsilon, dtype)
        if self._var_key(variable) in self._row_wise:
            rows, slot = tf.unique(gradient.indices)
            gradient = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), slot, tf.shape(rows)[0])

            def gather(handle):
                return tf.raw_ops.ResourceGather(resource=handle, indices=rows, dtype=dtype)

            weights = gather(value.handle)
            if self.weight_decay is not None and self._use_weight_decay(variable):
                weights = weights - weights * self._decay_rate(dtype)
            first = beta_1 * gather(momentum) + (1 - beta_1) * gradient
            second = beta_2 * gather(velocity) + (1 - beta_2) * tf.square(gradient)
            alpha = learning_rate * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
            weights = weights - alpha * first / (tf.sqrt(second) + epsilon)
            for handle, update in ((momentum, first), (velocity, second), (value.handle, weights)):
                tf.raw_ops.ResourceScatterUpdate(resource=handle, indices=rows, updates=update)
            return
        tf.raw_ops.ResourceApplyAdam(
            var=value.handle,
            m=momentum,
            v=velocity,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=epsilon,
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype),  # an embedding's rows, made dense
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package="toolkit")
class WarmEMAAdamW(_FusedUpdate, _WarmEMA, keras.optimizers.AdamW):
    """AdamW whose weight average (`use_ema=True`) warms up as `ema_decay` says; otherwise AdamW.

    With `fused=True` (the default) its update on TensorFlow takes fewer
    passes over memory, and with `sparse_updates=True` an embedding's rows
    are updated only when looked up (see `_FusedUpdate`); `fused=False` is
    Keras' AdamW op for op.

    ```python
    optimizer = WarmEMAAdamW(learning_rate=1e-4, use_ema=True, ema_momentum=0.999)
    ```
    """

    def __init__(self, *args, fused=True, sparse_updates=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused = bool(fused)
        self.sparse_updates = bool(sparse_updates)
        self._row_wise = set()

    def get_config(self):
        return {**super().get_config(), "fused": self.fused, "sparse_updates": self.sparse_updates}


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


def make_optimizer(training, steps_per_epoch, *, fused=True, sparse_updates=None):
    """AdamW with warmup and decay, weight decay off for biases and norms, optional warmed-up EMA.

    Under a `tf.distribute` strategy with several replicas it is a
    `ReplicaAwareAdamW`, which clips the summed gradient as one device would.

    Args:
        training: the config's `training` section.
        steps_per_epoch: optimizer steps in one epoch.
        fused: the fewer-pass update on TensorFlow (`WarmEMAAdamW`); False
            gives Keras' AdamW op for op (the benchmarks compare the two).
        sparse_updates: embedding rows updated only when looked up (`WarmEMAAdamW`);
            None: as `training.sparse_embedding_updates` says.
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
        fused=fused,
        sparse_updates=training.sparse_embedding_updates if sparse_updates is None else sparse_updates,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
