"""The ingest Beam job on synthetic logs with planted faults (reader ``fake``, tests/beam_jobs/fake_log.py)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from av_pipeline.errors import ConfigError
from av_pipeline.ingest import INDEX_COLUMNS, index_sort_key
from av_pipeline.records import FrameRef
from beam_jobs import common, ingest
from beam_jobs.common import DEAD_LETTER_FIELDS, DEAD_LETTER_TAG, JobAccountingError, dead_letter
from beam_jobs.ingest import ExpandLogs, IngestSummary, ListFrames, LoadAndValidate, run
from tests.beam_jobs.fake_log import FakeLogReader, good_points, png_bytes, write_fake_log

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_MODULE = "tests.beam_jobs.fake_log"
POSE_A = [1.0, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0]


def _nan_points() -> np.ndarray:
    points = good_points(10, seed=2)
    points[3, 0] = np.nan
    return points


@pytest.fixture(scope="module")
def fake_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three logs: drive_a (2 good frames, 7 planted faults), drive_b (3 good), broken (no manifest)."""
    root = tmp_path_factory.mktemp("logs")
    frames_a = [
        {"timestamp_ns": 100, "points": good_points(10), "image": png_bytes(8, 6), "pose": POSE_A, "num_annotations": 2},
        {"timestamp_ns": 200, "points": _nan_points()},  # NaN points
        {"timestamp_ns": 300, "points": np.zeros((0, 4), np.float32)},  # empty sweep
        {"timestamp_ns": 400, "points": good_points(5), "image": b"\x89PNG\r\n\x1a\nnot really"},  # image does not decode
        {"timestamp_ns": 500, "points": "missing"},  # point file missing
        {"timestamp_ns": 600, "points": good_points(5), "image": png_bytes(8, 6), "image_camera": "rear"},  # uncalibrated camera
        {"timestamp_ns": 550, "points": good_points(5)},  # out of order
        {"timestamp_ns": 700, "points": good_points(7), "image": png_bytes(10, 6), "image_size": (10, 6)},  # wrong image size
        {"timestamp_ns": 800, "points": good_points(7)},
    ]
    write_fake_log(root, "drive_a", frames_a)
    frames_b = [{"timestamp_ns": 1000 * (i + 1), "points": good_points(20 + i, seed=i), "pose": [float(i), 0, 0, 1, 0, 0, 0]} for i in range(3)]
    write_fake_log(root, "drive_b", frames_b)
    (root / "broken.fakelog").mkdir()
    (root / "broken.fakelog" / "log.json").write_text("{not json")
    return root


#: (stage, log, frame index, error type, check, file the letter must name, words of the problem)
EXPECTED_DEAD_LETTERS = [
    ("list", "broken", None, "LogFormatError", None, "broken.fakelog/log.json", "cannot read the log manifest"),
    ("validate", "drive_a", 1, "FrameValidationError", "non_finite_points", "drive_a.fakelog#1", "1 of 10 points have NaN/inf values"),
    ("validate", "drive_a", 2, "FrameValidationError", "empty_sweep", "drive_a.fakelog#2", "sweep has 0 points"),
    ("validate", "drive_a", 3, "FrameValidationError", "image_decode", "drive_a.fakelog/front_003.png", "png bytes do not decode"),
    ("load", "drive_a", 4, "LogFormatError", None, "drive_a.fakelog/top_004.npy", "No such file"),
    ("load", "drive_a", 5, "CalibrationFileError", None, "drive_a.fakelog/log.json", "no intrinsics for this camera"),
    ("order", "drive_a", 6, "FrameValidationError", "timestamp_order", "drive_a.fakelog", "frame 6 at 550 ns is not after frame 5 at 600 ns"),
    ("validate", "drive_a", 7, "FrameValidationError", "image_size", "drive_a.fakelog/front_007.png", "decoded 10x6 but the camera model is calibrated for 8x6"),
]


def _args(logs: Path, out: Path, *extra: str) -> list[str]:
    return ["--logs", str(logs / "*.fakelog"), "--out", str(out), "--reader_module", FAKE_MODULE, *extra]


def _read_outputs(out: Path) -> tuple[list[dict], list[dict]]:
    rows = sorted(pq.read_table(out / "index").to_pylist(), key=index_sort_key)
    letters = []
    for path in sorted((out / "dead_letters").glob("*.jsonl")):
        letters += [json.loads(line) for line in path.read_text().splitlines()]
    return rows, sorted(letters, key=lambda d: (d["log_uri"], d["frame_index"] if d["frame_index"] is not None else -1))


@pytest.fixture(scope="module")
def in_process(fake_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("ingest_in_process")
    summary = run(_args(fake_logs, out))
    rows, letters = _read_outputs(out)
    return SimpleNamespace(out=out, summary=summary, rows=rows, letters=letters)


def test_frames_in_equal_indexed_plus_dead_lettered(in_process: SimpleNamespace) -> None:
    summary = in_process.summary
    assert summary.logs_in == 3 and summary.logs_listed == 2 and summary.dead_lettered["list"] == 1
    assert summary.frames_listed == 9 + 3
    assert summary.frames_indexed == 2 + 3 == len(in_process.rows)
    assert summary.dead_lettered == {"list": 1, "entry": 0, "order": 1, "load": 2, "validate": 4}
    assert summary.frames_listed == summary.frames_indexed + summary.frames_dead_lettered
    assert summary.accounting_errors() == []
    assert summary.unexpected_errors == 0
    written = json.loads((in_process.out / "summary.json").read_text())
    assert written["frames_listed"] == 12 and written["frames_indexed"] == 5 and written["frames_dead_lettered"] == 7


def test_every_dead_letter_names_the_file_and_the_problem(in_process: SimpleNamespace, fake_logs: Path) -> None:
    letters = in_process.letters
    assert len(letters) == len(EXPECTED_DEAD_LETTERS)
    for letter in letters:
        assert set(letter) == set(DEAD_LETTER_FIELDS)
    by_key = {(Path(d["log_uri"]).name.split(".")[0], d["frame_index"]): d for d in letters}
    for stage, log, index, error_type, check, file_part, problem in EXPECTED_DEAD_LETTERS:
        letter = by_key[(log, index)]
        assert letter["stage"] == stage, letter
        assert letter["error_type"] == error_type and letter["check"] == check and letter["expected"] is True
        assert letter["log_uri"] == str(fake_logs / f"{log}.fakelog")
        assert letter["path"] == str(fake_logs / file_part), letter
        assert file_part in letter["message"] and problem in letter["message"], letter["message"]
        if index is None:
            assert letter["log_id"] is None and letter["timestamp_ns"] is None
        else:
            assert letter["log_id"] == log
            assert letter["timestamp_ns"] == [100, 200, 300, 400, 500, 600, 550, 700, 800][index]


def test_index_rows_describe_the_valid_frames(in_process: SimpleNamespace, fake_logs: Path) -> None:
    rows = in_process.rows
    assert [(r["log_id"], r["timestamp_ns"], r["frame_index"]) for r in rows] == [
        ("drive_a", 100, 0),
        ("drive_a", 800, 8),
        ("drive_b", 1000, 0),
        ("drive_b", 2000, 1),
        ("drive_b", 3000, 2),
    ]
    first = rows[0]
    assert list(first) == list(INDEX_COLUMNS)
    assert first["lidar_names"] == ["top"] and first["lidar_num_points"] == [10]
    assert first["camera_names"] == ["front"] and first["image_widths_px"] == [8] and first["image_heights_px"] == [6]
    assert first["num_annotations"] == 2 and first["num_onboard_objects"] is None
    assert first["pose_translation_m"] == [1.0, 2.0, 3.0] and first["pose_rotation_wxyz"] == [1.0, 0.0, 0.0, 0.0]
    assert first["source_uri"] == f"{fake_logs / 'drive_a.fakelog'}#0" and first["reader"] == "fake"
    assert rows[1]["camera_names"] == [] and rows[1]["pose_translation_m"] is None and rows[1]["num_annotations"] is None
    assert [r["lidar_num_points"] for r in rows[2:]] == [[20], [21], [22]]
    assert [r["pose_translation_m"][0] for r in rows[2:]] == [0.0, 1.0, 2.0]


def test_same_index_with_two_worker_processes(
    in_process: SimpleNamespace, fake_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The fake logs (reader imported by module name) and, when the samples exist, the KITTI split."""
    expected_rows, expected_letters, logs = list(in_process.rows), list(in_process.letters), ["--logs", str(fake_logs / "*.fakelog")]
    try:
        kitti = request.getfixturevalue("kitti_in_process")
    except pytest.skip.Exception:
        kitti = None
    if kitti is not None:
        expected_rows += kitti.rows
        expected_letters += kitti.letters
        logs += ["--logs", str(kitti.split_dir)]
    # Worker processes import the fake reader by module name: make the repository importable there.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    multi = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]
    summary = run([*logs, "--out", str(tmp_path), "--reader_module", FAKE_MODULE, *multi])
    rows, letters = _read_outputs(tmp_path)
    assert rows == sorted(expected_rows, key=index_sort_key)
    assert letters == sorted(expected_letters, key=lambda d: (d["log_uri"], d["frame_index"] if d["frame_index"] is not None else -1))
    assert summary.frames_listed == summary.frames_indexed + summary.frames_dead_lettered == 12 + (5 if kitti else 0)


def test_earlier_results_are_not_mixed_in(in_process: SimpleNamespace, fake_logs: Path) -> None:
    before = sorted(p.name for p in in_process.out.rglob("*"))
    with pytest.raises(ConfigError, match="already holds results of an earlier run.*--overwrite"):
        run(_args(fake_logs, in_process.out))
    assert sorted(p.name for p in in_process.out.rglob("*")) == before


def test_a_glob_matching_nothing_fails_before_the_pipeline_starts(fake_logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"'.*\*\.mcap' matches no file or directory"):
        run(["--logs", str(fake_logs / "*.fakelog"), "--logs", str(fake_logs / "*.mcap"), "--out", str(out), "--reader_module", FAKE_MODULE])
    assert not out.exists()
    with pytest.raises(ConfigError, match="expected one of .*got 'nope'"):
        run(_args(fake_logs, out, "--reader", "nope"))
    with pytest.raises(ConfigError, match="--out DIR"):
        run(["--logs", str(fake_logs / "*.fakelog")])


def test_the_job_checks_its_own_accounting(fake_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a runner that lost an index row: the job must refuse to report success.
    real_count = ingest.count_parquet_rows
    monkeypatch.setattr(ingest, "count_parquet_rows", lambda pattern: real_count(pattern) - 1)
    with pytest.raises(JobAccountingError, match="index files hold 4 rows, counters say 5 indexed"):
        run(_args(fake_logs, tmp_path))
    assert json.loads((tmp_path / "summary.json").read_text())["index_rows_in_files"] == 4


def test_accounting_equations() -> None:
    balanced = IngestSummary("out", "DirectRunner", 3, 2, 12, 5, {"list": 1, "order": 1, "load": 2, "validate": 4}, 5, 8)
    assert balanced.accounting_errors() == []
    lost = IngestSummary("out", "DirectRunner", 3, 2, 12, 4, {"list": 1, "order": 1, "load": 2, "validate": 4}, 4, 7)
    assert lost.accounting_errors() == [
        "frames in 12 != indexed 4 + dead-lettered 7",
        "dead-letter files hold 7 records, counters say 8",
    ]


def test_transforms_in_a_test_pipeline(fake_logs: Path) -> None:
    refs_b = [FrameRef(str(fake_logs / "drive_b.fakelog"), "drive_b", i, 1000 * (i + 1), "fake") for i in range(3)]
    with test_pipeline.TestPipeline(runner="FnApiRunner") as p:
        uris = p | "ExpandLogs" >> ExpandLogs([str(fake_logs / "drive_b.fakelog"), str(fake_logs / "broken.fakelog")])
        listed = uris | "ListFrames" >> ListFrames(reader_modules=[FAKE_MODULE])
        assert_that(listed["refs"], equal_to(refs_b), label="RefsInOrder")
        assert_that(
            listed[DEAD_LETTER_TAG] | "ListStage" >> _select("stage", "log_uri"),
            equal_to([("list", str(fake_logs / "broken.fakelog"))]),
            label="BrokenLogDeadLettered",
        )
        loaded = listed["refs"] | "LoadAndValidate" >> LoadAndValidate(reader_modules=[FAKE_MODULE])
        assert_that(loaded["rows"] | "Keys" >> _select("log_id", "timestamp_ns", "lidar_num_points"), equal_to(
            [("drive_b", 1000, [20]), ("drive_b", 2000, [21]), ("drive_b", 3000, [22])]
        ), label="RowsForEveryFrame")
        assert_that(loaded[DEAD_LETTER_TAG], equal_to([]), label="NoLoadFailures")


def _select(*keys: str):
    import apache_beam as beam

    return beam.Map(lambda record: tuple(record[key] for key in keys))


def test_readers_open_once_per_log_and_close(fake_logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    monkeypatch.setattr(FakeLogReader, "close", lambda self: closed.append(Path(self.uri).name))
    fn = ingest._LoadAndValidateFn({}, [FAKE_MODULE], progress_interval_s=0, max_open_logs=1)
    fn.setup()
    a, b = str(fake_logs / "drive_a.fakelog"), str(fake_logs / "drive_b.fakelog")
    refs = [FrameRef(a, "drive_a", 0, 100, "fake"), FrameRef(a, "drive_a", 8, 800, "fake"), FrameRef(b, "drive_b", 0, 1000, "fake")]
    first = fn.reader(refs[0])
    assert fn.reader(refs[1]) is first  # same log: the cached reader
    outputs = [out for ref in refs for out in fn.process(ref)]
    assert [row["timestamp_ns"] for row in outputs] == [100, 800, 1000]
    assert closed == ["drive_a.fakelog"]  # evicted when drive_b opened (max_open_logs=1)
    fn.teardown()
    assert closed == ["drive_a.fakelog", "drive_b.fakelog"]


def test_dead_letter_of_an_unexpected_exception_says_where() -> None:
    try:
        {}["velodyne"]
    except KeyError as exc:
        letter = dead_letter("load", exc, log_uri="/logs/a", log_id="a", frame_index=3, timestamp_ns=7)
    assert letter["expected"] is False and letter["error_type"] == "KeyError"
    assert letter["message"].startswith("'velodyne' (raised at ") and "test_ingest.py" in letter["message"]
    assert (letter["log_id"], letter["frame_index"], letter["timestamp_ns"], letter["check"]) == ("a", 3, 7, None)


def test_progress_is_polled_while_an_async_runner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter(["RUNNING", "RUNNING", "DONE"])

    class FakeResult:
        state = "RUNNING"

        def metrics(self):
            self.state = next(states)
            counter = SimpleNamespace(key=SimpleNamespace(metric=SimpleNamespace(name="frames_indexed")), committed=None, attempted=4)
            listed = SimpleNamespace(key=SimpleNamespace(metric=SimpleNamespace(name="frames_listed")), committed=None, attempted=10)
            return SimpleNamespace(query=lambda _filter: {"counters": [counter, listed]})

        def wait_until_finish(self):
            return "DONE"

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    common.PROGRESS_LOGGER.addHandler(handler)
    common.PROGRESS_LOGGER.setLevel(logging.INFO)
    monkeypatch.setattr(common.time, "sleep", lambda s: None)
    try:
        state = common.wait_with_progress(FakeResult(), "avp.ingest", ingest._describe_progress, 0.1)
    finally:
        common.PROGRESS_LOGGER.removeHandler(handler)
    assert state == "DONE"
    assert lines == ["ingest: 4 of 10 listed frames done (4 indexed)"] * 3  # one line per poll while RUNNING


def test_progress_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.5, 3.0])
    monkeypatch.setattr(common.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    common.PROGRESS_LOGGER.addHandler(handler)
    common.PROGRESS_LOGGER.setLevel(logging.INFO)
    try:
        progress = common.ProgressLog("LoadAndValidate", "frames", interval_s=2.0)
        progress.tick()  # t=1.0: too early
        progress.tick(4)  # t=2.5: log
        progress.tick()  # t=3.0: too early again
    finally:
        common.PROGRESS_LOGGER.removeHandler(handler)
    assert len(lines) == 1 and lines[0].startswith("LoadAndValidate: 5 frames in 2.5 s (2.0/s) [worker pid ")


def test_avp_ingest_command(in_process: SimpleNamespace, fake_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from av_pipeline import cli

    # Only this subcommand: the others may not be importable while they are being written.
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"ingest": cli.SUBCOMMANDS["ingest"]})
    rc = cli.main(["ingest", str(fake_logs / "*.fakelog"), "--out", str(tmp_path / "out"), "--reader-module", FAKE_MODULE, "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames_listed"] == 12 and printed["frames_indexed"] == 5 and printed["dead_lettered"] == in_process.summary.dead_lettered
    assert _read_outputs(tmp_path / "out") == (in_process.rows, in_process.letters)

    rc = cli.main(["ingest", str(fake_logs / "*.bag"), "--out", str(tmp_path / "other")])
    assert rc == 1
    assert "avp ingest: error: logs: " in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ingest", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.splitlines()[0].startswith("usage: avp ingest")
    assert "Examples:" in help_text and "--workers N" in help_text and "--reader-option KEY=VALUE" in help_text


# ---------------------------------------------------------------------- the real KITTI reader
KITTI_FILES = {"velodyne": ".bin", "image_2": ".png", "calib": ".txt", "label_2": ".txt"}


@pytest.fixture(scope="module")
def kitti_split(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KITTI object split of five copies of sample 000001; samples 2-5 each carry one fault."""
    source = shared_data / "kitti" / "training"
    split_dir = tmp_path_factory.mktemp("kitti") / "training"
    for folder, ext in KITTI_FILES.items():
        (split_dir / folder).mkdir(parents=True)
        for k in range(1, 6):
            (split_dir / folder / f"{k:06d}{ext}").write_bytes((source / folder / f"000001{ext}").read_bytes())
    velodyne_2 = split_dir / "velodyne" / "000002.bin"
    velodyne_2.write_bytes(velodyne_2.read_bytes()[:-10])  # truncated sweep
    image_3 = split_dir / "image_2" / "000003.png"
    image_3.write_bytes(image_3.read_bytes()[:200_000])  # header intact, pixel data cut off
    calib_4 = split_dir / "calib" / "000004.txt"
    calib_4.write_text("".join(line for line in calib_4.read_text().splitlines(keepends=True) if not line.startswith("Tr_velo_to_cam")))
    velodyne_5 = split_dir / "velodyne" / "000005.bin"
    points = np.fromfile(velodyne_5, dtype="<f4").reshape(-1, 4)
    points[[100, 101, 5000], 2] = np.nan
    points.tofile(velodyne_5)
    return split_dir


@pytest.fixture(scope="module")
def kitti_in_process(kitti_split: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("kitti_out")
    summary = run(["--logs", str(kitti_split), "--out", str(out)])
    rows, letters = _read_outputs(out)
    return SimpleNamespace(split_dir=kitti_split, summary=summary, rows=rows, letters=letters)


@pytest.mark.realdata
def test_kitti_split_with_planted_faults(kitti_in_process: SimpleNamespace) -> None:
    split_dir, summary = kitti_in_process.split_dir, kitti_in_process.summary
    assert summary.frames_listed == 5 == summary.frames_indexed + summary.frames_dead_lettered
    assert summary.frames_indexed == 1 and summary.dead_lettered == {"list": 0, "entry": 0, "order": 0, "load": 2, "validate": 2}

    (row,) = kitti_in_process.rows
    assert (row["log_id"], row["timestamp_ns"], row["frame_index"], row["reader"]) == ("training", 100_000_000, 0, "kitti_object")
    assert row["lidar_names"] == ["velodyne"] and row["lidar_num_points"] == [1924288 // 16]
    assert row["camera_names"] == ["image_2"] and (row["image_widths_px"], row["image_heights_px"]) == ([1242], [375])
    assert row["num_annotations"] == 3  # Truck, Car, Cyclist; the 4 DontCare regions are not objects
    assert row["pose_translation_m"] is None and row["source_uri"] == str(split_dir / "velodyne" / "000001.bin")

    expected = {
        1: ("load", "LogFormatError", None, "velodyne/000002.bin", "velodyne points", "truncated?"),
        2: ("validate", "FrameValidationError", "image_decode", "image_2/000003.png", "camera 'image_2' image", "png bytes do not decode"),
        3: ("load", "CalibrationFileError", None, "calib/000004.txt", "Tr_velo_to_cam", "missing"),
        4: ("validate", "FrameValidationError", "non_finite_points", "velodyne/000005.bin", "lidar 'velodyne' points", "3 of 120268 points have NaN/inf"),
    }
    assert sorted(letter["frame_index"] for letter in kitti_in_process.letters) == sorted(expected)
    for letter in kitti_in_process.letters:
        stage, error_type, check, file_part, field, problem = expected[letter["frame_index"]]
        assert (letter["stage"], letter["error_type"], letter["check"], letter["field"]) == (stage, error_type, check, field)
        assert letter["path"] == str(split_dir / file_part)
        assert letter["message"].startswith(str(split_dir / file_part)) and problem in letter["message"], letter["message"]
        assert letter["timestamp_ns"] == (letter["frame_index"] + 1) * 100_000_000 and letter["log_id"] == "training"


@pytest.mark.parametrize(
    ("argv", "description"),
    [
        ([], "DirectRunner (in_memory, 1 worker)"),
        (["--runner", "DirectRunner"], "DirectRunner (in_memory, 1 worker)"),
        (["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"], "DirectRunner (multi_processing, 2 workers)"),
    ],
)
def test_local_runs_go_straight_to_the_fn_api_runner(argv: list[str], description: str) -> None:
    # Beam 2.77's DirectRunner first tries to download Prism; the local default must not.
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    pipeline, runner = common.create_pipeline(PipelineOptions(argv))
    assert isinstance(pipeline.runner, FnApiRunner)
    assert runner == description
    other, name = common.create_pipeline(PipelineOptions(["--runner", "PrismRunner"]))
    assert name == "PrismRunner" and not isinstance(other.runner, FnApiRunner)
