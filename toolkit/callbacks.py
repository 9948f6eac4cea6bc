"""The callbacks of a pipeline run, in the order they must see each epoch's end.

- `run_callbacks(run, training, save_best, ...)`: the list `fit` gets (weight
  average swap, extra epoch scores, best-model checkpoint, history, TensorBoard,
  early stopping, resume backup) and the `BestModelCheckpoint` in it;
- `BestModelCheckpoint`: saves the best model atomically, stops on a NaN loss;
- `EpochEvaluation`: scores that need more than batch metrics (decoded triples).

Example:

```python
callbacks, best = run_callbacks(run, config.training, predictor.save, resume=False)
model.fit(train, validation_data=dev, epochs=config.training.epochs, callbacks=callbacks)
best.require_model()
```
"""

import logging
import math
from pathlib import Path

import keras

from toolkit.atomic import replace_directory
from toolkit.scores import lower_is_better

__all__ = ["BestModelCheckpoint", "EpochEvaluation", "monitor_mode", "run_callbacks"]


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
                f"training.monitor: {self.monitor!r} is not among this run's logged values ({', '.join(sorted(logs))})."
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
