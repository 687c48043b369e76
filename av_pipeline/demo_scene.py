"""A small ray-cast street scene for the calibration demo: LiDAR sweep and camera images.

Geometry is cast with Open3D's ``RaycastingScene``: a ground plane with lane markings, a few
boxes standing in for vehicles and buildings, and poles. The LiDAR is a 64-beam spinning
scanner; cameras are rendered by casting one ray per pixel through the camera model
(distortion included), so projecting the LiDAR points back onto the images is an
end-to-end check of the calibration chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.boxes import Cuboids
from calibration import SE3
from calibration.rig import RigCamera

#: Box colours (RGB 0-1) by label; the ground is grey asphalt with white lane markings.
_COLOURS = {"car": (0.75, 0.1, 0.1), "van": (0.9, 0.9, 0.95), "building": (0.62, 0.55, 0.45), "pole": (0.25, 0.25, 0.25)}
_SKY = np.array([0.62, 0.78, 0.95])


@dataclass(frozen=True)
class DemoScene:
    """Boxes (in ``ego``) over the ground plane ``z = 0``."""

    objects: Cuboids

    @classmethod
    def default(cls) -> DemoScene:
        """A fixed street: cars ahead and beside, a van behind, buildings both sides, poles."""
        rows = [
            # label, centre xyz, length width height, yaw
            ("car", (12.0, 0.3, 0.78), (4.5, 1.9, 1.56), 0.05),
            ("car", (24.0, -3.4, 0.75), (4.2, 1.8, 1.5), 0.0),
            ("car", (7.0, 3.6, 0.72), (4.4, 1.85, 1.44), 3.1),
            ("van", (-11.0, 0.4, 1.2), (5.8, 2.1, 2.4), 0.02),
            ("car", (2.0, -6.0, 0.75), (4.3, 1.8, 1.5), 1.57),
            ("building", (20.0, 14.0, 5.0), (30.0, 10.0, 10.0), 0.0),
            ("building", (15.0, -15.0, 4.0), (24.0, 9.0, 8.0), 0.0),
            ("building", (-20.0, 13.0, 6.0), (16.0, 8.0, 12.0), 0.0),
            ("pole", (9.0, 6.2, 3.0), (0.25, 0.25, 6.0), 0.0),
            ("pole", (18.0, -6.4, 3.0), (0.25, 0.25, 6.0), 0.0),
            ("pole", (-4.0, -6.3, 3.0), (0.25, 0.25, 6.0), 0.0),
        ]
        labels = [r[0] for r in rows]
        return cls(
            Cuboids.from_arrays(
                "ego", [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], labels, track_ids=range(len(rows))
            )
        )

    def _raycaster(self):  # -> (open3d RaycastingScene, ground geometry id)
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        corners = self.objects.corners_m()
        # Triangles of a box with the corner order of Cuboids.corners_m (bottom 0-3, top 4-7).
        faces = np.array(
            [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
             [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]],
            dtype=np.uint32,
        )
        for k in range(len(self.objects)):
            scene.add_triangles(corners[k].astype(np.float32), faces)
        half = 200.0
        ground = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], np.float32)
        ground_id = scene.add_triangles(ground, np.array([[0, 1, 2], [0, 2, 3]], np.uint32))
        return scene, ground_id

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cast ``(N, 3)`` rays in ``ego``; returns hit distance (inf = miss), geometry id, normal."""
        import open3d as o3d

        scene, _ = self._raycaster()
        rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
        hits = scene.cast_rays(o3d.core.Tensor(rays))
        return hits["t_hit"].numpy(), hits["geometry_ids"].numpy().astype(np.int64), hits["primitive_normals"].numpy()

    def _albedo(self, points_ego: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        ground = geometry == len(self.objects)
        colour = np.tile(_SKY, (len(points_ego), 1))
        hit = (geometry >= 0) & ~ground
        labels = self.objects.labels
        colour[hit] = np.array([_COLOURS[labels[g]] for g in geometry[hit]]) if hit.any() else colour[hit]
        y = points_ego[ground, 1]
        x = points_ego[ground, 0]
        lane = ((np.abs(np.abs(y) - 1.8) < 0.08) & (np.mod(x, 6.0) < 3.0)) | (np.abs(np.abs(y) - 5.4) < 0.1)
        colour[ground] = np.where(lane[:, None], 0.92, 0.33)
        return colour

    def lidar_sweep(self, ego_SE3_lidar: SE3, beams: int = 64, azimuth_steps: int = 2048, seed: int = 0) -> np.ndarray:
        """A spinning-LiDAR sweep in the LiDAR frame: ``(N, 5)`` float32 x, y, z, intensity, ring.

        Beams are spread from +2 to -24.8 degrees elevation (HDL-64E-like), 1 cm range
        noise, intensity from albedo and incidence angle.
        """
        rng = np.random.default_rng(seed)
        elevation = np.deg2rad(np.linspace(2.0, -24.8, beams))
        azimuth = np.linspace(-np.pi, np.pi, azimuth_steps, endpoint=False)
        el, az = np.meshgrid(elevation, azimuth, indexing="ij")
        dirs_lidar = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
        ring = np.repeat(np.arange(beams), azimuth_steps)
        dirs_ego = ego_SE3_lidar.rotate_vectors(dirs_lidar)
        origins = np.tile(ego_SE3_lidar.translation, (len(dirs_ego), 1))
        t_hit, geometry, normals = self.cast(origins, dirs_ego)
        keep = np.isfinite(t_hit) & (t_hit < 100.0)
        rng_m = t_hit[keep] + rng.normal(0.0, 0.01, keep.sum())
        points_lidar = dirs_lidar[keep] * rng_m[:, None]
        points_ego = ego_SE3_lidar.transform_points(points_lidar)
        cos_incidence = np.abs(np.sum(normals[keep] * dirs_ego[keep], axis=1))
        intensity = self._albedo(points_ego, geometry[keep]).mean(axis=1) * (0.3 + 0.7 * cos_incidence)
        return np.column_stack([points_lidar, intensity, ring[keep]]).astype(np.float32)

    def render(self, camera: RigCamera) -> np.ndarray:
        """Render ``(H, W, 3)`` uint8 RGB through the camera model (pixels outside its valid region are black)."""
        model = camera.model
        u, v = np.meshgrid(np.arange(model.width_px, dtype=np.float64), np.arange(model.height_px, dtype=np.float64))
        uv = np.column_stack([u.ravel(), v.ravel()])
        rays_cam = model.unproject(uv, np.ones(len(uv)))
        valid = np.isfinite(rays_cam).all(axis=1)
        rays_cam[~valid] = (0.0, 0.0, 1.0)
        dirs = camera.ego_SE3_camera.rotate_vectors(rays_cam)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origins = np.tile(camera.ego_SE3_camera.translation, (len(dirs), 1))
        t_hit, geometry, normals = self.cast(origins, dirs)
        geometry[~np.isfinite(t_hit)] = -1
        points = origins + dirs * np.where(np.isfinite(t_hit), t_hit, 0.0)[:, None]
        albedo = self._albedo(points, geometry)
        sun = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])
        shade = np.where(geometry >= 0, 0.45 + 0.55 * np.abs(normals @ sun), 1.0)
        rgb = np.clip(albedo * shade[:, None], 0, 1)
        rgb[~valid] = 0.0
        return (rgb.reshape(model.height_px, model.width_px, 3) * 255).astype(np.uint8)
