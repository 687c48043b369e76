"""``avp demo``: the main job on the bundled default data."""

from __future__ import annotations

import argparse
from pathlib import Path

from av_pipeline.cli import Command


class DemoCommand(Command):
    """Run the main job on the bundled default data and write everything it makes to --out.

    Today this is the calibration demo: it loads the bundled sensor rig (a roof LiDAR, a
    distorted front camera, two wide side cameras and a rear fisheye), ray-casts a street
    scene into a LiDAR sweep and camera images, projects the sweep into every camera with
    per-point status (visible / behind / outside image / outside the lens's valid region),
    checks the projection against the renderer, and converts the rig to other formats.

    Examples:
      avp demo --out out/demo
      avp demo --rig my_rig.yaml --out /tmp/demo
    """

    name = "demo"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
        parser.add_argument("--rig", type=Path, help="a rig file to use instead of the bundled one")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.calib_demo import run_calibration_demo

        summary = run_calibration_demo(args.out, args.rig)
        print(f"demo finished in {summary['seconds']} s; outputs in {args.out}/")
        return 0
