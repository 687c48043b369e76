"""Triangle meshes of the synthetic world: primitives and multi-part actors.

A :class:`Mesh` is vertices ``(V, 3)``, triangles ``(T, 3)`` and one material id per
triangle (:mod:`av_pipeline.synthetic.materials`). Actor meshes are built in the actor's
box frame: origin at the box centre, x forward (along the length), y left, z up, and they
stay inside the box ``[-l/2, l/2] x [-w/2, w/2] x [-h/2, h/2]`` so that the ground-truth
cuboid is the tight box of what the sensors see.

Triangle winding is not relied on: shading and LiDAR incidence use the face normal turned
towards the ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from av_pipeline.synthetic.materials import material_id


@dataclass(frozen=True, eq=False)
class Mesh:
    """Triangles with a material per triangle.

    Attributes:
        vertices: ``(V, 3)`` float64 metres.
        triangles: ``(T, 3)`` int64 vertex indices.
        materials: ``(T,)`` int64 material ids.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    materials: np.ndarray

    @staticmethod
    def concatenate(meshes: Sequence[Mesh]) -> Mesh:
        """One mesh holding all of ``meshes`` (vertex indices shifted)."""
        if not meshes:
            return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64))
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.triangles + o for m, o in zip(meshes, offsets)]),
            np.concatenate([m.materials for m in meshes]),
        )

    def transformed(self, yaw_rad: float, translation: Sequence[float]) -> Mesh:
        """The mesh rotated by ``yaw_rad`` about +z, then translated."""
        c, s = np.cos(yaw_rad), np.sin(yaw_rad)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Mesh(self.vertices @ rotation.T + np.asarray(translation, dtype=np.float64), self.triangles, self.materials)


# ---------------------------------------------------------------------- primitives
_BOX_FACES = np.array(
    [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
     [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]],
    dtype=np.int64,
)  # fmt: skip
#: Face of each box triangle: bottom, top, +y side, -x end, -y side, +x end (corner order below).
_BOX_FACE_OF_TRIANGLE = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])


def box(center: Sequence[float], size: Sequence[float], material: int | Sequence[int]) -> Mesh:
    """An axis-aligned box; ``material`` is one id or six (bottom, top, +y, -x, -y, +x)."""
    l, w, h = (float(v) / 2.0 for v in size)
    corners = np.array([[l, w, -h], [-l, w, -h], [-l, -w, -h], [l, -w, -h], [l, w, h], [-l, w, h], [-l, -w, h], [l, -w, h]])
    faces = np.broadcast_to(np.asarray(material, dtype=np.int64), (6,))
    return Mesh(corners + np.asarray(center, dtype=np.float64), _BOX_FACES.copy(), faces[_BOX_FACE_OF_TRIANGLE].copy())


def prism_y(profile_xz: np.ndarray, y_min: float, y_max: float, cap_material: int, edge_materials: Sequence[int] | int) -> Mesh:
    """A convex polygon in the x-z plane (counter-clockwise), extruded from ``y_min`` to ``y_max``.

    ``edge_materials[i]`` is the material of the face between profile points ``i`` and ``i + 1``.
    """
    profile = np.asarray(profile_xz, dtype=np.float64)
    n = len(profile)
    near = np.column_stack([profile[:, 0], np.full(n, y_min), profile[:, 1]])
    far = np.column_stack([profile[:, 0], np.full(n, y_max), profile[:, 1]])
    vertices = np.concatenate([near, far])
    fan = np.array([[0, i, i + 1] for i in range(1, n - 1)], dtype=np.int64)
    i = np.arange(n)
    j = (i + 1) % n
    sides = np.concatenate([np.stack([i, j, j + n], axis=1), np.stack([i, j + n, i + n], axis=1)])
    triangles = np.concatenate([fan, fan[:, ::-1] + n, sides])
    edges = np.broadcast_to(np.asarray(edge_materials, dtype=np.int64), (n,))
    materials = np.concatenate([np.full(2 * len(fan), cap_material), edges, edges])
    return Mesh(vertices, triangles, materials)


def prism_z(profile_xy: np.ndarray, z_min: float, z_max: float, material: int, cap_material: int | None = None) -> Mesh:
    """A convex polygon in the x-y plane extruded from ``z_min`` to ``z_max`` (caps in ``cap_material``)."""
    mesh = prism_y(np.asarray(profile_xy, dtype=np.float64), z_min, z_max, material if cap_material is None else cap_material, material)
    swapped = mesh.vertices[:, [0, 2, 1]]  # (x, z_extrusion, y) -> (x, y, z)
    return Mesh(swapped, mesh.triangles, mesh.materials)


def regular_polygon(radius: float, sides: int = 8, center: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """``(sides, 2)`` counter-clockwise polygon vertices."""
    angles = np.arange(sides) * 2.0 * np.pi / sides + np.pi / sides
    return np.column_stack([np.cos(angles) * radius + center[0], np.sin(angles) * radius + center[1]])


def wheel(center_x: float, center_z: float, radius: float, y_min: float, y_max: float) -> Mesh:
    """An octagonal wheel with its axle along y."""
    return prism_y(regular_polygon(radius, 8, (center_x, center_z)), y_min, y_max, material_id("tyre"), material_id("tyre"))


def blob(center: Sequence[float], radii: Sequence[float], material: int, rng: np.random.Generator) -> Mesh:
    """A lumpy ellipsoid (subdivided octahedron, 32 triangles), e.g. a tree crown or bush."""
    top, bottom = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])
    ring = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    vertices = [top, bottom, *ring]
    faces = []
    for k in range(4):
        a, b = 2 + k, 2 + (k + 1) % 4
        faces += [[0, a, b], [1, b, a]]
    vertices_arr = np.array(vertices)
    # one subdivision: split every edge at its (normalised) midpoint
    cache: dict[tuple[int, int], int] = {}
    points = list(vertices_arr)

    def midpoint(i: int, j: int) -> int:
        key = (min(i, j), max(i, j))
        if key not in cache:
            m = points[i] + points[j]
            points.append(m / np.linalg.norm(m))
            cache[key] = len(points) - 1
        return cache[key]

    refined = []
    for a, b, c in faces:
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        refined += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
    unit = np.array(points)
    lumps = 1.0 + rng.uniform(-0.18, 0.18, len(unit))
    vertices_out = unit * lumps[:, None] * np.asarray(radii, dtype=np.float64) + np.asarray(center, dtype=np.float64)
    triangles = np.array(refined, dtype=np.int64)
    return Mesh(vertices_out, triangles, np.full(len(triangles), material, dtype=np.int64))


# ---------------------------------------------------------------------- actors (box frame)
def car_mesh(length: float, width: float, height: float, paint: int) -> Mesh:
    """A sedan: lower body, glass cabin with painted roof, four wheels."""
    l, w, h = length, width, height
    z0 = -h / 2.0
    glass = material_id("glass")

    def xz(points: list[tuple[float, float]]) -> np.ndarray:
        return np.array([(fx * l, z0 + fz * h) for fx, fz in points])

    body = xz([(-0.5, 0.14), (0.5, 0.14), (0.5, 0.42), (0.45, 0.56), (0.18, 0.60), (-0.35, 0.60), (-0.5, 0.50)])
    cabin = xz([(-0.38, 0.60), (0.18, 0.60), (0.0, 1.0), (-0.26, 1.0)])
    light = material_id("chrome_light")
    parts = [
        prism_y(body, -w / 2, w / 2, paint, [paint, light, paint, paint, paint, paint, light]),
        prism_y(cabin, -0.43 * w, 0.43 * w, glass, [paint, glass, paint, glass]),
    ]
    parts += _wheels(l, w, z0, radius=min(0.33, 0.21 * h), axles=(-0.31 * l, 0.30 * l))
    return Mesh.concatenate(parts)


def van_mesh(length: float, width: float, height: float, paint: int) -> Mesh:
    """A van: short hood, tall box body, windshield, four wheels."""
    l, w, h = length, width, height
    z0 = -h / 2.0
    glass = material_id("glass")

    def xz(points: list[tuple[float, float]]) -> np.ndarray:
        return np.array([(fx * l, z0 + fz * h) for fx, fz in points])

    lower = xz([(-0.5, 0.13), (0.5, 0.13), (0.5, 0.40), (0.42, 0.50), (-0.5, 0.50)])
    upper = xz([(-0.5, 0.50), (0.42, 0.50), (0.30, 0.96), (0.26, 1.0), (-0.5, 1.0)])
    parts = [
        prism_y(lower, -w / 2, w / 2, paint, paint),
        prism_y(upper, -0.49 * w, 0.49 * w, paint, [paint, glass, paint, paint, paint]),
    ]
    parts += _wheels(l, w, z0, radius=min(0.36, 0.16 * h), axles=(-0.32 * l, 0.33 * l))
    return Mesh.concatenate(parts)


def truck_mesh(length: float, width: float, height: float, paint: int) -> Mesh:
    """A box truck: cab with windshield, cargo box (white), six wheels."""
    l, w, h = length, width, height
    z0 = -h / 2.0
    glass = material_id("glass")
    cab_length = min(2.3, 0.3 * l)
    x_cab = l / 2 - cab_length
    cab_lower = np.array([(x_cab, z0 + 0.18 * h), (l / 2, z0 + 0.18 * h), (l / 2, z0 + 0.50 * h), (x_cab, z0 + 0.50 * h)])
    cab_upper = np.array([(x_cab, z0 + 0.50 * h), (l / 2, z0 + 0.50 * h), (l / 2 - 0.15, z0 + 0.82 * h), (x_cab, z0 + 0.82 * h)])
    cargo = box(((x_cab - 0.15 - l / 2) / 2, 0.0, z0 + 0.62 * h), (x_cab - 0.15 + l / 2, w, 0.76 * h), material_id("paint_white"))
    chassis = box((0.0, 0.0, z0 + 0.20 * h), (l * 0.96, w * 0.8, 0.1 * h), material_id("pole_metal"))
    parts = [
        prism_y(cab_lower, -w / 2 + 0.05, w / 2 - 0.05, paint, paint),
        prism_y(cab_upper, -w / 2 + 0.05, w / 2 - 0.05, glass, [paint, glass, paint, paint]),
        cargo,
        chassis,
    ]
    radius = min(0.5, 0.16 * h)
    parts += _wheels(l, w, z0, radius=radius, axles=(-0.38 * l, -0.38 * l + 2.2 * radius + 0.1, l / 2 - 0.6 * cab_length))
    return Mesh.concatenate(parts)


def _wheels(l: float, w: float, z0: float, radius: float, axles: Sequence[float]) -> list[Mesh]:
    tyre_width = min(0.24, 0.14 * w)
    out = []
    for x in axles:
        for side in (-1.0, 1.0):
            y_outer = side * (w / 2 - 0.01)
            y_inner = side * (w / 2 - 0.01 - tyre_width)
            out.append(wheel(x, z0 + radius, radius, min(y_outer, y_inner), max(y_outer, y_inner)))
    return out


def pedestrian_mesh(length: float, width: float, height: float, rng: np.random.Generator) -> Mesh:
    """A walking person: legs in stride, torso, arms, head; clothes colours drawn from ``rng``."""
    l, w, h = length, width, height
    z0 = -h / 2.0
    clothes = [material_id(n) for n in ("cloth_dark", "cloth_blue", "cloth_red", "cloth_light")]
    shirt, trousers = int(rng.choice(clothes)), int(rng.choice(clothes))
    skin = material_id("skin")
    leg_h, torso_h, head_h = 0.47 * h, 0.36 * h, 0.13 * h
    stride = 0.5 * (l - 0.16)
    parts = [
        box((stride / 2, 0.1 * w, z0 + leg_h / 2), (0.16, 0.15, leg_h), trousers),
        box((-stride / 2, -0.1 * w, z0 + leg_h / 2), (0.16, 0.15, leg_h), trousers),
        box((0.0, 0.0, z0 + leg_h + torso_h / 2), (0.26, 0.62 * w, torso_h), shirt),
        box((0.08, 0.38 * w, z0 + leg_h + 0.55 * torso_h), (0.12, 0.1, 0.8 * torso_h), shirt),
        box((-0.08, -0.38 * w, z0 + leg_h + 0.55 * torso_h), (0.12, 0.1, 0.8 * torso_h), shirt),
        box((0.02, 0.0, z0 + h - head_h / 2 - 0.02 * h), (0.2, 0.18, head_h), skin),
    ]
    return Mesh.concatenate(parts)


def cyclist_mesh(length: float, width: float, height: float, rng: np.random.Generator) -> Mesh:
    """A person on a bicycle: two wheels, frame, rider leaning forward."""
    l, w, h = length, width, height
    z0 = -h / 2.0
    clothes = [material_id(n) for n in ("cloth_dark", "cloth_blue", "cloth_red", "cloth_light")]
    shirt, trousers = int(rng.choice(clothes)), int(rng.choice(clothes))
    frame = material_id("bike_frame")
    radius = min(0.34, 0.3 * l)
    axle = l / 2 - radius
    tyre = material_id("tyre")
    parts = [
        prism_y(regular_polygon(radius, 10, (axle, z0 + radius)), -0.03, 0.03, tyre, tyre),
        prism_y(regular_polygon(radius, 10, (-axle, z0 + radius)), -0.03, 0.03, tyre, tyre),
        box((0.0, 0.0, z0 + radius + 0.05), (2 * axle, 0.05, 0.05), frame),
        box((0.1 * l, 0.0, z0 + 0.5 * h * 0.75), (0.05, 0.05, 0.35 * h), frame),
        box((0.33 * l, 0.0, z0 + 0.58 * h), (0.06, 0.9 * w, 0.04), frame),  # handlebar
        box((-0.12 * l, 0.12, z0 + 0.38 * h), (0.14, 0.12, 0.3 * h), trousers),
        box((-0.12 * l, -0.12, z0 + 0.38 * h), (0.14, 0.12, 0.3 * h), trousers),
        prism_y(
            np.array([(-0.22 * l, z0 + 0.55 * h), (-0.05 * l, z0 + 0.55 * h), (0.12 * l, z0 + 0.85 * h), (-0.05 * l, z0 + 0.88 * h)]),
            -0.2,
            0.2,
            shirt,
            shirt,
        ),
        box((0.1 * l, 0.0, z0 + h - 0.065 * h), (0.2, 0.18, 0.13 * h), material_id("skin")),
    ]
    return Mesh.concatenate(parts)


#: Gap between an actor's surface and its ground-truth box on the sides and the top: like an
#: annotator's box, the label encloses the object with a little room, so range noise
#: (2 cm) does not push surface points out of it. The bottom stays on the ground.
BOX_MARGIN_M = 0.06


def actor_mesh(label: str, size_lwh: Sequence[float], paint: int, rng: np.random.Generator) -> Mesh:
    """The mesh of an actor of class ``label`` whose ground-truth box is ``(l, w, h)``.

    The mesh fills the box less :data:`BOX_MARGIN_M` on every side but the bottom.

    Raises:
        KeyError: an unknown class.
    """
    l, w, h = (float(v) for v in size_lwh)
    m = BOX_MARGIN_M
    inner = (l - 2 * m, w - 2 * m, h - m)
    builders = {"car": car_mesh, "van": van_mesh, "truck": truck_mesh}
    if label in builders:
        mesh = builders[label](*inner, paint)
    elif label == "pedestrian":
        mesh = pedestrian_mesh(*inner, rng)
    elif label == "cyclist":
        mesh = cyclist_mesh(*inner, rng)
    else:
        raise KeyError(f"no mesh for actor class {label!r}; expected car, van, truck, pedestrian or cyclist")
    return Mesh(mesh.vertices - np.array([0.0, 0.0, m / 2]), mesh.triangles, mesh.materials)
