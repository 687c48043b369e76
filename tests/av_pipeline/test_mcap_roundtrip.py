"""MCAP writers and reader: frames written with foxglove schemas or ROS 2 messages read back equal.

Also holds the frame builders the other MCAP / rosbag test files import: the real KITTI
object frame 000001 (from ../shared/data) and small synthetic multi-sensor frames.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids, kitti_camera_boxes_to_cuboids
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.readers import open_log
from av_pipeline.readers.mcap_log import McapLogReader
from av_pipeline.records import CameraImage, Frame, LidarSweep, OnboardPerception
from av_pipeline.writers import write_foxglove_mcap, write_ros2_mcap
from calibration import SE3
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig

T0_NS = 1_700_000_000_000_000_000
KITTI_T_NS = 1_317_000_000_123_456_789
WRITERS = {"foxglove": write_foxglove_mcap, "ros2": write_ros2_mcap}
#: Camera optical frame (x right, y down, z forward) -> ego (x forward, y left, z up).
EGO_R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------- frame builders
def kitti_frame(shared_data: Path, *, world_SE3_ego: SE3 | None = None) -> Frame:
    """KITTI object frame 000001 as a product frame: ego = the Velodyne frame.

    The rig (cameras ``image_0`` .. ``image_3``, LiDAR ``velodyne``) comes from
    :mod:`calibration.formats.kitti_object`; only ``image_2`` has an image. The ``label_2``
    boxes (DontCare dropped) become onboard cuboids with made-up scores and track ids to
    exercise those fields.
    """
    from calibration.formats.kitti_object import read_kitti_object_calib

    root = shared_data / "kitti" / "training"
    points = np.fromfile(root / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    calib = read_kitti_object_calib(root / "calib" / "000001.txt")
    rig = calib.to_rig(image_size_px=(1242, 375))
    png = (root / "image_2" / "000001.png").read_bytes()
    rows = [r.split() for r in (root / "label_2" / "000001.txt").read_text().splitlines() if r and not r.startswith("DontCare")]
    hwl = np.array([[float(v) for v in r[8:11]] for r in rows])
    loc = np.array([[float(v) for v in r[11:14]] for r in rows])
    ry = np.array([float(r[14]) for r in rows])
    velo_SE3_rect = calib.rect_SE3_velo.inverse()
    boxes = kitti_camera_boxes_to_cuboids(loc, hwl, ry, [r[0] for r in rows], velo_SE3_rect, frame="ego", scores=[0.9, 0.75, 0.5])
    boxes = replace(with_product_labels(boxes, "kitti"), track_ids=np.array([7, 12, -1]))  # as the KITTI reader labels them
    return Frame(
        "kitti_000001",
        KITTI_T_NS,
        rig,
        world_SE3_ego,
        {"velodyne": LidarSweep("velodyne", KITTI_T_NS, points, ("x", "y", "z", "intensity"))},
        {"image_2": CameraImage("image_2", KITTI_T_NS, "png", png, 1242, 375, str(root / "image_2" / "000001.png"))},
        OnboardPerception(boxes),
    )


def png_bytes(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def synthetic_rig() -> SensorRig:
    front_model = CameraModel(16, 12, 10.0, 10.5, 7.5, 5.5, "radtan", (0.1, -0.01, 0.001, 0.002, 1e-4))
    front = RigCamera(front_model, SE3(EGO_R_OPTICAL, [1.5, 0.0, 1.4]))
    left_R = SE3.from_yaw_translation(np.pi / 2).rotation @ EGO_R_OPTICAL
    left = RigCamera(CameraModel(8, 6, 4.0, 4.0, 3.5, 2.5, "fisheye", (0.01, 0.002, 0.0, -0.001)), SE3(left_R, [1.0, 0.9, 1.2]))
    lidars = {"lidar_top": SE3.from_yaw_translation(0.05, [1.2, 0.0, 1.9]), "lidar_rear": SE3.from_yaw_translation(np.pi, [-1.0, 0.0, 1.0])}
    return SensorRig(cameras={"front": front, "left": left}, lidars=lidars)


def synthetic_frame(index: int, *, time_ns: int | None = None, pose: bool = True) -> Frame:
    """A small frame: two LiDARs (one with ring + per-point times), a PNG and a raw mono8
    camera, a pose, onboard cuboids and annotations."""
    rng = np.random.default_rng(index)
    t = T0_NS + index * 100_000_000 if time_ns is None else time_ns
    top_points = np.column_stack([rng.normal(0, 20, (200, 3)), rng.uniform(0, 1, 200), rng.integers(0, 64, 200)]).astype(np.float32)
    top = LidarSweep("lidar_top", t, top_points, ("x", "y", "z", "intensity", "ring"), rng.integers(-50_000_000, 50_000_000, 200))
    rear = LidarSweep("lidar_rear", t + 3_000_000, rng.normal(0, 5, (50, 4)).astype(np.float32), ("x", "y", "z", "intensity"))
    front = CameraImage("front", t + 1_000_000, "png", png_bytes(16, 12, index), 16, 12)
    left = CameraImage("left", t - 2_000_000, "mono8", rng.integers(0, 256, 48, dtype=np.uint8).tobytes(), 8, 6)
    labels = ["car", "car", "pedestrian", "cyclist"]
    yaws = rng.uniform(-np.pi, np.pi, 4)
    centers, sizes, scores = rng.normal(0, 10, (4, 3)), rng.uniform(0.5, 5, (4, 3)), rng.uniform(0, 1, 4)
    onboard = Cuboids.from_arrays("ego", centers, sizes, yaws, labels, scores, [3, 4, -1, 9])
    truth = Cuboids.from_arrays(
        "ego", rng.normal(0, 10, (2, 3)), rng.uniform(0.5, 5, (2, 3)), [0.3, -2.0], ["car", "truck"], None, [1, 2], [17, 230]
    )
    world_SE3_ego = SE3.from_yaw_translation(0.02 * index, [1.5 * index, 0.2 * index, 0.0]) if pose else None
    lidars, images = {"lidar_top": top, "lidar_rear": rear}, {"front": front, "left": left}
    return Frame("drive", t, synthetic_rig(), world_SE3_ego, lidars, images, OnboardPerception(onboard), truth)


# ---------------------------------------------------------------------- comparisons
def assert_same_cuboids(read: Cuboids, written: Cuboids) -> None:
    """Labels, scores (float32) and track ids exact; geometry to float64 round-off."""
    assert read.frame == "ego"
    np.testing.assert_array_equal(read.labels, written.labels)
    np.testing.assert_array_equal(read.scores, written.scores)
    np.testing.assert_array_equal(read.track_ids, written.track_ids)
    np.testing.assert_allclose(read.centers_m, written.centers_m, rtol=0, atol=1e-12)
    np.testing.assert_allclose(read.sizes_m, written.sizes_m, rtol=0, atol=1e-12)
    yaw_error = np.angle(np.exp(1j * (read.yaws_rad - written.yaws_rad)))
    np.testing.assert_allclose(yaw_error, 0.0, atol=1e-12)


def assert_same_frame(read: Frame, written: Frame) -> None:
    assert read.timestamp_ns == written.timestamp_ns
    assert list(read.lidars) == list(written.lidars)
    for name, sweep in written.lidars.items():
        assert read.lidars[name].equals(sweep), name
        # bit-exact, NaN payloads included
        np.testing.assert_array_equal(read.lidars[name].points.view(np.uint32), sweep.points.view(np.uint32))
        assert read.rig.lidars[name].allclose(written.rig.lidars[name], atol_rad=1e-9, atol_m=1e-9)
    assert set(read.rig.cameras) == set(written.rig.cameras)
    for name, camera in written.rig.cameras.items():
        got = read.rig.cameras[name]
        assert got.model == camera.model, name
        np.testing.assert_allclose(got.model.K, camera.model.K, rtol=0, atol=1e-9)
        assert got.ego_SE3_camera.allclose(camera.ego_SE3_camera, atol_rad=1e-9, atol_m=1e-9), name
    assert set(read.images) == set(written.images)
    for name, image in written.images.items():
        got = read.images[name]
        assert (got.data, got.encoding, got.width_px, got.height_px, got.timestamp_ns) == (
            image.data, image.encoding, image.width_px, image.height_px, image.timestamp_ns
        )
    if written.world_SE3_ego is None:
        assert read.world_SE3_ego is None
    else:
        assert read.world_SE3_ego.allclose(written.world_SE3_ego, atol_rad=1e-9, atol_m=1e-9)
    assert_same_cuboids(read.onboard.cuboids, written.onboard.cuboids)
    if written.annotations is not None:
        assert_same_cuboids(read.annotations, written.annotations)


# ---------------------------------------------------------------------- tests
@pytest.mark.realdata
@pytest.mark.parametrize("family", sorted(WRITERS))
def test_kitti_frame_round_trip(shared_data: Path, tmp_path: Path, family: str) -> None:
    written = kitti_frame(shared_data, world_SE3_ego=SE3.from_yaw_translation(0.3, [10.0, 5.0, 1.0]))
    path = tmp_path / f"kitti_{family}.mcap"
    WRITERS[family](path, [written])

    with open_log(path) as reader:
        assert isinstance(reader, McapLogReader)
        refs = reader.list_frames()
        assert [(r.index, r.timestamp_ns, r.reader) for r in refs] == [(0, KITTI_T_NS, "mcap")]
        read = reader.load_frame(refs[0])
    bin_path = shared_data / "kitti" / "training" / "velodyne" / "000001.bin"
    assert read.lidar.num_points == bin_path.stat().st_size // 16 == 120_268  # the full HDL-64E sweep
    assert_same_frame(read, written)
    assert read.images["image_2"].decode().shape == (375, 1242, 3)
    assert read.source_uri == f"{path}#/lidar/points@{KITTI_T_NS}"


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_written_mcap_opens_with_the_plain_mcap_reader(tmp_path: Path, family: str) -> None:
    from mcap.reader import make_reader

    path = tmp_path / "drive.mcap"
    frames = [synthetic_frame(i) for i in range(3)]
    counts = WRITERS[family](path, frames)
    assert counts["/lidar/points"] == 3 and counts["/lidar/lidar_rear/points"] == 3 and counts["/tf_static"] == 1

    with path.open("rb") as f:
        reader = make_reader(f)
        seen = Counter(channel.topic for _, channel, _ in reader.iter_messages())
        summary = reader.get_summary()
        encodings = {schema.encoding for schema in summary.schemas.values()}
        profile = reader.get_header().profile
    assert seen == Counter(counts)
    assert summary.statistics.message_count == sum(counts.values())
    assert encodings == ({"protobuf"} if family == "foxglove" else {"ros2msg"})
    assert profile == ("ros2" if family == "ros2" else "")


def test_foxglove_messages_decode_with_the_published_schema_classes(tmp_path: Path) -> None:
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    path = tmp_path / "drive.mcap"
    frame = synthetic_frame(0)
    write_foxglove_mcap(path, [frame])
    with path.open("rb") as f:
        messages = {channel.topic: message.data for _, channel, message in make_reader(f).iter_messages()}
    cloud = PointCloud.FromString(messages["/lidar/points"])
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity", "ring", "t"]
    assert len(cloud.data) == cloud.point_stride * 200
    scene = SceneUpdate.FromString(messages["/perception/objects"])
    first = {kv.key: kv.value for kv in scene.entities[0].metadata}
    assert (scene.entities[0].id, first["class"], first["track_id"]) == ("3", "car", "3")
    assert scene.entities[2].id == "untracked-2"


def test_ros2_messages_decode_with_mcap_ros2(tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [synthetic_frame(0)])
    with path.open("rb") as f:
        decoded = {m.channel.topic: m.decoded_message for m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()}
    cloud = decoded["/lidar/points"]
    assert (cloud.width, cloud.height, cloud.point_step, cloud.header.frame_id) == (200, 1, 24, "lidar_top")
    info = decoded["/camera/front/camera_info"]
    assert (info.distortion_model, list(info.d)) == ("plumb_bob", [0.1, -0.01, 0.001, 0.002, 1e-4])
    detection = decoded["/perception/objects"].detections[2]
    assert (detection.id, detection.results[0].hypothesis.class_id) == ("", "pedestrian")


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_multi_frame_log_round_trip(tmp_path: Path, family: str) -> None:
    path = tmp_path / "drive.mcap"
    frames = [synthetic_frame(i) for i in range(4)]
    WRITERS[family](path, frames, chunk_size=4096)
    with open_log(path) as reader:
        refs = reader.list_frames()
        assert [r.timestamp_ns for r in refs] == [f.timestamp_ns for f in frames]
        assert {r.key for r in refs} == {f.key for f in frames}
        for ref, frame in zip(refs, frames):
            assert_same_frame(reader.load_frame(ref), frame)


@pytest.mark.parametrize("family", sorted(WRITERS))
def test_pose_is_interpolated_at_the_sweep_time(tmp_path: Path, family: str) -> None:
    # Poses at t0 and t0 + 100 ms; the frame between them has none of its own.
    t0 = T0_NS
    frames = [
        synthetic_frame(0, time_ns=t0),
        synthetic_frame(1, time_ns=t0 + 25_000_000, pose=False),
        synthetic_frame(2, time_ns=t0 + 100_000_000),
    ]
    path = tmp_path / "drive.mcap"
    WRITERS[family](path, frames)
    with open_log(path) as reader:
        middle = reader.load_frame(reader.list_frames()[1])
    expected = frames[0].world_SE3_ego.interpolate(frames[2].world_SE3_ego, 0.25)
    assert middle.world_SE3_ego.allclose(expected, atol_rad=1e-9, atol_m=1e-9)


def test_list_frames_reads_the_index_only_and_load_frame_its_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mcap.reader

    path = tmp_path / "drive.mcap"
    # Frames 1 s apart, so a frame's time window (sensors +-50 ms, transforms +-200 ms) holds no other frame.
    write_foxglove_mcap(path, [synthetic_frame(i, time_ns=T0_NS + i * 1_000_000_000) for i in range(6)], chunk_size=2048)
    calls = Counter()
    original = mcap.reader.breakup_chunk

    def counting_breakup_chunk(chunk, validate_crc=False):
        calls["chunks"] += 1
        return original(chunk, validate_crc)

    monkeypatch.setattr(mcap.reader, "breakup_chunk", counting_breakup_chunk)
    with open_log(path) as reader:
        total_chunks = len(reader._summary.chunk_indexes)
        refs = reader.list_frames()
        assert len(refs) == 6 and calls["chunks"] == 0  # message index records only
        reader.load_frame(refs[0])  # the first load also learns which frames /tf publishes (+-5 s)
        calls.clear()
        reader.load_frame(refs[3])
    assert 0 < calls["chunks"] < total_chunks / 3, (calls, total_chunks)


def test_reader_options_choose_topics(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [synthetic_frame(0)])
    cameras = {"front": "/camera/front/image_raw/compressed"}
    with open_log(path, lidar_topic="/lidar/lidar_rear/points", extra_lidar_topics=(), camera_topics=cameras) as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    assert list(frame.lidars) == ["lidar_rear"] and list(frame.images) == ["front"]
    assert frame.timestamp_ns == T0_NS + 3_000_000  # frames follow the chosen LiDAR


def test_slow_pose_publisher_widens_the_transform_window(tmp_path: Path) -> None:
    # Poses 2 s apart (beyond the first +-200 ms window); the frame 0.5 s in has none of its own.
    t0 = T0_NS
    frames = [
        synthetic_frame(0, time_ns=t0),
        synthetic_frame(1, time_ns=t0 + 500_000_000, pose=False),
        synthetic_frame(2, time_ns=t0 + 2_000_000_000),
    ]
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(path, frames)
    with open_log(path) as reader:
        refs = reader.list_frames()
        middle = reader.load_frame(refs[1])
    expected = frames[0].world_SE3_ego.interpolate(frames[2].world_SE3_ego, 0.25)
    assert middle.world_SE3_ego.allclose(expected, atol_rad=1e-9, atol_m=1e-9)


def test_frames_without_any_pose_have_none(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    write_ros2_mcap(path, [synthetic_frame(i, pose=False) for i in range(2)])
    with open_log(path) as reader:
        assert all(frame.world_SE3_ego is None for frame in reader.iter_frames())
