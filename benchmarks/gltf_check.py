"""Independent checks of a glTF file: the Khronos validator, and node transforms at a key frame.

- `validate(path)` runs the Khronos glTF validator (npm package `gltf-validator`, installed with
  `npm install --prefix benchmarks/node`, or found through $GLTF_VALIDATOR_DIR) under node and
  returns its JSON report; `validator_missing()` says why it cannot run (None when it can).
- `node_world_matrices(gltf, key)` evaluates every node's world matrix with each animated
  channel at its `key`-th keyframe value (forward kinematics from the node TRS animation), reading
  the buffers with pygltflib only: it shares no code with `josh_jax.io.gltf`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pygltflib
from scipy.spatial.transform import Rotation

_HERE = os.path.dirname(os.path.abspath(__file__))
_NODE_DIR = os.path.join(_HERE, "node")
_DTYPES = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_SHORT: np.uint16,
           pygltflib.UNSIGNED_BYTE: np.uint8, pygltflib.UNSIGNED_INT: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _validator_module_dir() -> str:
    return os.environ.get("GLTF_VALIDATOR_DIR", os.path.join(_NODE_DIR, "node_modules"))


def validator_missing() -> str | None:
    """Why the validator cannot run here (None when node and the npm package are present)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(_validator_module_dir(), "gltf-validator")):
        return (f"npm package gltf-validator not found in {_validator_module_dir()} "
                "(npm install --prefix benchmarks/node)")
    return None


def validate(path: str, timeout_s: float = 120.0) -> dict:
    """The validator's report (dict) of the glTF/GLB at `path`."""
    env = dict(os.environ, NODE_PATH=_validator_module_dir())
    out = subprocess.run(["node", os.path.join(_NODE_DIR, "validate_gltf.js"), path],
                         capture_output=True, text=True, env=env, timeout=timeout_s, check=True)
    return json.loads(out.stdout)


def accessor_array(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """Accessor `index` of a GLB loaded with pygltflib, as float64[count, width] (normalized
    integer accessors are scaled to [0, 1])."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = np.dtype(_DTYPES[acc.componentType])
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    data = np.frombuffer(gltf.binary_blob(), dtype, acc.count * width, start).reshape(-1, width)
    data = data.astype(np.float64)
    if acc.normalized:
        data /= np.iinfo(dtype).max
    return data


def _trs_matrix(translation, rotation_xyzw, scale) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = Rotation.from_quat(rotation_xyzw).as_matrix() * np.asarray(scale)[None]
    M[:3, 3] = translation
    return M


def node_world_matrices(gltf: pygltflib.GLTF2, key: int) -> np.ndarray:
    """float64[N, 4, 4] world matrix of every node, each animated channel at its keyframe `key`."""
    trs = [[n.translation or [0.0, 0.0, 0.0], n.rotation or [0.0, 0.0, 0.0, 1.0],
            n.scale or [1.0, 1.0, 1.0]] for n in gltf.nodes]
    slot = {"translation": 0, "rotation": 1, "scale": 2}
    for animation in gltf.animations:
        for channel in animation.channels:
            sampler = animation.samplers[channel.sampler]
            trs[channel.target.node][slot[channel.target.path]] = accessor_array(
                gltf, sampler.output)[key]
    world = np.zeros((len(gltf.nodes), 4, 4))

    def visit(node: int, parent: np.ndarray) -> None:
        world[node] = parent @ _trs_matrix(*trs[node])
        for child in gltf.nodes[node].children or []:
            visit(child, world[node])

    for root in gltf.scenes[gltf.scene or 0].nodes:
        visit(root, np.eye(4))
    return world
