"""Animated glTF 2.0 (`.glb`) of a `Result`: skinned bodies, the moving camera, scene points.

One file per result, readable by Blender, three.js, Unity/Unreal importers and any glTF viewer:

- **bodies**: per track a skinned mesh (the body model's template with the track's betas baked into
  the bind pose, its skinning weights, its joint tree as nodes), and one animation channel per joint
  rotation (plus the root translation) sampled at every video frame. glTF has no blend shapes
  driven by pose or shape parameters, so pose correctives are dropped (mm-level on the body
  surface, none on the joints) and shape is fixed to the mean betas of the track; when betas vary
  over frames (per-frame estimates), the child joint offsets are animated too, so the joints stay
  exact. Frames where a track does not exist scale its root joint to zero (STEP interpolation).
- **contacts**: a small red sphere under each foot joint (ankles, toes), shown (scale 1, STEP) at
  the frames where `motion.foot_contacts` finds it planted.
- **camera**: a perspective camera node animated at every video frame; `yfov = 2 atan(H / 2 fy)`,
  `aspectRatio = W / H` (first frame's intrinsics: glTF intrinsics cannot be animated; JOSH shares
  one focal), and the camera centre trajectory as a line strip.
- **scene**: the masked scene points of all keyframes (evenly subsampled to `max_points`) with
  their colours, as a POINTS primitive.

Axes: the result's world is the first keyframe's OpenCV camera (x right, y down, z forward). glTF
is y-up and its cameras look along -z, so every world point is mapped by `GLTF_FROM_WORLD =
diag(1, -1, -1)` (a 180 degree rotation about x: x' = x, y' = -y, z' = -z). The first camera's up
direction becomes +y, its viewing direction -z (so at frame 0 the glTF camera node is the identity),
lengths stay in the result's units (metres). A glTF camera's local frame is the OpenCV camera
frame with the same flip, so `T_gltf_cam = C T_world_cam C` with C = diag(1, -1, -1, 1).

Timing: frame f of the result is at time `(frame_index[f] - frame_index[0]) / fps` seconds;
rotations use LINEAR (slerp) interpolation between consecutive video frames.
"""

from __future__ import annotations

import numpy as np
import pygltflib
import trimesh
from scipy.spatial.transform import Rotation

from josh_jax.io import motion as motion_lib
from josh_jax.io.atomic import atomic_write
from josh_jax.io.scene import scene_point_cloud
from josh_jax.result import Result

GLTF_FROM_WORLD = np.diag([1.0, -1.0, -1.0])

_COMPONENT = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT,
              np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE,
              np.dtype(np.uint32): pygltflib.UNSIGNED_INT}
_TYPE = {1: pygltflib.SCALAR, 2: pygltflib.VEC2, 3: pygltflib.VEC3, 4: pygltflib.VEC4,
         16: pygltflib.MAT4}
_CONTACT_MARKER_RADIUS = 0.03


class _Builder:
    """A `pygltflib.GLTF2` under construction plus its one binary buffer."""

    def __init__(self):
        self.gltf = pygltflib.GLTF2(
            asset=pygltflib.Asset(generator="josh_jax.io.gltf", version="2.0"),
            scene=0, scenes=[pygltflib.Scene(name="result", nodes=[])])
        self.blob = bytearray()
        self.channels: list[pygltflib.AnimationChannel] = []
        self.samplers: list[pygltflib.AnimationSampler] = []

    def accessor(self, array: np.ndarray, *, target: int | None = None, normalized: bool = False,
                 minmax: bool = False) -> int:
        """Append `array` ([N] or [N, k], rows = elements) to the buffer; returns the accessor id."""
        array = np.ascontiguousarray(array)
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.gltf.bufferViews.append(pygltflib.BufferView(
            buffer=0, byteOffset=len(self.blob), byteLength=array.nbytes, target=target))
        self.blob.extend(array.tobytes())
        width = int(np.prod(array.shape[1:], dtype=np.int64))
        flat = array.reshape(array.shape[0], width)
        self.gltf.accessors.append(pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=_COMPONENT[array.dtype],
            count=int(array.shape[0]), type=_TYPE[width], normalized=normalized or None,
            min=flat.min(axis=0).tolist() if minmax else None,
            max=flat.max(axis=0).tolist() if minmax else None))
        return len(self.gltf.accessors) - 1

    def add(self, items: list, item) -> int:
        items.append(item)
        return len(items) - 1

    def node(self, **kwargs) -> int:
        return self.add(self.gltf.nodes, pygltflib.Node(**kwargs))

    def material(self, name: str, rgb: np.ndarray, *, unlit: bool = False) -> int:
        linear = (np.asarray(rgb, np.float64) / 255.0) ** 2.2  # glTF colour factors are linear
        extensions = {"KHR_materials_unlit": {}} if unlit else None
        if unlit and "KHR_materials_unlit" not in self.gltf.extensionsUsed:
            self.gltf.extensionsUsed.append("KHR_materials_unlit")
        return self.add(self.gltf.materials, pygltflib.Material(
            name=name, extensions=extensions, pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                baseColorFactor=[*linear.tolist(), 1.0], metallicFactor=0.0, roughnessFactor=0.8)))

    def animate(self, node: int, path: str, times: int, values: np.ndarray,
                interpolation: str = pygltflib.ANIM_LINEAR) -> None:
        """One channel: `path` of `node` takes `values[i]` at time accessor `times` row i."""
        output = self.accessor(np.asarray(values, np.float32))
        self.samplers.append(pygltflib.AnimationSampler(
            input=times, output=output, interpolation=interpolation))
        self.channels.append(pygltflib.AnimationChannel(
            sampler=len(self.samplers) - 1,
            target=pygltflib.AnimationChannelTarget(node=node, path=path)))

    def finish(self, name: str) -> pygltflib.GLTF2:
        if self.channels:
            self.gltf.animations.append(pygltflib.Animation(
                name=name, channels=self.channels, samplers=self.samplers))
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.gltf.buffers.append(pygltflib.Buffer(byteLength=len(self.blob)))
        self.gltf.set_binary_blob(bytes(self.blob))
        return self.gltf


def quaternions_xyzw(R: np.ndarray) -> np.ndarray:
    """float32[N, 4] glTF (x, y, z, w) unit quaternions of rotations float[N, 3, 3], sign-continuous
    along N (so that slerp between consecutive keys takes the short way)."""
    q = Rotation.from_matrix(np.asarray(R, np.float64).reshape(-1, 3, 3)).as_quat()
    flips = np.sum(q[1:] * q[:-1], axis=-1) < 0
    sign = np.concatenate([[1.0], np.cumprod(np.where(flips, -1.0, 1.0))])
    return (q * sign[:, None]).astype(np.float32)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals.astype(np.float32)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(norm > 0.5, normals / np.maximum(norm, 1e-12), [0.0, 1.0, 0.0]).astype(
        np.float32)


def _top4_skinning(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(joints uint8/uint16 [V, 4], weights float32 [V, 4] summing to 1): the 4 largest weights."""
    top = np.argsort(-weights, axis=1, kind="stable")[:, :4]
    w = np.take_along_axis(weights, top, axis=1).astype(np.float64)
    w = np.where(w > 1e-6, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    top = np.where(w > 0, top, 0)  # unused slots point at joint 0 with weight 0
    dtype = np.uint8 if weights.shape[1] <= 256 else np.uint16
    return top.astype(dtype), w.astype(np.float32)


def _body_mesh(b: _Builder, body_model, v_bind: np.ndarray, material: int) -> int:
    faces = np.asarray(body_model.faces, np.int64)
    joints, weights = _top4_skinning(np.asarray(body_model.lbs_weights, np.float64))
    index_dtype = np.uint16 if v_bind.shape[0] < 65535 else np.uint32
    attributes = pygltflib.Attributes(
        POSITION=b.accessor(v_bind, target=pygltflib.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(_vertex_normals(v_bind, faces), target=pygltflib.ARRAY_BUFFER),
        JOINTS_0=b.accessor(joints, target=pygltflib.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(weights, target=pygltflib.ARRAY_BUFFER))
    indices = b.accessor(faces.reshape(-1).astype(index_dtype),
                         target=pygltflib.ELEMENT_ARRAY_BUFFER)
    return b.add(b.gltf.meshes, pygltflib.Mesh(name="body", primitives=[
        pygltflib.Primitive(attributes=attributes, indices=indices, material=material)]))


def _contact_marker_mesh(b: _Builder) -> int:
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=_CONTACT_MARKER_RADIUS)
    vertices = np.asarray(sphere.vertices, np.float32)
    attributes = pygltflib.Attributes(
        POSITION=b.accessor(vertices, target=pygltflib.ARRAY_BUFFER, minmax=True),
        NORMAL=b.accessor(_vertex_normals(vertices, sphere.faces), target=pygltflib.ARRAY_BUFFER))
    indices = b.accessor(np.asarray(sphere.faces, np.uint16).reshape(-1),
                         target=pygltflib.ELEMENT_ARRAY_BUFFER)
    material = b.material("contact", motion_lib.CONTACT_COLOR)
    return b.add(b.gltf.meshes, pygltflib.Mesh(name="contact_marker", primitives=[
        pygltflib.Primitive(attributes=attributes, indices=indices, material=material)]))


def _add_person(b: _Builder, motion: motion_lib.PersonMotion, body_model, times: int, fps: float,
                marker_mesh: int | None) -> list[int]:
    """Skeleton nodes, skin, skinned mesh and animation of one track; returns its root nodes."""
    p, J, parents = motion.index, motion.num_joints, motion.parents
    v_bind, J_bind = motion_lib.shaped_rest(body_model, motion.betas)
    names = motion_lib.joint_names(J)
    offsets = J_bind - np.where(np.arange(J)[:, None] > 0, J_bind[np.maximum(parents, 0)], 0.0)
    joint_nodes = [b.node(name=f"person{p}/{names[j]}", translation=offsets[j].tolist())
                   for j in range(J)]
    for j in range(1, J):
        b.gltf.nodes[joint_nodes[parents[j]]].children.append(joint_nodes[j])

    # Bind pose: joint j at J_bind[j] with identity rotation, so IBM_j = translate(-J_bind[j]).
    ibm = np.tile(np.eye(4, dtype=np.float32), (J, 1, 1))
    ibm[:, :3, 3] = -J_bind
    skin = b.add(b.gltf.skins, pygltflib.Skin(
        name=f"person{p}", joints=joint_nodes, skeleton=joint_nodes[0],
        inverseBindMatrices=b.accessor(np.ascontiguousarray(ibm.transpose(0, 2, 1)))))
    color = motion_lib.TRACK_COLORS[p % len(motion_lib.TRACK_COLORS)]
    mesh = _body_mesh(b, body_model, v_bind, b.material(f"person{p}", color))
    mesh_node = b.node(name=f"person{p}/body", mesh=mesh, skin=skin)

    # Motion: root rotation and translation in the glTF world, the other joints parent-relative.
    C = GLTF_FROM_WORLD
    root_R = np.einsum("ab,fbc->fac", C, motion.R_local[:, 0])
    root_t = (motion.J_rest[:, 0] + motion.transl) @ C.T
    b.animate(joint_nodes[0], "rotation", times, quaternions_xyzw(root_R))
    b.animate(joint_nodes[0], "translation", times, root_t)
    for j in range(1, J):
        b.animate(joint_nodes[j], "rotation", times, quaternions_xyzw(motion.R_local[:, j]))
        if motion.betas_vary:
            offset_t = motion.J_rest[:, j] - motion.J_rest[:, parents[j]]
            b.animate(joint_nodes[j], "translation", times, offset_t)
    if not motion.valid.all():
        b.animate(joint_nodes[0], "scale", times,
                  np.repeat(motion.valid[:, None], 3, axis=1).astype(np.float32),
                  pygltflib.ANIM_STEP)

    if marker_mesh is not None:
        _, joints = motion_lib.forward_kinematics(motion)
        contacts = motion_lib.foot_contacts(joints, motion.valid, fps)
        for k, j in enumerate(motion_lib.CONTACT_JOINTS):
            if j >= J or not contacts[:, k].any():
                continue
            marker = b.node(name=f"person{p}/contact_{names[j]}", mesh=marker_mesh,
                            scale=[0.0, 0.0, 0.0])
            b.gltf.nodes[joint_nodes[j]].children.append(marker)
            b.animate(marker, "scale", times,
                      np.repeat(contacts[:, k : k + 1], 3, axis=1).astype(np.float32),
                      pygltflib.ANIM_STEP)
    return [joint_nodes[0], mesh_node]


def _add_camera(b: _Builder, result: Result, times: int) -> list[int]:
    """The animated camera node and the camera centre trajectory; returns the new root nodes."""
    H, W = result.image_size
    K0 = np.asarray(result.K[0], np.float64)
    yfov = float(2.0 * np.arctan2(H / 2.0, K0[1, 1]))
    camera = b.add(b.gltf.cameras, pygltflib.Camera(
        name="camera", type=pygltflib.PERSPECTIVE, perspective=pygltflib.Perspective(
            yfov=yfov, aspectRatio=float(W) / float(H), znear=0.01),
        extras={"fx": float(K0[0, 0]), "fy": float(K0[1, 1]), "cx": float(K0[0, 2]),
                "cy": float(K0[1, 2]), "image_size_hw": [int(H), int(W)]}))
    C = GLTF_FROM_WORLD
    T = np.asarray(result.T_world_cam, np.float64)
    R_gltf = np.einsum("ab,fbc,cd->fad", C, T[:, :3, :3], C)
    centres = T[:, :3, 3] @ C.T
    node = b.node(name="camera", camera=camera)
    b.animate(node, "rotation", times, quaternions_xyzw(R_gltf))
    b.animate(node, "translation", times, centres)

    line = pygltflib.Primitive(
        mode=pygltflib.LINE_STRIP, material=b.material("camera_path", [250, 60, 60], unlit=True),
        attributes=pygltflib.Attributes(POSITION=b.accessor(
            centres.astype(np.float32), target=pygltflib.ARRAY_BUFFER, minmax=True)))
    path = b.add(b.gltf.meshes, pygltflib.Mesh(name="camera_path", primitives=[line]))
    return [node, b.node(name="camera_path", mesh=path)]


def _add_points(b: _Builder, result: Result, max_points: int) -> list[int]:
    points, colors = scene_point_cloud(result, max_points)
    if points.shape[0] == 0:
        return []
    # COLOR_0 is linear; uint16 keeps the dark sRGB values distinct after linearisation.
    linear = (colors.astype(np.float64) / 255.0) ** 2.2
    rgba = np.concatenate([linear, np.ones((linear.shape[0], 1))], axis=1)
    primitive = pygltflib.Primitive(
        mode=pygltflib.POINTS, material=b.material("scene_points", [255, 255, 255], unlit=True),
        attributes=pygltflib.Attributes(
            POSITION=b.accessor((points @ GLTF_FROM_WORLD.T).astype(np.float32),
                                target=pygltflib.ARRAY_BUFFER, minmax=True),
            COLOR_0=b.accessor(np.rint(rgba * 65535).astype(np.uint16),
                               target=pygltflib.ARRAY_BUFFER, normalized=True)))
    mesh = b.add(b.gltf.meshes, pygltflib.Mesh(name="scene_points", primitives=[primitive]))
    return [b.node(name="scene_points", mesh=mesh)]


def frame_times(result: Result) -> np.ndarray:
    """float32[F] glTF animation time (seconds) of every video frame of the result."""
    frames = np.asarray(result.frame_index, np.float64)
    return ((frames - frames[0]) / float(result.fps)).astype(np.float32)


def build_animated_gltf(result: Result, body_model, *, max_points: int = 50_000,
                        contacts: bool = True) -> pygltflib.GLTF2:
    """The glTF document (with its binary buffer) of `result`; see the module docstring.

    Args:
      result: the result (any producer: JOSH, Human3R, ...).
      body_model: the `body_models.BodyModel` its SMPL parameters belong to.
      max_points: cap on scene points (evenly subsampled).
      contacts: add the foot-contact markers.
    """
    b = _Builder()
    times = b.accessor(frame_times(result), minmax=True)
    roots = _add_points(b, result, max_points) + _add_camera(b, result, times)
    marker_mesh = _contact_marker_mesh(b) if contacts else None
    for p in range(result.num_tracks):
        person = motion_lib.person_motion(result, body_model, p)
        if person is not None:
            roots += _add_person(b, person, body_model, times, float(result.fps), marker_mesh)
    b.gltf.scenes[0].nodes = roots
    b.gltf.asset.extras = {
        "axes": "glTF = result world (first keyframe OpenCV camera) with y and z negated",
        "fps": float(result.fps), "first_frame_index": int(np.asarray(result.frame_index)[0]),
        "body_model": result.body_model}
    return b.finish("motion")


def write_animated_glb(path: str, result: Result, body_model, **kwargs) -> str:
    """Write `build_animated_gltf(result, body_model, **kwargs)` as one binary glTF, atomically."""
    data = b"".join(build_animated_gltf(result, body_model, **kwargs).save_to_bytes())
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path
