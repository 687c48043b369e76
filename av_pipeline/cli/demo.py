"""``avp demo``: the main job on the bundled default data."""

from __future__ import annotations

import argparse
from pathlib import Path

from av_pipeline.cli import Command


class DemoCommand(Command):
    """Run the main job on the bundled synthetic drive log (or on LOGS) and write everything to --out.

    Today: ingest (Beam: frame index + dead letters), fusion and voxelization of every frame
    (per-point de-skew, motion compensation to each image time, z-buffered depth, painting,
    onboard boxes projected into the cameras, voxels), pictures of one frame, the targetless
    calibration drift check per camera, and the rig converted to other calibration formats.

    An --out that holds an earlier demo run is refused unless --overwrite is given, which
    replaces it (ingest/, frames.jsonl, figures/, calibration/, summary.json; nothing else).

    Examples:
      avp demo --out out/demo
      avp demo --out out/demo --overwrite
      avp demo ../shared/data/kitti/training --out /tmp/kitti_demo
      avp demo 'drives/*.mcap' --out /tmp/demo --workers 2
    """

    name = "demo"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("logs", nargs="*", help="drive logs or globs (default: the bundled synthetic log)")
        parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
        parser.add_argument("--figure-frame", type=int, default=0, help="indexed frame that gets pictures and calibration checks")
        parser.add_argument("--workers", type=int, default=1, help="Beam worker processes for ingest (default 1: in this process)")
        parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out (refused without it)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from beam_jobs.demo import run_demo

        run_demo(args.out, args.logs, figure_frame=args.figure_frame, workers=args.workers, overwrite=args.overwrite)
        return 0
