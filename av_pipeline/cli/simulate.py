"""``avp simulate``: generate synthetic drive logs."""

from __future__ import annotations

import argparse
from pathlib import Path

from av_pipeline.cli import Command


class SimulateCommand(Command):
    """Generate a synthetic drive log with ground truth, onboard perception and planted anomalies.

    A street with lanes, curbs, sidewalks, buildings, poles and trees; cars, vans, trucks,
    pedestrians and cyclists on consistent tracks; an ego vehicle with a 64-beam spinning
    LiDAR (per-point times, motion skew) and three cameras (front 800x450, left and right
    512x288, with lens distortion), all ray-cast. Writes the log as MCAP (foxglove or ROS 2
    messages) and/or a KITTI raw drive, plus side files next to it: the anomaly answer key,
    per-frame labels (ground truth and onboard perception with 2D boxes), the planned path,
    metadata and the rig. Same seed, same bytes. See docs/synthetic.md.

    Examples:
      avp simulate --frames 100 --seed 3 --out out/sim
      avp simulate --frames 20 --format both --preview --out /tmp/sim
      avp simulate --frames 200 --rate ghost_object=5 --rate ego_deviation=0 --out out/ghosts
      avp simulate --bundled --out av_pipeline/data/synthetic
    """

    name = "simulate"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--frames", type=int, default=40, help="number of frames (LiDAR sweeps at 10 Hz), default 40")
        parser.add_argument("--seed", type=int, default=0, help="random seed, default 0")
        parser.add_argument("--out", type=Path, default=Path("out/synthetic"), help="output folder (default out/synthetic)")
        parser.add_argument("--format", choices=("mcap", "kitti_raw", "both"), default="mcap", help="log format (default mcap)")
        parser.add_argument("--mcap-schema", choices=("foxglove", "ros2"), default="foxglove", help="MCAP messages (default foxglove)")
        parser.add_argument("--log-id", default=None, help="log name, the MCAP file stem (default synthetic_s<seed>)")
        parser.add_argument("--camera-scale", type=float, default=1.0, help="scale the camera resolutions (default 1.0)")
        parser.add_argument(
            "--rate",
            action="append",
            default=[],
            metavar="KIND=PER_100_FRAMES",
            help="planted anomalies of one kind per 100 frames (repeatable), e.g. --rate ghost_object=5 --rate track_flicker=0",
        )
        parser.add_argument("--preview", action="store_true", help="save a BEV image and the camera images of one frame with boxes")
        parser.add_argument("--preview-frame", type=int, default=None, help="which frame to preview (default the middle one)")
        parser.add_argument("--bundled", action="store_true", help="write the package's bundled log (its fixed configuration) and check it against the recorded digests (exit 1 when they differ)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        import sys

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from av_pipeline.errors import ConfigError
        from av_pipeline.synthetic import BUNDLED_CONFIG, PerceptionConfig, SimulationConfig, default_cameras, write_synthetic_log
        from av_pipeline.synthetic.preview import save_preview

        if args.bundled:
            config = BUNDLED_CONFIG
        else:
            if args.camera_scale <= 0:
                raise ConfigError(f"--camera-scale: expected a positive number, got {args.camera_scale}")
            rates = dict(PerceptionConfig().rates)
            for item in args.rate:
                kind, _, value = item.partition("=")
                try:
                    rates[kind.strip()] = float(value)
                except ValueError:
                    raise ConfigError(f"--rate: expected KIND=NUMBER, got {item!r}") from None
            config = SimulationConfig(
                frames=args.frames,
                seed=args.seed,
                log_id=args.log_id or f"synthetic_s{args.seed}",
                cameras=default_cameras(args.camera_scale),
                perception=PerceptionConfig(rates=rates),
            )
        formats = ("mcap", "kitti_raw") if args.format == "both" else (args.format,)
        preview_index = args.preview_frame if args.preview_frame is not None else config.frames // 2
        if args.preview and not 0 <= preview_index < config.frames:
            raise ConfigError(f"--preview-frame: expected 0..{config.frames - 1}, got {preview_index}")
        captured = {}
        points = []
        console = Console(stderr=True)
        columns = (TextColumn("{task.description:<13}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            truth_task = progress.add_task("ground truth", total=config.frames)
            task = progress.add_task("rendering", total=config.frames)

            def on_frame(synthetic) -> None:
                points.append(synthetic.frame.lidar.num_points)
                if args.preview and synthetic.truth.index == preview_index:
                    captured["frame"] = synthetic
                progress.advance(task)

            log = write_synthetic_log(
                config,
                args.out,
                formats=formats,
                mcap_schema=args.mcap_schema,
                on_frame=on_frame,
                on_truth=lambda _: progress.advance(truth_task),
            )
        if args.preview:
            written = save_preview(captured["frame"], args.out / "preview")
            print(f"preview of frame {preview_index}: " + ", ".join(str(p) for p in written))
        import json

        anomalies = json.loads(log.anomalies.read_text())["anomalies"]
        print(
            f"{log.frames} frames in {log.seconds} s ({log.seconds / log.frames:.2f} s/frame), "
            f"{sum(points) / len(points):,.0f} LiDAR points per frame, {len(anomalies)} planted anomalies",
            file=sys.stdout,
        )
        for path in (log.mcap, log.kitti_drive, log.anomalies, log.labels, log.planned_path, log.meta, log.rig):
            if path is not None:
                print(f"  {path}")
        if args.bundled:
            from av_pipeline.synthetic.bundled import DIGESTS_NAME, differing_files, file_digests

            differing = differing_files(file_digests(args.out))
            if differing:
                print(f"differs from the recorded digests ({DIGESTS_NAME}): {', '.join(differing)}")
                return 1
            print(f"identical to the recorded digests ({DIGESTS_NAME})")
        return 0
