"""Data readers shared by the pipelines, with ``path:line:`` errors.

- :func:`read_multilabel` (JSON lines, CSV, TSV) -> :class:`MultilabelDataset`
- :func:`read_relations` (LIC2019, CasRel, custom JSON) -> :class:`RelationDataset`
- :func:`read_split` reads a split as a config's ``data`` section describes.
- :func:`split_off` holds out a seeded dev split of a train set (``data.dev_fraction``).
- ``toolkit.data.synthetic`` generates the built-in demo data sets.

Importing this package reads nothing.
"""

from __future__ import annotations

from typing import Any, Union

from toolkit.data.errors import BadLineCounter, BadLineReport, DataError
from toolkit.data.multilabel import (
    MultilabelDataset,
    build_label_vocabulary,
    infer_format,
    read_label_names,
    read_multilabel,
    read_multilabel_split,
    split_off,
    to_multi_hot,
)
from toolkit.data.relations import RelationDataset, read_relations, read_relations_split, read_schema

__all__ = [
    "BadLineCounter",
    "BadLineReport",
    "DataError",
    "MultilabelDataset",
    "RelationDataset",
    "build_label_vocabulary",
    "infer_format",
    "read_label_names",
    "read_multilabel",
    "read_multilabel_split",
    "read_relations",
    "read_relations_split",
    "read_schema",
    "read_split",
    "split_off",
    "to_multi_hot",
]


def read_split(data_config: Any, split: str = "train") -> Union[MultilabelDataset, RelationDataset]:
    """Read ``split`` of the data set that ``config.data`` describes, for either task.

    ```python
    config = load_config("configs/template_multilabel.yaml")
    train, dev = read_split(config.data, "train"), read_split(config.data, "dev")
    ```
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test'; got {split!r}")
    if hasattr(data_config, "schema_path"):
        return read_relations_split(data_config, split)
    return read_multilabel_split(data_config, split)
