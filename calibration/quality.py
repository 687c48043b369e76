"""Calibration checks: reprojection error against known correspondences, and a targetless
LiDAR-camera alignment score that tells a good extrinsic from a drifted one.

Reprojection error
------------------
:func:`reprojection_rms` projects known 3D points (a calibration target, surveyed
landmarks) through a :class:`~calibration.camera.CameraModel` and compares them with the
pixels where they were observed. Points that do not project (behind the camera, beyond the
distortion model's valid region, non-finite) are counted separately, never dropped silently.

Targetless LiDAR-camera alignment
---------------------------------
After J. Levinson and S. Thrun, "Automatic Online Calibration of Cameras and Lasers",
Robotics: Science and Systems IX (RSS), 2013. Where a LiDAR sees a depth discontinuity, a
camera usually sees an edge; a correct extrinsic puts the one on the other.

1. **LiDAR edges** (:class:`LidarEdges`). Along each scan line (a ring), point ``i`` gets
   the paper's discontinuity strength ``X_i = max(r_{i-1} - r_i, r_{i+1} - r_i, 0) ** gamma``
   with ``gamma = 0.5``, so only the *foreground* point of a jump counts. We keep jumps of at
   least ``min_jump_m``, whose foreground continues for ``min_support_points`` beams on the
   same surface (this drops foliage and rain, where neighbouring ranges scatter), and place
   the edge point between the foreground beam and the background beam (``boundary_fraction``
   of the azimuth step towards the background), at the foreground range: the silhouette lies
   between the two beams, not on the foreground beam. Optionally (``intensity`` given) we add
   reflectance edges, an extension of ours: a jump of at least ``min_contrast`` in the
   intensity *rank* between neighbours on one surface (lane paint, signs). They are near the
   vehicle, where translation shows most.
2. **Image edges** (:class:`EdgeMap`). Sobel gradient magnitude ``E`` of the grayscale image
   (optionally blurred first, ``blur_sigma_px``), divided by the local mean edge strength
   (an approximately Gaussian window of ``contrast_sigma_px``, three box passes) so textured
   regions such as foliage do not outweigh isolated object boundaries, clipped at a
   percentile and raised to ``edge_power``; then the paper's inverse distance transform
   ``D = alpha * E + (1 - alpha) * max_q E(q) * decay ** |p - q|`` (city-block distance,
   computed exactly in two passes per axis). The paper's ``decay = 0.98`` is tuned for
   averaging many frames; one frame needs a sharper peak (default ``0.6``). Two options of
   ours for large, textured camera images: ``thin`` (non-maximum suppression across the
   gradient, as in Canny: texture becomes thin curves, not a carpet that every projected
   point lands on) and ``vertical_edge_power`` (weight ``(|dI/du| / |grad I|) ** p``: a
   LiDAR finds its edges along scan lines, which run roughly horizontally through the
   image, so only edges that cross them, the vertical ones, can match).
3. **Score** (:func:`alignment_score`): ``J = sum_i w_i D(project(camera_SE3_lidar p_i)) /
   sum_i w_i`` over all LiDAR edges (a constant denominator, so candidates compare), with
   ``D`` sampled bilinearly and 0 for points that do not land in the image.
4. **Drift check** (:func:`calibration_drift_check`): as in the paper, score a grid of small
   perturbations around the extrinsic; the share that scores at least as high is a
   p-value-like statistic (0 for a sharp maximum, large for a drifted calibration). It is
   local: a drift of several grid steps can sit on a local maximum of its own.
5. **Whole rig** (:func:`rig_alignment_scores`): the LiDAR's extrinsic ``ego_SE3_lidar``
   against every camera of a rig at once (:class:`RigView` per camera): the sum of the
   cameras' ``J``. A change of the LiDAR's mounting moves its edges in all cameras, each
   constraining other directions, and all edges count together.

Perturbations of one camera act in the camera frame: ``candidate =
delta.compose(camera_SE3_lidar)``, a rotation about the camera centre followed by a shift in
camera axes (x right, y down, z forward). Perturbations of a LiDAR in a rig act in the LiDAR
frame: ``candidate = ego_SE3_lidar.compose(delta)``.

Scan lines
----------
Give ``ring`` when the sensor reports it (nuScenes, most ROS drivers). Without it,
:func:`scan_lines_from_azimuth` recovers lines from the stored order, which for the KITTI
Velodyne files is laser by laser, each laser's points in increasing azimuth: a new line
starts wherever the azimuth falls by more than pi from one point to the next (the wrap
from +pi to -pi). Within a line, neighbours are consecutive points by azimuth whose gap is
below ``max_gap_steps`` times the typical step (a wider gap is a missing return, not a
neighbour).

Defaults and known limits
-------------------------
The defaults were tuned on the shared KITTI object frame 000001 (Velodyne HDL-64E,
0.18 degrees between beams, 0.4 degrees between lasers). There the true extrinsic scores
above every one of 3 x 1000 random perturbations per magnitude of 0.5, 1, 2 degrees and 5,
10, 20 cm (smallest margins 0.9% at 5 cm, 1.6% at 20 cm; 0.4% at 20 cm for one set of 500
in the benchmark); the paper's own settings do not (see
``benchmarks/alignment_score.py``), and without reflectance edges 5 cm is not reliably
resolved.

Parameters depend on the sensor. The shared nuScenes keyframe (HDL-32E: 0.33 degrees = 7.3
px between beams and 1.33 degrees = 29 px between rings at f = 1266 px; 1600 x 900 JPEGs;
driving at 9.2 m/s) needs ``EdgeMap.from_image(image, blur_sigma_px=1, thin=True,
vertical_edge_power=4)`` and ``LidarEdges.from_points(..., min_jump_m=1, support_tol_m=0.2,
boundary_fraction=0.1, max_range_m=80)``, and the transform of the sweep, which nuScenes
motion-compensated to the LiDAR timestamp (the end of the turn), into each camera at its own
image time (the ego poses at both times, as mmdet3d's ``lidar2cam``). With these,
:func:`rig_alignment_scores` ranks the true LiDAR extrinsic above every perturbation of
0.5, 1, 2 degrees and 5, 10, 20 cm (750 random directions each: smallest margin 1.8%; a
local search over the sphere of directions, 0.5 to 10 degrees and 5 cm to 1 m, finds none
within 1.4%), the rig score peaks at the recorded image times (2% lower at +-1 ms), and the
static chain without ego motion fails. Measured on that frame, not general rules:
``boundary_fraction`` matters at the pixel level (the true extrinsic scores highest at 0.1
to 0.125; the rig test passes from 0.05 to 0.125 and fails at 0 and 0.2, which move each
edge by 0.7 px), and ``vertical_edge_power = 4`` makes the KITTI frame fail (best of 500
perturbations 8 to 14% above the truth; why is not established), so it is not a default.
One nuScenes camera alone still does not rank its own extrinsic: 130 to 250 edges, each
pinned only to a 7.3 px step and a 29 px ring gap, leave perturbations that outscore the
truth in every camera, the best by 3.7 to 23% (numbers in
``tests/calibration/test_quality.py``).
Score a rig jointly, or sum many frames (same candidates) per camera.

A toy scene: a wall 8 m ahead on the right, a wall 18 m ahead on the left, an image
whose brightness steps where the near wall ends.

>>> import numpy as np
>>> from calibration.camera import CameraModel
>>> from calibration.se3 import SE3
>>> azimuth, elevation = np.meshgrid(np.arange(-0.5, 0.5, 0.01), np.linspace(-0.1, 0.1, 9))
>>> forward_m = np.where(azimuth < 0, 8.0, 18.0)            # LiDAR frame: x forward, y left
>>> points_lidar = np.stack([forward_m, forward_m * np.tan(azimuth), forward_m * np.tan(elevation)], -1)
>>> ring = np.repeat(np.arange(9), azimuth.shape[1])
>>> camera = CameraModel(64, 48, 50.0, 50.0, 31.5, 23.5)
>>> camera_SE3_lidar = SE3(np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]), np.zeros(3))
>>> image = np.zeros((48, 64), dtype=np.uint8)
>>> image[:, 32:] = 200                                      # the near wall is bright
>>> edge_map = EdgeMap.from_image(image)
>>> lidar_edges = LidarEdges.from_points(points_lidar.reshape(-1, 3), ring)
>>> len(lidar_edges)                                         # one edge per ring
9
>>> shifted = SE3.from_yaw_translation(0.0, [0.3, 0.0, 0.0]).compose(camera_SE3_lidar)
>>> good = alignment_score(edge_map, lidar_edges, camera, camera_SE3_lidar)
>>> bool(good > alignment_score(edge_map, lidar_edges, camera, shifted))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from calibration.array_types import NDArrayBool, NDArrayFloat, NDArrayFloat32, NDArrayInt, NDArrayUInt8
from calibration.camera import BEHIND_CAMERA, OUTSIDE_IMAGE, OUTSIDE_VALID_REGION, VISIBLE, CameraModel
from calibration.checks import check_array, check_points
from calibration.errors import CalibrationError, ShapeError
from calibration.se3 import SE3

__all__ = [
    "DriftCheck",
    "EdgeMap",
    "LidarEdges",
    "RankedExtrinsic",
    "ReprojectionResult",
    "RigView",
    "alignment_score",
    "alignment_scores",
    "calibration_drift_check",
    "inverse_distance_transform",
    "perturbation_grid",
    "random_perturbations",
    "rank_extrinsics",
    "reprojection_rms",
    "rig_alignment_scores",
    "scan_lines_from_azimuth",
]

#: LiDAR edge kinds in :attr:`LidarEdges.kind`.
DEPTH_EDGE = 0
INTENSITY_EDGE = 1

# Candidate-points per chunk in alignment_scores: keeps the (K, M, 3) temporaries ~50 MB.
_CHUNK_POINTS = 1_000_000


# ================================================================== reprojection error
@dataclass(frozen=True, eq=False)
class ReprojectionResult:
    """Reprojection error of ``N`` points (read-only arrays).

    Attributes:
        residuals_px: ``(N, 2)`` projected minus observed pixel, ``(du, dv)``; NaN rows for
            points that did not project.
        errors_px: ``(N,)`` Euclidean residual length in pixels; NaN where not projected.
        status: ``(N,)`` uint8 :class:`~calibration.camera.ProjectionStatus` per point.
            ``OUTSIDE_IMAGE`` points *did* project (to a pixel off the image) and have a
            residual; ``BEHIND_CAMERA``, ``OUTSIDE_VALID_REGION`` and ``NOT_FINITE`` did not.
        rms_px: root mean square of ``errors_px`` over the projected points (NaN if none).
        max_px: largest ``errors_px`` over the projected points (NaN if none).
        num_projected: points with a residual.
        num_not_projected: points without one (behind the camera, outside the valid region,
            not finite): these are reported, not averaged in.
        num_outside_image: projected points that land outside the image rectangle.
    """

    residuals_px: NDArrayFloat
    errors_px: NDArrayFloat
    status: NDArrayUInt8
    rms_px: float
    max_px: float
    num_projected: int
    num_not_projected: int
    num_outside_image: int

    def __post_init__(self) -> None:
        for name in ("residuals_px", "errors_px", "status"):
            getattr(self, name).setflags(write=False)

    @property
    def projected(self) -> NDArrayBool:
        """``(N,)`` bool: the point has a residual (``VISIBLE`` or ``OUTSIDE_IMAGE``)."""
        return (self.status == VISIBLE) | (self.status == OUTSIDE_IMAGE)

    @property
    def num_behind_camera(self) -> int:
        """Points with camera ``z <= 0`` (a sign error in the extrinsic shows up here)."""
        return int(np.count_nonzero(self.status == BEHIND_CAMERA))

    @property
    def num_outside_valid_region(self) -> int:
        """Points beyond the distortion model's valid region."""
        return int(np.count_nonzero(self.status == OUTSIDE_VALID_REGION))


def reprojection_rms(
    camera: CameraModel,
    camera_SE3_target: SE3,
    points_target: NDArrayFloat,
    pixels: NDArrayFloat,
) -> ReprojectionResult:
    """Reprojection error of known 3D points against their observed pixels.

    Args:
        camera: intrinsics (any distortion model; :meth:`CameraModel.project` is used).
        camera_SE3_target: maps target-frame points to the camera frame.
        points_target: ``(N, 3)`` points in the target frame, metres.
        pixels: ``(N, 2)`` observed pixels ``(u, v)``, OpenCV pixel-centre convention.

    Returns:
        :class:`ReprojectionResult`; ``residuals_px = projected - observed``, the same sign
        as ``cv2.projectPoints(...) - pixels``.

    Raises:
        ShapeError: ``points_target`` not ``(N, 3)``, ``pixels`` not ``(N, 2)`` with the
            same ``N``, or non-finite pixels.

    >>> camera = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)
    >>> points = np.array([[0.0, 0.0, 2.0], [0.2, 0.1, 4.0], [0.0, 0.0, -1.0]])
    >>> result = reprojection_rms(camera, SE3.identity(), points, [[320.5, 239.5], [344.5, 253.0], [0.0, 0.0]])
    >>> round(result.rms_px, 6), result.num_projected, result.num_not_projected
    (1.0, 2, 1)
    """
    points = check_points(points_target, "points_target", 3, finite=False)
    observed = check_array(pixels, "pixels", (None, 2), shape_text="(N, 2)")
    if len(observed) != len(points):
        raise ShapeError(
            f"pixels: expected ({len(points)}, 2) float array to match points_target, got {observed.shape}"
        )
    projection = camera.project(camera_SE3_target.transform_points(points.astype(np.float64, copy=False)))
    status = np.array(projection.status, dtype=np.uint8)
    has_pixel = (status == VISIBLE) | (status == OUTSIDE_IMAGE)
    residuals = np.full((len(points), 2), np.nan)
    residuals[has_pixel] = projection.uv_px[has_pixel] - observed[has_pixel]
    errors = np.hypot(residuals[:, 0], residuals[:, 1])
    num_projected = int(np.count_nonzero(has_pixel))
    if num_projected:
        rms = float(np.sqrt(np.mean(errors[has_pixel] ** 2)))
        worst = float(np.max(errors[has_pixel]))
    else:
        rms = worst = math.nan
    return ReprojectionResult(
        residuals_px=residuals,
        errors_px=errors,
        status=status,
        rms_px=rms,
        max_px=worst,
        num_projected=num_projected,
        num_not_projected=len(points) - num_projected,
        num_outside_image=int(np.count_nonzero(status == OUTSIDE_IMAGE)),
    )


# ================================================================== image edges
def _grayscale(image: np.ndarray) -> NDArrayFloat32:
    if image.ndim == 3:
        return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image.astype(np.float32)


def _sobel(gray: NDArrayFloat32) -> tuple[NDArrayFloat32, NDArrayFloat32]:
    """Sobel derivatives ``(d/du, d/dv)`` (unnormalised: 8 x the central difference)."""
    padded = np.pad(gray, 1, mode="edge")
    h, w = gray.shape

    def at(dr: int, dc: int) -> NDArrayFloat32:
        return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return gx, gy


def _smooth(gray: NDArrayFloat32, sigma_px: float) -> NDArrayFloat32:
    """Separable Gaussian blur with a sampled kernel of radius ``ceil(3 sigma)`` (edge padding)."""
    radius = int(math.ceil(3.0 * sigma_px))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_px) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    out = gray
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for k, tap in enumerate(taps):
            acc += tap * np.take(padded, np.arange(k, k + size), axis=axis)
        out = acc
    return out


def _thin(strength: NDArrayFloat32, gx: NDArrayFloat32, gy: NDArrayFloat32) -> NDArrayFloat32:
    """Non-maximum suppression (Canny's thinning): keep a pixel only where its strength is at
    least that of both neighbours across the edge, the gradient direction quantised to 0, 45,
    90 or 135 degrees; elsewhere 0."""
    padded = np.pad(strength, 1)
    h, w = strength.shape

    def at(dr: int, dc: int) -> NDArrayFloat32:
        return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    angle = np.mod(np.degrees(np.arctan2(gy, gx)), 180.0)  # v points down: 45 degrees is (+u, +v)
    across_u = (angle < 22.5) | (angle >= 157.5)
    diagonal = (angle >= 22.5) & (angle < 67.5)
    across_v = (angle >= 67.5) & (angle < 112.5)
    anti_diagonal = (angle >= 112.5) & (angle < 157.5)
    keep = across_u & (strength >= at(0, -1)) & (strength >= at(0, 1))
    keep |= across_v & (strength >= at(-1, 0)) & (strength >= at(1, 0))
    keep |= diagonal & (strength >= at(-1, -1)) & (strength >= at(1, 1))
    keep |= anti_diagonal & (strength >= at(-1, 1)) & (strength >= at(1, -1))
    return np.where(keep, strength, np.float32(0.0)).astype(np.float32)


def _box_blur_along(image: NDArrayFloat32, radius: int, axis: int) -> NDArrayFloat32:
    """Mean over ``2 radius + 1`` samples along ``axis`` (edge padding), via a cumulative sum."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius + 1, radius)
    cumulative = np.cumsum(np.pad(image, pad, mode="edge"), axis=axis, dtype=np.float64)
    width = 2 * radius + 1
    upper = [slice(None), slice(None)]
    lower = [slice(None), slice(None)]
    upper[axis] = slice(width, None)
    lower[axis] = slice(0, -width)
    return ((cumulative[tuple(upper)] - cumulative[tuple(lower)]) / width).astype(np.float32)


def _gaussian_blur(image: NDArrayFloat32, sigma_px: float) -> NDArrayFloat32:
    """Approximately Gaussian blur: three box passes per axis (O(1) per pixel, numpy only).
    With box radius ``r = round(sigma_px)`` the standard deviation is ``sqrt(r (r + 1))``,
    about ``sigma_px + 0.5``."""
    radius = max(1, int(round(sigma_px)))
    out = image
    for axis in (0, 1):
        for _ in range(3):
            out = _box_blur_along(out, radius, axis)
    return out


def _max_decay_along(values: NDArrayFloat32, decay: float, axis: int) -> NDArrayFloat32:
    """``out[i] = max_j values[j] * decay ** |i - j|`` along ``axis`` (exact: one pass each way)."""
    out = np.moveaxis(values.copy(), axis, 0)
    decay32 = np.float32(decay)
    for i in range(1, out.shape[0]):
        np.maximum(out[i], decay32 * out[i - 1], out=out[i])
    for i in range(out.shape[0] - 2, -1, -1):
        np.maximum(out[i], decay32 * out[i + 1], out=out[i])
    return np.moveaxis(out, 0, axis)


def inverse_distance_transform(edges: NDArrayFloat32, alpha: float, decay: float) -> NDArrayFloat32:
    """Levinson & Thrun's inverse distance transform of an edge image.

    ``D(p) = alpha * E(p) + (1 - alpha) * max_q E(q) * decay ** d(p, q)`` with ``d`` the
    city-block distance in pixels. The max over ``q`` separates into a 1-D pass along rows
    and one along columns (``decay ** (|dx| + |dy|)`` factorises), each exact in two sweeps,
    so the cost is ``O(H W)``.

    Args:
        edges: ``(H, W)`` edge strength ``E >= 0``.
        alpha: weight of the edge itself, in ``[0, 1]``.
        decay: per-pixel falloff, in ``(0, 1)``.

    Returns:
        ``(H, W)`` float32 ``D``.

    >>> edges = np.zeros((1, 5), dtype=np.float32); edges[0, 2] = 1.0
    >>> inverse_distance_transform(edges, 0.5, 0.5).round(3).tolist()
    [[0.125, 0.25, 1.0, 0.25, 0.125]]
    """
    e = np.asarray(edges, dtype=np.float32)
    spread = _max_decay_along(_max_decay_along(e, decay, 1), decay, 0)
    return (np.float32(alpha) * e + np.float32(1.0 - alpha) * spread).astype(np.float32)


@dataclass(frozen=True, eq=False)
class EdgeMap:
    """Image edges spread by the inverse distance transform; built once per image, then
    sampled for any number of candidate extrinsics.

    Attributes:
        score_map: ``(H, W)`` float32 ``D`` of the module docstring (read-only).
        edges: ``(H, W)`` float32 normalised edge strength ``E`` in ``[0, 1]`` (read-only).
    """

    score_map: NDArrayFloat32
    edges: NDArrayFloat32

    def __post_init__(self) -> None:
        score = np.array(check_array(self.score_map, "score_map", (None, None), dtype=np.float32, shape_text="(H, W)"))
        edges = np.array(check_array(self.edges, "edges", score.shape, dtype=np.float32, shape_text=f"{score.shape}"))
        if score.shape[0] < 2 or score.shape[1] < 2:
            raise ShapeError(f"score_map: expected at least 2 x 2 pixels, got {score.shape}")
        score.setflags(write=False)
        edges.setflags(write=False)
        object.__setattr__(self, "score_map", score)
        object.__setattr__(self, "edges", edges)

    @classmethod
    def from_image(
        cls,
        image: np.ndarray,
        *,
        alpha: float = 1.0 / 3.0,
        decay: float = 0.6,
        contrast_sigma_px: float = 20.0,
        contrast_floor: float = 0.05,
        clip_percentile: float = 90.0,
        edge_power: float = 0.5,
        blur_sigma_px: float = 0.0,
        thin: bool = False,
        vertical_edge_power: float = 0.0,
        mask: NDArrayBool | None = None,
    ) -> EdgeMap:
        """Build from a decoded image.

        Args:
            image: ``(H, W)`` grayscale or ``(H, W, 3+)`` RGB(A) image, uint8 (any numeric
                dtype works; only relative values matter).
            alpha: weight of the edge itself in ``D`` (paper: 1/3).
            decay: per-pixel falloff of the spread term (paper: 0.98 for many frames).
            contrast_sigma_px: Gaussian radius of the local mean edge strength each pixel's
                edge is divided by; ``0`` turns the normalisation off.
            contrast_floor: added to the local mean (in units of the clip value), so flat
                regions are not amplified.
            clip_percentile: edge strengths are divided by this percentile and clipped at 1.
            edge_power: exponent on the clipped strength (below 1 flattens strong edges, so
                many moderate edges count, not a few very strong ones).
            blur_sigma_px: Gaussian blur of the grayscale image before the gradient (JPEG
                blocks, sensor noise); ``0``: none.
            thin: keep only ridge pixels of the edge strength (non-maximum suppression across
                the gradient, as in Canny), so texture becomes thin curves instead of a carpet
                and the spread term measures the distance to the edge line.
            vertical_edge_power: weight each pixel by ``(|dI/du| / |grad I|) **
                vertical_edge_power``: ``0`` keeps every orientation; larger values keep the
                edges a horizontal scan line crosses (vertical ones), the only ones a LiDAR's
                along-ring edges can be matched with, and drop horizontal texture.
                With ``thin`` or a ``vertical_edge_power`` the clip percentile is taken over
                the remaining (non-zero) edge pixels.
            mask: optional ``(H, W)`` bool, True where edges count (e.g. False on the ego
                vehicle's hood or the sky).

        Raises:
            ShapeError: wrong image or mask shape.
            CalibrationError: a parameter out of range.
        """
        img = np.asarray(image)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] < 3) or img.shape[0] < 3 or img.shape[1] < 3:
            raise ShapeError(f"image: expected (H, W) or (H, W, 3) array, got {img.shape}")
        if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
            raise ShapeError(f"image: expected a numeric array, got dtype {img.dtype}")
        if not 0.0 <= alpha <= 1.0:
            raise CalibrationError(f"EdgeMap alpha: expected a value in [0, 1], got {alpha!r}")
        if not 0.0 < decay < 1.0:
            raise CalibrationError(f"EdgeMap decay: expected a value in (0, 1), got {decay!r}")
        if not 0.0 < clip_percentile <= 100.0:
            raise CalibrationError(f"EdgeMap clip_percentile: expected a value in (0, 100], got {clip_percentile!r}")
        if contrast_sigma_px < 0 or contrast_floor <= 0 or edge_power <= 0:
            raise CalibrationError(
                "EdgeMap: expected contrast_sigma_px >= 0, contrast_floor > 0, edge_power > 0, got "
                f"{contrast_sigma_px!r}, {contrast_floor!r}, {edge_power!r}"
            )
        if blur_sigma_px < 0 or vertical_edge_power < 0:
            raise CalibrationError(
                "EdgeMap: expected blur_sigma_px >= 0 and vertical_edge_power >= 0, got "
                f"{blur_sigma_px!r}, {vertical_edge_power!r}"
            )
        gray = _grayscale(img)
        if blur_sigma_px > 0:
            gray = _smooth(gray, blur_sigma_px)
        gx, gy = _sobel(gray)
        magnitude = np.hypot(gx, gy) / np.float32(8.0)
        scale = float(np.percentile(magnitude, clip_percentile))
        strength = magnitude / np.float32(scale if scale > 0 else 1.0)
        if contrast_sigma_px > 0:
            local_mean = _gaussian_blur(strength, contrast_sigma_px) + np.float32(contrast_floor)
            strength = strength / local_mean
            scale = float(np.percentile(strength, clip_percentile))
            strength = strength / np.float32(scale if scale > 0 else 1.0)
        if thin or vertical_edge_power > 0:
            if thin:
                strength = _thin(strength, gx, gy)
            if vertical_edge_power > 0:
                crossing = np.abs(gx) / np.maximum(np.hypot(gx, gy), np.float32(1e-12))
                strength = strength * crossing ** np.float32(vertical_edge_power)
            remaining = strength[strength > 0]
            scale = float(np.percentile(remaining, clip_percentile)) if len(remaining) else 1.0
            strength = strength / np.float32(scale if scale > 0 else 1.0)
        edges = np.minimum(strength, np.float32(1.0)) ** np.float32(edge_power)
        if mask is not None:
            valid = check_array(mask, "mask", magnitude.shape, dtype=bool, shape_text=f"{magnitude.shape}")
            edges = edges * valid
        edges = edges.astype(np.float32)
        return cls(inverse_distance_transform(edges, alpha, decay), edges)

    @property
    def height_px(self) -> int:
        return int(self.score_map.shape[0])

    @property
    def width_px(self) -> int:
        return int(self.score_map.shape[1])

    def sample(self, uv_px: NDArrayFloat) -> NDArrayFloat:
        """Bilinear samples of :attr:`score_map` at ``(N, 2)`` pixels ``(u, v)``.

        Returns ``(N,)`` float64; 0 for NaN pixels and pixels outside ``[0, W-1] x [0, H-1]``.
        """
        uv = np.asarray(uv_px, dtype=np.float64)
        h, w = self.score_map.shape
        u = uv[:, 0]
        v = uv[:, 1]
        inside = (u >= 0.0) & (u <= w - 1) & (v >= 0.0) & (v <= h - 1)  # NaN compares False
        out = np.zeros(len(uv))
        u = u[inside]
        v = v[inside]
        col = np.minimum(u.astype(np.int64), w - 2)
        row = np.minimum(v.astype(np.int64), h - 2)
        fu = u - col
        fv = v - row
        m = self.score_map
        top = m[row, col] * (1.0 - fu) + m[row, col + 1] * fu
        bottom = m[row + 1, col] * (1.0 - fu) + m[row + 1, col + 1] * fu
        out[inside] = top * (1.0 - fv) + bottom * fv
        return out


# ================================================================== LiDAR edges
def scan_lines_from_azimuth(points: NDArrayFloat) -> NDArrayInt:
    """Scan-line ids for points stored laser by laser in increasing azimuth (KITTI).

    A new line starts wherever ``atan2(y, x)`` drops by more than pi between consecutive
    stored points (the wrap from +pi to -pi).

    Args:
        points: ``(N, 3+)`` points in the LiDAR frame, in the order the file stores them.

    Returns:
        ``(N,)`` int64 line ids ``0, 1, ...`` in stored order.

    >>> scan_lines_from_azimuth(np.array([[1, -1, 0], [1, 0, 0], [-1, 0.1, 0], [-1, -0.1, 0], [1, 0, 0]])).tolist()
    [0, 0, 0, 1, 1]
    """
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ShapeError(f"points: expected (N, 3+) float array, got {arr.shape}")
    pts = check_points(arr[:, :3], "points", 3, finite=False)
    azimuth = np.arctan2(pts[:, 1], pts[:, 0])
    starts = np.zeros(len(pts), dtype=np.int64)
    starts[1:] = np.diff(azimuth) < -np.pi
    return np.cumsum(starts)


def _shifted(values: np.ndarray, k: int, fill: object) -> np.ndarray:
    """``out[i] = values[i + k]``, ``fill`` where ``i + k`` is outside."""
    out = np.full_like(values, fill)
    if k > 0:
        out[:-k] = values[k:]
    elif k < 0:
        out[-k:] = values[:k]
    else:
        out[:] = values
    return out


@dataclass(frozen=True, eq=False)
class LidarEdges:
    """Edge points of one LiDAR sweep, in the LiDAR frame (read-only arrays).

    Attributes:
        points_lidar: ``(M, 3)`` float64 edge positions, metres.
        weights: ``(M,)`` float64 weights ``w_i > 0`` (``X_i`` of the paper for depth edges).
        kind: ``(M,)`` uint8, :data:`DEPTH_EDGE` or :data:`INTENSITY_EDGE`.
    """

    points_lidar: NDArrayFloat
    weights: NDArrayFloat
    kind: NDArrayUInt8

    def __post_init__(self) -> None:
        pts = check_points(self.points_lidar, "points_lidar", 3).astype(np.float64, copy=False)
        weights = check_array(self.weights, "weights", (len(pts),), shape_text=f"({len(pts)},)")
        kind = check_array(self.kind, "kind", (len(pts),), dtype=np.uint8, shape_text=f"({len(pts)},)")
        if np.any(weights < 0):
            raise CalibrationError("LidarEdges weights: expected values >= 0")
        for name, arr in (("points_lidar", pts), ("weights", weights), ("kind", kind)):
            arr = np.array(arr)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.weights)

    @classmethod
    def from_points(
        cls,
        points: NDArrayFloat,
        ring: NDArrayInt | None = None,
        intensity: NDArrayFloat | None = None,
        *,
        min_jump_m: float = 2.0,
        exponent: float = 0.5,
        min_support_points: int = 1,
        support_tol_m: float = 0.05,
        support_tol_steps: float = 2.0,
        boundary_fraction: float = 0.25,
        min_range_m: float = 1.0,
        max_range_m: float = 20.0,
        max_gap_steps: float = 2.5,
        seam_azimuth_rad: float | None = None,
        min_contrast: float = 0.5,
        intensity_weight: float = 1.0,
    ) -> LidarEdges:
        """Extract edge points from one sweep.

        Args:
            points: ``(N, 3+)`` points in the LiDAR frame (x, y, z first), metres; other
                columns are ignored.
            ring: ``(N,)`` scan-line (laser) id per point; ``None``: recovered with
                :func:`scan_lines_from_azimuth` from the stored order.
            intensity: ``(N,)`` reflectance/intensity; when given, reflectance edges are
                added (any scale: only ranks are used).
            min_jump_m: smallest range jump ``r_neighbour - r_i`` that makes a depth edge.
            exponent: ``gamma`` of ``X_i = jump ** gamma`` (paper: 0.5); also applied to the
                rank contrast of reflectance edges.
            min_support_points: the foreground must continue for this many beams away from
                the jump, each within ``support_tol_m + support_tol_steps * r * step`` of the
                previous (``step`` the typical azimuth step): a solid surface, not foliage.
            boundary_fraction: edge placed this fraction of the way from the foreground beam
                towards the background beam (0 = on the foreground point).
            min_range_m, max_range_m: points outside this range are dropped before
                neighbours are linked (``min`` also drops the zero-range "no return" rows
                some formats store), so a depth edge needs its foreground *and* its
                background within range: silhouettes against a far background become gaps.
                Measured on the KITTI frame: a 5 cm translation margin of 1.75% with this
                rule, -0.14% when edges up to 20 m keep backgrounds at any range.
            max_gap_steps: neighbours further apart than this many typical azimuth steps are
                not neighbours (missing returns).
            seam_azimuth_rad: an azimuth where the sweep starts and ends, if it is not at
                +-pi; neighbours across it are not linked (their times differ by a sweep).
            min_contrast: smallest intensity-rank difference (in ``[0, 1]``) of a
                reflectance edge.
            intensity_weight: weight factor of reflectance edges relative to depth edges.

        Returns:
            :class:`LidarEdges` (possibly empty).

        Raises:
            ShapeError: ``points`` not ``(N, 3+)``; ``ring``/``intensity`` not ``(N,)``.
            CalibrationError: a parameter out of range.
        """
        arr = np.asarray(points)
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise ShapeError(f"points: expected (N, 3+) float array, got {arr.shape}")
        pts = check_points(arr[:, :3], "points", 3, finite=False).astype(np.float64)
        n_in = len(pts)
        if ring is None:
            line = scan_lines_from_azimuth(pts)
        else:
            line = check_array(ring, "ring", (n_in,), dtype=np.int64, shape_text=f"({n_in},)")
        if intensity is not None:
            inten = check_array(intensity, "intensity", (n_in,), finite=False, shape_text=f"({n_in},)")
        else:
            inten = np.zeros(n_in)
        if min_jump_m <= 0 or exponent <= 0 or min_support_points < 0 or not 0.0 <= boundary_fraction <= 1.0:
            raise CalibrationError(
                "LidarEdges: expected min_jump_m > 0, exponent > 0, min_support_points >= 0, "
                f"0 <= boundary_fraction <= 1, got {min_jump_m!r}, {exponent!r}, {min_support_points!r}, "
                f"{boundary_fraction!r}"
            )
        if not 0.0 <= min_range_m < max_range_m or max_gap_steps <= 1.0:
            raise CalibrationError(
                f"LidarEdges: expected 0 <= min_range_m < max_range_m and max_gap_steps > 1, got "
                f"{min_range_m!r}, {max_range_m!r}, {max_gap_steps!r}"
            )

        rng = np.linalg.norm(pts, axis=1)
        keep = np.isfinite(rng) & (rng >= min_range_m) & (rng <= max_range_m) & np.isfinite(inten)
        pts, line, rng, inten = pts[keep], line[keep], rng[keep], inten[keep]
        azimuth = np.arctan2(pts[:, 1], pts[:, 0])
        order = np.lexsort((azimuth, line))
        pts, line, rng, azimuth, inten = pts[order], line[order], rng[order], azimuth[order], inten[order]
        n = len(pts)
        empty = cls(np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.uint8))
        if n < 3:
            return empty

        step = np.diff(azimuth)
        same_line = line[1:] == line[:-1]
        if not same_line.any():
            return empty
        typical_step = float(np.median(step[same_line]))
        if not typical_step > 0:
            return empty
        linked = same_line & (step > 0) & (step < max_gap_steps * typical_step)
        if seam_azimuth_rad is not None:
            relative = np.angle(np.exp(1j * (azimuth - seam_azimuth_rad)))
            linked &= ~((relative[:-1] < 0) & (relative[1:] >= 0))
        link_next = np.append(linked, False)  # i and i+1 are neighbours
        link_prev = _shifted(link_next, -1, False)  # i-1 and i are neighbours
        unit = pts / rng[:, None]
        support_tol = support_tol_m + support_tol_steps * rng * typical_step

        edge_points = []
        edge_weights = []
        edge_kinds = []
        for side in (-1, 1):  # which neighbour is the background: i-1 or i+1
            to_background = link_next if side == 1 else link_prev
            to_foreground = link_prev if side == 1 else link_next
            jump = np.where(to_background, _shifted(rng, side, np.nan) - rng, -np.inf)
            is_edge = jump >= min_jump_m
            previous_range = rng
            for k in range(1, min_support_points + 1):
                is_edge &= _shifted(to_foreground, -(k - 1) * side, False)
                support_range = _shifted(rng, -k * side, np.nan)
                is_edge &= np.abs(support_range - previous_range) <= support_tol
                previous_range = support_range
            idx = np.flatnonzero(is_edge)
            direction = (1.0 - boundary_fraction) * unit[idx] + boundary_fraction * unit[idx + side]
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            edge_points.append(direction * rng[idx, None])
            edge_weights.append(jump[idx] ** exponent)
            edge_kinds.append(np.full(len(idx), DEPTH_EDGE, dtype=np.uint8))

        if intensity is not None:
            # mid-rank (empirical CDF, ties share a rank) so the threshold means the same for
            # any sensor's scale
            values, inverse, counts = np.unique(inten, return_inverse=True, return_counts=True)
            rank = ((np.cumsum(counts) - 0.5 * counts) / n)[inverse]
            rank_next = _shifted(rank, 1, np.nan)
            contrast = np.abs(rank_next - rank)
            same_surface = np.abs(_shifted(rng, 1, np.nan) - rng) <= support_tol
            is_edge = link_next & same_surface & (contrast >= min_contrast)
            # a step, not a single bright or dark beam: both sides keep their level
            is_edge &= link_prev & _shifted(link_next, 1, False)
            is_edge &= np.abs(_shifted(rank, -1, np.nan) - rank) < 0.5 * contrast
            is_edge &= np.abs(_shifted(rank, 2, np.nan) - rank_next) < 0.5 * contrast
            idx = np.flatnonzero(is_edge)
            direction = unit[idx] + unit[idx + 1]
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            edge_points.append(direction * (0.5 * (rng[idx] + rng[idx + 1]))[:, None])
            edge_weights.append(intensity_weight * contrast[idx] ** exponent)
            edge_kinds.append(np.full(len(idx), INTENSITY_EDGE, dtype=np.uint8))

        return cls(np.concatenate(edge_points), np.concatenate(edge_weights), np.concatenate(edge_kinds))


# ================================================================== scoring
def _candidate_arrays(candidates: Sequence[SE3]) -> tuple[NDArrayFloat, NDArrayFloat]:
    candidates = [candidates] if isinstance(candidates, SE3) else list(candidates)
    rotations = np.array([c.rotation for c in candidates]).reshape(-1, 3, 3)
    translations = np.array([c.translation for c in candidates]).reshape(-1, 3)
    return rotations, translations


def alignment_scores(
    edge_map: EdgeMap,
    lidar_edges: LidarEdges,
    camera: CameraModel,
    candidates: Sequence[SE3],
) -> NDArrayFloat:
    """Alignment score ``J`` of many candidate ``camera_SE3_lidar`` extrinsics at once.

    Args:
        edge_map: the image's :class:`EdgeMap` (its size must match ``camera``).
        lidar_edges: the sweep's :class:`LidarEdges`.
        camera: intrinsics; projection through :meth:`CameraModel.project`.
        candidates: ``K`` extrinsics ``camera_SE3_lidar``.

    Returns:
        ``(K,)`` float64 scores, higher is better aligned; 0 when there are no edges.

    Raises:
        ShapeError: the edge map and the camera disagree on the image size.
    """
    if (edge_map.width_px, edge_map.height_px) != (camera.width_px, camera.height_px):
        raise ShapeError(
            f"edge_map: expected an image of {camera.width_px} x {camera.height_px} px to match the camera, "
            f"got {edge_map.width_px} x {edge_map.height_px}"
        )
    rotations, translations = _candidate_arrays(candidates)
    count = len(rotations)
    total_weight = float(np.sum(lidar_edges.weights))
    if count == 0 or len(lidar_edges) == 0 or total_weight <= 0:
        return np.zeros(count)
    points = lidar_edges.points_lidar
    weights = lidar_edges.weights
    per_chunk = max(1, _CHUNK_POINTS // len(points))
    scores = np.empty(count)
    for start in range(0, count, per_chunk):
        stop = min(start + per_chunk, count)
        k = stop - start
        # (k*3, 3) @ (3, M): one BLAS call for all candidates of the chunk
        points_camera = (rotations[start:stop].reshape(-1, 3) @ points.T).reshape(k, 3, -1).transpose(0, 2, 1)
        points_camera = points_camera + translations[start:stop, None, :]
        projection = camera.project(points_camera.reshape(-1, 3))
        uv = np.where((projection.status == VISIBLE)[:, None], projection.uv_px, np.nan)
        sampled = edge_map.sample(uv).reshape(k, len(points))
        scores[start:stop] = sampled @ weights / total_weight
    return scores


def alignment_score(edge_map: EdgeMap, lidar_edges: LidarEdges, camera: CameraModel, camera_SE3_lidar: SE3) -> float:
    """Alignment score ``J`` of one extrinsic (module docstring); higher is better.

    ``J = sum_i w_i D(project(camera_SE3_lidar p_i)) / sum_i w_i`` over all LiDAR edges;
    edges that do not land in the image contribute 0.
    """
    return float(alignment_scores(edge_map, lidar_edges, camera, [camera_SE3_lidar])[0])


@dataclass(frozen=True, eq=False)
class RankedExtrinsic:
    """One candidate of :func:`rank_extrinsics`.

    Attributes:
        index: its position in the candidate list.
        score: its alignment score.
        camera_SE3_lidar: the candidate itself.
    """

    index: int
    score: float
    camera_SE3_lidar: SE3


def rank_extrinsics(
    edge_map: EdgeMap,
    lidar_edges: LidarEdges,
    camera: CameraModel,
    candidates: Sequence[SE3],
) -> list[RankedExtrinsic]:
    """Score candidate extrinsics and sort them, best first (ties keep input order)."""
    candidate_list = list(candidates)
    scores = alignment_scores(edge_map, lidar_edges, camera, candidate_list)
    order = np.argsort(-scores, kind="stable")
    return [RankedExtrinsic(int(i), float(scores[i]), candidate_list[i]) for i in order]


# ================================================================== whole rig
@dataclass(frozen=True, eq=False)
class RigView:
    """One camera of a rig, for :func:`rig_alignment_scores`.

    Attributes:
        edge_map: the camera image's :class:`EdgeMap`.
        camera: its intrinsics (image size must match ``edge_map``).
        camera_SE3_ego: maps points of the ego frame *at the sweep time* into this camera
            *at its image time*: ``ego_SE3_camera.inverse()`` for a still vehicle; for a
            moving one composed with the ego motion between the two times
            (``camera(t_image)_SE3_ego(t_sweep)``; at 9 m/s and 40 ms they differ by 0.37 m).
        name: label used in messages.
    """

    edge_map: EdgeMap
    camera: CameraModel
    camera_SE3_ego: SE3
    name: str = "camera"

    def __post_init__(self) -> None:
        if (self.edge_map.width_px, self.edge_map.height_px) != (self.camera.width_px, self.camera.height_px):
            raise ShapeError(
                f"RigView {self.name!r} edge_map: expected an image of {self.camera.width_px} x "
                f"{self.camera.height_px} px to match the camera, got {self.edge_map.width_px} x {self.edge_map.height_px}"
            )


def rig_alignment_scores(
    views: Sequence[RigView],
    lidar_edges: LidarEdges,
    candidates: Sequence[SE3],
) -> NDArrayFloat:
    """Alignment score of candidate LiDAR extrinsics ``ego_SE3_lidar`` against every camera
    of a rig at once.

    ``J_rig = sum_c sum_i w_i D_c(project_c(camera_SE3_ego_c ego_SE3_lidar p_i)) / sum_i w_i``:
    the sum over the cameras of :func:`alignment_scores` with ``camera_SE3_lidar =
    camera_SE3_ego_c.compose(candidate)``. A change of the LiDAR's mounting moves its edges
    in every camera at once, each camera constraining other directions (a pitch of the rig
    is a pitch for the front camera and mostly a roll for the side ones), and the edges of
    all cameras count together: on one nuScenes keyframe this ranks the LiDAR extrinsic
    where no single camera can rank its own (module docstring).

    Perturb a LiDAR extrinsic as ``ego_SE3_lidar.compose(delta)``: a rotation about the
    LiDAR's centre, then a shift along its axes.

    Args:
        views: the rig's cameras (:class:`RigView`); cameras may overlap.
        lidar_edges: the sweep's :class:`LidarEdges`, in the LiDAR frame.
        candidates: ``K`` extrinsics ``ego_SE3_lidar``.

    Returns:
        ``(K,)`` float64 scores, higher is better; 0 without views or edges.
    """
    view_list = list(views)
    for view in view_list:
        if not isinstance(view, RigView):
            raise CalibrationError(f"views: expected RigView items, got {type(view).__name__}")
    candidate_list = [candidates] if isinstance(candidates, SE3) else list(candidates)
    scores = np.zeros(len(candidate_list))
    for view in view_list:
        scores += alignment_scores(
            view.edge_map, lidar_edges, view.camera, [view.camera_SE3_ego.compose(c) for c in candidate_list]
        )
    return scores


# ================================================================== perturbations, drift
def _rotation_about(axis: NDArrayFloat, angle_rad: float) -> NDArrayFloat:
    """Rodrigues' formula for a unit ``axis``."""
    kx = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle_rad) * kx + (1.0 - math.cos(angle_rad)) * (kx @ kx)


def _rotation_vector_to_matrix(rotation_vector: NDArrayFloat) -> NDArrayFloat:
    angle = float(np.linalg.norm(rotation_vector))
    if angle == 0.0:
        return np.eye(3)
    return _rotation_about(rotation_vector / angle, angle)


def perturbation_grid(rotation_step_rad: float, translation_step_m: float) -> list[SE3]:
    """Levinson & Thrun's neighbourhood: every combination of ``{-1, 0, +1}`` steps on the
    three rotation-vector components and the three translation components (camera axes),
    the identity excluded: ``3 ** 6 - 1 = 728`` deltas.

    Apply as ``delta.compose(camera_SE3_lidar)``.

    >>> len(perturbation_grid(np.radians(0.5), 0.05))
    728
    """
    if rotation_step_rad < 0 or translation_step_m < 0:
        raise CalibrationError(
            f"perturbation_grid: expected steps >= 0, got {rotation_step_rad!r}, {translation_step_m!r}"
        )
    deltas = []
    for combo in np.stack(np.meshgrid(*[[-1, 0, 1]] * 6, indexing="ij"), axis=-1).reshape(-1, 6):
        if not combo.any():
            continue
        rotation = _rotation_vector_to_matrix(combo[:3] * rotation_step_rad)
        deltas.append(SE3(rotation, combo[3:] * translation_step_m))
    return deltas


def random_perturbations(
    count: int, *, rotation_rad: float = 0.0, translation_m: float = 0.0, seed: int = 0
) -> list[SE3]:
    """``count`` deltas, each a rotation by exactly ``rotation_rad`` about a random axis and
    a shift by exactly ``translation_m`` along an independent random direction (camera
    axes). Directions are uniform on the sphere; ``seed`` makes them repeatable.

    Apply as ``delta.compose(camera_SE3_lidar)``.

    >>> deltas = random_perturbations(3, translation_m=0.05, seed=1)
    >>> [round(float(np.linalg.norm(d.translation)), 6) for d in deltas]
    [0.05, 0.05, 0.05]
    """
    if count < 0 or rotation_rad < 0 or translation_m < 0:
        raise CalibrationError(
            f"random_perturbations: expected count, rotation_rad, translation_m >= 0, got "
            f"{count!r}, {rotation_rad!r}, {translation_m!r}"
        )
    generator = np.random.default_rng(seed)
    axes = generator.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    directions = generator.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return [SE3(_rotation_about(a, rotation_rad), d * translation_m) for a, d in zip(axes, directions)]


@dataclass(frozen=True, eq=False)
class DriftCheck:
    """Result of :func:`calibration_drift_check`.

    Attributes:
        score: alignment score of the checked extrinsic.
        perturbation_scores: ``(K,)`` scores of the perturbed extrinsics (read-only).
        fraction_better: share of perturbations scoring at least ``score``: a p-value-like
            statistic, 0 when the extrinsic is a strict local maximum (Levinson & Thrun's
            ``F_c`` is ``1 - fraction_better``).
        best_score: highest score among the extrinsic and its perturbations.
        best_camera_SE3_lidar: the extrinsic that scored ``best_score``.
        drifted: ``fraction_better > max_fraction_better``.
    """

    score: float
    perturbation_scores: NDArrayFloat
    fraction_better: float
    best_score: float
    best_camera_SE3_lidar: SE3
    drifted: bool

    def __post_init__(self) -> None:
        self.perturbation_scores.setflags(write=False)


def calibration_drift_check(
    edge_map: EdgeMap,
    lidar_edges: LidarEdges,
    camera: CameraModel,
    camera_SE3_lidar: SE3,
    *,
    perturbations: Sequence[SE3] | None = None,
    max_fraction_better: float = 0.05,
) -> DriftCheck:
    """Is ``camera_SE3_lidar`` still the best alignment in its neighbourhood?

    Scores the extrinsic and ``delta.compose(camera_SE3_lidar)`` for every delta; a
    calibration that drifted has neighbours that align better.

    Args:
        edge_map, lidar_edges, camera: one frame's image edges, LiDAR edges, intrinsics.
        camera_SE3_lidar: the extrinsic under test.
        perturbations: deltas in the camera frame; default
            ``perturbation_grid(radians(0.5), 0.05)`` (728 neighbours).
        max_fraction_better: ``drifted`` when more than this share of the neighbours scores
            at least as high.

    Returns:
        :class:`DriftCheck`.
    """
    if not 0.0 <= max_fraction_better <= 1.0:
        raise CalibrationError(f"max_fraction_better: expected a value in [0, 1], got {max_fraction_better!r}")
    return calibration_drift_check_frames(
        camera, [(edge_map, lidar_edges, camera_SE3_lidar)], perturbations=perturbations, max_fraction_better=max_fraction_better
    )


def calibration_drift_check_frames(
    camera: CameraModel,
    observations: Sequence[tuple[EdgeMap, LidarEdges, SE3]],
    *,
    perturbations: Sequence[SE3] | None = None,
    max_fraction_better: float = 0.05,
) -> DriftCheck:
    """:func:`calibration_drift_check` over several frames of one camera: scores are summed.

    One frame gives a few hundred edges; summing the score of each candidate over frames
    (each frame's candidate is ``delta.compose(camera_SE3_lidar)`` of that frame, so ego
    motion between frames does not matter) makes the check much less noisy, as Levinson &
    Thrun do over a window of frames.

    Args:
        camera: the camera's intrinsics.
        observations: per frame ``(edge_map, lidar_edges, camera_SE3_lidar)``, the
            extrinsic being checked at that frame (e.g. motion-compensated to the image time).
        perturbations: deltas in the camera frame (default: the 728-neighbour grid of
            0.5 degrees and 5 cm).
        max_fraction_better: see :func:`calibration_drift_check`.

    Returns:
        :class:`DriftCheck` with summed scores; ``best_camera_SE3_lidar`` is the best
        candidate of the first frame.

    Raises:
        CalibrationError: no observations, or ``max_fraction_better`` outside ``[0, 1]``.
    """
    if not 0.0 <= max_fraction_better <= 1.0:
        raise CalibrationError(f"max_fraction_better: expected a value in [0, 1], got {max_fraction_better!r}")
    if not observations:
        raise CalibrationError("observations: expected at least one (edge_map, lidar_edges, camera_SE3_lidar), got none")
    deltas = list(perturbations) if perturbations is not None else perturbation_grid(math.radians(0.5), 0.05)
    total = np.zeros(len(deltas) + 1)
    first_candidates: list[SE3] = []
    for edge_map, lidar_edges, camera_SE3_lidar in observations:
        candidates = [camera_SE3_lidar] + [delta.compose(camera_SE3_lidar) for delta in deltas]
        first_candidates = first_candidates or candidates
        total += alignment_scores(edge_map, lidar_edges, camera, candidates)
    score = float(total[0])
    others = np.array(total[1:])
    fraction = float(np.mean(others >= score)) if len(others) else 0.0
    best = int(np.argmax(total))
    return DriftCheck(
        score=score,
        perturbation_scores=others,
        fraction_better=fraction,
        best_score=float(total[best]),
        best_camera_SE3_lidar=first_candidates[best],
        drifted=fraction > max_fraction_better,
    )
