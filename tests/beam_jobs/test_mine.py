"""The mining Beam job on the bundled synthetic log, a KITTI sample without onboard perception,
and a corrupt log: outputs, accounting, skipped triggers, refused campaigns."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

pytest.importorskip("spconv")

from av_pipeline.errors import ConfigError  # noqa: E402
from av_pipeline.mining.outputs import case_schema, event_schema, read_cases  # noqa: E402
from av_pipeline.synthetic import BUNDLED_LOG_DIR  # noqa: E402
from beam_jobs.mine import run  # noqa: E402
from tests.av_pipeline.detect_fixtures import write_tiny_weights  # noqa: E402


@pytest.fixture(scope="module")
def job(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("mine")
    weights = write_tiny_weights(root)
    logs = root / "logs"
    logs.mkdir()
    shutil.copy(BUNDLED_LOG_DIR / "synthetic_default.mcap", logs / "synthetic_default.mcap")
    (logs / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 50)
    out = root / "out"
    kitti = shared_data / "kitti" / "training"
    summary = run([f"--logs={logs}/*.mcap", f"--logs={kitti}", f"--out={out}", f"--weights={weights}", "--campaign=default"])
    return summary, out


def test_every_frame_is_mined_or_dead_lettered(job):
    summary, out = job
    assert summary.frames_listed == summary.frames_mined + summary.frames_dead_lettered
    assert summary.frames_mined >= 21 and summary.logs_dead_lettered == 1
    written = json.loads((out / "summary.json").read_text())
    assert written["frames_mined"] == summary.frames_mined and written["campaign"] == "default"


def test_outputs_parse_and_agree(job):
    summary, out = job
    cases = read_cases(out)
    table = pq.read_table(out / "cases.parquet")
    assert table.schema.equals(case_schema()) and table.num_rows == len(cases) == summary.cases
    events = pq.read_table(out / "events.parquet")
    assert events.schema.equals(event_schema()) and events.num_rows == sum(len(c.events) for c in cases)
    assert [c.rank for c in cases] == list(range(len(cases)))
    mining = json.loads((out / "mining.json").read_text())
    assert mining["key_frames"] <= mining["key_frame_budget"]
    assert json.loads((out / "campaign.json").read_text())["triggers"]["ghost"]["max_points"] == 3
    for case in cases:
        assert case.reasons and all(r.split(":")[0] in case.triggers for r in case.reasons)


def test_a_log_without_onboard_perception_says_what_it_skipped(job):
    _, out = job
    logs = json.loads((out / "mining.json").read_text())["logs"]
    kitti = [v for k, v in logs.items() if k != "synthetic_default"]
    assert kitti and kitti[0]["skipped_triggers"]["missed_by_onboard"] == "the log has no onboard"
    assert "planner_deviation" in kitti[0]["skipped_triggers"]
    synthetic = logs["synthetic_default"]
    assert "track_flicker" not in synthetic["skipped_triggers"] and "planner_deviation" not in synthetic["skipped_triggers"]


def test_bad_campaign_is_refused_before_running(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntriggers: {ghost: {max_points: -1}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: triggers\.ghost.*max_points"):
        run([f"--logs={BUNDLED_LOG_DIR}/synthetic_default.mcap", f"--out={tmp_path / 'o'}", f"--campaign={bad}"])
    with pytest.raises(ConfigError, match="no shipped campaign 'nope'"):
        run([f"--logs={BUNDLED_LOG_DIR}/synthetic_default.mcap", f"--out={tmp_path / 'o'}", "--campaign=nope"])
