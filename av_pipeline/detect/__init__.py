"""3D cuboid pre-labels: a sparse-convolution detector, its training, evaluation and refinement.

The only package besides :mod:`av_pipeline.voxelize` that uses torch and spconv; those are
imported when a model is built or loaded, so the geometry kernels
(:mod:`av_pipeline.detect.geometry`), evaluation and refinement work without them.

- :class:`Detector` (``from_pretrained()``, ``detect(frame)``, ``detect_batch(frames)``);
- :func:`evaluate` / :class:`EvalConfig`: KITTI AP R40, nuScenes centre-distance AP, pre-label quality;
- :func:`track_and_refine`: offboard refinement over a log;
- :mod:`~av_pipeline.detect.geometry`: rotated BEV IoU, 3D IoU, NMS;
- ``avp train`` / ``avp prelabel`` / ``avp evaluate``; guide: docs/prelabels.md.
"""

from __future__ import annotations

from typing import Any

from av_pipeline.detect.config import CPU_SMALL, DETECTOR_CLASSES, PRESETS, DetectorConfig, preset
from av_pipeline.detect.evaluate import EvalConfig, EvalReport, evaluate
from av_pipeline.detect.geometry import bev_iou, cuboid_bev_iou, cuboid_iou_3d, iou_3d, rotated_nms
from av_pipeline.detect.refine import RefineConfig, TimedDetections, track_and_refine

_LAZY = {"Detector": "av_pipeline.detect.detector", "DetectionStats": "av_pipeline.detect.detector", "CheckpointError": "av_pipeline.detect.checkpoint"}


def __getattr__(name: str) -> Any:
    # torch-backed names load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'av_pipeline.detect' has no attribute {name!r}")


__all__ = [
    "CPU_SMALL",
    "CheckpointError",
    "DETECTOR_CLASSES",
    "DetectionStats",
    "Detector",
    "DetectorConfig",
    "EvalConfig",
    "EvalReport",
    "PRESETS",
    "RefineConfig",
    "TimedDetections",
    "bev_iou",
    "cuboid_bev_iou",
    "cuboid_iou_3d",
    "evaluate",
    "iou_3d",
    "preset",
    "rotated_nms",
    "track_and_refine",
]
