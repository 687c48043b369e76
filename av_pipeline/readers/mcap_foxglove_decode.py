"""foxglove protobuf message -> sample decoders (the MCAP reader's foxglove schema family).

Supported schemas (``FOXGLOVE_DECODERS``): ``foxglove.PointCloud``, ``foxglove.CompressedImage``,
``foxglove.RawImage``, ``foxglove.CameraCalibration``, ``foxglove.FrameTransform``,
``foxglove.FrameTransforms`` and ``foxglove.SceneUpdate`` (cuboids).

Cuboid convention in ``SceneUpdate`` (the writer follows it, the reader expects it): one
``SceneEntity`` per box with one ``CubePrimitive``; ``cube.pose`` is the box centre with the
heading in its orientation, ``cube.size`` is ``(length, width, height)`` in metres; entity
``metadata`` carries ``class`` (also accepted: ``label``), ``score`` (decimal text, parsed to
float32), ``track_id`` (decimal integer) and, when known, ``num_lidar_points`` and
``source_class`` (the dataset's own class name, ``Cuboids.source_labels``). The entity
``id`` is the track id as text (``"untracked-<i>"`` for boxes without one); when the
``track_id`` key is absent, an integer ``id`` is taken as the track id. Missing class ->
``"unknown"``, missing score -> 1.0. All entities of one update share one ``frame_id``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.readers.mcap_samples import (
    FOXGLOVE_NUMERIC_DTYPES,
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    CalibrationSample,
    CloudSample,
    CuboidSample,
    ImageSample,
    PackedField,
    TransformSample,
    camera_model_from_info,
    compressed_format_to_encoding,
    normalize_frame_id,
    parse_int_text,
    raw_image_bytes,
    se3_from_xyzw,
    unpack_points,
    yaw_from_xyzw,
)


def timestamp_ns(ts: Any) -> int:
    """Nanoseconds of a ``google.protobuf.Timestamp``."""
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def decode_point_cloud(msg: Any, path: str, topic: str) -> CloudSample:
    """``foxglove.PointCloud`` -> :class:`CloudSample`.

    A non-identity ``pose`` (the cloud's origin in ``frame_id``) is applied to ``x, y, z``
    (in float32), so points come out in ``frame_id``; with the identity pose the values are
    copied bit for bit.
    """
    stamp = timestamp_ns(msg.timestamp)
    fields = []
    for f in msg.fields:
        code = int(f.type)
        if code not in FOXGLOVE_NUMERIC_DTYPES:
            raise LogFormatError(path, f"{topic} fields", f"field {f.name!r} has unknown NumericType {code}")
        fields.append(PackedField(str(f.name), int(f.offset), np.dtype("<" + FOXGLOVE_NUMERIC_DTYPES[code])))
    stride = int(msg.point_stride)
    data = bytes(msg.data)
    if stride <= 0 or len(data) % stride:
        raise LogFormatError(path, f"{topic} data", f"expected a multiple of point_stride {stride} bytes, got {len(data)}")
    count = len(data) // stride
    points, columns, offsets = unpack_points(data, fields, stride, count, 1, count * stride, stamp, path=path, topic=topic)
    if msg.HasField("pose"):
        p, q = msg.pose.position, msg.pose.orientation
        frame_SE3_cloud = se3_from_xyzw([p.x, p.y, p.z], [q.x, q.y, q.z, q.w], path, f"{topic} pose")
        if not np.array_equal(frame_SE3_cloud.rotation, np.eye(3)) or np.any(frame_SE3_cloud.translation):
            points = points.copy()
            points[:, :3] = frame_SE3_cloud.transform_points(points[:, :3])
    return CloudSample(normalize_frame_id(msg.frame_id), stamp, points, columns, offsets)


def decode_compressed_image(msg: Any, path: str, topic: str) -> ImageSample:
    """``foxglove.CompressedImage`` (``format`` png / jpeg) -> :class:`ImageSample`."""
    encoding = compressed_format_to_encoding(str(msg.format), path=path, topic=topic)
    return ImageSample(normalize_frame_id(msg.frame_id), timestamp_ns(msg.timestamp), encoding, bytes(msg.data))


def decode_raw_image(msg: Any, path: str, topic: str) -> ImageSample:
    """``foxglove.RawImage`` (8-bit encodings) -> :class:`ImageSample`."""
    width, height = int(msg.width), int(msg.height)
    encoding, data = raw_image_bytes(str(msg.encoding), width, height, int(msg.step), bytes(msg.data), path=path, topic=topic)
    return ImageSample(normalize_frame_id(msg.frame_id), timestamp_ns(msg.timestamp), encoding, data, width, height)


def decode_camera_calibration(msg: Any, path: str, topic: str) -> CalibrationSample:
    """``foxglove.CameraCalibration`` -> :class:`CalibrationSample`."""
    model = camera_model_from_info(
        str(msg.distortion_model), list(msg.D), list(msg.K), int(msg.width), int(msg.height), path=path, topic=topic
    )
    return CalibrationSample(normalize_frame_id(msg.frame_id), timestamp_ns(msg.timestamp), model)


def decode_frame_transform(msg: Any, path: str, topic: str) -> list[TransformSample]:
    """``foxglove.FrameTransform`` -> one :class:`TransformSample` (``parent_SE3_child``)."""
    t, q = msg.translation, msg.rotation
    pose = se3_from_xyzw([t.x, t.y, t.z], [q.x, q.y, q.z, q.w], path, f"{topic} transform")
    parent, child = normalize_frame_id(msg.parent_frame_id), normalize_frame_id(msg.child_frame_id)
    return [TransformSample(parent, child, timestamp_ns(msg.timestamp), pose)]


def decode_frame_transforms(msg: Any, path: str, topic: str) -> list[TransformSample]:
    """``foxglove.FrameTransforms`` -> one :class:`TransformSample` per transform."""
    return [s for tf in msg.transforms for s in decode_frame_transform(tf, path, topic)]


def decode_scene_update(msg: Any, path: str, topic: str) -> CuboidSample:
    """``foxglove.SceneUpdate`` with ``CubePrimitive`` boxes -> :class:`CuboidSample` (convention in the module doc)."""
    frames = {normalize_frame_id(e.frame_id) for e in msg.entities if len(e.cubes)}
    if len(frames) > 1:
        raise LogFormatError(path, f"{topic} entities", f"expected one frame_id for all boxes, got {sorted(frames)}")
    frame_id = frames.pop() if frames else ""
    stamp = max((timestamp_ns(e.timestamp) for e in msg.entities), default=0)
    centers, sizes, quats, labels, scores, tracks, counts, sources = [], [], [], [], [], [], [], []
    for i, entity in enumerate(msg.entities):
        meta = {kv.key: kv.value for kv in entity.metadata}
        label = meta.get("class", meta.get("label", "unknown"))
        source = meta.get("source_class")
        where = f"{topic} entities[{i}] metadata"
        try:
            score = float(meta.get("score", "1.0"))
        except ValueError:
            raise LogFormatError(path, f"{where} score", f"expected a number, got {short_repr(meta.get('score'))}") from None
        if not np.isfinite(score):
            raise LogFormatError(path, f"{where} score", f"expected a finite number, got {short_repr(meta.get('score'))}")
        if "track_id" in meta:
            track = parse_int_text(meta["track_id"], path, f"{where} track_id", INT64_MIN, INT64_MAX)
        else:
            text = entity.id.strip()
            track = int(text) if text.lstrip("-").isascii() and text.lstrip("-").isdigit() and INT64_MIN <= int(text) <= INT64_MAX else -1
        count = parse_int_text(meta["num_lidar_points"], path, f"{where} num_lidar_points", 0, INT32_MAX) if "num_lidar_points" in meta else None
        for cube in entity.cubes:
            p, q, s = cube.pose.position, cube.pose.orientation, cube.size
            centers.append([p.x, p.y, p.z])
            quats.append([q.x, q.y, q.z, q.w])
            sizes.append([s.x, s.y, s.z])
            labels.append(label)
            scores.append(score)
            tracks.append(track)
            counts.append(count)
            sources.append(source)
    yaws = yaw_from_xyzw(np.asarray(quats, dtype=np.float64).reshape(-1, 4))
    num_points = counts if counts and all(c is not None for c in counts) else None
    source_labels = sources if sources and all(s is not None for s in sources) else None
    try:
        cuboids = Cuboids.from_arrays(
            frame_id, np.reshape(centers, (-1, 3)), np.reshape(sizes, (-1, 3)), yaws, labels, scores, tracks, num_points, source_labels
        )
    except ValueError as exc:  # ShapeError: e.g. a zero-size cube
        raise LogFormatError(path, f"{topic} cubes", str(exc)) from exc
    return CuboidSample(frame_id, stamp, cuboids)


#: foxglove schema name -> decoder ``(message, path, topic) -> sample | list[TransformSample]``.
FOXGLOVE_DECODERS: dict[str, Callable[[Any, str, str], Any]] = {
    "foxglove.PointCloud": decode_point_cloud,
    "foxglove.CompressedImage": decode_compressed_image,
    "foxglove.RawImage": decode_raw_image,
    "foxglove.CameraCalibration": decode_camera_calibration,
    "foxglove.FrameTransform": decode_frame_transform,
    "foxglove.FrameTransforms": decode_frame_transforms,
    "foxglove.SceneUpdate": decode_scene_update,
}
