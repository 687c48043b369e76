"""One LiDAR sweep with the rig's cameras: time matching, motion compensation, projection products.

:func:`fuse_sweep` chains the pieces of :mod:`av_pipeline.fusion`:

1. :func:`~av_pipeline.fusion.timing.match_cameras`: per camera the image nearest the sweep
   time, the skew, and a reason for every camera left without one;
2. with per-point times and an ego trajectory, :func:`~av_pipeline.fusion.motion.deskew_points`
   to the sweep time;
3. per matched camera ``camera(t_image)_SE3_lidar(t_sweep)`` through the world
   (:func:`~av_pipeline.fusion.motion.sensor_SE3_lidar_across_time`);
4. :func:`~av_pipeline.fusion.projection.project_to_cameras`, then
   :func:`~av_pipeline.fusion.depth.depth_image` and
   :func:`~av_pipeline.fusion.painting.paint_points`.

Whatever could not be done (no trajectory, no per-point times) is said in
:attr:`SweepFusion.notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from av_pipeline.errors import ConfigError
from av_pipeline.fusion.depth import DepthImage, depth_image
from av_pipeline.fusion.motion import deskew_points, sensor_SE3_lidar_across_time
from av_pipeline.fusion.painting import PaintedPoints, paint_points
from av_pipeline.fusion.projection import PointProjection, check_points_lidar, project_to_cameras
from av_pipeline.fusion.timing import DEFAULT_TOLERANCE_NS, CameraMatch, match_cameras
from av_pipeline.records import CameraImage, LidarSweep
from calibration import MIN_DEPTH_M, SE3, PoseTrajectory, SensorRig
from calibration.trajectory import ExtrapolationPolicy

__all__ = ["SweepFusion", "fuse_sweep"]


@dataclass(frozen=True, eq=False)
class SweepFusion:
    """What fusion made of one sweep.

    Attributes:
        lidar: LiDAR name.
        sweep_timestamp_ns: the sweep's reference time.
        points_lidar: ``(N, 3)`` float32 points the products refer to (row ``i`` is the
            sweep's point ``i``): de-skewed to the sweep time when ``deskewed``, else as
            measured.
        deskewed: per-point de-skew was applied.
        motion_compensated: the camera transforms include the ego motion between the sweep
            and each image (False without a trajectory: the static rig transforms were used).
        matches: every rig camera -> :class:`CameraMatch` (matched or with the reason).
        camera_SE3_lidar: matched camera -> the transform used (camera at its image time,
            LiDAR at the sweep time).
        projections: matched camera -> :class:`PointProjection`.
        depth_images: matched camera -> :class:`DepthImage` (empty when not asked for).
        painted: the painted points, or ``None`` when not asked for.
        notes: what was not done and why, one line each.
    """

    lidar: str
    sweep_timestamp_ns: int
    points_lidar: np.ndarray
    deskewed: bool
    motion_compensated: bool
    matches: Mapping[str, CameraMatch]
    camera_SE3_lidar: Mapping[str, SE3]
    projections: Mapping[str, PointProjection]
    depth_images: Mapping[str, DepthImage] = field(default_factory=dict)
    painted: PaintedPoints | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.points_lidar.setflags(write=False)
        for name in ("matches", "camera_SE3_lidar", "projections", "depth_images"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def fuse_sweep(
    sweep: LidarSweep,
    rig: SensorRig,
    images: Mapping[str, CameraImage | Sequence[CameraImage]],
    world_SE3_ego: PoseTrajectory | None = None,
    *,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    deskew: bool = True,
    depth: bool = True,
    paint: bool = True,
    decoded_images: Mapping[str, np.ndarray] | None = None,
    min_depth_m: float = MIN_DEPTH_M,
    extrapolation: ExtrapolationPolicy = "error",
) -> SweepFusion:
    """Fuse one sweep with the rig's cameras (module docstring).

    Args:
        sweep: the LiDAR sweep (its ``sensor`` must be a rig LiDAR).
        rig: cameras and LiDARs with extrinsics.
        images: camera name -> its image, or the candidate images around the sweep (the
            nearest in time is used), e.g. ``Frame.images``.
        world_SE3_ego: ego poses covering the sweep and image times; ``None``: no motion
            compensation (said in ``notes``).
        tolerance_ns: largest accepted ``|image time - sweep time|``.
        deskew: de-skew per point when the sweep has ``time_offsets_ns`` and a trajectory is given.
        depth: make z-buffered depth images.
        paint: paint the points (decodes the matched images unless ``decoded_images`` has them).
        decoded_images: camera name -> already decoded ``(H, W, 3)`` uint8 image of the
            matched image, to skip decoding.
        min_depth_m: see :func:`~av_pipeline.fusion.projection.project_points`.
        extrapolation: policy for times outside ``world_SE3_ego``.

    Returns:
        :class:`SweepFusion`.

    Raises:
        ConfigError: an image for a camera that is not in the rig.
        UnknownFrameError: the sweep's LiDAR is not in the rig.
        ExtrapolationError: a needed time outside the trajectory with ``extrapolation="error"``.
    """
    ego_SE3_lidar = rig.ego_SE3_lidar(sweep.sensor)
    unknown = sorted(set(images) - set(rig.cameras))
    if unknown:
        raise ConfigError(f"images: cameras {unknown} are not in the rig; rig cameras: {list(rig.cameras)}")
    candidates = {name: _as_list(value) for name, value in images.items()}
    matches = match_cameras(
        sweep.timestamp_ns,
        {name: [image.timestamp_ns for image in listed] for name, listed in candidates.items()},
        tolerance_ns,
        cameras=rig.camera_names,
    )
    notes: list[str] = []
    points = check_points_lidar(sweep.points)
    deskewed = False
    if deskew and sweep.time_offsets_ns is not None and world_SE3_ego is not None:
        points = deskew_points(points, sweep.time_offsets_ns, world_SE3_ego, ego_SE3_lidar, sweep.timestamp_ns, extrapolation=extrapolation)
        deskewed = True
    else:
        if deskew and sweep.time_offsets_ns is None:
            notes.append(f"not de-skewed: sweep '{sweep.sensor}' has no per-point time offsets")
        elif deskew:
            notes.append("not de-skewed: no ego trajectory given")
        points = np.ascontiguousarray(points[:, :3], dtype=np.float32)

    matched = [name for name, match in matches.items() if match.within_tolerance]
    transforms: dict[str, SE3] = {}
    for name in matched:
        ego_SE3_camera = rig.cameras[name].ego_SE3_camera
        if world_SE3_ego is None:
            transforms[name] = ego_SE3_camera.inverse().compose(ego_SE3_lidar)
        else:
            transforms[name] = sensor_SE3_lidar_across_time(
                world_SE3_ego, ego_SE3_lidar, sweep.timestamp_ns, ego_SE3_camera,
                int(matches[name].image_timestamp_ns), extrapolation=extrapolation,
            )  # fmt: skip
    if world_SE3_ego is None and any(matches[name].skew_ns for name in matched):
        worst = max(abs(matches[name].skew_ns or 0) for name in matched)
        notes.append(f"no ego trajectory: camera transforms ignore the ego motion over skews up to {worst / 1e6:.3f} ms")
    for name, match in matches.items():
        if not match.within_tolerance:
            notes.append(f"camera {name} not fused: {match.reason}")

    projections = project_to_cameras(points, {name: rig.cameras[name].model for name in matched}, transforms, min_depth_m=min_depth_m)
    depth_images = {name: depth_image(projection) for name, projection in projections.items()} if depth else {}
    painted = None
    if paint:
        decoded = dict(decoded_images or {})
        pixels = {}
        for name in matched:
            pixels[name] = decoded[name] if name in decoded else candidates[name][int(matches[name].image_index)].decode()
        painted = paint_points(projections, pixels) if pixels else _unpainted(len(points))
    return SweepFusion(
        lidar=sweep.sensor,
        sweep_timestamp_ns=sweep.timestamp_ns,
        points_lidar=points,
        deskewed=deskewed,
        motion_compensated=world_SE3_ego is not None,
        matches=matches,
        camera_SE3_lidar=transforms,
        projections=projections,
        depth_images=depth_images,
        painted=painted,
        notes=tuple(notes),
    )


def _as_list(value: CameraImage | Sequence[CameraImage]) -> list[CameraImage]:
    return [value] if isinstance(value, CameraImage) else list(value)


def _unpainted(count: int) -> PaintedPoints:
    return PaintedPoints((), np.zeros((count, 3), dtype=np.uint8), np.full(count, -1, dtype=np.int16))
