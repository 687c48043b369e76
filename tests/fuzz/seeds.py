"""Valid, small seed inputs for every reader and calibration format the fuzz suite mutates.

Each seed is a folder written by the product's own writers (or by hand, following the
format) from a few synthetic frames, so the suite needs no large committed files. Where
``../shared/data`` is present, its small text files (the KITTI calib and label of sample
000001, the PJLab calib.txt) are used as they are.

A :class:`Seed` says which path to open, how (a reader name or a calibration reader), and
which of its files may be mutated and how (``binary``, ``text``, ``json``, ``yaml``, ``pcd``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.records import CameraImage, Frame, LidarSweep, OnboardPerception
from calibration import SE3, CameraModel, RigCamera, SensorRig

T0 = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class Seed:
    """One valid input and how to mutate it.

    Attributes:
        target: the fuzz target's name (one per reader / calibration format).
        kind: ``"reader"`` (open with :func:`open_log`) or ``"calib"`` (a calibration reader).
        entry: path of the log / calibration file, relative to the seed folder.
        opener: the reader name (``"mcap"``) or calibration format (``"opencv_yaml"``).
        files: mutable files relative to the seed folder -> mutation family.
    """

    target: str
    kind: str
    entry: str
    opener: str
    files: dict[str, str] = field(default_factory=dict)


def png_bytes(width: int, height: int, value: int = 80) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = (np.arange(width * height * 3).reshape(height, width, 3) * 7 + value).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _rig() -> SensorRig:
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    front = RigCamera(CameraModel(32, 24, 25.0, 25.0, 15.5, 11.5, "radtan", (-0.1, 0.02, 0.001, -0.001, 0.0)), SE3(optical, [1.5, 0.0, 1.4]))
    return SensorRig(cameras={"front": front}, lidars={"roof": SE3.from_yaw_translation(0.02, [1.0, 0.1, 1.8])})


def synthetic_frames(count: int = 3, num_points: int = 60) -> list[Frame]:
    """``count`` small frames (one LiDAR, one 32x24 camera, a pose, onboard boxes), 100 ms apart."""
    rig = _rig()
    rng = np.random.default_rng(0)
    frames = []
    for k in range(count):
        t = T0 + k * 100_000_000
        points = rng.normal(0.0, 10.0, (num_points, 4)).astype(np.float32)
        offsets = np.linspace(-40e6, 40e6, num_points).astype(np.int64)
        sweep = LidarSweep("roof", t, points, ("x", "y", "z", "intensity"), offsets)
        image = CameraImage("front", t + 1_000_000, "png", png_bytes(32, 24, 30 * k), 32, 24)
        pose = SE3.from_yaw_translation(0.3 + 0.05 * k, [100.0 + 1.2 * k, -50.0, 2.0])
        boxes = Cuboids.from_arrays(
            "ego", [[5.0 + k, 1.0, 0.5], [-8.0, 3.0, 0.6]], [[4.0, 1.8, 1.5], [0.8, 0.8, 1.8]], [0.1, -0.5], ["car", "pedestrian"], [0.9, 0.7], [3, 8], [12, 4]
        )
        frames.append(Frame("seed", t, rig, pose, {"roof": sweep}, {"front": image}, onboard=OnboardPerception(boxes)))
    return frames


# ---------------------------------------------------------------------- readers
def _pcd(root: Path, data: str) -> Seed:
    from av_pipeline.readers.pcd import write_pcd

    rng = np.random.default_rng(1)
    n = 40
    columns = ["x", "y", "z", "intensity", "ring", "timestamp"]
    arrays = [
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        rng.uniform(0, 255, n).astype(np.uint8),
        rng.integers(0, 64, n).astype(np.uint16),
        1_700_000_000.0 + np.linspace(0.0, 0.1, n),
    ]
    write_pcd(root / "cloud.pcd", columns, arrays, data=data)
    return Seed(f"pcd_{data}", "reader", "cloud.pcd", "pcd", {"cloud.pcd": "pcd"})


def _kitti_object(root: Path, shared: Path | None) -> Seed:
    from calibration.formats import format_kitti_object_calib, parse_kitti_object_calib

    split = root / "training"
    for folder in ("velodyne", "image_2", "calib", "label_2"):
        (split / folder).mkdir(parents=True)
    calib_text = label_text = None
    if shared is not None and (shared / "kitti" / "training" / "calib" / "000001.txt").is_file():
        calib_text = (shared / "kitti" / "training" / "calib" / "000001.txt").read_text()
        label_text = (shared / "kitti" / "training" / "label_2" / "000001.txt").read_text()
    if calib_text is None:
        calib_text = format_kitti_object_calib(
            parse_kitti_object_calib(
                "P0: 700 0 600 0 0 700 180 0 0 0 1 0\nP1: 700 0 600 -380 0 700 180 0 0 0 1 0\n"
                "P2: 700 0 600 45 0 700 180 0.2 0 0 1 0.003\nP3: 700 0 600 -340 0 700 180 2.2 0 0 1 0.003\n"
                "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27\n"
            )
        )
        label_text = "Car 0.00 0 -1.57 600.0 150.0 700.0 250.0 1.50 1.60 3.90 1.00 1.60 10.00 -1.57\nDontCare -1 -1 -10 5 5 20 20 -1 -1 -1 -1000 -1000 -1000 -10\n"
    rng = np.random.default_rng(2)
    for sample in ("000001", "000002"):
        points = rng.normal(0.0, 8.0, (300, 4)).astype(np.float32)
        points.tofile(split / "velodyne" / f"{sample}.bin")
        (split / "image_2" / f"{sample}.png").write_bytes(png_bytes(48, 16))
        (split / "calib" / f"{sample}.txt").write_text(calib_text)
        (split / "label_2" / f"{sample}.txt").write_text(label_text)
    files = {"training/velodyne/000001.bin": "binary", "training/image_2/000001.png": "binary"}
    files.update({"training/calib/000001.txt": "text", "training/label_2/000001.txt": "text", "training/velodyne": "dir"})
    return Seed("kitti_object", "reader", "training", "kitti_object", files)


def _kitti_raw(root: Path) -> Seed:
    from av_pipeline.writers.kitti_raw import write_kitti_raw

    drive = write_kitti_raw(root, synthetic_frames(3), date="2023_11_14", drive_number=7)
    rel = drive.drive_dir.relative_to(root)
    date = rel.parent
    files = {
        f"{rel}/velodyne_points/timestamps.txt": "text",
        f"{rel}/velodyne_points/data/0000000001.bin": "binary",
        f"{rel}/oxts/timestamps.txt": "text",
        f"{rel}/oxts/data/0000000000.txt": "text",
        f"{date}/calib_cam_to_cam.txt": "text",
        f"{date}/calib_velo_to_cam.txt": "text",
        f"{date}/calib_imu_to_velo.txt": "text",
        f"{rel}/velodyne_points/data": "dir",
    }
    images = sorted((drive.drive_dir).glob("image_0*/data/0000000000.png"))
    if images:
        files[str(images[0].relative_to(root))] = "binary"
        files[str((images[0].parent.parent / "timestamps.txt").relative_to(root))] = "text"
    return Seed("kitti_raw", "reader", str(rel), "kitti_raw", files)


def nuscenes_tables(num_samples: int = 2) -> tuple[dict[str, list[dict]], dict[str, bytes]]:
    """Minimal nuScenes-schema tables and the files they name (one LIDAR_TOP, one camera)."""
    rng = np.random.default_rng(3)
    tables: dict[str, list[dict]] = {
        "sensor": [{"token": "s_lidar", "channel": "LIDAR_TOP", "modality": "lidar"}, {"token": "s_cam", "channel": "CAM_FRONT", "modality": "camera"}],
        "calibrated_sensor": [
            {"token": "cs_lidar", "sensor_token": "s_lidar", "translation": [0.9, 0.0, 1.8], "rotation": [1.0, 0.0, 0.0, 0.0], "camera_intrinsic": []},
            {
                "token": "cs_cam",
                "sensor_token": "s_cam",
                "translation": [1.7, 0.0, 1.5],
                "rotation": [0.5, -0.5, 0.5, -0.5],
                "camera_intrinsic": [[20.0, 0.0, 16.0], [0.0, 20.0, 12.0], [0.0, 0.0, 1.0]],
            },
        ],
        "scene": [{"token": "scene_a", "name": "scene-0001", "log_token": "log_a", "nbr_samples": num_samples}],
        "sample": [],
        "sample_data": [],
        "ego_pose": [],
        "sample_annotation": [],
        "instance": [{"token": "inst_a", "category_token": "cat_car", "nbr_annotations": num_samples}],
        "category": [{"token": "cat_car", "name": "vehicle.car", "description": ""}],
    }
    files: dict[str, bytes] = {}
    for k in range(num_samples):
        t_us = 1_532_402_927_647_951 + 500_000 * k
        tables["sample"].append({"token": f"sample_{k}", "timestamp": t_us, "scene_token": "scene_a", "prev": "", "next": ""})
        tables["ego_pose"].append({"token": f"ego_{k}", "timestamp": t_us, "rotation": [1.0, 0.0, 0.0, 0.0], "translation": [400.0 + k, 1100.0, 0.0]})
        tables["ego_pose"].append({"token": f"ego_cam_{k}", "timestamp": t_us + 10, "rotation": [1.0, 0.0, 0.0, 0.0], "translation": [400.0 + k, 1100.0, 0.0]})
        lidar_name = f"samples/LIDAR_TOP/n0__LIDAR_TOP__{t_us}.pcd.bin"
        cam_name = f"samples/CAM_FRONT/n0__CAM_FRONT__{t_us + 10}.jpg"
        files[lidar_name] = rng.normal(0.0, 6.0, (80, 5)).astype(np.float32).tobytes()
        files[cam_name] = jpeg_bytes(32, 24)
        tables["sample_data"].append(
            {"token": f"sd_lidar_{k}", "sample_token": f"sample_{k}", "ego_pose_token": f"ego_{k}", "calibrated_sensor_token": "cs_lidar",
             "timestamp": t_us, "fileformat": "pcd", "is_key_frame": True, "height": 0, "width": 0, "filename": lidar_name, "prev": "", "next": ""}
        )  # fmt: skip
        tables["sample_data"].append(
            {"token": f"sd_cam_{k}", "sample_token": f"sample_{k}", "ego_pose_token": f"ego_cam_{k}", "calibrated_sensor_token": "cs_cam",
             "timestamp": t_us + 10, "fileformat": "jpg", "is_key_frame": True, "height": 24, "width": 32, "filename": cam_name, "prev": "", "next": ""}
        )  # fmt: skip
        tables["sample_annotation"].append(
            {"token": f"ann_{k}", "sample_token": f"sample_{k}", "instance_token": "inst_a", "translation": [405.0 + k, 1101.0, 1.0],
             "size": [1.8, 4.2, 1.5], "rotation": [1.0, 0.0, 0.0, 0.0], "num_lidar_pts": 3, "num_radar_pts": 0, "visibility_token": "4",
             "attribute_tokens": [], "prev": "", "next": ""}
        )  # fmt: skip
    return tables, files


def write_nuscenes_root(root: Path, tables: dict[str, list[dict]], files: dict[str, bytes]) -> Path:
    """Write a data root ``root`` with ``v1.0-mini/<table>.json`` and the files; return ``root``."""
    (root / "v1.0-mini").mkdir(parents=True)
    for name, rows in tables.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows, indent=1))
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _nuscenes(root: Path) -> Seed:
    tables, files = nuscenes_tables()
    write_nuscenes_root(root / "nusc", tables, files)
    mutable = {f"nusc/v1.0-mini/{name}.json": "json" for name in tables}
    mutable[f"nusc/{next(iter(files))}"] = "binary"
    return Seed("nuscenes", "reader", "nusc", "nuscenes", mutable)


def _mcap(root: Path, flavour: str) -> Seed:
    from av_pipeline.writers import write_foxglove_mcap, write_ros2_mcap

    writer = write_foxglove_mcap if flavour == "foxglove" else write_ros2_mcap
    writer(root / "drive.mcap", synthetic_frames(3), chunk_size=4096)
    return Seed(f"mcap_{flavour}", "reader", "drive.mcap", "mcap", {"drive.mcap": "binary"})


def _rosbag(root: Path) -> Seed:
    from av_pipeline.writers import write_rosbag

    write_rosbag(root / "drive.bag", synthetic_frames(3), ros_version=1)
    return Seed("rosbag1", "reader", "drive.bag", "rosbag", {"drive.bag": "binary"})


# ---------------------------------------------------------------------- calibration formats
def _calib_files(root: Path, shared: Path | None) -> list[Seed]:
    from calibration import formats

    rig = _rig()
    model = rig.cameras["front"].model
    seeds = []
    (root / "rig.yaml").write_text(formats.format_rig(rig, fmt="yaml", description="fuzz seed"))
    seeds.append(Seed("calib_rig_yaml", "calib", "rig.yaml", "rig", {"rig.yaml": "yaml"}))
    (root / "rig.json").write_text(formats.format_rig(rig, fmt="json"))
    seeds.append(Seed("calib_rig_json", "calib", "rig.json", "rig", {"rig.json": "json"}))
    (root / "opencv.yaml").write_text(formats.format_opencv_yaml(model))
    seeds.append(Seed("calib_opencv_yaml", "calib", "opencv.yaml", "opencv_yaml", {"opencv.yaml": "yaml"}))
    (root / "camera_info.yaml").write_text(formats.format_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, "front")))
    seeds.append(Seed("calib_ros_camera_info", "calib", "camera_info.yaml", "ros_camera_info", {"camera_info.yaml": "yaml"}))
    pjlab = shared / "pjlab_lidar_camera" / "calib.txt" if shared is not None else None
    if pjlab is not None and pjlab.is_file():
        (root / "pjlab.txt").write_text(pjlab.read_text())
    else:
        (root / "pjlab.txt").write_text("K: 1000 0 960 0 1000 600 0 0 1\nD: -0.1 0.01 0 0 0\nT: 0 -1 0 0 0 0 -1 0 1 0 0 0 0 0 0 1\n")
    seeds.append(Seed("calib_pjlab", "calib", "pjlab.txt", "pjlab", {"pjlab.txt": "text"}))
    kitti = _kitti_object(root / "kitti_calib", shared)
    seeds.append(Seed("calib_kitti_object", "calib", "kitti_calib/training/calib/000001.txt", "kitti_object", {"kitti_calib/training/calib/000001.txt": "text"}))
    raw = _kitti_raw(root / "kitti_raw_calib")
    date = Path(raw.entry).parent
    raw_files = {f"kitti_raw_calib/{path}": family for path, family in raw.files.items() if path.startswith(str(date) + "/calib_")}
    seeds.append(Seed("calib_kitti_raw", "calib", f"kitti_raw_calib/{date}", "kitti_raw", raw_files))
    tables, files = nuscenes_tables(1)
    write_nuscenes_root(root / "nusc_calib", tables, files)
    seeds.append(
        Seed(
            "calib_nuscenes",
            "calib",
            "nusc_calib/v1.0-mini",
            "nuscenes",
            {f"nusc_calib/v1.0-mini/{name}.json": "json" for name in ("calibrated_sensor", "ego_pose", "sample", "sample_data", "sensor")},
        )
    )
    del kitti
    return seeds


def build_seeds(root: Path, shared: Path | None) -> dict[str, tuple[Path, Seed]]:
    """Write every seed under ``root/<target>/``; return target -> (seed folder, seed)."""
    out: dict[str, tuple[Path, Seed]] = {}

    def add(folder: Path, seed: Seed) -> None:
        out[seed.target] = (folder, seed)

    builders = {
        "pcd_binary_compressed": lambda d: _pcd(d, "binary_compressed"),
        "pcd_binary": lambda d: _pcd(d, "binary"),
        "pcd_ascii": lambda d: _pcd(d, "ascii"),
        "kitti_object": lambda d: _kitti_object(d, shared),
        "kitti_raw": _kitti_raw,
        "nuscenes": _nuscenes,
        "mcap_foxglove": lambda d: _mcap(d, "foxglove"),
        "mcap_ros2": lambda d: _mcap(d, "ros2"),
        "rosbag1": _rosbag,
    }
    for target, build in builders.items():
        folder = root / target
        folder.mkdir(parents=True)
        add(folder, build(folder))
    calib_root = root / "calib"
    calib_root.mkdir()
    for seed in _calib_files(calib_root, shared):
        add(calib_root, seed)
    return out
