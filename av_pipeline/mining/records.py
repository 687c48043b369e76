"""Records of the mining stage: what a frame contributes, what a trigger emits, what a case is.

- :class:`MiningFrame`: one frame's evidence, small enough to group per log (no points, no
  images): the shadow model's cuboids and the onboard perception, both in ``ego`` with the
  LiDAR points inside each box counted, the ego pose and the planner's path, and the
  clusters of LiDAR points no box explains.
- :class:`ObjectRef`: an object an event is about (which source, track, class, where).
- :class:`Event`: one trigger firing over a span of frames, with a score in ``[0, 1]`` and a
  one-line reason a person reads.
- :class:`Case`: events merged into one time window of one log, ranked; what a labelling
  team receives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError
from av_pipeline.mining.clusters import PointClusters
from av_pipeline.mining.range_image import RangeImage
from av_pipeline.records import OnboardPerception
from calibration.se3 import SE3

def _plain_fields(record: Any) -> tuple:
    """A frozen record's field values with read-only mappings as dicts (picklable)."""
    return tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in (getattr(record, f.name) for f in dataclasses.fields(record)))


def _rebuild(cls: type, values: tuple) -> Any:
    return cls(*values)


#: ``ObjectRef.source`` values.
OBJECT_SOURCES = ("shadow", "onboard", "camera", "ego")


@dataclass(frozen=True)
class MiningFrame:
    """One frame's evidence for mining.

    Attributes:
        log_id: the log.
        timestamp_ns: the frame's reference time.
        index: position of the frame in its log.
        world_SE3_ego: ego pose, or ``None`` when the log has none (temporal triggers then
            compare positions in ``ego``, which is only right for a parked vehicle).
        shadow: the shadow model's cuboids in ``ego`` (scores, labels, track ids after
            refinement), ``num_lidar_points`` filled; ``None`` when no shadow model ran.
        onboard: the vehicle's perception (cuboids in ``ego`` with ``num_lidar_points``
            filled, 2D camera boxes, planned path), or ``None`` when the log has none.
        clusters: LiDAR clusters above the ground that neither the shadow nor the onboard
            boxes explain (:func:`av_pipeline.mining.clusters.unexplained_clusters`), or
            ``None`` when not computed.
        range_image: the nearest above-ground LiDAR return per direction
            (:class:`~av_pipeline.mining.range_image.RangeImage`, about 7 KiB compressed),
            or ``None`` when not computed.
    """

    log_id: str
    timestamp_ns: int
    index: int
    world_SE3_ego: SE3 | None
    shadow: Cuboids | None
    onboard: OnboardPerception | None
    clusters: PointClusters | None = None
    range_image: RangeImage | None = None

    def __post_init__(self) -> None:
        for name in ("shadow",):
            boxes = getattr(self, name)
            if boxes is not None and boxes.frame != "ego":
                raise ShapeError(f"{self.log_id}@{self.timestamp_ns} {name}: expected cuboids in 'ego', got frame '{boxes.frame}'")
        if self.onboard is not None and self.onboard.cuboids.frame != "ego":
            raise ShapeError(f"{self.log_id}@{self.timestamp_ns} onboard: expected cuboids in 'ego', got frame '{self.onboard.cuboids.frame}'")

    @property
    def key(self) -> tuple[str, int]:
        """``(log_id, timestamp_ns)``."""
        return (self.log_id, self.timestamp_ns)

    def __reduce__(self) -> tuple:
        # read-only mappings inside OnboardPerception do not pickle; Beam shuffles these records
        onboard = None if self.onboard is None else (_rebuild, (type(self.onboard), _plain_fields(self.onboard)))
        return (_rebuild_mining_frame, (self.log_id, self.timestamp_ns, self.index, self.world_SE3_ego, self.shadow, onboard, self.clusters, self.range_image))


def _rebuild_mining_frame(log_id, timestamp_ns, index, pose, shadow, onboard, clusters=None, range_image=None) -> MiningFrame:
    if onboard is not None:
        onboard = onboard[0](*onboard[1])
    return MiningFrame(log_id, timestamp_ns, index, pose, shadow, onboard, clusters, range_image)


@dataclass(frozen=True)
class ObjectRef:
    """An object an event is about.

    Attributes:
        source: ``"shadow"``, ``"onboard"``, ``"camera"`` (an onboard 2D box) or ``"ego"``.
        track_id: the track id in that source (-1 when unknown).
        label: class name as that source gave it.
        frame_index: the frame the position below belongs to.
        center_ego_m: ``(x, y, z)`` in that frame's ``ego`` (metres; zeros for ``ego`` and
            for camera boxes without a 3D position).
        center_world_m: the same in ``world``, or ``None`` without a pose.
        score: the source's confidence (NaN when it has none).
        num_lidar_points: LiDAR points inside the box (-1 when not counted).
        camera: camera name for ``source == "camera"``, else ``""``.
    """

    source: str
    track_id: int
    label: str
    frame_index: int
    center_ego_m: tuple[float, float, float]
    center_world_m: tuple[float, float, float] | None = None
    score: float = float("nan")
    num_lidar_points: int = -1
    camera: str = ""

    def __post_init__(self) -> None:
        if self.source not in OBJECT_SOURCES:
            raise ValueError(f"object source: expected one of {OBJECT_SOURCES}, got {self.source!r}")

    @property
    def range_m(self) -> float:
        """Horizontal distance from the ego origin (metres)."""
        return float(np.hypot(self.center_ego_m[0], self.center_ego_m[1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "source": self.source,
            "track_id": int(self.track_id),
            "label": self.label,
            "frame_index": int(self.frame_index),
            "center_ego_m": [round(float(v), 3) for v in self.center_ego_m],
            "center_world_m": None if self.center_world_m is None else [round(float(v), 3) for v in self.center_world_m],
            "score": None if not np.isfinite(self.score) else round(float(self.score), 4),
            "num_lidar_points": int(self.num_lidar_points),
            "camera": self.camera,
        }


@dataclass(frozen=True)
class Event:
    """One trigger firing.

    Attributes:
        trigger: the trigger's registry name.
        log_id: the log.
        first_frame, last_frame: frame indices covered, inclusive.
        first_timestamp_ns, last_timestamp_ns: the same as times.
        peak_frame: the frame where the evidence is strongest (a case's key frame candidate).
        score: ``[0, 1]``, higher is more worth labelling.
        label: the class the event is about (``""`` for ego behaviour).
        range_m: horizontal distance of the object at ``peak_frame`` (0 for ego behaviour).
        objects: the objects involved.
        reason: one line: trigger, objects and the numbers that fired it.
        details: trigger-specific numbers (JSON-safe).
    """

    trigger: str
    log_id: str
    first_frame: int
    last_frame: int
    first_timestamp_ns: int
    last_timestamp_ns: int
    peak_frame: int
    score: float
    label: str
    range_m: float
    objects: tuple[ObjectRef, ...]
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.first_frame <= self.peak_frame <= self.last_frame):
            raise ValueError(f"event {self.trigger}: peak frame {self.peak_frame} outside [{self.first_frame}, {self.last_frame}]")
        if not (0.0 <= self.score <= 1.0):
            raise ValueError(f"event {self.trigger}: score must lie in [0, 1], got {self.score}")
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def frames(self) -> range:
        """Frame indices covered."""
        return range(self.first_frame, self.last_frame + 1)

    def __reduce__(self) -> tuple:
        return (_rebuild, (Event, _plain_fields(self)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "trigger": self.trigger,
            "log_id": self.log_id,
            "first_frame": int(self.first_frame),
            "last_frame": int(self.last_frame),
            "first_timestamp_ns": int(self.first_timestamp_ns),
            "last_timestamp_ns": int(self.last_timestamp_ns),
            "peak_frame": int(self.peak_frame),
            "score": round(float(self.score), 4),
            "label": self.label,
            "range_m": round(float(self.range_m), 2),
            "objects": [o.to_dict() for o in self.objects],
            "reason": self.reason,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Case:
    """Events of one log merged into one time window: a unit of labelling work.

    Attributes:
        case_id: ``<log_id>@<first_timestamp_ns>``, with ``-2``, ``-3``, ... for further cases that start
            in the same frame: stable across re-runs, unique per log.
        log_id: the log.
        first_frame, last_frame: the window (frame indices, inclusive).
        first_timestamp_ns, last_timestamp_ns: the same as times.
        key_frames: frame indices to label (they count against the budget).
        key_timestamps_ns: their times.
        score: ranking score (after rarity weighting), ``[0, 1]``.
        triggers: distinct triggers of the events, strongest first.
        labels: distinct classes involved.
        events: the events, strongest first.
        rank: position in the final selection (0 = best), -1 before selection.
    """

    case_id: str
    log_id: str
    first_frame: int
    last_frame: int
    first_timestamp_ns: int
    last_timestamp_ns: int
    key_frames: tuple[int, ...]
    key_timestamps_ns: tuple[int, ...]
    score: float
    triggers: tuple[str, ...]
    labels: tuple[str, ...]
    events: tuple[Event, ...]
    rank: int = -1

    @property
    def frames(self) -> range:
        """Frame indices of the window."""
        return range(self.first_frame, self.last_frame + 1)

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per event, strongest first."""
        return tuple(e.reason for e in self.events)

    @property
    def objects(self) -> tuple[ObjectRef, ...]:
        """All objects of all events."""
        return tuple(o for e in self.events for o in e.objects)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``cases.json`` row)."""
        return {
            "case_id": self.case_id,
            "rank": int(self.rank),
            "log_id": self.log_id,
            "first_frame": int(self.first_frame),
            "last_frame": int(self.last_frame),
            "first_timestamp_ns": int(self.first_timestamp_ns),
            "last_timestamp_ns": int(self.last_timestamp_ns),
            "key_frames": [int(f) for f in self.key_frames],
            "key_timestamps_ns": [int(t) for t in self.key_timestamps_ns],
            "score": round(float(self.score), 4),
            "triggers": list(self.triggers),
            "labels": list(self.labels),
            "reasons": list(self.reasons),
            "events": [e.to_dict() for e in self.events],
        }


__all__ = ["Case", "Event", "MiningFrame", "OBJECT_SOURCES", "ObjectRef"]
