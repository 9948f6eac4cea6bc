"""The run folder and its lifecycle: where a training run writes everything, never half-written.

- `RunFolder`: the layout of one run, its lock (one run per folder), the
  state it is in (`status`: new, training, scoring, finished), refusing a
  folder that holds another run, and reading back what a run wrote
  (`history.csv`, the resume state in `backup/`, JSON files);
- `RunFolder.discard_start`: what a start that failed before its run began
  made is removed again;
- `open_run_folder` / `close_run_folder`: the folder this process writes into,
  on one process or as a worker of `multi_worker_mirrored` (a temporary
  folder seeded with the chief's resume state).

Every file goes through `toolkit.atomic`. This module imports neither Keras
nor TensorFlow.

```python
run = open_run_folder(config, resume=False)
run.write_json("metrics.json", results)
run.read_history()["val_micro_f1"]       # one value per finished epoch
```
"""

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from toolkit.atomic import resolve_directory, write_json_atomic, write_text_atomic

__all__ = ["RunFolder", "RunFolderError", "TrainingError", "STATUSES", "open_run_folder", "close_run_folder"]


class RunFolderError(ValueError):
    """The output folder cannot be used as asked."""


class TrainingError(RuntimeError):
    """Training ended without a model to keep (a NaN loss from the start, a monitor never finite)."""


_RUN_MARKERS = ("best", "best.old", "best.tmp", "best.json", "backup", "backup.old", "backup.tmp")
_RUN_MARKERS += ("history.csv", "metrics.json")
# What else a run writes, removed with it when a new run replaces it (the token cache stays: its
# files are named by what they hold, and a new run of the same data reuses them).
_RUN_OUTPUTS = _RUN_MARKERS + ("logs", "plots", "report.txt", "data_summary.json", "config.yaml")
_RUN_OUTPUTS += tuple(
    f"{kind}_{split}.{extension}"
    for split in ("dev", "test")
    for kind, extension in (
        ("report", "json"),
        ("per_predicate", "json"),
        ("per_type", "json"),
        ("predictions", "jsonl"),
    )
)
# Where `prepare(overwrite=True)` moves an earlier run's files until the new run has begun.
_REPLACED = ".replaced"

# The locks this process holds, by folder: `RunFolder.lock` is re-entrant within a
# process (an flock taken twice by one process through two descriptors would
# refuse itself), so `Pipeline.train` can hold the folder across training and
# scoring while `Pipeline.training_run` takes it too. Each entry is
# [file handle or None, count, what the folder held before the first lock (`_Before`)].
_HELD_LOCKS: dict = {}


class _Before:
    """What a run folder held before this process locked it: whether it existed, its entries, and
    the topmost folder that locking it created (itself, or a missing parent)."""

    def __init__(self, path: Path):
        self.existed = path.is_dir()
        self.entries = frozenset(os.listdir(path)) if self.existed else frozenset()
        created = Path(os.path.abspath(path))
        while not self.existed and not created.parent.exists():
            created = created.parent
        self.created = None if self.existed else created


# `RunFolder.status` values.
STATUSES = ("new", "partial", "training", "scoring", "finished", "orphaned")

# The files of `backup/` (`toolkit.callbacks.RunBackup` writes them).
STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"
RANDOM_FILE = "random.npz"


class RunFolder:
    """The files of one training run.

    Layout:

    - `config.yaml`: the resolved config the run used;
    - `best/`: the best model so far (a `MultilabelPredictor` folder, or the
      pipeline's own), replaced atomically;
    - `metrics.json`, `report.txt`, `report_<split>.json`: scores on dev and test;
    - `history.csv`, `plots/*.png`, `logs/` (TensorBoard), `backup/` (resume
      state), `cache/` (tokenized data).

    A folder that already holds a run (one that got as far as saving a
    model) is refused unless `overwrite=True` or `resume=True` (an
    interrupted run started again with the same config). With `overwrite`,
    the earlier run's files (its TensorBoard logs with them; the token cache
    stays) are moved aside into `.replaced/` and go for good once the new run
    has finished an epoch (`drop_replaced`). A start that fails before its
    run begins (a missing encoder file, an error building the model) removes
    what it made and puts an earlier run back (`discard_start`): the folder
    is left as it was, or not there.

    One run at a time: `lock()` takes an OS file lock on `<folder>/.lock`
    (`fcntl.flock`), which a second process asking for the same folder cannot
    get; the operating system releases it when the holder ends, however it
    ends, so a stale `.lock` file never blocks.

    Resuming: after each finished epoch the run's resume state is swapped in
    whole as `backup/` (`toolkit.callbacks.RunBackup`): `state.json` (the
    epoch, the history so far, the best epoch, whether training is done) and,
    while training goes on, the weights with the optimiser's state and the
    random state. `history.csv` is written from it, after it, so it never
    holds an epoch the backup does not. `status()` reads where a run stands.
    """

    def __init__(self, directory):
        self.path = Path(directory)
        self._locked = False

    # --- one run per folder ------------------------------------------------------

    def lock(self):
        """Take the folder's lock (creating the folder); RunFolderError naming the holder if it is taken.

        Re-entrant within a process: each `lock()` needs its `unlock()`. The
        first one notes what the folder held (`discard_start` needs it).
        """
        self._check_is_folder()
        if self._locked:
            return self
        key = os.path.realpath(self.path)
        if key in _HELD_LOCKS:
            _HELD_LOCKS[key][1] += 1
            self._locked = True
            return self
        before = _Before(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"output.dir: cannot create {self.path} ({error.strerror}).") from None
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            _HELD_LOCKS[key] = [None, 1, before]
            self._locked = True
            return self
        handle = open(self.path / ".lock", "a+", encoding="ascii")  # noqa: SIM115 (held while the run lasts)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(
                f"output.dir: {self.path} is in use by another run (process {holder}). Wait for it to end, "
                "or choose another folder (--set output.dir=...)."
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD_LOCKS[key] = [handle, 1, before]
        self._locked = True
        return self

    def unlock(self):
        """Release the lock `lock()` took (a no-op without one)."""
        if not self._locked:
            return
        self._locked = False
        key = os.path.realpath(self.path)
        held = _HELD_LOCKS.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD_LOCKS[key]
            if held[0] is not None:
                held[0].close()  # closing the descriptor releases the flock

    def discard_start(self):
        """Undo a start that failed before the run began: remove what was made in the folder since
        this process first locked it, when it holds no run (`started()` is false).

        A folder that did not exist goes, with the parents its creation made
        (when they are empty); in one that existed, only the entries that were
        not there go. What an earlier run or the user left is never touched.
        Call it while holding the lock: `.lock` goes last, so no other run can
        have started in the folder meanwhile.
        """
        held = _HELD_LOCKS.get(os.path.realpath(self.path))
        if held is None or self.started() or not self.path.is_dir():
            return
        before = held[2]
        made = sorted(set(os.listdir(self.path)) - before.entries - {".lock", _REPLACED})
        for name in made:
            _remove(self.path / name)
        self._restore_replaced()
        if ".lock" not in before.entries:
            (self.path / ".lock").unlink(missing_ok=True)
        if before.created is None:
            return
        folder = Path(os.path.abspath(self.path))
        while True:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                return
            if folder == before.created:
                return
            folder = folder.parent

    def _check_is_folder(self):
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"output.dir: {self.path} exists and is not a folder.")

    def prepare(self, *, overwrite=False, resume=False):
        """Create the folder; refuse one holding another run unless told.

        With `resume`, a run with a resume state (`status()` "training" or
        "scoring") is kept as it is; one with nothing to resume ("new",
        "partial": stopped before its first backup) starts afresh; a finished
        run, or one whose resume state is gone, is refused. Without it, an
        existing run is refused unless `overwrite`, which clears it first
        (`_RUN_OUTPUTS`: models, scores, plots, TensorBoard logs), keeping them
        aside until the new run has begun (see the class docstring).
        """
        self._check_is_folder()
        self._settle_replaced()
        keep = False
        if resume:
            status = self.status()
            if status in ("finished", "orphaned"):
                raise RunFolderError(self.cannot_resume(status))
            keep = status in ("training", "scoring")
        elif self.started() and not overwrite:
            raise RunFolderError(
                f"output.dir: {self.path} already holds a run. Choose another folder "
                "(--set output.dir=...), set output.overwrite=true to replace it, or run "
                "the same command again with --resume to continue an interrupted run."
            )
        if not keep:
            # A fresh start: nothing of an earlier run may leak in.
            self._clear_run()
        for sub in ("plots", "logs", "cache"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        return self

    def _clear_run(self):
        """Move an earlier run's files (`_RUN_OUTPUTS`: its config, models, scores, plots, TensorBoard
        logs) aside into `.replaced/`, from where `drop_replaced` deletes them and `discard_start` puts
        them back."""
        names = [name for name in _RUN_OUTPUTS if os.path.lexists(self.path / name)]
        if not names:
            return
        aside = self.path / _REPLACED
        aside.mkdir()
        for name in names:
            os.replace(self.path / name, aside / name)

    def _restore_replaced(self):
        """Put the files `_clear_run` moved aside back in place of what is there now."""
        aside = self.path / _REPLACED
        if not aside.is_dir():
            return
        for name in os.listdir(aside):
            _remove(self.path / name)
            os.replace(aside / name, self.path / name)
        aside.rmdir()

    def _settle_replaced(self):
        """A `.replaced/` left by a process that ended without cleaning up: deleted if the run that
        replaced it had begun, else put back (the earlier run is still the folder's run)."""
        if (self.path / _REPLACED).is_dir():
            if self.started():
                self.drop_replaced()
            else:
                self._restore_replaced()

    def drop_replaced(self):
        """Delete the earlier run that `prepare(overwrite=True)` moved aside (the new run has begun)."""
        shutil.rmtree(self.path / _REPLACED, ignore_errors=True)

    def started(self):
        """Whether the folder holds a run that got as far as saving a model or finishing an epoch."""
        return any((self.path / name).exists() for name in _RUN_MARKERS)

    # --- where a run stands ------------------------------------------------------

    def status(self):
        """Where the run in this folder stands, one of `STATUSES`:

        - "new": no run here;
        - "partial": stopped before its first finished epoch was backed up
          (at most a first best model): nothing to resume, it starts afresh;
        - "training": interrupted between epochs; `--resume` continues after
          the epoch `resume_state()["epoch"]`;
        - "scoring": training ended, the scores were not written;
        - "finished": `metrics.json` is written;
        - "orphaned": epochs in `history.csv` but no resume state (deleted).

        Raises RunFolderError when the resume state cannot be read.
        """
        if (self.path / "metrics.json").is_file():
            return "finished"
        state = self.resume_state()
        if state is not None:
            return "scoring" if state["done"] else "training"
        if (self.path / "history.csv").is_file():
            return "orphaned"
        return "partial" if self.started() else "new"

    def cannot_resume(self, status):
        """The one-line reason `--resume` cannot go on for a "finished" or "orphaned" run."""
        if status == "finished":
            return (
                f"output.dir: the run in {self.path} has finished (metrics.json); there is nothing to resume. "
                "Score it again with `evaluate`, or set output.overwrite=true to train it again."
            )
        epochs = len(next(iter(self.read_history().values()), []))
        return (
            f"output.dir: {self.path} holds {epochs} epoch(s) in history.csv but no resume state "
            f"({self.backup} is gone), so the run cannot continue. Set output.overwrite=true to train it "
            "again from epoch 1, or choose another folder (--set output.dir=...)."
        )

    def resume_state(self):
        """The resume state `backup/state.json` (see the class docstring), or None without one.

        The previous backup is used when a swap was cut short
        (`toolkit.atomic.resolve_directory`). Raises RunFolderError naming the
        file when it cannot be read.
        """
        path = resolve_directory(self.backup) / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
                raise ValueError("not a resume state")
        except (ValueError, UnicodeDecodeError) as error:
            raise RunFolderError(self.unreadable_backup(path, error)) from None
        state.setdefault("done", False)
        return state

    def unreadable_backup(self, path, error):
        """The one-line error for a resume-state file that cannot be read."""
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return (
            f"{path}: the resume state cannot be read ({reason}). It was changed outside the toolkit; "
            "set output.overwrite=true to train the run again from epoch 1."
        )

    def discard_backup(self):
        """Delete the resume state (a finished run needs none)."""
        for name in ("backup", "backup.old", "backup.tmp"):
            shutil.rmtree(self.path / name, ignore_errors=True)

    def __truediv__(self, name):
        return self.path / name

    @property
    def best(self):
        return self.path / "best"

    @property
    def backup(self):
        return self.path / "backup"

    @property
    def cache(self):
        return self.path / "cache"

    @property
    def plots(self):
        return self.path / "plots"

    def write_json(self, name, obj):
        return write_json_atomic(self.path / name, obj)

    def read_json(self, name):
        """The JSON file `name` in the run folder, or None when it is absent."""
        path = self.path / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def read_history(self):
        """`history.csv` as `{column: [value per epoch]}` ({} before the first epoch).

        Empty cells (a value missing in some epoch) read as NaN.
        """
        path = self.path / "history.csv"
        if not path.is_file():
            return {}
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return {}
        names = [name for name in rows[0] if name not in ("epoch", None)]
        return {name: [float(row[name]) if row[name] else float("nan") for row in rows] for name in names}

    def write_history(self, rows):
        """Write `history.csv` atomically: one row per finished epoch (dicts with an `epoch` from 1).

        Columns: `epoch`, then every other key, sorted; a value missing from a
        row is an empty cell, a non-finite one is written as `nan`/`inf`.
        """
        names = sorted({name for row in rows for name in row if name != "epoch"})
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *names])
        for row in rows:
            writer.writerow([row["epoch"], *(_cell(row.get(name)) for name in names)])
        return self.write_text("history.csv", buffer.getvalue())

    def write_text(self, name, text):
        return write_text_atomic(self.path / name, text)


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def _cell(value):
    return "" if value is None else str(value)


def open_run_folder(config, replicas=None, *, resume=False):
    """The run folder this process writes into.

    `config.output.dir`, locked (`RunFolder.lock`: a second run into the
    same folder is refused) and prepared (`RunFolder.prepare`), on a single
    process and on the chief of `multi_worker_mirrored`. The other workers train in
    step with the chief but write into a temporary folder, as Keras' own
    checkpoint callbacks do on non-chief workers; with `resume` it starts with
    a copy of the chief's resume state (`backup/`, `best.json`), so that every
    worker continues from the same epoch. `close_run_folder` deletes it.
    """
    if replicas is None or replicas.is_chief:
        run = RunFolder(config.output.dir).lock()
        try:
            return run.prepare(overwrite=config.output.overwrite, resume=resume)
        except BaseException:
            run.unlock()
            raise
    chief = RunFolder(config.output.dir)
    run = RunFolder(tempfile.mkdtemp(prefix="toolkit-worker-")).prepare()
    backup = resolve_directory(chief.backup)
    if resume and backup.is_dir():
        shutil.copytree(backup, run.backup)
        for name in ("best.json", "history.csv"):
            if (chief / name).is_file():
                shutil.copy2(chief / name, run / name)
    return run


def close_run_folder(run, replicas=None):
    """Release the run folder's lock; delete a non-chief worker's temporary folder (see `open_run_folder`)."""
    if run.started():
        run.drop_replaced()  # usually gone after the first epoch already (`RunBackup`)
    run.unlock()
    if replicas is not None and not replicas.is_chief:
        shutil.rmtree(run.path, ignore_errors=True)
