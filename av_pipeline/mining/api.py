"""Mining as plain functions: a frame's evidence, one log's events and cases, a run's selection.

>>> # per frame (where the sweep is loaded):    mf = mining_frame(frame, shadow_cuboids)
>>> # per log (after grouping by log_id):       result = mine_log(mining_frames, campaign, rig)
>>> # across logs:                              cases = select(results, campaign)

Beam wiring: :mod:`beam_jobs.mine`; command line: ``avp mine``; guide: docs/mining.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.points import frame_points_ego
from av_pipeline.mining import registry
from av_pipeline.mining.campaign import Campaign
from av_pipeline.mining.clusters import ClusterConfig, unexplained_clusters
from av_pipeline.mining.cases import build_cases, select_cases
from av_pipeline.mining.context import MiningLog
from av_pipeline.mining.range_image import RangeImage
from av_pipeline.mining.records import Case, Event, MiningFrame
from av_pipeline.records import Frame, OnboardPerception
from calibration.rig import SensorRig

#: Points this close above a box's bottom face are not counted as support (ground returns).
GROUND_CLEARANCE_M = 0.2


def count_supported_points(boxes: Cuboids, points_ego: np.ndarray, ground_clearance_m: float = GROUND_CLEARANCE_M) -> np.ndarray:
    """``(K,)`` LiDAR points inside each box, leaving out its lowest ``ground_clearance_m``.

    Ground returns under a box would otherwise make an empty box (a ghost) look supported.

    Args:
        boxes: ``K`` boxes in ``ego``.
        points_ego: ``(N, 3+)`` points in ``ego``.
        ground_clearance_m: metres cut off the bottom of every box (boxes keep at least 0.1 m).
    """
    if not len(boxes):
        return np.zeros(0, dtype=np.int32)
    cut = np.minimum(ground_clearance_m, np.maximum(0.0, boxes.sizes_m[:, 2] - 0.1))
    centers = boxes.centers_m.copy()
    centers[:, 2] += cut / 2
    sizes = boxes.sizes_m.copy()
    sizes[:, 2] -= cut
    lifted = Cuboids(boxes.frame, centers, sizes, boxes.yaws_rad, boxes.labels, boxes.scores, boxes.track_ids)
    return lifted.count_points(points_ego).astype(np.int32)


def mining_frame(
    frame: Frame,
    shadow: Cuboids | None,
    *,
    index: int,
    points_ego: np.ndarray | None = None,
    ground_clearance_m: float = GROUND_CLEARANCE_M,
    clusters: ClusterConfig | None = None,
    range_image: bool = True,
) -> MiningFrame:
    """A frame's evidence for mining: point counts for shadow and onboard boxes, the clusters
    of points no box explains and a coarse range image (what the LiDAR's lines of sight hit
    first); no sweep kept.

    Args:
        frame: the loaded frame (its LiDAR sweeps are read here).
        shadow: the shadow model's cuboids in ``ego`` (refined), or ``None``.
        index: the frame's index in its log (``FrameRef.index``).
        points_ego: ``(N, 3+)`` the frame's points in ``ego`` when already at hand.
        ground_clearance_m: see :func:`count_supported_points`.
        clusters: thresholds of :func:`~av_pipeline.mining.clusters.unexplained_clusters` (defaults when ``None``).
        range_image: keep a :class:`~av_pipeline.mining.range_image.RangeImage` from the origin
            of the frame's first LiDAR in the rig (all sweeps' points; about 7 KiB per frame compressed).
    """
    points = frame_points_ego(frame) if points_ego is None else points_ego
    if shadow is not None:
        shadow = shadow.with_num_lidar_points(count_supported_points(shadow, points, ground_clearance_m))
    onboard = frame.onboard
    if onboard is not None:
        cuboids = onboard.cuboids.with_num_lidar_points(count_supported_points(onboard.cuboids, points, ground_clearance_m))
        onboard = replace(onboard, cuboids=cuboids) if isinstance(onboard, OnboardPerception) else onboard
    explained = [b for b in (shadow, onboard.cuboids if onboard is not None else None) if b is not None]
    found = unexplained_clusters(points, explained, clusters)
    image = None
    origins = [frame.rig.lidars[name].translation for name in frame.lidars if name in frame.rig.lidars]
    if range_image and origins:
        image = RangeImage.from_points(points, origins[0])
    return MiningFrame(frame.log_id, frame.timestamp_ns, int(index), frame.world_SE3_ego, shadow, onboard, found, image)


@dataclass(frozen=True)
class LogMining:
    """One log's mining result.

    Attributes:
        log_id: the log.
        frames: frames mined.
        events: every event that passed the campaign's slices, strongest first.
        candidates: the log's cases before the budget (:func:`build_cases`).
        skipped: trigger -> why it did not run on this log (what the log lacks).
        events_per_trigger: trigger -> events fired (before slicing).
        sliced_out: events dropped by the slices (class or range), per trigger.
    """

    log_id: str
    frames: int
    events: tuple[Event, ...]
    candidates: tuple[Case, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    events_per_trigger: dict[str, int] = field(default_factory=dict)
    sliced_out: dict[str, int] = field(default_factory=dict)


def mine_log(frames: Iterable[MiningFrame], campaign: Campaign, rig: SensorRig | None = None) -> LogMining:
    """Run the campaign's triggers over one log and form its candidate cases.

    Triggers whose needs the log does not meet (no onboard perception, no planned path, no
    shadow model, no rig ...) are skipped and listed in ``skipped`` with the reason; the
    others still run.
    """
    log = MiningLog(frames, rig)
    events: list[Event] = []
    skipped: dict[str, str] = {}
    fired: dict[str, int] = {}
    for name, params in campaign.trigger_params.items():
        spec = registry.get(name)
        missing = sorted(n for n in spec.needs if not log.has(n))
        if missing:
            skipped[name] = f"the log has no {', '.join(missing)}"
            continue
        found = spec.function(log, params)
        fired[name] = len(found)
        events += found
    kept, sliced = [], Counter()
    top = campaign.slices.range_bins_m[-1]
    for event in events:
        if (event.label and event.label not in campaign.slices.classes) or event.range_m > top:
            sliced[event.trigger] += 1
        else:
            kept.append(event)
    kept.sort(key=lambda e: (-e.score, e.first_frame))
    candidates = build_cases(kept, campaign.cases)
    return LogMining(log.log_id, len(log), tuple(kept), tuple(candidates), skipped, fired, dict(sliced))


def select(results: Sequence[LogMining], campaign: Campaign) -> list[Case]:
    """The run's cases: candidates of every log selected under the campaign's budget."""
    frames = sum(r.frames for r in results)
    return select_cases([c for r in results for c in r.candidates], campaign.budget, campaign.cases, frames)


def range_bin(range_m: float, edges: Sequence[float]) -> str:
    """``"20-40 m"`` for a range within ``edges`` (``"beyond"`` past the last edge)."""
    for lo, hi in zip(edges, edges[1:]):
        if lo <= range_m < hi:
            return f"{lo:g}-{hi:g} m"
    return "beyond"


__all__ = ["GROUND_CLEARANCE_M", "LogMining", "count_supported_points", "mine_log", "mining_frame", "range_bin", "select"]
