"""Runs that survive: a killed run resumes to what the uninterrupted run gives, at any instant.

One subprocess is killed with SIGKILL for real; the other cases stop a run
in-process at a chosen instant (`Killed`, raised where the kill would land)
and leave the folder as a kill there would, then resume it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.test_classification_pipeline import TINY
from toolkit.config import default_config
from toolkit.data.synthetic import write_multilabel_demo

EPOCHS = 3


def start_training(config_path, *extra):
    environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "toolkit", "train", str(config_path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
def test_killed_run_resumes_from_its_last_finished_epoch(tmp_path):
    write_multilabel_demo(tmp_path / "data", n_train=400, n_dev=60, n_test=60, seed=7)
    config = default_config(
        "multilabel_classification",
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        overrides=[*TINY, f"training.epochs={EPOCHS}", "training.batch_size=8"],
    )
    config.save(tmp_path / "config.yaml")
    run = tmp_path / "run"

    process = start_training(tmp_path / "config.yaml")
    seen = []
    deadline = time.monotonic() + 600
    for line in process.stdout:  # read until the second epoch is under way
        seen.append(line)
        if line.startswith(f"Epoch 2/{EPOCHS}"):
            break  # kill at once: a tiny epoch can finish within a second
        assert time.monotonic() < deadline, "".join(seen[-20:])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert (run / "backup").is_dir(), "no resume state after the first epoch"
    assert not (run / "metrics.json").exists()
    first_best = json.loads((run / "best.json").read_text())
    finished = len((run / "history.csv").read_text().strip().splitlines()) - 1
    assert 1 <= finished < EPOCHS and first_best["epoch"] <= finished

    refused = start_training(tmp_path / "config.yaml")
    output, _ = refused.communicate(timeout=600)
    assert refused.returncode == 2 and "--resume" in output, output[-2000:]

    resumed = start_training(tmp_path / "config.yaml", "--resume")
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output[-3000:]
    assert f"Epoch {finished}/{EPOCHS}" not in output and f"Epoch {finished + 1}/{EPOCHS}" in output
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == [str(epoch) for epoch in range(1, EPOCHS + 1)]
    best = json.loads((run / "best.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == best["epoch"] and 1 <= best["epoch"] <= EPOCHS
    assert not (run / "backup").exists(), "a finished run removes its resume state"
    assert not any(path.name.endswith((".tmp", ".old")) for path in run.rglob("*"))


# --- in-process: stopped at a chosen instant, then resumed --------------------------------

# Dropout and EMA on: a resumed run must restore the dropout seeds and the
# optimiser's averages to train as the uninterrupted run does.
RESUMABLE = [*TINY, f"training.epochs={EPOCHS}", "training.ema=0.9", "model.dropout=0.2"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException: no handler catches it)."""


def _config(data, output, *extra):
    return default_config("multilabel_classification", data_dir=data, output_dir=output, overrides=[*RESUMABLE, *extra])


def _train(config, resume=False):
    from toolkit.classification.pipeline import ClassificationPipeline

    return ClassificationPipeline(config, log=lambda message: None).train(resume=resume)


def _comparable(metrics):
    return {key: value for key, value in metrics.items() if key not in ("train_seconds", "epoch_train_seconds")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted run, and the same run stopped right after epoch 2's backup was written."""
    from toolkit.callbacks import RunBackup

    root = tmp_path_factory.mktemp("resume")
    write_multilabel_demo(root / "data", n_train=240, n_dev=80, n_test=80, seed=3)
    _train(_config(root / "data", root / "whole"))

    original = RunBackup.on_epoch_begin

    def killed_after_the_backup(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 2:
            raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunBackup, "on_epoch_begin", killed_after_the_backup)
        with pytest.raises(Killed):
            _train(_config(root / "data", root / "killed"))
    return root


def _copy(runs, tmp_path):
    """A private copy of the killed run's folder."""
    return Path(shutil.copytree(runs / "killed", tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))


def _files(folder):
    """Every file of a folder: path -> (content, modification time)."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_killed_run_left_a_backup_of_its_last_finished_epoch(runs):
    folder = runs / "killed"
    state = json.loads((folder / "backup" / "state.json").read_text())
    assert state["epoch"] == 2 and not state["done"]
    assert sorted(path.name for path in (folder / "backup").iterdir()) == [
        "model.weights.h5",
        "random.npz",
        "state.json",
    ]
    assert len((folder / "history.csv").read_text().splitlines()) == 1 + 2
    assert not (folder / "metrics.json").exists()


def test_a_resumed_run_equals_the_uninterrupted_run(runs, tmp_path):
    run = _copy(runs, tmp_path)
    results = _train(_config(runs / "data", run), resume=True)
    whole = runs / "whole"
    assert (run / "history.csv").read_text() == (whole / "history.csv").read_text()  # every loss, to the bit
    assert (run / "best.json").read_text() == (whole / "best.json").read_text()
    uninterrupted = json.loads((whole / "metrics.json").read_text())
    assert _comparable(results) == _comparable(uninterrupted)
    # the epochs before the kill keep the times they were trained in; the rest are this process's
    assert len(results["epoch_train_seconds"]) == len(uninterrupted["epoch_train_seconds"])
    assert not any(run.glob("backup*")), "a finished run keeps no resume state"


def test_a_kill_while_the_backup_is_written_resumes_from_the_previous_one(runs, tmp_path):
    """Killed half-way through writing epoch 3's backup: the half-written copy is beside the
    complete one of epoch 2, which the resume uses."""
    run = _copy(runs, tmp_path)
    shutil.copytree(run / "backup", run / "backup.tmp")
    weights = run / "backup.tmp" / "model.weights.h5"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 3)
    _train(_config(runs / "data", run), resume=True)
    assert (run / "history.csv").read_text() == (runs / "whole" / "history.csv").read_text()


def test_a_kill_between_the_two_renames_of_the_backup_resumes_from_the_old_one(runs, tmp_path):
    run = _copy(runs, tmp_path)
    (run / "backup").rename(run / "backup.old")  # the old one moved aside, the new one not yet in place
    _train(_config(runs / "data", run), resume=True)
    assert (run / "history.csv").read_text() == (runs / "whole" / "history.csv").read_text()


def test_an_unreadable_backup_is_one_line_saying_what_to_do(runs, tmp_path, capsys):
    from toolkit.cli import main

    run = _copy(runs, tmp_path)
    config = _config(runs / "data", run)
    config.save(tmp_path / "config.yaml")
    weights = run / "backup" / "model.weights.h5"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 3)
    history = (run / "history.csv").read_text()
    assert main(["train", str(tmp_path / "config.yaml"), "--resume"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: {weights}: the resume state cannot be read (") and "\n" not in message
    assert message.endswith("set output.overwrite=true to train the run again from epoch 1.")
    assert (run / "history.csv").read_text() == history


def test_resume_without_the_backup_is_refused_and_keeps_the_history(runs, tmp_path, capsys):
    from toolkit.cli import main

    run = _copy(runs, tmp_path)
    shutil.rmtree(run / "backup")
    _config(runs / "data", run).save(tmp_path / "config.yaml")
    before = _files(run)
    assert main(["train", str(tmp_path / "config.yaml"), "--resume"]) == 2
    message = capsys.readouterr().err.strip()
    assert message == (
        f"error: output.dir: {run} holds 2 epoch(s) in history.csv but no resume state ({run / 'backup'} is "
        "gone), so the run cannot continue. Set output.overwrite=true to train it again from epoch 1, or choose "
        "another folder (--set output.dir=...)."
    )
    assert _files(run) == before


def test_resume_with_another_config_is_refused_naming_the_keys(runs, tmp_path):
    from toolkit.runs import RunFolderError

    run = _copy(runs, tmp_path)
    changed = _config(runs / "data", run, "training.seed=7", "training.epochs=5")
    with pytest.raises(
        RunFolderError,
        match=r"^--resume: the config differs .*\(training.epochs: 3 in the run, 5 now; "
        r"training.seed: 42 in the run, 7 now\)",
    ):
        _train(changed, resume=True)


def test_resume_on_a_finished_run_says_so_and_touches_nothing(runs, tmp_path, caplog):
    import logging

    from toolkit.cli import main

    run = Path(shutil.copytree(runs / "whole", tmp_path / "run"))
    _config(runs / "data", run).save(tmp_path / "config.yaml")
    before = _files(run)
    with caplog.at_level(logging.INFO, logger="toolkit"):
        assert main(["train", str(tmp_path / "config.yaml"), "--resume"]) == 0
    assert f"the run in {run} has finished (metrics.json); there is nothing to resume" in caplog.text
    assert _files(run) == before


def test_a_run_killed_while_being_scored_is_only_scored_on_resume(runs, tmp_path, monkeypatch):
    from toolkit.pipeline import Pipeline

    run = _copy(runs, tmp_path)
    config = _config(runs / "data", run)
    evaluate = Pipeline.evaluate

    def killed_while_scoring(self, *args, **kwargs):
        raise Killed

    monkeypatch.setattr(Pipeline, "evaluate", killed_while_scoring)
    with pytest.raises(Killed):
        _train(config, resume=True)  # trains epoch 3, then dies in the scoring
    state = json.loads((run / "backup" / "state.json").read_text())
    assert state["done"] and state["epoch"] == EPOCHS and not (run / "metrics.json").exists()
    history = (run / "history.csv").read_text()

    monkeypatch.setattr(Pipeline, "evaluate", evaluate)
    monkeypatch.setattr(Pipeline, "fit", lambda *args, **kwargs: pytest.fail("a finished training was repeated"))
    results = _train(config, resume=True)
    whole = runs / "whole"
    assert (run / "history.csv").read_text() == history == (whole / "history.csv").read_text()
    assert _comparable(results) == _comparable(json.loads((whole / "metrics.json").read_text()))
    assert not any(run.glob("backup*"))


def test_a_nan_loss_in_the_first_epoch_is_one_line(tmp_path, capsys):
    from toolkit.cli import main

    write_multilabel_demo(tmp_path / "data", n_train=64, n_dev=32, n_test=32, seed=3)
    config = _config(tmp_path / "data", tmp_path / "run", "training.learning_rate=1e30", "training.ema=null")
    config.save(tmp_path / "config.yaml")
    assert main(["train", str(tmp_path / "config.yaml")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: Training stopped: the loss became nan at epoch 1, batch ") and "\n" not in message
    assert "no model had been saved yet" in message


def test_a_time_budget_ends_the_run_at_an_epoch_end_and_is_recorded(tmp_path):
    write_multilabel_demo(tmp_path / "data", n_train=120, n_dev=40, n_test=40, seed=5)
    metrics = _train(_config(tmp_path / "data", tmp_path / "run", "training.max_minutes=0.0001"))
    assert metrics["budget_stopped"]["epoch"] == 1 and metrics["budget_stopped"]["max_minutes"] == 0.0001
    assert metrics["best_epoch"] == 1 and metrics["early_stopped"] is None
    history = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 2, history  # the header and epoch 1
