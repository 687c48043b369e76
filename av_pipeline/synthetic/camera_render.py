"""Camera images by ray casting: one ray per pixel through the camera model (distortion
included), simple shading.

Cameras are global-shutter and triggered at the sweep's ``timestamp_ns``, so they see the
actors at that instant (:class:`~av_pipeline.synthetic.raycast.PosedActors`). Per-pixel rays are unprojected once per
camera and cached. Shading: albedo times (ambient + Lambert sun), a sky gradient for
misses, and a little haze with distance. Pixels outside the lens model's valid region are
black. Besides the RGB image, the renderer returns which actor each pixel shows, so 2D
ground truth (modal boxes, visible pixel counts) comes from the image itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.synthetic.materials import ALBEDO
from av_pipeline.synthetic.raycast import PosedActors, StaticScene
from calibration import SE3, RigCamera

#: Direction towards the sun (world frame): high in the south-west.
SUN_DIRECTION = np.array([-0.45, -0.35, 0.82]) / np.linalg.norm([-0.45, -0.35, 0.82])
_SKY_HORIZON = np.array([0.80, 0.86, 0.93], dtype=np.float32)
_SKY_ZENITH = np.array([0.42, 0.60, 0.88], dtype=np.float32)
_HAZE_DISTANCE_M = 700.0


@dataclass(frozen=True, eq=False)
class CameraRender:
    """One rendered image.

    Attributes:
        rgb: ``(H, W, 3)`` uint8.
        actor: ``(H, W)`` int64 index of the actor each pixel shows (-1: none).
    """

    rgb: np.ndarray
    actor: np.ndarray


#: Pixel block size of the grid used to find the pixels an actor may cover.
_CELL_PX = 16
#: The 12 edges of a box, as corner index pairs of :meth:`Cuboids.corners_m` order.
BOX_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]])


def box_corners(centers: np.ndarray, sizes: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """``(K, 8, 3)`` corners of upright boxes (order of :meth:`Cuboids.corners_m`)."""
    signs = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1], [1, -1, 1]], dtype=np.float64)
    local = signs[None] * (np.asarray(sizes, dtype=np.float64)[:, None, :] / 2.0)
    c, s = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + np.asarray(centers, dtype=np.float64)[:, None, :]


def clipped_box_points(corners_camera: np.ndarray, min_depth_m: float = 0.1, samples_per_edge: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Points on the edges of boxes ``(K, 8, 3)`` (camera frame) in front of ``min_depth_m``.

    With ``samples_per_edge = 2`` these are the corners in front plus where edges cross the
    near plane: their pinhole projections span each box's (undistorted) silhouette exactly.
    More samples follow the edges' curved images under lens distortion.

    Returns:
        ``(M, 3)`` points and ``(M,)`` the box each belongs to (ascending).
    """
    k = len(corners_camera)
    fractions = np.linspace(0.0, 1.0, samples_per_edge)
    a, b = corners_camera[:, BOX_EDGES[:, 0]], corners_camera[:, BOX_EDGES[:, 1]]  # (K, 12, 3)
    sampled = a[:, :, None, :] + fractions[None, None, :, None] * (b - a)[:, :, None, :]  # (K, 12, S, 3)
    za, zb = a[..., 2], b[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.clip((min_depth_m - za) / (zb - za), 0.0, 1.0)
    crossing_points = a + f[..., None] * (b - a)  # (K, 12, 3)
    crossing = (za - min_depth_m) * (zb - min_depth_m) < 0
    points = np.concatenate([sampled.reshape(k, -1, 3), np.where(crossing[..., None], crossing_points, np.nan)], axis=1)
    owner = np.repeat(np.arange(k), points.shape[1])
    points = points.reshape(-1, 3)
    keep = points[:, 2] >= min_depth_m - 1e-9  # NaN rows drop out here
    return points[keep], owner[keep]


class CameraRenderer:
    """Cached per-pixel rays of one rig camera."""

    def __init__(self, camera: RigCamera) -> None:
        model = camera.model
        self.camera = camera
        self.height, self.width = model.height_px, model.width_px
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        rays = model.unproject(np.column_stack([u.ravel(), v.ravel()]), np.ones(u.size))
        valid = np.isfinite(rays).all(axis=1)
        pixel_index = np.flatnonzero(valid)
        rays = rays[valid]
        # pixels grouped by 16x16 block, with each block's extent in undistorted normalized coordinates
        cell = (v.ravel()[pixel_index] // _CELL_PX) * ((self.width + _CELL_PX - 1) // _CELL_PX) + u.ravel()[pixel_index] // _CELL_PX
        order = np.argsort(cell, kind="stable")
        self.pixel_index = pixel_index[order]
        normalized = rays[order, :2]
        self.rays_camera = (rays[order] / np.linalg.norm(rays[order], axis=1, keepdims=True)).astype(np.float32)
        cells, starts = np.unique(cell[order], return_index=True)
        self._cell_starts = np.append(starts, len(order))
        self._cell_lo = np.minimum.reduceat(normalized, starts, axis=0)
        self._cell_hi = np.maximum.reduceat(normalized, starts, axis=0)

    def _pixels_near(self, corners_camera: np.ndarray) -> np.ndarray:
        """Ray rows (into :attr:`rays_camera`) whose pixels may show one of the boxes ``(K, 8, 3)``."""
        points, owner = clipped_box_points(corners_camera)
        if len(points) == 0:
            return np.zeros(0, dtype=np.int64)
        xy = points[:, :2] / points[:, 2:3]
        boxes, starts = np.unique(owner, return_index=True)
        lo, hi = np.minimum.reduceat(xy, starts, axis=0), np.maximum.reduceat(xy, starts, axis=0)  # (B, 2)
        overlap = (self._cell_hi[None] >= lo[:, None]) & (self._cell_lo[None] <= hi[:, None])  # (B, cells, 2)
        cells = np.flatnonzero(np.all(overlap, axis=2).any(axis=0))
        if len(cells) == 0:
            return np.zeros(0, dtype=np.int64)
        starts, ends = self._cell_starts[cells], self._cell_starts[cells + 1]
        lengths = ends - starts
        return np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())

    def render(self, world_SE3_ego: SE3, static: StaticScene, posed: PosedActors, actor_sizes: np.ndarray) -> CameraRender:
        """Render the camera at the ego pose ``world_SE3_ego``; ``actor_sizes`` are the ``(A, 3)`` sizes of all actors."""
        from av_pipeline.synthetic.kernels import camera_rays, shade_into

        world_SE3_camera = world_SE3_ego.compose(self.camera.ego_SE3_camera)
        origin = world_SE3_camera.translation
        rays = camera_rays(self.rays_camera, world_SE3_camera.rotation, origin)
        directions = rays[:, 3:]
        hits = static.cast_packed(rays)
        t_m, material, normal = hits.t_m, hits.material, hits.normal
        actor = np.full(len(t_m), -1, dtype=np.int64)
        if not posed.empty:
            corners_world = box_corners(posed.centers, actor_sizes[posed.index], posed.yaws)
            corners_camera = world_SE3_camera.inverse().transform_points(corners_world.reshape(-1, 3)).reshape(-1, 8, 3)
            rows = self._pixels_near(corners_camera)
            if len(rows):
                near = posed.cast(origin, directions[rows])
                closer = near.t_m < t_m[rows]
                idx = rows[closer]
                t_m[idx], material[idx], normal[idx], actor[idx] = near.t_m[closer], near.material[closer], near.normal[closer], near.actor[closer]
        image = np.zeros((self.height * self.width, 3), dtype=np.uint8)
        shade_into(
            image, self.pixel_index, t_m, material, normal, directions, ALBEDO,
            SUN_DIRECTION.astype(np.float32), _SKY_HORIZON, _SKY_ZENITH, np.float32(_HAZE_DISTANCE_M),
        )  # fmt: skip
        actor_image = np.full(self.height * self.width, -1, dtype=np.int64)
        actor_image[self.pixel_index] = actor
        return CameraRender(image.reshape(self.height, self.width, 3), actor_image.reshape(self.height, self.width))
