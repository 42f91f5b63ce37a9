"""Contact-scale entries and static pairs of one human track (docs/method.md §2.9), host numpy.

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
import functools

import numpy as np
import scipy.ndimage

from josh_jax.prepare.anchors import CanonicalViews


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


@dataclasses.dataclass(frozen=True)
class ContactSettings:
    """How contacts are selected and read (from the josh config, see `prepare.build`).

    Attributes:
        joint_radius: a contact vertex is kept if it is the closest contact vertex to a joint and
            within this distance (metres).
        contact_thres: contact probability threshold.
        depth_filter_ratio: drop an entry whose two depths differ by more than this ratio.
        surface_radius: window radius (pixels) of the surface fit.
        surface_margin: support pixels stay this far (pixels) from untrusted ones (the body's
            depth edge is blurred into the scene's).
        surface_max_rms: drop an entry whose window is not a plane (relative rms above this).
        reference_compat: reproduce the reference's counter bug and filters.
    """

    joint_radius: float
    contact_thres: float
    depth_filter_ratio: float
    surface_radius: int
    surface_margin: int
    surface_max_rms: float
    reference_compat: bool


@dataclasses.dataclass(frozen=True)
class _SceneHit:
    """Where a contact meets the scene: anchor, offset, weight, pixel (x, y), uv and slope."""

    anchor: int
    offset: float
    conf: float
    pixel: tuple[int, int]
    uv: tuple[float, float]
    slope: tuple[float, float]


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


def _kept_vertices(contact, verts, joints, contact_thres, joint_radius, dedupe) -> list[int]:
    """Contact vertices kept for one frame: for each joint, the closest contact vertex if within
    `joint_radius` (the reference keeps a vertex once per joint; `dedupe` keeps it once)."""
    ids = np.nonzero(np.asarray(contact) > contact_thres)[0]
    if not len(ids):
        return []
    d2 = np.sum((joints[:, None, :] - verts[ids][None]) ** 2, -1)  # [24, K]
    k = np.argmin(d2, axis=1)
    close = np.sqrt(d2[np.arange(d2.shape[0]), k]) < joint_radius
    kept = [int(ids[kk]) for kk, c in zip(k, close, strict=True) if c]
    return list(dict.fromkeys(kept)) if dedupe else kept


def _reference_hit(views: CanonicalViews, img, u, v, coords, depth_filter_ratio):
    """The reference's scene pixel of a contact projecting at (u, v): only contacts landing on
    untrusted pixels, read at the nearest trusted pixel, filtered on block-relative `canon2`."""
    s = views.subsample
    W2 = views.canon2.shape[2] // s
    hx, hy = int(u), int(v)
    mask = views.scene_mask[img]
    if mask[hy, hx]:
        return None
    py, px = _nearest_true_pixel(mask, coords, v, u)
    a = (py // s) * W2 + px // s
    ref = views.core_canon2[img, a]
    pz = views.canon2[img, py, px]
    hz = views.canon2[img, hy, hx]
    if not (pz > 0 and hz > 0) or max(hz / pz, pz / hz) > depth_filter_ratio:
        return None
    offset, conf = views.canon2[img, py, px] / ref, views.cconf[img, py, px]
    return _SceneHit(a, offset, conf, (px, py), (float(px), float(py)), (0.0, 0.0))


def _surface_hit(views: CanonicalViews, img, u, v, depth, support, body, settings):
    """The scene surface under a contact projecting at (u, v): a plane fitted around it, kept if
    the nearest body pixel's depth agrees with it (a hidden contact has no body pixel near)."""
    fit = fit_surface(depth, support, views.cconf[img], u, v, settings.surface_radius)
    if fit is None or fit[2] > settings.surface_max_rms:
        return None
    pz, slope, _, conf = fit
    hz = _nearest_value(depth, body, u, v, settings.surface_margin + 2)
    if not hz > 0 or max(hz / pz, pz / hz) > settings.depth_filter_ratio:
        return None
    s = views.subsample
    hx, hy = int(u), int(v)
    a = (hy // s) * (views.canon2.shape[2] // s) + hx // s
    offset = pz / views.core_depth[img, a]
    return _SceneHit(a, offset, conf, (hx, hy), (float(u), float(v)), slope)


class _Scene:
    """Where contacts projecting into a keyframe meet the scene (per-image pixel sets cached)."""

    def __init__(self, views: CanonicalViews, depth, body_mask, settings: ContactSettings):
        self.views, self.depth, self.body_mask, self.settings = views, depth, body_mask, settings
        self.trusted_pixels = functools.cache(self._trusted_pixels)
        self.surface_pixels = functools.cache(self._surface_pixels)

    def _trusted_pixels(self, img):  # the reference's nearest-pixel search set
        return np.argwhere(self.views.scene_mask[img])

    def _surface_pixels(self, img):  # (support of the surface fits, body pixels)
        mask = self.views.scene_mask[img]
        support = scipy.ndimage.binary_erosion(
            mask, iterations=self.settings.surface_margin, border_value=1
        )
        body = ~mask if self.body_mask is None else np.asarray(self.body_mask[img], bool)
        return support, body

    def hit(self, img, u, v, z) -> _SceneHit | None:
        """The scene under a contact at pixel (u, v) and camera depth z, None if filtered."""
        views, settings = self.views, self.settings
        _, H, W = views.canon2.shape
        if not (0 <= u < W and 0 <= v < H and z > 1e-6) or not views.scene_mask[img].any():
            return None
        if settings.reference_compat:
            pixels = self.trusted_pixels(img)
            return _reference_hit(views, img, u, v, pixels, settings.depth_filter_ratio)
        support, body = self.surface_pixels(img)
        return _surface_hit(views, img, u, v, self.depth[img], support, body, settings)


def build_contacts(
    verts_cam: np.ndarray,
    joints_reg: np.ndarray,
    contact: np.ndarray,
    frames: np.ndarray,
    views: CanonicalViews,
    depth: np.ndarray,
    focal: float,
    pp: tuple[float, float],
    settings: ContactSettings,
    body_mask: np.ndarray | None = None,
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
        settings: ContactSettings.
        body_mask: bool[T, H, W] pixels of people (default: every untrusted pixel).

    Returns:
        TrackContacts.
    """
    compat = settings.reference_compat
    scene = _Scene(views, depth, body_mask, settings)
    hits, static = [], []  # (image, frame, vertex, _SceneHit), (frame, previous frame, vertex)
    last_ids: list[int] = []
    prev_slot = -1
    smpl_idx = 0  # reference counter (index into the track's frame list)
    num_candidates = 0
    frames = np.asarray(frames)
    for row, img in enumerate(frames.tolist()):
        kept = _kept_vertices(contact[row], verts_cam[row], joints_reg[row],
                              settings.contact_thres, settings.joint_radius, dedupe=not compat)
        if not kept:
            if not compat:
                # Fixed: the frame still counts; the next frame has no previous contacts.
                last_ids, prev_slot = [], img
                smpl_idx += 1
            continue
        num_candidates += len(kept)
        if compat:  # the reference's counter indexes the track's frame list: map it to a slot
            slot = int(frames[min(smpl_idx, len(frames) - 1)])
            prev = int(frames[max(smpl_idx - 1, 0)])
        else:
            slot, prev = img, prev_slot
        X = verts_cam[row, kept].astype(np.float64)
        u = focal * X[:, 0] / X[:, 2] + pp[0]
        v = focal * X[:, 1] / X[:, 2] + pp[1]
        for vid, uu, vv, zz in zip(kept, u, v, X[:, 2], strict=True):
            if vid in last_ids:
                static.append((slot, prev, vid))
            hit = scene.hit(img, uu, vv, zz)
            if hit is not None:
                hits.append((img, slot, vid, hit))
        last_ids, prev_slot = kept, img
        smpl_idx += 1
    return _track_contacts(hits, static, num_candidates)


def _track_contacts(hits, static, num_candidates) -> TrackContacts:
    column = lambda k, dtype: np.asarray([h[k] for h in hits], dtype)
    field = lambda name, dtype: np.asarray([getattr(h[3], name) for h in hits], dtype)
    static_column = lambda k: np.asarray([s[k] for s in static], np.int32)
    return TrackContacts(
        image=column(0, np.int32),
        frame=column(1, np.int32),
        anchor=field("anchor", np.int32),
        offset=field("offset", np.float32),
        conf=field("conf", np.float32),
        vertex=column(2, np.int32),
        pixel=field("pixel", np.int32).reshape(-1, 2),
        uv=field("uv", np.float32).reshape(-1, 2),
        slope=field("slope", np.float32).reshape(-1, 2),
        static_frame=static_column(0),
        static_prev=static_column(1),
        static_vertex=static_column(2),
        num_candidates=num_candidates,
    )
