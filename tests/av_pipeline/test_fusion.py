"""Fusion: camera matching in time, projection products (pixels, z-buffer, painting, frustums), fuse_sweep."""

from __future__ import annotations

import doctest
import io

import numpy as np
import pytest
from PIL import Image

import av_pipeline.fusion.timing
from av_pipeline.errors import ConfigError, ShapeError
from av_pipeline.fusion import (
    NOT_PAINTED,
    depth_image,
    deskew_points,
    fuse_sweep,
    match_cameras,
    paint_points,
    pixel_indices,
    points_in_box_frustum,
    project_points,
    project_to_cameras,
    sensor_SE3_lidar_across_time,
)
from av_pipeline.records import CameraImage, LidarSweep
from calibration import SE3, CameraModel, PoseTrajectory, RigCamera, SensorRig
from calibration.camera import BEHIND_CAMERA, NOT_FINITE, VISIBLE

MS = 1_000_000
T0 = 1_600_000_000_000_000_000
# camera axes (x right, y down, z forward) in a vehicle frame looking along +x
FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_facing(yaw_rad: float, height_m: float = 1.5) -> SE3:
    """``ego_SE3_camera`` of a camera on the roof looking along ``yaw_rad``."""
    return SE3.from_yaw_translation(yaw_rad, [0.0, 0.0, height_m]).compose(SE3(FORWARD, np.zeros(3)))


def random_se3(rng: np.random.Generator, scale_m: float = 2.0) -> SE3:
    q = rng.normal(size=4)
    return SE3.from_wxyz(q / np.linalg.norm(q), rng.uniform(-scale_m, scale_m, 3))


# ---------------------------------------------------------------------- time
def test_module_doctests_pass() -> None:
    result = doctest.testmod(av_pipeline.fusion.timing)
    assert result.attempted > 0 and result.failed == 0


def test_match_cameras_reports_every_camera_with_skew_or_reason() -> None:
    sweep_ns = T0 + 100 * MS
    matches = match_cameras(
        sweep_ns,
        {"front": np.array([T0 + 60 * MS, T0 + 95 * MS, T0 + 140 * MS]), "tie": [T0 + 90 * MS, T0 + 110 * MS], "late": T0 + 170 * MS},
        tolerance_ns=50 * MS,
        cameras=["front", "tie", "late", "dark"],
    )
    assert list(matches) == ["front", "tie", "late", "dark"]
    front = matches["front"]
    assert (front.image_index, front.image_timestamp_ns, front.skew_ns, front.within_tolerance) == (1, T0 + 95 * MS, -5 * MS, True)
    assert front.reason == "" and front.describe() == "front: image 5.000 ms before the sweep (ok)"
    assert matches["tie"].skew_ns == -10 * MS  # equally far: the earlier image
    late = matches["late"]
    assert (late.skew_ns, late.within_tolerance) == (70 * MS, False)
    assert late.reason == "nearest image is 70.000 ms after the sweep (tolerance 50.000 ms)"
    assert late.describe() == "late: image 70.000 ms after the sweep (rejected)"
    dark = matches["dark"]
    assert (dark.image_timestamp_ns, dark.skew_ns, dark.within_tolerance, dark.reason) == (None, None, False, "no image for this camera")
    # The tolerance is inclusive.
    assert match_cameras(sweep_ns, {"front": [T0 + 150 * MS]}, 50 * MS)["front"].within_tolerance


def test_match_cameras_refuses_bad_input() -> None:
    with pytest.raises(ShapeError, match=r"image_timestamps_ns\['front'\]: expected integer nanoseconds .* got float64"):
        match_cameras(T0, {"front": [1.5e18]})
    with pytest.raises(ShapeError, match=r"sweep_timestamp_ns: expected an integer number of nanoseconds, got float"):
        match_cameras(1.6e18, {"front": [T0]})
    with pytest.raises(ConfigError, match=r"tolerance_ns: expected >= 0, got -1"):
        match_cameras(T0, {"front": [T0]}, -1)
    with pytest.raises(ConfigError, match=r"cameras \['rear'\] are not among the cameras to match \['front'\]"):
        match_cameras(T0, {"front": [T0], "rear": [T0]}, cameras=["front"])


# ---------------------------------------------------------------------- projection
CAMERAS = {
    "pinhole": CameraModel(640, 480, 500.0, 510.0, 319.5, 239.5),
    "radtan": CameraModel(1280, 720, 1000.0, 1000.0, 639.5, 359.5, "radtan", (-0.3, 0.09, 0.001, -0.002, -0.01)),
    "rational": CameraModel(1920, 1200, 2152.8, 2155.5, 971.3, 605.9, "radtan", (-0.1, 0.16, 0.0007, 0.0014, -0.02, 0.01, 0.02, 0.003)),
    "fisheye": CameraModel(1024, 768, 300.0, 300.0, 511.5, 383.5, "fisheye", (0.05, -0.01, 0.002, -0.0003)),
}


@pytest.mark.parametrize("name", list(CAMERAS))
def test_projection_has_the_semantics_of_camera_model_project(name: str) -> None:
    """Statuses, pixels and depths equal CameraModel.project on the transformed points, for every model."""
    rng = np.random.default_rng(list(CAMERAS).index(name))
    camera = CAMERAS[name]
    camera_SE3_lidar = random_se3(rng)
    points = rng.uniform(-30.0, 30.0, (20000, 4)).astype(np.float32)
    points[:5, :3] = [np.nan, 0.0, 0.0]
    points[5:8, 1] = np.inf
    projection = project_points(points, camera, camera_SE3_lidar, name=name, min_depth_m=0.5)
    expected = camera.project(camera_SE3_lidar.transform_points(points[:, :3].astype(np.float64)), min_depth_m=0.5)
    np.testing.assert_array_equal(projection.status, expected.status)
    # Stored as float32: the float64 results rounded (a last-bit difference in the float64
    # arithmetic could round the other way, hence a one-ulp tolerance).
    assert projection.uv_px.dtype == projection.depth_m.dtype == np.float32
    has_pixel = ~np.isnan(expected.uv_px[:, 0])
    np.testing.assert_array_equal(np.isnan(projection.uv_px[:, 0]), ~has_pixel)
    np.testing.assert_allclose(projection.uv_px[has_pixel], expected.uv_px[has_pixel].astype(np.float32), rtol=1.2e-7, atol=0)
    finite = projection.status != NOT_FINITE
    np.testing.assert_allclose(projection.depth_m[finite], expected.depth_m[finite].astype(np.float32), rtol=1.2e-7, atol=1e-30)
    counts = np.bincount(projection.status, minlength=5)
    assert counts[VISIBLE] > 500 and counts[BEHIND_CAMERA] > 5000 and counts[NOT_FINITE] == 8
    assert projection.valid.sum() == len(projection.visible_indices) == counts[VISIBLE]
    with pytest.raises(ValueError, match="read-only"):
        projection.uv_px[0, 0] = 1.0


def test_project_to_cameras_projects_every_camera_and_checks_its_input() -> None:
    rng = np.random.default_rng(5)
    points = rng.uniform(-20, 20, (1000, 3)).astype(np.float32)
    transforms = {"a": random_se3(rng), "b": random_se3(rng)}
    projections = project_to_cameras(points, {"a": CAMERAS["pinhole"], "b": CAMERAS["fisheye"], "c": CAMERAS["radtan"]}, transforms)
    assert list(projections) == ["a", "b"] and projections["b"].model == CAMERAS["fisheye"]
    assert projections["a"].camera_SE3_lidar == transforms["a"]
    with pytest.raises(ConfigError, match=r"no intrinsics for cameras \['b'\]; known cameras: \['a'\]"):
        project_to_cameras(points, {"a": CAMERAS["pinhole"]}, transforms)
    with pytest.raises(ShapeError, match=r"points_lidar: expected \(N, 3\+\) float32 array, got \(1000,\) float32"):
        project_points(points[:, 0], CAMERAS["pinhole"], SE3.identity())
    with pytest.raises(ShapeError, match=r"got \(1000, 3\) int64"):
        project_points(points.astype(np.int64), CAMERAS["pinhole"], SE3.identity())
    with pytest.raises(ConfigError, match="min_depth_m: expected a finite value >= 0"):
        project_points(points, CAMERAS["pinhole"], SE3.identity(), min_depth_m=-1.0)


# ---------------------------------------------------------------------- z-buffer
def crowded_projection(rng: np.random.Generator):
    """Points along few rays into a small camera, so that many share a pixel; some exact duplicates."""
    camera = CameraModel(40, 30, 30.0, 30.0, 19.5, 14.5)
    directions = np.c_[rng.uniform(-0.7, 0.7, (300, 2)), np.ones(300)]
    depth = rng.uniform(1.0, 50.0, (300, 20))
    points_camera = (directions[:, None, :] * depth[..., None]).reshape(-1, 3)
    points_camera[-50:] = points_camera[-100:-50]  # exact duplicates of earlier points
    points_camera[:100, 2] *= -1.0  # some behind the camera
    rng.shuffle(points_camera[:-100])
    return project_points(points_camera.astype(np.float32), camera, SE3.identity())


def test_zbuffer_keeps_the_nearest_point_per_pixel() -> None:
    projection = crowded_projection(np.random.default_rng(6))
    depth = depth_image(projection)
    visible = projection.visible_indices
    rows, cols = pixel_indices(projection.uv_px[visible], 40, 30)
    # Brute force: per pixel, sort by (pixel, depth, index) and take the first.
    pixel = rows * 40 + cols
    order = np.lexsort((visible, projection.depth_m[visible], pixel))
    first = np.r_[True, pixel[order][1:] != pixel[order][:-1]]
    expected = {int(p): int(i) for p, i in zip(pixel[order][first], visible[order][first])}
    got = {int(r) * 40 + int(c): int(i) for r, c, i in zip(depth.rows, depth.cols, depth.point_index)}
    assert got == expected
    assert len(depth) == len(expected) < len(visible) / 3  # pixels were contested
    np.testing.assert_array_equal(np.diff(depth.point_index) > 0, True)  # point order
    np.testing.assert_array_equal(depth.depth_m, projection.depth_m[depth.point_index].astype(np.float32))
    # Every visible point in an occupied pixel is at least as far as the winner.
    dense = depth.dense_depth()
    assert np.all(projection.depth_m[visible] >= dense[rows, cols] - 1e-6)
    assert np.isnan(dense).sum() == 40 * 30 - len(depth)
    assert depth.dense_depth(empty=0.0).min() == 0.0
    index_image = depth.dense_point_index()
    assert (index_image >= 0).sum() == len(depth) and index_image[depth.rows[0], depth.cols[0]] == depth.point_index[0]


def test_zbuffer_breaks_ties_by_the_lowest_index_and_handles_no_points() -> None:
    camera = CameraModel(10, 10, 10.0, 10.0, 4.5, 4.5)
    points = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.01, 0.0, 3.0], [0.0, 0.0, -3.0]], np.float32)
    depth = depth_image(project_points(points, camera, SE3.identity()))
    assert depth.point_index.tolist() == [1] and depth.depth_m.tolist() == [3.0]
    empty = depth_image(project_points(np.zeros((0, 3), np.float32), camera, SE3.identity()))
    assert len(empty) == 0 and np.isnan(empty.dense_depth()).all()


# ---------------------------------------------------------------------- painting
def test_painted_colours_are_the_image_pixels_and_overlaps_go_to_the_most_central_camera() -> None:
    rng = np.random.default_rng(7)
    camera = CameraModel(160, 120, 80.0, 80.0, 79.5, 59.5)  # 90 degrees wide
    cameras = {"left": camera, "right": camera, "gray": camera}
    ego_SE3_camera = {"left": camera_facing(0.5), "right": camera_facing(-0.5), "gray": camera_facing(np.pi)}
    points = rng.uniform(-20, 20, (30000, 3)).astype(np.float32)
    transforms = {name: pose.inverse() for name, pose in ego_SE3_camera.items()}
    projections = project_to_cameras(points, cameras, transforms)
    images = {
        "left": rng.integers(0, 256, (120, 160, 3), dtype=np.uint8),
        "right": rng.integers(0, 256, (120, 160, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (120, 160), dtype=np.uint8),
    }
    painted = paint_points(projections, images)
    assert painted.camera_names == ("left", "right", "gray")

    # Brute force: the camera with the smallest normalised distance to its principal point.
    scores = np.full((3, len(points)), np.inf)
    for c, name in enumerate(painted.camera_names):
        p = projections[name]
        valid = p.valid
        scores[c, valid] = ((p.uv_px[valid, 0] - 79.5) / 80.0) ** 2 + ((p.uv_px[valid, 1] - 59.5) / 80.0) ** 2
    expected_camera = np.where(np.isfinite(scores.min(axis=0)), scores.argmin(axis=0), NOT_PAINTED)
    np.testing.assert_array_equal(painted.camera_index, expected_camera)
    both = projections["left"].valid & projections["right"].valid
    assert both.sum() > 500  # the two front cameras overlap by 33 degrees
    for c, name in enumerate(painted.camera_names):
        mine = np.flatnonzero(painted.camera_index == c)
        rows, cols = pixel_indices(projections[name].uv_px[mine], 160, 120)
        image = images[name] if images[name].ndim == 3 else np.repeat(images[name][..., None], 3, axis=2)
        np.testing.assert_array_equal(painted.rgb[mine], image[rows, cols])
    unseen = ~painted.painted
    assert unseen.sum() > 1000 and not painted.rgb[unseen].any()
    counts = painted.counts()
    assert sum(counts.values()) == len(points) and counts["none"] == unseen.sum()


def test_paint_points_refuses_mismatched_images() -> None:
    camera = CameraModel(16, 12, 10.0, 10.0, 7.5, 5.5)
    projections = project_to_cameras(np.zeros((3, 3), np.float32), {"a": camera}, {"a": SE3.identity()})
    with pytest.raises(ShapeError, match=r"image 'a': expected \(12, 16, 3\) or \(12, 16\) uint8 for the camera's size, got \(16, 12, 3\) uint8"):
        paint_points(projections, {"a": np.zeros((16, 12, 3), np.uint8)})
    with pytest.raises(ShapeError, match=r"got \(12, 16, 3\) float32"):
        paint_points(projections, {"a": np.zeros((12, 16, 3), np.float32)})
    with pytest.raises(ConfigError, match=r"no projection for cameras \['b'\]"):
        paint_points(projections, {"b": np.zeros((12, 16, 3), np.uint8)})


# ---------------------------------------------------------------------- frustum
def test_points_in_box_frustum_selects_by_pixel_box_and_depth() -> None:
    rng = np.random.default_rng(8)
    camera = CAMERAS["radtan"]
    projection = project_points(rng.uniform(-30, 30, (20000, 3)).astype(np.float32), camera, random_se3(rng))
    boxes = np.array([[100.0, 50.0, 600.0, 400.0], [600.0, 300.0, 1279.0, 719.0], [0.0, 0.0, 10.0, 10.0]])
    inside = points_in_box_frustum(projection, boxes, min_depth_m=2.0, max_depth_m=25.0)
    assert inside.shape == (3, 20000)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        with np.errstate(invalid="ignore"):
            expected = (
                projection.valid
                & (projection.uv_px[:, 0] >= x0) & (projection.uv_px[:, 0] <= x1)
                & (projection.uv_px[:, 1] >= y0) & (projection.uv_px[:, 1] <= y1)
                & (projection.depth_m >= 2.0) & (projection.depth_m <= 25.0)
            )  # fmt: skip
        np.testing.assert_array_equal(inside[k], expected)
    assert inside[0].sum() > 100 and inside[1].sum() > 100
    single = points_in_box_frustum(projection, boxes[0])
    assert single.shape == (20000,) and single.sum() >= inside[0].sum()
    with pytest.raises(ShapeError, match=r"boxes_px: expected \(K, 4\) or \(4,\) float array, got \(2, 3\)"):
        points_in_box_frustum(projection, np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="expected min_depth_m <= max_depth_m"):
        points_in_box_frustum(projection, boxes, min_depth_m=5.0, max_depth_m=1.0)


# ---------------------------------------------------------------------- fuse_sweep
def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_frame(rng: np.random.Generator):
    camera = CameraModel(96, 64, 60.0, 60.0, 47.5, 31.5)
    rig = SensorRig(
        cameras={"front": RigCamera(camera, camera_facing(0.0)), "rear": RigCamera(camera, camera_facing(np.pi)), "side": RigCamera(camera, camera_facing(np.pi / 2))},
        lidars={"top": SE3.from_yaw_translation(0.0, [0.5, 0.0, 1.8])},
    )
    count = 6000
    points = rng.uniform(-30, 30, (count, 4)).astype(np.float32)
    offsets = np.linspace(-100 * MS, 0, count).astype(np.int32)
    sweep_ns = T0 + 100 * MS
    sweep = LidarSweep("top", sweep_ns, points, ("x", "y", "z", "intensity"), offsets)
    pixels = {name: rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for name in rig.cameras}
    images = {
        "front": [CameraImage("front", sweep_ns - 70 * MS, "png", png_bytes(pixels["front"]), 96, 64),
                  CameraImage("front", sweep_ns - 20 * MS, "png", png_bytes(pixels["front"]), 96, 64)],
        "rear": CameraImage("rear", sweep_ns + 80 * MS, "png", png_bytes(pixels["rear"]), 96, 64),
    }  # fmt: skip
    trajectory = PoseTrajectory.from_poses(
        [T0 - 50 * MS, T0 + 250 * MS],
        [SE3.from_yaw_translation(0.1, [100.0, 50.0, 0.0]), SE3.from_yaw_translation(0.25, [104.4, 50.9, 0.0])],
    )
    return rig, sweep, images, pixels, trajectory


def test_fuse_sweep_deskews_compensates_and_reports_every_camera() -> None:
    rig, sweep, images, pixels, trajectory = synthetic_frame(np.random.default_rng(9))
    fusion = fuse_sweep(sweep, rig, images, trajectory, tolerance_ns=50 * MS)
    assert fusion.deskewed and fusion.motion_compensated
    assert {name: m.within_tolerance for name, m in fusion.matches.items()} == {"front": True, "rear": False, "side": False}
    assert fusion.matches["front"].skew_ns == -20 * MS and fusion.matches["front"].image_index == 1
    assert fusion.notes == (
        "camera rear not fused: nearest image is 80.000 ms after the sweep (tolerance 50.000 ms)",
        "camera side not fused: no image for this camera",
    )
    assert list(fusion.projections) == list(fusion.depth_images) == ["front"]
    ego_SE3_lidar = rig.ego_SE3_lidar("top")
    # Points de-skewed to the sweep time, then moved to the camera's time through the world.
    expected_points = deskew_points(sweep.points, sweep.time_offsets_ns, trajectory, ego_SE3_lidar, sweep.timestamp_ns)
    np.testing.assert_array_equal(fusion.points_lidar, expected_points)
    expected_transform = sensor_SE3_lidar_across_time(trajectory, ego_SE3_lidar, sweep.timestamp_ns, rig.cameras["front"].ego_SE3_camera, sweep.timestamp_ns - 20 * MS)
    assert fusion.camera_SE3_lidar["front"].allclose(expected_transform, atol_rad=0.0, atol_m=0.0)
    projection = fusion.projections["front"]
    reference = project_points(expected_points, rig.cameras["front"].model, expected_transform)
    np.testing.assert_array_equal(projection.status, reference.status)
    painted = fusion.painted
    assert painted.camera_names == ("front",) and painted.painted.sum() == projection.valid.sum() > 50
    rows, cols = pixel_indices(projection.uv_px[painted.painted], 96, 64)
    np.testing.assert_array_equal(painted.rgb[painted.painted], pixels["front"][rows, cols])

    # Without a trajectory: nothing is compensated, and the result says so.
    static = fuse_sweep(sweep, rig, images, None, tolerance_ns=50 * MS, paint=False, depth=False)
    assert not static.deskewed and not static.motion_compensated and static.painted is None and not static.depth_images
    assert static.notes[:2] == (
        "not de-skewed: no ego trajectory given",
        "no ego trajectory: camera transforms ignore the ego motion over skews up to 20.000 ms",
    )
    assert static.camera_SE3_lidar["front"].allclose(rig.camera_SE3_lidar("front", "top"))
    np.testing.assert_array_equal(static.points_lidar, sweep.xyz)

    # No camera in tolerance: every point reported unpainted.
    none = fuse_sweep(sweep, rig, {}, trajectory)
    assert not none.projections and not none.painted.painted.any() and len(none.painted) == sweep.num_points
    with pytest.raises(ConfigError, match=r"images: cameras \['roof'\] are not in the rig"):
        fuse_sweep(sweep, rig, {"roof": images["rear"]}, trajectory)
