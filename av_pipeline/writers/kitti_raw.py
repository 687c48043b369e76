"""Write frames as a KITTI raw drive that :class:`~av_pipeline.readers.kitti.KittiRawReader` reads back.

Layout (``root`` given by the caller, ``<date>`` like ``2024_05_14``)::

    root/<date>/calib_cam_to_cam.txt      K, D (radtan k1 k2 p1 p2 k3), R, T per camera
    root/<date>/calib_velo_to_cam.txt     velodyne -> camera 00
    root/<date>/calib_imu_to_velo.txt     IMU (= the frames' ego frame) -> velodyne
    root/<date>/<date>_drive_<nnnn>_extract/
        velodyne_points/timestamps.txt          one line per sweep (Frame.timestamp_ns)
        velodyne_points/timestamps_start.txt    sweep start (when time offsets are known)
        velodyne_points/timestamps_end.txt      sweep end
        velodyne_points/data/<index:010d>.bin   float32 x, y, z, intensity
        image_0x/timestamps.txt, image_0x/data/<index:010d>.png
        oxts/timestamps.txt, oxts/dataformat.txt, oxts/data/<index:010d>.txt
        planned_path/timestamps.txt, planned_path/data/<index:010d>.txt   (our addition, see below)

What maps where:

- **Drive kind.** Images are written as the camera took them (with lens distortion), so the
  drive is an ``_extract`` drive: the reader builds cameras from ``K_xx``, ``D_xx``,
  ``R_xx``, ``T_xx``. The rectification keys (``S_rect``, ``R_rect``, ``P_rect``) are
  required by the file format and written as "no rectification" (``R_rect = I``,
  ``P_rect = [K | 0]``, ``S_rect = S``); they do not describe a rectified rig.
- **Cameras.** KITTI names cameras by folder. ``camera_folders`` maps rig camera names to
  ``"00"`` .. ``"03"``; by default the rig's cameras in order become ``02``, ``03``, ``01``,
  ``00`` (the colour pair first). Camera ``00`` is the file's reference: when no rig camera
  is mapped to it, the first camera's calibration is written as ``00`` too (without images).
  Cameras need the ``pinhole`` or ``radtan`` model with at most 5 coefficients; fisheye
  cameras are refused.
- **Poses.** ``world_SE3_ego`` becomes OXTS packets by inverting the devkit's Mercator
  projection around ``origin_lat_lon_alt`` (the ego frame plays the IMU). The reader puts its
  world origin at the first packet, so it returns ``world_SE3_velodyne`` in a world frame
  shifted by the first ego position: see :attr:`KittiRawDrive.reader_world_SE3_world`.
- **Points.** The first LiDAR of each frame; columns ``x, y, z`` and ``intensity`` (zeros
  when absent); other columns and per-point times are not representable (KITTI has none).
- **Planned path** (``Frame.onboard.planned_path``): KITTI raw has no place for it, so it goes
  to the side folder ``planned_path/`` (:mod:`av_pipeline.readers.kitti_planned_path`): one
  ``data/<index>.txt`` per frame that has a path, rows ``timestamp_ns x_m y_m yaw_rad`` in
  the ego (= IMU) frame, exact float64; ``timestamps.txt`` holds every sweep's time. The
  folder is only created when some frame has a path.
- **Not written:** annotations, onboard cuboids and onboard 2D camera boxes (KITTI raw has no
  place for them; tracklet XML is not produced), other LiDARs.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.readers.kitti import EARTH_RADIUS_M, OXTS_FIELDS
from av_pipeline.readers.kitti_planned_path import PLANNED_PATH_FOLDER, format_planned_path
from av_pipeline.records import CameraImage, Frame
from calibration import SE3
from calibration.formats.kitti_raw import KittiRawCalib, write_kitti_raw_calib
from calibration.rig import SensorRig

#: Default geographic origin of the world frame: Karlsruhe, where KITTI was recorded.
DEFAULT_ORIGIN_LAT_LON_ALT = (49.011212804408, 8.4228850417969, 112.83)
_DEFAULT_FOLDER_ORDER = ("02", "03", "01", "00")
_OXTS_DATAFORMAT = """lat:   latitude of the oxts-unit (deg)
lon:   longitude of the oxts-unit (deg)
alt:   altitude of the oxts-unit (m)
roll:  roll angle (rad),  0 = level, positive = left side up (-pi..pi)
pitch: pitch angle (rad), 0 = level, positive = front down (-pi/2..pi/2)
yaw:   heading (rad),     0 = east,  positive = counter clockwise (-pi..pi)
vn:    velocity towards north (m/s)
ve:    velocity towards east (m/s)
vf:    forward velocity, i.e. parallel to earth-surface (m/s)
vl:    leftward velocity, i.e. parallel to earth-surface (m/s)
vu:    upward velocity, i.e. perpendicular to earth-surface (m/s)
ax:    acceleration in x, i.e. in direction of vehicle front (m/s^2)
ay:    acceleration in y, i.e. in direction of vehicle left (m/s^2)
az:    acceleration in z, i.e. in direction of vehicle top (m/s^2)
af:    forward acceleration (m/s^2)
al:    leftward acceleration (m/s^2)
au:    upward acceleration (m/s^2)
wx:    angular rate around x (rad/s)
wy:    angular rate around y (rad/s)
wz:    angular rate around z (rad/s)
wf:    angular rate around forward axis (rad/s)
wl:    angular rate around leftward axis (rad/s)
wu:    angular rate around upward axis (rad/s)
pos_accuracy:  velocity accuracy (north/east in m)
vel_accuracy:  velocity accuracy (north/east in m/s)
navstat:       navigation status (see navstat_to_string)
numsats:       number of satellites tracked by primary GPS receiver
posmode:       position mode of primary GPS receiver (see gps_mode_to_string)
velmode:       velocity mode of primary GPS receiver (see gps_mode_to_string)
orimode:       orientation mode of primary GPS receiver (see gps_mode_to_string)
"""


def format_kitti_timestamp(timestamp_ns: int) -> str:
    """Integer ns since 1970 (UTC) -> ``"YYYY-MM-DD HH:MM:SS.fffffffff"`` (inverse of
    :func:`~av_pipeline.readers.kitti.parse_kitti_timestamp`)."""
    seconds, nanos = divmod(int(timestamp_ns), 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}"


def mercator_to_lat_lon(x_m: float, y_m: float, scale: float) -> tuple[float, float]:
    """Inverse of the devkit's Mercator projection (see :func:`~av_pipeline.readers.kitti.oxts_world_SE3_imu`)."""
    lon = x_m * 180.0 / (np.pi * EARTH_RADIUS_M * scale)
    lat = 360.0 / np.pi * np.arctan(np.exp(y_m / (scale * EARTH_RADIUS_M))) - 90.0
    return float(lat), float(lon)


def _roll_pitch_yaw(rotation: np.ndarray) -> tuple[float, float, float]:
    """Angles of ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    pitch = float(-np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0)))
    roll = float(np.arctan2(rotation[2, 1], rotation[2, 2]))
    yaw = float(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return roll, pitch, yaw


@dataclass(frozen=True)
class KittiRawDrive:
    """Where a drive was written and how its frames relate to the input frames.

    Attributes:
        drive_dir: the ``<date>_drive_<nnnn>_extract`` folder (pass it to ``open_log``).
        calib_dir: the ``<date>`` folder with the calibration files.
        camera_folders: rig camera name -> KITTI camera number (``"02"``...); the reader
            names that camera ``image_<number>``.
        lidar: the LiDAR that was written.
        reader_world_SE3_world: maps the input frames' world frame to the reader's (which
            starts at the first OXTS position): a translation by minus the first ego position.
        frames: number of frames written.
    """

    drive_dir: Path
    calib_dir: Path
    camera_folders: Mapping[str, str]
    lidar: str
    reader_world_SE3_world: SE3
    frames: int = 0


class KittiRawWriter:
    """Write frames one by one into a KITTI raw drive; use as a context manager.

    Args:
        root: folder that receives ``<date>/``.
        rig: the rig every frame shares (cameras and the LiDAR to write).
        date: the recording-day folder name; default from the first frame's time.
        drive_number: ``<nnnn>`` of the drive folder.
        camera_folders: rig camera name -> ``"00"`` .. ``"03"`` (default: see the module docstring).
        lidar: which LiDAR to write (default: the rig's first).
        origin_lat_lon_alt: geographic position of the first ego pose.
        image_format: ``"png"`` (re-encode JPEG images; KITTI's format) or ``"keep"`` (write
            the image bytes as they are, ``.png`` or ``.jpg``).

    Raises:
        ConfigError: more than four cameras, a bad camera mapping, a camera model KITTI
            cannot hold, no LiDAR, or an unknown ``image_format``.
    """

    def __init__(
        self,
        root: str | Path,
        rig: SensorRig,
        *,
        date: str | None = None,
        drive_number: int = 1,
        camera_folders: Mapping[str, str] | None = None,
        lidar: str | None = None,
        origin_lat_lon_alt: Sequence[float] = DEFAULT_ORIGIN_LAT_LON_ALT,
        image_format: str = "png",
    ) -> None:
        if image_format not in ("png", "keep"):
            raise ConfigError(f"image_format: expected 'png' or 'keep', got {image_format!r}")
        if not rig.lidars:
            raise ConfigError("KITTI raw writer: the rig has no LiDAR")
        self.root = Path(root)
        self.rig = rig
        self.date = date
        self.drive_number = int(drive_number)
        self.lidar = lidar or next(iter(rig.lidars))
        if self.lidar not in rig.lidars:
            raise ConfigError(f"lidar: {self.lidar!r} is not in the rig {list(rig.lidars)}")
        self.camera_folders = dict(camera_folders) if camera_folders is not None else self._default_folders(rig)
        self._check_cameras()
        self.origin = tuple(float(v) for v in origin_lat_lon_alt)
        self.image_format = image_format
        self._drive_dir: Path | None = None
        self._times: dict[str, list[int]] = {}
        self._sweep_bounds: list[tuple[int, int]] = []
        self._poses: list[tuple[int, SE3]] = []
        self._first_position: np.ndarray | None = None
        self._count = 0
        self._paths_written = 0

    @staticmethod
    def _default_folders(rig: SensorRig) -> dict[str, str]:
        if len(rig.cameras) > 4:
            raise ConfigError(f"KITTI raw holds at most 4 cameras, the rig has {len(rig.cameras)}: {list(rig.cameras)}")
        return {name: folder for name, folder in zip(rig.cameras, _DEFAULT_FOLDER_ORDER)}

    def _check_cameras(self) -> None:
        folders = list(self.camera_folders.values())
        if len(set(folders)) != len(folders) or not set(folders) <= {"00", "01", "02", "03"}:
            raise ConfigError(f"camera_folders: expected distinct values among 00..03, got {self.camera_folders}")
        for name in self.camera_folders:
            if name not in self.rig.cameras:
                raise ConfigError(f"camera_folders: {name!r} is not a rig camera {list(self.rig.cameras)}")
            model = self.rig.cameras[name].model
            if model.distortion_model == "fisheye" or len(model.distortion) > 5:
                raise ConfigError(
                    f"camera {name!r}: KITTI raw stores radial-tangential distortion with 5 coefficients, "
                    f"got {model.distortion_model} with {len(model.distortion)}"
                )

    # ------------------------------------------------------------------ writing
    def __enter__(self) -> KittiRawWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()

    def _start(self, frame: Frame) -> None:
        date = self.date or time.strftime("%Y_%m_%d", time.gmtime(frame.timestamp_ns // 1_000_000_000))
        self.date = date
        self.calib_dir = self.root / date
        self._drive_dir = self.calib_dir / f"{date}_drive_{self.drive_number:04d}_extract"
        for sub in ["velodyne_points/data", "oxts/data"] + [f"image_{f}/data" for f in self.camera_folders.values()]:
            (self._drive_dir / sub).mkdir(parents=True, exist_ok=True)
        write_kitti_raw_calib(self._calibration(), self.calib_dir)
        (self._drive_dir / "oxts" / "dataformat.txt").write_text(_OXTS_DATAFORMAT, encoding="utf-8")

    def _calibration(self) -> KittiRawCalib:
        if not self.camera_folders:
            raise ConfigError("KITTI raw writer: the rig has no camera; calib_cam_to_cam.txt needs camera 00")
        return KittiRawCalib.from_rig(self.rig, camera_numbers=self.camera_folders, lidar=self.lidar)

    def write(self, frame: Frame) -> None:
        """Append one frame (its index in the drive is the number of frames written before).

        Raises:
            LogFormatError: the frame has no pose or not the writer's LiDAR, its rig differs,
                or its time is not after the previous frame's.
        """
        where = f"frame {frame.log_id}@{frame.timestamp_ns}"
        if frame.world_SE3_ego is None:
            raise LogFormatError(where, "world_SE3_ego", "KITTI raw needs an ego pose per frame (OXTS)")
        if self.lidar not in frame.lidars:
            raise LogFormatError(where, "lidars", f"expected LiDAR {self.lidar!r}, got {list(frame.lidars)}")
        if self._poses and frame.timestamp_ns <= self._poses[-1][0]:
            raise LogFormatError(where, "timestamp_ns", f"frames must be written in time order; previous was {self._poses[-1][0]}")
        if self._drive_dir is None:
            self._start(frame)
        assert self._drive_dir is not None
        index = self._count
        sweep = frame.lidars[self.lidar]
        points = np.zeros((sweep.num_points, 4), dtype=np.float32)
        points[:, :3] = sweep.xyz
        if "intensity" in sweep.columns:
            points[:, 3] = sweep.column("intensity")
        points.tofile(self._drive_dir / "velodyne_points" / "data" / f"{index:010d}.bin")
        offsets = sweep.time_offsets_ns
        start, end = (int(offsets.min()), int(offsets.max())) if offsets is not None and len(offsets) else (0, 0)
        self._sweep_bounds.append((sweep.timestamp_ns + start, sweep.timestamp_ns + end))
        for name, folder in self.camera_folders.items():
            image = frame.images.get(name)
            if image is None:
                raise LogFormatError(where, "images", f"camera {name!r} has no image in this frame; KITTI folders need one per frame")
            data, suffix = self._image_bytes(image)
            (self._drive_dir / f"image_{folder}" / "data" / f"{index:010d}{suffix}").write_bytes(data)
            self._times.setdefault(folder, []).append(image.timestamp_ns)
        planned = frame.onboard.planned_path if frame.onboard is not None else None
        if planned is not None:
            folder = self._drive_dir / PLANNED_PATH_FOLDER / "data"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:010d}.txt").write_text(format_planned_path(planned), encoding="utf-8")
            self._paths_written += 1
        self._poses.append((frame.timestamp_ns, frame.world_SE3_ego))
        self._count += 1

    def _image_bytes(self, image: CameraImage) -> tuple[bytes, str]:
        if image.encoding == "png" or (self.image_format == "keep" and image.encoding == "jpeg"):
            return image.data, ".png" if image.encoding == "png" else ".jpg"
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image.decode()).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue(), ".png"

    def close(self) -> KittiRawDrive:
        """Write the timestamp and OXTS files; returns where everything went.

        Raises:
            LogFormatError: no frame was written.
        """
        if self._drive_dir is None:
            raise LogFormatError(self.root, None, "KITTI raw writer: no frame was written")
        drive = self._drive_dir

        def lines(times: Iterable[int]) -> str:
            return "".join(format_kitti_timestamp(t) + "\n" for t in times)

        (drive / "velodyne_points" / "timestamps.txt").write_text(lines(t for t, _ in self._poses), encoding="utf-8")
        (drive / "velodyne_points" / "timestamps_start.txt").write_text(lines(s for s, _ in self._sweep_bounds), encoding="utf-8")
        (drive / "velodyne_points" / "timestamps_end.txt").write_text(lines(e for _, e in self._sweep_bounds), encoding="utf-8")
        for folder, times in self._times.items():
            (drive / f"image_{folder}" / "timestamps.txt").write_text(lines(times), encoding="utf-8")
        (drive / "oxts" / "timestamps.txt").write_text(lines(t for t, _ in self._poses), encoding="utf-8")
        if self._paths_written:
            (drive / PLANNED_PATH_FOLDER / "timestamps.txt").write_text(lines(t for t, _ in self._poses), encoding="utf-8")
        for index, packet in enumerate(self._oxts_packets()):
            text = " ".join(repr(float(v)) if i < 25 else str(int(v)) for i, v in enumerate(packet))
            (drive / "oxts" / "data" / f"{index:010d}.txt").write_text(text + "\n", encoding="utf-8")
        first = self._poses[0][1].translation
        return KittiRawDrive(drive, self.calib_dir, dict(self.camera_folders), self.lidar, SE3(np.eye(3), -first), self._count)

    def _oxts_packets(self) -> list[np.ndarray]:
        lat0, lon0, alt0 = self.origin
        scale = float(np.cos(np.deg2rad(lat0)))
        x0 = scale * lon0 * np.pi * EARTH_RADIUS_M / 180.0
        y0 = scale * EARTH_RADIUS_M * np.log(np.tan((90.0 + lat0) * np.pi / 360.0))
        first = self._poses[0][1].translation
        times = np.array([t for t, _ in self._poses], dtype=np.int64)
        positions = np.array([p.translation for _, p in self._poses])
        angles = np.array([_roll_pitch_yaw(p.rotation) for _, p in self._poses])
        seconds = (times - times[0]) * 1e-9
        if len(times) > 1:
            velocity = np.gradient(positions, seconds, axis=0)
            acceleration = np.gradient(velocity, seconds, axis=0)
            rates = np.gradient(np.unwrap(angles, axis=0), seconds, axis=0)
        else:
            velocity = acceleration = rates = np.zeros((1, 3))
        packets = []
        for k, (_, pose) in enumerate(self._poses):
            rel = positions[k] - first
            lat, lon = mercator_to_lat_lon(x0 + rel[0], y0 + rel[1], scale)
            roll, pitch, yaw = angles[k]
            body_v = pose.rotation.T @ velocity[k]
            body_a = pose.rotation.T @ acceleration[k]
            packet = np.zeros(len(OXTS_FIELDS))
            packet[:6] = [lat, lon, alt0 + rel[2], roll, pitch, yaw]
            packet[6:11] = [velocity[k, 1], velocity[k, 0], body_v[0], body_v[1], velocity[k, 2]]
            packet[11:17] = [body_a[0], body_a[1], body_a[2], body_a[0], body_a[1], body_a[2]]
            packet[17:23] = [rates[k, 0], rates[k, 1], rates[k, 2], rates[k, 0], rates[k, 1], rates[k, 2]]
            packet[23:] = [0.05, 0.02, 4, 10, 4, 4, 4]
            packets.append(packet)
        return packets


def write_kitti_raw(
    root: str | Path,
    frames: Iterable[Frame],
    **options: object,
) -> KittiRawDrive:
    """Write ``frames`` (in time order, one shared rig) as a KITTI raw drive under ``root``.

    ``options`` are :class:`KittiRawWriter`'s. Read it back with
    ``open_log(drive.drive_dir)``.

    Raises:
        LogFormatError: no frames, or a frame the layout cannot hold (see :meth:`KittiRawWriter.write`).
        ConfigError: see :class:`KittiRawWriter`.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise LogFormatError(root, None, "KITTI raw writer: no frames to write")
    writer = KittiRawWriter(root, first.rig, **options)  # type: ignore[arg-type]
    writer.write(first)
    for frame in iterator:
        writer.write(frame)
    return writer.close()


__all__ = ["DEFAULT_ORIGIN_LAT_LON_ALT", "KittiRawDrive", "KittiRawWriter", "format_kitti_timestamp", "mercator_to_lat_lon", "write_kitti_raw"]
