"""The synthetic vehicle's sensor rig, built with the calibration API.

``ego`` is the vehicle frame (origin on the ground below the rear axle; x forward, y left,
z up). The LiDAR frame has the ego's axes, shifted to the mount point; cameras have the
optical axes (x right, y down, z forward), turned by their yaw and pitched down.
"""

from __future__ import annotations

import numpy as np

from av_pipeline.synthetic.config import CameraConfig, SimulationConfig
from calibration import SE3, CameraModel, RigCamera, SensorRig

#: ego axes of the optical frame of a camera looking straight ahead (columns: camera x, y, z).
_EGO_R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_model(camera: CameraConfig) -> CameraModel:
    """Intrinsics: square pixels, principal point at the image centre, radtan distortion."""
    f = (camera.width_px / 2.0) / np.tan(np.deg2rad(camera.hfov_deg) / 2.0)
    return CameraModel(
        camera.width_px, camera.height_px, f, f, (camera.width_px - 1) / 2.0, (camera.height_px - 1) / 2.0, "radtan", tuple(camera.distortion)
    )


def ego_SE3_camera(camera: CameraConfig) -> SE3:
    """Extrinsics: yaw about ego +z, then pitch the optical axis down by ``pitch_deg``."""
    yaw, pitch = np.deg2rad(camera.yaw_deg), np.deg2rad(camera.pitch_deg)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(pitch), 0.0, np.sin(pitch)], [0.0, 1.0, 0.0], [-np.sin(pitch), 0.0, np.cos(pitch)]])
    return SE3.from_rotation_matrix(rz @ ry @ _EGO_R_OPTICAL, np.asarray(camera.mount_xyz_m, dtype=np.float64))


def build_rig(config: SimulationConfig) -> SensorRig:
    """The rig: every configured camera and the LiDAR."""
    cameras = {c.name: RigCamera(camera_model(c), ego_SE3_camera(c)) for c in config.cameras}
    lidars = {config.lidar.name: SE3.from_yaw_translation(0.0, config.lidar.mount_xyz_m)}
    return SensorRig(cameras=cameras, lidars=lidars)
