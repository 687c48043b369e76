"""Shadow vs onboard triggers: objects one side sees and the other does not, or sees differently.

All work on the per-frame matches (:mod:`av_pipeline.mining.matching`) and fire only when a
disagreement lasts ``min_frames`` adjacent frames, so single-frame jitter of either model
does not become a case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.detect.geometry import bev_iou, cuboids_to_bev
from av_pipeline.mining.context import MiningLog, frames_text
from av_pipeline.mining.matching import aligned_scale_error
from av_pipeline.mining.records import Event
from av_pipeline.mining.registry import param, trigger
from av_pipeline.mining.triggers.consistency import (
    center_change_m, change_evidence as _evidence, heading_change_deg, label_changed, onboard_context, size_change, steadiness_factor,
)  # fmt: skip
from av_pipeline.taxonomy import PRODUCT_CLASSES

_CLASSES = tuple(PRODUCT_CLASSES)


def _persistence(frames: int, full_at: int) -> float:
    """Weight in ``(0, 1]`` that reaches 1 when a disagreement lasts ``full_at`` frames."""
    return min(1.0, frames / max(1, full_at))


@dataclass(frozen=True)
class MissedParams:
    """Parameters of ``missed_by_onboard``."""

    min_score: float = param(0.5, "smallest shadow score that counts as a detection", minimum=0.0, maximum=1.0)
    min_points: int = param(10, "smallest number of LiDAR points inside the shadow box", minimum=0)
    max_range_m: float = param(65.0, "ignore objects further than this (metres; onboard range limit)", minimum=0.0)
    min_frames: int = param(2, "the miss must last this many adjacent frames", minimum=1)
    max_onboard_iou: float = param(
        0.1, "a shadow box that overlaps some onboard box (any class) by more BEV IoU than this was reported, not missed (a duplicate shadow box, or onboard paired another one)",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip
    visibility_window_frames: int = param(
        10, "what the object shows unoccluded: the most points its shadow track had (scaled to range with the log's fitted exponent) within this many frames", minimum=1
    )
    full_visibility: float = param(
        0.3, "a miss of an object showing at least this share of its unoccluded points scores in full; less visible ones (hidden, so a miss is expected) score less",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip
    min_lidar_visibility: float = param(
        0.25, "a frame counts only when at least this share of the shadow box is in the LiDAR's line of sight (the frame's range image; "
        "MiningFrame.range_image): onboard is right to drop an object that something hides. Frames without a range image skip the check",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip
    full_lidar_visibility: float = param(
        1.0, "... or at least this share of it in the LiDAR's line of sight (median over the run; range image): the points-based share "
        "undercounts an object whose shadow box leaves out points on its faces. 0 turns this off", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    classes: tuple[str, ...] = param(_CLASSES, "classes to consider", choices=_CLASSES)


def _overlaps_onboard(log: MiningLog, p: int, row: int, max_iou: float) -> bool:
    onboard = log.onboard(p) if log.has("onboard") else None
    if onboard is None or not len(onboard):
        return False
    shadow = log.shadow(p)
    near = np.hypot(*(onboard.centers_m[:, :2] - shadow.centers_m[row, :2]).T) <= float(np.hypot(*shadow.sizes_m[row, :2])) + 5.0
    if not near.any():
        return False
    iou = bev_iou(cuboids_to_bev(shadow)[row : row + 1], cuboids_to_bev(onboard)[near])
    return bool((iou > max_iou).any())


@trigger("missed_by_onboard", MissedParams, needs=("shadow", "onboard"), family="shadow vs onboard")
def missed_by_onboard(log: MiningLog, params: MissedParams) -> list[Event]:
    """A shadow object with LiDAR support that onboard perception did not report.

    Fires per shadow track over each run of at least ``min_frames`` adjacent frames where the
    shadow box has ``score >= min_score``, ``>= min_points`` LiDAR points, lies within
    ``max_range_m``, has no onboard partner and overlaps no onboard box by more than
    ``max_onboard_iou`` (BEV IoU) and, where the frame has a range image, at least
    ``min_lidar_visibility`` of the box is in the LiDAR's line of sight. Score: mean shadow
    score, times the run length over 3 frames (capped at 1), times how much of it is in view:
    the share of its unoccluded points it shows at the peak over ``full_visibility``, or the
    median share in the LiDAR's line of sight over ``full_lidar_visibility``, whichever is
    larger (capped at 1).
    """
    events = []
    for track, rows in log.shadow_tracks.items():
        missed, in_sight = [], {}
        for p, row in rows.items():
            boxes = log.shadow(p)
            points = -1 if boxes.num_lidar_points is None else int(boxes.num_lidar_points[row])
            rng = float(np.hypot(*boxes.centers_m[row, :2]))
            if (
                boxes.labels[row] in params.classes and boxes.scores[row] >= params.min_score and points >= params.min_points
                and rng <= params.max_range_m and not log.match(p).shadow_is_matched(row)
                and not _overlaps_onboard(log, p, row, params.max_onboard_iou)
            ):  # fmt: skip
                sight = log.lidar_visibility(p, boxes.centers_m[row], boxes.sizes_m[row], float(boxes.yaws_rad[row]))
                if sight is None or sight >= params.min_lidar_visibility:
                    missed.append(p)
                    in_sight[p] = sight
        for run in log.runs(missed):
            if len(run) < params.min_frames:
                continue
            scores = np.array([log.shadow(p).scores[rows[p]] for p in run])
            peak = run[int(np.argmax(scores))]
            obj = log.object_ref(peak, "shadow", rows[peak])
            mean_points = int(round(np.mean([log.shadow(p).num_lidar_points[rows[p]] for p in run])))
            full = max(
                log.unoccluded_level("shadow", rows, run[0], run[-1], params.visibility_window_frames),
                log.unoccluded_class_level.get(obj.label, 0.0),
            )  # fmt: skip
            visible = min(1.0, float(log.level(obj.num_lidar_points, obj.range_m)) / full) if full > 0 else 1.0
            sight = [in_sight[p] for p in run if in_sight[p] is not None]
            sight_text = f", {100 * float(np.median(sight)):.0f}% in the LiDAR's line of sight" if sight else ""
            reason = (
                f"missed_by_onboard: shadow sees a {obj.label} at {obj.range_m:.0f} m (score {obj.score:.2f}, "
                f"{obj.num_lidar_points} LiDAR points, {100 * visible:.0f}% of what it shows unoccluded{sight_text}) that onboard missed for {frames_text(len(run))}"
            )
            in_view = min(1.0, visible / params.full_visibility)
            if sight and params.full_lidar_visibility > 0:
                in_view = max(in_view, min(1.0, float(np.median(sight)) / params.full_lidar_visibility))
            score = float(scores.mean()) * _persistence(len(run), 3) * in_view
            events.append(log.event(
                "missed_by_onboard", run, peak, score, obj.label, obj.range_m, [obj], reason,
                {"frames": len(run), "mean_shadow_score": round(float(scores.mean()), 3), "mean_points": mean_points,
                 "visible_fraction": round(visible, 3), "lidar_visibility": round(float(np.median(sight)), 3) if sight else None, "shadow_track": int(track)},
            ))  # fmt: skip
    return events


@dataclass(frozen=True)
class GhostParams:
    """Parameters of ``ghost``."""

    max_points: int = param(3, "an onboard box with at most this many LiDAR points inside is unsupported", minimum=0)
    min_onboard_score: float = param(0.3, "ignore onboard boxes scored below this", minimum=0.0, maximum=1.0)
    max_range_m: float = param(50.0, "ignore boxes further than this (metres; far objects get few points anyway)", minimum=0.0)
    min_frames: int = param(2, "the ghost must last this many adjacent frames", minimum=1)
    expected_points_scale: float = param(
        12.0, "evidence 1 - exp(-expected / this): an empty box where the log's LiDAR puts this many points on such an object scores 0.63 of full", minimum=1e-3
    )
    near_m: float = param(
        0.5, "LiDAR clusters no box explains, centred within this distance (metres) of the box footprint, count as the object's: "
        "a real object whose box is misplaced, not a ghost", minimum=0.0,
    )  # fmt: skip
    near_share: float = param(0.3, "... when they hold at least this share of the points expected there (and more than max_points)", minimum=0.0)
    never_supported_evidence: float = param(
        0.8, "evidence at least this when the track exists only in the run and the frames carry clusters with none in or next to "
        "the box: nothing ever showed there, however few points such an object would get", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    coasting_factor: float = param(
        0.3, "score factor when the same track had LiDAR support (more than max_points) in other frames: most likely a real object "
        "that became hidden while the tracker carries it", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    classes: tuple[str, ...] = param(_CLASSES, "classes to consider", choices=_CLASSES)


@trigger("ghost", GhostParams, needs=("onboard",), family="shadow vs onboard")
def ghost(log: MiningLog, params: GhostParams) -> list[Event]:
    """An onboard object with (almost) no LiDAR points inside and, when a shadow model ran, no shadow partner.

    Fires per onboard track over runs of at least ``min_frames`` adjacent frames. Score:
    ``(0.5 + 0.5 * onboard score) * (1 - points / (max_points + 1)) * evidence`` times the
    run length over 3 frames, where the evidence ``1 - exp(-expected / expected_points_scale)``
    grows with the points the log's LiDAR puts on confirmed objects of that class at that
    range (``MiningLog.typical_level``): an empty box at 15 m is a surer ghost than at 45 m.
    Where the frames carry unexplained LiDAR clusters, a box with such points next to it
    (``near_m``, ``near_share``) is a misplaced real object and does not count. A track that
    had LiDAR support in other frames is most likely a real object the tracker carries
    through an occlusion: its score is multiplied by ``coasting_factor``.
    """
    events = []
    use_shadow = log.has("shadow")
    for track, rows in log.onboard_tracks.items():
        hits = []
        for p, row in rows.items():
            boxes = log.onboard(p)
            if boxes.num_lidar_points is None:
                continue
            rng = float(np.hypot(*boxes.centers_m[row, :2]))
            if (
                boxes.labels[row] in params.classes and boxes.num_lidar_points[row] <= params.max_points and rng <= params.max_range_m
                and boxes.scores[row] >= params.min_onboard_score and (not use_shadow or not log.match(p).onboard_is_matched(row))
            ):  # fmt: skip
                near = log.unexplained_points_near(p, boxes.centers_m[row], boxes.sizes_m[row], float(boxes.yaws_rad[row]), params.near_m)
                typical = log.typical_level.get(str(boxes.labels[row]), 0.0)
                if near is not None and near > params.max_points and near >= params.near_share * float(log.points_at(typical, rng)):
                    continue
                hits.append(p)
        for run in log.runs(hits):
            if len(run) < params.min_frames:
                continue
            points = np.array([log.onboard(p).num_lidar_points[rows[p]] for p in run])
            scores = np.array([log.onboard(p).scores[rows[p]] for p in run])
            peak = run[len(run) // 2]
            obj = log.object_ref(peak, "onboard", rows[peak])
            support = 1.0 - float(points.mean()) / (params.max_points + 1)
            typical = log.typical_level.get(obj.label, 0.0)
            expected = float(log.points_at(typical, obj.range_m)) if typical > 0 else float(params.expected_points_scale)
            evidence = 1.0 - float(np.exp(-expected / params.expected_points_scale))
            reason = (
                f"ghost: onboard reports a {obj.label} (track {track}) at {obj.range_m:.0f} m for {frames_text(len(run))} with "
                f"{int(points.max())} LiDAR points inside (a {obj.label} there gets about {expected:.0f})"
                f"{' and no shadow detection' if use_shadow else ''}"
                f"{f', none unexplained within {params.near_m:g} m' if log.frames[peak].clusters is not None else ''}"
            )
            supported = sum(1 for p, row in rows.items() if p not in run and log.onboard(p).num_lidar_points[row] > params.max_points)
            never = len(rows) == len(run) and all(log.frames[p].clusters is not None for p in run)
            if never:
                # the track lived only here, never with LiDAR points in or next to it
                evidence = max(evidence, params.never_supported_evidence)
                reason += f"; the track never had LiDAR support in its {frames_text(len(rows))}"
            if supported:
                reason += f"; the track had LiDAR support in {frames_text(supported)} outside it (likely hidden, carried by the tracker)"
            score = (0.5 + 0.5 * float(scores.mean())) * support * evidence * _persistence(len(run), 3) * (params.coasting_factor if supported else 1.0)
            events.append(log.event(
                "ghost", run, peak, score, obj.label, obj.range_m, [obj], reason,
                {"frames": len(run), "max_points": int(points.max()), "expected_points": round(expected, 1), "onboard_track": int(track),
                 "shadow_checked": use_shadow, "supported_frames_outside": supported, "never_supported": never},
            ))  # fmt: skip
    return events


def _pair_runs(log: MiningLog, test, min_frames: int, bridge_frames: int = 0):
    """Runs of frames where ``test(p, pair)`` holds for an onboard track's matched pair; runs
    separated by at most ``bridge_frames`` frames are one run (a tolerance crossed back and
    forth by noise is one disagreement). ``min_frames`` counts the frames where the test holds.

    Yields ``(onboard_track, rows_by_position, run, pairs_by_position)``; ``run`` lists only
    the positions where the test holds.
    """
    for track, rows in log.onboard_tracks.items():
        hits, pairs = [], {}
        for p, row in rows.items():
            pair = log.match(p).pair_of_onboard(row)
            if pair >= 0 and test(p, pair):
                hits.append(p)
                pairs[p] = pair
        joined: list[list[int]] = []
        for run in log.runs(hits):
            if joined and log.frames[run[0]].index - log.frames[joined[-1][-1]].index - 1 <= bridge_frames:
                joined[-1].extend(run)
            else:
                joined.append(list(run))
        for run in joined:
            if len(run) >= min_frames:
                yield track, rows, run, pairs


def _who_changed_text(factor: float, change: str | None) -> str:
    if change is None:
        return ""
    return f"; onboard itself changed at its edges ({change})" if factor >= 0.999 else f"; onboard steady around it ({change}): the shadow may be wrong"


@dataclass(frozen=True)
class ClassParams:
    """Parameters of ``class_disagreement``."""

    min_shadow_score: float = param(0.5, "smallest shadow score of the pair", minimum=0.0, maximum=1.0)
    min_frames: int = param(2, "the disagreement must last this many adjacent frames", minimum=1)
    max_range_m: float = param(60.0, "ignore objects further than this (metres)", minimum=0.0)
    classes: tuple[str, ...] = param(_CLASSES, "classes (as onboard reports them) to consider", choices=_CLASSES)
    bridge_frames: int = param(2, "runs of the disagreement this many frames apart or closer are one", minimum=0)
    context_frames: int = param(10, "onboard's own class is compared over this many frames before and after the disagreement", minimum=1)
    steady_factor: float = param(
        0.3, "score factor when onboard's class stays the same before, during and after (the shadow may be wrong)", minimum=0.0, maximum=1.0
    )


@trigger("class_disagreement", ClassParams, needs=("shadow", "onboard"), family="shadow vs onboard")
def class_disagreement(log: MiningLog, params: ClassParams) -> list[Event]:
    """A matched pair whose classes differ (car vs van, pedestrian vs cyclist ...).

    Score: mean shadow score times the run length over 4 frames, times ``steady_factor`` when
    onboard calls the track the same class in the ``context_frames`` before and after
    (:mod:`~av_pipeline.mining.triggers.consistency`).
    """
    events = []

    def test(p: int, pair: int) -> bool:
        m, s, o = log.match(p), log.shadow(p), log.onboard(p)
        i, j = m.shadow_index[pair], m.onboard_index[pair]
        rng = float(np.hypot(*o.centers_m[j, :2]))
        return bool(m.class_flip[pair]) and s.scores[i] >= params.min_shadow_score and o.labels[j] in params.classes and rng <= params.max_range_m

    for track, rows, run, pairs in _pair_runs(log, test, params.min_frames, params.bridge_frames):
        scores = np.array([log.shadow(p).scores[log.match(p).shadow_index[pairs[p]]] for p in run])
        peak = run[int(np.argmax(scores))]
        on = log.object_ref(peak, "onboard", rows[peak])
        sh = log.object_ref(peak, "shadow", int(log.match(peak).shadow_index[pairs[peak]]))
        changed = label_changed(log, onboard_context(log, track, run, params.context_frames))
        factor = steadiness_factor(None if changed is None else float(changed), params.steady_factor)
        reason = (
            f"class_disagreement: onboard calls track {track} a {on.label}, shadow a {sh.label} (score {sh.score:.2f}) "
            f"at {on.range_m:.0f} m for {frames_text(len(run))}"
            + _who_changed_text(factor, None if changed is None else ("another class before or after" if changed else "same class before and after"))
        )
        events.append(log.event(
            "class_disagreement", run, peak, float(scores.mean()) * _persistence(log.frames[run[-1]].index - log.frames[run[0]].index + 1, 4) * factor, on.label, on.range_m, [on, sh], reason,
            {"frames": len(run), "onboard_label": on.label, "shadow_label": sh.label, "onboard_track": int(track), "onboard_changed": changed},
        ))  # fmt: skip
    return events


@dataclass(frozen=True)
class LocalizationParams:
    """Parameters of ``localization_disagreement``."""

    min_offset_m: float = param(1.0, "centre distance that fires at 0 m range (metres)", minimum=0.0)
    offset_per_m: float = param(0.01, "added tolerance per metre of range", minimum=0.0)
    min_shadow_score: float = param(0.5, "smallest shadow score of the pair", minimum=0.0, maximum=1.0)
    min_frames: int = param(2, "the disagreement must last this many adjacent frames", minimum=1)
    max_range_m: float = param(60.0, "ignore objects further than this (metres)", minimum=0.0)
    classes: tuple[str, ...] = param(_CLASSES, "classes (as onboard reports them) to consider", choices=_CLASSES)
    bridge_frames: int = param(2, "runs of the disagreement this many frames apart or closer are one", minimum=0)
    context_frames: int = param(10, "onboard's own path (constant velocity) is compared over this many frames before and after the disagreement", minimum=1)
    steady_factor: float = param(
        0.3, "score factor when onboard's own path (constant velocity) changes by at most half the tolerance around the disagreement (the shadow may be wrong)",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip


@trigger("localization_disagreement", LocalizationParams, needs=("shadow", "onboard"), family="shadow vs onboard")
def localization_disagreement(log: MiningLog, params: LocalizationParams) -> list[Event]:
    """A matched pair whose BEV centres are further apart than ``min_offset_m + offset_per_m * range``.

    Score: mean of ``offset / (2 * tolerance)`` (capped at 1) times the shadow score, times the
    run length over 4 frames.
    """

    def tolerance(p: int, pair: int) -> float:
        o = log.onboard(p).centers_m[log.match(p).onboard_index[pair]]
        return params.min_offset_m + params.offset_per_m * float(np.hypot(o[0], o[1]))

    return _pair_error_events(
        log, "localization_disagreement", params, lambda p, pair: float(log.match(p).center_distance_m[pair]), tolerance,
        lambda value, on, sh: f"onboard places its {on.label} {value:.1f} m from the shadow's (score {sh.score:.2f})",
        "offset_m", lambda ctx: (center_change_m(log, ctx), "m off its own path"),
    )  # fmt: skip


@dataclass(frozen=True)
class SizeParams:
    """Parameters of ``size_disagreement``."""

    min_scale_error: float = param(0.5, "1 - IoU of the aligned boxes that fires (0.5: 2x or 0.5x in volume)", minimum=0.0, maximum=1.0)
    min_size_difference_m: float = param(
        0.5, "and the largest difference of length, width or height must reach this (metres): small objects such as "
        "pedestrians reach a large scale error with a few centimetres", minimum=0.0,
    )  # fmt: skip
    min_shadow_score: float = param(0.5, "smallest shadow score of the pair", minimum=0.0, maximum=1.0)
    min_frames: int = param(2, "the disagreement must last this many adjacent frames", minimum=1)
    max_range_m: float = param(60.0, "ignore objects further than this (metres)", minimum=0.0)
    classes: tuple[str, ...] = param(_CLASSES, "classes (as onboard reports them) to consider", choices=_CLASSES)
    bridge_frames: int = param(2, "runs of the disagreement this many frames apart or closer are one", minimum=0)
    context_frames: int = param(10, "onboard's own size is compared over this many frames before and after the disagreement", minimum=1)
    steady_factor: float = param(
        0.3, "score factor when onboard's own size changes by at most half the tolerance around the disagreement (the shadow may be wrong)",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip


def _footprint_sorted(size: np.ndarray) -> np.ndarray:
    """``(longer side, shorter side, height)``: a box reported with length and width swapped
    (a pedestrian's heading is ambiguous) has the same size."""
    return np.array([max(size[0], size[1]), min(size[0], size[1]), size[2]], dtype=np.float64)


@trigger("size_disagreement", SizeParams, needs=("shadow", "onboard"), family="shadow vs onboard")
def size_disagreement(log: MiningLog, params: SizeParams) -> list[Event]:
    """A matched pair whose sizes disagree: scale error (``1 - IoU`` aligned) of at least
    ``min_scale_error`` and a length, width or height that differs by ``min_size_difference_m``.
    Length and width are compared as the longer and the shorter side, so a box with the two
    swapped (a heading ambiguity, not a size error) does not fire.

    Score: mean ``scale error / (2 * min_scale_error)`` (capped at 1) times the shadow score,
    times the run length over 4 frames.
    """

    def describe(value: float, on, sh) -> str:
        p = log.position[on.frame_index]
        o = log.onboard(p).sizes_m[log.onboard_tracks[on.track_id][p]]
        s = log.shadow(p).sizes_m[log.shadow_tracks[sh.track_id][p]] if sh.track_id in log.shadow_tracks else o
        return (
            f"onboard sizes its {on.label} {o[0]:.1f}x{o[1]:.1f}x{o[2]:.1f} m, shadow {s[0]:.1f}x{s[1]:.1f}x{s[2]:.1f} m "
            f"(scale error {value:.2f}, shadow score {sh.score:.2f})"
        )

    def value(p: int, pair: int) -> float:
        m = log.match(p)
        a = _footprint_sorted(log.shadow(p).sizes_m[m.shadow_index[pair]])
        b = _footprint_sorted(log.onboard(p).sizes_m[m.onboard_index[pair]])
        difference = np.abs(a - b).max()
        return float(aligned_scale_error(a[None], b[None])[0]) if difference >= params.min_size_difference_m else 0.0

    return _pair_error_events(
        log, "size_disagreement", params, value,
        lambda p, pair: params.min_scale_error, describe, "scale_error", lambda ctx: (size_change(log, ctx), "scale error against its own size"),
    )  # fmt: skip


@dataclass(frozen=True)
class HeadingParams:
    """Parameters of ``heading_disagreement``."""

    min_error_deg: float = param(30.0, "heading difference that fires (degrees)", minimum=0.0, maximum=180.0)
    min_shadow_score: float = param(0.5, "smallest shadow score of the pair", minimum=0.0, maximum=1.0)
    min_frames: int = param(2, "the disagreement must last this many adjacent frames", minimum=1)
    max_range_m: float = param(50.0, "ignore objects further than this (metres): with few points the shadow's own heading flips", minimum=0.0)
    classes: tuple[str, ...] = param(("car", "van", "truck", "cyclist"), "classes (as onboard reports them) to consider; pedestrians turn on the spot", choices=_CLASSES)
    bridge_frames: int = param(2, "runs of the disagreement this many frames apart or closer are one", minimum=0)
    context_frames: int = param(10, "onboard's own heading is compared over this many frames before and after the disagreement", minimum=1)
    steady_factor: float = param(
        0.3, "score factor when onboard's own heading changes by at most half the tolerance around the disagreement (the shadow may be wrong)",
        minimum=0.0, maximum=1.0,
    )  # fmt: skip


@trigger("heading_disagreement", HeadingParams, needs=("shadow", "onboard"), family="shadow vs onboard")
def heading_disagreement(log: MiningLog, params: HeadingParams) -> list[Event]:
    """A matched pair whose headings differ by at least ``min_error_deg`` (180 degrees: reversed).

    Score: mean ``error / (2 * min_error_deg)`` (capped at 1) times the shadow score, times
    the run length over 4 frames.
    """
    return _pair_error_events(
        log, "heading_disagreement", params, lambda p, pair: float(np.degrees(log.match(p).orientation_error_rad[pair])),
        lambda p, pair: params.min_error_deg,
        lambda value, on, sh: f"onboard heads its {on.label} {value:.0f} degrees away from the shadow's (score {sh.score:.2f})",
        "error_deg", lambda ctx: (heading_change_deg(log, ctx), "degrees turned"),
    )  # fmt: skip


def _pair_error_events(log: MiningLog, name: str, params, value_of, tolerance_of, describe, detail: str, change_of) -> list[Event]:
    """Events of a pair error (``value_of(p, pair) >= tolerance_of(p, pair)``); ``change_of(context)``
    gives onboard's own change around the run (same unit as the value) and its unit's words."""
    events = []

    def test(p: int, pair: int) -> bool:
        m = log.match(p)
        i, j = m.shadow_index[pair], m.onboard_index[pair]
        o = log.onboard(p)
        return (
            log.shadow(p).scores[i] >= params.min_shadow_score and o.labels[j] in params.classes
            and float(np.hypot(*o.centers_m[j, :2])) <= params.max_range_m and value_of(p, pair) >= tolerance_of(p, pair)
        )  # fmt: skip

    for track, rows, run, pairs in _pair_runs(log, test, params.min_frames, params.bridge_frames):
        values = np.array([value_of(p, pairs[p]) for p in run])
        ratio = np.array([min(1.0, value_of(p, pairs[p]) / max(1e-9, 2.0 * tolerance_of(p, pairs[p]))) for p in run])
        shadow_scores = np.array([log.shadow(p).scores[log.match(p).shadow_index[pairs[p]]] for p in run])
        peak = run[int(np.argmax(ratio))]
        on = log.object_ref(peak, "onboard", rows[peak])
        sh = log.object_ref(peak, "shadow", int(log.match(peak).shadow_index[pairs[peak]]))
        value = float(values[run.index(peak)])
        change, unit = change_of(onboard_context(log, track, run, params.context_frames))
        factor = steadiness_factor(None if change is None else change / max(1e-9, tolerance_of(peak, pairs[peak])), params.steady_factor)
        reason = (
            f"{name}: {describe(value, on, sh)} at {on.range_m:.0f} m, track {track}, for {frames_text(len(run))}"
            + _who_changed_text(factor, None if change is None else f"{change:.2f} {unit}")
        )
        evidence = 0.0 if change is None else _evidence(change / max(1e-9, tolerance_of(peak, pairs[peak])))
        span = log.frames[run[-1]].index - log.frames[run[0]].index + 1
        score = float(max(ratio.mean(), evidence) * shadow_scores.mean()) * _persistence(span, 4) * factor
        events.append(log.event(
            name, run, peak, score, on.label, on.range_m, [on, sh], reason,
            {"frames": len(run), detail: round(value, 3), f"max_{detail}": round(float(values.max()), 3), "onboard_track": int(track),
             "onboard_change": None if change is None else round(change, 3)},
        ))  # fmt: skip
    return events


__all__ = ["class_disagreement", "ghost", "heading_disagreement", "localization_disagreement", "missed_by_onboard", "size_disagreement"]
