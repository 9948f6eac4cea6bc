"""Every example script runs, as a user would start it, on its built-in demo (tiny settings).

Each quick run's score is the one `benchmarks/demo_scores.py --write` recorded for it in
docs/demo_scores.json, beside the full demos' scores the docs state: a change that moves what
the demos score shows here, and that script measures the stated numbers again."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, RERUN_DEMOS, TINY_ENCODER, demo_scores_script, recorded_demo, set_flags

TINY = [
    *TINY_ENCODER,
    "training.epochs=1",
]


demo_scores = demo_scores_script()


@pytest.mark.parametrize("demo", sorted(demo_scores.QUICK))
def test_example_runs_its_demo(tmp_path, demo):
    script, run_name, split, score = demo_scores.QUICK[demo]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    overrides = set_flags(TINY)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / run_name / "metrics.json").read_text())
    assert 0.0 <= metrics[split][score] <= 1.0
    recorded, tolerance = recorded_demo(demo)
    measured = demo_scores.quick_scores(demo, tmp_path / run_name)
    assert demo_scores.differences(demo, measured, recorded["quick"], tolerance) == [], RERUN_DEMOS
    assert "everything is in" in done.stderr
