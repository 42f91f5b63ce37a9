r"""Benchmark: SMPL-topology LBS forward and forward+grad, jit(vmap(lbs)) vs smplx (torch).

    python -m benchmarks.smpl_forward                     # batch 1, 16, 64, 256 on the mannequin
    python -m benchmarks.smpl_forward --batch_sizes=64 --repeats=20
    taskset -c 0 python -m benchmarks.smpl_forward --name=smpl_forward_1core   # one core each

Times `jax.jit(jax.vmap(lbs))` on the built-in body (axis-angle input, as smplx's default), forward
and value_and_grad of sum(v^2) + sum(J^2) w.r.t. betas, pose and transl. Compile time and per-call
time (median of --repeats calls after compile, each blocked on) are separate figures. When torch and
smplx import, smplx.SMPL is timed on the same model in the same run (the mannequin written to an
smplx-layout .npz in a temporary folder; smplx.SMPL only reads pickles, so the npz is handed over as
its `data_struct`), outputs are compared, and jax/smplx speed ratios are printed. Results go to
benchmarks/results/smpl_forward_<device>.json.
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
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per measurement (median reported).")
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


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _jax_fns(model):
    def forward(betas, pose, transl):
        fn = lambda b, p, t: bm.lbs(model, b, p[0], p[1:], t, rep="axis_angle")
        return jax.vmap(fn)(betas, pose, transl)

    def loss(betas, pose, transl):
        out = forward(betas, pose, transl)
        return jnp.sum(out.vertices**2) + jnp.sum(out.joints**2)

    return jax.jit(forward), jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def _time_jax(model, batch, repeats, figures):
    fwd, grad = _jax_fns(model)
    args = [jnp.asarray(x) for x in _inputs(batch)]
    for name, fn in (("fwd", fwd), ("grad", grad)):
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        figures[f"jax_{name}_compile_s_b{batch}"] = time.perf_counter() - t0
        jax.block_until_ready(compiled(*args))  # warm-up
        figures[f"jax_{name}_ms_b{batch}"] = _median_ms(
            lambda c=compiled: jax.block_until_ready(c(*args)), repeats
        )
    return fwd(*args)


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


def _time_smplx(smpl, torch, batch, repeats, figures):
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

    for name, fn in (("fwd", forward), ("grad", grad)):
        fn()  # warm-up
        figures[f"smplx_{name}_ms_b{batch}"] = _median_ms(fn, repeats)
    return forward()


def main(argv):
    del argv
    figures = {
        "load_avg_1min_start": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
    }
    model = bm.mannequin()
    smpl, torch = _smplx_model(model)
    batches = [int(b) for b in _BATCH_SIZES.value]
    for batch in batches:
        out = _time_jax(model, batch, _REPEATS.value, figures)
        line = (
            f"batch {batch:4d}: jax fwd {figures[f'jax_fwd_ms_b{batch}']:8.2f} ms "
            f"(compile {figures[f'jax_fwd_compile_s_b{batch}']:.2f} s), "
            f"fwd+grad {figures[f'jax_grad_ms_b{batch}']:8.2f} ms "
            f"(compile {figures[f'jax_grad_compile_s_b{batch}']:.2f} s)"
        )
        if smpl is not None:
            ref = _time_smplx(smpl, torch, batch, _REPEATS.value, figures)
            diff = max(
                np.abs(np.asarray(out.vertices) - ref.vertices.numpy()).max(),
                np.abs(np.asarray(out.joints) - ref.joints[:, :24].numpy()).max(),
            )
            figures[f"max_abs_diff_vs_smplx_m_b{batch}"] = float(diff)
            for name in ("fwd", "grad"):
                ratio = figures[f"smplx_{name}_ms_b{batch}"] / figures[f"jax_{name}_ms_b{batch}"]
                figures[f"speedup_vs_smplx_{name}_b{batch}"] = ratio
            line += (
                f" | smplx fwd {figures[f'smplx_fwd_ms_b{batch}']:8.2f} ms, fwd+grad "
                f"{figures[f'smplx_grad_ms_b{batch}']:8.2f} ms | speed-up fwd "
                f"{figures[f'speedup_vs_smplx_fwd_b{batch}']:.2f}x, fwd+grad "
                f"{figures[f'speedup_vs_smplx_grad_b{batch}']:.2f}x | max |diff| {diff:.1e} m"
            )
        print(line, flush=True)
    figures["load_avg_1min_end"] = os.getloadavg()[0]
    write_result(_NAME.value, figures, out_dir=_OUT_DIR.value)


if __name__ == "__main__":
    app.run(main)
