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

import numpy as np

from toolkit.spans.feed import SpanFeed
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


class EntityDataFeed(SpanFeed):
    """Training batches of `EncodedEntities` (see the module docstring; `toolkit.spans.feed.SpanFeed`).

    Sentences with no entity are kept (they teach every span a score below 0).
    """

    def __init__(self, encoded: Sequence[EncodedEntities], batch_size: int, num_types: int, **options):
        if not encoded:
            raise ValueError("no training sentence")
        super().__init__(encoded, batch_size, **options)
        self.num_types = int(num_types)
        self.width = most_spans_per_head([item.spans for item in self.rows])

    def output_signature(self):
        """The `tf.TensorSpec`s of a batch, sequence and span axes unknown (`toolkit.distribution.feed_stream`)."""
        import tensorflow as tf

        sequence = tf.TensorSpec((None, None), tf.int32)
        return {"token_ids": sequence, "segment_ids": sequence}, tf.TensorSpec((None, self.num_types, None), tf.int32)

    def targets(self, indices, seq_len):
        return span_targets([self.rows[i].spans for i in indices], self.num_types, seq_len, width=self.width)
