"""``avp ingest``: run the ingest Beam job from the command line."""

from __future__ import annotations

import argparse
import json

from av_pipeline.cli import Command


class IngestCommand(Command):
    """Index drive logs: list and load every frame, validate it, write a Parquet frame index.

    Frames that fail (a log that does not open, timestamps out of order, a corrupt file,
    NaN points, an image that does not decode, missing calibration) go to dead-letter
    JSON lines with the stage, the frame key, the file and the problem. The job checks
    that frames in = frames indexed + frames dead-lettered and prints a summary.

    Outputs in OUT: index/frames-*.parquet, dead_letters/dead_letters-*.jsonl,
    summary.json (schemas: docs/running.md).

    Runs the Beam DirectRunner in this process by default; --workers N runs N worker
    processes. For Dataflow, Flink or Spark use `python -m beam_jobs.ingest` with the
    runner's options (docs/running.md).

    Examples:
      avp ingest ../shared/data/kitti/training --out out/kitti_index
      avp ingest 'drives/*.mcap' --out out/index --workers 2
      avp ingest drive.mcap --out out/index --reader mcap --reader-option lidar_topic=/points
      avp ingest 'drives/**/*.bag' --out out/index --overwrite
    """

    name = "ingest"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("logs", nargs="+", metavar="LOG", help="log file or directory, or a glob pattern (quote it)")
        parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
        parser.add_argument("--runner", default=None, help="Beam runner (default: DirectRunner in this process)")
        parser.add_argument("--workers", type=int, default=1, metavar="N", help="DirectRunner worker processes (default 1: in-process)")
        parser.add_argument("--reader", default=None, help="force a reader by name instead of choosing by content")
        parser.add_argument(
            "--reader-option", action="append", default=[], metavar="KEY=VALUE", help="reader option, repeatable (JSON values are decoded)"
        )
        parser.add_argument(
            "--reader-module", action="append", default=[], metavar="MODULE", help="module that registers extra readers, repeatable"
        )
        parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
        parser.add_argument("--progress-interval", type=float, default=10.0, metavar="SECONDS", help="seconds between progress lines")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.errors import ConfigError
        from beam_jobs.ingest import print_summary
        from beam_jobs.ingest import run as run_ingest

        if args.workers < 1:
            raise ConfigError(f"--workers: expected a positive number of worker processes, got {args.workers}")
        argv = [f"--out={args.out}", f"--progress_interval_s={args.progress_interval}"]
        argv += [f"--logs={log}" for log in args.logs]
        argv += [f"--reader_option={item}" for item in args.reader_option]
        argv += [f"--reader_module={module}" for module in args.reader_module]
        if args.reader:
            argv.append(f"--reader={args.reader}")
        if args.overwrite:
            argv.append("--overwrite")
        if args.workers > 1:
            if args.runner not in (None, "DirectRunner"):
                raise ConfigError(f"--workers applies to the DirectRunner only, got --runner {args.runner}")
            argv += ["--runner=DirectRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
        elif args.runner:
            argv.append(f"--runner={args.runner}")
        summary = run_ingest(argv, show_summary=False)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        else:
            print_summary(summary)
        return 0
