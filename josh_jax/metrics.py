"""Evaluation metrics: the community protocol of JOSH / WHAM / TRAM and the definitions used in
the reference result JSON (`docs/method.md`, section 10).

Plain numpy (float64) on host arrays; these run once per clip after optimisation, never inside jit.
Units: inputs in metres; MPJPE-type errors returned in mm, RTE in %, jitter in 10 m/s^3, accel in
m/s^2, foot sliding in mm, camera ATE and Chamfer distances in metres.

Frame selection (keyframes, valid frames of a track) is the caller's job: pass only the frames to
score, in time order. Wrong shapes raise ValueError naming the argument; non-finite inputs (a
diverged clip) give NaN metrics instead of an exception, so one bad clip cannot stop a batch
evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

M2MM = 1000.0


def _as_points(x, name: str, ndim: int, last: int | None = 3) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != ndim or (last is not None and x.shape[-1] != last):
        want = "[" + ", ".join(["..."] * (ndim - 1) + [str(last)]) + "]"
        raise ValueError(f"metrics: {name} must have shape {want}, found {x.shape}")
    return x


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"metrics: {na} shape {a.shape} != {nb} shape {b.shape}")


# ---------------------------------------------------------------------------- alignment ---

def umeyama(src, dst, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (or rigid) transform with dst ~ s R src + t (Umeyama 1991).

    C = (dst - mu_d)^T (src - mu_s) / N = U D V^T, S = diag(1, 1, sign(det U det V)), R = U S V^T,
    s = tr(D S) / var(src), t = mu_d - s R mu_s (the evaluation code's `align_pcl`).

    Args:
        src: float[N, 3] points to move (prediction).
        dst: float[N, 3] target points (ground truth).
        with_scale: False gives a rigid fit (s = 1).

    Returns:
        (s, R float[3, 3], t float[3]). A degenerate src (all points equal) gives s = 1, R = I;
        non-finite inputs give NaN everywhere.
    """
    src = _as_points(src, "src", 2)
    dst = _as_points(dst, "dst", 2)
    _same_shape(src, dst, "src", "dst")
    if src.shape[0] == 0:
        raise ValueError("metrics: umeyama needs at least one point, found 0")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        return float("nan"), np.full((3, 3), np.nan), np.full(3, np.nan)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = np.mean(np.sum(xs * xs, axis=-1))
    if var_s <= 1e-24:
        return 1.0, np.eye(3), mu_d - mu_s
    C = xd.T @ xs / src.shape[0]
    U, D, Vt = np.linalg.svd(C)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def apply_similarity(s: float, R: np.ndarray, t: np.ndarray, x) -> np.ndarray:
    """s R x + t for points x float[..., 3]."""
    return s * np.asarray(x, np.float64) @ np.asarray(R).T + np.asarray(t)


def procrustes(pred, gt, with_scale: bool = True) -> np.ndarray:
    """Per-frame similarity alignment of pred onto gt.

    Args:
        pred: float[F, J, 3] predicted joints.
        gt: float[F, J, 3] ground-truth joints.
        with_scale: False for a rigid per-frame fit.

    Returns:
        float[F, J, 3] pred aligned frame by frame.
    """
    pred = _as_points(pred, "pred", 3)
    gt = _as_points(gt, "gt", 3)
    _same_shape(pred, gt, "pred", "gt")
    out = np.empty_like(pred)
    for f in range(pred.shape[0]):
        out[f] = apply_similarity(*umeyama(pred[f], gt[f], with_scale), pred[f])
    return out


# ------------------------------------------------------------------------- joint errors ---

def _per_frame_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) * M2MM


def _reduce(per_frame: np.ndarray, per_frame_out: bool):
    return per_frame if per_frame_out else float(per_frame.mean())


def _joints_pair(pred, gt):
    pred = _as_points(pred, "pred_joints", 3)
    gt = _as_points(gt, "gt_joints", 3)
    _same_shape(pred, gt, "pred_joints", "gt_joints")
    if pred.shape[0] == 0:
        raise ValueError("metrics: no frames to evaluate (F = 0)")
    return pred, gt


def pelvis_centred(joints) -> np.ndarray:
    """joints - pelvis, with the protocol's pelvis = mean of joints 1 and 2 (the hips).

    Args:
        joints: float[F, J, 3] SMPL joints (J >= 3).

    Returns:
        float[F, J, 3] pelvis-centred joints (for local MPJPE / accel).
    """
    J = _as_points(joints, "joints", 3)
    if J.shape[1] < 3:
        raise ValueError(f"metrics: joints must have >= 3 joints (hips 1 and 2), found {J.shape[1]}")
    return J - J[:, 1:3].mean(axis=1, keepdims=True)


def mpjpe(pred_joints, gt_joints, per_frame: bool = False):
    """Mean per-joint position error in mm, no alignment.

    For the local (camera-frame) MPJPE pass `pelvis_centred` joints; with vertices instead of
    joints (centred with the joint pelvis) this is PVE.
    """
    pred, gt = _joints_pair(pred_joints, gt_joints)
    return _reduce(_per_frame_error(pred, gt), per_frame)


def _chunked(pred, gt, chunk: int, fit_frames: int | None, per_frame: bool):
    pred, gt = _joints_pair(pred, gt)
    if chunk < 1:
        raise ValueError(f"metrics: chunk must be >= 1, found {chunk}")
    errs = []
    for start in range(0, pred.shape[0], chunk):
        p, g = pred[start:start + chunk], gt[start:start + chunk]
        n = p.shape[0] if fit_frames is None else min(fit_frames, p.shape[0])
        sim = umeyama(p[:n].reshape(-1, 3), g[:n].reshape(-1, 3), with_scale=True)
        errs.append(_per_frame_error(apply_similarity(*sim, p), g))
    return _reduce(np.concatenate(errs), per_frame)


def w_mpjpe(pred_joints, gt_joints, chunk: int = 100, per_frame: bool = False):
    """W-MPJPE (mm): per chunk of `chunk` frames, a similarity fitted on its first two frames.

    Args:
        pred_joints: float[F, J, 3] predicted world joints (metres).
        gt_joints: float[F, J, 3] ground-truth world joints.
        chunk: chunk length (100 in the protocol); the last chunk may be shorter.
        per_frame: return float[F] per-frame errors instead of their mean.

    Returns:
        mean error in mm (float), or float[F].
    """
    return _chunked(pred_joints, gt_joints, chunk, 2, per_frame)


def wa_mpjpe(pred_joints, gt_joints, chunk: int = 100, per_frame: bool = False):
    """WA-MPJPE (mm): per chunk, a similarity fitted on all the chunk's joints. See `w_mpjpe`."""
    return _chunked(pred_joints, gt_joints, chunk, None, per_frame)


def pa_mpjpe(pred_joints, gt_joints, per_frame: bool = False):
    """PA-MPJPE (mm): a similarity fitted per frame (local pose error only)."""
    pred, gt = _joints_pair(pred_joints, gt_joints)
    return _reduce(_per_frame_error(procrustes(pred, gt), gt), per_frame)


def w_mpjpe_first_frame_rigid(pred_joints, gt_joints, per_frame: bool = False):
    """Mean joint error (mm) after one rigid fit (no scale) on the first frame's joints only.

    The reference JSON's `w_mpjpe_first_frame_aligned_mm`: metric-scale and drift errors count.
    """
    pred, gt = _joints_pair(pred_joints, gt_joints)
    sim = umeyama(pred[0], gt[0], with_scale=False)
    return _reduce(_per_frame_error(apply_similarity(*sim, pred), gt), per_frame)


def wa_mpjpe_sim3(pred_joints, gt_joints, per_frame: bool = False):
    """Mean joint error (mm) after ONE similarity fitted on all frames (reference `wa_mpjpe_sim3_mm`)."""
    pred, gt = _joints_pair(pred_joints, gt_joints)
    sim = umeyama(pred.reshape(-1, 3), gt.reshape(-1, 3), with_scale=True)
    return _reduce(_per_frame_error(apply_similarity(*sim, pred), gt), per_frame)


def human_sim3_scale(pred_joints, gt_joints) -> float:
    """Scale s of the `wa_mpjpe_sim3` similarity (pred -> gt); the human scale error is |1 - s|."""
    pred, gt = _joints_pair(pred_joints, gt_joints)
    return umeyama(pred.reshape(-1, 3), gt.reshape(-1, 3), with_scale=True)[0]


# ---------------------------------------------------------------------- trajectories ---

def rte(pred_root, gt_root, per_frame: bool = False):
    """Root translation error in %: rigid fit over the sequence, error / total GT path length x 100.

    Args:
        pred_root: float[F, 3] predicted root positions (world).
        gt_root: float[F, 3] ground-truth root positions.
        per_frame: return float[F] instead of the mean.

    Returns:
        mean % (float) or float[F]; NaN when the GT root never moves (path length 0).
    """
    pred = _as_points(pred_root, "pred_root", 2)
    gt = _as_points(gt_root, "gt_root", 2)
    _same_shape(pred, gt, "pred_root", "gt_root")
    length = np.sum(np.linalg.norm(np.diff(gt, axis=0), axis=-1))
    err = np.linalg.norm(gt - apply_similarity(*umeyama(pred, gt, with_scale=False), pred), axis=-1)
    err = err / length * 100.0 if length > 0 else np.full(err.shape, np.nan)
    return _reduce(err, per_frame)


def jitter(joints_world, fps: float, per_frame: bool = False):
    """Jitter in units of 10 m/s^3 (WHAM): mean_j |third difference of J| fps^3 / 10.

    Args:
        joints_world: float[F, J, 3] world joints in metres (F >= 4).
        fps: frames per second of the sequence.
        per_frame: return float[F - 3] instead of the mean.
    """
    J = _as_points(joints_world, "joints_world", 3)
    if J.shape[0] < 4:
        raise ValueError(f"metrics: jitter needs >= 4 frames, found {J.shape[0]}")
    d3 = J[3:] - 3 * J[2:-1] + 3 * J[1:-2] - J[:-3]
    return _reduce(np.linalg.norm(d3 * fps ** 3, axis=-1).mean(-1) / 10.0, per_frame)


def accel_error(pred_joints, gt_joints, fps: float, drop_ends: bool = True,
                per_frame: bool = False):
    """Acceleration error in m/s^2: |second difference(pred) - second difference(gt)| fps^2.

    Averaged over joints for t = 1..F-2; the evaluation code then drops the first and last values
    (`drop_ends`). Pass pelvis-centred camera joints or world joints as the protocol says.
    """
    pred, gt = _joints_pair(pred_joints, gt_joints)
    if pred.shape[0] < 3 + 2 * drop_ends:
        raise ValueError(f"metrics: accel_error needs >= {3 + 2 * drop_ends} frames, "
                         f"found {pred.shape[0]}")
    acc = lambda x: x[:-2] - 2 * x[1:-1] + x[2:]
    err = np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean(-1) * fps ** 2
    if drop_ends:
        err = err[1:-1]
    return _reduce(err, per_frame)


def foot_sliding(pred_foot_verts, gt_foot_verts, contact_threshold: float = 0.01) -> float:
    """Foot sliding (mm): mean predicted foot displacement between consecutive frames over the
    (frame, vertex) pairs where the GT vertex moves less than `contact_threshold` metres.

    Args:
        pred_foot_verts: float[F, K, 3] predicted foot vertices (SMPL 3216, 3387, 6617, 6787).
        gt_foot_verts: float[F, K, 3] the same GT vertices.
        contact_threshold: GT displacement per frame below which a vertex is in contact (1 cm).

    Returns:
        mm (float); NaN when there is no GT contact.
    """
    pred = _as_points(pred_foot_verts, "pred_foot_verts", 3)
    gt = _as_points(gt_foot_verts, "gt_foot_verts", 3)
    _same_shape(pred, gt, "pred_foot_verts", "gt_foot_verts")
    contact = np.linalg.norm(np.diff(gt, axis=0), axis=-1) < contact_threshold
    if not contact.any():
        return float("nan")
    slide = np.linalg.norm(np.diff(pred, axis=0), axis=-1)
    return float(slide[contact].mean() * M2MM)


def camera_ate(pred_centres, gt_centres, align: str = "sim3", stat: str = "rmse") -> float:
    """Absolute trajectory error (m) of camera centres after Umeyama alignment pred -> gt.

    Args:
        pred_centres: float[F, 3] predicted camera centres (T_world_cam[:, :3, 3]).
        gt_centres: float[F, 3] ground-truth centres.
        align: "sim3" (with scale), "se3" (rigid) or "none".
        stat: "rmse" (reference JSON, SLOPER4D) or "mean" (evo's APE mean, EMDB).

    Returns:
        error in metres.
    """
    pred = _as_points(pred_centres, "pred_centres", 2)
    gt = _as_points(gt_centres, "gt_centres", 2)
    _same_shape(pred, gt, "pred_centres", "gt_centres")
    if align not in ("sim3", "se3", "none"):
        raise ValueError(f"metrics: align must be 'sim3', 'se3' or 'none', found {align!r}")
    if stat not in ("rmse", "mean"):
        raise ValueError(f"metrics: stat must be 'rmse' or 'mean', found {stat!r}")
    if align != "none":
        pred = apply_similarity(*umeyama(pred, gt, with_scale=align == "sim3"), pred)
    err = np.linalg.norm(pred - gt, axis=-1)
    return float(np.sqrt(np.mean(err ** 2)) if stat == "rmse" else np.mean(err))


def camera_sim3_scale(pred_centres, gt_centres) -> float:
    """Scale of the similarity aligning predicted camera centres to GT (scene scale pred -> gt)."""
    return umeyama(pred_centres, gt_centres, with_scale=True)[0]


def focal_error(f_pred, f_gt) -> float:
    """|f_pred / f_gt - 1| (relative focal error)."""
    return float(abs(float(f_pred) / float(f_gt) - 1.0))


def scale_error(s) -> float:
    """|1 - s| (e.g. the human similarity scale pred -> gt)."""
    return float(abs(1.0 - float(s)))


# ----------------------------------------------------------------------------- scene ---

class ChamferResult(NamedTuple):
    """Mean nearest-neighbour distances in metres."""

    accuracy: float      # pred -> GT
    completeness: float  # GT -> pred
    chamfer: float       # (accuracy + completeness) / 2


def chamfer(pred_points, gt_points) -> ChamferResult:
    """Accuracy, completeness and Chamfer distance between two point clouds (no alignment).

    Args:
        pred_points: float[N, 3] predicted scene points.
        gt_points: float[M, 3] ground-truth scene points.

    Returns:
        ChamferResult(accuracy, completeness, chamfer), in the points' unit.
    """
    pred = _as_points(pred_points, "pred_points", 2)
    gt = _as_points(gt_points, "gt_points", 2)
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        raise ValueError(f"metrics: chamfer needs non-empty clouds, found {pred.shape[0]} pred and "
                         f"{gt.shape[0]} GT points")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(gt))):
        return ChamferResult(float("nan"), float("nan"), float("nan"))
    acc = float(cKDTree(gt).query(pred, k=1)[0].mean())
    comp = float(cKDTree(pred).query(gt, k=1)[0].mean())
    return ChamferResult(acc, comp, 0.5 * (acc + comp))


# -------------------------------------------------------------------- summary (keyframes) ---

def reference_metrics(pred_joints, gt_joints, pred_cam_centres=None, gt_cam_centres=None,
                      f_pred=None, f_gt=None) -> dict[str, float]:
    """The metrics of the reference result JSON, with its key names, on the keyframes.

    Args:
        pred_joints: float[T, 24, 3] predicted world joints at the keyframes.
        gt_joints: float[T, 24, 3] GT world joints at the same frames.
        pred_cam_centres, gt_cam_centres: optional float[T, 3] camera centres.
        f_pred, f_gt: optional focal lengths (px).

    Returns:
        dict with `w_mpjpe_first_frame_aligned_mm`, `wa_mpjpe_sim3_mm`,
        `human_sim3_scale_pred_to_gt`, `human_scale_err`, `pa_mpjpe_mm`,
        `root_err_first_frame_aligned_mm` and `root_err_sim3_mm` (joint 0 only, same two
        alignments), and when given
        `cam_ate_sim3_m`, `cam_ate_se3_noscale_m`, `cam_sim3_scale_pred_to_gt`,
        `focal_final_rel_err` (signed f/f_gt - 1) and `focal_err` (its absolute value).
    """
    pred, gt = _joints_pair(pred_joints, gt_joints)
    s = human_sim3_scale(pred, gt)
    rigid0 = apply_similarity(*umeyama(pred[0], gt[0], with_scale=False), pred)
    sim_all = apply_similarity(*umeyama(pred.reshape(-1, 3), gt.reshape(-1, 3)), pred)
    root_err = lambda p: float(np.linalg.norm(p[:, 0] - gt[:, 0], axis=-1).mean() * M2MM)
    out = {
        "w_mpjpe_first_frame_aligned_mm": w_mpjpe_first_frame_rigid(pred_joints, gt_joints),
        "wa_mpjpe_sim3_mm": wa_mpjpe_sim3(pred_joints, gt_joints),
        "human_sim3_scale_pred_to_gt": s,
        "human_scale_err": scale_error(s),
        "pa_mpjpe_mm": pa_mpjpe(pred_joints, gt_joints),
        "root_err_first_frame_aligned_mm": root_err(rigid0),
        "root_err_sim3_mm": root_err(sim_all),
    }
    if pred_cam_centres is not None and gt_cam_centres is not None:
        out["cam_ate_sim3_m"] = camera_ate(pred_cam_centres, gt_cam_centres, "sim3")
        out["cam_ate_se3_noscale_m"] = camera_ate(pred_cam_centres, gt_cam_centres, "se3")
        out["cam_sim3_scale_pred_to_gt"] = camera_sim3_scale(pred_cam_centres, gt_cam_centres)
    if f_pred is not None and f_gt is not None:
        out["focal_final_rel_err"] = float(f_pred) / float(f_gt) - 1.0
        out["focal_err"] = focal_error(f_pred, f_gt)
    return out
