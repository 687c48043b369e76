"""``avp evaluate``: score pre-labels against ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from av_pipeline.cli import Command


class EvaluateCommand(Command):
    """Evaluate pre-labels against the ground truth of logs.

    KITTI-style 3D and BEV AP with 40 recall points (IoU 0.7 car/van/truck, 0.5
    pedestrian/cyclist), nuScenes-style centre-distance AP (0.5/1/2/4 m), per class and
    per range bin (0-20, 20-40, 40-70 m), and pre-label quality as annotators count it:
    boxes needing no correction (3D IoU at the class threshold and the right class), the
    mean corner error of the rest, boxes missed, pre-labels to delete. Ground truth comes
    from the logs' annotations (its LiDAR point counts, or counted in the frame's sweeps);
    boxes with fewer than --min-points points are ignored (neither TP nor FP).
    Dataset class names are mapped to car, van, truck, pedestrian, cyclist.

    Examples:
      avp evaluate --pred out/prelabels --gt out/sim/synthetic_s3.mcap
      avp evaluate --pred out/prelabels --gt ../shared/data/kitti/training --json out/eval.json
    """

    name = "evaluate"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pred", required=True, type=Path, help="pre-label folder or prelabels.parquet (avp prelabel)")
        parser.add_argument("--gt", required=True, nargs="+", help="logs with ground-truth annotations")
        parser.add_argument("--min-points", type=int, default=5, help="ignore ground truth with fewer LiDAR points (default 5)")
        parser.add_argument("--score-threshold", type=float, default=0.3, help="pre-labels shown to annotators score at least this (default 0.3)")
        parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from av_pipeline.detect.evaluate import EvalConfig, evaluate
        from av_pipeline.detect.ground_truth import ground_truth_from_logs
        from av_pipeline.detect.prelabel_io import read_prelabels

        predictions = read_prelabels(args.pred)
        truth = ground_truth_from_logs(args.gt)
        from av_pipeline.boxes import Cuboids

        missing = [key for key in truth if key not in predictions]
        # a ground-truth frame without pre-labels counts with no predictions: all its boxes missed
        pairs = [(truth[key], predictions.get(key, Cuboids.empty("ego"))) for key in truth]
        config = EvalConfig(min_points=args.min_points, prelabel_score_threshold=args.score_threshold)
        report = evaluate(pairs, config)
        print(f"{len(pairs)} frames evaluated; {len(missing)} of them have no pre-labels (their boxes count as missed)")
        print(report.markdown())
        if args.json:
            payload = report.to_dict() | {"frames_without_prelabels": len(missing)}
            args.json.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        return 0
