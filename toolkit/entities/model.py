"""`EntityRecognizer`: a text encoder with a GlobalPointer head, one score for every typed span.

Inputs `token_ids` and `segment_ids` (int32 `[batch, seq]`); output the span
scores flattened to `[batch, types, seq * seq]` (span `(start, end)` is class
`start * seq + end`), trained with the sparse multilabel categorical
crossentropy against int32 `[batch, types, max_spans]` targets
(`toolkit.spans.span_targets`). A span is predicted when its score is > 0;
`start > end` and padding score -inf.

```python
from toolkit.encoders import load_encoder
from toolkit.entities.model import EntityRecognizer

encoder = load_encoder(spec, maxlen=128)
model = EntityRecognizer(encoder.backbone, ["LOC", "ORG", "PER"], pad_id=encoder.tokenizer.pad_id)
model.compile(optimizer="adam")      # the sparse loss is the default
```
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from toolkit.losses import SparseMultilabelCategoricalCrossentropy
from toolkit.models import TaskModel
from toolkit.relations.layers import PaddingMask
from toolkit.spans import EfficientGlobalPointer, FlattenSpans, GlobalPointer

__all__ = ["HEADS", "EntityRecognizer"]

HEADS = {"global_pointer": GlobalPointer, "efficient_global_pointer": EfficientGlobalPointer}


@keras.saving.register_keras_serializable(package="toolkit")
class EntityRecognizer(TaskModel):
    """Encoder + GlobalPointer over `types` (see the module docstring).

    Args:
        backbone: a keras-hub BERT backbone (`toolkit.encoders.load_encoder`).
        types: the entity types; head `t` scores spans of `types[t]`.
        head: `"global_pointer"` or `"efficient_global_pointer"`.
        head_size: the size of each start and end vector (even).
        pad_id: the padding token id.
    """

    def __init__(
        self,
        backbone,
        types: Sequence[str],
        *,
        head: str = "global_pointer",
        head_size: int = 64,
        pad_id: int = 0,
        name: str = "entity_recognizer",
        **kwargs,
    ):
        if isinstance(types, str):
            raise ValueError("types must be a list of names, not one string.")
        types = [str(entity_type) for entity_type in types]
        if not types:
            raise ValueError("types must name at least one entity type.")
        if len(set(types)) != len(types):
            raise ValueError("types must not repeat a name.")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}; got {head!r}.")
        dtype = backbone.dtype_policy
        padding_mask_layer = PaddingMask(int(pad_id), dtype=dtype, name="padding_mask")
        span_head = HEADS[head](len(types), int(head_size), dtype=dtype, name="spans")
        flatten = FlattenSpans(dtype="float32", name="span_scores")

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
        padding_mask = padding_mask_layer(token_ids)
        sequence = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})[
            "sequence_output"
        ]
        scores = flatten(span_head(sequence, mask=padding_mask))
        super().__init__(
            backbone=backbone,
            inputs={"token_ids": token_ids, "segment_ids": segment_ids},
            outputs=scores,
            name=name,
            **kwargs,
        )

        self.span_head = span_head
        self.types = types
        self.head = head
        self.head_size = int(head_size)
        self.pad_id = int(pad_id)

    def compile(self, optimizer="adam", **kwargs):
        """Compile with the sparse loss over the flattened spans unless `loss` is passed."""
        kwargs.setdefault("loss", SparseMultilabelCategoricalCrossentropy())
        super().compile(optimizer=optimizer, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "types": list(self.types),
            "head": self.head,
            "head_size": self.head_size,
            "pad_id": self.pad_id,
        }
