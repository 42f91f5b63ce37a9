"""MASt3R descriptor matching: fast reciprocal nearest neighbours (mast3r `fast_nn`), in JAX.

`fast_reciprocal_nns(desc_a, desc_b)` seeds pixels of A on a regular grid (every `subsample`
pixels, offset subsample // 2) and follows the nearest-neighbour chain for up to `max_iter`
rounds: x2 <- argmax_B <A[x1], B>, then x1 <- argmax_A <B[x2], A> (the seed may move). A chain
stops as soon as x2 or x1 is unchanged from the previous round (a mutual nearest neighbour);
chains still moving after `max_iter` rounds are dropped. Fixed shapes: one slot per seed, with a
`valid` mask, so the function jits and vmaps. `merge_correspondences` deduplicates and sorts the
pairs like mast3r's `merge_corres` (host numpy), and `extract_correspondences` merges the four
directed matchings of a symmetric pair as JOSH's front end does (`directed_nns` on the device,
jit/vmap over pairs; `merge_directed` on the host).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def grid_seeds(h: int, w: int, subsample: int) -> np.ndarray:
    """Flat pixel indices y*w + x of the seed grid (offset subsample // 2), sorted: int32[K]."""
    ys, xs = np.mgrid[subsample // 2:h:subsample, subsample // 2:w:subsample]
    return np.unique(xs.reshape(-1) + w * ys.reshape(-1)).astype(np.int32)


def fast_reciprocal_nns(desc_a: jnp.ndarray, desc_b: jnp.ndarray, *, subsample: int = 8,
                        max_iter: int = 10) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Reciprocal nearest-neighbour chains by dot product.

    Args:
      desc_a: float[Ha, Wa, C] descriptors of image A (unit norm for MASt3R).
      desc_b: float[Hb, Wb, C] descriptors of image B.
      subsample: seed grid step; max_iter: chain rounds.

    Returns:
      idx_a int32[K], idx_b int32[K] flat pixel indices (y*W + x) of each seed's final pair, and
      valid bool[K] (converged chains). Duplicates are not removed (see merge_correspondences).
    """
    ha, wa, c = desc_a.shape
    a = desc_a.reshape(-1, c)
    b = desc_b.reshape(-1, c)
    hp = jax.lax.Precision.HIGHEST
    xy1 = jnp.asarray(grid_seeds(ha, wa, subsample))
    xy2 = jnp.full_like(xy1, -1)
    old1, old2 = xy1, xy2
    notyet = jnp.ones(xy1.shape, bool)
    for _ in range(max_iter):  # masked rounds: a finished chain is never updated again
        nn2 = jnp.argmax(jnp.dot(a[xy1], b.T, precision=hp), axis=1).astype(jnp.int32)
        xy2 = jnp.where(notyet, nn2, xy2)
        notyet = notyet & (old2 != xy2)
        nn1 = jnp.argmax(jnp.dot(b[xy2], a.T, precision=hp), axis=1).astype(jnp.int32)
        xy1 = jnp.where(notyet, nn1, xy1)
        notyet = notyet & (old1 != xy1)
        old1, old2 = xy1, xy2
    return xy1, xy2, ~notyet


def merge_correspondences(idx1: np.ndarray, idx2: np.ndarray,
                          valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Unique (idx1, idx2) pairs sorted by idx1 then idx2, and the first occurrence of each.

    Args:
      idx1, idx2: int[M] flat pixel indices; valid: optional bool[M] mask of entries to keep.

    Returns:
      (idx1 int32[U], idx2 int32[U], first int64[U]) with `first` indexing the kept input rows.
    """
    idx1 = np.asarray(idx1, np.int64)
    idx2 = np.asarray(idx2, np.int64)
    rows = np.arange(len(idx1)) if valid is None else np.flatnonzero(np.asarray(valid))
    keys = idx1[rows] * (1 << 32) + idx2[rows]
    _, first = np.unique(keys, return_index=True)
    first = rows[first]
    return idx1[first].astype(np.int32), idx2[first].astype(np.int32), first


def directed_nns(desc: tuple, *, subsample: int = 8) -> tuple:
    """The four directed reciprocal matchings of a symmetric pair (jittable; vmap over pairs).

    Args:
      desc: (d11, d21, d22, d12) float[H, W, C] descriptors (see `extract_correspondences`).
      subsample: seed grid step.

    Returns:
      four (idx_from, idx_to, valid) triples of `fast_reciprocal_nns`: 11->21, 21->11, 12->22,
      22->12, in the order `merge_directed` expects.
    """
    d11, d21, d22, d12 = desc
    out = []
    for a, b in ((d11, d21), (d12, d22)):
        out.append(fast_reciprocal_nns(a, b, subsample=subsample))
        out.append(fast_reciprocal_nns(b, a, subsample=subsample))
    return tuple(out)


def merge_directed(nns: tuple, desc_conf: tuple, width: int):
    """Host half of `extract_correspondences`: merges the four directed matchings.

    Args:
      nns: `directed_nns` output (numpy or jax arrays).
      desc_conf: (c11, c21, c22, c12) float[H, W] descriptor confidences.
      width: W of both views (flat index y * W + x).

    Returns:
      (xy1 int64[M, 2], xy2 int64[M, 2], conf float32[M]) as `extract_correspondences`.
    """
    c11, c21, c22, c12 = (np.asarray(c, np.float32) for c in desc_conf)
    idx1, idx2, conf1, conf2 = [], [], [], []
    for k, (ca, cb) in enumerate(((c11, c21), (c12, c22))):
        i1, i2, ok = (np.asarray(x) for x in nns[2 * k])
        j2, j1, ok2 = (np.asarray(x) for x in nns[2 * k + 1])
        u1, u2, _ = merge_correspondences(i1, i2, ok)
        v2, v1, _ = merge_correspondences(j2, j1, ok2)
        p1, p2 = np.r_[u1, v1], np.r_[u2, v2]
        idx1.append(p1)
        idx2.append(p2)
        conf1.append(ca.reshape(-1)[p1])
        conf2.append(cb.reshape(-1)[p2])
    idx1, idx2 = np.concatenate(idx1), np.concatenate(idx2)
    m1, m2, first = merge_correspondences(idx1, idx2)
    conf = np.sqrt(np.concatenate(conf1)[first] * np.concatenate(conf2)[first])
    xy1 = np.stack([m1 % width, m1 // width], axis=-1).astype(np.int64)
    xy2 = np.stack([m2 % width, m2 // width], axis=-1).astype(np.int64)
    return xy1, xy2, conf.astype(np.float32)


def extract_correspondences(desc: tuple, desc_conf: tuple, *, subsample: int = 8):
    """Merged matches of a symmetric MASt3R pair (JOSH `extract_correspondences`).

    Args:
      desc: (d11, d21, d22, d12) float[H, W, C] descriptors: view 1 / view 2 from the 1->2 pass,
        view 2 / view 1 from the 2->1 pass.
      desc_conf: the matching (c11, c21, c22, c12) float[H, W] descriptor confidences.

    Returns:
      xy1 int64[M, 2], xy2 int64[M, 2]: pixel (x, y) in view 1 / view 2 of the unique pairs of
      both passes (both directions each), sorted by view-1 index; conf float32[M] =
      sqrt(conf_view1 * conf_view2) at the pair's first occurrence, read from (c11, c21) for a
      pair found in the 1->2 pass and from (c12, c22) for one found only in the 2->1 pass.
      (`directed_nns` on the device, then `merge_directed` on the host.)
    """
    if desc[0].shape[1] != desc[1].shape[1]:
        raise ValueError(f"both views must have the same width, got {desc[0].shape} and "
                         f"{desc[1].shape}")
    return merge_directed(directed_nns(desc, subsample=subsample), desc_conf, desc[0].shape[1])
