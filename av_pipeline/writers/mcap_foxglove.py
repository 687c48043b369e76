"""Write frames to an MCAP file with foxglove protobuf schemas.

Message types: ``foxglove.PointCloud`` (identity ``pose``; float32 columns then ``t``
int32 ns), ``foxglove.CompressedImage`` (png / jpeg bytes as they are) or
``foxglove.RawImage``, ``foxglove.CameraCalibration``, ``foxglove.FrameTransforms`` on
``/tf_static`` and ``/tf``, and ``foxglove.SceneUpdate`` for cuboids (convention in
:mod:`av_pipeline.readers.mcap_foxglove_decode`). Each schema is stored as the serialized
``FileDescriptorSet`` of its ``.proto`` file and dependencies (the MCAP ``protobuf`` schema
encoding), so any MCAP tool can decode the messages. The onboard planned path and 2D camera
boxes have no fitting foxglove schema: they go on JSON channels, with foxglove display
messages beside them (:mod:`av_pipeline.writers.mcap_foxglove_onboard`).

Cuboids in a viewer: every ``SceneUpdate`` starts with a ``SceneEntityDeletion`` of type
``ALL`` stamped at the frame time, which removes the entities of earlier frames on the same
topic, so what Foxglove shows at a frame is that frame's boxes only: a missed object
disappears and a flickering one blinks, as the log reports them. A frame with no box message
at all on a topic (``Frame.onboard`` or ``Frame.annotations`` is ``None``) deletes nothing.
Each box also carries a text label above it: ``"<class> #<track id> <score>"`` (no ``#`` part
for untracked boxes, no score for annotations).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from av_pipeline.readers.mcap_samples import camera_model_to_info
from av_pipeline.records import Frame
from av_pipeline.writers.mcap_common import check_output_path, compression_type
from av_pipeline.writers.publications import (
    Boxes,
    Calibration,
    Cloud,
    Image,
    Pose,
    Publication,
    StaticTransforms,
    WriterTopics,
    frame_publications,
    packed_points,
    split_ns,
    yaw_to_xyzw,
)
from av_pipeline.writers.mcap_foxglove_onboard import (
    JsonMessage,
    camera_detections_json,
    image_annotations,
    planned_path_json,
    poses_in_frame,
)
from calibration import SE3

#: ``foxglove.PackedElementField.NumericType`` of the field types the writer emits.
_NUMERIC_TYPES = {"f4": 7, "i4": 6}
#: Cube colour (RGBA) per role, for viewers only (not read back).
_COLORS = {"onboard": (1.0, 0.6, 0.0, 0.5), "annotations": (0.0, 0.8, 0.2, 0.5)}
#: Box labels: screen height in pixels, and height above the box top in metres.
_LABEL_FONT_PX = 14.0
_LABEL_LIFT_M = 0.4


def file_descriptor_set(descriptor: Any) -> bytes:
    """Serialized ``FileDescriptorSet`` holding ``descriptor``'s file and its dependencies (dependencies first)."""
    from google.protobuf.descriptor_pb2 import FileDescriptorSet

    out = FileDescriptorSet()
    seen: set[str] = set()

    def add(file_descriptor: Any) -> None:
        if file_descriptor.name in seen:
            return
        for dependency in file_descriptor.dependencies:
            add(dependency)
        seen.add(file_descriptor.name)
        file_descriptor.CopyToProto(out.file.add())

    add(descriptor.file)
    return out.SerializeToString()


def _timestamp(message: Any, time_ns: int) -> None:
    message.seconds, message.nanos = split_ns(time_ns)


def _frame_transform(msg: Any, parent: str, child: str, time_ns: int, parent_SE3_child: SE3) -> None:
    _timestamp(msg.timestamp, time_ns)
    msg.parent_frame_id, msg.child_frame_id = parent, child
    t, q = parent_SE3_child.translation, parent_SE3_child.as_xyzw()
    msg.translation.x, msg.translation.y, msg.translation.z = (float(v) for v in t)
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = (float(v) for v in q)


def foxglove_messages(pub: Publication, topics: WriterTopics) -> list[tuple[str, Any]]:
    """``(topic, message)`` pairs for one publication: protobuf messages, and
    :class:`~av_pipeline.writers.mcap_foxglove_onboard.JsonMessage` for the JSON channels.

    The planned path and onboard camera boxes give two messages each (JSON data first, then
    the foxglove display message); every other role gives one.

    Raises:
        ValueError: an unknown publication role.
    """
    if pub.role == "planned_path":
        return [(topics.planned_path, planned_path_json(pub.content)), (topics.foxglove_planned_path_poses, poses_in_frame(pub.content))]
    if pub.role == "onboard_camera":
        return [
            (topics.onboard_camera.format(name=pub.name), camera_detections_json(pub.name, pub.content)),
            (topics.foxglove_onboard_camera_annotations.format(name=pub.name), image_annotations(pub.content, box_label)),
        ]
    return [foxglove_message(pub, topics)]


def foxglove_message(pub: Publication, topics: WriterTopics) -> tuple[str, Any]:
    """``(topic, protobuf message)`` for one publication of a single-message role (see :func:`foxglove_messages`).

    Raises:
        ValueError: an unknown publication role, or one that gives several messages.
    """
    from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

    t, content = pub.log_time_ns, pub.content
    if pub.role in ("tf_static", "tf"):
        assert isinstance(content, (StaticTransforms, Pose))
        triples = [(content.parent, content.child, content.parent_SE3_child)] if isinstance(content, Pose) else content.transforms
        msg = FrameTransforms()
        for parent, child, pose in triples:
            _frame_transform(msg.transforms.add(), parent, child, t, pose)
        return (topics.tf_static if pub.role == "tf_static" else topics.tf), msg
    if pub.role == "calibration":
        assert isinstance(content, Calibration)
        name, d, k, r, p = camera_model_to_info(content.model, "foxglove")
        model = content.model
        msg = CameraCalibration(
            frame_id=content.frame_id, width=model.width_px, height=model.height_px, distortion_model=name, D=d, K=k, R=r, P=p
        )
        _timestamp(msg.timestamp, t)
        return topics.foxglove_calibration.format(name=pub.name), msg
    if pub.role in ("lidar", "extra_lidar"):
        assert isinstance(content, Cloud)
        fields, step, data = packed_points(content.sweep)
        msg = PointCloud(frame_id=content.frame_id, point_stride=step, data=data)
        _timestamp(msg.timestamp, content.stamp_ns)
        msg.pose.orientation.w = 1.0
        for name, offset, kind in fields:
            msg.fields.add(name=name, offset=offset, type=_NUMERIC_TYPES[kind])
        return (topics.lidar if pub.role == "lidar" else topics.extra_lidar.format(name=pub.name)), msg
    if pub.role == "image":
        assert isinstance(content, Image)
        img = content.image
        if img.encoding in ("png", "jpeg"):
            msg = CompressedImage(frame_id=content.frame_id, data=img.data, format=img.encoding)
        else:
            channels = len(img.data) // (img.width_px * img.height_px)
            msg = RawImage(
                frame_id=content.frame_id,
                width=img.width_px,
                height=img.height_px,
                encoding=img.encoding,
                step=img.width_px * channels,
                data=img.data,
            )
        _timestamp(msg.timestamp, img.timestamp_ns)
        return topics.foxglove_image.format(name=pub.name), msg
    if pub.role in ("onboard", "annotations"):
        assert isinstance(content, Boxes)
        topic = topics.onboard if pub.role == "onboard" else topics.annotations
        return topic, _scene_update(content, t, _COLORS[pub.role], with_scores=pub.role == "onboard")
    if pub.role in ("planned_path", "onboard_camera"):
        raise ValueError(f"publication role {pub.role!r} gives several messages; use foxglove_messages")
    raise ValueError(f"unknown publication role {pub.role!r}")


def box_label(label: str, track_id: int, score: float | None) -> str:
    """The text shown above a box in a viewer: ``"car #12 0.87"``, ``"car 0.87"`` (untracked), ``"car #12"`` (no score)."""
    parts = [label] + ([f"#{track_id}"] if track_id >= 0 else []) + ([f"{score:.2f}"] if score is not None else [])
    return " ".join(parts)


def _scene_update(boxes: Boxes, time_ns: int, color: tuple[float, ...], *, with_scores: bool) -> Any:
    """One frame's boxes as a ``SceneUpdate``: delete every older entity on the topic, then one
    entity per box (a cube and a text label; ``lifetime`` 0, the next frame's deletion ends it)."""
    from foxglove_schemas_protobuf.SceneEntityDeletion_pb2 import SceneEntityDeletion
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate

    c = boxes.cuboids
    q = yaw_to_xyzw(c.yaws_rad)
    msg = SceneUpdate()
    deletion = msg.deletions.add(type=SceneEntityDeletion.ALL)
    _timestamp(deletion.timestamp, time_ns)
    for i in range(len(c)):
        track = int(c.track_ids[i])
        entity = msg.entities.add(frame_id=boxes.frame_id, id=str(track) if track >= 0 else f"untracked-{i}", frame_locked=True)
        _timestamp(entity.timestamp, time_ns)
        metadata = {"class": str(c.labels[i]), "score": repr(float(c.scores[i])), "track_id": str(track)}
        if c.num_lidar_points is not None:
            metadata["num_lidar_points"] = str(int(c.num_lidar_points[i]))
        if c.source_labels is not None:
            metadata["source_class"] = str(c.source_labels[i])
        for key, value in metadata.items():
            entity.metadata.add(key=key, value=value)
        cube = entity.cubes.add()
        cube.pose.position.x, cube.pose.position.y, cube.pose.position.z = (float(v) for v in c.centers_m[i])
        cube.pose.orientation.x, cube.pose.orientation.y, cube.pose.orientation.z, cube.pose.orientation.w = (float(v) for v in q[i])
        cube.size.x, cube.size.y, cube.size.z = (float(v) for v in c.sizes_m[i])
        cube.color.r, cube.color.g, cube.color.b, cube.color.a = color
        score = float(c.scores[i]) if with_scores else None
        label = box_label(str(c.labels[i]), track, score)
        text = entity.texts.add(text=label, billboard=True, font_size=_LABEL_FONT_PX, scale_invariant=True)
        text.pose.position.x, text.pose.position.y = cube.pose.position.x, cube.pose.position.y
        text.pose.position.z = cube.pose.position.z + cube.size.z / 2.0 + _LABEL_LIFT_M
        text.pose.orientation.w = 1.0
        text.color.r, text.color.g, text.color.b, text.color.a = (*color[:3], 1.0)
    return msg


def write_foxglove_mcap(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    topics: WriterTopics = WriterTopics(),
    compression: str = "zstd",
    chunk_size: int = 1 << 20,
) -> dict[str, int]:
    """Write ``frames`` to ``path`` as an MCAP with foxglove protobuf schemas.

    Args:
        frames: frames in any order.
        topics: topic and frame-id names.
        compression: ``"zstd"``, ``"lz4"`` or ``"none"``.
        chunk_size: target chunk size in bytes.

    Returns:
        Messages written per topic.

    Raises:
        LogFormatError: frames the formats cannot represent (see :func:`frame_publications`).
        ConfigError: a bad ``compression`` or output directory.
    """
    from mcap.writer import Writer

    out = check_output_path(path)
    counts: Counter[str] = Counter()
    with out.open("wb") as stream:
        writer = Writer(stream, chunk_size=chunk_size, compression=compression_type(compression))
        writer.start(profile="", library="av-pipeline")
        schema_ids: dict[str, int] = {}
        channel_ids: dict[str, int] = {}
        for pub in frame_publications(frames, topics):
            for topic, message in foxglove_messages(pub, topics):
                if isinstance(message, JsonMessage):
                    schema_name, encoding, message_encoding, data = message.schema_name, "jsonschema", "json", message.data
                else:
                    schema_name, encoding, message_encoding, data = message.DESCRIPTOR.full_name, "protobuf", "protobuf", message.SerializeToString()
                if schema_name not in schema_ids:
                    schema_data = message.schema_data if isinstance(message, JsonMessage) else file_descriptor_set(message.DESCRIPTOR)
                    schema_ids[schema_name] = writer.register_schema(name=schema_name, encoding=encoding, data=schema_data)
                if topic not in channel_ids:
                    channel_ids[topic] = writer.register_channel(topic=topic, message_encoding=message_encoding, schema_id=schema_ids[schema_name])
                writer.add_message(channel_ids[topic], log_time=pub.log_time_ns, data=data, publish_time=pub.log_time_ns)
                counts[topic] += 1
        writer.finish()
    return dict(counts)


__all__ = ["box_label", "file_descriptor_set", "foxglove_message", "foxglove_messages", "write_foxglove_mcap"]
