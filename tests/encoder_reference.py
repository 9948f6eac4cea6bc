"""A NumPy BERT forward pass and writers for tiny checkpoints, for the encoder tests.

Weights are held under Google's checkpoint names (`bert/encoder/layer_0/...`),
so the same dict feeds the NumPy reference, a Google-format TensorFlow
checkpoint and (renamed) a Hugging Face safetensors file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.special import erf

SCOPE = "bert/"


def tiny_bert_config(vocab_size: int, **overrides) -> dict:
    """A `bert_config.json` dict for a two-layer model small enough for tests."""
    config = {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 16,
        "initializer_range": 0.02,
        "intermediate_size": 32,
        "max_position_embeddings": 24,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }
    config.update(overrides)
    return config


def random_bert_weights(config: dict, seed: int = 0, scale: float = 0.3) -> dict:
    """Random weights under Google's names; `scale` is large enough that the
    tanh and erf forms of GELU give visibly different outputs."""
    rng = np.random.default_rng(seed)
    hidden = config["hidden_size"]
    intermediate = config["intermediate_size"]

    def normal(*shape):
        return (rng.standard_normal(shape) * scale).astype("float32")

    def layer_norm(name):
        return {
            f"{name}/gamma": (1.0 + normal(hidden)).astype("float32"),
            f"{name}/beta": normal(hidden),
        }

    weights = {
        "embeddings/word_embeddings": normal(config["vocab_size"], hidden),
        "embeddings/position_embeddings": normal(config["max_position_embeddings"], hidden),
        "embeddings/token_type_embeddings": normal(config["type_vocab_size"], hidden),
        **layer_norm("embeddings/LayerNorm"),
        "pooler/dense/kernel": normal(hidden, hidden),
        "pooler/dense/bias": normal(hidden),
    }
    for index in range(config["num_hidden_layers"]):
        layer = f"encoder/layer_{index}"
        for part in ("query", "key", "value"):
            weights[f"{layer}/attention/self/{part}/kernel"] = normal(hidden, hidden)
            weights[f"{layer}/attention/self/{part}/bias"] = normal(hidden)
        weights[f"{layer}/attention/output/dense/kernel"] = normal(hidden, hidden)
        weights[f"{layer}/attention/output/dense/bias"] = normal(hidden)
        weights.update(layer_norm(f"{layer}/attention/output/LayerNorm"))
        weights[f"{layer}/intermediate/dense/kernel"] = normal(hidden, intermediate)
        weights[f"{layer}/intermediate/dense/bias"] = normal(intermediate)
        weights[f"{layer}/output/dense/kernel"] = normal(intermediate, hidden)
        weights[f"{layer}/output/dense/bias"] = normal(hidden)
        weights.update(layer_norm(f"{layer}/output/LayerNorm"))
    return {SCOPE + name: value for name, value in weights.items()}


def write_google_checkpoint(folder: Path, weights: dict, config: dict, vocab_tokens=None, extra=None) -> str:
    """Write `bert_config.json`, `bert_model.ckpt.*` (and `vocab.txt`) as Google does.

    `tf.compat.v1.train.Saver` keeps the variable names exactly, as in Google's
    own checkpoints; `extra` adds variables such as the MLM head or Adam slots.
    """
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bert_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if vocab_tokens is not None:
        (folder / "vocab.txt").write_text("".join(token + "\n" for token in vocab_tokens), encoding="utf-8")
    variables = {
        name: tf.Variable(value, name=name.replace("/", "_")) for name, value in {**weights, **(extra or {})}.items()
    }
    saver = tf.compat.v1.train.Saver(var_list=variables)
    prefix = str(folder / "bert_model.ckpt")
    saver.save(None, prefix, write_meta_graph=False)
    return prefix


def google_to_hf(weights: dict, prefix: str = "bert.") -> dict:
    """Google-named weights -> Hugging Face `BertModel` state dict (Linear weights
    are stored `[out, in]`, LayerNorm as weight/bias)."""
    state = {}
    for name, value in weights.items():
        name = name[len(SCOPE) :]
        parts = name.split("/")
        if parts[0] == "encoder":
            parts = ["encoder", "layer", parts[1].split("_")[1]] + parts[2:]
        leaf = parts[-1]
        is_embedding = leaf.endswith("_embeddings")
        if leaf == "kernel":
            value, leaf = value.T, "weight"
        elif leaf == "gamma":
            leaf = "weight"
        elif leaf == "beta":
            leaf = "bias"
        if is_embedding:
            parts.append("weight")
        else:
            parts[-1] = leaf
        state[prefix + ".".join(parts)] = np.ascontiguousarray(value)
    return state


def hf_to_google(state: dict) -> dict:
    """The inverse of `google_to_hf`: a Hugging Face BERT state dict (with or
    without the `bert.` prefix) -> Google names; other tensors are dropped."""
    weights = {}
    for name, value in state.items():
        name = name[len("bert.") :] if name.startswith("bert.") else name
        parts = name.split(".")
        if parts[0] not in ("embeddings", "encoder", "pooler") or parts[-1] not in (
            "weight",
            "bias",
        ):
            continue
        if parts[0] == "encoder":
            parts = ["encoder", f"layer_{parts[2]}"] + parts[3:]
        leaf = parts.pop()
        value = np.asarray(value, dtype="float32")
        if parts[-1].endswith("_embeddings"):
            pass
        elif parts[-1] == "LayerNorm":
            parts.append("gamma" if leaf == "weight" else "beta")
        elif leaf == "weight":
            parts.append("kernel")
            value = value.T
        else:
            parts.append("bias")
        weights[SCOPE + "/".join(parts)] = np.ascontiguousarray(value)
    return weights


def _layer_norm(x, gamma, beta, epsilon=1e-12):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def gelu_erf(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def numpy_bert(weights: dict, config: dict, token_ids, segment_ids, padding_mask):
    """The original BERT forward pass in float64 NumPy (exact erf GELU).

    Returns `(sequence_output [batch, length, hidden], pooled_output [batch, hidden])`.
    """
    w = {name[len(SCOPE) :]: np.asarray(value, "float64") for name, value in weights.items()}
    token_ids = np.asarray(token_ids)
    segment_ids = np.asarray(segment_ids)
    mask = np.asarray(padding_mask, "float64")
    batch, length = token_ids.shape
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = hidden // heads

    x = (
        w["embeddings/word_embeddings"][token_ids]
        + w["embeddings/position_embeddings"][:length][None]
        + w["embeddings/token_type_embeddings"][segment_ids]
    )
    x = _layer_norm(x, w["embeddings/LayerNorm/gamma"], w["embeddings/LayerNorm/beta"])
    attention_bias = (1.0 - mask)[:, None, None, :] * -1e9

    def split_heads(tensor):
        return tensor.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

    for index in range(config["num_hidden_layers"]):
        p = f"encoder/layer_{index}/"
        query, key, value = (
            split_heads(x @ w[p + f"attention/self/{part}/kernel"] + w[p + f"attention/self/{part}/bias"])
            for part in ("query", "key", "value")
        )
        scores = query @ key.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + attention_bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probabilities = scores / scores.sum(-1, keepdims=True)
        context = (probabilities @ value).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        attention = context @ w[p + "attention/output/dense/kernel"] + w[p + "attention/output/dense/bias"]
        x = _layer_norm(
            x + attention,
            w[p + "attention/output/LayerNorm/gamma"],
            w[p + "attention/output/LayerNorm/beta"],
        )
        inner = gelu_erf(x @ w[p + "intermediate/dense/kernel"] + w[p + "intermediate/dense/bias"])
        output = inner @ w[p + "output/dense/kernel"] + w[p + "output/dense/bias"]
        x = _layer_norm(x + output, w[p + "output/LayerNorm/gamma"], w[p + "output/LayerNorm/beta"])
    pooled = np.tanh(x[:, 0] @ w["pooler/dense/kernel"] + w["pooler/dense/bias"])
    return x, pooled
