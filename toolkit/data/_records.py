"""Checks on one JSON record, shared by the readers.

A check raises `RecordError` with the message and the reason; the reader
knows the line and turns it into a `DataError` (`path:line: message`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Union

from toolkit._suggest import closest

FieldType = Union[str, int]

DIGITS = re.compile(r"[0-9]+")


class RecordError(Exception):
    """A problem in one record; becomes a DataError once the line is known."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


def suggest(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the closest of `choices` (case ignored), or `""`."""
    match = closest(word, choices)
    return f"; did you mean {match!r}?" if match is not None and match != word else ""


def kind(value: Any) -> str:
    """What a JSON value is, for messages: `"a string"`, `"null"`, ..."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def short(text: str, limit: int = 40) -> str:
    """`repr(text)`, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_text(value: Any, text_field: FieldType) -> str:
    """`value` if it is a non-blank string, else RecordError."""
    if not isinstance(value, str):
        raise RecordError(f"text field {text_field!r} must be a string, got {kind(value)}", "bad text")
    if not value.strip():
        raise RecordError(f"empty text in field {text_field!r}", "empty text")
    return value


def get_field(record: dict, name: str, exclude: Iterable[str] = ()) -> Any:
    """`record[name]`; a dotted name (`"meta.text"`) walks nested objects.

    Raises `KeyError` with a did-you-mean message when the field is missing;
    the keys in `exclude` (the names of the record's other fields) are never
    suggested: a triple missing its `object` is not asked whether it meant
    its `subject`.

    >>> get_field({"head": {"name": "Ada"}}, "head.name")
    'Ada'
    >>> get_field({"subject": "a", "predicate": "p", "Objekt": "b"}, "object", exclude=["subject"])
    Traceback (most recent call last):
    KeyError: "missing field 'object'; did you mean 'Objekt'?"
    """
    if name in record:
        return record[name]
    value: Any = record
    if "." in name:
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return value
    excluded = set(exclude)
    raise KeyError(f"missing field {name!r}" + suggest(name, [k for k in record if k not in excluded]))


def text_and_field(record: Any, text_field: str, other_field: str) -> tuple:
    """`(text, value)` of a JSON record: its checked text and its raw `other_field`.

    RecordError when the record is not an object, a field is missing, or the
    text is not a non-blank string (checked in that order).
    """
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {kind(record)}", "not an object")
    try:
        text = get_field(record, text_field)
        value = get_field(record, other_field)
    except KeyError as missing:
        raise RecordError(missing.args[0], "missing field") from None
    return check_text(text, text_field), value


def split_path(data_config: Any, split: str):
    """The file a config's data section names for `split`, or a ValueError saying why there is none."""
    path = getattr(data_config, split, None)
    if path is None:
        if split == "dev" and getattr(data_config, "dev_fraction", None):
            raise ValueError(
                f"the data section has no 'dev' file: dev is held out of train (dev_fraction "
                f"{data_config.dev_fraction}); use read_splits(data, seed) or split_off(train, dev_fraction, seed)"
            )
        raise ValueError(f"the data section has no {split!r} file")
    return path
