"""Pre-labels on disk: two Parquet tables keyed by ``(log_id, timestamp_ns)``.

- ``prelabels.parquet``: one row per box (:func:`box_schema`): the key, ``box_index``, the
  box in the ``ego`` frame (centre, ``length, width, height``, yaw), ``label``, ``score``,
  ``track_id`` (-1 before refinement) and ``model``;
- ``frames.parquet``: one row per frame that was detected on (:func:`frame_schema`), also
  frames with no box, with ``num_boxes`` and ``num_points``.

No pandas needed: ``pyarrow.parquet.read_table("prelabels.parquet").to_pylist()`` or
:func:`read_prelabels`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError

#: Columns of the box table, in order.
BOX_COLUMNS = (
    "log_id", "timestamp_ns", "box_index", "frame", "center_x_m", "center_y_m", "center_z_m",
    "length_m", "width_m", "height_m", "yaw_rad", "label", "score", "track_id", "model",
)  # fmt: skip


def box_schema() -> pa.Schema:
    """Arrow schema of ``prelabels.parquet``."""
    floats = {"center_x_m", "center_y_m", "center_z_m", "length_m", "width_m", "height_m", "yaw_rad"}
    fields = []
    for name in BOX_COLUMNS:
        if name in floats:
            fields.append(pa.field(name, pa.float64(), nullable=False))
        elif name == "score":
            fields.append(pa.field(name, pa.float32(), nullable=False))
        elif name in ("timestamp_ns", "track_id"):
            fields.append(pa.field(name, pa.int64(), nullable=False))
        elif name == "box_index":
            fields.append(pa.field(name, pa.int32(), nullable=False))
        else:
            fields.append(pa.field(name, pa.string(), nullable=False))
    return pa.schema(fields)


def frame_schema() -> pa.Schema:
    """Arrow schema of ``frames.parquet``."""
    return pa.schema(
        [
            pa.field("log_id", pa.string(), nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            pa.field("num_boxes", pa.int32(), nullable=False),
            pa.field("num_points", pa.int64(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
        ]
    )


def box_rows(log_id: str, timestamp_ns: int, boxes: Cuboids, model: str) -> list[dict[str, Any]]:
    """Rows of the box table for one frame's boxes (in ``ego``)."""
    rows = []
    for i in range(len(boxes)):
        c, s = boxes.centers_m[i], boxes.sizes_m[i]
        rows.append(
            {
                "log_id": log_id, "timestamp_ns": int(timestamp_ns), "box_index": i, "frame": boxes.frame,
                "center_x_m": float(c[0]), "center_y_m": float(c[1]), "center_z_m": float(c[2]),
                "length_m": float(s[0]), "width_m": float(s[1]), "height_m": float(s[2]),
                "yaw_rad": float(boxes.yaws_rad[i]), "label": str(boxes.labels[i]), "score": float(boxes.scores[i]),
                "track_id": int(boxes.track_ids[i]), "model": model,
            }
        )  # fmt: skip
    return rows


def frame_row(log_id: str, timestamp_ns: int, num_boxes: int, num_points: int, model: str) -> dict[str, Any]:
    """The frame-table row of one frame."""
    return {"log_id": log_id, "timestamp_ns": int(timestamp_ns), "num_boxes": int(num_boxes), "num_points": int(num_points), "model": model}


def _atomic_write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_prelabels(out_dir: str | os.PathLike, frames: Iterable[tuple[tuple[str, int], Cuboids, int]], model: str) -> tuple[Path, Path]:
    """Write both tables for ``((log_id, timestamp_ns), boxes, num_points)`` per frame, sorted by key.

    Returns:
        ``(prelabels.parquet, frames.parquet)`` paths (written under temporary names, then renamed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boxes_rows: list[dict[str, Any]] = []
    frame_rows: list[dict[str, Any]] = []
    for (log_id, ts), boxes, num_points in sorted(frames, key=lambda item: item[0]):
        boxes_rows += box_rows(log_id, ts, boxes, model)
        frame_rows.append(frame_row(log_id, ts, len(boxes), num_points, model))
    box_path, frame_path = out / "prelabels.parquet", out / "frames.parquet"
    _atomic_write(pa.Table.from_pylist(boxes_rows, schema=box_schema()), box_path)
    _atomic_write(pa.Table.from_pylist(frame_rows, schema=frame_schema()), frame_path)
    return box_path, frame_path


def cuboids_from_rows(rows: list[Mapping[str, Any]]) -> Cuboids:
    """Boxes of one frame from box-table rows (any order; sorted by ``box_index``)."""
    if not rows:
        return Cuboids.empty("ego")
    rows = sorted(rows, key=lambda r: r["box_index"])
    frames = {r["frame"] for r in rows}
    if len(frames) != 1:
        raise LogFormatError("<prelabels>", "frame", f"boxes of one frame in several frames {sorted(frames)}")
    return Cuboids.from_arrays(
        frames.pop(),
        [[r["center_x_m"], r["center_y_m"], r["center_z_m"]] for r in rows],
        [[r["length_m"], r["width_m"], r["height_m"]] for r in rows],
        [r["yaw_rad"] for r in rows],
        [r["label"] for r in rows],
        [r["score"] for r in rows],
        [r["track_id"] for r in rows],
    )


def read_prelabels(path: str | os.PathLike) -> dict[tuple[str, int], Cuboids]:
    """Pre-labels per ``(log_id, timestamp_ns)``, sorted by key.

    Args:
        path: a ``prelabels.parquet`` file (its ``frames.parquet`` beside it adds the frames
            without boxes), or a folder: every ``prelabels.parquet`` below it (``avp
            prelabel`` writes one folder per log).

    Raises:
        LogFormatError: no table, an unreadable one, or one without the expected columns.
    """
    path = Path(path)
    files = sorted(path.rglob("prelabels.parquet")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise LogFormatError(path, None, "no pre-label table (expected prelabels.parquet, written by avp prelabel)")
    out: dict[tuple[str, int], Cuboids] = {}
    for box_path in files:
        out.update(_read_one(box_path))
    return dict(sorted(out.items()))


def _read_one(box_path: Path) -> dict[tuple[str, int], Cuboids]:
    frame_path = box_path.with_name("frames.parquet")
    try:
        table = pq.read_table(box_path)
    except (OSError, pa.ArrowException) as exc:
        raise LogFormatError(box_path, None, f"not a readable Parquet file ({exc})") from exc
    missing = [c for c in BOX_COLUMNS if c not in table.column_names]
    if missing:
        raise LogFormatError(box_path, ", ".join(missing), "missing column(s) of the pre-label table")
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        grouped.setdefault((row["log_id"], int(row["timestamp_ns"])), []).append(row)
    out = {key: cuboids_from_rows(rows) for key, rows in grouped.items()}
    if frame_path.is_file():
        for row in pq.read_table(frame_path, columns=["log_id", "timestamp_ns"]).to_pylist():
            out.setdefault((row["log_id"], int(row["timestamp_ns"])), Cuboids.empty("ego"))
    return out
