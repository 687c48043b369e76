"""The user docs: every relative link resolves (file and heading), and the docs only tell
readers to call libraries that the install they describe brings, or say how to get them."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO_ROOT / "docs").glob("*.md")) + [REPO_ROOT / "README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    in_code = False
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(_anchor(line.lstrip("#")))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def _extra_requirements(extra: str, config: configparser.ConfigParser, seen: set[str] | None = None) -> set[str]:
    """Distribution names (lower case) an extra installs, following ``av-pipeline[...]`` references."""
    seen = seen if seen is not None else set()
    names: set[str] = set()
    if extra in seen:
        return names
    seen.add(extra)
    lines = config["options.extras_require"].get(extra, "") + "\n" + config["options"]["install_requires"]
    for line in lines.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        inner = re.match(r"av-pipeline\[([^\]]+)\]", line)
        if inner:
            for name in inner.group(1).split(","):
                names |= _extra_requirements(name.strip(), config, seen)
        else:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_the_frame_index_is_read_with_what_the_beam_extra_installs() -> None:
    """docs/running.md is about the Beam jobs: a module it shows being called must come with
    ``av-pipeline[beam]``, or the sentence must say how to install it."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    beam = _extra_requirements("beam", config)
    assert "pyarrow" in beam and "apache-beam" in beam
    text = (REPO_ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    sentences = re.split(r"(?<=[.:;])\s+(?=[A-Z(`])", text)
    problems = []
    for sentence in sentences:
        for module in set(re.findall(r"`(pandas|polars|duckdb)\.\w+\(", sentence)):
            if module not in beam and "pip install" not in sentence:
                problems.append(f"{module}: {sentence.strip()[:160]}")
    assert "pyarrow.parquet.read_table" in text
    assert not problems, problems
