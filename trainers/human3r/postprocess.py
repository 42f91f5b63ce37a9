"""Human3R output parameterisations: SMPL-X rotations, head translation, mask, DINOv2 position grid.

Spec `human3r_spec.md` §4.2 (position-embedding interpolation), §4.7 (SMPL-X head), §4.8 (mask).
"""

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def rotmat_from_6d_rows(pose6: Float[Array, "... J*6"]) -> Float[Array, "... J 3 3"]:
    """Special Gram-Schmidt of 6D rows: reshape (J, 3, 2), columns a, b -> R = [a, b, a x b] (§4.7)."""
    m = pose6.reshape(pose6.shape[:-1] + (-1, 3, 2))
    a = m[..., 0]
    a = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-6)
    b = m[..., 1] - jnp.sum(a * m[..., 1], -1, keepdims=True) * a
    b = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-6)
    return jnp.stack([a, b, jnp.cross(a, b)], axis=-1)


def head_translation(cam: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
    """Head-joint position in the camera frame: cam / |cam| * expm1(|cam|) (§4.7)."""
    d = jnp.linalg.norm(cam, axis=-1, keepdims=True)
    return cam / jnp.maximum(d, 1e-8) * jnp.expm1(d)


def mask_from_logits(logits: Float[Array, "G*G P*P"], grid: int, patch: int) -> Float[Array, "R R"]:
    """Pixel-shuffled human mask in the padded Multi-HMR frame: out[p*y+i, p*x+j] = s[y*g+x, p*i+j] (§4.8)."""
    s = 1.0 / (1.0 + jnp.exp(-logits)) * (1.0 - 2e-6) + 1e-6
    s = s.reshape(grid, grid, patch, patch)
    return s.transpose(0, 2, 1, 3).reshape(grid * patch, grid * patch)


def bicubic_matrix(n_out: int, n_in: int, offset: float = 0.1, a: float = -0.75) -> np.ndarray:
    """torch bicubic (A=-0.75, clamped taps) with scale_factor (n_out+offset)/n_in: float64 (n_out, n_in).

    PyTorch maps output o to source (o + 0.5) * n_in / (n_out + offset) - 0.5 when a scale factor
    is passed (§4.2); computed once on the host (it depends only on the sizes).
    """
    def kernel(x):
        x = abs(x)
        if x <= 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        if x < 2:
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return 0.0

    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = (o + 0.5) * n_in / (n_out + offset) - 0.5
        base = math.floor(src)
        t = src - base
        for k in range(-1, 3):
            m[o, min(max(base + k, 0), n_in - 1)] += kernel(t - k)
    return m


def interpolate_pos_embed(pos_embed: Float[Array, "1 1+M*M C"], grid: int) -> Float[Array, "1 1+G*G C"]:
    """DINOv2 `interpolate_pos_encoding`: the M x M patch grid resized to grid x grid, cls kept (§4.2)."""
    m = math.isqrt(pos_embed.shape[1] - 1)
    mat = jnp.asarray(bicubic_matrix(grid, m), pos_embed.dtype)
    patch = pos_embed[0, 1:].reshape(m, m, -1)
    out = jnp.einsum("gi,ijc,hj->ghc", mat, patch, mat, precision="highest").reshape(grid * grid, -1)
    return jnp.concatenate([pos_embed[:, :1], out[None]], axis=1)
