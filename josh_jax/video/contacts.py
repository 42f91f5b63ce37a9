"""Per-vertex contact probabilities from the bodies and the scene alone (no DECO).

A vertex touches the scene when it is (a) one that can bear weight (soles, hands, pelvis and
buttocks: the `candidates` mask), (b) nearly still in the world frame and (c) close to the local
scene surface read from the pointmaps. Each cue is a soft score in [0, 1]; the probability is
their product:

    p = candidate * exp(-(speed / speed_scale)^2) * exp(-(distance / distance_scale)^2)

speed: world-frame speed (the smaller one-sided difference) over the keyframes (seconds from `times_s`);
distance: to the nearest scene point of the frame's (masked, confident) pointmap in the world.
The result is what the Clip's `contact` array holds (float32[P, T, V], spec §1.4's DECO output).
"""

import numpy as np


def vertex_speed(verts_world: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """World-frame speed of every vertex: the smaller of the backward and forward differences.

    The smaller one, because a foot that lands or lifts between two keyframes (0.17 s apart at
    JOSH's stride) is still on the ground at the keyframe itself.

    Args:
      verts_world: float[T, V, 3] vertices at the keyframes (T >= 2).
      times_s: float[T] keyframe times in seconds, increasing.

    Returns:
      float[T, V] speed in m/s.
    """
    step = np.linalg.norm(np.diff(verts_world, axis=0), axis=-1)
    step = step / np.maximum(np.diff(times_s), 1e-9)[:, None]  # (T-1, V)
    backward = np.concatenate([step[:1], step], axis=0)
    forward = np.concatenate([step, step[-1:]], axis=0)
    return np.minimum(backward, forward)


def distance_to_scene(points_world: np.ndarray, scene_world: np.ndarray, block: int) -> np.ndarray:
    """Distance from each point to its nearest scene point (brute force in blocks of points).

    Args:
      points_world: float[N, 3].
      scene_world: float[M, 3] scene points (non-finite rows ignored); M = 0 gives inf.
      block: points per block (bounds memory at block * M).

    Returns:
      float[N].
    """
    scene = scene_world[np.all(np.isfinite(scene_world), axis=-1)]
    out = np.full(len(points_world), np.inf)
    if len(scene) == 0:
        return out
    s2 = np.sum(scene * scene, axis=-1)
    for a in range(0, len(points_world), block):
        x = points_world[a:a + block]
        d2 = np.sum(x * x, axis=-1)[:, None] - 2.0 * x @ scene.T + s2[None]
        out[a:a + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def estimate_contacts(
    verts_world: np.ndarray,
    times_s: np.ndarray,
    scene_world: list[np.ndarray],
    candidates: np.ndarray,
    speed_scale_mps: float,
    distance_scale_m: float,
    block: int,
) -> np.ndarray:
    """Contact probabilities of one person over the keyframes.

    Args:
      verts_world: float[T, V, 3] body vertices in the world (NaN rows: person not seen).
      times_s: float[T] keyframe times in seconds.
      scene_world: T arrays float[M_t, 3], the scene points near each frame (pointmaps with the
        human mask removed, confident pixels only, mapped to the world; the scene under a foot is
        hidden by the person in its own frame, so pass the points of neighbouring frames too).
      candidates: bool[V] vertices that may touch the scene (soles, hands, pelvis).
      speed_scale_mps, distance_scale_m: soft thresholds (experiments/configs).
      block: points per distance block.

    Returns:
      float32[T, V] in [0, 1]; 0 off the candidates and at frames without a body.
    """
    T, V, _ = verts_world.shape
    seen = np.all(np.isfinite(verts_world), axis=(1, 2))
    v = np.where(seen[:, None, None], verts_world, 0.0)
    speed = vertex_speed(v, np.asarray(times_s, np.float64))
    cand = np.nonzero(candidates)[0]
    prob = np.zeros((T, V), np.float32)
    for t in np.nonzero(seen)[0]:
        dist = distance_to_scene(v[t, cand], np.asarray(scene_world[t], np.float64), block)
        p = np.exp(-(speed[t, cand] / speed_scale_mps) ** 2) * np.exp(-(dist / distance_scale_m) ** 2)
        prob[t, cand] = p
    return prob
