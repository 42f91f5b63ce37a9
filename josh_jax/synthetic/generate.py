"""`generate_clip(config, seed) -> (Clip, GroundTruth)`: one synthetic clip with its ground truth.

Pipeline: scene -> people's motions (every video frame) -> camera path (every video frame) ->
render the keyframes (depth, RGB, masks) -> simulated front end (pointmaps, confidence, matches,
HMR estimates, DECO contacts) -> `Clip` + `GroundTruth`.

Determinism: every stage draws from its own child of `np.random.SeedSequence(seed)`, so a seed
gives byte-identical arrays, and changing one stage's settings does not reshuffle the others.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

import body_models
from josh_jax import clip as clip_lib
from josh_jax import geometry
from josh_jax.errors import InputError
from josh_jax.synthetic import cameras, frontend_noise, motions, render, scenes

# Stage names, in SeedSequence.spawn order (append only: keeps old seeds' clips unchanged).
_STAGES = ("scene", "betas", "motion", "camera", "depth", "matches", "hmr", "deco", "look")

# Clothing colours per body part, by each vertex's dominant joint (SMPL joint indices).
_SKIN = (12, 15, 20, 21, 22, 23)
_SHOES = (7, 8, 10, 11)
_TROUSERS = (0, 1, 2, 4, 5)


@functools.lru_cache(maxsize=4)
def _load_body(path: str):
    return body_models.load_model(path or None)


def _vertex_colours(model, rng: np.random.Generator) -> np.ndarray:
    dominant = np.argmax(np.asarray(model.lbs_weights), axis=1)
    shirt = rng.uniform(0.15, 0.9, 3)
    trousers = rng.uniform(0.1, 0.5, 3)
    skin = np.array([0.85, 0.66, 0.52]) * rng.uniform(0.6, 1.05)
    colours = np.broadcast_to(shirt, (len(dominant), 3)).copy()
    colours[np.isin(dominant, _TROUSERS)] = trousers
    colours[np.isin(dominant, _SKIN)] = skin
    colours[np.isin(dominant, _SHOES)] = (0.12, 0.1, 0.1)
    return colours


def _lanes(num_people: int, spacing: float, motion: str) -> list[float]:
    if num_people == 1:
        return [0.0]
    if motion == "sit":
        return [-0.4, 0.4]
    return [-0.5 * spacing, 0.5 * spacing][:num_people]


def _check_config(config) -> None:
    checks = [
        ("scene", config.scene in scenes.SCENES, f"one of {scenes.SCENES}"),
        ("motion", config.motion in motions.MOTIONS, f"one of {motions.MOTIONS}"),
        ("motion2", config.motion2 in ("",) + motions.MOTIONS, f"'' or one of {motions.MOTIONS}"),
        ("camera", config.camera in cameras.CAMERAS, f"one of {cameras.CAMERAS}"),
        ("num_people", config.num_people in (0, 1, 2), "0, 1 or 2"),
        ("num_frames", config.num_frames >= 2, ">= 2"),
        ("stride", config.stride >= 1, ">= 1"),
        ("height", config.height >= 8, ">= 8"),
        ("width", config.width >= 8, ">= 8"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise InputError("synthetic config", key, expected, repr(config[key]))
    motions_used = {config.motion, config.motion2 or config.motion} if config.num_people else set()
    if "sit" in motions_used and config.scene != "bench":
        raise InputError("synthetic config", "scene", "'bench' (motion 'sit' needs it)",
                         repr(config.scene))


def generate_clip(config, seed: int, *, return_extras: bool = False):
    """Generates one synthetic clip.

    Args:
        config: `experiments/configs/synthetic.py` ConfigDict.
        seed: random seed; equal seeds give byte-identical clips.
        return_extras: also return a dict of internals (scene, per-person masks, world vertices
            of every video frame, match outlier flags) for tests and previews.

    Returns:
        (clip, gt) or (clip, gt, extras).
    """
    _check_config(config)
    children = np.random.SeedSequence(seed).spawn(len(_STAGES))
    rngs = {name: np.random.default_rng(s) for name, s in zip(_STAGES, children, strict=True)}
    model = _load_body(config.body_model)
    num_t, stride, fps = int(config.num_frames), int(config.stride), float(config.fps)
    num_video = 1 + stride * (num_t - 1)
    key_idx = np.arange(num_t) * stride
    height, width = int(config.height), int(config.width)
    focal = float(config.focal_over_width) * width
    K = geometry.centred_intrinsics(focal, height, width)

    scene = scenes.make_scene(config.scene, rngs["scene"], int(config.num_boxes))
    people = _people(config, model, scene, num_video, fps, rngs)
    T_world_cam_all = _camera_path(config, scene, people, num_video, fps, rngs)
    T_world_cam = T_world_cam_all[key_idx]
    depth, person_map, images = _render_keyframes(scene, K, T_world_cam, people, model, key_idx,
                                                  height, width)
    human = person_map >= 0
    front = _front_end(config, depth, human, K, T_world_cam, focal, rngs)
    hmr_focal = float(np.hypot(width, height))
    tracks = _tracks(config, model, scene, people, person_map, T_world_cam, key_idx, fps,
                     focal, hmr_focal, rngs)

    clip = _make_clip(config, model, key_idx, fps, front, human, tracks, hmr_focal, images,
                      len(people))
    gt = _make_ground_truth(config, model, scene, people, tracks, T_world_cam, T_world_cam_all,
                            focal, human, depth, num_video)
    if not return_extras:
        return clip, gt
    extras = dict(scene=scene, person_map=person_map, depth=depth, K=K, model=model,
                  verts_world=[p["verts"] for p in people], key_index=key_idx,
                  frame_scale=front["frame_scale"], pred_depth=front["pred_depth"],
                  match_outlier=front["outliers"],
                  stance=[p["motion"].stance for p in people],
                  ik_residual_m=[p["motion"].ik_residual_m for p in people])
    return clip, gt, extras


def _make_clip(config, model, key_idx, fps: float, front: dict, human, tracks: dict,
               hmr_focal: float, images, num_people: int) -> clip_lib.Clip:
    """The Clip a front end would have produced: noisy pointmaps, matches and HMR tracks."""
    f32 = np.float32
    return clip_lib.Clip(
        frame_index=key_idx.astype(np.int32),
        fps=np.asarray(fps, f32),
        pointmaps=front["pointmaps"],
        confidence=front["conf"],
        human_mask=human,
        pairs=front["pairs"],
        matches=front["matches"],
        match_confidence=front["match_conf"],
        smpl_global_orient=tracks["smpl_global_orient"].astype(f32),
        smpl_body_pose=tracks["smpl_body_pose"].astype(f32),
        smpl_betas=tracks["smpl_betas"].astype(f32),
        smpl_transl=tracks["smpl_transl"].astype(f32),
        hmr_focal=np.asarray(hmr_focal, f32),
        smpl_valid=tracks["smpl_valid"],
        contact=tracks["contact"],
        images=images if config.store_images else None,
        focal_init=np.asarray(front["pred_focal"], f32),
        pair_scores=front["counts"].astype(f32),
        track_id=np.arange(num_people, dtype=np.int32),
        body_model=model.name,
    )


def _make_ground_truth(config, model, scene, people: list, tracks: dict, T_world_cam,
                       T_world_cam_all, focal: float, human, depth,
                       num_video: int) -> clip_lib.GroundTruth:
    """The true cameras, bodies, contacts and scene of the clip."""
    scene_vertices, scene_faces, _ = scene.mesh()
    return clip_lib.GroundTruth(
        gt_T_world_cam=T_world_cam,
        gt_focal=np.asarray(focal, np.float64),
        gt_pointmap_scale=np.asarray(1.0 / config.noise.scale, np.float64),
        gt_smpl_global_orient=tracks["gt_orient"],
        gt_smpl_body_pose=tracks["gt_pose"],
        gt_smpl_betas=tracks["gt_betas"],
        gt_smpl_transl=tracks["gt_transl"],
        gt_contact=tracks["gt_contact"],
        gt_scene_vertices=scene_vertices,
        gt_scene_faces=scene_faces,
        gt_human_mask=human,
        gt_depth=depth.astype(np.float32) if config.store_gt_depth else None,
        gt_frame_index=np.arange(num_video, dtype=np.int32),
        gt_T_world_cam_all=T_world_cam_all,
        gt_joints_world_all=(np.stack([p["joints"] for p in people]) if people
                             else np.zeros((0, num_video, model.num_joints, 3))),
    )


def _people(config, model, scene, num_video: int, fps: float, rngs) -> list[dict]:
    """Per person: the motion, posed world vertices and joints at every video frame, colours."""
    people = []
    kinds = [config.motion, config.motion2 or config.motion][: config.num_people]
    lanes = _lanes(config.num_people, config.people_spacing, config.motion)
    # One motion seed for everybody: two people make the same choices (turn direction,
    # heading), so they walk as a group in their own lanes instead of crossing paths.
    motion_seed = int(rngs["motion"].integers(2**31))
    for kind, lane in zip(kinds, lanes, strict=True):
        betas = np.clip(config.shape_std * rngs["betas"].standard_normal(model.num_betas),
                        -2.5, 2.5)
        plan = motions.root_plan(kind, num_video, fps, scene, lane=lane,
                                 speed=config.walk_speed,
                                 rng=np.random.default_rng(motion_seed))
        motion = motions.make_motion(model, betas, plan, scene, fps)
        verts, joints = motions.pose_vertices(model, motion.betas, motion.global_orient,
                                              motion.body_pose, motion.transl)
        people.append(dict(motion=motion, verts=verts, joints=joints,
                           colours=_vertex_colours(model, rngs["look"])))
    return people


def _camera_path(config, scene, people, num_video: int, fps: float, rngs) -> np.ndarray:
    """float64[F, 4, 4] camera-to-world at every video frame, following the people."""
    if people:
        pelvis_mean = np.mean([p["joints"][:, 0] for p in people], axis=0)
        heading = people[0]["motion"].heading
    else:  # scene only: the camera follows where a walker would be
        plan = motions.root_plan("walk_straight", num_video, fps, scene, rng=rngs["motion"])
        pelvis_mean = np.concatenate([plan.anchor_xz[:, :1], np.full((num_video, 1), 0.9),
                                      plan.anchor_xz[:, 1:]], axis=1)
        heading = plan.heading
    return cameras.camera_trajectory(
        config.camera, pelvis_mean, heading, rngs["camera"], distance=config.camera_distance,
        height=config.camera_height, orbit_degrees=config.orbit_degrees,
        jitter_pos_m=config.jitter_pos_m, jitter_rot_deg=config.jitter_rot_deg, fps=fps,
        side_sign=scene.features.get("camera_side"))


def _render_keyframes(scene, K, T_world_cam, people, model, key_idx, height: int, width: int):
    """(depth float64[T,H,W], person index int32[T,H,W] (-1: scene), RGB uint8[T,H,W,3])."""
    num_t = len(key_idx)
    faces = np.asarray(model.faces)
    depth = np.zeros((num_t, height, width))
    person_map = np.zeros((num_t, height, width), np.int32)
    images = np.zeros((num_t, height, width, 3), np.uint8)
    for t, k in enumerate(key_idx):
        frame = render.render_frame(scene, K, T_world_cam[t], height, width,
                                    [p["verts"][k] for p in people], faces,
                                    [p["colours"] for p in people])
        depth[t], person_map[t], images[t] = frame["depth"], frame["person"], frame["rgb"]
    return depth, person_map, images


def _front_end(config, depth, human, K, T_world_cam, focal: float, rngs) -> dict:
    """The foundation model's outputs: noisy pointmaps, confidence, pairs and matches."""
    nz = config.noise
    pred_depth, frame_scale = frontend_noise.noisy_depth(
        depth, rngs["depth"], scale=nz.scale, frame_scale_jitter=nz.frame_scale_jitter,
        lowfreq_rel=nz.lowfreq_rel, pixel_rel=nz.pixel_rel, blur_sigma_px=nz.blur_sigma_px)
    pred_focal = focal * (1.0 + nz.focal_error)
    conf = frontend_noise.confidence(depth, human, far_m=nz.conf_far_m,
                                     edge_rel=nz.conf_edge_rel)
    pairs = frontend_noise.window_pairs(len(depth), int(config.matches.window))
    matches, match_conf, counts, outliers = frontend_noise.sample_matches(
        depth, human, conf, K, T_world_cam, pairs, rngs["matches"],
        grid_step=int(config.matches.grid_step), outlier_rate=config.matches.outlier_rate,
        max_matches=int(config.matches.max_per_pair))
    return dict(pred_depth=pred_depth, frame_scale=frame_scale, pred_focal=pred_focal,
                pointmaps=geometry.pointmaps_from_depth(pred_depth, pred_focal), conf=conf,
                pairs=pairs, matches=matches, match_conf=match_conf, counts=counts,
                outliers=outliers)


def _tracks(config, model, scene, people, person_map, T_world_cam, key_idx, fps: float,
            focal: float, hmr_focal: float, rngs) -> dict[str, np.ndarray]:
    """Per person and keyframe: the truth, the HMR estimate, true and DECO-like contacts."""
    num_p, num_t, num_v = len(people), len(key_idx), int(model.num_vertices)
    num_j1 = int(model.num_joints) - 1
    sole = np.asarray(body_models.indices.sole_vertices(model))
    out = dict(
        smpl_global_orient=np.zeros((num_p, num_t, 3, 3)),
        smpl_body_pose=np.zeros((num_p, num_t, num_j1, 3, 3)),
        smpl_betas=np.zeros((num_p, num_t, model.num_betas)),
        smpl_transl=np.zeros((num_p, num_t, 3)),
        smpl_valid=np.zeros((num_p, num_t), bool),
        contact=np.zeros((num_p, num_t, num_v), np.float32),
        gt_orient=np.zeros((num_p, num_t, 3, 3)),
        gt_pose=np.zeros((num_p, num_t, num_j1, 3, 3)),
        gt_betas=np.zeros((num_p, num_t, model.num_betas)),
        gt_transl=np.zeros((num_p, num_t, 3)),
        gt_contact=np.zeros((num_p, num_t, num_v), bool),
    )

    def rest_pelvis(b):
        return np.asarray(body_models.rest_joints(model, jnp.asarray(b, jnp.float32))[0],
                          np.float64)

    cc = config.contact
    for p, person in enumerate(people):
        m, verts = person["motion"], person["verts"]
        gt_contact = _true_contacts(verts, key_idx, scene, fps, cc.speed_mps, cc.height_m)
        valid = (person_map == p).sum(axis=(1, 2)) >= config.min_visible_pixels
        hmr = frontend_noise.hmr_estimate(
            m.global_orient[key_idx], m.body_pose[key_idx], m.betas,
            person["joints"][key_idx, 0], T_world_cam, rest_pelvis, rngs["hmr"],
            true_focal=focal, hmr_focal=hmr_focal, orient_deg=config.hmr.orient_deg,
            joint_deg=config.hmr.joint_deg, betas_std=config.hmr.betas_std,
            depth_bias=config.hmr.depth_bias, depth_noise=config.hmr.depth_noise,
            lateral_m=config.hmr.lateral_m)
        sole_y = verts[key_idx][:, sole, 1]
        lowest = sole[np.argsort(sole_y, axis=1)[:, :8]]
        out["smpl_global_orient"][p] = hmr["global_orient"]
        out["smpl_body_pose"][p] = hmr["body_pose"]
        out["smpl_betas"][p] = hmr["betas"]
        out["smpl_transl"][p] = hmr["transl"]
        out["smpl_valid"][p] = valid
        out["contact"][p] = frontend_noise.deco_contacts(
            gt_contact, valid, sole, lowest, rngs["deco"], drop_rate=cc.drop_rate,
            false_rate=cc.false_rate, fill_empty=cc.fill_empty)
        out["gt_orient"][p] = m.global_orient[key_idx]
        out["gt_pose"][p] = m.body_pose[key_idx]
        out["gt_betas"][p] = m.betas
        out["gt_transl"][p] = m.transl[key_idx]
        out["gt_contact"][p] = gt_contact
    return out


def _true_contacts(verts, key_idx, scene, fps: float, speed_mps: float, height_m: float):
    """bool[T, V]: slow vertices within `height_m` of the surface below them, at the keyframes."""
    num_video = len(verts)
    nxt = np.minimum(key_idx + 1, num_video - 1)
    prv = np.maximum(key_idx - 1, 0)
    speed = np.linalg.norm(verts[nxt] - verts[prv], axis=-1) * fps / (nxt - prv)[:, None]
    gt_contact = np.zeros((len(key_idx), verts.shape[1]), bool)
    low_ground = verts[key_idx, :, 1] < 1.5
    cand = (speed < speed_mps) & low_ground
    heights = scenes.height_below(scene, verts[key_idx][cand])
    # Within height_m of the surface, above or (soft tissue pressed into a seat) below it.
    gt_contact[cand] = np.abs(heights) < height_m
    return gt_contact
