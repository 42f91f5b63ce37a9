"""Contact-scale entries and static pairs of one human track (spec section 2.9), host numpy.

`build_contacts` reproduces the reference's loop (with `reference_compat=True`, including its
`smpl_idx` counter bug and its filter that keeps only contacts projecting onto masked pixels) or
this project's fixed version (default):

* the SMPL frame of an entry is its own frame (the reference's counter skips frames without kept
  points, so later entries point at the wrong frame);
* every contact that projects inside the image is used (the reference drops those landing on
  trusted scene pixels);
* the scene depth of an entry is not read at the nearest trusted pixel (a grazing floor seen past
  the foot is several centimetres deeper per pixel) but from a plane fitted to the trusted scene
  pixels around the contact pixel, kept away from the human's blurred depth edge: inverse depth
  is affine in the pixel for a plane, 1/z = w0 (1 + a du + b dv). The entry stores the depth at
  the contact pixel and the relative slope (a, b), so the optimiser can re-read the surface where
  the vertex currently projects (contact re-association);
* the depth-consistency filter compares that surface depth with the pointmap depth of the body
  at the contact (its nearest body pixel), not block-relative `canon2` values at the snapped
  pixel; a contact with no body pixel near its projection is hidden (e.g. a foot behind a bench,
  where the surface window would see the occluder) and is dropped;
* repeated vertices of one frame (one point kept for several joints) are kept once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage

from josh_jax.anchors import CanonicalViews


@dataclasses.dataclass(frozen=True)
class TrackContacts:
    """Contact constraints of one track (host numpy, unpadded).

    Attributes:
        image: int32[E] image (keyframe) of each scale entry (camera and anchor depths).
        frame: int32[E] keyframe slot whose SMPL vertex is used (== image unless the reference's
            counter bug is reproduced).
        anchor: int32[E] anchor index of the scene pixel.
        offset: float32[E] depth offset of that pixel relative to the anchor depth.
        conf: float32[E] scene confidence cconf there (the entry weight).
        vertex: int32[E] body vertex id.
        pixel: int32[E, 2] scene pixel (x, y) used.
        uv: float32[E, 2] sub-pixel position where `offset` holds (the vertex's projection; the
            pixel itself in reference_compat).
        slope: float32[E, 2] relative inverse-depth slope (a, b) of the local surface per pixel:
            depth at uv + (du, dv) = depth at uv / (1 + a du + b dv); zeros in reference_compat.
        static_frame: int32[S] keyframe slot b of each static pair.
        static_prev: int32[S] slot of the previous SMPL frame of the track (b - 1 in its list).
        static_vertex: int32[S] body vertex id.
        num_candidates: number of kept contact points before the image filters.
    """

    image: np.ndarray
    frame: np.ndarray
    anchor: np.ndarray
    offset: np.ndarray
    conf: np.ndarray
    vertex: np.ndarray
    pixel: np.ndarray
    uv: np.ndarray
    slope: np.ndarray
    static_frame: np.ndarray
    static_prev: np.ndarray
    static_vertex: np.ndarray
    num_candidates: int


def _nearest_true_pixel(mask: np.ndarray, coords: np.ndarray, py: float, px: float):
    """Row-major-first nearest True pixel to (py, px) by squared distance (reference semantics)."""
    d = (coords[:, 0] - py) ** 2 + (coords[:, 1] - px) ** 2
    k = int(np.argmin(d))
    return int(coords[k, 0]), int(coords[k, 1])


def _nearest_value(values: np.ndarray, where: np.ndarray, u: float, v: float, radius: int):
    """values at the `where` pixel nearest to (u, v) within `radius` pixels, else nan."""
    H, W = values.shape
    x0, y0 = max(int(u) - radius, 0), max(int(v) - radius, 0)
    yy, xx = np.mgrid[y0 : min(int(v) + radius + 1, H), x0 : min(int(u) + radius + 1, W)]
    sel = where[yy, xx]
    if not sel.any():
        return np.nan
    d2 = np.where(sel, (xx + 0.5 - u) ** 2 + (yy + 0.5 - v) ** 2, np.inf)
    k = np.unravel_index(np.argmin(d2), d2.shape)
    return values[yy[k], xx[k]] if d2[k] <= radius**2 else np.nan


def fit_surface(
    depth: np.ndarray,
    support: np.ndarray,
    conf: np.ndarray,
    u: float,
    v: float,
    radius: int,
    min_points: int = 12,
):
    """Plane through the support pixels within `radius` of (u, v), as inverse depth affine in pixels.

    Least squares on 1/z = w0 + gu (x - u) + gv (y - v), refitted twice without the points beyond
    3 robust sigmas (a box edge or clutter inside the window).

    Args:
        depth: float[H, W] pointmap depth of the image.
        support: bool[H, W] pixels that may be used.
        conf: float[H, W] confidence, averaged over the points used.
        u, v: contact pixel (sub-pixel; x right, y down).
        radius: window radius in pixels.
        min_points: fewest support pixels for a fit.

    Returns:
        (z0, (a, b), rms, conf): depth at (u, v), relative slope (gu / w0, gv / w0), rms of
        the relative inverse-depth residual, mean confidence of the points used; None when the
        window has too few points or the plane faces away (z0 <= 0).
    """
    H, W = depth.shape
    x0, x1 = max(int(np.floor(u - radius)), 0), min(int(np.ceil(u + radius)) + 1, W)
    y0, y1 = max(int(np.floor(v - radius)), 0), min(int(np.ceil(v + radius)) + 1, H)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    z = depth[y0:y1, x0:x1]
    sel = support[y0:y1, x0:x1] & ((xx - u) ** 2 + (yy - v) ** 2 <= radius**2) & (z > 0)
    if sel.sum() < min_points:
        return None
    A = np.stack([np.ones(sel.sum()), xx[sel] - u, yy[sel] - v], 1)
    w = 1.0 / z[sel].astype(np.float64)
    keep = np.ones(len(w), bool)
    for _ in range(2):
        coef = np.linalg.lstsq(A[keep], w[keep], rcond=None)[0]
        res = w - A @ coef
        mad = np.median(np.abs(res[keep] - np.median(res[keep])))
        keep = np.abs(res) <= 3.0 * 1.4826 * mad + 1e-9 * abs(coef[0])
        if keep.sum() < min_points:
            return None
    coef = np.linalg.lstsq(A[keep], w[keep], rcond=None)[0]
    if coef[0] <= 0:
        return None
    rms = float(np.sqrt(np.mean(((w[keep] - A[keep] @ coef) / coef[0]) ** 2)))
    mean_conf = float(conf[y0:y1, x0:x1][sel][keep].mean())
    return 1.0 / coef[0], (coef[1] / coef[0], coef[2] / coef[0]), rms, mean_conf


def build_contacts(
    verts_cam: np.ndarray,
    joints_reg: np.ndarray,
    contact: np.ndarray,
    frames: np.ndarray,
    views: CanonicalViews,
    depth: np.ndarray,
    focal: float,
    pp: tuple[float, float],
    *,
    joint_radius: float = 0.05,
    contact_thres: float = 0.5,
    depth_filter_ratio: float = 1.01,
    surface_radius: int = 16,
    surface_margin: int = 3,
    surface_max_rms: float = 0.03,
    body_mask: np.ndarray | None = None,
    reference_compat: bool = False,
) -> TrackContacts:
    """Contact-scale entries and static pairs of one track.

    Args:
        verts_cam: float[n, V, 3] initial camera-frame SMPL vertices at the track's keyframes.
        joints_reg: float[n, 24, 3] joints regressed from those vertices (J_regressor @ V).
        contact: float[n, V] per-vertex contact probability (DECO: 0/1).
        frames: int[n] keyframe index of each row (ascending).
        views: canonical views of the clip.
        depth: float[T, H, W] pointmap depth (z) of each keyframe (for the fixed depth filter).
        focal: focal used to project the contact points (JOSH: new_focal).
        pp: principal point (cx, cy).
        joint_radius: a contact vertex is kept if it is the closest contact vertex to a joint and
            within this distance (metres).
        contact_thres: contact probability threshold.
        depth_filter_ratio: drop an entry whose two depths differ by more than this ratio.
        surface_radius: window radius (pixels) of the surface fit.
        surface_margin: support pixels stay this far (pixels) from untrusted ones (the body's
            depth edge is blurred into the scene's).
        surface_max_rms: drop an entry whose window is not a plane (relative rms above this).
        body_mask: bool[T, H, W] pixels of people (default: every untrusted pixel).
        reference_compat: reproduce the reference's counter bug and filters.

    Returns:
        TrackContacts.
    """
    T, H, W = views.canon2.shape
    s = views.subsample
    W2 = W // s
    cx, cy = pp
    keys = ("image", "frame", "anchor", "offset", "conf", "vertex", "pixel", "uv", "slope")
    ent = {k: [] for k in keys}
    st_frame, st_prev, st_vertex = [], [], []
    last_ids: list[int] = []
    prev_slot = -1
    smpl_idx = 0  # reference counter (index into the track's frame list)
    num_candidates = 0
    coords_cache: dict[int, np.ndarray] = {}
    surface_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # support, body pixels
    frames = np.asarray(frames)
    for row, img in enumerate(frames.tolist()):
        ids = np.nonzero(np.asarray(contact[row]) > contact_thres)[0]
        kept: list[int] = []
        if len(ids):
            P = verts_cam[row, ids]
            d2 = np.sum((joints_reg[row][:, None, :] - P[None]) ** 2, -1)  # [24, K]
            k = np.argmin(d2, axis=1)
            close = np.sqrt(d2[np.arange(d2.shape[0]), k]) < joint_radius
            kept = [int(ids[kk]) for kk, c in zip(k, close, strict=True) if c]
        if not reference_compat:
            kept = list(dict.fromkeys(kept))  # one entry per vertex
        if not kept:
            if not reference_compat:
                # Fixed: the frame still counts; the next frame has no previous contacts.
                last_ids = []
                prev_slot = img
                smpl_idx += 1
            continue
        num_candidates += len(kept)
        X = verts_cam[row, kept].astype(np.float64)
        u = focal * X[:, 0] / X[:, 2] + cx
        v = focal * X[:, 1] / X[:, 2] + cy
        mask = views.scene_mask[img]
        # The reference's counter indexes the track's frame list; map it to a keyframe slot.
        slot = int(frames[min(smpl_idx, len(frames) - 1)]) if reference_compat else img
        prev = int(frames[max(smpl_idx - 1, 0)]) if reference_compat else prev_slot
        cur_ids = []
        for vid, uu, vv, zz in zip(kept, u, v, X[:, 2], strict=True):
            cur_ids.append(vid)
            if vid in last_ids:
                st_frame.append(slot)
                st_prev.append(prev)
                st_vertex.append(vid)
            inside = 0 <= uu < W and 0 <= vv < H and zz > 1e-6
            if not inside or not mask.any():
                continue
            hx, hy = int(uu), int(vv)
            if reference_compat:
                if mask[hy, hx]:
                    continue  # the reference only uses contacts landing on masked pixels
                if img not in coords_cache:
                    coords_cache[img] = np.argwhere(mask)
                py, px = _nearest_true_pixel(mask, coords_cache[img], vv, uu)
                a = (py // s) * W2 + px // s
                ref = views.core_canon2[img, a]
                pz = views.canon2[img, py, px]
                hz = views.canon2[img, hy, hx]
                if not (pz > 0 and hz > 0) or max(hz / pz, pz / hz) > depth_filter_ratio:
                    continue
                offset, conf = views.canon2[img, py, px] / ref, views.cconf[img, py, px]
                at, slope = (float(px), float(py)), (0.0, 0.0)
            else:
                if img not in surface_cache:
                    surface_cache[img] = (
                        scipy.ndimage.binary_erosion(
                            mask, iterations=surface_margin, border_value=1
                        ),
                        ~mask if body_mask is None else np.asarray(body_mask[img], bool),
                    )
                support, body = surface_cache[img]
                fit = fit_surface(depth[img], support, views.cconf[img], uu, vv, surface_radius)
                if fit is None or fit[2] > surface_max_rms:
                    continue
                pz, slope, _, conf = fit
                hz = _nearest_value(depth[img], body, uu, vv, surface_margin + 2)
                if not hz > 0 or max(hz / pz, pz / hz) > depth_filter_ratio:
                    continue
                py, px = hy, hx
                a = (py // s) * W2 + px // s
                offset = pz / views.core_depth[img, a]
                at = (float(uu), float(vv))
            ent["image"].append(img)
            ent["frame"].append(slot)
            ent["anchor"].append(a)
            ent["offset"].append(offset)
            ent["conf"].append(conf)
            ent["vertex"].append(vid)
            ent["pixel"].append((px, py))
            ent["uv"].append(at)
            ent["slope"].append(slope)
        last_ids = cur_ids
        prev_slot = img
        smpl_idx += 1
    return TrackContacts(
        image=np.asarray(ent["image"], np.int32),
        frame=np.asarray(ent["frame"], np.int32),
        anchor=np.asarray(ent["anchor"], np.int32),
        offset=np.asarray(ent["offset"], np.float32),
        conf=np.asarray(ent["conf"], np.float32),
        vertex=np.asarray(ent["vertex"], np.int32),
        pixel=np.asarray(ent["pixel"], np.int32).reshape(-1, 2),
        uv=np.asarray(ent["uv"], np.float32).reshape(-1, 2),
        slope=np.asarray(ent["slope"], np.float32).reshape(-1, 2),
        static_frame=np.asarray(st_frame, np.int32),
        static_prev=np.asarray(st_prev, np.int32),
        static_vertex=np.asarray(st_vertex, np.int32),
        num_candidates=num_candidates,
    )
