"""`SpanFeed`: what the span tasks' training feeds share (NumPy batches; Keras's `PyDataset`).

Rows (anything with `token_ids`, `segment_ids` and a length) are batched by
similar length (`toolkit.batching.length_grouped_batches`), in an order that
depends on `(seed, epoch)` only, from `first_epoch` on, and padded to a
multiple of `length_multiple`. A subclass says what the targets of a batch
are (`targets(rows, seq_len)`) and their `output_signature`.
"""

from __future__ import annotations

import keras

from toolkit.batching import length_grouped_batches, pad_rows

__all__ = ["SpanFeed"]


class SpanFeed(keras.utils.PyDataset):
    """Batches `({"token_ids", "segment_ids"}, targets)` of `rows` (see the module docstring)."""

    def __init__(
        self,
        rows,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pad_id: int = 0,
        length_multiple: int = 8,
        first_epoch: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rows = list(rows)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.pad_id = int(pad_id)
        self.length_multiple = int(length_multiple)
        self.epoch = int(first_epoch)
        self._lengths = [len(row) for row in self.rows]
        self._batches = self._arrange(self.epoch)

    def _arrange(self, epoch):
        return length_grouped_batches(self._lengths, self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch)

    def __len__(self) -> int:
        return len(self._batches)

    def on_epoch_end(self):
        self.epoch += 1
        self._batches = self._arrange(self.epoch)

    def targets(self, indices, seq_len: int):
        """The targets of the rows at `indices`, padded to `seq_len` tokens."""
        raise NotImplementedError

    def __getitem__(self, index: int):
        if not 0 <= index < len(self._batches):
            raise IndexError(f"batch index {index} out of range for {len(self._batches)} batches.")
        indices = list(self._batches[index])
        token_ids, segment_ids = pad_rows([self.rows[i] for i in indices], self.pad_id, self.length_multiple)
        return {"token_ids": token_ids, "segment_ids": segment_ids}, self.targets(indices, token_ids.shape[1])
