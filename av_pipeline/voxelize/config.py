"""The voxel grid: voxel size, kept range and caps, with the presets of common detectors.

The grid follows spconv's ``PointToVoxel`` to the bit: voxel size and range are rounded to
float32, the number of voxels per axis is ``round((max - min) / voxel)`` computed in float32
(halves away from zero), and a point's cell along an axis is ``floor((p - min) / voxel)``
in float32. A point is kept when every cell index lies in ``[0, grid)``, which is the range
``[min, min + grid * voxel)`` up to float32 rounding at the upper edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
import numpy as np

from av_pipeline.errors import ConfigError

#: Largest distance, in voxels, between ``(max - min) / voxel`` and the nearest whole number
#: that a range may have. spconv rounds silently; float32 round-off in that quotient stays
#: below ``1e-4`` voxels for grids up to 8192 cells, while a range that is off by a typo is
#: off by at least a few percent of a voxel, so ``1e-3`` separates the two.
RANGE_TOLERANCE_VOXELS = 1e-3

#: Voxel keys pack ``z, y, x`` into 21 bits each, so a grid has at most ``2**21`` voxels per axis.
KEY_BITS_PER_AXIS = 21
MAX_VOXELS_PER_AXIS = 1 << KEY_BITS_PER_AXIS

_AXES = ("x", "y", "z")


def _float_tuple(value: object, name: str, size: int) -> tuple[float, ...]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {size} numbers, got {value!r}") from exc
    if arr.shape != (size,):
        raise ConfigError(f"{name}: expected {size} numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name}: expected finite numbers, got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name}: expected a positive int, got {value!r} ({type(value).__name__})")
    if value < 1 or value > np.iinfo(np.int32).max:
        raise ConfigError(f"{name}: expected an int in [1, 2**31 - 1], got {value}")
    return int(value)


@dataclass(frozen=True)
class VoxelGridConfig:
    """A voxel grid over a box of space, with the caps of hard voxelization.

    Attributes:
        voxel_size_m: ``(3,)`` voxel edge lengths ``(x, y, z)`` in metres.
        point_range_m: ``(6,)`` kept box ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in metres;
            each extent must be a whole number of voxels within
            :data:`RANGE_TOLERANCE_VOXELS`.
        max_num_points_per_voxel: ``P``, points kept per voxel in hard voxelization (the
            first ``P`` in input order).
        max_num_voxels: voxels created at most in hard voxelization (the first ones hit).
        grid_size_zyx: ``(3,)`` number of voxels per axis in z, y, x order (derived).

    Dynamic voxelization uses the grid only and ignores both caps.

    Raises:
        ConfigError: wrong lengths, non-finite or non-positive sizes, an empty range, a range
            that is not a whole number of voxels, or caps that are not positive ints.

    >>> config = VoxelGridConfig((0.05, 0.05, 0.1), (0, -40, -3, 70.4, 40, 1), 5, 40000)
    >>> config.grid_size_zyx
    (40, 1600, 1408)
    """

    voxel_size_m: tuple[float, float, float]
    point_range_m: tuple[float, float, float, float, float, float]
    max_num_points_per_voxel: int
    max_num_voxels: int
    grid_size_zyx: tuple[int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        voxel = _float_tuple(self.voxel_size_m, "voxel_size_m", 3)
        bounds = _float_tuple(self.point_range_m, "point_range_m", 6)
        max_points = _positive_int(self.max_num_points_per_voxel, "max_num_points_per_voxel")
        max_voxels = _positive_int(self.max_num_voxels, "max_num_voxels")
        grid_xyz = []
        for axis, name in enumerate(_AXES):
            size, low, high = voxel[axis], bounds[axis], bounds[axis + 3]
            if size <= 0.0:
                raise ConfigError(f"voxel_size_m: expected positive sizes, got {name} = {size} m")
            if high <= low:
                raise ConfigError(
                    f"point_range_m: expected {name}max > {name}min, got [{low}, {high}] m"
                )
            cells = (high - low) / size
            if abs(cells - round(cells)) > RANGE_TOLERANCE_VOXELS:
                raise ConfigError(
                    f"point_range_m: the {name} extent [{low}, {high}] m is {cells:.6g} voxels of "
                    f"{size} m, expected a whole number (within {RANGE_TOLERANCE_VOXELS} voxel)"
                )
            grid_xyz.append(_spconv_grid_cells(low, high, size))
        if any(g < 1 or g > MAX_VOXELS_PER_AXIS for g in grid_xyz):
            raise ConfigError(
                f"point_range_m: expected 1 to {MAX_VOXELS_PER_AXIS} voxels per axis, got {grid_xyz} (x, y, z)"
            )
        object.__setattr__(self, "voxel_size_m", voxel)
        object.__setattr__(self, "point_range_m", bounds)
        object.__setattr__(self, "max_num_points_per_voxel", max_points)
        object.__setattr__(self, "max_num_voxels", max_voxels)
        object.__setattr__(self, "grid_size_zyx", (grid_xyz[2], grid_xyz[1], grid_xyz[0]))

    @property
    def grid_size_xyz(self) -> tuple[int, int, int]:
        """``(3,)`` number of voxels per axis in x, y, z order."""
        z, y, x = self.grid_size_zyx
        return (x, y, z)

    @property
    def num_grid_cells(self) -> int:
        """Number of cells of the whole grid (``nz * ny * nx``)."""
        return math.prod(self.grid_size_zyx)

    def kernel_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The float32/int arrays the kernels take: ``(range_min_xyz (3,) float32,
        voxel_size_xyz (3,) float32, grid_size_xyz (3,) int64)``."""
        range_min = np.asarray(self.point_range_m[:3], dtype=np.float32)
        voxel = np.asarray(self.voxel_size_m, dtype=np.float32)
        grid = np.asarray(self.grid_size_xyz, dtype=np.int64)
        return range_min, voxel, grid


def _spconv_grid_cells(low: float, high: float, size: float) -> int:
    """``std::round((high - low) / size)`` with float32 operands, as spconv computes it."""
    quotient = (np.float32(high) - np.float32(low)) / np.float32(size)
    # std::round rounds halves away from zero; np.round would round them to even.
    return int(np.floor(np.float64(quotient) + 0.5))


#: SECOND on KITTI (OpenPCDet ``second.yaml``, inference caps): 0.05 x 0.05 x 0.1 m voxels.
KITTI_SECOND = VoxelGridConfig((0.05, 0.05, 0.1), (0.0, -40.0, -3.0, 70.4, 40.0, 1.0), 5, 40000)
#: PointPillars on KITTI (OpenPCDet ``pointpillar.yaml``, inference caps): 0.16 x 0.16 x 4 m pillars.
KITTI_POINTPILLARS = VoxelGridConfig((0.16, 0.16, 4.0), (0.0, -39.68, -3.0, 69.12, 39.68, 1.0), 32, 40000)
#: CenterPoint on nuScenes (OpenPCDet ``cbgs_voxel01_res3d_centerpoint.yaml``): 0.1 x 0.1 x 0.2 m.
NUSCENES_CENTERPOINT = VoxelGridConfig((0.1, 0.1, 0.2), (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), 10, 60000)

#: The presets by name.
PRESETS: dict[str, VoxelGridConfig] = {
    "kitti_second": KITTI_SECOND,
    "kitti_pointpillars": KITTI_POINTPILLARS,
    "nuscenes_centerpoint": NUSCENES_CENTERPOINT,
}
