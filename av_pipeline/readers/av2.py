"""Argoverse 2 Sensor Dataset logs (``av2`` reader).

Layout of one log folder (``<split>/<log_id>/``), Apache Feather tables read with pyarrow::

    sensors/lidar/<timestamp_ns>.feather        x, y, z (float16, ego frame), intensity (uint8),
                                                laser_number (uint8), offset_ns (int32)
    sensors/cameras/<camera>/<timestamp_ns>.jpg optional (ring_front_center, ..., stereo_front_left, ...)
    calibration/egovehicle_SE3_sensor.feather   sensor_name, qw, qx, qy, qz, tx_m, ty_m, tz_m
    calibration/intrinsics.feather              sensor_name, fx_px, fy_px, cx_px, cy_px, k1, k2, k3,
                                                height_px, width_px
    city_SE3_egovehicle.feather                 timestamp_ns, qw, qx, qy, qz, tx_m, ty_m, tz_m
    annotations.feather                         timestamp_ns, track_uuid, category, length_m, width_m,
                                                height_m, qw, qx, qy, qz, tx_m, ty_m, tz_m,
                                                num_interior_pts (absent in the test split)
    map/                                        not read

Frames (one per LiDAR sweep file, in time order; ``log_id`` = the folder name):

- **time**: the sweep file's name, integer nanoseconds (AV2: the sweep's reference time).
- **ego** is AV2's ``egovehicle`` frame (x forward, y left, z up). AV2 stores the two
  stacked VLP-32C sweeps (``up_lidar``, ``down_lidar``) as one sweep already in ``ego`` and
  already motion-compensated to the sweep time, so the frame has one LiDAR, ``"lidar"``, with
  ``ego_SE3_lidar = identity``. Every sensor's extrinsics (the two LiDARs included) are in
  :attr:`Av2SensorReader.ego_SE3_sensors`.
- **points**: ``(N, 6)`` float32 ``x, y, z, intensity (0..255), laser_number (0..63),
  time_offset_ns``. ``time_offset_ns`` is AV2's ``offset_ns`` (capture time after the sweep
  time), kept as a column for information: ``LidarSweep.time_offsets_ns`` is ``None``
  because the points are already compensated and fusion must not de-skew them again.
  float32 holds the offsets to 8 ns (exactly below 16.7 ms).
- **pose**: ``world_SE3_ego`` is ``city_SE3_egovehicle`` at the sweep time (AV2 records a
  pose at every sweep time; another time is interpolated, and a time outside the table is
  an error). ``world`` is AV2's city frame.
- **cameras**: every camera of ``intrinsics.feather`` (option ``cameras=`` to choose), each
  with its nearest image within ``max_image_offset_ns`` (default 50 ms; the ring cameras run
  at 20 Hz) at the image's own time. The released images are undistorted (the av2 devkit
  projects with ``K`` alone), so the models are pinhole. ``k1, k2, k3`` describe the raw lens
  (OpenCV's radial terms with ``p1 = p2 = 0``, per the Argoverse maintainers); they are kept
  in :attr:`Av2SensorReader.lens_distortion` in OpenCV order ``(k1, k2, 0, 0, k3)`` and
  :meth:`Av2SensorReader.raw_lens_model` builds the radtan model of the raw lens.
- **annotations**: the rows of ``annotations.feather`` at the sweep time, in ``ego``: centre
  ``tx_m, ty_m, tz_m``, size ``length_m, width_m, height_m`` (length along the box's +x),
  yaw from the ``wxyz`` quaternion (heading of the box's +x projected on the ego xy plane),
  labels = AV2 ``category``, track ids from ``track_uuid``
  (:func:`~av_pipeline.readers.track_ids.track_id_from_string`; :meth:`track_uuid` maps
  back), ``num_lidar_points`` counted in the sweep. Without ``annotations.feather``,
  ``Frame.annotations`` is ``None``.

Errors: a missing table, a file that is not Feather (or is truncated), a missing column, a
column of the wrong type, nulls, a non-unit quaternion or a sweep time without a pose raise
:class:`~av_pipeline.errors.LogFormatError` naming the file and the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import CalibrationError, LogFormatError, ShapeError
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.track_ids import track_id_from_string
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep
from calibration import SE3
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig
from calibration.rotation import check_unit_quaternion, wxyz_to_rotation
from calibration.trajectory import PoseTrajectory

#: Columns of an AV2 sweep as loaded (see the module docstring).
AV2_LIDAR_COLUMNS = ("x", "y", "z", "intensity", "laser_number", "time_offset_ns")
#: Name of the one (merged, ego-frame) LiDAR sweep.
AV2_LIDAR = "lidar"
#: Default largest |image time - sweep time| for a camera's image to join a frame.
AV2_MAX_IMAGE_OFFSET_NS = 50_000_000

SWEEP_SCHEMA = {"x": "float", "y": "float", "z": "float", "intensity": "int", "laser_number": "int", "offset_ns": "int"}
POSE_SCHEMA = {"qw": "float", "qx": "float", "qy": "float", "qz": "float", "tx_m": "float", "ty_m": "float", "tz_m": "float"}
EXTRINSICS_SCHEMA = {"sensor_name": "string", **POSE_SCHEMA}
INTRINSICS_SCHEMA = {"sensor_name": "string", "fx_px": "float", "fy_px": "float", "cx_px": "float", "cy_px": "float", "height_px": "int", "width_px": "int"}
CITY_POSES_SCHEMA = {"timestamp_ns": "int", **POSE_SCHEMA}
ANNOTATIONS_SCHEMA = {
    "timestamp_ns": "int",
    "track_uuid": "string",
    "category": "string",
    "length_m": "float",
    "width_m": "float",
    "height_m": "float",
    **POSE_SCHEMA,
}
_LENS_COLUMNS = ("k1", "k2", "k3")


def read_feather_columns(
    path: Path, schema: dict[str, str], optional: dict[str, str] | None = None, *, finite: bool = True
) -> dict[str, np.ndarray]:
    """Read the named columns of a Feather table as numpy arrays, checking their types.

    Args:
        path: the ``.feather`` file.
        schema: column -> ``"float"``, ``"int"`` or ``"string"`` (required columns).
        optional: the same for columns that may be absent (left out of the result).
        finite: refuse NaN/inf in float columns (sweeps pass ``False``: points are loaded
            as stored and ingest validation reports them).

    Returns:
        column -> ``(R,)`` array: float64 for floats, int64 for integers, object (str) for strings.

    Raises:
        LogFormatError: a missing or unreadable file, a missing column, a column of another
            type, nulls, or NaN/inf (with ``finite``); ``field`` is the column.
    """
    import pyarrow as pa
    from pyarrow import feather

    if not path.is_file():
        raise LogFormatError(path, "table", "missing required AV2 table")
    try:
        table = feather.read_table(str(path), memory_map=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LogFormatError(path, "table", f"not a readable Feather file (truncated or corrupt): {exc}") from exc
    wanted = dict(schema)
    for name, kind in (optional or {}).items():
        if name in table.column_names:
            wanted[name] = kind
    out: dict[str, np.ndarray] = {}
    for name, kind in wanted.items():
        if name not in table.column_names:
            raise LogFormatError(path, name, f"missing column; expected {sorted(schema)}, the file has {table.column_names}")
        column = table.column(name)
        typ = column.type
        ok = {"float": pa.types.is_floating(typ), "int": pa.types.is_integer(typ), "string": pa.types.is_string(typ) or pa.types.is_large_string(typ)}[kind]
        if not ok:
            raise LogFormatError(path, name, f"expected a {kind} column, got Arrow type {typ}")
        if column.null_count:
            raise LogFormatError(path, name, f"{column.null_count} null values")
        values = column.to_numpy()
        if kind == "float":
            values = values.astype(np.float64)
            if finite and not np.isfinite(values).all():
                raise LogFormatError(path, name, f"{int((~np.isfinite(values)).sum())} NaN/inf values")
        elif kind == "int":
            values = values.astype(np.int64)
        else:
            values = values.astype(object)
        out[name] = values
    return out


def _se3_rows(path: Path, columns: dict[str, np.ndarray]) -> list[SE3]:
    quaternions = np.stack([columns[k] for k in ("qw", "qx", "qy", "qz")], axis=1)
    translations = np.stack([columns[k] for k in ("tx_m", "ty_m", "tz_m")], axis=1)
    try:
        rotations = wxyz_to_rotation(check_unit_quaternion(quaternions, "qw, qx, qy, qz"))
    except CalibrationError as exc:
        norms = np.abs(np.linalg.norm(quaternions, axis=1) - 1.0)
        raise LogFormatError(path, "qw, qx, qy, qz", f"row {int(np.argmax(norms))}: {exc}") from exc
    return [SE3(rotations[i], translations[i]) for i in range(len(translations))]


def read_av2_sweep(path: str | Path) -> LidarSweep:
    """Read one AV2 sweep file as a :class:`LidarSweep` named :data:`AV2_LIDAR` in ``ego``.

    The time is the file's name (integer nanoseconds).

    Raises:
        LogFormatError: a name that is not an integer, or a bad table (see
            :func:`read_feather_columns`).
    """
    path = Path(path)
    stem = path.name[: -len(".feather")] if path.name.endswith(".feather") else path.stem
    if not stem.isdigit():
        raise LogFormatError(path, "file name", "expected <timestamp_ns>.feather")
    columns = read_feather_columns(path, SWEEP_SCHEMA, finite=False)
    points = np.stack(
        [columns["x"], columns["y"], columns["z"], columns["intensity"], columns["laser_number"], columns["offset_ns"]], axis=1
    ).astype(np.float32)
    return LidarSweep(AV2_LIDAR, int(stem), points, AV2_LIDAR_COLUMNS)


@register_reader
class Av2SensorReader(LogReader):
    """One Argoverse 2 Sensor Dataset log folder; see the module docstring.

    Options:
        cameras: camera names to load (a list or a comma-separated string; default all).
        max_image_offset_ns: a camera's nearest image further than this from the sweep is
            left out of the frame (default 50 ms).

    Attributes:
        ego_SE3_sensors: sensor name -> ``ego_SE3_sensor`` for every row of
            ``egovehicle_SE3_sensor.feather`` (cameras, ``up_lidar``, ``down_lidar``).
        lens_distortion: camera -> ``(k1, k2, 0, 0, k3)``, the raw lens in OpenCV order
            (empty when ``intrinsics.feather`` has no ``k1..k3``).
    """

    name = "av2"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"cameras", "max_image_offset_ns"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown av2 options {sorted(unknown)}; expected cameras, max_image_offset_ns")
        self.root = Path(uri)
        if not (self.root / "sensors" / "lidar").is_dir():
            raise LogFormatError(self.root / "sensors" / "lidar", None, "expected an AV2 log folder with sensors/lidar/")
        cameras = options.get("cameras")
        if isinstance(cameras, str):
            cameras = [name.strip() for name in cameras.split(",") if name.strip()]
        self.max_image_offset_ns = int(options.get("max_image_offset_ns", AV2_MAX_IMAGE_OFFSET_NS))

        extrinsics_path = self.root / "calibration" / "egovehicle_SE3_sensor.feather"
        extrinsics = read_feather_columns(extrinsics_path, EXTRINSICS_SCHEMA)
        self.ego_SE3_sensors: dict[str, SE3] = dict(zip((str(n) for n in extrinsics["sensor_name"]), _se3_rows(extrinsics_path, extrinsics)))

        intrinsics_path = self.root / "calibration" / "intrinsics.feather"
        intrinsics = read_feather_columns(intrinsics_path, INTRINSICS_SCHEMA, {k: "float" for k in _LENS_COLUMNS})
        self._models: dict[str, CameraModel] = {}
        self.lens_distortion: dict[str, tuple[float, ...]] = {}
        wanted = None if cameras is None else {str(name) for name in cameras}
        for i, camera in enumerate(str(n) for n in intrinsics["sensor_name"]):
            if wanted is not None and camera not in wanted:
                continue
            if camera not in self.ego_SE3_sensors:
                raise LogFormatError(extrinsics_path, "sensor_name", f"camera {camera!r} of intrinsics.feather has no extrinsics row")
            K = np.array([[intrinsics["fx_px"][i], 0.0, intrinsics["cx_px"][i]], [0.0, intrinsics["fy_px"][i], intrinsics["cy_px"][i]], [0.0, 0.0, 1.0]])
            try:
                self._models[camera] = CameraModel.from_K(K, int(intrinsics["width_px"][i]), int(intrinsics["height_px"][i]), name=f"{camera} K")
            except (CalibrationError, ShapeError) as exc:
                raise LogFormatError(intrinsics_path, f"{camera} fx_px..height_px", str(exc)) from exc
            if all(k in intrinsics for k in _LENS_COLUMNS):
                k1, k2, k3 = (float(intrinsics[k][i]) for k in _LENS_COLUMNS)
                self.lens_distortion[camera] = (k1, k2, 0.0, 0.0, k3)
        if wanted is not None and wanted - set(self._models):
            raise LogFormatError(intrinsics_path, "sensor_name", f"cameras {sorted(wanted - set(self._models))} are not in intrinsics.feather")

        self._frames: list[tuple[int, Path]] = []
        for path in sorted((self.root / "sensors" / "lidar").glob("*.feather")):
            stem = path.name[: -len(".feather")]
            if not stem.isdigit():
                raise LogFormatError(path, "file name", "expected <timestamp_ns>.feather")
            self._frames.append((int(stem), path))
        self._frames.sort()
        self._image_times: dict[str, np.ndarray] = {}
        self._poses: tuple[dict[int, SE3], PoseTrajectory | None] | None = None
        self._annotations: dict[str, np.ndarray] | None = None
        self._uuid_of: dict[int, str] = {}

    # ------------------------------------------------------------------ LogReader
    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        return path.is_dir() and (path / "sensors" / "lidar").is_dir() and (path / "calibration" / "egovehicle_SE3_sensor.feather").is_file()

    def list_frames(self) -> list[FrameRef]:
        """One ref per sweep file, in time order (names only; no file is read)."""
        return [FrameRef(self.uri, self.log_id, i, timestamp_ns, self.name) for i, (timestamp_ns, _) in enumerate(self._frames)]

    def load_frame(self, ref: FrameRef) -> Frame:
        """Load one sweep with its pose, images, rig and annotations (module docstring).

        Raises:
            LogFormatError: a bad or missing table or file (named with the column).
        """
        self._check_ref(ref)
        if not 0 <= ref.index < len(self._frames) or self._frames[ref.index][0] != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"no sweep {ref.index} at {ref.timestamp_ns} ns in this log")
        timestamp_ns, sweep_path = self._frames[ref.index]
        sweep = read_av2_sweep(sweep_path)
        world_SE3_ego = self._pose_at(timestamp_ns)
        cameras = {name: RigCamera(model, self.ego_SE3_sensors[name]) for name, model in self._models.items()}
        rig = SensorRig(cameras=cameras, lidars={AV2_LIDAR: SE3.identity()})
        images = {}
        for camera, model in self._models.items():
            image = self._nearest_image(camera, model, timestamp_ns)
            if image is not None:
                images[camera] = image
        annotations = self._annotations_at(timestamp_ns)
        if annotations is not None and len(annotations):
            annotations = annotations.with_num_lidar_points(annotations.count_points(sweep.xyz))
        if annotations is not None:
            annotations = with_product_labels(annotations, "av2")  # "REGULAR_VEHICLE" -> "car", kept as source label
        return Frame(self.log_id, timestamp_ns, rig, world_SE3_ego, {AV2_LIDAR: sweep}, images, annotations=annotations, source_uri=str(sweep_path))

    # ------------------------------------------------------------------ helpers
    def raw_lens_model(self, camera: str) -> CameraModel:
        """The radtan model of ``camera``'s raw lens: the pinhole intrinsics with
        ``(k1, k2, 0, 0, k3)``. The released images are already undistorted: use this only
        for raw (distorted) images.

        Raises:
            KeyError: the camera is not loaded or ``intrinsics.feather`` has no ``k1..k3``.
        """
        if camera not in self.lens_distortion:
            raise KeyError(f"no lens distortion for camera {camera!r}; cameras with k1..k3: {sorted(self.lens_distortion)}")
        model = self._models[camera]
        return CameraModel.from_K(model.K, model.width_px, model.height_px, "radtan", self.lens_distortion[camera])

    def track_uuid(self, track_id: int) -> str:
        """The ``track_uuid`` behind a track id of a loaded frame's annotations.

        Raises:
            KeyError: no loaded annotation has that id.
        """
        return self._uuid_of[int(track_id)]

    def _pose_at(self, timestamp_ns: int) -> SE3:
        path = self.root / "city_SE3_egovehicle.feather"
        if self._poses is None:
            columns = read_feather_columns(path, CITY_POSES_SCHEMA)
            times = columns["timestamp_ns"]
            poses = _se3_rows(path, columns)
            exact = dict(zip((int(t) for t in times), poses))
            times_unique, first = np.unique(times, return_index=True)
            trajectory = None
            if len(times_unique) >= 2:
                trajectory = PoseTrajectory.from_poses(times_unique, [poses[i] for i in first], dst_frame="world", src_frame="ego")
            self._poses = (exact, trajectory)
        exact, trajectory = self._poses
        if timestamp_ns in exact:
            return exact[timestamp_ns]
        if trajectory is None or not trajectory.start_ns <= timestamp_ns <= trajectory.end_ns:
            span = "no poses" if trajectory is None else f"poses cover {trajectory.start_ns}..{trajectory.end_ns} ns"
            raise LogFormatError(path, "timestamp_ns", f"no pose at or around sweep time {timestamp_ns} ns ({span})")
        return trajectory.at(timestamp_ns)

    def _nearest_image(self, camera: str, model: CameraModel, timestamp_ns: int) -> CameraImage | None:
        folder = self.root / "sensors" / "cameras" / camera
        if camera not in self._image_times:
            times = []
            if folder.is_dir():
                for path in folder.glob("*.jpg"):
                    if path.stem.isdigit():
                        times.append(int(path.stem))
            self._image_times[camera] = np.array(sorted(times), dtype=np.int64)
        times = self._image_times[camera]
        if not len(times):
            return None
        k = int(np.searchsorted(times, timestamp_ns))
        candidates = [j for j in (k - 1, k) if 0 <= j < len(times)]
        j = min(candidates, key=lambda j: abs(int(times[j]) - timestamp_ns))
        if abs(int(times[j]) - timestamp_ns) > self.max_image_offset_ns:
            return None
        path = folder / f"{int(times[j])}.jpg"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LogFormatError(path, f"{camera} image", f"cannot read: {exc}") from exc
        return CameraImage(camera, int(times[j]), "jpeg", data, model.width_px, model.height_px, source=str(path))

    def _annotations_at(self, timestamp_ns: int) -> Cuboids | None:
        path = self.root / "annotations.feather"
        if self._annotations is None:
            if not path.is_file():
                return None
            self._annotations = read_feather_columns(path, ANNOTATIONS_SCHEMA)
        table = self._annotations
        rows = np.flatnonzero(table["timestamp_ns"] == timestamp_ns)
        if not len(rows):
            return Cuboids.empty("ego")
        sub = {name: values[rows] for name, values in table.items()}
        poses = _se3_rows(path, sub)
        yaws = np.array([np.arctan2(pose.rotation[1, 0], pose.rotation[0, 0]) for pose in poses])
        sizes = np.stack([sub["length_m"], sub["width_m"], sub["height_m"]], axis=1)
        if (sizes <= 0).any():
            bad = int(np.flatnonzero((sizes <= 0).any(axis=1))[0])
            raise LogFormatError(path, "length_m, width_m, height_m", f"row {int(rows[bad])}: expected positive sizes, got {sizes[bad].tolist()}")
        uuids = [str(u) for u in sub["track_uuid"]]
        track_ids = [track_id_from_string(u) for u in uuids]
        self._uuid_of.update(zip(track_ids, uuids))
        return Cuboids.from_arrays(
            "ego",
            np.stack([sub["tx_m"], sub["ty_m"], sub["tz_m"]], axis=1),
            sizes,
            yaws,
            [str(c) for c in sub["category"]],
            track_ids=track_ids,
        )


__all__ = ["AV2_LIDAR", "AV2_LIDAR_COLUMNS", "AV2_MAX_IMAGE_OFFSET_NS", "Av2SensorReader", "read_av2_sweep", "read_feather_columns"]
