"""Fuzz every reader and calibration format with seeded mutations of valid files.

Each input must end as a clean product error naming the file, a dead letter (the log lists
but frames or entries are dead-lettered, as ingest would), or an accepted result that
passes verification: never another exception, a hang, memory growth beyond the cap, or
corrupted MCAP data that reads as valid. See tests/fuzz/conftest.py for the run size.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz.harness import PASSING

TARGETS = (
    "pcd_binary_compressed",
    "pcd_binary",
    "pcd_ascii",
    "kitti_object",
    "kitti_raw",
    "nuscenes",
    "mcap_foxglove",
    "mcap_ros2",
    "rosbag1",
    "calib_rig_yaml",
    "calib_rig_json",
    "calib_opencv_yaml",
    "calib_ros_camera_info",
    "calib_pjlab",
    "calib_kitti_object",
    "calib_kitti_raw",
    "calib_nuscenes",
)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_every_mutated_input_ends_cleanly(fuzz_results: dict[str, dict[str, Any]], target: str, request: pytest.FixtureRequest) -> None:
    from tests.fuzz.conftest import fuzz_iterations

    result = fuzz_results[target]
    assert result["inputs"] == fuzz_iterations(request.config)
    described = "\n".join(f"{f['id']} {f['mutation']} {f['file']}: {f['outcome']} {f.get('error', '')} {f.get('message', '')}" for f in result["failures"])
    assert not result["failures"], f"{target}: {len(result['failures'])} inputs failed:\n{described}"
    assert set(result["counts"]) <= set(PASSING)
    assert result["counts"].get("clean_error", 0) > 0  # the mutations do reach the error paths
    assert result["max_rss_growth_bytes"] < 1 << 30


@pytest.mark.slow
def test_every_target_is_fuzzed(fuzz_results: dict[str, dict[str, Any]]) -> None:
    assert sorted(fuzz_results) == sorted(TARGETS)
