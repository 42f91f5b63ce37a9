"""Two `jax.distributed` processes on localhost train the micro JOSH3R with the jit-mesh step,
save, are "killed", restore and finish; the same file is the worker
(`python -m tests.test_distributed_train <process_id> <num_processes> <port> <root>`).

Each worker has one CPU device (a global mesh of 2 over 2 processes, gloo collectives) and:
1. runs 4 steps uninterrupted (checkpoint every 2 steps, async saves);
2. runs the same config in a second workdir, stopped after 3 steps (last checkpoint: step 2);
3. resumes that workdir to step 4 (restores the global replicated state and iterator state);
and prints one `RESULT {json}` line with parameter checksums and losses. The test checks that
both processes hold the same parameters, that the resumed run equals the uninterrupted one, and
that `metrics.jsonl` has one record per step (only process 0 writes it). One compile per process (the
three runs share a per-process persistent compilation cache). Workers are killed with SIGKILL at
a hard deadline (after `jax.distributed.initialize`, JAX catches SIGTERM).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE_S = 1500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_save_restore(tmp_path):
    port, n = _free_port(), 2
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    logs = [open(tmp_path / f"worker{p}.log", "w+") for p in range(n)]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.test_distributed_train", str(p), str(n), str(port),
         str(tmp_path)], cwd=ROOT, env=env, stdout=logs[p], stderr=subprocess.STDOUT)
        for p in range(n)]
    try:
        for p in procs:
            p.wait(timeout=DEADLINE_S)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for p, log in enumerate(logs):
        log.seek(0)
        text = log.read()
        assert procs[p].returncode == 0, f"worker {p} exit {procs[p].returncode}:\n{text[-4000:]}"
        line = [ln for ln in text.splitlines() if ln.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT "):]))
    r0, r1 = results
    assert r0["device_count"] == 2 and r0["local_device_count"] == 1
    assert r0["resumed_from"] == 2 and r0["final_step"] == 4
    # Replicated state: both processes hold the same parameters.
    assert r0["full_checksums"] == r1["full_checksums"]
    # Killed after 3 steps, resumed from the step-2 checkpoint: the same run as uninterrupted.
    for a, b in zip(r0["full_checksums"], r0["resumed_checksums"], strict=True):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (a, b)
    assert r0["full_losses"] == pytest.approx(r0["resumed_losses"], rel=1e-5)
    # One record per step: only process 0 writes metrics (both share the folder here).
    assert r0["metrics_steps"] == [1, 2, 3, 4]


def _worker(process_id: int, num_processes: int, port: int, root: str) -> None:
    import jax  # noqa: PLC0415 (the worker configures JAX before first use)

    jax.config.update("jax_num_cpu_devices", 1)
    jax.config.update("jax_compilation_cache_dir", os.path.join(root, f"cache{process_id}"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=num_processes, process_id=process_id)
    import numpy as np  # noqa: PLC0415

    import body_models  # noqa: PLC0415
    from experiments.configs import josh3r_train  # noqa: PLC0415
    from tests import test_josh3r_train as fixtures  # noqa: PLC0415
    from trainers import dataset as dataset_lib  # noqa: PLC0415
    from trainers import train  # noqa: PLC0415

    body_file = os.path.join(ROOT, "tests", "data", "synthetic_smpl_neutral.npz")
    body = body_models.load_model(body_file)
    pairs = dataset_lib.make_pair_dataset(
        [fixtures.make_sequence(body, 0), fixtures.make_sequence(body, 1)], body, min_gap=3,
        max_gap=6)
    config = josh3r_train.get_config("micro")
    config.unlock()
    config.training.update(dict(
        seed=0, batch_size=4, num_steps=4, learning_rate=3e-3, backbone_learning_rate=1e-3,
        warmup_steps=1, use_dropout=False, parallel="jit", checkpoint_every=2, checkpoint_keep=2,
        log_every=100, body_model_path=body_file, async_checkpoint=True))
    config.lock()

    def checksums(state):
        return [float(np.asarray(x, np.float64).sum())
                for x in jax.tree.leaves(jax.device_get(state.params))]

    def losses(workdir):
        return [r["loss"] for r in train.read_metrics(workdir)]

    full_dir, killed_dir = os.path.join(root, "full"), os.path.join(root, "killed")
    full = train.run(config, full_dir, dataset=pairs)
    train.run(config, killed_dir, dataset=pairs, stop_after=3)
    steps = sorted(int(s) for s in os.listdir(os.path.join(killed_dir, "checkpoints"))
                   if s.isdigit())
    resumed = train.run(config, killed_dir, dataset=pairs)
    result = dict(
        device_count=jax.device_count(), local_device_count=jax.local_device_count(),
        resumed_from=steps[-1], final_step=int(jax.device_get(resumed.step)),
        full_checksums=checksums(full), resumed_checksums=checksums(resumed),
        full_losses=losses(full_dir), resumed_losses=losses(killed_dir),
        metrics_steps=[r["step"] for r in train.read_metrics(killed_dir)])
    print("RESULT " + json.dumps(result), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
