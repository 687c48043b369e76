"""PJLab SensorsCalibration calib.txt: round trip, bad input, and the real frame's projection."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import SE3, CalibrationFileError
from calibration.formats import (
    PjlabCalib,
    format_pjlab_calib_txt,
    parse_pjlab_calib_txt,
    read_pjlab_calib_txt,
    write_pjlab_calib_txt,
)

IMAGE_SIZE = (1920, 1200)
K = np.array([[2152.8, 0.0, 971.3], [0.0, 2155.5, 605.9], [0.0, 0.0, 1.0]])


def distort_and_project(points_camera: np.ndarray, K: np.ndarray, distortion) -> np.ndarray:
    """OpenCV radial-tangential projection (independent of the code under test)."""
    x, y = points_camera[:, 0] / points_camera[:, 2], points_camera[:, 1] / points_camera[:, 2]
    if len(distortion):
        k1, k2, p1, p2, k3 = (list(distortion) + [0.0])[:5]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        x, y = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.c_[K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]]


def in_image(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return (uv[:, 0] >= -0.5) & (uv[:, 0] < size[0] - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < size[1] - 0.5)


@pytest.mark.parametrize("distortion", [(), (-0.1192, 0.162, 0.00073985, 0.0014), (-0.3, 0.1, 0.001, -0.002, -0.02)])
def test_round_trip(distortion, tmp_path):
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    calib = PjlabCalib(K, distortion, SE3.from_wxyz(q / np.linalg.norm(q), rng.normal(size=3)))
    write_pjlab_calib_txt(calib, tmp_path / "calib.txt")
    back = read_pjlab_calib_txt(tmp_path / "calib.txt")
    np.testing.assert_array_equal(back.intrinsic, K)
    assert back.distortion == tuple(distortion)
    assert back.camera_SE3_lidar.allclose(calib.camera_SE3_lidar, atol_rad=1e-12, atol_m=1e-12)
    assert back.labels == ("K", "D", "T") and back.unrepresented == ()
    if not distortion:
        assert "D: 0\n" in (tmp_path / "calib.txt").read_text()


def test_projection_matrix_variant_like_their_kitti_sample():
    # SensorsCalibration's data/kitti/*/calib.txt: a 3x4 P2, "D: 0", "Tr:".
    text = (
        "P2: 7.188560000000e+02 0.000000000000e+00 6.071928000000e+02 4.538225000000e+01 0.000000000000e+00 "
        "7.188560000000e+02 1.852157000000e+02 -1.130887000000e-01 0.000000000000e+00 0.000000000000e+00 "
        "1.000000000000e+00 3.779761000000e-03\n"
        "D: 0\n"
        "Tr: 4.276802385584e-04 -9.999672484946e-01 -8.084491683471e-03 -1.198459927713e-02 -7.210626507497e-03 "
        "8.081198471645e-03 -9.999413164504e-01 -5.403984729748e-02 9.999738645903e-01 4.859485810390e-04 "
        "-7.206933692422e-03 -2.921968648686e-01\n"
    )
    calib = parse_pjlab_calib_txt(text)
    assert calib.labels == ("P2", "D", "Tr") and calib.distortion == ()
    rig = calib.to_rig((1241, 376))
    camera = rig.cameras["camera"]
    rng = np.random.default_rng(1)
    points_lidar = np.c_[rng.uniform(5, 40, 100), rng.uniform(-5, 5, 100), rng.uniform(-1.5, 1.5, 100)]
    h = np.c_[points_lidar, np.ones(100)] @ (calib.intrinsic @ calib.camera_SE3_lidar.as_matrix()).T
    points_camera = camera.ego_SE3_camera.inverse().transform_points(points_lidar)
    np.testing.assert_allclose(distort_and_project(points_camera, camera.model.K, ()), h[:, :2] / h[:, 2:], atol=1e-6)
    assert parse_pjlab_calib_txt(format_pjlab_calib_txt(calib)).labels == ("P2", "D", "Tr")


def test_distortion_ignored_with_a_projection_matrix_is_reported():
    text = "P: 700 0 600 0 0 700 180 0 0 0 1 0\nD: -0.1 0.01 0 0\nT: 1 0 0 0 0 1 0 0 0 0 1 0\nextra: 1\n"
    calib = parse_pjlab_calib_txt(text)
    assert [note.field for note in calib.unrepresented] == ["D", "line 4"]
    assert calib.to_rig((1200, 360)).cameras["camera"].model.distortion_model == "pinhole"


@pytest.mark.parametrize(
    "text, match",
    [
        ("K: 1 0 0 0 1 0 0 0 1\nD: 0\n", r"calib.txt: expected 3 lines \(K, D, T\), got 2"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0\nD: 0\nT: 1 0 0 0 0 1 0 0 0 0 1 0", r"calib.txt: field 'K': expected 9 or 12 numbers, got 8"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0 1\nD: -0.1 0.2 0.3\nT: 1 0 0 0 0 1 0 0 0 0 1 0", r"field 'D': expected 1 or 4 or 5 or 8 numbers, got 3"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0 1\nD: 0.5\nT: 1 0 0 0 0 1 0 0 0 0 1 0", r"field 'D': expected 0 \(no distortion\) or 4, 5 or 8 coefficients, got the single value 0.5"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0 1\nD: 0\nT: 1 0 0 0 0 1 0 0 0 0 1 O", r"field 'T': expected a number at position 12, got malformed 'O'"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0 1\nD: 0\nT: 1 0 0 0 0 1 0 0 0 0 1 nan", r"field 'T': expected finite numbers, got 'nan' at position 12"),
        ("K: 2152.8 0 971.3 0 2155.5 605.9 0 0 1\nD: 0\nT: 1 0 0 0 0 1 0 0 0 0.5 1 0", r"field 'T': expected an orthonormal rotation"),
    ],
)
def test_bad_input(text, match):
    with pytest.raises(CalibrationFileError, match=match):
        parse_pjlab_calib_txt(text, path="calib.txt")


def test_skewed_intrinsics_are_reported_and_refused_by_to_rig():
    calib = parse_pjlab_calib_txt("K: 1000 3 960 0 1000 600 0 0 1\nD: 0\nT: 1 0 0 0 0 1 0 0 0 0 1 0", path="calib.txt")
    assert calib.unrepresented[0].field == "K" and "skew" in calib.unrepresented[0].reason
    with pytest.raises(CalibrationFileError, match=r"calib.txt: field 'K': expected zero skew"):
        calib.to_rig(IMAGE_SIZE)


@pytest.mark.realdata
def test_real_frame_projects_onto_the_image_with_its_distortion(shared_data):
    folder = shared_data / "pjlab_lidar_camera"
    calib = read_pjlab_calib_txt(folder / "calib.txt")
    assert calib.distortion == (-0.1192, 0.162, 0.00073985, 0.0014)
    assert [note.field for note in calib.unrepresented] == ["T"]  # 6-digit rotation, re-orthonormalised
    from PIL import Image

    with Image.open(folder / "calib.jpg") as image:
        assert image.size == IMAGE_SIZE
    open3d = pytest.importorskip("open3d")  # reads the binary_compressed (LZF) PCD
    points_lidar = np.asarray(open3d.io.read_point_cloud(str(folder / "calib.pcd")).points)
    assert points_lidar.shape == (101_340, 3)

    rig = calib.to_rig(IMAGE_SIZE)
    camera = rig.cameras["camera"]
    assert camera.model.distortion_model == "radtan"
    points_camera = camera.ego_SE3_camera.inverse().transform_points(points_lidar)
    # the rig's extrinsic is the file's T: camera <- LiDAR
    np.testing.assert_allclose(points_camera, calib.camera_SE3_lidar.transform_points(points_lidar), atol=1e-9)
    front = points_camera[:, 2] > 1.0
    uv = distort_and_project(points_camera[front], camera.model.K, camera.model.distortion)
    uv_pinhole = distort_and_project(points_camera[front], camera.model.K, ())

    # Points within 20 degrees of the optical axis land on the image.
    off_axis = np.degrees(np.arctan2(np.hypot(points_camera[front, 0], points_camera[front, 1]), points_camera[front, 2]))
    near_axis = off_axis < 20.0
    assert near_axis.sum() > 5_000
    assert in_image(uv[near_axis], IMAGE_SIZE).mean() > 0.95
    assert in_image(uv, IMAGE_SIZE).sum() > 10_000

    # The distortion matters near the borders (barrel: k1 < 0 pulls points inwards) and not
    # at the centre.
    radius = np.hypot(uv_pinhole[:, 0] - camera.model.cx_px, uv_pinhole[:, 1] - camera.model.cy_px)
    shift = np.linalg.norm(uv - uv_pinhole, axis=1)
    inside = in_image(uv_pinhole, IMAGE_SIZE)
    border, centre = inside & (radius > 800), inside & (radius < 200)
    assert border.sum() > 500 and centre.sum() > 100
    assert np.median(shift[border]) > 5.0
    assert shift[centre].max() < 0.5 < 5.0 < np.median(shift[border])
    assert np.mean(np.hypot(uv[border, 0] - camera.model.cx_px, uv[border, 1] - camera.model.cy_px) < radius[border]) > 0.95

    cv2 = pytest.importorskip("cv2")
    expected, _ = cv2.projectPoints(points_camera[front], np.zeros(3), np.zeros(3), camera.model.K, np.array(camera.model.distortion))
    np.testing.assert_allclose(uv[near_axis], expected[near_axis, 0], atol=1e-3)  # cv2 returns float32-rounded pixels
    if hasattr(camera.model, "project"):  # CameraModel.project, when present
        projection = camera.model.project(points_camera[front])
        valid = np.asarray(projection.valid)
        assert valid[near_axis].mean() > 0.95
        np.testing.assert_allclose(projection.uv_px[valid], uv[valid], atol=1e-6)
