"""Unexplained LiDAR clusters: ground, boxes and structure left out; real nuScenes points
checked against the published per-box point counts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError
from av_pipeline.mining.clusters import ClusterConfig, PointClusters, unexplained_clusters
from av_pipeline.mining.records import MiningFrame
from av_pipeline.readers.nuscenes import load_nuscenes_sweep


def _block(center, size, step=0.1):
    axes = [np.arange(c - s / 2, c + s / 2 + 1e-9, step) for c, s in zip(center, size)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _scene(slope=0.0):
    g = np.arange(-60.0, 60.0, 0.25)
    gx, gy = np.meshgrid(g, g, indexing="ij")
    ground = np.column_stack([gx.ravel(), gy.ravel(), -1.8 + slope * gx.ravel()])
    car = _block((15.0, 4.0, -1.0 + slope * 15.0), (4.0, 1.8, 1.2), 0.2)  # bottom 0.2 m above the ground
    pole = _block((25.0, -3.0, -0.3 + slope * 25.0), (0.2, 0.2, 3.0), 0.05)
    wall = _block((10.0, -12.0, -0.8 + slope * 10.0), (30.0, 0.2, 2.0), 0.25)  # longer than max_extent_m: structure
    body = _block((0.5, 0.0, -1.0), (1.5, 1.5, 0.6), 0.1)  # the ego's own returns
    return np.concatenate([ground, car, pole, wall, body]), car, pole


@pytest.mark.parametrize("slope", [0.0, 0.05])
def test_clusters_leave_out_ground_structure_ego_and_boxes(slope):
    points, car, pole = _scene(slope)
    found = unexplained_clusters(points, [])
    assert len(found) == 2  # the car and the pole; no ground, wall or ego body
    def above(block, slack=0.0):  # points at least min_height_m over the ground
        return int((block[:, 2] - (-1.8 + slope * block[:, 0]) >= ClusterConfig().min_height_m - slack - 1e-9).sum())

    # on a slope the ground is the lowest point within a few metres: up to slope * 3 m lower
    for n, block in zip(found.num_points, (pole, car)):  # largest first
        assert above(block) <= n <= above(block, slack=slope * 3.0)
    np.testing.assert_allclose(found.centers_m[1, :2], [15.0, 4.0], atol=0.05)
    np.testing.assert_allclose(found.extents_m[1], [4.0, 1.8, 1.2], atol=0.25)
    car_box = Cuboids.from_arrays("ego", np.array([[15.0, 4.0, -1.1 + slope * 15.0]]), np.array([[4.2, 2.0, 1.4]]), np.array([0.0]), ["car"])
    only_pole = unexplained_clusters(points, [car_box])
    assert len(only_pole) == 1 and only_pole.num_points[0] == found.num_points[0]
    # the pole rises above a pedestrian standing behind it: it cannot be that pedestrian's points
    pedestrian = (np.array([25.5, -3.0, -0.9 + slope * 25.5]), np.array([0.6, 0.6, 1.8]), 0.0)
    assert not only_pole.within_box(*pedestrian, margin_m=1.0)[0]
    assert only_pole.in_footprint(pedestrian[0], pedestrian[1], 0.0, 1.0)[0]


def test_clusters_refuse_bad_input():
    with pytest.raises(ShapeError, match="points_ego must be"):
        unexplained_clusters(np.zeros((5, 2)), [])
    with pytest.raises(ShapeError, match="boxes must be in 'ego'"):
        unexplained_clusters(np.zeros((5, 3)), [Cuboids.empty("lidar")])
    with pytest.raises(ShapeError, match="PointClusters"):
        PointClusters(np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32), np.zeros(2, np.int32))
    nan = np.full((4, 3), np.nan)
    assert len(unexplained_clusters(nan, [])) == 0


def test_real_nuscenes_object_left_out_of_the_boxes_comes_back_as_its_cluster(shared_data: Path):
    folder = shared_data / "nuscenes_keyframe"
    sweep = load_nuscenes_sweep(next(folder.glob("*LIDAR_TOP*.pcd.bin")))
    with open(folder / "n015-2018-07-24-11-22-45+0800.pkl", "rb") as f:
        info = pickle.load(f)["data_list"][0]
    bbox = np.array([i["bbox_3d"] for i in info["instances"]])  # centre, l, w, h, yaw in LIDAR_TOP (z up)
    published = np.array([i["num_lidar_pts"] for i in info["instances"]])
    vehicles = np.array([i["bbox_label_3d"] in (0, 1, 2, 3) for i in info["instances"]])  # car, truck, trailer, bus
    boxes = Cuboids.from_arrays("ego", bbox[:, :3], bbox[:, 3:6], bbox[:, 6], ["x"] * len(bbox))
    checked = 0
    for k in np.flatnonzero(vehicles & (published >= 40)):
        others = boxes.subset(np.arange(len(boxes)) != k)
        found = unexplained_clusters(sweep.points, [others])
        inside = found.within_box(bbox[k, :3], bbox[k, 3:6], bbox[k, 6], margin_m=0.5)
        # published counts include the ground returns under the box, left out here
        assert 0.8 * published[k] <= found.num_points[inside].sum() <= 1.05 * published[k], k
        checked += 1
    assert checked >= 2
    every = unexplained_clusters(sweep.points, [boxes])
    for k in np.flatnonzero(vehicles & (published >= 40)):
        assert every.num_points[every.within_box(bbox[k, :3], bbox[k, 3:6], bbox[k, 6], margin_m=0.0)].sum() <= 10


def test_mining_frame_with_clusters_pickles():
    clusters = PointClusters(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), np.array([5, 7], np.int32))
    frame = MiningFrame("log", 10, 0, None, None, None, clusters)
    back = pickle.loads(pickle.dumps(frame))
    assert back.clusters.num_points.tolist() == [5, 7]
    assert pickle.loads(pickle.dumps(MiningFrame("log", 10, 0, None, None, None))).clusters is None
