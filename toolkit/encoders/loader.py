"""`load_encoder`: a BERT backbone and its tokenizer from what the user holds."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import keras
import keras_hub

from toolkit.encoders.backbone import BertEncoderBackbone, canonical_activation
from toolkit.encoders.bert_checkpoint import (
    BERT_CONFIG_FILE,
    check_bert_config,
    embedding_rows,
    find_checkpoint_prefix,
    load_bert_checkpoint,
    read_json,
)
from toolkit.encoders.errors import EncoderLoadError
from toolkit.encoders.pytorch_weights import PytorchWeightsError, read_pytorch_weights
from toolkit.encoders.spec import EncoderSpec
from toolkit.encoders.tokenizer import (
    WordPieceTokenizer,
    find_vocabulary,
    folder_lowercase,
)

CONFIG_FILE = "config.json"
SIZE_FIELDS = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_sequence_length")


@dataclass(frozen=True)
class LoadedEncoder:
    """A loaded encoder: the backbone, its tokenizer and the resolved spec.

    Attributes:
        backbone: a `keras_hub.models.BertBackbone` (a `BertEncoderBackbone`
            unless a keras-hub preset held a plain one); call it on
            `{"token_ids", "segment_ids", "padding_mask"}` to get
            `{"sequence_output", "pooled_output"}`.
        tokenizer: the `WordPieceTokenizer` of the checkpoint, truncating to the
            `maxlen` passed to `load_encoder` by default.
        spec: the spec with everything filled in: the detected `source`,
            absolute `path` and `vocab`, the casing, and the sizes of the model.

    Example:

    ```python
    encoder = load_encoder({"source": "auto", "path": "chinese_L-12_H-768_A-12"})
    inputs = encoder.tokenizer.to_model_inputs(encoder.tokenizer.encode_batch(texts))
    outputs = encoder.backbone(inputs)
    ```
    """

    backbone: keras_hub.models.BertBackbone
    tokenizer: WordPieceTokenizer
    spec: EncoderSpec


def load_encoder(spec: Union[EncoderSpec, dict], maxlen: Optional[int] = None) -> LoadedEncoder:
    """Load the BERT encoder an `EncoderSpec` describes.

    Sources: a Google / bert4keras TensorFlow checkpoint folder
    (`bert_config.json`, `bert_model.ckpt.*`, `vocab.txt`), a Hugging Face folder
    (`config.json`, `model.safetensors` or `pytorch_model.bin`, `vocab.txt` /
    `tokenizer.json`), a keras-hub preset folder (`save_to_preset`), or a random
    initialisation. `source="auto"` tells the first three apart from the files.
    The feedforward activation is the checkpoint's own (`hidden_act`; the exact
    erf GELU for BERT), not keras-hub's tanh approximation.

    Args:
        spec: an `EncoderSpec` or the dict of one.
        maxlen: the longest input, special tokens included, that the pipeline
            will feed; an error if the model has fewer position embeddings. The
            tokenizer truncates to it by default (else to the model's maximum).

    Example:

    ```python
    encoder = load_encoder({"source": "huggingface", "path": "all-MiniLM-L6-v2"},
                           maxlen=128)
    encoder = load_encoder(EncoderSpec(source="random", vocab="vocab.txt",
                                       num_layers=2, hidden_dim=128, num_heads=2,
                                       intermediate_dim=512))
    ```
    """
    if isinstance(spec, dict):
        spec = EncoderSpec.model_validate(spec)
    elif not isinstance(spec, EncoderSpec):
        raise TypeError(f"spec must be an EncoderSpec or a dict; got {type(spec).__name__}.")
    if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 2):
        raise ValueError(f"maxlen must be an integer of at least 2; got {maxlen!r}.")
    source = spec.source if spec.source != "auto" else detect_source(spec)
    loaders = {
        "bert_checkpoint": _load_bert_checkpoint,
        "huggingface": _load_huggingface,
        "preset": _load_preset,
        "random": _load_random,
    }
    return loaders[source](spec, maxlen)


def detect_source(spec: EncoderSpec) -> str:
    """The source `"auto"` resolves to, from the files at `spec.path`."""
    if spec.path is None:
        if spec.vocab is not None:
            return "random"
        raise EncoderLoadError(
            "The encoder spec has no `path`: set `path` to a checkpoint folder "
            "(Google BERT, Hugging Face or keras-hub preset), or set source: random "
            "with `vocab` for a randomly initialised encoder."
        )
    path = _existing_path(spec.path)
    if path.is_file():
        raise EncoderLoadError(f"{path} is a file; set `path` to the folder that holds the checkpoint.")
    if not path.is_dir():
        return "bert_checkpoint"  # A checkpoint prefix such as .../bert_model.ckpt.
    config_file = path / CONFIG_FILE
    if config_file.is_file():
        config = read_json(config_file)
        if "registered_name" in config:
            return "preset"
        if "model_type" in config:
            return "huggingface"
    if (path / BERT_CONFIG_FILE).is_file():
        if find_checkpoint_prefix(path) is not None:
            return "bert_checkpoint"
        raise EncoderLoadError(
            f"{path} has bert_config.json but no checkpoint (bert_model.ckpt.index "
            "and .data files). Copy the checkpoint files there, or set source: "
            "random to train this architecture from random weights."
        )
    if find_checkpoint_prefix(path) is not None:
        raise EncoderLoadError(
            f"{path} has a TensorFlow checkpoint but no bert_config.json; put the "
            "bert_config.json that came with the checkpoint beside it."
        )
    found = sorted(entry.name for entry in path.iterdir())[:20]
    raise EncoderLoadError(
        f"{path} holds neither a Google BERT checkpoint (bert_config.json, "
        "bert_model.ckpt.*, vocab.txt) nor a Hugging Face model (config.json with "
        "model_type, model.safetensors, vocab.txt) nor a keras-hub preset "
        f"(config.json, model.weights.h5). Found: {', '.join(found) or 'nothing'}. "
        "Point `path` at such a folder, or use source: random with `vocab`."
    )


# --- One loader per source ------------------------------------------------------


def _load_bert_checkpoint(spec: EncoderSpec, maxlen: Optional[int]) -> LoadedEncoder:
    if spec.path is None:
        raise EncoderLoadError(
            "source: bert_checkpoint needs `path`, the folder with bert_config.json, bert_model.ckpt.* and vocab.txt."
        )
    path = _existing_path(spec.path)
    if path.is_dir():
        folder = path
        prefix = find_checkpoint_prefix(folder)
        if prefix is None:
            raise EncoderLoadError(
                f"{folder} has no TensorFlow checkpoint (bert_model.ckpt.index and "
                ".data files); point `path` at the unzipped Google BERT folder."
            )
    else:
        folder, prefix = path.parent, str(path)
    config_file = folder / BERT_CONFIG_FILE
    if not config_file.is_file():
        raise EncoderLoadError(
            f"{folder} has no bert_config.json; put the bert_config.json that came with the checkpoint beside it."
        )
    config = read_json(config_file)
    check_bert_config(config, str(config_file))
    _check_maxlen(maxlen, config["max_position_embeddings"], str(config_file))
    tokenizer = _make_tokenizer(spec, folder, maxlen, config["max_position_embeddings"])
    _check_vocabulary(tokenizer, embedding_rows(prefix), prefix)
    backbone = BertEncoderBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=spec.dropout,
        max_sequence_length=config["max_position_embeddings"],
        num_segments=config.get("type_vocab_size", 2),
        activation=canonical_activation(config.get("hidden_act", "gelu")),
    )
    load_bert_checkpoint(backbone, prefix)
    return _loaded(spec, "bert_checkpoint", path, backbone, tokenizer)


def _load_huggingface(spec: EncoderSpec, maxlen: Optional[int]) -> LoadedEncoder:
    if spec.path is None:
        raise EncoderLoadError(
            "source: huggingface needs `path`, the folder with config.json, "
            "model.safetensors and vocab.txt or tokenizer.json."
        )
    folder = _existing_path(spec.path)
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise EncoderLoadError(
            f"{folder} has no config.json; a Hugging Face model folder holds "
            "config.json, model.safetensors and vocab.txt."
        )
    config = read_json(config_file)
    check_bert_config(config, str(config_file))
    _check_maxlen(maxlen, config["max_position_embeddings"], str(config_file))
    tokenizer = _make_tokenizer(spec, folder, maxlen, config["max_position_embeddings"])
    _check_vocabulary(tokenizer, config["vocab_size"], str(config_file))
    activation = canonical_activation(config.get("hidden_act", "gelu"))
    with _safetensors_folder(folder) as weights_folder:
        converted = keras_hub.models.BertBackbone.from_preset(
            str(weights_folder),
            num_segments=config.get("type_vocab_size", 2),
            dropout=spec.dropout,
        )
    backbone = BertEncoderBackbone(
        vocabulary_size=converted.vocabulary_size,
        num_layers=converted.num_layers,
        num_heads=converted.num_heads,
        hidden_dim=converted.hidden_dim,
        intermediate_dim=converted.intermediate_dim,
        dropout=spec.dropout,
        max_sequence_length=converted.max_sequence_length,
        num_segments=converted.num_segments,
        activation=activation,
    )
    backbone.set_weights(converted.get_weights())
    del converted
    return _loaded(spec, "huggingface", folder, backbone, tokenizer)


def _load_preset(spec: EncoderSpec, maxlen: Optional[int]) -> LoadedEncoder:
    if spec.path is None:
        raise EncoderLoadError("source: preset needs `path`, a folder written by save_to_preset.")
    folder = _existing_path(spec.path)
    config_file = folder / CONFIG_FILE
    config = read_json(config_file) if config_file.is_file() else {}
    if "registered_name" not in config:
        raise EncoderLoadError(
            f"{folder} is not a keras-hub preset (no config.json with "
            "registered_name); save one with backbone.save_to_preset(folder)."
        )
    backbone_class = keras.saving.get_registered_object(config["registered_name"])
    if backbone_class is None or not issubclass(backbone_class, keras_hub.models.BertBackbone):
        raise EncoderLoadError(
            f"Unsupported architecture {config['registered_name']!r} in {folder}: "
            "only BERT backbones (keras_hub.models.BertBackbone) are supported."
        )
    max_positions = config.get("config", {}).get("max_sequence_length", 512)
    _check_maxlen(maxlen, max_positions, str(config_file))
    tokenizer = _make_tokenizer(spec, folder, maxlen, max_positions)
    _check_vocabulary(tokenizer, config.get("config", {}).get("vocabulary_size"), str(config_file))
    backbone = keras_hub.models.BertBackbone.from_preset(str(folder), dropout=spec.dropout)
    return _loaded(spec, "preset", folder, backbone, tokenizer)


def _load_random(spec: EncoderSpec, maxlen: Optional[int]) -> LoadedEncoder:
    sizes = {
        "num_layers": spec.num_layers,
        "hidden_dim": spec.hidden_dim,
        "num_heads": spec.num_heads,
        "intermediate_dim": spec.intermediate_dim,
        "max_sequence_length": spec.max_sequence_length,
    }
    num_segments = 2
    activation = "gelu"
    folder = None
    config_vocab_size = None
    if spec.path is not None:
        folder = _existing_path(spec.path)
        candidates = [folder / name for name in (BERT_CONFIG_FILE, CONFIG_FILE)]
        config_file = next((file for file in candidates if file.is_file()), None)
        if config_file is None:
            raise EncoderLoadError(
                f"source: random with `path` reads the sizes from bert_config.json "
                f"(or config.json), but {folder} has neither; drop `path` and give "
                "the sizes and `vocab` in the spec instead."
            )
        config = read_json(config_file)
        check_bert_config(config, str(config_file))
        sizes = {
            "num_layers": config["num_hidden_layers"],
            "hidden_dim": config["hidden_size"],
            "num_heads": config["num_attention_heads"],
            "intermediate_dim": config["intermediate_size"],
            "max_sequence_length": config["max_position_embeddings"],
        }
        num_segments = config.get("type_vocab_size", 2)
        activation = canonical_activation(config.get("hidden_act", "gelu"))
        config_vocab_size = config["vocab_size"]
    elif spec.vocab is None:
        raise EncoderLoadError(
            "source: random needs `vocab`, the path of a WordPiece vocab.txt (or "
            "`path`, a folder with bert_config.json and vocab.txt)."
        )
    if sizes["hidden_dim"] % sizes["num_heads"]:
        raise EncoderLoadError(
            f"hidden_dim={sizes['hidden_dim']} is not divisible by "
            f"num_heads={sizes['num_heads']}; pick sizes where it is."
        )
    _check_maxlen(maxlen, sizes["max_sequence_length"], "the encoder spec")
    tokenizer = _make_tokenizer(spec, folder, maxlen, sizes["max_sequence_length"])
    if config_vocab_size is not None:
        _check_vocabulary(tokenizer, config_vocab_size, str(folder))
    backbone = BertEncoderBackbone(
        vocabulary_size=tokenizer.vocabulary_size,
        dropout=spec.dropout,
        num_segments=num_segments,
        activation=activation,
        **sizes,
    )
    return _loaded(spec, "random", folder, backbone, tokenizer)


# --- Shared steps ---------------------------------------------------------------


def _existing_path(path: str) -> Path:
    resolved = Path(path).expanduser().resolve()
    if resolved.exists():
        return resolved
    if Path(f"{resolved}.index").is_file():
        return resolved  # A TensorFlow checkpoint prefix.
    raise EncoderLoadError(f"Encoder path {path} does not exist; set `path` to the checkpoint folder.")


def _check_maxlen(maxlen: Optional[int], max_positions: int, where: str) -> None:
    if maxlen is not None and maxlen > max_positions:
        raise EncoderLoadError(
            f"maxlen={maxlen} exceeds max_position_embeddings={max_positions} of "
            f"{where}: the model has no position embeddings past {max_positions}. "
            f"Use maxlen <= {max_positions} (longer texts are truncated or split "
            "into windows)."
        )


def _make_tokenizer(
    spec: EncoderSpec, folder: Optional[Path], maxlen: Optional[int], max_positions: int
) -> WordPieceTokenizer:
    if spec.vocab is not None:
        vocabulary = Path(spec.vocab).expanduser().resolve()
        if not vocabulary.is_file():
            raise EncoderLoadError(
                f"Vocabulary file {spec.vocab} (encoder `vocab`) does not exist; give "
                "the path of the vocab.txt that came with the checkpoint."
            )
    else:
        vocabulary = find_vocabulary(folder) if folder is not None else None
        if vocabulary is None:
            raise EncoderLoadError(
                f"No vocab.txt in {folder}: put the vocab.txt that came with the "
                "checkpoint there, or set `vocab` in the encoder spec to its path."
            )
    lowercase = spec.lowercase
    if lowercase is None and folder is not None:
        lowercase = folder_lowercase(folder, vocabulary)
    return WordPieceTokenizer(vocabulary, lowercase=lowercase, maxlen=maxlen or max_positions)


def _check_vocabulary(tokenizer: WordPieceTokenizer, embedding_size: Optional[int], where: str) -> None:
    if embedding_size is not None and tokenizer.vocabulary_size != embedding_size:
        raise EncoderLoadError(
            f"The vocabulary has {tokenizer.vocabulary_size} tokens but the word "
            f"embedding matrix of {where} has {embedding_size} rows: the vocab file "
            "does not belong to this checkpoint. Use the vocab.txt that came with "
            "the checkpoint."
        )


def _loaded(
    spec: EncoderSpec,
    source: str,
    path: Optional[Path],
    backbone,
    tokenizer: WordPieceTokenizer,
) -> LoadedEncoder:
    sizes = {
        "num_layers": backbone.num_layers,
        "hidden_dim": backbone.hidden_dim,
        "num_heads": backbone.num_heads,
        "intermediate_dim": backbone.intermediate_dim,
        "max_sequence_length": backbone.max_sequence_length,
    }
    if source != "random" or path is not None:
        ignored = [
            f"{field}={getattr(spec, field)} (the model has {sizes[field]})"
            for field in SIZE_FIELDS
            if field in spec.model_fields_set and getattr(spec, field) != sizes[field]
        ]
        if ignored:
            warnings.warn(
                "The encoder sizes come from the checkpoint; ignoring " + ", ".join(ignored),
                stacklevel=3,
            )
    resolved = spec.model_copy(
        update={
            "source": source,
            "path": str(path) if path is not None else None,
            "vocab": tokenizer.source,
            "lowercase": tokenizer.lowercase,
            **sizes,
        }
    )
    return LoadedEncoder(backbone=backbone, tokenizer=tokenizer, spec=resolved)


class _safetensors_folder:
    """The folder itself when it has safetensors; else a temporary copy with the PyTorch weights
    converted (`read_pytorch_weights`: no torch, nothing in the pickle called), removed on exit."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.temporary: Optional[str] = None

    def __enter__(self) -> Path:
        if (self.folder / "model.safetensors").is_file() or (self.folder / "model.safetensors.index.json").is_file():
            return self.folder
        torch_file = self.folder / "pytorch_model.bin"
        if not torch_file.is_file():
            raise EncoderLoadError(
                f"{self.folder} has no model.safetensors or pytorch_model.bin; "
                "save the model with save_pretrained(..., safe_serialization=True)."
            )
        from safetensors.numpy import save_file

        try:
            state = read_pytorch_weights(torch_file)
        except PytorchWeightsError as error:
            raise EncoderLoadError(str(error)) from error
        arrays = {name: value.astype("float32") if value.dtype.kind == "f" else value for name, value in state.items()}
        self.temporary = tempfile.mkdtemp(prefix="toolkit-hf-")
        save_file(arrays, str(Path(self.temporary) / "model.safetensors"))
        shutil.copy(self.folder / CONFIG_FILE, Path(self.temporary) / CONFIG_FILE)
        return Path(self.temporary)

    def __exit__(self, *exc_info) -> None:
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
