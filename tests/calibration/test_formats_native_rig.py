"""The av-pipeline rig file (YAML and JSON), and the formats package's own doctests."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

from calibration import SE3, CalibrationFileError
from calibration.camera import CameraModel
from calibration.formats import NativeRig, format_rig, parse_rig, read_rig, write_rig
from calibration.rig import RigCamera, SensorRig


def random_se3(rng: np.random.Generator) -> SE3:
    q = rng.normal(size=4)
    return SE3.from_wxyz(q / np.linalg.norm(q), rng.normal(scale=2.0, size=3))


def example_rig(seed: int = 0) -> SensorRig:
    rng = np.random.default_rng(seed)
    models = [
        CameraModel(1600, 900, 1266.417203046554, 1266.417203046554, 816.2670197447984, 491.50706579294757),
        CameraModel(1920, 1200, 2152.8, 2155.5, 971.3, 605.9, "radtan", (-0.1192, 0.162, 0.00073985, 0.0014)),
        CameraModel(3840, 2160, 1905.3, 1904.9, 1918.2, 1082.7, "radtan", (0.21, -0.05, 1e-4, -2e-4, 0.003, 0.55, -0.02, 0.012)),
        CameraModel(1280, 960, 420.5, 420.1, 640.3, 481.2, "fisheye", (0.0123, -0.0045, 0.00067, -8.9e-05)),
    ]
    cameras = {name: RigCamera(model, random_se3(rng)) for name, model in zip(["front", "front_tele", "rear", "fisheye_left"], models)}
    return SensorRig(cameras=cameras, lidars={"top": random_se3(rng), "front_left": random_se3(rng)})


def assert_rigs_equal(a: SensorRig, b: SensorRig, tol: float = 1e-12) -> None:
    assert list(a.cameras) == list(b.cameras) and list(a.lidars) == list(b.lidars)
    for name in a.cameras:
        assert a.cameras[name].model == b.cameras[name].model, name
        assert a.cameras[name].ego_SE3_camera.allclose(b.cameras[name].ego_SE3_camera, atol_rad=tol, atol_m=tol), name
    for name in a.lidars:
        assert a.lidars[name].allclose(b.lidars[name], atol_rad=tol, atol_m=tol), name


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_rig_round_trip(suffix, tmp_path):
    rig = example_rig()
    path = tmp_path / f"rig{suffix}"
    write_rig(rig, path, description="test vehicle 7", ego_frame="base_link", frame_names={"front": "front_optical", "top": "lidar_top"})
    back = read_rig(path)
    assert_rigs_equal(back.rig, rig)
    assert back.description == "test vehicle 7" and back.ego_frame == "base_link"
    assert dict(back.frame_names) == {"front": "front_optical", "top": "lidar_top"}
    assert back.unrepresented == ()
    # translations and intrinsics are exact; rotations go through a quaternion (<= 1e-15 rad here)
    for name, camera in rig.cameras.items():
        np.testing.assert_array_equal(back.rig.cameras[name].ego_SE3_camera.translation, camera.ego_SE3_camera.translation)
    # a NativeRig brings its description and frame names when written again
    write_rig(back, tmp_path / f"again{suffix}")
    again = read_rig(tmp_path / f"again{suffix}")
    assert_rigs_equal(again.rig, rig)
    assert (again.description, again.ego_frame, dict(again.frame_names)) == (back.description, back.ego_frame, dict(back.frame_names))


def test_yaml_and_json_hold_the_same_rig():
    rig = example_rig(seed=4)
    from_yaml = parse_rig(format_rig(rig, fmt="yaml"), fmt="yaml")
    from_json = parse_rig(format_rig(rig, fmt="json"), fmt="json")
    assert_rigs_equal(from_yaml.rig, from_json.rig, tol=0.0)
    assert json.loads(format_rig(rig, fmt="json"))["format"] == "av-pipeline-rig"


def test_file_layout_is_the_documented_one():
    rig = SensorRig(
        cameras={"front": RigCamera(CameraModel(1920, 1080, 1000.0, 1000.0, 960.0, 540.0), SE3.from_wxyz([0.5, -0.5, 0.5, -0.5], [1.7, 0.0, 1.5]))},
        lidars={"top": SE3.from_yaw_translation(0.0, [0.9, 0.0, 1.8])},
    )
    doc = json.loads(format_rig(rig, fmt="json", ego_frame="base_link"))
    assert list(doc) == ["format", "version", "ego_frame", "cameras", "lidars"]
    assert doc["version"] == 1
    assert doc["cameras"]["front"] == {
        "intrinsics": {"width_px": 1920, "height_px": 1080, "fx_px": 1000.0, "fy_px": 1000.0, "cx_px": 960.0, "cy_px": 540.0},
        "distortion": {"model": "pinhole", "coefficients": []},
        "ego_SE3_camera": {"translation_m": [1.7, 0.0, 1.5], "rotation_wxyz": [0.5, -0.5, 0.5, -0.5]},
    }
    assert doc["lidars"]["top"] == {"ego_SE3_lidar": {"translation_m": [0.9, 0.0, 1.8], "rotation_wxyz": [1.0, 0.0, 0.0, 0.0]}}


def test_hand_written_yaml():
    text = """
format: av-pipeline-rig
version: 1
cameras:
  front:
    intrinsics: {width_px: 1920, height_px: 1080, fx_px: 1000, fy_px: 1000, cx_px: 959.5, cy_px: 539.5}
    distortion: {model: radtan, coefficients: [-0.1, 1e-2, 0, 0]}
    ego_SE3_camera: {translation_m: [1.7, 0, 1.5], rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}
lidars:
  top: {ego_SE3_lidar: {translation_m: [0.9, 0, 1.8], rotation_wxyz: [1, 0, 0, 0]}}
"""
    rig = parse_rig(text).rig
    assert rig.cameras["front"].model.distortion == (-0.1, 0.01, 0.0, 0.0)  # YAML 1.1 reads 1e-2 as a string
    # camera z (forward) is ego x: the camera looks along the vehicle's heading
    np.testing.assert_allclose(rig.cameras["front"].ego_SE3_camera.rotation[:, 2], [1.0, 0.0, 0.0], atol=1e-12)


def _doc(**changes):
    doc = json.loads(format_rig(example_rig(), fmt="json"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = doc
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text, match",
    [
        (_doc(format="kitti"), r"rig.json: field 'format': expected 'av-pipeline-rig', got 'kitti'"),
        (_doc(version=2), r"field 'version': expected 1, got 2"),
        (_doc(version=True), r"field 'version': expected 1, got True"),
        (_doc(cameras__front__intrinsic={}), r"field 'cameras.front.intrinsic': unknown key \(expected one of \['frame', 'intrinsics', 'distortion', 'ego_SE3_camera'\]\)"),
        (_doc(cameras__front__intrinsics__fx_px=KeyError), r"field 'cameras.front.intrinsics.fx_px': missing"),
        (_doc(cameras__front__intrinsics__width_px=0), r"field 'cameras.front.intrinsics.width_px': expected a positive integer, got 0"),
        (_doc(cameras__front__intrinsics__fy_px="fast"), r"field 'cameras.front.intrinsics.fy_px': expected a number, got malformed 'fast'"),
        (_doc(cameras__rear__distortion={"model": "radtan", "coefficients": [0.1, 0.2, 0.3]}), r"field 'cameras.rear.distortion.coefficients': expected 4 or 5 or 8 numbers, got 3"),
        (_doc(cameras__rear__distortion={"model": "kb4", "coefficients": []}), r"field 'cameras.rear.distortion.model': expected one of \['fisheye', 'pinhole', 'radtan'\], got 'kb4'"),
        (_doc(lidars__top__ego_SE3_lidar={"translation_m": [0, 0, 0], "rotation_wxyz": [0.7, 0.7, 0.0, 0.1]}), r"field 'lidars.top.ego_SE3_lidar.rotation_wxyz': expected a unit quaternion"),
        (_doc(lidars__top__ego_SE3_lidar={"translation_m": [0, 0], "rotation_wxyz": [1, 0, 0, 0]}), r"field 'lidars.top.ego_SE3_lidar.translation_m': expected 3 numbers, got 2"),
        (_doc(lidars__top__ego_SE3_lidar={"translation_m": [0, float("inf"), 0], "rotation_wxyz": [1, 0, 0, 0]}), r"field 'lidars.top.ego_SE3_lidar.translation_m': expected a finite number at position 2, got inf"),
        (_doc(lidars__front={"ego_SE3_lidar": {"translation_m": [0, 0, 0], "rotation_wxyz": [1, 0, 0, 0]}}), r"field 'lidars.front': expected sensor names unique across cameras and lidars"),
        (_doc(cameras__front__ego_SE3_camera=KeyError), r"field 'cameras.front.ego_SE3_camera': missing"),
        ('{"format": "av-pipeline-rig", "version": 1,}', r"rig.json: expected JSON, got a syntax error at line 1"),
    ],
)
def test_bad_rig_files(text, match):
    with pytest.raises(CalibrationFileError, match=match):
        parse_rig(text, fmt="json", path="rig.json")


def test_bad_yaml_rig_file():
    with pytest.raises(CalibrationFileError, match=r"rig.yaml: expected YAML, got could not determine a constructor"):
        parse_rig("format: !!python/name:os.system\n", path="rig.yaml")
    with pytest.raises(CalibrationFileError, match=r"rig.yaml: expected a mapping, got str 'just text'"):
        parse_rig("just text", path="rig.yaml")


def test_native_rig_frame_names_must_name_sensors():
    with pytest.raises(Exception, match=r"frame_names: expected names of the rig's sensors, got unknown \['nope'\]"):
        NativeRig(example_rig(), frame_names={"nope": "x"})


@pytest.mark.parametrize(
    "module",
    ["_common", "kitti_object", "native_rig", "pjlab", "ros_camera_info"],
)
def test_formats_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"calibration.formats.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
