"""Cuboids: geometry, point-in-box counts and the dataset converters."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pyquaternion import Quaternion

from av_pipeline.boxes import (
    Cuboids,
    cuboids_to_kitti_camera_boxes,
    kitti_camera_boxes_to_cuboids,
    nuscenes_boxes_to_cuboids,
)
from av_pipeline.errors import ShapeError
from calibration import SE3


def _random_boxes(rng: np.random.Generator, k: int, frame: str = "ego") -> Cuboids:
    return Cuboids.from_arrays(
        frame,
        rng.uniform(-20, 20, (k, 3)),
        rng.uniform(0.5, 5.0, (k, 3)),
        rng.uniform(-np.pi, np.pi, k),
        [f"c{i}" for i in range(k)],
        track_ids=np.arange(k),
    )


def test_corners_are_at_half_sizes_along_the_box_axes() -> None:
    boxes = Cuboids.from_arrays("ego", [[1.0, 2.0, 3.0]], [[4.0, 2.0, 1.0]], [np.pi / 2], ["car"])
    corners = boxes.corners_m()[0]
    # yaw 90 degrees: length runs along +y; front-left bottom corner = centre + (-w/2, +l/2, -h/2)
    np.testing.assert_allclose(corners[0], [1.0 - 1.0, 2.0 + 2.0, 3.0 - 0.5], atol=1e-12)
    np.testing.assert_allclose(corners[6], [1.0 + 1.0, 2.0 - 2.0, 3.0 + 0.5], atol=1e-12)
    np.testing.assert_allclose(corners.mean(axis=0), [1.0, 2.0, 3.0], atol=1e-12)


def test_points_in_boxes_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, 12)
    points = rng.uniform(-25, 25, (20000, 3)).astype(np.float32)
    counts = boxes.count_points(points)
    for k in range(len(boxes)):
        local = SE3.from_yaw_translation(boxes.yaws_rad[k], boxes.centers_m[k]).inverse().transform_points(points.astype(np.float64))
        inside = np.all(np.abs(local) <= boxes.sizes_m[k] / 2, axis=1)
        assert counts[k] == inside.sum()
    first = boxes.points_in_boxes(points)
    assert ((first >= 0).sum()) <= counts.sum()
    assert set(np.unique(first)) <= set(range(-1, len(boxes)))


def test_transform_moves_centres_and_turns_yaw() -> None:
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 5, "ego")
    world_SE3_ego = SE3.from_yaw_translation(0.7, [100.0, -5.0, 1.0])
    moved = boxes.transform(world_SE3_ego, "world")
    assert moved.frame == "world"
    np.testing.assert_allclose(moved.centers_m, world_SE3_ego.transform_points(boxes.centers_m))
    np.testing.assert_allclose(np.exp(1j * moved.yaws_rad), np.exp(1j * (boxes.yaws_rad + 0.7)), atol=1e-12)
    back = moved.transform(world_SE3_ego.inverse(), "ego")
    np.testing.assert_allclose(back.centers_m, boxes.centers_m, atol=1e-9)


@pytest.mark.parametrize("height_axis", ["frame_z", "camera_y"])
def test_kitti_conversion_round_trips(height_axis: str) -> None:
    rng = np.random.default_rng(2)
    cam_SE3_lidar = SE3.from_matrix(
        [[0.0075, -0.99997, -0.0006, -0.004], [0.0148, 0.0007, -0.9999, -0.076], [0.9999, 0.0075, 0.0148, -0.27]]
    )
    loc = rng.uniform([-10, 1, 5], [10, 2, 60], (8, 3))
    hwl = rng.uniform([1.4, 1.5, 3.5], [2.0, 2.0, 5.0], (8, 3))
    ry = rng.uniform(-np.pi, np.pi, 8)
    boxes = kitti_camera_boxes_to_cuboids(loc, hwl, ry, ["Car"] * 8, cam_SE3_lidar.inverse(), height_axis=height_axis)
    loc2, hwl2, ry2 = cuboids_to_kitti_camera_boxes(boxes, cam_SE3_lidar, height_axis=height_axis)
    np.testing.assert_allclose(loc2, loc, atol=1e-9)
    np.testing.assert_allclose(hwl2, hwl)
    # yaw survives up to the camera-LiDAR tilt (boxes stay upright in the LiDAR frame)
    np.testing.assert_allclose(np.exp(1j * ry2), np.exp(1j * ry), atol=2e-4)
    # mmdet3d's convention: LiDAR yaw = -ry - pi/2 for an untilted camera
    np.testing.assert_allclose(np.exp(1j * boxes.yaws_rad), np.exp(1j * (-ry - np.pi / 2)), atol=0.03)


def test_kitti_demo_box_counts_match_published(shared_data) -> None:
    info = pickle.load(open(shared_data / "kitti/demo_000008/000008.pkl", "rb"))["data_list"][0]
    rect_SE3_velo = SE3.from_matrix(np.array(info["images"]["R0_rect"]) @ np.array(info["lidar_points"]["Tr_velo_to_cam"]))
    points = np.fromfile(shared_data / "kitti/demo_000008/000008.bin", np.float32).reshape(-1, 4)
    instances = [i for i in info["instances"] if i["bbox_label_3d"] >= 0]
    b = np.array([i["bbox_3d"] for i in instances])  # x, y, z, l, h, w, ry (camera frame)
    boxes = kitti_camera_boxes_to_cuboids(b[:, :3], b[:, [4, 5, 3]], b[:, 6], ["Car"] * len(b), rect_SE3_velo.inverse())
    published = np.array([i["num_lidar_pts"] for i in instances])
    counts = boxes.count_points(points)
    assert np.abs(counts - published).max() <= 2, (counts, published)


def test_nuscenes_conversion_takes_yaw_from_the_quaternion() -> None:
    rng = np.random.default_rng(3)
    yaws = rng.uniform(-np.pi, np.pi, 6)
    quats = np.array([Quaternion(axis=[0, 0, 1], angle=a).elements for a in yaws])
    wlh = rng.uniform(1, 5, (6, 3))
    boxes = nuscenes_boxes_to_cuboids(rng.normal(size=(6, 3)), wlh, quats, ["car"] * 6, "world", track_ids=range(6))
    np.testing.assert_allclose(np.exp(1j * boxes.yaws_rad), np.exp(1j * yaws), atol=1e-12)
    np.testing.assert_allclose(boxes.sizes_m, wlh[:, [1, 0, 2]])
    assert boxes.track_ids.tolist() == list(range(6))


def test_bad_boxes_are_refused_with_the_field_named() -> None:
    with pytest.raises(ShapeError, match=r"sizes_m: expected \(2, 3\)"):
        Cuboids("ego", np.zeros((2, 3)), np.ones((3, 3)), np.zeros(2), np.array(["a", "b"]), np.ones(2), np.zeros(2, int))
    with pytest.raises(ShapeError, match="sizes_m: expected positive"):
        Cuboids.from_arrays("ego", [[0, 0, 0]], [[1, -1, 1]], [0], ["a"])
    with pytest.raises(ShapeError, match="centers_m: expected finite"):
        Cuboids.from_arrays("ego", [[np.nan, 0, 0]], [[1, 1, 1]], [0], ["a"])
    with pytest.raises(ShapeError, match=r"points: expected \(N, 3\+\)"):
        Cuboids.empty("ego").count_points(np.zeros((4, 2)))
