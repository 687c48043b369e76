"""Ground truth for evaluation, read from logs: boxes in ``ego`` with detector class names
and LiDAR point counts."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.config import DETECTOR_CLASSES
from av_pipeline.records import Frame


def detector_labels(labels: Iterable[str]) -> np.ndarray:
    """Dataset or product class names -> detector classes (``""`` for classes it does not detect)."""
    from av_pipeline.taxonomy import to_product_labels

    labels = list(labels)
    product = to_product_labels(labels, "any") if labels else np.zeros(0, dtype=str)
    return np.array([p if p in DETECTOR_CLASSES else "" for p in product], dtype="<U16")


def frame_ground_truth(frame: Frame) -> Cuboids:
    """The frame's annotations in ``ego`` with detector class names and point counts.

    Boxes of classes the detector does not know are dropped; ``num_lidar_points`` is kept
    when the log gives it, else counted in all the frame's sweeps. A frame without
    annotations has none.
    """
    from av_pipeline.detect.points import frame_points_ego

    boxes = frame.annotations
    if boxes is None or len(boxes) == 0:
        return Cuboids.empty("ego")
    if boxes.frame != "ego":
        raise ValueError(f"frame {frame.log_id}@{frame.timestamp_ns}: annotations are in '{boxes.frame}', expected 'ego'")
    labels = detector_labels(boxes.labels)
    keep = labels != ""
    counts = boxes.num_lidar_points
    if counts is None:
        counts = boxes.count_points(frame_points_ego(frame))
    return Cuboids.from_arrays(
        "ego", boxes.centers_m[keep], boxes.sizes_m[keep], boxes.yaws_rad[keep], labels[keep], None, boxes.track_ids[keep], counts[keep]
    )


def ground_truth_from_logs(logs: Iterable[str]) -> dict[tuple[str, int], Cuboids]:
    """Ground truth of every frame of every log (globs allowed), keyed by ``(log_id, timestamp_ns)``."""
    from av_pipeline.ingest import expand_log_patterns
    from av_pipeline.readers import open_log

    out: dict[tuple[str, int], Cuboids] = {}
    for uri in expand_log_patterns(list(logs)):
        with open_log(uri) as reader:
            for ref in reader.list_frames():
                frame = reader.load_frame(ref)
                out[frame.key] = frame_ground_truth(frame)
    return out
