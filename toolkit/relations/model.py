"""`RelationExtractor`: bert4keras's semi-pointer semi-tagging model, trained with this loss.

The model reads a sentence once with a BERT backbone and then:

1. marks subject starts and ends: `subject_logits [batch, 2, seq]`;
2. takes ONE subject's start and end token vectors (`subject_span
   [batch, 2]`), concatenates them (`[batch, 2 * hidden]`) and uses them as
   the condition of a `ConditionalLayerNormalization` over the token vectors;
3. marks, for every predicate, the starts and ends of that subject's objects:
   `object_logits [batch, num_predicates, 2, seq]`.

Sequence positions are the classes of `multilabel_categorical_crossentropy`:
each of the 2 subject rows and the `2 * num_predicates` object rows is one
multi-label problem over the positions, decided by `logit > 0`. Padding
positions hold `-inf` logits, which both the loss and the decoder skip.

The loss is summed over those rows and averaged over the batch (the reduction
of bert4keras's GPLinker): `subject_loss_weight` defaults to 2 and
`object_loss_weight` to `2 * num_predicates`, the row counts, applied to the
row means that the metrics layer (or a compiled Keras loss) computes.

`RelationExtractor` is itself a functional `keras.Model`, the training graph
that `fit` trains. Its inputs are `token_ids`, `segment_ids`,
`subject_span` and (with `loss_in="layer"`) `subject_labels`,
`object_labels`; its outputs `{"subject_logits", "object_logits"}`. With
`loss_in="layer"` the loss and the `subject_micro_f1` / `object_micro_f1`
metrics are built into the graph by `toolkit.layers.MultilabelMetrics`:
compile with an optimizer only. With `loss_in="compile"` the labels are fed as
`y` and `compile` adds the loss (this works on JAX, where the metrics layer
cannot run).

Three inference models share its layers (and so its weights):

- `subject_model`: `token_ids`, `segment_ids` -> `{"subject_logits",
  "sequence_output"}`: the encoder, run once per sentence when decoding.
- `object_model`: `sequence_output`, `padding_mask`, `subject_span` ->
  `object_logits`: the head only, for any number of subjects.
- `encoder_object_model`: `token_ids`, `segment_ids`, `subject_span` ->
  `object_logits`; it re-runs the encoder, for the bert4keras-style reference
  decode.

`save` writes one `.keras` file; its config holds the backbone's config and
every constructor argument, so `load` rebuilds the extractor through
`__init__` (the inference models included) and then reads the weights (and,
with `compile=True`, the compile arguments and optimizer state); both are
`toolkit.models.TaskModel`'s.

Example:

```python
encoder = load_encoder({"source": "random", "vocab": "vocab.txt"}, maxlen=128)
extractor = RelationExtractor(encoder.backbone, predicates, pad_id=encoder.tokenizer.pad_id)
extractor.compile(keras.optimizers.Adam(2e-5))
extractor.fit(RelationDataFeed(targets, batch_size=16), epochs=3)
extractor.save("relation.keras")
extractor = RelationExtractor.load("relation.keras")
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import keras

from toolkit.layers import ConditionalLayerNormalization, MultilabelMetrics, metric_from_name
from toolkit.losses import MultilabelCategoricalCrossentropy
from toolkit.models import TaskModel
from toolkit.relations.layers import PaddingMask, SpanPointer, SubjectGather

__all__ = ["RelationExtractor"]

LOSS_IN = ("layer", "compile")

PADDING_MASK = "padding_mask"
SUBJECT_LOGITS = "subject_logits"
OBJECT_LOGITS = "object_logits"
SUBJECT_GATHER = "subject_gather"
SUBJECT_CONDITION = "subject_condition"


def _encoder_inputs():
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
    return token_ids, segment_ids


def _span_input():
    return keras.Input((2,), dtype="int32", name="subject_span")


def _encode(backbone, padding_mask_layer, token_ids, segment_ids):
    """The token vectors and the padding mask."""
    padding_mask = padding_mask_layer(token_ids)
    outputs = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
    return outputs["sequence_output"], padding_mask


def _objects(subject_gather, subject_condition, object_head, sequence, padding_mask, subject_span):
    """The object logits of one subject per row, from the token vectors."""
    conditioned = subject_condition(sequence, subject_gather(sequence, subject_span))
    return object_head(conditioned, padding_mask)


@keras.saving.register_keras_serializable(package="toolkit")
class RelationExtractor(TaskModel):
    """A semi-pointer semi-tagging relation extractor over a BERT backbone.

    A functional `keras.Model` (the training graph; see the module
    docstring) with `subject_model`, `object_model` and
    `encoder_object_model` sharing its layers. `get_config` holds the
    serialized backbone and every argument below, so a `save` / `load` round
    trip gives back the same extractor.

    The heads take the backbone's dtype policy (as keras-hub's task heads
    do), so that under mixed precision they compute in float16 / bfloat16
    like the encoder; the logits are float32 and the in-graph loss and
    metrics (`loss_in="layer"`) are computed in float32.

    Args:
        backbone: a `keras_hub.models.BertBackbone` (for instance
            `load_encoder(...).backbone`). Its `[CLS]` pooler is unused,
            so Keras warns once per `fit` that `pooled_dense` gets no
            gradient; that is expected. (Freezing it instead would not
            survive a `.keras` round trip: keras-hub rebuilds the backbone
            from its constructor arguments, and the optimizer state would no
            longer match.)
        predicates: the predicate names; their order is the order of the
            object rows and is saved with the model.
        pad_id: the padding token id of the tokenizer.
        loss_in: `"layer"` (loss and metrics inside the training graph,
            TensorFlow and PyTorch) or `"compile"` (loss and metrics through
            `compile`, labels fed as `y`; any backend, JAX included).
        condition_hidden_units: if set, the subject vector goes through a
            dense layer of this size inside the conditional layer norm.
        subject_loss_weight, object_loss_weight: multipliers of the mean loss
            per row of each head; None means the number of rows (2 and
            `2 * len(predicates)`), i.e. the loss summed over rows. The
            config stores the resolved numbers.
        metrics: metric names reported for each head (see
            `toolkit.layers.metric_from_name`), named `subject_<name>` /
            `object_<name>` with `loss_in="layer"` and
            `subject_logits_<name>` / `object_logits_<name>` with
            `loss_in="compile"`.
        name, trainable: as for any Keras model.

    Example:

    ```python
    extractor = RelationExtractor(
        backbone, ["father", "wife"], pad_id=0, loss_in="compile",
        condition_hidden_units=128, metrics=["micro_f1", "macro_f1"],
    )
    extractor.compile(keras.optimizers.Adam(2e-5))
    extractor.fit(RelationDataFeed(targets, batch_size=16, targets_as="y"), epochs=3)
    extractor.save("relation.keras")
    loaded = RelationExtractor.load("relation.keras")
    assert loaded.get_config() == extractor.get_config()
    encoded = loaded.subject_model({"token_ids": token_ids, "segment_ids": segment_ids})
    ```
    """

    def __init__(
        self,
        backbone,
        predicates: Sequence[str],
        *,
        pad_id: int = 0,
        loss_in: str = "layer",
        condition_hidden_units: Optional[int] = None,
        subject_loss_weight: Optional[float] = None,
        object_loss_weight: Optional[float] = None,
        metrics: Sequence[str] = ("micro_f1",),
        name: str = "relation_extractor",
        **kwargs,
    ):
        if loss_in not in LOSS_IN:
            raise ValueError(f"loss_in must be 'layer' or 'compile'; got {loss_in!r}.")
        if isinstance(predicates, str):
            raise ValueError("predicates must be a list of names, not one string.")
        predicates = [str(predicate) for predicate in predicates]
        if not predicates:
            raise ValueError("predicates must name at least one predicate.")
        if len(set(predicates)) != len(predicates):
            raise ValueError("predicates must not repeat a name.")
        metric_names = [metrics] if isinstance(metrics, str) else [str(metric) for metric in metrics]
        for metric in metric_names:
            metric_from_name(metric)  # an unknown name fails here, before anything is built
        pad_id = int(pad_id)
        condition_hidden_units = None if condition_hidden_units is None else int(condition_hidden_units)
        subject_loss_weight = 2.0 if subject_loss_weight is None else float(subject_loss_weight)
        object_loss_weight = 2.0 * len(predicates) if object_loss_weight is None else float(object_loss_weight)

        # === Layers (shared by the training graph and the inference models) ===
        # Locals until `super().__init__`: the torch backend takes no sub-layer before it.
        dtype = backbone.dtype_policy
        padding_mask_layer = PaddingMask(pad_id, dtype=dtype, name=PADDING_MASK)
        subject_head = SpanPointer(dtype=dtype, name=SUBJECT_LOGITS)
        subject_gather = SubjectGather(dtype=dtype, name=SUBJECT_GATHER)
        subject_condition = ConditionalLayerNormalization(
            hidden_units=condition_hidden_units, dtype=dtype, name=SUBJECT_CONDITION
        )
        object_head = SpanPointer(len(predicates), labels=predicates, dtype=dtype, name=OBJECT_LOGITS)

        # === Training graph: this model ===
        token_ids, segment_ids = _encoder_inputs()
        subject_span = _span_input()
        sequence, padding_mask = _encode(backbone, padding_mask_layer, token_ids, segment_ids)
        subject_logits = subject_head(sequence, padding_mask)
        object_logits = _objects(subject_gather, subject_condition, object_head, sequence, padding_mask, subject_span)
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "subject_span": subject_span}
        if loss_in == "layer":
            subject_labels = keras.Input((2, None), name="subject_labels")
            object_labels = keras.Input((len(predicates), 2, None), name="object_labels")
            inputs.update(subject_labels=subject_labels, object_labels=object_labels)
            subject_logits = MultilabelMetrics(
                metric_names,
                prefix="subject_",
                loss_weight=subject_loss_weight,
                dtype="float32",
                name="subject_metrics",
            )(subject_logits, subject_labels)
            object_logits = MultilabelMetrics(
                metric_names,
                prefix="object_",
                loss_weight=object_loss_weight,
                dtype="float32",
                name="object_metrics",
            )(object_logits, object_labels)
        outputs = {"subject_logits": subject_logits, "object_logits": object_logits}
        super().__init__(backbone=backbone, inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.padding_mask = padding_mask_layer
        self.subject_head = subject_head
        self.subject_gather = subject_gather
        self.subject_condition = subject_condition
        self.object_head = object_head

        # === Config ===
        self.predicates = predicates
        self.pad_id = pad_id
        self.loss_in = loss_in
        self.condition_hidden_units = condition_hidden_units
        self.subject_loss_weight = subject_loss_weight
        self.object_loss_weight = object_loss_weight
        self.metric_names = metric_names

        # === Inference models ===
        self._build_inference_models()

    # --- Graphs ----------------------------------------------------------------

    def _encode(self, token_ids, segment_ids):
        return _encode(self.backbone, self.padding_mask, token_ids, segment_ids)

    def _objects(self, sequence, padding_mask, subject_span):
        return _objects(
            self.subject_gather, self.subject_condition, self.object_head, sequence, padding_mask, subject_span
        )

    def _build_inference_models(self):
        token_ids, segment_ids = _encoder_inputs()
        sequence, padding_mask = self._encode(token_ids, segment_ids)
        self.subject_model = keras.Model(
            {"token_ids": token_ids, "segment_ids": segment_ids},
            {"subject_logits": self.subject_head(sequence, padding_mask), "sequence_output": sequence},
            name="relation_subject_model",
        )
        sequence_input = keras.Input((None, self.backbone.hidden_dim), name="sequence_output")
        mask_input = keras.Input((None,), dtype="int32", name="padding_mask")
        span_input = _span_input()
        self.object_model = keras.Model(
            {"sequence_output": sequence_input, "padding_mask": mask_input, "subject_span": span_input},
            self._objects(sequence_input, mask_input, span_input),
            name="relation_object_model",
        )
        token_ids, segment_ids = _encoder_inputs()
        span_input = _span_input()
        sequence, padding_mask = self._encode(token_ids, segment_ids)
        self.encoder_object_model = keras.Model(
            {"token_ids": token_ids, "segment_ids": segment_ids, "subject_span": span_input},
            self._objects(sequence, padding_mask, span_input),
            name="relation_encoder_object_model",
        )

    # --- Training ----------------------------------------------------------------

    def compile(self, optimizer="adam", **kwargs):
        """Compile the extractor (its training graph).

        With `loss_in="layer"` the loss is already in the graph (`loss=None`);
        with `loss_in="compile"` this adds, on the two outputs, the loss
        weighted by `subject_loss_weight` / `object_loss_weight` and the
        `metrics` named at construction, unless `loss`, `loss_weights` or
        `metrics` are passed. Other keyword arguments go to
        `keras.Model.compile`.
        """
        if self.loss_in == "layer":
            if kwargs.get("loss") is not None:
                raise ValueError("loss_in='layer' puts the loss in the graph; do not pass loss=.")
            kwargs["loss"] = None
            super().compile(optimizer=optimizer, **kwargs)
            return
        kwargs.setdefault(
            "loss",
            {
                "subject_logits": MultilabelCategoricalCrossentropy(),
                "object_logits": MultilabelCategoricalCrossentropy(),
            },
        )
        kwargs.setdefault(
            "loss_weights",
            {"subject_logits": self.subject_loss_weight, "object_logits": self.object_loss_weight},
        )
        kwargs.setdefault(
            "metrics",
            {
                "subject_logits": [metric_from_name(name) for name in self.metric_names],
                "object_logits": [metric_from_name(name) for name in self.metric_names],
            },
        )
        super().compile(optimizer=optimizer, **kwargs)

    # --- Saving ------------------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "predicates": list(self.predicates),
            "pad_id": self.pad_id,
            "loss_in": self.loss_in,
            "condition_hidden_units": self.condition_hidden_units,
            "subject_loss_weight": self.subject_loss_weight,
            "object_loss_weight": self.object_loss_weight,
            "metrics": list(self.metric_names),
        }
