"""``avp ingest``: run the ingest Beam job from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from av_pipeline.cli import Command


class IngestCommand(Command):
    """Index drive logs: list and load every frame, validate it, write a Parquet frame index.

    Frames that fail (a log that does not open, timestamps out of order, a corrupt file,
    NaN points, an image that does not decode, missing calibration) go to dead-letter
    JSON lines with the stage, the frame key, the file and the problem. The job checks
    that frames in = frames indexed + frames dead-lettered and prints a summary.

    Outputs in OUT: index/frames-*.parquet, dead_letters/dead_letters-*.jsonl,
    summary.json, log_ids_renamed.json (schemas: docs/running.md). They are written
    whatever a log contains: a bad log, file or frame is a dead letter, never a failed job.

    Exit codes:
      0  outputs written, dead letters within --max-dead-letter-fraction
      1  error before or while running (bad options or paths, earlier results
         without --overwrite, a failed runner)
      2  command-line usage error
      3  outputs written, but more dead letters than --max-dead-letter-fraction of
         the input allows (default: fail only when nothing was indexed)
      4  accounting error: frames in != indexed + dead-lettered (a bug)

    Runs the Beam DirectRunner in this process by default; --workers N runs N worker
    processes. For Dataflow, Flink or Spark use `python -m beam_jobs.ingest` with the
    runner's options (docs/running.md).

    Examples:
      avp ingest ../shared/data/kitti/training --out out/kitti_index
      avp ingest 'drives/*.mcap' --out out/index --workers 2
      avp ingest drive.mcap --out out/index --reader mcap --reader-option lidar_topic=/points
      avp ingest 'drives/**/*.bag' --out out/index --overwrite
      avp ingest 'drives/*.mcap' --out out/index --max-dead-letter-fraction 0.01
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
        parser.add_argument(
            "--max-dead-letter-fraction",
            type=float,
            default=None,
            metavar="FRACTION",
            help="exit with code 3 when dead letters exceed this fraction of the input (frames + unlistable logs "
            "and entries); default: exit 3 only when nothing was indexed",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.errors import ConfigError
        from beam_jobs.common import DeadLetterThresholdError, JobAccountingError, exit_code_for
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
        if args.max_dead_letter_fraction is not None:
            argv.append(f"--max_dead_letter_fraction={args.max_dead_letter_fraction}")
        if args.workers > 1:
            if args.runner not in (None, "DirectRunner"):
                raise ConfigError(f"--workers applies to the DirectRunner only, got --runner {args.runner}")
            argv += ["--runner=DirectRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
        elif args.runner:
            argv.append(f"--runner={args.runner}")
        failure: DeadLetterThresholdError | None = None
        try:
            summary = run_ingest(argv, show_summary=False)
        except DeadLetterThresholdError as exc:
            failure, summary = exc, exc.summary
        except JobAccountingError as exc:
            print(f"avp ingest: error: {exc}", file=sys.stderr)
            return exit_code_for(exc)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        else:
            print_summary(summary)
        if failure is not None:
            print(f"avp ingest: error: {failure}", file=sys.stderr)
            return exit_code_for(failure)
        return 0
