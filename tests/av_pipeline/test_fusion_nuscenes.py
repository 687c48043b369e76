"""Fusion on the shared nuScenes keyframe: six cameras, painted points, depth images, projected boxes.

Which transforms these tests use, honestly: the info pkl holds the ego pose at the LiDAR time
only (``ego2global``) and, per camera, ``lidar2cam``, which mmdet3d built through the ego
poses at the LiDAR and at the camera time (``obtain_sensor2top``). The ego pose at
CAM_FRONT_LEFT's time (the earliest camera) is recovered from its ``lidar2cam``; the
trajectory is then the two poses, slerp/lerp in between. Fusion computes every camera's
``camera(t_image)_SE3_lidar(t_sweep)`` from that trajectory and the rig (``cam2ego``,
``lidar2ego``): CAM_FRONT_LEFT's agrees with the pkl by construction, the other five are
predictions, checked against the pkl's ``lidar2cam`` below (as in
tests/calibration/test_frame_graph.py).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.fusion import fuse_sweep, pixel_indices, project_cuboids
from av_pipeline.readers.nuscenes import load_nuscenes_sweep
from av_pipeline.records import CameraImage
from calibration import SE3, CameraModel, PoseTrajectory, RigCamera, SensorRig
from calibration.rotation import angle_between

pytestmark = pytest.mark.realdata
ANCHOR = "CAM_FRONT_LEFT"


def _file_time_ns(name: str) -> int:
    """nuScenes file names end in ``__<timestamp_us>.<ext>``: exact integer microseconds."""
    return int(name.split("__")[-1].split(".")[0]) * 1000


@pytest.fixture(scope="module")
def keyframe(shared_data: Path):
    folder = shared_data / "nuscenes_keyframe"
    with open(folder / "n015-2018-07-24-11-22-45+0800.pkl", "rb") as handle:
        info = pickle.load(handle)["data_list"][0]  # test oracle only
    sweep = load_nuscenes_sweep(folder / info["lidar_points"]["lidar_path"])
    ego_SE3_lidar = SE3.from_matrix(np.array(info["lidar_points"]["lidar2ego"]), name="lidar2ego")
    world_SE3_ego_at_lidar = SE3.from_matrix(np.array(info["ego2global"]), name="ego2global")
    cameras = info["images"]
    anchor = cameras[ANCHOR]
    anchor_SE3_lidar = SE3.from_matrix(np.array(anchor["lidar2cam"]), name="lidar2cam")
    ego_SE3_anchor = SE3.from_matrix(np.array(anchor["cam2ego"]), name="cam2ego")
    world_SE3_ego_at_anchor = world_SE3_ego_at_lidar.compose(ego_SE3_lidar).compose(anchor_SE3_lidar.inverse()).compose(ego_SE3_anchor.inverse())
    trajectory = PoseTrajectory.from_poses(
        [_file_time_ns(anchor["img_path"]), sweep.timestamp_ns], [world_SE3_ego_at_anchor, world_SE3_ego_at_lidar], dst_frame="world", src_frame="ego"
    )
    rig = SensorRig(
        cameras={
            name: RigCamera(CameraModel.from_K(np.array(camera["cam2img"]), 1600, 900), SE3.from_matrix(np.array(camera["cam2ego"]), name="cam2ego"))
            for name, camera in cameras.items()
        },
        lidars={"LIDAR_TOP": ego_SE3_lidar},
    )
    images = {
        name: CameraImage(name, _file_time_ns(camera["img_path"]), "jpeg", (folder / camera["img_path"]).read_bytes(), 1600, 900, str(folder / camera["img_path"]))
        for name, camera in cameras.items()
    }
    decoded = {name: image.decode() for name, image in images.items()}
    fusion = fuse_sweep(sweep, rig, images, trajectory, decoded_images=decoded)
    return {"info": info, "sweep": sweep, "rig": rig, "trajectory": trajectory, "images": images, "decoded": decoded, "fusion": fusion}


def test_every_camera_is_matched_and_compensated_like_the_devkit(keyframe) -> None:
    fusion, info = keyframe["fusion"], keyframe["info"]
    skews_ms = {name: match.skew_ns / 1e6 for name, match in fusion.matches.items()}
    assert skews_ms == {
        "CAM_FRONT": -35.491, "CAM_FRONT_RIGHT": -27.612, "CAM_FRONT_LEFT": -43.107,
        "CAM_BACK": -10.426, "CAM_BACK_LEFT": -0.528, "CAM_BACK_RIGHT": -20.058,
    }  # fmt: skip
    assert all(match.within_tolerance for match in fusion.matches.values())
    assert fusion.motion_compensated and not fusion.deskewed
    assert fusion.notes == ("not de-skewed: sweep 'LIDAR_TOP' has no per-point time offsets",)
    static_rig = keyframe["rig"]
    for name, camera in info["images"].items():
        expected = SE3.from_matrix(np.array(camera["lidar2cam"]), name="lidar2cam")
        got = fusion.camera_SE3_lidar[name]
        # Measured: at most 0.50 mm and 1.6e-4 rad (CAM_BACK_RIGHT); the anchor to 1e-13 m.
        assert np.linalg.norm(got.translation - expected.translation) < 1e-3 and angle_between(got.rotation, expected.rotation) < 3e-4, name
        # Without compensation the transform is off by the distance driven (9.2 m/s).
        driven_m = np.linalg.norm(static_rig.camera_SE3_lidar(name, "LIDAR_TOP").translation - expected.translation)
        assert driven_m == pytest.approx(9.2 * abs(fusion.matches[name].skew_ns) / 1e9, rel=0.05, abs=2e-4)


def test_projected_depth_is_the_camera_frame_z_and_pixels_match_the_pkl(keyframe) -> None:
    fusion, info = keyframe["fusion"], keyframe["info"]
    points = fusion.points_lidar.astype(np.float64)
    np.testing.assert_array_equal(fusion.points_lidar, keyframe["sweep"].xyz)
    for name, projection in fusion.projections.items():
        points_camera = fusion.camera_SE3_lidar[name].transform_points(points)
        np.testing.assert_allclose(projection.depth_m, points_camera[:, 2].astype(np.float32), rtol=1.2e-7)  # float32 storage
        # Against the pkl's own lidar2cam and cam2img (an independent chain):
        lidar2cam = np.array(info["images"][name]["lidar2cam"])
        z_pkl = points @ lidar2cam[2, :3] + lidar2cam[2, 3]
        valid = projection.valid
        assert valid.sum() > 2500
        # 1 mm + 1e-4 of the range: the transforms agree to 0.5 mm and 1.6e-4 rad (measured 4.9e-5 relative)
        np.testing.assert_allclose(projection.depth_m[valid], z_pkl[valid], rtol=1e-4, atol=1e-3)
        uvw = (points[valid] @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]) @ np.array(info["images"][name]["cam2img"]).T
        assert np.abs(projection.uv_px[valid] - uvw[:, :2] / uvw[:, 2:]).max() < 0.5


def test_zbuffer_keeps_the_nearest_point_in_every_camera(keyframe) -> None:
    fusion = keyframe["fusion"]
    for name, projection in fusion.projections.items():
        depth = fusion.depth_images[name]
        visible = projection.visible_indices
        rows, cols = pixel_indices(projection.uv_px[visible], 1600, 900)
        dense = depth.dense_depth()
        winners = depth.dense_point_index()
        assert len(depth) == len(np.unique(rows * 1600 + cols))
        # Each visible point is at least as far as its pixel's winner, and the winner is in that pixel.
        assert np.all(projection.depth_m[visible] >= dense[rows, cols])
        np.testing.assert_array_equal(winners[depth.rows, depth.cols], depth.point_index)
        win_rows, win_cols = pixel_indices(projection.uv_px[depth.point_index], 1600, 900)
        np.testing.assert_array_equal(win_rows, depth.rows)
        np.testing.assert_array_equal(win_cols, depth.cols)
        assert np.nanmin(dense) > 0.5 and np.nanmax(dense) < 120.0


def test_painted_colours_are_the_image_pixels_at_the_projected_locations(keyframe) -> None:
    fusion, decoded = keyframe["fusion"], keyframe["decoded"]
    painted = fusion.painted
    assert painted.camera_names == tuple(fusion.projections)
    counts = painted.counts()
    # Measured: 2,710 (CAM_FRONT_RIGHT) to 4,565 (CAM_BACK) points per camera; 14,490 of 34,688 seen by none.
    assert all(counts[name] > 2500 for name in painted.camera_names) and counts["none"] == 14_490
    for index, name in enumerate(painted.camera_names):
        mine = np.flatnonzero(painted.camera_index == index)
        assert fusion.projections[name].valid[mine].all()
        rows, cols = pixel_indices(fusion.projections[name].uv_px[mine], 1600, 900)
        np.testing.assert_array_equal(painted.rgb[mine], decoded[name][rows, cols])
    unseen = ~painted.painted
    assert not any(projection.valid[unseen].any() for projection in fusion.projections.values())
    assert not painted.rgb[unseen].any()


def test_boxes_project_onto_mmdet3d_camera_boxes(keyframe) -> None:
    """The pkl's ``cam_instances`` 2D boxes: mmdet3d's convex hull of the projected corners, clipped to [0, W] x [0, H].

    nuScenes boxes are annotated upright in the world; the pkl's LIDAR_TOP boxes dropped the
    ego's roll and pitch. So the boxes are taken back to the world (``Cuboids.transform``
    keeps them upright there) and projected with ``camera(t_image)_SE3_world``. Measured over
    the 84 (box, camera) pairs: max 0.29 px, median 0.05 px. The LiDAR-upright boxes miss by up
    to 25 px (a large vehicle 8 m from CAM_FRONT).
    """
    info, fusion, trajectory, rig = keyframe["info"], keyframe["fusion"], keyframe["trajectory"], keyframe["rig"]
    bbox_3d = np.array([instance["bbox_3d"] for instance in info["instances"]])  # x, y, z (centre), l, w, h, yaw in LIDAR_TOP
    boxes_lidar = Cuboids.from_arrays("LIDAR_TOP", bbox_3d[:, :3], bbox_3d[:, 3:6], bbox_3d[:, 6], [str(i["bbox_label"]) for i in info["instances"]])
    world_SE3_lidar = trajectory.at(fusion.sweep_timestamp_ns).compose(rig.ego_SE3_lidar("LIDAR_TOP"))
    boxes_world = boxes_lidar.transform(world_SE3_lidar, "world")
    errors, lidar_upright_errors = [], []
    for name in rig.camera_names:
        camera_SE3_world = rig.cameras[name].ego_SE3_camera.inverse().compose(trajectory.at(fusion.matches[name].image_timestamp_ns).inverse())
        projected = project_cuboids(boxes_world, rig.cameras[name].model, camera_SE3_world, name=name)
        upright_in_lidar = project_cuboids(boxes_lidar, rig.cameras[name].model, fusion.camera_SE3_lidar[name], name=name)
        centres_camera = camera_SE3_world.transform_points(boxes_world.centers_m)
        for instance in info["cam_instances"][name]:
            distance = np.linalg.norm(centres_camera - np.array(instance["bbox_3d"][:3]), axis=1)
            k = int(distance.argmin())
            assert distance[k] < 0.01  # the same box (centre within 1 cm)
            published = np.array(instance["bbox"])
            # their canvas edges 0 and W / H are our pixel edges -0.5 and W - 0.5 / H - 0.5
            published = np.where(published <= 0.0, -0.5, np.where(published >= [1600, 900, 1600, 900], published - 0.5, published))
            assert projected.in_front[k] and projected.visible[k]
            errors.append(np.abs(projected.box2d_px[k] - published).max())
            lidar_upright_errors.append(np.abs(upright_in_lidar.box2d_px[k] - published).max())
    assert len(errors) == 84
    assert max(errors) < 0.5 and np.median(errors) < 0.1, (max(errors), np.median(errors))
    assert max(lidar_upright_errors) > 10.0
