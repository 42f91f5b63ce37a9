"""Official Human3R checkpoints (`.pth`, `.safetensors`, `.npz` state dicts) -> JAX parameters.

    params, report = load_human3r("human3r.pth", Human3rSizes.from_config(get_config("released")))
    params.model      # the CUT3R NNX model (trainers.cut3r), built abstractly and filled
    params.backbone   # DINOv2 blocks stacked on a depth axis (trainers.human3r.dinov2)
    params.head       # the other human entries by PyTorch name (Linear weights stay (out, in))

A Human3R state dict is CUT3R's (1248 entries at the released size) plus 383 human entries
(`backbone.encoder.*`, the `downstream_head` detection / mask / fuse / SMPL-X MLPs, the mean
parameter buffers `init_*`, the training-only mask tokens). The CUT3R part goes through
`trainers.cut3r.convert.convert_state_dict`; the human part is checked name by name against
`human_entry_shapes` (PyTorch layouts). Every unmatched, mis-shaped or missing key is reported by
name; strict loading raises `CheckpointMismatchError` naming them all.

Nothing of 1.2 B parameters is allocated to check a checkpoint's structure: the CUT3R model is
built with `nnx.eval_shape` and the human entries are shape tuples (`abstract_parameter_count`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from josh_jax.io.atomic import atomic_write
from trainers.cut3r import convert as cut3r_convert
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import CheckpointMismatchError, ConversionReport
from trainers.cut3r.model import Cut3r
from trainers.human3r import dinov2

HEAD_PREFIX = "downstream_head."
BACKBONE_PREFIX = "backbone.encoder."
_HUMAN_HEADS = (
    "mlp_classif",
    "mlp_offset",
    "mlp_msk",
    "mlp_fuse",
    "decpose",
    "decshape",
    "decexpression",
    "deccam",
    "init_",
)
_HUMAN_TOKENS = ("masked_smpl_token", "mhmr_masked_smpl_token", "mhmr_masked_img_token")


@dataclasses.dataclass(frozen=True)
class Human3rSizes:
    """CUT3R's configuration plus the human branch's sizes (from `experiments/configs/human3r.py`).

    Attributes:
      cut3r: the CUT3R part.
      dino_embed_dim, dino_depth, dino_num_heads, dino_patch_size: the DINOv2 ViT (C = width).
      dino_img_size: the DINOv2 position-embedding image size (grid = size // patch).
      mhmr_img_res: Multi-HMR input resolution R (grid g = R // patch).
      mlp_ratio: hidden width factor of the DINOv2 MLP and the human MLPs.
      smpl_pose_dim, num_betas, num_expression, num_betas_kid, cam_dim: SMPL-X head outputs.
    """

    cut3r: Cut3rConfig
    dino_embed_dim: int
    dino_depth: int
    dino_num_heads: int
    dino_patch_size: int
    dino_img_size: int
    mhmr_img_res: int
    mlp_ratio: float
    smpl_pose_dim: int
    num_betas: int
    num_expression: int
    num_betas_kid: int
    cam_dim: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Human3rSizes:
        """From `get_config(...)` (its `model` and `human` sub-configs)."""
        human = config["human"]
        names = [f.name for f in dataclasses.fields(cls) if f.name != "cut3r"]
        return cls(cut3r=Cut3rConfig.from_config(config["model"]), **{n: human[n] for n in names})


@dataclasses.dataclass(frozen=True)
class Human3rParams:
    """Everything a Human3R step needs: model (CUT3R NNX), backbone (stacked DINOv2 dict), head
    (human entries by PyTorch name, float32 arrays)."""

    model: Cut3r
    backbone: dict
    head: dict


def _mlp(prefix: str, n_in: int, n_hidden: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}0.weight": (n_hidden, n_in),
        f"{prefix}0.bias": (n_hidden,),
        f"{prefix}2.weight": (n_out, n_hidden),
        f"{prefix}2.bias": (n_out,),
    }


def human_entry_shapes(sizes: Human3rSizes) -> dict[str, tuple[int, ...]]:
    """Every Human3R entry that CUT3R does not have: PyTorch name -> shape (spec §2.3)."""
    c, p = sizes.dino_embed_dim, sizes.dino_patch_size
    e, d = sizes.cut3r.enc_embed_dim, sizes.cut3r.dec_embed_dim
    r = sizes.mlp_ratio
    grid = sizes.dino_img_size // p
    b = BACKBONE_PREFIX
    out = {
        "masked_smpl_token": (1, e),
        "mhmr_masked_smpl_token": (1, c),
        "mhmr_masked_img_token": (1, c),
        b + "cls_token": (1, 1, c),
        b + "pos_embed": (1, 1 + grid * grid, c),
        b + "mask_token": (1, c),
        b + "patch_embed.proj.weight": (c, 3, p, p),
        b + "patch_embed.proj.bias": (c,),
        b + "norm.weight": (c,),
        b + "norm.bias": (c,),
    }
    block = {
        "norm1.weight": (c,),
        "norm1.bias": (c,),
        "attn.qkv.weight": (3 * c, c),
        "attn.qkv.bias": (3 * c,),
        "attn.proj.weight": (c, c),
        "attn.proj.bias": (c,),
        "ls1.gamma": (c,),
        "norm2.weight": (c,),
        "norm2.bias": (c,),
        "mlp.fc1.weight": (int(r * c), c),
        "mlp.fc1.bias": (int(r * c),),
        "mlp.fc2.weight": (c, int(r * c)),
        "mlp.fc2.bias": (c,),
        "ls2.gamma": (c,),
    }
    for i in range(sizes.dino_depth):
        out.update({f"{b}blocks.{i}.{k}": s for k, s in block.items()})
    h = HEAD_PREFIX
    out.update(
        {
            h + "init_body_pose": (1, sizes.smpl_pose_dim),
            h + "init_betas": (1, sizes.num_betas),
            h + "init_betas_kid": (1, sizes.num_betas_kid),
            h + "init_cam": (1, sizes.cam_dim),
            h + "init_expression": (1, sizes.num_expression),
        }
    )
    out.update(_mlp(h + "mlp_classif.", c, c, 1))
    out.update(_mlp(h + "mlp_offset.", c, c, 2))
    out.update(_mlp(h + "mlp_msk.mlp.layers.", c, c, p * p))
    out.update(_mlp(h + "mlp_fuse.mlp.layers.", e + c, int(r * (e + c)), d))
    for name, n_out in (
        ("decpose", sizes.smpl_pose_dim),
        ("decshape", sizes.num_betas),
        ("decexpression", sizes.num_expression),
    ):
        out.update(_mlp(f"{h}{name}.mlp.layers.", d + c, int(r * (d + c)), n_out))
    out.update(_mlp(h + "deccam.mlp.layers.", d, int(r * d), sizes.cam_dim))
    return out


def is_human_entry(name: str) -> bool:
    """True for a state-dict name of the human branch (not CUT3R)."""
    if name.startswith("backbone.") or name in _HUMAN_TOKENS:
        return True
    return name.startswith(HEAD_PREFIX) and name[len(HEAD_PREFIX) :].startswith(_HUMAN_HEADS)


def abstract_parameter_count(sizes: Human3rSizes) -> dict[str, int]:
    """Parameter counts per group without allocating anything (CUT3R via nnx.eval_shape)."""
    model = cut3r_convert.abstract_cut3r(sizes.cut3r)
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    counts: dict[str, int] = {}
    for path, var in flat:
        key = str(path[0]) if path[0] != "downstream_head" else "downstream_head." + str(path[1])
        counts[key] = counts.get(key, 0) + int(np.prod(var.get_value().shape))
    for name, shape in human_entry_shapes(sizes).items():
        parts = name.split(".")
        key = parts[0] if parts[0] != "downstream_head" else ".".join(parts[:2])
        key = "downstream_head.init_buffers" if key.startswith("downstream_head.init_") else key
        counts[key] = counts.get(key, 0) + int(np.prod(shape))
    return counts


def convert_state_dict(
    sizes: Human3rSizes, state_dict: Mapping[str, Any], model: Cut3r | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], ConversionReport]:
    """Splits a Human3R state dict and checks both parts (nothing allocated for missing entries).

    `model`: the abstract CUT3R to map onto (built from `sizes` when None).
    Returns (CUT3R arrays by NNX path, human arrays by PyTorch name (float32), report).
    """
    human_sd = {k: v for k, v in state_dict.items() if is_human_entry(k)}
    cut3r_sd = {k: v for k, v in state_dict.items() if not is_human_entry(k)}
    if model is None:
        model = cut3r_convert.abstract_cut3r(sizes.cut3r)
    arrays, report = cut3r_convert.convert_state_dict(model, cut3r_sd)
    want = human_entry_shapes(sizes)
    human: dict[str, np.ndarray] = {}
    for name in sorted(human_sd):
        if name not in want:
            report.unmatched.append(name)
            continue
        value = np.asarray(human_sd[name], np.float32)
        if tuple(value.shape) != want[name]:
            report.mismatched.append(f"{name}: expected {want[name]}, found {tuple(value.shape)}")
            continue
        report.loaded.append(name)
        human[name] = value
    report.missing.extend(n for n in want if n not in human_sd)
    return arrays, human, report


def _params(model: Cut3r, human: Mapping[str, np.ndarray]) -> Human3rParams:
    """Device arrays: the DINOv2 entries stacked into `backbone`, the others in `head` (each
    weight once, so that nothing is transferred or held twice)."""
    backbone = dinov2.backbone_from_state_dict(human)
    stacked = set(backbone_state_dict(backbone))  # mask_token (training only) stays in `head`
    head = {k: jnp.asarray(v) for k, v in human.items() if k not in stacked}
    backbone = jax.tree.map(jnp.asarray, backbone)
    return Human3rParams(model=model, backbone=backbone, head=head)


def backbone_state_dict_names(sizes: Human3rSizes) -> set[str]:
    """The human entries that `Human3rParams.backbone` holds (all DINOv2 ones but mask_token)."""
    return {
        k
        for k in human_entry_shapes(sizes)
        if k.startswith(BACKBONE_PREFIX) and k != BACKBONE_PREFIX + "mask_token"
    }


def backbone_state_dict(backbone: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of `dinov2.backbone_from_state_dict`: PyTorch names -> numpy arrays."""
    out = {BACKBONE_PREFIX + k: np.asarray(v) for k, v in backbone.items() if k != "blocks"}
    for name, stacked in backbone["blocks"].items():
        for i, value in enumerate(np.asarray(stacked)):
            out[f"{BACKBONE_PREFIX}blocks.{i}.{name}"] = value
    return out


def load_human3r(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    sizes: Human3rSizes,
    *,
    source: str | None = None,
) -> tuple[Human3rParams, ConversionReport]:
    """Builds Human3R from an official state dict or checkpoint file (strict: every entry)."""
    if not isinstance(state_dict, Mapping):
        source = source or os.fspath(state_dict)
        state_dict = cut3r_convert.load_checkpoint_file(state_dict)
    model = cut3r_convert.abstract_cut3r(sizes.cut3r)
    arrays, human, report = convert_state_dict(sizes, state_dict, model)
    if not report.ok:
        raise CheckpointMismatchError(
            source or "state dict",
            "(entries)",
            "every entry to match the Human3R model",
            report.summary().replace("\n", "; "),
        )
    return _params(cut3r_convert.fill_model(model, arrays), human), report


def abstract_params(sizes: Human3rSizes) -> Human3rParams:
    """Human3rParams with `jax.ShapeDtypeStruct` leaves (shape checks, `jax.eval_shape` of a step
    at released sizes without allocating 1.2 B parameters)."""
    shapes = human_entry_shapes(sizes)
    head = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    block0 = BACKBONE_PREFIX + "blocks.0."
    blocks = {
        k[len(block0) :]: jax.ShapeDtypeStruct((sizes.dino_depth,) + s, jnp.float32)
        for k, s in shapes.items()
        if k.startswith(block0)
    }
    top = {
        k[len(BACKBONE_PREFIX) :]: v
        for k, v in head.items()
        if k.startswith(BACKBONE_PREFIX) and ".blocks." not in k
    }
    return Human3rParams(
        model=cut3r_convert.abstract_cut3r(sizes.cut3r),
        backbone={"blocks": blocks, **top},
        head={k: v for k, v in head.items() if k not in backbone_state_dict_names(sizes)},
    )


CUT3R_KEY, HUMAN_KEY = "cut3r/", "human/"


def save_params(path: str | os.PathLike, params: Human3rParams) -> str:
    """Writes the parameters to one `.npz` atomically (`cut3r/<NNX path>`, `human/<name>`)."""
    flat = nnx.to_flat_state(nnx.state(params.model, nnx.Param))
    arrays = {
        CUT3R_KEY + ".".join(str(p) for p in k): np.asarray(jax.device_get(v.get_value()))
        for k, v in flat
    }
    arrays.update({HUMAN_KEY + k: np.asarray(v) for k, v in params.head.items()})
    arrays.update({HUMAN_KEY + k: v for k, v in backbone_state_dict(params.backbone).items()})
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def is_converted_file(path: str | os.PathLike) -> bool:
    """True for a `.npz` written by `save_params` (not an official state dict)."""
    if not os.fspath(path).endswith(".npz") or not os.path.isfile(path):
        return False
    with np.load(path, allow_pickle=False) as data:
        return any(k.startswith(CUT3R_KEY) for k in data.files[:5])


def load_params(path: str | os.PathLike, sizes: Human3rSizes) -> Human3rParams:
    """Reads `save_params`' file (every name and shape checked, each problem named)."""
    path = os.fspath(path)
    arrays = cut3r_convert.load_checkpoint_file(path)
    cut = {k[len(CUT3R_KEY) :]: v for k, v in arrays.items() if k.startswith(CUT3R_KEY)}
    human = {k[len(HUMAN_KEY) :]: v for k, v in arrays.items() if k.startswith(HUMAN_KEY)}
    model = cut3r_convert.abstract_cut3r(sizes.cut3r)
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    want = {".".join(str(p) for p in k): tuple(v.get_value().shape) for k, v in flat}
    want.update({HUMAN_KEY + k: s for k, s in human_entry_shapes(sizes).items()})
    have = {
        **{k: v.shape for k, v in cut.items()},
        **{HUMAN_KEY + k: v.shape for k, v in human.items()},
    }
    bad = [f"{k}: missing" for k in sorted(set(want) - set(have))]
    bad += [f"{k}: not in the model" for k in sorted(set(have) - set(want))]
    bad += [
        f"{k}: expected {want[k]}, found {tuple(have[k])}"
        for k in sorted(set(want) & set(have))
        if tuple(have[k]) != tuple(want[k])
    ]
    if bad:
        raise CheckpointMismatchError(
            path, "(entries)", "the converted Human3R parameters", "; ".join(bad)
        )
    return _params(cut3r_convert.fill_model(model, cut), human)


def _host_random_cut3r(model: Cut3r, rng: np.random.Generator) -> Cut3r:
    """The abstract CUT3R `model` with random weights drawn on the host (numpy)."""
    arrays = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        name, shape = ".".join(str(p) for p in path), var.get_value().shape
        if name.endswith("scale"):
            arrays[name] = np.ones(shape, np.float32)
        elif name.endswith("bias"):
            arrays[name] = np.zeros(shape, np.float32)
        else:
            arrays[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return cut3r_convert.fill_model(model, arrays)


HOST_INIT_MAX_PARAMS = 50_000_000  # below: numpy on the host; above: drawn on the device


def random_params(sizes: Human3rSizes, seed: int = 0) -> Human3rParams:
    """Random weights for smoke runs and benchmarks.

    CUT3R: LayerNorm scales 1, biases 0, other weights N(0, 0.02^2) (numpy on the host for small
    sizes, which avoids compiling a program that draws hundreds of arrays; on the device for large
    ones). Human entries likewise, LayerScale 1, the mean parameters at the identity pose / zero
    shape, and the `deccam` output bias at (0, 0, 1.6) so that heads land ~4 m in front of the
    camera (as in the parity vectors).
    """
    rng = np.random.default_rng(seed)
    model = cut3r_convert.abstract_cut3r(sizes.cut3r)
    count = sum(
        int(np.prod(v.get_value().shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    )
    if count <= HOST_INIT_MAX_PARAMS:
        model = _host_random_cut3r(model, rng)
    else:
        model = cut3r_convert.random_params(sizes.cut3r, seed)
    head = {}
    for name, shape in human_entry_shapes(sizes).items():
        if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "gamma")):
            value = np.ones(shape, np.float32)
        elif name.endswith("bias") or name.startswith(HEAD_PREFIX + "init_"):
            value = np.zeros(shape, np.float32)
        else:
            value = (0.02 * rng.standard_normal(shape)).astype(np.float32)
        head[name] = value
    identity6 = np.tile(np.array([1, 0, 0, 1, 0, 0], np.float32), sizes.smpl_pose_dim // 6)
    head[HEAD_PREFIX + "init_body_pose"] = identity6[None]
    head[HEAD_PREFIX + "deccam.mlp.layers.2.bias"] = np.array([0.0, 0.0, 1.6], np.float32)
    return _params(model, head)
