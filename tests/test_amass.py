"""AMASS-style npz: the keys the Blender add-ons read, and the file re-posed through `body_models`
(`amass.repose`: lbs with the file's axis-angles, then the documented z-up axis change undone)
reproduces the result's joints and vertices, which `assemble_result` computed independently."""

import numpy as np
import pytest

import body_models
from josh_jax.io import amass
from tests import outputs_data

A = amass.AMASS_FROM_WORLD
ADDON_KEYS = ("trans", "gender", "mocap_framerate", "mocap_frame_rate", "betas", "poses")


@pytest.fixture(scope="module")
def mannequin():
    return body_models.mannequin()


def _check_file(path, result, model, p):
    with np.load(path, allow_pickle=False) as data:
        z = {k: data[k] for k in data.files}
    for key in ADDON_KEYS:
        assert key in z, key
    assert float(z["mocap_framerate"]) == pytest.approx(float(result.fps))
    rows = z["frame_index"] - int(result.frame_index[0])
    valid = z["valid"]
    np.testing.assert_array_equal(valid, np.asarray(result.smpl_valid[p])[rows])
    joints, verts = amass.repose(z, model)
    err_joints = np.abs(joints[valid] - np.asarray(result.joints_world[p])[rows][valid]).max()
    err_verts = np.abs(verts[valid] - np.asarray(result.vertices_world[p])[rows][valid]).max()
    assert err_joints <= 1e-3, f"joints {err_joints * 1e3:.4f} mm"
    assert err_verts <= 1e-3, f"vertices {err_verts * 1e3:.4f} mm"
    A4 = np.eye(4)
    A4[:3, :3] = A
    np.testing.assert_allclose(A4.T @ z["T_world_cam"], np.asarray(result.T_world_cam)[rows],
                               atol=1e-5)
    np.testing.assert_allclose(z["K"], np.asarray(result.K)[rows])
    return z


def test_smpl_topology_result_round_trips(tmp_path, mannequin):
    result = outputs_data.mannequin_result(0)
    written = amass.write_amass(str(tmp_path), "clip", result, mannequin)
    assert sorted(written) == ["amass_person0", "amass_person1"]
    for p in range(2):
        z = _check_file(written[f"amass_person{p}"], result, mannequin, p)
        assert z["poses"].shape[1] == 156 and str(z["surface_model_type"]) == "smplh"
        assert not np.any(z["pose_hand"])  # SMPL has no fingers
        assert str(z["gender"]) == "neutral" and str(z["body_model"]) == "mannequin"
    # Track 1 has a gap: its rows span it, flagged invalid.
    with np.load(written["amass_person1"]) as z:
        assert not z["valid"].all() and z["valid"][0] and z["valid"][-1]


def test_smplx_result_uses_the_smplx_layout(tmp_path):
    model, result = outputs_data.random_smplx_model(), outputs_data.smplx_result()
    written = amass.write_amass(str(tmp_path), "clip", result, model)
    for p in range(2):
        z = _check_file(written[f"amass_person{p}"], result, model, p)
        assert z["poses"].shape[1] == 165 and str(z["surface_model_type"]) == "smplx"
        for key, width in (("pose_jaw", 3), ("pose_eye", 6), ("pose_hand", 90),
                           ("pose_body", 63)):
            assert z[key].shape[1] == width, key
        np.testing.assert_array_equal(z["poses"][:, 66:69], z["pose_jaw"])


def test_z_up_world(tmp_path, mannequin):
    # The fixture's bodies stand upright in front of the first camera (camera y down): in the
    # AMASS world, the head must be above the pelvis along +z.
    result = outputs_data.mannequin_result(0)
    for path in amass.write_amass(str(tmp_path), "clip", result, mannequin).values():
        with np.load(path) as z:
            joints, _ = amass.repose(dict(z), mannequin)
        up = (joints[:, 15] - joints[:, 0]) @ A.T  # head - pelvis, in the AMASS world
        assert np.all(up[:, 2] > 0.2)
