"""SensorRig: validation, name lookup, frame graph, LiDAR-to-camera projection."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import calibration.rig
from calibration.camera import CameraModel
from calibration.errors import CalibrationError, ShapeError, UnknownFrameError
from calibration.frame_graph import FrameGraph
from calibration.rotation import rotation_about_z
from calibration.se3 import SE3
from calibration.rig import RigCamera, SensorRig
from calibration.trajectory import PoseTrajectory

# camera (x right, y down, z forward) -> ego (x forward, y left, z up)
EGO_R_CAMERA_FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_looking(yaw_rad: float, position_m: tuple[float, float, float]) -> SE3:
    """ego_SE3_camera for a camera at position_m looking along yaw_rad (0 = forward)."""
    return SE3(rotation_about_z(yaw_rad) @ EGO_R_CAMERA_FORWARD, np.array(position_m))


def make_rig(distortion_model: str = "pinhole", distortion: tuple[float, ...] = ()) -> SensorRig:
    model = CameraModel(1600, 900, 1200.0, 1180.0, 799.5, 449.5, distortion_model, distortion)  # type: ignore[arg-type]
    return SensorRig(
        cameras={
            "CAM_FRONT": RigCamera(model, camera_looking(0.02, (1.7, 0.0, 1.5))),
            "CAM_BACK": RigCamera(model, camera_looking(np.pi - 0.01, (0.0, 0.0, 1.6))),
        },
        lidars={"LIDAR_TOP": SE3.from_yaw_translation(-np.pi / 2, [0.94, 0.0, 1.84])},
    )


def test_module_doctests_pass() -> None:
    result = doctest.testmod(calibration.rig)
    assert result.attempted > 0 and result.failed == 0


def test_names_and_lookup() -> None:
    rig = make_rig()
    assert rig.camera_names == ("CAM_FRONT", "CAM_BACK")
    assert rig.lidar_names == ("LIDAR_TOP",)
    assert rig.camera("CAM_BACK") is rig.cameras["CAM_BACK"]
    assert rig.ego_SE3_lidar() == rig.ego_SE3_lidar("LIDAR_TOP") == rig.lidars["LIDAR_TOP"]
    with pytest.raises(UnknownFrameError, match=r"unknown camera 'CAM_LEFT'; known cameras: \['CAM_FRONT', 'CAM_BACK'\]"):
        rig.camera("CAM_LEFT")
    with pytest.raises(UnknownFrameError, match=r"unknown LiDAR 'LIDAR_FRONT'; known LiDARs: \['LIDAR_TOP'\]"):
        rig.ego_SE3_lidar("LIDAR_FRONT")
    two_lidars = SensorRig(lidars={"a": SE3.identity(), "b": SE3.identity()})
    with pytest.raises(CalibrationError, match=r"expected a LiDAR name because the rig has 2 LiDARs, known LiDARs: \['a', 'b'\]"):
        two_lidars.ego_SE3_lidar()
    with pytest.raises(TypeError):
        rig.cameras["CAM_LEFT"] = rig.cameras["CAM_FRONT"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lidars": {"ego": SE3.identity()}}, r"rig lidar name: 'ego' is reserved for the vehicle frame"),
        ({"lidars": {"": SE3.identity()}}, r"rig lidar name: expected a non-empty string, got ''"),
        ({"lidars": {"top": np.eye(4)}}, r"rig lidar 'top': expected a SE3 ego_SE3_lidar, got ndarray"),
        ({"cameras": {"front": SE3.identity()}}, r"rig camera 'front': expected a RigCamera, got SE3"),
        (
            {
                "cameras": {"X": RigCamera(CameraModel(10, 10, 5.0, 5.0, 4.5, 4.5), SE3.identity())},
                "lidars": {"X": SE3.identity()},
            },
            r"sensor names must be unique across cameras and LiDARs, got both for \['X'\]",
        ),
    ],
)
def test_rig_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        SensorRig(**kwargs)


def test_to_frame_graph_has_ego_and_every_sensor() -> None:
    rig = make_rig()
    graph = rig.to_frame_graph()
    assert set(graph.frames) == {"ego", "CAM_FRONT", "CAM_BACK", "LIDAR_TOP"}
    assert graph.path("CAM_BACK", "LIDAR_TOP") == ["CAM_BACK", "ego", "LIDAR_TOP"]
    for name in rig.camera_names:
        expected = rig.camera(name).ego_SE3_camera.inverse().compose(rig.ego_SE3_lidar())
        assert graph.get(name, "LIDAR_TOP").allclose(expected, atol_rad=1e-15, atol_m=1e-14)
        assert rig.camera_SE3_lidar(name).allclose(expected, atol_rad=1e-15, atol_m=1e-14)
    # Added to a graph that already knows the vehicle's motion.
    motion = FrameGraph()
    motion.add_stamped(
        "world", "ego",
        PoseTrajectory.from_poses([0, 10**8], [SE3.identity(), SE3.from_yaw_translation(0.0, [1.0, 0.0, 0.0])]),
    )
    graph = rig.to_frame_graph(motion)
    assert graph is motion
    world_SE3_lidar = graph.get("world", "LIDAR_TOP", 5 * 10**7)
    np.testing.assert_allclose(world_SE3_lidar.translation, [0.94 + 0.5, 0.0, 1.84], atol=1e-14)


def test_projection_matches_a_hand_written_pinhole_chain() -> None:
    rng = np.random.default_rng(0)
    rig = make_rig()
    points_lidar = rng.uniform([-60, -60, -3], [60, 60, 5], (5000, 3)).astype(np.float32)
    projections = rig.project_lidar_points(points_lidar)
    assert list(projections) == ["CAM_FRONT", "CAM_BACK"]
    model = rig.camera("CAM_FRONT").model
    seen_by = np.zeros(len(points_lidar), dtype=int)
    for name, projection in projections.items():
        assert len(projection) == 5000
        points_camera = rig.camera_SE3_lidar(name).transform_points(points_lidar.astype(np.float64))
        uvw = points_camera @ model.K.T
        in_front = points_camera[:, 2] > 0.5
        uv = uvw[:, :2] / uvw[:, 2:]
        inside = in_front & np.all((uv >= -0.5) & (uv < [1599.5, 899.5]), axis=1)
        np.testing.assert_array_equal(projection.valid, inside)
        np.testing.assert_allclose(projection.uv_px[inside], uv[inside], atol=1e-9)
        np.testing.assert_allclose(projection.depth_m, points_camera[:, 2], atol=1e-12)
        seen_by += projection.valid
    # Forward and backward cameras do not overlap: no point is seen by both.
    assert seen_by.max() == 1 and 200 < seen_by.sum() < 5000
    # Points straight ahead of the vehicle land in CAM_FRONT near the image centre.
    ahead_ego = np.array([[30.0, 0.0, 1.5]])
    ahead_lidar = rig.ego_SE3_lidar().inverse().transform_points(ahead_ego)
    front = rig.project_lidar_points(ahead_lidar, cameras=["CAM_FRONT"])
    assert list(front) == ["CAM_FRONT"] and front["CAM_FRONT"].valid[0]
    assert abs(front["CAM_FRONT"].uv_px[0, 0] - 799.5) < 1200 * 0.03  # 0.02 rad yaw offset
    assert rig.project_lidar_points(ahead_lidar, cameras=["CAM_BACK"])["CAM_BACK"].valid[0] == False  # noqa: E712


def test_projection_with_distortion_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    coefficients = (-0.12, 0.03, 0.0005, -0.0003, -0.002)
    rig = make_rig("radtan", coefficients)
    points_ego = rng.uniform([5, -30, -2], [60, 30, 4], (3000, 3))  # ahead of the vehicle
    points_lidar = rig.ego_SE3_lidar().inverse().transform_points(points_ego)
    projection = rig.project_lidar_points(np.hstack([points_lidar, rng.uniform(0, 1, (3000, 2))]))["CAM_FRONT"]
    camera_SE3_lidar = rig.camera_SE3_lidar("CAM_FRONT")
    rvec, _ = cv2.Rodrigues(camera_SE3_lidar.rotation)
    uv_cv, _ = cv2.projectPoints(points_lidar, rvec, camera_SE3_lidar.translation, rig.camera("CAM_FRONT").model.K, np.array(coefficients))
    valid = projection.valid
    assert valid.sum() > 1000
    np.testing.assert_allclose(projection.uv_px[valid], uv_cv[valid, 0, :], atol=1e-6)


def test_projection_input_errors() -> None:
    rig = make_rig()
    with pytest.raises(ShapeError, match=r"points_lidar: expected \(N, 3\+\) float array, got \(100, 2\)"):
        rig.project_lidar_points(np.zeros((100, 2)))
    with pytest.raises(ShapeError, match=r"points_lidar: expected \(N, 3\+\) float array, got \(3,\)"):
        rig.project_lidar_points(np.zeros(3))
    with pytest.raises(UnknownFrameError, match=r"unknown camera 'CAM_SIDE'; known cameras"):
        rig.project_lidar_points(np.zeros((1, 3)), cameras=["CAM_FRONT", "CAM_SIDE"])
    with pytest.raises(UnknownFrameError, match=r"unknown LiDAR 'velodyne'"):
        rig.project_lidar_points(np.zeros((1, 3)), lidar="velodyne")
    # A list input works too, and min_depth_m is passed on.
    near = rig.ego_SE3_lidar().inverse().transform_points(np.array([[1.7 + 2.0, 0.0, 1.5]]))
    assert rig.project_lidar_points(near.tolist(), cameras=["CAM_FRONT"])["CAM_FRONT"].valid[0]
    assert not rig.project_lidar_points(near, cameras=["CAM_FRONT"], min_depth_m=3.0)["CAM_FRONT"].valid[0]
