"""The two-stage solver: `optimize(problem, config) -> Solution` (docs/method.md §2.10).

Stage 1 minimises the 3D pair term with the focal frozen, stage 2 the 2D reprojection term with
the focal free; each stage is a `lax.scan` of Adam steps (optax, a fresh optimizer state per
stage, cosine learning rate) with the camera quaternions renormalised after every step; a stage
ends early once its loss has converged (`config.convergence`, per clip). A
non-finite loss or parameter stops the updates (the last finite parameters are kept) and a stage
whose loss ends above `DIVERGENCE_FACTOR` times its start is flagged; both per clip.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from josh_jax.optimize.cameras import (
    anchor_depths,
    camera_forward,
    focal_of,
    is_proportional,
    normalize_quat,
)
from josh_jax.optimize.humans import effective_transl, human_rotations
from josh_jax.optimize.matches import stage_constants
from josh_jax.optimize.objective import CURVE_COLUMNS, loss_terms
from josh_jax.optimize.params import Params, init_params
from josh_jax.prepare import Problem

# A stage whose loss ends above this multiple of where it started has diverged (a converging run
# ends below its start; the world-frame human terms may rise a little while cameras settle).
DIVERGENCE_FACTOR = 2.0
# Adam as in the reference (torch.optim.Adam(betas=(0.9, 0.9)), default eps).
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.9, 1e-8


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """How the optimisation of one clip went (a leading clip axis when batched).

    Attributes:
      curve_stage1: float32[I1, 6] loss terms per iteration (columns CURVE_COLUMNS), computed at
        the start of each iteration (row 0 = initial loss); human columns are weighted as summed
        into the total (total = pair + scale + static + prior + smooth), like the reference's.
      curve_stage2: float32[I2, 6] same for stage 2.
      final_terms: float32[6] loss terms at the final parameters (stage-2 loss).
      nan: bool[] a non-finite loss or parameter was met; params are the last finite ones.
      diverged: bool[] a stage ended with its loss above DIVERGENCE_FACTOR x its initial loss
        (or a NaN was met).
      iters_run: int32[2] iterations applied per stage (less than configured after a NaN or
        once the loss converged, `config.convergence`).
    """

    curve_stage1: jax.Array
    curve_stage2: jax.Array
    final_terms: jax.Array
    nan: jax.Array
    diverged: jax.Array
    iters_run: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """Result of `optimize` for one clip (a leading clip axis when batched).

    Attributes:
      params: Params, the optimized parameters (internal parametrisation).
      T_world_cam: float32[N, 4, 4] camera-to-world of each keyframe (world = the chain root's
        frame up to the optimised relative poses; the first camera is NOT forced to identity).
      focal: float32[] final shared focal (pixels); K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] with
        (cx, cy) = problem.cameras.pp.
      anchor_depth: float32[N, A] final depth of every anchor (block centre), camera frame, in
        world units. Dense depth of pixel q in block a: anchor_depth[a] * (1 + (canon2_q - 1) *
        f_w / f) with f_w = problem.cameras.weiszfeld_focal (reference semantics) or base_focal;
        anchor_depth[a] * canon2_q under focal_depth_model "proportional".
      smpl_global_orient: float32[P, N, 3, 3] root rotation in the camera frame of its keyframe.
      smpl_body_pose: float32[P, N, 23, 3, 3] body pose (proper rotations; in reference_compat
        the raw optimised matrices, project them to SO(3) for output).
      smpl_transl: float32[P, N, 3] SMPL transl in the camera frame, consistent with the scene
        (human depth already follows the final focal unless reference_compat).
      smpl_betas: float32[P, B] per-track shape.
      smpl_valid: bool[P, N] (copied from the problem).
      diagnostics: Diagnostics.
    """

    params: Params
    T_world_cam: jax.Array
    focal: jax.Array
    anchor_depth: jax.Array
    smpl_global_orient: jax.Array
    smpl_body_pose: jax.Array
    smpl_transl: jax.Array
    smpl_betas: jax.Array
    smpl_valid: jax.Array
    diagnostics: Diagnostics


class RepeatedAdamState(NamedTuple):
    mu: optax.Updates
    nu: optax.Updates
    count: jax.Array  # Adam steps taken (repeats included)
    step: jax.Array  # optimizer steps taken (the schedule's clock)


def repeated_adam(learning_rate, repeats) -> optax.GradientTransformation:
    """Adam applied `repeats` times per step with one gradient and shared moments.

    Reproduces PyTorch's behaviour when one Parameter is listed `repeats` times in the optimizer
    (the reference's shared focal, once per image, docs/method.md §2.10): each occurrence bumps
    the step count, updates the moments and moves the parameter. `repeats` may be a traced
    integer (the number of images); any count is applied in full.

    Args:
      learning_rate: schedule of the optimizer step.
      repeats: int[] Adam updates per step.
    """

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return RepeatedAdamState(zeros, zeros, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def update(grads, state, params=None):
        del params
        lr = learning_rate(state.step)
        tree_map = jax.tree_util.tree_map

        def one_adam_step(_, carry):
            mu, nu, count, total = carry
            count = count + 1
            mu = tree_map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, mu, grads)
            nu = tree_map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * g * g, nu, grads)
            c1 = 1 - ADAM_B1 ** count.astype(jnp.float32)
            c2 = 1 - ADAM_B2 ** count.astype(jnp.float32)
            step = tree_map(lambda m, v: -lr * (m / c1) / (jnp.sqrt(v / c2) + ADAM_EPS), mu, nu)
            return mu, nu, count, tree_map(jnp.add, total, step)

        zeros = tree_map(jnp.zeros_like, grads)
        mu, nu, count, updates = jax.lax.fori_loop(
            0, repeats, one_adam_step, (state.mu, state.nu, state.count, zeros)
        )
        return updates, RepeatedAdamState(mu, nu, count, state.step + 1)

    return optax.GradientTransformation(init, update)


def param_labels(params: Params, stage: int, config) -> Params:
    """The optimizer group of every parameter in `stage` ("frozen" ones are not updated)."""
    smpl = config.optimize_smpl
    return Params(
        cam_quat="camera",
        cam_trans="camera",
        cam_log_size="camera",
        log_focal="focal" if (stage == 2 and config.optimize_focal) else "frozen",
        root_rot="pose" if smpl else "frozen",
        body_pose="pose" if smpl else "frozen",
        transl="transl" if smpl else "frozen",
        betas="pose" if smpl else "frozen",
        depth_log_scale="depth" if (smpl and config.depth_along_ray) else "frozen",
        depth_log_offset="depth" if (smpl and config.depth_along_ray) else "frozen",
    )


def _optimizer(problem: Problem, config, stage: int, params: Params):
    """optax Adam per parameter group, cosine learning rate from the stage's lr x the group's
    `lr_scale`; the focal's Adam is repeated once per image with `focal_update="per_image"`."""
    stage_config = config.stage1 if stage == 1 else config.stage2
    iters = max(int(stage_config.iters), 1)
    schedule = lambda scale: optax.cosine_decay_schedule(stage_config.lr * scale, iters)

    def adam(scale):
        return optax.chain(
            optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS),
            optax.scale_by_learning_rate(schedule(scale)),
        )

    if config.focal_update == "per_image":
        num_images = jnp.sum(problem.cameras.frame_valid).astype(jnp.int32)
        focal = repeated_adam(schedule(config.lr_scale.focal), num_images)
    else:
        focal = adam(config.lr_scale.focal)
    groups = dict(
        camera=adam(config.lr_scale.camera),
        focal=focal,
        pose=adam(config.lr_scale.pose),
        transl=adam(config.lr_scale.transl),
        depth=adam(config.lr_scale.depth),
        frozen=optax.set_to_zero(),
    )
    return optax.multi_transform(groups, param_labels(params, stage, config))


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def converged(curve, i, rel_tol: float, window: int, min_iter: int = 0):
    """Whether the total loss has stopped moving at row `i` of a stage's curve.

    True when |L_i - L_{i-window}| <= rel_tol |L_i| (L = curve[:, 0], the loss at the start of
    each iteration); never before row max(window, min_iter), never with rel_tol <= 0.

    Args:
      curve: float[I, C] the stage's curve so far (rows > i unused); i: int[] current row.
      rel_tol: relative change tolerance (static); window: iterations compared (static).
      min_iter: the earliest row at which the stage may stop (static; the floor
        `convergence.min_fraction` x the stage's iterations).
    """
    if rel_tol <= 0 or window <= 0:
        return jnp.zeros((), bool)
    now = curve[i, 0]
    before = curve[jnp.maximum(i - window, 0), 0]
    return (i >= max(window, min_iter)) & (jnp.abs(now - before) <= rel_tol * jnp.abs(now))


def _run_stage(params: Params, problem: Problem, config, stage: int, ok):
    """One stage: (params, curve float[I, 6], ok, iterations applied).

    A `lax.while_loop` of Adam steps that ends after the stage's `iters`, at a non-finite loss or
    parameter, or once the loss has converged (`config.convergence`, `converged`); rows of the
    curve after the end repeat the last computed row. Under `vmap` every clip stops on its own
    (its carry is frozen while batch-mates go on), so a clip's result does not depend on them.
    """
    iters = int((config.stage1 if stage == 1 else config.stage2).iters)
    if iters == 0:
        return params, jnp.zeros((0, len(CURVE_COLUMNS)), jnp.float32), ok, jnp.zeros((), jnp.int32)
    rel_tol = float(config.convergence.rel_tol)
    window = int(config.convergence.window)
    # The floor: a stage never stops before this share of its iterations (a noisy clip's loss
    # can plateau for a window while the cameras are still far from their optimum).
    min_iter = math.ceil(float(config.convergence.min_fraction) * iters)
    tx = _optimizer(problem, config, stage, params)
    # Per-match constants of the stage (stage 1 freezes the focal), computed once outside the loop.
    constants = stage_constants(problem, stage, focal_of(params, problem.cameras),
                                is_proportional(config))
    grad_fn = jax.value_and_grad(
        lambda p: loss_terms(p, problem, config, stage, constants), has_aux=True
    )

    def step(carry):
        i, params, opt_state, ok, applied, curve, done = carry
        (loss, terms), grads = grad_fn(params)
        curve = curve.at[i].set(terms)
        updates, new_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        new_params = dataclasses.replace(new_params, cam_quat=normalize_quat(new_params.cam_quat))
        ok = ok & jnp.isfinite(loss) & _all_finite(new_params)
        # A converged loss ends the stage before this step's update is applied.
        done = converged(curve, i, rel_tol, window, min_iter)
        use = ok & ~done
        keep = lambda new, old: jax.tree_util.tree_map(lambda x, y: jnp.where(use, x, y), new, old)
        applied = applied + use.astype(jnp.int32)
        return i + 1, keep(new_params, params), keep(new_state, opt_state), ok, applied, curve, done

    def running(carry):
        i, _, _, ok, _, _, done = carry
        return (i < iters) & ok & ~done

    curve = jnp.zeros((iters, len(CURVE_COLUMNS)), jnp.float32)
    init = (jnp.zeros((), jnp.int32), params, tx.init(params), ok, jnp.zeros((), jnp.int32),
            curve, jnp.zeros((), bool))
    rows, params, _, ok, applied, curve, _ = jax.lax.while_loop(running, step, init)
    # Rows never computed (the stage ended early) repeat the last computed one.
    last = curve[jnp.maximum(rows - 1, 0)]
    curve = jnp.where((jnp.arange(iters) < rows)[:, None], curve, last[None])
    return params, curve, ok, applied


def optimize(problem: Problem, config, init: Params | None = None) -> Solution:
    """Runs both stages on one clip (pure; see `optimize_jit` for the compiled form).

    Args:
      problem: Problem of one clip (from `prepare`).
      config: the josh config (read at trace time: static).
      init: the starting parameters (None: `init_params`, the HMR and focal_init; e.g. a
        previous solution's params to continue from, benchmarks/josh_focal_profile.py). The
        priors still pull towards the initial values of the problem, not `init`.

    Returns:
      Solution.
    """
    params = init_params(problem, config) if init is None else init
    ok = jnp.ones((), bool)
    params, curve1, ok, applied1 = _run_stage(params, problem, config, 1, ok)
    params, curve2, ok, applied2 = _run_stage(params, problem, config, 2, ok)
    _, final = loss_terms(params, problem, config, 2)
    diverged = jnp.zeros((), bool)
    if curve1.shape[0]:
        diverged |= curve1[-1, 0] > DIVERGENCE_FACTOR * curve1[0, 0]
    if curve2.shape[0]:
        diverged |= final[0] > DIVERGENCE_FACTOR * curve2[0, 0]
    T_world_cam, focal, depth_scale = camera_forward(params, problem, config)
    R_root, R_body = human_rotations(params, problem, config)
    return Solution(
        params=params,
        T_world_cam=T_world_cam,
        focal=focal,
        anchor_depth=anchor_depths(problem.cameras, focal, depth_scale, is_proportional(config)),
        smpl_global_orient=R_root,
        smpl_body_pose=R_body,
        smpl_transl=effective_transl(params, problem, config, focal),
        smpl_betas=params.betas,
        smpl_valid=problem.tracks.valid,
        diagnostics=Diagnostics(
            curve_stage1=curve1,
            curve_stage2=curve2,
            final_terms=final,
            nan=~ok,
            diverged=diverged | ~ok,
            iters_run=jnp.stack([applied1, applied2]),
        ),
    )


# `optimize` compiled, the config a static argument: pass a hashable config
# (`ml_collections.FrozenConfigDict(config)`); equal configs share one compiled program.
optimize_jit = jax.jit(optimize, static_argnames="config")
