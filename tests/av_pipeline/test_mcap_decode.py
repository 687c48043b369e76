"""Decoding pieces shared by the MCAP and bag readers: point unpacking, per-point time units,
intrinsics, the transform tree, topic selection and the ROS 2 message definitions."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers.mcap_assembly import (
    MessageLogOptions,
    TopicInfo,
    TransformTree,
    camera_name_from_topic,
    plan_topics,
)
from av_pipeline.readers.mcap_samples import (
    PackedField,
    TransformSample,
    camera_model_from_info,
    camera_model_to_info,
    point_times_to_offsets,
    raw_image_bytes,
    unpack_points,
)
from av_pipeline.writers.publications import packed_points
from av_pipeline.records import LidarSweep
from calibration import SE3
from calibration.camera import CameraModel

STAMP_NS = 1_700_000_000_250_000_000


def _velodyne_records(n: int, rng: np.random.Generator, *, big_endian: bool = False) -> tuple[np.ndarray, list[PackedField]]:
    """The velodyne_pointcloud layout: x y z intensity f4, ring u2, time f4 (22 bytes, packed)."""
    order = ">" if big_endian else "<"
    dtype = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "time"], "formats": [order + "f4"] * 4 + [order + "u2", order + "f4"],
                      "offsets": [0, 4, 8, 12, 16, 18], "itemsize": 22})
    records = np.zeros(n, dtype=dtype)
    for name in ("x", "y", "z", "intensity"):
        records[name] = rng.normal(0, 10, n).astype(np.float32)
    records["ring"] = rng.integers(0, 32, n)
    records["time"] = rng.uniform(-0.1, 0.0, n).astype(np.float32)
    fields = [PackedField(name, dtype.fields[name][1], dtype.fields[name][0]) for name in dtype.names]
    return records, fields


def test_unpack_points_velodyne_layout_with_row_padding() -> None:
    rng = np.random.default_rng(0)
    records, fields = _velodyne_records(12, rng)
    width, height, row_step = 4, 3, 4 * 22 + 6  # 6 padding bytes per row
    rows = records.tobytes()
    data = b"".join(rows[r * 88 : (r + 1) * 88] + b"\xee" * 6 for r in range(height))
    points, columns, offsets = unpack_points(data, fields, 22, width, height, row_step, STAMP_NS, path="log", topic="/velodyne_points")
    assert columns == ("x", "y", "z", "intensity", "ring")
    assert points.dtype == np.float32 and points.shape == (12, 5)
    np.testing.assert_array_equal(points[:, 0], records["x"])
    np.testing.assert_array_equal(points[:, 4], records["ring"].astype(np.float32))
    np.testing.assert_array_equal(offsets, np.round(records["time"].astype(np.float64) * 1e9).astype(np.int64))


def test_unpack_points_big_endian_and_multi_count_fields() -> None:
    rng = np.random.default_rng(1)
    records, fields = _velodyne_records(5, rng, big_endian=True)
    points, columns, _ = unpack_points(records.tobytes(), fields, 22, 5, 1, 110, STAMP_NS, path="log", topic="/t")
    np.testing.assert_array_equal(points[:, 2], records["z"].astype(np.float32))
    data = np.arange(20, dtype="<f4").tobytes()
    points, columns, offsets = unpack_points(
        data, [PackedField("x", 0, np.dtype("<f4")), PackedField("y", 4, np.dtype("<f4")), PackedField("z", 8, np.dtype("<f4")),
               PackedField("normal", 12, np.dtype("<f4"), count=2)], 20, 4, 1, 80, STAMP_NS, path="log", topic="/t"
    )
    assert columns == ("x", "y", "z", "normal_0", "normal_1") and offsets is None
    np.testing.assert_array_equal(points[1], [5, 6, 7, 8, 9])


def test_unpack_points_errors_name_the_field() -> None:
    xyz = [PackedField(n, 4 * i, np.dtype("<f4")) for i, n in enumerate("xyz")]
    with pytest.raises(LogFormatError, match="missing \\['z'\\]") as info:
        unpack_points(bytes(24), xyz[:2], 12, 2, 1, 24, 0, path="log", topic="/t")
    assert info.value.field == "/t fields"
    with pytest.raises(LogFormatError, match="row_step 20 is smaller than width 2 x point_step 12"):
        unpack_points(bytes(20), xyz, 12, 2, 1, 20, 0, path="log", topic="/t")
    with pytest.raises(LogFormatError, match="duplicate field names"):
        unpack_points(bytes(24), xyz + [PackedField("x", 0, np.dtype("<f4"))], 12, 2, 1, 24, 0, path="log", topic="/t")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([0, 1_500, 99_000_000], dtype=np.uint32), [0, 1_500, 99_000_000]),  # Ouster "t": ns after the stamp
        (np.array([-0.1, -0.05, 0.0], dtype=np.float32), [-100_000_001, -50_000_001, 0]),  # Velodyne "time": float32 s
        (np.array([STAMP_NS / 1e9 - 0.02, STAMP_NS / 1e9 + 0.03]), [-20_000_000, 30_000_000]),  # absolute epoch seconds
        (np.array([STAMP_NS - 7, STAMP_NS + 9], dtype=np.int64), [-7, 9]),  # absolute epoch ns
        (np.array([float(STAMP_NS + 1_000_000)]), [1_000_000]),  # absolute ns stored as float64
    ],
)
def test_per_point_time_units(values: np.ndarray, expected: list[int]) -> None:
    offsets = point_times_to_offsets(values, STAMP_NS, path="log", field="/t time")
    np.testing.assert_allclose(offsets, expected, atol=300)  # float32/float64 epoch seconds carry ~0.1-0.3 us


def test_per_point_times_beyond_int32_are_rejected() -> None:
    with pytest.raises(LogFormatError, match="beyond the int32 range"):
        point_times_to_offsets(np.array([0.0, 5.0]), STAMP_NS, path="log", field="/t time")


def test_packed_points_are_bit_exact_and_carry_times() -> None:
    points = np.array([[1.0, np.nan, -0.0, 3.5]], dtype=np.float32)
    points.view(np.uint32)[0, 1] = 0x7FC00123  # a NaN with a payload
    sweep = LidarSweep("lidar", STAMP_NS, points, ("x", "y", "z", "intensity"), np.array([-12]))
    fields, step, data = packed_points(sweep)
    assert fields == [("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f4"), ("intensity", 12, "f4"), ("t", 16, "i4")] and step == 20
    decoded, columns, offsets = unpack_points(
        data, [PackedField(n, o, np.dtype("<" + k)) for n, o, k in fields], step, 1, 1, step, STAMP_NS, path="log", topic="/t"
    )
    np.testing.assert_array_equal(decoded.view(np.uint32), points.view(np.uint32))
    assert columns == sweep.columns and offsets.tolist() == [-12]


def test_raw_image_padding_and_unsupported_encoding() -> None:
    rows = [bytes([r] * 6) + b"\x00\x00" for r in range(3)]
    encoding, data = raw_image_bytes("bgr8", 2, 3, 8, b"".join(rows), path="log", topic="/cam")
    assert encoding == "bgr8" and data == b"".join(r[:6] for r in rows)
    with pytest.raises(LogFormatError, match="expected one of .*got 'mono16'") as info:
        raw_image_bytes("mono16", 2, 3, 4, bytes(12), path="log", topic="/cam")
    assert info.value.field == "/cam encoding"


@pytest.mark.parametrize(
    "model",
    [
        CameraModel(1242, 375, 721.5, 721.5, 609.6, 172.9),
        CameraModel(640, 480, 500.0, 501.0, 320.5, 240.5, "radtan", (0.1, -0.2, 0.001, 0.002)),
        CameraModel(640, 480, 500.0, 501.0, 320.5, 240.5, "radtan", (0.1, -0.2, 0.001, 0.002, 0.05)),
        CameraModel(640, 480, 500.0, 501.0, 320.5, 240.5, "radtan", (0.1, -0.2, 0.001, 0.002, 0.05, 0.01, 0.02, 0.03)),
        CameraModel(1920, 1080, 600.0, 600.0, 960.0, 540.0, "fisheye", (0.01, -0.02, 0.003, -0.004)),
    ],
)
@pytest.mark.parametrize("family", ["ros", "foxglove"])
def test_camera_info_round_trip(model: CameraModel, family: str) -> None:
    name, d, k, r, p = camera_model_to_info(model, family)
    assert np.reshape(p, (3, 4))[:, :3].tolist() == model.K.tolist() and r == np.eye(3).ravel().tolist()
    assert camera_model_from_info(name, d, k, model.width_px, model.height_px, path="log", topic="/info") == model


def test_camera_info_names_and_errors() -> None:
    K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    fourteen = [0.1, 0.2, 0, 0, 0.3] + [0.0] * 9
    model = camera_model_from_info("rational_polynomial", fourteen, K, 640, 480, path="l", topic="/i")
    assert model.distortion_model == "radtan" and len(model.distortion) == 8
    assert camera_model_from_info("equidistant", [0.1, 0.0, 0.0, 0.0], K, 640, 480, path="l", topic="/i").distortion_model == "fisheye"
    with pytest.raises(LogFormatError, match="not calibrated"):
        camera_model_from_info("plumb_bob", [], [0.0] * 9, 640, 480, path="l", topic="/i")
    with pytest.raises(LogFormatError, match="expected one of .*got 'mei'") as info:
        camera_model_from_info("mei", [0.1], K, 640, 480, path="l", topic="/i")
    assert info.value.field == "/i distortion_model"
    with pytest.raises(LogFormatError, match="skew"):
        camera_model_from_info("plumb_bob", [], [500.0, 3.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0], 640, 480, path="l", topic="/i")


def _tf(parent: str, child: str, pose: SE3, stamp: int = 0) -> TransformSample:
    return TransformSample(parent, child, stamp, pose)


def test_transform_tree_composes_along_the_path_in_both_directions() -> None:
    rng = np.random.default_rng(3)
    poses = [SE3.from_wxyz(q / np.linalg.norm(q), rng.normal(size=3)) for q in rng.normal(size=(3, 4))]
    base_SE3_imu, imu_SE3_lidar, base_SE3_cam = poses
    static = [_tf("base_link", "imu", base_SE3_imu), _tf("imu", "lidar", imu_SE3_lidar), _tf("base_link", "cam", base_SE3_cam)]
    tree = TransformTree(static, [], 0, "log")
    cam_SE3_lidar = tree.lookup("cam", "lidar", 0)
    expected = base_SE3_cam.inverse().compose(base_SE3_imu).compose(imu_SE3_lidar)
    assert cam_SE3_lidar.allclose(expected, atol_rad=1e-12, atol_m=1e-12)
    assert tree.lookup("lidar", "cam", 0).compose(cam_SE3_lidar).allclose(SE3.identity(), atol_rad=1e-12, atol_m=1e-12)
    assert tree.lookup("base_link", "unknown", 0) is None
    assert tree.lookup("x", "x", 0) == SE3.identity()


def test_transform_tree_interpolates_and_limits_extrapolation() -> None:
    a, b = SE3.from_yaw_translation(0.0, [0.0, 0.0, 0.0]), SE3.from_yaw_translation(0.4, [2.0, 0.0, 0.0])
    dynamic = [(1_000, _tf("map", "base_link", a)), (2_000, _tf("map", "base_link", b))]
    tree = TransformTree([], dynamic, 500, "log")
    assert tree.lookup("map", "base_link", 1_250).allclose(a.interpolate(b, 0.25), atol_rad=1e-12, atol_m=1e-12)
    ahead = tree.lookup("map", "base_link", 2_500)  # linear extrapolation within 500 ns
    np.testing.assert_allclose(ahead.translation, [3.0, 0.0, 0.0], atol=1e-9)
    with pytest.raises(LogFormatError, match="transform map -> base_link") as info:
        tree.lookup("base_link", "map", 2_501)
    assert "outside the samples [1000, 2000]" in str(info.value)


def test_camera_names_from_topics() -> None:
    assert camera_name_from_topic("/camera/front/image_raw") == "front"
    assert camera_name_from_topic("/camera/front/image_raw/compressed") == "front"
    assert camera_name_from_topic("/cam_left/image") == "cam_left"
    assert camera_name_from_topic("/image_raw") == "image_raw"


def test_plan_topics_defaults_and_ambiguity() -> None:
    topics = [
        TopicInfo("/velodyne_points", "sensor_msgs/msg/PointCloud2", 10),
        TopicInfo("/camera/front/image_raw", "sensor_msgs/msg/Image", 30),
        TopicInfo("/camera/front/camera_info", "sensor_msgs/msg/CameraInfo", 30),
        TopicInfo("/tf", "tf2_msgs/msg/TFMessage", 100),
        TopicInfo("/tf_static", "tf2_msgs/msg/TFMessage", 1),
        TopicInfo("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray (ros2msg)", 5),
    ]
    plan = plan_topics("log", topics, MessageLogOptions())
    assert plan.lidar_topic == "/velodyne_points" and plan.extra_lidar_topics == ()
    assert dict(plan.camera_topics) == {"front": "/camera/front/image_raw"}
    assert dict(plan.calibration_topics) == {"front": "/camera/front/camera_info"}
    assert (plan.static_tf_topics, plan.dynamic_tf_topics, plan.onboard_topic) == (("/tf_static",), ("/tf",), None)
    two_clouds = [*topics, TopicInfo("/rslidar_points", "sensor_msgs/msg/PointCloud2", 10)]
    with pytest.raises(LogFormatError, match="several point-cloud topics \\['/rslidar_points', '/velodyne_points'\\]"):
        plan_topics("log", two_clouds, MessageLogOptions())
    plan = plan_topics("log", two_clouds, MessageLogOptions(lidar_topic="/rslidar_points"))
    assert plan.extra_lidar_topics == ("/velodyne_points",)


def test_ros2_msgdefs_match_rosbags_and_parse_with_mcap_ros2() -> None:
    from mcap_ros2._dynamic import generate_dynamic
    from rosbags.typesys import Stores, get_typestore

    from av_pipeline.writers.ros2_msgdefs import MSGDEFS

    store = get_typestore(Stores.ROS2_HUMBLE)
    for name, text in MSGDEFS.items():
        assert name in generate_dynamic(name, text)
        if not name.startswith("vision_msgs"):
            assert text == store.generate_msgdef(name, ros_version=2)[0], name
