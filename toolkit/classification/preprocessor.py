"""Texts to the arrays a BERT backbone takes."""

import keras
import numpy as np

from toolkit.batching import length_grouped_batches
from toolkit.encoders.tokenizer import WordPieceTokenizer

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

    Example:

    ```python
    preprocessor = TextPreprocessor(tokenizer, maxlen=128)
    inputs = preprocessor(["first text", "second text"])  # dict of [2, length] int32
    ```
    """

    def __init__(self, tokenizer=None, maxlen=128):
        self.tokenizer = tokenizer
        self.maxlen = int(maxlen)

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
        """`(indices, inputs)` per batch, texts of similar length together (for prediction)."""
        encoded = self.encode_arrays(texts)
        for indices in length_grouped_batches(encoded.lengths, batch_size, shuffle=False):
            yield indices, self.inputs(encoded, indices)

    def _check_ready(self):
        if self.tokenizer is None:
            raise RuntimeError("TextPreprocessor has no tokenizer: pass one, or call load_assets(folder).")

    def get_config(self):
        return {"maxlen": self.maxlen}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save_assets(self, directory):
        self._check_ready()
        self.tokenizer.save(f"{directory}/{_ASSETS}")

    def load_assets(self, directory):
        self.tokenizer = WordPieceTokenizer.from_directory(f"{directory}/{_ASSETS}", maxlen=self.maxlen)
