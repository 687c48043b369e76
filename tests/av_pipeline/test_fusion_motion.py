"""Ego-motion compensation: per-point de-skew of a simulated spinning LiDAR, whole-sweep compensation by hand."""

from __future__ import annotations

import numpy as np
import pytest

from av_pipeline.errors import ShapeError
from av_pipeline.fusion import compensate_sweep, deskew_points, sensor_SE3_lidar_across_time, transform_points_f32
from calibration import SE3, ExtrapolationError, FrameGraph, PoseTrajectory

MS = 1_000_000
SPEED_MPS = 15.0
YAW_RATE_RAD_S = np.radians(30.0)
SWEEP_NS = 100 * MS
T_START = 1_700_000_000_000_000_000  # epoch-sized, as in real logs
EGO_SE3_LIDAR = SE3.from_yaw_translation(0.03, [0.9, 0.1, 1.8])
# A camera looking forward-left, mounted on the roof.
EGO_SE3_CAMERA = SE3.from_yaw_translation(0.4, [1.5, 0.2, 1.6]).compose(
    SE3(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), np.zeros(3))
)
# World planes n . x = c: the ground and four walls of a 70 m x 30 m yard around the start.
PLANES = [((0.0, 0.0, 1.0), 0.0), ((1.0, 0.0, 0.0), 40.0), ((-1.0, 0.0, 0.0), 30.0), ((0.0, 1.0, 0.0), 15.0), ((0.0, -1.0, 0.0), 15.0)]


def true_world_SE3_ego(times_ns: np.ndarray, origin_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact pose on a circular arc: 15 m/s forward, turning left at 30 deg/s, from ``origin_m`` at T_START."""
    t = (np.asarray(times_ns, dtype=np.int64) - T_START).astype(np.float64) / 1e9
    yaw = YAW_RATE_RAD_S * t
    radius = SPEED_MPS / YAW_RATE_RAD_S
    c, s = np.cos(yaw), np.sin(yaw)
    rotations = np.zeros((len(t), 3, 3))
    rotations[:, 0, 0], rotations[:, 0, 1], rotations[:, 1, 0], rotations[:, 1, 1], rotations[:, 2, 2] = c, -s, s, c, 1.0
    translations = np.stack([radius * s, radius * (1.0 - c), np.zeros_like(t)], axis=1) + origin_m
    return rotations, translations


def sampled_trajectory(origin_m: np.ndarray, step_ns: int = 10 * MS) -> PoseTrajectory:
    """What a log holds: the exact poses sampled at 100 Hz (slerp/lerp in between)."""
    times = np.arange(T_START - 20 * MS, T_START + SWEEP_NS + 20 * MS + 1, step_ns)
    rotations, translations = true_world_SE3_ego(times, origin_m)
    return PoseTrajectory(times, rotations, translations, dst_frame="world", src_frame="ego")


def simulate_spinning_sweep(origin_m: np.ndarray, columns: int = 900, rings: int = 16):
    """Ray-cast a static yard with a LiDAR turning once in 100 ms while the car drives.

    Every column is fired at its own time, from the ego pose at that instant. Returns the
    float32 points as measured (LiDAR frame at their capture times), the offsets relative to
    the sweep timestamp (the end of the turn, as nuScenes), and the world points hit.
    """
    column_ns = T_START + (np.arange(columns) * SWEEP_NS) // columns
    azimuth = -np.pi + 2.0 * np.pi * np.arange(columns) / columns
    elevation = np.radians(np.linspace(-15.0, 10.0, rings))
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")  # (columns, rings)
    direction_lidar = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
    times = np.repeat(column_ns, rings)
    world_R_ego, world_t_ego = true_world_SE3_ego(times, origin_m)
    world_R_lidar = world_R_ego @ EGO_SE3_LIDAR.rotation
    origin_world = np.einsum("nij,j->ni", world_R_ego, EGO_SE3_LIDAR.translation) + world_t_ego
    direction_world = np.einsum("nij,nj->ni", world_R_lidar, direction_lidar)
    distance = np.full(len(times), np.inf)
    for normal, offset in PLANES:
        n = np.asarray(normal)
        with np.errstate(divide="ignore"):  # rays parallel to a plane never hit it
            s = (offset + origin_m @ n - origin_world @ n) / (direction_world @ n)  # planes move with origin_m
        distance = np.where((s > 0.0) & (s < distance), s, distance)
    assert np.isfinite(distance).all()
    points_lidar = (direction_lidar * distance[:, None]).astype(np.float32)
    points_world = origin_world + direction_world * distance[:, None]
    sweep_timestamp_ns = T_START + SWEEP_NS
    return points_lidar, (times - sweep_timestamp_ns).astype(np.int32), points_world, sweep_timestamp_ns


def world_to_sensor(points_world: np.ndarray, ego_SE3_sensor: SE3, timestamp_ns: int, origin_m: np.ndarray) -> np.ndarray:
    rotation, translation = true_world_SE3_ego(np.array([timestamp_ns]), origin_m)
    world_SE3_sensor = SE3(rotation[0], translation[0]).compose(ego_SE3_sensor)
    return world_SE3_sensor.inverse().transform_points(points_world)


@pytest.mark.parametrize("origin_m", [np.zeros(3), np.array([512_345.6, 5_402_112.3, 35.0])], ids=["local", "utm"])
def test_deskew_recovers_a_static_scene_scanned_while_driving_and_turning(origin_m: np.ndarray) -> None:
    trajectory = sampled_trajectory(origin_m)
    points_lidar, offsets_ns, points_world, sweep_ns = simulate_spinning_sweep(origin_m)
    truth_lidar = world_to_sensor(points_world, EGO_SE3_LIDAR, sweep_ns, origin_m)

    deskewed = deskew_points(points_lidar, offsets_ns, trajectory, EGO_SE3_LIDAR, sweep_ns)
    assert deskewed.dtype == np.float32 and deskewed.shape == points_lidar.shape
    error_m = np.linalg.norm(deskewed - truth_lidar, axis=1)
    raw_error_m = np.linalg.norm(points_lidar - truth_lidar, axis=1)
    # Measured: de-skewed max 0.1 mm (the 10 ms pose samples' chord vs the arc, and float32);
    # uncompensated median 1.0 m, max 2.6 m (1.5 m driven and 3 degrees turned in 100 ms).
    assert error_m.max() < 0.01, f"max de-skew error {error_m.max() * 1e3:.2f} mm"
    assert np.median(raw_error_m) > 0.3 and raw_error_m.max() > 1.5
    # The last column was captured at the sweep time: nothing to correct there.
    last = offsets_ns == offsets_ns.max()
    assert np.median(raw_error_m[last]) < 0.05

    # Straight into a camera at an image time inside the sweep, in one pass.
    t_camera = sweep_ns - 37 * MS
    in_camera = deskew_points(points_lidar, offsets_ns, trajectory, EGO_SE3_LIDAR, sweep_ns, t_camera, EGO_SE3_CAMERA)
    truth_camera = world_to_sensor(points_world, EGO_SE3_CAMERA, t_camera, origin_m)
    assert np.linalg.norm(in_camera - truth_camera, axis=1).max() < 0.01


def test_deskew_equals_the_frame_graph_per_point() -> None:
    """The numba kernel against FrameGraph.get_across_time_many (PoseTrajectory.at_many underneath)."""
    origin_m = np.array([1200.0, -350.0, 12.0])
    trajectory = sampled_trajectory(origin_m, step_ns=33 * MS)  # coarse samples: slerp matters
    points_lidar, offsets_ns, _, sweep_ns = simulate_spinning_sweep(origin_m, columns=200, rings=8)
    graph = FrameGraph()
    graph.add_stamped("world", "ego", trajectory)
    graph.add_static("ego", "lidar", EGO_SE3_LIDAR)
    graph.add_static("ego", "camera", EGO_SE3_CAMERA)
    t_target = sweep_ns - 12 * MS
    rotations, translations = graph.get_across_time_many("camera", t_target, "lidar", sweep_ns + offsets_ns.astype(np.int64), via="world")
    expected = np.einsum("nij,nj->ni", rotations, points_lidar.astype(np.float64)) + translations
    got = deskew_points(points_lidar, offsets_ns, trajectory, EGO_SE3_LIDAR, sweep_ns, t_target, EGO_SE3_CAMERA)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # float32 output at up to 45 m


def test_whole_sweep_compensation_matches_the_frame_graph_by_hand() -> None:
    origin_m = np.array([650.0, 1800.0, 0.0])
    trajectory = sampled_trajectory(origin_m)
    graph = FrameGraph()
    graph.add_stamped("world", "ego", trajectory)
    graph.add_static("ego", "lidar", EGO_SE3_LIDAR)
    graph.add_static("ego", "camera", EGO_SE3_CAMERA)
    sweep_ns, camera_ns = T_START + SWEEP_NS, T_START + 61 * MS
    # By hand: camera(t_cam) <- ego(t_cam) <- world <- ego(t_sweep) <- lidar
    expected = graph.get_across_time("camera", camera_ns, "lidar", sweep_ns, via="world")
    got = sensor_SE3_lidar_across_time(trajectory, EGO_SE3_LIDAR, sweep_ns, EGO_SE3_CAMERA, camera_ns)
    assert got.allclose(expected, atol_rad=1e-12, atol_m=1e-9)
    # 39 ms of driving at 15 m/s: not the static rig transform.
    static = EGO_SE3_CAMERA.inverse().compose(EGO_SE3_LIDAR)
    assert np.linalg.norm(got.translation - static.translation) == pytest.approx(SPEED_MPS * 0.039, rel=0.05)

    rng = np.random.default_rng(0)
    points_lidar = rng.uniform(-40.0, 40.0, (5000, 4)).astype(np.float32)
    in_camera = compensate_sweep(points_lidar, trajectory, EGO_SE3_LIDAR, sweep_ns, camera_ns, EGO_SE3_CAMERA)
    np.testing.assert_allclose(in_camera, expected.transform_points(points_lidar[:, :3].astype(np.float64)), atol=1e-5)
    # Default target: the LiDAR itself at the target time.
    lidar_then = compensate_sweep(points_lidar, trajectory, EGO_SE3_LIDAR, sweep_ns, camera_ns)
    np.testing.assert_allclose(
        lidar_then, graph.get_across_time("lidar", camera_ns, "lidar", sweep_ns, via="world").transform_points(points_lidar[:, :3].astype(np.float64)), atol=1e-5
    )
    # With one capture time for all points, de-skew is whole-sweep compensation.
    same_time = deskew_points(points_lidar, np.zeros(len(points_lidar), np.int32), trajectory, EGO_SE3_LIDAR, sweep_ns, camera_ns, EGO_SE3_CAMERA)
    np.testing.assert_allclose(same_time, in_camera, atol=1e-5)


def test_deskew_follows_the_extrapolation_policy() -> None:
    origin_m = np.zeros(3)
    times = np.array([T_START + 50 * MS, T_START + 80 * MS])
    rotations, translations = true_world_SE3_ego(times, origin_m)
    short = PoseTrajectory(times, rotations, translations, dst_frame="world", src_frame="ego")
    points_lidar, offsets_ns, _, sweep_ns = simulate_spinning_sweep(origin_m, columns=50, rings=4)
    with pytest.raises(ExtrapolationError, match=r"world_SE3_ego: requested timestamp_ns \d+ is outside the available range .*-50\.000 ms beyond the start"):
        deskew_points(points_lidar, offsets_ns, short, EGO_SE3_LIDAR, sweep_ns)
    clamped = deskew_points(points_lidar, offsets_ns, short, EGO_SE3_LIDAR, sweep_ns, extrapolation="clamp")
    # Clamped: points before 50 ms use the first pose, after 80 ms the last one.
    early = sweep_ns + offsets_ns.astype(np.int64) <= times[0]
    first_to_last = short.pose(1).compose(EGO_SE3_LIDAR).inverse().compose(short.pose(0)).compose(EGO_SE3_LIDAR)
    np.testing.assert_allclose(clamped[early], first_to_last.transform_points(points_lidar[early].astype(np.float64)), atol=1e-5)
    linear = deskew_points(points_lidar, offsets_ns, short, EGO_SE3_LIDAR, sweep_ns, extrapolation="linear")
    expected = [short.at(sweep_ns + int(o), extrapolation="linear") for o in offsets_ns[::20]]
    target = short.at(sweep_ns, extrapolation="linear").compose(EGO_SE3_LIDAR).inverse()
    for row, pose in zip(range(0, len(offsets_ns), 20), expected):
        np.testing.assert_allclose(linear[row], target.compose(pose).compose(EGO_SE3_LIDAR).transform_points(points_lidar[row : row + 1].astype(np.float64))[0], atol=1e-5)


def test_bad_input_is_refused_with_the_shapes() -> None:
    trajectory = sampled_trajectory(np.zeros(3))
    with pytest.raises(ShapeError, match=r"time_offsets_ns: expected \(3,\) integers to match points_lidar, got \(2,\) int64"):
        deskew_points(np.zeros((3, 3), np.float32), np.zeros(2, np.int64), trajectory, EGO_SE3_LIDAR, T_START)
    with pytest.raises(ShapeError, match=r"time_offsets_ns: expected \(3,\) integers .* float64"):
        deskew_points(np.zeros((3, 3), np.float32), np.zeros(3), trajectory, EGO_SE3_LIDAR, T_START)
    with pytest.raises(ShapeError, match=r"points_lidar: expected \(N, 3\+\) float32 array, got \(3, 2\) float32"):
        transform_points_f32(np.zeros((3, 2), np.float32), SE3.identity())
    assert deskew_points(np.zeros((0, 3), np.float32), np.zeros(0, np.int32), trajectory, EGO_SE3_LIDAR, T_START).shape == (0, 3)
