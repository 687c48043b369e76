"""Offboard refinement of pre-labels over a whole log (what an online detector cannot do).

After Waymo's 3D Auto Labeling and MS3D++: detections of every frame are moved to the
``world`` frame (with the ego poses), tracked through the log, and each track is refined
with hindsight:

1. **tracking**: frame to frame, Hungarian assignment on BEV centre distance between each
   track's constant-velocity prediction and the new detections of the same class group,
   gated per group; unmatched detections above ``birth_score`` start tracks; a track ends
   after ``max_gap_frames`` frames without a detection;
2. **class**: the score-weighted vote over the track;
3. **heading**: 180-degree flips resolved by a score-weighted vote, then smoothed;
4. **size**: one consensus size (score-weighted median) for the whole track (rigid objects);
5. **centres**: a local linear fit over time (Gaussian window of ``smooth_sigma_s``, weights
   = scores), which keeps constant-velocity motion and removes jitter;
6. **gaps** of at most ``max_gap_frames`` frames are filled by the fitted motion;
7. **short, weak tracks** (fewer than ``min_track_frames`` detections and best score below
   ``keep_score``) are removed;
8. every box gets its track's id and the score ``0.5 * own + 0.5 * track mean`` (filled
   gaps: ``0.5 * track mean``).

Without ego poses the log's frames are taken as one fixed frame (no ego-motion
compensation); say so where results are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from calibration import SE3


@dataclass(frozen=True)
class RefineConfig:
    """Tracking and refinement parameters.

    Attributes:
        groups: class -> association group (classes of one group may be confused and
            still be one track).
        gate_m: group -> largest distance (m) between a track's prediction and a detection.
        birth_score: detections that start a track score at least this.
        max_gap_frames: a track survives this many frames without detection (and such
            gaps are filled).
        min_track_frames, keep_score: tracks with fewer detections whose best score is
            below ``keep_score`` are removed.
        smooth_sigma_s: time scale of the centre and heading smoothing.
        rigid_classes: classes that get one size per track.
    """

    groups: Mapping[str, str] = field(
        default_factory=lambda: {"car": "vehicle", "van": "vehicle", "truck": "vehicle", "pedestrian": "vru", "cyclist": "vru"}
    )
    gate_m: Mapping[str, float] = field(default_factory=lambda: {"vehicle": 2.5, "vru": 1.2})
    birth_score: float = 0.2
    max_gap_frames: int = 3
    min_track_frames: int = 3
    keep_score: float = 0.5
    smooth_sigma_s: float = 0.2
    rigid_classes: tuple[str, ...] = ("car", "van", "truck", "cyclist", "pedestrian")

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", dict(self.groups))
        object.__setattr__(self, "gate_m", dict(self.gate_m))


@dataclass(frozen=True, eq=False)
class TimedDetections:
    """One frame's detections.

    Attributes:
        timestamp_ns: frame time.
        world_SE3_ego: ego pose (``None``: no pose, frames are not motion-compensated).
        boxes: detections in ``ego`` with scores.
    """

    timestamp_ns: int
    world_SE3_ego: SE3 | None
    boxes: Cuboids


@dataclass
class RefineStats:
    """What refinement did.

    Attributes:
        input_boxes, output_boxes: boxes before and after.
        tracks: tracks kept.
        unborn_boxes: detections that matched no track and scored below ``birth_score``
            (they start nothing and are dropped).
        removed_tracks, removed_boxes: short weak tracks dropped, and their boxes.
        filled_boxes: boxes added in gaps.
        class_changes: boxes whose class the track vote changed.
        heading_flips: boxes turned by 180 degrees.
    """

    input_boxes: int = 0
    output_boxes: int = 0
    tracks: int = 0
    unborn_boxes: int = 0
    removed_tracks: int = 0
    removed_boxes: int = 0
    filled_boxes: int = 0
    class_changes: int = 0
    heading_flips: int = 0


@dataclass
class _Track:
    group: str
    frames: list[int] = field(default_factory=list)
    centers: list[np.ndarray] = field(default_factory=list)
    sizes: list[np.ndarray] = field(default_factory=list)
    yaws: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    misses: int = 0

    def predict(self, t_s: np.ndarray, frame: int) -> np.ndarray:
        """Constant-velocity prediction of the BEV centre at ``frame``."""
        last = self.centers[-1][:2]
        if len(self.frames) < 2:
            return last
        f0, f1 = self.frames[-2], self.frames[-1]
        dt = t_s[f1] - t_s[f0]
        velocity = (self.centers[-1][:2] - self.centers[-2][:2]) / dt if dt > 0 else np.zeros(2)
        return last + velocity * (t_s[frame] - t_s[f1])


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _to_world(frame: TimedDetections) -> Cuboids:
    if frame.world_SE3_ego is None:
        return frame.boxes
    return frame.boxes.transform(frame.world_SE3_ego, "world")


def _associate(tracks: list[_Track], boxes: Cuboids, groups: list[str], t_s: np.ndarray, k: int, config: RefineConfig) -> dict[int, int]:
    from scipy.optimize import linear_sum_assignment

    alive = [i for i, tr in enumerate(tracks) if tr.misses <= config.max_gap_frames]
    if not alive or len(boxes) == 0:
        return {}
    predicted = np.array([tracks[i].predict(t_s, k) for i in alive])
    dist = np.linalg.norm(predicted[:, None, :] - boxes.centers_m[None, :, :2], axis=2)
    gate = np.array([[config.gate_m.get(tracks[i].group, 2.0) if tracks[i].group == g else -1.0 for g in groups] for i in alive])
    cost = np.where(dist <= gate, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return {alive[r]: int(c) for r, c in zip(rows, cols) if cost[r, c] < 1e6}


def _local_linear(t: np.ndarray, values: np.ndarray, weights: np.ndarray, at: np.ndarray, sigma: float) -> np.ndarray:
    """Weighted local linear regression of ``values (n, d)`` over ``t (n,)`` evaluated at ``at (m,)``."""
    out = np.empty((len(at), values.shape[1]))
    for i, t0 in enumerate(at):
        w = weights * np.exp(-0.5 * ((t - t0) / sigma) ** 2)
        if w.sum() <= 1e-12:
            w = np.exp(-0.5 * ((t - t0) / sigma) ** 2)
        dt = t - t0
        sw, swt, swtt = w.sum(), (w * dt).sum(), (w * dt * dt).sum()
        det = sw * swtt - swt * swt
        if det <= 1e-12 * max(1.0, sw * swtt):  # one effective sample: weighted mean
            out[i] = (w[:, None] * values).sum(axis=0) / sw
            continue
        swy = (w[:, None] * values).sum(axis=0)
        swty = (w[:, None] * dt[:, None] * values).sum(axis=0)
        out[i] = (swtt * swy - swt * swty) / det
    return out


def _refine_track(track: _Track, t_s: np.ndarray, config: RefineConfig, stats: RefineStats) -> dict[int, tuple]:
    frames = np.array(track.frames)
    scores = np.array(track.scores, dtype=np.float64)
    labels = np.array(track.labels)
    names, inverse = np.unique(labels, return_inverse=True)
    label = str(names[np.argmax(np.bincount(inverse, weights=scores))])
    stats.class_changes += int((labels != label).sum())
    yaws = np.array(track.yaws)
    reference = yaws[np.argmax(scores)]
    flipped = np.abs(_wrap(yaws - reference)) > np.pi / 2
    if scores[flipped].sum() > scores[~flipped].sum():
        reference += np.pi
        flipped = ~flipped
    stats.heading_flips += int(flipped.sum())
    aligned = np.unwrap(reference + _wrap(yaws + np.where(flipped, np.pi, 0.0) - reference))
    sizes = np.array(track.sizes)
    if label in config.rigid_classes:
        order = np.argsort(sizes, axis=0)
        consensus = np.empty(3)
        for d in range(3):
            cum = np.cumsum(scores[order[:, d]])
            consensus[d] = sizes[order[np.searchsorted(cum, cum[-1] / 2), d], d]
    else:
        consensus = None
    gaps = np.diff(frames) - 1
    fill = np.concatenate([np.arange(f + 1, f + 1 + g) for f, g in zip(frames[:-1], gaps) if 0 < g <= config.max_gap_frames] or [np.zeros(0, int)])
    out_frames = np.sort(np.concatenate([frames, fill])).astype(int)
    t = t_s[frames]
    at = t_s[out_frames]
    centers = _local_linear(t, np.array(track.centers), scores, at, config.smooth_sigma_s)
    yaw_fit = _local_linear(t, aligned[:, None], scores, at, config.smooth_sigma_s)[:, 0]
    size_fit = np.tile(consensus, (len(out_frames), 1)) if consensus is not None else _local_linear(t, sizes, scores, at, config.smooth_sigma_s)
    mean_score = float(scores.mean())
    own = dict(zip(frames.tolist(), scores.tolist()))
    stats.filled_boxes += len(fill)
    return {
        int(f): (centers[i], size_fit[i], float(_wrap(yaw_fit[i])), label, 0.5 * own.get(int(f), 0.0) + 0.5 * mean_score)
        for i, f in enumerate(out_frames)
    }


def track_and_refine(frames: Sequence[TimedDetections], config: RefineConfig | None = None) -> tuple[list[Cuboids], RefineStats]:
    """Track detections through a log and refine them (see the module docstring).

    Args:
        frames: the log's frames in time order (timestamps strictly increasing).
        config: parameters (default :class:`RefineConfig`).

    Returns:
        ``(boxes per frame in ego with track ids, stats)``; boxes of unknown classes pass
        through unchanged (track id -1).

    Raises:
        ValueError: timestamps are not strictly increasing.
    """
    config = config or RefineConfig()
    stats = RefineStats()
    if not frames:
        return [], stats
    times = np.array([f.timestamp_ns for f in frames], dtype=np.int64)
    if (np.diff(times) <= 0).any():
        bad = int(np.flatnonzero(np.diff(times) <= 0)[0])
        raise ValueError(f"frames: timestamps must increase strictly; frame {bad + 1} ({times[bad + 1]} ns) follows {times[bad]} ns")
    t_s = (times - times[0]) * 1e-9
    tracks: list[_Track] = []
    passthrough: list[Cuboids] = []
    for k, frame in enumerate(frames):
        stats.input_boxes += len(frame.boxes)
        world = _to_world(frame)
        known = np.array([lbl in config.groups for lbl in world.labels], dtype=bool)
        passthrough.append(frame.boxes.subset(~known))
        boxes = world.subset(known)
        groups = [config.groups[lbl] for lbl in boxes.labels]
        matches = _associate(tracks, boxes, groups, t_s, k, config)
        used = set(matches.values())
        for i, tr in enumerate(tracks):
            if i in matches:
                j = matches[i]
                tr.frames.append(k)
                tr.centers.append(boxes.centers_m[j])
                tr.sizes.append(boxes.sizes_m[j])
                tr.yaws.append(float(boxes.yaws_rad[j]))
                tr.labels.append(str(boxes.labels[j]))
                tr.scores.append(float(boxes.scores[j]))
                tr.misses = 0
            else:
                tr.misses += 1
        for j in range(len(boxes)):
            if j in used:
                continue
            if boxes.scores[j] < config.birth_score:
                stats.unborn_boxes += 1
                continue
            tracks.append(_Track(groups[j], [k], [boxes.centers_m[j]], [boxes.sizes_m[j]], [float(boxes.yaws_rad[j])], [str(boxes.labels[j])], [float(boxes.scores[j])]))
    per_frame: list[list[tuple]] = [[] for _ in frames]
    track_id = 0
    for tr in tracks:
        if len(tr.frames) < config.min_track_frames and max(tr.scores) < config.keep_score:
            stats.removed_tracks += 1
            stats.removed_boxes += len(tr.frames)
            continue
        for f, row in _refine_track(tr, t_s, config, stats).items():
            per_frame[f].append((*row, track_id))
        track_id += 1
    stats.tracks = track_id
    out = []
    for k, frame in enumerate(frames):
        rows = per_frame[k]
        if rows:
            c, s, y, lbl, sc, tid = zip(*rows)
            world_boxes = Cuboids.from_arrays("world" if frame.world_SE3_ego is not None else "ego", c, s, y, lbl, sc, tid)
            ego_boxes = world_boxes.transform(frame.world_SE3_ego.inverse(), "ego") if frame.world_SE3_ego is not None else world_boxes
        else:
            ego_boxes = Cuboids.empty("ego")
        merged = _concat(ego_boxes, passthrough[k])
        stats.output_boxes += len(merged)
        out.append(merged)
    return out, stats


def _concat(a: Cuboids, b: Cuboids) -> Cuboids:
    if len(b) == 0:
        return a
    return Cuboids.from_arrays(
        "ego",
        np.concatenate([a.centers_m, b.centers_m]),
        np.concatenate([a.sizes_m, b.sizes_m]),
        np.concatenate([a.yaws_rad, b.yaws_rad]),
        np.concatenate([a.labels, b.labels]),
        np.concatenate([a.scores, b.scores]),
        np.concatenate([a.track_ids, b.track_ids]),
    )
