"""Writers that pack :class:`~av_pipeline.records.Frame` sequences into drive logs.

- :func:`write_foxglove_mcap`: MCAP with foxglove protobuf schemas.
- :func:`write_ros2_mcap`: MCAP with ROS 2 messages (cdr).
- :func:`write_rosbag`: ROS 1 ``.bag`` or ROS 2 bag directory (via ``rosbags``).

All of them publish the same topics, frame ids and times
(:mod:`av_pipeline.writers.publications`), and the MCAP / bag readers read them back.
"""

from av_pipeline.writers.mcap_foxglove import write_foxglove_mcap
from av_pipeline.writers.mcap_ros2 import write_ros2_mcap
from av_pipeline.writers.publications import WriterTopics
from av_pipeline.writers.rosbag import write_rosbag

__all__ = ["WriterTopics", "write_foxglove_mcap", "write_ros2_mcap", "write_rosbag"]
