"""A keras-hub BERT backbone whose feedforward activation is the checkpoint's own."""

from __future__ import annotations

import keras
import keras_hub

from toolkit.encoders.errors import EncoderLoadError

# Names a checkpoint may give its activation (`hidden_act`), mapped to ours.
ACTIVATION_ALIASES = {
    "gelu": "gelu",  # Google BERT and Hugging Face "gelu": exact, with erf.
    "gelu_python": "gelu",
    "gelu_approximate": "gelu_approximate",  # keras-hub's BertBackbone default.
    "gelu_new": "gelu_approximate",  # Hugging Face names of the tanh form.
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


@keras.saving.register_keras_serializable(package="toolkit")
def gelu_approximate(x):
    """GELU, tanh approximation (as keras-hub's BERT and Hugging Face "gelu_new")."""
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {
    "gelu": keras.activations.gelu,  # approximate=False by default: erf.
    "gelu_approximate": gelu_approximate,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
}


def canonical_activation(name: str) -> str:
    """Our name for a checkpoint's `hidden_act`, e.g. `"gelu_new"` -> `"gelu_approximate"`."""
    canonical = ACTIVATION_ALIASES.get(str(name).lower())
    if canonical is None:
        raise EncoderLoadError(
            f"Unsupported architecture: activation {name!r} (hidden_act). Supported: "
            f"{', '.join(sorted(ACTIVATION_ALIASES))}."
        )
    return canonical


@keras.saving.register_keras_serializable(package="toolkit")
class BertEncoderBackbone(keras_hub.models.BertBackbone):
    """`keras_hub.models.BertBackbone` with the feedforward activation as a setting.

    keras-hub's BERT always uses the tanh approximation of GELU; Google's BERT
    and Hugging Face's `"gelu"` use the exact (erf) form. This backbone applies
    `activation` to every transformer layer and keeps it in `get_config`, so it
    survives `save_to_preset`, `.keras` files and `from_config`.

    Args:
        activation: `"gelu"` (exact, the BERT default), `"gelu_approximate"`
            (tanh), `"relu"` or `"silu"`; checkpoint names such as
            `"gelu_new"` are accepted too.
        The other arguments are those of `keras_hub.models.BertBackbone`.

    Example:

    ```python
    backbone = BertEncoderBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
                                   hidden_dim=32, intermediate_dim=64,
                                   max_sequence_length=16, activation="gelu")
    outputs = backbone({"token_ids": ids, "segment_ids": segments,
                        "padding_mask": mask})
    outputs["sequence_output"]  # [batch, length, 32]
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        activation="gelu",
        dtype=None,
        **kwargs,
    ):
        activation = canonical_activation(activation)
        super().__init__(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            max_sequence_length=max_sequence_length,
            num_segments=num_segments,
            dtype=dtype,
            **kwargs,
        )
        # The functional graph calls each layer again at run time, so swapping
        # the activation of the (already built) intermediate Dense takes effect.
        function = ACTIVATIONS[activation]
        for layer in self.transformer_layers:
            dense = getattr(layer, "_feedforward_intermediate_dense", None)
            if dense is None:
                raise RuntimeError(
                    "This keras-hub version's TransformerEncoder has no "
                    "_feedforward_intermediate_dense; BertEncoderBackbone needs "
                    "updating for it."
                )
            dense.activation = function
            layer.activation = function
        self.activation = activation

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation
        return config
