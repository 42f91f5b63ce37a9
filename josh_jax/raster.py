"""Z-buffer rasterisation of triangle meshes at pixel centres (numpy, vectorised).

Shared by the synthetic world's renderer (`josh_jax.synthetic.render`) and the video front end's
human masks (`josh_jax.video.masks`). Pixel (u, v) looks along `((u - cx) / f, (v - cy) / f, 1)`
in OpenCV camera coordinates; depth is the camera z.
"""

import numpy as np


def rasterize(verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, height: int, width: int,
              near: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of a triangle mesh at pixel centres.

    Every triangle's candidate pixels (its bounding box) are enumerated at once; barycentric
    tests keep the covered ones; perspective-correct depth (1/z interpolated linearly on screen);
    the nearest surface per pixel wins. Triangles with a vertex closer than `near` are dropped.

    Args:
        verts_cam: float64[V, 3] camera-frame vertices.
        faces: int[F, 3] triangles.
        K: float64[3, 3] intrinsics.
        height, width: image size.
        near: near-plane depth.

    Returns:
        depth float64[H, W] (inf where empty), face int32[H, W] (-1 where empty).
    """
    depth = np.full(height * width, np.inf)
    face_id = np.full(height * width, -1, np.int32)
    z = verts_cam[:, 2]
    zs = np.where(z > near, z, 1.0)
    uv = np.stack([K[0, 0] * verts_cam[:, 0] / zs + K[0, 2],
                   K[1, 1] * verts_cam[:, 1] / zs + K[1, 2]], -1)
    tri_uv = uv[faces]  # (F, 3, 2)
    tri_z = z[faces]
    lo = np.ceil(tri_uv.min(axis=1)).astype(np.int64)
    hi = np.floor(tri_uv.max(axis=1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    ok = np.all(tri_z > near, axis=1) & np.all(hi >= lo, axis=1)
    idx = np.nonzero(ok)[0]
    if len(idx) == 0:
        return depth.reshape(height, width), face_id.reshape(height, width)
    box_w = hi[idx, 0] - lo[idx, 0] + 1
    counts = box_w * (hi[idx, 1] - lo[idx, 1] + 1)
    owner = np.repeat(np.arange(len(idx)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = lo[idx, 0][owner] + local % box_w[owner]
    py = lo[idx, 1][owner] + local // box_w[owner]
    f = idx[owner]
    a, b, c = tri_uv[f, 0], tri_uv[f, 1], tri_uv[f, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    safe_area = np.where(area == 0.0, 1.0, area)

    def edge(p0, p1):
        return ((p1[:, 0] - p0[:, 0]) * (py - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (px - p0[:, 0]))

    w0 = edge(b, c) / safe_area
    w1 = edge(c, a) / safe_area
    w2 = edge(a, b) / safe_area
    inside = (area != 0.0) & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    w0, w1, w2, px, py, f = w0[inside], w1[inside], w2[inside], px[inside], py[inside], f[inside]
    inv_z = w0 / tri_z[f, 0] + w1 / tri_z[f, 1] + w2 / tri_z[f, 2]
    pz = 1.0 / inv_z
    pix = py * width + px
    order = np.lexsort((pz, pix))
    first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
    depth[pix[first]] = pz[first]
    face_id[pix[first]] = f[first]
    return depth.reshape(height, width), face_id.reshape(height, width)
