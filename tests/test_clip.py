"""Clip format: round trips, pytree behaviour, and one clear error per malformed variant."""

import os

import jax
import numpy as np
import pytest

from josh_jax import clip as clip_lib
from josh_jax.clip import Clip, ClipFormatError, GroundTruth

T, H, W, E, M, P, J1, B, V = 3, 6, 8, 2, 4, 1, 23, 10, 5


def make_arrays(T=T, P=P, seed=0, with_gt=True):
    """A small valid clip as the flat key -> array mapping of the file format."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 3.0, (T, H, W)).astype(np.float32)
    uv = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).astype(np.float32)
    xy = (uv - np.array([W / 2, H / 2], np.float32)) / 100.0
    pointmaps = np.concatenate([xy[None] * z[..., None], z[..., None]], -1)
    matches = np.zeros((E, M, 2, 2), np.float32)
    matches[..., 0] = rng.integers(0, W, (E, M, 2))
    matches[..., 1] = rng.integers(0, H, (E, M, 2))
    match_confidence = rng.uniform(0.5, 2.0, (E, M)).astype(np.float32)
    match_confidence[1, -1] = 0.0  # one padding row
    eye = np.eye(3, dtype=np.float32)
    a = dict(
        format_version=np.asarray("1"),
        body_model=np.asarray("mannequin"),
        frame_index=np.arange(T, dtype=np.int32) * 5,
        fps=np.float32(30.0),
        pointmaps=pointmaps,
        confidence=rng.uniform(1.0, 5.0, (T, H, W)).astype(np.float32),
        human_mask=rng.uniform(size=(T, H, W)) < 0.2,
        images=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        pairs=np.array([[0, 1], [1, T - 1]], np.int32)[:E],
        matches=matches,
        match_confidence=match_confidence,
        smpl_global_orient=np.broadcast_to(eye, (P, T, 3, 3)).copy(),
        smpl_body_pose=np.broadcast_to(eye, (P, T, J1, 3, 3)).copy(),
        smpl_betas=rng.normal(size=(P, T, B)).astype(np.float32),
        smpl_transl=rng.normal(size=(P, T, 3)).astype(np.float32),
        hmr_focal=np.float32(600.0),
        smpl_valid=np.ones((P, T), bool),
        contact=(rng.uniform(size=(P, T, V)) < 0.3).astype(np.float32),
    )
    if with_gt:
        T_world_cam = np.broadcast_to(np.eye(4), (T, 4, 4)).copy()
        T_world_cam[:, :3, 3] = rng.normal(size=(T, 3))
        a.update(
            gt_T_world_cam=T_world_cam,
            gt_focal=np.float64(100.0),
            gt_pointmap_scale=np.float64(2.5),
            gt_smpl_global_orient=np.broadcast_to(np.eye(3), (P, T, 3, 3)).copy(),
            gt_smpl_body_pose=np.broadcast_to(np.eye(3), (P, T, J1, 3, 3)).copy(),
            gt_smpl_betas=rng.normal(size=(P, T, B)),
            gt_smpl_transl=rng.normal(size=(P, T, 3)),
            gt_contact=rng.uniform(size=(P, T, V)) < 0.3,
            gt_scene_vertices=rng.normal(size=(4, 3)),
            gt_scene_faces=np.array([[0, 1, 2], [0, 2, 3]], np.int32),
            gt_frame_index=np.arange(5 * (T - 1) + 1, dtype=np.int32),
            gt_T_world_cam_all=np.broadcast_to(np.eye(4), (5 * (T - 1) + 1, 4, 4)).copy(),
            gt_joints_world_all=rng.normal(size=(P, 5 * (T - 1) + 1, J1 + 1, 3)),
        )
    return a


def write_raw(path, arrays):
    """Writes arrays with plain np.savez, bypassing save_clip's validation (for malformed files)."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def assert_one_line_error(excinfo, path, key):
    err = excinfo.value
    msg = str(err)
    assert "\n" not in msg, msg
    assert err.field == key, msg
    assert err.file == str(path), msg
    assert msg.startswith(f"{path}: {key}: expected "), msg
    assert ", found " in msg, msg
    # No chained traceback from inside numpy: raised directly, or re-raised `from None`.
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert os.path.basename(os.path.dirname(str(excinfo.traceback[-1].path))) == "clip"


# ------------------------------------------------------------------------------------------
# Round trips


def test_round_trip_preserves_every_array(tmp_path):
    arrays = make_arrays()
    clip, gt = clip_lib.validate_arrays(arrays)
    path = tmp_path / "clip.npz"
    clip_lib.save_clip(path, clip, gt)
    clip2, gt2 = clip_lib.load_clip(path)
    assert clip2.body_model == "mannequin" and clip2.format_version == "1"
    for key, value in arrays.items():
        got = clip_lib.to_arrays(clip2, gt2)[key]
        np.testing.assert_array_equal(got, value, err_msg=key)
    assert gt2.present() == [k for k in clip_lib.GT_KEYS if k in arrays]
    # Written without pickles: plain numpy can read every key back.
    with np.load(path, allow_pickle=False) as raw:
        assert set(raw.files) == set(arrays)
        assert raw["format_version"].dtype.kind == "U" and raw["format_version"].ndim == 0


def test_uncompressed_save_and_no_temporary_left(tmp_path):
    clip, gt = clip_lib.validate_arrays(make_arrays())
    clip_lib.save_clip(tmp_path / "a.npz", clip, gt, compress=False)
    clip_lib.save_clip(tmp_path / "b.npz", clip, gt, compress=True)
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"]
    np.testing.assert_array_equal(clip_lib.load_clip(tmp_path / "a.npz")[0].pointmaps,
                                  clip_lib.load_clip(tmp_path / "b.npz")[0].pointmaps)


def test_lenient_width_is_cast_to_canonical_dtypes(tmp_path):
    arrays = make_arrays()
    arrays["pointmaps"] = arrays["pointmaps"].astype(np.float64)
    arrays["confidence"] = arrays["confidence"].astype(np.float16)
    arrays["frame_index"] = arrays["frame_index"].astype(np.int64)
    arrays["pairs"] = arrays["pairs"].astype(np.uint16)
    arrays["gt_focal"] = np.float32(100.0)
    clip, gt = clip_lib.load_clip(write_raw(tmp_path / "c.npz", arrays))
    assert clip.pointmaps.dtype == np.float32 and clip.confidence.dtype == np.float32
    assert clip.frame_index.dtype == np.int32 and clip.pairs.dtype == np.int32
    assert gt.gt_focal.dtype == np.float64
    np.testing.assert_allclose(clip.pointmaps, arrays["pointmaps"], rtol=1e-7)


def test_gt_betas_per_person_are_broadcast_over_frames(tmp_path):
    arrays = make_arrays()
    betas = np.arange(P * B, dtype=np.float64).reshape(P, B)
    arrays["gt_smpl_betas"] = betas
    _, gt = clip_lib.load_clip(write_raw(tmp_path / "c.npz", arrays))
    assert gt.gt_smpl_betas.shape == (P, T, B)
    np.testing.assert_array_equal(gt.gt_smpl_betas[:, 1], betas)


def test_scene_only_clip_is_valid_and_says_so(tmp_path):
    arrays = make_arrays(P=0, with_gt=False)
    arrays.pop("images")
    clip, gt = clip_lib.load_clip(write_raw(tmp_path / "scene.npz", arrays))
    assert gt is None and clip.images is None and clip.num_people == 0
    assert "scene only" in clip.describe()
    clip_lib.save_clip(tmp_path / "scene2.npz", clip)
    assert clip_lib.load_clip(tmp_path / "scene2.npz")[0].num_people == 0


def test_describe_reports_people_and_matches():
    clip, _ = clip_lib.validate_arrays(make_arrays(P=2))
    text = clip.describe()
    assert "2 people" in text and f"{E * M - 1} matches" in text and "3 frames 6x8" in text


def test_clip_is_a_pytree_with_static_strings():
    clip, gt = clip_lib.validate_arrays(make_arrays())
    leaves, treedef = jax.tree.flatten(clip)
    # 15 required arrays + images; focal_init, pair_scores and track_id are None (no leaves).
    assert len(leaves) == 16
    assert all(isinstance(x, np.ndarray) for x in leaves)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert rebuilt.body_model == "mannequin" and rebuilt.format_version == "1"
    shapes = jax.tree.map(lambda x: x.shape, clip)
    assert shapes.pointmaps == (T, H, W, 3)
    doubled = jax.tree.map(lambda x: np.concatenate([x[None], x[None]]), clip)
    assert doubled.pointmaps.shape == (2, T, H, W, 3)
    assert len(jax.tree.leaves(gt)) == len(gt.present())


def test_save_refuses_invalid_clip_and_keeps_existing_file(tmp_path):
    good, _ = clip_lib.validate_arrays(make_arrays(with_gt=False))
    path = tmp_path / "clip.npz"
    clip_lib.save_clip(path, good)
    before = path.read_bytes()
    bad = good.replace(pointmaps=good.pointmaps.copy())
    bad.pointmaps[0, 0, 0, 0] = np.nan
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.save_clip(path, bad)
    assert excinfo.value.field == "pointmaps" and str(path) in str(excinfo.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["clip.npz"]


def test_padding_rows_may_hold_any_finite_pixel(tmp_path):
    arrays = make_arrays()
    arrays["matches"][1, -1] = [[-5.0, 1e6], [W + 3.0, -2.0]]  # confidence 0 there
    clip, _ = clip_lib.load_clip(write_raw(tmp_path / "c.npz", arrays))
    assert clip.matches[1, -1, 0, 1] == 1e6


def test_default_pair_scores_count_real_matches():
    arrays = make_arrays()
    arrays["match_confidence"][0, :2] = 1e-4  # dropped by JOSH's min_conf_thr=1e-3
    clip, _ = clip_lib.validate_arrays(arrays)
    np.testing.assert_array_equal(clip_lib.default_pair_scores(clip), [M - 2, M - 1])
    scored = clip.replace(pair_scores=np.array([7.0, 9.0], np.float32))
    np.testing.assert_array_equal(clip_lib.default_pair_scores(scored), [7.0, 9.0])


def test_gt_dataclass_defaults_and_present():
    gt = GroundTruth(gt_focal=np.float64(1.0))
    assert gt.present() == ["gt_focal"]
    assert Clip.__dataclass_params__.frozen


# ------------------------------------------------------------------------------------------
# Malformed variants: (id, mutation of the arrays, key named in the error)


def _set(key, value):
    def mutate(a):
        a[key] = value(a) if callable(value) else value
    return mutate


def _drop(key):
    def mutate(a):
        del a[key]
    return mutate


def _poke(key, index, value):
    def mutate(a):
        a[key] = a[key].copy()
        a[key][index] = value
    return mutate


def _single_frame(a):
    a.clear()
    a.update(make_arrays(T=1))
    a["pairs"] = np.zeros((0, 2), np.int32)
    a["matches"] = np.zeros((0, M, 2, 2), np.float32)
    a["match_confidence"] = np.zeros((0, M), np.float32)


def _object_array(a):
    a["pointmaps"] = np.array([a["pointmaps"], None], dtype=object)


MALFORMED = [
    ("missing_pointmaps", _drop("pointmaps"), "pointmaps"),
    ("missing_match_confidence", _drop("match_confidence"), "match_confidence"),
    ("missing_version", _drop("format_version"), "format_version"),
    ("unknown_version", _set("format_version", np.asarray("2")), "format_version"),
    ("version_not_string", _set("format_version", np.int64(1)), "format_version"),
    ("unknown_key", _set("pointmap", np.zeros(3)), "pointmap"),
    ("misspelled_gt_key", _set("gt_contacts", np.zeros(3)), "gt_contacts"),
    ("pointmaps_int", _set("pointmaps", lambda a: a["pointmaps"].astype(np.int32)), "pointmaps"),
    ("mask_uint8", _set("human_mask", lambda a: a["human_mask"].astype(np.uint8)), "human_mask"),
    ("pairs_float", _set("pairs", lambda a: a["pairs"].astype(np.float32)), "pairs"),
    ("images_float", _set("images", lambda a: a["images"] / 255.0), "images"),
    ("body_model_bytes", _set("body_model", np.asarray(b"smpl")), "body_model"),
    ("pointmaps_rank", _set("pointmaps", lambda a: a["pointmaps"][..., 0]), "pointmaps"),
    ("pointmaps_xy_only", _set("pointmaps", lambda a: a["pointmaps"][..., :2]), "pointmaps"),
    ("confidence_T", _set("confidence", lambda a: a["confidence"][:-1]), "confidence"),
    ("human_mask_W", _set("human_mask", lambda a: a["human_mask"][:, :, :-1]), "human_mask"),
    ("frame_index_T", _set("frame_index", lambda a: a["frame_index"][:-1]), "frame_index"),
    ("smpl_transl_P", _set("smpl_transl", lambda a: np.zeros((2, T, 3))), "smpl_transl"),
    ("match_confidence_M", _set("match_confidence", lambda a: a["match_confidence"][:, :-1]),
     "match_confidence"),
    ("gt_contact_V", _set("gt_contact", lambda a: a["gt_contact"][..., :-1]), "gt_contact"),
    ("gt_body_pose_J", _set("gt_smpl_body_pose", lambda a: a["gt_smpl_body_pose"][:, :, :-1]),
     "gt_smpl_body_pose"),
    ("gt_joints_J", _set("gt_joints_world_all", lambda a: a["gt_joints_world_all"][:, :, :-1]),
     "gt_joints_world_all"),
    ("nan_pointmaps", _poke("pointmaps", (1, 2, 3, 2), np.nan), "pointmaps"),
    ("inf_transl", _poke("smpl_transl", (0, 1, 0), np.inf), "smpl_transl"),
    ("nan_in_padding_row", _poke("matches", (1, -1, 0, 0), np.nan), "matches"),
    ("nan_gt_camera", _poke("gt_T_world_cam", (0, 0, 3), np.nan), "gt_T_world_cam"),
    ("pair_index_T", _poke("pairs", (1, 1), T), "pairs"),
    ("pair_index_negative", _poke("pairs", (0, 0), -1), "pairs"),
    ("self_pair", _poke("pairs", (0, 1), 0), "pairs"),
    ("match_x_is_W", _poke("matches", (0, 0, 1, 0), W), "matches"),
    ("match_y_negative", _poke("matches", (1, 0, 0, 1), -1.0), "matches"),
    ("match_y_is_H", _poke("matches", (0, 2, 0, 1), H - 0.5), "matches"),
    ("single_frame", _single_frame, "pointmaps"),
    ("negative_confidence", _poke("confidence", (0, 0, 0), -0.5), "confidence"),
    ("negative_match_confidence", _poke("match_confidence", (0, 1), -1.0), "match_confidence"),
    ("contact_above_one", _poke("contact", (0, 0, 0), 1.5), "contact"),
    ("contact_negative", _poke("contact", (0, 2, 4), -0.1), "contact"),
    ("fps_zero", _set("fps", np.float32(0.0)), "fps"),
    ("hmr_focal_negative", _set("hmr_focal", np.float32(-600.0)), "hmr_focal"),
    ("frame_index_not_increasing", _poke("frame_index", 2, 0), "frame_index"),
    ("frame_index_too_big",
     _set("frame_index", lambda a: a["frame_index"].astype(np.int64) + 2**40), "frame_index"),
    ("empty_body_model", _set("body_model", np.asarray("")), "body_model"),
    ("negative_pair_score", _set("pair_scores", np.array([3.0, -1.0], np.float32)),
     "pair_scores"),
    ("scene_face_out_of_range", _poke("gt_scene_faces", (1, 2), 4), "gt_scene_faces"),
    ("camera_not_rigid", _poke("gt_T_world_cam", (1, 3, 0), 0.5), "gt_T_world_cam"),
    ("object_array", _object_array, "pointmaps"),
]


@pytest.mark.parametrize("mutate,key", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_clip_gives_one_line_error(tmp_path, mutate, key):
    arrays = make_arrays()
    mutate(arrays)
    path = tmp_path / "bad.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # allow_pickle defaults to True on save: object arrays get in
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_clip(path)
    assert_one_line_error(excinfo, path, key)


def test_malformed_variants_are_many():
    assert len(MALFORMED) >= 30


def test_error_message_states_expected_and_found(tmp_path):
    arrays = make_arrays()
    arrays["confidence"] = arrays["confidence"][:-1]
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_clip(write_raw(tmp_path / "c.npz", arrays))
    msg = str(excinfo.value)
    assert f"T={T}" in msg and "'pointmaps'" in msg and f"({T - 1}, {H}, {W})" in msg, msg
    assert msg.startswith(f"{tmp_path / 'c.npz'}: confidence: expected shape [T=3, H=6, W=8]")


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated"])
def test_unreadable_file_gives_one_line_error(tmp_path, content):
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_clip(path)
    assert_one_line_error(excinfo, path, "(file)")


def test_truncated_archive_gives_one_line_error(tmp_path):
    clip, gt = clip_lib.validate_arrays(make_arrays())
    good = tmp_path / "good.npz"
    clip_lib.save_clip(good, clip, gt)
    data = good.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 2] + data[-2000:])  # keeps the directory, loses data
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_clip(path)
    assert "\n" not in str(excinfo.value)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__ in (True, False)


def test_single_npy_is_refused(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_clip(path)
    assert_one_line_error(excinfo, path, "(file)")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        clip_lib.load_clip(tmp_path / "nope.npz")


def test_docs_example_writes_a_valid_clip(tmp_path, monkeypatch):
    """The numpy example in docs/clip_format.md runs and writes a clip that validates."""
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                        "clip_format.md")
    with open(docs) as f:
        text = f.read()
    block = text.split("<!-- example")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, docs, "exec"), {})
    clip, gt = clip_lib.load_clip("my_clip.npz")
    assert gt is None and clip.num_frames == 3 and clip.num_people == 1
    assert clip.image_size == (48, 64) and clip_lib.default_pair_scores(clip).tolist() == [50] * 3
