"""Small, self-consistent Results for the exporter and viewer tests (built by `assemble_result`,
so joints_world, vertices_world and the SMPL parameters agree through `body_models.lbs`)."""

import functools

import numpy as np
from scipy.spatial.transform import Rotation

import body_models
from josh_jax import result as result_lib

# SMPL-X's 55-joint tree: SMPL's first 22 joints, jaw and eyes under the head, 15 joints per hand.
SMPLX_PARENTS = ([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
                 + [15, 15, 15]
                 + [20 if k % 3 == 0 else 25 + k - 1 for k in range(15)]
                 + [21 if k % 3 == 0 else 40 + k - 1 for k in range(15)])


@functools.cache
def random_smplx_model(num_vertices: int = 400, seed: int = 0):
    """A random SMPL-X-layout body (55 joints, 10 betas + 10 expression), no licence needed."""
    rng = np.random.default_rng(seed)
    J, V = len(SMPLX_PARENTS), num_vertices
    v = rng.normal(size=(V, 3)) * [0.2, 0.5, 0.1] + [0.0, 0.3, 0.0]
    weights = rng.random((V, J)) ** 8
    weights /= weights.sum(1, keepdims=True)
    regressor = rng.random((J, V)) ** 8
    regressor /= regressor.sum(1, keepdims=True)
    kintree = np.stack([np.array(SMPLX_PARENTS), np.arange(J)]).astype(np.int64)
    kintree[0, 0] = 2**32 - 1
    data = dict(v_template=v, shapedirs=rng.normal(size=(V, 3, 320)) * 0.01,
                posedirs=rng.normal(size=(V, 3, (J - 1) * 9)) * 0.001, J_regressor=regressor,
                weights=weights, kintree_table=kintree,
                f=rng.integers(0, V, size=(2 * V, 3)))
    return body_models.model_from_arrays(data, name="smplx_neutral")


def make_body_result(body_model, *, seed: int = 0, P: int = 2, keyframes=(0, 4, 8, 12),
                     H: int = 24, W: int = 32, vary_betas: bool = False):
    """A Result on `body_model`: P walking-ish people in front of a moving camera.

    Track 1 is missing at keyframe 2 (a gap of invalid video frames in the middle).
    """
    rng = np.random.default_rng(seed)
    keyframes = np.asarray(keyframes)
    T = len(keyframes)
    J = len(body_model.parents)
    T_key = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
    T_key[:, :3, :3] = Rotation.from_rotvec(rng.normal(size=(T, 3)) * 0.1).as_matrix()
    T_key[:, :3, 3] = np.cumsum(rng.normal(size=(T, 3)) * 0.1, axis=0)
    upright = Rotation.from_euler("x", 180, degrees=True)  # model y-up -> camera y-down
    R_cam = np.stack([
        (upright * Rotation.from_rotvec(rng.normal(size=(T, 3)) * 0.3)).as_matrix()
        for _ in range(P)])
    pose = Rotation.from_rotvec(rng.normal(size=(P * T * (J - 1), 3)) * 0.3).as_matrix()
    betas = rng.normal(size=(P, T if vary_betas else 1, body_model.num_betas)) * 0.5
    betas = np.broadcast_to(betas, (P, T, body_model.num_betas))
    t_cam = np.stack([[1.0 * p - 0.5, 0.0, 4.0] for p in range(P)])[:, None] + rng.normal(
        size=(P, T, 3)) * 0.1
    valid = np.ones((P, T), bool)
    if P > 1:
        valid[1, 2] = False
    return result_lib.assemble_result(
        keyframe_index=keyframes,
        T_world_cam_key=T_key,
        K=np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]),
        depth_key=rng.uniform(3.0, 6.0, size=(T, H, W)),
        conf_key=np.ones((T, H, W)),
        scene_mask_key=rng.random((T, H, W)) > 0.2,
        images=rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8),
        smpl_global_orient_cam=R_cam,
        smpl_body_pose=pose.reshape(P, T, J - 1, 3, 3),
        smpl_betas=betas,
        smpl_transl_cam=t_cam,
        smpl_valid=valid,
        body_model=body_model,
        fps=30.0,
        scene_stride=2,
    )


@functools.cache
def mannequin_result(seed: int, vary_betas: bool = False):
    """`make_result` on the built-in mannequin (cached: test modules share results and compiles)."""
    return make_body_result(body_models.mannequin(), seed=seed, vary_betas=vary_betas)


@functools.cache
def smplx_result():
    """`make_result` on `random_smplx_model()` (cached)."""
    return make_body_result(random_smplx_model(), seed=3)
