"""Viewer: the scene nodes and what they show at a frame (no browser), the offline HTML recording,
and, in headless Chromium (slow; skipped, saying why, when chromium is absent), the recording and the
live server both load with every expected scene node."""

import os
import subprocess
import sys

import numpy as np
import pytest

import body_models
from benchmarks import browser
from josh_jax.io import motion, viewer
from tests import outputs_data

# Shared with the other exporter tests (cached in outputs_data).
mannequin = pytest.fixture(scope="module", name="mannequin")(lambda: body_models.mannequin())
result = pytest.fixture(scope="module", name="result")(lambda: outputs_data.mannequin_result(0))


@pytest.fixture()
def server():
    server = viewer.start_server(quiet=True)
    yield server
    server.stop()


def _expected_names(result):
    names = {"/result/scene_points", "/result/camera_path", "/result/camera"}
    names |= {f"/result/keyframe_camera_{k}" for k in range(len(result.keyframe_index))}
    for p in range(result.num_tracks):
        names |= {f"/result/person{p}", f"/result/person{p}/body", f"/result/person{p}/path"}
        names |= {f"/result/person{p}/contact_{j}" for j in motion.CONTACT_JOINTS}
    return names


def test_scene_nodes_and_frames(server, result, mannequin):
    view = viewer.build_scene(server, result, mannequin)
    assert set(view.node_names) == _expected_names(result)
    valid = np.asarray(result.smpl_valid)
    for f in (0, 6, 12):
        viewer.show_frame(view, f)
        np.testing.assert_allclose(view.camera.position, result.T_world_cam[f, :3, 3], atol=1e-6)
        for p, person in enumerate(view.people):
            assert person.body.visible == bool(valid[p, f])
            if valid[p, f]:  # bones sit on the result's joints
                positions = np.stack([bone.position for bone in person.body.bones])
                np.testing.assert_allclose(positions, result.joints_world[p, f], atol=1e-5)
            shown = [sphere.visible for sphere in person.contact_spheres]
            assert shown == person.contacts[f].tolist()


def test_record_html_is_self_contained(tmp_path, result, mannequin):
    path = str(tmp_path / "r.html")
    names = viewer.record_html(path, result, mannequin)
    assert set(names) == _expected_names(result)
    with open(path, encoding="utf-8") as f:
        html = f.read()
    assert "window.__VISER_EMBED_DATA__=" in html
    assert "http://" not in html.split("__VISER_EMBED_DATA__")[1][:200]  # data inline, no fetch
    assert os.path.getsize(path) < 5_000_000


@pytest.mark.slow
def test_browser_renders_recording_and_live_server(tmp_path, result, mannequin):
    missing = browser.chromium_missing()
    if missing:
        pytest.skip(f"browser test not run: {missing}")
    path = str(tmp_path / "r.html")
    expected = set(viewer.record_html(path, result, mannequin))
    ready = ("window.__viserSceneTree !== undefined && "
             "Object.keys(window.__viserSceneTree.getState()).length > 10")
    count = "Object.keys(window.__viserSceneTree.getState()).filter(k => k.startsWith('/result/'))"
    live = viewer.start_server(quiet=True)
    try:
        view = viewer.build_scene(live, result, mannequin)
        stop = viewer.add_timeline(live, view, result)
        with browser.Browser(width=640, height=400, timeout_s=120) as page:
            page.open("file://" + path, until=ready)
            assert set(page.evaluate(count)) == expected
            assert page.evaluate("document.querySelectorAll('canvas').length") >= 1
            page.open(f"http://127.0.0.1:{live.get_port()}", until=ready)
            assert set(page.evaluate(count)) == expected
        stop.set()
    finally:
        live.stop()


@pytest.mark.slow
def test_view_binary_bad_input_is_one_line_exit_2(tmp_path):
    missing = str(tmp_path / "missing.npz")
    out = subprocess.run([sys.executable, "-m", "experiments.view", f"--result={missing}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {missing}: --result: expected an existing result "
                                  ".npz, found no such file")
