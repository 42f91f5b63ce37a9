"""Tests of josh_jax.prepare: host preprocessing and parity with the reference.

The parity test needs the reference clip `../shared/reference/josh_synthetic_clip.npz` (18 MB,
outside the repository) and is skipped with a reason when it is missing; the reference's own
optimizer inputs it checks against are in `tests/data/josh_reference_opt_inputs.npz` (a copy of
the `opt_input_*` arrays of `josh_reference_outputs_pipeline.npz`).
"""

import dataclasses
import logging
import os

import jax.numpy as jnp
import numpy as np
import pytest

from body_models.loaders import load_model
from body_models.model import lbs
from experiments.configs import josh as josh_config
from josh_jax import prepare as prep
from josh_jax.clip import load_any
from josh_jax.geometry import axis_angle_to_matrix
from josh_jax.optimize import surface_offset
from josh_jax.prepare.camera_graph import max_spanning_tree
from josh_jax.prepare.contacts import fit_surface
from josh_jax.prepare.focal import weiszfeld_focal
from tests.paths import REF_INPUTS, REFERENCE_CLIP, SMALL_CLIP, SMPL_PATH


def _pointmap(depth, f):
    H, W = depth.shape[-2:]
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    return np.stack([(u - W / 2) * depth / f, (v - H / 2) * depth / f, depth], -1).astype(
        np.float32
    )


def test_weiszfeld_recovers_focal():
    rng = np.random.default_rng(0)
    depth = 2.0 + rng.random((48, 64)).astype(np.float32)
    for f in (60.0, 90.0):
        est = weiszfeld_focal(_pointmap(depth, f))
        np.testing.assert_allclose(est, f, rtol=1e-4)


def test_canonical_views_block_relative_depth():
    rng = np.random.default_rng(1)
    depth = (1.0 + rng.random((2, 16, 24))).astype(np.float32)
    pts = np.stack([_pointmap(d, 30.0) for d in depth])
    conf = np.full(depth.shape, 3.0, np.float32)
    conf[0, 0, 0] = 1.0  # a "human" pixel: cconf 0.001 < 0.1
    v = prep.canonical_views(pts, conf, subsample=8, conf_offset=0.999, conf_thres=0.1)
    zc = np.repeat(np.repeat(depth[:, 4::8, 4::8], 8, 1), 8, 2)
    np.testing.assert_allclose(v.canon2, depth / zc, rtol=2e-5)
    np.testing.assert_allclose(v.core_depth, depth[:, 4::8, 4::8].reshape(2, -1))
    assert not v.scene_mask[0, 0, 0] and v.scene_mask[0, 0, 1]
    a, off = prep.anchor_offsets(v, 1, np.array([[9, 3], [23, 15]]))
    np.testing.assert_array_equal(a, [1, 5])
    np.testing.assert_allclose(
        off, [depth[1, 3, 9] / depth[1, 4, 12], depth[1, 15, 23] / depth[1, 12, 20]], rtol=2e-5
    )
    with pytest.raises(ValueError, match="multiple of the anchor step"):
        prep.canonical_views(
            pts[:, :12], conf[:, :12], subsample=8, conf_offset=0.999, conf_thres=0.1
        )


def test_max_spanning_tree_small_graph():
    # Path 0-1-2-3-4 carries the largest scores; 0-4 and 1-3 are weak and must be dropped.
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [0, 4], [1, 3]])
    scores = np.array([10, 9, 8, 7, 1, 2])
    root, edges = max_spanning_tree(5, pairs, scores)
    assert root == 2  # the centre of the path
    assert {tuple(sorted(e)) for e in edges.tolist()} == {(0, 1), (1, 2), (2, 3), (3, 4)}
    # BFS order: every parent appears before its children.
    seen = {root}
    for a, b in edges.tolist():
        assert a in seen
        seen.add(b)
    with pytest.raises(ValueError, match="disconnected"):
        max_spanning_tree(4, np.array([[0, 1], [2, 3]]), np.array([5, 5]))


def test_bucket_size_and_cap():
    assert prep.bucket_size(0, (8, 16)) == 8
    assert prep.bucket_size(9, (8, 16)) == 16
    assert prep.bucket_size(40, (8, 16)) == 48
    rng = np.random.default_rng(0)
    xy = rng.random((100, 2, 2)).astype(np.float32)
    conf = rng.random(100).astype(np.float32) + 0.1
    xy2, c2 = prep.cap_matches(xy, conf, 30, rng)
    assert xy2.shape == (30, 2, 2)
    np.testing.assert_allclose(c2.sum(), conf.sum(), rtol=1e-5)  # the pair keeps its weight
    xy3, c3 = prep.cap_matches(xy, conf, 0, rng)
    assert xy3 is xy and c3 is conf


def test_subset_body_model_is_exact():
    model = load_model(SMPL_PATH)
    ids = np.array([3, 100, 3856, 6001])
    sub = prep.subset_body_model(model, ids)
    rng = np.random.default_rng(0)
    betas = jnp.asarray(rng.normal(size=10), jnp.float32)
    aa = rng.normal(scale=0.3, size=(24, 3)).astype(np.float32)
    R = axis_angle_to_matrix(jnp.asarray(aa))
    t = jnp.array([0.1, -0.2, 3.0])
    full = lbs(model, betas, R[0], R[1:], t)
    part = lbs(sub, betas, R[0], R[1:], t)
    np.testing.assert_allclose(part.vertices[:4], full.vertices[ids], atol=2e-5)
    np.testing.assert_allclose(part.joints, full.joints, atol=2e-5)
    np.testing.assert_allclose(part.vertices[4:], full.joints, atol=2e-5)  # virtual joints


def _small_problem(**overrides):
    clip, _ = load_any(SMALL_CLIP)
    cfg = josh_config.get_config("fast")
    cfg.subsample = 4  # the 36 x 64 fixture is not a multiple of 8
    for k, v in overrides.items():
        cfg[k] = v
    return clip, cfg


def test_prepare_small_clip_shapes_masks_and_stacking():
    clip, cfg = _small_problem()
    model = load_model(SMPL_PATH)
    pb, info = prep.prepare(clip, cfg, model, return_info=True)
    T = clip.num_frames
    N = pb.num_frames
    assert N == 8 and int(pb.cameras.frame_valid.sum()) == T
    n_valid = int((np.asarray(clip.match_confidence) > 1e-3).sum())
    assert int((np.asarray(pb.matches.conf) > 0).sum()) == n_valid == info.num_matches
    # Human transl z is rescaled by focal_init / hmr_focal.
    ratio = info.focal_init / float(clip.hmr_focal)
    np.testing.assert_allclose(
        pb.tracks.transl[0, :T, 2], clip.smpl_transl[0, :, 2] * ratio, rtol=1e-5
    )
    np.testing.assert_allclose(pb.tracks.transl[0, :T, :2], clip.smpl_transl[0, :, :2], rtol=1e-6)
    # Matches: the stored depth is the anchor depth of the pixel's block.
    uv = np.asarray(pb.matches.uv)
    k = int(np.argmax(np.asarray(pb.matches.conf)[0]))
    i = int(pb.matches.pair_index[0, 0])
    x, y = int(uv[0, 0, k]), int(uv[1, 0, k])
    a = (y // 4) * (64 // 4) + x // 4
    np.testing.assert_allclose(pb.matches.depth[0, 0, k], info.views.core_depth[i, a])
    # Stacking: equal buckets stack, different ones are refused with the field name.
    batch = prep.stack_problems([pb, pb], pad_to=3)
    assert batch.matches.conf.shape == (3,) + pb.matches.conf.shape
    assert float(batch.matches.conf[2].sum()) == 0.0 and not bool(batch.tracks.valid[2].any())
    fewer = dataclasses.replace(pb.matches, conf=pb.matches.conf[:, :10])
    with pytest.raises(ValueError, match="matches.conf"):
        prep.stack_problems([pb, dataclasses.replace(pb, matches=fewer)])


def test_prepare_without_contacts_warns(caplog):
    clip, cfg = _small_problem()
    clip = clip.replace(contact=np.zeros_like(clip.contact))
    with caplog.at_level(logging.WARNING):
        pb = prep.prepare(clip, cfg, load_model(SMPL_PATH))
    assert "track 0 has no contact-scale entry" in caplog.text
    assert float(pb.contacts.conf.sum()) == 0.0 and bool(pb.tracks.valid.any())


@pytest.mark.skipif(
    not os.path.exists(REFERENCE_CLIP), reason=f"reference clip not found at {REFERENCE_CLIP}"
)
def test_prepare_reference_parity():
    ref = np.load(REF_INPUTS)
    clip, _ = load_any(REFERENCE_CLIP)
    model = load_model(SMPL_PATH)
    cfg = josh_config.get_config("reference_compat")
    pb, info = prep.prepare(clip, cfg, model, return_info=True)
    T = clip.num_frames
    # Anchor depths and focals.
    np.testing.assert_allclose(info.views.core_depth, ref["opt_input_core_depth"], rtol=1e-5)
    np.testing.assert_allclose(
        pb.cameras.weiszfeld_focal[:T], ref["opt_input_base_focals"], rtol=1e-5
    )
    np.testing.assert_allclose(info.focal_init, ref["opt_input_init_K"][0, 0], rtol=1e-6)
    # Spanning tree: root and edge set (the order matches too).
    assert info.mst_root == int(ref["opt_input_mst_root"])
    assert {tuple(e) for e in info.mst_edges.tolist()} == {
        tuple(e) for e in ref["opt_input_mst_edges"].tolist()
    }
    np.testing.assert_array_equal(
        np.asarray(pb.cameras.chain_parent)[ref["opt_input_mst_edges"][:, 1]],
        ref["opt_input_mst_edges"][:, 0],
    )
    assert info.num_matches == int(ref["opt_input_n_corres_total"]) // 2  # pairs used once
    # Contact-scale entries [image, anchor, offset, conf, smpl_idx, vertex] and static pairs.
    tc = info.contacts[0]
    ours = np.c_[tc.image, tc.anchor, tc.offset, tc.conf, tc.frame, tc.vertex]
    np.testing.assert_allclose(ours, ref["opt_input_smpl_scale_info"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        np.c_[tc.static_frame, tc.static_vertex], ref["opt_input_smpl_static_info"]
    )
    np.testing.assert_allclose(
        pb.tracks.transl[0, :T], ref["opt_input_init_smpl_trans"], rtol=1e-5, atol=1e-5
    )
    # The default (fixed) contacts keep every reference entry's frame and use more contacts.
    _, info_d = prep.prepare(clip, josh_config.get_config("default"), model, return_info=True)
    assert len(info_d.contacts[0].conf) > len(tc.conf)
    np.testing.assert_array_equal(info_d.contacts[0].frame, info_d.contacts[0].image)


def test_contact_surface_fit_recovers_a_plane_and_ignores_a_box():
    """A tilted floor seen by a pinhole camera: the fit returns its depth and inverse-depth slope
    at the contact pixel, the optimiser's re-association formula re-reads it elsewhere, and a box
    standing in part of the window is rejected as outliers."""
    H, W, f = 64, 96, 80.0
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    # Plane n . X = 1 in camera coordinates: 1/z = n . ((u - cx)/f, (v - cy)/f, 1).
    n = np.array([0.02, 0.3, 0.15])
    inv = n[0] * (u - W / 2) / f + n[1] * (v - H / 2) / f + n[2]
    depth = 1.0 / inv
    support = np.ones((H, W), bool)
    conf = np.full((H, W), 2.0)
    u0, v0 = 40.3, 30.7
    z_true = lambda uu, vv: 1.0 / (n[0] * (uu - W / 2) / f + n[1] * (vv - H / 2) / f + n[2])
    z0, slope, rms, c = fit_surface(depth, support, conf, u0, v0, radius=10)
    np.testing.assert_allclose(z0, z_true(u0, v0), rtol=1e-9)
    np.testing.assert_allclose(slope, np.array([n[0], n[1]]) / f * z_true(u0, v0), rtol=1e-7)
    assert rms < 1e-9 and c == 2.0
    # Re-association: the offset re-read 6 px right and 4 px down is the plane's depth there.
    o = surface_offset(jnp.float32(1.0), jnp.asarray(slope, jnp.float32), jnp.array([6.0, 4.0]), 10)
    np.testing.assert_allclose(float(o) * z0, z_true(u0 + 6, v0 + 4), rtol=1e-5)
    # Clipped to the fitted window: 50 px reads the window's edge (10 px).
    o_far = surface_offset(jnp.float32(1.0), jnp.asarray(slope, jnp.float32), jnp.array([50.0, 0.0]), 10)
    np.testing.assert_allclose(float(o_far) * z0, z_true(u0 + 10, v0), rtol=1e-5)
    # A box 30 % nearer covering a corner of the window: still the floor.
    boxed = depth.copy()
    boxed[20:27, 30:38] *= 0.7
    z_box, slope_box, _, _ = fit_surface(boxed, support, conf, u0, v0, radius=10)
    np.testing.assert_allclose(z_box, z_true(u0, v0), rtol=1e-6)
    np.testing.assert_allclose(slope_box, slope, rtol=1e-4)
    # Unsupported window: no fit.
    assert fit_surface(depth, np.zeros((H, W), bool), conf, u0, v0, radius=10) is None
