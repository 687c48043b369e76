"""A spinning multi-beam LiDAR (HDL-64E-like) cast through the synthetic world.

**Timing.** The head turns clockwise seen from above, starting each revolution facing
backwards; column ``j`` of ``C`` fires at azimuth ``pi - (j + 1/2) * 2 pi / C`` and at time
``((j + 1/2) / C - 1/2) * period`` relative to the sweep's ``timestamp_ns``, the instant
the head faces forward (the KITTI convention: cameras are triggered then). Every column is
cast from the LiDAR's pose at its own time, against every actor at its pose at that time,
so ego motion and object motion skew the sweep as they do on a real scanner. Points are
stored in the LiDAR frame *at their capture time* (not de-skewed), with
``time_offsets_ns`` per point.

**Returns.** A pulse hitting a surface of reflectivity ``rho`` at range ``r`` with
incidence cosine ``cos`` gives a return with probability::

    p = return_factor * Phi((ln(rho_eff / 0.5) - 2 ln(r / r50)) / spread) * (1 - random_dropout)
    rho_eff = rho * (0.35 + 0.65 * cos)

(received power falls with ``r^2``; ``r50`` is ``LidarConfig.detection_range_m``; glass has
``return_factor`` 0.15). Ranges get Gaussian noise; intensity is ``1.4 * rho * (0.45 + 0.55 * cos)`` with 8 %
multiplicative noise, in ``[0, 1)`` like KITTI's reflectance, quantised to 8 bits;
coordinates are rounded to ``xyz_quantum_m``.

**Columns.** ``x, y, z, intensity, ring`` (float32; ``ring`` 0 is the top beam).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

import numpy as np

from av_pipeline.synthetic.actors import Actors
from av_pipeline.synthetic.config import LidarConfig
from av_pipeline.synthetic.ego import EgoTrajectory
from av_pipeline.synthetic.materials import REFLECTIVITY, RETURN_FACTOR
from av_pipeline.synthetic.raycast import ActorAtlas, Hits, StaticScene, nearest
from av_pipeline.synthetic.route import Route

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "ring")
#: Scales reflectivity to intensity so that asphalt reads about 0.2 and white paint about
#: 0.6, the ranges of KITTI's reflectance channel.
_INTENSITY_GAIN = 1.4


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): vectorised, no scipy needed.
    z = np.abs(x) / sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    e = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * e)


@dataclass(frozen=True, eq=False)
class SweepResult:
    """One simulated sweep.

    Attributes:
        points: ``(N, 5)`` float32 ``x, y, z, intensity, ring`` in the LiDAR frame at capture time.
        time_offsets_ns: ``(N,)`` int32 relative to the sweep time.
        semantic: ``(N,)`` int16 semantic class id (:data:`~av_pipeline.synthetic.materials.SEMANTIC_CLASSES`).
        actor: ``(N,)`` int64 index of the actor hit, -1 for static surfaces.
        rays: number of rays cast (beams x columns).
    """

    points: np.ndarray
    time_offsets_ns: np.ndarray
    semantic: np.ndarray
    actor: np.ndarray
    rays: int


class SpinningLidar:
    """Ray directions, timing and the return model of one spinning LiDAR."""

    def __init__(self, config: LidarConfig) -> None:
        self.config = config
        columns = config.azimuth_steps
        self.elevations_rad = np.deg2rad(np.asarray(config.elevations_deg, dtype=np.float64))
        fraction = (np.arange(columns) + 0.5) / columns
        self.azimuths_rad = np.pi - fraction * 2.0 * np.pi
        self.column_offsets_ns = np.round((fraction - 0.5) * config.period_ns).astype(np.int64)
        el, az = np.meshgrid(self.elevations_rad, self.azimuths_rad, indexing="xy")  # (C, B): column-major firing order
        self.directions_lidar = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
        self.ring = np.tile(np.arange(len(self.elevations_rad)), columns)
        self.column_of_ray = np.repeat(np.arange(columns), len(self.elevations_rad))
        self.mount = np.asarray(config.mount_xyz_m, dtype=np.float64)

    @property
    def rays_per_sweep(self) -> int:
        """Beams times columns."""
        return len(self.directions_lidar)

    def sweep(
        self,
        t_s: float,
        ego: EgoTrajectory,
        route: Route,
        actors: Actors,
        static: StaticScene,
        rng: np.random.Generator,
        actor_semantic: np.ndarray,
    ) -> SweepResult:
        """Simulate the sweep whose forward-facing instant is ``t_s`` seconds into the log."""
        cfg = self.config
        beams = len(self.elevations_rad)
        column_t = t_s + self.column_offsets_ns * 1e-9
        ego_pos, ego_yaw = ego.pose_arrays(column_t)
        c, s = np.cos(ego_yaw), np.sin(ego_yaw)
        origin_col = ego_pos + np.column_stack([c * self.mount[0] - s * self.mount[1], s * self.mount[0] + c * self.mount[1], np.full_like(c, self.mount[2])])
        d = self.directions_lidar
        cr, sr = np.repeat(c, beams), np.repeat(s, beams)
        directions = np.column_stack([cr * d[:, 0] - sr * d[:, 1], sr * d[:, 0] + cr * d[:, 1], d[:, 2]])
        origins = np.repeat(origin_col, beams, axis=0)
        hits = static.cast(origins, directions)
        hits = self._cast_actors(hits, t_s, column_t, origin_col, ego_pos, ego_yaw, origins, directions, route, actors)

        r = hits.t_m.astype(np.float64)
        hit = np.isfinite(r) & (r >= cfg.min_range_m) & (r <= cfg.max_range_m)
        material = np.maximum(hits.material, 0)
        cos_incidence = np.abs(np.einsum("ij,ij->i", hits.normal, directions))
        rho_eff = REFLECTIVITY[material] * (0.35 + 0.65 * cos_incidence)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (np.log(np.maximum(rho_eff, 1e-6) / 0.5) - 2.0 * np.log(np.maximum(r, 1e-3) / cfg.detection_range_m)) / cfg.detection_spread
        p_return = RETURN_FACTOR[material] * _normal_cdf(np.where(hit, score, -10.0)) * (1.0 - cfg.random_dropout)
        keep = hit & (rng.random(len(r)) < p_return)
        noise = rng.normal(0.0, cfg.range_noise_m, len(r))
        intensity = np.clip(_INTENSITY_GAIN * REFLECTIVITY[material] * (0.45 + 0.55 * cos_incidence) * (1.0 + rng.normal(0.0, 0.08, len(r))), 0.0, 1.0)

        idx = np.flatnonzero(keep)
        ranges = r[idx] + noise[idx]
        points = np.empty((len(idx), 5), dtype=np.float32)
        points[:, :3] = np.round(self.directions_lidar[idx] * (ranges[:, None] / cfg.xyz_quantum_m)) * cfg.xyz_quantum_m
        points[:, 3] = np.minimum(np.round(intensity[idx] * cfg.intensity_levels), cfg.intensity_levels - 1) / cfg.intensity_levels
        points[:, 4] = self.ring[idx]
        return SweepResult(
            points=points,
            time_offsets_ns=self.column_offsets_ns[self.column_of_ray[idx]].astype(np.int32),
            semantic=hits.semantic(actor_semantic)[idx],
            actor=hits.actor[idx],
            rays=len(r),
        )

    def _cast_actors(
        self,
        static_hits: Hits,
        t_s: float,
        column_t: np.ndarray,
        origin_col: np.ndarray,
        ego_pos: np.ndarray,
        ego_yaw: np.ndarray,
        origins: np.ndarray,
        directions: np.ndarray,
        route: Route,
        actors: Actors,
    ) -> Hits:
        cfg = self.config
        beams = len(self.elevations_rad)
        columns = len(self.azimuths_rad)
        mid = columns // 2
        lidar_pos = origin_col[mid]
        yaw_now = float(ego_yaw[mid])
        if len(actors) == 0:
            return static_hits
        centers, yaws = actors.poses(route, np.arange(len(actors)), np.full(len(actors), t_s))
        rel = centers - lidar_pos
        dist = np.hypot(rel[:, 0], rel[:, 1])
        # how far an actor can move relative to the LiDAR within half a sweep
        ego_speed = float(np.linalg.norm(ego_pos[-1] - ego_pos[0])) / (self.column_offsets_ns[-1] - self.column_offsets_ns[0]) * 1e9
        margin = (actors.speed_mps + ego_speed) * cfg.period_ns * 0.5e-9 + 0.2
        radius = np.linalg.norm(actors.sizes_m[:, :2], axis=1) / 2 + margin
        near = np.flatnonzero(dist - radius < cfg.max_range_m)
        if len(near) == 0:
            return static_hits
        # bearings of the footprint corners (grown by the margin), relative to the centre's bearing
        half = actors.sizes_m[near, :2] / 2 + margin[near, None]
        signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float64)
        local = signs[None] * half[:, None, :]
        c_y, s_y = np.cos(yaws[near])[:, None], np.sin(yaws[near])[:, None]
        corners = rel[near, None, :2] + np.stack([c_y * local[..., 0] - s_y * local[..., 1], s_y * local[..., 0] + c_y * local[..., 1]], axis=-1)
        center_bearing = np.arctan2(rel[near, 1], rel[near, 0])
        corner_bearing = np.arctan2(corners[..., 1], corners[..., 0]) - center_bearing[:, None]
        corner_bearing = np.arctan2(np.sin(corner_bearing), np.cos(corner_bearing))
        # the LiDAR inside a grown footprint (an actor brushing past): cast every column
        to_lidar = -rel[near, :2]
        lidar_local = np.column_stack([c_y[:, 0] * to_lidar[:, 0] + s_y[:, 0] * to_lidar[:, 1], -s_y[:, 0] * to_lidar[:, 0] + c_y[:, 0] * to_lidar[:, 1]])
        inside = np.all(np.abs(lidar_local) <= half, axis=1)
        lo_bearing = center_bearing + corner_bearing.min(axis=1) - np.deg2rad(0.3)
        hi_bearing = center_bearing + corner_bearing.max(axis=1) + np.deg2rad(0.3)
        step = 2.0 * np.pi / columns
        pair_actor, pair_column, ray_parts, pair_parts = [], [], [], []
        pairs = 0
        for j, k in enumerate(near):
            if not inside[j]:
                first = int(np.floor((np.pi - (hi_bearing[j] - yaw_now)) / step - 0.5))
                count = int(np.ceil((hi_bearing[j] - lo_bearing[j]) / step)) + 2
                cols = np.mod(np.arange(first, first + count), columns)
            else:
                cols = np.arange(columns)
            near_d = max(dist[k] - radius[k], 0.5)
            top = np.arctan2(actors.base_z_m[k] + actors.sizes_m[k, 2] + 0.2 - cfg.mount_xyz_m[2], near_d)
            bottom = np.arctan2(actors.base_z_m[k] - 0.2 - cfg.mount_xyz_m[2], near_d)
            beam_idx = np.flatnonzero((self.elevations_rad <= top + 0.005) & (self.elevations_rad >= bottom - 0.005))
            if len(beam_idx) == 0:
                continue
            rays = (cols[:, None] * beams + beam_idx[None, :]).ravel()
            pair = pairs + np.repeat(np.arange(len(cols)), len(beam_idx))
            # a ray whose static hit is nearer than the actor can ever be cannot see it
            visible = static_hits.t_m[rays] > dist[k] - radius[k] - 0.5
            if not visible.any():
                continue
            ray_parts.append(rays[visible])
            pair_parts.append(pair[visible])
            pair_actor.append(np.full(len(cols), k))
            pair_column.append(cols)
            pairs += len(cols)
        if not ray_parts:
            return static_hits
        ray_index = np.concatenate(ray_parts)
        pair_index = np.concatenate(pair_parts)
        pair_actor_arr = np.concatenate(pair_actor)
        pair_centers, pair_yaws = actors.poses(route, pair_actor_arr, column_t[np.concatenate(pair_column)])
        used = np.unique(pair_actor_arr[pair_index])
        slot_of_actor = np.full(len(actors), -1, dtype=np.int64)
        slot_of_actor[used] = np.arange(len(used))
        atlas = ActorAtlas([actors.meshes[k] for k in used])
        actor_index = pair_actor_arr[pair_index]
        t, material, normal = atlas.cast(
            slot_of_actor[actor_index], origins, directions, ray_index, pair_index, pair_centers, pair_yaws, cfg.max_range_m
        )
        return nearest(static_hits, ray_index, actor_index, t, material, normal)
