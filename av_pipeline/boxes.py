"""3D cuboids: the product's one box convention, geometry, and converters at the edges.

Inside the product a box is: centre ``(x, y, z)`` in metres (the geometric centre, not the
bottom), size ``(length, width, height)`` in metres with length along the heading, and
``yaw`` in radians about +z from +x, in a named frame whose axes are x forward, y left,
z up (``ego`` or a LiDAR frame). Dataset conventions are converted at readers/writers:

- KITTI ``label_2``: rectified camera frame (x right, y down, z forward), location is the
  bottom centre, dimensions ``h, w, l``, ``ry`` about camera +y.
- nuScenes tables: ``size`` is ``w, l, h``, rotation a ``wxyz`` quaternion, global frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numba
import numpy as np

from calibration import SE3
from calibration.array_types import NDArrayBool, NDArrayFloat
from calibration.checks import check_array
from av_pipeline.errors import ConfigError, ShapeError


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Cuboids:
    """A set of K 3D boxes (struct of arrays) in one named frame.

    Attributes:
        frame: name of the frame the boxes live in (``"ego"``, ``"lidar_top"``, ``"world"``).
        centers_m: ``(K, 3)`` float64 box centres.
        sizes_m: ``(K, 3)`` float64 ``length, width, height``.
        yaws_rad: ``(K,)`` float64 heading about +z from +x.
        labels: ``(K,)`` str class names.
        scores: ``(K,)`` float32 confidences (1.0 for ground truth).
        track_ids: ``(K,)`` int64 track ids (-1 when unknown).
        num_lidar_points: ``(K,)`` int32 LiDAR points inside each box, or ``None``.
        source_labels: ``(K,)`` str class names as the dataset spelled them (``"Car"``,
            ``"vehicle.bus.rigid"``) when ``labels`` were mapped to the product classes
            (:mod:`av_pipeline.taxonomy`), or ``None``.

    >>> boxes = Cuboids.from_arrays("ego", [[10.0, 0.0, 0.8]], [[4.0, 1.8, 1.6]], [0.0], ["car"])
    >>> len(boxes), boxes.corners_m().shape
    (1, (1, 8, 3))
    """

    frame: str
    centers_m: NDArrayFloat
    sizes_m: NDArrayFloat
    yaws_rad: NDArrayFloat
    labels: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    num_lidar_points: np.ndarray | None = field(default=None)
    source_labels: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        centers = check_array(self.centers_m, "centers_m", (None, 3), shape_text="(K, 3)")
        k = len(centers)
        sizes = check_array(self.sizes_m, "sizes_m", (k, 3), shape_text=f"({k}, 3)")
        if (sizes <= 0).any():
            raise ShapeError(f"sizes_m: expected positive length, width, height, got {sizes[(sizes <= 0).any(axis=1)][0].tolist()}")
        yaws = check_array(self.yaws_rad, "yaws_rad", (k,), shape_text=f"({k},)")
        labels = np.asarray(self.labels, dtype=str).reshape(-1) if k else np.zeros(0, dtype="<U1")
        if labels.shape != (k,):
            raise ShapeError(f"labels: expected ({k},) strings, got {labels.shape}")
        scores = check_array(self.scores, "scores", (k,), dtype=np.float32, shape_text=f"({k},)")
        track_ids = np.asarray(self.track_ids)
        if track_ids.shape != (k,) or not np.issubdtype(track_ids.dtype, np.integer) and k:
            raise ShapeError(f"track_ids: expected ({k},) integers, got {track_ids.shape} {track_ids.dtype}")
        object.__setattr__(self, "centers_m", _readonly(centers))
        object.__setattr__(self, "sizes_m", _readonly(sizes))
        object.__setattr__(self, "yaws_rad", _readonly(yaws))
        object.__setattr__(self, "labels", _readonly(labels))
        object.__setattr__(self, "scores", _readonly(scores))
        object.__setattr__(self, "track_ids", _readonly(track_ids.astype(np.int64)))
        if self.num_lidar_points is not None:
            counts = np.asarray(self.num_lidar_points)
            if counts.shape != (k,):
                raise ShapeError(f"num_lidar_points: expected ({k},) integers, got {counts.shape}")
            object.__setattr__(self, "num_lidar_points", _readonly(counts.astype(np.int32)))
        if self.source_labels is not None:
            source = np.asarray(self.source_labels, dtype=str).reshape(-1) if k else np.zeros(0, dtype="<U1")
            if source.shape != (k,):
                raise ShapeError(f"source_labels: expected ({k},) strings, got {source.shape}")
            object.__setattr__(self, "source_labels", _readonly(source))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        frame: str,
        centers_m: Sequence | NDArrayFloat,
        sizes_m: Sequence | NDArrayFloat,
        yaws_rad: Sequence | NDArrayFloat,
        labels: Sequence[str],
        scores: Sequence[float] | None = None,
        track_ids: Sequence[int] | None = None,
        num_lidar_points: Sequence[int] | None = None,
        source_labels: Sequence[str] | None = None,
    ) -> Cuboids:
        """Build from array-likes; scores default to 1, track ids to -1."""
        k = len(labels)
        return cls(
            frame,
            np.asarray(centers_m, dtype=np.float64).reshape(k, 3),
            np.asarray(sizes_m, dtype=np.float64).reshape(k, 3),
            np.asarray(yaws_rad, dtype=np.float64).reshape(k),
            np.asarray(labels, dtype=str).reshape(k),
            np.ones(k, np.float32) if scores is None else np.asarray(scores, np.float32),
            np.full(k, -1, np.int64) if track_ids is None else np.asarray(track_ids, np.int64),
            None if num_lidar_points is None else np.asarray(num_lidar_points, np.int32),
            None if source_labels is None else np.asarray(source_labels, dtype=str),
        )

    @classmethod
    def empty(cls, frame: str) -> Cuboids:
        """No boxes."""
        return cls.from_arrays(frame, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), [])

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.centers_m)

    def subset(self, index: NDArrayBool | np.ndarray | slice) -> Cuboids:
        """The boxes selected by a boolean mask, integer index array or slice."""
        counts = None if self.num_lidar_points is None else self.num_lidar_points[index]
        source = None if self.source_labels is None else self.source_labels[index]
        return Cuboids(
            self.frame,
            self.centers_m[index],
            self.sizes_m[index],
            self.yaws_rad[index],
            self.labels[index],
            self.scores[index],
            self.track_ids[index],
            counts,
            source,
        )

    def with_num_lidar_points(self, counts: np.ndarray) -> Cuboids:
        """A copy with ``num_lidar_points`` set to ``counts`` ``(K,)``."""
        return replace(self, num_lidar_points=np.asarray(counts, dtype=np.int32))

    def transform(self, dst_SE3_src: SE3, dst_frame: str) -> Cuboids:
        """Express the boxes in another frame: ``dst_SE3_src`` maps this box frame to ``dst_frame``.

        Yaw is the heading of the box's rotated +x axis projected onto the destination xy
        plane; roll/pitch of the transform are dropped (boxes stay upright), which is exact
        when ``dst_SE3_src`` only rotates about z.
        """
        centers = dst_SE3_src.transform_points(self.centers_m)
        heading = np.stack([np.cos(self.yaws_rad), np.sin(self.yaws_rad), np.zeros(len(self))], axis=1)
        heading_dst = dst_SE3_src.rotate_vectors(heading)
        yaws = np.arctan2(heading_dst[:, 1], heading_dst[:, 0])
        return replace(self, frame=dst_frame, centers_m=centers, yaws_rad=yaws)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cuboids):
            return NotImplemented
        same_counts = (self.num_lidar_points is None) == (other.num_lidar_points is None) and (
            self.num_lidar_points is None or np.array_equal(self.num_lidar_points, other.num_lidar_points)
        )
        return (
            self.frame == other.frame
            and np.array_equal(self.centers_m, other.centers_m)
            and np.array_equal(self.sizes_m, other.sizes_m)
            and np.array_equal(self.yaws_rad, other.yaws_rad)
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.track_ids, other.track_ids)
            and same_counts
            and _same_optional(self.source_labels, other.source_labels)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def labels_as_given(self) -> np.ndarray:
        """``(K,)`` the dataset's own class names: ``source_labels`` when known, else ``labels``."""
        return self.source_labels if self.source_labels is not None else self.labels

    # ------------------------------------------------------------------ geometry
    def corners_m(self) -> NDArrayFloat:
        """Box corners ``(K, 8, 3)`` in the box frame.

        Order: the four bottom corners counter-clockwise seen from above starting at
        front-left (+l/2, +w/2), then the four top corners in the same order.
        """
        signs_xy = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
        half = self.sizes_m / 2.0
        local = np.zeros((len(self), 8, 3))
        local[:, :4, :2] = signs_xy[None] * half[:, None, :2]
        local[:, 4:, :2] = local[:, :4, :2]
        local[:, :4, 2] = -half[:, 2:3]
        local[:, 4:, 2] = half[:, 2:3]
        c, s = np.cos(self.yaws_rad)[:, None], np.sin(self.yaws_rad)[:, None]
        x = c * local[..., 0] - s * local[..., 1]
        y = s * local[..., 0] + c * local[..., 1]
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centers_m[:, None, :]

    def points_in_boxes(self, points: NDArrayFloat, margin_m: float = 0.0) -> np.ndarray:
        """For each point, the index of the first box that contains it, or -1.

        Args:
            points: ``(N, 3+)`` points in this box set's frame (extra columns ignored); any
                real dtype: float16 (Argoverse 2 sweeps), float32, float64 or integers, all
                compared in float64 (float16 and integers are converted first).
            margin_m: grow every box by this much on each side.

        Returns:
            ``(N,)`` int64 box index per point.
        """
        return _points_in_boxes(points, self, margin_m)[0]

    def count_points(self, points: NDArrayFloat, margin_m: float = 0.0) -> np.ndarray:
        """``(K,)`` int32 number of points inside each box (a point counts for every box containing it).

        Args:
            points: ``(N, 3+)`` points in this box set's frame (extra columns ignored);
                float16 (Argoverse 2 sweeps), float32, float64 or integers. float16 and
                integer points are converted to float32 first (exact: every float16 and
                every integer below 2**24 is a float32); comparisons run in float64.
            margin_m: grow every box by this much on each side.

        Raises:
            ShapeError: not ``(N, 3+)``, or a dtype that is not a real number (complex, object).
        """
        return _points_in_boxes(points, self, margin_m)[1]


def _same_optional(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None) == (b is None) and (a is None or np.array_equal(a, b))


def _points_in_boxes(points: NDArrayFloat, boxes: Cuboids, margin_m: float) -> tuple[np.ndarray, np.ndarray]:
    dtype = getattr(points, "dtype", None)
    if dtype is not None and not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise ShapeError(f"points: expected a real-valued (N, 3+) array (float16/32/64 or integers), got dtype {dtype}")
    pts = check_array(points, "points", (None, None), dtype=None, finite=False, shape_text="(N, 3+)")
    if pts.shape[1] < 3:
        raise ShapeError(f"points: expected (N, 3+) float array, got {pts.shape}")
    if pts.dtype not in (np.float32, np.float64):
        pts = pts.astype(np.float32)  # float16 (AV2 sweeps): the kernel is compiled for float32/float64
    first = np.full(len(pts), -1, dtype=np.int64)
    counts = np.zeros(len(boxes), dtype=np.int32)
    if len(boxes) == 0 or len(pts) == 0:
        return first, counts
    half = boxes.sizes_m / 2.0 + margin_m
    _points_in_boxes_kernel(
        np.ascontiguousarray(pts[:, :3]),
        np.ascontiguousarray(boxes.centers_m),
        np.ascontiguousarray(half),
        np.linalg.norm(half, axis=1),
        np.cos(boxes.yaws_rad),
        np.sin(boxes.yaws_rad),
        first,
        counts,
    )
    return first, counts


@numba.njit(cache=True, nogil=True)
def _points_in_boxes_kernel(xyz, centers, half, radius, cos_yaw, sin_yaw, first, counts):  # pragma: no cover - numba
    """Fill ``first`` (N,) with the lowest index of a box holding each point and ``counts``
    (K,) with points per box. Boxes are visited in order of their centre x, only those whose
    bounding cube can reach the point; coordinates are compared in float64."""
    order = np.argsort(centers[:, 0])
    sorted_x = centers[order, 0]
    reach = radius.max()
    for i in range(xyz.shape[0]):
        px = np.float64(xyz[i, 0])
        py = np.float64(xyz[i, 1])
        pz = np.float64(xyz[i, 2])
        lo = np.searchsorted(sorted_x, px - reach)
        hi = np.searchsorted(sorted_x, px + reach, side="right")
        for j in range(lo, hi):
            k = order[j]
            dx = px - centers[k, 0]
            dy = py - centers[k, 1]
            dz = pz - centers[k, 2]
            if abs(dx) > radius[k] or abs(dy) > radius[k] or abs(dz) > radius[k]:
                continue
            local_x = cos_yaw[k] * dx + sin_yaw[k] * dy
            local_y = -sin_yaw[k] * dx + cos_yaw[k] * dy
            if abs(local_x) <= half[k, 0] and abs(local_y) <= half[k, 1] and abs(dz) <= half[k, 2]:
                counts[k] += 1
                if first[i] < 0 or k < first[i]:
                    first[i] = k


# ---------------------------------------------------------------------- converters
def kitti_camera_boxes_to_cuboids(
    locations_cam: NDArrayFloat,
    dimensions_hwl: NDArrayFloat,
    rotation_y: NDArrayFloat,
    labels: Sequence[str],
    lidar_SE3_camera: SE3,
    frame: str = "lidar",
    scores: Sequence[float] | None = None,
    *,
    height_axis: str = "frame_z",
) -> Cuboids:
    """Convert KITTI ``label_2`` boxes (rectified camera frame) to product cuboids.

    Args:
        locations_cam: ``(K, 3)`` bottom-centre locations in the rectified camera frame (m).
        dimensions_hwl: ``(K, 3)`` height, width, length (m).
        rotation_y: ``(K,)`` ``ry`` about camera +y (rad); ``ry = 0`` faces camera +x.
        labels: ``(K,)`` class names.
        lidar_SE3_camera: maps rectified-camera points to the target frame, i.e.
            ``(R0_rect @ Tr_velo_to_cam)^-1`` for KITTI.
        frame: name of the target frame.
        height_axis: how the centre is found from the bottom centre: ``"camera_y"`` raises it
            by ``h / 2`` along camera -y, then transforms; ``"frame_z"`` transforms the bottom
            centre, then raises it by ``h / 2`` along the target frame's +z (what the KITTI
            tooling does: mmdet3d ``box_camera_to_lidar``, OpenPCDet
            ``boxes3d_kitti_camera_to_lidar``; it reproduces published per-box point
            counts, while ``"camera_y"`` shifts centres sideways by ``h / 2 * sin(tilt)``,
            about 8 mm for KITTI's 0.6 degree camera-LiDAR tilt).

    Returns:
        Cuboids in ``frame``.
    """
    loc = check_array(locations_cam, "locations_cam", (None, 3), shape_text="(K, 3)")
    k = len(loc)
    hwl = check_array(dimensions_hwl, "dimensions_hwl", (k, 3), shape_text=f"({k}, 3)")
    ry = check_array(rotation_y, "rotation_y", (k,), shape_text=f"({k},)")
    if height_axis not in ("camera_y", "frame_z"):
        raise ConfigError(f"height_axis: expected 'camera_y' or 'frame_z', got {height_axis!r}")
    # Heading in the camera frame: ry about +y turns camera +x (ry=0) towards -z for ry>0.
    heading_cam = np.stack([np.cos(ry), np.zeros(k), -np.sin(ry)], axis=1)
    if height_axis == "frame_z":
        centres = lidar_SE3_camera.transform_points(loc)
        centres[:, 2] += hwl[:, 0] / 2.0
    else:
        centre_cam = loc.copy()
        centre_cam[:, 1] -= hwl[:, 0] / 2.0  # camera y points down: the centre is half a height above
        centres = lidar_SE3_camera.transform_points(centre_cam)
    heading = lidar_SE3_camera.rotate_vectors(heading_cam)
    yaws = np.arctan2(heading[:, 1], heading[:, 0])
    sizes = hwl[:, [2, 1, 0]]
    return Cuboids.from_arrays(frame, centres, sizes, yaws, labels, scores)


def cuboids_to_kitti_camera_boxes(
    cuboids: Cuboids, camera_SE3_frame: SE3, *, height_axis: str = "frame_z"
) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat]:
    """Inverse of :func:`kitti_camera_boxes_to_cuboids` (with the same ``height_axis``).

    Returns:
        ``(locations_cam (K, 3) bottom centres, dimensions_hwl (K, 3), rotation_y (K,))``.
    """
    if height_axis not in ("camera_y", "frame_z"):
        raise ConfigError(f"height_axis: expected 'camera_y' or 'frame_z', got {height_axis!r}")
    heading = np.stack([np.cos(cuboids.yaws_rad), np.sin(cuboids.yaws_rad), np.zeros(len(cuboids))], axis=1)
    heading_cam = camera_SE3_frame.rotate_vectors(heading)
    ry = np.arctan2(-heading_cam[:, 2], heading_cam[:, 0])
    hwl = cuboids.sizes_m[:, [2, 1, 0]]
    if height_axis == "frame_z":
        bottom = cuboids.centers_m.copy()
        bottom[:, 2] -= hwl[:, 0] / 2.0
        return camera_SE3_frame.transform_points(bottom), hwl, ry
    loc = camera_SE3_frame.transform_points(cuboids.centers_m).copy()
    loc[:, 1] += hwl[:, 0] / 2.0
    return loc, hwl, ry


def nuscenes_boxes_to_cuboids(
    translations_m: NDArrayFloat,
    sizes_wlh_m: NDArrayFloat,
    rotations_wxyz: NDArrayFloat,
    labels: Sequence[str],
    frame: str,
    track_ids: Sequence[int] | None = None,
    num_lidar_points: Sequence[int] | None = None,
) -> Cuboids:
    """Convert nuScenes ``sample_annotation`` boxes (centre, ``w, l, h``, ``wxyz``) to cuboids.

    Args:
        translations_m: ``(K, 3)`` box centres.
        sizes_wlh_m: ``(K, 3)`` width, length, height.
        rotations_wxyz: ``(K, 4)`` scalar-first quaternions; yaw is taken about +z.
        frame: the frame the boxes are in (``"world"`` for raw nuScenes tables).
    """
    from calibration.rotation import check_unit_quaternion, wxyz_to_rotation

    t = check_array(translations_m, "translations_m", (None, 3), shape_text="(K, 3)")
    k = len(t)
    wlh = check_array(sizes_wlh_m, "sizes_wlh_m", (k, 3), shape_text=f"({k}, 3)")
    q = check_unit_quaternion(check_array(rotations_wxyz, "rotations_wxyz", (k, 4), shape_text=f"({k}, 4)"), "rotations_wxyz")
    rot = wxyz_to_rotation(q)
    yaws = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    return Cuboids.from_arrays(frame, t, wlh[:, [1, 0, 2]], yaws, labels, None, track_ids, num_lidar_points)
