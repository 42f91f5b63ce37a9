r"""Where does JOSH's loss put the focal? The loss over a grid of fixed focal values.

    python -m benchmarks.josh_focal_profile                                   # JOSH's depth model
    python -m benchmarks.josh_focal_profile --variant=proportional_focal_prior

For each clip (the shared reference clip and public suite clips, `--clips`): JOSH is run once
(the variant's config, `benchmarks/josh_accuracy.VARIANTS`), then for each focal f = r f_true on
the grid `--ratios` (f_true: the clip's ground truth):
- `slice`: the stage-2 loss terms at the solution with only the focal replaced;
- `profile`: the same after `--profile_iters` stage-2 iterations from the solution with the focal
  frozen at f (`optimize(..., init=params)`, stage 1 skipped): every other parameter re-fitted, so
  the curve is the loss's profile over the focal.
Figures per clip: the total and each term (CURVE_COLUMNS: pair, scale, static, prior, smooth) at
every ratio, the ratio f / f_true at each minimum (`*_argmin_<term>`: the grid point of the
smallest value), the focal initialisation and the solution's focal over f_true. A loss whose
minimum sits at f_init / f_true rather than at 1 holds the focal where it started. The re-fit is
local (from the solution), so the profile leans towards the solution's focal: compare it with a
run whose focal is free (`solution_focal_over_true`) under another model. The prior column
includes the focal prior (weights.focal) when the variant has one.
Writes `benchmarks/results/josh_focal_profile[_<suffix>]_<device>.json` (suffix: `--suffix`,
default "" for `default`, "proportional" for the proportional variants).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags

from benchmarks import josh_accuracy
from benchmarks.common import write_result
from experiments import cli
from josh_jax import optimize as optimize_lib
from josh_jax import pipeline
from josh_jax import prepare as prepare_lib
from josh_jax.clip import load_any

_CLIPS = flags.DEFINE_list("clips", ["reference", "suite_s21_n1.0", "suite_s23_n2.0"],
                           "'reference' or suite_<tag> clips.")
_VARIANT = flags.DEFINE_string("variant", "default", "josh_accuracy.VARIANTS name.")
_SUFFIX = flags.DEFINE_string("suffix", None, "Result name suffix (default from the variant).")
_RATIOS = flags.DEFINE_list("ratios", ["0.8", "0.85", "0.9", "0.95", "1.0", "1.05", "1.1", "1.15",
                                       "1.2"], "Focal / true focal grid.")
_PROFILE_ITERS = flags.DEFINE_integer("profile_iters", 100,
                                      "Stage-2 iterations at each fixed focal.")
_OUT_DIR = josh_accuracy._OUT_DIR  # --out_dir (defined there; its other flags are unused here)

TERMS = optimize_lib.CURVE_COLUMNS  # total, pair, scale, static, prior, smooth


def clip_path(name: str) -> str:
    if name == "reference":
        return josh_accuracy._REF
    return os.path.join(josh_accuracy._SUITE_DIR, f"{name}.npz")


def profile_config(config, iters: int):
    """`config` with stage 1 skipped, the focal frozen and `iters` stage-2 iterations."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.stage1.iters = 0
    cfg.stage2.iters = iters
    cfg.optimize_focal = False
    cfg.convergence.rel_tol = 0.0
    return ml_collections.FrozenConfigDict(cfg)


def profile_clip(problem, config, f_true: float, ratios, iters: int) -> dict:
    """{figure: value} of one clip (see the module docstring) and timings."""
    frozen = ml_collections.FrozenConfigDict(config)
    t = time.perf_counter()
    solution = jax.block_until_ready(optimize_lib.optimize_jit(problem, frozen))
    solve_s = time.perf_counter() - t
    slice_fn = jax.jit(lambda p: optimize_lib.loss_terms(p, problem, frozen, 2)[1])
    prof_cfg = profile_config(config, iters)
    out = {"solve_s": solve_s,
           "focal_init_over_true": float(problem.cameras.focal_init) / f_true,
           "solution_focal_over_true": float(solution.focal) / f_true}
    slices, profiles, run_s, compile_s = [], [], 0.0, 0.0
    for k, r in enumerate(ratios):
        params = dataclasses.replace(solution.params,
                                     log_focal=jnp.asarray(np.log(r * f_true), jnp.float32))
        slices.append(np.asarray(slice_fn(params)))
        t = time.perf_counter()
        sol = jax.block_until_ready(optimize_lib.optimize_jit(problem, prof_cfg, init=params))
        # The first grid point includes the compilation (the others reuse it).
        if k == 0:
            compile_s = time.perf_counter() - t
        else:
            run_s += time.perf_counter() - t
        profiles.append(np.asarray(sol.diagnostics.final_terms))
    out["profile_compile_plus_first_s"] = compile_s
    out["profile_run_s_per_point"] = run_s / max(len(ratios) - 1, 1)
    for kind, rows in (("slice", np.stack(slices)), ("profile", np.stack(profiles))):
        for c, term in enumerate(TERMS):
            for r, v in zip(ratios, rows[:, c], strict=True):
                out[f"{kind}_{term}_r{r:g}"] = float(v)
            out[f"{kind}_argmin_{term}"] = float(ratios[int(np.argmin(rows[:, c]))])
    return out


def main(argv):
    del argv
    config = josh_accuracy.variant_config(_VARIANT.value)
    suffix = _SUFFIX.value
    if suffix is None:
        suffix = "proportional" if config.focal_depth_model == "proportional" else ""
    ratios = [float(r) for r in _RATIOS.value]
    figures, body_cache = {}, {}
    for name in _CLIPS.value:
        clip, gt = load_any(clip_path(name))
        key = str(clip.body_model)
        if key not in body_cache:
            body_cache[key] = pipeline.resolve_body_model(key, cli.body_model_path(key))
        problem = prepare_lib.prepare(clip, config, body_cache[key])
        rows = profile_clip(problem, config, float(gt.gt_focal), ratios, _PROFILE_ITERS.value)
        for k, v in rows.items():
            figures[f"{name}_{k}"] = v
        print(name, {k: v for k, v in rows.items() if "argmin" in k or "over_true" in k},
              flush=True)
    write_result("josh_focal_profile" + (f"_{suffix}" if suffix else ""), figures,
                 out_dir=_OUT_DIR.value, tag=jax.default_backend(), variant=_VARIANT.value,
                 ratios=ratios, profile_iters=_PROFILE_ITERS.value, terms=list(TERMS))


if __name__ == "__main__":
    cli.run(main)
