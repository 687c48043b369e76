"""The planned-path side folder of KITTI raw drives (our addition; KITTI has no place for it).

Layout, next to ``velodyne_points/`` in the drive folder::

    planned_path/timestamps.txt          line k: the time of sweep k (KITTI time format)
    planned_path/data/<k:010d>.txt       the planner's path at sweep k, one pose per row:
                                         timestamp_ns x_m y_m yaw_rad

Rows are whitespace-separated: ``timestamp_ns`` an integer (absolute ns, strictly increasing),
then three decimals written with Python's shortest round-trip ``repr`` (exact float64). The
poses are in the **IMU (OXTS) frame** at that sweep (x forward, y left; yaw about +z from
+x): the vehicle frame KITTI's poses come from, and the frame the writer's ``ego`` becomes
(:mod:`av_pipeline.writers.kitti_raw`). No ``data/<k>.txt`` = no path at sweep k; an empty
file = an empty path.

The KITTI raw reader's ``ego`` is the velodyne, so it reads the poses as planned IMU poses
and re-expresses them as planned velodyne poses in the velodyne frame
(``velo_SE3_imu @ imu_SE3_pose @ imu_SE3_velo``, then x, y and the heading of the rotated x
axis): the path then describes the same origin that ``world_SE3_ego`` follows. With a
velodyne mounted without roll or pitch relative to the IMU (the usual case) this is exact to
float64 round-off; a tilt is projected onto the ground plane.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.records import OnboardPerception, PlannedPath
from calibration import SE3
from calibration.errors import AVPipelineError

#: The side folder's name inside a KITTI raw drive folder.
PLANNED_PATH_FOLDER = "planned_path"


def format_planned_path(path: PlannedPath) -> str:
    """The rows of one ``data/<k>.txt`` file (poses as given: the caller's ego is KITTI's IMU frame)."""
    return "".join(
        f"{int(t)} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r}\n" for t, p in zip(path.timestamps_ns, path.poses_ego)
    )


def read_planned_path_rows(file: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(timestamps_ns (K,) int64, poses (K, 3) float64 x_m, y_m, yaw_rad)`` of one file, as written.

    Raises:
        LogFormatError: unreadable, a row without 4 values, a non-integer time, a value that
            is not a finite number; the message names the file and the line.
    """
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(file, "planned path", f"cannot read: {exc}") from exc
    times: list[int] = []
    poses: list[list[float]] = []
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 4:
            raise LogFormatError(file, f"line {line_no}", f"expected 'timestamp_ns x_m y_m yaw_rad', got {short_repr(line.strip())}")
        digits = tokens[0][1:] if tokens[0][:1] in "+-" else tokens[0]
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 19):
            raise LogFormatError(file, f"line {line_no} timestamp_ns", f"expected an integer (ns), got {short_repr(tokens[0])}")
        try:
            values = [float(v) for v in tokens[1:]]
        except ValueError:
            raise LogFormatError(file, f"line {line_no}", f"expected numbers x_m y_m yaw_rad, got {short_repr(' '.join(tokens[1:]))}") from None
        if not np.isfinite(values).all():
            raise LogFormatError(file, f"line {line_no}", f"expected finite x_m y_m yaw_rad, got {short_repr(' '.join(tokens[1:]))}")
        times.append(int(tokens[0]))
        poses.append(values)
    if any(not -(2**63) <= t < 2**63 for t in times):
        raise LogFormatError(file, "timestamp_ns", "a time beyond the int64 range")
    return np.asarray(times, dtype=np.int64), np.asarray(poses, dtype=np.float64).reshape(-1, 3)


def imu_path_in_velodyne(times_ns: np.ndarray, poses_imu: np.ndarray, velo_SE3_imu: SE3, file: str | Path) -> PlannedPath:
    """Planned IMU poses ``(K, 3)`` in the IMU frame -> the planned velodyne poses in the velodyne frame.

    Raises:
        LogFormatError: the times do not increase (names the file).
    """
    imu_SE3_velo = velo_SE3_imu.inverse()
    poses = np.empty((len(poses_imu), 3))
    for k, (x, y, yaw) in enumerate(poses_imu):
        velo_SE3_planned_velo = velo_SE3_imu.compose(SE3.from_yaw_translation(float(yaw), [x, y, 0.0])).compose(imu_SE3_velo)
        rotation = velo_SE3_planned_velo.rotation
        poses[k] = (*velo_SE3_planned_velo.translation[:2], np.arctan2(rotation[1, 0], rotation[0, 0]))
    try:
        return PlannedPath(times_ns, poses)
    except (AVPipelineError, ValueError) as exc:
        raise LogFormatError(file, "timestamp_ns", str(exc)) from exc


class PlannedPathFolder:
    """The ``planned_path/`` folder of one drive, read frame by frame (``timestamps.txt`` once).

    Args:
        drive_dir: the drive folder (the folder may be absent: no frame has a path).
    """

    def __init__(self, drive_dir: str | Path) -> None:
        self.folder = Path(drive_dir) / PLANNED_PATH_FOLDER
        self._times: np.ndarray | None = None

    def onboard_at(self, index: int, timestamp_ns: int, velo_SE3_imu: SE3 | None) -> OnboardPerception | None:
        """``OnboardPerception`` with the path of sweep ``index`` in the velodyne frame and no
        cuboids (KITTI raw has none: empty here does not mean "nothing detected"), or ``None``
        when the sweep has no path file.

        Raises:
            LogFormatError: ``timestamps.txt`` missing or not giving the sweep's time on line
                ``index + 1``, a malformed path file, or no ``calib_imu_to_velo.txt``
                (``velo_SE3_imu`` is ``None``) to move the path into the velodyne frame.
        """
        from av_pipeline.readers.kitti import read_kitti_timestamps

        file = self.folder / "data" / f"{index:010d}.txt"
        if not file.is_file():
            return None
        stamps = self.folder / "timestamps.txt"
        if self._times is None:
            self._times = read_kitti_timestamps(stamps, strict=True)
        if index >= len(self._times) or int(self._times[index]) != int(timestamp_ns):
            found = f"{int(self._times[index])} ns" if index < len(self._times) else f"only {len(self._times)} lines"
            raise LogFormatError(stamps, f"line {index + 1}", f"expected the time of sweep {index} ({timestamp_ns} ns), got {found}")
        if velo_SE3_imu is None:
            raise LogFormatError(file, "calib_imu_to_velo.txt", "a planned path (IMU frame) needs calib_imu_to_velo.txt to be moved into the velodyne frame")
        times, poses_imu = read_planned_path_rows(file)
        return OnboardPerception(Cuboids.empty("ego"), planned_path=imu_path_in_velodyne(times, poses_imu, velo_SE3_imu, file))


__all__ = ["PLANNED_PATH_FOLDER", "PlannedPathFolder", "format_planned_path", "imu_path_in_velodyne", "read_planned_path_rows"]
