"""Bad inputs, in process: each case gives one precise line (file, field, limit) and leaves the input
untouched (docs/robustness.md lists every case). The subprocess cases (memory limit, hard timeout,
exit status, batches) are in test_bad_inputs_cli.py."""

import dataclasses
import hashlib
import json
import os
import pickle
import threading
import types
import zipfile

import numpy as np
import pytest

import body_models
from experiments.configs import josh as josh_config
from experiments.configs import synthetic as synthetic_config
from josh_jax import pipeline, preflight, synthetic
from josh_jax.clip import ClipFormatError, load_any, read_npz, save_clip, to_arrays
from josh_jax.clip.io import read_npz_headers
from josh_jax.errors import InputError
from josh_jax.io import atomic, outputs
from josh_jax.result_checks import result_problems


@pytest.fixture(scope="module")
def tiny():
    clip, gt = synthetic.generate_clip(synthetic_config.get_config("tiny"), 0)
    return clip, gt


@pytest.fixture(scope="module")
def config():
    return josh_config.get_config("default")


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _refusal(path, config, field: str) -> str:
    """Loads and checks `path` like run_josh; the one-line refusal (input untouched)."""
    before = _digest(path)
    with pytest.raises(InputError) as excinfo:
        clip, _ = load_any(path, limits=config.limits)
        preflight.check_clip(clip, config, str(path))
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: expected "), message
    assert _digest(path) == before
    return message


def _save(tmp_path, name, clip, gt=None, **replace) -> str:
    path = str(tmp_path / name)
    arrays = to_arrays(dataclasses.replace(clip, **replace) if replace else clip, gt)
    np.savez_compressed(path, **arrays)
    return path


# --- 1. Limits, read from the zip directory and the .npy headers before inflating -------------


def _write_member(zf: zipfile.ZipFile, key: str, header_shape, dtype, payload_bytes: int):
    """An npz member whose .npy header says `header_shape` and which holds `payload_bytes`."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(header_shape)}
    with zf.open(key + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        chunk = bytes(1 << 20)
        left = payload_bytes
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def test_zip_bomb_is_refused_from_the_zip_directory(tmp_path, config):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, "pointmaps", (100, 256, 256, 3), np.float32, 100 * 256 * 256 * 12)
    assert os.path.getsize(path) < 1_000_000  # ~300 MB of zeros in a few hundred KB
    message = _refusal(path, config, "pointmaps")
    assert "limits.max_compression_ratio=200" in message and "a zip bomb?" in message


def test_member_over_the_size_cap_is_refused(tmp_path, config):
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        _write_member(zf, "pointmaps", (2, 512, 512, 3), np.float32, 2 * 512 * 512 * 12)
    small = josh_config.get_config("default")
    small.limits.max_member_mb = 1
    assert "limits.max_member_mb=1 MB" in _refusal(path, small, "pointmaps")


def test_whole_file_over_the_size_cap_is_refused(tmp_path, config):
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in ("pointmaps", "confs"):  # 2 MB each: under the member cap, 4 MB in all
            _write_member(zf, key, (2, 256, 256, 4), np.float32, 2 * 256 * 256 * 16)
    small = josh_config.get_config("default")
    small.limits.max_member_mb = 3
    small.limits.max_file_mb = 3
    assert "limits.max_file_mb=3 MB inflated" in _refusal(path, small, "(file)")


def test_compression_ratio_applies_only_above_its_size(tmp_path, config):
    """A small, very compressible member passes (zeros are legal data); the same member counts as a
    bomb once `limits.ratio_min_mb` is below its inflated size."""
    path = tmp_path / "zeros.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, "pointmaps", (4, 256, 256, 3), np.float32, 4 * 256 * 256 * 12)
    assert read_npz_headers(path, config.limits)["pointmaps"].shape == (4, 256, 256, 3)
    strict = josh_config.get_config("default")
    strict.limits.ratio_min_mb = 1
    assert "a zip bomb?" in _refusal(path, strict, "pointmaps")


def test_header_claiming_more_data_than_present_is_reported_as_such(tmp_path, config):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, "pointmaps", (1000, 1000, 1000, 3), np.float32, 40)
    message = _refusal(path, config, "pointmaps")
    assert "bytes its header declares" in message and "found 40 bytes in the member" in message
    assert "pickle" not in message


def test_member_that_is_not_an_array_is_refused(tmp_path, config):
    path = tmp_path / "extra.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.txt", b"hello")
    assert "only .npy members" in _refusal(path, config, "notes.txt")


def test_pickled_object_array_is_refused_without_unpickling(tmp_path, config):
    path = tmp_path / "obj.npz"
    np.savez(path, pointmaps=np.array([{"a": 1}, None], dtype=object))
    assert "a pickled object array" in _refusal(path, config, "pointmaps")


def test_not_an_npz(tmp_path, config):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    assert _refusal(path, config, "(file)").endswith("found unreadable file (BadZipFile)")
    np.save(tmp_path / "single.npy", np.zeros((2, 3)))
    os.replace(tmp_path / "single.npy", tmp_path / "single.npz")
    assert _refusal(tmp_path / "single.npz", config, "(file)").endswith(
        "found a single .npy array (2, 3)")


@pytest.mark.parametrize("limit,value,field,symbol", [
    ("max_frames", 4, "pointmaps", "T=6"),
    ("max_image_size", 80, "pointmaps", "W=96"),
    ("max_pairs", 8, "pairs", "E=12"),
    ("max_tracks", 0, "smpl_valid", "P=1"),
    ("max_vertices", 100, "contact", "V=6890"),
    ("max_matches_per_pair", 100, "matches", "M=165"),
    ("min_image_size", 80, "pointmaps", "H=64"),
])
def test_dimension_limits_from_the_headers(tmp_path, tiny, limit, value, field, symbol):
    path = _save(tmp_path, "clip.npz", *tiny)
    config = josh_config.get_config("default")
    setattr(config.limits, limit, value)
    message = _refusal(path, config, field)
    assert symbol in message and "limits." in message
    # The same limit on an in-memory clip (e.g. from a JOSH folder).
    with pytest.raises(ClipFormatError, match=symbol):
        preflight.check_limits(tiny[0], config.limits, "mem")


@pytest.mark.parametrize("last", [20000 + 25, 2_000_000_000])
def test_huge_frame_span_is_refused_before_any_allocation(tmp_path, tiny, config, last):
    clip, gt = tiny
    fi = np.asarray(clip.frame_index).copy()
    fi[-1] = last
    path = _save(tmp_path, "span.npz", clip, frame_index=fi)
    message = _refusal(path, config, "frame_index")
    assert "limits.max_frame_span=20000" in message and f"..{last})" in message


def test_memory_estimate_over_the_limit(tiny):
    clip, _ = tiny
    model = body_models.load_model(None)
    need = preflight.estimate_memory_bytes([], [clip], model)
    F = preflight.frame_span(clip)
    assert need >= F * model.num_vertices * 3 * 4  # at least the result's vertices
    limits = types.SimpleNamespace(max_memory_gb=need / 2**30 / 2)
    with pytest.raises(InputError, match=r"^batch: \(memory\): expected an estimated peak of at "
                                         r"most .* GB \(limits.max_memory_gb="):
        preflight.check_memory([], [clip], model, limits, "batch")
    # 0: a share of this machine's memory.
    assert 0 < preflight.memory_limit_bytes(types.SimpleNamespace(max_memory_gb=0.0)) < 2**62
    # The trial's 20000-frame span (12 GB peak measured) is estimated at that order.
    fi20k = np.asarray(clip.frame_index).copy()
    fi20k[-1] = 20000
    est = preflight.estimate_memory_bytes([], [dataclasses.replace(clip, frame_index=fi20k)], model)
    assert 8 * 2**30 < est < 20 * 2**30
    # Long clips grow the estimate with their frame span, before anything is compiled.
    fi = np.asarray(clip.frame_index).copy()
    fi[-1] = 100_000
    longer = preflight.estimate_memory_bytes([], [dataclasses.replace(clip, frame_index=fi)], model)
    assert longer > 1000 * need


# --- 2. Plausibility at load -----------------------------------------------------------------


def _bad_cases(clip):
    P, T = clip.smpl_valid.shape
    big_rot = np.asarray(clip.smpl_global_orient) * 1e6
    no_track = np.asarray(clip.smpl_valid).copy()
    no_track[0] = False
    neg = np.asarray(clip.pointmaps).copy()
    neg[..., 2] *= -1
    return {
        "zero rotations": (dict(smpl_global_orient=np.zeros_like(clip.smpl_global_orient)),
                           "smpl_global_orient", "rotation matrices"),
        "x1e6 rotations": (dict(smpl_global_orient=big_rot), "smpl_global_orient", "deviation"),
        "zero body pose": (dict(smpl_body_pose=np.zeros_like(clip.smpl_body_pose)),
                           "smpl_body_pose", "rotation matrices"),
        "betas 1e6": (dict(smpl_betas=np.full_like(clip.smpl_betas, 1e6)), "smpl_betas",
                      "limits.max_abs_beta"),
        "negative depth": (dict(pointmaps=neg), "pointmaps", "depth z > 0"),
        "zero matches": (dict(match_confidence=np.zeros_like(clip.match_confidence)),
                         "match_confidence", "at least one match"),
        "zero confidence": (dict(confidence=np.zeros_like(clip.confidence)), "confidence",
                            "some scene pixels"),
        "all-true mask": (dict(human_mask=np.ones_like(clip.human_mask)), "human_mask",
                          "some scene pixels"),
        "track without a valid frame": (dict(smpl_valid=no_track), "smpl_valid",
                                        "none for track 0"),
        "fps 1e-30": (dict(fps=np.float32(1e-30)), "fps", "limits.min_fps"),
        "fps 1e9": (dict(fps=np.float32(1e9)), "fps", "found 1e+09"),
    }


@pytest.mark.parametrize("case", list(_bad_cases(types.SimpleNamespace(
    smpl_valid=np.zeros((1, 1)), smpl_global_orient=np.zeros(1), pointmaps=np.zeros((1, 3)),
    smpl_body_pose=0, smpl_betas=0, match_confidence=0, confidence=0, human_mask=0))))
def test_implausible_clip_is_refused_at_load(tmp_path, tiny, config, case):
    clip, gt = tiny
    replace, field, phrase = _bad_cases(clip)[case]
    path = _save(tmp_path, "bad.npz", clip, gt, **replace)
    assert phrase in _refusal(path, config, field)


def test_image_size_not_a_multiple_of_the_anchor_step(tmp_path, tiny, config):
    clip, _ = tiny
    crop = {k: np.asarray(getattr(clip, k))[:, :60] for k in ("pointmaps", "confidence",
                                                              "human_mask")}
    xy = np.asarray(clip.matches).copy()
    conf = np.where((xy[..., 1] <= 59).all(-1), clip.match_confidence, 0)
    path = _save(tmp_path, "crop.npz", clip, images=None, matches=xy, match_confidence=conf,
                 **crop)
    assert "H=60, W=96" in _refusal(path, config, "pointmaps")


def test_contacts_sized_for_another_body(tiny):
    clip, _ = tiny
    model = body_models.load_model(None)
    preflight.check_clip_body(clip, model, "ok.npz")  # the clip's own body passes
    small = dataclasses.replace(clip, contact=np.zeros(clip.contact.shape[:2] + (100,), np.float32))
    with pytest.raises(ClipFormatError, match=r"^c.npz: contact: expected one column per body "
                                              r"vertex \(V=6890 for body 'mannequin'\), found V=100$"):
        preflight.check_clip_body(small, model, "c.npz")


def test_good_clips_pass_every_check(tmp_path, tiny, config):
    path = _save(tmp_path, "good.npz", *tiny)
    clip, _ = load_any(path, limits=config.limits)
    preflight.check_clip(clip, config, path)
    preflight.check_clip_body(clip, body_models.load_model(None), path)


# --- 2b. Result checks after optimisation ----------------------------------------------------


def _fake_result(P=1, F=4, V=50, extent=1.7, scene=True):
    rng = np.random.default_rng(0)
    verts = rng.uniform(0, extent, (P, F, V, 3)).astype(np.float32)
    verts[..., 0, :] = 0
    verts[..., 1, :] = extent
    return types.SimpleNamespace(
        smpl_valid=np.ones((P, F), bool), vertices_world=verts,
        T_world_cam=np.tile(np.eye(4, dtype=np.float32), (F, 1, 1)),
        K=np.tile(np.diag([500.0, 500.0, 1.0]).astype(np.float32), (F, 1, 1)),
        scene_mask=np.full((2, 3, 3), scene), scene_points_world=np.ones((2, 3, 3, 3), np.float32))


def test_result_problems():
    assert result_problems(_fake_result()) == []
    inf = _fake_result()
    inf.vertices_world[0, 2, 5] = np.inf
    assert result_problems(inf) == [
        "vertices_world: expected finite vertices, found 1 of 4 valid bodies non-finite"]
    (point,) = result_problems(_fake_result(extent=1e-4))
    assert point.startswith("vertices_world: expected a body extent >= 0.3 m, found 0.0001 m")
    (giant,) = result_problems(_fake_result(extent=1e3))
    assert giant.startswith("vertices_world: expected a body extent <= 3.0 m, found 1e+03 m")
    assert result_problems(_fake_result(scene=False)) == [
        "scene_mask: expected some scene points, found none"]
    nan_cam = _fake_result()
    nan_cam.T_world_cam[1, 0, 3] = np.nan
    assert result_problems(nan_cam) == ["T_world_cam: expected finite values, found 1 non-finite"]
    model = body_models.load_model(None)
    assert result_problems(_fake_result(), model)[0].startswith(
        "vertices_world: expected 6890 vertices per body, found 50")


# --- 3. Batches: unique names, destination checked first -------------------------------------


def test_output_names_are_unique_paths_relative_to_the_common_root():
    assert outputs.output_names(["a/x.npz"]) == ["x"]
    assert outputs.output_names(["d/a/x.npz", "d/b/x.npz", "d/y.npz"]) == ["a/x", "b/x", "y"]
    assert outputs.output_names(["c/p.npz", "c/q.npz"]) == ["p", "q"]


def test_destination_checked_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = {
        str(tmp_path / "file"): "--out: expected a folder, found an existing file",
        "/proc": "--out: expected a writable folder, found /proc not writable",
        str(tmp_path / "file" / "sub"): "--out: expected a folder under a folder",
    }
    for out, phrase in cases.items():
        with pytest.raises(InputError, match="^" + out) as excinfo:
            outputs.check_destination(out, ["x"])
        assert phrase in str(excinfo.value)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="both named 'x'"):
        outputs.check_destination(str(out), ["x", "x"])
    out.mkdir()
    (out / "x.npz").write_text("a previous result")
    with pytest.raises(InputError, match=r"no previous outputs of 'x' \(pass --overwrite"):
        outputs.check_destination(str(out), ["x"])
    outputs.check_destination(str(out), ["x"], overwrite=True)
    with pytest.raises(InputError, match="an output that would replace its input"):
        outputs.check_destination(str(out), ["x"], overwrite=True, inputs=[str(out / "x.npz")])
    assert (out / "x.npz").read_text() == "a previous result"


# --- 4. Result sets and the merged summary ---------------------------------------------------


def _stage(staging, name, version, kinds=("npz", "mp4", "tum.txt")):
    for k in kinds:
        with open(os.path.join(staging, f"{name}.{k}"), "w") as f:
            f.write(f"{version} {k}")


def test_result_set_replaces_the_whole_set(tmp_path):
    out = str(tmp_path)
    with atomic.result_set(out, "c") as staging:
        _stage(staging, "c", "v1")
    assert sorted(os.listdir(out)) == [".josh.lock", "c.manifest.json", "c.mp4", "c.npz",
                                       "c.tum.txt"]
    with atomic.result_set(out, "c") as staging:
        _stage(staging, "c", "v2", kinds=("npz", "tum.txt"))
    assert sorted(os.listdir(out)) == [".josh.lock", "c.manifest.json", "c.npz", "c.tum.txt"]
    manifest = json.load(open(os.path.join(out, "c.manifest.json")))
    assert sorted(manifest["files"]) == ["c.npz", "c.tum.txt"]
    assert open(os.path.join(out, "c.npz")).read() == "v2 npz"
    assert oct(os.stat(os.path.join(out, "c.npz")).st_mode & 0o777) == oct(0o666 & ~_umask())
    # A failure while writing leaves the previous set as it was.
    with pytest.raises(RuntimeError), atomic.result_set(out, "c") as staging:
        _stage(staging, "c", "v3")
        raise RuntimeError("writer failed")
    assert open(os.path.join(out, "c.npz")).read() == "v2 npz"
    assert not [f for f in os.listdir(out) if f.startswith(".josh-")]


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_recover_rolls_an_interrupted_commit_forward(tmp_path):
    out = str(tmp_path)
    with atomic.result_set(out, "c") as staging:
        _stage(staging, "c", "v1")
    # A commit killed after moving one file: journal + staging with the rest.
    staging = os.path.join(out, ".josh-staging.999999999.abc")
    os.mkdir(staging)
    _stage(staging, "c", "v2")
    journal = {"name": "c", "staging": os.path.basename(staging),
               "files": ["c.mp4", "c.npz", "c.tum.txt"], "old": ["c.mp4", "c.npz", "c.tum.txt"],
               "manifest": {"files": {}}}
    with open(os.path.join(out, ".josh-commit.c.json"), "w") as f:
        json.dump(journal, f)
    os.remove(os.path.join(out, "c.manifest.json"))
    os.replace(os.path.join(staging, "c.npz"), os.path.join(out, "c.npz"))
    (tmp_path / ".c.npz.abcdefgh.tmp.npz").write_text("torn")
    os.mkdir(os.path.join(out, ".josh-staging.999999998.dead"))  # a killed run's staging
    done = atomic.recover(out)
    assert any("finished the interrupted commit of c" in d for d in done)
    assert sorted(os.listdir(out)) == [".josh.lock", "c.manifest.json", "c.mp4", "c.npz",
                                       "c.tum.txt"]
    assert {open(os.path.join(out, f)).read().split()[0] for f in ("c.mp4", "c.npz",
                                                                   "c.tum.txt")} == {"v2"}


def test_summary_is_merged_not_replaced_even_concurrently(tmp_path):
    path = str(tmp_path / "summary.json")
    pipeline.merge_summary(path, [{"clip": "a", "status": "ok"}])
    pipeline.merge_summary(path, [{"clip": "b", "status": "suspect"}])
    pipeline.merge_summary(path, [{"clip": "a", "status": "suspect", "v": np.float32(2)}])
    clips = json.load(open(path))["clips"]
    assert [(c["clip"], c["status"]) for c in clips] == [("b", "suspect"), ("a", "suspect")]
    threads = [threading.Thread(target=pipeline.merge_summary,
                                args=(path, [{"clip": f"t{i}", "status": "ok"}]))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {c["clip"] for c in json.load(open(path))["clips"]}
    assert names == {"a", "b"} | {f"t{i}" for i in range(16)}
    # A corrupt summary is kept aside, not lost silently.
    with open(path, "w") as f:
        f.write("{torn")
    pipeline.merge_summary(path, [{"clip": "z"}])
    assert os.path.exists(path + ".corrupt")
    assert [c["clip"] for c in json.load(open(path))["clips"]] == ["z"]


# --- 6. Errors that name the file; files 0644 ------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_body_model_errors_name_the_file(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    with pytest.raises(body_models.UnsafePickleError) as excinfo:
        body_models.load_model(str(evil))
    assert isinstance(excinfo.value, InputError)
    assert str(excinfo.value).startswith(f"{evil}: (file): expected a body model pickle of ")
    torn = tmp_path / "torn.pkl"
    torn.write_bytes(pickle.dumps({"a": np.zeros(10)}, protocol=2)[:20])
    with pytest.raises(InputError, match=f"^{torn}: \\(file\\): expected a readable body model "
                                         "pickle, found"):
        body_models.load_model(str(torn))
    obj = tmp_path / "obj.npz"
    np.savez(obj, v_template=np.array([None], dtype=object))
    with pytest.raises(InputError, match=f"^{obj}: v_template: expected a numeric array "
                                         r"\(pickles are refused\), found a pickled object array"):
        body_models.load_model(str(obj))
    junk = tmp_path / "junk.npz"
    junk.write_text("junk")
    with pytest.raises(InputError, match=f"^{junk}: \\(file\\): expected an .npz archive"):
        body_models.load_model(str(junk))


def test_clip_files_are_written_0644(tmp_path, tiny):
    old = os.umask(0o022)
    try:
        save_clip(tmp_path / "c.npz", *tiny)
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "c.npz").st_mode & 0o777 == 0o644
    read_npz(tmp_path / "c.npz")
