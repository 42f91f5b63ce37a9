"""A synthetic world with ground truth: scenes, motions, cameras, rendering, front-end noise.

`generate_clip(config, seed) -> (Clip, GroundTruth)`; the config is
`experiments/configs/synthetic.py`. See `docs/synthetic.md`.
"""

from josh_jax.synthetic.generate import generate_clip

__all__ = ["generate_clip"]
