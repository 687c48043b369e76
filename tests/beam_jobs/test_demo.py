"""The main job (`avp demo`) end to end on the bundled synthetic log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from av_pipeline.cli import main
from av_pipeline.synthetic import BUNDLED_CONFIG
from beam_jobs.demo import DRIFT_CONTROL_NOTE


@pytest.mark.slow
def test_demo_runs_the_pipeline_on_the_bundled_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    # The drift line's panned result is explained as a control, on screen and in the summary.
    assert summary["calibration_drift_check_note"] == DRIFT_CONTROL_NOTE and "is a control" in DRIFT_CONTROL_NOTE
    assert " ".join(DRIFT_CONTROL_NOTE.split()[:8]) in " ".join(printed.split())
    ingest = summary["ingest"]
    assert summary["bundled"] is True
    assert ingest["frames_listed"] == BUNDLED_CONFIG.frames
    assert ingest["frames_indexed"] + ingest["frames_dead_lettered"] == ingest["frames_listed"]
    rows = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == ingest["frames_indexed"] == summary["frames_processed"]
    # The fusion and voxel numbers docs/quickstart.md promises, equal to the per-frame rows.
    fusion, voxels = summary["fusion"], summary["voxels"]
    assert fusion["frames"] == len(rows) == fusion["deskewed"] == fusion["motion_compensated"]
    assert fusion["points"] == pytest.approx(sum(r["points"] for r in rows) / len(rows), abs=1e-3)
    assert 0.3 < fusion["painted_fraction"] < 1.0
    assert set(fusion["depth_pixels_mean"]) == set(fusion["frames_per_camera"]) == set(rows[0]["cameras_matched"])
    assert voxels["min"] == min(r["voxels"] for r in rows) and voxels["max"] == max(r["voxels"] for r in rows)
    assert set(voxels["points_dropped"]) == {"out_of_range", "voxel_cap", "full_voxel", "nonfinite"}
    assert summary["figures"] == sorted(["bev.png"] + [f"camera_{c}.png" for c in rows[0]["cameras_matched"]])
    for row in rows:
        assert row["deskewed"] and row["motion_compensated"]  # per-point times and poses are in the log
        assert 100_000 <= row["points"] <= 130_000
        assert row["points_painted"] > 0.3 * row["points"]
        assert row["voxels"] > 10_000
        assert sorted(row["cameras_matched"]) == sorted(row["depth_pixels"])
    figures = tmp_path / "figures"
    assert (figures / "bev.png").stat().st_size > 20_000
    checks = summary["calibration_drift_check"]
    assert set(checks) == set(rows[0]["cameras_matched"])
    for camera, check in checks.items():
        assert (figures / f"camera_{camera}.png").is_file()
        assert (tmp_path / "calibration" / f"{camera}_opencv.yaml").is_file()
        # a 1 degree pan is flagged on every camera, and it always scores worse than the calibration
        assert check["panned_drifted"], camera
        assert check["panned_fraction_better"] > check["fraction_better"], camera
        assert not check["drifted"], camera  # summed over frames, the calibration is a local maximum
