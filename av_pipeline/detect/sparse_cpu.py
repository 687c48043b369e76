"""Sparse 3D convolutions for CPU inference: a numba rulebook and torch gather-matmul-scatter.

Why this exists: spconv 2.3.8's CPU convolutions (the PyPI wheel) give a different result on
every call when torch has more than one intra-op thread. Measured on one KITTI sweep: the
first submanifold layer's output differs between calls by up to 2.2 from the same input,
while spconv's rulebook (``spconv.pytorch.ops.get_indice_pairs``) followed by torch's
``index_select`` / ``mm`` / ``index_add_`` reproduces spconv's one-thread result bit for bit
with two threads, so the race is in spconv's CPU gather/scatter, not in its pairs. Running
spconv on one thread is correct but slow (about 470 ms for the sparse backbone on that
sweep); this module is the same arithmetic on all of torch's threads.

The rulebook is built here by numba rather than by spconv's single-threaded
``get_indice_pairs`` (about 90 ms per sweep): voxel coordinates become linear keys, sorted
once, and each kernel offset is one merge pass of the sorted output keys against the sorted
input keys, the offsets in parallel. Output voxels of a strided convolution come out sorted by ``(batch, z, y, x)``;
spconv orders them differently, which changes nothing after ``dense()``. Agreement with
spconv (one thread) is tested layer by layer.

Conventions (spconv's): coordinates ``(M, 4)`` int32 ``[batch, z, y, x]``; weights
``(C_out, k_z, k_y, k_x, C_in)``; the input voxel of output ``o`` under kernel offset
``k`` is at ``o * stride - padding + k`` (dilation 1). A submanifold convolution keeps the
input voxels as outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np
import torch
from torch import nn

_DIMS = 3


@dataclass(frozen=True)
class Rulebook:
    """Which input voxel feeds which output voxel under each kernel offset.

    Attributes:
        out_coords: ``(M, 4)`` int32 ``[batch, z, y, x]`` of the output voxels.
        out_shape_zyx: spatial shape of the output grid (voxels).
        pairs: per kernel offset (``k_z * k_y * k_x`` of them, z-major), ``(input_rows,
            output_rows)`` as int64 tensors of equal length; within one offset every
            output row appears at most once.
        subm: submanifold (outputs are the inputs, and the centre offset is the identity).
    """

    out_coords: np.ndarray
    out_shape_zyx: tuple[int, int, int]
    pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    subm: bool


@numba.njit(cache=True)
def _padded_keys(coords: np.ndarray, scale: np.ndarray, shift: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """Linear keys of ``coords * scale + shift`` in a grid of ``dims`` (batch-major)."""
    keys = np.empty(len(coords), np.int64)
    for i in range(len(coords)):
        z = np.int64(coords[i, 1]) * scale[0] + shift[0]
        y = np.int64(coords[i, 2]) * scale[1] + shift[1]
        x = np.int64(coords[i, 3]) * scale[2] + shift[2]
        keys[i] = ((np.int64(coords[i, 0]) * dims[0] + z) * dims[1] + y) * dims[2] + x
    return keys


@numba.njit(parallel=True, cache=True)
def _merge_pairs(
    in_keys: np.ndarray, in_rows: np.ndarray, out_keys: np.ndarray, out_rows: np.ndarray, deltas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(input row, output row)`` where ``in_key == out_key + deltas[k]``, per offset ``k``.

    ``in_keys`` and ``out_keys`` are sorted, so each kernel offset is one merge pass (linear,
    no hashing); offsets run in parallel, each writing its own row of the ``(K, M)`` results.
    Returns ``(pair_in (K, M), pair_out (K, M), counts (K,))``; row ``k`` is valid up to
    ``counts[k]``.
    """
    n, m, n_k = len(in_keys), len(out_keys), len(deltas)
    pair_in = np.empty((n_k, m), np.int64)
    pair_out = np.empty((n_k, m), np.int64)
    counts = np.zeros(n_k, np.int64)
    for k in numba.prange(n_k):
        i = 0
        c = 0
        for o in range(m):
            q = out_keys[o] + deltas[k]
            while i < n and in_keys[i] < q:
                i += 1
            if i == n:
                break
            if in_keys[i] == q:
                pair_in[k, c] = in_rows[i]
                pair_out[k, c] = out_rows[o]
                c += 1
        counts[k] = c
    return pair_in, pair_out, counts


def _pairs(
    coords: np.ndarray, out_coords: np.ndarray, out_sorted: bool, in_shape: np.ndarray, kernel: np.ndarray, stride: np.ndarray, padding: np.ndarray
) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Per kernel offset, ``(input rows, output rows)`` int64 tensors.

    Keys live in a grid padded by the kernel size on every side, so a neighbour outside the
    input grid gets a key no input voxel has, and ``key(o * stride) + delta`` is sorted
    whenever the outputs are.
    """
    pad = kernel.copy()
    out_shape = np.asarray(output_shape(in_shape, kernel, stride, padding), np.int64)
    dims = np.maximum(in_shape, out_shape * stride) + 2 * pad
    ones = np.ones(_DIMS, np.int64)
    in_keys = _padded_keys(coords, ones, pad, dims)
    in_order = np.argsort(in_keys, kind="stable")
    if out_sorted:
        out_rows = np.arange(len(out_coords), dtype=np.int64)
        out_keys = _padded_keys(out_coords, stride, pad, dims)
    else:  # submanifold: the outputs are the inputs
        out_rows = in_order
        out_keys = in_keys[in_order]
    kz, ky, kx = np.meshgrid(*(np.arange(k) for k in kernel), indexing="ij")
    deltas = (((kz.ravel() - padding[0]) * dims[1] + (ky.ravel() - padding[1])) * dims[2] + (kx.ravel() - padding[2])).astype(np.int64)
    pair_in, pair_out, counts = _merge_pairs(in_keys[in_order], in_order.astype(np.int64), out_keys, out_rows.astype(np.int64), deltas)
    return tuple((torch.from_numpy(pair_in[k, :c]), torch.from_numpy(pair_out[k, :c])) for k, c in enumerate(counts.tolist()))


@numba.njit(cache=True)
def _reached_keys(coords: np.ndarray, out_shape: np.ndarray, kernel: np.ndarray, stride: np.ndarray, padding: np.ndarray) -> np.ndarray:
    """Linear keys of the output voxels each input voxel reaches (with repeats, unsorted)."""
    per_voxel = kernel[0] * kernel[1] * kernel[2]
    keys = np.empty(len(coords) * per_voxel, np.int64)
    count = 0
    for i in range(len(coords)):
        b = np.int64(coords[i, 0])
        for kz in range(kernel[0]):
            nz = coords[i, 1] + padding[0] - kz
            if nz < 0 or nz % stride[0] != 0 or nz // stride[0] >= out_shape[0]:
                continue
            for ky in range(kernel[1]):
                ny = coords[i, 2] + padding[1] - ky
                if ny < 0 or ny % stride[1] != 0 or ny // stride[1] >= out_shape[1]:
                    continue
                for kx in range(kernel[2]):
                    nx = coords[i, 3] + padding[2] - kx
                    if nx < 0 or nx % stride[2] != 0 or nx // stride[2] >= out_shape[2]:
                        continue
                    keys[count] = ((b * out_shape[0] + nz // stride[0]) * out_shape[1] + ny // stride[1]) * out_shape[2] + nx // stride[2]
                    count += 1
    return keys[:count]


#: Output grids up to this many cells (batch included) find their voxels with a byte map, larger ones by sorting.
_BITMAP_CELLS = 1 << 26


def _output_keys(coords: np.ndarray, out_shape: np.ndarray, kernel: np.ndarray, stride: np.ndarray, padding: np.ndarray) -> np.ndarray:
    """Sorted unique linear keys of a strided convolution's output voxels."""
    keys = _reached_keys(coords, out_shape, kernel, stride, padding)
    batches = int(coords[:, 0].max()) + 1 if len(coords) else 1
    cells = batches * int(np.prod(out_shape))
    if cells > _BITMAP_CELLS:
        return np.unique(keys)
    marks = np.zeros(cells, np.uint8)
    marks[keys] = 1
    return np.flatnonzero(marks).astype(np.int64)


def _decode(keys: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    z_, y_, x_ = (int(s) for s in shape)
    out = np.empty((len(keys), 4), np.int32)
    out[:, 3] = keys % x_
    rest = keys // x_
    out[:, 2] = rest % y_
    rest //= y_
    out[:, 1] = rest % z_
    out[:, 0] = rest // z_
    return out


def output_shape(in_shape_zyx: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> tuple[int, int, int]:
    """Spatial shape after a (non-submanifold) convolution, spconv's formula (dilation 1)."""
    return tuple((int(s) + 2 * p - k) // st + 1 for s, k, st, p in zip(in_shape_zyx, kernel, stride, padding))  # type: ignore[return-value]


def voxel_order(coords_bzyx: np.ndarray, shape_zyx: Sequence[int]) -> np.ndarray:
    """Row order that sorts voxels by ``(batch, z, y, x)``: kernel neighbours end up close in
    memory, which makes the gathers and scatters of :func:`sparse_conv` cache-friendly."""
    coords = np.ascontiguousarray(coords_bzyx, dtype=np.int32).reshape(-1, 4)
    ones = np.ones(_DIMS, np.int64)
    return np.argsort(_padded_keys(coords, ones, np.zeros(_DIMS, np.int64), np.asarray(shape_zyx, np.int64)), kind="stable")


def build_rulebook(
    coords_bzyx: np.ndarray, in_shape_zyx: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], subm: bool
) -> Rulebook:
    """The :class:`Rulebook` of one convolution over the voxels ``coords_bzyx (N, 4)``.

    Args:
        coords_bzyx: ``(N, 4)`` int32 ``[batch, z, y, x]``, unique rows, inside ``in_shape_zyx``.
        in_shape_zyx: spatial shape of the input grid (voxels).
        kernel, stride, padding: three ints each, z, y, x.
        subm: submanifold convolution (outputs = inputs; stride must be 1).
    """
    coords = np.ascontiguousarray(coords_bzyx, dtype=np.int32).reshape(-1, 4)
    in_shape = np.asarray(in_shape_zyx, np.int64)
    kernel_a, stride_a, padding_a = (np.asarray(v, np.int64).reshape(_DIMS) for v in (kernel, stride, padding))
    if subm:
        out_shape = tuple(int(s) for s in in_shape)
        out_coords = coords
    else:
        out_shape = output_shape(in_shape, kernel_a, stride_a, padding_a)
        out_coords = _decode(_output_keys(coords, np.asarray(out_shape, np.int64), kernel_a, stride_a, padding_a), out_shape)
    if subm and not (np.all(stride_a == 1) and np.all(2 * padding_a == kernel_a - 1)):
        raise ValueError(f"submanifold convolution needs stride 1 and padding (kernel - 1) / 2, got stride {stride_a.tolist()} padding {padding_a.tolist()}")
    pairs = _pairs(coords, out_coords, not subm, in_shape, kernel_a, stride_a, padding_a)
    return Rulebook(out_coords=out_coords, out_shape_zyx=out_shape, pairs=tuple(pairs), subm=subm)


def sparse_conv(features: torch.Tensor, weight: torch.Tensor, rulebook: Rulebook, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``features (N, C_in)`` -> ``(M, C_out)`` by ``weight (C_out, k_z, k_y, k_x, C_in)``.

    Per kernel offset: gather the input rows, multiply, add into the output rows. With a
    submanifold rulebook the centre offset is one matrix product over all voxels.
    """
    c_out, c_in = weight.shape[0], weight.shape[-1]
    w = weight.reshape(c_out, -1, c_in)
    center = w.shape[1] // 2
    m = len(rulebook.out_coords)
    if rulebook.subm:
        out = torch.mm(features, w[:, center].T)
    else:
        out = features.new_zeros((m, c_out))
    for k, (rows_in, rows_out) in enumerate(rulebook.pairs):
        if (rulebook.subm and k == center) or len(rows_in) == 0:
            continue
        out.index_add_(0, rows_out, torch.mm(features.index_select(0, rows_in), w[:, k].T))
    if bias is not None:
        out += bias
    return out


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * _DIMS  # type: ignore[return-value]


def run_sparse_sequential(
    blocks: Sequence[nn.Module], features: torch.Tensor, coords_bzyx: np.ndarray, shape_zyx: Sequence[int], cache: dict[str, Rulebook]
) -> tuple[torch.Tensor, np.ndarray, tuple[int, int, int]]:
    """Run spconv ``SparseSequential`` blocks of ``(conv, norm, activation)`` on CPU.

    Each block's first module is a ``SubMConv3d`` or ``SparseConv3d`` (dilation 1, not
    transposed); the rest act on the feature rows. Submanifold rulebooks are shared
    through ``cache`` by the layers' ``indice_key``, as spconv does.

    Returns:
        ``(features (M, C), coords_bzyx (M, 4), shape_zyx)`` after the last block.
    """
    shape = tuple(int(s) for s in shape_zyx)
    coords = coords_bzyx
    for block in blocks:
        conv, *rest = list(block)
        if getattr(conv, "transposed", False) or getattr(conv, "inverse", False) or any(d != 1 for d in _triple(conv.dilation)):
            raise NotImplementedError(f"{type(conv).__name__}: only dilation-1, non-transposed convolutions")
        key = conv.indice_key if conv.subm else None
        rulebook = cache.get(key) if key else None
        if rulebook is None:
            rulebook = build_rulebook(coords, shape, _triple(conv.kernel_size), _triple(conv.stride), _triple(conv.padding), bool(conv.subm))
            if key:
                cache[key] = rulebook
        features = sparse_conv(features, conv.weight, rulebook, conv.bias)
        for module in rest:
            features = module(features)
        coords, shape = rulebook.out_coords, rulebook.out_shape_zyx
    return features, coords, shape


def to_dense(features: torch.Tensor, coords_bzyx: np.ndarray, shape_zyx: Sequence[int], batch_size: int) -> torch.Tensor:
    """Scatter ``features (M, C)`` at ``coords_bzyx`` into a dense ``(B, C, Z, Y, X)`` tensor."""
    z_, y_, x_ = (int(s) for s in shape_zyx)
    dense = features.new_zeros((batch_size, z_, y_, x_, features.shape[1]))
    idx = torch.from_numpy(np.asarray(coords_bzyx, np.int64))
    dense[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = features
    return dense.permute(0, 4, 1, 2, 3).contiguous()


def to_bev(features: torch.Tensor, coords_bzyx: np.ndarray, shape_zyx: Sequence[int], batch_size: int) -> torch.Tensor:
    """Height compression: ``features (M, C)`` -> a BEV map ``(B, C * Z, Y, X)``, channels-last.

    Channel ``c * Z + z`` holds feature ``c`` of height ``z`` (as ``to_dense(...).reshape(B,
    C * Z, Y, X)``); the map is written in place in channels-last memory, the layout the 2D
    convolutions run fastest in on CPU, so no copy follows.
    """
    z_, y_, x_ = (int(s) for s in shape_zyx)
    c = features.shape[1]
    buffer = features.new_zeros((batch_size, y_, x_, c, z_))
    idx = torch.from_numpy(np.asarray(coords_bzyx, np.int64))
    buffer[idx[:, 0], idx[:, 2], idx[:, 3], :, idx[:, 1]] = features
    return buffer.reshape(batch_size, y_, x_, c * z_).permute(0, 3, 1, 2)
