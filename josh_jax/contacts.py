"""Contact-scale entries and static pairs of one human track (spec section 2.9), host numpy.

`build_contacts` reproduces the reference's loop (with `reference_compat=True`, including its
`smpl_idx` counter bug and its filter that keeps only contacts projecting onto masked pixels) or
this project's fixed version (default):

* the SMPL frame of an entry is its own frame (the reference's counter skips frames without kept
  points, so later entries point at the wrong frame);
* every contact that projects inside the image is used: onto a trusted scene pixel it is used
  there directly, onto a masked pixel it is snapped to the nearest trusted pixel (the reference
  drops the first kind);
* the depth-consistency filter compares pointmap depths (z at the snapped pixel vs z at the
  contact pixel), not the block-relative `canon2` values;
* repeated vertices of one frame (one point kept for several joints) are kept once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.spatial

from josh_jax.anchors import CanonicalViews


@dataclasses.dataclass(frozen=True)
class TrackContacts:
    """Contact constraints of one track (host numpy, unpadded).

    Attributes:
        image: int32[E] image (keyframe) of each scale entry (camera and anchor depths).
        frame: int32[E] keyframe slot whose SMPL vertex is used (== image unless the reference's
            counter bug is reproduced).
        anchor: int32[E] anchor index of the scene pixel.
        offset: float32[E] block-relative depth offset of that pixel (pz / ref).
        conf: float32[E] cconf at that pixel (the entry weight).
        vertex: int32[E] body vertex id.
        pixel: int32[E, 2] scene pixel (x, y) used.
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
    static_frame: np.ndarray
    static_prev: np.ndarray
    static_vertex: np.ndarray
    num_candidates: int


def _nearest_true_pixel(mask: np.ndarray, coords: np.ndarray, py: float, px: float):
    """Row-major-first nearest True pixel to (py, px) by squared distance (reference semantics)."""
    d = (coords[:, 0] - py) ** 2 + (coords[:, 1] - px) ** 2
    k = int(np.argmin(d))
    return int(coords[k, 0]), int(coords[k, 1])


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
        reference_compat: reproduce the reference's counter bug and filters.

    Returns:
        TrackContacts.
    """
    T, H, W = views.canon2.shape
    s = views.subsample
    W2 = W // s
    cx, cy = pp
    ent = {k: [] for k in ("image", "frame", "anchor", "offset", "conf", "vertex", "pixel")}
    st_frame, st_prev, st_vertex = [], [], []
    last_ids: list[int] = []
    prev_slot = -1
    smpl_idx = 0  # reference counter (index into the track's frame list)
    num_candidates = 0
    coords_cache: dict[int, np.ndarray] = {}
    tree_cache: dict[int, scipy.spatial.cKDTree] = {}
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
        if img not in coords_cache:
            coords_cache[img] = np.argwhere(mask)
        coords = coords_cache[img]
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
                py, px = _nearest_true_pixel(mask, coords, vv, uu)
                a = (py // s) * W2 + px // s
                ref = views.core_canon2[img, a]
                pz = views.canon2[img, py, px]
                hz = views.canon2[img, hy, hx]
            else:
                if mask[hy, hx]:
                    py, px = hy, hx
                else:
                    if img not in tree_cache:
                        tree_cache[img] = scipy.spatial.cKDTree(coords.astype(np.float64))
                    _, kk = tree_cache[img].query([vv, uu])
                    py, px = int(coords[kk, 0]), int(coords[kk, 1])
                a = (py // s) * W2 + px // s
                ref = views.core_canon2[img, a]
                pz = depth[img, py, px]
                hz = depth[img, hy, hx]
            if not (pz > 0 and hz > 0) or max(hz / pz, pz / hz) > depth_filter_ratio:
                continue
            ent["image"].append(img)
            ent["frame"].append(slot)
            ent["anchor"].append(a)
            ent["offset"].append(views.canon2[img, py, px] / ref)
            ent["conf"].append(views.cconf[img, py, px])
            ent["vertex"].append(vid)
            ent["pixel"].append((px, py))
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
        static_frame=np.asarray(st_frame, np.int32),
        static_prev=np.asarray(st_prev, np.int32),
        static_vertex=np.asarray(st_vertex, np.int32),
        num_candidates=num_candidates,
    )
