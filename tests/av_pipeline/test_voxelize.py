"""Voxelization on the CPU, checked point for point against spconv's ``PointToVoxel``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import ConfigError, ShapeError
from av_pipeline.voxelize import (
    KITTI_POINTPILLARS,
    KITTI_SECOND,
    NUSCENES_CENTERPOINT,
    PRESETS,
    VoxelGridConfig,
    voxelize,
    voxelize_batch,
    voxelize_dynamic,
)

torch = pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"kitti_second": KITTI_SECOND, "kitti_pointpillars": KITTI_POINTPILLARS, "nuscenes": NUSCENES_CENTERPOINT}

_GENERATORS: dict[tuple, object] = {}


def spconv_voxelize(points: np.ndarray, config: VoxelGridConfig):
    """spconv's CPU PointToVoxel (generators cached: the SECOND one holds a 344 MiB table)."""
    spconv_utils = pytest.importorskip("spconv.pytorch.utils")
    key = (config, points.shape[1])
    if key not in _GENERATORS:
        _GENERATORS[key] = spconv_utils.PointToVoxel(
            vsize_xyz=list(config.voxel_size_m),
            coors_range_xyz=list(config.point_range_m),
            num_point_features=points.shape[1],
            max_num_voxels=config.max_num_voxels,
            max_num_points_per_voxel=config.max_num_points_per_voxel,
        )
    voxels, coords, num, point_ids = _GENERATORS[key].generate_voxel_with_id(torch.from_numpy(points), empty_mean=False)
    return voxels.numpy(), coords.numpy(), num.numpy(), point_ids.numpy()


def spconv_ids_without_overflow(point_ids: np.ndarray, max_points: int) -> np.ndarray:
    """spconv gives points beyond a voxel's first P that voxel's id; ours are -1."""
    expected = point_ids.copy()
    seen: dict[int, int] = {}
    for i, voxel in enumerate(point_ids.tolist()):
        if voxel >= 0:
            seen[voxel] = seen.get(voxel, 0) + 1
            if seen[voxel] > max_points:
                expected[i] = -1
    return expected


def assert_matches_spconv(points: np.ndarray, config: VoxelGridConfig) -> None:
    ours = voxelize(points, config, return_point_voxel_id=True)
    voxels, coords, num, point_ids = spconv_voxelize(points, config)
    assert ours.voxels.dtype == np.float32 and ours.coords_zyx.dtype == np.int32 and ours.num_points.dtype == np.int32
    np.testing.assert_array_equal(ours.coords_zyx, coords)
    np.testing.assert_array_equal(ours.num_points, num)
    np.testing.assert_array_equal(ours.voxels, voxels)
    np.testing.assert_array_equal(ours.point_voxel_id, spconv_ids_without_overflow(point_ids, config.max_num_points_per_voxel))
    assert ours.num_kept_points == int(num.sum())
    assert ours.num_kept_points == int((ours.point_voxel_id >= 0).sum())


def random_cloud(config: VoxelGridConfig, num_points: int, seed: int, num_features: int = 4) -> np.ndarray:
    """Points over the range and a margin around it, half of them in a few dense clusters."""
    rng = np.random.default_rng(seed)
    low = np.array(config.point_range_m[:3])
    high = np.array(config.point_range_m[3:])
    margin = 0.05 * (high - low)
    spread = rng.uniform(low - margin, high + margin, size=(num_points - num_points // 2, 3))
    centres = rng.uniform(low, high, size=(8, 3))
    cluster = centres[rng.integers(0, 8, num_points // 2)] + rng.normal(0.0, 2.0 * np.array(config.voxel_size_m), (num_points // 2, 3))
    xyz = np.concatenate([spread, cluster])[rng.permutation(num_points)]
    extra = rng.uniform(0.0, 1.0, size=(num_points, num_features - 3))
    return np.concatenate([xyz, extra], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def kitti_sweep(shared_data: Path) -> np.ndarray:
    path = shared_data / "kitti" / "training" / "velodyne" / "000001.bin"
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


@pytest.fixture(scope="module")
def nuscenes_sweep(shared_data: Path) -> np.ndarray:
    (path,) = sorted((shared_data / "nuscenes_keyframe").glob("*LIDAR_TOP*.pcd.bin"))
    return np.fromfile(path, dtype=np.float32).reshape(-1, 5)


# ------------------------------------------------------------------ parity with spconv
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_random_clouds_match_spconv(name: str, seed: int) -> None:
    assert_matches_spconv(random_cloud(CONFIGS[name], 20000, seed), CONFIGS[name])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_clouds_match_spconv_when_caps_bind(name: str) -> None:
    config = dataclasses.replace(CONFIGS[name], max_num_points_per_voxel=3, max_num_voxels=500)
    points = random_cloud(config, 6000, seed=7, num_features=5)
    result = voxelize(points, config)
    assert result.num_voxels == 500 and result.num_dropped_voxel_cap > 0 and result.num_dropped_full_voxel > 0
    assert_matches_spconv(points, config)


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kitti_sweep_matches_spconv(kitti_sweep: np.ndarray, name: str) -> None:
    assert_matches_spconv(kitti_sweep, CONFIGS[name])


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_nuscenes_sweep_matches_spconv(nuscenes_sweep: np.ndarray, name: str) -> None:
    assert_matches_spconv(nuscenes_sweep, CONFIGS[name])


@pytest.mark.realdata
def test_real_sweeps_match_spconv_when_caps_bind(kitti_sweep: np.ndarray, nuscenes_sweep: np.ndarray) -> None:
    # KITTI 000001 has 44,279 SECOND voxels, so the preset's 40,000 binds already.
    assert voxelize(kitti_sweep, KITTI_SECOND).num_dropped_voxel_cap > 0
    for sweep, config in ((kitti_sweep, KITTI_POINTPILLARS), (nuscenes_sweep, NUSCENES_CENTERPOINT)):
        tight = dataclasses.replace(config, max_num_points_per_voxel=2, max_num_voxels=3000)
        result = voxelize(sweep, tight)
        assert result.num_dropped_voxel_cap > 0 and result.num_dropped_full_voxel > 0
        assert_matches_spconv(sweep, tight)


def _edge_values(low: float, high: float, size: float, grid: int) -> np.ndarray:
    """Range edges, voxel boundaries, and their float32 neighbours."""
    low32, high32 = np.float32(low), np.float32(high)
    values = [low32, high32, np.float32(low + grid * size), np.float32(low32 + np.float32(grid) * np.float32(size))]
    for k in (1, 2, grid // 2, grid - 1):
        values += [np.float32(low + k * size), np.float32(low32 + np.float32(k) * np.float32(size))]
    values = np.array(values, dtype=np.float32)
    return np.unique(np.concatenate([values, np.nextafter(values, np.float32(-np.inf)), np.nextafter(values, np.float32(np.inf))]))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_points_on_range_edges_match_spconv(name: str) -> None:
    config = CONFIGS[name]
    grid_xyz = config.grid_size_xyz
    edges = [
        _edge_values(config.point_range_m[a], config.point_range_m[a + 3], config.voxel_size_m[a], grid_xyz[a])
        for a in range(3)
    ]
    centre = [np.float32((config.point_range_m[a] + config.point_range_m[a + 3]) / 2) for a in range(3)]
    rows = []
    for axis in range(3):  # one axis on an edge, the others inside
        for value in edges[axis]:
            row = list(centre)
            row[axis] = value
            rows.append(row)
    grid = np.stack(np.meshgrid(*edges, indexing="ij"), axis=-1).reshape(-1, 3)  # corners
    points = np.concatenate([np.array(rows, dtype=np.float32), grid.astype(np.float32)])
    points = np.concatenate([points, np.arange(len(points), dtype=np.float32)[:, None]], axis=1)
    assert_matches_spconv(points, dataclasses.replace(config, max_num_voxels=len(points)))
    # the lower edge is inside, one float32 step below it is not
    low = np.array([config.point_range_m[:3]], dtype=np.float32)
    below = np.nextafter(low, np.float32(-np.inf))
    result = voxelize(np.concatenate([low, below]), config, return_point_voxel_id=True)
    assert result.point_voxel_id.tolist() == [0, -1]
    assert result.coords_zyx.tolist() == [[0, 0, 0]]


def test_matches_spconv_for_odd_grids_and_feature_counts() -> None:
    config = VoxelGridConfig((0.3, 0.7, 0.25), (-3.0, -2.1, -1.0, 3.0, 2.1, 1.5), 4, 300)
    for num_features in (3, 4, 7):
        assert_matches_spconv(random_cloud(config, 5000, seed=num_features, num_features=num_features), config)


# ------------------------------------------------------------------ bad input
def test_nonfinite_points_are_dropped_and_counted() -> None:
    points = random_cloud(KITTI_SECOND, 3000, seed=3)
    bad_rows = np.array([0, 10, 11, 500, 2999])
    points[0, 0] = np.nan
    points[10, 1] = np.inf
    points[11, 2] = -np.inf
    points[500, 3] = np.nan  # intensity only: spconv would store a NaN feature
    points[2999] = np.nan
    result = voxelize(points, KITTI_SECOND, return_point_voxel_id=True)
    assert result.num_dropped_nonfinite == 5
    assert (result.point_voxel_id[bad_rows] == -1).all()
    assert np.isfinite(result.voxels).all()
    finite = np.setdiff1d(np.arange(len(points)), bad_rows)
    clean = voxelize(points[finite], KITTI_SECOND, return_point_voxel_id=True)
    np.testing.assert_array_equal(result.voxels, clean.voxels)
    np.testing.assert_array_equal(result.coords_zyx, clean.coords_zyx)
    np.testing.assert_array_equal(result.point_voxel_id[finite], clean.point_voxel_id)
    assert result.num_dropped_out_of_range == clean.num_dropped_out_of_range
    assert_matches_spconv(points[finite], KITTI_SECOND)


def test_counts_add_up() -> None:
    config = dataclasses.replace(KITTI_POINTPILLARS, max_num_points_per_voxel=2, max_num_voxels=200)
    points = random_cloud(config, 5000, seed=11)
    points[::97, 1] = np.nan
    result = voxelize(points, config, return_point_voxel_id=True)
    dropped = (
        result.num_dropped_nonfinite
        + result.num_dropped_out_of_range
        + result.num_dropped_voxel_cap
        + result.num_dropped_full_voxel
    )
    assert result.num_input_points == 5000 == result.num_kept_points + dropped
    assert result.num_kept_points == int(result.num_points.sum()) == int((result.point_voxel_id >= 0).sum())
    assert min(result.num_dropped_nonfinite, result.num_dropped_out_of_range, result.num_dropped_voxel_cap) > 0


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.zeros((10,), np.float32), r"points: expected an \(N, 3\+\) float32 array .*got \(10,\) float32 ndarray"),
        (np.zeros((10, 2), np.float32), r"got \(10, 2\) float32 ndarray"),
        (np.zeros((2, 4, 3), np.float32), r"got \(2, 4, 3\) float32 ndarray"),
        (np.zeros((10, 4), np.float64), r"got \(10, 4\) float64 ndarray; convert explicitly"),
        (np.zeros((10, 4), np.int32), r"got \(10, 4\) int32 ndarray"),
        ([[0.0, 0.0, 0.0]], r"got list"),
    ],
)
def test_bad_points_raise_shape_error(points: object, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        voxelize(points, KITTI_SECOND)
    with pytest.raises(ShapeError, match=message):
        voxelize_dynamic(points, KITTI_SECOND)


def test_torch_float64_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"got \(5, 4\) float64 Tensor"):
        voxelize(torch.zeros((5, 4), dtype=torch.float64), KITTI_SECOND)


def test_empty_cloud_gives_empty_outputs() -> None:
    result = voxelize(np.zeros((0, 4), np.float32), KITTI_SECOND, return_point_voxel_id=True)
    assert result.voxels.shape == (0, 5, 4) and result.coords_zyx.shape == (0, 3) and result.num_points.shape == (0,)
    assert result.point_voxel_id.shape == (0,) and result.num_kept_points == 0
    dynamic = voxelize_dynamic(np.zeros((0, 5), np.float32), NUSCENES_CENTERPOINT)
    assert dynamic.mean_features.shape == (0, 5) and dynamic.point_voxel_id.shape == (0,)


def test_noncontiguous_input_is_handled() -> None:
    wide = random_cloud(KITTI_SECOND, 4000, seed=5, num_features=8)
    view = wide[::2, :4]
    assert not view.flags.c_contiguous
    expected = voxelize(np.ascontiguousarray(view), KITTI_SECOND)
    np.testing.assert_array_equal(voxelize(view, KITTI_SECOND).voxels, expected.voxels)


# ------------------------------------------------------------------ config
def test_presets_grids_match_spconv() -> None:
    spconv_utils = pytest.importorskip("spconv.pytorch.utils")
    expected = {"kitti_second": (40, 1600, 1408), "kitti_pointpillars": (1, 496, 432), "nuscenes_centerpoint": (40, 1024, 1024)}
    for name, config in PRESETS.items():
        assert config.grid_size_zyx == expected[name]
        generator = spconv_utils.PointToVoxel(list(config.voxel_size_m), list(config.point_range_m), 4, 1, 1)
        assert tuple(generator.grid_size) == config.grid_size_zyx


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point_range_m": (0, -40, -3, 70.33, 40, 1)}, r"x extent \[0.0, 70.33\] m is 1406.6 voxels of 0.05 m, expected a whole number"),
        ({"point_range_m": (0, -40, -3, 70.4, 40, 1.05)}, r"z extent \[-3.0, 1.05\] m is 40.5 voxels"),
        ({"voxel_size_m": (0.05, 0.0, 0.1)}, r"voxel_size_m: expected positive sizes, got y = 0.0 m"),
        ({"voxel_size_m": (0.05, 0.05)}, r"voxel_size_m: expected 3 numbers, got shape \(2,\)"),
        ({"point_range_m": (0, -40, -3, 70.4, 40)}, r"point_range_m: expected 6 numbers"),
        ({"point_range_m": (0, 40, -3, 70.4, -40, 1)}, r"expected ymax > ymin, got \[40.0, -40.0\]"),
        ({"voxel_size_m": (0.05, np.nan, 0.1)}, r"voxel_size_m: expected finite numbers"),
        ({"max_num_points_per_voxel": 0}, r"max_num_points_per_voxel: expected an int in \[1, 2\*\*31 - 1\], got 0"),
        ({"max_num_voxels": 2.5}, r"max_num_voxels: expected a positive int, got 2.5 \(float\)"),
        ({"voxel_size_m": (1e-6, 0.05, 0.1), "point_range_m": (0, -40, -3, 70.4, 40, 1)}, r"expected 1 to 2097152 voxels per axis"),
    ],
)
def test_bad_configs_raise_config_error(kwargs: dict, message: str) -> None:
    base = {"voxel_size_m": (0.05, 0.05, 0.1), "point_range_m": (0, -40, -3, 70.4, 40, 1), "max_num_points_per_voxel": 5, "max_num_voxels": 100}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        VoxelGridConfig(**base)


def test_range_tolerance_accepts_float_round_off() -> None:
    # 1e-4 of a voxel off: float noise, accepted and rounded as spconv rounds it
    config = VoxelGridConfig((0.16, 0.16, 4.0), (0.0, -39.68, -3.0, 69.12 + 0.16e-4, 39.68, 1.0), 32, 100)
    assert config.grid_size_zyx == (1, 496, 432)
    with pytest.raises(ConfigError, match="within 0.001 voxel"):
        VoxelGridConfig((0.16, 0.16, 4.0), (0.0, -39.68, -3.0, 69.12 + 0.16e-2, 39.68, 1.0), 32, 100)


# ------------------------------------------------------------------ memory and scale
def test_memory_does_not_grow_with_the_grid() -> None:
    # 1 mm voxels over +-1 km: 4e17 cells; a dense table (spconv's CPU path) is impossible.
    config = VoxelGridConfig((0.001, 0.001, 0.001), (-1000.0, -1000.0, -50.0, 1000.0, 1000.0, 50.0), 4, 100000)
    points = random_cloud(config, 20000, seed=2)
    tracemalloc.start()
    try:
        result = voxelize(points, config, return_point_voxel_id=True)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 5_000_000
    assert result.num_kept_points > 0
    expected = np.floor((points[:, :3] - np.float32([-1000.0, -1000.0, -50.0])) / np.float32(0.001)).astype(np.int64)
    kept = result.point_voxel_id >= 0
    np.testing.assert_array_equal(result.coords_zyx[result.point_voxel_id[kept]], expected[kept][:, ::-1])


# ------------------------------------------------------------------ dynamic voxelization
def _dynamic_reference(points: np.ndarray, config: VoxelGridConfig):
    low = np.asarray(config.point_range_m[:3], np.float32)
    size = np.asarray(config.voxel_size_m, np.float32)
    cells = np.floor((points[:, :3] - low) / size)
    inside = np.isfinite(points).all(axis=1) & (cells >= 0).all(axis=1) & (cells < np.array(config.grid_size_xyz)).all(axis=1)
    coords = cells[inside][:, ::-1].astype(np.int32)
    unique, first, inverse = np.unique(coords, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # first-hit order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    point_ids = np.full(len(points), -1, np.int64)
    point_ids[inside] = rank[inverse.reshape(-1)]
    means = np.zeros((len(unique), points.shape[1]))
    np.add.at(means, point_ids[inside], points[inside].astype(np.float64))
    counts = np.bincount(point_ids[inside], minlength=len(unique))
    return point_ids, unique[order], (means / counts[:, None]).astype(np.float32), counts


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dynamic_matches_reference(name: str) -> None:
    config = CONFIGS[name]
    points = random_cloud(config, 20000, seed=4)
    points[::101, 0] = np.inf
    result = voxelize_dynamic(points, config)
    point_ids, coords, means, counts = _dynamic_reference(points, config)
    np.testing.assert_array_equal(result.point_voxel_id, point_ids)
    np.testing.assert_array_equal(result.coords_zyx, coords)
    np.testing.assert_array_equal(result.num_points, counts)
    np.testing.assert_allclose(result.mean_features, means, rtol=1e-6, atol=1e-6)
    assert result.num_dropped_nonfinite == len(points[::101])
    assert result.num_dropped_out_of_range == int(((point_ids == -1).sum()) - result.num_dropped_nonfinite)


def test_dynamic_agrees_with_hard_without_caps() -> None:
    points = random_cloud(KITTI_POINTPILLARS, 10000, seed=6)
    dynamic = voxelize_dynamic(points, KITTI_POINTPILLARS)
    hard = voxelize(points, dataclasses.replace(KITTI_POINTPILLARS, max_num_points_per_voxel=10000, max_num_voxels=10000), return_point_voxel_id=True)
    np.testing.assert_array_equal(dynamic.point_voxel_id, hard.point_voxel_id)
    np.testing.assert_array_equal(dynamic.coords_zyx, hard.coords_zyx)
    np.testing.assert_array_equal(dynamic.num_points, hard.num_points)
    hard_means = hard.voxels.astype(np.float64).sum(axis=1) / hard.num_points[:, None]
    np.testing.assert_allclose(dynamic.mean_features, hard_means, rtol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize(("config", "num_voxels"), [(KITTI_SECOND, 44279), (KITTI_POINTPILLARS, 14840)])
def test_dynamic_on_kitti_sweep(kitti_sweep: np.ndarray, config: VoxelGridConfig, num_voxels: int) -> None:
    result = voxelize_dynamic(kitti_sweep, config)
    point_ids, coords, means, counts = _dynamic_reference(kitti_sweep, config)
    np.testing.assert_array_equal(result.point_voxel_id, point_ids)
    np.testing.assert_array_equal(result.coords_zyx, coords)
    np.testing.assert_array_equal(result.num_points, counts)
    np.testing.assert_allclose(result.mean_features, means, rtol=1e-6, atol=1e-6)
    assert result.num_voxels == num_voxels


def test_dense_and_hash_tables_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from av_pipeline.voxelize import cpu

    # PointPillars' grid (214,272 cells) fits the memory of a hash table for 40,000 voxels
    assert cpu._voxel_table(KITTI_POINTPILLARS, 40000)[2] == 432
    assert cpu._voxel_table(KITTI_SECOND, 40000)[2] == 0
    config = dataclasses.replace(KITTI_POINTPILLARS, max_num_points_per_voxel=4, max_num_voxels=33000)
    points = random_cloud(config, 120000, seed=9)
    real_table = cpu._voxel_table
    kinds = []

    def spy(config: VoxelGridConfig, num_keys: int):
        table = real_table(config, num_keys)
        kinds.append("dense" if table[2] else "hash")
        return table

    monkeypatch.setattr(cpu, "_voxel_table", spy)
    dense = voxelize(points, config, return_point_voxel_id=True)
    dense_dynamic = voxelize_dynamic(points, config)
    assert kinds == ["dense", "dense"]
    assert dense.num_dropped_voxel_cap > 0 and dense.num_dropped_full_voxel > 0

    def hash_only(config: VoxelGridConfig, num_keys: int):
        bits = cpu.table_bits(num_keys)
        return np.full(1 << bits, -1, np.int64), np.empty(1 << bits, np.int32), 0, 0, bits

    monkeypatch.setattr(cpu, "_voxel_table", hash_only)
    hashed = voxelize(points, config, return_point_voxel_id=True)
    for name in ("voxels", "coords_zyx", "num_points", "point_voxel_id"):
        np.testing.assert_array_equal(getattr(hashed, name), getattr(dense, name))
    np.testing.assert_array_equal(voxelize_dynamic(points, config).mean_features, dense_dynamic.mean_features)


# ------------------------------------------------------------------ torch and batching
def test_torch_cpu_input_gives_torch_outputs() -> None:
    points = random_cloud(NUSCENES_CENTERPOINT, 5000, seed=8, num_features=5)
    expected = voxelize(points, NUSCENES_CENTERPOINT, return_point_voxel_id=True)
    result = voxelize(torch.from_numpy(points), NUSCENES_CENTERPOINT, return_point_voxel_id=True)
    for name in ("voxels", "coords_zyx", "num_points", "point_voxel_id"):
        value = getattr(result, name)
        assert isinstance(value, torch.Tensor) and value.device.type == "cpu"
        np.testing.assert_array_equal(value.numpy(), getattr(expected, name))
    dynamic = voxelize_dynamic(torch.from_numpy(points).requires_grad_(False), NUSCENES_CENTERPOINT)
    assert isinstance(dynamic.mean_features, torch.Tensor)
    np.testing.assert_array_equal(dynamic.coords_zyx.numpy(), voxelize_dynamic(points, NUSCENES_CENTERPOINT).coords_zyx)


def test_importing_voxelize_does_not_import_torch_or_numba_cuda() -> None:
    code = "import sys, av_pipeline.voxelize; print('torch' in sys.modules, 'numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_batch_stacks_clouds_with_a_batch_column() -> None:
    clouds = [random_cloud(KITTI_SECOND, n, seed=20 + n) for n in (3000, 0, 5000)]
    batch = voxelize_batch(clouds, KITTI_SECOND, return_point_voxel_id=True)
    singles = [voxelize(c, KITTI_SECOND, return_point_voxel_id=True) for c in clouds]
    assert batch.batch_size == 3 and batch.spatial_shape_zyx == (40, 1600, 1408)
    assert batch.voxel_offsets == (0, singles[0].num_voxels, singles[0].num_voxels, singles[0].num_voxels + singles[2].num_voxels)
    assert batch.coords_bzyx.dtype == np.int32 and batch.coords_bzyx.shape == (batch.num_voxels, 4)
    for b, single in enumerate(singles):
        rows = slice(batch.voxel_offsets[b], batch.voxel_offsets[b + 1])
        assert (batch.coords_bzyx[rows, 0] == b).all()
        np.testing.assert_array_equal(batch.coords_bzyx[rows, 1:], single.coords_zyx)
        np.testing.assert_array_equal(batch.voxels[rows], single.voxels)
        np.testing.assert_array_equal(batch.per_cloud[b].point_voxel_id, single.point_voxel_id)
        np.testing.assert_array_equal(batch.per_cloud[b].voxels, single.voxels)


def test_batch_feeds_spconv_sparse_conv_tensor() -> None:
    spconv = pytest.importorskip("spconv.pytorch")
    config = dataclasses.replace(KITTI_POINTPILLARS, point_range_m=(0.0, -10.24, -3.0, 10.24, 10.24, 1.0))
    clouds = [torch.from_numpy(random_cloud(config, n, seed=n)) for n in (2000, 3000)]
    batch = voxelize_batch(clouds, config)
    assert isinstance(batch.coords_bzyx, torch.Tensor) and batch.coords_bzyx.dtype == torch.int32
    features = batch.voxels.sum(dim=1) / batch.num_points[:, None].to(torch.float32)  # mean VFE
    tensor = spconv.SparseConvTensor(features, batch.coords_bzyx, list(batch.spatial_shape_zyx), batch.batch_size)
    dense = tensor.dense()  # (B, C, nz, ny, nx)
    assert dense.shape == (2, 4, *batch.spatial_shape_zyx)
    b, z, y, x = batch.coords_bzyx.long().unbind(dim=1)
    torch.testing.assert_close(dense[b, :, z, y, x], features)
    assert int((dense.abs().sum(dim=1) > 0).sum()) == batch.num_voxels


def test_batch_rejects_mixed_input() -> None:
    with pytest.raises(ShapeError, match="at least one"):
        voxelize_batch([], KITTI_SECOND)
    with pytest.raises(ShapeError, match="same number of columns"):
        voxelize_batch([np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32)], KITTI_SECOND)
    with pytest.raises(ShapeError, match="one kind"):
        voxelize_batch([np.zeros((3, 4), np.float32), torch.zeros((3, 4))], KITTI_SECOND)
    with pytest.raises(ShapeError, match=r"clouds\[1\]: expected .* got \(3, 4\) float64"):
        voxelize_batch([np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float64)], KITTI_SECOND)


def test_parallel_passes_give_the_serial_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from av_pipeline.voxelize import cpu

    points = random_cloud(KITTI_SECOND, 30000, seed=12)
    points[5, 3] = np.nan
    serial = voxelize(points, KITTI_SECOND, return_point_voxel_id=True)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_THREADS", 1)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ITEMS", 1)
    assert cpu._parallel_pays(len(points))
    parallel = voxelize(points, KITTI_SECOND, return_point_voxel_id=True)
    for name in ("voxels", "coords_zyx", "num_points", "point_voxel_id"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))
    assert parallel.num_dropped_nonfinite == serial.num_dropped_nonfinite == 1
    assert parallel.num_dropped_out_of_range == serial.num_dropped_out_of_range


@pytest.mark.parametrize(
    ("value", "nonfinite"),
    [(np.nan, True), (np.inf, True), (-np.inf, True), (np.finfo(np.float32).max, False), (-np.finfo(np.float32).max, False),
     (np.finfo(np.float32).smallest_subnormal, False), (-0.0, False)],
)
def test_nonfinite_detection_in_any_column(value: float, nonfinite: bool) -> None:
    points = np.zeros((4, 5), np.float32) + np.float32(0.5)
    points[2, 4] = value
    result = voxelize_dynamic(points, KITTI_SECOND)
    assert result.num_dropped_nonfinite == int(nonfinite)
    assert (result.point_voxel_id[2] == -1) == nonfinite
