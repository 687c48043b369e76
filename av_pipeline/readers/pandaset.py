"""PandaSet sequences (``pandaset`` reader).

Layout of one sequence folder (``<root>/<sequence id>/``, e.g. ``002/``)::

    lidar/00.pkl.gz ... 79.pkl.gz      pandas DataFrames: x, y, z (world, m), i (0..255), t (s), d (0 | 1)
    lidar/poses.json                   per frame {"position": {x, y, z}, "heading": {w, x, y, z}}
    lidar/timestamps.json              per frame, float seconds
    camera/<name>/00.jpg ...           back_camera, front_camera, front_left_camera, ...
    camera/<name>/intrinsics.json      {"fx", "fy", "cx", "cy"}
    camera/<name>/poses.json           per frame, world pose of the camera (same form as above)
    camera/<name>/timestamps.json      per frame, float seconds
    annotations/cuboids/00.pkl.gz ...  DataFrames in the world frame (optional)
    annotations/semseg/, meta/         not read

The ``.pkl.gz`` files are pandas pickles. They are never opened with plain ``pickle``:
:func:`~av_pipeline.readers.restricted_pickle.read_dataframe_pickle` allows only the pandas
and numpy constructors a DataFrame needs and refuses anything else (e.g. ``os.system``) with
a :class:`~av_pipeline.errors.LogFormatError` naming the file. pandas is needed (the
``pandaset`` extra).

Frames (one per LiDAR file, ``log_id`` = the sequence folder's name):

- **time**: ``lidar/timestamps.json`` (float seconds, converted exactly from the decimal
  the JSON holds to integer nanoseconds).
- **ego**: PandaSet's poses are those of the mechanical Pandar64, whose frame has x to the
  right, y forward, z up. The product's ``ego`` is that sensor's origin with the product
  axes (x forward, y left, z up): ``world_SE3_ego = world_SE3_pandar64 @ pandar64_SE3_ego``,
  ``pandar64_SE3_ego`` = +90 degrees about z (what OpenPCDet's PandaSet loader does).
- **LiDARs**: ``d == 0`` is ``"pandar64"`` (the 360-degree LiDAR), ``d == 1`` is
  ``"pandar_gt"`` (the forward-facing PandarGT). Both sweeps are moved from ``world`` to
  ``ego`` with the frame's pose and have ``ego_SE3_lidar = identity`` (PandaSet does not
  publish the PandarGT's mounting, so its sweep is expressed in ``ego``). The primary LiDAR
  (option ``primary_lidar=``, default ``"pandar64"``) comes first; the other is left out of
  a frame where it has no points. Points: ``(N, 5)`` float32 ``x, y, z, intensity (0..255),
  time_offset_ns`` (``t`` minus the frame time); the world-frame points are already
  motion-compensated, so ``LidarSweep.time_offsets_ns`` is ``None`` and fusion does not
  de-skew them again.
- **cameras**: each ``camera/<name>`` folder (option ``cameras=``): pinhole model from
  ``intrinsics.json`` (the devkit projects with ``K`` alone; no distortion is published) and
  the image size read from the JPEG header; image ``k`` at ``timestamps.json[k]``. The
  extrinsics are ``ego_SE3_camera = world_SE3_ego(t_image)^-1 @ world_SE3_camera[k]``, with
  the ego pose interpolated to the image time along the LiDAR poses, so the ego's motion
  between LiDAR and camera times does not leak into the rig.
- **annotations**: ``annotations/cuboids/<k>.pkl.gz`` moved from ``world`` to ``ego``.
  PandaSet's ``dimensions.x`` is the width and ``dimensions.y`` the length, and ``yaw = 0``
  points the length along world +y: the product size is ``(dimensions.y, dimensions.x,
  dimensions.z)`` and the product yaw ``yaw + pi / 2``. Moving objects in the overlap of
  both LiDARs have one cuboid per LiDAR (``cuboids.sensor_id`` 0 or 1, linked by
  ``cuboids.sibling_id``): the frame keeps those of the primary LiDAR and the ones with
  ``sensor_id == -1``. Labels are PandaSet's ``label``, track ids come from ``uuid``
  (:func:`~av_pipeline.readers.track_ids.track_id_from_string`; :meth:`PandaSetReader.uuid`
  maps back), ``num_lidar_points`` is counted in the primary sweep. Without
  ``annotations/cuboids`` the frame's annotations are ``None``.

Errors: missing or unparsable JSON, counts that disagree (files, poses, timestamps), a
refused or corrupt pickle, a missing or non-numeric column, a non-unit quaternion raise
:class:`~av_pipeline.errors.LogFormatError` naming the file and the field.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import CalibrationError, LogFormatError
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.restricted_pickle import read_dataframe_pickle
from av_pipeline.readers.track_ids import track_id_from_string
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep
from calibration import SE3
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig
from calibration.trajectory import PoseTrajectory

#: LiDAR names by PandaSet's ``d`` column.
PANDASET_LIDARS = {0: "pandar64", 1: "pandar_gt"}
#: Columns of a PandaSet sweep as loaded.
PANDASET_LIDAR_COLUMNS = ("x", "y", "z", "intensity", "time_offset_ns")
#: ``pandar64_SE3_ego``: the product's ego axes (x forward, y left) in the Pandar64 frame (x right, y forward).
PANDAR64_SE3_EGO = SE3.from_yaw_translation(np.pi / 2)

_LIDAR_COLUMNS = {"x": "float", "y": "float", "z": "float", "i": "float", "t": "float", "d": "int"}
_CUBOID_COLUMNS = {
    "uuid": "string",
    "label": "string",
    "yaw": "float",
    "position.x": "float",
    "position.y": "float",
    "position.z": "float",
    "dimensions.x": "float",
    "dimensions.y": "float",
    "dimensions.z": "float",
}


def seconds_to_ns(value: float) -> int:
    """Float seconds as stored in JSON -> integer nanoseconds, via the float's shortest decimal text."""
    return int((Decimal(repr(float(value))) * 1_000_000_000).to_integral_value())


def dataframe_columns(frame: Any, path: Path, schema: dict[str, str]) -> dict[str, np.ndarray]:
    """Take the named columns of a DataFrame as numpy arrays, checking their kinds.

    Returns:
        column -> ``(R,)`` float64 (``"float"``), int64 (``"int"``) or object array of str (``"string"``).

    Raises:
        LogFormatError: a missing column, or values of another kind; ``field`` is the column.
    """
    out: dict[str, np.ndarray] = {}
    for name, kind in schema.items():
        if name not in frame.columns:
            raise LogFormatError(path, name, f"missing column; the DataFrame has {[str(c) for c in frame.columns][:30]}")
        values = frame[name].to_numpy()
        if kind == "string":
            bad = [v for v in values if not isinstance(v, str)]
            if bad:
                raise LogFormatError(path, name, f"expected strings, got {len(bad)} values of type {type(bad[0]).__name__}")
            out[name] = values.astype(object)
            continue
        if values.dtype.kind not in "iuf":  # integer columns may be stored as floats (NaN-capable)
            raise LogFormatError(path, name, f"expected a numeric ({kind}) column, got dtype {values.dtype}")
        values = values.astype(np.float64)
        if kind == "int":
            if not np.isfinite(values).all() or (values != np.round(values)).any():
                raise LogFormatError(path, name, "expected integer values")
            values = values.astype(np.int64)
        out[name] = values
    return out


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise LogFormatError(path, None, "missing required PandaSet file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(path, None, f"cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise LogFormatError(path, None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def _timestamps_ns(path: Path) -> list[int]:
    values = _read_json(path)
    if not isinstance(values, list):
        raise LogFormatError(path, None, f"expected a list of float seconds, got {type(values).__name__}")
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LogFormatError(path, f"[{i}]", f"expected float seconds, got {type(value).__name__}")
        try:
            out.append(seconds_to_ns(value))
        except (InvalidOperation, ValueError, OverflowError) as exc:
            raise LogFormatError(path, f"[{i}]", f"expected finite float seconds, got {value!r}") from exc
    return out


def _poses(path: Path) -> list[SE3]:
    """``poses.json``: a list of ``{"position": {x, y, z}, "heading": {w, x, y, z}}`` (world_SE3_sensor)."""
    values = _read_json(path)
    if not isinstance(values, list):
        raise LogFormatError(path, None, f"expected a list of poses, got {type(values).__name__}")
    poses = []
    for i, pose in enumerate(values):
        try:
            position = [float(pose["position"][k]) for k in "xyz"]
            heading = [float(pose["heading"][k]) for k in "wxyz"]
        except (KeyError, TypeError, ValueError) as exc:
            raise LogFormatError(path, f"[{i}]", f"expected {{position: {{x, y, z}}, heading: {{w, x, y, z}}}}: {type(exc).__name__} {exc}") from exc
        try:
            poses.append(SE3.from_wxyz(heading, position))
        except (CalibrationError, ValueError) as exc:
            raise LogFormatError(path, f"[{i}].heading", str(exc)) from exc
    return poses


def _numbered_files(folder: Path, suffix: str) -> list[Path]:
    return sorted((p for p in folder.glob(f"*{suffix}") if p.name[: -len(suffix)].isdigit()), key=lambda p: int(p.name[: -len(suffix)]))


@register_reader
class PandaSetReader(LogReader):
    """One PandaSet sequence folder; see the module docstring.

    Options:
        cameras: camera folder names to load (a list or a comma-separated string; default all).
        primary_lidar: ``"pandar64"`` (default) or ``"pandar_gt"``: first in ``Frame.lidars``,
            used for ``num_lidar_points`` and to choose between sibling cuboids.
    """

    name = "pandaset"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"cameras", "primary_lidar"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown pandaset options {sorted(unknown)}; expected cameras, primary_lidar")
        self.root = Path(uri)
        self.primary_lidar = str(options.get("primary_lidar", "pandar64"))
        if self.primary_lidar not in PANDASET_LIDARS.values():
            raise LogFormatError(uri, "primary_lidar", f"expected one of {sorted(PANDASET_LIDARS.values())}, got {self.primary_lidar!r}")
        lidar_dir = self.root / "lidar"
        self._lidar_files = _numbered_files(lidar_dir, ".pkl.gz")
        self._times_ns = _timestamps_ns(lidar_dir / "timestamps.json")
        world_SE3_pandar64 = _poses(lidar_dir / "poses.json")
        for what, count, path in (("poses", len(world_SE3_pandar64), lidar_dir / "poses.json"), ("timestamps", len(self._times_ns), lidar_dir / "timestamps.json")):
            if count != len(self._lidar_files):
                raise LogFormatError(path, None, f"expected one entry per LiDAR file ({len(self._lidar_files)} .pkl.gz files), got {count} {what}")
        self._world_SE3_ego = [pose.compose(PANDAR64_SE3_EGO) for pose in world_SE3_pandar64]
        self._trajectory: PoseTrajectory | None = None
        if len(self._times_ns) >= 2 and all(b > a for a, b in zip(self._times_ns, self._times_ns[1:])):
            self._trajectory = PoseTrajectory.from_poses(self._times_ns, self._world_SE3_ego, dst_frame="world", src_frame="ego")

        cameras = options.get("cameras")
        if isinstance(cameras, str):
            cameras = [name.strip() for name in cameras.split(",") if name.strip()]
        camera_root = self.root / "camera"
        found = sorted(p.name for p in camera_root.iterdir() if p.is_dir()) if camera_root.is_dir() else []
        if cameras is not None:
            missing = sorted(set(cameras) - set(found))
            if missing:
                raise LogFormatError(camera_root, "cameras", f"cameras {missing} not found; the sequence has {found}")
            found = [name for name in found if name in set(cameras)]
        self.camera_names = tuple(found)
        self._camera_cache: dict[str, tuple[CameraModel | None, list[Path], list[int], list[SE3]]] = {}
        self._uuid_of: dict[int, str] = {}

    # ------------------------------------------------------------------ LogReader
    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        return path.is_dir() and (path / "lidar" / "poses.json").is_file() and any((path / "lidar").glob("*.pkl.gz"))

    def list_frames(self) -> list[FrameRef]:
        """One ref per LiDAR file at its ``timestamps.json`` time (no pickle is read)."""
        return [FrameRef(self.uri, self.log_id, i, t, self.name) for i, t in enumerate(self._times_ns)]

    def load_frame(self, ref: FrameRef) -> Frame:
        """Load one frame: both LiDARs in ``ego``, pose, cameras, cuboids (module docstring).

        Raises:
            LogFormatError: a refused or bad pickle, bad JSON, a missing file or column.
        """
        self._check_ref(ref)
        if not 0 <= ref.index < len(self._times_ns) or self._times_ns[ref.index] != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"no frame {ref.index} at {ref.timestamp_ns} ns in this sequence")
        k = ref.index
        timestamp_ns = self._times_ns[k]
        world_SE3_ego = self._world_SE3_ego[k]
        sweeps = self._sweeps(k, timestamp_ns, world_SE3_ego)
        cameras: dict[str, RigCamera] = {}
        images: dict[str, CameraImage] = {}
        for name in self.camera_names:
            loaded = self._camera(name, k, world_SE3_ego)
            if loaded is not None:
                cameras[name], images[name] = loaded
        rig = SensorRig(cameras=cameras, lidars={name: SE3.identity() for name in sweeps})
        annotations = self._cuboids(k, world_SE3_ego)
        if annotations is not None and len(annotations) and self.primary_lidar in sweeps:
            annotations = annotations.with_num_lidar_points(annotations.count_points(sweeps[self.primary_lidar].xyz))
        if annotations is not None:
            annotations = with_product_labels(annotations, "pandaset")  # "Pickup Truck" -> product class, kept as source label
        return Frame(self.log_id, timestamp_ns, rig, world_SE3_ego, sweeps, images, annotations=annotations, source_uri=str(self._lidar_files[k]))

    # ------------------------------------------------------------------ helpers
    def uuid(self, track_id: int) -> str:
        """The PandaSet ``uuid`` behind a track id of a loaded frame's annotations.

        Raises:
            KeyError: no loaded annotation has that id.
        """
        return self._uuid_of[int(track_id)]

    def _sweeps(self, k: int, timestamp_ns: int, world_SE3_ego: SE3) -> dict[str, LidarSweep]:
        path = self._lidar_files[k]
        columns = dataframe_columns(read_dataframe_pickle(path), path, _LIDAR_COLUMNS)
        unknown = sorted(set(np.unique(columns["d"]).tolist()) - set(PANDASET_LIDARS))
        if unknown:
            raise LogFormatError(path, "d", f"expected sensor ids 0 (Pandar64) or 1 (PandarGT), got {unknown}")
        points_world = np.stack([columns["x"], columns["y"], columns["z"]], axis=1)
        points_ego = world_SE3_ego.inverse().transform_points(points_world) if len(points_world) else points_world
        # PandaSet's float64 seconds resolve ~0.24 us; the difference of two such times is exact
        offsets_ns = (columns["t"] - timestamp_ns / 1e9) * 1e9
        ordered = sorted(PANDASET_LIDARS.items(), key=lambda item: item[1] != self.primary_lidar)
        sweeps = {}
        for sensor_id, name in ordered:
            mask = columns["d"] == sensor_id
            if name != self.primary_lidar and not mask.any():
                continue  # the PandarGT has no points in this frame: no sweep rather than an empty one
            points = np.column_stack([points_ego[mask], columns["i"][mask], offsets_ns[mask]]).astype(np.float32)
            sweeps[name] = LidarSweep(name, timestamp_ns, points, PANDASET_LIDAR_COLUMNS)
        return sweeps

    def _camera(self, name: str, k: int, world_SE3_ego: SE3) -> tuple[RigCamera, CameraImage] | None:
        folder = self.root / "camera" / name
        if name not in self._camera_cache:
            files = _numbered_files(folder, ".jpg")
            intrinsics = _read_json(folder / "intrinsics.json")
            try:
                fx, fy, cx, cy = (float(intrinsics[key]) for key in ("fx", "fy", "cx", "cy"))
            except (KeyError, TypeError, ValueError) as exc:
                raise LogFormatError(folder / "intrinsics.json", "fx, fy, cx, cy", f"expected four numbers: {type(exc).__name__} {exc}") from exc
            model = None
            if files:
                width, height = _jpeg_size(files[0])
                try:
                    model = CameraModel.from_K([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], width, height, name=f"{name} intrinsics")
                except (CalibrationError, ValueError) as exc:
                    raise LogFormatError(folder / "intrinsics.json", "fx, fy, cx, cy", str(exc)) from exc
            times = _timestamps_ns(folder / "timestamps.json")
            poses = _poses(folder / "poses.json")
            for what, values, path in (("timestamps", times, folder / "timestamps.json"), ("poses", poses, folder / "poses.json")):
                if len(values) != len(files):
                    raise LogFormatError(path, None, f"expected one entry per image ({len(files)} .jpg files), got {len(values)} {what}")
            self._camera_cache[name] = (model, files, times, poses)
        model, files, times, poses = self._camera_cache[name]
        if model is None or k >= len(files):
            return None
        world_SE3_ego_at_image = world_SE3_ego
        if self._trajectory is not None:
            world_SE3_ego_at_image = self._trajectory.at(times[k], extrapolation="linear")
        ego_SE3_camera = world_SE3_ego_at_image.inverse().compose(poses[k])
        try:
            data = files[k].read_bytes()
        except OSError as exc:
            raise LogFormatError(files[k], f"{name} image", f"cannot read: {exc}") from exc
        image = CameraImage(name, times[k], "jpeg", data, model.width_px, model.height_px, source=str(files[k]))
        return RigCamera(model, ego_SE3_camera), image

    def _cuboids(self, k: int, world_SE3_ego: SE3) -> Cuboids | None:
        folder = self.root / "annotations" / "cuboids"
        if not folder.is_dir():
            return None
        path = folder / self._lidar_files[k].name
        if not path.is_file():
            raise LogFormatError(path, None, f"missing cuboid file for LiDAR frame {self._lidar_files[k].name}")
        frame = read_dataframe_pickle(path)
        columns = dataframe_columns(frame, path, _CUBOID_COLUMNS)
        keep = np.ones(len(frame), dtype=bool)
        if "cuboids.sensor_id" in frame.columns:
            sensor_ids = dataframe_columns(frame, path, {"cuboids.sensor_id": "int"})["cuboids.sensor_id"]
            other = next(i for i, n in PANDASET_LIDARS.items() if n != self.primary_lidar)
            keep = sensor_ids != other
        columns = {name: values[keep] for name, values in columns.items()}
        sizes = np.stack([columns["dimensions.y"], columns["dimensions.x"], columns["dimensions.z"]], axis=1)
        if (sizes <= 0).any() or not np.isfinite(sizes).all():
            row = int(np.flatnonzero((sizes <= 0).any(axis=1) | ~np.isfinite(sizes).all(axis=1))[0])
            raise LogFormatError(path, "dimensions.x, dimensions.y, dimensions.z", f"cuboid {columns['uuid'][row]}: expected positive sizes, got {sizes[row].tolist()}")
        centers = np.stack([columns["position.x"], columns["position.y"], columns["position.z"]], axis=1)
        if not (np.isfinite(centers).all() and np.isfinite(columns["yaw"]).all()):
            raise LogFormatError(path, "position, yaw", "NaN/inf values")
        uuids = [str(u) for u in columns["uuid"]]
        track_ids = [track_id_from_string(u) for u in uuids]
        self._uuid_of.update(zip(track_ids, uuids))
        boxes_world = Cuboids.from_arrays(
            "world", centers, sizes, columns["yaw"] + np.pi / 2, [str(label) for label in columns["label"]], track_ids=track_ids
        )
        return boxes_world.transform(world_SE3_ego.inverse(), "ego")


def _jpeg_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise LogFormatError(path, "image", f"cannot read the image header: {exc}") from exc


__all__ = ["PANDAR64_SE3_EGO", "PANDASET_LIDARS", "PANDASET_LIDAR_COLUMNS", "PandaSetReader", "dataframe_columns", "seconds_to_ns"]
