"""The fuzz run is shared by every test in this folder: one session-scoped run of all targets.

Size: ``--fuzz-iterations N`` or ``AVP_FUZZ_ITERATIONS=N`` mutated inputs per target
(default :data:`DEFAULT_ITERATIONS`, about two minutes on two cores); ``AVP_FUZZ_SEED``
changes the seed. ``AVP_FUZZ_REPORT=path.json`` writes the per-target counts there. The
counts are printed at the end of the test run.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA

#: Mutated inputs per target in a default run.
DEFAULT_ITERATIONS = 60

_RESULTS_KEY = pytest.StashKey[dict]()


def fuzz_iterations(config: pytest.Config) -> int:
    option = config.getoption("--fuzz-iterations", default=None)
    return int(option if option is not None else os.environ.get("AVP_FUZZ_ITERATIONS", DEFAULT_ITERATIONS))


@pytest.fixture(scope="session")
def fuzz_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """target -> counts and failures of one fuzz run over every reader and calibration format."""
    from tests.fuzz.harness import FuzzSettings, run_all
    from tests.fuzz.seeds import build_seeds

    root = tmp_path_factory.mktemp("fuzz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seeds = build_seeds(root / "seeds", SHARED_DATA if SHARED_DATA.is_dir() else None)
    settings = FuzzSettings(cases_per_target=fuzz_iterations(request.config), seed=int(os.environ.get("AVP_FUZZ_SEED", 2024)))
    results = run_all(seeds, root / "work", settings)
    request.config.stash[_RESULTS_KEY] = results
    report = os.environ.get("AVP_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(results, indent=1, default=str))
    return results


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS_KEY, None)
    if results:
        from tests.fuzz.harness import format_table

        terminalreporter.section("fuzz: outcomes per reader / calibration format")
        terminalreporter.write_line(format_table(results))
