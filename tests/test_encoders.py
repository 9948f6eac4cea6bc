"""load_encoder: Google checkpoints, Hugging Face folders, keras-hub presets, random.

Every loaded model is checked against a NumPy BERT forward pass with the exact
(erf) GELU of the original BERT (`encoder_reference.py`).
"""

import json
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.encoder_reference import (
    google_to_hf,
    hf_to_google,
    numpy_bert,
    random_bert_weights,
    tiny_bert_config,
    write_google_checkpoint,
)
from toolkit.encoders import (
    BertEncoderBackbone,
    EncoderLoadError,
    EncoderSpec,
    LoadedEncoder,
    WordPieceTokenizer,
    detect_source,
    load_encoder,
)

TOLERANCE = 1e-4
TOKENS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "hello", "world", "the", "cat", "##s", "sat", "on", "mat", "a", "b", "!", ",", ".",
    "，", "。", "中", "国", "人", "周", "杰", "伦",
]  # fmt: skip
TEXTS = ["hello world, the cats sat!", "中国人，周杰伦。", "a b"]
MINILM_DIR = Path(os.environ.get("MINILM_DIR", "~/.cache/pretrained/all-MiniLM-L6-v2")).expanduser()
M3E_DIR = Path(os.environ.get("M3E_DIR", "~/.cache/pretrained/m3e-small")).expanduser()


def _hf_config(config: dict, **overrides) -> dict:
    hf = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "layer_norm_eps": 1e-12,
        **{key: value for key, value in config.items() if not key.endswith("_prob")},
    }
    hf.update(overrides)
    return hf


def _write_hf_folder(folder: Path, weights: dict, config: dict, **overrides) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(_hf_config(config, **overrides)))
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    # Sentence-transformers style: no "bert." prefix.
    save_file(google_to_hf(weights, prefix=""), str(folder / "model.safetensors"))
    return folder


def _inputs(tokenizer: WordPieceTokenizer, texts=TEXTS, maxlen=None):
    return tokenizer.to_model_inputs(tokenizer.encode_batch(texts, maxlen=maxlen))


def _max_error(encoder: LoadedEncoder, weights: dict, config: dict, texts=TEXTS):
    """Largest |keras - numpy| over real (unpadded) positions and the pooled output."""
    inputs = _inputs(encoder.tokenizer, texts)
    outputs = {name: keras.ops.convert_to_numpy(value) for name, value in encoder.backbone(inputs).items()}
    sequence, pooled = numpy_bert(weights, config, **inputs)
    real = inputs["padding_mask"][..., None].astype(bool)
    sequence_error = np.abs((outputs["sequence_output"] - sequence) * real).max()
    pooled_error = np.abs(outputs["pooled_output"] - pooled).max()
    return float(max(sequence_error, pooled_error))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Google-format checkpoint, with an MLM head and Adam slots as real
    fine-tuned checkpoints have."""
    folder = tmp_path_factory.mktemp("google")
    config = tiny_bert_config(len(TOKENS))
    weights = random_bert_weights(config, seed=1)
    extra = {
        "cls/predictions/output_bias": np.zeros(len(TOKENS), "float32"),
        "bert/embeddings/word_embeddings/adam_m": np.zeros((len(TOKENS), 16), "float32"),
        "global_step": np.array(7, "int64"),
    }
    write_google_checkpoint(folder, weights, config, TOKENS, extra=extra)
    return folder, weights, config


def test_google_checkpoint_matches_numpy_reference(tiny):
    folder, weights, config = tiny
    encoder = load_encoder(EncoderSpec(source="bert_checkpoint", path=str(folder)))
    assert isinstance(encoder.backbone, BertEncoderBackbone)
    assert encoder.backbone.activation == "gelu"
    assert _max_error(encoder, weights, config) < TOLERANCE


def test_reference_tells_the_two_gelus_apart(tiny):
    """keras-hub's own BertBackbone (tanh GELU) misses the reference: the
    fidelity check above can see the activation."""
    import keras_hub

    folder, weights, config = tiny
    encoder = load_encoder({"path": str(folder)})
    sizes = {
        key: encoder.backbone.get_config()[key]
        for key in ("vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                    "intermediate_dim", "max_sequence_length")
    }  # fmt: skip
    plain = keras_hub.models.BertBackbone(**sizes)
    plain.set_weights(encoder.backbone.get_weights())
    approximate = LoadedEncoder(plain, encoder.tokenizer, encoder.spec)
    assert _max_error(approximate, weights, config) > 3 * TOLERANCE


def test_auto_resolves_the_spec(tiny):
    folder, _, config = tiny
    encoder = load_encoder({"path": str(folder)}, maxlen=16)
    spec = encoder.spec
    assert spec.source == "bert_checkpoint"
    assert spec.path == str(folder.resolve())
    assert spec.vocab == str(folder.resolve() / "vocab.txt")
    assert spec.lowercase is True
    assert (spec.num_layers, spec.hidden_dim, spec.num_heads) == (2, 16, 2)
    assert spec.max_sequence_length == config["max_position_embeddings"]
    assert encoder.tokenizer.maxlen == 16
    long_text = " ".join(["hello"] * 40)
    assert len(encoder.tokenizer.encode(long_text).token_ids) == 16


def test_checkpoint_prefix_as_path(tiny):
    folder, weights, config = tiny
    spec = EncoderSpec(path=str(folder / "bert_model.ckpt"))
    assert detect_source(spec) == "bert_checkpoint"
    assert _max_error(load_encoder(spec), weights, config) < TOLERANCE


def test_huggingface_folder_matches_numpy_reference(tiny, tmp_path):
    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "hf", weights, config)
    assert detect_source(EncoderSpec(path=str(folder))) == "huggingface"
    encoder = load_encoder({"source": "huggingface", "path": str(folder)})
    assert encoder.backbone.activation == "gelu"
    assert _max_error(encoder, weights, config) < TOLERANCE


def test_huggingface_tanh_gelu_is_kept(tiny, tmp_path):
    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "hf", weights, config, hidden_act="gelu_new")
    assert load_encoder({"path": str(folder)}).backbone.activation == "gelu_approximate"


def test_huggingface_pytorch_weights_read_without_torch(tiny, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="torch writes the pytorch_model.bin")
    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "hf", weights, config)
    (folder / "model.safetensors").unlink()
    state = {name: torch.from_numpy(value) for name, value in google_to_hf(weights).items()}
    torch.save(state, folder / "pytorch_model.bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails: the loader does without it
    assert _max_error(load_encoder({"path": str(folder)}), weights, config) < TOLERANCE


def test_huggingface_pytorch_weights_that_name_code_are_refused(tiny, tmp_path):
    import pickle
    import zipfile

    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "hf", weights, config)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "the_payload_ran"

    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"embeddings.word_embeddings.weight": RunsCode()}))
    with pytest.raises(EncoderLoadError, match=r"pytorch_model.bin names posix\.mkdir.*refusing to call it"):
        load_encoder({"path": str(folder)})
    assert not marker.exists()


def test_preset_and_keras_file_round_trips_keep_the_activation(tiny, tmp_path):
    folder, weights, config = tiny
    encoder = load_encoder({"path": str(folder)})
    preset = tmp_path / "preset"
    encoder.backbone.save_to_preset(str(preset))
    encoder.tokenizer.save(preset)
    assert json.loads((preset / "config.json").read_text())["config"]["activation"] == "gelu"

    reloaded = load_encoder({"path": str(preset)})
    assert reloaded.spec.source == "preset"
    assert isinstance(reloaded.backbone, BertEncoderBackbone)
    assert reloaded.backbone.activation == "gelu"
    assert reloaded.tokenizer.lowercase is True
    assert _max_error(reloaded, weights, config) < TOLERANCE

    keras_file = tmp_path / "backbone.keras"
    encoder.backbone.save(keras_file)
    restored = keras.saving.load_model(keras_file)
    assert restored.activation == "gelu"
    restored_encoder = LoadedEncoder(restored, encoder.tokenizer, encoder.spec)
    assert _max_error(restored_encoder, weights, config) < TOLERANCE


def test_random_encoder_from_sizes(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    spec = EncoderSpec(source="random", vocab=str(vocab), num_layers=1, hidden_dim=8,
                       num_heads=2, intermediate_dim=16, max_sequence_length=32)  # fmt: skip
    encoder = load_encoder(spec, maxlen=20)
    assert encoder.backbone.vocabulary_size == len(TOKENS)
    assert encoder.backbone.num_layers == 1
    outputs = encoder.backbone(_inputs(encoder.tokenizer))
    assert outputs["sequence_output"].shape[-1] == 8
    assert outputs["pooled_output"].shape == (len(TEXTS), 8)
    # Auto with only a vocabulary is a random encoder too.
    assert detect_source(EncoderSpec(vocab=str(vocab))) == "random"


def test_random_encoder_from_a_bert_config_folder(tiny, tmp_path):
    folder, _, config = tiny
    sizes_only = tmp_path / "sizes"
    sizes_only.mkdir()
    for name in ("bert_config.json", "vocab.txt"):
        shutil.copy(folder / name, sizes_only / name)
    encoder = load_encoder({"source": "random", "path": str(sizes_only)})
    assert encoder.backbone.hidden_dim == config["hidden_size"]
    assert encoder.backbone.max_sequence_length == config["max_position_embeddings"]


# --- Errors a user will hit ------------------------------------------------------


def test_error_folder_with_neither_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EncoderLoadError, match="holds neither a Google BERT checkpoint.*Found: notes.txt"):
        load_encoder({"path": str(tmp_path)})


def test_error_missing_path(tmp_path):
    with pytest.raises(EncoderLoadError, match="does not exist; set `path`"):
        load_encoder({"path": str(tmp_path / "absent")})


def test_error_bert_config_without_checkpoint(tiny, tmp_path):
    folder, _, _ = tiny
    shutil.copy(folder / "bert_config.json", tmp_path / "bert_config.json")
    with pytest.raises(EncoderLoadError, match="no checkpoint.*source: random"):
        load_encoder({"path": str(tmp_path)})


def test_error_checkpoint_without_bert_config(tiny, tmp_path):
    folder, _, _ = tiny
    for path in folder.glob("bert_model.ckpt*"):
        shutil.copy(path, tmp_path / path.name)
    with pytest.raises(EncoderLoadError, match="no bert_config.json"):
        load_encoder({"path": str(tmp_path)})


def test_error_missing_vocab(tiny, tmp_path):
    folder, _, _ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "vocab.txt").unlink()
    with pytest.raises(EncoderLoadError, match="No vocab.txt in .*set `vocab`"):
        load_encoder({"path": str(copy)})
    with pytest.raises(EncoderLoadError, match="Vocabulary file .* does not exist"):
        load_encoder({"path": str(copy), "vocab": str(copy / "nope.txt")})


def test_error_vocab_size_disagrees_with_embeddings(tiny, tmp_path):
    folder, _, _ = tiny
    wrong = tmp_path / "vocab.txt"
    wrong.write_text("".join(t + "\n" for t in TOKENS[:-3]), encoding="utf-8")
    with pytest.raises(EncoderLoadError, match=r"vocabulary has 23 tokens but .* 26 rows.*vocab.txt that came with"):
        load_encoder({"path": str(folder), "vocab": str(wrong)})


def test_error_maxlen_beyond_position_embeddings(tiny):
    folder, _, _ = tiny
    with pytest.raises(EncoderLoadError, match="maxlen=64 exceeds max_position_embeddings=24"):
        load_encoder({"path": str(folder)}, maxlen=64)


def test_error_unsupported_albert(tiny, tmp_path):
    folder, _, config = tiny
    albert = tmp_path / "albert"
    shutil.copytree(folder, albert)
    (albert / "bert_config.json").write_text(json.dumps({**config, "embedding_size": 8}))
    with pytest.raises(EncoderLoadError, match="Unsupported architecture.*ALBERT"):
        load_encoder({"path": str(albert)})


def test_error_unsupported_albert_variables(tiny, tmp_path):
    _, weights, config = tiny
    albert_variable = "bert/encoder/transformer/group_0/inner_group_0/ffn_1/kernel"
    write_google_checkpoint(tmp_path, weights, config, TOKENS, extra={albert_variable: np.zeros((2, 2), "float32")})
    with pytest.raises(EncoderLoadError, match="Unsupported architecture.*ALBERT"):
        load_encoder({"path": str(tmp_path)})


def test_error_unsupported_huggingface_model_type(tiny, tmp_path):
    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "roberta", weights, config, model_type="roberta")
    with pytest.raises(EncoderLoadError, match="Unsupported architecture 'roberta'"):
        load_encoder({"path": str(folder)})


def test_error_unsupported_activation(tiny, tmp_path):
    _, weights, config = tiny
    folder = _write_hf_folder(tmp_path / "hf", weights, config, hidden_act="mish")
    with pytest.raises(EncoderLoadError, match="Unsupported architecture: activation 'mish'"):
        load_encoder({"path": str(folder)})


def test_error_random_without_vocab():
    with pytest.raises(EncoderLoadError, match="source: random needs `vocab`"):
        load_encoder({"source": "random"})


# --- The real pretrained MiniLM ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not (MINILM_DIR / "model.safetensors").is_file(),
    reason=f"all-MiniLM-L6-v2 not in {MINILM_DIR}; run `python -m toolkit get-encoder all-MiniLM-L6-v2` (or set MINILM_DIR)",
)
def test_minilm_huggingface_and_google_format_agree(tmp_path):
    from safetensors.numpy import load_file

    config = json.loads((MINILM_DIR / "config.json").read_text())
    weights = hf_to_google(load_file(str(MINILM_DIR / "model.safetensors")))
    texts = [
        "A man is eating food.",
        "The quick brown fox jumps over the lazy dog; naïve café résumé!",
        "Tokyo 東京 and emoji 😀 are [UNK] here.",
    ]
    from_hf = load_encoder({"path": str(MINILM_DIR)}, maxlen=64)
    assert from_hf.spec.source == "huggingface"
    assert from_hf.backbone.activation == "gelu"
    assert from_hf.tokenizer.lowercase is True
    hf_error = _max_error(from_hf, weights, config, texts)

    google_config = {key: config[key] for key in tiny_bert_config(0)}
    google = tmp_path / "minilm_google"
    write_google_checkpoint(google, weights, google_config)
    shutil.copy(MINILM_DIR / "vocab.txt", google / "vocab.txt")
    from_google = load_encoder({"path": str(google)}, maxlen=64)
    assert from_google.spec.source == "bert_checkpoint"
    google_error = _max_error(from_google, weights, config, texts)

    inputs = _inputs(from_hf.tokenizer, texts)
    assert inputs["token_ids"].tolist() == _inputs(from_google.tokenizer, texts)["token_ids"].tolist()
    hf_outputs = from_hf.backbone(inputs)["sequence_output"]
    google_outputs = from_google.backbone(inputs)["sequence_output"]
    between = np.abs(keras.ops.convert_to_numpy(hf_outputs - google_outputs)).max()
    print(f"MiniLM max |error| vs NumPy: HF {hf_error:.2e}, Google {google_error:.2e}; "
          f"between {between:.2e}")  # fmt: skip
    assert hf_error < TOLERANCE
    assert google_error < TOLERANCE
    assert between < TOLERANCE


# --- The real pretrained m3e-small (Chinese; non-commercial, research use only) -----------------


@pytest.mark.slow
@pytest.mark.skipif(
    not (M3E_DIR / "pytorch_model.bin").is_file(),
    reason=f"m3e-small not in {M3E_DIR}; run `python -m toolkit get-encoder m3e-small` (or set M3E_DIR)",
)
def test_m3e_small_matches_the_numpy_reference():
    """m3e-small as get-encoder leaves it (PyTorch weights whose names lack `bert.`, tokenizer.json)
    against the NumPy forward pass on the weights as torch itself reads them."""
    torch = pytest.importorskip("torch", reason="torch reads the reference weights")
    config = json.loads((M3E_DIR / "config.json").read_text())
    state = torch.load(M3E_DIR / "pytorch_model.bin", map_location="cpu", weights_only=True)
    assert not any(name.startswith("bert.") for name in state)
    weights = hf_to_google({name: tensor.numpy() for name, tensor in state.items()})
    texts = [
        "苹果公司于2007年1月9日发布iPhone，售价４９９美元。",
        "《流浪地球2》由郭帆执导，吴京、Andy Lau主演（2023年上映）",
        "华为Mate 60 Pro搭载麒麟9000S芯片：ＩＢＭ成立于１９１１年。",
    ]
    encoder = load_encoder({"path": str(M3E_DIR)}, maxlen=64)
    assert encoder.spec.source == "huggingface" and encoder.backbone.activation == "gelu"
    assert (encoder.backbone.num_layers, encoder.backbone.hidden_dim, encoder.backbone.num_heads) == (4, 512, 8)
    assert encoder.tokenizer.lowercase is True and encoder.tokenizer.vocabulary_size == 21128
    inputs = _inputs(encoder.tokenizer, texts)
    assert encoder.tokenizer.unk_id not in inputs["token_ids"]  # iPhone, Andy, Lau, Mate, Pro: lower-cased
    sequence = keras.ops.convert_to_numpy(encoder.backbone(inputs)["sequence_output"])
    expected, _ = numpy_bert(weights, config, **inputs)
    real = inputs["padding_mask"][..., None].astype(bool)
    error = float(np.abs((sequence - expected) * real).max())
    print(f"m3e-small max |sequence error| vs NumPy: {error:.2e}")
    assert error < 1e-5
