"""Turn a training checkpoint into the weights the package ships."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from av_pipeline.detect.checkpoint import CheckpointError, check_state_dict, load_training_checkpoint, save_shipped
from av_pipeline.detect.config import DetectorConfig


def model_from_checkpoint(checkpoint: str | os.PathLike) -> tuple[DetectorConfig, Any, dict[str, Any]]:
    """``(config, model with the checkpoint's weights, the checkpoint)`` of a training checkpoint.

    Raises:
        CheckpointError: the checkpoint cannot be read, its config does not rebuild, or the
            weights do not fit the model the config builds.
    """
    from av_pipeline.detect.model import CenterPointNet

    payload = load_training_checkpoint(checkpoint)
    try:
        config = DetectorConfig.from_dict(json.loads(payload["config"]))
    except Exception as exc:
        raise CheckpointError(checkpoint, f"field 'config' does not describe a detector ({exc})") from exc
    model = CenterPointNet(config)
    model.load_state_dict(check_state_dict(checkpoint, payload["model"], model.state_dict()))
    return config, model, payload


def export_checkpoint(checkpoint: str | os.PathLike, out_pt: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_pt`` (float16 weights) and its JSON description from a training checkpoint.

    The description records the training step, hours and the training configuration; pass
    evaluation results in ``extra`` to store them too.

    Returns:
        The JSON path.

    Raises:
        CheckpointError: the checkpoint cannot be read or does not fit its own config.
    """
    config, model, payload = model_from_checkpoint(checkpoint)
    info = {
        "trained_steps": int(payload["step"]),
        "training_hours": round(float(payload["elapsed_s"]) / 3600, 3),
        "train_config": json.loads(payload.get("train_config", "{}")),
        **dict(extra or {}),
    }
    out_pt = Path(out_pt)
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    return save_shipped(model, config, out_pt, info)
