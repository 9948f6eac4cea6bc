"""`TaskModel`, the base of the task models: a tiny task through save and load with its backbone."""

import keras
import numpy as np
import pytest

from toolkit.classification.model import MultilabelTextClassifier
from toolkit.encoders.backbone import BertEncoderBackbone
from toolkit.entities.model import EntityRecognizer
from toolkit.models import TaskModel
from toolkit.relations.gplinker import GPLinkerExtractor
from toolkit.relations.model import RelationExtractor
from toolkit.saved import SavedModelError

VOCABULARY_SIZE = 30


@keras.saving.register_keras_serializable(package="toolkit_tests")
class TokenTagger(TaskModel):
    """The docstring's example task, with a `compile` of its own as the toolkit's task models have."""

    def __init__(self, backbone, num_tags, **kwargs):
        inputs = {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in ("token_ids", "segment_ids", "padding_mask")
        }
        sequence = backbone(inputs)["sequence_output"]
        tags = keras.layers.Dense(num_tags, dtype="float32", name="tags")(sequence)
        super().__init__(backbone=backbone, inputs=inputs, outputs=tags, **kwargs)
        self.num_tags = int(num_tags)

    def compile(self, optimizer="adam", **kwargs):
        kwargs.setdefault("loss", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        super().compile(optimizer=optimizer, **kwargs)

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}


def tiny_backbone():
    return BertEncoderBackbone(
        vocabulary_size=VOCABULARY_SIZE,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        dropout=0.0,
        activation="gelu",
    )


def batch():
    token_ids = np.random.default_rng(0).integers(1, VOCABULARY_SIZE, size=(4, 8)).astype("int32")
    padding_mask = np.ones_like(token_ids)
    padding_mask[1, 5:] = 0
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}
    return inputs, token_ids % 3


def numpy(values):
    return [keras.ops.convert_to_numpy(value) for value in values]


@pytest.mark.parametrize(
    "task_class", [MultilabelTextClassifier, RelationExtractor, GPLinkerExtractor, EntityRecognizer]
)
def test_the_task_models_share_the_base(task_class):
    assert issubclass(task_class, TaskModel)
    for owned_by_the_base in ("from_config", "load", "compile_from_config"):
        assert owned_by_the_base not in vars(task_class)


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # the unused [CLS] pooler
def test_a_task_model_round_trips_with_its_backbone(tmp_path):
    tagger = TokenTagger(tiny_backbone(), num_tags=3, name="tagger")
    tagger.compile(keras.optimizers.Adam(1e-3))
    inputs, tags = batch()
    tagger.fit(inputs, tags, epochs=1, verbose=0)  # the optimizer state is saved with it
    path = tmp_path / "tagger.keras"
    tagger.save(path)

    loaded = TokenTagger.load(path)
    config = loaded.get_config()
    assert config == tagger.get_config()
    assert set(config) == {"backbone", "name", "trainable", "num_tags"}
    assert (config["name"], config["num_tags"]) == ("tagger", 3)
    assert type(loaded.backbone) is BertEncoderBackbone and loaded.backbone.activation == "gelu"
    assert loaded.get_layer(loaded.backbone.name) is loaded.backbone
    np.testing.assert_allclose(
        *numpy([tagger.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0)]), atol=1e-5
    )
    # Compiled through its own `compile` (Keras's `compile_from_config` skips one), the optimizer state restored.
    assert isinstance(loaded.loss, keras.losses.SparseCategoricalCrossentropy)
    for before, after in zip(tagger.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_allclose(*numpy([before, after]), atol=1e-6)

    assert not TokenTagger.load(path, compile=False).compiled
    assert type(TaskModel.load(path)) is TokenTagger  # the base loads any task model
    again = TokenTagger.from_config({**config, "backbone": loaded.backbone})  # a backbone object is taken as it is
    assert again.backbone is loaded.backbone and again.get_config() == config


def test_load_refuses_another_task_model(tmp_path):
    path = tmp_path / "tagger.keras"
    TokenTagger(tiny_backbone(), num_tags=2).save(path)
    with pytest.raises(SavedModelError, match="holds a TokenTagger, not a MultilabelTextClassifier"):
        MultilabelTextClassifier.load(path)
    with pytest.raises(SavedModelError, match="not found"):
        TokenTagger.load(tmp_path / "missing.keras")


def test_the_classifier_loads_through_the_base(tmp_path):
    classifier = MultilabelTextClassifier(tiny_backbone(), num_labels=4, pooling="max", dropout=0.3)
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    loaded = MultilabelTextClassifier.load(path, compile=False)
    assert loaded.get_config() == classifier.get_config()
    assert (loaded.num_labels, loaded.pooling, loaded.dropout) == (4, "max", 0.3)
    inputs, _ = batch()
    np.testing.assert_allclose(*numpy([classifier(inputs), loaded(inputs)]), atol=1e-5)
