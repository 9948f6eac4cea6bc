"""Train, dev and test as a config's `data` section names them, for either task.

`read_splits` is what both pipelines call: it reads each file, keeps a
seeded random sample of `data.max_examples` of each (`sample`), or holds
dev out of train with `data.dev_fraction` (`split_off`), logs what it
read and refuses an empty split.

```python
config = load_config("configs/reuters.yaml")
splits = read_splits(config.data, seed=config.training.seed)
len(splits.train), len(splits.dev), splits.test      # test is None when not given
```
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from toolkit.data.entities import EntityDataset
from toolkit.data.errors import DataError
from toolkit.data.multilabel import MultilabelDataset
from toolkit.data.relations import RelationDataset

Dataset = Union[MultilabelDataset, RelationDataset, EntityDataset]
SPLITS = ("train", "dev", "test")


class Splits(NamedTuple):
    """The three splits; `test` is None when the config names no test file."""

    train: Dataset
    dev: Dataset
    test: Optional[Dataset]


def read_split(data_config: Any, split: str = "train") -> Dataset:
    """Read one `split` of the data set that `config.data` describes, for any task.

    The task's data section knows its reader (`config.data.read(split)`).

    ```python
    config = load_config("configs/template_multilabel.yaml")
    train = read_split(config.data, "train")
    ```
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'dev' or 'test'; got {split!r}")
    return data_config.read(split)


def _unit(dataset: Dataset) -> str:
    return "sentences" if isinstance(dataset, (RelationDataset, EntityDataset)) else "examples"


def _describe(dataset: Dataset) -> str:
    if isinstance(dataset, RelationDataset):
        return f"{len(dataset)} sentences, {sum(map(len, dataset.triples))} triples"
    if isinstance(dataset, EntityDataset):
        return f"{len(dataset)} sentences, {sum(map(len, dataset.entities))} entities"
    return f"{len(dataset)} examples"


def read_splits(data_config: Any, seed: int, log: Callable[[str], None] = lambda message: None) -> Splits:
    """Read train, dev and test as `config.data` says (either task).

    Each file is read whole. With `data.max_examples`, each file read (train,
    dev, test) is then cut to a seeded random sample of that many examples,
    kept in file order (`sample`, seeded by `seed`): the same sample on every
    run, from all over the file, so a file sorted by label still gives every
    label a chance. With `data.dev_fraction` instead of a dev file, dev is
    that share of the (sampled) train held out with `seed` (pass
    `config.training.seed`): the same split on every run. Skipped lines
    (`data.on_bad_line: skip`) are counted in the log over the whole file; a
    split left with no example is a `DataError` naming its file.
    """
    max_examples = getattr(data_config, "max_examples", None)
    for split in SPLITS:  # A missing dev or test file is told before train is read.
        path = getattr(data_config, split, None)
        if path is not None and not os.path.exists(path):
            raise DataError(path, None, f"file not found (data.{split})", reason="cannot read file")
    read = {}
    for split in SPLITS:
        if split == "test" and not getattr(data_config, "test", None):
            read[split] = None
            continue
        if split == "dev" and getattr(data_config, "dev", None) is None:
            fraction = data_config.dev_fraction
            read["train"], read["dev"] = split_off(read["train"], fraction, seed)
            log(
                f"dev: {_describe(read['dev'])} held out of train (dev_fraction {fraction}, seed {seed}); "
                f"train keeps {_describe(read['train'])}"
            )
            continue
        dataset = read_split(data_config, split)
        log(f"{split}: {_describe(dataset)} from {dataset.path}")
        if dataset.report:
            log(dataset.report.summary())
        if len(dataset) == 0:
            raise DataError(dataset.path, None, f"no usable {_unit(dataset)} in the {split} split")
        if max_examples is not None and len(dataset) > max_examples:
            size = len(dataset)
            dataset = sample(dataset, max_examples, seed)
            log(
                f"{split}: {max_examples} of {size} {_unit(dataset)} sampled (data.max_examples {max_examples}, seed {seed})"
            )
        read[split] = dataset
    return Splits(read["train"], read["dev"], read["test"])


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")


def _order(dataset: Dataset, seed: int, purpose: str = "") -> list:
    """The positions of `dataset` sorted by a pseudo-random key of `seed`, `purpose` and each example's line.

    An in-memory dataset without line numbers is keyed by position instead.
    The key of `split_off` has no purpose (it must not change: runs and
    resumes rely on it); other draws name theirs, so that they are
    independent of it.
    """
    size = len(dataset)
    ids = dataset.lines if len(dataset.lines) == size else range(size)

    def key(position: int) -> bytes:
        return hashlib.blake2b(f"{purpose}{int(seed)}:{ids[position]}".encode(), digest_size=8).digest()

    return sorted(range(size), key=key)


def _subset(dataset: Dataset, positions, report) -> Dataset:
    """The examples at `positions` (in file order), every per-example field together, with `report`."""
    positions = sorted(positions)
    has_lines = len(dataset.lines) == len(dataset)
    parts = {name: [getattr(dataset, name)[i] for i in positions] for name in dataset.PER_EXAMPLE if name != "lines"}
    parts["lines"] = [dataset.lines[i] for i in positions] if has_lines else []
    return replace(dataset, report=report, **parts)


def sample(dataset: Dataset, size: int, seed: int) -> Dataset:
    """A seeded random sample of `size` examples of `dataset`, in file order (`data.max_examples`).

    Works on any dataset that lists its per-example fields in `PER_EXAMPLE`
    (a `MultilabelDataset`, a `RelationDataset`). Each example gets a
    pseudo-random key from `seed` and the line it was read from, and the
    `size` examples with the smallest keys are kept: the same sample on every
    run, machine and Python version for the same file and seed, drawn from
    all over the file. The keys are not those of `split_off`, so a sample is
    not biased towards the examples a full run holds out as dev. A dataset
    of `size` examples or fewer is returned as it is. The sample keeps the
    file's `path`, its `lines` and its bad-line `report`.

    >>> data = MultilabelDataset("t.jsonl", texts=list("abcdefghij"),
    ...                          labels=[["x"]] * 10, lines=list(range(1, 11)))
    >>> kept = sample(data, 4, seed=42)
    >>> len(kept), kept.lines == sorted(kept.lines), set(kept.texts) <= set(data.texts)
    (4, True, True)
    >>> sample(data, 4, seed=42).lines == kept.lines, sample(data, 20, seed=42) is data
    (True, True)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer; got {size!r}")
    _check_seed(seed)
    if len(dataset) <= size:
        return dataset
    return _subset(dataset, _order(dataset, seed, purpose="sample:")[:size], dataset.report)


def split_off(dataset: Dataset, fraction: float, seed: int) -> tuple:
    """Hold out a seeded random `fraction` of `dataset` as dev: `(train, dev)`.

    Works on a `MultilabelDataset` or a `RelationDataset`. Each
    example gets a pseudo-random key from `seed` and the line it was read
    from; the `round(fraction * n)` examples with the smallest keys (at least
    1, and at least 1 left for train) form dev. The split is therefore the
    same on every run, machine and Python version for the same file, seed and
    examples read (`max_examples`, `on_bad_line`); adding or skipping other
    lines moves only examples near the cut. Both parts keep the file's
    `path`, their `lines` (messages still name the right line) and the
    file order; `train` keeps the file's bad-line `report`, `dev` gets
    an empty one, so skipped lines are counted once.

    >>> data = MultilabelDataset("t.jsonl", texts=list("abcdefghij"),
    ...                          labels=[["x"]] * 10, lines=list(range(1, 11)))
    >>> train, dev = split_off(data, 0.2, seed=42)
    >>> len(train), len(dev), sorted(train.texts + dev.texts) == data.texts
    (8, 2, True)
    >>> split_off(data, 0.2, seed=42)[1].texts == dev.texts
    True
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number between 0 and 1 (exclusive); got {fraction!r}")
    _check_seed(seed)
    size = len(dataset)
    if size < 2:
        unit = _unit(dataset) if size != 1 else _unit(dataset)[:-1]
        raise DataError(
            dataset.path,
            None,
            f"cannot hold out a dev split from {size} {unit}; need at least 2",
            reason="too few examples",
        )
    dev_size = min(max(int(round(fraction * size)), 1), size - 1)
    in_dev = set(_order(dataset, seed)[:dev_size])
    train = _subset(dataset, [i for i in range(size) if i not in in_dev], dataset.report)
    return train, _subset(dataset, in_dev, None)
