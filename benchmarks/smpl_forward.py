r"""Benchmark: SMPL-topology LBS forward and forward+grad, jit(vmap(lbs)) vs smplx (torch).

    python -m benchmarks.smpl_forward                     # batch 1, 16, 64, 256 on the mannequin
    python -m benchmarks.smpl_forward --batch_sizes=64 --repeats=50
    taskset -c 0 python -m benchmarks.smpl_forward --name=smpl_forward_1core   # one core each

Times `jax.jit(jax.vmap(lbs))` on the built-in body (axis-angle input, as smplx's default), forward
and value_and_grad of sum(v^2) + sum(J^2) w.r.t. betas, pose and transl. Compile time and per-call
time are separate figures. When torch and smplx import, smplx.SMPL runs on the same model in the
same process (the mannequin written to an smplx-layout .npz in a temporary folder; smplx.SMPL only
reads pickles, so the npz is handed over as its `data_struct`) and outputs are compared. The four
calls (jax forward and forward+grad, smplx forward and forward+grad) are timed interleaved,
round after round, each blocked on, so that a machine whose load changes during the run slows both
sides alike; the figures are medians over --repeats rounds (wall clock, `*_ms`) and the median
process CPU time (`*_cpu_ms`, all threads, less sensitive to other processes' load). Speed-ups are
ratios of the medians. smplx runs on the CPU, so on a GPU only the parity figure is compared and no
speed-up is written. Results go to benchmarks/results/smpl_forward_<device>.json.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import body_models as bm
from benchmarks.common import write_result

_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16", "64", "256"], "Batch sizes to time.")
_REPEATS = flags.DEFINE_integer("repeats", 30, "Interleaved timing rounds (medians reported).")
_NAME = flags.DEFINE_string(
    "name",
    "smpl_forward",
    "Result name: writes <out_dir>/<name>_<device>.json (e.g. for a pinned run).",
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir", os.path.join(os.path.dirname(__file__), "results"), "Output folder."
)


def _inputs(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, 10)).astype(np.float32),
        (0.3 * rng.normal(size=(batch, 24, 3))).astype(np.float32),
        rng.normal(size=(batch, 3)).astype(np.float32),
    )


def _interleaved(fns: dict, repeats: int) -> dict:
    """{name: (median wall ms, median process-CPU ms)}, every fn called once per round."""
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: (1000.0 * float(np.median(wall[k])), 1000.0 * float(np.median(cpu[k]))) for k in fns}


def _jax_fns(model):
    def forward(betas, pose, transl):
        fn = lambda b, p, t: bm.lbs(model, b, p[0], p[1:], t, rep="axis_angle")
        return jax.vmap(fn)(betas, pose, transl)

    def loss(betas, pose, transl):
        out = forward(betas, pose, transl)
        return jnp.sum(out.vertices**2) + jnp.sum(out.joints**2)

    return jax.jit(forward), jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def _compile_jax(model, batch, figures):
    """{"fwd": call, "grad": call} of the compiled jax functions on this batch (compile timed)."""
    fwd, grad = _jax_fns(model)
    args = [jnp.asarray(x) for x in _inputs(batch)]
    calls = {}
    for name, fn in (("fwd", fwd), ("grad", grad)):
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        figures[f"jax_{name}_compile_s_b{batch}"] = time.perf_counter() - t0
        calls[name] = lambda c=compiled: jax.block_until_ready(c(*args))
    return calls


def _smplx_model(model):
    """smplx.SMPL on the same body, or None when torch/smplx are missing."""
    try:
        import smplx
        import torch
        from smplx.utils import Struct
    except ImportError:
        return None, None
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use (taskset)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mannequin.npz")
        bm.save_model_npz(model, path)
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
    smpl = smplx.SMPL(model_path=path, data_struct=Struct(**data), num_betas=10)
    return smpl, torch


def _smplx_calls(smpl, torch, batch):
    """{"fwd": call, "grad": call} of smplx on this batch."""
    betas, pose, transl = (torch.from_numpy(x) for x in _inputs(batch))
    pose = pose.reshape(batch, 72)

    def forward():
        with torch.no_grad():
            return smpl(
                betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=transl
            )

    def grad():
        b, p, t = (x.clone().requires_grad_(True) for x in (betas, pose, transl))
        out = smpl(betas=b, global_orient=p[:, :3], body_pose=p[:, 3:], transl=t)
        loss = (out.vertices**2).sum() + (out.joints[:, :24] ** 2).sum()
        loss.backward()
        return loss

    return {"fwd": forward, "grad": grad}


def main(argv):
    del argv
    figures = {
        "load_avg_1min_start": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
    }
    model = bm.mannequin()
    smpl, torch = _smplx_model(model)
    on_cpu = jax.default_backend() == "cpu"
    for batch in [int(b) for b in _BATCH_SIZES.value]:
        jax_calls = _compile_jax(model, batch, figures)
        calls = {f"jax_{k}": c for k, c in jax_calls.items()}
        if smpl is not None:
            smplx_calls = _smplx_calls(smpl, torch, batch)
            if on_cpu:
                calls.update({f"smplx_{k}": c for k, c in smplx_calls.items()})
        times = _interleaved(calls, _REPEATS.value)
        for name, (wall_ms, cpu_ms) in times.items():
            side, kind = name.split("_")
            figures[f"{side}_{kind}_ms_b{batch}"] = wall_ms
            figures[f"{side}_{kind}_cpu_ms_b{batch}"] = cpu_ms
        line = (
            f"batch {batch:4d}: jax fwd {figures[f'jax_fwd_ms_b{batch}']:8.2f} ms "
            f"(compile {figures[f'jax_fwd_compile_s_b{batch}']:.2f} s), "
            f"fwd+grad {figures[f'jax_grad_ms_b{batch}']:8.2f} ms "
            f"(compile {figures[f'jax_grad_compile_s_b{batch}']:.2f} s)"
        )
        if smpl is not None:
            out, ref = jax_calls["fwd"](), smplx_calls["fwd"]()
            diff = max(
                np.abs(np.asarray(out.vertices) - ref.vertices.numpy()).max(),
                np.abs(np.asarray(out.joints) - ref.joints[:, :24].numpy()).max(),
            )
            figures[f"max_abs_diff_vs_smplx_m_b{batch}"] = float(diff)
            line += f" | max |diff| vs smplx {diff:.1e} m"
        if smpl is not None and on_cpu:
            for name in ("fwd", "grad"):
                ratio = figures[f"smplx_{name}_ms_b{batch}"] / figures[f"jax_{name}_ms_b{batch}"]
                figures[f"speedup_vs_smplx_{name}_b{batch}"] = ratio
            line += (
                f" | smplx fwd {figures[f'smplx_fwd_ms_b{batch}']:8.2f} ms, fwd+grad "
                f"{figures[f'smplx_grad_ms_b{batch}']:8.2f} ms | speed-up fwd "
                f"{figures[f'speedup_vs_smplx_fwd_b{batch}']:.2f}x, fwd+grad "
                f"{figures[f'speedup_vs_smplx_grad_b{batch}']:.2f}x"
            )
        print(line, flush=True)
    figures["load_avg_1min_end"] = os.getloadavg()[0]
    write_result(_NAME.value, figures, out_dir=_OUT_DIR.value)


if __name__ == "__main__":
    app.run(main)
