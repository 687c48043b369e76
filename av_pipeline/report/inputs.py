"""What the report reads: the outputs of one mining run (docs/mining.md, "Outputs").

:func:`read_mining_run` loads ``summary.json``, ``mining.json``, ``campaign.json``,
``cases.json`` (through :func:`av_pipeline.mining.outputs.read_cases`) and every
``dead_letters/*.jsonl`` record into a :class:`MiningRun`. Pre-labels and the logs themselves
are read later, only for the cases that get pictures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from av_pipeline.errors import ConfigError, LogFormatError
from av_pipeline.mining.records import Case

#: Files a mining folder must hold (``prelabels/`` and ``dead_letters/`` are optional).
REQUIRED_FILES = ("summary.json", "mining.json", "campaign.json", "cases.json")
#: Dead-letter files of the mining job (``dead_letters/dead_letters-*.jsonl``).
DEAD_LETTER_GLOB = "dead_letters/*.jsonl"
#: Counts of ``summary.json`` the report shows; each must be a non-negative integer.
SUMMARY_COUNTS = ("frames_listed", "frames_mined", "frames_dead_lettered", "logs_dead_lettered", "events", "cases")
#: Counts of ``mining.json`` the report shows (``key_frame_budget`` / ``case_budget`` may be null: no limit).
MINING_COUNTS = ("key_frames", "events", "candidate_cases", "cases")


@dataclass(frozen=True)
class DeadLetter:
    """One failure of the mining job (a line of ``dead_letters/*.jsonl``).

    Attributes:
        stage: where it failed: ``list``, ``entry``, ``order``, ``load``, ``evidence``, ``mine`` ...
        error_type: the exception's class name.
        check: the validation check that failed, or ``""``.
        path: the file at fault.
        field: the field, sensor or key at fault.
        message: the full message.
        log_id: the log, or ``""`` when the log could not be listed.
        frame_index: the frame, or ``None`` for a whole log.
        expected: ``True`` when the product refused bad input on purpose, ``False`` for an
            unexpected exception (likely a bug); ``True`` when the record does not say.
    """

    stage: str
    error_type: str
    check: str
    path: str
    field: str
    message: str
    log_id: str
    frame_index: int | None
    expected: bool = True


@dataclass(frozen=True)
class MiningRun:
    """A mining output folder, read.

    Attributes:
        mining_dir: the folder.
        summary: ``summary.json`` (frames listed / mined / dead-lettered, events, cases).
        mining: ``mining.json`` (per log: events per trigger, sliced out, skipped triggers;
            key frames against the budget).
        campaign: ``campaign.json`` (every parameter spelled out).
        cases: the selected cases in rank order.
        logs: log ids that were mined (``cases.json``'s ``logs``, else ``mining.json``'s).
        dead_letters: every dead-letter record.
    """

    mining_dir: Path
    summary: Mapping[str, Any]
    mining: Mapping[str, Any]
    campaign: Mapping[str, Any]
    cases: tuple[Case, ...]
    logs: tuple[str, ...]
    dead_letters: tuple[DeadLetter, ...]

    @property
    def campaign_name(self) -> str:
        """The campaign's name."""
        return str(self.campaign.get("name") or self.mining.get("campaign") or self.summary.get("campaign") or "")

    @property
    def range_bins_m(self) -> tuple[float, ...]:
        """Edges of the report's range bins (``slices.range_bins_m`` of the campaign)."""
        return tuple(float(v) for v in (self.campaign.get("slices") or {}).get("range_bins_m") or ())

    @property
    def prelabel_dir(self) -> Path:
        """Where the shadow model's pre-labels are (``prelabels/<log>/prelabels.parquet``)."""
        return self.mining_dir / "prelabels"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LogFormatError(path, None, "missing: not a mining output folder (expected what avp mine writes: " + ", ".join(REQUIRED_FILES) + ")") from exc
    except (OSError, ValueError) as exc:
        raise LogFormatError(path, None, f"cannot read as JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise LogFormatError(path, None, f"expected a JSON object, got {type(document).__name__}")
    return document


def _check_counts(path: Path, document: Mapping[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = document.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise LogFormatError(path, name, f"expected a non-negative integer, got {json.dumps(value)[:40]}")


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def read_dead_letters(mining_dir: str | Path) -> list[DeadLetter]:
    """Every record of ``mining_dir/dead_letters/*.jsonl`` (none when the folder is absent).

    Raises:
        LogFormatError: an unreadable file, or a line that is not a JSON object, naming the
            file and line.
    """
    letters = []
    for path in sorted(Path(mining_dir).glob(DEAD_LETTER_GLOB)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LogFormatError(path, None, f"cannot read the dead-letter file ({exc})") from exc
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise LogFormatError(path, f"line {number}", f"not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise LogFormatError(path, f"line {number}", f"expected a JSON object, got {type(record).__name__}")
            index = record.get("frame_index")
            letters.append(DeadLetter(
                stage=_text(record, "stage"), error_type=_text(record, "error_type"), check=_text(record, "check"),
                path=_text(record, "path") or _text(record, "log_uri"), field=_text(record, "field"), message=_text(record, "message"),
                log_id=_text(record, "log_id"), frame_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                expected=record.get("expected") is not False,
            ))  # fmt: skip
    return letters


def read_mining_run(mining_dir: str | Path) -> MiningRun:
    """Read a mining output folder (what ``avp mine`` / ``beam_jobs.mine`` writes).

    Raises:
        ConfigError: ``mining_dir`` is not a folder.
        LogFormatError: a required file is missing or malformed, naming the file and field.
    """
    from av_pipeline.mining.outputs import read_cases

    mining_dir = Path(mining_dir)
    if not mining_dir.is_dir():
        raise ConfigError(f"mining_dir: expected the folder of a mining run (avp mine --out DIR), got {str(mining_dir)[:200]!r}")
    summary = _read_json(mining_dir / "summary.json")
    _check_counts(mining_dir / "summary.json", summary, SUMMARY_COUNTS)
    mining = _read_json(mining_dir / "mining.json")
    _check_counts(mining_dir / "mining.json", mining, MINING_COUNTS)
    if not isinstance(mining.get("logs"), dict):
        raise LogFormatError(mining_dir / "mining.json", "logs", "expected an object of per-log results")
    campaign = _read_json(mining_dir / "campaign.json")
    cases_path = mining_dir / "cases.json"
    logs = _read_json(cases_path).get("logs")  # first: a missing file says what a mining folder holds
    cases = sorted(read_cases(cases_path), key=lambda c: c.rank)
    if not isinstance(logs, list):
        logs = list(mining["logs"])
    return MiningRun(mining_dir, summary, mining, campaign, tuple(cases), tuple(str(v) for v in logs), tuple(read_dead_letters(mining_dir)))


__all__ = ["DEAD_LETTER_GLOB", "DeadLetter", "MiningRun", "read_dead_letters", "read_mining_run"]
