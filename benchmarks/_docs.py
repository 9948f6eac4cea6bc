"""What the benchmark scripts share: the machine's CPU name, writing one section (or a marked block) of a
doc, MiniLM's folder, `python -m toolkit train` in a process of its own.

Each script runs as `python benchmarks/<name>.py`, so this folder is on its import path.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def minilm_dir() -> str:
    """all-MiniLM-L6-v2's folder: $MINILM_DIR, or the one `python -m toolkit get-encoder` fills (once)."""
    if os.environ.get("MINILM_DIR"):
        return os.environ["MINILM_DIR"]
    command = [sys.executable, "-m", "toolkit", "get-encoder", "all-MiniLM-L6-v2"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        sys.exit(f"needs all-MiniLM-L6-v2 (or set MINILM_DIR): {reason}")
    return done.stdout.strip()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what `platform` knows, or "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line(load_start: float, load_end: float, note: str = "nothing else was run meanwhile") -> str:
    """The `Machine:` line a section ends with: cores, CPU, the 1-minute load average at the start and end."""
    return (
        f"Machine: `nproc` = {os.cpu_count()}, {cpu_model()}, no GPU; 1-minute load average {load_start:.1f} at the "
        f"start and {load_end:.1f} at the end ({note})"
    )


def write_section(doc: Path, section: str, markdown: str) -> None:
    """Replace the `section` heading's section of `doc` (up to the next `## `) with `markdown`,
    or append it when the doc has no such heading; the other sections are left alone."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    if start is None:
        doc.write_text(text.rstrip("\n") + "\n\n" + markdown, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    doc.write_text("".join(lines[:start]) + markdown + ("\n" + tail if tail else ""), encoding="utf-8")


def train_cli(config, overrides, *, what: str = "training", environment=None) -> None:
    """`python -m toolkit train config --set ...` in a process of its own (quiet TensorFlow; `environment`'s
    variables added, `KERAS_BACKEND` say); exits with its stderr's tail when it fails."""
    command = [sys.executable, "-m", "toolkit", "train", str(config)]
    for override in overrides:
        command += ["--set", override]
    added = dict(environment or {})
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT), **added)
    shown = "".join(f"{name}={value} " for name, value in added.items())
    print(f"  {shown}{' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{what} failed (exit {done.returncode})")


def write_block(doc: Path, name: str, markdown: str) -> None:
    """Replace what stands between `<!-- NAME: begin -->` and `<!-- NAME: end -->` in `doc` with `markdown`
    (a block inside a hand-written section, such as a table in the README); an error when the markers are missing."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    text = doc.read_text(encoding="utf-8")
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{doc}: no '{begin}' ... '{end}' block to replace")
    doc.write_text(text[: start + len(begin)] + "\n" + markdown.rstrip("\n") + "\n" + text[stop:], encoding="utf-8")
