"""The run folder: refuse a finished run, reuse a failed start, clear state on overwrite."""

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
