"""Texts to the arrays a BERT backbone takes."""

import keras
import numpy as np

from toolkit.batching import call_batches
from toolkit.encoders.tokenizer import WordPieceTokenizer
from toolkit.windows import ReadCounts, plan_windows, window_unit

__all__ = ["TextPreprocessor"]

_ASSETS = "tokenizer"


@keras.saving.register_keras_serializable(package="toolkit")
class TextPreprocessor:
    """Tokenizes texts and pads them into `token_ids`, `segment_ids`, `padding_mask`.

    Saved with a `MultilabelPredictor`: its settings in the predictor's JSON,
    the vocabulary in `tokenizer/` beside the model.

    Args:
        tokenizer: a `WordPieceTokenizer`.
        maxlen: the longest input in tokens, `[CLS]` and `[SEP]` included.
        long_texts: how `batches` (prediction) reads a text longer than
            `maxlen`: `"truncate"` (its first `maxlen` tokens) or `"windows"`
            (overlapping windows of whole words, `toolkit.windows`, whose
            logits the predictor pools into one row by `window_pooling`).
        window_stride: tokens from one window to the next (None: half a window).
        window_pooling: `"max"` (a label holds when some window supports it)
            or `"mean"`.

    Example:

    ```python
    preprocessor = TextPreprocessor(tokenizer, maxlen=128)
    inputs = preprocessor(["first text", "second text"])  # dict of [2, length] int32
    ```
    """

    def __init__(self, tokenizer=None, maxlen=128, long_texts="truncate", window_stride=None, window_pooling="max"):
        window_unit(long_texts)  # a ValueError for an unknown value
        if window_pooling not in ("max", "mean"):
            raise ValueError(f"window_pooling must be 'max' or 'mean'; got {window_pooling!r}.")
        self.tokenizer = tokenizer
        self.maxlen = int(maxlen)
        self.long_texts = long_texts
        self.window_stride = None if window_stride is None else int(window_stride)
        self.window_pooling = window_pooling
        self.read_counts = ReadCounts()

    def encode(self, texts):
        """Token id lists, one per text (truncated to `maxlen`)."""
        self._check_ready()
        return [encoding.token_ids for encoding in self.tokenizer.encode_batch(list(texts), maxlen=self.maxlen)]

    def encode_arrays(self, texts):
        """The texts' token ids (truncated to `maxlen`) as a `toolkit.encoders.EncodedBatch`, without offsets."""
        self._check_ready()
        return self.tokenizer.encode_batch_arrays(list(texts), maxlen=self.maxlen, offsets=False)

    def pad(self, token_id_lists):
        """Pad token id lists into the backbone's input dict."""
        length = max((len(ids) for ids in token_id_lists), default=2)
        shape = (len(token_id_lists), length)
        token_ids = np.full(shape, self.tokenizer.pad_id, dtype="int32")
        padding_mask = np.zeros(shape, dtype="int32")
        for row, ids in enumerate(token_id_lists):
            token_ids[row, : len(ids)] = ids
            padding_mask[row, : len(ids)] = 1
        return {"token_ids": token_ids, "segment_ids": np.zeros(shape, dtype="int32"), "padding_mask": padding_mask}

    def inputs(self, encoded, rows=None):
        """The backbone's input dict of the texts at `rows` (all by default) of an `EncodedBatch`
        from `encode_arrays`: `pad` of their token id lists, without a Python loop."""
        count = len(encoded) if rows is None else len(rows)
        return encoded.model_inputs(rows, sequence_length=None if count else 2)

    def __call__(self, texts):
        if isinstance(texts, str):
            raise TypeError("TextPreprocessor takes a list of texts, not one string.")
        return self.inputs(self.encode_arrays(texts))

    def batches(self, texts, batch_size):
        """`(indices, inputs)` per batch, texts of similar length together (for prediction).

        With `long_texts="windows"` a row is a window and `indices` the texts
        its rows belong to: a long text's index comes once per window, and
        its logits are pooled (`window_pooling`). Windows are read
        `toolkit.windows.WINDOWS_PER_CALL` at a time, so a text of any length
        costs bounded memory.
        """
        self._check_ready()
        texts = list(texts)
        plan = plan_windows(self.tokenizer, texts, self.maxlen, self.window_stride, unit=window_unit(self.long_texts))
        self.read_counts.add(plan)
        if self.long_texts == "truncate":
            yield from self._fixed_batches(self.encode_arrays(texts), np.arange(len(texts)), batch_size)
            return
        for group in plan.groups():
            owners = np.fromiter((window.index for window in group), dtype="int64", count=len(group))
            encoded = self.encode_arrays([texts[window.index][window.start : window.end] for window in group])
            yield from self._fixed_batches(encoded, owners, batch_size)

    def _fixed_batches(self, encoded, owners, batch_size):
        """`(owners, inputs)` of length-grouped batches padded to a few fixed shapes
        (`toolkit.batching.call_batches`): the rows past a batch repeat its rows (the caller reads the
        first `len(owners)` outputs). A batch of very unequal lengths (texts served together) is cut
        where that saves more padding than a call costs. Few shapes: the backend's per-shape caches stay small (a
        server's memory stays flat)."""
        for rows, length, count in call_batches(encoded.lengths, batch_size, self.maxlen):
            yield owners[rows], encoded.model_inputs(np.resize(rows, count), sequence_length=length)

    def _check_ready(self):
        if self.tokenizer is None:
            raise RuntimeError("TextPreprocessor has no tokenizer: pass one, or call load_assets(folder).")

    def get_config(self):
        return {
            "maxlen": self.maxlen,
            "long_texts": self.long_texts,
            "window_stride": self.window_stride,
            "window_pooling": self.window_pooling,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save_assets(self, directory):
        self._check_ready()
        self.tokenizer.save(f"{directory}/{_ASSETS}")

    def load_assets(self, directory):
        self.tokenizer = WordPieceTokenizer.from_directory(f"{directory}/{_ASSETS}", maxlen=self.maxlen)
