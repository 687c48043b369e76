"""Frame assembly for message logs (MCAP and ROS bags): the transform tree, and turning the
messages around one LiDAR sweep into a :class:`Frame`.

Both :class:`~av_pipeline.readers.mcap_log.McapLogReader` and
:class:`~av_pipeline.readers.rosbag.RosbagLogReader` list one frame per message on the
primary LiDAR topic and assemble it here from a :class:`MessageSource` (their own index
and decoders), with the topics chosen by :func:`~av_pipeline.readers.mcap_topics.plan_topics`
(reader options and topic selection live in :mod:`av_pipeline.readers.mcap_topics`, and are
re-exported here), so the conventions below hold for every message log:

- **Time axis**: message ``log_time`` (MCAP) / receive time (bags), in ns. Frame keys, image
  and LiDAR matching and pose interpolation all use it; it is what the indexes are sorted
  by, so listing stays cheap. Header stamps are only used to make per-point times relative
  to the sweep (``time_offsets_ns = point_time - log_time``) and, for a planned path, as
  the time of each pose. Our writers set ``log_time`` equal to the header stamp.
- **Frames of reference**: ``ego_frame`` (default ``"base_link"``) is the product's
  ``ego``; a LiDAR's name is its cloud's ``frame_id``; a camera's name comes from its
  topic (``/camera/<name>/...``), its extrinsics from its calibration's ``frame_id`` (an
  optical frame: x right, y down, z forward). Extrinsics are looked up in the transform
  tree at the sweep time; ``world_SE3_ego`` is taken from the first of ``world_frames``
  connected to ``ego_frame``.
- **Onboard output**: cuboids, the planned path and the per-camera 2D boxes are each taken
  from the message nearest the sweep within ``sync_tolerance_ns``. ``Frame.onboard`` is
  ``None`` when none of them has a message there; otherwise it holds what was found
  (empty cuboids when the log has a path or camera boxes but no cuboid message).
"""

from __future__ import annotations

import abc
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.errors import LogFormatError
from av_pipeline.readers.mcap_samples import (
    CalibrationSample,
    CameraBoxesSample,
    CloudSample,
    CuboidSample,
    ImageSample,
    PathSample,
    TransformSample,
    image_size_from_header,
)
from av_pipeline.readers.mcap_topics import (  # re-exported: options and topic selection live there
    DEFAULT_ANNOTATION_TOPIC,
    DEFAULT_EGO_FRAME,
    DEFAULT_LIDAR_TOPIC,
    DEFAULT_ONBOARD_TOPIC,
    DEFAULT_PLANNED_PATH_TOPIC,
    DEFAULT_WORLD_FRAMES,
    EGO,
    SCHEMA_KINDS,
    MessageLogOptions,
    TopicInfo,
    TopicPlan,
    camera_name_from_topic,
    describe_topics,
    plan_topics,
)
from av_pipeline.records import CameraBoxes, CameraImage, Frame, LidarSweep, OnboardPerception, PlannedPath
from calibration import SE3
from calibration.errors import AVPipelineError
from calibration.rig import RigCamera, SensorRig
from calibration.trajectory import PoseTrajectory

__all__ = [
    "DEFAULT_ANNOTATION_TOPIC",
    "DEFAULT_EGO_FRAME",
    "DEFAULT_LIDAR_TOPIC",
    "DEFAULT_ONBOARD_TOPIC",
    "DEFAULT_PLANNED_PATH_TOPIC",
    "DEFAULT_WORLD_FRAMES",
    "EGO",
    "SCHEMA_KINDS",
    "FrameAssembler",
    "LogOrderWarning",
    "MessageLogOptions",
    "MessageSource",
    "RawMessage",
    "TopicInfo",
    "TopicPlan",
    "TransformTree",
    "camera_name_from_topic",
    "describe_topics",
    "plan_topics",
    "sorted_frame_times",
]


# ---------------------------------------------------------------------- frame times
class LogOrderWarning(UserWarning):
    """A log's messages are not in time order in the file (they are sorted on reading)."""


def sorted_frame_times(times_in_file_order: np.ndarray, path: str, topic: str) -> list[int]:
    """Frame times from the primary LiDAR ``log_time`` values as stored: sorted, unique.

    Out-of-order times are allowed (MCAP permits them) and sorted, with a
    :class:`LogOrderWarning` saying how often time went backwards.

    Raises:
        LogFormatError: two messages share a ``log_time`` (frame keys would collide).
    """
    in_file = np.asarray(times_in_file_order, dtype=np.int64)
    backwards = int(np.count_nonzero(np.diff(in_file) < 0))
    times = np.sort(in_file, kind="stable")
    duplicate = np.flatnonzero(np.diff(times) == 0)
    if duplicate.size:
        raise LogFormatError(
            path, topic, f"{duplicate.size + 1} messages share log_time {int(times[duplicate[0]])}: frame keys would collide"
        )
    if backwards:
        warnings.warn(
            LogOrderWarning(
                f"{path}: {topic}: log_time goes backwards {backwards} times in file order; frames are listed sorted by log_time"
            ),
            stacklevel=3,
        )
    return [int(t) for t in times]


# ---------------------------------------------------------------------- message sources
@dataclass(frozen=True)
class RawMessage:
    """A message not yet decoded: its topic, ``log_time`` (ns) and reader-specific payload."""

    topic: str
    log_time_ns: int
    payload: Any = field(repr=False)


class MessageSource(abc.ABC):
    """What a log reader gives the assembler: time-window reads and decoding.

    Attributes:
        path: the log (for error messages).
    """

    path: str

    @abc.abstractmethod
    def read(self, topics: Sequence[str], start_ns: int | None, end_ns: int | None, limit: int | None = None) -> list[RawMessage]:
        """Messages on ``topics`` with ``start_ns <= log_time < end_ns`` (``None`` = unbounded), in time order.

        ``limit`` stops after that many messages (and reads no further).
        """

    @abc.abstractmethod
    def decode(self, message: RawMessage) -> Any:
        """Decode to a sample (:mod:`~av_pipeline.readers.mcap_samples`) or a list of transforms.

        Raises:
            LogFormatError: the bytes do not decode; names the topic and time.
        """


# ---------------------------------------------------------------------- transform tree
class TransformWindowTooNarrow(Exception):
    """Internal: a dynamic transform needs samples from outside the window read so far."""


class TransformTree:
    """Static and time-stamped ``parent_SE3_child`` edges; lookups compose along the path.

    Args:
        static: transforms valid at all times (``/tf_static``); the last one per edge wins.
        dynamic: ``(time_ns, transform)`` samples; interpolated per edge (slerp + linear).
        max_extrapolation_ns: how far outside an edge's samples a lookup may go.
        path: the log, for error messages.
        complete: ``False`` when more samples exist outside those given: a lookup outside an
            edge's samples then raises :class:`TransformWindowTooNarrow` instead of
            extrapolating.
    """

    def __init__(
        self,
        static: Iterable[TransformSample],
        dynamic: Iterable[tuple[int, TransformSample]],
        max_extrapolation_ns: int,
        path: str,
        *,
        complete: bool = True,
    ) -> None:
        self._path = path
        self._complete = complete
        self._max_extrapolation_ns = int(max_extrapolation_ns)
        self._static: dict[tuple[str, str], SE3] = {}
        for s in static:
            self._static[(s.parent, s.child)] = s.parent_SE3_child
        samples: dict[tuple[str, str], dict[int, SE3]] = defaultdict(dict)
        for time_ns, s in dynamic:
            if (s.parent, s.child) not in self._static:
                samples[(s.parent, s.child)][int(time_ns)] = s.parent_SE3_child
        self._dynamic: dict[tuple[str, str], PoseTrajectory] = {}
        for (parent, child), by_time in samples.items():
            times = sorted(by_time)
            self._dynamic[(parent, child)] = PoseTrajectory.from_poses(
                np.array(times, dtype=np.int64), [by_time[t] for t in times], dst_frame=parent, src_frame=child
            )
        self._neighbours: dict[str, list[tuple[str, tuple[str, str], bool]]] = defaultdict(list)
        for parent, child in list(self._static) + list(self._dynamic):
            self._neighbours[parent].append((child, (parent, child), True))
            self._neighbours[child].append((parent, (parent, child), False))

    @property
    def complete(self) -> bool:
        """Whether every sample that exists was given (no wider window to read)."""
        return self._complete

    @property
    def frames(self) -> list[str]:
        """All frame ids with at least one edge."""
        return sorted(self._neighbours)

    def _edge(self, key: tuple[str, str], time_ns: int) -> SE3:
        if key in self._static:
            return self._static[key]
        trajectory = self._dynamic[key]
        start, end = trajectory.start_ns, trajectory.end_ns
        gap = start - time_ns if time_ns < start else time_ns - end if time_ns > end else 0
        if gap and not self._complete:
            raise TransformWindowTooNarrow(f"{key[0]} -> {key[1]}")
        if gap > self._max_extrapolation_ns:
            raise LogFormatError(
                self._path,
                f"transform {key[0]} -> {key[1]}",
                f"time {time_ns} is {gap / 1e6:.1f} ms outside the samples [{start}, {end}] read around it "
                f"(pose_extrapolation_ns={self._max_extrapolation_ns}; max_pose_window_ns bounds the samples read)",
            )
        policy = "linear" if len(trajectory) >= 2 else "clamp"
        return trajectory.at(int(time_ns), extrapolation=policy)

    def lookup(self, target: str, source: str, time_ns: int) -> SE3 | None:
        """``target_SE3_source`` at ``time_ns``, or ``None`` when the frames are not connected.

        Raises:
            LogFormatError: a dynamic edge on the path has no samples close enough to ``time_ns``.
        """
        if target == source:
            return SE3.identity()
        previous: dict[str, tuple[str, tuple[str, str], bool]] = {}
        queue = deque([target])
        seen = {target}
        while queue:
            frame = queue.popleft()
            if frame == source:
                break
            for neighbour, key, forward in self._neighbours.get(frame, ()):
                if neighbour not in seen:
                    seen.add(neighbour)
                    previous[neighbour] = (frame, key, forward)
                    queue.append(neighbour)
        if source not in seen:
            return None
        # Walk back from source to target, composing target_SE3_source = ... @ a_SE3_source.
        result = SE3.identity()
        frame = source
        while frame != target:
            parent_frame, key, forward = previous[frame]
            edge = self._edge(key, time_ns)  # key[0]_SE3_key[1]
            step = edge if forward else edge.inverse()  # parent_frame_SE3_frame
            result = step.compose(result)
            frame = parent_frame
        return result


# ---------------------------------------------------------------------- frame assembly
def _nearest(messages: Sequence[RawMessage], time_ns: int, tolerance_ns: int) -> RawMessage | None:
    best = None
    for m in messages:
        delta = abs(m.log_time_ns - time_ns)
        if delta <= tolerance_ns and (best is None or delta < abs(best.log_time_ns - time_ns)):
            best = m
    return best


class FrameAssembler:
    """Builds :class:`Frame` records from a :class:`MessageSource` (one per LiDAR message time).

    Static transforms and fallback calibrations are read once and cached.
    """

    def __init__(self, source: MessageSource, plan: TopicPlan, options: MessageLogOptions, log_id: str) -> None:
        self.source = source
        self.plan = plan
        self.options = options
        self.log_id = log_id
        self._static: list[TransformSample] | None = None
        self._first_calibration: dict[str, CalibrationSample] = {}
        self._dynamic_frames: set[str] = set()
        self._learned_dynamic_frames = False

    # ------------------------------------------------------------------ cached reads
    def _static_transforms(self) -> list[TransformSample]:
        if self._static is None:
            messages = self.source.read(self.plan.static_tf_topics, None, None) if self.plan.static_tf_topics else []
            self._static = [s for m in messages for s in self.source.decode(m)]
        return self._static

    def _fallback_calibration(self, camera: str) -> CalibrationSample:
        if camera not in self._first_calibration:
            topic = self.plan.calibration_topics[camera]
            messages = self.source.read([topic], None, None, limit=1)
            if not messages:
                raise LogFormatError(self.source.path, topic, f"camera {camera!r}: the calibration topic has no messages")
            self._first_calibration[camera] = self.source.decode(messages[0])
        return self._first_calibration[camera]

    # ------------------------------------------------------------------ assembly
    def assemble(self, time_ns: int) -> Frame:
        """The frame of the primary LiDAR message logged at ``time_ns``.

        Raises:
            LogFormatError: no LiDAR message at that time, a message that does not decode,
                a sensor without extrinsics, or a transform that cannot be interpolated.
        """
        plan, opts, path = self.plan, self.options, self.source.path
        tol = opts.sync_tolerance_ns
        window_topics = [plan.lidar_topic, *plan.extra_lidar_topics, *plan.camera_topics.values(), *plan.calibration_topics.values()]
        nearest_topics = [t for t in (plan.onboard_topic, plan.annotation_topic, plan.planned_path_topic) if t]
        nearest_topics += list(plan.onboard_camera_topics.values())
        window_topics += nearest_topics
        by_topic: dict[str, list[RawMessage]] = defaultdict(list)
        for m in self.source.read(list(dict.fromkeys(window_topics)), max(time_ns - tol, 0), time_ns + tol + 1):
            by_topic[m.topic].append(m)
        primary = [m for m in by_topic[plan.lidar_topic] if m.log_time_ns == time_ns]
        if not primary:
            raise LogFormatError(path, plan.lidar_topic, f"no LiDAR message logged at {time_ns}")

        # Decode the sensor messages once; the transform tree may need a wider window.
        clouds: list[tuple[str, RawMessage, CloudSample]] = [(plan.lidar_topic, primary[0], self.source.decode(primary[0]))]
        for topic in plan.extra_lidar_topics:
            message = _nearest(by_topic[topic], time_ns, tol)
            if message is not None:
                clouds.append((topic, message, self.source.decode(message)))
        cameras: dict[str, tuple[CalibrationSample, RawMessage | None, ImageSample | None]] = {}
        for name, calib_topic in plan.calibration_topics.items():
            calib_message = _nearest(by_topic[calib_topic], time_ns, tol)
            calibration = self.source.decode(calib_message) if calib_message is not None else self._fallback_calibration(name)
            image_topic = plan.camera_topics.get(name)
            image_message = _nearest(by_topic[image_topic], time_ns, tol) if image_topic else None
            image = self.source.decode(image_message) if image_message is not None else None
            cameras[name] = (calibration, image_message, image)
        # Cuboids, planned path and 2D boxes: the message nearest the sweep on each topic.
        onboard_samples: dict[str, CuboidSample | PathSample | CameraBoxesSample | None] = {}
        for topic in nearest_topics:
            message = _nearest(by_topic[topic], time_ns, tol)
            onboard_samples[topic] = self.source.decode(message) if message is not None else None

        if plan.dynamic_tf_topics and not self._learned_dynamic_frames:
            # Learn once which frames /tf publishes near here (the widest window), so a slow
            # publisher (say map -> odom at 1 Hz) makes later frames widen their window.
            w = opts.max_pose_window_ns
            for m in self.source.read(plan.dynamic_tf_topics, max(time_ns - w, 0), time_ns + w + 1):
                self._dynamic_frames.update(f for s in self.source.decode(m) for f in (s.parent, s.child))
            self._learned_dynamic_frames = True

        window = opts.pose_window_ns
        while True:
            complete = not plan.dynamic_tf_topics or window >= opts.max_pose_window_ns
            dynamic: list[tuple[int, TransformSample]] = []
            if plan.dynamic_tf_topics:
                for m in self.source.read(plan.dynamic_tf_topics, max(time_ns - window, 0), time_ns + window + 1):
                    dynamic.extend((m.log_time_ns, s) for s in self.source.decode(m))
                self._dynamic_frames.update(f for _, s in dynamic for f in (s.parent, s.child))
            tree = TransformTree(self._static_transforms(), dynamic, opts.pose_extrapolation_ns, path, complete=complete)
            try:
                return self._build(time_ns, tree, clouds, cameras, onboard_samples)
            except TransformWindowTooNarrow:
                window = min(window * 5, opts.max_pose_window_ns) if window else 1_000_000

    def _build(
        self,
        time_ns: int,
        tree: TransformTree,
        clouds: list[tuple[str, RawMessage, CloudSample]],
        cameras: Mapping[str, tuple[CalibrationSample, RawMessage | None, ImageSample | None]],
        samples: Mapping[str, Any],
    ) -> Frame:
        plan, opts, path = self.plan, self.options, self.source.path

        def extrinsic(frame_id: str, what: str) -> SE3:
            ego_SE3_sensor = tree.lookup(opts.ego_frame, frame_id, time_ns) if frame_id else None
            if ego_SE3_sensor is None and not tree.complete and frame_id in self._dynamic_frames:
                raise TransformWindowTooNarrow(frame_id)  # published on /tf, less often than the window
            if ego_SE3_sensor is None:
                if opts.allow_missing_extrinsics:
                    return SE3.identity()
                raise LogFormatError(
                    path,
                    what,
                    f"no transform from {opts.ego_frame!r} to sensor frame {frame_id!r}; frames in the transform tree: "
                    f"{tree.frames}; pass allow_missing_extrinsics=True to use the identity",
                )
            return ego_SE3_sensor

        lidars: dict[str, LidarSweep] = {}
        lidar_extrinsics: dict[str, SE3] = {}
        for topic, message, cloud in clouds:
            name = cloud.frame_id or camera_name_from_topic(topic)
            if name in lidars:
                raise LogFormatError(path, f"{topic} frame_id", f"two LiDAR topics use the frame_id {name!r}")
            offsets = None
            if cloud.time_offsets_ns is not None:
                offsets = cloud.time_offsets_ns + (cloud.stamp_ns - message.log_time_ns)
            lidars[name] = _sweep(name, message.log_time_ns, cloud, offsets, path, topic)
            lidar_extrinsics[name] = extrinsic(cloud.frame_id, f"{topic} frame_id")

        rig_cameras: dict[str, RigCamera] = {}
        images: dict[str, CameraImage] = {}
        for name, (calibration, image_message, image) in cameras.items():
            camera_frame = calibration.frame_id or (image.frame_id if image is not None else "")
            rig_cameras[name] = RigCamera(calibration.model, extrinsic(camera_frame, f"{plan.calibration_topics[name]} frame_id"))
            if image is not None and image_message is not None:
                images[name] = self._camera_image(name, image, image_message, calibration)

        world_SE3_ego = None
        for world in opts.world_frames:
            world_SE3_ego = tree.lookup(world, opts.ego_frame, time_ns)
            if world_SE3_ego is not None:
                break
        if world_SE3_ego is None and not tree.complete and any(w in self._dynamic_frames for w in opts.world_frames):
            raise TransformWindowTooNarrow("world")

        onboard_boxes = self._cuboids(plan.onboard_topic, samples[plan.onboard_topic], time_ns, tree) if plan.onboard_topic else None
        path_topic = plan.planned_path_topic
        planned_path = self._planned_path(path_topic, samples[path_topic], time_ns, tree) if path_topic else None
        camera_boxes: dict[str, CameraBoxes] = {}
        for name, topic in plan.onboard_camera_topics.items():
            sample = samples[topic]
            if sample is not None:
                camera_boxes[name] = replace(sample.boxes, camera=name)
        onboard = None
        if onboard_boxes is not None or planned_path is not None or camera_boxes:
            onboard = OnboardPerception(onboard_boxes if onboard_boxes is not None else Cuboids.empty(EGO), camera_boxes, planned_path)
        annotations = self._cuboids(plan.annotation_topic, samples[plan.annotation_topic], time_ns, tree) if plan.annotation_topic else None

        return Frame(
            log_id=self.log_id,
            timestamp_ns=time_ns,
            rig=SensorRig(cameras=rig_cameras, lidars=lidar_extrinsics),
            world_SE3_ego=world_SE3_ego,
            lidars=lidars,
            images=images,
            onboard=onboard,
            annotations=annotations,
            source_uri=f"{path}#{plan.lidar_topic}@{time_ns}",
        )

    def _camera_image(self, name: str, image: ImageSample, message: RawMessage, calibration: CalibrationSample) -> CameraImage:
        source = f"{self.source.path}#{message.topic}@{message.log_time_ns}"
        width, height = image.width_px, image.height_px
        if width is None or height is None:
            # Compressed images carry no size: trust the calibration (decode() checks it),
            # else read the file header.
            size = (calibration.model.width_px, calibration.model.height_px)
            if size[0] <= 0 or size[1] <= 0:
                size = image_size_from_header(image.data)
            if size is None:
                raise LogFormatError(source, f"{name} image", f"cannot tell the size of the {image.encoding} image")
            width, height = size
        try:
            return CameraImage(name, message.log_time_ns, image.encoding, image.data, width, height, source)
        except AVPipelineError as exc:
            raise LogFormatError(source, f"{name} image", str(exc)) from exc

    def _cuboids(self, topic: str, sample: CuboidSample | None, time_ns: int, tree: TransformTree) -> Cuboids | None:
        if sample is None:
            return None
        # Labels as written, mapped to the product classes (any dataset's spelling); the written ones kept as source labels.
        cuboids = with_product_labels(sample.cuboids, "any")
        if len(cuboids) == 0:
            return Cuboids.empty(EGO)
        if sample.frame_id in (self.options.ego_frame, EGO):
            return replace(cuboids, frame=EGO)
        return cuboids.transform(self._ego_SE3(sample.frame_id, topic, time_ns, tree, "box frame"), EGO)

    def _ego_SE3(self, frame_id: str, topic: str, time_ns: int, tree: TransformTree, what: str) -> SE3:
        """``ego_SE3_frame`` at ``time_ns`` for a message in ``frame_id``."""
        ego_SE3_frame = tree.lookup(self.options.ego_frame, frame_id, time_ns)
        if ego_SE3_frame is None and not tree.complete and frame_id in self._dynamic_frames:
            raise TransformWindowTooNarrow(frame_id)
        if ego_SE3_frame is None:
            raise LogFormatError(self.source.path, f"{topic} frame_id", f"no transform from {self.options.ego_frame!r} to {what} {frame_id!r}")
        return ego_SE3_frame

    def _planned_path(self, topic: str, sample: PathSample | None, time_ns: int, tree: TransformTree) -> PlannedPath | None:
        """The path in ``ego`` at the sweep time. A path in another frame (``map``, ``odom``) is
        moved with the transform tree at the sweep time; positions keep their x, y (z is
        dropped) and each heading becomes that of its rotated direction."""
        if sample is None:
            return None
        positions, yaws = sample.positions_m, sample.yaws_rad
        if sample.frame_id not in (self.options.ego_frame, EGO):
            ego_SE3_frame = self._ego_SE3(sample.frame_id, topic, time_ns, tree, "path frame")
            headings = np.column_stack([np.cos(yaws), np.sin(yaws), np.zeros(len(yaws))]) @ ego_SE3_frame.rotation.T
            positions = ego_SE3_frame.transform_points(positions) if len(positions) else positions
            yaws = np.arctan2(headings[:, 1], headings[:, 0])
        try:
            return PlannedPath(sample.timestamps_ns, np.column_stack([positions[:, :2], yaws]))
        except (AVPipelineError, ValueError) as exc:
            raise LogFormatError(self.source.path, f"{topic} poses", str(exc)) from exc


def _sweep(name: str, time_ns: int, cloud: CloudSample, offsets: np.ndarray | None, path: str, topic: str) -> LidarSweep:
    if offsets is not None and len(offsets) and (offsets.min() < np.iinfo(np.int32).min or offsets.max() > np.iinfo(np.int32).max):
        raise LogFormatError(path, f"{topic} time", "per-point times relative to log_time exceed the int32 range")
    try:
        return LidarSweep(name, time_ns, cloud.points, cloud.columns, offsets)
    except AVPipelineError as exc:
        raise LogFormatError(path, topic, str(exc)) from exc
