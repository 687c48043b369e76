"""Active learning: shadow detections the model is unsure of are worth labelling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.mining.context import MiningLog, frames_text
from av_pipeline.mining.records import Event
from av_pipeline.mining.registry import param, trigger
from av_pipeline.taxonomy import PRODUCT_CLASSES

_CLASSES = tuple(PRODUCT_CLASSES)


@dataclass(frozen=True)
class UncertainParams:
    """Parameters of ``uncertain_shadow``."""

    min_score: float = param(0.25, "lower end of the uncertain score band", minimum=0.0, maximum=1.0)
    max_score: float = param(0.5, "upper end of the uncertain score band", minimum=0.0, maximum=1.0)
    min_points: int = param(20, "the box needs this many LiDAR points (something is there)", minimum=0)
    min_frames: int = param(3, "the shadow track stays uncertain this many adjacent frames", minimum=1)
    max_range_m: float = param(50.0, "ignore boxes further than this (metres)", minimum=0.0)
    classes: tuple[str, ...] = param(_CLASSES, "classes to consider", choices=_CLASSES)


@trigger("uncertain_shadow", UncertainParams, needs=("shadow",), family="active learning")
def uncertain_shadow(log: MiningLog, params: UncertainParams) -> list[Event]:
    """A shadow track whose scores stay inside ``[min_score, max_score]`` on a LiDAR-supported box.

    Score: 1 at the middle of the band, falling to 0.5 at its ends.
    """
    events = []
    mid, half = (params.min_score + params.max_score) / 2, max(1e-9, (params.max_score - params.min_score) / 2)
    for track, rows in log.shadow_tracks.items():
        hits = []
        for p, row in rows.items():
            boxes = log.shadow(p)
            points = -1 if boxes.num_lidar_points is None else int(boxes.num_lidar_points[row])
            if (
                boxes.labels[row] in params.classes and params.min_score <= boxes.scores[row] <= params.max_score
                and points >= params.min_points and np.hypot(*boxes.centers_m[row, :2]) <= params.max_range_m
            ):  # fmt: skip
                hits.append(p)
        for run in log.runs(hits):
            if len(run) < params.min_frames:
                continue
            scores = np.array([log.shadow(p).scores[rows[p]] for p in run])
            peak = run[int(np.argmin(np.abs(scores - mid)))]
            obj = log.object_ref(peak, "shadow", rows[peak])
            reason = (
                f"uncertain_shadow: shadow {obj.label} at {obj.range_m:.0f} m ({obj.num_lidar_points} LiDAR points) scored "
                f"{scores.min():.2f}-{scores.max():.2f} for {frames_text(len(run))}"
            )
            closeness = 1.0 - 0.5 * float(np.abs(scores - mid).mean()) / half
            events.append(log.event(
                "uncertain_shadow", run, peak, closeness, obj.label, obj.range_m, [obj], reason,
                {"frames": len(run), "min_score": round(float(scores.min()), 3), "max_score": round(float(scores.max()), 3), "shadow_track": int(track)},
            ))  # fmt: skip
    return events


__all__ = ["uncertain_shadow"]
