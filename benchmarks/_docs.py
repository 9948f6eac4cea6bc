"""What the benchmark scripts share: the machine's CPU name, and writing one section of a doc.

Each script runs as `python benchmarks/<name>.py`, so this folder is on its import path.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what `platform` knows, or "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
