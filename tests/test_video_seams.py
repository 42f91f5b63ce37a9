"""Robust chunk alignment (orientations, scale prior) and the joint refinement across seams, on
trajectories with a known answer."""

import dataclasses

import jax.numpy as jnp
import numpy as np

from josh_jax import geometry
from josh_jax.video import seam_refine, seams, sim3, stitch
from tests.test_video_long import _chunks


def _rot(aa):
    return geometry.axis_angle_to_matrix_host(np.asarray(aa, np.float64))


def test_orientations_fix_the_roll_that_collinear_points_leave_free():
    """Points on a line (a straight walk seen over a short overlap) fix the rotation only up to a
    roll about the line; the orientation term of `fit_sim3` recovers it."""
    rng = np.random.default_rng(0)
    x = np.stack([np.linspace(0, 2, 20), np.zeros(20), np.zeros(20)], -1)
    R_true, t_true, s_true = _rot([0.9, -0.4, 0.3]), np.array([1.0, 2.0, -0.5]), 1.3
    y = s_true * x @ R_true.T + t_true
    R_src = _rot(rng.normal(size=(20, 3)))
    R_dst = R_true @ R_src
    w = jnp.ones(20)
    points_only = sim3.fit_sim3(jnp.asarray(x), jnp.asarray(y), w, True)
    both = sim3.fit_sim3(jnp.asarray(x), jnp.asarray(y), w, True, jnp.asarray(R_src),
                         jnp.asarray(R_dst), jnp.ones(20))
    np.testing.assert_allclose(both.R, R_true, atol=1e-4)
    np.testing.assert_allclose(both.scale, s_true, rtol=1e-4)
    np.testing.assert_allclose(both.t, t_true, atol=1e-4)
    # The points alone are matched, but the rotation about the line is not the true one.
    np.testing.assert_allclose(sim3.apply_points(points_only, jnp.asarray(x)), y, atol=1e-4)
    assert np.max(np.abs(np.asarray(points_only.R) - R_true)) > 0.1


def test_fit_sim3_reduces_to_umeyama_and_the_scale_prior_pulls_to_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    y = 0.6 * x @ _rot([0.2, 0.5, -0.1]).T + 0.3 + rng.normal(size=(30, 3)) * 0.01
    w = jnp.asarray(rng.uniform(0.5, 1.5, 30))
    ref = sim3.umeyama(jnp.asarray(x), jnp.asarray(y), w, True)
    got = sim3.fit_sim3(jnp.asarray(x), jnp.asarray(y), w, True)
    np.testing.assert_allclose(got.scale, ref.scale, rtol=1e-5)
    np.testing.assert_allclose(got.R, ref.R, atol=1e-5)
    scales = [float(sim3.fit_sim3(jnp.asarray(x), jnp.asarray(y), w, True,
                                  scale_prior=p).scale) for p in (0.0, 10.0, 1e6)]
    assert scales[0] < scales[1] < scales[2] and abs(scales[2] - 1.0) < 1e-3


def test_alignment_with_camera_orientations_recovers_known_transforms():
    T, joints, orient, ranges, truth, results = _chunks()
    found = stitch.align_transforms(results, ranges, camera_weight=1.0, joint_weight=0.25,
                                    with_scale=True, rotation_weight=4.0)
    for S_found, S_true in zip(found, truth, strict=True):
        np.testing.assert_allclose(S_found.scale, S_true.scale, rtol=1e-4)
        np.testing.assert_allclose(S_found.R, S_true.R, atol=1e-4)
        np.testing.assert_allclose(S_found.t, S_true.t, atol=1e-3)


def _two_tracks(n=60, a1=40, b0=50, d=(0.3, -0.1, 0.2)):
    """One smooth track seen by two chunks [0, b0) and [a1, n); chunk 1 off by d."""
    f = np.arange(n, dtype=np.float64)
    truth = np.stack([0.05 * f, np.sin(f / 10), 0.01 * f ** 1.5], -1)
    x = np.zeros((2, n, 1, 3))
    cover = np.zeros((2, n))
    cover[0, :b0], cover[1, a1:] = 1.0, 1.0
    x[0, :b0, 0] = truth[:b0]
    x[1, a1:, 0] = truth[a1:] + np.asarray(d)
    return x, cover[..., None], cover, truth


def test_seam_corrections_close_a_constant_offset_with_smooth_ramps():
    x, presence, cover, truth = _two_tracks()
    delta = np.asarray(seams.solve_corrections(
        jnp.asarray(x, jnp.float32), jnp.asarray(presence, jnp.float32),
        jnp.asarray(cover, jnp.float32), 1.0, 1.0, 1e-3, 500), np.float64)
    y = x + delta
    gap = np.linalg.norm(y[0, 40:50, 0] - y[1, 40:50, 0], axis=-1)
    assert np.max(gap) < 0.003  # from 0.37 m
    # Split between the two chunks, and spread as a smooth ramp away from the seam.
    d = np.array([0.3, -0.1, 0.2])
    np.testing.assert_allclose(delta[0, 45, 0], d / 2, atol=0.02)
    np.testing.assert_allclose(delta[1, 45, 0], -d / 2, atol=0.02)
    assert np.linalg.norm(delta[0, 0, 0]) < 0.5 * np.linalg.norm(delta[0, 45, 0])
    d2 = delta[0, 2:50] - 2 * delta[0, 1:49] + delta[0, :48]
    assert np.max(np.abs(d2)) < 2e-3
    # Nothing outside a chunk's frames, nothing when the chunks already agree.
    assert np.all(delta[0, 50:] == 0) and np.all(delta[1, :40] == 0)
    x[1, 40:, 0] = truth[40:]
    zero = seams.solve_corrections(jnp.asarray(x, jnp.float32), jnp.asarray(presence, jnp.float32),
                                   jnp.asarray(cover, jnp.float32), 1.0, 1.0, 1e-3, 500)
    assert float(jnp.max(jnp.abs(zero))) < 1e-4


def test_refine_seams_makes_chunks_agree_and_keeps_bodies_rigid():
    """Chunks exactly aligned, then chunk 1 bent (a growing shift and a small rotation of its
    camera and body): the refinement brings the shared frames together; bodies move rigidly."""
    T, joints, orient, ranges, truth, results = _chunks()
    mapped = [stitch.transform_result(r, S) for r, S in zip(results, truth, strict=True)]
    a, b = ranges[1]
    n = b - a
    ramp = np.linspace(0.0, 1.0, n)[:, None]
    bend = np.zeros((n, 4, 3))
    bend[:, 0] = ramp * [0.05, 0.0, -0.04]  # camera centre
    bend[:, 1] = ramp * [0.0, 0.03, 0.0]  # camera orientation (rad)
    bend[:, 2] = ramp * [-0.06, 0.02, 0.0]  # pelvis
    bend[:, 3] = ramp * [0.02, 0.0, 0.03]  # body orientation (rad)
    mapped[1] = seam_refine.apply_corrections(mapped[1], bend)
    before = stitch.seam_disagreement(mapped, ranges)
    assert before["camera_m"][1] > 0.02 and before["pelvis_m"][1] > 0.03
    refined, delta = seam_refine.refine_seams(mapped, ranges, overlap_weight=1.0, smooth_weight=1.0,
                                         prior_weight=1e-3, iters=500)
    after = stitch.seam_disagreement(refined, ranges)
    assert np.max(after["camera_m"]) < 2e-3 and np.max(after["pelvis_m"]) < 2e-3
    for k in range(len(ranges) - 1):  # orientations agree on the shared frames too
        lo, hi = ranges[k + 1][0], ranges[k][1]
        r0 = slice(lo - ranges[k][0], hi - ranges[k][0])
        r1 = slice(0, hi - lo)
        for name in ("T_world_cam", "smpl_global_orient"):
            A = np.asarray(getattr(refined[k], name))[..., r0, :3, :3]
            B = np.asarray(getattr(refined[k + 1], name))[..., r1, :3, :3]
            assert np.max(np.abs(A - B)) < 2e-3, name
    # Bodies move rigidly: distances between joints are kept, transl follows the pelvis.
    for before_r, after_r in zip(mapped, refined, strict=True):
        jb, ja = np.asarray(before_r.joints_world[0]), np.asarray(after_r.joints_world[0])
        np.testing.assert_allclose(np.linalg.norm(ja - ja[:, :1], axis=-1),
                                   np.linalg.norm(jb - jb[:, :1], axis=-1), atol=1e-4)
        np.testing.assert_allclose(ja[:, 0] - after_r.smpl_transl[0],
                                   jb[:, 0] - before_r.smpl_transl[0], atol=1e-4)
    merged = stitch.assemble(refined, ranges, "blend")
    assert np.max(stitch.border_steps(merged, ranges)["pelvis_m"]) < 5e-3


def test_shared_keyframes_scene_points_alone_recover_known_transforms():
    """Chunks sharing a keyframe see the same pixels of it: its scene points are correspondences
    (no camera, body or orientation used here)."""
    T, joints, orient, ranges, truth, results = _chunks()
    rng = np.random.default_rng(3)
    scene = rng.normal(size=(200, 2, 2, 3)) * 3.0  # world points per keyframe (by frame // 5)
    moved = []
    for r, S in zip(results, truth, strict=True):
        s, R, t = float(S.scale), np.asarray(S.R), np.asarray(S.t)
        world = scene[np.asarray(r.keyframe_index) // 5]
        moved.append(dataclasses.replace(
            r, scene_points_world=((world - t) @ R / s).astype(np.float32)))
    found = stitch.align_transforms(moved, ranges, camera_weight=0.0, joint_weight=0.0,
                                    with_scale=True, scene_weight=1.0, scene_stride=1)
    for S_found, S_true in zip(found, truth, strict=True):
        np.testing.assert_allclose(S_found.scale, S_true.scale, rtol=1e-4)
        np.testing.assert_allclose(S_found.R, S_true.R, atol=1e-4)
        np.testing.assert_allclose(S_found.t, S_true.t, atol=2e-3)
    # The scene points are extra points per frame, weighted only at keyframes (pixel grid 2x2 /2).
    x, w = stitch.chunk_points(moved, ranges, 0.0, 0.0, scene_weight=1.0, scene_stride=2)
    assert x.shape[2] == 1 + 24 + 1 and np.all(w[..., :25] == 0) and w[..., 25].sum() > 0


def test_long_video_stitch_aligns_and_refines_with_the_default_config():
    """`long_video.stitch` with the shipped settings: chunks moved by known rigid transforms and
    one chunk bent are put back together (seams closed by the refinement); concat is not."""
    from experiments.configs import long_video as long_configs
    from josh_jax.video import long_video

    *_, truth, _ = _chunks()
    # The world seen by chunks moved rigidly (the default alignment gates the scale back to 1).
    T, _, _, ranges, _, results = _chunks_rigid([sim3.Sim3(np.ones(()), S.R, S.t) for S in truth])
    a, b = ranges[2]
    bend = np.zeros((b - a, 4, 3))
    bend[:, 0] = np.linspace(0.0, 1.0, b - a)[:, None] * [0.04, 0.0, 0.03]
    results[2] = seam_refine.apply_corrections(results[2], bend)
    config = long_configs.get_config()
    result, info = long_video.stitch(results, ranges, config, "align")
    assert np.max(info["seam_camera_m_unrefined"]) > 0.005
    assert np.max(info["seam_camera_m"]) < 1e-3 and np.max(info["seam_pelvis_m"]) < 1e-3
    np.testing.assert_allclose(info["scale"], 1.0)
    np.testing.assert_array_equal(result.frame_index, np.arange(len(T)))
    np.testing.assert_allclose(result.T_world_cam[:ranges[1][0], :3, 3], T[:ranges[1][0], :3, 3],
                               atol=0.01)
    _, concat = long_video.stitch(results, ranges, config, "concat")
    assert np.max(concat["seam_camera_m"]) > 0.005


def _chunks_rigid(transforms):
    """`_chunks` with the given chunk transforms instead of random similarities."""
    from tests import test_video_long as tvl

    T, joints, orient = tvl._world(120, 0)
    ranges = tvl.sampling.overlapping_chunks(120, 40, 12)
    results = [tvl._chunk_result(T, joints, orient, a, b, S, float(c + 1))
               for c, ((a, b), S) in enumerate(zip(ranges, transforms, strict=True))]
    return T, joints, orient, ranges, transforms, results
