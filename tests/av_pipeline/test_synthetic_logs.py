"""Synthetic logs written through the ingest writers and read back through the ingest readers:
MCAP (foxglove, ROS 2), KITTI raw, side files, determinism, the bundled log and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from av_pipeline.cli import main
from av_pipeline.readers import open_log
from av_pipeline.synthetic import (
    BUNDLED_CONFIG,
    SimulationConfig,
    SyntheticDrive,
    bundled_log,
    default_cameras,
    load_anomalies,
    load_labels,
    write_synthetic_log,
)

SMALL = SimulationConfig(frames=3, seed=4, log_id="small", cameras=default_cameras(0.3))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The same 3-frame log written twice (MCAP + KITTI raw), and the frames as generated."""
    captured = []
    first = write_synthetic_log(SMALL, tmp_path_factory.mktemp("a"), formats=("mcap", "kitti_raw"), on_frame=captured.append)
    second = write_synthetic_log(SMALL, tmp_path_factory.mktemp("b"), formats=("mcap", "kitti_raw"))
    return first, second, captured


def test_mcap_reads_back_the_same_frames(written) -> None:
    log, _, generated = written
    with open_log(log.mcap) as reader:
        refs = reader.list_frames()
        assert [r.timestamp_ns for r in refs] == [g.frame.timestamp_ns for g in generated]
        for ref, synthetic in zip(refs, generated):
            source, read = synthetic.frame, reader.load_frame(ref)
            assert read.lidar.equals(source.lidar)  # points bit for bit, per-point times included
            assert read.world_SE3_ego.allclose(source.world_SE3_ego, atol_rad=1e-12, atol_m=1e-9)
            assert set(read.images) == {"front", "left", "right"}
            for name, image in read.images.items():
                assert image.data == source.images[name].data and image.encoding == "jpeg"
                assert read.rig.cameras[name].model == source.rig.cameras[name].model
                assert read.rig.cameras[name].ego_SE3_camera.allclose(source.rig.cameras[name].ego_SE3_camera, atol_rad=1e-12, atol_m=1e-12)
            truth, boxes = source.annotations, read.annotations
            np.testing.assert_array_equal(boxes.track_ids, truth.track_ids)
            np.testing.assert_array_equal(boxes.labels, truth.labels)
            np.testing.assert_array_equal(boxes.num_lidar_points, truth.num_lidar_points)
            np.testing.assert_allclose(boxes.centers_m, truth.centers_m, atol=1e-12)
            np.testing.assert_allclose(boxes.sizes_m, truth.sizes_m, atol=1e-12)
            np.testing.assert_allclose(np.cos(boxes.yaws_rad - truth.yaws_rad), 1.0, atol=1e-12)
            np.testing.assert_array_equal(read.onboard.cuboids.track_ids, source.onboard.cuboids.track_ids)
            np.testing.assert_allclose(read.onboard.cuboids.centers_m, source.onboard.cuboids.centers_m, atol=1e-12)
            assert read.onboard.planned_path.equals(source.onboard.planned_path)  # JSON channel: exact
            np.testing.assert_allclose(read.onboard.planned_path.poses_ego[:, :2], synthetic.planned_path_ego[:, 1:3], atol=0)
            assert set(read.onboard.camera_boxes) == set(source.onboard.camera_boxes) == {"front", "left", "right"}
            for name, boxes in source.onboard.camera_boxes.items():
                got = read.onboard.camera_boxes[name]
                np.testing.assert_array_equal(got.boxes_px, boxes.boxes_px)
                np.testing.assert_array_equal(got.labels, boxes.labels)
                np.testing.assert_array_equal(got.scores, boxes.scores)
                np.testing.assert_array_equal(got.track_ids, boxes.track_ids)


def test_kitti_raw_reads_back_the_same_frames(written) -> None:
    log, _, generated = written
    folders = log.kitti_camera_folders
    assert folders == {"front": "02", "left": "03", "right": "01"}
    meta = json.loads(log.meta.read_text())
    assert meta["kitti_camera_folders"] == folders
    with open_log(log.kitti_drive) as reader:
        assert reader.name == "kitti_raw"
        refs = reader.list_frames()
        first_position = generated[0].frame.world_SE3_ego.translation
        for ref, synthetic in zip(refs, generated):
            source, read = synthetic.frame, reader.load_frame(ref)
            assert ref.timestamp_ns == source.timestamp_ns
            np.testing.assert_array_equal(read.lidar.points, source.lidar.points[:, :4])
            # KITTI's ego is the velodyne; its world starts at the first OXTS position
            ego_SE3_lidar = source.rig.lidars["lidar_top"]
            expected = source.world_SE3_ego.compose(ego_SE3_lidar).as_matrix()
            expected[:3, 3] -= first_position
            np.testing.assert_allclose(read.world_SE3_ego.as_matrix(), expected, atol=1e-6)
            for name, folder in folders.items():
                camera = read.rig.cameras[f"image_{folder}"]
                assert camera.model == source.rig.cameras[name].model  # distortion included
                lidar_SE3_camera = ego_SE3_lidar.inverse().compose(source.rig.cameras[name].ego_SE3_camera)
                assert camera.ego_SE3_camera.allclose(lidar_SE3_camera, atol_rad=1e-12, atol_m=1e-12)
                np.testing.assert_array_equal(read.images[f"image_{folder}"].decode(), synthetic.images_rgb[name])  # lossless PNG
            # the planned path from planned_path/, as the velodyne's planned poses (ego_SE3_lidar has no rotation here)
            path = read.onboard.planned_path
            np.testing.assert_array_equal(path.timestamps_ns, source.onboard.planned_path.timestamps_ns)
            lever_m = ego_SE3_lidar.translation[:2]
            yaws = source.onboard.planned_path.poses_ego[:, 2]
            rotated_lever = np.column_stack([np.cos(yaws) * lever_m[0] - np.sin(yaws) * lever_m[1], np.sin(yaws) * lever_m[0] + np.cos(yaws) * lever_m[1]])
            np.testing.assert_allclose(path.poses_ego[:, :2], source.onboard.planned_path.poses_ego[:, :2] + rotated_lever - lever_m, atol=1e-9)
            np.testing.assert_allclose(path.poses_ego[:, 2], yaws, atol=1e-12)


def test_side_files_hold_truth_onboard_and_the_answer_key(written) -> None:
    log, _, generated = written
    labels = load_labels(log.labels)
    assert sorted(labels) == [g.frame.timestamp_ns for g in generated]
    for synthetic in generated:
        truth, onboard = labels[synthetic.frame.timestamp_ns]
        np.testing.assert_array_equal(truth.track_ids, synthetic.frame.annotations.track_ids)
        np.testing.assert_array_equal(truth.num_lidar_points, synthetic.frame.annotations.num_lidar_points)
        np.testing.assert_allclose(truth.centers_m, synthetic.frame.annotations.centers_m, atol=1e-4)
        for name, boxes in synthetic.frame.onboard.camera_boxes.items():
            np.testing.assert_array_equal(onboard.camera_boxes[name].track_ids, boxes.track_ids)
            np.testing.assert_allclose(onboard.camera_boxes[name].boxes_px, boxes.boxes_px, atol=0.05)
    anomalies = load_anomalies(log.anomalies)
    assert anomalies == SyntheticDrive(SMALL).anomalies  # the answer key, exactly
    assert "ghost_object" in {a.kind for a in anomalies} and all(a.last_frame < 3 for a in anomalies)
    plan = json.loads(log.planned_path.read_text())
    assert plan["columns"] == ["dt_s", "x_m", "y_m", "yaw_rad"] and len(plan["frames"]) == 3
    assert plan["frames"][0]["planned"][0][:3] == [0.0, 0.0, 0.0]  # the plan starts at the ego
    assert json.loads(log.meta.read_text())["config"]["seed"] == 4


def test_same_seed_same_bytes(written, tmp_path) -> None:
    first, second, _ = written
    for a, b in ((first.mcap, second.mcap), (first.labels, second.labels), (first.anomalies, second.anomalies), (first.planned_path, second.planned_path)):
        assert a.read_bytes() == b.read_bytes(), a.name
    for path in sorted(first.kitti_drive.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (second.kitti_drive / path.relative_to(first.kitti_drive)).read_bytes(), path
    other = write_synthetic_log(SMALL.with_(seed=5, frames=1), tmp_path)
    with open_log(other.mcap) as reader:
        points = reader.load_frame(reader.list_frames()[0]).lidar.points
    assert not np.array_equal(points[:1000], written[2][0].frame.lidar.points[:1000])


def test_ros2_mcap_reads_back(tmp_path) -> None:
    config = SimulationConfig(frames=1, seed=2, log_id="ros", cameras=default_cameras(0.2))
    captured = []
    log = write_synthetic_log(config, tmp_path, mcap_schema="ros2", on_frame=captured.append)
    with open_log(log.mcap) as reader:
        read = reader.load_frame(reader.list_frames()[0])
    assert read.lidar.equals(captured[0].frame.lidar)
    np.testing.assert_array_equal(read.annotations.track_ids, captured[0].frame.annotations.track_ids)
    source = captured[0].frame.onboard
    np.testing.assert_array_equal(read.onboard.planned_path.timestamps_ns, source.planned_path.timestamps_ns)
    np.testing.assert_allclose(read.onboard.planned_path.poses_ego, source.planned_path.poses_ego, atol=1e-12)
    for name, boxes in source.camera_boxes.items():
        np.testing.assert_array_equal(read.onboard.camera_boxes[name].track_ids, boxes.track_ids)
        np.testing.assert_allclose(read.onboard.camera_boxes[name].boxes_px, boxes.boxes_px, atol=1e-9)


def test_bundled_log_is_the_default_config_and_opens() -> None:
    log = bundled_log()
    meta = json.loads(log.meta.read_text())
    assert meta["config"] == BUNDLED_CONFIG.to_dict()
    assert log.mcap.stat().st_size < 25_000_000
    with open_log(log.mcap) as reader:
        refs = reader.list_frames()
        assert len(refs) == BUNDLED_CONFIG.frames
        stored = reader.load_frame(refs[0])
    # regenerating frame 0 gives the stored sweep bit for bit, and the onboard path and 2D boxes exactly
    drive = SyntheticDrive(BUNDLED_CONFIG)
    fresh = drive.sweep(0)
    assert stored.lidar.equals(fresh.lidar)
    np.testing.assert_array_equal(stored.annotations.num_lidar_points, fresh.annotations.num_lidar_points)
    assert stored.onboard.planned_path.equals(drive.onboard[0].planned_path)
    assert {name: boxes.track_ids.tolist() for name, boxes in stored.onboard.camera_boxes.items()} == {
        name: boxes.track_ids.tolist() for name, boxes in drive.onboard[0].camera_boxes.items()
    }
    assert len(load_anomalies(log.anomalies)) >= 10


def test_cli_simulate_with_preview(tmp_path, capsys) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--frames", "2", "--seed", "1", "--camera-scale", "0.2", "--out", str(out), "--preview"]) == 0
    printed = capsys.readouterr().out
    assert "2 frames in" in printed and "LiDAR points per frame" in printed
    assert (out / "synthetic_s1.mcap").is_file() and (out / "synthetic_s1.anomalies.json").is_file()
    for name in ("bev.png", "camera_front.jpg", "camera_left.jpg", "camera_right.jpg", "preview.jpg"):
        assert (out / "preview" / name).stat().st_size > 1000
    assert main(["simulate", "--frames", "2", "--out", str(out), "--preview", "--preview-frame", "5"]) == 1


def test_bundled_log_matches_the_recorded_digests() -> None:
    from av_pipeline.synthetic.bundled import accepted_digests, differing_files, expected_digests, file_digests

    log = bundled_log()
    expected = expected_digests()
    assert sorted(expected) == sorted(p.name for p in vars(log).values())
    found = file_digests(log.mcap.parent)
    assert differing_files(found) == [], (found, accepted_digests())
    # the side files that carry the numbers the docs quote are the same bytes on every CPU
    for name in ("synthetic_default.anomalies.json", "synthetic_default.labels.json", "synthetic_default.meta.json", "synthetic_default.rig.yaml"):
        assert found[name] == expected[name], name


def test_digest_variants_are_added_not_replaced(tmp_path) -> None:
    from av_pipeline.errors import LogFormatError
    from av_pipeline.synthetic.bundled import BUNDLED_LOG_DIR, DIGESTS_NAME, accepted_digests, differing_files, file_digests, write_digests

    record = tmp_path / DIGESTS_NAME
    record.write_text((BUNDLED_LOG_DIR / DIGESTS_NAME).read_text())
    folder = tmp_path / "log"
    folder.mkdir()
    for name, entries in accepted_digests(record).items():
        (folder / name).write_bytes(b"x" * entries[0]["bytes"])  # same sizes, other bytes
    assert len(differing_files(file_digests(folder), accepted_digests(record))) == 6
    before = accepted_digests(record)
    write_digests(folder, record, variant="test machine")
    after = accepted_digests(record)
    for name in before:
        assert after[name][: len(before[name])] == before[name] and len(after[name]) == len(before[name]) + 1
    assert json.loads(record.read_text())["files"]["synthetic_default.mcap"]["variants"][-1]["where"] == "test machine"
    # written again: nothing new to add
    write_digests(folder, record, variant="test machine")
    assert accepted_digests(record) == after
    # an incomplete log is refused, naming what is missing, and the record stays as it was
    (folder / "synthetic_default.mcap").unlink()
    with pytest.raises(LogFormatError, match="synthetic_default.mcap missing"):
        write_digests(folder, record, variant="another machine")
    assert accepted_digests(record) == after


@pytest.mark.slow
def test_bundled_log_generation_is_safe_from_two_processes(tmp_path) -> None:
    """Two processes asking for the log in an empty folder: one generates, the other waits; same bytes as recorded."""
    import subprocess
    import sys

    from av_pipeline.synthetic.bundled import differing_files, file_digests

    code = f"from av_pipeline.synthetic import bundled_log; print(bundled_log({str(tmp_path)!r}).mcap)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert {out.strip() for out, _ in results} == {str(tmp_path / "synthetic_default.mcap")}
    assert sum("generating the bundled synthetic log" in err for _, err in results) == 1
    assert differing_files(file_digests(tmp_path)) == []
    assert not list(tmp_path.glob(".generating-*"))


def test_bundled_log_without_digests_is_refused(tmp_path) -> None:
    from av_pipeline.errors import LogFormatError
    from av_pipeline.synthetic.bundled import expected_digests

    (tmp_path / "bad.json").write_text('{"files": 3}')
    with pytest.raises(LogFormatError, match="files"):
        expected_digests(tmp_path / "bad.json")
    with pytest.raises(LogFormatError, match="reinstall"):
        expected_digests(tmp_path / "missing.json")
