"""The DoFns of the main job (:mod:`beam_jobs.run`) that are not shared with the other jobs.

Each frame is loaded where it is used (ingest, fusion, evidence, export): only
:class:`~av_pipeline.records.FrameRef` keys, per-frame summaries, point arrays on their way
into the detector, and small per-log results move between steps, never whole frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from av_pipeline.records import FrameRef
from beam_jobs.common import DEAD_LETTER_TAG, PROGRESS_LOGGER, ProgressLog, ReaderCache, apply_worker_threads, dead_letter, write_json

METRICS_NAMESPACE = "avp.run"
SUMMARY_FILE = "summary.json"
DATASETS_DIR = "datasets"
REPORT_DIR = "report"
DEAD_LETTERS_FILE = "dead_letters/dead_letters.jsonl"
#: Tagged outputs of :class:`FuseFn`.
PRODUCTS_TAG, DRIFT_TAG, FIGURES_TAG = "products", "drift", "figures"
#: How many frames, spread over each log, the calibration drift check sums its scores over.
DRIFT_CHECK_FRAMES = 10
#: The simulated calibration drift the check must flag (a control): a pan about the camera's y axis.
DRIFT_PAN_DEG = 1.0
#: Share of perturbed extrinsics allowed to score at least as high as the checked one.
DRIFT_MAX_FRACTION_BETTER = 0.05
#: Printed with the drift-check results and shown in the report.
DRIFT_CONTROL_NOTE = (
    f"Scores are summed over up to {DRIFT_CHECK_FRAMES} frames spread over each log. The 'panned {DRIFT_PAN_DEG:g} deg' "
    f"row is a control, not a finding: the job pans each camera's calibrated extrinsic by {DRIFT_PAN_DEG:g} deg on "
    "purpose and checks that the drift check flags it ('not flagged' means the check cannot see such a drift on this data)."
)


def frame_dead_letter(stage: str, error: BaseException, ref: FrameRef) -> dict[str, Any]:
    """A dead letter for one frame (log, index and time from ``ref``)."""
    return dead_letter(stage, error, log_uri=ref.log_uri, log_id=ref.log_id, frame_index=ref.index, timestamp_ns=ref.timestamp_ns)


class IngestFn(ReaderCache, beam.DoFn):
    """FrameRef -> ``(ref, frame-index row)``: load and validate (the ingest job's rules)."""

    def __init__(self, reader_options: Mapping[str, Any], reader_modules: Sequence[str], progress_interval_s: float = 10.0) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules)
        self._progress_interval_s = progress_interval_s
        self.frames_indexed = Metrics.counter(METRICS_NAMESPACE, "frames_indexed")

    def setup(self) -> None:
        ReaderCache.setup(self)
        self._progress = ProgressLog("Ingest", "frames", self._progress_interval_s)

    def process(self, ref: FrameRef) -> Iterator[Any]:
        from av_pipeline.ingest import frame_index_row

        self._progress.tick()
        try:
            frame = self.reader(ref).load_frame(ref)
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops the job
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, frame_dead_letter("load", exc, ref))
            return
        try:
            row = frame_index_row(ref, frame)
        except Exception as exc:  # noqa: BLE001
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, frame_dead_letter("validate", exc, ref))
            return
        self.frames_indexed.inc()
        yield ref, row


@dataclass(frozen=True)
class LogContext:
    """What every frame of a log needs from the whole log (small; a side input).

    Attributes:
        log_id: the log.
        log_uri: where it is.
        reader: the reader that opened it.
        trajectory: ``world_SE3_ego`` over the log from the indexed frames' poses (for
            de-skewing and motion compensation), or ``None`` with fewer than two poses.
        drift_indices: log indices of the frames the calibration drift check uses.
        figure_index: log index of the frame that gets pictures and the rig conversion.
        frames: frames indexed.
    """

    log_id: str
    log_uri: str
    reader: str
    trajectory: Any
    drift_indices: frozenset[int]
    figure_index: int
    frames: int


def log_context(element: tuple[str, Iterable[tuple[FrameRef, dict[str, Any]]]]) -> tuple[str, LogContext]:
    """``(log_id, [(ref, row)...])`` -> ``(log_id, LogContext)``."""
    from av_pipeline.frame_products import trajectory_from_poses

    log_id, items = element
    items = sorted(items, key=lambda item: item[0].timestamp_ns)
    rows = [row for _, row in items]
    trajectory = trajectory_from_poses(
        [r["timestamp_ns"] for r in rows], [r["pose_translation_m"] for r in rows], [r["pose_rotation_wxyz"] for r in rows], log_id=log_id
    )
    positions = np.linspace(0, len(items) - 1, min(DRIFT_CHECK_FRAMES, len(items))).round().astype(int)
    first = items[0][0]
    return log_id, LogContext(
        log_id, first.log_uri, first.reader, trajectory, frozenset(int(items[p][0].index) for p in positions), int(first.index), len(items)
    )


def _pan(angle_deg: float) -> Any:
    from calibration import SE3

    a = math.radians(angle_deg)
    return SE3(np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]]), [0.0, 0.0, 0.0])


def drift_scores(frame: Any, products: Any, decoded: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per fused camera, the alignment scores of one frame for the calibrated extrinsic and
    for one panned by :data:`DRIFT_PAN_DEG`, each ``(729,)``: the extrinsic first, then its
    728 perturbations (:func:`calibration.perturbation_grid` of 0.5 deg and 5 cm).

    Scores of several frames add up (what :func:`calibration.calibration_drift_check_frames`
    does), so frames are scored where they are loaded and only these vectors travel.
    """
    from calibration import EdgeMap, LidarEdges, alignment_scores, perturbation_grid

    sweep = frame.lidar
    ring = sweep.column("ring").astype(np.int64) if "ring" in sweep.columns else None
    intensity = sweep.column("intensity") if "intensity" in sweep.columns else None
    edges = LidarEdges.from_points(products.fusion.points_lidar, ring=ring, intensity=intensity)
    deltas = perturbation_grid(math.radians(0.5), 0.05)
    pan = _pan(DRIFT_PAN_DEG)
    out = {}
    for camera, camera_SE3_lidar in products.fusion.camera_SE3_lidar.items():
        edge_map = EdgeMap.from_image(decoded[camera])
        model = frame.rig.cameras[camera].model
        scores = []
        for checked in (camera_SE3_lidar, pan.compose(camera_SE3_lidar)):
            candidates = [checked] + [delta.compose(checked) for delta in deltas]
            scores.append(np.asarray(alignment_scores(edge_map, edges, model, candidates), dtype=np.float64))
        out[camera] = (scores[0], scores[1])
    return out


def drift_verdict(element: tuple[tuple[str, str], Iterable[tuple[np.ndarray, np.ndarray]]]) -> dict[str, Any]:
    """``((log_id, camera), [per-frame score pairs])`` -> the check over those frames."""
    (log_id, camera), pairs = element
    pairs = list(pairs)
    calibrated = np.sum([p[0] for p in pairs], axis=0)
    panned = np.sum([p[1] for p in pairs], axis=0)
    better = lambda total: float(np.mean(total[1:] >= total[0]))  # noqa: E731
    return {
        "log_id": log_id, "camera": camera, "frames": len(pairs),
        "fraction_better": better(calibrated), "drifted": better(calibrated) > DRIFT_MAX_FRACTION_BETTER,
        "panned_fraction_better": better(panned), "panned_drifted": better(panned) > DRIFT_MAX_FRACTION_BETTER,
    }  # fmt: skip


def convert_rig(folder: Path, rig: Any) -> list[Path]:
    """The rig as ``rig.yaml``, and per camera ROS CameraInfo and OpenCV YAML files."""
    from calibration import formats

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "rig.yaml"]
    formats.write_rig(rig, written[0])
    for camera in rig.camera_names:
        model = rig.cameras[camera].model
        written.append(folder / f"{camera}_camera_info.yaml")
        formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, camera), written[-1])
        written.append(folder / f"{camera}_opencv.yaml")
        formats.write_opencv_yaml(model, written[-1])
    return written


class FuseFn(ReaderCache, beam.DoFn):
    """FrameRef -> ``((ref, pose matrix or None), points_ego)`` for the detector, plus tagged
    outputs: the frame's fusion/voxel summary row (``products``), drift-check scores of the
    chosen frames (``drift``: ``((log_id, camera), (calibrated, panned))``), and the picture
    and rig files of each log's figure frame (``figures``).

    Side input ``contexts``: ``log_id`` -> :class:`LogContext`.
    """

    def __init__(self, out: str, reader_options: Mapping[str, Any], reader_modules: Sequence[str], progress_interval_s: float = 10.0) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules)
        self._out = out
        self._progress_interval_s = progress_interval_s
        self.frames_fused = Metrics.counter(METRICS_NAMESPACE, "frames_fused")

    def setup(self) -> None:
        ReaderCache.setup(self)
        apply_worker_threads()
        self._progress = ProgressLog("FuseAndVoxelize", "frames", self._progress_interval_s)

    def process(self, ref: FrameRef, contexts: Mapping[str, LogContext]) -> Iterator[Any]:
        from av_pipeline.detect.points import frame_points_ego
        from av_pipeline.frame_products import frame_products

        self._progress.tick()
        context = contexts[ref.log_id]
        try:
            frame = self.reader(ref).load_frame(ref)
            decoded = {name: image.decode() for name, image in frame.images.items()}
            products = frame_products(frame, context.trajectory, decoded_images=decoded)
            row = products.summary_row()
            points = frame_points_ego(frame)
            drift = drift_scores(frame, products, decoded) if ref.index in context.drift_indices else {}
        except Exception as exc:  # noqa: BLE001
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, frame_dead_letter("fuse", exc, ref))
            return
        self.frames_fused.inc()
        yield beam.pvalue.TaggedOutput(PRODUCTS_TAG, row)
        for camera, scores in drift.items():
            yield beam.pvalue.TaggedOutput(DRIFT_TAG, ((ref.log_id, camera), scores))
        if ref.index == context.figure_index:
            yield beam.pvalue.TaggedOutput(FIGURES_TAG, self._figures(frame, products, decoded))
        pose = None if frame.world_SE3_ego is None else frame.world_SE3_ego.as_matrix().tolist()
        yield (ref, pose), points

    def _figures(self, frame: Any, products: Any, decoded: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Pictures and rig conversion of one frame (local folders only); failures are reported, not fatal."""
        from av_pipeline.export.records import safe_dir_name
        from av_pipeline.figures import save_frame_figures

        name = safe_dir_name(frame.log_id)
        figures = Path(self._out) / "figures" / name
        try:
            figures.mkdir(parents=True, exist_ok=True)
            save_frame_figures(figures, frame, products, decoded)
            rig_files = convert_rig(Path(self._out) / "calibration" / name, frame.rig)
        except Exception as exc:  # noqa: BLE001 - pictures are a by-product; the frame is still processed
            return {"log_id": frame.log_id, "figures": [], "rig_files": [], "error": f"{type(exc).__name__}: {exc}"[:500]}
        return {
            "log_id": frame.log_id, "timestamp_ns": frame.timestamp_ns,
            "figures": sorted(str(p) for p in figures.glob("*.png")), "rig_files": [str(p) for p in rig_files], "error": None,
        }  # fmt: skip


class ExportCaseFn(ReaderCache, beam.DoFn):
    """A selected case -> :class:`~av_pipeline.export.ExportedCase` (its frames re-read,
    the log's refined pre-labels as the shadow cuboids); a case that cannot be exported is
    a dead letter with stage ``export``. Side input ``contexts``: ``log_id`` -> :class:`LogContext`."""

    def __init__(self, out: str, datasets: str, formats: Sequence[str], reader_options: Mapping[str, Any], reader_modules: Sequence[str]) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules, max_open_logs=4)
        self._out, self._datasets, self._formats = out, datasets, tuple(formats)
        self.exported = Metrics.counter(METRICS_NAMESPACE, "cases_exported")

    def setup(self) -> None:
        ReaderCache.setup(self)
        self._prelabels: dict[str, dict[int, Any]] = {}

    def _shadow(self, log_id: str) -> dict[int, Any]:
        from av_pipeline.detect.prelabel_io import read_prelabels
        from beam_jobs.prelabel import PRELABEL_DIR, safe_name

        if log_id not in self._prelabels:
            if len(self._prelabels) >= 4:
                self._prelabels.pop(next(iter(self._prelabels)))
            table = read_prelabels(FileSystems.join(self._out, PRELABEL_DIR, safe_name(log_id)))
            self._prelabels[log_id] = {t: boxes for (lid, t), boxes in table.items() if lid == log_id}
        return self._prelabels[log_id]

    def process(self, case: Any, contexts: Mapping[str, LogContext]) -> Iterator[Any]:
        from av_pipeline.export import export_case

        context = contexts.get(case.log_id)
        try:
            if context is None:
                raise KeyError(f"case {case.case_id}: log {case.log_id!r} was not indexed")
            key = FrameRef(context.log_uri, case.log_id, case.first_frame, case.first_timestamp_ns, context.reader)
            reader = self.reader(key)
            refs = reader.list_frames()
            frames, indices = [], []
            for i in range(case.first_frame, case.last_frame + 1):
                try:
                    frames.append(reader.load_frame(refs[i]))
                    indices.append(i)
                except Exception:  # noqa: BLE001 - a frame that does not load is already a dead letter of ingest; export the rest
                    continue
            if not frames:
                raise ValueError(f"case {case.case_id}: no frame of its window {case.first_frame}..{case.last_frame} loads")
            exported = export_case(case, frames, self._shadow(case.log_id), self._datasets, self._formats, source_uri=context.log_uri,
                                   frame_indices=indices)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one case that cannot be exported never stops the job
            uri = context.log_uri if context is not None else ""
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("export", exc, log_uri=uri, log_id=case.log_id, frame_index=None, timestamp_ns=None))
            return
        self.exported.inc()
        from beam_jobs.common import PROGRESS_LOGGER

        PROGRESS_LOGGER.info("export: case %s (%d frames) -> %s", case.case_id, len(exported.frame_indices), ", ".join(sorted(exported.paths)))
        yield exported


class FinalizeFn(beam.DoFn):
    """Last step: the exported cases -> manifest, dead letters, ``summary.json``, the report.

    Side inputs carry everything counted inside the pipeline, so the summary and the report
    are written by the pipeline itself (on any runner), after every other output exists.
    """

    def __init__(self, out: str, campaign: str, runner: str, top_cases: int) -> None:
        self._out, self._campaign, self._runner, self._top_cases = out, campaign, runner, top_cases

    def process(
        self, exported: list[Any], *, listed: int, dead: list[dict], mining: dict, products: list[dict], drift: list[dict],
        figures: list[dict], contexts: Mapping[str, Any],
    ) -> Any:  # fmt: skip
        from av_pipeline.export import write_manifest
        from av_pipeline.frame_products import summarize_rows
        from av_pipeline.report import CalibrationSection, build_report, verdicts_from_drift_checks

        out = self._out
        dead = sorted(dead, key=lambda d: (str(d.get("log_uri")), d.get("frame_index") is None, d.get("frame_index") or 0, str(d.get("stage"))))
        write_json_lines(FileSystems.join(out, DEAD_LETTERS_FILE), dead)
        write_json_lines(FileSystems.join(out, "frames.jsonl"), sorted(products, key=lambda r: (r["log_id"], r["timestamp_ns"])))
        datasets = FileSystems.join(out, DATASETS_DIR)
        exported = sorted(exported, key=lambda c: (c.rank, c.case_id))
        write_manifest(exported, datasets)
        frame_dead = [d for d in dead if d.get("frame_index") is not None]
        by_stage: dict[str, int] = {}
        for d in dead:
            by_stage[str(d.get("stage"))] = by_stage.get(str(d.get("stage")), 0) + 1
        several_logs = len({d["log_id"] for d in drift}) > 1
        checks = {(f"{d['log_id']}/{d['camera']}" if several_logs else d["camera"]): d for d in sorted(drift, key=lambda d: (d["log_id"], d["camera"]))}
        summary = {
            "runner": self._runner, "campaign": self._campaign, "out": out,
            "logs": sorted(contexts), "frames_listed": int(listed), "frames_indexed": sum(c.frames for c in contexts.values()),
            "frames_fused": len(products), "frames_mined": int(mining.get("frames_mined", 0)),
            "frames_dead_lettered": len(frame_dead), "logs_dead_lettered": sum(1 for d in dead if d.get("frame_index") is None and d.get("stage") != "export"),
            "cases_dead_lettered": by_stage.get("export", 0), "dead_letters_by_stage": dict(sorted(by_stage.items())),
            "events": int(mining.get("events", 0)), "cases": int(mining.get("cases", 0)), "cases_exported": len(exported),
            "key_frames": int(mining.get("key_frames", 0)), "key_frame_budget": mining.get("key_frame_budget"),
            **({"fusion": summarize_rows(products)["fusion"], "voxels": summarize_rows(products)["voxels"]} if products else {}),
            "calibration_drift_check": checks, "calibration_drift_check_note": DRIFT_CONTROL_NOTE,
            "figures": sorted(p for f in figures for p in f["figures"]),
            "figure_errors": [f"{f['log_id']}: {f['error']}" for f in figures if f.get("error")],
        }  # fmt: skip
        write_json(FileSystems.join(out, SUMMARY_FILE), summary)
        if "://" not in out:  # the report is a local folder of files a browser opens
            links = {c.case_id: {fmt: f"../{DATASETS_DIR}/{path}" for fmt, path in c.paths.items()} for c in exported}
            figure_paths = tuple(Path(p) for p in summary["figures"])
            section = CalibrationSection(tuple(verdicts_from_drift_checks(checks, pan_deg=DRIFT_PAN_DEG)), figure_paths, DRIFT_CONTROL_NOTE)
            log_uris = {log_id: context.log_uri for log_id, context in contexts.items()}
            PROGRESS_LOGGER.info("report: writing %s", FileSystems.join(out, REPORT_DIR, "index.html"))
            build_report(out, FileSystems.join(out, REPORT_DIR), log_uris=log_uris, exported=links, calibration=section,
                         top_cases=self._top_cases, overwrite=True, progress=lambda line: PROGRESS_LOGGER.info("report: %s", line))  # fmt: skip
        yield summary


def write_json_lines(path: str, records: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, written under a temporary name and renamed (local paths) or
    through Beam's file systems (others)."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if "://" in path:
        with FileSystems.create(path) as stream:
            stream.write(text.encode("utf-8"))
        return
    from av_pipeline.export.records import atomic_write_text

    atomic_write_text(Path(path), text)


__all__ = [
    "DATASETS_DIR", "DEAD_LETTERS_FILE", "DRIFT_CHECK_FRAMES", "DRIFT_CONTROL_NOTE", "DRIFT_PAN_DEG", "ExportCaseFn", "FinalizeFn", "FuseFn", "IngestFn", "LogContext", "METRICS_NAMESPACE", "REPORT_DIR", "SUMMARY_FILE",
    "convert_rig", "drift_scores", "drift_verdict", "frame_dead_letter", "log_context", "write_json_lines",
]  # fmt: skip
