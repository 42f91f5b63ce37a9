r"""Long videos with the oracle front end: global alignment against JOSH's plain concatenation.

    python -m benchmarks.josh_long_video                        # CPU, josh `fast` preset
    python -m benchmarks.josh_long_video --config.stage1.iters=500 --config.stage2.iters=200

For each sequence of `--long_config` (`experiments/configs/long_video.py`: a synthetic preset
generated with `num_keyframes` keyframes, one every 5 video frames: 301 video frames for 61), the
synthetic world's noisy ground truth (its front-end noise model) is the clip; it is cut into
overlapping chunks (`chunk_keyframes`, `overlap_keyframes`), all chunks are optimised in one
`optimize_many` batch, and the chunk Results are stitched several ways:

* align: the configured global alignment (default: one transform per chunk from every shared
  frame's camera centre and orientation and body joints, rigid unless the solved scale is more
  than 20 % off) and joint refinement across the seams, overlaps cross-faded; `align_unrefined`
  without the refinement; `align_cameras`: the previous default, rigid from the cameras' centres
  and orientations only, refined; `align_all`: a Sim(3) (no gate) from cameras, orientations,
  body joints and the shared keyframes' scene points, refined;
* align_bodies: the first alignment (the "before"): one Sim(3) per chunk from camera centres and
  body joints, no orientations, no refinement; `align_bodies_refined` with the refinement;
* concat: JOSH (spec §1.7), each chunk glued rigidly to the previous one at its first frame;
* oracle (metrics only): each chunk's similarity fitted to the ground truth, a bound for any
  one-similarity-per-chunk alignment of these chunks; overlap_oracle: each chunk's transform
  solved as `align` solves it (same residuals, weights and scale gate) on the frames it shares
  with its neighbours only, but against the ground truth: what an alignment from the overlaps
  could reach if the overlaps were exact.

Figures (mean over sequences, and per sequence in `per_sequence`):
* `seam_{camera,pelvis}_cm_{concat,align}`: distance between consecutive chunks' estimates of the
  frames they share, in the stitched world (what the trajectory jumps by at a chunk switch);
* `w_mpjpe_video_mm_*`: W-MPJPE over the whole video (one similarity fitted on the first two
  frames, the video as one chunk); `w_mpjpe100_mm_*`: the protocol's 100-frame windows (W100);
  `wa_mpjpe_video_mm_*`: one similarity fitted on the whole video; `cam_ate_m_*`: Sim(3) ATE;
* `border_step_*` / `interior_step_*`: the largest extra step of the stitched trajectory at the
  borders / at frames away from every border (the floor: keyframe interpolation kinks);
* `max_correction_{camera,pelvis}_cm_*`: the largest correction the refinement applied;
* `chunk_wa_mpjpe_mm`: JOSH itself, each chunk in its own world (similarity fitted per chunk);
  `chunk_bend_deg_*`, `chunk_oracle_scale_err_pct_max`, `chunk_focal_err_pct_max`: how far the
  chunks are from one similarity each (`chunk_diagnostics`);
* `optimize_s_<seq>`: prepare + compile + run of the chunk batch, not separated (bucket shapes
  differ between sequences, so each may compile; the persistent compile cache is on). On a shared
  2-core machine the spread between sequences is mostly load.

Writes `benchmarks/results/josh_long_video_<device>.json`.
"""

from __future__ import annotations

import json
import os
import pickle
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

from benchmarks.common import RESULTS_DIR, write_result
from experiments import cli, compile_cache
from experiments.configs import synthetic as synthetic_configs
from josh_jax import metrics, pipeline, synthetic
from josh_jax.video import long_video, sim3
from josh_jax.video import stitch as stitch_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(cli.CONFIGS, "josh.py") + ":fast", "JOSH config.", lock_config=False)
_LONG = config_flags.DEFINE_config_file(
    "long_config", os.path.join(cli.CONFIGS, "long_video.py"), "Long-video config.",
    lock_config=False)
_SEQUENCES = flags.DEFINE_list("sequences", [], "Subset of the sequence names (default: all).")
_NAME = flags.DEFINE_string("name", "josh_long_video", "Result name (file <name>_<device>.json).")
_SEED = flags.DEFINE_integer("seed", 0, "Synthetic seed.")
_OUT_DIR = flags.DEFINE_string("out_dir", RESULTS_DIR, "Where the JSON goes.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", "", "If set, chunk Results are pickled here per sequence and reused (stitching "
    "and metrics only on a rerun).")


def sequence_config(presets: str, overrides: str, num_keyframes: int, window: int):
    """The synthetic config of one long sequence."""
    c = synthetic_configs.get_config(presets)
    c.unlock()
    c.num_frames = num_keyframes
    c.matches.window = window
    for item in filter(None, overrides.split(",")):
        key, value = item.split("=", 1)
        c[key] = type(c[key])(value)
    return c


def body_metrics(result, gt, chunk0_end: int) -> dict[str, float]:
    """Whole-video human and camera errors of one stitched Result (frame-weighted over people).

    `w_mpjpe_chunk0fit_mm`: one similarity fitted on the first chunk's frames (identical for both
    stitchings), applied to the whole video: the drift the stitching adds after chunk 0.
    """
    gt_joints = np.asarray(gt.gt_joints_world_all, np.float64)
    rows = np.asarray(result.frame_index) - int(np.asarray(gt.gt_frame_index)[0])
    in_chunk0 = np.asarray(result.frame_index) < chunk0_end
    first_chunk_frames = (np.asarray(result.smpl_valid, bool) & in_chunk0).sum(axis=1)
    acc: dict[str, list] = {}
    for p in range(result.num_tracks):
        m = np.asarray(result.smpl_valid[p], bool)
        if m.sum() < 4 or first_chunk_frames[p] < 2:
            continue
        pred = np.asarray(result.joints_world[p], np.float64)[m]
        ref = gt_joints[p, rows[m]]
        fit = pred[:first_chunk_frames[p]]
        sim = metrics.umeyama(fit.reshape(-1, 3), ref[:len(fit)].reshape(-1, 3), with_scale=True)
        vals = {"w_mpjpe_video_mm": metrics.w_mpjpe(pred, ref, chunk=len(pred)),
                "w_mpjpe_chunk0fit_mm": 1000 * float(np.mean(np.linalg.norm(
                    metrics.apply_similarity(*sim, pred) - ref, axis=-1))),
                "w_mpjpe100_mm": metrics.w_mpjpe(pred, ref),
                "wa_mpjpe_video_mm": metrics.wa_mpjpe(pred, ref, chunk=len(pred))}
        for k, v in vals.items():
            acc.setdefault(k, []).append((int(m.sum()), v))
    out = {k: sum(n * v for n, v in lst) / sum(n for n, _ in lst) for k, lst in acc.items()}
    gt_c = np.asarray(gt.gt_T_world_cam_all, np.float64)[rows, :3, 3]
    out["cam_ate_m"] = metrics.camera_ate(np.asarray(result.T_world_cam, np.float64)[:, :3, 3],
                                          gt_c, "sim3")
    return out


def stitch_variants(long_config):
    """(label, long config, method) of every stitching measured on the same chunks:

    * align: the configured alignment and refinement (default: cameras' centres and
      orientations and body joints, scale gated, refined);
    * align_unrefined: the same alignment without the refinement across seams;
    * align_cameras: the previous default: rigid, from the cameras' centres and orientations
      only, refined;
    * align_bodies: the first alignment (before this refinement work): camera centres and body
      joints (`joint_weight` 0.25), per-chunk scale, no orientations, no refinement;
    * align_bodies_refined: that alignment followed by the refinement;
    * align_all: Sim(3) (no gate) from camera centres and orientations, body joints and the
      shared keyframes' scene points, refined;
    * concat: JOSH's plain concatenation.
    """
    def variant(**changes):
        c = long_config.copy_and_resolve_references()
        for key, value in changes.items():
            if key.startswith("refine_"):
                c.refine[key[len("refine_"):]] = value
            else:
                c[key] = value
        return c

    bodies = dict(joint_weight=0.25, with_scale=True, scale_gate=0.0, rotation_weight=0.0,
                  scale_prior=0.0, scene_weight=0.0)
    cameras = dict(camera_weight=1.0, joint_weight=0.0, with_scale=False, scale_gate=0.0,
                   rotation_weight=4.0, scale_prior=0.0, scene_weight=0.0)
    return (("align", long_config, "align"),
            ("align_unrefined", variant(refine_enabled=False), "align"),
            ("align_cameras", variant(refine_enabled=True, **cameras), "align"),
            ("align_bodies", variant(refine_enabled=False, **bodies), "align"),
            ("align_bodies_refined", variant(refine_enabled=True, **bodies), "align"),
            ("align_all", variant(joint_weight=0.25, with_scale=True, scale_gate=0.0,
                                  rotation_weight=4.0, scene_weight=0.05), "align"),
            ("concat", long_config, "concat"))


def interior_steps(result, frame_ranges, half_window: int = 3) -> dict[str, float]:
    """The `stitch.border_steps` measure at the frames away from every overlap (the largest over
    them): how much the trajectory steps beyond its local mean step inside the chunks (keyframe
    interpolation kinks, per-keyframe jitter): the floor a border step is to be compared with."""
    first = frame_ranges[0][0]
    F = result.T_world_cam.shape[0]
    seam = np.zeros(F, bool)
    for k in range(len(frame_ranges) - 1):
        seam[max(frame_ranges[k + 1][0] - first - half_window - 1, 0):
             frame_ranges[k][1] - first + half_window + 2] = True
    cam = np.asarray(result.T_world_cam, np.float64)[:, :3, 3]
    pelvis = np.asarray(result.joints_world, np.float64)[:, :, 0]
    valid = np.asarray(result.smpl_valid, bool)
    out = {"camera_m": 0.0, "pelvis_m": 0.0}
    for f in range(half_window, F - half_window - 1):
        if seam[f]:
            continue
        around = [g for g in range(f - half_window, f + half_window + 1) if g != f]
        out["camera_m"] = max(out["camera_m"], stitch_lib.excess(cam, f, around))
        for p in range(pelvis.shape[0]):
            if valid[p, f - half_window:f + half_window + 2].all():
                out["pelvis_m"] = max(out["pelvis_m"], stitch_lib.excess(pelvis[p], f, around))
    return out


def interior_frames(frame_ranges, c: int) -> tuple[int, int]:
    """The video frames [lo, hi) of chunk c that it shares with no neighbour (from the previous
    chunk's end to the next chunk's start); the rest of its frames are its overlaps."""
    a, b = frame_ranges[c]
    lo = frame_ranges[c - 1][1] if c > 0 else a  # end of the overlap with the previous chunk
    hi = frame_ranges[c + 1][0] if c + 1 < len(frame_ranges) else b
    return lo, hi


def oracle_result(results, frame_ranges, gt):
    """The chunks stitched with the ground truth: each chunk's similarity fitted to the true joints
    over all its frames (then expressed in chunk 0's world), overlaps cross-faded. The best any
    one-similarity-per-chunk alignment can do with these chunks (a bound, not a method)."""
    gt_joints = np.asarray(gt.gt_joints_world_all, np.float64)
    f0 = int(np.asarray(gt.gt_frame_index)[0])
    fits = []
    for r in results:
        valid = np.asarray(r.smpl_valid, bool)
        src = np.asarray(r.joints_world, np.float64)[valid]
        dst = gt_joints[:, np.asarray(r.frame_index) - f0][valid]
        fits.append(sim3.Sim3(*metrics.umeyama(src.reshape(-1, 3), dst.reshape(-1, 3),
                                               with_scale=True)))
    return stitch_fits(results, frame_ranges, fits)


def overlap_oracle_result(results, frame_ranges, gt, long_config):
    """The overlap oracle: each chunk's transform solved as `align` solves it (the same residuals
    and weights: camera centres and orientations, body joints; the same scale gate), on the frames
    it shares with its neighbours only, but against the ground truth instead of the neighbours.
    What an alignment from the overlaps could reach if the overlaps were exact (a bound)."""
    x, w = stitch_lib.chunk_points(results, frame_ranges, float(long_config.camera_weight),
                                   float(long_config.joint_weight))
    R, rw = stitch_lib.chunk_rotations(results, frame_ranges, float(long_config.rotation_weight))
    first, last = frame_ranges[0][0], frame_ranges[-1][1]
    rows = np.arange(first, last) - int(np.asarray(gt.gt_frame_index)[0])
    P = results[0].num_tracks
    gt_T = np.asarray(gt.gt_T_world_cam_all, np.float64)[rows]
    gt_joints = np.moveaxis(np.asarray(gt.gt_joints_world_all, np.float64)[:P, rows], 0, 1)
    x_gt = np.concatenate([gt_T[:, None, :3, 3], gt_joints.reshape(len(rows), -1, 3)], axis=1)
    fits = []
    for c in range(len(results)):
        lo, hi = interior_frames(frame_ranges, c)
        shared = (np.arange(first, last) < lo) | (np.arange(first, last) >= hi)
        args = (jnp.asarray(x[c].reshape(-1, 3)), jnp.asarray(x_gt.reshape(-1, 3)),
                jnp.asarray((w[c] * shared[:, None]).reshape(-1)))
        rot = dict(R_src=jnp.asarray(R[c]), R_dst=jnp.asarray(gt_T[:, :3, :3]),
                   rotation_weights=jnp.asarray(rw[c] * shared))
        S = sim3.fit_sim3(*args, bool(long_config.with_scale), **rot)
        if long_config.with_scale:
            S = sim3.gate_scale(S, sim3.fit_sim3(*args, False, **rot),
                                float(long_config.scale_gate))
        fits.append(S)
    return stitch_fits(results, frame_ranges, fits)


def stitch_fits(results, frame_ranges, fits):
    """Chunks mapped by similarities into the ground truth's world, re-expressed in chunk 0's world
    (as every stitching here), overlaps cross-faded."""
    s0, R0, t0 = (np.asarray(v, np.float64) for v in (fits[0].scale, fits[0].R, fits[0].t))
    transforms = []
    for S in fits:
        s, R, t = (np.asarray(v, np.float64) for v in (S.scale, S.R, S.t))
        transforms.append(sim3.Sim3(np.asarray(s / s0), R0.T @ R, R0.T @ (t - t0) / s0))
    mapped = [stitch_lib.transform_result(r, S) for r, S in zip(results, transforms, strict=True)]
    return stitch_lib.assemble(mapped, frame_ranges, "blend")


def chunk_diagnostics(results, frame_ranges, gt) -> dict[str, float]:
    """How far the chunks are from one similarity each (why no per-chunk stitching can be exact).

    * `chunk_bend_deg_{mean,max}`: per chunk, the angle between the rotations of the similarities
      fitted to the true joints on its first and on its last `overlap` frames (a rigid chunk: 0);
    * `chunk_oracle_scale_err_pct_max`: the largest |s - 1| of the chunks' own similarity to the
      truth (all frames): a chunk off its metric scale;
    * `chunk_focal_err_pct_max`: the largest |f / f_true - 1| of the chunks' focal.
    """
    gt_joints = np.asarray(gt.gt_joints_world_all, np.float64)
    f0 = int(np.asarray(gt.gt_frame_index)[0])
    overlap = frame_ranges[0][1] - frame_ranges[1][0]
    bends, scales, focals = [], [], []
    for r in results:
        valid = np.asarray(r.smpl_valid, bool)
        src = np.asarray(r.joints_world, np.float64)
        dst = gt_joints[:, np.asarray(r.frame_index) - f0]
        fits = []
        for part in (slice(None, overlap), slice(-overlap, None), slice(None)):
            m = valid[:, part]
            fits.append(metrics.umeyama(src[:, part][m].reshape(-1, 3),
                                        dst[:, part][m].reshape(-1, 3), with_scale=True))
        dR = fits[0][1].T @ fits[1][1]
        bends.append(np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1.0, 1.0))))
        scales.append(abs(float(fits[2][0]) - 1.0))
        focal = float(np.mean(np.asarray(r.K, np.float64)[:, 0, 0]))
        focals.append(abs(focal / float(np.asarray(gt.gt_focal)) - 1.0))
    return {"chunk_bend_deg_mean": float(np.mean(bends)), "chunk_bend_deg_max": float(np.max(bends)),
            "chunk_oracle_scale_err_pct_max": 100 * max(scales),
            "chunk_focal_err_pct_max": 100 * max(focals)}


def run_sequence(name, presets, overrides, config, long_config, body_cache) -> dict[str, float]:
    syn = sequence_config(presets, overrides, int(long_config.num_keyframes),
                          int(long_config.match_window))
    t = time.perf_counter()
    clip, gt = synthetic.generate_clip(syn, _SEED.value)
    out = {"generate_s": time.perf_counter() - t, "video_frames": float(len(gt.gt_frame_index))}
    if "body" not in body_cache:
        body_cache["body"] = pipeline.resolve_body_model(clip.body_model)
    cache = os.path.join(_CACHE_DIR.value, f"{name}.pkl") if _CACHE_DIR.value else ""
    if cache and os.path.exists(cache):
        with open(cache, "rb") as f:
            results, frame_ranges, timings = pickle.load(f)
    else:
        results, frame_ranges, timings = long_video.optimize_chunks(
            clip, config, body_cache["body"], long_config)
        if cache:
            os.makedirs(_CACHE_DIR.value, exist_ok=True)
            with open(cache, "wb") as f:
                pickle.dump((results, frame_ranges, timings), f)
    chunk_wa = [body_metrics(r, gt, int(r.frame_index[-1]) + 1)["wa_mpjpe_video_mm"]
                for r in results]
    out["chunk_wa_mpjpe_mm"] = float(np.mean(chunk_wa))
    out.update(chunk_diagnostics(results, frame_ranges, gt))
    out.update(optimize_s=timings["optimize_s"], num_chunks=float(timings["num_chunks"]),
               num_batches=float(timings["num_batches"]))
    for label, cfg, method in stitch_variants(long_config):
        result, info = long_video.stitch(results, frame_ranges, cfg, method)
        method = label
        out[f"seam_camera_cm_{method}"] = 100 * float(np.mean(info["seam_camera_m"]))
        out[f"seam_pelvis_cm_{method}"] = 100 * float(np.nanmean(info["seam_pelvis_m"]))
        out[f"seam_pelvis_cm_max_{method}"] = 100 * float(np.nanmax(info["seam_pelvis_m"]))
        out[f"border_step_camera_cm_{method}"] = 100 * float(np.max(info["border_step_camera_m"]))
        out[f"border_step_pelvis_cm_{method}"] = 100 * float(
            np.nanmax(info["border_step_pelvis_m"]))
        for key in ("max_correction_camera_m", "max_correction_pelvis_m"):
            if key in info:
                out[f"{key[:-2]}_cm_{method}"] = 100 * info[key]
        interior = interior_steps(result, frame_ranges)
        out[f"interior_step_camera_cm_{method}"] = 100 * interior["camera_m"]
        out[f"interior_step_pelvis_cm_{method}"] = 100 * interior["pelvis_m"]
        out.update({f"{k}_{method}": v for k, v in body_metrics(result, gt, frame_ranges[0][1]).items()})
    for label, oracle in (("oracle", oracle_result(results, frame_ranges, gt)),
                          ("overlap_oracle",
                           overlap_oracle_result(results, frame_ranges, gt, long_config))):
        oracle = body_metrics(oracle, gt, frame_ranges[0][1])
        out.update({f"{k}_{label}": v for k, v in oracle.items() if "mpjpe" in k})
    for key in ("w_mpjpe_video_mm", "w_mpjpe_chunk0fit_mm", "wa_mpjpe_video_mm", "w_mpjpe100_mm"):
        out[f"{key}_ratio_concat_over_align"] = out[f"{key}_concat"] / out[f"{key}_align"]
    out["w_mpjpe_video_ratio_concat_over_align"] = (
        out["w_mpjpe_video_mm_concat"] / out["w_mpjpe_video_mm_align"])
    print(name, json.dumps({k: round(v, 4) for k, v in out.items()}), flush=True)
    return out


def main(argv):
    del argv
    compile_cache.enable()
    config, long_config = _CONFIG.value, _LONG.value
    wanted = set(_SEQUENCES.value)
    per_seq, body_cache = {}, {}
    for name, presets, overrides in long_config.sequences:
        if not wanted or name in wanted:
            per_seq[name] = run_sequence(name, presets, overrides, config, long_config,
                                         body_cache)
    keys = [k for k in next(iter(per_seq.values())) if k != "optimize_s"]
    figures = {f"{k}_mean": float(np.mean([s[k] for s in per_seq.values()])) for k in keys}
    figures.update({f"optimize_s_{n}": s["optimize_s"] for n, s in per_seq.items()})
    figures["sequences"] = float(len(per_seq))
    write_result(
        _NAME.value, figures, out_dir=_OUT_DIR.value, tag=jax.default_backend(),
        per_sequence=per_seq, config=json.loads(config.to_json()),
        long_config=json.loads(long_config.to_json()),
        notes=("oracle front end (synthetic noisy ground truth, 64x96 images); JOSH preset "
               f"'{config.get('preset', '?')}' with stage1/stage2 iters "
               f"{config.stage1.iters}/{config.stage2.iters} (CPU budget); 2 shared CPU cores, "
               "timings noisy and include compilation; align = one transform per chunk from "
               "the shared frames' cameras (centres + orientations) and body joints (0.25), "
               "rigid unless the solved scale is > 20 % off, + joint refinement across seams + "
               "cross-faded overlaps; align_cameras = the previous default (cameras only, "
               "rigid, refined); align_bodies = the first Sim(3) from cameras and body joints; "
               "concat = JOSH rigid glue at each chunk's first frame, later chunk wins; oracle "
               "= per-chunk similarity fitted to the ground truth joints over all its frames, "
               "overlap_oracle = align's own fit against the ground truth on the overlaps only "
               "(bounds, not methods). Alignment "
               "settings chosen on seeds 0 and 1. Seam goal (< 1 cm) met by the refinement; "
               "whole-video W-MPJPE 2x lower than concat not met in general: the full oracle "
               "itself is not 2x below concat on every seed (the chunks bend internally)"),
    )


if __name__ == "__main__":
    cli.run(main)
