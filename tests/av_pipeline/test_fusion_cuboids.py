"""Cuboid projection: corners, 2D boxes, truncation, near-plane clipping; KITTI 000008 published 2D boxes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids, kitti_camera_boxes_to_cuboids
from av_pipeline.errors import ConfigError
from av_pipeline.fusion import CUBOID_EDGES, project_cuboids
from calibration import SE3, CameraModel
from calibration.camera import BEHIND_CAMERA
from calibration.formats.kitti_object import KittiObjectCalib

# The boxes live in an ego-like frame (x forward, y left, z up); the camera sits at its origin looking along +x.
CAMERA_SE3_EGO = SE3(np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), np.zeros(3))
PINHOLE = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)


def boxes(centres, sizes, yaws=None) -> Cuboids:
    centres = np.atleast_2d(centres)
    return Cuboids.from_arrays("ego", centres, np.atleast_2d(sizes), np.zeros(len(centres)) if yaws is None else yaws, ["car"] * len(centres))


def test_box_inside_the_image_is_untruncated_and_bounded_by_its_corners() -> None:
    rng = np.random.default_rng(0)
    cuboids = boxes(np.c_[rng.uniform(15, 30, 5), rng.uniform(-3, 3, 5), rng.uniform(-1, 1, 5)], rng.uniform(1, 4, (5, 3)), rng.uniform(-np.pi, np.pi, 5))
    projected = project_cuboids(cuboids, PINHOLE, CAMERA_SE3_EGO, name="front")
    corners = projected.corners_uv_px
    expected = np.c_[corners[..., 0].min(1), corners[..., 1].min(1), corners[..., 0].max(1), corners[..., 1].max(1)]
    np.testing.assert_allclose(projected.box2d_px, expected, atol=1e-9)
    np.testing.assert_allclose(projected.box2d_unclipped_px, expected, atol=1e-9)
    np.testing.assert_array_equal(projected.truncation, 0.0)
    np.testing.assert_array_equal(projected.box_truncation, 0.0)
    assert projected.in_front.all() and projected.visible.all() and projected.camera == "front"
    # Corners are the camera projections of Cuboids.corners_m, and depths their camera z.
    corners_camera = CAMERA_SE3_EGO.transform_points(cuboids.corners_m().reshape(-1, 3))
    np.testing.assert_allclose(corners.reshape(-1, 2), PINHOLE.project(corners_camera).uv_px, atol=1e-9)
    np.testing.assert_allclose(projected.corners_depth_m.reshape(-1), corners_camera[:, 2], atol=1e-12)


def test_truncation_is_the_footprint_fraction_outside_the_image() -> None:
    """A thin board facing the camera projects to a rectangle; put a known fraction of it beyond the left edge."""
    depth_m = 10.0
    width_px, height_px = 200.0, 100.0  # at f = 500: 4 m x 2 m at 10 m
    x_min_px = -0.5 - 0.3 * width_px  # 30 % of the board beyond the left image edge
    centre_u = x_min_px + width_px / 2
    y_left_m = -(centre_u - 319.5) * depth_m / 500.0
    board = boxes([depth_m, y_left_m, 0.0], [1e-4, width_px * depth_m / 500.0, height_px * depth_m / 500.0])
    projected = project_cuboids(board, PINHOLE, CAMERA_SE3_EGO)
    assert projected.truncation[0] == pytest.approx(0.3, abs=1e-4)
    assert projected.box_truncation[0] == pytest.approx(0.3, abs=1e-4)
    np.testing.assert_allclose(projected.box2d_unclipped_px[0], [x_min_px, 189.5, x_min_px + width_px, 289.5], atol=0.01)
    np.testing.assert_allclose(projected.box2d_px[0], [-0.5, 189.5, x_min_px + width_px, 289.5], atol=0.01)

    # A box seen corner-first: the hull is a hexagon, its enclosing rectangle has empty corners,
    # so the rectangle-based truncation differs from the footprint-based one.
    turned = boxes([12.0, 6.5, 0.0], [4.0, 4.0, 1.5], [np.pi / 4])
    projected = project_cuboids(turned, PINHOLE, CAMERA_SE3_EGO)
    assert 0.05 < projected.truncation[0] < 0.95 and projected.truncation[0] != pytest.approx(projected.box_truncation[0], abs=1e-3)


def test_boxes_behind_or_across_the_camera_plane_are_clipped_at_the_near_plane() -> None:
    cuboids = boxes([[0.5, 0.0, 0.0], [-10.0, 0.0, 0.0], [30.0, 60.0, 0.0]], [[4.0, 2.0, 1.5], [4.0, 2.0, 1.5], [4.0, 2.0, 1.5]])
    projected = project_cuboids(cuboids, PINHOLE, CAMERA_SE3_EGO, near_m=0.2)
    across, behind, aside = 0, 1, 2
    # Across the camera plane: the rear corners are behind, the clipped footprint covers the image.
    assert not projected.in_front[across] and projected.visible[across]
    assert (projected.corners_status[across] == BEHIND_CAMERA).sum() == 4
    assert np.isnan(projected.corners_uv_px[across][projected.corners_status[across] == BEHIND_CAMERA]).all()
    np.testing.assert_allclose(projected.box2d_px[across], [-0.5, -0.5, 639.5, 479.5])
    assert np.isfinite(projected.box2d_unclipped_px[across]).all() and projected.truncation[across] > 0.8
    # The clipped footprint is the box cut at z = near: its half-width at the near plane is 1 m -> 2500 px.
    assert projected.box2d_unclipped_px[across, 2] - 319.5 == pytest.approx(500.0 * 1.0 / 0.2, rel=1e-9)
    # Entirely behind: nothing to draw.
    assert not projected.visible[behind] and not projected.in_front[behind] and projected.truncation[behind] == 1.0
    assert np.isnan(projected.box2d_px[behind]).all() and np.isnan(projected.box2d_unclipped_px[behind]).all()
    # In front but outside the field of view.
    assert projected.in_front[aside] and not projected.visible[aside] and projected.truncation[aside] == 1.0
    assert np.isnan(projected.box2d_px[aside]).all() and projected.box2d_unclipped_px[aside, 2] < -0.5


def test_distorted_cameras_follow_the_curved_edges() -> None:
    camera = CameraModel(1280, 720, 700.0, 700.0, 639.5, 359.5, "radtan", (-0.25, 0.07, 0.0005, -0.0004, -0.008))
    rng = np.random.default_rng(1)
    cuboids = boxes(np.c_[rng.uniform(6, 12, 6), rng.uniform(-3, 3, 6), rng.uniform(-1, 1, 6)], rng.uniform(1.5, 4, (6, 3)), rng.uniform(-np.pi, np.pi, 6))
    projected = project_cuboids(cuboids, camera, CAMERA_SE3_EGO, edge_samples=16)
    assert projected.visible.all() and projected.in_front.all()
    # Brute force: every edge sampled densely, projected, enclosed.
    corners = CAMERA_SE3_EGO.transform_points(cuboids.corners_m().reshape(-1, 3)).reshape(-1, 8, 3)
    fractions = np.linspace(0.0, 1.0, 2001)[None, None, :, None]
    dense = corners[:, CUBOID_EDGES[:, 0], None] + fractions * (corners[:, CUBOID_EDGES[:, 1], None] - corners[:, CUBOID_EDGES[:, 0], None])
    uv = camera.project(dense.reshape(-1, 3)).uv_px.reshape(len(cuboids), -1, 2)
    expected = np.c_[np.nanmin(uv[..., 0], 1), np.nanmin(uv[..., 1], 1), np.nanmax(uv[..., 0], 1), np.nanmax(uv[..., 1], 1)]
    expected = np.c_[np.maximum(expected[:, :2], -0.5), np.minimum(expected[:, 2:], [1279.5, 719.5])]
    np.testing.assert_allclose(projected.box2d_px, expected, atol=0.5)
    # The corners alone miss the bulge of the curved edges (measured up to 2.5 px here).
    corners_only = project_cuboids(cuboids, camera, CAMERA_SE3_EGO, edge_samples=2)
    assert np.abs(corners_only.box2d_px - expected).max() > 1.5


def test_cuboid_projection_input_checks_and_empty_input() -> None:
    empty = project_cuboids(Cuboids.empty("ego"), PINHOLE, CAMERA_SE3_EGO)
    assert len(empty) == 0 and empty.corners_uv_px.shape == (0, 8, 2) and empty.box2d_px.shape == (0, 4)
    with pytest.raises(ConfigError, match=r"near_m: expected a finite value > 0, got 0.0"):
        project_cuboids(Cuboids.empty("ego"), PINHOLE, CAMERA_SE3_EGO, near_m=0.0)
    with pytest.raises(ConfigError, match=r"edge_samples: expected >= 2, got 1"):
        project_cuboids(Cuboids.empty("ego"), PINHOLE, CAMERA_SE3_EGO, edge_samples=1)


@pytest.mark.realdata
def test_kitti_000008_boxes_project_onto_their_published_2d_boxes(shared_data: Path) -> None:
    """mmdet3d's demo info: 6 Car boxes (rectified camera frame) with their 2D boxes and KITTI truncation.

    The boxes go the product's way: converted to LiDAR-frame cuboids at the reader's edge
    (``kitti_camera_boxes_to_cuboids``), projected through the rig built from the calibration.
    Measured max |difference| per box (px), untruncated boxes 1, 3, 4, 5: 0.58, 0.38, 0.05, 0.30;
    truncated boxes 0 and 2 (KITTI clips to [0, W - 1], we to the pixel edges [-0.5, W - 0.5]):
    0.71, 0.50. KITTI truncation 0.88 / 0.34 vs ours: box_truncation 0.880 / 0.336, footprint
    truncation 0.84 / 0.28.
    """
    folder = shared_data / "kitti" / "demo_000008"
    with open(folder / "000008.pkl", "rb") as handle:
        info = pickle.load(handle)["data_list"][0]  # test oracle only
    P = {f"P{k}": np.array(info["images"][f"CAM{k}"]["cam2img"])[:3] for k in range(4)}
    calib = KittiObjectCalib(P, np.array(info["images"]["R0_rect"])[:3, :3], SE3.from_matrix(np.array(info["lidar_points"]["Tr_velo_to_cam"])))
    camera = calib.to_rig((1242, 375)).cameras["image_2"]
    instances = [i for i in info["instances"] if i["bbox_label_3d"] >= 0]
    bbox_3d = np.array([i["bbox_3d"] for i in instances])  # x, y, z (bottom centre), l, h, w, ry in the rectified camera frame
    cuboids = kitti_camera_boxes_to_cuboids(bbox_3d[:, :3], bbox_3d[:, [4, 5, 3]], bbox_3d[:, 6], ["Car"] * len(bbox_3d), calib.rect_SE3_velo.inverse(), frame="velodyne")
    projected = project_cuboids(cuboids, camera.model, camera.ego_SE3_camera.inverse(), name="image_2")

    published = np.array([i["bbox"] for i in instances])
    kitti_truncated = np.array([i["truncated"] for i in instances])
    assert kitti_truncated.tolist() == [0.88, 0.0, 0.34, 0.0, 0.0, 0.0]
    difference = np.abs(projected.box2d_px - published).max(axis=1)
    untruncated = kitti_truncated == 0.0
    assert np.all(difference[untruncated] < 1.0), difference
    assert np.all(difference[~untruncated] < 1.0), difference  # incl. the half-pixel border convention
    assert projected.in_front.all() and projected.visible.all()
    np.testing.assert_array_equal(projected.truncation[untruncated], 0.0)
    np.testing.assert_allclose(projected.box_truncation[~untruncated], kitti_truncated[~untruncated], atol=0.01)
    assert np.all(np.abs(projected.truncation[~untruncated] - kitti_truncated[~untruncated]) < 0.1)  # loosely
