r"""Viewer evidence: render a result's viewer recording in headless Chromium, count its scene nodes,
take the screenshots of docs/outputs.md, and put the mp4 preview frame beside the viewer's view
from the same camera.

    python -m experiments.run_josh --out=/tmp/josh                       # the built-in clip
    python -m benchmarks.viewer_screenshot --result=/tmp/josh/synthetic_seed0.npz --frame=50

Writes docs/img/viewer_overview.png, docs/img/viewer_from_camera.png,
docs/img/preview_vs_viewer.jpg, docs/img/glb_in_threejs.png (the animated GLB loaded by three.js's
GLTFLoader inside viser's client, its animation playing) and benchmarks/results/viewer_screenshot_cpu.json (node counts
expected / found in the browser, page sizes, seconds to load). Needs Debian's `chromium`.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from benchmarks import browser, common
from josh_jax import pipeline
from josh_jax.io import gltf, preview, result_npz, scene, viewer

_RESULT = flags.DEFINE_string("result", None, "Result .npz (run_josh output).", required=True)
_FRAME = flags.DEFINE_integer("frame", 50, "Frame row for the stills.")
_IMG_DIR = flags.DEFINE_string("img_dir", os.path.join(os.path.dirname(__file__), "..", "docs",
                                                       "img"), "Where the PNGs go.")
_WIDTH = flags.DEFINE_integer("width", 1024, "Browser viewport width (height: the video's aspect).")

# Wait for the page: scene tree present, WebGL has drawn frames (software GL draws slowly, and
# viser fades the scene in), then let it settle.
READY = ("window.__viserSceneTree !== undefined && window.__viserTestpoints !== undefined && "
         "window.__viserTestpoints.rendererInfo.render.frame > 20")
HIDE_NOTICES = ("document.querySelectorAll('[class*=Notification]').forEach("
                "e => e.style.display = 'none'); true")
COUNT_NODES = "Object.keys(window.__viserSceneTree.getState()).filter(k => k.startsWith('/result/'))"


def render(page: browser.Browser, html: str, png: str, settle_s: float) -> list[str]:
    """Open `html`, wait, hide viser's notices, screenshot; returns the /result/ node names."""
    page.open("file://" + os.path.abspath(html), until=READY, settle_s=settle_s)
    page.evaluate(HIDE_NOTICES)
    time.sleep(0.5)
    page.screenshot(png)
    return page.evaluate(COUNT_NODES)


def glb_page(path: str, result, body_model) -> str:
    """A self-contained page showing only the animated GLB (y-up), seen from above and behind the
    first camera."""
    server = viewer.start_server(quiet=True)
    try:
        server.scene.set_up_direction("+y")
        server.scene.add_glb("/glb", b"".join(
            gltf.build_animated_gltf(result, body_model).save_to_bytes()))
        centre = np.median(scene.scene_point_cloud(result, 20_000)[0], axis=0)
        centre = centre @ gltf.GLTF_FROM_WORLD.T
        server.initial_camera.position = centre + np.array([0.0, 4.0, 6.0])
        server.initial_camera.look_at = centre
        html = server.get_scene_serializer().as_html()
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # viser's "server stopped" line
            server.stop()
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str]) -> Image.Image:
    """Two images scaled to one height, next to each other, each with a caption."""
    h = right.shape[0]
    left_img = Image.fromarray(left).resize((round(left.shape[1] * h / left.shape[0]), h))
    canvas = Image.new("RGB", (left_img.width + right.shape[1] + 8, h + 28), "white")
    canvas.paste(left_img, (0, 28))
    canvas.paste(Image.fromarray(right), (left_img.width + 8, 28))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 8), labels[0], fill="black")
    draw.text((left_img.width + 14, 8), labels[1], fill="black")
    return canvas


def main(argv):
    del argv
    result = result_npz.load_result_npz(_RESULT.value)
    body_model = pipeline.resolve_body_model(result.body_model)
    f = min(_FRAME.value, result.num_frames - 1)
    H, W = result.image_size
    width = _WIDTH.value
    height = round(width * H / W) + 40  # + viser's playback bar
    os.makedirs(_IMG_DIR.value, exist_ok=True)
    img = lambda name: os.path.join(_IMG_DIR.value, name)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        recording, still = os.path.join(tmp, "recording.html"), os.path.join(tmp, "still.html")
        expected = viewer.record_html(recording, result, body_model)
        viewer.record_html(still, result, body_model, frames=[f], view_frame=f, cameras=False)
        glb_html = glb_page(os.path.join(tmp, "glb.html"), result, body_model)
        with browser.Browser(width=width, height=height) as page:
            t0 = time.perf_counter()
            names = render(page, recording, img("viewer_overview.png"), settle_s=8.0)
            load_s = time.perf_counter() - t0
            render(page, still, img("viewer_from_camera.png"), settle_s=8.0)
            render(page, glb_html, img("glb_in_threejs.png"), settle_s=8.0)
        sizes = {"recording": os.path.getsize(recording), "still": os.path.getsize(still)}
    view_png = np.asarray(Image.open(img("viewer_from_camera.png")).convert("RGB"))
    view_png = view_png[: height - 40]  # drop the playback bar
    preview_png = preview.preview_frames(result, width=W * 2)[f]
    frame_number = int(result.frame_index[f])
    pair = side_by_side(preview_png, view_png, (f"mp4 preview, video frame {frame_number}",
                                            f"viewer from the same camera, frame {frame_number}"))
    pair.thumbnail((1400, 1400))
    pair.save(img("preview_vs_viewer.jpg"), quality=88)
    common.write_result("viewer_screenshot", {
        "result_nodes_expected": len(expected), "result_nodes_in_browser": len(names),
        "result_nodes_missing": len(set(expected) - set(names)),
        "recording_html_bytes": sizes["recording"], "still_html_bytes": sizes["still"],
        "recording_load_s": load_s,
    }, result=os.path.abspath(_RESULT.value), frame=f, node_names=sorted(names),
        images=[os.path.relpath(img(n)) for n in ("viewer_overview.png", "viewer_from_camera.png",
                                                  "preview_vs_viewer.jpg", "glb_in_threejs.png")])


if __name__ == "__main__":
    app.run(main)
