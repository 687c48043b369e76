"""Sparse depth images: one LiDAR depth per pixel, the nearest point winning (z-buffer).

A point lands in the pixel that contains its projection, ``(row, col) = (floor(v + 0.5),
floor(u + 0.5))``. When several points land in one pixel the one with the smallest camera
``z`` wins; of equally near points (equal float32 depths) the one with the lowest index.

A LiDAR sweep fills about 1% of a camera's pixels (17k of 1.44M for a 120k-point sweep and
a 1600x900 camera), so :class:`DepthImage` keeps only the occupied pixels; the dense
``(H, W)`` images are built on request (:meth:`DepthImage.dense_depth`,
:meth:`DepthImage.dense_point_index`). The z-buffer is a numba pass over the points with an
open-addressing hash table keyed by pixel, sized to the number of valid points, so its
memory does not grow with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from av_pipeline.errors import ShapeError
from av_pipeline.fusion.projection import PointProjection
from calibration.camera import VISIBLE

__all__ = ["DepthImage", "depth_image"]

_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (Fibonacci hashing)


@dataclass(frozen=True, eq=False)
class DepthImage:
    """A z-buffered sparse depth image of one camera: one entry per occupied pixel (read-only arrays).

    Entries are in increasing ``point_index`` order.

    Attributes:
        camera: camera name.
        width_px, height_px: image size.
        rows, cols: ``(M,)`` int32 pixel of each entry.
        depth_m: ``(M,)`` float32 camera ``z`` of the nearest point in that pixel.
        point_index: ``(M,)`` int32 index (into the projected points) of that point.
    """

    camera: str
    width_px: int
    height_px: int
    rows: np.ndarray
    cols: np.ndarray
    depth_m: np.ndarray
    point_index: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.point_index)
        for name in ("rows", "cols", "depth_m", "point_index"):
            value = getattr(self, name)
            if value.shape != (count,):
                raise ShapeError(f"depth image '{self.camera}' {name}: expected ({count},), got {value.shape}")
            value.setflags(write=False)

    def __len__(self) -> int:
        return len(self.point_index)

    def dense_depth(self, empty: float = np.nan) -> np.ndarray:
        """``(H, W)`` float32 depth image, ``empty`` (NaN by default; KITTI depth maps use 0) where no point landed."""
        out = np.full((self.height_px, self.width_px), empty, dtype=np.float32)
        out[self.rows, self.cols] = self.depth_m
        return out

    def dense_point_index(self) -> np.ndarray:
        """``(H, W)`` int32 index of the winning point per pixel, -1 where no point landed."""
        out = np.full((self.height_px, self.width_px), -1, dtype=np.int32)
        out[self.rows, self.cols] = self.point_index
        return out


def depth_image(projection: PointProjection) -> DepthImage:
    """Z-buffer the valid points of a projection (module docstring).

    Args:
        projection: the points projected into one camera; only ``VISIBLE`` points count.

    Returns:
        :class:`DepthImage` with one entry per pixel that a point landed in.
    """
    model = projection.model
    rows, cols, depth_m, point_index = _zbuffer_kernel(
        projection.uv_px, projection.depth_m, projection.status, model.width_px, model.height_px
    )
    return DepthImage(projection.camera, model.width_px, model.height_px, rows, cols, depth_m, point_index)


@numba.njit(cache=True)
def _zbuffer_kernel(uv_px, depth, status, width, height):  # pragma: no cover - numba
    """Sequential pass: the lowest index wins ties because only a strictly nearer point replaces."""
    count = status.shape[0]
    visible = 0
    for i in range(count):
        if status[i] == VISIBLE:
            visible += 1
    bits = 4
    while (1 << bits) < 2 * visible:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    keys = np.full(1 << bits, -1, dtype=np.int64)
    winners = np.empty(1 << bits, dtype=np.int32)
    for i in range(count):
        if status[i] != VISIBLE:
            continue
        col = min(max(int(np.floor(uv_px[i, 0] + 0.5)), 0), width - 1)
        row = min(max(int(np.floor(uv_px[i, 1] + 0.5)), 0), height - 1)
        key = np.int64(row) * width + col
        slot = np.int64((np.uint64(key) * _HASH_MULTIPLIER) >> shift)
        while True:
            if keys[slot] == -1:
                keys[slot] = key
                winners[slot] = i
                break
            if keys[slot] == key:
                if depth[i] < depth[winners[slot]]:
                    winners[slot] = i
                break
            slot = (slot + 1) & mask
    won = np.zeros(count, dtype=np.bool_)
    occupied = 0
    for slot in range(1 << bits):
        if keys[slot] != -1:
            won[winners[slot]] = True
            occupied += 1
    rows = np.empty(occupied, dtype=np.int32)
    cols = np.empty(occupied, dtype=np.int32)
    depth_m = np.empty(occupied, dtype=np.float32)
    point_index = np.empty(occupied, dtype=np.int32)
    j = 0
    for i in range(count):
        if won[i]:
            col = min(max(int(np.floor(uv_px[i, 0] + 0.5)), 0), width - 1)
            row = min(max(int(np.floor(uv_px[i, 1] + 0.5)), 0), height - 1)
            rows[j] = row
            cols[j] = col
            depth_m[j] = depth[i]
            point_index[j] = i
            j += 1
    return rows, cols, depth_m, point_index
