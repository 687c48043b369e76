"""A frame's LiDAR points in ``ego`` (torch-free: used by the detector and by mining)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from av_pipeline.errors import ShapeError
from av_pipeline.records import Frame


def frame_points_ego(frame: Frame, columns: Sequence[str] = ("x", "y", "z")) -> np.ndarray:
    """All LiDAR sweeps of ``frame`` in the ``ego`` frame: ``(N, len(columns))`` float32.

    Raises:
        ShapeError: a sweep lacks one of ``columns``, or its LiDAR is not in the rig.
    """
    parts = []
    for name, sweep in frame.lidars.items():
        if name not in frame.rig.lidars:
            raise ShapeError(f"frame {frame.log_id}@{frame.timestamp_ns}: lidar '{name}' has no extrinsic in the rig")
        missing = [c for c in columns if c not in sweep.columns]
        if missing:
            raise ShapeError(f"frame {frame.log_id}@{frame.timestamp_ns}: lidar '{name}' has no column(s) {missing}; columns {list(sweep.columns)}")
        xyz = frame.rig.lidars[name].transform_points(sweep.xyz.astype(np.float64))
        extra = [sweep.column(c)[:, None] for c in columns[3:]]
        parts.append(np.hstack([xyz.astype(np.float32), *extra]) if extra else xyz.astype(np.float32))
    if not parts:
        return np.zeros((0, len(columns)), np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


__all__ = ["frame_points_ego"]
