"""Config errors in the form users can act on: `<file>: <dotted.path>: <what was expected, what was got>`.

`ConfigError` carries one line per problem. `format_errors` turns pydantic's
validation errors into such lines, with a "did you mean" for a misspelt key or
value and, for a key that only another task uses, the name of that task.
Validators of the schema modules report their problems through `problems()`,
as `"key: message"` or `"dotted.key: message"` lines relative to the section
they check.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, Union

from pydantic import BaseModel

from toolkit._suggest import closest

__all__ = ["ConfigError", "problems", "suggestion", "describe", "format_errors"]


class ConfigError(ValueError):
    """An invalid config. `problems` holds one line per problem:
    `<file>: <dotted.path>: <what was expected, what was got>`."""

    def __init__(self, problems: Union[str, Sequence[str]]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def problems(*pairs: tuple) -> None:
    """Raise one ValueError listing `key: message` lines (`format_errors` files them under their keys).

    Pairs whose message is empty are left out; nothing is raised when none is left.
    """
    lines = [f"{name}: {message}" for name, message in pairs if message]
    if lines:
        raise ValueError("\n".join(lines))


def describe(value: Any) -> str:
    """A short description of a value for an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) <= 60 else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggestion(word: Any, choices: Iterable[str]) -> str:
    """`did you mean 'x'?` for the closest of `choices` (case ignored), or "" when none is close."""
    match = closest(word, choices)
    return f"did you mean {match!r}?" if match is not None and match != word else ""


# ----------------------------------------------------------------------------- schema walking


def _model_in(annotation: Any) -> Optional[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def field_keys(model: type) -> dict:
    """YAML key -> pydantic field info of a section class."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def section_at(model: type, path: Sequence[str]) -> Optional[type]:
    """The section class that the YAML key path `path` names, or None when it names no section."""
    current: Optional[type] = model
    for part in path:
        if current is None:
            return None
        keys = field_keys(current)
        if part not in keys:
            return None
        current = _model_in(keys[part].annotation)
    return current


def accepts(model: type, path: Sequence[str]) -> bool:
    """Whether the schema `model` has the key path `path`."""
    parent = section_at(model, path[:-1])
    return parent is not None and path[-1] in field_keys(parent)


def _walk(model: type, loc: tuple) -> tuple:
    """Split a pydantic location into the YAML key path and the section owning its last key."""
    path: list = []
    owner = model
    current: Optional[type] = model
    for part in loc:
        if current is None:
            break
        keys = field_keys(current)
        path.append(str(part))
        owner = current
        if part not in keys:
            break
        current = _model_in(keys[part].annotation)
    return tuple(path), owner


# ----------------------------------------------------------------------------- messages


def _message(error: dict, owner: type, path: tuple, model: type, others: dict) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = path[-1]
        users = [task for task, schema in others.items() if accepts(schema, path)]
        if users:
            task = model.model_fields["task"].default
            return f"unknown key for task {task!r}; {key!r} is only used when task is {users[0]!r}"
        allowed = list(field_keys(owner))
        hint = suggestion(key, allowed)
        return "unknown key; " + (hint or f"expected one of: {', '.join(allowed)}")
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a section (a mapping of keys); got {describe(value)}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        hint = suggestion(value, re.findall(r"'([^']*)'", expected)) if isinstance(value, str) else ""
        return f"expected one of {expected}; got {describe(value)}" + (f"; {hint}" if hint else "")
    text = error["msg"]
    if text.startswith("Value error, "):
        return text[len("Value error, ") :]
    if text.startswith("Input should be "):
        text = "expected " + text[len("Input should be ") :]
    if isinstance(value, str) and kind in _UNPARSED:
        if _looks_typed(value):
            # Strict types: YAML read the value as text because it was quoted.
            return f"{text}; got the string {describe(value)} (write it without quotes)"
        text += _UNPARSED[kind]
    return f"{text}; got {describe(value)}"


# Text where a number or a boolean belongs: what cannot be read as one.
_UNPARSED = {
    "int_type": ", unable to parse string as an integer",
    "float_type": ", unable to parse string as a number",
    "bool_type": ", unable to interpret input",
}


def _looks_typed(text: str) -> bool:
    """Whether a string is a number or a boolean written in quotes."""
    if text.strip().lower() in ("true", "false"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_errors(errors: list, model: type, source_of: Callable[[tuple], str], others: Optional[dict] = None) -> list:
    """Pydantic `errors()` of validating `model` as `<source>: <dotted.path>: <message>` lines.

    `source_of(path)` names where the value at a key path came from (the file,
    or the `--set` override that wrote it); `others` maps the other tasks'
    names to their schemas, to name the task a misplaced key belongs to.
    """
    others = others or {}
    grouped: dict = {}
    for error in errors:
        path, owner = _walk(model, tuple(error["loc"]))
        message = _message(error, owner, path, model, others)
        if error["type"] == "value_error":
            # Validators report "key: message" lines, the key relative to the section checked.
            section = section_at(model, path) or owner
            fields = field_keys(section)
            for line in message.split("\n"):
                name, _, text = line.partition(": ")
                keys = tuple(name.split("."))
                if text and keys[0] in fields:
                    grouped.setdefault(path + keys, []).append(text)
                else:
                    grouped.setdefault(path, []).append(line)
            continue
        grouped.setdefault(path, []).append(message)
    lines = []
    for path, messages in grouped.items():
        if len(messages) > 1 and all(m.startswith("expected ") for m in messages):
            got = messages[0].rsplit("; got ", 1)[-1]
            parts = [m[len("expected ") :].rsplit("; got ", 1)[0] for m in messages]
            messages = [f"expected {' or '.join(dict.fromkeys(parts))}; got {got}"]
        for message in dict.fromkeys(messages):
            location = ".".join(path) if path else "(top level)"
            lines.append(f"{source_of(path)}: {location}: {message}")
    return lines
