"""The product's object classes, and the mappings from each dataset's class names.

Inside the product a box's ``label`` is one of :data:`PRODUCT_CLASSES`; readers map the
dataset's own class name with :func:`to_product_labels` and keep it in
``Cuboids.source_labels``, so nothing the dataset said is lost (a KITTI ``Person_sitting``
is a ``pedestrian`` whose source label says it sat; a nuScenes
``vehicle.emergency.police`` is a ``car``).

==============  ===================================================================
dataset         names mapped (:data:`DATASET_MAPPINGS` key)
==============  ===================================================================
``kitti``       ``label_2`` types: ``Car``, ``Van``, ``Truck``, ``Pedestrian``,
                ``Person_sitting``, ``Cyclist``, ``Tram``, ``Misc``
``nuscenes``    nuScenes categories (``vehicle.car``, ``human.pedestrian.adult``,
                ...; matched by dotted prefix) and the Lyft Level 5 names the same
                tables use (``car``, ``other_vehicle``, ``bicycle``, ...)
``synthetic``   the synthetic logs' ``car``, ``van``, ``truck``, ``pedestrian``,
                ``cyclist`` (already product classes)
``av2``         Argoverse 2 sensor-dataset categories (``REGULAR_VEHICLE``, ...)
``pandaset``    PandaSet cuboid labels (``Car``, ``Pickup Truck``, ``Cones``, ...)
``any``         every name above, for logs whose dataset is unknown (MCAP, bags)
==============  ===================================================================

Names are compared case-insensitively after trimming; a name a mapping does not know
becomes ``"other"`` (its source label says what it was). Product class names map to
themselves in every mapping, so mapping twice changes nothing.

>>> to_product_labels(["Car", "Person_sitting", "Tram"], "kitti").tolist()
['car', 'pedestrian', 'other']
>>> to_product_labels(["vehicle.bus.bendy", "movable_object.trafficcone", "bicycle"], "nuscenes").tolist()
['bus', 'traffic_cone', 'cyclist']
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ConfigError

#: The product's classes, in a fixed order (detector heads and reports use it).
PRODUCT_CLASSES: tuple[str, ...] = (
    "car",
    "van",
    "truck",
    "bus",
    "pedestrian",
    "cyclist",
    "motorcycle",
    "trailer",
    "construction_vehicle",
    "barrier",
    "traffic_cone",
    "other",
)

_KITTI = {
    "car": "car",
    "van": "van",
    "truck": "truck",
    "pedestrian": "pedestrian",
    "person_sitting": "pedestrian",
    "cyclist": "cyclist",
    "tram": "other",
    "misc": "other",
}

#: nuScenes categories by dotted prefix (the longest matching prefix wins).
_NUSCENES_PREFIXES = {
    "vehicle.car": "car",
    "vehicle.emergency.police": "car",
    "vehicle.emergency.ambulance": "van",
    "vehicle.truck": "truck",
    "vehicle.bus": "bus",
    "vehicle.trailer": "trailer",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "vehicle.bicycle": "cyclist",
    "human.pedestrian": "pedestrian",
    "movable_object.barrier": "barrier",
    "movable_object.trafficcone": "traffic_cone",
    "movable_object": "other",
    "static_object": "other",
    "animal": "other",
}

#: Lyft Level 5 names in nuScenes-schema tables.
_LYFT = {
    "car": "car",
    "pedestrian": "pedestrian",
    "truck": "truck",
    "bus": "bus",
    "bicycle": "cyclist",
    "motorcycle": "motorcycle",
    "emergency_vehicle": "car",
    "other_vehicle": "other",
    "animal": "other",
}

_SYNTHETIC = {name: name for name in ("car", "van", "truck", "pedestrian", "cyclist")}

_AV2 = {
    "regular_vehicle": "car",
    "large_vehicle": "truck",
    "box_truck": "truck",
    "truck": "truck",
    "truck_cab": "truck",
    "bus": "bus",
    "school_bus": "bus",
    "articulated_bus": "bus",
    "vehicular_trailer": "trailer",
    "message_board_trailer": "trailer",
    "traffic_light_trailer": "trailer",
    "pedestrian": "pedestrian",
    "official_signaler": "pedestrian",
    "bicyclist": "cyclist",
    "bicycle": "cyclist",
    "motorcyclist": "motorcycle",
    "motorcycle": "motorcycle",
    "construction_cone": "traffic_cone",
    "construction_barrel": "barrier",
    "bollard": "barrier",
    "wheeled_rider": "cyclist",
}

_PANDASET = {
    "car": "car",
    "pickup truck": "car",
    "medium-sized truck": "truck",
    "semi-truck": "truck",
    "towed object": "trailer",
    "motorcycle": "motorcycle",
    "motorized scooter": "motorcycle",
    "other vehicle - construction vehicle": "construction_vehicle",
    "other vehicle - uncommon": "other",
    "other vehicle - pedicab": "cyclist",
    "emergency vehicle": "car",
    "bus": "bus",
    "bicycle": "cyclist",
    "pedestrian": "pedestrian",
    "pedestrian with object": "pedestrian",
    "cones": "traffic_cone",
    "pylons": "traffic_cone",
    "road barriers": "barrier",
    "temporary construction barriers": "barrier",
}


def _identity() -> dict[str, str]:
    return {name: name for name in PRODUCT_CLASSES}


#: dataset -> exact name (lower case) -> product class. nuScenes also matches by prefix.
DATASET_MAPPINGS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "kitti": MappingProxyType({**_identity(), **_KITTI}),
        "nuscenes": MappingProxyType({**_identity(), **_LYFT, **_NUSCENES_PREFIXES}),
        "synthetic": MappingProxyType({**_identity(), **_SYNTHETIC}),
        "av2": MappingProxyType({**_identity(), **_AV2}),
        "pandaset": MappingProxyType({**_identity(), **_PANDASET}),
        "any": MappingProxyType({**_KITTI, **_LYFT, **_NUSCENES_PREFIXES, **_AV2, **_PANDASET, **_SYNTHETIC, **_identity()}),
    }
)
#: Mappings whose keys are also dotted prefixes (``vehicle.bus`` covers ``vehicle.bus.bendy``).
_PREFIX_MAPPINGS = ("nuscenes", "any")


def product_class(name: str, dataset: str) -> str:
    """The product class of one dataset class name (``"other"`` when the mapping does not know it).

    Raises:
        ConfigError: an unknown ``dataset`` (the message lists the known ones).
    """
    table = _table(dataset)
    key = str(name).strip().lower()
    if key in table:
        return table[key]
    if dataset in _PREFIX_MAPPINGS:
        parts = key.split(".")
        for end in range(len(parts) - 1, 0, -1):
            found = table.get(".".join(parts[:end]))
            if found is not None:
                return found
    return "other"


def to_product_labels(labels: Iterable[str], dataset: str) -> np.ndarray:
    """``(K,)`` str product classes of ``(K,)`` dataset class names (see :func:`product_class`)."""
    names = [str(label) for label in labels]
    cache: dict[str, str] = {}
    return np.array([cache.setdefault(n, product_class(n, dataset)) for n in names] or [], dtype=str).reshape(len(names))


def with_product_labels(cuboids: Cuboids, dataset: str) -> Cuboids:
    """``cuboids`` with product-class ``labels`` and the dataset's names in ``source_labels``.

    Boxes that already carry ``source_labels`` keep them (mapping twice changes nothing).
    """
    source = cuboids.source_labels if cuboids.source_labels is not None else cuboids.labels
    return replace(cuboids, labels=to_product_labels(cuboids.labels, dataset), source_labels=np.asarray(source, dtype=str))


def _table(dataset: str) -> Mapping[str, str]:
    try:
        return DATASET_MAPPINGS[dataset]
    except KeyError:
        raise ConfigError(f"dataset: expected one of {sorted(DATASET_MAPPINGS)}, got {dataset!r}") from None


__all__ = ["DATASET_MAPPINGS", "PRODUCT_CLASSES", "product_class", "to_product_labels", "with_product_labels"]
