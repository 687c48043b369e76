"""What the LiDAR's lines of sight hit first: a coarse range image of the above-ground returns,
kept per frame so that the per-log triggers can ask "could the LiDAR see this box?" without
the sweep.

The question matters for onboard tracks that vanish: a stack is right to drop an object
that something hides, and wrong to drop one in plain view. Boxes alone cannot tell (a wall,
a hedge, a pole or an unreported object hides as well as a car; see
:mod:`av_pipeline.mining.visibility`); the sweep can: along a line of sight to a hidden
point, the first return lies in front of it.

**Image.** Directions from the LiDAR's origin (``ego`` axes, no de-skewing) in bins of
``azimuth_step_deg`` by ``elevation_step_deg`` between ``elevation_min_deg`` and
``elevation_max_deg``; each bin keeps the range of its nearest return, quantised down to
``range_quantum_m`` (stored as ``uint8``: 0 = no return, 255 = at or beyond 255 quanta).
Ground returns (within ``min_height_m`` of the local ground,
:func:`~av_pipeline.mining.clusters.height_above_ground`) are left out: the ground is below
every line of sight to an object, and keeping it would hide the object's lower part behind
the road just in front of it. With the defaults a frame's image is 900 x 70 bytes (62 KiB),
kept zlib-compressed (about 7 KiB on the synthetic logs).

**Visibility of a box.** Like the ground truth's: 27 samples fill the box (a 3x3x3 grid at
-1/3, 0, +1/3 of its extents). A sample is **hidden** when its direction's bin (or, for an
empty bin, the nearest non-empty one within one bin up or down: beams fall between bins)
holds a return nearer than the sample that is not the object's own, i.e. lies outside the
box grown by ``own_margin_m``. Otherwise it is **seen**: the line of sight ends on the object,
passes it, or meets nothing. Visibility is the seen share.
"""

from __future__ import annotations

import zlib

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError
from av_pipeline.mining.clusters import height_above_ground
from av_pipeline.mining.visibility import box_samples


class RangeImage:
    """Nearest above-ground return per direction from one LiDAR origin.

    The image is kept zlib-compressed (about 7 KiB a frame on the synthetic logs, 62 KiB
    unpacked) and unpacked on each use: a log's frames are gathered in one place for the
    per-log triggers, which look at a few of them.

    Args:
        origin_m: ``(3,)`` the LiDAR's origin in ``ego`` (metres).
        ranges: ``(E, A)`` uint8, nearest return per bin in quanta of ``range_quantum_m``
            (0 = none; 255 = at least ``255 * range_quantum_m``); row 0 is ``elevation_min_deg``,
            column 0 is azimuth -180 degrees (``ego``: 0 = forward, +90 = left).
        azimuth_step_deg, elevation_min_deg, elevation_step_deg: the bins.
        range_quantum_m: metres per step of ``ranges``.

    Raises:
        ShapeError: ``origin_m`` not ``(3,)`` or ``ranges`` not a 2-D uint8 array.
    """

    def __init__(
        self,
        origin_m: np.ndarray,
        ranges: np.ndarray,
        azimuth_step_deg: float = 0.4,
        elevation_min_deg: float = -25.0,
        elevation_step_deg: float = 0.5,
        range_quantum_m: float = 0.25,
    ) -> None:
        origin = np.asarray(origin_m, dtype=np.float64)
        image = np.asarray(ranges)
        if origin.shape != (3,) or image.ndim != 2 or image.dtype != np.uint8:
            raise ShapeError(f"RangeImage: origin_m {origin.shape} must be (3,) and ranges {image.shape} ({image.dtype}) a 2-D uint8 array")
        self.origin_m = origin
        self.shape = (int(image.shape[0]), int(image.shape[1]))
        self.packed = zlib.compress(np.ascontiguousarray(image).tobytes(), 1)
        self.azimuth_step_deg = float(azimuth_step_deg)
        self.elevation_min_deg = float(elevation_min_deg)
        self.elevation_step_deg = float(elevation_step_deg)
        self.range_quantum_m = float(range_quantum_m)

    @property
    def ranges(self) -> np.ndarray:
        """``(E, A)`` uint8 image (unpacked on each access)."""
        return np.frombuffer(zlib.decompress(self.packed), dtype=np.uint8).reshape(self.shape)

    def __reduce__(self) -> tuple:
        return (_unpack, (self.origin_m, self.shape, self.packed, self.azimuth_step_deg, self.elevation_min_deg, self.elevation_step_deg, self.range_quantum_m))

    @classmethod
    def from_points(
        cls,
        points_ego: np.ndarray,
        origin_m: np.ndarray,
        *,
        azimuth_step_deg: float = 0.4,
        elevation_min_deg: float = -25.0,
        elevation_max_deg: float = 10.0,
        elevation_step_deg: float = 0.5,
        range_quantum_m: float = 0.25,
        min_height_m: float = 0.3,
        ground_cell_m: float = 1.0,
        ground_window_m: float = 5.0,
    ) -> RangeImage:
        """The image of one frame's points.

        Args:
            points_ego: ``(N, 3+)`` the frame's points in ``ego`` (extra columns ignored; NaN rows skipped).
            origin_m: ``(3,)`` the LiDAR's origin in ``ego`` (the rig's ``ego_SE3_lidar`` translation).
            azimuth_step_deg, elevation_min_deg, elevation_max_deg, elevation_step_deg: bins (degrees).
            range_quantum_m: range resolution (metres).
            min_height_m: points this close to the local ground are ground, not occluders.
            ground_cell_m, ground_window_m: the ground estimate's cell and window (metres).

        Raises:
            ShapeError: points not ``(N, 3+)`` or origin not ``(3,)``.
        """
        points = np.asarray(points_ego)
        origin = np.asarray(origin_m, dtype=np.float64).reshape(-1)
        if points.ndim != 2 or points.shape[1] < 3 or origin.shape != (3,):
            raise ShapeError(f"RangeImage.from_points: points_ego {points.shape} must be (N, 3+) and origin_m {origin.shape} (3,)")
        rows = int(round((elevation_max_deg - elevation_min_deg) / elevation_step_deg))
        cols = int(round(360.0 / azimuth_step_deg))
        image = np.zeros((rows, cols), dtype=np.uint8)
        xyz = points[:, :3].astype(np.float64)
        xyz = xyz[np.isfinite(xyz).all(axis=1)]
        if len(xyz):
            xyz = xyz[height_above_ground(xyz, ground_cell_m, ground_window_m) >= min_height_m]
        if len(xyz):
            row, col, rng = _bins(xyz - origin, azimuth_step_deg, elevation_min_deg, elevation_step_deg, rows, cols)
            ok = row >= 0
            quanta = np.clip(np.floor(rng[ok] / range_quantum_m), 1, 255).astype(np.uint8)
            nearest = np.full((rows, cols), 255, dtype=np.uint8)
            np.minimum.at(nearest, (row[ok], col[ok]), quanta)
            hit = np.zeros((rows, cols), dtype=bool)
            hit[row[ok], col[ok]] = True
            image[hit] = nearest[hit]
        return cls(origin, image, azimuth_step_deg, elevation_min_deg, elevation_step_deg, range_quantum_m)

    def samples_seen(self, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, own_margin_m: float = 0.5) -> np.ndarray:
        """``(27,)`` bool: which of the box's samples the LiDAR's lines of sight reach (module doc).

        Args:
            center_m: ``(3,)`` box centre in ``ego`` (metres).
            size_m: ``(3,)`` length, width, height (metres).
            yaw_rad: heading in ``ego``.
            own_margin_m: returns within the box grown by this much are the object's own.
        """
        samples = box_samples(center_m, size_m, yaw_rad)
        image = self.ranges
        rows, cols = image.shape
        row, col, rng = _bins(samples - self.origin_m, self.azimuth_step_deg, self.elevation_min_deg, self.elevation_step_deg, rows, cols)
        first = np.zeros(len(samples))  # metres to the first return along each sample's direction, 0 = none
        for k in np.flatnonzero(row >= 0):
            for r in (row[k], row[k] - 1, row[k] + 1):  # the bin, else the nearest non-empty one up or down
                if 0 <= r < rows and image[r, col[k]]:
                    first[k] = image[r, col[k]] * self.range_quantum_m
                    break
        seen = np.ones(len(samples), dtype=bool)
        blocked = (first > 0) & (first < rng)
        if blocked.any():
            hits = self.origin_m + (samples[blocked] - self.origin_m) * (first[blocked] / rng[blocked])[:, None]
            box = Cuboids.from_arrays("ego", [np.asarray(center_m)[:3]], [size_m], [yaw_rad], ["object"])
            seen[blocked] = box.points_in_boxes(hits, own_margin_m) >= 0  # the object's own returns
        return seen

    def visibility(self, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, own_margin_m: float = 0.5) -> float:
        """Share of the box's 27 samples the LiDAR sees (see :meth:`samples_seen`), in ``[0, 1]``."""
        return float(self.samples_seen(center_m, size_m, yaw_rad, own_margin_m).mean())

    @property
    def nbytes(self) -> int:
        """Bytes held (the compressed image)."""
        return len(self.packed)


def _unpack(origin_m, shape, packed, azimuth_step_deg, elevation_min_deg, elevation_step_deg, range_quantum_m) -> RangeImage:
    image = RangeImage.__new__(RangeImage)
    image.origin_m, image.shape, image.packed = np.asarray(origin_m), tuple(shape), packed
    image.azimuth_step_deg, image.elevation_min_deg = azimuth_step_deg, elevation_min_deg
    image.elevation_step_deg, image.range_quantum_m = elevation_step_deg, range_quantum_m
    return image


def _bins(d: np.ndarray, az_step: float, el_min: float, el_step: float, rows: int, cols: int):
    rng = np.linalg.norm(d, axis=1)
    az = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    el = np.degrees(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
    col = np.floor((az + 180.0) / az_step).astype(np.int64) % cols
    row = np.floor((el - el_min) / el_step).astype(np.int64)
    row = np.where((row >= 0) & (row < rows) & (rng > 0), row, -1)
    return row, col, rng


__all__ = ["RangeImage"]
