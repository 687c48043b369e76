"""Configuration of a synthetic drive: scene, sensors, onboard-perception errors, output.

Every field has a default that gives a realistic urban drive; everything random is drawn
from generators seeded by :attr:`SimulationConfig.seed`, so one config gives one log, byte
for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from av_pipeline.errors import ConfigError


def hdl64e_elevations_deg() -> tuple[float, ...]:
    """The 64 beam elevations of an HDL-64E-like scanner, top beam first (degrees).

    Upper block: 32 beams from +2.0 to -8.33 degrees (about 1/3 degree apart); lower block:
    32 beams from -8.83 to -24.8 degrees (about 1/2 degree apart).
    """
    upper = np.linspace(2.0, -8.33, 32)
    lower = np.linspace(-8.83, -24.8, 32)
    return tuple(float(v) for v in np.concatenate([upper, lower]).round(4))


@dataclass(frozen=True)
class LidarConfig:
    """A spinning multi-beam LiDAR.

    Attributes:
        name: sensor (and frame) name in the rig.
        elevations_deg: beam elevations, top first; the ring index is the position here.
        azimuth_steps: firings per revolution (HDL-64E at 10 Hz: about 2083, 0.173 degrees).
        rotation_hz: revolutions per second; one sweep per revolution.
        mount_xyz_m: LiDAR origin in ``ego`` (x forward, y left, z up; ego origin on the
            ground below the rear axle).
        max_range_m, min_range_m: returns outside are dropped.
        range_noise_m: 1-sigma Gaussian range noise.
        random_dropout: share of returns lost at random (beyond the physical model).
        detection_range_m: range at which a return from a matte surface of reflectivity
            0.5 seen head-on is detected with probability 0.5 (the received power falls
            with range squared; see :mod:`av_pipeline.synthetic.lidar`).
        detection_spread: log-normal spread of the detection threshold (larger = softer).
        xyz_quantum_m: coordinates are rounded to multiples of this (2^-8 m = 3.9 mm, well
            below the range noise; like a sensor's range resolution it makes sweeps compress
            about twice as well).
        intensity_levels: intensity is quantised to ``k / intensity_levels`` (8-bit, as
            Velodyne sensors report it).
    """

    name: str = "lidar_top"
    elevations_deg: tuple[float, ...] = field(default_factory=hdl64e_elevations_deg)
    azimuth_steps: int = 2083
    rotation_hz: float = 10.0
    mount_xyz_m: tuple[float, float, float] = (1.2, 0.0, 1.73)
    max_range_m: float = 120.0
    min_range_m: float = 2.0
    range_noise_m: float = 0.02
    random_dropout: float = 0.01
    detection_range_m: float = 95.0
    detection_spread: float = 1.0
    xyz_quantum_m: float = 2.0**-8
    intensity_levels: int = 256

    @property
    def beams(self) -> int:
        """Number of beams."""
        return len(self.elevations_deg)

    @property
    def period_ns(self) -> int:
        """Duration of one revolution in nanoseconds."""
        return int(round(1e9 / self.rotation_hz))


@dataclass(frozen=True)
class CameraConfig:
    """One camera of the rig (radial-tangential distortion, OpenCV order k1, k2, p1, p2, k3).

    Attributes:
        name: camera (and frame) name.
        width_px, height_px: image size.
        hfov_deg: horizontal field of view of the undistorted pinhole (sets fx = fy).
        yaw_deg: heading of the optical axis in ``ego`` (0 = forward, +90 = left).
        mount_xyz_m: camera centre in ``ego``.
        pitch_deg: downward tilt of the optical axis.
        distortion: ``(k1, k2, p1, p2, k3)``.
        jpeg_quality: quality of the JPEG images written to MCAP.
    """

    name: str
    width_px: int
    height_px: int
    hfov_deg: float
    yaw_deg: float
    mount_xyz_m: tuple[float, float, float]
    pitch_deg: float = 2.0
    distortion: tuple[float, float, float, float, float] = (-0.12, 0.03, 0.0, 0.0, 0.0)
    jpeg_quality: int = 88


def default_cameras(scale: float = 1.0) -> tuple[CameraConfig, ...]:
    """Front camera (800x450 at ``scale = 1``) and two side cameras looking 70 degrees left and right (512x288)."""

    def size(w: int, h: int) -> tuple[int, int]:
        return max(16, int(round(w * scale))), max(9, int(round(h * scale)))

    fw, fh = size(800, 450)
    sw, sh = size(512, 288)
    return (
        CameraConfig("front", fw, fh, 90.0, 0.0, (1.9, 0.0, 1.45)),
        CameraConfig("left", sw, sh, 100.0, 70.0, (1.6, 0.45, 1.45), distortion=(-0.18, 0.04, 0.0, 0.0, 0.0)),
        CameraConfig("right", sw, sh, 100.0, -70.0, (1.6, -0.45, 1.45), distortion=(-0.18, 0.04, 0.0, 0.0, 0.0)),
    )


@dataclass(frozen=True)
class SceneConfig:
    """The street and its traffic.

    Attributes:
        ego_speed_mps: mean ego speed.
        lane_vehicle_gap_m: mean free gap between vehicles in a lane (exponential, plus 8 m).
        parked_car_share: share of the parking strips occupied.
        pedestrians_per_100m: per sidewalk.
        cyclists_per_100m: per bike lane.
        building_gap_share: share of the street front without buildings.
        trees_per_100m: per side.
    """

    ego_speed_mps: float = 9.0
    lane_vehicle_gap_m: float = 28.0
    parked_car_share: float = 0.65
    pedestrians_per_100m: float = 7.0
    cyclists_per_100m: float = 1.0
    building_gap_share: float = 0.2
    trees_per_100m: float = 6.0


#: Anomaly kinds planted in the onboard perception (see docs/synthetic.md).
ANOMALY_KINDS: tuple[str, ...] = (
    "missed_object",
    "ghost_object",
    "class_confusion",
    "localization_error",
    "size_error",
    "heading_error",
    "track_flicker",
    "camera_only",
    "lidar_only",
    "ego_deviation",
)


def _default_rates() -> dict[str, float]:
    return {
        "missed_object": 3.0,
        "ghost_object": 2.0,
        "class_confusion": 2.0,
        "localization_error": 2.0,
        "size_error": 2.0,
        "heading_error": 2.0,
        "track_flicker": 3.0,
        "camera_only": 2.0,
        "lidar_only": 2.0,
        "ego_deviation": 1.0,
    }


@dataclass(frozen=True)
class PerceptionConfig:
    """How the onboard perception output is derived from ground truth.

    Attributes:
        rates: planted anomalies per 100 frames, by kind (:data:`ANOMALY_KINDS`); a kind
            with a positive rate is planted ``max(1, round(rate * frames / 100))`` times
            when the log has a candidate. ``missed_object`` events cycle through the causes
            far, occluded and rare class (at least one each).
        max_range_m: objects further than this are not reported (expected, not an anomaly).
        min_visibility: objects with a smaller LiDAR visibility are not reported (expected).
        center_noise_m: 1-sigma centre noise at 0 m; grows by ``center_noise_per_m`` per metre.
        size_noise: relative 1-sigma size noise.
        yaw_noise_deg: 1-sigma heading noise.
        box_noise_px: 1-sigma noise of 2D box edges.
    """

    rates: Mapping[str, float] = field(default_factory=_default_rates)
    max_range_m: float = 70.0
    min_visibility: float = 0.15
    center_noise_m: float = 0.05
    center_noise_per_m: float = 0.004
    size_noise: float = 0.04
    yaw_noise_deg: float = 2.0
    box_noise_px: float = 2.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(ANOMALY_KINDS))
        if unknown:
            raise ConfigError(f"perception rates: unknown anomaly kinds {unknown}; expected some of {list(ANOMALY_KINDS)}")
        bad = {k: v for k, v in self.rates.items() if not (float(v) >= 0.0)}
        if bad:
            raise ConfigError(f"perception rates: expected non-negative numbers, got {bad}")
        object.__setattr__(self, "rates", {k: float(self.rates.get(k, 0.0)) for k in ANOMALY_KINDS})


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a synthetic log.

    Attributes:
        frames: number of LiDAR sweeps (frames) to generate.
        seed: the random seed; same config and seed give a byte-identical log.
        log_id: name of the log (the MCAP file stem).
        start_time_ns: time of the first sweep (its forward-facing instant), ns since 1970.
        lidar, cameras, scene, perception: see their classes.
    """

    frames: int = 40
    seed: int = 0
    log_id: str = "synthetic"
    start_time_ns: int = 1_715_680_800_000_000_000  # 2024-05-14 10:00:00 UTC
    lidar: LidarConfig = field(default_factory=LidarConfig)
    cameras: tuple[CameraConfig, ...] = field(default_factory=default_cameras)
    scene: SceneConfig = field(default_factory=SceneConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)

    def __post_init__(self) -> None:
        if int(self.frames) < 1:
            raise ConfigError(f"frames: expected a positive number of frames, got {self.frames}")
        if int(self.seed) < 0:
            raise ConfigError(f"seed: expected a non-negative integer, got {self.seed}")
        names = [c.name for c in self.cameras] + [self.lidar.name]
        if len(set(names)) != len(names) or "ego" in names:
            raise ConfigError(f"sensor names: expected unique names other than 'ego', got {names}")
        if not self.log_id or "/" in self.log_id:
            raise ConfigError(f"log_id: expected a non-empty file-name-safe string, got {self.log_id!r}")

    @property
    def frame_period_ns(self) -> int:
        """Time between frames (one LiDAR revolution)."""
        return self.lidar.period_ns

    def with_(self, **changes: Any) -> SimulationConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (written into the log's metadata side file; tuples become lists)."""
        out = asdict(self)
        out["perception"]["rates"] = dict(self.perception.rates)
        return json.loads(json.dumps(out))


__all__ = [
    "ANOMALY_KINDS",
    "CameraConfig",
    "LidarConfig",
    "PerceptionConfig",
    "SceneConfig",
    "SimulationConfig",
    "default_cameras",
    "hdl64e_elevations_deg",
]
