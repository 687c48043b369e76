"""The main job (`avp run` / `avp demo`) end to end on a copy of the bundled synthetic log with
two planted corrupt frames: every stage's outputs, the accounting, datasets that real tools
open, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("spconv")

from av_pipeline.cli import main  # noqa: E402
from av_pipeline.errors import ConfigError  # noqa: E402
from beam_jobs.run import run  # noqa: E402
from tests.beam_jobs.corrupt_log import write_corrupt_copy  # noqa: E402


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    log = write_corrupt_copy(root / "drive.mcap", truncated=(3,), garbage=(11,))
    out = root / "out"
    assert main(["run", str(log), "--out", str(out), "--top", "3"]) == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_every_frame_is_mined_or_dead_lettered_and_the_report_says_why(job):
    out, summary = job
    assert summary["frames_listed"] == 20 and summary["frames_mined"] == 18 and summary["frames_dead_lettered"] == 2
    assert summary["frames_indexed"] == summary["frames_fused"] == 18 and summary["logs_dead_lettered"] == 0
    dead = [json.loads(line) for line in (out / "dead_letters" / "dead_letters.jsonl").read_text().splitlines()]
    assert sorted(d["frame_index"] for d in dead) == [3, 11]
    assert all(d["stage"] == "load" and d["field"] == "/lidar/points" and "drive.mcap" in d["path"] for d in dead)
    report = json.loads((out / "report" / "summary.json").read_text())
    assert report["frames_dead_lettered"] == 2 and "/lidar/points" in report["dead_letter_explanation"]
    html = (out / "report" / "index.html").read_text()
    assert "2 frames" in html and "does not decode as foxglove.PointCloud" in html


@pytest.mark.slow
def test_index_fusion_prelabels_and_calibration(job):
    out, summary = job
    assert pq.read_table(out / "ingest" / "index").num_rows == 18
    rows = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == 18 and all(r["deskewed"] and r["motion_compensated"] and r["voxels"] > 10_000 for r in rows)
    assert summary["fusion"]["frames"] == 18 and 0.3 < summary["fusion"]["painted_fraction"] < 1.0
    from av_pipeline.detect.prelabel_io import read_prelabels

    prelabels = read_prelabels(out / "prelabels")
    assert len(prelabels) == 18 and sum(len(b) for b in prelabels.values()) > 18 * 5
    checks = summary["calibration_drift_check"]
    assert set(checks) == set(rows[0]["cameras_matched"])
    for camera, check in checks.items():
        assert check["frames"] == 10 and not check["drifted"], camera  # summed over frames the calibration is a local maximum
        assert check["panned_drifted"] and check["panned_fraction_better"] > check["fraction_better"], camera  # the 1 degree control
        assert (out / "calibration" / "drive" / f"{camera}_opencv.yaml").is_file()
    assert summary["figures"] and all(Path(p).is_file() for p in summary["figures"])


@pytest.mark.slow
def test_datasets_open_in_real_tools(job):
    out, summary = job
    from mcap.reader import make_reader

    from av_pipeline.export import read_manifest
    from av_pipeline.export.openlabel import check_openlabel
    from av_pipeline.readers import open_log

    rows = read_manifest(out / "datasets")
    assert summary["cases"] >= 1 and len(rows) == summary["cases_exported"] == summary["cases"]
    for row in rows:
        assert 3 not in row["frame_indices"] and 11 not in row["frame_indices"]  # dead-lettered frames are left out of the window
        assert check_openlabel(out / "datasets" / row["openlabel_path"]) == []
        kitti = open_log(str(out / "datasets" / row["kitti_shadow_path"]))
        assert len(kitti.list_frames()) == len(row["frame_indices"])
        with open(out / "datasets" / row["mcap_path"], "rb") as stream:
            topics = {channel.topic for _, channel, _ in make_reader(stream).iter_messages()}
        assert {"/shadow/objects", "/perception/objects", "/mining/reasons", "/lidar/points"} <= topics
    html = (out / "report" / "index.html").read_text()
    from urllib.parse import quote

    assert f'href="../datasets/{quote(rows[0]["openlabel_path"])}"' in html  # the report links the case's files


def test_bad_options_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="export_formats"):
        run([f"--out={tmp_path}", "--export_formats=openlabel,pdf"])
    with pytest.raises(ConfigError, match="report_top_cases"):
        run([f"--out={tmp_path}", "--report_top_cases=-1"])
    with pytest.raises(ConfigError, match="trigger"):
        (tmp_path / "c.yaml").write_text("name: x\ntriggers:\n  no_such_trigger: {}\n")
        run([f"--out={tmp_path}", f"--campaign={tmp_path / 'c.yaml'}"])
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="--overwrite"):
        run([f"--out={tmp_path}"])
    assert not (tmp_path / "report").exists()
