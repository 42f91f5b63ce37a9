"""State-dict files: read `.pth`/`.pt` (optional torch), `.npz`, `.safetensors`; write `.npz`.

Usage:
  sd = load_state_dict_file("josh3r.pth")   # name -> numpy array
  save_state_dict_npz("josh3r_flax.npz", flax_state_dict(model))   # trainers.convert

Errors are `trainers.convert.ConversionError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from trainers.convert import ConversionError


def _unwrap(obj: Any, path: str) -> Mapping[str, Any]:
    """Finds the state dict inside a loaded checkpoint ({'state_dict': ...}, {'model': ...})."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        if all(isinstance(k, str) for k in obj):
            return obj
    raise ConversionError(f"{path}: expected a state dict (name -> tensor) or a dict with key "
                          f"'state_dict' or 'model', found {type(obj).__name__}")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a state dict: `.pth`/`.pt` (optional torch), `.npz`, `.safetensors`.

    Returns name -> numpy array (torch tensors are converted; bfloat16 becomes float32).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConversionError(f"{path}: file not found")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            import torch  # pylint: disable=import-outside-toplevel
        except ImportError as e:
            raise ConversionError(
                f"{path}: reading PyTorch checkpoints needs torch (pip install torch, CPU build "
                f"is enough), or convert it to .npz/.safetensors elsewhere first") from e
        obj = torch.load(path, map_location="cpu", weights_only=True)
        sd = _unwrap(obj, path)
        out = {}
        for k, v in sd.items():
            if hasattr(v, "detach"):
                v = v.detach().cpu()
                v = (v.float() if v.is_floating_point() else v).numpy()
            out[k] = np.asarray(v)
        return out
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if ext == ".safetensors":
        try:
            from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
        except ImportError as e:
            raise ConversionError(f"{path}: reading .safetensors needs the safetensors package "
                                  f"(pip install safetensors)") from e
        return dict(load_file(path))
    raise ConversionError(f"{path}: unknown checkpoint extension {ext!r}: expected .pth, .pt, "
                          f".npz or .safetensors")


def save_state_dict_npz(path: str | os.PathLike, state: Mapping[str, np.ndarray]) -> None:
    """Writes name -> array to `.npz` via a temporary file in the same folder, then os.replace."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    try:
        np.savez(tmp, **{k: np.asarray(v) for k, v in state.items()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def iter_manifest(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, ...]]:
    """{'name', 'shape'} entries (josh3r_state_dict_manifest.json) -> name -> shape."""
    return {e["name"]: tuple(e["shape"]) for e in entries}
