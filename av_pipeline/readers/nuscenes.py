"""nuScenes-schema data roots (nuScenes, Lyft Level 5 and others using the JSON tables).

Layout: a data root holding the JSON tables in a sub-folder (``v1.0-mini/``,
``v1.01-train/``, ``tables/`` ...) and the sensor files at the relative paths that
``sample_data.filename`` gives (``samples/LIDAR_TOP/...pcd.bin``, ``lidar/...bin``,
``images/...jpeg``). ``open_log`` accepts the data root or the tables folder.

Frames:

- one frame per ``sample`` (key frame), in time order over all scenes (ties broken by token);
  ``log_id`` is the scene name (``scene.json``; the data root's name without it). Option
  ``scene=`` (name or token) keeps one scene.
- time: the primary LiDAR's ``sample_data.timestamp`` (microseconds, as stored, to integer
  nanoseconds; Lyft's fractional microseconds keep their decimal digits).
- LiDARs: every key-frame LiDAR ``sample_data`` of the sample, named by ``sensor.channel``;
  the primary one (``LIDAR_TOP``, option ``primary_lidar=``) first, the others by name. Points are
  ``(N, 5)`` float32 ``x, y, z, intensity, ring`` in the LiDAR frame (nuScenes ``.pcd.bin``
  and Lyft ``.bin`` both store 5 float32 per point; ``ring`` is the laser index; Lyft's
  intensity is 0..100), or a real ``.pcd`` file read with :mod:`av_pipeline.readers.pcd`.
- cameras: the key-frame camera ``sample_data`` by channel name (option ``cameras=`` to choose), each
  image at its own timestamp; models from ``calibrated_sensor.camera_intrinsic`` (pinhole:
  nuScenes images are undistorted) and size from ``sample_data.width/height``.
- rig and poses: parsed by :mod:`calibration.formats.nuscenes` (``calibrated_sensor`` ->
  ``ego_SE3_sensor``, ``ego_pose`` -> ``world_SE3_ego``, world = the map's global frame).
  ``Frame.world_SE3_ego`` is the ego pose of the primary LiDAR's sample_data; each camera's
  own ego pose is available from :meth:`NuScenesReader.sample_data_ego_poses`.
- annotations: ``sample_annotation`` rows of the sample (global frame, ``size`` w, l, h,
  ``rotation`` wxyz) moved to ``ego`` with the primary LiDAR's ego pose (as the nuScenes
  devkit's ``get_sample_data`` does), labels from ``category.name``, track ids from
  ``instance`` tokens (the instance's row number in ``instance.json``, stable for a dataset
  version; :attr:`NuScenesReader.instance_tokens` maps back), ``num_lidar_points`` counted
  in the primary sweep. Boxes stay upright in ``ego`` (yaw = heading projected on the ego
  xy plane). Attributes, visibility and radar are not carried.
- a data root without ``sample_annotation.json`` (test splits) has ``annotations = None``.

Errors: a missing table, unparsable JSON, a row without a required field or with a value of
the wrong type (a token that is not a string, a timestamp that is not a finite number in the
product's time range), a token that points nowhere, or a file that ``sample_data`` names but
the data root lacks is a :class:`LogFormatError` naming the table, the row and the field.
``sample_data.filename`` must be a relative path that stays inside the data root (``../``
and absolute paths are refused; symlinks placed inside the data root are followed). A
sample with two key-frame rows of one channel, or annotations sharing a token, fails to load
(a dead letter in ingest) instead of one row silently replacing the other. Bad calibration
values raise :class:`~calibration.errors.CalibrationFileError` (from the calibration readers).

The mmdet3d demo keyframe (files and an info pkl, no tables) is not a data root; its LiDAR
file loads with :func:`load_nuscenes_sweep`.
"""

from __future__ import annotations

import json
import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids, nuscenes_boxes_to_cuboids
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.errors import AVPipelineError, LogFormatError, short_repr
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.bin_points import read_float32_points
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep
from av_pipeline.validate import check_timestamp_ns
from calibration import SE3
from calibration.camera import CameraModel
from calibration.formats.nuscenes import NuScenesCalibratedSensor, read_nuscenes_calibrated_sensors, read_nuscenes_ego_poses
from calibration.rig import RigCamera, SensorRig

#: Columns of nuScenes ``.pcd.bin`` and Lyft ``.bin`` LiDAR files.
NUSCENES_LIDAR_COLUMNS = ("x", "y", "z", "intensity", "ring")
#: Tables the reader needs to list frames; the others are read when a frame is loaded.
REQUIRED_TABLES = ("sample", "sample_data", "sensor", "calibrated_sensor")
#: The primary LiDAR channel by default.
DEFAULT_PRIMARY_LIDAR = "LIDAR_TOP"

_IMAGE_ENCODINGS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}


def timestamp_us_to_ns(value: int | float) -> int:
    """A table timestamp (microseconds, int or float as stored) -> integer nanoseconds.

    The float's shortest decimal text is used, so ``1556675185903083.2`` -> ``1556675185903083200``.

    Raises:
        ValueError: not a finite int or float (strings, bools, None, NaN, inf).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number of microseconds, got {type(value).__name__} {short_repr(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number of microseconds, got {value!r}")
    if isinstance(value, int) and abs(value) > 10**30:
        raise ValueError(f"expected a time in microseconds, got {short_repr(value)}")
    return int((Decimal(repr(value)) * 1000).to_integral_value())


def read_nuscenes_lidar(path: str | Path, num_columns: int = len(NUSCENES_LIDAR_COLUMNS)) -> np.ndarray:
    """Read a nuScenes ``.pcd.bin`` / Lyft ``.bin`` file: ``(N, 5)`` float32 in the LiDAR frame.

    Raises:
        LogFormatError: unreadable, or a size that is not a multiple of ``4 * num_columns`` bytes.
    """
    return read_float32_points(path, num_columns, field="lidar points")


def load_nuscenes_sweep(path: str | Path, sensor: str | None = None, timestamp_ns: int | None = None) -> LidarSweep:
    """Load one nuScenes LiDAR file as a :class:`LidarSweep` without the tables.

    nuScenes names files ``<log>__<CHANNEL>__<timestamp_us>.pcd.bin``; the channel and time
    are taken from the name unless given.

    Raises:
        LogFormatError: a bad file, or no ``sensor``/``timestamp_ns`` given and the name does
            not carry them.
    """
    name = Path(path).name
    parts = name.split(".", 1)[0].split("__")
    if sensor is None or timestamp_ns is None:
        if len(parts) != 3 or not parts[2].isdigit():
            raise LogFormatError(path, "file name", "expected <log>__<CHANNEL>__<timestamp_us>.pcd.bin, or pass sensor and timestamp_ns")
        sensor = parts[1] if sensor is None else sensor
        timestamp_ns = int(parts[2]) * 1000 if timestamp_ns is None else timestamp_ns
    return LidarSweep(sensor, int(timestamp_ns), read_nuscenes_lidar(path), NUSCENES_LIDAR_COLUMNS)


def _tables_dir(root: Path, version: str | None) -> Path | None:
    if version is not None:
        return root / version if (root / version / "sample.json").is_file() else None
    if (root / "sample.json").is_file():
        return root
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file())
    return found[0] if len(found) == 1 else None


@register_reader
class NuScenesReader(LogReader):
    """A nuScenes-schema data root; see the module docstring.

    Options:
        version: the tables sub-folder when the data root has several (``"v1.0-mini"``).
        scene: keep only this scene (name or token).
        cameras: channels to load images for, a list or a comma-separated string
            (default: all key-frame cameras).
        primary_lidar: the LiDAR whose time and ego pose define the frame (``LIDAR_TOP``).

    Attributes:
        tables_dir: the folder with the JSON tables.
        data_root: the folder ``sample_data.filename`` is relative to (its parent).
    """

    name = "nuscenes"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"version", "scene", "cameras", "primary_lidar"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown nuscenes options {sorted(unknown)}; expected version, scene, cameras, primary_lidar")
        root = Path(uri)
        try:
            tables = _tables_dir(root, None if options.get("version") is None else str(options.get("version")))
            subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file()) if root.is_dir() else []
        except OSError as exc:
            raise LogFormatError(uri, "tables", f"cannot list the data root: {exc.strerror or exc}") from exc
        if tables is None:
            detail = f"several table folders {subdirs}: pass version=" if len(subdirs) > 1 else "no folder with sample.json"
            raise LogFormatError(uri, "tables", f"expected a nuScenes-schema data root or tables folder: {detail}")
        self.tables_dir = tables
        self.data_root = tables.parent
        self.log_id = self.data_root.name
        self.primary_lidar = str(options.get("primary_lidar", DEFAULT_PRIMARY_LIDAR))
        cameras = options.get("cameras")
        if isinstance(cameras, str):  # "CAM_FRONT,CAM_BACK" from a command line
            cameras = [name.strip() for name in cameras.split(",") if name.strip()]
        self.cameras = None if cameras is None else tuple(str(name) for name in cameras)
        for table in REQUIRED_TABLES:
            if not self._table_path(table).is_file():
                raise LogFormatError(self._table_path(table), "table", f"missing required nuScenes table {table}.json")

        self._calibrated = read_nuscenes_calibrated_sensors(self._table_path("calibrated_sensor")).records
        sensors = {self._text(row, "token", "sensor", i): row for i, row in enumerate(self._load_table("sensor"))}
        self._channel_of: dict[str, tuple[str, str]] = {}  # calibrated_sensor token -> (channel, modality)
        for token, record in self._calibrated.items():
            sensor = sensors.get(record.sensor_token)
            if sensor is None:
                raise LogFormatError(self._table_path("calibrated_sensor"), f"calibrated_sensor {token}", f"sensor_token {record.sensor_token} is not in sensor.json")
            self._channel_of[token] = (str(sensor.get("channel")), str(sensor.get("modality")))

        self._keyframe_data: dict[str, list[dict]] = {}  # sample token -> key-frame sample_data rows
        for i, row in enumerate(self._load_table("sample_data")):
            for key in ("token", "sample_token", "calibrated_sensor_token", "ego_pose_token", "filename"):
                self._text(row, key, "sample_data", i)
            self._time_ns(row, "sample_data", i)
            if not row.get("is_key_frame", True):
                continue
            if row["calibrated_sensor_token"] not in self._channel_of:
                raise LogFormatError(
                    self._table_path("sample_data"), f"sample_data {row['token']}", f"calibrated_sensor_token {row['calibrated_sensor_token']} is not in calibrated_sensor.json"
                )
            self._keyframe_data.setdefault(row["sample_token"], []).append(row)

        scene_names: dict[str, str] = {}
        if self._table_path("scene").is_file():
            scene_names = {self._text(row, "token", "scene", i): str(row.get("name", row["token"])) for i, row in enumerate(self._load_table("scene"))}
        wanted_scene = options.get("scene")
        frames = []
        for i, sample in enumerate(self._load_table("sample")):
            token = self._text(sample, "token", "sample", i)
            scene_token = self._text(sample, "scene_token", "sample", i) if "scene_token" in sample else ""
            log_id = scene_names.get(scene_token, self.log_id)
            if wanted_scene is not None and wanted_scene not in (scene_token, log_id):
                continue
            primary = self._primary_lidar_row(token)
            timestamp_ns = self._time_ns(primary, "sample_data", None) if primary is not None else self._time_ns(sample, "sample", i)
            frames.append((timestamp_ns, token, log_id))
        frames.sort()
        self._frames = frames
        self._ego_poses: dict | None = None
        self._annotations: dict[str, list[dict]] | None = None
        self._instance_index: dict[str, int] | None = None
        self._instance_category: dict[str, str] = {}
        self._category_names: dict[str, str] = {}
        self._duplicate_annotations: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ tables
    def _table_path(self, table: str) -> Path:
        return self.tables_dir / f"{table}.json"

    def _load_table(self, table: str) -> list[dict]:
        path = self._table_path(table)
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise LogFormatError(path, "table", f"cannot read {table}.json: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise LogFormatError(path, "table", f"{table}.json is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        except RecursionError as exc:
            raise LogFormatError(path, "table", f"{table}.json is nested deeper than the JSON reader's limit (about 1000 levels)") from exc
        except ValueError as exc:  # not UTF-8, or an integer of more than 4300 digits
            raise LogFormatError(path, "table", f"{table}.json cannot be read: {str(exc)[:200]}") from exc
        if not isinstance(rows, list):
            raise LogFormatError(path, "table", f"expected {table}.json to be a list of records, got {type(rows).__name__}")
        bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
        if bad is not None:
            raise LogFormatError(path, f"{table}[{bad}]", f"expected a record (JSON object), got {type(rows[bad]).__name__} {short_repr(rows[bad], 60)}")
        return rows

    def _field(self, row: dict, key: str, table: str, index: int | None) -> Any:
        if key not in row:
            raise LogFormatError(self._table_path(table), self._where(row, key, table, index), "missing (required)")
        return row[key]

    @staticmethod
    def _where(row: dict, key: str, table: str, index: int | None) -> str:
        token = row.get("token")
        name = f"{table}[{index}]" if index is not None else f"{table} {short_repr(token, 60) if isinstance(token, str) else '?'}"
        return f"{name}.{key}"

    def _text(self, row: dict, key: str, table: str, index: int | None) -> str:
        """A required string field (tokens, file names): anything else would be unhashable or ambiguous."""
        value = self._field(row, key, table, index)
        if not isinstance(value, str):
            raise LogFormatError(self._table_path(table), self._where(row, key, table, index), f"expected a string, got {type(value).__name__} {short_repr(value)}")
        return value

    def _time_ns(self, row: dict, table: str, index: int | None) -> int:
        """A row's ``timestamp`` (microseconds) as integer ns, checked to be in the product's time range."""
        where = self._where(row, "timestamp", table, index)
        try:
            timestamp_ns = timestamp_us_to_ns(self._field(row, "timestamp", table, index))
        except ValueError as exc:
            raise LogFormatError(self._table_path(table), where, str(exc)) from None
        return check_timestamp_ns(timestamp_ns, self._table_path(table), where)

    def _primary_lidar_row(self, sample_token: str) -> dict | None:
        lidars = [row for row in self._keyframe_data.get(sample_token, []) if self._channel_of[row["calibrated_sensor_token"]][1] == "lidar"]
        if not lidars:
            return None
        lidars.sort(key=lambda row: (self._channel_of[row["calibrated_sensor_token"]][0] != self.primary_lidar, self._channel_of[row["calibrated_sensor_token"]][0]))
        return lidars[0]

    def _load_annotation_tables(self) -> None:
        if self._annotations is not None:
            return
        annotations: dict[str, list[dict]] = {}
        if self._table_path("sample_annotation").is_file():
            seen: dict[str, int] = {}
            for i, row in enumerate(self._load_table("sample_annotation")):
                for key in ("token", "sample_token", "instance_token"):
                    self._text(row, key, "sample_annotation", i)
                for key in ("translation", "size", "rotation"):
                    self._field(row, key, "sample_annotation", i)
                if row["token"] in seen:  # frames holding either row fail to load instead of counting one box twice
                    self._duplicate_annotations[row["token"]] = (seen[row["token"]], i)
                seen[row["token"]] = i
                annotations.setdefault(row["sample_token"], []).append(row)
            for table in ("instance", "category"):
                if not self._table_path(table).is_file():
                    raise LogFormatError(self._table_path(table), "table", f"missing nuScenes table {table}.json (sample_annotation.json needs it)")
            instances = self._load_table("instance")
            self._instance_index = {self._text(row, "token", "instance", i): i for i, row in enumerate(instances)}
            self._instance_category = {row["token"]: str(row.get("category_token", "")) for row in instances}
            self._category_names = {
                self._text(row, "token", "category", i): str(self._field(row, "name", "category", i)) for i, row in enumerate(self._load_table("category"))
            }
        self._annotations = annotations

    @property
    def instance_tokens(self) -> tuple[str, ...]:
        """Track id -> ``instance`` token (``instance_tokens[track_id]``); empty without annotations."""
        self._load_annotation_tables()
        return tuple(self._instance_index or ())

    def _ego_pose(self, row: dict) -> SE3:
        if self._ego_poses is None:
            path = self._table_path("ego_pose")
            if not path.is_file():
                raise LogFormatError(path, "table", "missing nuScenes table ego_pose.json")
            self._ego_poses = dict(read_nuscenes_ego_poses(path).records)
        record = self._ego_poses.get(row["ego_pose_token"])
        if record is None:
            raise LogFormatError(self._table_path("sample_data"), f"sample_data {row['token']}", f"ego_pose_token {row['ego_pose_token']} is not in ego_pose.json")
        return record.world_SE3_ego

    def _file(self, row: dict) -> Path:
        """The file a sample_data row names; it must stay inside the data root."""
        where = f"sample_data {row['token']}.filename"
        filename = row["filename"]
        relative = os.path.normpath(filename)
        if os.path.isabs(filename) or relative == ".." or relative.startswith(".." + os.sep) or "\x00" in filename:
            raise LogFormatError(
                self._table_path("sample_data"), where, f"expected a path relative to the data root {self.data_root}, got {short_repr(filename)}: refused"
            )
        path = self.data_root / relative
        try:
            found = path.is_file()
        except OSError as exc:  # e.g. a name longer than the file system allows
            raise LogFormatError(self._table_path("sample_data"), where, f"file {short_repr(filename)}: {exc.strerror or exc}") from exc
        if not found:
            raise LogFormatError(self._table_path("sample_data"), where, f"file {short_repr(filename)} not found at {short_repr(str(path))}")
        return path

    # ------------------------------------------------------------------ LogReader
    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        if not path.is_dir():
            return False
        if (path / "sample.json").is_file() and (path / "sample_data.json").is_file():
            return True
        return any((p / "sample.json").is_file() and (p / "sample_data.json").is_file() for p in path.iterdir() if p.is_dir())

    def list_frames(self) -> list[FrameRef]:
        """One ref per sample, in time order (tables were indexed when the reader opened)."""
        return [FrameRef(self.uri, log_id, i, timestamp_ns, self.name, token) for i, (timestamp_ns, token, log_id) in enumerate(self._frames)]

    def sample_token(self, ref: FrameRef) -> str:
        """The ``sample`` token of a listed frame."""
        self._check_ref(ref)
        if not 0 <= ref.index < len(self._frames) or self._frames[ref.index][0] != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"no sample {ref.index} at {ref.timestamp_ns} ns in this data root")
        return self._frames[ref.index][1]

    def sample_data_ego_poses(self, ref: FrameRef) -> dict[str, SE3]:
        """Channel -> ``world_SE3_ego`` at that channel's key-frame sample_data time."""
        rows = self._keyframe_data.get(self.sample_token(ref), [])
        return {self._channel_of[row["calibrated_sensor_token"]][0]: self._ego_pose(row) for row in rows}

    def _sweep(self, row: dict, channel: str) -> LidarSweep:
        path = self._file(row)
        timestamp_ns = self._time_ns(row, "sample_data", None)
        if path.suffix.lower() == ".pcd":
            from av_pipeline.readers.pcd import pcd_to_sweep, read_pcd

            return pcd_to_sweep(read_pcd(path), channel, timestamp_ns)
        return LidarSweep(channel, timestamp_ns, read_nuscenes_lidar(path), NUSCENES_LIDAR_COLUMNS)

    def _image(self, row: dict, channel: str, model: CameraModel) -> CameraImage:
        path = self._file(row)
        fileformat = str(row.get("fileformat") or path.suffix.lstrip(".")).lower()
        encoding = _IMAGE_ENCODINGS.get(fileformat)
        if encoding is None:
            raise LogFormatError(self._table_path("sample_data"), f"sample_data {row['token']}", f"expected an image fileformat in {sorted(_IMAGE_ENCODINGS)}, got {fileformat!r}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LogFormatError(path, f"sample_data {row['token']} image", f"cannot read: {exc.strerror or exc}") from exc
        return CameraImage(channel, self._time_ns(row, "sample_data", None), encoding, data, model.width_px, model.height_px, source=str(path))

    def _camera_model(self, row: dict, record: NuScenesCalibratedSensor, channel: str) -> CameraModel:
        if record.K is None:
            raise LogFormatError(self._table_path("calibrated_sensor"), f"calibrated_sensor {record.token}", f"camera {channel} has no camera_intrinsic")
        for key in ("width", "height"):
            if isinstance(row.get(key), bool) or not isinstance(row.get(key), int) or not 0 < row[key] <= 1 << 20:
                raise LogFormatError(self._table_path("sample_data"), f"sample_data {row['token']}.{key}", f"expected a positive image {key} for camera {channel}, got {row.get(key)!r}")
        try:
            return CameraModel.from_K(record.K, row["width"], row["height"], name=f"calibrated_sensor {record.token} camera_intrinsic")
        except AVPipelineError as exc:  # e.g. a K with a non-zero lower row: name the table and the record
            raise LogFormatError(self._table_path("calibrated_sensor"), f"calibrated_sensor {record.token}.camera_intrinsic", str(exc)) from exc

    def load_frame(self, ref: FrameRef) -> Frame:
        """Load one sample: LiDAR sweeps, camera images, rig, ego pose, annotations.

        Raises:
            LogFormatError: a missing table or file, an unknown token, a malformed row.
            CalibrationFileError: a bad ``calibrated_sensor`` / ``ego_pose`` record.
        """
        sample = self.sample_token(ref)
        timestamp_ns, _, log_id = self._frames[ref.index]
        primary = self._primary_lidar_row(sample)
        # primary LiDAR first, then by channel name: Frame.lidar is the primary sweep
        rows = sorted(self._keyframe_data.get(sample, []), key=lambda row: (row is not primary, self._channel_of[row["calibrated_sensor_token"]][0]))
        lidars: dict[str, SE3] = {}
        cameras: dict[str, RigCamera] = {}
        sweeps: dict[str, LidarSweep] = {}
        images: dict[str, CameraImage] = {}
        for row in rows:
            channel, modality = self._channel_of[row["calibrated_sensor_token"]]
            record = self._calibrated[row["calibrated_sensor_token"]]
            if channel in lidars or channel in cameras:
                first = next(other["token"] for other in rows if other is not row and self._channel_of[other["calibrated_sensor_token"]][0] == channel)
                raise LogFormatError(
                    self._table_path("sample_data"),
                    f"sample_data {row['token']}",
                    f"sample {sample} has two key-frame {channel} rows ({first} and {row['token']}): which one is the frame's is ambiguous",
                )
            if modality == "lidar":
                lidars[channel] = record.ego_SE3_sensor
                sweeps[channel] = self._sweep(row, channel)
            elif modality == "camera" and (self.cameras is None or channel in self.cameras):
                model = self._camera_model(row, record, channel)
                cameras[channel] = RigCamera(model, record.ego_SE3_sensor)
                images[channel] = self._image(row, channel, model)
        rig = SensorRig(cameras=cameras, lidars=lidars)
        pose_row = primary if primary is not None else (rows[0] if rows else None)
        world_SE3_ego = None if pose_row is None else self._ego_pose(pose_row)

        annotations = None
        self._load_annotation_tables()
        if self._table_path("sample_annotation").is_file():
            annotations = self._annotations_in_ego(sample, world_SE3_ego)
            if primary is not None and len(annotations):
                channel = self._channel_of[primary["calibrated_sensor_token"]][0]
                points_ego = lidars[channel].transform_points(sweeps[channel].xyz)
                annotations = annotations.with_num_lidar_points(annotations.count_points(points_ego))
        source = self._file(primary) if primary is not None else self._table_path("sample")
        return Frame(log_id, timestamp_ns, rig, world_SE3_ego, sweeps, images, annotations=annotations, source_uri=str(source))

    def _annotations_in_ego(self, sample: str, world_SE3_ego: SE3 | None) -> Cuboids:
        rows = (self._annotations or {}).get(sample, [])
        if not rows:
            return Cuboids.empty("ego")
        if world_SE3_ego is None:
            raise LogFormatError(self._table_path("sample_annotation"), f"sample {sample}", "annotations need an ego pose, the sample has no sample_data")
        table = self._table_path("sample_annotation")
        labels, track_ids = [], []
        for row in rows:
            if row["token"] in self._duplicate_annotations:
                first, second = self._duplicate_annotations[row["token"]]
                raise LogFormatError(
                    table, f"sample_annotation {row['token']}", f"the token is used by rows {first} and {second}: a box would be counted twice"
                )
            index = (self._instance_index or {}).get(row["instance_token"])
            if index is None:
                raise LogFormatError(table, f"sample_annotation {row['token']}", f"instance_token {row['instance_token']} is not in instance.json")
            category = self._category_names.get(self._instance_category.get(row["instance_token"], ""))
            if category is None:
                raise LogFormatError(self._table_path("instance"), f"instance {row['instance_token']}", "category_token is not in category.json")
            labels.append(category)
            track_ids.append(index)
        try:
            boxes_world = nuscenes_boxes_to_cuboids(
                np.array([row["translation"] for row in rows], dtype=np.float64),
                np.array([row["size"] for row in rows], dtype=np.float64),
                np.array([row["rotation"] for row in rows], dtype=np.float64),
                labels,
                "world",
                track_ids=track_ids,
            )
        except (ValueError, TypeError, OverflowError) as exc:
            raise LogFormatError(table, f"sample {sample}", f"bad box values (translation, size, rotation): {str(exc)[:200]}") from exc
        # Product classes in labels, nuScenes / Lyft category names in source_labels.
        return with_product_labels(boxes_world.transform(world_SE3_ego.inverse(), "ego"), "nuscenes")


__all__ = [
    "DEFAULT_PRIMARY_LIDAR",
    "NUSCENES_LIDAR_COLUMNS",
    "NuScenesReader",
    "load_nuscenes_sweep",
    "read_nuscenes_lidar",
    "timestamp_us_to_ns",
]
