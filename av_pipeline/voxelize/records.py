"""What voxelization returns: frozen records of arrays (numpy, torch or CUDA arrays).

The arrays are numpy arrays for numpy input, torch tensors (on the input's device) for torch
input, and numba CUDA device arrays for other ``__cuda_array_interface__`` input. The counts
are plain ints, so ``num_input_points == num_kept + sum of the num_dropped_*`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: An array of any of the supported kinds (numpy, torch, numba CUDA).
ArrayLike = Any


@dataclass(frozen=True, eq=False)
class Voxels:
    """Hard voxelization of one cloud (spconv ``PointToVoxel`` semantics).

    Attributes:
        voxels: ``(M, P, C)`` float32, the first ``num_points[m]`` rows of voxel ``m`` are its
            first points in input order, the rest zeros.
        coords_zyx: ``(M, 3)`` int32 voxel indices in ``z, y, x`` order.
        num_points: ``(M,)`` int32 points stored per voxel, ``1..P``.
        point_voxel_id: ``(N,)`` int64 row of ``voxels`` that holds each input point, ``-1`` for
            every point not stored (non-finite, out of range, voxel cap reached, or beyond the
            first ``P`` of a full voxel); ``None`` unless requested.
        num_input_points: ``N``.
        num_dropped_nonfinite: points with NaN or inf in any column.
        num_dropped_out_of_range: finite points outside the grid.
        num_dropped_voxel_cap: in-range points whose voxel would have been voxel number
            ``max_num_voxels + 1`` or later.
        num_dropped_full_voxel: points of a voxel that already held ``P`` points.
    """

    voxels: ArrayLike
    coords_zyx: ArrayLike
    num_points: ArrayLike
    point_voxel_id: ArrayLike | None
    num_input_points: int
    num_dropped_nonfinite: int
    num_dropped_out_of_range: int
    num_dropped_voxel_cap: int
    num_dropped_full_voxel: int

    @property
    def num_voxels(self) -> int:
        """``M``."""
        return int(self.coords_zyx.shape[0])

    @property
    def num_kept_points(self) -> int:
        """Points stored in ``voxels``."""
        return (
            self.num_input_points
            - self.num_dropped_nonfinite
            - self.num_dropped_out_of_range
            - self.num_dropped_voxel_cap
            - self.num_dropped_full_voxel
        )


@dataclass(frozen=True, eq=False)
class DynamicVoxels:
    """Dynamic voxelization of one cloud: every in-range point belongs to a voxel, no caps.

    Attributes:
        point_voxel_id: ``(N,)`` int64 voxel of each input point, ``-1`` for non-finite and
            out-of-range points. Voxels are numbered in first-hit order.
        coords_zyx: ``(M, 3)`` int32 voxel indices in ``z, y, x`` order.
        mean_features: ``(M, C)`` float32 mean of each voxel's points (summed in float64 in
            input order, then divided), what a mean VFE feeds the network.
        num_points: ``(M,)`` int32 points per voxel.
        num_input_points: ``N``.
        num_dropped_nonfinite: points with NaN or inf in any column.
        num_dropped_out_of_range: finite points outside the grid.
    """

    point_voxel_id: ArrayLike
    coords_zyx: ArrayLike
    mean_features: ArrayLike
    num_points: ArrayLike
    num_input_points: int
    num_dropped_nonfinite: int
    num_dropped_out_of_range: int

    @property
    def num_voxels(self) -> int:
        """``M``."""
        return int(self.coords_zyx.shape[0])


@dataclass(frozen=True, eq=False)
class BatchedVoxels:
    """Hard voxelization of several clouds, stacked for spconv's ``SparseConvTensor``.

    Attributes:
        voxels: ``(M, P, C)`` float32, the clouds' voxels one after the other.
        coords_bzyx: ``(M, 4)`` int32 ``[batch, z, y, x]``, the ``indices`` of a
            ``SparseConvTensor``.
        num_points: ``(M,)`` int32 points stored per voxel.
        spatial_shape_zyx: ``(3,)`` grid size, the ``spatial_shape`` of a ``SparseConvTensor``.
        batch_size: number of clouds.
        per_cloud: the :class:`Voxels` of each cloud, whose arrays are views into the stacked
            ones (rows ``voxel_offsets[b]:voxel_offsets[b + 1]``), with the cloud's counts and
            point ids (rows within the cloud).
        voxel_offsets: ``(B + 1,)`` first row of each cloud, then ``M``.
    """

    voxels: ArrayLike
    coords_bzyx: ArrayLike
    num_points: ArrayLike
    spatial_shape_zyx: tuple[int, int, int]
    batch_size: int
    per_cloud: tuple[Voxels, ...]
    voxel_offsets: tuple[int, ...]

    @property
    def num_voxels(self) -> int:
        """``M``, all clouds together."""
        return int(self.coords_bzyx.shape[0])
