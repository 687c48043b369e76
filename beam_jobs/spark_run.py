"""The main job on Apache Spark, without a Beam runner: ``avp run --engine spark``,
``python -m beam_jobs.spark_run``.

For teams whose platform is Spark. The stages are the Beam job's own code: each DoFn of
:mod:`beam_jobs.run` (ingest, fusion and voxels, refinement, evidence, mining, case
selection, export, the report) runs as a plain object inside Spark tasks through
:func:`run_dofn` (``setup`` once per partition, ``process`` per element, tagged outputs
split), and the detector through the same ``ModelHandler`` as ``RunInference``. Options,
outputs (the same files in ``--out``), dead letters, checkpoints and ``--resume`` are those
of the Beam job; apache-beam is needed as a library only (no Beam runner or job server).

Spark's own partitioning: frames are keyed ``(log_id, index)`` and range-partitioned into
chunks of consecutive frames of one log (``--frames_per_partition``), sorted within each
partition, so a task opens a log once, reads its frames in order, loads the detector once
and streams frames through fusion and detection (``--batch_size`` point arrays at a time).
Only ``FrameRef``\\ s and small results are shuffled (index rows, boxes, fusion rows, drift
scores, per-frame mining evidence); point clouds and images never leave the task that read
them.

Run it with::

    python -m beam_jobs.spark_run --out out/run                     # bundled log, local[*]
    python -m beam_jobs.spark_run --logs '/mnt/fleet/*.mcap' --out /mnt/results/run1 --spark_master spark://master:7077
    avp run drives/*.mcap --out out/run --engine spark --spark-master 'local[2]'

Spark needs a Java runtime (Java 17; e.g. ``apt-get install openjdk-17-jre-headless``) and
``pip install "av-pipeline[all,spark]"`` on the driver and on every executor.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from av_pipeline.errors import ConfigError
from beam_jobs import mine as mine_job
from beam_jobs.common import DEAD_LETTER_TAG, PROGRESS_LOGGER, THREADS_ENV, share_cores_with_workers, show_progress_lines
from beam_jobs.ingest import ListFrames
from beam_jobs.prelabel import DetectorModelHandler
from beam_jobs.run import LogContextFn
from beam_jobs.run_config import RunConfig, complete_logs, job_arguments, prepare_run_output, resolve_config
from beam_jobs.run_resume import checkpoint_record, resumed_outputs, write_checkpoint
from beam_jobs.run_steps import DATASETS_DIR, DRIFT_TAG, FIGURES_TAG, METRICS_NAMESPACE, PRODUCTS_TAG, ExportCaseFn, FinalizeFn, FuseFn, IngestFn, drift_verdict
from beam_jobs.run_summary import RunSummary, finish_run

#: Tag of a DoFn's main output in :func:`run_dofn`'s pairs.
MAIN = "main"
#: Tag of the detector's outputs in the fusion-and-detection tasks.
DETECTED = "detected"
#: Java that Spark 3.5 runs on; what the error message recommends installing.
JAVA_HINT = "install a Java runtime (Java 17: 'apt-get install -y openjdk-17-jre-headless' on Debian/Ubuntu) and set JAVA_HOME"


def run_dofn(dofn: Any, elements: Iterable[Any], **side_inputs: Any) -> Iterator[tuple[str, Any]]:
    """Run a Beam DoFn as a plain object over ``elements``: ``setup``, ``process`` per
    element with ``side_inputs`` as keyword arguments, ``teardown``; yields ``(tag, value)``
    with tag :data:`MAIN` for main outputs and the ``TaggedOutput`` tag for the others.

    Lazy: elements are pulled one at a time, so a Spark partition streams through it.
    Beam counters the DoFn increments are no-ops outside a Beam runner.
    """
    dofn.setup()
    try:
        for element in elements:
            for output in dofn.process(element, **side_inputs) or ():
                yield (output.tag, output.value) if isinstance(output, TaggedOutput) else (MAIN, output)
    finally:
        dofn.teardown()


class DoFnTask:
    """A picklable ``mapPartitions`` function: one DoFn over a partition (a fresh copy per
    task, as Beam deserialises one per worker); broadcast side inputs are read in the task."""

    def __init__(self, dofn: Any, **side_inputs: Any) -> None:
        self.dofn, self.side_inputs = dofn, side_inputs

    def __call__(self, elements: Iterable[Any]) -> Iterator[tuple[str, Any]]:
        side = {name: getattr(value, "value", value) for name, value in self.side_inputs.items()}
        return run_dofn(self.dofn, elements, **side)


class FuseAndDetectTask:
    """Refs of one partition -> fusion outputs (:class:`FuseFn`'s tags) and ``(DETECTED,
    ((ref, pose), boxes))``: the detector is loaded once per partition and fed batches of
    ``batch_size`` point arrays, so at most that many frames' points are held at once."""

    def __init__(self, fuse: FuseFn, handler: DetectorModelHandler, contexts: Any, batch_size: int) -> None:
        self.fuse, self.handler, self.contexts, self.batch_size = fuse, handler, contexts, batch_size

    def __call__(self, refs: Iterable[Any]) -> Iterator[tuple[str, Any]]:
        model, batch = None, []
        for tag, value in run_dofn(self.fuse, refs, contexts=self.contexts.value):
            if tag != MAIN:
                yield tag, value
                continue
            batch.append(value)
            if len(batch) >= self.batch_size:
                model = model or self.handler.load_model()
                yield from self._detect(model, batch)
                batch = []
        if batch:
            yield from self._detect(model or self.handler.load_model(), batch)

    def _detect(self, model: Any, batch: list[tuple[Any, Any]]) -> Iterator[tuple[str, Any]]:
        boxes = self.handler.run_inference([points for _, points in batch], model)
        for (key, _), frame_boxes in zip(batch, boxes):
            yield DETECTED, (key, frame_boxes)


class ChunkPartitioner:
    """``(log_id, index)`` -> partition: consecutive frames of one log, ``frames_per_partition``
    at a time, each chunk its own partition (``chunks``: ``(log_id, chunk)`` -> partition)."""

    def __init__(self, chunks: Mapping[tuple[str, int], int], frames_per_partition: int) -> None:
        self.chunks, self.frames_per_partition = dict(chunks), frames_per_partition

    def __call__(self, key: tuple[str, int]) -> int:
        return self.chunks[(key[0], key[1] // self.frames_per_partition)]


def partition_by_log(refs: Any, frames_per_partition: int) -> Any:
    """An RDD of ``FrameRef`` (or anything with ``log_id`` and ``index``) -> the same elements
    in chunks of ``frames_per_partition`` consecutive frames of one log, one chunk per
    partition, sorted by index within each partition."""
    keys = refs.map(lambda ref: (ref.log_id, ref.index // frames_per_partition)).distinct().collect()
    if not keys:
        return refs
    chunks = {key: i for i, key in enumerate(sorted(keys))}
    keyed = refs.map(lambda ref: ((ref.log_id, ref.index), ref))
    return keyed.repartitionAndSortWithinPartitions(len(chunks), ChunkPartitioner(chunks, frames_per_partition)).values()


def _tag(rdd: Any, tag: str) -> Any:
    return rdd.filter(lambda pair: pair[0] == tag).values()


def _spark_arguments(args: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--spark_master", default="local[*]")
    parser.add_argument("--frames_per_partition", type=int, default=0)
    parser.add_argument("--spark_conf", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_known_args(list(args))


def spark_context(master: str, conf_pairs: Sequence[str] = ()) -> Any:
    """A SparkContext for ``master`` (Python workers run this interpreter unless
    ``PYSPARK_PYTHON`` says otherwise).

    Raises:
        ConfigError: pyspark is not installed, or no Java runtime starts (the message says what to install).
    """
    try:
        from pyspark import SparkConf, SparkContext
    except ImportError as exc:
        raise ConfigError(f"engine spark: pyspark is not installed ({exc}); pip install 'av-pipeline[spark]'") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = SparkConf().setMaster(master).setAppName("avp-run").set("spark.ui.enabled", "false").set("spark.python.worker.reuse", "true")
    for key, value in share_cores_with_workers().items():  # Python workers share the cores
        conf.setExecutorEnv(key, value)
    if THREADS_ENV in os.environ:
        conf.setExecutorEnv(THREADS_ENV, os.environ[THREADS_ENV])
    for pair in conf_pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"spark_conf: expected KEY=VALUE, got {pair!r}")
        conf.set(key, value)
    try:
        context = SparkContext.getOrCreate(conf)
    except Exception as exc:  # noqa: BLE001 - py4j raises RuntimeError/OSError/FileNotFoundError when Java is missing
        raise ConfigError(f"engine spark: Spark did not start ({type(exc).__name__}: {exc}); {JAVA_HINT}") from exc
    context.setLogLevel("WARN")
    return context


def run_spark(argv: Sequence[str] | None = None) -> RunSummary:
    """Run the main job on Spark with the Beam job's command-line options plus
    ``--spark_master`` (default ``local[*]``), ``--frames_per_partition`` (default: about two
    partitions per core) and ``--spark_conf KEY=VALUE`` (repeatable).

    Raises:
        ConfigError: bad options, earlier results without ``--overwrite`` / ``--resume``, no Java.
        JobAccountingError: frames listed != mined + dead-lettered (a bug).
    """
    spark_args, rest = _spark_arguments(list(argv) if argv is not None else sys.argv[1:])
    options = PipelineOptions(job_arguments(rest))
    config = resolve_config(options)
    show_progress_lines()
    done = complete_logs(config)
    from av_pipeline.ingest import expand_log_patterns

    uris = expand_log_patterns(list(config.logs))
    prepare_run_output(config, done)
    sc = spark_context(spark_args.spark_master, spark_args.spark_conf)
    runner = f"Spark ({sc.master}, {sc.defaultParallelism} cores)"
    PROGRESS_LOGGER.info("run: %d logs (%d complete, resumed), campaign %s -> %s (%s)", len(uris), len(done), config.campaign, config.out, runner)
    start = time.monotonic()
    try:
        _run_stages(sc, config, runner, uris, done, spark_args.frames_per_partition)
    finally:
        sc.stop()
    return finish_run(config, runner, len(uris), round(time.monotonic() - start, 2))


def _run_stages(sc: Any, config: RunConfig, runner: str, uris: Sequence[str], done: Mapping[str, Any], frames_per_partition: int) -> None:
    from pyspark import StorageLevel

    out, modules, interval = config.out, list(config.reader_modules), config.progress_interval_s
    step = _progress(runner)
    listing = ListFrames(config.reader, dict(config.reader_options), modules, interval)._fn  # noqa: SLF001 - the ingest job's listing DoFn
    listed = sc.parallelize([os.fsencode(u) for u in uris], max(1, len(uris))).mapPartitions(DoFnTask(listing)).persist(StorageLevel.MEMORY_AND_DISK)
    refs = _tag(listed, MAIN)
    frames_listed = refs.count()
    dead = _tag(listed, DEAD_LETTER_TAG).collect()
    fresh = refs.filter(lambda ref, skip=frozenset(done): ref.log_id not in skip)
    per_log = fresh.map(lambda ref: ref.log_id).countByValue()
    fpp = frames_per_partition or max(4, math.ceil(sum(per_log.values()) / (2 * sc.defaultParallelism)))
    step("listed %d frames of %d logs (%d logs complete, resumed); %d frames per partition", frames_listed, len(uris), len(done), fpp)

    ingested = partition_by_log(fresh, fpp).mapPartitions(DoFnTask(IngestFn(config.reader_options, modules, interval)))
    ingested = ingested.persist(StorageLevel.MEMORY_AND_DISK)
    dead += _tag(ingested, DEAD_LETTER_TAG).collect()
    index_rows = _tag(ingested, MAIN)
    contexts = dict(_tag(index_rows.map(lambda kv: (kv[0].log_id, kv)).groupByKey().mapPartitions(DoFnTask(LogContextFn(out))), MAIN).collect())
    resumed: dict[str, list[Any]] = {}
    for record in done.values():
        for tag, value in resumed_outputs(out, record):
            resumed.setdefault(tag, []).append(value)
    fresh_contexts = sc.broadcast(dict(contexts))
    contexts.update(dict(resumed.get("context", [])))
    all_contexts = sc.broadcast(contexts)
    step("indexed %d logs", len(contexts) - len(done))

    fuse = FuseFn(out, config.reader_options, modules, interval)
    handler = DetectorModelHandler(config.weights, config.device, config.batch_size)
    fused = index_rows.map(lambda kv: kv[0]).mapPartitions(FuseAndDetectTask(fuse, handler, fresh_contexts, config.batch_size))
    fused = fused.persist(StorageLevel.MEMORY_AND_DISK)
    frame_dead = _tag(fused, DEAD_LETTER_TAG).collect()
    products = _tag(fused, PRODUCTS_TAG).collect()
    figures = _tag(fused, FIGURES_TAG).collect()
    drift = _tag(fused, DRIFT_TAG).groupByKey().map(lambda kv: drift_verdict((kv[0], list(kv[1])))).collect()
    refine = mine_job._RefineFn(out, config.model_name)  # noqa: SLF001 - shared with the mining job
    detected = _tag(fused, DETECTED).map(lambda kv: (kv[0][0].log_id, kv)).groupByKey()
    refined = _tag(detected.mapPartitions(DoFnTask(refine)), MAIN).persist(StorageLevel.MEMORY_AND_DISK)
    _write_checkpoints(out, contexts, refined.keys().collect(), products, drift, figures, dead + frame_dead, fresh=set(contexts) - set(done))
    step("fused, detected and refined %d frames", len(products))

    dead += frame_dead + resumed.get("dead_letters", [])
    all_refined = refined.union(sc.parallelize(resumed.get("refined", []), max(1, min(len(resumed.get("refined", [])), sc.defaultParallelism))))
    spread = partition_by_log(all_refined.map(_RefinedRef), fpp).map(lambda r: r.pair)
    evidence = spread.mapPartitions(DoFnTask(mine_job._EvidenceFn(config.reader_options, modules))).persist(StorageLevel.MEMORY_AND_DISK)  # noqa: SLF001
    dead += _tag(evidence, DEAD_LETTER_TAG).collect()
    mined = _tag(evidence, MAIN).groupByKey().mapPartitions(DoFnTask(mine_job._MineLogFn(config.campaign))).collect()  # noqa: SLF001
    dead += [value for tag, value in mined if tag == DEAD_LETTER_TAG]
    results = [value for tag, value in mined if tag == MAIN]
    selected = list(run_dofn(mine_job.SelectCasesFn(out, config.campaign, METRICS_NAMESPACE), [results]))
    cases = [value for tag, value in selected if tag == MAIN]
    mining = next(value for tag, value in selected if tag == mine_job.SelectCasesFn.MINING_TAG)
    step("mined %d logs: %d cases selected", len(results), len(cases))

    export = ExportCaseFn(out, f"{out.rstrip('/')}/{DATASETS_DIR}", config.formats, config.reader_options, modules)
    exported_pairs = sc.parallelize(cases, max(1, min(len(cases), 2 * sc.defaultParallelism))).mapPartitions(DoFnTask(export, contexts=all_contexts)).collect()
    dead += [value for tag, value in exported_pairs if tag == DEAD_LETTER_TAG]
    exported = [value for tag, value in exported_pairs if tag == MAIN]
    finalize = FinalizeFn(out, config.campaign, runner, config.top_cases)
    _ = list(run_dofn(finalize, [exported], listed=frames_listed, dead=dead, mining=mining, products=products + resumed.get("products", []),
                      drift=drift + resumed.get("drift", []), figures=figures + resumed.get("figures", []), contexts=contexts))  # fmt: skip
    for rdd in (listed, ingested, fused, refined, evidence):
        rdd.unpersist()


class _RefinedRef:
    """A ``(ref, boxes)`` pair that :func:`partition_by_log` can key like a ref."""

    def __init__(self, pair: tuple[Any, Any]) -> None:
        self.pair = pair
        self.log_id, self.index = pair[0].log_id, pair[0].index


def _write_checkpoints(
    out: str, contexts: Mapping[str, Any], refs: Sequence[Any], products: Sequence[dict], drift: Sequence[dict], figures: Sequence[dict],
    dead: Sequence[dict], fresh: set[str],
) -> None:  # fmt: skip
    """Each freshly processed log's checkpoint, after its pre-labels are written (as the Beam job's ``WriteCheckpoints``)."""
    from beam_jobs.run_resume import FRAME_STAGES

    for log_id in sorted(fresh):
        grouped = {
            "context": [contexts[log_id]], "refs": [r for r in refs if r.log_id == log_id],
            "products": [p for p in products if p["log_id"] == log_id], "drift": [d for d in drift if d["log_id"] == log_id],
            "figures": [f for f in figures if f["log_id"] == log_id],
            "dead_letters": [d for d in dead if d.get("log_id") == log_id and d.get("stage") in FRAME_STAGES],
        }  # fmt: skip
        record = checkpoint_record(log_id, grouped)
        if record is not None:
            write_checkpoint(out, record)


def _progress(runner: str) -> Callable[..., None]:
    start = time.monotonic()

    def step(message: str, *args: Any) -> None:
        PROGRESS_LOGGER.info("spark: " + message + " (%.1f s)", *args, time.monotonic() - start)

    return step


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beam_jobs.spark_run``; returns an exit code (see ``beam_jobs.common.EXIT_CODES``)."""
    from beam_jobs.run import main as job_main

    return job_main(argv, run_spark, "python -m beam_jobs.spark_run", __doc__)


__all__ = ["ChunkPartitioner", "DoFnTask", "FuseAndDetectTask", "MAIN", "partition_by_log", "run_dofn", "run_spark", "spark_context"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
