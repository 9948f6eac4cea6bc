"""The multi-label text classifier: a backbone, pooling, dropout and a logits layer."""

import keras

from toolkit.layers import SequencePooling
from toolkit.models import TaskModel

__all__ = ["MultilabelTextClassifier"]


@keras.saving.register_keras_serializable(package="toolkit")
class MultilabelTextClassifier(TaskModel):
    """Logits for every label of a text, from a BERT backbone.

    Outputs raw logits (float32 even under mixed precision): train with
    `MultilabelCategoricalCrossentropy` and predict a label when its logit is
    above 0. Saving and loading are `TaskModel`'s.

    Args:
        backbone: a keras-hub BERT backbone (from `toolkit.encoders.load_encoder`).
        num_labels: number of labels.
        pooling: "cls", "mean" or "max" over the sequence output.
        dropout: dropout rate before the logits layer.

    Example:

    ```python
    encoder = load_encoder(spec, maxlen=128)
    model = MultilabelTextClassifier(encoder.backbone, num_labels=90, pooling="mean")
    model.compile(optimizer="adam", loss=MultilabelCategoricalCrossentropy())
    model.save("classifier.keras")
    model = MultilabelTextClassifier.load("classifier.keras")
    ```
    """

    def __init__(self, backbone, num_labels, pooling="cls", dropout=0.1, **kwargs):
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        }
        sequence = backbone(inputs)["sequence_output"]
        pooled = SequencePooling(pooling, name="pooling")(sequence, inputs["padding_mask"])
        pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
        logits = keras.layers.Dense(num_labels, dtype="float32", name="logits")(pooled)
        super().__init__(backbone=backbone, inputs=inputs, outputs=logits, **kwargs)
        self.num_labels = int(num_labels)
        self.pooling = pooling
        self.dropout = float(dropout)

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "pooling": self.pooling, "dropout": self.dropout}
