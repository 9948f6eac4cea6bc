"""The run folder: refuse a finished run, reuse a failed start, clear state on overwrite, one run at a time,
and read where a run stands."""

import json
import math
import os

import pytest

from toolkit.runs import RunFolder, RunFolderError


def _backup(run, epoch=1, done=False):
    """A resume state as `toolkit.callbacks.RunBackup` writes it (without the weights)."""
    (run.backup).mkdir(parents=True, exist_ok=True)
    history = [{"epoch": number, "loss": 1.0 / number} for number in range(1, epoch + 1)]
    (run.backup / "state.json").write_text(json.dumps({"epoch": epoch, "done": done, "history": history}))
    run.write_history(history)


def test_a_run_that_finished_an_epoch_is_refused_without_overwrite_or_resume(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    _backup(run)
    with pytest.raises(RunFolderError, match=r"output.dir: .* already holds a run.*--resume"):
        RunFolder(tmp_path / "run").prepare()
    RunFolder(tmp_path / "run").prepare(resume=True)
    assert (run / "history.csv").exists() and run.backup.is_dir()


def test_status_says_where_a_run_stands(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.status() == "new"
    run.prepare()
    (run / "config.yaml").write_text("task: x\n")
    assert run.status() == "new"
    run.best.mkdir()  # killed in epoch 1 after saving a first best model, before its backup
    assert run.status() == "partial"
    _backup(run, epoch=2)
    assert run.status() == "training" and run.resume_state()["epoch"] == 2
    _backup(run, epoch=3, done=True)
    assert run.status() == "scoring"
    (run / "metrics.json").write_text("{}")
    assert run.status() == "finished"
    (run / "metrics.json").unlink()
    run.discard_backup()
    assert run.status() == "orphaned"
    with pytest.raises(RunFolderError, match=r"holds 3 epoch\(s\) in history.csv but no resume state"):
        RunFolder(tmp_path / "run").prepare(resume=True)


def test_resume_of_a_run_stopped_before_its_first_backup_starts_afresh(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    run.best.mkdir()
    (run / "best.json").write_text('{"epoch": 1, "score": 0.5}')
    RunFolder(tmp_path / "run").prepare(resume=True)
    assert not run.best.exists() and not (run / "best.json").exists()


def test_the_previous_backup_is_read_when_a_swap_was_cut_short(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    _backup(run, epoch=2)
    run.backup.rename(tmp_path / "run" / "backup.old")
    assert run.status() == "training" and run.resume_state()["epoch"] == 2


def test_an_unreadable_resume_state_is_one_line_naming_the_file(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    run.backup.mkdir()
    (run.backup / "state.json").write_text('{"epoch": 2, "hist')
    with pytest.raises(RunFolderError) as caught:
        run.status()
    message = str(caught.value)
    assert message.startswith(f"{run.backup / 'state.json'}: the resume state cannot be read (") and "\n" not in message
    assert message.endswith("set output.overwrite=true to train the run again from epoch 1.")


def test_history_is_written_and_read_back_with_missing_and_non_finite_values(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    run.write_history([{"epoch": 1, "loss": 2.5, "val_f1": 0.25}, {"epoch": 2, "loss": float("nan")}])
    assert (run / "history.csv").read_text() == "epoch,loss,val_f1\n1,2.5,0.25\n2,nan,\n"
    history = run.read_history()
    assert history["loss"][0] == 2.5 and math.isnan(history["loss"][1]) and math.isnan(history["val_f1"][1])


def test_the_lock_is_re_entrant_within_a_process(tmp_path):
    outer = RunFolder(tmp_path / "run").lock()
    inner = RunFolder(tmp_path / "run").lock()  # the same process: granted
    inner.unlock()
    with open(tmp_path / "run" / ".lock") as handle:  # still held by `outer`
        import fcntl

        with pytest.raises(OSError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    outer.unlock()
    with open(tmp_path / "run" / ".lock") as handle:  # released
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_folder_left_by_a_failed_start_is_reused(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    (run / "config.yaml").write_text("task: x\n")
    RunFolder(tmp_path / "run").prepare()  # no epoch finished: nothing to protect


def test_overwrite_clears_the_old_runs_state_but_resume_keeps_it(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    _backup(run)
    (run.best).mkdir()
    (run / "best.json").write_text("{}")
    (run / "notes.txt").write_text("the user's own file")
    RunFolder(tmp_path / "run").prepare(resume=True)
    assert run.backup.exists() and run.best.exists()
    (run / "logs" / "train").mkdir(parents=True)
    (run / "logs" / "train" / "events.out.tfevents.1").write_text("the old run's curves")
    (run / "plots" / "learning_curves.png").write_text("png")
    (run / "report.txt").write_text("the old scores")
    (run / "cache" / "tokens-abc.npz").write_text("tokens")
    RunFolder(tmp_path / "run").prepare(overwrite=True)
    assert not run.backup.exists() and not run.best.exists() and not (run / "best.json").exists()
    # The replaced run's TensorBoard logs, plots and report go with it; the token cache (named by
    # what it holds) and the user's own files stay.
    assert list((run / "logs").iterdir()) == [] and list(run.plots.iterdir()) == []
    assert not (run / "report.txt").exists() and (run / "cache" / "tokens-abc.npz").exists()
    assert (run / "notes.txt").read_text() == "the user's own file"


def _old_run(folder):
    """A finished earlier run: its config, backup, history, model, plot and TensorBoard log."""
    run = RunFolder(folder).prepare()
    _backup(run, epoch=2)
    (run / "config.yaml").write_text("the old run's config\n")
    (run / "metrics.json").write_text("{}\n")
    run.best.mkdir()
    (run.plots / "learning_curves.png").write_text("the old curves")
    (run / "logs" / "events.out.tfevents.1").write_text("the old events")
    return _files(folder)


def _files(folder):
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def test_overwrite_keeps_the_old_run_until_the_new_one_begins(tmp_path):
    from toolkit.runs import close_run_folder

    old = _old_run(tmp_path / "run")
    # A start with overwrite that fails before its first epoch: the old run comes back whole.
    new = RunFolder(tmp_path / "run").lock().prepare(overwrite=True)
    assert not new.started() and new.status() == "new"
    (new / "config.yaml").write_text("the new run's config\n")
    (new.plots / "data.png").write_text("a plot of the new start")
    new.discard_start()
    close_run_folder(new)
    assert _files(tmp_path / "run") == old
    # A start killed between the two (no discard_start): the next start puts the old run back first,
    # so it is refused without overwrite as before.
    RunFolder(tmp_path / "run").lock().prepare(overwrite=True).unlock()
    assert (tmp_path / "run" / ".replaced").is_dir()
    with pytest.raises(RunFolderError, match="already holds a run"):
        RunFolder(tmp_path / "run").prepare()
    assert _files(tmp_path / "run") == old
    # Once the new run has finished an epoch, the old one is gone.
    new = RunFolder(tmp_path / "run").lock().prepare(overwrite=True)
    _backup(new, epoch=1)
    close_run_folder(new)
    assert not (tmp_path / "run" / ".replaced").exists()
    assert "metrics.json" not in _files(tmp_path / "run") and "best" not in os.listdir(tmp_path / "run")


def test_overwrite_with_a_missing_encoder_file_leaves_the_old_run_as_it_was(tmp_path, capsys):
    """The encoder is loaded after the run folder is prepared: the failed start must not cost the old run."""
    from toolkit.cli import main
    from toolkit.config import default_config
    from toolkit.data.synthetic import write_multilabel_demo

    write_multilabel_demo(tmp_path / "data", n_train=40, n_dev=20, n_test=20, seed=1)
    output = tmp_path / "run"
    old = _old_run(output)
    default_config("multilabel_classification", data_dir=tmp_path / "data", output_dir=output).save(
        tmp_path / "config.yaml"
    )
    settings = ["--set", "output.overwrite=true", "--set", f"model.encoder.vocab={tmp_path / 'missing.txt'}"]
    assert main(["train", str(tmp_path / "config.yaml"), *settings]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert _files(output) == old


def test_a_failed_start_removes_what_it_made_and_nothing_else(tmp_path):
    # A new folder (and the parent its creation made) goes whole.
    run = RunFolder(tmp_path / "runs" / "run").lock().prepare()
    (run / "config.yaml").write_text("task: x\n")
    run.discard_start()
    run.unlock()
    assert list(tmp_path.iterdir()) == []
    # In a folder that was there, only what this start made goes.
    folder = tmp_path / "run"
    (folder / "logs").mkdir(parents=True)
    (folder / "notes.txt").write_text("the user's own file")
    run = RunFolder(folder).lock().prepare()
    (run / "config.yaml").write_text("task: x\n")
    (run / "cache" / "tokens-abc.npz").write_text("tokens")
    run.discard_start()
    run.unlock()
    assert sorted(path.name for path in folder.iterdir()) == ["logs", "notes.txt"]
    # Once the run began (a model saved), nothing goes; without the lock, nothing goes.
    run = RunFolder(folder).lock().prepare()
    run.best.mkdir()
    run.discard_start()
    run.unlock()
    RunFolder(folder).discard_start()
    assert run.best.is_dir() and (run / "cache").is_dir()


def test_a_file_in_place_of_the_folder_is_an_error(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(RunFolderError, match="exists and is not a folder"):
        RunFolder(tmp_path / "run").prepare()


def _config(tmp_path, output):
    from toolkit.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(
        f"task: multilabel_classification\ndata: {{train: a.jsonl, dev: b.jsonl}}\noutput: {{dir: {output}}}\n",
        encoding="utf-8",
    )
    return path, load_config(path)


def _hold_lock(folder):
    """Another process that holds the folder's lock as a run does, until killed."""
    import subprocess
    import sys

    code = (
        "import sys; from toolkit.runs import RunFolder; RunFolder(sys.argv[1]).lock(); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_into_a_locked_folder_exits_2_naming_the_holder(tmp_path, capsys):
    from toolkit.cli import main

    for name in ("a.jsonl", "b.jsonl"):  # good data: the second run gets as far as the folder
        (tmp_path / name).write_text('{"text": "fine", "labels": ["x"]}\n', encoding="utf-8")
    path, _ = _config(tmp_path, tmp_path / "run")
    holder = _hold_lock(tmp_path / "run")  # the first run holds the folder
    try:
        assert main(["train", str(path)]) == 2
        message = capsys.readouterr().err.strip()
        assert message == (
            f"error: output.dir: {tmp_path / 'run'} is in use by another run (process {holder.pid}). "
            "Wait for it to end, or choose another folder (--set output.dir=...)."
        )
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    # Released when its holder died: the next run gets the folder (and then stops at the encoder the config lacks).
    assert main(["train", str(path)]) == 2
    assert "in use" not in capsys.readouterr().err


def test_a_stale_lock_file_does_not_block(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text("999999\n")  # left by a killed process: no flock held
    run = RunFolder(tmp_path / "run").lock()
    assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    run.unlock()


def test_an_output_dir_below_a_regular_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match=r"^output.dir: cannot create .*/file/run \(Not a directory\)\.$"):
        RunFolder(tmp_path / "file" / "run").lock()


def test_overwrite_with_bad_data_leaves_the_old_run_as_it_was(tmp_path, capsys):
    from toolkit.cli import main

    old = tmp_path / "run"
    old.mkdir()
    files = {"config.yaml": "the old run's config\n", "metrics.json": "{}\n", "history.csv": "epoch,loss\n0,1.0\n"}
    for name, text in files.items():
        (old / name).write_text(text, encoding="utf-8")
    (old / "best").mkdir()
    (tmp_path / "a.jsonl").write_text('{"text": "fine", "labels": ["x"]}\n{broken\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "fine", "labels": ["x"]}\n', encoding="utf-8")
    path, _ = _config(tmp_path, old)
    assert main(["train", str(path), "--set", "output.overwrite=true"]) == 2
    assert "a.jsonl:2: malformed JSON" in capsys.readouterr().err
    assert {name: (old / name).read_text(encoding="utf-8") for name in files} == files
    assert (old / "best").is_dir()


@pytest.mark.parametrize("task", ["classification", "relations"])
def test_a_start_that_fails_after_reading_the_data_leaves_no_run_folder(tmp_path, task, capsys):
    """A missing encoder file is found once the folder is made: the folder goes again. A missing data file is
    found before it is made."""
    from toolkit.cli import main
    from toolkit.config import default_config
    from toolkit.data.synthetic import write_multilabel_demo, write_relation_demo

    if task == "classification":
        write_multilabel_demo(tmp_path / "data", n_train=40, n_dev=20, n_test=20, seed=1)
        name = "multilabel_classification"
    else:
        write_relation_demo(tmp_path / "data", n_train=40, n_dev=20, n_test=20, seed=1)
        name = "relation_extraction"
    output = tmp_path / "runs" / "run"
    default_config(name, data_dir=tmp_path / "data", output_dir=output).save(tmp_path / "config.yaml")
    config = str(tmp_path / "config.yaml")
    assert main(["train", config, "--set", f"model.encoder.vocab={tmp_path / 'missing.txt'}"]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(["train", config, "--set", f"data.train={tmp_path / 'missing.jsonl'}"]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
