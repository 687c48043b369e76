"""ROS message -> sample decoders, shared by the ROS 2 MCAP path and the ROS 1 / ROS 2 bag reader.

The functions take a *decoded* message object and only read attributes, so they work on
``mcap_ros2`` messages (ROS 2 cdr in MCAP) and on ``rosbags`` messages (ROS 1 and ROS 2
bags) alike. Field-name differences between ROS 1 and ROS 2 (``CameraInfo.D`` vs ``d``)
are handled here.

Supported types (``ROS_DECODERS``): ``sensor_msgs/msg/PointCloud2``, ``sensor_msgs/msg/Image``,
``sensor_msgs/msg/CompressedImage``, ``sensor_msgs/msg/CameraInfo``, ``tf2_msgs/msg/TFMessage``
``vision_msgs/msg/Detection3DArray`` (onboard cuboids; see docs/formats.md for
the class / score / track-id convention), ``vision_msgs/msg/Detection2DArray`` (onboard 2D
camera boxes, same convention) and ``nav_msgs/msg/Path`` (the planner's path).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.records import CameraBoxes
from calibration.errors import AVPipelineError
from av_pipeline.errors import LogFormatError
from av_pipeline.readers.mcap_samples import (
    INT64_MAX,
    INT64_MIN,
    ROS_POINT_FIELD_DTYPES,
    CalibrationSample,
    CameraBoxesSample,
    CloudSample,
    CuboidSample,
    ImageSample,
    PackedField,
    PathSample,
    TransformSample,
    as_bytes,
    camera_model_from_info,
    compressed_format_to_encoding,
    normalize_frame_id,
    raw_image_bytes,
    se3_from_xyzw,
    unpack_points,
    yaw_from_xyzw,
)


def normalize_ros_type(name: str) -> str:
    """``"sensor_msgs/PointCloud2"`` (ROS 1) -> ``"sensor_msgs/msg/PointCloud2"``; ROS 2 names unchanged."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time`` (``sec``, ``nanosec``; ROS 1 ``secs``/``nsecs``)."""
    sec = getattr(stamp, "sec", None)
    if sec is None:
        return int(stamp.secs) * 1_000_000_000 + int(stamp.nsecs)
    return int(sec) * 1_000_000_000 + int(stamp.nanosec)


def _header(msg: Any) -> tuple[str, int]:
    return normalize_frame_id(msg.header.frame_id), stamp_ns(msg.header.stamp)


def _field(msg: Any, *names: str) -> Any:
    for name in names:
        if hasattr(msg, name):
            return getattr(msg, name)
    raise AttributeError(f"message has none of the fields {names}")


def decode_point_cloud2(msg: Any, path: str, topic: str) -> CloudSample:
    """``sensor_msgs/PointCloud2`` -> :class:`CloudSample` (see :func:`~av_pipeline.readers.mcap_samples.unpack_points`)."""
    frame_id, stamp = _header(msg)
    order = ">" if bool(msg.is_bigendian) else "<"
    fields = []
    for f in msg.fields:
        code = int(f.datatype)
        if code not in ROS_POINT_FIELD_DTYPES:
            raise LogFormatError(path, f"{topic} fields", f"field {f.name!r} has unknown PointField datatype {code}")
        fields.append(PackedField(str(f.name), int(f.offset), np.dtype(order + ROS_POINT_FIELD_DTYPES[code]), int(f.count)))
    points, columns, offsets = _unpack(msg, fields, stamp, path, topic)
    return CloudSample(frame_id, stamp, points, columns, offsets)


def _unpack(msg: Any, fields: list[PackedField], stamp: int, path: str, topic: str) -> tuple:
    return unpack_points(
        as_bytes(msg.data),
        fields,
        int(msg.point_step),
        int(msg.width),
        int(msg.height),
        int(msg.row_step),
        stamp,
        path=path,
        topic=topic,
    )


def decode_image(msg: Any, path: str, topic: str) -> ImageSample:
    """``sensor_msgs/Image`` (8-bit encodings, see ``RAW_IMAGE_ENCODINGS``) -> :class:`ImageSample`."""
    frame_id, stamp = _header(msg)
    width, height = int(msg.width), int(msg.height)
    encoding, data = raw_image_bytes(str(msg.encoding), width, height, int(msg.step), as_bytes(msg.data), path=path, topic=topic)
    return ImageSample(frame_id, stamp, encoding, data, width, height)


def decode_compressed_image(msg: Any, path: str, topic: str) -> ImageSample:
    """``sensor_msgs/CompressedImage`` (png / jpeg) -> :class:`ImageSample` (size unknown until assembly)."""
    frame_id, stamp = _header(msg)
    encoding = compressed_format_to_encoding(str(msg.format), path=path, topic=topic)
    return ImageSample(frame_id, stamp, encoding, as_bytes(msg.data))


def decode_camera_info(msg: Any, path: str, topic: str) -> CalibrationSample:
    """``sensor_msgs/CameraInfo`` (ROS 1 ``D``/``K`` or ROS 2 ``d``/``k``) -> :class:`CalibrationSample`."""
    frame_id, stamp = _header(msg)
    model = camera_model_from_info(
        str(msg.distortion_model), _field(msg, "d", "D"), _field(msg, "k", "K"), int(msg.width), int(msg.height), path=path, topic=topic
    )
    return CalibrationSample(frame_id, stamp, model)


def decode_tf_message(msg: Any, path: str, topic: str) -> list[TransformSample]:
    """``tf2_msgs/TFMessage`` -> one :class:`TransformSample` per ``TransformStamped``."""
    out = []
    for i, tf in enumerate(msg.transforms):
        parent, stamp = _header(tf)
        t, q = tf.transform.translation, tf.transform.rotation
        pose = se3_from_xyzw([t.x, t.y, t.z], [q.x, q.y, q.z, q.w], path, f"{topic} transforms[{i}]")
        out.append(TransformSample(parent, normalize_frame_id(tf.child_frame_id), stamp, pose))
    return out


def decode_detection3d_array(msg: Any, path: str, topic: str) -> CuboidSample:
    """``vision_msgs/Detection3DArray`` -> :class:`CuboidSample`.

    Convention: ``bbox.center`` is the box centre with the heading in its orientation,
    ``bbox.size`` is ``(length, width, height)``; the class is the ``class_id`` of the
    highest-scoring hypothesis (``results[i].hypothesis``, or the older ``results[i].id``)
    and its ``score`` the confidence (1.0 and ``"unknown"`` without results); the track id
    is ``id`` parsed as an integer (-1 when empty or not a number). Boxes whose header
    ``frame_id`` differs from the array's are rejected.
    """
    frame_id, stamp = _header(msg)
    centers, sizes, quats, labels, scores, tracks = [], [], [], [], [], []
    for i, det in enumerate(msg.detections):
        det_frame = normalize_frame_id(det.header.frame_id) if hasattr(det, "header") else ""
        if det_frame and det_frame != frame_id:
            raise LogFormatError(path, f"{topic} detections[{i}]", f"frame_id {det_frame!r} differs from the array's {frame_id!r}")
        c, s = det.bbox.center, det.bbox.size
        centers.append([c.position.x, c.position.y, c.position.z])
        quats.append([c.orientation.x, c.orientation.y, c.orientation.z, c.orientation.w])
        sizes.append([s.x, s.y, s.z])
        label, score = _best_hypothesis(det.results, path, f"{topic} detections[{i}]")
        labels.append(label)
        scores.append(score)
        tracks.append(_parse_track_id(str(getattr(det, "id", ""))))
    yaws = yaw_from_xyzw(np.asarray(quats, dtype=np.float64).reshape(-1, 4))
    try:
        cuboids = Cuboids.from_arrays(frame_id, np.reshape(centers, (-1, 3)), np.reshape(sizes, (-1, 3)), yaws, labels, scores, tracks)
    except ValueError as exc:  # ShapeError: e.g. a zero-size box
        raise LogFormatError(path, f"{topic} detections", str(exc)) from exc
    return CuboidSample(frame_id, stamp, cuboids)


def _best_hypothesis(results: Any, path: str, where: str) -> tuple[str, float]:
    """``(class, score)`` of the highest-scoring hypothesis (``("unknown", 1.0)`` without results)."""
    label, score, best = "unknown", 1.0, -np.inf
    for result in results:
        hyp = getattr(result, "hypothesis", result)
        value = float(hyp.score)
        if not np.isfinite(value):
            raise LogFormatError(path, f"{where} score", f"expected a finite score, got {value!r}")
        if value > best:
            best, score = value, value
            label = str(getattr(hyp, "class_id", getattr(hyp, "id", "unknown")))
    return label, score


def decode_detection2d_array(msg: Any, path: str, topic: str) -> CameraBoxesSample:
    """``vision_msgs/Detection2DArray`` -> :class:`CameraBoxesSample` (pixels).

    Convention (as :func:`decode_detection3d_array`): ``bbox.center`` (``position.x/y`` in
    vision_msgs 4.x, ``x/y`` in 3.x) and ``size_x, size_y`` give ``x_min, y_min, x_max,
    y_max``; class and score from the best hypothesis, track id from ``id``. A rotated box
    (``theta != 0``) or a negative size is an error: the record holds axis-aligned boxes.
    """
    frame_id, stamp = _header(msg)
    boxes, labels, scores, tracks = [], [], [], []
    for i, det in enumerate(msg.detections):
        where = f"{topic} detections[{i}]"
        det_frame = normalize_frame_id(det.header.frame_id) if hasattr(det, "header") else ""
        if det_frame and det_frame != frame_id:
            raise LogFormatError(path, where, f"frame_id {det_frame!r} differs from the array's {frame_id!r}")
        center = det.bbox.center
        position = getattr(center, "position", center)
        cx, cy, theta = float(position.x), float(position.y), float(center.theta)
        width, height = float(det.bbox.size_x), float(det.bbox.size_y)
        values = (cx, cy, theta, width, height)
        if not np.isfinite(values).all() or width < 0 or height < 0:
            raise LogFormatError(path, f"{where} bbox", f"expected finite values and sizes >= 0, got center ({cx}, {cy}), size {width} x {height}")
        if theta != 0.0:
            raise LogFormatError(path, f"{where} bbox", f"rotated boxes are not supported (theta {theta})")
        corners = [cx - width / 2.0, cy - height / 2.0, cx + width / 2.0, cy + height / 2.0]
        if not np.isfinite(corners).all():
            raise LogFormatError(path, f"{where} bbox", f"box corners overflow float64: center ({cx}, {cy}), size {width} x {height}")
        boxes.append(corners)
        label, score = _best_hypothesis(det.results, path, where)
        labels.append(label)
        scores.append(score)
        tracks.append(_parse_track_id(str(getattr(det, "id", ""))))
    try:
        camera_boxes = CameraBoxes("", np.reshape(boxes, (-1, 4)), labels, scores, tracks)
    except (AVPipelineError, ValueError) as exc:
        raise LogFormatError(path, f"{topic} detections", str(exc)) from exc
    return CameraBoxesSample(frame_id, stamp, camera_boxes)


def decode_path(msg: Any, path: str, topic: str) -> PathSample:
    """``nav_msgs/Path`` -> :class:`PathSample`: each ``PoseStamped`` with its own stamp.

    The heading of each pose is that of its rotated x axis (:func:`yaw_from_xyzw`). A pose
    whose own header names another frame than the path's, or non-finite values, is an error.
    """
    frame_id, stamp = _header(msg)
    times, positions, quats = [], [], []
    for i, pose in enumerate(msg.poses):
        pose_frame, pose_stamp = _header(pose)
        if pose_frame and pose_frame != frame_id:
            raise LogFormatError(path, f"{topic} poses[{i}] header.frame_id", f"{pose_frame!r} differs from the path's {frame_id!r}")
        p, q = pose.pose.position, pose.pose.orientation
        values = [float(p.x), float(p.y), float(p.z), float(q.x), float(q.y), float(q.z), float(q.w)]
        if not np.isfinite(values).all():
            raise LogFormatError(path, f"{topic} poses[{i}] pose", f"expected finite values, got {values}")
        times.append(pose_stamp)
        positions.append(values[:3])
        quats.append(values[3:])
    yaws = yaw_from_xyzw(np.asarray(quats, dtype=np.float64).reshape(-1, 4))
    return PathSample(frame_id, stamp, np.asarray(times, dtype=np.int64), np.asarray(positions, dtype=np.float64).reshape(-1, 3), yaws)


def _parse_track_id(text: str) -> int:
    """``id`` as an int64 track id; -1 when empty, not a decimal integer, or beyond int64."""
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return -1
    number = int(text)
    return number if INT64_MIN <= number <= INT64_MAX else -1


#: Normalised ROS type name -> decoder ``(message, path, topic) -> sample | list[TransformSample]``.
ROS_DECODERS: dict[str, Callable[[Any, str, str], Any]] = {
    "sensor_msgs/msg/PointCloud2": decode_point_cloud2,
    "sensor_msgs/msg/Image": decode_image,
    "sensor_msgs/msg/CompressedImage": decode_compressed_image,
    "sensor_msgs/msg/CameraInfo": decode_camera_info,
    "tf2_msgs/msg/TFMessage": decode_tf_message,
    "vision_msgs/msg/Detection3DArray": decode_detection3d_array,
    "vision_msgs/msg/Detection2DArray": decode_detection2d_array,
    "nav_msgs/msg/Path": decode_path,
}
