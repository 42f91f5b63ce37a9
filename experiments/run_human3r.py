"""Human3R on a video: cameras, scene and every person's body in one world frame, online.

  python -m experiments.run_human3r --video=in.mp4 --checkpoint=human3r_flax.npz --out=out/
  python -m experiments.run_human3r --frames=dir/ --checkpoint=human3r.pth \
      --body_model=SMPLX_NEUTRAL.npz --out=out/ --ttt3r --reset_interval=100 --size=512
  python -m experiments.run_human3r --video=in.mp4 --random_init --out=out/   # smoke run

Frames are streamed (never the whole video in memory) through one jitted step (compiled once).
Writes one result set `<out>/<stem>.{npz,glb,tum.txt,mp4}` + manifest (`docs/outputs.md`;
`--overwrite` replaces a previous one) and prints one line per person track. Without
`--checkpoint` (and without `--random_init`) it stops with one line saying where the official
checkpoint is published and how to convert it (exit status 2). Defaults:
`experiments/configs/human3r.py`.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

import body_models
from experiments import cli, compile_cache
from experiments.configs.human3r import OFFICIAL_CHECKPOINT, get_config
from josh_jax.errors import InputError
from josh_jax.io import frames as frames_lib
from josh_jax.io import outputs as outputs_lib
from trainers.human3r import convert, infer, summary

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    "experiments/configs/human3r.py:released",
    "Human3R config file with preset (with --random_init and no --config: the 'small' preset).",
)
_VIDEO = flags.DEFINE_string("video", None, "Input video (any ffmpeg format).")
_FRAMES = flags.DEFINE_string("frames", None, "Input folder of images (sorted by name).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "Converted .npz (experiments.convert_human3r) or an official "
    ".pth/.safetensors/.npz state dict.",
)
_BODY = flags.DEFINE_string(
    "body_model",
    None,
    "SMPL-X model file (.npz/.pkl); default: the "
    "built-in body driven by the 22 joints SMPL and SMPL-X share.",
)
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_SIZE = flags.DEFINE_integer("size", None, "Long side of the network input (config: 512).")
_RESET = flags.DEFINE_integer("reset_interval", None, "Frames per chunk (config: 100).")
_TTT3R = flags.DEFINE_boolean("ttt3r", None, "TTT3R gated state update (config: off).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Stop after this many frames (config: all).")
_RANDOM = flags.DEFINE_boolean("random_init", False, "Random weights (smoke runs; no checkpoint).")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace previous outputs of this input.")


def _config():
    config = _CONFIG.value
    if _RANDOM.value and not flags.FLAGS["config"].present:
        config = get_config("small")
    with config.unlocked():
        for flag, key in (
            (_SIZE, "image_size"),
            (_RESET, "reset_interval"),
            (_TTT3R, "ttt3r"),
            (_MAX_FRAMES, "max_frames"),
        ):
            if flag.value is not None:
                config[key] = flag.value
    return config


def _source() -> str:
    given = [p for p in (_VIDEO.value, _FRAMES.value) if p]
    if len(given) != 1:
        raise InputError(
            "command line", "--video / --frames", "exactly one of them", f"{len(given)} given"
        )
    path = given[0]
    if not os.path.exists(path):
        raise frames_lib.FrameSourceError(
            path, "(file)", "an existing video file or image folder", "nothing"
        )
    return path


def _params(sizes: convert.Human3rSizes, seed: int) -> convert.Human3rParams:
    if _RANDOM.value:
        logging.info("[human3r] random weights (--random_init, seed %d)", seed)
        return convert.random_params(sizes, seed)
    path = _CHECKPOINT.value
    if not path:
        raise InputError("--checkpoint", "(flag)", OFFICIAL_CHECKPOINT, "none")
    if convert.is_converted_file(path):
        return convert.load_params(path, sizes)
    return convert.load_human3r(path, sizes)[0]


def _summary_lines(result, fps: float) -> list[str]:
    ids = np.asarray(result.diagnostics["track_ids"])
    lines = []
    for p, pid in enumerate(ids):
        frames = np.flatnonzero(np.asarray(result.smpl_valid[p]))
        head = np.asarray(result.diagnostics["smplx_T_cam_head"])[p, frames]
        lines.append(
            f"track {int(pid)}: {len(frames)} frames visible ({frames[0]}-{frames[-1]}, "
            f"{len(frames) / fps:.1f} s), median head distance "
            f"{float(np.median(np.linalg.norm(head, axis=-1))):.2f} m"
        )
    return lines or ["no person detected"]


def main(argv):
    del argv
    compile_cache.enable()
    config = _config()
    source = _source()
    if not _OUT.value:
        raise InputError("command line", "--out", "an output folder", "none")
    fps = frames_lib.frame_rate(source) / config.stride  # also refuses an unreadable video early
    stem = outputs_lib.output_names([source])[0]
    outputs_lib.check_destination(_OUT.value, [stem], overwrite=_OVERWRITE.value, inputs=[source])
    sizes = convert.Human3rSizes.from_config(config)
    params = _params(sizes, config.seed)
    body_model = body_models.load_model(_BODY.value)
    cfg = infer.InferConfig.from_config(config)
    stream = frames_lib.iter_frames(
        source, max_frames=config.max_frames or None, stride=config.stride
    )
    run = infer.run_frames(
        params,
        stream,
        cfg,
        body_model,
        progress=lambda n, rate: logging.info("[human3r] %d frames, %.2f frames/s", n, rate),
    )
    rate = (run.num_frames - 1) / run.run_s if run.num_frames > 1 and run.run_s > 0 else 0.0
    logging.info(
        "[human3r] %d frames: compile + first frame %.1f s, then %.2f frames/s (%d trace(s))",
        run.num_frames,
        run.compile_s,
        rate,
        run.traces,
    )
    result = summary.to_result(
        run,
        body_model,
        fps=fps,
        scene_stride=cfg.scene_stride,
        conf_threshold=cfg.conf_threshold,
        config=config,
    )
    written = outputs_lib.write_result_set(
        _OUT.value, stem, result, writers=config.writers, body_model=body_model
    )
    print(f"{stem}: {run.num_frames} frames, {len(run.people)} track(s), {rate:.2f} frames/s")
    for line in _summary_lines(result, fps):
        print("  " + line)
    for kind in sorted(written):
        print(f"  wrote {written[kind]}")


if __name__ == "__main__":
    cli.run(main)
