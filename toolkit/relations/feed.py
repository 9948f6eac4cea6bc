"""The training data feed: one randomly sampled gold subject per sentence and step.

The semi-pointer semi-tagging model predicts the objects of ONE subject at a
time, so each training row conditions on one gold subject of its sentence,
drawn at random, and carries that subject's object labels. The draw depends on
`(seed, epoch, batch index)` only: reproducible, different every epoch, and
independent of the order in which Keras asks for batches.

Each batch is a dict of arrays padded to the longest sentence of the batch
(rounded up to `length_multiple`):

- `token_ids`, `segment_ids`: int32 `[batch, seq]`.
- `subject_span`: int32 `[batch, 2]`, inclusive token span of the sampled
  subject.
- `subject_labels`: float32 `[batch, 2, seq]` (starts, ends of ALL subjects).
- `object_labels`: float32 `[batch, num_predicates, 2, seq]` (objects of the
  sampled subject).

With `targets_as="inputs"` (the default, for a training model that puts the
loss in a `MultilabelMetrics` layer) the batch is that one dict; with
`targets_as="y"` it is `(inputs, {"subject_logits": ..., "object_logits": ...})`
for a model compiled with `compile(loss=...)` (the JAX route).

Example:

```python
feed = RelationDataFeed(targets, batch_size=32, seed=0, group_by_length=True)
extractor.fit(feed, epochs=3)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import keras
import numpy as np

__all__ = ["RelationDataFeed"]

TARGETS_AS = ("inputs", "y")


class RelationDataFeed(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of relation-extraction training batches.

    Args:
        targets: `RelationTargets` (from `toolkit.relations.targets.build_targets`).
        batch_size: sentences per batch.
        shuffle: reshuffle the sentences every epoch.
        seed: seed of the shuffling and of the subject draws.
        group_by_length: put sentences of similar length together (sorted
            within windows of 100 batches, then the batches shuffled), so
            less padding is computed.
        skip_empty: leave out sentences with no usable triple, as bert4keras
            does. When False they are kept with the `[CLS]` token as the
            subject and no object, which teaches the subject head that the
            sentence has no subject.
        targets_as: `"inputs"` or `"y"` (see the module docstring).
        pad_id: the padding token id.
        length_multiple: round the padded length up to a multiple of this,
            which bounds the number of distinct shapes (retracing, XLA).
        first_epoch: the epoch (from 0) the feed starts at; a resumed run
            starts where it stopped, to draw what the uninterrupted run drew.
        workers, use_multiprocessing, max_queue_size: as for
            `keras.utils.PyDataset`.
    """

    def __init__(
        self,
        targets: Sequence,
        batch_size: int = 32,
        *,
        shuffle: bool = True,
        seed: int = 0,
        group_by_length: bool = False,
        skip_empty: bool = True,
        targets_as: str = "inputs",
        pad_id: int = 0,
        length_multiple: int = 1,
        first_epoch: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        if targets_as not in TARGETS_AS:
            raise ValueError(f"targets_as must be 'inputs' or 'y'; got {targets_as!r}.")
        if isinstance(length_multiple, bool) or not isinstance(length_multiple, int) or length_multiple < 1:
            raise ValueError(f"length_multiple must be a positive integer; got {length_multiple!r}.")
        targets = list(targets)
        if skip_empty:
            targets = [item for item in targets if item.subject_spans]
        if not targets:
            raise ValueError(
                "No training sentence has a usable triple: check that the entities occur in "
                "the texts and that maxlen is not too short (see the TargetReport)."
            )
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.group_by_length = bool(group_by_length)
        self.skip_empty = bool(skip_empty)
        self.targets_as = targets_as
        self.pad_id = int(pad_id)
        self.length_multiple = length_multiple
        self.num_predicates = targets[0].num_predicates
        if isinstance(first_epoch, bool) or not isinstance(first_epoch, int) or first_epoch < 0:
            raise ValueError(f"first_epoch must be a non-negative integer; got {first_epoch!r}.")
        self.epoch = first_epoch
        self._batches = self._arrange(self.epoch)

    def __len__(self) -> int:
        return len(self._batches)

    def _arrange(self, epoch: int) -> list:
        """The sentence indices of every batch of one epoch."""
        count = len(self.targets)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, count, self.batch_size)]
        lengths = np.array([len(item) for item in self.targets])
        window = self.batch_size * 100
        batches = []
        for begin in range(0, count, window):
            chunk = order[begin : begin + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def on_epoch_end(self):
        self.epoch += 1
        self._batches = self._arrange(self.epoch)

    def sample_subjects(self, index: int) -> list:
        """The subject span drawn for each sentence of batch `index` this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        spans = []
        for sentence in self._batches[index]:
            subjects = self.targets[sentence].subject_spans
            spans.append(subjects[rng.integers(len(subjects))] if subjects else (0, 0))
        return spans

    def __getitem__(self, index: int):
        if not 0 <= index < len(self._batches):
            raise IndexError(f"batch index {index} out of range for {len(self._batches)} batches.")
        rows = [self.targets[sentence] for sentence in self._batches[index]]
        spans = self.sample_subjects(index)
        longest = max(len(row) for row in rows)
        seq_len = -(-longest // self.length_multiple) * self.length_multiple
        batch = len(rows)
        token_ids = np.full((batch, seq_len), self.pad_id, dtype="int32")
        segment_ids = np.zeros((batch, seq_len), dtype="int32")
        subject_labels = np.zeros((batch, 2, seq_len), dtype="float32")
        object_labels = np.zeros((batch, self.num_predicates, 2, seq_len), dtype="float32")
        for row, (item, span) in enumerate(zip(rows, spans)):
            length = len(item)
            token_ids[row, :length] = item.token_ids
            segment_ids[row, :length] = item.segment_ids
            subject_labels[row] = item.subject_labels(seq_len)
            for predicate, start, end in item.objects.get(tuple(span), ()):
                object_labels[row, predicate, 0, start] = 1.0
                object_labels[row, predicate, 1, end] = 1.0
        inputs = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "subject_span": np.asarray(spans, dtype="int32").reshape(batch, 2),
        }
        labels = {"subject_labels": subject_labels, "object_labels": object_labels}
        if self.targets_as == "inputs":
            inputs.update(labels)
            return inputs
        return inputs, {"subject_logits": subject_labels, "object_logits": object_labels}

    def max_length(self) -> Optional[int]:
        """The longest sentence, in tokens."""
        return max(len(item) for item in self.targets)
