"""What a trigger sees: one log's mining frames in time order, with matches and tracks cached.

Triggers never read sweeps or images: everything comes from :class:`MiningFrame` records
(small), so per-log mining runs after a group-by on ``log_id`` on any Beam runner.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.mining.matching import FrameMatch, MatchConfig, match_frame
from av_pipeline.mining.records import Event, MiningFrame, ObjectRef
from calibration.rig import SensorRig


class MiningLog:
    """One log prepared for the triggers.

    Args:
        frames: the log's frames (any order; sorted here by ``index``; one log only).
        rig: the sensor rig (cameras with intrinsics), needed by camera triggers.
        match_config: gates for shadow/onboard matching.

    Raises:
        ValueError: frames of several logs, or two frames with one index.
    """

    def __init__(self, frames: Iterable[MiningFrame], rig: SensorRig | None = None, match_config: MatchConfig | None = None) -> None:
        self.frames: list[MiningFrame] = sorted(frames, key=lambda f: f.index)
        logs = {f.log_id for f in self.frames}
        if len(logs) > 1:
            raise ValueError(f"MiningLog: frames of several logs {sorted(logs)}")
        indices = [f.index for f in self.frames]
        if len(set(indices)) != len(indices):
            raise ValueError(f"MiningLog {next(iter(logs))}: duplicate frame indices")
        times = [f.timestamp_ns for f in self.frames]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"MiningLog {next(iter(logs))}: timestamps do not increase with the frame index")
        self.log_id = next(iter(logs)) if logs else ""
        self.rig = rig
        self.match_config = match_config or MatchConfig()
        self._matches: dict[int, FrameMatch] = {}
        self.position = {f.index: p for p, f in enumerate(self.frames)}

    def __len__(self) -> int:
        return len(self.frames)

    # ---- what the log carries
    def has(self, need: str) -> bool:
        """Whether the log carries ``need`` (:data:`av_pipeline.mining.registry.NEEDS`)."""
        if not self.frames:
            return False
        if need == "shadow":
            return any(f.shadow is not None for f in self.frames)
        if need == "onboard":
            # some readers give an OnboardPerception with no cuboids when a log carries only a
            # planned path or 2D boxes: a log whose onboard never reported a 3D object has none
            return any(f.onboard is not None and len(f.onboard.cuboids) > 0 for f in self.frames)
        if need == "camera_boxes":
            return any(f.onboard is not None and len(f.onboard.camera_boxes) > 0 for f in self.frames)
        if need == "rig":
            return self.rig is not None and len(self.rig.camera_names) > 0
        if need == "planned_path":
            return any(f.onboard is not None and getattr(f.onboard, "planned_path", None) is not None for f in self.frames)
        if need == "poses":
            return all(f.world_SE3_ego is not None for f in self.frames)
        raise ValueError(f"unknown need {need!r}")

    # ---- per-frame access
    def shadow(self, p: int) -> Cuboids:
        """Shadow cuboids at list position ``p`` (empty when none)."""
        return self.frames[p].shadow if self.frames[p].shadow is not None else Cuboids.empty("ego")

    def onboard(self, p: int) -> Cuboids:
        """Onboard cuboids at list position ``p`` (empty when none)."""
        onboard = self.frames[p].onboard
        return onboard.cuboids if onboard is not None else Cuboids.empty("ego")

    def match(self, p: int) -> FrameMatch:
        """Shadow/onboard matches at list position ``p`` (cached)."""
        if p not in self._matches:
            self._matches[p] = match_frame(self.shadow(p), self.onboard(p), self.match_config)
        return self._matches[p]

    def contiguous(self, p: int, q: int) -> bool:
        """Positions ``p < q`` are adjacent frames of the log (no frame missing between)."""
        return q == p + 1 and self.frames[q].index == self.frames[p].index + 1

    def dt_s(self, p: int, q: int) -> float:
        """Seconds from position ``p`` to ``q``."""
        return (self.frames[q].timestamp_ns - self.frames[p].timestamp_ns) * 1e-9

    def to_world(self, p: int, points_ego: np.ndarray) -> np.ndarray:
        """``(N, 3)`` ego points at position ``p`` in ``world`` (unchanged without a pose)."""
        pose = self.frames[p].world_SE3_ego
        points = np.asarray(points_ego, dtype=np.float64).reshape(-1, 3)
        return points if pose is None else pose.transform_points(points)

    def to_ego(self, p: int, points_world: np.ndarray) -> np.ndarray:
        """``(N, 3)`` world points in the ``ego`` frame of position ``p``."""
        pose = self.frames[p].world_SE3_ego
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        return points if pose is None else pose.inverse().transform_points(points)

    def object_ref(self, p: int, source: str, row: int) -> ObjectRef:
        """An :class:`ObjectRef` for ``row`` of the shadow or onboard cuboids at position ``p``."""
        boxes = self.shadow(p) if source == "shadow" else self.onboard(p)
        center = boxes.centers_m[row]
        world = None if self.frames[p].world_SE3_ego is None else tuple(float(v) for v in self.to_world(p, center)[0])
        points = -1 if boxes.num_lidar_points is None else int(boxes.num_lidar_points[row])
        return ObjectRef(
            source=source, track_id=int(boxes.track_ids[row]), label=str(boxes.labels[row]), frame_index=self.frames[p].index,
            center_ego_m=tuple(float(v) for v in center), center_world_m=world, score=float(boxes.scores[row]), num_lidar_points=points,
        )  # fmt: skip

    # ---- LiDAR support: points on an object fall with a power of its range, fitted per log
    @cached_property
    def _confirmed_boxes(self) -> dict[str, np.ndarray]:
        """Per class, ``(M, 2)`` ``(points, range_m)`` of every onboard box the shadow confirmed (or,
        without a shadow model, of onboard boxes with at least 10 points)."""
        values: dict[str, list[tuple[float, float]]] = {}
        use_shadow = self.has("shadow")
        for p in range(len(self.frames)):
            boxes = self.onboard(p)
            if boxes.num_lidar_points is None:
                continue
            for row in range(len(boxes)):
                points = float(boxes.num_lidar_points[row])
                if (use_shadow and self.match(p).onboard_is_matched(row)) or (not use_shadow and points >= 10):
                    values.setdefault(str(boxes.labels[row]), []).append((points, float(np.hypot(*boxes.centers_m[row, :2]))))
        return {label: np.asarray(v, dtype=np.float64).reshape(-1, 2) for label, v in values.items()}

    @cached_property
    def range_exponent(self) -> float:
        """``k`` in ``points ~ range^-k`` for this log's LiDAR, fitted on confirmed onboard boxes.

        Least squares of ``log(points)`` on ``log(range)`` with one intercept per class, over
        boxes with at least 5 points (fewer are mostly counting noise) beyond 3 m. 2 (an ideal
        scanner with even angular spacing) when fewer than 30 boxes, less than a 2x spread of
        ranges, or a fit outside ``[1, 4]`` (the counts then say more about occlusion than range).
        Real scanners lose points faster than ``range^-2`` (beams thinner near the ground and at the
        top, more of the object hidden at range): the development logs fit 2.4-3.3 per class.
        """
        xs, ys, ranges = [], [], []
        for v in self._confirmed_boxes.values():
            used = v[(v[:, 0] >= 5) & (v[:, 1] >= 3.0)]
            if len(used) >= 2:
                lx, ly = np.log(used[:, 1]), np.log(used[:, 0])
                xs.append(lx - lx.mean()), ys.append(ly - ly.mean()), ranges.append(used[:, 1])
        if sum(len(x) for x in xs) < 30:
            return 2.0
        x, y, r = np.concatenate(xs), np.concatenate(ys), np.concatenate(ranges)
        if r.max() < 2 * r.min() or float(x @ x) <= 0:
            return 2.0
        k = -float(x @ y) / float(x @ x)
        return k if 1.0 <= k <= 4.0 else 2.0

    def level(self, points: float | np.ndarray, range_m: float | np.ndarray) -> float | np.ndarray:
        """Range-free LiDAR support: ``points * range^k`` (:attr:`range_exponent`; ranges below 1 m count as 1 m)."""
        return points * np.maximum(range_m, 1.0) ** self.range_exponent

    def points_at(self, level: float | np.ndarray, range_m: float | np.ndarray) -> float | np.ndarray:
        """Points an object of support ``level`` (:meth:`level`) shows at ``range_m``."""
        return level * np.maximum(range_m, 1.0) ** -self.range_exponent

    def unoccluded_level(self, source: str, rows: dict[int, int], first: int, last: int, window: int) -> float:
        """The largest :meth:`level` of a track's boxes within ``window`` positions of ``[first, last]``.

        What the object shows when nothing hides it, as a range-free number:
        :meth:`points_at` gives the points expected at some range. 0 without point counts.
        """
        best = 0.0
        for p, row in rows.items():
            if first - window <= p <= last + window:
                boxes = self.shadow(p) if source == "shadow" else self.onboard(p)
                if boxes.num_lidar_points is not None:
                    best = max(best, float(self.level(float(boxes.num_lidar_points[row]), float(np.hypot(*boxes.centers_m[row, :2])))))
        return best

    @cached_property
    def _confirmed_levels(self) -> dict[str, np.ndarray]:
        return {label: self.level(v[:, 0], v[:, 1]) for label, v in self._confirmed_boxes.items()}

    @cached_property
    def typical_level(self) -> dict[str, float]:
        """Per class, the median :meth:`level` of confirmed onboard boxes: ``points_at(value, range)``
        points are typical for such an object at some range in this log."""
        return {label: float(np.median(v)) for label, v in self._confirmed_levels.items() if len(v)}

    @cached_property
    def unoccluded_class_level(self) -> dict[str, float]:
        """Per class, the 90th percentile :meth:`level` of confirmed onboard boxes: what such an object
        shows when little of it is hidden; most boxes in traffic are partly occluded, so the median
        (:attr:`typical_level`) is lower."""
        return {label: float(np.percentile(v, 90)) for label, v in self._confirmed_levels.items() if len(v)}

    def unexplained_points_near(self, p: int, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float, margin_m: float) -> int | None:
        """LiDAR points of unexplained clusters (:attr:`MiningFrame.clusters`) that could be a box's
        object (:meth:`~av_pipeline.mining.clusters.PointClusters.within_box`: centred in its footprint
        grown by ``margin_m``, not above its top) at position ``p``; ``None`` when the frame has no clusters.

        Args:
            p: list position.
            center_m: ``(3,)`` box centre in that frame's ``ego`` (metres).
            size_m: ``(3,)`` length, width, height (metres).
            yaw_rad: heading in ``ego``.
            margin_m: metres added on every side in bird's-eye view.
        """
        clusters = self.frames[p].clusters
        if clusters is None:
            return None
        return int(clusters.num_points[clusters.within_box(center_m, size_m, yaw_rad, margin_m)].sum())

    def lidar_visibility(self, p: int, center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float) -> float | None:
        """Share of a box the LiDAR's lines of sight reach at position ``p``
        (:meth:`~av_pipeline.mining.range_image.RangeImage.visibility`), or ``None`` when the
        frame carries no range image.

        Args:
            p: list position.
            center_m: ``(3,)`` box centre in that frame's ``ego`` (metres).
            size_m: ``(3,)`` length, width, height (metres).
            yaw_rad: heading in ``ego``.
        """
        image = self.frames[p].range_image
        return None if image is None else image.visibility(center_m, size_m, yaw_rad)

    # ---- tracks
    @cached_property
    def onboard_tracks(self) -> dict[int, dict[int, int]]:
        """Onboard track id -> {list position -> row}; boxes without a track id are skipped."""
        return _tracks([self.onboard(p) for p in range(len(self.frames))])

    @cached_property
    def shadow_tracks(self) -> dict[int, dict[int, int]]:
        """Shadow track id -> {list position -> row}; boxes without a track id get one of their own."""
        return _tracks([self.shadow(p) for p in range(len(self.frames))], own_ids_for_untracked=True)

    def runs(self, positions: Iterable[int]) -> list[list[int]]:
        """Split sorted list positions into runs of adjacent frames."""
        out: list[list[int]] = []
        for p in sorted(positions):
            if out and self.contiguous(out[-1][-1], p):
                out[-1].append(p)
            else:
                out.append([p])
        return out

    # ---- events
    def event(
        self, trigger: str, positions: Sequence[int], peak: int, score: float, label: str, range_m: float,
        objects: Sequence[ObjectRef], reason: str, details: dict[str, Any] | None = None,
    ) -> Event:  # fmt: skip
        """Build an :class:`Event` over list ``positions`` (first..last) with its peak at ``peak``."""
        first, last = self.frames[min(positions)], self.frames[max(positions)]
        return Event(
            trigger=trigger, log_id=self.log_id, first_frame=first.index, last_frame=last.index,
            first_timestamp_ns=first.timestamp_ns, last_timestamp_ns=last.timestamp_ns, peak_frame=self.frames[peak].index,
            score=float(np.clip(score, 0.0, 1.0)), label=label, range_m=float(range_m), objects=tuple(objects), reason=reason,
            details=details or {},
        )  # fmt: skip


def _tracks(per_frame: Sequence[Cuboids], own_ids_for_untracked: bool = False) -> dict[int, dict[int, int]]:
    tracks: dict[int, dict[int, int]] = {}
    own = -2
    for p, boxes in enumerate(per_frame):
        for row, track in enumerate(boxes.track_ids):
            track = int(track)
            if track < 0:
                if not own_ids_for_untracked:
                    continue
                track, own = own, own - 1
            tracks.setdefault(track, {})[p] = row
    return tracks


def frames_text(n: int) -> str:
    """``"1 frame"`` / ``"5 frames"``."""
    return f"{n} frame" if n == 1 else f"{n} frames"


__all__ = ["MiningLog", "frames_text"]
