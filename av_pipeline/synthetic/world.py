"""The static street along a route: road with lane markings, curbs, sidewalks, terrain,
buildings with window bands, street lights, signs, trees and hedges.

Cross-section (metres left of the centreline, mirrored on the right; traffic drives on the
right, so the right half carries traffic in the direction of increasing ``s``):

=================  ==============================
``0``              centre line (solid)
``0 .. 3.5``       inner lane (centre 1.75)
``3.5``            lane divider (dashed 3 m / 6 m)
``3.5 .. 7.0``     outer lane (centre 5.25)
``7.0``            edge line (solid)
``7.0 .. 8.5``     bike lane (centre 7.75)
``8.5 .. 10.7``    parking strip (centre 9.6)
``10.7``           curb, 0.15 m high
``10.7 .. 14.7``   sidewalk (lights, trees at 11.1, signs at 11.05; people walking at 11.95 and 13.2, standing at 14.35)
``14.7 ..``        building line (plus a setback) and terrain out to 70 m
=================  ==============================

Everything is one :class:`~av_pipeline.synthetic.meshes.Mesh` in the world frame; the
road surface is at ``z = 0``, sidewalks and terrain at ``z = 0.15``.
"""

from __future__ import annotations

import numpy as np

from av_pipeline.synthetic.config import SceneConfig
from av_pipeline.synthetic.materials import material_id
from av_pipeline.synthetic.meshes import Mesh, blob, box, prism_z, regular_polygon
from av_pipeline.synthetic.route import Route

LANE_WIDTH_M = 3.5
#: Lateral positions (left of the centreline) of the lane centres, right-hand traffic.
LANE_CENTERS_M = {"right_outer": -5.25, "right_inner": -1.75, "left_inner": 1.75, "left_outer": 5.25}
BIKE_LANE_M = 7.75
PARKING_M = 9.6
CURB_M = 10.7
CURB_HEIGHT_M = 0.15
SIDEWALK_OUTER_M = 14.7
TERRAIN_OUTER_M = 70.0
MARKING_HEIGHT_M = 0.004
STEP_M = 2.0


def _strip(route: Route, s0: float, s1: float, d0: float, d1: float, z: float, material: int, step: float = STEP_M) -> Mesh:
    """A horizontal strip between lateral offsets ``d0`` and ``d1`` at height ``z``."""
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / step)) + 1))
    a, _ = route.pose(s, np.full(len(s), d0))
    b, _ = route.pose(s, np.full(len(s), d1))
    n = len(s)
    vertices = np.concatenate([np.column_stack([a, np.full(n, z)]), np.column_stack([b, np.full(n, z)])])
    i = np.arange(n - 1)
    triangles = np.concatenate([np.stack([i, i + 1, i + n + 1], axis=1), np.stack([i, i + n + 1, i + n], axis=1)])
    return Mesh(vertices, triangles, np.full(len(triangles), material, dtype=np.int64))


def _wall(route: Route, s0: float, s1: float, d: float, z0: float, z1: float, material: int) -> Mesh:
    """A vertical strip along the road at lateral offset ``d`` from ``z0`` to ``z1``."""
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / STEP_M)) + 1))
    xy, _ = route.pose(s, np.full(len(s), d))
    n = len(s)
    vertices = np.concatenate([np.column_stack([xy, np.full(n, z0)]), np.column_stack([xy, np.full(n, z1)])])
    i = np.arange(n - 1)
    triangles = np.concatenate([np.stack([i, i + 1, i + n + 1], axis=1), np.stack([i, i + n + 1, i + n], axis=1)])
    return Mesh(vertices, triangles, np.full(len(triangles), material, dtype=np.int64))


def _dashes(route: Route, s0: float, s1: float, d: float, width: float, dash: float, gap: float) -> list[Mesh]:
    marking = material_id("lane_marking")
    start = np.floor(s0 / (dash + gap)) * (dash + gap)
    return [
        _strip(route, a, a + dash, d - width / 2, d + width / 2, MARKING_HEIGHT_M, marking, step=dash)
        for a in np.arange(start, s1, dash + gap)
    ]


def _placed(mesh: Mesh, route: Route, s: float, d: float, z: float = 0.0, yaw_offset: float = 0.0) -> Mesh:
    xy, heading = route.pose(np.array([s]), np.array([d]))
    return mesh.transformed(float(heading[0]) + yaw_offset, (xy[0, 0], xy[0, 1], z))


def build_static_world(route: Route, s_min: float, s_max: float, scene: SceneConfig, rng: np.random.Generator) -> Mesh:
    """The static street between arc lengths ``s_min`` and ``s_max`` as one world-frame mesh."""
    parts: list[Mesh] = []
    asphalt, curb, sidewalk, grass = (material_id(n) for n in ("asphalt", "curb", "sidewalk", "grass"))
    marking = material_id("lane_marking")
    parts.append(_strip(route, s_min, s_max, -CURB_M, CURB_M, 0.0, asphalt))
    # markings: centre line, dashed lane dividers, solid edge lines, parking strip edges
    parts.append(_strip(route, s_min, s_max, -0.08, 0.08, MARKING_HEIGHT_M, marking))
    for side in (-1.0, 1.0):
        parts += _dashes(route, s_min, s_max, side * LANE_WIDTH_M, 0.12, 3.0, 6.0)
        parts.append(_strip(route, s_min, s_max, side * 7.0 - 0.075, side * 7.0 + 0.075, MARKING_HEIGHT_M, marking))
        parts += _dashes(route, s_min, s_max, side * 8.5, 0.1, 1.0, 1.0)
        parts.append(_wall(route, s_min, s_max, side * CURB_M, 0.0, CURB_HEIGHT_M, curb))
        d0, d1 = sorted((side * CURB_M, side * SIDEWALK_OUTER_M))
        parts.append(_strip(route, s_min, s_max, d0, d1, CURB_HEIGHT_M, sidewalk))
        d0, d1 = sorted((side * SIDEWALK_OUTER_M, side * TERRAIN_OUTER_M))
        parts.append(_strip(route, s_min, s_max, d0, d1, CURB_HEIGHT_M, grass, step=4.0))
        parts += _buildings(route, s_min, s_max, side, scene, rng)
        parts += _street_furniture(route, s_min, s_max, side, scene, rng)
    return Mesh.concatenate(parts)


_FACADES = ("brick", "concrete", "plaster", "facade_blue")


def _buildings(route: Route, s_min: float, s_max: float, side: float, scene: SceneConfig, rng: np.random.Generator) -> list[Mesh]:
    out: list[Mesh] = []
    s = s_min - float(rng.uniform(0.0, 20.0))
    window = material_id("window")
    while s < s_max:
        frontage = float(rng.uniform(10.0, 32.0))
        if rng.random() < scene.building_gap_share:
            s += frontage * 0.6
            continue
        depth = float(rng.uniform(10.0, 18.0))
        floors = int(rng.integers(2, 7))
        height = floors * 3.1 + float(rng.uniform(0.3, 1.5))
        setback = float(rng.uniform(0.3, 3.5))
        facade = material_id(str(rng.choice(_FACADES)))
        d_front = side * (SIDEWALK_OUTER_M + setback)
        d_center = d_front + side * depth / 2
        mid = s + frontage / 2
        local = [box((0.0, 0.0, height / 2 + CURB_HEIGHT_M), (frontage, depth, height), facade)]
        # window bands on the street-facing facade, one per floor
        for k in range(floors):
            z0 = CURB_HEIGHT_M + k * 3.1 + 1.0
            local.append(box((0.0, -side * (depth / 2 + 0.02), z0 + 0.65), (frontage - 1.6, 0.02, 1.3), window))
        if setback > 1.6 and rng.random() < 0.5:
            local.append(box((0.0, -side * (depth / 2 + setback / 2), CURB_HEIGHT_M + 0.45), (frontage * 0.8, 0.7, 0.9), material_id("foliage")))
        out.append(_placed(Mesh.concatenate(local), route, mid, d_center, 0.0))
        s += frontage + float(rng.uniform(0.0, 6.0))
    return out


def _street_furniture(route: Route, s_min: float, s_max: float, side: float, scene: SceneConfig, rng: np.random.Generator) -> list[Mesh]:
    out: list[Mesh] = []
    metal, sign = material_id("pole_metal"), material_id("sign_face")
    bark, foliage = material_id("bark"), material_id("foliage")
    d_pole = side * 11.1
    # street lights every ~30 m
    lights_s = np.arange(s_min + float(rng.uniform(0, 30)), s_max, 30.0)
    for s in lights_s:
        height = 7.5
        parts = [
            prism_z(regular_polygon(0.09, 8), CURB_HEIGHT_M, CURB_HEIGHT_M + height, metal),
            box((0.0, -side * 0.9, CURB_HEIGHT_M + height - 0.1), (0.12, 1.8, 0.12), metal),
            box((0.0, -side * 1.7, CURB_HEIGHT_M + height - 0.25), (0.5, 0.3, 0.18), metal),
        ]
        out.append(_placed(Mesh.concatenate(parts), route, float(s), d_pole))
    # trees between the lights
    s = s_min + float(rng.uniform(0, 15))
    while s < s_max:
        s += float(rng.exponential(100.0 / max(scene.trees_per_100m, 1e-6))) + 6.0
        if len(lights_s) and np.min(np.abs(lights_s - s)) < 4.0:
            continue  # keep clear of the light poles
        # crowns start above 2.8 m: clear of pedestrians on the sidewalk and vans in the parking strip
        trunk_h = float(rng.uniform(2.8, 3.6))
        crown = np.array([rng.uniform(1.4, 2.2), rng.uniform(1.4, 2.2), rng.uniform(1.3, 1.9)])
        parts = [
            prism_z(regular_polygon(float(rng.uniform(0.12, 0.2)), 8), CURB_HEIGHT_M, CURB_HEIGHT_M + trunk_h + crown[2], bark),
            blob((0.0, 0.0, CURB_HEIGHT_M + trunk_h + crown[2] * 1.2), crown, foliage, rng),
        ]
        out.append(_placed(Mesh.concatenate(parts), route, float(s), d_pole))
    # a few traffic signs at the curb
    for s in np.arange(s_min + float(rng.uniform(10, 60)), s_max, float(rng.uniform(50, 90))):
        parts = [
            prism_z(regular_polygon(0.04, 6), CURB_HEIGHT_M, CURB_HEIGHT_M + 2.6, metal),
            box((0.04, 0.0, CURB_HEIGHT_M + 2.35), (0.03, 0.65, 0.65), sign),
        ]
        out.append(_placed(Mesh.concatenate(parts), route, float(s) + 3.0, side * 11.05))
    return out
