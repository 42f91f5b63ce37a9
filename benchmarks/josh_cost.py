r"""The cost of one optimizer iteration on the reference clip: FLOPs, bytes, time, per term.

    python -m benchmarks.josh_cost                       # default config, CPU
    python -m benchmarks.josh_cost --config.max_matches_per_pair=0

For each stage, one iteration's gradient (`jax.value_and_grad` of `loss_terms`, the body of the
solver's scan) and its parts (the camera chain + pair term alone; the human terms = the rest) are
compiled on their own; XLA's cost analysis of each compiled program gives its FLOPs and the bytes it
reads and writes, and each program is timed (median of `--repeats` calls after a warm-up). The
figures per match (padded matches, E x M), per contact entry and per body (tracks x frames) divide
those counts. The bandwidth floor of one iteration is bytes / bandwidth, for the bandwidths listed
in `BANDWIDTH_GB_S` (nominal figures, not measured). See docs/performance.md. Writes
`benchmarks/results/josh_cost_<device>.json`.
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import ml_collections
from absl import flags
from ml_collections import config_flags

from benchmarks.common import write_result
from experiments import cli
from josh_jax import optimize as optimize_lib
from josh_jax import pipeline
from josh_jax import prepare as prepare_lib
from josh_jax.clip import load_any

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(cli.CONFIGS, "josh.py") + ":default", "JOSH config.", lock_config=False)
_CLIP = flags.DEFINE_string(
    "clip", os.path.join(cli.REPO, "..", "shared", "reference", "josh_synthetic_clip.npz"),
    "Reference-layout clip.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per program (median reported).")

# Nominal peak memory bandwidths (GB/s) for the floor: HBM3 / HBM3e data sheets; the CPU figure is
# a typical two-channel DDR4 server share, an assumption (not measured on this machine).
BANDWIDTH_GB_S = {"cpu_2core": 20.0, "h100_sxm": 3350.0, "h200": 4800.0}


def _cost(compiled) -> tuple[float, float]:
    """(FLOPs, bytes accessed) of a compiled program from XLA's cost analysis."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax: one dict per device
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def _time_s(compiled, *args, repeats: int) -> float:
    jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def stage_programs(problem, config, stage: int):
    """{part: function of params} for one iteration of a stage: the whole gradient, the pair part."""
    params = optimize_lib.init_params(problem, config)
    constants = optimize_lib.stage_constants(
        problem, stage, optimize_lib.focal_of(params, problem.cameras))

    def total(p):
        return optimize_lib.loss_terms(p, problem, config, stage, constants)[0]

    def pair(p):
        T_world_cam, focal, depth_scale = optimize_lib.camera_forward(p, problem, config)
        return optimize_lib.pair_loss(problem, config, stage, T_world_cam, focal, depth_scale,
                                      constants)

    return params, {"iteration": jax.value_and_grad(total), "pair": jax.value_and_grad(pair)}


def main(argv):
    del argv
    config = _CONFIG.value
    clip, _ = load_any(_CLIP.value)
    model = pipeline.resolve_body_model(clip.body_model, cli.body_model_path(clip.body_model))
    problem = jax.block_until_ready(prepare_lib.prepare(clip, config, model))
    frozen = ml_collections.FrozenConfigDict(config)
    num_pairs, matches_per_pair = problem.matches.conf.shape
    sizes = {
        "matches_padded": float(num_pairs * matches_per_pair),
        "matches_used": float((problem.matches.conf > 0).sum()),
        "contact_entries_padded": float(problem.contacts.conf.size),
        "bodies_padded": float(problem.tracks.valid.size),
        "body_vertices": float(problem.body_vertex_ids.shape[-1]),
    }
    figures = {f"num_{k}": v for k, v in sizes.items()}
    for stage in (1, 2):
        params, programs = stage_programs(problem, frozen, stage)
        parts = {}
        for part, fn in programs.items():
            compiled = jax.jit(fn).lower(params).compile()
            flops, nbytes = _cost(compiled)
            parts[part] = (flops, nbytes, _time_s(compiled, params, repeats=_REPEATS.value))
        parts["human"] = tuple(max(a - b, 0.0) for a, b in zip(parts["iteration"], parts["pair"],
                                                                strict=True))
        for part, (flops, nbytes, seconds) in parts.items():
            key = f"stage{stage}_{part}"
            figures[f"{key}_mflop"] = flops / 1e6
            figures[f"{key}_mbytes"] = nbytes / 1e6
            figures[f"{key}_ms"] = 1000.0 * seconds
        flops, nbytes, seconds = parts["iteration"]
        figures[f"stage{stage}_gflop_per_s"] = flops / seconds / 1e9
        figures[f"stage{stage}_gbytes_per_s"] = nbytes / seconds / 1e9
        pf, pb, _ = parts["pair"]
        figures[f"stage{stage}_pair_flop_per_match"] = pf / sizes["matches_padded"]
        figures[f"stage{stage}_pair_bytes_per_match"] = pb / sizes["matches_padded"]
        hf, hb, _ = parts["human"]
        figures[f"stage{stage}_human_flop_per_body"] = hf / sizes["bodies_padded"]
        figures[f"stage{stage}_human_bytes_per_body"] = hb / sizes["bodies_padded"]
        for device, gb_s in BANDWIDTH_GB_S.items():
            figures[f"stage{stage}_floor_us_{device}"] = 1e6 * nbytes / (gb_s * 1e9)
    write_result("josh_cost", figures, notes=(
        "Timed on a shared, loaded 2-core machine (other agents running): times are noisy upper "
        "bounds. FLOPs/bytes are XLA's static cost analysis of each compiled program (bytes: every "
        "operand and result of every fused op, so an upper bound on DRAM traffic). Floors use "
        "nominal bandwidths, see BANDWIDTH_GB_S."), bandwidth_gb_s=BANDWIDTH_GB_S,
        load_average_1min=os.getloadavg()[0])


if __name__ == "__main__":
    cli.run(main)
