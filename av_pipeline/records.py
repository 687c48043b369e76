"""Typed, frozen records that flow through the pipeline.

What moves between Beam stages is small (:class:`FrameRef`, results keyed by
``(log_id, timestamp_ns)``); large blobs (points, images) live in :class:`Frame`, which a
worker loads from its log when it processes the frame.

Frames and units: LiDAR points are in their sensor frame (x forward, y left, z up,
metres); ``world_SE3_ego`` maps ego coordinates to the log's world frame; timestamps are
integer nanoseconds (``timestamp_ns``) on the log's clock.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError, ShapeError
from calibration import SE3
from calibration.rig import SensorRig

#: Encodings a :class:`CameraImage` may carry: compressed formats decoded by Pillow, and raw
#: pixel layouts as in ROS ``sensor_msgs/Image`` / foxglove ``RawImage``.
IMAGE_ENCODINGS = ("png", "jpeg", "rgb8", "bgr8", "mono8", "rgba8", "bgra8")
_RAW_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
#: Compressed camera images whose header claims more pixels than this are refused before decoding
#: (twice Pillow's default ``MAX_IMAGE_PIXELS``, where Pillow itself refuses; kept here because
#: other libraries, e.g. nuscenes-devkit, lift Pillow's process-wide limit).
MAX_DECODE_PIXELS = 2 * 89_478_485


def check_decode_size(width: int, height: int) -> None:
    """Raise Pillow's ``DecompressionBombError`` when an image header claims more than
    :data:`MAX_DECODE_PIXELS`, whatever Pillow's process-wide limit is at the moment."""
    if width * height > MAX_DECODE_PIXELS:
        from PIL import Image

        raise Image.DecompressionBombError(f"the header claims {width}x{height} pixels, more than {MAX_DECODE_PIXELS}")


def _frozen_array(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        array = array.copy()
        array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class LidarSweep:
    """One LiDAR sweep.

    Attributes:
        sensor: LiDAR name in the rig (its frame name too).
        timestamp_ns: the sweep's reference time (for spinning LiDARs, nuScenes and KITTI
            use the end / middle of the sweep; readers document theirs).
        points: ``(N, C)`` float32 in the sensor frame; the first three columns are
            ``x, y, z`` in metres.
        columns: ``(C,)`` column names, starting with ``("x", "y", "z")``; e.g.
            ``"intensity"`` (reader-specific scale, documented per reader), ``"ring"``.
        time_offsets_ns: ``(N,)`` int32 capture time of each point relative to
            ``timestamp_ns`` (negative = before), or ``None`` when the log has none.
    """

    sensor: str
    timestamp_ns: int
    points: np.ndarray
    columns: tuple[str, ...] = ("x", "y", "z")
    time_offsets_ns: np.ndarray | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points)
        columns = tuple(self.columns)
        if points.ndim != 2 or points.shape[1] != len(columns):
            raise ShapeError(
                f"lidar '{self.sensor}' points: expected (N, {len(columns)}) for columns {columns}, got {points.shape}"
            )
        if columns[:3] != ("x", "y", "z"):
            raise ShapeError(f"lidar '{self.sensor}' columns: expected to start with ('x', 'y', 'z'), got {columns}")
        if len(set(columns)) != len(columns):
            raise ShapeError(f"lidar '{self.sensor}' columns: duplicate names in {columns}")
        if points.dtype != np.float32:
            raise ShapeError(f"lidar '{self.sensor}' points: expected float32, got {points.dtype}")
        object.__setattr__(self, "points", _frozen_array(points))
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "timestamp_ns", int(self.timestamp_ns))
        if self.time_offsets_ns is not None:
            offsets = np.asarray(self.time_offsets_ns)
            if offsets.shape != (len(points),) or not np.issubdtype(offsets.dtype, np.integer):
                raise ShapeError(
                    f"lidar '{self.sensor}' time_offsets_ns: expected ({len(points)},) integers, got {offsets.shape} {offsets.dtype}"
                )
            object.__setattr__(self, "time_offsets_ns", _frozen_array(offsets.astype(np.int32)))

    @property
    def num_points(self) -> int:
        """Number of points N."""
        return len(self.points)

    @property
    def xyz(self) -> np.ndarray:
        """``(N, 3)`` float32 view of the coordinates."""
        return self.points[:, :3]

    def column(self, name: str) -> np.ndarray:
        """``(N,)`` float32 view of one named column.

        Raises:
            KeyError: the column does not exist (the message lists the ones that do).
        """
        try:
            return self.points[:, self.columns.index(name)]
        except ValueError:
            raise KeyError(f"lidar '{self.sensor}' has no column {name!r}; columns: {list(self.columns)}") from None

    def equals(self, other: LidarSweep) -> bool:
        """Exact equality of name, time, columns, points and offsets."""
        same_offsets = (self.time_offsets_ns is None) == (other.time_offsets_ns is None) and (
            self.time_offsets_ns is None or np.array_equal(self.time_offsets_ns, other.time_offsets_ns)
        )
        return (
            self.sensor == other.sensor
            and self.timestamp_ns == other.timestamp_ns
            and self.columns == other.columns
            and np.array_equal(self.points, other.points)
            and same_offsets
        )


@dataclass(frozen=True)
class CameraImage:
    """One camera image, kept encoded until :meth:`decode` is called.

    Attributes:
        camera: camera name in the rig.
        timestamp_ns: capture time (exposure middle where the log says so).
        encoding: one of :data:`IMAGE_ENCODINGS`.
        data: the encoded bytes (PNG/JPEG file bytes, or raw row-major pixels).
        width_px, height_px: image size (must match the decoded image).
        source: where the bytes came from (file path or ``log#topic``), for error messages.
    """

    camera: str
    timestamp_ns: int
    encoding: str
    data: bytes
    width_px: int
    height_px: int
    source: str = ""

    def __post_init__(self) -> None:
        if self.encoding not in IMAGE_ENCODINGS:
            raise ShapeError(f"camera '{self.camera}' encoding: expected one of {IMAGE_ENCODINGS}, got {self.encoding!r}")
        if self.width_px <= 0 or self.height_px <= 0:
            raise ShapeError(f"camera '{self.camera}' size: expected positive width/height, got {self.width_px}x{self.height_px}")
        channels = _RAW_CHANNELS.get(self.encoding)
        if channels is not None and len(self.data) != self.width_px * self.height_px * channels:
            raise ShapeError(
                f"camera '{self.camera}' {self.encoding} data: expected {self.width_px * self.height_px * channels} bytes "
                f"for {self.width_px}x{self.height_px}, got {len(self.data)}"
            )
        object.__setattr__(self, "timestamp_ns", int(self.timestamp_ns))

    def decode(self) -> np.ndarray:
        """Decode to ``(H, W, 3)`` uint8 RGB (``(H, W)`` for ``mono8`` and grayscale files).

        Raises:
            LogFormatError: the bytes do not decode, or decode to another size than declared.
        """
        channels = _RAW_CHANNELS.get(self.encoding)
        if channels is not None:
            pixels = np.frombuffer(self.data, dtype=np.uint8).reshape(self.height_px, self.width_px, channels)
            if self.encoding == "mono8":
                return pixels[:, :, 0].copy()
            if self.encoding.startswith("bgr"):
                pixels = pixels[:, :, [2, 1, 0]]
            return np.ascontiguousarray(pixels[:, :, :3])
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self.data)) as img:
                check_decode_size(*img.size)
                img.load()
                mode = "L" if img.mode in ("L", "I;16", "I") else "RGB"
                pixels = np.asarray(img.convert(mode))
        except Image.DecompressionBombError as exc:  # a header claiming more pixels than Pillow decodes safely
            raise LogFormatError(self.source or self.camera, f"{self.camera} image", f"{self.encoding} image too large to decode: {str(exc)[:200]}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise LogFormatError(self.source or self.camera, f"{self.camera} image", f"{self.encoding} bytes do not decode: {str(exc)[:200]}") from exc
        if pixels.shape[:2] != (self.height_px, self.width_px):
            raise LogFormatError(
                self.source or self.camera,
                f"{self.camera} image",
                f"expected {self.width_px}x{self.height_px}, decoded {pixels.shape[1]}x{pixels.shape[0]}",
            )
        return pixels


@dataclass(frozen=True)
class CameraBoxes:
    """2D boxes reported for one camera.

    Attributes:
        camera: camera name.
        boxes_px: ``(K, 4)`` float64 ``x_min, y_min, x_max, y_max`` in pixels.
        labels: ``(K,)`` class names.
        scores: ``(K,)`` float32 confidences.
        track_ids: ``(K,)`` int64 (-1 when unknown).
    """

    camera: str
    boxes_px: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes_px, dtype=np.float64).reshape(-1, 4) if np.size(self.boxes_px) else np.zeros((0, 4))
        k = len(boxes)
        for name, dtype in (("labels", str), ("scores", np.float32), ("track_ids", np.int64)):
            arr = np.asarray(getattr(self, name), dtype=dtype).reshape(-1) if k else np.zeros(0, dtype=dtype)
            if arr.shape != (k,):
                raise ShapeError(f"camera boxes '{self.camera}' {name}: expected ({k},), got {arr.shape}")
            object.__setattr__(self, name, _frozen_array(arr))
        object.__setattr__(self, "boxes_px", _frozen_array(boxes))

    def __len__(self) -> int:
        return len(self.boxes_px)


@dataclass(frozen=True, eq=False)
class PlannedPath:
    """The path the vehicle's planner intended at one frame.

    >>> path = PlannedPath([1_000, 2_000], [[0.0, 0.0, 0.0], [1.5, 0.1, 0.05]])
    >>> len(path), path.timestamps_ns.dtype, path.poses_ego.shape
    (2, dtype('int64'), (2, 3))

    Attributes:
        timestamps_ns: ``(K,)`` int64 absolute times on the log's clock, strictly increasing
            (they may start before, at or after the frame's ``timestamp_ns``).
        poses_ego: ``(K, 3)`` float64 ``x_m, y_m, yaw_rad``: where the planner wants the
            ``ego`` origin at each time, in the ``ego`` frame of the frame the path belongs
            to (x forward, y left, metres; yaw about +z from +x, radians).
    """

    timestamps_ns: np.ndarray
    poses_ego: np.ndarray

    def __post_init__(self) -> None:
        times = np.asarray(self.timestamps_ns)
        if times.ndim != 1 or not np.issubdtype(times.dtype, np.integer):
            raise ShapeError(f"planned path timestamps_ns: expected (K,) integers, got {times.shape} {times.dtype}")
        if times.size and np.issubdtype(times.dtype, np.unsignedinteger) and int(times.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"planned path timestamps_ns: expected values within int64, got {int(times.max())}")
        poses = np.asarray(self.poses_ego)
        real = np.issubdtype(poses.dtype, np.integer) or np.issubdtype(poses.dtype, np.floating)
        if poses.shape != (len(times), 3) or not real:
            raise ShapeError(
                f"planned path poses_ego: expected ({len(times)}, 3) real x_m, y_m, yaw_rad (one row per timestamp), "
                f"got {poses.shape} {poses.dtype}"
            )
        poses = poses.astype(np.float64)
        bad_rows = np.flatnonzero(~np.isfinite(poses).all(axis=1))
        if bad_rows.size:
            raise ValueError(f"planned path poses_ego: expected finite values, got NaN/inf in rows {bad_rows[:5].tolist()}")
        times = times.astype(np.int64)
        backwards = np.flatnonzero(np.diff(times) <= 0)
        if backwards.size:
            i = int(backwards[0]) + 1
            raise ValueError(
                f"planned path timestamps_ns: expected strictly increasing times, got {int(times[i])} at index {i} "
                f"after {int(times[i - 1])}"
            )
        object.__setattr__(self, "timestamps_ns", _frozen_array(times))
        object.__setattr__(self, "poses_ego", _frozen_array(poses))

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    def equals(self, other: PlannedPath) -> bool:
        """Exact equality of times and poses."""
        return np.array_equal(self.timestamps_ns, other.timestamps_ns) and np.array_equal(self.poses_ego, other.poses_ego)


@dataclass(frozen=True)
class OnboardPerception:
    """What the vehicle's production stack reported for one frame.

    Attributes:
        cuboids: 3D objects (class, score, track id) in the ``ego`` frame. Readers give
            empty cuboids when a log carries a planned path or camera boxes for the frame but
            no 3D objects at all (KITTI raw with its ``planned_path/`` folder, a message log
            without an object topic): there, empty does not mean "nothing detected".
        camera_boxes: camera name -> 2D boxes (may be empty).
        planned_path: the planner's path at this frame, or ``None`` when the log has none.
    """

    cuboids: Cuboids
    camera_boxes: Mapping[str, CameraBoxes] = field(default_factory=dict)
    planned_path: PlannedPath | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "camera_boxes", MappingProxyType(dict(self.camera_boxes)))
        if self.planned_path is not None and not isinstance(self.planned_path, PlannedPath):
            raise ShapeError(f"onboard planned_path: expected a PlannedPath or None, got {type(self.planned_path).__name__}")


@dataclass(frozen=True)
class FrameRef:
    """A cheap handle on one frame of a log: enough for a worker to load it.

    Attributes:
        log_uri: where the log lives (path or URI), as given to ``open_log``.
        log_id: stable log identifier (e.g. drive name).
        index: position of the frame in the log's frame list.
        timestamp_ns: the frame's reference time (its LiDAR sweep time).
        reader: name of the reader that listed it (``"kitti_object"``, ``"mcap"`` ...).
        sample: the frame's own name in the log where the log has one: the KITTI object
            sample id (``"000001"``, the file stem in ``velodyne/``), the KITTI raw frame
            number (``"0000000042"``), the nuScenes sample token; ``""`` for logs that only
            have times (MCAP, bags).
    """

    log_uri: str
    log_id: str
    index: int
    timestamp_ns: int
    reader: str
    sample: str = ""

    @property
    def key(self) -> tuple[str, int]:
        """``(log_id, timestamp_ns)``: the key every stage uses."""
        return (self.log_id, self.timestamp_ns)

    @property
    def where(self) -> str:
        """``log_uri#sample`` (or ``log_uri#index`` without a sample name): which frame, for people."""
        return f"{self.log_uri}#{self.sample or self.index}"


@dataclass(frozen=True)
class Frame:
    """Everything known about one instant of a drive log.

    Attributes:
        log_id: stable log identifier.
        timestamp_ns: reference time (the primary LiDAR sweep's timestamp).
        rig: sensor rig (cameras and LiDARs with extrinsics to ``ego``).
        world_SE3_ego: ego pose at ``timestamp_ns`` (``None`` when the log has no poses).
        lidars: LiDAR name -> sweep.
        images: camera name -> image.
        onboard: the vehicle's own perception output, or ``None``.
        annotations: ground-truth / human labels in the ``ego`` frame, or ``None``.
        source_uri: the log (and frame) this came from.
    """

    log_id: str
    timestamp_ns: int
    rig: SensorRig
    world_SE3_ego: SE3 | None = None
    lidars: Mapping[str, LidarSweep] = field(default_factory=dict)
    images: Mapping[str, CameraImage] = field(default_factory=dict)
    onboard: OnboardPerception | None = None
    annotations: Cuboids | None = None
    source_uri: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lidars", MappingProxyType(dict(self.lidars)))
        object.__setattr__(self, "images", MappingProxyType(dict(self.images)))
        object.__setattr__(self, "timestamp_ns", int(self.timestamp_ns))
        for name in self.lidars:
            if name not in self.rig.lidars:
                raise ShapeError(f"frame {self.log_id}@{self.timestamp_ns}: lidar '{name}' is not in the rig {list(self.rig.lidars)}")
        for name in self.images:
            if name not in self.rig.cameras:
                raise ShapeError(f"frame {self.log_id}@{self.timestamp_ns}: camera '{name}' is not in the rig {list(self.rig.cameras)}")

    @property
    def key(self) -> tuple[str, int]:
        """``(log_id, timestamp_ns)``."""
        return (self.log_id, self.timestamp_ns)

    @property
    def lidar(self) -> LidarSweep:
        """The only (or first-named) LiDAR sweep.

        Raises:
            KeyError: the frame has no sweep.
        """
        if not self.lidars:
            raise KeyError(f"frame {self.log_id}@{self.timestamp_ns} has no LiDAR sweep")
        return next(iter(self.lidars.values()))
