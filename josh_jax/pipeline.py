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

import dataclasses
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
from josh_jax import preflight
from josh_jax import prepare as prepare_lib
from josh_jax.clip import Clip, GroundTruth
from josh_jax.errors import InputError
from josh_jax.evaluate import evaluate, final_losses
from josh_jax.io import outputs as outputs_lib
from josh_jax.io.atomic import recover, update_json
from josh_jax.io.outputs import DEFAULT_WRITERS, write_result_set
from josh_jax.io.report import jsonable
from josh_jax.quality import result_quality_problems
from josh_jax.result import Result, make_result
from josh_jax.result_checks import result_problems


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

    Raises:
      InputError: the estimated memory is over `config.limits.max_memory_gb` (before compiling).
    """
    t = time.perf_counter()
    prepared = [prepare_lib.prepare(c, config, body_model, return_info=True) for c in clips]
    prepare_s = time.perf_counter() - t
    _log_prepared(prepared, prepare_s)
    check_batch_memory(prepared, clips, config, body_model)
    return _optimize_and_assemble(clips, prepared, config, body_model, prepare_s)


def _log_prepared(prepared: list, prepare_s: float) -> None:
    logging.info("[prepare] %d clip(s) in %.2f s (%s matches, %s contact entries)", len(prepared),
                 prepare_s, [info.num_matches for _, info in prepared],
                 [sum(len(c.image) for c in info.contacts if c is not None)
                  for _, info in prepared])


def check_batch_memory(prepared: list, clips: Sequence[Clip], config, body_model) -> None:
    """`preflight.check_memory` on the bucketed problems against `config.limits`."""
    limits = config.limits
    need = preflight.check_memory([p for p, _ in prepared], clips, body_model, limits,
                                  source=f"batch of {len(clips)} clip(s)")
    logging.info("[prepare] estimated peak memory %.2f GB (limit %.1f GB)", need / 2**30,
                 preflight.memory_limit_bytes(limits) / 2**30)


def _optimize_and_assemble(clips: Sequence[Clip], prepared: list, config, body_model,
                           prepare_s: float) -> list[tuple[Result, dict[str, Any]]]:
    """Optimize the prepared problems (one program per bucket) and assemble one Result each."""
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
                  vertices: str = "float16", overwrite: bool = False,
                  skipped: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Reconstruct (one clip, or one batch), evaluate and write every output; one summary per clip.

    Each clip is checked and prepared on its own: a clip that fails (`skipped`) or whose outputs
    cannot be written (`failed`) is reported with its reason and the others go on. Each clip's
    files are written as one result set (`josh_jax.io.outputs.write_result_set`); a result with
    problems (`josh_jax.result_checks`) is written and reported as `suspect`.

    Args:
      items: (stem, clip, gt or None) per clip; outputs are `{out_dir}/{stem}.*` (a stem may hold
        folders).
      config: JOSH config.
      body_model: the body of every clip's SMPL parameters.
      out_dir: output folder (created; only the clips' result sets, `summary.json` and the lock
        file `.josh.lock` are written).
      writers: the outputs to write (`josh_jax.io.outputs.WRITERS`; docs/outputs.md).
      vertices: how the result .npz stores vertices ("float16", "float32", "none").
      overwrite: replace previous outputs of a stem (else: InputError before any work).
      skipped: summary entries of inputs refused earlier (`skipped_entry`), merged in the summary.

    Returns:
      Per clip: stem, status (ok / suspect / skipped / failed), problems, timings, final loss
      terms, NaN / divergence flags, metrics (when GT), written paths. Merged into
      `{out_dir}/summary.json` (entries of other clips kept).
    """
    outputs_lib.check_destination(out_dir, [stem for stem, _, _ in items], overwrite=overwrite)
    _recover_folders(out_dir, [stem for stem, _, _ in items])
    logging.info("[reconstruct] %d clip(s)", len(items))
    summaries = list(skipped)
    ready, prepared, prepare_s = _prepare_each(items, config, body_model, summaries)
    if ready:
        check_batch_memory(prepared, [clip for _, clip, _ in ready], config, body_model)
        outs = _optimize_and_assemble([clip for _, clip, _ in ready], prepared, config,
                                      body_model, prepare_s)
        for item, (result, info) in zip(ready, outs, strict=True):
            summaries.append(_evaluate_and_write(item, result, info, body_model, config, out_dir,
                                                 writers=writers, vertices=vertices))
    merge_summary(os.path.join(out_dir, "summary.json"), summaries)
    return summaries


def _recover_folders(out_dir: str, stems: Sequence[str]) -> None:
    """Finishes commits and removes temporaries that killed runs left in the output folders."""
    folders = {out_dir} | {os.path.dirname(os.path.join(out_dir, stem)) for stem in stems}
    for folder in sorted(folders):
        for line in recover(folder):
            logging.warning("[write] %s: %s", folder, line)


def skipped_entry(stem: str, reason: str, source: str | None = None) -> dict[str, Any]:
    """The summary entry of a clip refused before optimisation."""
    logging.warning("[skip] %s: %s", stem, reason)
    return {"clip": stem, "input": source, "status": "skipped", "problems": [reason],
            "timings": {}, "final_losses": {}, "nan": False, "diverged": False, "metrics": None,
            "outputs": {}}


def _prepare_each(items, config, body_model, summaries: list) -> tuple[list, list, float]:
    """Checks and prepares each clip on its own; refused ones become `skipped` summaries."""
    t = time.perf_counter()
    ready, prepared = [], []
    for stem, clip, gt in items:
        try:
            preflight.check_clip(clip, config, stem)
            preflight.check_clip_body(clip, body_model, stem)
            prepared.append(prepare_lib.prepare(clip, config, body_model, return_info=True))
            ready.append((stem, clip, gt))
        except (InputError, ValueError) as e:  # bad data: this clip only
            summaries.append(skipped_entry(stem, " ".join(str(e).splitlines())))
    prepare_s = time.perf_counter() - t
    if prepared:
        _log_prepared(prepared, prepare_s)
    return ready, prepared, prepare_s


def clip_problems(result: Result, body_model, quality_thresholds) -> list[str]:
    """Why a result is suspect (empty: it is not): result checks, quality thresholds
    (`config.quality`, `josh_jax.quality`) and the optimizer's flags."""
    problems = result_problems(result, body_model)
    problems += result_quality_problems(result.diagnostics, quality_thresholds)
    if bool(np.asarray(result.diagnostics["nan"])):
        problems.append("diagnostics: nan: expected no NaN, found NaN met (last finite "
                        "parameters kept)")
    if bool(np.asarray(result.diagnostics["diverged"])):
        problems.append("diagnostics: diverged: expected a falling loss, found it rising")
    return problems


def with_status(result: Result, problems: Sequence[str]) -> Result:
    """`result` with `diagnostics['status']` ('ok' / 'suspect') and `['problems']` (strings)."""
    diagnostics = dict(result.diagnostics)
    diagnostics["status"] = np.asarray("suspect" if problems else "ok")
    diagnostics["problems"] = np.asarray(list(problems), dtype=str)
    return dataclasses.replace(result, diagnostics=diagnostics)


def _evaluate_and_write(item, result: Result, info: dict, body_model, config, out_dir: str, *,
                        writers, vertices) -> dict[str, Any]:
    """Checks, evaluates and writes one clip's result set; its summary entry."""
    stem, _, gt = item
    problems = clip_problems(result, body_model, config.quality)
    for p in problems:
        logging.warning("[result] %s is suspect: %s", stem, p)
    result = with_status(result, problems)
    t = time.perf_counter()
    metrics = evaluate(result, gt, body_model) if gt is not None else None
    eval_s = time.perf_counter() - t
    t = time.perf_counter()
    status = "suspect" if problems else "ok"
    try:
        written = write_result_set(out_dir, stem, result, writers=writers,
                                   body_model=body_model, metrics=metrics, vertices=vertices)
    except (OSError, ValueError, RuntimeError) as e:  # e.g. a full disk, ffmpeg refusing
        logging.error("[write] %s: %s", stem, e)
        written, status = {}, "failed"
        problems = problems + [f"(write): {type(e).__name__}: {' '.join(str(e).splitlines())}"]
    write_s = time.perf_counter() - t
    logging.info("[write] %s: %s in %.2f s", stem, ", ".join(sorted(written)), write_s)
    diag = info["diagnostics"]
    return {
        "clip": stem,
        "status": status,
        "problems": list(problems),
        "timings": {**info["timings"], "evaluate_s": eval_s, "write_s": write_s},
        "final_losses": final_losses(diag),
        "nan": bool(np.asarray(diag["nan"])),
        "diverged": bool(np.asarray(diag["diverged"])),
        "iters_run": np.asarray(diag["iters_run"]).tolist(),
        "metrics": metrics,
        "outputs": written,
    }


def merge_summary(path: str, summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merges `summaries` into the JSON file `path` under a lock: same clip replaced, others kept."""
    new = [jsonable(s) for s in summaries]
    names = {s["clip"] for s in new}

    def update(old: dict) -> dict:
        kept = [s for s in old.get("clips", []) if isinstance(s, dict) and s.get("clip") not in names]
        return {"clips": kept + new}

    return update_json(path, update)


_TABLE_METRICS = (("wa_mpjpe_sim3_mm", "WA mm"), ("w_mpjpe_first_frame_aligned_mm", "W mm"),
                  ("human_scale_err", "scale err"), ("focal_err", "focal err"),
                  ("cam_ate_sim3_m", "ATE m"))


def summary_table(summaries: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table: one row per clip (status, time, final loss terms, metrics if
    any), then one line per problem of a suspect, skipped or failed clip."""
    loss_names = []
    for s in summaries:
        for k in s.get("final_losses", {}):
            if k not in loss_names:
                loss_names.append(k)
    header = ["clip", "time s", "nan", "diverged"] + [f"L_{k}" for k in loss_names]
    header += [label for _, label in _TABLE_METRICS] + ["status"]
    rows = []
    for s in summaries:
        t = s.get("timings", {})
        total = sum(v for k, v in t.items() if k.endswith("_s"))
        row = [s["clip"], f"{total:.1f}", "yes" if s.get("nan") else "no",
               "yes" if s.get("diverged") else "no"]
        row += [f"{s['final_losses'][k]:.4g}" if k in s.get("final_losses", {}) else "-"
                for k in loss_names]
        m = s.get("metrics") or {}
        row += [f"{m[k]:.4g}" if k in m else "-" for k, _ in _TABLE_METRICS]
        rows.append(row + [s.get("status", "ok")])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True))
    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    for s in summaries:
        lines += [f"{s.get('status', 'ok')}: {s['clip']}: {p}" for p in s.get("problems", [])]
    return "\n".join(lines)
