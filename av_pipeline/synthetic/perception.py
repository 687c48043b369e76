"""The vehicle's "onboard perception", derived from ground truth with realistic errors and
planted anomalies: the answer key edge-case mining is measured against.

:func:`onboard_perception` is a plain function of the ground truth, a random generator and
:class:`~av_pipeline.synthetic.config.PerceptionConfig`:

- **Baseline** (not anomalies): every object within ``max_range_m`` with LiDAR visibility
  of at least ``min_visibility`` is reported in 3D with its true class and track id, with
  Gaussian centre / size / heading noise and a score that falls with range and occlusion;
  it also gets a 2D box in each camera that sees at least a fifth of it (the projected
  box plus pixel noise). Objects outside these limits are not reported, which is expected
  and not listed.
- **Anomalies**, each listed as an :class:`Anomaly` with its kind, track, frames and a reason:

  ====================  =====================================================================
  ``missed_object``     not reported at all for 3-8 frames; cause ``far`` (40-55 m, visibility
                        at least 0.5), ``occluded`` (visibility 0.25-0.5 within 30 m) or
                        ``rare_class`` (cyclist, truck within 35 m); always where the LiDAR
                        still sees the object, so the miss can be found
  ``ghost_object``      reported where nothing is (3D only, 3-6 frames, its own track id)
  ``class_confusion``   reported with another class (car<->van/truck, pedestrian<->cyclist)
  ``localization_error``  centre off by 1.2-2.5 m
  ``size_error``        size scaled by 1.5-1.9 or 0.45-0.65
  ``heading_error``     heading flipped (180 degrees) or off by 35-90 degrees
  ``track_flicker``     dropped for 1-3 frames in the middle of its track
  ``camera_only``       2D boxes but no 3D cuboid
  ``lidar_only``        3D cuboid but no 2D box in a camera that sees it
  ``ego_deviation``     the planner's path leaves the driven path by more than 0.5 m
  ====================  =====================================================================

  One anomaly per object and frame; a kind with a positive rate is planted
  ``max(1, round(rate * frames / 100))`` times when the log has a candidate (missed objects
  at least three times, once per cause).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.records import CameraBoxes, OnboardPerception
from av_pipeline.synthetic.actors import CLASS_SIZE_STATS
from av_pipeline.synthetic.config import ANOMALY_KINDS, PerceptionConfig
from av_pipeline.synthetic.ground_truth import FrameTruth

#: First track id of ghost objects (ground-truth ids are far below).
GHOST_TRACK_ID_BASE = 1_000_000
#: Planned and driven paths further apart than this (metres, anywhere over the horizon) are an ego deviation.
EGO_DEVIATION_THRESHOLD_M = 0.5
#: Reported 2D boxes need this share of the object visible in the camera.
MIN_CAMERA_VISIBILITY = 0.2
_CONFUSION = {"car": ("van", "truck"), "van": ("car",), "truck": ("van", "car"), "pedestrian": ("cyclist",), "cyclist": ("pedestrian",)}
_RARE = ("cyclist", "truck")


@dataclass(frozen=True)
class Anomaly:
    """One planted anomaly.

    Attributes:
        kind: one of :data:`~av_pipeline.synthetic.config.ANOMALY_KINDS`.
        track_id: the ground-truth track affected (a ghost's own id; -1 for ``ego_deviation``).
        first_frame, last_frame: frame indices, inclusive.
        first_timestamp_ns, last_timestamp_ns: the same as times.
        reason: one line a person reads.
        details: kind-specific values (``cause``, ``true_label``, ``reported_label``,
            ``offset_m``, ``scale``, ``yaw_error_deg``, ``cameras``, ``max_deviation_m`` ...).
    """

    kind: str
    track_id: int
    first_frame: int
    last_frame: int
    first_timestamp_ns: int
    last_timestamp_ns: int
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the answer-key schema)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Anomaly:
        """Inverse of :meth:`to_dict`."""
        return cls(**value)

    @property
    def frames(self) -> range:
        """The frame indices covered."""
        return range(self.first_frame, self.last_frame + 1)


def planted_count(rate_per_100_frames: float, frames: int) -> int:
    """How many events of a kind a log of ``frames`` frames gets."""
    return 0 if rate_per_100_frames <= 0 else max(1, int(round(rate_per_100_frames * frames / 100.0)))


@dataclass
class _Effect:
    """What an anomaly does to one object in one frame."""

    drop_3d: bool = False
    drop_2d: bool = False
    label: str | None = None
    offset_m: np.ndarray | None = None
    scale: float = 1.0
    yaw_error_rad: float = 0.0


def _track_table(truths: Sequence[FrameTruth], config: PerceptionConfig) -> dict[int, dict[int, int]]:
    """track id -> {frame index -> row in that frame's truth} for reportable objects."""
    table: dict[int, dict[int, int]] = {}
    for truth in truths:
        reportable = (truth.range_m <= config.max_range_m) & (truth.lidar_visibility >= config.min_visibility)
        for row in np.flatnonzero(reportable):
            table.setdefault(int(truth.cuboids.track_ids[row]), {})[truth.index] = int(row)
    return table


def _camera_visible(truth: FrameTruth, row: int) -> list[str]:
    return [
        name
        for name, vis in truth.camera_visibility.items()
        if vis[row] >= MIN_CAMERA_VISIBILITY and np.isfinite(truth.projected_boxes_px[name][row]).all()
    ]


class _Planner:
    def __init__(self, truths: Sequence[FrameTruth], config: PerceptionConfig, rng: np.random.Generator) -> None:
        self.truths = truths
        self.config = config
        self.rng = rng
        self.tracks = _track_table(truths, config)
        self.used: set[tuple[int, int]] = set()
        self.effects: dict[tuple[int, int], _Effect] = {}
        self.anomalies: list[Anomaly] = []

    def windows(self, length: int, ok) -> list[tuple[int, int]]:
        """All (track, first frame) whose next ``length`` frames are reportable, unused and pass ``ok(truth, row)``."""
        out = []
        for track in sorted(self.tracks):
            frames = self.tracks[track]
            for start in sorted(frames):
                span = range(start, start + length)
                if all(f in frames and (track, f) not in self.used and ok(self.truths[f], frames[f]) for f in span):
                    out.append((track, start))
        return out

    def pick(self, length_range: tuple[int, int], ok, extra=None) -> tuple[int, int, int] | None:
        # a random length first, then the others from the longest down
        first = int(self.rng.integers(length_range[0], length_range[1] + 1))
        lengths = [first] + [n for n in range(length_range[1], length_range[0] - 1, -1) if n != first]
        for length in lengths:
            candidates = [w for w in self.windows(length, ok) if extra is None or extra(w[0], w[1], length)]
            if candidates:
                track, start = candidates[int(self.rng.integers(len(candidates)))]
                return track, start, length
        return None

    def plant(self, kind: str, track: int, start: int, length: int, reason: str, details: dict, effect: _Effect) -> None:
        for f in range(start, start + length):
            self.used.add((track, f))
            self.effects[(track, f)] = effect
        first, last = self.truths[start], self.truths[start + length - 1]
        self.anomalies.append(Anomaly(kind, track, start, start + length - 1, first.timestamp_ns, last.timestamp_ns, reason, details))

    def label_of(self, track: int, frame: int) -> str:
        return str(self.truths[frame].cuboids.labels[self.tracks[track][frame]])


def _plant_object_anomalies(planner: _Planner, counts: dict[str, int]) -> None:
    rng = planner.rng
    missed_causes = ("far", "occluded", "rare_class")
    for n in range(counts.get("missed_object", 0)):
        for attempt in range(3):
            cause = missed_causes[(n + attempt) % 3]
            ok = {
                # planted where the LiDAR still sees the object (a miss nothing could reveal cannot be mined)
                "far": lambda t, r: 40.0 <= t.range_m[r] <= 55.0 and t.lidar_visibility[r] >= 0.5,
                "occluded": lambda t, r: 0.25 <= t.lidar_visibility[r] < 0.5 and t.range_m[r] < 30.0,
                "rare_class": lambda t, r: t.cuboids.labels[r] in _RARE and t.range_m[r] < 35.0 and t.lidar_visibility[r] >= 0.3,
            }[cause]
            choice = planner.pick((3, 8), ok)
            if choice:
                track, start, length = choice
                label = planner.label_of(track, start)
                why = {"far": "far away", "occluded": "mostly occluded", "rare_class": f"rare class {label}"}[cause]
                planner.plant(
                    "missed_object", track, start, length, f"{label} {track} not reported for {length} frames ({why})",
                    {"cause": cause, "true_label": label}, _Effect(drop_3d=True, drop_2d=True),
                )  # fmt: skip
                break

    for _ in range(counts.get("class_confusion", 0)):
        choice = planner.pick((3, 8), lambda t, r: t.range_m[r] < 50.0)
        if choice:
            track, start, length = choice
            label = planner.label_of(track, start)
            wrong = str(rng.choice(_CONFUSION[label]))
            planner.plant(
                "class_confusion", track, start, length, f"{label} {track} reported as {wrong} for {length} frames",
                {"true_label": label, "reported_label": wrong}, _Effect(label=wrong),
            )  # fmt: skip

    for _ in range(counts.get("localization_error", 0)):
        choice = planner.pick((3, 8), lambda t, r: t.range_m[r] < 50.0)
        if choice:
            track, start, length = choice
            magnitude = float(rng.uniform(1.2, 2.5))
            angle = float(rng.uniform(-np.pi, np.pi))
            offset = np.array([magnitude * np.cos(angle), magnitude * np.sin(angle), 0.0])
            planner.plant(
                "localization_error", track, start, length, f"{planner.label_of(track, start)} {track} placed {magnitude:.1f} m off for {length} frames",
                {"offset_m": round(magnitude, 3), "offset_ego_xy_m": [round(float(v), 3) for v in offset[:2]]}, _Effect(offset_m=offset),
            )  # fmt: skip

    for _ in range(counts.get("size_error", 0)):
        choice = planner.pick((3, 8), lambda t, r: t.range_m[r] < 50.0)
        if choice:
            track, start, length = choice
            scale = float(rng.uniform(1.5, 1.9)) if rng.random() < 0.5 else float(rng.uniform(0.45, 0.65))
            planner.plant(
                "size_error", track, start, length, f"{planner.label_of(track, start)} {track} reported {scale:.2f}x its size for {length} frames",
                {"scale": round(scale, 3)}, _Effect(scale=scale),
            )  # fmt: skip

    for _ in range(counts.get("heading_error", 0)):
        choice = planner.pick((3, 8), lambda t, r: t.range_m[r] < 50.0 and t.cuboids.labels[r] != "pedestrian")
        if choice:
            track, start, length = choice
            error = np.pi if rng.random() < 0.5 else float(rng.choice([-1.0, 1.0]) * np.deg2rad(rng.uniform(35.0, 90.0)))
            planner.plant(
                "heading_error", track, start, length,
                f"{planner.label_of(track, start)} {track} heading off by {np.degrees(abs(error)):.0f} degrees for {length} frames",
                {"yaw_error_deg": round(float(np.degrees(error)), 2)}, _Effect(yaw_error_rad=error),
            )  # fmt: skip

    for _ in range(counts.get("track_flicker", 0)):
        def surrounded(track: int, start: int, length: int) -> bool:
            frames = planner.tracks[track]
            before = [start - 2, start - 1]
            after = [start + length, start + length + 1]
            return all(f in frames and (track, f) not in planner.used for f in before + after)

        choice = planner.pick((1, 3), lambda t, r: t.range_m[r] < 60.0, surrounded)
        if choice:
            track, start, length = choice
            planner.plant(
                "track_flicker", track, start, length, f"{planner.label_of(track, start)} {track} dropped for {length} frame(s) mid-track",
                {"dropped_frames": length}, _Effect(drop_3d=True, drop_2d=True),
            )  # fmt: skip

    for kind in ("camera_only", "lidar_only"):
        for _ in range(counts.get(kind, 0)):
            choice = planner.pick((3, 8), lambda t, r: bool(_camera_visible(t, r)) and t.range_m[r] < 50.0)
            if choice:
                track, start, length = choice
                cameras = sorted({c for f in range(start, start + length) for c in _camera_visible(planner.truths[f], planner.tracks[track][f])})
                label = planner.label_of(track, start)
                if kind == "camera_only":
                    reason = f"{label} {track} seen by camera ({', '.join(cameras)}) but missing in 3D for {length} frames"
                    effect = _Effect(drop_3d=True)
                else:
                    reason = f"{label} {track} in 3D but without a box in camera ({', '.join(cameras)}) for {length} frames"
                    effect = _Effect(drop_2d=True)
                planner.plant(kind, track, start, length, reason, {"cameras": cameras}, effect)


@dataclass(frozen=True)
class _Ghost:
    track_id: int
    label: str
    start: int
    length: int
    center_world: np.ndarray
    yaw_world: float
    size: np.ndarray


def _plant_ghosts(truths: Sequence[FrameTruth], count: int, rng: np.random.Generator, anomalies: list[Anomaly]) -> list[_Ghost]:
    ghosts = []
    frames = len(truths)
    for n in range(count):
        length = int(min(rng.integers(3, 7), frames))
        start = int(rng.integers(0, frames - length + 1))
        label = "car" if rng.random() < 0.7 else "pedestrian"
        size = np.array(CLASS_SIZE_STATS[label][0])
        truth = truths[start]
        window = truths[start : start + length]
        for _attempt in range(50):
            xy = np.array([rng.uniform(12.0, 40.0), rng.uniform(-7.0, 7.0)])
            center_world = truth.world_SE3_ego.transform_points(np.array([[xy[0], xy[1], size[2] / 2]]))[0]
            if all(_clearance_m(t, center_world) > 5.0 for t in window):
                break
        yaw_world = truth.world_SE3_ego.yaw_rad + float(rng.uniform(-0.3, 0.3))
        track_id = GHOST_TRACK_ID_BASE + n
        ghosts.append(_Ghost(track_id, label, start, length, center_world, yaw_world, size))
        anomalies.append(
            Anomaly(
                "ghost_object", track_id, start, start + length - 1, truths[start].timestamp_ns, truths[start + length - 1].timestamp_ns,
                f"{label} reported for {length} frames where nothing is ({xy[0]:.0f} m ahead, {abs(xy[1]):.0f} m {'left' if xy[1] >= 0 else 'right'})",
                {"reported_label": label, "center_world_m": [round(float(v), 3) for v in center_world]},
            )
        )  # fmt: skip
    return ghosts


def _clearance_m(truth: FrameTruth, center_world: np.ndarray) -> float:
    """Horizontal distance from ``center_world`` to the nearest ground-truth box centre of ``truth``."""
    if len(truth.cuboids) == 0:
        return np.inf
    centers_world = truth.world_SE3_ego.transform_points(truth.cuboids.centers_m)
    return float(np.hypot(*(centers_world[:, :2] - center_world[:2]).T).min())


def onboard_perception(
    truths: Sequence[FrameTruth],
    config: PerceptionConfig,
    rng: np.random.Generator,
    ego_deviation_m: np.ndarray | None = None,
    ego_events: Sequence[Any] = (),
) -> tuple[list[OnboardPerception], list[Anomaly]]:
    """Onboard perception per frame and the planted anomalies.

    Args:
        truths: ground truth of every frame, in order (point counts are not used).
        config: rates and noise levels.
        rng: the only source of randomness.
        ego_deviation_m: ``(F,)`` largest distance between planned and driven path per frame;
            frames above :data:`EGO_DEVIATION_THRESHOLD_M` form ``ego_deviation`` anomalies.
        ego_events: the planted ego events (for the reasons).

    Returns:
        ``(per-frame OnboardPerception, anomalies sorted by first frame, kind, track)``.
    """
    frames = len(truths)
    counts = {kind: planted_count(config.rates.get(kind, 0.0), frames) for kind in ANOMALY_KINDS}
    if counts["missed_object"]:
        counts["missed_object"] = max(counts["missed_object"], 3)  # one per cause at least
    planner = _Planner(truths, config, rng)
    _plant_object_anomalies(planner, counts)
    anomalies = planner.anomalies
    ghosts = _plant_ghosts(truths, counts["ghost_object"], rng, anomalies)
    if ego_deviation_m is not None and counts["ego_deviation"]:
        anomalies += _ego_deviation_anomalies(truths, np.asarray(ego_deviation_m), ego_events)

    outputs = []
    for truth in truths:
        outputs.append(_frame_output(truth, planner, ghosts, config, rng))
    anomalies.sort(key=lambda a: (a.first_frame, a.kind, a.track_id))
    return outputs, anomalies


def _ego_deviation_anomalies(truths: Sequence[FrameTruth], deviation: np.ndarray, events: Sequence[Any]) -> list[Anomaly]:
    out = []
    above = deviation > EGO_DEVIATION_THRESHOLD_M
    k = 0
    while k < len(above):
        if not above[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(above) and above[end + 1]:
            end += 1
        peak = float(deviation[k : end + 1].max())
        t_mid = (k + end) / 2 * 0.1
        event = min(events, key=lambda e: abs(e.start_s + e.duration_s / 2 - t_mid)) if events else None
        if event is not None and event.kind == "swerve":
            reason = f"driver swerved {abs(event.amplitude):.1f} m {'left' if event.amplitude > 0 else 'right'}; the planner kept the lane"
        elif event is not None:
            reason = f"driver braked hard (-{event.amplitude:.1f} m/s); the planner kept the speed"
        else:
            reason = "planned and driven paths disagree"
        details = {"max_deviation_m": round(peak, 3)}
        if event is not None:
            details.update({"event": event.kind, "event_start_s": round(event.start_s, 3), "event_duration_s": round(event.duration_s, 3)})
        out.append(Anomaly("ego_deviation", -1, k, end, truths[k].timestamp_ns, truths[end].timestamp_ns, reason, details))
        k = end + 1
    return out


def _frame_output(truth: FrameTruth, planner: _Planner, ghosts: list[_Ghost], config: PerceptionConfig, rng: np.random.Generator) -> OnboardPerception:
    gt = truth.cuboids
    reportable = (truth.range_m <= config.max_range_m) & (truth.lidar_visibility >= config.min_visibility)
    centers, sizes, yaws, labels, scores, tracks = [], [], [], [], [], []
    camera_rows: dict[str, list[tuple[np.ndarray, str, float, int]]] = {name: [] for name in truth.camera_visibility}
    for row in np.flatnonzero(reportable):
        track = int(gt.track_ids[row])
        effect = planner.effects.get((track, truth.index), _Effect())
        label = effect.label or str(gt.labels[row])
        r = float(truth.range_m[row])
        vis = float(truth.lidar_visibility[row])
        score = float(np.clip(0.62 + 0.35 * vis - 0.004 * r + rng.normal(0.0, 0.03), 0.3, 0.99))
        sigma = config.center_noise_m + config.center_noise_per_m * r
        center = gt.centers_m[row] + rng.normal(0.0, sigma, 3) * np.array([1.0, 1.0, 0.3])
        size = gt.sizes_m[row] * (1.0 + rng.normal(0.0, config.size_noise, 3))
        yaw = gt.yaws_rad[row] + np.deg2rad(rng.normal(0.0, config.yaw_noise_deg))
        if effect.offset_m is not None:
            center = center + effect.offset_m
        size = size * effect.scale
        yaw = float(np.arctan2(np.sin(yaw + effect.yaw_error_rad), np.cos(yaw + effect.yaw_error_rad)))
        if not effect.drop_3d:
            centers.append(center), sizes.append(np.maximum(size, 0.05)), yaws.append(yaw), labels.append(label), scores.append(score), tracks.append(track)
        if not effect.drop_2d:
            for name in _camera_visible(truth, int(row)):
                box = truth.projected_boxes_px[name][row] + rng.normal(0.0, config.box_noise_px, 4)
                box = np.array([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])])
                camera_rows[name].append((box, label, float(np.clip(score + rng.normal(0.0, 0.02), 0.3, 0.99)), track))
    ego_SE3_world = truth.world_SE3_ego.inverse()
    for ghost in ghosts:
        if ghost.start <= truth.index < ghost.start + ghost.length:
            center = ego_SE3_world.transform_points(ghost.center_world[None])[0]
            yaw = ghost.yaw_world - truth.world_SE3_ego.yaw_rad
            centers.append(center), sizes.append(ghost.size.copy()), yaws.append(float(np.arctan2(np.sin(yaw), np.cos(yaw))))
            labels.append(ghost.label), scores.append(float(rng.uniform(0.4, 0.7))), tracks.append(ghost.track_id)
    cuboids = (
        Cuboids.from_arrays("ego", np.array(centers), np.array(sizes), np.array(yaws), labels, scores, tracks)
        if labels
        else Cuboids.empty("ego")
    )
    camera_boxes = {
        name: CameraBoxes(
            name,
            np.array([r[0] for r in rows]).reshape(-1, 4),
            np.array([r[1] for r in rows], dtype=str),
            np.array([r[2] for r in rows], dtype=np.float32),
            np.array([r[3] for r in rows], dtype=np.int64),
        )
        for name, rows in camera_rows.items()
    }
    return OnboardPerception(cuboids, camera_boxes)
