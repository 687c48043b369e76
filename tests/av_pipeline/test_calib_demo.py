"""`avp demo` (the calibration demo) end to end on the bundled rig."""

from __future__ import annotations

import json
from pathlib import Path

from av_pipeline.calib_demo import demo_rig_path
from av_pipeline.cli import main
from calibration.formats import read_rig


def test_demo_projects_checks_drift_and_converts(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rig = read_rig(demo_rig_path()).rig
    assert [c["camera"] for c in summary["cameras"]] == list(rig.camera_names)
    assert 100_000 < summary["lidar_points"] < 140_000
    for camera in summary["cameras"]:
        total = camera["visible"] + camera["behind"] + camera["outside_image"] + camera["outside_valid_region"]
        assert total == summary["lidar_points"]  # every point has exactly one status
        assert camera["visible"] > 10_000
        # the rendered surface and the LiDAR point agree to the simulated 1 cm range noise
        assert camera["surface_agreement_m"] < 0.02
        # the calibrated extrinsic is a strict local maximum; a 1 degree pan is flagged
        assert camera["drift_fraction_better_true"] == 0.0
        assert camera["drift_fraction_better_panned"] > 0.05
        assert (tmp_path / f"lidar_on_{camera['camera']}.png").stat().st_size > 10_000
    assert read_rig(tmp_path / "rig.json").rig.camera_names == rig.camera_names
    assert summary["rig_round_trip_max_abs"] < 1e-12
