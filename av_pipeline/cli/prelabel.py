"""``avp prelabel``: 3D cuboid pre-labels for whole logs (the pre-label Beam job)."""

from __future__ import annotations

import argparse
import json

from av_pipeline.cli import Command


class PrelabelCommand(Command):
    """Pre-label drive logs with the shipped detector, refined over each log.

    Every frame's LiDAR (all sweeps, in the ego frame) goes through the detector
    (RunInference: the model loads once per worker, frames are batched); each log's
    detections are then tracked and refined offboard (consensus sizes, smoothed motion,
    filled gaps, weak short tracks removed, track ids). Frames that fail to load are dead
    letters; frames in = frames pre-labelled + dead-lettered is checked.

    Outputs in OUT: prelabels/<log>/prelabels.parquet (one row per box, keyed by
    log_id and timestamp_ns, boxes in the ego frame), prelabels/<log>/frames.parquet
    (every frame, also those without boxes), dead_letters/dead_letters-*.jsonl, summary.json.
    Schemas: docs/prelabels.md. With --format openlabel|kitti (repeatable), each log's
    pre-labels are also exported as OUT/<log>/openlabel.json (ASAM OpenLABEL 1.0) or the
    KITTI object split OUT/<log>/kitti/ (velodyne, image_2, calib, label_2 with scores);
    the frames are read again one at a time. Formats: docs/datasets.md.

    Examples:
      avp prelabel out/sim/synthetic_s3.mcap --out out/prelabels
      avp prelabel ../shared/data/kitti/training --out out/kitti_prelabels --no-refine
      avp prelabel 'drives/*.mcap' --out out/prelabels --workers 2 --batch-size 4
      avp prelabel drive.mcap --out out/p --weights my_weights.pt --device cuda
      avp prelabel drive.mcap --out out/p --format openlabel --format kitti
    """

    name = "prelabel"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("logs", nargs="+", metavar="LOG", help="log file or directory, or a glob pattern (quote it)")
        parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
        parser.add_argument("--weights", default=None, help="shipped weights name or a .pt file with its .json (default cpu_small)")
        parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
        parser.add_argument("--batch-size", type=int, default=4, help="frames per forward pass at most (default 4)")
        parser.add_argument("--no-refine", action="store_true", help="write the raw per-frame detections (no tracking)")
        parser.add_argument(
            "--format",
            action="append",
            default=[],
            choices=["openlabel", "kitti"],
            help="also export each log's pre-labels: OUT/<log>/openlabel.json or OUT/<log>/kitti/ (repeatable)",
        )
        parser.add_argument("--workers", type=int, default=1, metavar="N", help="DirectRunner worker processes (default 1: in-process)")
        parser.add_argument("--runner", default=None, help="Beam runner (default: DirectRunner in this process)")
        parser.add_argument("--reader", default=None, help="force a reader by name")
        parser.add_argument("--reader-option", action="append", default=[], metavar="KEY=VALUE", help="reader option, repeatable")
        parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.cli import beam_job_argv
        from beam_jobs.prelabel import run as run_prelabel

        argv = beam_job_argv(args) + [f"--export_prelabels={fmt}" for fmt in args.format]
        if args.no_refine:
            argv.append("--no_refine")
        summary = run_prelabel(argv)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
        else:
            print(
                f"pre-labelled {summary.frames_prelabelled} of {summary.frames_listed} frames in {summary.logs} log(s): "
                f"{summary.boxes} boxes, {summary.frames_dead_lettered} frames and {summary.logs_dead_lettered} logs "
                f"dead-lettered, {summary.elapsed_s:.1f} s -> {summary.out}"
            )
            if summary.export_formats:
                print(
                    f"exported {summary.exports_written} log pre-label file(s) as {', '.join(summary.export_formats)}"
                    + (f"; {summary.exports_dead_lettered} export(s) dead-lettered" if summary.exports_dead_lettered else "")
                )
        return 0
