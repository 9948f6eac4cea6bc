"""WordPieceTokenizer: ids, segments, and character offsets into the original text."""

import json
import os
import pickle
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from toolkit.encoders import EncodedBatch, Encoding, WordPieceTokenizer
from toolkit.encoders.tokenizer import infer_lowercase

SHARED = Path(os.environ.get("TOOLKIT_SHARED_DIR", Path(__file__).resolve().parents[1] / ".." / "shared"))
CHINESE_VOCAB = SHARED / "data" / "chinese_bert" / "vocab.txt"
LIC2019_TRAIN = SHARED / "data" / "re" / "lic2019_sample" / "train_data.json"
MINILM_DIR = Path(os.environ.get("MINILM_DIR", "~/.cache/pretrained/all-MiniLM-L6-v2")).expanduser()
M3E_DIR = Path(os.environ.get("M3E_DIR", "~/.cache/pretrained/m3e-small")).expanduser()

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "hello", "world", "the", "cat", "##s", "sat", "ok", "cafe", "na", "##ive", "resume",
    "new", "york", "a", "b", "x", "##y", "2003", "!", ",", ".", "?", "'",
    "，", "。", "《", "》", "！", "？", "周", "杰", "伦", "的", "晴", "天", "年", "发", "行", "于",
]  # fmt: skip


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(token + "\n" for token in SPECIALS + WORDS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return WordPieceTokenizer(vocab_file)


def surface(encoding: Encoding) -> list[str]:
    """The original-text slice of every real token."""
    return [
        encoding.text[start:end]
        for index, (start, end) in enumerate(encoding.offsets)
        if not encoding.is_special(index)
    ]


def round_trip(tokenizer, encoding, start, end, segment=0):
    token_span = tokenizer.char_span_to_token_span(encoding, start, end, segment)
    assert token_span is not None
    return tokenizer.token_span_to_char_span(encoding, *token_span)


def test_encode_ids_segments_and_special_offsets(tokenizer):
    encoding = tokenizer.encode("Hello world!")
    assert [tokenizer.id_to_token(i) for i in encoding.token_ids] == [
        "[CLS]", "hello", "world", "!", "[SEP]",
    ]  # fmt: skip
    assert encoding.segment_ids == [0] * 5
    assert encoding.offsets == [(0, 0), (0, 5), (6, 11), (11, 12), (0, 0)]
    assert tokenizer.tokens(encoding)[0] == "[CLS]"


def test_vocabulary_accessors(tokenizer):
    assert tokenizer.vocabulary_size == len(SPECIALS) + len(WORDS)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id) == (0, 1, 2, 3)
    assert tokenizer.token_to_id("cat") == SPECIALS.__len__() + WORDS.index("cat")
    assert tokenizer.token_to_id("not-a-token") == tokenizer.unk_id
    assert tokenizer.id_to_token(tokenizer.sep_id) == "[SEP]"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.id_to_token(10_000)


@pytest.mark.parametrize(
    "text, expected_surface, entity",
    [
        # Full-width punctuation: each mark is its own token.
        (
            "周杰伦的《晴天》，发行于2003年。",
            ["周", "杰", "伦", "的", "《", "晴", "天", "》", "，", "发", "行", "于", "2003", "年", "。"],
            "晴天",
        ),
        # Emoji are unknown: the [UNK] keeps the emoji's own offsets.
        ("hello 😀 world", ["hello", "😀", "world"], "😀"),
        # Runs of spaces, tabs and newlines.
        ("  the   cat\t\n\u3000sat  ", ["the", "cat", "sat"], "cat"),
        # Accents are stripped for matching but the offsets keep the original letters.
        ("Café naïve résumé", ["Café", "na", "ïve", "résumé"], "naïve"),
        # A decomposed accent is dropped from the token's offsets but the span
        # mapped back from tokens takes it along.
        ("cafe\u0301 ok", ["cafe", "ok"], "cafe\u0301"),
        # A word with an unknown piece becomes one [UNK] over the whole word.
        ("the zebra sat", ["the", "zebra", "sat"], "zebra"),
        # Control and zero-width characters vanish without shifting offsets.
        ("new\u200b yo\u200brk\x00!", ["new", "yo\u200brk", "!"], "yo\u200brk"),
    ],
    ids=["full-width", "emoji", "whitespace", "accents", "combining", "unknown", "control"],
)
def test_offsets_and_span_round_trip(tokenizer, text, expected_surface, entity):
    encoding = tokenizer.encode(text)
    assert surface(encoding) == expected_surface
    start = text.index(entity)
    end = start + len(entity)
    assert round_trip(tokenizer, encoding, start, end) == (start, end)
    for index in range(1, len(encoding) - 1):
        char_start, char_end = tokenizer.token_span_to_char_span(encoding, index, index)
        assert text[char_start:char_end].strip() == text[char_start:char_end]


def test_unknown_tokens_map_back(tokenizer):
    text = "the 😀🎉 ok"
    encoding = tokenizer.encode(text)
    unknown = [i for i, token in enumerate(tokenizer.tokens(encoding)) if token == "[UNK]"]
    assert len(unknown) == 1  # The two emoji are one "word" without a vocab entry.
    assert tokenizer.token_span_to_char_span(encoding, unknown[0], unknown[0]) == (4, 6)
    # Part of an unknown word maps to the whole [UNK] token.
    assert tokenizer.char_span_to_token_span(encoding, 5, 6) == (unknown[0], unknown[0])


def test_span_inside_a_word_covers_its_pieces(tokenizer):
    text = "the cats"
    encoding = tokenizer.encode(text)
    assert tokenizer.tokens(encoding)[1:4] == ["the", "cat", "##s"]
    assert tokenizer.char_span_to_token_span(encoding, 4, 8) == (2, 3)
    assert tokenizer.char_span_to_token_span(encoding, 7, 8) == (3, 3)
    assert tokenizer.token_span_to_char_span(encoding, 3, 3) == (7, 8)


def test_span_of_only_whitespace_is_none(tokenizer):
    encoding = tokenizer.encode("the   cat")
    assert tokenizer.char_span_to_token_span(encoding, 4, 6) is None


def test_truncated_spans(tokenizer):
    text = "周杰伦的《晴天》，发行于2003年。"
    encoding = tokenizer.encode(text, maxlen=8)  # [CLS] + 6 characters + [SEP]
    assert len(encoding) == 8
    assert surface(encoding) == list(text[:6])
    assert round_trip(tokenizer, encoding, 0, 3) == (0, 3)
    assert tokenizer.char_span_to_token_span(encoding, 9, 11) is None  # Cut away.
    assert tokenizer.char_span_to_token_span(encoding, 5, 7) is None  # Cut in half.
    # Only whitespace or dropped characters past the last token is no truncation.
    padded = tokenizer.encode("the cat \u200b ")
    assert tokenizer.char_span_to_token_span(padded, 4, 10) == (2, 2)


def test_special_tokens_have_no_characters(tokenizer):
    encoding = tokenizer.encode("the cat")
    assert tokenizer.token_span_to_char_span(encoding, 0, 1) is None
    assert tokenizer.token_span_to_char_span(encoding, 2, 3) is None
    with pytest.raises(IndexError, match="not a span of an encoding of 4 tokens"):
        tokenizer.token_span_to_char_span(encoding, 2, 4)
    with pytest.raises(ValueError, match="not a non-empty span"):
        tokenizer.char_span_to_token_span(encoding, 3, 3)


def test_special_token_written_in_text_stays_one_token(tokenizer):
    encoding = tokenizer.encode("a [SEP] b")
    assert tokenizer.tokens(encoding) == ["[CLS]", "a", "[SEP]", "b", "[SEP]"]
    assert encoding.offsets[2] == (2, 7)


def test_pairs(tokenizer):
    encoding = tokenizer.encode("the cat sat", "hello world", maxlen=7)
    assert tokenizer.tokens(encoding) == ["[CLS]", "the", "cat", "[SEP]", "hello", "world", "[SEP]"]
    assert encoding.segment_ids == [0, 0, 0, 0, 1, 1, 1]
    assert encoding.offsets[4:6] == [(0, 5), (6, 11)]
    assert tokenizer.char_span_to_token_span(encoding, 6, 11, segment=1) == (5, 5)
    assert tokenizer.token_span_to_char_span(encoding, 5, 5) == (6, 11)
    assert tokenizer.char_span_to_token_span(encoding, 8, 11, segment=0) is None  # truncated
    assert tokenizer.token_span_to_char_span(encoding, 2, 4) is None  # crosses texts
    with pytest.raises(ValueError, match="segment must be 0, or 1"):
        tokenizer.char_span_to_token_span(tokenizer.encode("the"), 0, 3, segment=1)


def test_encode_batch_matches_encode(tokenizer):
    texts = ["hello world", "周杰伦的《晴天》", "", "the cats sat " * 10]
    pairs = ["ok", "a", "b", "x"]
    assert tokenizer.encode_batch(texts, maxlen=12) == [tokenizer.encode(t, maxlen=12) for t in texts]
    assert tokenizer.encode_batch(texts, pairs, maxlen=9) == [
        tokenizer.encode(text, pair, maxlen=9) for text, pair in zip(texts, pairs)
    ]
    with pytest.raises(TypeError, match="takes a list of texts"):
        tokenizer.encode_batch("hello")
    with pytest.raises(TypeError, match="use encode_batch"):
        tokenizer.encode(["hello"])
    with pytest.raises(ValueError, match="same length"):
        tokenizer.encode_batch(texts, pairs[:2])


# Texts the array form must read exactly as the list form: scripts, accents (composed and
# combining), whitespace runs, control and zero-width characters, emoji, special tokens written
# in the text, an empty text and texts longer than any maxlen below.
VARIED_TEXTS = [
    "周杰伦的《晴天》，发行于2003年。",
    "Hello, world! The QUICK brown fox; naïve CAFÉ résumé.",
    "",
    "  \t\n\u3000  ",
    "Café naïve résumé cafe\u0301 x\u0301",
    "the   cat\t\tsat\n\n ok  ",
    "東京 😀🎉 [UNK] a [SEP] b new\u200b yo\u200brk\x00!",
    "新年快乐，万事如意。" * 60,
    "the cats sat on the mat " * 40,
]


def assert_arrays_match_lists(tokenizer, texts, pairs=None, maxlen=None):
    """`encode_batch_arrays` holds exactly `encode_batch`'s ids, segments and offsets, padded."""
    batch = tokenizer.encode_batch_arrays(texts, pairs, maxlen=maxlen)
    encodings = tokenizer.encode_batch(texts, pairs, maxlen=maxlen)
    longest = max((len(encoding) for encoding in encodings), default=0)
    assert batch.lengths.tolist() == [len(encoding) for encoding in encodings]
    assert batch.token_ids.shape == batch.segment_ids.shape == (len(texts), longest)
    assert batch.offsets.shape == (len(texts), longest, 2)
    assert {batch.token_ids.dtype, batch.segment_ids.dtype, batch.offsets.dtype, batch.lengths.dtype} == {
        np.dtype("int32")
    }
    for row, encoding in enumerate(encodings):
        length = len(encoding)
        assert batch.token_ids[row, :length].tolist() == encoding.token_ids
        assert batch.segment_ids[row, :length].tolist() == encoding.segment_ids
        assert [tuple(offset) for offset in batch.offsets[row, :length].tolist()] == encoding.offsets
        assert (batch.token_ids[row, length:] == tokenizer.pad_id).all()
        assert not batch.segment_ids[row, length:].any() and not batch.offsets[row, length:].any()
    inputs, expected = batch.model_inputs(), tokenizer.to_model_inputs(encodings)
    assert set(inputs) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(inputs[name], expected[name], err_msg=name)
        assert inputs[name].dtype == np.int32
    without = tokenizer.encode_batch_arrays(texts, pairs, maxlen=maxlen, offsets=False)
    np.testing.assert_array_equal(without.token_ids, batch.token_ids)
    np.testing.assert_array_equal(without.segment_ids, batch.segment_ids)
    return batch


def test_encode_batch_arrays_matches_encode_batch(tokenizer):
    for maxlen in (None, 12, 2):
        assert_arrays_match_lists(tokenizer, VARIED_TEXTS, maxlen=maxlen)
    pairs = ["ok", "", "a b", "周杰伦", "the cats", "x", "hello world " * 5, "sat", "!"]
    for maxlen in (None, 9, 3):
        assert_arrays_match_lists(tokenizer, VARIED_TEXTS, pairs, maxlen=maxlen)
    assert_arrays_match_lists(tokenizer, VARIED_TEXTS[2:3])
    assert_arrays_match_lists(tokenizer, [])
    with pytest.raises(TypeError, match="encode_batch_arrays\\(\\) takes a list of texts"):
        tokenizer.encode_batch_arrays("hello")
    with pytest.raises(ValueError, match="same length"):
        tokenizer.encode_batch_arrays(VARIED_TEXTS, pairs[:2])


def test_encoded_batch_selects_concatenates_and_pads_rows(tokenizer):
    texts = ["hello world", "a", "周杰伦的《晴天》", "the cats sat"]
    batch = tokenizer.encode_batch_arrays(texts, maxlen=8)
    encodings = tokenizer.encode_batch(texts, maxlen=8)
    assert len(batch) == 4 and batch.starts.tolist() == [0, 4, 7, 15]
    picked = batch.select([2, 0, 2])
    assert picked.lengths.tolist() == [8, 4, 8]
    assert picked.token_ids[1, :4].tolist() == encodings[0].token_ids
    assert [tuple(offset) for offset in picked.offsets[2].tolist()] == encodings[2].offsets
    joined = EncodedBatch.concatenate([batch.select([1]), batch.select([3])])
    assert joined.token_ids.tolist() == tokenizer.to_model_inputs([encodings[1], encodings[3]])["token_ids"].tolist()
    # A length-grouped batch: any rows, in any order, padded to their longest or to a length.
    for rows, length in (([3, 1], None), ([1], 6), ([], None)):
        expected = tokenizer.to_model_inputs([encodings[row] for row in rows], sequence_length=length)
        inputs = batch.model_inputs(np.asarray(rows, dtype=int), sequence_length=length)
        for name in expected:
            np.testing.assert_array_equal(inputs[name], expected[name])
    with pytest.raises(ValueError, match="more than sequence_length=5"):
        batch.model_inputs([0, 2], sequence_length=5)
    # Pairs: the second texts' segment ids follow their rows.
    pairs = tokenizer.encode_batch_arrays(texts, texts[::-1], maxlen=10)
    pair_encodings = tokenizer.encode_batch(texts, texts[::-1], maxlen=10)
    mixed = EncodedBatch.concatenate([pairs.select([3, 0]), batch.select([1])])
    expected = tokenizer.to_model_inputs([pair_encodings[3], pair_encodings[0], encodings[1]])
    for inputs in (mixed.model_inputs(), mixed.model_inputs([0, 1, 2])):
        for name in expected:
            np.testing.assert_array_equal(inputs[name], expected[name])
    np.testing.assert_array_equal(mixed.segment_ids, expected["segment_ids"])
    plain = tokenizer.encode_batch_arrays(texts, maxlen=8, offsets=False)
    assert plain.flat_offsets is None and EncodedBatch.concatenate([plain, batch]).flat_offsets is None
    with pytest.raises(ValueError, match="offsets=False"):
        getattr(plain, "offsets")  # noqa: B009 (a property that raises)
    with pytest.raises(ValueError, match="flat_token_ids must have shape"):
        EncodedBatch([2, 3], [1, 2, 3], pad_id=0)


def test_default_and_invalid_maxlen(vocab_file):
    tokenizer = WordPieceTokenizer(vocab_file, maxlen=4)
    assert len(tokenizer.encode("the cat sat ok")) == 4
    assert len(tokenizer.encode("the cat sat ok", maxlen=6)) == 6
    with pytest.raises(ValueError, match="maxlen must be at least 3"):
        tokenizer.encode("a", "b", maxlen=2)
    with pytest.raises(ValueError, match="maxlen must be at least 2"):
        WordPieceTokenizer(vocab_file, maxlen=1)


def test_to_model_inputs(tokenizer):
    encodings = tokenizer.encode_batch(["hello world", "a"], maxlen=8)
    inputs = tokenizer.to_model_inputs(encodings, sequence_length=6)
    assert set(inputs) == {"token_ids", "segment_ids", "padding_mask"}
    assert inputs["token_ids"].shape == (2, 6) and inputs["token_ids"].dtype == np.int32
    assert inputs["padding_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    assert inputs["token_ids"][1, 3:].tolist() == [tokenizer.pad_id] * 3
    assert tokenizer.to_model_inputs(encodings)["token_ids"].shape == (2, 4)
    with pytest.raises(ValueError, match="more than sequence_length=3"):
        tokenizer.to_model_inputs(encodings, sequence_length=3)


def test_pickle_and_save_recreate_the_tokenizer(tokenizer, tmp_path):
    text = "Café 周杰伦 the cats 😀"
    restored = pickle.loads(pickle.dumps(tokenizer))
    assert restored.encode(text) == tokenizer.encode(text)
    assert restored.lowercase == tokenizer.lowercase
    tokenizer.save(tmp_path)
    again = WordPieceTokenizer.from_directory(tmp_path)
    assert again.encode(text) == tokenizer.encode(text)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True
    # Re-created from the vocab path and the casing alone.
    same = WordPieceTokenizer(tmp_path / "vocab.txt", lowercase=tokenizer.lowercase)
    assert same.encode(text) == tokenizer.encode(text)


def test_casing_is_inferred_and_can_be_overridden(tmp_path):
    uncased = SPECIALS + ["hello", "world", "##s"]
    cased = SPECIALS + ["Hello", "hello", "World", "world", "Paris", "##s"] + [f"Name{index}" for index in range(20)]
    assert infer_lowercase(uncased) is True
    assert infer_lowercase(cased) is False
    cased_tokenizer = WordPieceTokenizer(cased)
    assert cased_tokenizer.lowercase is False and cased_tokenizer.strip_accents is False
    assert cased_tokenizer.tokens(cased_tokenizer.encode("Hello hello"))[1:3] == ["Hello", "hello"]
    forced = WordPieceTokenizer(cased, lowercase=True)
    assert forced.tokens(forced.encode("Hello"))[1] == "hello"


def test_missing_special_tokens_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"no \[CLS\].*vocab.txt that came with the checkpoint"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[SEP]", "hello"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        WordPieceTokenizer(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="No vocab.txt"):
        WordPieceTokenizer.from_directory(tmp_path)


def test_hugging_face_tokenizer_json(vocab_file, tokenizer, tmp_path):
    vocab = {token: index for index, token in enumerate(SPECIALS + WORDS)}
    hf = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.enable_truncation(5)  # Saved settings must not leak into our calls.
    hf.enable_padding(length=32)
    hf.save(str(tmp_path / "tokenizer.json"))
    from_json = WordPieceTokenizer.from_directory(tmp_path)
    assert from_json.source.endswith("tokenizer.json")
    assert from_json.lowercase is True
    texts = ["Hello world, the cats sat! 周杰伦 naïve 😀", "a"]
    assert from_json.encode_batch(texts) == tokenizer.encode_batch(texts)
    cased = WordPieceTokenizer(tmp_path / "tokenizer.json", lowercase=False)
    assert cased.tokens(cased.encode("Hello"))[1] == "[UNK]"


def _stated_casing_folder(folder, tokens, *, do_lower_case, tokenizer_json=True):
    """A checkpoint folder that states its casing as m3e-small's does: `do_lower_case` in
    tokenizer_config.json and, in tokenizer.json, the same as the normaliser's `lowercase`."""
    folder.mkdir()
    if tokenizer_json:
        hf = Tokenizer(WordPiece({token: index for index, token in enumerate(tokens)}, unk_token="[UNK]"))
        hf.normalizer = normalizers.BertNormalizer(lowercase=do_lower_case, strip_accents=None)
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.save(str(folder / "tokenizer.json"))
    else:
        (folder / "vocab.txt").write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": do_lower_case}))
    return folder


def test_a_folder_stating_cased_over_an_uncased_vocabulary_is_lower_cased(tmp_path):
    """m3e-small (and the hub's bert-base-chinese) say do_lower_case: false over Chinese BERT's
    vocabulary, which has no capitals: read as stated, every capital letter would be [UNK]."""
    for tokenizer_json in (True, False):
        folder = _stated_casing_folder(
            tmp_path / f"uncased_{tokenizer_json}", SPECIALS + WORDS, do_lower_case=False, tokenizer_json=tokenizer_json
        )
        tokenizer = WordPieceTokenizer.from_directory(folder)
        assert tokenizer.lowercase is True and tokenizer.strip_accents is True
        encoding = tokenizer.encode("Hello 周杰伦, Café")
        assert tokenizer.tokens(encoding)[1:7] == ["hello", "周", "杰", "伦", ",", "cafe"]
        assert surface(encoding) == ["Hello", "周", "杰", "伦", ",", "Café"]
        assert WordPieceTokenizer.from_directory(folder, lowercase=False).lowercase is False  # asked for: kept
    cased_tokens = SPECIALS + ["Hello", "hello", "World", "world"] + [f"Name{index}" for index in range(20)]
    cased = WordPieceTokenizer.from_directory(
        _stated_casing_folder(tmp_path / "cased", cased_tokens, do_lower_case=False)
    )
    assert cased.lowercase is False and cased.tokens(cased.encode("Hello hello"))[1:3] == ["Hello", "hello"]


@pytest.mark.slow
@pytest.mark.skipif(
    not (MINILM_DIR / "tokenizer.json").is_file(),
    reason=f"all-MiniLM-L6-v2 not in {MINILM_DIR}; run `python -m toolkit get-encoder all-MiniLM-L6-v2`",
)
def test_minilm_tokenizer_json_and_vocab_txt_agree():
    from_json = WordPieceTokenizer.from_directory(MINILM_DIR)
    from_vocab = WordPieceTokenizer(MINILM_DIR / "vocab.txt", lowercase=True)
    texts = ["The quick brown fox; naïve CAFÉ résumé!", "東京 😀 [UNK] x\u0301", "  spaces\t\there "]
    assert from_json.encode_batch(texts, maxlen=16) == from_vocab.encode_batch(texts, maxlen=16)


@pytest.mark.slow
@pytest.mark.skipif(
    not (MINILM_DIR / "tokenizer.json").is_file(),
    reason=f"all-MiniLM-L6-v2 not in {MINILM_DIR}; run `python -m toolkit get-encoder all-MiniLM-L6-v2`",
)
def test_minilm_arrays_match_lists():
    for tokenizer in (
        WordPieceTokenizer.from_directory(MINILM_DIR),
        WordPieceTokenizer(MINILM_DIR / "vocab.txt", lowercase=True),
    ):
        for maxlen in (None, 16):
            assert_arrays_match_lists(tokenizer, VARIED_TEXTS, maxlen=maxlen)
        assert_arrays_match_lists(tokenizer, VARIED_TEXTS, VARIED_TEXTS[::-1], maxlen=32)


# --- The real Chinese vocabulary on LIC2019 texts ---------------------------------

needs_shared = pytest.mark.skipif(
    not (CHINESE_VOCAB.is_file() and LIC2019_TRAIN.is_file()),
    reason=f"shared data not found under {SHARED} (set TOOLKIT_SHARED_DIR)",
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn" and not ch.isspace())


@pytest.mark.slow
@needs_shared
def test_lic2019_offsets_and_entity_spans():
    tokenizer = WordPieceTokenizer(CHINESE_VOCAB)
    assert tokenizer.lowercase is True and tokenizer.vocabulary_size == 21128
    samples = [json.loads(line) for line in LIC2019_TRAIN.read_text(encoding="utf-8").splitlines()[:500]]
    encodings = tokenizer.encode_batch([sample["text"] for sample in samples], maxlen=64)
    exact = total = 0
    for sample, encoding in zip(samples, encodings):
        tokens = tokenizer.tokens(encoding)
        for index in range(1, len(encoding) - 1):
            start, end = encoding.offsets[index]
            if tokens[index] != "[UNK]":
                piece = tokens[index][2:] if tokens[index].startswith("##") else tokens[index]
                assert _normalise(encoding.text[start:end]) == _normalise(piece)
        for spo in sample["spo_list"]:
            for entity in (spo["subject"], spo["object"]):
                start = encoding.text.find(entity)
                if start < 0 or not entity.strip():
                    continue
                end = start + len(entity)
                token_span = tokenizer.char_span_to_token_span(encoding, start, end)
                if token_span is None:  # Only when truncation cut it.
                    assert end > encoding.offsets[-2][1]
                    continue
                char_start, char_end = tokenizer.token_span_to_char_span(encoding, *token_span)
                assert char_start <= start and end <= char_end  # Covers the entity.
                total += 1
                exact += (char_start, char_end) == (start, end)
    assert total > 500
    assert exact / total > 0.95  # Inexact only where an entity ends inside a word piece.


@pytest.mark.slow
@needs_shared
def test_chinese_vocabulary_arrays_match_lists():
    tokenizer = WordPieceTokenizer(CHINESE_VOCAB)
    texts = [json.loads(line)["text"] for line in LIC2019_TRAIN.read_text(encoding="utf-8").splitlines()[:600]]
    for maxlen in (None, 64):
        assert_arrays_match_lists(tokenizer, VARIED_TEXTS + texts, maxlen=maxlen)
    assert_arrays_match_lists(tokenizer, VARIED_TEXTS, VARIED_TEXTS[::-1], maxlen=40)


# --- m3e-small's tokenizer: Chinese with Latin words, digits and full-width punctuation ----------

needs_m3e = pytest.mark.skipif(
    not (M3E_DIR / "tokenizer.json").is_file(),
    reason=f"m3e-small not in {M3E_DIR}; run `python -m toolkit get-encoder m3e-small` (or set M3E_DIR)",
)

# Texts and their (subject, predicate, object) triples; every entity is written in the text exactly.
MIXED_TRIPLES = [
    ("苹果公司于2007年1月9日发布iPhone，售价４９９美元。",
     [("iPhone", "发布者", "苹果公司"), ("iPhone", "发布日期", "2007年1月9日"), ("iPhone", "售价", "４９９美元")]),
    ("《流浪地球2》由郭帆执导，吴京、Andy Lau主演（2023年上映），票房超40亿！",
     [("流浪地球2", "导演", "郭帆"), ("流浪地球2", "主演", "Andy Lau"), ("流浪地球2", "上映时间", "2023年")]),
    ("NBA球星LeBron James出生于美国俄亥俄州Akron市；身高2.06米。",
     [("LeBron James", "出生地", "Akron"), ("LeBron James", "身高", "2.06米")]),
    ("华为Mate 60 Pro搭载麒麟9000S芯片：ＩＢＭ成立于１９１１年。",
     [("Mate 60 Pro", "芯片", "麒麟9000S"), ("ＩＢＭ", "成立日期", "１９１１年")]),
]  # fmt: skip


@needs_m3e
def test_m3e_keeps_the_exact_characters_of_entities_in_mixed_chinese_text():
    from toolkit.relations.targets import build_targets

    tokenizer = WordPieceTokenizer.from_directory(M3E_DIR)
    assert tokenizer.source.endswith("tokenizer.json") and tokenizer.lowercase is True
    texts = [text for text, _ in MIXED_TRIPLES]
    triples = [found for _, found in MIXED_TRIPLES]
    for encoding in tokenizer.encode_batch(texts):
        tokens = tokenizer.tokens(encoding)
        for word in ("iPhone", "Andy", "Lau", "LeBron", "James", "Akron", "Mate", "Pro", "NBA"):
            if word in encoding.text:  # Latin words are lower-cased into the vocabulary, not [UNK]
                start = encoding.text.index(word)
                first, last = tokenizer.char_span_to_token_span(encoding, start, start + len(word))
                assert "[UNK]" not in tokens[first : last + 1], (word, tokens[first : last + 1])
    for encoding, found in zip(tokenizer.encode_batch(texts), triples):
        for entity in {part for triple in found for part in (triple[0], triple[2])}:
            start = encoding.text.index(entity)
            token_span = tokenizer.char_span_to_token_span(encoding, start, start + len(entity))
            assert tokenizer.token_span_to_char_span(encoding, *token_span) == (start, start + len(entity)), entity
    predicates = sorted({triple[1] for found in triples for triple in found})
    targets, report = build_targets(texts, triples, tokenizer, predicates, maxlen=128)
    assert report.num_dropped == 0 and report.num_triples == sum(map(len, triples))
    for target, found in zip(targets, triples):
        assert sorted(target.triples(predicates)) == sorted(found)


@pytest.mark.slow
@needs_m3e
@needs_shared
def test_m3e_tokenizes_as_chinese_bert_lower_cased():
    """m3e-small's tokenizer.json (its normaliser said cased) gives the ids and offsets of Google's
    Chinese BERT vocabulary, lower-cased as Google's model was, on LIC2019 text and the mixed texts."""
    m3e = WordPieceTokenizer.from_directory(M3E_DIR)
    chinese_bert = WordPieceTokenizer(CHINESE_VOCAB)
    assert chinese_bert.lowercase is True
    texts = [json.loads(line)["text"] for line in LIC2019_TRAIN.read_text(encoding="utf-8").splitlines()[:600]]
    texts += [text for text, _ in MIXED_TRIPLES]
    assert m3e.encode_batch(texts, maxlen=128) == chinese_bert.encode_batch(texts, maxlen=128)
