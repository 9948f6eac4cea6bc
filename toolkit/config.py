"""Validated YAML configs for the two pipelines.

A config file has six sections; only ``task`` and the data files are required:

```yaml
task: multilabel_classification      # or relation_extraction
data:
  train: data/train.jsonl
  dev: data/dev.jsonl          # or dev_fraction: 0.1 (see below)
model:
  encoder: {source: random, vocab: data/vocab.txt}
training:
  epochs: 3
```

Rules (see ``configs/template_multilabel.yaml`` for every key, commented):

- Unknown keys are errors, with a suggestion: ``training.epoch: unknown key;
  did you mean 'epochs'?``. Every problem is listed, as
  ``<file>: <dotted.path>: <what was expected, what was got>``.
- ``${VAR}`` and ``${VAR:-default}`` in string values read environment
  variables; ``$${`` writes a literal ``${``. A value that is exactly one
  reference and comes out as ``null`` or ``~`` becomes null.
- Relative paths (``data.train/dev/test/label_names/schema``,
  ``model.encoder.path/vocab``, ``output.dir``) are relative to the config
  file's folder; ``~`` is expanded; absolute paths and URLs (``hf://...``) are
  kept. Paths given in ``overrides`` or ``base`` are relative to the working
  directory. A loaded config holds absolute paths, so a saved copy loads the
  same from anywhere.
- A data set without a dev file (either task) gives ``data.dev_fraction``
  (more than 0, less than 0.5) instead of ``data.dev``: that share of the train
  examples, drawn with ``training.seed``, is held out as dev, the same on every
  run, resume and ``evaluate`` (see :func:`toolkit.data.splits.split_off`).
  Exactly one of the two is required.
- ``overrides`` are ``section.key=value`` strings (the CLI's ``--set``); the
  value is read as a YAML scalar (``3``, ``0.1``, ``null``, ``true``, ``[a, b]``).

Example:

```python
from toolkit.config import load_config

config = load_config("configs/template_multilabel.yaml", overrides=["training.epochs=1"])
config.training.epochs          # 1
config.save(run_dir / "config.yaml")
```
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from toolkit.data.multilabel import infer_format
from toolkit.encoders.spec import EncoderSpec

__all__ = [
    "TASKS",
    "ConfigError",
    "MultilabelDataConfig",
    "RelationDataConfig",
    "ModelConfig",
    "TrainingConfig",
    "LossConfig",
    "OutputConfig",
    "Config",
    "MultilabelConfig",
    "RelationConfig",
    "load_config",
    "default_config",
]

TASKS = ("multilabel_classification", "relation_extraction")

# Keys holding file or folder paths, resolved against the config file's folder.
PATH_KEYS = (
    ("data", "train"),
    ("data", "dev"),
    ("data", "test"),
    ("data", "label_names"),
    ("data", "schema"),
    ("model", "encoder", "path"),
    ("model", "encoder", "vocab"),
    ("output", "dir"),
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ConfigError(ValueError):
    """An invalid config. ``problems`` holds one line per problem:
    ``<file>: <dotted.path>: <what was expected, what was got>``."""

    def __init__(self, problems: Union[str, Sequence[str]]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _problems(*pairs: tuple) -> None:
    """Raise one ValueError listing ``field: message`` lines (the loader splits them)."""
    lines = [f"{name}: {message}" for name, message in pairs if message]
    if lines:
        raise ValueError("\n".join(lines))


# ----------------------------------------------------------------------------- data


def _dev_problems(data) -> list:
    """A data section gives a dev file or ``dev_fraction``, exactly one of them."""
    if data.dev is None and data.dev_fraction is None:
        return [("dev", "required key is missing; give a dev file, or dev_fraction "
                        "(e.g. 0.1) to hold out that share of train as dev")]
    if data.dev is not None and data.dev_fraction is not None:
        return [("dev_fraction", f"give dev (a file) or dev_fraction ({data.dev_fraction}, "
                                 "a share of train held out as dev), not both")]
    return []


class MultilabelDataConfig(_Section):
    """``data`` for ``task: multilabel_classification``.

    Defaults follow ``format``: JSON lines read fields ``text`` and ``labels``
    (a list); CSV has a header and reads columns ``text`` and ``labels``; TSV
    has no header and reads column 0 (text) and 1 (labels); CSV/TSV labels
    are split on ``,``.

    Give ``dev`` (a file) or ``dev_fraction`` (a share of train held out as
    dev, drawn with ``training.seed``), not both.
    """

    train: str
    dev: Optional[str] = None
    dev_fraction: Optional[float] = Field(None, gt=0.0, lt=0.5)
    test: Optional[str] = None
    format: Optional[Literal["jsonl", "csv", "tsv"]] = None
    text_field: Union[int, str, None] = None
    labels_field: Union[int, str, None] = None
    label_separator: Optional[str] = None
    label_names: Optional[str] = None
    header: Optional[bool] = None
    max_examples: Optional[int] = Field(None, ge=1)
    on_bad_line: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _fill_defaults(self) -> "MultilabelDataConfig":
        if self.format is None:
            inferred = infer_format(self.train)
            if inferred is None:
                _problems(("format", f"cannot tell the format of {self.train!r} from its extension; "
                                     "set format to 'jsonl', 'csv' or 'tsv'"))
            self.format = inferred
        problems = _dev_problems(self)
        if self.format == "jsonl":
            if self.header is not None:
                problems.append(("header", "only used with csv and tsv files (format is 'jsonl'); "
                                           f"got {self.header!r}"))
            for name in ("text_field", "labels_field"):
                if isinstance(getattr(self, name), int):
                    problems.append((name, "a JSON lines file needs a field name; "
                                           f"got the column number {getattr(self, name)}"))
            self.text_field = "text" if self.text_field is None else self.text_field
            self.labels_field = "labels" if self.labels_field is None else self.labels_field
        else:
            if self.header is None:
                self.header = self.format == "csv"
            if self.label_separator is None:
                self.label_separator = ","
            for name, default_name, default_index in (("text_field", "text", 0),
                                                      ("labels_field", "labels", 1)):
                value = getattr(self, name)
                if value is None:
                    value = default_name if self.header else default_index
                elif isinstance(value, str) and not self.header:
                    if value.isascii() and value.isdigit():
                        value = int(value)
                    else:
                        problems.append((name, "the file has no header (header: false), so give a "
                                               f"column number from 0; got {value!r}"))
                if isinstance(value, int) and value < 0:
                    problems.append((name, f"expected a column number >= 0; got {value}"))
                setattr(self, name, value)
        if self.label_separator == "":
            problems.append(("label_separator", "expected a non-empty string or null; got ''"))
        if self.text_field == self.labels_field and self.text_field is not None:
            problems.append(("labels_field", f"is the same as text_field ({self.text_field!r})"))
        _problems(*problems)
        return self


class RelationDataConfig(_Section):
    """``data`` for ``task: relation_extraction``.

    ``schema`` is the predicate list (LIC2019 ``all_50_schemas``, CasRel
    ``rel2id.json``, or one predicate a line). ``layout: custom`` reads your
    own field names; the other layouts fix them.

    Give ``dev`` (a file) or ``dev_fraction`` (a share of train held out as
    dev, drawn with ``training.seed``), not both.
    """

    train: str
    dev: Optional[str] = None
    dev_fraction: Optional[float] = Field(None, gt=0.0, lt=0.5)
    test: Optional[str] = None
    schema_path: str = Field(alias="schema")
    layout: Literal["lic2019", "casrel", "custom"] = "lic2019"
    text_field: Optional[str] = None
    triples_field: Optional[str] = None
    subject_key: Optional[str] = None
    predicate_key: Optional[str] = None
    object_key: Optional[str] = None
    max_examples: Optional[int] = Field(None, ge=1)
    on_bad_line: Literal["error", "skip"] = "error"
    on_missing_entity: Literal["count", "error"] = "count"

    @model_validator(mode="after")
    def _check_layout(self) -> "RelationDataConfig":
        custom_keys = ("text_field", "triples_field", "subject_key", "predicate_key", "object_key")
        problems = _dev_problems(self)
        if self.layout != "custom":
            for name in custom_keys:
                if getattr(self, name) is not None:
                    problems.append((name, f"only used with layout 'custom' (layout {self.layout!r} "
                                           f"fixes the field names); got {getattr(self, name)!r}"))
        else:
            if self.triples_field is None:
                problems.append(("triples_field", "required with layout 'custom': the field holding "
                                                  "the list of triples"))
            if self.text_field is None:
                self.text_field = "text"
        _problems(*problems)
        return self


# ----------------------------------------------------------------------------- other sections


class ModelConfig(_Section):
    """``model``: the encoder and the classification head."""

    encoder: EncoderSpec = Field(default_factory=EncoderSpec)
    maxlen: int = Field(128, ge=2)
    pooling: Literal["cls", "mean", "max"] = "cls"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check_maxlen(self) -> "ModelConfig":
        limit = self.encoder.max_sequence_length
        if self.maxlen > limit:
            _problems(("maxlen", f"expected at most model.encoder.max_sequence_length ({limit}); "
                                 f"got {self.maxlen}"))
        return self


class TrainingConfig(_Section):
    """``training``: optimisation. Give ``warmup_ratio`` or ``warmup_steps``, not both.

    ``distribution`` trains on several devices: ``mirrored`` (TensorFlow, the
    GPUs of one machine), ``multi_worker_mirrored`` (TensorFlow, several
    machines described by ``TF_CONFIG``) or ``data_parallel`` (JAX, every local
    device); ``batch_size`` is then the global batch. Whether it fits the Keras
    backend is checked when training starts (``toolkit.distribution``).
    """

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0.0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    warmup_steps: Optional[int] = Field(None, ge=0)
    decay: Literal["linear", "cosine", "none"] = "linear"
    weight_decay: float = Field(0.01, ge=0.0)
    ema: Optional[float] = Field(None, gt=0.0, lt=1.0)
    seed: int = 42
    early_stopping_patience: Optional[int] = Field(None, ge=1)
    mixed_precision: Optional[Literal["mixed_float16", "mixed_bfloat16"]] = None
    monitor: str = Field("val_micro_f1", min_length=1)
    distribution: Literal["none", "mirrored", "multi_worker_mirrored", "data_parallel"] = "none"

    @model_validator(mode="after")
    def _check_warmup(self) -> "TrainingConfig":
        if self.warmup_steps is not None and self.warmup_ratio > 0:
            _problems(("warmup_steps", f"give warmup_ratio ({self.warmup_ratio}) or warmup_steps "
                                       f"({self.warmup_steps}), not both"))
        return self


class LossConfig(_Section):
    """``loss``: ``multilabel_categorical_crossentropy`` (predict score > 0), or the
    ``binary_crossentropy`` baseline (its decision threshold is tuned on dev)."""

    name: Literal["multilabel_categorical_crossentropy", "binary_crossentropy"] = (
        "multilabel_categorical_crossentropy"
    )


class OutputConfig(_Section):
    """``output``: the run folder; an existing non-empty one is refused unless ``overwrite``."""

    dir: str = "runs/run"
    overwrite: bool = False


# ----------------------------------------------------------------------------- the config


class Config(_Section):
    """A whole config. Instances are :class:`MultilabelConfig` or :class:`RelationConfig`;
    build them with :func:`load_config`, :meth:`from_dict` or :func:`default_config`."""

    task: str
    data: Any = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    _source: str = PrivateAttr("<config>")

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> "Config":
        """Validate a plain dict (paths are taken as they are).

        >>> Config.from_dict({"task": "multilabel_classification",
        ...                   "data": {"train": "t.jsonl", "dev": "d.jsonl"}}).data.format
        'jsonl'
        """
        return _validate(data, lambda path: source)

    def __eq__(self, other: object) -> bool:
        # Equal when the settings are: where a config was read from does not count.
        if not isinstance(other, Config):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None

    def to_dict(self) -> dict:
        """The config as plain YAML-ready data (YAML key names, e.g. ``schema``)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        """The resolved config as YAML text; :func:`load_config` reads it back unchanged."""
        header = "# Resolved config written by the toolkit: every key, absolute paths.\n"
        return header + yaml.safe_dump(
            _escape_references(self.to_dict()), sort_keys=False, allow_unicode=True
        )

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write :meth:`to_yaml` to ``path`` (creating folders); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    def check_files(self) -> None:
        """Raise ConfigError listing every input file or folder that does not exist
        (data files, label file, schema, encoder path and vocabulary)."""
        problems = []
        data = self.to_dict()
        for keys in PATH_KEYS:
            if keys == ("output", "dir"):
                continue
            value = _get(data, keys)
            if isinstance(value, str) and not _URL.match(value) and not os.path.exists(value):
                problems.append(f"{self._source}: {'.'.join(keys)}: file not found: {value}")
        if problems:
            raise ConfigError(problems)


class MultilabelConfig(Config):
    """Config for ``task: multilabel_classification``."""

    task: Literal["multilabel_classification"] = "multilabel_classification"
    data: MultilabelDataConfig


class RelationConfig(Config):
    """Config for ``task: relation_extraction``."""

    task: Literal["relation_extraction"] = "relation_extraction"
    data: RelationDataConfig


_CONFIG_CLASSES = {"multilabel_classification": MultilabelConfig,
                   "relation_extraction": RelationConfig}
_DATA_CLASSES = {"multilabel_classification": MultilabelDataConfig,
                 "relation_extraction": RelationDataConfig}


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
                None, None, f"duplicate key {key!r} (first written on line {first_lines[key]})",
                key_node.start_mark,
            )
        first_lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_unique_mapping)


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
        raise ConfigError(f"{name}: expected a mapping of sections at the top level; "
                          f"got {_describe(data)}")
    return data


# ----------------------------------------------------------------------------- interpolation

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_REFERENCE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def _interpolate(value: Any, keys: tuple, source: str, problems: list) -> Any:
    if isinstance(value, dict):
        return {key: _interpolate(item, keys + (str(key),), source, problems)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, keys + (str(index),), source, problems)
                for index, item in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        body = _REFERENCE_BODY.fullmatch(match.group(1))
        where = f"{source}: {'.'.join(keys)}"
        if body is None:
            problems.append(f"{where}: malformed reference {match.group(0)!r}; "
                            "expected ${NAME} or ${NAME:-default}")
            return match.group(0)
        name, default = body.group(1), body.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{where}: environment variable {name!r} is not set and has no default "
                        f"(write ${{{name}:-default}} to give one)")
        return match.group(0)

    result = _REFERENCE.sub(substitute, value)
    whole = _REFERENCE.fullmatch(value)
    if whole is not None and whole.group(0) != "$${" and result.strip() in ("null", "~"):
        return None
    return result


def _escape_references(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _escape_references(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_references(item) for item in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


# ----------------------------------------------------------------------------- paths, merging


def _get(data: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _resolve_path(value: Any, folder: Path) -> Any:
    if not isinstance(value, str) or not value.strip() or _URL.match(value):
        return value
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        expanded = os.path.join(folder, expanded)
    return os.path.normpath(expanded)


def _resolve_paths(data: dict, folder: Path) -> dict:
    for keys in PATH_KEYS:
        parent = _get(data, keys[:-1])
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


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_copy(value) for value in data]
    return data


def _apply_override(data: dict, override: str, problems: list) -> Optional[tuple]:
    """Apply ``a.b.c=value`` to ``data``; return the key path, or None after a problem."""
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
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        problems.append(f"{source}: {'.'.join(keys)}: the value is not valid YAML ({error})")
        return None
    if keys in PATH_KEYS:
        value = _resolve_path(value, Path.cwd())
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            problems.append(f"{source}: {'.'.join(keys[:depth + 1])}: is not a section; "
                            f"it holds {child!r}")
            return None
        node = child
    node[keys[-1]] = value
    return keys


# ----------------------------------------------------------------------------- validation


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) <= 60 else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(word: str, choices: Iterable[str]) -> str:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else ""


def _model_in(annotation: Any) -> Optional[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _field_keys(model: type) -> dict:
    """YAML key -> field info for a model."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _walk(model: type, loc: tuple) -> tuple:
    """Split a pydantic location into the YAML key path and the model owning its last key."""
    path: list = []
    owner = model
    current: Optional[type] = model
    for part in loc:
        if current is None:
            break
        keys = _field_keys(current)
        path.append(str(part))
        owner = current
        if part not in keys:
            break
        current = _model_in(keys[part].annotation)
    return tuple(path), owner


def _message(error: dict, owner: type, path: tuple, task: str) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = path[-1]
        other_task = [t for t, cls in _DATA_CLASSES.items() if t != task]
        if path[:1] == ("data",) and len(path) == 2 and other_task:
            if key in _field_keys(_DATA_CLASSES[other_task[0]]):
                return (f"unknown key for task {task!r}; {key!r} is only used when task is "
                        f"{other_task[0]!r}")
        allowed = list(_field_keys(owner))
        hint = _suggestion(key, allowed)
        return "unknown key; " + (hint or f"expected one of: {', '.join(allowed)}")
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a section (a mapping of keys); got {_describe(value)}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        hint = _suggestion(value, re.findall(r"'([^']*)'", expected)) if isinstance(value, str) else ""
        return f"expected one of {expected}; got {_describe(value)}" + (f"; {hint}" if hint else "")
    text = error["msg"]
    if text.startswith("Value error, "):
        return text[len("Value error, "):]
    if text.startswith("Input should be "):
        text = "expected " + text[len("Input should be "):]
    return f"{text}; got {_describe(value)}"


def _format_errors(errors: list, model: type, task: str, source_of) -> list:
    grouped: dict = {}
    for error in errors:
        path, owner = _walk(model, tuple(error["loc"]))
        message = _message(error, owner, path, task)
        if error["type"] == "value_error":
            # Our validators report "field: message" lines; move the field into the path.
            fields = _field_keys(_owner_of(model, path))
            for line in message.split("\n"):
                name, _, text = line.partition(": ")
                if name in fields and text:
                    grouped.setdefault(path + (name,), []).append(text)
                else:
                    grouped.setdefault(path, []).append(line)
            continue
        grouped.setdefault(path, []).append(message)
    problems = []
    for path, messages in grouped.items():
        if len(messages) > 1 and all(m.startswith("expected ") for m in messages):
            got = messages[0].rsplit("; got ", 1)[-1]
            parts = [m[len("expected "):].rsplit("; got ", 1)[0] for m in messages]
            messages = [f"expected {' or '.join(dict.fromkeys(parts))}; got {got}"]
        for message in dict.fromkeys(messages):
            location = ".".join(path) if path else "(top level)"
            problems.append(f"{source_of(path)}: {location}: {message}")
    return problems


def _owner_of(model: type, path: tuple) -> type:
    """The model class that the YAML key path ``path`` points at (``model`` itself for ``()``)."""
    current = model
    for part in path:
        keys = _field_keys(current)
        found = _model_in(keys[part].annotation) if part in keys else None
        if found is None:
            return current
        current = found
    return current


def _validate(data: dict, source_of) -> Config:
    task = data.get("task")
    if task is None:
        raise ConfigError(f"{source_of(('task',))}: task: required key is missing; expected one of "
                          f"{', '.join(map(repr, TASKS))}")
    if task not in _CONFIG_CLASSES:
        hint = _suggestion(task, TASKS) if isinstance(task, str) else ""
        raise ConfigError(f"{source_of(('task',))}: task: expected one of "
                          f"{', '.join(map(repr, TASKS))}; got {_describe(task)}"
                          + (f"; {hint}" if hint else ""))
    model = _CONFIG_CLASSES[task]
    try:
        config = model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error.errors(), model, task, source_of)) from None
    config._source = source_of(())
    return config


# ----------------------------------------------------------------------------- public loaders


def load_config(
    path: Union[str, os.PathLike, None],
    overrides: Sequence[str] = (),
    base: Optional[dict] = None,
) -> Config:
    """Read, merge and validate a config.

    Args:
        path: a YAML file, or None to build from ``base`` and ``overrides`` alone.
        overrides: ``"section.key=value"`` strings applied last (the CLI's
            ``--set``), e.g. ``"training.epochs=3"``, ``"model.encoder.num_layers=4"``.
        base: values the file is merged onto (a nested dict, e.g.
            ``default_config(task).to_dict()``); the file wins key by key.

    Returns:
        A :class:`MultilabelConfig` or :class:`RelationConfig`, with absolute paths.

    Raises:
        ConfigError: listing every problem as ``<file>: <dotted.path>: <message>``;
        YAML syntax errors as ``<file>:<line>: invalid YAML: ...``.

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
    data = _resolve_paths(_copy(base), Path.cwd()) if base else {}
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
            if tuple(error_path[: len(keys)]) == keys:
                return f"--set {override}"
        return name

    config = _validate(data, source_of)
    # Defaults (output.dir) are relative to the working directory.
    config.output.dir = _resolve_path(config.output.dir, Path.cwd())
    return config


def default_config(
    task: str,
    data_dir: Union[str, os.PathLike] = "demo_data",
    output_dir: Union[str, os.PathLike, None] = None,
    overrides: Sequence[str] = (),
) -> Config:
    """The config of a built-in demo, reading what ``write_multilabel_demo`` /
    ``write_relation_demo`` (``toolkit.data.synthetic``) wrote into ``data_dir``.

    A small randomly initialised encoder over the demo's own vocabulary; sized
    to train in a few minutes on two CPU cores. Relative paths are relative to
    the working directory.

    ```python
    from toolkit.data.synthetic import write_multilabel_demo
    write_multilabel_demo("demo_data")
    config = default_config("multilabel_classification", "demo_data", "runs/demo")
    ```
    """
    from toolkit.data import synthetic

    if task not in TASKS:
        raise ConfigError(f"<default_config>: task: expected one of {', '.join(map(repr, TASKS))}; "
                          f"got {_describe(task)}")
    data_dir = str(data_dir)
    files = (synthetic.MULTILABEL_DEMO_FILES if task == "multilabel_classification"
             else synthetic.RELATION_DEMO_FILES)
    data: dict = {name: os.path.join(data_dir, files[name]) for name in ("train", "dev", "test")}
    if task == "multilabel_classification":
        data["label_names"] = os.path.join(data_dir, files["labels"])
        maxlen, epochs, pooling = 96, 6, "mean"
    else:
        data["schema"] = os.path.join(data_dir, files["schema"])
        maxlen, epochs, pooling = 96, 25, "cls"
    short = "multilabel" if task == "multilabel_classification" else "relations"
    base = {
        "task": task,
        "data": data,
        "model": {
            "encoder": {
                "source": "random",
                "vocab": os.path.join(data_dir, files["vocab"]),
                "lowercase": True,
                "num_layers": 2,
                "hidden_dim": 128,
                "num_heads": 4,
                "intermediate_dim": 256,
                "max_sequence_length": 128,
                "dropout": 0.1,
            },
            "maxlen": maxlen,
            "pooling": pooling,
            "dropout": 0.1,
        },
        "training": {
            "epochs": epochs,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.1,
            "decay": "linear",
            "weight_decay": 0.01,
            "seed": 42,
            "early_stopping_patience": 3,
        },
        "output": {"dir": str(output_dir) if output_dir is not None else f"runs/demo_{short}"},
    }
    return load_config(None, overrides=overrides, base=base)
