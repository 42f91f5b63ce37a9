"""MASt3R matches for many frame pairs: one jitted program over a batch of pairs.

    matcher = PairMatcher(model, subsample=8, batch_size=4)   # model: trainers.mast3r.MASt3R
    matches, match_confidence = matcher(images, pairs)       # the Clip's padded arrays

Per batch of `batch_size` pairs (the last batch padded with copies of its last pair, so every
call reuses one compiled program; `traces` counts them): MASt3R's symmetric inference (encoder
once, decoder both ways, JOSH `symmetric_inference`), then the four directed fast reciprocal
nearest-neighbour matchings of each pair (`trainers.matching.directed_nns`, vmapped over the
pairs). The host merges each pair's four matchings (`matching.merge_directed`, mast3r's
`merge_corres`) and pads the pairs to the largest match count.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from josh_jax.video.geometric_matches import pad_matches
from trainers import matching
from trainers.mast3r import MASt3R


class PairMatcher:
    """The jitted batch-of-pairs matcher (see the module docstring)."""

    def __init__(self, model: MASt3R, *, subsample: int, batch_size: int):
        self.graphdef, self.state = nnx.split(model)
        self.subsample, self.batch_size = int(subsample), int(batch_size)
        self.traces = 0
        self._jitted = jax.jit(self.apply)

    def apply(self, state, img1: jax.Array, img2: jax.Array):
        """img1, img2: float32[B, H, W, 3] in [-1, 1] -> (directed matchings, confidences).

        Returns the `directed_nns` triples with a leading pair axis [B, K] and the four
        descriptor confidences (c11, c21, c22, c12), each float32[B, H, W].
        """
        self.traces += 1  # runs only while tracing
        model = nnx.merge(self.graphdef, state)
        res11, res21, res22, res12 = model.symmetric(img1, img2)
        desc = (res11.desc, res21.desc, res22.desc, res12.desc)
        conf = (res11.desc_conf, res21.desc_conf, res22.desc_conf, res12.desc_conf)
        nns = jax.vmap(lambda d: matching.directed_nns(d, subsample=self.subsample))(desc)
        return nns, conf

    def __call__(self, images: np.ndarray, pairs: np.ndarray, *,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Matches of every pair.

        Args:
          images: uint8[T, H, W, 3] frames (H, W multiples of the patch size, 16).
          pairs: int[E, 2] indices into the frames.
          progress: called with (pairs done, E) after each batch.

        Returns:
          matches float32[E, M, 2, 2] (pixel (x, y) in frame i, then in frame j),
          match_confidence float32[E, M] (0 = padding).
        """
        pairs = np.asarray(pairs, np.int64)
        frames = jnp.asarray(np.asarray(images, np.float32) / 255.0 * 2.0 - 1.0)
        width = images.shape[2]
        per_pair = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start:start + self.batch_size]
            n = len(batch)
            padded = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - n, 0)])
            nns, conf = self._jitted(self.state, frames[padded[:, 0]], frames[padded[:, 1]])
            nns, conf = jax.tree.map(np.asarray, (nns, conf))
            for b in range(n):
                xy1, xy2, c = matching.merge_directed(
                    jax.tree.map(lambda x, b=b: x[b], nns), tuple(x[b] for x in conf), width)
                per_pair.append((xy1.astype(np.float32), xy2.astype(np.float32), c))
            if progress:
                progress(start + n, len(pairs))
        return pad_matches(per_pair)
