"""The KITTI raw drive writer (av_pipeline/writers/kitti_raw.py) on hand-made frames."""

from __future__ import annotations

import io

import numpy as np
import pytest

from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.kitti import mercator_scale, oxts_world_SE3_imu, parse_kitti_timestamp, read_oxts_packet
from av_pipeline.records import CameraImage, Frame, LidarSweep
from av_pipeline.writers.kitti_raw import KittiRawWriter, format_kitti_timestamp, mercator_to_lat_lon, write_kitti_raw
from calibration import SE3, CameraModel, RigCamera, SensorRig

T0 = 1_700_000_000_123_456_789


def _png(width: int, height: int, value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rig(distortion_model: str = "radtan") -> SensorRig:
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    coefficients = (-0.1, 0.02, 0.001, -0.001, 0.0) if distortion_model == "radtan" else (0.1, 0.0, 0.0, 0.0)
    front = RigCamera(CameraModel(64, 48, 50.0, 50.0, 31.5, 23.5, distortion_model, coefficients), SE3(optical, [1.5, 0.0, 1.4]))
    return SensorRig(cameras={"front": front}, lidars={"roof": SE3.from_yaw_translation(0.02, [1.0, 0.1, 1.8])})


def _frames(rig: SensorRig, count: int = 3) -> list[Frame]:
    rng = np.random.default_rng(0)
    frames = []
    for k in range(count):
        t = T0 + k * 100_000_000
        points = rng.normal(0.0, 10.0, (50, 4)).astype(np.float32)
        sweep = LidarSweep("roof", t, points, ("x", "y", "z", "intensity"), np.linspace(-50e6, 50e6, 50).astype(np.int64))
        image = CameraImage("front", t + 1_000_000, "png", _png(64, 48, 40 * k), 64, 48)
        pose = SE3.from_yaw_translation(0.3 + 0.05 * k, [100.0 + 1.2 * k, -50.0 + 0.4 * k, 2.0])
        frames.append(Frame("hand", t, rig, pose, {"roof": sweep}, {"front": image}))
    return frames


def test_timestamps_round_trip_to_the_nanosecond() -> None:
    for t in (0, T0, 1_315_000_945_964_389_445, T0 + 999_999_999):
        assert parse_kitti_timestamp(format_kitti_timestamp(t)) == t
    assert format_kitti_timestamp(1_317_027_745_964_389_445) == "2011-09-26 09:02:25.964389445"


def test_inverse_mercator_matches_the_devkit_formula() -> None:
    scale = mercator_scale(49.0)
    for lat, lon in ((49.0, 8.4), (49.01, 8.43), (48.99, 8.39)):
        pose = oxts_world_SE3_imu(np.array([lat, lon, 100.0, 0.0, 0.0, 0.0]), scale)
        back = mercator_to_lat_lon(pose.translation[0], pose.translation[1], scale)
        np.testing.assert_allclose(back, (lat, lon), atol=1e-12)


def test_hand_made_frames_read_back(tmp_path) -> None:
    rig = _rig()
    frames = _frames(rig)
    drive = write_kitti_raw(tmp_path, frames, date="2023_11_14", drive_number=7)
    assert drive.drive_dir.name == "2023_11_14_drive_0007_extract" and drive.frames == 3
    assert drive.camera_folders == {"front": "02"}
    start = (drive.drive_dir / "velodyne_points" / "timestamps_start.txt").read_text().splitlines()
    assert parse_kitti_timestamp(start[0]) == T0 - 50_000_000
    with open_log(drive.drive_dir) as reader:
        for source, ref in zip(frames, reader.list_frames()):
            read = reader.load_frame(ref)
            assert ref.timestamp_ns == source.timestamp_ns
            np.testing.assert_array_equal(read.lidar.points, source.lidar.points)
            expected = drive.reader_world_SE3_world.compose(source.world_SE3_ego).compose(rig.lidars["roof"])
            np.testing.assert_allclose(read.world_SE3_ego.as_matrix(), expected.as_matrix(), atol=1e-6)
            assert read.images["image_02"].timestamp_ns == source.images["front"].timestamp_ns
            assert read.images["image_02"].data == source.images["front"].data
            camera = read.rig.cameras["image_02"]
            assert camera.model == rig.cameras["front"].model
            assert camera.ego_SE3_camera.allclose(rig.lidars["roof"].inverse().compose(rig.cameras["front"].ego_SE3_camera))
    packet = read_oxts_packet(drive.drive_dir / "oxts" / "data" / f"{1:010d}.txt")
    assert packet[5] == pytest.approx(0.35)  # yaw
    assert np.hypot(packet[6], packet[7]) == pytest.approx(np.hypot(12.0, 4.0), rel=1e-6)  # vn, ve from the poses


def test_what_kitti_raw_cannot_hold_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="radial-tangential"):
        KittiRawWriter(tmp_path, _rig("fisheye"))
    with pytest.raises(ConfigError, match="distinct values among 00..03"):
        KittiRawWriter(tmp_path, _rig(), camera_folders={"front": "07"})
    frames = _frames(_rig())
    writer = KittiRawWriter(tmp_path, _rig())
    writer.write(frames[1])
    with pytest.raises(LogFormatError, match="time order"):
        writer.write(frames[0])
    no_pose = Frame("hand", T0 + 10**9, frames[0].rig, None, frames[0].lidars, frames[0].images)
    with pytest.raises(LogFormatError, match="ego pose"):
        writer.write(no_pose)
    with pytest.raises(LogFormatError, match="no frames"):
        write_kitti_raw(tmp_path / "empty", [])
