"""Typed configuration of the pre-label detector: classes, voxel grid, networks, decoding.

Everything is a frozen dataclass with a named preset (:data:`PRESETS`); a checkpoint stores
its config as JSON (:meth:`DetectorConfig.to_dict`) and is only loaded into a model built
from an equal config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from av_pipeline.errors import ConfigError
from av_pipeline.voxelize.config import VoxelGridConfig

#: The detector's classes, in output order (the synthetic logs' labels).
DETECTOR_CLASSES: tuple[str, ...] = ("car", "van", "truck", "pedestrian", "cyclist")


@dataclass(frozen=True)
class ClassGroup:
    """Classes that share one heatmap head (their sizes and shapes are alike).

    Attributes:
        name: group name (``"vehicle"``, ``"vru"``).
        classes: class names of this group, each one channel of the group's heatmap.
    """

    name: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class SparseBackboneConfig:
    """The sparse 3D backbone (the SECOND / CenterPoint ``VoxelBackBone8x`` pattern).

    Attributes:
        widths: channels per level; level 0 runs at the voxel resolution, each later level
            starts with a strided sparse convolution (stride 2 in x, y, z).
        subm_per_level: submanifold convolutions after each level's first layer.
        out_channels: channels of the last sparse convolution, which only shrinks z
            (kernel ``(3, 1, 1)``, stride ``(2, 1, 1)``) before height compression.
    """

    widths: tuple[int, ...] = (16, 32, 64)
    subm_per_level: tuple[int, ...] = (1, 1, 2)
    out_channels: int = 64


@dataclass(frozen=True)
class BevBackboneConfig:
    """The 2D backbone over the height-compressed BEV map.

    Attributes:
        channels: ``(c0, c1)``: width of the full-resolution block and of the half-resolution block.
        layers: ``(n0, n1)`` 3x3 convolutions per block (the first of block 1 has stride 2).
    """

    channels: tuple[int, int] = (48, 96)
    layers: tuple[int, int] = (2, 3)


@dataclass(frozen=True)
class HeadConfig:
    """CenterPoint-style heads, one per :class:`ClassGroup`.

    Attributes:
        channels: width of each head's shared 3x3 convolution.
        min_radius_cells: smallest Gaussian radius of a heatmap target, in BEV cells.
        min_overlap: CenterNet's overlap for the Gaussian radius of a box.
        max_objects: targets kept per frame (nearest first).
    """

    channels: int = 48
    min_radius_cells: int = 2
    min_overlap: float = 0.1
    max_objects: int = 256


@dataclass(frozen=True)
class DecodeConfig:
    """Turning heatmaps into boxes.

    Attributes:
        top_k: peaks taken per head before thresholding.
        score_threshold: detections below are dropped.
        nms_iou: rotated BEV IoU above which the lower-scored box of one class is suppressed,
            per group (``vehicle``, ``vru``).
        max_detections: kept per frame after NMS (highest scores).
    """

    top_k: int = 300
    score_threshold: float = 0.1
    nms_iou: Mapping[str, float] = field(default_factory=lambda: {"vehicle": 0.2, "vru": 0.1})
    max_detections: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(self, "nms_iou", dict(self.nms_iou))


@dataclass(frozen=True)
class DetectorConfig:
    """The whole detector.

    Attributes:
        name: preset name (kept with the weights).
        grid: the voxel grid in the ``ego`` frame (x forward, y left, z up, metres); its
            ``max_num_points_per_voxel`` and ``max_num_voxels`` are the hard-voxelization caps.
        point_features: LiDAR columns averaged per voxel (mean-of-points VFE), starting with
            ``x, y, z``; a missing column is an error at detection time.
        groups: class groups, one head each; their classes together are the detector's classes.
        sparse, bev, head, decode: the parts.
    """

    name: str
    grid: VoxelGridConfig
    point_features: tuple[str, ...] = ("x", "y", "z")
    groups: tuple[ClassGroup, ...] = (
        ClassGroup("vehicle", ("car", "van", "truck")),
        ClassGroup("vru", ("pedestrian", "cyclist")),
    )
    sparse: SparseBackboneConfig = field(default_factory=SparseBackboneConfig)
    bev: BevBackboneConfig = field(default_factory=BevBackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        if tuple(self.point_features[:3]) != ("x", "y", "z"):
            raise ConfigError(f"point_features: expected to start with ('x', 'y', 'z'), got {self.point_features}")
        names = self.classes
        if len(set(names)) != len(names):
            raise ConfigError(f"groups: a class appears in two groups: {names}")
        if len(self.sparse.widths) != len(self.sparse.subm_per_level):
            raise ConfigError(
                f"sparse: widths {self.sparse.widths} and subm_per_level {self.sparse.subm_per_level} differ in length"
            )
        stride = self.bev_stride
        nz, ny, nx = self.grid.grid_size_zyx
        if nx % stride or ny % stride:
            raise ConfigError(f"grid: {nx} x {ny} voxels (x, y) is not divisible by the BEV stride {stride}")
        if self.bev_shape_zyx[0] < 1:
            raise ConfigError(f"grid: {nz} voxels in z is too few for {len(self.sparse.widths)} strided levels")

    @property
    def classes(self) -> tuple[str, ...]:
        """All classes, group by group (the order of labels in predictions)."""
        return tuple(c for g in self.groups for c in g.classes)

    @property
    def bev_stride(self) -> int:
        """Voxels per BEV cell along x and y (``2 ** (levels - 1)``)."""
        return 2 ** (len(self.sparse.widths) - 1)

    @property
    def bev_cell_m(self) -> tuple[float, float]:
        """``(x, y)`` size of a BEV cell in metres."""
        return (self.grid.voxel_size_m[0] * self.bev_stride, self.grid.voxel_size_m[1] * self.bev_stride)

    @property
    def bev_shape_zyx(self) -> tuple[int, int, int]:
        """``(Z, H, W)``: sparse output size; BEV channels are ``out_channels * Z``.

        Each strided level maps ``n`` cells to ``(n + 1) // 2`` (kernel 3, stride 2, padding 1);
        the last convolution maps ``z`` to ``(z - 3) // 2 + 1``.
        """
        nz, ny, nx = self.grid.grid_size_zyx
        for _ in self.sparse.widths[1:]:
            nz, ny, nx = (nz + 1) // 2, (ny + 1) // 2, (nx + 1) // 2
        return ((nz - 3) // 2 + 1, ny, nx)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (stored next to the weights)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: a key is missing or unknown, or a value is invalid.
        """
        try:
            grid = data["grid"]
            return cls(
                name=str(data["name"]),
                grid=VoxelGridConfig(
                    tuple(grid["voxel_size_m"]),
                    tuple(grid["point_range_m"]),
                    int(grid["max_num_points_per_voxel"]),
                    int(grid["max_num_voxels"]),
                ),
                point_features=tuple(data["point_features"]),
                groups=tuple(ClassGroup(str(g["name"]), tuple(g["classes"])) for g in data["groups"]),
                sparse=SparseBackboneConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["sparse"].items()}),
                bev=BevBackboneConfig(**{k: tuple(v) for k, v in data["bev"].items()}),
                head=HeadConfig(**data["head"]),
                decode=DecodeConfig(**data["decode"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"detector config: cannot rebuild from the stored description ({type(exc).__name__}: {exc})") from exc


#: The ego-frame grid of the synthetic preset: 360 degrees to 70.4 m, 0.2 x 0.2 x 0.25 m voxels.
SYNTHETIC_GRID = VoxelGridConfig((0.2, 0.2, 0.25), (-70.4, -70.4, -2.0, 70.4, 70.4, 4.0), 5, 120000)

#: CenterPoint-style detector for 360-degree sweeps in the ``ego`` frame, sized for 2 CPU cores.
CPU_SMALL = DetectorConfig(name="cpu_small", grid=SYNTHETIC_GRID)

#: The presets by name.
PRESETS: dict[str, DetectorConfig] = {"cpu_small": CPU_SMALL}


def preset(name: str) -> DetectorConfig:
    """The preset called ``name``.

    Raises:
        ConfigError: unknown name (the message lists the presets).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"detector preset {name!r}: expected one of {sorted(PRESETS)}") from None
