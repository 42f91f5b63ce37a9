"""JOSH3R inference: chaining pairwise predictions into cameras and bodies (spec 3.4).

The chaining is checked against ground truth: on a synthetic clip whose HMR parameters are
replaced by the true camera-frame ones, feeding the *true* relative transforms (a scripted
`forward`) must give back the true cameras with `reference_compat=False`, and must not with the
reference's J0-free chaining. A randomly initialised tiny JOSH3R runs end to end.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import body_models
from experiments.configs import synthetic as synthetic_config
from josh_jax import geometry as geo
from josh_jax.synthetic import generate_clip
from trainers import data as data_lib
from trainers import infer


@pytest.fixture(scope="module")
def body():
    return body_models.load_model()  # the synthetic clips use the built-in mannequin


@pytest.fixture(scope="module")
def clip_gt(body):
    cfg = synthetic_config.get_config("tiny")
    cfg.unlock()
    cfg.num_frames = 7  # video frames 0, 5, ..., 30: 6 pairs
    clip, gt = generate_clip(cfg, 0)
    # Replace the (noisy) HMR parameters by the true camera-frame ones.
    R_c, t_c = data_lib.camera_smpl_params(
        body, gt.gt_T_world_cam, gt.gt_smpl_global_orient[0], np.asarray(gt.gt_smpl_betas)[0, 0],
        gt.gt_smpl_transl[0])
    clip = dataclasses.replace(
        clip, smpl_global_orient=R_c[None], smpl_transl=t_c[None],
        smpl_body_pose=np.asarray(gt.gt_smpl_body_pose, np.float32),
        smpl_betas=np.asarray(gt.gt_smpl_betas, np.float32))
    return clip, gt


class ScriptedForward:
    """`infer.Forward`'s protocol returning given relative transforms, pair by pair."""

    def __init__(self, rel_rot6d, rel_trans, hw):
        self.rel_rot6d, self.rel_trans, self.hw = rel_rot6d, rel_trans, hw
        self.next, self.boxes = 0, []

    def encode_frames(self, frames, batch_size):
        assert frames.shape[1:] == (*self.hw, 3)
        return None

    def pairs(self, cache, idx1, idx2, img_shapes, bbox):
        b = len(idx1)
        idx = np.minimum(np.arange(self.next, self.next + b), len(self.rel_trans) - 1)
        self.next += b
        self.boxes.append(np.asarray(bbox))
        h, w = self.hw
        z = np.zeros((b, 3), np.float32)
        pts = np.tile(np.array([0.0, 0.0, 2.0], np.float32), (b, h * w, 1))
        return dict(rel_trans=self.rel_trans[idx], rel_rot=self.rel_rot6d[idx], trans1=z,
                    X11=pts, scale1=np.ones((b, 1), np.float32))


def true_relative(clip, gt, body, pairs):
    """The labels' relative transforms (trainers/data.py semantics) for the given row pairs."""
    betas = np.asarray(gt.gt_smpl_betas, np.float32)[0, 0]
    J0 = np.asarray(body_models.rest_joints(body, jnp.asarray(betas))[0], np.float64)
    rots, trans = [], []
    for i, j in pairs:
        R, t = data_lib.relative_smpl_transform(
            gt.gt_smpl_global_orient[0, i], gt.gt_smpl_transl[0, i],
            gt.gt_smpl_global_orient[0, j], gt.gt_smpl_transl[0, j], J0)
        rots.append(np.asarray(geo.matrix_to_rot6d(jnp.asarray(R, jnp.float32))))
        trans.append(t.astype(np.float32))
    return np.stack(rots), np.stack(trans), J0


def _relative_to_first(T):
    T = np.asarray(T, np.float64)
    return np.linalg.inv(T[0])[None] @ T


@pytest.mark.parametrize("compat", [False, True])
def test_chaining_true_relative_motion_recovers_cameras(body, clip_gt, compat):
    clip, gt = clip_gt
    cfg = infer.InferConfig(image_hw=(32, 48), reference_compat=compat, batch_size=4)
    pairs = data_lib.sample_pairs(clip.frame_index, min_gap=cfg.min_gap)
    assert len(pairs) == 6 and np.all(pairs[:, 1] - pairs[:, 0] == 1)
    rot6d, trans, J0 = true_relative(clip, gt, body, pairs)
    fwd = ScriptedForward(rot6d, trans, cfg.image_hw)
    result = infer.infer_clip(None, clip, body, cfg, forward=fwd)

    assert fwd.next >= len(pairs)
    kp = result.keyframe_positions
    T_pred = np.asarray(result.T_world_cam)[kp]
    T_true = _relative_to_first(gt.gt_T_world_cam)
    assert np.all(np.isfinite(T_pred)) and T_pred.shape == (7, 4, 4)
    np.testing.assert_array_equal(result.diagnostics["pairs"], pairs)
    err = np.linalg.norm(T_pred[:, :3, 3] - T_true[:, :3, 3], axis=-1)
    rot_err = np.abs(T_pred[:, :3, :3] - T_true[:, :3, :3]).max()
    if not compat:
        # Exact up to float32: correct chaining and pelvis-offset handling.
        assert err.max() < 2e-4, err
        assert rot_err < 2e-4
        # The world body is the true body (relative to the first camera).
        assert gt.gt_joints_world_all is not None
        joints_true = np.asarray(gt.gt_joints_world_all)[0]
        T0_inv = np.linalg.inv(np.asarray(gt.gt_T_world_cam[0], np.float64))
        jw = np.asarray(result.joints_world)[0][kp]
        rows = np.searchsorted(np.asarray(gt.gt_frame_index), np.asarray(clip.frame_index))
        jt = joints_true[rows] @ T0_inv[:3, :3].T + T0_inv[:3, 3]
        np.testing.assert_allclose(jw, jt, atol=5e-4)
    else:
        # The reference's J0-free chaining drifts: the error is the pelvis-offset term.
        assert rot_err < 2e-4  # rotations compose the same way
        assert err.max() > 1e-2, err
    # Same rotations either way; the first camera is the world.
    np.testing.assert_allclose(T_pred[0], np.eye(4), atol=1e-5)


def test_roi_box_whole_image_in_compat_mode_body_box_otherwise(body, clip_gt):
    clip, gt = clip_gt
    hw = (32, 48)
    pairs = data_lib.sample_pairs(clip.frame_index, min_gap=3)
    rot6d, trans, _ = true_relative(clip, gt, body, pairs)
    boxes = {}
    for compat in (True, False):
        fwd = ScriptedForward(rot6d, trans, hw)
        infer.infer_clip(None, clip, body, infer.InferConfig(image_hw=hw, reference_compat=compat,
                                                             batch_size=8), forward=fwd)
        boxes[compat] = fwd.boxes[0][: len(pairs)]
    h, w = hw
    # Reference: the whole image after the 2x centre zoom is (-w/2, -h/2, 3w/2, 3h/2).
    np.testing.assert_allclose(boxes[True][0, 0], [-w / 2, -h / 2, 1.5 * w, 1.5 * h], atol=1e-4)
    # Fixed: the projected body box (true camera-frame body, the clip's HMR focal), zoomed 2x.
    H, W = clip.image_size
    f = float(clip.hmr_focal)
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)
    box0 = data_lib.body_bboxes(body, K, clip.smpl_global_orient[0][:1],
                                clip.smpl_body_pose[0][:1], clip.smpl_betas[0].mean(0),
                                clip.smpl_transl[0][:1])[0]
    sx, sy = w / (W / 2), h / (H / 2)
    expect = [(box0[0] - W / 4) * sx, (box0[1] - H / 4) * sy, (box0[2] - W / 4) * sx,
              (box0[3] - H / 4) * sy]
    np.testing.assert_allclose(boxes[False][0, 0], expect, rtol=1e-4, atol=1e-3)
    assert (boxes[False][0, 0, 2] - boxes[False][0, 0, 0]) < 0.9 * 2 * w  # not the whole image


def test_chain_smpl_hand_computed_three_pairs():
    rng = np.random.default_rng(0)
    J0 = np.array([0.01, -0.2, 0.03])
    R = np.asarray(geo.axis_angle_to_matrix(jnp.asarray(rng.normal(0, 0.5, (3, 3)), jnp.float32)),
                   np.float64)
    t = rng.normal(0, 0.3, (3, 3))
    M = infer.chain_smpl(R, t, J0)
    # By hand: x -> R x + t + J0 - R J0 composed left to right.
    A = lambda k: (lambda x: R[k] @ x + t[k] + J0 - R[k] @ J0)
    x = np.array([0.3, 0.1, -0.2])
    expect = A(0)(A(1)(A(2)(x)))
    np.testing.assert_allclose(M[3, :3, :3] @ x + M[3, :3, 3], expect, atol=1e-12)
    T = infer.chain_rigid(R, t)
    np.testing.assert_allclose(T[2, :3, 3], t[0] + R[0] @ t[1], atol=1e-12)
    # The two agree when J0 = 0.
    np.testing.assert_allclose(infer.chain_smpl(R, t, np.zeros(3)), T, atol=1e-12)


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_random_tiny_josh3r_runs_on_a_clip(body, clip_gt):
    from experiments.configs.josh3r import get_config
    from trainers import josh3r

    clip, _ = clip_gt
    model = josh3r.JOSH3R(get_config("tiny").model, rngs=nnx.Rngs(0))
    cfg = infer.InferConfig(image_hw=(32, 48), batch_size=6)
    forward = infer.make_forward(model, head_chunk=4)
    result = infer.infer_clip(model, clip, body, cfg, forward=forward)
    # Each of the 7 frames went through the encoder once (interior frames are in two pairs).
    assert forward.frames_encoded == 7
    F = int(clip.frame_index[-1] - clip.frame_index[0] + 1)
    assert result.T_world_cam.shape == (F, 4, 4) and result.K.shape == (F, 3, 3)
    assert np.all(np.isfinite(result.T_world_cam)) and np.all(np.isfinite(result.K))
    R = np.asarray(result.T_world_cam)[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-4)
    assert result.vertices_world.shape[:2] == (1, F) and np.all(np.isfinite(result.vertices_world))
    assert result.scene_points_world.shape == (7, 32, 48, 3)
    assert result.diagnostics["pred_rel_rot"].shape == (6, 6)
    # A different model gives different cameras (the predictions are actually used).
    model2 = josh3r.JOSH3R(get_config("tiny").model, rngs=nnx.Rngs(1))
    forward2 = forward.with_model(model2)  # same compiled program, other weights
    result2 = infer.infer_clip(model2, clip, body, cfg, forward=forward2)
    assert np.abs(np.asarray(result2.T_world_cam) - np.asarray(result.T_world_cam)).max() > 1e-4


@pytest.mark.slow  # one of the slowest of the inner loop (>10 s on 2 cores)
def test_pseudo_labels_from_a_result_match_the_ground_truth_labels(body, clip_gt):
    """A Result built from the true keyframe quantities gives the ground-truth labels back.

    (The JOSH optimizer's own Results go through the same `frames_from_result`; running the
    optimizer here would take minutes, see docs/josh3r_training.md for that measurement.)
    """
    from josh_jax import result as result_lib

    clip, gt = clip_gt
    H, W = clip.image_size
    f = float(gt.gt_focal)
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)
    result = result_lib.assemble_result(
        keyframe_index=clip.frame_index, T_world_cam_key=gt.gt_T_world_cam, K=K,
        depth_key=gt.gt_depth, conf_key=np.ones_like(gt.gt_depth), scene_mask_key=None,
        images=clip.images, smpl_global_orient_cam=clip.smpl_global_orient,
        smpl_body_pose=clip.smpl_body_pose, smpl_betas=clip.smpl_betas,
        smpl_transl_cam=clip.smpl_transl, smpl_valid=clip.smpl_valid, body_model=body)
    ds_r = data_lib.make_pair_dataset([data_lib.frames_from_result(result, clip, body)], body)
    ds_g = data_lib.make_pair_dataset([data_lib.frames_from_synthetic(clip, gt, body)], body)
    np.testing.assert_array_equal(ds_r.pair_frames, ds_g.pair_frames)
    for k in ("trans", "rot", "trans1", "trans2", "rot1", "rot2", "pose", "beta"):
        np.testing.assert_allclose(ds_r.labels[k], ds_g.labels[k], atol=2e-4, err_msg=k)
    np.testing.assert_allclose(ds_r.labels["depth_points"], ds_g.labels["depth_points"],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ds_r.labels["depth_mask"], ds_g.labels["depth_mask"])
    np.testing.assert_allclose(ds_r.bbox, ds_g.bbox, atol=1e-2)


@pytest.mark.slow  # a micro model built, saved and restored (~20 s on 2 loaded cores)
def test_load_model_from_a_training_workdir_reads_only_the_weights(tmp_path):
    """The abstract model is filled from the newest step's params + batch stats alone."""
    from experiments.configs import josh3r_train
    from experiments.infer_josh3r import load_model
    from trainers import flax_state, josh3r, train_state
    from trainers.checkpoint import Checkpointer

    cfg = josh3r_train.get_config("micro")
    model = josh3r.JOSH3R(cfg.model, rngs=nnx.Rngs(3))
    tx, _ = train_state.optimizer_from_config(cfg.training)
    ckpt = Checkpointer(str(tmp_path / "checkpoints"), async_save=False)
    ckpt.save(5, train_state.init_train_state(model, tx, 0), force=True)
    ckpt.close()
    loaded = load_model(cfg, str(tmp_path))
    want, got = flax_state.flax_state_dict(model), flax_state.flax_state_dict(loaded)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
