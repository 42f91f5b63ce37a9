"""Tests for josh_jax/metrics.py on hand-made trajectories with closed-form answers, plus the
reference run's keyframe metrics (shared/reference JSON) recomputed from its stored outputs."""

import os
import types

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from josh_jax import evaluate as evaluate_mod
from josh_jax import metrics as M

DATA = os.path.join(os.path.dirname(__file__), "data", "metrics_reference_keyframes.npz")


def rng(seed=0):
    return np.random.default_rng(seed)


def random_sim(seed, s=1.7):
    R = Rotation.random(random_state=seed).as_matrix()
    t = rng(seed).normal(size=3) * 2.0
    return s, R, t


def sim_apply(sim, x):
    s, R, t = sim
    return s * x @ R.T + t


def gt_motion(seed=0, frames=10, joints=24):
    """A walking-like GT: a random rigid skeleton translating and turning, plus small pose motion."""
    r = rng(seed)
    skel = r.normal(scale=0.3, size=(joints, 3))
    out = []
    for f in range(frames):
        R = Rotation.from_rotvec([0, 0.05 * f, 0]).as_matrix()
        out.append((skel + 0.02 * r.normal(size=skel.shape)) @ R.T + [0.1 * f, 0.0, 0.03 * f])
    return np.asarray(out)


# ------------------------------------------------------------------------------- umeyama ---

def test_umeyama_recovers_similarity_and_rigid():
    src = rng(1).normal(size=(30, 3))
    sim = random_sim(3, s=0.6)
    s, R, t = M.umeyama(src, sim_apply(sim, src))
    np.testing.assert_allclose(s, 0.6, rtol=1e-10)
    np.testing.assert_allclose(R, sim[1], atol=1e-10)
    np.testing.assert_allclose(t, sim[2], atol=1e-10)
    s, R, t = M.umeyama(src, sim_apply((1.0, sim[1], sim[2]), src), with_scale=False)
    assert s == 1.0
    np.testing.assert_allclose(R, sim[1], atol=1e-10)
    # A mirrored target still yields a proper rotation.
    s, R, _ = M.umeyama(src, src * [1, 1, -1])
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-10)
    # Degenerate source: identity rotation, unit scale, translation of the means.
    s, R, t = M.umeyama(np.ones((4, 3)), np.zeros((4, 3)))
    assert s == 1.0
    np.testing.assert_allclose(R, np.eye(3))
    np.testing.assert_allclose(t, -np.ones(3))


def test_procrustes_per_frame():
    gt = gt_motion(2, frames=4)
    pred = np.stack([sim_apply(random_sim(10 + f, s=0.5 + f), gt[f]) for f in range(4)])
    np.testing.assert_allclose(M.procrustes(pred, gt), gt, atol=1e-9)
    assert M.pa_mpjpe(pred, gt) < 1e-6


# ---------------------------------------------------------------------------- MPJPE family ---

def test_exact_similarity_gives_zero_errors_and_its_scale():
    gt = gt_motion(0, frames=12)
    sim = random_sim(5, s=1.25)
    pred = sim_apply(sim, gt)
    assert M.wa_mpjpe(pred, gt) < 1e-6
    assert M.w_mpjpe(pred, gt) < 1e-6
    assert M.wa_mpjpe_sim3(pred, gt) < 1e-6
    assert M.pa_mpjpe(pred, gt) < 1e-6
    np.testing.assert_allclose(M.human_sim3_scale(pred, gt), 1 / 1.25, rtol=1e-10)
    np.testing.assert_allclose(M.scale_error(M.human_sim3_scale(pred, gt)), 0.2, rtol=1e-9)
    # Rigid first-frame alignment cannot undo the scale: the error is large.
    assert M.w_mpjpe_first_frame_rigid(pred, gt) > 50.0


def test_noisy_first_two_frames_hurt_w_mpjpe_not_wa_mpjpe():
    gt = gt_motion(1, frames=30)
    pred = sim_apply(random_sim(6, s=0.8), gt)
    pred[:2] += rng(7).normal(scale=0.05, size=pred[:2].shape)
    w, wa = M.w_mpjpe(pred, gt), M.wa_mpjpe(pred, gt)
    assert w > 20.0, w
    assert wa < 0.5 * w, (wa, w)
    # Only the two noisy frames keep a visible WA error; the rest fits almost exactly.
    wa_pf = M.wa_mpjpe(pred, gt, per_frame=True)
    assert wa_pf.shape == (30,)
    assert np.all(wa_pf[2:] < wa_pf[:2].min())


def test_constant_offset_after_fit_frames():
    """Exact first two frames, then a constant offset d: per-frame W-MPJPE is |d| after frame 1."""
    gt = gt_motion(3, frames=8)
    d = np.array([0.03, -0.04, 0.0])  # |d| = 50 mm
    pred = gt.copy()
    pred[2:] += d
    per_frame = M.w_mpjpe(pred, gt, per_frame=True)
    np.testing.assert_allclose(per_frame, [0, 0] + [50.0] * 6, atol=1e-6)
    np.testing.assert_allclose(M.w_mpjpe(pred, gt), 50.0 * 6 / 8, rtol=1e-9)
    # Rigid first-frame fit: the same numbers, but only frame 0 is free.
    pred = gt + d
    pred[0] = gt[0]
    np.testing.assert_allclose(M.w_mpjpe_first_frame_rigid(pred, gt), 50.0 * 7 / 8, rtol=1e-9)
    # A pure offset on every frame is removed by any alignment.
    assert M.w_mpjpe_first_frame_rigid(gt + d, gt) < 1e-6
    np.testing.assert_allclose(M.mpjpe(gt + d, gt), 50.0, rtol=1e-9)


def test_pelvis_centred_local_mpjpe():
    gt = gt_motion(6, frames=3)
    shifted = gt + rng(13).normal(size=(3, 1, 3))  # a different global offset per frame
    np.testing.assert_allclose(M.pelvis_centred(shifted), M.pelvis_centred(gt), atol=1e-12)
    np.testing.assert_allclose(M.pelvis_centred(gt)[:, 1:3].mean(axis=1), 0.0, atol=1e-12)
    assert M.mpjpe(M.pelvis_centred(shifted), M.pelvis_centred(gt)) < 1e-9
    assert M.mpjpe(shifted, gt) > 100.0


def test_chunks_are_aligned_independently():
    gt = gt_motion(4, frames=7)
    pred = np.concatenate([sim_apply(random_sim(20, s=0.9), gt[:3]),
                           sim_apply(random_sim(21, s=1.3), gt[3:6]),
                           sim_apply(random_sim(22, s=2.0), gt[6:])])
    assert M.w_mpjpe(pred, gt, chunk=3) < 1e-6
    assert M.wa_mpjpe(pred, gt, chunk=3) < 1e-6
    assert M.wa_mpjpe(pred, gt, chunk=100) > 10.0
    # One chunk covering everything is the single-similarity variant.
    np.testing.assert_allclose(M.wa_mpjpe(pred, gt, chunk=100), M.wa_mpjpe_sim3(pred, gt), rtol=1e-12)


# ------------------------------------------------------------------------- trajectories ---

def test_rte_of_scaled_straight_path():
    F = 5
    gt = np.stack([np.arange(F, dtype=float), np.zeros(F), np.zeros(F)], -1)
    # A rigid transform of GT: 0.
    sim = random_sim(8, s=1.0)
    assert M.rte(sim_apply(sim, gt), gt) < 1e-9
    # Twice the path: errors |t - 2| = (2,1,0,1,2) m over a 4 m path -> mean 1.2 / 4 = 30 %.
    np.testing.assert_allclose(M.rte(2 * gt, gt), 30.0, rtol=1e-9)
    np.testing.assert_allclose(M.rte(2 * gt, gt, per_frame=True), [50, 25, 0, 25, 50], atol=1e-9)
    assert np.isnan(M.rte(gt, np.zeros_like(gt)))


def test_jitter_of_cubic_is_its_third_derivative():
    fps = 30.0
    a = 0.7  # x(t) = a t^3 m -> x''' = 6a m/s^3 -> jitter 6a / 10 (units of 10 m/s^3)
    t = np.arange(12) / fps
    direction = np.array([0.6, 0.0, 0.8])
    J = (a * t ** 3)[:, None, None] * direction + rng(9).normal(size=(1, 5, 3))
    np.testing.assert_allclose(M.jitter(J, fps), 6 * a / 10, rtol=1e-6)
    np.testing.assert_allclose(M.jitter(J, fps, per_frame=True), np.full(9, 6 * a / 10), rtol=1e-6)
    # A quadratic has no jerk.
    Jq = (t ** 2)[:, None, None] * direction + np.zeros((1, 5, 3))
    assert M.jitter(Jq, fps) < 1e-6


def test_accel_error_of_quadratic_offset():
    fps = 20.0
    gt = gt_motion(5, frames=9)
    b = 0.01  # offset b f^2 (f in frames) -> second difference 2b per frame^2 -> 2b fps^2 m/s^2
    f = np.arange(9)
    pred = gt + (b * f ** 2)[:, None, None] * np.array([0.0, 1.0, 0.0])
    per_frame = M.accel_error(pred, gt, fps, per_frame=True)
    assert per_frame.shape == (9 - 2 - 2,)
    np.testing.assert_allclose(per_frame, 2 * b * fps ** 2, rtol=1e-9)
    assert M.accel_error(gt + 0.3, gt, fps) < 1e-9
    assert M.accel_error(pred, gt, fps, drop_ends=False, per_frame=True).shape == (7,)


def test_foot_sliding():
    F = 6
    gt = np.zeros((F, 2, 3))
    gt[:, 1, 0] = 0.05 * np.arange(F)  # vertex 1 moves 5 cm / frame: never in contact
    pred = gt.copy()
    pred[:, 0, 2] = 0.002 * np.arange(F)  # vertex 0 slides 2 mm / frame during GT contact
    np.testing.assert_allclose(M.foot_sliding(pred, gt), 2.0, rtol=1e-9)
    assert M.foot_sliding(gt, gt) == 0.0
    assert np.isnan(M.foot_sliding(pred[:, 1:], gt[:, 1:]))


def test_camera_ate():
    gt = np.cumsum(rng(11).normal(scale=0.2, size=(15, 3)), axis=0)
    sim = random_sim(12, s=0.4)
    pred = sim_apply(sim, gt)
    assert M.camera_ate(pred, gt, "sim3") < 1e-9
    assert M.camera_ate(pred, gt, "se3") > 0.05
    np.testing.assert_allclose(M.camera_sim3_scale(pred, gt), 1 / 0.4, rtol=1e-9)
    assert M.camera_ate(sim_apply(random_sim(13, s=1.0), gt), gt, "se3") < 1e-9
    # No alignment, errors (0, 3, 4) m: RMSE sqrt(25/3), mean 7/3.
    g = np.zeros((3, 3))
    p = np.array([[0.0, 0, 0], [3, 0, 0], [0, 4, 0]])
    np.testing.assert_allclose(M.camera_ate(p, g, "none"), np.sqrt(25 / 3), rtol=1e-12)
    np.testing.assert_allclose(M.camera_ate(p, g, "none", stat="mean"), 7 / 3, rtol=1e-12)
    with pytest.raises(ValueError, match="align"):
        M.camera_ate(p, g, "affine")


def test_focal_and_scale_error():
    np.testing.assert_allclose(M.focal_error(462.0, 420.0), 0.1, rtol=1e-12)
    np.testing.assert_allclose(M.focal_error(378.0, 420.0), 0.1, rtol=1e-12)
    np.testing.assert_allclose(M.scale_error(0.85), 0.15, rtol=1e-12)
    np.testing.assert_allclose(M.scale_error(1.2), 0.2, rtol=1e-12)


def test_chamfer_known_sets():
    pred = np.array([[0.0, 0, 0], [1, 0, 0]])
    gt = np.array([[0.0, 0, 0], [0, 2, 0], [3, 0, 0]])
    res = M.chamfer(pred, gt)
    np.testing.assert_allclose(res.accuracy, 0.5, rtol=1e-12)  # (0 + 1) / 2
    np.testing.assert_allclose(res.completeness, 4 / 3, rtol=1e-12)  # (0 + 2 + 2) / 3
    np.testing.assert_allclose(res.chamfer, (0.5 + 4 / 3) / 2, rtol=1e-12)
    acc, comp, cd = M.chamfer(gt, gt)
    assert acc == comp == cd == 0.0


def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="pred_joints shape"):
        M.w_mpjpe(np.zeros((4, 24, 3)), np.zeros((5, 24, 3)))
    with pytest.raises(ValueError, match=r"pred_root must have shape \[\.\.\., 3\], found \(4, 2\)"):
        M.rte(np.zeros((4, 2)), np.zeros((4, 2)))

    with pytest.raises(ValueError, match="jitter needs"):
        M.jitter(np.zeros((3, 24, 3)), 30.0)


def test_non_finite_prediction_gives_nan_not_an_exception():
    gt = gt_motion(7, frames=6)
    pred = gt.copy()
    pred[3, 5] = np.nan
    for fn in (M.w_mpjpe, M.wa_mpjpe, M.pa_mpjpe, M.wa_mpjpe_sim3, M.w_mpjpe_first_frame_rigid,
               M.human_sim3_scale):
        assert np.isnan(fn(pred, gt)), fn.__name__
    assert np.isnan(M.rte(pred[:, 5], gt[:, 5]))
    assert np.isnan(M.camera_ate(pred[:, 5], gt[:, 5]))
    assert np.isnan(M.jitter(pred, 30.0))
    assert all(np.isnan(v) for v in M.chamfer(pred[3], gt[3]))
    ref = M.reference_metrics(pred, gt)
    # The root (joint 0) stays finite under the first-frame fit: only joint 5 of frame 3 is NaN.
    assert np.isfinite(ref.pop("root_err_first_frame_aligned_mm"))
    assert all(np.isnan(v) for v in ref.values()), ref


# --------------------------------------------------------------- reference JSON parity ---

def test_reference_metrics_reproduce_reference_json():
    """The reference run's stored keyframe joints and cameras give its published metrics."""
    d = np.load(DATA)
    got = M.reference_metrics(d["pred_joints_world"], d["gt_joints_world"], d["pred_cam_centres"],
                              d["gt_cam_centres"], d["f_pred"], d["f_gt"])
    for key in ("w_mpjpe_first_frame_aligned_mm", "wa_mpjpe_sim3_mm", "human_sim3_scale_pred_to_gt",
                "pa_mpjpe_mm", "cam_ate_sim3_m", "cam_ate_se3_noscale_m", "cam_sim3_scale_pred_to_gt",
                "focal_final_rel_err", "root_err_sim3_mm", "root_err_first_frame_aligned_mm"):
        np.testing.assert_allclose(got[key], float(d["ref_" + key]), rtol=1e-7, err_msg=key)
    np.testing.assert_allclose(got["human_scale_err"], abs(1 - float(d["ref_human_sim3_scale_pred_to_gt"])),
                               rtol=1e-9)


def test_evaluate_reports_foot_sliding_on_every_frame():
    """`all_foot_sliding_mm` (docs/outputs.md) is the foot joints' slide where the GT foot is still."""
    rng = np.random.default_rng(0)
    F = 12
    gt = np.zeros((1, F, 24, 3))
    gt[0, :, :, 0] = np.arange(F)[:, None] * 0.1  # body walks 10 cm per frame
    feet = list(evaluate_mod.FOOT_JOINTS)
    gt[0][:, feet] = 0.0  # ... with its feet planted
    gt += rng.normal(0, 1e-4, gt.shape)
    pred = gt.copy()
    pred[0][:, feet, 0] += np.arange(F)[:, None] * 0.005  # feet slide 5 mm per frame
    frames = np.arange(F)
    result = types.SimpleNamespace(
        frame_index=frames, smpl_valid=np.ones((1, F), bool), joints_world=pred[:, :, :24],
        fps=30.0, num_tracks=1, T_world_cam=np.tile(np.eye(4), (F, 1, 1)))
    gt_obj = types.SimpleNamespace(gt_frame_index=frames, gt_joints_world_all=gt,
                                   gt_T_world_cam_all=None)
    out = evaluate_mod.every_frame_metrics(result, gt_obj)
    np.testing.assert_allclose(out["all_foot_sliding_mm"], 5.0, rtol=0.05)
