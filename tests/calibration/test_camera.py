"""Camera models against OpenCV (cv2.projectPoints, cv2.undistortPoints, cv2.fisheye)."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest

import calibration.camera as camera_module
from calibration.camera import (
    BEHIND_CAMERA,
    NOT_FINITE,
    OUTSIDE_IMAGE,
    OUTSIDE_VALID_REGION,
    VISIBLE,
    CameraModel,
    Projection,
    ProjectionStatus,
)
from calibration.errors import CalibrationError, ShapeError

cv2 = pytest.importorskip("cv2")

TIGHT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
ZERO3 = np.zeros(3)

# The PJLab LiDAR-camera sample (../shared/data/pjlab_lidar_camera/calib.txt): 4 coefficients.
PJLAB = CameraModel.from_K(
    [[2152.8, 0.0, 971.3], [0.0, 2155.5, 605.9], [0.0, 0.0, 1.0]],
    1920,
    1200,
    "radtan",
    (-0.1192, 0.162, 0.00073985, 0.0014),
)
# A ~120 degree wide-angle lens: strong barrel k1, negative k3 (so it folds at ~64 degrees).
WIDE = CameraModel(1920, 1080, 1000.0, 1000.0, 959.5, 539.5, "radtan", (-0.3, 0.09, 0.0006, -0.0004, -0.01))
# OpenCV's rational model (CALIB_RATIONAL_MODEL), coefficients of the size real calibrations give.
RATIONAL = CameraModel(
    1280, 800, 620.0, 621.0, 640.3, 401.2, "radtan", (2.01, 0.87, 0.0004, -0.0002, 0.024, 2.38, 1.49, 0.13)
)
FISHEYE = CameraModel(1280, 960, 380.0, 381.0, 639.5, 479.5, "fisheye", (-0.0139, 0.0412, -0.0326, 0.0082))
# A fisheye whose theta_d turns over before 90 degrees (strongly negative k1).
FOLDING_FISHEYE = CameraModel(1280, 960, 380.0, 381.0, 639.5, 479.5, "fisheye", (-0.1, -0.02, 0.01, -0.005))
PINHOLE = CameraModel(640, 480, 500.0, 510.0, 319.5, 239.5)

RADTAN_CAMERAS = {"radtan4_pjlab": PJLAB, "radtan5_wide": WIDE, "radtan8_rational": RATIONAL}


def points_in_cone(rng: np.random.Generator, count: int, max_radius: float) -> np.ndarray:
    """``(count, 3)`` camera-frame points with ``sqrt(x^2 + y^2) < max_radius``, z in [0.5, 60] m."""
    radius = max_radius * np.sqrt(rng.uniform(0.0, 1.0, count))
    azimuth = rng.uniform(0.0, 2.0 * np.pi, count)
    depth_m = rng.uniform(0.5, 60.0, count)
    return np.stack([radius * np.cos(azimuth) * depth_m, radius * np.sin(azimuth) * depth_m, depth_m], axis=1)


def sample_radius(camera: CameraModel) -> float:
    """Sampling radius: well inside the valid region, at most ~65 degrees off-axis."""
    return min(0.9 * camera.max_valid_radius, 2.2)


def points_around_image(rng: np.random.Generator, count: int, camera: CameraModel) -> np.ndarray:
    """Half the points near the image (up to 1.2x its half-diagonal), half out to :func:`sample_radius`."""
    half_diagonal = np.hypot(camera.width_px / (2 * camera.fx_px), camera.height_px / (2 * camera.fy_px))
    near = points_in_cone(rng, count // 2, min(1.2 * half_diagonal, sample_radius(camera)))
    return np.concatenate([near, points_in_cone(rng, count - count // 2, sample_radius(camera))])


def cv2_project(camera: CameraModel, points_camera: np.ndarray) -> np.ndarray:
    coeffs = np.array(camera.distortion)
    if camera.distortion_model == "fisheye":
        uv, _ = cv2.fisheye.projectPoints(points_camera.reshape(-1, 1, 3), ZERO3, ZERO3, camera.K, coeffs)
    else:
        uv, _ = cv2.projectPoints(points_camera, ZERO3, ZERO3, camera.K, coeffs if len(coeffs) else None)
    return uv.reshape(-1, 2)


# ---------------------------------------------------------------------- agreement with OpenCV
def test_pinhole_is_K_times_x_over_z() -> None:
    rng = np.random.default_rng(0)
    points_camera = points_in_cone(rng, 500, 1.0)
    projection = PINHOLE.project(points_camera)
    expected = (points_camera / points_camera[:, 2:]) @ PINHOLE.K.T
    np.testing.assert_allclose(projection.uv_px, expected[:, :2], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(projection.depth_m, points_camera[:, 2])
    assert PINHOLE.max_valid_radius == np.inf


@pytest.mark.parametrize("name", sorted(RADTAN_CAMERAS))
def test_radtan_project_matches_cv2(name: str) -> None:
    camera = RADTAN_CAMERAS[name]
    rng = np.random.default_rng(1)
    points_camera = points_around_image(rng, 3000, camera)
    projection = camera.project(points_camera)
    assert set(np.unique(projection.status)) <= {VISIBLE, OUTSIDE_IMAGE}
    assert projection.valid.sum() > 500  # the comparison covers the image, not only its outside
    np.testing.assert_allclose(projection.uv_px, cv2_project(camera, points_camera), rtol=0, atol=1e-6)


def test_fisheye_project_matches_cv2_fisheye() -> None:
    rng = np.random.default_rng(2)
    points_camera = points_in_cone(rng, 3000, np.tan(np.radians(85.0)))
    projection = FISHEYE.project(points_camera)
    assert set(np.unique(projection.status)) <= {VISIBLE, OUTSIDE_IMAGE}
    np.testing.assert_allclose(projection.uv_px, cv2_project(FISHEYE, points_camera), rtol=0, atol=1e-6)
    # On the optical axis theta_d / r is 0 / 0: both use the limit 1.
    on_axis = FISHEYE.project(np.array([[0.0, 0.0, 3.0]]))
    np.testing.assert_allclose(on_axis.uv_px, [[FISHEYE.cx_px, FISHEYE.cy_px]], atol=0)


@pytest.mark.parametrize("name", sorted(RADTAN_CAMERAS))
def test_radtan_undistort_matches_cv2_undistortPoints(name: str) -> None:
    camera = RADTAN_CAMERAS[name]
    rng = np.random.default_rng(3)
    uv_px = rng.uniform([-0.5, -0.5], [camera.width_px - 0.5, camera.height_px - 0.5], (2000, 2))
    ours = camera.undistort(uv_px, strict=True)
    theirs = cv2.undistortPoints(
        uv_px.reshape(-1, 1, 2), camera.K, np.array(camera.distortion), P=camera.K, criteria=TIGHT_CRITERIA
    ).reshape(-1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_fisheye_undistort_matches_cv2_fisheye_undistortPoints() -> None:
    rng = np.random.default_rng(4)
    # OpenCV clamps theta_d to pi/2, so stay below it.
    theta_d = np.radians(85.0) * np.sqrt(rng.uniform(0.0, 1.0, 2000))
    azimuth = rng.uniform(0.0, 2.0 * np.pi, 2000)
    uv_px = np.stack(
        [
            FISHEYE.cx_px + FISHEYE.fx_px * theta_d * np.cos(azimuth),
            FISHEYE.cy_px + FISHEYE.fy_px * theta_d * np.sin(azimuth),
        ],
        axis=1,
    )
    ours = FISHEYE.undistort(uv_px, strict=True)
    theirs = cv2.fisheye.undistortPoints(
        uv_px.reshape(-1, 1, 2), FISHEYE.K, np.array(FISHEYE.distortion), P=FISHEYE.K, criteria=TIGHT_CRITERIA
    ).reshape(-1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------------- the valid region
def test_cv2_folds_a_point_beyond_the_valid_region_into_the_image_we_flag_it() -> None:
    # 69 degrees off-axis towards the lower right (r = 2.65 > max_valid_radius = 2.04).
    point_camera = np.array([[2.65 * 0.8, 2.65 * 0.6, 1.0]]) * 20.0
    uv_cv2 = cv2_project(WIDE, point_camera)[0]
    # OpenCV puts it inside the image, on the upper-left side of the principal point.
    assert -0.5 <= uv_cv2[0] < WIDE.width_px - 0.5 and -0.5 <= uv_cv2[1] < WIDE.height_px - 0.5
    assert uv_cv2[0] < WIDE.cx_px and uv_cv2[1] < WIDE.cy_px
    projection = WIDE.project(point_camera)
    assert projection.status[0] == OUTSIDE_VALID_REGION
    assert np.isnan(projection.uv_px).all()
    # That pixel also belongs to a genuine ray inside the valid region, which is the one we keep.
    ray = WIDE.unproject(uv_cv2[None], np.array([1.0]), strict=True)
    assert np.hypot(ray[0, 0], ray[0, 1]) < WIDE.max_valid_radius
    assert WIDE.project(ray).status[0] == VISIBLE
    np.testing.assert_allclose(WIDE.project(ray).uv_px[0], uv_cv2, atol=1e-6)


def test_radial_distortion_turns_over_exactly_at_max_valid_radius() -> None:
    camera = CameraModel(1000, 1000, 500.0, 500.0, 499.5, 499.5, "radtan", (-0.3, 0.09, 0.0, 0.0, -0.01))
    r_max = camera.max_valid_radius

    def distorted_radius(r: float) -> float:
        return float(np.hypot(*camera.distort_normalized(np.array([[r, 0.0]]))[0]))

    h = 1e-5
    assert distorted_radius(r_max * (1 - 1e-3)) < distorted_radius(r_max * (1 - 1e-3) + h)  # rising inside
    assert distorted_radius(r_max * (1 + 1e-3)) > distorted_radius(r_max * (1 + 1e-3) + h)  # falling outside
    # Closed form: d/dr [r (1 + k1 r^2 + k2 r^4 + k3 r^6)] = 1 + 3 k1 s + 5 k2 s^2 + 7 k3 s^3 = 0.
    s = r_max**2
    assert abs(1 - 0.9 * s + 0.45 * s**2 - 0.07 * s**3) < 1e-9


def test_fisheye_valid_angle_is_first_turning_point_of_theta_d() -> None:
    theta_max = FOLDING_FISHEYE.max_valid_angle_rad
    k1, k2, k3, k4 = FOLDING_FISHEYE.distortion
    t2 = theta_max**2
    assert 0 < theta_max < np.pi / 2
    assert abs(1 + 3 * k1 * t2 + 5 * k2 * t2**2 + 7 * k3 * t2**3 + 9 * k4 * t2**4) < 1e-9
    np.testing.assert_allclose(FOLDING_FISHEYE.max_valid_radius, np.tan(theta_max), rtol=1e-12)
    beyond = np.array([[np.tan(theta_max + 0.01), 0.0, 1.0], [np.tan(theta_max - 0.01), 0.0, 1.0]])
    np.testing.assert_array_equal(FOLDING_FISHEYE.project(beyond).status[:1], [OUTSIDE_VALID_REGION])
    assert FOLDING_FISHEYE.project(beyond).status[1] in (VISIBLE, OUTSIDE_IMAGE)
    # A monotonic fisheye keeps every point in front of the camera.
    assert FISHEYE.max_valid_angle_rad == pytest.approx(np.pi / 2) and FISHEYE.max_valid_radius == np.inf


def test_radtan_jacobian_symmetric_part_is_positive_definite_inside_the_region() -> None:
    """The injectivity guarantee, checked by finite differences on a dense sample of the disc."""
    camera = CameraModel(1000, 1000, 500.0, 500.0, 499.5, 499.5, "radtan", (-0.3, 0.09, 0.02, -0.015, -0.01))
    rng = np.random.default_rng(5)
    radius = camera.max_valid_radius * np.sqrt(rng.uniform(0.0, 1.0, 20000)) * (1 - 1e-6)
    azimuth = rng.uniform(0.0, 2.0 * np.pi, 20000)
    xy = np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth)], axis=1)
    h = 1e-7
    d_dx = (camera.distort_normalized(xy + [h, 0]) - camera.distort_normalized(xy - [h, 0])) / (2 * h)
    d_dy = (camera.distort_normalized(xy + [0, h]) - camera.distort_normalized(xy - [0, h])) / (2 * h)
    a, b, d = d_dx[:, 0], 0.5 * (d_dy[:, 0] + d_dx[:, 1]), d_dy[:, 1]
    smallest_eigenvalue = 0.5 * (a + d) - np.sqrt(0.25 * (a - d) ** 2 + b**2)
    assert smallest_eigenvalue.min() > -1e-6
    # With tangential terms the bound is conservative but not by much: within 10% of the radial turn.
    radial_only = CameraModel(1000, 1000, 500.0, 500.0, 499.5, 499.5, "radtan", (-0.3, 0.09, 0.0, 0.0, -0.01))
    assert 0.9 * radial_only.max_valid_radius < camera.max_valid_radius < radial_only.max_valid_radius


def test_well_behaved_lenses_have_an_unbounded_valid_region() -> None:
    assert PJLAB.max_valid_radius == np.inf
    assert PJLAB.max_valid_angle_rad == pytest.approx(np.pi / 2)
    assert 1.0 < RATIONAL.max_valid_radius < np.inf


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "camera",
    [PINHOLE, PJLAB, WIDE, RATIONAL, FISHEYE, FOLDING_FISHEYE],
    ids=["pinhole", "radtan4", "radtan5", "radtan8", "fisheye", "fisheye_folding"],
)
def test_project_then_unproject_reproduces_points(camera: CameraModel) -> None:
    rng = np.random.default_rng(6)
    points_camera = points_in_cone(rng, 2000, min(0.95 * camera.max_valid_radius, 3.0))
    projection = camera.project(points_camera)
    assert not np.isnan(projection.uv_px).any()
    points_again = camera.unproject(projection.uv_px, projection.depth_m, strict=True)
    error = np.linalg.norm(points_again - points_camera, axis=1) / np.linalg.norm(points_camera, axis=1)
    assert error.max() < 1e-9


def test_undistort_normalized_inverts_distort_normalized() -> None:
    rng = np.random.default_rng(7)
    for camera in (PJLAB, WIDE, RATIONAL, FISHEYE):
        xy = points_in_cone(rng, 1000, sample_radius(camera))[:, :2] / 10.0
        xy = xy[np.hypot(xy[:, 0], xy[:, 1]) < 0.95 * camera.max_valid_radius]
        xy_again = camera.undistort_normalized(camera.distort_normalized(xy), strict=True)
        np.testing.assert_allclose(xy_again, xy, rtol=1e-10, atol=1e-12)


def test_undistort_reports_pixels_without_a_solution_in_the_valid_region() -> None:
    # Distorted radius 1.5 is beyond the largest the wide lens reaches inside its region (~0.93).
    xy_distorted = np.array([[0.1, 0.2], [1.5, 0.0], [np.nan, 0.0]])
    xy = WIDE.undistort_normalized(xy_distorted)
    assert np.isfinite(xy[0]).all()
    assert np.isnan(xy[1:]).all()
    with pytest.raises(CalibrationError, match=r"1 of 3 finite points.*first at index 1: normalized \[1\.5, 0\.0\]"):
        WIDE.undistort_normalized(xy_distorted, strict=True)
    points = WIDE.unproject(WIDE.cx_px + WIDE.fx_px * xy_distorted, np.array([2.0, 2.0, 2.0]))
    assert np.isfinite(points[0]).all() and np.isnan(points[1:]).all()


def test_undistort_gives_pixels_of_the_pinhole_camera_with_the_same_K() -> None:
    rng = np.random.default_rng(8)
    points_camera = points_in_cone(rng, 500, 0.4)
    pinhole_twin = dataclasses.replace(PJLAB, distortion_model="pinhole", distortion=())
    expected = pinhole_twin.project(points_camera).uv_px
    np.testing.assert_allclose(PJLAB.undistort(PJLAB.project(points_camera).uv_px), expected, atol=1e-8)
    np.testing.assert_array_equal(PINHOLE.undistort(expected[:3]), expected[:3])


# ---------------------------------------------------------------------- statuses
def test_status_codes_at_image_edges_and_behind_the_camera() -> None:
    # fx = fy = 1, so u = X / Z + cx exactly: the image covers -0.5 <= u < 3.5, -0.5 <= v < 2.5.
    camera = CameraModel(4, 3, 1.0, 1.0, 1.5, 1.0)
    just_below = np.nextafter(3.5, 0.0) - 1.5  # exact: u = 3.5 - 4.4e-16
    points_camera = np.array(
        [
            [-2.0, 0.0, 1.0],  # u = -0.5: first column's left edge, inside
            [np.nextafter(-2.0, -3.0), 0.0, 1.0],  # just left of it
            [just_below, 0.0, 1.0],  # u just below width - 0.5
            [2.0, 0.0, 1.0],  # u = width - 0.5: outside
            [0.0, -1.5, 1.0],  # v = -0.5: inside
            [0.0, 1.5, 1.0],  # v = height - 0.5: outside
            [0.0, 0.0, 0.0],  # on the camera plane
            [0.0, 0.0, -2.0],  # behind
            [0.0, 0.0, camera_module.MIN_DEPTH_M],  # at the near limit: behind
            [0.0, 0.0, 2.0 * camera_module.MIN_DEPTH_M],  # just past it: visible
        ]
    )
    projection = camera.project(points_camera)
    np.testing.assert_array_equal(
        projection.status,
        [VISIBLE, OUTSIDE_IMAGE, VISIBLE, OUTSIDE_IMAGE, VISIBLE, OUTSIDE_IMAGE]
        + [BEHIND_CAMERA, BEHIND_CAMERA, BEHIND_CAMERA, VISIBLE],
    )
    np.testing.assert_array_equal(projection.valid, projection.status == VISIBLE)
    assert np.isnan(projection.uv_px[6:9]).all()
    np.testing.assert_array_equal(projection.uv_px[3], [3.5, 1.0])  # outside the image: still the real pixel
    np.testing.assert_array_equal(projection.depth_m, points_camera[:, 2])
    # A configurable near limit.
    assert camera.project(points_camera[9:], min_depth_m=0.5).status[0] == BEHIND_CAMERA


def test_status_precedence_and_non_finite_points() -> None:
    points_camera = np.array(
        [
            [np.nan, 0.0, 5.0],
            [0.0, np.inf, 5.0],
            [1e3, 0.0, -1.0],  # behind and far off-axis: behind wins
            [3.0, 0.0, 1.0],  # beyond the valid region and outside the image: valid region wins
            [1.9, 0.1, 1.0],  # inside the region, outside the image
            [0.2, 0.1, 1.0],
            [0.0, 0.0, np.nan],
            [np.nan, 0.0, -1.0],  # not finite and behind: not finite wins
        ]
    )
    projection = WIDE.project(points_camera)
    np.testing.assert_array_equal(
        projection.status,
        [NOT_FINITE, NOT_FINITE, BEHIND_CAMERA, OUTSIDE_VALID_REGION, OUTSIDE_IMAGE, VISIBLE, NOT_FINITE, NOT_FINITE],
    )
    assert np.isnan(projection.uv_px[:4]).all() and np.isnan(projection.uv_px[6:]).all()
    assert np.isfinite(projection.uv_px[4:6]).all()


def test_status_enum_matches_module_constants_and_projection_is_read_only() -> None:
    assert [VISIBLE, BEHIND_CAMERA, OUTSIDE_IMAGE, OUTSIDE_VALID_REGION, NOT_FINITE] == [0, 1, 2, 3, 4]
    assert [int(s) for s in ProjectionStatus] == [0, 1, 2, 3, 4]
    assert ProjectionStatus.OUTSIDE_VALID_REGION == OUTSIDE_VALID_REGION
    projection = PJLAB.project(np.array([[0.0, 0.0, 1.0]]))
    assert isinstance(projection, Projection) and len(projection) == 1
    assert projection.uv_px.dtype == np.float64 and projection.depth_m.dtype == np.float64
    assert projection.status.dtype == np.uint8
    with pytest.raises(ValueError, match="read-only"):
        projection.uv_px[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        projection.status = projection.status  # type: ignore[misc]


def test_float32_points_are_projected_in_float64() -> None:
    rng = np.random.default_rng(9)
    points32 = points_in_cone(rng, 1000, 0.5).astype(np.float32)
    ours = WIDE.project(points32)
    reference = WIDE.project(points32.astype(np.float64))
    np.testing.assert_array_equal(ours.uv_px, reference.uv_px)
    np.testing.assert_array_equal(ours.status, reference.status)


def test_blocks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(10)
    points_camera = points_in_cone(rng, 1001, 2.5)
    points_camera[::7, 2] *= -1.0
    whole = WIDE.project(points_camera)
    monkeypatch.setattr(camera_module, "_BLOCK_POINTS", 64)
    blocked = WIDE.project(points_camera)
    np.testing.assert_array_equal(blocked.uv_px, whole.uv_px)
    np.testing.assert_array_equal(blocked.status, whole.status)
    assert len(WIDE.project(np.empty((0, 3)))) == 0


def test_unchanged_record_semantics() -> None:
    same = CameraModel.from_K(PJLAB.K, 1920, 1200, "radtan", np.array(PJLAB.distortion))
    assert same == PJLAB and hash(same) == hash(PJLAB)
    assert "max_valid" not in repr(PJLAB)
    # The derived limit is not a field: serialisers that walk the fields round-trip.
    assert [f.name for f in dataclasses.fields(CameraModel)] == [
        "width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px", "distortion_model", "distortion"
    ]
    assert CameraModel(**dataclasses.asdict(WIDE)) == WIDE
    narrower = dataclasses.replace(WIDE, distortion=(-0.34, 0.12, 0.0006, -0.0004, -0.02))
    assert narrower.max_valid_radius < WIDE.max_valid_radius
    with pytest.raises(dataclasses.FrozenInstanceError):
        WIDE.fx_px = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------------- bad input
def test_bad_point_shapes_name_the_argument_and_the_shapes() -> None:
    with pytest.raises(ShapeError, match=r"points_camera: expected \(N, 3\) float array, got \(5,\)"):
        PJLAB.project(np.zeros(5))
    with pytest.raises(ShapeError, match=r"points_camera: expected \(N, 3\) float array, got \(4, 2\)"):
        PJLAB.project(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"points_camera: expected \(N, 3\) float array, got .*str"):
        PJLAB.project("points")
    with pytest.raises(ShapeError, match=r"uv_px: expected \(N, 2\) float array, got \(3, 3\)"):
        PJLAB.unproject(np.zeros((3, 3)), np.ones(3))
    with pytest.raises(ShapeError, match=r"depth_m: expected \(3,\) to match uv_px float array, got \(2,\)"):
        PJLAB.unproject(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ShapeError, match=r"xy_distorted: expected \(N, 2\) float array, got \(2, 3\)"):
        PJLAB.undistort_normalized(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"xy_undistorted: expected \(N, 2\)"):
        PJLAB.distort_normalized(np.zeros(2))
    with pytest.raises(CalibrationError, match=r"min_depth_m: expected a finite value >= 0, got -1\.0"):
        PJLAB.project(np.zeros((1, 3)), min_depth_m=-1.0)


def test_bad_intrinsics_are_rejected_with_what_came() -> None:
    with pytest.raises(CalibrationError, match=r"radtan model takes 4 or 5 or 8 coefficients, got 6"):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, "radtan", (0.1,) * 6)
    with pytest.raises(CalibrationError, match=r"fisheye model takes 4 coefficients, got 5"):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, "fisheye", (0.1,) * 5)
    with pytest.raises(CalibrationError, match=r"pinhole model takes 0 coefficients, got 4"):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, "pinhole", (0.1,) * 4)
    with pytest.raises(CalibrationError, match=r"expected fx_px, fy_px > 0, got 0\.0, 500\.0"):
        CameraModel(640, 480, 0.0, 500.0, 320.0, 240.0)
    with pytest.raises(CalibrationError, match=r"expected fx_px, fy_px > 0, got 500\.0, -1\.0"):
        CameraModel.from_K([[500.0, 0, 320.0], [0, -1.0, 240.0], [0, 0, 1]], 640, 480)
    with pytest.raises(CalibrationError, match=r"distortion_model: expected one of .*got 'kb8'"):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, "kb8", (0.1,) * 4)  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match=r"expected finite coefficients"):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, "radtan", (np.nan, 0.0, 0.0, 0.0))
    with pytest.raises(CalibrationError, match=r"width_px: expected a positive integer, got 0"):
        CameraModel(0, 480, 500.0, 500.0, 320.0, 240.0)


def test_class_docstring_example_runs() -> None:
    result = doctest.testmod(camera_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0
