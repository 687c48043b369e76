"""Traffic: vehicles in lanes, parked cars, pedestrians on sidewalks, cyclists in bike lanes.

Object sizes are drawn from per-class statistics of real labels (:data:`CLASS_SIZE_STATS`).
Every actor moves along the road at a constant speed and lateral offset (``s = s0 + dir * v
* t``), so its track is smooth and consistent over any number of frames. Actors sharing a
lane share its speed and keep their gaps, so nobody drives through anybody; vehicles in the
ego's lane that the ego would reach (or that would reach the ego) are left out. Lateral
placement noise is clipped so that the widest objects in adjacent lanes and sidewalk
sub-lanes (walkers at 11.95 m and 13.2 m, standing people at 14.35 m) never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.synthetic.config import SceneConfig
from av_pipeline.synthetic.materials import MATERIAL_ID, PAINT_IDS, PAINT_SHARES
from av_pipeline.synthetic.meshes import Mesh, actor_mesh
from av_pipeline.synthetic.route import Route
from av_pipeline.synthetic.world import BIKE_LANE_M, CURB_HEIGHT_M, LANE_CENTERS_M, PARKING_M

#: Box size statistics per class, ``(mean (l, w, h), std (l, w, h))`` in metres: the means
#: of the KITTI object training labels (Car 3.88 x 1.63 x 1.53, Van 5.08 x 1.90 x 2.21,
#: Truck 10.11 x 2.59 x 3.25, Pedestrian 0.84 x 0.66 x 1.76, Cyclist 1.76 x 0.60 x 1.74;
#: the same values seed the anchors of KITTI detectors) with their spreads; nuScenes'
#: means (car 4.63 x 1.95 x 1.74, pedestrian 0.73 x 0.67 x 1.76, bicycle 1.70 x 0.60 x 1.28)
#: fall inside one or two standard deviations. Samples are clipped to +-2 sigma.
CLASS_SIZE_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "car": ((3.88, 1.63, 1.53), (0.43, 0.10, 0.14)),
    "van": ((5.08, 1.90, 2.21), (0.51, 0.17, 0.32)),
    "truck": ((10.11, 2.59, 3.25), (2.84, 0.24, 0.42)),
    "pedestrian": ((0.84, 0.66, 1.76), (0.23, 0.14, 0.11)),
    "cyclist": ((1.76, 0.60, 1.74), (0.18, 0.12, 0.10)),
}
#: Classes of actors the generator makes (the labels of ground-truth cuboids).
ACTOR_CLASSES: tuple[str, ...] = tuple(CLASS_SIZE_STATS)
#: Share of each vehicle class in moving traffic.
TRAFFIC_MIX = {"car": 0.8, "van": 0.12, "truck": 0.08}
#: Lanes: name -> (lateral offset, direction along s, speed range m/s).
LANES: dict[str, tuple[float, int, tuple[float, float]]] = {
    "right_outer": (LANE_CENTERS_M["right_outer"], 1, (8.0, 10.5)),
    "right_inner": (LANE_CENTERS_M["right_inner"], 1, (11.0, 14.0)),
    "left_inner": (LANE_CENTERS_M["left_inner"], -1, (10.0, 13.0)),
    "left_outer": (LANE_CENTERS_M["left_outer"], -1, (8.0, 10.5)),
}
EGO_LANE = "right_outer"
EGO_SIZE_LWH_M = (4.6, 1.9, 1.6)


def _jitter(rng: np.random.Generator, sigma_m: float, limit_m: float) -> float:
    """Lateral placement noise, clipped so neighbours in adjacent lanes or sub-lanes never overlap."""
    return float(np.clip(rng.normal(0.0, sigma_m), -limit_m, limit_m))


def sample_size(label: str, rng: np.random.Generator) -> np.ndarray:
    """``(3,)`` length, width, height for one object of class ``label``."""
    mean, std = (np.array(v) for v in CLASS_SIZE_STATS[label])
    size = mean + std * np.clip(rng.standard_normal(3), -2.0, 2.0)
    if label == "truck":
        size[0] = max(size[0], 6.0)
    return size


@dataclass(frozen=True, eq=False)
class Actors:
    """A set of A actors (struct of arrays) with their meshes in the box frame.

    Attributes:
        track_ids: ``(A,)`` int64, unique, positive.
        labels: ``(A,)`` class names (:data:`ACTOR_CLASSES`).
        sizes_m: ``(A, 3)`` length, width, height.
        s0_m, d_m: ``(A,)`` road coordinates at ``t = 0``.
        direction: ``(A,)`` +1 moves (and faces) towards increasing ``s``, -1 the other way.
        speed_mps: ``(A,)`` speed along the road (0 for parked / standing).
        yaw_offset_rad: ``(A,)`` heading relative to the direction of travel.
        base_z_m: ``(A,)`` height of the surface the actor stands on.
        paint: ``(A,)`` material id of the main colour (vehicles), else -1.
        meshes: ``A`` meshes in the box frame.
    """

    track_ids: np.ndarray
    labels: np.ndarray
    sizes_m: np.ndarray
    s0_m: np.ndarray
    d_m: np.ndarray
    direction: np.ndarray
    speed_mps: np.ndarray
    yaw_offset_rad: np.ndarray
    base_z_m: np.ndarray
    paint: np.ndarray
    meshes: tuple[Mesh, ...]

    def __len__(self) -> int:
        return len(self.track_ids)

    def road_s(self, index: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Arc length of actors ``index`` at times ``t_s`` (broadcast together)."""
        return self.s0_m[index] + self.direction[index] * self.speed_mps[index] * t_s

    def poses(self, route: Route, index: np.ndarray, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box centres ``(N, 3)`` and yaws ``(N,)`` of actors ``index`` ``(N,)`` at times ``t_s`` ``(N,)``."""
        index = np.asarray(index, dtype=np.int64)
        t_s = np.broadcast_to(np.asarray(t_s, dtype=np.float64), index.shape)
        xy, heading = route.pose(self.road_s(index, t_s), self.d_m[index])
        yaw = heading + np.where(self.direction[index] < 0, np.pi, 0.0) + self.yaw_offset_rad[index]
        z = self.base_z_m[index] + self.sizes_m[index, 2] / 2.0
        return np.column_stack([xy, z]), np.arctan2(np.sin(yaw), np.cos(yaw))

    def velocities(self, route: Route, index: np.ndarray, t_s: float) -> np.ndarray:
        """World velocities ``(N, 3)`` at time ``t_s`` (central difference over 10 ms)."""
        index = np.asarray(index, dtype=np.int64)
        a, _ = self.poses(route, index, np.full(len(index), t_s - 0.005))
        b, _ = self.poses(route, index, np.full(len(index), t_s + 0.005))
        return (b - a) / 0.01


class _ActorBuilder:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rows: list[dict] = []

    def add(self, label: str, size: np.ndarray, s0: float, d: float, direction: int, speed: float, yaw_offset: float, base_z: float) -> None:
        paint = -1
        if label in ("car", "van", "truck"):
            paint = int(PAINT_IDS[self.rng.choice(len(PAINT_IDS), p=PAINT_SHARES)])
        mesh = actor_mesh(label, size, paint if paint >= 0 else MATERIAL_ID["paint_grey"], self.rng)
        self.rows.append(
            dict(label=label, size=size, s0=s0, d=d, direction=direction, speed=speed, yaw_offset=yaw_offset, base_z=base_z, paint=paint, mesh=mesh)
        )

    def build(self) -> Actors:
        rows = self.rows
        return Actors(
            track_ids=np.arange(1, len(rows) + 1, dtype=np.int64),
            labels=np.array([r["label"] for r in rows], dtype=str).reshape(-1),
            sizes_m=np.array([r["size"] for r in rows], dtype=np.float64).reshape(-1, 3),
            s0_m=np.array([r["s0"] for r in rows], dtype=np.float64),
            d_m=np.array([r["d"] for r in rows], dtype=np.float64),
            direction=np.array([r["direction"] for r in rows], dtype=np.int64),
            speed_mps=np.array([r["speed"] for r in rows], dtype=np.float64),
            yaw_offset_rad=np.array([r["yaw_offset"] for r in rows], dtype=np.float64),
            base_z_m=np.array([r["base_z"] for r in rows], dtype=np.float64),
            paint=np.array([r["paint"] for r in rows], dtype=np.int64),
            meshes=tuple(r["mesh"] for r in rows),
        )


def _fill_line(rng: np.random.Generator, s_lo: float, s_hi: float, mean_gap: float, min_gap: float) -> list[float]:
    """Positions along ``[s_lo, s_hi]`` at least ``min_gap`` apart (plus exponential gaps of mean ``mean_gap``)."""
    positions = []
    s = s_lo + float(rng.exponential(mean_gap))
    while s < s_hi:
        positions.append(s)
        s += min_gap + float(rng.exponential(mean_gap))
    return positions


def build_actors(
    route: Route, ego_s: np.ndarray, times_s: np.ndarray, scene: SceneConfig, rng: np.random.Generator, reach_m: float = 160.0
) -> Actors:
    """Populate the street around the ego's path.

    Args:
        route: the road.
        ego_s: ``(T,)`` ego arc length at ``times_s`` (a fine grid over the log).
        times_s: ``(T,)`` seconds since the first frame.
        reach_m: actors are created wherever they come within this distance (along the
            road) of the ego at some time of the log.
    """
    builder = _ActorBuilder(rng)
    s_lo_static, s_hi_static = float(ego_s.min() - reach_m), float(ego_s.max() + reach_m)

    # moving traffic, lane by lane
    for lane, (d, direction, (v_lo, v_hi)) in LANES.items():
        speed = float(rng.uniform(v_lo, v_hi))
        reach = ego_s - direction * speed * times_s  # s0 that puts an actor at the ego at each time
        s = float(reach.min() - reach_m) + float(rng.uniform(0.0, 20.0))
        s_hi = float(reach.max() + reach_m)
        while s < s_hi:
            label = str(rng.choice(list(TRAFFIC_MIX), p=list(TRAFFIC_MIX.values())))
            size = sample_size(label, rng)
            s_center = s + size[0] / 2
            track_s = s_center + direction * speed * times_s
            keep = True
            if lane == EGO_LANE:  # never overlap the ego (which changes speed)
                keep = bool(np.all(np.abs(track_s - ego_s) > (size[0] + EGO_SIZE_LWH_M[0]) / 2 + 3.0))
            if keep:
                builder.add(label, size, s_center, d + _jitter(rng, 0.08, 0.15), direction, speed, float(rng.normal(0.0, 0.01)), 0.0)
            s += size[0] + 8.0 + float(rng.exponential(scene.lane_vehicle_gap_m))

    # parked cars in the parking strips (facing the direction of traffic on their side)
    for side in (-1, 1):
        s = s_lo_static + float(rng.uniform(0.0, 5.0))
        while s < s_hi_static:
            label = "car" if rng.random() < 0.88 else "van"
            size = sample_size(label, rng)
            if rng.random() < scene.parked_car_share:
                builder.add(
                    label, size, s + size[0] / 2, side * PARKING_M + _jitter(rng, 0.08, 0.15), -side, 0.0, float(rng.normal(0.0, 0.03)), 0.0
                )
                s += size[0] + float(rng.uniform(0.6, 2.5))
            else:
                s += float(rng.uniform(4.0, 7.0))

    # cyclists in the bike lanes, one speed per lane
    for side in (-1, 1):
        speed = float(rng.uniform(4.0, 6.5))
        reach = ego_s + side * speed * times_s
        mean_gap = 100.0 / max(scene.cyclists_per_100m, 1e-6)
        for s_center in _fill_line(rng, float(reach.min() - reach_m), float(reach.max() + reach_m), mean_gap, 10.0):
            builder.add("cyclist", sample_size("cyclist", rng), s_center, side * BIKE_LANE_M + _jitter(rng, 0.08, 0.15), -side, speed, 0.0, 0.0)

    # pedestrians: two walking sub-lanes per sidewalk (one per direction, one speed each) and standing people
    for side in (-1, 1):
        for sub_d, direction in ((11.95, 1), (13.2, -1)):
            speed = float(rng.uniform(1.1, 1.5))
            reach = ego_s - direction * speed * times_s
            mean_gap = 100.0 / max(scene.pedestrians_per_100m * 0.4, 1e-6)
            for s_center in _fill_line(rng, float(reach.min() - reach_m), float(reach.max() + reach_m), mean_gap, 1.6):
                size = sample_size("pedestrian", rng)
                builder.add("pedestrian", size, s_center, side * sub_d + _jitter(rng, 0.05, 0.08), direction, speed, 0.0, CURB_HEIGHT_M)
        mean_gap = 100.0 / max(scene.pedestrians_per_100m * 0.2, 1e-6)
        for s_center in _fill_line(rng, s_lo_static, s_hi_static, mean_gap, 1.5):
            size = sample_size("pedestrian", rng)
            facing = float(rng.choice([0.0, np.pi])) + float(rng.uniform(-0.17, 0.17))  # along the street, either way
            builder.add("pedestrian", size, s_center, side * 14.35, 1, 0.0, facing, CURB_HEIGHT_M)
    return builder.build()
