"""Temporal instability of the onboard tracks (after the Stability Index idea): tracks that
vanish and come back, jump, change size, or flip class.

These need no shadow model: a track is compared with itself over time, in ``world`` when
the log has poses (so the ego's own motion does not look like a jump). Where a shadow model
ran, ``track_flicker`` asks it whether the object was still there.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from av_pipeline.mining.clusters import in_footprint
from av_pipeline.mining.context import MiningLog, frames_text
from av_pipeline.mining.matching import class_group, yaw_difference
from av_pipeline.mining.records import Event
from av_pipeline.mining.registry import param, trigger
from av_pipeline.taxonomy import PRODUCT_CLASSES

_CLASSES = tuple(PRODUCT_CLASSES)
_RIGID = ("car", "van", "truck", "bus", "trailer", "motorcycle", "bicycle", "cyclist")


@dataclass(frozen=True)
class FlickerParams:
    """Parameters of ``track_flicker``."""

    max_gap_frames: int = param(3, "longest gap (frames) that counts as a flicker rather than a new appearance", minimum=1)
    min_frames_around: int = param(2, "the track must exist this many frames before and after the gap", minimum=1)
    max_range_m: float = param(60.0, "ignore tracks further than this (metres)", minimum=0.0)
    confirm_m: float = param(2.5, "a shadow box this close (metres) to the interpolated position confirms the object was there", minimum=0.0)
    min_support_ratio: float = param(
        0.5, "the confirming shadow box needs this share of the LiDAR points the track had around the gap (else the object was hidden, and dropping it is expected)",
        minimum=0.0,
    )  # fmt: skip
    min_points: int = param(25, "the confirming shadow box needs at least this many LiDAR points", minimum=0)
    footprint_margin_m: float = param(
        1.0, "LiDAR evidence: points of unmatched shadow boxes and of clusters no box explains, centred in the track's interpolated footprint "
        "grown by this much (metres), also confirm a gap frame", minimum=0.0,
    )  # fmt: skip
    min_footprint_points: int = param(10, "LiDAR evidence needs at least this many points", minimum=0)
    max_support_ratio: float = param(
        1.5, "LiDAR evidence may hold at most this multiple of the object's unoccluded points (more belongs to something else)", minimum=0.0
    )
    visibility_window_frames: int = param(
        10, "the object's unoccluded point count is the most it showed (scaled to the gap's range) within this many frames of the gap", minimum=1
    )
    min_confirmed_share: float = param(
        0.6, "share of the gap frames that must be confirmed; the score is 0.9 times the confirmed share", minimum=0.0, maximum=1.0
    )
    relative_ratio: float = param(
        0.7, "a shadow detection in the gap (score at least min_detection_score, at least min_relative_points) with this share of the median points "
        "the onboard box held in the reference_frames before and after the gap also confirms the frame: the object was as visible as when "
        "onboard reported it, however few points that is (far or partly hidden objects)", minimum=0.0,
    )  # fmt: skip
    min_detection_score: float = param(
        0.5, "... when its score is at least this (the shadow's gap-filled boxes score at most half their track's mean)", minimum=0.0, maximum=1.0
    )
    min_relative_points: int = param(3, "... and it holds at least this many LiDAR points", minimum=0)
    relative_min_gap: int = param(
        3, "... in gaps of at least this many frames: a shorter drop of an object that shows as few points as a partly hidden one is mostly "
        "the onboard stack's visibility cut-off at work", minimum=1,
    )  # fmt: skip
    relative_min_visibility: float = param(
        0.5, "... or in any gap where at least this share of the interpolated box is in the LiDAR's line of sight (range image; above 1: never)",
        minimum=0.0,
    )  # fmt: skip
    reference_frames: int = param(3, "frames before and after the gap whose onboard point counts give the reference", minimum=1)
    relative_score: float = param(
        0.6, "score factor of a gap confirmed only relative to the track's own points (times the confirmed share): weaker than a confirmation "
        "against the object's unoccluded points, since an object that stays partly hidden may be dropped as expected", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    min_lidar_visibility: float = param(
        0.25, "no gap frame is confirmed where less than this share of the interpolated box is in the LiDAR's line of sight (the frame's "
        "range image; MiningFrame.range_image): an object that something hides is expected to vanish, whatever points or shadow box "
        "stand near it. Frames without a range image skip the check", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    unconfirmed_score: float = param(
        0.1, "score of a gap confirmed in fewer than min_confirmed_share of its frames: the object may have been hidden, which the onboard stack is "
        "right to drop; weak alone, it counts when another trigger fires about the same object", minimum=0.0, maximum=1.0,
    )  # fmt: skip
    classes: tuple[str, ...] = param(_CLASSES, "classes to consider", choices=_CLASSES)


@trigger("track_flicker", FlickerParams, needs=("onboard",), family="temporal")
def track_flicker(log: MiningLog, params: FlickerParams) -> list[Event]:
    """An onboard track that vanishes for up to ``max_gap_frames`` frames and comes back.

    The gap frames must be in the log (a dead-lettered frame is not a flicker). The position
    in the gap is interpolated (in ``world``). A gap frame is confirmed when a shadow box lies
    within ``confirm_m`` of that position with at least ``min_points`` LiDAR points and at
    least ``min_support_ratio`` of the points the object shows unoccluded: the most points the
    onboard box had within ``visibility_window_frames`` of the gap, scaled to range with the log's fitted
    ``MiningLog.range_exponent``.
    Where the frames carry clusters of LiDAR points no box explains, the points in the
    interpolated footprint (grown by ``footprint_margin_m``: those clusters plus shadow boxes
    centred there that match no onboard box) also confirm a frame when they number at least ``min_footprint_points``
    and ``min_support_ratio`` to ``max_support_ratio`` of the unoccluded points: the object
    left its points behind even where the shadow model missed it.
    The object was clearly visible, yet onboard dropped it (an object that became hidden
    behind another is expected to vanish). In gaps of at least ``relative_min_gap`` frames, a
    frame is also confirmed by a shadow detection (score at least ``min_detection_score``) with
    at least ``min_relative_points`` points and ``relative_ratio`` of the median points the
    onboard box held in the ``reference_frames`` before and after the gap: a far or partly
    hidden object, too sparse for the checks above, as visible as when onboard reported it;
    such a frame counts ``relative_score`` of a confirmed one in the score.
    Only shadow boxes that match no onboard box in that frame count (a matched one is another
    object onboard reports). Score: 0.9 times the confirmed share of the gap frames when that
    share reaches ``min_confirmed_share``, ``unconfirmed_score`` below it, 0.6 with neither a
    shadow model nor clusters.
    """
    events = []
    has_shadow = log.has("shadow")
    for track, rows in log.onboard_tracks.items():
        positions = sorted(rows)
        for a, b in zip(positions, positions[1:]):
            fa, fb = log.frames[a], log.frames[b]
            gap = fb.index - fa.index - 1
            if not (1 <= gap <= params.max_gap_frames) or b - a - 1 != gap:
                continue
            before = [p for p in positions if p <= a][-params.min_frames_around :]
            after = [p for p in positions if p >= b][: params.min_frames_around]
            if len(before) < params.min_frames_around or len(after) < params.min_frames_around:
                continue
            boxes_a, boxes_b = log.onboard(a), log.onboard(b)
            label = str(boxes_a.labels[rows[a]])
            wa = log.to_world(a, boxes_a.centers_m[rows[a]])[0]
            wb = log.to_world(b, boxes_b.centers_m[rows[b]])[0]
            if label not in params.classes or np.hypot(*boxes_a.centers_m[rows[a], :2]) > params.max_range_m:
                continue
            full = log.unoccluded_level("onboard", rows, a, b, params.visibility_window_frames)
            # LiDAR evidence alone also needs the class's unoccluded level: an object that stays
            # mostly hidden shows as few points when onboard drops it as when it reports it
            full_lidar = max(full, log.unoccluded_class_level.get(label, 0.0))
            size = boxes_a.sizes_m[rows[a]]
            yaw_world = float(boxes_a.yaws_rad[rows[a]]) + (fa.world_SE3_ego.yaw_rad if fa.world_SE3_ego else 0.0)
            reference = [p for p in positions if p <= a][-params.reference_frames :] + [p for p in positions if p >= b][: params.reference_frames]
            reference_points = float(np.median([log.onboard(p).num_lidar_points[rows[p]] for p in reference])) if boxes_a.num_lidar_points is not None else np.inf
            confirmed, by_lidar, relative, gap_points, sights = 0, 0, 0, [], []
            for q in range(a + 1, b):
                t = log.dt_s(a, q) / max(1e-9, log.dt_s(a, b))
                expected = log.to_ego(q, wa + t * (wb - wa))[0]
                yaw = yaw_world - (log.frames[q].world_SE3_ego.yaw_rad if log.frames[q].world_SE3_ego else 0.0)
                sight = log.lidar_visibility(q, expected, size, yaw)
                if sight is not None:
                    sights.append(sight)
                hidden = sight is not None and sight < params.min_lidar_visibility
                unoccluded = float(log.points_at(full_lidar, float(np.hypot(*expected[:2]))))
                shadow = log.shadow(q)
                # shadow boxes matched to objects onboard reports in this frame are those objects, not this one
                free = np.flatnonzero([not log.match(q).shadow_is_matched(i) for i in range(len(shadow))])
                seen = as_before = False
                if len(free):
                    d = np.hypot(*(shadow.centers_m[free, :2] - expected[:2]).T)
                    i = int(free[np.argmin(d)])
                    points = -1 if shadow.num_lidar_points is None else int(shadow.num_lidar_points[i])
                    needed = max(params.min_points, params.min_support_ratio * float(log.points_at(full, float(np.hypot(*shadow.centers_m[i, :2])))))
                    seen = bool(d.min() <= params.confirm_m and points >= needed)
                    long_or_in_sight = gap >= params.relative_min_gap or (sight is not None and sight >= params.relative_min_visibility)
                    as_before = bool(
                        long_or_in_sight and d.min() <= params.confirm_m and shadow.scores[i] >= params.min_detection_score
                        and points >= max(params.min_relative_points, params.relative_ratio * reference_points)
                    )  # fmt: skip
                here = log.unexplained_points_near(q, expected, size, yaw, params.footprint_margin_m)
                if here is not None:
                    if len(free) and shadow.num_lidar_points is not None:
                        inside = free[in_footprint(shadow.centers_m[free], expected, size, yaw, params.footprint_margin_m)]
                        here += int(shadow.num_lidar_points[inside].sum())
                    gap_points.append(here)
                    points_stay = params.min_support_ratio * unoccluded <= here <= params.max_support_ratio * unoccluded + params.min_footprint_points and here >= params.min_footprint_points
                else:
                    points_stay = False
                if hidden:
                    # the line of sight is blocked: whatever stands there, dropping the object is expected
                    continue
                if not seen and points_stay:
                    seen, by_lidar = True, by_lidar + 1
                if not seen and as_before:
                    seen, relative = True, relative + 1
                confirmed += int(seen)
            obj_range = max(float(np.hypot(*boxes_a.centers_m[rows[a], :2])), 1.0)
            share = confirmed / gap
            if not has_shadow and not gap_points:
                score, note = 0.6, "no shadow model or LiDAR clusters to confirm"
            elif share >= params.min_confirmed_share:
                score = 0.9 * (confirmed - relative + params.relative_score * relative) / gap
                if relative == confirmed:
                    path = f"{', '.join(map(str, gap_points))} in its path; " if gap_points else ""
                    note = (f"shadow still detects it with as many LiDAR points as when onboard reported it "
                            f"({path}median {reference_points:g} in the frames around the gap)")
                elif by_lidar:
                    note = f"its LiDAR points stay ({', '.join(map(str, gap_points))} in its path; unoccluded about {float(log.points_at(full_lidar, obj_range)):.0f})"
                else:
                    note = "shadow still sees it, as visible as when unoccluded nearby in time"
                if confirmed < gap:
                    note += f"; confirmed in {confirmed} of {gap} frames"
            else:
                who = "shadow or its LiDAR points confirm" if gap_points else "shadow confirms"
                score, note = params.unconfirmed_score, f"{who} it, as visible as before, in {confirmed} of {gap} (it may have been hidden)"
            if sights:
                hidden_frames = sum(v < params.min_lidar_visibility for v in sights)
                note += f"; {100 * float(np.median(sights)):.0f}% of it in the LiDAR's line of sight" + (f", hidden in {hidden_frames} of {gap} frames" if hidden_frames else "")
            obj = log.object_ref(a, "onboard", rows[a])
            reason = (
                f"track_flicker: onboard {label} track {track} at {obj.range_m:.0f} m vanished for {frames_text(gap)} "
                f"(frames {fa.index + 1}-{fb.index - 1}) and came back; {note}"
            )
            events.append(log.event(
                "track_flicker", list(range(a, b + 1)), a + 1, score, label, obj.range_m, [obj, log.object_ref(b, "onboard", rows[b])], reason,
                {"gap_frames": gap, "shadow_confirmed_frames": confirmed - by_lidar - relative, "lidar_confirmed_frames": by_lidar,
                 "relative_confirmed_frames": relative, "gap_points": gap_points, "reference_points": reference_points if np.isfinite(reference_points) else None,
                 "lidar_visibility": [round(float(v), 3) for v in sights], "onboard_track": int(track)},
            ))  # fmt: skip
    return events


def _robust_residuals(t: np.ndarray, xy: np.ndarray, half_window_s: float) -> np.ndarray:
    """Distance of each point from where its neighbours put it (itself excluded).

    Within ``half_window_s``: the track's velocity is the median of the neighbours'
    frame-to-frame velocities, and the predicted position the median of the neighbours'
    positions moved by that velocity to the point's time. Medians make a displaced stretch
    shorter than half the window invisible to the prediction.
    """
    n = len(t)
    out = np.zeros(n)
    if n < 4:
        return out
    step = np.diff(xy, axis=0) / np.maximum(np.diff(t), 1e-9)[:, None]  # (n-1, 2)
    step_t = (t[1:] + t[:-1]) / 2
    # windows as index matrices (NaN-padded), all frames at once
    ahead = np.searchsorted(t, t + half_window_s, side="right") - np.arange(n)
    behind = np.arange(n) - np.searchsorted(t, t - half_window_s, side="left")
    w = int(max(ahead.max(), behind.max(), 1))
    offsets = np.arange(-w, w + 1)
    idx = np.arange(n)[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < n) & (offsets[None, :] != 0)
    idx_c = np.clip(idx, 0, n - 1)
    valid &= np.abs(t[idx_c] - t[:, None]) <= half_window_s
    sidx = np.clip(np.arange(n)[:, None] + offsets[None, :], 0, n - 2)
    svalid = (np.arange(n)[:, None] + offsets[None, :] >= 0) & (np.arange(n)[:, None] + offsets[None, :] <= n - 2)
    svalid &= np.abs(step_t[sidx] - t[:, None]) <= half_window_s
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: too few neighbours, masked below
        v = np.stack([np.nanmedian(np.where(svalid, step[sidx, c], np.nan), axis=1) for c in range(2)], axis=1)  # (n, 2)
        v = np.nan_to_num(v)
        moved = xy[idx_c] + v[:, None, :] * (t[:, None] - t[idx_c])[:, :, None]  # (n, 2w+1, 2)
        predicted = np.stack([np.nanmedian(np.where(valid, moved[..., c], np.nan), axis=1) for c in range(2)], axis=1)
    enough = valid.sum(axis=1) >= 3
    out[enough] = np.hypot(*(predicted[enough] - xy[enough]).T)
    return out


@dataclass(frozen=True)
class JumpParams:
    """Parameters of ``track_jump``."""

    min_jump_m: float = param(1.0, "distance from where the track's neighbours put the box that fires (metres) at 0 m range", minimum=0.0)
    jump_per_m: float = param(0.01, "added tolerance per metre of range", minimum=0.0)
    min_heading_jump_deg: float = param(30.0, "heading change against the track's neighbours that fires (degrees)", minimum=0.0, maximum=180.0)
    half_window_s: float = param(0.6, "neighbours within this many seconds form the local fit", minimum=0.0)
    min_track_frames: int = param(6, "ignore shorter tracks", minimum=3)
    max_range_m: float = param(60.0, "ignore boxes further than this (metres)", minimum=0.0)
    heading_classes: tuple[str, ...] = param(("car", "van", "truck", "bus", "cyclist"), "classes whose heading is checked", choices=_CLASSES)
    full_at_frames: int = param(2, "a run this many adjacent frames long scores in full, shorter ones in proportion (a one-frame glitch is weaker evidence)", minimum=1)


@trigger("track_jump", JumpParams, needs=("onboard",), family="temporal")
def track_jump(log: MiningLog, params: JumpParams) -> list[Event]:
    """An onboard track whose position or heading jumps away from its own neighbours.

    Position: distance (in ``world``) from where the track's other boxes within
    ``half_window_s`` put it (medians of velocity-compensated neighbours); heading: smallest angle to the circular median of the
    neighbours' headings. Runs of adjacent flagged frames form one event. Score: largest
    excess ``value / (2 * tolerance)``, capped at 1, times the run length over ``full_at_frames``.
    """
    events = []
    for track, rows in log.onboard_tracks.items():
        positions = sorted(rows)
        if len(positions) < params.min_track_frames:
            continue
        t = np.array([log.frames[p].timestamp_ns for p in positions], dtype=np.float64) * 1e-9
        boxes = [log.onboard(p) for p in positions]
        centers = np.array([b.centers_m[rows[p]] for b, p in zip(boxes, positions)])
        world = np.array([log.to_world(p, c)[0] for p, c in zip(positions, centers)])
        ranges = np.hypot(centers[:, 0], centers[:, 1])
        yaw_world = np.array([b.yaws_rad[rows[p]] + (log.frames[p].world_SE3_ego.yaw_rad if log.frames[p].world_SE3_ego else 0.0) for b, p in zip(boxes, positions)])
        label = Counter(str(b.labels[rows[p]]) for b, p in zip(boxes, positions)).most_common(1)[0][0]
        tol = params.min_jump_m + params.jump_per_m * ranges
        resid = _robust_residuals(t, world[:, :2], params.half_window_s)
        heading = np.zeros(len(positions))
        if label in params.heading_classes:
            for i in range(len(positions)):
                near = np.flatnonzero((np.abs(t - t[i]) <= params.half_window_s) & (np.arange(len(t)) != i))
                if len(near) >= 3:
                    # circular median: the neighbour heading closest to all the others
                    cost = yaw_difference(yaw_world[near][:, None], yaw_world[near][None, :]).sum(axis=1)
                    heading[i] = np.degrees(yaw_difference(yaw_world[i], yaw_world[near][int(np.argmin(cost))]))
        ratio = np.maximum(resid / (2 * tol), heading / (2 * params.min_heading_jump_deg))
        flagged = [positions[i] for i in range(len(positions)) if ranges[i] <= params.max_range_m and (resid[i] >= tol[i] or heading[i] >= params.min_heading_jump_deg)]
        for run in log.runs(flagged):
            idx = [positions.index(p) for p in run]
            peak_i = idx[int(np.argmax(ratio[idx]))]
            obj = log.object_ref(positions[peak_i], "onboard", rows[positions[peak_i]])
            what = []
            if resid[idx].max() >= tol[idx].min():
                what.append(f"{resid[idx].max():.1f} m off its own track")
            if heading[idx].max() >= params.min_heading_jump_deg:
                what.append(f"heading {heading[idx].max():.0f} degrees off")
            reason = f"track_jump: onboard {label} track {track} at {obj.range_m:.0f} m jumps {' and '.join(what)} for {frames_text(len(run))}"
            events.append(log.event(
                "track_jump", run, positions[peak_i], float(min(1.0, ratio[idx].max())) * min(1.0, len(run) / params.full_at_frames), label, obj.range_m, [obj], reason,
                {"max_offset_m": round(float(resid[idx].max()), 3), "max_heading_deg": round(float(heading[idx].max()), 1), "frames": len(run), "onboard_track": int(track)},
            ))  # fmt: skip
    return events


@dataclass(frozen=True)
class SizeChangeParams:
    """Parameters of ``size_change``."""

    min_ratio: float = param(1.35, "volume ratio to the track's median size that fires (either way)", minimum=1.0)
    min_track_frames: int = param(5, "ignore shorter tracks", minimum=2)
    max_range_m: float = param(60.0, "ignore boxes further than this (metres)", minimum=0.0)
    classes: tuple[str, ...] = param(_RIGID, "rigid classes whose size must not change", choices=_CLASSES)
    full_at_frames: int = param(2, "a run this many adjacent frames long scores in full, shorter ones in proportion (a one-frame glitch is weaker evidence)", minimum=1)


@trigger("size_change", SizeChangeParams, needs=("onboard",), family="temporal")
def size_change(log: MiningLog, params: SizeChangeParams) -> list[Event]:
    """A rigid onboard object whose box volume leaves the track's median by a factor ``min_ratio``.

    Score: ``log(ratio) / (2 log(min_ratio))``, capped at 1, times the run length over ``full_at_frames``.
    """
    events = []
    for track, rows in log.onboard_tracks.items():
        positions = sorted(rows)
        if len(positions) < params.min_track_frames:
            continue
        boxes = [log.onboard(p) for p in positions]
        label = Counter(str(b.labels[rows[p]]) for b, p in zip(boxes, positions)).most_common(1)[0][0]
        if label not in params.classes:
            continue
        volumes = np.array([np.prod(b.sizes_m[rows[p]]) for b, p in zip(boxes, positions)])
        ranges = np.array([np.hypot(*b.centers_m[rows[p], :2]) for b, p in zip(boxes, positions)])
        log_ratio = np.abs(np.log(volumes / np.median(volumes)))
        flagged = [p for i, p in enumerate(positions) if log_ratio[i] >= np.log(params.min_ratio) and ranges[i] <= params.max_range_m]
        for run in log.runs(flagged):
            idx = [positions.index(p) for p in run]
            peak_i = idx[int(np.argmax(log_ratio[idx]))]
            obj = log.object_ref(positions[peak_i], "onboard", rows[positions[peak_i]])
            factor = float(volumes[peak_i] / np.median(volumes))
            reason = (
                f"size_change: onboard {label} track {track} at {obj.range_m:.0f} m changes volume {factor:.2f}x its median "
                f"for {frames_text(len(run))}"
            )
            events.append(log.event(
                "size_change", run, positions[peak_i], float(min(1.0, log_ratio[peak_i] / (2 * np.log(params.min_ratio)))) * min(1.0, len(run) / params.full_at_frames),
                label, obj.range_m, [obj],
                reason, {"volume_ratio": round(factor, 3), "frames": len(run), "onboard_track": int(track)},
            ))  # fmt: skip
    return events


@dataclass(frozen=True)
class ClassFlipParams:
    """Parameters of ``class_flip``."""

    min_track_frames: int = param(5, "ignore shorter tracks", minimum=2)
    max_range_m: float = param(60.0, "ignore boxes further than this (metres)", minimum=0.0)
    across_groups: bool = param(True, "also fire when the flip crosses class groups (car to pedestrian)")


@trigger("class_flip", ClassFlipParams, needs=("onboard",), family="temporal")
def class_flip(log: MiningLog, params: ClassFlipParams) -> list[Event]:
    """An onboard track reported with another class than its majority class for some frames.

    Score: share of the track's frames with the majority class (a flip in a stable track is
    more suspicious than a track that never settles).
    """
    events = []
    for track, rows in log.onboard_tracks.items():
        positions = sorted(rows)
        if len(positions) < params.min_track_frames:
            continue
        labels = [str(log.onboard(p).labels[rows[p]]) for p in positions]
        majority, count = Counter(labels).most_common(1)[0]
        flagged = [
            p for p, lbl in zip(positions, labels)
            if lbl != majority and (params.across_groups or class_group(lbl) == class_group(majority))
            and np.hypot(*log.onboard(p).centers_m[rows[p], :2]) <= params.max_range_m
        ]  # fmt: skip
        for run in log.runs(flagged):
            peak = run[0]
            obj = log.object_ref(peak, "onboard", rows[peak])
            reason = (
                f"class_flip: onboard track {track} at {obj.range_m:.0f} m is a {majority} in {count} of {len(positions)} frames "
                f"but a {obj.label} for {frames_text(len(run))}"
            )
            events.append(log.event(
                "class_flip", run, peak, count / len(positions), majority, obj.range_m, [obj], reason,
                {"majority_label": majority, "flipped_label": obj.label, "frames": len(run), "onboard_track": int(track)},
            ))  # fmt: skip
    return events


__all__ = ["class_flip", "size_change", "track_flicker", "track_jump"]
