"""Line-of-sight visibility of a cuboid from a sensor, estimated from the other boxes and
clusters of the same frame: how much of an object a LiDAR or camera could see.

An onboard stack is right to drop an object it cannot see. Whether it could see it is a
geometric question: from the sensor's origin, is the object behind something else? Here the
"something else" is what the frame already knows in ``ego`` (boxes of both models and the
LiDAR clusters no box explains), so the estimate needs no sweep or image and runs per log on
the :class:`~av_pipeline.mining.records.MiningFrame` records.

Method (after the visibility flags of nuScenes and KITTI's occlusion levels, but measured,
not labelled): 27 sample points fill the cuboid on a 3x3x3 grid at -1/3, 0 and +1/3 of its
length, width and height. A sample is **seen** when the segment from the sensor's origin to
it crosses none of the occluders, each shrunk by ``shrink_m`` on every side (box fits are
loose; a box grazing the line of sight is not a wall). The object's own box never occludes
it. Visibility is the seen share of the samples (of those in the image, for a camera).

What it cannot know: occluders no box or cluster stands for (a wall longer than a cluster,
an object neither model reports and the LiDAR does not see); there it says "visible" where
the object may be hidden, so triggers combine it with other evidence.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ShapeError

#: Sample grid as fractions of (length, width, height): 3x3x3 at -1/3, 0, +1/3.
SAMPLE_GRID = np.stack(np.meshgrid(*[np.array([-1.0, 0.0, 1.0]) / 3.0] * 3, indexing="ij"), axis=-1).reshape(-1, 3)


def box_samples(center_m: np.ndarray, size_m: np.ndarray, yaw_rad: float) -> np.ndarray:
    """``(27, 3)`` sample points filling one cuboid (same frame and units as its centre)."""
    local = SAMPLE_GRID * np.asarray(size_m, dtype=np.float64)
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    rotated = np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]])
    return rotated + np.asarray(center_m, dtype=np.float64)[:3]


def occluders(
    boxes: Sequence[Cuboids] = (),
    clusters=None,
    exclude_center_m: np.ndarray | None = None,
    exclude_radius_m: float = 0.0,
) -> np.ndarray:
    """``(J, 7)`` occluder boxes ``x, y, z, length, width, height, yaw`` in ``ego`` (metres, radians).

    Args:
        boxes: cuboid sets of the frame (e.g. onboard and shadow), all in ``ego``.
        clusters: :class:`~av_pipeline.mining.clusters.PointClusters` of the frame (axis-aligned
            boxes, yaw 0), or ``None``.
        exclude_center_m: ``(2+,)`` leave out occluders centred within ``exclude_radius_m``
            (bird's-eye metres) of this point: the object itself, as any model boxed it.
        exclude_radius_m: see above.
    """
    rows = []
    for cuboids in boxes:
        if cuboids is not None and len(cuboids):
            rows.append(np.column_stack([cuboids.centers_m, cuboids.sizes_m, cuboids.yaws_rad]))
    if clusters is not None and len(clusters):
        rows.append(np.column_stack([clusters.centers_m, clusters.extents_m, np.zeros(len(clusters))]))
    out = np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 7))
    if exclude_center_m is not None and len(out):
        keep = np.hypot(*(out[:, :2] - np.asarray(exclude_center_m, dtype=np.float64)[:2]).T) > exclude_radius_m
        out = out[keep]
    return out


def segments_blocked(origin_m: np.ndarray, targets_m: np.ndarray, occluder_boxes: np.ndarray, shrink_m: float = 0.1) -> np.ndarray:
    """``(N,)`` bool: whether the segment from ``origin_m`` to each target crosses an occluder.

    Slab test in each occluder's own frame; the segment's last 1% (the target itself) does
    not count, so a target on an occluder's surface is not hidden by it.

    Args:
        origin_m: ``(3,)`` sensor origin.
        targets_m: ``(N, 3)`` points, same frame.
        occluder_boxes: ``(J, 7)`` from :func:`occluders`.
        shrink_m: metres taken off every side of every occluder (boxes keep at least 2 cm).

    Raises:
        ShapeError: wrong shapes.
    """
    origin = np.asarray(origin_m, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets_m, dtype=np.float64)
    occ = np.asarray(occluder_boxes, dtype=np.float64)
    if origin.shape != (3,) or targets.ndim != 2 or targets.shape[1] != 3 or occ.ndim != 2 or occ.shape[1] != 7:
        raise ShapeError(f"segments_blocked: origin {origin.shape}, targets {targets.shape}, occluders {occ.shape}; expected (3,), (N, 3), (J, 7)")
    if not len(occ) or not len(targets):
        return np.zeros(len(targets), dtype=bool)
    half = np.maximum(occ[:, 3:6] / 2 - shrink_m, 0.01)  # (J, 3)
    c, s = np.cos(occ[:, 6]), np.sin(occ[:, 6])

    def local(points: np.ndarray) -> np.ndarray:  # (..., 3) -> (..., J, 3) in each occluder's frame
        d = points[..., None, :] - occ[:, :3]
        return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], axis=-1)

    o = local(origin)  # (J, 3)
    direction = local(targets) - o  # (N, J, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / direction
        t2 = (half - o) / direction
    # a segment parallel to a slab crosses it at every t when inside, never when outside
    inside = np.abs(o) <= half
    t_lo = np.where(direction == 0, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    t_hi = np.where(direction == 0, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    enter = np.maximum(t_lo.max(axis=-1), 0.0)
    leave = np.minimum(t_hi.min(axis=-1), 0.99)
    return (enter <= leave).any(axis=-1)


def visibility(
    origin_m: np.ndarray,
    center_m: np.ndarray,
    size_m: np.ndarray,
    yaw_rad: float,
    occluder_boxes: np.ndarray,
    shrink_m: float = 0.1,
    in_view: np.ndarray | None = None,
) -> float:
    """Share of a cuboid's 27 samples with a free line of sight from ``origin_m`` (see module doc).

    Args:
        origin_m: ``(3,)`` sensor origin in ``ego`` (metres).
        center_m, size_m, yaw_rad: the cuboid in ``ego`` (metres, radians).
        occluder_boxes: ``(J, 7)`` from :func:`occluders`, without the cuboid itself.
        shrink_m: see :func:`segments_blocked`.
        in_view: ``(27,)`` bool, samples the sensor can see at all (e.g. inside a camera's
            image); the share is over these. ``None``: all.

    Returns:
        In ``[0, 1]``; NaN when no sample is in view.
    """
    samples = box_samples(center_m, size_m, yaw_rad)
    view = np.ones(len(samples), dtype=bool) if in_view is None else np.asarray(in_view, dtype=bool)
    if not view.any():
        return float("nan")
    blocked = segments_blocked(origin_m, samples[view], occluder_boxes, shrink_m)
    return float(1.0 - blocked.mean())


__all__ = ["SAMPLE_GRID", "box_samples", "occluders", "segments_blocked", "visibility"]
