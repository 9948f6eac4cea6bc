"""The config of `task: relation_extraction` (see `configs/lic2019_sample.yaml`).

Sections: `data` (`RelationDataConfig`), `model` (`RelationModelConfig`),
`training` and `output`; there is no `loss` section (the loss is this
toolkit's, over sequence positions) and no pooling.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from toolkit.config.errors import problems
from toolkit.config.sections import DataConfig, SpanModelConfig, TaskConfig, demo_config
from toolkit.data.relations import layout_fields

__all__ = ["RelationDataConfig", "RelationModelConfig", "RelationConfig"]


class RelationDataConfig(DataConfig):
    """`data` for `task: relation_extraction`.

    `layout` is one of `toolkit.data.relations.LAYOUTS` (`lic2019`,
    `duie2`, `casrel`, `spert`, `custom`); `layout: custom` reads your own
    field names (dotted paths allowed), the other layouts fix them.
    `schema` (optional) is the predicate list in any form
    `toolkit.data.schema.load_schema` reads; without it the predicates
    (and entity types) come from the training data and are logged with
    their counts.
    """

    schema_path: Optional[str] = Field(None, alias="schema")
    layout: Literal["lic2019", "duie2", "casrel", "spert", "custom"] = "lic2019"
    text_field: Optional[str] = None
    triples_field: Optional[str] = None
    subject_key: Optional[str] = None
    predicate_key: Optional[str] = None
    object_key: Optional[str] = None
    subject_type_key: Optional[str] = None
    object_type_key: Optional[str] = None
    on_missing_entity: Literal["count", "skip", "error"] = "count"

    def read(self, split: str = "train"):
        """Read one split with `toolkit.data.read_relations_split`."""
        from toolkit.data.relations import read_relations_split

        return read_relations_split(self, split)

    @model_validator(mode="after")
    def _check_layout(self) -> RelationDataConfig:
        custom_keys = (
            "text_field",
            "triples_field",
            "subject_key",
            "predicate_key",
            "object_key",
            "subject_type_key",
            "object_type_key",
        )
        found = self.dev_problems()
        if self.layout != "custom":
            for name in custom_keys:
                if getattr(self, name) is not None:
                    found.append(
                        (
                            name,
                            f"only used with layout 'custom' (layout {self.layout!r} "
                            f"fixes the field names); got {getattr(self, name)!r}",
                        )
                    )
        else:
            if self.triples_field is None:
                found.append(("triples_field", "required with layout 'custom': the field holding the list of triples"))
            if self.text_field is None:
                self.text_field = layout_fields(self.layout)[0]
        problems(*found)
        return self


class RelationModelConfig(SpanModelConfig):
    """`model` for `task: relation_extraction`: the encoder, the token length and the method.

    `maxlen` is at least 3: `[CLS]`, `[SEP]` and one token for an entity.
    `method`: `semi_pointer` (bert4keras's semi-pointer semi-tagging model,
    `toolkit.relations.model`) or `gplinker` (Su's GPLinker,
    `toolkit.relations.gplinker`); `head` and `head_size` are GPLinker's
    span matrices.
    """

    method: Literal["semi_pointer", "gplinker"] = "semi_pointer"
    head: Literal["global_pointer", "efficient_global_pointer"] = "efficient_global_pointer"
    head_size: int = Field(64, ge=2)

    @model_validator(mode="after")
    def _check_method(self) -> RelationModelConfig:
        found = []
        if self.method != "gplinker":
            for name in ("head", "head_size"):
                # A resolved config.yaml writes every key, so the default value is accepted.
                if getattr(self, name) != type(self).model_fields[name].default:
                    found.append(
                        (
                            name,
                            f"only used with method 'gplinker' (method is {self.method!r}); got {getattr(self, name)!r}",
                        )
                    )
        if self.head_size % 2:
            found.append(
                ("head_size", f"expected an even number (rotary position embedding pairs it up); got {self.head_size}")
            )
        problems(*found)
        return self


class RelationConfig(TaskConfig):
    """Config for `task: relation_extraction`.

    `training.monitor` names one of the logged values: `loss`,
    `subject_micro_f1` and `object_micro_f1` (the two heads on train), and
    `val_micro_f1`, `val_precision`, `val_recall` (decoded dev triples).
    """

    logged_metrics: ClassVar[tuple] = (
        "loss",
        "subject_micro_f1",
        "object_micro_f1",
        "val_micro_f1",
        "val_precision",
        "val_recall",
    )
    path_keys: ClassVar[tuple] = (("data", "schema"),)

    task: Literal["relation_extraction"] = "relation_extraction"
    data: RelationDataConfig
    model: RelationModelConfig = Field(default_factory=RelationModelConfig)

    #: What GPLinker does not log: the semi-pointer model's two heads on train.
    semi_pointer_only: ClassVar[tuple] = ("subject_micro_f1", "object_micro_f1")

    @model_validator(mode="after")
    def _check_monitor_of_method(self) -> RelationConfig:
        if self.model.method == "gplinker" and self.training.monitor in self.semi_pointer_only:
            problems(
                (
                    "training.monitor",
                    f"{self.training.monitor!r} is logged by method 'semi_pointer' only; with 'gplinker' use one of "
                    "loss, val_micro_f1, val_precision, val_recall",
                )
            )
        return self

    @staticmethod
    def demo(data_dir: str) -> dict:
        """The demo's config (before output.dir) over what `toolkit.data.synthetic` writes into `data_dir`."""
        from toolkit.data.synthetic import RELATION_DEMO_FILES

        return demo_config(
            "relation_extraction",
            data_dir,
            RELATION_DEMO_FILES,
            data={"schema": "schema"},
            model={"maxlen": 96},
            epochs=25,
        )
