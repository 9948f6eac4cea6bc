"""Data readers shared by the pipelines, with `path:line:` errors.

- `read_multilabel` (JSON lines, CSV, TSV) -> `MultilabelDataset`
- `read_relations` (LIC2019, CasRel, custom JSON) -> `RelationDataset`
- `read_splits` reads train, dev and test as a config's `data` section
  describes (both pipelines call it); `read_split` reads one of them.
- `split_off` holds out a seeded dev split of a train set (`data.dev_fraction`).
- `toolkit.data.synthetic` generates the built-in demo data sets.

Importing this package reads nothing.
"""

from __future__ import annotations

from toolkit.data.errors import BadLineCounter, BadLineReport, DataError
from toolkit.data.multilabel import (
    MultilabelDataset,
    build_label_vocabulary,
    infer_format,
    read_label_names,
    read_multilabel,
    read_multilabel_split,
    to_multi_hot,
)
from toolkit.data.relations import RelationDataset, read_relations, read_relations_split, read_schema
from toolkit.data.splits import Splits, read_split, read_splits, split_off

__all__ = [
    "BadLineCounter",
    "BadLineReport",
    "DataError",
    "MultilabelDataset",
    "RelationDataset",
    "Splits",
    "build_label_vocabulary",
    "infer_format",
    "read_label_names",
    "read_multilabel",
    "read_multilabel_split",
    "read_relations",
    "read_relations_split",
    "read_schema",
    "read_split",
    "read_splits",
    "split_off",
    "to_multi_hot",
]
