"""Issue 12, must show: the main job on a 200-frame synthetic log gives identical cases and
pre-labels in process, with 2 worker processes, and through the PySpark driver on local[2].

The log is made cheaply (tests.beam_jobs.scale_logs.cheap_config: 32 LiDAR beams, 1,024
firings per turn, one 160x90 camera) so the three runs fit the suite's time; slow."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("spconv")

from beam_jobs.run import run  # noqa: E402
from tests.beam_jobs.scale_logs import summary_counts, write_cheap_log  # noqa: E402


def _results(out):
    from av_pipeline.detect.prelabel_io import read_prelabels

    cases = json.loads((out / "cases.json").read_text())
    prelabels = read_prelabels(out / "prelabels")
    events = pq.read_table(out / "events.parquet").to_pylist()
    return cases, prelabels, events


@pytest.mark.slow
def test_200_frames_same_cases_and_prelabels_in_process_2_workers_and_spark(tmp_path):
    log = write_cheap_log(tmp_path / "log", 200, seed=12, log_id="fleet200")
    common = [f"--logs={log}", "--report_top_cases=1", "--export_formats=openlabel", "--progress_interval_s=60"]
    one = run(common + [f"--out={tmp_path / 'one'}"])
    two = run(common + [f"--out={tmp_path / 'two'}", "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    outs = [tmp_path / "one", tmp_path / "two"]
    assert one.frames_listed == two.frames_listed == 200 and one.frames_mined == two.frames_mined == 200
    if (shutil.which("java") or os.environ.get("JAVA_HOME")) and importlib.util.find_spec("pyspark"):
        from beam_jobs.spark_run import run_spark

        spark = run_spark(common + [f"--out={tmp_path / 'spark'}", "--spark_master=local[2]"])
        assert spark.frames_mined == 200
        outs.append(tmp_path / "spark")
    reference_cases, reference_boxes, reference_events = _results(outs[0])
    assert reference_cases and len(reference_boxes) == 200
    for out in outs[1:]:
        cases, boxes, events = _results(out)
        assert cases == reference_cases, out.name
        assert events == reference_events, out.name
        assert boxes.keys() == reference_boxes.keys()
        for key, expected in reference_boxes.items():
            got = boxes[key]
            np.testing.assert_array_equal(got.centers_m, expected.centers_m, err_msg=f"{out.name} {key}")
            np.testing.assert_array_equal(got.sizes_m, expected.sizes_m)
            np.testing.assert_array_equal(got.yaws_rad, expected.yaws_rad)
            np.testing.assert_array_equal(got.scores, expected.scores)
            assert list(got.labels) == list(expected.labels)
        assert summary_counts(out) == summary_counts(outs[0]), out.name
