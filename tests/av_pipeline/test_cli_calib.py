"""``avp calib show / convert`` on a KITTI raw drive written like ``avp simulate`` writes one,
and the output side of ``convert`` (KITTI, missing folders, extensions, several cameras)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.cli import main
from av_pipeline.readers import open_log
from av_pipeline.records import CameraImage, Frame, LidarSweep
from av_pipeline.writers.kitti_raw import write_kitti_raw
from calibration import SE3, CameraModel, RigCamera, SensorRig
from calibration import formats

T0 = 1_700_000_000_123_456_789
#: Camera optical frame (x right, y down, z forward) -> ego (x forward, y left, z up).
EGO_R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rig() -> SensorRig:
    """Three distorted cameras looking forward, left and right from distinct places (like the simulator's)."""
    cameras = {}
    for name, yaw, position, k1 in (("front", 0.0, [1.5, 0.0, 1.4], -0.12), ("left", 1.2, [1.0, 0.8, 1.3], -0.2), ("right", -1.2, [1.0, -0.8, 1.3], -0.21)):
        model = CameraModel(64, 48, 50.0, 51.0, 31.5, 23.5, "radtan", (k1, 0.03, 0.001, -0.002, 0.0))
        cameras[name] = RigCamera(model, SE3(SE3.from_yaw_translation(yaw).rotation @ EGO_R_OPTICAL, position))
    return SensorRig(cameras=cameras, lidars={"roof": SE3.from_yaw_translation(0.01, [1.1, 0.0, 1.9])})


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory):
    rig = _rig()
    frames = []
    for k in range(2):
        t = T0 + k * 100_000_000
        sweep = LidarSweep("roof", t, np.random.default_rng(k).normal(0, 10, (40, 4)).astype(np.float32), ("x", "y", "z", "intensity"))
        images = {name: CameraImage(name, t, "png", _png(64, 48), 64, 48) for name in rig.cameras}
        frames.append(Frame("sim", t, rig, SE3.from_yaw_translation(0.1 * k, [k, 0.0, 0.0]), {"roof": sweep}, images))
    return write_kitti_raw(tmp_path_factory.mktemp("kitti_raw"), frames)


def _reader_rig(drive) -> SensorRig:
    with open_log(drive.drive_dir) as reader:
        return reader.load_frame(reader.list_frames()[0]).rig


def _assert_same_rig(got: SensorRig, expected: SensorRig) -> None:
    assert set(got.cameras) == set(expected.cameras)
    for name, camera in expected.cameras.items():
        model, want = got.cameras[name].model, camera.model
        assert (model.distortion_model, model.width_px, model.height_px) == (want.distortion_model, want.width_px, want.height_px), name
        np.testing.assert_allclose(model.K, want.K, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(model.distortion, want.distortion, atol=1e-12, err_msg=name)
        assert got.cameras[name].ego_SE3_camera.allclose(camera.ego_SE3_camera, atol_rad=1e-9, atol_m=1e-9), name
    assert set(got.lidars) == set(expected.lidars)


@pytest.mark.parametrize("where", ["drive", "date folder"])
def test_show_on_a_simulated_raw_drive_gives_the_rig_open_log_builds(drive, where: str, capsys: pytest.CaptureFixture) -> None:
    path = drive.drive_dir if where == "drive" else drive.calib_dir
    expected = _reader_rig(drive)
    # Three distinct radtan cameras (plus the reference 00, a copy of the front camera).
    assert {expected.cameras[f"image_{xx}"].model.distortion_model for xx in ("01", "02", "03")} == {"radtan"}
    _assert_same_rig(formats.read_any_rig(path).rig, expected)

    assert main(["calib", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "view: unrectified" in out
    for name in ("image_01", "image_02", "image_03"):
        line = next(line for line in out.splitlines() if line.strip().startswith(f"camera {name}:"))
        assert "radtan" in line, line
        translation = np.round(expected.cameras[name].ego_SE3_camera.translation, 4).tolist()
        assert f"ego translation_m={translation}" in line, line
    # What the unrectified rig ignored is listed, each key once.
    assert _ignored(out) == {f"{key}_{xx}" for key in ("S_rect", "R_rect", "P_rect") for xx in ("00", "01", "02", "03")}
    assert "R_rect_02" not in out.replace(next(line for line in out.splitlines() if "R_rect_02" in line), "", 1)


def _ignored(out: str) -> set[str]:
    """The keys on the ``ignored: KEY, KEY: reason`` lines of ``avp calib show``."""
    keys = set()
    for line in out.splitlines():
        if line.strip().startswith("ignored: "):
            keys.update(line.strip()[len("ignored: ") :].split(": ")[0].split(", "))
    return keys


def test_the_rectified_view_on_request_says_so(drive, capsys: pytest.CaptureFixture) -> None:
    assert main(["calib", "show", str(drive.drive_dir), "--kitti-view", "rectified"]) == 0
    out = capsys.readouterr().out
    assert "view: rectified" in out
    assert _ignored(out) == {f"{key}_{xx}" for key in ("S", "K", "D", "R", "T") for xx in ("00", "01", "02", "03")}
    camera_lines = [line for line in out.splitlines() if line.strip().startswith("camera ")]
    assert len(camera_lines) == 4 and all("pinhole" in line for line in camera_lines)
    rig = formats.read_any_rig(drive.drive_dir, kitti_raw_view="rectified").rig
    assert rig.cameras["image_02"].model.distortion_model == "pinhole"


def test_a_sync_drive_gets_the_rectified_view_like_open_log(drive, tmp_path: Path) -> None:
    # The same calibration files beside a *_sync drive: open_log takes the rectified images.
    date = tmp_path / "2011_09_26"
    date.mkdir()
    for source in drive.calib_dir.glob("calib_*.txt"):
        (date / source.name).write_bytes(source.read_bytes())
    (date / "2011_09_26_drive_0001_sync").mkdir()
    for path in (date / "2011_09_26_drive_0001_sync", date):
        loaded = formats.read_any_rig(path)
        assert loaded.rig.cameras["image_02"].model.distortion_model == "pinhole", path
        assert any(note.field == "camera view" and note.reason.startswith("rectified") for note in loaded.unrepresented)


def test_show_refuses_an_unknown_view(drive, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["calib", "show", str(drive.drive_dir), "--kitti-view", "sideways"])
    assert "sideways" in capsys.readouterr().err


def test_convert_to_kitti_writes_raw_calibration_files_that_read_back(drive, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kitti_calib"
    assert main(["calib", "convert", str(drive.drive_dir), str(out), "--to", "kitti"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["calib_cam_to_cam.txt", "calib_imu_to_velo.txt", "calib_velo_to_cam.txt"]
    _assert_same_rig(formats.read_any_rig(out).rig, _reader_rig(drive))
    assert "wrote" in capsys.readouterr().out


def test_convert_a_native_rig_to_kitti_keeps_every_camera(tmp_path: Path) -> None:
    rig = _rig()
    formats.write_rig(rig, tmp_path / "rig.yaml")
    assert main(["calib", "convert", str(tmp_path / "rig.yaml"), str(tmp_path / "kitti"), "--to", "kitti"]) == 0
    back = formats.read_any_rig(tmp_path / "kitti").rig
    # Cameras in rig order get KITTI numbers 02, 03, 01; ego becomes the LiDAR frame.
    roof_SE3_ego = rig.lidars["roof"].inverse()
    for name, number in (("front", "02"), ("left", "03"), ("right", "01")):
        camera = back.cameras[f"image_{number}"]
        np.testing.assert_allclose(camera.model.K, rig.cameras[name].model.K, atol=1e-12)
        expected = roof_SE3_ego.compose(rig.cameras[name].ego_SE3_camera)
        assert camera.ego_SE3_camera.allclose(expected, atol_rad=1e-9, atol_m=1e-9), name


def test_convert_to_kitti_without_a_lidar_names_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cameras_only = SensorRig(cameras=dict(_rig().cameras), lidars={})
    formats.write_rig(cameras_only, tmp_path / "rig.yaml")
    assert main(["calib", "convert", str(tmp_path / "rig.yaml"), str(tmp_path / "kitti"), "--to", "kitti"]) == 1
    assert "LiDAR" in capsys.readouterr().err


def test_convert_creates_a_missing_output_folder(drive, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "rig.yaml"
    assert main(["calib", "convert", str(drive.drive_dir), str(out)]) == 0
    _assert_same_rig(formats.read_rig(out).rig, _reader_rig(drive))


@pytest.mark.parametrize(("to", "name"), [("rig", "rig.txt"), ("opencv", "front.xml"), ("ros", "front.json")])
def test_convert_refuses_an_unknown_output_extension(drive, tmp_path: Path, capsys: pytest.CaptureFixture, to: str, name: str) -> None:
    out = tmp_path / name
    assert main(["calib", "convert", str(drive.drive_dir), str(out), "--to", to, "--camera", "image_02"]) == 1
    err = capsys.readouterr().err
    assert Path(name).suffix in err and ".yaml" in err
    assert not out.exists()


def test_convert_several_cameras_in_one_call(drive, tmp_path: Path) -> None:
    out = tmp_path / "cameras"
    assert main(["calib", "convert", str(drive.drive_dir), str(out), "--to", "opencv", "--camera", "image_02", "--camera", "image_03"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["image_02.yaml", "image_03.yaml"]
    rig = _reader_rig(drive)
    for name in ("image_02", "image_03"):
        model = formats.read_opencv_yaml(out / f"{name}.yaml").model
        np.testing.assert_allclose(model.K, rig.cameras[name].model.K, atol=1e-12)
        np.testing.assert_allclose(model.distortion, rig.cameras[name].model.distortion, atol=1e-15)

    every = tmp_path / "every"
    assert main(["calib", "convert", str(drive.drive_dir), str(every), "--to", "ros", "--camera", "all"]) == 0
    assert sorted(p.name for p in every.iterdir()) == [f"image_0{k}.yaml" for k in range(4)]
    info = formats.read_ros_camera_info(every / "image_01.yaml")
    assert info.camera_name == "image_01"


def test_convert_one_camera_of_many_needs_camera(drive, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["calib", "convert", str(drive.drive_dir), str(tmp_path / "x.yaml"), "--to", "opencv"]) == 1
    err = capsys.readouterr().err
    assert "--camera" in err and "all" in err and "image_02" in err


def test_convert_an_unknown_camera_lists_the_rig_cameras(drive, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["calib", "convert", str(drive.drive_dir), str(tmp_path / "x.yaml"), "--to", "opencv", "--camera", "image_9"]) == 1
    err = capsys.readouterr().err
    assert "image_9" in err and "image_02" in err
