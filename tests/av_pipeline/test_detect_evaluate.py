"""Detection metrics: nuScenes AP against nuscenes-devkit, KITTI AP R40 and pre-label quality by hand."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.evaluate import EvalConfig, ap_r40, evaluate

CLASSES = ("car", "pedestrian")


def _random_frame(rng: np.random.Generator, n_gt: int) -> tuple[Cuboids, Cuboids]:
    labels = rng.choice(CLASSES, n_gt)
    centers = np.column_stack([rng.uniform(-60, 60, n_gt), rng.uniform(-60, 60, n_gt), rng.uniform(0.5, 1.0, n_gt)])
    sizes = np.where((labels == "car")[:, None], [4.5, 1.9, 1.6], [0.7, 0.7, 1.8]) * rng.uniform(0.9, 1.1, (n_gt, 3))
    yaws = rng.uniform(-np.pi, np.pi, n_gt)
    gt = Cuboids.from_arrays("ego", centers, sizes, yaws, labels)
    # predictions: noisy copies of most boxes (some with the wrong class), plus false positives
    keep = rng.random(n_gt) < 0.8
    noise = rng.normal(0, 0.6, (keep.sum(), 3)) * [1, 1, 0.2]
    pred_labels = np.where(rng.random(keep.sum()) < 0.1, rng.choice(CLASSES, keep.sum()), labels[keep])
    n_fp = int(rng.integers(0, 6))
    pred = Cuboids.from_arrays(
        "ego",
        np.concatenate([centers[keep] + noise, np.column_stack([rng.uniform(-60, 60, (n_fp, 2)), np.full(n_fp, 0.8)])]),
        np.concatenate([sizes[keep] * rng.uniform(0.85, 1.15, (keep.sum(), 3)), np.tile([[4.0, 1.8, 1.5]], (n_fp, 1))]),
        np.concatenate([yaws[keep] + rng.normal(0, 0.2, keep.sum()), rng.uniform(-3, 3, n_fp)]),
        np.concatenate([pred_labels, rng.choice(CLASSES, n_fp)]),
        rng.random(keep.sum() + n_fp).astype(np.float32),
    )
    return gt, pred


def _devkit_ap(frames: list[tuple[Cuboids, Cuboids]], cls: str, threshold: float) -> float:
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate, calc_ap
    from nuscenes.eval.detection.data_classes import DetectionBox

    name = {"car": "car", "pedestrian": "pedestrian"}[cls]
    gt_boxes, pred_boxes = EvalBoxes(), EvalBoxes()
    for k, (gt, pred) in enumerate(frames):
        token = f"s{k}"

        def boxes(c: Cuboids, is_pred: bool) -> list:
            out = []
            for i in range(len(c)):
                half = c.yaws_rad[i] / 2
                out.append(
                    DetectionBox(
                        sample_token=token,
                        translation=tuple(c.centers_m[i]),
                        size=(c.sizes_m[i, 1], c.sizes_m[i, 0], c.sizes_m[i, 2]),
                        rotation=(np.cos(half), 0.0, 0.0, np.sin(half)),
                        detection_name=name if c.labels[i] == cls else ("pedestrian" if cls == "car" else "car"),
                        detection_score=float(c.scores[i]) if is_pred else -1.0,
                    )
                )
            return out

        gt_boxes.add_boxes(token, boxes(gt, False))
        pred_boxes.add_boxes(token, boxes(pred, True))
    metric = accumulate(gt_boxes, pred_boxes, name, center_distance, threshold)
    return calc_ap(metric, 0.1, 0.1)


def test_centre_distance_ap_equals_nuscenes_devkit(monkeypatch):
    from PIL import Image

    # importing the devkit raises Pillow's global decompression-bomb limit (nuscenes/utils/map_mask.py);
    # restore it afterwards so later tests in this process see Pillow's default
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    pytest.importorskip("nuscenes.eval.detection.algo", reason="nuscenes-devkit is the reference (installed by the test set-up)")
    rng = np.random.default_rng(0)
    frames = [_random_frame(rng, int(rng.integers(5, 30))) for _ in range(25)]
    config = EvalConfig(classes=CLASSES, min_points=0, range_bins_m=((0.0, 1000.0),))
    report = evaluate(frames, config)
    compared = 0
    for cls in CLASSES:
        for threshold in (0.5, 1.0, 2.0, 4.0):
            ours = report.nuscenes[cls]["all"][f"{threshold:g}"]
            ref = _devkit_ap(frames, cls, threshold)
            assert abs(ours - ref) <= 1e-6, (cls, threshold, ours, ref)
            compared += ref > 0
    assert compared >= 6  # the comparison is not all zeros


def test_ap_r40_by_hand():
    # 4 ground truths; detections TP, FP, TP in score order -> P/R: (1, .25), (.5, .25), (2/3, .5)
    precision = np.array([1.0, 0.5, 2 / 3])
    recall = np.array([0.25, 0.25, 0.5])
    # recall points 1/40..10/40 reach 1.0 (envelope max), 11/40..20/40 get 2/3, the rest 0
    assert ap_r40(precision, recall) == pytest.approx((10 * 1.0 + 10 * (2 / 3)) / 40)
    assert ap_r40(np.zeros(0), np.zeros(0)) == 0.0


def _car(x: float, y: float = 0.0, yaw: float = 0.0, score: float = 1.0, label: str = "car") -> tuple:
    return ([x, y, 0.8], [4.0, 2.0, 1.6], yaw, label, score)


def _boxes(rows: list[tuple], points: list[int] | None = None) -> Cuboids:
    if not rows:
        return Cuboids.empty("ego")
    c, s, y, l, sc = zip(*rows)
    return Cuboids.from_arrays("ego", c, s, y, l, sc, None, points)


def test_kitti_ap_and_prelabel_quality_on_a_hand_made_frame():
    gt = _boxes([_car(10), _car(25), _car(50), _car(30, 5)], points=[100, 100, 100, 2])  # the last one is ignored (2 points)
    pred = _boxes(
        [
            _car(10.1, score=0.9),  # exact enough: IoU 0.95 -> TP, no correction
            _car(25.8, score=0.8),  # IoU 0.667 < 0.7 -> FP for AP@0.7, needs correction
            _car(30, 5, score=0.7),  # matches the ignored box: neither TP nor FP, not "to delete"
            _car(60, 20, score=0.6),  # matches nothing: FP, to delete
            _car(50, yaw=np.pi / 2, score=0.2),  # below the pre-label threshold 0.3; for AP a poor match (IoU 0.33)
        ]
    )
    report = evaluate([(gt, pred)], EvalConfig(classes=("car",)))
    # counted GT: 3; outcomes in score order: TP, FP, ignored, FP, FP -> P = 1, .5, .33, .25 at R = 1/3
    assert report.num_gt["car"]["all"] == 3
    assert report.kitti["3d"]["car"]["all"] == pytest.approx(13 / 40)
    q = report.prelabels["car"]["all"].to_dict()
    assert q["num_gt"] == 3 and q["no_correction"] == 1 and q["corrected"] == 1 and q["missed"] == 1
    assert q["mean_corner_error_m"] == pytest.approx(0.8)
    assert q["to_delete"] == 1 and q["num_prelabels"] == 4
    # range bins: the box at 10 m is alone in 0-20 and detected exactly
    assert report.kitti["3d"]["car"]["0-20"] == pytest.approx(1.0)
    assert report.prelabels["car"]["0-20"].to_dict()["no_correction_share"] == 1.0
