"""Evaluate the pre-label detector the way docs/prelabels.md reports it.

1. Synthetic drives from the evaluation seeds (never trained on): every frame's LiDAR
   through the detector, then offboard refinement over each drive; KITTI AP R40, nuScenes
   AP and pre-label quality, before and after refinement.
2. The real KITTI frames in ../shared/data: 000001 (full sweep, labels) and 000008 (the
   mmdet3d demo, camera field of view, 6 cars): car recall at BEV IoU 0.5. KITTI's ``ego``
   is the LiDAR, 1.73 m above the road: the detector runs with ``ground_z_m = -1.73``.
3. Figures: pre-labels over a synthetic sweep (BEV) and over its front camera image.

Run: ``python scripts/evaluate_detector.py [--weights cpu_small|PATH.pt|checkpoint.pt]
[--seeds 1 2 3 4 5] [--frames 40] [--out out/eval] [--figures docs/images]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from av_pipeline.boxes import Cuboids  # noqa: E402
from av_pipeline.detect.evaluate import EvalConfig, evaluate  # noqa: E402
from av_pipeline.detect.geometry import cuboid_bev_iou  # noqa: E402
from av_pipeline.detect.refine import TimedDetections, track_and_refine  # noqa: E402
from av_pipeline.detect.training_data import EVAL_SEEDS  # noqa: E402

KITTI_LIDAR_HEIGHT_M = 1.73


def load_detector(weights: str | None):
    from av_pipeline.detect import Detector

    if weights and weights.endswith("checkpoint.pt"):
        return Detector.from_checkpoint(weights)
    return Detector.from_pretrained(weights)


def synthetic(detector, seeds: list[int], frames: int, batch: int) -> dict:
    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive

    raw_pairs, refined_pairs, stats_all = [], [], []
    detect_s = 0.0
    for seed in seeds:
        drive = SyntheticDrive(SimulationConfig(frames=frames, seed=seed, cameras=(), log_id=f"eval_s{seed}"))
        ego_SE3_lidar = drive.rig.lidars[drive.config.lidar.name]
        gts, clouds = [], []
        for k in range(frames):
            sweep = drive.sweep(k)
            clouds.append(ego_SE3_lidar.transform_points(sweep.lidar.xyz.astype(np.float64)).astype(np.float32))
            gts.append(sweep.annotations)
        t0 = time.perf_counter()
        preds = []
        for i in range(0, frames, batch):
            preds += detector.detect_points_batch(clouds[i : i + batch])
        detect_s += time.perf_counter() - t0
        timed = [TimedDetections(drive.truths[k].timestamp_ns, drive.truths[k].world_SE3_ego, preds[k]) for k in range(frames)]
        refined, stats = track_and_refine(timed)
        raw_pairs += list(zip(gts, preds))
        refined_pairs += list(zip(gts, refined))
        stats_all.append(stats.__dict__)
        print(f"seed {seed}: {frames} frames, {sum(len(p) for p in preds)} detections, {stats.tracks} tracks", flush=True)
    config = EvalConfig()
    before, after = evaluate(raw_pairs, config), evaluate(refined_pairs, config)
    cars_40 = EvalConfig(classes=("car",), range_bins_m=((0.0, 40.0),))
    q_before = evaluate(raw_pairs, cars_40).prelabels["car"]["all"].to_dict()
    q_after = evaluate(refined_pairs, cars_40).prelabels["car"]["all"].to_dict()
    return {
        "seeds": seeds,
        "frames": len(raw_pairs),
        "detect_ms_per_frame": round(1e3 * detect_s / len(raw_pairs), 1),
        "before_refinement": before.to_dict(),
        "after_refinement": after.to_dict(),
        "cars_within_40m_no_correction": {"before": q_before, "after": q_after},
        "refine_stats": stats_all,
        "markdown_before": before.markdown(),
        "markdown_after": after.markdown(),
    }


def _car_recall(gt: Cuboids, pred: Cuboids, iou: float = 0.5) -> tuple[int, int]:
    cars = gt.subset(gt.labels == "car")
    found = pred.subset(np.isin(pred.labels, ("car", "van")))
    if len(cars) == 0:
        return 0, 0
    if len(found) == 0:
        return 0, len(cars)
    overlap = cuboid_bev_iou(cars, found)
    hit, used = 0, set()
    for i in np.argsort(-overlap.max(axis=1)):
        j = int(np.argmax(overlap[i]))
        if overlap[i, j] >= iou and j not in used:
            hit += 1
            used.add(j)
    return hit, len(cars)


def kitti(detector, data: Path) -> dict:
    from av_pipeline.readers import open_log
    from av_pipeline.readers.restricted_pickle import restricted_loads
    from av_pipeline.boxes import kitti_camera_boxes_to_cuboids
    from calibration import SE3

    detector.ground_z_m = -KITTI_LIDAR_HEIGHT_M
    out = {}
    with open_log(data / "kitti" / "training") as reader:
        frame = reader.load_frame(reader.list_frames()[0])
    pred = detector.detect(frame)
    gt = frame.annotations
    hit, total = _car_recall(gt, pred)
    out["000001"] = {"cars": total, "found_bev_iou_0.5": hit, "recall": hit / total if total else None, "detections": len(pred),
                     "cars_with_points": gt.subset(gt.labels == "car").num_lidar_points.tolist() if gt.num_lidar_points is not None else None}  # fmt: skip
    demo = data / "kitti" / "demo_000008"
    info = restricted_loads((demo / "000008.pkl").read_bytes(), str(demo / "000008.pkl"))["data_list"][0]
    rect_SE3_velo = SE3.from_matrix(np.array(info["images"]["R0_rect"]) @ np.array(info["lidar_points"]["Tr_velo_to_cam"]))
    instances = [i for i in info["instances"] if i["bbox_label_3d"] >= 0]
    b = np.array([i["bbox_3d"] for i in instances])
    gt8 = kitti_camera_boxes_to_cuboids(b[:, :3], b[:, [4, 5, 3]], b[:, 6], ["car"] * len(b), rect_SE3_velo.inverse(), "ego")
    points = np.fromfile(demo / "000008.bin", np.float32).reshape(-1, 4)[:, :3]
    pred8 = detector.detect_points(points)
    hit, total = _car_recall(gt8, pred8)
    out["000008"] = {"cars": total, "found_bev_iou_0.5": hit, "recall": hit / total, "detections": len(pred8),
                     "published_points": [i["num_lidar_pts"] for i in instances]}  # fmt: skip
    detector.ground_z_m = 0.0
    return out


def figures(detector, folder: Path) -> list[str]:
    from av_pipeline.figures import BoxOverlay, save_bev, save_camera_overlay
    from av_pipeline.fusion.cuboids import project_cuboids
    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive

    folder.mkdir(parents=True, exist_ok=True)
    drive = SyntheticDrive(SimulationConfig(frames=6, seed=EVAL_SEEDS[0], log_id="eval_figure"))
    frame = drive.frame(5).frame
    points = frame.rig.lidars[frame.lidar.sensor].transform_points(frame.lidar.xyz.astype(np.float64))
    pred = detector.detect(frame)
    shown = pred.subset(pred.scores >= 0.3)
    bev = folder / "prelabels_bev.png"
    save_bev(bev, points, None, {"ground truth": (frame.annotations, "lime"), "pre-labels (score >= 0.3)": (shown, "orangered")},
             title=f"pre-labels of {Path(detector.source).name} on synthetic seed {EVAL_SEEDS[0]}, frame 5 (not trained on)")  # fmt: skip
    rig_camera = frame.rig.camera("front")
    camera, camera_SE3_ego = rig_camera.model, rig_camera.ego_SE3_camera.inverse()
    overlays = {}
    for name, boxes, colour in (("ground truth", frame.annotations, "lime"), ("pre-labels", shown, "orangered")):
        projected = project_cuboids(boxes, camera, camera_SE3_ego, name="front")
        text = [f"{label} {score:.2f}" for label, score in zip(boxes.labels, boxes.scores)] if name == "pre-labels" else list(boxes.labels)
        overlays[name] = BoxOverlay(projected, text, colour)
    cam = folder / "prelabels_camera.png"
    save_camera_overlay(cam, frame.images["front"].decode(), None, overlays, title="pre-labels (3D boxes projected) and ground truth, front camera")
    return [str(bev), str(cam)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(EVAL_SEEDS))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--figures", type=Path, default=None, help="write the two doc figures here")
    args = parser.parse_args()
    detector = load_detector(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"weights": detector.source, "synthetic": synthetic(detector, args.seeds, args.frames, args.batch)}
    print(results["synthetic"]["markdown_before"], "\n\nafter refinement:\n", results["synthetic"]["markdown_after"])
    print("cars within 40 m needing no correction:", json.dumps(results["synthetic"]["cars_within_40m_no_correction"], indent=1))
    if (args.data / "kitti").is_dir():
        results["kitti"] = kitti(detector, args.data)
        print("KITTI:", json.dumps(results["kitti"], indent=1))
    if args.figures:
        results["figures"] = figures(detector, args.figures)
    (args.out / "evaluation.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out / 'evaluation.json'}")


if __name__ == "__main__":
    main()
