r"""Run JOSH on one clip, a batch of clips, or (with no input) a built-in synthetic clip.

    # The README's main job: one built-in synthetic clip (built-in mannequin body, no download),
    # `fast` preset unless --config is given; writes out/josh/synthetic_seed0.{npz,glb,tum.txt,mp4}
    python -m experiments.run_josh

    # One clip (our Clip .npz or the reference synthetic layout, detected automatically)
    python -m experiments.run_josh --clip=path/clip.npz --out=out/josh \
        --config=experiments/configs/josh.py:default

    # A batch (optimized together: one jit(vmap) program over the clips, sharded over devices)
    python -m experiments.run_josh --clips='clips/*.npz' --out=out/josh --config.stage1.iters=200

Outputs per clip `<stem>` (the input's file name without `.npz`), chosen by --writers (default
npz,glb,amass,tum,mp4; docs/outputs.md): `<stem>.npz` (the Result), `<stem>.glb` (animated glTF),
`<stem>.person<p>.amass.npz`, `<stem>.tum.txt`, `<stem>.mp4`; always `<stem>.metrics.json` when
the clip has ground truth and `summary.json` for the run. Files are written under temporary names and
renamed; nothing else in --out is touched.
"""

from __future__ import annotations

import glob
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "JOSH config file with preset, e.g. experiments/configs/josh.py:default. Default: ':default' "
    "for input clips, ':fast' for the built-in synthetic clip.", lock_config=False)
_CLIP = flags.DEFINE_string("clip", None, "One input clip (.npz).")
_CLIPS = flags.DEFINE_string("clips", None, "Glob of input clips, optimized as one batch.")
_FRONTEND = flags.DEFINE_string(
    "frontend", None, "With a JOSH preprocessing folder as --clip: the front end's pointmap/match .npz.")
_ALLOW_PICKLE = flags.DEFINE_boolean(
    "allow_pickle", False, "Allow unpickling JOSH's tram/deco .npy files (needs the torch extra).")
_OUT = flags.DEFINE_string("out", "out/josh", "Output folder (created if needed).")
_BODY_MODEL = flags.DEFINE_string(
    "body_model", None, "SMPL model file (.npz/.pkl). Default: the built-in mannequin.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the built-in synthetic clip (no-input mode).")
_SYNTHETIC_PRESET = flags.DEFINE_string(
    "synthetic_preset", "default", "Preset of experiments/configs/synthetic.py for the built-in clip.")
WRITERS = ("npz", "glb", "amass", "tum", "mp4", "ply", "static_glb", "viewer")
_WRITERS = flags.DEFINE_list(
    "writers", ["npz", "glb", "amass", "tum", "mp4"],
    "Files per clip, comma-separated (docs/outputs.md): npz (the Result), glb (animated glTF), "
    "amass (one AMASS-style .npz per person), tum (camera trajectory), mp4 (preview), ply (scene "
    "points), static_glb (keyframe bodies, OpenCV world), viewer (offline .html viewer).")
flags.register_validator(
    "writers", lambda names: set(names) <= set(WRITERS),
    f"--writers: expected names among {', '.join(WRITERS)}")
_VERTICES = flags.DEFINE_enum("vertices", "float16", ["float16", "float32", "none"],
                              "How to store vertices_world in the .npz.")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOSH_CONFIG = os.path.join(_REPO, "experiments", "configs", "josh.py")
SYNTHETIC_CONFIG = os.path.join(_REPO, "experiments", "configs", "synthetic.py")


def main(argv):
    del argv
    from josh_jax import importers, pipeline, synthetic  # noqa: PLC0415  (after absl parsed flags)

    if _CLIP.value and _CLIPS.value:
        raise app.UsageError("--clip and --clips are exclusive")
    paths = []
    if _CLIP.value:
        paths = [_CLIP.value]
    elif _CLIPS.value:
        paths = sorted(glob.glob(_CLIPS.value))
        if not paths:
            raise app.UsageError(f"--clips={_CLIPS.value!r} matches no file")

    config = _CONFIG.value
    if config is None:
        preset = "default" if paths else "fast"
        config = pipeline.load_config_file(JOSH_CONFIG, preset)
        print(f"config: experiments/configs/josh.py:{preset}")

    t0 = time.perf_counter()
    if paths:
        items = []
        for path in paths:
            clip, gt = importers.load_any(
                path, frontend=_FRONTEND.value, allow_pickle=_ALLOW_PICKLE.value)
            stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
            items.append((stem, clip, gt))
            print(f"[load] {path}: {clip.describe()}"
                  + (f"; ground truth: {', '.join(gt.present())}" if gt is not None else ""))
    else:
        syn_config = pipeline.load_config_file(SYNTHETIC_CONFIG, _SYNTHETIC_PRESET.value)
        clip, gt = synthetic.generate_clip(syn_config, _SEED.value)
        items = [(f"synthetic_seed{_SEED.value}", clip, gt)]
        print(f"[load] built-in synthetic clip (experiments/configs/synthetic.py:"
              f"{_SYNTHETIC_PRESET.value}, seed {_SEED.value}): {clip.describe()}")
    print(f"[load] done in {time.perf_counter() - t0:.1f} s")

    summaries = pipeline.run_and_write(
        items, config, out_dir=_OUT.value, body_model_path=_BODY_MODEL.value,
        writers=_WRITERS.value, vertices=_VERTICES.value,
        log=print)
    print(pipeline.summary_table(summaries))
    print(f"outputs in {os.path.abspath(_OUT.value)} (total {time.perf_counter() - t0:.1f} s)")
    logging.flush()


if __name__ == "__main__":
    app.run(main)
