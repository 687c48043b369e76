"""The core install (``pip install av-pipeline``, no extras) is the calibration API alone.

A fresh virtual environment gets a plain ``pip install`` of a copy of this source tree; then,
from outside the tree, it must import ``calibration``, read every calibration format (the real
samples in ../shared/data where there is one, files written by the writers otherwise) and run
``avp calib show``, without torch, Apache Beam, open3d or numba installed.

Slow (it creates a virtual environment and installs into it); skipped with the reason when
the package index cannot be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: Distributions the core install may bring (normalised names), besides pip and setuptools.
CORE_DISTRIBUTIONS = {"av-pipeline", "numpy", "pyquaternion", "pyyaml"}
#: What the core install must not pull: the heavy parts live in extras.
HEAVY = {"torch", "apache-beam", "open3d", "numba", "spconv", "scipy", "pyarrow", "matplotlib"}

#: Run inside the core venv: read every calibration format, print what was read as JSON.
READ_EVERY_FORMAT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import calibration
    from calibration import SE3, CameraModel, RigCamera, SensorRig, formats

    shared, out = Path(sys.argv[1]), Path(sys.argv[2])
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    model = CameraModel(640, 480, 500.0, 501.0, 319.5, 239.5, "radtan", (-0.1, 0.01, 0.001, 0.0005, 0.0))
    rig = SensorRig(cameras={"front": RigCamera(model, SE3(optical, [1.5, 0.0, 1.4]))}, lidars={"top": SE3.identity()})
    formats.write_rig(rig, out / "rig.yaml")
    formats.write_rig(rig, out / "rig.json")
    formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, "front"), out / "front_info.yaml")
    formats.write_opencv_yaml(model, out / "front_opencv.yaml")
    formats.write_kitti_raw_calib(formats.KittiRawCalib.from_rig(rig), out / "2011_09_26")
    tables = shared / "lyft_nuscenes_schema" / "tables"
    sensors = formats.read_nuscenes_calibrated_sensors(tables / "calibrated_sensor.json").records.values()
    formats.write_nuscenes_calibrated_sensors(list(sensors), out / "calibrated_sensor.json")
    paths = {
        "kitti_object": shared / "kitti" / "training" / "calib" / "000001.txt",
        "kitti_raw": out / "2011_09_26",
        "nuscenes": shared / "lyft_nuscenes_schema" / "tables",
        "pjlab": shared / "pjlab_lidar_camera" / "calib.txt",
        "rig": out / "rig.yaml",
        "rig_json": out / "rig.json",
        "ros_camera_info": out / "front_info.yaml",
        "opencv_yaml": out / "front_opencv.yaml",
    }
    read = {}
    for name, path in paths.items():
        loaded = formats.read_any_rig(path)
        read[name] = {"format": loaded.format, "cameras": sorted(loaded.rig.cameras), "lidars": sorted(loaded.rig.lidars)}
    read["nuscenes_calibrated_sensor"] = len(formats.read_nuscenes_calibrated_sensors(out / "calibrated_sensor.json").records)
    read["nuscenes_ego_pose"] = len(formats.read_nuscenes_ego_poses(tables / "ego_pose.json").records)
    projected = rig.project_lidar_points(np.array([[10.0, 0.5, 0.0]]))["front"].uv_px[0]
    print(json.dumps({"calibration_file": calibration.__file__, "read": read, "projected_px": np.asarray(projected).tolist(),
                      "modules": sorted(m.split(".")[0] for m in sys.modules)}))
    """
)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _run(args: list[str], *, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_source(destination: Path) -> None:
    """The files a build of the package reads, so building never writes into the working tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, destination / name)
    for package in ("calibration", "av_pipeline", "beam_jobs"):
        shutil.copytree(REPO_ROOT / package, destination / package, ignore=ignore)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("core_install")
    probe = _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d", str(work / "probe"), "pyquaternion"],
        cwd=work,
        timeout=180,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"the package index is not reachable, so a fresh venv cannot be installed: {last}")
    venv = work / "venv-core"
    created = _run([sys.executable, "-m", "venv", str(venv)], cwd=work, timeout=300)
    assert created.returncode == 0, created.stderr
    source = work / "src"
    source.mkdir()
    _copy_source(source)
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir", str(source)], cwd=work, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


def test_core_install_pulls_only_numpy_pyquaternion_and_pyyaml(core_venv: Path) -> None:
    listed = _run([str(core_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], cwd=core_venv, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = {_normalise(d["name"]) for d in json.loads(listed.stdout)} - {"pip", "setuptools", "wheel"}
    assert names == CORE_DISTRIBUTIONS
    assert not names & HEAVY


def test_core_install_reads_every_calibration_format(core_venv: Path, shared_data: Path, tmp_path: Path) -> None:
    script = tmp_path / "read_every_format.py"
    script.write_text(READ_EVERY_FORMAT)
    done = _run([str(core_venv / "bin" / "python"), str(script), str(shared_data), str(tmp_path)], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert Path(result["calibration_file"]).is_relative_to(core_venv)  # the installed copy, not the working tree
    read = result["read"]
    assert {name: entry["format"] for name, entry in read.items() if isinstance(entry, dict)} == {
        "kitti_object": "kitti_object",
        "kitti_raw": "kitti_raw",
        "nuscenes": "nuscenes",
        "pjlab": "pjlab",
        "rig": "rig",
        "rig_json": "rig",
        "ros_camera_info": "ros_camera_info",
        "opencv_yaml": "opencv_yaml",
    }
    assert read["kitti_object"]["cameras"] == ["image_0", "image_1", "image_2", "image_3"]
    assert read["kitti_raw"]["cameras"] == ["image_00", "image_02"] and read["kitti_raw"]["lidars"] == ["velodyne"]
    assert read["rig"]["cameras"] == ["front"] and read["rig"]["lidars"] == ["top"]
    assert len(read["nuscenes"]["cameras"]) >= 1 and read["nuscenes_calibrated_sensor"] >= 1 and read["nuscenes_ego_pose"] >= 1
    # A LiDAR point 10 m ahead lands in the image, left of and below the centre (the camera
    # sits 1.4 m above the LiDAR, the point 0.5 m left): the geometry works, not only parsing.
    u, v = result["projected_px"]
    assert 250 < u < 319.5 and 239.5 < v < 330
    assert not set(result["modules"]) & {"torch", "apache_beam", "open3d", "numba", "scipy", "cv2", "av_pipeline"}


def test_core_install_runs_avp_calib_show(core_venv: Path, shared_data: Path, tmp_path: Path) -> None:
    calib = shared_data / "kitti" / "training" / "calib" / "000001.txt"
    shown = _run([str(core_venv / "bin" / "avp"), "calib", "show", str(calib)], cwd=tmp_path, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "kitti_object" in shown.stdout and "camera image_2: 1242x375" in shown.stdout


def test_core_install_names_the_extra_a_command_needs(core_venv: Path, tmp_path: Path) -> None:
    for argv, extra in ((["ingest", str(tmp_path), "--out", str(tmp_path / "out")], "beam"), (["train", "--out", str(tmp_path / "t")], "detect,synthetic")):
        done = _run([str(core_venv / "bin" / "avp"), *argv], cwd=tmp_path, timeout=300)
        assert done.returncode == 1, (argv, done.stderr[-2000:])
        assert f'pip install "av-pipeline[{extra}]"' in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
