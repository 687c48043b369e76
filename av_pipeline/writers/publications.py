"""What a sequence of :class:`~av_pipeline.records.Frame` publishes, independent of the schema family.

Every writer (foxglove MCAP, ROS 2 MCAP, ROS bags) walks frames through
:func:`frame_publications` and only maps each :class:`Publication` to its own message type,
so topic names, frame ids and timestamps are the same in every format:

============================  ===========================================  ==========================
what                          topic (:class:`WriterTopics` defaults)        frame id
============================  ===========================================  ==========================
rig extrinsics (once)         ``/tf_static``                               ``base_link`` -> sensor
``world_SE3_ego``             ``/tf``                                      ``map`` -> ``base_link``
intrinsics (every frame)      ``/camera/<name>/calibration`` (foxglove),   ``<name>``
                              ``/camera/<name>/camera_info`` (ROS)
image                         ``/camera/<name>/image`` (foxglove),         ``<name>``
                              ``/camera/<name>/image_raw[/compressed]``
first LiDAR of a frame        ``/lidar/points``                            ``<lidar name>``
other LiDARs                  ``/lidar/<name>/points``                     ``<lidar name>``
onboard cuboids               ``/perception/objects``                      ``base_link``
onboard planned path          ``/planning/path`` (foxglove: also           ``base_link``
                              ``/planning/path/poses`` for display)
onboard 2D camera boxes       ``/perception/camera/<name>/objects``        ``<name>``
                              (foxglove: also ``.../annotations``)
annotations                   ``/annotations/cuboids``                     ``base_link``
============================  ===========================================  ==========================

Times: every message's ``log_time`` = ``publish_time`` = its header stamp = the record's
``timestamp_ns``, except the first LiDAR of a frame, logged at ``Frame.timestamp_ns`` (its
stamp stays the sweep's ``timestamp_ns``), and calibration / cuboids / poses, logged at the
frame time. The planned path and the camera boxes are logged at the frame time too; each
pose of the path keeps its own time inside the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError
from av_pipeline.records import CameraBoxes, CameraImage, Frame, LidarSweep, PlannedPath
from calibration import SE3
from calibration.camera import CameraModel


@dataclass(frozen=True)
class WriterTopics:
    """Topic and frame-id names used by the writers (the readers' defaults match them)."""

    lidar: str = "/lidar/points"
    extra_lidar: str = "/lidar/{name}/points"
    foxglove_image: str = "/camera/{name}/image"
    foxglove_calibration: str = "/camera/{name}/calibration"
    ros_raw_image: str = "/camera/{name}/image_raw"
    ros_compressed_image: str = "/camera/{name}/image_raw/compressed"
    ros_camera_info: str = "/camera/{name}/camera_info"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    onboard: str = "/perception/objects"
    planned_path: str = "/planning/path"
    foxglove_planned_path_poses: str = "/planning/path/poses"
    onboard_camera: str = "/perception/camera/{name}/objects"
    foxglove_onboard_camera_annotations: str = "/perception/camera/{name}/annotations"
    annotations: str = "/annotations/cuboids"
    ego_frame: str = "base_link"
    world_frame: str = "map"


@dataclass(frozen=True)
class StaticTransforms:
    """Rig extrinsics: ``(parent, child, parent_SE3_child)`` triples."""

    transforms: tuple[tuple[str, str, SE3], ...]


@dataclass(frozen=True)
class Pose:
    """``world_SE3_ego`` at a time, as a transform ``world_frame -> ego_frame``."""

    parent: str
    child: str
    parent_SE3_child: SE3


@dataclass(frozen=True)
class Calibration:
    """Camera intrinsics for ``frame_id`` (the camera's optical frame)."""

    frame_id: str
    model: CameraModel


@dataclass(frozen=True)
class Cloud:
    """A LiDAR sweep in ``frame_id``, stamped ``stamp_ns``."""

    frame_id: str
    stamp_ns: int
    sweep: LidarSweep


@dataclass(frozen=True)
class Image:
    """An encoded image in ``frame_id``."""

    frame_id: str
    image: CameraImage


@dataclass(frozen=True)
class Boxes:
    """Cuboids in ``frame_id``."""

    frame_id: str
    cuboids: Cuboids


@dataclass(frozen=True)
class Path:
    """The planner's path (:class:`PlannedPath`, poses in the ego frame) in ``frame_id``, stamped ``stamp_ns``."""

    frame_id: str
    stamp_ns: int
    path: PlannedPath


@dataclass(frozen=True)
class ImageBoxes:
    """Onboard 2D boxes of one camera, in the camera's ``frame_id`` (pixels), stamped ``stamp_ns``."""

    frame_id: str
    stamp_ns: int
    boxes: CameraBoxes


@dataclass(frozen=True)
class Publication:
    """One message to write: ``topic`` (with ``{name}`` filled in) at ``log_time_ns``, and its content.

    Attributes:
        role: the :class:`WriterTopics` field it comes from (``"lidar"``, ``"tf_static"`` ...);
            image roles are resolved by the writer (raw vs compressed).
        name: the camera name for image / calibration / onboard_camera roles, the LiDAR
            name for LiDAR roles.
    """

    role: str
    log_time_ns: int
    content: Any
    name: str = ""


def frame_publications(frames: Iterable[Frame], topics: WriterTopics) -> Iterator[Publication]:
    """Walk ``frames`` (any order) and yield what to publish.

    Raises:
        LogFormatError: a sensor name used by both a camera and a LiDAR, a rig extrinsic
            that changes between frames (static transforms cannot say that), cuboids in
            a frame the writer cannot name, or onboard camera boxes of a camera that is not
            in the rig (its frame id would name nothing).
    """
    written: dict[str, SE3] = {}
    ego = topics.ego_frame
    for frame in frames:
        where = f"frame {frame.log_id}@{frame.timestamp_ns}"
        t = frame.timestamp_ns
        sensors: dict[str, SE3] = {}
        for name, ego_SE3_lidar in frame.rig.lidars.items():
            sensors[name] = ego_SE3_lidar
        for name, camera in frame.rig.cameras.items():
            if name in sensors:
                raise LogFormatError(where, "rig", f"sensor name {name!r} is used by a camera and a LiDAR; frame ids must be unique")
            sensors[name] = camera.ego_SE3_camera
        new = []
        for name, ego_SE3_sensor in sensors.items():
            if name == ego:
                if not ego_SE3_sensor.allclose(SE3.identity(), atol_rad=0.0, atol_m=0.0):
                    raise LogFormatError(
                        where, f"rig {name}", f"a sensor named like the ego frame {ego!r} must have the identity extrinsic"
                    )
                continue
            if name in written:
                if not (written[name] == ego_SE3_sensor):
                    raise LogFormatError(
                        where, f"rig {name}", "extrinsics change between frames; static transforms (/tf_static) cannot represent that"
                    )
                continue
            written[name] = ego_SE3_sensor
            new.append((ego, name, ego_SE3_sensor))
        if new:
            yield Publication("tf_static", t, StaticTransforms(tuple(new)))
        if frame.world_SE3_ego is not None:
            yield Publication("tf", t, Pose(topics.world_frame, ego, frame.world_SE3_ego))
        for name, camera in frame.rig.cameras.items():
            yield Publication("calibration", t, Calibration(name, camera.model), name)
        for i, (name, sweep) in enumerate(frame.lidars.items()):
            if i == 0:
                yield Publication("lidar", t, Cloud(name, sweep.timestamp_ns, sweep), name)
            else:
                yield Publication("extra_lidar", sweep.timestamp_ns, Cloud(name, sweep.timestamp_ns, sweep), name)
        for name, image in frame.images.items():
            yield Publication("image", image.timestamp_ns, Image(name, image), name)
        if frame.onboard is not None:
            yield Publication("onboard", t, Boxes(_box_frame(frame.onboard.cuboids, ego, where), frame.onboard.cuboids))
            if frame.onboard.planned_path is not None:
                yield Publication("planned_path", t, Path(ego, t, frame.onboard.planned_path))
            for name, boxes in frame.onboard.camera_boxes.items():
                if name not in frame.rig.cameras:
                    raise LogFormatError(
                        where, f"onboard camera_boxes[{name!r}]", f"camera {name!r} is not in the rig {list(frame.rig.cameras)}"
                    )
                yield Publication("onboard_camera", t, ImageBoxes(name, t, boxes), name)
        if frame.annotations is not None:
            yield Publication("annotations", t, Boxes(_box_frame(frame.annotations, ego, where), frame.annotations))


def _box_frame(cuboids: Cuboids, ego: str, where: str) -> str:
    if cuboids.frame in ("ego", ego):
        return ego
    if not cuboids.frame:
        raise LogFormatError(where, "cuboids", "cuboids without a frame name cannot be written")
    return cuboids.frame


def packed_points(sweep: LidarSweep) -> tuple[list[tuple[str, int, str]], int, bytes]:
    """Interleave a sweep for PointCloud / PointCloud2: every column float32, then ``t`` int32.

    Returns:
        ``(fields [(name, byte offset, "f4" | "i4")], point_step, data)``; ``t`` (present when
        the sweep has per-point times) is the capture time in ns relative to the sweep's
        ``timestamp_ns``. Float columns are copied bit for bit.
    """
    names = list(sweep.columns)
    formats = ["<f4"] * len(names)
    if sweep.time_offsets_ns is not None:
        if "t" in names:
            raise LogFormatError(sweep.sensor, "columns", "a column named 't' clashes with the per-point time field")
        names.append("t")
        formats.append("<i4")
    record = np.dtype({"names": names, "formats": formats})
    packed = np.empty(sweep.num_points, dtype=record)
    for i, name in enumerate(sweep.columns):
        packed[name] = sweep.points[:, i]
    if sweep.time_offsets_ns is not None:
        packed["t"] = sweep.time_offsets_ns
    fields = [(name, record.fields[name][1], "i4" if name == "t" else "f4") for name in names]
    return fields, record.itemsize, packed.tobytes()


def yaw_to_xyzw(yaws_rad: np.ndarray) -> np.ndarray:
    """``(K, 4)`` ``x, y, z, w`` quaternions of rotations by ``yaws_rad`` about +z."""
    half = np.asarray(yaws_rad, dtype=np.float64) / 2.0
    out = np.zeros((len(half), 4))
    out[:, 2] = np.sin(half)
    out[:, 3] = np.cos(half)
    return out


def split_ns(time_ns: int) -> tuple[int, int]:
    """``(seconds, nanoseconds)`` of a non-negative integer time (ROS ``sec``/``nanosec``)."""
    return int(time_ns) // 1_000_000_000, int(time_ns) % 1_000_000_000
