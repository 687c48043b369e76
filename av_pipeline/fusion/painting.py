"""Point painting: each LiDAR point takes the colour of the image pixel it projects to.

A point is painted by a camera where its projection is ``VISIBLE``; the colour is that of
the pixel containing the projection, ``image[floor(v + 0.5), floor(u + 0.5)]``. Where the
fields of view overlap, the camera that sees the point nearest its principal point (smallest
``((u - cx) / fx)^2 + ((v - cy) / fy)^2``) paints it: the image centre is the least
distorted and least vignetted part. Points no camera sees keep ``camera_index = -1`` and
colour 0.

Painting does not test occlusion: a point that the LiDAR sees but the camera does not
(hidden behind a nearer object from the camera's slightly different viewpoint) takes the
occluder's colour. :func:`~av_pipeline.fusion.depth.depth_image` tells which point is
nearest per pixel when that matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numba
import numpy as np

from av_pipeline.errors import ConfigError, ShapeError
from av_pipeline.fusion.projection import PointProjection
from calibration.camera import VISIBLE

__all__ = ["NOT_PAINTED", "PaintedPoints", "paint_points"]

#: ``camera_index`` of a point that no camera painted.
NOT_PAINTED = -1


@dataclass(frozen=True, eq=False)
class PaintedPoints:
    """Colours of ``N`` LiDAR points (read-only arrays).

    Attributes:
        camera_names: the cameras that painted, in the order ``camera_index`` counts them.
        rgb: ``(N, 3)`` uint8 colour per point; 0 for points no camera saw.
        camera_index: ``(N,)`` int16 index into ``camera_names`` of the camera that painted
            each point, :data:`NOT_PAINTED` (-1) for points no camera saw.
    """

    camera_names: tuple[str, ...]
    rgb: np.ndarray
    camera_index: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.camera_index)
        if self.rgb.shape != (count, 3):
            raise ShapeError(f"painted rgb: expected ({count}, 3), got {self.rgb.shape}")
        self.rgb.setflags(write=False)
        self.camera_index.setflags(write=False)

    def __len__(self) -> int:
        return len(self.camera_index)

    @property
    def painted(self) -> np.ndarray:
        """``(N,)`` bool: some camera saw the point."""
        return self.camera_index != NOT_PAINTED

    def counts(self) -> dict[str, int]:
        """Camera name -> number of points it painted (plus ``"none"``: points no camera saw)."""
        per_camera = np.bincount(self.camera_index[self.camera_index >= 0], minlength=len(self.camera_names))
        out = {name: int(n) for name, n in zip(self.camera_names, per_camera)}
        out["none"] = int(np.count_nonzero(self.camera_index == NOT_PAINTED))
        return out


def paint_points(projections: Mapping[str, PointProjection], images: Mapping[str, np.ndarray]) -> PaintedPoints:
    """Colour the projected points from the camera images (module docstring).

    Args:
        projections: camera name -> the sweep's :class:`PointProjection` (``N`` rows each).
        images: camera name -> ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grayscale, copied to
            all three channels) of the camera's size, e.g. ``CameraImage.decode()``. Every
            camera here paints; projections without an image are not used.

    Returns:
        :class:`PaintedPoints` with ``camera_names`` in the order of ``images``.

    Raises:
        ConfigError: an image without a projection.
        ShapeError: an image of the wrong size or dtype, or projections of different lengths.
    """
    missing = [name for name in images if name not in projections]
    if missing:
        raise ConfigError(f"images: no projection for cameras {missing}; projected cameras: {list(projections)}")
    counts = {len(projections[name]) for name in images}
    if len(counts) > 1:
        raise ShapeError(f"projections: expected the same number of points for every camera, got {sorted(counts)}")
    count = counts.pop() if counts else (len(next(iter(projections.values()))) if projections else 0)
    rgb = np.zeros((count, 3), dtype=np.uint8)
    camera_index = np.full(count, NOT_PAINTED, dtype=np.int16)
    best_score = np.full(count, np.inf)
    names = tuple(images)
    for camera_id, name in enumerate(names):
        projection = projections[name]
        model = projection.model
        pixels = _check_image(images[name], name, model.height_px, model.width_px)
        _paint_kernel(
            projection.uv_px, projection.status, pixels,
            model.fx_px, model.fy_px, model.cx_px, model.cy_px,
            camera_id, best_score, rgb, camera_index,
        )  # fmt: skip
    return PaintedPoints(names, rgb, camera_index)


def _check_image(image: np.ndarray, name: str, height: int, width: int) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[:2] != (height, width) or pixels.shape[2] not in (1, 3):
        raise ShapeError(
            f"image '{name}': expected ({height}, {width}, 3) or ({height}, {width}) uint8 for the camera's size, "
            f"got {np.shape(image)} {pixels.dtype}"
        )
    return np.ascontiguousarray(pixels)


@numba.njit(cache=True)
def _paint_kernel(uv_px, status, image, fx, fy, cx, cy, camera_id, best_score, rgb, camera_index):  # pragma: no cover - numba
    height, width, channels = image.shape
    for i in range(status.shape[0]):
        if status[i] != VISIBLE:
            continue
        u = uv_px[i, 0]
        v = uv_px[i, 1]
        du = (u - cx) / fx
        dv = (v - cy) / fy
        score = du * du + dv * dv
        if score < best_score[i]:
            best_score[i] = score
            camera_index[i] = camera_id
            col = min(max(int(np.floor(u + 0.5)), 0), width - 1)
            row = min(max(int(np.floor(v + 0.5)), 0), height - 1)
            for c in range(3):
                rgb[i, c] = image[row, col, c if channels == 3 else 0]
