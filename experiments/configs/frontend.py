"""Video front end (`trainers/video_frontend.py`): a video -> keyframes -> Human3R -> matches ->
masks -> contacts -> one Clip; what `python -m experiments.run_josh --video=...` runs first.

    python -m experiments.run_josh --video=in.mp4 --human3r=human3r_flax.npz \
        --mast3r=mast3r.pth --out=out/josh
    python -m experiments.run_josh --frames=dir/ --random_init --out=out/smoke   # random weights

Presets (`--frontend_config=experiments/configs/frontend.py:<preset>`):
  default   released Human3R sizes at 512 (JOSH's 512 x 288 clips for 16:9 video), MASt3R at
            full size, JOSH's sampling (every 5th frame, pairs up to 10 keyframes apart)
  small     Human3R `small` and MASt3R `micro`: CPU sizes for `--random_init` smoke runs
  tiny      Human3R `tiny` at 64 px and MASt3R `micro` (tests)
"""

from __future__ import annotations

import ml_collections

from experiments.configs import human3r as human3r_configs
from experiments.configs import josh3r as josh3r_configs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset = arg or "default"
    sizes = {"default": ("released", "full"), "small": ("small", "micro"),
             "tiny": ("tiny", "micro")}
    if preset not in sizes:
        raise ValueError(f"frontend config: unknown preset {preset!r}; expected default, small, tiny")
    human3r_size, mast3r_size = sizes[preset]
    c = ml_collections.ConfigDict()
    c.preset = preset
    # --- sampling (spec §1.5.2, §1.5.4; josh_jax/video/sampling.py) ---
    c.interval = 5  # keyframe stride k in video frames (JOSH opt_interval); the last frame is forced in
    c.window = 10  # pairs (i, j) with 0 < j - i <= window keyframes, each once (JOSH window-10)
    c.max_frames = 0  # stop reading after this many video frames (0: the whole video)
    # More keyframes than this (JOSH's window is the whole video under 1 + 2 k (M - 1) = 201
    # frames: 41 keyframes): the long-video path (chunks, alignment, seam refinement).
    c.long_video_keyframes = 41
    # --- Human3R (bodies, track ids, camera-frame pointmaps + confidence, cameras) ---
    c.human3r = human3r_configs.get_config(human3r_size)
    c.human3r.unlock()
    c.human3r.scene_stride = 1  # the clip's pixel step on the Human3R input (1: 512 x 288 clips)
    if preset == "tiny":
        c.human3r.image_size = 64
        c.human3r.human.max_people = 2
    # --- matches ---
    # "auto": MASt3R when a checkpoint (or --random_init with matcher=mast3r) is given, else
    # "geometry": matches from Human3R's own pointmaps and chained cameras.
    c.matcher = "auto"
    c.mast3r = josh3r_configs.model_config(mast3r_size)
    c.match_subsample = 8  # seed grid step of the reciprocal NN matcher (JOSH: 8)
    c.match_batch = 4  # pairs per jitted MASt3R call (the last batch is padded: one program)
    c.geometry = ml_collections.ConfigDict(dict(
        subsample=8,  # seed grid step in frame i (clip pixels)
        min_confidence=1.1,  # raw confidence in both frames (JOSH trusts conf - 0.999 > 0.1)
        depth_tolerance=0.05,  # |z_j(pixel) - z_projected| <= tol * z: visible, not occluded
    ))
    # --- masks (josh_jax/video/masks.py) ---
    c.mask_radius_px = 2  # dilation of the rendered silhouettes, clip pixels
    # --- contacts (josh_jax/video/contacts.py) ---
    c.contacts = ml_collections.ConfigDict(dict(
        # Regions: a vertex belongs to a region when its largest skinning weight is one of the
        # region's joints (SMPL ids): left foot (ankle, foot), right foot, left hand (wrist,
        # hand), right hand, pelvis and buttocks (pelvis, hips).
        regions=((7, 10), (8, 11), (20, 22), (21, 23), (0, 1, 2)),
        # p = soft(speed, speed_scale_mps) * soft(gap, gap_scale_m), soft(x, s) = 1 / (1 + (x/s)^4).
        # Chosen on benchmarks/contact_estimation.py seeds 0-1 (seed 2 held out).
        speed_scale_mps=0.8,  # median world speed of the region's anchors (central difference)
        gap_scale_m=0.05,  # median distance of the anchors to the plane of the local scene
        band_m=0.02,  # label the region's vertices at most this far above its lowest anchor
        anchor_vertices=20,  # region vertices nearest the scene: the region's gap and speed
        plane_points=16,  # scene points nearest the anchors that the local plane is fitted to
        neighbours=2,  # scene points of keyframes t - n .. t + n (a foot hides its own floor)
        scene_stride=4,  # pixel step of those scene points
    ))
    c.seed = 0  # --random_init weights
    c.lock()
    return c
