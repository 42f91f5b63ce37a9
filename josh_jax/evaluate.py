"""A `Result` against ground truth: the metrics of one clip (`josh_jax.metrics` definitions).

    metrics = evaluate(result, gt, body_model)

Keyframe metrics use the reference result JSON's definitions (`metrics.reference_metrics`,
frame-weighted over tracks); with per-video-frame ground truth the community protocol on every
valid frame is added under `all_*`. Every metric aligns prediction and ground truth, so the
result's world frame does not matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import body_models
from josh_jax import metrics
from josh_jax.clip import GroundTruth
from josh_jax.result import Result

# SMPL ankles and feet (toes): the points whose GT stillness marks a foot contact.
FOOT_JOINTS = (7, 8, 10, 11)


def evaluate(result: Result, gt: GroundTruth, body_model=None) -> dict[str, Any]:
    """Metrics of a result against ground truth.

    Keyframes: `wa_mpjpe_sim3_mm`, `w_mpjpe_first_frame_aligned_mm`, `human_sim3_scale_pred_to_gt`,
    `human_scale_err`, `pa_mpjpe_mm`, `cam_ate_sim3_m`, `focal_final_rel_err`, `focal_err`. When
    per-video-frame GT exists (`gt_joints_world_all`, `gt_T_world_cam_all`), every valid frame:
    W-MPJPE / WA-MPJPE (100-frame chunks), PA-MPJPE, RTE (pelvis joint), jitter, foot sliding (on
    the ankle and foot joints FOOT_JOINTS), camera ATE under `all_*`.

    Args:
      result: the Result.
      gt: the clip's GroundTruth (keyframe arrays aligned with the clip's frames).
      body_model: body model for GT joints when the GT has parameters only.

    Returns:
      dict of floats (ints for counts); absent keys mean "no ground truth for it".
    """
    out = _camera_metrics(result, gt)
    gt_joints = _gt_keyframe_joints(result, gt, body_model) if result.num_tracks else None
    if gt_joints is not None:
        out.update(_keyframe_human_metrics(result, gt_joints))
    if gt.gt_joints_world_all is not None and gt.gt_frame_index is not None and result.num_tracks:
        out.update(every_frame_metrics(result, gt))
    return out


def final_losses(diagnostics: dict[str, Any]) -> dict[str, float]:
    """The loss terms at the final parameters, by name (from `final_terms`, `curve_columns`)."""
    if "final_terms" not in diagnostics:
        return {}
    names = [str(c) for c in np.asarray(diagnostics.get("curve_columns", []))]
    values = np.asarray(diagnostics["final_terms"]).reshape(-1)
    if len(names) != values.shape[0]:
        names = [f"term{i}" for i in range(values.shape[0])]
    return {n: float(v) for n, v in zip(names, values, strict=True)}


def _camera_metrics(result: Result, gt: GroundTruth) -> dict[str, Any]:
    """Keyframe camera ATE (sim3 and se3) and the focal error."""
    out: dict[str, Any] = {}
    kf_pos = result.keyframe_positions
    T_kf = np.asarray(result.T_world_cam, np.float64)[kf_pos]
    if gt.gt_T_world_cam is not None:
        gt_c = np.asarray(gt.gt_T_world_cam, np.float64)[:, :3, 3]
        out["cam_ate_sim3_m"] = metrics.camera_ate(T_kf[:, :3, 3], gt_c, "sim3")
        out["cam_ate_se3_noscale_m"] = metrics.camera_ate(T_kf[:, :3, 3], gt_c, "se3")
        out["cam_sim3_scale_pred_to_gt"] = metrics.camera_sim3_scale(T_kf[:, :3, 3], gt_c)
    if gt.gt_focal is not None:
        f = float(np.asarray(result.K)[kf_pos[0], 0, 0])
        out["focal_final"] = f
        out["focal_final_rel_err"] = f / float(gt.gt_focal) - 1.0
        out["focal_err"] = metrics.focal_error(f, gt.gt_focal)
    return out


def _gt_keyframe_joints(result: Result, gt: GroundTruth, body_model) -> np.ndarray | None:
    """float[P, T, J, 3] ground-truth world joints at the keyframes, or None."""
    kf = np.asarray(result.keyframe_index)
    if gt.gt_joints_world_all is not None and gt.gt_frame_index is not None:
        rows = {int(f): i for i, f in enumerate(np.asarray(gt.gt_frame_index))}
        if all(int(f) in rows for f in kf):
            return np.asarray(gt.gt_joints_world_all)[:, [rows[int(f)] for f in kf]]
    if gt.gt_smpl_transl is None or body_model is None:
        return None
    betas = np.asarray(gt.gt_smpl_betas, np.float32)
    P, T = np.asarray(gt.gt_smpl_transl).shape[:2]
    if betas.ndim == 2:
        betas = np.broadcast_to(betas[:, None], (P, T, betas.shape[-1]))
    out = body_models.pose_bodies(body_model, betas,
                                  np.asarray(gt.gt_smpl_global_orient, np.float32),
                                  np.asarray(gt.gt_smpl_body_pose, np.float32),
                                  np.asarray(gt.gt_smpl_transl, np.float32))
    return np.asarray(out.joints, np.float64)


def _keyframe_human_metrics(result: Result, gt_joints: np.ndarray) -> dict[str, Any]:
    """`metrics.reference_metrics` per track on its valid keyframes, frame-weighted."""
    kf_pos = result.keyframe_positions
    valid = np.asarray(result.smpl_valid, bool)[:, kf_pos]
    pred = np.asarray(result.joints_world, np.float64)[:, kf_pos]
    per_track, weights = [], []
    for p in range(min(result.num_tracks, gt_joints.shape[0])):
        m = valid[p]
        if m.sum() < 2:
            continue
        per_track.append(metrics.reference_metrics(pred[p][m], gt_joints[p][m]))
        weights.append(int(m.sum()))
    if not per_track:
        return {}
    w = np.asarray(weights, np.float64) / np.sum(weights)
    out: dict[str, Any] = {
        key: float(sum(wi * d[key] for wi, d in zip(w, per_track, strict=True)))
        for key in per_track[0]}
    out["human_keyframes"] = int(np.sum(weights))
    return out


def every_frame_metrics(result: Result, gt: GroundTruth) -> dict[str, Any]:
    """The community protocol on every valid video frame with ground truth (`all_*`)."""
    rows = {int(f): i for i, f in enumerate(np.asarray(gt.gt_frame_index))}
    frames = np.asarray(result.frame_index)
    have = np.array([int(f) in rows for f in frames])
    idx = np.array([rows.get(int(f), 0) for f in frames])
    gt_all = np.asarray(gt.gt_joints_world_all, np.float64)
    acc: dict[str, list] = {}
    n_total = 0
    for p in range(min(result.num_tracks, gt_all.shape[0])):
        m = np.asarray(result.smpl_valid[p], bool) & have
        if m.sum() < 4:
            continue
        pred = np.asarray(result.joints_world[p], np.float64)[m]
        ref = gt_all[p, idx[m]]
        n = int(m.sum())
        n_total += n
        vals = {
            "all_w_mpjpe_mm": metrics.w_mpjpe(pred, ref),
            "all_wa_mpjpe_mm": metrics.wa_mpjpe(pred, ref),
            "all_pa_mpjpe_mm": metrics.pa_mpjpe(pred, ref),
            "all_rte_pct": metrics.rte(pred[:, 0], ref[:, 0]),
            "all_jitter_10ms3": metrics.jitter(pred, float(result.fps)),
            "all_foot_sliding_mm": metrics.foot_sliding(
                pred[:, FOOT_JOINTS], ref[:, FOOT_JOINTS]),
        }
        if not np.isfinite(vals["all_foot_sliding_mm"]):
            del vals["all_foot_sliding_mm"]  # no GT foot contact in this track
        for k, v in vals.items():
            acc.setdefault(k, []).append((n, v))
    out: dict[str, Any] = {
        k: float(sum(n * v for n, v in lst) / sum(n for n, _ in lst)) for k, lst in acc.items()}
    if n_total:
        out["all_human_frames"] = n_total
    if gt.gt_T_world_cam_all is not None and have.all():
        gt_c = np.asarray(gt.gt_T_world_cam_all, np.float64)[idx, :3, 3]
        pred_c = np.asarray(result.T_world_cam, np.float64)[:, :3, 3]
        out["all_cam_ate_sim3_m"] = metrics.camera_ate(pred_c, gt_c, "sim3")
    return out
