"""Training on several devices or machines: the `training.distribution` setting.

| value | backend | what it does |
|---|---|---|
| `none` | any | one device (the default) |
| `mirrored` | TensorFlow | `tf.distribute.MirroredStrategy`: every GPU (or every logical device) of this machine |
| `multi_worker_mirrored` | TensorFlow | `tf.distribute.MultiWorkerMirroredStrategy`: several machines, described by `TF_CONFIG` |
| `data_parallel` | JAX | `keras.distribution.DataParallel` over every local JAX device |

`training.batch_size` is always the global batch: each step sees the same
examples as on one device, split across the replicas, and the gradients are
averaged over all of them, so a run computes what the one-device run computes,
up to float rounding.

Under `multi_worker_mirrored` every worker runs the same command with its own
`TF_CONFIG`; the chief (task `chief`, or worker 0 when there is none) writes
the run folder, the other workers write into a temporary folder that they
delete when done (the convention of Keras' own checkpoint callbacks). Resuming
needs the chief's `output.dir` to be readable by every worker (a shared file
system).

Example:

```python
with distribution_scope(config.training) as replicas:
    model = build_model(...)   # variables created on every replica
    model.compile(...)
    model.fit(dataset)         # batches split across replicas.count devices
```
"""

import contextlib
import dataclasses
import json
import math
import os
import typing

import numpy as np

from toolkit.config import ConfigError

__all__ = [
    "STRATEGIES",
    "Replicas",
    "check_backend",
    "check_batch_size",
    "config_source",
    "distribution_scope",
    "distributed_batches",
    "is_chief_process",
    "local_evaluation",
    "wait_for_chief",
    "ClusterError",
]

STRATEGIES = ("none", "mirrored", "multi_worker_mirrored", "data_parallel")
_BACKEND = {"mirrored": "tensorflow", "multi_worker_mirrored": "tensorflow", "data_parallel": "jax"}
_ALTERNATIVE = {"tensorflow": "'mirrored' or 'multi_worker_mirrored'", "jax": "'data_parallel'"}


class ClusterError(RuntimeError):
    """The machines of `multi_worker_mirrored` could not start training together."""


# A process can configure TensorFlow's collective ops only once, before it runs any
# TensorFlow op; later runs in the same process reuse the strategy made first.
_TF_STRATEGIES: dict = {}


@dataclasses.dataclass(frozen=True)
class Replicas:
    """What a pipeline needs to know about the devices it trains on.

    Attributes:
        name: the `training.distribution` value.
        count: replicas in sync (devices, across all workers).
        is_chief: whether this process writes the run folder (always True
            outside `multi_worker_mirrored`).
        strategy: the `tf.distribute.Strategy` on TensorFlow, else None.
    """

    name: str = "none"
    count: int = 1
    is_chief: bool = True
    strategy: typing.Any = None


def _current_backend():
    import keras

    return keras.backend.backend()


def check_backend(training, source="<config>", backend=None):
    """Raise ConfigError when `training.distribution` does not fit the Keras backend.

    Checked when training starts rather than when a config loads, so that a
    run folder's config can still be evaluated on another backend.
    """
    name = training.distribution
    if name not in STRATEGIES:
        raise ConfigError(
            f"{source}: training.distribution: expected one of {', '.join(map(repr, STRATEGIES))}; got {name!r}"
        )
    backend = backend or _current_backend()
    needed = _BACKEND.get(name)
    if needed is not None and needed != backend:
        other = _ALTERNATIVE.get(backend)
        hint = (
            f"; on {backend} use {other}"
            if other
            else f"; the {backend} backend trains on one device here (use 'none')"
        )
        raise ConfigError(
            f"{source}: training.distribution: {name!r} needs the {needed} backend "
            f"(KERAS_BACKEND={needed}), but Keras runs on {backend}{hint}"
        )


def _tf_strategy(name):
    import tensorflow as tf

    if name not in _TF_STRATEGIES:
        base = tf.distribute.MirroredStrategy if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy

        class Strategy(base):
            """The TensorFlow strategy, with two `reduce` calls of Keras 3.15 answered.

            - Before training, Keras reads one distributed batch and calls
              `reduce("MEAN", batch, axis=None)` on the whole nested structure,
              only to learn its shapes and dtypes. TensorFlow's reduce does
              not take nested values (it fails under MultiWorkerMirrored), and
              adding up token ids of unequal shares fails under Mirrored: a
              nested value is answered with the first local replica's share.
            - With several workers, Keras averages each step's per-replica
              scalar logs with `reduce("MEAN", value, axis=0)`, which fails
              on scalars (keras-team/keras#20585): those are averaged over
              the replicas, as Keras does on one machine.

            Every other reduce is TensorFlow's own.
            """

            def reduce(self, reduce_op, value, axis):
                if axis is None and isinstance(value, (dict, list, tuple)):
                    return tf.nest.map_structure(lambda item: self.experimental_local_results(item)[0], value)
                local = self.experimental_local_results(value)[0]
                if axis is not None and getattr(getattr(local, "shape", None), "rank", None) == 0:
                    axis = None
                return super().reduce(reduce_op, value, axis)

        _TF_STRATEGIES[name] = Strategy()
    return _TF_STRATEGIES[name]


@contextlib.contextmanager
def distribution_scope(training, source="<config>"):
    """Create models, optimizers and compile them inside this block to train on several devices.

    Yields a `Replicas`. On TensorFlow the block is the strategy's scope; on
    JAX the `DataParallel` distribution is set for the block and the previous
    one restored afterwards; with `none` nothing changes. The backend is
    checked first (`check_backend`), before anything is created.
    """
    check_backend(training, source)
    name = training.distribution
    if name == "none":
        yield Replicas()
    elif name == "data_parallel":
        import jax
        import keras

        devices = jax.devices()
        replicas = Replicas(name, count=len(devices))
        check_batch_size(training, replicas, source)
        with keras.distribution.DataParallel(devices=devices).scope():
            yield replicas
    else:
        if name == "multi_worker_mirrored" and not is_chief_process(training):
            wait_for_chief(training.cluster_timeout)
        strategy = _tf_strategy(name)
        replicas = Replicas(
            name,
            count=strategy.num_replicas_in_sync,
            is_chief=bool(strategy.extended.should_checkpoint),
            strategy=strategy,
        )
        with strategy.scope():
            yield replicas


def is_chief_process(training, environ=None):
    """Whether this process writes the run folder, known before any strategy is made.

    True except under `multi_worker_mirrored` for a task of `TF_CONFIG` that is
    not the chief: the chief is task `chief`, or worker 0 when the cluster has
    none (TensorFlow's rule, which `Replicas.is_chief` reads off the strategy).

    >>> from toolkit.config.sections import TrainingConfig
    >>> is_chief_process(TrainingConfig(distribution="multi_worker_mirrored"),
    ...                  {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'})
    False
    """
    if training.distribution != "multi_worker_mirrored":
        return True
    spec = _tf_config(environ)
    task = spec.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in spec.get("cluster", {})


def _tf_config(environ=None):
    """`TF_CONFIG` as a dict ({} when unset or not JSON: TensorFlow reports a bad one itself)."""
    environ = os.environ if environ is None else environ
    try:
        spec = json.loads(environ.get("TF_CONFIG") or "{}")
    except ValueError:
        return {}
    return spec if isinstance(spec, dict) else {}


def _chief_address(spec):
    cluster = spec.get("cluster") or {}
    tasks = cluster.get("chief") or cluster.get("worker") or []
    return tasks[0] if tasks else None


def wait_for_chief(timeout, environ=None, *, interval=1.0):
    """Wait until the chief of `TF_CONFIG` accepts connections; ClusterError after `timeout` seconds.

    TensorFlow's own wait for the cluster has no end: a worker whose chief
    failed at start-up (a bad config on that machine, say) would hang there
    for good. The chief's server listens once its strategy is made, so a
    worker calls this before making its own (`distribution_scope` does).
    """
    import socket
    import time

    address = _chief_address(_tf_config(environ))
    if not address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=interval):
                return
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"training.distribution: multi_worker_mirrored: the chief ({address} in TF_CONFIG) did not "
                    f"come up within {timeout:g} s (training.cluster_timeout). Check why it stopped (its own "
                    "output says), start it, then start this worker again."
                ) from None
            time.sleep(interval)


def config_source(config):
    """Where a config was read from, for error messages."""
    return getattr(config, "_source", "<config>")


def distributed_batches(replicas, endless_batches, output_signature=None, *, weighted=False, seed=0):
    """What `fit` reads from an endless stream of global batches, on `replicas`; give `fit` the steps.

    Args:
        replicas: from `distribution_scope`.
        endless_batches: a function returning an iterator that yields global
            batches (nested structures of NumPy arrays, batch axis first)
            forever, epoch after epoch. Each call starts again from the
            first epoch, so Keras may open the stream more than once (it
            reads a first batch to build the model, and opens the dev stream
            anew for every evaluation).
        output_signature: the `tf.TensorSpec` structure of a batch (TensorFlow).
        weighted: JAX only, for evaluation: `(inputs, targets)` batches whose
            size is not a multiple of the device count are padded with copies
            of their first row and given sample weights 1 (real rows) and 0
            (copies), so scores count every real row once. Without it,
            training batches are cut to a multiple of the device count
            (`seed` draws the rows left out), and a batch smaller than the
            device count is repeated until it fills them evenly.

    Returns:
        Under a `tf.distribute` strategy, a distributed dataset in which each
        replica gets its contiguous share of every global batch (every worker
        reads the same stream and keeps its replicas' shares); on TensorFlow
        without one, a `tf.data.Dataset`; on JAX (and PyTorch) a Python
        generator, whose batches `DataParallel` splits over the devices.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

    if replicas.strategy is not None:

        def dataset_fn(context):
            local = replicas.count // context.num_input_pipelines
            first = context.input_pipeline_id * local

            def shares():
                for batch in endless_batches():
                    size = _batch_size(batch)
                    for replica in range(first, first + local):
                        begin, end = size * replica // replicas.count, size * (replica + 1) // replicas.count
                        yield keras.tree.map_structure(lambda array: array[begin:end], batch)  # noqa: B023 (applied at once)

            dataset = tf.data.Dataset.from_generator(shares, output_signature=output_signature)
            return dataset.prefetch(local)

        return replicas.strategy.distribute_datasets_from_function(dataset_fn)
    if keras.backend.backend() == "tensorflow":
        dataset = tf.data.Dataset.from_generator(endless_batches, output_signature=output_signature)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def generator():
        rng = np.random.default_rng(seed)
        for batch in endless_batches():
            yield _even_out(batch, replicas.count, weighted, rng)

    return generator()


def feed_stream(feed, replicas, output_signature=None):
    """A `keras.utils.PyDataset` feed as the endless stream `distributed_batches` reads; pass
    `len(feed)` to `fit` as the steps per epoch.

    The same batches, epoch by epoch, as Keras draws from `feed` itself (it
    calls `on_epoch_end` once before the first epoch, then after each). On
    TensorFlow the stream has `output_signature` (a feed's
    `output_signature()` when None), with `None` for the sequence and span
    axes: Keras fixes a `PyDataset`'s shapes from its first two batches, and
    a later batch of another length would not fit them.
    """
    import copy

    import keras

    def endless():
        epochs = copy.copy(feed)  # its own epoch counter; the data are shared
        while True:
            epochs.on_epoch_end()
            for index in range(len(epochs)):
                yield epochs[index]

    if keras.backend.backend() == "tensorflow" and output_signature is None:
        output_signature = feed.output_signature()
    elif keras.backend.backend() != "tensorflow":
        output_signature = None
    return distributed_batches(replicas, endless, output_signature, seed=getattr(feed, "seed", 0))


def _batch_size(batch):
    import keras

    return len(keras.tree.flatten(batch)[0])


def _even_out(batch, count, weighted, rng):
    """`batch` with a size JAX can split evenly over `count` devices (see `distributed_batches`)."""
    import keras

    size = _batch_size(batch)
    if weighted:
        inputs, targets = batch
        padded = -(-size // count) * count
        rows = np.concatenate([np.arange(size), np.zeros(padded - size, dtype=int)])
        weights = (np.arange(padded) < size).astype("float32")
        take = lambda array: array[rows]  # noqa: E731
        return keras.tree.map_structure(take, inputs), keras.tree.map_structure(take, targets), weights
    if size % count == 0:
        return batch
    if size > count:
        rows = np.sort(rng.choice(size, size - size % count, replace=False))
    else:
        rows = np.tile(np.arange(size), count // math.gcd(size, count))
    return keras.tree.map_structure(lambda array: array[rows], batch)


def check_batch_size(training, replicas, source="<config>"):
    """On JAX every batch is split evenly over the devices: the batch size must allow it."""
    if replicas.name == "data_parallel" and training.batch_size % replicas.count:
        raise ConfigError(
            f"{source}: training.batch_size: {training.batch_size} cannot be split evenly over the "
            f"{replicas.count} devices of 'data_parallel'; use a multiple of {replicas.count}"
        )


@contextlib.contextmanager
def local_evaluation(replicas):
    """Run plain (undistributed) model calls inside a distributed training block.

    For evaluation done in a callback on whole, unsharded batches of any size
    (the relation pipeline's decoding): on JAX the data-parallel distribution
    is lifted for the block. On TensorFlow nothing changes: there Keras'
    `predict_on_batch` gives every replica the whole batch and returns the
    replicas' outputs one after the other, of which the decoder reads the
    first, so the results are right but the work is repeated on each replica.
    """
    if replicas.name != "data_parallel":
        yield
        return
    import keras

    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)
