"""Span targets for the sparse loss, and batched decoding of span scores (NumPy; no Keras).

A span of type `t` over tokens `start..end` (inclusive) of a sequence padded
to `seq` tokens is class `start * seq + end` of head `t`
(`toolkit.spans.FlattenSpans`). A batch's targets are int32 `[batch, heads,
max_spans]`, padded with -1, which the sparse loss skips.

Decoding reads every span whose score is > 0 from the whole batch's
`[batch, heads, seq, seq]` scores at once (`decode_spans`), then maps token
spans back to characters through the tokenizer's offsets.

>>> import numpy as np
>>> span_targets([[(0, 1, 2)], [(1, 3, 3), (0, 2, 2)]], heads=2, seq_len=4).tolist()
[[[6], [-1]], [[10], [15]]]
>>> scores = np.full((1, 2, 4, 4), -1.0); scores[0, 1, 2, 3] = 0.5
>>> decode_spans(scores)
[[(1, 2, 3)]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["decode_spans", "most_spans_per_head", "span_targets"]


def most_spans_per_head(spans: Sequence[Sequence[tuple]]) -> int:
    """The most `(head, start, end)` spans one row has for one head (at least 1): a feed's fixed width."""
    from collections import Counter

    return max([1] + [count for found in spans for count in Counter(head for head, _, _ in set(found)).values()])


def span_targets(
    spans: Sequence[Sequence[tuple]], heads: int, seq_len: int, *, ordered: bool = True, width: int = 1
) -> np.ndarray:
    """int32 `[batch, heads, max_spans]` class indices of `(head, start, end)` token spans, -1 padded.

    Args:
        spans: per row, `(head, start, end)` with inclusive token positions
            `< seq_len` (a span listed twice counts once).
        heads: the number of span types.
        seq_len: the padded length of the batch.
        ordered: spans have `start <= end`; False for pairs of positions
            that may come in either order (GPLinker's head-to-head and
            tail-to-tail links).
        width: the least `max_spans`; a training feed passes the most spans
            any sentence has for one head, so that every batch has the same
            shape there (Keras fixes a feed's shapes from its first batches).
    """
    per_head = [[[] for _ in range(heads)] for _ in spans]
    for row, found in enumerate(spans):
        for head, start, end in found:
            if not (
                0 <= head < heads and 0 <= start < seq_len and 0 <= end < seq_len and (start <= end or not ordered)
            ):
                raise ValueError(f"span {(head, start, end)} of row {row} is outside {heads} heads x {seq_len} tokens.")
            index = start * seq_len + end
            if index not in per_head[row][head]:
                per_head[row][head].append(index)
    width = max([width] + [len(indices) for row in per_head for indices in row])
    targets = np.full((len(spans), heads, width), -1, dtype="int32")
    for row, by_head in enumerate(per_head):
        for head, indices in enumerate(by_head):
            targets[row, head, : len(indices)] = indices
    return targets


def decode_spans(scores, threshold: float = 0.0, lengths: Sequence[int] = None) -> list:
    """Per row, the `(head, start, end)` token spans scoring above `threshold`, sorted.

    Args:
        scores: `[batch, heads, seq, seq]` (or flattened `[batch, heads, seq * seq]`).
        threshold: 0 for this loss.
        lengths: per row, only spans ending before this many tokens count
            (the rest is padding); all when None.
    """
    scores = np.asarray(scores)
    if scores.ndim == 3:
        seq_len = int(round(np.sqrt(scores.shape[-1])))
        if seq_len * seq_len != scores.shape[-1]:
            raise ValueError(f"flattened scores must have seq * seq classes; got {scores.shape[-1]}.")
        scores = scores.reshape(scores.shape[0], scores.shape[1], seq_len, seq_len)
    if scores.ndim != 4 or scores.shape[2] != scores.shape[3]:
        raise ValueError(f"scores must be [batch, heads, seq, seq]; got shape {scores.shape}.")
    found = [[] for _ in range(scores.shape[0])]
    rows, heads, starts, ends = np.nonzero(scores > threshold)
    for row, head, start, end in zip(rows.tolist(), heads.tolist(), starts.tolist(), ends.tolist()):
        if start <= end and (lengths is None or end < lengths[row]):
            found[row].append((head, start, end))
    return found
