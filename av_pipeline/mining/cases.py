"""From events to cases: time windows per log, merged across triggers, scored, de-duplicated,
then selected across logs under a budget with a diversity rule.

Per log (:func:`build_cases`):

1. events are sorted by first frame and grouped into windows per subject: an event joins a
   window about the same object (a shared track of the same source, or centres within
   ``duplicate_distance_m`` in ``world``; ego events share the ego) when it starts within
   ``merge_gap_s`` of the window's end and the window stays within ``max_window_s`` (a
   single longer event keeps its own length). Disagreements about different objects at the
   same time are different cases;
2. a window's score combines its triggers: each trigger counts once, with its strongest event
   (one trigger firing again about the same object is the same evidence, not more), and
   different triggers corroborate by noisy-OR, ``1 - prod(1 - s_trigger)``. Each event is first
   weighted by rarity: events of rare triggers and rare classes (in this run) count more,
   ``score * ((1 - rarity) + rarity * (1 - sqrt(share_trigger * share_class)))``;
3. near-duplicates: windows within ``duplicate_gap_s`` that share an object (same track of
   the same source, or centres within ``duplicate_distance_m`` in ``world``) are merged into
   one case, as long as it spans at most twice ``max_window_s``;
4. key frames: the peak frames of the strongest events (``key_frames_per_case``).

Across logs (:func:`select_cases`): cases below ``min_case_score`` are dropped, the rest are
taken greedily by score, each already-taken case with the same main trigger and class
multiplying a candidate's score by ``diversity``, until the budget (key frames or cases) is
spent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np

from av_pipeline.mining.campaign import Budget, CaseConfig
from av_pipeline.mining.records import Case, Event


def _object_keys(event: Event) -> set[tuple[str, int]]:
    return {(o.source, o.track_id) for o in event.objects if o.track_id >= 0 and o.source in ("shadow", "onboard", "camera")}


def _places(event: Event) -> list[np.ndarray]:
    return [np.asarray(o.center_world_m[:2]) for o in event.objects if o.center_world_m is not None and o.source != "ego"]


def _is_ego(event: Event) -> bool:
    return any(o.source == "ego" for o in event.objects)


def _same_subject(a: Sequence[Event], b: Sequence[Event], config: CaseConfig) -> bool:
    """Whether two groups of events are about the same object (or both about the ego)."""
    if any(_is_ego(e) for e in a) and any(_is_ego(e) for e in b):
        return True
    if set().union(*(_object_keys(e) for e in a)) & set().union(*(_object_keys(e) for e in b)):
        return True
    places_a = [p for e in a for p in _places(e)]
    places_b = [p for e in b for p in _places(e)]
    return any(np.hypot(*(p - q)) <= config.duplicate_distance_m for p in places_a for q in places_b)


def _shares(events: Sequence[Event]) -> tuple[Counter, Counter]:
    return Counter(e.trigger for e in events), Counter(e.label for e in events)


def _frame_period_s(events: Sequence[Event]) -> float:
    # the log's frame period, from events that span several frames (fallback 0.1 s)
    periods = [(e.last_timestamp_ns - e.first_timestamp_ns) * 1e-9 / (e.last_frame - e.first_frame) for e in events if e.last_frame > e.first_frame]
    return float(np.median(periods)) if periods else 0.1


def build_cases(events: Iterable[Event], config: CaseConfig, *, trigger_counts: Counter | None = None, label_counts: Counter | None = None) -> list[Case]:
    """Cases of one log (unselected, ``rank == -1``), strongest first.

    Args:
        events: the log's events (one log).
        config: window, de-duplication and scoring settings.
        trigger_counts, label_counts: event counts per trigger and per class over the whole
            run, for rarity (default: this log's).

    Raises:
        ValueError: events of several logs.
    """
    events = sorted(events, key=lambda e: (e.first_frame, e.last_frame, e.trigger))
    if not events:
        return []
    logs = {e.log_id for e in events}
    if len(logs) > 1:
        raise ValueError(f"build_cases: events of several logs {sorted(logs)}")
    by_trigger, by_label = _shares(events)
    by_trigger = trigger_counts or by_trigger
    by_label = label_counts or by_label
    total_t, total_l = max(1, sum(by_trigger.values())), max(1, sum(by_label.values()))
    period = _frame_period_s(events)
    merge_gap = int(round(config.merge_gap_s / period))
    max_len = max(1, int(round(config.max_window_s / period)))
    dup_gap = int(round(config.duplicate_gap_s / period))

    # one window per subject: events join a window about the same object (a shared track, or
    # centres within duplicate_distance_m in world; ego events share the ego)
    windows: list[list[Event]] = []
    for event in events:
        for current in reversed(windows):
            first = min(e.first_frame for e in current)
            last = max(e.last_frame for e in current)
            if event.first_frame <= last + merge_gap and max(last, event.last_frame) - first + 1 <= max_len and _same_subject([event], current, config):
                current.append(event)
                break
        else:
            windows.append([event])

    # near-duplicates: close windows about the same object
    merged: list[list[Event]] = []
    for window in windows:
        first = min(e.first_frame for e in window)
        last = max(e.last_frame for e in window)
        for other in reversed(merged[-3:]):
            other_first, other_last = min(e.first_frame for e in other), max(e.last_frame for e in other)
            if first - other_last > dup_gap or max(last, other_last) - min(first, other_first) + 1 > 2 * max_len:
                continue
            if _same_subject(window, other, config):
                other.extend(window)
                break
        else:
            merged.append(list(window))

    def weighted(event: Event) -> float:
        share = (by_trigger[event.trigger] / total_t) * (by_label[event.label] / total_l)
        return event.score * ((1.0 - config.rarity) + config.rarity * (1.0 - np.sqrt(share)))

    cases = []
    used_ids: Counter = Counter()
    for window in merged:
        window.sort(key=lambda e: -e.score)
        strongest: dict[str, float] = {}
        for event in window:
            strongest[event.trigger] = max(strongest.get(event.trigger, 0.0), weighted(event))
        score = 1.0 - float(np.prod([1.0 - v for v in strongest.values()]))
        keys: list[Event] = []
        for event in sorted(window, key=lambda e: -weighted(e)):
            if len(keys) < config.key_frames_per_case and event.peak_frame not in {k.peak_frame for k in keys}:
                keys.append(event)
        first = min(window, key=lambda e: e.first_frame)
        last = max(window, key=lambda e: e.last_frame)
        # cases about different objects may start in the same frame: later ones get a suffix
        case_id = f"{first.log_id}@{first.first_timestamp_ns}"
        used_ids[case_id] += 1
        if used_ids[case_id] > 1:
            case_id += f"-{used_ids[case_id]}"
        cases.append(Case(
            case_id=case_id, log_id=first.log_id,
            first_frame=first.first_frame, last_frame=last.last_frame,
            first_timestamp_ns=first.first_timestamp_ns, last_timestamp_ns=last.last_timestamp_ns,
            key_frames=tuple(k.peak_frame for k in keys), key_timestamps_ns=tuple(_peak_time(k) for k in keys),
            score=float(np.clip(score, 0.0, 1.0)), triggers=tuple(dict.fromkeys(e.trigger for e in window)),
            labels=tuple(dict.fromkeys(e.label for e in window if e.label)), events=tuple(window),
        ))  # fmt: skip
    cases.sort(key=lambda c: -c.score)
    return cases


def _peak_time(event: Event) -> int:
    if event.last_frame == event.first_frame:
        return event.first_timestamp_ns
    step = (event.last_timestamp_ns - event.first_timestamp_ns) / (event.last_frame - event.first_frame)
    return int(round(event.first_timestamp_ns + (event.peak_frame - event.first_frame) * step))


def select_cases(candidates: Iterable[Case], budget: Budget, config: CaseConfig, frames_mined: int) -> list[Case]:
    """Pick cases across logs under the budget; returns them ranked (``rank`` 0 = first pick).

    Args:
        candidates: cases of every log (:func:`build_cases`).
        budget: key-frame and case limits.
        config: ``min_case_score`` and ``diversity``.
        frames_mined: frames that went into mining (for ``budget.frames_fraction``).
    """
    pool = [c for c in candidates if c.score >= config.min_case_score]
    frame_limit = budget.frame_limit(frames_mined)
    taken: list[Case] = []
    seen: Counter = Counter()
    frames_used = 0
    while pool:
        best = max(range(len(pool)), key=lambda i: (pool[i].score * config.diversity ** seen[_kind(pool[i])], -i))
        case = pool.pop(best)
        if budget.cases is not None and len(taken) >= budget.cases:
            break
        if frame_limit is not None and frames_used + len(case.key_frames) > frame_limit:
            continue
        frames_used += len(case.key_frames)
        seen[_kind(case)] += 1
        taken.append(replace(case, rank=len(taken)))
    return taken


def _kind(case: Case) -> tuple[str, str]:
    main = case.events[0]
    return (main.trigger, main.label)


__all__ = ["build_cases", "select_cases"]
