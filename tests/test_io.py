"""Writers (`josh_jax.io`): every file loads back with the right content, and writes are atomic."""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from josh_jax.errors import InputError
from josh_jax.io import outputs, preview, result_npz, scene, tum
from josh_jax.result import Result


def _rotation_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


def make_result(F=11, P=2, V=40, h=6, w=8, seed=0) -> Result:
    """A hand-made Result with distinct, known values (no optimizer involved)."""
    rng = np.random.default_rng(seed)
    T_world_cam = np.tile(np.eye(4, dtype=np.float32), (F, 1, 1))
    for f in range(F):
        T_world_cam[f, :3, :3] = _rotation_z(0.05 * f)
        T_world_cam[f, :3, 3] = [0.1 * f, -0.02 * f, 0.01 * f]
    K = np.tile(np.array([[60, 0, 32], [0, 60, 24], [0, 0, 1]], np.float32), (F, 1, 1))
    keyframes = np.array([0, 5, 10], np.int32)
    Tk = len(keyframes)
    points = rng.normal(size=(Tk, h, w, 3)).astype(np.float32)
    points[..., 2] += 6.0
    mask = rng.random((Tk, h, w)) > 0.3
    valid = np.ones((P, F), bool)
    valid[1, 7:] = False
    verts = (rng.normal(size=(P, F, V, 3)) * 0.2 + [0.0, 0.0, 3.0]).astype(np.float32)
    verts[~valid] = 0.0
    return Result(
        frame_index=np.arange(F, dtype=np.int32),
        keyframe_index=keyframes,
        fps=np.float32(30.0),
        T_world_cam=T_world_cam,
        K=K,
        scene_points_world=points,
        scene_colors=rng.integers(0, 256, (Tk, h, w, 3), dtype=np.uint8),
        scene_conf=rng.random((Tk, h, w)).astype(np.float32),
        scene_mask=mask,
        smpl_global_orient=np.tile(np.eye(3, dtype=np.float32), (P, F, 1, 1)),
        smpl_body_pose=np.tile(np.eye(3, dtype=np.float32), (P, F, 23, 1, 1)),
        smpl_betas=rng.normal(size=(P, F, 10)).astype(np.float32),
        smpl_transl=rng.normal(size=(P, F, 3)).astype(np.float32),
        smpl_valid=valid,
        joints_world=rng.normal(size=(P, F, 24, 3)).astype(np.float32),
        vertices_world=verts,
        faces=rng.integers(0, V, (30, 3)).astype(np.int32),
        diagnostics={"loss_total": np.linspace(3.0, 1.0, 7), "nan": np.array(False)},
        image_size=(48, 64),
        scene_stride=8,
        body_model="mannequin",
        config_json=json.dumps({"stage1": {"iters": 5}}),
    )


REQUIRED = {"frame_index": (11,), "T_world_cam": (11, 4, 4), "K": (11, 3, 3),
            "joints_world": (2, 11, 24, 3), "smpl_valid": (2, 11)}


def test_npz_round_trip(tmp_path):
    result = make_result()
    path = result_npz.save_result_npz(str(tmp_path / "r.npz"), result, vertices="float32")
    with np.load(path, allow_pickle=False) as z:
        for key, shape in REQUIRED.items():
            assert z[key].shape == shape, key
        assert z["smpl_valid"].dtype == bool
        assert z["format_version"].item() == result_npz.NPZ_FORMAT_VERSION
        np.testing.assert_array_equal(z["diag_loss_total"], result.diagnostics["loss_total"])
    back = result_npz.load_result_npz(path)
    for name in ("T_world_cam", "K", "joints_world", "smpl_valid", "scene_points_world",
                 "scene_colors", "scene_mask", "vertices_world", "smpl_betas", "faces"):
        np.testing.assert_array_equal(np.asarray(getattr(back, name)),
                                      np.asarray(getattr(result, name)), err_msg=name)
    assert back.image_size == (48, 64) and back.scene_stride == 8
    assert json.loads(back.config_json) == {"stage1": {"iters": 5}}


def test_npz_vertices_options(tmp_path):
    result = make_result()
    half = result_npz.save_result_npz(str(tmp_path / "h.npz"), result, vertices="float16")
    none = result_npz.save_result_npz(str(tmp_path / "n.npz"), result, vertices="none")
    with np.load(half) as z:
        assert z["vertices_world"].dtype == np.float16
        # float16 keeps ~3 significant digits: about 2 mm at 3 m.
        np.testing.assert_allclose(z["vertices_world"], result.vertices_world, atol=4e-3)
    with np.load(none) as z:
        assert "vertices_world" not in z.files
    with pytest.raises(ValueError, match="vertices"):
        result_npz.save_result_npz(str(tmp_path / "x.npz"), result, vertices="int8")
    assert not (tmp_path / "x.npz").exists()


def test_load_refuses_wrong_version(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, format_version=np.asarray("something/9"))
    with pytest.raises(InputError) as excinfo:
        result_npz.load_result_npz(str(path))
    assert isinstance(excinfo.value, result_npz.ResultFormatError)
    assert str(excinfo.value) == (f"{path}: format_version: expected 'josh_jax.result/1', "
                                  "found 'something/9'")


def test_tum_parses_and_matches_poses(tmp_path):
    result = make_result()
    path = tum.write_tum(str(tmp_path / "traj.txt"), result)
    data = np.loadtxt(path, comments="#")
    assert data.shape == (11, 8)
    np.testing.assert_allclose(data[:, 0], np.arange(11) / 30.0, atol=1e-6)
    np.testing.assert_allclose(data[:, 1:4], result.T_world_cam[:, :3, 3], atol=1e-6)
    R = Rotation.from_quat(data[:, 4:8]).as_matrix()  # scipy: xyzw, as TUM
    np.testing.assert_allclose(R, result.T_world_cam[:, :3, :3], atol=1e-6)
    times, poses = tum.read_tum(path)
    np.testing.assert_allclose(poses, data[:, 1:], atol=0)


def test_glb_and_ply_load_back(tmp_path):
    result = make_result()
    glb = scene.write_glb(str(tmp_path / "s.glb"), result)
    loaded = trimesh.load(glb)
    names = set(loaded.geometry)
    assert any("scene_points" in n for n in names)
    # One body per valid (track, keyframe): track 1 is invalid at keyframe 10.
    assert sum("body_track" in n for n in names) == 5
    assert sum("camera_frame" in n for n in names) == 3
    cloud = [g for n, g in loaded.geometry.items() if "scene_points" in n][0]
    assert len(cloud.vertices) == int(result.scene_mask.sum())

    ply = scene.write_ply(str(tmp_path / "s.ply"), result)
    cloud = trimesh.load(ply)
    points, colors = scene.scene_point_cloud(result)
    np.testing.assert_allclose(np.asarray(cloud.vertices), points, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], colors)


def test_render_points_z_buffer():
    K = np.array([[10.0, 0, 4], [0, 10, 4], [0, 0, 1]])
    points = np.array([[0.0, 0, 5], [0.0, 0, 2], [0.0, 0, 9]])  # all on the optical axis
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    img = preview.render_points(points, colors, np.eye(4), K, (8, 8), splat=1, background=0)
    np.testing.assert_array_equal(img[4, 4], [0, 255, 0])  # the nearest one
    assert img.reshape(-1, 3).any(axis=1).sum() == 1
    # A 2x2 splat covers pixels (4..5, 4..5); the near point still wins all four.
    img = preview.render_points(points, colors, np.eye(4), K, (8, 8), splat=2, background=0)
    np.testing.assert_array_equal(img[4:6, 4:6].reshape(-1, 3), [[0, 255, 0]] * 4)
    assert img.reshape(-1, 3).any(axis=1).sum() == 4
    # Behind the camera: not drawn.
    img = preview.render_points(points * [1, 1, -1], colors, np.eye(4), K, (8, 8), background=0)
    assert not img.any()


def _painter_render(points, colors, K, size, splat, background=24):
    """The plain painter's algorithm (far to near, stable), identity camera: what the z-buffer
    of `render_points` must reproduce pixel for pixel, ties included."""
    H, W = size
    front = points[:, 2] > 1e-3
    pts, cols = points[front], colors[front]
    order = np.argsort(-pts[:, 2], kind="stable")
    pts, cols = pts[order], cols[order]
    u = np.rint(K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]).astype(int)
    v = np.rint(K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]).astype(int)
    image = np.full((H, W, 3), background, np.uint8)
    offsets = np.arange(splat) - (splat - 1) // 2
    for i in range(len(pts)):
        for du in offsets:
            for dv in offsets:
                if 0 <= u[i] + du < W and 0 <= v[i] + dv < H:
                    image[v[i] + dv, u[i] + du] = cols[i]
    return image


@pytest.mark.parametrize("splat", [1, 2, 3])
def test_render_points_equals_painters_algorithm_with_ties(splat):
    rng = np.random.default_rng(splat)
    points = rng.normal(size=(400, 3)) * [1.0, 1.0, 2.0]
    points[:, 2] = np.round(points[:, 2] * 2) / 2  # many equal depths; some behind the camera
    points[::5, :2] = np.round(points[::5, :2], 1)  # and many points on the same pixels
    colors = rng.integers(0, 256, size=(400, 3), dtype=np.uint8)
    K = np.array([[12.0, 0, 15], [0, 12, 10], [0, 0, 1]])
    got = preview.render_points(points, colors, np.eye(4), K, (20, 30), splat=splat)
    np.testing.assert_array_equal(got, _painter_render(points, colors, K, (20, 30), splat))


def test_mp4_frame_count(tmp_path):
    result = make_result()
    path = preview.write_preview_mp4(str(tmp_path / "p.mp4"), result, width=64)
    frames = list(iio.imiter(path, plugin="FFMPEG"))
    assert len(frames) == result.num_frames
    assert frames[0].shape == (48, 64, 3)


def test_write_all_keeps_unrelated_files_and_replaces_own(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    old = tmp_path / "clip.npz"
    old.write_bytes(b"previous result")
    written = outputs.write_all(str(tmp_path), "clip", make_result(), metrics={"x": 1.5},
                                writers=("npz", "static_glb", "tum"))
    assert other.read_text() == "mine"
    assert result_npz.load_result_npz(written["npz"]).num_frames == 11
    assert json.loads((tmp_path / "clip.metrics.json").read_text()) == {"x": 1.5}
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["notes.txt", "clip.npz", "clip.static.glb", "clip.tum.txt", "clip.metrics.json"])


def test_failure_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    existing = tmp_path / "kept.npz"
    existing.write_bytes(b"old content")

    def broken_savez(path, arrays):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(result_npz, "savez_deflated", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        result_npz.save_result_npz(str(tmp_path / "new.npz"), make_result())
    with pytest.raises(OSError, match="disk full"):
        result_npz.save_result_npz(str(existing), make_result())
    assert not (tmp_path / "new.npz").exists()
    assert existing.read_bytes() == b"old content"
    assert sorted(os.listdir(tmp_path)) == ["kept.npz"]  # no temporary left behind
