"""The encoder section of a config: what to load and how."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

EncoderSource = Literal["auto", "random", "bert_checkpoint", "huggingface", "preset"]


class EncoderSpec(BaseModel):
    """Where an encoder comes from.

    `source` picks the loader:

    - `"bert_checkpoint"`: a Google / bert4keras TensorFlow checkpoint folder
      (`bert_config.json`, `bert_model.ckpt.*`, `vocab.txt`).
    - `"huggingface"`: a Hugging Face folder (`config.json`, `model.safetensors`
      or `pytorch_model.bin`, `vocab.txt` / `tokenizer.json`).
    - `"preset"`: a keras-hub preset folder saved with `save_to_preset`.
    - `"random"`: a randomly initialised BERT of the given size; `vocab` is the
      WordPiece vocabulary file (`path` may instead name a folder holding
      `bert_config.json` + `vocab.txt`, whose sizes are then used).
    - `"auto"`: decide from the files in `path`.

    Example:

    ```python
    spec = EncoderSpec(source="random", vocab="vocab.txt", num_layers=2,
                       hidden_dim=128, num_heads=2, intermediate_dim=512)
    ```
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    source: EncoderSource = "auto"
    path: Optional[str] = None
    vocab: Optional[str] = None
    lowercase: Optional[bool] = None
    num_layers: int = Field(2, ge=1)
    hidden_dim: int = Field(128, ge=1)
    num_heads: int = Field(2, ge=1)
    intermediate_dim: int = Field(512, ge=1)
    max_sequence_length: int = Field(512, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
