"""The dependencies are declared once, in pyproject.toml; the requirements files pin exactly those."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]


def _name(requirement):
    """The normalised project name of a requirement line (`Keras-Hub>=0.2` -> `keras-hub`)."""
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pinned(path):
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    pins = [line for line in lines if line and not line.startswith(("#", "-r"))]
    assert all("==" in pin for pin in pins), f"{path.name}: every line pins one version"
    return {_name(pin) for pin in pins}


def _declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    own = project["name"]
    runtime = {_name(item) for item in project["dependencies"] + extras["tensorflow"] + extras["serve"]}
    development = {_name(item) for name in ("jax", "torch", "dev") for item in extras[name]} - {own}
    return runtime, development


def test_requirements_pin_what_pyproject_declares():
    runtime, development = _declared()
    assert _pinned(REPO / "requirements.txt") == runtime
    dev_pins = _pinned(REPO / "requirements-dev.txt")
    # jaxlib comes with jax; pinning it keeps the pair in step.
    assert dev_pins - {"jaxlib"} == development - runtime


def test_the_cli_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["zlpr"] == "toolkit.cli:main"


def test_transformers_is_pinned_for_the_benchmarks_and_never_a_toolkit_dependency():
    runtime, development = _declared()
    benchmark_pins = _pinned(REPO / "benchmarks" / "requirements-hf.txt")
    assert {"transformers", "accelerate"} <= benchmark_pins
    assert not {"transformers", "accelerate"} & (runtime | development)
    # On top of the development set, so that its torch pin (the CPU build) is the one installed.
    assert "-r ../requirements-dev.txt" in (REPO / "benchmarks" / "requirements-hf.txt").read_text(encoding="utf-8")
