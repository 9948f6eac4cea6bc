"""Every example script runs, as a user would start it, on its built-in demo (tiny settings)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, TINY_ENCODER, set_flags

TINY = [
    *TINY_ENCODER,
    "training.epochs=1",
]


@pytest.mark.parametrize(
    "script,run_name,score",
    [
        ("multilabel_text_classification.py", "demo_classification", ("test", "micro_f1")),
        ("relation_extraction.py", "demo_relations", ("test", "f1")),
        ("entity_recognition.py", "demo_entities", ("test", "f1")),
    ],
)
def test_example_runs_its_demo(tmp_path, script, run_name, score):
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
    metrics = json.loads((tmp_path / "runs" / run_name / "metrics.json").read_text())
    split, name = score
    assert 0.0 <= metrics[split][name] <= 1.0
    assert "everything is in" in done.stderr
