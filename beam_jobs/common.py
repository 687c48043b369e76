"""Pieces every av-pipeline Beam job shares: options, the local-runner default, dead letters,
progress, and the end-of-job accounting.

Jobs follow one shape (see :mod:`beam_jobs.ingest`): composite ``PTransform`` steps with
stable PascalCase labels; per-element failures go to a ``dead_letters`` tagged output
built with :func:`dead_letter` and written by :class:`WriteDeadLetters`; counters live in
one metrics namespace per job and are read back with :func:`counter_values` to check that
everything that came in was either processed or dead-lettered.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
import traceback
from typing import Any, Iterable, Mapping, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from av_pipeline.errors import AVPipelineError, ConfigError, cap_message
from av_pipeline.ingest import display_text

#: Name of the tagged output every job sends its failures to.
DEAD_LETTER_TAG = "dead_letters"

#: Dead-letter record fields: name -> (JSON type, meaning). One JSON object per line.
DEAD_LETTER_FIELDS: dict[str, tuple[str, str]] = {
    "stage": ("string", "job step that failed: ingest uses list | entry | order | load | validate"),
    "log_uri": ("string", "the log the record belongs to"),
    "log_id": ("string | null", "log identifier (null when the log could not be opened)"),
    "frame_index": ("int | null", "position in the log's frame list (null for a whole-log failure)"),
    "timestamp_ns": ("int | null", "frame time in ns (null for a whole-log failure)"),
    "error_type": ("string", "exception class name, e.g. LogFormatError, FrameValidationError"),
    "expected": ("bool", "true: the product rejected bad input on purpose; false: an unexpected exception (likely a bug)"),
    "check": ("string | null", "validation rule that failed (FrameValidationError only)"),
    "path": ("string", "the file at fault (the error's own path, else the log uri); names that are not UTF-8 are \\xNN-escaped"),
    "field": ("string", "the field, sensor, topic or key at fault (\"log\" / \"frame\" when the error blames the whole log or frame)"),
    "message": ("string", "the full error message (names file and field)"),
}

#: Logger for progress lines; jobs log through it from DoFns (workers) and the driver.
PROGRESS_LOGGER = logging.getLogger("beam_jobs.progress")


class JobAccountingError(AVPipelineError, RuntimeError):
    """Records went missing: what came in is not what was processed plus dead-lettered.

    This is a bug in the job (or a runner that lost data), never bad input.
    """


class JobFailedError(AVPipelineError, RuntimeError):
    """The runner reports that the job ended in another state than DONE (failed, cancelled)."""


class DeadLetterThresholdError(AVPipelineError, RuntimeError):
    """The job ran and wrote all its outputs, but dead-lettered more input than allowed.

    Attributes:
        summary: the job's summary (also in ``summary.json``).
    """

    def __init__(self, message: str, summary: Any) -> None:
        super().__init__(message)
        self.summary = summary


#: Exit codes of the job entry points (``avp ingest``, ``python -m beam_jobs.ingest``).
EXIT_CODES: dict[int, str] = {
    0: "success: outputs written, dead letters within --max_dead_letter_fraction",
    1: "error before or while running: bad options or paths, earlier results without --overwrite, a failed runner",
    2: "command-line usage error: an unknown or malformed option",
    3: "the job finished and wrote the index, dead letters and summary, but dead-lettered more than "
    "--max_dead_letter_fraction of its input (default: nothing was indexed)",
    4: "accounting error: frames in != indexed + dead-lettered (a bug, please report it)",
}


#: Environment variable: torch and numba threads per worker process, set by the user. Not set
#: by default: oneDNN's 2D convolutions round differently with different thread counts (scores
#: differ by about 1e-7), so capping workers' threads would make pre-labels differ in their
#: last bits from an in-process run's.
THREADS_ENV = "AVP_THREADS_PER_WORKER"
#: OpenMP settings for local worker processes that share the cores (they inherit the
#: environment): waiting threads sleep instead of spinning, so two processes whose threads
#: outnumber the cores do not burn each other's time. Results do not depend on it.
WORKER_OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def worker_threads_for(workers: int, cores: int | None = None) -> int:
    """Threads per worker process when ``workers`` processes share ``cores`` cores (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def share_cores_with_workers() -> dict[str, str]:
    """Environment for local worker processes started from here (set in ``os.environ``,
    which they inherit, unless the user set it); returns it, for Spark's executor env."""
    for key, value in WORKER_OPENMP_ENV.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in WORKER_OPENMP_ENV}


def apply_worker_threads() -> int:
    """In a worker process: cap torch's intra-op threads and numba's threads at
    ``$AVP_THREADS_PER_WORKER`` when the user set it (returns it, 0 when unset). Faster when
    several workers share few cores, but results then differ from an in-process run's in the
    last bits (see :data:`THREADS_ENV`)."""
    value = os.environ.get(THREADS_ENV, "")
    threads = int(value) if value.isdigit() else 0
    if threads > 0:
        import numba
        import torch

        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def exit_code_for(error: BaseException) -> int:
    """The :data:`EXIT_CODES` code for an error a job entry point caught."""
    if isinstance(error, DeadLetterThresholdError):
        return 3
    if isinstance(error, JobAccountingError):
        return 4
    return 1


def unknown_pipeline_args(argv: Iterable[str]) -> list[str]:
    """Arguments no ``PipelineOptions`` class (Beam's runners' or this product's) declares.

    Beam only logs such arguments ("Discarding unparseable args") and goes on, so a typo
    (``--out_dir``) would be ignored; job entry points refuse them instead. Parses as Beam's
    ``PipelineOptions.get_all_options`` does (every direct subclass, no abbreviations).
    """
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - the Beam way to declare options
    _, unknown = parser.parse_known_args(list(argv))
    return unknown


class OutputOptions(PipelineOptions):
    """Where a job writes, whether it may replace an earlier run's output, and progress."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--out", default=None, help="output directory (created when missing)")
        parser.add_argument(
            "--overwrite",
            action="store_true",
            default=False,
            help="replace the outputs of an earlier run in --out (otherwise the job refuses to start)",
        )
        parser.add_argument(
            "--progress_interval_s",
            type=float,
            default=10.0,
            help="seconds between progress lines (per worker, and from the driver on runners that run asynchronously)",
        )


class LogReaderOptions(PipelineOptions):
    """How jobs open drive logs: forced reader, reader options, extra reader modules."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--reader", default=None, help="force this reader instead of choosing by content (see available_readers())")
        parser.add_argument(
            "--reader_option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="reader option, repeatable (e.g. lidar_topic=/points); JSON values are decoded",
        )
        parser.add_argument(
            "--reader_module",
            action="append",
            default=[],
            metavar="MODULE",
            help="importable module that registers extra readers; imported on every worker, repeatable",
        )


#: Runner names that mean "the local runner": run by :func:`create_pipeline` on the FnApiRunner.
LOCAL_RUNNER_NAMES = ("DirectRunner", "SwitchingDirectRunner", "FnApiRunner")


def create_pipeline(options: PipelineOptions) -> tuple[beam.Pipeline, str]:
    """A pipeline on the runner ``options`` name, the local one by default; and a runner description.

    Without ``--runner``, or with ``DirectRunner`` / ``FnApiRunner``, the pipeline runs on
    the FnApiRunner in this process (``--direct_running_mode in_memory``, the default) or in
    ``--direct_num_workers`` worker processes (``multi_processing``). That is what Beam's
    DirectRunner picks for batch pipelines, except that the DirectRunner of Beam 2.77 first
    tries the Prism runner, downloading it from GitHub; going to the FnApiRunner directly
    keeps local runs offline and predictable. The FnApiRunner gets the pipeline options as
    provisioning info (as the DirectRunner passes them), so worker processes see them too.
    Any other runner (``DataflowRunner``, ``FlinkRunner``, ``SparkRunner``,
    ``PortableRunner``, ``PrismRunner``) is used as named.
    """
    standard = options.view_as(StandardOptions)
    if standard.runner is not None and str(standard.runner) not in LOCAL_RUNNER_NAMES:
        return beam.Pipeline(options=options), str(standard.runner)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    direct = options.view_as(DirectOptions)
    direct.direct_running_mode = direct.direct_running_mode or "in_memory"
    standard.runner = "DirectRunner"
    if direct.direct_running_mode == "multi_processing":
        _quiet_local_workers(options)
        share_cores_with_workers()
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    runner = fn_runner.FnApiRunner(provision_info=provision_info)
    workers = 1 if direct.direct_running_mode == "in_memory" else (os.cpu_count() if direct.direct_num_workers == 0 else direct.direct_num_workers or 1)
    return beam.Pipeline(runner=runner, options=options), f"DirectRunner ({direct.direct_running_mode}, {workers} worker{'s' * (workers != 1)})"


def _quiet_local_workers(options: PipelineOptions) -> None:
    # Worker processes log at INFO and warn about every option they have no class for (the
    # job's own); keep their progress lines and real problems, unless the user chose levels.
    from apache_beam.options.pipeline_options import WorkerOptions

    worker = options.view_as(WorkerOptions)
    if worker.default_sdk_harness_log_level is None and not worker.sdk_harness_log_level_overrides:
        worker.default_sdk_harness_log_level = "WARNING"
        worker.sdk_harness_log_level_overrides = {
            PROGRESS_LOGGER.name: "INFO",
            "apache_beam.options.pipeline_options": "ERROR",
            "__main__": "ERROR",
        }
        # The runner re-logs each worker record, which the workers already printed themselves.
        logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)


def dead_letter(
    stage: str,
    error: BaseException,
    *,
    log_uri: str,
    log_id: str | None = None,
    frame_index: int | None = None,
    timestamp_ns: int | None = None,
) -> dict[str, Any]:
    """Describe one failure as a dead-letter record (fields: :data:`DEAD_LETTER_FIELDS`).

    For an unexpected exception (not an :class:`AVPipelineError`) the message also says
    where it was raised, since its text alone (``'velodyne'`` for a ``KeyError``) rarely
    names the problem. Every record names a file (the error's, else the log) and a field
    (the error's, else ``"log"`` for a whole-log stage or ``"frame"``); strings are made
    valid UTF-8 (:func:`~av_pipeline.ingest.display_text`) and the message is capped.
    """
    expected = isinstance(error, AVPipelineError)
    message = _safe_str(error) or type(error).__name__
    if not expected:
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            message += f" (raised at {last.filename}:{last.lineno} in {last.name})"
    path = getattr(error, "path", None) or getattr(error, "filename", None) or log_uri
    field = getattr(error, "field", None) or ("log" if stage in ("list",) else "frame")
    return {
        "stage": stage,
        "log_uri": display_text(str(log_uri)),
        "log_id": None if log_id is None else display_text(str(log_id)),
        "frame_index": None if frame_index is None else int(frame_index),
        "timestamp_ns": None if timestamp_ns is None else int(timestamp_ns),
        "error_type": type(error).__name__,
        "expected": expected,
        "check": getattr(error, "check", None),
        "path": display_text(os.fsdecode(path) if isinstance(path, bytes) else str(path)),
        "field": display_text(str(field)),
        "message": display_text(cap_message(message)),
    }


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the dead letter
        return f"<{type(error).__name__} with an unprintable message>"


class ReaderCache:
    """Mixin for DoFns that load frames: readers are opened lazily, at most once per log per
    DoFn instance, and kept in a small LRU cache (``max_open_logs``) so a worker holding
    frames of many logs does not run out of file handles; they are closed on eviction and in
    ``teardown``. Call :meth:`ReaderCache.__init__` from the DoFn's ``__init__`` and use
    :meth:`reader`; a DoFn that overrides ``setup`` or ``teardown`` calls these too.
    """

    def __init__(self, reader_options: Mapping[str, Any], reader_modules: Sequence[str], max_open_logs: int = 16) -> None:
        self._reader_options = dict(reader_options)
        self._reader_modules = tuple(reader_modules)
        self._max_open_logs = max_open_logs

    def setup(self) -> None:
        from av_pipeline.ingest import import_reader_modules

        import_reader_modules(self._reader_modules)
        self._readers: collections.OrderedDict = collections.OrderedDict()

    def reader(self, ref: Any) -> Any:
        """The open reader of ``ref``'s log (a :class:`~av_pipeline.records.FrameRef`)."""
        from av_pipeline.readers import open_log

        key = (ref.reader, ref.log_uri)
        reader = self._readers.get(key)
        if reader is not None:
            self._readers.move_to_end(key)
            return reader
        reader = open_log(ref.log_uri, ref.reader, **self._reader_options)
        self.on_open()
        self._readers[key] = reader
        while len(self._readers) > self._max_open_logs:
            _, evicted = self._readers.popitem(last=False)
            evicted.close()
        return reader

    def on_open(self) -> None:
        """Called after a log is opened (override to count)."""

    def teardown(self) -> None:
        readers = getattr(self, "_readers", {})
        while readers:
            _, reader = readers.popitem()
            reader.close()


class WriteDeadLetters(beam.PTransform):
    """Write dead-letter records as JSON lines to ``{out}/dead_letters/dead_letters-SSSSS-of-NNNNN.jsonl``.

    Input: dicts from :func:`dead_letter`. Writes one (possibly empty) shard even when
    nothing failed, so a run's output is complete and self-describing.
    """

    def __init__(self, out: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(out, "dead_letters", "dead_letters")

    def expand(self, dead_letters: beam.PCollection) -> beam.pvalue.PDone:
        return (
            dead_letters
            | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
            | "WriteJsonLines" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl")
        )


class ProgressLog:
    """Periodic progress lines from inside a DoFn: ``LoadAndValidate: 340 frames, 28.3/s [pid 12]``.

    Counts are per DoFn instance (one per worker thread), so with several workers each
    prints its own line; the job-wide totals are the Beam counters shown at the end.
    """

    def __init__(self, label: str, unit: str, interval_s: float) -> None:
        self.label, self.unit, self.interval_s = label, unit, interval_s
        self.count = 0
        self._start = self._last = time.monotonic()

    def tick(self, n: int = 1) -> None:
        """Count ``n`` more elements; log a line when ``interval_s`` passed since the last one."""
        self.count += n
        now = time.monotonic()
        if self.interval_s > 0 and now - self._last >= self.interval_s:
            self._last = now
            elapsed = now - self._start
            PROGRESS_LOGGER.info(
                "%s: %d %s in %.1f s (%.1f/s) [worker pid %d]", self.label, self.count, self.unit, elapsed, self.count / elapsed, os.getpid()
            )


def show_progress_lines() -> None:
    """Make :data:`PROGRESS_LOGGER` print INFO lines to stderr even when the root logger is quieter."""
    if not PROGRESS_LOGGER.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        PROGRESS_LOGGER.addHandler(handler)
    PROGRESS_LOGGER.setLevel(logging.INFO)
    PROGRESS_LOGGER.propagate = False


def prepare_output_dir(out: str, outputs: Iterable[str], overwrite: bool) -> None:
    """Make sure ``out`` holds no earlier results under ``outputs`` (file globs relative to ``out``).

    Stale shards from an earlier run with another shard count would otherwise be read
    together with the new ones.

    Raises:
        ConfigError: earlier outputs exist and ``overwrite`` is false (the message lists one).
    """
    stale: list[str] = []
    for pattern in outputs:
        for match in FileSystems.match([FileSystems.join(out, pattern)])[0].metadata_list:
            stale.append(match.path)
    if stale and not overwrite:
        raise ConfigError(f"out: {out} already holds results of an earlier run ({stale[0]} and {len(stale) - 1} more); pass --overwrite to replace them")
    if stale:
        FileSystems.delete(stale)
    if "://" not in out:
        os.makedirs(out, exist_ok=True)


def counter_values(result: PipelineResult, namespace: str, *, attempted: bool = False) -> dict[str, int] | None:
    """Counters of one namespace: name -> value, or ``None`` when the runner reports no metrics.

    Committed values are used when the runner has them (exact: each bundle counted once),
    attempted values otherwise or when ``attempted`` is true (available while running).
    """
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]
    except (NotImplementedError, AttributeError):
        return None
    values: dict[str, int] = {}
    for counter in counters:
        value = counter.attempted if attempted else counter.committed
        if value is None:
            value = counter.attempted
        name = counter.key.metric.name
        values[name] = values.get(name, 0) + int(value or 0)
    return values


def wait_with_progress(result: PipelineResult, namespace: str, describe: Any, interval_s: float) -> str:
    """Wait for a pipeline, logging ``describe(counters)`` every ``interval_s`` while it runs.

    Runners that execute inside ``Pipeline.run()`` (the DirectRunner) return finished, so
    this only waits; asynchronous runners (Dataflow, Flink, Spark job servers) are polled
    for their attempted counters.

    Returns:
        The final pipeline state.
    """
    while not PipelineState.is_terminal(result.state):
        counters = counter_values(result, namespace, attempted=True)
        if counters:
            PROGRESS_LOGGER.info("%s", describe(counters))
        time.sleep(max(interval_s, 0.5))
    return str(result.wait_until_finish())


def count_parquet_rows(pattern: str) -> int:
    """Total rows in the Parquet files matching ``pattern`` (footers only; any Beam filesystem)."""
    import pyarrow.parquet as pq

    total = 0
    for match in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(match.path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def read_json_lines(pattern: str) -> list[dict[str, Any]]:
    """All JSON-lines records in the files matching ``pattern`` (any Beam filesystem)."""
    records: list[dict[str, Any]] = []
    for match in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(match.path) as handle:
            records.extend(json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip())
    return records


def write_json(path: str, payload: Mapping[str, Any]) -> None:
    """Write one JSON document to ``path`` (any Beam filesystem; atomically on local paths)."""
    write_bytes_atomic(path, json.dumps(payload, indent=2, sort_keys=True).encode("utf-8"))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file.

    Local paths: written under a temporary name in the same folder (created when missing),
    then renamed over ``path`` (``os.replace``: atomic on POSIX), so a crash leaves either
    the old file or the new one. Other Beam filesystems (``gs://``, ``s3://``): one
    ``FileSystems.create``; object stores publish an object only when it is closed.
    """
    if "://" in path:
        with FileSystems.create(path) as handle:
            handle.write(data)
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
