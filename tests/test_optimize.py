"""Tests of josh_jax.optimize: loss parity with the reference, the fast pair-loss formulation,
the kinematic chain, the repeated Adam, short runs, batching, NaN isolation, clips without people
or contacts.

Small problems come from `tests/data/reference_clip_small.npz` (3 keyframes of the reference clip
at 36 x 64, anchors every 4 px). One config and one bucket shape are shared by all runs so the
optimizer compiles once for single clips and once for the batch of 4. Tests that run the
optimizer are marked slow.
"""

import dataclasses
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import losses
from body_models.loaders import load_model
from experiments.configs import josh as josh_config
from josh_jax import optimize as opt
from josh_jax import prepare as prep
from josh_jax.clip import load_any
from josh_jax.geometry import axis_angle_to_matrix
from tests.paths import REF_INPUTS, REFERENCE_CLIP, SMALL_CLIP, SMPL_PATH


def _config():
    cfg = josh_config.get_config("fast")
    cfg.subsample = 4
    cfg.stage1.iters = 40
    cfg.stage2.iters = 20  # stage 2 restarts Adam: fewer steps end in its transient
    return cfg


@pytest.fixture(scope="module")
def model():
    return load_model(SMPL_PATH)


@pytest.fixture(scope="module")
def small(model):
    clip, _ = load_any(SMALL_CLIP)
    cfg = _config()
    return clip, cfg, prep.prepare(clip, cfg, model)


def _random_params(pb, cfg, seed=0):
    p = opt.init_params(pb, cfg)
    rng = np.random.default_rng(seed)
    q = np.asarray(p.cam_quat) + rng.normal(scale=0.05, size=p.cam_quat.shape)
    return dataclasses.replace(
        p,
        cam_quat=jnp.asarray(q, jnp.float32),
        cam_trans=jnp.asarray(rng.normal(scale=0.1, size=p.cam_trans.shape), jnp.float32),
        cam_log_size=jnp.asarray(rng.normal(scale=0.1, size=p.cam_log_size.shape), jnp.float32),
        log_focal=p.log_focal + 0.05,
    )


def test_compose_chain_matches_sequential():
    rng = np.random.default_rng(0)
    parent = np.array([-1, 0, 1, 1, 3, 0, -1])  # node 6 is padding (its own root)
    R = np.asarray(axis_angle_to_matrix(jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)))
    t = rng.normal(size=(7, 3)).astype(np.float32)
    Rw, tw = opt.compose_chain(jnp.asarray(R), jnp.asarray(t), jnp.asarray(parent))
    for i in range(7):
        Ri, ti = np.eye(3), np.zeros(3)
        k = i
        while k >= 0:  # C_i = Rel_root ... Rel_i
            Ri, ti = R[k] @ Ri, R[k] @ ti + t[k]
            k = parent[k]
        np.testing.assert_allclose(Rw[i], Ri, atol=1e-5)
        np.testing.assert_allclose(tw[i], ti, atol=1e-5)


def test_pair_loss_matches_losses_package(small):
    """The fused per-pair formulation equals losses.match_3d_loss / reprojection_loss."""
    _, cfg, pb = small

    @jax.jit  # one program instead of hundreds of eager ops
    def fused_and_direct(p, pb):
        T, f, depth_scale = opt.camera_forward(p, pb, cfg)
        prop = opt.is_proportional(cfg)
        Xi = jnp.stack(opt.match_points_world(pb, 0, T, f, depth_scale, prop), -1).reshape(-1, 3)
        Xj = jnp.stack(opt.match_points_world(pb, 1, T, f, depth_scale, prop), -1).reshape(-1, 3)
        conf = pb.matches.conf.reshape(-1)
        l3 = losses.match_3d_loss(Xi, Xj, conf, 1.1)
        pp = pb.cameras.pp
        K = jnp.array([[f, 0, pp[0]], [0, f, pp[1]], [0, 0, 1.0]])
        T_cw = jnp.linalg.inv(T)
        i = jnp.repeat(pb.matches.pair_index[:, 0], pb.matches.conf.shape[1])
        j = jnp.repeat(pb.matches.pair_index[:, 1], pb.matches.conf.shape[1])
        proj = jax.vmap(lambda Tc, x: losses.project_points(K, Tc, x[None])[0])
        uv_i = pb.matches.uv[:2].reshape(2, -1).T
        uv_j = pb.matches.uv[2:].reshape(2, -1).T
        l2 = losses.reprojection_loss(
            jnp.concatenate([uv_i, uv_j]),
            jnp.concatenate([proj(T_cw[i], Xj), proj(T_cw[j], Xi)]),
            jnp.concatenate([conf, conf]),
            0.4,
        )
        fused = [opt.pair_loss(pb, cfg, stage, T, f, depth_scale) for stage in (1, 2)]
        return jnp.stack(fused), jnp.stack([l3, l2])

    fused, direct = fused_and_direct(_random_params(pb, cfg), pb)
    assert np.all(np.asarray(direct) > 0)
    np.testing.assert_allclose(fused, direct, rtol=1e-4)


def test_proportional_focal_depth_keeps_the_relief(small):
    """A focal change scales every depth by f/f0 under "proportional" (relief kept); JOSH's model
    shifts every depth by m (f/f0 - 1), shrinking the relative relief as f0/f. The default config
    uses the proportional model with the focal prior, reference_compat JOSH's without."""
    from josh_jax.optimize import matches as match_lib

    _, _, pb = small
    default = josh_config.get_config("default")
    assert default.focal_depth_model == "proportional" and default.weights.focal > 0.0
    compat = josh_config.get_config("reference_compat")
    assert compat.focal_depth_model == "josh" and compat.weights.focal == 0.0

    @jax.jit  # one program instead of many eager ops
    def depths(pb):
        cams, f0 = pb.cameras, pb.cameras.focal_init
        ones = jnp.ones_like(cams.frame_valid, jnp.float32)
        f, img = 1.2 * f0, pb.matches.pair_index[:, 0]
        out = {"D0": opt.anchor_depths(cams, f0, ones)}
        for prop in (False, True):
            out[f"D0_{prop}"] = opt.anchor_depths(cams, f0, ones, prop)
            out[f"D_{prop}"] = opt.anchor_depths(cams, f, ones, prop)
            # The fused pair-term constants follow the same model: a match's camera depth.
            out[f"z_{prop}"] = opt.scene_depth(cams, img[:, None], pb.matches.depth[0],
                                               pb.matches.offset[0], f, ones, proportional=prop)
            out[f"z1_{prop}"] = match_lib.stage1_points(pb, f, prop)[:, 2]
            coeffs = match_lib._camera_coeffs(pb, img, f, ones, prop)[:, 2]
            out[f"z2_{prop}"] = jnp.einsum("ek,ekm->em", coeffs,
                                           match_lib.stage2_features(pb)[:, 0])
        # The focal prior: 0 at f_init, growing with |log(f / f_init)|.
        out["prior"] = jnp.stack([opt.focal_prior_term(jnp.log(f0 * r), pb)
                                  for r in (1.0, 1.05, 1.2)])
        return out

    out = jax.tree.map(np.asarray, depths(pb))
    valid = np.asarray(pb.cameras.frame_valid)
    relief = lambda D: np.std(D[valid], 1) / np.mean(D[valid], 1)  # relative, per image
    for prop in (False, True):  # at f0 both models give the prepared anchor depths
        np.testing.assert_allclose(out[f"D0_{prop}"][valid], out["D0"][valid], rtol=1e-6)
        np.testing.assert_allclose(out[f"z1_{prop}"], out[f"z_{prop}"], rtol=1e-5)
        np.testing.assert_allclose(out[f"z2_{prop}"], out[f"z_{prop}"], rtol=1e-4)
    np.testing.assert_allclose(out["D_True"][valid], 1.2 * out["D0"][valid], rtol=1e-5)
    np.testing.assert_allclose(relief(out["D_True"]), relief(out["D0"]), rtol=1e-4)
    assert np.all(relief(out["D_False"]) < relief(out["D0"]) / 1.1)  # ~1/1.2 of it left
    assert out["prior"][0] == 0.0 and 0.0 < out["prior"][1] < out["prior"][2]


def test_depth_along_ray_moves_the_body_along_its_camera_ray(small):
    """exp(track scale + frame offset) scales the transl: its image direction is unchanged."""
    _, cfg, pb = small
    p0 = opt.init_params(pb, cfg)
    rng = np.random.default_rng(1)
    off = jnp.asarray(rng.normal(scale=0.05, size=p0.depth_log_offset.shape), jnp.float32)
    p = dataclasses.replace(p0, depth_log_scale=p0.depth_log_scale + 0.1, depth_log_offset=off)
    f = opt.focal_of(p, pb.cameras)
    t0 = np.asarray(opt.effective_transl(p0, pb, cfg, f))
    t = np.asarray(opt.effective_transl(p, pb, cfg, f))
    np.testing.assert_allclose(t[..., :2] / t[..., 2:], t0[..., :2] / t0[..., 2:], rtol=1e-5)
    np.testing.assert_allclose(t[..., 2] / t0[..., 2], np.exp(0.1 + np.asarray(off)), rtol=1e-5)
    # Off (reference_compat): the depth parameters are frozen and have no effect.
    off_cfg = josh_config.get_config("reference_compat")
    assert opt.param_labels(p, 1, off_cfg).depth_log_offset == "frozen"
    assert opt.param_labels(p, 2, cfg).depth_log_scale == "depth"
    np.testing.assert_array_equal(
        opt.effective_transl(p, pb, off_cfg, f), opt.effective_transl(p0, pb, off_cfg, f)
    )


def _adam_listed_repeatedly(grads, lr, repeats):
    """PyTorch's Adam(betas=(0.9, 0.9)) on one parameter listed `repeats` times: every
    occurrence updates the shared moments and step count and moves the parameter."""
    m = v = 0.0
    count = 0
    updates = []
    for g in grads:
        total = 0.0
        for _ in range(repeats):
            count += 1
            m, v = 0.9 * m + 0.1 * g, 0.9 * v + 0.1 * g * g
            total -= lr * (m / (1 - 0.9**count)) / (np.sqrt(v / (1 - 0.9**count)) + 1e-8)
        updates.append(total)
    return updates


def test_repeated_adam_applies_every_repeat():
    lr, grads, repeats = 0.01, [0.3, -0.1], 70  # more repeats than any fixed loop bound
    tx = opt.repeated_adam(optax.constant_schedule(lr), jnp.asarray(repeats))
    state = tx.init({"x": jnp.zeros(())})
    ours = []
    for g in grads:
        updates, state = tx.update({"x": jnp.asarray(g)}, state)
        ours.append(float(updates["x"]))
    assert int(state.count) == len(grads) * repeats
    np.testing.assert_allclose(ours, _adam_listed_repeatedly(grads, lr, repeats), rtol=1e-5)


def _run(pb, cfg):
    sol = opt.optimize_jit(pb, ml_collections.FrozenConfigDict(cfg))
    jax.block_until_ready(sol)
    return sol


@pytest.mark.slow
def test_short_run_reduces_every_loss_term(small):
    _, cfg, pb = small
    sol = _run(pb, cfg)
    diag = sol.diagnostics
    assert not bool(diag.nan) and not bool(diag.diverged)
    np.testing.assert_array_equal(diag.iters_run, [cfg.stage1.iters, cfg.stage2.iters])
    c1 = np.asarray(diag.curve_stage1)
    assert c1.shape == (cfg.stage1.iters, len(opt.CURVE_COLUMNS))
    np.testing.assert_allclose(c1[:, 0], c1[:, 1:].sum(1), rtol=1e-5)  # total = sum of terms
    # Stage-1 terms at the final parameters.
    terms1 = jax.jit(lambda p, q: opt.loss_terms(p, q, cfg, 1)[1])  # compiled once, used twice
    end1 = terms1(sol.params, pb)
    end1 = np.asarray(end1)
    start = c1[0]
    cols = opt.CURVE_COLUMNS
    # The same cameras with the initial (HMR) humans: what the human parameters improved.
    p0 = opt.init_params(pb, cfg)
    human = ("root_rot", "body_pose", "transl", "betas", "depth_log_scale", "depth_log_offset")
    cams_only = dataclasses.replace(sol.params, **{k: getattr(p0, k) for k in human})
    hmr1 = np.asarray(terms1(cams_only, pb))
    for k, name in enumerate(cols):
        if name == "prior":  # 0 at the initialisation by definition
            assert start[k] == 0.0
            continue
        assert start[k] > 0, name
        if name in ("static", "smooth"):
            # World-frame motion terms depend on the cameras, which start at identity (the
            # camera-frame motion): they may rise as the cameras are recovered, but the humans
            # must make them lower than the HMR bodies would be under the final cameras.
            assert end1[k] < hmr1[k], f"{name}: {hmr1[k]} (HMR, final cameras) -> {end1[k]}"
            continue
        # Stage 1's own curve (stage 2 minimises the 2D reprojection, not the 3D match term).
        assert c1[-1, k] < start[k], f"{name}: {start[k]} -> {c1[-1, k]}"
    c2 = np.asarray(diag.curve_stage2)
    # Stage 2 lowers its own objective (its pair term may trade off against the scale term).
    assert float(diag.final_terms[0]) < c2[0, 0]
    assert np.isfinite(float(sol.focal)) and float(sol.focal) > 0
    # The depth along the ray is optimised (default config).
    assert np.any(np.asarray(sol.params.depth_log_offset)[np.asarray(pb.tracks.valid)] != 0.0)


@pytest.mark.slow
def test_clip_without_people_optimises_scene(small, model):
    clip, cfg, pb = small
    P = 0
    empty = clip.replace(
        smpl_global_orient=np.zeros((P,) + clip.smpl_global_orient.shape[1:], np.float32),
        smpl_body_pose=np.zeros((P,) + clip.smpl_body_pose.shape[1:], np.float32),
        smpl_betas=np.zeros((P,) + clip.smpl_betas.shape[1:], np.float32),
        smpl_transl=np.zeros((P,) + clip.smpl_transl.shape[1:], np.float32),
        smpl_valid=np.zeros((P,) + clip.smpl_valid.shape[1:], bool),
        contact=np.zeros((P,) + clip.contact.shape[1:], np.float32),
    )
    pe = prep.prepare(empty, cfg, model)
    assert not bool(pe.tracks.valid.any())
    sol = _run(pe, cfg)
    assert not bool(sol.diagnostics.nan)
    c1 = np.asarray(sol.diagnostics.curve_stage1)
    np.testing.assert_array_equal(c1[:, 2:], 0.0)  # no human terms
    assert c1[-1, 1] < c1[0, 1]
    # Without people the scale is normalised (JOSH's global scaling): min depth scale is 1.
    _, _, depth_scale = opt.camera_forward(sol.params, pe, cfg)
    valid = np.asarray(pe.cameras.frame_valid)
    np.testing.assert_allclose(np.min(np.asarray(depth_scale)[valid]), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_clip_with_people_but_no_contacts_warns_and_runs(small, model, caplog):
    clip, cfg, _ = small
    with caplog.at_level(logging.WARNING):
        pn = prep.prepare(clip.replace(contact=np.zeros_like(clip.contact)), cfg, model)
    assert "no contact-scale entry" in caplog.text
    assert "contact: track 0 has no vertex above contact_thres" in caplog.text
    sol = _run(pn, cfg)
    assert not bool(sol.diagnostics.nan)
    curve = np.asarray(sol.diagnostics.curve_stage1)
    assert np.all(curve[:, 2] == 0.0)  # no scale term
    assert curve[0, 5] > 0  # the smoothness term is active


def _variants(pb):
    """Four distinct clips of one bucket shape (perturbed copies of the small problem)."""
    out = []
    for k in range(4):
        tracks = dataclasses.replace(pb.tracks, transl=pb.tracks.transl * (1.0 + 0.02 * k))
        matches = dataclasses.replace(pb.matches, conf=pb.matches.conf * (1.0 + 0.1 * k))
        out.append(dataclasses.replace(pb, tracks=tracks, matches=matches))
    return out


@pytest.mark.devices(4)
@pytest.mark.slow
def test_batched_equals_sequential_and_nan_isolation(small):
    _, cfg, pb = small
    clips = _variants(pb)
    mesh = opt.make_clips_mesh(4)
    batch = opt.optimize_many(prep.stack_problems(clips), cfg, mesh=mesh)
    jax.block_until_ready(batch)
    assert batch.T_world_cam.shape[0] == 4
    assert batch.T_world_cam.sharding.spec[0] == "clips"
    for k in (0, 3):
        seq = _run(clips[k], cfg)
        # vmap changes float rounding (1e-6), which Adam's normalised steps amplify a little
        # over the run: equal up to a small tolerance, not bitwise.
        for name in ("T_world_cam", "focal", "smpl_transl", "smpl_betas"):
            np.testing.assert_allclose(
                getattr(batch, name)[k], getattr(seq, name), rtol=2e-3, atol=2e-3, err_msg=name
            )
        # The prior term wobbles more: Adam oscillates around the kink of the robust prior at
        # the initial body pose, so rounding differences show there first.
        batch_diag, seq_diag = batch.diagnostics, seq.diagnostics
        ft_b, ft_s = np.asarray(batch_diag.final_terms[k]), np.asarray(seq_diag.final_terms)
        not_prior = np.array([1, 2, 3, 5])  # pair, scale, static, smooth
        np.testing.assert_allclose(ft_b[not_prior], ft_s[not_prior], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(ft_b, ft_s, rtol=2e-2)
        c1_b, c1_s = batch_diag.curve_stage1[k], seq_diag.curve_stage1
        np.testing.assert_allclose(c1_b, c1_s, rtol=1e-2, atol=1e-3)
        np.testing.assert_allclose(c1_b[0], c1_s[0], rtol=1e-6)
    # NaN in clip 2: flagged, last finite params kept, the other clips bit-identical.
    bad = list(clips)
    broken = clips[2].matches.depth.at[0, 0, 0].set(jnp.nan)
    bad[2] = dataclasses.replace(
        clips[2], matches=dataclasses.replace(clips[2].matches, depth=broken)
    )
    nan_batch = opt.optimize_many(prep.stack_problems(bad), cfg, mesh=mesh)
    jax.block_until_ready(nan_batch)
    nan_diag = nan_batch.diagnostics
    np.testing.assert_array_equal(np.asarray(nan_diag.nan), [False, False, True, False])
    np.testing.assert_array_equal(np.asarray(nan_diag.diverged), [False, False, True, False])
    assert int(nan_diag.iters_run[2, 0]) == 0
    assert np.all(np.isfinite(np.asarray(nan_batch.T_world_cam[2])))
    for k in (0, 1, 3):
        for leaf_a, leaf_b in zip(
            jax.tree_util.tree_leaves(nan_batch), jax.tree_util.tree_leaves(batch), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(leaf_a)[k], np.asarray(leaf_b)[k])
    # Odd clip counts are padded with dummy clips and trimmed again.
    three = opt.optimize_many(clips[:3], cfg, mesh=mesh)
    assert three.T_world_cam.shape[0] == 3


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(REFERENCE_CLIP), reason=f"reference clip not found at {REFERENCE_CLIP}"
)
def test_iteration0_loss_terms_match_reference(model):
    ref = np.load(REF_INPUTS)
    cols = [str(c) for c in ref["curve_columns"]]  # lr, total, scale, static, prior, smooth
    first = ref["curve_coarse_first"][0]
    clip, _ = load_any(REFERENCE_CLIP)
    cfg = josh_config.get_config("reference_compat")
    pb = prep.prepare(clip, cfg, model)
    p = opt.init_params(pb, cfg)
    _, terms = jax.jit(lambda p, q: opt.loss_terms(p, q, cfg, 1))(p, pb)
    ours = dict(zip(opt.CURVE_COLUMNS, np.asarray(terms, np.float64), strict=True))
    for name in ("total", "scale", "static", "prior", "smooth"):
        ref_v = first[cols.index(name)]
        # The reference's curves are rounded to 3 decimals.
        assert abs(round(ours[name], 3) - ref_v) <= 1e-3 + 1e-9, (name, ours[name], ref_v)


@pytest.mark.slow
def test_diverging_run_is_flagged(small):
    """A learning rate 40x too large makes the loss climb without any NaN: flagged `diverged`."""
    _, cfg, pb = small
    wild = cfg.copy_and_resolve_references()
    wild.stage1.lr = 3.0
    sol = _run(pb, wild)
    assert not bool(sol.diagnostics.nan)
    assert bool(sol.diagnostics.diverged)
    c1 = np.asarray(sol.diagnostics.curve_stage1)
    assert c1[-1, 0] > opt.DIVERGENCE_FACTOR * c1[0, 0]


def test_global_coupling_passes_only_the_global_scale():
    """The human terms' view of the cameras (stage 1): same values, no gradient to one camera's
    pose or depth scale, a uniform gradient to every valid image's log depth scale."""
    from types import SimpleNamespace

    from josh_jax.optimize.objective import global_coupling

    problem = SimpleNamespace(cameras=SimpleNamespace(frame_valid=jnp.array([True, True, True,
                                                                             False])))
    rng = np.random.default_rng(0)
    T = jnp.asarray(np.tile(np.eye(4, dtype=np.float32), (4, 1, 1)))
    T = T.at[:, :3, 3].set(jnp.asarray(rng.normal(size=(4, 3)), jnp.float32))
    s = jnp.asarray([0.8, 1.0, 1.3, 1.0], jnp.float32)
    w = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    u = jnp.asarray(rng.normal(size=(4, 4, 4)), jnp.float32)

    def f(T, log_s):
        T2, s2 = global_coupling(T, jnp.exp(log_s), problem)
        return jnp.sum(w * s2) + jnp.sum(u * T2)

    T2, s2 = global_coupling(T, s, problem)
    np.testing.assert_allclose(T2, T, rtol=1e-6)
    np.testing.assert_allclose(s2, s, rtol=1e-6)
    gT, gs = jax.grad(f, argnums=(0, 1))(T, jnp.log(s))
    assert float(jnp.max(jnp.abs(gT))) == 0.0  # no camera pose moves on its own
    expected = (jnp.sum(w * s) + jnp.sum(u[:, :3, 3] * T[:, :3, 3])) / 3.0
    np.testing.assert_allclose(gs[:3], np.full(3, expected), rtol=1e-5)  # one global scale
    assert float(gs[3]) == 0.0  # padding
