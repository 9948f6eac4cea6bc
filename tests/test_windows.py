"""Long texts as windows (`toolkit.windows`): the plan, the training examples, and what the span predictors
find in a document against what they find in its sentences one by one."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.encoders import WordPieceTokenizer
from toolkit.windows import Window, default_stride, plan_windows, token_windows, window_examples

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["alice", "bob", "went", "to", "paris", "rome", "and", "met", "the", "play", "##ing", "##er", ".", ","]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(SPECIALS + WORDS)


@given(
    st.lists(st.booleans(), min_size=1, max_size=300).map(lambda flags: np.array([True] + flags[1:], dtype=bool)),
    st.integers(1, 40),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_token_windows_cover_every_token_and_start_at_words(word_starts, capacity, data):
    stride = data.draw(st.integers(1, capacity))
    ranges = token_windows(word_starts, capacity, stride)
    count = len(word_starts)
    assert ranges[0][0] == 0 and ranges[-1][1] == count
    for (first, stop), (following, _) in zip(ranges, ranges[1:]):
        assert first < following <= stop, (ranges, stride)  # progress, and no token skipped
    for first, stop in ranges:
        assert 0 < stop - first <= capacity
    if count <= capacity:
        assert ranges == [(0, count)]
    words = np.flatnonzero(word_starts).tolist() + [count]
    longest_word = max(b - a for a, b in zip(words, words[1:]))
    if longest_word <= capacity // 2:  # every word fits: no window starts or stops inside one
        for first, stop in ranges:
            assert word_starts[first] and (stop == count or word_starts[stop]), ranges
    if stride == capacity and longest_word == 1:  # windows that touch, as far apart as allowed
        assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))


def test_a_text_that_fits_is_one_window_of_the_whole_text(tokenizer):
    texts = ["  alice went to paris .  ", "", "bob"]
    plan = plan_windows(tokenizer, texts, maxlen=16)
    assert plan.windows == [Window(0, 0, len(texts[0])), Window(1, 0, 0), Window(2, 0, 3)]
    assert plan.long_texts == 0 and plan.stride == default_stride(16) == 7


def test_windows_of_a_long_text_are_whole_words_that_fit_and_overlap(tokenizer):
    text = " ".join(["alice went to paris playing ."] * 30) + " the end"
    maxlen = 12
    plan = plan_windows(tokenizer, [text], maxlen=maxlen, stride=5)
    full = tokenizer.encode(text).offsets[1:-1]
    starts = {start for start, _ in full}
    assert plan.long_texts == 1 and len(plan.windows) > 10
    assert plan.windows[0].start == 0 and plan.windows[-1].end == len(text)
    for window, following in zip(plan.windows, plan.windows[1:]):
        assert window.start < following.start <= window.end  # overlapping or touching, in order
    for window, piece in zip(plan.windows, plan.pieces([text])):
        encoding = tokenizer.encode(piece)
        assert len(encoding.token_ids) <= maxlen
        assert "##" not in tokenizer.tokens(encoding)[1]  # never starts inside a word
        assert window.start in starts or window.start == 0
        # The piece's tokens are the text's tokens there: re-read, nothing changes.
        inside = [(s - window.start, e - window.start) for s, e in full if window.holds(s, e)]
        assert encoding.offsets[1:-1] == inside
    assert not plan.windows[0].cut_start and plan.windows[0].cut_end and plan.windows[-1].cut_start


def test_a_span_touching_a_cut_edge_is_left_to_the_other_window():
    window = Window(0, 10, 20, cut_start=True, cut_end=True)
    assert window.keeps(11, 19) and not window.keeps(10, 12) and not window.keeps(15, 20)
    assert Window(0, 0, 20).keeps(0, 20)  # the text's own edges cut nothing
    assert window.shift((1, 3)) == (11, 13)


def test_training_windows_keep_every_annotation_inside_them_and_count_the_rest(tokenizer):
    sentence = "alice went to paris . "
    text = sentence * 12
    far = (0, 5, len(text) - 6, len(text) - 1)  # "alice" of the first sentence, "paris" . of the last
    annotations = [[((start, start + 5),) for start in range(0, len(text), len(sentence))] + [(far[:2], far[2:])]]
    plan = plan_windows(tokenizer, [text], maxlen=10, stride=4)
    pieces, per_window, moved, report = window_examples(plan, [text], annotations, spans_of=list)
    assert report.texts == 1 and report.long_texts == 1 and report.windows == len(pieces) == len(plan.windows)
    assert report.annotations == 13 and report.unplaced == 1 and report.examples == [(0, (far[:2], far[2:]))]
    assert report.beyond_maxlen == sum(1 for (span,) in annotations[0][:-1] if span[1] > plan.windows[0].end) + 1
    for piece, spans in zip(pieces, moved):
        for ((start, end),) in spans:
            assert piece[start:end] == "alice"
    placed = {found for window in per_window for found in window}
    assert placed == set(annotations[0][:-1])
    # Strings without spans go to the windows that hold them.
    words = [[("alice", "x", "paris"), ("bob", "x", "rome")]]
    _, per_window, _, report = window_examples(
        plan, [text], words, spans_of=lambda triple: None, found_in=lambda piece, t: t[0] in piece and t[2] in piece
    )
    assert report.unplaced == 1 and report.examples == [(0, ("bob", "x", "rome"))]
    assert all(found == [words[0][0]] for found in per_window)


# --- What the predictors find: models that read their own tokens, so the truth is known ---------------


class TokenEntities:
    """An entity recognizer stand-in: every `alice` or `bob` token is a PER entity, every `paris` a LOC."""

    types = ["LOC", "PER"]

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_id
        self.kinds = {tokenizer.token_to_id("paris"): 0, tokenizer.token_to_id("alice"): 1}
        self.kinds[tokenizer.token_to_id("bob")] = 1
        self.calls = []

    def predict_on_batch(self, inputs):
        token_ids = inputs["token_ids"]
        batch, length = token_ids.shape
        self.calls.append(token_ids.shape)
        scores = np.full((batch, len(self.types), length, length), -5.0, dtype="float32")
        for row, position in zip(*np.nonzero(np.isin(token_ids, list(self.kinds)))):
            scores[row, self.kinds[int(token_ids[row, position])], position, position] = 5.0
        return scores.reshape(batch, len(self.types), length * length)


class _Model:
    def __init__(self, call):
        self.predict_on_batch = call


class NearbyRelations:
    """A semi-pointer extractor stand-in: `alice` or `bob` is a subject, with `lives_in` every `paris` at most
    4 tokens after it. Its `sequence_output` carries the token ids, so the object head can read them."""

    predicates = ["lives_in", "unused"]

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_id
        self.people = [tokenizer.token_to_id("alice"), tokenizer.token_to_id("bob")]
        self.place = tokenizer.token_to_id("paris")
        self.subject_model = _Model(self._subjects)
        self.object_model = _Model(self._objects)

    def _subjects(self, inputs):
        token_ids = inputs["token_ids"]
        marks = np.where(np.isin(token_ids, self.people), 5.0, -5.0).astype("float32")
        return {"subject_logits": np.stack([marks, marks], axis=1), "sequence_output": token_ids[..., None] * 1.0}

    def _objects(self, inputs):
        token_ids = inputs["sequence_output"][..., 0]
        rows, length = token_ids.shape
        logits = np.full((rows, len(self.predicates), 2, length), -5.0, dtype="float32")
        for row, (_, end) in enumerate(inputs["subject_span"]):
            for position in range(end + 1, min(end + 5, length)):
                if token_ids[row, position] == self.place:
                    logits[row, 0, :, position] = 5.0
        return logits


def _sentences(count, seed=0, capital=False):
    """Sentences of the test vocabulary; with `capital`, each begins with a capital letter (the tokenizer lower-cases
    it), so that a document of them splits into sentences."""
    rng = np.random.default_rng(seed)
    people, fillers = ["alice", "bob"], ["went to", "met the", "and", "playing"]
    sentences = [
        f"{rng.choice(people)} {rng.choice(fillers)} paris {rng.choice(fillers)} rome ."
        if index % 3
        else f"the {rng.choice(people)} {rng.choice(fillers)} , rome and {rng.choice(fillers)} paris ."
        for index in range(count)
    ]
    return [sentence.capitalize() if capital else sentence for sentence in sentences]


#: How documents are read, and whether their sentences start with a capital (only then do they split).
READINGS = [("sentences", True), ("sentences", False), ("windows", True)]


def _joined(sentences):
    """The sentences as one text, and where each starts in it."""
    starts, position = [], 0
    for sentence in sentences:
        starts.append(position)
        position += len(sentence) + 1
    return " ".join(sentences), starts


@pytest.mark.parametrize("long_texts, capital", READINGS)
def test_entities_of_a_document_are_those_of_its_sentences(tokenizer, long_texts, capital):
    from toolkit.entities.pipeline import EntityPredictor

    sentences = _sentences(30, capital=capital)
    document, starts = _joined(sentences)
    windowed = EntityPredictor(TokenEntities(tokenizer), tokenizer, maxlen=16, batch_size=4, long_texts=long_texts)
    plan = plan_windows(tokenizer, [document], maxlen=16, unit="sentences" if long_texts == "sentences" else "tokens")
    if long_texts == "sentences" and capital:  # one window a sentence, the text between them left out
        assert [document[window.start : window.end].strip() for window in plan.windows] == sentences
    else:
        assert len(plan.windows) > len(sentences) // 2 and any(window.cut_end for window in plan.windows)
    one_by_one = windowed.spans(sentences)
    expected = sorted((start + s, start + e, kind) for start, found in zip(starts, one_by_one) for s, e, kind in found)
    assert len(expected) > 50
    assert windowed.spans([document]) == [expected]
    truncated = EntityPredictor(TokenEntities(tokenizer), tokenizer, maxlen=16, batch_size=4, long_texts="truncate")
    [first_part] = truncated.spans([document])
    assert 0 < len(first_part) < len(expected) // 5 and set(first_part) <= set(expected)


@pytest.mark.parametrize("long_texts, capital", READINGS)
def test_relations_of_a_document_are_those_of_its_sentences(tokenizer, long_texts, capital):
    from toolkit.relations.pipeline import RelationPredictor

    sentences = _sentences(30, seed=1, capital=capital)
    document, starts = _joined(sentences)
    predictor = RelationPredictor(NearbyRelations(tokenizer), tokenizer, maxlen=20, batch_size=4, long_texts=long_texts)
    one_by_one = predictor.span_triples(sentences)
    expected = [
        triple._replace(
            subject_span=(triple.subject_span[0] + start, triple.subject_span[1] + start),
            object_span=(triple.object_span[0] + start, triple.object_span[1] + start),
        )
        for start, found in zip(starts, one_by_one)
        for triple in found
    ]
    assert len(expected) >= 15
    [found] = predictor.span_triples([document])
    assert sorted(found) == sorted(expected)
    for triple in found:
        assert document[slice(*triple.subject_span)] == triple.subject
        assert document[slice(*triple.object_span)] == triple.object == "paris"
    predictor.long_texts = "truncate"
    [first_part] = predictor.span_triples([document])
    assert len(first_part) < len(expected) // 5 and set(first_part) <= set(expected)


def test_predictors_count_the_long_texts_they_read(tokenizer):
    from toolkit.entities.pipeline import EntityPredictor

    document = " ".join(_sentences(20))
    windowed = EntityPredictor(TokenEntities(tokenizer), tokenizer, maxlen=16, batch_size=4)
    windowed.spans(["alice went to paris .", document])
    counts = windowed.read_counts
    assert (counts.texts, counts.long_texts) == (2, 1)
    assert counts.windows == len(plan_windows(tokenizer, [document], maxlen=16).windows) > 5
    assert counts.line(16, "windows") == (
        f"1 of 2 texts were longer than model.maxlen (16 tokens): read whole, in {counts.windows} overlapping windows"
    )
    assert counts.line(16, "sentences").endswith(f"read whole, sentence by sentence, in {counts.windows} windows")
    truncated = EntityPredictor(TokenEntities(tokenizer), tokenizer, maxlen=16, long_texts="truncate")
    truncated.spans([document, document, "bob"])
    assert truncated.read_counts.line(16, "truncate").startswith(
        "warning: 2 of 3 texts were longer than model.maxlen (16 tokens): only their first 16 tokens were read"
    )
    assert EntityPredictor(TokenEntities(tokenizer), tokenizer, maxlen=16).read_counts.line(16, "windows") is None


def test_classification_pools_the_logits_of_a_long_texts_windows(tokenizer):
    import keras

    from toolkit.classification.preprocessor import TextPreprocessor
    from toolkit.predictors import MultilabelPredictor

    marks = [tokenizer.token_to_id(word) for word in ("rome", "bob")]
    inputs = {
        name: keras.Input((None,), dtype="int32", name=name) for name in ("token_ids", "segment_ids", "padding_mask")
    }

    def logits(token_ids):  # per label: +5 when the window holds its word, else -5
        found = [keras.ops.max(keras.ops.cast(keras.ops.equal(token_ids, mark), "float32"), axis=1) for mark in marks]
        return keras.ops.stack(found, axis=1) * 10.0 - 5.0

    model = keras.Model(inputs, keras.layers.Lambda(logits)(inputs["token_ids"]))
    words = ["alice went to paris ."] * 12
    document = " ".join(words[:6] + ["rome ."] + words[6:] + ["bob"])  # rome in the middle, bob at the end

    def predictor(**options):
        return MultilabelPredictor(model, ["rome", "bob"], preprocessor=TextPreprocessor(tokenizer, 16, **options))

    assert predictor().predict_labels([document, "bob went to rome"]) == [[], ["rome", "bob"]]
    assert predictor(long_texts="windows").predict_labels([document, "bob went to rome"]) == [
        ["rome", "bob"],
        ["rome", "bob"],
    ]
    mean = predictor(long_texts="windows", window_pooling="mean").decision_function([document])[0]
    assert -5.0 < mean[0] < 5.0 and -5.0 < mean[1] < mean[0]  # the share of windows holding each word
    config = predictor(long_texts="windows", window_stride=3, window_pooling="mean").preprocessor.get_config()
    assert TextPreprocessor.from_config(config).get_config() == config


def test_sentences_split_at_their_final_punctuation_not_at_abbreviations():
    from toolkit.windows import sentence_spans

    text = 'Mr. Lee met Ann in Rome. "She left on May 2." J. Smith of Acme Corp. said 3.5 percent. 他来了。她走了！ok'
    assert [text[start:end] for start, end in sentence_spans(text)] == [
        "Mr. Lee met Ann in Rome.",
        ' "She left on May 2."',
        " J. Smith of Acme Corp. said 3.5 percent.",
        " 他来了。",
        "她走了！",
        "ok",
    ]
    assert sentence_spans("") == [(0, 0)] and sentence_spans("no end here") == [(0, 11)]
    assert sentence_spans("A headline\nfirst line; Then more") == [(0, 11), (11, 22), (22, 32)]


def test_training_sentences_keep_what_lies_inside_them_and_count_what_crosses_them(tokenizer):
    sentences = _sentences(12, seed=3, capital=True)
    document, starts = _joined(sentences)
    inside = [(start, start + len(sentence)) for start, sentence in zip(starts, sentences)]
    crossing = (starts[2], starts[3] + 3)
    plan = plan_windows(tokenizer, [document], maxlen=16, unit="sentences")
    cut_at = plan.cut_at[0]
    pieces, per_window, _, report = window_examples(
        plan, [document], [[*[(span,) for span in inside], (crossing,)]], list
    )
    assert pieces == sentences and report.unplaced == 1 and report.examples == [(0, (crossing,))]
    assert [found for found in per_window] == [[(span,)] for span in inside]
    assert report.beyond_maxlen == sum(1 for _, end in inside if end > cut_at) + (crossing[1] > cut_at)
    assert 0 < cut_at < len(document) and report.beyond_maxlen >= 8


def test_joined_training_texts_carry_their_annotations():
    from toolkit.windows import join_texts

    texts = ["alice went to paris .", "bob met the rome .", "他来了。", "x"]
    annotations = [[(0, 5, "PER")], [(0, 3, "PER"), (12, 16, "LOC")], [(0, 1, "PER")], []]
    documents, moved = join_texts(texts, annotations, 2, lambda a, offset: (a[0] + offset, a[1] + offset, a[2]), seed=1)
    assert len(documents) == 2 and sorted(len(d) for d in documents) != []
    words = {text: (index, annotations[index]) for index, text in enumerate(texts)}
    for document, found in zip(documents, moved):
        assert sorted(f"{document[start:end]}/{kind}" for start, end, kind in found) == sorted(
            f"{text[start:end]}/{kind}"
            for text, (_, spans) in words.items()
            if text in document
            for start, end, kind in spans
        )
    assert sorted(text for text in texts if any(text in document for document in documents)) == sorted(texts)


@pytest.mark.parametrize("long_texts", ["sentences", "windows", "truncate"])
def test_the_summary_says_what_maxlen_cuts_and_what_windows_keep(tokenizer, long_texts):
    from types import SimpleNamespace

    from toolkit.windows import describe_windows, windowed_split

    sentences = _sentences(12, seed=4, capital=True)
    document, starts = _joined(sentences)
    texts = ["Alice went to paris .", document]
    annotations = [[(0, 5)], [(start, start + len(sentence)) for start, sentence in zip(starts, sentences)]]
    annotations[1].append((starts[0], starts[1] + 5))  # across two sentences
    split = windowed_split(tokenizer, texts, annotations, 16, None, lambda span: [span], long_texts=long_texts)
    written, lines = {}, []
    run = SimpleNamespace(write_json=lambda name, value: written.update({name: value}))
    model = SimpleNamespace(maxlen=16, long_texts=long_texts)
    describe_windows({"train": split}, model, "entities", run=run, log=lines.append)
    summary = written["data_summary.json"]
    counts = summary["splits"]["train"]
    assert summary["long_texts"] == long_texts and counts["texts"] == 2 and counts["long_texts"] == 1
    assert counts["annotations"] == 14 and counts["beyond_maxlen_without_windows"] >= 10
    if long_texts == "truncate":
        assert len(lines) == 1 and lines[0].startswith("warning: train: model.maxlen 16 cuts 1 of 2 texts")
        assert "set model.long_texts: windows" in lines[0]
    else:
        assert lines[0].startswith("train: model.maxlen 16 cuts 1 of 2 texts") and "which keep the" in lines[0]
        unplaced = 1 if long_texts == "sentences" else counts["in_no_window"]
        assert counts["in_no_window"] == unplaced >= 1
        assert lines[1].startswith(f"warning: train: {unplaced} of 14 entities lie in no window whole")
