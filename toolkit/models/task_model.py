"""`TaskModel`: a backbone and a task head as one functional `keras.Model` that saves and loads itself.

This module also registers the toolkit's `BertEncoderBackbone`, so that every
saved task model's backbone can be read back.
"""

from __future__ import annotations

import keras

import toolkit.encoders.backbone  # noqa: F401  (registers BertEncoderBackbone for loading)
from toolkit.saved import SavedModelError, load_saved_model

__all__ = ["TaskModel"]


class TaskModel(keras.Model):
    """The base of the task models: a backbone plus a head, as keras-hub's `Task`.

    The base owns what every task model does the same way:

    - `get_config` holds the serialized backbone, `name` and `trainable`; a
      subclass adds its own constructor arguments (`{**super().get_config(),
      ...}`). It does not chain to `keras.Model.get_config`, whose functional
      graph the subclasses' constructors do not take.
    - `from_config` deserializes the backbone and calls the subclass's
      constructor, which builds the head again; the weights are then read.
    - `load(path, compile=True)` reads a `.keras` file written by `save` and
      checks that it holds this class (`TaskModel.load` takes any task model).
    - `compile_from_config` compiles with the saved arguments through the
      subclass's own `compile` (Keras's own version skips an overridden
      `compile`) and builds the optimizer, so its saved state is restored.

    A subclass builds its graph, passes it here with the backbone, then stores
    its other arguments and returns them from `get_config`. The subclass is
    registered with `keras.saving.register_keras_serializable`; the base is
    not, as it is never saved on its own.

    Args:
        backbone: the encoder the head reads, a keras-hub backbone (for
            instance `toolkit.encoders.load_encoder(...).backbone`).
        inputs, outputs: the functional graph, as for `keras.Model`; the
            subclass's constructor builds them again on loading.
        **kwargs: `name`, `trainable` and the rest of `keras.Model`'s.

    Example:

    ```python
    @keras.saving.register_keras_serializable(package="my_project")
    class TokenTagger(TaskModel):
        def __init__(self, backbone, num_tags, **kwargs):
            inputs = {
                name: keras.Input((None,), dtype="int32", name=name)
                for name in ("token_ids", "segment_ids", "padding_mask")
            }
            sequence = backbone(inputs)["sequence_output"]
            tags = keras.layers.Dense(num_tags, dtype="float32", name="tags")(sequence)
            super().__init__(backbone=backbone, inputs=inputs, outputs=tags, **kwargs)
            self.num_tags = int(num_tags)

        def get_config(self):
            return {**super().get_config(), "num_tags": self.num_tags}

    tagger = TokenTagger(load_encoder(spec, maxlen=128).backbone, num_tags=9)
    tagger.save("tagger.keras")
    tagger = TokenTagger.load("tagger.keras")
    ```
    """

    def __init__(self, *, backbone, inputs, outputs, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Set after `super().__init__`: the torch backend tracks no layer before it.
        self.backbone = backbone

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    @classmethod
    def load(cls, path, compile: bool = True):
        """The task model in a `.keras` file written by `save`; `SavedModelError` if it is not a `cls`.

        With `compile=True` it comes back compiled as it was saved (loss,
        loss weights, metrics, optimizer state); with `compile=False` it is
        ready for prediction, and `compile` can be called again to train.
        """
        model = load_saved_model(path, compile=compile)
        if not isinstance(model, cls):
            raise SavedModelError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}.")
        return model

    def compile_from_config(self, config):
        """Compile with a saved compile config through this class's `compile`, then build the optimizer."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
