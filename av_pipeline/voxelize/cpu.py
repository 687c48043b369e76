"""Numba CPU kernels of hard and dynamic voxelization, and their typed wrappers.

Three passes, memory linear in the number of points (never in the grid size):

1. ``_point_keys_*``: each point's voxel key ``z << 42 | y << 21 | x`` from spconv's
   float32 arithmetic, or a code for "out of range" / "non-finite".
2. ``_assign_*`` (sequential, because first-hit order is sequential by definition): an
   open-addressing hash table of ``2**k >= 2 * voxels`` slots (int64 key + int32 id) maps a
   key to its voxel id; ids are handed out in first-hit order and each voxel remembers its
   first ``P`` points.
3. ``_gather_*`` (over voxels): copy the remembered points into the ``(M, P, C)`` output
   (zero-padded) or average them, and unpack the keys into ``z, y, x``.

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
#: Points (keys pass) or output floats (gather pass) from which the passes may run in parallel.
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
def _find_slot(table_keys, key, shift, mask):  # pragma: no cover - numba
    """Linear probing: the slot holding ``key`` or the empty slot where it belongs."""
    slot = _home_slot(key, shift)
    while True:
        held = table_keys[slot]
        if held == key or held == _EMPTY:
            return slot
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def _assign_hard(keys, bits, max_voxels, max_points, point_voxel_id):  # pragma: no cover - numba
    """First-hit voxel ids with both caps.

    Returns (num_voxels, voxel_keys (V,), first_points (V, P) int32, counts (V,) int32,
    num_dropped_voxel_cap, num_dropped_full); only the first num_voxels rows are valid.
    point_voxel_id (N,) int64 is filled (-1 for every point not in a voxel's first P).
    """
    capacity = np.int64(1) << bits
    mask = capacity - 1
    shift = np.uint64(64 - bits)
    table_keys = np.full(capacity, _EMPTY, dtype=np.int64)
    table_voxels = np.empty(capacity, dtype=np.int32)
    row_cap = min(max_voxels, capacity // 2)
    voxel_keys = np.empty(row_cap, dtype=np.int64)
    first_points = np.empty((row_cap, max_points), dtype=np.int32)
    counts = np.zeros(row_cap, dtype=np.int32)
    num_voxels = 0
    dropped_cap = 0
    dropped_full = 0
    last_key = _EMPTY
    last_voxel = -1
    for i in range(keys.shape[0]):
        key = keys[i]
        if key < 0:
            point_voxel_id[i] = -1
            continue
        if key == last_key:  # consecutive points of a sweep often share a voxel
            voxel = last_voxel
        else:
            slot = _find_slot(table_keys, key, shift, mask)
            if table_keys[slot] == _EMPTY:
                if num_voxels >= max_voxels:
                    # No new voxels once the cap is reached; the key is not remembered, so
                    # later points of this voxel are looked up (and dropped) again.
                    point_voxel_id[i] = -1
                    dropped_cap += 1
                    continue
                voxel = num_voxels
                num_voxels += 1
                table_keys[slot] = key
                table_voxels[slot] = voxel
                voxel_keys[voxel] = key
            else:
                voxel = table_voxels[slot]
            last_key = key
            last_voxel = voxel
        count = counts[voxel]
        if count < max_points:
            first_points[voxel, count] = i
            counts[voxel] = count + 1
            point_voxel_id[i] = voxel
        else:
            point_voxel_id[i] = -1
            dropped_full += 1
    return num_voxels, voxel_keys, first_points, counts, dropped_cap, dropped_full


@numba.njit(cache=True, inline="always")
def _gather_voxel(v, points_flat, first_points, counts, voxel_keys, voxels_flat, voxel_stride, num_features, coords_zyx):  # pragma: no cover
    count = counts[v]
    base = v * voxel_stride
    for j in range(count):
        src = first_points[v, j] * num_features
        dst = base + j * num_features
        for k in range(num_features):
            voxels_flat[dst + k] = points_flat[src + k]
    unpack_key(voxel_keys[v], coords_zyx, v)


@numba.njit(cache=True, parallel=True, nogil=True)
def _gather_hard_parallel(points, first_points, counts, voxel_keys, voxels, coords_zyx):  # pragma: no cover
    """voxels (M, P, C), zeros on entry, get the remembered points; coords_zyx (M, 3) from
    the keys. The padding is never written: np.zeros of a large output maps zero pages that
    are only faulted in when read, which halves the time for PointPillars' mostly empty
    (M, 32, C)."""
    num_voxels, max_points, num_features = voxels.shape
    # Flat views make each row copy and each padding a contiguous loop.
    points_flat = points.reshape(-1)
    voxels_flat = voxels.reshape(-1)
    for v in numba.prange(num_voxels):
        _gather_voxel(v, points_flat, first_points, counts, voxel_keys, voxels_flat, max_points * num_features, num_features, coords_zyx)


@numba.njit(cache=True, nogil=True)
def _gather_hard_serial(points, first_points, counts, voxel_keys, voxels, coords_zyx):  # pragma: no cover
    """:func:`_gather_hard_parallel` on one thread."""
    num_voxels, max_points, num_features = voxels.shape
    points_flat = points.reshape(-1)
    voxels_flat = voxels.reshape(-1)
    for v in range(num_voxels):
        _gather_voxel(v, points_flat, first_points, counts, voxel_keys, voxels_flat, max_points * num_features, num_features, coords_zyx)


@numba.njit(cache=True, nogil=True)
def _assign_dynamic(keys, bits, point_voxel_id):  # pragma: no cover - numba
    """First-hit voxel ids without caps. Returns (num_voxels, voxel_keys (V,), counts (V,))."""
    capacity = np.int64(1) << bits
    mask = capacity - 1
    shift = np.uint64(64 - bits)
    table_keys = np.full(capacity, _EMPTY, dtype=np.int64)
    table_voxels = np.empty(capacity, dtype=np.int32)
    voxel_keys = np.empty(capacity // 2, dtype=np.int64)
    counts = np.zeros(capacity // 2, dtype=np.int32)
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
            slot = _find_slot(table_keys, key, shift, mask)
            if table_keys[slot] == _EMPTY:
                voxel = num_voxels
                num_voxels += 1
                table_keys[slot] = key
                table_voxels[slot] = voxel
                voxel_keys[voxel] = key
            else:
                voxel = table_voxels[slot]
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


def voxelize_numpy(points: np.ndarray, config: VoxelGridConfig, *, return_point_voxel_id: bool = False) -> Voxels:
    """Hard voxelization of a checked ``(N, C)`` float32 C-contiguous array on the CPU.

    Use :func:`av_pipeline.voxelize.voxelize`, which checks its input; this is the kernel
    wrapper behind it.
    """
    num_points = points.shape[0]
    keys, num_in_range, num_nonfinite = _point_keys(points, config)
    bits = table_bits(min(num_in_range, config.max_num_voxels))
    point_voxel_id = np.empty(num_points, dtype=np.int64)
    num_voxels, voxel_keys, first_points, counts, dropped_cap, dropped_full = _assign_hard(
        keys, bits, config.max_num_voxels, config.max_num_points_per_voxel, point_voxel_id
    )
    voxels = np.zeros((num_voxels, config.max_num_points_per_voxel, points.shape[1]), dtype=np.float32)
    coords_zyx = np.empty((num_voxels, 3), dtype=np.int32)
    gather = _gather_hard_parallel if _parallel_pays(voxels.size) else _gather_hard_serial
    gather(points, first_points, counts, voxel_keys, voxels, coords_zyx)
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
    point_voxel_id = np.empty(num_points, dtype=np.int64)
    num_voxels, voxel_keys, counts = _assign_dynamic(keys, table_bits(num_in_range), point_voxel_id)
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
