"""Official CUT3R checkpoints (`.pth`, `.safetensors`, `.npz` state dicts) -> the NNX model.

    state_dict = load_checkpoint_file("cut3r_512_dpt_4_64.pth")   # torch only for .pth
    model, report = load_cut3r(state_dict, Cut3rConfig.from_config(get_config("released").model))

The model is built abstractly (`nnx.eval_shape`: no random initialisation of 793 M parameters)
and every variable is filled from the checkpoint. Names: the NNX tree mirrors the PyTorch tree,
so `torch_name_to_path` only (1) drops the layer index of stacked blocks (`enc_blocks.3.attn...`
-> `enc_blocks.attn...`, layer 3), (2) renames the DPT parts (`scratch.layer{i}_rn` and its alias
`scratch.layer_rn.{i-1}` -> `layer_rn.{i-1}`, `scratch.refinenet{i}` -> `refinenet.{i-1}`,
`resConfUnit` -> `res_conf_unit`, `act_postprocess.{i}.{0,1}` -> `.proj` / `.resample`,
`head.{0,2,4}` -> `head_conv1/head_conv2/head_out`), `final_transform.*.norm{1,2}.mlp.1` ->
`.mlp`, `register_tokens.weight` -> `register_tokens`. Layouts: Linear (out, in) -> (in, out);
Conv2d OIHW -> HWIO; ConvTranspose2d (in, out, k, k) -> (in, k, k, out); LayerNorm weight ->
scale. Every unmatched, mis-shaped or missing name is reported; strict loading raises
`CheckpointMismatchError` naming them all.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from josh_jax.errors import InputError
from josh_jax.io.atomic import atomic_write
from trainers import state_dict_file
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.model import Cut3r
from trainers.nn.dpt import PatchConvTranspose


class CheckpointMismatchError(InputError):
    """A checkpoint that does not fit the model; `found` names every offending key."""


# Module paths whose children carry a leading layer axis (torch: `<prefix>.<layer>.<rest>`).
STACKED = ("enc_blocks", "enc_blocks_ray_map", "dec_blocks", "dec_blocks_state",
           "pose_retriever.write_blocks", "pose_retriever.read_blocks",
           "downstream_head.final_transform")
_STACK_RE = re.compile(r"^(" + "|".join(re.escape(p) for p in sorted(STACKED, key=len,
                                                                       reverse=True))
                       + r")\.(\d+)\.(.*)$")

_RENAMES: tuple[tuple[re.Pattern, Any], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^register_tokens\.weight$", "register_tokens"),
    (r"\.act_postprocess\.(\d+)\.0\.", r".act_postprocess.\1.proj."),
    (r"\.act_postprocess\.(\d+)\.1\.", r".act_postprocess.\1.resample."),
    (r"\.scratch\.layer(\d+)_rn\.", lambda m: f".layer_rn.{int(m[1]) - 1}."),
    (r"\.scratch\.layer_rn\.(\d+)\.", r".layer_rn.\1."),  # alias of layer{i+1}_rn
    (r"\.scratch\.refinenet(\d+)\.", lambda m: f".refinenet.{int(m[1]) - 1}."),
    (r"\.resConfUnit(\d)\.", r".res_conf_unit\1."),
    (r"(dpt_\w+)\.head\.0\.", r"\1.head_conv1."),
    (r"(dpt_\w+)\.head\.2\.", r"\1.head_conv2."),
    (r"(dpt_\w+)\.head\.4\.", r"\1.head_out."),
    (r"\.norm(\d)\.mlp\.1\.", r".norm\1.mlp."),
))

_T = Callable[[np.ndarray], np.ndarray]
_LEAVES: dict[type, dict[str, tuple[str, _T]]] = {
    nnx.Linear: {"weight": ("kernel", lambda a: a.T), "bias": ("bias", lambda a: a)},
    nnx.Conv: {"weight": ("kernel", lambda a: a.transpose(2, 3, 1, 0)),
               "bias": ("bias", lambda a: a)},
    PatchConvTranspose: {"weight": ("kernel", lambda a: a.transpose(0, 2, 3, 1)),
                         "bias": ("bias", lambda a: a)},
    nnx.LayerNorm: {"weight": ("scale", lambda a: a), "bias": ("bias", lambda a: a)},
}


@dataclasses.dataclass
class ConversionReport:
    """What happened to every checkpoint entry and every model variable."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    aliases: list[str] = dataclasses.field(default_factory=list)  # same tensor, second name
    unmatched: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[str] = dataclasses.field(default_factory=list)  # "name: expected .. found .."
    missing: list[str] = dataclasses.field(default_factory=list)  # model paths never filled

    @property
    def ok(self) -> bool:
        return not (self.unmatched or self.mismatched or self.missing)

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)}, aliases {len(self.aliases)}, unmatched "
                 f"{len(self.unmatched)}, shape mismatches {len(self.mismatched)}, missing "
                 f"{len(self.missing)}"]
        for title, items in (("unmatched checkpoint keys", self.unmatched),
                             ("shape mismatches", self.mismatched),
                             ("model variables not in the checkpoint", self.missing)):
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {x}" for x in items)
        return "\n".join(lines)


def torch_name_to_path(name: str) -> tuple[str, int | None]:
    """PyTorch state-dict name -> (dotted NNX path in torch leaf names, layer index or None)."""
    layer = None
    m = _STACK_RE.match(name)
    if m:
        name, layer = f"{m[1]}.{m[3]}", int(m[2])
    for pattern, repl in _RENAMES:
        name = pattern.sub(repl, name)
    return name, layer


def _resolve(root: nnx.Module, dotted: str) -> tuple[Any, str] | None:
    """Walks `root` along a dotted module path; returns (owner, leaf) or None."""
    *mods, leaf = dotted.split(".")
    node: Any = root
    for part in mods:
        try:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
    return node, leaf


def _target(model: nnx.Module, dotted: str) -> tuple[str, _T] | None:
    """(NNX variable path, layout transform) for a torch-leaf path, or None."""
    found = _resolve(model, dotted)
    if found is None:
        return None
    owner, leaf = found
    prefix = dotted.rsplit(".", 1)[0] + "." if "." in dotted else ""
    for kind, rules in _LEAVES.items():
        if isinstance(owner, kind):
            if leaf not in rules:
                return None
            attr, fn = rules[leaf]
            return prefix + attr, fn
    if isinstance(getattr(owner, leaf, None), nnx.Param):
        return dotted, lambda a: a
    return None


def _variables(model: nnx.Module) -> dict[str, Any]:
    """Dotted path -> abstract/concrete value of every Param of the model."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {".".join(str(p) for p in path): v.get_value() for path, v in flat}


def convert_state_dict(model: nnx.Module, state_dict: Mapping[str, Any]
                       ) -> tuple[dict[str, np.ndarray], ConversionReport]:
    """Maps a PyTorch CUT3R state dict onto `model`'s variables (the model may be abstract).

    Returns (NNX dotted path -> float32 array in the model's layout, report).
    """
    report = ConversionReport()
    shapes = {k: tuple(v.shape) for k, v in _variables(model).items()}
    per_layer: dict[str, dict[int, np.ndarray]] = {}
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for name in sorted(state_dict):
        dotted, layer = torch_name_to_path(name)
        target = _target(model, dotted)
        if target is None or target[0] not in shapes:
            report.unmatched.append(name)
            continue
        path, fn = target
        value = fn(np.asarray(state_dict[name], dtype=np.float32))
        want = shapes[path][1:] if layer is not None else shapes[path]
        if layer is not None and not 0 <= layer < shapes[path][0]:
            report.unmatched.append(f"{name} (layer {layer} of {shapes[path][0]})")
            continue
        if tuple(value.shape) != tuple(want):
            report.mismatched.append(f"{name}: expected {tuple(want)} (as {path}), found "
                                     f"{tuple(value.shape)}")
            continue
        key = path if layer is None else f"{path}[{layer}]"
        if key in origin:
            if not np.array_equal(_stored(out, per_layer, path, layer), value):
                report.mismatched.append(f"{name}: differs from its alias {origin[key]}")
            else:
                report.aliases.append(name)
            continue
        origin[key] = name
        report.loaded.append(name)
        if layer is None:
            out[path] = value
        else:
            per_layer.setdefault(path, {})[layer] = value
    for path, layers in per_layer.items():
        n = shapes[path][0]
        absent = [i for i in range(n) if i not in layers]
        if absent:
            report.missing.extend(f"{path} layer {i}" for i in absent)
            continue
        out[path] = np.stack([layers[i] for i in range(n)])
    report.missing.extend(p for p in shapes if p not in out and p not in per_layer)
    return out, report


def _stored(out, per_layer, path, layer):
    return out[path] if layer is None else per_layer[path][layer]


def fill_model(abstract_model: nnx.Module, arrays: Mapping[str, np.ndarray]) -> nnx.Module:
    """A concrete model: `abstract_model`'s structure with every Param taken from `arrays`."""
    graphdef, params, rest = nnx.split(abstract_model, nnx.Param, ...)
    flat = nnx.to_flat_state(params)
    for path, var in flat:
        var.set_value(jnp.asarray(arrays[".".join(str(p) for p in path)]))
    return nnx.merge(graphdef, nnx.from_flat_state(flat), rest)


def abstract_cut3r(cfg: Cut3rConfig) -> Cut3r:
    """The model with ShapeDtypeStruct leaves (no parameters allocated)."""
    return nnx.eval_shape(lambda: Cut3r(cfg, rngs=nnx.Rngs(0)))


def load_cut3r(state_dict: Mapping[str, Any] | str | os.PathLike, cfg: Cut3rConfig, *,
               strict: bool = True, source: str | None = None) -> tuple[Cut3r, ConversionReport]:
    """Builds CUT3R abstractly and fills it from a state dict (or a checkpoint file path)."""
    if not isinstance(state_dict, Mapping):
        source = source or os.fspath(state_dict)
        state_dict = load_checkpoint_file(state_dict)
    model = abstract_cut3r(cfg)
    arrays, report = convert_state_dict(model, state_dict)
    if strict and not report.ok:
        raise CheckpointMismatchError(source or "state dict", "(entries)",
                                      "every entry to match the CUT3R model",
                                      report.summary().replace("\n", "; "))
    if not strict:
        missing = set(report.missing)
        for path, value in _variables(model).items():
            if path not in arrays:
                arrays[path] = np.zeros(value.shape, np.float32)
                missing.add(path)
    return fill_model(model, arrays), report


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """name -> numpy array from an official CUT3R / Human3R checkpoint (`.pth`/`.pt` through torch,
    `.npz` or `.safetensors`): `trainers.state_dict_file.load_state_dict_file` with their layout
    (weights under 'model', the argparse args pickled beside them, so torch's weights_only is
    off) and refusals as `CheckpointMismatchError`."""
    return state_dict_file.load_state_dict_file(path, wrapper_keys=("model", "state_dict"),
                                                weights_only=False, error=CheckpointMismatchError)


def save_params(path: str | os.PathLike, model: nnx.Module) -> str:
    """Writes the model's parameters (dotted NNX path -> array) to `.npz` atomically."""
    arrays = {k: np.asarray(jax.device_get(v)) for k, v in _variables(model).items()}
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def load_params(path: str | os.PathLike, cfg: Cut3rConfig) -> Cut3r:
    """Reads `save_params`' file into an abstractly built model (names and shapes checked)."""
    path = os.fspath(path)
    arrays = load_checkpoint_file(path)
    model = abstract_cut3r(cfg)
    want = {k: tuple(v.shape) for k, v in _variables(model).items()}
    bad = sorted(set(want) ^ set(arrays)) + [
        f"{k}: expected {want[k]}, found {arrays[k].shape}"
        for k in sorted(set(want) & set(arrays)) if tuple(arrays[k].shape) != want[k]]
    if bad:
        raise CheckpointMismatchError(path, "(entries)", "the converted CUT3R parameters",
                                      "; ".join(bad))
    return fill_model(model, arrays)


def random_params(cfg: Cut3rConfig, seed: int = 0) -> Cut3r:
    """A model with random weights drawn on the device in one program (benchmarks, smoke runs):
    LayerNorm scales 1, biases 0, every other parameter N(0, 0.02^2). No host initialisation."""
    model = abstract_cut3r(cfg)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat = nnx.to_flat_state(params)
    specs = [(".".join(str(p) for p in path), var.get_value()) for path, var in flat]

    @jax.jit
    def draw(key):
        keys = jax.random.split(key, len(specs))
        out = []
        for k, (name, spec) in zip(keys, specs, strict=True):
            if name.endswith("scale"):
                out.append(jnp.ones(spec.shape, spec.dtype))
            elif name.endswith("bias"):
                out.append(jnp.zeros(spec.shape, spec.dtype))
            else:
                out.append(0.02 * jax.random.normal(k, spec.shape, spec.dtype))
        return out

    for (_, var), value in zip(flat, draw(jax.random.key(seed)), strict=True):
        var.set_value(value)
    return nnx.merge(graphdef, nnx.from_flat_state(flat), rest)
