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

`write_result_set` writes them as one result set (`josh_jax.io.atomic.result_set`): all files
of the clip appear together, listed by `<stem>.manifest.json` (written last); a stem with folders
(`a/clip`) writes under `out_dir/a/`.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Sequence

from josh_jax.errors import InputError
from josh_jax.io import amass, gltf
from josh_jax.io.atomic import read_manifest, result_set
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
        # Imported here: viser costs ~0.2-0.5 s of every run's start-up and only this writer uses it.
        from josh_jax.io import viewer  # noqa: PLC0415

        viewer.record_html(base + ".viewer.html", result, body_model)
        written["viewer"] = base + ".viewer.html"
    if metrics is not None:
        written["metrics"] = write_json(base + ".metrics.json", metrics)
    return written


# The file names of a clip's outputs: "<stem>" + one of these (docs/outputs.md).
_OUTPUT_SUFFIX = re.compile(
    r"^\.(npz|glb|static\.glb|ply|tum\.txt|mp4|viewer\.html|metrics\.json|person\d+\.amass\.npz"
    r"|manifest\.json)$")


def existing_outputs(out_dir: str, stem: str) -> list[str]:
    """Paths of the outputs of `stem` already in `out_dir` (any writer's file, or its manifest)."""
    folder, name = os.path.split(os.path.join(out_dir, stem))
    if not os.path.isdir(folder):
        return []
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + ".*"))):
        if _OUTPUT_SUFFIX.match(os.path.basename(path)[len(name):]) and os.path.isfile(path):
            found.append(path)
    manifest = read_manifest(folder, name)
    if manifest:
        found += [os.path.join(folder, f) for f in manifest["files"]
                  if os.path.join(folder, f) not in found and os.path.exists(os.path.join(folder, f))]
    return sorted(found)


def write_result_set(out_dir: str, stem: str, result: Result, **kwargs) -> dict[str, str]:
    """`write_all` into a staging folder, then the whole set moved into place at once.

    Any previous outputs of `stem` are replaced as a whole (the caller decides whether that is
    allowed). Returns {kind: final path}; `kwargs` as in `write_all`.
    """
    folder, name = os.path.split(os.path.join(out_dir, stem))
    old = [os.path.basename(p) for p in existing_outputs(out_dir, stem)]
    with result_set(folder, name, old_files=old) as staging:
        written = write_all(staging, name, result, **kwargs)
    return {kind: os.path.join(folder, os.path.relpath(path, staging))
            for kind, path in written.items()}


def output_names(paths: Sequence[str]) -> list[str]:
    """The output name (stem) of each input: its path relative to the inputs' common folder,
    without the extension (one input: its file name), so that inputs never share outputs."""
    bases = [os.path.splitext(os.path.abspath(os.path.normpath(p)))[0] for p in paths]
    if len(bases) == 1:
        return [os.path.basename(bases[0])]
    root = os.path.commonpath([os.path.dirname(b) for b in bases])
    return [os.path.relpath(b, root) for b in bases]


def check_destination(out_dir: str, stems: Sequence[str], *, overwrite: bool = False,
                      inputs: Sequence[str] = ()) -> None:
    """Refuses, before any work, an output folder the outputs of `stems` cannot go to.

    Checks: `out_dir` is a folder (or can be created) and is writable; no two stems are equal; no
    output would replace an input; no stem already has outputs there unless `overwrite`.

    Raises:
      InputError: naming `--out` (or the clip) and what was found.
    """
    check_writable_folder(out_dir)
    seen: dict[str, int] = {}
    for i, stem in enumerate(stems):
        if stem in seen:
            raise InputError(out_dir, "--out", "one output name per input",
                             f"inputs {seen[stem]} and {i} both named {stem!r}")
        seen[stem] = i
    inputs_abs = {os.path.realpath(p) for p in inputs}
    for stem in stems:
        base = os.path.join(out_dir, stem)
        for suffix in (".npz", ".glb", ".tum.txt", ".mp4", ".metrics.json", ".manifest.json"):
            if os.path.realpath(base + suffix) in inputs_abs:
                raise InputError(base + suffix, "--out", "outputs apart from the inputs",
                                 "an output that would replace its input")
        if not overwrite and (old := existing_outputs(out_dir, stem)):
            raise InputError(out_dir, "--out", f"no previous outputs of {stem!r} (pass "
                             "--overwrite to replace them)",
                             f"{len(old)} file(s), e.g. {os.path.basename(old[0])}")


def check_writable_folder(out_dir: str, flag: str = "--out") -> None:
    """`out_dir` an existing writable folder, or creatable under a writable folder.

    Raises:
      InputError: naming `flag` and what was found (an existing file, a read-only folder).
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(out_dir, flag, "a folder", "an existing file")
    probe_dir = out_dir
    while not os.path.exists(probe_dir):
        parent = os.path.dirname(os.path.abspath(probe_dir))
        if parent == os.path.abspath(probe_dir):
            break
        probe_dir = parent
    if not os.path.isdir(probe_dir):
        raise InputError(out_dir, flag, "a folder under a folder",
                         f"{probe_dir} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe_dir):
            pass
    except OSError as e:
        raise InputError(out_dir, flag, "a writable folder",
                         f"{probe_dir} not writable ({e.strerror})") from None
