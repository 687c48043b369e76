"""numba.cuda kernels of hard and dynamic voxelization, with the CPU kernels' outputs.

Pipeline (every kernel uses grid-stride loops, so any launch size is correct):

1. ``_keys_insert`` (per point): the voxel key in spconv's float32 arithmetic, inserted into
   an open-addressing hash table of ``2**k >= 2 N`` slots by compare-and-swap; each slot
   keeps its point count and its first (smallest) point index with atomics.
2. Voxel ids. Deterministic mode: a point is its voxel's first hit when the slot's first
   index is its own; an exclusive scan over those flags numbers the voxels in first-hit
   order, exactly as the CPU does. Fast mode: slots are numbered by an atomic counter, in
   no particular order (spconv's CUDA ``PointToVoxel`` does the same).
3. Points per voxel. Deterministic mode: the points are bucketed per voxel (counts, scan,
   scatter) and each bucket is sorted by point index, so a voxel holds its first ``P``
   points in input order and dynamic means are summed in input order (bit-identical to the
   CPU). Fast mode: points take slots by an atomic counter (hard) or add into float64 sums
   with atomics (dynamic).

Under ``NUMBA_ENABLE_CUDASIM=1`` the same kernels run in numba's simulator (small inputs
only: it interprets every thread in Python).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda
from numba.core import config as numba_config

from av_pipeline.voxelize.config import KEY_BITS_PER_AXIS, VoxelGridConfig
from av_pipeline.voxelize.records import DynamicVoxels, Voxels

#: True under ``NUMBA_ENABLE_CUDASIM=1`` (read by numba when it is first imported).
SIMULATOR = bool(numba_config.ENABLE_CUDASIM)

#: Threads per block; the simulator runs every thread as a Python thread, so keep it small.
THREADS_PER_BLOCK = 32 if SIMULATOR else 256
_MAX_BLOCKS = 2 if SIMULATOR else 8192
# The scan: each thread sums this many neighbours; a block scans a tile of _TILE items.
_ITEMS_PER_THREAD = 16 if SIMULATOR else 8
_TILE = THREADS_PER_BLOCK * _ITEMS_PER_THREAD

_EMPTY = -1
_NO_POINT = 2147483647
_KEY_BITS = KEY_BITS_PER_AXIS
_AXIS_MASK = (1 << KEY_BITS_PER_AXIS) - 1
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _blocks(num_items: int) -> int:
    return max(1, min(_MAX_BLOCKS, (num_items + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK))


# ----------------------------------------------------------------------------- device helpers
@cuda.jit(device=True, inline=True)
def _home_slot(key, shift):  # pragma: no cover - device code
    return np.int64((np.uint64(key) * _HASH_MULTIPLIER) >> np.uint64(shift))


@cuda.jit(device=True)
def _sift_down(values, lo, root, end):  # pragma: no cover - device code
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and values[lo + child + 1] > values[lo + child]:
            child += 1
        if values[lo + root] >= values[lo + child]:
            return
        tmp = values[lo + root]
        values[lo + root] = values[lo + child]
        values[lo + child] = tmp
        root = child


@cuda.jit(device=True)
def _heap_sort(values, lo, count):  # pragma: no cover - device code
    """Sort values[lo:lo + count] ascending in place (one thread, O(count log count))."""
    for start in range(count // 2 - 1, -1, -1):
        _sift_down(values, lo, start, count)
    for end in range(count - 1, 0, -1):
        tmp = values[lo]
        values[lo] = values[lo + end]
        values[lo + end] = tmp
        _sift_down(values, lo, 0, end)


# ----------------------------------------------------------------------------- kernels
@cuda.jit
def _init_table(table_keys, table_first, table_count, table_voxel):  # pragma: no cover
    for s in range(cuda.grid(1), table_keys.shape[0], cuda.gridsize(1)):
        table_keys[s] = _EMPTY
        table_first[s] = _NO_POINT
        table_count[s] = 0
        table_voxel[s] = -1


@cuda.jit
def _keys_insert(
    points, minx, miny, minz, vx, vy, vz, fnx, fny, fnz, shift, mask, keys, slots, table_keys, table_first, table_count, stats
):  # pragma: no cover - device code
    """The grid comes as float32 scalars (no host-to-device copies): range minimum, voxel
    size and voxels per axis."""
    num_points = points.shape[0]
    num_features = points.shape[1]
    for i in range(cuda.grid(1), num_points, cuda.gridsize(1)):
        residue = np.float32(0.0)
        for k in range(num_features):
            residue += points[i, k] - points[i, k]
        if not residue == 0.0:  # NaN or inf somewhere in the row
            keys[i] = -2
            slots[i] = -1
            cuda.atomic.add(stats, 0, 1)
            continue
        # float32 throughout, exactly spconv's floor((p - min) / voxel); for an integer n,
        # 0 <= floor(q) < n  <=>  0 <= q < n, and truncation is floor for q >= 0.
        qx = (points[i, 0] - minx) / vx
        qy = (points[i, 1] - miny) / vy
        qz = (points[i, 2] - minz) / vz
        if not (qx >= 0 and qx < fnx and qy >= 0 and qy < fny and qz >= 0 and qz < fnz):
            keys[i] = -1
            slots[i] = -1
            continue
        key = (np.int64(qz) << (2 * _KEY_BITS)) | (np.int64(qy) << _KEY_BITS) | np.int64(qx)
        slot = _home_slot(key, shift)
        while True:
            held = cuda.atomic.cas(table_keys, slot, _EMPTY, key)
            if held == _EMPTY or held == key:
                break
            slot = (slot + 1) & mask
        keys[i] = key
        slots[i] = slot
        cuda.atomic.min(table_first, slot, np.int32(i))
        cuda.atomic.add(table_count, slot, 1)


@cuda.jit
def _mark_first_hits(slots, table_first, is_first):  # pragma: no cover - device code
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        slot = slots[i]
        is_first[i] = 1 if slot >= 0 and table_first[slot] == i else 0


@cuda.jit
def _number_voxels_in_order(
    slots, keys, is_first, rank, max_voxels, table_count, table_voxel, coords_zyx, counts, stats
):  # pragma: no cover - device code
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        if is_first[i] == 0:
            continue
        slot = slots[i]
        voxel = rank[i]
        if voxel < max_voxels:
            table_voxel[slot] = voxel
            key = keys[i]
            coords_zyx[voxel, 0] = key >> (2 * _KEY_BITS)
            coords_zyx[voxel, 1] = (key >> _KEY_BITS) & _AXIS_MASK
            coords_zyx[voxel, 2] = key & _AXIS_MASK
            counts[voxel] = table_count[slot]
            cuda.atomic.add(stats, 3, table_count[slot])
        else:
            cuda.atomic.add(stats, 1, table_count[slot])


@cuda.jit
def _number_voxels_any_order(
    table_keys, table_count, max_voxels, next_voxel, table_voxel, coords_zyx, counts, stats
):  # pragma: no cover - device code
    for s in range(cuda.grid(1), table_keys.shape[0], cuda.gridsize(1)):
        key = table_keys[s]
        if key == _EMPTY:
            continue
        voxel = cuda.atomic.add(next_voxel, 0, 1)
        if voxel < max_voxels:
            table_voxel[s] = voxel
            coords_zyx[voxel, 0] = key >> (2 * _KEY_BITS)
            coords_zyx[voxel, 1] = (key >> _KEY_BITS) & _AXIS_MASK
            coords_zyx[voxel, 2] = key & _AXIS_MASK
            counts[voxel] = table_count[s]
            cuda.atomic.add(stats, 3, table_count[s])
        else:
            cuda.atomic.add(stats, 1, table_count[s])


@cuda.jit
def _bucket_points(slots, table_voxel, offsets, cursor, bucket, point_voxel_id):  # pragma: no cover
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        slot = slots[i]
        voxel = table_voxel[slot] if slot >= 0 else -1
        point_voxel_id[i] = -1
        if voxel >= 0:
            bucket[offsets[voxel] + cuda.atomic.add(cursor, voxel, 1)] = i


@cuda.jit
def _fill_voxels_in_order(points, offsets, bucket, voxels, num_points, point_voxel_id, stats):  # pragma: no cover
    max_points = voxels.shape[1]
    num_features = voxels.shape[2]
    for v in range(cuda.grid(1), voxels.shape[0], cuda.gridsize(1)):
        lo = offsets[v]
        count = offsets[v + 1] - lo
        _heap_sort(bucket, lo, count)
        kept = min(count, max_points)
        for j in range(kept):
            src = bucket[lo + j]
            point_voxel_id[src] = v
            for k in range(num_features):
                voxels[v, j, k] = points[src, k]
        for j in range(kept, max_points):
            for k in range(num_features):
                voxels[v, j, k] = 0.0
        num_points[v] = kept
        if count > kept:
            cuda.atomic.add(stats, 2, count - kept)


@cuda.jit
def _fill_voxels_any_order(points, slots, table_voxel, cursor, voxels, point_voxel_id, stats):  # pragma: no cover
    max_points = voxels.shape[1]
    num_features = voxels.shape[2]
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        slot = slots[i]
        voxel = table_voxel[slot] if slot >= 0 else -1
        point_voxel_id[i] = -1
        if voxel < 0:
            continue
        j = cuda.atomic.add(cursor, voxel, 1)
        if j < max_points:
            point_voxel_id[i] = voxel
            for k in range(num_features):
                voxels[voxel, j, k] = points[i, k]
        else:
            cuda.atomic.add(stats, 2, 1)


@cuda.jit
def _zero_fill(flat):  # pragma: no cover - device code
    for t in range(cuda.grid(1), flat.shape[0], cuda.gridsize(1)):
        flat[t] = 0


@cuda.jit
def _clamp_counts(counts, max_points):  # pragma: no cover - device code
    for v in range(cuda.grid(1), counts.shape[0], cuda.gridsize(1)):
        counts[v] = min(counts[v], max_points)


@cuda.jit
def _means_in_order(points, offsets, bucket, point_voxel_id, means):  # pragma: no cover
    num_features = means.shape[1]
    for v in range(cuda.grid(1), means.shape[0], cuda.gridsize(1)):
        lo = offsets[v]
        count = offsets[v + 1] - lo
        _heap_sort(bucket, lo, count)
        for k in range(num_features):
            total = np.float64(0.0)
            for j in range(count):
                total += np.float64(points[bucket[lo + j], k])
            means[v, k] = np.float32(total / count)
        for j in range(count):
            point_voxel_id[bucket[lo + j]] = v


@cuda.jit
def _sum_any_order(points, slots, table_voxel, point_voxel_id, sums):  # pragma: no cover
    num_features = points.shape[1]
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        slot = slots[i]
        voxel = table_voxel[slot] if slot >= 0 else -1
        point_voxel_id[i] = voxel
        if voxel >= 0:
            for k in range(num_features):
                cuda.atomic.add(sums, (voxel, k), np.float64(points[i, k]))


@cuda.jit
def _divide_sums(sums, counts, means):  # pragma: no cover - device code
    num_features = means.shape[1]
    for v in range(cuda.grid(1), means.shape[0], cuda.gridsize(1)):
        for k in range(num_features):
            means[v, k] = np.float32(sums[v, k] / counts[v])


# ----------------------------------------------------------------------------- scan
@cuda.jit
def _block_scan(values, out, block_sums):  # pragma: no cover - device code
    """Exclusive scan of each block's tile of ``values`` (int64) into ``out``: every thread
    sums ``_ITEMS_PER_THREAD`` neighbours, the block scans those sums in shared memory
    (Hillis-Steele), then every thread writes its items."""
    shared = cuda.shared.array(THREADS_PER_BLOCK, dtype=np.int64)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * _TILE + tid * _ITEMS_PER_THREAD
    num_items = values.shape[0]
    own = 0
    for j in range(_ITEMS_PER_THREAD):
        if base + j < num_items:
            own += values[base + j]
    shared[tid] = own
    cuda.syncthreads()
    offset = 1
    while offset < THREADS_PER_BLOCK:
        add = shared[tid - offset] if tid >= offset else 0
        cuda.syncthreads()
        shared[tid] += add
        cuda.syncthreads()
        offset *= 2
    running = shared[tid] - own
    for j in range(_ITEMS_PER_THREAD):
        if base + j < num_items:
            value = values[base + j]
            out[base + j] = running
            running += value
    if tid == THREADS_PER_BLOCK - 1:
        block_sums[cuda.blockIdx.x] = shared[tid]


@cuda.jit
def _add_block_offsets(out, block_offsets):  # pragma: no cover - device code
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] += block_offsets[i // _TILE]


def _exclusive_scan(values: Any, out: Any, device: DeviceContext) -> None:
    """out[i] = sum(values[:i]) for int64 device arrays of equal length (one block per
    tile of ``_TILE`` items, then a scan of the block sums, recursively)."""
    num_items = values.shape[0]
    if num_items == 0:
        return
    num_blocks = (num_items + _TILE - 1) // _TILE
    stream = device.stream
    block_sums = device.empty(num_blocks, np.int64)
    _block_scan[num_blocks, THREADS_PER_BLOCK, stream](values, out, block_sums)
    if num_blocks > 1:
        block_offsets = device.empty(num_blocks, np.int64)
        _exclusive_scan(block_sums, block_offsets, device)
        _add_block_offsets[_blocks(num_items), THREADS_PER_BLOCK, stream](out, block_offsets)


def _scan_with_total(values: Any, device: DeviceContext) -> tuple[Any, int]:
    """``(offsets (n + 1,) int64 device array, total)``: the exclusive scan and the sum
    (the one value read back, which waits for the stream)."""
    num_items = values.shape[0]
    if num_items == 0:
        return device.zeros(1, np.int64), 0
    offsets = device.empty(num_items + 1, np.int64)
    _exclusive_scan(values, offsets[:num_items], device)
    _write_total[1, 1, device.stream](offsets, values)
    total = offsets[num_items : num_items + 1].copy_to_host(stream=device.stream)
    device.stream.synchronize()
    return offsets, int(total[0])


@cuda.jit
def _write_total(offsets, values):  # pragma: no cover - device code
    last = values.shape[0] - 1
    offsets[last + 1] = offsets[last] + values[last]


class DeviceContext:
    """Where the kernels run: a CUDA stream, and how device memory is allocated.

    Args:
        stream: the stream for every launch and copy (default: a new one).
        allocate: ``allocate(shape, dtype) -> device array``; by default numba's allocator.
            The dispatcher passes one backed by torch's caching allocator for torch input,
            so that a call does not pay ``cudaMalloc``/``cudaFree``.
    """

    def __init__(self, stream: Any = None, allocate: Any = None) -> None:
        self.stream = stream if stream is not None else cuda.stream()
        self._allocate = allocate

    def empty(self, shape: Any, dtype: Any) -> Any:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if self._allocate is None or int(np.prod(shape)) == 0:
            return cuda.device_array(shape, dtype=dtype, stream=self.stream)
        return self._allocate(shape, dtype)

    def zeros(self, shape: Any, dtype: Any) -> Any:
        array = self.empty(shape, dtype)
        if array.size:
            _zero_fill[_blocks(array.size), THREADS_PER_BLOCK, self.stream](array.reshape(array.size))
        return array


# ----------------------------------------------------------------------------- wrappers
class _HashedPoints:
    """Stage 1 on the device: per-point keys and slots, and the filled hash table."""

    def __init__(self, points: Any, config: VoxelGridConfig, device: DeviceContext) -> None:
        num_points = points.shape[0]
        bits = max(4, int(2 * max(num_points, 1) - 1).bit_length())
        capacity = 1 << bits
        range_min, voxel_size, grid_size = config.kernel_params()
        self.device = device
        stream = device.stream
        self.keys = device.empty(num_points, np.int64)
        self.slots = device.empty(num_points, np.int64)
        self.table_keys = device.empty(capacity, np.int64)
        self.table_first = device.empty(capacity, np.int32)
        self.table_count = device.empty(capacity, np.int64)
        self.table_voxel = device.empty(capacity, np.int64)
        # stats: [non-finite points, points dropped by the voxel cap, points beyond P,
        # points in kept voxels]
        self.stats = device.zeros(4, np.int64)
        threads = THREADS_PER_BLOCK
        _init_table[_blocks(capacity), threads, stream](self.table_keys, self.table_first, self.table_count, self.table_voxel)
        if num_points:
            _keys_insert[_blocks(num_points), threads, stream](
                points,
                *(np.float32(v) for v in range_min),
                *(np.float32(v) for v in voxel_size),
                *(np.float32(v) for v in grid_size),
                np.int64(64 - bits),
                np.int64(capacity - 1),
                self.keys,
                self.slots,
                self.table_keys,
                self.table_first,
                self.table_count,
                self.stats,
            )

    def number_voxels(self, max_voxels: int, deterministic: bool) -> tuple[Any, Any, int]:
        """Voxel ids per slot; returns ``(coords_zyx (M, 3) int32, counts (M,) int64, M)``
        where counts are all points of each voxel (before the per-voxel cap)."""
        device, threads = self.device, THREADS_PER_BLOCK
        stream = device.stream
        num_points = self.keys.shape[0]
        if deterministic:
            is_first = device.empty(num_points, np.int64)
            if num_points:
                _mark_first_hits[_blocks(num_points), threads, stream](self.slots, self.table_first, is_first)
            rank, total = _scan_with_total(is_first, device)
        else:
            next_voxel = device.zeros(1, np.int64)
        row_cap = max(1, min(max_voxels, num_points))
        coords_zyx = device.empty((row_cap, 3), np.int32)
        counts = device.empty(row_cap, np.int64)
        if deterministic:
            if num_points:
                _number_voxels_in_order[_blocks(num_points), threads, stream](
                    self.slots, self.keys, is_first, rank, max_voxels, self.table_count, self.table_voxel,
                    coords_zyx, counts, self.stats,
                )
        else:
            capacity = self.table_keys.shape[0]
            _number_voxels_any_order[_blocks(capacity), threads, stream](
                self.table_keys, self.table_count, max_voxels, next_voxel, self.table_voxel, coords_zyx, counts,
                self.stats,
            )
            total = int(next_voxel.copy_to_host(stream=stream)[0])  # waits for the stream
        num_voxels = min(total, max_voxels)
        return coords_zyx[:num_voxels], counts[:num_voxels], num_voxels

    def bucket(self, counts: Any, num_voxels: int) -> tuple[Any, Any, Any]:
        """Points grouped by voxel: ``(offsets (M + 1,), bucket (sum counts,), point_voxel_id)``,
        point ids reset to -1."""
        device = self.device
        num_points = self.keys.shape[0]
        offsets, total = _scan_with_total(counts, device)
        cursor = device.zeros(max(num_voxels, 1), np.int64)
        bucket = device.empty(max(total, 1), np.int64)
        point_voxel_id = device.empty(num_points, np.int64)
        if num_points:
            _bucket_points[_blocks(num_points), THREADS_PER_BLOCK, device.stream](
                self.slots, self.table_voxel, offsets, cursor, bucket, point_voxel_id
            )
        return offsets, bucket, point_voxel_id

    def stats_host(self) -> np.ndarray:
        stats = self.stats.copy_to_host(stream=self.device.stream)
        self.device.stream.synchronize()
        return stats


def _as_device_points(points: Any, device: DeviceContext) -> Any:
    if isinstance(points, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(points), stream=device.stream)
    return points


def voxelize_cuda(
    points: Any,
    config: VoxelGridConfig,
    *,
    return_point_voxel_id: bool = False,
    deterministic: bool = True,
    device: DeviceContext | None = None,
) -> Voxels:
    """Hard voxelization on the GPU of a checked ``(N, C)`` float32 array.

    Args:
        points: ``(N, C)`` float32, a numba device array (or a numpy array, copied over).
        config: the grid and caps.
        return_point_voxel_id: also return the ``(N,)`` per-point voxel ids.
        deterministic: number voxels in first-hit order and keep each voxel's first ``P``
            points in input order (identical to the CPU); otherwise voxel order, which voxels
            survive a binding ``max_num_voxels`` and which points of an overfull voxel are
            kept (and their order) are decided by atomics, as in spconv's CUDA path.
        device: the stream and allocator (default: a new stream, numba's allocator).

    Returns:
        :class:`Voxels` whose arrays are numba device arrays.
    """
    device = device if device is not None else DeviceContext()
    stream = device.stream
    points = _as_device_points(points, device)
    num_points, num_features = points.shape
    max_points = config.max_num_points_per_voxel
    hashed = _HashedPoints(points, config, device)
    coords_zyx, counts, num_voxels = hashed.number_voxels(config.max_num_voxels, deterministic)
    threads = THREADS_PER_BLOCK
    if deterministic:
        voxels = device.empty((num_voxels, max_points, num_features), np.float32)
        offsets, bucket, point_voxel_id = hashed.bucket(counts, num_voxels)
        num_points_out = device.empty(num_voxels, np.int32)
        if num_voxels:
            _fill_voxels_in_order[_blocks(num_voxels), threads, stream](
                points, offsets, bucket, voxels, num_points_out, point_voxel_id, hashed.stats
            )
    else:
        voxels = device.zeros((num_voxels, max_points, num_features), np.float32)
        point_voxel_id = device.empty(num_points, np.int64)
        cursor = device.zeros(max(num_voxels, 1), np.int32)
        if num_points:
            _fill_voxels_any_order[_blocks(num_points), threads, stream](
                points, hashed.slots, hashed.table_voxel, cursor, voxels, point_voxel_id, hashed.stats
            )
        num_points_out = cursor[:num_voxels]
        if num_voxels:
            _clamp_counts[_blocks(num_voxels), threads, stream](num_points_out, max_points)
    nonfinite, dropped_cap, dropped_full, in_voxels = (int(v) for v in hashed.stats_host())
    return Voxels(
        voxels=voxels,
        coords_zyx=coords_zyx,
        num_points=num_points_out,
        point_voxel_id=point_voxel_id if return_point_voxel_id else None,
        num_input_points=int(num_points),
        num_dropped_nonfinite=nonfinite,
        num_dropped_out_of_range=int(num_points) - nonfinite - dropped_cap - in_voxels,
        num_dropped_voxel_cap=dropped_cap,
        num_dropped_full_voxel=dropped_full,
    )


def voxelize_dynamic_cuda(
    points: Any, config: VoxelGridConfig, *, deterministic: bool = True, device: DeviceContext | None = None
) -> DynamicVoxels:
    """Dynamic voxelization on the GPU of a checked ``(N, C)`` float32 array.

    ``deterministic=True`` gives the CPU's voxel order and bit-identical means; otherwise the
    voxel order is arbitrary and the float64 sums are added in arbitrary order (means may
    differ from the CPU's in the last float32 bit).

    Returns:
        :class:`DynamicVoxels` whose arrays are numba device arrays.
    """
    device = device if device is not None else DeviceContext()
    stream = device.stream
    points = _as_device_points(points, device)
    num_points, num_features = points.shape
    hashed = _HashedPoints(points, config, device)
    coords_zyx, counts, num_voxels = hashed.number_voxels(max(num_points, 1), deterministic)
    means = device.empty((num_voxels, num_features), np.float32)
    threads = THREADS_PER_BLOCK
    if deterministic:
        offsets, bucket, point_voxel_id = hashed.bucket(counts, num_voxels)
        if num_voxels:
            _means_in_order[_blocks(num_voxels), threads, stream](points, offsets, bucket, point_voxel_id, means)
    else:
        point_voxel_id = device.empty(num_points, np.int64)
        sums = device.zeros((max(num_voxels, 1), num_features), np.float64)
        if num_points:
            _sum_any_order[_blocks(num_points), threads, stream](points, hashed.slots, hashed.table_voxel, point_voxel_id, sums)
        if num_voxels:
            _divide_sums[_blocks(num_voxels), threads, stream](sums, counts, means)
    num_points_out = device.empty(num_voxels, np.int32)
    if num_voxels:
        _copy_counts[_blocks(num_voxels), threads, stream](counts, num_points_out)
    nonfinite, _, _, in_voxels = (int(v) for v in hashed.stats_host())
    return DynamicVoxels(
        point_voxel_id=point_voxel_id,
        coords_zyx=coords_zyx,
        mean_features=means,
        num_points=num_points_out,
        num_input_points=int(num_points),
        num_dropped_nonfinite=nonfinite,
        num_dropped_out_of_range=int(num_points) - nonfinite - in_voxels,
    )


@cuda.jit
def _copy_counts(counts, out):  # pragma: no cover - device code
    for v in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[v] = counts[v]

