"""nuScenes-schema tables: calibrated_sensor / ego_pose round trips, bad input, rigs, and
the Lyft sample checked against mmdetection3d's info pkl."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from calibration import SE3, CalibrationError, CalibrationFileError
from calibration.formats import (
    NuScenesCalibratedSensor,
    NuScenesEgoPose,
    format_nuscenes_calibrated_sensors,
    parse_nuscenes_calibrated_sensors,
    parse_nuscenes_ego_poses,
    read_nuscenes_calibrated_sensors,
    read_nuscenes_ego_poses,
    read_nuscenes_rig,
    write_nuscenes_calibrated_sensors,
    write_nuscenes_ego_poses,
)

LYFT_SAMPLE = "199e3146d98e6a2047bafbc222b92f5b67c4640a69b0d1d35b710242de816679"


def random_se3(rng: np.random.Generator) -> SE3:
    q = rng.normal(size=4)
    return SE3.from_wxyz(q / np.linalg.norm(q), rng.normal(size=3))


def synthetic_records(seed: int = 0) -> list[NuScenesCalibratedSensor]:
    rng = np.random.default_rng(seed)
    K = [[1266.417203046554, 0.0, 816.2670197447984], [0.0, 1266.417203046554, 491.50706579294757], [0.0, 0.0, 1.0]]
    return [
        NuScenesCalibratedSensor.from_SE3("cs-cam", "s-cam", random_se3(rng), np.array(K)),
        NuScenesCalibratedSensor.from_SE3("cs-lidar", "s-lidar", random_se3(rng)),
        NuScenesCalibratedSensor("cs-radar", "s-radar", (3.412, 0.0, 0.5), (0.9999984769132877, 0.0, 0.0, 0.0017453283658983088)),
    ]


def write_tables(folder, records, sensors, sample_data):
    folder.mkdir(parents=True, exist_ok=True)
    write_nuscenes_calibrated_sensors(records, folder / "calibrated_sensor.json")
    (folder / "sensor.json").write_text(json.dumps(sensors))
    (folder / "sample_data.json").write_text(json.dumps(sample_data))


SENSORS = [
    {"token": "s-cam", "channel": "CAM_FRONT", "modality": "camera"},
    {"token": "s-lidar", "channel": "LIDAR_TOP", "modality": "lidar"},
    {"token": "s-radar", "channel": "RADAR_FRONT", "modality": "radar"},
]
SAMPLE_DATA = [
    {"token": "sd-cam", "sample_token": "sample-1", "calibrated_sensor_token": "cs-cam", "is_key_frame": True, "width": 1600, "height": 900},
    {"token": "sd-lidar", "sample_token": "sample-1", "calibrated_sensor_token": "cs-lidar", "is_key_frame": True, "width": 0, "height": 0},
    {"token": "sd-radar", "sample_token": "sample-1", "calibrated_sensor_token": "cs-radar", "is_key_frame": True, "width": 0, "height": 0},
    {"token": "sd-cam-sweep", "sample_token": "sample-1", "calibrated_sensor_token": "cs-cam", "is_key_frame": False, "width": 1600, "height": 900},
]


# ---------------------------------------------------------------------- round trips
def test_calibrated_sensor_round_trip_is_exact(tmp_path):
    records = synthetic_records()
    write_nuscenes_calibrated_sensors(records, tmp_path / "calibrated_sensor.json")
    table = read_nuscenes_calibrated_sensors(tmp_path / "calibrated_sensor.json")
    assert list(table.records.values()) == records
    assert table.records["cs-lidar"].camera_intrinsic is None
    assert table.records["cs-lidar"].ego_SE3_sensor.allclose(records[1].ego_SE3_sensor, atol_rad=1e-15, atol_m=0.0)
    assert table.unrepresented == ()


def test_ego_pose_round_trip_keeps_fractional_microseconds(tmp_path):
    rng = np.random.default_rng(1)
    poses = [
        NuScenesEgoPose("ep-1", 1532402927647951, tuple(rng.normal(size=3)), tuple(random_se3(rng).as_wxyz())),
        NuScenesEgoPose("ep-2", 1556675185903083.2, (457.35, 2679.91, -18.62), (0.97631738386773, 0.024355142980323354, 0.00012664593502934425, -0.21496785091935613)),
    ]
    write_nuscenes_ego_poses(poses, tmp_path / "ego_pose.json")
    back = read_nuscenes_ego_poses(tmp_path / "ego_pose.json")
    assert list(back.records.values()) == poses
    assert back.records["ep-1"].timestamp_ns == 1532402927647951000
    assert back.records["ep-2"].timestamp_ns == 1556675185903083200
    assert isinstance(back.records["ep-1"].timestamp_us, int)


def test_records_keep_the_quaternion_sign_they_were_given():
    # Tables store q or -q; the record keeps what was stored, the transform is the same.
    record = synthetic_records()[2]
    flipped = NuScenesCalibratedSensor("x", "y", record.translation_m, tuple(-v for v in record.rotation_wxyz))
    assert flipped.rotation_wxyz[0] < 0
    assert flipped.ego_SE3_sensor.allclose(record.ego_SE3_sensor, atol_rad=1e-15, atol_m=0.0)
    text = format_nuscenes_calibrated_sensors([flipped])
    assert parse_nuscenes_calibrated_sensors(text).records["x"] == flipped


# ---------------------------------------------------------------------- bad input
def _table_text(**changes) -> str:
    row = {"token": "t", "sensor_token": "s", "translation": [1.0, 2.0, 3.0], "rotation": [1.0, 0.0, 0.0, 0.0], "camera_intrinsic": []}
    row.update(changes)
    for key in [k for k, v in changes.items() if v is KeyError]:
        del row[key]
    return json.dumps([row])


@pytest.mark.parametrize(
    "text, match",
    [
        (_table_text(rotation=KeyError), r"cs.json: field 'calibrated_sensor\[0\].rotation': missing"),
        (_table_text(translation=[1.0, 2.0]), r"field 'calibrated_sensor\[0\].translation': expected 3 numbers, got 2"),
        (_table_text(rotation=[0.9, 0.1, 0.0, 0.0]), r"field 'calibrated_sensor\[0\].rotation': expected a unit quaternion .* got norm off by 0.094"),
        (_table_text(translation=[1.0, "two", 3.0]), r"field 'calibrated_sensor\[0\].translation': expected a number at position 2, got malformed 'two'"),
        (_table_text(translation=[1.0, True, 3.0]), r"field 'calibrated_sensor\[0\].translation': expected a number at position 2, got bool True"),
        (_table_text(translation=[1.0, float("nan"), 3.0]), r"field 'calibrated_sensor\[0\].translation': expected a finite number at position 2, got nan"),
        (_table_text(camera_intrinsic=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), r"field 'calibrated_sensor\[0\].camera_intrinsic': expected \[\] or 3 rows of 3 numbers, got 2 rows"),
        (_table_text(camera_intrinsic=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0]]), r"field 'calibrated_sensor\[0\].camera_intrinsic\[2\]': expected 3 numbers, got 2"),
        ("[{\"token\": \"t\",", r"cs.json: expected JSON, got a syntax error at line 1"),
        ('{"token": "t"}', r"cs.json: expected a JSON list of records, got dict"),
        ("[1, 2]", r"field 'calibrated_sensor\[0\]': expected a mapping, got int 1"),
    ],
)
def test_calibrated_sensor_bad_input(text, match):
    with pytest.raises(CalibrationFileError, match=match):
        parse_nuscenes_calibrated_sensors(text, path="cs.json")


def test_duplicate_tokens_and_unknown_keys():
    row = json.loads(_table_text())[0]
    with pytest.raises(CalibrationFileError, match=r"field 'calibrated_sensor\[1\].token': expected unique tokens, got 't' twice"):
        parse_nuscenes_calibrated_sensors(json.dumps([row, row]))
    notes = parse_nuscenes_calibrated_sensors(json.dumps([dict(row, firmware="1.2")])).unrepresented
    assert [(note.field, note.reason) for note in notes] == [("calibrated_sensor[0].firmware", "unknown key; ignored")]


def test_ego_pose_bad_input():
    good = {"token": "e", "timestamp": 1, "rotation": [1.0, 0.0, 0.0, 0.0], "translation": [0.0, 0.0, 0.0]}
    with pytest.raises(CalibrationFileError, match=r"ego.json: field 'ego_pose\[0\].timestamp': missing"):
        parse_nuscenes_ego_poses(json.dumps([{k: v for k, v in good.items() if k != "timestamp"}]), path="ego.json")
    with pytest.raises(CalibrationFileError, match=r"field 'ego_pose\[0\].timestamp': expected a number, got str '1'"):
        parse_nuscenes_ego_poses(json.dumps([dict(good, timestamp="1")]))
    with pytest.raises(CalibrationFileError, match=r"field 'ego_pose\[0\].rotation': expected 4 numbers, got 3"):
        parse_nuscenes_ego_poses(json.dumps([dict(good, rotation=[0.0, 0.0, 1.0])]))


# ---------------------------------------------------------------------- rigs
def test_rig_for_one_sample(tmp_path):
    records = synthetic_records()
    write_tables(tmp_path / "v1.0-mini", records, SENSORS, SAMPLE_DATA)
    built = read_nuscenes_rig(tmp_path, sample_token="sample-1")  # data root with one version folder
    assert sorted(built.rig.cameras) == ["CAM_FRONT"] and sorted(built.rig.lidars) == ["LIDAR_TOP"]
    camera = built.rig.cameras["CAM_FRONT"]
    assert (camera.model.width_px, camera.model.height_px) == (1600, 900)
    np.testing.assert_array_equal(camera.model.K, records[0].K)
    assert camera.model.distortion_model == "pinhole"
    assert camera.ego_SE3_camera.allclose(records[0].ego_SE3_sensor, atol_rad=0.0, atol_m=0.0)
    assert built.rig.lidars["LIDAR_TOP"].allclose(records[1].ego_SE3_sensor, atol_rad=0.0, atol_m=0.0)
    assert built.sample_data_tokens == {"CAM_FRONT": "sd-cam", "LIDAR_TOP": "sd-lidar", "RADAR_FRONT": "sd-radar"}
    assert [(note.field, "radar" in note.reason) for note in built.unrepresented] == [("RADAR_FRONT", True)]


def test_rig_for_chosen_sample_data(tmp_path):
    write_tables(tmp_path, synthetic_records(), SENSORS, SAMPLE_DATA)
    built = read_nuscenes_rig(tmp_path, sample_data_tokens=["sd-cam-sweep", "sd-lidar"])
    assert sorted(built.rig.cameras) == ["CAM_FRONT"] and built.unrepresented == ()
    assert built.sample_data_tokens["CAM_FRONT"] == "sd-cam-sweep"


def test_rig_errors(tmp_path):
    write_tables(tmp_path, synthetic_records(), SENSORS, SAMPLE_DATA)
    with pytest.raises(CalibrationFileError, match=r"sample_data.json: field 'sample_token': expected key-frame records of sample 'nope', found none"):
        read_nuscenes_rig(tmp_path, sample_token="nope")
    with pytest.raises(CalibrationFileError, match=r"expected known sample_data tokens, got unknown \['sd-x'\]"):
        read_nuscenes_rig(tmp_path, sample_data_tokens=["sd-x"])
    with pytest.raises(CalibrationError, match="exactly one of sample_token or sample_data_tokens"):
        read_nuscenes_rig(tmp_path)
    records = synthetic_records()
    records[0] = NuScenesCalibratedSensor("cs-cam", "s-cam", records[0].translation_m, records[0].rotation_wxyz, None)
    write_tables(tmp_path / "broken", records, SENSORS, SAMPLE_DATA)
    with pytest.raises(CalibrationFileError, match=r"field 'cs-cam.camera_intrinsic': expected a 3x3 matrix for camera CAM_FRONT, got \[\]"):
        read_nuscenes_rig(tmp_path / "broken", sample_token="sample-1")
    write_tables(tmp_path / "root" / "v1.0-mini", synthetic_records(), SENSORS, SAMPLE_DATA)
    write_tables(tmp_path / "root" / "v1.0-trainval", synthetic_records(), SENSORS, SAMPLE_DATA)
    with pytest.raises(CalibrationFileError, match=r"expected calibrated_sensor.json here or in exactly one sub-folder, found \['v1.0-mini', 'v1.0-trainval'\]"):
        read_nuscenes_rig(tmp_path / "root", sample_token="sample-1")


# ---------------------------------------------------------------------- real data: Lyft
@pytest.mark.realdata
def test_lyft_rig_matches_mmdet3d_infos(shared_data):
    tables = shared_data / "lyft_nuscenes_schema/tables"
    built = read_nuscenes_rig(tables, sample_token=LYFT_SAMPLE)
    assert sorted(built.rig.lidars) == ["LIDAR_FRONT_LEFT", "LIDAR_FRONT_RIGHT", "LIDAR_TOP"]
    assert len(built.rig.cameras) == 7 and built.unrepresented == ()
    # lyft_infos_val.pkl describes this very sample (host-a101); lyft_infos.pkl is another
    # one (host-a017) and cannot serve as an oracle for these tables.
    with open(shared_data / "lyft_nuscenes_schema/lyft_infos_val.pkl", "rb") as stream:
        info = pickle.load(stream)["infos"][0]  # test oracle only
    assert info["token"] == LYFT_SAMPLE

    ego_SE3_lidar = built.rig.lidars["LIDAR_TOP"]
    np.testing.assert_allclose(ego_SE3_lidar.translation, info["lidar2ego_translation"], atol=1e-12)
    assert ego_SE3_lidar.allclose(SE3.from_wxyz(info["lidar2ego_rotation"]), atol_rad=1e-12, atol_m=np.inf)

    ego_poses = read_nuscenes_ego_poses(tables / "ego_pose.json").records
    sample_data = {row["token"]: row for row in json.loads((tables / "sample_data.json").read_text())}
    world_SE3_ego_at_lidar = ego_poses[sample_data[built.sample_data_tokens["LIDAR_TOP"]]["ego_pose_token"]].world_SE3_ego
    np.testing.assert_allclose(world_SE3_ego_at_lidar.translation, info["ego2global_translation"], atol=1e-9)
    assert len(info["cams"]) == 6
    for channel, cam in info["cams"].items():
        camera = built.rig.cameras[channel]
        assert built.sample_data_tokens[channel] == cam["sample_data_token"]
        np.testing.assert_allclose(camera.model.K, cam["cam_intrinsic"], atol=1e-9)
        np.testing.assert_allclose(camera.ego_SE3_camera.translation, cam["sensor2ego_translation"], atol=1e-12)
        assert camera.ego_SE3_camera.allclose(SE3.from_wxyz(cam["sensor2ego_rotation"]), atol_rad=1e-12, atol_m=np.inf)
        # mmdet3d's sensor2lidar goes through the ego poses at the camera's and the LiDAR's
        # own timestamps: lidar <- ego(t_lidar) <- world <- ego(t_cam) <- camera.
        world_SE3_ego_at_cam = ego_poses[sample_data[cam["sample_data_token"]]["ego_pose_token"]].world_SE3_ego
        lidar_SE3_camera = (
            ego_SE3_lidar.inverse()
            .compose(world_SE3_ego_at_lidar.inverse())
            .compose(world_SE3_ego_at_cam)
            .compose(camera.ego_SE3_camera)
        )
        np.testing.assert_allclose(lidar_SE3_camera.rotation, cam["sensor2lidar_rotation"], atol=1e-9)
        np.testing.assert_allclose(lidar_SE3_camera.translation, cam["sensor2lidar_translation"], atol=1e-9)
        # a static rig (no ego motion) is off by what the car moved between the two stamps
        static = ego_SE3_lidar.inverse().compose(camera.ego_SE3_camera)
        moved = np.linalg.norm(world_SE3_ego_at_cam.translation - world_SE3_ego_at_lidar.translation)
        np.testing.assert_allclose(np.linalg.norm(static.translation - cam["sensor2lidar_translation"]), moved, rtol=0.05)


@pytest.mark.realdata
def test_lyft_tables_round_trip(shared_data, tmp_path):
    tables = shared_data / "lyft_nuscenes_schema/tables"
    calibrated = read_nuscenes_calibrated_sensors(tables / "calibrated_sensor.json")
    poses = read_nuscenes_ego_poses(tables / "ego_pose.json")
    write_nuscenes_calibrated_sensors(calibrated.records.values(), tmp_path / "calibrated_sensor.json")
    write_nuscenes_ego_poses(poses.records.values(), tmp_path / "ego_pose.json")
    assert read_nuscenes_calibrated_sensors(tmp_path / "calibrated_sensor.json").records == calibrated.records
    assert read_nuscenes_ego_poses(tmp_path / "ego_pose.json").records == poses.records
    # the written JSON holds the same numbers as the original tables
    original = {row["token"]: row for row in json.loads((tables / "calibrated_sensor.json").read_text())}
    for row in json.loads((tmp_path / "calibrated_sensor.json").read_text()):
        assert row["rotation"] == original[row["token"]]["rotation"]
        assert row["translation"] == original[row["token"]]["translation"]
        assert row["camera_intrinsic"] == original[row["token"]]["camera_intrinsic"]
