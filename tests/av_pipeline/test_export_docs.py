"""The Python blocks of docs/datasets.md run as written against an exported dataset (a block
after ``<!-- needs: MODULE -->`` runs when MODULE is installed; one after ``<!-- not run: ... -->``
is only compiled)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re

import pytest

from tests.av_pipeline.export_fixtures import boxes, tiny_case, tiny_frame
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "datasets.md"
BLOCK = re.compile(r"(?:<!-- (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
BLOCKS = [(m.group("mark") or "", m.group("code"), DOC.read_text()[: m.start()].count("\n") + 2) for m in BLOCK.finditer(DOC.read_text())]


@pytest.fixture(scope="module")
def dataset_cwd(tmp_path_factory):
    """A folder holding ``dataset/``: one tiny case in every format, and its manifest."""
    from av_pipeline.export import export_case, write_manifest

    root = tmp_path_factory.mktemp("docs")
    frames = [tiny_frame(k) for k in range(3)]
    shadow = {f.timestamp_ns: boxes(k, offset_m=0.3) for k, f in enumerate(frames)}
    write_manifest([export_case(tiny_case(0, 2), frames, shadow, root / "dataset")], root / "dataset")
    return root


def test_the_doc_has_runnable_blocks_for_every_format():
    runnable = [code for mark, code, _ in BLOCKS if not mark.startswith("not run")]
    assert len(runnable) >= 6
    for needle in ("openlabel_path", "kitti_shadow_path", "kitti_onboard_path", "mcap_path", "manifest.parquet", "from vcd import"):
        assert any(needle in code for code in runnable), needle


@pytest.mark.parametrize("mark, code, line", BLOCKS, ids=[f"line{line}" for _, _, line in BLOCKS])
def test_block_runs(mark, code, line, dataset_cwd, monkeypatch):
    compiled = compile(code, f"{DOC}:{line}", "exec")
    if mark.startswith("not run"):
        return  # compiled only: it needs outputs or tools the tests do not have
    if mark.startswith("needs:"):
        module = mark.split(":", 1)[1].strip()
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    monkeypatch.chdir(dataset_cwd)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compiled, {"__name__": "__docs__"})  # noqa: S102 - our own documentation
    assert printed.getvalue().strip(), "each example prints what it read"
