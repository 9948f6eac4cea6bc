"""Low-level reading shared by the readers: decoded lines with their numbers.

Files are read as bytes and decoded one line at a time, so invalid UTF-8 is
reported with its line, a UTF-8 byte-order mark is dropped, and CRLF endings
are accepted. Only `\\n` ends a line (Unicode line separators inside a text
are kept).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any, Optional, Union

from toolkit.data.errors import DataError

PathType = Union[str, PathLike]

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = "\ufeff"


def _open_error(path: PathType, error: OSError) -> DataError:
    reason = error.strerror or type(error).__name__
    if isinstance(error, FileNotFoundError):
        reason = "file not found"
    elif isinstance(error, IsADirectoryError):
        reason = "is a folder, expected a file"
    return DataError(path, None, reason, reason="cannot read file")


def _decode_line(path: PathType, number: int, raw: bytes) -> tuple[str, Optional[DataError]]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        if number == 1 and raw.startswith(_UTF16_BOMS):
            message = "file is UTF-16 encoded; convert it to UTF-8"
        else:
            message = f"invalid UTF-8 (byte {error.object[error.start]:#04x} at column {error.start + 1})"
        return raw.decode("utf-8", errors="replace"), DataError(path, number, message, reason="invalid UTF-8")


def iter_lines(path: PathType) -> Iterator[tuple[int, str, Optional[DataError]]]:
    """Yield `(line_number, text, error)` for every line of `path`.

    `text` has its line ending removed (`\\n` or `\\r\\n`); `error` is a
    `DataError` when the line is not valid UTF-8 (`text` is then decoded
    with replacement characters) and `None` otherwise. Raises `DataError` if
    the file cannot be opened or holds nothing but whitespace.
    """
    for number, text, error in iter_raw_lines(path):
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        yield number, text, error


def iter_raw_lines(path: PathType) -> Iterator[tuple[int, str, Optional[DataError]]]:
    """Like `iter_lines`, but keep each line's ending (for the csv module).

    Raises `DataError` if the file cannot be opened or holds nothing but whitespace.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 (opening errors are told apart from reading ones)
    except OSError as error:
        raise _open_error(path, error) from None
    with handle:
        anything = False
        for number, raw in enumerate(handle, start=1):
            text, error = _decode_line(path, number, raw)
            if number == 1 and text.startswith(_UTF8_BOM):
                text = text[1:]
            if text.strip() or error is not None:
                anything = True
            yield number, text, error
    if not anything:
        raise DataError(path, None, "file is empty", reason="empty file")


def read_text(path: PathType) -> str:
    """The whole file as text (BOM removed); DataError with the line on bad UTF-8 or empty file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise _open_error(path, error) from None
    if data.startswith(_UTF16_BOMS):
        raise DataError(path, 1, "file is UTF-16 encoded; convert it to UTF-8", reason="invalid UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(path, line, f"invalid UTF-8 (byte {data[error.start]:#04x})", reason="invalid UTF-8") from None
    if text.startswith(_UTF8_BOM):
        text = text[1:]
    if not text.strip():
        raise DataError(path, None, "file is empty", reason="empty file")
    return text


class LineIndex:
    """Map character offsets in a text to 1-based line numbers."""

    def __init__(self, text: str):
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line(self, offset: int) -> int:
        """The 1-based line holding character `offset`."""
        return bisect.bisect_left(self._newlines, offset) + 1


def parse_json(path: PathType, line: int, text: str) -> Any:
    """`json.loads(text)` with any failure turned into a DataError at `line`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        return _raise_json(path, line + error.lineno - 1, error.msg, error.colno)
    except (ValueError, RecursionError) as error:
        raise DataError(path, line, f"malformed JSON: {error}", reason="malformed JSON") from None


def _raise_json(path: PathType, line: int, message: str, column: int) -> Any:
    raise DataError(path, line, f"malformed JSON: {message} (column {column})", reason="malformed JSON")


def iter_json_array(path: PathType, text: str) -> Iterator[tuple[int, int, Any]]:
    """Yield `(index, start_line, value)` for each element of the JSON array in `text`.

    Elements are decoded one at a time, so a syntax error is reported at its
    own line and every element knows the line where it starts.
    """
    decoder = json.JSONDecoder()
    lines = LineIndex(text)
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise DataError(path, lines.line(position), "expected a JSON array", reason="malformed JSON")
    position = _skip_space(text, position + 1)
    if position < len(text) and text[position] == "]":
        _expect_end(path, text, _skip_space(text, position + 1), lines)
        return
    index = 0
    while True:
        start_line = lines.line(position)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            _raise_json(path, error.lineno, error.msg, error.colno)
        except (ValueError, RecursionError) as error:
            raise DataError(path, start_line, f"malformed JSON: {error}", reason="malformed JSON") from None
        yield index, start_line, value
        index += 1
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            _expect_end(path, text, _skip_space(text, position + 1), lines)
            return
        raise DataError(
            path,
            lines.line(min(position, len(text) - 1)),
            "malformed JSON: expected ',' or ']' after an array element",
            reason="malformed JSON",
        )


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _expect_end(path: PathType, text: str, position: int, lines: LineIndex) -> None:
    if position < len(text):
        raise DataError(
            path,
            lines.line(position),
            "malformed JSON: extra data after the array",
            reason="malformed JSON",
        )


def first_character(path: PathType) -> Optional[str]:
    """The first character of `path` that is not whitespace or a BOM, or None for a blank file."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (opening errors are told apart from reading ones)
    except OSError as error:
        raise _open_error(path, error) from None
    with handle:
        start = True
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return None
            if start and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            start = False
            stripped = chunk.lstrip(b" \t\r\n")
            if stripped:
                return chr(stripped[0]) if stripped[0] < 128 else None


def iter_json_lines(path: PathType) -> Iterator[tuple[int, Any]]:
    """Yield `(line_number, value)` for each non-blank line of a JSON lines file.

    `value` is the parsed JSON, or a `DataError` for a line that is not
    valid UTF-8 or not valid JSON (the caller raises or skips it).
    """
    for number, line, error in iter_lines(path):
        if error is not None:
            yield number, error
            continue
        if not line.strip():
            continue
        try:
            yield number, parse_json(path, number, line)
        except DataError as json_error:
            yield number, json_error
