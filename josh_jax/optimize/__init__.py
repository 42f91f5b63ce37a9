"""The JOSH joint optimizer: `optimize(problem, config) -> Solution`, `optimize_many` (batched).

The modules follow the objective's structure:

  params.py     `Params` (cameras, focal, SMPL, depth along the ray) and their initial values
  cameras.py    the camera kinematic chain, the focal, the scene depths (docs/method.md §2.3-§2.5)
  humans.py     the SMPL bodies in their camera frames (§2.6)
  matches.py    the pair terms L_3d / L_2d in fused per-pair form (§2.5, §2.8)
  objective.py  `loss_terms`: the pair term plus the weighted human terms (§2.8)
  solver.py     `optimize`: two Adam stages, divergence and NaN flags, `Solution` (§2.10)
  batch.py      `optimize_many`, `make_batched_optimize`: jit(vmap) sharded over clips

    solution = optimize_jit(problem, ml_collections.FrozenConfigDict(config))   # one clip
    solutions = optimize_many(problems, config, mesh=None)                     # a batch
"""

from josh_jax.optimize.batch import (
    BatchedOptimize,
    make_batched_optimize,
    make_clips_mesh,
    optimize_many,
)
from josh_jax.optimize.cameras import (
    anchor_depths,
    camera_forward,
    compose_chain,
    focal_of,
    is_proportional,
    scene_depth,
)
from josh_jax.optimize.humans import effective_transl, human_forward, human_rotations
from josh_jax.optimize.matches import match_points_world, pair_loss, stage_constants
from josh_jax.optimize.objective import (
    CURVE_COLUMNS,
    focal_prior_term,
    loss_terms,
    surface_offset,
)
from josh_jax.optimize.params import Params, init_params
from josh_jax.optimize.solver import (
    DIVERGENCE_FACTOR,
    Diagnostics,
    Solution,
    optimize,
    optimize_jit,
    param_labels,
    repeated_adam,
)

__all__ = [
    "BatchedOptimize",
    "CURVE_COLUMNS",
    "DIVERGENCE_FACTOR",
    "Diagnostics",
    "Params",
    "Solution",
    "anchor_depths",
    "camera_forward",
    "compose_chain",
    "effective_transl",
    "focal_of",
    "focal_prior_term",
    "human_forward",
    "human_rotations",
    "init_params",
    "is_proportional",
    "loss_terms",
    "make_batched_optimize",
    "make_clips_mesh",
    "match_points_world",
    "optimize",
    "optimize_jit",
    "optimize_many",
    "pair_loss",
    "param_labels",
    "repeated_adam",
    "scene_depth",
    "stage_constants",
    "surface_offset",
]
