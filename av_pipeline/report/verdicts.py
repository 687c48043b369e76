"""Calibration drift verdicts for the report's third section.

The report does not run calibration checks itself; whoever does (today the main job,
``avp run``: :func:`beam_jobs.run_steps.drift_scores` and :func:`beam_jobs.run_steps.drift_verdict`) passes their outcome in as :class:`CalibrationVerdict`
records, or as plain dicts with the same keys, together with figure files.
:func:`verdicts_from_drift_checks` turns the main job's per-camera results into verdicts.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from av_pipeline.errors import ConfigError

#: Keys a verdict dict must have (``note`` is optional).
VERDICT_KEYS = ("sensor", "check", "value", "threshold", "verdict")


def default_max_fraction_better() -> float:
    """The threshold :func:`calibration.calibration_drift_check_frames` uses by default."""
    from calibration import calibration_drift_check_frames

    return float(inspect.signature(calibration_drift_check_frames).parameters["max_fraction_better"].default)


@dataclass(frozen=True)
class CalibrationVerdict:
    """One calibration check of one sensor.

    Attributes:
        sensor: camera or LiDAR name.
        check: what was checked, e.g. ``"drift check, as calibrated"``.
        value: the statistic (for the drift check: the share of perturbed extrinsics that
            align at least as well, 0 ... 1), or ``None``.
        threshold: the value beyond which the check fails, or ``None``.
        verdict: the outcome in words (``"ok"``, ``"DRIFTED"``, ``"flagged (expected)"`` ...).
        note: why the check was run or how to read it (``""`` for none).
    """

    sensor: str
    check: str
    value: float | None
    threshold: float | None
    verdict: str
    note: str = ""

    def __post_init__(self) -> None:
        for name in ("sensor", "check", "verdict"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"calibration verdict {name}: expected a non-empty string, got {str(getattr(self, name))[:60]!r}")
        for name in ("value", "threshold"):
            number = getattr(self, name)
            if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number)):
                raise ConfigError(f"calibration verdict {self.sensor} {name}: expected a finite number or None, got {str(number)[:60]!r}")

    @property
    def failed(self) -> bool:
        """Whether the verdict reports a problem (drifted, failed, not flagged)."""
        words = self.verdict.lower()
        return any(w in words for w in ("drifted", "fail", "not flagged")) and "expected" not in words

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"sensor": self.sensor, "check": self.check, "value": self.value, "threshold": self.threshold, "verdict": self.verdict, "note": self.note}


def as_verdicts(items: Iterable[CalibrationVerdict | Mapping[str, Any]] | None) -> list[CalibrationVerdict]:
    """Normalise verdicts given as records or dicts with the keys of :data:`VERDICT_KEYS`.

    Raises:
        ConfigError: a dict without one of the keys, or with an unknown key.
    """
    verdicts = []
    for i, item in enumerate(items or ()):
        if isinstance(item, CalibrationVerdict):
            verdicts.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"calibration[{i}]: expected a CalibrationVerdict or a dict with keys {list(VERDICT_KEYS)}, got {type(item).__name__}")
        missing = [k for k in VERDICT_KEYS if k not in item]
        unknown = sorted(set(item) - set(VERDICT_KEYS) - {"note"})
        if missing or unknown:
            raise ConfigError(f"calibration[{i}]: missing keys {missing}, unknown keys {unknown[:5]}; expected {list(VERDICT_KEYS)} and optionally 'note'")
        verdicts.append(CalibrationVerdict(**{k: item[k] for k in (*VERDICT_KEYS, "note") if k in item}))
    return verdicts


def verdicts_from_drift_checks(
    results: Mapping[str, Mapping[str, Any]], *, pan_deg: float = 1.0, max_fraction_better: float | None = None
) -> list[CalibrationVerdict]:
    """Verdicts from the main job's drift-check results (``calibration_drift_check`` in the
    ``summary.json`` of ``avp run`` / ``avp demo``).

    Per camera two verdicts: the extrinsic as calibrated (``ok`` or ``DRIFTED``), and the
    control, the extrinsic panned by ``pan_deg`` on purpose (``flagged (expected)``, or
    ``not flagged``: the check cannot see such a drift on this data).

    Args:
        results: camera -> ``{frames, fraction_better, drifted, panned_fraction_better, panned_drifted}``.
        pan_deg: the control's pan (degrees), for the text.
        max_fraction_better: the check's threshold; default the calibration API's default.

    Raises:
        ConfigError: a camera's result lacks one of the keys.
    """
    threshold = default_max_fraction_better() if max_fraction_better is None else float(max_fraction_better)
    verdicts = []
    for camera, check in results.items():
        missing = [k for k in ("fraction_better", "drifted", "panned_fraction_better", "panned_drifted") if k not in check]
        if missing:
            raise ConfigError(f"calibration drift check of {str(camera)[:60]!r}: missing keys {missing}")
        frames = check.get("frames")
        over = f" over {frames} frames" if frames else ""
        verdicts.append(CalibrationVerdict(
            str(camera), "drift check, as calibrated", float(check["fraction_better"]), threshold,
            "DRIFTED" if check["drifted"] else "ok", f"share of perturbed extrinsics aligning at least as well{over}",
        ))  # fmt: skip
        verdicts.append(CalibrationVerdict(
            str(camera), f"control: panned {pan_deg:g} deg on purpose", float(check["panned_fraction_better"]), threshold,
            "flagged (expected)" if check["panned_drifted"] else "not flagged", "a control, not a finding: the check should flag it",
        ))  # fmt: skip
    return verdicts


@dataclass(frozen=True)
class CalibrationSection:
    """What the report's calibration section shows.

    Attributes:
        verdicts: the checks, one row each.
        figures: picture files (PNG/JPEG/SVG) copied next to the report, shown in order.
        note: a paragraph above the table (how the checks were run, what a control is).
    """

    verdicts: tuple[CalibrationVerdict, ...] = ()
    figures: tuple[Path, ...] = ()
    note: str = ""


def as_calibration_section(value: Any) -> CalibrationSection | None:
    """Normalise the ``calibration`` input of :func:`~av_pipeline.report.build_report`.

    Accepts ``None`` (no section), a :class:`CalibrationSection`, a list of verdicts (records
    or dicts, see :func:`as_verdicts`), or a dict ``{"verdicts": [...], "figures": [paths],
    "note": "..."}``; also the demo's ``summary.json`` document (its
    ``calibration_drift_check`` results and note, see :func:`verdicts_from_drift_checks`).

    Raises:
        ConfigError: anything else, or a figure that is not a file.
    """
    if value is None or isinstance(value, CalibrationSection):
        section = value
    elif isinstance(value, Mapping) and "calibration_drift_check" in value:
        section = CalibrationSection(tuple(verdicts_from_drift_checks(value["calibration_drift_check"])), (), str(value.get("calibration_drift_check_note") or ""))
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - {"verdicts", "figures", "note"})
        if unknown:
            raise ConfigError(f"calibration: unknown keys {unknown[:5]}; expected 'verdicts', 'figures', 'note'")
        figures: Sequence[Any] = value.get("figures") or ()
        section = CalibrationSection(tuple(as_verdicts(value.get("verdicts"))), tuple(Path(f) for f in figures), str(value.get("note") or ""))
    elif isinstance(value, (list, tuple)):
        section = CalibrationSection(tuple(as_verdicts(value)))
    else:
        raise ConfigError(f"calibration: expected verdicts (a list), a dict with 'verdicts' and 'figures', or None; got {type(value).__name__}")
    for figure in section.figures if section is not None else ():
        if not Path(figure).is_file():
            raise ConfigError(f"calibration figure {str(figure)[:200]!r}: no such file")
    return section


__all__ = [
    "CalibrationSection", "CalibrationVerdict", "VERDICT_KEYS", "as_calibration_section", "as_verdicts", "default_max_fraction_better",
    "verdicts_from_drift_checks",
]  # fmt: skip
