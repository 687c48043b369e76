"""Shared fixtures: the real sensor samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Generate the bundled synthetic log once, before any test reads it (a lock serialises xdist workers)."""
    from av_pipeline.synthetic import bundled_log

    bundled_log()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-iterations",
        type=int,
        default=None,
        help="mutated inputs per reader / calibration format in tests/fuzz (default 60, or $AVP_FUZZ_ITERATIONS)",
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; tests that need it are skipped with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sensor samples not found at {SHARED_DATA} (set AVP_SHARED_DATA)")
    return SHARED_DATA
