"""Reading a config: YAML, environment references, paths, `--set` overrides, validation.

A config file has a `task` and the sections that task's schema defines
(`toolkit.config.classification`, `toolkit.config.relations`); only `task` and
the data files are required:

```yaml
task: multilabel_classification      # or relation_extraction
data:
  train: data/train.jsonl
  dev: data/dev.jsonl          # or dev_fraction: 0.1
model:
  encoder: {source: random, vocab: data/vocab.txt}
training:
  epochs: 3
```

Rules (see `configs/template_multilabel.yaml` for every key, commented):

- The schema is a pydantic discriminated union on `task` over the registered
  tasks (`toolkit.tasks`). A key the task does not use is an error naming it,
  with a suggestion (`training.epoch: unknown key; did you mean 'epochs'?`)
  or the task that does use it. Types are strict: `epochs: true` and
  `epochs: "3"` are errors. Every problem is listed, as
  `<file>: <dotted.path>: <what was expected, what was got>`, before any data
  is read.
- `${VAR}` and `${VAR:-default}` in string values read environment
  variables; `$${` writes a literal `${`. A value that is exactly one
  reference is read as YAML, like a `--set` value (`epochs: ${EPOCHS}` gives
  a number, `null` or `~` gives null).
- YAML 1.2 numbers: `1e-3` is a float (PyYAML alone reads it as text).
- Relative paths (`data.train/dev/test/label_names/schema`,
  `model.encoder.path/vocab`, `output.dir`) are relative to the config
  file's folder; `~` is expanded; absolute paths and URLs (`hf://...`) are
  kept. Paths given in `overrides` or `base` are relative to the working
  directory. A loaded config holds absolute paths, so a saved copy loads the
  same from anywhere.
- `overrides` are `section.key=value` strings (the CLI's `--set`); the
  value is read as a YAML scalar (`3`, `0.1`, `null`, `true`, `[a, b]`).

Example:

```python
from toolkit.config import load_config

config = load_config("configs/template_multilabel.yaml", overrides=["training.epochs=1"])
config.training.epochs          # 1
config.save(run_dir / "config.yaml")
```
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Optional, Union

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from toolkit.config.errors import ConfigError, describe, format_errors, suggestion
from toolkit.config.sections import TaskConfig, get_key, is_url
from toolkit.tasks import config_class, get_task, task_names

__all__ = ["load_config", "default_config", "validate"]


# ----------------------------------------------------------------------------- YAML reading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key written twice in one mapping."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    first_lines: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            seen = key in first_lines
        except TypeError:
            continue
        if seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first written on line {first_lines[key]})",
                key_node.start_mark,
            )
        first_lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
# YAML 1.2 floats: PyYAML follows YAML 1.1, which needs a dot in a number with
# an exponent, so `1e-3` would be read as the string "1e-3".
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _read_scalar(text: str) -> Any:
    """A `--set` value or a single environment reference, read as YAML."""
    return yaml.load(text, Loader=_UniqueKeyLoader) if text.strip() else None


def _read_yaml(path: Path) -> dict:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{name}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{name}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise ConfigError(f"{name}: cannot read the config file ({error.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        column = f" (column {mark.column + 1})" if mark is not None else ""
        problem = error.problem or error.context or "syntax error"
        raise ConfigError(f"{where}: invalid YAML: {problem}{column}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{name}: invalid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of sections at the top level; got {describe(data)}")
    return data


# ----------------------------------------------------------------------------- interpolation

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_REFERENCE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def _interpolate(value: Any, keys: tuple, source: str, problems: list) -> Any:
    if isinstance(value, dict):
        return {key: _interpolate(item, keys + (str(key),), source, problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, keys + (str(index),), source, problems) for index, item in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        body = _REFERENCE_BODY.fullmatch(match.group(1))
        where = f"{source}: {'.'.join(keys)}"
        if body is None:
            problems.append(
                f"{where}: malformed reference {match.group(0)!r}; expected ${{NAME}} or ${{NAME:-default}}"
            )
            return match.group(0)
        name, default = body.group(1), body.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(
            f"{where}: environment variable {name!r} is not set and has no default "
            f"(write ${{{name}:-default}} to give one)"
        )
        return match.group(0)

    result = _REFERENCE.sub(substitute, value)
    whole = _REFERENCE.fullmatch(value)
    if whole is not None and whole.group(0) != "$${" and result != value:
        try:
            return _read_scalar(result)
        except yaml.YAMLError:
            return result
    return result


# ----------------------------------------------------------------------------- paths, merging


def _schemas() -> tuple:
    """The registered tasks' config schemas, in registry order."""
    return tuple(config_class(name) for name in task_names())


@cache
def _path_keys_of(schemas: tuple) -> tuple:
    keys: dict = {}
    for schema in schemas:
        keys.update(dict.fromkeys(schema.all_path_keys()))
    return tuple(keys)


def _path_keys() -> tuple:
    """Every key path that holds a file path, in any registered task."""
    return _path_keys_of(_schemas())


def _resolve_path(value: Any, folder: Path) -> Any:
    if not isinstance(value, str) or not value.strip() or is_url(value):
        return value
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        expanded = os.path.join(folder, expanded)
    return os.path.normpath(expanded)


def _resolve_paths(data: dict, folder: Path) -> dict:
    for keys in _path_keys():
        parent = get_key(data, keys[:-1])
        if isinstance(parent, dict) and keys[-1] in parent:
            parent[keys[-1]] = _resolve_path(parent[keys[-1]], folder)
    return data


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _quote_hint(dotted: str, text: str) -> str:
    """How to pass `text` as a string: `--set 'data.label_separator="|"'`."""
    quoted = json.dumps(text.strip(), ensure_ascii=False)
    return f"quote it to mean the text: --set '{dotted.strip()}={quoted}'"


def _apply_override(data: dict, override: str, problems: list) -> Optional[tuple]:
    """Apply `a.b.c=value` to `data`; return the key path, or None after a problem."""
    source = f"--set {override}"
    if "=" not in override:
        problems.append(f"{source}: expected section.key=value")
        return None
    dotted, text = override.split("=", 1)
    keys = tuple(part.strip() for part in dotted.strip().split("."))
    if not all(keys):
        problems.append(f"{source}: expected section.key=value; got the key {dotted!r}")
        return None
    try:
        value = _read_scalar(text)
    except yaml.YAMLError as error:
        problems.append(
            f"{source}: {'.'.join(keys)}: the value is not valid YAML ({error}); {_quote_hint(dotted, text)}"
        )
        return None
    if value == "" and text.strip() not in ("", '""', "''"):
        # `|` and `>` start YAML block scalars: unquoted, they read as an empty string.
        problems.append(
            f"{source}: {'.'.join(keys)}: YAML reads {text.strip()!r} as an empty string; {_quote_hint(dotted, text)}"
        )
        return None
    if keys in _path_keys():
        value = _resolve_path(value, Path.cwd())
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            problems.append(f"{source}: {'.'.join(keys[: depth + 1])}: is not a section; it holds {child!r}")
            return None
        node = child
    node[keys[-1]] = value
    return keys


# ----------------------------------------------------------------------------- validation


@cache
def _adapter_of(schemas: tuple) -> TypeAdapter:
    union = schemas[0] if len(schemas) == 1 else Union[schemas]  # noqa: UP007 (a runtime tuple)
    return TypeAdapter(Annotated[union, Field(discriminator="task")])


def _adapter() -> TypeAdapter:
    """A pydantic discriminated union on `task` over the registered tasks' schemas."""
    return _adapter_of(_schemas())


def validate(data: dict, source_of=lambda path: "<config>") -> TaskConfig:
    """Validate a plain dict as the config of its `task` (paths are taken as they are).

    `source_of(path)` names where the value at a key path came from, for the
    error lines (the file name by default `<config>`).

    >>> validate({"task": "multilabel_classification",
    ...           "data": {"train": "t.jsonl", "dev": "d.jsonl"}}).data.format
    'jsonl'
    """
    names = task_names()
    task = data.get("task")
    where = source_of(("task",))
    if task is None:
        raise ConfigError(f"{where}: task: required key is missing; expected one of {', '.join(map(repr, names))}")
    if task not in names:
        hint = suggestion(task, names) if isinstance(task, str) else ""
        raise ConfigError(
            f"{where}: task: expected one of {', '.join(map(repr, names))}; got {describe(task)}"
            + (f"; {hint}" if hint else "")
        )
    try:
        config = _adapter().validate_python(data)
    except ValidationError as error:
        schema = config_class(task)
        others = {name: config_class(name) for name in names if name != task}
        # The union puts the task name first in every location.
        errors = [{**item, "loc": tuple(item["loc"])[1:]} for item in error.errors()]
        raise ConfigError(format_errors(errors, schema, source_of, others)) from None
    config._source = source_of(())
    return config


# ----------------------------------------------------------------------------- public loaders


def load_config(
    path: Union[str, os.PathLike, None],
    overrides: Sequence[str] = (),
    base: Optional[dict] = None,
) -> TaskConfig:
    """Read, merge and validate a config.

    Args:
        path: a YAML file, or None to build from `base` and `overrides` alone.
        overrides: `"section.key=value"` strings applied last (the CLI's
            `--set`), e.g. `"training.epochs=3"`, `"model.encoder.num_layers=4"`.
        base: values the file is merged onto (a nested dict, e.g.
            `default_config(task).to_dict()`); the file wins key by key.

    Returns:
        The task's config (`MultilabelConfig`, `RelationConfig`, ...), with absolute paths.

    Raises:
        ConfigError: listing every problem as `<file>: <dotted.path>: <message>`;
        YAML syntax errors as `<file>:<line>: invalid YAML: ...`.

    Example:

    ```python
    config = load_config("configs/template_multilabel.yaml",
                         overrides=["training.epochs=1", "data.max_examples=500"])
    ```
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    name = str(path) if path is not None else "<config>"
    file_data: dict = {}
    if path is not None:
        file_path = Path(os.path.expanduser(str(path)))
        file_data = _read_yaml(file_path)
        problems: list = []
        file_data = _interpolate(file_data, (), name, problems)
        if problems:
            raise ConfigError(problems)
        _resolve_paths(file_data, file_path.absolute().parent)
    data = _resolve_paths(copy.deepcopy(base), Path.cwd()) if base else {}
    data = _deep_merge(data, file_data)

    problems = []
    override_keys: list = []
    for override in overrides:
        keys = _apply_override(data, override, problems)
        if keys is not None:
            override_keys.append((keys, override))
    if problems:
        raise ConfigError(problems)

    def source_of(error_path: tuple) -> str:
        for keys, override in reversed(override_keys):
            # The override set this key, or created the section the error is about.
            if tuple(error_path[: len(keys)]) == keys or (error_path and keys[: len(error_path)] == error_path):
                return f"--set {override}"
        return name

    config = validate(data, source_of)
    # Defaults (output.dir) are relative to the working directory.
    config.output.dir = _resolve_path(config.output.dir, Path.cwd())
    return config


def default_config(
    task: str,
    data_dir: Union[str, os.PathLike] = "demo_data",
    output_dir: Union[str, os.PathLike, None] = None,
    overrides: Sequence[str] = (),
) -> TaskConfig:
    """The config of a task's built-in demo, reading the demo data that
    `toolkit.data.synthetic` wrote into `data_dir` (see `Pipeline.demo_config`).

    A small randomly initialised encoder over the demo's own vocabulary; sized
    to train in a few minutes on two CPU cores. Relative paths are relative to
    the working directory; `output_dir` defaults to `runs/demo_<short name>`.

    ```python
    from toolkit.data.synthetic import write_multilabel_demo
    write_multilabel_demo("demo_data")
    config = default_config("multilabel_classification", "demo_data", "runs/demo")
    ```
    """
    names = task_names()
    if task not in names:
        raise ConfigError(
            f"<default_config>: task: expected one of {', '.join(map(repr, names))}; got {describe(task)}"
        )
    base = config_class(task).demo(str(data_dir))
    short = get_task(task).short_name
    base["output"] = {"dir": str(output_dir) if output_dir is not None else f"runs/demo_{short}"}
    return load_config(None, overrides=overrides, base=base)
