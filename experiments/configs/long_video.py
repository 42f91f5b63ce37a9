"""Long-video settings (`josh_jax.video.long_video`, `benchmarks/josh_long_video.py`).

Chunks are counted in keyframes of the long clip (one every `stride` video frames: with the
synthetic default stride 5, 21 keyframes = 100 video frames, as JOSH's chunks).

Presets:
    default   21-keyframe chunks sharing 6 keyframes (25 video frames), global alignment from
              the shared frames' camera centres and orientations and body joints, rigid unless a
              chunk's solved scale is more than 20 % off, joint refinement across the seams,
              cross-faded overlaps; the benchmark's 4 sequences of 301 video frames.
    tiny      6-keyframe chunks sharing 3 (tests).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.chunk_keyframes = 21  # keyframes per chunk (JOSH: 21)
    c.overlap_keyframes = 6  # keyframes shared by consecutive chunks
    c.batch_size = 0  # chunks per optimize_many batch; 0: all chunks in one batch
    c.one_program = True  # largest contact/static/vertex buckets: every chunk in one program
    # Alignment (docs/video.md §6): the shared frames' camera centres and orientations and body
    # joints; each chunk rigid unless its solved scale is far off (scale_gate). Before: cameras
    # only, rigid (the benchmark's `align_cameras`).
    c.camera_weight = 1.0  # alignment weight of a camera centre per shared frame
    c.joint_weight = 0.25  # alignment weight of each body joint per shared frame
    c.with_scale = True  # solve each chunk's scale (then gated: scale_gate)
    # A solved scale is kept only when |s - 1| > scale_gate, else the chunk is solved rigid
    # (chunks are metric through their bodies; a chunk without contacts may not be).
    c.scale_gate = 0.2
    # Alignment weight (m^2) of a camera orientation per shared frame: the squared lever arm at
    # which a rotation error costs as much as a point error (sim3.fit_sim3); 0: points only.
    c.rotation_weight = 4.0
    c.scale_prior = 0.0  # weight (m^2) pulling each chunk's scale to 1 (sim3.fit_sim3)
    # Alignment weight of each scene point of a shared keyframe (a grid of every scene_stride-th
    # pixel of its output pointmap; the same pixel in two chunks is one correspondence).
    c.scene_weight = 0.0
    c.scene_stride = 4
    # Joint refinement across the seams after the alignment (josh_jax/video/seams.py).
    c.refine = ml_collections.ConfigDict()
    c.refine.enabled = True
    c.refine.overlap_weight = 1.0  # shared frames: the chunks' tracks agree
    c.refine.smooth_weight = 1.0  # second differences of the per-frame corrections
    c.refine.prior_weight = 1e-3  # corrections stay small (fixes the free offset)
    c.refine.iters = 300  # conjugate-gradient iterations (the energy is quadratic)
    c.assemble = "blend"  # blend (cross-fade overlaps) | later_wins
    # Benchmark: long synthetic sequences (experiments/configs/synthetic.py presets + overrides).
    c.num_keyframes = 61  # keyframes per sequence (61 x stride 5 -> 301 video frames)
    c.sequences = (
        # name, synthetic presets, overrides ("key=value" for the synthetic config)
        ("turn_slope", "tiny,turn", ""),
        ("stairs", "tiny,stairs", ""),
        ("sit_bench", "tiny,sit", ""),
        ("two_people", "tiny,two_people", "camera=walk_along"),
    )
    c.match_window = 5  # keyframe pairs (i, j) with 0 < j - i <= window in the long clip
    for preset in (arg or "default").split(","):
        preset = preset.strip()
        if preset == "tiny":
            c.chunk_keyframes, c.overlap_keyframes, c.num_keyframes = 6, 3, 12
        elif preset and preset != "default":
            raise ValueError(f"long_video config: unknown preset {preset!r}; expected default, tiny")
    return c
