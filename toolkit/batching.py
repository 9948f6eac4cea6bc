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

__all__ = ["length_grouped_batches"]


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
