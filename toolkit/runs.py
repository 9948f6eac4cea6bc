"""The run folder: where a training run writes everything, never half-written."""

import json
import shutil
from pathlib import Path

from toolkit.reports import write_json_atomic, write_text_atomic

__all__ = ["RunFolder", "write_json_atomic", "write_text_atomic", "RunFolderError"]


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
    """

    def __init__(self, directory):
        self.path = Path(directory)

    def prepare(self, *, overwrite=False, resume=False):
        """Create the folder; refuse one holding another run unless told."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"output.dir: {self.path} exists and is not a folder.")
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
        """`history.csv` as `{column: [value per epoch]}` ({} before the first epoch)."""
        path = self.path / "history.csv"
        if not path.is_file():
            return {}
        rows = path.read_text(encoding="utf-8").strip().splitlines()
        if len(rows) < 2:
            return {}
        names = rows[0].split(",")
        columns = {name: [] for name in names if name != "epoch"}
        for row in rows[1:]:
            for name, value in zip(names, row.split(",")):
                if name != "epoch":
                    columns[name].append(float(value) if value else float("nan"))
        return columns

    def write_text(self, name, text):
        return write_text_atomic(self.path / name, text)
