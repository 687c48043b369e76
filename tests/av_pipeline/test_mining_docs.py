"""docs/mining.md lists every trigger with its parameters as the registry has them."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO_ROOT


def test_trigger_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("mining_trigger_docs", REPO_ROOT / "scripts" / "mining_trigger_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/mining.md is out of date: run python scripts/mining_trigger_docs.py"
    from av_pipeline.mining import registry

    for trigger in registry.names():
        assert f"#### `{trigger}`" in text
