"""The parts every task's config shares: strict sections, the data and model bases,
`training`, `output`, and `TaskConfig`, the base of each task's schema.

Every section is strict: an unknown key is an error, and so is a value of the
wrong type (`epochs: true`, `batch_size: "32"`); an integer is accepted where
a float is expected. A task's schema (`toolkit.config.classification`,
`toolkit.config.relations`) subclasses `TaskConfig`, fixes `task` to its name,
names its sections, lists the values its training logs (`logged_metrics`,
against which `training.monitor` is checked) and the keys that hold paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from toolkit.config.errors import ConfigError, problems, suggestion
from toolkit.encoders.spec import EncoderSpec

__all__ = [
    "Section",
    "DataConfig",
    "EncoderModelConfig",
    "SpanModelConfig",
    "TrainingConfig",
    "OutputConfig",
    "TaskConfig",
    "is_url",
    "demo_config",
]


def is_url(value: str) -> bool:
    """Whether a path value is a URL (`hf://...`), kept as it is."""
    head, sep, _ = value.partition("://")
    return bool(sep) and head[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in head)


class Section(BaseModel):
    """A config section: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class DataConfig(Section):
    """What every task's `data` section has: the splits, and what to do with bad lines.

    Give `dev` (a file) or `dev_fraction` (a share of train held out as dev,
    drawn with `training.seed`), not both. `max_examples` keeps a seeded
    random sample of each file (`toolkit.data.read_splits`).
    """

    train: str
    dev: Optional[str] = None
    dev_fraction: Optional[float] = Field(None, gt=0.0, lt=0.5)
    test: Optional[str] = None
    max_examples: Optional[int] = Field(None, ge=1)
    on_bad_line: Literal["error", "skip"] = "error"

    def read(self, split: str = "train"):
        """Read one split (`"train"`, `"dev"` or `"test"`) with this task's reader."""
        raise NotImplementedError(f"{type(self).__name__} names no reader")

    def dev_problems(self) -> list:
        """A data section gives a dev file or `dev_fraction`, exactly one of them."""
        if self.dev is None and self.dev_fraction is None:
            return [
                (
                    "dev",
                    "required key is missing; give a dev file, or dev_fraction "
                    "(e.g. 0.1) to hold out that share of train as dev",
                )
            ]
        if self.dev is not None and self.dev_fraction is not None:
            return [
                (
                    "dev_fraction",
                    f"give dev (a file) or dev_fraction ({self.dev_fraction}, "
                    "a share of train held out as dev), not both",
                )
            ]
        return []


class EncoderModelConfig(Section):
    """What every task's `model` section has: the encoder, the token length, and how longer texts are read.

    `min_maxlen` is the shortest `maxlen` the task can use. `long_texts`, for
    a text longer than `maxlen` tokens (`toolkit.windows`): `sentences` reads
    it sentence by sentence (a sentence longer than `maxlen` in windows),
    `windows` as overlapping windows of whole words over all of it,
    `window_stride` tokens apart (null: half a window, `(maxlen - 2) // 2`),
    `truncate` its first `maxlen` tokens only.
    """

    min_maxlen: ClassVar[int] = 2

    encoder: EncoderSpec = Field(default_factory=EncoderSpec)
    maxlen: int = 128
    long_texts: Literal["sentences", "windows", "truncate"] = "sentences"
    window_stride: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_maxlen(self) -> EncoderModelConfig:
        limit = self.encoder.max_sequence_length
        if self.window_stride is not None and self.window_stride > self.maxlen - 2:
            problems(
                (
                    "window_stride",
                    f"expected at most maxlen - 2 ({self.maxlen - 2}: windows must overlap or touch); "
                    f"got {self.window_stride}",
                )
            )
        if self.maxlen < self.min_maxlen:
            problems(
                (
                    "maxlen",
                    f"expected at least {self.min_maxlen} ([CLS], [SEP] and the tokens "
                    f"this task needs); got {self.maxlen}",
                )
            )
        if self.maxlen > limit:
            problems(("maxlen", f"expected at most model.encoder.max_sequence_length ({limit}); got {self.maxlen}"))
        return self


class SpanModelConfig(EncoderModelConfig):
    """What the span tasks' `model` sections add (relations, entities): `join_texts`.

    `join_texts` (1: off): training also reads documents of that many
    training texts joined (a seeded order), in windows (`long_texts:
    windows`), so that the model learns to read several sentences at once,
    as it does in the windows of a long document. A model trained on single
    sentences finds far less in a window of several (`docs/results.md`).
    """

    min_maxlen: ClassVar[int] = 3

    join_texts: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check_join_texts(self) -> SpanModelConfig:
        if self.join_texts > 1 and self.long_texts != "windows":
            problems(
                (
                    "join_texts",
                    f"joined texts are read in windows: set long_texts: windows (it is {self.long_texts!r}); "
                    f"got join_texts {self.join_texts}",
                )
            )
        return self


class TrainingConfig(Section):
    """`training`: optimisation. Give `warmup_ratio` or `warmup_steps`, not both.

    `monitor` is one of the values the task logs (checked by `TaskConfig`).
    `distribution` trains on several devices: `mirrored` (TensorFlow, the
    GPUs of one machine), `multi_worker_mirrored` (TensorFlow, several
    machines described by `TF_CONFIG`) or `data_parallel` (JAX, every local
    device); `batch_size` is then the global batch. Whether it fits the Keras
    backend is checked when training starts (`toolkit.distribution`). Under
    `multi_worker_mirrored` a worker waits at most `cluster_timeout` seconds
    for the chief to come up, then stops with a message. `max_minutes` is a
    wall-clock budget: training ends at the first epoch end past it (counted
    over every resumed part, epoch-end scoring included), then the run is
    scored as usual. `sparse_embedding_updates` updates an embedding's rows
    (and their Adam moments and weight decay) only in the steps that look
    them up, as LazyAdam does (`toolkit.optimization.WarmEMAAdamW`,
    TensorFlow): cheaper steps for a large vocabulary and short texts.
    `ema` keeps an exponential moving average of the weights, warmed up
    (`toolkit.optimization.ema_decay`); with `ema_compare` (the default)
    each epoch scores both the average and the training weights on dev and
    keeps the better (`toolkit.callbacks.AverageOrTrainingWeights`, a second
    dev pass), so an average never makes a run score lower; `ema_compare:
    false` scores the average alone.
    """

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0.0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    warmup_steps: Optional[int] = Field(None, ge=0)
    decay: Literal["linear", "cosine", "none"] = "linear"
    weight_decay: float = Field(0.01, ge=0.0)
    sparse_embedding_updates: bool = False
    ema: Optional[float] = Field(None, gt=0.0, lt=1.0)
    ema_compare: bool = True
    seed: int = 42
    early_stopping_patience: Optional[int] = Field(None, ge=1)
    max_minutes: Optional[float] = Field(None, gt=0.0)
    mixed_precision: Optional[Literal["mixed_float16", "mixed_bfloat16"]] = None
    monitor: str = Field("val_micro_f1", min_length=1)
    distribution: Literal["none", "mirrored", "multi_worker_mirrored", "data_parallel"] = "none"
    cluster_timeout: float = Field(600.0, gt=0.0)

    @model_validator(mode="after")
    def _check_warmup(self) -> TrainingConfig:
        if self.warmup_steps is not None and self.warmup_ratio > 0:
            problems(
                (
                    "warmup_steps",
                    f"give warmup_ratio ({self.warmup_ratio}) or warmup_steps ({self.warmup_steps}), not both",
                )
            )
        return self


class OutputConfig(Section):
    """`output`: the run folder; an existing non-empty one is refused unless `overwrite`."""

    dir: str = "runs/run"
    overwrite: bool = False


class TaskConfig(Section):
    """A whole config of one task. Build one with `toolkit.config.load_config`.

    A subclass fixes `task: Literal["<name>"]`, declares `data` and `model`
    (and any section of its own), and sets:

    - `logged_metrics`: the values its training logs each epoch (the columns
      of `history.csv`), which `training.monitor` must name, and
      `default_monitor`, the one it keeps the best model by unless told;
    - `path_keys`: its keys holding file paths, beyond the shared ones.
    """

    logged_metrics: ClassVar[tuple] = ()
    default_monitor: ClassVar[str] = "val_micro_f1"
    path_keys: ClassVar[tuple] = ()
    shared_path_keys: ClassVar[tuple] = (
        ("data", "train"),
        ("data", "dev"),
        ("data", "test"),
        ("model", "encoder", "path"),
        ("model", "encoder", "vocab"),
        ("output", "dir"),
    )

    task: str
    data: Any = None
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    _source: str = PrivateAttr("<config>")

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> TaskConfig:
        """Validate a plain dict as the config of its `task` (paths are taken as they are).

        >>> TaskConfig.from_dict({"task": "multilabel_classification",
        ...                       "data": {"train": "t.jsonl", "dev": "d.jsonl"}}).data.format
        'jsonl'
        """
        from toolkit.config.loading import validate

        return validate(data, lambda path: source)

    @classmethod
    def all_path_keys(cls) -> tuple:
        """Every key path of this schema that holds a file or folder path."""
        return cls.shared_path_keys + cls.path_keys

    @model_validator(mode="after")
    def _check_monitor(self) -> TaskConfig:
        if "monitor" not in self.training.model_fields_set:
            self.training.monitor = self.default_monitor
        monitor = self.training.monitor
        if self.logged_metrics and monitor not in self.logged_metrics:
            hint = suggestion(monitor, self.logged_metrics)
            problems(
                (
                    "training.monitor",
                    f"expected one of the values task {self.task!r} logs ({', '.join(self.logged_metrics)}); "
                    f"got {monitor!r}" + (f"; {hint}" if hint else ""),
                )
            )
        return self

    @property
    def source(self) -> str:
        """Where the config was read from (a file name, or `<config>`)."""
        return self._source

    def __eq__(self, other: object) -> bool:
        # Equal when the settings are: where a config was read from does not count.
        if not isinstance(other, TaskConfig):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None

    def to_dict(self) -> dict:
        """The config as plain YAML-ready data (YAML key names, e.g. `schema`)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        """The resolved config as YAML text; `load_config` reads it back unchanged."""
        header = "# Resolved config written by the toolkit: every key, absolute paths.\n"
        return header + yaml.safe_dump(_escape_references(self.to_dict()), sort_keys=False, allow_unicode=True)

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write `to_yaml()` to `path` atomically (creating folders); return the path."""
        from toolkit.atomic import write_text_atomic

        return write_text_atomic(path, self.to_yaml())

    def check_files(self) -> None:
        """Raise ConfigError listing every input file or folder that does not exist
        (data files, label file, schema, encoder path and vocabulary)."""
        found = []
        data = self.to_dict()
        for keys in self.all_path_keys():
            if keys == ("output", "dir"):
                continue
            value = get_key(data, keys)
            if isinstance(value, str) and not is_url(value) and not os.path.exists(value):
                found.append(f"{self._source}: {'.'.join(keys)}: file not found: {value}")
        if found:
            raise ConfigError(found)


def get_key(data: Any, keys) -> Any:
    """The value at a key path of nested dicts, or None."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _escape_references(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _escape_references(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_references(item) for item in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


# ----------------------------------------------------------------------------- the demos


def demo_config(task: str, data_dir: str, files: dict, *, data: dict, model: dict, epochs: int) -> dict:
    """A built-in demo's config dict (before `output`), over the files `toolkit.data.synthetic` wrote.

    Both demos use a small randomly initialised encoder over the demo's own
    vocabulary and training settings sized for a few minutes on two CPU
    cores. `data` maps the task's extra data keys to names in `files`
    (`{"label_names": "labels"}`); `model` holds the task's model keys.
    """
    splits = {name: os.path.join(data_dir, files[name]) for name in ("train", "dev", "test")}
    encoder = {
        "source": "random",
        "vocab": os.path.join(data_dir, files["vocab"]),
        "lowercase": True,
        "num_layers": 2,
        "hidden_dim": 128,
        "num_heads": 4,
        "intermediate_dim": 256,
        "max_sequence_length": 128,
        "dropout": 0.1,
    }
    training = {
        "epochs": epochs,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.1,
        "decay": "linear",
        "weight_decay": 0.01,
        "seed": 42,
        "early_stopping_patience": 3,
    }
    return {
        "task": task,
        "data": {**splits, **{key: os.path.join(data_dir, files[name]) for key, name in data.items()}},
        "model": {"encoder": encoder, **model},
        "training": training,
    }
