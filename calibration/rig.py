"""Sensor rigs: named cameras and LiDARs with their extrinsics to the ``ego`` frame.

>>> from calibration.camera import CameraModel
>>> from calibration.se3 import SE3
>>> camera_SE3_ego = SE3.from_matrix([[0, -1, 0, 0], [0, 0, -1, 1.5], [1, 0, 0, -1.5], [0, 0, 0, 1]])
>>> rig = SensorRig(
...     cameras={"front": RigCamera(CameraModel(1600, 900, 1000.0, 1000.0, 800.0, 450.0), camera_SE3_ego.inverse())},
...     lidars={"top": SE3.from_yaw_translation(0.0, [1.0, 0.0, 1.8])})
>>> rig.camera_names, rig.lidar_names
(('front',), ('top',))
>>> rig.to_frame_graph().path("front", "top")
['front', 'ego', 'top']
>>> rig.camera_SE3_lidar("front", "top").translation.tolist()
[0.0, -0.30000000000000004, -0.5]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.camera import CameraModel
from calibration.checks import check_points
from calibration.errors import CalibrationError, ShapeError, UnknownFrameError
from calibration.frame_graph import FrameGraph
from calibration.se3 import SE3

if TYPE_CHECKING:  # pragma: no cover
    from calibration.camera import Projection

#: Frame name of the vehicle body frame every extrinsic maps into.
EGO_FRAME = "ego"


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

    Sensor names double as frame names in :meth:`to_frame_graph`, so they must be unique
    across cameras and LiDARs and must not be ``"ego"``.

    Attributes:
        cameras: camera name -> :class:`RigCamera`.
        lidars: LiDAR name -> ``ego_SE3_lidar``.

    Raises:
        CalibrationError: an empty or non-string name, a name used twice or equal to
            ``"ego"``, or values of the wrong type.
    """

    cameras: Mapping[str, RigCamera] = field(default_factory=dict)
    lidars: Mapping[str, SE3] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cameras, lidars = dict(self.cameras), dict(self.lidars)
        for kind, sensors, value_type in (("camera", cameras, RigCamera), ("lidar", lidars, SE3)):
            for name, value in sensors.items():
                if not isinstance(name, str) or not name:
                    raise CalibrationError(f"rig {kind} name: expected a non-empty string, got {name!r}")
                if name == EGO_FRAME:
                    raise CalibrationError(f"rig {kind} name: {EGO_FRAME!r} is reserved for the vehicle frame")
                if not isinstance(value, value_type):
                    what = "RigCamera" if value_type is RigCamera else "SE3 ego_SE3_lidar"
                    raise CalibrationError(f"rig {kind} {name!r}: expected a {what}, got {type(value).__name__}")
        shared = sorted(set(cameras) & set(lidars))
        if shared:
            raise CalibrationError(f"rig: sensor names must be unique across cameras and LiDARs, got both for {shared}")
        object.__setattr__(self, "cameras", MappingProxyType(cameras))
        object.__setattr__(self, "lidars", MappingProxyType(lidars))

    def __reduce__(self) -> tuple:
        # read-only mappings do not pickle; rigs travel between Beam workers
        return (SensorRig, (dict(self.cameras), dict(self.lidars)))

    # ------------------------------------------------------------------ lookup
    @property
    def camera_names(self) -> tuple[str, ...]:
        """Camera names in the order given."""
        return tuple(self.cameras)

    @property
    def lidar_names(self) -> tuple[str, ...]:
        """LiDAR names in the order given."""
        return tuple(self.lidars)

    def camera(self, name: str) -> RigCamera:
        """The camera called ``name``.

        Raises:
            UnknownFrameError: no such camera; the message lists the known ones.
        """
        try:
            return self.cameras[name]
        except KeyError:
            raise UnknownFrameError(f"unknown camera {name!r}; known cameras: {list(self.cameras)}") from None

    def ego_SE3_lidar(self, name: str | None = None) -> SE3:
        """Extrinsics of the LiDAR called ``name`` (``None``: the only LiDAR).

        Raises:
            UnknownFrameError: no such LiDAR; the message lists the known ones.
            CalibrationError: ``name=None`` with zero or several LiDARs.
        """
        return self.lidars[self._lidar_name(name)]

    def camera_SE3_lidar(self, camera: str, lidar: str | None = None) -> SE3:
        """``camera_SE3_lidar = ego_SE3_camera^-1 @ ego_SE3_lidar`` (same instant, no ego motion)."""
        return self.camera(camera).ego_SE3_camera.inverse().compose(self.ego_SE3_lidar(lidar))

    # ------------------------------------------------------------------ derived
    def to_frame_graph(self, graph: FrameGraph | None = None) -> FrameGraph:
        """A :class:`~calibration.frame_graph.FrameGraph` with ``ego`` and one static edge per sensor.

        Args:
            graph: add the rig's frames to this graph (e.g. one that already holds a
                ``world_SE3_ego`` trajectory) instead of a new one.

        Returns:
            The graph, with edges ``ego_SE3_<camera>`` and ``ego_SE3_<lidar>``.
        """
        graph = FrameGraph() if graph is None else graph
        graph.add_frame(EGO_FRAME)
        for name, camera in self.cameras.items():
            graph.add_static(EGO_FRAME, name, camera.ego_SE3_camera)
        for name, ego_SE3_lidar in self.lidars.items():
            graph.add_static(EGO_FRAME, name, ego_SE3_lidar)
        return graph

    def project_lidar_points(
        self,
        points_lidar: NDArrayFloat,
        lidar: str | None = None,
        cameras: Iterable[str] | None = None,
        *,
        min_depth_m: float | None = None,
    ) -> dict[str, Projection]:
        """Project LiDAR points into cameras (one instant: no ego-motion compensation).

        For a sweep and images taken at different times, build the transforms with
        :meth:`FrameGraph.get_across_time <calibration.frame_graph.FrameGraph.get_across_time>`
        on :meth:`to_frame_graph` plus a ``world_SE3_ego`` trajectory instead.

        Args:
            points_lidar: ``(N, 3+)`` points in the LiDAR frame, metres; columns past the
                third (intensity, ring, ...) are ignored. float32 or float64; the
                transform and projection run in float64.
            lidar: LiDAR name (``None``: the only LiDAR).
            cameras: camera names (``None``: all, in rig order).
            min_depth_m: passed to :meth:`CameraModel.project` when given.

        Returns:
            Camera name -> :class:`~calibration.camera.Projection` with ``N`` rows each
            (``uv_px (N, 2)``, ``depth_m (N,)``, ``status (N,)``, ``.valid``).

        Raises:
            ShapeError: ``points_lidar`` not ``(N, 3+)``.
            UnknownFrameError: an unknown camera or LiDAR name (lists the known ones),
                raised before any projection.
        """
        points = check_points_3plus(points_lidar, "points_lidar").astype(np.float64, copy=False)
        ego_SE3_lidar = self.ego_SE3_lidar(lidar)
        names = list(self.cameras) if cameras is None else list(cameras)
        for name in names:
            self.camera(name)
        options = {} if min_depth_m is None else {"min_depth_m": min_depth_m}
        projections = {}
        for name in names:
            camera = self.cameras[name]
            camera_SE3_lidar = camera.ego_SE3_camera.inverse().compose(ego_SE3_lidar)
            projections[name] = camera.model.project(camera_SE3_lidar.transform_points(points), **options)
        return projections

    # ------------------------------------------------------------------ internals
    def _lidar_name(self, name: str | None) -> str:
        if name is None:
            if len(self.lidars) != 1:
                raise CalibrationError(
                    f"lidar: expected a LiDAR name because the rig has {len(self.lidars)} LiDARs, "
                    f"known LiDARs: {list(self.lidars)}"
                )
            return next(iter(self.lidars))
        if name not in self.lidars:
            raise UnknownFrameError(f"unknown LiDAR {name!r}; known LiDARs: {list(self.lidars)}")
        return name


def check_points_3plus(value: object, name: str) -> NDArrayFloat:
    """``(N, 3+)`` float points -> their ``(N, 3)`` xyz columns (float32 kept).

    Raises:
        ShapeError: not two-dimensional with at least 3 columns.
    """
    shape = np.shape(value) if isinstance(value, np.ndarray) else None
    if shape is not None and (len(shape) != 2 or shape[1] < 3):
        raise ShapeError(f"{name}: expected (N, 3+) float array, got {shape}")
    if shape is not None and shape[1] > 3:
        value = value[:, :3]  # type: ignore[index]
    return check_points(value, name, 3, finite=False)
