"""Time series of rigid transforms ``dst_SE3_src(t)``, e.g. the ego pose ``world_SE3_ego``.

A :class:`PoseTrajectory` holds ``K`` samples at strictly increasing integer nanosecond
timestamps and answers "which transform held at time ``t``?":

- between samples: rotation by slerp (shorter arc), translation linearly, both with the
  same fraction ``(t - t_i) / (t_{i+1} - t_i)``. Interpolation happens in the stored
  direction ``dst_SE3_src``: for ``world_SE3_ego`` the ego origin moves on a straight
  line in ``world``. The inverse of an interpolated pose is *not* the interpolation of the
  inverses, so store a trajectory in the direction it was measured in.
- outside ``[timestamps_ns[0], timestamps_ns[-1]]``: the :data:`ExtrapolationPolicy`
  decides (see :data:`EXTRAPOLATION_POLICIES`).

:meth:`PoseTrajectory.at_many` is vectorised over query times (no Python loop), for
per-point LiDAR de-skew over 100k+ points.

>>> import numpy as np
>>> from calibration.se3 import SE3
>>> world_SE3_ego = PoseTrajectory.from_poses(
...     [0, 100_000_000], [SE3.identity(), SE3.from_yaw_translation(0.2, [1.0, 0.0, 0.0])],
...     dst_frame="world", src_frame="ego")
>>> halfway = world_SE3_ego.at(50_000_000)
>>> round(halfway.yaw_rad, 6), halfway.translation.tolist()
(0.1, [0.5, 0.0, 0.0])
>>> rotations, translations = world_SE3_ego.at_many(np.array([0, 25_000_000, 100_000_000]))
>>> rotations.shape, translations.shape
((3, 3, 3), (3, 3))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from calibration.array_types import NDArrayFloat, NDArrayInt
from calibration.checks import check_array, check_points
from calibration.errors import CalibrationError, ExtrapolationError, ShapeError
from calibration.rotation import (
    check_unit_quaternion,
    orthonormality_error,
    rotation_to_wxyz,
    slerp_wxyz,
    wxyz_to_rotation,
)
from calibration.se3 import DEFAULT_REORTHONORMALIZE_TOL, EXACT_TOL, SE3

ExtrapolationPolicy = Literal["error", "clamp", "linear"]

#: What :meth:`PoseTrajectory.at` does for a time outside the sampled range:
#:
#: - ``"error"`` (default): raise :class:`~calibration.errors.ExtrapolationError` naming
#:   the frame pair, the requested time and the available range.
#: - ``"clamp"``: hold the first / last pose (zero velocity beyond the ends).
#: - ``"linear"``: continue the first / last segment at constant velocity: the translation
#:   linearly and the rotation at a constant angular rate about the segment's axis (slerp
#:   with a fraction outside ``[0, 1]``). Needs at least two samples. Errors grow
#:   quadratically with the distance from the range; keep it to a sweep's duration.
EXTRAPOLATION_POLICIES: tuple[str, ...] = ("error", "clamp", "linear")


def check_extrapolation(policy: str) -> str:
    """Return ``policy`` if it is one of :data:`EXTRAPOLATION_POLICIES`, else raise ``CalibrationError``."""
    if policy not in EXTRAPOLATION_POLICIES:
        raise CalibrationError(f"extrapolation: expected one of {list(EXTRAPOLATION_POLICIES)}, got {policy!r}")
    return policy


def check_timestamps_ns(value: object, name: str = "timestamps_ns") -> NDArrayInt:
    """Return ``value`` as a ``(M,)`` int64 array of nanoseconds.

    Raises:
        ShapeError: not one-dimensional, or not integers (float seconds are a common
            mistake: they would lose precision and be a factor 1e9 off).
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name}: expected (M,) int64 nanoseconds, got {type(value).__name__}") from exc
    if arr.ndim != 1:
        raise ShapeError(f"{name}: expected (M,) int64 nanoseconds, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ShapeError(f"{name}: expected (M,) int64 nanoseconds, got {arr.dtype} values")
    return arr.astype(np.int64, copy=False)


def _check_timestamp_ns(value: object, name: str = "timestamp_ns") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ShapeError(f"{name}: expected an integer number of nanoseconds, got {type(value).__name__} {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class PoseTrajectory:
    """Samples of ``dst_SE3_src`` at strictly increasing times.

    Attributes:
        timestamps_ns: ``(K,)`` int64, strictly increasing, ``K >= 1`` (read-only).
        rotations: ``(K, 3, 3)`` float64 proper rotations (read-only).
        translations: ``(K, 3)`` float64 metres (read-only).
        dst_frame, src_frame: optional frame names, used in error messages;
            :meth:`FrameGraph.add_stamped <calibration.frame_graph.FrameGraph.add_stamped>`
            fills them in.

    Raises:
        ShapeError: wrong shapes, non-integer timestamps, non-finite values.
        CalibrationError: timestamps not strictly increasing (the message names the first
            offending index and both values), or a rotation that is not orthonormal within
            :data:`~calibration.se3.EXACT_TOL` (use :meth:`from_matrices` for
            nearly-orthonormal input).
    """

    timestamps_ns: NDArrayInt
    rotations: NDArrayFloat
    translations: NDArrayFloat
    dst_frame: str | None = None
    src_frame: str | None = None
    _wxyz: NDArrayFloat = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        timestamps = np.array(check_timestamps_ns(self.timestamps_ns), dtype=np.int64)
        count = len(timestamps)
        if count == 0:
            raise ShapeError(f"{self._label()}timestamps_ns: expected at least one sample, got (0,)")
        rotations = np.array(check_array(self.rotations, "rotations", (count, 3, 3), shape_text=f"(K={count}, 3, 3)"))
        translations = np.array(
            check_array(self.translations, "translations", (count, 3), shape_text=f"(K={count}, 3)")
        )
        steps = np.diff(timestamps)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            kind = "duplicate" if steps[i] == 0 else "out-of-order"
            raise CalibrationError(
                f"{self._label()}timestamps_ns: expected strictly increasing, got {kind} timestamps_ns[{i}] = "
                f"{timestamps[i]} and timestamps_ns[{i + 1}] = {timestamps[i + 1]}"
            )
        errors = orthonormality_error(rotations)
        dets = np.linalg.det(rotations)
        bad = (errors > EXACT_TOL) | (dets <= 0)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise CalibrationError(
                f"{self._label()}rotations[{i}]: expected a proper rotation "
                f"(|R^T R - I|_F <= {EXACT_TOL:g}, det = +1), got deviation {errors[i]:.3g} and det "
                f"{dets[i]:.6g}; use PoseTrajectory.from_matrices to re-orthonormalise"
            )
        for name in ("dst_frame", "src_frame"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise CalibrationError(f"{name}: expected a non-empty frame name or None, got {value!r}")
        wxyz = rotation_to_wxyz(rotations)
        for arr in (timestamps, rotations, translations, wxyz):
            arr.setflags(write=False)
        object.__setattr__(self, "timestamps_ns", timestamps)
        object.__setattr__(self, "rotations", rotations)
        object.__setattr__(self, "translations", translations)
        object.__setattr__(self, "_wxyz", wxyz)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_poses(
        cls,
        timestamps_ns: Sequence[int] | NDArrayInt,
        poses: Sequence[SE3],
        *,
        dst_frame: str | None = None,
        src_frame: str | None = None,
    ) -> PoseTrajectory:
        """Build from ``K`` :class:`~calibration.se3.SE3` samples ``dst_SE3_src``."""
        poses = list(poses)
        if not all(isinstance(p, SE3) for p in poses):
            kinds = sorted({type(p).__name__ for p in poses})
            raise CalibrationError(f"poses: expected a sequence of SE3, got {kinds}")
        if not poses:
            raise ShapeError("poses: expected at least one SE3, got an empty sequence")
        return cls(
            timestamps_ns,
            np.stack([p.rotation for p in poses]),
            np.stack([p.translation for p in poses]),
            dst_frame=dst_frame,
            src_frame=src_frame,
        )

    @classmethod
    def from_wxyz(
        cls,
        timestamps_ns: Sequence[int] | NDArrayInt,
        wxyz: NDArrayFloat,
        translations: NDArrayFloat,
        *,
        tol: float = 1e-3,
        dst_frame: str | None = None,
        src_frame: str | None = None,
    ) -> PoseTrajectory:
        """Build from ``(K, 4)`` scalar-first quaternions (nuScenes ``ego_pose``) and ``(K, 3)`` translations.

        Raises:
            CalibrationError: a quaternion norm off by more than ``tol``.
        """
        q = check_array(wxyz, "wxyz", (None, 4), shape_text="(K, 4)")
        q = check_unit_quaternion(q, "wxyz", tol)
        return cls(timestamps_ns, wxyz_to_rotation(q), translations, dst_frame=dst_frame, src_frame=src_frame)

    @classmethod
    def from_matrices(
        cls,
        timestamps_ns: Sequence[int] | NDArrayInt,
        matrices: NDArrayFloat,
        *,
        tol: float = DEFAULT_REORTHONORMALIZE_TOL,
        dst_frame: str | None = None,
        src_frame: str | None = None,
    ) -> PoseTrajectory:
        """Build from ``(K, 4, 4)`` homogeneous matrices, re-orthonormalising each rotation.

        Raises:
            CalibrationError: a rotation off by more than ``tol`` or a bad last row.
        """
        arr = check_array(matrices, "matrices", (None, 4, 4), shape_text="(K, 4, 4)")
        poses = [SE3.from_matrix(m, tol=tol, name=f"matrices[{i}]") for i, m in enumerate(arr)]
        return cls.from_poses(timestamps_ns, poses, dst_frame=dst_frame, src_frame=src_frame)

    # ------------------------------------------------------------------ accessors
    def __len__(self) -> int:
        return len(self.timestamps_ns)

    @property
    def start_ns(self) -> int:
        """First sample time."""
        return int(self.timestamps_ns[0])

    @property
    def end_ns(self) -> int:
        """Last sample time."""
        return int(self.timestamps_ns[-1])

    def pose(self, index: int) -> SE3:
        """Sample ``index`` as an :class:`~calibration.se3.SE3`."""
        return SE3(self.rotations[index], self.translations[index])

    def with_frames(self, dst_frame: str, src_frame: str) -> PoseTrajectory:
        """The same samples labelled ``dst_SE3_src`` with the given frame names."""
        return PoseTrajectory(
            self.timestamps_ns, self.rotations, self.translations, dst_frame=dst_frame, src_frame=src_frame
        )

    def inverse(self) -> PoseTrajectory:
        """The samples of ``src_SE3_dst`` (sample by sample; see the module note on interpolating inverses)."""
        rot_t = np.swapaxes(self.rotations, -1, -2)
        translations = -np.einsum("kij,kj->ki", rot_t, self.translations)
        return PoseTrajectory(
            self.timestamps_ns, rot_t, translations, dst_frame=self.src_frame, src_frame=self.dst_frame
        )

    # ------------------------------------------------------------------ queries
    def at(self, timestamp_ns: int, *, extrapolation: ExtrapolationPolicy = "error") -> SE3:
        """``dst_SE3_src`` at ``timestamp_ns`` (integer nanoseconds).

        Raises:
            ExtrapolationError: outside the sampled range with ``extrapolation="error"``.
        """
        t = _check_timestamp_ns(timestamp_ns)
        rotations, translations = self.at_many(np.array([t], dtype=np.int64), extrapolation=extrapolation)
        return SE3(rotations[0], translations[0])

    def at_many(
        self, timestamps_ns: NDArrayInt, *, extrapolation: ExtrapolationPolicy = "error"
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """``dst_SE3_src`` at ``M`` times, vectorised.

        Args:
            timestamps_ns: ``(M,)`` integer nanoseconds, any order, repeats allowed.
            extrapolation: see :data:`EXTRAPOLATION_POLICIES`.

        Returns:
            ``(rotations (M, 3, 3), translations (M, 3))`` float64. A query equal to a
            sample time returns that sample exactly.

        Raises:
            ExtrapolationError: some times outside the range with ``extrapolation="error"``
                (the message names the frame pair, the first such time, how many there
                are and the range), or ``"linear"`` with a single sample.
        """
        query = check_timestamps_ns(timestamps_ns)
        check_extrapolation(extrapolation)
        start, end = self.timestamps_ns[0], self.timestamps_ns[-1]
        outside = (query < start) | (query > end)
        if extrapolation == "error" and np.any(outside):
            self._raise_extrapolation(query[outside])
        count = len(self.timestamps_ns)
        if count == 1:
            if extrapolation == "linear" and np.any(outside):
                self._raise_extrapolation(query[outside], reason="'linear' extrapolation needs at least 2 samples")
            index = np.zeros(len(query), dtype=np.intp)
            return self.rotations[index], self.translations[index]

        # Segment i covers [t_i, t_{i+1}]; queries outside use the first / last segment.
        index = np.clip(np.searchsorted(self.timestamps_ns, query, side="right") - 1, 0, count - 2)
        t0 = self.timestamps_ns[index]
        # int64 differences first: exact, and no float64 rounding of 1.5e18-sized epochs.
        fraction = (query - t0).astype(np.float64) / (self.timestamps_ns[index + 1] - t0).astype(np.float64)
        if extrapolation == "clamp":
            fraction = np.clip(fraction, 0.0, 1.0)

        q = slerp_wxyz(self._wxyz[index], self._wxyz[index + 1], fraction)
        rotations = wxyz_to_rotation(q)
        f = fraction[:, None]
        translations = (1.0 - f) * self.translations[index] + f * self.translations[index + 1]
        # Exact samples where the query hits one (slerp + matrix round trip is ~1e-16 off).
        at_start, at_end = fraction == 0.0, fraction == 1.0
        rotations[at_start] = self.rotations[index[at_start]]
        translations[at_start] = self.translations[index[at_start]]
        rotations[at_end] = self.rotations[index[at_end] + 1]
        translations[at_end] = self.translations[index[at_end] + 1]
        return rotations, translations

    def transform_points(
        self, points_src: NDArrayFloat, timestamps_ns: NDArrayInt, *, extrapolation: ExtrapolationPolicy = "error"
    ) -> NDArrayFloat:
        """Map each point with the transform at its own time: ``points_dst[i] = dst_SE3_src(t_i) @ points_src[i]``.

        Args:
            points_src: ``(N, 3)`` points; float32 stays float32.
            timestamps_ns: ``(N,)`` per-point times.

        Returns:
            ``(N, 3)`` points in ``dst``.
        """
        pts = check_points(points_src, "points_src", 3, finite=False)
        query = check_timestamps_ns(timestamps_ns)
        if len(query) != len(pts):
            raise ShapeError(f"timestamps_ns: expected ({len(pts)},) to match points_src, got ({len(query)},)")
        rotations, translations = self.at_many(query, extrapolation=extrapolation)
        out = np.einsum("nij,nj->ni", rotations, pts) + translations
        return out.astype(pts.dtype, copy=False) if pts.dtype == np.float32 else out

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: exact (rotation matrices, not quaternions; integer times)."""
        return {
            "dst_frame": self.dst_frame,
            "src_frame": self.src_frame,
            "timestamps_ns": [int(t) for t in self.timestamps_ns],
            "rotations": self.rotations.tolist(),
            "translations_m": self.translations.tolist(),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PoseTrajectory:
        """Inverse of :meth:`to_dict`.

        Raises:
            CalibrationError: a missing key.
        """
        missing = [k for k in ("timestamps_ns", "rotations", "translations_m") if k not in value]
        if missing:
            raise CalibrationError(f"trajectory dict: missing keys {missing}, got keys {sorted(value)}")
        timestamps = np.asarray(value["timestamps_ns"])
        if timestamps.size == 0:  # json has no dtype for an empty list
            timestamps = timestamps.astype(np.int64)
        return cls(
            timestamps,
            np.asarray(value["rotations"], dtype=np.float64),
            np.asarray(value["translations_m"], dtype=np.float64),
            dst_frame=value.get("dst_frame"),
            src_frame=value.get("src_frame"),
        )

    # ------------------------------------------------------------------ internals
    def _label(self) -> str:
        if self.dst_frame is None and self.src_frame is None:
            return ""
        return f"{self.dst_frame or '?'}_SE3_{self.src_frame or '?'}: "

    def _raise_extrapolation(self, outside: NDArrayInt, reason: str | None = None) -> None:
        first = int(outside[0])
        start, end = self.start_ns, self.end_ns
        gap = first - end if first > end else first - start
        pair = self._label() or "trajectory: "
        message = (
            f"{pair}requested timestamp_ns {first} is outside the available range [{start}, {end}] "
            f"({gap / 1e6:+.3f} ms beyond the {'end' if first > end else 'start'}"
            + (f"; {len(outside)} requested times outside" if len(outside) > 1 else "")
            + ")"
        )
        if reason:
            message += f"; {reason}"
        else:
            message += "; pass extrapolation='clamp' or 'linear' to allow it"
        raise ExtrapolationError(message)

    def __repr__(self) -> str:
        pair = f"{self.dst_frame}_SE3_{self.src_frame}, " if self._label() else ""
        return f"PoseTrajectory({pair}{len(self)} samples, [{self.start_ns}, {self.end_ns}] ns)"
