"""Shared test setup: fixed seeds, the tiny encoder overrides, and the path of ../shared when it exists."""

import importlib.util
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Config overrides for a one-layer, 32-wide random encoder: a run trains in seconds.
# Test files add their own `model.maxlen` and `training.*` settings.
TINY_ENCODER = (
    "model.encoder.num_layers=1",
    "model.encoder.hidden_dim=32",
    "model.encoder.num_heads=2",
    "model.encoder.intermediate_dim=64",
)


def set_flags(overrides):
    """Overrides as command-line arguments: `["a=1", "b=2"]` -> `["--set", "a=1", "--set", "b=2"]`."""
    return [item for override in overrides for item in ("--set", override)]


def shared_dir():
    """`../shared` beside the checkout (or $TOOLKIT_SHARED_DIR), or None."""
    candidate = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
    return candidate if (candidate / "data").is_dir() else None


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the default dtype policy and a known seed."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


DEMO_SCORES = REPO_ROOT / "docs" / "demo_scores.json"


def recorded_demo(name):
    """`(entry, tolerance)`: demo `name`'s recorded scores in docs/demo_scores.json
    (`benchmarks/demo_scores.py --write` measures them)."""
    scores = json.loads(DEMO_SCORES.read_text(encoding="utf-8"))
    return scores["demos"][name], scores["tolerance"]


def demo_scores_script():
    """`benchmarks/demo_scores.py` as a module: it reads the stated scores and compares runs with them."""
    spec = importlib.util.spec_from_file_location("demo_scores", REPO_ROOT / "benchmarks" / "demo_scores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RERUN_DEMOS = (
    "the demos' results changed: `python benchmarks/demo_scores.py --write` measures them again and "
    "rewrites the scores the README and the examples state"
)
