"""SE3 and rotation primitives, checked against pyquaternion and by algebraic properties."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
from pyquaternion import Quaternion

import calibration.se3
from calibration.errors import CalibrationError, ShapeError
from calibration.rotation import (
    angle_between,
    nearest_rotation,
    orthonormality_error,
    rotation_about_z,
    rotation_to_wxyz,
    slerp_wxyz,
    wxyz_to_rotation,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)
from calibration.se3 import SE3


def random_wxyz(rng: np.random.Generator, count: int) -> np.ndarray:
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def random_se3(rng: np.random.Generator) -> SE3:
    return SE3.from_wxyz(random_wxyz(rng, 1)[0], rng.uniform(-50.0, 50.0, 3))


def same_rotation_quaternions(q0: np.ndarray, q1: np.ndarray, atol: float) -> None:
    """q and -q are the same rotation: compare up to sign."""
    sign = np.where(np.sum(q0 * q1, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(q0, sign * q1, atol=atol)


def test_module_doctests_pass() -> None:
    result = doctest.testmod(calibration.se3)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- quaternion <-> matrix
def test_wxyz_to_rotation_matches_pyquaternion_and_is_vectorised() -> None:
    rng = np.random.default_rng(0)
    quats = random_wxyz(rng, 300)
    batch = wxyz_to_rotation(quats)
    assert batch.shape == (300, 3, 3)
    for q, rotation in zip(quats, batch):
        np.testing.assert_allclose(rotation, Quaternion(*q).rotation_matrix, atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(batch), 1.0, atol=1e-12)
    assert orthonormality_error(batch).max() < 1e-14


def test_rotation_to_wxyz_matches_pyquaternion_on_every_branch() -> None:
    rng = np.random.default_rng(1)
    quats = list(random_wxyz(rng, 300))
    # Each of Shepperd's four branches (w, x, y or z largest), incl. 180-degree turns (w = 0).
    quats += [np.array(q, dtype=float) for q in ([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1])]
    quats += [np.array([1e-9, 0.6, 0.8, 0.0]), np.array([0.05, 0.05, 0.05, 0.997])]
    quats = np.array([q / np.linalg.norm(q) for q in quats])
    rotations = wxyz_to_rotation(quats)
    recovered = rotation_to_wxyz(rotations)
    assert np.all(recovered[:, 0] >= 0), "quaternions are canonicalised to w >= 0"
    same_rotation_quaternions(recovered, quats, atol=1e-12)
    for rotation, q in zip(rotations, recovered):
        same_rotation_quaternions(Quaternion(matrix=rotation).q, q, atol=1e-12)
    np.testing.assert_allclose(wxyz_to_rotation(recovered), rotations, atol=1e-14)


def test_compose_is_the_quaternion_product() -> None:
    rng = np.random.default_rng(2)
    for q0, q1 in zip(random_wxyz(rng, 100), random_wxyz(rng, 100)):
        composed = SE3.from_wxyz(q0).compose(SE3.from_wxyz(q1))
        same_rotation_quaternions(composed.as_wxyz(), (Quaternion(*q0) * Quaternion(*q1)).q, atol=1e-12)


def test_compose_maps_points_like_pyquaternion_rotate_then_translate() -> None:
    rng = np.random.default_rng(3)
    a_SE3_b, b_SE3_c = random_se3(rng), random_se3(rng)
    point_c = rng.normal(size=3)
    qa, qb = Quaternion(*a_SE3_b.as_wxyz()), Quaternion(*b_SE3_c.as_wxyz())
    expected = qa.rotate(qb.rotate(point_c) + b_SE3_c.translation) + a_SE3_b.translation
    np.testing.assert_allclose(a_SE3_b.compose(b_SE3_c).transform_points(point_c[None])[0], expected, atol=1e-12)


# ---------------------------------------------------------------- wxyz / xyzw
def test_wxyz_and_xyzw_orders_are_explicit() -> None:
    half = np.sqrt(0.5)
    yaw90_wxyz = np.array([half, 0.0, 0.0, half])  # 90 degrees about +z
    yaw90_xyzw = np.array([0.0, 0.0, half, half])
    x_axis = np.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(SE3.from_wxyz(yaw90_wxyz).transform_points(x_axis), [[0.0, 1.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(SE3.from_xyzw(yaw90_xyzw).transform_points(x_axis), [[0.0, 1.0, 0.0]], atol=1e-15)
    # The same four numbers read in the other order are a different rotation (90 deg about x).
    misread = SE3.from_xyzw(yaw90_wxyz)
    assert angle_between(misread.rotation, SE3.from_wxyz(yaw90_wxyz).rotation) > 1.0
    np.testing.assert_allclose(misread.transform_points(np.array([[0.0, 1.0, 0.0]])), [[0.0, 0.0, 1.0]], atol=1e-15)

    rng = np.random.default_rng(4)
    for q in random_wxyz(rng, 50):
        assert SE3.from_wxyz(q).allclose(SE3.from_xyzw(wxyz_to_xyzw(q)), atol_rad=1e-14)
        pose = SE3.from_wxyz(q)
        np.testing.assert_array_equal(pose.as_xyzw(), wxyz_to_xyzw(pose.as_wxyz()))
        np.testing.assert_array_equal(xyzw_to_wxyz(wxyz_to_xyzw(q)), q)
        same_rotation_quaternions(pose.quaternion.q, q, atol=1e-12)
        assert SE3.from_quaternion(Quaternion(*q)).allclose(pose, atol_rad=1e-14)


# ---------------------------------------------------------------- slerp
def exact_slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> Quaternion:
    """Independent reference: q0 * (q0^-1 q1)^t along the shorter arc, by pyquaternion's exp/log."""
    a, b = Quaternion(*q0), Quaternion(*q1)
    if np.dot(q0, q1) < 0:
        b = -b
    return a * (a.inverse * b) ** fraction


def test_slerp_matches_pyquaternion_on_random_pairs() -> None:
    rng = np.random.default_rng(5)
    q0s, q1s = random_wxyz(rng, 400), random_wxyz(rng, 400)
    fractions = rng.uniform(0.0, 1.0, 400)
    ours = slerp_wxyz(q0s, q1s, fractions)
    assert ours.shape == (400, 4)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-15)
    for q0, q1, t, q in zip(q0s, q1s, fractions, ours):
        # pyquaternion switches to normalised lerp above |dot| = 0.9995; random pairs stay below.
        assert abs(np.dot(q0, q1)) < 0.9995
        same_rotation_quaternions(q, Quaternion.slerp(Quaternion(*q0), Quaternion(*q1), t).q, atol=1e-12)
        same_rotation_quaternions(q, exact_slerp(q0, q1, t).q, atol=1e-12)


def test_slerp_nearly_identical_rotations_keeps_constant_angular_rate() -> None:
    rng = np.random.default_rng(6)
    for angle in (1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.02):
        axis = rng.normal(size=3)
        q0 = random_wxyz(rng, 1)[0]
        q1 = (Quaternion(*q0) * Quaternion(axis=axis, angle=angle)).q
        for t in (0.0, 0.25, 0.5, 0.9, 1.0):
            q = slerp_wxyz(q0, q1, t)
            travelled = angle_between(wxyz_to_rotation(q0), wxyz_to_rotation(q))
            np.testing.assert_allclose(travelled, t * angle, rtol=1e-6, atol=1e-15)
            same_rotation_quaternions(q, exact_slerp(q0, q1, t).q, atol=1e-13)
            # pyquaternion uses normalised lerp here: close, not exact.
            same_rotation_quaternions(q, Quaternion.slerp(Quaternion(*q0), Quaternion(*q1), t).q, atol=1e-6)


def test_slerp_nearly_antipodal_quaternions_take_the_short_way() -> None:
    """q1 close to -q0 is a rotation close to q0's: slerp must not swing round through 360 degrees."""
    rng = np.random.default_rng(7)
    for q0 in random_wxyz(rng, 50):
        q1 = -q0 + rng.normal(scale=1e-4, size=4)
        q1 /= np.linalg.norm(q1)
        gap = angle_between(wxyz_to_rotation(q0), wxyz_to_rotation(q1))
        assert gap < 1e-3
        for t in (0.1, 0.5, 0.9):
            q = slerp_wxyz(q0, q1, t)
            travelled = angle_between(wxyz_to_rotation(q0), wxyz_to_rotation(q))
            np.testing.assert_allclose(travelled, t * gap, rtol=1e-6)
            same_rotation_quaternions(q, Quaternion.slerp(Quaternion(*q0), Quaternion(*q1), t).q, atol=1e-6)
            same_rotation_quaternions(q, exact_slerp(q0, q1, t).q, atol=1e-12)


def test_slerp_between_rotations_almost_180_degrees_apart() -> None:
    """Quaternion dot near 0: the arc is long (~180 degrees) and must still match pyquaternion."""
    rng = np.random.default_rng(8)
    for q0 in random_wxyz(rng, 50):
        perpendicular = rng.normal(size=4)
        perpendicular -= np.dot(perpendicular, q0) * q0
        perpendicular /= np.linalg.norm(perpendicular)
        q1 = perpendicular + rng.choice([-1.0, 1.0]) * 1e-6 * q0
        q1 /= np.linalg.norm(q1)
        for t in (0.3, 0.5, 0.8):
            q = slerp_wxyz(q0, q1, t)
            same_rotation_quaternions(q, Quaternion.slerp(Quaternion(*q0), Quaternion(*q1), t).q, atol=1e-10)
            np.testing.assert_allclose(
                angle_between(wxyz_to_rotation(q0), wxyz_to_rotation(q)), t * np.pi, atol=1e-5
            )


def test_slerp_endpoints_and_broadcasting() -> None:
    rng = np.random.default_rng(9)
    q0, q1 = random_wxyz(rng, 2)
    fractions = np.linspace(0.0, 1.0, 11)
    batch = slerp_wxyz(q0, q1, fractions)
    assert batch.shape == (11, 4)
    for t, q in zip(fractions, batch):
        np.testing.assert_allclose(q, slerp_wxyz(q0, q1, t), atol=1e-15)
    same_rotation_quaternions(batch[0], q0, atol=1e-15)
    same_rotation_quaternions(batch[-1], q1, atol=1e-15)


# ---------------------------------------------------------------- orthonormality and input checks
def test_from_rotation_matrix_reorthonormalises_and_reports_the_error() -> None:
    rng = np.random.default_rng(10)
    rotation = wxyz_to_rotation(random_wxyz(rng, 1)[0])
    noisy = rotation + rng.normal(scale=1e-5, size=(3, 3))
    pose = SE3.from_rotation_matrix(noisy, [1.0, 2.0, 3.0])
    assert pose.orthonormality_error == pytest.approx(float(orthonormality_error(noisy)), rel=1e-12)
    assert 1e-6 < pose.orthonormality_error < 1e-3
    assert orthonormality_error(pose.rotation) < 1e-14
    assert np.linalg.det(pose.rotation) == pytest.approx(1.0, abs=1e-14)
    # The nearest rotation is at least as close to the noisy input as the true rotation is.
    assert np.linalg.norm(pose.rotation - noisy) <= np.linalg.norm(rotation - noisy) + 1e-15
    assert angle_between(pose.rotation, rotation) < 1e-4
    # A file's tolerance can be tightened.
    with pytest.raises(CalibrationError, match=r"calib: expected an orthonormal rotation .* <= 1e-06\), got deviation"):
        SE3.from_rotation_matrix(noisy, tol=1e-6, name="calib")


def test_exact_rotations_are_stored_bit_for_bit_and_rebuilding_is_idempotent() -> None:
    # Regression: the constructor used to re-project every rotation by SVD, so
    # SE3(pose.rotation, pose.translation) != pose in the last bits.
    rng = np.random.default_rng(11)
    for _ in range(20):
        pose = random_se3(rng)
        assert SE3(pose.rotation, pose.translation) == pose
        rotation = wxyz_to_rotation(random_wxyz(rng, 1)[0])
        np.testing.assert_array_equal(SE3(rotation, np.zeros(3)).rotation, rotation)
    assert SE3.from_rotation_matrix(np.eye(3)).orthonormality_error == 0.0


def test_long_composition_chains_stay_orthonormal() -> None:
    rng = np.random.default_rng(12)
    steps = [random_se3(rng) for _ in range(50)]
    pose = SE3.identity()
    for i in range(2000):
        pose = pose.compose(steps[i % 50])
    assert orthonormality_error(pose.rotation) < 1e-12


@pytest.mark.parametrize(
    ("rotation", "match"),
    [
        (np.diag([1.0, 1.0, -1.0]), r"rotation: expected a rotation matrix \(det = \+1\), got det = -1 \(a reflection"),
        (np.zeros((3, 3)), r"rotation: expected a rotation matrix \(det = \+1\), got det = 0"),
        (2.0 * np.eye(3), r"rotation: expected an orthonormal rotation \(\|R\^T R - I\|_F <= 0.001\), got deviation 5.2"),
        (np.eye(3) + 0.01, r"expected an orthonormal rotation .*got deviation 0.0"),
    ],
)
def test_far_from_orthonormal_and_reflections_are_rejected(rotation: np.ndarray, match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        SE3.from_rotation_matrix(rotation)


def test_plain_constructor_accepts_only_exact_rotations() -> None:
    with pytest.raises(CalibrationError, match=r"<= 1e-06\), got deviation 0.000"):
        SE3(np.eye(3) + 1e-4, np.zeros(3))
    with pytest.raises(CalibrationError, match=r"det = -1"):
        SE3(-np.eye(3), np.zeros(3))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: SE3(np.eye(4), np.zeros(3)), ShapeError, r"rotation: expected \(3, 3\) float array, got \(4, 4\)"),
        (lambda: SE3(np.eye(3), np.zeros(2)), ShapeError, r"translation: expected \(3,?\) float array, got \(2,\)"),
        (lambda: SE3(np.eye(3), [0.0, np.nan, 0.0]), ShapeError, r"translation: expected finite values, got 1 NaN/inf"),
        (lambda: SE3(np.full((3, 3), np.nan), np.zeros(3)), ShapeError, r"rotation: expected finite values, got 9 NaN"),
        (lambda: SE3.from_matrix(np.eye(3)), ShapeError, r"transform: expected \(4, 4\) or \(3, 4\) float array, got \(3, 3\)"),
        (lambda: SE3.from_matrix([[1.0, 0.0], [0.0]]), ShapeError, r"transform: expected \(4, 4\) or \(3, 4\) float array, got a list"),
        (lambda: SE3.from_matrix(np.diag([1.0, 1.0, 1.0, 2.0])), CalibrationError, r"expected last row \[0, 0, 0, 1\], got \[0.0, 0.0, 0.0, 2.0\]"),
        (lambda: SE3.from_wxyz([1.0, 0.0, 0.0]), ShapeError, r"wxyz: expected \(4,?\) float array, got \(3,\)"),
        (lambda: SE3.from_wxyz([2.0, 0.0, 0.0, 0.0]), CalibrationError, r"wxyz: expected a unit quaternion .*got norm off by 1"),
        (lambda: SE3.from_xyzw([0.0, 0.0, 0.0, 0.0]), CalibrationError, r"xyzw: expected a unit quaternion"),
        (lambda: SE3.identity().transform_points(np.zeros(3)), ShapeError, r"points: expected \(N, 3\) float array, got \(3,\)"),
        (lambda: SE3.identity().transform_points(np.zeros((5, 4))), ShapeError, r"points: expected \(N, 3\) float array, got \(5, 4\)"),
        (lambda: SE3.identity().transform_points(np.array([["a", "b", "c"]])), ShapeError, r"points: expected \(N, 3\) float array, got \(1, 3\) <U1"),
    ],
)
def test_bad_input_messages_name_expected_and_actual(build, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        build()


def test_from_matrix_accepts_4x4_and_3x4() -> None:
    rng = np.random.default_rng(13)
    pose = random_se3(rng)
    assert SE3.from_matrix(pose.as_matrix()) == pose
    assert SE3.from_matrix(pose.as_matrix()[:3]) == pose
    assert SE3.from_matrix(pose.as_matrix().tolist()) == pose


# ---------------------------------------------------------------- algebra
def test_compose_with_inverse_is_identity() -> None:
    rng = np.random.default_rng(14)
    for _ in range(100):
        a_SE3_b = random_se3(rng)
        assert a_SE3_b.compose(a_SE3_b.inverse()).allclose(SE3.identity(), atol_rad=1e-14, atol_m=1e-12)
        assert a_SE3_b.inverse().compose(a_SE3_b).allclose(SE3.identity(), atol_rad=1e-14, atol_m=1e-12)
        assert a_SE3_b.inverse().inverse().allclose(a_SE3_b, atol_rad=1e-14, atol_m=1e-12)
        np.testing.assert_allclose(a_SE3_b.inverse().as_matrix(), np.linalg.inv(a_SE3_b.as_matrix()), atol=1e-12)


def test_compose_is_associative_and_matches_matrix_product() -> None:
    rng = np.random.default_rng(15)
    for _ in range(100):
        a, b, c = random_se3(rng), random_se3(rng), random_se3(rng)
        assert a.compose(b).compose(c).allclose(a.compose(b.compose(c)), atol_rad=1e-13, atol_m=1e-11)
        np.testing.assert_allclose(a.compose(b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-12)
        assert a.compose(SE3.identity()) == a


def test_transform_points_agrees_with_the_homogeneous_matrix() -> None:
    rng = np.random.default_rng(16)
    a_SE3_b = random_se3(rng)
    points_b = rng.normal(scale=30.0, size=(1000, 3))
    homogeneous = np.hstack([points_b, np.ones((1000, 1))])
    expected = (homogeneous @ a_SE3_b.as_matrix().T)[:, :3]
    np.testing.assert_allclose(a_SE3_b.transform_points(points_b), expected, atol=1e-12)
    # Composition then transform == transform twice.
    b_SE3_c = random_se3(rng)
    np.testing.assert_allclose(
        a_SE3_b.compose(b_SE3_c).transform_points(points_b),
        a_SE3_b.transform_points(b_SE3_c.transform_points(points_b)),
        atol=1e-11,
    )
    np.testing.assert_allclose(a_SE3_b.rotate_vectors(points_b), points_b @ a_SE3_b.rotation.T, atol=1e-12)


def test_float32_points_stay_float32_and_others_become_float64() -> None:
    rng = np.random.default_rng(17)
    pose = random_se3(rng)
    points32 = rng.normal(scale=50.0, size=(500, 3)).astype(np.float32)
    out32 = pose.transform_points(points32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, pose.transform_points(points32.astype(np.float64)), atol=1e-4)
    assert pose.rotate_vectors(points32).dtype == np.float32
    assert pose.transform_points(np.ones((2, 3), dtype=np.int32)).dtype == np.float64
    assert pose.transform_points(np.ones((2, 3), dtype=np.float16)).dtype == np.float64
    # NaN points (LiDAR returns with no echo) pass through instead of failing a sweep.
    assert np.isnan(pose.transform_points(np.array([[np.nan, 0.0, 0.0]], dtype=np.float32))).any()


def test_interpolate_is_slerp_plus_lerp() -> None:
    start = SE3.from_yaw_translation(0.0, [0.0, 0.0, 0.0])
    end = SE3.from_yaw_translation(1.0, [10.0, -4.0, 2.0])
    halfway = start.interpolate(end, 0.5)
    assert halfway.yaw_rad == pytest.approx(0.5, abs=1e-14)
    np.testing.assert_allclose(halfway.translation, [5.0, -2.0, 1.0], atol=1e-14)
    assert start.interpolate(end, 0.0).allclose(start, atol_rad=1e-15)
    assert start.interpolate(end, 1.0).allclose(end, atol_rad=1e-15, atol_m=1e-14)
    # Across the +-pi seam the short way is taken.
    a, b = SE3.from_yaw_translation(3.0), SE3.from_yaw_translation(-3.0)
    assert abs(a.interpolate(b, 0.5).yaw_rad) == pytest.approx(np.pi, abs=1e-12)


def test_angle_between_resolves_tiny_and_large_angles() -> None:
    # Regression: arccos of the trace returned 0 below ~1.5e-8 rad, so allclose(atol_rad=1e-9)
    # accepted rotations 1e-8 rad apart.
    for angle in (1e-12, 1e-10, 1e-8, 1e-4, 1.0, 3.0, np.pi - 1e-9):
        assert angle_between(np.eye(3), rotation_about_z(angle)) == pytest.approx(angle, rel=1e-6)
    assert not SE3(rotation_about_z(1e-8), np.zeros(3)).allclose(SE3.identity(), atol_rad=1e-9)
    assert SE3(rotation_about_z(1e-10), np.zeros(3)).allclose(SE3.identity(), atol_rad=1e-9)
    rng = np.random.default_rng(18)
    r0 = wxyz_to_rotation(random_wxyz(rng, 20))
    r1 = wxyz_to_rotation(random_wxyz(rng, 20))
    expected = [(Quaternion(matrix=a).inverse * Quaternion(matrix=b)).angle for a, b in zip(r0, r1)]
    np.testing.assert_allclose(angle_between(r0, r1), np.abs(expected), atol=1e-12)


def test_nearest_rotation_is_vectorised() -> None:
    rng = np.random.default_rng(19)
    rotations = wxyz_to_rotation(random_wxyz(rng, 10))
    noisy = rotations + rng.normal(scale=1e-6, size=rotations.shape)
    projected = nearest_rotation(noisy)
    assert projected.shape == (10, 3, 3)
    assert orthonormality_error(projected).max() < 1e-14
    np.testing.assert_allclose(projected, rotations, atol=1e-5)
    np.testing.assert_allclose(projected[3], nearest_rotation(noisy[3]), atol=1e-15)


def test_yaw_and_known_values() -> None:
    ego_SE3_lidar = SE3.from_yaw_translation(np.pi / 2, [1.0, 0.0, 1.8])
    np.testing.assert_allclose(ego_SE3_lidar.transform_points(np.array([[1.0, 0.0, 0.0]])), [[1.0, 1.0, 1.8]], atol=1e-15)
    assert ego_SE3_lidar.yaw_rad == pytest.approx(np.pi / 2)
    assert SE3.from_yaw_translation(-3.0).yaw_rad == pytest.approx(-3.0)


def test_se3_is_immutable() -> None:
    pose = SE3.identity()
    with pytest.raises(ValueError, match="read-only"):
        pose.rotation[0, 0] = 2.0
    with pytest.raises(ValueError, match="read-only"):
        pose.translation[0] = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        pose.translation = np.ones(3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(pose)
