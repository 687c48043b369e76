"""Write frames to an MCAP file with ROS 2 messages (cdr, ``ros2msg`` schemas, profile ``ros2``).

Topics, frame ids and times are those of :mod:`av_pipeline.writers.publications`; message
types: ``sensor_msgs/msg/PointCloud2`` / ``Image`` / ``CompressedImage`` / ``CameraInfo``,
``tf2_msgs/msg/TFMessage``, ``vision_msgs/msg/Detection3DArray`` for cuboids,
``nav_msgs/msg/Path`` for the onboard planned path and ``vision_msgs/msg/Detection2DArray`` for
the onboard 2D camera boxes (one topic per camera). The schemas are the texts in
:mod:`av_pipeline.writers.ros2_msgdefs`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from av_pipeline.records import Frame
from av_pipeline.writers.mcap_common import check_output_path, compression_type
from av_pipeline.writers.publications import WriterTopics, frame_publications
from av_pipeline.writers.ros2_msgdefs import MSGDEFS
from av_pipeline.writers.ros_messages import ros_publication


def write_ros2_mcap(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    topics: WriterTopics = WriterTopics(),
    compression: str = "zstd",
    chunk_size: int = 1 << 20,
) -> dict[str, int]:
    """Write ``frames`` to ``path`` as a ROS 2 MCAP; read it back with ``open_log(path)``.

    Args:
        frames: frames in any order (the MCAP index sorts by time).
        topics: topic and frame-id names.
        compression: ``"zstd"``, ``"lz4"`` or ``"none"``.
        chunk_size: target chunk size in bytes (a chunk holds at least one message).

    Returns:
        Messages written per topic.

    Raises:
        LogFormatError: frames the formats cannot represent (see :func:`frame_publications`).
        ConfigError: a bad ``compression`` or output directory.
    """
    from mcap_ros2.writer import Writer

    out = check_output_path(path)
    counts: Counter[str] = Counter()
    with out.open("wb") as stream:
        writer = Writer(stream, chunk_size=chunk_size, compression=compression_type(compression))
        schemas: dict[str, Any] = {}
        for pub in frame_publications(frames, topics):
            topic, msgtype, message = ros_publication(pub, topics, ros_version=2)
            if msgtype not in schemas:
                schemas[msgtype] = writer.register_msgdef(msgtype, MSGDEFS[msgtype])
            writer.write_message(topic, schemas[msgtype], message, log_time=pub.log_time_ns, publish_time=pub.log_time_ns)
            counts[topic] += 1
        writer.finish()
    return dict(counts)
