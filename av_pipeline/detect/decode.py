"""Heatmaps and regression maps -> scored cuboids: peak top-k, box decoding, rotated NMS."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.config import DetectorConfig
from av_pipeline.detect.geometry import rotated_nms
from av_pipeline.detect.model import HeadOutput


def decode_group(output: HeadOutput, batch_index: int, group_index: int, config: DetectorConfig) -> dict[str, np.ndarray]:
    """Peaks of one group's heatmap for one frame of the batch, as box arrays.

    A peak is a cell whose sigmoid score is the maximum of its 3x3 neighbourhood (over its
    class channel); the ``top_k`` best above ``score_threshold`` are decoded.

    Returns:
        ``centers (D, 3)``, ``sizes (D, 3)``, ``yaws (D,)``, ``scores (D,)``, ``labels (D,)``
        (class names) in the ``ego`` frame.
    """
    group = config.groups[group_index]
    heat = torch.sigmoid(output.heatmap[batch_index : batch_index + 1].float())
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    _, k, height, width = peaks.shape
    scores, flat = torch.topk(peaks.reshape(-1), min(config.decode.top_k, peaks.numel()))
    keep = scores >= config.decode.score_threshold
    scores, flat = scores[keep], flat[keep]
    cls = flat // (height * width)
    cell = flat % (height * width)
    iy, ix = cell // width, cell % width
    reg = output.regression[batch_index].float().reshape(8, -1)[:, cell].T.cpu().numpy().astype(np.float64)
    cell_x, cell_y = config.bev_cell_m
    x = (ix.cpu().numpy() + reg[:, 0]) * cell_x + config.grid.point_range_m[0]
    y = (iy.cpu().numpy() + reg[:, 1]) * cell_y + config.grid.point_range_m[1]
    sizes = np.exp(np.clip(reg[:, 3:6], -5.0, 4.0))
    yaws = np.arctan2(reg[:, 6], reg[:, 7])
    return {
        "centers": np.column_stack([x, y, reg[:, 2]]).reshape(-1, 3),
        "sizes": sizes.reshape(-1, 3),
        "yaws": yaws,
        "scores": scores.cpu().numpy().astype(np.float32),
        "labels": np.asarray(group.classes, dtype=str)[cls.cpu().numpy()] if len(cls) else np.zeros(0, dtype="<U10"),
    }


def decode_frame(outputs: list[HeadOutput], batch_index: int, config: DetectorConfig) -> Cuboids:
    """All groups of one frame, class-wise rotated NMS, then the ``max_detections`` best.

    Returns:
        :class:`Cuboids` in ``ego`` with scores and class labels (track ids -1).
    """
    parts = []
    for g, group in enumerate(config.groups):
        part = decode_group(outputs[g], batch_index, g, config)
        threshold = config.decode.nms_iou.get(group.name, 0.1)
        for name in group.classes:
            mask = part["labels"] == name
            if not mask.any():
                continue
            idx = np.flatnonzero(mask)
            bev = np.column_stack([part["centers"][idx, :2], part["sizes"][idx, :2], part["yaws"][idx]])
            kept = idx[rotated_nms(bev, part["scores"][idx], threshold)]
            parts.append({key: value[kept] for key, value in part.items()})
    if not parts:
        return Cuboids.empty("ego")
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    order = np.argsort(-merged["scores"], kind="stable")[: config.decode.max_detections]
    return Cuboids.from_arrays(
        "ego", merged["centers"][order], merged["sizes"][order], merged["yaws"][order], merged["labels"][order], merged["scores"][order]
    )
