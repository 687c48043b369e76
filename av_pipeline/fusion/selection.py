"""Selecting LiDAR points by what they project to: the frustum of a 2D box."""

from __future__ import annotations

import math

import numpy as np

from av_pipeline.errors import ConfigError
from av_pipeline.fusion.projection import PointProjection
from calibration.checks import check_array

__all__ = ["points_in_box_frustum"]


def points_in_box_frustum(
    projection: PointProjection,
    boxes_px: np.ndarray,
    *,
    min_depth_m: float = 0.0,
    max_depth_m: float = math.inf,
) -> np.ndarray:
    """Which points lie inside the viewing frustum of each 2D box.

    A point is inside when its projection is ``VISIBLE``, its pixel coordinates satisfy
    ``x_min <= u <= x_max`` and ``y_min <= v <= y_max`` (the same continuous coordinates as
    :attr:`PointProjection.uv_px`: pixel ``(col, row)`` is centred on ``(col, row)``), and
    ``min_depth_m <= depth <= max_depth_m``.

    Args:
        projection: the sweep projected into the camera the boxes belong to.
        boxes_px: ``(K, 4)`` (or one ``(4,)``) boxes ``x_min, y_min, x_max, y_max`` in pixels,
            e.g. :attr:`CameraBoxes.boxes_px <av_pipeline.records.CameraBoxes.boxes_px>` or
            :attr:`ProjectedCuboids.box2d_px <av_pipeline.fusion.cuboids.ProjectedCuboids.box2d_px>`.
        min_depth_m, max_depth_m: camera-``z`` limits of the frustum.

    Returns:
        ``(K, N)`` bool (``(N,)`` for a single ``(4,)`` box).

    Raises:
        ShapeError: ``boxes_px`` not ``(K, 4)`` / ``(4,)`` finite.
        ConfigError: ``min_depth_m > max_depth_m``.
    """
    single = np.ndim(boxes_px) == 1
    boxes = check_array(np.atleast_2d(boxes_px) if single else boxes_px, "boxes_px", (None, 4), shape_text="(K, 4) or (4,)")
    if not min_depth_m <= max_depth_m:
        raise ConfigError(f"depth range: expected min_depth_m <= max_depth_m, got {min_depth_m} > {max_depth_m}")
    visible = projection.visible_indices
    u = projection.uv_px[visible, 0]
    v = projection.uv_px[visible, 1]
    depth = projection.depth_m[visible]
    in_depth = (depth >= min_depth_m) & (depth <= max_depth_m)
    inside = (
        (u >= boxes[:, 0:1]) & (u <= boxes[:, 2:3]) & (v >= boxes[:, 1:2]) & (v <= boxes[:, 3:4]) & in_depth
    )  # (K, M)
    out = np.zeros((len(boxes), len(projection)), dtype=bool)
    out[:, visible] = inside
    return out[0] if single else out
