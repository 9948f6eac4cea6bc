"""Training machinery shared by the pipelines: schedule, optimizer, callbacks."""

import contextlib
import logging
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import keras
from keras import ops

from toolkit.distribution import config_source, distribution_scope
from toolkit.runs import RunFolder

__all__ = [
    "WarmupDecay",
    "make_optimizer",
    "ema_warning",
    "ReplicaAwareAdamW",
    "dtype_policy",
    "BestModelCheckpoint",
    "EpochEvaluation",
    "run_callbacks",
    "open_run_folder",
    "close_run_folder",
    "training_run",
    "monitor_mode",
    "resolve_directory",
    "replace_directory",
    "expected_warnings_silenced",
]


@keras.saving.register_keras_serializable(package="toolkit")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then linear or cosine decay to 0 (or constant).

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


@keras.saving.register_keras_serializable(package="toolkit")
class ReplicaAwareAdamW(keras.optimizers.AdamW):
    """AdamW that clips gradients as one device would under `tf.distribute` replicas.

    Keras 3 applies `clipnorm` to each replica's share of the gradient before
    the shares are summed, so under `MirroredStrategy` a clipped step differs
    from the one-device step. Here each dense gradient is summed over the
    replicas first, clipped as Keras clips it, and divided by the replica
    count, so that Keras' own summation restores the clipped sum. A sparse
    (`IndexedSlices`, embedding) gradient, whose norm Keras takes over its rows,
    is scaled by the factor computed from the rows of all replicas. Keras'
    per-replica clipping then no longer binds. Outside a replica context, or
    with one replica, this is AdamW.
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
        for i, square in zip(sparse, summed[len(dense):]):
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
    """AdamW with warmup and decay, weight decay off for biases and norms, optional EMA.

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
    message = ema_warning(training.ema, total_steps)
    if message:
        logging.getLogger("toolkit").warning(message)
    optimizer_class = ReplicaAwareAdamW if _replicated() else keras.optimizers.AdamW
    optimizer = optimizer_class(
        learning_rate=schedule,
        weight_decay=training.weight_decay,
        clipnorm=1.0,
        use_ema=training.ema is not None,
        ema_momentum=training.ema if training.ema is not None else 0.99,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def ema_warning(ema, total_steps, *, limit=0.05):
    """A warning when a weight average would still hold much of the untrained start.

    Keras' average starts from the weights before training and keeps
    `ema ** steps` of them: with `ema=0.999` that is 37% after 1,000 steps.
    The average is what a run evaluates and saves, so a run too short for its
    `ema` scores a half-trained model (on WebNLG* cut to 5 epochs, dev F1
    0.0001 after two). Returns None when less than `limit` is left at the end.

    >>> print(ema_warning(0.999, 628))  # doctest: +ELLIPSIS
    training.ema=0.999 averages over about 1000 steps but the run has 628: ...
    >>> ema_warning(0.999, 5000) is None
    True
    """
    if ema is None or total_steps <= 0:
        return None
    left = ema**total_steps
    if left < limit:
        return None
    return (
        f"training.ema={ema:g} averages over about {1 / (1 - ema):.0f} steps but the run has {total_steps}: "
        f"the evaluated and saved weights would still be {left:.0%} the weights before training. Lower "
        "training.ema (e.g. 0.99), train for more epochs, or set training.ema: null."
    )


@contextlib.contextmanager
def dtype_policy(policy):
    """Use a Keras dtype policy (e.g. "mixed_float16") inside the block only."""
    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def expected_warnings_silenced():
    """Silence the one warning every fine-tuning run raises by design.

    The BERT backbone's `[CLS]` pooler (`pooled_dense`) is not used by the
    pipelines' heads, so Keras warns that it gets no gradient.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Gradients do not exist for variables \['pooled_dense", category=UserWarning
        )
        yield


def replace_directory(build, target):
    """Write a folder with `build(temporary_path)`, then swap it in for `target`.

    The old folder stays in place until the new one is complete, so an
    interruption leaves either the old or the new folder (if it stops between
    the two renames, the old one is left at `<target>.old`, which
    `resolve_directory` finds).
    """
    target = Path(target)
    temporary = target.with_name(target.name + ".tmp")
    previous = target.with_name(target.name + ".old")
    shutil.rmtree(temporary, ignore_errors=True)
    build(temporary)
    if target.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(temporary, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def resolve_directory(target):
    """`target`, or the `<target>.old` that an interrupted `replace_directory` left."""
    target = Path(target)
    if target.is_dir():
        return target
    previous = target.with_name(target.name + ".old")
    return previous if previous.is_dir() else target


class EpochEvaluation(keras.callbacks.Callback):
    """Adds scores computed by `evaluate()` (a dict) to the epoch's logs.

    For scores that need more than batch metrics, such as triple F1 after
    decoding. Put it before the callbacks that read the score.
    """

    def __init__(self, evaluate):
        super().__init__()
        self.evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model through `save(path)` whenever `monitor` improves; stops on a NaN loss.

    The folder is replaced atomically (`replace_directory`). The epoch and
    score of the best model are kept in `best_epoch` / `best_score`. At the
    first non-finite training loss, training stops, nothing more is saved
    (the last good model stays), `stopped_on_nan` tells where it happened and
    `log` says what to do.
    """

    def __init__(
        self,
        save,
        directory,
        monitor="val_micro_f1",
        mode="max",
        initial_score=None,
        initial_epoch=None,
        on_save=None,
        log=None,
    ):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}.")
        self.save = save
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.best_score = initial_score
        self.best_epoch = initial_epoch
        self.on_save = on_save
        self.log = log or logging.getLogger("toolkit").warning
        self.stopped_on_nan = None
        self._epoch = 0

    def _better(self, score):
        if self.best_score is None:
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and self.stopped_on_nan is None and not math.isfinite(float(loss)):
            self.stopped_on_nan = {"epoch": self._epoch + 1, "batch": batch + 1, "loss": float(loss)}
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.stopped_on_nan is not None:
            return
        if self.monitor not in logs:
            raise KeyError(
                f"training.monitor: {self.monitor!r} is not among this run's logged values "
                f"({', '.join(sorted(logs))})."
            )
        score = float(logs[self.monitor])
        if math.isfinite(score) and self._better(score):
            self.best_score, self.best_epoch = score, epoch + 1
            replace_directory(self.save, self.directory)
            if self.on_save is not None:
                self.on_save(self.best_epoch, self.best_score)

    def on_train_end(self, logs=None):
        if self.stopped_on_nan is not None:
            self.log(self.nan_message())

    def require_model(self):
        """Raise a RuntimeError that says why, when no model was ever saved."""
        if self.best_epoch is None:
            if self.stopped_on_nan is not None:
                raise RuntimeError(self.nan_message())
            raise RuntimeError(
                f"No model was saved: training.monitor ({self.monitor}) never had a finite value; "
                "see history.csv."
            )

    def nan_message(self):
        where = self.stopped_on_nan
        kept = (
            f"the best model so far (epoch {self.best_epoch}) is kept in {self.directory}"
            if self.best_epoch is not None
            else "no model had been saved yet"
        )
        return (
            f"Training stopped: the loss became {where['loss']} at epoch {where['epoch']}, batch "
            f"{where['batch']}; {kept}. Try a lower training.learning_rate, or training.mixed_precision: "
            "null if a mixed precision policy is on."
        )


def monitor_mode(monitor):
    """"min" for losses, "max" for scores."""
    return "min" if monitor.endswith("loss") else "max"


def run_callbacks(run, training, save_best, evaluate=None, resume=False, log=None):
    """The callbacks of a pipeline run, in the order they must see each epoch's end.

    EMA weights are swapped in first (so evaluation and the saved model use
    them), then extra scores from `evaluate()` join the logs, then the best
    model is saved, the history written, and early stopping decides. A
    `BackupAndRestore` in `run.backup` lets the same command resume an
    interrupted run from its last finished epoch.

    Returns:
        `(callbacks, best_checkpoint)`.
    """
    mode = monitor_mode(training.monitor)
    state = run.read_json("best.json") if resume else None
    best = BestModelCheckpoint(
        save_best,
        run.best,
        monitor=training.monitor,
        mode=mode,
        initial_score=state["score"] if state else None,
        initial_epoch=state["epoch"] if state else None,
        on_save=lambda epoch, score: run.write_json("best.json", {"epoch": epoch, "score": score}),
        log=log,
    )
    callbacks = []
    if training.ema is not None:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if evaluate is not None:
        callbacks.append(EpochEvaluation(evaluate))
    callbacks += [
        best,
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=resume),
        keras.callbacks.TensorBoard(str(run / "logs"), write_graph=False),
    ]
    if training.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=training.monitor, mode=mode, patience=training.early_stopping_patience
            )
        )
    callbacks.append(keras.callbacks.BackupAndRestore(str(run.backup)))
    return callbacks, best


def open_run_folder(config, replicas=None, *, resume=False):
    """The run folder this process writes into.

    `config.output.dir`, prepared (`RunFolder.prepare`), on a single process
    and on the chief of `multi_worker_mirrored`. The other workers train in
    step with the chief but write into a temporary folder, as Keras' own
    checkpoint callbacks do on non-chief workers; with `resume` it starts with
    a copy of the chief's resume state (`backup/`, `best.json`), so that every
    worker continues from the same epoch. `close_run_folder` deletes it.
    """
    if replicas is None or replicas.is_chief:
        return RunFolder(config.output.dir).prepare(overwrite=config.output.overwrite, resume=resume)
    chief = RunFolder(config.output.dir)
    run = RunFolder(tempfile.mkdtemp(prefix="toolkit-worker-")).prepare()
    if resume:
        if chief.backup.is_dir():
            shutil.copytree(chief.backup, run.backup)
        if (chief / "best.json").is_file():
            shutil.copy2(chief / "best.json", run / "best.json")
    return run


def close_run_folder(run, replicas=None):
    """Delete a non-chief worker's temporary run folder (see `open_run_folder`)."""
    if replicas is not None and not replicas.is_chief:
        shutil.rmtree(run.path, ignore_errors=True)


@contextlib.contextmanager
def training_run(config, *, resume=False):
    """Where one `train` call runs: yields `(run, replicas)`.

    Opens `training.distribution`'s scope and this process's run folder
    (`open_run_folder`), saves the resolved config there (the chief) and seeds
    Keras with `training.seed`; on the way out the folder is closed
    (`close_run_folder`) and the scope left. Both pipelines' `train` build,
    compile and fit inside it.

    ```python
    with training_run(config, resume=resume) as (run, replicas):
        data = read_data(config)
        ...
    ```
    """
    with distribution_scope(config.training, source=config_source(config)) as replicas:
        run = open_run_folder(config, replicas, resume=resume)
        try:
            if replicas.is_chief:
                config.save(run / "config.yaml")
            keras.utils.set_random_seed(config.training.seed)
            yield run, replicas
        finally:
            close_run_folder(run, replicas)
