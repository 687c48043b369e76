"""A copy of the bundled synthetic MCAP log with planted corrupt frames (message payloads
damaged, chunks intact), for the end-to-end accounting tests."""

from __future__ import annotations

from pathlib import Path

from av_pipeline.synthetic import BUNDLED_LOG_DIR

LIDAR_TOPIC = "/lidar/points"


def write_corrupt_copy(path: Path, truncated: tuple[int, ...] = (3,), garbage: tuple[int, ...] = (11,)) -> Path:
    """Copy the bundled log to ``path``; the LiDAR message of each frame in ``truncated`` keeps
    only its first 100 bytes, that of each frame in ``garbage`` becomes 64 bytes of 0xFF."""
    from mcap.reader import make_reader
    from mcap.writer import Writer

    source = BUNDLED_LOG_DIR / "synthetic_default.mcap"
    with source.open("rb") as stream, path.open("wb") as out:
        reader = make_reader(stream)
        writer = Writer(out)
        writer.start(profile=reader.get_header().profile, library="av-pipeline tests")
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        lidar_count = 0
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            if schema is not None and schema.id not in schema_ids:
                schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
            if channel.id not in channel_ids:
                channel_ids[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding, schema_ids.get(channel.schema_id, 0), dict(channel.metadata)
                )
            data = message.data
            if channel.topic == LIDAR_TOPIC:
                if lidar_count in truncated:
                    data = data[:100]
                elif lidar_count in garbage:
                    data = b"\xff" * 64
                lidar_count += 1
            writer.add_message(channel_ids[channel.id], message.log_time, data, message.publish_time, message.sequence)
        writer.finish()
    for side in BUNDLED_LOG_DIR.glob("synthetic_default.*"):
        if side.suffix != ".mcap":
            (path.parent / side.name.replace("synthetic_default", path.stem)).write_bytes(side.read_bytes())
    return path
