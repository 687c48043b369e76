"""The mining report in a real browser: Debian's headless Chromium driven by selenium through
Debian's chromium-driver (the driver must match the browser, which Debian's packages do).

The page (from the hand-built mining folder of report_fixtures.py, or the report folder named
by ``AVP_REPORT_UNDER_TEST``) must load every image, fill every table and log no console error;
a log named like an HTML tag must stay text. A screenshot is always taken (into ``tmp_path``,
checked non-empty); with ``AVP_UPDATE_DOCS_SCREENSHOT=1`` it also replaces
``docs/images/report.png``. The docs picture is made from a report of the bundled log::

    avp mine av_pipeline/data/synthetic/synthetic_default.mcap --out /tmp/mine_out
    avp report /tmp/mine_out --out /tmp/report_out --logs av_pipeline/data/synthetic/synthetic_default.mcap
    AVP_REPORT_UNDER_TEST=/tmp/report_out AVP_UPDATE_DOCS_SCREENSHOT=1 \\
        .venv/bin/python -m pytest tests/av_pipeline/test_report_browser.py

When Chromium or its driver is missing the fixture installs them with
``apt-get install -y chromium chromium-driver`` if it runs as root, else the test skips
saying that command (scripts/bootstrap.sh installs them too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "report.png"
APT_COMMAND = ["apt-get", "install", "-y", "chromium", "chromium-driver"]
INSTALL_HINT = "run as root: apt-get install -y chromium chromium-driver (or scripts/bootstrap.sh as root)"
#: Browser window: wide enough for the tables and charts side by side; the docs picture is this size.
WINDOW_PX = (1280, 1600)

pytestmark = pytest.mark.slow


def _find_browser() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or ``None`` when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.access(p, os.X_OK)), None)
    return (browser, driver) if browser and driver else None


def _apt_install() -> str:
    """Install Debian's chromium and chromium-driver; returns what went wrong, or ``""``."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in (APT_COMMAND, ["apt-get", "update", "-q"], APT_COMMAND):
        done = subprocess.run(attempt, capture_output=True, text=True, env=environment, timeout=900, check=False)
        if done.returncode == 0 and attempt is APT_COMMAND:
            return ""
    return f"{' '.join(APT_COMMAND)} failed: {(done.stderr or done.stdout).strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver, installed with apt-get when missing and
    running as root; otherwise the test skips saying how to install them."""
    pytest.importorskip("selenium", reason="selenium is missing: pip install -c constraints.txt 'selenium>=4.20,<5' (in the test extra)")
    found = _find_browser()
    if found is None:
        problem = _apt_install()
        found = _find_browser()
        if found is None:
            pytest.skip(f"headless Chromium and chromedriver are not installed ({problem or 'apt-get installed nothing usable'}); {INSTALL_HINT}")
    return found


@pytest.fixture
def browser(chromium):
    """A headless Chromium that keeps the page's console messages (``goog:loggingPrefs``)."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    # --no-sandbox: Chromium refuses to run as root with its sandbox; the page is our own file.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={WINDOW_PX[0]},{WINDOW_PX[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium {chromium[0]} with driver {chromium[1]} does not start ({str(exc)[:300]}); the driver must match the browser: {INSTALL_HINT}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """The report to load: ``$AVP_REPORT_UNDER_TEST``, else one of the hand-built mining folder."""
    given = os.environ.get("AVP_REPORT_UNDER_TEST")
    if given:
        if not (Path(given) / "index.html").is_file():
            pytest.fail(f"AVP_REPORT_UNDER_TEST={given}: no index.html there (make one with avp report)")
        return Path(given)
    pytest.importorskip("apache_beam")
    from av_pipeline.report import build_report
    from tests.av_pipeline.report_fixtures import write_fixture_logs, write_mining_folder

    mining = write_mining_folder(tmp_path_factory.mktemp("mining"))
    logs = write_fixture_logs(tmp_path_factory.mktemp("logs"))
    return build_report(mining, tmp_path_factory.mktemp("report"), log_uris=logs, top_cases=4).out_dir


def test_the_report_loads_in_chromium_with_every_image_and_no_console_error(browser, report_dir, tmp_path):
    import json

    from PIL import Image
    from selenium.common.exceptions import NoAlertPresentException

    browser.get((report_dir / "index.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("Mining report")

    images = browser.execute_script("return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight])")
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    pictures = [p["path"] for case in summary["cases_shown"] for p in case["pictures"]]
    assert len(images) == 5 + len(summary["calibration"]["figures"] if summary["calibration"] else []) + len(pictures) and pictures
    assert {src for src, *_ in images} >= set(pictures)
    unloaded = [src for src, complete, width, height in images if not (complete and width > 0 and height > 0)]
    assert not unloaded, f"images that did not load: {unloaded}"

    rows = browser.execute_script("return Array.from(document.querySelectorAll('table')).map(t => [t.id || t.className, t.querySelectorAll('tbody tr').length])")
    assert len(rows) >= 9 and all(count > 0 for _, count in rows), rows
    counts = dict(rows)
    assert counts["triggers-table"] == len(summary["per_trigger"]) and counts["logs-table"] == len(summary["per_log"])
    for case in summary["cases_shown"]:
        events = browser.find_element("id", f"case-{case['rank']}-events")
        assert len(events.find_elements("css selector", "tbody tr")) == len(case["events"])
        assert case["events"][0]["reason"] in events.text

    text = browser.find_element("id", "summary").text
    assert f"{summary['frames_listed']} frames in: {summary['frames_mined']} mined, {summary['frames_dead_lettered']} dead-lettered" in text
    assert summary["dead_letter_explanation"] in text

    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, f"console errors: {errors}"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018  (a page that ran an injected script would show one)

    if not os.environ.get("AVP_REPORT_UNDER_TEST"):
        from tests.av_pipeline.report_fixtures import HOSTILE_LOG_ID

        logs = browser.find_element("id", "logs-table").text
        assert HOSTILE_LOG_ID in logs and "/logs/<b>broken</b>.mcap" in browser.find_element("id", "dead-letters-table").text
        assert browser.find_elements("css selector", "#dead-letters-table b") == []
        assert "2 frames and 1 log were dead-lettered" in text

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as image:
        assert image.size[0] >= WINDOW_PX[0] * 0.9 and image.size[1] >= WINDOW_PX[1] * 0.5
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50  # not a blank page
    if os.environ.get("AVP_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
