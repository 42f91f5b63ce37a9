"""Scene layouts of the synthetic world, ray casting against them, textures and heights.

A scene is a room (floor y = 0, four walls, a ceiling: every camera ray hits something, so depth
is finite everywhere) plus convex solids standing on the floor: boxes, a step or stairs, a slope,
a bench with a back rest, free-standing walls. People walk in a corridor along +z around x = 0,
z in [-2.5, 2.5]; clutter is placed away from it. World frame: metres, y up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from josh_jax import convex

SCENES = ("room", "boxes", "stairs", "slope", "bench", "walls")

# The corridor where motions happen (x half-width, z range); clutter stays outside.
_ROOM = dict(xmin=-6.0, xmax=6.0, height=3.0, zmin=-5.0, zmax=5.5)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A set of convex solids, packed for vectorised ray casting.

    Attributes:
        name: layout name (one of `SCENES`).
        solids: tuple of `convex.Solid`; solid 0 is the room.
        planes: float64[K, P, 4] every solid's planes, padded with never-binding (0, 0, 0, 1) rows.
        inside_out: bool[K] True for the room.
        albedo: float64[K, 3] base colour per solid.
        features: dict of named facts about the layout: "seat" (x, y, z of the bench seat),
            "step_z", "platform_height", "camera_side" (+1 or -1: the side of the corridor, in
            x, where cameras can see the people).
    """

    name: str
    solids: tuple
    planes: np.ndarray
    inside_out: np.ndarray
    albedo: np.ndarray
    features: dict

    def mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Triangle mesh: vertices float64[S, 3], faces int32[F, 3], per-face albedo float32[F, 3]."""
        vertices, faces, owner = convex.merge_meshes(self.solids)
        return vertices, faces, self.albedo[owner].astype(np.float32)


def _pack(name: str, solids, features) -> Scene:
    num_planes = max(len(s.planes) for s in solids)
    planes = np.zeros((len(solids), num_planes, 4))
    planes[:, :, 3] = 1.0
    for k, s in enumerate(solids):
        planes[k, : len(s.planes)] = s.planes
    return Scene(name=name, solids=tuple(solids), planes=planes,
                 inside_out=np.array([s.inside_out for s in solids]),
                 albedo=np.stack([s.albedo for s in solids]), features=dict(features))


def _colour(rng: np.random.Generator, lo=0.25, hi=0.85) -> np.ndarray:
    return rng.uniform(lo, hi, size=3)


def make_scene(name: str, rng: np.random.Generator, num_boxes: int = 4) -> Scene:
    """Builds a scene layout.

    Args:
        name: one of `SCENES`: "room" (floor and walls only), "boxes" (clutter boxes), "stairs"
            (two steps up to a platform across the corridor at z in [0.4, 3.2]), "slope" (a ramp
            rising along +z), "bench" (a bench with a back rest at z = 2, facing -z), "walls"
            (an L of free-standing partition walls behind and left of the corridor). Every layout adds `num_boxes`
            clutter boxes outside the corridor.
        rng: random generator (colours, clutter placement).
        num_boxes: clutter boxes.

    Returns:
        The packed `Scene`.
    """
    if name not in SCENES:
        raise ValueError(f"scene: expected one of {SCENES}, found {name!r}")
    solids = [convex.room(_ROOM["xmin"], _ROOM["xmax"], _ROOM["height"], _ROOM["zmin"],
                          _ROOM["zmax"], albedo=(0.72, 0.7, 0.66))]
    features = {}
    if name == "stairs":
        rise, tread = 0.12, 0.45
        colour = _colour(rng)
        for k in range(2):  # two steps, then the platform
            z0 = 0.4 + k * tread
            solids.append(convex.ground_box(0.0, 0.5 * (z0 + 3.2), (2.0, rise * (k + 1), 3.2 - z0),
                                            colour * (1.0 - 0.1 * k), kind="step"))
        features["step_z"] = np.array([0.4, 0.4 + tread])
        features["platform_height"] = 2 * rise
    elif name == "slope":
        solids.append(convex.wedge(0.0, 0.9, length=2.2, width=2.0, height=0.3,
                                   albedo=_colour(rng), kind="slope"))
        solids.append(convex.ground_box(0.0, 2.5, (2.0, 0.3, 0.8), _colour(rng), kind="platform"))
    elif name == "bench":
        colour = _colour(rng, 0.3, 0.6)
        seat_h, seat_z = 0.45, 2.0
        solids.append(convex.ground_box(0.0, seat_z, (1.6, 0.06, 0.45), colour, kind="seat",
                                        base=seat_h - 0.06))
        for x in (-0.7, 0.7):
            solids.append(convex.ground_box(x, seat_z, (0.08, seat_h - 0.06, 0.4), 0.7 * colour,
                                            kind="seat_leg"))
        solids.append(convex.ground_box(0.0, seat_z + 0.2, (1.6, 0.5, 0.05), colour,
                                        kind="seat_back", base=seat_h))
        features["seat"] = np.array([0.0, seat_h, seat_z])
    elif name == "walls":
        # An L of partition walls behind and left of the corridor; cameras stay on the right.
        colour = _colour(rng)
        solids.append(convex.ground_box(-0.3, 3.4, (4.4, 2.0, 0.12), colour, kind="wall"))
        solids.append(convex.ground_box(-2.5, 1.0, (0.12, 2.0, 4.8), 0.8 * colour, kind="wall"))
        features["camera_side"] = 1.0
    # Clutter boxes near the room's corners, out of the corridor and the cameras' paths.
    for _ in range(num_boxes):
        side = rng.choice([-1.0, 1.0])
        x = side * rng.uniform(4.6, 5.4)
        z = rng.uniform(-4.0, 4.5)
        size = (rng.uniform(0.4, 0.8), rng.uniform(0.3, 1.4), rng.uniform(0.4, 0.8))
        solids.append(convex.ground_box(x, z, size, _colour(rng), kind="box",
                                        yaw=rng.uniform(-0.6, 0.6)))
    return _pack(name, solids, features)


def _intersect(planes: np.ndarray, inside_out: bool, origins: np.ndarray,
               directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter of the hit with one convex solid, and the index of the plane hit.

    Args:
        planes: float64[P, 4] (n, d), inside where n . x <= d.
        inside_out: the room (rays start inside and hit its nearest inner face).
        origins: float64[N, 3] or [1, 3].
        directions: float64[N, 3].

    Returns:
        t float64[N] (inf: miss), plane int[N].
    """
    # Plane-major (P, N) arrays: the reductions over the few planes run over long rows.
    normals, offsets = planes[:, :3], planes[:, 3]
    denom = normals @ directions.T
    num = offsets[:, None] - normals @ origins.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / denom
    t_exit = np.where(denom > 0.0, t, np.inf)
    t_ex = t_exit.min(axis=0)
    if inside_out:
        return t_ex, np.argmin(t_exit, axis=0)
    # A plane parallel to the ray either never binds (ray inside its half-space) or makes the
    # ray miss the solid (outside): the latter is an entry at +inf.
    parallel_out = (denom == 0.0) & (num < 0.0)
    t_enter = np.where(denom < 0.0, t, np.where(parallel_out, np.inf, -np.inf))
    t_in = t_enter.max(axis=0)
    # Hit at entry; a ray starting inside the solid hits it at t = 0.
    hit = (t_in <= t_ex) & (t_ex > 0.0)
    return np.where(hit, np.maximum(t_in, 0.0), np.inf), np.argmax(t_enter, axis=0)


def cast_rays(scene: Scene, origins: np.ndarray, directions: np.ndarray,
              candidates=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of rays with the scene (exact: plane clipping of convex solids).

    Args:
        scene: the scene.
        origins: float64[N, 3] ray origins (inside the room), or [1, 3] shared by all rays.
        directions: float64[N, 3] ray directions (any length; `t` is in these units).
        candidates: optional list, one entry per solid: int array of the only rays that can hit
            it (e.g. the pixels of its projected bounding box), or None for all rays.

    Returns:
        t float64[N] (hit = origin + t * direction; inf if nothing is hit), solid int32[N]
        (-1 if nothing), normal float64[N, 3] (unit, facing the ray's origin side).
    """
    directions = np.asarray(directions, np.float64).reshape(-1, 3)
    origins = np.asarray(origins, np.float64).reshape(-1, 3)
    shared = len(origins) == 1
    n = len(directions)
    t_best = np.full(n, np.inf)
    solid_best = np.full(n, -1, np.int32)
    plane_best = np.zeros(n, np.int64)
    for k, solid in enumerate(scene.solids):
        idx = None if candidates is None else candidates[k]
        if idx is None:
            t, plane = _intersect(solid.planes, solid.inside_out, origins, directions)
            closer = t < t_best
            t_best[closer], solid_best[closer], plane_best[closer] = t[closer], k, plane[closer]
        elif len(idx):
            o = origins if shared else origins[idx]
            t, plane = _intersect(solid.planes, solid.inside_out, o, directions[idx])
            closer = t < t_best[idx]
            sel = idx[closer]
            t_best[sel], solid_best[sel], plane_best[sel] = t[closer], k, plane[closer]
    found = solid_best >= 0
    safe_solid = np.maximum(solid_best, 0)
    normal = scene.planes[safe_solid, plane_best, :3]
    normal = normal * np.where(scene.inside_out[safe_solid], -1.0, 1.0)[:, None]
    return t_best, solid_best, np.where(found[:, None], normal, 0.0)


def height_below(scene: Scene, points: np.ndarray, probe: float = 0.05) -> np.ndarray:
    """Height of points above the first scene surface below them.

    A ray is cast straight down from `probe` metres above each point, so a point slightly inside a
    surface (a foot sunk 1 mm into the floor) gets a small negative height, and a point under a
    bench seat measures to the floor, not to the seat.

    Args:
        scene: the scene.
        points: float64[N, 3] world points.
        probe: start height above the point.

    Returns:
        float64[N] height (negative when inside a solid up to `probe`).
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    origins = points + np.array([0.0, probe, 0.0])
    t, _, _ = cast_rays(scene, origins, np.broadcast_to([0.0, -1.0, 0.0], points.shape))
    return t - probe


def ground_height(scene: Scene, xz: np.ndarray, from_height: float = 2.0) -> np.ndarray:
    """Height of the walkable surface at horizontal positions (cast down from `from_height`).

    Args:
        scene: the scene.
        xz: float64[N, 2] positions.
        from_height: height the probe ray starts at (below the ceiling, above every solid).

    Returns:
        float64[N] surface height y.
    """
    xz = np.asarray(xz, np.float64).reshape(-1, 2)
    origins = np.stack([xz[:, 0], np.full(len(xz), from_height), xz[:, 1]], axis=1)
    t, _, _ = cast_rays(scene, origins, np.broadcast_to([0.0, -1.0, 0.0], origins.shape))
    return from_height - t


def albedo_at(scene: Scene, solid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Textured albedo at surface points (procedural, so matching and RGB have texture).

    The floor gets a 0.5 m checkerboard; every surface gets a few sinusoidal stripes whose
    frequencies depend on its solid, so each surface looks different.

    Args:
        scene: the scene.
        solid: int32[N] solid of each point (-1: none, black).
        points: float64[N, 3] world points.

    Returns:
        float64[N, 3] colour in [0, 1].
    """
    solid = np.asarray(solid)
    base = scene.albedo[np.maximum(solid, 0)]
    k = np.maximum(solid, 0).astype(np.float64)[:, None]
    freq = np.array([[3.1, 0.0, 1.7], [0.0, 4.3, 2.9], [5.3, 2.2, 0.0]])
    waves = np.sin(points @ freq.T * (1.0 + 0.37 * k) + 1.3 * k)
    pattern = 0.5 + 0.5 * waves.mean(axis=1)
    checker = (np.floor(points[:, 0] / 0.5) + np.floor(points[:, 2] / 0.5)) % 2
    is_floor = (solid == 0) & (points[:, 1] < 1e-6)
    shade = np.where(is_floor, 0.55 + 0.3 * checker + 0.15 * pattern, 0.65 + 0.35 * pattern)
    return np.where(solid[:, None] >= 0, base * shade[:, None], 0.0)
