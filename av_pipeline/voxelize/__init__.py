"""Voxelization of point clouds for sparse-convolution detectors, on the CPU and the GPU.

- :func:`voxelize`: hard voxelization, bit-identical to spconv's ``PointToVoxel``;
- :func:`voxelize_dynamic`: per-point voxel ids, unique voxels and mean features, no caps;
- :func:`voxelize_batch`: several clouds stacked with a batch column for ``SparseConvTensor``.

Each runs on numba CPU kernels for numpy arrays and torch CPU tensors, and on numba.cuda
kernels for torch CUDA tensors and numba device arrays. See ``docs/voxelization.md``.
"""

from av_pipeline.voxelize.api import voxelize, voxelize_batch, voxelize_dynamic
from av_pipeline.voxelize.config import (
    KITTI_POINTPILLARS,
    KITTI_SECOND,
    MAX_VOXELS_PER_AXIS,
    NUSCENES_CENTERPOINT,
    PRESETS,
    RANGE_TOLERANCE_VOXELS,
    VoxelGridConfig,
)
from av_pipeline.voxelize.records import BatchedVoxels, DynamicVoxels, Voxels

__all__ = [
    "BatchedVoxels",
    "DynamicVoxels",
    "KITTI_POINTPILLARS",
    "KITTI_SECOND",
    "MAX_VOXELS_PER_AXIS",
    "NUSCENES_CENTERPOINT",
    "PRESETS",
    "RANGE_TOLERANCE_VOXELS",
    "VoxelGridConfig",
    "Voxels",
    "voxelize",
    "voxelize_batch",
    "voxelize_dynamic",
]
