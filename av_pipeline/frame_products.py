"""What the pipeline makes of one frame today: fusion and voxelization, summarised.

:func:`frame_products` is a plain function over a loaded :class:`~av_pipeline.records.Frame`
(the same call runs in a test, the demo, or a Beam ``DoFn``). It fuses the primary LiDAR
sweep with the cameras (per-point de-skew when the sweep has per-point times and poses are
known, ego-motion compensation to each image time, z-buffered depth, painting), projects
the onboard perception's cuboids into every camera, and voxelizes the de-skewed sweep for
the detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from av_pipeline.fusion import SweepFusion, fuse_sweep, project_cuboids
from av_pipeline.fusion.cuboids import ProjectedCuboids
from av_pipeline.records import Frame
from av_pipeline.voxelize import NUSCENES_CENTERPOINT, VoxelGridConfig, Voxels, voxelize
from calibration import PoseTrajectory
from calibration.array_types import NDArrayFloat


def trajectory_from_poses(
    timestamps_ns: Sequence[int], translations_m: Sequence[Sequence[float]], rotations_wxyz: Sequence[Sequence[float]], *, log_id: str = ""
) -> PoseTrajectory | None:
    """``world_SE3_ego`` over a log from per-frame poses (e.g. the frame index's pose columns).

    Frames without a pose (``None`` entries) are skipped; fewer than two poses give ``None``.
    """
    keep = [i for i, (t, q) in enumerate(zip(translations_m, rotations_wxyz)) if t is not None and q is not None]
    if len(keep) < 2:
        return None
    order = sorted(keep, key=lambda i: timestamps_ns[i])
    return PoseTrajectory.from_wxyz(
        np.array([timestamps_ns[i] for i in order], dtype=np.int64),
        np.array([rotations_wxyz[i] for i in order], dtype=np.float64),
        np.array([translations_m[i] for i in order], dtype=np.float64),
    ).with_frames("world", "ego")


@dataclass(frozen=True)
class FrameProducts:
    """Fusion and voxelization of one frame.

    Attributes:
        key: ``(log_id, timestamp_ns)``.
        fusion: the :class:`~av_pipeline.fusion.SweepFusion` of the primary sweep.
        voxels: the de-skewed sweep voxelized with ``voxel_config``.
        onboard_projections: camera -> the onboard cuboids projected into it (empty without
            onboard perception).
    """

    key: tuple[str, int]
    fusion: SweepFusion
    voxels: Voxels
    onboard_projections: dict[str, ProjectedCuboids]

    def summary_row(self) -> dict:
        """A flat, JSON-ready description (counts and skews) of this frame's products."""
        fusion = self.fusion
        painted = 0 if fusion.painted is None else int((fusion.painted.camera_index >= 0).sum())
        return {
            "log_id": self.key[0],
            "timestamp_ns": self.key[1],
            "lidar": fusion.lidar,
            "points": int(len(fusion.points_lidar)),
            "deskewed": fusion.deskewed,
            "motion_compensated": fusion.motion_compensated,
            "cameras_matched": sorted(fusion.projections),
            "max_abs_skew_ms": max((abs(m.skew_ns) / 1e6 for m in fusion.matches.values() if m.skew_ns is not None), default=None),
            "points_painted": painted,
            "depth_pixels": {name: int(len(d.depth_m)) for name, d in fusion.depth_images.items()},
            "voxels": int(len(self.voxels.num_points)),
            "voxel_points_dropped": {
                "out_of_range": self.voxels.num_dropped_out_of_range,
                "voxel_cap": self.voxels.num_dropped_voxel_cap,
                "full_voxel": self.voxels.num_dropped_full_voxel,
                "nonfinite": self.voxels.num_dropped_nonfinite,
            },
            "onboard_objects_visible": {name: int(p.visible.sum()) for name, p in self.onboard_projections.items()},
            "notes": list(fusion.notes),
        }


def frame_products(
    frame: Frame,
    world_SE3_ego: PoseTrajectory | None = None,
    *,
    voxel_config: VoxelGridConfig = NUSCENES_CENTERPOINT,
    decoded_images: dict[str, np.ndarray] | None = None,
) -> FrameProducts:
    """Fuse, project and voxelize one frame.

    Args:
        frame: a loaded frame with at least one LiDAR sweep.
        world_SE3_ego: ego poses around the frame (for de-skew and motion compensation);
            ``None`` uses the static rig (noted in ``fusion.notes``). Times just outside the
            trajectory (the first sweep starts before the first pose) are extrapolated at
            constant velocity.
        voxel_config: the detector's voxel grid.
        decoded_images: camera -> decoded image, to skip decoding.

    Returns:
        :class:`FrameProducts`.
    """
    sweep = frame.lidar
    fusion = fuse_sweep(
        sweep, frame.rig, frame.images, world_SE3_ego, decoded_images=decoded_images, extrapolation="linear"
    )
    features = np.ascontiguousarray(np.column_stack([fusion.points_lidar, sweep.points[:, 3:4] if sweep.points.shape[1] > 3 else np.zeros((len(sweep.points), 1), np.float32)]))
    voxels = voxelize(features.astype(np.float32, copy=False), voxel_config)
    projections: dict[str, ProjectedCuboids] = {}
    if frame.onboard is not None and len(frame.onboard.cuboids):
        for camera, camera_SE3_lidar in fusion.camera_SE3_lidar.items():
            camera_SE3_ego = camera_SE3_lidar.compose(frame.rig.ego_SE3_lidar(sweep.sensor).inverse())
            projections[camera] = project_cuboids(frame.onboard.cuboids, frame.rig.cameras[camera].model, camera_SE3_ego, name=camera)
    return FrameProducts(frame.key, fusion, voxels, projections)


def summarize_rows(rows: Sequence[dict]) -> dict:
    """Fusion and voxel numbers over many frames, from their :meth:`FrameProducts.summary_row` rows.

    Returns:
        ``{"fusion": {...}, "voxels": {...}}``, JSON-ready. ``fusion``: ``frames``,
        ``deskewed`` / ``motion_compensated`` (frames), ``points`` and ``points_painted``
        (mean per frame), ``painted_fraction`` (painted / points over all frames),
        ``frames_per_camera`` (frames each camera was fused in), ``depth_pixels_mean`` and
        ``onboard_objects_visible_mean`` per camera (over the frames it was fused in),
        ``max_abs_skew_ms`` (largest image-sweep time gap; ``None`` without cameras).
        ``voxels``: ``mean``, ``min``, ``max`` per frame and ``points_dropped`` (totals by
        reason). Empty ``rows`` give zero counts and ``None`` means.
    """
    count = len(rows)

    def mean(values: Sequence[float]) -> float | None:
        return round(float(np.mean(values)), 3) if len(values) else None

    def per_camera(key: str) -> dict[str, float | None]:
        cameras = sorted({camera for row in rows for camera in row[key]})
        return {camera: mean([row[key][camera] for row in rows if camera in row[key]]) for camera in cameras}

    points = [row["points"] for row in rows]
    painted = [row["points_painted"] for row in rows]
    voxels = [row["voxels"] for row in rows]
    skews = [row["max_abs_skew_ms"] for row in rows if row["max_abs_skew_ms"] is not None]
    dropped: dict[str, int] = {}
    for row in rows:
        for reason, value in row["voxel_points_dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + int(value)
    cameras = sorted({camera for row in rows for camera in row["cameras_matched"]})
    return {
        "fusion": {
            "frames": count,
            "deskewed": sum(bool(row["deskewed"]) for row in rows),
            "motion_compensated": sum(bool(row["motion_compensated"]) for row in rows),
            "points": mean(points),
            "points_painted": mean(painted),
            "painted_fraction": round(sum(painted) / sum(points), 4) if sum(points) else None,
            "frames_per_camera": {camera: sum(camera in row["cameras_matched"] for row in rows) for camera in cameras},
            "depth_pixels_mean": per_camera("depth_pixels"),
            "onboard_objects_visible_mean": per_camera("onboard_objects_visible"),
            "max_abs_skew_ms": round(max(skews), 3) if skews else None,
        },
        "voxels": {
            "mean": mean(voxels),
            "min": min(voxels) if voxels else None,
            "max": max(voxels) if voxels else None,
            "points_dropped": dropped,
        },
    }


def points_ego(products: FrameProducts, frame: Frame) -> NDArrayFloat:
    """The fused (de-skewed) sweep in the ``ego`` frame, ``(N, 3)`` float64."""
    return frame.rig.ego_SE3_lidar(products.fusion.lidar).transform_points(products.fusion.points_lidar.astype(np.float64))
