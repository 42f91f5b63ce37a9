"""End-to-end JOSH on clips: clip -> prepare -> optimize -> Result -> writers.

    result, info = reconstruct(clip, config, body_model)           # one clip
    outs = reconstruct_many(clips, config, body_model)             # a batch: jit(vmap) per bucket
    summaries = run_and_write(items, config, body_model, out_dir)  # + metrics and every output

Each stage runs once per clip and hands its output to the next: `prepare` (host) gives the
`Problem` and its `PrepareInfo`, `optimize` the `Solution`, `make_result` the `Result`, then
`evaluate` (when the clip has ground truth) and the writers of `josh_jax.io`. Progress is logged
(absl) per stage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

import body_models
from josh_jax import optimize as optimize_lib
from josh_jax import prepare as prepare_lib
from josh_jax.clip import Clip, GroundTruth
from josh_jax.errors import InputError
from josh_jax.evaluate import evaluate, final_losses
from josh_jax.io.outputs import DEFAULT_WRITERS, write_all
from josh_jax.io.report import write_json
from josh_jax.result import Result, make_result


def resolve_body_model(clip_body_name: str, path: str | None = None) -> body_models.BodyModel:
    """The body model of a clip: the file `path` if given, else the built-in body it names.

    Raises:
      InputError: the clip names a body that needs a model file (e.g. `smpl_neutral`) and no
        `path` was given.
    """
    if path:
        return body_models.load_model(path)
    name = str(clip_body_name)
    if name.startswith("mannequin") or name == "":
        return body_models.load_model(None)
    raise InputError("clip", "body_model", f"a model file for {name!r} "
                     "(--body_model=path/to/model; only the built-in mannequin needs none)", "none")


# ---------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------


def reconstruct(clip: Clip, config, body_model) -> tuple[Result, dict[str, Any]]:
    """JOSH on one clip: prepare (host) -> optimize (one jit) -> Result.

    Args:
      clip: the clip.
      config: the JOSH ConfigDict (experiments/configs/josh.py).
      body_model: the body of the clip's SMPL parameters (`resolve_body_model`).

    Returns:
      (result, info): info has `timings` (seconds per stage) and `diagnostics` (the optimizer's,
      as numpy arrays, also stored in the result).
    """
    return reconstruct_many([clip], config, body_model)[0]


def reconstruct_many(clips: Sequence[Clip], config, body_model
                     ) -> list[tuple[Result, dict[str, Any]]]:
    """JOSH on a batch of clips: one jit(vmap) optimization per bucket shape (usually one).

    A clip that diverges or hits NaN is flagged in its own diagnostics and does not change the
    others. One clip alone is optimized unbatched. Returns one (result, info) per clip, in order.
    """
    t = time.perf_counter()
    prepared = [prepare_lib.prepare(c, config, body_model, return_info=True) for c in clips]
    prepare_s = time.perf_counter() - t
    logging.info("[prepare] %d clip(s) in %.2f s (%s matches, %s contact entries)", len(clips),
                 prepare_s, [info.num_matches for _, info in prepared],
                 [sum(len(c.image) for c in info.contacts) for _, info in prepared])

    t = time.perf_counter()
    solutions = _optimize([problem for problem, _ in prepared], config)
    optimize_s = time.perf_counter() - t
    logging.info("[optimize] %d clip(s) in %.2f s (compile + run)", len(clips), optimize_s)

    outs = []
    for clip, (problem, info), solution in zip(clips, prepared, solutions, strict=True):
        t = time.perf_counter()
        result = make_result(clip, problem, solution, body_model, config, info=info,
                             curve_columns=optimize_lib.CURVE_COLUMNS)
        timings = {"prepare_s": prepare_s / len(clips), "optimize_s": optimize_s / len(clips),
                   "assemble_s": time.perf_counter() - t, "batch_size": len(clips)}
        _log_failure(result.diagnostics)
        outs.append((result, {"timings": timings, "diagnostics": dict(result.diagnostics)}))
    logging.info("[result] %d result(s) assembled", len(outs))
    return outs


def _optimize(problems: list, config) -> list:
    """One Solution per problem: unbatched for one clip, else one batch per bucket signature."""
    if len(problems) == 1:
        return [jax.block_until_ready(optimize_lib.optimize_jit(problems[0], ml_collections.FrozenConfigDict(config)))]
    # Clips whose problems fell in different buckets cannot share one program.
    groups: dict[Any, list[int]] = {}
    for i, p in enumerate(problems):
        sig = str(jax.tree.structure(p)) + str([np.shape(x) for x in jax.tree.leaves(p)])
        groups.setdefault(sig, []).append(i)
    solutions = [None] * len(problems)
    for members in groups.values():
        batch = optimize_lib.optimize_many([problems[i] for i in members], config)
        batch = jax.block_until_ready(batch)
        for j, i in enumerate(members):
            solutions[i] = jax.tree.map(lambda x, j=j: x[j], batch)
    logging.info("[optimize] %d batch(es)", len(groups))
    return solutions


def _log_failure(diagnostics: dict[str, Any]) -> None:
    if bool(np.asarray(diagnostics["nan"])):
        logging.warning("[result] NaN met, last finite parameters kept")
    elif bool(np.asarray(diagnostics["diverged"])):
        logging.warning("[result] the optimisation diverged (loss rose): treat this result as "
                        "failed")


# ---------------------------------------------------------------------------------------------
# Run and write (what experiments/run_josh.py calls)
# ---------------------------------------------------------------------------------------------


def run_and_write(items: Sequence[tuple[str, Clip, GroundTruth | None]], config, body_model, *,
                  out_dir: str, writers: Sequence[str] = DEFAULT_WRITERS,
                  vertices: str = "float16") -> list[dict[str, Any]]:
    """Reconstruct (one clip, or one batch), evaluate and write every output; one summary per clip.

    Args:
      items: (stem, clip, gt or None) per clip; outputs are `{out_dir}/{stem}.*`.
      config: JOSH config.
      body_model: the body of every clip's SMPL parameters.
      out_dir: output folder (created; only files named after the stems are written).
      writers: the outputs to write (`josh_jax.io.outputs.WRITERS`; docs/outputs.md).
      vertices: how the result .npz stores vertices ("float16", "float32", "none").

    Returns:
      Per clip: stem, timings, final loss terms, NaN / divergence flags, metrics (when GT),
      written paths. Also written as `{out_dir}/summary.json`.
    """
    logging.info("[reconstruct] %d clip(s)", len(items))
    outs = reconstruct_many([clip for _, clip, _ in items], config, body_model)
    summaries = []
    for (stem, _, gt), (result, info) in zip(items, outs, strict=True):
        t = time.perf_counter()
        metrics = evaluate(result, gt, body_model) if gt is not None else None
        eval_s = time.perf_counter() - t
        t = time.perf_counter()
        written = write_all(out_dir, stem, result, writers=writers, body_model=body_model,
                            metrics=metrics, vertices=vertices)
        write_s = time.perf_counter() - t
        logging.info("[write] %s: %s in %.2f s", stem, ", ".join(sorted(written)), write_s)
        diag = info["diagnostics"]
        summaries.append({
            "clip": stem,
            "timings": {**info["timings"], "evaluate_s": eval_s, "write_s": write_s},
            "final_losses": final_losses(diag),
            "nan": bool(np.asarray(diag["nan"])),
            "diverged": bool(np.asarray(diag["diverged"])),
            "iters_run": np.asarray(diag["iters_run"]).tolist(),
            "metrics": metrics,
            "outputs": written,
        })
    write_json(os.path.join(out_dir, "summary.json"), {"clips": summaries})
    return summaries


_TABLE_METRICS = (("wa_mpjpe_sim3_mm", "WA mm"), ("w_mpjpe_first_frame_aligned_mm", "W mm"),
                  ("human_scale_err", "scale err"), ("focal_err", "focal err"),
                  ("cam_ate_sim3_m", "ATE m"))


def summary_table(summaries: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table: one row per clip (time, final loss terms, metrics if any)."""
    loss_names = []
    for s in summaries:
        for k in s["final_losses"]:
            if k not in loss_names:
                loss_names.append(k)
    header = ["clip", "time s", "nan", "diverged"] + [f"L_{k}" for k in loss_names]
    header += [label for _, label in _TABLE_METRICS]
    rows = []
    for s in summaries:
        t = s["timings"]
        total = sum(v for k, v in t.items() if k.endswith("_s"))
        row = [s["clip"], f"{total:.1f}", "yes" if s["nan"] else "no",
               "yes" if s.get("diverged") else "no"]
        row += [f"{s['final_losses'].get(k, float('nan')):.4g}" for k in loss_names]
        m = s["metrics"] or {}
        row += [f"{m[k]:.4g}" if k in m else "-" for k, _ in _TABLE_METRICS]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True))
    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    return "\n".join(lines)
