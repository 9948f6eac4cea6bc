"""The callbacks of a pipeline run, in the order they must see each epoch's end.

- `run_callbacks(run, training, save_best, ...)`: the list `fit` gets (weight
  average swap, extra epoch scores, best-model checkpoint with early
  stopping, TensorBoard, resume backup with the history) and the
  `BestModelCheckpoint` and `RunBackup` in it;
- `BestModelCheckpoint`: saves the best model atomically, stops early when
  the monitor stops improving, stops on a NaN loss;
- `RunBackup`: the resume state, whole after every finished epoch, and
  `history.csv` written from it;
- `EpochEvaluation`: scores that need more than batch metrics (decoded triples);
- `AverageOrTrainingWeights`: with a weight average (`training.ema`), scores
  it and the training weights on dev at each epoch end and keeps the better.

Example:

```python
callbacks, best, backup = run_callbacks(run, config.training, predictor.save)
model.fit(train, validation_data=dev, epochs=config.training.epochs, callbacks=callbacks)
best.require_model()
```
"""

import json
import logging
import math
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from toolkit.atomic import json_ready, replace_directory, resolve_directory
from toolkit.runs import RANDOM_FILE, STATE_FILE, WEIGHTS_FILE, RunFolderError, TrainingError
from toolkit.scores import lower_is_better

__all__ = [
    "AverageOrTrainingWeights",
    "BestModelCheckpoint",
    "EpochEvaluation",
    "RunBackup",
    "monitor_mode",
    "run_callbacks",
]


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


def _weight_average(optimizer):
    """`(variables, averages)`: the variables the optimizer trains and its average of each."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer wraps it
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or averages is None:
        raise ValueError(
            "AverageOrTrainingWeights needs an optimizer that keeps a weight average (use_ema=True, "
            "training.ema in a config), built before training."
        )
    return optimizer._trainable_variables, averages


def _check_mode(mode):
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}.")


def _preferred(candidate, incumbent, mode):
    """Whether score `candidate` beats `incumbent` under `mode` ("max" or "min"); a non-finite score never wins."""
    if candidate is None or not math.isfinite(candidate):
        return False
    if incumbent is None or not math.isfinite(incumbent):
        return True
    return candidate > incumbent if mode == "max" else candidate < incumbent


class AverageOrTrainingWeights(keras.callbacks.Callback):
    """At each epoch end, scores the weight average and the training weights on dev, and keeps the better.

    With `training.ema` the optimizer keeps an exponential moving average of
    the weights (`use_ema=True`). Late in a run the average usually scores
    higher than the weights training left; early on it can score lower,
    because it still remembers weights from before training got anywhere
    (warmed up or not). So each epoch is scored twice: the training weights
    first (Keras' validation, which `fit` runs before any `on_epoch_end`,
    plus `evaluate()`), then the average, put into the model (`validate()`,
    Keras' validation again, plus `evaluate()`). The one with the better
    `monitor` (`mode` "max" or "min"; the average on a tie) is kept: its
    scores are the epoch's logged values and its weights stay in the model
    for the callbacks after this one, so the best-model checkpoint saves
    them. The logs also get `<monitor>_average`, `<monitor>_training` and
    `average_kept` (1 or 0). A run with an average is thus scored at least
    as high, epoch by epoch, as the same run without one: the training
    weights follow the same path either way.

    Training goes on from the training weights at the next epoch, and after
    the last epoch the model holds the kept weights (Keras would put the
    average in). Meanwhile the training weights wait in host memory: one
    copy of the trainable weights. The cost is a second pass over dev per
    epoch; `training.ema_compare: false` scores the average alone
    (`keras.callbacks.SwapEMAWeights`). Put this callback first.

    Example:

    ```python
    optimizer = keras.optimizers.AdamW(1e-3, use_ema=True, ema_momentum=0.99)
    model.compile(optimizer, loss)

    def validate():
        scores = model.evaluate(dev, return_dict=True, verbose=0)
        return {f"val_{name}": value for name, value in scores.items()}

    keep = AverageOrTrainingWeights("val_loss", "min", validate=validate)
    model.fit(train, validation_data=dev, epochs=3, callbacks=[keep, checkpoint])
    ```

    Args:
        monitor: the logged value that decides (`training.monitor`).
        mode: "max" when higher is better, "min" when lower is.
        validate: scores the weights in the model as Keras' validation does
            (`{"val_loss": ...}`), or None when `fit` has no validation data.
        evaluate: extra scores of the weights in the model (`EpochEvaluation`), or None.
    """

    def __init__(self, monitor, mode, *, validate=None, evaluate=None):
        super().__init__()
        _check_mode(mode)
        self.monitor = monitor
        self.mode = mode
        self.validate = validate
        self.evaluate = evaluate
        self.average_kept = None
        self._training_weights = None  # host copies, while the model holds the kept weights

    def _scores(self, logs):
        scores = dict(logs)
        if self.evaluate is not None:
            scores.update(self.evaluate())
        return scores

    def _put_back_training_weights(self):
        variables, _ = _weight_average(self.model.optimizer)
        for variable, value in zip(variables, self._training_weights):
            variable.assign(value)

    def on_epoch_begin(self, epoch, logs=None):
        if self._training_weights is not None:
            if self.average_kept:
                self._put_back_training_weights()
            self._training_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        variables, averages = _weight_average(self.model.optimizer)
        training = self._scores({name: value for name, value in logs.items() if name.startswith("val_")})
        self._training_weights = [keras.ops.convert_to_numpy(variable) for variable in variables]
        for variable, average in zip(variables, averages):
            variable.assign(keras.ops.copy(average))  # a copy: JAX may donate the buffer of either
        average = self._scores(self.validate() if self.validate is not None else {})
        self.average_kept = not _preferred(training.get(self.monitor), average.get(self.monitor), self.mode)
        logs.update(average if self.average_kept else training)
        if self.monitor in training or self.monitor in average:
            logs[f"{self.monitor}_average"] = average.get(self.monitor, math.nan)
            logs[f"{self.monitor}_training"] = training.get(self.monitor, math.nan)
        logs["average_kept"] = float(self.average_kept)
        if not self.average_kept:
            self._put_back_training_weights()

    def on_train_end(self, logs=None):
        # Keras' fit has just put the average into the model (`finalize_variable_values`).
        if self._training_weights is not None and not self.average_kept:
            self._put_back_training_weights()
        self._training_weights = None


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model through `save(path)` whenever `monitor` improves; stops early, and on a NaN loss.

    The folder is replaced atomically (`replace_directory`). The epoch and
    score of the best model are kept in `best_epoch` / `best_score` (from 1;
    `initial_*` continue a resumed run). With `patience`, training stops once
    `patience` epochs have passed without a better score, as Keras'
    `EarlyStopping` does, but counted from `best_epoch`, so a resumed run
    stops where the uninterrupted one would; `early_stopped` says when and
    `log` says so. At the first non-finite training loss, training stops,
    nothing more is saved (the last good model stays), `stopped_on_nan` tells
    where it happened and `log` says what to do. With `max_seconds`, training
    stops at the first epoch end once that many seconds have been trained
    (`initial_seconds` before this process, as a resumed run counts them);
    `budget_stopped` says when.
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
        patience=None,
        max_seconds=None,
        initial_seconds=0.0,
    ):
        super().__init__()
        _check_mode(mode)
        self.patience = patience
        self.early_stopped = None
        self.max_seconds = max_seconds
        self.initial_seconds = float(initial_seconds or 0.0)
        self.budget_stopped = None
        self._since = None
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

    def on_train_begin(self, logs=None):
        self._since = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    @property
    def seconds_trained(self):
        """Seconds trained so far, over every resumed part of the run."""
        return self.initial_seconds + (time.monotonic() - self._since if self._since is not None else 0.0)

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
                f"training.monitor: {self.monitor!r} is not among this run's logged values ({', '.join(sorted(logs))})."
            )
        score = float(logs[self.monitor])
        if _preferred(score, self.best_score, self.mode):
            self.best_score, self.best_epoch = score, epoch + 1
            replace_directory(self.save, self.directory)
            if self.on_save is not None:
                self.on_save(self.best_epoch, self.best_score)
        if self.patience and epoch > 0 and epoch + 1 - (self.best_epoch or 0) >= self.patience:
            self.model.stop_training = True
            self.early_stopped = {"epoch": epoch + 1, "best_epoch": self.best_epoch, "patience": self.patience}
        last = epoch + 1 >= (self.params or {}).get("epochs", math.inf)
        if self.max_seconds and not self.model.stop_training and not last:
            seconds = self.seconds_trained
            if seconds >= self.max_seconds:
                self.model.stop_training = True
                self.budget_stopped = {
                    "epoch": epoch + 1,
                    "minutes": round(seconds / 60, 2),
                    "max_minutes": round(self.max_seconds / 60, 4),
                }

    def on_train_end(self, logs=None):
        if self.stopped_on_nan is not None:
            self.log(self.nan_message())
        elif self.early_stopped is not None:
            stop = self.early_stopped
            self.log(
                f"early stopping after epoch {stop['epoch']}: {self.monitor} has not improved for "
                f"{stop['patience']} epoch(s) since epoch {stop['best_epoch']} (training.early_stopping_patience)"
            )
        elif self.budget_stopped is not None:
            stop = self.budget_stopped
            self.log(
                f"time budget reached after epoch {stop['epoch']}: {stop['minutes']:g} minutes trained "
                f"(training.max_minutes={stop['max_minutes']:g}); the best epoch so far is {self.best_epoch}"
            )

    def require_model(self):
        """Raise a TrainingError that says why, when no model was ever saved."""
        if self.best_epoch is None:
            if self.stopped_on_nan is not None:
                raise TrainingError(self.nan_message())
            raise TrainingError(
                f"No model was saved: training.monitor ({self.monitor}) never had a finite value; see history.csv."
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
    """ "min" for losses and error rates, "max" for scores (`toolkit.scores.lower_is_better`)."""
    return "min" if lower_is_better(monitor) else "max"


def _random_state(model):
    """The model's random state: the `SeedGenerator` variables (dropout masks), which
    `save_weights` leaves out; in a fixed order for one architecture."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class RunBackup(keras.callbacks.Callback):
    """The run's resume state, replaced whole after every finished epoch; `history.csv` from it.

    `run.backup` holds `state.json` (the epochs finished, their logged
    values, the best epoch and score, the early or NaN stop, the seconds
    trained, each epoch's seconds of training steps (`epoch_seconds`), the
    feed's summary, and `done` once training has ended) and,
    while training goes on, `model.weights.h5` (the weights and the
    optimiser's state, EMA included) with `random.npz` (the dropout seeds).
    The folder is built beside the old one and swapped in
    (`toolkit.atomic.replace_directory`), so a kill at any instant leaves the
    last complete backup; `history.csv` is rewritten after each swap, so it
    never gets ahead of the backup, and a resumed run truncates it to the
    backup's epoch first.

    An epoch's backup is written when the next epoch begins (or training
    ends): by then `AverageOrTrainingWeights` (or `SwapEMAWeights`) has put
    the training weights back, so
    the saved weights are exactly those the next epoch trains from. Put it
    last, after every callback that adds to the logs.

    Args:
        run: the `RunFolder`.
        best: the run's `BestModelCheckpoint` (its best epoch and stops are saved).
        state: the resume state to continue from (`RunFolder.resume_state()`),
            restored when training begins; None for a fresh run.
        summary: what the training feed reports (`TrainingFeed.summary`), kept
            for a run resumed only to be scored.
    """

    def __init__(self, run, best, *, state=None, summary=None):
        super().__init__()
        self.run = run
        self.best = best
        self.state = state
        self.summary = dict(summary or {})
        self.rows = list(state["history"])[: state["epoch"]] if state else []
        self._seconds = float(state.get("seconds") or 0.0) if state else 0.0
        self.epoch_seconds = list(state.get("epoch_seconds") or [])[: state["epoch"]] if state else []
        self._since = None
        self._pending = False
        self._steps = None  # (first step's start, last step's end) of the epoch being trained

    @property
    def train_seconds(self):
        """Seconds spent training, over every process of the run."""
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return round(self._seconds + running, 1)

    def on_train_begin(self, logs=None):
        self._since = time.monotonic()
        if self.state is not None:
            self._restore(resolve_directory(self.run.backup))
            self.run.write_history(self.rows)

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps is None:
            now = time.monotonic()
            self._steps = (now, now)

    def on_train_batch_end(self, batch, logs=None):
        if self._steps is not None:
            self._steps = (self._steps[0], time.monotonic())

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in (logs or {}).items()}
        self.rows.append({"epoch": epoch + 1, **values})
        # The epoch's training steps alone, input included: from its first step's start to its last
        # step's end (dev scoring, checkpoints and the backup come after or before).
        first, last = self._steps if self._steps is not None else (0.0, 0.0)
        self.epoch_seconds.append(round(last - first, 3))
        self._steps = None
        self._pending = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending:
            self._write(done=False)

    def on_train_end(self, logs=None):
        self._write(done=True)

    def _write(self, *, done):
        self._pending = False
        best = self.best
        state = json_ready(
            {
                "epoch": self.rows[-1]["epoch"] if self.rows else 0,
                "done": done,
                "best_epoch": best.best_epoch,
                "best_score": best.best_score,
                "stopped_on_nan": best.stopped_on_nan,
                "early_stopped": best.early_stopped,
                "budget_stopped": best.budget_stopped,
                "seconds": self.train_seconds,
                "epoch_seconds": self.epoch_seconds,
                "summary": self.summary,
                "history": self.rows,
            }
        )

        def build(folder):
            folder = Path(folder)
            folder.mkdir(parents=True)
            if not done:  # a finished training resumes to be scored only: no weights needed
                self.model.save_weights(str(folder / WEIGHTS_FILE))
                arrays = [keras.ops.convert_to_numpy(variable) for variable in _random_state(self.model)]
                np.savez(folder / RANDOM_FILE, *arrays)
            (folder / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")

        replace_directory(build, self.run.backup)
        self.run.write_history(self.rows)
        self.run.drop_replaced()  # the run has begun: an earlier run that `output.overwrite` replaced goes

    def _restore(self, folder):
        weights, seeds = folder / WEIGHTS_FILE, folder / RANDOM_FILE
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # its variables must exist to be loaded
        try:
            self.model.load_weights(str(weights))
        except (OSError, ValueError, KeyError) as error:
            raise RunFolderError(self.run.unreadable_backup(weights, error)) from None
        variables = _random_state(self.model)
        try:
            with np.load(seeds) as saved:
                arrays = [saved[f"arr_{index}"] for index in range(len(saved.files))]
            if len(arrays) != len(variables):
                raise ValueError(f"{len(arrays)} random states saved, the model has {len(variables)}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise RunFolderError(self.run.unreadable_backup(seeds, error)) from None
        for variable, array in zip(variables, arrays):
            variable.assign(array)


def run_callbacks(run, training, save_best, evaluate=None, state=None, summary=None, log=None, validate=None):
    """The callbacks of a pipeline run, in the order they must see each epoch's end.

    With a weight average (`training.ema`), first the average and the
    training weights are both scored and the better kept
    (`AverageOrTrainingWeights`; with `training.ema_compare: false` the
    average is swapped in alone), so that evaluation and the saved model use
    the kept weights; then extra scores from `evaluate()` join the logs (the
    first callback takes them itself when it compares), then the best model
    is saved and early stopping decides, then TensorBoard logs, and last
    `RunBackup` keeps the resume state and the history. `validate()` scores
    the model in it as Keras' validation does (needed to compare when `fit`
    validates). With `state` (`RunFolder.resume_state()`) the run continues
    from it: the best so far is the model `best.json` describes, else the
    one the state names.

    Returns:
        `(callbacks, best_checkpoint, backup)`.
    """
    mode = monitor_mode(training.monitor)
    kept = run.read_json("best.json") if state else None  # the best model on disk, ahead of the state or not
    if state and not kept and state.get("best_epoch") is not None:
        kept = {"epoch": state["best_epoch"], "score": state["best_score"]}
    best = BestModelCheckpoint(
        save_best,
        run.best,
        monitor=training.monitor,
        mode=mode,
        initial_score=kept["score"] if kept else None,
        initial_epoch=kept["epoch"] if kept else None,
        on_save=lambda epoch, score: run.write_json("best.json", {"epoch": epoch, "score": score}),
        log=log,
        patience=training.early_stopping_patience or None,
        max_seconds=training.max_minutes * 60 if training.max_minutes else None,
        initial_seconds=state.get("seconds") if state else 0.0,
    )
    backup = RunBackup(run, best, state=state, summary=summary)
    callbacks = []
    if training.ema is not None and training.ema_compare:
        callbacks.append(AverageOrTrainingWeights(training.monitor, mode, validate=validate, evaluate=evaluate))
    else:
        if training.ema is not None:
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        if evaluate is not None:
            callbacks.append(EpochEvaluation(evaluate))
    callbacks += [best, keras.callbacks.TensorBoard(str(run / "logs"), write_graph=False), backup]
    return callbacks, best, backup
