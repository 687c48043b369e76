"""Numba kernels for the per-ray work of the synthetic sensors (float32, one pass per array).

They are private to :mod:`av_pipeline.synthetic`; the callers validate shapes.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def rays_to_local(
    origins: np.ndarray,
    directions: np.ndarray,
    ray_index: np.ndarray,
    pair_index: np.ndarray,
    centers: np.ndarray,
    yaws: np.ndarray,
    slot_offsets: np.ndarray,
) -> np.ndarray:
    """``(M, 6)`` float32 rays in actor box frames (plus slot offsets).

    Ray ``m`` is world ray ``ray_index[m]`` expressed in the frame of the box pose
    ``pair_index[m]`` (``centers (P, 3)``, ``yaws (P,)``) and shifted by ``slot_offsets[m]``.
    """
    m = ray_index.shape[0]
    out = np.empty((m, 6), dtype=np.float32)
    for i in range(m):
        r = ray_index[i]
        p = pair_index[i]
        c = np.cos(yaws[p])
        s = np.sin(yaws[p])
        rx = origins[r, 0] - centers[p, 0]
        ry = origins[r, 1] - centers[p, 1]
        rz = origins[r, 2] - centers[p, 2]
        out[i, 0] = c * rx + s * ry + slot_offsets[i, 0]
        out[i, 1] = -s * rx + c * ry + slot_offsets[i, 1]
        out[i, 2] = rz + slot_offsets[i, 2]
        dx = directions[r, 0]
        dy = directions[r, 1]
        out[i, 3] = c * dx + s * dy
        out[i, 4] = -s * dx + c * dy
        out[i, 5] = directions[r, 2]
    return out


@njit(cache=True)
def shade_into(
    image: np.ndarray,
    pixel_index: np.ndarray,
    t_hit: np.ndarray,
    material: np.ndarray,
    normal: np.ndarray,
    directions: np.ndarray,
    albedo: np.ndarray,
    sun: np.ndarray,
    sky_horizon: np.ndarray,
    sky_zenith: np.ndarray,
    haze_distance_m: float,
) -> None:
    """Shade ray ``i`` into ``image[pixel_index[i]]`` (``image`` is ``(H * W, 3)`` uint8): albedo x
    (ambient + Lambert sun + sky light), hazed with distance; a vertical sky gradient where
    nothing was hit."""
    n = t_hit.shape[0]
    for i in range(n):
        p = pixel_index[i]
        if material[i] < 0 or not np.isfinite(t_hit[i]):
            e = directions[i, 2] * 3.0
            e = min(max(e, 0.0), 1.0)
            for ch in range(3):
                image[p, ch] = np.uint8(min(255.0, (sky_horizon[ch] * (1.0 - e) + sky_zenith[ch] * e) * 255.0 + 0.5))
            continue
        nx, ny, nz = normal[i, 0], normal[i, 1], normal[i, 2]
        if nx * directions[i, 0] + ny * directions[i, 1] + nz * directions[i, 2] > 0.0:
            nx, ny, nz = -nx, -ny, -nz
        lambert = nx * sun[0] + ny * sun[1] + nz * sun[2]
        lambert = min(max(lambert, 0.0), 1.0)
        shade_value = 0.42 + 0.58 * lambert + 0.08 * max(nz, 0.0)
        haze = np.exp(-t_hit[i] / haze_distance_m)
        for ch in range(3):
            value = albedo[material[i], ch] * shade_value * haze + sky_horizon[ch] * (1.0 - haze)
            image[p, ch] = np.uint8(min(max(value * 255.0 + 0.5, 0.0), 255.0))


@njit(cache=True)
def mark_cells(
    cells: np.ndarray, centers_xy: np.ndarray, radii: np.ndarray, origin_xy: np.ndarray, cell_m: float
) -> None:
    """Set ``cells[i, j] = True`` for every grid cell within ``radii[k] + cell_m`` of ``centers_xy[k]``
    (grid cell ``(i, j)`` covers ``origin + (i, j) * cell_m``)."""
    nx, ny = cells.shape
    for k in range(centers_xy.shape[0]):
        r = radii[k] + cell_m
        i0 = int(np.floor((centers_xy[k, 0] - r - origin_xy[0]) / cell_m))
        i1 = int(np.floor((centers_xy[k, 0] + r - origin_xy[0]) / cell_m))
        j0 = int(np.floor((centers_xy[k, 1] - r - origin_xy[1]) / cell_m))
        j1 = int(np.floor((centers_xy[k, 1] + r - origin_xy[1]) / cell_m))
        for i in range(max(i0, 0), min(i1, nx - 1) + 1):
            for j in range(max(j0, 0), min(j1, ny - 1) + 1):
                cells[i, j] = True


@njit(cache=True)
def camera_rays(rays_camera: np.ndarray, rotation: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``(N, 6)`` float32 world rays ``origin, rotation @ d`` for unit camera-frame directions ``d``."""
    n = rays_camera.shape[0]
    out = np.empty((n, 6), dtype=np.float32)
    for i in range(n):
        x, y, z = rays_camera[i, 0], rays_camera[i, 1], rays_camera[i, 2]
        for r in range(3):
            out[i, r] = origin[r]
            out[i, 3 + r] = rotation[r, 0] * x + rotation[r, 1] * y + rotation[r, 2] * z
    return out


@njit(cache=True)
def hit_lookup(primitive_ids: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(triangle, table[triangle])`` per ray from Open3D's ``primitive_ids`` (uint32, misses
    are 0xFFFFFFFF): a miss gives triangle -1 and ``table[-1]`` (the table's miss entry)."""
    n = primitive_ids.shape[0]
    triangle = np.empty(n, dtype=np.int64)
    value = np.empty(n, dtype=np.int64)
    last = table.shape[0] - 1
    for i in range(n):
        t = np.int64(primitive_ids[i])
        if t >= last:
            triangle[i] = -1
            value[i] = table[last]
        else:
            triangle[i] = t
            value[i] = table[t]
    return triangle, value
