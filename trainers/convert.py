"""PyTorch JOSH3R / MASt3R state dict -> Flax NNX model state.

Usage:
  report = convert_into(model, state_dict)   # in place; raises ConversionError unless clean
  print(report.summary())
Our own converted files (dotted Flax paths) load through `trainers.flax_state`; files are read
and written by `trainers.state_dict_file`; whole models are built and loaded by
`trainers.pretrained` (`load_josh3r`, `load_mast3r`).

Names: the Flax modules mirror the PyTorch tree; `torch_name_to_flax` applies a short list of
renames (e.g. `mast3r.dec_blocks.3.` -> `mast3r.decoder.blocks1.3.`, DPT `scratch.refinenet4` ->
`dpt.refinenet.3`, MLPHead `head_layers.0.0` -> `input_linear`). The encoder and decoder blocks
are stacked (`trainers/nn/stack.py`: one variable per weight with a leading layer axis), so the
layer number of `encoder.blocks.3.attn.qkv.weight` selects row 3 of
`encoder.blocks.attn.qkv.kernel`; a stacked variable missing some layers is reported as
`path[layer]`. Layouts: Linear weight (out, in)
-> kernel (in, out); Conv2d (out, in, kh, kw) -> HWIO; ConvTranspose2d (in, out, k, k) ->
(in, k, k, out); LayerNorm/BatchNorm weight -> scale; BatchNorm running_mean/var -> mean/var.

Deliberately skipped (reported under `skipped`): `mast3r.mask_token` (unused in the forward),
`smpl.*` (the loss uses `body_models/`), `*.num_batches_tracked` (unused in eval).
Every other name that finds no target is reported in `unmatched`, every shape disagreement in
`mismatched`, every target left unfilled in `missing`; strict loading raises ConversionError
listing them all by name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers.mast3r import MASt3R
from trainers.nn.dpt import PatchConvTranspose


class ConversionError(ValueError):
    """A checkpoint that does not fit the model; the message names every offending key."""


_SKIP_PATTERNS = (
    re.compile(r"(^|\.)num_batches_tracked$"),
    re.compile(r"^smpl\."),
    re.compile(r"^mast3r\.mask_token$"),
)

_RENAMES: tuple[tuple[re.Pattern, Any], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^mast3r\.patch_embed\.", "mast3r.encoder.patch_embed."),
    (r"^mast3r\.enc_blocks\.", "mast3r.encoder.blocks."),
    (r"^mast3r\.enc_norm\.", "mast3r.encoder.norm."),
    (r"^mast3r\.decoder_embed\.", "mast3r.decoder.embed."),
    (r"^mast3r\.dec_blocks\.", "mast3r.decoder.blocks1."),
    (r"^mast3r\.dec_blocks2\.", "mast3r.decoder.blocks2."),
    (r"^mast3r\.dec_norm\.", "mast3r.decoder.norm."),
    (r"^mast3r\.downstream_head(\d)\.head_local_features\.", r"mast3r.head\1.local_features."),
    (r"^mast3r\.downstream_head(\d)\.", r"mast3r.head\1."),
    (r"\.dpt\.act_postprocess\.(\d+)\.0\.", r".dpt.act_postprocess.\1.proj."),
    (r"\.dpt\.act_postprocess\.(\d+)\.1\.", r".dpt.act_postprocess.\1.resample."),
    (r"\.dpt\.scratch\.layer(\d+)_rn\.", lambda m: f".dpt.layer_rn.{int(m[1]) - 1}."),
    (r"\.dpt\.scratch\.layer_rn\.(\d+)\.", r".dpt.layer_rn.\1."),  # alias of layer{i+1}_rn
    (r"\.dpt\.scratch\.refinenet(\d+)\.", lambda m: f".dpt.refinenet.{int(m[1]) - 1}."),
    (r"\.resConfUnit(\d)\.", r".res_conf_unit\1."),
    (r"\.dpt\.head\.0\.", ".dpt.head_conv1."),
    (r"\.dpt\.head\.2\.", ".dpt.head_conv2."),
    (r"\.dpt\.head\.4\.", ".dpt.head_out."),
    (r"\.head_layers\.0\.0\.", ".input_linear."),
    (r"\.head_layers\.0\.1\.", ".input_norm."),
    (r"\.head_layers\.(\d+)\.0\.", lambda m: f".blocks.{int(m[1]) - 1}."),
    (r"\.head_layers\.(\d+)\.(weight|bias)$", r".final.\2"),
))

# PyTorch leaf name -> (Flax attribute, layout transform) per Flax module type.
_T = Callable[[np.ndarray], np.ndarray]
_IDENT: _T = lambda a: a
_LEAVES: dict[type, dict[str, tuple[str, _T]]] = {
    nnx.Linear: {"weight": ("kernel", lambda a: a.T), "bias": ("bias", _IDENT)},
    nnx.Conv: {"weight": ("kernel", lambda a: a.transpose(2, 3, 1, 0)), "bias": ("bias", _IDENT)},
    PatchConvTranspose: {"weight": ("kernel", lambda a: a.transpose(0, 2, 3, 1)),
                         "bias": ("bias", _IDENT)},
    nnx.LayerNorm: {"weight": ("scale", _IDENT), "bias": ("bias", _IDENT)},
    nnx.BatchNorm: {"weight": ("scale", _IDENT), "bias": ("bias", _IDENT),
                    "running_mean": ("mean", _IDENT), "running_var": ("var", _IDENT)},
}


def _transposed_shape(kind: type, leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after the layout transform, computed without data."""
    dummy = np.broadcast_to(np.zeros((), np.float32), shape)
    return tuple(_LEAVES[kind][leaf][1](dummy).shape)


@dataclasses.dataclass
class ConversionReport:
    """What happened to every checkpoint entry and every model variable."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    unmatched: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[str] = dataclasses.field(default_factory=list)  # "name: expected .. found .."
    missing: list[str] = dataclasses.field(default_factory=list)  # Flax paths never filled

    @property
    def ok(self) -> bool:
        return not (self.unmatched or self.mismatched or self.missing)

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)}, skipped {len(self.skipped)}, unmatched "
                 f"{len(self.unmatched)}, shape mismatches {len(self.mismatched)}, missing "
                 f"{len(self.missing)}"]
        for title, items in (("unmatched checkpoint keys", self.unmatched),
                             ("shape mismatches", self.mismatched),
                             ("model variables not in the checkpoint", self.missing)):
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {x}" for x in items)
        return "\n".join(lines)


def torch_name_to_flax(name: str) -> str:
    """Renames a JOSH3R PyTorch state-dict name to the Flax module path (dotted)."""
    for pattern, repl in _RENAMES:
        name = pattern.sub(repl, name)
    return name


def is_skipped(name: str) -> bool:
    """True for checkpoint entries that are intentionally not converted (see module docstring)."""
    return any(p.search(name) for p in _SKIP_PATTERNS)


def _resolve(root: nnx.Module, dotted: str):
    """Walks `root` along a dotted module path; returns (module, leaf, layer) or None.

    A number after a stacked module (`stack_modules`: not indexable) is its layer index
    (`layer`, else None): `encoder.blocks.3.attn.qkv` is layer 3 of the stacked `blocks`.
    """
    *mods, leaf = dotted.split(".")
    node: Any = root
    layer = None
    for part in mods:
        if part.isdigit() and isinstance(node, nnx.Module) and not isinstance(node, nnx.List):
            if layer is not None:
                return None
            layer = int(part)
            continue
        try:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
    if not isinstance(node, nnx.Module):
        return None
    return node, leaf, layer


def stacked_path(dotted: str, layer: int | None) -> str:
    """The dotted Flax path without the layer index of a stacked module."""
    if layer is None:
        return dotted
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part == str(layer):
            return ".".join(parts[:i] + parts[i + 1:])
    return dotted


def _leaf_rule(module: nnx.Module, leaf: str):
    for kind, table in _LEAVES.items():
        if type(module) is kind and leaf in table:
            return kind, table[leaf]
    return None


def model_variables(model: nnx.Module) -> dict[str, nnx.Variable]:
    """Param and BatchStat variables of the model by dotted path."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, (nnx.Param, nnx.BatchStat)):
            out[".".join(str(p) for p in path)] = node
    return out


@dataclasses.dataclass(frozen=True)
class _Target:
    """Where one checkpoint entry goes: a variable, or one layer of a stacked variable."""

    var: nnx.Variable
    path: str                  # dotted Flax path of the variable
    layer: int | None          # row of a stacked variable, else None
    kind: type                 # the Flax module type (selects the layout transform)
    transform: _T
    expected: tuple[int, ...]  # Flax shape of the entry (one layer's for a stacked variable)

    @property
    def key(self) -> str:
        return self.path if self.layer is None else f"{self.path}[{self.layer}]"


def _find_target(model: nnx.Module, targets: Mapping[str, nnx.Variable], full_name: str,
                 is_mast3r: bool) -> _Target | None:
    """The variable a (prefixed) PyTorch name fills, or None when nothing matches."""
    path = torch_name_to_flax(full_name)
    if is_mast3r:
        if not path.startswith("mast3r."):
            return None
        path = path[len("mast3r."):]
    resolved = _resolve(model, path)
    rule = resolved and _leaf_rule(*resolved[:2])
    if not rule:
        return None
    layer = resolved[2]
    kind, (attr, transform) = rule
    target_path = stacked_path(path.rsplit(".", 1)[0], layer) + "." + attr
    var = targets.get(target_path)
    if var is None:
        return None
    expected = tuple(var.shape) if hasattr(var, "shape") else tuple(var.get_value().shape)
    if layer is not None:
        if not expected or not 0 <= layer < expected[0]:
            return None
        expected = expected[1:]
    return _Target(var, target_path, layer, kind, transform, expected)


def _shape_mismatch(name: str, target: _Target, src_shape: tuple[int, ...]) -> str | None:
    """The report line when the entry's shape (after the layout transform) does not fit."""
    got = _transposed_shape(target.kind, name.rsplit(".", 1)[-1], src_shape)
    if got == target.expected:
        return None
    layer = "" if target.layer is None else f"[{target.layer}]"
    return (f"{name}: expected {_torch_shape(target.kind, name, target.expected)} (Flax "
            f"{target.path}{layer} {target.expected}), found {src_shape}")


def _store(name: str, target: _Target, arr: np.ndarray, filled: set[str],
           layers: dict[str, dict[int, np.ndarray]]) -> str | None:
    """Writes one converted entry (a stacked layer is collected for `write_layers`).

    A second name for a slot already filled (an alias: DPT `scratch.layer_rn.i` ==
    `layer{i+1}_rn`) must hold the same values; returns the report line when it does not.
    """
    dtype = target.var.get_value().dtype
    if target.key in filled:
        held = (np.asarray(target.var.get_value()) if target.layer is None
                else layers[target.path][target.layer])
        if not np.array_equal(held, arr.astype(dtype)):
            return (f"{name}: aliases {target.path} but holds different values than the entry "
                    f"loaded first")
    elif target.layer is None:
        target.var.set_value(jnp.asarray(arr, dtype=dtype))
    else:
        layers.setdefault(target.path, {})[target.layer] = arr.astype(dtype)
    return None


def convert_into(model: nnx.Module, state_dict: Mapping[str, Any], *,
                 source: str = "checkpoint", shapes_only: bool = False,
                 strict: bool = True) -> ConversionReport:
    """Copies a PyTorch state dict into `model` (JOSH3R or MASt3R) in place.

    Args:
      model: a JOSH3R or MASt3R, concrete or abstract (`nnx.eval_shape`).
      state_dict: name -> array (numpy, torch tensor, anything np.asarray accepts), or with
        `shapes_only` name -> shape tuple; arrays are read lazily one key at a time.
      source: file name used in error messages.
      shapes_only: only check names and shapes (no values are read or written).
      strict: raise ConversionError unless the report is clean.

    Returns:
      ConversionReport.
    """
    # A bare MASt3R checkpoint has no "mast3r." prefix; our MASt3R model has none either.
    is_mast3r = isinstance(model, MASt3R)
    targets = model_variables(model)
    filled: set[str] = set()
    layers: dict[str, dict[int, np.ndarray]] = {}  # stacked variable -> layer -> value
    report = ConversionReport()
    for name in state_dict.keys():
        full = "mast3r." + name if is_mast3r and not name.startswith("mast3r.") else name
        if is_skipped(full):
            report.skipped.append(name)
            continue
        target = _find_target(model, targets, full, is_mast3r)
        if target is None:
            report.unmatched.append(name)
            continue
        value = state_dict[name]
        src_shape = tuple(value) if shapes_only else tuple(np.shape(value))
        problem = _shape_mismatch(name, target, src_shape)
        if problem is None and shapes_only and target.layer is not None:
            layers.setdefault(target.path, {})[target.layer] = None
        elif problem is None and not shapes_only:
            arr = target.transform(_to_numpy(value, name, source))
            problem = _store(name, target, arr, filled, layers)
        if problem is not None:
            report.mismatched.append(problem)
            continue
        filled.add(target.key)
        report.loaded.append(name)
    report.missing = write_layers(targets, layers, filled, shapes_only)
    if strict and not report.ok:
        raise ConversionError(f"{source}: the state dict does not fit the "
                              f"{type(model).__name__} model\n{report.summary()}")
    return report


def write_layers(targets: Mapping[str, nnx.Variable], layers: Mapping[str, dict[int, Any]],
                 filled: set[str], shapes_only: bool) -> list[str]:
    """Writes the collected layers of stacked variables; returns the sorted names of every
    variable (`path`) or layer (`path[i]`) not filled: the report's `missing`."""
    missing = _write_layers(targets, layers, filled, shapes_only)
    return sorted((set(targets) - filled - {p for p, _ in missing})
                  | {f"{p}[{i}]" for p, i in missing})


def _write_layers(targets: Mapping[str, nnx.Variable], layers: Mapping[str, dict[int, Any]],
                  filled: set[str], shapes_only: bool) -> list[tuple[str, int]]:
    """Writes the collected layers of stacked variables (one stack per variable); layers the
    checkpoint lacks keep their current values. Returns the (path, layer) pairs not filled."""
    missing = []
    for path, got in layers.items():
        var = targets[path]
        n = tuple(var.get_value().shape)[0]
        filled.add(path)
        missing.extend((path, i) for i in range(n) if i not in got)
        if shapes_only:
            continue
        if len(got) == n:
            stacked = np.stack([got[i] for i in range(n)])
        else:  # layers the checkpoint lacks keep their values (zeros in an abstract model)
            current = var.get_value()
            stacked = (np.zeros(current.shape, current.dtype) if is_abstract(current)
                       else np.array(current))
            for i, value in got.items():
                stacked[i] = value
        var.set_value(jnp.asarray(stacked))
    return missing


def _torch_shape(kind: type, name: str, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Inverse layout transform of a shape (for error messages in PyTorch terms)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf != "weight" or kind in (nnx.LayerNorm, nnx.BatchNorm):
        return flax_shape
    if kind is nnx.Linear:
        return flax_shape[::-1]
    if kind is nnx.Conv:
        h, w, i, o = flax_shape
        return (o, i, h, w)
    i, h, w, o = flax_shape
    return (i, o, h, w)


def _to_numpy(value: Any, name: str, source: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ConversionError(f"{source}: key {name!r}: expected a floating-point array, "
                              f"found dtype {arr.dtype}")
    return arr


def is_abstract(value: Any) -> bool:
    """True for a `jax.ShapeDtypeStruct` (a variable of an abstract model)."""
    return isinstance(value, jax.ShapeDtypeStruct)
