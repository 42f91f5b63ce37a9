"""Synthetic clip generator configuration (`josh_jax.synthetic.generate_clip`).

Usage:
    python -m experiments.make_synthetic --config=experiments/configs/synthetic.py:default \\
        --out=/tmp/synthetic --num_clips=4 --seed=0
    # override any field: --config.scene=stairs --config.motion=step_up --config.noise.scale=0.5

Presets (the string after the colon):
    default         21 keyframes every 5 video frames at 30 fps, 256x144, boxes, a walk, hand-held
    tiny            6 keyframes at 96x64 (tests)
    reference_like  the reference clip's setting: 512x288, f = 420 px, a room with boxes, a walk
    stairs          step up two steps, panning camera
    sit             sit down on a bench and stand up, orbiting camera
    two_people      two people walking side by side, static camera
    turn            walk, turn on the spot, walk on; slope scene; hand-held camera
    curved          a curved walk between partition walls, orbiting camera
Presets combine with commas, later ones win: `:tiny,sit`.
"""

import ml_collections

_SCENE_MOTION_CAMERA = {
    "default": ("boxes", "walk_straight", "walk_along", 1),
    "stairs": ("stairs", "step_up", "pan", 1),
    "sit": ("bench", "sit", "orbit", 1),
    "two_people": ("boxes", "walk_straight", "static", 2),
    "turn": ("slope", "turn", "walk_along", 1),
    "curved": ("walls", "walk_curved", "orbit", 1),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the generator config for the comma-separated presets in `arg`."""
    c = ml_collections.ConfigDict()
    _video_world_camera(c)
    c.noise = _noise()
    c.matches = _matches()
    c.hmr = _hmr()
    c.contact = _contact()
    # Outputs.
    c.store_images = True
    c.store_gt_depth = True
    c.min_visible_pixels = 20  # a person with fewer mask pixels is not valid in that frame
    for preset in (arg or "default").split(","):
        _apply_preset(c, preset.strip())
    c.lock()
    return c


def _video_world_camera(c: ml_collections.ConfigDict) -> None:
    """The video, the world (scene, people, motion) and the camera fields of `c`."""
    # Video and keyframes: the clip holds T keyframes, one every `stride` video frames.
    c.num_frames = 21
    c.stride = 5
    c.fps = 30.0
    c.height = 144
    c.width = 256
    c.focal_over_width = 420.0 / 512.0  # true focal in pixels / image width
    c.body_model = ""  # "" -> the built-in mannequin; else a model file for body_models.load_model
    # World.
    c.scene = "boxes"  # room | boxes | stairs | slope | bench | walls
    c.num_boxes = 4  # clutter boxes near the walls
    c.motion = "walk_straight"  # walk_straight | walk_curved | turn | step_up | sit | stand
    c.motion2 = ""  # second person's motion ("" -> same as the first)
    c.num_people = 1  # 0 (scene only), 1 or 2
    c.people_spacing = 0.9  # lateral distance between two people, metres
    c.walk_speed = 1.0  # m/s
    c.shape_std = 1.0  # true betas ~ N(0, shape_std), clipped to +-2.5
    # Camera.
    c.camera = "walk_along"  # static | pan | orbit | walk_along
    c.camera_distance = 4.0  # metres from the people
    c.camera_height = 1.5  # metres
    c.orbit_degrees = 90.0
    c.jitter_pos_m = 0.02  # hand-held position jitter (std)
    c.jitter_rot_deg = 1.0  # hand-held rotation jitter (std)


def _noise() -> ml_collections.ConfigDict:
    """`config.noise`: the foundation model's pointmaps and confidence."""
    n = ml_collections.ConfigDict()
    n.scale = 0.35  # model units per metre (unknown to the optimiser)
    n.frame_scale_jitter = 0.03  # relative std of the per-frame scale
    n.lowfreq_rel = 0.02  # smooth relative depth error (std)
    n.pixel_rel = 0.003  # per-pixel relative depth noise (std)
    n.blur_sigma_px = 1.5  # soft depth edges
    n.focal_error = 0.05  # the pointmaps are consistent with focal * (1 + focal_error)
    n.conf_far_m = 6.0  # confidence above 1 decays by e over this distance
    n.conf_edge_rel = 0.05  # relative depth step that halves the confidence
    return n


def _matches() -> ml_collections.ConfigDict:
    """`config.matches`: matches between keyframe pairs."""
    m = ml_collections.ConfigDict()
    m.window = 10  # pairs (i, j) with 0 < j - i <= window
    m.grid_step = 8  # one candidate per grid cell of frame i (jittered)
    m.outlier_rate = 0.05
    m.max_per_pair = 1024  # M (padding above the actual count)
    return m


def _hmr() -> ml_collections.ConfigDict:
    """`config.hmr`: the human mesh recovery (TRAM/VIMO-like) estimate; its focal is the image
    diagonal."""
    h = ml_collections.ConfigDict()
    h.orient_deg = 2.0
    h.joint_deg = 3.0
    h.betas_std = 0.3
    h.depth_bias = 0.05  # relative, along the viewing ray
    h.depth_noise = 0.03  # relative, per frame
    h.lateral_m = 0.01
    return h


def _contact() -> ml_collections.ConfigDict:
    """`config.contact`: the truth (height above the surface and speed) and DECO-like labels."""
    k = ml_collections.ConfigDict()
    k.height_m = 0.02
    k.speed_mps = 0.3
    k.drop_rate = 0.1
    k.false_rate = 0.002  # per foot vertex and frame
    k.fill_empty = True
    return k


def _apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
    """Applies one preset name ("" does nothing) to `c`."""
    if preset in _SCENE_MOTION_CAMERA:
        c.scene, c.motion, c.camera, c.num_people = _SCENE_MOTION_CAMERA[preset]
    elif preset == "tiny":
        c.num_frames, c.height, c.width = 6, 64, 96
        c.matches.window = 3
        c.matches.grid_step = 6
        c.matches.max_per_pair = 256
    elif preset == "reference_like":
        c.height, c.width = 288, 512
        c.scene, c.motion, c.camera, c.num_people = "boxes", "walk_straight", "walk_along", 1
        c.matches.max_per_pair = 4096
    elif preset:
        raise ValueError(f"unknown synthetic preset {preset!r}; expected tiny, reference_like "
                         f"or one of {sorted(_SCENE_MOTION_CAMERA)}")


# Generator settings that a noise level multiplies (`with_noise_level`; benchmarks/josh_batch.py,
# benchmarks/josh_accuracy.py): pointmap depth noise, frame scale jitter, focal error, match
# outliers, HMR errors and contact label noise.
NOISE_FIELDS = (
    ("noise", "frame_scale_jitter"), ("noise", "lowfreq_rel"), ("noise", "pixel_rel"),
    ("noise", "focal_error"), ("matches", "outlier_rate"), ("hmr", "orient_deg"),
    ("hmr", "joint_deg"), ("hmr", "betas_std"), ("hmr", "depth_bias"), ("hmr", "depth_noise"),
    ("hmr", "lateral_m"), ("contact", "drop_rate"), ("contact", "false_rate"),
)


def with_noise_level(config: ml_collections.ConfigDict,
                     noise_level: float) -> ml_collections.ConfigDict:
    """A copy of the generator `config` with every NOISE_FIELDS setting multiplied by
    `noise_level` (1: unchanged)."""
    c = config.copy_and_resolve_references()
    c.unlock()
    for group, name in NOISE_FIELDS:
        c[group][name] = float(c[group][name]) * noise_level
    c.lock()
    return c
