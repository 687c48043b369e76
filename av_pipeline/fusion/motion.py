"""Ego-motion compensation of LiDAR points: whole-sweep and per point (de-skew).

A point measured by the LiDAR at time ``t`` is a point of the static world seen from the
ego pose at ``t``. To express it in a sensor frame at another time ``t'`` it goes through
the world, which does not move::

    sensor(t')_SE3_lidar(t) = sensor_SE3_ego @ ego(t')_SE3_world @ world_SE3_ego(t) @ ego_SE3_lidar

``world_SE3_ego`` is a :class:`~calibration.PoseTrajectory` (slerp + lerp between samples,
with its extrapolation policy).

- **Whole-sweep** compensation (:func:`compensate_sweep`, as the nuScenes devkit and
  av2-api do) uses one ``t`` for every point: the sweep's timestamp.
- **Per-point de-skew** (:func:`deskew_points`) uses each point's own capture time
  ``t_i = sweep_timestamp_ns + time_offsets_ns[i]``: a spinning LiDAR needs ~100 ms per turn,
  during which a car at 15 m/s moves 1.5 m. The pose at ``t_i`` is interpolated per point
  exactly as :meth:`PoseTrajectory.at_many <calibration.PoseTrajectory.at_many>` does, in a
  numba kernel (the trajectory samples are first re-expressed relative to the target pose,
  which keeps the numbers small: world coordinates can be 1e6 m).

Both return float32 points (computed in float64).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from av_pipeline.errors import ShapeError
from calibration import SE3, PoseTrajectory
from calibration.rotation import rotation_to_wxyz
from calibration.trajectory import ExtrapolationPolicy, check_extrapolation

__all__ = ["compensate_sweep", "deskew_points", "sensor_SE3_lidar_across_time", "transform_points_f32"]


def sensor_SE3_lidar_across_time(
    world_SE3_ego: PoseTrajectory,
    ego_SE3_lidar: SE3,
    lidar_timestamp_ns: int,
    ego_SE3_sensor: SE3,
    sensor_timestamp_ns: int,
    *,
    extrapolation: ExtrapolationPolicy = "error",
) -> SE3:
    """``sensor(t_sensor)_SE3_lidar(t_lidar)``: LiDAR-frame points measured at ``t_lidar`` into a sensor frame at ``t_sensor``.

    Args:
        world_SE3_ego: ego poses over time.
        ego_SE3_lidar: LiDAR extrinsics.
        lidar_timestamp_ns: when the points were measured (the sweep time).
        ego_SE3_sensor: the target sensor's extrinsics (a camera's ``ego_SE3_camera``, or
            ``ego_SE3_lidar`` itself to move a sweep to another time).
        sensor_timestamp_ns: the target time (e.g. the camera's image time).
        extrapolation: policy for times outside ``world_SE3_ego``.

    Raises:
        ExtrapolationError: a time outside the trajectory with ``extrapolation="error"``.
    """
    world_SE3_ego_at_lidar = world_SE3_ego.at(lidar_timestamp_ns, extrapolation=extrapolation)
    world_SE3_ego_at_sensor = world_SE3_ego.at(sensor_timestamp_ns, extrapolation=extrapolation)
    # Relative ego motion first: keeps the large world translations out of the final transform.
    ego_at_sensor_SE3_ego_at_lidar = world_SE3_ego_at_sensor.inverse().compose(world_SE3_ego_at_lidar)
    return ego_SE3_sensor.inverse().compose(ego_at_sensor_SE3_ego_at_lidar).compose(ego_SE3_lidar)


def compensate_sweep(
    points_lidar: np.ndarray,
    world_SE3_ego: PoseTrajectory,
    ego_SE3_lidar: SE3,
    sweep_timestamp_ns: int,
    target_timestamp_ns: int,
    ego_SE3_target: SE3 | None = None,
    *,
    extrapolation: ExtrapolationPolicy = "error",
) -> np.ndarray:
    """Whole-sweep ego-motion compensation: every point as if measured at ``sweep_timestamp_ns``.

    Args:
        points_lidar: ``(N, 3+)`` float32 (or float64) points in the LiDAR frame; extra
            columns are ignored.
        world_SE3_ego: ego poses over time.
        ego_SE3_lidar: LiDAR extrinsics.
        sweep_timestamp_ns: the time all points are taken to be measured at.
        target_timestamp_ns: the time to express them at.
        ego_SE3_target: target sensor extrinsics; ``None``: the LiDAR itself.
        extrapolation: policy for times outside ``world_SE3_ego``.

    Returns:
        ``(N, 3)`` float32 points in the target frame at ``target_timestamp_ns``.
    """
    target_SE3_lidar = sensor_SE3_lidar_across_time(
        world_SE3_ego,
        ego_SE3_lidar,
        sweep_timestamp_ns,
        ego_SE3_lidar if ego_SE3_target is None else ego_SE3_target,
        target_timestamp_ns,
        extrapolation=extrapolation,
    )
    return transform_points_f32(points_lidar, target_SE3_lidar)


def deskew_points(
    points_lidar: np.ndarray,
    time_offsets_ns: np.ndarray,
    world_SE3_ego: PoseTrajectory,
    ego_SE3_lidar: SE3,
    sweep_timestamp_ns: int,
    target_timestamp_ns: int | None = None,
    ego_SE3_target: SE3 | None = None,
    *,
    extrapolation: ExtrapolationPolicy = "error",
) -> np.ndarray:
    """Per-point de-skew: each point from the ego pose at its own capture time to one target time.

    ``points_target[i] = target(t_target)_SE3_lidar(t_i) @ points_lidar[i]`` with
    ``t_i = sweep_timestamp_ns + time_offsets_ns[i]`` (module docstring).

    Args:
        points_lidar: ``(N, 3+)`` float32 (or float64) points in the LiDAR frame, each as
            measured at its own time; extra columns are ignored.
        time_offsets_ns: ``(N,)`` integer capture times relative to ``sweep_timestamp_ns``
            (:attr:`LidarSweep.time_offsets_ns <av_pipeline.records.LidarSweep.time_offsets_ns>`).
        world_SE3_ego: ego poses over time; must cover every ``t_i`` and the target time
            unless ``extrapolation`` allows otherwise.
        ego_SE3_lidar: LiDAR extrinsics.
        sweep_timestamp_ns: the sweep's reference time.
        target_timestamp_ns: the time to express every point at; ``None``: the sweep time.
        ego_SE3_target: target sensor extrinsics; ``None``: the LiDAR itself.
        extrapolation: policy for times outside ``world_SE3_ego``.

    Returns:
        ``(N, 3)`` float32 points in the target frame at the target time.

    Raises:
        ShapeError: wrong shapes or non-integer offsets.
        ExtrapolationError: a capture or target time outside the trajectory with
            ``extrapolation="error"`` (the message names the first one and how many).
    """
    points = _check_points(points_lidar)
    offsets = np.asarray(time_offsets_ns)
    if offsets.shape != (len(points),) or offsets.dtype == bool or not np.issubdtype(offsets.dtype, np.integer):
        raise ShapeError(f"time_offsets_ns: expected ({len(points)},) integers to match points_lidar, got {offsets.shape} {offsets.dtype}")
    check_extrapolation(extrapolation)
    sweep_ns = int(sweep_timestamp_ns)
    target_ns = sweep_ns if target_timestamp_ns is None else int(target_timestamp_ns)
    ego_SE3_target = ego_SE3_lidar if ego_SE3_target is None else ego_SE3_target
    offsets = offsets.astype(np.int64, copy=False)
    out = np.empty((len(points), 3), dtype=np.float32)
    if len(points) == 0:
        return out
    first_ns, last_ns = sweep_ns + int(offsets.min()), sweep_ns + int(offsets.max())
    # Raises the trajectory's own ExtrapolationError (frame pair, time, range) when needed.
    world_SE3_ego.at_many(np.array([first_ns, last_ns, target_ns], dtype=np.int64), extrapolation=extrapolation)

    # target_SE3_world at the target time; left-multiplying the samples by it commutes with
    # slerp and lerp, so interpolating the rebased samples equals rebasing the interpolation.
    world_SE3_target = world_SE3_ego.at(target_ns, extrapolation=extrapolation).compose(ego_SE3_target)
    target_SE3_world = world_SE3_target.inverse()
    times = world_SE3_ego.timestamps_ns
    if len(times) == 1:
        target_SE3_lidar = target_SE3_world.compose(world_SE3_ego.pose(0)).compose(ego_SE3_lidar)
        return transform_points_f32(points, target_SE3_lidar)
    lo = int(np.clip(np.searchsorted(times, first_ns, side="right") - 1, 0, len(times) - 2))
    hi = int(np.clip(np.searchsorted(times, last_ns, side="right") - 1, 0, len(times) - 2)) + 2
    rotations = np.einsum("ij,kjl->kil", target_SE3_world.rotation, world_SE3_ego.rotations[lo:hi])
    translations = world_SE3_ego.translations[lo:hi] @ target_SE3_world.rotation.T + target_SE3_world.translation
    _deskew_kernel(
        points,
        offsets,
        sweep_ns,
        np.ascontiguousarray(times[lo:hi]),
        np.ascontiguousarray(rotation_to_wxyz(rotations)),
        np.ascontiguousarray(translations),
        np.ascontiguousarray(ego_SE3_lidar.rotation),
        np.ascontiguousarray(ego_SE3_lidar.translation),
        extrapolation == "clamp",
        out,
    )
    return out


def transform_points_f32(points: np.ndarray, dst_SE3_src: SE3) -> np.ndarray:
    """``(N, 3)`` float32 ``dst_SE3_src @ points[:, :3]``, computed in float64.

    Args:
        points: ``(N, 3+)`` float32 or float64 points; extra columns are ignored.
        dst_SE3_src: the transform.
    """
    points = _check_points(points)
    out = np.empty((len(points), 3), dtype=np.float32)
    _transform_kernel(points, np.ascontiguousarray(dst_SE3_src.rotation), np.ascontiguousarray(dst_SE3_src.translation), out)
    return out


def _check_points(points: np.ndarray) -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype not in (np.float32, np.float64):
        raise ShapeError(f"points_lidar: expected (N, 3+) float32 array, got {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _transform_kernel(points, rotation, translation, out):  # pragma: no cover - numba
    for i in range(points.shape[0]):
        x = np.float64(points[i, 0])
        y = np.float64(points[i, 1])
        z = np.float64(points[i, 2])
        for r in range(3):
            out[i, r] = rotation[r, 0] * x + rotation[r, 1] * y + rotation[r, 2] * z + translation[r]


@numba.njit(cache=True)
def _deskew_kernel(points, offsets, sweep_ns, times, wxyz, translations, ego_R_lidar, ego_t_lidar, clamp, out):  # pragma: no cover - numba
    """Per point: slerp/lerp the (rebased) pose at its time, as PoseTrajectory.at_many, and apply it."""
    count = times.shape[0]
    # Per segment, as slerp_wxyz: the end quaternion on the shorter arc, the arc angle and its sine.
    ends = np.empty((count - 1, 4))
    theta = np.empty(count - 1)
    sin_theta = np.empty(count - 1)
    for k in range(count - 1):
        dot = 0.0
        for c in range(4):
            dot += wxyz[k, c] * wxyz[k + 1, c]
        sign = -1.0 if dot < 0.0 else 1.0
        for c in range(4):
            ends[k, c] = sign * wxyz[k + 1, c]
        theta[k] = math.acos(min(abs(dot), 1.0))
        sin_theta[k] = math.sin(theta[k])
    for i in range(points.shape[0]):
        t = sweep_ns + offsets[i]
        # Segment k covers [times[k], times[k+1]]; earlier / later times use the end segments.
        lo = 0
        hi = count - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if times[mid] <= t:
                lo = mid
            else:
                hi = mid
        k = lo
        fraction = np.float64(t - times[k]) / np.float64(times[k + 1] - times[k])
        if clamp:
            fraction = min(max(fraction, 0.0), 1.0)
        if sin_theta[k] < 1e-9:  # linear weights for (nearly) equal rotations, as slerp_wxyz
            a = 1.0 - fraction
            b = fraction
        else:
            a = math.sin((1.0 - fraction) * theta[k]) / sin_theta[k]
            b = math.sin(fraction * theta[k]) / sin_theta[k]
        w = a * wxyz[k, 0] + b * ends[k, 0]
        x = a * wxyz[k, 1] + b * ends[k, 1]
        y = a * wxyz[k, 2] + b * ends[k, 2]
        z = a * wxyz[k, 3] + b * ends[k, 3]
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        w /= norm
        x /= norm
        y /= norm
        z /= norm
        r00 = 1.0 - 2.0 * (y * y + z * z)
        r01 = 2.0 * (x * y - w * z)
        r02 = 2.0 * (x * z + w * y)
        r10 = 2.0 * (x * y + w * z)
        r11 = 1.0 - 2.0 * (x * x + z * z)
        r12 = 2.0 * (y * z - w * x)
        r20 = 2.0 * (x * z - w * y)
        r21 = 2.0 * (y * z + w * x)
        r22 = 1.0 - 2.0 * (x * x + y * y)
        tx = (1.0 - fraction) * translations[k, 0] + fraction * translations[k + 1, 0]
        ty = (1.0 - fraction) * translations[k, 1] + fraction * translations[k + 1, 1]
        tz = (1.0 - fraction) * translations[k, 2] + fraction * translations[k + 1, 2]
        px = np.float64(points[i, 0])
        py = np.float64(points[i, 1])
        pz = np.float64(points[i, 2])
        ex = ego_R_lidar[0, 0] * px + ego_R_lidar[0, 1] * py + ego_R_lidar[0, 2] * pz + ego_t_lidar[0]
        ey = ego_R_lidar[1, 0] * px + ego_R_lidar[1, 1] * py + ego_R_lidar[1, 2] * pz + ego_t_lidar[1]
        ez = ego_R_lidar[2, 0] * px + ego_R_lidar[2, 1] * py + ego_R_lidar[2, 2] * pz + ego_t_lidar[2]
        out[i, 0] = r00 * ex + r01 * ey + r02 * ez + tx
        out[i, 1] = r10 * ex + r11 * ey + r12 * ez + ty
        out[i, 2] = r20 * ex + r21 * ey + r22 * ez + tz
