"""In-graph decoders: the predictors' decision rules and span decoding as TensorFlow ops, for an export.

Each function takes a batch's model outputs and the in-graph tokenizer's encoding
(`toolkit.serving.graph_tokenizer.GraphTokenizer`: `token_ids`, `offsets`, `span_ends`, `lengths`) and
returns padded dense tensors with a count per text where the number varies, as TF Serving returns them:

- `classification_outputs`: `MultilabelPredictor`'s rule (logit > threshold, then `min_labels` and
  `max_labels`);
- `entity_outputs`: `toolkit.entities.pipeline.decode_entities`, each text's spans sorted by
  `(start, end, type)`;
- `semi_pointer_outputs`: `toolkit.relations.decoder.decode_relation_spans`: subjects (at most
  `MAX_SUBJECTS_PER_TEXT`), then each subject's objects for every predicate (at most
  `MAX_OBJECTS_PER_SUBJECT`);
- `gplinker_outputs`: `toolkit.relations.gplinker.decode_gplinker_spans`: entity spans (at most
  `MAX_ENTITIES_PER_TEXT` a role), head and tail links (at most `MAX_TRIPLES_PER_TEXT`).

Spans are characters of each text (Python `str` indices). A span touching `[CLS]` or `[SEP]` is dropped,
and a span's end moves over combining marks the normaliser dropped after it, as the predictors'
`token_span_to_char_span` does. Records come in the predictors' order, each once where the predictor
keeps it once. Candidates are flat lists (`tf.where` of a mask: row-major, the order in which the NumPy
decoders find them), padded per text at the end: ints with -1, strings with "".
"""

from __future__ import annotations

import tensorflow as tf

from toolkit.relations.decoder import MAX_OBJECTS_PER_SUBJECT, MAX_SUBJECTS_PER_TEXT
from toolkit.relations.gplinker import MAX_ENTITIES_PER_TEXT, MAX_TRIPLES_PER_TEXT

__all__ = ["classification_outputs", "entity_outputs", "gplinker_outputs", "semi_pointer_outputs"]


def _lexsort(keys):
    """The stable order of the entries of the 1-D `keys` (the most significant first)."""
    order = tf.range(tf.shape(keys[0])[0])
    for key in reversed(keys):
        order = tf.gather(order, tf.argsort(tf.gather(key, order), stable=True))
    return order


def _changed(values):
    """True where a 1-D tensor differs from the entry before it (the first entry too)."""
    return tf.concat([tf.ones([1], tf.bool), values[1:] != values[:-1]], axis=0)[: tf.shape(values)[0]]


def _first_of_each(keys):
    """True at the first entry (flat order) of each distinct tuple of the 1-D `keys`."""
    order = _lexsort(keys)
    first = tf.zeros_like(order, tf.bool)
    for key in keys:
        first |= _changed(tf.gather(key, order))
    return tf.scatter_nd(order[:, None], first, tf.shape(order))


def _highest_per_group(groups, scores, limit, *, later_first=False):
    """True at the `limit` highest `scores` of each group; ties go to the earlier entry, or with
    `later_first` to the later one (as `np.argsort(scores, kind="stable")[::-1]` ranks them)."""
    count = tf.shape(scores)[0]
    entries = tf.range(count)
    order = _lexsort([groups, -scores, -entries if later_first else entries])
    new_group = _changed(tf.gather(groups, order))
    group_starts = tf.boolean_mask(entries, new_group)
    rank = entries - tf.gather(group_starts, tf.cumsum(tf.cast(new_group, tf.int32)) - 1)
    return tf.scatter_nd(order[:, None], rank < limit, [count])


def _next_at_or_after(marks):
    """Per row of a bool `[rows, length]`, the first marked position at or after each one (`length` if none)."""
    length = tf.shape(marks)[1]
    positions = tf.range(length)
    marked = tf.where(marks, positions[None, :], length)
    ordered = tf.concat([tf.sort(marked, axis=1), tf.fill([tf.shape(marks)[0], 1], length)], axis=1)
    index = tf.searchsorted(ordered, tf.broadcast_to(positions[None, :], tf.shape(marks)), side="left")
    return tf.gather(ordered, index, batch_dims=1)


def _real_tokens(encoded):
    """bool `[n, length + 1]`: a token of the text, not `[CLS]`, `[SEP]` or padding (one more column,
    False, for "no position")."""
    lengths = encoded["lengths"][:, None]
    positions = tf.range(tf.shape(encoded["token_ids"])[1] + 1)[None, :]
    return (positions >= 1) & (positions <= lengths - 2)


def _char_spans(encoded, rows, starts, ends):
    """The characters `(start, end)` of the token spans `starts..ends` (inclusive) of texts `rows`."""
    rows = tf.cast(rows, tf.int32)
    start_chars = tf.gather_nd(encoded["offsets"][:, :, 0], tf.stack([rows, starts], axis=1))
    end_chars = tf.gather_nd(encoded["span_ends"], tf.stack([rows, ends], axis=1))
    return start_chars, end_chars


def _substrings(texts, rows, starts, ends):
    """`texts[rows][starts:ends]`, in characters."""
    return tf.strings.substr(tf.gather(texts, rows), starts, ends - starts, unit="UTF8_CHAR")


def _per_text(count, rows, **values):
    """Flat values (in text order) as `[count, most]` tensors, ints padded with -1 and strings with ""."""
    padded = {}
    for name, value in values.items():
        fill = "" if value.dtype == tf.string else tf.constant(-1, value.dtype)
        padded[name] = tf.RaggedTensor.from_value_rowids(value, rows, nrows=tf.cast(count, rows.dtype)).to_tensor(fill)
    return padded


def _counts(rows, count):
    """int32 `[count]`: how many of the flat entries (in text order) each text has."""
    ragged = tf.RaggedTensor.from_value_rowids(rows, rows, nrows=tf.cast(count, rows.dtype))
    return tf.cast(ragged.row_lengths(), tf.int32)


def classification_outputs(logits, *, threshold=0.0, min_labels=0, max_labels=None):
    """`{"logits", "labels"}`: `labels` is `MultilabelPredictor`'s decision (bool `[n, labels]`): logit
    above `threshold`; a text with fewer than `min_labels` gets its highest ones, one with more than
    `max_labels` keeps its highest."""
    decisions = logits > threshold
    if min_labels or max_labels is not None:
        ranked = tf.argsort(-logits, axis=-1, stable=True)  # labels from the highest logit down
        rank = tf.argsort(ranked, axis=-1, stable=True)  # each label's place in that order
        counts = tf.reduce_sum(tf.cast(decisions, tf.int32), axis=-1, keepdims=True)
        if min_labels:
            decisions |= (counts < min_labels) & (rank < min_labels)
        if max_labels is not None:
            decisions &= ~((counts > max_labels) & (rank >= max_labels))
    return {"logits": logits, "labels": decisions}


def entity_outputs(texts, scores, encoded, types):
    """`EntityPredictor.spans` for texts of at most `maxlen` tokens, from `EntityRecognizer` scores
    `[n, types, length * length]`: `entity_start`, `entity_end`, `entity_type`, `entity_text`
    (`[n, most]`) and `entity_count` (`[n]`)."""
    count = tf.shape(scores)[0]
    length = tf.shape(encoded["token_ids"])[1]
    scores = tf.reshape(scores, [count, len(types), length, length])
    real = _real_tokens(encoded)[:, :-1]
    positions = tf.range(length)
    ordered = positions[:, None] <= positions[None, :]
    found = tf.where((scores > 0) & real[:, None, :, None] & real[:, None, None, :] & ordered[None, None])
    rows, heads = found[:, 0], tf.cast(found[:, 1], tf.int32)
    starts, ends = _char_spans(encoded, rows, tf.cast(found[:, 2], tf.int32), tf.cast(found[:, 3], tf.int32))
    # By (start, end, type name), each once: the predictor's sorted set.
    names = sorted(types)
    type_rank = tf.gather(tf.constant([names.index(name) for name in types], tf.int32), heads)
    order = _lexsort([rows, starts, ends, type_rank])
    rows, heads, starts, ends = (tf.gather(value, order) for value in (rows, heads, starts, ends))
    keep = _first_of_each([rows, starts, ends, tf.gather(type_rank, order)])
    rows, heads, starts, ends = (tf.boolean_mask(value, keep) for value in (rows, heads, starts, ends))
    outputs = _per_text(
        count,
        rows,
        entity_start=starts,
        entity_end=ends,
        entity_type=tf.gather(tf.constant(list(types)), heads),
        entity_text=_substrings(texts, rows, starts, ends),
    )
    outputs["entity_count"] = _counts(rows, count)
    return outputs


def _triple_outputs(texts, encoded, count, rows, subject_spans, predicates, object_spans, names, signatures):
    """The distinct triples (first occurrences, flat order) as padded per-text outputs; `names` are the
    predicates', `signatures` their `(subject type, object type)` where known."""
    subject_start, subject_end = _char_spans(encoded, rows, *subject_spans)
    object_start, object_end = _char_spans(encoded, rows, *object_spans)
    keep = _first_of_each([rows, subject_start, subject_end, predicates, object_start, object_end])
    values = {
        "subject_start": subject_start,
        "subject_end": subject_end,
        "predicate_index": predicates,
        "object_start": object_start,
        "object_end": object_end,
    }
    values = {name: tf.boolean_mask(value, keep) for name, value in values.items()}
    rows = tf.boolean_mask(rows, keep)
    typed = [(signatures or {}).get(name, ("", "")) for name in names]
    outputs = _per_text(
        count,
        rows,
        subject=_substrings(texts, rows, values["subject_start"], values["subject_end"]),
        subject_start=values["subject_start"],
        subject_end=values["subject_end"],
        predicate=tf.gather(tf.constant(list(names)), values["predicate_index"]),
        object=_substrings(texts, rows, values["object_start"], values["object_end"]),
        object_start=values["object_start"],
        object_end=values["object_end"],
        subject_type=tf.gather(tf.constant([types[0] for types in typed]), values["predicate_index"]),
        object_type=tf.gather(tf.constant([types[1] for types in typed]), values["predicate_index"]),
    )
    outputs["triple_count"] = _counts(rows, count)
    return outputs


def _pointer_spans(starts_logits, ends_logits, valid, real):
    """bool `[rows, length]` span starts and int32 their ends by the semi-pointer rule: each start logit
    > 0 closed by the nearest end logit > 0 at or after it; spans touching `[CLS]`/`[SEP]` left out.
    `valid`: `[rows, length]` positions of the text; `real`: `[rows, length + 1]` its real tokens."""
    closing = _next_at_or_after((ends_logits > 0) & valid)
    opens = (starts_logits > 0) & valid & real[:, :-1] & tf.gather(real, closing, batch_dims=1)
    return opens, closing


def semi_pointer_outputs(texts, subject_logits, object_logits_of, encoded, predicates, signatures=None):
    """`RelationPredictor.span_triples` of a `RelationExtractor` for texts of at most `maxlen` tokens.

    Args:
        texts: `[n]` strings.
        subject_logits: `[n, 2, length]`, the subject model's.
        object_logits_of: `(rows, spans) -> [subjects, predicates, 2, length]`: the object model on
            the sequence outputs of texts `rows` with the subject `spans` (int32 `[subjects, 2]`).
        encoded: the in-graph tokenizer's encoding.
        predicates: the predicate names.
        signatures: predicate -> `(subject type, object type)`, where the schema gives them.

    Returns `subject`, `subject_start`, `subject_end`, `predicate`, `object`, `object_start`,
    `object_end`, `subject_type`, `object_type` (`[n, most]`; the types "" where unknown) and
    `triple_count` (`[n]`).
    """
    count = tf.shape(subject_logits)[0]
    length = tf.shape(subject_logits)[2]
    positions = tf.range(length)[None, :]
    valid = positions < encoded["lengths"][:, None]
    real = _real_tokens(encoded)
    opens, closing = _pointer_spans(subject_logits[:, 0], subject_logits[:, 1], valid, real)
    found = tf.where(opens)
    rows, starts = found[:, 0], tf.cast(found[:, 1], tf.int32)
    ends = tf.gather_nd(closing, found)
    scores = tf.gather_nd(subject_logits[:, 0], found) + tf.gather_nd(
        subject_logits[:, 1], tf.stack([rows, tf.cast(ends, tf.int64)], axis=1)
    )
    chosen = _highest_per_group(rows, scores, MAX_SUBJECTS_PER_TEXT, later_first=True)
    rows, starts, ends = (tf.boolean_mask(value, chosen) for value in (rows, starts, ends))

    object_logits = object_logits_of(rows, tf.stack([starts, ends], axis=1))  # [subjects, predicates, 2, length]
    subjects, kinds = tf.shape(object_logits)[0], tf.shape(object_logits)[1]
    flat = tf.reshape(object_logits, [subjects * kinds, 2, length])
    repeat = tf.repeat(rows, kinds)
    opens, closing = _pointer_spans(flat[:, 0], flat[:, 1], tf.gather(valid, repeat), tf.gather(real, repeat))
    found = tf.where(tf.reshape(opens, [subjects, kinds, length]))
    subject, predicate, object_start = found[:, 0], tf.cast(found[:, 1], tf.int32), tf.cast(found[:, 2], tf.int32)
    object_end = tf.gather_nd(tf.reshape(closing, [subjects, kinds, length]), found)
    scores = tf.gather_nd(object_logits[:, :, 0], found) + tf.gather_nd(
        object_logits[:, :, 1], tf.stack([subject, found[:, 1], tf.cast(object_end, tf.int64)], axis=1)
    )
    chosen = _highest_per_group(subject, scores, MAX_OBJECTS_PER_SUBJECT)
    subject, predicate, object_start, object_end = (
        tf.boolean_mask(value, chosen) for value in (subject, predicate, object_start, object_end)
    )
    return _triple_outputs(
        texts,
        encoded,
        count,
        tf.gather(rows, subject),
        (tf.gather(starts, subject), tf.gather(ends, subject)),
        predicate,
        (object_start, object_end),
        predicates,
        signatures,
    )


def gplinker_outputs(texts, outputs, encoded, predicates, signatures=None):
    """`RelationPredictor.span_triples` of a `GPLinkerExtractor` for texts of at most `maxlen` tokens,
    from its `entities`, `head_links` and `tail_links` (`[n, heads, length * length]`); the outputs
    are `semi_pointer_outputs`'s."""
    count = tf.shape(encoded["token_ids"])[0]
    length = tf.shape(encoded["token_ids"])[1]
    entities = tf.reshape(outputs["entities"], [count, 2, length, length])
    real = _real_tokens(encoded)[:, :-1]
    positions = tf.range(length)
    ordered = positions[:, None] <= positions[None, :]
    found = tf.where((entities > 0) & real[:, None, :, None] & real[:, None, None, :] & ordered[None, None])
    scores = tf.gather_nd(entities, found)
    chosen = _highest_per_group(found[:, 0] * 2 + found[:, 1], scores, MAX_ENTITIES_PER_TEXT)
    found = tf.boolean_mask(found, chosen)

    def role(which):
        """The text's spans of one role as `[count, most]` starts and ends, and which are real."""
        spans = tf.boolean_mask(found, found[:, 1] == which)
        spans = tf.RaggedTensor.from_value_rowids(
            tf.cast(spans[:, 2:], tf.int32), spans[:, 0], nrows=tf.cast(count, tf.int64)
        )
        present = tf.sequence_mask(spans.row_lengths())
        spans = spans.to_tensor(0)
        return spans[:, :, 0], spans[:, :, 1], present

    subject_starts, subject_ends, subject_present = role(0)
    object_starts, object_ends, object_present = role(1)

    def links(name, subject_positions, object_positions):
        """`[count, subjects, objects, predicates]` link scores of every subject-object pair."""
        flat = outputs[name]  # [count, predicates, length * length]
        pairs = subject_positions[:, :, None] * length + object_positions[:, None, :]
        return tf.transpose(tf.gather(flat, pairs, axis=2, batch_dims=1), [0, 2, 3, 1])

    heads = links("head_links", subject_starts, object_starts)
    tails = links("tail_links", subject_ends, object_ends)
    present = subject_present[:, :, None, None] & object_present[:, None, :, None]
    found = tf.where((heads > 0) & (tails > 0) & present)  # by text, subject, object, predicate
    rows = found[:, 0]
    chosen = _highest_per_group(rows, tf.gather_nd(heads, found) + tf.gather_nd(tails, found), MAX_TRIPLES_PER_TEXT)
    found = tf.boolean_mask(found, chosen)
    rows, subject, object_ = found[:, 0], found[:, :2], tf.stack([found[:, 0], found[:, 2]], axis=1)
    return _triple_outputs(
        texts,
        encoded,
        count,
        rows,
        (tf.gather_nd(subject_starts, subject), tf.gather_nd(subject_ends, subject)),
        tf.cast(found[:, 3], tf.int32),
        (tf.gather_nd(object_starts, object_), tf.gather_nd(object_ends, object_)),
        predicates,
        signatures,
    )
