"""Sensor rigs: named cameras and LiDARs with their extrinsics to the ``ego`` frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from calibration.camera import CameraModel
from calibration.se3 import SE3


@dataclass(frozen=True)
class RigCamera:
    """One camera of a rig.

    Attributes:
        model: its intrinsics.
        ego_SE3_camera: maps camera-frame points (x right, y down, z forward) to ``ego``.
    """

    model: CameraModel
    ego_SE3_camera: SE3


@dataclass(frozen=True)
class SensorRig:
    """Named cameras and LiDARs with extrinsics to ``ego`` (x forward, y left, z up).

    Attributes:
        cameras: camera name -> :class:`RigCamera`.
        lidars: LiDAR name -> ``ego_SE3_lidar``.
    """

    cameras: Mapping[str, RigCamera] = field(default_factory=dict)
    lidars: Mapping[str, SE3] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", MappingProxyType(dict(self.cameras)))
        object.__setattr__(self, "lidars", MappingProxyType(dict(self.lidars)))
