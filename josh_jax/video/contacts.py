"""Per-vertex contact probabilities from the bodies and the scene alone (no DECO).

The body touches the scene through a few **regions** (left and right foot, left and right hand,
pelvis and buttocks: the vertices whose largest skinning weight belongs to the region's joints).
Per region and keyframe:

1. **anchors**: the region's `anchor_vertices` vertices nearest the scene points;
2. **local surface**: a plane fitted (least squares, normal towards the region's centroid) to
   the `plane_points` scene points nearest the anchors' centroid;
3. **gap**: the median signed distance of the anchors to that plane;
4. **speed**: the median world-frame speed of the anchors (central difference over the
   neighbouring keyframes, one-sided where a neighbour is missing);
5. **probability**: `soft(speed, speed_scale_mps) * soft(|gap|, gap_scale_m)` with
   `soft(x, s) = 1 / (1 + (x / s)^4)` (1 at 0, 1/2 at s, ~0 beyond 2 s);
6. **labels**: the region's vertices at most `band_m` above its lowest anchor (signed distance to
   the plane <= lowest + band_m) get the region's probability; every other vertex 0.

The labels are relative to the region's lowest vertex, not to the plane, so a body estimate that
floats or sinks by a few cm as a whole still labels the vertices that touch (the gap score then
lowers their probability). Relative to the gap (the median anchor) instead, a rolling foot
labels its vertices 2-6 cm up: precision 0.61-0.77 instead of 0.77-0.88 on the tuning seeds. The result is what the Clip's `contact` array holds
(float32[P, T, V], spec §1.4's DECO output). Settings: `experiments/configs/frontend.py`
`contacts` (`ContactSettings.from_config`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import spatial

from josh_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class ContactSettings:
    """The estimator's thresholds (`experiments/configs/frontend.py` `contacts`).

    speed_scale_mps: region speed at which the speed score is 1/2.
    gap_scale_m: region gap to the local surface at which the gap score is 1/2.
    band_m: vertices at most this far above the region's lowest anchor are labelled.
    anchor_vertices: region vertices nearest the scene that define its gap and speed.
    plane_points: scene points the local plane is fitted to.
    """

    speed_scale_mps: float
    gap_scale_m: float
    band_m: float
    anchor_vertices: int
    plane_points: int

    @classmethod
    def from_config(cls, config) -> ContactSettings:
        return cls(speed_scale_mps=float(config.speed_scale_mps),
                   gap_scale_m=float(config.gap_scale_m), band_m=float(config.band_m),
                   anchor_vertices=int(config.anchor_vertices),
                   plane_points=int(config.plane_points))


def soft(x: np.ndarray, scale: float) -> np.ndarray:
    """1 / (1 + (x / scale)^4): 1 at 0, 1/2 at `scale`, 1/17 at 2 `scale`; 0 at inf."""
    return 1.0 / (1.0 + (np.asarray(x, np.float64) / scale) ** 4)


def region_vertices(lbs_weights: np.ndarray, region_joints, min_size: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The contact regions' vertices, padded.

    Args:
      lbs_weights: float[V, J] skinning weights.
      region_joints: R tuples of joint ids; a vertex is in region r when its largest skinning
        weight belongs to one of region r's joints.
      min_size: fewest vertices a region may have (the anchors).

    Returns:
      (index int32[R, N], mask bool[R, N]): region r's vertex ids in index[r, mask[r]] (padding 0).
    """
    dominant = np.argmax(np.asarray(lbs_weights), axis=1)
    members = [np.nonzero(np.isin(dominant, np.asarray(j)))[0] for j in region_joints]
    for joints, m in zip(region_joints, members, strict=True):
        if len(m) < min_size:
            raise InputError("contact regions", str(tuple(joints)),
                             f">= {min_size} vertices skinned mostly to these joints", len(m))
    n = max(len(m) for m in members)
    index = np.zeros((len(members), n), np.int32)
    mask = np.zeros((len(members), n), bool)
    for r, m in enumerate(members):
        index[r, :len(m)], mask[r, :len(m)] = m, True
    return index, mask


def vertex_speed(verts_world: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """World-frame speed of every vertex: central difference over the neighbouring keyframes.

    One-sided where one neighbour is missing (clip ends, unseen frames); inf where both are.

    Args:
      verts_world: float[T, V, 3] vertices at the keyframes (NaN rows: person not seen).
      times_s: float[T] keyframe times in seconds, increasing.

    Returns:
      float[T, V] speed in m/s.
    """
    v = np.asarray(verts_world, np.float64)
    t = np.asarray(times_s, np.float64)
    seen = np.all(np.isfinite(v), axis=(1, 2))
    # Neighbour frames: t +- 1 when seen, else the frame itself (a zero-length difference).
    nxt = np.minimum(np.arange(len(t)) + 1, len(t) - 1)
    prv = np.maximum(np.arange(len(t)) - 1, 0)
    nxt = np.where(seen[nxt], nxt, np.arange(len(t)))
    prv = np.where(seen[prv], prv, np.arange(len(t)))
    dt = t[nxt] - t[prv]  # (T,)
    ok = seen & (dt > 0)
    step = np.linalg.norm(v[nxt] - v[prv], axis=-1)  # (T, V)
    return np.where(ok[:, None], step / np.where(ok, dt, 1.0)[:, None], np.inf)


def fit_planes(patches: np.ndarray, towards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares planes through point patches, normals facing `towards`.

    Args:
      patches: float[R, K, 3] points (K >= 3).
      towards: float[R, 3] a point on the side the normal should face.

    Returns:
      (origin float[R, 3] the patch centroids, normal float[R, 3] unit normals).
    """
    origin = patches.mean(axis=1)
    _, _, vt = np.linalg.svd(patches - origin[:, None], full_matrices=False)
    normal = vt[:, -1]  # (R, 3): direction of least spread
    side = np.sign(np.sum((towards - origin) * normal, axis=-1))
    return origin, normal * np.where(side == 0, 1.0, side)[:, None]


def region_frame(x: np.ndarray, mask: np.ndarray, speed: np.ndarray, scene: np.ndarray,
                 s: ContactSettings) -> tuple[np.ndarray, np.ndarray]:
    """One keyframe: every region's probability and labelled vertices.

    Args:
      x: float[R, N, 3] region vertices in the world (padding anywhere, masked).
      mask: bool[R, N] real vertices.
      speed: float[R, N] their world-frame speeds.
      scene: float[M, 3] finite scene points near the frame.
      s: settings.

    Returns:
      (prob float[R] region probabilities, labelled bool[R, N]); zeros without scene points.
    """
    R, N, _ = x.shape
    if len(scene) < max(3, s.plane_points):
        return np.zeros(R), np.zeros((R, N), bool)
    tree = spatial.cKDTree(scene)
    dist = np.full((R, N), np.inf)
    dist[mask], _ = tree.query(x[mask])
    anchors = np.argpartition(dist, s.anchor_vertices - 1, axis=1)[:, :s.anchor_vertices]
    anchor_x = np.take_along_axis(x, anchors[..., None], axis=1)  # (R, A, 3)
    centre = anchor_x.mean(axis=1)  # (R, 3)
    _, patch = tree.query(centre, k=s.plane_points)  # (R, K)
    region_centre = np.sum(np.where(mask[..., None], x, 0.0), axis=1) / mask.sum(1)[:, None]
    origin, normal = fit_planes(scene[patch], region_centre)
    signed = np.sum((x - origin[:, None]) * normal[:, None], axis=-1)  # (R, N)
    anchor_signed = np.take_along_axis(signed, anchors, axis=1)  # (R, A)
    gap = np.median(anchor_signed, axis=1)  # (R,)
    lowest = anchor_signed.min(axis=1)  # (R,)
    region_speed = np.median(np.take_along_axis(speed, anchors, axis=1), axis=1)
    prob = soft(region_speed, s.speed_scale_mps) * soft(np.abs(gap), s.gap_scale_m)
    return prob, mask & (signed <= lowest[:, None] + s.band_m)


def estimate_contacts(
    verts_world: np.ndarray,
    times_s: np.ndarray,
    scene_world: list[np.ndarray],
    regions: tuple[np.ndarray, np.ndarray],
    settings: ContactSettings,
) -> np.ndarray:
    """Contact probabilities of one person over the keyframes.

    Args:
      verts_world: float[T, V, 3] body vertices in the world (NaN rows: person not seen).
      times_s: float[T] keyframe times in seconds.
      scene_world: T arrays float[M_t, 3], the scene points near each frame (pointmaps with the
        human mask removed, confident pixels only, mapped to the world; the scene under a foot is
        hidden by the person in its own frame, so pass the points of neighbouring frames too).
        Non-finite rows are ignored.
      regions: `region_vertices(...)`: (index int[R, N], mask bool[R, N]).
      settings: thresholds (`ContactSettings.from_config(config.contacts)`).

    Returns:
      float32[T, V] in [0, 1]; 0 off the labelled region vertices, at frames without a body and
      at frames with fewer than `plane_points` scene points.
    """
    T, V, _ = verts_world.shape
    index, mask = regions
    seen = np.all(np.isfinite(verts_world), axis=(1, 2))
    speed = vertex_speed(verts_world, times_s)[:, index]  # (T, R, N)
    x_all = np.asarray(verts_world, np.float64)[:, index]  # (T, R, N, 3)
    prob = np.zeros((T, V), np.float32)
    for t in np.nonzero(seen)[0]:
        scene = np.asarray(scene_world[t], np.float64).reshape(-1, 3)
        scene = scene[np.all(np.isfinite(scene), axis=-1)]
        p_region, labelled = region_frame(x_all[t], mask, speed[t], scene, settings)
        r, n = np.nonzero(labelled)
        prob[t, index[r, n]] = p_region[r]
    return prob
