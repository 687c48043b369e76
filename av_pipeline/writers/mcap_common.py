"""MCAP file handling shared by the foxglove and ROS 2 writers."""

from __future__ import annotations

from pathlib import Path

from mcap.writer import CompressionType

from av_pipeline.errors import ConfigError

#: Accepted ``compression`` values -> ``mcap.writer.CompressionType`` member names.
COMPRESSIONS = {"zstd": "ZSTD", "lz4": "LZ4", "none": "NONE"}


def compression_type(compression: str) -> CompressionType:
    """The ``mcap.writer.CompressionType`` for ``"zstd"``, ``"lz4"`` or ``"none"``.

    Raises:
        ConfigError: another value.
    """
    if compression not in COMPRESSIONS:
        raise ConfigError(f"compression: expected one of {sorted(COMPRESSIONS)}, got {compression!r}")
    return CompressionType[COMPRESSIONS[compression]]


def check_output_path(path: str | Path) -> Path:
    """``path`` as a :class:`Path` whose parent directory exists.

    Raises:
        ConfigError: the parent directory does not exist.
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: the directory {out.parent} does not exist")
    return out
