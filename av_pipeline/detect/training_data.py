"""Training samples from synthetic drives, generated on the fly, with augmentation.

Sample ``i`` of a training run is a pure function of ``(seed, i)``: it comes from drive
``seed_base + i // frames_used_per_drive`` (LiDAR only, no camera rendering), is augmented
with a generator seeded by ``(seed, i)``, so a resumed run sees exactly the samples an
uninterrupted one would. Training seeds start at :data:`TRAIN_SEED_BASE` and the
ground-truth database's at :data:`GT_DATABASE_SEED_BASE`; evaluation uses seeds below
:data:`TRAIN_SEED_BASE` (see :data:`EVAL_SEEDS`), so no evaluation drive is ever trained on.

Augmentation (applied in this order, to points and boxes alike, in the ``ego`` frame):
ground-truth database paste (objects cut from other drives pasted at their original
ego-frame place when they collide with nothing; the scene's points inside a pasted box are
removed), flip across the x axis, rotation about z and global scaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.geometry import bev_iou, cuboids_to_bev
from av_pipeline.detect.train_config import AugmentConfig, DriveSamplingConfig

#: First seed of training drives (and every later one is a training seed).
TRAIN_SEED_BASE = 100_000
#: First seed of the drives the ground-truth database is cut from.
GT_DATABASE_SEED_BASE = 900_000
#: The synthetic seeds the shipped weights are evaluated on (never trained on).
EVAL_SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True, eq=False)
class TrainingSample:
    """One training sample.

    Attributes:
        points_ego: ``(N, 3)`` float32 ``x, y, z`` in ``ego`` (m).
        boxes: ground truth in ``ego`` (only boxes with enough points).
        index: the sample's index in the run.
    """

    points_ego: np.ndarray
    boxes: Cuboids
    index: int


def drive_sweeps(seed: int, sampling: DriveSamplingConfig) -> Iterator[tuple[np.ndarray, Cuboids]]:
    """``(points_ego (N, 3) float32, ground truth with num_lidar_points)`` of every used frame
    of the synthetic drive ``seed`` (LiDAR only)."""
    from av_pipeline.synthetic import SimulationConfig, SyntheticDrive

    drive = SyntheticDrive(SimulationConfig(frames=sampling.frames_per_drive, seed=seed, cameras=(), log_id=f"train_{seed}"))
    ego_SE3_lidar = drive.rig.lidars[drive.config.lidar.name]
    for index in range(0, sampling.frames_per_drive, sampling.frame_stride):
        sweep = drive.sweep(index)
        points = ego_SE3_lidar.transform_points(sweep.lidar.xyz.astype(np.float64)).astype(np.float32)
        yield points, sweep.annotations


@dataclass(frozen=True, eq=False)
class GroundTruthDatabase:
    """Objects cut out of synthetic sweeps, for pasting.

    Attributes:
        boxes: all objects, in the ``ego`` frame of the sweep they came from.
        points: per object, ``(n, 3)`` float32 points inside it (same frame).
    """

    boxes: Cuboids
    points: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, drives: int, sampling: DriveSamplingConfig, min_points: int, seed_base: int = GT_DATABASE_SEED_BASE) -> GroundTruthDatabase:
        """Cut every object with at least ``min_points`` points out of ``drives`` drives."""
        boxes, points = [], []
        for d in range(drives):
            for cloud, truth in drive_sweeps(seed_base + d, sampling):
                owner = truth.points_in_boxes(cloud)
                for k in np.flatnonzero(np.bincount(owner[owner >= 0], minlength=len(truth)) >= min_points):
                    boxes.append(truth.subset(np.array([k])))
                    points.append(cloud[owner == k])
        if not boxes:
            return cls(Cuboids.empty("ego"), ())
        merged = Cuboids.from_arrays(
            "ego",
            np.concatenate([b.centers_m for b in boxes]),
            np.concatenate([b.sizes_m for b in boxes]),
            np.concatenate([b.yaws_rad for b in boxes]),
            np.concatenate([b.labels for b in boxes]),
        )
        return cls(merged, tuple(points))

    def save(self, path: str) -> None:
        """Write as one ``.npz`` (no pickle)."""
        lengths = np.array([len(p) for p in self.points], np.int64)
        cloud = np.concatenate(self.points) if self.points else np.zeros((0, 3), np.float32)
        np.savez(
            path, centers=self.boxes.centers_m, sizes=self.boxes.sizes_m, yaws=self.boxes.yaws_rad,
            labels=self.boxes.labels.astype("U16"), lengths=lengths, points=cloud,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str) -> GroundTruthDatabase:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            boxes = Cuboids.from_arrays("ego", data["centers"], data["sizes"], data["yaws"], data["labels"].tolist())
            splits = np.cumsum(data["lengths"])[:-1]
            points = tuple(np.split(data["points"], splits)) if len(data["lengths"]) else ()
        return cls(boxes, points)


def paste_objects(
    points: np.ndarray, boxes: Cuboids, database: GroundTruthDatabase, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, Cuboids]:
    """Paste database objects that overlap no box (in BEV) into the scene; remove the scene's
    points inside pasted boxes (grown by 0.1 m)."""
    if len(database.boxes) == 0:
        return points, boxes
    chosen: list[int] = []
    occupied = cuboids_to_bev(boxes)
    for name, count in config.paste_per_class.items():
        candidates = np.flatnonzero(database.boxes.labels == name)
        if count <= 0 or len(candidates) == 0:
            continue
        for k in rng.choice(candidates, size=min(count * 2, len(candidates)), replace=False):
            if sum(database.boxes.labels[i] == name for i in chosen) >= count:
                break
            bev = cuboids_to_bev(database.boxes.subset(np.array([k])))
            # a margin so pasted objects do not touch existing ones
            grown = bev.copy()
            grown[:, 2:4] += 0.4
            if len(occupied) and bev_iou(grown, occupied).max() > 0.0:
                continue
            chosen.append(int(k))
            occupied = np.concatenate([occupied, bev])
    if not chosen:
        return points, boxes
    pasted = database.boxes.subset(np.array(chosen))
    inside = pasted.points_in_boxes(points, margin_m=0.1) >= 0
    new_points = np.concatenate([points[~inside]] + [database.points[k] for k in chosen]).astype(np.float32)
    merged = Cuboids.from_arrays(
        "ego",
        np.concatenate([boxes.centers_m, pasted.centers_m]),
        np.concatenate([boxes.sizes_m, pasted.sizes_m]),
        np.concatenate([boxes.yaws_rad, pasted.yaws_rad]),
        np.concatenate([boxes.labels, pasted.labels]),
    )
    return new_points, merged


def global_transform(points: np.ndarray, boxes: Cuboids, config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, Cuboids]:
    """Flip across x, rotate about z and scale, points and boxes together."""
    xyz = points.astype(np.float64)
    centers = boxes.centers_m.copy()
    yaws = boxes.yaws_rad.copy()
    sizes = boxes.sizes_m.copy()
    if rng.random() < config.flip_probability:
        xyz[:, 1] *= -1
        centers[:, 1] *= -1
        yaws = -yaws
    angle = rng.uniform(-config.rotation_rad, config.rotation_rad)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    xyz[:, :2] = xyz[:, :2] @ rot.T
    centers[:, :2] = centers[:, :2] @ rot.T
    yaws = yaws + angle
    scale = rng.uniform(*config.scale_range)
    xyz *= scale
    centers *= scale
    sizes *= scale
    yaws = np.arctan2(np.sin(yaws), np.cos(yaws))
    out = Cuboids.from_arrays("ego", centers, sizes, yaws, boxes.labels)
    return xyz.astype(np.float32), out


class SyntheticSampleStream:
    """Training samples ``start, start + 1, ...`` of a run (see the module docstring).

    Args:
        seed: the run's seed.
        sampling, augment: how drives are sampled and augmented.
        database: objects to paste (``None``: no paste).
        classes: classes trained on (others are dropped from the boxes).
    """

    def __init__(
        self,
        seed: int,
        sampling: DriveSamplingConfig,
        augment: AugmentConfig,
        database: GroundTruthDatabase | None,
        classes: tuple[str, ...],
    ) -> None:
        self.seed = seed
        self.sampling = sampling
        self.augment = augment
        self.database = database
        self.classes = classes
        self._drive_seed: int | None = None
        self._drive_samples: list[tuple[np.ndarray, Cuboids]] = []

    def _raw(self, index: int) -> tuple[np.ndarray, Cuboids]:
        per_drive = self.sampling.samples_per_drive
        drive_seed = TRAIN_SEED_BASE + self.seed * 10_000 + index // per_drive
        if drive_seed != self._drive_seed:
            self._drive_samples = list(drive_sweeps(drive_seed, self.sampling))
            self._drive_seed = drive_seed
        # the drive's frames in a shuffled order, fixed by the drive
        order = np.random.default_rng([self.seed, drive_seed]).permutation(per_drive)
        return self._drive_samples[order[index % per_drive]]

    def sample(self, index: int) -> TrainingSample:
        """Sample ``index`` of the run."""
        points, truth = self._raw(index)
        counts = truth.num_lidar_points if truth.num_lidar_points is not None else truth.count_points(points)
        truth = truth.subset((counts >= self.sampling.min_points) & np.isin(truth.labels, self.classes))
        truth = Cuboids.from_arrays("ego", truth.centers_m, truth.sizes_m, truth.yaws_rad, truth.labels)
        rng = np.random.default_rng([self.seed, index, 7])
        if self.database is not None:
            points, truth = paste_objects(points, truth, self.database, self.augment, rng)
        points, truth = global_transform(points, truth, self.augment, rng)
        return TrainingSample(points, truth, index)

    def __iter__(self) -> Iterator[TrainingSample]:  # pragma: no cover - convenience
        index = 0
        while True:
            yield self.sample(index)
            index += 1
