"""Calibration file formats: readers and writers.

Each reader takes a path (``read_*``) or text (``parse_*``) and returns a frozen, typed
result whose ``unrepresented`` tuple lists what the file holds that the result's rig does
not carry (or what the reader ignored or changed), as :class:`Unrepresented` notes. Bad
input raises :class:`~calibration.errors.CalibrationFileError` naming the file, the field,
what was expected and what came. Writers (``format_*`` -> text, ``write_*`` -> file)
produce files the readers read back equal. See ``docs/calibration_formats.md``.

============================  ==========================================  =====================
format                        read                                        write
============================  ==========================================  =====================
KITTI object calib            :func:`read_kitti_object_calib`             :func:`write_kitti_object_calib`
KITTI raw calib (3 files)     :func:`read_kitti_raw_calib`                :func:`write_kitti_raw_calib`
nuScenes calibrated_sensor    :func:`read_nuscenes_calibrated_sensors`    :func:`write_nuscenes_calibrated_sensors`
nuScenes ego_pose             :func:`read_nuscenes_ego_poses`             :func:`write_nuscenes_ego_poses`
nuScenes tables -> rig        :func:`read_nuscenes_rig`
ROS CameraInfo YAML           :func:`read_ros_camera_info`                :func:`write_ros_camera_info`
OpenCV FileStorage YAML       :func:`read_opencv_yaml`                    :func:`write_opencv_yaml`
av-pipeline rig (YAML/JSON)   :func:`read_rig`                            :func:`write_rig`
PJLab SensorsCalibration txt  :func:`read_pjlab_calib_txt`                :func:`write_pjlab_calib_txt`
============================  ==========================================  =====================

The YAML formats need PyYAML (imported when used); the rest needs numpy only.
"""

from calibration.formats._common import Unrepresented
from calibration.formats.detect import RIG_FORMATS, AnyRig, detect_format, read_any_rig
from calibration.formats.kitti_object import (
    KITTI_CAMERAS,
    KITTI_LIDAR,
    KittiObjectCalib,
    format_kitti_object_calib,
    parse_kitti_object_calib,
    read_kitti_object_calib,
    write_kitti_object_calib,
)
from calibration.formats.kitti_raw import (
    KITTI_RAW_VIEWS,
    KittiRawCalib,
    KittiRawCamera,
    KittiRawCamToCam,
    KittiRawImuToVelo,
    KittiRawVeloToCam,
    format_kitti_raw_cam_to_cam,
    format_kitti_raw_imu_to_velo,
    format_kitti_raw_velo_to_cam,
    kitti_raw_view_for,
    parse_kitti_raw_cam_to_cam,
    parse_kitti_raw_imu_to_velo,
    parse_kitti_raw_velo_to_cam,
    read_kitti_raw_calib,
    read_kitti_raw_cam_to_cam,
    read_kitti_raw_imu_to_velo,
    read_kitti_raw_velo_to_cam,
    write_kitti_raw_calib,
)
from calibration.formats.native_rig import NativeRig, format_rig, parse_rig, read_rig, write_rig
from calibration.formats.nuscenes import (
    NuScenesCalibratedSensor,
    NuScenesEgoPose,
    NuScenesRig,
    NuScenesTable,
    format_nuscenes_calibrated_sensors,
    format_nuscenes_ego_poses,
    parse_nuscenes_calibrated_sensors,
    parse_nuscenes_ego_poses,
    read_nuscenes_calibrated_sensors,
    read_nuscenes_ego_poses,
    read_nuscenes_rig,
    write_nuscenes_calibrated_sensors,
    write_nuscenes_ego_poses,
)
from calibration.formats.opencv_yaml import (
    OpenCvCameraCalib,
    format_opencv_yaml,
    parse_opencv_yaml,
    read_opencv_yaml,
    write_opencv_yaml,
)
from calibration.formats.pjlab import (
    PjlabCalib,
    format_pjlab_calib_txt,
    parse_pjlab_calib_txt,
    read_pjlab_calib_txt,
    write_pjlab_calib_txt,
)
from calibration.formats.ros_camera_info import (
    RosCameraInfo,
    format_ros_camera_info,
    parse_ros_camera_info,
    read_ros_camera_info,
    write_ros_camera_info,
)

__all__ = [
    "AnyRig",
    "RIG_FORMATS",
    "detect_format",
    "read_any_rig",
    "KITTI_CAMERAS",
    "KITTI_LIDAR",
    "KITTI_RAW_VIEWS",
    "KittiObjectCalib",
    "KittiRawCalib",
    "KittiRawCamToCam",
    "KittiRawCamera",
    "KittiRawImuToVelo",
    "KittiRawVeloToCam",
    "NativeRig",
    "NuScenesCalibratedSensor",
    "NuScenesEgoPose",
    "NuScenesRig",
    "NuScenesTable",
    "OpenCvCameraCalib",
    "PjlabCalib",
    "RosCameraInfo",
    "Unrepresented",
    "format_kitti_object_calib",
    "format_kitti_raw_cam_to_cam",
    "format_kitti_raw_imu_to_velo",
    "format_kitti_raw_velo_to_cam",
    "format_nuscenes_calibrated_sensors",
    "format_nuscenes_ego_poses",
    "format_opencv_yaml",
    "format_pjlab_calib_txt",
    "format_rig",
    "kitti_raw_view_for",
    "format_ros_camera_info",
    "parse_kitti_object_calib",
    "parse_kitti_raw_cam_to_cam",
    "parse_kitti_raw_imu_to_velo",
    "parse_kitti_raw_velo_to_cam",
    "parse_nuscenes_calibrated_sensors",
    "parse_nuscenes_ego_poses",
    "parse_opencv_yaml",
    "parse_pjlab_calib_txt",
    "parse_rig",
    "parse_ros_camera_info",
    "read_kitti_object_calib",
    "read_kitti_raw_calib",
    "read_kitti_raw_cam_to_cam",
    "read_kitti_raw_imu_to_velo",
    "read_kitti_raw_velo_to_cam",
    "read_nuscenes_calibrated_sensors",
    "read_nuscenes_ego_poses",
    "read_nuscenes_rig",
    "read_opencv_yaml",
    "read_pjlab_calib_txt",
    "read_rig",
    "read_ros_camera_info",
    "write_kitti_object_calib",
    "write_kitti_raw_calib",
    "write_nuscenes_calibrated_sensors",
    "write_nuscenes_ego_poses",
    "write_opencv_yaml",
    "write_pjlab_calib_txt",
    "write_rig",
    "write_ros_camera_info",
]
