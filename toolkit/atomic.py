"""Atomic file and folder writes: a reader, or a run killed at any instant, sees the old
version or the new one, never half of either.

Every writer of the toolkit goes through this module (run folders, reports,
plots, saved predictors and models, the tokenization cache). The rule is the
same everywhere: write under a temporary name in the same folder, flush it to
disk (`fsync`), then `os.replace` it onto the final name, and remove the
temporary on any failure.

- `replace_file(path, write)`: the primitive; `write(temporary_path)` writes the
  new content in any way (a Keras `.keras` file, a Matplotlib PNG, NumPy's `.npz`).
- `write_text_atomic`, `write_json_atomic`: text and JSON (NumPy values and
  non-finite floats made JSON-ready first).
- `replace_directory(build, target)`: a whole folder, built beside the old one
  and swapped in; `resolve_directory` finds the old one if a swap was cut short.
- `partial_file(path)`: a file written as a stream (predictions), moved onto
  `path` when complete; cut short, what was written stays beside it.

Example:

```python
from toolkit.atomic import replace_file, write_json_atomic

write_json_atomic(run_dir / "metrics.json", {"dev": scores})
replace_file(run_dir / "model.keras", model.save)
```

This module imports nothing beyond the standard library and NumPy.
"""

import contextlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

__all__ = [
    "replace_file",
    "write_text_atomic",
    "write_json_atomic",
    "json_ready",
    "replace_directory",
    "resolve_directory",
    "partial_file",
]


def _fsync_path(path):
    """Flush a written file (or a folder's entries) to disk; a no-op where the OS refuses."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync_path(os.path.join(root, name))
        _fsync_path(root)


def _temporary_name(path):
    # The suffix is kept last so that writers which look at it (NumPy adds
    # `.npz`, Keras wants `.keras`, Matplotlib reads `.png`) see the real one.
    return path.with_name(f"{path.stem}.tmp{path.suffix}" if path.suffix else f"{path.name}.tmp")


def replace_file(path, write):
    """Call `write(temporary)`, flush it, and move it onto `path`; returns `path`.

    The temporary file sits in the same folder (so the rename is atomic), is
    named `<stem>.tmp<suffix>` and is removed if `write` or the rename fails.
    The folder is created if needed.

    >>> replace_file(run_dir / "model.keras", model.save)  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    try:
        write(temporary)
        _fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent)
    return path


def write_text_atomic(path, text):
    """Write `text` (UTF-8) to `path` atomically; returns the path.

    >>> write_text_atomic(run_dir / "report.txt", text)  # doctest: +SKIP
    """
    return replace_file(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def json_ready(value):
    """`value` with NumPy scalars and arrays, tuples, paths and non-finite floats made JSON-ready.

    NaN and infinity become None (JSON has neither).

    >>> json_ready({"f1": np.float32(0.5), "bad": float("nan"), "shape": (2, 3)})
    {'f1': 0.5, 'bad': None, 'shape': [2, 3]}
    """
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path, obj):
    """Write `obj` as indented UTF-8 JSON with a trailing newline, atomically.

    Values go through `json_ready` first. An object JSON cannot hold raises
    `TypeError` before anything is written, so the old file stays as it was.

    >>> write_json_atomic(run_dir / "metrics.json", {"dev": scores})  # doctest: +SKIP
    """
    text = json.dumps(json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def replace_directory(build, target):
    """Write a folder with `build(temporary_path)`, then swap it in for `target`; returns `target`.

    The old folder stays in place until the new one is complete and flushed,
    so an interruption leaves either the old or the new folder. If it stops
    between the two renames, the old one is left at `<target>.old`, which
    `resolve_directory` finds.

    >>> replace_directory(predictor.save, run_dir / "best")  # doctest: +SKIP
    """
    target = Path(target)
    temporary = target.with_name(target.name + ".tmp")
    previous = target.with_name(target.name + ".old")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        build(temporary)
        _fsync_tree(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(temporary, target)
    _fsync_path(target.parent)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def resolve_directory(target):
    """`target`, or the `<target>.old` that an interrupted `replace_directory` left."""
    target = Path(target)
    if target.is_dir():
        return target
    previous = target.with_name(target.name + ".old")
    return previous if previous.is_dir() else target


@contextlib.contextmanager
def partial_file(path, suffix=".partial"):
    """Yield a text file open at `<path><suffix>`; move it onto `path` when the block ends normally.

    Until then `path` keeps its old content. When the block raises, the
    partial file stays, with what was written so far, and `path` is untouched.

    >>> with partial_file(output) as handle:  # doctest: +SKIP
    ...     for record in records:
    ...         handle.write(json.dumps(record) + "\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + suffix)
    with open(partial, "w", encoding="utf-8") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _fsync_path(path.parent)
