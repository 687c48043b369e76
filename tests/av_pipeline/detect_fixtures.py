"""A tiny detector (random weights, small grid) for tests that need a model but not a trained one."""

from __future__ import annotations

from pathlib import Path

from av_pipeline.detect.config import BevBackboneConfig, DetectorConfig, HeadConfig, SparseBackboneConfig
from av_pipeline.voxelize import VoxelGridConfig

TINY = DetectorConfig(
    name="tiny",
    grid=VoxelGridConfig((0.4, 0.4, 0.5), (-25.6, -25.6, -2.0, 25.6, 25.6, 4.0), 5, 20000),
    sparse=SparseBackboneConfig(widths=(8, 16, 16), subm_per_level=(1, 1, 1), out_channels=16),
    bev=BevBackboneConfig(channels=(16, 16), layers=(1, 1)),
    head=HeadConfig(channels=16),
)


def write_tiny_weights(folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model as shipped weights; returns the ``.pt`` path."""
    import torch

    from av_pipeline.detect.checkpoint import save_shipped
    from av_pipeline.detect.model import CenterPointNet

    torch.manual_seed(seed)
    model = CenterPointNet(TINY)
    # a heatmap prior high enough that random weights produce boxes to decode
    for head in model.heads:
        torch.nn.init.constant_(head.heatmap[-1].bias, 0.0)
    path = folder / "tiny.pt"
    save_shipped(model, TINY, path, {"note": "random weights for tests"})
    return path
