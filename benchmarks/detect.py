"""Detector inference benchmark: ms per frame on this machine, split into its parts.

Frames: KITTI 000001 (120,268 points, moved to a ground-level ego frame by adding the
LiDAR's 1.73 m mounting height) and synthetic sweeps (about 108,000 points, 360 degrees),
both 110-120k points as the issue asks. Parts (``Detector.stats.last_timings_ms``):
``voxelize`` (hard voxelization + mean of points), ``backbone`` (sparse 3D convolutions,
height compression, 2D BEV backbone), ``head`` (CenterPoint heads), ``decode`` (peaks,
top-k, box decoding, rotated NMS). The median over ``--repeats`` calls after a warm-up is
shown with the load average, plus the voxelization beside spconv's ``PointToVoxel`` on the
same cloud and grid (the peer for that part), and the sparse 3D backbone beside spconv's own
kernels on one torch thread (its only exact CPU setting; see av_pipeline.detect.sparse_cpu).

With ``--device cuda`` (or when torch sees a GPU) the same table is made on the GPU and the
device name is printed.

Run: ``python benchmarks/detect.py [--repeats 20] [--threads 2] [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

KITTI_LIDAR_HEIGHT_M = 1.73


def clouds(data: Path) -> dict[str, np.ndarray]:
    out = {}
    kitti = data / "kitti" / "training" / "velodyne" / "000001.bin"
    if kitti.is_file():
        points = np.fromfile(kitti, dtype=np.float32).reshape(-1, 4)[:, :3].copy()
        points[:, 2] += KITTI_LIDAR_HEIGHT_M
        out["kitti 000001"] = points
    from av_pipeline.detect.training_data import drive_sweeps
    from av_pipeline.detect.train_config import DriveSamplingConfig

    for k, (points, _) in enumerate(drive_sweeps(7, DriveSamplingConfig(frames_per_drive=2, frame_stride=1))):
        out[f"synthetic seed 7 #{k}"] = points
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--weights", default=None, help="shipped weights (default: the package's; random weights if none)")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from av_pipeline.detect import Detector
    from av_pipeline.detect.checkpoint import CheckpointError
    from av_pipeline.detect.config import CPU_SMALL
    from av_pipeline.detect.model import CenterPointNet

    try:
        detector = Detector.from_pretrained(args.weights, device=args.device)
        source = detector.source
    except CheckpointError as exc:
        torch.manual_seed(0)
        detector = Detector(CenterPointNet(CPU_SMALL), CPU_SMALL, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        source = f"random weights ({exc})"
    device = detector.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {name}; weights: {source}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    from spconv.pytorch.utils import PointToVoxel

    grid = detector.config.grid
    header = (
        f"{'cloud':24s} {'points':>8s} {'voxels':>7s} | {'voxelize':>8s} {'backbone':>8s} {'head':>6s} {'decode':>6s} | {'total':>6s} ms | boxes "
        f"| spconv P2V ms | ratio | sparse ms | spconv 1 thread ms | ratio"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for label, points in clouds(args.data).items():
        for _ in range(2):
            detector.detect_points(points)
        parts: dict[str, list[float]] = {k: [] for k in ("voxelize", "backbone", "head", "decode")}
        totals = []
        p2v_times = []
        generator = PointToVoxel(
            vsize_xyz=list(grid.voxel_size_m), coors_range_xyz=list(grid.point_range_m), num_point_features=3,
            max_num_voxels=grid.max_num_voxels, max_num_points_per_voxel=grid.max_num_points_per_voxel,
        )  # fmt: skip
        tensor = torch.from_numpy(points)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            boxes = detector.detect_points(points)
            totals.append((time.perf_counter() - t0) * 1e3)
            for key in parts:
                parts[key].append(detector.stats.last_timings_ms[key])
            t0 = time.perf_counter()
            generator(tensor)
            p2v_times.append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in parts.items()}
        from av_pipeline.detect.targets import voxel_input

        voxels = len(voxel_input(points, detector.config).features)
        p2v = statistics.median(p2v_times)
        rows.append((label, points, voxels, med, statistics.median(totals), len(boxes), p2v))
    # the spconv peer last: switching torch's thread count disturbs the calls that follow
    for label, points, voxels, med, total, n_boxes, p2v in rows:
        sparse_ours, sparse_peer = sparse_side_by_side(detector, points, args.repeats) if device.type == "cpu" else (float("nan"), float("nan"))
        print(
            f"{label:24s} {len(points):8d} {voxels:7d} | {med['voxelize']:8.1f} {med['backbone']:8.1f} {med['head']:6.1f} {med['decode']:6.1f} "
            f"| {total:6.1f} ms | {n_boxes:5d} | {p2v:13.1f} | {p2v / med['voxelize']:.2f}x "
            f"| {sparse_ours:9.1f} | {sparse_peer:18.1f} | {sparse_peer / sparse_ours:.2f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("ratio: spconv PointToVoxel time / our voxelize time (which also averages the points per voxel)")
    print(
        "sparse: the sparse 3D backbone alone, ours (av_pipeline.detect.sparse_cpu, all torch threads) beside spconv's own "
        "kernels on one torch thread (spconv's CPU kernels give a different result on every call with more; one thread "
        "is its exact setting, and ours equals it bit for bit); ratio = spconv / ours"
    )


def sparse_side_by_side(detector, points: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median ms of the sparse backbone: ours with the benchmark's threads, spconv's on one thread, alternating."""
    import torch

    from av_pipeline.detect.targets import voxel_input

    vox = voxel_input(points, detector.config)
    coords = np.column_stack([np.zeros(len(vox.coords_zyx), np.int32), vox.coords_zyx]).astype(np.int32)
    features = torch.from_numpy(vox.features)
    sparse = detector.model.sparse
    threads = torch.get_num_threads()
    ours, peer = [], []
    with torch.inference_mode():
        for k in range(repeats + 1):
            t0 = time.perf_counter()
            sparse.forward_cpu(features, coords, 1)
            t1 = time.perf_counter()
            torch.set_num_threads(1)
            try:
                sparse(features, torch.from_numpy(coords), 1)
            finally:
                torch.set_num_threads(threads)
            t2 = time.perf_counter()
            if k:  # the first round warms up
                ours.append((t1 - t0) * 1e3)
                peer.append((t2 - t1) * 1e3)
    return statistics.median(ours), statistics.median(peer)


if __name__ == "__main__":
    main()
