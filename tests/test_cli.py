"""The command line's own surface: its name, --version, help for every argument, a quiet start-up."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TINY_ENCODER, set_flags
from toolkit import __version__, cli


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"python -m toolkit {__version__}"


def test_the_installed_command_calls_itself_zlpr(monkeypatch):
    for started_as in ("/usr/local/bin/zlpr", r"C:\Python\Scripts\zlpr.exe"):
        monkeypatch.setattr(sys, "argv", [started_as.replace("\\", os.sep), "--help"])
        assert cli._parser().format_usage().startswith("usage: zlpr ")
    monkeypatch.setattr(sys, "argv", ["/repo/toolkit/__main__.py"])
    assert cli._parser().format_usage().startswith("usage: python -m toolkit ")


def test_every_positional_argument_has_help():
    parser = cli._parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    for name, command in commands.choices.items():
        for action in command._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest} has no help"


def test_help_runs_without_keras():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from toolkit import cli; cli._parser().format_help(); print('keras' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_get_encoder_and_convert_list_what_they_know_without_importing_numpy():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from toolkit import cli; parser = cli._parser();"
            "print(parser.parse_args(['get-encoder', 'x']).source, 'numpy' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["auto", "False"]
    from toolkit.sources import CONVERTERS, PUBLIC_ENCODERS

    commands = next(action for action in cli._parser()._actions if action.dest == "command")
    # argparse wraps the help at hyphens: compare without the white space.
    encoder_help = "".join(commands.choices["get-encoder"].format_help().split())
    convert_help = "".join(commands.choices["convert"].format_help().split())
    assert all(name in encoder_help for name in PUBLIC_ENCODERS)
    assert "m3e-small" in encoder_help and "NON-COMMERCIAL,RESEARCHUSEONLY" in encoder_help  # its licence, named
    assert all(name in convert_help for name in CONVERTERS)


def test_the_get_encoder_script_runs_this_checkout_from_any_folder(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "get-encoder"
    done = subprocess.run(["bash", str(script), "no-such-encoder"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().endswith("known: all-MiniLM-L6-v2, bert-base-chinese, chinese-bert-wwm-ext, m3e-small")


# --- Quiet start-up: TensorFlow's harmless C++ lines are hidden, nothing else is ----------------------

HARMLESS_FRAGMENTS = (
    "absl::InitializeLog",
    "port.cc",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "cuInit",
    "DT_INT64",
    "retracing",
)


def _environment(**settings):
    """This environment without the variables that change what is printed, plus `settings`."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZLPR_VERBOSE")}
    return dict(environment, PYTHONPATH=str(REPO_ROOT), **settings)


def test_a_relation_run_prints_no_start_up_noise_and_numbers_its_epochs_from_1(tmp_path):
    """The command line as a user starts it: no TensorFlow start-up lines, no retracing warning (the decoders
    pad to fixed shapes), the toolkit's log; the best epoch is the same number in the log, best.json and
    history.csv."""
    from toolkit.config import default_config
    from toolkit.data.synthetic import write_relation_demo

    write_relation_demo(tmp_path / "data", n_train=64, n_dev=48, n_test=48, seed=3)
    config = default_config("relation_extraction", data_dir=tmp_path / "data", output_dir=tmp_path / "run")
    config.save(tmp_path / "config.yaml")
    settings = [*TINY_ENCODER, "model.maxlen=64", "training.epochs=2", "training.batch_size=16"]
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "train", str(tmp_path / "config.yaml"), *set_flags(settings)],
        capture_output=True,
        text=True,
        env=_environment(KERAS_BACKEND="tensorflow"),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if any(f in line for f in HARMLESS_FRAGMENTS)] == []
    assert "devices: " in done.stderr and "dev: precision" in done.stderr
    best = json.loads((tmp_path / "run" / "best.json").read_text())["epoch"]
    assert f"best epoch {best}: val_micro_f1" in done.stderr
    with open(tmp_path / "run" / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert float(rows[best - 1]["val_micro_f1"]) == pytest.approx(
        json.loads((tmp_path / "run" / "best.json").read_text())["score"]
    )


FILTERED = """
import os, sys, warnings
from toolkit.native_logs import quiet_native_logs
print(quiet_native_logs(), os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:17.5 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\\n")
os.write(2, b"E0000 00:00:17.5 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: (303)\\n")
os.write(2, b"E0000 00:00:17.5 1 bfc_allocator.cc:291] a genuine C++ error\\n")
warnings.warn("a warning of the user's")
os.write(2, b"last words without a newline")
if sys.argv[1] == "abort":
    os.abort()  # a C++ CHECK failure: the process dies at once, with its last words in the pipe
raise RuntimeError("a crash")
"""


@pytest.mark.parametrize("ending", ["abort", "traceback"])
def test_the_filter_drops_only_the_harmless_lines_and_loses_nothing_when_the_process_dies(ending):
    done = subprocess.run(
        [sys.executable, "-c", FILTERED, ending], capture_output=True, text=True, env=_environment(), timeout=60
    )
    assert done.stdout.split() == ["True", "1"]  # filtered; C++ info lines off by default
    assert done.returncode != 0
    assert [line for line in done.stderr.splitlines() if any(f in line for f in HARMLESS_FRAGMENTS)] == []
    for shown in ("bfc_allocator.cc:291] a genuine C++ error", "UserWarning: a warning of the user's"):
        assert shown in done.stderr
    assert "last words without a newline" in done.stderr
    if ending == "traceback":
        assert done.stderr.rstrip().endswith("RuntimeError: a crash")


@pytest.mark.parametrize(
    ("setting", "expected"), [({"ZLPR_VERBOSE": "1"}, "False None"), ({"TF_CPP_MIN_LOG_LEVEL": "0"}, "True 0")]
)
def test_verbose_shows_everything_and_the_users_log_level_is_kept(setting, expected):
    done = subprocess.run(
        [sys.executable, "-c", FILTERED, "traceback"],
        capture_output=True,
        text=True,
        env=_environment(**setting),
        timeout=60,
    )
    assert done.stdout.strip() == expected
    verbose = "ZLPR_VERBOSE" in setting
    assert ("cuInit" in done.stderr) is verbose and "a genuine C++ error" in done.stderr


def test_verbose_is_taken_before_or_after_the_command():
    parser = cli._parser()
    assert parser.parse_args(["--verbose", "evaluate", "run"]).verbose
    assert parser.parse_args(["evaluate", "run", "--verbose"]).verbose
    assert not parser.parse_args(["evaluate", "run"]).verbose
