"""Benchmark: seconds to generate and write a synthetic drive log (``avp simulate``).

Generates ``--frames`` frames (default 100) with the default sensors: a 64-beam LiDAR with
2083 firings per revolution (about 110k points per sweep, per-point times), cameras front
800x450 and left/right 512x288 (JPEG), ground truth, onboard perception with planted
anomalies, written as a foxglove MCAP plus side files (``--format both`` adds the KITTI raw
drive with PNG images). Reports wall-clock and process CPU seconds (CPU covers every thread,
so it is comparable across runs on a machine that is busy with other work), split into the
set-up (scene, ground truth of every frame, onboard perception) and the per-frame part
(ray casting, shading, encoding, writing), plus the log's size.

Target: 100 frames in under a minute on a 2-core machine.

Run: .venv/bin/python benchmarks/simulate.py [--frames N] [--seed S] [--format mcap|kitti_raw|both] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("mcap", "kitti_raw", "both"), default="mcap")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive, write_synthetic_log

    config = SimulationConfig(frames=args.frames, seed=args.seed, log_id="bench")
    formats = ("mcap", "kitti_raw") if args.format == "both" else (args.format,)
    # warm the numba cache and Open3D once (a fresh checkout compiles the kernels on first use)
    SyntheticDrive(SimulationConfig(frames=1, seed=99)).frame(0)

    with tempfile.TemporaryDirectory() as tmp:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        setup = SyntheticDrive(config)
        setup_wall, setup_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        del setup
        points = []
        wall1, cpu1 = time.perf_counter(), time.process_time()
        log = write_synthetic_log(config, tmp, formats=formats, on_frame=lambda f: points.append(f.frame.lidar.num_points))
        wall, cpu = time.perf_counter() - wall1, time.process_time() - cpu1
        size = folder_size(Path(tmp))
        mcap_size = log.mcap.stat().st_size if log.mcap else 0
    results = {
        "frames": args.frames,
        "format": args.format,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "total_wall_s": round(wall, 2),
        "total_cpu_s": round(cpu, 2),
        "setup_wall_s": round(setup_wall, 2),
        "setup_cpu_s": round(setup_cpu, 2),
        "per_frame_wall_s": round((wall - setup_wall) / args.frames, 3),
        "points_per_frame_mean": round(sum(points) / len(points)),
        "points_per_frame_min_max": [min(points), max(points)],
        "output_bytes": size,
        "mcap_bytes_per_frame": round(mcap_size / args.frames),
    }
    for key, value in results.items():
        print(f"{key:>24}: {value}")
    verdict = "PASS" if wall < 60.0 else "SLOW"
    print(f"{verdict}: {args.frames} frames in {wall:.1f} s wall ({cpu:.1f} s CPU) - target < 60 s for 100 frames")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
