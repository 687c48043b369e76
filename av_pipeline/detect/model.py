"""The network: mean-of-points voxels -> sparse 3D backbone -> BEV map -> 2D backbone -> heads.

Tensor names carry their layout: ``voxel_features (M, C)``, ``coords_bzyx (M, 4)`` int32
``[batch, z, y, x]``, ``bev (B, C, H, W)`` with H along y and W along x of the grid,
``heatmap (B, K, H, W)`` logits for the K classes of one group,
``regression (B, 8, H, W)``: ``dx, dy`` (centre offset in cells), ``z`` (m), ``log l, log w,
log h`` (m), ``sin yaw, cos yaw``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import spconv.pytorch as spconv
import torch
from torch import nn

from av_pipeline.detect.config import DetectorConfig
from av_pipeline.detect.sparse_cpu import run_sparse_sequential, to_bev, voxel_order
from av_pipeline.detect.spconv_compat import ensure_cpu_backward

# spconv 2.3.8 indexes with a list in SparseConvTensor.dense(); torch warns on every call.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing", module=r"spconv\.pytorch\.core")

#: Channels of the regression map, in order.
REGRESSION_CHANNELS = ("dx", "dy", "z", "log_l", "log_w", "log_h", "sin_yaw", "cos_yaw")
#: Bias of the heatmap logits at initialisation: sigmoid(-2.19) = 0.1 (CenterNet's prior).
HEATMAP_PRIOR_BIAS = -2.19


def _bn1d(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)


def _subm(cin: int, cout: int, key: str) -> spconv.SparseSequential:
    return spconv.SparseSequential(spconv.SubMConv3d(cin, cout, 3, padding=1, bias=False, indice_key=key), _bn1d(cout), nn.ReLU())


def _down(cin: int, cout: int, key: str) -> spconv.SparseSequential:
    return spconv.SparseSequential(
        spconv.SparseConv3d(cin, cout, 3, stride=2, padding=1, bias=False, indice_key=key), _bn1d(cout), nn.ReLU()
    )


class SparseBackbone(nn.Module):
    """Submanifold and strided sparse convolutions over the voxel grid.

    Input ``voxel_features (M, C)`` and ``coords_bzyx (M, 4)``; output a dense
    ``(B, out_channels * Z, H, W)`` BEV map (height compression: z folded into channels).
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        cfg = config.sparse
        self.spatial_shape_zyx = list(config.grid.grid_size_zyx)
        cin = len(config.point_features)
        levels = []
        for level, (width, subms) in enumerate(zip(cfg.widths, cfg.subm_per_level)):
            layers = [_subm(cin, width, "subm0")] if level == 0 else [_down(cin, width, f"down{level}")]
            layers += [_subm(width, width, f"subm{level}") for _ in range(subms)]
            levels.append(spconv.SparseSequential(*layers))
            cin = width
        self.levels = nn.ModuleList(levels)
        self.out = spconv.SparseSequential(
            spconv.SparseConv3d(cin, cfg.out_channels, (3, 1, 1), stride=(2, 1, 1), padding=0, bias=False, indice_key="out"),
            _bn1d(cfg.out_channels),
            nn.ReLU(),
        )

    def forward(self, voxel_features: torch.Tensor, coords_bzyx: torch.Tensor, batch_size: int) -> torch.Tensor:
        x = spconv.SparseConvTensor(voxel_features, coords_bzyx.int(), self.spatial_shape_zyx, batch_size)
        for level in self.levels:
            x = level(x)
        dense = self.out(x).dense()  # (B, C, Z, H, W)
        b, c, z, h, w = dense.shape
        return dense.reshape(b, c * z, h, w)

    def forward_cpu(self, voxel_features: torch.Tensor, coords_bzyx: np.ndarray, batch_size: int) -> torch.Tensor:
        """:meth:`forward` for CPU inference without spconv's racing CPU kernels.

        Same weights and arithmetic (:mod:`av_pipeline.detect.sparse_cpu`), reproducible with
        any number of torch threads; ``coords_bzyx`` is a numpy ``(M, 4)`` int32 array. The BEV
        map comes back channels-last.
        """
        cache: dict = {}
        order = voxel_order(coords_bzyx, self.spatial_shape_zyx)  # neighbours close in memory
        features, coords, shape = voxel_features[torch.from_numpy(order)], coords_bzyx[order], self.spatial_shape_zyx
        for level in self.levels:
            features, coords, shape = run_sparse_sequential(list(level), features, coords, shape, cache)
        features, coords, shape = run_sparse_sequential([self.out], features, coords, shape, cache)
        return to_bev(features, coords, shape, batch_size)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU())


class BevBackbone(nn.Module):
    """Two blocks (full and half resolution), the second upsampled and concatenated.

    ``bev (B, Cin, H, W)`` -> ``(B, c0 + c0, H, W)``.
    """

    def __init__(self, in_channels: int, config: DetectorConfig) -> None:
        super().__init__()
        (c0, c1), (n0, n1) = config.bev.channels, config.bev.layers
        self.block0 = nn.Sequential(_conv_bn(in_channels, c0), *[_conv_bn(c0, c0) for _ in range(n0 - 1)])
        self.block1 = nn.Sequential(_conv_bn(c0, c1, stride=2), *[_conv_bn(c1, c1) for _ in range(n1 - 1)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(c1, c0, 2, stride=2, bias=False), nn.BatchNorm2d(c0, eps=1e-3, momentum=0.01), nn.ReLU())
        self.out_channels = 2 * c0

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        x0 = self.block0(bev)
        x1 = self.up1(self.block1(x0))
        if x1.shape[-2:] != x0.shape[-2:]:  # odd sizes: the transposed conv overshoots by one cell
            x1 = x1[..., : x0.shape[-2], : x0.shape[-1]]
        return torch.cat([x0, x1], dim=1)


class CenterHead(nn.Module):
    """One class group: a shared 3x3 conv, then heatmap logits ``(B, K, H, W)`` and regression ``(B, 8, H, W)``."""

    def __init__(self, in_channels: int, num_classes: int, channels: int) -> None:
        super().__init__()
        self.shared = _conv_bn(in_channels, channels)
        self.heatmap = nn.Sequential(_conv_bn(channels, channels), nn.Conv2d(channels, num_classes, 1))
        self.regression = nn.Sequential(_conv_bn(channels, channels), nn.Conv2d(channels, len(REGRESSION_CHANNELS), 1))
        nn.init.constant_(self.heatmap[-1].bias, HEATMAP_PRIOR_BIAS)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.shared(features)
        return self.heatmap(x), self.regression(x)


@dataclass
class HeadOutput:
    """Raw outputs of one class group.

    Attributes:
        heatmap: ``(B, K, H, W)`` logits.
        regression: ``(B, 8, H, W)`` as :data:`REGRESSION_CHANNELS`.
    """

    heatmap: torch.Tensor
    regression: torch.Tensor


class CenterPointNet(nn.Module):
    """The whole network for one :class:`DetectorConfig`."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        ensure_cpu_backward()
        self.config = config
        self.sparse = SparseBackbone(config)
        z_out = config.bev_shape_zyx[0]
        self.bev = BevBackbone(config.sparse.out_channels * z_out, config)
        self.heads = nn.ModuleList(CenterHead(self.bev.out_channels, len(g.classes), config.head.channels) for g in config.groups)

    def forward(self, voxel_features: torch.Tensor, coords_bzyx: torch.Tensor, batch_size: int) -> list[HeadOutput]:
        """``voxel_features (M, C)``, ``coords_bzyx (M, 4)`` -> one :class:`HeadOutput` per group."""
        bev = self.bev(self.sparse(voxel_features, coords_bzyx, batch_size))
        return [HeadOutput(*head(bev)) for head in self.heads]
