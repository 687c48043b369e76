"""nuScenes-schema calibration tables (nuScenes, Lyft Level 5, and others using the schema).

``calibrated_sensor.json`` is a list of records::

    {"token": ..., "sensor_token": ...,
     "translation": [x, y, z],                 # metres, sensor -> ego
     "rotation": [w, x, y, z],                 # scalar-first quaternion, sensor -> ego
     "camera_intrinsic": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}   # or [] for non-cameras

``ego_pose.json``: ``{"token", "timestamp" (microseconds), "rotation" (wxyz), "translation"}``
(ego -> global). :func:`read_nuscenes_rig` joins ``sample_data``, ``calibrated_sensor`` and
``sensor`` into a :class:`~calibration.rig.SensorRig` for one sample or a set of
sample_data records (image sizes come from ``sample_data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.errors import CalibrationError, CalibrationFileError, short_repr
from calibration.formats._common import (
    PathLike,
    Unrepresented,
    camera_from_K,
    load_json,
    parse_int,
    parse_number,
    parse_number_list,
    parse_str,
    read_text,
    require_key,
    require_mapping,
    se3_from_wxyz,
)
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

#: Largest accepted ``| |q| - 1 |`` of a table quaternion (the tables store unit
#: quaternions to ~1e-9; this catches non-rotations and xyzw/wxyz mix-ups on bad input).
QUATERNION_TOL = 1e-6

_CALIBRATED_SENSOR_KEYS = ("token", "sensor_token", "translation", "rotation", "camera_intrinsic")
_EGO_POSE_KEYS = ("token", "timestamp", "rotation", "translation")


@dataclass(frozen=True)
class NuScenesCalibratedSensor:
    """One ``calibrated_sensor`` record, values exactly as in the table.

    Attributes:
        token, sensor_token: the record's and its ``sensor`` row's tokens.
        translation_m: sensor origin in the ego frame.
        rotation_wxyz: sensor -> ego rotation, scalar first (sign as stored).
        camera_intrinsic: ``(3, 3)`` rows, or ``None`` for sensors without one (``[]``).
    """

    token: str
    sensor_token: str
    translation_m: tuple[float, float, float]
    rotation_wxyz: tuple[float, float, float, float]
    camera_intrinsic: tuple[tuple[float, float, float], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "translation_m", tuple(float(v) for v in self.translation_m))
        object.__setattr__(self, "rotation_wxyz", tuple(float(v) for v in self.rotation_wxyz))
        if self.camera_intrinsic is not None:
            object.__setattr__(self, "camera_intrinsic", tuple(tuple(float(v) for v in row) for row in self.camera_intrinsic))
        self.ego_SE3_sensor  # validates the quaternion  # noqa: B018

    @classmethod
    def from_SE3(
        cls, token: str, sensor_token: str, ego_SE3_sensor: SE3, camera_intrinsic: NDArrayFloat | None = None
    ) -> NuScenesCalibratedSensor:
        """A record for ``ego_SE3_sensor`` (quaternion with ``w >= 0``)."""
        K = None if camera_intrinsic is None else tuple(map(tuple, np.asarray(camera_intrinsic, dtype=np.float64)))
        return cls(token, sensor_token, tuple(ego_SE3_sensor.translation), tuple(ego_SE3_sensor.as_wxyz()), K)  # type: ignore[arg-type]

    @property
    def ego_SE3_sensor(self) -> SE3:
        """Sensor -> ego."""
        return SE3.from_wxyz(self.rotation_wxyz, self.translation_m, tol=QUATERNION_TOL)

    @property
    def K(self) -> NDArrayFloat | None:
        """``camera_intrinsic`` as a ``(3, 3)`` array, or ``None``."""
        return None if self.camera_intrinsic is None else np.array(self.camera_intrinsic)


@dataclass(frozen=True)
class NuScenesEgoPose:
    """One ``ego_pose`` record.

    Attributes:
        token: the record's token.
        timestamp_us: as stored (microseconds; Lyft stores fractional floats).
        translation_m: ego origin in the global frame.
        rotation_wxyz: ego -> global rotation, scalar first.
    """

    token: str
    timestamp_us: int | float
    translation_m: tuple[float, float, float]
    rotation_wxyz: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "translation_m", tuple(float(v) for v in self.translation_m))
        object.__setattr__(self, "rotation_wxyz", tuple(float(v) for v in self.rotation_wxyz))
        self.world_SE3_ego  # validates the quaternion  # noqa: B018

    @property
    def timestamp_ns(self) -> int:
        """The timestamp in integer nanoseconds (decimal digits as stored, rounded to 1 ns)."""
        return int((Decimal(repr(self.timestamp_us)) * 1000).to_integral_value())

    @property
    def world_SE3_ego(self) -> SE3:
        """Ego -> global ("world")."""
        return SE3.from_wxyz(self.rotation_wxyz, self.translation_m, tol=QUATERNION_TOL)


@dataclass(frozen=True)
class NuScenesTable:
    """A read table: token -> record, plus notes on what was not represented.

    Attributes:
        records: token -> record, in file order.
        unrepresented: unknown keys in the records.
        path: the file.
    """

    records: Mapping[str, NuScenesCalibratedSensor | NuScenesEgoPose]
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", MappingProxyType(dict(self.records)))


@dataclass(frozen=True)
class NuScenesRig:
    """A rig built from the tables, with the sample_data it came from.

    Attributes:
        rig: cameras and LiDARs by ``sensor.channel``, extrinsics to ``ego``.
        sample_data_tokens: channel -> the ``sample_data`` token used.
        unrepresented: sensors a rig cannot hold (radars, other modalities).
    """

    rig: SensorRig
    sample_data_tokens: Mapping[str, str]
    unrepresented: tuple[Unrepresented, ...] = ()


# ---------------------------------------------------------------------- reading
def read_nuscenes_calibrated_sensors(path: PathLike) -> NuScenesTable:
    """Read ``calibrated_sensor.json``.

    Raises:
        CalibrationFileError: not JSON, not a list of records, a missing key, a wrong count,
            a non-number or NaN/inf, a quaternion that is not unit, a duplicate token.
    """
    return parse_nuscenes_calibrated_sensors(read_text(path), path=str(path))


def parse_nuscenes_calibrated_sensors(text: str, *, path: str = "<string>") -> NuScenesTable:
    """Parse ``calibrated_sensor.json`` text; see :func:`read_nuscenes_calibrated_sensors`."""
    records, notes = {}, []
    for i, item in enumerate(_load_records(text, path)):
        where = f"calibrated_sensor[{i}]"
        record = require_mapping(item, path, where)
        token = parse_str(require_key(record, "token", path, f"{where}.token"), path, f"{where}.token")
        translation = parse_number_list(require_key(record, "translation", path, f"{where}.translation"), path, f"{where}.translation", 3)
        rotation = parse_number_list(require_key(record, "rotation", path, f"{where}.rotation"), path, f"{where}.rotation", 4)
        se3_from_wxyz(rotation, translation, path, f"{where}.rotation", QUATERNION_TOL)
        raw_K = require_key(record, "camera_intrinsic", path, f"{where}.camera_intrinsic")
        K = _intrinsic(raw_K, path, f"{where}.camera_intrinsic")
        sensor_token = parse_str(require_key(record, "sensor_token", path, f"{where}.sensor_token"), path, f"{where}.sensor_token")
        if token in records:
            raise CalibrationFileError(path, f"{where}.token", f"expected unique tokens, got {short_repr(token)} twice")
        records[token] = NuScenesCalibratedSensor(token, sensor_token, tuple(translation), tuple(rotation), K)  # type: ignore[arg-type]
        notes += [Unrepresented(f"{where}.{key}", "unknown key; ignored") for key in record if key not in _CALIBRATED_SENSOR_KEYS]
    return NuScenesTable(records, tuple(notes), path)


def read_nuscenes_ego_poses(path: PathLike) -> NuScenesTable:
    """Read ``ego_pose.json``; errors as :func:`read_nuscenes_calibrated_sensors`."""
    return parse_nuscenes_ego_poses(read_text(path), path=str(path))


def parse_nuscenes_ego_poses(text: str, *, path: str = "<string>") -> NuScenesTable:
    """Parse ``ego_pose.json`` text; see :func:`read_nuscenes_ego_poses`."""
    records, notes = {}, []
    for i, item in enumerate(_load_records(text, path)):
        where = f"ego_pose[{i}]"
        record = require_mapping(item, path, where)
        token = parse_str(require_key(record, "token", path, f"{where}.token"), path, f"{where}.token")
        raw_time = require_key(record, "timestamp", path, f"{where}.timestamp")
        parse_number(raw_time, path, f"{where}.timestamp")
        if isinstance(raw_time, str):
            raise CalibrationFileError(path, f"{where}.timestamp", f"expected a number, got str {short_repr(raw_time)}")
        translation = parse_number_list(require_key(record, "translation", path, f"{where}.translation"), path, f"{where}.translation", 3)
        rotation = parse_number_list(require_key(record, "rotation", path, f"{where}.rotation"), path, f"{where}.rotation", 4)
        se3_from_wxyz(rotation, translation, path, f"{where}.rotation", QUATERNION_TOL)
        if token in records:
            raise CalibrationFileError(path, f"{where}.token", f"expected unique tokens, got {short_repr(token)} twice")
        records[token] = NuScenesEgoPose(token, raw_time, tuple(translation), tuple(rotation))  # type: ignore[arg-type]
        notes += [Unrepresented(f"{where}.{key}", "unknown key; ignored") for key in record if key not in _EGO_POSE_KEYS]
    return NuScenesTable(records, tuple(notes), path)


def read_nuscenes_rig(
    tables_dir: PathLike,
    *,
    sample_token: str | None = None,
    sample_data_tokens: Iterable[str] | None = None,
) -> NuScenesRig:
    """Build a rig from ``sample_data``, ``calibrated_sensor`` and ``sensor`` tables.

    Exactly one of ``sample_token`` (its key-frame sample_data records) or
    ``sample_data_tokens`` selects the records. Cameras get their size from
    ``sample_data.width/height`` and a pinhole model from ``camera_intrinsic`` (nuScenes
    images are undistorted); LiDARs their ``ego_SE3_lidar``. Names are ``sensor.channel``.

    Args:
        tables_dir: the folder with the JSON tables (``<dataroot>/v1.0-mini``), or a data
            root with exactly one such sub-folder.

    Raises:
        CalibrationFileError: a bad table, an unknown token, no records for the sample, one
            channel with two different calibrations, a camera without intrinsics or size.
    """
    if (sample_token is None) == (sample_data_tokens is None):
        raise CalibrationError("read_nuscenes_rig: expected exactly one of sample_token or sample_data_tokens")
    folder = _tables_folder(Path(tables_dir))
    sensor_path, sample_data_path = str(folder / "sensor.json"), str(folder / "sample_data.json")
    calibrated = read_nuscenes_calibrated_sensors(folder / "calibrated_sensor.json")
    sensors = {row["token"]: row for row in _rows(sensor_path, "sensor", ("token", "channel", "modality"))}
    sample_data = _rows(sample_data_path, "sample_data", ("token", "calibrated_sensor_token"))
    if sample_token is not None:
        chosen = [row for row in sample_data if row.get("sample_token") == sample_token and row.get("is_key_frame", True)]
        if not chosen:
            raise CalibrationFileError(sample_data_path, "sample_token", f"expected key-frame records of sample {sample_token!r}, found none")
    else:
        by_token = {row["token"]: row for row in sample_data}
        wanted = list(dict.fromkeys(sample_data_tokens or ()))
        missing = [token for token in wanted if token not in by_token]
        if missing:
            raise CalibrationFileError(sample_data_path, "token", f"expected known sample_data tokens, got unknown {missing[:3]}")
        chosen = [by_token[token] for token in wanted]

    cameras: dict[str, RigCamera] = {}
    lidars: dict[str, SE3] = {}
    used: dict[str, tuple[str, str]] = {}  # channel -> (sample_data token, calibrated_sensor token)
    notes: list[Unrepresented] = []
    for row in chosen:
        where = f"sample_data {row['token']!r}"
        cs_token = row["calibrated_sensor_token"]
        if cs_token not in calibrated.records:
            raise CalibrationFileError(calibrated.path, "token", f"expected the calibrated_sensor {cs_token!r} of {where}, not found")
        record = calibrated.records[cs_token]
        if record.sensor_token not in sensors:
            raise CalibrationFileError(sensor_path, "token", f"expected the sensor {record.sensor_token!r} of calibrated_sensor {cs_token!r}, not found")
        channel = parse_str(sensors[record.sensor_token]["channel"], sensor_path, "channel")
        modality = sensors[record.sensor_token]["modality"]
        if channel in used:
            if used[channel][1] != cs_token and calibrated.records[used[channel][1]] != record:
                raise CalibrationFileError(
                    calibrated.path, channel, f"expected one calibration per channel, got two ({used[channel][1]!r}, {cs_token!r})"
                )
            continue
        used[channel] = (row["token"], cs_token)
        if modality == "camera":
            if record.K is None:
                raise CalibrationFileError(calibrated.path, f"{cs_token}.camera_intrinsic", f"expected a 3x3 matrix for camera {channel}, got []")
            size = (parse_int(row.get("width"), sample_data_path, f"{where}.width"), parse_int(row.get("height"), sample_data_path, f"{where}.height"))
            model = camera_from_K(record.K, size, calibrated.path, f"{cs_token}.camera_intrinsic")
            cameras[channel] = RigCamera(model, record.ego_SE3_sensor)
        elif modality == "lidar":
            lidars[channel] = record.ego_SE3_sensor
        else:
            notes.append(Unrepresented(channel, f"{modality} sensor: SensorRig holds cameras and LiDARs only"))
    tokens = {channel: sd_token for channel, (sd_token, _) in used.items()}
    return NuScenesRig(SensorRig(cameras=cameras, lidars=lidars), tokens, tuple(notes))


# ---------------------------------------------------------------------- writing
def format_nuscenes_calibrated_sensors(records: Iterable[NuScenesCalibratedSensor]) -> str:
    """``calibrated_sensor.json`` text (numbers exact; ``camera_intrinsic: []`` for non-cameras)."""
    rows = [
        {
            "token": r.token,
            "sensor_token": r.sensor_token,
            "translation": list(r.translation_m),
            "rotation": list(r.rotation_wxyz),
            "camera_intrinsic": [] if r.camera_intrinsic is None else [list(row) for row in r.camera_intrinsic],
        }
        for r in records
    ]
    return json.dumps(rows, indent=1) + "\n"


def format_nuscenes_ego_poses(records: Iterable[NuScenesEgoPose]) -> str:
    """``ego_pose.json`` text."""
    rows = [
        {"token": r.token, "timestamp": r.timestamp_us, "rotation": list(r.rotation_wxyz), "translation": list(r.translation_m)}
        for r in records
    ]
    return json.dumps(rows, indent=1) + "\n"


def write_nuscenes_calibrated_sensors(records: Iterable[NuScenesCalibratedSensor], path: PathLike) -> None:
    """Write :func:`format_nuscenes_calibrated_sensors` to ``path``."""
    Path(path).write_text(format_nuscenes_calibrated_sensors(records), encoding="utf-8")


def write_nuscenes_ego_poses(records: Iterable[NuScenesEgoPose], path: PathLike) -> None:
    """Write :func:`format_nuscenes_ego_poses` to ``path``."""
    Path(path).write_text(format_nuscenes_ego_poses(records), encoding="utf-8")


# ---------------------------------------------------------------------- helpers
def _load_records(text: str, path: str) -> list:
    rows = load_json(text, path)
    if not isinstance(rows, list):
        raise CalibrationFileError(path, None, f"expected a JSON list of records, got {type(rows).__name__}")
    return rows


def _rows(path: str, table: str, keys: Sequence[str]) -> list[dict]:
    """The table's records; each must hold ``keys`` as strings (tokens, channel names)."""
    rows = _load_records(read_text(path), path)
    for i, row in enumerate(rows):
        require_mapping(row, path, f"{table}[{i}]")
        for key in keys:
            parse_str(require_key(row, key, path, f"{table}[{i}].{key}"), path, f"{table}[{i}].{key}")
    return rows


def _intrinsic(value: object, path: str, field: str) -> tuple[tuple[float, ...], ...] | None:
    if isinstance(value, list) and not value:
        return None
    if not isinstance(value, list) or len(value) != 3:
        got = f"{len(value)} rows" if isinstance(value, list) else type(value).__name__
        raise CalibrationFileError(path, field, f"expected [] or 3 rows of 3 numbers, got {got}")
    return tuple(tuple(parse_number_list(row, path, f"{field}[{r}]", 3)) for r, row in enumerate(value))


def _tables_folder(root: Path) -> Path:
    if (root / "calibrated_sensor.json").is_file():
        return root
    candidates = sorted(p for p in root.iterdir() if (p / "calibrated_sensor.json").is_file()) if root.is_dir() else []
    if len(candidates) != 1:
        found = [p.name for p in candidates]
        raise CalibrationFileError(root, None, f"expected calibrated_sensor.json here or in exactly one sub-folder, found {found or 'none'}")
    return candidates[0]
