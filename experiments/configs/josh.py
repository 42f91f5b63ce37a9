"""Config of the JOSH optimizer (`josh_jax.prepare` + `josh_jax.optimize`).

Usage:
  python -m experiments.run_josh --config=experiments/configs/josh.py:default
  python -m experiments.run_josh --config=experiments/configs/josh.py:fast --config.stage1.iters=50

Presets (the arg after the colon):
  default           JOSH's own pipeline schedule (docs/method.md §2.8, §2.10: stage 1 500
                    iterations at lr 0.07 with rho_1.1, stage 2 200 at lr 0.014 with rho_0.4,
                    weights scale 1, prior 100) with this project's fixes on: contacts read on
                    a fitted scene surface and re-associated while optimising, the body depth
                    free along its camera ray (depth_along_ray), static 1 and smooth 1 (JOSH:
                    0.1 and 0.1), the human terms moving only the scene's global scale in
                    stage 1 (human_global_scale_stages).
  fast              the same, each stage ending once its loss has converged (`convergence`:
                    relative change <= 0.3 % over 50 iterations), but not before 60 % of its
                    iterations (`convergence.min_fraction`: a noisy clip's loss can plateau
                    early while the cameras still move); README main job.
  reference_compat  reproduces the reference's behaviour where it matters for parity: buggy
                    smpl_idx counter, contacts only from masked pixels with the canon2 depth
                    filter, raw 3x3 body-pose matrices and a root quaternion, smoothness gaps in
                    sampled-image index, the shared focal updated once per image per step, no
                    focal compensation of the contact offsets, human depth only rescaled inside
                    the contact term, static 0.1, smooth 0.1, no depth along the ray, contacts
                    read at the nearest scene pixel, every human term moving every camera.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of a preset (module docstring): the default's sections, then the preset's changes."""
    preset = arg or "default"
    if preset not in ("default", "fast", "reference_compat"):
        raise ValueError(
            f"josh config: unknown preset {preset!r}; expected default, fast or reference_compat"
        )
    c = ml_collections.ConfigDict()
    c.preset = preset
    c.reference_compat = False
    c.seed = 0
    c.body_model_path = ""  # "" -> body_models.load_model(None) (built-in body)

    _prepare(c)  # josh_jax.prepare
    _optimize(c)  # josh_jax.optimize

    # --- input limits and plausibility (josh_jax/preflight.py; docs/robustness.md) ---
    # Checked before anything is allocated: npz members from their zip and .npy headers, clip
    # dimensions from the headers, the frame span from `frame_index`, the memory of the
    # optimisation and the result from the bucketed shapes (before compiling).
    c.limits = _limits()

    # --- quality (josh_jax.quality.quality_problems: a result past any of these is `suspect`) ---
    c.quality = _quality()

    # --- outputs ---
    c.output_scene_stride = 2  # pixel step of the dense scene points stored in the Result

    _apply_preset(c, preset)
    c.lock()
    return c


def _prepare(c: ml_collections.ConfigDict) -> None:
    """The fields of `josh_jax.prepare`: sampling, matches, focal, contacts, buckets."""
    c.subsample = 8
    c.conf_offset = 0.999
    c.conf_thres = 0.1
    c.min_match_conf = 1e-3
    # > 0: confidence-weighted subsampling of each pair's matches (0 = keep all). On the reference
    # clip 1024 (of ~3,900 per pair) changed no metric measurably and cut the run time ~8x.
    c.max_matches_per_pair = 1024
    c.init_focal = 0.0  # > 0 overrides the focal initialisation
    c.use_clip_focal_init = True  # use Clip.focal_init when present (else Weiszfeld, as JOSH)
    c.contact_joint_radius = 0.05
    c.contact_thres = 0.5
    # Drop a contact whose surface depth and body depth (pointmap) differ by more than this
    # ratio (the reference: 1.01 on canon2 values at the snapped pixel).
    c.depth_filter_ratio = 1.03
    # Scene surface under a contact: a plane fitted to the trusted pixels within `radius` px that
    # are `margin` px clear of the body (pixels of a 512-wide image, scaled with the width);
    # windows with a relative rms above `max_rms` are dropped.
    # The optimiser re-reads the surface where the contact vertex currently projects
    # (`reassociate`; False: at the pixel found in prepare).
    c.contact_surface = ml_collections.ConfigDict(
        dict(radius=32, margin=3, max_rms=0.03, reassociate=True)
    )
    c.buckets = ml_collections.ConfigDict(
        dict(
            frames=(8, 16, 24, 32, 48),
            pairs=(32, 64, 160, 256, 384),
            matches_per_pair=(256, 1024, 2048, 4096, 4608, 8192),
            tracks=(1, 2, 4),
            contacts=(8, 32, 128),
            static=(8, 32, 128),
            vertices=(16, 64, 256),
        )
    )


def _optimize(c: ml_collections.ConfigDict) -> None:
    """The fields of `josh_jax.optimize`: stages, convergence, weights, priors, parametrisation."""
    c.stage1 = ml_collections.ConfigDict(dict(iters=500, lr=0.07, gamma=1.1))
    c.stage2 = ml_collections.ConfigDict(dict(iters=200, lr=0.014, gamma=0.4))
    # A stage ends once |loss(i) - loss(i - window)| <= rel_tol |loss(i)| (per clip, also in a
    # batch; josh_jax.optimize.solver.converged), but never before min_fraction of its
    # iterations; rel_tol 0: every iteration runs.
    c.convergence = ml_collections.ConfigDict(dict(rel_tol=0.0, window=50, min_fraction=0.0))
    c.human_gamma = 1.1
    # Stages whose human terms (contact scale, static, smooth) move the scene only through its
    # global scale (josh_jax.optimize.objective.global_coupling): no gradient to a single camera's
    # pose or depth scale. JOSH: () (every term moves every camera). Stage 1 global: the cameras
    # come from the matches, the HMR's per-frame depth noise moves the bodies, not the cameras
    # (on the noise x2.0 suite clip one camera per HMR depth outlier jumped ~1.7 m, ATE 69 cm;
    # with (1,) 4.0 cm: docs/method.md §8). Stage 2 refines every camera jointly again.
    c.human_global_scale_stages = (1,)
    # JOSH: static 0.1, smooth 0.1. The static and smoothness terms are what remove the HMR's
    # per-frame depth noise once the bodies move along their camera rays; heavier, they start to
    # bend the camera path (benchmarks/josh_accuracy.py).
    # focal: a weak prior log(f / f_init)^2 on the shared focal (objective.focal_prior_term);
    # 0 (JOSH: none). 1.0 (untuned) with focal_depth_model "proportional" in the accuracy sweep.
    c.weights = ml_collections.ConfigDict(
        dict(scale=1.0, prior=100.0, static=1.0, smooth=1.0, focal=0.0)
    )
    # Per-parameter prior weights (multiplying weights.prior). The body's depth moves along its
    # camera ray through depth_offset / depth_scale (per-frame / per-track log depth;
    # depth_along_ray): the HMR's 2D position is reliable, its depth is not, so the transl keeps
    # the reference's weight (1) and the depth parameters get weak ones.
    c.prior = ml_collections.ConfigDict(
        dict(orient=1.0, transl=1.0, pose=1.0, betas=1.0, depth_offset=0.03, depth_scale=0.03)
    )
    # Learning-rate multipliers per parameter group (relative to the stage lr). Adam moves every
    # parameter by ~lr per step whatever its gradient, so the body rotations and betas (whose
    # gradients are tiny) get a smaller step than the cameras and translations.
    c.lr_scale = ml_collections.ConfigDict(
        dict(camera=1.0, focal=1.0, transl=1.0, pose=0.1, depth=1.0)
    )
    c.fix_root_camera = True  # freeze the spanning-tree root's pose (global gauge)
    c.optimize_focal = True
    c.optimize_smpl = True
    c.rotation = "delta"  # "delta": axis-angle deltas on the HMR rotations; "matrix": reference
    c.focal_update = "single"  # "per_image": the reference's N Adam updates per step
    c.smooth_gap = "video"  # "video": gaps in video frames (per median gap); "image": reference
    c.human_depth_follows_focal = True  # transl z scaled by f / f_init in every term and output
    # How the scene depths follow the focal (docs/method.md §4): "josh" (JOSH's: every depth
    # shifts by m (f/f0 - 1), the relief shrinks as f0/f) or "proportional" (every depth scales
    # with f/f0, the relief is kept). "josh" by default: benchmarks/josh_accuracy.py
    # (variant proportional_focal_prior) and docs/method.md §8 say why.
    c.focal_depth_model = "josh"
    c.compensate_contact_offset = True  # focal-compensate the contact offsets like the matches
    # Move each body along its camera ray by exp(track log scale + frame log offset).
    c.depth_along_ray = True


def _limits() -> ml_collections.ConfigDict:
    """`config.limits`: input limits and plausibility (josh_jax/preflight.py)."""
    return ml_collections.ConfigDict(
        dict(
            max_member_mb=4096,  # declared (inflated) size of one npz member
            max_file_mb=8192,  # declared size of all members of one npz
            # A member over `ratio_min_mb` inflating more than `max_compression_ratio` times its
            # compressed size is refused (zip bomb); real clips compress ~2-100x.
            max_compression_ratio=200,
            ratio_min_mb=64,
            max_frames=2048,  # T keyframes
            max_frame_span=20000,  # F video frames covered (last - first frame_index + 1)
            min_image_size=16,  # H and W, pixels
            max_image_size=4096,
            max_pairs=65536,  # E
            max_matches_per_pair=65536,  # M
            max_tracks=64,  # P
            max_vertices=100000,  # V (contact columns)
            # Estimated peak of optimisation + results per batch; 0: 80 % of the RAM.
            max_memory_gb=0.0,
            # Plausibility at load.
            rotation_tol=1e-2,  # max |R^T R - I| and |det R - 1| of every HMR rotation
            max_abs_beta=10.0,  # shape coefficients (SMPL: a few units)
            min_positive_depth=0.5,  # fraction of confident scene pixels with z > 0
            min_fps=1.0,
            max_fps=1000.0,
        )
    )


def _quality() -> ml_collections.ConfigDict:
    """`config.quality`: thresholds past which a result is `suspect`."""
    return ml_collections.ConfigDict(
        dict(
            min_trusted_fraction=0.05,  # share of pixels with conf - conf_offset > conf_thres
            min_contacts_per_track=1,  # contact-labelled vertices (contact > contact_thres)
            max_stage_rel_change=0.15,  # |loss(last) - loss(last 10 %)| / |loss(last)| per stage
            # (uncalibrated on the sweep; the default preset on the small reference clip: 0.09, 0.03)
        )
    )


def _apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
    """The `fast` and `reference_compat` presets' changes to the default (module docstring)."""
    if preset == "fast":
        # The default's schedule, but a stage ends once its loss has converged (per clip): fewer
        # iterations only where they no longer change the loss. (150 + 60 fixed iterations, the
        # previous `fast`, lost up to 40 % focal error on some clips: docs/method.md §8.)
        c.convergence.rel_tol = 3e-3
        # The floor: never before 60 % of a stage (on the noise x2.0 suite clip stage 1 plateaued
        # at iteration 155 of 500 and stopped there: WA-MPJPE 368 mm against the default's 294).
        c.convergence.min_fraction = 0.6
    elif preset == "reference_compat":
        c.reference_compat = True
        c.max_matches_per_pair = 0
        c.depth_filter_ratio = 1.01
        c.contact_surface.reassociate = False
        c.use_clip_focal_init = False
        c.prior = ml_collections.ConfigDict(dict(orient=1.0, transl=1.0, pose=1.0, betas=1.0))
        c.lr_scale.pose = 1.0
        c.fix_root_camera = False
        c.rotation = "matrix"
        c.focal_update = "per_image"
        c.smooth_gap = "image"
        c.human_depth_follows_focal = False
        c.compensate_contact_offset = False
        c.depth_along_ray = False
        c.weights.smooth = 0.1
        c.weights.static = 0.1
        c.human_global_scale_stages = ()
