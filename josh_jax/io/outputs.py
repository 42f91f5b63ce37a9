"""The standard outputs of one clip: `<stem>.npz`, `.glb`, `.ply`, `.tum.txt`, `.mp4`, `.metrics.json`."""

from __future__ import annotations

import os

from josh_jax.io.preview import write_preview_mp4
from josh_jax.io.report import write_json
from josh_jax.io.result_npz import save_result_npz
from josh_jax.io.scene import write_glb, write_ply
from josh_jax.io.tum import write_tum
from josh_jax.result import Result


def write_all(out_dir: str, stem: str, result: Result, *, metrics: dict | None = None,
              npz: bool = True, glb: bool = True, ply: bool = False, tum: bool = True,
              mp4: bool = True, vertices: str = "float16") -> dict[str, str]:
    """Write the standard outputs of one clip as `{out_dir}/{stem}.{npz,glb,ply,txt,mp4}` and
    `{stem}.metrics.json` (when `metrics` is given). Returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    written = {}
    if npz:
        written["npz"] = save_result_npz(base + ".npz", result, vertices=vertices)
    if glb:
        written["glb"] = write_glb(base + ".glb", result)
    if ply:
        written["ply"] = write_ply(base + ".ply", result)
    if tum:
        written["tum"] = write_tum(base + ".tum.txt", result)
    if mp4:
        written["mp4"] = write_preview_mp4(base + ".mp4", result)
    if metrics is not None:
        written["metrics"] = write_json(base + ".metrics.json", metrics)
    return written
