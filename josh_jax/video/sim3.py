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


def align_chunks(
    x_chunks: Float[Array, "C F P 3"],
    valid: Float[Array, "C F P"],
    with_scale: bool,
) -> list[Sim3]:
    """One Sim(3) per chunk into chunk 0's world, solved in order from the frames each chunk shares
    with the chunks already aligned (chunk 0 is the anchor and stays put).

    Args:
      x_chunks: float[C, F, P, 3] per chunk, per video frame (all F frames of the video), P points
        per frame in the chunk's own world (camera centre, body roots, joints...).
      valid: float[C, F, P] weights: 0 where the chunk does not cover the frame or the point is
        missing, otherwise a confidence (e.g. 1 for cameras, more for body joints).
      with_scale: solve each chunk's scale (see `umeyama`).

    Returns:
      C Sim3s `T_world_chunk` (the first is the identity).
    """
    C, F, P, _ = x_chunks.shape
    transforms = [identity()]
    acc = jnp.zeros((F, P, 3))
    acc_w = jnp.zeros((F, P))
    acc = acc + x_chunks[0] * valid[0][..., None]
    acc_w = acc_w + valid[0]
    for c in range(1, C):
        target = acc / jnp.maximum(acc_w, 1e-12)[..., None]
        w = (valid[c] * (acc_w > 0)).reshape(-1)
        S = umeyama(x_chunks[c].reshape(-1, 3), target.reshape(-1, 3), w, with_scale)
        transforms.append(S)
        acc = acc + apply_points(S, x_chunks[c]) * valid[c][..., None]
        acc_w = acc_w + valid[c]
    return transforms


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
