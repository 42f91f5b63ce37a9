"""2D rotary position embedding (CroCo RoPE2D), computed directly from integer token positions.

For a head vector of size Dh, the first Dh/2 channels are rotated by the row (y) position and the
last Dh/2 by the column (x) position. Within one half of size d:
``inv_freq_i = base^(-2i/d)`` for ``i = 0..d/2-1``; ``angle = pos * inv_freq`` duplicated to
``[a, a]``; ``out = t * cos + rotate_half(t) * sin`` with ``rotate_half(t) = [-t2, t1]`` on the
two halves (not interleaved pairs). Negative positions (JOSH3R's human token at (-1, -1)) are
valid because cos/sin are evaluated from the position value, not looked up in a table.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def rope_inv_freq(d: int, base: float) -> np.ndarray:
    """Inverse frequencies of one 1D half: float32[d // 2], in float32 like the reference."""
    exponent = np.arange(0, d, 2, dtype=np.float32) / np.float32(d)
    return (np.float32(1.0) / (np.float32(base) ** exponent)).astype(np.float32)


def _rope1d(t: jnp.ndarray, pos: jnp.ndarray, inv_freq: np.ndarray) -> jnp.ndarray:
    """Rotates t: [..., N, H, d] by positions pos: [..., N] (one axis)."""
    angle = pos.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [..., N, d/2]
    angle = jnp.concatenate([angle, angle], axis=-1)[..., None, :]  # [..., N, 1, d]
    cos = jnp.cos(angle).astype(t.dtype)
    sin = jnp.sin(angle).astype(t.dtype)
    half = t.shape[-1] // 2
    rotated = jnp.concatenate([-t[..., half:], t[..., :half]], axis=-1)
    return t * cos + rotated * sin


def apply_rope2d(x: jnp.ndarray, pos: jnp.ndarray, base: float = 100.0) -> jnp.ndarray:
    """Applies 2D RoPE to per-head vectors.

    Args:
      x: float[..., N, H, Dh] queries or keys (N tokens, H heads, Dh head dim, Dh % 4 == 0).
      pos: int[..., N, 2] token positions (y, x) = (row, column).
      base: RoPE base frequency (100 for CroCo/MASt3R "RoPE100").

    Returns:
      float[..., N, H, Dh], same dtype as x.
    """
    dh = x.shape[-1]
    if dh % 4:
        raise ValueError(f"RoPE2D needs a head dimension divisible by 4, got {dh}")
    d = dh // 2
    inv_freq = rope_inv_freq(d, base)
    y_part = _rope1d(x[..., :d], pos[..., 0], inv_freq)
    x_part = _rope1d(x[..., d:], pos[..., 1], inv_freq)
    return jnp.concatenate([y_part, x_part], axis=-1)
