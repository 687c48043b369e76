"""Who changed? The onboard track's own values around a shadow-vs-onboard disagreement.

A disagreement between two models says that one of them is wrong, not which. The onboard
track itself usually does: if onboard's class, heading, size or path changes exactly when the
disagreement starts and changes back when it ends, the onboard stack made the error; if
onboard stays steady through it while the shadow's box differs, the shadow model is the more
likely culprit (its own heading flips, class confusions and size misses on sparse objects).

:func:`onboard_context` splits a track's frames into those of the disagreement (inside) and
up to ``window`` frames on either side of it (outside); the ``*_change`` functions compare the
two, in the ``world`` frame where the log has poses (so the ego's own turning is not a change).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from av_pipeline.mining.context import MiningLog
from av_pipeline.mining.matching import aligned_scale_error


@dataclass(frozen=True)
class TrackContext:
    """List positions and rows of one onboard track around a disagreement.

    Attributes:
        track: onboard track id.
        inside: positions of the disagreement where the track has a box.
        outside: positions within the window before and after it (not inside).
        rows: position -> row of the track's box.
    """

    track: int
    inside: tuple[int, ...]
    outside: tuple[int, ...]
    rows: dict[int, int]


def onboard_context(log: MiningLog, track: int, run: Sequence[int], window: int) -> TrackContext:
    """The onboard track's positions inside ``run`` (list positions, ascending) and within ``window`` positions around it."""
    rows = log.onboard_tracks.get(track, {})
    first, last = run[0], run[-1]
    inside = tuple(p for p in range(first, last + 1) if p in rows)
    outside = tuple(p for p in sorted(rows) if first - window <= p < first or last < p <= last + window)
    return TrackContext(track, inside, outside, rows)


def _yaw_world(log: MiningLog, p: int, row: int) -> float:
    pose = log.frames[p].world_SE3_ego
    return float(log.onboard(p).yaws_rad[row]) + (pose.yaw_rad if pose is not None else 0.0)


def _circular_mean(angles: np.ndarray) -> float:
    return float(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()))


def label_changed(log: MiningLog, ctx: TrackContext) -> bool | None:
    """Whether onboard's most common class inside differs from its most common class outside (None: no outside frames)."""
    if not ctx.outside or not ctx.inside:
        return None
    inside = Counter(str(log.onboard(p).labels[ctx.rows[p]]) for p in ctx.inside).most_common(1)[0][0]
    outside = Counter(str(log.onboard(p).labels[ctx.rows[p]]) for p in ctx.outside).most_common(1)[0][0]
    return inside != outside


def heading_change_deg(log: MiningLog, ctx: TrackContext) -> float | None:
    """Degrees between onboard's mean heading (``world``) inside and outside (None: no outside frames)."""
    if not ctx.outside or not ctx.inside:
        return None
    inside = _circular_mean(np.array([_yaw_world(log, p, ctx.rows[p]) for p in ctx.inside]))
    outside = _circular_mean(np.array([_yaw_world(log, p, ctx.rows[p]) for p in ctx.outside]))
    return float(np.degrees(abs((inside - outside + np.pi) % (2 * np.pi) - np.pi)))


def size_change(log: MiningLog, ctx: TrackContext) -> float | None:
    """Scale error (``1 - IoU`` of aligned boxes) between onboard's median size inside and outside.

    Length and width are compared as the longer and shorter side (a swapped pair is no change).
    """
    if not ctx.outside or not ctx.inside:
        return None

    def median(positions: Sequence[int]) -> np.ndarray:
        sizes = np.array([log.onboard(p).sizes_m[ctx.rows[p]] for p in positions], dtype=np.float64)
        footprint = np.column_stack([sizes[:, :2].max(axis=1), sizes[:, :2].min(axis=1), sizes[:, 2]])
        return np.median(footprint, axis=0)

    return float(aligned_scale_error(median(ctx.inside)[None], median(ctx.outside)[None])[0])


def center_change_m(log: MiningLog, ctx: TrackContext) -> float | None:
    """Median distance (metres, bird's eye) of onboard's centres inside from the constant-velocity
    path its centres outside follow (a least-squares line in time, ``world`` frame; the mean
    outside centre when only one outside frame exists)."""
    if not ctx.outside or not ctx.inside:
        return None

    def centers(positions: Sequence[int]) -> np.ndarray:
        return np.array([log.to_world(p, log.onboard(p).centers_m[ctx.rows[p]])[0, :2] for p in positions])

    t_out = np.array([log.frames[p].timestamp_ns for p in ctx.outside], dtype=np.float64) * 1e-9
    t_in = np.array([log.frames[p].timestamp_ns for p in ctx.inside], dtype=np.float64) * 1e-9
    xy_out, xy_in = centers(ctx.outside), centers(ctx.inside)
    t0 = t_out.mean()
    if len(t_out) >= 2 and np.ptp(t_out) > 0:
        design = np.column_stack([np.ones_like(t_out), t_out - t0])
        coef, *_ = np.linalg.lstsq(design, xy_out, rcond=None)
        predicted = np.column_stack([np.ones_like(t_in), t_in - t0]) @ coef
    else:
        predicted = np.repeat(xy_out.mean(axis=0)[None], len(t_in), axis=0)
    return float(np.median(np.hypot(*(xy_in - predicted).T)))


def change_evidence(changed: float) -> float:
    """How surely onboard itself changed, from its change as a share of the trigger's tolerance:
    0 up to half the tolerance (noise), 1 from the full tolerance on, linear between."""
    return float(np.clip((changed - 0.5) / 0.5, 0.0, 1.0))


def steadiness_factor(changed: float | None, steady_factor: float) -> float:
    """Score factor from how far onboard itself changed, as a share of the trigger's tolerance.

    ``changed`` >= 1 (onboard changed by the tolerance or more): 1. ``changed`` <= 0.5 (onboard
    steady): ``steady_factor``. Linear between (:func:`change_evidence`). ``None`` (no frames
    around the disagreement to compare with): 1, nothing is known.
    """
    if changed is None:
        return 1.0
    return steady_factor + (1.0 - steady_factor) * change_evidence(changed)


__all__ = [
    "TrackContext", "center_change_m", "change_evidence", "heading_change_deg", "label_changed", "onboard_context", "size_change", "steadiness_factor",
]  # fmt: skip
