"""Scoring mined cases against a synthetic log's planted anomalies (``*.anomalies.json``).

A case finds an anomaly when their frames overlap and the case involves the anomaly's object:

- the same track: an onboard or camera object whose track id is the anomaly's (synthetic
  onboard perception reports ground-truth track ids), or a shadow object whose box lies
  within ``match_distance_m`` of that track's ground-truth box in the same frame (shadow
  track ids are the detector's own);
- for a ``ghost_object``: any case object whose ``world`` centre lies within
  ``match_distance_m`` of the ghost's;
- for an ``ego_deviation``: an event about the ego (``planner_deviation``).

Recall per anomaly kind is the share of planted anomalies some case finds; precision is the
share of cases that find at least one anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.mining.records import Case, ObjectRef
from av_pipeline.synthetic.config import ANOMALY_KINDS
from av_pipeline.synthetic.perception import Anomaly


@dataclass(frozen=True)
class KindScore:
    """Recall of one anomaly kind.

    Attributes:
        kind: anomaly kind.
        planted: anomalies of this kind in the logs.
        found: of them, found by some case.
    """

    kind: str
    planted: int
    found: int

    @property
    def recall(self) -> float:
        """``found / planted`` (NaN when none was planted)."""
        return self.found / self.planted if self.planted else float("nan")


@dataclass(frozen=True)
class MiningScore:
    """Cases against the answer key.

    Attributes:
        kinds: per anomaly kind.
        cases: cases scored.
        true_cases: cases that find at least one anomaly.
        key_frames: key frames of the cases (the labelling budget used).
        frames: frames mined.
        case_anomalies: case id -> ids (``log_id/kind:track:first_frame``) of the anomalies it finds.
        missed: ids of the planted anomalies no case finds, in log and answer-key order.
    """

    kinds: tuple[KindScore, ...]
    cases: int
    true_cases: int
    key_frames: int
    frames: int
    case_anomalies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    missed: tuple[str, ...] = ()

    @property
    def precision(self) -> float:
        """``true_cases / cases`` (NaN without cases)."""
        return self.true_cases / self.cases if self.cases else float("nan")

    @property
    def recall(self) -> float:
        """All kinds together."""
        planted = sum(k.planted for k in self.kinds)
        return sum(k.found for k in self.kinds) / planted if planted else float("nan")

    def table(self) -> str:
        """A Markdown table: kind, planted, found, recall; then precision and budget."""
        lines = ["| anomaly kind | planted | found | recall |", "|---|---:|---:|---:|"]
        for k in self.kinds:
            if k.planted:
                lines.append(f"| {k.kind} | {k.planted} | {k.found} | {k.recall:.2f} |")
        lines.append(f"| **all** | {sum(k.planted for k in self.kinds)} | {sum(k.found for k in self.kinds)} | {self.recall:.2f} |")
        lines.append("")
        lines.append(f"cases {self.cases}, finding an anomaly {self.true_cases}: precision {self.precision:.2f}; "
                     f"key frames {self.key_frames} of {self.frames} frames ({100 * self.key_frames / max(1, self.frames):.1f}%)")  # fmt: skip
        return "\n".join(lines)


def anomaly_id(anomaly: Anomaly) -> str:
    """``kind:track:first_frame``."""
    return f"{anomaly.kind}:{anomaly.track_id}:{anomaly.first_frame}"


def _truth_track(obj: ObjectRef, truth: Mapping[int, Cuboids], distance_m: float) -> int | None:
    boxes = truth.get(obj.frame_index)
    if boxes is None or not len(boxes):
        return None
    d = np.hypot(boxes.centers_m[:, 0] - obj.center_ego_m[0], boxes.centers_m[:, 1] - obj.center_ego_m[1])
    i = int(np.argmin(d))
    return int(boxes.track_ids[i]) if d[i] <= distance_m else None


def case_finds(case: Case, anomaly: Anomaly, truth: Mapping[int, Cuboids], match_distance_m: float = 2.0) -> bool:
    """Whether ``case`` finds ``anomaly`` (module docstring).

    Args:
        case: a case of the anomaly's log.
        anomaly: a planted anomaly.
        truth: frame index -> ground-truth cuboids in ``ego`` (with track ids) of that log.
        match_distance_m: shadow-to-truth and ghost distance.
    """
    if case.last_frame < anomaly.first_frame or case.first_frame > anomaly.last_frame:
        return False
    for obj in case.objects:
        if anomaly.kind == "ego_deviation":
            if obj.source == "ego":
                return True
            continue
        if anomaly.kind == "ghost_object":
            center = anomaly.details.get("center_world_m")
            if obj.source in ("onboard", "camera") and obj.track_id == anomaly.track_id:
                return True
            if center is not None and obj.center_world_m is not None and np.hypot(obj.center_world_m[0] - center[0], obj.center_world_m[1] - center[1]) <= match_distance_m:
                return True
            continue
        if obj.source in ("onboard", "camera") and obj.track_id == anomaly.track_id:
            return True
        if obj.source == "shadow" and _truth_track(obj, truth, match_distance_m) == anomaly.track_id:
            return True
    return False


def score_cases(
    cases: Sequence[Case],
    anomalies: Mapping[str, Sequence[Anomaly]],
    truth: Mapping[str, Mapping[int, Cuboids]],
    frames: int,
    match_distance_m: float = 2.0,
) -> MiningScore:
    """Score cases of one or more logs against their answer keys.

    Args:
        cases: the selected cases.
        anomalies: log id -> planted anomalies.
        truth: log id -> frame index -> ground-truth cuboids in ``ego``.
        frames: frames mined (for the budget share).
        match_distance_m: see :func:`case_finds`.
    """
    found: set[str] = set()
    case_anomalies: dict[str, tuple[str, ...]] = {}
    for case in cases:
        hits = tuple(
            f"{case.log_id}/{anomaly_id(a)}" for a in anomalies.get(case.log_id, ()) if case_finds(case, a, truth.get(case.log_id, {}), match_distance_m)
        )  # fmt: skip
        case_anomalies[case.case_id] = hits
        found.update(hits)
    kinds = []
    for kind in ANOMALY_KINDS:
        planted = [f"{log}/{anomaly_id(a)}" for log, items in anomalies.items() for a in items if a.kind == kind]
        kinds.append(KindScore(kind, len(planted), sum(1 for a in planted if a in found)))
    return MiningScore(
        kinds=tuple(kinds), cases=len(cases), true_cases=sum(1 for v in case_anomalies.values() if v),
        key_frames=sum(len(c.key_frames) for c in cases), frames=frames, case_anomalies=case_anomalies,
        missed=tuple(f"{log}/{anomaly_id(a)}" for log, items in anomalies.items() for a in items if f"{log}/{anomaly_id(a)}" not in found),
    )  # fmt: skip


__all__ = ["KindScore", "MiningScore", "anomaly_id", "case_finds", "score_cases"]
