"""Read Google / bert4keras BERT TensorFlow checkpoints into a keras-hub backbone.

keras-hub has no loader for the original checkpoint format
(`bert_config.json` + `bert_model.ckpt.*`), so the variables are mapped here by
name: Google's `bert/encoder/layer_0/attention/self/query/kernel` becomes the
backbone variable `transformer_layer_0/self_attention_layer/query/kernel`, with
the attention kernels reshaped per head.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np

from toolkit.encoders.errors import EncoderLoadError

BERT_CONFIG_FILE = "bert_config.json"
DEFAULT_CHECKPOINT_NAME = "bert_model.ckpt"
WORD_EMBEDDINGS = "embeddings/word_embeddings"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EncoderLoadError(f"{path} is not valid JSON: {error}") from error


def find_checkpoint_prefix(directory: Path) -> Optional[str]:
    """The TensorFlow checkpoint prefix in a folder (`.../bert_model.ckpt`), or `None`."""
    if (directory / f"{DEFAULT_CHECKPOINT_NAME}.index").is_file():
        return str(directory / DEFAULT_CHECKPOINT_NAME)
    if (directory / "checkpoint").is_file():
        # The "checkpoint" state file names the latest prefix.
        for line in (directory / "checkpoint").read_text(encoding="utf-8").splitlines():
            if line.startswith("model_checkpoint_path:"):
                name = line.split(":", 1)[1].strip().strip('"')
                prefix = Path(name) if Path(name).is_absolute() else directory / name
                if Path(f"{prefix}.index").is_file():
                    return str(prefix)
    indexes = sorted(directory.glob("*.index"))
    if len(indexes) == 1:
        return str(indexes[0])[: -len(".index")]
    if len(indexes) > 1:
        raise EncoderLoadError(
            f"{directory} holds several checkpoints "
            f"({', '.join(index.name for index in indexes)}); set `path` to the one "
            "to load, e.g. .../bert_model.ckpt."
        )
    return None


def check_bert_config(config: dict, source: str) -> None:
    """Reject checkpoints a BERT backbone cannot hold, saying why."""
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise EncoderLoadError(
            f"Unsupported architecture {model_type!r} in {source}: only BERT "
            "checkpoints load into the BERT backbone. Convert the model to BERT, or "
            "use a BERT checkpoint (e.g. RoBERTa-wwm-ext for Chinese ships as BERT)."
        )
    embedding_size = config.get("embedding_size")
    if embedding_size is not None and embedding_size != config.get("hidden_size"):
        raise EncoderLoadError(
            f"Unsupported architecture in {source}: embedding_size={embedding_size} "
            f"differs from hidden_size={config.get('hidden_size')}, which means "
            "ALBERT (factorised embeddings); ALBERT checkpoints are not supported, "
            "use a BERT checkpoint."
        )
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise EncoderLoadError(
            f"Unsupported architecture in {source}: position_embedding_type="
            f"{position_type!r}; only absolute position embeddings are supported."
        )
    missing = [
        key
        for key in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        if key not in config
    ]
    if missing:
        raise EncoderLoadError(f"{source} lacks {', '.join(missing)}; it is not a BERT config.")


def bert_variable_map(
    num_layers: int, num_heads: int, hidden_dim: int
) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """Backbone variable path -> (Google variable name without scope, transform)."""
    head_dim = hidden_dim // num_heads

    def keep(array):
        return array

    def heads_in(array):  # [hidden, hidden] -> [hidden, heads, head_dim]
        return array.reshape(hidden_dim, num_heads, head_dim)

    def heads_bias(array):  # [hidden] -> [heads, head_dim]
        return array.reshape(num_heads, head_dim)

    def heads_out(array):  # [hidden, hidden] -> [heads, head_dim, hidden]
        return array.reshape(num_heads, head_dim, hidden_dim)

    mapping = {
        "token_embedding/embeddings": (WORD_EMBEDDINGS, keep),
        "position_embedding/embeddings": ("embeddings/position_embeddings", keep),
        "segment_embedding/embeddings": ("embeddings/token_type_embeddings", keep),
        "embeddings_layer_norm/gamma": ("embeddings/LayerNorm/gamma", keep),
        "embeddings_layer_norm/beta": ("embeddings/LayerNorm/beta", keep),
        "pooled_dense/kernel": ("pooler/dense/kernel", keep),
        "pooled_dense/bias": ("pooler/dense/bias", keep),
    }
    for index in range(num_layers):
        ours = f"transformer_layer_{index}"
        google = f"encoder/layer_{index}"
        attention = f"{ours}/self_attention_layer"
        for part in ("query", "key", "value"):
            mapping[f"{attention}/{part}/kernel"] = (
                f"{google}/attention/self/{part}/kernel",
                heads_in,
            )
            mapping[f"{attention}/{part}/bias"] = (
                f"{google}/attention/self/{part}/bias",
                heads_bias,
            )
        mapping[f"{attention}/attention_output/kernel"] = (
            f"{google}/attention/output/dense/kernel",
            heads_out,
        )
        mapping[f"{attention}/attention_output/bias"] = (
            f"{google}/attention/output/dense/bias",
            keep,
        )
        pairs = {
            "self_attention_layer_norm": "attention/output/LayerNorm",
            "feedforward_intermediate_dense": "intermediate/dense",
            "feedforward_output_dense": "output/dense",
            "feedforward_layer_norm": "output/LayerNorm",
        }
        for our_layer, google_layer in pairs.items():
            weights = ("gamma", "beta") if "norm" in our_layer else ("kernel", "bias")
            for weight in weights:
                mapping[f"{ours}/{our_layer}/{weight}"] = (
                    f"{google}/{google_layer}/{weight}",
                    keep,
                )
    return mapping


def open_checkpoint(prefix: str):
    """A reader for a TensorFlow checkpoint and the scope of its BERT variables."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise EncoderLoadError(
            "Reading a Google BERT checkpoint needs TensorFlow (any Keras backend can "
            "run the model): pip install tensorflow-cpu."
        ) from error
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as error:  # TF raises several types for unreadable files.
        raise EncoderLoadError(f"Cannot read the TensorFlow checkpoint {prefix}: {error}") from error
    names = reader.get_variable_to_shape_map()
    if any("inner_group_" in name or "embedding_hidden_mapping_in" in name for name in names):
        raise EncoderLoadError(
            f"Unsupported architecture in {prefix}: the variables are ALBERT's "
            "(shared layer groups); ALBERT checkpoints are not supported, use a BERT "
            "checkpoint."
        )
    scopes = [name[: -len(WORD_EMBEDDINGS)] for name in names if name.endswith(WORD_EMBEDDINGS)]
    if not scopes:
        raise EncoderLoadError(
            f"{prefix} holds no {WORD_EMBEDDINGS} variable, so it is not a BERT "
            "checkpoint (expected names like bert/embeddings/word_embeddings)."
        )
    # Prefer the shortest scope, e.g. "bert/" over an optimizer slot's copy.
    return reader, names, min(scopes, key=len)


def embedding_rows(prefix: str) -> int:
    """The number of rows of the word embedding matrix of a checkpoint."""
    _, names, scope = open_checkpoint(prefix)
    return int(names[scope + WORD_EMBEDDINGS][0])


def load_bert_checkpoint(backbone, prefix: str) -> None:
    """Assign the variables of a Google-format BERT checkpoint to `backbone`.

    Every backbone variable must be found with the right shape; a missing pooler
    (some exported checkpoints drop it) only warns and keeps its random start.
    """
    reader, names, scope = open_checkpoint(prefix)
    mapping = bert_variable_map(backbone.num_layers, backbone.num_heads, backbone.hidden_dim)
    missing_pooler = []
    for variable in backbone.weights:
        if variable.path not in mapping:
            raise EncoderLoadError(f"No checkpoint mapping for backbone variable {variable.path}.")
        name, transform = mapping[variable.path]
        full_name = scope + name
        if full_name not in names:
            if name.startswith("pooler/"):
                missing_pooler.append(full_name)
                continue
            raise EncoderLoadError(
                f"{prefix} has no variable {full_name}; the checkpoint does not match "
                f"bert_config.json (num_hidden_layers={backbone.num_layers}?) or is "
                "not a BERT checkpoint."
            )
        value = transform(np.asarray(reader.get_tensor(full_name)))
        if tuple(value.shape) != tuple(variable.shape):
            raise EncoderLoadError(
                f"{full_name} has shape {tuple(names[full_name])}, which does not fit "
                f"{variable.path} {tuple(variable.shape)}; bert_config.json does not "
                "describe this checkpoint."
            )
        variable.assign(value.astype(variable.dtype))
    if missing_pooler:
        warnings.warn(
            f"{prefix} has no pooler ({', '.join(missing_pooler)}); pooled_output starts from random weights.",
            stacklevel=3,
        )
