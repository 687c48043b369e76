"""Offboard refinement: tracks through a synthetic drive's true motion, with detector-like noise."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.evaluate import EvalConfig, evaluate
from av_pipeline.detect.refine import RefineConfig, TimedDetections, track_and_refine


@pytest.fixture(scope="module")
def drive_truths():
    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive

    drive = SyntheticDrive(SimulationConfig(frames=30, seed=11, cameras=()))
    return drive.truths


def _noisy(truths, rng):
    """Detections as a weak detector gives them: centre jitter, size noise, heading flips,
    missed frames and short-lived false positives."""
    frames = []
    for truth in truths:
        gt = truth.cuboids
        near = np.hypot(gt.centers_m[:, 0], gt.centers_m[:, 1]) < 50
        gt = gt.subset(near)
        keep = rng.random(len(gt)) > 0.15  # 15% missed
        g = gt.subset(keep)
        k = len(g)
        yaw = g.yaws_rad + rng.normal(0, 0.05, k) + np.where(rng.random(k) < 0.1, np.pi, 0.0)
        centers = g.centers_m + rng.normal(0, 0.25, (k, 3)) * [1, 1, 0.3]
        sizes = g.sizes_m * rng.uniform(0.85, 1.15, (k, 3))
        n_fp = int(rng.integers(0, 3))
        fp_centers = np.column_stack([rng.uniform(-40, 40, (n_fp, 2)), np.full(n_fp, 0.8)])
        boxes = Cuboids.from_arrays(
            "ego",
            np.concatenate([centers, fp_centers]),
            np.concatenate([sizes, np.tile([[4.0, 1.8, 1.5]], (n_fp, 1))]),
            np.concatenate([yaw, rng.uniform(-3, 3, n_fp)]),
            np.concatenate([g.labels, np.full(n_fp, "car")]),
            np.concatenate([rng.uniform(0.5, 0.95, k), rng.uniform(0.2, 0.4, n_fp)]).astype(np.float32),
        )
        frames.append(TimedDetections(truth.timestamp_ns, truth.world_SE3_ego, boxes))
    return frames


def test_refinement_improves_boxes_and_keeps_track_identity(drive_truths):
    rng = np.random.default_rng(0)
    detections = _noisy(drive_truths, rng)
    refined, stats = track_and_refine(detections, RefineConfig())
    gts = [t.cuboids.subset(np.hypot(t.cuboids.centers_m[:, 0], t.cuboids.centers_m[:, 1]) < 50) for t in drive_truths]
    config = EvalConfig(classes=("car", "pedestrian"), min_points=0, range_bins_m=((0.0, 50.0),), prelabel_score_threshold=0.0)
    before = evaluate(list(zip(gts, [d.boxes for d in detections])), config)
    after = evaluate(list(zip(gts, refined)), config)
    q0 = before.prelabels["car"]["all"].to_dict()
    q1 = after.prelabels["car"]["all"].to_dict()
    # gaps filled (fewer misses), false positives removed, better boxes
    assert q1["missed_share"] < 0.5 * q0["missed_share"]
    assert q1["to_delete_share"] < q0["to_delete_share"]
    assert q1["no_correction_share"] > q0["no_correction_share"] + 0.15
    assert after.kitti["3d"]["car"]["all"] > before.kitti["3d"]["car"]["all"]
    assert stats.filled_boxes > 0 and stats.removed_tracks > 0 and stats.heading_flips > 0
    # every box is accounted for: in = out - filled + removed + unborn (boxes of unknown classes pass through)
    assert stats.input_boxes == stats.output_boxes - stats.filled_boxes + stats.removed_boxes + stats.unborn_boxes
    # one consensus size per track, and each track follows one true object
    for boxes, gt in zip(refined, gts):
        assert (boxes.track_ids >= 0).all()
    sizes: dict[int, set] = {}
    owner: dict[int, list] = {}
    for boxes, gt in zip(refined, gts):
        for i in range(len(boxes)):
            sizes.setdefault(int(boxes.track_ids[i]), set()).add(tuple(np.round(boxes.sizes_m[i], 9)))
            d = np.hypot(*(gt.centers_m[:, :2] - boxes.centers_m[i, :2]).T)
            if len(d) and d.min() < 1.0:
                owner.setdefault(int(boxes.track_ids[i]), []).append(int(gt.track_ids[np.argmin(d)]))
    assert all(len(s) == 1 for s in sizes.values())
    purity = np.mean([np.max(np.unique(v, return_counts=True)[1]) / len(v) for v in owner.values()])
    assert purity > 0.97


def test_refinement_rejects_unordered_frames_and_handles_empty_input():
    empty = Cuboids.empty("ego")
    with pytest.raises(ValueError, match="increase strictly"):
        track_and_refine([TimedDetections(2, None, empty), TimedDetections(1, None, empty)])
    boxes, stats = track_and_refine([])
    assert boxes == [] and stats.input_boxes == 0
    out, _ = track_and_refine([TimedDetections(1, None, empty), TimedDetections(2, None, empty)])
    assert [len(b) for b in out] == [0, 0]
