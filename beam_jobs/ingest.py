"""The ingest job: drive logs -> a Parquet frame index + dead letters.

Steps (stable labels)::

    ExpandLogs         log paths / globs -> log uris       (expanded before the pipeline starts)
    ListFrames         log uri -> FrameRefs in time order   dead letters: list, entry, order
    LoadAndValidate    FrameRef -> frame-index row          dead letters: load, validate
    UniqueLogIds       rows of logs sharing a log id get disambiguated ids
    WriteIndex         rows -> {out}/index/frames-SSSSS-of-NNNNN.parquet
    WriteDeadLetters   -> {out}/dead_letters/dead_letters-SSSSS-of-NNNNN.jsonl

At the end the job reads its counters (namespace :data:`METRICS_NAMESPACE`), checks that
every listed frame was indexed or dead-lettered and that the files hold those numbers,
writes ``{out}/summary.json`` and prints a summary. Whatever one log contains, the job
writes all three outputs: a record that fails anywhere is a dead letter, and every index
row was checked against the Parquet schema before the write.

Run it with::

    python -m beam_jobs.ingest --logs 'drives/*.mcap' --out out/ingest
    python -m beam_jobs.ingest --logs kitti/training --out out/ingest \\
        --direct_num_workers 2 --direct_running_mode multi_processing
    python -m beam_jobs.ingest --help

or ``avp ingest``. Unknown options are refused (exit code 2). Exit codes:
:data:`beam_jobs.common.EXIT_CODES`. See docs/running.md for cluster runners and the
output schemas.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import AVPipelineError, ConfigError
from av_pipeline.ingest import (
    disambiguate_log_ids,
    display_text,
    expand_log_patterns,
    frame_index_row,
    import_reader_modules,
    index_schema,
    parse_reader_options,
)
from av_pipeline.readers import available_readers, open_log
from av_pipeline.readers.base import LogReader
from av_pipeline.records import FrameRef
from av_pipeline.validate import split_out_of_order
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    EXIT_CODES,
    PROGRESS_LOGGER,
    ReaderCache,
    DeadLetterThresholdError,
    JobAccountingError,
    JobFailedError,
    LogReaderOptions,
    OutputOptions,
    ProgressLog,
    WriteDeadLetters,
    count_parquet_rows,
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

#: Metrics namespace of the ingest counters.
METRICS_NAMESPACE = "avp.ingest"
#: Dead-letter stages of this job, in pipeline order: ``list`` is per log (it cannot be
#: opened or listed), ``entry`` per file or row that a listed log could not turn into a frame
#: (e.g. a KITTI sample file with a non-numeric id), the rest per listed frame.
STAGES = ("list", "entry", "order", "load", "validate")
#: Tag of ListFrames' ``(log_id, log_uri)`` output (feeds :class:`UniqueLogIds`).
LOG_IDS_TAG = "log_ids"
#: Output files relative to ``--out``.
INDEX_GLOB = "index/frames-*.parquet"
DEAD_LETTERS_GLOB = "dead_letters/dead_letters-*.jsonl"
SUMMARY_FILE = "summary.json"
#: One JSON object ``{"log_id | log_uri": new log id}`` for logs whose ids collided (``{}`` when none).
LOG_IDS_RENAMED_FILE = "log_ids_renamed.json"


class IngestOptions(OutputOptions, LogReaderOptions, PipelineOptions):
    """Ingest options: ``--logs`` plus :class:`OutputOptions` (``--out``, ``--overwrite``,
    ``--progress_interval_s``) and :class:`LogReaderOptions` (``--reader``,
    ``--reader_option``, ``--reader_module``). Runner options pass through to Beam.

    ``PipelineOptions`` is a direct base on purpose: Beam collects the options it forwards
    to the runner from its direct subclasses only.
    """

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--logs",
            action="append",
            default=[],
            metavar="PATH_OR_GLOB",
            help="drive log file or directory, or a glob (quote it); repeatable",
        )
        parser.add_argument(
            "--max_dead_letter_fraction",
            type=float,
            default=None,
            metavar="FRACTION",
            help="fail (exit code 3, after writing every output) when dead letters exceed this fraction of the input "
            "(frames listed + logs and entries that could not be listed); default: fail only when nothing was indexed",
        )


class ExpandLogs(beam.PTransform):
    """Log paths and globs -> a PCollection of absolute log uris (str).

    The patterns are expanded when the transform is built, so a pattern that matches
    nothing fails before the pipeline starts; :attr:`uris` holds the result.

    Raises:
        ConfigError: no pattern, or a pattern matching nothing.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        super().__init__()
        self.uris = expand_log_patterns(patterns)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        # As file-system bytes: Beam's str coder is UTF-8 and a file name need not be.
        return pbegin | "CreateLogUris" >> beam.Create([os.fsencode(uri) for uri in self.uris])


class _ListFramesFn(beam.DoFn):
    """log uri -> FrameRefs of the frames in time order; failures -> dead letters."""

    def __init__(self, reader: str | None, reader_options: dict[str, Any], reader_modules: Sequence[str], progress_interval_s: float) -> None:
        self._reader = reader
        self._reader_options = dict(reader_options)
        self._reader_modules = tuple(reader_modules)
        self._progress_interval_s = progress_interval_s
        self.logs_listed = Metrics.counter(METRICS_NAMESPACE, "logs_listed")
        self.logs_dead_lettered = Metrics.counter(METRICS_NAMESPACE, "logs_dead_lettered_list")
        self.frames_listed = Metrics.counter(METRICS_NAMESPACE, "frames_listed")
        self.frames_out_of_order = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_order")
        self.entries_dead_lettered = Metrics.counter(METRICS_NAMESPACE, "entries_dead_lettered_entry")

    def setup(self) -> None:
        import_reader_modules(self._reader_modules)
        self._progress = ProgressLog("ListFrames", "logs", self._progress_interval_s)

    def process(self, log_uri: str | bytes) -> Iterator[Any]:
        log_uri = os.fsdecode(log_uri)
        try:
            with open_log(log_uri, self._reader, **self._reader_options) as reader:
                refs = reader.list_frames()
                skipped = list(getattr(reader, "skipped_entries", lambda: [])())
        except Exception as exc:  # noqa: BLE001 - any failure of one log becomes its dead letter
            self.logs_dead_lettered.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("list", exc, log_uri=log_uri))
            return
        self.logs_listed.inc()
        self.frames_listed.inc(len(refs))
        self._progress.tick()
        for error in skipped:
            self.entries_dead_lettered.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("entry", error, log_uri=log_uri, log_id=refs[0].log_id if refs else None))
        for log_id in dict.fromkeys(ref.log_id for ref in refs):
            yield beam.pvalue.TaggedOutput(LOG_IDS_TAG, (display_text(log_id), display_text(log_uri)))
        in_order, out_of_order = split_out_of_order(refs)
        for ref, error in out_of_order:
            self.frames_out_of_order.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, _frame_dead_letter("order", error, ref))
        yield from in_order


class ListFrames(beam.PTransform):
    """log uris -> ``{"refs": FrameRef PCollection, "dead_letters": dict PCollection}``.

    Each log is opened (``open_log``; ``reader`` forces one) and listed; a log that cannot
    be opened or listed is one dead letter with stage ``list`` (key: the log uri). Files or
    rows the reader skipped while listing (``LogReader.skipped_entries``) are dead letters
    with stage ``entry``. Frames whose timestamps do not increase within their log are
    dead-lettered with stage ``order``. The refs are redistributed so that one log's frames
    load on many workers. Also returns ``"log_ids"``: ``(log_id, log_uri)`` of each listed log.
    """

    def __init__(
        self,
        reader: str | None = None,
        reader_options: dict[str, Any] | None = None,
        reader_modules: Sequence[str] = (),
        progress_interval_s: float = 10.0,
    ) -> None:
        super().__init__()
        self._fn = _ListFramesFn(reader, reader_options or {}, reader_modules, progress_interval_s)

    def expand(self, log_uris: beam.PCollection) -> dict[str, beam.PCollection]:
        listed = log_uris | "OpenAndList" >> beam.ParDo(self._fn).with_outputs(DEAD_LETTER_TAG, LOG_IDS_TAG, main="refs")
        refs = listed.refs | "Redistribute" >> beam.Reshuffle()
        return {"refs": refs, DEAD_LETTER_TAG: listed[DEAD_LETTER_TAG], LOG_IDS_TAG: listed[LOG_IDS_TAG]}


class _LoadAndValidateFn(ReaderCache, beam.DoFn):
    """FrameRef -> frame-index row; failures -> dead letters. Readers: :class:`~beam_jobs.common.ReaderCache`."""

    def __init__(self, reader_options: dict[str, Any], reader_modules: Sequence[str], progress_interval_s: float, max_open_logs: int) -> None:
        ReaderCache.__init__(self, reader_options, reader_modules, max_open_logs)
        self._progress_interval_s = progress_interval_s
        self.frames_indexed = Metrics.counter(METRICS_NAMESPACE, "frames_indexed")
        self.frames_load_failed = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_load")
        self.frames_invalid = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_validate")
        self.logs_opened = Metrics.counter(METRICS_NAMESPACE, "reader_opens")

    def setup(self) -> None:
        ReaderCache.setup(self)
        self._progress = ProgressLog("LoadAndValidate", "frames", self._progress_interval_s)

    def on_open(self) -> None:
        self.logs_opened.inc()

    def process(self, ref: FrameRef) -> Iterator[Any]:
        self._progress.tick()
        try:
            frame = self.reader(ref).load_frame(ref)
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops the job
            self.frames_load_failed.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, _frame_dead_letter("load", exc, ref))
            return
        try:
            row = frame_index_row(ref, frame)
        except Exception as exc:  # noqa: BLE001
            self.frames_invalid.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, _frame_dead_letter("validate", exc, ref))
            return
        self.frames_indexed.inc()
        yield row


class LoadAndValidate(beam.PTransform):
    """FrameRefs -> ``{"rows": index-row PCollection, "dead_letters": dict PCollection}``.

    Loads each frame with its log's reader (cached per worker), validates it
    (:func:`av_pipeline.validate.validate_frame`: finite, non-empty sweeps; images decode
    once, at their calibrated size; pose finite) and describes it as a frame-index row
    (:data:`av_pipeline.ingest.INDEX_COLUMNS`). Stage ``load``: the reader failed;
    stage ``validate``: the frame loaded but breaks a rule.
    """

    def __init__(
        self,
        reader_options: dict[str, Any] | None = None,
        reader_modules: Sequence[str] = (),
        progress_interval_s: float = 10.0,
        max_open_logs: int = 16,
    ) -> None:
        super().__init__()
        self._fn = _LoadAndValidateFn(reader_options or {}, reader_modules, progress_interval_s, max_open_logs)

    def expand(self, refs: beam.PCollection) -> dict[str, beam.PCollection]:
        loaded = refs | "LoadFrame" >> beam.ParDo(self._fn).with_outputs(DEAD_LETTER_TAG, main="rows")
        return {"rows": loaded.rows, DEAD_LETTER_TAG: loaded[DEAD_LETTER_TAG]}


class _RenameLogIdsFn(beam.DoFn):
    """Index row -> the row with its disambiguated log id (when its log shares its id)."""

    def __init__(self) -> None:
        self.rows_renamed = Metrics.counter(METRICS_NAMESPACE, "rows_with_renamed_log_id")

    def process(self, row: dict[str, Any], renamed: dict[tuple[str, str], str]) -> Iterator[dict[str, Any]]:
        new_id = renamed.get((row["log_id"], row["log_uri"]))
        if new_id is not None:
            self.rows_renamed.inc()
            row = {**row, "log_id": new_id}
        yield row


class UniqueLogIds(beam.PTransform):
    """Index rows -> the same rows with log ids unique per job (``(log_id, timestamp_ns)`` keys stay unique).

    Input: ``{"rows": ..., "log_ids": (log_id, log_uri) pairs}``. When two logs share a log
    id (``a/drive.mcap`` and ``b/drive.mcap`` are both ``drive``), their rows get
    :func:`~av_pipeline.ingest.disambiguate_log_ids` ids (``drive@a/drive.mcap``); the
    mapping goes to ``{out}/summary.json`` (``log_ids_renamed``). Output: the rows, and
    ``"renamed"``: one dict ``{"log_id | log_uri": new id}``.
    """

    def expand(self, inputs: dict[str, beam.PCollection]) -> dict[str, beam.PCollection]:
        pairs = inputs[LOG_IDS_TAG] | "DistinctLogIds" >> beam.Distinct()
        renamed = pairs | "FindCollisions" >> beam.combiners.ToList() | "Disambiguate" >> beam.Map(disambiguate_log_ids)
        rows = inputs["rows"] | "Rename" >> beam.ParDo(_RenameLogIdsFn(), beam.pvalue.AsSingleton(renamed))
        readable = renamed | "Describe" >> beam.Map(lambda mapping: {f"{k[0]} | {k[1]}": v for k, v in sorted(mapping.items())})
        return {"rows": rows, "renamed": readable}


class WriteIndex(beam.PTransform):
    """Frame-index rows -> ``{out}/index/frames-SSSSS-of-NNNNN.parquet`` (schema: ``index_schema()``).

    Always writes at least one (possibly empty) shard; read the whole directory, e.g.
    ``pyarrow.parquet.read_table(f"{out}/index")``.
    """

    def __init__(self, out: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(out, "index", "frames")

    def expand(self, rows: beam.PCollection) -> beam.pvalue.PDone:
        return rows | "WriteParquet" >> beam.io.WriteToParquet(self._prefix, index_schema(), file_name_suffix=".parquet", codec="snappy")


def _frame_dead_letter(stage: str, error: BaseException, ref: FrameRef) -> dict[str, Any]:
    return dead_letter(stage, error, log_uri=ref.log_uri, log_id=ref.log_id, frame_index=ref.index, timestamp_ns=ref.timestamp_ns)


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest run did, from its counters and its output files.

    Attributes:
        out: the output directory.
        runner: the Beam runner used.
        logs_in: logs the patterns expanded to.
        logs_listed: logs opened and listed.
        frames_listed: frames the listed logs hold (frames in).
        frames_indexed: frames written to the index.
        dead_lettered: stage -> dead letters (``list`` counts logs, the others frames).
        index_rows_in_files: rows found in the index files.
        dead_letters_in_files: records found in the dead-letter files.
        dead_letter_types: ``"stage/ErrorType[/check]"`` -> count, from the files.
        unexpected_errors: dead letters whose exception was not an intended input error.
        elapsed_s: wall time of the pipeline run.
        log_ids_renamed: ``"log_id | log_uri"`` -> new id, for logs that shared a log id.
        max_dead_letter_fraction: the threshold asked for (``None``: fail only when nothing
            was indexed).
    """

    out: str
    runner: str
    logs_in: int
    logs_listed: int
    frames_listed: int
    frames_indexed: int
    dead_lettered: dict[str, int]
    index_rows_in_files: int
    dead_letters_in_files: int
    dead_letter_types: dict[str, int] = field(default_factory=dict)
    unexpected_errors: int = 0
    elapsed_s: float = 0.0
    log_ids_renamed: dict[str, str] = field(default_factory=dict)
    max_dead_letter_fraction: float | None = None

    @property
    def frames_dead_lettered(self) -> int:
        """Frames dead-lettered after listing (stages order, load, validate)."""
        return sum(count for stage, count in self.dead_lettered.items() if stage not in ("list", "entry"))

    @property
    def dead_letter_fraction(self) -> float:
        """Dead letters / input units, where the input is every listed frame plus every log
        (stage ``list``) and entry (stage ``entry``) that could not be listed; 0 without input."""
        units = self.frames_listed + self.dead_lettered.get("list", 0) + self.dead_lettered.get("entry", 0)
        return sum(self.dead_lettered.values()) / units if units else 0.0

    def threshold_problem(self) -> str | None:
        """Why the run counts as failed (exit code 3), or ``None``.

        Without ``max_dead_letter_fraction``: nothing was indexed. With it: the dead-letter
        fraction is above it (``0`` allows no dead letter at all).
        """
        if self.max_dead_letter_fraction is None:
            if self.frames_indexed == 0:
                return f"nothing was indexed ({sum(self.dead_lettered.values())} dead letters from {self.logs_in} logs)"
            return None
        if self.dead_letter_fraction > self.max_dead_letter_fraction:
            return (
                f"dead letters are {self.dead_letter_fraction:.1%} of the input, more than "
                f"--max_dead_letter_fraction {self.max_dead_letter_fraction:g}"
            )
        return None

    def accounting_errors(self) -> list[str]:
        """Broken invariants, as readable equations; empty when the books balance."""
        problems = []
        logs_failed = self.dead_lettered.get("list", 0)
        if self.logs_in != self.logs_listed + logs_failed:
            problems.append(f"logs in {self.logs_in} != listed {self.logs_listed} + dead-lettered {logs_failed}")
        if self.frames_listed != self.frames_indexed + self.frames_dead_lettered:
            problems.append(f"frames in {self.frames_listed} != indexed {self.frames_indexed} + dead-lettered {self.frames_dead_lettered}")
        if self.index_rows_in_files != self.frames_indexed:
            problems.append(f"index files hold {self.index_rows_in_files} rows, counters say {self.frames_indexed} indexed")
        if self.dead_letters_in_files != sum(self.dead_lettered.values()):
            problems.append(f"dead-letter files hold {self.dead_letters_in_files} records, counters say {sum(self.dead_lettered.values())}")
        return problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``summary.json`` holds)."""
        problem = self.threshold_problem()
        return {
            **asdict(self),
            "frames_dead_lettered": self.frames_dead_lettered,
            "dead_letter_fraction": round(self.dead_letter_fraction, 6),
            "status": "ok" if problem is None else "too_many_dead_letters",
            "status_reason": problem,
        }


def _describe_progress(counters: dict[str, int]) -> str:
    done = counters.get("frames_indexed", 0) + sum(counters.get(f"frames_dead_lettered_{s}", 0) for s in STAGES[2:])
    return f"ingest: {done} of {counters.get('frames_listed', 0)} listed frames done ({counters.get('frames_indexed', 0)} indexed)"


def _summarize(
    result: Any, out: str, runner: str, logs_in: int, elapsed_s: float, max_fraction: float | None = None
) -> IngestSummary:
    counters = counter_values(result, METRICS_NAMESPACE)
    if counters is None:
        raise JobAccountingError(f"runner {runner} reported no metrics; cannot check that frames in = indexed + dead-lettered")
    dead_letters = read_json_lines(FileSystems.join(out, DEAD_LETTERS_GLOB))
    types = collections.Counter(
        "/".join(part for part in (letter["stage"], letter["error_type"], letter.get("check")) if part) for letter in dead_letters
    )
    return IngestSummary(
        out=out,
        runner=runner,
        logs_in=logs_in,
        logs_listed=counters.get("logs_listed", 0),
        frames_listed=counters.get("frames_listed", 0),
        frames_indexed=counters.get("frames_indexed", 0),
        dead_lettered={stage: counters.get(f"{_COUNTER_UNIT.get(stage, 'frames')}_dead_lettered_{stage}", 0) for stage in STAGES},
        index_rows_in_files=count_parquet_rows(FileSystems.join(out, INDEX_GLOB)),
        dead_letters_in_files=len(dead_letters),
        dead_letter_types=dict(sorted(types.items())),
        unexpected_errors=sum(not letter["expected"] for letter in dead_letters),
        elapsed_s=round(elapsed_s, 3),
        log_ids_renamed=_read_renamed(out),
        max_dead_letter_fraction=max_fraction,
    )


_COUNTER_UNIT = {"list": "logs", "entry": "entries"}


def _read_renamed(out: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for record in read_json_lines(FileSystems.join(out, LOG_IDS_RENAMED_FILE)):
        mapping.update(record)
    return mapping


def print_summary(summary: IngestSummary, file: Any = None) -> None:
    """Print a run's summary as a table (rich) to ``file`` (default stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, highlight=False)
    console.print(f"ingest -> {summary.out} ({summary.runner}, {summary.elapsed_s:.1f} s)")
    table = Table(show_header=True)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("logs in", str(summary.logs_in))
    table.add_row("logs dead-lettered (list)", str(summary.dead_lettered.get("list", 0)))
    table.add_row("entries dead-lettered (entry)", str(summary.dead_lettered.get("entry", 0)))
    table.add_row("frames in (listed)", str(summary.frames_listed))
    table.add_row("frames indexed", str(summary.frames_indexed))
    for stage in STAGES[2:]:
        table.add_row(f"frames dead-lettered ({stage})", str(summary.dead_lettered.get(stage, 0)))
    console.print(table)
    for key, new_id in summary.log_ids_renamed.items():
        console.print(f"  log id shared by several logs: {key} -> {new_id}")
    for kind, count in summary.dead_letter_types.items():
        console.print(f"  dead letters {kind}: {count}")
    if summary.unexpected_errors:
        console.print(f"  [bold]{summary.unexpected_errors} dead letters are unexpected exceptions (expected=false): likely reader bugs[/bold]")
    if summary.dead_letters_in_files:
        console.print(f"  details: {FileSystems.join(summary.out, 'dead_letters')}/*.jsonl")
    problem = summary.threshold_problem()
    if problem:
        console.print(f"  [bold]FAILED: {problem}[/bold]")


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> list[str]:
    """Add the ingest steps to ``pipeline``; return the expanded log uris.

    Raises:
        ConfigError: bad ``--logs`` / ``--out`` / ``--reader`` / ``--reader_option`` values.
    """
    ingest = options.view_as(IngestOptions)
    if not ingest.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    fraction = ingest.max_dead_letter_fraction
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"max_dead_letter_fraction: expected a fraction in [0, 1], got {fraction}")
    reader_options = parse_reader_options(ingest.reader_option)
    import_reader_modules(ingest.reader_module)
    if ingest.reader is not None and ingest.reader not in available_readers():
        raise ConfigError(f"reader: expected one of {available_readers()}, got {ingest.reader!r}")
    expand_logs = ExpandLogs(ingest.logs)
    log_uris = pipeline | "ExpandLogs" >> expand_logs
    listed = log_uris | "ListFrames" >> ListFrames(ingest.reader, reader_options, ingest.reader_module, ingest.progress_interval_s)
    loaded = listed["refs"] | "LoadAndValidate" >> LoadAndValidate(reader_options, ingest.reader_module, ingest.progress_interval_s)
    unique = {"rows": loaded["rows"], LOG_IDS_TAG: listed[LOG_IDS_TAG]} | "UniqueLogIds" >> UniqueLogIds()
    _ = unique["rows"] | "WriteIndex" >> WriteIndex(ingest.out)
    _ = (
        unique["renamed"]
        | "RenamedToJson" >> beam.Map(json.dumps, sort_keys=True)
        | "WriteRenamed" >> beam.io.WriteToText(FileSystems.join(ingest.out, LOG_IDS_RENAMED_FILE), shard_name_template="")
    )
    _ = (listed[DEAD_LETTER_TAG], loaded[DEAD_LETTER_TAG]) | "CollectDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(
        ingest.out
    )
    return expand_logs.uris


def run(argv: Sequence[str] | None = None, *, show_summary: bool = True) -> IngestSummary:
    """Run the ingest job with command-line style arguments (see :class:`IngestOptions`).

    Runner options go to Beam; an argument that no Beam or product option class declares
    is refused. Without ``--runner`` (or with ``DirectRunner``) the job runs on Beam's local
    FnApiRunner, in this process or in ``--direct_num_workers`` processes (see
    :func:`beam_jobs.common.create_pipeline`).

    Returns:
        The run's summary (also written to ``{out}/summary.json``).

    Raises:
        ConfigError: bad or unknown options, a glob that matches nothing, or earlier results
            in ``--out`` without ``--overwrite`` (all before the pipeline starts).
        DeadLetterThresholdError: the job finished and wrote every output, but dead-lettered
            more than ``--max_dead_letter_fraction`` of its input (default: indexed nothing).
        JobAccountingError: frames in != indexed + dead-lettered, or the files disagree
            with the counters (a bug, never bad input).
        JobFailedError: an asynchronous runner reports the job failed or was cancelled.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    unknown = unknown_pipeline_args(args)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}{_did_you_mean(unknown)}; see python -m beam_jobs.ingest --help")
    options = PipelineOptions(args)
    ingest = options.view_as(IngestOptions)
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    log_uris = build_pipeline(pipeline, options)
    prepare_output_dir(ingest.out, [INDEX_GLOB, DEAD_LETTERS_GLOB, SUMMARY_FILE, LOG_IDS_RENAMED_FILE], ingest.overwrite)
    PROGRESS_LOGGER.info("ingest: %d logs -> %s (runner %s)", len(log_uris), ingest.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(result, METRICS_NAMESPACE, _describe_progress, ingest.progress_interval_s)
    elapsed_s = time.monotonic() - start
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the ingest pipeline on {runner} ended in state {state}, not DONE; see the runner's logs")
    summary = _summarize(result, ingest.out, runner, len(log_uris), elapsed_s, ingest.max_dead_letter_fraction)
    write_json(FileSystems.join(ingest.out, SUMMARY_FILE), summary.to_json())
    if show_summary:
        print_summary(summary)
    problems = summary.accounting_errors()
    if problems:
        raise JobAccountingError("ingest lost track of records (a bug): " + "; ".join(problems))
    problem = summary.threshold_problem()
    if problem:
        raise DeadLetterThresholdError(f"ingest -> {ingest.out}: {problem}; the index, dead letters and summary.json are written", summary)
    return summary


def _did_you_mean(unknown: Sequence[str]) -> str:
    import argparse
    import difflib

    parser = argparse.ArgumentParser(add_help=False)
    for cls in (IngestOptions, OutputOptions, LogReaderOptions):
        cls._add_argparse_args(parser)  # noqa: SLF001
    known = [opt for action in parser._actions for opt in action.option_strings]  # noqa: SLF001
    hints = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hints.append(f"{name} -> {close[0]}")
    return f" (did you mean: {', '.join(hints)}?)" if hints else ""


def build_arg_parser() -> Any:
    """The ``python -m beam_jobs.ingest`` parser: the job's options, declared the Beam way.

    Each ``PipelineOptions`` class adds its own arguments (``_add_argparse_args``), so
    ``--help`` lists exactly what :class:`IngestOptions` reads; the local runner's options
    are listed too. Other Beam runner options (Dataflow, Flink, Spark) are accepted as Beam
    documents them; anything else is refused.
    """
    import argparse

    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m beam_jobs.ingest",
        description=doc.split("Run it with::")[0].strip(),
        epilog="exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
        + "\n\nOther Beam pipeline options (--runner=DataflowRunner --project ..., FlinkRunner, SparkRunner) pass to Beam; "
        "see docs/running.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    job = parser.add_argument_group("ingest options (IngestOptions)")
    IngestOptions._add_argparse_args(job)  # noqa: SLF001 - the Beam way to declare options
    OutputOptions._add_argparse_args(parser.add_argument_group("output (OutputOptions)"))  # noqa: SLF001
    LogReaderOptions._add_argparse_args(parser.add_argument_group("log readers (LogReaderOptions)"))  # noqa: SLF001
    runner = parser.add_argument_group("local runner (Beam StandardOptions / DirectOptions; more in Beam's docs)")
    StandardOptions._add_argparse_args(runner)  # noqa: SLF001
    DirectOptions._add_argparse_args(runner)  # noqa: SLF001
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beam_jobs.ingest``: run the job; return an :data:`~beam_jobs.common.EXIT_CODES` code."""
    args = list(argv) if argv is not None else sys.argv[1:]
    parser = build_arg_parser()
    if any(arg in ("-h", "--help") for arg in args):
        parser.print_help()
        return 0
    unknown = unknown_pipeline_args(args)
    if unknown:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: unknown option(s) {unknown}{_did_you_mean(unknown)}", file=sys.stderr)
        return 2
    try:
        run(args)
    except AVPipelineError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
