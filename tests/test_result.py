"""Result assembly: SE(3) interpolation of cameras, world SMPL by pelvis-offset conjugation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

import body_models
from josh_jax import geometry as geo
from josh_jax import interpolation, world
from josh_jax import result as result_lib


def _random_T(rng, n, trans_scale=1.0):
    R = Rotation.random(n, random_state=rng).as_matrix()
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = R
    T[:, :3, 3] = rng.normal(size=(n, 3)) * trans_scale
    return T.astype(np.float32)


def test_brackets_and_valid():
    keys = np.array([0.0, 5.0, 10.0, 15.0])
    lo, hi, alpha = interpolation.brackets(keys, np.arange(16.0))
    np.testing.assert_array_equal(lo, [0] * 5 + [1] * 5 + [2] * 5 + [2])
    np.testing.assert_allclose(alpha[:5], np.arange(5) / 5)
    assert alpha[15] == 1.0 and hi[15] == 3
    valid = jnp.array([True, True, False, True])
    v = interpolation.interpolated_valid(valid, lo, hi, alpha)
    # Frames 0..5 are bracketed by valid keys; 6..14 touch the invalid key 10; 10 is that key.
    np.testing.assert_array_equal(v, [True] * 6 + [False] * 9 + [True])


def test_slerp_rotations_matches_scipy():
    rng = np.random.default_rng(0)
    R_keys = Rotation.random(3, random_state=rng).as_matrix().astype(np.float32)
    t_keys = np.array([0.0, 4.0, 10.0])
    t_query = np.linspace(0, 10, 23)
    lo, hi, alpha = interpolation.brackets(t_keys, t_query)
    R = interpolation.slerp_rotations(jnp.asarray(R_keys), lo, hi, alpha)
    expected = Slerp(t_keys, Rotation.from_matrix(R_keys))(t_query).as_matrix()
    np.testing.assert_allclose(R, expected, atol=2e-5)


def test_camera_interpolation_hits_keyframes_and_interpolates(mannequin):
    rng = np.random.default_rng(1)
    keyframes = np.array([3, 8, 13, 18])
    T_key = _random_T(rng, 4)
    res = _assemble(mannequin, keyframes, T_key, P=0)
    T_norm = np.linalg.inv(T_key[0]) @ T_key
    np.testing.assert_array_equal(res.frame_index, np.arange(3, 19))
    np.testing.assert_allclose(res.T_world_cam[0], np.eye(4), atol=1e-5)
    np.testing.assert_allclose(res.T_world_cam[res.keyframe_positions], T_norm, atol=1e-5)
    # In between: linear translation and scipy slerp (independent implementation).
    slerp = Slerp(keyframes.astype(float), Rotation.from_matrix(T_norm[:, :3, :3].astype(float)))
    frames = np.arange(3, 19).astype(float)
    np.testing.assert_allclose(res.T_world_cam[:, :3, :3], slerp(frames).as_matrix(), atol=2e-5)
    for k in range(3):
        a = (frames[5 * k + 2] - keyframes[k]) / 5.0
        expected_t = (1 - a) * T_norm[k, :3, 3] + a * T_norm[k + 1, :3, 3]
        np.testing.assert_allclose(res.T_world_cam[5 * k + 2, :3, 3], expected_t, atol=1e-5)


def test_world_smpl_conjugation_equals_posing_in_world(mannequin):
    rng = np.random.default_rng(2)
    betas = jnp.asarray(rng.normal(size=10) * 0.8, jnp.float32)
    R_cam = jnp.asarray(Rotation.random(random_state=rng).as_matrix(), jnp.float32)
    pose = jnp.asarray(Rotation.from_rotvec(rng.normal(size=(23, 3)) * 0.3).as_matrix(),
                       jnp.float32)
    t_cam = jnp.asarray([0.3, -0.2, 4.0], jnp.float32)
    T_world_cam = jnp.asarray(_random_T(rng, 1, trans_scale=2.0)[0])

    lbs = jax.jit(body_models.lbs)
    body_cam = lbs(mannequin, betas, R_cam, pose, t_cam)
    pelvis = body_models.rest_joints(mannequin, betas)[0]
    assert float(jnp.linalg.norm(pelvis)) > 1e-3  # the offset matters for this test
    R_w, t_w = world.camera_to_world_smpl(T_world_cam, R_cam, t_cam, pelvis)
    body_world = lbs(mannequin, betas, R_w, pose, t_w)

    np.testing.assert_allclose(body_world.vertices, geo.se3_apply(T_world_cam, body_cam.vertices),
                               atol=2e-5)
    np.testing.assert_allclose(body_world.joints, geo.se3_apply(T_world_cam, body_cam.joints),
                               atol=2e-5)
    # Without the offset the naive composition is wrong, so the test can fail.
    naive = lbs(mannequin, betas, T_world_cam[:3, :3] @ R_cam, pose,
                            T_world_cam[:3, :3] @ t_cam + T_world_cam[:3, 3])
    assert float(jnp.abs(naive.vertices - body_world.vertices).max()) > 1e-3


def test_assembled_bodies_at_keyframes_and_validity(mannequin):
    rng = np.random.default_rng(3)
    keyframes = np.array([0, 4, 8, 12])
    T_key = _random_T(rng, 4)
    P, Tk = 2, 4
    R_cam = Rotation.random(P * Tk, random_state=rng).as_matrix().reshape(P, Tk, 3, 3)
    pose = Rotation.from_rotvec(rng.normal(size=(P * Tk * 23, 3)) * 0.2).as_matrix()
    pose = pose.reshape(P, Tk, 23, 3, 3)
    betas = rng.normal(size=(P, 10)) * 0.5
    t_cam = rng.normal(size=(P, Tk, 3)) + [0, 0, 4]
    valid = np.array([[True, True, True, True], [True, True, False, True]])
    res = _assemble(mannequin, keyframes, T_key, P=P, R_cam=R_cam, pose=pose, betas=betas,
                    t_cam=t_cam, valid=valid)
    T_norm = np.linalg.inv(T_key[0]) @ T_key
    lbs = jax.jit(body_models.lbs)
    assert res.joints_world.shape == (P, 13, 24, 3)
    assert res.vertices_world.shape == (P, 13, mannequin.v_template.shape[0], 3)
    for p in range(P):
        for k, f in enumerate(res.keyframe_positions):
            if not valid[p, k]:
                continue
            cam = lbs(mannequin, jnp.asarray(betas[p], jnp.float32),
                                  jnp.asarray(R_cam[p, k], jnp.float32),
                                  jnp.asarray(pose[p, k], jnp.float32),
                                  jnp.asarray(t_cam[p, k], jnp.float32))
            expected = geo.se3_apply(jnp.asarray(T_norm[k]), cam.joints)
            np.testing.assert_allclose(res.joints_world[p, f], expected, atol=1e-4)
    # Track 1 has no keyframe 8: frames 5..11 are invalid and zeroed; frame 12 is valid again.
    np.testing.assert_array_equal(res.smpl_valid[1], [True] * 5 + [False] * 7 + [True])
    assert res.smpl_valid[0].all()
    assert not res.joints_world[1, 5:12].any()
    # In between two valid keyframes the body moves continuously (between its neighbours).
    mid = res.smpl_transl[0, 2]
    np.testing.assert_allclose(mid, 0.5 * (res.smpl_transl[0, 0] + res.smpl_transl[0, 4]),
                               atol=1e-5)


def test_scene_points_reproject(mannequin):
    rng = np.random.default_rng(4)
    keyframes = np.array([0, 2])
    T_key = _random_T(rng, 2)
    res = _assemble(mannequin, keyframes, T_key, P=0, stride=2)
    assert res.scene_points_world.shape == (2, 6, 8, 3)
    T_norm = np.linalg.inv(T_key[0]) @ T_key
    K = np.asarray(res.K[0])
    for k in range(2):
        x_cam = geo.se3_apply(jnp.asarray(np.linalg.inv(T_norm[k])),
                              jnp.asarray(res.scene_points_world[k].reshape(-1, 3)))
        uv = np.asarray(geo.project(jnp.asarray(K), x_cam)).reshape(6, 8, 2)
        expected = np.asarray(geo.pixel_grid(12, 16))[::2, ::2]
        np.testing.assert_allclose(uv, expected, atol=2e-3)
        np.testing.assert_allclose(np.asarray(x_cam)[:, 2].reshape(6, 8),
                                   _DEPTH[k, ::2, ::2], rtol=1e-5)
    assert res.scene_mask.sum() == (_MASK[:2, ::2, ::2]).sum()


def test_bad_input_names_the_field(mannequin):
    with pytest.raises(ValueError, match="keyframe_index.*strictly increasing"):
        _assemble(mannequin, np.array([0, 5, 5]), _random_T(np.random.default_rng(0), 3), P=0)


# ---------------------------------------------------------------------------------------------

_DEPTH = 2.0 + np.random.default_rng(9).random((4, 12, 16)).astype(np.float32)
_MASK = np.random.default_rng(10).random((4, 12, 16)) > 0.25


def _assemble(model, keyframes, T_key, P, R_cam=None, pose=None, betas=None, t_cam=None,
              valid=None, stride=1):
    Tk = len(keyframes)
    if P == 0:
        R_cam = np.zeros((0, Tk, 3, 3))
        pose = np.zeros((0, Tk, 23, 3, 3))
        betas = np.zeros((0, 10))
        t_cam = np.zeros((0, Tk, 3))
        valid = np.zeros((0, Tk), bool)
    return result_lib.assemble_result(
        keyframe_index=keyframes,
        T_world_cam_key=T_key,
        K=np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]]),
        depth_key=_DEPTH[:Tk],
        conf_key=np.ones((Tk, 12, 16)),
        scene_mask_key=_MASK[:Tk],
        images=None,
        smpl_global_orient_cam=R_cam,
        smpl_body_pose=pose,
        smpl_betas=betas,
        smpl_transl_cam=t_cam,
        smpl_valid=valid,
        body_model=model,
        fps=30.0,
        scene_stride=stride,
    )


@pytest.fixture(scope="module")
def mannequin():
    return body_models.mannequin()


def test_jit_pieces_are_traceable():
    # The per-frame math is pure and jittable (assembly vmaps it over tracks).
    f = jax.jit(world.camera_to_world_smpl)
    R, t = f(jnp.eye(4), jnp.eye(3), jnp.zeros(3), jnp.array([0.0, 0.2, 0.0]))
    np.testing.assert_allclose(R, np.eye(3))
    np.testing.assert_allclose(t, np.zeros(3), atol=1e-7)
