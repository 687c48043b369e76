"""Surface materials and semantic classes of the synthetic world.

Every triangle of the world carries a material id. A material says how the surface looks to
a camera (``albedo_rgb``), how strongly it returns a LiDAR pulse (``reflectivity``, 0..1,
the diffuse reflectance at 905 nm), how often a pulse that hits it produces any return at
all (``return_factor``: glass and other specular surfaces mostly do not) and which semantic
class the surface belongs to (used for the ground / non-ground split and the BEV preview).

Actor paint is a material too: one entry per paint colour, appended to :data:`MATERIALS`
from :data:`PAINT_COLOURS` so that black cars are dark in the images *and* weak in the LiDAR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Semantic classes (id -> name); "ground" are the ids in :data:`GROUND_CLASSES`.
SEMANTIC_CLASSES: tuple[str, ...] = (
    "unlabeled",  # 0: nothing hit (sky)
    "road",
    "lane_marking",
    "curb",
    "sidewalk",
    "terrain",
    "building",
    "pole",
    "traffic_sign",
    "vegetation",
    "car",
    "van",
    "truck",
    "pedestrian",
    "cyclist",
)
SEMANTIC_ID = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}
#: Classes counted as ground (what a ground-segmentation step should remove).
GROUND_CLASSES: tuple[str, ...] = ("road", "lane_marking", "curb", "sidewalk", "terrain")
GROUND_IDS = np.array([SEMANTIC_ID[c] for c in GROUND_CLASSES], dtype=np.int16)


@dataclass(frozen=True)
class Material:
    """How one kind of surface looks to the sensors.

    Attributes:
        name: unique name.
        albedo_rgb: camera colour, linear-ish RGB in 0..1.
        reflectivity: LiDAR diffuse reflectance (0..1) at the laser wavelength.
        return_factor: probability scale for producing a return at all (1 = opaque matte
            surface; glass about 0.15).
        semantic: one of :data:`SEMANTIC_CLASSES` (actor parts get the actor's class at
            cast time; their material's own class is only a default).
    """

    name: str
    albedo_rgb: tuple[float, float, float]
    reflectivity: float
    return_factor: float = 1.0
    semantic: str = "unlabeled"


_BASE_MATERIALS: tuple[Material, ...] = (
    Material("asphalt", (0.30, 0.30, 0.32), 0.18, 1.0, "road"),
    Material("lane_marking", (0.92, 0.92, 0.88), 0.65, 1.0, "lane_marking"),
    Material("curb", (0.68, 0.67, 0.64), 0.30, 1.0, "curb"),
    Material("sidewalk", (0.58, 0.56, 0.53), 0.26, 1.0, "sidewalk"),
    Material("grass", (0.30, 0.45, 0.20), 0.35, 1.0, "terrain"),
    Material("brick", (0.60, 0.36, 0.28), 0.30, 1.0, "building"),
    Material("concrete", (0.70, 0.69, 0.66), 0.35, 1.0, "building"),
    Material("plaster", (0.85, 0.80, 0.66), 0.40, 1.0, "building"),
    Material("facade_blue", (0.45, 0.55, 0.65), 0.30, 1.0, "building"),
    Material("window", (0.16, 0.20, 0.26), 0.06, 0.25, "building"),
    Material("pole_metal", (0.45, 0.46, 0.48), 0.40, 1.0, "pole"),
    Material("sign_face", (0.85, 0.85, 0.85), 0.90, 1.0, "traffic_sign"),
    Material("bark", (0.33, 0.25, 0.18), 0.25, 1.0, "vegetation"),
    Material("foliage", (0.20, 0.38, 0.14), 0.40, 0.85, "vegetation"),
    Material("glass", (0.10, 0.12, 0.15), 0.05, 0.15, "car"),
    Material("tyre", (0.06, 0.06, 0.06), 0.05, 1.0, "car"),
    Material("chrome_light", (0.90, 0.85, 0.70), 0.80, 1.0, "car"),
    Material("skin", (0.80, 0.62, 0.50), 0.35, 1.0, "pedestrian"),
    Material("cloth_dark", (0.12, 0.13, 0.18), 0.12, 1.0, "pedestrian"),
    Material("cloth_blue", (0.15, 0.25, 0.55), 0.25, 1.0, "pedestrian"),
    Material("cloth_red", (0.65, 0.12, 0.10), 0.30, 1.0, "pedestrian"),
    Material("cloth_light", (0.75, 0.72, 0.65), 0.45, 1.0, "pedestrian"),
    Material("bike_frame", (0.75, 0.30, 0.05), 0.35, 1.0, "cyclist"),
)

#: Vehicle paint colours and their share of the fleet (white, black, grey and silver
#: dominate real traffic); reflectivity follows brightness.
PAINT_COLOURS: tuple[tuple[str, tuple[float, float, float], float], ...] = (
    ("white", (0.90, 0.90, 0.90), 0.24),
    ("black", (0.05, 0.05, 0.06), 0.20),
    ("grey", (0.38, 0.39, 0.41), 0.17),
    ("silver", (0.66, 0.67, 0.69), 0.12),
    ("blue", (0.08, 0.20, 0.55), 0.09),
    ("red", (0.62, 0.06, 0.05), 0.09),
    ("green", (0.10, 0.32, 0.16), 0.04),
    ("yellow", (0.90, 0.72, 0.10), 0.05),
)


def _paint(name: str, rgb: tuple[float, float, float]) -> Material:
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return Material(f"paint_{name}", rgb, 0.06 + 0.45 * luminance, 1.0, "car")


#: Every material, indexed by material id.
MATERIALS: tuple[Material, ...] = _BASE_MATERIALS + tuple(_paint(n, rgb) for n, rgb, _ in PAINT_COLOURS)
MATERIAL_ID = {m.name: i for i, m in enumerate(MATERIALS)}
#: ``(M, 3)`` albedo, ``(M,)`` reflectivity, return factor and semantic id, indexed by material id.
ALBEDO = np.array([m.albedo_rgb for m in MATERIALS], dtype=np.float32)
REFLECTIVITY = np.array([m.reflectivity for m in MATERIALS], dtype=np.float32)
RETURN_FACTOR = np.array([m.return_factor for m in MATERIALS], dtype=np.float32)
MATERIAL_SEMANTIC = np.array([SEMANTIC_ID[m.semantic] for m in MATERIALS], dtype=np.int16)
PAINT_IDS = np.array([MATERIAL_ID[f"paint_{n}"] for n, _, _ in PAINT_COLOURS], dtype=np.int64)
PAINT_SHARES = np.array([share for _, _, share in PAINT_COLOURS]) / sum(share for _, _, share in PAINT_COLOURS)


def material_id(name: str) -> int:
    """The id of the material called ``name``.

    Raises:
        KeyError: no such material (the message lists them).
    """
    try:
        return MATERIAL_ID[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {sorted(MATERIAL_ID)}") from None
