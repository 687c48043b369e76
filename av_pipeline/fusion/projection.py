"""LiDAR points into cameras: per-point pixel, depth and visibility.

:func:`project_to_cameras` transforms and projects in one numba pass per camera with the
exact semantics of :meth:`CameraModel.project <calibration.CameraModel.project>` (pinhole,
radial-tangential and fisheye models, the valid region, the status codes and their
precedence, NaN pixels where no trustworthy pixel exists), computed in float64 on float32
input. Pixels and depths are stored as float32 (1e-4 px at 1600 px, 8 um at 100 m): half the
memory of float64, which matters for six cameras per sweep (writing fresh output memory is a
large part of the cost); statuses come from the float64 values.

Which transform to pass is the caller's choice and the caller's responsibility: for an
image taken at another time than the sweep it is the motion-compensated
``camera(t_image)_SE3_lidar(t_sweep)`` (:func:`~av_pipeline.fusion.motion.sensor_SE3_lidar_across_time`),
for one instant the rig's static ``camera_SE3_lidar``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numba
import numpy as np

from av_pipeline.errors import ConfigError, ShapeError
from calibration import MIN_DEPTH_M, SE3, CameraModel
from calibration.camera import BEHIND_CAMERA, NOT_FINITE, OUTSIDE_IMAGE, OUTSIDE_VALID_REGION, VISIBLE

__all__ = ["MAX_POINT_COLUMNS", "PointProjection", "as_se3", "pixel_indices", "project_points", "project_to_cameras"]

_MODEL_CODES = {"pinhole": 0, "radtan": 1, "fisheye": 2}


@dataclass(frozen=True, eq=False)
class PointProjection:
    """``N`` LiDAR points projected into one camera (read-only arrays).

    Attributes:
        camera: camera name.
        model: the camera's intrinsics (image size, focal lengths, distortion).
        camera_SE3_lidar: the transform the points were projected with.
        uv_px: ``(N, 2)`` float32 pixel coordinates; NaN where ``status`` is
            ``BEHIND_CAMERA``, ``OUTSIDE_VALID_REGION`` or ``NOT_FINITE``, as in
            :class:`calibration.Projection`. The centre of pixel ``(col, row)`` is at
            ``(u, v) = (col, row)``.
        depth_m: ``(N,)`` float32 camera-frame ``z`` of each point (also for invalid ones).
        status: ``(N,)`` uint8 :class:`calibration.ProjectionStatus` codes.
    """

    camera: str
    model: CameraModel
    camera_SE3_lidar: SE3
    uv_px: np.ndarray
    depth_m: np.ndarray
    status: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.status)
        for name, shape in (("uv_px", (count, 2)), ("depth_m", (count,)), ("status", (count,))):
            value = getattr(self, name)
            if value.shape != shape:
                raise ShapeError(f"projection '{self.camera}' {name}: expected {shape}, got {value.shape}")
            value.setflags(write=False)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def valid(self) -> np.ndarray:
        """``(N,)`` bool: the point is in front of the camera and lands on the image."""
        return self.status == VISIBLE

    @property
    def visible_indices(self) -> np.ndarray:
        """``(M,)`` int64 indices of the valid points."""
        return np.flatnonzero(self.status == VISIBLE)


def project_points(
    points_lidar: np.ndarray,
    camera: CameraModel,
    camera_SE3_lidar: SE3 | np.ndarray,
    *,
    name: str = "camera",
    min_depth_m: float = MIN_DEPTH_M,
) -> PointProjection:
    """Transform LiDAR points into one camera and project them.

    Args:
        points_lidar: ``(N, 3+)`` float32 (or float64) points; columns past ``x, y, z`` are
            ignored. NaN/inf rows get ``NOT_FINITE``. Points stored as columns, ``(3, N)``
            or ``(4, N)`` with more than :data:`MAX_POINT_COLUMNS` columns, are refused
            (pass ``points_lidar.T``).
        camera: intrinsics.
        camera_SE3_lidar: maps the points into the camera frame (x right, y down, z
            forward): an :class:`~calibration.SE3`, or a ``(4, 4)`` homogeneous / ``(3, 4)``
            ``[R | t]`` matrix such as mmdet3d's ``lidar2cam`` (the rotation must be
            orthonormal; see :meth:`SE3.from_matrix <calibration.SE3.from_matrix>`).
        name: camera name recorded in the result.
        min_depth_m: points with camera ``z <= min_depth_m`` are ``BEHIND_CAMERA``.

    Returns:
        :class:`PointProjection` with ``N`` rows.

    Raises:
        ShapeError: ``points_lidar`` is not ``(N, 3+)`` float32/float64, or looks transposed;
            ``camera_SE3_lidar`` is neither an ``SE3`` nor a ``(4, 4)`` / ``(3, 4)`` matrix.
        CalibrationError: a matrix whose rotation is not orthonormal or whose last row is
            not ``[0, 0, 0, 1]``.
        ConfigError: ``min_depth_m`` negative or not finite.
    """
    points = check_points_lidar(points_lidar)
    camera_SE3_lidar = as_se3(camera_SE3_lidar, "camera_SE3_lidar")
    min_depth_m = float(min_depth_m)
    if not (math.isfinite(min_depth_m) and min_depth_m >= 0.0):
        raise ConfigError(f"min_depth_m: expected a finite value >= 0, got {min_depth_m!r}")
    count = len(points)
    uv_px = np.empty((count, 2), dtype=np.float32)
    depth_m = np.empty(count, dtype=np.float32)
    status = np.empty(count, dtype=np.uint8)
    coefficients = np.zeros(8)
    if camera.distortion_model == "radtan":
        coefficients[:] = camera._radtan_coefficients()
    elif camera.distortion_model == "fisheye":
        coefficients[:4] = camera.distortion
    _project_kernel(
        points,
        np.ascontiguousarray(camera_SE3_lidar.rotation),
        np.ascontiguousarray(camera_SE3_lidar.translation),
        camera.fx_px,
        camera.fy_px,
        camera.cx_px,
        camera.cy_px,
        float(camera.width_px),
        float(camera.height_px),
        _MODEL_CODES[camera.distortion_model],
        coefficients,
        camera.max_valid_radius**2,
        min_depth_m,
        uv_px,
        depth_m,
        status,
    )
    return PointProjection(name, camera, camera_SE3_lidar, uv_px, depth_m, status)


def project_to_cameras(
    points_lidar: np.ndarray,
    cameras: Mapping[str, CameraModel],
    camera_SE3_lidar: Mapping[str, SE3 | np.ndarray],
    *,
    min_depth_m: float = MIN_DEPTH_M,
) -> dict[str, PointProjection]:
    """Project one sweep into several cameras.

    Args:
        points_lidar: ``(N, 3+)`` float32 points (see :func:`project_points`).
        cameras: camera name -> intrinsics (e.g. ``{n: c.model for n, c in rig.cameras.items()}``).
        camera_SE3_lidar: camera name -> transform (``SE3`` or matrix, see :func:`project_points`);
            one projection per entry, in this order.
        min_depth_m: see :func:`project_points`.

    Returns:
        Camera name -> :class:`PointProjection` (``N`` rows each).

    Raises:
        ConfigError: a camera in ``camera_SE3_lidar`` has no intrinsics in ``cameras``.
    """
    missing = [name for name in camera_SE3_lidar if name not in cameras]
    if missing:
        raise ConfigError(f"camera_SE3_lidar: no intrinsics for cameras {missing}; known cameras: {list(cameras)}")
    points = check_points_lidar(points_lidar)
    return {
        name: project_points(points, cameras[name], transform, name=name, min_depth_m=min_depth_m)
        for name, transform in camera_SE3_lidar.items()
    }


def pixel_indices(uv_px: np.ndarray, width_px: int, height_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` int64 of the pixels containing ``uv_px`` ``(M, 2)`` (``floor(v + 0.5), floor(u + 0.5)``), clipped to the image.

    The clip matters for float32 pixels: ``u`` just below ``W - 0.5`` may round to it.
    """
    uv = np.asarray(uv_px, dtype=np.float64)  # + 0.5 in float64, as the kernels do
    cols = np.clip(np.floor(uv[:, 0] + 0.5), 0, width_px - 1).astype(np.int64)
    rows = np.clip(np.floor(uv[:, 1] + 0.5), 0, height_px - 1).astype(np.int64)
    return rows, cols


#: More columns than any point layout has (x, y, z, intensity, ring, time, colours, ...): an
#: array with 3 or 4 rows and more columns than this holds points as columns.
MAX_POINT_COLUMNS = 16


def check_points_lidar(points_lidar: np.ndarray, name: str = "points_lidar") -> np.ndarray:
    """Return ``points_lidar`` as a C-contiguous ``(N, 3+)`` float32/float64 array, or raise ``ShapeError``.

    A ``(3, N)`` or ``(4, N)`` array with ``N > MAX_POINT_COLUMNS`` is refused rather than
    read as 3 or 4 points with ``N`` columns; the message names the fix (``.T``).
    """
    arr = np.asarray(points_lidar)
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype not in (np.float32, np.float64):
        raise ShapeError(f"{name}: expected (N, 3+) float32 array, got {arr.shape} {arr.dtype}")
    if arr.shape[0] in (3, 4) and arr.shape[1] > MAX_POINT_COLUMNS:
        raise ShapeError(
            f"{name}: expected (N, 3+) points in rows, got {arr.shape}: {arr.shape[1]} points stored as columns? "
            f"pass {name}.T (a ({arr.shape[1]}, {arr.shape[0]}) array)"
        )
    return np.ascontiguousarray(arr)


def as_se3(transform: SE3 | np.ndarray, name: str) -> SE3:
    """``transform`` as an :class:`~calibration.SE3`: an ``SE3`` as it is, or a ``(4, 4)`` / ``(3, 4)`` matrix.

    Raises:
        ShapeError: another type or shape (the message shows what came).
        CalibrationError: a non-orthonormal rotation or a last row other than ``[0, 0, 0, 1]``.
    """
    if isinstance(transform, SE3):
        return transform
    shape = getattr(np.asarray(transform) if isinstance(transform, (list, tuple, np.ndarray)) else None, "shape", None)
    if shape not in ((4, 4), (3, 4)):
        got = shape if shape is not None else type(transform).__name__
        raise ShapeError(f"{name}: expected an SE3 or a (4, 4) or (3, 4) float matrix, got {got}")
    return SE3.from_matrix(np.asarray(transform, dtype=np.float64), name=name)


# ---------------------------------------------------------------------- kernel
@numba.njit(cache=True)
def _project_kernel(
    points, rotation, translation, fx, fy, cx, cy, width, height, model, k, max_r2, min_depth, uv_px, depth_m, status
):  # pragma: no cover - numba
    """CameraModel.project after a rigid transform; the arithmetic follows calibration.camera step by step."""
    k1, k2, p1, p2, k3, k4, k5, k6 = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]
    rational = k4 != 0.0 or k5 != 0.0 or k6 != 0.0
    tangential = p1 != 0.0 or p2 != 0.0
    u_max = width - 0.5
    v_max = height - 0.5
    for i in range(points.shape[0]):
        px = np.float64(points[i, 0])
        py = np.float64(points[i, 1])
        pz = np.float64(points[i, 2])
        X = rotation[0, 0] * px + rotation[0, 1] * py + rotation[0, 2] * pz + translation[0]
        Y = rotation[1, 0] * px + rotation[1, 1] * py + rotation[1, 2] * pz + translation[1]
        Z = rotation[2, 0] * px + rotation[2, 1] * py + rotation[2, 2] * pz + translation[2]
        depth_m[i] = Z
        if not (math.isfinite(X) and math.isfinite(Y) and math.isfinite(Z)):
            status[i] = NOT_FINITE
            uv_px[i, 0] = np.nan
            uv_px[i, 1] = np.nan
            continue
        if Z <= min_depth:
            status[i] = BEHIND_CAMERA
            uv_px[i, 0] = np.nan
            uv_px[i, 1] = np.nan
            continue
        x = X / Z
        y = Y / Z
        r2 = x * x + y * y
        if r2 >= max_r2:
            status[i] = OUTSIDE_VALID_REGION
            uv_px[i, 0] = np.nan
            uv_px[i, 1] = np.nan
            continue
        if model == 1:
            radial = ((k3 * r2 + k2) * r2 + k1) * r2 + 1.0
            if rational:
                radial /= ((k6 * r2 + k5) * r2 + k4) * r2 + 1.0
            x_d = x * radial
            y_d = y * radial
            if tangential:
                two_xy = x * y * 2.0
                x_d += (x * x * 2.0 + r2) * p2
                x_d += p1 * two_xy
                y_d += (y * y * 2.0 + r2) * p1
                y_d += two_xy * p2
        elif model == 2:
            radius = math.sqrt(r2)
            theta = math.atan(radius)
            theta2 = theta * theta
            # fisheye coefficients are k1, k2, k3, k4 in slots 0..3 (radtan's k1, k2, p1, p2)
            theta_d = ((((k[3] * theta2 + k[2]) * theta2 + k[1]) * theta2 + k[0]) * theta2 + 1.0) * theta
            scale = theta_d / radius if radius > 0.0 else 1.0
            x_d = x * scale
            y_d = y * scale
        else:
            x_d = x
            y_d = y
        u = x_d * fx + cx
        v = y_d * fy + cy
        uv_px[i, 0] = u
        uv_px[i, 1] = v
        if u >= -0.5 and u < u_max and v >= -0.5 and v < v_max:
            status[i] = VISIBLE
        else:
            status[i] = OUTSIDE_IMAGE
