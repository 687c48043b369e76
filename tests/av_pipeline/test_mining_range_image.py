"""The LiDAR's first returns per direction (av_pipeline.mining.range_image)."""

import pickle

import numpy as np
import pytest

from av_pipeline.errors import ShapeError
from av_pipeline.mining.range_image import RangeImage
from av_pipeline.mining.records import MiningFrame

ORIGIN = np.array([1.2, 0.0, 1.73])
PEDESTRIAN = (np.array([20.0, 0.0, 0.875]), np.array([0.7, 0.7, 1.75]), 0.0)


def _ground(extent: float = 40.0, step: float = 0.5) -> np.ndarray:
    g = np.arange(-extent, extent, step)
    x, y = np.meshgrid(g, g)
    return np.column_stack([x.ravel(), y.ravel(), np.zeros(x.size)])


def _plane_x(x: float, y: tuple[float, float], z: tuple[float, float], step: float = 0.02) -> np.ndarray:
    """A dense vertical plane of points at ``x`` (a wall or a car's rear face)."""
    yy, zz = np.meshgrid(np.arange(*y, step), np.arange(*z, step))
    return np.column_stack([np.full(yy.size, x), yy.ravel(), zz.ravel()])


def test_an_object_in_plain_view_is_seen_and_its_own_returns_do_not_hide_it():
    # the pedestrian's front face and the ground; nothing in between
    points = np.vstack([_ground(), _plane_x(19.65, (-0.35, 0.35), (0.0, 1.75))])
    image = RangeImage.from_points(points, ORIGIN)
    assert image.ranges.shape == (70, 900) and image.ranges.dtype == np.uint8
    assert image.visibility(*PEDESTRIAN) == 1.0
    # nothing there at all (no return in those directions, only ground): also seen
    assert RangeImage.from_points(_ground(), ORIGIN).visibility(*PEDESTRIAN) == 1.0


def test_a_wall_in_front_hides_the_object():
    points = np.vstack([_ground(), _plane_x(12.0, (-2.0, 2.0), (0.0, 3.0))])
    assert RangeImage.from_points(points, ORIGIN).visibility(*PEDESTRIAN) == 0.0


def test_a_car_in_front_hides_the_lower_layers_only():
    # a car's rear face 5 m before the pedestrian, 1.3 m high: the lines of sight from 1.73 m
    # to the top layer of samples (1.46 m) pass over it
    points = np.vstack([_ground(), _plane_x(15.0, (-0.95, 0.95), (0.0, 1.3))])
    seen = RangeImage.from_points(points, ORIGIN).samples_seen(*PEDESTRIAN)
    top = np.isclose(np.array([s[2] for s in _samples()]), 0.875 + 1.75 / 3)
    assert seen[top].all() and not seen[~top].any()


def _samples():
    from av_pipeline.mining.visibility import box_samples

    return box_samples(*PEDESTRIAN)


def test_ground_returns_are_not_occluders():
    # a road rising 0.2 m just before the object is still ground
    points = np.vstack([_ground(), _ground()[:, :3] * [1, 1, 0] + [0, 0, 0.2]])
    image = RangeImage.from_points(points, ORIGIN)
    assert image.visibility(*PEDESTRIAN) == 1.0


def test_ranges_are_quantised_down_and_saturate():
    image = RangeImage.from_points(np.vstack([_ground(100.0, 2.0), [[1.2 + 10.1, 0.0, 1.73]], [[1.2 + 90.0, 5.0, 5.0]]]), ORIGIN)
    values = np.sort(image.ranges[image.ranges > 0])
    assert values[0] == 40  # 10.1 m in 0.25 m steps, rounded down (occluders err nearer)
    assert values[-1] == 255


def test_empty_bins_borrow_from_the_next_beam_up_or_down():
    # a sparse LiDAR: one ring of wall returns 0.6 degrees above the sample's direction
    wall_x, target = 12.0, np.array([20.0, 0.0, 1.0])
    el = np.degrees(np.arctan2(target[2] - ORIGIN[2], target[0] - ORIGIN[0])) + 0.6
    y = np.linspace(-2, 2, 400)
    z = ORIGIN[2] + (wall_x - ORIGIN[0]) * np.tan(np.radians(el))
    image = RangeImage.from_points(np.vstack([_ground(), np.column_stack([np.full(400, wall_x), y, np.full(400, z)])]), ORIGIN)
    assert not image.samples_seen(target, np.array([0.3, 0.3, 0.3]), 0.0)[13]  # the centre sample


def test_pickles_and_refuses_wrong_shapes():
    image = RangeImage.from_points(_ground(), ORIGIN)
    again = pickle.loads(pickle.dumps(image))
    assert np.array_equal(again.ranges, image.ranges) and image.ranges.shape == (70, 900)
    assert image.nbytes < 2_000  # compressed: mostly empty bins
    # a mining frame keeps it through pickling (Beam shuffles these records)
    frame = pickle.loads(pickle.dumps(MiningFrame("log", 10, 0, None, None, None, None, image)))
    assert np.array_equal(frame.range_image.ranges, image.ranges)
    with pytest.raises(ShapeError, match="points_ego"):
        RangeImage.from_points(np.zeros((5, 2)), ORIGIN)
    with pytest.raises(ShapeError, match="uint8"):
        RangeImage(ORIGIN, np.zeros((3, 3), dtype=np.float32))
    # NaN points are skipped, not binned
    assert RangeImage.from_points(np.full((4, 3), np.nan), ORIGIN).ranges.max() == 0


def test_agrees_with_the_simulators_line_of_sight_visibility():
    """Independent reference: the simulator's LiDAR visibility is the share of the same 27
    samples with a free line of sight, cast against the scene's meshes (actors, buildings,
    poles), not against a sweep."""
    from av_pipeline.detect.points import frame_points_ego
    from av_pipeline.mining.synthetic_eval import lidar_frames
    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive

    drive = SyntheticDrive(SimulationConfig(frames=12, seed=11, cameras=()))
    estimated, truth_visibility = [], []
    for frame, truth in zip(lidar_frames(drive), drive.truths):
        image = RangeImage.from_points(frame_points_ego(frame), frame.rig.lidars[drive.config.lidar.name].translation)
        boxes = truth.cuboids
        for k in np.flatnonzero(truth.range_m <= 60.0):
            estimated.append(image.visibility(boxes.centers_m[k], boxes.sizes_m[k], float(boxes.yaws_rad[k])))
            truth_visibility.append(truth.lidar_visibility[k])
    estimated, truth_visibility = np.array(estimated), np.array(truth_visibility)
    assert len(estimated) > 300
    # measured: correlation 0.90, mean absolute error 0.086 (615 boxes)
    assert np.corrcoef(estimated, truth_visibility)[0, 1] >= 0.85
    assert np.abs(estimated - truth_visibility).mean() <= 0.12
    hidden, in_view = truth_visibility < 0.15, truth_visibility >= 0.9
    # measured: 1% of the hidden boxes estimated at least half visible, 95% of those in view
    assert (estimated[hidden] >= 0.5).mean() <= 0.05
    assert (estimated[in_view] >= 0.5).mean() >= 0.9
