"""PoseTrajectory: validation, interpolation, extrapolation policies, vectorised queries."""

from __future__ import annotations

import doctest
import json
import time

import numpy as np
import pytest
from pyquaternion import Quaternion

import calibration.trajectory
from calibration.errors import CalibrationError, ExtrapolationError, ShapeError
from calibration.rotation import angle_between, rotation_about_z, wxyz_to_rotation
from calibration.se3 import SE3
from calibration.trajectory import PoseTrajectory

MS = 1_000_000  # nanoseconds
EPOCH_NS = 1_532_402_927_647_951_000  # a real nuScenes time: float64 cannot hold it to the nanosecond


def random_poses(rng: np.random.Generator, count: int) -> list[SE3]:
    quats = rng.normal(size=(count, 4))
    return [SE3.from_wxyz(q / np.linalg.norm(q), rng.uniform(-20, 20, 3)) for q in quats]


def constant_velocity(timestamps_ns: np.ndarray, yaw_rate: float = 0.5, velocity=(8.0, -1.0, 0.2)) -> PoseTrajectory:
    """world_SE3_ego of a vehicle turning at yaw_rate rad/s while its origin moves at velocity m/s."""
    seconds = (np.asarray(timestamps_ns) - timestamps_ns[0]) / 1e9
    return PoseTrajectory(
        timestamps_ns,
        rotation_about_z(yaw_rate * seconds),
        seconds[:, None] * np.asarray(velocity),
        dst_frame="world",
        src_frame="ego",
    )


def test_module_doctests_pass() -> None:
    result = doctest.testmod(calibration.trajectory)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("timestamps", "match"),
    [
        ([0, 100, 200, 200, 300], r"expected strictly increasing, got duplicate timestamps_ns\[2\] = 200 and timestamps_ns\[3\] = 200"),
        ([0, 100, 300, 250, 400], r"expected strictly increasing, got out-of-order timestamps_ns\[2\] = 300 and timestamps_ns\[3\] = 250"),
    ],
)
def test_timestamps_must_strictly_increase(timestamps: list[int], match: str) -> None:
    rotations = np.broadcast_to(np.eye(3), (5, 3, 3))
    with pytest.raises(CalibrationError, match=match):
        PoseTrajectory(np.array(timestamps), rotations, np.zeros((5, 3)))
    with pytest.raises(CalibrationError, match=r"^world_SE3_ego: timestamps_ns"):
        PoseTrajectory(np.array(timestamps), rotations, np.zeros((5, 3)), dst_frame="world", src_frame="ego")


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: PoseTrajectory(np.array([0.0, 1.5]), np.stack([np.eye(3)] * 2), np.zeros((2, 3))),
         ShapeError, r"timestamps_ns: expected \(M,\) int64 nanoseconds, got float64 values"),
        (lambda: PoseTrajectory(np.zeros((2, 1), np.int64), np.stack([np.eye(3)] * 2), np.zeros((2, 3))),
         ShapeError, r"timestamps_ns: expected \(M,\) int64 nanoseconds, got shape \(2, 1\)"),
        (lambda: PoseTrajectory(np.zeros(0, np.int64), np.zeros((0, 3, 3)), np.zeros((0, 3))),
         ShapeError, r"expected at least one sample, got \(0,\)"),
        (lambda: PoseTrajectory(np.array([0, 1]), np.stack([np.eye(3)] * 3), np.zeros((2, 3))),
         ShapeError, r"rotations: expected \(K=2, 3, 3\) float array, got \(3, 3, 3\)"),
        (lambda: PoseTrajectory(np.array([0, 1]), np.stack([np.eye(3)] * 2), np.zeros((2, 4))),
         ShapeError, r"translations: expected \(K=2, 3\) float array, got \(2, 4\)"),
        (lambda: PoseTrajectory(np.array([0, 1]), np.stack([np.eye(3)] * 2), np.array([[0, 0, 0], [0, np.inf, 0]])),
         ShapeError, r"translations: expected finite values, got 1 NaN/inf entries \(first at index \(1, 1\)\)"),
        (lambda: PoseTrajectory(np.array([0, 1, 2]), np.stack([np.eye(3), np.eye(3), np.diag([1.0, 1.0, -1.0])]), np.zeros((3, 3))),
         CalibrationError, r"rotations\[2\]: expected a proper rotation .*det -1"),
        (lambda: PoseTrajectory(np.array([0, 1]), np.stack([np.eye(3) * 1.001, np.eye(3)]), np.zeros((2, 3))),
         CalibrationError, r"rotations\[0\]: expected a proper rotation .*got deviation 0.00347.*from_matrices"),
        (lambda: PoseTrajectory.from_poses([0, 1], [SE3.identity(), np.eye(4)]),
         CalibrationError, r"poses: expected a sequence of SE3, got \['SE3', 'ndarray'\]"),
        (lambda: PoseTrajectory.from_wxyz([0, 1], [[1.0, 0, 0, 0], [0.5, 0, 0, 0]], np.zeros((2, 3))),
         CalibrationError, r"wxyz: expected a unit quaternion"),
        (lambda: PoseTrajectory(np.array([0]), np.eye(3)[None], np.zeros((1, 3)), dst_frame=""),
         CalibrationError, r"dst_frame: expected a non-empty frame name or None, got ''"),
    ],
)
def test_bad_input_messages(build, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        build()


def test_trajectory_is_immutable_and_copies_its_input() -> None:
    timestamps = np.array([0, 10, 20])
    translations = np.zeros((3, 3))
    trajectory = PoseTrajectory(timestamps, np.stack([np.eye(3)] * 3), translations)
    timestamps[0] = -5
    translations[0, 0] = 7.0
    assert trajectory.start_ns == 0 and trajectory.translations[0, 0] == 0.0
    for arr in (trajectory.timestamps_ns, trajectory.rotations, trajectory.translations):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
    assert trajectory.timestamps_ns.dtype == np.int64


def test_constructors_agree() -> None:
    rng = np.random.default_rng(0)
    poses = random_poses(rng, 5)
    timestamps = np.arange(5) * 100 * MS
    by_poses = PoseTrajectory.from_poses(timestamps, poses)
    by_wxyz = PoseTrajectory.from_wxyz(timestamps, np.stack([p.as_wxyz() for p in poses]), np.stack([p.translation for p in poses]))
    # float32-rounded matrices (as stored in info files) are re-orthonormalised.
    by_matrices = PoseTrajectory.from_matrices(timestamps, np.stack([p.as_matrix() for p in poses]).astype(np.float32))
    for k in range(5):
        assert by_poses.pose(k) == poses[k]
        assert by_wxyz.pose(k).allclose(poses[k], atol_rad=1e-14, atol_m=1e-14)
        assert by_matrices.pose(k).allclose(poses[k], atol_rad=1e-6, atol_m=1e-5)
    with pytest.raises(CalibrationError, match=r"matrices\[1\]: expected last row"):
        PoseTrajectory.from_matrices([0, 1], np.stack([np.eye(4), np.diag([1.0, 1, 1, 2])]))


# ---------------------------------------------------------------- interpolation
def test_at_sample_times_returns_the_samples_exactly() -> None:
    rng = np.random.default_rng(1)
    poses = random_poses(rng, 6)
    trajectory = PoseTrajectory.from_poses(EPOCH_NS + np.arange(6) * 50 * MS, poses)
    for k, pose in enumerate(poses):
        assert trajectory.at(int(trajectory.timestamps_ns[k])) == pose


def test_interpolation_matches_pyquaternion_slerp_and_linear_translation() -> None:
    rng = np.random.default_rng(2)
    poses = random_poses(rng, 8)
    timestamps = EPOCH_NS + np.cumsum(rng.integers(10 * MS, 100 * MS, 8))
    trajectory = PoseTrajectory.from_poses(timestamps, poses)
    for _ in range(200):
        k = int(rng.integers(0, 7))
        t = int(rng.integers(timestamps[k], timestamps[k + 1]))
        fraction = (t - timestamps[k]) / (timestamps[k + 1] - timestamps[k])
        expected_q = Quaternion.slerp(poses[k].quaternion, poses[k + 1].quaternion, fraction)
        expected_t = poses[k].translation + fraction * (poses[k + 1].translation - poses[k].translation)
        got = trajectory.at(t)
        assert angle_between(got.rotation, expected_q.rotation_matrix) < 1e-9
        np.testing.assert_allclose(got.translation, expected_t, atol=1e-12)


def test_constant_velocity_motion_is_reproduced_between_samples() -> None:
    timestamps = EPOCH_NS + np.array([0, 40, 90, 100, 200]) * MS
    trajectory = constant_velocity(timestamps)
    query = EPOCH_NS + np.array([0, 1, 5 * MS, 45 * MS, 99_999_999, 150 * MS + 3, 200 * MS])
    rotations, translations = trajectory.at_many(query)
    seconds = (query - EPOCH_NS) / 1e9
    np.testing.assert_allclose(angle_between(rotations, rotation_about_z(0.5 * seconds)), 0.0, atol=1e-12)
    np.testing.assert_allclose(translations, seconds[:, None] * [8.0, -1.0, 0.2], atol=1e-12)


def test_nanosecond_resolution_at_epoch_times() -> None:
    """Fractions come from int64 differences: 1 ns after a sample is 1 ns of motion, even at 1.5e18 ns."""
    trajectory = PoseTrajectory.from_poses(
        [EPOCH_NS, EPOCH_NS + 1000], [SE3.identity(), SE3.from_yaw_translation(0.0, [1000.0, 0.0, 0.0])]
    )
    for offset in (1, 7, 999):
        assert trajectory.at(EPOCH_NS + offset).translation[0] == pytest.approx(offset, abs=1e-9)


def test_at_many_equals_a_loop_over_at_for_unsorted_repeated_times() -> None:
    rng = np.random.default_rng(3)
    trajectory = PoseTrajectory.from_poses(EPOCH_NS + np.arange(10) * 100 * MS, random_poses(rng, 10))
    query = rng.integers(trajectory.start_ns, trajectory.end_ns + 1, 300)
    query[:5] = query[5]  # repeats
    query[10] = trajectory.end_ns
    rotations, translations = trajectory.at_many(query)
    assert rotations.shape == (300, 3, 3) and translations.shape == (300, 3)
    for i, t in enumerate(query):
        pose = trajectory.at(int(t))
        np.testing.assert_allclose(rotations[i], pose.rotation, atol=1e-15)
        np.testing.assert_allclose(translations[i], pose.translation, atol=1e-15)


def test_at_many_is_vectorised_for_a_full_lidar_sweep() -> None:
    rng = np.random.default_rng(4)
    trajectory = constant_velocity(EPOCH_NS + np.arange(0, 2000 * MS, 10 * MS))
    query = np.sort(rng.integers(EPOCH_NS + 500 * MS, EPOCH_NS + 600 * MS, 200_000))
    begin = time.perf_counter()
    rotations, translations = trajectory.at_many(query)
    elapsed = time.perf_counter() - begin
    assert elapsed < 2.0, f"200k interpolations took {elapsed:.2f} s: not vectorised?"
    seconds = (query - EPOCH_NS) / 1e9
    np.testing.assert_allclose(translations, seconds[:, None] * [8.0, -1.0, 0.2], atol=1e-9)
    np.testing.assert_allclose(rotations[::997], rotation_about_z(0.5 * seconds[::997]), atol=1e-12)


def test_transform_points_uses_each_points_own_time() -> None:
    rng = np.random.default_rng(5)
    trajectory = PoseTrajectory.from_poses(np.array([0, 100 * MS, 200 * MS]), random_poses(rng, 3))
    points = rng.normal(scale=30.0, size=(64, 3)).astype(np.float32)
    times = rng.integers(0, 200 * MS, 64)
    moved = trajectory.transform_points(points, times)
    assert moved.dtype == np.float32 and moved.shape == (64, 3)
    for i in range(0, 64, 7):
        expected = trajectory.at(int(times[i])).transform_points(points[i : i + 1].astype(np.float64))[0]
        np.testing.assert_allclose(moved[i], expected, atol=1e-4)
    assert trajectory.transform_points(points.astype(np.float64), times).dtype == np.float64
    with pytest.raises(ShapeError, match=r"timestamps_ns: expected \(64,\) to match points_src, got \(63,\)"):
        trajectory.transform_points(points, times[:-1])


# ---------------------------------------------------------------- extrapolation
def test_extrapolation_error_names_pair_time_and_range() -> None:
    trajectory = constant_velocity(np.array([1000, 2000, 3000]))
    with pytest.raises(
        ExtrapolationError,
        match=r"^world_SE3_ego: requested timestamp_ns 3500 is outside the available range \[1000, 3000\] "
        r"\(\+0.001 ms beyond the end\); pass extrapolation='clamp' or 'linear'",
    ):
        trajectory.at(3500)
    with pytest.raises(ExtrapolationError, match=r"timestamp_ns 999 .*-0.000 ms beyond the start; 2 requested times outside"):
        trajectory.at_many(np.array([1500, 999, 5000]))
    unnamed = PoseTrajectory(np.array([0, 10]), np.stack([np.eye(3)] * 2), np.zeros((2, 3)))
    with pytest.raises(ExtrapolationError, match=r"^trajectory: requested timestamp_ns 11 "):
        unnamed.at(11)


def test_extrapolation_clamp_holds_the_end_poses() -> None:
    rng = np.random.default_rng(6)
    poses = random_poses(rng, 3)
    trajectory = PoseTrajectory.from_poses([100, 200, 300], poses)
    assert trajectory.at(-10**12, extrapolation="clamp") == poses[0]
    assert trajectory.at(99, extrapolation="clamp") == poses[0]
    assert trajectory.at(301, extrapolation="clamp") == poses[2]
    rotations, translations = trajectory.at_many(np.array([0, 150, 400]), extrapolation="clamp")
    np.testing.assert_array_equal(translations[[0, 2]], [poses[0].translation, poses[2].translation])
    assert trajectory.at(150, extrapolation="clamp").allclose(trajectory.at(150))


def test_extrapolation_linear_continues_constant_velocity() -> None:
    timestamps = EPOCH_NS + np.array([0, 50, 100]) * MS
    trajectory = constant_velocity(timestamps)
    query = EPOCH_NS + np.array([-30 * MS, -1, 100 * MS + 1, 160 * MS])
    rotations, translations = trajectory.at_many(query, extrapolation="linear")
    seconds = (query - EPOCH_NS) / 1e9
    np.testing.assert_allclose(angle_between(rotations, rotation_about_z(0.5 * seconds)), 0.0, atol=1e-12)
    np.testing.assert_allclose(translations, seconds[:, None] * [8.0, -1.0, 0.2], atol=1e-12)


def test_single_sample_trajectory() -> None:
    pose = SE3.from_yaw_translation(0.3, [1.0, 2.0, 3.0])
    trajectory = PoseTrajectory.from_poses([500], [pose], dst_frame="ego", src_frame="lidar")
    assert trajectory.at(500) == pose
    assert trajectory.at(10**9, extrapolation="clamp") == pose
    with pytest.raises(ExtrapolationError, match=r"ego_SE3_lidar: .*\[500, 500\].*'linear' extrapolation needs at least 2 samples"):
        trajectory.at(501, extrapolation="linear")
    with pytest.raises(ExtrapolationError, match=r"timestamp_ns 499"):
        trajectory.at(499)


def test_bad_query_arguments() -> None:
    trajectory = constant_velocity(np.array([0, 10]))
    with pytest.raises(CalibrationError, match=r"extrapolation: expected one of \['error', 'clamp', 'linear'\], got 'hold'"):
        trajectory.at(5, extrapolation="hold")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"timestamp_ns: expected an integer number of nanoseconds, got float 5.0"):
        trajectory.at(5.0)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"timestamps_ns: expected \(M,\) int64 nanoseconds, got float64 values"):
        trajectory.at_many(np.array([1.0, 2.0]))


# ---------------------------------------------------------------- inverse, serialisation
def test_inverse_swaps_frames_and_inverts_each_sample() -> None:
    rng = np.random.default_rng(7)
    poses = random_poses(rng, 4)
    trajectory = PoseTrajectory.from_poses([0, 10, 20, 30], poses, dst_frame="world", src_frame="ego")
    inverse = trajectory.inverse()
    assert (inverse.dst_frame, inverse.src_frame) == ("ego", "world")
    for k in range(4):
        assert inverse.pose(k).allclose(poses[k].inverse(), atol_rad=1e-15, atol_m=1e-13)


def test_to_dict_round_trips_exactly_through_json() -> None:
    rng = np.random.default_rng(8)
    trajectory = PoseTrajectory.from_poses(EPOCH_NS + np.arange(4) * 7, random_poses(rng, 4), dst_frame="world", src_frame="ego")
    restored = PoseTrajectory.from_dict(json.loads(json.dumps(trajectory.to_dict())))
    np.testing.assert_array_equal(restored.timestamps_ns, trajectory.timestamps_ns)
    np.testing.assert_array_equal(restored.rotations, trajectory.rotations)
    np.testing.assert_array_equal(restored.translations, trajectory.translations)
    assert (restored.dst_frame, restored.src_frame) == ("world", "ego")
    with pytest.raises(CalibrationError, match=r"missing keys \['rotations'\]"):
        PoseTrajectory.from_dict({"timestamps_ns": [0], "translations_m": [[0, 0, 0]]})
    assert "PoseTrajectory(world_SE3_ego, 4 samples" in repr(trajectory)
