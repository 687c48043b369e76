"""ROS 1 ``.bag`` files and ROS 2 bag directories, read with ``rosbags``.

>>> from av_pipeline.readers import open_log
>>> reader = open_log("drive.bag")                                  # doctest: +SKIP
>>> frames = list(reader.iter_frames())                             # doctest: +SKIP

The same messages as the ROS 2 MCAP path (``PointCloud2``, ``Image``, ``CompressedImage``,
``CameraInfo``, ``TFMessage``, ``vision_msgs/Detection3DArray`` and ``Detection2DArray``,
``nav_msgs/Path``), decoded by the same
functions (:mod:`av_pipeline.readers.mcap_ros_decode`) and assembled into frames by the same
code (:mod:`av_pipeline.readers.mcap_assembly`), with the same options and defaults. The
time axis is the bag's receive timestamp.

Message definitions come from the bag (ROS 1 bags, and ROS 2 bags recorded by Iron or
later or written by ``rosbags``, store them); older ROS 2 bags fall back to the ROS 2 Humble
typestore, where types it lacks (``vision_msgs``) are listed as not readable. Listing a ROS 1 bag reads
its index only; a ROS 2 bag is listed by reading the LiDAR topic once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from av_pipeline.errors import LogFormatError
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.mcap_assembly import (
    FrameAssembler,
    MessageLogOptions,
    MessageSource,
    RawMessage,
    TopicInfo,
    plan_topics,
    sorted_frame_times,
)
from av_pipeline.readers.mcap_ros_decode import ROS_DECODERS, normalize_ros_type
from av_pipeline.records import Frame, FrameRef

ROSBAG1_MAGIC = b"#ROSBAG V2.0\n"


def _bag_errors() -> tuple[type[BaseException], ...]:
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag1 import ReaderError as Reader1Error
    from rosbags.rosbag2 import ReaderError as Reader2Error
    from rosbags.serde import SerdeError

    # MemoryError: a corrupt length field makes rosbags try to read gigabytes at once;
    # AssertionError: rosbags asserts record layouts that a corrupt bag breaks.
    return (AnyReaderError, Reader1Error, Reader2Error, SerdeError, OSError, ValueError, KeyError, IndexError, MemoryError, AssertionError)


class _BagSource(MessageSource):
    def __init__(self, path: str, reader: Any) -> None:
        self.path = path
        self._reader = reader
        self._errors = _bag_errors()

    def connections(self, topics: Sequence[str]) -> list[Any]:
        wanted = set(topics)
        return [c for c in self._reader.connections if c.topic in wanted]

    def read(self, topics: Sequence[str], start_ns: int | None, end_ns: int | None, limit: int | None = None) -> list[RawMessage]:
        connections = self.connections(topics)
        if not connections:  # rosbags reads *every* topic for an empty connection list
            return []
        out: list[RawMessage] = []
        try:
            for conn, time_ns, raw in self._reader.messages(connections=connections, start=start_ns, stop=end_ns):
                out.append(RawMessage(conn.topic, int(time_ns), (conn, raw)))
                if limit is not None and len(out) >= limit:
                    break
        except self._errors as exc:
            raise LogFormatError(
                self.path, ", ".join(topics), f"cannot read messages in [{start_ns}, {end_ns}): {type(exc).__name__}: {exc}"
            ) from exc
        return out

    def decode(self, message: RawMessage) -> Any:
        conn, raw = message.payload
        try:
            decoded = self._reader.deserialize(raw, conn.msgtype)
            return ROS_DECODERS[normalize_ros_type(conn.msgtype)](decoded, self.path, conn.topic)
        except LogFormatError:
            raise
        except (*self._errors, AttributeError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            raise LogFormatError(
                self.path, conn.topic, f"message at {message.log_time_ns} does not decode as {conn.msgtype}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc


@register_reader
class RosbagLogReader(LogReader):
    """A ROS 1 or ROS 2 bag: one frame per message on the primary LiDAR topic.

    Options: see :class:`~av_pipeline.readers.mcap_assembly.MessageLogOptions`.

    Raises:
        LogFormatError: the bag does not open, or topics do not match the options (the
            message lists the topics found with their types).
        ConfigError: an unknown option.
    """

    name = "rosbag"

    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        if path.is_dir():
            return (path / "metadata.yaml").is_file()
        if not path.is_file():
            return False
        with path.open("rb") as f:
            return f.read(len(ROSBAG1_MAGIC)) == ROSBAG1_MAGIC

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.reader_options = MessageLogOptions.from_options(self.name, options)
        path = Path(self.uri)
        store = Stores.ROS1_NOETIC if path.suffix == ".bag" else Stores.ROS2_HUMBLE
        try:
            self._reader = AnyReader([path], default_typestore=get_typestore(store))
            self._reader.open()
        except MemoryError as exc:
            raise LogFormatError(self.uri, "record length", "cannot open the bag: a record claims more memory than is available (corrupt length field)") from exc
        except (FileNotFoundError, *_bag_errors()) as exc:
            raise LogFormatError(self.uri, "bag", f"cannot open the bag: {type(exc).__name__}: {str(exc)[:300]}") from exc
        try:
            known = set(self._reader.typestore.fielddefs)
            self.topics = [
                TopicInfo(
                    name,
                    normalize_ros_type(info.msgtype or "")
                    if (info.msgtype in known and normalize_ros_type(info.msgtype or "") in ROS_DECODERS)
                    else f"{info.msgtype} (not readable)",
                    int(info.msgcount),
                )
                for name, info in self._reader.topics.items()
            ]
            self.plan = plan_topics(self.uri, self.topics, self.reader_options)
        except BaseException:
            self._reader.close()
            raise
        self._source = _BagSource(self.uri, self._reader)
        self._assembler = FrameAssembler(self._source, self.plan, self.reader_options, self.log_id)
        self._times: list[int] | None = None

    def _lidar_times(self) -> np.ndarray:
        connections = self._source.connections([self.plan.lidar_topic])
        indexes = [getattr(c.owner, "indexes", None) for c in connections]
        if connections and all(isinstance(index, dict) for index in indexes):
            # ROS 1: the bag index holds every message time; no chunk is read.
            times = [entry.time for conn, index in zip(connections, indexes) for entry in index[conn.id]]
            return np.array(sorted(times), dtype=np.int64)
        return np.array([m.log_time_ns for m in self._source.read([self.plan.lidar_topic], None, None)], dtype=np.int64)

    def list_frames(self) -> list[FrameRef]:
        """One :class:`FrameRef` per primary-LiDAR message, in time order.

        Raises:
            LogFormatError: two LiDAR messages share a timestamp.
        """
        if self._times is None:
            self._times = sorted_frame_times(self._lidar_times(), self.uri, self.plan.lidar_topic)
        return [FrameRef(self.uri, self.log_id, i, t, self.name) for i, t in enumerate(self._times)]

    def load_frame(self, ref: FrameRef) -> Frame:
        """Assemble the frame of ``ref`` from its time window."""
        self._check_ref(ref)
        return self._assembler.assemble(ref.timestamp_ns)

    def close(self) -> None:
        if self._reader.stack is not None:
            self._reader.close()
