"""Similarity transforms (scale, rotation, translation) and the global alignment of chunks.

A Sim(3) here is a tuple-free pytree of three arrays: `scale` float[], `R` float[3, 3], `t`
float[3], mapping x -> scale * R x + t. `T_world_chunk` names the map from a chunk's own world
frame to the video's world frame (chunk 0's frame: chunk 0 is the anchor).
"""

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Sim3:
    """x -> scale * R x + t."""

    scale: Float[Array, ""]
    R: Float[Array, "3 3"]
    t: Float[Array, "3"]


def identity() -> Sim3:
    return Sim3(jnp.ones(()), jnp.eye(3), jnp.zeros(3))


def apply_points(S: Sim3, x: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
    """Map points: `scale * R x + t`."""
    return S.scale * jnp.einsum("ij,...j->...i", S.R, x) + S.t


def apply_poses(S: Sim3, T_chunk_cam: Float[Array, "... 4 4"]) -> Float[Array, "... 4 4"]:
    """Map camera-to-world poses to the new world: rotation `R R_cam`, centre mapped as a point.

    (Depths in the camera frame grow by `scale`; the pose stays rigid.)
    """
    R_new = jnp.einsum("ij,...jk->...ik", S.R, T_chunk_cam[..., :3, :3])
    t_new = apply_points(S, T_chunk_cam[..., :3, 3])
    return T_chunk_cam.at[..., :3, :3].set(R_new).at[..., :3, 3].set(t_new)


def compose(A: Sim3, B: Sim3) -> Sim3:
    """A after B."""
    return Sim3(A.scale * B.scale, A.R @ B.R, A.scale * (A.R @ B.t) + A.t)


def umeyama(
    x_src: Float[Array, "N 3"],
    x_dst: Float[Array, "N 3"],
    weights: Float[Array, " N"],
    with_scale: bool,
) -> Sim3:
    """Weighted least-squares Sim(3) (Umeyama 1991): argmin sum_n w_n |s R x_src + t - x_dst|^2.

    Args:
      x_src, x_dst: float[N, 3] corresponding points (N >= 3, not collinear for a unique R).
      weights: float[N] >= 0, not all zero (zero-weight rows are ignored: missing frames).
      with_scale: solve the scale; False fixes it to 1 (metric chunks, bodies give the scale).

    Returns:
      the Sim3 mapping x_src onto x_dst.
    """
    w = weights / jnp.maximum(jnp.sum(weights), 1e-12)
    mu_src = jnp.sum(w[:, None] * x_src, axis=0)
    mu_dst = jnp.sum(w[:, None] * x_dst, axis=0)
    a, b = x_src - mu_src, x_dst - mu_dst
    cov = jnp.einsum("n,ni,nj->ij", w, b, a)
    U, sig, Vt = jnp.linalg.svd(cov)
    d = jnp.sign(jnp.linalg.det(U) * jnp.linalg.det(Vt))
    D = jnp.array([1.0, 1.0, 1.0]).at[2].set(jnp.where(d == 0, 1.0, d))
    R = (U * D) @ Vt
    var_src = jnp.sum(w * jnp.sum(a * a, axis=-1))
    s = jnp.sum(sig * D) / jnp.maximum(var_src, 1e-12) if with_scale else jnp.ones(())
    t = mu_dst - s * R @ mu_src
    return Sim3(jnp.asarray(s), R, t)


def fit_sim3(
    x_src: Float[Array, "N 3"],
    x_dst: Float[Array, "N 3"],
    weights: Float[Array, " N"],
    with_scale: bool,
    R_src: Float[Array, "M 3 3"] | None = None,
    R_dst: Float[Array, "M 3 3"] | None = None,
    rotation_weights: Float[Array, " M"] | None = None,
    scale_prior: float | Float[Array, ""] = 0.0,
    iters: int = 4,
) -> Sim3:
    """Weighted Sim(3) from points and, optionally, orientations:

        argmin  sum_n w_n |s R x_src_n + t - x_dst_n|^2 + sum_m v_m |R R_src_m - R_dst_m|_F^2
                + scale_prior (s - 1)^2.

    The orientation term pins the rotation with what the points alone determine badly (a 25-frame
    overlap of a walk is nearly a line: its roll about the walking direction is free); it is the
    rotation part of JOSH's camera glue, over every shared frame instead of one. Weights are
    absolute (not normalised): `v_m` is in m^2, the squared lever arm at which a rotation error
    counts as much as a point error (|dR|_F^2 = 2 theta^2 for a small angle theta).
    `scale_prior` (m^2) pulls the scale towards 1 (chunks are metric through the bodies).

    R and s are solved alternately (`iters` rounds: for fixed s, R = proj_SO3(s C_pts + C_rot);
    for fixed R, s in closed form); without orientations and prior this is `umeyama`.

    Args:
      x_src, x_dst: float[N, 3] corresponding points; weights: float[N] >= 0, not all zero.
      with_scale: solve the scale (else 1).
      R_src, R_dst: float[M, 3, 3] corresponding orientations (None: points only);
      rotation_weights: float[M] >= 0.
      scale_prior: >= 0, weight of (s - 1)^2.

    Returns:
      the Sim3 mapping x_src onto x_dst.
    """
    W = jnp.maximum(jnp.sum(weights), 1e-12)
    mu_src = jnp.sum(weights[:, None] * x_src, axis=0) / W
    mu_dst = jnp.sum(weights[:, None] * x_dst, axis=0) / W
    a, b = x_src - mu_src, x_dst - mu_dst
    C_pts = jnp.einsum("n,ni,nj->ij", weights, b, a)
    var_src = jnp.sum(weights * jnp.sum(a * a, axis=-1))
    C_rot = jnp.zeros((3, 3))
    if R_src is not None:
        C_rot = jnp.einsum("m,mij,mkj->ik", rotation_weights, R_dst, R_src)

    def rotation(M):
        U, _, Vt = jnp.linalg.svd(M)
        d = jnp.sign(jnp.linalg.det(U) * jnp.linalg.det(Vt))
        return (U * jnp.array([1.0, 1.0, 1.0]).at[2].set(jnp.where(d == 0, 1.0, d))) @ Vt

    s = jnp.ones(())
    R = jnp.eye(3)
    for _ in range(iters if with_scale else 1):
        R = rotation(s * C_pts + C_rot)
        if with_scale:
            s = (jnp.trace(R.T @ C_pts) + scale_prior) / jnp.maximum(var_src + scale_prior, 1e-12)
            s = jnp.maximum(s, 1e-6)
    t = mu_dst - s * R @ mu_src
    return Sim3(jnp.asarray(s), R, t)


def align_chunks(
    x_chunks: Float[Array, "C F P 3"],
    valid: Float[Array, "C F P"],
    with_scale: bool,
    R_chunks: Float[Array, "C F 3 3"] | None = None,
    rotation_valid: Float[Array, "C F"] | None = None,
    scale_prior: float | Float[Array, ""] = 0.0,
    scale_gate: float | Float[Array, ""] = 0.0,
) -> list[Sim3]:
    """One Sim(3) per chunk into chunk 0's world, solved in order from the frames each chunk shares
    with the chunks already aligned (chunk 0 is the anchor and stays put).

    Chunks overlap only their neighbours (a chain), so this sequential solution is also the global
    least-squares one over all overlaps: each overlap brings exactly one new unknown transform.
    Each scale is the chunk's absolute scale in chunk 0's world (`scale_prior` pulls it to 1, not
    to the previous chunk's, so scale errors do not compound along the chain).

    Args:
      x_chunks: float[C, F, P, 3] per chunk, per video frame (all F frames of the video), P points
        per frame in the chunk's own world (camera centre, body roots, joints...).
      valid: float[C, F, P] weights: 0 where the chunk does not cover the frame or the point is
        missing, otherwise a confidence (e.g. 1 for cameras, more for body joints).
      with_scale: solve each chunk's scale (see `fit_sim3`).
      R_chunks: float[C, F, 3, 3] optional orientations per chunk and frame (camera-to-world);
      rotation_valid: float[C, F] their weights (m^2, see `fit_sim3`), 0 where missing.
      scale_prior: see `fit_sim3`.
      scale_gate: with `with_scale`, a chunk keeps its solved scale only when it is more than
        `scale_gate` off 1 (|s - 1| > scale_gate); otherwise the chunk is solved again rigid
        (s = 1): chunks are metric through their bodies, and a scale solved from a short overlap
        is mostly noise unless it is far off. 0: every solved scale is kept.

    Returns:
      C Sim3s `T_world_chunk` (the first is the identity).
    """
    C, F, P, _ = x_chunks.shape
    transforms = [identity()]
    acc = x_chunks[0] * valid[0][..., None]
    acc_w = valid[0]
    if R_chunks is not None:
        acc_R = R_chunks[0] * rotation_valid[0][..., None, None]
        acc_rw = rotation_valid[0]
    for c in range(1, C):
        target = acc / jnp.maximum(acc_w, 1e-12)[..., None]
        w = (valid[c] * (acc_w > 0)).reshape(-1)
        rot = {}
        if R_chunks is not None:
            # sum_prev v_prev R_prev: the chordal sum of the aligned chunks' orientations.
            R_target = acc_R / jnp.maximum(acc_rw, 1e-12)[..., None, None]
            rot = dict(R_src=R_chunks[c], R_dst=R_target,
                       rotation_weights=rotation_valid[c] * (acc_rw > 0))
        S = fit_sim3(x_chunks[c].reshape(-1, 3), target.reshape(-1, 3), w, with_scale,
                     scale_prior=scale_prior, **rot)
        if with_scale:
            S = gate_scale(S, fit_sim3(x_chunks[c].reshape(-1, 3), target.reshape(-1, 3), w,
                                       False, **rot), scale_gate)
        transforms.append(S)
        acc = acc + apply_points(S, x_chunks[c]) * valid[c][..., None]
        acc_w = acc_w + valid[c]
        if R_chunks is not None:
            acc_R = acc_R + jnp.einsum("ij,fjk->fik", S.R, R_chunks[c]) * rotation_valid[c][
                ..., None, None]
            acc_rw = acc_rw + rotation_valid[c]
    return transforms


def gate_scale(scaled: Sim3, rigid: Sim3, scale_gate: float | Float[Array, ""]) -> Sim3:
    """`scaled` where its scale is more than `scale_gate` off 1 (|s - 1| > scale_gate), else
    `rigid` (the same fit with the scale fixed to 1). Traceable: a select, no branch."""
    keep = jnp.abs(scaled.scale - 1.0) > scale_gate
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), scaled, rigid)


def blend_weights(ranges: list[tuple[int, int]], n_frames: int) -> Float[Array, "C F"]:
    """Per-chunk weights of every frame that cross-fade linearly over each overlap and sum to 1.

    Args:
      ranges: half-open frame ranges [a, b) of the chunks, increasing, covering 0..n_frames.
    """
    f = jnp.arange(n_frames, dtype=jnp.float32)
    rows = []
    for a, b in ranges:
        ramp_in = jnp.clip((f - a + 1) / (b - a), 0.0, 1.0)
        rows.append(jnp.where((f >= a) & (f < b), jnp.minimum(ramp_in, (b - f) / (b - a)), 0.0))
    w = jnp.stack(rows)
    return w / jnp.maximum(jnp.sum(w, axis=0, keepdims=True), 1e-12)
