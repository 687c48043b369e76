"""Headerless float32 point files: KITTI ``velodyne/*.bin`` (x, y, z, reflectance) and
nuScenes / Lyft ``.pcd.bin`` / ``.bin`` (x, y, z, intensity, ring).

The file is ``N * C`` little-endian float32 values, point after point; nothing records ``C``,
so the caller says how many columns to expect and a size that is not a multiple of
``4 * C`` bytes is an error (a truncated or foreign file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from av_pipeline.errors import LogFormatError


def read_float32_points(path: str | Path, num_columns: int, *, field: str = "points") -> np.ndarray:
    """Read an ``(N, num_columns)`` float32 array from a headerless point file.

    Values are returned as stored: NaN/inf are kept (readers report, ingest validation
    dead-letters).

    Args:
        path: the file.
        num_columns: float32 values per point (4 for KITTI, 5 for nuScenes/Lyft).
        field: names the data in error messages.

    Raises:
        LogFormatError: the file cannot be read, or its size is not a multiple of
            ``4 * num_columns`` bytes (the message gives the expected multiple and the
            actual byte count).
    """
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise LogFormatError(path, field, f"cannot read point file: {exc}") from exc
    record = 4 * num_columns
    if len(blob) % record:
        raise LogFormatError(
            path,
            field,
            f"expected a multiple of {record} bytes ({num_columns} float32 per point), got {len(blob)} bytes "
            f"({len(blob) // record} whole points and {len(blob) % record} bytes left over: truncated?)",
        )
    return np.frombuffer(blob, dtype="<f4").reshape(-1, num_columns).astype(np.float32)


__all__ = ["read_float32_points"]
