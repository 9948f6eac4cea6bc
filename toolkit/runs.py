"""The run folder and its lifecycle: where a training run writes everything, never half-written.

- `RunFolder`: the layout of one run, refusing a folder that holds another
  run, and reading back what a run wrote (`history.csv`, JSON files);
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
import json
import os
import shutil
import tempfile
from pathlib import Path

from toolkit.atomic import write_json_atomic, write_text_atomic

__all__ = ["RunFolder", "RunFolderError", "open_run_folder", "close_run_folder"]


class RunFolderError(ValueError):
    """The output folder cannot be used as asked."""


_RUN_MARKERS = ("best", "best.old", "best.json", "backup", "history.csv", "metrics.json")


class RunFolder:
    """The files of one training run.

    Layout:

    - `config.yaml`: the resolved config the run used;
    - `best/`: the best model so far (a `MultilabelPredictor` folder, or the
      pipeline's own), replaced atomically;
    - `metrics.json`, `report.txt`, `report_<split>.json`: scores on dev and test;
    - `history.csv`, `plots/*.png`, `logs/` (TensorBoard), `backup/` (resume
      state), `cache/` (tokenized data).

    A folder that already holds a run (one that finished at least one epoch)
    is refused unless `overwrite=True` or `resume=True` (an interrupted run
    started again with the same config). A folder left by a run that failed
    before its first epoch (a bad data line, a missing encoder file) is reused.

    One run at a time: `lock()` takes an OS file lock on `<folder>/.lock`
    (`fcntl.flock`), which a second process asking for the same folder cannot
    get; the operating system releases it when the holder ends, however it
    ends, so a stale `.lock` file never blocks.
    """

    def __init__(self, directory):
        self.path = Path(directory)
        self._lock = None

    def lock(self):
        """Take the folder's lock (creating the folder); RunFolderError naming the holder if it is taken."""
        self._check_is_folder()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"output.dir: cannot create {self.path} ({error.strerror}).") from None
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
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
        self._lock = handle
        return self

    def unlock(self):
        """Release the lock `lock()` took (a no-op without one)."""
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _check_is_folder(self):
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"output.dir: {self.path} exists and is not a folder.")

    def prepare(self, *, overwrite=False, resume=False):
        """Create the folder; refuse one holding another run unless told."""
        self._check_is_folder()
        if self.started() and not (overwrite or resume):
            raise RunFolderError(
                f"output.dir: {self.path} already holds a run. Choose another folder "
                "(--set output.dir=...), set output.overwrite=true to replace it, or run "
                "the same command again with --resume to continue an interrupted run."
            )
        if overwrite and not resume:
            # A fresh start: the old run's state must not leak in (Keras would
            # restore a leftover backup/ as if resuming).
            for name in _RUN_MARKERS:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        for sub in ("plots", "logs", "cache"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        return self

    def started(self):
        """Whether the folder holds a run that got as far as one epoch."""
        return any((self.path / name).exists() for name in _RUN_MARKERS)

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

    def write_text(self, name, text):
        return write_text_atomic(self.path / name, text)


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
    if resume:
        if chief.backup.is_dir():
            shutil.copytree(chief.backup, run.backup)
        if (chief / "best.json").is_file():
            shutil.copy2(chief / "best.json", run / "best.json")
    return run


def close_run_folder(run, replicas=None):
    """Release the run folder's lock; delete a non-chief worker's temporary folder (see `open_run_folder`)."""
    run.unlock()
    if replicas is not None and not replicas.is_chief:
        shutil.rmtree(run.path, ignore_errors=True)
