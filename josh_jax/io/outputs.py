"""The outputs of one clip, chosen by name (`docs/outputs.md`).

    written = write_all(out_dir, stem, result, writers=("npz", "glb", "tum"), body_model=model)

| writer | file | needs the body model |
|---|---|---|
| `npz` | `<stem>.npz`: the Result | |
| `glb` | `<stem>.glb`: animated glTF (skinned bodies, camera, scene points; y-up) | yes |
| `amass` | `<stem>.person<p>.amass.npz`: AMASS-style motion per person | yes |
| `tum` | `<stem>.tum.txt`: camera trajectory | |
| `mp4` | `<stem>.mp4`: preview from the estimated cameras | |
| `ply` | `<stem>.ply`: scene point cloud | |
| `static_glb` | `<stem>.static.glb`: keyframe bodies, camera frusta, OpenCV world | |
| `viewer` | `<stem>.viewer.html`: self-contained offline viewer | yes |

`<stem>.metrics.json` is written whenever metrics are given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from josh_jax.io import amass, gltf, viewer
from josh_jax.io.preview import write_preview_mp4
from josh_jax.io.report import write_json
from josh_jax.io.result_npz import save_result_npz
from josh_jax.io.scene import write_glb, write_ply
from josh_jax.io.tum import write_tum
from josh_jax.result import Result

WRITERS = ("npz", "glb", "amass", "tum", "mp4", "ply", "static_glb", "viewer")
DEFAULT_WRITERS = ("npz", "glb", "amass", "tum", "mp4")
NEEDS_BODY_MODEL = ("glb", "amass", "viewer")


def write_all(out_dir: str, stem: str, result: Result, *,
              writers: Sequence[str] = DEFAULT_WRITERS, body_model=None,
              metrics: dict | None = None, vertices: str = "float16") -> dict[str, str]:
    """Write the outputs `writers` names as `{out_dir}/{stem}.*`; returns {kind: path}.

    Args:
      out_dir: output folder (created; only files named after `stem` are written).
      stem: file name stem of the clip.
      result: the clip's Result.
      writers: names from `WRITERS`.
      body_model: the body of the result's SMPL parameters (needed by `NEEDS_BODY_MODEL`).
      metrics: written as `{stem}.metrics.json` when given.
      vertices: how the result .npz stores vertices ("float16", "float32", "none").
    """
    kinds = set(writers)
    if unknown := kinds - set(WRITERS):
        raise ValueError(f"writers: expected names among {WRITERS}, found {sorted(unknown)}")
    if body_model is None and (missing := kinds & set(NEEDS_BODY_MODEL)):
        raise ValueError(f"writers {sorted(missing)} need the body model")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    written = {}
    if "npz" in kinds:
        written["npz"] = save_result_npz(base + ".npz", result, vertices=vertices)
    if "glb" in kinds:
        written["glb"] = gltf.write_animated_glb(base + ".glb", result, body_model)
    if "static_glb" in kinds:
        written["static_glb"] = write_glb(base + ".static.glb", result)
    if "amass" in kinds:
        written |= amass.write_amass(out_dir, stem, result, body_model)
    if "ply" in kinds:
        written["ply"] = write_ply(base + ".ply", result)
    if "tum" in kinds:
        written["tum"] = write_tum(base + ".tum.txt", result)
    if "mp4" in kinds:
        written["mp4"] = write_preview_mp4(base + ".mp4", result)
    if "viewer" in kinds:
        viewer.record_html(base + ".viewer.html", result, body_model)
        written["viewer"] = base + ".viewer.html"
    if metrics is not None:
        written["metrics"] = write_json(base + ".metrics.json", metrics)
    return written
