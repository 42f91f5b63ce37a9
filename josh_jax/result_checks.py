"""Checks on a finished Result: is it physically usable? A list of problems, empty when it is.

    problems = result_problems(result, body_model)   # e.g. ["vertices_world: 12 non-finite ..."]

The optimizer's own flags (`nan`, `diverged`) miss results that are finite in the parameters but
useless: bodies at infinity, collapsed to a point or blown up by huge betas, or no scene at all.
A result with problems is written and reported as `suspect` (summary table, summary.json,
`diag_status` / `diag_problems` in the npz). Each problem is one string naming the field; the
pipeline concatenates these with other checks' (e.g. `josh_jax.quality`).

The bounds are physical facts about people, not tuning knobs: a standing adult's mesh spans
~1-2 m, a child or a crouching body no less than ~0.3 m, nobody more than 3 m.
"""

from __future__ import annotations

import numpy as np

# Largest extent (max over x, y, z of the vertices' range) of one posed body, metres.
MIN_BODY_EXTENT_M = 0.3
MAX_BODY_EXTENT_M = 3.0


def result_problems(result, body_model=None) -> list[str]:
    """What makes `result` unusable, one string per problem (empty: none found).

    Args:
      result: a `josh_jax.result.Result` (numpy or jax arrays).
      body_model: the body of the result; when given, the vertex count is checked against it.

    Returns:
      Strings like "vertices_world: expected finite values, found 12 non-finite".
    """
    problems = []
    problems += _vertex_problems(result, body_model)
    problems += _camera_problems(result)
    problems += _scene_problems(result)
    return problems


def _vertex_problems(result, body_model) -> list[str]:
    valid = np.asarray(result.smpl_valid, bool)
    verts = np.asarray(result.vertices_world, np.float32)  # [P, F, V, 3]
    if body_model is not None and verts.shape[2] not in (0, body_model.num_vertices):
        return [f"vertices_world: expected {body_model.num_vertices} vertices per body, found "
                f"{verts.shape[2]}"]
    if not valid.any():
        return ["smpl_valid: expected at least one body in the result, found none"]
    v = verts[valid]  # [N, V, 3]
    bad = ~np.isfinite(v).all(axis=(-2, -1))
    if bad.any():
        return [f"vertices_world: expected finite vertices, found {int(bad.sum())} of {len(v)} "
                "valid bodies non-finite"]
    if v.shape[1] == 0:
        return []
    extent = (v.max(axis=1) - v.min(axis=1)).max(axis=-1)  # [N]
    out = []
    small, large = extent < MIN_BODY_EXTENT_M, extent > MAX_BODY_EXTENT_M
    if small.any():
        out.append(f"vertices_world: expected a body extent >= {MIN_BODY_EXTENT_M} m, found "
                   f"{extent.min():.3g} m ({int(small.sum())} of {len(v)} bodies collapsed)")
    if large.any():
        out.append(f"vertices_world: expected a body extent <= {MAX_BODY_EXTENT_M} m, found "
                   f"{extent.max():.3g} m ({int(large.sum())} of {len(v)} bodies)")
    return out


def _camera_problems(result) -> list[str]:
    out = []
    for name in ("T_world_cam", "K"):
        arr = np.asarray(getattr(result, name))
        if not np.isfinite(arr).all():
            out.append(f"{name}: expected finite values, found "
                       f"{int((~np.isfinite(arr)).sum())} non-finite")
    K = np.asarray(result.K)
    if np.isfinite(K).all() and K.size and not (K[:, 0, 0] > 0).all():
        out.append(f"K: expected a focal > 0, found {K[:, 0, 0].min():.4g}")
    return out


def _scene_problems(result) -> list[str]:
    mask = np.asarray(result.scene_mask, bool)
    points = np.asarray(result.scene_points_world)
    if not mask.any():
        return ["scene_mask: expected some scene points, found none"]
    kept = points[mask]
    finite = np.isfinite(kept).all(axis=-1)
    if not finite.all():
        return [f"scene_points_world: expected finite kept points, found "
                f"{int((~finite).sum())} of {len(kept)} non-finite"]
    return []
