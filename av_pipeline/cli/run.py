"""``avp run`` (and ``avp demo``): the main job, one Beam pipeline from logs to datasets and report."""

from __future__ import annotations

import argparse
import json

from av_pipeline.cli import Command


class RunCommand(Command):
    """Run the whole pipeline on drive logs (default: the bundled synthetic log) as one Beam job.

    ingest (frame index + dead letters) -> fusion and voxels -> pre-labels (the shipped
    detector through RunInference, refined over each log) -> shadow-mode mining with the
    campaign -> edge-case datasets (OpenLABEL, KITTI, Foxglove MCAP per case + manifest) ->
    the mining report (report/index.html, with the calibration drift check per camera and
    pictures of one frame per log). Failures of any stage are dead letters; frames in =
    frames mined + dead-lettered is checked at the end. Progress lines while it runs.

    --engine spark runs the same stages on Apache Spark without Beam (pyspark and Java;
    --spark-master, default local[*]); --resume skips the logs an earlier, interrupted run
    in --out completed (docs/scaling.md).

    Outputs in --out: ingest/index/, frames.jsonl, prelabels/, cases.*, events.parquet,
    mining.json, datasets/, figures/, calibration/, dead_letters/, report/, summary.json
    (docs/running.md). An --out holding an earlier run is refused without --overwrite.

    Examples:
      avp run --out out/demo
      avp run drives/*.mcap --campaign vru --out out/vru --workers 2
      avp run drive.mcap --out out/run --formats openlabel,kitti --top 50
      avp run drives/*.mcap --out out/run --engine spark --spark-master 'local[2]'
      avp run drives/*.mcap --out out/run --resume       # after an interrupted run
      avp run '/mnt/fleet/*.mcap' --out gs://bucket/out --runner DataflowRunner ...
    """

    name = "run"
    default_out = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("logs", nargs="*", metavar="LOG", help="log files, directories or globs (default: the bundled synthetic log)")
        if cls.default_out:
            parser.add_argument("--out", default=cls.default_out, metavar="DIR", help=f"output directory (default {cls.default_out})")
        else:
            parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
        parser.add_argument("--campaign", default="default", help="campaign YAML file, or a shipped campaign: default, vru, active_learning")
        parser.add_argument("--formats", default="openlabel,kitti,mcap", help="dataset formats per case, comma-separated (default all three)")
        parser.add_argument("--top", type=int, default=20, metavar="N", help="cases with pictures in the report (default 20)")
        parser.add_argument("--weights", default=None, help="shadow model weights (default: the shipped cpu_small)")
        parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
        parser.add_argument("--batch-size", type=int, default=4, help="frames per forward pass at most (default 4)")
        parser.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1: in this process)")
        parser.add_argument("--runner", default=None, help="Beam runner (default: the local runner in this process)")
        parser.add_argument("--reader", default=None, help="force a reader by name")
        parser.add_argument("--reader-option", action="append", default=[], metavar="KEY=VALUE", help="reader option, repeatable")
        parser.add_argument("--progress-interval", type=float, default=5.0, metavar="S", help="seconds between progress lines (default 5)")
        parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
        parser.add_argument("--resume", action="store_true", help="keep the logs an earlier run in --out completed; redo the rest")
        parser.add_argument("--engine", choices=("beam", "spark"), default="beam", help="beam (default) or spark (PySpark, no Beam runner)")
        parser.add_argument("--spark-master", default="local[*]", metavar="URL", help="Spark master for --engine spark (default local[*])")
        parser.add_argument(
            "--frames-per-partition", type=int, default=0, metavar="N", help="--engine spark: consecutive frames per partition (default: about 2 partitions per core)"
        )  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.cli import beam_job_argv
        from av_pipeline.errors import ConfigError
        from beam_jobs.run import print_summary

        argv = beam_job_argv(args) + [f"--campaign={args.campaign}", f"--export_formats={args.formats}",
                                      f"--report_top_cases={args.top}", f"--progress_interval_s={args.progress_interval}"]  # fmt: skip
        if getattr(args, "resume", False):
            argv.append("--resume")
        if getattr(args, "engine", "beam") == "spark":
            if args.workers > 1 or args.runner:
                raise ConfigError("--engine spark: --workers and --runner are Beam options; Spark's parallelism comes from --spark-master (local[N])")
            from beam_jobs.spark_run import run_spark

            summary = run_spark(argv + [f"--spark_master={args.spark_master}", f"--frames_per_partition={args.frames_per_partition}"])
        else:
            from beam_jobs.run import run as run_job

            summary = run_job(argv)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        else:
            print_summary(summary)
        return 0
