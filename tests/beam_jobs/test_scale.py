"""Fleet scale (issue 12): the main job's graph under Dataflow / Flink / Spark options, the
portable local runner, the PySpark driver, resuming a killed run, identical results on every
engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("spconv")

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from beam_jobs.run import build_pipeline, run  # noqa: E402
from tests.beam_jobs.scale_logs import output_digest, summary_counts, write_cheap_log  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: The command lines of docs/scaling.md, without --logs / --out (added by the test).
CLUSTER_OPTIONS = {
    "DataflowRunner": ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west1", "--temp_location=gs://my-bucket/tmp",
                       "--staging_location=gs://my-bucket/staging", "--sdk_container_image=registry.example.com/av-pipeline-worker:0.1.0"],
    "FlinkRunner": ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=DOCKER",
                    "--environment_config=registry.example.com/av-pipeline-worker:0.1.0"],
    "SparkRunner": ["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077", "--environment_type=DOCKER",
                    "--environment_config=registry.example.com/av-pipeline-worker:0.1.0"],
}  # fmt: skip
STRING_KEY_CODERS = {"beam:coder:string_utf8:v1"}


def _java() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


needs_spark = pytest.mark.skipif(not _java(), reason="no Java runtime: install openjdk-17-jre-headless to run the Spark driver")


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_logs")
    return [write_cheap_log(root / "a", 6, seed=3, log_id="drive_a"), write_cheap_log(root / "b", 5, seed=4, log_id="drive_b")]


def _key_coders(proto):
    """For each GroupByKey in a pipeline proto: its label and the URNs of its key coder (tuples expanded)."""
    coders = proto.components.coders
    found = {}
    for transform in proto.components.transforms.values():
        if transform.spec.urn != "beam:transform:group_by_key:v1":
            continue
        pcoll = proto.components.pcollections[next(iter(transform.inputs.values()))]
        kv = coders[pcoll.coder_id]
        assert kv.spec.urn == "beam:coder:kv:v1", transform.unique_name
        key = coders[kv.component_coder_ids[0]]
        tuple_urns = ("beam:coder:tuple:v1", "beam:coder:kv:v1")  # a 2-tuple of str is encoded as a KV
        urns = {coders[c].spec.urn for c in key.component_coder_ids} if key.spec.urn in tuple_urns else {key.spec.urn}
        found[transform.unique_name] = urns
    return found


@pytest.mark.parametrize("runner", sorted(CLUSTER_OPTIONS))
def test_graph_builds_under_each_cluster_runner_with_string_keys(runner, tmp_path, small_logs):
    options = PipelineOptions(CLUSTER_OPTIONS[runner] + [f"--logs={small_logs[0]}", f"--out={tmp_path / 'out'}"])
    pipeline = beam.Pipeline(options=options)  # the runner object is built; nothing is submitted
    assert type(pipeline.runner).__name__ == runner
    uris = build_pipeline(pipeline, options, runner)
    assert uris == [str(small_logs[0])]
    proto = pipeline.to_runner_api()
    keys = _key_coders(proto)
    expected = {"GroupIndex", "GroupDriftScores", "GroupDetections", "GroupEvidence", "GroupLogResults"}
    assert {label for name in keys for label in expected if f"{label}/" in name or name.endswith(label)} == expected
    for name, urns in keys.items():
        if "Reshuffle" in name or "Redistribute" in name or "AllLogs" in name or "AllExported" in name or "Count" in name:
            continue  # Beam's own keys: random ints / None, not our data
        assert urns <= STRING_KEY_CODERS, (name, urns)
    assert not (tmp_path / "out").exists()  # building wrote nothing


@pytest.mark.slow
def test_runs_on_the_portable_local_runner_like_in_process(tmp_path, small_logs):
    logs = [f"--logs={small_logs[1]}"]
    in_process = run(logs + [f"--out={tmp_path / 'direct'}", "--report_top_cases=1"])
    portable = run(logs + [f"--out={tmp_path / 'portable'}", "--report_top_cases=1", "--runner=PortableRunner", "--job_endpoint=embed",
                           "--environment_type=LOOPBACK"])  # fmt: skip
    assert portable.runner == "PortableRunner" and portable.frames_listed == in_process.frames_listed == 5
    assert portable.frames_mined == 5 and summary_counts(tmp_path / "portable") == summary_counts(tmp_path / "direct")
    assert output_digest(tmp_path / "portable") == output_digest(tmp_path / "direct")


def _run_command(out: Path, logs, *extra: str) -> list[str]:
    return [sys.executable, "-m", "beam_jobs.run", *[f"--logs={log}" for log in logs], f"--out={out}", "--report_top_cases=1", *extra]


@pytest.mark.slow
def test_a_killed_run_resumed_ends_with_the_outputs_of_an_uninterrupted_run(tmp_path, small_logs):
    whole = tmp_path / "whole" / "out"
    subprocess.run(_run_command(whole, small_logs), check=True, cwd=REPO, capture_output=True)
    again = output_digest(whole)
    subprocess.run(_run_command(whole, small_logs, "--overwrite"), check=True, cwd=REPO, capture_output=True)
    assert output_digest(whole) == again  # idempotent: a re-run writes the same files, nothing more
    assert sorted(p.name for p in (whole / "checkpoints").iterdir()) == ["drive_a.json", "drive_b.json"]

    out = tmp_path / "killed" / "out"
    job = subprocess.Popen(_run_command(out, small_logs), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints").is_dir() or not any((out / "checkpoints").iterdir()):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before a log was complete"
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (out / "summary.json").exists() and not (out / "report").exists()  # killed mid-run
    done = [json.loads(p.read_text())["log_id"] for p in (out / "checkpoints").glob("*.json")]
    assert done
    resumed = subprocess.run(_run_command(out, small_logs, "--resume"), check=True, cwd=REPO, capture_output=True, text=True)
    assert f"({len(done)} complete, resumed)" in resumed.stderr
    assert summary_counts(out) == summary_counts(whole)
    assert output_digest(out) == output_digest(whole)


def test_resume_and_overwrite_together_are_refused(tmp_path):
    from av_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="resume"):
        run([f"--out={tmp_path}", "--resume", "--overwrite"])


@needs_spark
@pytest.mark.slow
def test_spark_driver_on_local_2_matches_beam_and_resumes(tmp_path, small_logs):
    pytest.importorskip("pyspark")
    from beam_jobs.spark_run import run_spark

    beam_summary = run([*[f"--logs={log}" for log in small_logs], f"--out={tmp_path / 'beam'}", "--report_top_cases=1"])
    spark_args = [*[f"--logs={log}" for log in small_logs], "--report_top_cases=1", "--spark_master=local[2]", "--frames_per_partition=2"]
    spark_summary = run_spark(spark_args + [f"--out={tmp_path / 'spark'}"])
    assert spark_summary.runner.startswith("Spark (local[2]") and spark_summary.frames_mined == beam_summary.frames_mined == 11
    assert summary_counts(tmp_path / "spark") == summary_counts(tmp_path / "beam")
    assert output_digest(tmp_path / "spark") == output_digest(tmp_path / "beam")
    (tmp_path / "spark" / "checkpoints" / "drive_b.json").unlink()  # as if the job died before drive_b was complete
    resumed = run_spark(spark_args + [f"--out={tmp_path / 'spark'}", "--resume"])
    assert resumed.frames_mined == 11 and output_digest(tmp_path / "spark") == output_digest(tmp_path / "beam")


def test_run_dofn_calls_setup_once_splits_tags_and_streams():
    from beam_jobs.spark_run import MAIN, ChunkPartitioner, run_dofn

    class Halve(beam.DoFn):
        def setup(self):
            self.setups = getattr(self, "setups", 0) + 1

        def process(self, n, *, offset):
            if n % 2:
                yield beam.pvalue.TaggedOutput("dead_letters", {"n": n})
                return
            yield n // 2 + offset

        def teardown(self):
            self.closed = True

    fn = Halve()
    pulled = []

    def numbers():
        for n in range(6):
            pulled.append(n)
            yield n

    outputs = run_dofn(fn, numbers(), offset=10)
    assert next(outputs) == (MAIN, 10) and pulled == [0]  # lazy: one element in, its outputs out
    assert list(outputs) == [("dead_letters", {"n": 1}), (MAIN, 11), ("dead_letters", {"n": 3}), (MAIN, 12), ("dead_letters", {"n": 5})]
    assert fn.setups == 1 and fn.closed
    partitioner = ChunkPartitioner({("a", 0): 0, ("a", 1): 1, ("b", 0): 2}, 4)
    assert [partitioner(("a", i)) for i in (0, 3, 4, 7)] == [0, 0, 1, 1] and partitioner(("b", 2)) == 2


def test_worker_threads_are_capped_only_when_asked(monkeypatch):
    import numba
    import torch

    from beam_jobs.common import THREADS_ENV, apply_worker_threads, share_cores_with_workers, worker_threads_for

    assert worker_threads_for(2, cores=2) == 1 and worker_threads_for(2, cores=16) == 8 and worker_threads_for(4, cores=2) == 1
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert share_cores_with_workers() == {"OMP_WAIT_POLICY": "PASSIVE"} and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    previous = torch.get_num_threads(), numba.get_num_threads()
    try:
        monkeypatch.delenv(THREADS_ENV, raising=False)
        assert apply_worker_threads() == 0 and torch.get_num_threads() == previous[0]  # unset: left alone
        monkeypatch.setenv(THREADS_ENV, "1")
        assert apply_worker_threads() == 1
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous[0])
        numba.set_num_threads(previous[1])
