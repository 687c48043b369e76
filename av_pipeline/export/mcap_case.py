"""One MCAP per case, for Foxglove: the frames as the product's foxglove writer publishes them,
plus the shadow model's cuboids and the case's reasons.

Topics (everything else as in :mod:`av_pipeline.writers.publications`: ``/lidar/points``
``foxglove.PointCloud``, ``/camera/<name>/image`` ``foxglove.CompressedImage``,
``/camera/<name>/calibration``, ``/tf_static`` and ``/tf`` ``foxglove.FrameTransforms``,
``/annotations/cuboids`` when the log has ground truth):

==========================  ========================  =============================================
topic                       schema                    content
==========================  ========================  =============================================
``/perception/objects``     ``foxglove.SceneUpdate``  onboard cuboids, cyan (as the log writer
                                                      writes them: metadata ``class``, ``score``,
                                                      ``track_id``; a text label per box)
``/shadow/objects``         ``foxglove.SceneUpdate``  shadow model cuboids, orange, same layout
``/mining/reasons``         ``foxglove.Log``          one ``WARNING`` per event at its first frame:
                                                      ``name`` = trigger, ``message`` = reason,
                                                      ``file`` = case id; an ``INFO`` summary first
==========================  ========================  =============================================

Every message is written in ``log_time`` order; the file opens with the product's own MCAP
reader too (``open_log``), which reads the onboard cuboids back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from av_pipeline.export.records import IndexedFrame
from av_pipeline.writers.mcap_common import compression_type
from av_pipeline.writers.mcap_foxglove import file_descriptor_set, foxglove_message, foxglove_messages
from av_pipeline.writers.mcap_foxglove_onboard import JsonMessage
from av_pipeline.writers.publications import Boxes, Publication, WriterTopics, frame_publications, split_ns

SHADOW_TOPIC = "/shadow/objects"
REASONS_TOPIC = "/mining/reasons"
#: Cube colours (RGBA) per source.
COLORS = {"shadow": (1.0, 0.55, 0.0, 0.5), "onboard": (0.0, 0.8, 0.9, 0.5)}


def _recolor(scene_update: Any, rgba: tuple[float, float, float, float]) -> Any:
    for entity in scene_update.entities:
        for cube in entity.cubes:
            cube.color.r, cube.color.g, cube.color.b, cube.color.a = rgba
        for text in entity.texts:
            text.color.r, text.color.g, text.color.b, text.color.a = (*rgba[:3], 1.0)
    return scene_update


def _log(time_ns: int, level: int, name: str, message: str, file: str) -> Any:
    from foxglove_schemas_protobuf.Log_pb2 import Log

    msg = Log(level=level, message=message, name=name, file=file, line=0)
    msg.timestamp.seconds, msg.timestamp.nanos = split_ns(time_ns)
    return msg


def case_messages(items: Sequence[IndexedFrame], case: Any | None, topics: WriterTopics = WriterTopics()) -> list[tuple[int, str, Any]]:
    """``(log_time_ns, topic, message)`` of a case, sorted by time (stable).

    Args:
        items: the frames with their shadow cuboids.
        case: the mining :class:`~av_pipeline.mining.records.Case` (its events become log
            messages), or ``None``.
    """
    from foxglove_schemas_protobuf.Log_pb2 import Log

    out: list[tuple[int, str, Any]] = []
    for pub in frame_publications([item.frame for item in items], topics):
        for topic, message in foxglove_messages(pub, topics):
            if pub.role == "onboard":
                message = _recolor(message, COLORS["onboard"])
            out.append((pub.log_time_ns, topic, message))
    shadow_topics = WriterTopics(onboard=SHADOW_TOPIC)
    for item in items:
        if item.shadow is not None:
            t = item.frame.timestamp_ns
            topic, message = foxglove_message(Publication("onboard", t, Boxes(topics.ego_frame, item.shadow)), shadow_topics)
            out.append((t, topic, _recolor(message, COLORS["shadow"])))
    if case is not None and items:
        start = items[0].frame.timestamp_ns
        summary = f"case {case.case_id} (rank {case.rank}, score {case.score:.3f}): {len(case.events)} event(s), triggers {', '.join(case.triggers)}"
        out.append((start, REASONS_TOPIC, _log(start, Log.INFO, "case", summary, case.case_id)))
        for event in case.events:
            t = max(int(event.first_timestamp_ns), start)
            out.append((t, REASONS_TOPIC, _log(t, Log.WARNING, event.trigger, event.reason, case.case_id)))
    out.sort(key=lambda entry: entry[0])
    return out


def write_case_mcap(path: str | Path, items: Sequence[IndexedFrame], case: Any | None = None, *, compression: str = "zstd") -> dict[str, int]:
    """Write the case MCAP to ``path`` (under a temporary name, then renamed).

    Returns:
        Messages written per topic.

    Raises:
        LogFormatError: frames the foxglove writer cannot represent (see
            :func:`~av_pipeline.writers.publications.frame_publications`).
    """
    import os

    from mcap.writer import Writer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = case_messages(items, case)
    counts: dict[str, int] = {}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as stream:
            writer = Writer(stream, compression=compression_type(compression))
            writer.start(profile="", library="av-pipeline")
            schema_ids: dict[str, int] = {}
            channel_ids: dict[str, int] = {}
            for log_time, topic, message in messages:
                if isinstance(message, JsonMessage):
                    schema, encoding, message_encoding, data = message.schema_name, "jsonschema", "json", message.data
                else:
                    schema, encoding, message_encoding, data = message.DESCRIPTOR.full_name, "protobuf", "protobuf", message.SerializeToString()
                if schema not in schema_ids:
                    schema_data = message.schema_data if isinstance(message, JsonMessage) else file_descriptor_set(message.DESCRIPTOR)
                    schema_ids[schema] = writer.register_schema(name=schema, encoding=encoding, data=schema_data)
                if topic not in channel_ids:
                    channel_ids[topic] = writer.register_channel(topic=topic, message_encoding=message_encoding, schema_id=schema_ids[schema])
                writer.add_message(channel_ids[topic], log_time=log_time, data=data, publish_time=log_time)
                counts[topic] = counts.get(topic, 0) + 1
            writer.finish()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


__all__ = ["COLORS", "REASONS_TOPIC", "SHADOW_TOPIC", "case_messages", "write_case_mcap"]
