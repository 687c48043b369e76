"""Mining outputs: ``cases.parquet`` (one row per case), ``events.parquet`` (one row per event,
with its case), ``cases.json`` (everything, nested) and ``campaign.json`` (the campaign with
every parameter spelled out). Files are written under a temporary name, then renamed.

Schemas: docs/mining.md. :func:`read_cases` loads ``cases.json`` back into :class:`Case` records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from av_pipeline.errors import LogFormatError
from av_pipeline.mining.campaign import Campaign
from av_pipeline.mining.records import Case, Event, ObjectRef

CASES_PARQUET = "cases.parquet"
EVENTS_PARQUET = "events.parquet"
CASES_JSON = "cases.json"
CAMPAIGN_JSON = "campaign.json"
#: Version of the files' layout (bumped on incompatible changes).
FORMAT_VERSION = 1


def case_schema() -> pa.Schema:
    """Arrow schema of ``cases.parquet``."""
    return pa.schema([
        ("case_id", pa.string()), ("rank", pa.int32()), ("log_id", pa.string()),
        ("first_frame", pa.int64()), ("last_frame", pa.int64()),
        ("first_timestamp_ns", pa.int64()), ("last_timestamp_ns", pa.int64()),
        ("key_frames", pa.list_(pa.int64())), ("key_timestamps_ns", pa.list_(pa.int64())),
        ("score", pa.float64()), ("triggers", pa.list_(pa.string())), ("labels", pa.list_(pa.string())),
        ("reasons", pa.list_(pa.string())), ("num_events", pa.int32()), ("campaign", pa.string()),
    ])  # fmt: skip


def event_schema() -> pa.Schema:
    """Arrow schema of ``events.parquet``."""
    return pa.schema([
        ("case_id", pa.string()), ("trigger", pa.string()), ("log_id", pa.string()),
        ("first_frame", pa.int64()), ("last_frame", pa.int64()), ("peak_frame", pa.int64()),
        ("first_timestamp_ns", pa.int64()), ("last_timestamp_ns", pa.int64()),
        ("score", pa.float64()), ("label", pa.string()), ("range_m", pa.float64()),
        ("reason", pa.string()), ("objects_json", pa.string()), ("details_json", pa.string()),
    ])  # fmt: skip


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_cases(out_dir: str | os.PathLike, cases: Sequence[Case], campaign: Campaign, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the four files into ``out_dir`` (created); returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    case_rows = [
        {**{k: v for k, v in case.to_dict().items() if k not in ("events",)}, "num_events": len(case.events), "campaign": campaign.name}
        for case in cases
    ]  # fmt: skip
    event_rows = [
        {
            "case_id": case.case_id, **{k: v for k, v in e.to_dict().items() if k not in ("objects", "details")},
            "objects_json": json.dumps([o.to_dict() for o in e.objects]), "details_json": json.dumps(dict(e.details), sort_keys=True),
        }
        for case in cases for e in case.events
    ]  # fmt: skip
    paths = {name: out / name for name in (CASES_PARQUET, EVENTS_PARQUET, CASES_JSON, CAMPAIGN_JSON)}
    _atomic(paths[CASES_PARQUET], lambda p: pq.write_table(pa.Table.from_pylist(case_rows, schema=case_schema()), p))
    _atomic(paths[EVENTS_PARQUET], lambda p: pq.write_table(pa.Table.from_pylist(event_rows, schema=event_schema()), p))
    document = {"format_version": FORMAT_VERSION, "campaign": campaign.name, **(extra or {}), "cases": [c.to_dict() for c in cases]}
    _atomic(paths[CASES_JSON], lambda p: p.write_text(json.dumps(document, indent=1) + "\n"))
    _atomic(paths[CAMPAIGN_JSON], lambda p: p.write_text(json.dumps(campaign.to_dict(), indent=2) + "\n"))
    return paths


def _object(d: dict[str, Any]) -> ObjectRef:
    return ObjectRef(
        d["source"], d["track_id"], d["label"], d["frame_index"], tuple(d["center_ego_m"]),
        None if d["center_world_m"] is None else tuple(d["center_world_m"]), float("nan") if d["score"] is None else d["score"],
        d["num_lidar_points"], d.get("camera", ""),
    )  # fmt: skip


def _event(d: dict[str, Any]) -> Event:
    return Event(
        d["trigger"], d["log_id"], d["first_frame"], d["last_frame"], d["first_timestamp_ns"], d["last_timestamp_ns"], d["peak_frame"],
        d["score"], d["label"], d["range_m"], tuple(_object(o) for o in d["objects"]), d["reason"], d["details"],
    )  # fmt: skip


def read_cases(path: str | os.PathLike) -> list[Case]:
    """Cases from a ``cases.json`` (or the folder holding it).

    Raises:
        LogFormatError: not a cases file of a known version, naming the file and field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CASES_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogFormatError(str(path), "cases", f"cannot read ({exc})") from exc
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise LogFormatError(str(path), "format_version", f"expected {FORMAT_VERSION}")
    cases = []
    for i, d in enumerate(document.get("cases", [])):
        try:
            cases.append(Case(
                d["case_id"], d["log_id"], d["first_frame"], d["last_frame"], d["first_timestamp_ns"], d["last_timestamp_ns"],
                tuple(d["key_frames"]), tuple(d["key_timestamps_ns"]), d["score"], tuple(d["triggers"]), tuple(d["labels"]),
                tuple(_event(e) for e in d["events"]), d["rank"],
            ))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise LogFormatError(str(path), f"cases[{i}]", f"malformed case ({exc})") from exc
    return cases


__all__ = ["CAMPAIGN_JSON", "CASES_JSON", "CASES_PARQUET", "EVENTS_PARQUET", "case_schema", "event_schema", "read_cases", "write_cases"]
