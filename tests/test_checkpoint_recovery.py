"""Checkpoints that recover (issue 11 item 5): a damaged newest step (truncated array file, empty
step folder, unreadable metadata) is skipped with a logged reason and the newest step that
restores is used; a torn last line of `metrics.jsonl` is dropped with a warning. Every
checkpoint error is a one-line `InputError`. Small pytrees, one CPU device: seconds.
"""

from __future__ import annotations

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging as absl_logging

from josh_jax.errors import InputError
from trainers import checkpoint as ckpt_lib
from trainers import metrics_writer


def _state(step: int) -> dict:
    return {"w": jnp.arange(2000, dtype=jnp.float32) + step, "b": {"s": jnp.full((3,), step)}}


@pytest.fixture
def saved(tmp_path):
    """A folder with steps 1, 2, 3 (sync saves), values = step."""
    directory = str(tmp_path / "checkpoints")
    ck = ckpt_lib.Checkpointer(directory, save_every=1, keep=5, async_save=False)
    for step in (1, 2, 3):
        ck.save(step, _state(step), {"epoch": 0, "step": step})
    ck.close()
    return directory


def _restore(directory: str, caplog) -> tuple[dict, dict, str]:
    """What a resuming run does: the newest step that restores, damaged ones moved aside."""
    ck = ckpt_lib.Checkpointer(directory, save_every=1, keep=5, async_save=False)
    with caplog.at_level("WARNING"):
        restored = ck.restore_latest(ckpt_lib.abstract_like(_state(0)))
        assert restored is not None
        state, data = restored
    ck.close()
    return state, data, caplog.text


@pytest.fixture(autouse=True)
def absl_to_caplog():
    """absl logs through the stdlib logger 'absl'; let caplog see its warnings."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    yield


def _assert_step(state, data, step):
    np.testing.assert_array_equal(np.asarray(state["w"]), np.arange(2000) + step)
    assert data == {"epoch": 0, "step": step}


def test_intact_folder_restores_newest(saved, caplog):
    state, data, log = _restore(saved, caplog)
    _assert_step(state, data, 3)
    assert "skipped" not in log


def test_truncated_array_file_falls_back(saved, caplog):
    biggest = max(glob.glob(os.path.join(saved, "3", "state", "**", "d", "*"), recursive=True),
                  key=os.path.getsize)
    with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 3)
    state, data, log = _restore(saved, caplog)
    _assert_step(state, data, 2)
    assert "step 3 skipped" in log
    # The damaged step is moved aside (kept), so step 3 can be saved again.
    assert os.listdir(saved + ".damaged")[0].startswith("3-")
    ck = ckpt_lib.Checkpointer(saved, save_every=1, keep=5, async_save=False)
    assert ck.all_steps() == [1, 2]
    assert ck.save(3, _state(30), {"epoch": 0, "step": 3})
    ck.close()


def test_empty_newer_step_folder_falls_back(saved, caplog):
    os.makedirs(os.path.join(saved, "4"))
    state, data, log = _restore(saved, caplog)
    _assert_step(state, data, 3)
    assert "step 4 skipped: empty step folder" in log


@pytest.mark.parametrize("rel", ["state/_METADATA", "data/metadata"])
def test_unreadable_metadata_falls_back(saved, caplog, rel):
    with open(os.path.join(saved, "3", rel), "w") as f:
        f.write('{"torn": ')
    state, data, log = _restore(saved, caplog)
    _assert_step(state, data, 2)
    assert f"unreadable metadata {rel}" in log


def test_reader_restore_leaves_damaged_steps_in_place(saved, caplog):
    os.makedirs(os.path.join(saved, "4"))
    ck = ckpt_lib.Checkpointer(saved, save_every=1, keep=5, async_save=False)
    with caplog.at_level("WARNING"):
        state, data = ck.restore(ckpt_lib.abstract_like(_state(0)))
    ck.close()
    _assert_step(state, data, 3)
    assert "step 4 skipped" in caplog.text
    assert os.path.isdir(os.path.join(saved, "4")) and not os.path.exists(saved + ".damaged")


def test_no_step_restores_is_one_line_input_error(saved, caplog):
    for step in (1, 2, 3):
        with open(os.path.join(saved, str(step), "data", "metadata"), "w") as f:
            f.write("{")
    with pytest.raises(ckpt_lib.NoValidCheckpointError) as info:
        _restore(saved, caplog)
    assert isinstance(info.value, InputError)
    message = str(info.value)
    assert "\n" not in message and message.startswith(saved)
    assert all(f"step {s}: unreadable metadata" in message for s in (1, 2, 3))


def test_checkpoint_errors_are_one_line_input_errors(tmp_path):
    with pytest.raises(ckpt_lib.CheckpointError) as info:
        ckpt_lib.Checkpointer(str(tmp_path / "c"), save_every=0)
    assert isinstance(info.value, InputError) and "\n" not in str(info.value)
    ck = ckpt_lib.Checkpointer(str(tmp_path / "c"), save_every=1, async_save=False)
    assert ck.restore_latest(ckpt_lib.abstract_like(_state(0))) is None
    with pytest.raises(ckpt_lib.CheckpointError, match="no step folders"):
        ck.restore(ckpt_lib.abstract_like(_state(0)))
    with pytest.raises(ckpt_lib.CheckpointError, match="step 7: expected a saved step"):
        ck.restore(ckpt_lib.abstract_like(_state(0)), step=7)
    ck.close()


def test_async_save_then_restore(tmp_path, caplog):
    directory = str(tmp_path / "c")
    ck = ckpt_lib.Checkpointer(directory, save_every=1, keep=2, async_save=True)
    for step in (1, 2, 3):
        ck.save(step, _state(step), {"epoch": 1, "step": step})
    ck.close()
    assert sorted(int(s) for s in os.listdir(directory) if s.isdigit()) == [2, 3]
    ck = ckpt_lib.Checkpointer(directory, save_every=1, async_save=True)
    state, data = ck.restore(ckpt_lib.abstract_like(_state(0)))
    ck.close()
    np.testing.assert_array_equal(np.asarray(state["b"]["s"]), [3, 3, 3])
    assert data == {"epoch": 1, "step": 3}


def test_restore_weights_reads_params_and_batch_stats_only(tmp_path, caplog):
    from flax import nnx  # noqa: PLC0415

    from trainers import train_state  # noqa: PLC0415

    model = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
    tx, _ = train_state.make_optimizer(learning_rate=1e-3, total_steps=10)
    state = train_state.init_train_state(model, tx, 0)
    directory = str(tmp_path / "c")
    ck = ckpt_lib.Checkpointer(directory, save_every=1, async_save=False)
    ck.save(5, state, {"epoch": 0, "step": 5})
    os.makedirs(os.path.join(directory, "6"))  # a damaged newer step
    params, stats, step = ck.restore_weights(ckpt_lib.abstract_like(state.params),
                                             ckpt_lib.abstract_like(state.batch_stats))
    ck.close()
    assert step == 5
    for a, b in zip(jax.tree.leaves((params, stats)), jax.tree.leaves((state.params,
                                                                       state.batch_stats)),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert type(params) is type(state.params)


def test_torn_metrics_line_dropped_with_warning(tmp_path, caplog):
    workdir = str(tmp_path)
    writer = metrics_writer.MetricsWriter(workdir)
    for step in (1, 2, 3):
        writer.write(step, {"loss": float(step)})
    writer.close()
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 4, "lo')  # killed while appending
    with caplog.at_level("WARNING"):
        records = metrics_writer.read_metrics(workdir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert "line 4 dropped (the last line" in caplog.text
    # Resuming at step 2 drops the torn line and the records after step 2, then appends.
    writer = metrics_writer.MetricsWriter(workdir, resume_step=2)
    writer.write(3, {"loss": 30.0})
    writer.close()
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = f.read().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [1, 2, 3]
    assert json.loads(lines[-1])["loss"] == 30.0


def test_state_on_device_unchanged_by_restore_sharding(saved, caplog):
    """Restored arrays carry the abstract state's sharding (here: the one CPU device)."""
    state, _, _ = _restore(saved, caplog)
    assert state["w"].sharding == jax.device_put(jnp.zeros(1)).sharding


_SAVER = """
import sys, jax.numpy as jnp
from trainers import checkpoint as ckpt_lib
ck = ckpt_lib.Checkpointer(sys.argv[1], save_every=1, keep=3, async_save=True)
for step in range(1, 10_000):
    ck.save(step, {"w": jnp.full((2_000_000,), float(step))}, {"epoch": 0, "step": step})
    print(step, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("after_step", [1, 3, 6])
def test_kill_during_async_saves_restores_a_complete_step(tmp_path, after_step):
    """kill -9 right after `save(k)` returned (step k still being written in the background;
    orbax finishes step k-1 before it starts step k): the newest step that restores is complete
    (its values are its step number, the iterator state matches) and is k-1 or k."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    directory = str(tmp_path / "c")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=root)
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, directory], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if int(line) >= after_step:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    ck = ckpt_lib.Checkpointer(directory, save_every=1, async_save=False)
    restored = ck.restore_latest(ckpt_lib.abstract_like({"w": jnp.zeros((2_000_000,))}))
    ck.close()
    if after_step == 1 and restored is None:  # step 1 was still in flight: nothing under a name
        assert not [s for s in os.listdir(directory) if s.isdigit()]
        return
    state, data = restored
    w = np.asarray(state["w"])
    assert w.min() == w.max() == data["step"]
    assert data["step"] in (after_step - 1, after_step)
