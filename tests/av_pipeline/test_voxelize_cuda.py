"""numba.cuda voxelization: the same parity checks under the CUDA simulator and on a real GPU.

The simulator must be switched on before numba.cuda is first imported, so those checks run
in a subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (the pytest process, and the other tests in
it, keep the real numba.cuda). They use clouds of a few hundred points: the simulator runs
every GPU thread as a Python thread.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.voxelize import (
    KITTI_POINTPILLARS,
    KITTI_SECOND,
    NUSCENES_CENTERPOINT,
    VoxelGridConfig,
    voxelize,
    voxelize_batch,
    voxelize_dynamic,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"kitti_second": KITTI_SECOND, "kitti_pointpillars": KITTI_POINTPILLARS, "nuscenes": NUSCENES_CENTERPOINT}
HARD_FIELDS = ("voxels", "coords_zyx", "num_points", "point_voxel_id")
COUNT_FIELDS = ("num_input_points", "num_dropped_nonfinite", "num_dropped_out_of_range", "num_dropped_voxel_cap", "num_dropped_full_voxel")
DYNAMIC_FIELDS = ("point_voxel_id", "coords_zyx", "mean_features", "num_points")


def _host(array: object) -> np.ndarray:
    if hasattr(array, "copy_to_host"):
        return array.copy_to_host()
    if hasattr(array, "cpu"):
        return array.cpu().numpy()
    return np.asarray(array)


def assert_same_hard(gpu: object, cpu: object) -> None:
    """Deterministic mode: every array and count identical to the CPU's."""
    for name in HARD_FIELDS:
        np.testing.assert_array_equal(_host(getattr(gpu, name)), getattr(cpu, name), err_msg=name)
    for name in COUNT_FIELDS:
        assert getattr(gpu, name) == getattr(cpu, name), name


def assert_same_hard_as_sets(gpu: object, cpu: object) -> None:
    """Fast mode with caps that do not bind: same voxels, each with the same points."""
    coords, voxels, num = (_host(getattr(gpu, n)) for n in ("coords_zyx", "voxels", "num_points"))
    order = np.lexsort(coords.T[::-1])
    cpu_order = np.lexsort(cpu.coords_zyx.T[::-1])
    np.testing.assert_array_equal(coords[order], cpu.coords_zyx[cpu_order])
    np.testing.assert_array_equal(num[order], cpu.num_points[cpu_order])
    for g, c in zip(order, cpu_order):
        rows = voxels[g, : num[g]]
        cpu_rows = cpu.voxels[c, : cpu.num_points[c]]
        np.testing.assert_array_equal(rows[np.lexsort(rows.T[::-1])], cpu_rows[np.lexsort(cpu_rows.T[::-1])])
        assert not voxels[g, num[g] :].any()
    point_ids = _host(gpu.point_voxel_id)
    kept = cpu.point_voxel_id >= 0
    np.testing.assert_array_equal(point_ids >= 0, kept)
    np.testing.assert_array_equal(coords[point_ids[kept]], cpu.coords_zyx[cpu.point_voxel_id[kept]])
    for name in COUNT_FIELDS:
        assert getattr(gpu, name) == getattr(cpu, name), name


def assert_same_dynamic(gpu: object, cpu: object, *, exact: bool) -> None:
    if exact:
        for name in DYNAMIC_FIELDS:
            np.testing.assert_array_equal(_host(getattr(gpu, name)), getattr(cpu, name), err_msg=name)
    else:  # any voxel order: map GPU ids to CPU ids through the coords
        coords = _host(gpu.coords_zyx)
        lookup = {tuple(c): i for i, c in enumerate(cpu.coords_zyx.tolist())}
        to_cpu = np.array([lookup[tuple(c)] for c in coords.tolist()], dtype=np.int64)
        assert sorted(to_cpu.tolist()) == list(range(cpu.num_voxels))
        point_ids = _host(gpu.point_voxel_id)
        mapped = np.where(point_ids >= 0, to_cpu[np.maximum(point_ids, 0)], -1)
        np.testing.assert_array_equal(mapped, cpu.point_voxel_id)
        np.testing.assert_array_equal(_host(gpu.num_points), cpu.num_points[to_cpu])
        np.testing.assert_allclose(_host(gpu.mean_features), cpu.mean_features[to_cpu], rtol=1e-6)
    assert gpu.num_dropped_nonfinite == cpu.num_dropped_nonfinite
    assert gpu.num_dropped_out_of_range == cpu.num_dropped_out_of_range


def _edge_cloud(config: VoxelGridConfig) -> np.ndarray:
    from tests.av_pipeline.test_voxelize import _edge_values

    grid_xyz = config.grid_size_xyz
    centre = [np.float32((config.point_range_m[a] + config.point_range_m[a + 3]) / 2) for a in range(3)]
    rows = []
    for axis in range(3):
        for value in _edge_values(config.point_range_m[axis], config.point_range_m[axis + 3], config.voxel_size_m[axis], grid_xyz[axis]):
            row = list(centre)
            row[axis] = value
            rows.append(row + [np.float32(len(rows))])
    return np.array(rows, dtype=np.float32)


def dense_cloud(config: VoxelGridConfig, num_points: int, seed: int, num_features: int = 4) -> np.ndarray:
    """Points within a few voxels of the range's lower corner (some below it): small clouds
    that fill voxels past ``P`` and make more voxels than a small ``max_num_voxels``."""
    rng = np.random.default_rng(seed)
    voxel = np.array(config.voxel_size_m)
    grid = np.array(config.grid_size_xyz)
    centre = np.array(config.point_range_m[:3]) + voxel * np.minimum(3.0, grid / 2)
    half_width = voxel * np.minimum(4.0, grid / 2 + 0.5)
    xyz = rng.uniform(centre - half_width, centre + half_width, size=(num_points, 3))
    extra = rng.uniform(0.0, 1.0, size=(num_points, num_features - 3))
    return np.concatenate([xyz, extra], axis=1).astype(np.float32)


# ------------------------------------------------------------------ checks run in the simulator
def run_simulator_checks(part: str) -> None:
    """Run in a subprocess with NUMBA_ENABLE_CUDASIM=1 (see the tests below)."""
    import warnings

    warnings.simplefilter("ignore")  # the simulator computes the uint64 hash with numpy scalars
    from numba import cuda

    from av_pipeline.voxelize import cuda as cuda_voxelize
    from tests.av_pipeline.test_voxelize import spconv_ids_without_overflow, spconv_voxelize

    assert cuda_voxelize.THREADS_PER_BLOCK == 32, "the simulator was not switched on"
    if part == "hard":
        for seed, (name, config) in enumerate(sorted(CONFIGS.items())):
            tight = dataclasses.replace(config, max_num_points_per_voxel=2, max_num_voxels=40)
            points = dense_cloud(tight, 240, seed=seed)
            points[3, 0] = np.nan
            points[17, 3] = np.inf
            cpu = voxelize(points, tight, return_point_voxel_id=True)
            assert cpu.num_dropped_voxel_cap > 0 and cpu.num_dropped_full_voxel > 0, name
            gpu = voxelize(cuda.to_device(points), tight, return_point_voxel_id=True)  # dispatch by location
            assert_same_hard(gpu, cpu)
            finite = np.isfinite(points).all(axis=1)
            voxels, coords, num, point_ids = spconv_voxelize(points[finite], tight)
            np.testing.assert_array_equal(_host(gpu.voxels), voxels)
            np.testing.assert_array_equal(_host(gpu.coords_zyx), coords)
            np.testing.assert_array_equal(_host(gpu.num_points), num)
            np.testing.assert_array_equal(_host(gpu.point_voxel_id)[finite], spconv_ids_without_overflow(point_ids, 2))
            loose = dataclasses.replace(config, max_num_points_per_voxel=1000, max_num_voxels=1000)
            fast = cuda_voxelize.voxelize_cuda(points, loose, return_point_voxel_id=True, deterministic=False)
            assert_same_hard_as_sets(fast, voxelize(points, loose, return_point_voxel_id=True))
            edges = _edge_cloud(config)
            assert_same_hard(
                cuda_voxelize.voxelize_cuda(edges, config, return_point_voxel_id=True),
                voxelize(edges, config, return_point_voxel_id=True),
            )
        # a scan over several tiles
        values = np.random.default_rng(0).integers(0, 5, 1500).astype(np.int64)
        offsets, total = cuda_voxelize._scan_with_total(cuda.to_device(values), cuda_voxelize.DeviceContext())
        np.testing.assert_array_equal(offsets.copy_to_host(), np.concatenate([[0], np.cumsum(values)]))
        assert total == int(values.sum())
        # a caller-supplied allocator (the path torch tensors take with torch's allocator)
        allocated = []
        device = cuda_voxelize.DeviceContext(allocate=lambda shape, dtype: allocated.append(shape) or cuda.device_array(shape, dtype))
        points = dense_cloud(KITTI_SECOND, 200, seed=5)
        assert_same_hard(
            cuda_voxelize.voxelize_cuda(points, KITTI_SECOND, return_point_voxel_id=True, device=device),
            voxelize(points, KITTI_SECOND, return_point_voxel_id=True),
        )
        assert len(allocated) > 5
        empty = cuda_voxelize.voxelize_cuda(np.zeros((0, 4), np.float32), KITTI_SECOND, return_point_voxel_id=True)
        assert _host(empty.voxels).shape == (0, 5, 4) and empty.num_kept_points == 0
    elif part == "dynamic":
        for seed, (name, config) in enumerate(sorted(CONFIGS.items())):
            points = dense_cloud(config, 240, seed=10 + seed, num_features=5)
            points[5, 2] = -np.inf
            cpu = voxelize_dynamic(points, config)
            assert_same_dynamic(voxelize_dynamic(cuda.to_device(points), config), cpu, exact=True)
            assert_same_dynamic(cuda_voxelize.voxelize_dynamic_cuda(points, config, deterministic=False), cpu, exact=False)
        clouds = [dense_cloud(KITTI_SECOND, n, seed=n) for n in (120, 90)]
        batch = voxelize_batch([cuda.to_device(c) for c in clouds], KITTI_SECOND)
        cpu_batch = voxelize_batch(clouds, KITTI_SECOND)
        np.testing.assert_array_equal(_host(batch.coords_bzyx), cpu_batch.coords_bzyx)
        np.testing.assert_array_equal(_host(batch.voxels), cpu_batch.voxels)
        assert batch.voxel_offsets == cpu_batch.voxel_offsets
    else:
        raise ValueError(f"part: expected 'hard' or 'dynamic', got {part!r}")


@pytest.mark.slow
@pytest.mark.parametrize("part", ["hard", "dynamic"])
def test_cuda_kernels_match_cpu_and_spconv_in_simulator(part: str) -> None:
    pytest.importorskip("spconv.pytorch.utils")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    code = f"from tests.av_pipeline.test_voxelize_cuda import run_simulator_checks; run_simulator_checks({part!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


# ------------------------------------------------------------------ a real GPU
def _real_gpu_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False  # the simulator says "available"; the real-size checks would take hours
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver, no toolkit
        return False


needs_gpu = pytest.mark.skipif(not _real_gpu_available(), reason="no CUDA GPU (numba.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def real_sweeps(shared_data: Path) -> dict[str, np.ndarray]:
    kitti = np.fromfile(shared_data / "kitti" / "training" / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    (nuscenes_path,) = sorted((shared_data / "nuscenes_keyframe").glob("*LIDAR_TOP*.pcd.bin"))
    return {"kitti": kitti, "nuscenes": np.fromfile(nuscenes_path, dtype=np.float32).reshape(-1, 5)}


@needs_gpu
@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_real_gpu_matches_cpu_on_real_sweeps(real_sweeps: dict[str, np.ndarray], name: str) -> None:
    from numba import cuda

    config = CONFIGS[name]
    for sweep in real_sweeps.values():
        cpu = voxelize(sweep, config, return_point_voxel_id=True)
        assert_same_hard(voxelize(cuda.to_device(sweep), config, return_point_voxel_id=True), cpu)
        loose = dataclasses.replace(config, max_num_voxels=len(sweep), max_num_points_per_voxel=len(sweep))
        fast = voxelize(cuda.to_device(sweep), loose, return_point_voxel_id=True, deterministic=False)
        assert_same_hard_as_sets(fast, voxelize(sweep, loose, return_point_voxel_id=True))
        cpu_dynamic = voxelize_dynamic(sweep, config)
        assert_same_dynamic(voxelize_dynamic(cuda.to_device(sweep), config), cpu_dynamic, exact=True)
        assert_same_dynamic(voxelize_dynamic(cuda.to_device(sweep), config, deterministic=False), cpu_dynamic, exact=False)


@needs_gpu
def test_real_gpu_torch_cuda_tensors_in_and_out() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from tests.av_pipeline.test_voxelize import random_cloud

    points = random_cloud(NUSCENES_CENTERPOINT, 200000, seed=1, num_features=5)
    result = voxelize(torch.from_numpy(points).cuda(), NUSCENES_CENTERPOINT, return_point_voxel_id=True)
    assert result.voxels.is_cuda and result.coords_zyx.dtype == torch.int32
    assert_same_hard(result, voxelize(points, NUSCENES_CENTERPOINT, return_point_voxel_id=True))
    batch = voxelize_batch([torch.from_numpy(points[:1000]).cuda(), torch.from_numpy(points[1000:]).cuda()], NUSCENES_CENTERPOINT)
    assert batch.coords_bzyx.is_cuda and batch.coords_bzyx.shape[1] == 4


@needs_gpu
def test_real_gpu_matches_spconv_cuda() -> None:
    torch = pytest.importorskip("torch")
    spconv_utils = pytest.importorskip("spconv.pytorch.utils")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from tests.av_pipeline.test_voxelize import random_cloud

    config = dataclasses.replace(KITTI_SECOND, max_num_voxels=200000)
    points = random_cloud(config, 100000, seed=3)
    try:
        generator = spconv_utils.PointToVoxel(
            list(config.voxel_size_m), list(config.point_range_m), 4, config.max_num_voxels,
            config.max_num_points_per_voxel, device=torch.device("cuda:0"),
        )
        voxels, coords, num = generator(torch.from_numpy(points).cuda())
    except Exception as exc:  # a CPU-only spconv build
        pytest.skip(f"spconv has no CUDA PointToVoxel here: {exc}")
    ours = voxelize(torch.from_numpy(points).cuda(), config, deterministic=False)
    ours_order = np.lexsort(_host(ours.coords_zyx).T[::-1])
    spconv_order = np.lexsort(coords.cpu().numpy().T[::-1])
    np.testing.assert_array_equal(_host(ours.coords_zyx)[ours_order], coords.cpu().numpy()[spconv_order])
    np.testing.assert_array_equal(_host(ours.num_points)[ours_order], num.cpu().numpy()[spconv_order])
