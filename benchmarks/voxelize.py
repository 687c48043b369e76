"""Voxelization benchmark: av_pipeline.voxelize against spconv's ``PointToVoxel``, same process.

Clouds: KITTI 000001 (120,268 points), the nuScenes LIDAR_TOP keyframe (34,688 points), and a
300,000-point sweep made of the KITTI sweep and two copies turned by 0.1 and 0.2 degrees of
yaw (the density of a 128-beam LiDAR). Each runs in the three presets (KITTI SECOND,
KITTI PointPillars, nuScenes CenterPoint).

Method:
- outputs are compared first (voxels, coords, points per voxel): a row says "identical" only
  when every array is bit-identical;
- time: after warm-up, ours and spconv alternate call by call (so both see the same
  machine noise) for ``--repeats`` calls; the table shows the median wall time in ms and the
  ratio spconv / ours, then the same for the process CPU time (all threads), which is what
  to compare on a machine shared with other work (wall time there includes waiting for a
  core). spconv's time is its ``__call__`` (it zeroes and copies its
  ``max_num_voxels`` buffers on every call); ours includes allocating exact-size outputs;
- peak memory: in a fresh process per row and implementation (after loading the clouds and
  a warm-up call on 100 points), the Linux peak RSS (VmHWM) is reset through
  ``/proc/self/clear_refs`` and read after one call, minus the RSS before it. For spconv the
  call includes constructing ``PointToVoxel``, whose CPU path allocates a dense int32 table
  of the whole grid. "n/a" where ``/proc`` does not allow it.

On a machine with a CUDA GPU a second table times the numba.cuda kernels (deterministic and
fast) against spconv's CUDA ``PointToVoxel`` when spconv has CUDA.

Run: ``python benchmarks/voxelize.py [--repeats 100] [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from av_pipeline.voxelize import PRESETS, VoxelGridConfig, voxelize  # noqa: E402


def load_clouds(data: Path) -> dict[str, np.ndarray]:
    kitti = np.fromfile(data / "kitti" / "training" / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    (nuscenes_path,) = sorted((data / "nuscenes_keyframe").glob("*LIDAR_TOP*.pcd.bin"))
    nuscenes = np.fromfile(nuscenes_path, dtype=np.float32).reshape(-1, 5)
    copies = [kitti]
    for yaw_deg in (0.1, 0.2):
        c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
        turned = kitti.copy()
        turned[:, 0] = c * kitti[:, 0] - s * kitti[:, 1]
        turned[:, 1] = s * kitti[:, 0] + c * kitti[:, 1]
        copies.append(turned)
    dense = np.concatenate(copies)[:300_000]
    return {"kitti_000001": kitti, "nuscenes_keyframe": nuscenes, "dense_300k": np.ascontiguousarray(dense)}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def measure_peak_here(implementation: str, cloud_name: str, config_name: str, data: Path) -> float:
    """In a fresh process: peak RSS growth (MiB) of one call, after a warm-up on 100 points
    (which loads the compiled kernels but leaves no large freed blocks to reuse)."""
    points = load_clouds(data)[cloud_name]
    config = PRESETS[config_name]
    if implementation == "ours":
        voxelize(points[:100], config)
        run: Callable[[], object] = lambda: voxelize(points, config)  # noqa: E731
    else:
        import torch

        tensor = torch.from_numpy(points)
        spconv_generator(PRESETS["kitti_pointpillars"], points.shape[1])(tensor[:100])
        run = lambda: spconv_generator(config, points.shape[1])(tensor)  # noqa: E731
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kib("VmRSS")
    kept = run()
    peak = _status_kib("VmHWM") - before
    del kept
    return peak / 1024.0


def peak_mib(implementation: str, cloud_name: str, config_name: str, data: Path) -> float | None:
    """:func:`measure_peak_here` in a subprocess; ``None`` where /proc does not allow it."""
    command = [sys.executable, __file__, "--data", str(data), "--measure-peak", implementation, cloud_name, config_name]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def spconv_generator(config: VoxelGridConfig, num_features: int, device: str = "cpu"):
    import torch
    from spconv.pytorch.utils import PointToVoxel

    return PointToVoxel(
        vsize_xyz=list(config.voxel_size_m),
        coors_range_xyz=list(config.point_range_m),
        num_point_features=num_features,
        max_num_voxels=config.max_num_voxels,
        max_num_points_per_voxel=config.max_num_points_per_voxel,
        device=torch.device(device),
    )


def time_alternating(
    first: Callable[[], object], second: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each, the two called in turn."""
    times_first, times_second = [], []
    for _ in range(repeats):
        start = clock()
        first()
        middle = clock()
        second()
        end = clock()
        times_first.append((middle - start) * 1e3)
        times_second.append((end - middle) * 1e3)
    return times_first, times_second


def cpu_table(clouds: dict[str, np.ndarray], repeats: int, data: Path) -> None:
    import numba
    import torch

    from av_pipeline.voxelize import cpu

    parallel = "parallel" if numba.get_num_threads() >= cpu.PARALLEL_MIN_THREADS else "one-thread"
    print(
        f"CPU: numba {numba.__version__} with {numba.get_num_threads()} threads ({parallel} passes), torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; median of {repeats} alternating calls; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'cloud':18s} {'config':20s} {'points':>7s} {'voxels':>6s} {'ours ms':>8s} {'spconv ms':>9s} {'ratio':>6s} "
        f"{'ours cpu':>8s} {'spconv cpu':>10s} {'ratio':>6s} {'ours MiB':>8s} {'spconv MiB':>10s}  output"
    )
    print(header)
    print("-" * len(header))
    voxelize(clouds["nuscenes_keyframe"][:100], PRESETS["kitti_second"])  # JIT / cache load
    for cloud_name, points in clouds.items():
        tensor = torch.from_numpy(points)
        for config_name, config in PRESETS.items():
            generator = spconv_generator(config, points.shape[1])
            ours = voxelize(points, config)
            voxels, coords, num = generator(tensor)
            identical = (
                np.array_equal(ours.voxels, voxels.numpy())
                and np.array_equal(ours.coords_zyx, coords.numpy())
                and np.array_equal(ours.num_points, num.numpy())
            )
            for _ in range(3):
                voxelize(points, config)
                generator(tensor)
            ours_ms, spconv_ms = time_alternating(lambda: voxelize(points, config), lambda: generator(tensor), repeats)
            ours_cpu, spconv_cpu = time_alternating(
                lambda: voxelize(points, config), lambda: generator(tensor), repeats, time.process_time
            )
            del generator
            ours_peak = peak_mib("ours", cloud_name, config_name, data)
            spconv_peak = peak_mib("spconv", cloud_name, config_name, data)
            ours_median, spconv_median = statistics.median(ours_ms), statistics.median(spconv_ms)
            ours_cpu_median, spconv_cpu_median = statistics.median(ours_cpu), statistics.median(spconv_cpu)
            print(
                f"{cloud_name:18s} {config_name:20s} {len(points):7d} {ours.num_voxels:6d} {ours_median:8.3f} "
                f"{spconv_median:9.3f} {spconv_median / ours_median:5.1f}x {ours_cpu_median:8.3f} {spconv_cpu_median:10.3f} "
                f"{spconv_cpu_median / max(ours_cpu_median, 1e-9):5.1f}x {_mib(ours_peak):>8s} {_mib(spconv_peak):>10s}  "
                f"{'identical' if identical else 'DIFFERENT'}"
            )


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def gpu_table(clouds: dict[str, np.ndarray], repeats: int) -> None:
    try:
        from numba import cuda

        available = cuda.is_available()
    except Exception:
        available = False
    if not available:
        print("\nGPU: no CUDA device (numba.cuda.is_available() is False); GPU rows skipped")
        return
    import torch

    def synced(run: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            out = run()
            torch.cuda.synchronize()
            return out

        return call

    print(f"\nGPU: {torch.cuda.get_device_name(0)}; median of {repeats} alternating calls (synchronised)")
    print(f"{'cloud':18s} {'config':20s} {'ours det ms':>11s} {'ours fast ms':>12s} {'spconv ms':>9s} {'det = CPU':>9s}")
    for cloud_name, points in clouds.items():
        tensor = torch.from_numpy(points).cuda()
        for config_name, config in PRESETS.items():
            cpu = voxelize(points, config)
            det = voxelize(tensor, config)
            same = np.array_equal(det.voxels.cpu().numpy(), cpu.voxels) and np.array_equal(det.coords_zyx.cpu().numpy(), cpu.coords_zyx)
            try:
                generator = spconv_generator(config, points.shape[1], "cuda")
                generator(tensor)
                spconv_call = synced(lambda: generator(tensor))
            except Exception:  # a CPU-only spconv build
                spconv_call = None
            fast_call = synced(lambda: voxelize(tensor, config, deterministic=False))
            det_call = synced(lambda: voxelize(tensor, config))
            for _ in range(3):
                det_call()
                fast_call()
            det_ms, fast_ms = time_alternating(det_call, fast_call, repeats)
            spconv_text = "n/a"
            if spconv_call is not None:
                _, spconv_ms = time_alternating(fast_call, spconv_call, repeats)
                spconv_text = f"{statistics.median(spconv_ms):9.3f}"
            print(
                f"{cloud_name:18s} {config_name:20s} {statistics.median(det_ms):11.3f} {statistics.median(fast_ms):12.3f} "
                f"{spconv_text:>9s} {'yes' if same else 'NO':>9s}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per implementation and row")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data", help="the shared sensor samples")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU table")
    parser.add_argument("--measure-peak", nargs=3, metavar=("IMPL", "CLOUD", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_peak:
        print(f"{measure_peak_here(*args.measure_peak, args.data):.3f}")
        return 0
    if not (args.data / "kitti").is_dir():
        print(f"benchmarks/voxelize.py: shared data not found at {args.data}; nothing to measure")
        return 0
    clouds = load_clouds(args.data)
    cpu_table(clouds, args.repeats, args.data)
    if not args.no_gpu:
        gpu_table(clouds, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



