"""Numba CPU kernels of hard and dynamic voxelization, and their typed wrappers.

Three passes, memory linear in the number of points (never in the grid size):

1. ``_point_keys_*``: each point's voxel key ``z << 42 | y << 21 | x`` from spconv's
   float32 arithmetic, or a code for "out of range" / "non-finite".
2. ``_assign_*`` (sequential, because first-hit order is sequential by definition): an
   open-addressing hash table of ``2**k >= 2 * voxels`` slots (int64 key + int32 id) maps a
   key to its voxel id (or, for grids no bigger than that table, a dense int32 table of the
   grid: see :func:`_voxel_table`); ids are handed out in first-hit order and each kept
   point gets its row ``voxel * P + rank`` in the output.
3. ``_scatter_points_*`` (in point order): copy each kept point to its row of the
   zero-initialised ``(M, P, C)`` output; the dynamic variant averages instead.

Passes 1 and 3 have a parallel and a one-thread variant; the parallel one runs from
:data:`PARALLEL_MIN_ITEMS` items and :data:`PARALLEL_MIN_THREADS` numba threads on. In a
Beam worker that runs one process per core, set ``NUMBA_NUM_THREADS=1``.

spconv's CPU ``PointToVoxel`` instead keeps a dense int32 table of the whole grid (344 MiB
for the KITTI SECOND grid).
"""

from __future__ import annotations

import numba
import numpy as np

from av_pipeline.voxelize.config import KEY_BITS_PER_AXIS, VoxelGridConfig
from av_pipeline.voxelize.records import DynamicVoxels, Voxels

#: Key of a point outside the kept range.
KEY_OUT_OF_RANGE = -1
#: Key of a point with a NaN or infinite value in any column.
KEY_NONFINITE = -2

_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (Fibonacci hashing)
_AXIS_MASK = np.int64((1 << KEY_BITS_PER_AXIS) - 1)
_EMPTY = np.int64(-1)  # an empty hash slot (keys are >= 0)
_EXPONENT_MASK = np.uint32(0x7F800000)
#: Points from which the key and scatter passes may run in parallel.
PARALLEL_MIN_ITEMS = 100_000
#: numba threads from which the passes run in parallel. With fewer, the gain measured on
#: the 2-core reference machine was below 25 % when idle, and a fork-join region waits a
#: whole scheduler quantum whenever the other core is busy (5x slower under load).
PARALLEL_MIN_THREADS = 4
_LOCAL_BITS = 2
_LOCAL_MASK = np.int64((1 << _LOCAL_BITS) - 1)


@numba.njit(cache=True, inline="always")
def pack_key(z, y, x):  # pragma: no cover - numba
    """The voxel key ``z << 42 | y << 21 | x``: shifts, not divisions, to unpack."""
    return (z << (2 * KEY_BITS_PER_AXIS)) | (y << KEY_BITS_PER_AXIS) | x


@numba.njit(cache=True, inline="always")
def unpack_key(key, coords_zyx, row):  # pragma: no cover - numba
    coords_zyx[row, 0] = key >> (2 * KEY_BITS_PER_AXIS)
    coords_zyx[row, 1] = (key >> KEY_BITS_PER_AXIS) & _AXIS_MASK
    coords_zyx[row, 2] = key & _AXIS_MASK


def table_bits(num_keys: int) -> int:
    """``k`` such that ``2**k`` slots keep the load factor of ``num_keys`` keys at most 1/2."""
    return max(4, int(2 * max(num_keys, 1) - 1).bit_length())


@numba.njit(cache=True, inline="always")
def _key_of_point(points, i, range_min, voxel_size, grid_limits):  # pragma: no cover - numba
    """(packed voxel key of point i or KEY_OUT_OF_RANGE, 1 if in range else 0), branch-free
    so that the loops around it vectorise. Non-finite xyz compare false: out of range."""
    # float32 throughout, exactly spconv's floor((p - min) / voxel); for an integer n,
    # 0 <= floor(q) < n  <=>  0 <= q < n, and truncation is floor for q >= 0.
    qx = (points[i, 0] - range_min[0]) / voxel_size[0]
    qy = (points[i, 1] - range_min[1]) / voxel_size[1]
    qz = (points[i, 2] - range_min[2]) / voxel_size[2]
    inside = (qx >= 0) & (qx < grid_limits[0]) & (qy >= 0) & (qy < grid_limits[1]) & (qz >= 0) & (qz < grid_limits[2])
    # out-of-range quotients convert to garbage that the select below discards
    key = pack_key(np.int64(qz), np.int64(qy), np.int64(qx))
    return (key if inside else KEY_OUT_OF_RANGE), (1 if inside else 0)


@numba.njit(cache=True, parallel=True, nogil=True)
def _point_keys_parallel(points, range_min, voxel_size, grid_limits, keys):  # pragma: no cover - numba
    """keys[i] for every point (non-finite rows not marked yet); returns num_in_range."""
    num_in_range = 0
    for i in numba.prange(points.shape[0]):
        key, inside = _key_of_point(points, i, range_min, voxel_size, grid_limits)
        keys[i] = key
        num_in_range += inside
    return num_in_range


@numba.njit(cache=True, nogil=True)
def _point_keys_serial(points, range_min, voxel_size, grid_limits, keys):  # pragma: no cover - numba
    """:func:`_point_keys_parallel` on one thread (small clouds: no fork-join overhead)."""
    num_in_range = 0
    for i in range(points.shape[0]):
        key, inside = _key_of_point(points, i, range_min, voxel_size, grid_limits)
        keys[i] = key
        num_in_range += inside
    return num_in_range


@numba.njit(cache=True, nogil=True)
def _has_nonfinite(float_bits):  # pragma: no cover - numba
    """Whether any float32 (given as its uint32 bits) is NaN or inf: all exponent bits set.
    An integer max reduction, so it vectorises (a float sum would not)."""
    top = np.uint32(0)
    for t in range(float_bits.shape[0]):
        top = max(top, float_bits[t] & _EXPONENT_MASK)
    return top == _EXPONENT_MASK


@numba.njit(cache=True, nogil=True)
def _mark_nonfinite(points, keys):  # pragma: no cover - numba
    """keys[i] = KEY_NONFINITE for rows with NaN/inf in any column.

    Returns (num_nonfinite, how many of them had been counted in range)."""
    num_nonfinite = 0
    were_in_range = 0
    for i in range(points.shape[0]):
        finite = True
        for k in range(points.shape[1]):
            if not np.isfinite(points[i, k]):
                finite = False
        if not finite:
            if keys[i] >= 0:
                were_in_range += 1
            keys[i] = KEY_NONFINITE
            num_nonfinite += 1
    return num_nonfinite, were_in_range


def _point_keys(points: np.ndarray, config: VoxelGridConfig) -> tuple[np.ndarray, int, int]:
    """``(keys (N,) int64, num_in_range, num_nonfinite)`` of a C-contiguous float32 cloud."""
    range_min, voxel_size, grid_size = config.kernel_params()
    keys = np.empty(points.shape[0], dtype=np.int64)
    kernel = _point_keys_parallel if _parallel_pays(points.shape[0]) else _point_keys_serial
    num_in_range = int(kernel(points, range_min, voxel_size, grid_size.astype(np.float32), keys))
    num_nonfinite = 0
    if _has_nonfinite(points.reshape(-1).view(np.uint32)):
        num_nonfinite, were_in_range = _mark_nonfinite(points, keys)
        num_in_range -= int(were_in_range)
    return keys, num_in_range, int(num_nonfinite)


def _parallel_pays(num_items: int) -> bool:
    """Whether a pass over ``num_items`` runs on all numba threads (see
    :data:`PARALLEL_MIN_THREADS`); fork-join costs tens of microseconds, so small clouds
    always run on one thread."""
    return num_items >= PARALLEL_MIN_ITEMS and numba.get_num_threads() >= PARALLEL_MIN_THREADS


@numba.njit(cache=True, inline="always")
def _home_slot(key, shift):  # pragma: no cover - numba
    """Slot where ``key``'s probe starts: a multiplicative hash of ``key >> 2`` keeps four
    neighbouring x cells in neighbouring slots, so points along a scan line hit one cache line."""
    block = np.uint64(key >> _LOCAL_BITS) * _HASH_MULTIPLIER
    return (np.int64(block >> (shift + np.uint64(_LOCAL_BITS))) << _LOCAL_BITS) | (key & _LOCAL_MASK)


@numba.njit(cache=True, inline="always")
def _lookup(key, table_keys, table_voxels, dense_nx, dense_ny, shift, mask):  # pragma: no cover - numba
    """``(slot, voxel id or -1)``: the cell index in a dense table (``dense_nx > 0``), else
    the linear-probing slot holding ``key`` or the empty slot where it belongs."""
    if dense_nx > 0:
        cell = ((key >> (2 * KEY_BITS_PER_AXIS)) * dense_ny + ((key >> KEY_BITS_PER_AXIS) & _AXIS_MASK)) * dense_nx
        cell += key & _AXIS_MASK
        return cell, table_voxels[cell]
    slot = _home_slot(key, shift)
    while True:
        held = table_keys[slot]
        if held == key:
            return slot, table_voxels[slot]
        if held == _EMPTY:
            return slot, -1
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def _assign_hard(
    keys, table_keys, table_voxels, dense_nx, dense_ny, bits, max_voxels, max_points, point_slot, point_voxel_id
):  # pragma: no cover - numba
    """First-hit voxel ids with both caps.

    Fills point_slot (N,) int64 with ``voxel * P + rank`` (the point's row in the flattened
    (M * P, C) output) or -1, and point_voxel_id (N,) with the voxel or -1 when it has
    length N (length 0: not requested). Returns (num_voxels, voxel_keys (V,), counts (V,)
    int32, num_dropped_voxel_cap, num_dropped_full); only the first num_voxels rows count.
    """
    want_ids = point_voxel_id.shape[0] > 0
    mask = (np.int64(1) << bits) - 1
    shift = np.uint64(64 - bits)
    row_cap = max(1, min(max_voxels, keys.shape[0]))
    voxel_keys = np.empty(row_cap, dtype=np.int64)
    counts = np.zeros(row_cap, dtype=np.int32)
    num_voxels = 0
    dropped_cap = 0
    dropped_full = 0
    last_key = _EMPTY
    last_voxel = -1
    for i in range(keys.shape[0]):
        key = keys[i]
        voxel = -1
        if key >= 0:
            if key == last_key:  # consecutive points of a sweep often share a voxel
                voxel = last_voxel
            else:
                slot, voxel = _lookup(key, table_keys, table_voxels, dense_nx, dense_ny, shift, mask)
                if voxel == -1:
                    if num_voxels < max_voxels:
                        voxel = num_voxels
                        num_voxels += 1
                        if dense_nx == 0:
                            table_keys[slot] = key
                        table_voxels[slot] = voxel
                        voxel_keys[voxel] = key
                    else:
                        # No new voxels once the cap is reached; the key is not remembered,
                        # so later points of this voxel are looked up (and dropped) again.
                        dropped_cap += 1
                if voxel >= 0:
                    last_key = key
                    last_voxel = voxel
        if voxel >= 0:
            count = counts[voxel]
            if count < max_points:
                counts[voxel] = count + 1
                point_slot[i] = voxel * max_points + count
            else:
                dropped_full += 1
                voxel = -1
                point_slot[i] = -1
        else:
            point_slot[i] = -1
        if want_ids:
            point_voxel_id[i] = voxel
    return num_voxels, voxel_keys, counts, dropped_cap, dropped_full


@numba.njit(cache=True, inline="always")
def _copy_row(i, points_flat, point_slot, voxels_flat, num_features):  # pragma: no cover - numba
    slot = point_slot[i]
    if slot >= 0:
        dst = slot * num_features
        src = i * num_features
        for k in range(num_features):
            voxels_flat[dst + k] = points_flat[src + k]


@numba.njit(cache=True, parallel=True, nogil=True)
def _scatter_points_parallel(points, point_slot, voxels):  # pragma: no cover - numba
    """voxels (M, P, C), zeros on entry, get each kept point at its slot. In point order:
    reads are sequential and, voxels being numbered in first-hit order, so are most writes.
    The padding is not written here: np.zeros gets it from calloc (a single memset, or
    pages the kernel zeroes lazily for a fresh mapping)."""
    num_features = points.shape[1]
    points_flat = points.reshape(-1)
    voxels_flat = voxels.reshape(-1)
    for i in numba.prange(points.shape[0]):
        _copy_row(i, points_flat, point_slot, voxels_flat, num_features)


@numba.njit(cache=True, nogil=True)
def _scatter_points_serial(points, point_slot, voxels):  # pragma: no cover - numba
    """:func:`_scatter_points_parallel` on one thread."""
    num_features = points.shape[1]
    points_flat = points.reshape(-1)
    voxels_flat = voxels.reshape(-1)
    for i in range(points.shape[0]):
        _copy_row(i, points_flat, point_slot, voxels_flat, num_features)


@numba.njit(cache=True, nogil=True)
def _unpack_keys(voxel_keys, coords_zyx):  # pragma: no cover - numba
    for v in range(coords_zyx.shape[0]):
        unpack_key(voxel_keys[v], coords_zyx, v)


@numba.njit(cache=True, nogil=True)
def _assign_dynamic(keys, table_keys, table_voxels, dense_nx, dense_ny, bits, point_voxel_id):  # pragma: no cover
    """First-hit voxel ids without caps. Returns (num_voxels, voxel_keys (V,), counts (V,))."""
    mask = (np.int64(1) << bits) - 1
    shift = np.uint64(64 - bits)
    row_cap = max(1, keys.shape[0])
    voxel_keys = np.empty(row_cap, dtype=np.int64)
    counts = np.zeros(row_cap, dtype=np.int32)
    num_voxels = 0
    last_key = _EMPTY
    last_voxel = -1
    for i in range(keys.shape[0]):
        key = keys[i]
        if key < 0:
            point_voxel_id[i] = -1
            continue
        if key == last_key:
            voxel = last_voxel
        else:
            slot, voxel = _lookup(key, table_keys, table_voxels, dense_nx, dense_ny, shift, mask)
            if voxel == -1:
                voxel = num_voxels
                num_voxels += 1
                if dense_nx == 0:
                    table_keys[slot] = key
                table_voxels[slot] = voxel
                voxel_keys[voxel] = key
            last_key = key
            last_voxel = voxel
        counts[voxel] += 1
        point_voxel_id[i] = voxel
    return num_voxels, voxel_keys, counts


@numba.njit(cache=True, nogil=True)
def _mean_dynamic(points, point_voxel_id, counts, voxel_keys, means, coords_zyx):  # pragma: no cover
    """means (M, C) float32: float64 sums in point order, divided by the count."""
    num_voxels, num_features = means.shape
    sums = np.zeros((num_voxels, num_features), dtype=np.float64)
    for i in range(points.shape[0]):
        voxel = point_voxel_id[i]
        if voxel >= 0:
            for k in range(num_features):
                sums[voxel, k] += points[i, k]
    for v in range(num_voxels):
        for k in range(num_features):
            means[v, k] = sums[v, k] / counts[v]
        unpack_key(voxel_keys[v], coords_zyx, v)


def _voxel_table(config: VoxelGridConfig, num_keys: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """``(table_keys, table_voxels, dense_nx, dense_ny, bits)`` for up to ``num_keys`` voxels.

    A hash table of ``2**bits >= 2 * num_keys`` slots (int64 key + int32 voxel id, 12 bytes
    a slot), or, when the whole grid fits in that many bytes at 4 bytes a cell (PointPillars'
    214,272 pillars for a KITTI sweep), a dense int32 table of the grid: direct indexing, no
    probing, and never more memory than the hash table would take.
    """
    bits = table_bits(num_keys)
    capacity = 1 << bits
    cells = config.num_grid_cells
    if cells * 4 <= capacity * 12:
        z, y, x = config.grid_size_zyx
        return np.empty(1, dtype=np.int64), np.full(cells, -1, dtype=np.int32), x, y, bits
    return np.full(capacity, _EMPTY, dtype=np.int64), np.empty(capacity, dtype=np.int32), 0, 0, bits


def voxelize_numpy(points: np.ndarray, config: VoxelGridConfig, *, return_point_voxel_id: bool = False) -> Voxels:
    """Hard voxelization of a checked ``(N, C)`` float32 C-contiguous array on the CPU.

    Use :func:`av_pipeline.voxelize.voxelize`, which checks its input; this is the kernel
    wrapper behind it.
    """
    num_points = points.shape[0]
    max_points = config.max_num_points_per_voxel
    keys, num_in_range, num_nonfinite = _point_keys(points, config)
    table_keys, table_voxels, dense_nx, dense_ny, bits = _voxel_table(config, min(num_in_range, config.max_num_voxels))
    point_slot = np.empty(num_points, dtype=np.int64)
    point_voxel_id = np.empty(num_points if return_point_voxel_id else 0, dtype=np.int64)
    num_voxels, voxel_keys, counts, dropped_cap, dropped_full = _assign_hard(
        keys, table_keys, table_voxels, dense_nx, dense_ny, bits, config.max_num_voxels, max_points, point_slot,
        point_voxel_id,
    )
    voxels = np.zeros((num_voxels, max_points, points.shape[1]), dtype=np.float32)
    scatter = _scatter_points_parallel if _parallel_pays(num_points) else _scatter_points_serial
    scatter(points, point_slot, voxels)
    coords_zyx = np.empty((num_voxels, 3), dtype=np.int32)
    _unpack_keys(voxel_keys, coords_zyx)
    return Voxels(
        voxels=voxels,
        coords_zyx=coords_zyx,
        num_points=counts[:num_voxels].copy(),
        point_voxel_id=point_voxel_id if return_point_voxel_id else None,
        num_input_points=num_points,
        num_dropped_nonfinite=int(num_nonfinite),
        num_dropped_out_of_range=int(num_points - num_in_range - num_nonfinite),
        num_dropped_voxel_cap=int(dropped_cap),
        num_dropped_full_voxel=int(dropped_full),
    )


def voxelize_dynamic_numpy(points: np.ndarray, config: VoxelGridConfig) -> DynamicVoxels:
    """Dynamic voxelization of a checked ``(N, C)`` float32 C-contiguous array on the CPU."""
    num_points = points.shape[0]
    keys, num_in_range, num_nonfinite = _point_keys(points, config)
    table_keys, table_voxels, dense_nx, dense_ny, bits = _voxel_table(config, num_in_range)
    point_voxel_id = np.empty(num_points, dtype=np.int64)
    num_voxels, voxel_keys, counts = _assign_dynamic(keys, table_keys, table_voxels, dense_nx, dense_ny, bits, point_voxel_id)
    counts = counts[:num_voxels].copy()
    means = np.empty((num_voxels, points.shape[1]), dtype=np.float32)
    coords_zyx = np.empty((num_voxels, 3), dtype=np.int32)
    _mean_dynamic(points, point_voxel_id, counts, voxel_keys, means, coords_zyx)
    return DynamicVoxels(
        point_voxel_id=point_voxel_id,
        coords_zyx=coords_zyx,
        mean_features=means,
        num_points=counts,
        num_input_points=num_points,
        num_dropped_nonfinite=int(num_nonfinite),
        num_dropped_out_of_range=int(num_points - num_in_range - num_nonfinite),
    )
