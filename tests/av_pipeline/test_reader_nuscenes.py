"""nuScenes-schema reader on the Lyft tables, and the nuScenes keyframe sweep loader."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from av_pipeline.errors import LogFormatError
from av_pipeline.readers import open_log
from av_pipeline.readers.nuscenes import NuScenesReader, load_nuscenes_sweep, read_nuscenes_lidar, timestamp_us_to_ns
from calibration.se3 import SE3

pytestmark = pytest.mark.realdata

LYFT_SCENE = "host-a101-lidar0-1240710366399037786-1240710391298976894"
LYFT_LIDAR_TOP_NS = 1_556_675_185_903_083_200


def _pickle(path: Path):
    with open(path, "rb") as handle:
        return pickle.load(handle)  # test oracle only


def _table(root: Path, name: str) -> list[dict]:
    return json.loads((root / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def lyft(shared_data: Path) -> Path:
    return shared_data / "lyft_nuscenes_schema"


@pytest.fixture(scope="module")
def lyft_oracle(lyft: Path) -> dict:
    """``lyft_infos_val.pkl`` describes the sample in the tables (host-a101); ``lyft_infos.pkl``
    describes another one (host-a017, the 5-point file on disk) and is not an oracle for it."""
    (info,) = _pickle(lyft / "lyft_infos_val.pkl")["infos"]
    return info


@pytest.fixture(scope="module")
def jpeg_1920x1080() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1920, 1080), (90, 120, 150)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture()
def lyft_root(tmp_path: Path, lyft: Path, jpeg_1920x1080: bytes) -> Path:
    """A complete data root: the real tables in a version folder, and the files they name
    (LiDAR files: the real 5-point Lyft file's bytes; images: a plain 1920x1080 JPEG)."""
    root = tmp_path / "lyft"
    shutil.copytree(lyft / "tables", root / "v1.01-train")
    five_points = next((lyft / "lidar").glob("*.bin")).read_bytes()
    for row in _table(root / "v1.01-train", "sample_data"):
        path = root / row["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(five_points if row["fileformat"] == "bin" else jpeg_1920x1080)
    return root


@pytest.fixture()
def lyft_frame(lyft_root: Path):
    reader = open_log(lyft_root)
    (ref,) = reader.list_frames()
    return reader, ref, reader.load_frame(ref)


# ---------------------------------------------------------------------- real tables
def test_real_tables_list_one_sample(lyft: Path) -> None:
    reader = open_log(lyft)
    assert isinstance(reader, NuScenesReader)
    assert reader.tables_dir == lyft / "tables" and reader.data_root == lyft
    refs = reader.list_frames()
    assert [(r.index, r.log_id, r.timestamp_ns, r.reader) for r in refs] == [(0, LYFT_SCENE, LYFT_LIDAR_TOP_NS, "nuscenes")]
    assert len(_table(lyft / "tables", "sample")) == 1 and len(_table(lyft / "tables", "sample_annotation")) == 4


def test_real_tables_missing_file_names_table_token_and_path(lyft: Path) -> None:
    reader = open_log(lyft / "tables")  # the tables folder works as well as the data root
    with pytest.raises(LogFormatError, match=r"file 'lidar/host-a101_lidar1_1240710385903083166.bin' not found") as info:
        reader.load_frame(reader.list_frames()[0])
    assert info.value.path == str(lyft / "tables" / "sample_data.json")
    lidar_top = next(r for r in _table(lyft / "tables", "sample_data") if r["filename"].startswith("lidar/host-a101_lidar1"))
    assert info.value.field == f"sample_data {lidar_top['token']}.filename"


# ---------------------------------------------------------------------- complete data root
def test_frame_contents(lyft_frame, lyft: Path) -> None:
    reader, ref, frame = lyft_frame
    assert frame.key == ref.key == (LYFT_SCENE, LYFT_LIDAR_TOP_NS)
    assert list(frame.lidars) == ["LIDAR_TOP", "LIDAR_FRONT_LEFT", "LIDAR_FRONT_RIGHT"]  # primary first
    sweep = frame.lidar
    assert sweep.sensor == "LIDAR_TOP" and sweep.timestamp_ns == LYFT_LIDAR_TOP_NS
    assert sweep.columns == ("x", "y", "z", "intensity", "ring")
    np.testing.assert_array_equal(sweep.points, read_nuscenes_lidar(next((lyft / "lidar").glob("*.bin"))))
    assert sorted(frame.images) == sorted(["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_FRONT_ZOOMED"])
    front = frame.images["CAM_FRONT"]
    assert front.timestamp_ns == 1_556_675_185_850_000_000 and front.decode().shape == (1080, 1920, 3)
    assert frame.source_uri.endswith("lidar/host-a101_lidar1_1240710385903083166.bin")


def test_rig_and_pose_equal_the_info_oracle(lyft_frame, lyft_oracle: dict) -> None:
    reader, ref, frame = lyft_frame
    ego_SE3_lidar = frame.rig.ego_SE3_lidar("LIDAR_TOP")
    expected = SE3.from_wxyz(lyft_oracle["lidar2ego_rotation"], lyft_oracle["lidar2ego_translation"])
    assert ego_SE3_lidar.allclose(expected, atol_rad=1e-12, atol_m=1e-12)
    world = SE3.from_wxyz(lyft_oracle["ego2global_rotation"], lyft_oracle["ego2global_translation"])
    assert frame.world_SE3_ego.allclose(world, atol_rad=1e-12, atol_m=1e-9)
    assert len(lyft_oracle["cams"]) == 6  # mmdet3d leaves CAM_FRONT_ZOOMED out; the reader keeps it
    poses = reader.sample_data_ego_poses(ref)
    for channel, cam in lyft_oracle["cams"].items():
        rig_camera = frame.rig.cameras[channel]
        np.testing.assert_allclose(rig_camera.model.K, cam["cam_intrinsic"], atol=1e-9)
        assert (rig_camera.model.width_px, rig_camera.model.height_px) == (1920, 1080)
        assert rig_camera.ego_SE3_camera.allclose(SE3.from_wxyz(cam["sensor2ego_rotation"], cam["sensor2ego_translation"]), atol_rad=1e-12, atol_m=1e-12)
        assert frame.images[channel].timestamp_ns == timestamp_us_to_ns(cam["timestamp"])
        camera_world = SE3.from_wxyz(cam["ego2global_rotation"], cam["ego2global_translation"])
        assert poses[channel].allclose(camera_world, atol_rad=1e-12, atol_m=1e-9)
        # mmdet3d's sensor2lidar goes through the world with each sensor's own ego pose
        lidar_SE3_camera = (
            ego_SE3_lidar.inverse()
            .compose(frame.world_SE3_ego.inverse())
            .compose(poses[channel])
            .compose(rig_camera.ego_SE3_camera)
        )
        np.testing.assert_allclose(lidar_SE3_camera.rotation, cam["sensor2lidar_rotation"], atol=1e-9)
        np.testing.assert_allclose(lidar_SE3_camera.translation, cam["sensor2lidar_translation"], atol=1e-9)


def test_boxes_equal_the_oracle_in_the_lidar_frame(lyft_frame, lyft_oracle: dict) -> None:
    _, _, frame = lyft_frame
    boxes = frame.annotations
    assert len(boxes) == 4 and boxes.frame == "ego"
    assert boxes.labels.tolist() == lyft_oracle["gt_names"].tolist() == ["car"] * 4
    in_lidar = boxes.transform(frame.rig.ego_SE3_lidar("LIDAR_TOP").inverse(), "LIDAR_TOP")
    gt = lyft_oracle["gt_boxes"]  # x, y, z (centre), l, w, h, yaw in LIDAR_TOP
    np.testing.assert_allclose(in_lidar.centers_m, gt[:, :3], atol=1e-6)
    np.testing.assert_allclose(in_lidar.sizes_m, gt[:, 3:6], atol=1e-12)
    # boxes are upright in ego (roll/pitch dropped at world -> ego), the oracle's yaw is taken
    # once in the LiDAR frame: with the 1.3 degree LiDAR tilt they differ by up to ~6e-4 rad
    np.testing.assert_allclose(in_lidar.yaws_rad, gt[:, 6], atol=1e-3)
    assert boxes.num_lidar_points.tolist() == [0, 0, 0, 0]  # counted in the 5-point stand-in sweep


def test_boxes_back_in_world_equal_the_table(lyft_frame, lyft_root: Path) -> None:
    reader, _, frame = lyft_frame
    rows = _table(lyft_root / "v1.01-train", "sample_annotation")
    world = frame.annotations.transform(frame.world_SE3_ego, "world")
    np.testing.assert_allclose(world.centers_m, [r["translation"] for r in rows], atol=1e-9)
    np.testing.assert_allclose(world.sizes_m, [[r["size"][1], r["size"][0], r["size"][2]] for r in rows])
    table_yaw = [2 * np.arctan2(r["rotation"][3], r["rotation"][0]) for r in rows]  # rotations are about z only
    # upright in ego, then upright in world again: the 2.8 degree ego roll/pitch costs ~1e-3 rad
    np.testing.assert_allclose(np.angle(np.exp(1j * (world.yaws_rad - table_yaw))), 0.0, atol=2e-3)
    # track ids: the instance's row in instance.json, and back
    tokens = reader.instance_tokens
    assert [tokens[t] for t in frame.annotations.track_ids] == [r["instance_token"] for r in rows]
    assert len(set(frame.annotations.track_ids.tolist())) == 4


def test_options_scene_and_cameras(lyft_root: Path) -> None:
    reader = open_log(lyft_root, cameras="CAM_FRONT,CAM_BACK", scene=LYFT_SCENE)
    frame = reader.load_frame(reader.list_frames()[0])
    assert sorted(frame.images) == ["CAM_BACK", "CAM_FRONT"] and sorted(frame.rig.cameras) == ["CAM_BACK", "CAM_FRONT"]
    assert open_log(lyft_root, scene="another-scene").list_frames() == []


# ---------------------------------------------------------------------- bad input
def test_truncated_lidar_file(lyft_root: Path) -> None:
    path = lyft_root / "lidar" / "host-a101_lidar1_1240710385903083166.bin"
    path.write_bytes(path.read_bytes()[:-3])
    reader = open_log(lyft_root)
    with pytest.raises(LogFormatError, match="expected a multiple of 20 bytes .* got 97 bytes") as info:
        reader.load_frame(reader.list_frames()[0])
    assert info.value.path == str(path)


def test_missing_and_broken_tables(lyft_root: Path) -> None:
    tables = lyft_root / "v1.01-train"
    (tables / "instance.json").unlink()
    reader = open_log(lyft_root)
    with pytest.raises(LogFormatError, match="missing nuScenes table instance.json"):
        reader.load_frame(reader.list_frames()[0])
    (tables / "sample.json").write_text('[{"token": "abc", ')
    with pytest.raises(LogFormatError, match="sample.json is not JSON"):
        open_log(lyft_root)
    (tables / "sample.json").unlink()
    with pytest.raises(LogFormatError, match="no reader recognises"):
        open_log(lyft_root)


def test_unknown_token(lyft_root: Path) -> None:
    tables = lyft_root / "v1.01-train"
    rows = _table(tables, "sample_data")
    rows[0]["calibrated_sensor_token"] = "nowhere"
    (tables / "sample_data.json").write_text(json.dumps(rows))
    with pytest.raises(LogFormatError, match="calibrated_sensor_token nowhere is not in calibrated_sensor.json") as info:
        open_log(lyft_root)
    assert info.value.field == f"sample_data {rows[0]['token']}"


def test_row_without_a_required_field(lyft_root: Path) -> None:
    tables = lyft_root / "v1.01-train"
    rows = _table(tables, "sample_annotation")
    del rows[2]["size"]
    (tables / "sample_annotation.json").write_text(json.dumps(rows))
    reader = open_log(lyft_root)
    with pytest.raises(LogFormatError, match="missing") as info:
        reader.load_frame(reader.list_frames()[0])
    assert info.value.field == "sample_annotation[2].size"


# ---------------------------------------------------------------------- nuScenes keyframe (no tables)
def test_nuscenes_keyframe_sweep_and_published_counts(shared_data: Path) -> None:
    folder = shared_data / "nuscenes_keyframe"
    path = next(folder.glob("*LIDAR_TOP*.pcd.bin"))
    sweep = load_nuscenes_sweep(path)
    assert sweep.num_points == 34_688 and sweep.points.shape == (34_688, 5)
    assert sweep.sensor == "LIDAR_TOP" and sweep.timestamp_ns == 1_532_402_927_647_951_000
    assert set(np.unique(sweep.column("ring")).tolist()) <= set(range(32))  # HDL-32E
    info = _pickle(folder / "n015-2018-07-24-11-22-45+0800.pkl")["data_list"][0]
    assert info["lidar_points"]["num_pts_feats"] == 5
    from av_pipeline.boxes import Cuboids

    bbox = np.array([i["bbox_3d"] for i in info["instances"]])  # x, y, z (centre), l, w, h, yaw in LIDAR_TOP
    published = np.array([i["num_lidar_pts"] for i in info["instances"]])
    boxes = Cuboids.from_arrays("LIDAR_TOP", bbox[:, :3], bbox[:, 3:6], bbox[:, 6], ["x"] * len(bbox))
    counts = boxes.count_points(sweep.points)
    assert (counts == published).sum() >= 61  # 61 of 69 exact, as the data README says
    assert np.abs(counts - published).max() <= 0.1 * published.max()


def test_sweep_loader_needs_a_nuscenes_name_or_arguments(tmp_path: Path) -> None:
    path = tmp_path / "points.bin"
    np.zeros((3, 5), np.float32).tofile(path)
    with pytest.raises(LogFormatError, match="CHANNEL"):
        load_nuscenes_sweep(path)
    assert load_nuscenes_sweep(path, "LIDAR_TOP", 7).timestamp_ns == 7
