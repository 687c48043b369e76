"""Rotated-box geometry shared by the detector, evaluation and mining: BEV IoU, 3D IoU, NMS.

Boxes follow the product convention (centre, ``length`` along the heading, ``width``,
``height``, yaw about +z from +x), as arrays:

- BEV boxes ``(N, 5)`` float64: ``x, y, length, width, yaw``;
- 3D boxes ``(N, 7)`` float64: ``x, y, z, length, width, height, yaw`` (upright boxes).

The overlap of two rotated rectangles is computed exactly (Sutherland-Hodgman clipping of
one convex quadrilateral by the other, in float64) by numba kernels; a box with a zero side
has zero area and IoU 0 with everything. Checked against shapely polygons in the tests.

>>> import numpy as np
>>> a = np.array([[0.0, 0.0, 4.0, 2.0, 0.0]])
>>> b = np.array([[1.0, 0.0, 4.0, 2.0, 0.0], [0.0, 0.0, 2.0, 4.0, np.pi / 2]])
>>> np.round(bev_iou(a, b), 6).tolist()
[[0.6, 1.0]]
"""

from __future__ import annotations

import numba
import numpy as np

from av_pipeline.boxes import Cuboids
from calibration.checks import check_array

_EPS = 1e-12


def cuboids_to_bev(boxes: Cuboids) -> np.ndarray:
    """``(K, 5)`` ``x, y, length, width, yaw`` of ``boxes``."""
    return np.column_stack([boxes.centers_m[:, :2], boxes.sizes_m[:, :2], boxes.yaws_rad]).reshape(-1, 5)


def cuboids_to_3d(boxes: Cuboids) -> np.ndarray:
    """``(K, 7)`` ``x, y, z, length, width, height, yaw`` of ``boxes``."""
    return np.column_stack([boxes.centers_m, boxes.sizes_m, boxes.yaws_rad]).reshape(-1, 7)


def _check_boxes(boxes: object, name: str, width: int) -> np.ndarray:
    text = "(N, 5) [x, y, length, width, yaw]" if width == 5 else "(N, 7) [x, y, z, length, width, height, yaw]"
    arr = check_array(boxes, name, (None, width), shape_text=text)
    return np.ascontiguousarray(arr, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _corners(x, y, length, width, yaw, out):  # pragma: no cover - numba
    c, s = np.cos(yaw), np.sin(yaw)
    hl, hw = length / 2.0, width / 2.0
    # counter-clockwise seen from above
    lx = (hl, -hl, -hl, hl)
    ly = (hw, hw, -hw, -hw)
    for i in range(4):
        out[i, 0] = x + c * lx[i] - s * ly[i]
        out[i, 1] = y + s * lx[i] + c * ly[i]


@numba.njit(cache=True, nogil=True)
def _clip(poly, n, ax, ay, bx, by, out):  # pragma: no cover - numba
    """Keep the part of polygon ``poly[:n]`` left of the directed edge a->b; returns its size."""
    m = 0
    for i in range(n):
        px, py = poly[i, 0], poly[i, 1]
        qx, qy = poly[(i + 1) % n, 0], poly[(i + 1) % n, 1]
        sp = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        sq = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
        if sp >= 0.0:
            out[m, 0], out[m, 1] = px, py
            m += 1
        if (sp >= 0.0) != (sq >= 0.0):
            t = sp / (sp - sq)
            out[m, 0] = px + t * (qx - px)
            out[m, 1] = py + t * (qy - py)
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _intersection_area(a, b, ca, cb, buf0, buf1):  # pragma: no cover - numba
    if a[2] <= 0.0 or a[3] <= 0.0 or b[2] <= 0.0 or b[3] <= 0.0:
        return 0.0
    # bounding circles first: most pairs are far apart
    ra = 0.5 * np.sqrt(a[2] * a[2] + a[3] * a[3])
    rb = 0.5 * np.sqrt(b[2] * b[2] + b[3] * b[3])
    dx, dy = a[0] - b[0], a[1] - b[1]
    if dx * dx + dy * dy >= (ra + rb) * (ra + rb):
        return 0.0
    _corners(a[0], a[1], a[2], a[3], a[4], ca)
    _corners(b[0], b[1], b[2], b[3], b[4], cb)
    n = 4
    for i in range(4):
        buf0[i, 0], buf0[i, 1] = ca[i, 0], ca[i, 1]
    src, dst = buf0, buf1
    for i in range(4):
        n = _clip(src, n, cb[i, 0], cb[i, 1], cb[(i + 1) % 4, 0], cb[(i + 1) % 4, 1], dst)
        src, dst = dst, src
        if n < 3:
            return 0.0
    area = 0.0
    for i in range(n):
        j = (i + 1) % n
        area += src[i, 0] * src[j, 1] - src[j, 0] * src[i, 1]
    return max(0.5 * area, 0.0)


@numba.njit(cache=True, nogil=True)
def _bev_overlap_matrix(a, b, out_inter):  # pragma: no cover - numba
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    buf0 = np.empty((16, 2))
    buf1 = np.empty((16, 2))
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out_inter[i, j] = _intersection_area(a[i], b[j], ca, cb, buf0, buf1)


def bev_intersection(boxes_a: object, boxes_b: object) -> np.ndarray:
    """``(N, M)`` area (m^2) of the BEV overlap of every pair of ``(N, 5)`` and ``(M, 5)`` boxes."""
    a = _check_boxes(boxes_a, "boxes_a", 5)
    b = _check_boxes(boxes_b, "boxes_b", 5)
    inter = np.zeros((len(a), len(b)))
    if len(a) and len(b):
        _bev_overlap_matrix(a, b, inter)
    return inter


def _iou(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > _EPS, inter / np.maximum(union, _EPS), 0.0)
    return np.clip(iou, 0.0, 1.0)


def bev_iou(boxes_a: object, boxes_b: object) -> np.ndarray:
    """``(N, M)`` rotated BEV IoU of ``(N, 5)`` and ``(M, 5)`` boxes ``x, y, length, width, yaw``.

    Raises:
        ShapeError: wrong shapes or non-finite values.
    """
    a = _check_boxes(boxes_a, "boxes_a", 5)
    b = _check_boxes(boxes_b, "boxes_b", 5)
    inter = bev_intersection(a, b)
    return _iou(inter, a[:, 2] * a[:, 3], b[:, 2] * b[:, 3])


def iou_3d(boxes_a: object, boxes_b: object) -> np.ndarray:
    """``(N, M)`` 3D IoU of upright ``(N, 7)`` and ``(M, 7)`` boxes ``x, y, z, l, w, h, yaw``
    (BEV overlap area times the overlap of the z intervals, over the union of volumes).

    Raises:
        ShapeError: wrong shapes or non-finite values.
    """
    a = _check_boxes(boxes_a, "boxes_a", 7)
    b = _check_boxes(boxes_b, "boxes_b", 7)
    inter_bev = bev_intersection(a[:, [0, 1, 3, 4, 6]], b[:, [0, 1, 3, 4, 6]])
    top = np.minimum(a[:, None, 2] + a[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
    bottom = np.maximum(a[:, None, 2] - a[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2)
    inter = inter_bev * np.maximum(top - bottom, 0.0)
    return _iou(inter, a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5])


def cuboid_bev_iou(a: Cuboids, b: Cuboids) -> np.ndarray:
    """``(len(a), len(b))`` rotated BEV IoU of two cuboid sets (same frame assumed)."""
    return bev_iou(cuboids_to_bev(a), cuboids_to_bev(b))


def cuboid_iou_3d(a: Cuboids, b: Cuboids) -> np.ndarray:
    """``(len(a), len(b))`` 3D IoU of two cuboid sets (same frame assumed)."""
    return iou_3d(cuboids_to_3d(a), cuboids_to_3d(b))


@numba.njit(cache=True, nogil=True)
def _nms_kernel(boxes, order, threshold, keep):  # pragma: no cover - numba
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    buf0 = np.empty((16, 2))
    buf1 = np.empty((16, 2))
    n = order.shape[0]
    removed = np.zeros(n, dtype=np.bool_)
    count = 0
    for ii in range(n):
        if removed[ii]:
            continue
        i = order[ii]
        keep[count] = i
        count += 1
        area_i = boxes[i, 2] * boxes[i, 3]
        for jj in range(ii + 1, n):
            if removed[jj]:
                continue
            j = order[jj]
            inter = _intersection_area(boxes[i], boxes[j], ca, cb, buf0, buf1)
            union = area_i + boxes[j, 2] * boxes[j, 3] - inter
            if union > 1e-12 and inter / union > threshold:
                removed[jj] = True
    return count


def rotated_nms(boxes: object, scores: object, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression with rotated BEV IoU.

    Args:
        boxes: ``(N, 5)`` ``x, y, length, width, yaw``.
        scores: ``(N,)`` confidences; ties keep the lower index first.
        iou_threshold: a box whose IoU with a kept, higher-scored box is above this is removed.

    Returns:
        ``(K,)`` int64 indices of kept boxes, highest score first.
    """
    b = _check_boxes(boxes, "boxes", 5)
    s = check_array(scores, "scores", (len(b),), shape_text=f"({len(b)},)")
    order = np.argsort(-s, kind="stable").astype(np.int64)
    keep = np.empty(len(b), dtype=np.int64)
    count = _nms_kernel(b, order, float(iou_threshold), keep) if len(b) else 0
    return keep[:count]
