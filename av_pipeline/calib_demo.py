"""The calibration demo behind ``avp demo``: a bundled rig, a ray-cast scene, projections,
a drift check and format conversions, all written to one output folder.

Later pipeline stages (ingest, fusion, mining) join this demo as they land.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from calibration import SE3, ProjectionStatus, SensorRig

log = logging.getLogger(__name__)

#: The rig shipped with the package (av-pipeline rig file).
DEMO_RIG = "demo_rig.yaml"
#: The demo's simulated calibration drift: a pan (rotation about the camera's y axis).
DRIFT_PAN_DEG = 1.0


def demo_rig_path() -> Path:
    """Path of the bundled demo rig file."""
    return Path(str(resources.files("av_pipeline") / "data" / DEMO_RIG))


@dataclass(frozen=True)
class CameraReport:
    """What the demo measured for one camera."""

    camera: str
    visible: int
    behind: int
    outside_image: int
    outside_valid_region: int
    surface_agreement_m: float
    drift_fraction_better_true: float
    drift_fraction_better_panned: float


def _overlay(image: np.ndarray, uv_px: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """Draw points (2x2 px) coloured by depth (near red -> far blue) onto a copy of ``image``."""
    out = image.copy()
    t = np.clip(np.log(depth_m) / np.log(60.0), 0, 1)
    colour = np.stack([255 * (1 - t), 255 * (1 - np.abs(2 * t - 1)), 255 * t], axis=1).astype(np.uint8)
    cols = np.round(uv_px[:, 0]).astype(int)
    rows = np.round(uv_px[:, 1]).astype(int)
    for dr in (0, 1):
        for dc in (0, 1):
            r = np.clip(rows + dr, 0, out.shape[0] - 1)
            c = np.clip(cols + dc, 0, out.shape[1] - 1)
            out[r, c] = colour
    return out


def _surface_agreement_m(rig: SensorRig, camera: str, scene, points_lidar: np.ndarray, lidar: str, projection) -> float:
    """Median |range the camera ray hits - range of the LiDAR point| over visible points, metres.

    Each visible LiDAR point's pixel is unprojected to a ray that is cast into the scene; if
    the rig's extrinsics and camera model are consistent, the ray hits the surface the LiDAR
    point lies on (differences: LiDAR range noise, and parallax occlusions at edges).
    """
    cam = rig.cameras[camera]
    valid = np.flatnonzero(projection.valid)[::25]
    if valid.size == 0:
        return float("nan")
    rays_cam = cam.model.unproject(projection.uv_px[valid], np.ones(len(valid)))
    ok = np.isfinite(rays_cam).all(axis=1)
    dirs = cam.ego_SE3_camera.rotate_vectors(rays_cam[ok])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.tile(cam.ego_SE3_camera.translation, (len(dirs), 1))
    t_hit, _, _ = scene.cast(origins, dirs)
    camera_SE3_lidar = cam.ego_SE3_camera.inverse().compose(rig.lidars[lidar])
    point_range = np.linalg.norm(camera_SE3_lidar.transform_points(points_lidar[valid[ok]].astype(np.float64)), axis=1)
    return float(np.median(np.abs(t_hit - point_range)))


def run_calibration_demo(out_dir: Path, rig_path: Path | None = None) -> dict:
    """Run the demo and write its outputs to ``out_dir``.

    For each camera it also runs the targetless drift check (LiDAR depth/reflectance edges
    against image edges) on the calibrated extrinsic and on one panned by
    :data:`DRIFT_PAN_DEG`.

    Writes: ``scene_<camera>.png`` (rendered), ``lidar_on_<camera>.png`` (LiDAR points
    projected through the rig, coloured by depth), ``rig.json`` / ``<camera>_ros.yaml`` /
    ``<camera>_opencv.yaml`` (format conversions), ``summary.json``.

    Returns:
        the summary dictionary (also written to ``summary.json``).
    """
    from PIL import Image

    from av_pipeline.demo_scene import DemoScene
    from calibration import formats

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rig_path = rig_path or demo_rig_path()
    loaded = formats.read_any_rig(rig_path)
    rig = loaded.rig
    print(f"rig {rig_path.name}: cameras {list(rig.camera_names)}, lidars {list(rig.lidar_names)}")

    scene = DemoScene.default()
    lidar = rig.lidar_names[0]
    sweep = scene.lidar_sweep(rig.lidars[lidar])
    print(f"ray-cast {len(sweep):,} LiDAR points from '{lidar}'")
    projections = rig.project_lidar_points(sweep[:, :3], lidar=lidar)

    from calibration import EdgeMap, LidarEdges, calibration_drift_check

    lidar_edges = LidarEdges.from_points(sweep[:, :3], ring=sweep[:, 4].astype(np.int64), intensity=sweep[:, 3])
    pan = np.deg2rad(DRIFT_PAN_DEG)
    camera_drift = SE3(np.array([[np.cos(pan), 0, np.sin(pan)], [0, 1, 0], [-np.sin(pan), 0, np.cos(pan)]]), [0, 0, 0])
    reports = []
    for camera in rig.camera_names:
        image = scene.render(rig.cameras[camera])
        Image.fromarray(image).save(out_dir / f"scene_{camera}.png")
        proj = projections[camera]
        valid = proj.valid
        Image.fromarray(_overlay(image, proj.uv_px[valid], proj.depth_m[valid])).save(out_dir / f"lidar_on_{camera}.png")
        counts = np.bincount(proj.status, minlength=len(ProjectionStatus))
        edge_map = EdgeMap.from_image(image)
        camera_SE3_lidar = rig.cameras[camera].ego_SE3_camera.inverse().compose(rig.lidars[lidar])
        model = rig.cameras[camera].model
        check_true = calibration_drift_check(edge_map, lidar_edges, model, camera_SE3_lidar)
        check_panned = calibration_drift_check(edge_map, lidar_edges, model, camera_drift.compose(camera_SE3_lidar))
        report = CameraReport(
            camera,
            int(counts[ProjectionStatus.VISIBLE]),
            int(counts[ProjectionStatus.BEHIND_CAMERA]),
            int(counts[ProjectionStatus.OUTSIDE_IMAGE]),
            int(counts[ProjectionStatus.OUTSIDE_VALID_REGION]),
            _surface_agreement_m(rig, camera, scene, sweep[:, :3], lidar, proj),
            check_true.fraction_better,
            check_panned.fraction_better,
        )
        reports.append(report)
        print(
            f"  {camera:>13}: {report.visible:7,} visible, {report.behind:7,} behind, "
            f"{report.outside_image:6,} outside image, {report.outside_valid_region:6,} outside valid region; "
            f"camera ray vs LiDAR range: median {100 * report.surface_agreement_m:.2f} cm"
        )
        print(
            f"  {'':>13}  drift check: as calibrated {'DRIFTED' if check_true.drifted else 'ok'} "
            f"({100 * check_true.fraction_better:.0f}% of {len(check_true.perturbation_scores)} perturbations score higher); "
            f"panned {DRIFT_PAN_DEG:g} deg {'DRIFTED' if check_panned.drifted else 'not flagged'} "
            f"({100 * check_panned.fraction_better:.0f}%)"
        )

    formats.write_rig(rig, out_dir / "rig.json")
    for camera in rig.camera_names:
        model = rig.cameras[camera].model
        formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, camera), out_dir / f"{camera}_ros.yaml")
        formats.write_opencv_yaml(model, out_dir / f"{camera}_opencv.yaml")
    again = formats.read_rig(out_dir / "rig.json").rig
    round_trip = max(
        float(np.abs(again.cameras[c].ego_SE3_camera.as_matrix() - rig.cameras[c].ego_SE3_camera.as_matrix()).max())
        for c in rig.camera_names
    )
    print(f"wrote rig.json, ROS CameraInfo and OpenCV YAML per camera; rig.json round trip max |dT| = {round_trip:.1e}")

    summary = {
        "rig": str(rig_path),
        "lidar_points": int(len(sweep)),
        "cameras": [report.__dict__ for report in reports],
        "rig_round_trip_max_abs": round_trip,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
