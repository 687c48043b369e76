"""Training on synthetic drives generated on the fly: resumable, seeded, with a loss curve.

``avp train --out DIR`` runs :func:`train`. ``DIR`` receives ``checkpoint.pt`` (every
``checkpoint_every`` steps and at the end; a re-run with ``--resume`` continues from it),
``loss.csv`` (one row per ``log_every`` steps), ``loss.png``, ``gt_database.npz`` (built once)
and ``train_config.json``. Samples are a pure function of ``(seed, index)``
(:mod:`av_pipeline.detect.training_data`), so a resumed run trains on the same samples as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from av_pipeline.detect.checkpoint import CheckpointError, load_training_checkpoint, save_training_checkpoint
from av_pipeline.detect.config import DetectorConfig, preset
from av_pipeline.detect.losses import detection_loss
from av_pipeline.detect.model import CenterPointNet
from av_pipeline.detect.targets import build_targets, voxel_input
from av_pipeline.detect.train_config import TrainConfig, learning_rate
from av_pipeline.detect.training_data import GroundTruthDatabase, SyntheticSampleStream, TrainingSample
from av_pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PreparedSample:
    """A sample ready for the network (numpy): voxel input and per-group targets."""

    features: np.ndarray
    coords_zyx: np.ndarray
    heatmaps: list[np.ndarray]
    indices: list[np.ndarray]
    regression: list[np.ndarray]
    num_boxes: int


def prepare(sample: TrainingSample, config: DetectorConfig) -> PreparedSample:
    """Voxelize a sample and build its targets."""
    voxels = voxel_input(sample.points_ego, config)
    targets = build_targets(sample.boxes, config)
    return PreparedSample(
        voxels.features, voxels.coords_zyx, [t.heatmap for t in targets], [t.indices for t in targets],
        [t.regression for t in targets], len(sample.boxes),
    )  # fmt: skip


class _Samples(torch.utils.data.Dataset):
    """Indices ``start .. stop`` of a run's sample stream, prepared (runs in a worker process)."""

    def __init__(self, stream: SyntheticSampleStream, detector: DetectorConfig, start: int, stop: int) -> None:
        self.stream, self.detector, self.start, self.stop = stream, detector, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> PreparedSample:
        return prepare(self.stream.sample(self.start + i), self.detector)


def collate(samples: list[PreparedSample]) -> dict:
    """Stack prepared samples into tensors: ``features (M, C)``, ``coords_bzyx (M, 4)``,
    per group ``heatmap (B, K, H, W)`` and ``(batch_index, cell_index, regression)``."""
    coords = [np.column_stack([np.full(len(s.coords_zyx), b, np.int32), s.coords_zyx]) for b, s in enumerate(samples)]
    groups = len(samples[0].heatmaps)
    objects = []
    for g in range(groups):
        batch_index = np.concatenate([np.full(len(s.indices[g]), b, np.int64) for b, s in enumerate(samples)])
        objects.append(
            (
                torch.from_numpy(batch_index),
                torch.from_numpy(np.concatenate([s.indices[g] for s in samples]).astype(np.int64)),
                torch.from_numpy(np.concatenate([s.regression[g] for s in samples]).astype(np.float32).reshape(-1, 8)),
            )
        )
    return {
        "features": torch.from_numpy(np.concatenate([s.features for s in samples])),
        "coords_bzyx": torch.from_numpy(np.concatenate(coords)),
        "heatmaps": [torch.from_numpy(np.stack([s.heatmaps[g] for s in samples])) for g in range(groups)],
        "objects": objects,
        "batch_size": len(samples),
        "num_boxes": sum(s.num_boxes for s in samples),
    }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def plot_loss_curve(csv_path: Path, png_path: Path) -> None:
    """Draw ``loss.csv`` (total, heatmap and regression loss against step) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, colour in (("loss", "black"), ("heatmap", "tab:blue"), ("regression", "tab:orange")):
        values = np.array([float(r[key]) for r in rows])
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps, values, color=colour, alpha=0.2, lw=0.8)
        ax.plot(steps[window - 1 :], smooth, color=colour, lw=1.6, label=f"{key} (moving mean of {window} logs)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    hours = float(rows[-1]["elapsed_s"]) / 3600
    ax.set_title(f"training loss, {len(rows)} logs, {hours:.2f} h of training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


_CSV_FIELDS = ("step", "elapsed_s", "samples_per_s", "loss", "heatmap", "regression", "lr", "boxes_per_frame")


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: Callable[[dict], None] | None = None,
) -> Path:
    """Train (or continue training) a detector; returns the checkpoint path.

    Args:
        config: the run.
        out_dir: folder for checkpoint, curve and logs (created).
        resume: continue from ``out_dir/checkpoint.pt`` (which must come from the same
            ``TrainConfig``) instead of refusing to overwrite it.
        device: ``"cpu"`` or ``"cuda"``.
        progress: called with every logged row.

    Raises:
        ConfigError: ``out_dir`` holds a checkpoint and ``resume`` is false, or the
            checkpoint comes from another configuration.
        CheckpointError: the checkpoint cannot be read.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    csv_path = out / "loss.csv"
    detector_config = preset(config.model)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = CenterPointNet(detector_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    start_step, elapsed_before, last_log_elapsed = 0, 0.0, 0.0
    if ckpt_path.exists():
        if not resume:
            raise ConfigError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
        payload = load_training_checkpoint(ckpt_path)
        stored = json.loads(payload.get("train_config", "{}"))
        # the total step count may change on resume: the schedule is a function of step / steps
        if {k: v for k, v in stored.items() if k != "steps"} != {k: v for k, v in config.to_dict().items() if k != "steps"}:
            raise ConfigError(f"{ckpt_path}: the checkpoint was made with another training configuration; use the same options to resume")
        if stored.get("steps") != config.steps:
            log.warning("resuming with %d total steps instead of %s: the learning-rate schedule is re-planned", config.steps, stored.get("steps"))
        try:
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(ckpt_path, f"does not fit the model ({exc})") from exc
        start_step, elapsed_before = int(payload["step"]), float(payload["elapsed_s"])
        last_log_elapsed = _truncate_csv(csv_path, start_step)
        log.info("resuming at step %d", start_step)
    (out / "train_config.json").write_text(json.dumps({"train": config.to_dict(), "detector": detector_config.to_dict()}, indent=2) + "\n")

    db_path = out / "gt_database.npz"
    if db_path.exists():
        database = GroundTruthDatabase.load(str(db_path))
    else:
        log.info("building the ground-truth database from %d drives", config.database_drives)
        database = GroundTruthDatabase.build(config.database_drives, config.sampling, config.augment.paste_min_points)
        database.save(str(db_path))
    stream = SyntheticSampleStream(config.seed, config.sampling, config.augment, database, detector_config.classes)
    if start_step >= config.steps:
        return ckpt_path
    dataset = _Samples(stream, detector_config, start_step * config.batch_size, config.steps * config.batch_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers, collate_fn=collate,
        worker_init_fn=_worker_init if config.workers else None, prefetch_factor=2 if config.workers else None,
        persistent_workers=False,
    )  # fmt: skip
    new_file = not csv_path.exists()
    csv_handle = open(csv_path, "a", newline="")
    writer = csv.DictWriter(csv_handle, fieldnames=_CSV_FIELDS)
    if new_file:
        writer.writeheader()
    model.train()
    t0 = time.monotonic()
    window: list[dict] = []
    step = start_step
    try:
        for batch in loader:
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            outputs = model(batch["features"].to(device), batch["coords_bzyx"].to(device), batch["batch_size"])
            heatmaps = [h.to(device) for h in batch["heatmaps"]]
            objects = [tuple(t.to(device) for t in o) for o in batch["objects"]]
            loss, parts = detection_loss(outputs, heatmaps, objects, config.regression_weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: loss is {float(loss)}; lower --max-lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            window.append({"loss": float(loss.detach()), **parts, "boxes": batch["num_boxes"] / batch["batch_size"]})
            if step % config.log_every == 0 or step == config.steps:
                elapsed = elapsed_before + time.monotonic() - t0
                row = {
                    "step": step,
                    "elapsed_s": round(elapsed, 1),
                    "samples_per_s": round(len(window) * config.batch_size / max(1e-9, elapsed - last_log_elapsed), 3),
                    "loss": round(float(np.mean([w["loss"] for w in window])), 5),
                    "heatmap": round(float(np.mean([w["heatmap"] for w in window])), 5),
                    "regression": round(float(np.mean([w["regression"] for w in window])), 5),
                    "lr": f"{lr:.3g}",
                    "boxes_per_frame": round(float(np.mean([w["boxes"] for w in window])), 1),
                }
                writer.writerow(row)
                csv_handle.flush()
                window.clear()
                last_log_elapsed = elapsed
                if progress is not None:
                    progress(row)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_training_checkpoint(
                    ckpt_path,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "elapsed_s": elapsed_before + time.monotonic() - t0,
                        "config": json.dumps(detector_config.to_dict(), sort_keys=True),
                        "train_config": json.dumps(config.to_dict(), sort_keys=True),
                    },
                )
                plot_loss_curve(csv_path, out / "loss.png")
    finally:
        csv_handle.close()
    return ckpt_path


def _truncate_csv(csv_path: Path, step: int) -> float:
    """Drop log rows after ``step`` (they were written after the checkpoint a run resumes
    from); returns the elapsed seconds of the last row kept."""
    if not csv_path.exists():
        return 0.0
    with open(csv_path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return float(rows[-1]["elapsed_s"]) if rows else 0.0
