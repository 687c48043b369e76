"""Single-camera YAML formats: ROS CameraInfo and OpenCV FileStorage (checked against cv2)."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import CalibrationFileError
from calibration.camera import CameraModel
from calibration.formats import (
    RosCameraInfo,
    format_opencv_yaml,
    format_ros_camera_info,
    parse_opencv_yaml,
    parse_ros_camera_info,
    read_opencv_yaml,
    read_ros_camera_info,
    write_opencv_yaml,
    write_ros_camera_info,
)

MODELS = {
    "pinhole": CameraModel(1600, 900, 1266.417203046554, 1266.417203046554, 816.2670197447984, 491.50706579294757),
    "radtan4": CameraModel(1920, 1200, 2152.8, 2155.5, 971.3, 605.9, "radtan", (-0.1192, 0.162, 0.00073985, 0.0014)),
    "radtan5": CameraModel(1392, 512, 984.2439, 980.8141, 690.0, 233.1966, "radtan", (-0.3728755, 0.2037299, 0.002219027, 0.001383707, -0.07233722)),
    "radtan8": CameraModel(3840, 2160, 1905.3, 1904.9, 1918.2, 1082.7, "radtan", (0.21, -0.05, 1e-4, -2e-4, 0.003, 0.55, -0.02, 0.012)),
    "fisheye": CameraModel(1280, 960, 420.5, 420.1, 640.3, 481.2, "fisheye", (0.0123, -0.0045, 0.00067, -8.9e-05)),
}

# A file as camera_calibration_parsers writes it (values from the ROS camera_calibration tutorial).
ROS_TUTORIAL_YAML = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [414.287922, 0.000000, 382.549277, 0.000000, 414.306025, 230.875190, 0.000000, 0.000000, 1.000000]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.278217, 0.068769, -0.001853, 0.000374, 0.000000]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.000000, 0.000000, 0.000000, 0.000000, 1.000000, 0.000000, 0.000000, 0.000000, 1.000000]
projection_matrix:
  rows: 3
  cols: 4
  data: [338.258392, 0.000000, 374.628685, 0.000000, 0.000000, 375.269897, 226.741577, 0.000000, 0.000000, 0.000000, 1.000000, 0.000000]
"""

# A file as OpenCV 3/4 write it: the %YAML:1.0 header, '0.' floats, extra keys.
OPENCV4_YAML = """%YAML:1.0
---
calibration_time: "Tue 05 Mar 2024 10:12:31 CET"
nr_of_frames: 25
image_width: 1280
image_height: 720
flags: 0
camera_matrix: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 9.1256738281250000e+02, 0., 6.4025402832031250e+02, 0.,
       9.1326995849609375e+02, 3.6162158203125000e+02, 0., 0., 1. ]
distortion_coefficients: !!opencv-matrix
   rows: 5
   cols: 1
   dt: d
   data: [ 1.2637129426002502e-01, -2.6134097576141357e-01,
       -1.9082962628453970e-04, 1.4061637222766876e-03,
       1.1328125000000000e-01 ]
avg_reprojection_error: 2.4137434959411621e-01
"""


# ---------------------------------------------------------------------- ROS
@pytest.mark.parametrize("name", sorted(MODELS))
def test_ros_round_trip(name, tmp_path):
    info = RosCameraInfo.from_camera_model(MODELS[name], f"cam_{name}")
    write_ros_camera_info(info, tmp_path / "camera.yaml")
    back = read_ros_camera_info(tmp_path / "camera.yaml")
    assert back.model == MODELS[name]
    assert back.camera_name == f"cam_{name}"
    np.testing.assert_array_equal(back.rectification, np.eye(3))
    np.testing.assert_array_equal(back.projection, info.projection)
    assert back.unrepresented == ()


def test_ros_writes_the_model_names_ros_uses():
    assert "distortion_model: plumb_bob" in format_ros_camera_info(RosCameraInfo.from_camera_model(MODELS["radtan5"], "c"))
    assert "distortion_model: rational_polynomial" in format_ros_camera_info(RosCameraInfo.from_camera_model(MODELS["radtan8"], "c"))
    assert "distortion_model: equidistant" in format_ros_camera_info(RosCameraInfo.from_camera_model(MODELS["fisheye"], "c"))
    text = format_ros_camera_info(RosCameraInfo.from_camera_model(MODELS["pinhole"], "front wide: 1"))
    assert "data: [0.0, 0.0, 0.0, 0.0, 0.0]" in text
    assert parse_ros_camera_info(text).camera_name == "front wide: 1"


def test_ros_tutorial_file_and_what_it_does_not_represent():
    info = parse_ros_camera_info(ROS_TUTORIAL_YAML, path="narrow_stereo.yaml")
    assert info.model == CameraModel(640, 480, 414.287922, 414.306025, 382.549277, 230.87519, "radtan", (-0.278217, 0.068769, -0.001853, 0.000374, 0.0))
    # P differs from [K | 0] (rectified intrinsics): kept on the result and reported.
    assert [note.field for note in info.unrepresented] == ["projection_matrix"]
    assert info.projection[0, 0] == 338.258392


def test_ros_stereo_right_camera_round_trip():
    info = parse_ros_camera_info(ROS_TUTORIAL_YAML)
    R = np.array([[0.999, -0.0447, 0.0], [0.0447, 0.999, 0.0], [0.0, 0.0, 1.0]])
    P = info.projection.copy()
    P[0, 3] = -40.2  # Tx = -fx' * baseline
    stereo = RosCameraInfo("right", info.model, R, P)
    back = parse_ros_camera_info(format_ros_camera_info(stereo))
    np.testing.assert_array_equal(back.rectification, R)
    np.testing.assert_array_equal(back.projection, P)
    assert {note.field for note in back.unrepresented} == {"rectification_matrix", "projection_matrix"}


def test_ros_drops_all_zero_extra_rational_terms_and_reports_unknown_keys():
    text = format_ros_camera_info(RosCameraInfo.from_camera_model(MODELS["radtan8"], "c"))
    text = text.replace("cols: 8", "cols: 14").replace("0.012]", "0.012, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]")
    text += "binning_x: 2\n"
    info = parse_ros_camera_info(text)
    assert info.model == MODELS["radtan8"]
    assert [(note.field, note.reason) for note in info.unrepresented] == [("binning_x", "unknown key; ignored")]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("image_height: 480\n", ""), r"cam.yaml: field 'image_height': missing"),
        (lambda t: t.replace("image_width: 640", "image_width: 640.5"), r"field 'image_width': expected a positive integer, got 640.5"),
        (lambda t: t.replace("382.549277, ", ""), r"field 'camera_matrix.data': expected 9 numbers, got 8"),
        (lambda t: t.replace("plumb_bob", "kannala_brandt"), r"field 'distortion_model': expected one of \['equidistant', 'plumb_bob', 'rational_polynomial'\], got 'kannala_brandt'"),
        (lambda t: t.replace("-0.278217", ".nan"), r"field 'distortion_coefficients.data': expected a finite number at position 1, got nan"),
        (lambda t: t.replace("-0.278217", "-0.27x"), r"field 'distortion_coefficients.data': expected a number at position 1, got malformed '-0.27x'"),
        (lambda t: t.replace("0.000374, 0.000000]", "0.000374, 0.0, 0.1, 0.2]").replace("cols: 5", "cols: 7"), r"camera distortion: the radtan model takes 4 or 5 or 8 coefficients, got 7"),
        (lambda t: t.replace("414.287922, 0.000000,", "414.287922, 2.5,", 1), r"field 'camera_matrix': expected zero skew K\[0, 1\], got 2.5 \(CameraModel has no skew\)"),
        (lambda t: t.replace("rows: 3\n  cols: 3\n  data: [414", "rows: 3\n  cols: 2\n  data: [414"), r"field 'camera_matrix': expected 3 x 3, got rows: 3, cols: 2"),
        (lambda t: "camera_matrix: [\n", r"cam.yaml: expected YAML, got .* at line 2"),
        (lambda t: "- 1\n- 2\n", r"cam.yaml: expected a mapping, got a list of 2 items"),
    ],
)
def test_ros_bad_input(edit, match):
    with pytest.raises(CalibrationFileError, match=match):
        parse_ros_camera_info(edit(ROS_TUTORIAL_YAML), path="cam.yaml")


# ---------------------------------------------------------------------- OpenCV
cv2 = pytest.importorskip("cv2")  # a test dependency only: the reader itself does not use it


def _cv2_read(path) -> dict:
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        return {
            "K": fs.getNode("camera_matrix").mat(),
            "D": fs.getNode("distortion_coefficients").mat(),
            "width": int(fs.getNode("image_width").real()),
            "height": int(fs.getNode("image_height").real()),
            "model": fs.getNode("distortion_model").string(),
        }
    finally:
        fs.release()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_opencv_round_trip_through_our_reader_and_cv2(name, tmp_path):
    model = MODELS[name]
    path = tmp_path / "camera.yaml"
    write_opencv_yaml(model, path)
    back = read_opencv_yaml(path)
    assert back.model == model and back.unrepresented == ()
    read_by_cv2 = _cv2_read(path)
    np.testing.assert_array_equal(read_by_cv2["K"], model.K)
    expected_D = model.distortion if model.distortion else (0.0,) * 5
    np.testing.assert_array_equal(read_by_cv2["D"].ravel(), expected_D)
    assert (read_by_cv2["width"], read_by_cv2["height"]) == (model.width_px, model.height_px)
    assert read_by_cv2["model"] == model.distortion_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_opencv_reads_what_cv2_writes(name, tmp_path):
    model = MODELS[name]
    path = tmp_path / "cv2.yaml"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", model.width_px)
    fs.write("image_height", model.height_px)
    fs.write("camera_matrix", model.K)
    if model.distortion_model != "pinhole":
        fs.write("distortion_coefficients", np.array([model.distortion]))
    if model.distortion_model == "fisheye":
        fs.write("distortion_model", "fisheye")
    fs.write("avg_reprojection_error", 0.25)
    fs.release()
    assert path.read_text().startswith("%YAML")
    back = read_opencv_yaml(path)
    assert back.model == model
    assert [note.field for note in back.unrepresented] == ["avg_reprojection_error"]


def test_opencv_reads_opencv4_files_with_column_vectors_and_extra_keys():
    calib = parse_opencv_yaml(OPENCV4_YAML, path="intrinsics.yaml")
    assert calib.model.K[0, 0] == 912.5673828125 and calib.model.width_px == 1280
    assert calib.model.distortion_model == "radtan"
    assert calib.model.distortion == (0.12637129426002502, -0.26134097576141357, -0.0001908296262845397, 0.0014061637222766876, 0.11328125)
    assert [note.field for note in calib.unrepresented] == ["calibration_time", "nr_of_frames", "flags", "avg_reprojection_error"]


def test_opencv_projection_agrees_with_cv2_project_points():
    # The distortion read back is the one cv2 applies: same pixels as cv2.projectPoints.
    model = parse_opencv_yaml(format_opencv_yaml(MODELS["radtan5"])).model
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-2, 2, 200), rng.uniform(-1, 1, 200), rng.uniform(2, 20, 200)]
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), model.K, np.array(model.distortion))
    x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
    k1, k2, p1, p2, k3 = model.distortion
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd, yd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    np.testing.assert_allclose(np.c_[model.fx_px * xd + model.cx_px, model.fy_px * yd + model.cy_px], expected[:, 0], atol=1e-6)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("camera_matrix", "camera_mat"), r"intrinsics.yaml: field 'camera_matrix': missing \(expected one of \['camera_matrix', 'cameraMatrix', 'K'\]\)"),
        (lambda t: t.replace("rows: 5", "rows: 6"), r"field 'distortion_coefficients.data': expected 6 numbers, got 5"),
        (lambda t: t.replace("1.2637129426002502e-01", ".Nan"), r"field 'distortion_coefficients.data': expected a finite number at position 1, got '.Nan'"),
        (lambda t: t.replace("1.2637129426002502e-01", "1.26.3"), r"field 'distortion_coefficients.data': expected a number at position 1, got malformed '1.26.3'"),
        (lambda t: t.replace("dt: d", "dt: 3d", 1), r"field 'camera_matrix.dt': expected a single-channel type"),
        (lambda t: t.replace("image_width: 1280\n", ""), r"field 'image_width': missing"),
        (lambda t: t + "distortion_model: pinhole\n", r"field 'distortion_coefficients': expected all-zero coefficients for distortion_model 'pinhole'"),
        (lambda t: t + "camera_name: !!python/object/apply:os.system ['echo pwned']\n", r"intrinsics.yaml: expected YAML, got could not determine a constructor for the tag"),
    ],
)
def test_opencv_bad_input(edit, match):
    with pytest.raises(CalibrationFileError, match=match):
        parse_opencv_yaml(edit(OPENCV4_YAML), path="intrinsics.yaml")
