"""`read_pytorch_weights`: a `pytorch_model.bin` read without torch, refusing any pickle that names code.

torch (a development dependency) writes the files and reads them back as the reference.
"""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from toolkit.encoders.pytorch_weights import PytorchWeightsError, UnsafeWeightsError, read_pytorch_weights

torch = pytest.importorskip("torch", reason="torch writes the reference files")


def _as_numpy(tensor):
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def test_every_dtype_layout_and_shared_storage_reads_as_torch_does(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "float32": torch.randn(3, 5),
        "transposed": base.t(),  # strides (1, 6)
        "slice": base[1:, 2:5],  # an offset into a storage shared with `transposed`
        "float16": torch.randn(4, dtype=torch.float16),
        "bfloat16": torch.randn(4, dtype=torch.bfloat16),
        "float64": torch.randn(2, 2, dtype=torch.float64),
        "int64": torch.arange(512),  # like embeddings.position_ids
        "int32": torch.tensor([1, -2], dtype=torch.int32),
        "int8": torch.tensor([-3, 4], dtype=torch.int8),
        "uint8": torch.tensor([250, 1], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
    }
    torch.save(state, tmp_path / "pytorch_model.bin")
    weights = read_pytorch_weights(tmp_path / "pytorch_model.bin")
    assert list(weights) == list(state)
    for name, tensor in state.items():
        expected = _as_numpy(tensor)
        assert weights[name].dtype == expected.dtype, name
        assert weights[name].shape == expected.shape, name
        np.testing.assert_array_equal(weights[name], expected, err_msg=name)
    assert weights["bfloat16"].dtype == np.float32


def test_a_state_dict_as_transformers_saves_it(tmp_path):
    """An OrderedDict carrying `_metadata`, as `model.state_dict()` gives it."""
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    torch.save(module.state_dict(), tmp_path / "pytorch_model.bin")
    weights = read_pytorch_weights(tmp_path / "pytorch_model.bin")
    assert sorted(weights) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    for name, tensor in module.state_dict().items():
        np.testing.assert_array_equal(weights[name], _as_numpy(tensor))


class _RunsCode:
    """Pickles as a call of os.mkdir, as a malicious file would call anything."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        return (os.mkdir, (self.folder,))


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def test_a_pickle_that_names_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "the_payload_ran"
    path = _zip_with_pickle(tmp_path / "pytorch_model.bin", {"weight": _RunsCode(marker)})
    with pytest.raises(UnsafeWeightsError, match=r"names posix\.mkdir.*refusing to call it"):
        read_pytorch_weights(path)
    assert not marker.exists()
    # The same file through torch.save: a real tensor beside a function is refused as well.
    buffer = io.BytesIO()
    torch.save({"weight": torch.ones(2), "hook": os.getcwd}, buffer)
    (tmp_path / "mixed.bin").write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeWeightsError, match="getcwd"):
        read_pytorch_weights(tmp_path / "mixed.bin")


def test_damaged_and_legacy_files_are_one_error(tmp_path):
    legacy = tmp_path / "legacy.bin"
    torch.save({"weight": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(PytorchWeightsError, match="not a zip archive"):
        read_pytorch_weights(legacy)
    torch.save({"weight": torch.ones(2, 3)}, tmp_path / "whole.bin")
    with zipfile.ZipFile(tmp_path / "whole.bin") as source, zipfile.ZipFile(tmp_path / "cut.bin", "w") as cut:
        for item in source.infolist():
            data = source.read(item)
            cut.writestr(item, data[:8] if "/data/" in item.filename else data)  # 2 of the 6 floats
    with pytest.raises(PytorchWeightsError, match="reaches past its storage of 2 elements"):
        read_pytorch_weights(tmp_path / "cut.bin")
