"""Long videos: chunk slicing, Sim(3) stitching of chunk Results with a known answer, overlap
bookkeeping. (An end to end through `optimize_many` compiles the batched optimizer: over 4 minutes
on the shared CPU, too slow for the suite; `benchmarks/josh_long_video.py` runs it.)"""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic as synthetic_configs
from josh_jax import geometry, synthetic
from josh_jax.result import Result
from josh_jax.video import chunks, sampling, sim3, stitch

J, V = 24, 5


def _world(n: int, seed: int = 0):
    """A camera walking and turning, one body walking beside it: (T_world_cam[n], joints[n,J,3],
    orient[n,3,3])."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    centre = np.stack([4 * t, 0.2 * np.sin(5 * t), np.cos(3 * t)], -1)
    R = np.asarray(geometry.axis_angle_to_matrix(jnp.asarray(
        np.stack([0.1 * np.sin(4 * t), 2 * t, 0.05 * t], -1))), np.float64)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3], T[:, :3, 3] = R, centre
    joints = centre[:, None, :] + np.array([1.5, 0.3, 2.0]) + rng.normal(size=(1, J, 3)) * 0.3
    return T, joints, R


def _chunk_result(T_world_cam, joints, orient, a: int, b: int, S: sim3.Sim3, tag: float) -> Result:
    """Frames [a, b) of the world, seen in a chunk world: mapped by S^-1 (scale 1/s)."""
    s, R, t = float(S.scale), np.asarray(S.R), np.asarray(S.t)
    n = b - a
    T = T_world_cam[a:b].copy()
    T[:, :3, :3] = R.T @ T[:, :3, :3]
    T[:, :3, 3] = (T[:, :3, 3] - t) @ R / s
    j = (joints[a:b] - t) @ R / s
    pelvis_offset = np.array([0.0, 0.1, 0.0])
    keys = np.arange(-(-a // 5) * 5, b, 5)  # keyframes on the video's grid
    f32 = np.float32
    return Result(
        frame_index=np.arange(a, b, dtype=np.int32), keyframe_index=keys.astype(np.int32),
        fps=np.float32(30), T_world_cam=T.astype(f32),
        K=np.tile(np.eye(3) * tag, (n, 1, 1)).astype(f32),
        scene_points_world=np.full((len(keys), 2, 2, 3), tag, f32),
        scene_colors=np.zeros((len(keys), 2, 2, 3), np.uint8),
        scene_conf=np.full((len(keys), 2, 2), tag, f32), scene_mask=np.ones((len(keys), 2, 2), bool),
        smpl_global_orient=(R.T @ orient[a:b])[None].astype(f32),
        smpl_body_pose=np.zeros((1, n, J - 1, 3, 3), f32),
        smpl_betas=np.full((1, n, 10), tag, f32),
        smpl_transl=(j[:, 0] - pelvis_offset)[None].astype(f32),
        smpl_valid=np.ones((1, n), bool), joints_world=j[None].astype(f32),
        vertices_world=np.repeat(j[None, :, :1], V, axis=2).astype(f32),
        faces=np.zeros((1, 3), np.int32), diagnostics={"x": np.zeros(2)}, image_size=(2, 2))


def _random_sim3(rng):
    R = np.asarray(geometry.axis_angle_to_matrix(jnp.asarray(rng.normal(size=3))), np.float64)
    return sim3.Sim3(np.asarray(rng.uniform(0.7, 1.4)), R, rng.normal(size=3))


def _chunks(n=120, length=40, overlap=12, seed=0):
    rng = np.random.default_rng(seed)
    T, joints, orient = _world(n, seed)
    ranges = sampling.overlapping_chunks(n, length, overlap)
    truth = [jax_identity()] + [_random_sim3(rng) for _ in ranges[1:]]
    results = [_chunk_result(T, joints, orient, a, b, S, float(c + 1))
               for c, ((a, b), S) in enumerate(zip(ranges, truth, strict=True))]
    return T, joints, orient, ranges, truth, results


def jax_identity():
    return stitch.jax_tree_to_numpy(sim3.identity())


def test_alignment_puts_chunks_moved_by_a_known_sim3_back():
    T, joints, orient, ranges, truth, results = _chunks()
    found = stitch.align_transforms(results, ranges, camera_weight=1.0, joint_weight=0.25,
                                    with_scale=True)
    for S_found, S_true in zip(found, truth, strict=True):
        np.testing.assert_allclose(S_found.scale, S_true.scale, rtol=1e-4)
        np.testing.assert_allclose(S_found.R, S_true.R, atol=1e-4)
        np.testing.assert_allclose(S_found.t, S_true.t, atol=1e-3)
    mapped = [stitch.transform_result(r, S) for r, S in zip(results, found, strict=True)]
    seams = stitch.seam_disagreement(mapped, ranges)
    assert np.max(seams["camera_m"]) < 1e-3 and np.max(seams["pelvis_m"]) < 1e-3
    merged = stitch.assemble(mapped, ranges, "blend")
    steps = stitch.border_steps(merged, ranges)
    assert np.max(steps["camera_m"]) < 1e-3 and np.max(steps["pelvis_m"]) < 1e-3
    np.testing.assert_allclose(merged.T_world_cam[:, :3, 3], T[:, :3, 3], atol=2e-3)
    np.testing.assert_allclose(merged.T_world_cam[:, :3, :3], T[:, :3, :3], atol=1e-4)
    np.testing.assert_allclose(merged.joints_world[0], joints, atol=2e-3)
    np.testing.assert_allclose(merged.smpl_global_orient[0], orient, atol=1e-4)
    # transl moves with the pelvis joint: the pelvis offset J0 is unchanged.
    np.testing.assert_allclose(merged.joints_world[0, :, 0] - merged.smpl_transl[0],
                               np.broadcast_to([0.0, 0.1, 0.0], (len(T), 3)), atol=2e-3)


def test_plain_concatenation_glues_cameras_but_leaves_a_seam():
    T, _, _, ranges, truth, results = _chunks()
    found = stitch.concat_transforms(results, ranges)
    mapped = [stitch.transform_result(r, S) for r, S in zip(results, found, strict=True)]
    for k in range(1, len(ranges)):
        a = ranges[k][0]
        np.testing.assert_allclose(mapped[k].T_world_cam[0],
                                   mapped[k - 1].T_world_cam[a - ranges[k - 1][0]], atol=1e-4)
    # rigid glue cannot undo the chunks' scales: they disagree away from the glue frame, and
    # the body (not glued) steps where the next chunk takes over.
    assert np.max(stitch.seam_disagreement(mapped, ranges)["camera_m"]) > 1e-2
    merged = stitch.assemble(mapped, ranges, "later_wins")
    assert np.max(stitch.border_steps(merged, ranges)["pelvis_m"]) > 1e-2


@pytest.mark.parametrize("mode", ["blend", "later_wins"])
def test_every_frame_and_keyframe_is_covered_once(mode):
    T, _, _, ranges, truth, results = _chunks(n=103, length=30, overlap=9)
    mapped = [stitch.transform_result(r, S) for r, S in zip(results, truth, strict=True)]
    merged = stitch.assemble(mapped, ranges, mode)
    np.testing.assert_array_equal(merged.frame_index, np.arange(103))
    assert merged.T_world_cam.shape[0] == 103 and merged.joints_world.shape[1] == 103
    all_keys = np.unique(np.concatenate([r.keyframe_index for r in results]))
    np.testing.assert_array_equal(merged.keyframe_index, all_keys)
    assert merged.scene_points_world.shape[0] == len(all_keys)
    w = stitch.frame_weights(ranges, mode)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-9)
    # Non-blended quantities come from exactly one chunk (tagged by its number in K and betas).
    owner = np.argmax(w, axis=0)
    np.testing.assert_allclose(merged.K[:, 0, 0], owner + 1.0)
    np.testing.assert_allclose(merged.smpl_betas[0, :, 0], owner + 1.0)
    if mode == "later_wins":  # JOSH: a chunk takes over after its first (shared) frame
        for k, (a, _) in enumerate(ranges[1:], 1):
            assert owner[a] == k - 1 and owner[a + 1] == k
    assert merged.diagnostics["x"].shape == (len(ranges), 2)


def test_split_clip_keeps_pairs_inside_chunks():
    c = synthetic_configs.get_config("tiny")
    c.unlock()
    c.num_frames, c.matches.window = 10, 3
    clip, _ = synthetic.generate_clip(c, 0)
    parts, ranges = chunks.split_clip(clip, 5, 2)
    assert ranges == [(0, 5), (3, 8), (5, 10)]
    for part, (a, b) in zip(parts, ranges, strict=True):
        np.testing.assert_array_equal(part.frame_index, clip.frame_index[a:b])
        assert part.pointmaps.shape[0] == b - a and part.smpl_transl.shape[1] == b - a
        assert part.pairs.min() >= 0 and part.pairs.max() < b - a
        full = {tuple(p) for p in np.asarray(clip.pairs)}
        mine = {(i + a, j + a) for i, j in np.asarray(part.pairs)}
        assert mine == {p for p in full if a <= min(p) and max(p) < b}
        row = [tuple(p) for p in np.asarray(clip.pairs)].index(tuple(part.pairs[0] + a))
        np.testing.assert_array_equal(part.matches[0], clip.matches[row])
    assert chunks.video_frame_ranges(clip, ranges)[-1] == (25, 46)
