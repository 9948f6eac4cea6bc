"""The command line's own surface: its name, --version, help for every argument."""

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import __version__, cli


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"python -m toolkit {__version__}"


def test_the_installed_command_calls_itself_zlpr(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/zlpr", "--help"])
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
    assert all(name in convert_help for name in CONVERTERS)


def test_the_get_encoder_script_runs_this_checkout_from_any_folder(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "get-encoder"
    done = subprocess.run(["bash", str(script), "no-such-encoder"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().endswith("known: all-MiniLM-L6-v2, bert-base-chinese, chinese-bert-wwm-ext")
