"""Bad MCAP input: each failure is a LogFormatError that names the file and what failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.mcap_assembly import LogOrderWarning
from av_pipeline.records import CameraImage, Frame
from av_pipeline.writers import write_foxglove_mcap, write_ros2_mcap
from av_pipeline.writers.mcap_foxglove import file_descriptor_set
from av_pipeline.writers.ros2_msgdefs import POINTCLOUD2_MSGDEF
from calibration import SE3
from calibration.rig import SensorRig
from tests.av_pipeline.test_mcap_roundtrip import T0_NS, WRITERS, assert_same_frame, synthetic_frame


def test_truncated_mcap_names_the_file_and_what_is_still_readable(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [synthetic_frame(i) for i in range(4)], chunk_size=2048)
    with path.open("rb") as f:
        chunks = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    cut_chunk = chunks[len(chunks) * 3 // 4]
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: cut_chunk.chunk_start_offset + cut_chunk.chunk_length // 2])

    with pytest.raises(LogFormatError, match="truncated") as info:
        open_log(cut)
    assert info.value.path == str(cut) and info.value.field == "footer"
    message = str(info.value)
    assert "readable before" in message and "/lidar/points: " in message
    readable = int(message.split("/lidar/points: ")[1].split(",")[0].split(" ")[0])
    assert 1 <= readable < 4


def _camera_only_frame() -> Frame:
    frame = synthetic_frame(0)
    rig = SensorRig(cameras=dict(frame.rig.cameras))
    return Frame("drive", frame.timestamp_ns, rig, None, {}, dict(frame.images))


def test_no_point_cloud_topic_lists_the_topics_found(tmp_path: Path) -> None:
    from mcap.writer import Writer

    path = tmp_path / "cameras.mcap"
    write_foxglove_mcap(path, [_camera_only_frame()])
    with pytest.raises(LogFormatError, match="no point-cloud topic") as info:
        open_log(path)
    message = str(info.value)
    assert str(path) in message
    assert "/camera/front/image [foxglove.CompressedImage] (1 messages)" in message
    assert "/camera/left/image [foxglove.RawImage] (1 messages)" in message

    # Unsupported encodings are listed with theirs.
    json_path = tmp_path / "json.mcap"
    with json_path.open("wb") as f:
        writer = Writer(f)
        writer.start()
        schema = writer.register_schema("foxglove.PointCloud", "jsonschema", b"{}")
        channel = writer.register_channel("/lidar/points", "json", schema)
        writer.add_message(channel, log_time=T0_NS, data=json.dumps({}).encode(), publish_time=T0_NS)
        writer.finish()
    with pytest.raises(LogFormatError, match=r"/lidar/points \[foxglove.PointCloud \(jsonschema\)\]"):
        open_log(json_path)


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_named_topic_missing_lists_the_topics_found(tmp_path: Path, family: str) -> None:
    path = tmp_path / "drive.mcap"
    WRITERS[family](path, [synthetic_frame(0)])
    with pytest.raises(LogFormatError, match="'/velodyne_points' is not in the log; topics found: .*/lidar/points \\[") as info:
        open_log(path, lidar_topic="/velodyne_points")
    assert info.value.field == "lidar_topic"
    with pytest.raises(LogFormatError, match="has schema .*expected a points schema"):
        open_log(path, lidar_topic="/tf")


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_compressed_image_that_does_not_decode_names_its_source(tmp_path: Path, family: str) -> None:
    frame = synthetic_frame(0)
    broken = CameraImage("front", frame.timestamp_ns, "png", b"\x89PNG but not really", 16, 12)
    frame = Frame(frame.log_id, frame.timestamp_ns, frame.rig, frame.world_SE3_ego, dict(frame.lidars), {"front": broken})
    path = tmp_path / "drive.mcap"
    WRITERS[family](path, [frame])
    with open_log(path) as reader:
        image = reader.load_frame(reader.list_frames()[0]).images["front"]
    assert image.data == broken.data and (image.width_px, image.height_px) == (16, 12)  # size from the calibration
    with pytest.raises(LogFormatError, match="png bytes do not decode") as info:
        image.decode()
    assert info.value.path == image.source
    assert image.source.startswith(f"{path}#/camera/front/image") and image.source.endswith(f"@{frame.timestamp_ns}")


def _write_point_cloud2(path: Path, *, point_step: int, data_length: int, width: int = 10) -> None:
    from mcap_ros2.writer import Writer

    fields = [{"name": n, "offset": 4 * i, "datatype": 7, "count": 1} for i, n in enumerate(["x", "y", "z", "intensity"])]
    message = {
        "header": {"stamp": {"sec": T0_NS // 10**9, "nanosec": T0_NS % 10**9}, "frame_id": "base_link"},
        "height": 1,
        "width": width,
        "fields": fields,
        "is_bigendian": False,
        "point_step": point_step,
        "row_step": point_step * width,
        "data": bytes(data_length),
        "is_dense": True,
    }
    with path.open("wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/PointCloud2", POINTCLOUD2_MSGDEF)
        writer.write_message("/lidar/points", schema, message, log_time=T0_NS, publish_time=T0_NS)
        writer.finish()


def test_point_cloud2_with_wrong_data_length_names_topic_and_field(tmp_path: Path) -> None:
    path = tmp_path / "short.mcap"
    _write_point_cloud2(path, point_step=16, data_length=150)
    with open_log(path) as reader:
        with pytest.raises(LogFormatError, match="expected 160 bytes .*got 150") as info:
            reader.load_frame(reader.list_frames()[0])
    assert (info.value.path, info.value.field) == (str(path), "/lidar/points data")


def test_point_cloud2_with_too_small_point_step_names_topic_and_field(tmp_path: Path) -> None:
    path = tmp_path / "step.mcap"
    _write_point_cloud2(path, point_step=12, data_length=120)
    with open_log(path) as reader:
        with pytest.raises(LogFormatError, match="field 'intensity' at offset 12 .* does not fit in point_step 12") as info:
            reader.load_frame(reader.list_frames()[0])
    assert info.value.field == "/lidar/points point_step"


def test_a_good_point_cloud2_written_by_hand_reads(tmp_path: Path) -> None:
    path = tmp_path / "good.mcap"
    _write_point_cloud2(path, point_step=16, data_length=160)
    with open_log(path) as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    assert frame.lidars["base_link"].points.shape == (10, 4)  # frame_id = ego: identity extrinsic
    assert frame.rig.lidars["base_link"] == SE3.identity()


def test_message_that_does_not_decode_names_topic_and_time(tmp_path: Path) -> None:
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from mcap.writer import Writer

    path = tmp_path / "garbage.mcap"
    with path.open("wb") as f:
        writer = Writer(f)
        writer.start()
        schema = writer.register_schema("foxglove.PointCloud", "protobuf", file_descriptor_set(PointCloud.DESCRIPTOR))
        channel = writer.register_channel("/lidar/points", "protobuf", schema)
        writer.add_message(channel, log_time=T0_NS, data=b"\xff\xff\xff\xff", publish_time=T0_NS)
        writer.finish()
    with open_log(path) as reader:
        with pytest.raises(LogFormatError, match=f"message at log_time {T0_NS} does not decode as foxglove.PointCloud") as info:
            reader.load_frame(reader.list_frames()[0])
    assert info.value.field == "/lidar/points"


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_out_of_order_log_times_are_sorted_with_a_warning(tmp_path: Path, family: str) -> None:
    frames = [synthetic_frame(i) for i in range(3)]
    path = tmp_path / "drive.mcap"
    WRITERS[family](path, list(reversed(frames)))  # log_time goes backwards in the file
    with open_log(path) as reader:
        with pytest.warns(LogOrderWarning, match="goes backwards 2 times"):
            refs = reader.list_frames()
        assert [r.timestamp_ns for r in refs] == [f.timestamp_ns for f in frames]
        for ref, frame in zip(refs, frames):
            assert_same_frame(reader.load_frame(ref), frame)


def test_duplicate_lidar_log_time_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [synthetic_frame(0), synthetic_frame(1, time_ns=T0_NS)])
    with open_log(path) as reader:
        with pytest.raises(LogFormatError, match=f"2 messages share log_time {T0_NS}"):
            reader.list_frames()


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [synthetic_frame(0)])
    with pytest.raises(ConfigError, match=r"unknown options \['lidar_topics'\]"):
        open_log(path, lidar_topics=["/lidar/points"])
    with pytest.raises(ConfigError, match="sync_tolerance_ns expected a non-negative integer"):
        open_log(path, sync_tolerance_ns=0.05)


def test_sensor_without_extrinsics(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [synthetic_frame(0)])
    with open_log(path, tf_topics=["/tf"]) as reader:  # leave /tf_static out
        with pytest.raises(LogFormatError, match="no transform from 'base_link' to sensor frame 'lidar_top'"):
            reader.load_frame(reader.list_frames()[0])
    with open_log(path, tf_topics=["/tf"], allow_missing_extrinsics=True) as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    assert frame.rig.lidars["lidar_top"] == SE3.identity()
    assert frame.rig.cameras["front"].ego_SE3_camera == SE3.identity()


def test_pose_too_far_from_its_samples_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [synthetic_frame(0), synthetic_frame(1, time_ns=T0_NS + 3_000_000_000, pose=False)])
    with open_log(path) as reader:
        refs = reader.list_frames()
        assert reader.load_frame(refs[0]).world_SE3_ego is not None
        with pytest.raises(LogFormatError, match=r"transform map -> base_link: .*3000.0 ms outside the samples"):
            reader.load_frame(refs[1])


def test_not_an_mcap_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.mcap"
    path.write_bytes(b"definitely not an mcap file")
    with pytest.raises(LogFormatError, match="not an MCAP file") as info:
        open_log(path)
    assert info.value.path == str(path)


def test_camera_without_calibration_next_to_it(tmp_path: Path) -> None:
    from av_pipeline.writers import WriterTopics

    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [synthetic_frame(0)], topics=WriterTopics(ros_camera_info="/calibration/{name}"))
    expected = r"expected one CameraInfo / CameraCalibration topic next to '/camera/front/image_raw/compressed'"
    with pytest.raises(LogFormatError, match=expected):
        open_log(path)
    mapping = {"front": "/calibration/front", "left": "/calibration/left"}
    with open_log(path, calibration_topics=mapping) as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    assert frame.rig.cameras["left"].model.distortion_model == "fisheye"


def _rewrite(source: Path, target: Path, **writer_options) -> None:
    """Copy every schema, channel and message of ``source`` with other writer options."""
    from mcap.reader import make_reader
    from mcap.writer import Writer

    with source.open("rb") as f_in, target.open("wb") as f_out:
        reader = make_reader(f_in)
        summary = reader.get_summary()
        writer = Writer(f_out, **writer_options)
        writer.start(profile=reader.get_header().profile)
        schema_ids = {sid: writer.register_schema(s.name, s.encoding, s.data) for sid, s in summary.schemas.items()}
        channel_ids = {
            cid: writer.register_channel(c.topic, c.message_encoding, schema_ids[c.schema_id]) for cid, c in summary.channels.items()
        }
        for _, channel, message in reader.iter_messages(log_time_order=False):
            writer.add_message(channel_ids[channel.id], message.log_time, message.data, message.publish_time)
        writer.finish()


@pytest.mark.parametrize(
    "options",
    [
        {"use_chunking": False},
        {"index_types": "CHUNK"},
        {"index_types": "NONE"},
        {"index_types": "NONE", "repeat_channels": False, "repeat_schemas": False, "use_statistics": False, "use_summary_offsets": False},
    ],
    ids=["unchunked", "no-message-indexes", "no-indexes", "no-summary"],
)
def test_mcap_without_index_or_summary_is_read_end_to_end(tmp_path: Path, options: dict) -> None:
    from mcap.writer import IndexType

    frames = [synthetic_frame(i) for i in range(3)]
    indexed = tmp_path / "indexed.mcap"
    write_ros2_mcap(indexed, frames)
    plain = tmp_path / "plain.mcap"
    if "index_types" in options:
        options = {**options, "index_types": IndexType[options["index_types"]]}
    _rewrite(indexed, plain, **options)
    with open_log(plain) as reader:
        refs = reader.list_frames()
        assert [r.timestamp_ns for r in refs] == [f.timestamp_ns for f in frames]
        assert_same_frame(reader.load_frame(refs[2]), frames[2])


def test_writer_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compression: expected one of"):
        write_foxglove_mcap(tmp_path / "x.mcap", [synthetic_frame(0)], compression="gzip")
    with pytest.raises(ConfigError, match="does not exist"):
        write_ros2_mcap(tmp_path / "missing" / "x.mcap", [synthetic_frame(0)])


@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_other_compressions_round_trip(tmp_path: Path, compression: str) -> None:
    frame = synthetic_frame(0)
    path = tmp_path / "x.mcap"
    write_foxglove_mcap(path, [frame], compression=compression)
    with open_log(path) as reader:
        assert_same_frame(reader.load_frame(reader.list_frames()[0]), frame)


def test_rig_extrinsics_that_change_between_frames_cannot_be_written(tmp_path: Path) -> None:
    from calibration.rig import SensorRig

    first, second = synthetic_frame(0), synthetic_frame(1)
    moved = SensorRig(cameras=dict(second.rig.cameras), lidars={**second.rig.lidars, "lidar_top": SE3.identity()})
    second = Frame(second.log_id, second.timestamp_ns, moved, None, dict(second.lidars))
    with pytest.raises(LogFormatError, match="extrinsics change between frames"):
        write_ros2_mcap(tmp_path / "x.mcap", [first, second])
