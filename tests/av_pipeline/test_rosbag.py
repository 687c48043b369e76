"""ROS 1 and ROS 2 bags through rosbags: round trips, bags written message by message, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers import mcap_ros_decode
from av_pipeline.readers.rosbag import RosbagLogReader
from av_pipeline.writers import write_ros2_mcap, write_rosbag
from av_pipeline.writers.rosbag import to_typestore_message
from calibration import SE3
from calibration.camera import CameraModel
from tests.av_pipeline.test_mcap_roundtrip import KITTI_T_NS, assert_same_frame, kitti_frame, synthetic_frame

T_NS = 1_600_000_000_500_000_000


def _bag_path(tmp_path: Path, ros_version: int) -> Path:
    return tmp_path / ("drive.bag" if ros_version == 1 else "drive_bag2")


@pytest.mark.realdata
@pytest.mark.parametrize("ros_version", [1, 2])
def test_kitti_frame_round_trip(shared_data: Path, tmp_path: Path, ros_version: int) -> None:
    written = kitti_frame(shared_data, world_SE3_ego=SE3.from_yaw_translation(-1.2, [3.0, -4.0, 0.5]))
    path = _bag_path(tmp_path, ros_version)
    if ros_version == 1:
        with pytest.warns(UserWarning, match="ROS 1 bags get no cuboids"):
            write_rosbag(path, [written], ros_version=1)
    else:
        write_rosbag(path, [written], ros_version=2)
    with open_log(path) as reader:
        assert isinstance(reader, RosbagLogReader)
        refs = reader.list_frames()
        assert [(r.timestamp_ns, r.reader) for r in refs] == [(KITTI_T_NS, "rosbag")]
        read = reader.load_frame(refs[0])
    assert np.array_equal(read.lidar.points.view(np.uint32), written.lidar.points.view(np.uint32))
    assert read.images["image_2"].data == written.images["image_2"].data
    camera, expected = read.rig.cameras["image_2"], written.rig.cameras["image_2"]
    assert camera.model == expected.model
    assert camera.ego_SE3_camera.allclose(expected.ego_SE3_camera, atol_rad=1e-9, atol_m=1e-9)
    assert read.world_SE3_ego.allclose(written.world_SE3_ego, atol_rad=1e-9, atol_m=1e-9)
    if ros_version == 2:
        assert_same_frame(read, written)
    else:
        assert read.onboard is None


@pytest.mark.parametrize("ros_version", [1, 2])
def test_multi_frame_bag_round_trip(tmp_path: Path, ros_version: int) -> None:
    frames = [synthetic_frame(i) for i in range(3)]
    path = _bag_path(tmp_path, ros_version)
    with pytest.warns(UserWarning) if ros_version == 1 else _no_warning():
        counts = write_rosbag(path, frames, ros_version=ros_version)
    assert counts["/lidar/points"] == 3 and counts["/camera/left/image_raw"] == 3
    with open_log(path) as reader:
        refs = reader.list_frames()
        assert [r.timestamp_ns for r in refs] == [f.timestamp_ns for f in frames]
        for ref, frame in zip(refs, frames):
            read = reader.load_frame(ref)
            if ros_version == 2:
                assert_same_frame(read, frame)
            else:
                assert all(read.lidars[n].equals(s) for n, s in frame.lidars.items())
                assert read.images["left"].data == frame.images["left"].data
                assert read.rig.cameras["left"].model == frame.rig.cameras["left"].model
                assert read.world_SE3_ego.allclose(frame.world_SE3_ego, atol_rad=1e-9, atol_m=1e-9)


class _no_warning:
    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


def _ros1_typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    return store


def _header(frame_id: str, stamp_ns: int) -> dict:
    return {"seq": 0, "stamp": {"sec": stamp_ns // 10**9, "nanosec": stamp_ns % 10**9}, "frame_id": frame_id}


def _transform(parent: str, child: str, stamp_ns: int, pose: SE3) -> dict:
    q, t = pose.as_xyzw(), pose.translation
    return {"header": _header(parent, stamp_ns), "child_frame_id": child,
            "transform": {"translation": dict(zip("xyz", t)), "rotation": dict(zip("xyzw", q))}}


def test_ros1_bag_written_message_by_message(tmp_path: Path) -> None:
    """A bag as a ROS 1 driver stack records it: Velodyne layout, capitalised CameraInfo,
    padded bgr8 rows, leading-slash frame ids, and header stamps 5 ms before receive time."""
    from rosbags.rosbag1 import Writer

    store = _ros1_typestore()
    rng = np.random.default_rng(0)
    n = 100
    layout = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "time"], "formats": ["<f4"] * 4 + ["<u2", "<f4"],
                       "offsets": [0, 4, 8, 12, 16, 18], "itemsize": 22})
    records = np.zeros(n, layout)
    for name in ("x", "y", "z", "intensity"):
        records[name] = rng.normal(0, 10, n)
    records["ring"] = rng.integers(0, 16, n)
    records["time"] = np.linspace(-0.099, 0.0, n, dtype=np.float32)
    cloud = {"header": _header("/velodyne", T_NS - 5_000_000), "height": 1, "width": n,
             "fields": [{"name": name, "offset": offset, "datatype": {"<f4": 7, "<u2": 4}[dtype.str], "count": 1}
                        for name, (dtype, offset) in layout.fields.items()],
             "is_bigendian": False, "point_step": 22, "row_step": 22 * n, "data": records.tobytes(), "is_dense": True}
    K = [400.0, 0.0, 3.5, 0.0, 410.0, 2.5, 0.0, 0.0, 1.0]
    info = {"header": _header("/camera_optical", T_NS), "height": 6, "width": 8, "distortion_model": "plumb_bob",
            "D": [0.1, -0.05, 0.001, 0.0, 0.01], "K": K, "R": list(np.eye(3).ravel()), "P": K[:3] + [0.0] + K[3:6] + [0.0] + K[6:] + [0.0]}
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    padded = np.concatenate([pixels.reshape(6, 24), np.zeros((6, 8), np.uint8)], axis=1)
    image = {"header": _header("/camera_optical", T_NS + 2_000_000), "height": 6, "width": 8, "encoding": "bgr8", "is_bigendian": 0,
             "step": 32, "data": padded.tobytes()}
    base_SE3_velodyne = SE3.from_yaw_translation(0.02, [0.8, 0.0, 1.7])
    base_SE3_camera = SE3(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), [1.6, 0.1, 1.3])
    odom_a, odom_b = SE3.from_yaw_translation(0.1, [5.0, 1.0, 0.0]), SE3.from_yaw_translation(0.2, [6.0, 1.5, 0.0])
    messages = [
        ("/tf_static", "tf2_msgs/msg/TFMessage", T_NS - 1_000_000_000,
         {"transforms": [_transform("/base_link", "/velodyne", 0, base_SE3_velodyne),
                         _transform("base_link", "camera_optical", 0, base_SE3_camera)]}),
        ("/tf", "tf2_msgs/msg/TFMessage", T_NS - 40_000_000, {"transforms": [_transform("odom", "base_link", T_NS - 40_000_000, odom_a)]}),
        ("/camera/camera_info", "sensor_msgs/msg/CameraInfo", T_NS, info),
        ("/velodyne_points", "sensor_msgs/msg/PointCloud2", T_NS, cloud),
        ("/camera/image_raw", "sensor_msgs/msg/Image", T_NS + 2_000_000, image),
        ("/tf", "tf2_msgs/msg/TFMessage", T_NS + 60_000_000, {"transforms": [_transform("odom", "base_link", T_NS + 60_000_000, odom_b)]}),
    ]
    path = tmp_path / "driver.bag"
    with Writer(path) as writer:
        connections = {}
        for topic, msgtype, time_ns, value in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], time_ns, store.serialize_ros1(to_typestore_message(store, msgtype, value), msgtype))

    with open_log(path) as reader:
        (ref,) = reader.list_frames()
        frame = reader.load_frame(ref)
    sweep = frame.lidars["velodyne"]
    assert (ref.timestamp_ns, sweep.timestamp_ns, sweep.columns) == (T_NS, T_NS, ("x", "y", "z", "intensity", "ring"))
    np.testing.assert_array_equal(sweep.column("intensity"), records["intensity"])
    # time is float32 s after the stamp, and the stamp is 5 ms before the receive time
    np.testing.assert_array_equal(sweep.time_offsets_ns, np.round(records["time"].astype(np.float64) * 1e9).astype(np.int64) - 5_000_000)
    assert frame.rig.lidars["velodyne"].allclose(base_SE3_velodyne, atol_rad=1e-12, atol_m=1e-12)
    camera = frame.rig.cameras["camera"]
    assert camera.model == CameraModel(8, 6, 400.0, 410.0, 3.5, 2.5, "radtan", (0.1, -0.05, 0.001, 0.0, 0.01))
    assert camera.ego_SE3_camera.allclose(base_SE3_camera, atol_rad=1e-12, atol_m=1e-12)
    np.testing.assert_array_equal(frame.images["camera"].decode(), pixels[:, :, ::-1])  # bgr8 -> RGB, padding dropped
    assert frame.images["camera"].timestamp_ns == T_NS + 2_000_000
    assert frame.world_SE3_ego.allclose(odom_a.interpolate(odom_b, 0.4), atol_rad=1e-12, atol_m=1e-12)


def test_bag_and_mcap_readers_share_the_ros_decoders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = mcap_ros_decode.ROS_DECODERS["sensor_msgs/msg/CameraInfo"]

    def spy(msg, path, topic):
        calls.append(Path(path).name)
        return original(msg, path, topic)

    monkeypatch.setitem(mcap_ros_decode.ROS_DECODERS, "sensor_msgs/msg/CameraInfo", spy)
    frames = [synthetic_frame(0)]
    write_rosbag(tmp_path / "bag2", frames, ros_version=2)
    write_ros2_mcap(tmp_path / "log.mcap", frames)
    loaded = {}
    for name in ("bag2", "log.mcap"):
        with open_log(tmp_path / name) as reader:
            loaded[name] = reader.load_frame(reader.list_frames()[0])
    assert sorted(set(calls)) == ["bag2", "log.mcap"]
    assert loaded["bag2"].rig.cameras["front"].model == loaded["log.mcap"].rig.cameras["front"].model


def test_bag_without_point_clouds_lists_its_topics(tmp_path: Path) -> None:
    frame = synthetic_frame(0)
    from av_pipeline.records import Frame
    from calibration.rig import SensorRig

    cameras_only = Frame("drive", frame.timestamp_ns, SensorRig(cameras=dict(frame.rig.cameras)), None, {}, dict(frame.images))
    path = tmp_path / "cams_bag2"
    write_rosbag(path, [cameras_only], ros_version=2)
    expected = r"no point-cloud topic.*/camera/front/camera_info \[sensor_msgs/msg/CameraInfo\] \(1 messages\)"
    with pytest.raises(LogFormatError, match=expected):
        open_log(path)


def test_corrupt_bag_is_a_log_format_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.bag"
    path.write_bytes(b"#ROSBAG V2.0\n" + b"\x00" * 64)
    with pytest.raises(LogFormatError, match="cannot open the bag") as info:
        open_log(path)
    assert info.value.path == str(path)
