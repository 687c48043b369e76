"""Pictures of one frame: a bird's-eye view with boxes, and camera images with LiDAR depth
and projected cuboids. Used by the demo and, later, by mining reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.fusion import DepthImage
from av_pipeline.fusion.cuboids import ProjectedCuboids


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _box_outline_xy(boxes: Cuboids) -> np.ndarray:
    """``(K, 5, 2)`` closed bottom outlines of the boxes in their frame's xy plane."""
    corners = boxes.corners_m()[:, :4, :2]
    return np.concatenate([corners, corners[:, :1]], axis=1)


def save_bev(
    path: Path,
    points_ego: np.ndarray,
    colours: np.ndarray | None,
    boxes: dict[str, tuple[Cuboids, str]],
    *,
    extent_m: float = 50.0,
    title: str = "",
) -> None:
    """Bird's-eye view of ``(N, 3)`` ego-frame points (optionally ``(N, 3)`` uint8 colours,
    black meaning none) with box sets ``name -> (cuboids in ego, matplotlib colour)``.

    Forward (+x) points up, left (+y) points left.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    ax.set_facecolor("black")
    near = (np.abs(points_ego[:, 0]) < extent_m) & (np.abs(points_ego[:, 1]) < extent_m)
    if colours is None:
        colour = np.full((near.sum(), 3), 0.7)
    else:
        colour = colours[near] / 255.0
        unpainted = ~colours[near].any(axis=1)
        colour[unpainted] = (0.25, 0.3, 0.55)
    ax.scatter(-points_ego[near, 1], points_ego[near, 0], s=0.3, c=colour, linewidths=0)
    for name, (cuboids, edge_colour) in boxes.items():
        for k, outline in enumerate(_box_outline_xy(cuboids)):
            ax.plot(-outline[:, 1], outline[:, 0], color=edge_colour, lw=1.0, label=name if k == 0 else None)
    ax.plot([0], [0], marker="^", color="white", ms=8)
    ax.set_xlim(-extent_m, extent_m)
    ax.set_ylim(-extent_m, extent_m)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right)")
    ax.set_ylabel("x (m, forward)")
    if boxes:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_camera_overlay(
    path: Path,
    image: np.ndarray,
    depth: DepthImage | None,
    projected: ProjectedCuboids | None,
    labels: np.ndarray | None = None,
    *,
    max_depth_m: float = 60.0,
    title: str = "",
) -> None:
    """The image with z-buffered LiDAR depth (turbo colours, near = red... far = blue) and
    the clipped 2D boxes of projected cuboids (with ``labels``) drawn over it."""
    plt = _pyplot()
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / 100, height / 100 + 0.3), dpi=100)
    ax = fig.add_axes([0, 0, 1, height / (height + 30)])
    ax.imshow(image)
    if depth is not None and len(depth.depth_m):
        ax.scatter(depth.cols, depth.rows, s=0.6, c=np.clip(depth.depth_m / max_depth_m, 0, 1), cmap="turbo_r", vmin=0, vmax=1, linewidths=0)
    if projected is not None:
        for k in np.flatnonzero(projected.visible):
            x0, y0, x1, y1 = projected.box2d_px[k]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="orange", lw=1.0))
            if labels is not None:
                ax.text(x0, y0 - 2, str(labels[k]), color="orange", fontsize=6)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    fig.text(0.01, 0.995, title, fontsize=7, va="top")
    fig.savefig(path)
    plt.close(fig)
