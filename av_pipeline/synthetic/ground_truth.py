"""Ground truth of one frame: cuboids with track ids, visibility, LiDAR point counts and 2D boxes.

All at the frame's ``timestamp_ns`` (the instant the LiDAR faces forward and the cameras
fire), in ``ego``:

- **cuboids**: every actor whose centre is within :data:`GT_RANGE_M` of the LiDAR, with its
  class, track id and ``num_lidar_points`` = the number of points of the frame's sweep inside
  the box, counted exactly as :meth:`Cuboids.count_points` counts them on the stored sweep
  (points taken from the LiDAR frame to ``ego`` with the rig extrinsic, not de-skewed: a
  box's count is what a detector sees in the raw sweep).
- **visibility** (LiDAR): the share of 27 sample points inside the box (a 3x3x3 grid at
  -1/3, 0, +1/3 of the box extents) with a free line of sight from the LiDAR (the object
  itself may be in the way; anything else may not). 0 = fully occluded, 1 = fully in view.
- **camera visibility**: the same share from each camera's centre, counting only sample
  points that project into the image; the **projected box** is the tight pixel box of the
  cuboid's edges as the camera sees them (distortion included), clipped to the image
  (amodal, like KITTI's ``bbox``), and the **visible box** and **pixel count** come from
  the rendered image (modal: only the pixels that show the object).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.synthetic.actors import Actors
from av_pipeline.synthetic.camera_render import box_corners, clipped_box_points
from av_pipeline.synthetic.raycast import PosedActors, StaticScene, cast_world
from av_pipeline.synthetic.route import Route
from calibration import SE3, SensorRig
from calibration.camera import OUTSIDE_IMAGE, VISIBLE

#: Actors within this horizontal distance of the LiDAR are labelled.
GT_RANGE_M = 100.0
_SAMPLE_FRACTIONS = np.array([-1.0 / 3.0, 0.0, 1.0 / 3.0])
_SAMPLE_GRID = np.stack(np.meshgrid(_SAMPLE_FRACTIONS, _SAMPLE_FRACTIONS, _SAMPLE_FRACTIONS, indexing="ij"), axis=-1).reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """Ground truth of one frame (K labelled actors).

    Attributes:
        index: frame index in the log.
        timestamp_ns: the frame time.
        world_SE3_ego: ego pose at ``timestamp_ns``.
        actor: ``(K,)`` indices into the log's :class:`~av_pipeline.synthetic.actors.Actors`.
        cuboids: ``K`` boxes in ``ego`` (``num_lidar_points`` set once the sweep exists).
        velocities_mps: ``(K, 2)`` object velocity over ground, in ``ego`` axes.
        range_m: ``(K,)`` horizontal distance from the LiDAR.
        lidar_visibility: ``(K,)`` in ``[0, 1]``.
        camera_visibility: camera name -> ``(K,)`` in ``[0, 1]``.
        projected_boxes_px: camera name -> ``(K, 4)`` ``x_min, y_min, x_max, y_max`` (NaN
            where the camera does not see the object).
        lidar_hits: ``(K,)`` returns from the object's own surface (set once the sweep exists).
        visible_boxes_px: camera name -> ``(K, 4)`` tight box of the object's rendered pixels (NaN: none).
        visible_pixels: camera name -> ``(K,)`` rendered pixel count.
    """

    index: int
    timestamp_ns: int
    world_SE3_ego: SE3
    actor: np.ndarray
    cuboids: Cuboids
    velocities_mps: np.ndarray
    range_m: np.ndarray
    lidar_visibility: np.ndarray
    camera_visibility: dict[str, np.ndarray]
    projected_boxes_px: dict[str, np.ndarray]
    lidar_hits: np.ndarray | None = None
    visible_boxes_px: dict[str, np.ndarray] = field(default_factory=dict)
    visible_pixels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actor)


def posed_actors_near(actors: Actors, route: Route, t_s: float, position_xy: np.ndarray, reach_m: float) -> PosedActors:
    """The actors within ``reach_m`` (plus their size) of ``position_xy`` at ``t_s``, posed in the world."""
    centers, yaws = actors.poses(route, np.arange(len(actors)), np.full(len(actors), t_s))
    dist = np.hypot(centers[:, 0] - position_xy[0], centers[:, 1] - position_xy[1])
    near = np.flatnonzero(dist < reach_m + np.linalg.norm(actors.sizes_m[:, :2], axis=1))
    return PosedActors(actors, near, centers[near], yaws[near])


def _line_of_sight(static: StaticScene, posed: PosedActors, origins: np.ndarray, targets: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``(M,)`` True where nothing but actor ``owner[m]`` blocks the segment from ``origins[m]`` to ``targets[m]``."""
    delta = targets - origins
    dist = np.linalg.norm(delta, axis=1)
    directions = delta / np.maximum(dist, 1e-9)[:, None]
    hits = cast_world(static, posed, origins, directions)
    return (hits.t_m >= dist - 0.02) | (hits.actor == owner)


def frame_truth(
    index: int,
    timestamp_ns: int,
    world_SE3_ego: SE3,
    actors: Actors,
    posed: PosedActors,
    static: StaticScene,
    rig: SensorRig,
    lidar_name: str,
) -> FrameTruth:
    """Boxes, ranges, velocities and visibilities of the actors near the ego (no point counts yet)."""
    ego_SE3_world = world_SE3_ego.inverse()
    lidar_world = world_SE3_ego.compose(rig.lidars[lidar_name]).translation
    dist = np.hypot(posed.centers[:, 0] - lidar_world[0], posed.centers[:, 1] - lidar_world[1])
    keep = np.flatnonzero(dist <= GT_RANGE_M)
    keep = keep[np.argsort(actors.track_ids[posed.index[keep]], kind="stable")]
    actor = posed.index[keep]
    centers_world, yaws_world = posed.centers[keep], posed.yaws[keep]
    sizes = actors.sizes_m[actor]
    centers_ego = ego_SE3_world.transform_points(centers_world) if len(keep) else np.zeros((0, 3))
    yaws_ego = np.arctan2(np.sin(yaws_world - world_SE3_ego.yaw_rad), np.cos(yaws_world - world_SE3_ego.yaw_rad))
    cuboids = Cuboids.from_arrays("ego", centers_ego, sizes, yaws_ego, list(actors.labels[actor]), None, actors.track_ids[actor])
    velocity_world = _velocities(actors, posed, keep)
    velocities = velocity_world[:, :2] @ world_SE3_ego.rotation[:2, :2] if len(keep) else np.zeros((0, 2))

    # sample points in every box (world frame), K x 27
    c, s = np.cos(yaws_world)[:, None], np.sin(yaws_world)[:, None]
    local = _SAMPLE_GRID[None] * sizes[:, None, :]
    samples = np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1], local[..., 2]], axis=-1) + centers_world[:, None]
    owner = np.repeat(actor, len(_SAMPLE_GRID))
    flat = samples.reshape(-1, 3)
    k = len(keep)
    # one batch of line-of-sight rays: from the LiDAR to every sample, from each camera to its in-image samples
    cameras = list(rig.cameras.items())
    camera_poses = {name: world_SE3_ego.compose(camera.ego_SE3_camera) for name, camera in cameras}
    in_image = {
        name: camera.model.project(camera_poses[name].inverse().transform_points(flat)).status == VISIBLE if k else np.zeros(0, bool)
        for name, camera in cameras
    }
    origins = [np.broadcast_to(lidar_world, flat.shape)] + [np.broadcast_to(camera_poses[n].translation, (int(m.sum()), 3)) for n, m in in_image.items()]
    targets = [flat] + [flat[m] for m in in_image.values()]
    owners = [owner] + [owner[m] for m in in_image.values()]
    seen_all = _line_of_sight(static, posed, np.concatenate(origins), np.concatenate(targets), np.concatenate(owners)) if k else np.zeros(0, bool)
    lidar_visibility = seen_all[: len(flat)].reshape(k, -1).mean(axis=1) if k else np.zeros(0)
    offset = len(flat)
    camera_visibility: dict[str, np.ndarray] = {}
    projected: dict[str, np.ndarray] = {}
    corners_world = box_corners(centers_world, sizes, yaws_world) if k else np.zeros((0, 8, 3))
    for name, camera in cameras:
        camera_SE3_world = camera_poses[name].inverse()
        boxes = np.full((k, 4), np.nan)
        if not k:
            camera_visibility[name], projected[name] = np.zeros(0), boxes
            continue
        seen = np.zeros(len(flat), dtype=bool)
        count = int(in_image[name].sum())
        seen[in_image[name]] = seen_all[offset : offset + count]
        offset += count
        visibility = seen.reshape(k, -1).mean(axis=1)
        corners_camera = camera_SE3_world.transform_points(corners_world.reshape(-1, 3)).reshape(k, 8, 3)
        points, box_of_point = clipped_box_points(corners_camera, samples_per_edge=9)
        wanted = visibility[box_of_point] > 0.0
        points, box_of_point = points[wanted], box_of_point[wanted]
        if len(points):
            projection = camera.model.project(points)
            ok = (projection.status == VISIBLE) | (projection.status == OUTSIDE_IMAGE)
            uv, box_of_point = projection.uv_px[ok], box_of_point[ok]
            if len(uv):
                rows, starts = np.unique(box_of_point, return_index=True)
                lo = np.maximum(np.minimum.reduceat(uv, starts, axis=0), [-0.5, -0.5])
                hi = np.minimum(np.maximum.reduceat(uv, starts, axis=0), [camera.model.width_px - 0.5, camera.model.height_px - 0.5])
                good = (hi > lo).all(axis=1)
                boxes[rows[good]] = np.column_stack([lo[good], hi[good]])
        camera_visibility[name], projected[name] = visibility, boxes
    return FrameTruth(
        index=index,
        timestamp_ns=timestamp_ns,
        world_SE3_ego=world_SE3_ego,
        actor=actor,
        cuboids=cuboids,
        velocities_mps=velocities,
        range_m=dist[keep],
        lidar_visibility=lidar_visibility,
        camera_visibility=camera_visibility,
        projected_boxes_px=projected,
    )


def _velocities(actors: Actors, posed: PosedActors, keep: np.ndarray) -> np.ndarray:
    """``(K, 3)`` world velocities: speed along the direction of travel (heading less the yaw offset)."""
    index = posed.index[keep]
    heading = posed.yaws[keep] - actors.yaw_offset_rad[index]
    speed = actors.speed_mps[index]
    return np.column_stack([speed * np.cos(heading), speed * np.sin(heading), np.zeros(len(index))])


def count_points_in_boxes(cuboids: Cuboids, points_ego: np.ndarray) -> np.ndarray:
    """``(K,)`` :meth:`Cuboids.count_points` of ``points_ego`` ``(N, 3+)``."""
    return cuboids.count_points(points_ego)


def pixel_boxes(actor_image: np.ndarray, actor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes ``(K, 4)`` (NaN: not in the image) and pixel counts ``(K,)`` of actors ``actor`` in an actor-index image."""
    boxes = np.full((len(actor), 4), np.nan)
    counts = np.zeros(len(actor), dtype=np.int64)
    if len(actor) == 0:
        return boxes, counts
    flat = actor_image.ravel()
    shown = np.flatnonzero(flat >= 0)
    if len(shown) == 0:
        return boxes, counts
    ids = flat[shown]
    rows, cols = np.divmod(shown, actor_image.shape[1])
    position = {int(a): j for j, a in enumerate(actor)}
    order = np.argsort(ids, kind="stable")
    unique, starts = np.unique(ids[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    for a, start, end in zip(unique, starts, ends):
        j = position.get(int(a))
        if j is None:
            continue
        sel = order[start:end]
        counts[j] = end - start
        boxes[j] = [cols[sel].min() - 0.5, rows[sel].min() - 0.5, cols[sel].max() + 0.5, rows[sel].max() + 0.5]
    return boxes, counts
