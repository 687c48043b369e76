"""The dataset manifest: ``manifest.parquet`` and ``manifest.json``, one row per exported case,
so every file of a dataset can be traced to its log, frames, triggers and the product version.

Columns (:func:`manifest_schema`): ``case_id``, ``rank``, ``score``, ``log_id``,
``source_uri``, ``frame_indices`` / ``frame_timestamps_ns`` (the exported frames),
``key_frames`` / ``key_timestamps_ns`` (the frames to label), ``triggers``, ``labels``,
``reasons``, ``openlabel_path``, ``kitti_shadow_path``, ``kitti_onboard_path``,
``mcap_path`` (relative to the dataset root; null for formats not exported),
``num_shadow_boxes``, ``num_onboard_boxes``, ``frames_without_shadow``,
``frames_without_onboard``, ``av_pipeline_version``. ``manifest.json`` holds the same rows
under ``cases`` with ``format_version`` and the version of the product that wrote it.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from av_pipeline import __version__
from av_pipeline.export.records import ExportedCase, atomic_write_bytes, atomic_write_text

MANIFEST_PARQUET = "manifest.parquet"
MANIFEST_JSON = "manifest.json"
#: Version of the manifest layout (bumped on incompatible changes).
MANIFEST_VERSION = 1
#: ``ExportedCase.paths`` keys -> manifest columns.
PATH_COLUMNS = {"openlabel": "openlabel_path", "kitti_shadow": "kitti_shadow_path", "kitti_onboard": "kitti_onboard_path", "mcap": "mcap_path"}


def manifest_schema() -> pa.Schema:
    """Arrow schema of ``manifest.parquet``."""
    ints, texts = pa.list_(pa.int64()), pa.list_(pa.string())
    return pa.schema([
        ("case_id", pa.string()), ("rank", pa.int32()), ("score", pa.float64()), ("log_id", pa.string()), ("source_uri", pa.string()),
        ("frame_indices", ints), ("frame_timestamps_ns", ints), ("key_frames", ints), ("key_timestamps_ns", ints),
        ("triggers", texts), ("labels", texts), ("reasons", texts),
        *[(column, pa.string()) for column in PATH_COLUMNS.values()],
        ("num_shadow_boxes", pa.int64()), ("num_onboard_boxes", pa.int64()),
        ("frames_without_shadow", ints), ("frames_without_onboard", ints), ("av_pipeline_version", pa.string()),
    ])  # fmt: skip


def manifest_row(case: ExportedCase) -> dict[str, Any]:
    """One manifest row (JSON-safe)."""
    return {
        "case_id": case.case_id, "rank": int(case.rank), "score": float(case.score), "log_id": case.log_id, "source_uri": case.source_uri,
        "frame_indices": list(case.frame_indices), "frame_timestamps_ns": list(case.frame_timestamps_ns),
        "key_frames": list(case.key_frames), "key_timestamps_ns": list(case.key_timestamps_ns),
        "triggers": list(case.triggers), "labels": list(case.labels), "reasons": list(case.reasons),
        **{column: case.paths.get(key) for key, column in PATH_COLUMNS.items()},
        "num_shadow_boxes": int(case.num_boxes.get("shadow", 0)), "num_onboard_boxes": int(case.num_boxes.get("onboard", 0)),
        "frames_without_shadow": list(case.frames_without_shadow), "frames_without_onboard": list(case.frames_without_onboard),
        "av_pipeline_version": case.av_pipeline_version or __version__,
    }  # fmt: skip


def write_manifest(exported: Sequence[ExportedCase], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``manifest.parquet`` and ``manifest.json`` into the dataset root ``out_dir``, rows by rank then case id.

    Returns:
        ``(parquet path, json path)`` (each written under a temporary name, then renamed).
    """
    out = Path(out_dir)
    rows = [manifest_row(c) for c in sorted(exported, key=lambda c: (c.rank < 0, c.rank, c.case_id))]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=manifest_schema()), buffer)
    parquet = atomic_write_bytes(out / MANIFEST_PARQUET, buffer.getvalue())
    document = {"format_version": MANIFEST_VERSION, "av_pipeline_version": __version__, "cases": rows}
    return parquet, atomic_write_text(out / MANIFEST_JSON, json.dumps(document, indent=1) + "\n")


def read_manifest(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``manifest.json`` in ``out_dir`` (the dataset root)."""
    document = json.loads((Path(out_dir) / MANIFEST_JSON).read_text(encoding="utf-8"))
    return list(document["cases"])


__all__ = ["MANIFEST_JSON", "MANIFEST_PARQUET", "MANIFEST_VERSION", "manifest_row", "manifest_schema", "read_manifest", "write_manifest"]
