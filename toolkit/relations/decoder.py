"""Decoding (subject, predicate, object) triples from a `RelationExtractor`.

The span rule is bert4keras's: every position whose start logit is > 0 opens a
span, closed by the NEAREST position at or after it whose end logit is > 0; a
start with no such end gives nothing. Subjects are found that way in
`subject_logits`, then the objects of each subject, per predicate, in
`object_logits`. Token spans go back to the exact characters of the input text
through the tokenizer's offsets (`text[char_start:char_end]`); a span that
touches `[CLS]` or `[SEP]` is dropped.

`decode_relations` is batched: the encoder runs ONCE per sentence (the
`subject_model`, over a batch of sentences), then the `object_model` (head
only) runs for the subjects of the batch, many at once, on the sequence
outputs repeated per subject; every call has one of a few fixed shapes.
`decode_per_sentence_bert4keras_style` is the reference it is benchmarked
against: per sentence, one call for the subjects and a second call that re-runs
the encoder for the objects of all its subjects, as bert4keras's example does.
Both give the same triples.

Example:

```python
triples = decode_relations(extractor, tokenizer, ["周杰伦的父亲是周耀中"], maxlen=128)
triples[0]   # [('周杰伦', '父亲', '周耀中')]
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import numpy as np

from toolkit.batching import call_batches, pad_rows
from toolkit.inference import predict_batch

__all__ = [
    "SpanTriple",
    "decode_per_sentence_bert4keras_style",
    "decode_relation_spans",
    "decode_relations",
    "find_spans",
]


def find_spans(start_logits, end_logits, valid_length: Optional[int] = None, threshold: float = 0.0) -> list:
    """Spans from start and end logits over positions (bert4keras's rule).

    Args:
        start_logits, end_logits: 1-D arrays `[seq]`.
        valid_length: only positions `< valid_length` count (the rest is
            padding or truncated); all positions when None.
        threshold: the decision threshold on the logits (0 for this loss).

    Returns:
        Inclusive `(start, end)` spans, by start: each start with a logit
        above the threshold, paired with the nearest end at or after it whose
        logit is above the threshold; starts with no such end are dropped.
        Several starts may share one end (nested spans).

    Example:

    >>> find_spans([1.0, -1, 2.0, -1], [-1, 3.0, -1, 1.0])
    [(0, 1), (2, 3)]
    """
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    if start_logits.ndim != 1 or start_logits.shape != end_logits.shape:
        raise ValueError(
            f"start_logits and end_logits must be 1-D of the same length; got shapes "
            f"{start_logits.shape} and {end_logits.shape}."
        )
    if valid_length is not None and int(valid_length) < 0:
        raise ValueError(f"valid_length must be None or >= 0; got {valid_length!r}.")
    length = len(start_logits) if valid_length is None else min(int(valid_length), len(start_logits))
    starts = np.flatnonzero(start_logits[:length] > threshold)
    ends = np.flatnonzero(end_logits[:length] > threshold)
    if not len(starts) or not len(ends):
        return []
    nearest = np.searchsorted(ends, starts, side="left")
    paired = nearest < len(ends)
    return [(int(start), int(ends[index])) for start, index in zip(starts[paired], nearest[paired])]


def _real_spans(spans, encoding) -> list:
    """Spans that cover real tokens only (no `[CLS]`/`[SEP]`)."""
    return [span for span in spans if not encoding.is_special(span[0]) and not encoding.is_special(span[1])]


class SpanTriple(NamedTuple):
    """A decoded triple with the characters of its entities: `text[start:end]` is the entity."""

    subject: str
    predicate: str
    object: str
    subject_span: tuple
    object_span: tuple


def _char_span(tokenizer, encoding, span) -> Optional[tuple]:
    return tokenizer.token_span_to_char_span(encoding, span[0], span[1])


#: At most this many objects a subject (those with the highest start + end logits). A trained model finds a
#: few; the limit bounds the work of decoding an untrained one, whose every position may score above 0 (an
#: untrained WebNLG* model gave 3.5 million triples for 64 dev sentences before it).
MAX_OBJECTS_PER_SUBJECT = 32


def _next_at_or_after(marks) -> np.ndarray:
    """Per row and position of a bool `[rows, seq]`, the first marked position at or after it (`seq` if none)."""
    length = marks.shape[-1]
    positions = np.where(marks, np.arange(length), length)
    return np.minimum.accumulate(positions[:, ::-1], axis=-1)[:, ::-1]


def _object_spans(object_logits, encoding, threshold, limit=MAX_OBJECTS_PER_SUBJECT) -> list:
    """`(predicate, start, end)` object spans of one subject from its `[P, 2, seq]` logits, by predicate and
    start: `find_spans`'s rule for every predicate at once, spans touching `[CLS]`/`[SEP]` left out; past
    `limit`, those with the highest start + end logits."""
    length = len(encoding.token_ids)
    starts, ends = object_logits[:, 0, :length], object_logits[:, 1, :length]
    predicates, positions = np.nonzero(starts > threshold)
    if not len(predicates):
        return []
    closing = _next_at_or_after(ends > threshold)[predicates, positions]
    special = np.fromiter((start == end for start, end in encoding.offsets), dtype=bool, count=length)
    special = np.append(special, True)  # `length`: no end
    keep = ~special[positions] & ~special[closing]
    predicates, positions, closing = predicates[keep], positions[keep], closing[keep]
    if limit is not None and len(predicates) > limit:
        scores = starts[predicates, positions] + ends[predicates, closing]
        chosen = np.sort(np.argsort(-scores, kind="stable")[:limit])
        predicates, positions, closing = predicates[chosen], positions[chosen], closing[chosen]
    return list(zip(predicates.tolist(), positions.tolist(), closing.tolist()))


def _object_triples(object_logits, encoding, subject_span, predicates, tokenizer, threshold) -> list:
    """`SpanTriple`s of one subject from its `[P, 2, seq]` object logits."""
    subject_chars = _char_span(tokenizer, encoding, subject_span)
    if subject_chars is None:
        return []
    text = encoding.text
    subject = text[subject_chars[0] : subject_chars[1]]
    triples = []
    for predicate, start, end in _object_spans(object_logits, encoding, threshold, MAX_OBJECTS_PER_SUBJECT):
        object_chars = _char_span(tokenizer, encoding, (start, end))
        if object_chars is not None:
            object_ = text[object_chars[0] : object_chars[1]]
            triples.append(SpanTriple(subject, predicates[predicate], object_, subject_chars, object_chars))
    return triples


MAX_SUBJECTS_PER_TEXT = 64


def _subject_spans(subject_logits, encoding, threshold, limit=MAX_SUBJECTS_PER_TEXT) -> list:
    """The subject spans of one text; past `limit`, those with the highest start + end logits.

    A trained model finds a few subjects per sentence; the limit only bounds
    the work (and memory) of decoding an untrained model early in training,
    whose every position may score above 0.
    """
    spans = _real_spans(find_spans(subject_logits[0], subject_logits[1], len(encoding.token_ids), threshold), encoding)
    if limit is not None and len(spans) > limit:
        scores = [subject_logits[0][start] + subject_logits[1][end] for start, end in spans]
        keep = sorted(np.argsort(scores, kind="stable")[::-1][:limit])
        spans = [spans[index] for index in keep]
    return spans


def decode_relations(extractor, tokenizer, texts: Sequence[str], **options) -> list:
    """Triples of each text, decoded in batches: per text, the distinct `(subject, predicate, object)`
    strings, each entity an exact slice of its text. The options are `decode_relation_spans`'s."""
    return [
        list(dict.fromkeys(tuple(found[:3]) for found in triples))
        for triples in decode_relation_spans(extractor, tokenizer, texts, **options)
    ]


def decode_relation_spans(
    extractor,
    tokenizer,
    texts: Sequence[str],
    *,
    maxlen: Optional[int] = None,
    batch_size: int = 32,
    object_batch_size: Optional[int] = None,
    sort_by_length: bool = True,
    threshold: float = 0.0,
) -> list:
    """`SpanTriple`s of each text, decoded in batches (`decode_relations` without the spans).

    Args:
        extractor: a `RelationExtractor` (`subject_model`, `object_model`,
            `predicates`, `pad_id`).
        tokenizer: the tokenizer the model was trained with
            (`encode_batch`, `token_span_to_char_span`).
        texts: the texts.
        maxlen: tokens per text, `[CLS]`/`[SEP]` included (the tokenizer's
            default when None); text past it is not read.
        batch_size: sentences per encoder call.
        object_batch_size: subjects per object-head call (twice
            `batch_size` when None).
        sort_by_length: batch sentences of similar length together (the
            output keeps the input order).
        threshold: the decision threshold on the logits (0 for this loss).

    Every model call gets one of a few fixed shapes, so that JAX (and XLA)
    compile a few times and TensorFlow traces the encoder twice in a decode
    (it generalises the axis that changed) and the object head once: fewer
    than the traces at which it warns of retracing. The encoder's calls are
    `toolkit.batching.call_batches` (a few row counts and lengths, padded
    with repeats of their sentences; a batch of very unequal lengths cut
    where that saves padding).
    The object head, a few matrix products a token, always gets
    `object_batch_size` subjects (the last call padded with repeats) of
    `maxlen` tokens (the tokenizer's when None; the batch's length when
    neither says). The outputs of the repeats are
    dropped, and padding changes no output of a real token.

    Returns:
        Per text, a list of distinct `SpanTriple`s: two mentions of the same
        words are two triples.
    """
    object_batch_size = object_batch_size if object_batch_size is not None else 2 * batch_size
    for name, value in (("batch_size", batch_size), ("object_batch_size", object_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    texts = list(texts)
    encodings = tokenizer.encode_batch(texts, maxlen=maxlen)
    limit = maxlen if maxlen is not None else getattr(tokenizer, "maxlen", None)
    lengths = [len(encoding.token_ids) for encoding in encodings]
    results: list = [[] for _ in texts]
    for rows, length, rows_per_call in call_batches(lengths, batch_size, limit, sort=sort_by_length):
        batch = [encodings[row] for row in rows]
        token_ids, segment_ids = pad_rows(batch, extractor.pad_id, length=length, count=rows_per_call)
        outputs = predict_batch(extractor.subject_model, {"token_ids": token_ids, "segment_ids": segment_ids})
        subject_logits = np.asarray(outputs["subject_logits"])
        owners, spans = [], []
        for position, encoding in enumerate(batch):
            for span in _subject_spans(subject_logits[position], encoding, threshold):
                owners.append(position)
                spans.append(span)
        if not spans:
            continue
        owners = np.asarray(owners)
        spans = np.asarray(spans, dtype="int32")
        sequence_output = np.asarray(outputs["sequence_output"])
        padding_mask = (token_ids != extractor.pad_id).astype("int32")
        if limit is not None and limit > length:  # the object head sees one length: `maxlen`
            sequence_output = np.pad(sequence_output, ((0, 0), (0, limit - length), (0, 0)))
            padding_mask = np.pad(padding_mask, ((0, 0), (0, limit - length)))
        for first in range(0, len(spans), object_batch_size):
            chosen = slice(first, first + object_batch_size)
            count = len(owners[chosen])
            padded = np.resize(np.arange(count), object_batch_size)  # repeats; their outputs are dropped
            object_logits = np.asarray(
                predict_batch(
                    extractor.object_model,
                    {
                        "sequence_output": sequence_output[owners[chosen][padded]],
                        "padding_mask": padding_mask[owners[chosen][padded]],
                        "subject_span": spans[chosen][padded],
                    },
                )
            )[:count]
            for logits, owner, span in zip(object_logits, owners[chosen], spans[chosen]):
                results[rows[owner]].extend(
                    _object_triples(logits, batch[owner], tuple(span), extractor.predicates, tokenizer, threshold)
                )
    return [list(dict.fromkeys(found)) for found in results]


def decode_per_sentence_bert4keras_style(
    extractor,
    tokenizer,
    texts: Sequence[str],
    *,
    maxlen: Optional[int] = None,
    threshold: float = 0.0,
) -> list:
    """Triples of each text, decoded one sentence at a time (the reference).

    As bert4keras's `extract_spoes`: per sentence, one model call finds the
    subjects, and a second call re-runs the encoder on the sentence repeated
    once per subject to find their objects. Same arguments and output as
    `decode_relations`.
    """
    results = []
    for text in texts:
        encoding = tokenizer.encode(text, maxlen=maxlen)
        token_ids = np.asarray([encoding.token_ids], dtype="int32")
        segment_ids = np.asarray([encoding.segment_ids], dtype="int32")
        outputs = predict_batch(extractor.subject_model, {"token_ids": token_ids, "segment_ids": segment_ids})
        spans = _subject_spans(np.asarray(outputs["subject_logits"])[0], encoding, threshold)
        found = []
        if spans:
            repeats = len(spans)
            object_logits = np.asarray(
                predict_batch(
                    extractor.encoder_object_model,
                    {
                        "token_ids": np.repeat(token_ids, repeats, axis=0),
                        "segment_ids": np.repeat(segment_ids, repeats, axis=0),
                        "subject_span": np.asarray(spans, dtype="int32"),
                    },
                )
            )
            for logits, span in zip(object_logits, spans):
                found.extend(_object_triples(logits, encoding, span, extractor.predicates, tokenizer, threshold))
        results.append(list(dict.fromkeys(tuple(triple[:3]) for triple in found)))
    return results
