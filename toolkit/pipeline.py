"""`Pipeline`: the steps every task has, for a config; a task subclasses it with what differs.

A run, step by step (what `Pipeline.train` does, and what an example script
writes out):

```python
pipeline = ClassificationPipeline(config)        # or pipeline_class(config.task)(config)
data = pipeline.read_data()                      # splits, checked; label or predicate order
with pipeline.training_run() as run:             # folder, saved config, seed, devices, precision
    predictor = pipeline.build(data)             # encoder + task head, untrained
    fitted = pipeline.fit(run, predictor, data)  # best model kept in run/best by training.monitor
results = pipeline.evaluate(run, data, calibrate=True)   # the saved best model on dev and test
pipeline.write_metrics(run, results, fitted, data)       # metrics.json
pipeline.predict_file("texts.jsonl", "predictions.jsonl")
```

A task subclass sets `task` (its registry name), `predictor_class` (with
`load(folder)` and `save(folder)`) and `write_demo_data`, and implements:

- `read_data()`: the splits and whatever order the outputs follow;
- `build(data)`: the untrained predictor (its model and preprocessing);
- `training_feed(predictor, data, run, initial_epoch=0)`: a `TrainingFeed`,
  what Keras fits, whose batches from `initial_epoch` on are those an
  uninterrupted run would see there (a resumed run must train on the same);
- `compile(predictor, feed)`: optimiser (`toolkit.optimization`), loss, metrics;
- `score(run, predictor, data, calibrate)`: scores, reports and plots of the
  saved model, and the text of `report.txt`;
- `prediction_records(predictor, texts)`: the JSON lines `predict_file` writes
  (and `serve` answers);
- `training_summary(data, feed_summary)`: what `metrics.json` says about the data.

The base owns the rest: the run folder's lifecycle (its lock, resuming an
interrupted run, refusing to train a finished one again), distribution and
mixed precision, the callbacks, the fit loop, learning curves,
`metrics.json`, streaming prediction and the demo. `toolkit.tasks` maps
`task:` to the subclass.
"""

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from toolkit.atomic import resolve_directory
from toolkit.runs import RunFolder, RunFolderError, TrainingError, close_run_folder, open_run_folder

__all__ = ["Pipeline", "TrainingFeed", "Fitted", "dtype_policy", "expected_warnings_silenced"]

logger = logging.getLogger("toolkit")


@contextlib.contextmanager
def dtype_policy(policy):
    """Use a Keras dtype policy (e.g. "mixed_float16") inside the block only."""
    import keras

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


@dataclass
class TrainingFeed:
    """What `Pipeline.fit` hands to Keras.

    Attributes:
        model: the `keras.Model` that `fit` trains.
        train: the training batches (a `tf.data.Dataset`, a `PyDataset`, a generator).
        steps_per_epoch: batches in one epoch (needed for endless streams), or None.
        validation: dev batches for Keras' own validation metrics, or None.
        validation_steps: batches in one pass over `validation`.
        evaluate: a function returning extra epoch-end scores (`{"val_micro_f1": ...}`), or None.
        summary: what `metrics.json` should say about the training data (see
            `Pipeline.training_summary`).
    """

    model: Any
    train: Any
    steps_per_epoch: Optional[int] = None
    validation: Any = None
    validation_steps: Optional[int] = None
    evaluate: Optional[Callable[[], dict]] = None
    summary: dict = field(default_factory=dict)

    def validate(self) -> dict:
        """Keras' validation of the weights now in `model`, as `fit` logs it (`{"val_loss": ...}`)."""
        scores = self.model.evaluate(self.validation, steps=self.validation_steps, return_dict=True, verbose=0)
        return {f"val_{name}": value for name, value in scores.items()}


@dataclass
class Fitted:
    """The outcome of `Pipeline.fit`: the best epoch (from 1), its score, a NaN, early or time-budget
    stop, the feed's summary, the seconds spent training (over every resumed part) and each epoch's
    seconds of training steps alone (`RunBackup.epoch_seconds`)."""

    best_epoch: Optional[int]
    best_score: Optional[float]
    stopped_on_nan: Optional[dict]
    summary: dict
    early_stopped: Optional[dict] = None
    train_seconds: Optional[float] = None
    budget_stopped: Optional[dict] = None
    epoch_seconds: Optional[list] = None

    @classmethod
    def from_state(cls, state: dict) -> "Fitted":
        """The outcome recorded in a finished training's resume state (`RunFolder.resume_state`)."""
        return cls(
            state.get("best_epoch"),
            state.get("best_score"),
            state.get("stopped_on_nan"),
            dict(state.get("summary") or {}),
            state.get("early_stopped"),
            state.get("seconds"),
            state.get("budget_stopped"),
            state.get("epoch_seconds"),
        )


class Pipeline:
    """The steps of one task's runs for a config (see the module docstring).

    Args:
        config: the task's config (`toolkit.config.load_config`).
        log: where progress lines go (a `logging` call by default).

    Example:

    ```python
    from toolkit.config import load_config
    from toolkit.tasks import pipeline_class

    config = load_config("configs/reuters.yaml")
    results = pipeline_class(config.task)(config).train()   # the scores in metrics.json
    ```
    """

    task: ClassVar[str] = ""
    predictor_class: ClassVar[type] = object
    # Texts predicted at a time by `predict_file`.
    prediction_chunk_size: ClassVar[int] = 256
    #: What the demo's generated data is, and so what its model can do (logged by `demo_config`).
    demo_description: ClassVar[str] = ""

    def __init__(self, config, *, log: Callable[[str], None] = logger.info):
        if self.task and config.task != self.task:
            raise ValueError(f"{type(self).__name__} runs task {self.task!r}; the config is for {config.task!r}")
        self.config = config
        self.log = log
        self.replicas = None
        self._started = None

    # --- finding a pipeline ------------------------------------------------------

    @staticmethod
    def from_run(run_dir, *, log: Callable[[str], None] = logger.info) -> "Pipeline":
        """The pipeline of a run folder, from the `config.yaml` it saved.

        The folder may have moved since: `output.dir` is set to `run_dir`.
        """
        from toolkit.config import load_config
        from toolkit.tasks import pipeline_class

        config = load_config(Path(run_dir) / "config.yaml")
        config.output.dir = str(Path(run_dir).absolute())
        return pipeline_class(config.task)(config, log=log)

    @classmethod
    def demo_config(cls, output, overrides=(), *, log: Callable[[str], None] = logger.info):
        """Write the built-in demo data beside `output` (`<output>_data`) and return the demo's config.

        The run folder `output` is overwritten by a demo run.
        """
        from toolkit.config import default_config

        output = Path(output)
        data_dir = output.parent / (output.name + "_data")
        cls.write_demo_data(data_dir)
        log(f"demo data written to {data_dir}" + (f": {cls.demo_description}" if cls.demo_description else ""))
        if output.is_dir() and any(output.iterdir()):
            log(f"the earlier demo run in {output} will be replaced")
        return default_config(
            cls.task, data_dir=data_dir, output_dir=output, overrides=["output.overwrite=true", *overrides]
        )

    @staticmethod
    def write_demo_data(data_dir) -> None:
        """Write the task's generated demo data set into `data_dir`."""
        raise NotImplementedError

    @property
    def run_folder(self) -> RunFolder:
        """The run folder the config names (`output.dir`)."""
        return RunFolder(self.config.output.dir)

    # --- the steps ---------------------------------------------------------------

    def read_data(self):
        """Read and check the splits the config names; returns the task's data."""
        raise NotImplementedError

    @contextlib.contextmanager
    def training_run(self, *, resume: bool = False):
        """Where one training run happens: yields its `RunFolder`.

        Opens `training.distribution`'s scope (`self.replicas` then says which
        devices train), prepares this process's run folder (`open_run_folder`),
        saves the resolved config there (the chief), seeds Keras with
        `training.seed` and applies `training.mixed_precision`; on the way out
        the policy is restored, a worker's temporary folder deleted and the
        scope left. Build, compile and fit inside it.

        An error before the run began (no model saved, no epoch finished: a
        missing encoder file, say) removes what this start made in the folder
        (`RunFolder.discard_start`), never what was there before.
        """
        import keras

        from toolkit.distribution import config_source, distribution_scope

        config = self.config
        self._started = self._started or time.time()
        with distribution_scope(config.training, source=config_source(config)) as replicas:
            self.replicas = replicas
            run = open_run_folder(config, replicas, resume=resume)
            try:
                if replicas.is_chief:
                    config.save(run / "config.yaml")
                    self.log(f"devices: {_device_names()}")
                keras.utils.set_random_seed(config.training.seed)
                with dtype_policy(config.training.mixed_precision):
                    yield run
            except BaseException:
                if replicas.is_chief:
                    run.discard_start()  # a start that failed before its first epoch leaves no half-made folder
                raise
            finally:
                close_run_folder(run, replicas)

    def build(self, data):
        """The untrained predictor: the encoder `model.encoder` names and the task's head."""
        raise NotImplementedError

    def training_feed(
        self, predictor, data, run: Optional[RunFolder] = None, *, initial_epoch: int = 0
    ) -> TrainingFeed:
        """What Keras fits: the model, the batches and the epoch-end scores (`run` for caches).

        The batches start at epoch `initial_epoch` (from 0): those an
        uninterrupted run trains on there, so that a resumed run trains on them too.
        """
        raise NotImplementedError

    def compile(self, predictor, feed: TrainingFeed) -> None:
        """Compile `feed.model` with the optimiser, the loss and the metrics."""
        raise NotImplementedError

    def fit(self, run: RunFolder, predictor, data, *, resume: bool = False) -> Fitted:
        """Train; keep the best model by `training.monitor` in `run/best` (`predictor.save`).

        Call it inside `training_run`. With `resume`, training continues after
        the last finished epoch of `run`'s resume state (weights, optimiser,
        random state, history, best epoch: the uninterrupted run's losses and
        weights, on one machine); a training that had ended is not repeated.
        Raises `toolkit.runs.TrainingError` when no model was ever saved
        (a NaN loss at the start, a monitor never finite).
        """
        from toolkit.callbacks import run_callbacks

        state = run.resume_state() if resume else None
        if state is not None and state["done"]:
            self.log(f"{run.path}: training had ended (best epoch {state['best_epoch']}); nothing more to train")
            return Fitted.from_state(state)
        initial_epoch = state["epoch"] if state is not None else 0
        epochs = self.config.training.epochs
        feed = self.training_feed(predictor, data, run, initial_epoch=initial_epoch)
        self.compile(predictor, feed)
        callbacks, best, backup = run_callbacks(
            run,
            self.config.training,
            predictor.save,
            evaluate=feed.evaluate,
            validate=feed.validate if feed.validation is not None else None,
            state=state,
            summary=feed.summary,
            log=self.log,
        )
        if state is not None:
            self.log(f"{run.path}: resuming after epoch {initial_epoch} of {epochs}")
        with expected_warnings_silenced():
            feed.model.fit(
                feed.train,
                validation_data=feed.validation,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=feed.steps_per_epoch,
                validation_steps=feed.validation_steps,
                callbacks=callbacks,
                shuffle=False,  # the feeds draw their own order from (seed, epoch)
                verbose="auto" if sys.stdout.isatty() else 2,
            )
        best.require_model()
        self.log(f"best epoch {best.best_epoch}: {self.config.training.monitor} {best.best_score:.4f}")
        return Fitted(
            best.best_epoch,
            best.best_score,
            best.stopped_on_nan,
            feed.summary,
            early_stopped=best.early_stopped,
            train_seconds=backup.train_seconds,
            budget_stopped=best.budget_stopped,
            epoch_seconds=list(backup.epoch_seconds),
        )

    def load_predictor(self, run: Optional[RunFolder] = None, **settings):
        """The best model a run saved, ready to predict (`run` defaults to `output.dir`); `settings`
        replace saved ones (`MultilabelPredictor.load`'s `min_labels=`, say)."""
        run = run if run is not None else self.run_folder
        return self.predictor_class.load(resolve_directory(run.best), **settings)

    def score(self, run: RunFolder, predictor, data, *, calibrate: bool = False):
        """Scores of `predictor` on dev and test, with the task's reports and plots written to
        `run`; returns `(results, report_text)`."""
        raise NotImplementedError

    def evaluate(self, run: RunFolder, data, *, calibrate: bool = False) -> dict:
        """Score the saved best model on dev and test; write reports, plots and `report.txt`.

        Scores come from the saved model's predictions, not from training logs.
        With `calibrate`, a task whose decision rule has settings (the BCE
        baseline's threshold) chooses them on dev first and saves them with
        the model; the loss of this toolkit has none.
        """
        from toolkit.plots import plot_learning_curves

        run = run if isinstance(run, RunFolder) else RunFolder(run)
        results, report = self.score(run, self.load_predictor(run), data, calibrate=calibrate)
        history = run.read_history()
        if history:
            kept = run.read_json("best.json") or {}
            plot_learning_curves(
                history,
                run.plots / "learning_curves.png",
                title="Learning curves",
                kept_epoch=kept.get("epoch"),
                monitor=self.config.training.monitor,
            )
        run.write_text("report.txt", report)
        return results

    def training_summary(self, data, feed_summary: dict) -> dict:
        """What `metrics.json` records about the training data, beside the scores."""
        return dict(feed_summary)

    def write_metrics(self, run: RunFolder, results: dict, fitted: Fitted, data) -> dict:
        """`results` with the training's outcome, written to `run/metrics.json`; returns them.

        The run is then finished: its resume state (`run/backup`) is deleted.
        """
        results = dict(results)
        seconds = fitted.train_seconds
        if seconds is None and self._started:
            seconds = round(time.time() - self._started, 1)
        results.update(
            best_epoch=fitted.best_epoch,
            monitor={self.config.training.monitor: fitted.best_score},
            stopped_on_nan=fitted.stopped_on_nan,
            early_stopped=fitted.early_stopped,
            budget_stopped=fitted.budget_stopped,
            train_seconds=seconds,
            epoch_train_seconds=fitted.epoch_seconds,
            **self.training_summary(data, fitted.summary),
        )
        run.write_json("metrics.json", results)
        run.discard_backup()
        self.log(f"run folder: {run.path} (best model in {run.best})")
        return results

    def train(self, *, resume: bool = False) -> dict:
        """Every step for the config; returns the scores written to `metrics.json`.

        With `training.distribution` the model is built, compiled and trained
        on every device; the saved best model is then scored on one. A
        non-chief worker of `multi_worker_mirrored` only trains, and returns `{}`.

        The data are read and checked before the run folder is touched, so a
        bad line leaves an existing run (and `output.overwrite`'s victim) as it
        was; a start that fails later, before its first epoch, removes what it
        made (`training_run`). The folder stays locked from training to the scores.

        With `resume`, where the run stands decides (`RunFolder.status`):
        interrupted in training, it continues after its last finished epoch;
        interrupted while being scored, it is scored; finished, nothing is
        done and its scores are returned; with no epoch finished it starts
        from epoch 1. A config that differs from the run's `config.yaml`, or
        a run whose resume state is gone, is refused (`RunFolderError`).
        """
        from toolkit.distribution import check_backend, config_source, is_chief_process

        self._started = time.time()
        check_backend(self.config.training, config_source(self.config))  # before any folder is made
        folder = self.run_folder
        chief = is_chief_process(self.config.training)
        if resume:  # every worker reads the chief's folder (a shared file system)
            status = folder.status()
            if status == "finished":
                self.log(folder.cannot_resume(status).removeprefix("output.dir: "))
                return folder.read_json("metrics.json")
            if status == "orphaned":
                raise RunFolderError(folder.cannot_resume(status))
            if status in ("new", "partial"):
                self.log(f"{folder.path}: no finished epoch to resume; training from epoch 1")
            else:
                self.check_same_config(folder)
        data = self.read_data()
        if chief:
            folder.lock()
        try:
            with self.training_run(resume=resume) as run:
                state = run.resume_state() if resume else None
                if state is not None and state["done"]:  # killed while being scored
                    self.log(f"{run.path}: training had ended (best epoch {state['best_epoch']}); scoring it")
                    fitted = Fitted.from_state(state)
                else:
                    fitted = self.fit(run, self.build(data), data, resume=resume)
            if not self.replicas.is_chief:
                self.log(f"worker done; the chief writes the run folder {self.config.output.dir}")
                return {}
            if fitted.best_epoch is None:
                raise TrainingError(
                    f"{run.path}: training ended without a model to keep (see history.csv); "
                    "set output.overwrite=true to train it again."
                )
            results = self.evaluate(run, data, calibrate=True)
            return self.write_metrics(run, results, fitted, data)
        finally:
            folder.unlock()

    def check_same_config(self, run: RunFolder) -> None:
        """Refuse to resume `run` with a config other than the one in its `config.yaml`.

        `output` may differ (the folder may have moved). RunFolderError names
        the keys that differ, with both values.
        """
        from toolkit.config import ConfigError, load_config

        saved_path = run / "config.yaml"
        if not saved_path.is_file():
            return
        try:
            saved = _flatten(load_config(saved_path).to_dict())
        except ConfigError:
            return  # a config.yaml this version cannot read: nothing to compare with
        current = _flatten(self.config.to_dict())
        changed = [
            key
            for key in sorted(set(saved) | set(current))
            if not key.startswith("output.") and saved.get(key) != current.get(key)
        ]
        if changed:
            shown = "; ".join(f"{key}: {saved.get(key)!r} in the run, {current.get(key)!r} now" for key in changed[:5])
            more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
            raise RunFolderError(
                f"--resume: the config differs from the one {run.path} was started with ({shown}{more}). "
                f"Resume with the same config (python -m toolkit train {saved_path} --resume), or set "
                "output.overwrite=true to start a new run."
            )

    # --- prediction --------------------------------------------------------------

    def prediction_records(self, predictor, texts) -> list:
        """One JSON-ready record per text, as `predict_file` writes them."""
        raise NotImplementedError

    def decision_rule(self, given: dict, *, spell: Callable[[str], str] = str) -> dict:
        """Predictor settings (`load_predictor`'s) for one `predict` call or `serve` request that
        changes the run's decision rule: `given` holds the settings to change (`{"min_labels": 2}`;
        None values are left out). A task without such settings takes none; a ConfigError names
        each setting through `spell` (`--min-labels` on the command line, `min_labels` in a request).
        """
        given = {name: value for name, value in given.items() if value is not None}
        if given:
            from toolkit.config import ConfigError

            names = " and ".join(spell(name) for name in given)
            raise ConfigError(
                f"{names}: {self.config.task} runs have no decision rule to change (multilabel_classification runs do)"
            )
        return {}

    def prediction_input(self):
        """How `predict_file` reads its input: a `toolkit.streaming.PredictionInput`.

        This default reads every file line by line: a line starting with `{`
        is a JSON object whose text is in `data.text_field` (when the data
        section names one, else `text`), any other line is the text itself,
        and a blank line gives `{"text": ""}`. A task whose runs read CSV or
        TSV files returns its own layout, and the record of a blank text
        (`ClassificationPipeline.prediction_input`).
        """
        from toolkit.streaming import PredictionInput

        text_field = getattr(self.config.data, "text_field", None)
        return PredictionInput(text_field=text_field if isinstance(text_field, str) else "text")

    def joined_windows(self, predictor, texts, annotations, move, spans_of, found_in=None):
        """`model.join_texts` training texts joined into documents and read in windows (`toolkit.windows.join_texts`,
        `windowed_split`): more training examples, for a span task whose model reads long documents in windows.
        `texts` and `annotations` (per text) are the training split's; logs what was made."""
        from toolkit.windows import join_texts, windowed_split

        model, train = self.config.model, self.config.data
        documents, moved = join_texts(texts, annotations, model.join_texts, move, seed=self.config.training.seed)
        joined = windowed_split(
            predictor.tokenizer,
            documents,
            moved,
            model.maxlen,
            model.window_stride,
            spans_of,
            found_in,
            long_texts="windows",
        )
        self.log(
            f"{train.train}: training also reads {len(documents)} documents of {model.join_texts} texts joined, "
            f"in {joined.report.windows} windows (model.join_texts)"
        )
        return joined

    def predict_file(
        self,
        input_path,
        output_path,
        *,
        text_field: Optional[str] = None,
        chunk_size: Optional[int] = None,
        settings: Optional[dict] = None,
        long_texts: Optional[str] = None,
    ) -> int:
        """Predict for every text of a file with the run's best model, streaming; returns the lines written.

        Input: read as the run read its data (`prediction_input`): for a
        classification run, a file of its `data.format` (by the extension)
        with the same header and text field; any other file one text a line
        (or a JSON object with the text field). `text_field` replaces the
        text field. Output: one JSON line per input line or record, in order,
        blank ones included (with nothing predicted), each carrying the input
        record's other fields (an id, the gold labels as `input_labels`) so
        that results join back (`toolkit.streaming`). Lines are written as
        they are predicted, so an error (reported with file and line) keeps
        everything written before it in `<output>.partial`. `settings`
        replace the saved predictor's (`load_predictor`); `long_texts`
        (`sentences`, `windows`, `truncate`) replaces how the run reads a text
        longer than `model.maxlen` (`toolkit.windows`).
        """
        from toolkit.streaming import stream_predictions
        from toolkit.windows import window_unit

        predictor = self.load_predictor(**(settings or {}))
        reader = getattr(predictor, "preprocessor", None) or predictor
        if long_texts is not None:
            window_unit(long_texts)  # a ValueError for an unknown value
            reader.long_texts = long_texts
        count = stream_predictions(
            input_path,
            output_path,
            lambda texts: self.prediction_records(predictor, texts),
            text_field=text_field,
            chunk_size=chunk_size or self.prediction_chunk_size,
            layout=self.prediction_input(),
        )
        self.log(f"wrote {count} predictions to {output_path}")
        counts = getattr(reader, "read_counts", None)
        line = counts.line(reader.maxlen, reader.long_texts) if counts is not None else None
        if line:
            self.log(line)
        return count


def _device_names() -> str:
    """The devices Keras sees (`cpu:0`, `gpu:0, gpu:1`), for the log: a GPU that failed to start
    shows as its absence (TensorFlow's own line about it is hidden, `toolkit.native_logs`)."""
    import keras

    try:
        return ", ".join(keras.distribution.list_devices())
    except (AttributeError, NotImplementedError, RuntimeError):  # a backend that lists none (torch)
        return f"not listed by the {keras.backend.backend()} backend"


def _flatten(tree, prefix=""):
    """`{"a": {"b": 1}}` as `{"a.b": 1}`."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
