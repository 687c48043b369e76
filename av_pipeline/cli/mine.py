"""``avp mine``: shadow-mode edge-case mining over drive logs (the mining Beam job)."""

from __future__ import annotations

import argparse
import json

from av_pipeline.cli import Command


class MineCommand(Command):
    """Mine drive logs for edge cases: where the shadow model disagrees with onboard perception.

    The shipped detector runs over every frame as the shadow model (refined over each log);
    the campaign's triggers compare it with the log's onboard perception, follow onboard
    tracks over time, compare camera boxes with cuboids and the planned path with the driven
    one. Events become cases (time windows, merged, ranked, de-duplicated) and the best cases
    within the campaign's budget are written. Frames that fail are dead letters; frames in =
    frames mined + dead-lettered is checked. A log without onboard perception or planned path
    still mines the triggers that need neither (mining.json lists what was skipped and why).

    Outputs in OUT: cases.parquet, events.parquet, cases.json, campaign.json, mining.json,
    prelabels/<log>/*.parquet, dead_letters/dead_letters-*.jsonl, summary.json. Campaign
    format and every trigger: docs/mining.md.

    Examples:
      avp mine av_pipeline/data/synthetic/synthetic_default.mcap --out out/mining
      avp mine 'drives/*.mcap' --campaign vru --out out/vru --workers 2
      avp mine drive.mcap --campaign my_campaign.yaml --out out/m --device cuda
    """

    name = "mine"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("logs", nargs="+", metavar="LOG", help="log file or directory, or a glob pattern (quote it)")
        parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
        parser.add_argument("--campaign", default="default", help="campaign YAML file, or a shipped campaign: default, vru, active_learning")
        parser.add_argument("--weights", default=None, help="shadow model weights (default: the shipped cpu_small)")
        parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
        parser.add_argument("--batch-size", type=int, default=4, help="frames per forward pass at most (default 4)")
        parser.add_argument("--workers", type=int, default=1, metavar="N", help="DirectRunner worker processes (default 1: in-process)")
        parser.add_argument("--runner", default=None, help="Beam runner (default: DirectRunner in this process)")
        parser.add_argument("--reader", default=None, help="force a reader by name")
        parser.add_argument("--reader-option", action="append", default=[], metavar="KEY=VALUE", help="reader option, repeatable")
        parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.cli import beam_job_argv
        from beam_jobs.mine import run as run_mine

        argv = beam_job_argv(args) + [f"--campaign={args.campaign}"]
        summary = run_mine(argv)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        else:
            print(
                f"mined {summary.frames_mined} of {summary.frames_listed} frames in {summary.logs} log(s) with campaign {summary.campaign}: "
                f"{summary.events} events, {summary.cases} cases; {summary.frames_dead_lettered} frames and {summary.logs_dead_lettered} "
                f"logs dead-lettered, {summary.elapsed_s:.1f} s -> {summary.out}"
            )
        return 0
