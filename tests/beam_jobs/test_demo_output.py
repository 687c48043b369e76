"""``avp demo`` / ``avp run`` output handling and summary numbers, without running the whole
job (tests/beam_jobs/test_run.py runs it end to end), and ``avp --version``."""

from __future__ import annotations

from pathlib import Path

import pytest

from av_pipeline import __version__
from av_pipeline.cli import main
from av_pipeline.errors import ConfigError
from av_pipeline.frame_products import summarize_rows
from beam_jobs.run import RUN_OUTPUTS
from beam_jobs.common import prepare_output_dir


def _earlier_run(out: Path) -> None:
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "camera_old_camera.png").write_bytes(b"png")
    (out / "ingest" / "index").mkdir(parents=True)
    (out / "ingest" / "index" / "frames-00000-of-00001.parquet").write_bytes(b"x")
    (out / "summary.json").write_text("{}")
    (out / "frames.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"avp {__version__}"


def test_demo_refuses_an_earlier_run_without_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _earlier_run(tmp_path)
    assert main(["demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "earlier run" in err
    assert (tmp_path / "figures" / "camera_old_camera.png").is_file() and (tmp_path / "summary.json").read_text() == "{}"


def test_overwrite_removes_only_the_job_outputs(tmp_path: Path) -> None:
    _earlier_run(tmp_path)
    with pytest.raises(ConfigError, match=r"already holds results of an earlier run"):
        prepare_output_dir(str(tmp_path), RUN_OUTPUTS, overwrite=False)
    prepare_output_dir(str(tmp_path), RUN_OUTPUTS, overwrite=True)
    assert not (tmp_path / "summary.json").exists() and not any((tmp_path / "figures").iterdir())
    assert not any((tmp_path / "ingest" / "index").iterdir())
    assert (tmp_path / "notes.txt").read_text() == "mine"
    prepare_output_dir(str(tmp_path), RUN_OUTPUTS, overwrite=False)  # nothing left to refuse
    prepare_output_dir(str(tmp_path / "new"), RUN_OUTPUTS, overwrite=False)  # a folder that does not exist yet


def _row(points: int, painted: int, voxels: int, cameras: dict[str, int], skew: float | None, deskewed: bool = True) -> dict:
    return {
        "points": points,
        "points_painted": painted,
        "voxels": voxels,
        "deskewed": deskewed,
        "motion_compensated": deskewed,
        "cameras_matched": sorted(cameras),
        "depth_pixels": cameras,
        "onboard_objects_visible": {name: 2 for name in cameras},
        "max_abs_skew_ms": skew,
        "voxel_points_dropped": {"out_of_range": 10, "voxel_cap": 0, "full_voxel": 3, "nonfinite": 0},
    }


def test_summary_has_fusion_and_voxel_numbers() -> None:
    rows = [_row(1000, 400, 300, {"front": 50, "left": 20}, 2.5), _row(3000, 600, 500, {"front": 70}, None, deskewed=False)]
    summary = summarize_rows(rows)
    assert summary["fusion"] == {
        "frames": 2,
        "deskewed": 1,
        "motion_compensated": 1,
        "points": 2000.0,
        "points_painted": 500.0,
        "painted_fraction": 0.25,
        "frames_per_camera": {"front": 2, "left": 1},
        "depth_pixels_mean": {"front": 60.0, "left": 20.0},
        "onboard_objects_visible_mean": {"front": 2.0, "left": 2.0},
        "max_abs_skew_ms": 2.5,
    }
    assert summary["voxels"] == {"mean": 400.0, "min": 300, "max": 500, "points_dropped": {"out_of_range": 20, "voxel_cap": 0, "full_voxel": 6, "nonfinite": 0}}
    empty = summarize_rows([])
    assert empty["fusion"]["frames"] == 0 and empty["voxels"]["mean"] is None and empty["fusion"]["max_abs_skew_ms"] is None
