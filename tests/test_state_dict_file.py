"""The one checkpoint-file reader (`trainers.state_dict_file.load_state_dict_file`), used by the
JOSH3R / MASt3R loaders and the CUT3R / Human3R converters: stand-in files, no torch needed."""

import types

import numpy as np
import pytest

from josh_jax.errors import InputError
from trainers.convert import ConversionError
from trainers.cut3r import convert as cut3r_convert
from trainers.state_dict_file import load_state_dict_file, save_state_dict_npz


class _FakeTensor:
    """The few torch.Tensor methods the reader uses (a bfloat16 tensor converts to float32)."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def detach(self):
        return self

    def cpu(self):
        return self

    def is_floating_point(self):
        return self.value.dtype.kind == "f"

    def float(self):
        return _FakeTensor(self.value.astype(np.float32))

    def numpy(self):
        return self.value


@pytest.fixture
def fake_torch(monkeypatch):
    """A stand-in `torch` whose `load` returns `fake_torch.checkpoint` and records its flags."""
    calls = []

    def load(path, map_location, weights_only):
        calls.append(dict(path=path, map_location=map_location, weights_only=weights_only))
        return module.checkpoint

    module = types.SimpleNamespace(load=load, calls=calls, checkpoint=None)
    monkeypatch.setitem(__import__("sys").modules, "torch", module)
    return module


def test_npz_round_trip_is_exact(tmp_path):
    state = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.int64(7)}
    path = tmp_path / "sd.npz"
    save_state_dict_npz(path, state)
    back = load_state_dict_file(path)
    assert sorted(back) == ["a.weight", "b"]
    np.testing.assert_array_equal(back["a.weight"], state["a.weight"])
    assert back["b"] == 7 and [p.name for p in tmp_path.iterdir()] == ["sd.npz"]


def test_wrapper_keys_and_weights_only_are_the_callers(tmp_path, fake_torch):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"stand-in")
    inner = {"w": _FakeTensor(np.ones(3, np.float16)), "n": _FakeTensor(np.arange(2))}
    other = {"x": _FakeTensor(np.zeros(1))}
    fake_torch.checkpoint = {"model": inner, "state_dict": other, "args": object()}
    # The JOSH3R default: 'state_dict' first, weights only.
    assert list(load_state_dict_file(path)) == ["x"]
    assert fake_torch.calls[-1] == dict(path=str(path), map_location="cpu", weights_only=True)
    # The CUT3R / Human3R layout: 'model' first, pickled args beside the weights.
    got = cut3r_convert.load_checkpoint_file(path)
    assert fake_torch.calls[-1]["weights_only"] is False
    assert got["w"].dtype == np.float32 and got["n"].dtype == np.arange(2).dtype
    np.testing.assert_array_equal(got["w"], np.ones(3))
    # A flat checkpoint is its own state dict.
    fake_torch.checkpoint = {"only": _FakeTensor(np.ones(2))}
    assert list(load_state_dict_file(path)) == ["only"]


def test_refusals_share_one_format_in_the_callers_class(tmp_path, fake_torch):
    missing = tmp_path / "missing.npz"
    with pytest.raises(ConversionError, match=r"missing\.npz: \(file\): expected an existing "
                                              r"checkpoint file, found file not found"):
        load_state_dict_file(missing)
    with pytest.raises(cut3r_convert.CheckpointMismatchError) as info:
        cut3r_convert.load_checkpoint_file(missing)
    assert isinstance(info.value, InputError) and info.value.found == "file not found"
    other = tmp_path / "x.onnx"
    other.write_bytes(b"")
    with pytest.raises(ConversionError, match="unknown checkpoint extension '.onnx'"):
        load_state_dict_file(other)
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"stand-in")
    fake_torch.checkpoint = [1, 2]
    with pytest.raises(cut3r_convert.CheckpointMismatchError, match="found list"):
        cut3r_convert.load_checkpoint_file(path)
