"""Record validation: PlannedPath and OnboardPerception's planned_path."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError
from av_pipeline.records import OnboardPerception, PlannedPath

T_NS = 1_700_000_000_000_000_000


def _poses(k: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([np.arange(k) * 1.5, rng.normal(0.0, 0.2, k), rng.uniform(-np.pi, np.pi, k)])


def test_planned_path_normalises_dtypes_and_freezes_arrays() -> None:
    times = np.array([T_NS, T_NS + 100_000_000, T_NS + 200_000_000], dtype=np.uint64)
    path = PlannedPath(times, _poses(3).astype(np.float32))
    assert path.timestamps_ns.dtype == np.int64 and path.poses_ego.dtype == np.float64 and len(path) == 3
    np.testing.assert_array_equal(path.timestamps_ns, times.astype(np.int64))
    with pytest.raises(ValueError, match="read-only"):
        path.poses_ego[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        path.timestamps_ns[0] = 0
    assert path.equals(PlannedPath(times.astype(np.int64), path.poses_ego.copy()))
    assert not path.equals(PlannedPath(times.astype(np.int64) + 1, path.poses_ego))
    assert len(PlannedPath(np.zeros(0, dtype=np.int64), np.zeros((0, 3)))) == 0  # a planner with no path


@pytest.mark.parametrize(
    ("times", "poses", "error", "match"),
    [
        (np.array([[T_NS]]), np.zeros((1, 3)), ShapeError, r"timestamps_ns: expected \(K,\) integers, got \(1, 1\)"),
        (np.array([0.5, 1.5]), np.zeros((2, 3)), ShapeError, r"timestamps_ns: expected \(K,\) integers, got \(2,\) float64"),
        (np.array([T_NS, T_NS + 1]), np.zeros((2, 2)), ShapeError, r"poses_ego: expected \(2, 3\) real x_m, y_m, yaw_rad .* got \(2, 2\)"),
        (np.array([T_NS, T_NS + 1]), np.zeros((3, 3)), ShapeError, r"poses_ego: expected \(2, 3\) .* got \(3, 3\)"),
        (np.array([T_NS]), np.array([["a", "b", "c"]]), ShapeError, r"poses_ego: expected \(1, 3\) real .* <U1"),
        (np.array([T_NS, T_NS + 1]), np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), ValueError, r"finite values, got NaN/inf in rows \[1\]"),
        (np.array([T_NS, T_NS + 5, T_NS + 5]), np.zeros((3, 3)), ValueError, rf"strictly increasing times, got {T_NS + 5} at index 2 after {T_NS + 5}"),
        (np.array([T_NS, T_NS - 1]), np.zeros((2, 3)), ValueError, r"strictly increasing times, got .* at index 1"),
        (np.array([2**64 - 1], dtype=np.uint64), np.zeros((1, 3)), ValueError, r"within int64"),
    ],
    ids=["times-2d", "times-float", "poses-columns", "poses-rows", "poses-text", "nan", "repeated-time", "backwards", "beyond-int64"],
)
def test_planned_path_rejects_bad_input(times, poses, error, match) -> None:
    with pytest.raises(error, match=match):
        PlannedPath(times, poses)


def test_onboard_perception_planned_path_is_optional_and_typed() -> None:
    assert OnboardPerception(Cuboids.empty("ego")).planned_path is None  # backward compatible
    path = PlannedPath([T_NS], [[0.0, 0.0, 0.0]])
    assert OnboardPerception(Cuboids.empty("ego"), {}, path).planned_path is path
    with pytest.raises(ShapeError, match="planned_path: expected a PlannedPath or None, got ndarray"):
        OnboardPerception(Cuboids.empty("ego"), planned_path=np.zeros((1, 4)))
