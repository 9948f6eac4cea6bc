"""Length-grouped batches: sequences of similar length share a batch, so padding stays small.

Hand-written because no library the toolkit uses does it for in-memory index
lists: `tf.data.experimental.bucket_by_sequence_length` needs fixed bucket
boundaries and a TensorFlow pipeline (the JAX and PyTorch backends have
neither), and Keras' `PyDataset` batches in the order it is given. Pooled
sorting (shuffle, sort inside pools of batches, shuffle the batches) keeps an
epoch random while padding stays at about a tenth of the tokens
(`docs/benchmarks.md`).
"""

import numpy as np

__all__ = ["batches_by_length", "length_grouped_batches", "pad_rows"]


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


def pad_rows(rows, pad_id: int, length_multiple: int = 1):
    """int32 `(token_ids, segment_ids)` `[len(rows), seq]` of rows with `token_ids` and `segment_ids`
    (tokenizer encodings, training targets), padded to the longest rounded up to `length_multiple`.

    >>> from types import SimpleNamespace as Row
    >>> ids, segments = pad_rows([Row(token_ids=[2, 7, 3], segment_ids=[0, 0, 0])], pad_id=0, length_multiple=4)
    >>> ids.tolist(), segments.shape
    ([[2, 7, 3, 0]], (1, 4))
    """
    longest = max(len(row.token_ids) for row in rows)
    seq_len = -(-longest // length_multiple) * length_multiple
    token_ids = np.full((len(rows), seq_len), pad_id, dtype="int32")
    segment_ids = np.zeros((len(rows), seq_len), dtype="int32")
    for position, row in enumerate(rows):
        token_ids[position, : len(row.token_ids)] = row.token_ids
        segment_ids[position, : len(row.segment_ids)] = row.segment_ids
    return token_ids, segment_ids


def batches_by_length(encodings, batch_size: int, pad_id: int, length_multiple: int = 1):
    """For decoding: yield `(indices, encodings, token_ids, segment_ids)` per batch of similar length
    (`indices` into `encodings`, so that the caller puts results back in input order)."""
    for indices in length_grouped_batches([len(e.token_ids) for e in encodings], batch_size, shuffle=False):
        batch = [encodings[index] for index in indices]
        yield (indices, batch, *pad_rows(batch, pad_id, length_multiple))
