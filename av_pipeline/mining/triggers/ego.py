"""Ego behaviour: the planner's path against the path the vehicle then drove.

At each frame the planner's path (``OnboardPerception.planned_path``, poses in that frame's
``ego``) is compared with the driven path: the ego poses of the following frames, expressed
in the same ``ego``. The gap at each future time is compared with a tolerance that grows with
the horizon (plans are less certain further out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.mining.context import MiningLog, frames_text
from av_pipeline.mining.records import Event, ObjectRef
from av_pipeline.mining.registry import param, trigger


@dataclass(frozen=True)
class EgoParams:
    """Parameters of ``planner_deviation``."""

    horizon_s: float = param(3.0, "compare the paths over this many seconds ahead", minimum=0.1)
    tolerance_m: float = param(0.25, "allowed gap at the current time (metres)", minimum=0.0)
    tolerance_per_s: float = param(0.1, "allowed gap grows by this much per second of horizon (metres/s)", minimum=0.0)
    min_frames: int = param(1, "the deviation must last this many adjacent frames", minimum=1)


def path_deviation(log: MiningLog, p: int, horizon_s: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Gap between planned and driven path for the frame at list position ``p``.

    Returns:
        ``(dt_s, gap_m)``, each ``(K,)``: seconds ahead and horizontal distance, at the times
        of the following frames within ``horizon_s`` that the plan covers; ``None`` when the
        frame has no plan or no pose, or no later frame is within reach.
    """
    frame = log.frames[p]
    path = None if frame.onboard is None else getattr(frame.onboard, "planned_path", None)
    if path is None or frame.world_SE3_ego is None or len(path.timestamps_ns) < 2:
        return None
    times = np.asarray(path.timestamps_ns, dtype=np.int64)
    later = [
        q for q in range(p + 1, len(log.frames))
        if log.frames[q].world_SE3_ego is not None and log.frames[q].timestamp_ns <= min(times[-1], frame.timestamp_ns + int(horizon_s * 1e9))
    ]  # fmt: skip
    if not later:
        return None
    driven = np.array([log.to_ego(p, log.frames[q].world_SE3_ego.translation)[0, :2] for q in later])
    t_driven = np.array([log.frames[q].timestamp_ns for q in later], dtype=np.int64)
    rel = (times - times[0]).astype(np.float64)
    at = (t_driven - times[0]).astype(np.float64)
    planned = np.column_stack([np.interp(at, rel, path.poses_ego[:, 0]), np.interp(at, rel, path.poses_ego[:, 1])])
    return (t_driven - frame.timestamp_ns) * 1e-9, np.hypot(*(planned - driven).T)


@trigger("planner_deviation", EgoParams, needs=("planned_path", "poses"), family="ego behaviour")
def planner_deviation(log: MiningLog, params: EgoParams) -> list[Event]:
    """The driven path leaves the planner's path by more than ``tolerance_m + tolerance_per_s * t`` within the horizon.

    Runs of adjacent flagged frames form one event. Score: largest ``gap / (2 * tolerance)``,
    capped at 1.
    """
    flagged: dict[int, tuple[float, float, float]] = {}
    for p in range(len(log.frames)):
        result = path_deviation(log, p, params.horizon_s)
        if result is None:
            continue
        dt, gap = result
        tol = params.tolerance_m + params.tolerance_per_s * dt
        if (gap > tol).any():
            i = int(np.argmax(gap / tol))
            flagged[p] = (float(gap[i]), float(dt[i]), float(gap[i] / tol[i]))
    events = []
    for run in log.runs(flagged):
        if len(run) < params.min_frames:
            continue
        peak = max(run, key=lambda p: flagged[p][2])
        gap, dt, ratio = flagged[peak]
        frame = log.frames[peak]
        obj = ObjectRef("ego", -1, "ego", frame.index, (0.0, 0.0, 0.0), None if frame.world_SE3_ego is None else tuple(float(v) for v in frame.world_SE3_ego.translation))
        reason = (
            f"planner_deviation: the driven path leaves the planned path by {gap:.2f} m {dt:.1f} s ahead "
            f"(tolerance {params.tolerance_m + params.tolerance_per_s * dt:.2f} m) for {frames_text(len(run))}"
        )
        events.append(log.event(
            "planner_deviation", run, peak, min(1.0, ratio / 2), "", 0.0, [obj], reason,
            {"max_gap_m": round(gap, 3), "at_s": round(dt, 2), "frames": len(run)},
        ))  # fmt: skip
    return events


__all__ = ["path_deviation", "planner_deviation"]
