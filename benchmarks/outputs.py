r"""Export evidence on a real result: animated GLB (Khronos validator, joints recomputed from the file)
and AMASS files (re-posed through body_models), with file sizes and write times.

    python -m experiments.run_josh --out=/tmp/josh                        # the built-in clip
    python -m benchmarks.outputs --result=/tmp/josh/synthetic_seed0.npz

Writes benchmarks/results/outputs_cpu.json (figures),
benchmarks/results/gltf_validator_report.json (the validator's full report) and
docs/img/amass_reposed.png (skeletons re-posed from the AMASS files, in their z-up world).
"""

from __future__ import annotations

import glob
import os
import tempfile
import time

import matplotlib
import numpy as np
import pygltflib
from absl import app, flags

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from benchmarks import common, gltf_check
from josh_jax import pipeline
from josh_jax.io import amass, gltf, result_npz

_RESULT = flags.DEFINE_string("result", None, "Result .npz (run_josh output).", required=True)


def glb_joint_error_mm(doc: pygltflib.GLTF2, result) -> float:
    """Max |joint from the GLB's animation (forward kinematics) - joints_world| over every valid
    frame and track, in mm, after mapping the result's world to glTF's."""
    valid = np.asarray(result.smpl_valid, bool)
    skins = {s.name: s.joints for s in doc.skins}
    worst = 0.0
    for f in range(result.num_frames):
        world = gltf_check.node_world_matrices(doc, f)
        for p in np.flatnonzero(valid[:, f]):
            joints = world[skins[f"person{p}"], :3, 3]
            expected = np.asarray(result.joints_world[p, f], np.float64) @ gltf.GLTF_FROM_WORLD.T
            worst = max(worst, float(np.abs(joints - expected).max()))
    return worst * 1e3


def amass_errors_mm(paths: list[str], result, body_model) -> tuple[float, float]:
    """Max joint and vertex errors (mm) of the AMASS files re-posed, over their valid rows."""
    worst_joints = worst_verts = 0.0
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        joints, verts = amass.repose(arrays, body_model)
        p, valid = int(arrays["track"]), arrays["valid"]
        rows = arrays["frame_index"] - int(result.frame_index[0])
        ref_j = np.asarray(result.joints_world[p], np.float64)[rows]
        ref_v = np.asarray(result.vertices_world[p], np.float64)[rows]
        worst_joints = max(worst_joints, float(np.abs(joints - ref_j)[valid].max()))
        worst_verts = max(worst_verts, float(np.abs(verts - ref_v)[valid].max()))
    return worst_joints * 1e3, worst_verts * 1e3


def plot_amass(png: str, paths: list[str], body_model, num_poses: int = 6) -> str:
    """Skeletons re-posed from the AMASS files at a few frames, in the files' z-up world."""
    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    parents = body_model.parents
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        joints, _ = amass.repose(arrays, body_model)
        joints = joints @ np.asarray(arrays["world_from_result"]).T  # back to the file's world
        for f in np.linspace(0, joints.shape[0] - 1, num_poses).astype(int):
            for j in range(1, len(parents)):
                seg = joints[f, [parents[j], j]]
                ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=f"C{int(arrays['track'])}")
        ax.plot(*arrays["T_world_cam"][:, :3, 3].T, color="red", label="camera centres")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z (up)")
    ax.set_aspect("equal")
    ax.legend(loc="upper left")
    ax.set_title("AMASS files re-posed with body_models (z-up)")
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png


def main(argv):
    del argv
    result = result_npz.load_result_npz(_RESULT.value)
    body_model = pipeline.resolve_body_model(result.body_model)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        glb = gltf.write_animated_glb(os.path.join(tmp, "result.glb"), result, body_model)
        glb_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        amass_paths = sorted(amass.write_amass(tmp, "result", result, body_model).values())
        amass_s = time.perf_counter() - t0
        figures = {
            "glb_bytes": os.path.getsize(glb),
            "glb_write_s": glb_s,
            "glb_joint_max_err_mm": glb_joint_error_mm(pygltflib.GLTF2().load(glb), result),
            "amass_files": len(amass_paths),
            "amass_bytes_total": sum(os.path.getsize(p) for p in glob.glob(tmp + "/*.amass.npz")),
            "amass_write_s": amass_s,
        }
        # The result file stores vertices as float16 by default (~2 mm steps at 4 m): the vertex
        # figure is bounded by that storage, not by the AMASS file.
        (figures["amass_joint_max_err_mm"],
         figures["amass_vertex_max_err_vs_stored_vertices_mm"]) = amass_errors_mm(
            amass_paths, result, body_model)
        plot_amass(os.path.join(os.path.dirname(__file__), "..", "docs", "img", "amass_reposed.png"),
                   amass_paths, body_model)
        missing = gltf_check.validator_missing()
        extra = {"validator": f"not run: {missing}"} if missing else {}
        if not missing:
            report = gltf_check.validate(glb)
            report["uri"] = "result.glb"
            report.write_json(os.path.join(common.RESULTS_DIR, "gltf_validator_report.json"),
                              report)
            for key in ("numErrors", "numWarnings", "numInfos", "numHints"):
                figures[f"validator_{key}"] = report["issues"][key]
            extra = {"validator": f"gltf-validator {report['validatorVersion']}, full report in "
                                  "benchmarks/results/gltf_validator_report.json"}
    common.write_result("outputs", figures, result=os.path.abspath(_RESULT.value),
                        frames=result.num_frames, tracks=result.num_tracks,
                        body_model=result.body_model, **extra)


if __name__ == "__main__":
    app.run(main)
