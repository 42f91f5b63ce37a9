"""End-to-end JOSH on clips: prepare -> optimize -> Result, plus evaluation and output writing.

    result, info = reconstruct(clip, config, body_model)      # one clip
    outs = reconstruct_many(clips, config, body_model)         # a batch: one jit(vmap) program
    metrics = evaluate(result, gt, body_model)                 # when ground truth exists

`run_and_write` is what `experiments/run_josh.py` calls: it runs one clip or a batch, writes the
chosen outputs of every clip (`write_outputs`) and returns one summary per clip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from josh_jax import export
from josh_jax.io import amass, gltf, viewer
from josh_jax.result import Result, make_result

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The reference clip's licence-free SMPL-format body: beside the shared reference files, and copied
# into the repo's test data (so a fresh clone finds it too).
REFERENCE_BODY_FILES = (
    os.path.join(_REPO, "..", "shared", "reference", "synthetic_smpl_neutral.npz"),
    os.path.join(_REPO, "tests", "data", "synthetic_smpl_neutral.npz"),
)


def _noop(*_args, **_kwargs) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def load_config_file(path: str, arg: str | None = None):
    """`get_config(arg)` of a Python config file (what `--config=path:arg` does, without flags)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def resolve_body_model(clip_body_name: str, path: str | None = None):
    """The body model for a clip: `path` if given, else the one its `body_model` names.

    Known names without a path: the built-in mannequin, and the reference synthetic SMPL
    (one of `REFERENCE_BODY_FILES`, when it exists).
    """
    import body_models  # noqa: PLC0415

    if path:
        return body_models.load_model(path)
    name = str(clip_body_name)
    if name.startswith("mannequin") or name == "":
        return body_models.load_model(None)
    if name == "synthetic_smpl_neutral":
        for candidate in REFERENCE_BODY_FILES:
            if os.path.exists(candidate):
                return body_models.load_model(candidate)
    raise ValueError(
        f"clip body_model: expected a model file for {name!r} (pass --body_model=path/to/model), "
        f"found none; only the built-in mannequin needs no file")


# ---------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------


def reconstruct(clip, config, body_model=None, *, log: Callable[..., None] = _noop
                ) -> tuple[Result, dict[str, Any]]:
    """JOSH on one clip: prepare (host) -> optimize (one jit) -> Result.

    Args:
      clip: a `josh_jax.clip.Clip`.
      config: the JOSH ConfigDict (experiments/configs/josh.py).
      body_model: the body of the clip's SMPL parameters (default: resolved from the clip).
      log: progress printer (e.g. `print`).

    Returns:
      (result, info): info has `timings` (seconds per stage) and `diagnostics` (the optimizer's,
      as numpy arrays, also stored in the result).
    """
    from josh_jax import optimize as optimize_lib  # noqa: PLC0415
    from josh_jax import prepare as prepare_lib  # noqa: PLC0415

    if body_model is None:
        body_model = resolve_body_model(clip.body_model)
    timings = {}
    t = time.perf_counter()
    problem, prep_info = prepare_lib.prepare(clip, config, body_model, return_info=True)
    timings["prepare_s"] = time.perf_counter() - t
    log(f"  [prepare] {timings['prepare_s']:.2f} s ({prep_info.num_matches} matches, "
        f"{sum(len(c.image) for c in prep_info.contacts)} contact entries)")
    t = time.perf_counter()
    solution = optimize_lib.optimize_jit(problem, config)
    solution = jax.block_until_ready(solution)
    timings["optimize_s"] = time.perf_counter() - t
    log(f"  [optimize] {timings['optimize_s']:.2f} s (compile + run)")
    t = time.perf_counter()
    result = make_result(clip, problem, solution, body_model, config, info=prep_info)
    timings["assemble_s"] = time.perf_counter() - t
    nan, diverged = bool(np.asarray(solution.nan)), bool(np.asarray(solution.diverged))
    warning = ("  WARNING: NaN met, last finite parameters kept" if nan else
               "  WARNING: the optimisation diverged (loss rose), treat this result as failed"
               if diverged else "")
    log(f"  [result] {timings['assemble_s']:.2f} s" + warning)
    return result, {"timings": timings, "diagnostics": dict(result.diagnostics)}


def reconstruct_many(clips: Sequence, config, body_model=None, *,
                     log: Callable[..., None] = _noop) -> list[tuple[Result, dict[str, Any]]]:
    """JOSH on a batch of clips: one jit(vmap) optimization per bucket shape (usually one).

    A clip that diverges or hits NaN is flagged in its own diagnostics and does not change the
    others. Returns one (result, info) per clip, in order.
    """
    from josh_jax import optimize as optimize_lib  # noqa: PLC0415
    from josh_jax import prepare as prepare_lib  # noqa: PLC0415

    if len(clips) == 1:
        return [reconstruct(clips[0], config, body_model, log=log)]
    t = time.perf_counter()
    if body_model is None:
        body_model = resolve_body_model(clips[0].body_model)
    prepared = [prepare_lib.prepare(c, config, body_model, return_info=True) for c in clips]
    problems = [p for p, _ in prepared]
    prepare_s = time.perf_counter() - t
    log(f"  [prepare] {len(clips)} clips in {prepare_s:.2f} s")
    # Clips whose problems fell in different buckets cannot share one program: one batch per
    # bucket signature.
    groups: dict[Any, list[int]] = {}
    for i, p in enumerate(problems):
        sig = str(jax.tree.structure(p)) + str([np.shape(x) for x in jax.tree.leaves(p)])
        groups.setdefault(sig, []).append(i)
    t = time.perf_counter()
    solutions = [None] * len(clips)
    for members in groups.values():
        sols = optimize_lib.optimize_many([problems[i] for i in members], config)
        sols = jax.block_until_ready(sols)
        for j, i in enumerate(members):
            solutions[i] = jax.tree.map(lambda x, j=j: x[j], sols)
    optimize_s = time.perf_counter() - t
    log(f"  [optimize] {len(clips)} clips in {len(groups)} batch(es): {optimize_s:.2f} s "
        f"(compile + run)")
    outs = []
    for i, (clip, (problem, prep_info)) in enumerate(zip(clips, prepared, strict=True)):
        t = time.perf_counter()
        result = make_result(clip, problem, solutions[i], body_model, config, info=prep_info)
        timings = {"prepare_s": prepare_s / len(clips), "optimize_s": optimize_s / len(clips),
                   "assemble_s": time.perf_counter() - t, "batch_size": len(clips)}
        outs.append((result, {"timings": timings, "diagnostics": dict(result.diagnostics)}))
    log(f"  [result] {len(clips)} results assembled")
    return outs


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def _gt_keyframe_joints(result: Result, gt, body_model) -> np.ndarray | None:
    """float[P, T, J, 3] ground-truth world joints at the keyframes, or None."""
    kf = np.asarray(result.keyframe_index)
    if gt.gt_joints_world_all is not None and gt.gt_frame_index is not None:
        rows = {int(f): i for i, f in enumerate(np.asarray(gt.gt_frame_index))}
        if all(int(f) in rows for f in kf):
            return np.asarray(gt.gt_joints_world_all)[:, [rows[int(f)] for f in kf]]
    if gt.gt_smpl_transl is None or body_model is None:
        return None
    import body_models  # noqa: PLC0415

    betas = np.asarray(gt.gt_smpl_betas, np.float32)
    P, T = np.asarray(gt.gt_smpl_transl).shape[:2]
    if betas.ndim == 2:
        betas = np.broadcast_to(betas[:, None], (P, T, betas.shape[-1]))
    pose_fn = jax.jit(jax.vmap(jax.vmap(lambda b, R, p, t: body_models.lbs(body_model, b, R, p, t))))
    out = pose_fn(betas, np.asarray(gt.gt_smpl_global_orient, np.float32),
                  np.asarray(gt.gt_smpl_body_pose, np.float32),
                  np.asarray(gt.gt_smpl_transl, np.float32))
    return np.asarray(out.joints, np.float64)


def evaluate(result: Result, gt, body_model=None) -> dict[str, Any]:
    """Metrics of a result against ground truth (`josh_jax.metrics`), aligned, so world-agnostic.

    Keyframe metrics use the reference result JSON's definitions (`metrics.reference_metrics`,
    frame-weighted over tracks): `wa_mpjpe_sim3_mm`, `w_mpjpe_first_frame_aligned_mm`,
    `human_sim3_scale_pred_to_gt`, `human_scale_err`, `pa_mpjpe_mm`, `cam_ate_sim3_m`,
    `focal_final_rel_err`, `focal_err`. When per-video-frame GT exists (`gt_joints_world_all`,
    `gt_T_world_cam_all`), the community protocol on every valid frame is added under `all_*`:
    W-MPJPE / WA-MPJPE (100-frame chunks), PA-MPJPE, RTE (pelvis joint), jitter, camera ATE.

    Args:
      result: the Result.
      gt: the clip's GroundTruth (keyframe arrays aligned with the clip's frames).
      body_model: body model for GT joints when the GT has parameters only.

    Returns:
      dict of floats (ints for counts); absent keys mean "no ground truth for it".
    """
    from josh_jax import metrics  # noqa: PLC0415

    out: dict[str, Any] = {}
    kf_pos = result.keyframe_positions
    T_kf = np.asarray(result.T_world_cam, np.float64)[kf_pos]
    if gt.gt_T_world_cam is not None:
        gt_c = np.asarray(gt.gt_T_world_cam, np.float64)[:, :3, 3]
        out["cam_ate_sim3_m"] = metrics.camera_ate(T_kf[:, :3, 3], gt_c, "sim3")
        out["cam_ate_se3_noscale_m"] = metrics.camera_ate(T_kf[:, :3, 3], gt_c, "se3")
        out["cam_sim3_scale_pred_to_gt"] = metrics.camera_sim3_scale(T_kf[:, :3, 3], gt_c)
    if gt.gt_focal is not None:
        f = float(np.asarray(result.K)[kf_pos[0], 0, 0])
        out["focal_final"] = f
        out["focal_final_rel_err"] = f / float(gt.gt_focal) - 1.0
        out["focal_err"] = metrics.focal_error(f, gt.gt_focal)

    gt_joints = _gt_keyframe_joints(result, gt, body_model) if result.num_tracks else None
    if gt_joints is not None:
        valid = np.asarray(result.smpl_valid, bool)[:, kf_pos]
        pred = np.asarray(result.joints_world, np.float64)[:, kf_pos]
        per_track, weights = [], []
        for p in range(min(result.num_tracks, gt_joints.shape[0])):
            m = valid[p]
            if m.sum() < 2:
                continue
            per_track.append(metrics.reference_metrics(pred[p][m], gt_joints[p][m]))
            weights.append(int(m.sum()))
        if per_track:
            w = np.asarray(weights, np.float64) / np.sum(weights)
            for key in per_track[0]:
                out[key] = float(sum(wi * d[key] for wi, d in zip(w, per_track, strict=True)))
            out["human_keyframes"] = int(np.sum(weights))

    if gt.gt_joints_world_all is not None and gt.gt_frame_index is not None and result.num_tracks:
        rows = {int(f): i for i, f in enumerate(np.asarray(gt.gt_frame_index))}
        frames = np.asarray(result.frame_index)
        have = np.array([int(f) in rows for f in frames])
        idx = np.array([rows.get(int(f), 0) for f in frames])
        gt_all = np.asarray(gt.gt_joints_world_all, np.float64)
        acc: dict[str, list] = {}
        n_total = 0
        for p in range(min(result.num_tracks, gt_all.shape[0])):
            m = np.asarray(result.smpl_valid[p], bool) & have
            if m.sum() < 4:
                continue
            pred = np.asarray(result.joints_world[p], np.float64)[m]
            ref = gt_all[p, idx[m]]
            n = int(m.sum())
            n_total += n
            vals = {
                "all_w_mpjpe_mm": metrics.w_mpjpe(pred, ref),
                "all_wa_mpjpe_mm": metrics.wa_mpjpe(pred, ref),
                "all_pa_mpjpe_mm": metrics.pa_mpjpe(pred, ref),
                "all_rte_pct": metrics.rte(pred[:, 0], ref[:, 0]),
                "all_jitter_10ms3": metrics.jitter(pred, float(result.fps)),
            }
            for k, v in vals.items():
                acc.setdefault(k, []).append((n, v))
        for k, lst in acc.items():
            out[k] = float(sum(n * v for n, v in lst) / sum(n for n, _ in lst))
        if n_total:
            out["all_human_frames"] = n_total
        if gt.gt_T_world_cam_all is not None and have.all():
            gt_c = np.asarray(gt.gt_T_world_cam_all, np.float64)[idx, :3, 3]
            pred_c = np.asarray(result.T_world_cam, np.float64)[:, :3, 3]
            out["all_cam_ate_sim3_m"] = metrics.camera_ate(pred_c, gt_c, "sim3")
    return out


# ---------------------------------------------------------------------------------------------
# Run and write (what experiments/run_josh.py calls)
# ---------------------------------------------------------------------------------------------


def final_losses(diagnostics: dict[str, Any]) -> dict[str, float]:
    """The loss terms at the final parameters, by name (from `final_terms`, `curve_columns`)."""
    if "final_terms" not in diagnostics:
        return {}
    names = [str(c) for c in np.asarray(diagnostics.get("curve_columns", []))]
    values = np.asarray(diagnostics["final_terms"]).reshape(-1)
    if len(names) != values.shape[0]:
        names = [f"term{i}" for i in range(values.shape[0])]
    return {n: float(v) for n, v in zip(names, values, strict=True)}


DEFAULT_WRITERS = ("npz", "glb", "amass", "tum", "mp4")


def write_outputs(out_dir: str, stem: str, result: Result, body_model, writers: Sequence[str], *,
                  metrics: dict | None = None, vertices: str = "float16") -> dict[str, str]:
    """Write the files `writers` names (docs/outputs.md) for one clip; returns {kind: path}."""
    kinds = set(writers)
    base = os.path.join(out_dir, stem)
    written = export.write_all(out_dir, stem, result, metrics=metrics, npz="npz" in kinds,
                               glb=False, ply="ply" in kinds, tum="tum" in kinds,
                               mp4="mp4" in kinds, vertices=vertices)
    if "glb" in kinds:
        written["glb"] = gltf.write_animated_glb(base + ".glb", result, body_model)
    if "static_glb" in kinds:
        written["static_glb"] = export.write_glb(base + ".static.glb", result)
    if "amass" in kinds:
        written |= amass.write_amass(out_dir, stem, result, body_model)
    if "viewer" in kinds:
        viewer.record_html(base + ".viewer.html", result, body_model)
        written["viewer"] = base + ".viewer.html"
    return written


def run_and_write(items: Sequence[tuple[str, Any, Any]], config, *, out_dir: str,
                  body_model_path: str | None = None,
                  writers: Sequence[str] = DEFAULT_WRITERS, vertices: str = "float16",
                  log: Callable[..., None] = _noop) -> list[dict[str, Any]]:
    """Reconstruct (one clip, or one batch) and write every output; one summary per clip.

    Args:
      items: (stem, clip, gt or None) per clip; outputs are `{out_dir}/{stem}.*`.
      config: JOSH config.
      out_dir: output folder (created; only files named after the stems are written).
      body_model_path: SMPL file for clips that are not on the built-in body.
      writers: which files to write (`write_outputs`; docs/outputs.md).
      vertices: how the result .npz stores vertices ("float16", "float32", "none").
      log: progress printer.

    Returns:
      Per clip: stem, timings, final loss terms, NaN flag, metrics (when GT), written paths.
      Also written as `{out_dir}/summary.json`.
    """
    models = {}

    def model_for(clip):
        key = (str(clip.body_model), body_model_path)
        if key not in models:
            models[key] = resolve_body_model(clip.body_model, body_model_path)
        return models[key]

    clips = [c for _, c, _ in items]
    log(f"[reconstruct] {len(clips)} clip(s)")
    if len(clips) == 1:
        outs = [reconstruct(clips[0], config, model_for(clips[0]), log=log)]
    else:
        body_names = {str(c.body_model) for c in clips}
        if len(body_names) != 1:
            raise ValueError(f"--clips: expected one body model for the batch, found {body_names}")
        outs = reconstruct_many(clips, config, model_for(clips[0]), log=log)

    summaries = []
    for (stem, clip, gt), (result, info) in zip(items, outs, strict=True):
        t = time.perf_counter()
        metrics = evaluate(result, gt, model_for(clip)) if gt is not None else None
        eval_s = time.perf_counter() - t
        t = time.perf_counter()
        written = write_outputs(out_dir, stem, result, model_for(clip), writers, metrics=metrics,
                                vertices=vertices)
        write_s = time.perf_counter() - t
        diag = info["diagnostics"]
        summary = {
            "clip": stem,
            "timings": {**info["timings"], "evaluate_s": eval_s, "write_s": write_s},
            "final_losses": final_losses(diag),
            "nan": bool(np.asarray(diag.get("nan", False))),
            "diverged": bool(np.asarray(diag.get("diverged", False))),
            "iters_run": np.asarray(diag.get("iters_run", [])).tolist(),
            "metrics": metrics,
            "outputs": written,
        }
        log(f"  [write] {stem}: {', '.join(sorted(written))} in {write_s:.2f} s")
        summaries.append(summary)
    export.write_json(os.path.join(out_dir, "summary.json"), {"clips": summaries})
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
