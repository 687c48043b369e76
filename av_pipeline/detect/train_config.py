"""Configuration of a training run (no torch here, so ``avp --help`` stays instant)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from av_pipeline.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training samples.

    Attributes:
        paste_per_class: objects pasted per sample, by class.
        paste_min_points: database objects need at least this many LiDAR points.
        flip_probability: chance of mirroring across the x axis (y -> -y).
        rotation_rad: global rotation drawn from ``[-r, r]``.
        scale_range: global scaling drawn from ``[lo, hi]``.
    """

    paste_per_class: Mapping[str, int] = field(
        default_factory=lambda: {"car": 2, "van": 3, "truck": 3, "pedestrian": 6, "cyclist": 6}
    )
    paste_min_points: int = 8
    flip_probability: float = 0.5
    rotation_rad: float = np.pi / 4
    scale_range: tuple[float, float] = (0.95, 1.05)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paste_per_class", dict(self.paste_per_class))


@dataclass(frozen=True)
class DriveSamplingConfig:
    """How training drives are generated and sampled.

    Attributes:
        frames_per_drive: frames simulated per drive.
        frame_stride: every ``frame_stride``-th frame is used (neighbouring sweeps are alike).
        min_points: ground-truth boxes with fewer LiDAR points are not trained on.
    """

    frames_per_drive: int = 40
    frame_stride: int = 2
    min_points: int = 1

    @property
    def samples_per_drive(self) -> int:
        """Samples taken from one drive."""
        return (self.frames_per_drive + self.frame_stride - 1) // self.frame_stride


@dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
        model: detector preset name (:data:`~av_pipeline.detect.config.PRESETS`).
        steps: optimiser steps.
        batch_size: frames per step.
        max_lr: peak learning rate of the one-cycle schedule (AdamW).
        warmup_fraction: share of the steps spent warming up (cosine) to ``max_lr``.
        weight_decay: AdamW weight decay.
        regression_weight: weight of the L1 box loss against the focal heatmap loss.
        grad_clip: gradient norm clip.
        seed: seeds the model's initialisation and every sample.
        database_drives: drives cut into the ground-truth database.
        checkpoint_every, log_every: in steps.
        workers: data-generation worker processes (0: generate in the training process).
        sampling, augment: see :mod:`av_pipeline.detect.training_data`.
    """

    model: str = "cpu_small"
    steps: int = 6000
    batch_size: int = 2
    max_lr: float = 3e-3
    warmup_fraction: float = 0.3
    weight_decay: float = 0.01
    regression_weight: float = 0.5
    grad_clip: float = 35.0
    seed: int = 0
    database_drives: int = 6
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 1
    sampling: DriveSamplingConfig = field(default_factory=DriveSamplingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0 < self.max_lr < 1:
            raise ConfigError(f"max_lr: expected a value in (0, 1), got {self.max_lr}")
        from av_pipeline.detect.config import preset  # imports numba: not at module level (CLI help)

        preset(self.model)

    def to_dict(self) -> dict:
        """JSON-safe description."""
        return json.loads(json.dumps(asdict(self)))


def learning_rate(step: int, config: TrainConfig) -> float:
    """One-cycle schedule: cosine warm-up from ``max_lr / 10`` to ``max_lr``, then cosine
    decay to ``max_lr / 1000`` at the last step."""
    warm = max(1, int(config.steps * config.warmup_fraction))
    if step < warm:
        t = step / warm
        return config.max_lr * (0.1 + 0.9 * (1 - math.cos(math.pi * t)) / 2)
    t = (step - warm) / max(1, config.steps - warm)
    return config.max_lr * (1e-3 + (1 - 1e-3) * (1 + math.cos(math.pi * min(t, 1.0))) / 2)
