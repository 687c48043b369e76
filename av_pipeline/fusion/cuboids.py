"""3D cuboids into a camera: projected corners, 2D boxes and truncation.

For each box the twelve edges are taken into the camera frame and clipped against the near
plane ``z = near_m`` (the part behind it is cut off, so a box reaching behind the camera
still has a finite projection). The projection of what is left, its convex hull in the
image plane, is the box's *footprint*:

- ``box2d_unclipped_px``: the footprint's enclosing rectangle, not limited to the image;
- ``box2d_px``: the enclosing rectangle of the footprint's part inside the image rectangle
  ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` (pixel edges); what a 2D annotator would draw
  around the visible part;
- ``truncation = 1 - area(footprint inside the image) / area(footprint)``: the fraction of
  the projected object outside the image (0: all inside, 1: nothing inside or the box is
  behind the camera);
- ``box_truncation = 1 - area(box2d_px) / area(box2d_unclipped_px)``: the same on the
  enclosing rectangles (cruder: the rectangles' corners are mostly empty).

For a pinhole camera the footprint is exact (straight edges stay straight, and the hull of
the projected clipped vertices is the projection of the clipped box). With distortion,
edges project to curves: each clipped edge is sampled at ``edge_samples`` points and the
hull of their projections is used; samples beyond the camera's valid region (see
:mod:`calibration.camera`) have no trustworthy pixel and are left out.

KITTI's ``truncated`` label is an annotator's estimate of the object fraction outside the
image; ``truncation`` measures the same idea geometrically and agrees only loosely (the
near-plane clipping and the hull differ from a person's judgement of the object's extent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ConfigError, ShapeError
from calibration import SE3, CameraModel
from calibration.camera import OUTSIDE_IMAGE, VISIBLE

__all__ = ["CUBOID_EDGES", "ProjectedCuboids", "project_cuboids"]

#: Corner index pairs of the twelve edges, for :meth:`Cuboids.corners_m` order: bottom
#: ring, top ring, verticals.
CUBOID_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]], dtype=np.int64
)

#: Default near plane (camera ``z`` in metres) the box edges are clipped at.
DEFAULT_NEAR_M = 0.1


@dataclass(frozen=True, eq=False)
class ProjectedCuboids:
    """``K`` cuboids projected into one camera (read-only arrays; definitions in the module docstring).

    Attributes:
        camera: camera name.
        near_m: the near plane the edges were clipped at.
        corners_uv_px: ``(K, 8, 2)`` float64 pixel of each corner (:meth:`Cuboids.corners_m`
            order); NaN for corners behind the near plane or beyond the valid region.
        corners_depth_m: ``(K, 8)`` float64 camera ``z`` of each corner.
        corners_status: ``(K, 8)`` uint8 :class:`calibration.ProjectionStatus` of each corner
            (``BEHIND_CAMERA`` means ``z <= near_m``).
        box2d_px: ``(K, 4)`` float64 ``x_min, y_min, x_max, y_max`` of the visible part,
            inside ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; NaN where nothing is visible.
        box2d_unclipped_px: ``(K, 4)`` float64 enclosing rectangle of the whole footprint;
            NaN for boxes entirely behind the near plane.
        truncation: ``(K,)`` float64 in ``[0, 1]``, footprint area outside the image.
        box_truncation: ``(K,)`` float64 in ``[0, 1]``, the same on enclosing rectangles.
        in_front: ``(K,)`` bool, all eight corners in front of the near plane.
        visible: ``(K,)`` bool, some of the footprint lies inside the image.
    """

    camera: str
    near_m: float
    corners_uv_px: np.ndarray
    corners_depth_m: np.ndarray
    corners_status: np.ndarray
    box2d_px: np.ndarray
    box2d_unclipped_px: np.ndarray
    truncation: np.ndarray
    box_truncation: np.ndarray
    in_front: np.ndarray
    visible: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.truncation)
        shapes = {
            "corners_uv_px": (k, 8, 2), "corners_depth_m": (k, 8), "corners_status": (k, 8), "box2d_px": (k, 4),
            "box2d_unclipped_px": (k, 4), "box_truncation": (k,), "in_front": (k,), "visible": (k,),
        }  # fmt: skip
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ShapeError(f"projected cuboids {name}: expected {shape}, got {value.shape}")
            value.setflags(write=False)
        self.truncation.setflags(write=False)

    def __len__(self) -> int:
        return len(self.truncation)


def project_cuboids(
    cuboids: Cuboids,
    camera: CameraModel,
    camera_SE3_frame: SE3,
    *,
    name: str = "camera",
    near_m: float = DEFAULT_NEAR_M,
    edge_samples: int = 16,
) -> ProjectedCuboids:
    """Project 3D boxes into a camera (module docstring).

    Args:
        cuboids: ``K`` boxes in some frame (``cuboids.frame``).
        camera: intrinsics.
        camera_SE3_frame: maps the boxes' frame into the camera frame.
        name: camera name recorded in the result.
        near_m: near plane (camera ``z``, metres, > 0) the edges are clipped at.
        edge_samples: points per clipped edge for distorted cameras (>= 2; pinhole cameras
            use the edge ends, which is exact).

    Returns:
        :class:`ProjectedCuboids`.

    Raises:
        ConfigError: ``near_m`` not positive and finite, or ``edge_samples < 2``.
    """
    near_m = float(near_m)
    if not (math.isfinite(near_m) and near_m > 0.0):
        raise ConfigError(f"near_m: expected a finite value > 0, got {near_m!r}")
    if int(edge_samples) < 2:
        raise ConfigError(f"edge_samples: expected >= 2, got {edge_samples!r}")
    count = len(cuboids)
    corners_camera = camera_SE3_frame.transform_points(cuboids.corners_m().reshape(-1, 3)).reshape(count, 8, 3)
    corners = camera.project(corners_camera.reshape(-1, 3), min_depth_m=near_m)

    # Clip each edge to z >= near_m: keep the part in front, cut at the plane.
    start = corners_camera[:, CUBOID_EDGES[:, 0]]  # (K, 12, 3)
    end = corners_camera[:, CUBOID_EDGES[:, 1]]
    z0, z1 = start[..., 2], end[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (z1 - near_m) / (z1 - z0)  # fraction from end to start where z = near_m
        on_plane = end + np.clip(crossing, 0.0, 1.0)[..., None] * (start - end)
    on_plane[..., 2] = near_m
    start = np.where(((z0 <= near_m) & (z1 > near_m))[..., None], on_plane, start)
    end = np.where(((z1 <= near_m) & (z0 > near_m))[..., None], on_plane, end)
    kept = (z0 > near_m) | (z1 > near_m)

    samples = 2 if camera.distortion_model == "pinhole" else int(edge_samples)
    fractions = np.linspace(0.0, 1.0, samples)
    points = start[:, :, None, :] + fractions[None, None, :, None] * (end - start)[:, :, None, :]  # (K, 12, S, 3)
    # Points on the plane sit at z = near_m exactly; project with a slightly nearer limit.
    projected = camera.project(points.reshape(-1, 3), min_depth_m=0.5 * near_m)
    uv = projected.uv_px.reshape(count, 12, samples, 2).copy()
    has_pixel = np.isin(projected.status, (VISIBLE, OUTSIDE_IMAGE)).reshape(count, 12, samples) & kept[:, :, None]
    uv[~has_pixel] = np.nan

    box2d_unclipped = np.full((count, 4), np.nan)
    box2d = np.full((count, 4), np.nan)
    area_all = np.zeros(count)
    area_inside = np.zeros(count)
    _footprint_kernel(
        np.ascontiguousarray(uv.reshape(count, 12 * samples, 2)),
        -0.5, -0.5, camera.width_px - 0.5, camera.height_px - 0.5,
        box2d_unclipped, box2d, area_all, area_inside,
    )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        truncation = np.where(area_all > 0.0, 1.0 - area_inside / area_all, 1.0)
        rect_all = _rect_area(box2d_unclipped)
        rect_inside = np.nan_to_num(_rect_area(box2d))
        box_truncation = np.where(rect_all > 0.0, 1.0 - rect_inside / rect_all, 1.0)
    return ProjectedCuboids(
        camera=name,
        near_m=near_m,
        corners_uv_px=corners.uv_px.reshape(count, 8, 2).copy(),
        corners_depth_m=corners.depth_m.reshape(count, 8).copy(),
        corners_status=corners.status.reshape(count, 8).copy(),
        box2d_px=box2d,
        box2d_unclipped_px=box2d_unclipped,
        truncation=np.clip(truncation, 0.0, 1.0),
        box_truncation=np.clip(box_truncation, 0.0, 1.0),
        in_front=np.all(corners_camera[..., 2] > near_m, axis=1),
        visible=area_inside > 0.0,
    )


def _rect_area(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)


# ---------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _cross(ox, oy, ax, ay, bx, by):  # pragma: no cover - numba
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@numba.njit(cache=True)
def _polygon_area(xs, ys, n):  # pragma: no cover - numba
    area = 0.0
    for i in range(n):
        j = (i + 1) % n
        area += xs[i] * ys[j] - xs[j] * ys[i]
    return 0.5 * abs(area)


@numba.njit(cache=True)
def _clip_half_plane(xs, ys, n, axis, bound, keep_below, out_x, out_y):  # pragma: no cover - numba
    """Sutherland-Hodgman against one axis-aligned half-plane; returns the new vertex count."""
    m = 0
    for i in range(n):
        j = (i + 1) % n
        a = xs[i] if axis == 0 else ys[i]
        b = xs[j] if axis == 0 else ys[j]
        a_in = a <= bound if keep_below else a >= bound
        b_in = b <= bound if keep_below else b >= bound
        if a_in:
            out_x[m] = xs[i]
            out_y[m] = ys[i]
            m += 1
        if a_in != b_in:
            s = (bound - a) / (b - a)
            out_x[m] = xs[i] + s * (xs[j] - xs[i])
            out_y[m] = ys[i] + s * (ys[j] - ys[i])
            m += 1
    return m


@numba.njit(cache=True)
def _footprint_kernel(uv, x_lo, y_lo, x_hi, y_hi, box_all, box_inside, area_all, area_inside):  # pragma: no cover - numba
    """Per box: convex hull of the finite points, its area and rectangle, and the same after clipping to the image."""
    boxes, count = uv.shape[0], uv.shape[1]
    for k in range(boxes):
        xs = np.empty(count)
        ys = np.empty(count)
        n = 0
        for p in range(count):
            if math.isfinite(uv[k, p, 0]) and math.isfinite(uv[k, p, 1]):
                xs[n] = uv[k, p, 0]
                ys[n] = uv[k, p, 1]
                n += 1
        if n == 0:
            continue
        box_all[k, 0] = xs[:n].min()
        box_all[k, 1] = ys[:n].min()
        box_all[k, 2] = xs[:n].max()
        box_all[k, 3] = ys[:n].max()
        if n < 3:
            continue
        # Andrew's monotone chain, points sorted by x then y.
        by_y = np.argsort(ys[:n], kind="mergesort")
        order = by_y[np.argsort(xs[:n][by_y], kind="mergesort")]
        sx = xs[:n][order]
        sy = ys[:n][order]
        hx = np.empty(2 * n + 1)
        hy = np.empty(2 * n + 1)
        h = 0
        for i in range(n):
            while h >= 2 and _cross(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], sx[i], sy[i]) <= 0.0:
                h -= 1
            hx[h] = sx[i]
            hy[h] = sy[i]
            h += 1
        lower = h + 1
        for i in range(n - 2, -1, -1):
            while h >= lower and _cross(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], sx[i], sy[i]) <= 0.0:
                h -= 1
            hx[h] = sx[i]
            hy[h] = sy[i]
            h += 1
        h -= 1  # the last point repeats the first
        if h < 3:
            continue
        area_all[k] = _polygon_area(hx, hy, h)
        # Clip the (convex, counter-clockwise) hull to the image rectangle.
        ax = np.empty(h + 8)
        ay = np.empty(h + 8)
        bx = np.empty(h + 8)
        by = np.empty(h + 8)
        m = _clip_half_plane(hx, hy, h, 0, x_lo, False, ax, ay)
        m = _clip_half_plane(ax, ay, m, 0, x_hi, True, bx, by)
        m = _clip_half_plane(bx, by, m, 1, y_lo, False, ax, ay)
        m = _clip_half_plane(ax, ay, m, 1, y_hi, True, bx, by)
        if m < 3:
            continue
        area = _polygon_area(bx, by, m)
        if area <= 0.0:
            continue
        area_inside[k] = area
        box_inside[k, 0] = bx[:m].min()
        box_inside[k, 1] = by[:m].min()
        box_inside[k, 2] = bx[:m].max()
        box_inside[k, 3] = by[:m].max()
