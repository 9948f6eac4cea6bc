"""Property-based tests of span alignment (tokenizer offsets, `locate_entity`)
and of the relation decoder's span finder (`find_spans`), on arbitrary text.

The properties: tokenizer offsets always point at real, visible characters of
the text; character and token spans round-trip; spans in the truncated part
give None (never an exception); `locate_entity` finds whole-token entities with
the exact surface text; `find_spans` follows bert4keras's rule exactly and
rejects mismatched shapes with a ValueError.
"""

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from toolkit.encoders.tokenizer import WordPieceTokenizer
from toolkit.relations.decoder import find_spans
from toolkit.relations.targets import locate_entity

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
VOCABS = {
    "chinese": SHARED / "data" / "chinese_bert" / "vocab.txt",
    "english": Path.home() / ".cache" / "pretrained" / "all-MiniLM-L6-v2" / "vocab.txt",
}
VOCAB_NAMES = sorted(VOCABS)

# The autouse seed fixture of conftest.py is function scoped; it does not
# interact with the generated examples.
PROPERTY_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@functools.cache
def tokenizer_for(name: str) -> WordPieceTokenizer:
    path = VOCABS[name]
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return WordPieceTokenizer(str(path), lowercase=True)


# --- Text strategies ----------------------------------------------------------

HARD_PIECES = [
    # CJK, full-width letters, digits and punctuation.
    "周杰伦",
    "的",
    "父亲",
    "是",
    "中文",
    "晴天",
    "Ｂｅｒｔ",
    "１２３",
    "，",
    "。",
    "！",
    "？",
    "（",
    "）",
    "《",
    "》",
    "：",
    "；",
    "、",
    "“",
    "”",
    "【",
    "】",
    "～",
    # Emoji, with modifiers, ZWJ sequences and flags.
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇨🇳",
    "❤\ufe0f",
    # Combining accents, precomposed and decomposed letters.
    "e\u0301",
    "\u0301",
    "a\u0308\u0323",
    "é",
    "É",
    "ñ",
    "Å",
    "İ",
    "ß",
    "ﬁ",
    "Straße",
    # Spacing marks with a non-zero combining class, and other marks.
    "\U0001d165",
    "\u302e",
    "\u0903",
    "\u20dd",
    # Whitespace runs.
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u3000",
    "\u00a0",
    "\u2009",
    " \u3000\t\n ",
    # Control, format and replacement characters the normaliser drops.
    "\x00",
    "\x07",
    "\ufffd",
    "\u200b",
    "\ufeff",
    "\u200d",
    # Characters no vocabulary holds.
    "\U00010000",
    "☃",
    "ᚠ",
    "\U0002a6d6",
    "\ue000",
    # Plain ASCII words, digits and punctuation; special tokens written in text.
    "hello",
    "World",
    "playing",
    "unaffable",
    "42",
    "3.14",
    "[",
    "]",
    "#",
    "##",
    ".",
    ",",
    "'",
    "-",
    "(",
    ")",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[PAD]",
]

long_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=90, max_size=130)
hard_texts = st.lists(
    st.one_of(
        st.sampled_from(HARD_PIECES),
        st.text(max_size=4),
        long_words,
    ),
    max_size=25,
).map("".join)
texts = st.one_of(st.text(max_size=60), hard_texts, hard_texts)


def real_tokens(encoding):
    return list(encoding.segment_token_range(0))


def covering(encoding, tokens, char_start, char_end):
    """The first and last of `tokens` whose characters overlap `[char_start, char_end)`.

    Usually the span a character span came from; wider when a character is split into several
    tokens (a Hangul syllable becomes its jamo: '웡' -> 'ᄋ', '##ᅯ', '##ᆼ', each at (0, 1)).
    """
    overlapping = [k for k in tokens if encoding.offsets[k][0] < char_end and encoding.offsets[k][1] > char_start]
    return (overlapping[0], overlapping[-1]) if overlapping else None


def max_pairs(indices, limit=30):
    """All `(i, j)` pairs, `i <= j`, of at most `limit` indices (kept quick)."""
    indices = indices[:limit]
    return [(i, j) for a, i in enumerate(indices) for j in indices[a:]]


# --- 1. Offsets -----------------------------------------------------------------


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=120, **PROPERTY_SETTINGS)
@given(text=texts)
def test_offsets_point_at_visible_text(vocab, text):
    tokenizer = tokenizer_for(vocab)
    encoding = tokenizer.encode(text)
    assert encoding.token_ids[0] == tokenizer.cls_id
    assert encoding.token_ids[-1] == tokenizer.sep_id
    assert encoding.offsets[0] == (0, 0) and encoding.offsets[-1] == (0, 0)
    previous = (0, 0)
    for index in real_tokens(encoding):
        start, end = encoding.offsets[index]
        assert 0 <= start < end <= len(text), (index, start, end)
        assert not encoding.is_special(index)
        surface = text[start:end]
        assert surface and not surface.isspace(), (index, surface)
        assert start >= previous[0] and end >= previous[1], (previous, (start, end))
        previous = (start, end)
    # Batched encoding gives the same encoding.
    batched = tokenizer.encode_batch([text, "x"])
    assert batched[0] == encoding


# --- 2. Token span <-> character span -------------------------------------------


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=80, **PROPERTY_SETTINGS)
@given(text=texts)
@example(text="웡 a")  # one character, three tokens
def test_token_spans_round_trip(vocab, text):
    tokenizer = tokenizer_for(vocab)
    encoding = tokenizer.encode(text)
    tokens = real_tokens(encoding)
    for i, j in max_pairs(tokens):
        char_span = tokenizer.token_span_to_char_span(encoding, i, j)
        assert char_span is not None, (i, j)
        cs, ce = char_span
        assert 0 <= cs < ce <= len(text), (i, j, cs, ce)
        found = tokenizer.char_span_to_token_span(encoding, cs, ce)
        assert found == covering(encoding, tokens, cs, ce), (i, j, cs, ce, found)
        assert found[0] <= i and j <= found[1], (i, j, cs, ce, found)
    # Spans touching [CLS] or [SEP] have no characters.
    last = len(encoding) - 1
    assert tokenizer.token_span_to_char_span(encoding, 0, last) is None
    # Impossible spans are clear errors.
    with pytest.raises(IndexError):
        tokenizer.token_span_to_char_span(encoding, 0, len(encoding))
    with pytest.raises(ValueError):
        tokenizer.char_span_to_token_span(encoding, 0, len(text) + 1)
    with pytest.raises(ValueError):
        tokenizer.char_span_to_token_span(encoding, len(text), len(text))


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=20, **PROPERTY_SETTINGS)
@given(
    prefix=texts,
    boundary=st.sampled_from(["中", "的", "(", "，", "!", "。"]),
    mark=st.sampled_from(["\U0001d165", "\u302e", "\u302f", "\U0001d166", "\U0001d16d"]),
    suffix=texts,
)
@example(prefix="", boundary="中", mark="\U0001d165", suffix="")
def test_round_trip_next_to_a_spacing_combining_mark(vocab, prefix, boundary, mark, suffix):
    tokenizer = tokenizer_for(vocab)
    text = prefix + boundary + mark + suffix
    encoding = tokenizer.encode(text)
    tokens = real_tokens(encoding)
    for i, j in max_pairs(tokens):
        cs, ce = tokenizer.token_span_to_char_span(encoding, i, j)
        found = tokenizer.char_span_to_token_span(encoding, cs, ce)
        assert found == covering(encoding, tokens, cs, ce), (text, i, j, cs, ce, found)


# --- 3. Truncation --------------------------------------------------------------


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=80, **PROPERTY_SETTINGS)
@given(text=texts, data=st.data())
def test_truncated_spans_give_none(vocab, text, data):
    tokenizer = tokenizer_for(vocab)
    full = tokenizer.encode(text)
    full_tokens = real_tokens(full)
    assume(len(full_tokens) >= 1)
    maxlen = data.draw(st.integers(2, len(full_tokens) + 2), label="maxlen")
    truncated = tokenizer.encode(text, maxlen=maxlen)
    kept = real_tokens(truncated)
    assert len(truncated) == min(maxlen, len(full))
    # Truncation keeps a prefix of the tokens, with the same offsets.
    assert truncated.offsets[1 : 1 + len(kept)] == full.offsets[1 : 1 + len(kept)]
    kept_last = kept[-1] if kept else 0
    for i, j in max_pairs(full_tokens):
        cs, ce = tokenizer.token_span_to_char_span(full, i, j)
        found = tokenizer.char_span_to_token_span(truncated, cs, ce)
        whole = covering(full, full_tokens, cs, ce)
        if whole[1] <= kept_last:
            assert found == whole, (i, j, cs, ce, found)
        elif ce > (truncated.offsets[kept_last][1] if kept else 0):
            # Part (or all) of the span lies in the truncated text.
            assert found is None, (i, j, cs, ce, found)
        # Otherwise truncation cut inside one character split into several tokens (a Hangul
        # syllable with an English vocabulary): the kept tokens of it are returned; not pinned here.


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=20, **PROPERTY_SETTINGS)
@given(
    kept=st.sampled_from([":", "中", "hello", "周杰伦", "，"]),
    separator=st.sampled_from(["", " ", "\u3000"]),
    unassigned=st.lists(
        st.sampled_from(["\u0378", "\u05ff", "\U00018d09", "\U0003fffd", "\U000e0080", "\u0890"]),
        min_size=1,
        max_size=3,
    ).map("".join),
)
@example(kept=":", separator="", unassigned="\u0378")
def test_truncation_inside_unassigned_characters(vocab, kept, separator, unassigned):
    tokenizer = tokenizer_for(vocab)
    text = kept + separator + unassigned
    kept_tokens = len(tokenizer.encode(kept)) - 2
    truncated = tokenizer.encode(text, maxlen=kept_tokens + 2)
    # Glued to a word ("hello\u0378") the character is part of one [UNK]: nothing to cut.
    assume(len(tokenizer.encode(text)) > len(truncated))
    assert tokenizer.char_span_to_token_span(truncated, 0, len(text)) is None


# --- 4. locate_entity -----------------------------------------------------------


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=80, **PROPERTY_SETTINGS)
@given(text=texts, data=st.data())
def test_locate_entity_of_whole_tokens(vocab, text, data):
    tokenizer = tokenizer_for(vocab)
    full = tokenizer.encode(text)
    tokens = real_tokens(full)
    assume(tokens)
    i = data.draw(st.sampled_from(tokens), label="i")
    j = data.draw(st.sampled_from([t for t in tokens if t >= i][:8]), label="j")
    entity = text[full.offsets[i][0] : full.offsets[j][1]]

    # Untruncated: the first token-aligned occurrence, with the exact surface text.
    start, end, status = locate_entity(full, entity)
    assert status == "ok", (entity, status)
    assert 1 <= start <= end <= tokens[-1]
    assert text[full.offsets[start][0] : full.offsets[end][1]] == entity
    assert full.offsets[start][0] <= full.offsets[i][0]

    # Truncated: a kept occurrence is still found; else None or a kept span.
    maxlen = data.draw(st.integers(2, len(full)), label="maxlen")
    truncated = tokenizer.encode(text, maxlen=maxlen)
    kept = real_tokens(truncated)
    start, end, status = locate_entity(truncated, entity)
    if kept and j <= kept[-1]:
        assert status == "ok", (entity, status)
    if start is None:
        assert status in ("beyond maxlen", "not in text")
        assert status == "beyond maxlen"  # the entity is in the text
    else:
        assert kept and kept[0] <= start <= end <= kept[-1], (start, end, kept)
        assert status in ("ok", "not on token boundaries")
        if status == "ok":
            surface = text[truncated.offsets[start][0] : truncated.offsets[end][1]]
            assert surface == entity


@pytest.mark.parametrize("vocab", VOCAB_NAMES)
@settings(max_examples=60, **PROPERTY_SETTINGS)
@given(text=texts, data=st.data())
def test_locate_entity_of_any_substring_is_clear(vocab, text, data):
    tokenizer = tokenizer_for(vocab)
    assume(text)
    encoding = tokenizer.encode(text, maxlen=data.draw(st.sampled_from([None, 4, 8]), label="maxlen"))
    cs = data.draw(st.integers(0, len(text) - 1), label="cs")
    ce = data.draw(st.integers(cs + 1, len(text)), label="ce")
    entity = text[cs:ce]
    start, end, status = locate_entity(encoding, entity)
    if start is None:
        assert end is None and status in ("not in text", "beyond maxlen")
    else:
        tokens = real_tokens(encoding)
        assert tokens[0] <= start <= end <= tokens[-1]
        assert status in ("ok", "not on token boundaries")
        if status == "ok":
            assert text[encoding.offsets[start][0] : encoding.offsets[end][1]] == entity


# --- 5. find_spans --------------------------------------------------------------

logit_elements = st.one_of(
    st.floats(-3, 3, width=32),
    st.sampled_from([0.0, -0.0, 1e-7, -1e-7, np.inf, -np.inf, np.nan]),
)


@st.composite
def logit_pairs(draw):
    length = draw(st.integers(0, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    start = draw(hnp.arrays(dtype, length, elements=logit_elements))
    end = draw(hnp.arrays(dtype, length, elements=logit_elements))
    return start, end


def reference_spans(start_logits, end_logits, length, threshold):
    spans = []
    for s in range(length):
        if start_logits[s] > threshold:
            for e in range(s, length):
                if end_logits[e] > threshold:
                    spans.append((s, e))
                    break
    return spans


@settings(max_examples=300, **PROPERTY_SETTINGS)
@given(
    logits=logit_pairs(),
    valid_length=st.one_of(st.none(), st.integers(0, 45)),
    threshold=st.sampled_from([0.0, 0.5, -0.5, 2.0]),
)
def test_find_spans_follows_the_nearest_end_rule(logits, valid_length, threshold):
    start_logits, end_logits = logits
    spans = find_spans(start_logits, end_logits, valid_length=valid_length, threshold=threshold)
    length = len(start_logits) if valid_length is None else min(valid_length, len(start_logits))
    assert isinstance(spans, list)
    for start, end in spans:
        assert type(start) is int and type(end) is int
        assert 0 <= start <= end < length
        assert start_logits[start] > threshold and end_logits[end] > threshold
        # The nearest qualifying end at or after the start.
        assert not any(end_logits[k] > threshold for k in range(start, end))
    starts = [start for start, _ in spans]
    assert starts == sorted(set(starts))  # each start once, in order
    qualifying = [
        s
        for s in range(length)
        if start_logits[s] > threshold and any(end_logits[k] > threshold for k in range(s, length))
    ]
    assert starts == qualifying
    assert spans == reference_spans(start_logits, end_logits, length, threshold)
    # Lists work as arrays do.
    assert find_spans(list(start_logits), list(end_logits), valid_length, threshold) == spans


@settings(max_examples=100, **PROPERTY_SETTINGS)
@given(
    start_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    end_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)
def test_find_spans_rejects_mismatched_shapes(start_shape, end_shape):
    assume(not (len(start_shape) == 1 and start_shape == end_shape))
    with pytest.raises(ValueError, match="1-D of the same length"):
        find_spans(np.ones(start_shape), np.ones(end_shape))


@settings(max_examples=50, **PROPERTY_SETTINGS)
@given(logits=logit_pairs(), valid_length=st.integers(-10, -1))
def test_find_spans_negative_valid_length_is_a_clear_error(logits, valid_length):
    start_logits, end_logits = logits
    try:
        spans = find_spans(start_logits, end_logits, valid_length=valid_length)
    except ValueError:
        return
    assert spans == []
