"""The onboard planned path and 2D camera boxes through every writer and reader: foxglove
MCAP (JSON channels + display messages), ROS 2 MCAP, ROS 1 / ROS 2 bags and KITTI raw;
checked with the official decoders, and with malformed or missing pieces."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.records import CameraBoxes, Frame, OnboardPerception, PlannedPath
from av_pipeline.writers import write_foxglove_mcap, write_ros2_mcap, write_rosbag
from av_pipeline.writers.kitti_raw import write_kitti_raw
from calibration import SE3
from tests.av_pipeline.test_mcap_roundtrip import assert_same_cuboids, synthetic_frame

WRITERS = {
    "foxglove": lambda path, frames: write_foxglove_mcap(path, frames),
    "ros2": lambda path, frames: write_ros2_mcap(path, frames),
    "rosbag2": lambda path, frames: write_rosbag(path, frames, ros_version=2),
}
SUFFIX = {"foxglove": ".mcap", "ros2": ".mcap", "rosbag2": ""}


def planned_path(t_ns: int, seed: int) -> PlannedPath:
    """A 3 s path every 100 ms from 50 ms before the frame, with awkward float64 values."""
    rng = np.random.default_rng(seed)
    times = t_ns - 50_000_000 + np.arange(31, dtype=np.int64) * 100_000_000 + rng.integers(0, 1000, 31)
    poses = np.column_stack([np.cumsum(rng.uniform(0.5, 1.5, 31)), rng.normal(0.0, 0.3, 31), rng.uniform(-np.pi, np.pi, 31)])
    return PlannedPath(times, poses)


def onboard_frame(index: int) -> Frame:
    """:func:`synthetic_frame` with onboard 2D boxes on both cameras and a planned path."""
    frame = synthetic_frame(index)
    rng = np.random.default_rng(100 + index)
    corners = rng.uniform(0.0, 12.0, (3, 2))
    boxes_px = np.column_stack([corners, corners + rng.uniform(0.1, 4.0, (3, 2))])
    camera_boxes = {
        "front": CameraBoxes("front", boxes_px, ["car", "pedestrian", "car"], rng.uniform(0, 1, 3).astype(np.float32), [3, -1, 12_345_678_901]),
        "left": CameraBoxes("left", boxes_px[:1] / 2.0, ["cyclist"], [0.25], [9]),
    }
    onboard = OnboardPerception(frame.onboard.cuboids, camera_boxes, planned_path(frame.timestamp_ns, index))
    return replace(frame, onboard=onboard)


def assert_same_camera_boxes(read: OnboardPerception, written: OnboardPerception, atol_px: float) -> None:
    """Labels, float32 scores and track ids exact; boxes to ``atol_px``."""
    assert set(read.camera_boxes) == set(written.camera_boxes)
    for name, boxes in written.camera_boxes.items():
        got = read.camera_boxes[name]
        assert got.camera == name
        np.testing.assert_array_equal(got.labels, boxes.labels)
        np.testing.assert_array_equal(got.scores, boxes.scores)
        np.testing.assert_array_equal(got.track_ids, boxes.track_ids)
        np.testing.assert_allclose(got.boxes_px, boxes.boxes_px, rtol=0, atol=atol_px)
        if atol_px == 0:
            np.testing.assert_array_equal(got.boxes_px, boxes.boxes_px)


def assert_same_path(read: PlannedPath, written: PlannedPath, *, exact: bool) -> None:
    np.testing.assert_array_equal(read.timestamps_ns, written.timestamps_ns)
    if exact:
        np.testing.assert_array_equal(read.poses_ego, written.poses_ego)
    else:  # yaw through a quaternion
        np.testing.assert_allclose(read.poses_ego[:, :2], written.poses_ego[:, :2], rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.angle(np.exp(1j * (read.poses_ego[:, 2] - written.poses_ego[:, 2]))), 0.0, atol=1e-12)


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("family", sorted(WRITERS))
def test_path_and_camera_boxes_round_trip(tmp_path: Path, family: str) -> None:
    frames = [onboard_frame(i) for i in range(3)]
    frames[1] = replace(frames[1], onboard=replace(frames[1].onboard, planned_path=None))  # a frame without a plan
    path = tmp_path / f"drive{SUFFIX[family]}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped with a warning any more
        counts = WRITERS[family](path, frames)
    assert counts["/planning/path"] == 2
    assert counts["/perception/camera/front/objects"] == counts["/perception/camera/left/objects"] == 3
    with open_log(path) as reader:
        for ref, written in zip(reader.list_frames(), frames):
            read = reader.load_frame(ref)
            assert_same_cuboids(read.onboard.cuboids, written.onboard.cuboids)
            # foxglove: JSON decimals, exact; ROS: centre + size in float64, ~1e-15 px
            assert_same_camera_boxes(read.onboard, written.onboard, 0.0 if family == "foxglove" else 1e-12)
            if written.onboard.planned_path is None:
                assert read.onboard.planned_path is None
            else:
                assert_same_path(read.onboard.planned_path, written.onboard.planned_path, exact=family == "foxglove")


def test_ros1_bag_keeps_the_path_and_skips_camera_boxes_with_a_warning(tmp_path: Path) -> None:
    frame = onboard_frame(0)
    path = tmp_path / "drive.bag"
    with pytest.warns(UserWarning, match=r"no cuboids and no 2D camera boxes.*'onboard_camera': 2"):
        counts = write_rosbag(path, [frame], ros_version=1)
    assert counts["/planning/path"] == 1 and not any("objects" in topic for topic in counts)
    with open_log(path) as reader:
        read = reader.load_frame(reader.list_frames()[0])
    assert_same_path(read.onboard.planned_path, frame.onboard.planned_path, exact=False)
    assert len(read.onboard.cuboids) == 0 and dict(read.onboard.camera_boxes) == {}  # no cuboid topic: empty, documented


def test_kitti_raw_side_folder_round_trip(tmp_path: Path) -> None:
    frames = [onboard_frame(i) for i in range(3)]
    frames[1] = replace(frames[1], onboard=None)
    drive = write_kitti_raw(tmp_path, frames, camera_folders={"front": "02"})
    folder = drive.drive_dir / "planned_path"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["0000000000.txt", "0000000002.txt"]
    assert len((folder / "timestamps.txt").read_text().splitlines()) == 3
    first_row = (folder / "data" / "0000000000.txt").read_text().splitlines()[0].split()
    written = frames[0].onboard.planned_path
    assert int(first_row[0]) == written.timestamps_ns[0] and float(first_row[1]) == written.poses_ego[0, 0]  # exact, ego (IMU) frame

    ego_SE3_velo = frames[0].rig.lidars["lidar_top"]  # yawed by 0.05 rad and raised: KITTI's ego is the velodyne
    with open_log(drive.drive_dir) as reader:
        read = [reader.load_frame(ref) for ref in reader.list_frames()]
    assert read[1].onboard is None
    for got, frame in zip((read[0], read[2]), (frames[0], frames[2])):
        assert len(got.onboard.cuboids) == 0 and got.onboard.cuboids.frame == "ego"
        expected = []
        for x, y, yaw in frame.onboard.planned_path.poses_ego:
            velo_SE3_planned = ego_SE3_velo.inverse().compose(SE3.from_yaw_translation(yaw, [x, y, 0.0])).compose(ego_SE3_velo)
            expected.append([*velo_SE3_planned.translation[:2], velo_SE3_planned.yaw_rad])
        expected_path = PlannedPath(frame.onboard.planned_path.timestamps_ns, expected)
        assert_same_path(got.onboard.planned_path, expected_path, exact=False)


def test_kitti_raw_malformed_path_file_names_file_and_line(tmp_path: Path) -> None:
    drive = write_kitti_raw(tmp_path, [onboard_frame(0)], camera_folders={"front": "02"})
    file = drive.drive_dir / "planned_path" / "data" / "0000000000.txt"
    rows = file.read_text().splitlines()
    file.write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n")
    with open_log(drive.drive_dir) as reader, pytest.raises(LogFormatError, match=r"0000000000.txt: timestamp_ns: .*strictly increasing"):
        reader.load_frame(0)
    file.write_text(rows[0] + "\n" + "1 2.0 nan 0.0\n")
    with open_log(drive.drive_dir) as reader, pytest.raises(LogFormatError, match=r"0000000000.txt: line 2: expected finite"):
        reader.load_frame(0)
    file.write_text("12.5 1 2 3\n")
    with open_log(drive.drive_dir) as reader, pytest.raises(LogFormatError, match=r"line 1 timestamp_ns: expected an integer"):
        reader.load_frame(0)
    (drive.drive_dir / "planned_path" / "timestamps.txt").unlink()
    with open_log(drive.drive_dir) as reader, pytest.raises(LogFormatError, match=r"planned_path/timestamps.txt: timestamps: cannot read"):
        reader.load_frame(0)


# ---------------------------------------------------------------------- official decoders
def _messages(path: Path, **reader_options) -> dict[str, tuple]:
    from mcap.reader import make_reader

    with path.open("rb") as f:
        return {channel.topic: (schema, channel, message) for schema, channel, message in make_reader(f, **reader_options).iter_messages()}


def test_foxglove_channels_decode_with_json_schema_and_foxglove_classes(tmp_path: Path) -> None:
    import jsonschema
    from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
    from foxglove_schemas_protobuf.PosesInFrame_pb2 import PosesInFrame

    frame = onboard_frame(0)
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [frame])
    messages = _messages(path)
    written_path = frame.onboard.planned_path

    schema, channel, message = messages["/planning/path"]
    assert (schema.name, schema.encoding, channel.message_encoding) == ("av_pipeline.PlannedPath", "jsonschema", "json")
    document = json.loads(message.data)
    jsonschema.validate(document, json.loads(schema.data))
    assert document["frame_id"] == "base_link" and len(document["poses"]) == len(written_path)
    first = document["poses"][0]
    assert first["timestamp"]["sec"] * 1_000_000_000 + first["timestamp"]["nsec"] == written_path.timestamps_ns[0]
    assert (first["x_m"], first["y_m"], first["yaw_rad"]) == tuple(written_path.poses_ego[0])

    schema, channel, message = messages["/perception/camera/front/objects"]
    assert (schema.name, schema.encoding, channel.message_encoding) == ("av_pipeline.CameraDetections2D", "jsonschema", "json")
    document = json.loads(message.data)
    jsonschema.validate(document, json.loads(schema.data))
    assert (document["camera"], document["frame_id"]) == ("front", "front")
    assert [d["track_id"] for d in document["detections"]] == [3, -1, 12_345_678_901]
    assert [d["label"] for d in document["detections"]] == ["car", "pedestrian", "car"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "detections": [{"label": "car"}]}, json.loads(schema.data))

    schema, _, message = messages["/planning/path/poses"]
    poses = PosesInFrame.FromString(message.data)
    assert schema.name == "foxglove.PosesInFrame" and poses.frame_id == "base_link" and len(poses.poses) == len(written_path)
    assert (poses.poses[3].position.x, poses.poses[3].position.y) == tuple(written_path.poses_ego[3, :2])
    yaw = 2.0 * np.arctan2(poses.poses[3].orientation.z, poses.poses[3].orientation.w)
    assert np.cos(yaw - written_path.poses_ego[3, 2]) == pytest.approx(1.0, abs=1e-12)

    schema, _, message = messages["/perception/camera/front/annotations"]
    annotations = ImageAnnotations.FromString(message.data)
    box = frame.onboard.camera_boxes["front"].boxes_px[0]
    assert schema.name == "foxglove.ImageAnnotations" and len(annotations.points) == len(annotations.texts) == 3
    assert [(p.x, p.y) for p in annotations.points[0].points] == [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]
    assert annotations.texts[1].text.startswith("pedestrian 0.")


def test_ros2_channels_decode_with_mcap_ros2(tmp_path: Path) -> None:
    from mcap_ros2.decoder import DecoderFactory

    frame = onboard_frame(0)
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [frame])
    from mcap.reader import make_reader

    with path.open("rb") as f:
        decoded = {
            m.channel.topic: (m.schema.name, m.decoded_message)
            for m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
        }
    name, ros_path = decoded["/planning/path"]
    written = frame.onboard.planned_path
    assert name == "nav_msgs/msg/Path" and ros_path.header.frame_id == "base_link" and len(ros_path.poses) == len(written)
    pose = ros_path.poses[5]
    assert pose.header.stamp.sec * 1_000_000_000 + pose.header.stamp.nanosec == written.timestamps_ns[5]
    assert (pose.pose.position.x, pose.pose.position.y, pose.pose.position.z) == (*written.poses_ego[5, :2], 0.0)
    assert 2.0 * np.arctan2(pose.pose.orientation.z, pose.pose.orientation.w) == pytest.approx(written.poses_ego[5, 2], abs=1e-12)

    name, detections = decoded["/perception/camera/front/objects"]
    boxes = frame.onboard.camera_boxes["front"]
    assert name == "vision_msgs/msg/Detection2DArray" and detections.header.frame_id == "front"
    first = detections.detections[0]
    assert (first.id, first.results[0].hypothesis.class_id, first.results[0].hypothesis.score) == ("3", "car", float(boxes.scores[0]))
    assert (first.bbox.center.position.x, first.bbox.size_x) == ((boxes.boxes_px[0, 0] + boxes.boxes_px[0, 2]) / 2, boxes.boxes_px[0, 2] - boxes.boxes_px[0, 0])
    assert detections.detections[1].id == ""  # track id -1


# ---------------------------------------------------------------------- missing and malformed pieces
@pytest.mark.parametrize("family", sorted(WRITERS))
def test_log_without_path_or_camera_boxes_reads_none_and_empty(tmp_path: Path, family: str) -> None:
    path = tmp_path / f"drive{SUFFIX[family]}"
    WRITERS[family](path, [synthetic_frame(0)])
    with open_log(path) as reader:
        assert reader.plan.planned_path_topic is None and dict(reader.plan.onboard_camera_topics) == {}
        read = reader.load_frame(0)
    assert read.onboard.planned_path is None and dict(read.onboard.camera_boxes) == {}
    assert len(read.onboard.cuboids) == 4


def test_only_path_and_boxes_give_empty_cuboids(tmp_path: Path) -> None:
    frame = onboard_frame(0)
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [frame])
    with open_log(path, onboard_topic=None) as reader:  # default topic present: it is read
        assert len(reader.load_frame(0).onboard.cuboids) == 4
    from av_pipeline.writers import WriterTopics

    write_foxglove_mcap(tmp_path / "other.mcap", [frame], topics=WriterTopics(onboard="/other/objects"))
    with open_log(tmp_path / "other.mcap") as reader:
        read = reader.load_frame(0)
    assert len(read.onboard.cuboids) == 0 and read.onboard.planned_path is not None and set(read.onboard.camera_boxes) == {"front", "left"}


def test_reader_options_name_the_path_and_box_topics(tmp_path: Path) -> None:
    from av_pipeline.writers import WriterTopics

    frame = onboard_frame(0)
    path = tmp_path / "drive.mcap"
    topics = WriterTopics(planned_path="/planner/trajectory", onboard_camera="/det2d/{name}")
    write_ros2_mcap(path, [frame], topics=topics)
    # box topics are found by type and named like image topics: here both would be "det2d"
    with pytest.raises(LogFormatError, match=r"onboard_camera_topics: 2D box topics '/det2d/front' and '/det2d/left' both map to camera 'det2d'"):
        open_log(path)
    options = {"planned_path_topic": "/planner/trajectory", "onboard_camera_topics": {"front": "/det2d/front"}}
    with open_log(path, **options) as reader:
        read = reader.load_frame(0)
    assert_same_path(read.onboard.planned_path, frame.onboard.planned_path, exact=False)
    assert set(read.onboard.camera_boxes) == {"front"} and read.onboard.camera_boxes["front"].camera == "front"
    with pytest.raises(LogFormatError, match=r"planned_path_topic: topic '/det2d/left' has schema 'vision_msgs/msg/Detection2DArray', expected a path schema"):
        open_log(path, planned_path_topic="/det2d/left", onboard_camera_topics={})


def test_path_in_the_map_frame_is_moved_into_ego(tmp_path: Path) -> None:
    from mcap_ros2._dynamic import serialize_dynamic

    from av_pipeline.writers.publications import Path as PathContent
    from av_pipeline.writers.ros2_msgdefs import MSGDEFS
    from av_pipeline.writers.ros_messages import nav_path

    frame = onboard_frame(2)
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [frame])
    # the same path expressed in "map" (world_SE3_ego is published on /tf as map -> base_link)
    world_SE3_ego = frame.world_SE3_ego
    planned = frame.onboard.planned_path
    world_poses = []
    for x, y, yaw in planned.poses_ego:
        world_SE3_pose = world_SE3_ego.compose(SE3.from_yaw_translation(yaw, [x, y, 0.0]))
        world_poses.append([*world_SE3_pose.translation[:2], world_SE3_pose.yaw_rad])
    in_map = nav_path(PathContent("map", frame.timestamp_ns, PlannedPath(planned.timestamps_ns, world_poses)))
    encoded = serialize_dynamic("nav_msgs/msg/Path", MSGDEFS["nav_msgs/msg/Path"])["nav_msgs/msg/Path"](in_map)
    rewritten = tmp_path / "map.mcap"
    _rewrite(path, rewritten, {"/planning/path": encoded})
    with open_log(rewritten) as reader:
        read = reader.load_frame(0).onboard.planned_path
    np.testing.assert_array_equal(read.timestamps_ns, planned.timestamps_ns)
    np.testing.assert_allclose(read.poses_ego[:, :2], planned.poses_ego[:, :2], atol=1e-9)  # world z of the ego is 0 here
    np.testing.assert_allclose(np.angle(np.exp(1j * (read.poses_ego[:, 2] - planned.poses_ego[:, 2]))), 0.0, atol=1e-9)


def _rewrite(source: Path, target: Path, replacements: dict[str, bytes]) -> None:
    """Copy ``source`` with the data of the messages on some topics replaced."""
    from mcap.reader import make_reader
    from mcap.writer import Writer

    with source.open("rb") as f_in, target.open("wb") as f_out:
        reader = make_reader(f_in)
        summary = reader.get_summary()
        writer = Writer(f_out)
        writer.start(profile=reader.get_header().profile)
        schema_ids = {sid: writer.register_schema(s.name, s.encoding, s.data) for sid, s in summary.schemas.items()}
        channel_ids = {cid: writer.register_channel(c.topic, c.message_encoding, schema_ids[c.schema_id]) for cid, c in summary.channels.items()}
        for _, channel, message in reader.iter_messages():
            data = replacements.get(channel.topic, message.data)
            writer.add_message(channel_ids[channel.id], message.log_time, data, message.publish_time)
        writer.finish()


def test_malformed_ros2_path_names_the_topic_and_field(tmp_path: Path) -> None:
    from mcap_ros2._dynamic import serialize_dynamic

    from av_pipeline.writers.ros2_msgdefs import MSGDEFS
    from av_pipeline.writers.ros_messages import header

    frame = onboard_frame(0)
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [frame])
    encode = serialize_dynamic("nav_msgs/msg/Path", MSGDEFS["nav_msgs/msg/Path"])["nav_msgs/msg/Path"]
    t = frame.timestamp_ns
    pose = {"position": {"x": 1.0, "y": 0.0, "z": 0.0}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}
    backwards = {"header": header("base_link", t), "poses": [{"header": header("base_link", t + 10), "pose": pose}, {"header": header("base_link", t), "pose": pose}]}
    _rewrite(path, tmp_path / "backwards.mcap", {"/planning/path": encode(backwards)})
    with open_log(tmp_path / "backwards.mcap") as reader, pytest.raises(LogFormatError, match=r"/planning/path poses: .*strictly increasing"):
        reader.load_frame(0)
    other_frame = {**backwards, "poses": [{"header": header("odom", t), "pose": pose}]}
    _rewrite(path, tmp_path / "frames.mcap", {"/planning/path": encode(other_frame)})
    with open_log(tmp_path / "frames.mcap") as reader, pytest.raises(LogFormatError, match=r"poses\[0\] header.frame_id: 'odom' differs"):
        reader.load_frame(0)
    _rewrite(path, tmp_path / "garbage.mcap", {"/planning/path": b"\x00\x01\x00\x00\xff"})
    with open_log(tmp_path / "garbage.mcap") as reader, pytest.raises(LogFormatError, match=r"/planning/path: message at log_time .* does not decode"):
        reader.load_frame(0)


@pytest.mark.parametrize(
    ("topic", "edit", "match"),
    [
        ("/planning/path", lambda d: d["poses"][0].pop("x_m"), r"/planning/path poses\[0\].x_m: expected a finite number, got None"),
        ("/planning/path", lambda d: d["poses"][1].update(timestamp={"sec": -1, "nsec": 0}), r"poses\[1\].timestamp.sec: expected an integer"),
        ("/planning/path", lambda d: d.update(poses="none"), r"/planning/path poses: expected a JSON array"),
        ("/perception/camera/front/objects", lambda d: d["detections"][2].update(score="high"), r"detections\[2\].score: expected a finite number"),
        ("/perception/camera/front/objects", lambda d: d["detections"][0].update(track_id=1.5), r"detections\[0\].track_id: expected an integer"),
    ],
    ids=["missing-x", "negative-time", "poses-not-list", "score-text", "track-float"],
)
def test_malformed_json_message_names_the_topic_and_field(tmp_path: Path, topic: str, edit, match: str) -> None:
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, [onboard_frame(0)])
    document = json.loads(_messages(path)[topic][2].data)
    edit(document)
    _rewrite(path, tmp_path / "bad.mcap", {topic: json.dumps(document).encode()})
    with open_log(tmp_path / "bad.mcap") as reader, pytest.raises(LogFormatError, match=match):
        reader.load_frame(0)
    _rewrite(path, tmp_path / "not_json.mcap", {topic: b"{not json"})
    with open_log(tmp_path / "not_json.mcap") as reader, pytest.raises(LogFormatError, match=rf"{topic}: message at log_time .* does not decode"):
        reader.load_frame(0)


def test_camera_boxes_of_a_camera_outside_the_rig_cannot_be_written(tmp_path: Path) -> None:
    frame = onboard_frame(0)
    boxes = {**frame.onboard.camera_boxes, "rear": CameraBoxes("rear", [[0, 0, 1, 1]], ["car"], [0.5], [1])}
    frame = replace(frame, onboard=replace(frame.onboard, camera_boxes=boxes))
    with pytest.raises(LogFormatError, match=r"onboard camera_boxes\['rear'\]: camera 'rear' is not in the rig"):
        write_ros2_mcap(tmp_path / "x.mcap", [frame])
