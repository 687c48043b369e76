"""Inference: frames in, scored cuboids in the ``ego`` frame out.

>>> from av_pipeline.detect import Detector          # doctest: +SKIP
>>> detector = Detector.from_pretrained()            # the shipped weights, CPU or CUDA  # doctest: +SKIP
>>> boxes = detector.detect(frame)                   # Cuboids in ego, scores, labels     # doctest: +SKIP
>>> boxes_per_frame = detector.detect_batch(frames)  # one forward pass over the batch    # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from av_pipeline.boxes import Cuboids
from av_pipeline.detect.checkpoint import (
    DEFAULT_WEIGHTS,
    SHIPPED_DIR,
    check_state_dict,
    load_shipped,
)
from av_pipeline.detect.config import DetectorConfig
from av_pipeline.detect.decode import decode_frame
from av_pipeline.detect.model import CenterPointNet, HeadOutput
from av_pipeline.detect.points import frame_points_ego
from av_pipeline.detect.targets import VoxelInput, voxel_input
from av_pipeline.errors import ShapeError
from av_pipeline.records import Frame


@dataclass
class DetectionStats:
    """Counters of a :class:`Detector` (they only grow).

    Attributes:
        frames: frames detected on.
        empty_frames: frames with no usable point (empty sweep, all points non-finite or
            out of range): empty predictions, no forward pass.
        input_points: points given.
        nonfinite_points: points with NaN or inf, dropped.
        out_of_range_points: finite points outside the grid, dropped.
        boxes: boxes returned.
        last_timings_ms: wall time of the last call by part: ``voxelize``, ``backbone``
            (sparse 3D + BEV 2D), ``head``, ``decode`` (top-k, decoding and NMS).
    """

    frames: int = 0
    empty_frames: int = 0
    input_points: int = 0
    nonfinite_points: int = 0
    out_of_range_points: int = 0
    boxes: int = 0
    last_timings_ms: dict[str, float] = field(default_factory=dict)


class Detector:
    """The pre-label detector: a :class:`CenterPointNet` with its config, on a device.

    Attributes:
        config: the detector configuration.
        device: the torch device it runs on.
        source: where the weights came from (file path).
        metadata: the weights' description (training run, metrics) when shipped.
        stats: :class:`DetectionStats`.
        ground_z_m: height of the ground in the logs' ``ego`` frame. The detector is trained
            with the ego origin on the ground (synthetic logs, nuScenes, Argoverse 2, PandaSet);
            for logs whose ``ego`` is the LiDAR (KITTI: ``-1.73``), points are lifted by
            ``-ground_z_m`` before detection and boxes are put back.
    """

    def __init__(
        self,
        model: CenterPointNet,
        config: DetectorConfig,
        device: str | torch.device,
        source: str = "",
        metadata: dict | None = None,
        ground_z_m: float = 0.0,
    ) -> None:
        self.ground_z_m = float(ground_z_m)
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":  # the 2D convolutions run about 1.3x faster channels-last on CPU (benchmarks/detect.py)
            self.model.bev.to(memory_format=torch.channels_last)
            self.model.heads.to(memory_format=torch.channels_last)
        self.source = source
        self.metadata = metadata or {}
        self.stats = DetectionStats()

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _default_device(device: str | None) -> str:
        if device is not None:
            return device
        return "cuda" if torch.cuda.is_available() else "cpu"

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | None = None, ground_z_m: float = 0.0) -> Detector:
        """Load shipped weights.

        Args:
            weights: a name of weights shipped with the package (default
                :data:`~av_pipeline.detect.checkpoint.DEFAULT_WEIGHTS`) or the path of a
                ``.pt`` file with its ``.json`` description beside it.
            device: ``"cpu"``, ``"cuda"`` ...; default CUDA when torch sees a GPU.
            ground_z_m: see the class attributes.

        Raises:
            CheckpointError: missing, corrupt, foreign or mismatched weights (names the file).
        """
        name = weights or DEFAULT_WEIGHTS
        path = Path(name)
        if path.suffix != ".pt":
            path = SHIPPED_DIR / f"{name}.pt"
        config, state, meta = load_shipped(path)
        model = CenterPointNet(config)
        model.load_state_dict(check_state_dict(path, state, model.state_dict()))
        return cls(model, config, cls._default_device(device), str(path), meta, ground_z_m)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None, ground_z_m: float = 0.0) -> Detector:
        """Load a training checkpoint (``checkpoint.pt`` of ``avp train``).

        Raises:
            CheckpointError: the file is not a readable training checkpoint for its config.
        """
        from av_pipeline.detect.export import model_from_checkpoint

        config, model, _ = model_from_checkpoint(path)
        return cls(model, config, cls._default_device(device), str(path), None, ground_z_m)

    # ------------------------------------------------------------------ inference
    @property
    def classes(self) -> tuple[str, ...]:
        """The class names the detector outputs."""
        return self.config.classes

    def detect(self, frame: Frame) -> Cuboids:
        """Cuboids in ``ego`` (scores, class labels, track ids -1) for one frame's LiDAR."""
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[Frame]) -> list[Cuboids]:
        """One forward pass over several frames; one :class:`Cuboids` per frame, in order."""
        return self.detect_points_batch([frame_points_ego(f, self.config.point_features) for f in frames])

    def detect_points(self, points_ego: np.ndarray) -> Cuboids:
        """Detect on ``(N, C)`` float32 points already in ``ego`` (the config's ``point_features``)."""
        return self.detect_points_batch([points_ego])[0]

    def detect_points_batch(self, clouds: Sequence[np.ndarray]) -> list[Cuboids]:
        """:meth:`detect_points` over several clouds in one forward pass.

        Empty clouds, and clouds whose points are all non-finite or outside the grid, get
        empty predictions and count in ``stats.empty_frames``.

        Raises:
            ShapeError: a cloud is not ``(N, C)`` float with ``C = len(point_features)``.
        """
        width = len(self.config.point_features)
        t0 = time.perf_counter()
        inputs: list[VoxelInput] = []
        for i, cloud in enumerate(clouds):
            arr = np.asarray(cloud)
            if arr.ndim != 2 or arr.shape[1] != width or not np.issubdtype(arr.dtype, np.floating):
                raise ShapeError(f"clouds[{i}]: expected ({'N'}, {width}) float points {self.config.point_features}, got {arr.shape} {arr.dtype}")
            arr = arr.astype(np.float32, copy=self.ground_z_m != 0.0)
            if self.ground_z_m:
                arr[:, 2] -= np.float32(self.ground_z_m)
            vox = voxel_input(arr, self.config)
            inputs.append(vox)
        t1 = time.perf_counter()
        results: list[Cuboids] = [Cuboids.empty("ego")] * len(clouds)
        busy = [i for i, v in enumerate(inputs) if len(v.features)]
        timings = {"voxelize": (t1 - t0) * 1e3, "backbone": 0.0, "head": 0.0, "decode": 0.0}
        if busy:
            features = torch.from_numpy(np.concatenate([inputs[i].features for i in busy])).to(self.device)
            coords = np.concatenate(
                [np.column_stack([np.full(len(inputs[i].coords_zyx), b, np.int32), inputs[i].coords_zyx]) for b, i in enumerate(busy)]
            )
            with torch.inference_mode():
                if self.device.type == "cpu":  # spconv's CPU kernels race with several torch threads (see sparse_cpu)
                    sparse = self.model.sparse.forward_cpu(features, coords, len(busy))
                else:
                    sparse = self.model.sparse(features, torch.from_numpy(coords).to(self.device), len(busy))
                bev = self.model.bev(sparse)
                _sync(self.device)
                t2 = time.perf_counter()
                outputs = [HeadOutput(*head(bev)) for head in self.model.heads]
                _sync(self.device)
                t3 = time.perf_counter()
                for b, i in enumerate(busy):
                    results[i] = decode_frame(outputs, b, self.config)
                t4 = time.perf_counter()
            timings.update(backbone=(t2 - t1) * 1e3, head=(t3 - t2) * 1e3, decode=(t4 - t3) * 1e3)
        if self.ground_z_m:
            results = [_lowered(b, self.ground_z_m) for b in results]
        self._count(clouds, inputs, results, timings)
        return results

    def _count(self, clouds: Sequence[np.ndarray], inputs: list[VoxelInput], results: list[Cuboids], timings: dict[str, float]) -> None:
        stats = self.stats
        for cloud, vox, boxes in zip(clouds, inputs, results):
            stats.frames += 1
            stats.empty_frames += int(len(vox.features) == 0)
            stats.input_points += int(len(cloud))
            stats.boxes += len(boxes)
            stats.nonfinite_points += vox.num_nonfinite
            stats.out_of_range_points += vox.num_out_of_range
        stats.last_timings_ms = timings


def _lowered(boxes: Cuboids, ground_z_m: float) -> Cuboids:
    from dataclasses import replace

    centers = boxes.centers_m.copy()
    centers[:, 2] += ground_z_m
    return replace(boxes, centers_m=centers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
