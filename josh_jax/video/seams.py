"""Joint refinement across chunk seams: smooth per-frame corrections that make chunks agree.

After the global alignment (`sim3.align_chunks`) consecutive chunks still disagree on the frames
they share (each chunk's own error, which no single similarity absorbs). The refinement gives every
chunk c a correction `delta[c, f, k]` per video frame f it covers and per track k (a 3-vector: a
camera centre or a pelvis shift in metres, or a small world-frame rotation of a camera or a body
in radians), minimising the quadratic

    E(delta) = overlap_weight * sum_{f, k} sum_c p_c |y_c - mean_c' y_c'|^2    (chunks agree)
             + smooth_weight  * sum_{c, f} |delta_c(f+1) - 2 delta_c(f) + delta_c(f-1)|^2
             + prior_weight   * sum_{c, f} |delta_c(f)|^2,        y_c = x_c + delta_c,

where the first sum runs over the chunks `p_c = presence[c, f, k]` that see track k at frame f
(the mean over them; frames seen by one chunk cost nothing). The second-difference smoothness
leaves linear ramps free, so a disagreement at a seam is spread over the two chunks as a ramp
from the seam towards their far ends (as a loop closure spreads its error); the small prior fixes
the free offset, and splits a seam's correction evenly between its two chunks.

E is quadratic, so the minimiser solves one linear system, here by conjugate gradients (matrix
free: Hessian-vector products of E; memory linear in the video's length), in one jitted program
per shape. Tracks are independent problems with the same weights: units (m, rad) do not mix.
Rotations enter linearised: `x_c = log(R_c R_ref^T)` against a per-frame reference R_ref (exact to
first order in the disagreement, which the alignment has made small), and a correction is applied
as `exp(delta) R_c`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def seam_energy(
    delta: Float[Array, "C F K 3"],
    x: Float[Array, "C F K 3"],
    presence: Float[Array, "C F K"],
    cover: Float[Array, "C F"],
    overlap_weight: float,
    smooth_weight: float,
    prior_weight: float,
) -> Float[Array, ""]:
    """E(delta) (module docstring).

    Args:
      delta: float[C, F, K, 3] corrections (ignored where `cover` is 0).
      x: float[C, F, K, 3] each chunk's value of each track at each video frame (any value where
        `presence` is 0).
      presence: float[C, F, K] 1 where chunk c estimates track k at frame f, else 0.
      cover: float[C, F] 1 on the frames chunk c covers, else 0 (presence <= cover).
    """
    delta = delta * cover[..., None, None]
    y = x + delta
    n = jnp.sum(presence, axis=0)  # F K
    mean = jnp.sum(presence[..., None] * y, axis=0) / jnp.maximum(n, 1.0)[..., None]
    overlap = jnp.sum(presence * jnp.sum((y - mean) ** 2, axis=-1))
    inside = cover[:, :-2] * cover[:, 1:-1] * cover[:, 2:]  # C F-2
    d2 = delta[:, 2:] - 2.0 * delta[:, 1:-1] + delta[:, :-2]
    smooth = jnp.sum(inside[..., None, None] * d2 ** 2)
    prior = jnp.sum(delta ** 2)
    return overlap_weight * overlap + smooth_weight * smooth + prior_weight * prior


@functools.partial(jax.jit, static_argnames="iters")
def solve_corrections(
    x: Float[Array, "C F K 3"],
    presence: Float[Array, "C F K"],
    cover: Float[Array, "C F"],
    overlap_weight: float,
    smooth_weight: float,
    prior_weight: float,
    iters: int,
) -> Float[Array, "C F K 3"]:
    """The corrections minimising `seam_energy` (zero where `cover` is 0).

    Conjugate gradients from delta = 0 on H delta = -grad E(0), at most `iters` iterations
    (H delta: a Hessian-vector product of E). `x` is first centred per frame and track on the
    mean of the chunks that see it (E depends only on the differences), so float32 holds.
    """
    n = jnp.sum(presence, axis=0)
    mean = jnp.sum(presence[..., None] * x, axis=0) / jnp.maximum(n, 1.0)[..., None]
    x = (x - mean) * presence[..., None]

    def energy(d):
        return seam_energy(d, x, presence, cover, overlap_weight, smooth_weight, prior_weight)

    grad = jax.grad(energy)
    zero = jnp.zeros_like(x)
    b = -grad(zero)

    def hvp(v):
        return jax.jvp(grad, (zero,), (v,))[1]

    delta, _ = jax.scipy.sparse.linalg.cg(hvp, b, maxiter=iters, tol=1e-8)
    return delta * cover[..., None, None]
