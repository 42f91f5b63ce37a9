"""Importers: the reference synthetic layout and JOSH's preprocessing folder.

The reference tests read `tests/data/reference_clip_small.npz`, a 65 kB crop of the shared
reference clip in the same layout (made by `tests/data/make_reference_fixture.py`). The full
18 MB clip `../shared/reference/josh_synthetic_clip.npz` (resolved from the repository root) is
checked too when it is there, and those tests are skipped with the reason otherwise.
"""

import importlib.util
import os
import sys

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from body_models import lbs, load_model
from josh_jax import clip as clip_lib
from josh_jax.clip import ClipFormatError
from josh_jax.clip.importers import reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(REPO, "tests", "data", "reference_clip_small.npz")
FULL = os.path.normpath(os.path.join(REPO, "..", "shared", "reference",
                                     "josh_synthetic_clip.npz"))
needs_full = pytest.mark.skipif(not os.path.exists(FULL),
                                reason=f"shared reference clip not found at {FULL}")
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def raycast(origin, dirs, vertices, faces):
    """Nearest hit parameter t along each ray `origin + t * dirs` (Moller-Trumbore); inf if none."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    e1, e2 = b - a, c - a
    p = np.cross(dirs[:, None], e2[None])
    det = np.einsum("nfk,fk->nf", p, e1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - a
    u = np.einsum("nfk,fk->nf", p, s) * inv
    q = np.cross(s, e1)
    v = np.einsum("nk,fk->nf", dirs, q) * inv
    t = np.einsum("fk,fk->f", e2, q)[None] * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
    return np.where(hit, t, np.inf).min(axis=1)


def scene_depth_errors(d, vertices, faces, frames, pixels_per_frame, seed=0):
    """|pred_depth / frame_scale / raycast depth - 1| at random non-human pixels of `frames`."""
    rng = np.random.default_rng(seed)
    _, H, W = d["pred_depth"].shape
    f = float(d["gt_K"][0, 0])
    errors = []
    for t in frames:
        u = rng.integers(0, W, pixels_per_frame)
        v = rng.integers(0, H, pixels_per_frame)
        keep = ~d["gt_human_mask"][t][v, u]
        u, v = u[keep], v[keep]
        dirs_cam = np.stack([(u - W / 2) / f, (v - H / 2) / f, np.ones(len(u))], -1)
        T_world_cam = d["gt_cam2w"][t]
        z = raycast(T_world_cam[:3, 3], dirs_cam @ T_world_cam[:3, :3].T, vertices, faces)
        errors.append(np.abs(d["pred_depth"][t][v, u] / d["gt_frame_scale"][t] / z - 1))
    return np.concatenate(errors)


def match_world_errors(d, clip, gt, pair_ids, swap=False):
    """Distance / depth between the two world points of each real match (noisy depth, GT cams)."""
    _, H, W = d["pred_depth"].shape
    f = float(d["gt_K"][0, 0])

    def world(t, xy):
        u, v = xy[:, 0].astype(int), xy[:, 1].astype(int)
        z = d["pred_depth"][t][v, u] / d["gt_frame_scale"][t]
        x_cam = np.stack([(u - W / 2) / f * z, (v - H / 2) / f * z, z], -1)
        return x_cam @ gt.gt_T_world_cam[t][:3, :3].T + gt.gt_T_world_cam[t][:3, 3], z

    errors = []
    for e in pair_ids:
        i, j = clip.pairs[e]
        real = clip.match_confidence[e] > 0
        side_i, side_j = (1, 0) if swap else (0, 1)
        a, z = world(i, clip.matches[e, real, side_i])
        b, _ = world(j, clip.matches[e, real, side_j])
        errors.append(np.linalg.norm(a - b, axis=1) / z)
    return np.concatenate(errors)


# ------------------------------------------------------------------------------------------
# The reference layout


@pytest.fixture(scope="module")
def small():
    with np.load(SMALL) as raw:
        d = dict(raw)
    clip, gt = clip_lib.load_any(SMALL)
    return d, clip, gt


def test_fixture_is_small_and_in_reference_layout():
    assert os.path.getsize(SMALL) < 1_000_000
    with np.load(SMALL) as raw:
        assert reference.is_reference_layout(raw.files)
        assert "format_version" not in raw.files


def test_reference_shapes(small):
    d, clip, gt = small
    T, H, W = d["pred_depth"].shape
    E = len(d["corr_pairs"])
    Mmax = int(np.diff(d["corr_offsets"]).max())
    assert clip.pointmaps.shape == (T, H, W, 3) and clip.confidence.shape == (T, H, W)
    assert clip.matches.shape == (E, Mmax, 2, 2) and clip.match_confidence.shape == (E, Mmax)
    assert clip.smpl_body_pose.shape == (1, T, 23, 3, 3) and clip.contact.shape == (1, T, 6890)
    assert clip.body_model == "synthetic_smpl_neutral" and clip.focal_init is None
    assert gt.gt_scene_faces.shape == (12 * (1 + len(d["gt_boxes"])), 3)
    assert gt.gt_joints_world_all.shape == (1, int(d["n_video_frames"]), 24, 3)


def test_reference_pointmaps_are_exact(small):
    d, clip, _ = small
    z = d["pred_depth"].astype(np.float64)
    f = float(d["pred_focal"])
    _, H, W = z.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    expected = np.stack([(u - W / 2) * z / f, (v - H / 2) * z / f, z], -1).astype(np.float32)
    np.testing.assert_array_equal(clip.pointmaps, expected)
    np.testing.assert_array_equal(clip.pointmaps[..., 2], d["pred_depth"])
    # The pointmaps' focal is recoverable from them (docs/clip_format.md).
    x = clip.pointmaps[:, :, W - 1, 0].astype(np.float64)
    np.testing.assert_allclose((W - 1 - W / 2) * z[:, :, W - 1] / x, f, rtol=1e-6)


def test_reference_confidence_mask_and_images(small):
    d, clip, gt = small
    np.testing.assert_array_equal(clip.confidence, d["mast3r_conf"])
    np.testing.assert_array_equal(clip.human_mask, d["mast3r_conf"] == 1.0)
    np.testing.assert_array_equal(clip.human_mask, d["gt_human_mask"])
    assert clip.human_mask.any() and not clip.human_mask.all()
    np.testing.assert_array_equal(clip.images, d["rgb"])
    np.testing.assert_array_equal(clip.frame_index, d["img_idx"])
    assert float(clip.fps) == float(d["fps"])


def test_reference_matches_are_padded_per_pair(small):
    d, clip, _ = small
    offsets = d["corr_offsets"]
    np.testing.assert_array_equal(clip.pairs, d["corr_pairs"])
    for e in range(len(d["corr_pairs"])):
        rows = slice(offsets[e], offsets[e + 1])
        n = offsets[e + 1] - offsets[e]
        np.testing.assert_array_equal(clip.matches[e, :n, 0], d["corr_xy_i"][rows])
        np.testing.assert_array_equal(clip.matches[e, :n, 1], d["corr_xy_j"][rows])
        np.testing.assert_array_equal(clip.match_confidence[e, :n], d["corr_conf"][rows])
        assert np.all(clip.match_confidence[e, n:] == 0) and np.all(clip.matches[e, n:] == 0)
    np.testing.assert_array_equal(clip.pair_scores, d["corr_scores"][:, 2])
    np.testing.assert_array_equal(clip_lib.default_pair_scores(clip.replace(pair_scores=None)),
                                  np.diff(offsets))


def test_reference_matches_land_on_the_same_world_point(small):
    """Side 0 of a match is in frame pairs[e, 0], side 1 in pairs[e, 1], pixels as (x, y)."""
    d, clip, gt = small
    pairs = range(clip.num_pairs)
    # The fixture floors pixels to every 8th (up to 7 reference pixels off): a loose bound. Its
    # three keyframes are close together, so swapped sides are only ~3x worse (full file: 400x).
    right = np.median(match_world_errors(d, clip, gt, pairs))
    swapped = np.median(match_world_errors(d, clip, gt, pairs, swap=True))
    assert right < 0.05 and swapped > 2 * right, (right, swapped)


def test_reference_hmr_rows_are_taken_at_keyframes(small):
    d, clip, _ = small
    rows = [int(np.flatnonzero(d["hmr_frame"] == f)[0]) for f in d["img_idx"]]
    assert rows == list(d["img_idx"])  # one HMR row per video frame
    np.testing.assert_array_equal(clip.smpl_global_orient[0], d["hmr_rotmat"][rows, 0])
    np.testing.assert_array_equal(clip.smpl_body_pose[0], d["hmr_rotmat"][rows, 1:])
    np.testing.assert_array_equal(clip.smpl_betas[0], d["hmr_shape"][rows])
    np.testing.assert_array_equal(clip.smpl_transl[0], d["hmr_trans"][rows])
    np.testing.assert_array_equal(clip.contact[0], d["deco_contact"][rows])
    np.testing.assert_allclose(float(clip.hmr_focal), float(d["hmr_focal"]), rtol=1e-7)
    assert clip.smpl_valid.all()


def test_reference_ground_truth(small):
    d, clip, gt = small
    idx = d["img_idx"]
    np.testing.assert_array_equal(gt.gt_T_world_cam, d["gt_cam2w"])
    assert float(gt.gt_focal) == float(d["gt_K"][0, 0])
    np.testing.assert_allclose(float(gt.gt_pointmap_scale), 1 / 0.35, rtol=1e-12)
    # Independent axis-angle conversion (scipy) for the world-frame SMPL rotations.
    want = Rotation.from_rotvec(d["gt_global_orient"][idx]).as_matrix()
    np.testing.assert_allclose(gt.gt_smpl_global_orient[0], want, atol=1e-12)
    aa = d["gt_body_pose"][idx].reshape(-1, 3)
    want = Rotation.from_rotvec(aa).as_matrix().reshape(len(idx), 23, 3, 3)
    np.testing.assert_allclose(gt.gt_smpl_body_pose[0], want, atol=1e-12)
    np.testing.assert_array_equal(gt.gt_smpl_transl[0], d["gt_transl"][idx])
    np.testing.assert_array_equal(gt.gt_smpl_betas[0], np.tile(d["gt_betas"], (len(idx), 1)))
    np.testing.assert_array_equal(gt.gt_contact[0], d["gt_contact"][idx])
    np.testing.assert_array_equal(gt.gt_T_world_cam_all, d["gt_cam2w_all"])
    np.testing.assert_array_equal(gt.gt_joints_world_all[0], d["gt_joints24_world"])
    np.testing.assert_array_equal(gt.gt_frame_index, np.arange(int(d["n_video_frames"])))
    # The keyframe cameras are the every-frame cameras at gt_frame_index == frame_index.
    np.testing.assert_array_equal(gt.gt_T_world_cam_all[clip.frame_index], gt.gt_T_world_cam)


def test_reference_world_smpl_reproduces_gt_joints_and_contacts(small):
    """The imported world SMPL, posed by the reference body, gives the reference's world joints."""
    _, clip, gt = small
    body = load_model(os.path.join(REPO, "tests", "data", "synthetic_smpl_neutral.npz"))
    args = (gt.gt_smpl_betas[0], gt.gt_smpl_global_orient[0], gt.gt_smpl_body_pose[0],
            gt.gt_smpl_transl[0])
    out = jax.vmap(lambda b, R, P, t: lbs(body, b, R, P, t))(*(a.astype(np.float32) for a in args))
    want = gt.gt_joints_world_all[0][clip.frame_index]
    np.testing.assert_allclose(np.asarray(out.joints), want, atol=1e-5)
    # True contact vertices touch the floor (y = 0) within the generator's 2 cm threshold.
    heights = np.asarray(out.vertices)[gt.gt_contact[0]][:, 1]
    assert heights.size > 0 and np.all(np.abs(heights) < 0.02 + 1e-5)


def test_reference_scene_mesh_matches_depth(small):
    d, _, gt = small
    T = len(d["img_idx"])
    errors = scene_depth_errors(d, gt.gt_scene_vertices, gt.gt_scene_faces, range(T), 400)
    # pred_depth has 2% smooth noise and blurred edges: most pixels agree within a few percent.
    assert len(errors) > 500 and np.all(np.isfinite(errors))
    assert np.median(errors) < 0.04, np.median(errors)
    assert np.mean(errors < 0.1) > 0.9, np.mean(errors < 0.1)


def test_imported_clip_round_trips(small, tmp_path):
    _, clip, gt = small
    path = tmp_path / "ours.npz"
    clip_lib.save_clip(path, clip, gt)
    clip2, gt2 = clip_lib.load_any(path)
    a, b = clip_lib.to_arrays(clip, gt), clip_lib.to_arrays(clip2, gt2)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_load_any_refuses_unknown_layout(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, depth=np.zeros((2, 3, 4)))
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.load_any(path)
    assert excinfo.value.field == "format_version" and "\n" not in str(excinfo.value)
    assert "reference layout" in str(excinfo.value)


def test_reference_missing_key_is_named(tmp_path):
    with np.load(SMALL) as raw:
        d = dict(raw)
    del d["hmr_shape"]
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.import_reference_arrays(d, source="x.npz")
    assert excinfo.value.field == "hmr_shape" and str(excinfo.value).startswith("x.npz")


def test_pad_matches_small_example():
    offsets = np.array([0, 2, 2, 5])
    xy_i = np.arange(10).reshape(5, 2)
    xy_j = xy_i + 100
    conf = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    matches, mconf = reference.pad_matches(offsets, xy_i, xy_j, conf)
    assert matches.shape == (3, 3, 2, 2)
    np.testing.assert_array_equal(mconf, [[1, 2, 0], [0, 0, 0], [3, 4, 5]])
    np.testing.assert_array_equal(matches[2, 1, 1], [106, 107])
    np.testing.assert_array_equal(matches[1], 0)


@pytest.fixture(scope="module")
def full():
    if not os.path.exists(FULL):
        pytest.skip(f"shared reference clip not found at {FULL}")
    return clip_lib.load_any(FULL)


@needs_full
def test_full_reference_clip_imports_with_documented_shapes(full):
    clip, gt = full
    assert clip.pointmaps.shape == (21, 288, 512, 3)
    assert clip.pairs.shape == (155, 2) and clip.matches.shape == (155, 4400, 2, 2)
    assert int(np.sum(clip.match_confidence > 0)) == 600103
    assert clip.smpl_transl.shape == (1, 21, 3) and clip.contact.shape == (1, 21, 6890)
    np.testing.assert_array_equal(clip.frame_index, np.arange(0, 101, 5))
    assert clip.matches.nbytes + clip.match_confidence.nbytes < 16e6
    assert gt.gt_T_world_cam_all.shape == (101, 4, 4)
    assert gt.gt_joints_world_all.shape == (1, 101, 24, 3)
    assert float(gt.gt_focal) == 420.0


@needs_full
def test_full_reference_matches_land_on_the_same_world_point(full):
    with np.load(FULL) as raw:
        d = {k: raw[k] for k in ("pred_depth", "gt_K", "gt_frame_scale")}
    clip, gt = full
    pairs = (0, 9, 40, 154)  # (0, 1), (0, 10), (4, 5), (19, 20)
    errors = match_world_errors(d, clip, gt, pairs)
    # 2% smooth depth noise, 0.6 px match noise, 3% outliers (CLIP_FORMAT.md noise_params).
    assert np.median(errors) < 0.03 and np.mean(errors < 0.05) > 0.8
    swapped = match_world_errors(d, clip, gt, pairs, swap=True)
    assert np.median(swapped) > 3 * np.median(errors), (np.median(errors), np.median(swapped))


@needs_full
def test_full_reference_box_yaw_convention():
    """Boxes rotate by +yaw about +y: the mirrored convention disagrees with the depth maps."""
    with np.load(FULL) as raw:
        d = {k: raw[k] for k in ("pred_depth", "gt_K", "gt_cam2w", "gt_human_mask",
                                 "gt_frame_scale", "gt_room", "gt_boxes")}
    mirrored = d["gt_boxes"].copy()
    mirrored[:, 5] *= -1
    meshes = [reference.scene_mesh_from_boxes(d["gt_room"], b) for b in (d["gt_boxes"], mirrored)]
    frames = range(0, 21, 4)
    err_ok, err_mirror = (scene_depth_errors(d, v, f, frames, 3000, seed=1) for v, f in meshes)
    differ = np.abs(err_ok - err_mirror) > 0.05  # pixels where the two conventions disagree
    assert differ.sum() > 100
    assert np.median(err_ok[differ]) < 0.06 and np.median(err_mirror[differ]) > 0.15


# ------------------------------------------------------------------------------------------
# JOSH's preprocessing folder


T_CLIP, H, W, H_OG, W_OG = 3, 6, 8, 12, 16
FRAMES = np.array([10, 15, 20])


def _rotmats(n, seed):
    return Rotation.random(n * 24, random_state=seed).as_matrix().reshape(n, 24, 3, 3)


TRACKS = ((0, np.arange(8, 23)), (3, np.array([14, 15, 16])))


def make_josh_folder(root, tensor, tracks=TRACKS):
    """A tiny JOSH input folder: tram/deco per track (via `tensor`), union masks, front-end npz."""
    os.makedirs(root / "tram")
    os.makedirs(root / "deco")
    os.makedirs(root / "mask")
    truth = {}
    for tid, frames in tracks:
        n = len(frames)
        rng = np.random.default_rng(tid)
        track = dict(
            id=tid,
            pred_rotmat=_rotmats(n, tid).astype(np.float32),
            pred_shape=rng.normal(size=(n, 10)).astype(np.float32),
            pred_trans=rng.normal(size=(n, 1, 3)).astype(np.float32),
            frame=frames.astype(np.int64),
        )
        truth[tid] = dict(track, deco=(rng.uniform(size=(n, 6890)) < 0.1).astype(np.float64))
        np.save(root / "tram" / f"hps_track_{tid}.npy",
                {k: (tensor(v) if isinstance(v, np.ndarray) else v) for k, v in track.items()},
                allow_pickle=True)
        np.save(root / "deco" / f"hps_track_{tid}.npy", truth[tid]["deco"])
    rng = np.random.default_rng(9)
    for f in range(25):
        iio.imwrite(root / "mask" / f"{f:06d}.png",
                    np.where(rng.uniform(size=(H_OG, W_OG)) < 0.3, 255, 0).astype(np.uint8))
    z = rng.uniform(1, 2, (T_CLIP, H, W, 1)).astype(np.float32)
    frontend = dict(
        frame_index=FRAMES,
        pointmaps=np.concatenate([rng.normal(size=(T_CLIP, H, W, 2)) * z, z], -1),
        confidence=rng.uniform(1, 3, (T_CLIP, H, W)).astype(np.float32),
        pairs=np.array([[0, 1], [0, 2], [1, 2]], np.int32),
        matches=rng.integers(0, 6, (3, 5, 2, 2)).astype(np.float32),
        match_confidence=rng.uniform(0.5, 1, (3, 5)).astype(np.float32),
        fps=np.float32(25.0),
    )
    np.savez(root / "frontend.npz", **frontend)
    return truth, frontend


def _torch_tensor(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def _check_josh_clip(clip, truth, frontend, root):
    assert clip.num_people == 2 and clip.track_id.tolist() == [0, 3]
    np.testing.assert_array_equal(clip.pointmaps, frontend["pointmaps"].astype(np.float32))
    np.testing.assert_array_equal(clip.frame_index, FRAMES)
    assert float(clip.fps) == 25.0
    np.testing.assert_allclose(float(clip.hmr_focal), np.hypot(H_OG, W_OG) * W / W_OG, rtol=1e-6)
    for p, tid in enumerate((0, 3)):
        t = truth[tid]
        for k, frame in enumerate(FRAMES):
            rows = np.flatnonzero(t["frame"] == frame)
            assert clip.smpl_valid[p, k] == (len(rows) == 1)
            if len(rows):
                r = rows[0]
                np.testing.assert_array_equal(clip.smpl_global_orient[p, k], t["pred_rotmat"][r, 0])
                np.testing.assert_array_equal(clip.smpl_body_pose[p, k], t["pred_rotmat"][r, 1:])
                np.testing.assert_array_equal(clip.smpl_betas[p, k], t["pred_shape"][r])
                np.testing.assert_array_equal(clip.smpl_transl[p, k], t["pred_trans"][r, 0])
                np.testing.assert_array_equal(clip.contact[p, k], t["deco"][r])
            else:
                np.testing.assert_array_equal(clip.smpl_global_orient[p, k], np.eye(3))
                assert not clip.contact[p, k].any()
    assert clip.smpl_valid[1].tolist() == [False, True, False]
    # Nearest-neighbour downsampling by 2 of the union masks picks source pixel 2i + 1.
    for k, frame in enumerate(FRAMES):
        m = iio.imread(root / "mask" / f"{frame:06d}.png")
        np.testing.assert_array_equal(clip.human_mask[k], m[1::2, 1::2] > 0)


def test_josh_folder_refuses_pickles_by_default(tmp_path):
    make_josh_folder(tmp_path, tensor=lambda x: x)
    with pytest.raises(clip_lib.PickleRefusedError, match="allow_pickle=True"):
        clip_lib.import_josh_folder(tmp_path, tmp_path / "frontend.npz")


def test_josh_folder_with_numpy_pickles(tmp_path):
    truth, frontend = make_josh_folder(tmp_path, tensor=lambda x: x)
    clip, gt = clip_lib.load_any(tmp_path, allow_pickle=True)
    assert gt is None
    _check_josh_clip(clip, truth, frontend, tmp_path)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (optional 'torch' extra)")
def test_josh_folder_with_torch_tensors(tmp_path):
    truth, frontend = make_josh_folder(tmp_path, tensor=_torch_tensor)
    clip = clip_lib.import_josh_folder(tmp_path, tmp_path / "frontend.npz", allow_pickle=True)
    _check_josh_clip(clip, truth, frontend, tmp_path)
    clip_lib.save_clip(tmp_path / "clip.npz", clip)
    assert clip_lib.load_clip(tmp_path / "clip.npz")[0].num_people == 2


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is needed to write the torch pickles")
def test_josh_folder_without_torch_says_how_to_install(tmp_path, monkeypatch):
    make_josh_folder(tmp_path, tensor=_torch_tensor)
    # Simulate a machine without torch: every torch module import now fails.
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")] + ["torch"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'josh-jax\[torch\]'") as excinfo:
        clip_lib.import_josh_folder(tmp_path, tmp_path / "frontend.npz", allow_pickle=True)
    assert "hps_track_0.npy" in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_josh_folder_without_people_is_scene_only(tmp_path):
    make_josh_folder(tmp_path, tensor=lambda x: x, tracks=())
    clip = clip_lib.import_josh_folder(tmp_path, tmp_path / "frontend.npz")
    assert clip.num_people == 0 and "scene only" in clip.describe()


def test_josh_folder_frontend_errors(tmp_path):
    _, frontend = make_josh_folder(tmp_path, tensor=lambda x: x, tracks=())
    bad = dict(frontend, matches=frontend["matches"] + 100)
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.import_josh_folder(tmp_path, bad)
    assert excinfo.value.field == "matches"
    missing = {k: v for k, v in frontend.items() if k != "pairs"}
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.import_josh_folder(tmp_path, missing)
    assert excinfo.value.field == "pairs"
    with pytest.raises(ClipFormatError) as excinfo:
        clip_lib.import_josh_folder(tmp_path, dict(frontend, depth=np.zeros(2)))
    assert excinfo.value.field == "depth"


def test_josh_folder_missing_deco_is_named(tmp_path):
    make_josh_folder(tmp_path, tensor=lambda x: x)
    os.remove(tmp_path / "deco" / "hps_track_3.npy")
    with pytest.raises(FileNotFoundError, match="deco/hps_track_3.npy"):
        clip_lib.import_josh_folder(tmp_path, tmp_path / "frontend.npz", allow_pickle=True)
