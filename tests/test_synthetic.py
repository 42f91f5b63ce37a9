"""Tests of the synthetic world (`josh_jax.synthetic`) and `experiments/make_synthetic.py`.

Ground-truth checks use independent code paths: distances to the stored scene *triangle mesh*
(point-triangle distance written here, not the generator's ray caster), bodies re-posed from the
stored GT SMPL parameters with `body_models.lbs`, and projections with `josh_jax.geometry`.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import body_models
from experiments.configs import synthetic as synthetic_config
from josh_jax import clip as clip_lib
from josh_jax import geometry
from josh_jax.errors import InputError
from josh_jax.synthetic import cameras, generate_clip, motions, render, scenes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(preset="tiny", **overrides):
    config = synthetic_config.get_config(preset)
    with config.unlocked():
        for key, value in overrides.items():
            node = config
            *path, leaf = key.split(".")
            for name in path:
                node = node[name]
            node[leaf] = value
    return config


@pytest.fixture(scope="module")
def walk():
    """Tiny clip: boxes, one person walking, hand-held camera."""
    return generate_clip(_config("tiny"), 0, return_extras=True)


@pytest.fixture(scope="module")
def sit_two():
    """Tiny clip on the bench scene: two people sitting down, orbiting camera."""
    return generate_clip(_config("tiny,sit", num_people=2), 3, return_extras=True)


@pytest.fixture(scope="module")
def stairs():
    return generate_clip(_config("tiny,stairs", num_frames=8), 5, return_extras=True)


def _arrays(clip, gt):
    return clip_lib.to_arrays(clip, gt)


def point_triangle_distance(points, tri):
    """Unsigned distance of points [N, 3] to the nearest of triangles [F, 3, 3]: [N]."""
    p = points[:, None, :]
    a, b, c = tri[None, :, 0], tri[None, :, 1], tri[None, :, 2]
    n = np.cross(b - a, c - a)
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    plane = np.einsum("nfi,nfi->nf", p - a, np.broadcast_to(n, (len(points),) + n.shape[1:]))
    q = p - plane[..., None] * n  # projection on the plane
    inside = np.ones(plane.shape, bool)
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("nfi,nfi->nf", np.cross(v - u, q - u),
                            np.broadcast_to(n, q.shape)) >= -1e-12
    best = np.where(inside, np.abs(plane), np.inf)
    for u, v in ((a, b), (b, c), (c, a)):
        e = v - u
        s = np.clip(np.einsum("nfi,nfi->nf", p - u, np.broadcast_to(e, q.shape))
                    / np.maximum(np.einsum("nfi,nfi->nf", e, e), 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(p - (u + s[..., None] * e), axis=-1))
    return best.min(axis=1)


_lbs_people_frames = jax.jit(jax.vmap(jax.vmap(body_models.lbs, in_axes=(None, 0, 0, 0, 0)),
                                      in_axes=(None, 0, 0, 0, 0)))


def _gt_vertices(model, gt):
    """World vertices [P, T, V, 3] re-posed from the stored GT SMPL parameters."""
    out = _lbs_people_frames(model, jnp.asarray(gt.gt_smpl_betas, jnp.float32),
             jnp.asarray(gt.gt_smpl_global_orient, jnp.float32),
             jnp.asarray(gt.gt_smpl_body_pose, jnp.float32),
             jnp.asarray(gt.gt_smpl_transl, jnp.float32))
    return np.asarray(out.vertices, np.float64)


# --------------------------------------------------------------------------------------------


def test_deterministic_per_seed(walk):
    clip, gt, _ = walk
    clip2, gt2 = generate_clip(_config("tiny"), 0)
    a, b = _arrays(clip, gt), _arrays(clip2, gt2)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].tobytes() == b[key].tobytes(), f"{key} differs between two runs of seed 0"
    clip3, gt3 = generate_clip(_config("tiny"), 1)
    c = _arrays(clip3, gt3)
    for key in ("pointmaps", "images", "smpl_transl", "gt_T_world_cam", "gt_smpl_betas"):
        assert a[key].shape != c[key].shape or not np.array_equal(a[key], c[key]), key


@pytest.mark.parametrize("name", ["walk", "sit_two", "stairs"])
def test_true_depth_lands_on_scene_mesh(name, request):
    clip, gt, ex = request.getfixturevalue(name)
    H, W = clip.image_size
    K = geometry.intrinsics_matrix(jnp.float32(gt.gt_focal), W / 2.0, H / 2.0)
    uv = geometry.pixel_grid(H, W)
    tri = gt.gt_scene_vertices[gt.gt_scene_faces]
    rng = np.random.default_rng(0)
    worst, checked = 0.0, 0
    for t in range(clip.num_frames):
        x_cam = np.asarray(geometry.unproject(K, uv, jnp.asarray(gt.gt_depth[t])), np.float64)
        x_world = x_cam @ gt.gt_T_world_cam[t, :3, :3].T + gt.gt_T_world_cam[t, :3, 3]
        scene_pix = np.argwhere(~gt.gt_human_mask[t])
        pick = scene_pix[rng.choice(len(scene_pix), min(300, len(scene_pix)), replace=False)]
        d = point_triangle_distance(x_world[pick[:, 0], pick[:, 1]], tri)
        worst = max(worst, d.max())
        checked += len(d)
    assert checked > 1000
    assert worst < 1e-3, f"unprojected true depth is {worst * 1000:.3f} mm off the scene mesh"


@pytest.mark.parametrize("name", ["walk", "sit_two", "stairs"])
def test_gt_contacts_on_scene_surface(name, request):
    clip, gt, ex = request.getfixturevalue(name)
    verts = _gt_vertices(ex["model"], gt)
    # The stored GT parameters re-pose to the generator's own bodies.
    np.testing.assert_allclose(verts, np.stack(ex["verts_world"])[:, ex["key_index"]], atol=1e-4)
    contact_pts = verts[gt.gt_contact]
    assert len(contact_pts) >= 20 * clip.num_people, "too few GT contacts to test"
    tri = gt.gt_scene_vertices[gt.gt_scene_faces]
    d = point_triangle_distance(contact_pts, tri)
    assert d.max() < 0.02, f"a GT contact vertex is {d.max() * 100:.2f} cm from the scene"
    # And they are the only vertices that close to the scene and still (not vacuous).
    assert gt.gt_contact.mean() < 0.2


def test_sitting_contacts_include_the_seat(sit_two):
    clip, gt, ex = sit_two
    verts = _gt_vertices(ex["model"], gt)
    seat_y = ex["scene"].features["seat"][1]
    on_seat = np.abs(verts[..., 1] - seat_y) < 0.02
    assert np.any(gt.gt_contact & on_seat), "nobody's contacts touch the bench seat"


@pytest.mark.parametrize("name", ["walk", "sit_two"])
def test_gt_body_reprojects_inside_mask(name, request):
    clip, gt, ex = request.getfixturevalue(name)
    H, W = clip.image_size
    K = geometry.intrinsics_matrix(jnp.float32(gt.gt_focal), W / 2.0, H / 2.0)
    verts = _gt_vertices(ex["model"], gt)
    hits = total = 0
    for p in range(clip.num_people):
        for t in range(clip.num_frames):
            T_cam_world = np.linalg.inv(gt.gt_T_world_cam[t])
            x_cam = verts[p, t] @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
            uv = np.asarray(geometry.project(K, jnp.asarray(x_cam, jnp.float32)), np.float64)
            pix = np.round(uv).astype(int)
            inside = ((x_cam[:, 2] > 0.1) & (pix[:, 0] >= 0) & (pix[:, 0] < W)
                      & (pix[:, 1] >= 0) & (pix[:, 1] < H))
            pix, z = pix[inside], x_cam[inside, 2]
            # Visible: the vertex is the surface seen at its pixel (silhouette pixels that show
            # the scene behind the body are left out).
            visible = np.abs(z - gt.gt_depth[t][pix[:, 1], pix[:, 0]]) < 0.02
            hits += clip.human_mask[t][pix[visible, 1], pix[visible, 0]].sum()
            total += visible.sum()
    assert total > 100
    assert hits / total > 0.95, f"only {hits / total:.3f} of visible vertices land on the mask"
    # The mask is not everything: most pixels are scene.
    assert clip.human_mask.mean() < 0.5


def test_two_people_both_rendered(sit_two):
    clip, _, ex = sit_two
    assert clip.num_people == 2
    for p in range(2):
        assert (ex["person_map"] == p).sum() > 50
    assert clip.smpl_valid.all()


def test_save_load_roundtrip(walk, tmp_path):
    clip, gt, _ = walk
    path = tmp_path / "walk.npz"
    clip_lib.save_clip(path, clip, gt)
    clip2, gt2 = clip_lib.load_clip(path)
    a, b = _arrays(clip, gt), _arrays(clip2, gt2)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert gt2.gt_depth is not None and clip2.images is not None


def test_pointmaps_carry_the_configured_scale(walk):
    clip, gt, ex = walk
    scene = ~clip.human_mask
    ratio = clip.pointmaps[..., 2] / gt.gt_depth
    per_frame = np.array([np.median(r[s]) for r, s in zip(ratio, scene, strict=True)])
    # Each frame: its own scale (global scale x jitter) up to the 2 % smooth error.
    np.testing.assert_allclose(per_frame, ex["frame_scale"], rtol=0.03)
    np.testing.assert_allclose(np.median(per_frame), 0.35, rtol=0.08)
    assert float(gt.gt_pointmap_scale) == pytest.approx(1 / 0.35)
    # A different configured scale shows up in the pointmaps.
    clip2, gt2 = generate_clip(_config("tiny", **{"noise.scale": 0.7}), 0)
    ratio2 = np.median(clip2.pointmaps[..., 2][scene] / gt2.gt_depth[scene])
    np.testing.assert_allclose(ratio2 / np.median(ratio[scene]), 2.0, rtol=1e-3)
    # Confidence: exactly 1 on people, > 1 on the scene.
    assert np.all(clip.confidence[clip.human_mask] == 1.0)
    assert np.median(clip.confidence[scene]) > 1.5


def test_matches_follow_true_geometry(walk):
    clip, gt, ex = walk
    K = ex["K"]
    outlier = ex["match_outlier"]
    errors, n_in = [], 0
    for e, (i, j) in enumerate(clip.pairs):
        valid = clip.match_confidence[e] > 0
        m = clip.matches[e, valid & ~outlier[e]]
        n_in += len(m)
        uv_i = m[:, 0].astype(int)
        z = gt.gt_depth[i][uv_i[:, 1], uv_i[:, 0]].astype(np.float64)
        x_cam = np.stack([(uv_i[:, 0] - K[0, 2]) * z / K[0, 0],
                          (uv_i[:, 1] - K[1, 2]) * z / K[1, 1], z], -1)
        T_ji = np.linalg.inv(gt.gt_T_world_cam[j]) @ gt.gt_T_world_cam[i]
        x_j = x_cam @ T_ji[:3, :3].T + T_ji[:3, 3]
        uv_j = K[:2, :2] @ (x_j[:, :2] / x_j[:, 2:]).T + K[:2, 2:]
        errors.append(np.abs(uv_j.T - m[:, 1]).max(axis=1))
    errors = np.concatenate(errors)
    assert n_in > 200
    assert errors.max() <= 0.5 + 1e-3, "inlier matches are rounded true correspondences"
    rate = outlier[clip.match_confidence > 0].mean()
    assert 0.01 < rate < 0.12  # configured 0.05
    assert np.all(clip.pair_scores == (clip.match_confidence > 0).sum(axis=1))


def test_hmr_depth_bias_and_focal_convention(walk):
    clip, gt, ex = walk
    model = ex["model"]
    J0_hmr = np.asarray(jax.vmap(lambda b: body_models.rest_joints(model, b)[0])(
        jnp.asarray(clip.smpl_betas[0])))
    pelvis_hmr = clip.smpl_transl[0] + J0_hmr
    J0 = np.asarray(body_models.rest_joints(model, jnp.asarray(gt.gt_smpl_betas[0, 0],
                                                                jnp.float32))[0])
    pelvis_world = gt.gt_smpl_transl[0] + J0
    T_cam_world = np.linalg.inv(gt.gt_T_world_cam)
    pelvis_cam = np.einsum("tij,tj->ti", T_cam_world[:, :3, :3], pelvis_world) + T_cam_world[:, :3, 3]
    # Undo the HMR's focal convention as JOSH does: z * f_true / hmr_focal.
    z_ratio = pelvis_hmr[:, 2] * float(gt.gt_focal) / float(clip.hmr_focal) / pelvis_cam[:, 2]
    assert np.all(np.abs(z_ratio - 1.05) < 0.15)
    assert float(clip.hmr_focal) == pytest.approx(np.hypot(*clip.image_size), rel=1e-6)
    # Orientation in the camera frame: within a few degrees of the truth.
    R_true = T_cam_world[:, :3, :3] @ gt.gt_smpl_global_orient[0]
    cos = (np.einsum("tij,tij->t", R_true, clip.smpl_global_orient[0]) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 10.0


def test_deco_labels_are_noisy_gt(walk):
    clip, gt, _ = walk
    labels = clip.contact[0] > 0.5
    true = gt.gt_contact[0]
    recall = (labels & true).sum() / true.sum()
    assert 0.75 < recall < 0.99  # 10 % dropped
    assert np.all(np.isin(clip.contact, (0.0, 1.0)))


def test_stance_soles_stay_planted():
    model = body_models.load_model()
    sole = np.asarray(body_models.indices.sole_vertices(model))
    scene = scenes.make_scene("stairs", np.random.default_rng(0), num_boxes=0)
    fps = 30.0
    plan = motions.root_plan("step_up", 60, fps, scene, rng=np.random.default_rng(0))
    m = motions.make_motion(model, np.zeros(model.num_betas), plan, scene, fps)
    verts, _ = motions.pose_vertices(model, m.betas, m.global_orient, m.body_pose, m.transl)
    rest = np.asarray(model.v_template)
    pelvis_x = np.asarray(body_models.rest_joints(model, jnp.zeros(model.num_betas)))[0, 0]
    moved_total = 0.0
    for side, sign in ((0, 1.0), (1, -1.0)):
        ids = sole[np.sign(rest[sole, 0] - pelvis_x) == sign]
        step = np.linalg.norm(verts[1:, ids] - verts[:-1, ids], axis=-1).max(axis=1)
        both = m.stance[1:, side] & m.stance[:-1, side]
        assert both.sum() > 10 and (~both).sum() > 5  # the foot stands and swings
        assert step[both].max() < 0.01, f"foot {side} slides {step[both].max() * 100:.2f} cm"
        moved_total += step.sum()
    assert moved_total > 1.0  # the feet really travel
    assert m.ik_residual_m < 1e-3
    # Feet climbed the step: the last planted soles are above the floor.
    h = scenes.height_below(scene, verts[-1, sole])
    assert np.all(h > -0.01) and verts[-1, sole, 1].min() > 0.1


def test_scene_only_clip_is_valid(tmp_path):
    clip, gt = generate_clip(_config("tiny", num_people=0, num_frames=3), 2)
    assert clip.num_people == 0 and not clip.human_mask.any()
    clip_lib.save_clip(tmp_path / "scene.npz", clip, gt)
    clip2, _ = clip_lib.load_clip(tmp_path / "scene.npz")
    assert clip2.num_people == 0


def test_bad_config_is_one_clear_error():
    with pytest.raises(InputError, match="synthetic config: scene: expected .*, found 'castle'"):
        generate_clip(_config("tiny", scene="castle"), 0)
    with pytest.raises(InputError, match="needs it.*found 'boxes'"):
        generate_clip(_config("tiny", motion="sit", scene="boxes"), 0)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        synthetic_config.get_config("tiny,nonsense")


@pytest.mark.slow
def test_make_synthetic_end_to_end(tmp_path):
    out = tmp_path / "clips"
    cmd = [sys.executable, "-m", "experiments.make_synthetic",
           "--config=experiments/configs/synthetic.py:tiny", f"--out={out}", "--num_clips=1",
           "--seed=4", "--config.num_frames=3"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    clip, gt = clip_lib.load_clip(out / "clip_0000.npz")
    assert clip.num_frames == 3 and gt is not None and gt.gt_depth is not None
    png = out / "clip_0000.png"
    assert png.exists() and 5_000 < png.stat().st_size < 300_000
    # Existing clips are not overwritten: one line on stderr, exit status 2.
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {out / 'clip_0000.npz'}: (file): expected a new file (pass --overwrite to "
        "replace it), found an existing file")


def test_bounding_box_culling_changes_nothing():
    scene = scenes.make_scene("bench", np.random.default_rng(1), num_boxes=4)
    H, W = 48, 80
    K = geometry.centred_intrinsics(60.0, H, W)
    T = cameras.look_at(np.array([2.5, 1.4, -1.0]), np.array([0.0, 0.5, 1.5]))
    culled = render.render_scene(scene, K, T, H, W)
    rays = render.pixel_rays(K, H, W).reshape(-1, 3) @ T[:3, :3].T
    depth, solid, _ = scenes.cast_rays(scene, T[:3, 3][None], rays)  # every ray, every solid
    np.testing.assert_array_equal(culled["solid"].ravel(), solid)
    np.testing.assert_allclose(culled["depth"].ravel(), depth, rtol=1e-12)
    assert len(np.unique(solid)) >= 4  # the view really contains several solids
