"""Topic selection for message logs (MCAP and ROS bags): reader options, the topics of a log
and which of them feed which part of a frame.

:func:`plan_topics` resolves :class:`MessageLogOptions` against the topics a log holds (their
normalised schema names, :data:`SCHEMA_KINDS`) into a :class:`TopicPlan`; frame assembly
(:mod:`av_pipeline.readers.mcap_assembly`) then reads only those topics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from av_pipeline.errors import ConfigError, LogFormatError

#: Normalised schema / message type name -> what the reader uses it for.
SCHEMA_KINDS: dict[str, str] = {
    "foxglove.PointCloud": "points",
    "sensor_msgs/msg/PointCloud2": "points",
    "foxglove.CompressedImage": "image",
    "foxglove.RawImage": "image",
    "sensor_msgs/msg/Image": "image",
    "sensor_msgs/msg/CompressedImage": "image",
    "foxglove.CameraCalibration": "calibration",
    "sensor_msgs/msg/CameraInfo": "calibration",
    "foxglove.FrameTransform": "tf",
    "foxglove.FrameTransforms": "tf",
    "tf2_msgs/msg/TFMessage": "tf",
    "foxglove.SceneUpdate": "cuboids",
    "vision_msgs/msg/Detection3DArray": "cuboids",
    "nav_msgs/msg/Path": "path",
    "av_pipeline.PlannedPath": "path",
    "vision_msgs/msg/Detection2DArray": "camera_boxes",
    "av_pipeline.CameraDetections2D": "camera_boxes",
}

DEFAULT_LIDAR_TOPIC = "/lidar/points"
DEFAULT_ONBOARD_TOPIC = "/perception/objects"
DEFAULT_ANNOTATION_TOPIC = "/annotations/cuboids"
DEFAULT_PLANNED_PATH_TOPIC = "/planning/path"
DEFAULT_EGO_FRAME = "base_link"
DEFAULT_WORLD_FRAMES = ("map", "world", "odom")
#: The product's name for the vehicle frame (``Cuboids.frame`` of onboard boxes).
EGO = "ego"


@dataclass(frozen=True)
class MessageLogOptions:
    """Reader options of the MCAP and ROS bag readers (pass them to ``open_log(uri, **options)``).

    Attributes:
        lidar_topic: the point-cloud topic whose messages define frames. Default:
            ``/lidar/points`` if present, else the only point-cloud topic.
        extra_lidar_topics: more point-cloud topics matched to each frame by time.
            Default: every other point-cloud topic.
        camera_topics: camera name -> image topic. Default: every image topic, named by the
            last path component of its namespace (``/camera/front/image_raw`` -> ``front``;
            a trailing ``/compressed`` is ignored).
        calibration_topics: camera name -> CameraInfo / CameraCalibration topic. Default:
            the calibration topic in the same namespace as the image topic, plus (when
            ``camera_topics`` is not given) every other calibration topic, whose camera is
            in the rig without images.
        tf_topics: transform topics. Default: every transform topic. Topics whose name ends
            in ``tf_static`` are static (valid at all times).
        onboard_topic: cuboid topic with the vehicle's perception. Default:
            ``/perception/objects`` when present.
        annotation_topic: cuboid topic with ground-truth labels. Default:
            ``/annotations/cuboids`` when present.
        planned_path_topic: the planner's path (``nav_msgs/msg/Path`` or the JSON
            ``av_pipeline.PlannedPath``). Default: ``/planning/path`` when present.
        onboard_camera_topics: camera name -> onboard 2D box topic
            (``vision_msgs/msg/Detection2DArray`` or the JSON ``av_pipeline.CameraDetections2D``).
            Default: every such topic, its camera named like image topics
            (``/perception/camera/front/objects`` -> ``front``).
        ego_frame: the vehicle frame id in the transform tree.
        world_frames: candidate world frame ids for ``world_SE3_ego``, in order.
        sync_tolerance_ns: images, extra sweeps and cuboids are taken from the message
            nearest the sweep within this time (else left out of the frame).
        pose_window_ns: dynamic transforms are first read within this time either side of a
            sweep; the window grows 5-fold while a transform on a needed path does not
            bracket the sweep time, up to ``max_pose_window_ns``.
        max_pose_window_ns: the widest dynamic-transform window.
        pose_extrapolation_ns: how far beyond its samples (in the widest window) a dynamic
            transform may be extrapolated (linearly; held constant with one sample) before
            it is an error.
        allow_missing_extrinsics: use the identity for sensors with no transform to
            ``ego_frame`` instead of raising.
    """

    lidar_topic: str | None = None
    extra_lidar_topics: tuple[str, ...] | None = None
    camera_topics: Mapping[str, str] | None = None
    calibration_topics: Mapping[str, str] | None = None
    tf_topics: tuple[str, ...] | None = None
    onboard_topic: str | None = None
    annotation_topic: str | None = None
    planned_path_topic: str | None = None
    onboard_camera_topics: Mapping[str, str] | None = None
    ego_frame: str = DEFAULT_EGO_FRAME
    world_frames: tuple[str, ...] = DEFAULT_WORLD_FRAMES
    sync_tolerance_ns: int = 50_000_000
    pose_window_ns: int = 200_000_000
    max_pose_window_ns: int = 5_000_000_000
    pose_extrapolation_ns: int = 100_000_000
    allow_missing_extrinsics: bool = False

    @classmethod
    def from_options(cls, reader: str, options: Mapping[str, Any]) -> MessageLogOptions:
        """Validate ``**options`` given to a reader.

        Raises:
            ConfigError: an unknown option name or a negative tolerance.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{reader} reader: unknown options {unknown}; expected some of {sorted(known)}")
        values = dict(options)
        for name in ("extra_lidar_topics", "tf_topics", "world_frames"):
            if values.get(name) is not None:
                values[name] = tuple(values[name]) if not isinstance(values[name], str) else (values[name],)
        for name in ("camera_topics", "calibration_topics", "onboard_camera_topics"):
            if values.get(name) is not None:
                values[name] = dict(values[name])
        out = cls(**values)
        for name in ("sync_tolerance_ns", "pose_window_ns", "max_pose_window_ns", "pose_extrapolation_ns"):
            value = getattr(out, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"{reader} reader: {name} expected a non-negative integer (ns), got {value!r}")
        return out


@dataclass(frozen=True)
class TopicInfo:
    """A topic in a log: name, normalised schema name, message count (``None`` if unknown)."""

    topic: str
    schema: str
    message_count: int | None = None

    @property
    def kind(self) -> str | None:
        """``"points"``, ``"image"``, ``"calibration"``, ``"tf"``, ``"cuboids"``, ``"path"``,
        ``"camera_boxes"`` or ``None``."""
        return SCHEMA_KINDS.get(self.schema)


def describe_topics(topics: Iterable[TopicInfo]) -> str:
    """One ``topic [schema] (N messages)`` per topic, for error messages."""
    parts = []
    for t in sorted(topics, key=lambda t: t.topic):
        count = "" if t.message_count is None else f" ({t.message_count} messages)"
        parts.append(f"{t.topic} [{t.schema}]{count}")
    return "; ".join(parts) if parts else "(no topics)"


@dataclass(frozen=True)
class TopicPlan:
    """Which topic feeds which part of a frame (resolved from :class:`MessageLogOptions`)."""

    lidar_topic: str
    extra_lidar_topics: tuple[str, ...] = ()
    camera_topics: Mapping[str, str] = field(default_factory=dict)  # cameras with images
    calibration_topics: Mapping[str, str] = field(default_factory=dict)  # every rig camera
    static_tf_topics: tuple[str, ...] = ()
    dynamic_tf_topics: tuple[str, ...] = ()
    onboard_topic: str | None = None
    annotation_topic: str | None = None
    planned_path_topic: str | None = None
    onboard_camera_topics: Mapping[str, str] = field(default_factory=dict)


def camera_name_from_topic(topic: str) -> str:
    """``/camera/front/image_raw[/compressed]`` -> ``front``; a root-level topic gives its own name."""
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] == "compressed":
        parts = parts[:-1]
    return parts[-2] if len(parts) >= 2 else (parts[0] if parts else topic)


def _namespace(topic: str) -> str:
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1])


def plan_topics(path: str, topics: Sequence[TopicInfo], options: MessageLogOptions) -> TopicPlan:
    """Resolve the topic options against the topics of a log.

    Raises:
        LogFormatError: a named topic is missing or has the wrong kind, no / several
            point-cloud topics to choose from, or a camera without a calibration topic. The
            message lists the topics found with their schemas.
    """
    by_name = {t.topic: t for t in topics}
    found = describe_topics(topics)

    def of_kind(kind: str) -> list[str]:
        return sorted(t.topic for t in topics if t.kind == kind)

    def require(topic: str, kind: str, option: str) -> str:
        info = by_name.get(topic)
        if info is None:
            raise LogFormatError(path, option, f"topic {topic!r} is not in the log; topics found: {found}")
        if info.kind != kind:
            raise LogFormatError(
                path, option, f"topic {topic!r} has schema {info.schema!r}, expected a {kind} schema; topics found: {found}"
            )
        return topic

    clouds = of_kind("points")
    if options.lidar_topic is not None:
        lidar = require(options.lidar_topic, "points", "lidar_topic")
    elif DEFAULT_LIDAR_TOPIC in clouds:
        lidar = DEFAULT_LIDAR_TOPIC
    elif len(clouds) == 1:
        lidar = clouds[0]
    elif not clouds:
        raise LogFormatError(
            path,
            "lidar_topic",
            f"no point-cloud topic (foxglove.PointCloud or sensor_msgs/msg/PointCloud2) to build frames from; topics found: {found}",
        )
    else:
        raise LogFormatError(
            path, "lidar_topic", f"several point-cloud topics {clouds}; pass lidar_topic= to choose the one that defines frames"
        )

    if options.extra_lidar_topics is not None:
        extra = tuple(require(t, "points", "extra_lidar_topics") for t in options.extra_lidar_topics if t != lidar)
    else:
        extra = tuple(t for t in clouds if t != lidar)

    if options.camera_topics is not None:
        cameras = {name: require(t, "image", f"camera_topics[{name!r}]") for name, t in options.camera_topics.items()}
    else:
        cameras = {}
        for t in of_kind("image"):
            name = camera_name_from_topic(t)
            if name in cameras:
                raise LogFormatError(
                    path,
                    "camera_topics",
                    f"image topics {cameras[name]!r} and {t!r} both map to camera {name!r}; pass camera_topics= to choose",
                )
            cameras[name] = t

    calibrations: dict[str, str] = {}
    explicit = dict(options.calibration_topics or {})
    calib_topics = of_kind("calibration")
    for name, image_topic in cameras.items():
        if name in explicit:
            calibrations[name] = require(explicit[name], "calibration", f"calibration_topics[{name!r}]")
            continue
        same_ns = [c for c in calib_topics if _namespace(c) == _namespace(image_topic)]
        if len(same_ns) != 1:
            raise LogFormatError(
                path,
                f"calibration_topics[{name!r}]",
                f"expected one CameraInfo / CameraCalibration topic next to {image_topic!r}, found {same_ns}; "
                f"pass calibration_topics= (or camera_topics= to leave the camera out); topics found: {found}",
            )
        calibrations[name] = same_ns[0]
    # Calibrations without images still put their camera in the rig (named like image topics).
    for name, topic in explicit.items():
        if name not in calibrations:
            calibrations[name] = require(topic, "calibration", f"calibration_topics[{name!r}]")
    if options.camera_topics is None:
        for topic in calib_topics:
            if topic in calibrations.values() or any(_namespace(topic) == _namespace(t) for t in cameras.values()):
                continue
            name = camera_name_from_topic(topic)
            if name in calibrations:
                raise LogFormatError(
                    path,
                    "calibration_topics",
                    f"calibration topics {calibrations[name]!r} and {topic!r} both map to camera {name!r}; pass calibration_topics=",
                )
            calibrations[name] = topic

    tf_all = tuple(require(t, "tf", "tf_topics") for t in options.tf_topics) if options.tf_topics is not None else tuple(of_kind("tf"))
    static = tuple(t for t in tf_all if t.rstrip("/").endswith("tf_static"))
    dynamic = tuple(t for t in tf_all if t not in static)

    def optional(topic: str | None, default: str, option: str, kind: str = "cuboids") -> str | None:
        if topic is not None:
            return require(topic, kind, option)
        return default if default in by_name and by_name[default].kind == kind else None

    if options.onboard_camera_topics is not None:
        box_topics = {
            name: require(t, "camera_boxes", f"onboard_camera_topics[{name!r}]") for name, t in options.onboard_camera_topics.items()
        }
    else:
        box_topics = {}
        for t in of_kind("camera_boxes"):
            name = camera_name_from_topic(t)
            if name in box_topics:
                raise LogFormatError(
                    path,
                    "onboard_camera_topics",
                    f"2D box topics {box_topics[name]!r} and {t!r} both map to camera {name!r}; pass onboard_camera_topics= to choose",
                )
            box_topics[name] = t

    return TopicPlan(
        lidar_topic=lidar,
        extra_lidar_topics=extra,
        camera_topics=cameras,
        calibration_topics=calibrations,
        static_tf_topics=static,
        dynamic_tf_topics=dynamic,
        onboard_topic=optional(options.onboard_topic, DEFAULT_ONBOARD_TOPIC, "onboard_topic"),
        annotation_topic=optional(options.annotation_topic, DEFAULT_ANNOTATION_TOPIC, "annotation_topic"),
        planned_path_topic=optional(options.planned_path_topic, DEFAULT_PLANNED_PATH_TOPIC, "planned_path_topic", "path"),
        onboard_camera_topics=box_topics,
    )
