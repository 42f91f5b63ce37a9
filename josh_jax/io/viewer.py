"""Interactive 3D view of a `Result` with viser, and its offline recording as one HTML page.

The scene (world = the result's world, OpenCV axes; viser is told that up is -y):

    /result/scene_points            coloured scene points (evenly subsampled to max_points)
    /result/camera_path             camera centres of every video frame, as a red polyline
    /result/keyframe_camera_<k>     a grey frustum per keyframe
    /result/camera                  the current frame's camera (red frustum, moves on the timeline)
    /result/person<p>/body          skinned body (shaped template, bones = world joint transforms)
    /result/person<p>/path          pelvis trajectory over the valid frames
    /result/person<p>/contact_<j>   red sphere at foot joint j while it is planted

Bodies are drawn as in the animated glTF (`josh_jax.io.gltf`): linear blend skinning of the
template with the track's betas baked in, without pose correctives, driven by the joint transforms
of `motion.forward_kinematics` (so the joints are exact and a frame costs a few hundred bytes).
A body is hidden at frames where its track does not exist. Contacts: `motion.foot_contacts`.

`serve` adds a timeline (frame slider, play, fps) to a live server; `record_html` plays every frame
through viser's scene serializer and writes viser's self-contained client page with the recording
embedded (opens from disk in a browser, no Python or network needed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import socket
import threading
import time

import numpy as np
import viser
from scipy.spatial.transform import Rotation

from josh_jax.io import motion as motion_lib
from josh_jax.io.atomic import atomic_write
from josh_jax.io.scene import scene_point_cloud
from josh_jax.result import Result

PREFIX = "/result"
_GREY = (150, 150, 150)
_RED = (250, 60, 60)


def quat_wxyz(R: np.ndarray) -> np.ndarray:
    """float32[..., 4] (w, x, y, z) quaternions of rotations float[..., 3, 3] (viser's order)."""
    q = Rotation.from_matrix(np.asarray(R, np.float64).reshape(-1, 3, 3)).as_quat()
    return q[:, [3, 0, 1, 2]].reshape(R.shape[:-2] + (4,)).astype(np.float32)


@dataclasses.dataclass
class _Person:
    body: viser.MeshSkinnedHandle
    bone_wxyz: np.ndarray  # [F, J, 4]
    bone_position: np.ndarray  # [F, J, 3]
    valid: np.ndarray  # [F]
    contact_spheres: list  # one icosphere handle per contact joint
    feet: np.ndarray  # [F, 4, 3]
    contacts: np.ndarray  # [F, 4]


@dataclasses.dataclass
class ViewerScene:
    """The nodes that move with the timeline and the per-frame values they take."""

    num_frames: int
    camera: viser.CameraFrustumHandle
    camera_wxyz: np.ndarray  # [F, 4]
    camera_position: np.ndarray  # [F, 3]
    people: list[_Person]
    node_names: list[str]  # every node added (with group nodes), for checks


def _frustum_pose(T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return quat_wxyz(T_world_cam[..., :3, :3]), T_world_cam[..., :3, 3].astype(np.float32)


def _polyline(points: np.ndarray) -> np.ndarray:
    """float32[N-1, 2, 3] segments joining consecutive points float[N, 3]."""
    return np.stack([points[:-1], points[1:]], axis=1).astype(np.float32)


def _add_person(scene, motion: motion_lib.PersonMotion, body_model, fps: float, size: float,
                names: list[str]) -> _Person:
    p = motion.index
    color = tuple(int(c) for c in motion_lib.TRACK_COLORS[p % len(motion_lib.TRACK_COLORS)])
    v_bind, J_bind = motion_lib.shaped_rest(body_model, motion.betas)
    R_world, joints = motion_lib.forward_kinematics(motion)
    J = motion.num_joints
    name = f"{PREFIX}/person{p}"
    names.append(name)  # the group node viser creates for the children below
    body = scene.add_mesh_skinned(
        f"{name}/body", v_bind, np.asarray(body_model.faces),
        bone_wxyzs=np.tile([1.0, 0.0, 0.0, 0.0], (J, 1)), bone_positions=J_bind,
        skin_weights=np.asarray(body_model.lbs_weights, np.float32), color=color)
    names.append(f"{name}/body")
    pelvis = joints[motion.valid, 0]
    if pelvis.shape[0] > 1:
        scene.add_line_segments(f"{name}/path", _polyline(pelvis), color, thickness=0.2 * size)
        names.append(f"{name}/path")
    spheres = []
    for j in motion_lib.CONTACT_JOINTS:
        spheres.append(scene.add_icosphere(
            f"{name}/contact_{j}", radius=0.6 * size, color=tuple(motion_lib.CONTACT_COLOR),
            subdivisions=2, visible=False))
        names.append(f"{name}/contact_{j}")
    feet = joints[:, list(motion_lib.CONTACT_JOINTS)]
    return _Person(body=body, bone_wxyz=quat_wxyz(R_world), bone_position=joints.astype(np.float32),
                   valid=motion.valid, contact_spheres=spheres, feet=feet.astype(np.float32),
                   contacts=motion_lib.foot_contacts(joints, motion.valid, fps))


def build_scene(server: viser.ViserServer, result: Result, body_model, *,
                max_points: int = 100_000, cameras: bool = True) -> ViewerScene:
    """Add the result's nodes (module docstring) to `server` and show frame 0.

    Args:
      server: the viser server.
      result: the result; body_model: the body model of its SMPL parameters.
      max_points: cap on scene points (evenly subsampled).
      cameras: draw the camera path and frusta (the current camera is then always visible).
    """
    scene = server.scene
    scene.set_up_direction("-y")
    names: list[str] = []
    points, colors = scene_point_cloud(result, max_points)
    T = np.asarray(result.T_world_cam, np.float64)
    centres = T[:, :3, 3]
    extent = float(np.ptp(points, axis=0).max()) if points.shape[0] else float(
        max(np.ptp(centres, axis=0).max(), 1.0))
    size = 0.01 * extent  # one length scale for point sizes, line widths, frusta, spheres
    if points.shape[0]:
        scene.add_point_cloud(f"{PREFIX}/scene_points", points, colors, point_size=0.2 * size,
                              point_shading="flat")
        names.append(f"{PREFIX}/scene_points")
    if cameras:
        scene.add_line_segments(f"{PREFIX}/camera_path", _polyline(centres), _RED,
                                thickness=0.2 * size)
        names.append(f"{PREFIX}/camera_path")

    H, W = result.image_size
    K = np.asarray(result.K, np.float64)
    fov = 2.0 * np.arctan2(H / 2.0, K[0, 1, 1])
    wxyz, position = _frustum_pose(T)
    for k, f in enumerate(result.keyframe_positions if cameras else []):
        scene.add_camera_frustum(f"{PREFIX}/keyframe_camera_{k}", fov=fov, aspect=W / H,
                                 scale=3 * size, color=_GREY, thickness=0.1 * size,
                                 wxyz=wxyz[f], position=position[f])
        names.append(f"{PREFIX}/keyframe_camera_{k}")
    camera = scene.add_camera_frustum(f"{PREFIX}/camera", fov=fov, aspect=W / H, scale=5 * size,
                                      color=_RED, thickness=0.2 * size, wxyz=wxyz[0],
                                      position=position[0], visible=cameras)
    names.append(f"{PREFIX}/camera")
    people = []
    for p in range(result.num_tracks):
        motion = motion_lib.person_motion(result, body_model, p)
        if motion is not None:
            people.append(_add_person(scene, motion, body_model, float(result.fps), size, names))
    view = ViewerScene(num_frames=result.num_frames, camera=camera, camera_wxyz=wxyz,
                       camera_position=position, people=people, node_names=names)
    show_frame(view, 0)
    return view


def show_frame(view: ViewerScene, f: int) -> None:
    """Move every animated node to video frame row `f`."""
    if view.camera.visible:
        view.camera.wxyz, view.camera.position = view.camera_wxyz[f], view.camera_position[f]
    for person in view.people:
        person.body.visible = bool(person.valid[f])
        if person.valid[f]:
            for j, bone in enumerate(person.body.bones):
                bone.wxyz, bone.position = person.bone_wxyz[f, j], person.bone_position[f, j]
        for k, sphere in enumerate(person.contact_spheres):
            sphere.visible = bool(person.contacts[f, k])
            if person.contacts[f, k]:
                sphere.position = person.feet[f, k]


def look_at_scene(server: viser.ViserServer, result: Result, max_points: int = 20_000) -> None:
    """Start the browser's view above and behind the first camera, looking at the scene's centre."""
    points, _ = scene_point_cloud(result, max_points)
    if points.shape[0] == 0:
        points = np.asarray(result.T_world_cam, np.float64)[:, :3, 3]
    centre = np.median(points, axis=0)
    extent = float(np.percentile(np.linalg.norm(points - centre, axis=1), 90))
    T0 = np.asarray(result.T_world_cam[0], np.float64)
    up, forward = -T0[:3, 1], T0[:3, 2]  # the first camera's up and viewing directions
    server.initial_camera.position = centre + extent * (1.1 * up - 1.5 * forward)
    server.initial_camera.look_at = centre
    server.initial_camera.up = up


def look_from_camera(server: viser.ViserServer, result: Result, f: int) -> None:
    """Start the browser's view at the result's camera of frame row `f` (same centre, direction,
    up and vertical field of view), as the mp4 preview sees that frame."""
    T = np.asarray(result.T_world_cam[f], np.float64)
    H = result.image_size[0]
    server.initial_camera.position = T[:3, 3]
    server.initial_camera.look_at = T[:3, 3] + T[:3, 2]
    server.initial_camera.up = -T[:3, 1]
    server.initial_camera.fov = float(2.0 * np.arctan2(H / 2.0, float(result.K[f, 1, 1])))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_server(host: str = "127.0.0.1", port: int | None = None, *,
                 quiet: bool = False) -> viser.ViserServer:
    """A viser server on `host:port` (a free port when None); `quiet` hides viser's banner."""
    if quiet:  # the websockets server logs every start and stop at INFO
        logging.getLogger("websockets").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        return viser.ViserServer(host=host, port=port or free_port(host), verbose=not quiet)


def record_html(path: str, result: Result, body_model, *, frames=None,
                view_frame: int | None = None, max_points: int = 100_000,
                cameras: bool = True) -> list[str]:
    """Write a self-contained HTML page that replays the result (every frame, at the video's fps).

    Args:
      path: output `.html` (written atomically).
      frames: frame rows to play (default all); one row gives a still of that frame.
      view_frame: start the view at this frame row's camera (default: `look_at_scene`).
      max_points: cap on scene points.
      cameras: draw the camera path and frusta.

    Returns:
      The names of the scene nodes the page holds (`ViewerScene.node_names`).
    """
    server = start_server(quiet=True)
    try:
        view = build_scene(server, result, body_model, max_points=max_points, cameras=cameras)
        if view_frame is None:
            look_at_scene(server, result)
        else:
            look_from_camera(server, result, view_frame)
        serializer = server.get_scene_serializer()
        for f in range(result.num_frames) if frames is None else frames:
            show_frame(view, int(f))
            serializer.insert_sleep(1.0 / float(result.fps))
        html = serializer.as_html()
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            server.stop()
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    return view.node_names


def add_timeline(server: viser.ViserServer, view: ViewerScene, result: Result) -> threading.Event:
    """Frame slider, play checkbox and fps in the control panel; returns the event that stops the
    playing thread."""
    frame_index = np.asarray(result.frame_index)
    slider = server.gui.add_slider("frame", min=0, max=max(view.num_frames - 1, 1), step=1,
                                   initial_value=0)
    label = server.gui.add_markdown(f"video frame {frame_index[0]}")
    playing = server.gui.add_checkbox("play", initial_value=True)
    fps = server.gui.add_slider("fps", min=1, max=60, step=1,
                                initial_value=int(round(float(result.fps))))

    @slider.on_update
    def _(_event) -> None:
        f = min(int(slider.value), view.num_frames - 1)
        show_frame(view, f)
        label.content = f"video frame {frame_index[f]} ({f / float(result.fps):.2f} s)"

    stop = threading.Event()

    def play() -> None:
        while not stop.wait(1.0 / fps.value):
            if playing.value and view.num_frames > 1:
                slider.value = (int(slider.value) + 1) % view.num_frames

    threading.Thread(target=play, daemon=True).start()
    return stop


def serve(result: Result, body_model, *, host: str = "127.0.0.1", port: int = 8080,
          max_points: int = 100_000, poll_s: float = 1.0, run_for_s: float | None = None):
    """Open the interactive viewer at http://host:port and keep it up (until `run_for_s` seconds
    have passed, when given; forever otherwise). Returns the server once stopped."""
    server = start_server(host, port)
    view = build_scene(server, result, body_model, max_points=max_points)
    look_at_scene(server, result)
    stop = add_timeline(server, view, result)
    t0 = time.monotonic()
    try:
        while run_for_s is None or time.monotonic() - t0 < run_for_s:
            time.sleep(poll_s)
    finally:
        stop.set()
        server.stop()
    return server
