"""Pipeline 2: relation (subject, predicate, object) extraction, bert4keras's
semi-pointer semi-tagging model trained with multi-label categorical crossentropy.

- `targets`: gold triples -> token spans and label arrays (`build_targets`).
- `feed`: `RelationDataFeed`, training batches with one sampled subject per sentence.
- `model`: `RelationExtractor` (training, subject and object models).
- `decoder`: `decode_relations` (batched), `decode_per_sentence_bert4keras_style`,
  `find_spans`.
- `evaluation`: triple precision / recall / F1, per predicate, JSON lines output.

`targets`, `decoder` and `evaluation` import without Keras; `RelationDataFeed`
and `RelationExtractor` import Keras the first time they are used.

Example:

```python
from toolkit.relations import RelationExtractor, RelationDataFeed, build_targets, decode_relations

targets, report = build_targets(texts, triples, tokenizer, predicates, maxlen=128)
extractor = RelationExtractor(backbone, predicates, pad_id=tokenizer.pad_id)
extractor.compile("adam")
extractor.fit(RelationDataFeed(targets, batch_size=16), epochs=5)
decode_relations(extractor, tokenizer, dev_texts, maxlen=128)
```
"""

from importlib import import_module

from toolkit.relations.decoder import decode_per_sentence_bert4keras_style, decode_relations, find_spans
from toolkit.relations.evaluation import (
    evaluate_triples,
    per_predicate_scores,
    triple_scores,
    write_predictions_jsonl,
)
from toolkit.relations.targets import RelationTargets, TargetError, TargetReport, build_targets, locate_entity

_LAZY = {
    "RelationDataFeed": "toolkit.relations.feed",
    "RelationExtractor": "toolkit.relations.model",
    "PaddingMask": "toolkit.relations.layers",
    "SpanPointer": "toolkit.relations.layers",
    "SubjectGather": "toolkit.relations.layers",
}

__all__ = [
    "PaddingMask",
    "RelationDataFeed",
    "RelationExtractor",
    "RelationTargets",
    "SpanPointer",
    "SubjectGather",
    "TargetError",
    "TargetReport",
    "build_targets",
    "decode_per_sentence_bert4keras_style",
    "decode_relations",
    "evaluate_triples",
    "find_spans",
    "locate_entity",
    "per_predicate_scores",
    "triple_scores",
    "write_predictions_jsonl",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toolkit.relations' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
