"""``avp train``: train the pre-label detector on synthetic drives generated on the fly."""

from __future__ import annotations

import argparse
from pathlib import Path

from av_pipeline.cli import Command


class TrainCommand(Command):
    """Train the pre-label detector on synthetic drives (LiDAR only), resumable.

    Every step draws new frames from synthetic drives with seeds disjoint from the
    evaluation seeds, pastes objects from a ground-truth database, flips, rotates and
    scales them, and trains with a focal heatmap loss and an L1 box loss. The folder gets
    checkpoint.pt (every --checkpoint-every steps), loss.csv and loss.png; --resume
    continues an interrupted run exactly. --export writes the weights the package ships
    (NAME.pt + NAME.json with config and checksum). See docs/prelabels.md for the recipe.

    Examples:
      avp train --out out/train                       # the shipped recipe (hours on 2 cores)
      nohup avp train --out out/train --resume > out/train.log 2>&1 &
      avp train --out out/train --device cuda         # the same on a GPU
      avp train --out out/train --export av_pipeline/data/detector/cpu_small.pt
    """

    name = "train"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        import types
        from dataclasses import fields

        from av_pipeline.detect.train_config import TrainConfig

        # the field defaults, without building a TrainConfig (that validates the preset and imports numba)
        defaults = types.SimpleNamespace(**{f.name: f.default for f in fields(TrainConfig)})
        parser.add_argument("--out", type=Path, default=Path("out/train"), help="run folder (default out/train)")
        parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
        parser.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
        parser.add_argument("--model", default=defaults.model, help=f"detector preset (default {defaults.model})")
        parser.add_argument("--steps", type=int, default=defaults.steps, help=f"optimiser steps (default {defaults.steps})")
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"frames per step (default {defaults.batch_size})")
        parser.add_argument("--max-lr", type=float, default=defaults.max_lr, help=f"peak learning rate (default {defaults.max_lr})")
        parser.add_argument("--seed", type=int, default=defaults.seed, help=f"run seed (default {defaults.seed})")
        parser.add_argument("--workers", type=int, default=defaults.workers, help=f"data worker processes (default {defaults.workers})")
        parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
        parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps between checkpoints")
        parser.add_argument("--export", type=Path, default=None, metavar="PATH.pt", help="only export OUT/checkpoint.pt as shipped weights to PATH.pt")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        import logging
        import sys

        import torch

        from av_pipeline.detect.train_config import TrainConfig

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.export is not None:
            from av_pipeline.detect.export import export_checkpoint

            path = export_checkpoint(args.out / "checkpoint.pt", args.export)
            print(f"wrote {args.export} and {path}")
            return 0
        from av_pipeline.detect.train import train

        config = TrainConfig(
            model=args.model, steps=args.steps, batch_size=args.batch_size, max_lr=args.max_lr, seed=args.seed,
            workers=args.workers, checkpoint_every=args.checkpoint_every,
        )  # fmt: skip
        logging.getLogger("av_pipeline").setLevel(logging.INFO)

        def progress(row: dict) -> None:
            remaining_h = (config.steps - row["step"]) * row["elapsed_s"] / max(1, row["step"]) / 3600
            print(
                f"step {row['step']}/{config.steps} loss {row['loss']:.4f} (heatmap {row['heatmap']:.4f}, "
                f"box {row['regression']:.4f}) lr {row['lr']} {row['samples_per_s']:.2f} frames/s, "
                f"{row['elapsed_s'] / 3600:.2f} h, ~{remaining_h:.2f} h left",
                file=sys.stderr,
                flush=True,
            )

        path = train(config, args.out, resume=args.resume, device=args.device, progress=progress)
        print(f"checkpoint: {path}")
        return 0
