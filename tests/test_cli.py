"""The command line's own surface: its name, --version, help for every argument."""

import subprocess
import sys

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
