"""Regenerate the trigger reference in docs/mining.md from the trigger registry.

The section between ``<!-- triggers:begin -->`` and ``<!-- triggers:end -->`` is replaced by
every registered trigger's docstring, needs and parameters (names, defaults, meanings), so
the docs cannot drift from the code; ``tests/av_pipeline/test_mining_docs.py`` checks it.

Run: ``python scripts/mining_trigger_docs.py [--check]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DOC = REPO_ROOT / "docs" / "mining.md"
BEGIN, END = "<!-- triggers:begin -->", "<!-- triggers:end -->"


def trigger_reference() -> str:
    from av_pipeline.mining import registry
    from av_pipeline.taxonomy import PRODUCT_CLASSES

    lines: list[str] = []
    family = None
    for spec in registry.specs():
        if spec.family != family:
            family = spec.family
            lines += [f"### {family}", ""]
        lines += [f"#### `{spec.name}`", "", " ".join(line.strip() for line in spec.doc.splitlines() if line.strip()), ""]
        lines += [f"Needs: {', '.join(sorted(spec.needs))}.", "", "| parameter | default | meaning |", "|---|---|---|"]
        for name, default, text in spec.param_docs():
            if isinstance(default, tuple):
                default = "all product classes" if tuple(default) == tuple(PRODUCT_CLASSES) else "[" + ", ".join(default) + "]"
            lines.append(f"| `{name}` | `{default}` | {text} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{trigger_reference()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/mining.md is out of date instead of rewriting it")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if args.check:
        return 0 if new == text else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
