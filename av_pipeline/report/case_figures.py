"""Pictures of a case's key frames: a bird's-eye view of the LiDAR points in ``ego`` with the
shadow model's cuboids and the onboard ones, and every camera image with both projected.

The key frame is read from the log itself (mining outputs keep no sweeps or images): the
frame whose timestamp is the case's key timestamp in the reader's ``list_frames()``. Shadow
cuboids are the mining run's refined pre-labels (``prelabels/<log>/``), onboard cuboids come
with the frame. Drawing reuses :func:`av_pipeline.figures.save_bev` and
:func:`av_pipeline.figures.save_camera_overlay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import AVPipelineError, ConfigError, LogFormatError
from av_pipeline.mining.records import Case

#: Legend names and colours of the two box sources (onboard as in the demo's figures).
SHADOW = ("shadow model (refined pre-labels)", "deepskyblue")
ONBOARD = ("onboard perception", "orange")


@dataclass(frozen=True)
class Picture:
    """One picture of a case: ``path`` relative to the report folder, what it shows."""

    path: str
    caption: str


@dataclass(frozen=True)
class CasePictures:
    """The pictures of one case, and why some or all are missing (``notes``)."""

    case_id: str
    pictures: tuple[Picture, ...]
    notes: tuple[str, ...]


def resolve_log_uris(log_uris: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """``log_id -> uri``: a mapping is taken as is; each URI of a list is opened to read its
    log id (cheap: readers read an index at most).

    Raises:
        ConfigError: a listed URI no reader opens (``log_uris[i]``, with the reader's reason).
    """
    import os

    from av_pipeline.readers import open_log

    if log_uris is None:
        return {}
    if isinstance(log_uris, Mapping):
        return {str(k): os.fspath(v) for k, v in log_uris.items()}
    found = {}
    for i, uri in enumerate(log_uris):
        try:
            with open_log(os.fspath(uri)) as reader:
                found[reader.log_id] = os.fspath(uri)
        except (AVPipelineError, OSError) as exc:
            raise ConfigError(f"log_uris[{i}]: cannot open {str(uri)[:200]!r} as a log: {str(exc)[:300]}") from exc
        except TypeError as exc:
            raise ConfigError(f"log_uris[{i}]: expected a path or URI, got {type(uri).__name__}") from exc
    return found


class KeyFrameSource:
    """Opens each log once and reads each log's pre-labels once; close it when done."""

    def __init__(self, log_uris: Mapping[str, str], prelabel_dir: Path) -> None:
        self._uris = dict(log_uris)
        self._prelabel_dir = Path(prelabel_dir)
        self._readers: dict[str, Any] = {}
        self._refs: dict[str, dict[int, Any]] = {}
        self._prelabels: dict[str, dict[tuple[str, int], Cuboids] | None] = {}
        self._folders: dict[str, Path] | None = None

    def close(self) -> None:
        """Close every opened reader."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def __enter__(self) -> KeyFrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, log_id: str, timestamp_ns: int):
        """The frame of ``log_id`` at ``timestamp_ns``.

        Raises:
            KeyError: the log's URI is not known (message says how to give it).
            LogFormatError: the log cannot be read, or has no frame at that time.
        """
        from av_pipeline.readers import open_log

        if log_id not in self._uris:
            raise KeyError(f"the location of log {log_id!r} is not known (mining outputs do not record it): pass it in log_uris (avp report --logs)")
        if log_id not in self._readers:
            reader = open_log(self._uris[log_id])
            try:
                self._refs[log_id] = {ref.timestamp_ns: ref for ref in reader.list_frames()}
            except BaseException:
                reader.close()
                raise
            self._readers[log_id] = reader
        ref = self._refs[log_id].get(int(timestamp_ns))
        if ref is None:
            raise LogFormatError(self._uris[log_id], f"timestamp {int(timestamp_ns)}", "the log lists no frame at the key frame's time (another log with the same id?)")
        return self._readers[log_id].load_frame(ref)

    def _prelabel_folders(self) -> dict[str, Path]:
        import pyarrow.parquet as pq

        if self._folders is None:
            self._folders = {}
            for table_path in sorted(self._prelabel_dir.glob("*/frames.parquet")) + sorted(self._prelabel_dir.glob("*/prelabels.parquet")):
                try:
                    ids = pq.read_table(table_path, columns=["log_id"]).column("log_id").unique().to_pylist()
                except (OSError, KeyError, ValueError) as exc:  # pyarrow's errors derive from these
                    raise LogFormatError(table_path, "log_id", f"cannot read the pre-label table ({str(exc)[:200]})") from exc
                for log_id in ids:
                    self._folders.setdefault(str(log_id), table_path.parent)
        return self._folders

    def log_uri(self, log_id: str) -> str | None:
        """Where ``log_id`` is, or ``None`` when it was not given."""
        return self._uris.get(log_id)

    def prelabel_folder(self, log_id: str) -> Path | None:
        """The folder of ``log_id``'s pre-labels in the mining run, or ``None`` when it has none.

        Raises:
            LogFormatError: a pre-label table that cannot be read.
        """
        return self._prelabel_folders().get(log_id)

    def shadow(self, log_id: str, timestamp_ns: int) -> Cuboids | None:
        """The shadow model's cuboids of that frame, or ``None`` when the run has none for it."""
        from av_pipeline.detect.prelabel_io import read_prelabels

        if log_id not in self._prelabels:
            folder = self.prelabel_folder(log_id)
            self._prelabels[log_id] = read_prelabels(folder) if folder is not None else None
        boxes = self._prelabels[log_id]
        return None if boxes is None else boxes.get((log_id, int(timestamp_ns)))


def _box_labels(cuboids: Cuboids) -> list[str]:
    return [f"{label} {score:.2f}" for label, score in zip(cuboids.labels, cuboids.scores)]


def _unseen(cuboids: Cuboids):
    import numpy as np

    if cuboids.num_lidar_points is None:
        return None
    return np.asarray(cuboids.num_lidar_points) == 0


def key_frame_pictures(source: KeyFrameSource, case: Case, folder: Path, report_dir: Path) -> CasePictures:
    """Draw every key frame of ``case`` into ``folder`` (inside ``report_dir``).

    A key frame that cannot be drawn (log location unknown, log unreadable, frame gone,
    pre-labels unreadable, a sensor the rig lacks) is a note, never an error: the report
    still shows the case's reasons.
    """
    from av_pipeline.figures import format_time_ns

    folder.mkdir(parents=True, exist_ok=True)
    pictures: list[Picture] = []
    notes: list[str] = []
    for index, timestamp_ns in zip(case.key_frames, case.key_timestamps_ns):
        where = f"key frame {index} ({format_time_ns(timestamp_ns)})"
        try:
            frame = source.frame(case.log_id, timestamp_ns)
        except KeyError as exc:
            notes.append(f"{where}: no pictures: {exc.args[0]}")
            continue
        except (AVPipelineError, OSError, IndexError) as exc:
            notes.append(f"{where}: no pictures: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        try:
            shadow = source.shadow(case.log_id, timestamp_ns)
        except (AVPipelineError, OSError) as exc:
            notes.append(f"{where}: the shadow model's pre-labels cannot be read: {type(exc).__name__}: {str(exc)[:300]}")
            shadow = None
        onboard = frame.onboard.cuboids if frame.onboard is not None else None
        missing = [name for name, boxes in ((SHADOW[0], shadow), (ONBOARD[0], onboard)) if boxes is None]
        if missing:
            notes.append(f"{where}: no {' and no '.join(missing)} for this frame (drawn as 0 boxes)")
        boxes = {SHADOW: shadow if shadow is not None else Cuboids.empty("ego"), ONBOARD: onboard if onboard is not None else Cuboids.empty("ego")}
        try:
            pictures += _draw(frame, boxes, case.log_id, where, index, folder, report_dir)
        except (AVPipelineError, ValueError, KeyError) as exc:
            notes.append(f"{where}: drawing failed: {type(exc).__name__}: {str(exc)[:300]}")
    return CasePictures(case.case_id, tuple(pictures), tuple(notes))


def _draw(frame, boxes: Mapping[tuple[str, str], Cuboids], log_id: str, where: str, index: int, folder: Path, report_dir: Path) -> list[Picture]:
    """The bird's-eye view and one overlay per camera image of one key frame."""
    import matplotlib

    from av_pipeline.detect.points import frame_points_ego
    from av_pipeline.figures import BoxOverlay, format_time_ns, save_bev, save_camera_overlay
    from av_pipeline.fusion.cuboids import project_cuboids

    pictures = []
    boxes_text = " vs ".join(f"{name} ({len(cuboids)})" for (name, _), cuboids in boxes.items())
    # Log ids and camera names are text, not TeX: a '$' in them must not start math mode.
    with matplotlib.rc_context({"text.parse_math": False}):
        bev = folder / f"frame{index}_bev.png"
        save_bev(
            bev, frame_points_ego(frame).astype("float64"), None, {name: (cuboids, colour) for (name, colour), cuboids in boxes.items()},
            title=f"{log_id}, {where}: LiDAR points in ego (not de-skewed, not painted); {boxes_text}",
        )  # fmt: skip
        pictures.append(Picture(bev.relative_to(report_dir).as_posix(), f"{where}: bird's-eye view, forward up"))
        for camera, image in frame.images.items():
            rig_camera = frame.rig.camera(camera)
            camera_SE3_ego = rig_camera.ego_SE3_camera.inverse()
            overlays = {
                name: BoxOverlay(project_cuboids(cuboids, rig_camera.model, camera_SE3_ego, name=camera) if len(cuboids) else None, _box_labels(cuboids), colour, _unseen(cuboids))
                for (name, colour), cuboids in boxes.items()
            }  # fmt: skip
            path = folder / f"frame{index}_camera_{_safe(camera)}.jpg"
            save_camera_overlay(
                path, image.decode(), None, overlays,
                title=f"{camera}, {format_time_ns(image.timestamp_ns)}: cuboids projected with the rig's extrinsic (no motion compensation)",
            )  # fmt: skip
            pictures.append(Picture(path.relative_to(report_dir).as_posix(), f"{where}: camera {camera}"))
    return pictures


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60] or "camera"


__all__ = ["CasePictures", "KeyFrameSource", "ONBOARD", "Picture", "SHADOW", "key_frame_pictures", "resolve_log_uris"]
