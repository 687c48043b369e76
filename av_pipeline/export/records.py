"""What the exporters share: the error they raise, atomic file writes, frames with their log
index, and the records that say what was written (:class:`ExportedCase`, :class:`ExportedLog`).

Paths inside the records are relative to the dataset root (POSIX separators), so a dataset
can be moved or uploaded and its manifest still resolves.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping, Sequence

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import AVPipelineError, cap_message
from av_pipeline.records import Frame

#: Formats :func:`~av_pipeline.export.export_case` writes.
CASE_FORMATS = ("openlabel", "kitti", "mcap")
#: Formats :func:`~av_pipeline.export.export_log_prelabels` writes.
LOG_FORMATS = ("openlabel", "kitti")
#: Box sources an export carries.
BOX_SOURCES = ("shadow", "onboard")


class ExportError(AVPipelineError, ValueError):
    """A record cannot be exported: missing calibration, pose or sensor, or inconsistent input.

    Attributes:
        where: the case, log or frame (``case drive@1715...``, ``frame drive@1715...``).
        field: the record field that is missing or wrong (``world_SE3_ego``, ``images['front']``).
    """

    def __init__(self, where: str, field: str | None, message: str) -> None:
        self.where = where
        self.field = field
        super().__init__(cap_message(f"{where}" + (f": {field}" if field else "") + f": {message}"))


@dataclass(frozen=True)
class IndexedFrame:
    """A loaded frame with its position in its log and the boxes to export with it.

    Attributes:
        index: the frame's index in its log (``FrameRef.index``); KITTI sample ids and
            OpenLABEL frame numbers are this index.
        frame: the frame.
        shadow: the shadow model's cuboids in ``ego``, or ``None`` when the shadow model has
            no result for this frame (not the same as an empty result).
    """

    index: int
    frame: Frame
    shadow: Cuboids | None

    def __post_init__(self) -> None:
        where = f"frame {self.frame.log_id}@{self.frame.timestamp_ns}"
        if self.index < 0:
            raise ExportError(where, "index", f"expected a frame index >= 0, got {self.index}")
        for name, boxes in (("shadow", self.shadow), ("onboard.cuboids", self.onboard)):
            if boxes is not None and boxes.frame != "ego":
                raise ExportError(where, name, f"expected cuboids in 'ego', got frame {boxes.frame!r}")

    @property
    def onboard(self) -> Cuboids | None:
        """The vehicle's own cuboids in ``ego``, or ``None`` when the log has no onboard perception."""
        return None if self.frame.onboard is None else self.frame.onboard.cuboids

    @property
    def where(self) -> str:
        """``frame <log>@<timestamp_ns> (#<index>)`` for messages."""
        return f"frame {self.frame.log_id}@{self.frame.timestamp_ns} (#{self.index})"

    def boxes(self, source: str) -> Cuboids | None:
        """The cuboids of ``source`` (``"shadow"`` or ``"onboard"``)."""
        if source not in BOX_SOURCES:
            raise ValueError(f"source: expected one of {BOX_SOURCES}, got {source!r}")
        return self.shadow if source == "shadow" else self.onboard


def indexed_frames(
    frames: Iterable[Frame], indices: Iterable[int] | None, shadow_by_time: Mapping[int, Cuboids] | None
) -> Iterator[IndexedFrame]:
    """Pair frames with their log indices (default ``0, 1, 2, ...``) and shadow cuboids (looked
    up by ``timestamp_ns``), lazily.

    Raises:
        ExportError: fewer indices than frames, frames of several logs, or times that do not increase.
    """
    index_iter = itertools.count() if indices is None else iter(indices)
    previous: Frame | None = None
    for frame in frames:
        where = f"frame {frame.log_id}@{frame.timestamp_ns}"
        index = next(index_iter, None)
        if index is None:
            raise ExportError(where, "frame_indices", "fewer frame indices than frames")
        if previous is not None:
            if frame.log_id != previous.log_id:
                raise ExportError(where, "log_id", f"frames of two logs ({previous.log_id!r} first)")
            if frame.timestamp_ns <= previous.timestamp_ns:
                raise ExportError(where, "timestamp_ns", f"frames must be in time order (previous {previous.timestamp_ns})")
        shadow = None if shadow_by_time is None else shadow_by_time.get(frame.timestamp_ns)
        yield IndexedFrame(int(index), frame, shadow)
        previous = frame


def safe_dir_name(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._@-]`` replaced by ``_`` (at most 120 characters)."""
    return re.sub(r"[^A-Za-z0-9._@-]", "_", text)[:120] or "_"


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` under a temporary name in the same folder, then rename (created folders as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return path.resolve().relative_to(root.resolve()).as_posix()


@dataclass(frozen=True)
class ExportedCase:
    """What :func:`~av_pipeline.export.export_case` wrote for one case (one manifest row).

    Attributes:
        case_id, rank, score, log_id, triggers, labels, reasons, key_frames,
            key_timestamps_ns: from the mining :class:`~av_pipeline.mining.records.Case`.
        source_uri: the log the frames were read from.
        frame_indices: ``(F,)`` log indices of the exported frames, increasing.
        frame_timestamps_ns: ``(F,)`` their times.
        paths: format -> path relative to the dataset root: ``openlabel`` (file),
            ``kitti_shadow`` and ``kitti_onboard`` (KITTI split folders), ``mcap`` (file).
        num_boxes: source -> boxes exported (the same count in every format).
        frames_without_shadow: indices of frames the shadow model has no result for.
        frames_without_onboard: indices of frames without onboard perception.
        av_pipeline_version: the product version that wrote it.
    """

    case_id: str
    rank: int
    score: float
    log_id: str
    source_uri: str
    frame_indices: tuple[int, ...]
    frame_timestamps_ns: tuple[int, ...]
    key_frames: tuple[int, ...]
    key_timestamps_ns: tuple[int, ...]
    triggers: tuple[str, ...]
    labels: tuple[str, ...]
    reasons: tuple[str, ...]
    paths: Mapping[str, str]
    num_boxes: Mapping[str, int]
    frames_without_shadow: tuple[int, ...] = ()
    frames_without_onboard: tuple[int, ...] = ()
    av_pipeline_version: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", MappingProxyType(dict(self.paths)))
        object.__setattr__(self, "num_boxes", MappingProxyType(dict(self.num_boxes)))

    def __reduce__(self):  # read-only mappings do not pickle; Beam moves these between steps
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["paths"], values["num_boxes"] = dict(self.paths), dict(self.num_boxes)
        return (_exported_case, (values,))


def _exported_case(values: dict) -> "ExportedCase":
    return ExportedCase(**values)


@dataclass(frozen=True)
class ExportedLog:
    """What :func:`~av_pipeline.export.export_log_prelabels` wrote.

    Attributes:
        log_id: the log.
        format: ``"openlabel"`` or ``"kitti"``.
        path: the OpenLABEL file or the KITTI split folder.
        frame_indices, frame_timestamps_ns: the frames written.
        num_boxes: pre-label boxes written.
        frames_without_shadow: indices of frames without pre-labels (no label file / no
            objects in the frame; never an empty label file that claims "nothing here").
    """

    log_id: str
    format: str
    path: Path
    frame_indices: tuple[int, ...]
    frame_timestamps_ns: tuple[int, ...]
    num_boxes: int
    frames_without_shadow: tuple[int, ...] = ()


def check_formats(formats: Sequence[str], allowed: Sequence[str], where: str) -> tuple[str, ...]:
    """``formats`` as a tuple; raises :class:`ExportError` naming the unknown ones."""
    formats = tuple(formats)
    unknown = [f for f in formats if f not in allowed]
    if unknown or not formats:
        raise ExportError(where, "formats", f"expected some of {list(allowed)}, got {list(formats)}")
    return formats


__all__ = [
    "BOX_SOURCES",
    "CASE_FORMATS",
    "ExportError",
    "ExportedCase",
    "ExportedLog",
    "IndexedFrame",
    "LOG_FORMATS",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_formats",
    "indexed_frames",
    "relative_posix",
    "safe_dir_name",
]
