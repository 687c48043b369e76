"""The entry points: check the input, then run on the CPU or the GPU by where it lives.

- numpy array -> numba CPU kernels, numpy outputs;
- torch CPU tensor -> numba CPU kernels (zero-copy), torch CPU outputs;
- torch CUDA tensor -> numba.cuda kernels on the tensor's device and current stream, torch
  CUDA outputs;
- numba CUDA device array (or another ``__cuda_array_interface__`` array) -> numba.cuda
  kernels, numba device array outputs.

torch is never imported here: a tensor can only come from a program that imported it
already, so ``sys.modules`` tells whether the input may be one. numba.cuda is imported on
the first GPU input.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Sequence

import numpy as np

from av_pipeline.errors import ShapeError
from av_pipeline.voxelize.config import VoxelGridConfig
from av_pipeline.voxelize.cpu import voxelize_dynamic_numpy, voxelize_numpy
from av_pipeline.voxelize.records import BatchedVoxels, DynamicVoxels, Voxels

_CPU, _TORCH_CPU, _TORCH_CUDA, _CUDA = "numpy", "torch-cpu", "torch-cuda", "cuda"


def _torch_module() -> Any:
    return sys.modules.get("torch")


def _where(points: object) -> str:
    if isinstance(points, np.ndarray):
        return _CPU
    torch = _torch_module()
    if torch is not None and isinstance(points, torch.Tensor):
        return _TORCH_CUDA if points.is_cuda else _TORCH_CPU
    if hasattr(points, "__cuda_array_interface__") or type(points).__name__ in ("DeviceNDArray", "FakeCUDAArray"):
        return _CUDA
    return "other"


def _describe(points: object) -> str:
    shape = getattr(points, "shape", None)
    dtype = getattr(points, "dtype", None)
    if shape is None:
        return type(points).__name__
    return f"{tuple(shape)} {str(dtype).replace('torch.', '')} {type(points).__name__}"


def check_points(points: object, name: str = "points") -> tuple[Any, str]:
    """Return ``(points ready for a kernel, where it lives)``.

    Raises:
        ShapeError: not an array of a supported kind, not ``(N, C)`` with ``C >= 3``, or
            not float32 (converting silently would move points across voxel edges).
    """
    where = _where(points)
    expected = f"{name}: expected an (N, 3+) float32 array (numpy, torch or CUDA)"
    if where == "other":
        raise ShapeError(f"{expected}, got {_describe(points)}")
    shape = tuple(points.shape)  # type: ignore[attr-defined]
    if len(shape) != 2 or shape[1] < 3:
        raise ShapeError(f"{expected}, got {_describe(points)}")
    dtype_name = str(points.dtype).replace("torch.", "")  # type: ignore[attr-defined]
    if dtype_name != "float32":
        raise ShapeError(
            f"{expected}, got {_describe(points)}; convert explicitly (e.g. points.astype(np.float32)) "
            "so that the rounding to float32 is yours"
        )
    if where == _CPU:
        return np.ascontiguousarray(points), where
    if where == _TORCH_CPU:
        return points.detach().contiguous().numpy(), where  # type: ignore[attr-defined]
    if where == _TORCH_CUDA:
        from numba import cuda

        # no sync: the kernels run on torch's current stream, after whatever made the tensor
        return cuda.as_cuda_array(points.detach().contiguous(), sync=False), where  # type: ignore[attr-defined]
    if type(points).__name__ not in ("DeviceNDArray", "FakeCUDAArray"):  # e.g. a CuPy array
        from numba import cuda

        points = cuda.as_cuda_array(points)
    if not _is_c_contiguous(points):
        raise ShapeError(f"{name}: expected a C-contiguous CUDA array, got {_describe(points)}")
    return points, where


def _is_c_contiguous(points: Any) -> bool:
    flag = getattr(points, "is_c_contiguous", None)
    return bool(flag()) if callable(flag) else True


def _device_context(points: Any) -> Any:
    """The CUDA stream and allocator for a GPU call: torch's current stream and caching
    allocator for a torch tensor (no cudaMalloc per call), numba's defaults otherwise."""
    from numba import cuda

    from av_pipeline.voxelize.cuda import DeviceContext

    torch = _torch_module()
    if torch is None or not isinstance(points, torch.Tensor):
        return DeviceContext()
    device = points.device

    def allocate(shape: tuple[int, ...], dtype: Any) -> Any:
        tensor = torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device=device)
        # the device array keeps the tensor alive; no stream sync: the kernels run on the
        # stream the tensor was allocated on
        return cuda.as_cuda_array(tensor, sync=False)

    return DeviceContext(cuda.external_stream(torch.cuda.current_stream(device).cuda_stream), allocate)


def _on_device_of(points: Any) -> Any:
    """numba's current device set to a torch tensor's device (a no-op for other arrays)."""
    torch = _torch_module()
    if torch is not None and isinstance(points, torch.Tensor) and points.is_cuda:
        from numba import cuda

        return cuda.gpus[points.device.index if points.device.index is not None else torch.cuda.current_device()]
    return contextlib.nullcontext()


def _to_torch(array: Any, like: Any) -> Any:
    torch = _torch_module()
    if array is None:
        return None
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    if array.size == 0:  # a zero-size device array has no pointer to share
        dtype = getattr(torch, np.dtype(array.dtype).name)
        return torch.empty(tuple(array.shape), dtype=dtype, device=like.device)
    return torch.as_tensor(array, device=like.device)


def voxelize(
    points: Any,
    config: VoxelGridConfig,
    *,
    return_point_voxel_id: bool = False,
    deterministic: bool = True,
) -> Voxels:
    """Hard voxelization with the exact semantics of spconv's ``PointToVoxel``.

    Voxels are numbered in first-hit order; a voxel holds its first ``P`` points in input
    order; once ``max_num_voxels`` voxels exist no new one is made (points of existing
    voxels are still added). Points with NaN or inf in any column are dropped and counted.

    Args:
        points: ``(N, C)`` float32, ``C >= 3`` with ``x, y, z`` first (numpy, torch CPU/CUDA
            or a numba CUDA array); ``N`` may be 0.
        config: the grid and the caps ``P = max_num_points_per_voxel`` and
            ``max_num_voxels``.
        return_point_voxel_id: also return the ``(N,)`` row of each point (``-1`` for every
            point not stored). spconv's ``generate_voxel_with_id`` gives points beyond the
            first ``P`` of a voxel that voxel's id; here they get ``-1``.
        deterministic: on the GPU, give exactly the CPU's output (default). ``False`` lets
            atomics decide voxel order, which voxels survive a binding ``max_num_voxels``
            and which points fill an overfull voxel (spconv's CUDA behaviour), for speed.
            Ignored on the CPU.

    Returns:
        :class:`Voxels` with arrays of the input's kind and device.

    Raises:
        ShapeError: wrong type, shape or dtype.

    >>> import numpy as np
    >>> from av_pipeline.voxelize import voxelize, KITTI_SECOND
    >>> points = np.array([[1.01, 0.01, 0.01, 0.5], [1.02, 0.02, 0.02, 0.7],
    ...                    [np.nan, 0, 0, 0], [-5.0, 0, 0, 0]], dtype=np.float32)
    >>> result = voxelize(points, KITTI_SECOND, return_point_voxel_id=True)
    >>> result.coords_zyx.tolist(), result.num_points.tolist()
    ([[30, 800, 20]], [2])
    >>> result.point_voxel_id.tolist()
    [0, 0, -1, -1]
    >>> result.num_dropped_nonfinite, result.num_dropped_out_of_range
    (1, 1)
    """
    with _on_device_of(points):  # a torch CUDA tensor's device; a no-op otherwise
        checked, where = check_points(points)
        if where in (_CPU, _TORCH_CPU):
            result = voxelize_numpy(checked, config, return_point_voxel_id=return_point_voxel_id)
        else:
            from av_pipeline.voxelize.cuda import voxelize_cuda

            result = voxelize_cuda(
                checked, config, return_point_voxel_id=return_point_voxel_id, deterministic=deterministic,
                device=_device_context(points),
            )
    if where in (_TORCH_CPU, _TORCH_CUDA):
        result = _replace_arrays(result, points, ("voxels", "coords_zyx", "num_points", "point_voxel_id"))
    return result


def voxelize_dynamic(points: Any, config: VoxelGridConfig, *, deterministic: bool = True) -> DynamicVoxels:
    """Dynamic voxelization: every in-range point gets a voxel, no caps.

    Args:
        points: ``(N, C)`` float32 as in :func:`voxelize`.
        config: the grid (its caps are ignored).
        deterministic: on the GPU, first-hit voxel order and means bit-identical to the
            CPU's (default); ``False`` allows any voxel order and float64 sums added in any
            order. Ignored on the CPU.

    Returns:
        :class:`DynamicVoxels`: per-point voxel ids, unique ``(M, 3)`` coords in first-hit
        order and ``(M, C)`` mean features.

    Raises:
        ShapeError: wrong type, shape or dtype.
    """
    with _on_device_of(points):
        checked, where = check_points(points)
        if where in (_CPU, _TORCH_CPU):
            result = voxelize_dynamic_numpy(checked, config)
        else:
            from av_pipeline.voxelize.cuda import voxelize_dynamic_cuda

            result = voxelize_dynamic_cuda(checked, config, deterministic=deterministic, device=_device_context(points))
    if where in (_TORCH_CPU, _TORCH_CUDA):
        result = _replace_arrays(result, points, ("point_voxel_id", "coords_zyx", "mean_features", "num_points"))
    return result


def _replace_arrays(result: Any, like: Any, names: Sequence[str]) -> Any:
    from dataclasses import replace

    return replace(result, **{name: _to_torch(getattr(result, name), like) for name in names})


def voxelize_batch(
    clouds: Sequence[Any],
    config: VoxelGridConfig,
    *,
    return_point_voxel_id: bool = False,
    deterministic: bool = True,
) -> BatchedVoxels:
    """Hard-voxelize each cloud (caps apply per cloud) and stack them for spconv.

    Args:
        clouds: ``B >= 1`` clouds, each ``(N_b, C)`` float32, all of one kind (numpy, torch
            on one device, or numba CUDA) and with the same ``C``.
        config, return_point_voxel_id, deterministic: as in :func:`voxelize`.

    Returns:
        :class:`BatchedVoxels` with ``coords_bzyx`` ``(M, 4)`` int32 ``[batch, z, y, x]``,
        ready for ``spconv.pytorch.SparseConvTensor(features, coords_bzyx,
        spatial_shape_zyx, batch_size)`` (as torch tensors).

    Raises:
        ShapeError: no clouds, mixed kinds or feature counts, or a bad cloud (its index is
            in the message).
    """
    if len(clouds) == 0:
        raise ShapeError("clouds: expected at least one (N, 3+) float32 array, got an empty sequence")
    kinds = {_where(cloud) for cloud in clouds}
    if len(kinds) != 1:
        raise ShapeError(f"clouds: expected arrays of one kind, got {sorted(kinds)}")
    widths = {tuple(getattr(cloud, "shape", ()))[1:] for cloud in clouds}
    if len(widths) != 1:
        raise ShapeError(f"clouds: expected the same number of columns C in every cloud, got {sorted(widths)}")
    per_cloud = []
    for index, cloud in enumerate(clouds):
        check_points(cloud, f"clouds[{index}]")
        per_cloud.append(voxelize(cloud, config, return_point_voxel_id=return_point_voxel_id, deterministic=deterministic))
    offsets = [0]
    for result in per_cloud:
        offsets.append(offsets[-1] + result.num_voxels)
    kind = kinds.pop()
    stack = _Stacker(kind, clouds[0])
    voxels = stack.concat([r.voxels for r in per_cloud])
    num_points = stack.concat([r.num_points for r in per_cloud])
    coords_bzyx = stack.coords_with_batch([r.coords_zyx for r in per_cloud])
    views = tuple(
        _replace_arrays_with(
            result,
            voxels=voxels[offsets[b] : offsets[b + 1]],
            coords_zyx=coords_bzyx[offsets[b] : offsets[b + 1], 1:],
            num_points=num_points[offsets[b] : offsets[b + 1]],
        )
        for b, result in enumerate(per_cloud)
    )
    return BatchedVoxels(
        voxels=voxels,
        coords_bzyx=coords_bzyx,
        num_points=num_points,
        spatial_shape_zyx=config.grid_size_zyx,
        batch_size=len(clouds),
        per_cloud=views,
        voxel_offsets=tuple(offsets),
    )


def _replace_arrays_with(result: Voxels, **arrays: Any) -> Voxels:
    from dataclasses import replace

    return replace(result, **arrays)


class _Stacker:
    """Concatenation for numpy, torch and numba device arrays."""

    def __init__(self, kind: str, like: Any) -> None:
        self.kind = kind
        self.like = like

    def concat(self, arrays: list[Any]) -> Any:
        if self.kind == _CPU:
            return np.concatenate(arrays, axis=0)
        if self.kind in (_TORCH_CPU, _TORCH_CUDA):
            return _torch_module().cat(arrays, dim=0)
        from numba import cuda

        total = sum(a.shape[0] for a in arrays)
        out = cuda.device_array((total,) + tuple(arrays[0].shape[1:]), dtype=arrays[0].dtype)
        row = 0
        for a in arrays:
            if a.shape[0]:
                out[row : row + a.shape[0]].copy_to_device(a)
            row += a.shape[0]
        return out

    def coords_with_batch(self, coords: list[Any]) -> Any:
        if self.kind == _CPU:
            parts = [np.concatenate([np.full((c.shape[0], 1), b, dtype=np.int32), c], axis=1) for b, c in enumerate(coords)]
            return np.concatenate(parts, axis=0) if parts else np.zeros((0, 4), np.int32)
        if self.kind in (_TORCH_CPU, _TORCH_CUDA):
            torch = _torch_module()
            parts = [
                torch.cat([torch.full((c.shape[0], 1), b, dtype=torch.int32, device=c.device), c], dim=1)
                for b, c in enumerate(coords)
            ]
            return torch.cat(parts, dim=0)
        from numba import cuda

        host = [np.concatenate([np.full((c.shape[0], 1), b, np.int32), c.copy_to_host()], axis=1) for b, c in enumerate(coords)]
        return cuda.to_device(np.concatenate(host, axis=0))
