"""Training targets of the CenterPoint heads, and the voxel input of the network (numpy only).

A box's centre falls in one BEV cell ``(iy, ix)``: that cell carries the regression target
and a Gaussian of radius :func:`gaussian_radius` around it is drawn on its class's heatmap
channel (element-wise max where objects overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.config import DetectorConfig
from av_pipeline.voxelize import voxelize


@dataclass(frozen=True, eq=False)
class VoxelInput:
    """Mean-of-points voxel features of one cloud.

    Attributes:
        features: ``(M, C)`` float32 mean of each voxel's stored points (the config's
            ``point_features`` columns).
        coords_zyx: ``(M, 3)`` int32 voxel indices.
        num_input_points, num_kept_points: points given and points stored in voxels.
        num_nonfinite, num_out_of_range: points dropped for NaN/inf and for lying outside the grid.
    """

    features: np.ndarray
    coords_zyx: np.ndarray
    num_input_points: int
    num_kept_points: int
    num_nonfinite: int = 0
    num_out_of_range: int = 0


def voxel_input(points: np.ndarray, config: DetectorConfig) -> VoxelInput:
    """Hard-voxelize ``points (N, C)`` float32 (the config's ``point_features`` columns, in
    the ``ego`` frame) and average each voxel's points (OpenPCDet's ``MeanVFE``)."""
    voxels = voxelize(np.ascontiguousarray(points, dtype=np.float32), config.grid)
    counts = np.maximum(voxels.num_points, 1).astype(np.float32)[:, None]
    features = (voxels.voxels.sum(axis=1) / counts).astype(np.float32)
    return VoxelInput(
        features, voxels.coords_zyx, voxels.num_input_points, voxels.num_kept_points,
        voxels.num_dropped_nonfinite, voxels.num_dropped_out_of_range,
    )  # fmt: skip


def gaussian_radius(length_cells: np.ndarray, width_cells: np.ndarray, min_overlap: float) -> np.ndarray:
    """CenterNet's Gaussian radius (in cells) for boxes of ``(K,)`` BEV extents, the
    smallest of its three cases (the ``(w, h)`` of CenterNet are the box's two BEV sides)."""
    h, w = np.asarray(length_cells, np.float64), np.asarray(width_cells, np.float64)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def _draw_gaussian(heatmap: np.ndarray, cx: int, cy: int, radius: int) -> None:
    sigma = (2 * radius + 1) / 6.0
    offsets = np.arange(-radius, radius + 1)
    gaussian = np.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2 * sigma * sigma))
    h, w = heatmap.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    patch = heatmap[cy - top : cy + bottom, cx - left : cx + right]
    g = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(patch, g, out=patch)


@dataclass(frozen=True, eq=False)
class GroupTargets:
    """Targets of one class group for one frame.

    Attributes:
        heatmap: ``(K, H, W)`` float32 in ``[0, 1]``, 1 at object centres.
        indices: ``(O,)`` int64 flat cell index ``iy * W + ix`` of each object.
        regression: ``(O, 8)`` float32 as :data:`~av_pipeline.detect.model.REGRESSION_CHANNELS`.
    """

    heatmap: np.ndarray
    indices: np.ndarray
    regression: np.ndarray


def build_targets(boxes: Cuboids, config: DetectorConfig) -> list[GroupTargets]:
    """Targets per group for ground-truth ``boxes`` in the ``ego`` frame.

    Boxes of classes the detector does not know, or whose centre is outside the grid, are
    skipped; at most ``head.max_objects`` per group are kept, nearest first.
    """
    _, height, width = config.bev_shape_zyx
    cell_x, cell_y = config.bev_cell_m
    x_min, y_min = config.grid.point_range_m[0], config.grid.point_range_m[1]
    out = []
    labels = np.asarray(boxes.labels)
    for group in config.groups:
        heatmap = np.zeros((len(group.classes), height, width), np.float32)
        keep = np.flatnonzero(np.isin(labels, group.classes))
        fx = (boxes.centers_m[keep, 0] - x_min) / cell_x
        fy = (boxes.centers_m[keep, 1] - y_min) / cell_y
        inside = (fx >= 0) & (fx < width) & (fy >= 0) & (fy < height)
        keep, fx, fy = keep[inside], fx[inside], fy[inside]
        order = np.argsort(np.hypot(boxes.centers_m[keep, 0], boxes.centers_m[keep, 1]), kind="stable")[: config.head.max_objects]
        keep, fx, fy = keep[order], fx[order], fy[order]
        ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        sizes = boxes.sizes_m[keep]
        radius = gaussian_radius(sizes[:, 0] / cell_x, sizes[:, 1] / cell_y, config.head.min_overlap)
        radius = np.maximum(config.head.min_radius_cells, radius.astype(np.int64))
        for j, k in enumerate(keep):
            _draw_gaussian(heatmap[group.classes.index(labels[k])], int(ix[j]), int(iy[j]), int(radius[j]))
        yaw = boxes.yaws_rad[keep]
        regression = np.column_stack(
            [fx - ix, fy - iy, boxes.centers_m[keep, 2], np.log(sizes), np.sin(yaw), np.cos(yaw)]
        ).astype(np.float32).reshape(-1, 8)
        out.append(GroupTargets(heatmap, iy * width + ix, regression))
    return out
