"""Length-grouped batches: sequences of similar length share a batch, so padding stays small.

Hand-written because no library the toolkit uses does it for in-memory index
lists: `tf.data.experimental.bucket_by_sequence_length` needs fixed bucket
boundaries and a TensorFlow pipeline (the JAX and PyTorch backends have
neither), and Keras' `PyDataset` batches in the order it is given. Pooled
sorting (shuffle, sort inside pools of batches, shuffle the batches) keeps an
epoch random while padding stays at about a tenth of the tokens
(`docs/benchmarks.md`).

Decoding pads to a few fixed shapes instead (`batches_by_length`): lengths
and row counts from `bucket_size`'s 1, 2, 3, 4, 6, 8, 12, 16, ... (at most
1.5 times the need), so that a backend that compiles per input shape (JAX,
XLA) compiles a few, and TensorFlow's predict function, which generalises an
axis once it has seen it change, is traced at most twice in a decode (more
traces than that, over a relation decoder's two models, made it warn of
retracing).
"""

import numpy as np

__all__ = [
    "CALL_TOKENS",
    "batches_by_length",
    "bucket_size",
    "call_batches",
    "decode_rows",
    "length_grouped_batches",
    "pad_rows",
    "padded_length",
    "padding_splits",
]

# What one more model call costs, in padded tokens: a batch is cut in two where that saves more padding.
# Measured on all-MiniLM-L6-v2, 2 CPU cores: 4.5 ms a call, 62 us a token, 73 tokens (`benchmarks/call_cost.py`,
# docs/benchmarks.md); a larger encoder costs more a token, so fewer tokens a call: 64.
CALL_TOKENS = 64


def length_grouped_batches(lengths, batch_size, *, shuffle, seed=0, epoch=0, pool_batches=50):
    """Split example indices into batches of similar length.

    With `shuffle`, examples are shuffled, cut into pools of
    `pool_batches * batch_size`, sorted by length inside each pool, batched,
    and the batches shuffled: random from epoch to epoch (the order depends on
    `seed` and `epoch` only), with little padding. Without `shuffle`, examples
    are batched in order of length (for evaluation; the caller restores order).

    Returns:
        A list of int64 index arrays.

    Example:

    >>> [b.tolist() for b in length_grouped_batches([5, 1, 4, 2], 2, shuffle=False)]
    [[1, 3], [2, 0]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def bucket_size(count: int, minimum: int = 1) -> int:
    """The smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... (the powers of two and 1.5 times them)
    that is at least `count` and `minimum`: the few sizes decoding pads an axis to.

    >>> [bucket_size(n) for n in (1, 5, 7, 12, 13, 17, 33)], bucket_size(3, minimum=8)
    ([1, 6, 8, 12, 16, 24, 48], 8)
    """
    count = max(int(count), int(minimum), 1)
    power = 1 << (count - 1).bit_length()  # the smallest power of two >= count
    return power // 4 * 3 if power // 4 * 3 >= count else power


def padded_length(longest: int, limit=None) -> int:
    """The length a decode batch whose longest row has `longest` tokens is padded to:
    `bucket_size(longest, minimum=8)`, but never past `limit` (the longest encoding
    allowed, `maxlen`; a model's position embeddings may end there).

    >>> padded_length(13), padded_length(90, limit=96), padded_length(100, limit=120)
    (16, 96, 120)
    """
    length = bucket_size(longest, minimum=8)
    return min(length, max(int(limit), longest)) if limit is not None else length


def pad_rows(rows, pad_id: int, length_multiple: int = 1, *, length=None, count=None):
    """int32 `(token_ids, segment_ids)` `[len(rows), seq]` of rows with `token_ids` and `segment_ids`
    (tokenizer encodings, training targets), padded to the longest rounded up to `length_multiple`.

    `length` gives the padded length instead; `count` the number of rows:
    those past `len(rows)` repeat the rows in order (real inputs, whose
    outputs the caller drops).

    >>> from types import SimpleNamespace as Row
    >>> ids, segments = pad_rows([Row(token_ids=[2, 7, 3], segment_ids=[0, 0, 0])], pad_id=0, length_multiple=4)
    >>> ids.tolist(), segments.shape
    ([[2, 7, 3, 0]], (1, 4))
    >>> pad_rows([Row(token_ids=[2, 3], segment_ids=[0, 0])], pad_id=0, length=3, count=2)[0].tolist()
    [[2, 3, 0], [2, 3, 0]]
    """
    longest = max(len(row.token_ids) for row in rows)
    seq_len = length if length is not None else -(-longest // length_multiple) * length_multiple
    if seq_len < longest:
        raise ValueError(f"length {seq_len} is shorter than the longest row ({longest} tokens).")
    rows = [rows[index] for index in np.resize(np.arange(len(rows)), count)] if count is not None else rows
    token_ids = np.full((len(rows), seq_len), pad_id, dtype="int32")
    segment_ids = np.zeros((len(rows), seq_len), dtype="int32")
    for position, row in enumerate(rows):
        token_ids[position, : len(row.token_ids)] = row.token_ids
        segment_ids[position, : len(row.segment_ids)] = row.segment_ids
    return token_ids, segment_ids


def decode_rows(total: int, batch_size: int) -> int:
    """The rows of every decode batch over `total` texts: `batch_size` when there is more than one
    batch (the last one is padded), else `bucket_size(total)`, so that one decode sees one batch size."""
    return batch_size if total > batch_size else min(bucket_size(total), batch_size)


def padding_splits(lengths, limit=None, *, max_rows=None, call_tokens=CALL_TOKENS):
    """Cut a batch of ascending `lengths` into runs, each a model call padded to `padded_length` of
    its longest and `bucket_size` of its count rows (at most `max_rows`), so that the padded tokens
    plus `call_tokens` a call are fewest: `[(start, end), ...]` covering `range(len(lengths))`.

    Texts served together are of any length: one call over 32 of them pads every
    one to the longest, three times the tokens of the average in GoEmotions.
    Calls of similar lengths cost less while each saves more than a call's
    overhead; a batch of similar lengths stays whole.

    >>> padding_splits([20, 21, 22, 23]), padding_splits([3, 4, 5, 6, 7, 8, 9, 120, 125, 126])
    ([(0, 4)], [(0, 7), (7, 10)])
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    count = len(lengths)
    if count == 0:
        return []
    if np.any(np.diff(lengths) < 0):
        raise ValueError("padding_splits takes lengths in ascending order.")
    padded = np.asarray([padded_length(int(length), limit) for length in lengths], dtype=np.int64)
    rows = np.asarray([bucket_size(size) for size in range(1, count + 1)], dtype=np.int64)
    if max_rows is not None:
        rows = np.minimum(rows, max(int(max_rows), count))
    best = np.zeros(count + 1, dtype=np.int64)  # best[end]: the least cost of lengths[:end]
    cut = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        starts = np.arange(end)
        costs = best[:end] + call_tokens + rows[end - starts - 1] * padded[end - 1]
        start = int(np.argmin(costs))  # the first of the least: fewer, longer calls
        best[end], cut[end] = costs[start], start
    runs, end = [], count
    while end > 0:
        runs.append((int(cut[end]), end))
        end = int(cut[end])
    return runs[::-1]


def call_batches(lengths, batch_size: int, limit=None, *, sort: bool = True):
    """The model calls of a decode over texts of `lengths` tokens: `(indices, length, rows)` per call,
    `indices` into `lengths`, padded to `length` tokens (`padded_length`) and `rows` rows (`bucket_size`
    of the call's texts, at most `decode_rows`; the caller fills the rest with repeats).

    With `sort`, texts of similar length share a call (`length_grouped_batches`), and a batch of very
    unequal lengths is cut where that saves more padding than a call costs (`padding_splits`); without,
    calls take the texts in order, `batch_size` at a time.

    >>> [(indices.tolist(), length, rows) for indices, length, rows in call_batches([5, 90, 7], 4)]
    [([0, 2], 8, 2), ([1], 96, 1)]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    most = decode_rows(len(lengths), batch_size)
    if sort:
        groups = length_grouped_batches(lengths, batch_size, shuffle=False)
    else:
        groups = [
            np.arange(start, min(start + batch_size, len(lengths))) for start in range(0, len(lengths), batch_size)
        ]
    for group in groups:
        runs = padding_splits(lengths[group], limit, max_rows=most) if sort else [(0, len(group))]
        for start, end in runs:
            indices = group[start:end]
            yield indices, padded_length(int(lengths[indices].max()), limit), min(bucket_size(len(indices)), most)


def batches_by_length(encodings, batch_size: int, pad_id: int, *, limit=None):
    """For decoding: yield `(indices, encodings, token_ids, segment_ids)` per batch of similar length
    (`indices` into `encodings`, so that the caller puts results back in input order).

    The arrays have a few fixed shapes, so that a model compiled per input
    shape (JAX, XLA) compiles a few times and TensorFlow traces a model's
    predict function at most twice in a decode (it generalises the axis that
    changed): `decode_rows` rows (more than the batch when it is the last
    one: repeats of its rows, whose outputs the caller drops by reading the
    first `len(encodings)` rows) and `padded_length(longest, limit)` tokens.
    Padding changes no output of a real token: attention is masked.
    """
    for indices, length, rows in call_batches([len(e.token_ids) for e in encodings], batch_size, limit):
        batch = [encodings[index] for index in indices]
        yield (indices, batch, *pad_rows(batch, pad_id, length=length, count=rows))
