"""Multi-HMR padding, head detection (NMS + threshold) and the head -> CUT3R cell mapping.

Spec `human3r_spec.md` §4.1, §4.3, §4.4, §4.13. Static shapes: at most `max_people` detections per
frame, with a boolean validity mask; valid detections come first in row-major cell order.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def _bilinear_matrix(n_out: int, n_in: int) -> Float[Array, "O I"]:
    """Interpolation matrix of torch bilinear, align_corners=False, no antialias (half-pixel, clamped)."""
    scale = n_in / n_out
    src = jnp.maximum((jnp.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    lo = jnp.minimum(jnp.floor(src).astype(jnp.int32), n_in - 1)
    hi = jnp.minimum(lo + 1, n_in - 1)
    w_hi = src - lo
    rows = jnp.arange(n_out)
    m = jnp.zeros((n_out, n_in), jnp.float32)
    m = m.at[rows, lo].add(1.0 - w_hi)
    return m.at[rows, hi].add(w_hi)


def pad_image(img_chw: Float[Array, "3 H W"], res: int) -> Float[Array, "3 R R"]:
    """Resize the long side to `res` (bilinear, half-pixel) and centre-pad with -1 (spec §4.1)."""
    _, h, w = img_chw.shape
    scale = min(res / h, res / w)
    h_new, w_new = int(h * scale), int(w * scale)
    resized = jnp.einsum("oh,chw,pw->cop", _bilinear_matrix(h_new, h), img_chw,
                         _bilinear_matrix(w_new, w), precision=jax.lax.Precision.HIGHEST)
    top, left = (res - h_new) // 2, (res - w_new) // 2
    pad = ((0, 0), (top, res - h_new - top), (left, res - w_new - left))
    return jnp.pad(resized, pad, constant_values=-1.0)


def nms_scores(logits: Float[Array, "G G"]) -> Float[Array, "G G"]:
    """sigmoid(logit)*(1-2e-6)+1e-6, kept only where it equals its 3x3 max (pad -inf) (spec §4.3)."""
    score = jax.nn.sigmoid(logits) * (1.0 - 2e-6) + 1e-6
    hmax = jax.lax.reduce_window(score, -jnp.inf, jax.lax.max, (3, 3), (1, 1), ((1, 1), (1, 1)))
    return jnp.where(hmax == score, score, 0.0)


def detect_heads(scores_nms: Float[Array, "G G"], threshold: float,
                 max_people: int) -> tuple[Int[Array, "P 2"], Bool[Array, " P"]]:
    """Cells (h, w) with score >= threshold in row-major order, padded to `max_people`.

    Returns the cells (P, 2) int32 (h, w) and the validity mask (P,). Detections beyond `max_people`
    (the row-major last ones) are dropped.
    """
    g = scores_nms.shape[1]
    flat = scores_nms.reshape(-1) >= threshold
    n = flat.shape[0]
    # Valid cells sort before invalid ones; ties keep row-major order.
    key = jnp.where(flat, jnp.arange(n), n + jnp.arange(n))
    order = jnp.argsort(key)[:max_people]
    valid = flat[order]
    cells = jnp.stack([order // g, order % g], axis=-1).astype(jnp.int32)
    return jnp.where(valid[:, None], cells, 0), valid


def head_locations(cells_hw: Int[Array, "P 2"], offset_xy: Float[Array, "P 2"],
                   patch: int) -> Float[Array, "P 2"]:
    """loc = ((w, h) + 0.5 + offset) * patch, in Multi-HMR pixels (x, y) (spec §4.3)."""
    return (cells_hw[:, ::-1].astype(jnp.float32) + 0.5 + offset_xy) * patch


def unpad_uv(loc_xy: Float[Array, "P 2"], res: int, height: int, width: int) -> Float[Array, "P 2"]:
    """Multi-HMR pixel (x, y) -> CUT3R image pixel (u, v), clamped to the image (spec §4.4)."""
    m = max(height, width)
    shift = jnp.array([(m - width) // 2, (m - height) // 2], jnp.float32)
    uv = loc_xy * (m / res) - shift
    return jnp.clip(uv, 0.0, jnp.array([width - 1, height - 1], jnp.float32))


def cut3r_cells(uv: Float[Array, "P 2"], patch: int = 16) -> Int[Array, "P 2"]:
    """(u, v) pixel -> (u_c, v_c) CUT3R token cell = floor(uv / patch) (int32)."""
    return jnp.floor(uv / patch).astype(jnp.int32)
