"""Mining measured against planted anomalies on synthetic drives generated in memory.

Used by ``benchmarks/mining.py`` and the tests: a drive is simulated LiDAR-only (no camera
rendering: the onboard 2D boxes come from the simulator's projections), the shadow model
runs over every sweep (the shipped detector with offboard refinement, or the ground truth as
an oracle), and the campaign's cases are scored against the drive's answer key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from av_pipeline.boxes import Cuboids
from av_pipeline.mining.answer_key import MiningScore, score_cases
from av_pipeline.mining.api import LogMining, mine_log, mining_frame, select
from av_pipeline.mining.campaign import Campaign
from av_pipeline.mining.records import Case
from av_pipeline.records import Frame

#: Anomalies per 100 frames used by the benchmark: about one of each kind in a 200-frame log
#: (missed objects: one per cause), a rate at which a 10% key-frame budget can hold them all.
BENCHMARK_RATES = {
    "missed_object": 0.5,
    "ghost_object": 0.5,
    "class_confusion": 0.5,
    "localization_error": 0.5,
    "size_error": 0.5,
    "heading_error": 0.5,
    "track_flicker": 0.5,
    "camera_only": 0.5,
    "lidar_only": 0.5,
    "ego_deviation": 0.5,
}


@dataclass
class SyntheticMiningRun:
    """Results of :func:`mine_synthetic`.

    Attributes:
        results: per log.
        cases: selected cases.
        score: against the answer keys.
        seconds: wall time per part (``simulate``, ``shadow``, ``mine``).
        anomalies: log id -> the planted anomalies (the answer keys).
    """

    results: list[LogMining]
    cases: list[Case]
    score: MiningScore
    seconds: dict[str, float] = field(default_factory=dict)
    anomalies: dict[str, list] = field(default_factory=dict)

    def missed(self) -> list[tuple[str, object]]:
        """``(log id, Anomaly)`` of every planted anomaly no case finds."""
        from av_pipeline.mining.answer_key import anomaly_id

        wanted = set(self.score.missed)
        return [(log, a) for log, items in self.anomalies.items() for a in items if f"{log}/{anomaly_id(a)}" in wanted]


def simulate(seed: int, frames: int, rates: dict[str, float] | None = None):
    """A :class:`~av_pipeline.synthetic.SyntheticDrive` of ``frames`` frames with the given anomaly rates."""
    from av_pipeline.synthetic import PerceptionConfig, SimulationConfig, SyntheticDrive

    rates = BENCHMARK_RATES if rates is None else rates
    return SyntheticDrive(SimulationConfig(frames=frames, seed=seed, log_id=f"mining_{seed}", perception=PerceptionConfig(rates=rates)))


def lidar_frames(drive) -> list[Frame]:
    """Every frame of ``drive`` with its LiDAR sweep, pose and onboard perception (no images)."""
    out = []
    for index in range(len(drive)):
        sweep = drive.sweep(index)
        truth = drive.truths[index]
        out.append(Frame(
            log_id=drive.config.log_id, timestamp_ns=truth.timestamp_ns, rig=drive.rig, world_SE3_ego=truth.world_SE3_ego,
            lidars={drive.config.lidar.name: sweep.lidar}, images={}, onboard=drive.onboard[index], annotations=sweep.annotations,
        ))  # fmt: skip
    return out


def oracle_shadow(frames: Sequence[Frame]) -> list[Cuboids]:
    """The ground truth as the shadow model (scores 1, true track ids)."""
    return [f.annotations for f in frames]


def detector_shadow(detector) -> Callable[[Sequence[Frame]], list[Cuboids]]:
    """The detector over every frame, then offboard refinement over the log."""

    def run(frames: Sequence[Frame]) -> list[Cuboids]:
        from av_pipeline.detect.refine import TimedDetections, track_and_refine

        raw = []
        for start in range(0, len(frames), 4):
            raw += detector.detect_batch(frames[start : start + 4])
        refined, _ = track_and_refine([TimedDetections(f.timestamp_ns, f.world_SE3_ego, boxes) for f, boxes in zip(frames, raw)])
        return refined

    return run


def mine_synthetic(
    seeds: Sequence[int],
    frames: int,
    campaign: Campaign,
    shadows: Mapping[str, Callable[[Sequence[Frame]], list[Cuboids]]],
    rates: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, SyntheticMiningRun]:
    """Simulate ``seeds`` once each, run every shadow model over each drive, mine with ``campaign`` and score.

    Args:
        seeds: one drive per seed.
        frames: frames per drive.
        campaign: the campaign.
        shadows: name -> (frames -> shadow cuboids per frame), e.g. :func:`oracle_shadow`,
            :func:`detector_shadow`.
        rates: anomaly rates (default :data:`BENCHMARK_RATES`).
        progress: called with a line per finished drive and shadow.

    Returns:
        name -> :class:`SyntheticMiningRun`.
    """
    seconds = {name: {"simulate": 0.0, "shadow": 0.0, "mine": 0.0} for name in shadows}
    results: dict[str, list[LogMining]] = {name: [] for name in shadows}
    anomalies, truth = {}, {}
    for seed in seeds:
        t0 = time.perf_counter()
        drive = simulate(seed, frames, rates)
        log_frames = lidar_frames(drive)
        simulated = time.perf_counter() - t0
        anomalies[drive.config.log_id] = drive.anomalies
        truth[drive.config.log_id] = {i: f.annotations for i, f in enumerate(log_frames)}
        for name, shadow in shadows.items():
            t1 = time.perf_counter()
            shadow_boxes = shadow(log_frames)
            t2 = time.perf_counter()
            mined = [mining_frame(f, s, index=i) for i, (f, s) in enumerate(zip(log_frames, shadow_boxes))]
            result = mine_log(mined, campaign, drive.rig)
            t3 = time.perf_counter()
            seconds[name]["simulate"] += simulated
            seconds[name]["shadow"] += t2 - t1
            seconds[name]["mine"] += t3 - t2
            results[name].append(result)
            if progress:
                progress(f"[{name}] seed {seed}: {len(result.events)} events, {len(result.candidates)} candidate cases, {len(drive.anomalies)} anomalies planted")
        del log_frames
    runs = {}
    for name in shadows:
        cases = select(results[name], campaign)
        runs[name] = SyntheticMiningRun(
            results[name], cases, score_cases(cases, anomalies, truth, sum(r.frames for r in results[name])), seconds[name], dict(anomalies)
        )  # fmt: skip
    return runs


__all__ = ["BENCHMARK_RATES", "SyntheticMiningRun", "detector_shadow", "lidar_frames", "mine_synthetic", "oracle_shadow", "simulate"]
