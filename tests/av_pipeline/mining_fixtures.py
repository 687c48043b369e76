"""Hand-built mining scenes: a few objects driving past a parked or moving ego, with the onboard
perception and the shadow model derived from them, and per-test edits that plant one problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.mining.clusters import PointClusters
from av_pipeline.mining.range_image import RangeImage
from av_pipeline.mining.records import MiningFrame
from av_pipeline.records import CameraBoxes, OnboardPerception
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

PERIOD_NS = 100_000_000
T0_NS = 1_700_000_000_000_000_000
SIZES = {"car": (4.5, 1.9, 1.6), "van": (5.2, 2.0, 2.1), "truck": (9.0, 2.5, 3.2), "pedestrian": (0.7, 0.7, 1.75), "cyclist": (1.8, 0.7, 1.7)}


#: Where the scenes' range images are seen from (a roof LiDAR, metres in ``ego``).
LIDAR_ORIGIN = np.array([0.0, 0.0, 1.8])


def ground_points(extent_m: float = 80.0, step_m: float = 0.5) -> np.ndarray:
    """A flat road at z = 0 (the range image's ground estimate needs one)."""
    g = np.arange(-extent_m, extent_m, step_m)
    x, y = np.meshgrid(g, g)
    return np.column_stack([x.ravel(), y.ravel(), np.zeros(x.size)])


def box_surface_points(center, size, yaw: float = 0.0, step_m: float = 0.05) -> np.ndarray:
    """Points on the four sides and the top of a box (what a LiDAR could hit)."""
    length, width, height = size
    out = []
    for u in np.arange(-length / 2, length / 2 + 1e-9, step_m):
        for z in np.arange(0.0, height + 1e-9, step_m):
            out += [(u, -width / 2, z), (u, width / 2, z)]
    for v in np.arange(-width / 2, width / 2 + 1e-9, step_m):
        for z in np.arange(0.0, height + 1e-9, step_m):
            out += [(-length / 2, v, z), (length / 2, v, z)]
        for u in np.arange(-length / 2, length / 2 + 1e-9, step_m):
            out.append((u, v, height))
    local = np.array(out)
    c, s = np.cos(yaw), np.sin(yaw)
    bottom = np.asarray(center, dtype=np.float64) - [0.0, 0.0, height / 2]
    return np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]]) + bottom


def sweep_of_objects(walls: Callable[[int], list[tuple]] | None = None):
    """``Scene.sweep_of``: every true object's surface, plus ``walls(k)`` boxes ``(center, size)`` in that frame."""

    def sweep(k: int, rows: list[dict]) -> np.ndarray:
        parts = [box_surface_points(r["center"], r["size"], r["yaw"], step_m=0.1) for r in rows]
        parts += [box_surface_points(center, size, 0.0, step_m=0.1) for center, size in (walls(k) if walls else [])]
        return np.vstack(parts)

    return sweep


@dataclass
class SceneObject:
    """An object at ``start_xy`` (ego at frame 0, which is world) moving with ``velocity_xy`` m/s."""

    track: int
    label: str
    start_xy: tuple[float, float]
    velocity_xy: tuple[float, float] = (0.0, 0.0)
    points: int = 200
    yaw: float | None = None

    def center(self, t_s: float) -> np.ndarray:
        size = SIZES[self.label]
        return np.array([self.start_xy[0] + self.velocity_xy[0] * t_s, self.start_xy[1] + self.velocity_xy[1] * t_s, size[2] / 2])

    def heading(self) -> float:
        if self.yaw is not None:
            return self.yaw
        vx, vy = self.velocity_xy
        return float(np.arctan2(vy, vx)) if vx or vy else 0.0


def front_camera_rig() -> SensorRig:
    """One forward pinhole camera (1280x720) 1.5 m up, looking along +x."""
    model = CameraModel(1280, 720, 1000.0, 1000.0, 639.5, 359.5)
    # camera x right, y down, z forward -> ego x forward, y left, z up
    rotation = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return SensorRig(cameras={"front": RigCamera(model, SE3(rotation, np.array([1.5, 0.0, 1.5])))}, lidars={"top": SE3(np.eye(3), np.zeros(3))})


@dataclass
class Scene:
    """Build mining frames: ``edit_onboard`` / ``edit_shadow`` get ``(frame index, rows)`` and return rows.

    A row is a dict ``track, label, center, size, yaw, score, points``.
    """

    objects: list[SceneObject]
    frames: int = 30
    ego_speed_mps: float = 0.0
    rig: SensorRig = field(default_factory=front_camera_rig)
    with_shadow: bool = True
    with_onboard: bool = True
    with_camera_boxes: bool = False
    with_path: bool = False
    edit_onboard: Callable[[int, list[dict]], list[dict]] | None = None
    edit_shadow: Callable[[int, list[dict]], list[dict]] | None = None
    edit_camera: Callable[[int, CameraBoxes], CameraBoxes] | None = None
    edit_path: Callable[[int, np.ndarray], np.ndarray] | None = None
    #: ``(frame index, true rows) -> [(centre (3,), extent (3,), points), ...]``: LiDAR clusters no box explains
    clusters_of: Callable[[int, list[dict]], list[tuple]] | None = None
    #: ``(frame index, true rows) -> (N, 3) points in ego``: a sweep for the frame's range image (ground added)
    sweep_of: Callable[[int, list[dict]], np.ndarray] | None = None
    log_id: str = "scene"

    def pose(self, k: int) -> SE3:
        return SE3(np.eye(3), np.array([self.ego_speed_mps * k * PERIOD_NS * 1e-9, 0.0, 0.0]))

    def rows(self, k: int) -> list[dict]:
        t = k * PERIOD_NS * 1e-9
        ego = self.pose(k).inverse()
        out = []
        for obj in self.objects:
            center = ego.transform_points(obj.center(t)[None])[0]
            out.append({"track": obj.track, "label": obj.label, "center": center, "size": np.array(SIZES[obj.label]), "yaw": obj.heading(),
                        "score": 0.9, "points": obj.points})  # fmt: skip
        return out

    @staticmethod
    def cuboids(rows: list[dict]) -> Cuboids:
        if not rows:
            return Cuboids.empty("ego").with_num_lidar_points(np.zeros(0, np.int32))
        return Cuboids(
            "ego", np.array([r["center"] for r in rows]), np.array([r["size"] for r in rows]), np.array([r["yaw"] for r in rows]),
            np.array([r["label"] for r in rows]), np.array([r["score"] for r in rows], np.float32), np.array([r["track"] for r in rows]),
            np.array([r["points"] for r in rows], np.int32),
        )  # fmt: skip

    def camera_boxes(self, k: int, onboard: Cuboids) -> dict[str, CameraBoxes]:
        from av_pipeline.fusion.cuboids import project_cuboids

        cam = self.rig.camera("front")
        projected = project_cuboids(onboard, cam.model, cam.ego_SE3_camera.inverse(), name="front")
        keep = np.flatnonzero(projected.visible & projected.in_front)
        boxes = CameraBoxes("front", projected.box2d_px[keep], onboard.labels[keep], onboard.scores[keep], onboard.track_ids[keep])
        if self.edit_camera:
            boxes = self.edit_camera(k, boxes)
        return {"front": boxes}

    def planned_path(self, k: int):
        from av_pipeline.records import PlannedPath

        dt = np.arange(0.0, 3.01, 0.5)
        poses = np.column_stack([self.ego_speed_mps * dt, np.zeros_like(dt), np.zeros_like(dt)])
        if self.edit_path:
            poses = self.edit_path(k, poses)
        return PlannedPath(T0_NS + k * PERIOD_NS + (dt * 1e9).astype(np.int64), poses)

    def build(self) -> list[MiningFrame]:
        out = []
        for k in range(self.frames):
            truth = self.rows(k)
            onboard = None
            if self.with_onboard:
                rows = self.edit_onboard(k, [dict(r) for r in truth]) if self.edit_onboard else truth
                cuboids = self.cuboids(rows)
                extra = {}
                if self.with_path:
                    extra["planned_path"] = self.planned_path(k)
                onboard = OnboardPerception(cuboids, self.camera_boxes(k, cuboids) if self.with_camera_boxes else {}, **extra)
            shadow = None
            if self.with_shadow:
                rows = self.edit_shadow(k, [dict(r) for r in truth]) if self.edit_shadow else truth
                shadow = self.cuboids(rows)
            clusters = None
            if self.clusters_of is not None:
                found = self.clusters_of(k, truth)
                clusters = PointClusters(
                    np.array([c[0] for c in found], np.float32).reshape(-1, 3), np.array([c[1] for c in found], np.float32).reshape(-1, 3),
                    np.array([c[2] for c in found], np.int32),
                )  # fmt: skip
            image = None
            if self.sweep_of is not None:
                image = RangeImage.from_points(np.vstack([ground_points(), self.sweep_of(k, truth)]), LIDAR_ORIGIN)
            out.append(MiningFrame(self.log_id, T0_NS + k * PERIOD_NS, k, self.pose(k), shadow, onboard, clusters, image))
        return out
