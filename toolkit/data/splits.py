"""Train, dev and test as a config's `data` section names them, for either task.

`read_splits` is what both pipelines call: it reads each file, or holds
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
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from toolkit.data.errors import DataError
from toolkit.data.multilabel import MultilabelDataset
from toolkit.data.relations import RelationDataset

Dataset = Union[MultilabelDataset, RelationDataset]
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
    return "sentences" if isinstance(dataset, RelationDataset) else "examples"


def _describe(dataset: Dataset) -> str:
    if isinstance(dataset, RelationDataset):
        return f"{len(dataset)} sentences, {sum(map(len, dataset.triples))} triples"
    return f"{len(dataset)} examples"


def read_splits(data_config: Any, seed: int, log: Callable[[str], None] = lambda message: None) -> Splits:
    """Read train, dev and test as `config.data` says (either task).

    With `data.dev_fraction` instead of a dev file, dev is that share of
    train held out with `seed` (pass `config.training.seed`): the same
    split on every run. Skipped lines (`data.on_bad_line: skip`) are counted
    in the log; a split left with no example is a `DataError` naming
    its file.
    """
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
        read[split] = dataset
    return Splits(read["train"], read["dev"], read["test"])


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
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}")
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
    has_lines = len(dataset.lines) == size
    # An in-memory dataset without line numbers is keyed by position instead.
    ids = dataset.lines if has_lines else range(size)

    def key(position: int) -> bytes:
        return hashlib.blake2b(f"{int(seed)}:{ids[position]}".encode(), digest_size=8).digest()

    in_dev = set(sorted(range(size), key=key)[:dev_size])

    def subset(dev: bool, report) -> Dataset:
        positions = [i for i in range(size) if (i in in_dev) == dev]
        parts = {
            name: [getattr(dataset, name)[i] for i in positions] for name in dataset.PER_EXAMPLE if name != "lines"
        }
        parts["lines"] = [dataset.lines[i] for i in positions] if has_lines else []
        return replace(dataset, report=report, **parts)

    return subset(False, dataset.report), subset(True, None)
