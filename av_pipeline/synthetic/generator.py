"""A synthetic drive: scene, sensors, ground truth and onboard perception, frame by frame.

>>> from av_pipeline.synthetic import SimulationConfig, SyntheticDrive, default_cameras
>>> drive = SyntheticDrive(SimulationConfig(frames=2, seed=7, cameras=default_cameras(0.2)))  # doctest: +SKIP
>>> frame = drive.frame(0).frame                                                               # doctest: +SKIP
>>> frame.lidar.num_points > 100_000                                                            # doctest: +SKIP
True

Building a :class:`SyntheticDrive` lays out the street and its traffic, computes every
frame's ground-truth boxes and visibilities (cheap: a few thousand rays per frame) and
derives the onboard perception and the anomaly list from them. :meth:`SyntheticDrive.frame`
then renders one frame's sweep and images (the expensive part) and fills in the point
counts and 2D pixel boxes. Frames are independent: any frame can be rendered alone and
comes out the same.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.records import CameraImage, Frame, LidarSweep, OnboardPerception, PlannedPath
from av_pipeline.synthetic.actors import EGO_LANE, LANES, Actors, build_actors
from av_pipeline.synthetic.camera_render import CameraRenderer
from av_pipeline.synthetic.config import SimulationConfig
from av_pipeline.synthetic.ego import EgoTrajectory, plan_ego_events
from av_pipeline.synthetic.ground_truth import (
    FrameTruth,
    count_points_in_boxes,
    frame_truth,
    pixel_boxes,
    posed_actors_near,
)
from av_pipeline.synthetic.lidar import LIDAR_COLUMNS, SpinningLidar
from av_pipeline.synthetic.materials import SEMANTIC_ID
from av_pipeline.synthetic.perception import Anomaly, onboard_perception, planted_count
from av_pipeline.synthetic.raycast import StaticScene
from av_pipeline.synthetic.rig import build_rig
from av_pipeline.synthetic.route import Route, random_route
from av_pipeline.synthetic.world import build_static_world
from calibration import SE3, PoseTrajectory

#: Streams of the seed's random generators (one per purpose, so changing one part of the
#: generator does not reshuffle the others).
_SCENE_STREAM, _PERCEPTION_STREAM, _LIDAR_STREAM, _PLANNER_STREAM = 1, 2, 3, 4
#: Reach of the scene around the ego's path (the LiDAR's range plus a margin).
_SCENE_REACH_M = 160.0


@dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """One rendered frame and what only a simulator knows about it.

    Attributes:
        frame: the log frame: LiDAR sweep (with ``time_offsets_ns``), JPEG images, ego pose,
            ground-truth ``annotations`` (with ``num_lidar_points``) and ``onboard``
            perception (cuboids, camera boxes and the planned path).
        truth: the frame's ground truth with visibilities and 2D boxes.
        images_rgb: camera name -> ``(H, W, 3)`` uint8 rendered pixels.
        camera_track_ids: camera name -> ``(H, W)`` int64 track id shown at each pixel (-1: none).
        point_semantic: ``(N,)`` semantic class id of every point.
        point_track_ids: ``(N,)`` track id of the actor each point hit (-1: static world).
        planned_path_ego: ``(K, 4)`` the planner's path ``dt_s, x, y, yaw`` in ``ego`` at this frame.
        driven_path_ego: ``(K, 4)`` the path actually driven over the same horizon, same frame.
    """

    frame: Frame
    truth: FrameTruth
    images_rgb: dict[str, np.ndarray]
    camera_track_ids: dict[str, np.ndarray]
    point_semantic: np.ndarray
    point_track_ids: np.ndarray
    planned_path_ego: np.ndarray
    driven_path_ego: np.ndarray


@dataclass(frozen=True, eq=False)
class SyntheticSweep:
    """One frame's LiDAR only.

    Attributes:
        lidar: the sweep (``x, y, z, intensity, ring`` + ``time_offsets_ns``).
        annotations: ground-truth cuboids in ``ego`` with ``num_lidar_points`` counted in it.
        lidar_hits: ``(K,)`` returns that came from each object's own surface (unlike
            ``num_lidar_points``, independent of motion skew).
        point_semantic: ``(N,)`` semantic class id per point.
        point_track_ids: ``(N,)`` track id of the actor each point hit (-1: static world).
    """

    lidar: LidarSweep
    annotations: Cuboids
    lidar_hits: np.ndarray
    point_semantic: np.ndarray
    point_track_ids: np.ndarray


def _path_in_ego(path_world: np.ndarray, world_SE3_ego: SE3) -> np.ndarray:
    xy = world_SE3_ego.inverse().transform_points(np.column_stack([path_world[:, 1:3], np.zeros(len(path_world))]))[:, :2]
    yaw = path_world[:, 3] - world_SE3_ego.yaw_rad
    return np.column_stack([path_world[:, 0], xy, np.arctan2(np.sin(yaw), np.cos(yaw))])


def encode_image(rgb: np.ndarray, fmt: str, quality: int = 88) -> bytes:
    """``rgb`` ``(H, W, 3)`` uint8 as JPEG (``fmt="jpeg"``) or PNG bytes (deterministic)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(rgb)
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality, optimize=False)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class SyntheticDrive:
    """A synthetic drive log, rendered on demand.

    Attributes:
        config: the configuration.
        rig: the sensor rig (:mod:`av_pipeline.synthetic.rig`).
        route, ego, actors: the road, the ego's trajectory, the traffic.
        truths: ground truth per frame (point counts and pixel boxes filled when rendered).
        onboard: onboard perception per frame (cuboids, camera boxes, planned path).
        anomalies: the planted anomalies (the answer key).
        ego_deviation_m: ``(F,)`` largest planned-vs-driven distance per frame.
    """

    def __init__(self, config: SimulationConfig, on_truth: Callable[[int], None] | None = None) -> None:
        """Lay out the scene and compute every frame's ground truth and onboard perception.

        Args:
            config: what to generate.
            on_truth: called with each frame index as its ground truth is ready (progress).
        """
        self.config = config
        rng = np.random.default_rng([config.seed, _SCENE_STREAM])
        self.rig = build_rig(config)
        period_s = config.frame_period_ns * 1e-9
        duration_s = config.frames * period_s
        mean_speed = config.scene.ego_speed_mps
        self.route: Route = random_route(rng, _SCENE_REACH_M + 400.0, mean_speed * duration_s * 1.8 + _SCENE_REACH_M + 400.0)
        events = plan_ego_events(planted_count(config.perception.rates.get("ego_deviation", 0.0), config.frames), duration_s, rng)
        self.ego = EgoTrajectory.build(self.route, LANES[EGO_LANE][0], mean_speed, duration_s, events, rng)
        grid = np.arange(0.0, duration_s + 0.05, 0.05)
        self.actors: Actors = build_actors(self.route, self.ego.road_s(grid), grid, config.scene, rng, _SCENE_REACH_M)
        ego_s = self.ego.road_s(grid)
        self._static_mesh = build_static_world(self.route, float(ego_s.min() - _SCENE_REACH_M), float(ego_s.max() + _SCENE_REACH_M), config.scene, rng)
        self.static = StaticScene(self._static_mesh)
        self.lidar = SpinningLidar(config.lidar)
        self.actor_semantic = np.array([SEMANTIC_ID[label] for label in self.actors.labels], dtype=np.int16)
        self._renderers: dict[str, CameraRenderer] = {}

        self.truths: list[FrameTruth] = []
        for k in range(config.frames):
            self.truths.append(self._truth(k))
            if on_truth is not None:
                on_truth(k)
        self.planned_world = [self.ego.planned_path(self.t_s(k), np.random.default_rng([config.seed, _PLANNER_STREAM, k])) for k in range(config.frames)]
        self.driven_world = [self.ego.driven_path(self.t_s(k)) for k in range(config.frames)]
        self.ego_deviation_m = np.array(
            [float(np.hypot(*(p[:, 1:3] - d[:, 1:3]).T).max()) for p, d in zip(self.planned_world, self.driven_world)]
        )
        self.onboard: list[OnboardPerception]
        self.anomalies: list[Anomaly]
        self.onboard, self.anomalies = onboard_perception(
            self.truths, config.perception, np.random.default_rng([config.seed, _PERCEPTION_STREAM]), self.ego_deviation_m, events
        )
        self.onboard = [replace(onboard, planned_path=self.planned_path(k)) for k, onboard in enumerate(self.onboard)]

    # ------------------------------------------------------------------ time
    def t_s(self, index: int) -> float:
        """Seconds from the first frame to frame ``index``."""
        return index * self.config.frame_period_ns * 1e-9

    def timestamp_ns(self, index: int) -> int:
        """The frame's ``timestamp_ns`` (LiDAR facing forward, cameras firing)."""
        return self.config.start_time_ns + index * self.config.frame_period_ns

    def __len__(self) -> int:
        return self.config.frames

    def planned_path(self, index: int) -> PlannedPath:
        """The planner's path at frame ``index`` as the onboard stack reports it: the
        ``planned_path_ego`` rows with ``timestamps_ns = timestamp_ns + round(dt_s * 1e9)``."""
        rows = _path_in_ego(self.planned_world[index], self.truths[index].world_SE3_ego)
        times_ns = self.timestamp_ns(index) + np.round(rows[:, 0] * 1e9).astype(np.int64)
        return PlannedPath(times_ns, rows[:, 1:])

    def world_SE3_ego_trajectory(self, step_ns: int = 5_000_000) -> PoseTrajectory:
        """The true ego trajectory sampled every ``step_ns`` from half a sweep before the first
        frame to half a sweep after the last (covers every point's capture time)."""
        half = self.config.frame_period_ns // 2 + step_ns
        times = np.arange(self.timestamp_ns(0) - half, self.timestamp_ns(self.config.frames - 1) + half + 1, step_ns, dtype=np.int64)
        positions, yaws = self.ego.pose_arrays((times - self.config.start_time_ns) * 1e-9)
        poses = [SE3.from_yaw_translation(float(yaw), position) for yaw, position in zip(yaws, positions)]
        return PoseTrajectory.from_poses(times, poses, dst_frame="world", src_frame="ego")

    # ------------------------------------------------------------------ frames
    def _truth(self, index: int) -> FrameTruth:
        t = self.t_s(index)
        world_SE3_ego = self.ego.world_SE3_ego(t)
        posed = posed_actors_near(self.actors, self.route, t, world_SE3_ego.translation[:2], _SCENE_REACH_M)
        return frame_truth(index, self.timestamp_ns(index), world_SE3_ego, self.actors, posed, self.static, self.rig, self.config.lidar.name)

    def renderer(self, camera: str) -> CameraRenderer:
        """The (cached) per-pixel rays of ``camera``."""
        if camera not in self._renderers:
            self._renderers[camera] = CameraRenderer(self.rig.cameras[camera])
        return self._renderers[camera]

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.config.frames:
            raise IndexError(f"frame {index} out of range for a log of {self.config.frames} frames")

    def sweep(self, index: int) -> SyntheticSweep:
        """Simulate only the LiDAR of frame ``index`` (no images), with its ground-truth point counts.

        Raises:
            IndexError: ``index`` outside ``[0, frames)``.
        """
        self._check_index(index)
        cfg = self.config
        truth = self.truths[index]
        result = self.lidar.sweep(
            self.t_s(index), self.ego, self.route, self.actors, self.static,
            np.random.default_rng([cfg.seed, _LIDAR_STREAM, index]), self.actor_semantic,
        )  # fmt: skip
        lidar = LidarSweep(cfg.lidar.name, truth.timestamp_ns, result.points, LIDAR_COLUMNS, result.time_offsets_ns)
        points_ego = self.rig.lidars[cfg.lidar.name].transform_points(result.points[:, :3])
        counts = count_points_in_boxes(truth.cuboids, points_ego)
        hits = np.bincount(result.actor[result.actor >= 0], minlength=len(self.actors))[truth.actor].astype(np.int64)
        point_track = np.where(result.actor >= 0, self.actors.track_ids[np.maximum(result.actor, 0)], -1)
        return SyntheticSweep(lidar, truth.cuboids.with_num_lidar_points(counts), hits, result.semantic, point_track)

    def frame(self, index: int) -> SyntheticFrame:
        """Render frame ``index`` (LiDAR and cameras).

        Raises:
            IndexError: ``index`` outside ``[0, frames)``.
        """
        self._check_index(index)
        cfg = self.config
        t = self.t_s(index)
        timestamp_ns = self.timestamp_ns(index)
        swept = self.sweep(index)
        truth = self.truths[index]
        world_SE3_ego = truth.world_SE3_ego
        lidar, annotations = swept.lidar, swept.annotations
        posed = posed_actors_near(self.actors, self.route, t, world_SE3_ego.translation[:2], _SCENE_REACH_M)
        images, rgb, track_images = {}, {}, {}
        visible_boxes, visible_pixels = {}, {}
        for camera in cfg.cameras:
            render = self.renderer(camera.name).render(world_SE3_ego, self.static, posed, self.actors.sizes_m)
            rgb[camera.name] = render.rgb
            track_images[camera.name] = np.where(render.actor >= 0, self.actors.track_ids[np.maximum(render.actor, 0)], -1)
            data = encode_image(render.rgb, "jpeg", camera.jpeg_quality)
            images[camera.name] = CameraImage(camera.name, timestamp_ns, "jpeg", data, camera.width_px, camera.height_px, source=f"synthetic:{camera.name}")
            visible_boxes[camera.name], visible_pixels[camera.name] = pixel_boxes(render.actor, truth.actor)
        truth = replace(truth, cuboids=annotations, lidar_hits=swept.lidar_hits, visible_boxes_px=visible_boxes, visible_pixels=visible_pixels)
        self.truths[index] = truth
        frame = Frame(
            log_id=cfg.log_id,
            timestamp_ns=timestamp_ns,
            rig=self.rig,
            world_SE3_ego=world_SE3_ego,
            lidars={cfg.lidar.name: lidar},
            images=images,
            onboard=self.onboard[index],
            annotations=annotations,
            source_uri=f"synthetic:{cfg.log_id}#{index}",
        )
        return SyntheticFrame(
            frame=frame,
            truth=truth,
            images_rgb=rgb,
            camera_track_ids=track_images,
            point_semantic=swept.point_semantic,
            point_track_ids=swept.point_track_ids,
            planned_path_ego=_path_in_ego(self.planned_world[index], world_SE3_ego),
            driven_path_ego=_path_in_ego(self.driven_world[index], world_SE3_ego),
        )

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for index in range(self.config.frames):
            yield self.frame(index)

