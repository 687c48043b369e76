"""The mining report (``build_report`` and ``avp report``) on a hand-built mining folder
(tests/av_pipeline/report_fixtures.py): summary.json against the mining files, every top case's
reasons and pictures, escaping of hostile names, dead letters counted and explained, bad
arguments. The page in a real browser: test_report_browser.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("jinja2")
pytest.importorskip("apache_beam")  # the fixture computes mining.json with beam_jobs.mine's own function

from markupsafe import escape  # noqa: E402  (jinja2's escaping)

from av_pipeline.cli import main  # noqa: E402
from av_pipeline.errors import ConfigError, LogFormatError  # noqa: E402
from av_pipeline.report import build_report, read_mining_run  # noqa: E402
from av_pipeline.report.tables import overview  # noqa: E402
from tests.av_pipeline.report_fixtures import DEAD_LETTERS, HOSTILE_LOG_ID, write_fixture_logs, write_mining_folder  # noqa: E402

TOP = 3


@pytest.fixture(scope="module")
def mining_dir(tmp_path_factory) -> Path:
    return write_mining_folder(tmp_path_factory.mktemp("mining"))


@pytest.fixture(scope="module")
def log_uris(tmp_path_factory) -> dict[str, str]:
    return write_fixture_logs(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def report(mining_dir, log_uris, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = build_report(mining_dir, out, log_uris=list(log_uris.values()), top_cases=TOP)
    return result, result.index_html.read_text(encoding="utf-8"), json.loads(result.summary_json.read_text(encoding="utf-8"))


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _article(html: str, rank: int) -> str:
    match = re.search(rf'<article class="case" id="case-{rank}">(.*?)</article>', html, re.S)
    assert match, f"no section for case rank {rank}"
    return match.group(1)


def test_summary_json_numbers_equal_the_mining_folder(mining_dir, report):
    result, _, summary = report
    json.loads(result.summary_json.read_text(), parse_constant=lambda name: pytest.fail(f"summary.json holds {name}: not JSON"))
    mined, mining, cases = _read(mining_dir / "summary.json"), _read(mining_dir / "mining.json"), _read(mining_dir / "cases.json")["cases"]
    for key in ("frames_listed", "frames_mined", "frames_dead_lettered", "logs_dead_lettered", "events"):
        assert summary[key] == mined[key], key
    assert summary["frames_listed"] == summary["frames_mined"] + summary["frames_dead_lettered"] and summary["frames_accounted"] is True
    assert summary["cases"] == len(cases) == mined["cases"] == 4 and summary["candidate_cases"] == mining["candidate_cases"]
    assert summary["key_frames"] == mining["key_frames"] == sum(len(c["key_frames"]) for c in cases)
    assert summary["key_frame_budget"] == mining["key_frame_budget"] and summary["key_frame_budget_used"] == pytest.approx(mining["key_frames"] / mining["key_frame_budget"], abs=1e-4)
    assert summary["case_budget"] is None and summary["case_budget_used"] is None  # the default campaign has no case limit
    assert summary["dead_letters"] == len(DEAD_LETTERS) == 3
    assert summary["dead_letters_by_stage"] == {"list": 1, "load": 2} and summary["dead_letters_by_reason"] == {"LogFormatError": 3}
    fired = {}
    for log in mining["logs"].values():
        for trigger, count in log["events_per_trigger"].items():
            fired[trigger] = fired.get(trigger, 0) + count
    rows = {r["trigger"]: r for r in summary["per_trigger"]}
    assert {t: r["fired"] for t, r in rows.items() if r["fired"]} == {t: n for t, n in fired.items() if n}
    assert sum(r["events_in_cases"] for r in summary["per_trigger"]) == sum(len(c["events"]) for c in cases) == summary["events_in_cases"]
    assert rows["missed_by_onboard"]["skipped_logs"] == 1  # drive_b has no onboard perception
    assert {r["log_id"]: r["frames"] for r in summary["per_log"]} == {k: v["frames"] for k, v in mining["logs"].items()}
    assert sum(r["cases"] for r in summary["per_class"]) >= len(cases) and sum(r["cases"] for r in summary["per_range_bin"]) == len(cases)


def test_every_top_case_has_its_reasons_and_pictures_in_the_page(mining_dir, report):
    result, html, summary = report
    cases = sorted(_read(mining_dir / "cases.json")["cases"], key=lambda c: c["rank"])
    assert result.cases_shown == len(summary["cases_shown"]) == TOP < len(cases)
    for case in cases[:TOP]:
        article = _article(html, case["rank"])
        assert str(escape(case["case_id"])) in article
        assert case["reasons"] and all(str(escape(reason)) in article for reason in case["reasons"])
        pictures = re.findall(r'<img src="([^"]+)"', article)
        assert any(p.endswith("_bev.png") for p in pictures) and any("_camera_front" in p for p in pictures), pictures
        for picture in pictures:
            assert (result.out_dir / picture).stat().st_size > 1000, picture
    assert f'id="case-{cases[TOP]["rank"]}"' not in html  # beyond the top N: no section
    assert result.cases_with_pictures == TOP and not result.notes


def test_case_links_point_at_the_files_of_the_case(mining_dir, log_uris, report):
    from urllib.parse import unquote

    result, html, summary = report
    for case in summary["cases_shown"]:
        files = {f["label"]: f for f in case["files"]}
        assert Path(files["cases.json (all cases)"]["path"]) == mining_dir / "cases.json"
        assert Path(files["the log"]["path"]) == Path(log_uris[case["log_id"]])
        assert Path(files["shadow pre-labels of the log"]["path"]).is_file()
        for link in case["files"]:
            target = (result.out_dir / unquote(link["href"])).resolve()
            assert link["exists"] and target == Path(link["path"]).resolve(), link
            assert f'href="{escape(link["href"])}"' in html


def test_hostile_names_are_text_in_the_page(report):
    _, html, summary = report
    assert "<b>broken</b>" not in html and str(escape("/logs/<b>broken</b>.mcap")) in html
    assert HOSTILE_LOG_ID not in html and "<img src=x" not in html and str(escape(HOSTILE_LOG_ID)) in html
    assert re.findall(r"<img [^>]*>", html) == re.findall(r'<img src="figures/[^"]+" alt="[^"<>]*">', html)  # only our pictures
    assert HOSTILE_LOG_ID in [r["log_id"] for r in summary["per_log"]]  # summary.json keeps the name as it is
    assert any(r["path"] == "/logs/<b>broken</b>.mcap" for r in summary["dead_letter_groups"])


def test_dead_letters_are_counted_and_explained(report):
    _, html, summary = report
    groups = {(r["stage"], r["reason"], r["field"]): r for r in summary["dead_letter_groups"]}
    load = groups[("load", "LogFormatError", "/lidar_top")]
    assert load["count"] == load["frames"] == 2 and load["logs"] == ["drive_a"] and "truncated chunk" in load["message"]
    listing = groups[("list", "LogFormatError", "magic")]
    assert listing["count"] == 1 and listing["frames"] == 0 and len(listing["message"]) == 300  # 500 characters capped
    explanation = summary["dead_letter_explanation"]
    assert explanation.startswith("2 frames and 1 log were dead-lettered: 2 frames at stage load, LogFormatError: /logs/drive_a.mcap: /lidar_top: truncated chunk")
    assert str(escape(explanation)) in html
    table = re.search(r'<table id="dead-letters-table">(.*?)</table>', html, re.S).group(1)
    assert table.count("<tr>") == 3 and "truncated chunk" in table  # header + two groups
    assert re.search(r'data-key="frames_dead_lettered">2<', html) and re.search(r'data-key="dead_letters">3<', html)


def test_an_unexpected_failure_is_called_a_bug(mining_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(mining_dir, tmp_path / "mining"))
    letter = dict(DEAD_LETTERS[0], error_type="KeyError", expected=False, message="'velodyne' (raised at x.py:1 in load)")
    (copy / "dead_letters" / "dead_letters-00000-of-00001.jsonl").write_text(json.dumps(letter) + "\n")
    summary = overview(read_mining_run(copy))
    assert summary["dead_letters_by_reason"] == {"KeyError (unexpected: likely a bug)": 1}
    assert summary["dead_letter_explanation"].startswith("1 frame and 0 logs were dead-lettered: 1 frame at stage load, KeyError (unexpected")


def test_cases_of_logs_not_given_are_shown_with_a_note(mining_dir, log_uris, tmp_path):
    result = build_report(mining_dir, tmp_path / "r", log_uris={HOSTILE_LOG_ID: log_uris[HOSTILE_LOG_ID]}, top_cases=4)
    shown = {c["log_id"]: c for c in _read(result.summary_json)["cases_shown"]}
    assert result.cases_with_pictures == 1 and shown[HOSTILE_LOG_ID]["pictures"] and not shown[HOSTILE_LOG_ID]["notes"]
    drive_a = shown["drive_a"]
    assert drive_a["pictures"] == [] and "'drive_a' is not known" in drive_a["notes"][0] and "avp report --logs" in drive_a["notes"][0]
    assert set(result.notes) == {c["case_id"] for c in _read(result.summary_json)["cases_shown"] if c["log_id"] == "drive_a"}
    html = result.index_html.read_text(encoding="utf-8")
    assert str(escape(drive_a["notes"][0])) in _article(html, drive_a["rank"])


def test_a_log_that_cannot_be_read_is_a_note_not_an_error(mining_dir, tmp_path):
    from av_pipeline.report.case_figures import KeyFrameSource, key_frame_pictures

    broken = tmp_path / "drive_a.mcap"
    broken.write_bytes(b"\x89MCAP0\r\n" + bytes(64))
    run = read_mining_run(mining_dir)
    case = next(c for c in run.cases if c.log_id == "drive_a")
    with KeyFrameSource({"drive_a": str(broken)}, run.prelabel_dir) as source:
        for _ in range(2):  # a second try says the same, not "location unknown"
            pictures = key_frame_pictures(source, case, tmp_path / "figures", tmp_path)
            assert pictures.pictures == () and len(pictures.notes) == len(case.key_frames)
            assert all("no pictures: LogFormatError: " in note and str(broken) in note for note in pictures.notes), pictures.notes


def test_calibration_verdicts_are_a_table(mining_dir, tmp_path):
    verdicts = [
        {"sensor": "front", "check": "drift check, as calibrated", "value": 0.02, "threshold": 0.1, "verdict": "ok"},
        {"sensor": "left", "check": "drift check, as calibrated", "value": 0.4, "threshold": 0.1, "verdict": "DRIFTED", "note": "pan"},
    ]
    result = build_report(mining_dir, tmp_path / "r", calibration=verdicts, top_cases=0)
    summary, html = _read(result.summary_json), result.index_html.read_text(encoding="utf-8")
    assert [v["verdict"] for v in summary["calibration"]["verdicts"]] == ["ok", "DRIFTED"]
    table = re.search(r'<table id="calibration-table">(.*?)</table>', html, re.S).group(1)
    assert '<td class="bad">DRIFTED</td>' in table and '<td class="good">ok</td>' in table and "0.400" in table
    assert summary["cases_shown"] == [] and "No case" not in html  # top 0: no case section, but there are cases


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"top_cases": -1}, r"^top_cases: expected an integer >= 0"),
        ({"top_cases": "3"}, r"^top_cases: "),
        ({"mining_dir": "nowhere"}, r"^mining_dir: expected the folder of a mining run"),
        ({"out_dir": "MINING"}, r"^out_dir: .* is the mining folder"),
        ({"out_dir": "FILE"}, r"^out_dir: .* is a file"),
        ({"log_uris": "drive_a.mcap"}, r"^log_uris: expected a mapping .* got a single path"),
        ({"log_uris": ["/nonexistent/drive.mcap"]}, r"^log_uris\[0\]: cannot open '/nonexistent/drive.mcap'"),
        ({"log_uris": {"drive_a": 3}}, r"^log_uris\['drive_a'\]: expected a path"),
        ({"calibration": 42}, r"^calibration: expected verdicts"),
        ({"calibration": [{"sensor": "front"}]}, r"^calibration\[0\]: missing keys"),
        ({"exported": ["a"]}, r"^exported: expected a mapping"),
        ({"overwrite": "yes"}, r"^overwrite: expected True or False"),
        ({"progress": "loud"}, r"^progress: expected a function"),
    ],
)
def test_bad_arguments_are_config_errors_naming_the_argument(mining_dir, tmp_path, change, match):
    (tmp_path / "a_file").write_text("")
    arguments = {"mining_dir": mining_dir, "out_dir": tmp_path / "out"}
    arguments.update(change)
    arguments["out_dir"] = {"MINING": mining_dir, "FILE": tmp_path / "a_file"}.get(str(arguments["out_dir"]), arguments["out_dir"])
    with pytest.raises(ConfigError, match=match):
        build_report(**arguments)
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_an_earlier_report_is_replaced_only_with_overwrite(mining_dir, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^out_dir: .* already holds a report \(index.html\); pass overwrite=True"):
        build_report(mining_dir, out, top_cases=0)
    assert (out / "index.html").read_text() == "old"
    build_report(mining_dir, out, top_cases=0, overwrite=True)
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>") and (out / "notes.txt").read_text() == "mine"


def test_a_broken_mining_folder_names_the_file(mining_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(mining_dir, tmp_path / "mining"))
    (copy / "mining.json").write_text(json.dumps({**_read(copy / "mining.json"), "key_frames": -1}))
    with pytest.raises(LogFormatError, match=r"mining.json: key_frames: expected a non-negative integer, got -1"):
        build_report(copy, tmp_path / "r")
    shutil.copy(mining_dir / "mining.json", copy / "mining.json")
    (copy / "cases.json").unlink()
    with pytest.raises(LogFormatError, match=r"cases.json.*missing: not a mining output folder"):
        build_report(copy, tmp_path / "r")


def test_cli_writes_the_report_and_refuses_bad_arguments(mining_dir, log_uris, tmp_path, capsys):
    out = tmp_path / "report"
    verdicts = tmp_path / "verdicts.json"
    verdicts.write_text(json.dumps([{"sensor": "front", "check": "drift check", "value": 0.5, "threshold": 0.1, "verdict": "DRIFTED"}]))
    logs = str(Path(log_uris["drive_a"]).parent / "*.mcap")
    assert main(["report", str(mining_dir), "--out", str(out), "--logs", logs, "--top", "1", "--calibration", str(verdicts)]) == 0
    printed = capsys.readouterr().out
    assert f"report of 4 cases (1 shown, 1 with pictures, 7 figures) -> {out / 'index.html'}" in printed
    summary = _read(out / "summary.json")
    assert len(summary["cases_shown"]) == 1 and summary["cases_shown"][0]["pictures"] and summary["calibration"]["verdicts"][0]["sensor"] == "front"
    assert main(["report", str(mining_dir), "--out", str(out)]) == 1
    assert "avp report: error: out_dir: " in capsys.readouterr().err
    assert main(["report", str(mining_dir), "--out", str(tmp_path / "r2"), "--top", "-2"]) == 1
    assert "avp report: error: --top: expected a number of cases >= 0, got -2" in capsys.readouterr().err
    assert main(["report", str(mining_dir), "--out", str(tmp_path / "r2"), "--logs", str(tmp_path / "none*.mcap")]) == 1
    assert "--logs: the pattern" in capsys.readouterr().err and not (tmp_path / "r2").exists()
