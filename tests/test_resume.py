"""A training run killed with SIGKILL mid-epoch resumes with `--resume` and ends consistent."""

import json
import os
import signal
import subprocess
import sys
import time

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
    assert [row.split(",")[0] for row in history[1:]] == [str(epoch) for epoch in range(EPOCHS)]
    best = json.loads((run / "best.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == best["epoch"] and 1 <= best["epoch"] <= EPOCHS
    assert not (run / "backup").exists(), "a finished run removes its resume state"
    assert not any(path.name.endswith((".tmp", ".old")) for path in run.rglob("*"))
