"""Text encoders: load the checkpoints users hold, and tokenize with offsets.

`load_encoder` reads Google / bert4keras TensorFlow checkpoints, Hugging Face
folders, keras-hub presets, or builds a random BERT; `WordPieceTokenizer`
tokenizes fast with character offsets into the original text (Python lists,
or NumPy arrays: `encode_batch_arrays`, an `EncodedBatch`);
`fetch_encoder` downloads a public one (all-MiniLM-L6-v2, Chinese BERT-base)
into the folder the shipped configs read (`python -m toolkit get-encoder`).

Importing the package imports neither Keras nor `tokenizers` (so that
`toolkit.config` can use `EncoderSpec` alone): the tokenizer names import
`tokenizers`, and the loading names (`load_encoder`, `LoadedEncoder`,
`BertEncoderBackbone`) Keras and keras-hub, the first time they are used. Import `toolkit.encoders.backbone` before
deserialising a saved model that holds a `BertEncoderBackbone`.

Example:

```python
from toolkit.encoders import load_encoder

encoder = load_encoder({"source": "auto", "path": "chinese_L-12_H-768_A-12"},
                       maxlen=256)
encodings = encoder.tokenizer.encode_batch(["周杰伦的《晴天》"])
outputs = encoder.backbone(encoder.tokenizer.to_model_inputs(encodings))
```
"""

from importlib import import_module

from toolkit.encoders.errors import EncoderFetchError, EncoderLoadError
from toolkit.encoders.spec import EncoderSpec

_LAZY = {
    "Encoding": "toolkit.encoders.tokenizer",
    "EncodedBatch": "toolkit.encoders.tokenizer",
    "WordPieceTokenizer": "toolkit.encoders.tokenizer",
    "load_encoder": "toolkit.encoders.loader",
    "LoadedEncoder": "toolkit.encoders.loader",
    "detect_source": "toolkit.encoders.loader",
    "BertEncoderBackbone": "toolkit.encoders.backbone",
    "fetch_encoder": "toolkit.encoders.fetch",
}

__all__ = [
    "BertEncoderBackbone",
    "EncodedBatch",
    "Encoding",
    "EncoderFetchError",
    "EncoderLoadError",
    "EncoderSpec",
    "LoadedEncoder",
    "WordPieceTokenizer",
    "detect_source",
    "fetch_encoder",
    "load_encoder",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'toolkit.encoders' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
