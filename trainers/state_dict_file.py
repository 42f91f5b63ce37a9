"""State-dict files: read `.pth`/`.pt` (optional torch), `.npz`, `.safetensors`; write `.npz`.

The one reader of checkpoint files for every converter (JOSH3R / MASt3R here and in
`trainers.pretrained`, CUT3R and Human3R in `trainers.cut3r.convert`):

  sd = load_state_dict_file("josh3r.pth")   # name -> numpy array
  sd = load_state_dict_file("cut3r.pth", wrapper_keys=("model", "state_dict"),
                            weights_only=False, error=CheckpointMismatchError)
  save_state_dict_npz("josh3r_flax.npz", flax_state_dict(model))   # trainers.flax_state

Every refusal has the project's one-line form `<file>: <field>: expected ..., found ...`; the
exception class is the caller's (`error`, default `trainers.convert.ConversionError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from josh_jax.errors import format_message
from josh_jax.io.atomic import atomic_write
from trainers.convert import ConversionError

# (file, field, expected, found) -> the exception to raise.
ErrorFactory = Callable[[str, str, str, str], Exception]

TORCH_EXTENSIONS = (".pth", ".pt", ".bin", ".ckpt")


def conversion_error(path: str, field: str, expected: str, found: str) -> ConversionError:
    """The default `error`: a `ConversionError` in the one-line format."""
    return ConversionError(format_message(path, field, expected, found))


def _unwrap(obj: Any, path: str, wrapper_keys: tuple[str, ...],
            error: ErrorFactory) -> Mapping[str, Any]:
    """The state dict inside a loaded checkpoint: obj[key] for the first of `wrapper_keys` that
    holds a mapping, else obj itself when all its keys are names."""
    if isinstance(obj, Mapping):
        for key in wrapper_keys:
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        if all(isinstance(k, str) for k in obj):
            return obj
    wrappers = " or ".join(repr(k) for k in wrapper_keys)
    raise error(path, "(file)", f"a state dict (name -> tensor) or a dict with key {wrappers}",
                type(obj).__name__)


def _read_torch(path: str, wrapper_keys: tuple[str, ...], weights_only: bool,
                error: ErrorFactory) -> dict[str, np.ndarray]:
    """A PyTorch checkpoint through torch (optional dependency, imported only here)."""
    try:
        import torch  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        raise error(path, "(file)", "torch installed (or a .npz/.safetensors state dict)",
                    "no torch: reading PyTorch checkpoints needs torch (pip install torch, CPU "
                    "build is enough)") from e
    obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    out = {}
    for k, v in _unwrap(obj, path, wrapper_keys, error).items():
        if hasattr(v, "detach"):
            v = v.detach().cpu()
            v = (v.float() if v.is_floating_point() else v).numpy()
        out[k] = np.asarray(v)
    return out


def _read_safetensors(path: str, error: ErrorFactory) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        raise error(path, "(file)", "the safetensors package (pip install safetensors)",
                    "not installed") from e
    return dict(load_file(path))


def load_state_dict_file(path: str | os.PathLike, *,
                         wrapper_keys: tuple[str, ...] = ("state_dict", "model"),
                         weights_only: bool = True,
                         error: ErrorFactory = conversion_error) -> dict[str, np.ndarray]:
    """Reads a state dict: `.pth`/`.pt`/`.bin`/`.ckpt` (optional torch), `.npz`, `.safetensors`.

    Args:
      path: the file.
      wrapper_keys: keys under which a PyTorch checkpoint may hold its state dict, tried in order
        (a checkpoint whose keys are all names is the state dict itself).
      weights_only: `torch.load`'s flag (False for checkpoints that pickle other objects next to
        the weights, such as the official CUT3R / Human3R files with their argparse args).
      error: (file, field, expected, found) -> the exception raised on a refusal.

    Returns:
      name -> numpy array (torch tensors are converted; bfloat16 becomes float32).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise error(path, "(file)", "an existing checkpoint file", "file not found")
    ext = os.path.splitext(path)[1].lower()
    if ext in TORCH_EXTENSIONS:
        return _read_torch(path, tuple(wrapper_keys), weights_only, error)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if ext == ".safetensors":
        return _read_safetensors(path, error)
    raise error(path, "(extension)", f"one of {', '.join(TORCH_EXTENSIONS)}, .npz or .safetensors",
                f"unknown checkpoint extension {ext!r}")


def save_state_dict_npz(path: str | os.PathLike, state: Mapping[str, np.ndarray]) -> None:
    """Writes name -> array to `.npz` atomically (`josh_jax.io.atomic`)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in state.items()})


def iter_manifest(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, ...]]:
    """{'name', 'shape'} entries (josh3r_state_dict_manifest.json) -> name -> shape."""
    return {e["name"]: tuple(e["shape"]) for e in entries}
