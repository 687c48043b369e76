"""The mining report: a static HTML folder a person reads (what was found, why each case was
flagged, pictures), plus ``summary.json`` with the same numbers for machines.

- :func:`build_report` / :class:`ReportResult`: mining folder -> ``index.html``, ``figures/``, ``summary.json``;
- :class:`CalibrationVerdict`, :class:`CalibrationSection`, :func:`verdicts_from_drift_checks`:
  calibration drift verdicts passed in by the job that computed them;
- :func:`read_mining_run`: the mining outputs, read.

Command line: ``avp report MINING_DIR --out DIR``; guide: docs/report.md.
"""

from __future__ import annotations

from av_pipeline.report.build import ReportResult, build_report
from av_pipeline.report.inputs import MiningRun, read_mining_run
from av_pipeline.report.verdicts import CalibrationSection, CalibrationVerdict, as_calibration_section, verdicts_from_drift_checks

__all__ = [
    "CalibrationSection",
    "CalibrationVerdict",
    "MiningRun",
    "ReportResult",
    "as_calibration_section",
    "build_report",
    "read_mining_run",
    "verdicts_from_drift_checks",
]
