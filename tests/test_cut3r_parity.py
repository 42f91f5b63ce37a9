"""CUT3R parity with the official PyTorch code (tests/data/cut3r_tiny_forward.npz, runs `seq_`
and `reset_`; see /work/shared/reference/HUMAN3R_VECTORS.md): every array of both runs within
max |jax - torch| <= 1e-4 * max |torch|. Also the demo's pose chaining and the focal estimate
(tests/data/cut3r_chaining_vectors.npz: the camera part of `human3r_tiny_forward.npz`'s `demo_`)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs.cut3r import get_config
from trainers.cut3r.config import Cut3rConfig
from trainers.cut3r.convert import load_cut3r
from trainers.cut3r.geometry import (
    chain_chunks,
    chain_step,
    focal_from_pointmap,
    pose_to_T_world_cam,
    reset_views,
)
from trainers.cut3r.recurrent import run_sequence

DATA = os.path.join(os.path.dirname(__file__), "data")
RTOL = 1e-4
RUNS = ("seq_", "reset_")
NCHW = ("dpt_self_raw", "dpt_cross_raw", "dpt_rgb_raw", "dpt_self_act0", "dpt_self_act1",
        "dpt_self_act2", "dpt_self_act3", "dpt_self_rn0", "dpt_self_rn1", "dpt_self_rn2",
        "dpt_self_rn3", "dpt_self_refinenet4", "dpt_self_refinenet3", "dpt_self_refinenet2",
        "dpt_self_refinenet1")


@pytest.fixture(scope="module")
def vectors():
    return np.load(os.path.join(DATA, "cut3r_tiny_forward.npz"))


@pytest.fixture(scope="module")
def outputs(vectors):
    """Both runs through one compiled program: {run: (model, carry, frame, intermediates)}."""
    cfg = Cut3rConfig.from_config(get_config("tiny").model)
    model, _ = load_cut3r(os.path.join(DATA, "cut3r_tiny_state_dict.npz"), cfg)
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, frames, resets):
        return run_sequence(nnx.merge(graphdef, state), frames, resets,
                            return_intermediates=True)

    frames = jnp.asarray(vectors["in_frames"]).transpose(0, 1, 3, 4, 2)  # T B H W C
    return {r: (model,) + run(state, frames, jnp.asarray(vectors[r + "reset_flags"]))
            for r in RUNS}


def _ours(name: str, model, frame, inter) -> np.ndarray:
    """Our array laid out like the reference's `name` (without the run prefix)."""
    if name in ("state_init", "mem_init"):
        return np.asarray(model.initial_state(1)[0 if name == "state_init" else 1])
    if name == "state_pos":
        return model.state_pos()[None]
    if name == "pose_pos":
        return np.full((3, 1, 1, 2), -1)
    if name == "reset_flags":
        return None
    if name == "c2w":
        return np.asarray(pose_to_T_world_cam(frame.camera_pose))
    inquired = ~np.asarray(inter["used_pose_token"])
    if name == "mem_feat_k":
        return np.asarray(inter["mem_query"])
    if name in ("mem_query", "inquire_out"):
        src = inter["mem_query" if name == "mem_query" else "pose_in"]
        return np.asarray(src)[inquired]
    value = getattr(frame, name) if hasattr(frame, name) else inter[name]
    value = np.asarray(value)
    if name in NCHW:
        value = np.moveaxis(value, -1, 2)
    return value


@pytest.mark.parametrize("run", RUNS)
def test_every_array_matches(run, vectors, outputs):
    model, _, frame, inter = outputs[run]
    checked, failures = 0, []
    for key in vectors.files:
        if not key.startswith(run):
            continue
        name = key[len(run):]
        ref = vectors[key]
        ours = _ours(name, model, frame, inter)
        if ours is None:
            continue
        assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
        err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
        bound = RTOL * float(np.max(np.abs(ref)))
        checked += 1
        if err > bound:
            failures.append(f"{name}: max err {err:.3g} > {bound:.3g}")
    assert checked >= 40 if run == "seq_" else checked >= 25
    assert not failures, failures


def test_reset_semantics(vectors, outputs):
    """After the reset view state and memory are back to their initial values, and CUT3R's loop
    still queries the memory on the next view (not the pose token)."""
    model, _, _, inter = outputs["reset_"]
    s0, mem0 = (np.asarray(a) for a in model.initial_state(1))
    np.testing.assert_array_equal(np.asarray(inter["state_out"])[1], s0)
    np.testing.assert_array_equal(np.asarray(inter["mem_out"])[1], mem0)
    assert np.asarray(inter["used_pose_token"]).tolist() == [True, False, False]


def test_fp16_rope_matters(vectors):
    """The float16 rounding of q/k is what brings the encoder to the reference (§3.3)."""
    cfg = Cut3rConfig.from_config(get_config("tiny").model)
    plain = Cut3rConfig(**{**cfg.__dict__, "fp16_rope": False})
    img = jnp.asarray(vectors["in_frames"][0]).transpose(0, 2, 3, 1)
    ref = vectors["seq_enc_feat"][0]
    errs = []
    for c in (cfg, plain):
        model, _ = load_cut3r(os.path.join(DATA, "cut3r_tiny_state_dict.npz"), c)
        errs.append(float(np.max(np.abs(np.asarray(model.encode(img)[0]) - ref))))
    assert errs[0] < errs[1]


def test_pose_chaining_and_focal():
    z = np.load(os.path.join(DATA, "cut3r_chaining_vectors.npz"))
    frames, resets = reset_views(3, 2)
    assert frames.tolist() == [0, 1, 1, 2]
    np.testing.assert_array_equal(resets, z["in_reset"])
    T = np.asarray(pose_to_T_world_cam(jnp.asarray(z["camera_pose"][:, 0])))
    np.testing.assert_allclose(T, z["c2w"][:, 0], atol=1e-6)
    kept, T_world = chain_chunks(T, resets)
    np.testing.assert_array_equal(kept, z["post_kept_views"])
    np.testing.assert_allclose(T_world, z["post_c2w"], atol=1e-5)
    anchor, online = jnp.eye(4), []
    for i in kept:
        T_i, anchor = chain_step(anchor, jnp.asarray(T[i]), jnp.asarray(resets[i]))
        online.append(np.asarray(T_i))
    np.testing.assert_allclose(np.stack(online), z["post_c2w"], atol=1e-5)
    pts = z["pts3d_in_self_view"][kept, 0]
    world = np.einsum("kij,khwj->khwi", T_world[:, :3, :3], pts) + T_world[:, None, None, :3, 3]
    np.testing.assert_allclose(world, z["post_pts3d_world"], atol=1e-4)
    f = np.asarray(focal_from_pointmap(jnp.asarray(z["focal_test_pts3d"])))
    np.testing.assert_allclose(f, z["focal_test_weiszfeld"], rtol=1e-5)
    f_post = np.asarray(focal_from_pointmap(jnp.asarray(pts)))
    np.testing.assert_allclose(f_post, z["post_focal"], atol=1e-6)
