"""The main job: drive logs -> frame index, fusion and voxels, pre-labels, mined cases,
edge-case datasets and the mining report, as one Beam pipeline (``avp run``, ``make demo``).

Steps (stable labels; DoFns in :mod:`beam_jobs.run_steps`)::

    ExpandLogs -> ListFrames -> Ingest (load + validate; the ingest job's rules) -> WriteIndex
      -> GroupIndex -> LogContexts (per log: pose trajectory, drift-check frames; a side input)
      -> FuseAndVoxelize (de-skew, motion compensation, painting, voxels; drift-check scores;
         pictures of one frame per log) -> Detect (RunInference, the detector's ModelHandler)
      -> GroupDetections -> Refine (tracks over the log; pre-labels written)
      -> Evidence -> GroupEvidence -> MineLog -> SelectCases (the campaign's budget)
      -> ExportCases (OpenLABEL, KITTI, MCAP per case) -> Finalize (manifest, dead letters,
         summary.json, the report)

Failures of every stage are dead letters with the stage's name; the job checks frames
listed = frames mined + frames dead-lettered (a case that cannot be exported is a dead letter
of stage ``export``, not a lost frame). Only :class:`~av_pipeline.records.FrameRef` keys,
summaries, point arrays on their way into the detector and small per-log results move
between steps; frames are re-read where they are needed.

Outputs in ``--out`` (the folder is also a mining folder that ``avp report`` reads)::

    ingest/index/*.parquet    frame index (the ingest job's schema)
    frames.jsonl              fusion and voxel numbers per frame
    prelabels/<log>/          refined pre-labels (Parquet, avp prelabel's layout)
    cases.parquet, events.parquet, cases.json, campaign.json, mining.json
    datasets/                 cases/<rank>_<case>/{openlabel.json, kitti/, case.mcap}, manifest.{parquet,json}
    figures/<log>/, calibration/<log>/   pictures of one frame, the rig in other formats
    dead_letters/dead_letters.jsonl      every failure, one JSON object per line
    report/index.html, report/summary.json
    summary.json

Run it with::

    python -m beam_jobs.run --out out/run                  # the bundled synthetic log
    python -m beam_jobs.run --logs 'drives/*.mcap' --campaign vru --out out/vru
    avp run drives/*.mcap --out out/run --workers 2
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import AVPipelineError, ConfigError
from av_pipeline.ingest import import_reader_modules, parse_reader_options
from beam_jobs import mine as mine_job
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    PROGRESS_LOGGER,
    JobAccountingError,
    JobFailedError,
    counter_values,
    create_pipeline,
    exit_code_for,
    prepare_output_dir,
    show_progress_lines,
    unknown_pipeline_args,
    wait_with_progress,
    write_json,
)
from beam_jobs.ingest import METRICS_NAMESPACE as INGEST_NAMESPACE
from beam_jobs.ingest import ExpandLogs, IngestOptions, ListFrames, WriteIndex
from beam_jobs.prelabel import PRELABEL_DIR, DetectorModelHandler, PrelabelOptions
from beam_jobs.run_steps import (
    DRIFT_CONTROL_NOTE,
    DRIFT_PAN_DEG,
    DRIFT_TAG,
    FIGURES_TAG,
    METRICS_NAMESPACE,
    PRODUCTS_TAG,
    ExportCaseFn,
    FuseFn,
    IngestFn,
    drift_verdict,
    log_context,
    write_json_lines,
)

SUMMARY_FILE = "summary.json"
DATASETS_DIR = "datasets"
REPORT_DIR = "report"
DEAD_LETTERS_FILE = "dead_letters/dead_letters.jsonl"
#: Everything the job writes in ``--out`` (replaced as a whole with ``--overwrite``).
RUN_OUTPUTS = (
    "ingest/index/*", "frames.jsonl", f"{PRELABEL_DIR}/*/*", "cases.parquet", "events.parquet", "cases.json", "campaign.json",
    mine_job.MINING_FILE, f"{DATASETS_DIR}/*", "figures/*", "calibration/*", "dead_letters/*", f"{REPORT_DIR}/*", SUMMARY_FILE,
)  # fmt: skip


class RunOptions(PipelineOptions):
    """Options of the main job besides those of ingest (``--logs``, ``--out``, readers),
    the pre-label job (``--weights``, ``--device``, ``--batch_size``) and the mining job
    (``--campaign``), which Beam parses together with these."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--export_formats", default="openlabel,kitti,mcap", help="formats of each case's dataset, comma-separated (default: openlabel,kitti,mcap)"
        )
        parser.add_argument("--report_top_cases", type=int, default=20, help="cases with pictures in the report (default 20)")


def _formats(text: str) -> list[str]:
    from av_pipeline.export import CASE_FORMATS

    formats = [f.strip() for f in str(text).split(",") if f.strip()]
    unknown = [f for f in formats if f not in CASE_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"export_formats: expected some of {list(CASE_FORMATS)}, got {formats}")
    return formats


class _FinalizeFn(beam.DoFn):
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


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions, runner: str = "") -> list[str]:
    """Add the main job's steps to ``pipeline``; return the expanded log uris.

    Raises:
        ConfigError: bad ``--out``, ``--batch_size``, ``--campaign``, ``--export_formats``,
            ``--report_top_cases`` or reader options.
    """
    opts = options.view_as(mine_job.MineOptions)
    model = options.view_as(PrelabelOptions)
    run_opts = options.view_as(RunOptions)
    if not opts.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    if model.batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {model.batch_size}")
    if run_opts.report_top_cases < 0:
        raise ConfigError(f"report_top_cases: expected a number >= 0, got {run_opts.report_top_cases}")
    formats = _formats(run_opts.export_formats)
    from av_pipeline.mining import load_campaign

    load_campaign(opts.campaign)  # refuse a bad campaign before anything runs
    reader_options = parse_reader_options(opts.reader_option)
    modules = list(opts.reader_module)
    import_reader_modules(modules)
    out = opts.out
    expand = ExpandLogs(options.view_as(IngestOptions).logs)
    listed = pipeline | "ExpandLogs" >> expand | "ListFrames" >> ListFrames(opts.reader, reader_options, modules, opts.progress_interval_s)
    ingested = listed["refs"] | "Ingest" >> beam.ParDo(IngestFn(reader_options, modules, opts.progress_interval_s)).with_outputs(DEAD_LETTER_TAG, main="frames")
    _ = ingested.frames | "IndexRows" >> beam.Map(lambda kv: kv[1]) | "WriteIndex" >> WriteIndex(FileSystems.join(out, "ingest"))
    contexts = (
        ingested.frames
        | "KeyIndexByLog" >> beam.Map(lambda kv: (kv[0].log_id, kv))
        | "GroupIndex" >> beam.GroupByKey()
        | "LogContexts" >> beam.Map(log_context)
    )
    context_side = beam.pvalue.AsDict(contexts)
    fused = (
        ingested.frames
        | "Refs" >> beam.Map(lambda kv: kv[0])
        | "FuseAndVoxelize" >> beam.ParDo(FuseFn(out, reader_options, modules, opts.progress_interval_s), contexts=context_side).with_outputs(
            DEAD_LETTER_TAG, PRODUCTS_TAG, DRIFT_TAG, FIGURES_TAG, main="points"
        )
    )
    drift = fused[DRIFT_TAG] | "GroupDriftScores" >> beam.GroupByKey() | "DriftVerdicts" >> beam.Map(drift_verdict)
    detected = fused.points | "Detect" >> RunInference(KeyedModelHandler(DetectorModelHandler(model.weights, model.device, model.batch_size)))
    refined = (
        detected
        | "KeyDetectionsByLog" >> beam.Map(lambda kv: (kv[0][0].log_id, kv))
        | "GroupDetections" >> beam.GroupByKey()
        | "Refine" >> beam.ParDo(mine_job._RefineFn(out, model.weights or "cpu_small"))  # noqa: SLF001 - shared with the mining job
    )
    evidence = refined | "Evidence" >> beam.ParDo(mine_job._EvidenceFn(reader_options, modules)).with_outputs(DEAD_LETTER_TAG, main="frames")  # noqa: SLF001
    mined = (
        evidence.frames
        | "GroupEvidence" >> beam.GroupByKey()
        | "MineLog" >> beam.ParDo(mine_job._MineLogFn(opts.campaign)).with_outputs(DEAD_LETTER_TAG, main="logs")  # noqa: SLF001
    )
    selected = (
        mined.logs
        | "AllLogs" >> beam.combiners.ToList()
        | "SelectCases" >> beam.ParDo(mine_job.SelectCasesFn(out, opts.campaign, METRICS_NAMESPACE)).with_outputs(mine_job.SelectCasesFn.MINING_TAG, main="cases")
    )
    exported = (
        selected.cases
        | "SpreadCases" >> beam.Reshuffle()
        | "ExportCases" >> beam.ParDo(ExportCaseFn(out, FileSystems.join(out, DATASETS_DIR), formats, reader_options, modules), contexts=context_side)
        .with_outputs(DEAD_LETTER_TAG, main="cases")
    )  # fmt: skip
    dead = (listed[DEAD_LETTER_TAG], ingested[DEAD_LETTER_TAG], fused[DEAD_LETTER_TAG], evidence[DEAD_LETTER_TAG], mined[DEAD_LETTER_TAG], exported[DEAD_LETTER_TAG])
    all_dead = dead | "CollectDeadLetters" >> beam.Flatten()
    listed_count = listed["refs"] | "CountListed" >> beam.combiners.Count.Globally()
    _ = (
        exported.cases
        | "AllExported" >> beam.combiners.ToList()
        | "Finalize" >> beam.ParDo(
            _FinalizeFn(out, opts.campaign, runner, run_opts.report_top_cases),
            listed=beam.pvalue.AsSingleton(listed_count),
            dead=beam.pvalue.AsList(all_dead),
            mining=beam.pvalue.AsSingleton(selected[mine_job.SelectCasesFn.MINING_TAG]),
            products=beam.pvalue.AsList(fused[PRODUCTS_TAG]),
            drift=beam.pvalue.AsList(drift),
            figures=beam.pvalue.AsList(fused[FIGURES_TAG]),
            contexts=context_side,
        )
    )
    return expand.uris


@dataclass(frozen=True)
class RunSummary:
    """What the main job did (``summary.json`` holds these and more: fusion numbers, drift checks)."""

    out: str
    runner: str
    campaign: str
    logs: int
    frames_listed: int
    frames_mined: int
    frames_dead_lettered: int
    logs_dead_lettered: int
    cases: int
    cases_exported: int
    cases_dead_lettered: int
    events: int
    elapsed_s: float
    report: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return dict(self.__dict__)


def _describe(counters: Mapping[str, int]) -> str:
    return (
        f"{counters.get('frames_indexed', 0)} frames indexed, {counters.get('frames_fused', 0)} fused, "
        f"{counters.get('cases_exported', 0)} cases exported"
    )


def run(argv: Sequence[str] | None = None) -> RunSummary:
    """Run the main job with command-line style arguments; no ``--logs``: the bundled synthetic log.

    Raises:
        ConfigError: bad options or campaign, earlier results without ``--overwrite``.
        JobAccountingError: frames listed != mined + dead-lettered (a bug).
        JobFailedError: the runner did not finish the job.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    unknown = unknown_pipeline_args(args)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; see python -m beam_jobs.run --help")
    if not any(a == "--logs" or a.startswith("--logs=") for a in args):
        from av_pipeline.synthetic import bundled_log

        args.append(f"--logs={bundled_log().mcap}")
    options = PipelineOptions(args)
    opts = options.view_as(mine_job.MineOptions)
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    uris = build_pipeline(pipeline, options, runner)
    prepare_output_dir(opts.out, RUN_OUTPUTS, opts.overwrite)
    PROGRESS_LOGGER.info("run: %d logs, campaign %s -> %s (runner %s)", len(uris), opts.campaign, opts.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(result, METRICS_NAMESPACE, _describe, opts.progress_interval_s)
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the main pipeline on {runner} ended in state {state}, not DONE")
    elapsed = round(time.monotonic() - start, 2)
    summary_path = FileSystems.join(opts.out, SUMMARY_FILE)
    document = _read_json(summary_path)
    document["elapsed_s"] = elapsed
    write_json(summary_path, document)
    counters = {**(counter_values(result, INGEST_NAMESPACE) or {}), **(counter_values(result, mine_job.METRICS_NAMESPACE) or {})}
    listed = int(counters.get("frames_listed", document["frames_listed"]))
    report = FileSystems.join(opts.out, REPORT_DIR, "index.html")
    summary = RunSummary(
        out=opts.out, runner=runner, campaign=opts.campaign, logs=len(uris), frames_listed=listed,
        frames_mined=int(document["frames_mined"]), frames_dead_lettered=int(document["frames_dead_lettered"]),
        logs_dead_lettered=int(document["logs_dead_lettered"]), cases=int(document["cases"]), cases_exported=int(document["cases_exported"]),
        cases_dead_lettered=int(document["cases_dead_lettered"]), events=int(document["events"]), elapsed_s=elapsed,
        report=report if FileSystems.exists(report) else None,
    )  # fmt: skip
    if summary.frames_listed != summary.frames_mined + summary.frames_dead_lettered:
        raise JobAccountingError(
            f"the main job lost frames (a bug): listed {summary.frames_listed} != mined {summary.frames_mined} + dead-lettered {summary.frames_dead_lettered}"
        )
    return summary


def _read_json(path: str) -> dict[str, Any]:
    import json

    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def print_summary(summary: RunSummary, file: Any = None) -> None:
    """Human-readable lines of a finished run."""
    file = file or sys.stdout
    print(
        f"{summary.frames_mined} of {summary.frames_listed} frames mined in {summary.logs} log(s) with campaign {summary.campaign}: "
        f"{summary.events} events, {summary.cases} cases, {summary.cases_exported} exported; dead letters: {summary.frames_dead_lettered} frames, "
        f"{summary.logs_dead_lettered} logs, {summary.cases_dead_lettered} cases; {summary.elapsed_s:.1f} s on {summary.runner}",
        file=file,
    )
    print(f"  datasets: {FileSystems.join(summary.out, DATASETS_DIR)}/ (manifest.json)", file=file)
    if summary.report:
        print(f"  report:   {summary.report}", file=file)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beam_jobs.run``; returns an exit code (see ``beam_jobs.common.EXIT_CODES``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print((__doc__ or "").strip())
        return 0
    try:
        summary = run(args)
    except AVPipelineError as exc:
        print(f"python -m beam_jobs.run: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
