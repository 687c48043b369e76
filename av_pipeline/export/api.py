"""Entry points: one case into a dataset folder, a whole log's pre-labels, the manifest.

Dataset layout (``out_dir`` is the dataset root; paths in the manifest are relative to it)::

    <root>/cases/<rank>_<case id>/openlabel.json        ASAM OpenLABEL 1.0: shadow + onboard, events
    <root>/cases/<rank>_<case id>/kitti/shadow/         KITTI object split, label_2 = shadow model
    <root>/cases/<rank>_<case id>/kitti/onboard/        the same frames, label_2 = onboard perception
    <root>/cases/<rank>_<case id>/case.mcap             Foxglove: sweeps, images, tf, both box sets, reasons
    <root>/manifest.parquet, <root>/manifest.json       one row per case (write_manifest)

A whole log's pre-labels (:func:`export_log_prelabels`) go to ``<out_dir>/openlabel.json`` or
the KITTI split ``<out_dir>/kitti/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from av_pipeline import __version__
from av_pipeline.boxes import Cuboids
from av_pipeline.export.kitti import KittiSplitWriter
from av_pipeline.export.manifest import write_manifest
from av_pipeline.export.mcap_case import write_case_mcap
from av_pipeline.export.openlabel import OpenLabelBuilder, write_openlabel
from av_pipeline.export.records import (
    CASE_FORMATS,
    LOG_FORMATS,
    ExportedCase,
    ExportedLog,
    ExportError,
    IndexedFrame,
    check_formats,
    indexed_frames,
    relative_posix,
    safe_dir_name,
)
from av_pipeline.records import Frame

CASES_DIR = "cases"


def case_dir_name(case: Any) -> str:
    """``<rank:04d>_<case id>`` (file-name safe; no rank prefix before selection)."""
    name = safe_dir_name(case.case_id)
    return f"{case.rank:04d}_{name}" if case.rank >= 0 else name


def _case_items(case: Any, frames: Sequence[Frame], shadow_by_time: Mapping[int, Cuboids] | None,
                frame_indices: Sequence[int] | None) -> list[IndexedFrame]:  # fmt: skip
    where = f"case {case.case_id}"
    if not frames:
        raise ExportError(where, "frames", "no frame to export")
    if frame_indices is None:
        window = case.last_frame - case.first_frame + 1
        if len(frames) != window:
            raise ExportError(where, "frames", f"expected the {window} frames of the window {case.first_frame}..{case.last_frame} "
                              f"in order, got {len(frames)}; pass frame_indices= for a partial window")  # fmt: skip
        frame_indices = range(case.first_frame, case.last_frame + 1)
    if len(frame_indices) != len(frames):
        raise ExportError(where, "frame_indices", f"expected one index per frame ({len(frames)}), got {len(frame_indices)}")
    items = list(indexed_frames(frames, frame_indices, shadow_by_time))
    known = {case.first_frame: case.first_timestamp_ns, case.last_frame: case.last_timestamp_ns, **dict(zip(case.key_frames, case.key_timestamps_ns))}
    for item in items:
        if item.frame.log_id != case.log_id:
            raise ExportError(where, "frames", f"{item.where} belongs to log {item.frame.log_id!r}, the case to {case.log_id!r}")
        if not case.first_frame <= item.index <= case.last_frame:
            raise ExportError(where, "frame_indices", f"{item.where} is outside the window {case.first_frame}..{case.last_frame}")
        if item.index in known and known[item.index] != item.frame.timestamp_ns:
            raise ExportError(where, "frames", f"{item.where}: the case puts frame {item.index} at {known[item.index]} ns")
    return items


def export_case(
    case: Any,
    frames: Sequence[Frame],
    shadow_by_time: Mapping[int, Cuboids] | None,
    out_dir: str | Path,
    formats: Sequence[str] = CASE_FORMATS,
    *,
    source_uri: str | None = None,
    frame_indices: Sequence[int] | None = None,
    camera: str | None = None,
) -> ExportedCase:
    """Export one mined case: its frames with shadow and onboard cuboids, in each format.

    Args:
        case: a :class:`~av_pipeline.mining.records.Case`.
        frames: the loaded frames of the case window, in time order (all of
            ``first_frame..last_frame``, or those named by ``frame_indices``).
        shadow_by_time: ``timestamp_ns`` -> the shadow model's cuboids in ``ego`` (as
            :func:`~av_pipeline.detect.prelabel_io.read_prelabels` gives them per key); a frame
            without an entry has no shadow result (recorded in ``frames_without_shadow``).
        out_dir: the dataset root (module docstring for the layout).
        formats: any of ``"openlabel"``, ``"kitti"``, ``"mcap"``.
        source_uri: the log the frames were read from (default: the first frame's ``source_uri``).
        frame_indices: log indices of ``frames`` when they are not the whole window.
        camera: the camera KITTI's ``image_2`` shows (default: the most forward-looking one;
            it must look within 45 degrees of ego +x, see :mod:`~av_pipeline.export.rectify`).

    Returns:
        What was written, for :func:`write_manifest`.

    Raises:
        ExportError: unknown formats; frames that do not match the case (count, log, times);
            missing calibration, sensor or image; a KITTI camera that does not look forward;
            inconsistent poses; non-finite box values. Formats are written one after the
            other, so files of the formats before the failing one stay (each file is whole).
    """
    formats = check_formats(formats, CASE_FORMATS, f"case {case.case_id}")
    items = _case_items(case, list(frames), shadow_by_time, frame_indices)
    root = Path(out_dir)
    case_dir = root / CASES_DIR / case_dir_name(case)
    source_uri = source_uri or items[0].frame.source_uri
    paths: dict[str, str] = {}
    if "openlabel" in formats:
        metadata = {"case_id": case.case_id, "rank": int(case.rank), "score": float(case.score), "log_id": case.log_id,
                    "triggers": list(case.triggers), "key_frames": [int(k) for k in case.key_frames]}  # fmt: skip
        comment = f"edge case {case.case_id}: " + " | ".join(case.reasons)
        builder = OpenLabelBuilder(case.case_id, source_uri, comment=comment, case_metadata=metadata)
        for item in items:
            builder.add_frame(item)
        builder.add_events(case.events)
        paths["openlabel"] = relative_posix(write_openlabel(case_dir / "openlabel.json", builder.document()), root)
    if "kitti" in formats:
        shadow = KittiSplitWriter(case_dir / "kitti" / "shadow", camera=camera)
        for item in items:
            shadow.write(item, item.shadow)
        onboard = KittiSplitWriter(case_dir / "kitti" / "onboard", camera=shadow.camera, link_from=shadow.split_dir)
        for item in items:
            onboard.write(item, item.onboard)
        paths["kitti_shadow"] = relative_posix(shadow.close(source_uri), root)
        paths["kitti_onboard"] = relative_posix(onboard.close(source_uri), root)
    if "mcap" in formats:
        write_case_mcap(case_dir / "case.mcap", items, case)
        paths["mcap"] = relative_posix(case_dir / "case.mcap", root)
    return ExportedCase(
        case_id=case.case_id, rank=int(case.rank), score=float(case.score), log_id=case.log_id, source_uri=source_uri,
        frame_indices=tuple(i.index for i in items), frame_timestamps_ns=tuple(i.frame.timestamp_ns for i in items),
        key_frames=tuple(int(k) for k in case.key_frames), key_timestamps_ns=tuple(int(t) for t in case.key_timestamps_ns),
        triggers=tuple(case.triggers), labels=tuple(case.labels), reasons=tuple(case.reasons), paths=paths,
        num_boxes={s: sum(len(b) for b in (i.boxes(s) for i in items) if b is not None) for s in ("shadow", "onboard")},
        frames_without_shadow=tuple(i.index for i in items if i.shadow is None),
        frames_without_onboard=tuple(i.index for i in items if i.onboard is None),
        av_pipeline_version=__version__,
    )  # fmt: skip


def export_log_prelabels(
    frames: Iterable[Frame],
    shadow_by_time: Mapping[int, Cuboids],
    out_dir: str | Path,
    format: str,
    *,
    frame_indices: Iterable[int] | None = None,
    source_uri: str | None = None,
    camera: str | None = None,
    include_onboard: bool = False,
) -> ExportedLog:
    """Export a whole log's pre-labels (shadow cuboids) as ``<out_dir>/openlabel.json`` or the
    KITTI split ``<out_dir>/kitti/``; frames are consumed one at a time (a generator of
    loaded frames keeps memory flat).

    Args:
        frames: the log's frames in time order.
        shadow_by_time: ``timestamp_ns`` -> pre-labels in ``ego``; frames without an entry
            get no labels (listed in ``frames_without_shadow``).
        format: ``"openlabel"`` or ``"kitti"``.
        frame_indices: log indices of ``frames`` (default ``0, 1, 2, ...``).
        include_onboard: also put the onboard cuboids into the OpenLABEL file.

    Raises:
        ExportError: an unknown format, no frame, or a frame that cannot be exported (see
            :func:`export_case`).
    """
    (fmt,) = check_formats([format], LOG_FORMATS, "export_log_prelabels")
    out = Path(out_dir)
    written: list[tuple[int, int, int | None]] = []  # index, timestamp_ns, shadow boxes (None: no result)
    log_id, builder, writer = "", None, None
    for item in indexed_frames(frames, frame_indices, shadow_by_time):
        log_id, source_uri = item.frame.log_id, source_uri or item.frame.source_uri
        if fmt == "openlabel":
            if builder is None:
                sources = ("shadow", "onboard") if include_onboard else ("shadow",)
                builder = OpenLabelBuilder(log_id, source_uri, comment=f"pre-labels of log {log_id}", sources=sources)
            builder.add_frame(item)
        else:
            writer = writer or KittiSplitWriter(out / "kitti", camera=camera)
            writer.write(item, item.shadow)
        written.append((item.index, item.frame.timestamp_ns, None if item.shadow is None else len(item.shadow)))
    if not written:
        raise ExportError("export_log_prelabels", "frames", "no frame to export")
    if builder is not None:
        path = write_openlabel(out / "openlabel.json", builder.document())
    else:
        assert writer is not None
        path = writer.close(source_uri or "")
    return ExportedLog(
        log_id=log_id, format=fmt, path=path, frame_indices=tuple(w[0] for w in written), frame_timestamps_ns=tuple(w[1] for w in written),
        num_boxes=sum(w[2] or 0 for w in written), frames_without_shadow=tuple(w[0] for w in written if w[2] is None),
    )  # fmt: skip


__all__ = ["CASES_DIR", "case_dir_name", "export_case", "export_log_prelabels", "write_manifest"]
