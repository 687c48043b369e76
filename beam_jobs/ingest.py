"""The ingest job: drive logs -> a Parquet frame index + dead letters.

Steps (stable labels)::

    ExpandLogs       log paths / globs -> log uris       (expanded before the pipeline starts)
    ListFrames       log uri -> FrameRefs in time order   dead letters: list, order
    LoadAndValidate  FrameRef -> frame-index row          dead letters: load, validate
    WriteIndex       rows -> {out}/index/frames-SSSSS-of-NNNNN.parquet
    WriteDeadLetters -> {out}/dead_letters/dead_letters-SSSSS-of-NNNNN.jsonl

At the end the job reads its counters (namespace :data:`METRICS_NAMESPACE`), checks that
every listed frame was indexed or dead-lettered and that the files hold those numbers,
writes ``{out}/summary.json`` and prints a summary. Run it with::

    python -m beam_jobs.ingest --logs 'drives/*.mcap' --out out/ingest
    python -m beam_jobs.ingest --logs kitti/training --out out/ingest \\
        --direct_num_workers 2 --direct_running_mode multi_processing

or ``avp ingest``. See docs/running.md for cluster runners and the output schemas.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from av_pipeline.errors import ConfigError
from av_pipeline.ingest import expand_log_patterns, frame_index_row, import_reader_modules, index_schema, parse_reader_options
from av_pipeline.readers import available_readers, open_log
from av_pipeline.readers.base import LogReader
from av_pipeline.records import FrameRef
from av_pipeline.validate import split_out_of_order
from beam_jobs.common import (
    DEAD_LETTER_TAG,
    PROGRESS_LOGGER,
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
    prepare_output_dir,
    read_json_lines,
    show_progress_lines,
    wait_with_progress,
    write_json,
)

#: Metrics namespace of the ingest counters.
METRICS_NAMESPACE = "avp.ingest"
#: Dead-letter stages of this job, in pipeline order; ``list`` is per log, the rest per frame.
STAGES = ("list", "order", "load", "validate")
#: Output files relative to ``--out``.
INDEX_GLOB = "index/frames-*.parquet"
DEAD_LETTERS_GLOB = "dead_letters/dead_letters-*.jsonl"
SUMMARY_FILE = "summary.json"


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
        return pbegin | "CreateLogUris" >> beam.Create(self.uris)


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

    def setup(self) -> None:
        import_reader_modules(self._reader_modules)
        self._progress = ProgressLog("ListFrames", "logs", self._progress_interval_s)

    def process(self, log_uri: str) -> Iterator[Any]:
        try:
            with open_log(log_uri, self._reader, **self._reader_options) as reader:
                refs = reader.list_frames()
        except Exception as exc:  # noqa: BLE001 - any failure of one log becomes its dead letter
            self.logs_dead_lettered.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead_letter("list", exc, log_uri=log_uri))
            return
        self.logs_listed.inc()
        self.frames_listed.inc(len(refs))
        self._progress.tick()
        in_order, out_of_order = split_out_of_order(refs)
        for ref, error in out_of_order:
            self.frames_out_of_order.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, _frame_dead_letter("order", error, ref))
        yield from in_order


class ListFrames(beam.PTransform):
    """log uris -> ``{"refs": FrameRef PCollection, "dead_letters": dict PCollection}``.

    Each log is opened (``open_log``; ``reader`` forces one) and listed; a log that cannot
    be opened or listed is one dead letter with stage ``list`` (key: the log uri). Frames
    whose timestamps do not increase within their log are dead-lettered with stage
    ``order``. The refs are redistributed so that one log's frames load on many workers.
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
        listed = log_uris | "OpenAndList" >> beam.ParDo(self._fn).with_outputs(DEAD_LETTER_TAG, main="refs")
        refs = listed.refs | "Redistribute" >> beam.Reshuffle()
        return {"refs": refs, DEAD_LETTER_TAG: listed[DEAD_LETTER_TAG]}


class _LoadAndValidateFn(beam.DoFn):
    """FrameRef -> frame-index row; failures -> dead letters.

    Readers are opened lazily, at most once per log per DoFn instance, and kept in a small
    LRU cache (``max_open_logs``) so a worker holding frames of many logs does not run out
    of file handles; they are closed on eviction and in ``teardown``.
    """

    def __init__(self, reader_options: dict[str, Any], reader_modules: Sequence[str], progress_interval_s: float, max_open_logs: int) -> None:
        self._reader_options = dict(reader_options)
        self._reader_modules = tuple(reader_modules)
        self._progress_interval_s = progress_interval_s
        self._max_open_logs = max_open_logs
        self.frames_indexed = Metrics.counter(METRICS_NAMESPACE, "frames_indexed")
        self.frames_load_failed = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_load")
        self.frames_invalid = Metrics.counter(METRICS_NAMESPACE, "frames_dead_lettered_validate")
        self.logs_opened = Metrics.counter(METRICS_NAMESPACE, "reader_opens")

    def setup(self) -> None:
        import_reader_modules(self._reader_modules)
        self._readers: collections.OrderedDict[tuple[str, str], LogReader] = collections.OrderedDict()
        self._progress = ProgressLog("LoadAndValidate", "frames", self._progress_interval_s)

    def _reader_for(self, ref: FrameRef) -> LogReader:
        key = (ref.reader, ref.log_uri)
        reader = self._readers.get(key)
        if reader is not None:
            self._readers.move_to_end(key)
            return reader
        reader = open_log(ref.log_uri, ref.reader, **self._reader_options)
        self.logs_opened.inc()
        self._readers[key] = reader
        while len(self._readers) > self._max_open_logs:
            _, evicted = self._readers.popitem(last=False)
            evicted.close()
        return reader

    def process(self, ref: FrameRef) -> Iterator[Any]:
        self._progress.tick()
        try:
            frame = self._reader_for(ref).load_frame(ref)
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

    def teardown(self) -> None:
        readers = getattr(self, "_readers", {})
        while readers:
            _, reader = readers.popitem()
            reader.close()


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

    @property
    def frames_dead_lettered(self) -> int:
        """Frames dead-lettered after listing (stages order, load, validate)."""
        return sum(count for stage, count in self.dead_lettered.items() if stage != "list")

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
        return {**asdict(self), "frames_dead_lettered": self.frames_dead_lettered}


def _describe_progress(counters: dict[str, int]) -> str:
    done = counters.get("frames_indexed", 0) + sum(counters.get(f"frames_dead_lettered_{s}", 0) for s in STAGES[1:])
    return f"ingest: {done} of {counters.get('frames_listed', 0)} listed frames done ({counters.get('frames_indexed', 0)} indexed)"


def _summarize(result: Any, out: str, runner: str, logs_in: int, elapsed_s: float) -> IngestSummary:
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
        dead_lettered={stage: counters.get(f"{'logs' if stage == 'list' else 'frames'}_dead_lettered_{stage}", 0) for stage in STAGES},
        index_rows_in_files=count_parquet_rows(FileSystems.join(out, INDEX_GLOB)),
        dead_letters_in_files=len(dead_letters),
        dead_letter_types=dict(sorted(types.items())),
        unexpected_errors=sum(not letter["expected"] for letter in dead_letters),
        elapsed_s=round(elapsed_s, 3),
    )


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
    table.add_row("frames in (listed)", str(summary.frames_listed))
    table.add_row("frames indexed", str(summary.frames_indexed))
    for stage in STAGES[1:]:
        table.add_row(f"frames dead-lettered ({stage})", str(summary.dead_lettered.get(stage, 0)))
    console.print(table)
    for kind, count in summary.dead_letter_types.items():
        console.print(f"  dead letters {kind}: {count}")
    if summary.unexpected_errors:
        console.print(f"  [bold]{summary.unexpected_errors} dead letters are unexpected exceptions (expected=false): likely reader bugs[/bold]")
    if summary.dead_letters_in_files:
        console.print(f"  details: {FileSystems.join(summary.out, 'dead_letters')}/*.jsonl")


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> list[str]:
    """Add the ingest steps to ``pipeline``; return the expanded log uris.

    Raises:
        ConfigError: bad ``--logs`` / ``--out`` / ``--reader`` / ``--reader_option`` values.
    """
    ingest = options.view_as(IngestOptions)
    if not ingest.out:
        raise ConfigError("out: expected an output directory (--out DIR), got none")
    reader_options = parse_reader_options(ingest.reader_option)
    import_reader_modules(ingest.reader_module)
    if ingest.reader is not None and ingest.reader not in available_readers():
        raise ConfigError(f"reader: expected one of {available_readers()}, got {ingest.reader!r}")
    expand_logs = ExpandLogs(ingest.logs)
    log_uris = pipeline | "ExpandLogs" >> expand_logs
    listed = log_uris | "ListFrames" >> ListFrames(ingest.reader, reader_options, ingest.reader_module, ingest.progress_interval_s)
    loaded = listed["refs"] | "LoadAndValidate" >> LoadAndValidate(reader_options, ingest.reader_module, ingest.progress_interval_s)
    _ = loaded["rows"] | "WriteIndex" >> WriteIndex(ingest.out)
    _ = (listed[DEAD_LETTER_TAG], loaded[DEAD_LETTER_TAG]) | "CollectDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(
        ingest.out
    )
    return expand_logs.uris


def run(argv: Sequence[str] | None = None, *, show_summary: bool = True) -> IngestSummary:
    """Run the ingest job with command-line style arguments (see :class:`IngestOptions`).

    Unknown arguments go to Beam (runner options). Without ``--runner`` (or with
    ``DirectRunner``) the job runs on Beam's local FnApiRunner, in this process or in
    ``--direct_num_workers`` processes (see :func:`beam_jobs.common.create_pipeline`).

    Returns:
        The run's summary (also written to ``{out}/summary.json``).

    Raises:
        ConfigError: bad options, a glob that matches nothing, or earlier results in
            ``--out`` without ``--overwrite`` (all before the pipeline starts).
        JobAccountingError: frames in != indexed + dead-lettered, or the files disagree
            with the counters (a bug, never bad input).
        JobFailedError: an asynchronous runner reports the job failed or was cancelled.
    """
    options = PipelineOptions(list(argv) if argv is not None else sys.argv[1:])
    ingest = options.view_as(IngestOptions)
    show_progress_lines()
    pipeline, runner = create_pipeline(options)
    log_uris = build_pipeline(pipeline, options)
    prepare_output_dir(ingest.out, [INDEX_GLOB, DEAD_LETTERS_GLOB, SUMMARY_FILE], ingest.overwrite)
    PROGRESS_LOGGER.info("ingest: %d logs -> %s (runner %s)", len(log_uris), ingest.out, runner)
    start = time.monotonic()
    result = pipeline.run()
    state = wait_with_progress(result, METRICS_NAMESPACE, _describe_progress, ingest.progress_interval_s)
    elapsed_s = time.monotonic() - start
    if state.rsplit(".", 1)[-1] != "DONE":
        raise JobFailedError(f"the ingest pipeline on {runner} ended in state {state}, not DONE; see the runner's logs")
    summary = _summarize(result, ingest.out, runner, len(log_uris), elapsed_s)
    write_json(FileSystems.join(ingest.out, SUMMARY_FILE), summary.to_json())
    if show_summary:
        print_summary(summary)
    problems = summary.accounting_errors()
    if problems:
        raise JobAccountingError("ingest lost track of records (a bug): " + "; ".join(problems))
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run()
