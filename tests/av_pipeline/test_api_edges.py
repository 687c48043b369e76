"""API rough edges a new user meets: readers by index, len() and item access; projection
with a 4x4 matrix; transposed point arrays refused; float16 points counted in boxes;
``open_log`` naming formats; ``FrameRef`` naming its sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError, ShapeError
from av_pipeline.fusion import project_points, project_to_cameras
from av_pipeline.readers import open_log
from calibration import SE3, CameraModel

EGO_R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------- readers
@pytest.fixture()
def bundled_reader():
    from av_pipeline.synthetic import bundled_log

    with open_log(bundled_log().mcap) as reader:
        yield reader


def test_load_frame_accepts_an_index(bundled_reader) -> None:
    refs = bundled_reader.list_frames()
    by_index = bundled_reader.load_frame(3)
    assert by_index.timestamp_ns == refs[3].timestamp_ns
    assert by_index.lidar.equals(bundled_reader.load_frame(refs[3]).lidar)
    assert bundled_reader.load_frame(np.int64(-1)).timestamp_ns == refs[-1].timestamp_ns


def test_readers_have_len_item_access_and_iteration(bundled_reader) -> None:
    refs = bundled_reader.list_frames()
    assert len(bundled_reader) == len(refs) == 20
    assert bundled_reader[0].timestamp_ns == refs[0].timestamp_ns
    assert [f.timestamp_ns for f in bundled_reader[18:]] == [r.timestamp_ns for r in refs[18:]]
    with pytest.raises(IndexError, match=r"frame 20 .*20 frames"):
        bundled_reader[20]
    with pytest.raises(IndexError, match="20 frames"):
        bundled_reader.load_frame(-21)
    with pytest.raises(TypeError, match=r"FrameRef.*int index.*str"):
        bundled_reader.load_frame("0")
    with pytest.raises(TypeError, match="bool"):
        bundled_reader[True]


@pytest.mark.realdata
def test_kitti_object_refs_name_their_sample(shared_data: Path) -> None:
    with open_log(shared_data / "kitti" / "training") as reader:
        (ref,) = reader.list_frames()
        assert ref.sample == "000001"
        assert ref.where == f"{shared_data / 'kitti' / 'training'}#000001"
        assert len(reader) == 1 and reader[0].source_uri.endswith("000001.bin")


def test_kitti_raw_refs_name_their_frame_file(tmp_path: Path) -> None:
    from tests.av_pipeline.test_cli_calib import _png, _rig  # a three-camera rig and PNGs
    from av_pipeline.records import CameraImage, Frame, LidarSweep
    from av_pipeline.writers.kitti_raw import write_kitti_raw

    rig = _rig()
    frames = []
    for k in range(3):
        t = 1_700_000_000_000_000_000 + k * 100_000_000
        sweep = LidarSweep("roof", t, np.zeros((5, 4), np.float32), ("x", "y", "z", "intensity"))
        frames.append(Frame("d", t, rig, SE3.identity(), {"roof": sweep}, {n: CameraImage(n, t, "png", _png(64, 48), 64, 48) for n in rig.cameras}))
    drive = write_kitti_raw(tmp_path, frames)
    with open_log(drive.drive_dir) as reader:
        assert [r.sample for r in reader.list_frames()] == ["0000000000", "0000000001", "0000000002"]


def test_open_log_lists_formats_not_reader_names(tmp_path: Path) -> None:
    unknown = tmp_path / "notes.txt"
    unknown.write_text("not a drive log")
    with pytest.raises(LogFormatError) as caught:
        open_log(unknown)
    message = str(caught.value)
    for fmt in ("KITTI object", "KITTI raw", "nuScenes", "MCAP", "ROS 1 bag", "PCD"):
        assert fmt in message, message
    assert "kitti_object" not in message and "mcap'" not in message


# ---------------------------------------------------------------------- projection
def _camera() -> tuple[CameraModel, SE3, np.ndarray]:
    model = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5, "radtan", (-0.1, 0.01, 0.0, 0.0, 0.0))
    ego_SE3_camera = SE3(EGO_R_OPTICAL, [1.5, 0.1, 1.4])
    points = np.random.default_rng(0).normal([12.0, 0.0, 0.5, 0.3], [3.0, 3.0, 1.0, 0.1], (200, 4)).astype(np.float32)
    return model, ego_SE3_camera.inverse(), points


@pytest.mark.parametrize("as_array", ["4x4", "3x4", "4x4 list"])
def test_project_points_accepts_a_matrix_like_mmdet3d_lidar2cam(as_array: str) -> None:
    model, camera_SE3_lidar, points = _camera()
    matrix = camera_SE3_lidar.as_matrix()
    given = {"4x4": matrix, "3x4": matrix[:3], "4x4 list": matrix.tolist()}[as_array]
    expected = project_points(points, model, camera_SE3_lidar)
    assert expected.valid.sum() > 100  # most points land on the image
    got = project_points(points, model, given)
    np.testing.assert_array_equal(got.status, expected.status)
    np.testing.assert_allclose(got.uv_px, expected.uv_px, rtol=0, atol=1e-4)
    assert got.camera_SE3_lidar.allclose(camera_SE3_lidar, atol_rad=1e-12, atol_m=1e-12)
    many = project_to_cameras(points, {"front": model}, {"front": given})
    np.testing.assert_array_equal(many["front"].status, expected.status)


def test_project_points_names_a_bad_transform() -> None:
    model, _, points = _camera()
    with pytest.raises(ShapeError, match=r"camera_SE3_lidar: expected an SE3 or a \(4, 4\) or \(3, 4\) .*got \(3, 3\)"):
        project_points(points, model, np.eye(3))


@pytest.mark.parametrize("rows", [3, 4])
def test_points_given_as_columns_are_refused_with_the_fix(rows: int) -> None:
    model, camera_SE3_lidar, points = _camera()
    with pytest.raises(ShapeError, match=rf"points_lidar: expected \(N, 3\+\).*got \({rows}, 200\).*points_lidar\.T"):
        project_points(points[:, :rows].T.copy(), model, camera_SE3_lidar)
    # A few points with a few extra columns stay accepted.
    assert len(project_points(points[:3, :4], model, camera_SE3_lidar)) == 3


# ---------------------------------------------------------------------- boxes
def test_count_points_converts_float16_points() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-10.0, 10.0, (50_000, 3)).astype(np.float16)  # AV2 stores sweeps as float16
    boxes = Cuboids.from_arrays("ego", [[2.0, 1.0, 0.0], [-4.0, 3.0, 1.0]], [[4.0, 2.0, 2.0], [3.0, 3.0, 4.0]], [0.3, -1.0], ["car", "van"])
    expected = boxes.count_points(points.astype(np.float32))
    np.testing.assert_array_equal(boxes.count_points(points), expected)
    assert expected.min() > 50
    np.testing.assert_array_equal(boxes.points_in_boxes(points), boxes.points_in_boxes(points.astype(np.float64)))
    assert "float16" in Cuboids.count_points.__doc__


@pytest.mark.parametrize("dtype", [np.int32, np.uint8])
def test_count_points_converts_integer_points(dtype) -> None:
    boxes = Cuboids.from_arrays("ego", [[0.0, 0.0, 0.0]], [[4.0, 4.0, 4.0]], [0.0], ["car"])
    points = np.array([[0, 0, 0], [1, 1, 1], [9, 9, 9]], dtype=dtype)
    np.testing.assert_array_equal(boxes.count_points(points), [2])


def test_count_points_names_a_dtype_it_cannot_count() -> None:
    boxes = Cuboids.from_arrays("ego", [[0.0, 0.0, 0.0]], [[4.0, 4.0, 4.0]], [0.0], ["car"])
    with pytest.raises(ShapeError, match="points: expected a real-valued.*complex128"):
        boxes.count_points(np.zeros((3, 3), dtype=np.complex128))
