"""Pre-label job: drive logs -> 3D cuboid pre-labels per frame, refined over each log.

Steps (stable labels): ``ExpandLogs`` -> ``ListFrames`` (as ingest) -> ``LoadPoints``
(frame -> LiDAR points in ``ego``; failures are dead letters with stage ``load``) ->
``Detect`` (``RunInference`` with :class:`DetectorModelHandler`: the model is loaded once
per worker and frames are batched) -> ``GroupByLog`` -> ``RefineAndWrite`` (offboard track
refinement, then ``prelabels/<log>/prelabels.parquet`` and ``frames.parquet``, written under
a temporary name and renamed) plus ``dead_letters/dead_letters-*.jsonl`` and ``summary.json``.
With ``--export_prelabels openlabel`` / ``kitti`` (repeatable), ``ExportPrelabels`` then writes
each log's pre-labels as ``<out>/<log>/openlabel.json`` or the KITTI object split
``<out>/<log>/kitti/`` (:func:`~av_pipeline.export.export_log_prelabels`; the frames are
loaded again one at a time, never a whole log at once). A failed export is a dead letter with
stage ``export`` (the log's pre-label tables are written all the same).

What moves between workers is points only inside the fused load -> detect stage; after it,
only boxes.

Run it with::

    python -m beam_jobs.prelabel --logs 'data/*.mcap' --out out/prelabels
    avp prelabel data/drive.mcap --out out/prelabels
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import AVPipelineError, ConfigError
from av_pipeline.export.records import LOG_FORMATS
from av_pipeline.ingest import import_reader_modules, parse_reader_options
from av_pipeline.records import FrameRef
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    PROGRESS_LOGGER,
    ReaderCache,
    JobAccountingError,
    JobFailedError,
    LogReaderOptions,
    OutputOptions,
    WriteDeadLetters,
    apply_worker_threads,
    counter_values,
    create_pipeline,
    dead_letter,
    exit_code_for,
    prepare_output_dir,
    read_json_lines,
    show_progress_lines,
    unknown_pipeline_args,
    wait_with_progress,
    write_json,
)
from beam_jobs.ingest import METRICS_NAMESPACE as INGEST_NAMESPACE
from beam_jobs.ingest import DEAD_LETTERS_GLOB, ExpandLogs, IngestOptions, ListFrames

METRICS_NAMESPACE = "avp.prelabel"
SUMMARY_FILE = "summary.json"
PRELABEL_DIR = "prelabels"
#: What ``--export_prelabels`` writes under ``<out>/<log>/``.
EXPORT_OPENLABEL, EXPORT_KITTI = "openlabel.json", "kitti"


class PrelabelOptions(OutputOptions, LogReaderOptions, PipelineOptions):
    """Pre-label options: ``--weights``, ``--device``, ``--batch_size``, ``--no_refine``; the
    logs come from ingest's ``--logs`` (:class:`~beam_jobs.ingest.IngestOptions`: Beam
    parses every options class together, so an option is declared once)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--weights", default=None, help="shipped weights name or .pt path (default: the package's cpu_small)")
        parser.add_argument("--device", default=None, help="torch device (default: cuda when torch sees a GPU, else cpu)")
        parser.add_argument("--batch_size", type=int, default=4, help="frames per forward pass at most (default 4)")
        parser.add_argument("--no_refine", action="store_true", default=False, help="write raw detections, no track refinement")
        parser.add_argument(
            "--export_prelabels",
            action="append",
            default=[],
            choices=list(LOG_FORMATS),
            help="also export each log's pre-labels as <out>/<log>/openlabel.json or <out>/<log>/kitti/ (repeatable)",
        )


def safe_name(log_id: str) -> str:
    """A file-name-safe, collision-free folder name for a log id."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", log_id)[:80] or "log"
    if clean != log_id:
        clean += "-" + hashlib.sha1(log_id.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return clean


class DetectorModelHandler(ModelHandler[np.ndarray, Any, Any]):
    """``RunInference`` handler: ``(N, 3)`` float32 ego-frame points -> :class:`~av_pipeline.boxes.Cuboids`.

    The :class:`~av_pipeline.detect.Detector` is loaded once per worker process (Beam's
    shared model) and frames are batched into one forward pass: exactly ``max_batch_size``
    frames per batch (fewer only at the end of a bundle). A fixed size rather than Beam's
    adaptive one (which grows from 1 as it times batches) keeps a worker's memory the same
    whatever the log's length: the forward pass's working memory grows with the batch (about
    200 MB for one frame of the shipped model on CPU, 470 MB for four), and with adaptive
    sizes a longer run was more likely to reach the largest batches (issue 12).
    """

    def __init__(self, weights: str | None = None, device: str | None = None, max_batch_size: int = 4) -> None:
        super().__init__()
        self._weights = weights
        self._device = device
        self._max_batch_size = max(1, int(max_batch_size))

    def load_model(self) -> Any:
        from av_pipeline.detect import Detector

        apply_worker_threads()
        return Detector.from_pretrained(self._weights, self._device)

    def run_inference(self, batch: Sequence[np.ndarray], model: Any, inference_args: dict | None = None) -> Iterable[Any]:
        return model.detect_points_batch(list(batch))

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


class _LoadPointsFn(ReaderCache, beam.DoFn):
    """FrameRef -> ``(key, points_ego)`` for RunInference, and the pose as a side record."""

    def __init__(self, reader_options: dict[str, Any], reader_modules: Sequence[str], max_open_logs: int = 8) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules, max_open_logs)
        self.frames_loaded = Metrics.counter(METRICS_NAMESPACE, "frames_loaded")
        self.frames_failed = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_load")

    def process(self, ref: FrameRef) -> Iterator[Any]:
        from av_pipeline.detect.points import frame_points_ego

        try:
            frame = self.reader(ref).load_frame(ref)
            points = frame_points_ego(frame)
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops the job
            self.frames_failed.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                dead_letter("load", exc, log_uri=ref.log_uri, log_id=ref.log_id, frame_index=ref.index, timestamp_ns=ref.timestamp_ns),
            )
            return
        self.frames_loaded.inc()
        pose = None if frame.world_SE3_ego is None else frame.world_SE3_ego.as_matrix().tolist()
        yield ((ref.log_id, ref.timestamp_ns, ref.log_uri, len(points), pose, ref.reader), points)


class _RefineAndWriteFn(beam.DoFn):
    """``(log_id, [(key, boxes)...])`` -> one log's Parquet tables; yields
    ``(log_id, log_uri, reader name, {timestamp_ns: boxes in ego})`` for the export step."""

    def __init__(self, out: str, refine: bool, model: str) -> None:
        self._out = out
        self._refine = refine
        self._model = model
        self.frames_written = Metrics.counter(METRICS_NAMESPACE, "frames_prelabelled")
        self.boxes_written = Metrics.counter(METRICS_NAMESPACE, "boxes_written")

    def process(self, element: tuple[str, Iterable[tuple[tuple, Any]]]) -> Iterator[tuple[str, str, str, dict[int, Any]]]:
        from av_pipeline.detect.prelabel_io import write_prelabels
        from av_pipeline.detect.refine import TimedDetections, track_and_refine
        from calibration import SE3

        log_id, items = element
        items = sorted(items, key=lambda item: item[0][1])
        boxes = [b for _, b in items]
        if self._refine and items:
            timed = [TimedDetections(key[1], None if key[4] is None else SE3.from_matrix(np.asarray(key[4])), b) for key, b in items]
            boxes, _ = track_and_refine(timed)
        frames = [((log_id, key[1]), b, key[3]) for (key, _), b in zip(items, boxes)]
        write_prelabels(FileSystems.join(self._out, PRELABEL_DIR, safe_name(log_id)), frames, self._model)
        self.frames_written.inc(len(frames))
        self.boxes_written.inc(sum(len(b) for b in boxes))
        PROGRESS_LOGGER.info("prelabel: %s: %d frames, %d boxes", log_id, len(frames), sum(len(b) for b in boxes))
        if items:
            first_key = items[0][0]
            yield (log_id, first_key[2], first_key[5], {key[1]: b for (key, _), b in zip(items, boxes)})


class _LogHandle:
    """What :meth:`ReaderCache.reader` needs of a ref: the log's uri and its reader's name."""

    def __init__(self, log_uri: str, reader: str) -> None:
        self.log_uri = log_uri
        self.reader = reader


class _ExportPrelabelsFn(ReaderCache, beam.DoFn):
    """``(log_id, log_uri, reader, {timestamp_ns: boxes})`` -> ``<out>/<log>/openlabel.json``
    and/or ``<out>/<log>/kitti/`` (:func:`~av_pipeline.export.export_log_prelabels`).

    The log's frames that have pre-labels are loaded again one at a time (a generator: a
    log is never held in memory); a failing export (a frame the format cannot hold, e.g. no
    camera image for KITTI) is a dead letter with stage ``export`` naming the log.
    """

    def __init__(self, out: str, formats: Sequence[str], reader_options: dict[str, Any], reader_modules: Sequence[str]) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules, max_open_logs=2)
        self._out = out
        self._formats = tuple(formats)
        self.exports_written = Metrics.counter(METRICS_NAMESPACE, "exports_written")
        self.exports_failed = Metrics.counter(METRICS_NAMESPACE, "exports_dead_lettered")

    def process(self, element: tuple[str, str, str, dict[int, Any]]) -> Iterator[Any]:
        from av_pipeline.export import export_log_prelabels

        log_id, log_uri, reader_name, boxes_by_time = element
        for fmt in self._formats:
            try:
                reader = self.reader(_LogHandle(log_uri, reader_name))
                refs = [ref for ref in reader.list_frames() if ref.timestamp_ns in boxes_by_time]
                exported = export_log_prelabels(
                    (reader.load_frame(ref) for ref in refs), boxes_by_time, FileSystems.join(self._out, safe_name(log_id)), fmt,
                    frame_indices=[ref.index for ref in refs], source_uri=log_uri,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one log's export never stops the job
                self.exports_failed.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("export", exc, log_uri=log_uri, log_id=log_id))
                continue
            self.exports_written.inc()
            PROGRESS_LOGGER.info("prelabel: %s: %s export of %d frames -> %s", log_id, fmt, len(exported.frame_indices), exported.path)
            yield (log_id, fmt, str(exported.path))


def export_formats(formats: Sequence[str], out: str) -> tuple[str, ...]:
    """The distinct ``--export_prelabels`` values, in order.

    Raises:
        ConfigError: an unknown format, or an ``--out`` that is not a local folder (the
            exporters write with local file operations).
    """
    unique = tuple(dict.fromkeys(formats))
    unknown = [f for f in unique if f not in LOG_FORMATS]
    if unknown:
        raise ConfigError(f"export_prelabels: expected some of {list(LOG_FORMATS)}, got {unknown}")
    if unique and "://" in out:
        raise ConfigError(f"export_prelabels: the exporters write local files; expected a local --out, got {out!r}")
    return unique


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> list[str]:
    """Add the pre-label steps to ``pipeline``; return the expanded log uris."""
    opts = options.view_as(PrelabelOptions)
    if not opts.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    if opts.batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {opts.batch_size}")
    reader_options = parse_reader_options(opts.reader_option)
    import_reader_modules(opts.reader_module)
    expand = ExpandLogs(options.view_as(IngestOptions).logs)
    listed = pipeline | "ExpandLogs" >> expand | "ListFrames" >> ListFrames(opts.reader, reader_options, opts.reader_module, opts.progress_interval_s)
    loaded = listed["refs"] | "LoadPoints" >> beam.ParDo(_LoadPointsFn(reader_options, opts.reader_module)).with_outputs(DEAD_LETTER_TAG, main="points")
    handler = KeyedModelHandler(DetectorModelHandler(opts.weights, opts.device, opts.batch_size))
    detected = loaded.points | "Detect" >> RunInference(handler)
    model_name = opts.weights or "cpu_small"
    written = (
        detected
        | "KeyByLog" >> beam.Map(lambda kv: (kv[0][0], (kv[0], kv[1])))
        | "GroupByLog" >> beam.GroupByKey()
        | "RefineAndWrite" >> beam.ParDo(_RefineAndWriteFn(opts.out, not opts.no_refine, model_name))
    )
    dead_letters = [listed[DEAD_LETTER_TAG], loaded[DEAD_LETTER_TAG]]
    if opts.export_prelabels:
        exported = written | "ExportPrelabels" >> beam.ParDo(
            _ExportPrelabelsFn(opts.out, export_formats(opts.export_prelabels, opts.out), reader_options, opts.reader_module)
        ).with_outputs(DEAD_LETTER_TAG, main="exported")
        dead_letters.append(exported[DEAD_LETTER_TAG])
    _ = tuple(dead_letters) | "CollectDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(opts.out)
    return expand.uris


@dataclass(frozen=True)
class PrelabelSummary:
    """What a pre-label run did (also ``summary.json``)."""

    out: str
    runner: str
    logs: int
    frames_listed: int
    frames_prelabelled: int
    frames_dead_lettered: int
    logs_dead_lettered: int
    boxes: int
    elapsed_s: float
    export_formats: tuple[str, ...] = ()
    exports_written: int = 0
    exports_dead_lettered: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {**self.__dict__, "export_formats": list(self.export_formats)}


def run(argv: Sequence[str] | None = None) -> PrelabelSummary:
    """Run the job with command-line style arguments (see :class:`PrelabelOptions`).

    Raises:
        ConfigError: bad options, no logs, earlier results without ``--overwrite``.
        JobAccountingError: frames listed != pre-labelled + dead-lettered (a bug).
        JobFailedError: the runner did not finish the job.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    unknown = unknown_pipeline_args(args)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; see python -m beam_jobs.prelabel --help")
    options = PipelineOptions(args)
    opts = options.view_as(PrelabelOptions)
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    uris = build_pipeline(pipeline, options)
    outputs = [f"{PRELABEL_DIR}/*/*.parquet", DEAD_LETTERS_GLOB, SUMMARY_FILE]
    if opts.export_prelabels:  # an earlier export: the OpenLABEL file, the KITTI split's files
        outputs += [f"*/{EXPORT_OPENLABEL}", f"*/{EXPORT_KITTI}/*", f"*/{EXPORT_KITTI}/*/*"]
    prepare_output_dir(opts.out, outputs, opts.overwrite)
    PROGRESS_LOGGER.info("prelabel: %d logs -> %s (runner %s)", len(uris), opts.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(result, METRICS_NAMESPACE, lambda c: f"{c.get('frames_loaded', 0)} frames loaded", opts.progress_interval_s)
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the prelabel pipeline on {runner} ended in state {state}, not DONE")
    counters = counter_values(result, METRICS_NAMESPACE) or {}
    ingest_counters = counter_values(result, INGEST_NAMESPACE) or {}
    dead = read_json_lines(FileSystems.join(opts.out, DEAD_LETTERS_GLOB))
    frame_dead = sum(1 for d in dead if d.get("frame_index") is not None)
    export_dead = sum(1 for d in dead if d.get("stage") == "export")
    summary = PrelabelSummary(
        out=opts.out, runner=runner, logs=len(uris),
        frames_listed=int(ingest_counters.get("frames_listed", 0)),
        frames_prelabelled=int(counters.get("frames_prelabelled", 0)),
        frames_dead_lettered=frame_dead,
        logs_dead_lettered=len(dead) - frame_dead - export_dead,
        boxes=int(counters.get("boxes_written", 0)),
        elapsed_s=round(time.monotonic() - start, 2),
        export_formats=tuple(dict.fromkeys(opts.export_prelabels)),
        exports_written=int(counters.get("exports_written", 0)),
        exports_dead_lettered=export_dead,
    )  # fmt: skip
    write_json(FileSystems.join(opts.out, SUMMARY_FILE), summary.to_json())
    if summary.frames_listed != summary.frames_prelabelled + summary.frames_dead_lettered:
        raise JobAccountingError(
            f"prelabel lost frames (a bug): listed {summary.frames_listed} != pre-labelled {summary.frames_prelabelled} "
            f"+ dead-lettered {summary.frames_dead_lettered}"
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beam_jobs.prelabel``; returns an exit code (see ``beam_jobs.common.EXIT_CODES``)."""
    import argparse

    args = list(argv) if argv is not None else sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        parser = argparse.ArgumentParser(prog="python -m beam_jobs.prelabel", description=(__doc__ or "").split("Run it with::")[0].strip())
        group = parser.add_argument_group("pre-label options")
        group.add_argument("--logs", action="append", metavar="PATH_OR_GLOB", help="drive log file, directory or glob; repeatable")
        PrelabelOptions._add_argparse_args(group)  # noqa: SLF001
        OutputOptions._add_argparse_args(parser.add_argument_group("output"))  # noqa: SLF001
        LogReaderOptions._add_argparse_args(parser.add_argument_group("log readers"))  # noqa: SLF001
        parser.print_help()
        return 0
    try:
        summary = run(args)
    except AVPipelineError as exc:
        print(f"python -m beam_jobs.prelabel: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(f"pre-labelled {summary.frames_prelabelled} frames ({summary.boxes} boxes), {summary.frames_dead_lettered} frames dead-lettered -> {summary.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
