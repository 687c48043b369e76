"""Mining measured against planted anomalies on synthetic drives generated in memory.

Used by ``benchmarks/mining.py`` and the tests: a drive is simulated LiDAR-only (no camera
rendering: the onboard 2D boxes come from the simulator's projections), the shadow model
runs over every sweep (the shipped detector with offboard refinement, or the ground truth as
an oracle), and the campaign's cases are scored against the drive's answer key.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
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
    keep_dir: Path | str | None = None,
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
        keep_dir: if given, each drive's mining evidence per shadow is pickled there
            (``LOG_ID.SHADOW.pkl``: mining frames, rig, answer key, truth boxes, about 8 MB for
            200 frames), so that :func:`rescore_kept` can mine it again with another campaign
            without simulating or running the shadow model. Only load such files from
            sources you trust (pickle).

    Returns:
        name -> :class:`SyntheticMiningRun`.
    """
    if keep_dir is not None:
        keep_dir = Path(keep_dir)
        keep_dir.mkdir(parents=True, exist_ok=True)
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
            if keep_dir is not None:
                kept = {"log_id": drive.config.log_id, "seed": seed, "shadow": name, "mined": mined, "rig": drive.rig,
                        "anomalies": drive.anomalies, "truth": truth[drive.config.log_id]}  # fmt: skip
                with open(keep_dir / f"{drive.config.log_id}.{name}.pkl", "wb") as handle:
                    pickle.dump(kept, handle, protocol=pickle.HIGHEST_PROTOCOL)
            seconds[name]["simulate"] += simulated
            seconds[name]["shadow"] += t2 - t1
            seconds[name]["mine"] += t3 - t2
            results[name].append(result)
            if progress:
                progress(f"[{name}] seed {seed}: {len(result.events)} events, {len(result.candidates)} candidate cases, {len(drive.anomalies)} anomalies planted")
        del log_frames
    return {name: _scored(results[name], campaign, anomalies, truth, seconds[name]) for name in shadows}


def _scored(results: list[LogMining], campaign: Campaign, anomalies: dict, truth: dict, seconds: dict[str, float]) -> SyntheticMiningRun:
    cases = select(results, campaign)
    return SyntheticMiningRun(results, cases, score_cases(cases, anomalies, truth, sum(r.frames for r in results)), seconds, dict(anomalies))


def rescore_kept(keep_dir: Path | str, campaign: Campaign, shadows: Sequence[str] | None = None) -> dict[str, SyntheticMiningRun]:
    """Mine the evidence :func:`mine_synthetic` kept in ``keep_dir`` again with ``campaign`` and score it.

    Tuning a campaign this way takes seconds per drive instead of a simulation and a detector
    run. Held-out numbers still need drives that were not used to tune it.

    Args:
        keep_dir: folder of ``LOG_ID.SHADOW.pkl`` files.
        campaign: the campaign to mine with.
        shadows: shadow names to load (default: every one found).

    Returns:
        name -> :class:`SyntheticMiningRun` (``seconds`` holds ``mine`` only).

    Raises:
        FileNotFoundError: no kept file (for the requested shadows) in ``keep_dir``.
    """
    files = sorted(Path(keep_dir).glob("*.pkl"))
    runs: dict[str, tuple[list, dict, dict, float]] = {}
    for path in files:
        name = path.name[: -len(".pkl")].rsplit(".", 1)[-1]
        if shadows is not None and name not in shadows:
            continue
        with open(path, "rb") as handle:
            kept = pickle.load(handle)
        t0 = time.perf_counter()
        result = mine_log(kept["mined"], campaign, kept["rig"])
        results, anomalies, truth, spent = runs.setdefault(name, ([], {}, {}, 0.0))
        results.append(result)
        anomalies[kept["log_id"]], truth[kept["log_id"]] = kept["anomalies"], kept["truth"]
        runs[name] = (results, anomalies, truth, spent + time.perf_counter() - t0)
    if not runs:
        raise FileNotFoundError(f"rescore_kept: no LOG_ID.SHADOW.pkl files{' for ' + ', '.join(shadows) if shadows else ''} in {keep_dir}")
    return {name: _scored(r, campaign, a, t, {"mine": spent}) for name, (r, a, t, spent) in runs.items()}


__all__ = ["BENCHMARK_RATES", "SyntheticMiningRun", "detector_shadow", "lidar_frames", "mine_synthetic", "oracle_shadow", "rescore_kept", "simulate"]
