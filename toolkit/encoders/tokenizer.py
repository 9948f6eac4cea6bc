"""Fast BERT WordPiece tokenization with character offsets into the original text.

Built on the Rust `tokenizers` library: the BERT normaliser (cleaning, optional
lowercasing and accent stripping, one token per CJK character), the BERT
pre-tokeniser (whitespace and punctuation) and a WordPiece model read from a
`vocab.txt` or a Hugging Face `tokenizer.json`. Every token keeps the span of
characters it came from in the text the caller passed in, so entity spans can be
mapped between characters and tokens without re-matching strings.

`encode_batch` gives an `Encoding` of Python lists per text (what span alignment
reads); `encode_batch_arrays` the same values as one `EncodedBatch` of NumPy
arrays, without a Python list per text or a tuple per token (what model inputs need).
"""

from __future__ import annotations

import bisect
import json
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Optional, Union

import numpy as np
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from toolkit.atomic import write_text_atomic

REQUIRED_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
SPECIAL_TOKENS = REQUIRED_SPECIAL_TOKENS + ("[MASK]",)
VOCAB_FILE = "vocab.txt"
HF_TOKENIZER_FILE = "tokenizer.json"
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
KERAS_HUB_VOCAB_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")

Offset = tuple[int, int]
VocabularyLike = Union[str, os.PathLike, Sequence[str], Mapping[str, int]]


@dataclass(frozen=True)
class Encoding:
    """One tokenized text (or text pair), ready for a BERT backbone.

    Attributes:
        token_ids: WordPiece ids, starting with `[CLS]` and ending with `[SEP]`.
        segment_ids: 0 for `[CLS]`, the first text and its `[SEP]`; 1 for the
            second text and the final `[SEP]`.
        offsets: `(start, end)` character offsets of each token into the
            original text of its segment (`text` for segment 0, `text_pair` for
            segment 1); `(0, 0)` for the special tokens.
        text: the first text, exactly as given.
        text_pair: the second text, or `None`.

    Example:

    ```python
    encoding = tokenizer.encode("Hello world")
    encoding.token_ids  # [101, 7592, 2088, 102]
    encoding.offsets    # [(0, 0), (0, 5), (6, 11), (0, 0)]
    ```
    """

    token_ids: list[int]
    segment_ids: list[int]
    offsets: list[Offset]
    text: str
    text_pair: Optional[str] = None

    def __len__(self) -> int:
        return len(self.token_ids)

    def is_special(self, token_index: int) -> bool:
        """Whether the token at `token_index` is `[CLS]` or `[SEP]`.

        Real tokens always cover at least one character, so an empty offset
        marks a special token.
        """
        start, end = self.offsets[token_index]
        return start == end

    def segment_text(self, segment: int) -> str:
        """The original text of segment 0 (`text`) or 1 (`text_pair`)."""
        if segment == 0:
            return self.text
        if segment == 1 and self.text_pair is not None:
            return self.text_pair
        raise ValueError(f"segment must be 0, or 1 for a text pair; got {segment!r}.")

    def segment_token_range(self, segment: int) -> range:
        """Indices of the real (non-special) tokens of one segment."""
        self.segment_text(segment)
        count = len(self.token_ids)
        if self.text_pair is None:
            return range(1, count - 1)
        # [CLS] a... [SEP] b... [SEP]: segment 1 starts after the first [SEP].
        first_of_pair = self.segment_ids.index(1) if 1 in self.segment_ids else count
        if segment == 0:
            return range(1, first_of_pair - 1)
        return range(first_of_pair, count - 1)


class EncodedBatch:
    """Tokenized texts as NumPy arrays (`WordPieceTokenizer.encode_batch_arrays`).

    Held flat: every text's tokens one after another, and each text's
    length. The padded `[n, longest]` arrays are made on first use, and
    `model_inputs(rows)` pads any subset of the texts (a length-grouped
    batch) without a Python loop. The values are `encode_batch`'s: the first
    `lengths[i]` entries of row `i` are `encodings[i].token_ids`,
    `.segment_ids` and `.offsets`.

    Attributes:
        lengths: int32 `[n]`, tokens per text, `[CLS]` and `[SEP]` included.
        flat_token_ids: int32 `[lengths.sum()]`.
        flat_segment_ids: int32 `[lengths.sum()]`.
        flat_offsets: int32 `[lengths.sum(), 2]`, or `None` when encoded
            with `offsets=False`.
        pad_id: the id padding fills `token_ids` with.

    Example:

    ```python
    batch = tokenizer.encode_batch_arrays(["Hello world", "a"], maxlen=128)
    batch.token_ids    # [[101, 7592, 2088, 102], [101, 1037, 102, 0]]
    batch.offsets[0]   # [[0, 0], [0, 5], [6, 11], [0, 0]]
    outputs = backbone(batch.model_inputs())
    ```
    """

    def __init__(self, lengths, flat_token_ids, pad_id, flat_segment_ids=None, flat_offsets=None):
        self.lengths = np.asarray(lengths, dtype="int32").reshape(-1)
        total = int(self.lengths.sum(dtype="int64"))
        self.flat_token_ids = np.asarray(flat_token_ids, dtype="int32")
        self._one_segment = flat_segment_ids is None  # all 0: padded without reading them
        if flat_segment_ids is None:
            flat_segment_ids = np.zeros(total, dtype="int32")
        self.flat_segment_ids = np.asarray(flat_segment_ids, dtype="int32")
        self.flat_offsets = None if flat_offsets is None else np.asarray(flat_offsets, dtype="int32")
        for name, shape in (("flat_token_ids", (total,)), ("flat_segment_ids", (total,)), ("flat_offsets", (total, 2))):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for lengths summing to {total}; got {value.shape}.")
        self.pad_id = int(pad_id)
        self.starts = np.cumsum(self.lengths, dtype="int64") - self.lengths

    @classmethod
    def concatenate(cls, batches: Sequence[EncodedBatch]) -> EncodedBatch:
        """The texts of `batches`, in order, as one batch (offsets only if every batch has them)."""
        batches = list(batches)
        if not batches:
            raise ValueError("concatenate() needs at least one EncodedBatch.")
        with_offsets = all(batch.flat_offsets is not None for batch in batches)
        return cls(
            np.concatenate([batch.lengths for batch in batches]),
            np.concatenate([batch.flat_token_ids for batch in batches]),
            batches[0].pad_id,
            None
            if all(batch._one_segment for batch in batches)
            else np.concatenate([batch.flat_segment_ids for batch in batches]),
            np.concatenate([batch.flat_offsets for batch in batches]) if with_offsets else None,
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        return f"EncodedBatch({len(self)} texts, {len(self.flat_token_ids)} tokens)"

    def select(self, rows) -> EncodedBatch:
        """The texts at `rows` (indices, in that order; repeats allowed), as a new batch."""
        rows = np.asarray(rows, dtype="int64").reshape(-1)
        starts, lengths = self.starts[rows], self.lengths[rows]
        index = _flat_index(starts, lengths)
        return EncodedBatch(
            lengths,
            self.flat_token_ids[index],
            self.pad_id,
            None if self._one_segment else self.flat_segment_ids[index],
            None if self.flat_offsets is None else self.flat_offsets[index],
        )

    @cached_property
    def token_ids(self) -> np.ndarray:
        """int32 `[n, longest]`, `pad_id` after each text's tokens."""
        return _pad_flat(self.flat_token_ids, self._mask, self.pad_id)

    @cached_property
    def segment_ids(self) -> np.ndarray:
        """int32 `[n, longest]`, 0 after each text's tokens."""
        if self._one_segment:
            return np.zeros(self._mask.shape, dtype="int32")
        return _pad_flat(self.flat_segment_ids, self._mask, 0)

    @cached_property
    def offsets(self) -> np.ndarray:
        """int32 `[n, longest, 2]` character `(start, end)`s; `(0, 0)` for special tokens and padding."""
        if self.flat_offsets is None:
            raise ValueError("This batch was encoded with offsets=False; encode it again with offsets=True.")
        return _pad_flat(self.flat_offsets, self._mask, 0)

    @property
    def padding_mask(self) -> np.ndarray:
        """int32 `[n, longest]`: 1 for tokens, 0 for padding."""
        return self._mask.astype("int32")

    @cached_property
    def _mask(self) -> np.ndarray:
        return np.arange(self.lengths.max(initial=0)) < self.lengths[:, None]

    def model_inputs(self, rows=None, sequence_length: Optional[int] = None) -> dict[str, np.ndarray]:
        """The `token_ids`/`segment_ids`/`padding_mask` a `BertBackbone` takes, of the
        texts at `rows` (all by default), as `WordPieceTokenizer.to_model_inputs` pads them.

        `sequence_length` defaults to the longest of those texts.
        """
        lengths, token_ids, segment_ids = self.lengths, self.flat_token_ids, self.flat_segment_ids
        if rows is not None:
            rows = np.asarray(rows, dtype="int64").reshape(-1)
            lengths = self.lengths[rows]
            index = _flat_index(self.starts[rows], lengths)
            token_ids = token_ids[index]
            segment_ids = segment_ids if self._one_segment else segment_ids[index]
        longest = int(lengths.max(initial=0))
        if sequence_length is None:
            sequence_length = longest
        elif longest > sequence_length:
            raise ValueError(
                f"A text has {longest} tokens, more than sequence_length={sequence_length}; "
                f"encode with maxlen={sequence_length}."
            )
        mask = np.arange(sequence_length) < lengths[:, None]
        if self._one_segment:
            segment_ids = np.zeros(mask.shape, dtype="int32")
        else:
            segment_ids = _pad_flat(segment_ids, mask, 0)
        return {
            "token_ids": _pad_flat(token_ids, mask, self.pad_id),
            "segment_ids": segment_ids,
            "padding_mask": mask.astype("int32"),
        }


def _flat_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions in a flat array of the rows `[starts[i], starts[i] + lengths[i])`, one after another."""
    lengths = lengths.astype("int64")
    total = int(lengths.sum())
    placed = np.cumsum(lengths) - lengths
    return np.repeat(starts - placed, lengths) + np.arange(total, dtype="int64")


def _pad_flat(flat: np.ndarray, mask: np.ndarray, fill: int) -> np.ndarray:
    """Rows held one after another in `flat` as `[rows, width, ...]`: row `i` where `mask[i]`
    (its first `lengths[i]` columns) is true, `fill` after."""
    if flat.ndim == 2 and flat.shape[1] == 2 and flat.dtype == np.int32 and fill == 0:
        # (start, end) pairs moved as one int64 each: a third of the time of moving pairs.
        pairs = np.zeros(mask.shape, dtype="int64")
        pairs[mask] = np.ascontiguousarray(flat).view("int64").reshape(-1)
        return pairs.view("int32").reshape(*mask.shape, 2)
    padded = np.full(mask.shape + flat.shape[1:], fill, dtype=flat.dtype)
    padded[mask] = flat
    return padded


class WordPieceTokenizer:
    """BERT WordPiece tokenizer with character offsets, on Hugging Face `tokenizers`.

    Args:
        vocabulary: a `vocab.txt` path (one token a line, line number = id), a
            Hugging Face `tokenizer.json` path, a list of tokens, or a
            token -> id mapping.
        lowercase: lowercase the text before WordPiece (an "uncased" model).
            `None` reads it from a `tokenizer.json`, else guesses it from the
            vocabulary (uncased vocabularies hold no capitalised words).
        strip_accents: remove accents (NFD, then drop combining marks).
            `None` follows `lowercase`, as BERT does.
        maxlen: the default maximum length, special tokens included, used when a
            call passes no `maxlen`; `None` means no truncation.

    Offsets always point into the text as given, so
    `text[start:end]` is the original surface form of a token. The truncation
    length is tokenizer state set per call: threads that share one tokenizer
    should pass the same `maxlen` (or each use their own copy).

    Example:

    ```python
    tokenizer = WordPieceTokenizer("vocab.txt", lowercase=True, maxlen=128)
    encoding = tokenizer.encode("周杰伦的《晴天》")
    tokenizer.char_span_to_token_span(encoding, 0, 3)   # (1, 3)
    tokenizer.token_span_to_char_span(encoding, 1, 3)   # (0, 3)
    batch = tokenizer.to_model_inputs(tokenizer.encode_batch(["a", "b c"]))
    ```
    """

    def __init__(
        self,
        vocabulary: VocabularyLike,
        lowercase: Optional[bool] = None,
        strip_accents: Optional[bool] = None,
        maxlen: Optional[int] = None,
    ):
        self.source = str(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else None
        if self.source is not None and self.source.endswith(".json"):
            tokenizer, lowercase, strip_accents = _load_hf_tokenizer(Path(self.source), lowercase, strip_accents)
        else:
            tokens = _vocabulary_tokens(vocabulary)
            if lowercase is None:
                lowercase = infer_lowercase(tokens)
            if strip_accents is None:
                strip_accents = lowercase
            tokenizer = _build_wordpiece(tokens, lowercase, strip_accents)
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.maxlen = _check_maxlen(maxlen, pair=False) if maxlen is not None else None
        self._setup(tokenizer)

    def _setup(self, tokenizer: Tokenizer) -> None:
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        missing = [token for token in REQUIRED_SPECIAL_TOKENS if token not in vocab]
        if missing:
            raise ValueError(
                f"The vocabulary has no {', '.join(missing)} token; a BERT vocab.txt "
                "needs [PAD], [UNK], [CLS] and [SEP]. Check that the file is the "
                "vocab.txt that came with the checkpoint."
            )
        self.pad_id = vocab["[PAD]"]
        self.unk_id = vocab["[UNK]"]
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.vocabulary_size = max(vocab.values()) + 1
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.post_processor = processors.BertProcessing(("[SEP]", self.sep_id), ("[CLS]", self.cls_id))
        self._tokenizer = tokenizer
        self._truncation: Optional[int] = None

    # --- Construction helpers -------------------------------------------------

    @classmethod
    def from_directory(
        cls,
        directory: Union[str, os.PathLike],
        lowercase: Optional[bool] = None,
        maxlen: Optional[int] = None,
    ) -> WordPieceTokenizer:
        """The tokenizer of a checkpoint folder.

        Reads a Hugging Face `tokenizer.json`, else `vocab.txt`, else a keras-hub
        preset's `assets/tokenizer/vocabulary.txt`. Casing comes from
        `lowercase` when given, else `folder_lowercase`: `tokenizer_config.json`
        (`do_lower_case`), a keras-hub `tokenizer.json`, or the vocabulary itself.

        Example:

        ```python
        tokenizer = WordPieceTokenizer.from_directory("all-MiniLM-L6-v2")
        ```
        """
        directory = Path(directory)
        vocabulary = find_vocabulary(directory)
        if vocabulary is None:
            raise FileNotFoundError(
                f"No vocab.txt (or Hugging Face tokenizer.json) in {directory}. Put "
                "the WordPiece vocabulary that came with the checkpoint there, or "
                "set `vocab` in the encoder spec to its path."
            )
        if lowercase is None:
            lowercase = folder_lowercase(directory, vocabulary)
        return cls(vocabulary, lowercase=lowercase, maxlen=maxlen)

    def save(self, directory: Union[str, os.PathLike]) -> Path:
        """Write `vocab.txt` and `tokenizer_config.json` into `directory`.

        `WordPieceTokenizer.from_directory(directory)` re-creates the tokenizer.

        Example:

        ```python
        tokenizer.save("model_dir")
        same = WordPieceTokenizer.from_directory("model_dir")
        ```
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        tokens = [""] * self.vocabulary_size
        for token, index in vocab.items():
            tokens[index] = token
        write_text_atomic(directory / VOCAB_FILE, "".join(token + "\n" for token in tokens))
        settings = {
            "do_lower_case": self.lowercase,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": True,
        }
        write_text_atomic(directory / HF_TOKENIZER_CONFIG_FILE, json.dumps(settings, indent=2) + "\n")
        return directory / VOCAB_FILE

    def to_json(self) -> str:
        """The whole tokenizer (vocabulary, normalisation, special tokens) as Hugging Face's JSON."""
        return self._tokenizer.to_str()

    def __getstate__(self) -> dict:
        return {
            "tokenizer": self._tokenizer.to_str(),
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "maxlen": self.maxlen,
            "source": self.source,
        }

    def __setstate__(self, state: dict) -> None:
        self.lowercase = state["lowercase"]
        self.strip_accents = state["strip_accents"]
        self.maxlen = state["maxlen"]
        self.source = state["source"]
        self._setup(Tokenizer.from_str(state["tokenizer"]))

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocabulary_size={self.vocabulary_size}, "
            f"lowercase={self.lowercase}, maxlen={self.maxlen})"
        )

    # --- Vocabulary -----------------------------------------------------------

    def token_to_id(self, token: str) -> int:
        """The id of `token`, or the `[UNK]` id when it is not in the vocabulary."""
        index = self._tokenizer.token_to_id(token)
        return self.unk_id if index is None else index

    def id_to_token(self, index: int) -> str:
        """The vocabulary entry of id `index`."""
        token = self._tokenizer.id_to_token(int(index))
        if token is None:
            raise ValueError(f"Token id {index} is outside the vocabulary (size {self.vocabulary_size}).")
        return token

    def tokens(self, encoding: Encoding) -> list[str]:
        """The WordPiece strings of an encoding, e.g. `['[CLS]', 'hello', '[SEP]']`."""
        return [self.id_to_token(index) for index in encoding.token_ids]

    # --- Encoding -------------------------------------------------------------

    def encode(
        self,
        text: str,
        text_pair: Optional[str] = None,
        maxlen: Optional[int] = None,
    ) -> Encoding:
        """Tokenize one text (or pair), truncating to `maxlen` tokens in total.

        Pairs are truncated longest-first, as BERT does.

        Example:

        ```python
        encoding = tokenizer.encode("question?", "context", maxlen=64)
        ```
        """
        if not isinstance(text, str) or not (text_pair is None or isinstance(text_pair, str)):
            raise TypeError("encode() takes strings; use encode_batch() for lists.")
        self._set_truncation(maxlen, pair=text_pair is not None)
        if text_pair is None:
            output = self._tokenizer.encode(text)
        else:
            output = self._tokenizer.encode(text, text_pair)
        return Encoding(output.ids, output.type_ids, output.offsets, text, text_pair)

    def encode_batch(
        self,
        texts: Sequence[str],
        text_pairs: Optional[Sequence[str]] = None,
        maxlen: Optional[int] = None,
    ) -> list[Encoding]:
        """Tokenize a list of texts (or pairs) in parallel, in Rust.

        `encode_batch_arrays` gives the same as NumPy arrays, faster.

        Example:

        ```python
        encodings = tokenizer.encode_batch(["first text", "second text"], maxlen=128)
        inputs = tokenizer.to_model_inputs(encodings)
        ```
        """
        texts, text_pairs = self._batch_inputs(texts, text_pairs, "encode_batch")
        self._set_truncation(maxlen, pair=text_pairs is not None)
        if text_pairs is None:
            outputs = self._tokenizer.encode_batch(texts)
            return [Encoding(output.ids, output.type_ids, output.offsets, text) for output, text in zip(outputs, texts)]
        outputs = self._tokenizer.encode_batch(list(zip(texts, text_pairs)))
        return [
            Encoding(output.ids, output.type_ids, output.offsets, text, pair)
            for output, text, pair in zip(outputs, texts, text_pairs)
        ]

    def encode_batch_arrays(
        self,
        texts: Sequence[str],
        text_pairs: Optional[Sequence[str]] = None,
        maxlen: Optional[int] = None,
        *,
        offsets: bool = True,
    ) -> EncodedBatch:
        """`encode_batch` as NumPy arrays: the same ids, segment ids and offsets,
        without a Python list a text or a tuple a token.

        Rust's results are read straight into flat arrays (`EncodedBatch`);
        the padded ones are made when first used. Leave out the offsets
        (`offsets=False`) when only the model inputs are needed: `tokenizers`
        hands them over as a Python tuple a token, most of the reading's time.

        Example:

        ```python
        batch = tokenizer.encode_batch_arrays(texts, maxlen=128)
        batch.token_ids, batch.segment_ids, batch.offsets, batch.lengths
        outputs = backbone(batch.model_inputs())
        ```
        """
        texts, text_pairs = self._batch_inputs(texts, text_pairs, "encode_batch_arrays")
        self._set_truncation(maxlen, pair=text_pairs is not None)
        outputs = self._tokenizer.encode_batch(texts if text_pairs is None else list(zip(texts, text_pairs)))
        lengths = np.fromiter(map(len, outputs), dtype="int32", count=len(outputs))
        total = int(lengths.sum(dtype="int64"))
        token_ids = np.fromiter(chain.from_iterable(output.ids for output in outputs), "int32", total)
        segment_ids = None
        if text_pairs is not None:
            segment_ids = np.fromiter(chain.from_iterable(output.type_ids for output in outputs), "int32", total)
        spans = None
        if offsets:
            flat = chain.from_iterable(chain.from_iterable(output.offsets for output in outputs))
            spans = np.fromiter(flat, "int32", 2 * total).reshape(total, 2)
        return EncodedBatch(lengths, token_ids, self.pad_id, segment_ids, spans)

    def word_tokens(self, texts: Sequence[str], longer_than: int = 0) -> list[Optional[tuple[np.ndarray, np.ndarray]]]:
        """Per text, every token's characters and whether it begins a word, nothing cut off.

        For planning windows over long texts (`toolkit.windows`): no
        truncation and no `[CLS]`/`[SEP]`. A text of at most `longer_than`
        tokens gives `None` (its offsets are not read: `tokenizers` hands
        them over a Python tuple a token).

        Returns:
            Per text, `None` or `(offsets, word_starts)`: int32 `[n, 2]`
            character offsets and a bool `[n]`, True where a token is not the
            continuation (`##...`) of the word before it. Punctuation and each
            CJK character are words of their own.

        Example:

        ```python
        offsets, word_starts = tokenizer.word_tokens(["unbelievable, he said"])[0]
        word_starts   # [True, False, False, True, True, True] for un ##bel ##ievable , he said
        ```
        """
        texts, _ = self._batch_inputs(texts, None, "word_tokens")
        if self._truncation is not None:
            self._tokenizer.no_truncation()
            self._truncation = None
        results: list = []
        for output in self._tokenizer.encode_batch(texts, add_special_tokens=False):
            if len(output) <= longer_than:
                results.append(None)
                continue
            offsets = np.asarray(output.offsets, dtype="int32").reshape(-1, 2)
            words = np.asarray([-1 if word is None else word for word in output.word_ids], dtype="int64")
            word_starts = np.ones(len(words), dtype=bool)
            word_starts[1:] = words[1:] != words[:-1]
            results.append((offsets, word_starts))
        return results

    def _batch_inputs(self, texts, text_pairs, method: str) -> tuple[list, Optional[list]]:
        if isinstance(texts, str):
            raise TypeError(f"{method}() takes a list of texts; use encode() for one.")
        texts = list(texts)
        if text_pairs is None:
            return texts, None
        text_pairs = list(text_pairs)
        if len(text_pairs) != len(texts):
            raise ValueError(f"texts and text_pairs must have the same length; got {len(texts)} and {len(text_pairs)}.")
        return texts, text_pairs

    def to_model_inputs(
        self, encodings: Iterable[Encoding], sequence_length: Optional[int] = None
    ) -> dict[str, np.ndarray]:
        """Pad encodings into the `token_ids`/`segment_ids`/`padding_mask` arrays
        a `BertBackbone` takes (int32, shape `[batch, sequence_length]`).

        `sequence_length` defaults to the longest encoding; longer encodings are
        an error (truncate with `maxlen` when encoding).

        Example:

        ```python
        inputs = tokenizer.to_model_inputs(tokenizer.encode_batch(texts, maxlen=64))
        outputs = backbone(inputs)
        ```
        """
        encodings = list(encodings)
        longest = max((len(encoding) for encoding in encodings), default=0)
        if sequence_length is None:
            sequence_length = longest
        elif longest > sequence_length:
            raise ValueError(
                f"An encoding has {longest} tokens, more than sequence_length="
                f"{sequence_length}; encode with maxlen={sequence_length}."
            )
        shape = (len(encodings), sequence_length)
        token_ids = np.full(shape, self.pad_id, dtype="int32")
        segment_ids = np.zeros(shape, dtype="int32")
        padding_mask = np.zeros(shape, dtype="int32")
        for row, encoding in enumerate(encodings):
            length = len(encoding.token_ids)
            token_ids[row, :length] = encoding.token_ids
            segment_ids[row, :length] = encoding.segment_ids
            padding_mask[row, :length] = 1
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }

    def _set_truncation(self, maxlen: Optional[int], pair: bool) -> None:
        maxlen = self.maxlen if maxlen is None else maxlen
        if maxlen is not None:
            maxlen = _check_maxlen(maxlen, pair)
        if maxlen == self._truncation:
            return
        if maxlen is None:
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(maxlen, strategy="longest_first")
        self._truncation = maxlen

    # --- Spans ----------------------------------------------------------------

    def char_span_to_token_span(
        self, encoding: Encoding, char_start: int, char_end: int, segment: int = 0
    ) -> Optional[tuple[int, int]]:
        """The tokens covering characters `[char_start, char_end)` of a segment.

        Returns `(token_start, token_end)`, both inclusive, or `None` when no
        token covers the span or part of it was truncated away.

        Example:

        ```python
        encoding = tokenizer.encode("Hello, world")
        tokenizer.char_span_to_token_span(encoding, 7, 12)  # (3, 3)
        ```
        """
        text = encoding.segment_text(segment)
        if not 0 <= char_start < char_end <= len(text):
            raise ValueError(
                f"Character span ({char_start}, {char_end}) is not a non-empty span of a text of length {len(text)}."
            )
        token_range = encoding.segment_token_range(segment)
        if not token_range:
            return None
        offsets = encoding.offsets[token_range.start : token_range.stop]
        first = bisect.bisect_right(offsets, char_start, key=lambda offset: offset[1])
        last = bisect.bisect_left(offsets, char_end, key=lambda offset: offset[0]) - 1
        if first > last:
            return None
        # Characters of the span past the last token that would have made tokens
        # of their own mean the text was truncated inside the span.
        covered_end = offsets[-1][1]
        if char_end > covered_end and self._has_token_characters(text[max(covered_end, char_start) : char_end]):
            return None
        return token_range.start + first, token_range.start + last

    def token_span_to_char_span(
        self, encoding: Encoding, token_start: int, token_end: int
    ) -> Optional[tuple[int, int]]:
        """The characters of tokens `token_start..token_end` (inclusive).

        Returns `(char_start, char_end)` into the original text of the tokens'
        segment, so `text[char_start:char_end]` is the surface form (with any
        accents that lowercasing stripped). `None` when the span touches a
        special token or crosses from one text of a pair into the other.

        Example:

        ```python
        start, end = tokenizer.token_span_to_char_span(encoding, 3, 3)
        encoding.text[start:end]  # "world"
        ```
        """
        count = len(encoding.token_ids)
        if not 0 <= token_start <= token_end < count:
            raise IndexError(f"Token span ({token_start}, {token_end}) is not a span of an encoding of {count} tokens.")
        if encoding.is_special(token_start) or encoding.is_special(token_end):
            return None
        segment = encoding.segment_ids[token_start]
        if encoding.segment_ids[token_end] != segment:
            return None
        char_start = encoding.offsets[token_start][0]
        char_end = encoding.offsets[token_end][1]
        text = encoding.segment_text(segment)
        # Accent stripping drops combining marks (category Mn) from the token;
        # keep those with the letter they belong to. Marks the normaliser
        # keeps (spacing marks, Mc) are tokens of their own and stay out.
        while (
            char_end < len(text)
            and unicodedata.category(text[char_end]) == "Mn"
            and self._dropped_by_normaliser(text[char_end])
        ):
            char_end += 1
        return char_start, char_end

    def _has_token_characters(self, text: str) -> bool:
        """Whether `text` holds a character the normaliser keeps as (part of) a token."""
        return any(not character.isspace() and not self._dropped_by_normaliser(character) for character in text)

    def _dropped_by_normaliser(self, character: str) -> bool:
        """Whether the tokenizer's own normaliser removes `character` (control
        characters, accents when stripping them...): asked, not guessed from
        Unicode tables, whose versions differ between Python and Rust."""
        normalizer = self._tokenizer.normalizer
        normalized = normalizer.normalize_str(character) if normalizer is not None else character
        return not normalized.strip()


# --- Vocabulary files and settings -------------------------------------------


def find_vocabulary(directory: Path) -> Optional[Path]:
    """The tokenizer file of a checkpoint folder, or `None`.

    A Hugging Face WordPiece `tokenizer.json` first, then `vocab.txt`, then a keras-hub
    preset's `assets/tokenizer/vocabulary.txt`.
    """
    hf_file = directory / HF_TOKENIZER_FILE
    if hf_file.is_file() and _is_hf_tokenizer_file(hf_file):
        return hf_file
    for name in (VOCAB_FILE, KERAS_HUB_VOCAB_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def read_lowercase_setting(directory: Path) -> Optional[bool]:
    """`do_lower_case` from a folder's tokenizer settings, or `None` if unstated."""
    config_file = directory / HF_TOKENIZER_CONFIG_FILE
    if config_file.is_file():
        settings = json.loads(config_file.read_text(encoding="utf-8"))
        if "do_lower_case" in settings:
            return bool(settings["do_lower_case"])
    tokenizer_file = directory / HF_TOKENIZER_FILE
    if tokenizer_file.is_file():
        settings = json.loads(tokenizer_file.read_text(encoding="utf-8"))
        # A keras-hub preset's tokenizer.json is a serialised Keras layer.
        layer_config = settings.get("config")
        if isinstance(layer_config, dict) and "lowercase" in layer_config:
            return bool(layer_config["lowercase"])
    return None


def folder_lowercase(directory: Path, vocabulary: Union[str, os.PathLike]) -> Optional[bool]:
    """Whether a checkpoint folder's text is lower-cased: as its settings state (`read_lowercase_setting`),
    but always when its `vocabulary` (a file of the folder) holds no capitalised word, and `None` when
    neither says (the tokenizer then follows its `tokenizer.json`, or guesses from the vocabulary).

    A vocabulary without capitals makes every capital letter `[UNK]` unless the text is lower-cased,
    whatever the settings say: Chinese BERT's vocabulary is uncased (Google's model lower-cased), but
    the hub's `bert-base-chinese` and moka-ai's `m3e-small` state `do_lower_case: false` beside it.
    """
    stated = read_lowercase_setting(directory)
    if stated is not True and infer_lowercase(read_vocabulary_tokens(vocabulary)):
        return True
    return stated


def read_vocabulary_tokens(path: Union[str, os.PathLike]) -> list[str]:
    """The tokens of a `vocab.txt` or a Hugging Face WordPiece `tokenizer.json`, in id order."""
    if str(path).endswith(".json"):
        vocab = (json.loads(Path(path).read_text(encoding="utf-8")).get("model") or {}).get("vocab") or {}
        return _vocabulary_tokens(vocab) if vocab else []
    return read_vocab_file(path)


def infer_lowercase(tokens: Sequence[str]) -> bool:
    """Guess whether a WordPiece vocabulary is uncased.

    Uncased vocabularies (English uncased, Chinese) hold no capitalised words
    beyond a few special tokens; cased ones hold thousands.
    """
    cased_tokens = 0
    uppercase_tokens = 0
    for token in tokens:
        if token.startswith("[") and token.endswith("]"):
            continue
        if token.startswith("<") and token.endswith(">"):
            continue
        if token.lower() != token.upper():
            cased_tokens += 1
            if token != token.lower():
                uppercase_tokens += 1
    return uppercase_tokens <= max(5, cased_tokens // 100)


def read_vocab_file(path: Union[str, os.PathLike]) -> list[str]:
    """The tokens of a `vocab.txt`, one a line, the line number being the id."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle]


def _vocabulary_tokens(vocabulary: VocabularyLike) -> list[str]:
    if isinstance(vocabulary, (str, os.PathLike)):
        if not Path(vocabulary).is_file():
            raise FileNotFoundError(
                f"Vocabulary file {vocabulary} does not exist; give the path of the "
                "vocab.txt that came with the checkpoint."
            )
        return read_vocab_file(vocabulary)
    if isinstance(vocabulary, Mapping):
        tokens = [""] * (max(vocabulary.values()) + 1)
        for token, index in vocabulary.items():
            tokens[index] = token
        return tokens
    return list(vocabulary)


def _build_wordpiece(tokens: list[str], lowercase: bool, strip_accents: bool) -> Tokenizer:
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    if "[UNK]" not in vocab:
        raise ValueError(
            "The vocabulary has no [UNK] token; a BERT vocab.txt needs [PAD], "
            "[UNK], [CLS] and [SEP]. Check that the file is the vocab.txt that came "
            "with the checkpoint."
        )
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # As Hugging Face's BERT tokenizers do, a special token written in the text
    # stays one token, so vocab.txt and tokenizer.json folders tokenize alike.
    tokenizer.add_special_tokens([token for token in SPECIAL_TOKENS if token in vocab])
    return tokenizer


def _is_hf_tokenizer_file(path: Path) -> bool:
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    model = settings.get("model")
    return isinstance(model, dict) and model.get("type") == "WordPiece"


def _load_hf_tokenizer(
    path: Path, lowercase: Optional[bool], strip_accents: Optional[bool]
) -> tuple[Tokenizer, bool, bool]:
    settings = json.loads(path.read_text(encoding="utf-8"))
    model_type = (settings.get("model") or {}).get("type")
    if model_type != "WordPiece":
        raise ValueError(
            f"{path} is a {model_type} tokenizer; BERT encoders need a WordPiece tokenizer.json (or a vocab.txt)."
        )
    tokenizer = Tokenizer.from_file(str(path))
    normalizer = settings.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        stated_lowercase = bool(normalizer.get("lowercase", True))
        stated_strip = normalizer.get("strip_accents")
        if lowercase is None:
            lowercase = stated_lowercase
        if strip_accents is None:
            strip_accents = stated_strip if stated_strip is not None else lowercase
        if (lowercase, strip_accents) != (
            stated_lowercase,
            stated_strip if stated_strip is not None else stated_lowercase,
        ):
            tokenizer.normalizer = normalizers.BertNormalizer(
                clean_text=bool(normalizer.get("clean_text", True)),
                handle_chinese_chars=bool(normalizer.get("handle_chinese_chars", True)),
                strip_accents=strip_accents,
                lowercase=lowercase,
            )
    else:
        vocab = tokenizer.get_vocab(with_added_tokens=False)
        tokens = [""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            tokens[index] = token
        if lowercase is None:
            lowercase = infer_lowercase(tokens)
        if strip_accents is None:
            strip_accents = lowercase
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=True,
            strip_accents=strip_accents,
            lowercase=lowercase,
        )
    return tokenizer, bool(lowercase), bool(strip_accents)


def _check_maxlen(maxlen: int, pair: bool) -> int:
    smallest = 3 if pair else 2
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
        raise TypeError(f"maxlen must be an integer; got {maxlen!r}.")
    if maxlen < smallest:
        raise ValueError(
            f"maxlen must be at least {smallest} to hold [CLS] and [SEP]{' twice' if pair else ''}; got {maxlen}."
        )
    return int(maxlen)
