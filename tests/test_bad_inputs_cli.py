"""Bad inputs through the binaries, in subprocesses: one line on stderr and exit status 2, bounded
memory (an address-space limit in the child) and time (a hard kill), a batch whose bad clips are
skipped while the good ones are written (docs/robustness.md)."""

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from experiments.configs import synthetic as synthetic_config
from josh_jax import synthetic
from josh_jax.clip import save_clip, to_arrays

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = [f"--config={os.path.join(REPO, 'experiments/configs/josh.py')}:fast",
        "--config.stage1.iters=4", "--config.stage2.iters=2", "--writers=npz,tum"]

pytestmark = pytest.mark.slow


def _run(module, args, *, timeout=300, memory_gb=None):
    """`python -m module args` killed after `timeout` s, its address space capped at `memory_gb`."""
    def limit():
        if memory_gb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (int(memory_gb * 2**30),) * 2)

    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    t = time.perf_counter()
    proc = subprocess.run(["timeout", "-s", "KILL", str(timeout), sys.executable, "-m", module,
                           *args], cwd=REPO, env=env, capture_output=True, text=True,
                          preexec_fn=limit)
    proc.seconds = time.perf_counter() - t
    return proc


def _one_line_error(proc, *parts):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    for p in parts:
        assert p in last, (p, last)
    return last


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def tiny():
    return synthetic.generate_clip(synthetic_config.get_config("tiny"), 0)


def _save_arrays(path, clip, gt=None, **replace):
    arrays = to_arrays(clip, gt)
    arrays.update(replace)
    np.savez_compressed(path, **arrays)
    return str(path)


@pytest.mark.parametrize("last", [100_000, 2_000_000_000])
def test_huge_frame_span_bounded_memory_and_time(tmp_path, tiny, last):
    clip, gt = tiny
    fi = np.asarray(clip.frame_index).copy()
    fi[-1] = last
    path = _save_arrays(tmp_path / "span.npz", clip, frame_index=fi)
    before = _digest(path)
    proc = _run("experiments.run_josh", [f"--clip={path}", f"--out={tmp_path / 'out'}"],
                timeout=180, memory_gb=3)
    _one_line_error(proc, f"{path}: frame_index: expected a frame span", "max_frame_span=20000")
    assert _digest(path) == before and not (tmp_path / "out").exists()


def test_memory_estimate_refuses_before_compiling(tmp_path, tiny):
    clip, gt = tiny
    fi = np.asarray(clip.frame_index).copy()
    fi[-1] = 15000  # within limits.max_frame_span, too big for 2 GB
    path = _save_arrays(tmp_path / "long.npz", clip, frame_index=fi)
    proc = _run("experiments.run_josh", [f"--clip={path}", f"--out={tmp_path / 'out'}",
                                         *FAST[:1], "--config.limits.max_memory_gb=2"],
                timeout=180, memory_gb=3)
    _one_line_error(proc, "(memory): expected an estimated peak of at most 2.0 GB",
                    "frame spans [15001]")
    assert "[optimize]" not in proc.stderr


def test_zip_bomb_bounded_memory_and_time(tmp_path):
    path = tmp_path / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (256, 1024, 1024, 3)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("pointmaps.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            zeros = bytes(64 << 20)
            for _ in range(48):  # 3 GB of zeros
                f.write(zeros)
    assert os.path.getsize(path) < 40 << 20
    proc = _run("experiments.run_josh", [f"--clip={path}", f"--out={tmp_path / 'out'}"],
                timeout=120, memory_gb=2)
    _one_line_error(proc, f"{path}: pointmaps: expected at most limits.max_compression_ratio",
                    "a zip bomb?")


def test_lying_header_is_named(tmp_path):
    path = tmp_path / "liar.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    with zipfile.ZipFile(path, "w") as zf, zf.open("pointmaps.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(64))
    proc = _run("experiments.run_josh", [f"--clip={path}", f"--out={tmp_path / 'out'}"],
                timeout=120, memory_gb=2)
    _one_line_error(proc, "pointmaps: expected the 4000000000000 bytes its header declares",
                    "found 64 bytes in the member")


@pytest.mark.parametrize("module,args,phrase", [
    ("experiments.run_josh", ["--writers=npz,nope"], "--writers: expected names among"),
    ("experiments.run_josh", ["--config.stage1.iters=abc"], "stage1.iters"),
    ("experiments.run_josh", ["--no_such_flag=1"], "no_such_flag"),
    ("experiments.run_josh", [f"--config={REPO}/experiments/configs/josh.py:nope"], "nope"),
    ("experiments.make_synthetic", [], "--out"),
    ("experiments.view", ["--frame=abc"], "--frame"),
    ("experiments.train_josh3r", ["--no_such_flag=1"], "no_such_flag"),
    ("experiments.infer_josh3r", ["--no_such_flag=1"], "no_such_flag"),
    ("experiments.convert_josh3r", ["--no_such_flag=1"], "no_such_flag"),
])
def test_flag_errors_are_one_line(module, args, phrase):
    proc = _run(module, args, timeout=120)
    assert proc.stdout == "" or "Traceback" not in proc.stdout
    _one_line_error(proc, "error: command line: ", phrase)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bad_out_is_refused_before_any_work(tmp_path, tiny):
    clip_path = tmp_path / "c.npz"
    save_clip(clip_path, *tiny)
    (tmp_path / "file").write_text("x")
    for out, phrase in ((tmp_path / "file", "--out: expected a folder, found an existing file"),
                        ("/proc", "--out: expected a writable folder")):
        proc = _run("experiments.run_josh", [f"--clip={clip_path}", f"--out={out}"] + FAST)
        _one_line_error(proc, phrase)
        assert "[load]" not in proc.stderr and "[prepare]" not in proc.stderr


def test_batch_isolates_bad_clips_and_never_collides(tmp_path, tiny):
    clip, gt = tiny
    clips = tmp_path / "clips"
    for sub in ("a", "b", "c"):
        (clips / sub).mkdir(parents=True)
    save_clip(clips / "a" / "x.npz", clip, gt)
    moved = to_arrays(clip, gt)
    save_clip(clips / "b" / "x.npz", clip, gt)  # same file name in another folder
    (clips / "c" / "corrupt.npz").write_bytes(b"PK\x03\x04 not really")
    pm = moved["pointmaps"].copy()
    pm[0, 0, 0, 0] = np.nan
    _save_arrays(clips / "c" / "nan.npz", clip, gt, pointmaps=pm)
    _save_arrays(clips / "c" / "zero_rot.npz", clip, gt,
                 smpl_global_orient=np.zeros_like(moved["smpl_global_orient"]))
    inputs = sorted(str(p) for p in clips.rglob("*.npz"))
    digests = {p: _digest(p) for p in inputs}
    out = tmp_path / "out"
    proc = _run("experiments.run_josh", [f"--clips={clips}/*/*.npz", f"--out={out}"] + FAST,
                timeout=900)
    _one_line_error(proc, "summary.json: clips: expected every clip reconstructed (2 of 5 were)")
    assert {p: _digest(p) for p in inputs} == digests
    for stem in ("a/x", "b/x"):
        for ext in (".npz", ".tum.txt", ".manifest.json", ".metrics.json"):
            assert (out / (stem + ext)).is_file(), stem + ext
    summary = {s["clip"]: s for s in json.loads((out / "summary.json").read_text())["clips"]}
    assert sorted(summary) == ["a/x", "b/x", "c/corrupt", "c/nan", "c/zero_rot"]
    assert summary["a/x"]["status"] in ("ok", "suspect") and summary["a/x"]["outputs"]
    with np.load(out / "a" / "x.npz") as npz:  # the status travels with the result
        assert str(npz["diag_status"]) == summary["a/x"]["status"]
        assert list(npz["diag_problems"]) == summary["a/x"]["problems"]
    assert summary["c/nan"]["status"] == "skipped"
    assert "pointmaps: expected finite values" in summary["c/nan"]["problems"][0]
    assert "smpl_global_orient: expected rotation" in summary["c/zero_rot"]["problems"][0]
    assert "c/corrupt.npz" in summary["c/corrupt"]["problems"][0]
    for stem in ("c/corrupt", "c/nan", "c/zero_rot"):
        assert not list(out.glob(stem + ".*"))
    assert "skipped: c/nan:" in proc.stdout  # under the table
    assert oct((out / "a" / "x.npz").stat().st_mode & 0o777) == "0o644"
    assert not [p for p in out.rglob(".josh-*")]

    # A second run into the same folder: refused before any work, nothing replaced.
    before = _digest(out / "a" / "x.npz")
    proc = _run("experiments.run_josh", [f"--clips={clips}/*/*.npz", f"--out={out}"] + FAST)
    _one_line_error(proc, "--out: expected no previous outputs of 'a/x' (pass --overwrite")
    assert "[load]" not in proc.stderr
    assert _digest(out / "a" / "x.npz") == before


def test_make_synthetic_modes_and_refusals(tmp_path):
    out = tmp_path / "syn"
    args = [f"--config={REPO}/experiments/configs/synthetic.py:tiny", f"--out={out}"]
    old = os.umask(0o022)
    try:
        proc = _run("experiments.make_synthetic", args)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("clip_0000.npz", "clip_0000.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
    _one_line_error(_run("experiments.make_synthetic", args), "clip_0000.npz: (file): expected a "
                    "new file (pass --overwrite")
    (tmp_path / "f").write_text("x")
    _one_line_error(_run("experiments.make_synthetic", args[:1] + [f"--out={tmp_path / 'f'}"]),
                    "--out: expected a folder, found an existing file")


def test_contacts_for_another_body_are_refused_before_prepare(tmp_path, tiny):
    clip, _ = tiny
    path = _save_arrays(tmp_path / "c100.npz", clip,
                        contact=np.zeros(clip.contact.shape[:2] + (100,), np.float32))
    proc = _run("experiments.run_josh", [f"--clip={path}", f"--out={tmp_path / 'out'}"] + FAST)
    _one_line_error(proc, f"{path}: contact: expected one column per body vertex (V=6890",
                    "found V=100")
    assert "[prepare]" not in proc.stderr and not (tmp_path / "out").exists()


def test_view_record_destination_checked_first(tmp_path):
    proc = _run("experiments.view", ["--result=/nonexistent.npz", "--record=/proc/x.html"])
    _one_line_error(proc, "/proc: --record: expected a writable folder")
