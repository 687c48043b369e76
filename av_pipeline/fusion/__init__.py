"""Camera-LiDAR fusion: time matching, ego-motion compensation, projection products.

Guide: docs/fusion.md. Plain functions over typed, frozen records:

- time: :func:`match_cameras` -> :class:`CameraMatch` per camera (skew, within tolerance, reason);
- motion: :func:`sensor_SE3_lidar_across_time`, :func:`compensate_sweep` (whole sweep),
  :func:`deskew_points` (per point);
- projection: :func:`project_to_cameras` / :func:`project_points` -> :class:`PointProjection`;
  :func:`depth_image` -> :class:`DepthImage`; :func:`paint_points` -> :class:`PaintedPoints`;
  :func:`points_in_box_frustum`;
- boxes: :func:`project_cuboids` -> :class:`ProjectedCuboids`;
- all of it for one sweep: :func:`fuse_sweep` -> :class:`SweepFusion`.
"""

from av_pipeline.fusion.cuboids import CUBOID_EDGES, DEFAULT_NEAR_M, ProjectedCuboids, project_cuboids
from av_pipeline.fusion.depth import DepthImage, depth_image
from av_pipeline.fusion.motion import compensate_sweep, deskew_points, sensor_SE3_lidar_across_time, transform_points_f32
from av_pipeline.fusion.painting import NOT_PAINTED, PaintedPoints, paint_points
from av_pipeline.fusion.projection import PointProjection, pixel_indices, project_points, project_to_cameras
from av_pipeline.fusion.selection import points_in_box_frustum
from av_pipeline.fusion.sweep import SweepFusion, fuse_sweep
from av_pipeline.fusion.timing import DEFAULT_TOLERANCE_NS, CameraMatch, match_cameras

__all__ = [
    "CUBOID_EDGES",
    "CameraMatch",
    "DEFAULT_NEAR_M",
    "DEFAULT_TOLERANCE_NS",
    "DepthImage",
    "NOT_PAINTED",
    "PaintedPoints",
    "PointProjection",
    "ProjectedCuboids",
    "SweepFusion",
    "compensate_sweep",
    "depth_image",
    "deskew_points",
    "fuse_sweep",
    "match_cameras",
    "paint_points",
    "pixel_indices",
    "points_in_box_frustum",
    "project_cuboids",
    "project_points",
    "project_to_cameras",
    "sensor_SE3_lidar_across_time",
    "transform_points_f32",
]
