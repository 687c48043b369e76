"""Camera models: pinhole, OpenCV radial-tangential and fisheye (Kannala-Brandt equidistant).

Pixel convention (the same as OpenCV's): the centre of pixel ``(col, row)`` is at
``u = col, v = row``; the image covers ``-0.5 <= u < width - 0.5`` and
``-0.5 <= v < height - 0.5``. ``u`` grows to the right, ``v`` downwards. The camera frame
is x right, y down, z forward (optical axis), in metres.

Normalized coordinates are ``(x, y) = (X / Z, Y / Z)`` of a camera-frame point; the
distortion models map undistorted normalized coordinates to distorted ones, and
``u = fx * x_d + cx``, ``v = fy * y_d + cy``:

- ``"radtan"`` (OpenCV ``cv2.projectPoints``), ``r^2 = x^2 + y^2``::

      radial = (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)
      x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2)
      y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y

- ``"fisheye"`` (OpenCV ``cv2.fisheye.projectPoints``), ``theta = atan(r)``::

      theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)
      (x_d, y_d) = (theta_d / r) (x, y)

The valid region
----------------
Polynomial distortion models fold over: beyond some radius the distorted radius shrinks
again, and OpenCV happily projects a point far off-axis back into the middle of the
image. Every model here therefore has a *valid region*, the disc ``r < max_valid_radius``
of undistorted normalized coordinates (equivalently the cone ``theta < max_valid_angle_rad``
around the optical axis), computed once from the coefficients:

- fisheye: the distortion is purely radial, so the region is where ``theta_d(theta)`` is
  strictly increasing: ``theta`` below the first root of ``d theta_d / d theta`` in
  ``(0, pi/2)``, else ``pi/2`` (every point in front of the camera).
- radtan: let ``J`` be the Jacobian of ``(x, y) -> (x_d, y_d)``. The region is the largest
  disc on which the symmetric part of ``J`` is positive definite. On a convex set that
  makes the map injective: for ``a != b``,
  ``(b - a) . (F(b) - F(a)) = integral of (b - a)^T J (b - a) > 0``, so ``F(a) != F(b)``.
  The radial part has eigenvalues ``radial`` and ``d r_d / dr``; the tangential part is
  symmetric with eigenvalues ``>= -6 sqrt(p1^2 + p2^2) r`` (exact bound). By Weyl's
  inequality the disc ends at the first ``r`` where
  ``min(radial, d r_d / dr) - 6 sqrt(p1^2 + p2^2) r <= 0`` or the rational denominator
  reaches 0. Multiplied by the squared denominator these are polynomials in ``r``; their
  first positive root is found from the polynomial roots and, as a cross-check, a dense
  sample with bisection, keeping the smaller (conservative) value. With ``p1 = p2 = 0`` this
  is exactly the first turning point of the radial distortion.

What this guarantees: two different camera rays inside the valid region never project to
the same pixel, :meth:`CameraModel.project` never reports a point outside the region as
visible, and :meth:`CameraModel.undistort_normalized` has exactly one solution inside the
region for each distorted coordinate that has one, which it finds or reports. Points
outside the region are not necessarily folded (the radtan bound is sufficient, not
necessary, and slightly conservative when ``p1, p2 != 0``); they are only not trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Final, Literal, Sequence

import numpy as np

from calibration.array_types import NDArrayBool, NDArrayFloat, NDArrayNumber, NDArrayUInt8
from calibration.checks import check_array, check_matrix, check_points
from calibration.errors import CalibrationError

__all__ = [
    "BEHIND_CAMERA",
    "DISTORTION_SIZES",
    "MIN_DEPTH_M",
    "NOT_FINITE",
    "OUTSIDE_IMAGE",
    "OUTSIDE_VALID_REGION",
    "UNDISTORT_TOL",
    "VISIBLE",
    "CameraModel",
    "DistortionModelName",
    "Projection",
    "ProjectionStatus",
]

DistortionModelName = Literal["pinhole", "radtan", "fisheye"]

#: Accepted coefficient counts per model, in OpenCV order:
#: radtan (k1, k2, p1, p2[, k3[, k4, k5, k6]]), fisheye (k1, k2, k3, k4).
DISTORTION_SIZES: dict[str, tuple[int, ...]] = {"pinhole": (0,), "radtan": (4, 5, 8), "fisheye": (4,)}

#: Default near limit of :meth:`CameraModel.project`: points with camera ``z <= MIN_DEPTH_M``
#: metres are behind the camera (a micrometre keeps ``X / Z`` finite for any sane input).
MIN_DEPTH_M: Final[float] = 1e-6

#: Convergence tolerance of the iterative undistortion: a solution is accepted when it
#: re-distorts to within ``UNDISTORT_TOL * max(1, |target|)`` of the target, in normalized
#: units (about 1e-9 px for a 1000 px focal length).
UNDISTORT_TOL: Final[float] = 1e-12


class ProjectionStatus(IntEnum):
    """Why a point is or is not visible; stored as ``uint8`` in :attr:`Projection.status`.

    When several apply, the first in this order wins: ``NOT_FINITE``, ``BEHIND_CAMERA``,
    ``OUTSIDE_VALID_REGION``, ``OUTSIDE_IMAGE``.
    """

    VISIBLE = 0
    """In front of the camera, inside the valid region and inside the image."""
    BEHIND_CAMERA = 1
    """Camera ``z <= min_depth_m``."""
    OUTSIDE_IMAGE = 2
    """Projects (uniquely) to a pixel outside the image rectangle."""
    OUTSIDE_VALID_REGION = 3
    """Beyond the model's valid region, where the distortion may fold (module docstring)."""
    NOT_FINITE = 4
    """A coordinate is NaN or infinite."""


VISIBLE: Final[int] = int(ProjectionStatus.VISIBLE)
BEHIND_CAMERA: Final[int] = int(ProjectionStatus.BEHIND_CAMERA)
OUTSIDE_IMAGE: Final[int] = int(ProjectionStatus.OUTSIDE_IMAGE)
OUTSIDE_VALID_REGION: Final[int] = int(ProjectionStatus.OUTSIDE_VALID_REGION)
NOT_FINITE: Final[int] = int(ProjectionStatus.NOT_FINITE)

# Points per block in CameraModel.project: a dozen float64 temporaries of this length stay
# in the L2 cache, which makes the numpy ufunc chain about 3x faster than whole-array passes.
_BLOCK_POINTS = 16384


@dataclass(frozen=True, eq=False)
class Projection:
    """Result of :meth:`CameraModel.project` for ``N`` camera-frame points (read-only arrays).

    Attributes:
        uv_px: ``(N, 2)`` float64 pixel coordinates ``(u, v)``. NaN where ``status`` is
            ``BEHIND_CAMERA``, ``OUTSIDE_VALID_REGION`` or ``NOT_FINITE`` (there is no
            trustworthy pixel); the real, unique projection where it is ``OUTSIDE_IMAGE``.
        depth_m: ``(N,)`` float64 camera ``z`` in metres, as given (also for invalid points).
        status: ``(N,)`` uint8 :class:`ProjectionStatus` codes.
    """

    uv_px: NDArrayFloat
    depth_m: NDArrayFloat
    status: NDArrayUInt8

    def __post_init__(self) -> None:
        for name in ("uv_px", "depth_m", "status"):
            getattr(self, name).setflags(write=False)

    @property
    def valid(self) -> NDArrayBool:
        """``(N,)`` bool: ``status == VISIBLE``."""
        return self.status == VISIBLE

    def __len__(self) -> int:
        return len(self.status)


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of one camera, with projection and its inverse.

    Attributes:
        width_px, height_px: image size in pixels.
        fx_px, fy_px: focal lengths in pixels.
        cx_px, cy_px: principal point in pixels (pixel-centre convention above).
        distortion_model: ``"pinhole"`` (no distortion), ``"radtan"`` (OpenCV
            ``plumb_bob`` / rational polynomial) or ``"fisheye"`` (OpenCV ``cv2.fisheye``,
            Kannala-Brandt equidistant).
        distortion: coefficients in OpenCV order; see :data:`DISTORTION_SIZES`.

    Raises:
        CalibrationError: non-positive size or focal length, non-finite values, or a
            coefficient count the model does not have.

    >>> import numpy as np
    >>> camera = CameraModel.from_K(
    ...     [[1000.0, 0.0, 639.5], [0.0, 1000.0, 359.5], [0.0, 0.0, 1.0]], 1280, 720,
    ...     "radtan", (-0.3, 0.09, 0.0, 0.0, -0.01))
    >>> round(camera.max_valid_radius, 3), round(float(np.degrees(camera.max_valid_angle_rad)), 1)
    (2.041, 63.9)
    >>> points_camera = np.array([[0.0, 0.0, 10.0], [2.0, 1.0, 10.0], [0.0, 0.0, -5.0],
    ...                           [26.0, 0.0, 10.0], [9.0, 0.0, 10.0]])
    >>> projection = camera.project(points_camera)
    >>> projection.uv_px.round(2)
    array([[ 639.5 ,  359.5 ],
           [ 836.54,  458.02],
           [    nan,     nan],
           [    nan,     nan],
           [1369.16,  359.5 ]])
    >>> [ProjectionStatus(s).name for s in projection.status]
    ['VISIBLE', 'VISIBLE', 'BEHIND_CAMERA', 'OUTSIDE_VALID_REGION', 'OUTSIDE_IMAGE']

    (``cv2.projectPoints`` puts the fourth point, 69 degrees off-axis, at ``u = 628.1``:
    folded back into the middle of the image.)

    >>> camera.unproject(projection.uv_px[:2], projection.depth_m[:2]).round(9)
    array([[ 0.,  0., 10.],
           [ 2.,  1., 10.]])
    """

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    distortion_model: DistortionModelName = "pinhole"
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) <= 0:
                raise CalibrationError(f"camera {name}: expected a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("fx_px", "fy_px", "cx_px", "cy_px"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise CalibrationError(f"camera {name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, value)
        if self.fx_px <= 0 or self.fy_px <= 0:
            raise CalibrationError(f"camera focal length: expected fx_px, fy_px > 0, got {self.fx_px}, {self.fy_px}")
        if self.distortion_model not in DISTORTION_SIZES:
            raise CalibrationError(
                f"camera distortion_model: expected one of {sorted(DISTORTION_SIZES)}, got {self.distortion_model!r}"
            )
        coeffs = tuple(float(c) for c in np.asarray(self.distortion, dtype=np.float64).ravel())
        if len(coeffs) not in DISTORTION_SIZES[self.distortion_model]:
            raise CalibrationError(
                f"camera distortion: the {self.distortion_model} model takes "
                f"{' or '.join(map(str, DISTORTION_SIZES[self.distortion_model]))} coefficients, got {len(coeffs)}"
            )
        if not all(np.isfinite(coeffs)):
            raise CalibrationError(f"camera distortion: expected finite coefficients, got {coeffs}")
        object.__setattr__(self, "distortion", coeffs)
        if self.distortion_model == "radtan":
            radius = _radtan_max_valid_radius(*self._radtan_coefficients())
        elif self.distortion_model == "fisheye":
            angle = _fisheye_max_valid_angle(coeffs)
            radius = math.inf if angle >= math.pi / 2 else math.tan(angle)
        else:
            radius = math.inf
        # Derived once and stored as a plain private attribute, not a dataclass field, so
        # fields()/asdict()/replace()/==/hash see only the eight intrinsics.
        object.__setattr__(self, "_max_valid_radius", radius)

    @classmethod
    def from_K(
        cls,
        K: NDArrayFloat,
        width_px: int,
        height_px: int,
        distortion_model: DistortionModelName = "pinhole",
        distortion: tuple[float, ...] | NDArrayFloat = (),
        *,
        name: str = "K",
    ) -> CameraModel:
        """Build from a ``(3, 3)`` intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.

        Raises:
            CalibrationError: non-zero skew ``K[0, 1]`` or a last row other than ``[0, 0, 1]``
                (this model does not represent them).
        """
        K = check_matrix(K, name, 3, 3)
        if abs(K[0, 1]) > 1e-9 * abs(K[0, 0]):
            raise CalibrationError(f"{name}: skew K[0, 1] = {float(K[0, 1]):g} is not supported (expected 0)")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or abs(K[1, 0]) > 1e-12:
            raise CalibrationError(f"{name}: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        return cls(width_px, height_px, K[0, 0], K[1, 1], K[0, 2], K[1, 2], distortion_model, tuple(np.ravel(distortion)))

    @property
    def K(self) -> NDArrayFloat:
        """The ``(3, 3)`` intrinsic matrix."""
        return np.array([[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]])

    # ------------------------------------------------------------------ valid region
    @property
    def max_valid_radius(self) -> float:
        """Radius of the valid region in undistorted normalized coordinates (``inf`` if unbounded).

        A point is inside when ``sqrt(x^2 + y^2) < max_valid_radius`` with ``x = X / Z``,
        ``y = Y / Z``; see the module docstring for what that guarantees.
        """
        return self._max_valid_radius

    @property
    def max_valid_angle_rad(self) -> float:
        """Half-angle of the valid cone around the optical axis, ``atan(max_valid_radius)``."""
        return math.atan(self._max_valid_radius)

    # ------------------------------------------------------------------ projection
    def project(self, points_camera: NDArrayNumber, *, min_depth_m: float = MIN_DEPTH_M) -> Projection:
        """Project camera-frame points to pixels, with a status per point.

        Args:
            points_camera: ``(N, 3)`` points in the camera frame (x right, y down,
                z forward), metres; float32 (LiDAR) or float64, computed in float64.
                NaN/inf rows are allowed and get ``NOT_FINITE``.
            min_depth_m: points with ``z <= min_depth_m`` are ``BEHIND_CAMERA``.

        Returns:
            :class:`Projection` with ``uv_px (N, 2)``, ``depth_m (N,)`` and ``status (N,)``.
            ``OUTSIDE_VALID_REGION`` means ``hypot(X / Z, Y / Z) >= max_valid_radius``;
            ``OUTSIDE_IMAGE`` means ``uv_px`` is outside ``[-0.5, width - 0.5) x
            [-0.5, height - 0.5)``. Status precedence: ``NOT_FINITE`` > ``BEHIND_CAMERA`` >
            ``OUTSIDE_VALID_REGION`` > ``OUTSIDE_IMAGE``; ``uv_px`` is NaN for the first three.

        Raises:
            ShapeError: ``points_camera`` is not ``(N, 3)`` numeric.
            CalibrationError: ``min_depth_m`` negative or not finite.
        """
        points = check_points(points_camera, "points_camera", 3, finite=False)
        min_depth_m = float(min_depth_m)
        if not (np.isfinite(min_depth_m) and min_depth_m >= 0.0):
            raise CalibrationError(f"project min_depth_m: expected a finite value >= 0, got {min_depth_m!r}")
        count = len(points)
        uv_px = np.empty((count, 2), dtype=np.float64)
        depth_m = np.empty(count, dtype=np.float64)
        status = np.empty(count, dtype=np.uint8)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for start in range(0, count, _BLOCK_POINTS):
                stop = min(start + _BLOCK_POINTS, count)
                block = slice(start, stop)
                self._project_block(points[block], min_depth_m, uv_px[block], depth_m[block], status[block])
        return Projection(uv_px, depth_m, status)

    def _project_block(
        self,
        points: NDArrayNumber,
        min_depth_m: float,
        uv_px: NDArrayFloat,
        depth_m: NDArrayFloat,
        status: NDArrayUInt8,
    ) -> None:
        """Fill the output views of one block; numpy error reporting is off (behind points divide by 0)."""
        xyz = np.array(points.T, dtype=np.float64, order="C")  # (3, M), contiguous columns
        X, Y, Z = xyz
        depth_m[...] = Z
        # NaN exactly where a coordinate is NaN or infinite (inf - inf = NaN).
        finite_probe = X - X
        finite_probe += Y - Y
        finite_probe += Z - Z
        x = np.divide(X, Z, out=X)
        y = np.divide(Y, Z, out=Y)
        r2 = x * x
        r2 += y * y
        x_d, y_d = self._distort(x, y, r2)
        u = np.multiply(x_d, self.fx_px, out=x_d)
        u += self.cx_px
        v = np.multiply(y_d, self.fy_px, out=y_d)
        v += self.cy_px
        # Lowest precedence first; later writes win.
        inside = u >= -0.5
        inside &= u < self.width_px - 0.5
        inside &= v >= -0.5
        inside &= v < self.height_px - 0.5
        np.multiply(~inside, np.uint8(OUTSIDE_IMAGE), out=status, casting="unsafe")
        no_pixel = r2 >= self._max_valid_radius**2
        np.copyto(status, np.uint8(OUTSIDE_VALID_REGION), where=no_pixel)
        behind = Z <= min_depth_m
        np.copyto(status, np.uint8(BEHIND_CAMERA), where=behind)
        not_finite = np.isnan(finite_probe)
        np.copyto(status, np.uint8(NOT_FINITE), where=not_finite)
        no_pixel |= behind
        no_pixel |= not_finite
        np.copyto(u, np.nan, where=no_pixel)
        np.copyto(v, np.nan, where=no_pixel)
        uv_px[:, 0] = u
        uv_px[:, 1] = v

    # ------------------------------------------------------------------ distortion
    def distort_normalized(self, xy_undistorted: NDArrayNumber) -> NDArrayFloat:
        """Apply the distortion model to undistorted normalized coordinates.

        This is the raw model formula, evaluated everywhere: beyond
        :attr:`max_valid_radius` the result may fold back (use :meth:`project` for
        statuses).

        Args:
            xy_undistorted: ``(N, 2)`` normalized coordinates ``(X / Z, Y / Z)``.

        Returns:
            ``(N, 2)`` float64 distorted normalized coordinates (NaN in, NaN out).

        Raises:
            ShapeError: not ``(N, 2)`` numeric.
        """
        xy = check_points(xy_undistorted, "xy_undistorted", 2, finite=False)
        x = np.array(xy[:, 0], dtype=np.float64)
        y = np.array(xy[:, 1], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x_d, y_d = self._distort(x, y, x * x + y * y)
        return np.stack([x_d, y_d], axis=1)

    def _distort(self, x: NDArrayFloat, y: NDArrayFloat, r2: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
        """Distorted ``(x_d, y_d)`` of ``(M,)`` normalized ``x, y`` with ``r2 = x^2 + y^2``.

        May overwrite ``x`` and ``y`` (not ``r2``); returns fresh arrays or those.
        """
        if self.distortion_model == "pinhole":
            return x, y
        if self.distortion_model == "fisheye":
            k1, k2, k3, k4 = self.distortion
            radius = np.sqrt(r2)
            theta = np.arctan(radius)
            theta2 = theta * theta
            theta_d = k4 * theta2
            theta_d += k3
            theta_d *= theta2
            theta_d += k2
            theta_d *= theta2
            theta_d += k1
            theta_d *= theta2
            theta_d += 1.0
            theta_d *= theta
            # theta_d / r -> 1 on the axis; OpenCV uses 1 for r <= 1e-8, equal to the ulp.
            scale = np.divide(theta_d, radius, out=theta_d, where=radius > 0.0)
            np.copyto(scale, 1.0, where=radius == 0.0)
            x *= scale
            y *= scale
            return x, y
        k1, k2, p1, p2, k3, k4, k5, k6 = self._radtan_coefficients()
        radial = k3 * r2
        radial += k2
        radial *= r2
        radial += k1
        radial *= r2
        radial += 1.0
        if k4 or k5 or k6:
            denominator = k6 * r2
            denominator += k5
            denominator *= r2
            denominator += k4
            denominator *= r2
            denominator += 1.0
            radial /= denominator
        x_d = x * radial
        y_d = np.multiply(y, radial, out=radial)
        if p1 or p2:
            two_xy = x * y
            two_xy *= 2.0
            # x_d += p1 * 2xy + p2 * (r2 + 2 x^2)
            term = np.multiply(x, x, out=x)
            term *= 2.0
            term += r2
            term *= p2
            x_d += term
            x_d += p1 * two_xy
            # y_d += p1 * (r2 + 2 y^2) + p2 * 2xy
            term = np.multiply(y, y, out=y)
            term *= 2.0
            term += r2
            term *= p1
            y_d += term
            two_xy *= p2
            y_d += two_xy
        return x_d, y_d

    def _radtan_coefficients(self) -> tuple[float, float, float, float, float, float, float, float]:
        """``(k1, k2, p1, p2, k3, k4, k5, k6)`` with missing trailing coefficients as 0."""
        padded = self.distortion + (0.0,) * (8 - len(self.distortion))
        return padded  # type: ignore[return-value]

    # ------------------------------------------------------------------ undistortion
    def undistort_normalized(self, xy_distorted: NDArrayNumber, *, strict: bool = False) -> NDArrayFloat:
        """Invert :meth:`distort_normalized` inside the valid region.

        Fisheye and the radial part of radtan are solved by safeguarded Newton iteration on
        the (monotonic) radial function, radtan's tangential terms by damped 2D Newton from
        there. Each result is then verified: it must lie inside the valid region and
        re-distort to the input within ``UNDISTORT_TOL * max(1, |xy_distorted|)``. Inside
        the valid region the solution is unique (module docstring).

        Args:
            xy_distorted: ``(N, 2)`` distorted normalized coordinates
                ``((u - cx) / fx, (v - cy) / fy)``.
            strict: raise instead of returning NaN for finite inputs without a solution.

        Returns:
            ``(N, 2)`` float64 undistorted normalized coordinates ``(X / Z, Y / Z)``; NaN rows
            for non-finite input and, unless ``strict``, for coordinates that have no
            verified solution inside the valid region (beyond the image of the region, or
            not converged).

        Raises:
            ShapeError: not ``(N, 2)`` numeric.
            CalibrationError: ``strict`` and some finite input has no verified solution;
                the message gives the count and the first index.
        """
        xy = check_points(xy_distorted, "xy_distorted", 2, finite=False)
        xy_undistorted = np.empty(xy.shape, dtype=np.float64)
        failed = np.zeros(len(xy), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for start in range(0, len(xy), _BLOCK_POINTS):
                stop = min(start + _BLOCK_POINTS, len(xy))
                self._undistort_block(xy[start:stop], xy_undistorted[start:stop], failed[start:stop])
        if strict and failed.any():
            first = int(np.flatnonzero(failed)[0])
            raise CalibrationError(
                f"camera {self.distortion_model} undistortion: {int(failed.sum())} of {len(xy)} finite points have "
                f"no solution inside the valid region (max_valid_radius={self._max_valid_radius:.6g}) within "
                f"tolerance {UNDISTORT_TOL:g}; first at index {first}: normalized {xy[first].tolist()}"
            )
        return xy_undistorted

    def _undistort_block(self, xy_distorted: NDArrayNumber, xy_out: NDArrayFloat, failed_out: NDArrayBool) -> None:
        """Undistort and verify one block; NaN rows and ``failed_out`` for finite inputs that failed."""
        target_x = np.array(xy_distorted[:, 0], dtype=np.float64)
        target_y = np.array(xy_distorted[:, 1], dtype=np.float64)
        x, y = self._undistort(target_x, target_y)
        # Verify every answer with the same forward model that project uses.
        r2 = x * x + y * y
        x_d, y_d = self._distort(x.copy(), y.copy(), r2)
        tol = UNDISTORT_TOL * np.maximum(1.0, np.maximum(np.abs(target_x), np.abs(target_y)))
        ok = (np.abs(x_d - target_x) <= tol) & (np.abs(y_d - target_y) <= tol) & (r2 < self._max_valid_radius**2)
        failed_out[...] = np.isfinite(target_x) & np.isfinite(target_y) & ~ok
        x[~ok] = np.nan
        y[~ok] = np.nan
        xy_out[:, 0] = x
        xy_out[:, 1] = y

    def _undistort(self, target_x: NDArrayFloat, target_y: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
        """Unverified inverse of :meth:`_distort`; NaN where no candidate was found."""
        if self.distortion_model == "pinhole":
            return target_x.copy(), target_y.copy()
        target_r = np.hypot(target_x, target_y)
        if self.distortion_model == "fisheye":
            k1, k2, k3, k4 = self.distortion

            def theta_d(theta: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
                t2 = theta * theta
                value = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
                slope = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
                return value, slope

            theta = _solve_increasing(theta_d, target_r, self.max_valid_angle_rad)
            scale = np.divide(np.tan(theta), target_r, out=np.ones_like(target_r), where=target_r > 0.0)
            return target_x * scale, target_y * scale

        k1, k2, p1, p2, k3, k4, k5, k6 = self._radtan_coefficients()

        def radial_terms(r2: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
            """``radial(r2)`` and ``d radial / d r2``."""
            numerator = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            denominator = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
            d_numerator = k1 + r2 * (2.0 * k2 + r2 * 3.0 * k3)
            d_denominator = k4 + r2 * (2.0 * k5 + r2 * 3.0 * k6)
            return numerator / denominator, (d_numerator * denominator - numerator * d_denominator) / denominator**2

        def radial_distance(r: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
            radial, d_radial = radial_terms(r * r)
            return r * radial, radial + 2.0 * r * r * d_radial

        r_limit = self._max_valid_radius
        r = _solve_increasing(radial_distance, target_r, r_limit)
        if p1 or p2:
            # Targets beyond the radial image of the region may still be reached thanks to
            # the tangential terms: start those just inside the boundary.
            fallback = 0.999 * r_limit if math.isfinite(r_limit) else np.nan
            r = np.where(np.isnan(r) & np.isfinite(target_r), fallback, r)
        scale = np.divide(r, target_r, out=np.ones_like(target_r), where=target_r > 0.0)
        x = target_x * scale
        y = target_y * scale
        if p1 or p2:
            x, y = _newton_radtan(x, y, target_x, target_y, radial_terms, p1, p2, r_limit)
        return x, y

    def undistort(self, uv_px: NDArrayNumber, *, strict: bool = False) -> NDArrayFloat:
        """Pixels of the equivalent pinhole camera (same ``K``, no distortion).

        Args:
            uv_px: ``(N, 2)`` distorted pixel coordinates.
            strict: see :meth:`undistort_normalized`.

        Returns:
            ``(N, 2)`` float64 undistorted pixel coordinates; NaN rows as in
            :meth:`undistort_normalized`.
        """
        xy = self.undistort_normalized(self._pixels_to_normalized(uv_px), strict=strict)
        xy[:, 0] = xy[:, 0] * self.fx_px + self.cx_px
        xy[:, 1] = xy[:, 1] * self.fy_px + self.cy_px
        return xy

    def unproject(self, uv_px: NDArrayNumber, depth_m: NDArrayNumber, *, strict: bool = False) -> NDArrayFloat:
        """Camera-frame points seen at pixels ``uv_px`` with camera ``z = depth_m``.

        Args:
            uv_px: ``(N, 2)`` distorted pixel coordinates.
            depth_m: ``(N,)`` camera ``z`` in metres (depth along the optical axis, not the
                range along the ray).
            strict: see :meth:`undistort_normalized`.

        Returns:
            ``(N, 3)`` float64 points in the camera frame (x right, y down, z forward),
            metres; NaN rows where undistortion has no verified solution (unless
            ``strict``) or the input is not finite.

        Raises:
            ShapeError: wrong shapes, or ``depth_m`` not matching ``uv_px`` in length.
            CalibrationError: see :meth:`undistort_normalized`.
        """
        pixels = check_points(uv_px, "uv_px", 2, finite=False)
        depth = check_array(
            depth_m, "depth_m", (len(pixels),), finite=False, shape_text=f"({len(pixels)},) to match uv_px"
        )
        xy = self.undistort_normalized(self._pixels_to_normalized(pixels), strict=strict)
        points_camera = np.empty((len(pixels), 3), dtype=np.float64)
        points_camera[:, :2] = xy * depth[:, None]
        points_camera[:, 2] = depth
        points_camera[np.isnan(xy[:, 0])] = np.nan
        return points_camera

    def _pixels_to_normalized(self, uv_px: NDArrayNumber) -> NDArrayFloat:
        pixels = check_points(uv_px, "uv_px", 2, finite=False)
        xy = np.empty(pixels.shape, dtype=np.float64)
        xy[:, 0] = (pixels[:, 0] - self.cx_px) / self.fx_px
        xy[:, 1] = (pixels[:, 1] - self.cy_px) / self.fy_px
        return xy


# ---------------------------------------------------------------------- valid-region limits
# Dense samples for the sign search: radii uniform in angle up to ~89.98 degrees (polynomial
# roots cover the rest), fisheye angles up to and including pi/2.
_RADIUS_GRID = np.tan(np.linspace(0.0, np.pi / 2, 4097)[1:-1])
_ANGLE_GRID = np.linspace(0.0, np.pi / 2, 4097)[1:]


def _radtan_max_valid_radius(
    k1: float, k2: float, p1: float, p2: float, k3: float, k4: float, k5: float, k6: float
) -> float:
    """Radius of the largest disc where the radtan map is provably injective (module docstring).

    Polynomials are ascending coefficient arrays in ``s = r^2``, then in ``r``.
    """
    numerator = np.array([1.0, k1, k2, k3])
    denominator = np.array([1.0, k4, k5, k6])
    d_numerator = np.array([k1, 2.0 * k2, 3.0 * k3])
    d_denominator = np.array([k4, 2.0 * k5, 3.0 * k6])
    product = np.convolve(numerator, denominator)
    # d(r radial)/dr * denominator^2 = P Q + 2 s (P' Q - P Q').
    slope_numerator = product + np.concatenate(
        [[0.0], 2.0 * (np.convolve(d_numerator, denominator) - np.convolve(numerator, d_denominator))]
    )
    # Tangential eigenvalue bound 6 rho r, times denominator^2.
    tangential_bound = 6.0 * math.hypot(p1, p2) * np.concatenate([[0.0], _in_r(np.convolve(denominator, denominator))])
    conditions = [
        _in_r(denominator),
        _pad(_in_r(product), 14) - tangential_bound,
        _pad(_in_r(slope_numerator), 14) - tangential_bound,
    ]
    return _first_loss_of_positivity(conditions, _RADIUS_GRID, math.inf)


def _fisheye_max_valid_angle(coeffs: Sequence[float]) -> float:
    """First turning point of ``theta_d(theta)`` in ``(0, pi/2)``, else ``pi/2``."""
    k1, k2, k3, k4 = coeffs
    slope = _in_r(np.array([1.0, 3.0 * k1, 5.0 * k2, 7.0 * k3, 9.0 * k4]))  # d theta_d / d theta
    return _first_loss_of_positivity([slope], _ANGLE_GRID, np.pi / 2)


def _in_r(coef_in_s: NDArrayFloat) -> NDArrayFloat:
    """Ascending coefficients of ``p(r^2)`` from those of ``p(s)``."""
    coef = np.zeros(2 * len(coef_in_s) - 1)
    coef[::2] = coef_in_s
    return coef


def _pad(coef: NDArrayFloat, size: int) -> NDArrayFloat:
    return np.concatenate([coef, np.zeros(size - len(coef))])


def _first_loss_of_positivity(polys: list[NDArrayFloat], grid: NDArrayFloat, t_end: float) -> float:
    """Smallest ``t`` in ``(0, t_end)`` where one of ``polys`` (each 1 at ``t = 0``) is ``<= 0``.

    ``polys`` are ascending coefficient arrays. Returns ``t_end`` when none is. Two
    independent searches, keeping the smaller: real positive polynomial roots (a near-real
    complex pair counts, which is conservative: the function nearly touches 0 there), and
    the first non-positive sample on ``grid`` refined by bisection (catches roots the
    eigenvalue solver gets wrong).
    """
    limit = float(t_end)
    for coef in polys:
        for root in np.polynomial.polynomial.polyroots(np.trim_zeros(coef, "b")):
            if root.real > 0.0 and abs(root.imag) <= 1e-6 * abs(root):
                limit = min(limit, float(root.real))
    values = np.min([np.polynomial.polynomial.polyval(grid, coef) for coef in polys], axis=0)
    bad = np.flatnonzero(values <= 0.0)
    if len(bad):
        descending = [coef.tolist()[::-1] for coef in polys]  # for Horner on Python floats

        def all_positive(t: float) -> bool:
            for coef in descending:
                value = 0.0
                for c in coef:
                    value = value * t + c
                if value <= 0.0:
                    return False
            return True

        hi = float(grid[bad[0]])
        lo = float(grid[bad[0] - 1]) if bad[0] > 0 else 0.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if all_positive(mid):
                lo = mid
            else:
                hi = mid
        limit = min(limit, lo)
    return limit


# ---------------------------------------------------------------------- iterative solvers
def _solve_increasing(
    value_and_slope: Callable[[NDArrayFloat], tuple[NDArrayFloat, NDArrayFloat]],
    target: NDArrayFloat,
    t_limit: float,
) -> NDArrayFloat:
    """Solve ``g(t) = target`` for ``t`` in ``[0, t_limit)``, ``g`` increasing there with ``g(0) = 0``.

    Newton steps kept inside a shrinking bracket (bisection when a step leaves it), so it
    always converges. Returns NaN where the target is not finite or not below
    ``sup g = g(t_limit)`` (for ``t_limit = inf`` an upper bracket is searched by doubling).
    """
    t = np.full(target.shape, np.nan)
    lo = np.zeros(target.shape)
    hi = np.full(target.shape, t_limit)
    active = np.isfinite(target)
    if math.isfinite(t_limit):
        g_limit, _ = value_and_slope(np.array([t_limit]))
        active &= target < g_limit[0]
    else:
        hi[:] = np.maximum(2.0 * np.where(active, target, 0.0), 1.0)
        for _ in range(64):  # doubling: 2^64 times the target covers any float
            short = active & (value_and_slope(hi)[0] < target)
            if not short.any():
                break
            hi[short] *= 2.0
        active &= value_and_slope(hi)[0] >= target
    index = np.flatnonzero(active)
    y = target[index]
    lo_i, hi_i = lo[index], hi[index]
    t_i = np.where(y < hi_i, y, 0.5 * (lo_i + hi_i))  # g(t) ~ t near the axis
    tol = UNDISTORT_TOL * 1e-3 * np.maximum(1.0, y)
    for _ in range(200):
        if not len(index):
            break
        value, slope = value_and_slope(t_i)
        error = value - y
        lo_i = np.where(error < 0.0, t_i, lo_i)
        hi_i = np.where(error > 0.0, t_i, hi_i)
        step = t_i - error / slope
        outside = ~((step > lo_i) & (step < hi_i))
        step = np.where(outside, 0.5 * (lo_i + hi_i), step)
        done = (np.abs(error) <= tol) | (hi_i - lo_i <= 4e-16 * hi_i)
        t[index[done]] = t_i[done]
        keep = ~done
        index, y, tol = index[keep], y[keep], tol[keep]
        t_i, lo_i, hi_i = step[keep], lo_i[keep], hi_i[keep]
    return t


def _newton_radtan(
    x: NDArrayFloat,
    y: NDArrayFloat,
    target_x: NDArrayFloat,
    target_y: NDArrayFloat,
    radial_terms: Callable[[NDArrayFloat], tuple[NDArrayFloat, NDArrayFloat]],
    p1: float,
    p2: float,
    r_limit: float,
) -> tuple[NDArrayFloat, NDArrayFloat]:
    """Damped 2D Newton for the full radtan map from a starting guess (NaN = no guess).

    The Jacobian is symmetric with a positive-definite symmetric part inside the valid
    region, so Newton steps descend ``|F - target|^2``; steps are halved until they do and
    stay inside the region.
    """
    r2_limit = r_limit**2

    def residual(
        px: NDArrayFloat, py: NDArrayFloat, tx: NDArrayFloat, ty: NDArrayFloat
    ) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat, NDArrayFloat, NDArrayFloat]:
        """``r^2``, ``radial``, ``d radial / d r^2`` and the residual ``F(p) - target``."""
        r2 = px * px + py * py
        radial, d_radial = radial_terms(r2)
        ex = px * radial + 2.0 * p1 * px * py + p2 * (r2 + 2.0 * px * px) - tx
        ey = py * radial + p1 * (r2 + 2.0 * py * py) + 2.0 * p2 * px * py - ty
        return r2, radial, d_radial, ex, ey

    x, y = x.copy(), y.copy()
    index = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    px, py, tx, ty = x[index], y[index], target_x[index], target_y[index]
    tol = UNDISTORT_TOL * 1e-2 * np.maximum(1.0, np.maximum(np.abs(tx), np.abs(ty)))
    r2, radial, d_radial, ex, ey = residual(px, py, tx, ty)
    for _ in range(50):
        # Converged points leave; so do stuck ones (no step improves): verification judges them.
        done = (np.abs(ex) <= tol) & (np.abs(ey) <= tol)
        x[index[done]], y[index[done]] = px[done], py[done]
        keep = ~done
        index, px, py, tx, ty, tol = index[keep], px[keep], py[keep], tx[keep], ty[keep], tol[keep]
        r2, radial, d_radial, ex, ey = r2[keep], radial[keep], d_radial[keep], ex[keep], ey[keep]
        if not len(index):
            break
        a = radial + 2.0 * d_radial * px * px + 6.0 * p2 * px + 2.0 * p1 * py
        b = 2.0 * d_radial * px * py + 2.0 * p1 * px + 2.0 * p2 * py
        d = radial + 2.0 * d_radial * py * py + 2.0 * p2 * px + 6.0 * p1 * py
        det = a * d - b * b
        step_x = (b * ey - d * ex) / det
        step_y = (b * ex - a * ey) / det
        merit = ex * ex + ey * ey
        pending = np.ones(len(px), dtype=bool)
        alpha = 1.0
        for _ in range(30):  # backtracking: halve the step until it improves and stays inside
            sub = np.flatnonzero(pending)
            cand_x = px[sub] + alpha * step_x[sub]
            cand_y = py[sub] + alpha * step_y[sub]
            cand = residual(cand_x, cand_y, tx[sub], ty[sub])
            accept = (cand[0] < r2_limit) & (cand[3] * cand[3] + cand[4] * cand[4] < merit[sub])
            taken = sub[accept]
            px[taken], py[taken] = cand_x[accept], cand_y[accept]
            for full, part in zip((r2, radial, d_radial, ex, ey), cand):
                full[taken] = part[accept]
            pending[taken] = False
            if not pending.any():
                break
            alpha *= 0.5
        if pending.any():
            x[index[pending]], y[index[pending]] = px[pending], py[pending]
            keep = ~pending
            index, px, py, tx, ty, tol = index[keep], px[keep], py[keep], tx[keep], ty[keep], tol[keep]
            r2, radial, d_radial, ex, ey = r2[keep], radial[keep], d_radial[keep], ex[keep], ey[keep]
    x[index], y[index] = px, py
    return x, y
