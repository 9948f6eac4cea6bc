"""The config of `task: multilabel_classification` (see `configs/template_multilabel.yaml`).

Sections: `data` (`MultilabelDataConfig`), `model` (`ClassifierModelConfig`),
`training`, `loss` (`LossConfig`) and `output`. The defaults of the data
section (field names, header, label separator) are derived here and only
here; the reader gets them filled in.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from toolkit.config.errors import problems
from toolkit.config.sections import DataConfig, EncoderModelConfig, Section, TaskConfig, demo_config
from toolkit.data.multilabel import infer_format, layout_defaults

__all__ = ["MultilabelDataConfig", "ClassifierModelConfig", "LossConfig", "MultilabelConfig"]

_METRICS = ("loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall", "subset_accuracy")


class MultilabelDataConfig(DataConfig):
    """`data` for `task: multilabel_classification`.

    Defaults follow `format` (`toolkit.data.multilabel.layout_defaults`): JSON
    lines read fields `text` and `labels` (a list); CSV has a header and reads
    columns `text` and `labels`; TSV has no header and reads column 0 (text)
    and 1 (labels); CSV/TSV labels are split on `,`.

    `on_warning` says what the checks before the first epoch do with a
    likely mistake (`toolkit.data.summary`: a label separator that looks
    wrong, swapped fields, labels unseen in train, texts cut by `maxlen`):
    `count` logs it and records it in `data_summary.json`, `error` stops the
    run listing them all.
    """

    format: Optional[Literal["jsonl", "csv", "tsv"]] = None
    text_field: Union[int, str, None] = None
    labels_field: Union[int, str, None] = None
    label_separator: Optional[str] = None
    label_names: Optional[str] = None
    header: Optional[bool] = None
    on_warning: Literal["count", "error"] = "count"

    def read(self, split: str = "train"):
        """Read one split with `toolkit.data.read_multilabel_split`."""
        from toolkit.data.multilabel import read_multilabel_split

        return read_multilabel_split(self, split)

    @model_validator(mode="after")
    def _fill_defaults(self) -> MultilabelDataConfig:
        if self.format is None:
            inferred = infer_format(self.train)
            if inferred is None:
                problems(
                    (
                        "format",
                        f"cannot tell the format of {self.train!r} from its extension; "
                        "set format to 'jsonl', 'csv' or 'tsv'",
                    )
                )
            self.format = inferred
        found = self.dev_problems()
        if self.format == "jsonl":
            if self.header is not None:
                found.append(("header", f"only used with csv and tsv files (format is 'jsonl'); got {self.header!r}"))
            for name in ("text_field", "labels_field"):
                if isinstance(getattr(self, name), int):
                    found.append(
                        (name, f"a JSON lines file needs a field name; got the column number {getattr(self, name)}")
                    )
        else:
            header = self.header if self.header is not None else self.format == "csv"
            for name in ("text_field", "labels_field"):
                value = getattr(self, name)
                if isinstance(value, str) and not header:
                    if value.isascii() and value.isdigit():
                        setattr(self, name, int(value))
                    else:
                        found.append(
                            (
                                name,
                                "the file has no header (header: false), so give a "
                                f"column number from 0; got {value!r}",
                            )
                        )
                if isinstance(getattr(self, name), int) and getattr(self, name) < 0:
                    found.append((name, f"expected a column number >= 0; got {value}"))
        self.header, self.text_field, self.labels_field, self.label_separator = layout_defaults(
            self.format,
            header=self.header,
            text_field=self.text_field,
            labels_field=self.labels_field,
            label_separator=self.label_separator,
        )
        if self.label_separator == "":
            found.append(("label_separator", "expected a non-empty string or null; got ''"))
        if self.text_field == self.labels_field and self.text_field is not None:
            found.append(("labels_field", f"is the same as text_field ({self.text_field!r})"))
        problems(*found)
        return self


class ClassifierModelConfig(EncoderModelConfig):
    """`model` for `task: multilabel_classification`: the encoder and the classification head.

    With `long_texts: windows` or `sentences`, a text longer than `maxlen` is
    scored window by window at evaluation and prediction, and its row is the windows' logits
    pooled by `window_pooling`: `max` (a label holds when some window supports
    it) or `mean`. Training reads the first `maxlen` tokens either way.
    """

    long_texts: Literal["sentences", "windows", "truncate"] = "truncate"
    window_pooling: Literal["max", "mean"] = "max"
    pooling: Literal["cls", "mean", "max"] = "cls"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class LossConfig(Section):
    """`loss`: `multilabel_categorical_crossentropy` (predict score > 0), or the
    `binary_crossentropy` baseline (its decision threshold is tuned on dev)."""

    name: Literal["multilabel_categorical_crossentropy", "binary_crossentropy"] = "multilabel_categorical_crossentropy"


class PredictConfig(Section):
    """`predict`: the decision rule after `logit > 0`, saved with the model and used by `evaluate` and
    `predict`: `min_labels` tops a row up to its highest-scoring labels (a top-k fallback; 0 is off),
    `max_labels` keeps only the highest of those above 0 (null is off)."""

    min_labels: int = Field(0, ge=0)
    max_labels: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_order(self) -> PredictConfig:
        if self.max_labels is not None and self.min_labels > self.max_labels:
            problems(("min_labels", f"is more than max_labels ({self.min_labels} > {self.max_labels})"))
        return self


class MultilabelConfig(TaskConfig):
    """Config for `task: multilabel_classification`.

    `training.monitor` names one of the logged values: `loss`, `micro_f1`,
    `macro_f1`, `micro_precision`, `micro_recall`, `subset_accuracy`, each on
    train and with `val_` on dev.
    """

    logged_metrics: ClassVar[tuple] = _METRICS + tuple(f"val_{name}" for name in _METRICS)
    path_keys: ClassVar[tuple] = (("data", "label_names"),)

    task: Literal["multilabel_classification"] = "multilabel_classification"
    data: MultilabelDataConfig
    model: ClassifierModelConfig = Field(default_factory=ClassifierModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)

    @staticmethod
    def demo(data_dir: str) -> dict:
        """The demo's config (before output.dir) over what `toolkit.data.synthetic` writes into `data_dir`."""
        from toolkit.data.synthetic import MULTILABEL_DEMO_FILES

        return demo_config(
            "multilabel_classification",
            data_dir,
            MULTILABEL_DEMO_FILES,
            data={"label_names": "labels"},
            model={"maxlen": 96, "pooling": "mean", "dropout": 0.1},
            epochs=6,
        )
