"""The main job: drive logs -> frame index, fusion and voxels, pre-labels, mined cases,
edge-case datasets and the mining report, as one Beam pipeline (``avp run``, ``make demo``).

Steps (stable labels; DoFns in :mod:`beam_jobs.run_steps`); options and
output folder in :mod:`beam_jobs.run_config`, the summary in :mod:`beam_jobs.run_summary`::

    ExpandLogs -> ListFrames -> Ingest (load + validate; the ingest job's rules) -> WriteIndex
      -> GroupIndex -> LogContexts (per log: pose trajectory, drift-check frames; a side input)
      -> FuseAndVoxelize (de-skew, motion compensation, painting, voxels; drift-check scores;
         pictures of one frame per log) -> Detect (RunInference, the detector's ModelHandler)
      -> GroupDetections -> Refine (tracks over the log; pre-labels written)
      -> SpreadRefined -> Evidence -> GroupEvidence -> MineLog -> SelectCases (the campaign's budget)
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
import os
import sys
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import AVPipelineError
from beam_jobs import mine as mine_job
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    PROGRESS_LOGGER,
    JobFailedError,
    counter_values,
    create_pipeline,
    exit_code_for,
    show_progress_lines,
    wait_with_progress,
)
from beam_jobs.ingest import METRICS_NAMESPACE as INGEST_NAMESPACE
from beam_jobs.ingest import ExpandLogs, ListFrames
from beam_jobs.prelabel import DetectorModelHandler
from beam_jobs.run_config import (  # noqa: F401 - re-exported: the job's public names live here too
    RUN_OUTPUTS,
    RunConfig,
    RunOptions,
    complete_logs,
    job_arguments,
    prepare_run_output,
    resolve_config,
)
from beam_jobs.run_resume import RESUMED_TAGS, checkpoint_record, resumed_outputs, write_checkpoint, write_log_index
from beam_jobs.run_steps import (
    DATASETS_DIR,
    DRIFT_TAG,
    FIGURES_TAG,
    METRICS_NAMESPACE,
    PRODUCTS_TAG,
    ExportCaseFn,
    FinalizeFn,
    FuseFn,
    IngestFn,
    drift_verdict,
    log_context,
)
from beam_jobs.run_summary import RunSummary, finish_run, print_summary  # noqa: F401 - re-exported


def _tag_by_log(element: Any, tag: str) -> tuple[str, tuple[str, Any]]:
    """A per-log result -> ``(log_id, (tag, element))`` (what the checkpoint of its log gathers)."""
    if tag == "context":
        return element[0], (tag, element[1])
    log_id = element.log_id if tag == "refs" else element["log_id"]
    return str(log_id), (tag, element)


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions, runner: str = "", done: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Add the main job's steps to ``pipeline``; return the expanded log uris.

    Args:
        done: checkpoints of complete logs (``--resume``; :func:`beam_jobs.run_resume.read_checkpoints`):
            their frames are listed (and counted) again, but ingest, fusion, detection and
            refinement are skipped: their results come from the checkpoint.

    Every key that goes into a ``GroupByKey`` is a ``str`` or a tuple of them, declared so
    (``StrUtf8Coder``: deterministic on every runner).

    Raises:
        ConfigError: see :func:`resolve_config`.
    """
    config = resolve_config(options)
    done = dict(done or {})
    out, reader_options, modules = config.out, config.reader_options, list(config.reader_modules)
    keyed = Tuple[str, Any]
    expand = ExpandLogs(list(config.logs))
    listed = pipeline | "ExpandLogs" >> expand | "ListFrames" >> ListFrames(config.reader, reader_options, modules, config.progress_interval_s)
    fresh_refs = listed["refs"] | "SkipCompleteLogs" >> beam.Filter(lambda ref, skip: ref.log_id not in skip, frozenset(done))
    ingested = fresh_refs | "Ingest" >> beam.ParDo(IngestFn(reader_options, modules, config.progress_interval_s)).with_outputs(DEAD_LETTER_TAG, main="frames")
    fresh_contexts = (
        ingested.frames
        | "KeyIndexByLog" >> beam.Map(lambda kv: (kv[0].log_id, kv)).with_output_types(keyed)
        | "GroupIndex" >> beam.GroupByKey()
        | "LogContexts" >> beam.ParDo(LogContextFn(out))  # writes ingest/index/<log>.parquet
    )
    resumed = (
        pipeline
        | "CompleteLogs" >> beam.Create(sorted(done.values(), key=lambda r: r["log_id"]))
        | "ReadCheckpoints" >> beam.FlatMap(_tagged_resumed, out).with_outputs(*RESUMED_TAGS)
    )
    contexts = (fresh_contexts, resumed.context) | "AllContexts" >> beam.Flatten()
    context_side = beam.pvalue.AsDict(contexts)
    fused = (
        ingested.frames
        | "Refs" >> beam.Map(lambda kv: kv[0])
        | "FuseAndVoxelize" >> beam.ParDo(FuseFn(out, reader_options, modules, config.progress_interval_s), contexts=beam.pvalue.AsDict(fresh_contexts))
        .with_outputs(DEAD_LETTER_TAG, PRODUCTS_TAG, DRIFT_TAG, FIGURES_TAG, main="points")
    )  # fmt: skip
    fresh_drift = (
        fused[DRIFT_TAG]
        | "KeyDriftScores" >> beam.Map(lambda kv: kv).with_output_types(Tuple[Tuple[str, str], Any])
        | "GroupDriftScores" >> beam.GroupByKey()
        | "DriftVerdicts" >> beam.Map(drift_verdict)
    )
    detected = fused.points | "Detect" >> RunInference(KeyedModelHandler(DetectorModelHandler(config.weights, config.device, config.batch_size)))
    fresh_refined = (
        detected
        | "KeyDetectionsByLog" >> beam.Map(lambda kv: (kv[0][0].log_id, kv)).with_output_types(keyed)
        | "GroupDetections" >> beam.GroupByKey()
        | "Refine" >> beam.ParDo(mine_job._RefineFn(out, config.model_name))  # noqa: SLF001 - shared with the mining job
    )
    frame_dead = (ingested[DEAD_LETTER_TAG], fused[DEAD_LETTER_TAG]) | "FrameDeadLetters" >> beam.Flatten()
    log_results = {
        "context": fresh_contexts,
        "refs": fresh_refined | "RefinedRefs" >> beam.Map(lambda kv: kv[0]),
        "products": fused[PRODUCTS_TAG],
        "drift": fresh_drift,
        "figures": fused[FIGURES_TAG],
        "dead_letters": frame_dead,
    }
    _ = (
        [pcoll | f"Tag{tag.title().replace('_', '')}" >> beam.Map(_tag_by_log, tag).with_output_types(keyed) for tag, pcoll in log_results.items()]
        | "AllLogResults" >> beam.Flatten()
        | "GroupLogResults" >> beam.GroupByKey()
        | "WriteCheckpoints" >> beam.ParDo(WriteCheckpointFn(out))
    )
    refined = (fresh_refined, resumed.refined) | "AllRefined" >> beam.Flatten()
    # Refine emits a whole log's frames from one worker; spread them before Evidence re-reads
    # each frame: a runner that fuses steps (Dataflow, Flink) would run Evidence where Refine
    # ran, and the local multi-process runner splits unevenly past one 10 MB data chunk.
    evidence = (
        refined
        | "SpreadRefined" >> beam.Reshuffle()
        | "Evidence" >> beam.ParDo(mine_job._EvidenceFn(reader_options, modules, config.progress_interval_s)).with_outputs(DEAD_LETTER_TAG, main="frames")  # noqa: SLF001
    )
    mined = (
        evidence.frames
        | "KeyEvidence" >> beam.Map(lambda kv: kv).with_output_types(keyed)
        | "GroupEvidence" >> beam.GroupByKey()
        | "MineLog" >> beam.ParDo(mine_job._MineLogFn(config.campaign)).with_outputs(DEAD_LETTER_TAG, main="logs")  # noqa: SLF001
    )
    selected = (
        mined.logs
        | "AllLogs" >> beam.combiners.ToList()
        | "SelectCases" >> beam.ParDo(mine_job.SelectCasesFn(out, config.campaign, METRICS_NAMESPACE)).with_outputs(mine_job.SelectCasesFn.MINING_TAG, main="cases")
    )
    exported = (
        selected.cases
        | "SpreadCases" >> beam.Reshuffle()
        | "ExportCases" >> beam.ParDo(ExportCaseFn(out, FileSystems.join(out, DATASETS_DIR), config.formats, reader_options, modules), contexts=context_side)
        .with_outputs(DEAD_LETTER_TAG, main="cases")
    )  # fmt: skip
    dead = (listed[DEAD_LETTER_TAG], frame_dead, resumed.dead_letters, evidence[DEAD_LETTER_TAG], mined[DEAD_LETTER_TAG], exported[DEAD_LETTER_TAG])
    all_dead = dead | "CollectDeadLetters" >> beam.Flatten()
    listed_count = listed["refs"] | "CountListed" >> beam.combiners.Count.Globally()
    _ = (
        exported.cases
        | "AllExported" >> beam.combiners.ToList()
        | "Finalize" >> beam.ParDo(
            FinalizeFn(out, config.campaign, runner, config.top_cases),
            listed=beam.pvalue.AsSingleton(listed_count),
            dead=beam.pvalue.AsList(all_dead),
            mining=beam.pvalue.AsSingleton(selected[mine_job.SelectCasesFn.MINING_TAG]),
            products=beam.pvalue.AsList((fused[PRODUCTS_TAG], resumed.products) | "AllProducts" >> beam.Flatten()),
            drift=beam.pvalue.AsList((fresh_drift, resumed.drift) | "AllVerdicts" >> beam.Flatten()),
            figures=beam.pvalue.AsList((fused[FIGURES_TAG], resumed.figures) | "AllFigures" >> beam.Flatten()),
            contexts=context_side,
        )
    )
    return expand.uris


def _tagged_resumed(record: Mapping[str, Any], out: str) -> Iterator[Any]:
    for tag, value in resumed_outputs(out, record):
        yield beam.pvalue.TaggedOutput(tag, value)


class LogContextFn(beam.DoFn):
    """``(log_id, [(ref, index row)...])`` -> ``(log_id, LogContext)``; writes the log's index file."""

    def __init__(self, out: str) -> None:
        self._out = out

    def process(self, element: tuple[str, Iterable[tuple[Any, dict[str, Any]]]]) -> Iterator[tuple[str, Any]]:
        log_id, items = element
        start = time.monotonic()
        items = list(items)
        write_log_index(self._out, log_id, [row for _, row in items])
        context = log_context((log_id, items))
        PROGRESS_LOGGER.info("index: %s: %d frames in %.1f s [worker pid %d]", log_id, len(items), time.monotonic() - start, os.getpid())
        yield context


class WriteCheckpointFn(beam.DoFn):
    """``(log_id, [(tag, result)...])`` (tags: ``context``, ``refs``, ``products``, ``drift``,
    ``figures``, ``dead_letters``) -> the log's checkpoint (:mod:`beam_jobs.run_resume`),
    written after its other per-log files."""

    def __init__(self, out: str) -> None:
        self._out = out

    def process(self, element: tuple[str, Iterable[tuple[str, Any]]]) -> Iterator[str]:
        log_id, tagged = element
        grouped: dict[str, list[Any]] = {}
        for tag, value in tagged:
            grouped.setdefault(tag, []).append(value)
        record = checkpoint_record(log_id, grouped)
        if record is not None:
            yield write_checkpoint(self._out, record)


def _describe(counters: Mapping[str, int]) -> str:
    return (
        f"{counters.get('frames_indexed', 0)} frames indexed, {counters.get('frames_fused', 0)} fused, "
        f"{counters.get('cases_exported', 0)} cases exported"
    )


def run(argv: Sequence[str] | None = None) -> RunSummary:
    """Run the main job with command-line style arguments; no ``--logs``: the bundled synthetic log.

    Raises:
        ConfigError: bad options or campaign, earlier results without ``--overwrite`` / ``--resume``.
        JobAccountingError: frames listed != mined + dead-lettered (a bug).
        JobFailedError: the runner did not finish the job.
    """
    options = PipelineOptions(job_arguments(argv))
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    config = resolve_config(options)
    done = complete_logs(config)
    uris = build_pipeline(pipeline, options, runner, done)
    prepare_run_output(config, done)
    PROGRESS_LOGGER.info("run: %d logs (%d complete, resumed), campaign %s -> %s (runner %s)", len(uris), len(done), config.campaign, config.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(result, METRICS_NAMESPACE, _describe, config.progress_interval_s)
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the main pipeline on {runner} ended in state {state}, not DONE")
    counters = counter_values(result, INGEST_NAMESPACE) or {}
    return finish_run(config, runner, len(uris), round(time.monotonic() - start, 2), counters.get("frames_listed"))


def main(argv: Sequence[str] | None = None, job: Any = None, prog: str = "python -m beam_jobs.run", help_text: str | None = None) -> int:
    """``python -m beam_jobs.run`` (with ``job``, ``prog`` and ``help_text``: the Spark driver's
    entry point too); returns an exit code (see ``beam_jobs.common.EXIT_CODES``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print((help_text or __doc__ or "").strip())
        return 0
    try:
        summary = (job or run)(args)
    except AVPipelineError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())

