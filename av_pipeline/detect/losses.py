"""Losses of the CenterPoint heads: focal loss on heatmaps, L1 on box regression."""

from __future__ import annotations

import torch

from av_pipeline.detect.model import HeadOutput


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of centres.

    Args:
        logits: ``(B, K, H, W)`` heatmap logits.
        target: ``(B, K, H, W)`` Gaussian targets in ``[0, 1]``, exactly 1 at centres.
    """
    prob = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    negative_weight = torch.pow(1 - target, beta)
    pos_loss = torch.log(prob) * torch.pow(1 - prob, alpha) * positive
    neg_loss = torch.log(1 - prob) * torch.pow(prob, alpha) * negative_weight * (1 - positive)
    num_pos = positive.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def regression_l1_loss(regression: torch.Tensor, batch_index: torch.Tensor, cell_index: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 (summed over the 8 channels) at the object cells.

    Args:
        regression: ``(B, 8, H, W)`` predictions.
        batch_index: ``(O,)`` int64 frame of each object in the batch.
        cell_index: ``(O,)`` int64 flat cell ``iy * W + ix``.
        target: ``(O, 8)`` targets.
    """
    if target.shape[0] == 0:
        return regression.sum() * 0.0
    b, c, h, w = regression.shape
    pred = regression.reshape(b, c, h * w)[batch_index, :, cell_index]  # (O, 8)
    return torch.abs(pred - target).sum(dim=1).mean()


def detection_loss(
    outputs: list[HeadOutput],
    heatmaps: list[torch.Tensor],
    objects: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    regression_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over groups of ``focal + regression_weight * L1``.

    Args:
        outputs: per group, the network's output.
        heatmaps: per group, ``(B, K, H, W)`` targets.
        objects: per group, ``(batch_index (O,), cell_index (O,), regression target (O, 8))``.

    Returns:
        ``(total loss, {"heatmap": ..., "regression": ...})`` (the parts as floats, for logs).
    """
    total_hm = outputs[0].heatmap.new_zeros(())
    total_reg = outputs[0].heatmap.new_zeros(())
    for output, heatmap, (batch_index, cell_index, target) in zip(outputs, heatmaps, objects):
        total_hm = total_hm + focal_heatmap_loss(output.heatmap, heatmap)
        total_reg = total_reg + regression_l1_loss(output.regression, batch_index, cell_index, target)
    total = total_hm + regression_weight * total_reg
    return total, {"heatmap": float(total_hm.detach()), "regression": float(total_reg.detach())}
