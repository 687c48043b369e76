"""A folder of PCD sweeps with images and a calibration file (the PJLab layout) as one log."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.pcd import PcdReader, write_pcd
from av_pipeline.readers.pcd_folder import PcdFolderReader
from av_pipeline.validate import validate_frame
from calibration import SE3
from calibration.formats.pjlab import PjlabCalib, format_pjlab_calib_txt, read_pjlab_calib_txt


@pytest.fixture
def pjlab_folder(shared_data: Path) -> Path:
    return shared_data / "pjlab_lidar_camera"


@pytest.mark.realdata
def test_pjlab_sample_is_one_log_with_its_camera(pjlab_folder):
    with open_log(pjlab_folder) as reader:
        assert isinstance(reader, PcdFolderReader)
        refs = reader.list_frames()
        assert len(refs) == 1 and refs[0].log_id == "pjlab_lidar_camera" and refs[0].reader == "pcd_folder"
        frame = reader.load_frame(refs[0])
    # the sweep is the one the single-file PCD reader gives, at the same (end of sweep) time
    with PcdReader(str(pjlab_folder / "calib.pcd")) as single:
        alone = single.load_frame(single.list_frames()[0]).lidar
    assert frame.timestamp_ns == refs[0].timestamp_ns == alone.timestamp_ns
    np.testing.assert_array_equal(frame.lidar.points, alone.points)
    np.testing.assert_array_equal(frame.lidar.time_offsets_ns, alone.time_offsets_ns)
    # the rig is calib.txt's, with the size of the image beside it (1920 x 1200)
    assert frame.rig == read_pjlab_calib_txt(pjlab_folder / "calib.txt").to_rig((1920, 1200))
    model = frame.rig.cameras["camera"].model
    assert model.distortion_model == "radtan" and model.distortion == (-0.1192, 0.162, 0.00073985, 0.0014)
    image = frame.images["camera"]
    assert image.data == (pjlab_folder / "calib.jpg").read_bytes() and image.timestamp_ns == frame.timestamp_ns
    assert image.decode().shape == (1200, 1920, 3)
    # a frame fit for ingest, and a camera that sees the LiDAR's points
    validate_frame(frame, refs[0])
    camera = frame.rig.cameras["camera"]
    projection = model.project(camera.ego_SE3_camera.inverse().transform_points(frame.lidar.xyz.astype(np.float64)))
    assert projection.valid.sum() > 10_000


def _calib_text() -> str:
    camera_SE3_lidar = SE3(np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), [0.0, -0.3, -0.1])
    return format_pjlab_calib_txt(PjlabCalib(np.array([[40.0, 0.0, 19.5], [0.0, 40.0, 14.5], [0.0, 0.0, 1.0]]), (), camera_SE3_lidar))


def _png(width: int = 40, height: int = 30, value: int = 0) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_sweep(path: Path, rng, n: int = 50) -> np.ndarray:
    xyz = rng.uniform(-10, 10, (n, 3)).astype(np.float32)
    write_pcd(path, ["x", "y", "z", "intensity"], [xyz[:, 0], xyz[:, 1], xyz[:, 2], rng.uniform(0, 1, n).astype(np.float32)])
    return xyz


def test_folder_of_sweeps_without_times_pairs_images_by_name(tmp_path):
    folder = tmp_path / "session_3"
    folder.mkdir()
    rng = np.random.default_rng(0)
    (folder / "calib.txt").write_text(_calib_text())
    written = {stem: _write_sweep(folder / f"{stem}.pcd", rng) for stem in ("000", "001", "002")}
    (folder / "000.png").write_bytes(_png(value=10))
    (folder / "002.png").write_bytes(_png(value=20))
    reader = open_log(folder, timestamp_ns=5_000, frame_period_ns=50_000_000)
    assert isinstance(reader, PcdFolderReader)
    refs = reader.list_frames()
    assert [ref.timestamp_ns for ref in refs] == [5_000, 50_005_000, 100_005_000]
    frames = [reader.load_frame(ref) for ref in refs]
    for frame, stem in zip(frames, written):
        np.testing.assert_array_equal(frame.lidar.xyz, written[stem])
        assert frame.rig.ego_SE3_lidar("lidar") == SE3.identity() and frame.world_SE3_ego is None
    assert frames[0].images["camera"].decode()[0, 0, 0] == 10 and frames[2].images["camera"].decode()[0, 0, 0] == 20
    assert dict(frames[1].images) == {}  # 001 has no image
    camera = frames[0].rig.cameras["camera"]
    assert (camera.model.width_px, camera.model.height_px) == (40, 30)  # from the PNG: calib.txt has no size
    # calib.txt's T maps LiDAR to camera: a point 10 m ahead of the LiDAR is on the optical axis at 9.9 m
    np.testing.assert_allclose(camera.ego_SE3_camera.inverse().transform_points(np.array([[10.0, 0.0, -0.3]])), [[0.0, 0.0, 10.0 - 0.1]], atol=1e-12)


def test_a_multi_camera_rig_takes_images_from_camera_folders(tmp_path, shared_data):
    folder = tmp_path / "kitti_like"
    folder.mkdir()
    shutil.copy(shared_data / "kitti" / "training" / "calib" / "000001.txt", folder / "calib.txt")
    rng = np.random.default_rng(1)
    _write_sweep(folder / "000001.pcd", rng)
    (folder / "image_2").mkdir()
    (folder / "image_2" / "000001.png").write_bytes(_png(1242, 375))
    reader = open_log(folder)
    frame = reader.load_frame(reader.list_frames()[0])
    assert set(frame.rig.cameras) == {"image_0", "image_1", "image_2", "image_3"} and list(frame.lidars) == ["velodyne"]
    assert list(frame.images) == ["image_2"] and frame.images["image_2"].width_px == 1242
    (folder / "000001.png").write_bytes(_png())
    with pytest.raises(LogFormatError, match=r"kitti_like: images: images beside the sweeps, but the rig has cameras"):
        open_log(folder)


def test_lidar_only_folder_and_bad_layouts(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    _write_sweep(folder / "a.pcd", np.random.default_rng(2))
    reader = open_log(folder)
    assert isinstance(reader, PcdFolderReader) and list(reader.rig.cameras) == []
    frame = reader.load_frame(reader.list_frames()[0])
    assert list(frame.lidars) == ["lidar"] and frame.lidar.num_points == 50

    (folder / "a.jpg").write_bytes(_png())
    with pytest.raises(LogFormatError, match=r"scans: calibration: images beside the sweeps but no calibration file"):
        open_log(folder)
    (folder / "calib.txt").write_text(_calib_text())
    (folder / "calib_old.txt").write_text(_calib_text())
    with pytest.raises(LogFormatError, match=r"scans: calibration: several calibration files \['calib.txt', 'calib_old.txt'\]"):
        open_log(folder)
    reader = open_log(folder, calibration=str(folder / "calib_old.txt"))
    assert reader.calibration_path.name == "calib_old.txt"
    # one sweep and one image are a pair whatever their names
    (folder / "a.jpg").rename(folder / "snapshot.png")
    reader = open_log(folder, calibration=str(folder / "calib.txt"))
    assert list(reader.load_frame(reader.list_frames()[0]).images) == ["camera"]
    (folder / "snapshot.png").write_bytes(b"not an image")
    with pytest.raises(LogFormatError, match=r"snapshot.png: image: cannot read the image header"):
        open_log(folder, calibration=str(folder / "calib.txt"))
