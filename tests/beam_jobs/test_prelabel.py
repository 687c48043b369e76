"""The pre-label Beam job on the bundled synthetic log, with a corrupt log beside it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("spconv")

from av_pipeline.detect.prelabel_io import BOX_COLUMNS, read_prelabels  # noqa: E402
from av_pipeline.synthetic import BUNDLED_LOG_DIR  # noqa: E402
from beam_jobs.prelabel import run, safe_name  # noqa: E402
from tests.av_pipeline.detect_fixtures import write_tiny_weights  # noqa: E402


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("prelabel")
    weights = write_tiny_weights(root)
    logs = root / "logs"
    logs.mkdir()
    shutil.copy(BUNDLED_LOG_DIR / "synthetic_default.mcap", logs / "synthetic_default.mcap")
    (logs / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 50)
    out = root / "out"
    summary = run([f"--logs={logs}/*.mcap", f"--out={out}", f"--weights={weights}", "--batch_size=3"])
    return summary, out


def test_every_frame_is_prelabelled_or_dead_lettered(job):
    summary, out = job
    assert summary.frames_listed == 20
    assert summary.frames_prelabelled + summary.frames_dead_lettered == summary.frames_listed
    assert summary.frames_prelabelled == 20 and summary.logs_dead_lettered == 1
    dead = [json.loads(line) for p in out.glob("dead_letters/dead_letters-*.jsonl") for line in p.read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["path"].endswith("broken.mcap") and dead[0]["stage"] == "list"
    assert json.loads((out / "summary.json").read_text())["frames_prelabelled"] == 20


def test_tables_are_keyed_by_frame_and_refined(job):
    summary, out = job
    folder = out / "prelabels" / safe_name("synthetic_default")
    table = pq.read_table(folder / "prelabels.parquet")
    assert tuple(table.column_names) == BOX_COLUMNS
    assert pq.read_table(folder / "frames.parquet").num_rows == 20
    boxes = read_prelabels(out)
    assert len(boxes) == 20 and {key[0] for key in boxes} == {"synthetic_default"}
    times = [key[1] for key in boxes]
    assert times == sorted(times)
    total = sum(len(b) for b in boxes.values())
    assert total == summary.boxes == table.num_rows
    ids = np.concatenate([b.track_ids for b in boxes.values()])
    assert total > 0 and (ids >= 0).all()  # refinement gave every box a track


def test_second_run_refuses_to_overwrite(job, tmp_path):
    from av_pipeline.errors import ConfigError

    _, out = job
    with pytest.raises(ConfigError, match="--overwrite"):
        run([f"--logs={BUNDLED_LOG_DIR}/synthetic_default.mcap", f"--out={out}"])


def test_safe_name_is_unique_and_file_safe():
    assert safe_name("drive_01") == "drive_01"
    a, b = safe_name("a/b"), safe_name("a_b")
    assert a != b and "/" not in a


def test_avp_prelabel_and_evaluate_command_lines(job, tmp_path, capsys):
    from av_pipeline.cli import main

    _, out = job
    weights = out.parent / "tiny.pt"
    log = BUNDLED_LOG_DIR / "synthetic_default.mcap"
    assert main(["prelabel", str(log), "--out", str(tmp_path / "p"), "--weights", str(weights), "--no-refine", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames_prelabelled"] == 20 and printed["frames_dead_lettered"] == 0
    raw = read_prelabels(tmp_path / "p")
    assert all((b.track_ids == -1).all() for b in raw.values())  # --no-refine: no tracks
    assert main(["evaluate", "--pred", str(out), "--gt", str(log), "--json", str(tmp_path / "eval.json")]) == 0
    text = capsys.readouterr().out
    assert "20 frames evaluated; 0 of them have no pre-labels" in text and "| car | 3D AP@0.7 |" in text
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["frames"] == 20 and report["num_gt"]["car"]["all"] > 100
    assert set(report["kitti_ap_r40"]) == {"3d", "bev"} and set(report["nuscenes_ap"]["car"]["all"]) == {"0.5", "1", "2", "4", "mean"}


@pytest.mark.slow
def test_avp_prelabel_exports_openlabel_and_kitti_per_log(tmp_path, capsys):
    """``--format openlabel --format kitti`` on a 3-frame MCAP and a 2-frame log whose camera
    KITTI cannot use: the exports hold the boxes of the pre-label tables (OpenLABEL values;
    KITTI read back with the product's kitti_object reader); the other log's KITTI export
    is a dead letter while its OpenLABEL export and every frame's pre-labels are written."""
    from av_pipeline.cli import main
    from av_pipeline.export.openlabel import check_openlabel
    from av_pipeline.readers import open_log
    from av_pipeline.writers.mcap_foxglove import write_foxglove_mcap
    from calibration import SE3
    from tests.beam_jobs.fake_log import good_points, write_fake_log

    with open_log(str(BUNDLED_LOG_DIR / "synthetic_default.mcap")) as log:
        frames = [log.load_frame(ref) for ref in log.list_frames()[4:7]]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_foxglove_mcap(logs / "three.mcap", frames)
    fake = write_fake_log(logs, "no_images", [{"timestamp_ns": 10**9 + 10**8 * i, "points": good_points(400, i)} for i in range(2)])
    weights = write_tiny_weights(tmp_path)
    out = tmp_path / "out"
    argv = ["prelabel", str(logs / "three.mcap"), str(fake), "--out", str(out), "--weights", str(weights), "--format", "openlabel", "--format", "kitti"]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_prelabelled"] == 5 and summary["frames_dead_lettered"] == summary["logs_dead_lettered"] == 0
    assert summary["export_formats"] == ["openlabel", "kitti"] and summary["exports_written"] == 3 and summary["exports_dead_lettered"] == 1
    dead = [json.loads(line) for p in out.glob("dead_letters/dead_letters-*.jsonl") for line in p.read_text().splitlines()]
    # the fake log's camera has identity extrinsics: it looks straight up, KITTI's image_2 looks forward
    assert [(d["stage"], d["log_id"], d["field"], d["frame_index"]) for d in dead] == [("export", "no_images", "rig.cameras['front']", None)]
    assert "optical axis is 90.0 degrees from the velodyne (ego) +x axis" in dead[0]["message"]
    assert not (out / "no_images" / "kitti" / "av_pipeline_samples.json").exists()
    assert (out / "no_images" / "openlabel.json").is_file()

    prelabels = {key[1]: b for key, b in read_prelabels(out).items() if key[0] == "three"}
    assert len(prelabels) == 3 and sum(len(b) for b in prelabels.values()) > 0
    document = json.loads((out / "three" / "openlabel.json").read_text())
    assert check_openlabel(out / "three" / "openlabel.json") == []
    for index, frame in enumerate(frames):
        entry = document["openlabel"]["frames"][str(index)]
        assert entry["frame_properties"]["timestamp_ns"] == frame.timestamp_ns
        values = sorted(o["object_data"]["cuboid"][0]["val"] for o in entry.get("objects", {}).values())
        want = prelabels[frame.timestamp_ns]
        np.testing.assert_allclose(np.array(values).reshape(-1, 10)[:, :3], want.centers_m[np.lexsort(want.centers_m.T[::-1])], atol=1e-6)
    with open_log(str(out / "three" / "kitti")) as split:
        assert split.name == "kitti_object"
        refs = split.list_frames()
        assert [r.sample for r in refs] == ["000000", "000001", "000002"]
        for ref, frame in zip(refs, frames):
            back = split.load_frame(ref).annotations
            velo_SE3_ego = split.read_calib(ref.sample).velo_SE3_imu  # the exporter writes ego as KITTI's IMU
            velo_SE3_lidar = velo_SE3_ego.compose(frame.rig.lidars["lidar_top"])
            assert velo_SE3_lidar.allclose(SE3.identity(), atol_rad=1e-9, atol_m=1e-9)  # KITTI's velodyne = the log's LiDAR
            want = prelabels[frame.timestamp_ns].transform(velo_SE3_ego, "ego")
            np.testing.assert_allclose(back.centers_m, want.centers_m, atol=1e-6)
            np.testing.assert_allclose(back.sizes_m, want.sizes_m, atol=1e-6)
            np.testing.assert_allclose(np.angle(np.exp(1j * (back.yaws_rad - want.yaws_rad))), 0.0, atol=1e-6)
            np.testing.assert_allclose(back.scores, want.scores, atol=1e-6)
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err  # earlier exports are not silently replaced
