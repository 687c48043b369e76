"""Rotation primitives: quaternion <-> matrix, slerp, nearest rotation.

Quaternions are always explicit about their component order: functions here take and
return ``wxyz`` (scalar first, as pyquaternion and nuScenes store them). Use
:func:`xyzw_to_wxyz` / :func:`wxyz_to_xyzw` at boundaries with scalar-last conventions
(ROS, scipy, Eigen's coefficient order).

All functions are vectorised over leading dimensions ``(*, ...)``.
"""

from __future__ import annotations

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.errors import CalibrationError

#: Orthonormality deviations up to this are float64 round-off (chains of thousands of
#: compositions stay below it): such matrices are kept bit for bit, not re-projected.
ROUNDOFF_TOL = 1e-12


def orthonormality_error(rotation: NDArrayFloat) -> NDArrayFloat:
    """Frobenius norm of ``R^T R - I``: 0 for an exact rotation.

    Args:
        rotation: ``(*, 3, 3)`` matrices.

    Returns:
        ``(*)`` non-negative deviations.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    gram = np.swapaxes(rotation, -1, -2) @ rotation
    return np.linalg.norm(gram - np.eye(3), axis=(-2, -1))


def nearest_rotation(matrix: NDArrayFloat) -> NDArrayFloat:
    """The rotation closest to ``matrix`` in the Frobenius norm (polar decomposition by SVD).

    Args:
        matrix: ``(*, 3, 3)`` nearly-orthonormal matrices with positive determinant.

    Returns:
        ``(*, 3, 3)`` proper rotations (``det = +1``).
    """
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    det = np.linalg.det(u @ vt)
    # Flip the last singular direction where the product would be a reflection.
    u = u.copy()
    u[..., :, 2] *= np.sign(det)[..., None] if np.ndim(det) else np.sign(det)
    return u @ vt


def wxyz_to_rotation(wxyz: NDArrayFloat) -> NDArrayFloat:
    """Rotation matrices from unit quaternions in ``w, x, y, z`` order.

    Args:
        wxyz: ``(*, 4)`` quaternions; normalised here (callers check the norm first).

    Returns:
        ``(*, 3, 3)`` rotation matrices.
    """
    q = np.asarray(wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3, 3))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - w * z)
    out[..., 0, 2] = 2 * (x * z + w * y)
    out[..., 1, 0] = 2 * (x * y + w * z)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - w * x)
    out[..., 2, 0] = 2 * (x * z - w * y)
    out[..., 2, 1] = 2 * (y * z + w * x)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def rotation_to_wxyz(rotation: NDArrayFloat) -> NDArrayFloat:
    """Unit quaternions (``w, x, y, z``, with ``w >= 0``) from rotation matrices.

    Uses the numerically stable branch choice of Shepperd (1978): the largest of
    ``w^2, x^2, y^2, z^2`` is computed from the trace, the rest from off-diagonal sums.

    Args:
        rotation: ``(*, 3, 3)`` proper rotation matrices.

    Returns:
        ``(*, 4)`` quaternions, canonicalised to ``w >= 0``.
    """
    r = np.asarray(rotation, dtype=np.float64)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2)
    diag = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1
    )
    pick = np.argmax(diag, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(diag, pick[..., None], axis=-1)[..., 0], 1e-300))  # 2|q_pick|
    a = r[..., 2, 1] - r[..., 1, 2]  # 4wx
    b = r[..., 0, 2] - r[..., 2, 0]  # 4wy
    c = r[..., 1, 0] - r[..., 0, 1]  # 4wz
    d = r[..., 0, 1] + r[..., 1, 0]  # 4xy
    e = r[..., 0, 2] + r[..., 2, 0]  # 4xz
    f = r[..., 1, 2] + r[..., 2, 1]  # 4yz
    candidates = np.stack(
        [
            np.stack([s * s, a, b, c], axis=-1),
            np.stack([a, s * s, d, e], axis=-1),
            np.stack([b, d, s * s, f], axis=-1),
            np.stack([c, e, f, s * s], axis=-1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(candidates, pick[..., None, None], axis=-2)[..., 0, :] / (2 * s[..., None])
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def xyzw_to_wxyz(xyzw: NDArrayFloat) -> NDArrayFloat:
    """Reorder scalar-last quaternions ``(*, 4)`` to scalar-first."""
    q = np.asarray(xyzw, dtype=np.float64)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def wxyz_to_xyzw(wxyz: NDArrayFloat) -> NDArrayFloat:
    """Reorder scalar-first quaternions ``(*, 4)`` to scalar-last."""
    q = np.asarray(wxyz, dtype=np.float64)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def check_unit_quaternion(wxyz: NDArrayFloat, name: str, tol: float = 1e-3) -> NDArrayFloat:
    """Return ``wxyz`` normalised, or raise when its norm is off by more than ``tol``.

    Args:
        wxyz: ``(*, 4)`` quaternions in ``w, x, y, z`` order.
        name: used in the error message.
        tol: allowed ``| |q| - 1 |``.

    Raises:
        CalibrationError: a norm outside ``1 +- tol`` (a bare 4-vector that is not a
            rotation, or the wrong component order on a non-unit input).
    """
    q = np.asarray(wxyz, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1)
    bad = np.abs(norm - 1.0) > tol
    if np.any(bad):
        worst = float(np.max(np.abs(norm - 1.0)))
        raise CalibrationError(
            f"{name}: expected a unit quaternion (| |q| - 1 | <= {tol:g}), got norm off by {worst:.3g}"
        )
    return q / norm[..., None]


def slerp_wxyz(q0: NDArrayFloat, q1: NDArrayFloat, fraction: NDArrayFloat | float) -> NDArrayFloat:
    """Spherical linear interpolation along the shorter arc.

    Args:
        q0: ``(*, 4)`` unit quaternions (``wxyz``) at ``fraction = 0``.
        q1: ``(*, 4)`` unit quaternions at ``fraction = 1`` (broadcast against ``q0``).
        fraction: ``(*)`` interpolation parameters, usually in ``[0, 1]``.

    Returns:
        ``(*, 4)`` unit quaternions.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(fraction, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # q and -q are the same rotation: take the short way
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-9
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def rotation_about_z(yaw_rad: NDArrayFloat | float) -> NDArrayFloat:
    """Rotation matrices ``(*, 3, 3)`` for yaw angles about +z (counter-clockwise seen from above)."""
    yaw = np.asarray(yaw_rad, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros(yaw.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def angle_between(r0: NDArrayFloat, r1: NDArrayFloat) -> NDArrayFloat:
    """Angle in radians ``(*)`` of the relative rotation ``r0^T r1`` between ``(*, 3, 3)`` rotations.

    Computed as ``atan2(|axis * sin|, cos)`` rather than ``arccos(cos)``: the arccos form
    cannot resolve angles below about ``1.5e-8`` rad (``cos`` rounds to 1), which made
    tight tolerances in :meth:`SE3.allclose` meaningless.
    """
    rel = np.swapaxes(np.asarray(r0, dtype=np.float64), -1, -2) @ np.asarray(r1, dtype=np.float64)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    # The skew-symmetric part of a rotation by theta is sin(theta) [axis]_x.
    skew = np.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]], axis=-1
    )
    sin = np.linalg.norm(skew, axis=-1) / 2.0
    return np.arctan2(sin, cos)


def require_rotation(matrix: NDArrayFloat, name: str, tol: float) -> tuple[NDArrayFloat, float]:
    """Check that ``matrix`` is within ``tol`` of a proper rotation and return the nearest one.

    Args:
        matrix: ``(3, 3)`` finite matrix.
        name: used in the error message (file field, frame pair, ...).
        tol: largest accepted ``|R^T R - I|_F``.

    Returns:
        ``(rotation, error)``: the re-orthonormalised rotation and the input's deviation.

    Raises:
        CalibrationError: deviation above ``tol``, or a reflection (``det < 0``).
    """
    error = float(orthonormality_error(matrix))
    det = float(np.linalg.det(matrix))
    if det <= 0:
        raise CalibrationError(
            f"{name}: expected a rotation matrix (det = +1), got det = {det:.6g} (a reflection or singular)"
        )
    if error > tol:
        raise CalibrationError(
            f"{name}: expected an orthonormal rotation (|R^T R - I|_F <= {tol:g}), got deviation {error:.3g}"
        )
    # Re-project only above round-off: projecting exact input would change it in the last
    # bits, so rebuilding a transform from its own rotation would not reproduce it.
    return (nearest_rotation(matrix) if error > ROUNDOFF_TOL else np.array(matrix, dtype=np.float64)), error
