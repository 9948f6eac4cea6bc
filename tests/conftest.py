"""Shared test setup: fixed seeds, and the path of ../shared when it exists."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


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
