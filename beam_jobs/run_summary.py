"""The end of a main-job run (Beam pipeline or Spark driver): the :class:`RunSummary`, the
accounting check against ``summary.json``, and the lines printed for a person."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import JobAccountingError, write_json
from beam_jobs.run_config import RunConfig
from beam_jobs.run_steps import DATASETS_DIR, REPORT_DIR, SUMMARY_FILE

@dataclass(frozen=True)
class RunSummary:
    """What the main job did (``summary.json`` holds these and more: fusion numbers, drift checks)."""

    out: str
    runner: str
    campaign: str
    logs: int
    frames_listed: int
    frames_mined: int
    frames_dead_lettered: int
    logs_dead_lettered: int
    cases: int
    cases_exported: int
    cases_dead_lettered: int
    events: int
    elapsed_s: float
    report: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return dict(self.__dict__)


def finish_run(config: RunConfig, runner: str, logs: int, elapsed_s: float, frames_listed: int | None = None) -> RunSummary:
    """After the job: add ``elapsed_s`` to ``summary.json``, check the accounting, return the summary.

    Args:
        frames_listed: the runner's own count of listed frames when it reports counters
            (checked against the pipeline's); else the count in ``summary.json``.

    Raises:
        JobAccountingError: frames listed != mined + dead-lettered, or the two listed counts differ.
    """
    summary_path = FileSystems.join(config.out, SUMMARY_FILE)
    document = _read_json(summary_path)
    document["elapsed_s"] = elapsed_s
    write_json(summary_path, document)
    listed = int(document["frames_listed"])
    if frames_listed is not None and int(frames_listed) != listed:
        raise JobAccountingError(f"the main job counted {frames_listed} listed frames in its counters but {listed} in its summary (a bug)")
    report = FileSystems.join(config.out, REPORT_DIR, "index.html")
    summary = RunSummary(
        out=config.out, runner=runner, campaign=config.campaign, logs=logs, frames_listed=listed,
        frames_mined=int(document["frames_mined"]), frames_dead_lettered=int(document["frames_dead_lettered"]),
        logs_dead_lettered=int(document["logs_dead_lettered"]), cases=int(document["cases"]), cases_exported=int(document["cases_exported"]),
        cases_dead_lettered=int(document["cases_dead_lettered"]), events=int(document["events"]), elapsed_s=elapsed_s,
        report=report if FileSystems.exists(report) else None,
    )  # fmt: skip
    if summary.frames_listed != summary.frames_mined + summary.frames_dead_lettered:
        raise JobAccountingError(
            f"the main job lost frames (a bug): listed {summary.frames_listed} != mined {summary.frames_mined} + dead-lettered {summary.frames_dead_lettered}"
        )
    return summary


def _read_json(path: str) -> dict[str, Any]:
    import json

    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def print_summary(summary: RunSummary, file: Any = None) -> None:
    """Human-readable lines of a finished run."""
    file = file or sys.stdout
    print(
        f"{summary.frames_mined} of {summary.frames_listed} frames mined in {summary.logs} log(s) with campaign {summary.campaign}: "
        f"{summary.events} events, {summary.cases} cases, {summary.cases_exported} exported; dead letters: {summary.frames_dead_lettered} frames, "
        f"{summary.logs_dead_lettered} logs, {summary.cases_dead_lettered} cases; {summary.elapsed_s:.1f} s on {summary.runner}",
        file=file,
    )
    print(f"  datasets: {FileSystems.join(summary.out, DATASETS_DIR)}/ (manifest.json)", file=file)
    if summary.report:
        print(f"  report:   {summary.report}", file=file)



__all__ = ["RunSummary", "finish_run", "print_summary"]
