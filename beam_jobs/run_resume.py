"""Per-log outputs and checkpoints of the main job, shared by the Beam pipeline
(:mod:`beam_jobs.run`) and the Spark driver (:mod:`beam_jobs.spark_run`).

What a log leaves in ``--out`` before any step that needs all logs (case selection is a
budget over all of them)::

    ingest/index/<log>.parquet    its frame-index rows (the ingest job's schema), in time order
    prelabels/<log>/              its refined pre-labels (written by the Refine step)
    figures/<log>/, calibration/<log>/
    checkpoints/<log>.json        written last: the log is complete

Every file is written under a temporary name and renamed, so a crash never leaves a partial
file; a re-run writes the same names with the same content. The checkpoint holds the small
per-log results later steps need (frame keys, fusion rows, drift-check verdicts, pictures,
dead letters of the frame stages), so ``--resume`` skips ingest, fusion, detection and
refinement of a checkpointed log and feeds these to mining, selection, export and the
report, which run again over all logs.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, Iterable, Iterator, Mapping

from apache_beam.io.filesystems import FileSystems

from av_pipeline.records import FrameRef
from beam_jobs.common import write_bytes_atomic
from beam_jobs.prelabel import PRELABEL_DIR, safe_name
from beam_jobs.run_steps import LogContext

CHECKPOINT_DIR = "checkpoints"
INDEX_DIR = "ingest/index"
#: Bumped when a checkpoint's content changes; checkpoints of another version are ignored.
CHECKPOINT_VERSION = 1
#: Dead-letter stages that happen after listing and before mining (stored in a checkpoint;
#: the listing stages ``list``, ``entry`` and ``order`` are re-done on every run).
FRAME_STAGES = ("load", "validate", "fuse")
#: Tags of :func:`resumed_outputs`.
RESUMED_TAGS = ("context", "refined", "products", "drift", "figures", "dead_letters")


def checkpoint_path(out: str, log_id: str) -> str:
    """``OUT/checkpoints/<log>.json`` (the log id made file-name safe)."""
    return FileSystems.join(out, CHECKPOINT_DIR, safe_name(log_id) + ".json")


def index_path(out: str, log_id: str) -> str:
    """``OUT/ingest/index/<log>.parquet``."""
    return FileSystems.join(out, INDEX_DIR, safe_name(log_id) + ".parquet")


def write_log_index(out: str, log_id: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """Write one log's frame-index rows (sorted by ``timestamp_ns``) as one Parquet file; return its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from av_pipeline.ingest import index_schema

    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["timestamp_ns"]), schema=index_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    path = index_path(out, log_id)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def checkpoint_record(log_id: str, grouped: Mapping[str, Iterable[Any]]) -> dict[str, Any] | None:
    """The checkpoint of one log from its grouped per-log results, or ``None`` when the log
    has no context (no frame was indexed: nothing to skip on a resumed run).

    Args:
        grouped: ``context`` ([:class:`LogContext`]), ``refs`` (refined :class:`FrameRef`),
            ``products`` (fusion rows), ``drift`` (verdicts), ``figures`` (picture records),
            ``dead_letters`` (this log's dead letters of stages :data:`FRAME_STAGES`).
    """
    contexts = list(grouped.get("context", ()))
    if not contexts:
        return None
    context = contexts[0]
    refs = sorted(grouped.get("refs", ()), key=lambda r: r.index)
    return {
        "version": CHECKPOINT_VERSION, "log_id": log_id, "log_uri": context.log_uri, "reader": context.reader,
        "frames_indexed": context.frames, "figure_index": context.figure_index, "drift_indices": sorted(context.drift_indices),
        "refs": [dataclasses.asdict(r) for r in refs],
        "products": sorted(grouped.get("products", ()), key=lambda r: r["timestamp_ns"]),
        "drift": sorted(grouped.get("drift", ()), key=lambda d: d["camera"]),
        "figures": list(grouped.get("figures", ())),
        "dead_letters": sorted(grouped.get("dead_letters", ()), key=lambda d: (d.get("frame_index") or 0, str(d.get("stage")))),
    }  # fmt: skip


def write_checkpoint(out: str, record: Mapping[str, Any]) -> str:
    """Write a log's checkpoint (the last file of the log); return its path."""
    path = checkpoint_path(out, record["log_id"])
    write_bytes_atomic(path, json.dumps(record, sort_keys=True).encode("utf-8"))
    return path


def read_checkpoints(out: str) -> dict[str, dict[str, Any]]:
    """The valid checkpoints in ``out``: log id -> record (other versions and unreadable files are ignored)."""
    found: dict[str, dict[str, Any]] = {}
    for match in FileSystems.match([FileSystems.join(out, CHECKPOINT_DIR, "*.json")])[0].metadata_list:
        try:
            with FileSystems.open(match.path) as handle:
                record = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("version") == CHECKPOINT_VERSION and checkpoint_path(out, str(record.get("log_id"))) == match.path:
            found[record["log_id"]] = record
    return found


def resumed_outputs(out: str, record: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """A checkpointed log's results as ``(tag, value)`` pairs, tags :data:`RESUMED_TAGS`:
    what ingest, fusion, detection and refinement gave on the run that wrote it.

    ``refined`` values are ``(FrameRef, Cuboids)`` with the boxes read back from the log's
    pre-label files (float64 boxes, float32 scores: the values refinement wrote).
    """
    from av_pipeline.detect.prelabel_io import read_prelabels

    log_id = record["log_id"]
    context = LogContext(
        log_id, record["log_uri"], record["reader"], None, frozenset(record["drift_indices"]), int(record["figure_index"]), int(record["frames_indexed"])
    )
    yield "context", (log_id, context)
    for row in record["products"]:
        yield "products", row
    for verdict in record["drift"]:
        yield "drift", verdict
    for figures in record["figures"]:
        yield "figures", figures
    for dead in record["dead_letters"]:
        yield "dead_letters", dead
    if record["refs"]:
        boxes = read_prelabels(FileSystems.join(out, PRELABEL_DIR, safe_name(log_id)))
        for fields in record["refs"]:
            ref = FrameRef(**fields)
            yield "refined", (ref, boxes[(log_id, ref.timestamp_ns)])


__all__ = [
    "CHECKPOINT_DIR", "CHECKPOINT_VERSION", "FRAME_STAGES", "INDEX_DIR", "RESUMED_TAGS", "checkpoint_path", "checkpoint_record",
    "index_path", "read_checkpoints", "resumed_outputs", "write_checkpoint", "write_log_index",
]  # fmt: skip
