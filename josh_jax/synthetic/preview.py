"""Contact sheet of a clip: a few frames (RGB, pointmap depth, human mask and confidence) and a
top view of the scene with the camera and human trajectories."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from josh_jax.io.atomic import atomic_write  # noqa: E402


def contact_sheet(clip, gt, path: str, *, num_frames: int = 4, title: str = "",
                  dpi: int = 72) -> None:
    """Writes a PNG contact sheet of `clip` (and its ground truth, if any) to `path`.

    Args:
        clip: `josh_jax.clip.Clip`.
        gt: `josh_jax.clip.GroundTruth` or None (no top view then).
        path: output `.png` (written to a temporary name, then renamed).
        num_frames: frames shown (evenly spaced).
        title: figure title.
        dpi: resolution.
    """
    num_t = clip.num_frames
    show = np.unique(np.linspace(0, num_t - 1, num_frames).round().astype(int))
    height, width = clip.image_size
    cols = len(show) + 1
    fig_w = 2.6 * (cols + 0.6)
    fig_h = max(3 * 2.6 * height / width + 0.5, 3.0)
    fig, axes = plt.subplots(3, cols, figsize=(fig_w, fig_h), squeeze=False,
                             gridspec_kw=dict(wspace=0.03, hspace=0.08,
                                              width_ratios=[1.0] * (cols - 1) + [1.6]))
    z = clip.pointmaps[..., 2]
    z_lo, z_hi = np.percentile(z, [1, 99])
    for c, t in enumerate(show):
        rgb = clip.images[t] if clip.images is not None else np.zeros((height, width, 3), np.uint8)
        axes[0, c].imshow(rgb)
        axes[0, c].set_title(f"frame {int(clip.frame_index[t])}", fontsize=8)
        axes[1, c].imshow(z[t], cmap="turbo", vmin=z_lo, vmax=z_hi)
        overlay = np.log(clip.confidence[t])
        axes[2, c].imshow(overlay, cmap="gray", vmin=0.0, vmax=np.log(10.0))
        mask = np.ma.masked_where(~clip.human_mask[t], np.ones((height, width)))
        axes[2, c].imshow(mask, cmap="autumn", alpha=0.6, vmin=0, vmax=1)
    axes[1, 0].set_ylabel("pointmap z", fontsize=8)
    axes[2, 0].set_ylabel("conf. + mask", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(3):
        axes[r, -1].axis("off")
    if gt is not None and gt.gt_T_world_cam_all is not None:
        # Over the (hidden) last column, inset so the axis labels do not touch the frames.
        lo, hi = axes[2, -1].get_position(), axes[0, -1].get_position()
        pad = 0.22 * lo.width
        top = fig.add_axes([lo.x0 + pad, lo.y0, lo.width - pad, hi.y1 - lo.y0])
        _top_view(top, clip, gt)
    if title:
        fig.suptitle(title, fontsize=9)
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


def _top_view(ax, clip, gt) -> None:
    """Scene footprint (solids only, not the room), cameras and pelvis paths on the x-z plane."""
    verts, faces = gt.gt_scene_vertices, gt.gt_scene_faces
    if verts is not None and faces is not None:
        tri = verts[faces]
        # The room's faces lie on the mesh's bounding box: draw only what stands inside it.
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        on_box = np.any(np.all(np.isclose(tri, lo), axis=1) | np.all(np.isclose(tri, hi), axis=1),
                        axis=1)
        for t in tri[~on_box]:
            ax.fill(t[:, 0], t[:, 2], color="0.75", lw=0)
    cams = gt.gt_T_world_cam_all[:, :3, 3]
    ax.plot(cams[:, 0], cams[:, 2], "-", color="tab:blue", lw=1, label="camera")
    for T in gt.gt_T_world_cam:
        c, fwd = T[:3, 3], T[:3, 2]
        ax.arrow(c[0], c[2], 0.35 * fwd[0], 0.35 * fwd[2], head_width=0.07, color="tab:blue",
                 lw=0.5)
    if gt.gt_joints_world_all is not None:
        for p, joints in enumerate(gt.gt_joints_world_all):
            ax.plot(joints[:, 0, 0], joints[:, 0, 2], "-", lw=1.5, color=f"C{p + 1}",
                    label=f"person {p}")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)", fontsize=7)
    ax.set_ylabel("z (m)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="best")
    ax.set_title("top view", fontsize=8)
