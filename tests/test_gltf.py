"""Animated glTF: re-read with pygltflib, forward kinematics from the node TRS animation reproduces
the result's joints (after the documented axis change), the skin reproduces the vertices, and the
Khronos validator reports no error (skipped, saying why, when node or the validator is absent)."""

import dataclasses

import numpy as np
import pygltflib
import pytest

import body_models
from benchmarks import gltf_check
from josh_jax.io import gltf
from tests import outputs_data

C = gltf.GLTF_FROM_WORLD


@pytest.fixture(scope="module")
def mannequin():
    return body_models.mannequin()


@pytest.fixture(scope="module")
def result():
    return outputs_data.mannequin_result(0)


@pytest.fixture(scope="module")
def glb(tmp_path_factory, result, mannequin):
    path = str(tmp_path_factory.mktemp("glb") / "r.glb")
    gltf.write_animated_glb(path, result, mannequin)
    return path, pygltflib.GLTF2().load(path)


def _joint_nodes(doc, p):
    return next(s for s in doc.skins if s.name == f"person{p}").joints


def test_animation_times_are_video_frames(glb, result):
    _, doc = glb
    (animation,) = doc.animations
    times = gltf_check.accessor_array(doc, animation.samplers[0].input)[:, 0]
    expected = (np.asarray(result.frame_index) - result.frame_index[0]) / float(result.fps)
    np.testing.assert_allclose(times, expected, atol=1e-6)


def test_forward_kinematics_matches_joints_world(glb, result):
    # Five frames, including the track-1 gap (frames 5..11 invalid for track 1).
    _, doc = glb
    valid = np.asarray(result.smpl_valid)
    assert not valid[1].all(), "the fixture must have an invalid stretch"
    worst = 0.0
    for f in (0, 3, 6, 9, 12):
        world = gltf_check.node_world_matrices(doc, f)
        for p in range(result.num_tracks):
            joints = world[_joint_nodes(doc, p), :3, 3]
            if valid[p, f]:
                expected = np.asarray(result.joints_world[p, f], np.float64) @ C.T
                worst = max(worst, np.abs(joints - expected).max())
            else:  # hidden: the root joint is scaled to zero, so every joint collapses onto it
                scale = np.linalg.norm(world[_joint_nodes(doc, p)[0], :3, :3])
                assert scale == 0.0
    assert worst <= 1e-3, f"max joint error {worst * 1e3:.4f} mm"


def test_skin_reproduces_vertices_without_pose_correctives(tmp_path, mannequin):
    # glTF skinning = smplx LBS without pose correctives: with the correctives zeroed, the GLB's
    # skinned vertices must equal the result's vertices_world (tests weights, bind matrices, betas).
    model = dataclasses.replace(mannequin, posedirs=np.zeros_like(mannequin.posedirs))
    result = outputs_data.make_body_result(model, seed=1)
    path = str(tmp_path / "r.glb")
    gltf.write_animated_glb(path, result, model, contacts=False)
    doc = pygltflib.GLTF2().load(path)
    for p, skin in enumerate(doc.skins):
        mesh_node = next(n for n in doc.nodes if n.skin == p)
        prim = doc.meshes[mesh_node.mesh].primitives[0]
        v_bind = gltf_check.accessor_array(doc, prim.attributes.POSITION)
        joints = gltf_check.accessor_array(doc, prim.attributes.JOINTS_0).astype(int)
        weights = gltf_check.accessor_array(doc, prim.attributes.WEIGHTS_0)
        ibm = gltf_check.accessor_array(doc, skin.inverseBindMatrices).reshape(-1, 4, 4)
        ibm = ibm.transpose(0, 2, 1)  # glTF matrices are column-major
        for f in (2, 12):
            world = gltf_check.node_world_matrices(doc, f)
            skin_mats = world[skin.joints] @ ibm  # [J, 4, 4]
            blended = np.einsum("vk,vkab->vab", weights, skin_mats[joints])
            verts = np.einsum("vab,vb->va", blended[:, :3, :3], v_bind) + blended[:, :3, 3]
            expected = np.asarray(result.vertices_world[p, f], np.float64) @ C.T
            np.testing.assert_allclose(verts, expected, atol=1e-4)


def test_camera_node_follows_T_world_cam(glb, result):
    _, doc = glb
    node = next(i for i, n in enumerate(doc.nodes) if n.camera is not None)
    camera = doc.cameras[doc.nodes[node].camera]
    H, W = result.image_size
    assert camera.perspective.aspectRatio == pytest.approx(W / H)
    fy = float(result.K[0, 1, 1])
    assert camera.perspective.yfov == pytest.approx(2 * np.arctan(H / 2 / fy))
    C4 = np.diag([1.0, -1.0, -1.0, 1.0])
    for f in (0, 5, 12):
        world = gltf_check.node_world_matrices(doc, f)
        np.testing.assert_allclose(world[node], C4 @ np.asarray(result.T_world_cam[f]) @ C4,
                                   atol=1e-5)


def test_betas_varying_over_frames_keep_joints_exact(tmp_path, mannequin):
    result = outputs_data.mannequin_result(2, vary_betas=True)
    path = str(tmp_path / "r.glb")
    gltf.write_animated_glb(path, result, mannequin)
    doc = pygltflib.GLTF2().load(path)
    for f in (1, 6, 11):
        joints = gltf_check.node_world_matrices(doc, f)[_joint_nodes(doc, 0), :3, 3]
        expected = np.asarray(result.joints_world[0, f], np.float64) @ C.T
        np.testing.assert_allclose(joints, expected, atol=1e-3)


def test_smplx_layout_body(tmp_path):
    model, result = outputs_data.random_smplx_model(), outputs_data.smplx_result()
    path = str(tmp_path / "r.glb")
    gltf.write_animated_glb(path, result, model)
    doc = pygltflib.GLTF2().load(path)
    assert len(_joint_nodes(doc, 0)) == 55
    joints = gltf_check.node_world_matrices(doc, 4)[_joint_nodes(doc, 0), :3, 3]
    np.testing.assert_allclose(joints, np.asarray(result.joints_world[0, 4]) @ C.T, atol=1e-3)


def test_scene_points_bounded_and_coloured(tmp_path, result, mannequin):
    path = str(tmp_path / "r.glb")
    gltf.write_animated_glb(path, result, mannequin, max_points=100)
    doc = pygltflib.GLTF2().load(path)
    points = next(m for m in doc.meshes if m.name == "scene_points").primitives[0]
    assert points.mode == pygltflib.POINTS
    assert doc.accessors[points.attributes.POSITION].count == 100
    colors = gltf_check.accessor_array(doc, points.attributes.COLOR_0)
    assert colors.shape == (100, 4) and 0.0 <= colors.min() and colors.max() <= 1.0


def test_khronos_validator_reports_no_error(glb):
    missing = gltf_check.validator_missing()
    if missing:
        pytest.skip(f"Khronos glTF validator not run: {missing}")
    path, _ = glb
    report = gltf_check.validate(path)
    issues = report["issues"]
    assert issues["numErrors"] == 0, issues["messages"]
    assert report["info"]["animationCount"] == 1 and report["info"]["hasSkins"]


def test_non_finite_frames_are_hidden_not_fatal(tmp_path, result, mannequin):
    transl = np.array(result.smpl_transl)
    transl[0, 3] = np.nan
    broken = dataclasses.replace(result, smpl_transl=transl)
    path = str(tmp_path / "r.glb")
    gltf.write_animated_glb(path, broken, mannequin)
    doc = pygltflib.GLTF2().load(path)
    root = _joint_nodes(doc, 0)[0]
    assert np.linalg.norm(gltf_check.node_world_matrices(doc, 3)[root, :3, :3]) == 0.0  # hidden
    assert np.linalg.norm(gltf_check.node_world_matrices(doc, 4)[root, :3, :3]) > 0.0
