"""Ray casting with Open3D's ``RaycastingScene``: the static world, and moving actors.

The static world is one scene built once per log. Actors move, and a spinning LiDAR sees
each of them at the instant its beam sweeps past, so actors are not baked into a scene at
one time: every actor mesh sits in its own *slot* of a per-frame atlas scene (its box frame
shifted by a slot offset far from the others), and a ray meant for actor ``k`` at time ``t``
is transformed into actor ``k``'s box frame at ``t`` before it is cast. A hit counts only
if it lands on that actor's slot. The caller takes, for each ray, the nearest of its static
hit and its actor hits (:func:`nearest`).

Cameras and visibility rays look at one instant: :class:`PosedActors` holds the actors posed
at that time as one world-frame scene, and :func:`cast_world` takes the nearer of its hit
and the static one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from av_pipeline.synthetic.actors import Actors
from av_pipeline.synthetic.materials import MATERIAL_SEMANTIC
from av_pipeline.synthetic.meshes import Mesh

#: Distance between atlas slots; larger than twice any range cast, so a ray cannot reach a
#: neighbouring slot before it has passed its own actor.
SLOT_SPACING_M = 600.0


@dataclass(frozen=True)
class Hits:
    """What ``N`` rays hit.

    Attributes:
        t_m: ``(N,)`` float32 distance along the (unit) ray, ``inf`` for a miss.
        material: ``(N,)`` int64 material id (-1 for a miss).
        normal: ``(N, 3)`` float32 unit face normal in the world frame (zeros for a miss).
        actor: ``(N,)`` int64 index of the actor hit (-1 for static geometry or a miss).
    """

    t_m: np.ndarray
    material: np.ndarray
    normal: np.ndarray
    actor: np.ndarray

    @classmethod
    def misses(cls, n: int) -> Hits:
        """``n`` rays that hit nothing."""
        return cls(np.full(n, np.inf, np.float32), np.full(n, -1, np.int64), np.zeros((n, 3), np.float32), np.full(n, -1, np.int64))

    def semantic(self, actor_semantic: np.ndarray) -> np.ndarray:
        """``(N,)`` semantic class ids: the material's class, or ``actor_semantic[actor]`` for actor hits (0 for misses)."""
        out = np.where(self.material >= 0, MATERIAL_SEMANTIC[np.maximum(self.material, 0)], 0).astype(np.int16)
        on_actor = self.actor >= 0
        out[on_actor] = actor_semantic[self.actor[on_actor]]
        return out


def _tensor(array: np.ndarray):  # -> open3d.core.Tensor
    import open3d as o3d

    return o3d.core.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def cast_arrays(scene, rays: np.ndarray, materials_ext: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cast ``(N, 6)`` float32 rays; returns ``t (N,) float32``, ``triangle (N,) int64`` (-1: miss),
    ``material (N,) int64`` (-1: miss; ``materials_ext`` ends with a -1 entry for misses), ``normal (N, 3) float32``."""
    import open3d as o3d

    from av_pipeline.synthetic.kernels import hit_lookup

    result = scene.cast_rays(o3d.core.Tensor(rays))
    triangle, material = hit_lookup(result["primitive_ids"].numpy(), materials_ext)
    return result["t_hit"].numpy(), triangle, material, result["primitive_normals"].numpy()


def pack_rays(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``(N, 6)`` float32 ``origin, direction`` rows (origins may be one ``(3,)`` point)."""
    rays = np.empty((len(directions), 6), dtype=np.float32)
    rays[:, :3] = origins
    rays[:, 3:] = directions
    return rays


class StaticScene:
    """The static world mesh in a ``RaycastingScene`` (built once)."""

    def __init__(self, mesh: Mesh) -> None:
        import open3d as o3d

        self.mesh = mesh
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(_tensor(mesh.vertices), o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, dtype=np.uint32)))
        self._materials = np.append(mesh.materials.astype(np.int64), -1)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """Cast rays ``(N, 3)`` from ``origins`` (or one ``(3,)`` origin) along unit ``directions`` (world frame)."""
        if len(directions) == 0:
            return Hits.misses(0)
        return self.cast_packed(pack_rays(origins, directions))

    def cast_packed(self, rays: np.ndarray) -> Hits:
        """Cast ``(N, 6)`` float32 ``origin, direction`` rows."""
        t, _, material, normal = cast_arrays(self._scene, rays, self._materials)
        return Hits(t, material, normal, np.full(len(t), -1, np.int64))


class ActorAtlas:
    """Actor meshes in slots of one scene, for casting rays at each ray's own time.

    Args:
        meshes: box-frame meshes, one per slot.
    """

    def __init__(self, meshes: list[Mesh]) -> None:
        import open3d as o3d

        n = len(meshes)
        columns = max(1, int(np.ceil(np.sqrt(max(n, 1)))))
        index = np.arange(n)
        self.offsets = np.column_stack(
            [(index % columns - (columns - 1) / 2) * SLOT_SPACING_M, (index // columns - (columns - 1) / 2) * SLOT_SPACING_M, np.zeros(n)]
        )
        self._scene = o3d.t.geometry.RaycastingScene()
        self.empty = n == 0
        if n:
            vertices = np.concatenate([m.vertices + self.offsets[k] for k, m in enumerate(meshes)])
            counts = np.array([len(m.vertices) for m in meshes])
            shift = np.concatenate([[0], np.cumsum(counts)[:-1]])
            triangles = np.concatenate([m.triangles + shift[k] for k, m in enumerate(meshes)])
            self._slot = np.concatenate([np.full(len(m.triangles), k) for k, m in enumerate(meshes)])
            self._materials = np.concatenate([m.materials for m in meshes]).astype(np.int64)
            self._scene.add_triangles(_tensor(vertices), o3d.core.Tensor(np.ascontiguousarray(triangles, dtype=np.uint32)))

    def cast(
        self,
        slot: np.ndarray,
        origins: np.ndarray,
        directions: np.ndarray,
        ray_index: np.ndarray,
        pair_index: np.ndarray,
        centers: np.ndarray,
        yaws: np.ndarray,
        max_range_m: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cast world rays against one actor each.

        Args:
            slot: ``(M,)`` atlas slot of the actor each cast is against.
            origins, directions: ``(N, 3)`` world rays (unit directions); cast ``m`` uses ray ``ray_index[m]``.
            ray_index: ``(M,)``.
            pair_index: ``(M,)`` row of ``centers`` / ``yaws`` with the actor's box pose at the ray's time.
            centers, yaws: ``(P, 3)``, ``(P,)`` box poses.
            max_range_m: hits further away are misses.

        Returns:
            ``t (M,) float32`` (``inf`` = miss), ``material (M,)``, world ``normal (M, 3)``.
        """
        m = len(slot)
        if m == 0 or self.empty:
            return np.full(m, np.inf, np.float32), np.full(m, -1, np.int64), np.zeros((m, 3), np.float32)
        from av_pipeline.synthetic.kernels import rays_to_local

        local = rays_to_local(origins, directions, ray_index, pair_index, centers, yaws, self.offsets[slot])
        c, s = np.cos(yaws[pair_index]), np.sin(yaws[pair_index])
        import open3d as o3d

        result = self._scene.cast_rays(o3d.core.Tensor(local))
        t = result["t_hit"].numpy().astype(np.float32)
        triangle = result["primitive_ids"].numpy().astype(np.int64)
        finite = np.isfinite(t)
        own = np.zeros(m, dtype=bool)
        own[finite] = self._slot[triangle[finite]] == slot[finite]
        valid = own & (t <= max_range_m)
        t = np.where(valid, t, np.float32(np.inf))
        material = np.where(valid, self._materials[np.where(valid, triangle, 0)], -1)
        n_local = result["primitive_normals"].numpy()
        normal = np.column_stack([c * n_local[:, 0] - s * n_local[:, 1], s * n_local[:, 0] + c * n_local[:, 1], n_local[:, 2]]).astype(np.float32)
        normal[~valid] = 0.0
        return t, material, normal


def nearest(static: Hits, ray_index: np.ndarray, actor: np.ndarray, t: np.ndarray, material: np.ndarray, normal: np.ndarray) -> Hits:
    """Merge actor hits into the static hits, keeping the nearest hit per ray.

    Args:
        static: hits of all rays against the static world.
        ray_index: ``(M,)`` which ray each actor cast belongs to (a ray may appear several times).
        actor, t, material, normal: ``(M,)`` / ``(M, 3)`` the actor casts.
    """
    hit = np.isfinite(t)
    ray_index, actor, t, material, normal = ray_index[hit], actor[hit], t[hit], material[hit], normal[hit]
    best = static.t_m.copy()
    np.minimum.at(best, ray_index, t)
    wins = t <= best[ray_index]
    # among equal-distance winners on one ray, the last in (ray, actor) order is kept deterministically
    order = np.lexsort((actor[wins], ray_index[wins]))
    rays = ray_index[wins][order]
    keep = np.ones(len(rays), dtype=bool)
    keep[:-1] = rays[1:] != rays[:-1]
    chosen = np.flatnonzero(wins)[order][keep]
    out_material = static.material.copy()
    out_normal = static.normal.copy()
    out_actor = static.actor.copy()
    out_material[ray_index[chosen]] = material[chosen]
    out_normal[ray_index[chosen]] = normal[chosen]
    out_actor[ray_index[chosen]] = actor[chosen]
    return Hits(best, out_material, out_normal, out_actor)


class PosedActors:
    """Actors ``index`` at one instant, as one world-frame scene (for cameras and visibility rays)."""

    def __init__(self, actors: Actors, index: np.ndarray, centers: np.ndarray, yaws: np.ndarray) -> None:
        import open3d as o3d

        self.index = np.asarray(index, dtype=np.int64)
        self.centers = centers
        self.yaws = yaws
        meshes = [actors.meshes[k].transformed(float(yaw), center) for k, center, yaw in zip(self.index, centers, yaws)]
        mesh = Mesh.concatenate(meshes)
        actor_of_triangle = np.concatenate([np.full(len(m.triangles), k) for k, m in zip(self.index, meshes)]) if meshes else np.zeros(0, np.int64)
        self._actor_ext = np.append(actor_of_triangle.astype(np.int64), -1)
        self._materials = np.append(mesh.materials.astype(np.int64), -1)
        self._scene = o3d.t.geometry.RaycastingScene()
        self.empty = len(mesh.triangles) == 0
        if not self.empty:
            self._scene.add_triangles(_tensor(mesh.vertices), o3d.core.Tensor(np.ascontiguousarray(mesh.triangles, dtype=np.uint32)))

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """World rays (``origins`` ``(N, 3)`` or one ``(3,)``) against the posed actors (``actor`` = index into :class:`Actors`)."""
        if self.empty or len(directions) == 0:
            return Hits.misses(len(directions))
        t, triangle, material, normal = cast_arrays(self._scene, pack_rays(origins, directions), self._materials)
        return Hits(t, material, normal, self._actor_ext[triangle])


def cast_world(static: StaticScene, posed: PosedActors, origins: np.ndarray, directions: np.ndarray) -> Hits:
    """The nearer of the static and the posed-actor hit for every ray."""
    a = static.cast(origins, directions)
    b = posed.cast(origins, directions)
    closer = b.t_m < a.t_m
    return Hits(
        np.where(closer, b.t_m, a.t_m),
        np.where(closer, b.material, a.material),
        np.where(closer[:, None], b.normal, a.normal),
        np.where(closer, b.actor, a.actor),
    )
