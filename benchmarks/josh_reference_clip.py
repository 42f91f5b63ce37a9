r"""JOSH on the reference synthetic clip: compile / run time, memory and accuracy vs the reference.

    python -m benchmarks.josh_reference_clip                       # default config, CPU
    python -m benchmarks.josh_reference_clip --config=experiments/configs/josh.py:fast

Writes `benchmarks/results/josh_reference_clip_<device>.json` ({name, device, date, command,
figures}) and the result `.npz` next to it (git-ignored), and prints the figures. Timings: the
optimizer is compiled ahead of time (`jit(...).lower(problem).compile()`, `compile_s`) and then
run once (`run_s`, blocked on the output). `ms_per_iter_stage1` is measured on a second compiled
program with stage 2 switched off; `ms_per_iter_stage2` is the remainder of `run_s` divided by the
stage-2 iterations. `run_s_all_matches` (and its `compile_s_all_matches`) is the same run with
`max_matches_per_pair=0`: every match kept, the reference's work. `wall_cold_s` and `wall_warm_s`
are what a user waits for the main job's steps (start, prepare, compile, run, write every output):
`python -m experiments.run_josh` on this clip with this config in a new process, first with an
empty compilation cache, then again in a second process that reads that cache;
`wall_{cold,warm}_<stage>_s` split them by run_josh's log timestamps (start = process start and
imports, load, prepare, optimize = compile or cache read + run, result, write = evaluation +
writers, end).
Accuracy uses the reference result JSON's definitions on the 21 keyframes
(`../shared/reference/README.md`), and the reference's own numbers are read from
`../shared/reference/josh_reference_result_pipeline.json` (prefixed `reference_`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import ml_collections
from absl import flags
from ml_collections import config_flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli
from josh_jax import optimize as optimize_lib
from josh_jax import pipeline
from josh_jax import prepare as prepare_lib
from josh_jax.clip import load_any
from josh_jax.evaluate import evaluate
from josh_jax.io.result_npz import save_result_npz
from josh_jax.result import make_result

_SHARED = os.path.normpath(os.path.join(cli.REPO, "..", "shared", "reference"))

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(cli.CONFIGS, "josh.py") + ":default",
    "JOSH config (default: the reference pipeline's values).", lock_config=False)
_CLIP = flags.DEFINE_string("clip", os.path.join(_SHARED, "josh_synthetic_clip.npz"),
                            "Reference-layout clip.")
_REFERENCE_JSON = flags.DEFINE_string(
    "reference_json", os.path.join(_SHARED, "josh_reference_result_pipeline.json"),
    "The reference run's result JSON.")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON and the result .npz go.")
_WALL = flags.DEFINE_boolean(
    "wall", True, "Also time the main job (run_josh) in new processes, cold and with the cache.")
_ALL_MATCHES = flags.DEFINE_boolean(
    "all_matches", True, "Also time the run with max_matches_per_pair=0 (the reference's work).")
_STAGE_SPLIT = flags.DEFINE_boolean(
    "stage_split", True, "Also compile a stage-1-only program to split ms per iteration by stage.")


NOTES = ("Measured on a shared 2-core machine with other jobs running (see the load averages): "
         "wall times are noisy upper bounds. wall_cold_s / wall_warm_s include the process start "
         "and JAX import, prepare, compile (cold) or cache read (warm), run and every default "
         "writer (npz, glb, amass, tum, mp4).")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reference_figures(path: str) -> dict[str, float]:
    """The reference's figures under our names (definitions in the reference README)."""
    with open(path) as f:
        ref = json.load(f)
    m, t = ref["metrics"], ref["timing"]
    return {
        "reference_run_s": float(t["sparse_scene_optimizer_s"]),
        # CPU seconds of the reference's two stages (wall x cores used, measured on an idle
        # machine: other processes used ~0.02-0.06 cores).
        "reference_run_cpu_s": sum(float(st["wall_s"]) * float(st["own_cpu_cores"])
                                   for st in t["stages"].values()),
        "reference_ms_per_iter_stage1": float(t["stages"]["coarse"]["per_iter_ms_mean"]),
        "reference_ms_per_iter_stage2": float(t["stages"]["fine"]["per_iter_ms_mean"]),
        "reference_peak_rss_mb": float(t["peak_rss_optimizer_mb"]),
        "reference_wa_mpjpe_mm": float(m["wa_mpjpe_sim3_mm"]),
        "reference_w_mpjpe_mm": float(m["w_mpjpe_first_frame_aligned_mm"]),
        "reference_human_scale_err": abs(1.0 - float(m["human_sim3_scale_pred_to_gt"])),
        "reference_focal_err": abs(float(m["focal_final_rel_err"])),
        "reference_cam_ate_sim3_m": float(m["cam_ate_sim3_m"]),
    }


def main_job_wall_s(clip_path: str, config: ml_collections.ConfigDict) -> dict[str, float]:
    """Wall seconds of `experiments.run_josh` on the clip: cold cache, then warm (second process)."""
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = os.path.join(tmp, "config.json")
        with open(config_path, "w") as f:
            f.write(config.to_json())
        cmd = [sys.executable, "-m", "experiments.run_josh", f"--clip={clip_path}",
               f"--compilation_cache={os.path.join(tmp, 'xla')}",
               f"--config={os.path.join(cli.CONFIGS, 'josh.py')}:{config.preset}"]
        for key, value in _flat(config).items():  # the flag overrides that make this config
            cmd.append(f"--config.{key}={value}")
        cmd.append("--alsologtostderr")  # the stage lines, timestamped (`main_job_stages`)
        for label in ("cold", "warm"):
            launched, t = time.time(), time.perf_counter()
            out = f"--out={os.path.join(tmp, 'out_' + label)}"  # a fresh folder: no --overwrite
            done = subprocess.run(cmd + [out], cwd=cli.REPO, capture_output=True, text=True)
            figures[f"wall_{label}_s"] = time.perf_counter() - t
            if done.returncode != 0:
                raise RuntimeError(f"run_josh failed ({label}):\n{done.stderr[-3000:]}")
            stages = main_job_stages(done.stderr, launched, launched + figures[f"wall_{label}_s"])
            figures.update({f"wall_{label}_{k}_s": v for k, v in stages.items()})
    return figures


# The log line that ends each stage of run_josh (in order); a stage lasts from the previous one.
_STAGE_ENDS = (("start", "compilation cache:"), ("load", "[load] done"),
               ("prepare", "[prepare] 1 clip(s) in"), ("optimize", "[optimize] 1 clip(s) in"),
               ("result", "[result]"), ("write", "[write]"))


def main_job_stages(log: str, launched: float, finished: float) -> dict[str, float]:
    """Seconds per stage of one run_josh process from its absl log timestamps.

    `start` is process start and imports (launch to the first log line), `optimize` is compile or
    cache read plus the run, `write` is evaluation plus every writer, `end` the rest (summary).
    """
    day = time.strftime("%Y-%m-%d", time.localtime(launched))
    stamps, i = {}, 0
    for line in log.splitlines():
        if i < len(_STAGE_ENDS) and _STAGE_ENDS[i][1] in line and line[:1] in "IW":
            clock = line[6:21]  # absl: "I1205 08:05:44.996683 ..."
            stamps[_STAGE_ENDS[i][0]] = time.mktime(time.strptime(
                f"{day} {clock[:8]}", "%Y-%m-%d %H:%M:%S")) + float("0" + clock[8:])
            i += 1
    out, previous = {}, launched
    for name, _ in _STAGE_ENDS:
        if name in stamps:
            out[name] = stamps[name] - previous
            previous = stamps[name]
    out["end"] = finished - previous
    return out


def _flat(config, prefix="") -> dict[str, object]:
    """Scalar leaves of a config as dotted names (lists and tuples skipped: presets set those)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, (bool, int, float, str)) and key != "preset":
            out[name] = value
    return out


def main(argv):
    del argv
    config = _CONFIG.value
    device = jax.default_backend()
    clip, gt = load_any(_CLIP.value)
    model = pipeline.resolve_body_model(clip.body_model, cli.body_model_path(clip.body_model))
    print(f"clip: {clip.describe()}")
    print(f"config: stage1 {config.stage1.iters} it @ {config.stage1.lr}, stage2 "
          f"{config.stage2.iters} it @ {config.stage2.lr} (preset {config.preset})")

    wall = {}
    if _WALL.value:  # first: a failing run_josh shows before the long measurements
        wall = main_job_wall_s(_CLIP.value, config)
        wall["load_average_1min_after_wall"] = os.getloadavg()[0]

    problem, info, solution, figures = _timed_run(clip, config, model)
    figures.update(_per_iteration_figures(problem, config, figures["run_s"]))
    if _ALL_MATCHES.value:
        figures.update(_all_matches_figures(clip, config, model))

    t = time.perf_counter()
    result = make_result(clip, problem, solution, model, config, info=info,
                         curve_columns=optimize_lib.CURVE_COLUMNS)
    figures["assemble_s"] = time.perf_counter() - t
    figures["peak_rss_mb"] = peak_rss_mb()
    metrics = evaluate(result, gt, model)
    figures.update(_accuracy_figures(metrics, info, solution))
    figures.update(reference_figures(_REFERENCE_JSON.value))
    figures["speedup_vs_reference_run"] = figures["reference_run_s"] / figures["run_s"]
    figures.update(wall)

    os.makedirs(_OUT_DIR.value, exist_ok=True)
    name = "josh_reference_clip"
    save_result_npz(os.path.join(_OUT_DIR.value, f"{name}_{device}.npz"), result)
    write_result(name, figures, out_dir=_OUT_DIR.value, tag=device,
                 config=json.loads(config.to_json()), metrics=metrics, notes=NOTES)


def _timed_run(clip, config, model):
    """(problem, info, solution, figures): prepare, compile and run, each timed."""
    t = time.perf_counter()
    problem, info = prepare_lib.prepare(clip, config, model, return_info=True)
    problem = jax.block_until_ready(problem)
    prepare_s = time.perf_counter() - t

    frozen_config = ml_collections.FrozenConfigDict(config)  # hashable: a static jit argument
    t = time.perf_counter()
    compiled = optimize_lib.optimize_jit.lower(problem, frozen_config).compile()
    compile_s = time.perf_counter() - t
    load_before = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    solution = jax.block_until_ready(compiled(problem))
    run_s = time.perf_counter() - t
    run_cpu_s = time.process_time() - cpu
    # CPU seconds used by this process during the run: on a shared machine (other processes
    # competing for the cores) wall time overstates the cost, CPU time much less so.
    figures = {"prepare_s": prepare_s, "compile_s": compile_s, "run_s": run_s,
               "run_cpu_s": run_cpu_s, "run_own_cpu_cores": run_cpu_s / run_s,
               "load_average_1min_before_run": load_before}
    return problem, info, solution, figures


def _per_iteration_figures(problem, config, run_s: float) -> dict[str, float]:
    """ms per iteration of each stage (`--stage_split`: stage 1 timed alone; else the mean)."""
    it1, it2 = int(config.stage1.iters), int(config.stage2.iters)
    if not (_STAGE_SPLIT.value and it1 > 0):
        per_iter = 1000.0 * run_s / (it1 + it2)
        return {"ms_per_iter_stage1": per_iter, "ms_per_iter_stage2": per_iter}
    c1 = config.copy_and_resolve_references()
    c1.unlock()
    c1.stage2.iters = 0
    stage1_only = ml_collections.FrozenConfigDict(c1)
    compiled1 = optimize_lib.optimize_jit.lower(problem, stage1_only).compile()
    t = time.perf_counter()
    jax.block_until_ready(compiled1(problem))
    stage1_s = time.perf_counter() - t
    return {"ms_per_iter_stage1": 1000.0 * stage1_s / it1,
            "ms_per_iter_stage2": (1000.0 * max(run_s - stage1_s, 0.0) / it2) if it2 else 0.0}


def _all_matches_figures(clip, config, model) -> dict[str, float]:
    """Compile and run times with every match kept (`max_matches_per_pair = 0`)."""
    c_all = config.copy_and_resolve_references()
    c_all.unlock()
    c_all.max_matches_per_pair = 0
    problem_all, info_all = prepare_lib.prepare(clip, c_all, model, return_info=True)
    problem_all = jax.block_until_ready(problem_all)
    figures = {}
    t = time.perf_counter()
    compiled_all = optimize_lib.optimize_jit.lower(
        problem_all, ml_collections.FrozenConfigDict(c_all)).compile()
    figures["compile_s_all_matches"] = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(compiled_all(problem_all))
    figures["run_s_all_matches"] = time.perf_counter() - t
    figures["num_matches_all"] = float(info_all.num_matches)
    return figures


def _accuracy_figures(metrics: dict, info, solution) -> dict[str, float]:
    """The headline accuracy figures of `evaluate`'s metrics, and the problem's sizes."""
    return {
        "wa_mpjpe_mm": metrics["wa_mpjpe_sim3_mm"],
        "w_mpjpe_mm": metrics["w_mpjpe_first_frame_aligned_mm"],
        "human_scale_err": metrics["human_scale_err"],
        "focal_err": metrics["focal_err"],
        "cam_ate_sim3_m": metrics["cam_ate_sim3_m"],
        "pa_mpjpe_mm": metrics["pa_mpjpe_mm"],
        "num_matches": float(info.num_matches),
        "num_contact_entries": float(sum(len(c.image) for c in info.contacts)),
        "nan": float(bool(solution.diagnostics.nan)),
    }


if __name__ == "__main__":
    cli.run(main)
