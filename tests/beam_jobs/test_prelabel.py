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
