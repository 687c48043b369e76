"""Mining job: drive logs -> shadow pre-labels -> per-log triggers -> cases under a budget.

Steps (stable labels): ``ExpandLogs`` -> ``ListFrames`` (as ingest) -> ``LoadPoints`` ->
``Detect`` (``RunInference``, the pre-label detector) -> ``GroupDetections`` -> ``Refine``
(offboard refinement per log; pre-labels written as in the pre-label job) -> ``SpreadRefined``
(a reshuffle: one log's frames over the workers) -> ``Evidence``
(each frame re-read where it is used: points counted inside shadow and onboard boxes; only
the small :class:`~av_pipeline.mining.MiningFrame` moves on) -> ``GroupEvidence`` ->
``MineLog`` (the campaign's triggers, the log's candidate cases) -> ``SelectCases`` (one
combine over all logs: the budget) -> ``cases.parquet``, ``events.parquet``, ``cases.json``,
``campaign.json``, ``mining.json``; ``dead_letters/`` and ``summary.json``. Failures of any
stage are dead letters; frames listed = frames mined + frames dead-lettered is checked.

Run it with::

    python -m beam_jobs.mine --logs 'data/*.mcap' --campaign default --out out/mining
    avp mine data/drive.mcap --campaign vru --out out/mining
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import AVPipelineError, ConfigError
from av_pipeline.ingest import import_reader_modules, parse_reader_options
from av_pipeline.records import FrameRef
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    PROGRESS_LOGGER,
    ProgressLog,
    ReaderCache,
    JobAccountingError,
    JobFailedError,
    LogReaderOptions,
    OutputOptions,
    WriteDeadLetters,
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
from beam_jobs.prelabel import PRELABEL_DIR, DetectorModelHandler, PrelabelOptions, safe_name

METRICS_NAMESPACE = "avp.mine"
SUMMARY_FILE = "summary.json"
MINING_FILE = "mining.json"


class MineOptions(OutputOptions, LogReaderOptions, PipelineOptions):
    """Mining options: ``--campaign``; the shadow model's options are the pre-label job's
    (:class:`~beam_jobs.prelabel.PrelabelOptions`: ``--weights``, ``--device``,
    ``--batch_size``) and the logs come from ingest's ``--logs`` (Beam parses every options
    class together, so an option is declared once)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--campaign", default="default", help="campaign YAML file or shipped campaign name (default: default)")


class _LoadPointsFn(ReaderCache, beam.DoFn):
    """FrameRef -> ``((ref, pose matrix or None), points_ego)`` for RunInference."""

    def __init__(self, reader_options: dict[str, Any], reader_modules: Sequence[str]) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules)
        self.frames_loaded = Metrics.counter(METRICS_NAMESPACE, "frames_loaded")

    def process(self, ref: FrameRef) -> Iterator[Any]:
        from av_pipeline.detect.points import frame_points_ego

        try:
            frame = self.reader(ref).load_frame(ref)
            points = frame_points_ego(frame)
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops the job
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("load", exc, log_uri=ref.log_uri, log_id=ref.log_id, frame_index=ref.index, timestamp_ns=ref.timestamp_ns))
            return
        self.frames_loaded.inc()
        pose = None if frame.world_SE3_ego is None else frame.world_SE3_ego.as_matrix().tolist()
        yield ((ref, pose), points)


class _RefineFn(beam.DoFn):
    """``(log_id, [((ref, pose), boxes)...])`` -> ``(ref, refined boxes)`` per frame; writes the log's pre-labels."""

    def __init__(self, out: str, model: str) -> None:
        self._out = out
        self._model = model

    def process(self, element: tuple[str, Iterable[tuple[tuple, Any]]]) -> Iterator[Any]:
        from av_pipeline.detect.prelabel_io import write_prelabels
        from av_pipeline.detect.refine import TimedDetections, track_and_refine
        from calibration import SE3

        log_id, items = element
        start = time.monotonic()
        items = sorted(items, key=lambda item: item[0][0].timestamp_ns)
        timed = [TimedDetections(ref.timestamp_ns, None if pose is None else SE3.from_matrix(np.asarray(pose)), b) for (ref, pose), b in items]
        refined, _ = track_and_refine(timed)
        write_prelabels(FileSystems.join(self._out, PRELABEL_DIR, safe_name(log_id)), [((log_id, t.timestamp_ns), b, -1) for t, b in zip(timed, refined)], self._model)
        PROGRESS_LOGGER.info("refine: %s: %d frames in %.1f s [worker pid %d]", log_id, len(items), time.monotonic() - start, os.getpid())
        for ((ref, _), _), boxes in zip(items, refined):
            yield ref, boxes


class _EvidenceFn(ReaderCache, beam.DoFn):
    """``(ref, shadow boxes)`` -> ``(log_id, (MiningFrame, rig))``: re-reads the frame to count points."""

    def __init__(self, reader_options: dict[str, Any], reader_modules: Sequence[str], progress_interval_s: float = 10.0) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules)
        self._progress_interval_s = progress_interval_s
        self.frames_ready = Metrics.counter(METRICS_NAMESPACE, "frames_with_evidence")

    def setup(self) -> None:
        ReaderCache.setup(self)
        self._progress = ProgressLog("Evidence", "frames", self._progress_interval_s)

    def process(self, element: tuple[FrameRef, Any]) -> Iterator[Any]:
        from av_pipeline.mining import mining_frame

        self._progress.tick()
        ref, shadow = element
        try:
            frame = self.reader(ref).load_frame(ref)
            evidence = mining_frame(frame, shadow, index=ref.index)
        except Exception as exc:  # noqa: BLE001
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("evidence", exc, log_uri=ref.log_uri, log_id=ref.log_id, frame_index=ref.index, timestamp_ns=ref.timestamp_ns))
            return
        self.frames_ready.inc()
        yield ref.log_id, (evidence, frame.rig, ref.log_uri)


class _MineLogFn(beam.DoFn):
    """``(log_id, [(MiningFrame, rig, uri)...])`` -> :class:`~av_pipeline.mining.LogMining`."""

    def __init__(self, campaign: str) -> None:
        self._campaign_name = campaign
        self.frames_mined = Metrics.counter(METRICS_NAMESPACE, "frames_mined")
        self.events = Metrics.counter(METRICS_NAMESPACE, "events")

    def setup(self) -> None:
        from av_pipeline.mining import load_campaign

        self._campaign = load_campaign(self._campaign_name)

    def process(self, element: tuple[str, Iterable[tuple[Any, Any, str]]]) -> Iterator[Any]:
        from av_pipeline.mining import mine_log

        log_id, items = element
        start = time.monotonic()
        items = list(items)
        try:
            result = mine_log([mf for mf, _, _ in items], self._campaign, items[0][1])
        except Exception as exc:  # noqa: BLE001 - a log that cannot be mined: its frames are dead letters
            for mf, _, uri in items:
                yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("mine", exc, log_uri=uri, log_id=log_id, frame_index=mf.index, timestamp_ns=mf.timestamp_ns))
            return
        self.frames_mined.inc(result.frames)
        self.events.inc(len(result.events))
        PROGRESS_LOGGER.info(
            "mine: %s: %d frames, %d events, %d candidate cases in %.1f s [worker pid %d]",
            log_id, result.frames, len(result.events), len(result.candidates), time.monotonic() - start, os.getpid(),
        )  # fmt: skip
        yield result


class SelectCasesFn(beam.DoFn):
    """All logs' :class:`~av_pipeline.mining.LogMining` -> each selected case, and (tagged
    ``mining``) ``mining.json``'s content; writes the mining files into ``out``. Counts
    selected cases as ``cases`` in ``namespace``."""

    MINING_TAG = "mining"

    def __init__(self, out: str, campaign: str, namespace: str = METRICS_NAMESPACE) -> None:
        self._out = out
        self._campaign_name = campaign
        self.cases = Metrics.counter(namespace, "cases")

    def process(self, results: list[Any]) -> Iterator[Any]:
        from av_pipeline.mining import load_campaign, select
        from av_pipeline.mining.outputs import write_cases

        campaign = load_campaign(self._campaign_name)
        results = sorted(results, key=lambda r: r.log_id)
        cases = select(results, campaign)
        write_cases(self._out, cases, campaign, {"frames_mined": sum(r.frames for r in results), "logs": [r.log_id for r in results]})
        summary = mining_summary(results, cases, campaign)
        write_json(FileSystems.join(self._out, MINING_FILE), summary)
        self.cases.inc(len(cases))
        yield beam.pvalue.TaggedOutput(self.MINING_TAG, summary)
        yield from cases


def mining_summary(results: Sequence[Any], cases: Sequence[Any], campaign: Any) -> dict[str, Any]:
    """Per-log and per-trigger counts for ``mining.json`` (and the report)."""
    frames = sum(r.frames for r in results)
    limit = campaign.budget.frame_limit(frames)
    return {
        "campaign": campaign.name,
        "frames_mined": frames,
        "events": sum(len(r.events) for r in results),
        "candidate_cases": sum(len(r.candidates) for r in results),
        "cases": len(cases),
        "key_frames": sum(len(c.key_frames) for c in cases),
        "key_frame_budget": limit,
        "case_budget": campaign.budget.cases,
        "logs": {
            r.log_id: {"frames": r.frames, "events": len(r.events), "candidates": len(r.candidates), "events_per_trigger": r.events_per_trigger,
                       "sliced_out": r.sliced_out, "skipped_triggers": r.skipped}  # fmt: skip
            for r in results
        },
    }


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> list[str]:
    """Add the mining steps to ``pipeline``; return the expanded log uris."""
    opts = options.view_as(MineOptions)
    model = options.view_as(PrelabelOptions)
    if not opts.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    if model.batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {model.batch_size}")
    from av_pipeline.mining import load_campaign

    load_campaign(opts.campaign)  # refuse a bad campaign before anything runs
    reader_options = parse_reader_options(opts.reader_option)
    import_reader_modules(opts.reader_module)
    expand = ExpandLogs(options.view_as(IngestOptions).logs)
    listed = pipeline | "ExpandLogs" >> expand | "ListFrames" >> ListFrames(opts.reader, reader_options, opts.reader_module, opts.progress_interval_s)
    loaded = listed["refs"] | "LoadPoints" >> beam.ParDo(_LoadPointsFn(reader_options, opts.reader_module)).with_outputs(DEAD_LETTER_TAG, main="points")
    detected = loaded.points | "Detect" >> RunInference(KeyedModelHandler(DetectorModelHandler(model.weights, model.device, model.batch_size)))
    refined = (
        detected
        | "KeyDetectionsByLog" >> beam.Map(lambda kv: (kv[0][0].log_id, kv))
        | "GroupDetections" >> beam.GroupByKey()
        | "Refine" >> beam.ParDo(_RefineFn(opts.out, model.weights or "cpu_small"))
    )
    evidence = refined | "SpreadRefined" >> beam.Reshuffle() | "Evidence" >> beam.ParDo(_EvidenceFn(reader_options, opts.reader_module)).with_outputs(DEAD_LETTER_TAG, main="frames")
    mined = (
        evidence.frames
        | "GroupEvidence" >> beam.GroupByKey()
        | "MineLog" >> beam.ParDo(_MineLogFn(opts.campaign)).with_outputs(DEAD_LETTER_TAG, main="logs")
    )
    _ = mined.logs | "AllLogs" >> beam.combiners.ToList() | "SelectCases" >> beam.ParDo(SelectCasesFn(opts.out, opts.campaign)).with_outputs(
        SelectCasesFn.MINING_TAG, main="cases"
    )
    dead = (listed[DEAD_LETTER_TAG], loaded[DEAD_LETTER_TAG], evidence[DEAD_LETTER_TAG], mined[DEAD_LETTER_TAG])
    _ = dead | "CollectDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(opts.out)
    return expand.uris


@dataclass(frozen=True)
class MineSummary:
    """What a mining run did (also ``summary.json``)."""

    out: str
    runner: str
    campaign: str
    logs: int
    frames_listed: int
    frames_mined: int
    frames_dead_lettered: int
    logs_dead_lettered: int
    events: int
    cases: int
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return dict(self.__dict__)


def run(argv: Sequence[str] | None = None) -> MineSummary:
    """Run the job with command-line style arguments (see :class:`MineOptions`).

    Raises:
        ConfigError: bad options or campaign, no logs, earlier results without ``--overwrite``.
        JobAccountingError: frames listed != mined + dead-lettered (a bug).
        JobFailedError: the runner did not finish the job.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    unknown = unknown_pipeline_args(args)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; see python -m beam_jobs.mine --help")
    options = PipelineOptions(args)
    opts = options.view_as(MineOptions)
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    uris = build_pipeline(pipeline, options)
    outputs = [f"{PRELABEL_DIR}/*/*.parquet", DEAD_LETTERS_GLOB, SUMMARY_FILE, MINING_FILE, "cases.parquet", "events.parquet", "cases.json", "campaign.json"]
    prepare_output_dir(opts.out, outputs, opts.overwrite)
    PROGRESS_LOGGER.info("mine: %d logs, campaign %s -> %s (runner %s)", len(uris), opts.campaign, opts.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(
        result, METRICS_NAMESPACE, lambda c: f"{c.get('frames_loaded', 0)} frames loaded, {c.get('frames_with_evidence', 0)} with evidence", opts.progress_interval_s
    )  # fmt: skip
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the mining pipeline on {runner} ended in state {state}, not DONE")
    counters = counter_values(result, METRICS_NAMESPACE) or {}
    ingest_counters = counter_values(result, INGEST_NAMESPACE) or {}
    dead = read_json_lines(FileSystems.join(opts.out, DEAD_LETTERS_GLOB))
    frame_dead = sum(1 for d in dead if d.get("frame_index") is not None)
    summary = MineSummary(
        out=opts.out, runner=runner, campaign=opts.campaign, logs=len(uris),
        frames_listed=int(ingest_counters.get("frames_listed", 0)), frames_mined=int(counters.get("frames_mined", 0)),
        frames_dead_lettered=frame_dead, logs_dead_lettered=len(dead) - frame_dead,
        events=int(counters.get("events", 0)), cases=int(counters.get("cases", 0)), elapsed_s=round(time.monotonic() - start, 2),
    )  # fmt: skip
    write_json(FileSystems.join(opts.out, SUMMARY_FILE), summary.to_json())
    if summary.frames_listed != summary.frames_mined + summary.frames_dead_lettered:
        raise JobAccountingError(
            f"mining lost frames (a bug): listed {summary.frames_listed} != mined {summary.frames_mined} + dead-lettered {summary.frames_dead_lettered}"
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beam_jobs.mine``; returns an exit code (see ``beam_jobs.common.EXIT_CODES``)."""
    import argparse

    args = list(argv) if argv is not None else sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        parser = argparse.ArgumentParser(prog="python -m beam_jobs.mine", description=(__doc__ or "").split("Run it with::")[0].strip())
        group = parser.add_argument_group("mining options")
        group.add_argument("--logs", action="append", metavar="PATH_OR_GLOB", help="drive log file, directory or glob; repeatable")
        MineOptions._add_argparse_args(group)  # noqa: SLF001
        group.add_argument("--weights", default=None, help="shadow model: shipped weights name or .pt path (default cpu_small)")
        group.add_argument("--device", default=None, help="torch device (default: cuda when torch sees a GPU, else cpu)")
        group.add_argument("--batch_size", type=int, default=4, help="frames per forward pass at most (default 4)")
        OutputOptions._add_argparse_args(parser.add_argument_group("output"))  # noqa: SLF001
        LogReaderOptions._add_argparse_args(parser.add_argument_group("log readers"))  # noqa: SLF001
        parser.print_help()
        return 0
    try:
        summary = run(args)
    except AVPipelineError as exc:
        print(f"python -m beam_jobs.mine: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(f"mined {summary.frames_mined} frames: {summary.events} events, {summary.cases} cases, {summary.frames_dead_lettered} frames dead-lettered -> {summary.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
