"""The ``key: numbers`` line layout shared by the KITTI calibration text files."""

from __future__ import annotations

import re
from dataclasses import dataclass

from calibration.errors import CalibrationFileError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class KeyedLine:
    """One ``key: v1 v2 ...`` line: its 1-based line number, key and value tokens."""

    line_no: int
    key: str
    tokens: tuple[str, ...]
    text: str  # the value part, unsplit (for string values such as calib_time)


def split_keyed_lines(text: str, path: str, *, colon_optional: bool = False) -> dict[str, KeyedLine]:
    """Split ``key: values`` lines into a dict keyed by ``key`` (blank lines skipped).

    Args:
        text: the file's text.
        path: the file, for messages.
        colon_optional: also accept ``key v1 v2 ...`` (the KITTI tracking calib files write
            ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo`` without a colon).

    Raises:
        CalibrationFileError: a line without a key, or a key given twice.
    """
    lines: dict[str, KeyedLine] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep or not _KEY.match(key):
            first, _, rest = line.partition(" ")
            if not (colon_optional and _KEY.match(first)):
                raise CalibrationFileError(
                    path, None, f"line {line_no}: expected 'key: values', got {_clip(line)!r}"
                )
            key = first
        if key in lines:
            raise CalibrationFileError(path, key, f"given twice (lines {lines[key].line_no} and {line_no})")
        lines[key] = KeyedLine(line_no, key, tuple(rest.split()), rest.strip())
    return lines


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
