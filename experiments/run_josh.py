r"""Run JOSH on one clip, a batch of clips, or (with no input) a built-in synthetic clip.

    # The README's main job: one built-in synthetic clip (built-in mannequin body, no download),
    # `fast` preset unless --config is given; writes out/josh/synthetic_seed0.{npz,glb,tum.txt,mp4}
    python -m experiments.run_josh

    # One clip (our Clip .npz, the reference synthetic layout or a JOSH folder, detected)
    python -m experiments.run_josh --clip=path/clip.npz --out=out/josh \
        --config=experiments/configs/josh.py:default

    # A batch (optimized together: one jit(vmap) program over the clips, sharded over devices)
    python -m experiments.run_josh --clips='clips/*.npz' --out=out/josh --config.stage1.iters=200

    # Your video (or --frames=dir/ of images): the JAX front end (Human3R bodies, pointmaps and
    # cameras; MASt3R matches when --mast3r is given, else matches from Human3R's geometry;
    # masks from the bodies; contacts) makes the Clip, then JOSH runs on it (docs/video.md)
    python -m experiments.run_josh --video=in.mp4 --human3r=human3r_flax.npz \
        --mast3r=MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth [--body_model=SMPL.npz]
    python -m experiments.run_josh --frames=dir/ --random_init --out=out/smoke   # random weights

Outputs per clip `<stem>` (the input's path relative to the inputs' common folder, without `.npz`;
one input: its file name), chosen by --writers (default npz,glb,amass,tum,mp4; docs/outputs.md):
`<stem>.npz` (the Result), `<stem>.glb` (animated glTF), `<stem>.person<p>.amass.npz`,
`<stem>.tum.txt`, `<stem>.mp4`; always `<stem>.metrics.json` when the clip has ground truth,
`<stem>.manifest.json` (the complete set, written last) and `summary.json` (merged with earlier
runs' entries). Each clip's files appear together (a result set); previous outputs are replaced
only with --overwrite; nothing else in --out is touched. --out is checked before any work.

Bad input: one line on stderr, exit status 2 (docs/robustness.md). In a batch, a clip that is
refused is skipped and reported (summary.json, the table) while the others are written; the exit
status is then 2. Results that look wrong are written and reported as `suspect`.
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

import body_models
from experiments import cli, compile_cache
from experiments.configs import frontend as frontend_configs
from experiments.configs import josh as josh_config
from experiments.configs.human3r import OFFICIAL_CHECKPOINT
from josh_jax import pipeline, preflight, synthetic
from josh_jax.clip import load_any, save_clip
from josh_jax.errors import InputError
from josh_jax.io import frames as frames_lib
from josh_jax.io import outputs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "JOSH config file with preset, e.g. experiments/configs/josh.py:default. Default: ':default' "
    "for input clips, ':fast' for the built-in synthetic clip.", lock_config=False)
_SYNTHETIC_CONFIG = config_flags.DEFINE_config_file(
    "synthetic_config", os.path.join(cli.CONFIGS, "synthetic.py") + ":default",
    "Synthetic generator config of the built-in clip (no-input mode).", lock_config=False)
_CLIP = flags.DEFINE_string("clip", None, "One input clip (.npz) or JOSH preprocessing folder.")
_VIDEO = flags.DEFINE_string("video", None, "One input video (any ffmpeg format): front end first.")
_FRAMES = flags.DEFINE_string("frames", None, "One input folder of images (sorted by name), as "
                              "--video.")
_HUMAN3R = flags.DEFINE_string(
    "human3r", None, "With --video/--frames: Human3R weights (converted .npz from "
    "experiments.convert_human3r, or the official .pth/.safetensors state dict).")
_MAST3R = flags.DEFINE_string(
    "mast3r", None, "With --video/--frames: MASt3R weights for the matches (.pth/.safetensors/"
    ".npz; a JOSH3R checkpoint's mast3r.* also works). Without: matches from Human3R's geometry.")
_RANDOM_INIT = flags.DEFINE_boolean(
    "random_init", False, "With --video/--frames: random network weights (plumbing runs; the "
    "'small' front-end preset unless --frontend_config is given).")
_FRONTEND_CONFIG = config_flags.DEFINE_config_file(
    "frontend_config", os.path.join(cli.CONFIGS, "frontend.py") + ":default",
    "Front-end config of --video/--frames (experiments/configs/frontend.py).", lock_config=False)
_LONG_CONFIG = config_flags.DEFINE_config_file(
    "long_video_config", os.path.join(cli.CONFIGS, "long_video.py") + ":default",
    "Long-video config (chunks, alignment, seam refinement) of --video/--frames when the video "
    "has more keyframes than --frontend_config.long_video_keyframes.", lock_config=False)
_SAVE_CLIP = flags.DEFINE_string(
    "save_clip", None, "With --video/--frames: also save the front end's Clip to this .npz.")
_CLIPS = flags.DEFINE_string("clips", None, "Glob of input clips, optimized as one batch.")
_FRONTEND = flags.DEFINE_string(
    "frontend", None, "With a JOSH preprocessing folder as --clip: the front end's pointmap/match .npz.")
_ALLOW_PICKLE = flags.DEFINE_boolean(
    "allow_pickle", False, "Allow unpickling JOSH's tram/deco .npy files (needs the torch extra).")
_OUT = flags.DEFINE_string("out", "out/josh", "Output folder (created if needed).")
_BODY_MODEL = flags.DEFINE_string(
    "body_model", None, "SMPL model file (.npz/.pkl). Default: the body the clips name (built-in "
    "mannequin, or the reference clip's body found beside the repo).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the built-in synthetic clip (no-input mode).")
_WRITERS = flags.DEFINE_list(
    "writers", list(outputs.DEFAULT_WRITERS),
    "Files per clip, comma-separated (docs/outputs.md): npz (the Result), glb (animated glTF), "
    "amass (one AMASS-style .npz per person), tum (camera trajectory), mp4 (preview), ply (scene "
    "points), static_glb (keyframe bodies, OpenCV world), viewer (offline .html viewer).")
flags.register_validator(
    "writers", lambda names: set(names) <= set(outputs.WRITERS),
    f"--writers: expected names among {', '.join(outputs.WRITERS)}")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace previous outputs of the same clips in --out (else: refused).")
_VERTICES = flags.DEFINE_enum("vertices", "float16", ["float16", "float32", "none"],
                              "How to store vertices_world in the .npz.")


def video_source() -> str | None:
    """The video or image folder of --video / --frames (None: clip inputs)."""
    given = [p for p in (_VIDEO.value, _FRAMES.value) if p]
    if not given:
        return None
    if len(given) > 1 or _CLIP.value or _CLIPS.value:
        raise InputError("command line", "--video/--frames/--clip/--clips", "one of them",
                         "several")
    if not os.path.exists(given[0]):
        raise frames_lib.FrameSourceError(given[0], "(file)",
                                          "an existing video file or image folder", "nothing")
    return given[0]


def frontend_config():
    """--frontend_config; with --random_init and no --frontend_config, the 'small' preset."""
    if _RANDOM_INIT.value and not flags.FLAGS["frontend_config"].present:
        return frontend_configs.get_config("small")
    return _FRONTEND_CONFIG.value


def video_clip(source: str, config, body_model):
    """The front end on --video/--frames: (clip, stages); the clip passes the preflight checks.

    A missing --human3r (without --random_init) is one line naming where the official checkpoint
    is published, before anything is read.
    """
    from trainers import video_frontend  # networks (flax) only for video inputs

    fcfg = frontend_config()
    if not (_HUMAN3R.value or _RANDOM_INIT.value):  # before anything is read or loaded
        raise InputError("--human3r", "(flag)", OFFICIAL_CHECKPOINT, "none")
    fps = frames_lib.frame_rate(source)  # refuses an unreadable video before loading networks
    params = video_frontend.load_human3r(_HUMAN3R.value, fcfg, random_init=_RANDOM_INIT.value,
                                         missing_message=OFFICIAL_CHECKPOINT)
    matcher = video_frontend.load_matcher(_MAST3R.value, fcfg, random_init=_RANDOM_INIT.value)
    stream = frames_lib.iter_frames(source, max_frames=int(fcfg.max_frames) or None)
    frontend = video_frontend.VideoFrontend(params, body_model, fcfg, matcher=matcher)
    clip, stages = frontend(stream, fps)
    if _SAVE_CLIP.value:
        save_clip(_SAVE_CLIP.value, clip)
        logging.info("[frontend] clip saved to %s", _SAVE_CLIP.value)
    preflight.check_clip(clip, config, source)
    return clip, stages


def input_paths() -> list[str]:
    """The clips named by --clip / --clips (none: the built-in synthetic clip)."""
    if _CLIP.value and _CLIPS.value:
        raise InputError("command line", "--clip/--clips", "one of them", "both")
    if _CLIP.value:
        return [_CLIP.value]
    if _CLIPS.value:
        paths = sorted(glob.glob(_CLIPS.value))
        if not paths:
            raise InputError("command line", "--clips", "a glob matching at least one file",
                             f"no match for {_CLIPS.value!r}")
        return paths
    return []


def load_items(paths: list[str], stems: list[str], config) -> tuple[list[tuple], list[dict]]:
    """(stem, clip, gt or None) per good input, and the summary entries of refused ones.

    Each input is loaded and checked on its own (`josh_jax.preflight`); with one input (--clip) a
    refusal is raised, in a batch it is reported and the input skipped. No input: the built-in
    synthetic clip.
    """
    if not paths:
        clip, gt = synthetic.generate_clip(_SYNTHETIC_CONFIG.value, _SEED.value)
        logging.info("[load] built-in synthetic clip (seed %d): %s", _SEED.value, clip.describe())
        return [(f"synthetic_seed{_SEED.value}", clip, gt)], []
    items, skipped = [], []
    for path, stem in zip(paths, stems, strict=True):
        try:
            clip, gt = load_any(path, frontend=_FRONTEND.value, allow_pickle=_ALLOW_PICKLE.value,
                                limits=config.limits)
            preflight.check_clip(clip, config, path)
        except (InputError, FileNotFoundError) as e:
            if len(paths) == 1:
                raise
            skipped.append(pipeline.skipped_entry(stem, cli.one_line(e), source=path))
            continue
        items.append((stem, clip, gt))
        logging.info("[load] %s: %s%s", path, clip.describe(),
                     f"; ground truth: {', '.join(gt.present())}" if gt is not None else "")
    return items, skipped


def check_bodies(items: list[tuple], skipped: list[dict], body_model,
                 sources: dict[str, str]) -> tuple[list[tuple], list[dict]]:
    """Each clip's contact / joints / betas sized for the body (`preflight.check_clip_body`);
    one input: raised, a batch: the clip skipped."""
    kept = []
    for stem, clip, gt in items:
        source = sources.get(stem, stem)
        try:
            preflight.check_clip_body(clip, body_model, source)
        except InputError as e:
            if len(items) + len(skipped) == 1:
                raise
            skipped = skipped + [pipeline.skipped_entry(stem, cli.one_line(e), source=source)]
            continue
        kept.append((stem, clip, gt))
    if not kept:
        raise InputError(_CLIPS.value, "--clips", "at least one usable clip",
                         f"none ({skipped[0]['problems'][0]})")
    return kept, skipped


def main(argv):
    del argv
    compile_cache.enable()  # before the first jit; --compilation_cache=off turns it off
    source = video_source()
    if source is not None:
        return main_video(source)
    paths = input_paths()
    config = _CONFIG.value
    if config is None:
        preset = "default" if paths else "fast"
        config = josh_config.get_config(preset)
        logging.info("config: experiments/configs/josh.py:%s", preset)
    stems = outputs.output_names(paths) if paths else [f"synthetic_seed{_SEED.value}"]
    outputs.check_destination(_OUT.value, stems, overwrite=_OVERWRITE.value, inputs=paths)

    t0 = time.perf_counter()
    items, skipped = load_items(paths, stems, config)
    logging.info("[load] done in %.1f s", time.perf_counter() - t0)
    if not items:
        raise InputError(_CLIPS.value, "--clips", "at least one usable clip",
                         f"none of {len(paths)} ({skipped[0]['problems'][0]})")
    body_names = sorted({str(clip.body_model) for _, clip, _ in items})
    if len(body_names) != 1:
        raise InputError(_CLIPS.value, "body_model", "one body model for the batch",
                         f"{body_names}")
    body_model = pipeline.resolve_body_model(
        body_names[0], cli.body_model_path(body_names[0], _BODY_MODEL.value))
    items, skipped = check_bodies(items, skipped, body_model,
                                  dict(zip(stems, paths, strict=True)) if paths else {})

    summaries = pipeline.run_and_write(
        items, config, body_model, out_dir=_OUT.value, writers=_WRITERS.value,
        vertices=_VERTICES.value, overwrite=_OVERWRITE.value, skipped=skipped)
    print(pipeline.summary_table(summaries))
    print(f"outputs in {os.path.abspath(_OUT.value)} (total {time.perf_counter() - t0:.1f} s)")
    bad = [s for s in summaries if s["status"] in ("skipped", "failed")]
    if bad:
        raise InputError(_OUT.value + "/summary.json", "clips",
                         f"every clip reconstructed ({len(summaries) - len(bad)} of "
                         f"{len(summaries)} were)", f"{bad[0]['status']} {bad[0]['clip']}: "
                         f"{bad[0]['problems'][0]}")


def main_video(source: str) -> None:
    """--video / --frames: the front end's Clip, then JOSH on it (the same outputs as --clip)."""
    config = _CONFIG.value or josh_config.get_config("default")
    stem = outputs.output_names([source])[0]
    outputs.check_destination(_OUT.value, [stem], overwrite=_OVERWRITE.value, inputs=[source])
    t0 = time.perf_counter()
    body_model = body_models.load_model(_BODY_MODEL.value)
    clip, _ = video_clip(source, config, body_model)
    preflight.check_clip_body(clip, body_model, source)
    if clip.num_frames > int(frontend_config().long_video_keyframes):
        return write_long_video(stem, clip, config, body_model, t0)
    summaries = pipeline.run_and_write(
        [(stem, clip, None)], config, body_model, out_dir=_OUT.value, writers=_WRITERS.value,
        vertices=_VERTICES.value, overwrite=_OVERWRITE.value)
    print(pipeline.summary_table(summaries))
    print(f"outputs in {os.path.abspath(_OUT.value)} (total {time.perf_counter() - t0:.1f} s)")
    bad = [s for s in summaries if s["status"] in ("skipped", "failed")]
    if bad:
        raise InputError(source, "clip", "a clip JOSH can reconstruct",
                         f"{bad[0]['status']}: {bad[0]['problems'][0]}")


def write_long_video(stem: str, clip, config, body_model, t0: float) -> None:
    """A video with more keyframes than one JOSH window: overlapping chunks in one batch, global
    alignment and the seam refinement (`josh_jax.video.long_video`), one result set."""
    from josh_jax.video import long_video  # only for long videos

    long_config = _LONG_CONFIG.value
    logging.info("[long video] %d keyframes: chunks of %d sharing %d", clip.num_frames,
                 long_config.chunk_keyframes, long_config.overlap_keyframes)
    result, info = long_video.reconstruct_long(clip, config, body_model, long_config)
    written = outputs.write_result_set(_OUT.value, stem, result, writers=_WRITERS.value,
                                       body_model=body_model, vertices=_VERTICES.value)
    print(f"{stem}: {clip.num_frames} keyframes in {len(info['frame_ranges'])} chunks, "
          f"largest seam: camera {float(np.max(info['seam_camera_m'])):.3f} m, pelvis "
          f"{float(np.nanmax(info['seam_pelvis_m'], initial=0.0)):.3f} m")
    for kind in sorted(written):
        print(f"  wrote {written[kind]}")
    print(f"outputs in {os.path.abspath(_OUT.value)} (total {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    cli.run(main)
