"""One product taxonomy: every dataset's class names mapped, the original kept in the record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import ConfigError
from av_pipeline.readers import open_log
from av_pipeline.taxonomy import DATASET_MAPPINGS, PRODUCT_CLASSES, product_class, to_product_labels, with_product_labels

#: The 23 nuScenes detection categories (v1.0) and the product class each becomes.
NUSCENES = {
    "animal": "other",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.personal_mobility": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "human.pedestrian.stroller": "pedestrian",
    "human.pedestrian.wheelchair": "pedestrian",
    "movable_object.barrier": "barrier",
    "movable_object.debris": "other",
    "movable_object.pushable_pullable": "other",
    "movable_object.trafficcone": "traffic_cone",
    "static_object.bicycle_rack": "other",
    "vehicle.bicycle": "cyclist",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.emergency.ambulance": "van",
    "vehicle.emergency.police": "car",
    "vehicle.motorcycle": "motorcycle",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}
KITTI = {"Car": "car", "Van": "van", "Truck": "truck", "Pedestrian": "pedestrian", "Person_sitting": "pedestrian",
         "Cyclist": "cyclist", "Tram": "other", "Misc": "other"}  # fmt: skip
LYFT = {"car": "car", "pedestrian": "pedestrian", "animal": "other", "other_vehicle": "other", "bus": "bus",
        "motorcycle": "motorcycle", "truck": "truck", "emergency_vehicle": "car", "bicycle": "cyclist"}  # fmt: skip


def test_product_classes() -> None:
    assert PRODUCT_CLASSES == (
        "car", "van", "truck", "bus", "pedestrian", "cyclist", "motorcycle", "trailer",
        "construction_vehicle", "barrier", "traffic_cone", "other",
    )  # fmt: skip
    for dataset, table in DATASET_MAPPINGS.items():
        assert set(table.values()) <= set(PRODUCT_CLASSES), dataset


@pytest.mark.parametrize(("dataset", "expected"), [("kitti", KITTI), ("nuscenes", NUSCENES), ("nuscenes", LYFT)])
def test_every_dataset_name_maps(dataset: str, expected: dict[str, str]) -> None:
    names = list(expected)
    assert to_product_labels(names, dataset).tolist() == list(expected.values())
    assert to_product_labels(names, "any").tolist() == list(expected.values())


def test_synthetic_av2_and_pandaset_names() -> None:
    assert to_product_labels(["car", "van", "truck", "pedestrian", "cyclist"], "synthetic").tolist() == ["car", "van", "truck", "pedestrian", "cyclist"]
    av2 = {"REGULAR_VEHICLE": "car", "LARGE_VEHICLE": "truck", "BOX_TRUCK": "truck", "ARTICULATED_BUS": "bus", "BICYCLIST": "cyclist",
           "MOTORCYCLIST": "motorcycle", "VEHICULAR_TRAILER": "trailer", "CONSTRUCTION_CONE": "traffic_cone", "BOLLARD": "barrier",
           "PEDESTRIAN": "pedestrian", "DOG": "other", "SIGN": "other"}  # fmt: skip
    assert to_product_labels(list(av2), "av2").tolist() == list(av2.values())
    pandaset = {"Car": "car", "Pickup Truck": "car", "Semi-truck": "truck", "Towed Object": "trailer", "Bus": "bus", "Bicycle": "cyclist",
                "Other Vehicle - Construction Vehicle": "construction_vehicle", "Cones": "traffic_cone", "Road Barriers": "barrier",
                "Pedestrian with Object": "pedestrian", "Animals - Bird": "other"}  # fmt: skip
    assert to_product_labels(list(pandaset), "pandaset").tolist() == list(pandaset.values())


def test_unknown_names_become_other_and_mapping_is_idempotent() -> None:
    assert product_class("hovercraft", "kitti") == "other"
    assert product_class("  CAR ", "kitti") == "car"
    assert product_class("vehicle.bus.double_decker", "nuscenes") == "bus"  # a new sub-category: its prefix decides
    for dataset in DATASET_MAPPINGS:
        assert to_product_labels(PRODUCT_CLASSES, dataset).tolist() == list(PRODUCT_CLASSES), dataset
    with pytest.raises(ConfigError, match=r"dataset: expected one of \['any', 'av2', 'kitti'.*got 'waymo'"):
        product_class("car", "waymo")


def test_with_product_labels_keeps_the_source_labels() -> None:
    boxes = Cuboids.from_arrays("ego", np.zeros((3, 3)), np.ones((3, 3)), np.zeros(3), ["Car", "Person_sitting", "Tram"])
    mapped = with_product_labels(boxes, "kitti")
    assert mapped.labels.tolist() == ["car", "pedestrian", "other"]
    assert mapped.source_labels.tolist() == ["Car", "Person_sitting", "Tram"]
    assert mapped.labels_as_given.tolist() == ["Car", "Person_sitting", "Tram"]
    again = with_product_labels(mapped, "kitti")
    assert again == mapped  # source labels survive a second mapping
    assert mapped.subset(np.array([False, True, True])).source_labels.tolist() == ["Person_sitting", "Tram"]
    assert mapped != boxes  # equality looks at the source labels too
    empty = with_product_labels(Cuboids.empty("ego"), "kitti")
    assert empty.labels.shape == empty.source_labels.shape == (0,)


@pytest.mark.realdata
def test_kitti_reader_gives_product_classes(shared_data: Path) -> None:
    with open_log(shared_data / "kitti" / "training") as reader:
        boxes = reader[0].annotations
    assert boxes.labels.tolist() == ["truck", "car", "cyclist"]
    assert boxes.source_labels.tolist() == ["Truck", "Car", "Cyclist"]


@pytest.mark.realdata
def test_nuscenes_schema_reader_gives_product_classes(shared_data: Path, tmp_path: Path) -> None:
    import json
    import shutil

    # The real Lyft tables in a data root with the files they name (the 5-point LiDAR file,
    # a small PNG for every camera), the boxes' category renamed to another Lyft name.
    lyft = shared_data / "lyft_nuscenes_schema"
    tables = tmp_path / "v1.01-train"
    shutil.copytree(lyft / "tables", tables)
    categories = json.loads((tables / "category.json").read_text())
    for row in categories:
        row["name"] = {"car": "bicycle", "bicycle": "car"}.get(row["name"], row["name"])
    (tables / "category.json").write_text(json.dumps(categories))
    five_points = next((lyft / "lidar").glob("*.bin")).read_bytes()
    from PIL import Image

    for row in json.loads((tables / "sample_data.json").read_text()):
        path = tmp_path / row["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if row["fileformat"] == "bin":
            path.write_bytes(five_points)
        else:
            Image.new("RGB", (row["width"], row["height"])).save(path, format="JPEG")
    with open_log(tmp_path) as reader:
        boxes = reader[0].annotations
    assert boxes.labels.tolist() == ["cyclist"] * 4
    assert boxes.source_labels.tolist() == ["bicycle"] * 4


def test_mcap_round_trip_keeps_source_labels(tmp_path: Path) -> None:
    from av_pipeline.records import Frame, LidarSweep, OnboardPerception
    from av_pipeline.writers import write_foxglove_mcap
    from calibration import SE3
    from calibration.rig import SensorRig

    truth = with_product_labels(
        Cuboids.from_arrays("ego", [[5.0, 0.0, 0.8], [9.0, 2.0, 1.0]], [[4.0, 1.8, 1.6], [0.8, 0.6, 1.7]], [0.0, 1.0], ["Car", "Person_sitting"]),
        "kitti",
    )
    onboard = Cuboids.from_arrays("ego", [[5.1, 0.0, 0.8]], [[4.0, 1.8, 1.6]], [0.0], ["car"], [0.9], [4])
    rig = SensorRig(cameras={}, lidars={"top": SE3.identity()})
    sweep = LidarSweep("top", 1_000, np.zeros((3, 3), np.float32))
    frame = Frame("d", 1_000, rig, SE3.identity(), {"top": sweep}, {}, OnboardPerception(onboard), truth)
    write_foxglove_mcap(tmp_path / "d.mcap", [frame])
    with open_log(tmp_path / "d.mcap") as reader:
        read = reader[0]
    assert read.annotations.labels.tolist() == ["car", "pedestrian"]
    assert read.annotations.source_labels.tolist() == ["Car", "Person_sitting"]
    # Product classes written without a source label read back as their own source.
    assert read.onboard.cuboids.labels.tolist() == ["car"]
    assert read.onboard.cuboids.labels_as_given.tolist() == ["car"]


def test_mcap_labels_in_a_dataset_spelling_are_mapped(tmp_path: Path) -> None:
    from av_pipeline.records import Frame, LidarSweep
    from av_pipeline.writers import write_ros2_mcap
    from calibration import SE3
    from calibration.rig import SensorRig

    truth = Cuboids.from_arrays("ego", [[5.0, 0.0, 0.8], [20.0, 0.0, 1.5]], [[4.0, 1.8, 1.6], [12.0, 2.5, 3.5]], [0.0, 0.0], ["Car", "vehicle.bus.rigid"])
    rig = SensorRig(cameras={}, lidars={"top": SE3.identity()})
    frame = Frame("d", 1_000, rig, SE3.identity(), {"top": LidarSweep("top", 1_000, np.zeros((3, 3), np.float32))}, {}, None, truth)
    write_ros2_mcap(tmp_path / "d.mcap", [frame])
    with open_log(tmp_path / "d.mcap") as reader:
        read = reader[0].annotations
    assert read.labels.tolist() == ["car", "bus"]
    assert read.source_labels.tolist() == ["Car", "vehicle.bus.rigid"]
