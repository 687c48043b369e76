"""Synthetic drive logs: a ray-cast street with traffic, a spinning 64-beam LiDAR, cameras,
ground truth, an "onboard perception" with planted anomalies, written as real logs.

Guide: docs/synthetic.md. Entry points:

- :class:`SimulationConfig` (and its parts) says what to generate;
- :class:`SyntheticDrive` renders frames on demand (:class:`SyntheticFrame`);
- :func:`write_synthetic_log` writes MCAP and/or KITTI raw plus the side files
  (answer key, labels, planned path);
- :func:`bundled_log` is the small log that comes with the package (generated on first use; the main job's default input);
- ``avp simulate`` is the command line.
"""

from av_pipeline.synthetic.bundled import BUNDLED_CONFIG, BUNDLED_LOG_DIR, BundledLog, bundled_log
from av_pipeline.synthetic.config import (
    ANOMALY_KINDS,
    CameraConfig,
    LidarConfig,
    PerceptionConfig,
    SceneConfig,
    SimulationConfig,
    default_cameras,
    hdl64e_elevations_deg,
)
from av_pipeline.synthetic.generator import SyntheticDrive, SyntheticFrame
from av_pipeline.synthetic.output import FORMATS, SyntheticLog, write_synthetic_log
from av_pipeline.synthetic.perception import Anomaly, onboard_perception
from av_pipeline.synthetic.sidecar import load_anomalies, load_labels

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "BUNDLED_CONFIG",
    "BUNDLED_LOG_DIR",
    "BundledLog",
    "CameraConfig",
    "FORMATS",
    "LidarConfig",
    "PerceptionConfig",
    "SceneConfig",
    "SimulationConfig",
    "SyntheticDrive",
    "SyntheticFrame",
    "SyntheticLog",
    "bundled_log",
    "default_cameras",
    "hdl64e_elevations_deg",
    "load_anomalies",
    "load_labels",
    "onboard_perception",
    "write_synthetic_log",
]
