"""Write frames to a ROS 1 ``.bag`` file or a ROS 2 bag directory with ``rosbags``.

The messages, topics and frame ids are those of the ROS 2 MCAP writer
(:mod:`av_pipeline.writers.ros_messages`); types come from the ``rosbags`` typestores
(ROS 1 Noetic, ROS 2 Humble), with ``vision_msgs/msg/Detection3DArray`` and
``vision_msgs/msg/Detection2DArray`` registered from
:mod:`~av_pipeline.writers.ros2_msgdefs` for ROS 2 bags. ROS 1 bags get no cuboids and no 2D
camera boxes: Noetic's ``vision_msgs`` has no class-name field, so onboard cuboids, onboard
camera boxes and annotations are skipped there with a warning. The planned path
(``nav_msgs/Path``) is written to both.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from av_pipeline.errors import ConfigError
from av_pipeline.records import Frame
from av_pipeline.writers.publications import WriterTopics, frame_publications
from av_pipeline.writers.ros2_msgdefs import DETECTION2D_ARRAY_MSGDEF, DETECTION3D_ARRAY_MSGDEF
from av_pipeline.writers.ros_messages import ros_publication

_NUMPY_TYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def to_typestore_message(typestore: Any, msgtype: str, value: dict[str, Any]) -> Any:
    """Build a ``rosbags`` message object of ``msgtype`` from a (nested) dict; missing fields get defaults."""
    from rosbags.interfaces import Nodetype

    def convert(nodetype: Any, desc: Any, item: Any) -> Any:
        if nodetype == Nodetype.NAME:
            return to_typestore_message(typestore, desc, item or {})
        if nodetype == Nodetype.BASE:
            kind = desc[0]
            if kind in ("string", "wstring"):
                return "" if item is None else str(item)
            if kind == "bool":
                return bool(item)
            return _NUMPY_TYPES[kind](0 if item is None else item).item()
        (subtype, subdesc), length = desc
        if subtype == Nodetype.BASE and subdesc[0] not in ("string", "wstring"):
            dtype = _NUMPY_TYPES[subdesc[0]]
            if item is None:
                return np.zeros(length if nodetype == Nodetype.ARRAY else 0, dtype=dtype)
            if isinstance(item, (bytes, bytearray, memoryview)):
                return np.frombuffer(bytes(item), dtype=np.uint8).astype(dtype, copy=False)
            return np.asarray(item, dtype=dtype)
        return [convert(subtype, subdesc, element) for element in (item or [])]

    fields = typestore.fielddefs[msgtype][1]
    return typestore.types[msgtype](**{name: convert(nodetype, desc, value.get(name)) for name, (nodetype, desc) in fields})


def write_rosbag(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    ros_version: int = 2,
    topics: WriterTopics = WriterTopics(),
) -> dict[str, int]:
    """Write ``frames`` to a ROS bag; read it back with ``open_log(path)``.

    Args:
        path: a new ``.bag`` file (ROS 1) or a new directory (ROS 2, sqlite3 storage, bag
            format version 9 with message definitions).
        frames: frames in time order (ROS 1 bags index by time, ROS 2 bags by timestamp).
        ros_version: 1 or 2.

    Returns:
        Messages written per topic.

    Raises:
        ConfigError: another ``ros_version``, or ``path`` exists.
        LogFormatError: frames the formats cannot represent (see :func:`frame_publications`).
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    out = Path(path)
    if ros_version not in (1, 2):
        raise ConfigError(f"ros_version: expected 1 or 2, got {ros_version!r}")
    if out.exists():
        raise ConfigError(f"{out}: exists already; bag writers only create new bags")
    if ros_version == 1:
        from rosbags.rosbag1 import Writer as Writer1

        typestore = get_typestore(Stores.ROS1_NOETIC)
        # Noetic's store lacks tf2_msgs; its definition is one line over geometry_msgs.
        typestore.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
        writer: Any = Writer1(out)
    else:
        from rosbags.rosbag2 import Writer as Writer2

        typestore = get_typestore(Stores.ROS2_HUMBLE)
        typestore.register(get_types_from_msg(DETECTION3D_ARRAY_MSGDEF, "vision_msgs/msg/Detection3DArray"))
        typestore.register(get_types_from_msg(DETECTION2D_ARRAY_MSGDEF, "vision_msgs/msg/Detection2DArray"))
        writer = Writer2(out, version=9)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    connections: dict[str, Any] = {}
    with writer:
        for pub in frame_publications(frames, topics):
            if ros_version == 1 and pub.role in ("onboard", "annotations", "onboard_camera"):
                skipped[pub.role] += 1
                continue
            topic, msgtype, message = ros_publication(pub, topics, ros_version)
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            obj = to_typestore_message(typestore, msgtype, message)
            data = typestore.serialize_ros1(obj, msgtype) if ros_version == 1 else typestore.serialize_cdr(obj, msgtype)
            writer.write(connections[topic], pub.log_time_ns, data)
            counts[topic] += 1
    if skipped:
        warnings.warn(
            f"{out}: ROS 1 bags get no cuboids and no 2D camera boxes (Noetic's vision_msgs has no class name); "
            f"skipped {dict(skipped)} messages",
            stacklevel=2,
        )
    return dict(counts)
