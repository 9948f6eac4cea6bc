"""Decoding pads its batches to a few fixed shapes: the same results as unpadded, few traces or compilations."""

from types import SimpleNamespace

import keras
import pytest

from tests.test_relations import (
    GIVEN_NAMES,
    PLACES,
    PREDICATES,
    SPECIALS,
    SURNAMES,
    family_sentences,
    tiny_backbone,
)
from toolkit.batching import batches_by_length, bucket_size, call_batches, decode_rows, padded_length, padding_splits

only_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.function tracing is TensorFlow's"
)


@pytest.fixture(scope="module")
def tokenizer():
    from toolkit.encoders.tokenizer import WordPieceTokenizer

    characters = sorted(set(SURNAMES + GIVEN_NAMES + PLACES + "市的父亲是妻子出生于，。"))
    return WordPieceTokenizer(SPECIALS + characters, lowercase=False)


@pytest.fixture(scope="module")
def texts():
    """Sentences of 8 to 40 tokens: several length buckets, and a last batch that is not full."""
    sentences = [text for text, _ in family_sentences(41, seed=5)]
    return sentences + [a + b for a, b in zip(sentences[:9], sentences[9:18])]


def test_bucket_sizes_and_the_shapes_of_decode_batches():
    sizes = {bucket_size(n) for n in range(1, 513)}
    assert sorted(sizes) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
    assert all(bucket_size(n) >= n and bucket_size(n) <= 1.5 * n for n in range(1, 513))
    assert padded_length(5) == 8 and padded_length(100, limit=110) == 110 and padded_length(130, limit=128) == 130
    assert decode_rows(100, 32) == 32 and decode_rows(5, 32) == 6 and decode_rows(40, 48) == 48

    lengths = [3, 9, 17, 17, 30, 5, 12, 25, 40, 7, 19]
    encodings = [SimpleNamespace(token_ids=list(range(1, n + 1)), segment_ids=[0] * n) for n in lengths]
    seen = []
    for indices, batch, token_ids, segment_ids in batches_by_length(encodings, 4, pad_id=0):
        assert token_ids.shape == segment_ids.shape and token_ids.shape[0] == min(bucket_size(len(batch)), 4)
        assert token_ids.shape[1] == padded_length(max(len(e.token_ids) for e in batch))
        for position in range(token_ids.shape[0]):  # the rows past the batch repeat its rows
            row = batch[position % len(batch)]
            assert token_ids[position, : len(row.token_ids)].tolist() == row.token_ids
            assert not token_ids[position, len(row.token_ids) :].any()
        seen.extend(indices.tolist())
    assert sorted(seen) == list(range(len(lengths)))


def _all_cuts(count):
    """Every way of cutting `range(count)` into consecutive runs."""
    for mask in range(1 << (count - 1)):
        edges = [0] + [i + 1 for i in range(count - 1) if mask >> i & 1] + [count]
        yield list(zip(edges, edges[1:]))


@pytest.mark.parametrize("seed", range(6))
def test_padding_splits_costs_the_least_of_every_cut(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = np.sort(rng.integers(1, 130, size=int(rng.integers(1, 11))))

    def cost(runs, call_tokens=40):
        return sum(
            call_tokens + min(bucket_size(end - start), 16) * padded_length(int(lengths[end - 1]), 128)
            for start, end in runs
        )

    runs = padding_splits(lengths, 128, max_rows=16, call_tokens=40)
    assert runs[0][0] == 0 and runs[-1][1] == len(lengths) and all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    assert cost(runs) == min(cost(cut) for cut in _all_cuts(len(lengths)))
    assert padding_splits([], 128) == []
    assert padding_splits([30] * 8, 128) == [(0, 8)]  # equal lengths, a bucket of rows: one call
    with pytest.raises(ValueError, match="ascending"):
        padding_splits([5, 3])


def test_call_batches_in_order_never_cut_and_sorted_cover_every_text():
    calls = [
        (indices.tolist(), length, rows) for indices, length, rows in call_batches([5, 90, 7, 3, 40], 2, sort=False)
    ]
    assert calls == [([0, 1], 96, 2), ([2, 3], 8, 2), ([4], 48, 1)]
    lengths = [3, 4, 5, 6, 7, 8, 9, 120, 125, 126]
    calls = list(call_batches(lengths, 16, 128))
    assert sorted(i for indices, _, _ in calls for i in indices.tolist()) == list(range(len(lengths)))
    assert [(length, rows) for _, length, rows in calls] == [(12, 8), (128, 3)]  # 7 rows -> 8, 3 rows -> 3


def test_relation_decoding_equals_the_unpadded_reference(tokenizer, texts):
    """An untrained extractor (many spans near 0): the padded, bucketed decode finds exactly what one
    sentence at a time, unpadded, finds."""
    from toolkit.relations import RelationExtractor, decode_per_sentence_bert4keras_style, decode_relations

    keras.utils.set_random_seed(3)
    extractor = RelationExtractor(tiny_backbone(tokenizer.vocabulary_size), PREDICATES)
    batched = decode_relations(extractor, tokenizer, texts, maxlen=48, batch_size=8, object_batch_size=16)
    reference = decode_per_sentence_bert4keras_style(extractor, tokenizer, texts, maxlen=48)
    assert sum(map(len, reference)) > 100  # untrained: plenty of triples to compare
    assert [sorted(found) for found in batched] == [sorted(found) for found in reference]


def _unpadded_batches(encodings, batch_size, pad_id, *, limit=None):
    """`batches_by_length` as it was: each batch padded to its longest row only, no extra rows."""
    from toolkit.batching import length_grouped_batches, pad_rows

    for indices in length_grouped_batches([len(e.token_ids) for e in encodings], batch_size, shuffle=False):
        batch = [encodings[index] for index in indices]
        yield (indices, batch, *pad_rows(batch, pad_id))


def test_span_decoders_equal_their_unpadded_results(tokenizer, texts, monkeypatch):
    import toolkit.entities.pipeline as entities
    import toolkit.relations.gplinker as gplinker
    from toolkit.entities.model import EntityRecognizer
    from toolkit.relations.gplinker import GPLinkerExtractor

    keras.utils.set_random_seed(4)
    recognizer = EntityRecognizer(tiny_backbone(tokenizer.vocabulary_size), ["PER", "LOC"], head_size=8)
    linker = GPLinkerExtractor(tiny_backbone(tokenizer.vocabulary_size), PREDICATES, head_size=8)
    padded_entities = entities.decode_entities(recognizer, tokenizer, texts, maxlen=48, batch_size=8)
    padded_triples = gplinker.decode_gplinker_spans(linker, tokenizer, texts, maxlen=48, batch_size=8)
    monkeypatch.setattr(entities, "batches_by_length", _unpadded_batches)
    monkeypatch.setattr(gplinker, "batches_by_length", _unpadded_batches)
    assert sum(map(len, padded_entities)) > 20 and sum(map(len, padded_triples)) > 20
    assert padded_entities == entities.decode_entities(recognizer, tokenizer, texts, maxlen=48, batch_size=8)
    assert padded_triples == gplinker.decode_gplinker_spans(linker, tokenizer, texts, maxlen=48, batch_size=8)


@only_tensorflow
def test_decoding_batches_of_many_lengths_traces_each_model_once(tokenizer, texts, caplog):
    """TensorFlow traces a predict function for a new input shape until it has generalised the axis that
    changed, and warns of retracing at 5 traces within 10 calls, counting every Keras model's predict function
    together: a run's training model and the best model loaded back used to reach it. The decoders call each
    model through one function whose input axes are open (`toolkit.inference.predict_batch`): one trace per
    model, whatever the lengths, the batch sizes or the windows."""
    from toolkit.entities.model import EntityRecognizer
    from toolkit.entities.pipeline import decode_entities
    from toolkit.inference import trace_count
    from toolkit.relations import RelationExtractor, decode_relations

    lengths = {padded_length(len(e.token_ids)) for e in tokenizer.encode_batch(texts, maxlen=48)}
    assert len(lengths) >= 3  # the batches come in several lengths, the last one not full
    caplog.set_level("WARNING", logger="tensorflow")
    for seed in range(3):  # a run's models: the one trained, the best one loaded back, another
        keras.utils.set_random_seed(seed)
        extractor = RelationExtractor(tiny_backbone(tokenizer.vocabulary_size), PREDICATES)
        recognizer = EntityRecognizer(tiny_backbone(tokenizer.vocabulary_size), ["PER", "LOC"], head_size=8)
        models = (extractor.subject_model, extractor.object_model, recognizer)
        for count in (len(texts), 1, 5, 3, len(texts)):
            decode_relations(extractor, tokenizer, texts[:count], maxlen=48, batch_size=8)
            decode_entities(recognizer, tokenizer, texts[:count], maxlen=48, batch_size=8)
        assert [trace_count(model) for model in models] == [1, 1, 1]
    assert not [record.getMessage() for record in caplog.records if "retracing" in record.getMessage()]
