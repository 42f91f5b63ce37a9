"""What a front end would output, simulated from the true geometry with a configurable error model.

Mimics the inputs JOSH gets from its models (see /work/shared/reference/CLIP_FORMAT.md for the
reference generator's model, which this follows):

* a 3D foundation model (MASt3R / Pi3): per-frame camera-frame pointmaps with an unknown global
  scale, per-frame scale jitter, smooth low-frequency relative depth error, per-pixel noise and
  blurred depth edges, consistent with a slightly wrong focal; a confidence in [1, 10] that is
  exactly 1 on people and drops on far surfaces and depth edges;
* its matcher: pixel matches between frame pairs within a window, sampled on a jittered grid of
  frame i from the true geometry (visible in j), with a set fraction of outliers;
* a human mesh recovery model (TRAM / VIMO): camera-frame SMPL with orientation, joint and shape
  noise and a depth bias, under its own focal convention (image diagonal);
* a contact detector (DECO): the true contact vertices with some dropped and some false labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: int = 4) -> np.ndarray:
    """A smooth random field with unit standard deviation: float64[H, W].

    Standard normal values on a coarse grid (`cells` rows, as many square cells across) are
    interpolated with cubic splines, so the error varies over about a quarter of the image.
    """
    gh = max(2, cells)
    gw = max(2, int(round(cells * width / height)))
    coarse = rng.standard_normal((gh + 2, gw + 2))
    fine = ndimage.zoom(coarse, ((height + 1) / gh, (width + 1) / gw), order=3, mode="nearest")
    fine = fine[:height, :width]
    return (fine - fine.mean()) / (fine.std() + 1e-12)


def noisy_depth(depth: np.ndarray, rng: np.random.Generator, *, scale: float,
                frame_scale_jitter: float, lowfreq_rel: float, pixel_rel: float,
                blur_sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The foundation model's depth in its own units.

    Args:
        depth: float64[T, H, W] true metric depth (camera z), scene and people.
        rng: generator.
        scale: global scale (model units per metre), unknown to the optimiser.
        frame_scale_jitter: relative standard deviation of the per-frame scale.
        lowfreq_rel: relative standard deviation of the smooth depth error.
        pixel_rel: relative standard deviation of the per-pixel noise.
        blur_sigma_px: Gaussian blur of the result (soft depth edges), pixels.

    Returns:
        pred_depth float64[T, H, W] (> 0), frame_scale float64[T] (model units per metre).
    """
    num, height, width = depth.shape
    frame_scale = scale * (1.0 + frame_scale_jitter * rng.standard_normal(num))
    out = np.empty_like(depth)
    for t in range(num):
        rel = lowfreq_rel * smooth_field(rng, height, width)
        z = depth[t] * frame_scale[t] * (1.0 + rel)
        z = z * (1.0 + pixel_rel * rng.standard_normal((height, width)))
        if blur_sigma_px > 0:
            z = ndimage.gaussian_filter(z, blur_sigma_px, mode="nearest")
        out[t] = np.maximum(z, 1e-6)
    return out, frame_scale


def confidence(depth: np.ndarray, human: np.ndarray, *, far_m: float, edge_rel: float,
               conf_max: float = 10.0) -> np.ndarray:
    """MASt3R-like confidence in [1, conf_max], multiples of 1/64, exactly 1 on people.

    Args:
        depth: float64[T, H, W] true metric depth.
        human: bool[T, H, W] human pixels.
        far_m: distance at which the confidence above 1 has dropped by e.
        edge_rel: relative depth step between neighbours at which confidence halves.
        conf_max: maximum confidence.

    Returns:
        float32[T, H, W].
    """
    grad_v, grad_u = np.gradient(depth, axis=(1, 2))
    edge = np.hypot(grad_u, grad_v) / np.maximum(depth, 1e-6)
    edge = ndimage.maximum_filter(edge, size=(1, 3, 3))
    conf = 1.0 + (conf_max - 1.0) * np.exp(-depth / far_m) / (1.0 + edge / edge_rel)
    conf = np.round(conf * 64.0) / 64.0
    return np.where(human, 1.0, np.clip(conf, 1.0, conf_max)).astype(np.float32)


def window_pairs(num_frames: int, window: int) -> np.ndarray:
    """All pairs (i, j) with 0 < j - i <= window, i ascending then j: int32[E, 2]."""
    return np.array([(i, j) for i in range(num_frames)
                     for j in range(i + 1, min(num_frames, i + window + 1))],
                    np.int32).reshape(-1, 2)


def sample_matches(depth: np.ndarray, human: np.ndarray, conf: np.ndarray, K: np.ndarray,
                   T_world_cam: np.ndarray, pairs: np.ndarray, rng: np.random.Generator, *,
                   grid_step: int, outlier_rate: float, max_matches: int,
                   visibility_rel: float = 0.02):
    """Pixel matches between frame pairs from the true geometry.

    For each pair (i, j): one pixel per `grid_step` cell of frame i, jittered inside its cell;
    scene pixels only; moved to frame j with the true depth and cameras; kept if inside frame j,
    not on a person there and not occluded (frame j's depth agrees within `visibility_rel`);
    rounded to the nearest pixel like a matcher's output. A fraction `outlier_rate` of the kept
    matches is replaced by a random scene pixel of frame j. At most `max_matches` per pair
    (random subset); the rest is padding with confidence 0.

    Args:
        depth: float64[T, H, W] true metric depth.
        human: bool[T, H, W] human pixels.
        conf: float32[T, H, W] pointmap confidence (sets the match confidence).
        K: float64[3, 3] true intrinsics.
        T_world_cam: float64[T, 4, 4] true cameras.
        pairs: int32[E, 2].
        rng: generator.
        grid_step: grid cell in pixels.
        outlier_rate: fraction of wrong matches.
        max_matches: cap per pair (M).
        visibility_rel: occlusion tolerance.

    Returns:
        matches float32[E, M, 2, 2], match_confidence float32[E, M], counts int32[E],
        is_outlier bool[E, M].
    """
    _, height, width = depth.shape
    gv, gu = np.meshgrid(np.arange(0, height, grid_step), np.arange(0, width, grid_step),
                         indexing="ij")
    cells = np.stack([gu.ravel(), gv.ravel()], -1)
    per_pair = []
    for i, j in pairs:
        src, dst = _visible_matches(depth, human, K, T_world_cam, i, j, cells, rng, grid_step,
                                    visibility_rel)
        if len(src) > max_matches:
            pick = np.sort(rng.choice(len(src), max_matches, replace=False))
            src, dst = src[pick], dst[pick]
        outlier = rng.random(len(src)) < outlier_rate
        if outlier.any():
            scene_pix = np.argwhere(~human[j])  # (v, u)
            if len(scene_pix):
                rand = scene_pix[rng.integers(0, len(scene_pix), outlier.sum())]
                dst[outlier] = rand[:, ::-1]
        q = np.sqrt(conf[i, src[:, 1], src[:, 0]] * conf[j, dst[:, 1], dst[:, 0]]) / 10.0
        per_pair.append((src, dst, q, outlier))
    return _padded(per_pair)


def _visible_matches(depth, human, K, T_world_cam, i: int, j: int, cells, rng, grid_step: int,
                     visibility_rel: float):
    """(src int[n, 2], dst int64[n, 2]) pixels (u, v): frame i's jittered grid of scene pixels
    moved to frame j with the true depth and cameras, kept where they land inside frame j, off its
    people and unoccluded."""
    _, height, width = depth.shape
    jitter = rng.integers(0, grid_step, size=cells.shape)
    uv = np.minimum(cells + jitter, [width - 1, height - 1])
    keep = ~human[i, uv[:, 1], uv[:, 0]]
    uv = uv[keep]
    z = depth[i, uv[:, 1], uv[:, 0]]
    x_cam = np.stack([(uv[:, 0] - K[0, 2]) * z / K[0, 0], (uv[:, 1] - K[1, 2]) * z / K[1, 1],
                      z], -1)
    x_world = x_cam @ T_world_cam[i, :3, :3].T + T_world_cam[i, :3, 3]
    R_jw = T_world_cam[j, :3, :3].T
    x_j = (x_world - T_world_cam[j, :3, 3]) @ R_jw.T
    zj = x_j[:, 2]
    zs = np.where(zj > 1e-3, zj, 1.0)
    uj = np.round(K[0, 0] * x_j[:, 0] / zs + K[0, 2]).astype(np.int64)
    vj = np.round(K[1, 1] * x_j[:, 1] / zs + K[1, 2]).astype(np.int64)
    ok = (zj > 1e-3) & (uj >= 0) & (uj < width) & (vj >= 0) & (vj < height)
    uj_c, vj_c = np.clip(uj, 0, width - 1), np.clip(vj, 0, height - 1)
    ok &= ~human[j, vj_c, uj_c]
    ok &= np.abs(depth[j, vj_c, uj_c] - zj) < visibility_rel * np.maximum(zj, 1e-3)
    return uv[ok], np.stack([uj[ok], vj[ok]], -1)


def _padded(per_pair: list):
    """Per-pair (src, dst, q, outlier) -> (matches float32[E, M, 2, 2], match_confidence
    float32[E, M], counts int32[E], is_outlier bool[E, M]), zero-padded to the longest pair."""
    num_pairs = len(per_pair)
    m = max([len(p[0]) for p in per_pair] + [1])
    matches = np.zeros((num_pairs, m, 2, 2), np.float32)
    match_conf = np.zeros((num_pairs, m), np.float32)
    is_outlier = np.zeros((num_pairs, m), bool)
    counts = np.zeros(num_pairs, np.int32)
    for e, (src, dst, q, outlier) in enumerate(per_pair):
        n = len(src)
        matches[e, :n, 0] = src
        matches[e, :n, 1] = dst
        match_conf[e, :n] = np.maximum(q, 2e-3)
        is_outlier[e, :n] = outlier
        counts[e] = n
    return matches, match_conf, counts, is_outlier


def _rotation_noise(rng: np.random.Generator, shape, std_deg: float) -> np.ndarray:
    """Random rotations with isotropic axis-angle noise of `std_deg` per axis: [..., 3, 3]."""
    rotvec = np.deg2rad(std_deg) * rng.standard_normal(tuple(shape) + (3,))
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(tuple(shape) + (3, 3))


def hmr_estimate(global_orient_world: np.ndarray, body_pose: np.ndarray, betas: np.ndarray,
                 pelvis_world: np.ndarray, T_world_cam: np.ndarray, rest_pelvis_fn, rng, *,
                 true_focal: float, hmr_focal: float, orient_deg: float, joint_deg: float,
                 betas_std: float, depth_bias: float, depth_noise: float, lateral_m: float):
    """A TRAM/VIMO-like camera-frame SMPL estimate of one person for each frame.

    The root orientation is moved into each camera and perturbed; each body joint is perturbed;
    betas get one offset for the whole clip. The pelvis in the camera, p, becomes
    `p * (1 + eps)` with `eps = depth_bias + N(0, depth_noise)` (depth error along the viewing
    ray, keeping the 2D projection), its z is multiplied by `hmr_focal / true_focal` (what a
    model assuming focal `hmr_focal` outputs; JOSH divides it back), and `lateral_m` noise is
    added to x and y. `transl = pelvis - J0(noisy betas)` (smplx semantics).

    Args:
        global_orient_world: float64[T, 3, 3].
        body_pose: float64[T, J-1, 3, 3].
        betas: float64[B] true shape.
        pelvis_world: float64[T, 3] true pelvis joint.
        T_world_cam: float64[T, 4, 4].
        rest_pelvis_fn: betas float64[B] -> float64[3] rest pelvis joint J0(betas).
        rng: generator.
        true_focal, hmr_focal: focals in pixels.
        orient_deg, joint_deg, betas_std, depth_bias, depth_noise, lateral_m: noise levels.

    Returns:
        dict of float64 arrays: global_orient [T, 3, 3] (camera frame), body_pose [T, J-1, 3, 3],
        betas [T, B], transl [T, 3] (camera frame, HMR focal convention).
    """
    num = len(global_orient_world)
    R_cam_world = np.swapaxes(T_world_cam[:, :3, :3], -1, -2)
    orient_cam = _rotation_noise(rng, (num,), orient_deg) @ R_cam_world @ global_orient_world
    pose = body_pose @ _rotation_noise(rng, body_pose.shape[:2], joint_deg)
    betas_hmr = betas + betas_std * rng.standard_normal(betas.shape)
    pelvis_cam = np.einsum("tij,tj->ti", R_cam_world, pelvis_world - T_world_cam[:, :3, 3])
    eps = depth_bias + depth_noise * rng.standard_normal(num)
    pelvis_hmr = pelvis_cam * (1.0 + eps)[:, None]
    pelvis_hmr[:, 2] *= hmr_focal / true_focal
    pelvis_hmr[:, :2] += lateral_m * rng.standard_normal((num, 2))
    transl = pelvis_hmr - rest_pelvis_fn(betas_hmr)
    return dict(global_orient=orient_cam, body_pose=pose,
                betas=np.broadcast_to(betas_hmr, (num,) + betas.shape).copy(), transl=transl)


def deco_contacts(gt_contact: np.ndarray, valid: np.ndarray, candidates: np.ndarray,
                  lowest: np.ndarray, rng: np.random.Generator, *, drop_rate: float,
                  false_rate: float, fill_empty: bool = True) -> np.ndarray:
    """DECO-like 0/1 per-vertex contact labels of one person.

    Args:
        gt_contact: bool[T, V] true contacts.
        valid: bool[T] frames where the person is visible (others get no labels).
        candidates: int[C] vertices that false labels are drawn from (e.g. the feet).
        lowest: int[T, k] per frame the k lowest sole vertices (used to fill an empty frame).
        rng: generator.
        drop_rate: probability of dropping each true label.
        false_rate: probability of a false label on each non-contact candidate vertex.
        fill_empty: label the lowest sole vertices in a visible frame left without contacts
            (as the reference generator does; JOSH fails on frames without contacts).

    Returns:
        float32[T, V] labels in {0, 1}.
    """
    labels = gt_contact & (rng.random(gt_contact.shape) >= drop_rate)
    false = np.zeros_like(labels)
    false[:, candidates] = rng.random((len(gt_contact), len(candidates))) < false_rate
    labels |= false & ~gt_contact
    if fill_empty:
        empty = valid & ~labels.any(axis=1)
        for t in np.nonzero(empty)[0]:
            labels[t, lowest[t]] = True
    labels &= valid[:, None]
    return labels.astype(np.float32)
