"""LiDAR clusters no box explains: what a frame shows above the ground outside every shadow and
onboard cuboid.

A track the onboard stack drops for a few frames while the object stays in view leaves its
points behind: they are above the ground, inside no box, and where the track's own boxes
before and after put it. :func:`unexplained_clusters` keeps such points per frame as a few
numbers per cluster (no points travel further), so the per-log triggers can ask "was the
object still there?" without the sweep.

Method (all in ``ego``, metres):

1. **Ground.** The lowest point in each ``ground_cell_m`` cell, then the lowest of those
   within ``ground_window_m`` (a car hides the ground under itself, not around it). This
   follows slopes over a few metres and needs no plane fit.
2. **Above the ground** by ``min_height_m`` to ``max_height_m``, from ``min_range_m`` (the
   ego's own body returns) to ``max_range_m``.
3. **Unexplained:** outside every given box grown by ``box_margin_m`` (edge returns of a
   boxed object do not form clusters of their own).
4. **Clusters:** connected cells of a ``cell_m`` bird's-eye grid (8-neighbourhood), kept when
   they hold ``min_points`` and their footprint is at most ``max_extent_m`` (walls and
   hedges are longer: they are structure, not objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError


@dataclass(frozen=True)
class PointClusters:
    """``K`` clusters of LiDAR points in ``ego`` that no box explains.

    Attributes:
        centers_m: ``(K, 3)`` float32 centre of each cluster's axis-aligned bounds (metres, ``ego``).
        extents_m: ``(K, 3)`` float32 axis-aligned size in ``ego`` (x, y, z; metres): a cluster
            spans ``centers_m +- extents_m / 2``.
        num_points: ``(K,)`` int32 points in each cluster.
    """

    centers_m: np.ndarray
    extents_m: np.ndarray
    num_points: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.num_points)
        if self.centers_m.shape != (k, 3) or self.extents_m.shape != (k, 3) or self.num_points.shape != (k,):
            raise ShapeError(
                f"PointClusters: centers_m {self.centers_m.shape}, extents_m {self.extents_m.shape} and num_points "
                f"{self.num_points.shape} must be (K, 3), (K, 3) and (K,)"
            )

    def __len__(self) -> int:
        return len(self.num_points)

    @classmethod
    def empty(cls) -> PointClusters:
        """No clusters."""
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, np.int32))

    def in_footprint(self, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, margin_m: float) -> np.ndarray:
        """``(K,)`` bool: clusters whose centre lies in a box's bird's-eye footprint grown by ``margin_m``
        (see :func:`in_footprint`). A long vehicle seen from one end leaves its points at that
        end, metres from the box centre; the footprint, not the centre distance, says whether
        they are the object's."""
        return in_footprint(self.centers_m, center_m, size_m, yaw_rad, margin_m)

    def within_box(self, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, margin_m: float, z_margin_m: float = 0.3) -> np.ndarray:
        """``(K,)`` bool: clusters that could be a box's object: centred in its footprint grown by
        ``margin_m`` and no taller than its top plus ``z_margin_m``. A wall, pole or sign that hides
        an object sits in front of it but rises above it.

        Args:
            center_m: ``(3,)`` box centre in ``ego`` (metres).
            size_m: ``(3,)`` box length, width, height (metres).
            yaw_rad: box heading in ``ego``.
            margin_m: metres added on every side in bird's-eye view.
            z_margin_m: metres allowed above the box top.
        """
        top = self.centers_m[:, 2] + self.extents_m[:, 2] / 2
        return self.in_footprint(center_m, size_m, yaw_rad, margin_m) & (top <= center_m[2] + size_m[2] / 2 + z_margin_m)


def in_footprint(points_m: np.ndarray, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, margin_m: float) -> np.ndarray:
    """``(K,)`` bool: bird's-eye positions inside one box footprint grown by ``margin_m`` on every side.

    Args:
        points_m: ``(K, 2+)`` positions (metres; same frame as the box).
        center_m: ``(2+,)`` box centre.
        size_m: ``(2+,)`` box length (along ``yaw_rad``) and width.
        yaw_rad: box heading.
        margin_m: metres added on every side.
    """
    d = np.asarray(points_m, dtype=np.float64)[:, :2]
    d = d - np.asarray(center_m, dtype=np.float64)[:2]
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    along, across = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    return (np.abs(along) <= size_m[0] / 2 + margin_m) & (np.abs(across) <= size_m[1] / 2 + margin_m)


@dataclass(frozen=True)
class ClusterConfig:
    """Parameters of :func:`unexplained_clusters` (metres unless named otherwise)."""

    min_range_m: float = 3.0
    max_range_m: float = 70.0
    ground_cell_m: float = 1.0
    ground_window_m: float = 5.0
    min_height_m: float = 0.3
    max_height_m: float = 4.5
    box_margin_m: float = 0.3
    cell_m: float = 0.4
    min_points: int = 3
    max_extent_m: float = 20.0


def height_above_ground(xyz: np.ndarray, cell_m: float = 1.0, window_m: float = 5.0) -> np.ndarray:
    """``(N,)`` metres of each point above the local ground: the lowest point in its ``cell_m``
    bird's-eye cell, then the lowest of those within ``window_m`` (step 1 of the module doc).

    Args:
        xyz: ``(N, 3)`` finite points in ``ego`` (metres).
        cell_m, window_m: see :class:`ClusterConfig` (``ground_cell_m``, ``ground_window_m``).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if not len(xyz):
        return np.zeros(0)
    lo = xyz[:, :2].min(axis=0)
    gcell = np.floor((xyz[:, :2] - lo) / cell_m).astype(np.int64)
    lowest = np.full(tuple(gcell.max(axis=0) + 1), np.inf)
    np.minimum.at(lowest, (gcell[:, 0], gcell[:, 1]), xyz[:, 2])
    window = max(1, int(round(window_m / cell_m)))
    ground = ndimage.minimum_filter(lowest, size=window, mode="constant", cval=np.inf)
    return xyz[:, 2] - ground[gcell[:, 0], gcell[:, 1]]


def unexplained_clusters(points_ego: np.ndarray, boxes: Sequence[Cuboids], config: ClusterConfig | None = None) -> PointClusters:
    """Clusters of above-ground LiDAR points outside every box (see the module doc).

    Args:
        points_ego: ``(N, 3+)`` the frame's points in ``ego`` (x forward, y left, z up; extra columns ignored).
        boxes: box sets in ``ego`` that explain points (shadow and onboard cuboids).
        config: thresholds; defaults when ``None``.

    Returns:
        The frame's :class:`PointClusters`, largest first.

    Raises:
        ShapeError: points not ``(N, 3+)`` or boxes not in ``ego``.
    """
    config = config or ClusterConfig()
    points = np.asarray(points_ego)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ShapeError(f"unexplained_clusters: points_ego must be (N, 3+), got {points.shape}")
    for b in boxes:
        if b.frame != "ego":
            raise ShapeError(f"unexplained_clusters: boxes must be in 'ego', got '{b.frame}'")
    xyz = points[:, :3].astype(np.float64)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    near = (np.abs(xyz[:, 0]) <= config.max_range_m + config.ground_window_m) & (np.abs(xyz[:, 1]) <= config.max_range_m + config.ground_window_m)
    xyz = xyz[near]
    if not len(xyz):
        return PointClusters.empty()

    # 1. ground: lowest point per cell, then lowest within the window
    height = height_above_ground(xyz, config.ground_cell_m, config.ground_window_m)

    # 2-3. above the ground, in range, in no box
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    keep = (height >= config.min_height_m) & (height <= config.max_height_m) & (r >= config.min_range_m) & (r <= config.max_range_m)
    xyz = xyz[keep]
    for b in boxes:
        if len(b) and len(xyz):
            xyz = xyz[b.points_in_boxes(xyz, margin_m=config.box_margin_m) < 0]
    if not len(xyz):
        return PointClusters.empty()

    # 4. connected cells in bird's-eye view
    lo = xyz[:, :2].min(axis=0)
    cell = np.floor((xyz[:, :2] - lo) / config.cell_m).astype(np.int64)
    occupied = np.zeros(tuple(cell.max(axis=0) + 1), dtype=bool)
    occupied[cell[:, 0], cell[:, 1]] = True
    labels, count = ndimage.label(occupied, structure=np.ones((3, 3), dtype=bool))
    point_label = labels[cell[:, 0], cell[:, 1]] - 1  # 0-based cluster per point
    n = np.bincount(point_label, minlength=count)
    mins = np.full((count, 3), np.inf)
    maxs = np.full((count, 3), -np.inf)
    for c in range(3):
        np.minimum.at(mins[:, c], point_label, xyz[:, c])
        np.maximum.at(maxs[:, c], point_label, xyz[:, c])
    extents = maxs - mins
    ok = (n >= config.min_points) & (np.maximum(extents[:, 0], extents[:, 1]) <= config.max_extent_m)
    order = np.flatnonzero(ok)[np.argsort(-n[ok], kind="stable")]
    return PointClusters(
        ((mins[order] + maxs[order]) / 2).astype(np.float32), extents[order].astype(np.float32), n[order].astype(np.int32)
    )


__all__ = ["ClusterConfig", "PointClusters", "height_above_ground", "in_footprint", "unexplained_clusters"]
