"""In-graph WordPiece: the ids and character offsets of `WordPieceTokenizer`, from raw UTF-8 strings, in
core TensorFlow ops.

An exported model (`toolkit.serving.export`) reads texts with no Python tokenizer. `tokenizer_tables`
asks the toolkit tokenizer's own Hugging Face `tokenizers` parts, once per Unicode code point, what they
make of each character, and `GraphTokenizer` replays the answers inside a `tf.function`:

1. Special tokens written in a text (`[CLS]`, `[MASK]`, ...) are one token each, matched on the original
   characters anywhere in the text, as `tokenizers` matches its added tokens.
2. Every other character is normalised on its own: dropped (control and format characters; combining
   marks when accents are stripped), set apart (a CJK character: a word of its own), kept, or replaced
   by the characters the normaliser gives (lower-cased, decomposed with its accents stripped, a space
   for any whitespace). The answers are kept as runs of code points plus the few characters that
   become others.
3. The normalised characters are split into words on whitespace and punctuation (the pre-tokeniser's
   classes, asked the same way).
4. WordPiece: each word greedily, longest vocabulary piece first, `##` before a continuation; a word
   that cannot be split, or longer than `max_input_chars_per_word` characters, is one `[UNK]`.
5. Offsets: each normalised character remembers the character of the text it came from, so a token's
   `(start, end)` are characters of the text (Python `str` indices, code points), as
   `WordPieceTokenizer.encode` gives them; `span_ends` also move a token's end over the combining marks
   the normaliser dropped after it, as `WordPieceTokenizer.token_span_to_char_span` does.

A text is cut to `maxlen` tokens, `[CLS]` and `[SEP]` included: its first `maxlen - 2` word pieces, as
the toolkit's tokenizer truncates.

Known difference: the normaliser's NFD (with accent stripping) also puts runs of combining marks into
canonical order across characters; normalised one character at a time, marks keep their order. Every
mark that accent stripping removes (Mn) is gone either way, so only the order of spacing marks (Mc)
with a combining class, such as the musical symbols U+1D165..U+1D172, can differ: none of the tested
texts holds one.

Why not tensorflow-text: its `BertTokenizer` lower-cases by Unicode case folding with NFKC (a
full-width letter or bracket becomes ASCII, `ß` becomes `ss`: other ids than the model was trained
on), special tokens written in a text are not matched, its basic tokenizer's offsets point into the
normalised text and the fast one's are UTF-8 bytes, and its ops are not core TensorFlow: every runtime
that loads the model must import `tensorflow_text` first. Measured with tensorflow-text 2.21.1 and
Google's Chinese BERT vocabulary: `（全角）ＡＢＣ` gives ids 113 1059 6235 114 8425 where the toolkit
gives 8020 1059 6235 8021 8051 12641 10675. The ops here are core TensorFlow: the model loads
wherever TensorFlow does.

```python
graph = GraphTokenizer(WordPieceTokenizer.from_directory("runs/x/best/tokenizer"), maxlen=128)
encoded = graph(tf.constant(["Ada met Babbage."]))
encoded["token_ids"], encoded["offsets"], encoded["lengths"]
```
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

import numpy as np

__all__ = ["GraphTokenizer", "TokenizerTables", "tokenizer_tables"]

# How the normaliser treats a code point (bits 0-1 of a run's code).
KEEP, DROP, ISOLATE, REPLACE = 0, 1, 2, 3
# Bit 2: a combining mark (Mn) the normaliser drops, which a span's end moves over.
DROPPED_MARK = 4
# Bits 3-4: the pre-tokeniser's class of a normalised character.
WORD, SPACE, PUNCTUATION = 0, 1, 2
CLASS_SHIFT = 3
# Classes of normalised characters inside the graph only: the first and the other characters of a
# special token written in the text.
SPECIAL_FIRST, SPECIAL_REST = 3, 4

LAST_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


@dataclass(frozen=True)
class TokenizerTables:
    """What `GraphTokenizer` reads, as NumPy arrays and numbers (`tokenizer_tables` builds them).

    Attributes:
        run_starts: int32, the first code point of each run of code points with one code (from 0, sorted).
        run_codes: int32, each run's code: how it is normalised (`KEEP`, `DROP`, `ISOLATE`, `REPLACE`),
            `DROPPED_MARK`, and its pre-tokeniser class shifted by `CLASS_SHIFT`.
        replaced: int32, the code points the normaliser replaces (sorted).
        replacement_starts, replacement_lengths: int32, where each one's characters are in `replacements`.
        replacements: int32, the replacing characters, one after another.
        specials: `(code points, id)` of each special token matched in the text.
        vocabulary: the WordPiece pieces; `ids`: their ids (int64).
        unk_id, cls_id, sep_id, pad_id: the special ids.
        prefix: the continuation prefix (`##`).
        max_word_chars: a longer word is one `[UNK]`.
        longest_piece: the most characters a piece (without its prefix) has.
    """

    run_starts: np.ndarray
    run_codes: np.ndarray
    replaced: np.ndarray
    replacement_starts: np.ndarray
    replacement_lengths: np.ndarray
    replacements: np.ndarray
    specials: tuple
    vocabulary: tuple
    ids: np.ndarray
    unk_id: int
    cls_id: int
    sep_id: int
    pad_id: int
    prefix: str
    max_word_chars: int
    longest_piece: int

    def codes(self, code_points) -> np.ndarray:
        """The run code of each code point (NumPy; the graph does the same lookup)."""
        index = np.searchsorted(self.run_starts, np.asarray(code_points, dtype="int64"), side="right") - 1
        return self.run_codes[index]


def _unsupported(what: str) -> ValueError:
    return ValueError(
        f"cannot export this tokenizer in-graph: {what}; the toolkit's WordPieceTokenizer "
        "(BertNormalizer, BertPreTokenizer, WordPiece) is what the export replays"
    )


def _check_supported(settings: dict) -> dict:
    """The WordPiece settings of a `tokenizers` JSON; a ValueError for parts the graph does not replay."""
    normalizer, pre_tokenizer, model = (settings.get(key) or {} for key in ("normalizer", "pre_tokenizer", "model"))
    if normalizer.get("type") != "BertNormalizer":
        raise _unsupported(f"its normaliser is {normalizer.get('type')!r}, not BertNormalizer")
    if pre_tokenizer.get("type") != "BertPreTokenizer":
        raise _unsupported(f"its pre-tokeniser is {pre_tokenizer.get('type')!r}, not BertPreTokenizer")
    if model.get("type") != "WordPiece":
        raise _unsupported(f"its model is {model.get('type')!r}, not WordPiece")
    for token in settings.get("added_tokens") or []:
        if token.get("normalized") or token.get("single_word") or token.get("lstrip") or token.get("rstrip"):
            raise _unsupported(f"the added token {token.get('content')!r} is matched with options")
    return model


def _check_specials_never_overlap(contents: list) -> None:
    """Matches of the special tokens cannot overlap (so each is found on its own): no token holds
    another, and no token's end is another's (or its own) beginning."""
    for first in contents:
        for second in contents:
            if first != second and first in second:
                raise _unsupported(f"the special token {second!r} holds {first!r}")
            for size in range(1, min(len(first), len(second))):
                if first[-size:] == second[:size]:
                    raise _unsupported(f"the special tokens {first!r} and {second!r} can overlap")


def _pre_tokenizer_classes(pre_tokenizer, code_points: list) -> np.ndarray:
    """`WORD`, `SPACE` or `PUNCTUATION` of each code point, by asking the pre-tokeniser once: each
    character after an `a`, so a word character joins the `a`s, punctuation is a piece of one character,
    and whitespace is in no piece."""
    text = "".join("a" + chr(point) for point in code_points)
    classes = np.full(len(code_points), SPACE, dtype="int32")
    for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        # The code points' characters sit at the odd positions.
        if end - start == 1 and start % 2 == 1:
            classes[start // 2] = PUNCTUATION
        else:
            classes[np.arange(start | 1, end, 2) // 2] = WORD
    return classes


def tokenizer_tables(tokenizer) -> TokenizerTables:
    """The tables `GraphTokenizer` reads, from a `toolkit.encoders.WordPieceTokenizer`.

    Asks its normaliser about every code point (about a second), so the tables hold that normaliser's
    own Unicode version. A ValueError when the tokenizer has parts the graph does not replay.
    """
    from tokenizers import Tokenizer

    serialised = tokenizer.to_json()
    settings = json.loads(serialised)
    model = _check_supported(settings)
    backend = Tokenizer.from_str(serialised)
    normalize = backend.normalizer.normalize_str

    code_points = [point for point in range(LAST_CODE_POINT + 1) if point not in _SURROGATES]
    codes = np.zeros(LAST_CODE_POINT + 1, dtype="int32")
    replaced, replacements, starts, lengths = [], [], [], []
    for point in code_points:
        character = chr(point)
        normalised = normalize(character)
        if normalised == character:
            continue
        if not normalised:
            kind = DROP
        elif normalised == f" {character} ":
            kind = ISOLATE
        else:
            kind = REPLACE
            replaced.append(point)
            starts.append(len(replacements))
            lengths.append(len(normalised))
            replacements.extend(map(ord, normalised))
        if unicodedata.category(character) == "Mn" and not normalised.strip():
            kind |= DROPPED_MARK
        codes[point] = kind
    codes[code_points] |= _pre_tokenizer_classes(backend.pre_tokenizer, code_points) << CLASS_SHIFT
    run_starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1]).astype("int32")

    vocabulary = {}
    for token, index in sorted(model["vocab"].items(), key=lambda item: item[1]):
        if token:
            vocabulary.setdefault(token, index)
    prefix = model.get("continuing_subword_prefix") or "##"
    specials = [(token["content"], token["id"]) for token in settings.get("added_tokens") or [] if token.get("special")]
    _check_specials_never_overlap([content for content, _ in specials])
    longest = max(len(token[len(prefix) :] if token.startswith(prefix) else token) for token in vocabulary)
    return TokenizerTables(
        run_starts=run_starts,
        run_codes=codes[run_starts],
        replaced=np.asarray(replaced, dtype="int32"),
        replacement_starts=np.asarray(starts, dtype="int32"),
        replacement_lengths=np.asarray(lengths, dtype="int32"),
        replacements=np.asarray(replacements, dtype="int32"),
        specials=tuple((tuple(map(ord, content)), int(index)) for content, index in specials),
        vocabulary=tuple(vocabulary),
        ids=np.asarray(list(vocabulary.values()), dtype="int64"),
        unk_id=int(tokenizer.unk_id),
        cls_id=int(tokenizer.cls_id),
        sep_id=int(tokenizer.sep_id),
        pad_id=int(tokenizer.pad_id),
        prefix=prefix,
        max_word_chars=int(model.get("max_input_chars_per_word") or 100),
        longest_piece=max(1, longest),
    )


def _shift_right(values, steps, fill):
    """`values` (1-D) moved `steps` places on, `fill` in front."""
    import tensorflow as tf

    return tf.concat([tf.fill([steps], fill), values], axis=0)[: tf.shape(values)[0]]


def _shift_left(values, steps, fill):
    """`values` (1-D) moved `steps` places back, `fill` after."""
    import tensorflow as tf

    return tf.concat([values, tf.fill([steps], fill)], axis=0)[steps:]


class GraphTokenizer:
    """`WordPieceTokenizer.encode_batch(texts, maxlen=maxlen)` as TensorFlow ops (see the module docstring).

    Call it inside a `tf.function` (or eagerly) on a `[n]` string tensor. Returns a dict:

    - `token_ids`: int32 `[n, length]`, `[CLS]` first and `[SEP]` last, `pad_id` after;
    - `offsets`: int32 `[n, length, 2]`, each token's `(start, end)` characters, `(0, 0)` for `[CLS]`,
      `[SEP]` and padding;
    - `span_ends`: int32 `[n, length]`, each token's end moved over the combining marks the normaliser
      dropped after it (where a span ending at the token ends);
    - `lengths`: int32 `[n]`, tokens per text, `[CLS]` and `[SEP]` included.

    `table` (the vocabulary, a `tf.lookup.StaticHashTable`) is a resource: an export tracks it.

    Args:
        tokenizer: a `toolkit.encoders.WordPieceTokenizer`, or the `TokenizerTables` built from one.
        maxlen: tokens per text, `[CLS]` and `[SEP]` included; longer texts are cut.
    """

    def __init__(self, tokenizer, maxlen: int):
        import tensorflow as tf

        self.tables = tokenizer if isinstance(tokenizer, TokenizerTables) else tokenizer_tables(tokenizer)
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 2:
            raise ValueError(f"maxlen must be an integer of at least 2 (for [CLS] and [SEP]); got {maxlen!r}.")
        self.maxlen = maxlen
        tables = self.tables
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(tables.vocabulary), tf.string), tf.constant(tables.ids, tf.int64)
            ),
            default_value=-1,
        )

    @property
    def pad_id(self) -> int:
        return self.tables.pad_id

    def __call__(self, texts):
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts, tf.string)
        characters = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")  # [n, characters]
        points, rows = characters.flat_values, characters.value_rowids()
        codes = self._codes(points)
        special_first, special_inside, special_ids = self._special_matches(points, rows)
        kind = tf.where(special_inside, KEEP, tf.bitwise.bitwise_and(codes, 3))
        normalised, origin = self._normalise(points, kind)

        classes = tf.bitwise.right_shift(self._codes(normalised), CLASS_SHIFT) & 3
        classes = tf.where(tf.gather(kind, origin) == ISOLATE, PUNCTUATION, classes)
        classes = tf.where(
            tf.gather(special_inside, origin),
            tf.where(tf.gather(special_first, origin), SPECIAL_FIRST, SPECIAL_REST),
            classes,
        )
        words, origin = self._words(normalised, origin, classes, rows)
        word_first = words.row_starts()  # where each word's characters start in `origin`
        word_chars = tf.cast(words.row_lengths(), tf.int32)
        first_origin = tf.gather(origin, word_first)
        pieces = self._wordpiece(
            tf.strings.unicode_encode(words, "UTF-8"), word_chars, tf.gather(special_ids, first_origin)
        )
        piece_words, piece_ids, piece_at, piece_chars = pieces

        # A piece's characters in the text: those its first and last normalised characters come from.
        first = tf.gather(word_first, piece_words) + tf.cast(piece_at, tf.int64)
        starts = tf.gather(origin, first)
        ends = tf.gather(origin, first + tf.cast(piece_chars, tf.int64) - 1) + 1
        span_ends = self._past_dropped_marks(ends, codes, special_inside, characters.row_limits())
        piece_rows = tf.gather(rows, tf.gather(first_origin, piece_words))
        return self._tokens(piece_rows, piece_ids, starts, ends, span_ends, characters.row_starts())

    def _normalise(self, points, kind):
        """Each character normalised on its own: `(normalised code points, the index in points of the
        character each comes from)`. Their characters come from one pool: the replacements, then the
        text's own characters."""
        import tensorflow as tf

        tables = self.tables
        total = tf.shape(points, out_type=tf.int64)[0]
        replaced = kind == REPLACE
        # One more entry past the last code point: every search lands on an entry.
        keys = tf.constant(np.append(tables.replaced, LAST_CODE_POINT + 1), tf.int32)
        replaced_at = tf.searchsorted(keys, points, "left")
        replacement_starts = tf.constant(np.append(tables.replacement_starts, 0), tf.int64)
        replacement_lengths = tf.constant(np.append(tables.replacement_lengths, 0), tf.int64)
        own = tf.cast(tf.size(tables.replacements), tf.int64) + tf.range(total)
        sources = tf.where(replaced, tf.gather(replacement_starts, replaced_at), own)
        lengths = tf.where(
            replaced,
            tf.gather(replacement_lengths, replaced_at),
            tf.where(kind == DROP, tf.constant(0, tf.int64), tf.constant(1, tf.int64)),
        )
        pool = tf.concat([tf.constant(tables.replacements, tf.int32), points], axis=0)
        normalised = tf.gather(pool, tf.ragged.range(sources, sources + lengths).flat_values)
        return normalised, tf.repeat(tf.range(total), lengths)

    def _words(self, normalised, origin, classes, rows):
        """The words (a ragged `[words, characters]` of code points) and, for each of their characters,
        the text character it comes from: runs of word characters; punctuation, set-apart characters
        and special tokens alone; whitespace between."""
        import tensorflow as tf

        normalised_rows = tf.gather(rows, origin)
        continues = (
            (classes == WORD)
            & (_shift_right(classes, 1, SPACE) == WORD)
            & (_shift_right(normalised_rows, 1, tf.constant(-1, tf.int64)) == normalised_rows)
        ) | (classes == SPECIAL_REST)
        kept = classes != SPACE
        kept_at = tf.where(kept)[:, 0]
        begins = tf.cast(tf.gather(kept & ~continues, kept_at), tf.int64)
        words = tf.RaggedTensor.from_value_rowids(
            tf.gather(normalised, kept_at), tf.cumsum(begins) - 1, nrows=tf.reduce_sum(begins)
        )
        return words, tf.gather(origin, kept_at)

    def _tokens(self, piece_rows, piece_ids, starts, ends, span_ends, row_starts):
        """The pieces (flat, text by text; positions in the flat characters) as padded token arrays:
        each text's first `maxlen - 2` between `[CLS]` and `[SEP]`."""
        import tensorflow as tf

        tables = self.tables
        count = tf.shape(row_starts, out_type=tf.int64)[0]
        text_start = tf.gather(row_starts, piece_rows)
        values = tf.stack(
            [tf.cast(piece_ids, tf.int64), starts - text_start, ends - text_start, span_ends - text_start], axis=1
        )
        pieces = tf.RaggedTensor.from_value_rowids(values, piece_rows, nrows=count)[:, : self.maxlen - 2]
        ones = tf.ones([count], tf.int64)
        cls = tf.RaggedTensor.from_row_lengths(
            tf.tile(tf.constant([[tables.cls_id, 0, 0, 0]], tf.int64), [count, 1]), ones
        )
        sep = tf.RaggedTensor.from_row_lengths(
            tf.tile(tf.constant([[tables.sep_id, 0, 0, 0]], tf.int64), [count, 1]), ones
        )
        tokens = tf.concat([cls, pieces, sep], axis=1)
        lengths = tf.cast(tokens.row_lengths(), tf.int32)
        # [CLS] and [SEP] wide at least, with no text at all too (no op then sees an empty axis).
        width = tf.maximum(tf.reduce_max(tokens.row_lengths()), 2)
        dense = tf.cast(tokens.to_tensor(0, shape=tf.stack([count, width, 4])), tf.int32)
        padding = tf.sequence_mask(lengths, tf.shape(dense)[1])
        return {
            "token_ids": tf.where(padding, dense[:, :, 0], tables.pad_id),
            "offsets": dense[:, :, 1:3],
            "span_ends": dense[:, :, 3],
            "lengths": lengths,
        }

    def _codes(self, points):
        import tensorflow as tf

        starts = tf.constant(self.tables.run_starts, tf.int32)
        return tf.gather(tf.constant(self.tables.run_codes, tf.int32), tf.searchsorted(starts, points, "right") - 1)

    def _special_matches(self, points, rows):
        """Per text character: whether a special token written in the text starts there, whether one
        covers it, and the token's id (-1 outside one). Matches never overlap (`_check_specials_never_overlap`)."""
        import tensorflow as tf

        first = tf.zeros_like(points, tf.bool)
        inside = tf.zeros_like(points, tf.bool)
        ids = tf.fill(tf.shape(points), tf.constant(-1, tf.int32))
        for content, token_id in self.tables.specials:
            hit = tf.ones_like(points, tf.bool)
            for step, point in enumerate(content):
                same_row = _shift_left(rows, step, tf.constant(-1, tf.int64)) == rows
                hit &= (_shift_left(points, step, -1) == point) & same_row
            covered = hit
            for step in range(1, len(content)):
                covered |= _shift_right(hit, step, False)
            first |= hit
            inside |= covered
            ids = tf.where(hit, token_id, ids)
        return first, inside, ids

    def _past_dropped_marks(self, ends, codes, special_inside, row_limits):
        """Each end (a position in the flat characters) moved over the dropped combining marks after it,
        up to the end of its text."""
        import tensorflow as tf

        dropped = (tf.bitwise.bitwise_and(codes, DROPPED_MARK) != 0) & ~special_inside
        stops = tf.sort(tf.concat([tf.where(~dropped)[:, 0], row_limits], axis=0))
        return tf.gather(stops, tf.searchsorted(stops, ends, "left"))

    def _wordpiece(self, words, word_chars, word_special):
        """Pieces of every word, word by word: `(word, id, first character, characters)` each (1-D)."""
        import tensorflow as tf

        tables = self.tables
        longest = tables.longest_piece
        sizes = tf.range(1, longest + 1, dtype=tf.int32)[None, :]
        too_long = word_chars > tables.max_word_chars
        special = word_special >= 0
        word_count = tf.shape(words)[0]

        def step(iteration, position, failed, done, found_words, found_ids, found_at, found_chars):
            active = tf.cast(tf.where(~done)[:, 0], tf.int32)
            at = tf.gather(position, active)
            remaining = tf.gather(word_chars, active) - at
            candidates = tf.strings.substr(
                tf.gather(words, active)[:, None],
                tf.tile(at[:, None], [1, longest]),
                tf.tile(sizes, [tf.size(active), 1]),
                unit="UTF8_CHAR",
            )
            candidates = tf.where(at[:, None] > 0, tables.prefix + candidates, candidates)
            ids = self.table.lookup(candidates)
            matches = (ids >= 0) & (sizes <= remaining[:, None])
            best = tf.reduce_max(tf.where(matches, sizes, 0), axis=1)
            matched = best > 0
            best_ids = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)
            found_words = found_words.write(iteration, tf.boolean_mask(active, matched))
            found_ids = found_ids.write(iteration, tf.boolean_mask(best_ids, matched))
            found_at = found_at.write(iteration, tf.boolean_mask(at, matched))
            found_chars = found_chars.write(iteration, tf.boolean_mask(best, matched))
            moved = at + best
            indices = active[:, None]
            position = tf.tensor_scatter_nd_update(position, indices, moved)
            failed = tf.tensor_scatter_nd_update(failed, indices, ~matched)
            done = tf.tensor_scatter_nd_update(done, indices, ~matched | (moved >= tf.gather(word_chars, active)))
            return iteration + 1, position, failed, done, found_words, found_ids, found_at, found_chars

        def arrays(dtype):
            array = tf.TensorArray(dtype, size=1, dynamic_size=True, infer_shape=False, element_shape=[None])
            return array.write(0, tf.zeros([0], dtype))  # never empty, so concat works with no word at all

        _, _, failed, _, found_words, found_ids, found_at, found_chars = tf.while_loop(
            lambda iteration, position, failed, done, *found: tf.reduce_any(~done),
            step,
            (
                tf.constant(1),
                tf.zeros([word_count], tf.int32),
                too_long,
                too_long | special,
                arrays(tf.int32),
                arrays(tf.int64),
                arrays(tf.int32),
                arrays(tf.int32),
            ),
            maximum_iterations=tables.max_word_chars + 1,
        )
        piece_words = found_words.concat()
        keep = ~tf.gather(failed, piece_words)
        # A word that could not be split, or is too long, is one [UNK]; a special token is its own id.
        whole = tf.cast(tf.where(failed | special)[:, 0], tf.int32)
        whole_ids = tf.where(
            tf.gather(special, whole), tf.cast(tf.gather(word_special, whole), tf.int64), tables.unk_id
        )
        piece_words = tf.concat([tf.boolean_mask(piece_words, keep), whole], axis=0)
        piece_ids = tf.concat([tf.boolean_mask(found_ids.concat(), keep), whole_ids], axis=0)
        piece_at = tf.concat([tf.boolean_mask(found_at.concat(), keep), tf.zeros_like(whole)], axis=0)
        piece_chars = tf.concat([tf.boolean_mask(found_chars.concat(), keep), tf.gather(word_chars, whole)], axis=0)
        order = tf.argsort(
            tf.cast(piece_words, tf.int64) * (tables.max_word_chars + 1) + tf.cast(piece_at, tf.int64), stable=True
        )
        return (
            tf.cast(tf.gather(piece_words, order), tf.int64),
            tf.gather(piece_ids, order),
            tf.gather(piece_at, order),
            tf.gather(piece_chars, order),
        )
