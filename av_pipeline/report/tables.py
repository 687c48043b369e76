"""The report's numbers: rows per trigger, class, range bin, log; skipped triggers; dead
letters grouped by stage and reason. Plain functions of a :class:`~av_pipeline.report.inputs.MiningRun`
returning JSON-safe rows, so ``summary.json`` and the HTML tables are the same data.

Counts come from two places and the rows say which: ``mining.json`` counts every event a
trigger fired in every log (before the campaign's slices); ``cases.json`` holds only the
events of the *selected* cases (scores, classes and ranges are known only for those).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Sequence

from av_pipeline.mining.records import Case, Event
from av_pipeline.report.inputs import DeadLetter, MiningRun

#: Row name of events about the ego vehicle itself (no object, no class, no range).
EGO_ROW = "ego behaviour"
#: Longest dead-letter message the report shows (the full one stays in the dead-letter file).
MAX_MESSAGE_CHARS = 300
#: Longest message quoted in the summary's sentence about dead letters.
EXPLAINED_MESSAGE_CHARS = 200


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return round(sum(finite) / len(finite), 4) if finite else None


def _case_events(cases: Sequence[Case]) -> list[tuple[Case, Event]]:
    return [(case, event) for case in cases for event in case.events]


def _log_counts(run: MiningRun, key: str) -> Counter:
    total: Counter = Counter()
    for log in run.mining["logs"].values():
        total.update({str(k): int(v) for k, v in (log.get(key) or {}).items()})
    return total


def trigger_rows(run: MiningRun) -> list[dict[str, Any]]:
    """One row per trigger of the campaign (and any other that fired).

    Keys: ``trigger``; ``fired`` (all logs, before slicing), ``sliced_out``, ``kept``
    (``fired - sliced_out``), ``skipped_logs`` (logs where it could not run) from
    ``mining.json``; ``events_in_cases``, ``cases`` (selected cases with an event of it),
    ``main_cases`` (cases it leads), ``mean_event_score`` (of its events in cases) from ``cases.json``.
    """
    fired, sliced = _log_counts(run, "events_per_trigger"), _log_counts(run, "sliced_out")
    skipped = Counter(str(t) for log in run.mining["logs"].values() for t in (log.get("skipped_triggers") or {}))
    scores: dict[str, list[float]] = defaultdict(list)
    for _, event in _case_events(run.cases):
        scores[event.trigger].append(event.score)
    names = list(run.campaign.get("triggers") or {}) + sorted((set(fired) | set(scores)) - set(run.campaign.get("triggers") or {}))
    return [
        {
            "trigger": name, "fired": fired[name], "sliced_out": sliced[name], "kept": fired[name] - sliced[name], "skipped_logs": skipped[name],
            "events_in_cases": len(scores[name]), "cases": sum(1 for c in run.cases if name in {e.trigger for e in c.events}),
            "main_cases": sum(1 for c in run.cases if c.triggers and c.triggers[0] == name), "mean_event_score": _mean(scores[name]),
        }
        for name in names
    ]  # fmt: skip


def class_rows(run: MiningRun) -> list[dict[str, Any]]:
    """One row per class among the selected cases' events (:data:`EGO_ROW` for ego events).

    Keys: ``label``, ``events_in_cases``, ``cases`` (cases with an event about it),
    ``mean_event_score``.
    """
    scores: dict[str, list[float]] = defaultdict(list)
    cases: dict[str, set[str]] = defaultdict(set)
    for case, event in _case_events(run.cases):
        label = event.label or EGO_ROW
        scores[label].append(event.score)
        cases[label].add(case.case_id)
    order = sorted(scores, key=lambda label: (label == EGO_ROW, -len(scores[label]), label))
    return [{"label": label, "events_in_cases": len(scores[label]), "cases": len(cases[label]), "mean_event_score": _mean(scores[label])} for label in order]


def range_bin_name(lo_m: float, hi_m: float) -> str:
    """``"20-40 m"``."""
    return f"{lo_m:g}-{hi_m:g} m"


def range_bin_of(event: Event, edges_m: Sequence[float]) -> str:
    """The range bin an event falls in: ``[lo, hi)``, the last bin closed; :data:`EGO_ROW` for
    ego events; ``"beyond <last> m"`` / ``"below <first> m"`` outside the edges."""
    if not event.label:
        return EGO_ROW
    if not edges_m:
        return "all ranges"
    if event.range_m < edges_m[0]:
        return f"below {edges_m[0]:g} m"
    for lo, hi in zip(edges_m[:-1], edges_m[1:]):
        if event.range_m < hi or (hi == edges_m[-1] and event.range_m <= hi):
            return range_bin_name(lo, hi)
    return f"beyond {edges_m[-1]:g} m"


def range_rows(run: MiningRun) -> list[dict[str, Any]]:
    """One row per range bin of the campaign (``slices.range_bins_m``), every bin listed.

    Keys: ``bin``, ``events_in_cases`` (events by their range at the peak frame), ``cases``
    (cases by the range of their strongest event), ``mean_event_score``.
    """
    edges = run.range_bins_m
    names = [range_bin_name(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])] or ["all ranges"]
    scores: dict[str, list[float]] = defaultdict(list)
    case_bins = Counter(range_bin_of(c.events[0], edges) for c in run.cases if c.events)
    for _, event in _case_events(run.cases):
        scores[range_bin_of(event, edges)].append(event.score)
    names += sorted((set(scores) | set(case_bins)) - set(names) - {EGO_ROW}) + [EGO_ROW]
    rows = [{"bin": n, "events_in_cases": len(scores[n]), "cases": case_bins[n], "mean_event_score": _mean(scores[n])} for n in names]
    return [r for r in rows if r["bin"] != EGO_ROW or r["events_in_cases"]]


def log_rows(run: MiningRun) -> list[dict[str, Any]]:
    """One row per mined log: ``log_id``, ``frames``, ``events`` (after slicing),
    ``candidate_cases``, ``cases`` selected, ``key_frames`` of its selected cases,
    ``skipped_triggers`` (how many)."""
    rows = []
    for log_id in sorted(set(run.logs) | set(run.mining["logs"])):
        log = run.mining["logs"].get(log_id) or {}
        selected = [c for c in run.cases if c.log_id == log_id]
        rows.append({
            "log_id": log_id, "frames": int(log.get("frames", 0)), "events": int(log.get("events", 0)),
            "candidate_cases": int(log.get("candidates", 0)), "cases": len(selected),
            "key_frames": sum(len(c.key_frames) for c in selected), "skipped_triggers": len(log.get("skipped_triggers") or {}),
        })  # fmt: skip
    return rows


def skipped_rows(run: MiningRun) -> list[dict[str, Any]]:
    """``{log_id, trigger, reason}`` per trigger a log could not run."""
    return [
        {"log_id": log_id, "trigger": str(trigger), "reason": str(reason)}
        for log_id, log in sorted(run.mining["logs"].items())
        for trigger, reason in sorted((log.get("skipped_triggers") or {}).items())
    ]


def dead_letter_reason(letter: DeadLetter) -> str:
    """Why a record failed, in a few words: the error type, the validation check that failed
    (if any), and ``unexpected: likely a bug`` for an exception the product did not raise on
    purpose."""
    details = [letter.check] if letter.check else []
    if not letter.expected:
        details.append("unexpected: likely a bug")
    return letter.error_type + (f" ({'; '.join(details)})" if details else "")


def dead_letter_rows(letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
    """Dead letters grouped by stage, reason (error type and check), file and field.

    Keys: ``stage``, ``reason``, ``path``, ``field``, ``count``, ``frames`` (how many of
    them are frames; the others are whole logs), ``logs`` (log ids), ``message`` (the first
    one, at most :data:`MAX_MESSAGE_CHARS` characters). Largest groups first.
    """
    groups: dict[tuple[str, str, str, str], list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        groups[(letter.stage, dead_letter_reason(letter), letter.path, letter.field)].append(letter)
    rows = []
    for (stage, reason, path, field_name), members in groups.items():
        message = members[0].message
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "\u2026"
        rows.append({
            "stage": stage, "reason": reason, "path": path, "field": field_name, "count": len(members),
            "frames": sum(1 for m in members if m.frame_index is not None), "logs": sorted({m.log_id for m in members if m.log_id}), "message": message,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (-r["count"], r["stage"], r["reason"], r["path"], r["field"]))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def dead_letter_explanation(letters: Sequence[DeadLetter]) -> str:
    """One sentence: how many frames and logs were dead-lettered, and why, per stage and
    reason (largest first), e.g. ``"2 frames and 1 log were dead-lettered: 2 frames at stage
    load, LogFormatError: /logs/drive_a.mcap: /lidar_top: truncated chunk; 1 log at stage
    list, ..."``: the message of each group's first record (it names the file and field), at
    most :data:`EXPLAINED_MESSAGE_CHARS` characters.
    """
    if not letters:
        return "No frame and no log was dead-lettered."
    frames = sum(1 for d in letters if d.frame_index is not None)
    parts = []
    for row in dead_letter_rows(letters):
        what = _plural(row["frames"], "frame") if row["frames"] == row["count"] else _plural(row["count"], "record") if row["frames"] else _plural(row["count"], "log")
        message = row["message"] if len(row["message"]) <= EXPLAINED_MESSAGE_CHARS else row["message"][: EXPLAINED_MESSAGE_CHARS - 1] + "\u2026"
        parts.append(f"{what} at stage {row['stage']}, {row['reason']}: {message}")
    sentence = f"{_plural(frames, 'frame')} and {_plural(len(letters) - frames, 'log')} were dead-lettered: " + "; ".join(parts)
    return sentence if sentence.endswith((".", "\u2026")) else sentence + "."


def _share(used: int, budget: Any) -> float | None:
    return round(used / budget, 4) if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0 else None


def overview(run: MiningRun) -> dict[str, Any]:
    """The summary section's numbers (also the top of the report's ``summary.json``).

    ``frames_listed``, ``frames_mined``, ``frames_dead_lettered``, ``logs_dead_lettered``,
    ``events`` (kept after slicing) come from ``summary.json``; ``frames_accounted``: whether
    frames listed = mined + dead-lettered. ``dead_letters`` counts the records in
    ``dead_letters/``, ``dead_letters_by_stage`` / ``dead_letters_by_reason`` split them
    (see :func:`dead_letter_reason`), ``dead_letter_explanation`` says it in a sentence.
    ``key_frames`` / ``key_frame_budget`` (``None``: no limit), ``cases`` / ``case_budget``,
    ``candidate_cases`` from ``mining.json``; ``key_frame_budget_used`` /
    ``case_budget_used``: the share of the budget used (0 ... 1, ``None`` without a limit).
    """
    summary, mining = run.summary, run.mining
    letters = run.dead_letters
    return {
        "campaign": run.campaign_name,
        "logs": list(run.logs),
        "frames_listed": int(summary["frames_listed"]),
        "frames_mined": int(summary["frames_mined"]),
        "frames_dead_lettered": int(summary["frames_dead_lettered"]),
        "logs_dead_lettered": int(summary["logs_dead_lettered"]),
        "frames_accounted": int(summary["frames_listed"]) == int(summary["frames_mined"]) + int(summary["frames_dead_lettered"]),
        "dead_letters": len(letters),
        "dead_letters_by_stage": dict(sorted(Counter(d.stage for d in letters).items())),
        "dead_letters_by_reason": dict(sorted(Counter(dead_letter_reason(d) for d in letters).items())),
        "dead_letter_explanation": dead_letter_explanation(letters),
        "events": int(summary["events"]),
        "events_in_cases": sum(len(c.events) for c in run.cases),
        "candidate_cases": int(mining["candidate_cases"]),
        "cases": len(run.cases),
        "case_budget": mining.get("case_budget"),
        "key_frames": int(mining["key_frames"]),
        "key_frame_budget": mining.get("key_frame_budget"),
        "key_frame_budget_used": _share(int(mining["key_frames"]), mining.get("key_frame_budget")),
        "case_budget_used": _share(len(run.cases), mining.get("case_budget")),
    }


__all__ = [
    "EGO_ROW", "class_rows", "dead_letter_explanation", "dead_letter_reason", "dead_letter_rows", "log_rows", "overview", "range_bin_name", "range_bin_of", "range_rows", "skipped_rows", "trigger_rows",
]  # fmt: skip
