"""Entity training data: gold character spans as token spans, and the training batches.

`encode_entities` tokenizes every text once and places each gold entity on
its tokens (`tokenizer.char_span_to_token_span`); an entity cut off by
`maxlen`, or covering only characters the tokenizer drops, is left out and
counted. `EntityDataFeed` batches sentences of similar length, padded to a
multiple of `length_multiple`, as `({"token_ids", "segment_ids"}, targets)`
with int32 targets `[batch, types, max_spans]` (`toolkit.spans.span_targets`).

```python
encoded, report = encode_entities(train.texts, train.entities, tokenizer, types, maxlen=128)
feed = EntityDataFeed(encoded, batch_size=32, num_types=len(types), seed=0)
model.fit(feed, epochs=10)
```
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from toolkit.batching import length_grouped_batches
from toolkit.spans.targets import most_spans_per_head, span_targets

__all__ = ["EncodedEntities", "EntityDataFeed", "EntityReport", "encode_entities"]


@dataclass
class EncodedEntities:
    """One tokenized text: ids, and its gold entities as `(type index, start token, end token)` (inclusive)."""

    token_ids: np.ndarray
    segment_ids: np.ndarray
    spans: list

    def __len__(self) -> int:
        return len(self.token_ids)


@dataclass
class EntityReport:
    """What happened to the gold entities: how many there were, and how many were left out, by reason."""

    num_entities: int = 0
    dropped: Counter = field(default_factory=Counter)

    @property
    def num_kept(self) -> int:
        return self.num_entities - sum(self.dropped.values())

    def summary(self) -> str:
        line = f"kept {self.num_kept} of {self.num_entities} entities"
        if self.dropped:
            line += "; left out " + ", ".join(f"{count} {reason}" for reason, count in self.dropped.most_common())
        return line

    def as_dict(self) -> dict:
        return {"num_entities": self.num_entities, "num_kept": self.num_kept, "dropped": dict(self.dropped)}


def encode_entities(texts, entities, tokenizer, types: Sequence[str], maxlen: int):
    """`(list of EncodedEntities, EntityReport)` for texts and their `(start, end, type)` character spans."""
    index = {name: position for position, name in enumerate(types)}
    report = EntityReport()
    encoded = []
    for encoding, text_entities in zip(tokenizer.encode_batch(list(texts), maxlen=maxlen), entities):
        covered = max(
            (
                end
                for (start, end), segment in zip(encoding.offsets, encoding.segment_ids)
                if end > start and segment == 0
            ),
            default=0,
        )
        spans = set()
        for start, end, entity_type in text_entities:
            report.num_entities += 1
            if entity_type not in index:
                report.dropped["type not in the type list"] += 1
                continue
            span = tokenizer.char_span_to_token_span(encoding, start, end)
            if span is None:
                report.dropped["beyond maxlen" if start >= covered else "no token"] += 1
                continue
            spans.add((index[entity_type], span[0], span[1]))
        encoded.append(
            EncodedEntities(
                np.asarray(encoding.token_ids, dtype="int32"),
                np.asarray(encoding.segment_ids, dtype="int32"),
                sorted(spans),
            )
        )
    return encoded, report


class EntityDataFeed(keras.utils.PyDataset):
    """Training batches of `EncodedEntities` (see the module docstring).

    Sentences with no entity are kept (they teach every span a score below 0).
    The order depends on `(seed, epoch)` only; `first_epoch` starts a resumed
    run where it stopped.
    """

    def __init__(
        self,
        encoded: Sequence[EncodedEntities],
        batch_size: int,
        num_types: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pad_id: int = 0,
        length_multiple: int = 8,
        first_epoch: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not encoded:
            raise ValueError("no training sentence")
        self.encoded = list(encoded)
        self.batch_size = int(batch_size)
        self.num_types = int(num_types)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.pad_id = int(pad_id)
        self.length_multiple = int(length_multiple)
        self.epoch = int(first_epoch)
        self._lengths = [len(item) for item in self.encoded]
        self.width = most_spans_per_head([item.spans for item in self.encoded])
        self._batches = self._arrange(self.epoch)

    def _arrange(self, epoch):
        return length_grouped_batches(self._lengths, self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch)

    def __len__(self) -> int:
        return len(self._batches)

    def output_signature(self):
        """The `tf.TensorSpec`s of a batch, sequence and span axes unknown (`toolkit.distribution.feed_stream`)."""
        import tensorflow as tf

        sequence = tf.TensorSpec((None, None), tf.int32)
        return {"token_ids": sequence, "segment_ids": sequence}, tf.TensorSpec((None, self.num_types, None), tf.int32)

    def on_epoch_end(self):
        self.epoch += 1
        self._batches = self._arrange(self.epoch)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self._batches):
            raise IndexError(f"batch index {index} out of range for {len(self._batches)} batches.")
        rows = [self.encoded[sentence] for sentence in self._batches[index]]
        longest = max(len(row) for row in rows)
        seq_len = -(-longest // self.length_multiple) * self.length_multiple
        token_ids = np.full((len(rows), seq_len), self.pad_id, dtype="int32")
        segment_ids = np.zeros((len(rows), seq_len), dtype="int32")
        for row, item in enumerate(rows):
            token_ids[row, : len(item)] = item.token_ids
            segment_ids[row, : len(item)] = item.segment_ids
        targets = span_targets([item.spans for item in rows], self.num_types, seq_len, width=self.width)
        return {"token_ids": token_ids, "segment_ids": segment_ids}, targets
