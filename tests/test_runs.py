"""The run folder: refuse a finished run, reuse a failed start, clear state on overwrite, one run at a time."""

import os

import pytest

from toolkit.runs import RunFolder, RunFolderError


def test_a_run_that_finished_an_epoch_is_refused_without_overwrite_or_resume(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    (run / "history.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(RunFolderError, match=r"output.dir: .* already holds a run.*--resume"):
        RunFolder(tmp_path / "run").prepare()
    RunFolder(tmp_path / "run").prepare(resume=True)
    assert (run / "history.csv").exists()


def test_a_folder_left_by_a_failed_start_is_reused(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    (run / "config.yaml").write_text("task: x\n")
    RunFolder(tmp_path / "run").prepare()  # no epoch finished: nothing to protect


def test_overwrite_clears_the_old_runs_state_but_resume_keeps_it(tmp_path):
    run = RunFolder(tmp_path / "run").prepare()
    (run.backup).mkdir()
    (run.backup / "latest.weights.h5").write_text("old")
    (run.best).mkdir()
    (run / "best.json").write_text("{}")
    (run / "notes.txt").write_text("the user's own file")
    RunFolder(tmp_path / "run").prepare(resume=True)
    assert run.backup.exists() and run.best.exists()
    RunFolder(tmp_path / "run").prepare(overwrite=True)
    assert not run.backup.exists() and not run.best.exists() and not (run / "best.json").exists()
    assert (run / "notes.txt").read_text() == "the user's own file"


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


def test_a_second_run_into_a_locked_folder_exits_2_naming_the_holder(tmp_path, capsys):
    from toolkit.cli import main
    from toolkit.runs import close_run_folder, open_run_folder

    for name in ("a.jsonl", "b.jsonl"):  # good data: the second run gets as far as the folder
        (tmp_path / name).write_text('{"text": "fine", "labels": ["x"]}\n', encoding="utf-8")
    path, config = _config(tmp_path, tmp_path / "run")
    first = open_run_folder(config)  # the first run holds the folder
    try:
        assert main(["train", str(path)]) == 2
        message = capsys.readouterr().err.strip()
        assert message == (
            f"error: output.dir: {tmp_path / 'run'} is in use by another run (process {os.getpid()}). "
            "Wait for it to end, or choose another folder (--set output.dir=...)."
        )
        assert sorted(p.name for p in first.path.iterdir()) == [".lock", "cache", "logs", "plots"]
    finally:
        close_run_folder(first)
    # Released: the next run gets the folder (and then stops at the encoder the config lacks).
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
