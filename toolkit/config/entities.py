"""The config of `task: entity_recognition` (see `configs/conll04_entities.yaml`).

Sections: `data` (`EntityDataConfig`), `model` (`EntityModelConfig`: the
encoder and the GlobalPointer head), `training` and `output`.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from toolkit.config.errors import problems
from toolkit.config.sections import DataConfig, SpanModelConfig, TaskConfig, demo_config

__all__ = ["EntityConfig", "EntityDataConfig", "EntityModelConfig"]


class EntityDataConfig(DataConfig):
    """`data` for `task: entity_recognition`.

    `layout` is one of `toolkit.data.entities.ENTITY_LAYOUTS`: `spans`
    (JSON lines with character offsets), `spert` (tokens with entities or
    BIO / BIOES / BILOU tags), `lic2019` or `duie2` (the typed subjects and
    objects of relation data). `types` (optional) lists the entity types;
    without it they are those of the training data, logged with their counts.
    `text_field` and `entities_field` rename the fields of layout `spans`.
    """

    layout: Literal["spans", "spert", "lic2019", "duie2"] = "spans"
    types: Optional[str] = None
    text_field: Optional[str] = None
    entities_field: Optional[str] = None

    def read(self, split: str = "train"):
        """Read one split with `toolkit.data.entities.read_entities_split`."""
        from toolkit.data.entities import read_entities_split

        return read_entities_split(self, split)

    @model_validator(mode="after")
    def _check_layout(self) -> EntityDataConfig:
        found = self.dev_problems()
        if self.layout != "spans":
            for name in ("text_field", "entities_field"):
                if getattr(self, name) is not None:
                    found.append(
                        (
                            name,
                            f"only used with layout 'spans' (layout {self.layout!r} fixes the field names); "
                            f"got {getattr(self, name)!r}",
                        )
                    )
        problems(*found)
        return self


class EntityModelConfig(SpanModelConfig):
    """`model` for `task: entity_recognition`: the encoder, the token length and the span head.

    `head`: `global_pointer` (Su, 2021: a start and an end projection per
    type) or `efficient_global_pointer` (Su, 2022: one shared projection plus
    per-type biases, far fewer parameters for many types). `head_size`: the
    size of each start and end vector (even; rotary position embedding).
    """

    head: Literal["global_pointer", "efficient_global_pointer"] = "global_pointer"
    head_size: int = Field(64, ge=2)

    @model_validator(mode="after")
    def _check_head_size(self) -> EntityModelConfig:
        if self.head_size % 2:
            problems(
                ("head_size", f"expected an even number (rotary position embedding pairs it up); got {self.head_size}")
            )
        return self


class EntityConfig(TaskConfig):
    """Config for `task: entity_recognition`.

    `training.monitor` names one of the logged values: `loss` (train) and
    `val_micro_f1`, `val_precision`, `val_recall` (decoded dev entities,
    strict: span and type).
    """

    logged_metrics: ClassVar[tuple] = ("loss", "val_micro_f1", "val_precision", "val_recall")
    path_keys: ClassVar[tuple] = (("data", "types"),)

    task: Literal["entity_recognition"] = "entity_recognition"
    data: EntityDataConfig
    model: EntityModelConfig = Field(default_factory=EntityModelConfig)

    @staticmethod
    def demo(data_dir: str) -> dict:
        """The demo's config (before output.dir) over what `toolkit.data.synthetic` writes into `data_dir`."""
        from toolkit.data.synthetic import ENTITY_DEMO_FILES

        return demo_config(
            "entity_recognition",
            data_dir,
            ENTITY_DEMO_FILES,
            data={"types": "types"},
            model={"maxlen": 64, "head_size": 32},
            epochs=20,
        )
