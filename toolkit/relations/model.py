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

Three Keras models share the layers:

- `training_model`: inputs `token_ids`, `segment_ids`, `subject_span` and (with
  `loss_in="layer"`) `subject_labels`, `object_labels`; outputs
  `{"subject_logits", "object_logits"}`. With `loss_in="layer"` the loss and
  the `subject_micro_f1` / `object_micro_f1` metrics are built into the graph by
  `toolkit.layers.MultilabelMetrics`: compile with an optimizer only. With
  `loss_in="compile"` the labels are fed as `y` and `compile` adds the loss
  (this works on JAX, where the metrics layer cannot run).
- `subject_model`: `token_ids`, `segment_ids` -> `{"subject_logits",
  "sequence_output"}`: the encoder, run once per sentence when decoding.
- `object_model`: `sequence_output`, `padding_mask`, `subject_span` ->
  `object_logits`: the head only, for any number of subjects.

A fourth, `encoder_object_model` (`token_ids`, `segment_ids`, `subject_span`
-> `object_logits`), re-runs the encoder; it exists for the bert4keras-style
reference decode.

Example:

```python
encoder = load_encoder({"source": "random", "vocab": "vocab.txt"}, maxlen=128)
extractor = RelationExtractor(encoder.backbone, predicates)
extractor.compile(keras.optimizers.Adam(2e-5))
extractor.training_model.fit(RelationDataFeed(targets, batch_size=16), epochs=3)
extractor.save("relation.keras")
extractor = RelationExtractor.load("relation.keras")
```
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras

from toolkit.layers import ConditionalLayerNormalization, MultilabelMetrics
from toolkit.losses import MultilabelCategoricalCrossentropy
from toolkit.metrics import MultilabelF1Score
from toolkit.relations.layers import PaddingMask, SpanPointer, SubjectGather

__all__ = ["RelationExtractor"]

LOSS_IN = ("layer", "compile")

# Layer names: the models are rebuilt from a loaded training model by these.
PADDING_MASK = "padding_mask"
SUBJECT_LOGITS = "subject_logits"
OBJECT_LOGITS = "object_logits"
SUBJECT_GATHER = "subject_gather"
SUBJECT_CONDITION = "subject_condition"


class RelationExtractor:
    """A semi-pointer semi-tagging relation extractor over a BERT backbone.

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
            TensorFlow and PyTorch) or `"compile"` (loss through
            `compile(loss=...)`, labels fed as `y`; any backend, JAX included).
        condition_hidden_units: if set, the subject vector goes through a
            dense layer of this size inside the conditional layer norm.
        subject_loss_weight, object_loss_weight: multipliers of the mean loss
            per row of each head; None means the number of rows (2 and
            `2 * len(predicates)`), i.e. the loss summed over rows.
        metrics: metric names reported for each head (see
            `toolkit.layers.metric_from_name`), prefixed `subject_` / `object_`.
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
    ):
        if loss_in not in LOSS_IN:
            raise ValueError(f"loss_in must be 'layer' or 'compile'; got {loss_in!r}.")
        predicates = [str(name) for name in predicates]
        if not predicates:
            raise ValueError("predicates must name at least one predicate.")
        if len(set(predicates)) != len(predicates):
            raise ValueError("predicates must not repeat a name.")
        self.backbone = backbone
        self.predicates = predicates
        self.pad_id = int(pad_id)
        self.loss_in = loss_in
        self.subject_loss_weight = 2.0 if subject_loss_weight is None else float(subject_loss_weight)
        self.object_loss_weight = (
            2.0 * len(predicates) if object_loss_weight is None else float(object_loss_weight)
        )
        self.metric_names = list(metrics)
        self.padding_mask = PaddingMask(self.pad_id, name=PADDING_MASK)
        self.subject_head = SpanPointer(name=SUBJECT_LOGITS)
        self.subject_gather = SubjectGather(name=SUBJECT_GATHER)
        self.subject_condition = ConditionalLayerNormalization(
            hidden_units=condition_hidden_units, name=SUBJECT_CONDITION
        )
        self.object_head = SpanPointer(len(predicates), labels=predicates, name=OBJECT_LOGITS)
        self.training_model = self._build_training_model()
        self._build_inference_models()

    # --- Graphs ----------------------------------------------------------------

    def _encoder_inputs(self):
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
        return token_ids, segment_ids

    def _encode(self, token_ids, segment_ids):
        padding_mask = self.padding_mask(token_ids)
        outputs = self.backbone(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
        )
        return outputs["sequence_output"], padding_mask

    def _objects(self, sequence, padding_mask, subject_span):
        condition = self.subject_gather(sequence, subject_span)
        conditioned = self.subject_condition(sequence, condition)
        return self.object_head(conditioned, padding_mask)

    def _build_training_model(self):
        token_ids, segment_ids = self._encoder_inputs()
        subject_span = keras.Input((2,), dtype="int32", name="subject_span")
        sequence, padding_mask = self._encode(token_ids, segment_ids)
        subject_logits = self.subject_head(sequence, padding_mask)
        object_logits = self._objects(sequence, padding_mask, subject_span)
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "subject_span": subject_span}
        if self.loss_in == "layer":
            subject_labels = keras.Input((2, None), name="subject_labels")
            object_labels = keras.Input((len(self.predicates), 2, None), name="object_labels")
            inputs.update(subject_labels=subject_labels, object_labels=object_labels)
            subject_logits = MultilabelMetrics(
                self.metric_names, prefix="subject_", loss_weight=self.subject_loss_weight,
                name="subject_metrics",
            )(subject_logits, subject_labels)
            object_logits = MultilabelMetrics(
                self.metric_names, prefix="object_", loss_weight=self.object_loss_weight,
                name="object_metrics",
            )(object_logits, object_labels)
        outputs = {"subject_logits": subject_logits, "object_logits": object_logits}
        return keras.Model(inputs, outputs, name="relation_extractor")

    def _build_inference_models(self):
        token_ids, segment_ids = self._encoder_inputs()
        sequence, padding_mask = self._encode(token_ids, segment_ids)
        self.subject_model = keras.Model(
            {"token_ids": token_ids, "segment_ids": segment_ids},
            {"subject_logits": self.subject_head(sequence, padding_mask), "sequence_output": sequence},
            name="relation_subject_model",
        )
        hidden = self.backbone.hidden_dim
        sequence_input = keras.Input((None, hidden), name="sequence_output")
        mask_input = keras.Input((None,), dtype="int32", name="padding_mask")
        span_input = keras.Input((2,), dtype="int32", name="subject_span")
        self.object_model = keras.Model(
            {"sequence_output": sequence_input, "padding_mask": mask_input, "subject_span": span_input},
            self._objects(sequence_input, mask_input, span_input),
            name="relation_object_model",
        )
        token_ids, segment_ids = self._encoder_inputs()
        span_input = keras.Input((2,), dtype="int32", name="subject_span")
        sequence, padding_mask = self._encode(token_ids, segment_ids)
        self.encoder_object_model = keras.Model(
            {"token_ids": token_ids, "segment_ids": segment_ids, "subject_span": span_input},
            self._objects(sequence, padding_mask, span_input),
            name="relation_encoder_object_model",
        )

    # --- Training ----------------------------------------------------------------

    def compile(self, optimizer="adam", **kwargs):
        """Compile the training model.

        With `loss_in="layer"` the loss is already in the graph (`loss=None`);
        with `loss_in="compile"` this adds the loss and `micro_f1` metrics on
        the two outputs, weighted as described in the class docstring. Other
        keyword arguments go to `keras.Model.compile`.
        """
        if self.loss_in == "layer":
            if kwargs.get("loss") is not None:
                raise ValueError("loss_in='layer' puts the loss in the graph; do not pass loss=.")
            self.training_model.compile(optimizer=optimizer, loss=None, **kwargs)
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
                "subject_logits": [MultilabelF1Score(average="micro", name="micro_f1")],
                "object_logits": [MultilabelF1Score(average="micro", name="micro_f1")],
            },
        )
        self.training_model.compile(optimizer=optimizer, **kwargs)

    # --- Saving ------------------------------------------------------------------

    def save(self, path):
        """Save the training model as a `.keras` file (predicates included)."""
        self.training_model.save(path)

    @classmethod
    def load(cls, path, compile: bool = True):
        """Load a `.keras` file written by `save` and rebuild the three models."""
        import toolkit.encoders.backbone  # noqa: F401  (registers BertEncoderBackbone)

        return cls.from_training_model(keras.saving.load_model(path, compile=compile))

    @classmethod
    def from_training_model(cls, model):
        """Wrap a (loaded) training model, sharing its layers and weights."""
        import keras_hub

        extractor = cls.__new__(cls)
        backbones = [layer for layer in model.layers if isinstance(layer, keras_hub.models.Backbone)]
        if len(backbones) != 1:
            raise ValueError("The model is not a RelationExtractor training model: it has no BERT backbone.")
        extractor.backbone = backbones[0]
        extractor.padding_mask = model.get_layer(PADDING_MASK)
        extractor.subject_head = model.get_layer(SUBJECT_LOGITS)
        extractor.subject_gather = model.get_layer(SUBJECT_GATHER)
        extractor.subject_condition = model.get_layer(SUBJECT_CONDITION)
        extractor.object_head = model.get_layer(OBJECT_LOGITS)
        extractor.predicates = list(extractor.object_head.labels)
        extractor.pad_id = extractor.padding_mask.pad_id
        names = [layer.name for layer in model.layers]
        extractor.loss_in = "layer" if "subject_metrics" in names else "compile"
        if extractor.loss_in == "layer":
            subject_metrics = model.get_layer("subject_metrics")
            extractor.subject_loss_weight = subject_metrics.loss_weight
            extractor.object_loss_weight = model.get_layer("object_metrics").loss_weight
            extractor.metric_names = list(subject_metrics.metric_names)
        else:
            extractor.subject_loss_weight = 2.0
            extractor.object_loss_weight = 2.0 * len(extractor.predicates)
            extractor.metric_names = ["micro_f1"]
        extractor.training_model = model
        extractor._build_inference_models()
        return extractor
