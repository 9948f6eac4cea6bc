"""GPLinker (Su, 2022): relation extraction as three kinds of span matrices on the sparse loss.

Chosen with `model.method: gplinker` (the default stays the semi-pointer
semi-tagging `RelationExtractor`). On the encoder output:

- an entity matrix with two heads, subjects (head 0) and objects (head 1),
  scoring every (start, end) span (`GlobalPointer` semantics: rotary
  position embedding, the lower triangle at -inf);
- per predicate, a head-to-head matrix scoring (subject start, object start)
  and a tail-to-tail matrix scoring (subject end, object end), without the
  triangle mask (either may come first) and without RoPE.

All three are trained with the sparse multilabel categorical crossentropy
over their flattened pairs. Decoding, as Su's: the subjects and objects are
the entity spans scoring > 0; `(s, p, o)` is a triple when both the head
link `(p, s.start, o.start)` and the tail link `(p, s.end, o.end)` score > 0.
The whole batch is scored in one call, then paired sentence by sentence.

```python
extractor = GPLinkerExtractor(encoder.backbone, predicates, pad_id=tokenizer.pad_id)
extractor.compile(optimizer="adam")
extractor.fit(GPLinkerFeed(targets, batch_size=32, num_predicates=len(predicates)), epochs=10)
triples = decode_gplinker_spans(extractor, tokenizer, texts, maxlen=128)
```
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from toolkit.batching import batches_by_length
from toolkit.inference import predict_batch
from toolkit.losses import SparseMultilabelCategoricalCrossentropy
from toolkit.models import TaskModel
from toolkit.relations.layers import PaddingMask
from toolkit.spans import EfficientGlobalPointer, FlattenSpans, GlobalPointer
from toolkit.spans.feed import SpanFeed
from toolkit.spans.targets import decode_spans, most_spans_per_head, span_targets

__all__ = ["GPLinkerExtractor", "GPLinkerFeed", "decode_gplinker_spans"]

_HEADS = {"global_pointer": GlobalPointer, "efficient_global_pointer": EfficientGlobalPointer}
OUTPUTS = ("entities", "head_links", "tail_links")


@keras.saving.register_keras_serializable(package="toolkit")
class GPLinkerExtractor(TaskModel):
    """Encoder + GPLinker's entity, head-link and tail-link matrices (see the module docstring).

    Args:
        backbone: a keras-hub BERT backbone.
        predicates: the predicate list; link head `p` is `predicates[p]`.
        head: `"efficient_global_pointer"` (the default: cheap per predicate)
            or `"global_pointer"`, for all three matrices.
        head_size: the size of each start and end vector.
        pad_id: the padding token id.
    """

    def __init__(
        self,
        backbone,
        predicates: Sequence[str],
        *,
        head: str = "efficient_global_pointer",
        head_size: int = 64,
        pad_id: int = 0,
        name: str = "gplinker_extractor",
        **kwargs,
    ):
        predicates = [str(predicate) for predicate in predicates]
        if not predicates or len(set(predicates)) != len(predicates):
            raise ValueError("predicates must name at least one predicate, each once.")
        if head not in _HEADS:
            raise ValueError(f"head must be one of {', '.join(map(repr, _HEADS))}; got {head!r}.")
        dtype = backbone.dtype_policy
        layer = _HEADS[head]
        padding_mask_layer = PaddingMask(int(pad_id), dtype=dtype, name="padding_mask")
        entities = layer(2, int(head_size), dtype=dtype, name="entity_spans")
        head_links = layer(len(predicates), int(head_size), rope=False, tril_mask=False, dtype=dtype, name="head_pairs")
        tail_links = layer(len(predicates), int(head_size), rope=False, tril_mask=False, dtype=dtype, name="tail_pairs")

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
        padding_mask = padding_mask_layer(token_ids)
        sequence = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})[
            "sequence_output"
        ]
        outputs = {
            name: FlattenSpans(dtype="float32", name=name)(matrix(sequence, mask=padding_mask))
            for name, matrix in zip(OUTPUTS, (entities, head_links, tail_links))
        }
        super().__init__(
            backbone=backbone,
            inputs={"token_ids": token_ids, "segment_ids": segment_ids},
            outputs=outputs,
            name=name,
            **kwargs,
        )
        self.predicates = predicates
        self.head = head
        self.head_size = int(head_size)
        self.pad_id = int(pad_id)

    def compile(self, optimizer="adam", **kwargs):
        """Compile with the sparse loss on each of the three outputs unless `loss` is passed.

        As in Su's GPLinker, the loss is summed over the heads (the two entity
        roles, and every predicate's head and tail links) and averaged over the
        batch: Keras averages each output's loss over batch and heads, so the
        default `loss_weights` are the head counts. Averaged over heads instead,
        a predicate's links would get `1 / predicates` of the encoder's gradient
        (WebNLG*, 171 predicates: dev F1 0.000 after 3 epochs, recall 0.009 on
        the LIC2019 sample after 8).
        """
        kwargs.setdefault("loss", {name: SparseMultilabelCategoricalCrossentropy() for name in OUTPUTS})
        heads = len(self.predicates)
        kwargs.setdefault("loss_weights", {"entities": 2.0, "head_links": float(heads), "tail_links": float(heads)})
        super().compile(optimizer=optimizer, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "predicates": list(self.predicates),
            "head": self.head,
            "head_size": self.head_size,
            "pad_id": self.pad_id,
        }


def _links(target) -> tuple:
    """`(entity spans, head links, tail links)` of one `RelationTargets` (token positions)."""
    entities, heads, tails = set(), set(), set()
    for subject, found in target.objects.items():
        entities.add((0, subject[0], subject[1]))
        for predicate, start, end in found:
            entities.add((1, start, end))
            heads.add((predicate, subject[0], start))
            tails.add((predicate, subject[1], end))
    return sorted(entities), sorted(heads), sorted(tails)


class GPLinkerFeed(SpanFeed):
    """Training batches for `GPLinkerExtractor` from `RelationTargets` (`toolkit.relations.targets`).

    `({"token_ids", "segment_ids"}, {"entities", "head_links", "tail_links"})`
    with int32 sparse targets (`toolkit.spans.span_targets`); batching as
    `toolkit.spans.feed.SpanFeed`. Sentences with no usable triple are left out.
    """

    def __init__(self, targets, batch_size: int, num_predicates: int, **options):
        targets = [target for target in targets if target.objects]
        if not targets:
            raise ValueError("No training sentence has a usable triple (see the TargetReport).")
        super().__init__(targets, batch_size, **options)
        self.num_predicates = int(num_predicates)
        self.links = [_links(target) for target in self.rows]
        self.widths = [most_spans_per_head([found[kind] for found in self.links]) for kind in range(3)]

    def output_signature(self):
        """The `tf.TensorSpec`s of a batch, sequence and span axes unknown (`toolkit.distribution.feed_stream`)."""
        import tensorflow as tf

        sequence = tf.TensorSpec((None, None), tf.int32)
        links = tf.TensorSpec((None, self.num_predicates, None), tf.int32)
        y = {"entities": tf.TensorSpec((None, 2, None), tf.int32), "head_links": links, "tail_links": links}
        return {"token_ids": sequence, "segment_ids": sequence}, y

    def targets(self, indices, seq_len):
        links = [self.links[i] for i in indices]

        def matrix(kind, heads, ordered):
            found = [row[kind] for row in links]
            return span_targets(found, heads, seq_len, ordered=ordered, width=self.widths[kind])

        return {
            "entities": matrix(0, 2, True),
            "head_links": matrix(1, self.num_predicates, False),
            "tail_links": matrix(2, self.num_predicates, False),
        }


#: Per sentence, at most this many subjects and as many objects (the highest-scoring), and at most
#: `MAX_TRIPLES_PER_TEXT` triples (the highest head + tail link scores). A trained model finds a few;
#: the limits bound the time and memory of decoding an untrained one early in training, whose every
#: span may score above 0 (CoNLL04 after one epoch on 64 sentences: 20 million triples in 64 texts).
MAX_ENTITIES_PER_TEXT = 64
MAX_TRIPLES_PER_TEXT = 256


def decode_gplinker_spans(extractor, tokenizer, texts, *, maxlen=None, batch_size=32, threshold=0.0):
    """Per text, the `SpanTriple`s GPLinker finds (Su's pairing; see the module docstring), in subject, object,
    predicate order; past the limits above, the highest-scoring. Batches of similar length, padded to a few
    fixed shapes (`toolkit.batching.batches_by_length`)."""
    from toolkit.relations.decoder import SpanTriple

    texts = list(texts)
    encodings = tokenizer.encode_batch(texts, maxlen=maxlen)
    results = [[] for _ in texts]
    limit = maxlen if maxlen is not None else getattr(tokenizer, "maxlen", None)
    batches = batches_by_length(encodings, batch_size, extractor.pad_id, limit=limit)
    for rows, batch, token_ids, segment_ids in batches:
        seq_len = token_ids.shape[1]
        outputs = predict_batch(extractor, {"token_ids": token_ids, "segment_ids": segment_ids})
        shape = (len(token_ids), -1, seq_len, seq_len)  # the first len(batch) rows are the batch's
        entities = np.asarray(outputs["entities"]).reshape(shape)
        heads = np.asarray(outputs["head_links"]).reshape(shape)
        tails = np.asarray(outputs["tail_links"]).reshape(shape)
        lengths = [len(encoding.token_ids) for encoding in batch]
        for position, spans in enumerate(decode_spans(entities[: len(batch)], threshold, lengths=lengths)):
            encoding = batch[position]
            chars = {}
            for _, start, end in spans:
                if (start, end) not in chars:
                    chars[(start, end)] = tokenizer.token_span_to_char_span(encoding, start, end)
            roles = [
                _highest([(s, e) for head, s, e in spans if head == role and chars[(s, e)] is not None],
                         entities[position, role], MAX_ENTITIES_PER_TEXT)
                for role in (0, 1)
            ]  # fmt: skip
            if not roles[0] or not roles[1]:
                continue
            text = encoding.text
            found = []
            for subject, obj, predicate in _linked_pairs(heads[position], tails[position], *roles, threshold):
                s_chars, o_chars = chars[subject], chars[obj]
                found.append(
                    SpanTriple(
                        text[s_chars[0] : s_chars[1]],
                        extractor.predicates[predicate],
                        text[o_chars[0] : o_chars[1]],
                        s_chars,
                        o_chars,
                    )
                )
            results[rows[position]] = list(dict.fromkeys(found))
    return results


def _highest(spans, scores, limit):
    """`spans` (`(start, end)`, in order), or past `limit` the `limit` with the highest `scores[start, end]`, in
    order."""
    if len(spans) <= limit:
        return spans
    ranked = np.argsort([-scores[start, end] for start, end in spans], kind="stable")[:limit]
    return [spans[index] for index in sorted(ranked)]


def _linked_pairs(heads, tails, subjects, objects, threshold=0.0, limit=MAX_TRIPLES_PER_TEXT):
    """`(subject, object, predicate)` for every subject and object span linked by both their heads and their
    tails (both scores > `threshold`), subject by subject; past `limit`, those with the highest sum of the two.
    `heads`, `tails`: one sentence's `[predicates, seq, seq]` link scores.

    Every pair is looked up at once: `heads[:, subject starts x object starts]` and the same for the ends.

    >>> links = np.full((2, 4, 4), -1.0); links[1, 0, 2] = 3.0
    >>> _linked_pairs(links, links, [(0, 0), (1, 1)], [(2, 2)])
    [((0, 0), (2, 2), 1)]
    """
    if not subjects or not objects:
        return []
    subject_spans, object_spans = np.array(subjects)[:, None, :], np.array(objects)[None, :, :]
    # [subjects, objects, predicates]: the head link of each pair, and its tail link
    head_scores = heads[:, subject_spans[..., 0], object_spans[..., 0]].transpose(1, 2, 0)
    tail_scores = tails[:, subject_spans[..., 1], object_spans[..., 1]].transpose(1, 2, 0)
    linked = np.nonzero((head_scores > threshold) & (tail_scores > threshold))
    if len(linked[0]) > limit:
        totals = head_scores[linked] + tail_scores[linked]
        keep = np.sort(np.argsort(-totals, kind="stable")[:limit])
        linked = tuple(index[keep] for index in linked)
    return [(subjects[i], objects[j], int(predicate)) for i, j, predicate in zip(*linked)]
