"""Rigid transforms in 3D, named ``dst_SE3_src``.

An ``a_SE3_b`` maps coordinates of a point expressed in frame ``b`` to frame ``a``:
``points_a = a_SE3_b.transform_points(points_b)``. Composition cancels the inner frame
names: ``a_SE3_c = a_SE3_b.compose(b_SE3_c)``.

>>> import numpy as np
>>> from calibration import SE3
>>> ego_SE3_lidar = SE3.from_yaw_translation(np.pi / 2, [1.0, 0.0, 1.8])
>>> ego_SE3_lidar.transform_points(np.array([[1.0, 0.0, 0.0]]))
array([[1. , 1. , 1.8]])
>>> lidar_SE3_ego = ego_SE3_lidar.inverse()
>>> bool(ego_SE3_lidar.compose(lidar_SE3_ego).allclose(SE3.identity()))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.checks import check_array, check_matrix, check_points, check_vector
from calibration.errors import CalibrationError, ShapeError
from calibration.rotation import (
    angle_between,
    check_unit_quaternion,
    rotation_about_z,
    rotation_to_wxyz,
    require_rotation,
    slerp_wxyz,
    wxyz_to_rotation,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyquaternion import Quaternion

#: Largest ``|R^T R - I|_F`` the plain constructor accepts (float64 round-off after chains
#: of compositions stays far below this).
EXACT_TOL = 1e-6
#: Default tolerance for the lenient constructors that re-orthonormalise (file readers):
#: KITTI-style files printed with 7 significant digits are about 1e-7 off.
DEFAULT_REORTHONORMALIZE_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class SE3:
    """A rigid transform ``dst_SE3_src``: ``x_dst = rotation @ x_src + translation``.

    Attributes:
        rotation: ``(3, 3)`` float64 proper rotation matrix (read-only).
        translation: ``(3,)`` float64 translation in metres (read-only).
        orthonormality_error: ``|R^T R - I|_F`` of the matrix this transform was built
            from before re-orthonormalisation (0 for exact input); see
            :meth:`from_rotation_matrix`. Not part of equality.

    Raises:
        ShapeError: wrong shapes or non-finite values.
        CalibrationError: ``rotation`` not orthonormal within :data:`EXACT_TOL`; use
            :meth:`from_rotation_matrix` with a tolerance for nearly-orthonormal input.
    """

    rotation: NDArrayFloat
    translation: NDArrayFloat
    orthonormality_error: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        rotation = check_matrix(self.rotation, "rotation", 3, 3)
        translation = check_vector(self.translation, "translation", 3)
        rotation, _ = require_rotation(rotation, "rotation", EXACT_TOL)
        rotation.setflags(write=False)
        translation = np.array(translation, dtype=np.float64)
        translation.setflags(write=False)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def identity(cls) -> SE3:
        """The identity transform."""
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_rotation_matrix(
        cls,
        rotation: NDArrayFloat,
        translation: Sequence[float] | NDArrayFloat = (0.0, 0.0, 0.0),
        *,
        tol: float = DEFAULT_REORTHONORMALIZE_TOL,
        name: str = "rotation",
    ) -> SE3:
        """Build from a possibly slightly non-orthonormal rotation matrix.

        The input is projected onto the nearest rotation (SVD); how far off it was is kept
        in :attr:`orthonormality_error` so readers can report it.

        Args:
            rotation: ``(3, 3)`` matrix.
            translation: ``(3,)`` metres.
            tol: largest accepted ``|R^T R - I|_F``.
            name: names the value in error messages (e.g. ``"calib.txt: Tr_velo_to_cam"``).

        Raises:
            CalibrationError: deviation above ``tol`` or a reflection.

        >>> SE3.from_rotation_matrix(np.diag([1.0, 1.0, 1.0001])).orthonormality_error < 1e-3
        True
        """
        matrix = check_matrix(rotation, name, 3, 3)
        rot, error = require_rotation(matrix, name, tol)
        return cls(rot, check_vector(translation, f"{name} translation", 3), orthonormality_error=error)

    @classmethod
    def from_matrix(cls, matrix: NDArrayFloat, *, tol: float = DEFAULT_REORTHONORMALIZE_TOL, name: str = "transform") -> SE3:
        """Build from a ``(4, 4)`` homogeneous matrix or its top ``(3, 4)`` rows.

        Args:
            matrix: ``(4, 4)`` with last row ``[0, 0, 0, 1]``, or ``(3, 4)``.
            tol: see :meth:`from_rotation_matrix`.
            name: names the value in error messages.

        Raises:
            ShapeError: another shape, or non-finite values.
            CalibrationError: a last row other than ``[0, 0, 0, 1]`` or a bad rotation.
        """
        try:
            arr = np.asarray(matrix, dtype=np.float64) if not isinstance(matrix, np.ndarray) else matrix
        except (TypeError, ValueError) as exc:  # ragged or non-numeric nested lists
            raise ShapeError(
                f"{name}: expected (4, 4) or (3, 4) float array, got a {type(matrix).__name__} that is not a numeric array"
            ) from exc
        if getattr(arr, "shape", None) == (3, 4):
            arr = check_matrix(arr, name, 3, 4)
        else:
            arr = check_array(arr, name, (4, 4), shape_text="(4, 4) or (3, 4)")
            if not np.allclose(arr[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
                raise CalibrationError(f"{name}: expected last row [0, 0, 0, 1], got {arr[3].tolist()}")
        return cls.from_rotation_matrix(arr[:3, :3], arr[:3, 3], tol=tol, name=name)

    @classmethod
    def from_quaternion(
        cls, quaternion: Quaternion, translation: Sequence[float] | NDArrayFloat = (0.0, 0.0, 0.0), *, tol: float = 1e-3
    ) -> SE3:
        """Build from a :class:`pyquaternion.Quaternion` (normalised if within ``tol`` of unit norm)."""
        q = np.array([quaternion.w, quaternion.x, quaternion.y, quaternion.z], dtype=np.float64)
        return cls.from_wxyz(q, translation, tol=tol)

    @classmethod
    def from_wxyz(
        cls, wxyz: Sequence[float] | NDArrayFloat, translation: Sequence[float] | NDArrayFloat = (0.0, 0.0, 0.0), *, tol: float = 1e-3
    ) -> SE3:
        """Build from a scalar-first quaternion ``[w, x, y, z]`` (nuScenes, pyquaternion).

        Raises:
            CalibrationError: quaternion norm off by more than ``tol``.
        """
        q = check_unit_quaternion(check_vector(wxyz, "wxyz", 4), "wxyz", tol)
        return cls(wxyz_to_rotation(q), check_vector(translation, "translation", 3))

    @classmethod
    def from_xyzw(
        cls, xyzw: Sequence[float] | NDArrayFloat, translation: Sequence[float] | NDArrayFloat = (0.0, 0.0, 0.0), *, tol: float = 1e-3
    ) -> SE3:
        """Build from a scalar-last quaternion ``[x, y, z, w]`` (ROS, scipy)."""
        q = check_unit_quaternion(check_vector(xyzw, "xyzw", 4), "xyzw", tol)
        return cls(wxyz_to_rotation(xyzw_to_wxyz(q)), check_vector(translation, "translation", 3))

    @classmethod
    def from_yaw_translation(cls, yaw_rad: float, translation: Sequence[float] | NDArrayFloat = (0.0, 0.0, 0.0)) -> SE3:
        """A rotation by ``yaw_rad`` about +z followed by ``translation`` (metres)."""
        return cls(rotation_about_z(float(yaw_rad)), check_vector(translation, "translation", 3))

    # ------------------------------------------------------------------ conversions
    def as_matrix(self) -> NDArrayFloat:
        """The ``(4, 4)`` homogeneous matrix."""
        out = np.eye(4)
        out[:3, :3] = self.rotation
        out[:3, 3] = self.translation
        return out

    def as_wxyz(self) -> NDArrayFloat:
        """The rotation as a scalar-first unit quaternion ``(4,)`` with ``w >= 0``."""
        return rotation_to_wxyz(self.rotation)

    def as_xyzw(self) -> NDArrayFloat:
        """The rotation as a scalar-last unit quaternion ``(4,)`` with ``w >= 0``."""
        return wxyz_to_xyzw(rotation_to_wxyz(self.rotation))

    @property
    def quaternion(self) -> Quaternion:
        """The rotation as a :class:`pyquaternion.Quaternion` (``w >= 0``)."""
        from pyquaternion import Quaternion

        return Quaternion(*self.as_wxyz())

    @property
    def yaw_rad(self) -> float:
        """Heading of the rotated +x axis about +z, in ``(-pi, pi]`` (ignores roll/pitch)."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    # ------------------------------------------------------------------ algebra
    def compose(self, right: SE3) -> SE3:
        """``a_SE3_c = a_SE3_b.compose(b_SE3_c)``."""
        return SE3(self.rotation @ right.rotation, self.rotation @ right.translation + self.translation)

    def inverse(self) -> SE3:
        """``b_SE3_a`` from ``a_SE3_b``."""
        rot_t = self.rotation.T
        return SE3(rot_t, -(rot_t @ self.translation))

    def transform_points(self, points: NDArrayFloat) -> NDArrayFloat:
        """Map ``(N, 3)`` points from the source frame to the destination frame.

        float32 input stays float32 (LiDAR sweeps); anything else is computed in float64.
        """
        pts = check_points(points, "points", 3, finite=False)
        dtype = pts.dtype if pts.dtype == np.float32 else np.float64
        rot = self.rotation.astype(dtype, copy=False)
        return pts.astype(dtype, copy=False) @ rot.T + self.translation.astype(dtype, copy=False)

    def rotate_vectors(self, vectors: NDArrayFloat) -> NDArrayFloat:
        """Rotate ``(N, 3)`` direction vectors (no translation)."""
        vec = check_points(vectors, "vectors", 3, finite=False)
        dtype = vec.dtype if vec.dtype == np.float32 else np.float64
        return vec.astype(dtype, copy=False) @ self.rotation.astype(dtype, copy=False).T

    def interpolate(self, other: SE3, fraction: float) -> SE3:
        """Pose between ``self`` (``fraction = 0``) and ``other`` (``fraction = 1``).

        Rotation by slerp along the shorter arc, translation linearly. Both poses must map
        into the same frame (e.g. two ``world_SE3_ego`` samples).
        """
        q = slerp_wxyz(self.as_wxyz(), other.as_wxyz(), float(fraction))
        t = (1.0 - fraction) * self.translation + fraction * other.translation
        return SE3(wxyz_to_rotation(q), t)

    def allclose(self, other: SE3, *, atol_rad: float = 1e-9, atol_m: float = 1e-9) -> bool:
        """True when rotations differ by at most ``atol_rad`` and translations by ``atol_m``."""
        return bool(
            angle_between(self.rotation, other.rotation) <= atol_rad
            and np.linalg.norm(self.translation - other.translation) <= atol_m
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SE3):
            return NotImplemented
        return bool(np.array_equal(self.rotation, other.rotation) and np.array_equal(self.translation, other.translation))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable

    def __repr__(self) -> str:
        q = np.round(self.as_wxyz(), 6).tolist()
        t = np.round(self.translation, 6).tolist()
        return f"SE3(wxyz={q}, translation_m={t})"
