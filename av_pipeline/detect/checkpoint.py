"""Weights on disk: training checkpoints and shipped weights, loaded with ``weights_only=True``.

Shipped weights are two files side by side: ``NAME.pt`` (a ``state_dict`` of float16
tensors) and ``NAME.json`` (the :class:`DetectorConfig`, the sha256 of the ``.pt`` file,
what it was trained on and its metrics). Loading checks the checksum, that the config
rebuilds, and that every tensor name and shape matches the model the config builds; each
failure is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from av_pipeline.detect.config import DetectorConfig
from av_pipeline.errors import AVPipelineError, ConfigError

#: Where the weights shipped with the package live.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "detector"
#: The default shipped model.
DEFAULT_WEIGHTS = "cpu_small"


class CheckpointError(AVPipelineError, ValueError):
    """Weights are missing, corrupt, foreign or do not fit the model.

    Attributes:
        path: the file.
    """

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(path, "no such weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, zipfile errors ...
        raise CheckpointError(path, f"not a readable torch weights file ({type(exc).__name__}: {str(exc)[:200]})") from exc


def check_state_dict(path: object, state: Any, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as a name -> tensor dict with exactly the names and shapes of ``expected``.

    Raises:
        CheckpointError: not a dict of tensors, missing or unexpected names, or a shape mismatch.
    """
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "expected a state_dict (a mapping of tensor names to tensors)")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            path, f"does not fit this model: {len(missing)} missing tensors {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(path, f"tensor {name}: expected shape {tuple(tensor.shape)}, got {tuple(state[name].shape)}")
    return {name: state[name].to(expected[name].dtype) for name in expected}


def save_shipped(model: torch.nn.Module, config: DetectorConfig, path_pt: str | os.PathLike, extra: Mapping[str, Any]) -> Path:
    """Write ``NAME.pt`` (float16 weights, float32 for BatchNorm statistics) and ``NAME.json``.

    Returns:
        The path of the JSON file.
    """
    path_pt = Path(path_pt)
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and "running_" not in name:
            tensor = tensor.half()
        state[name] = tensor.contiguous()
    tmp = path_pt.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path_pt)
    meta = {"format": "av-pipeline-detector/1", "config": config.to_dict(), "sha256": sha256_of(path_pt), **dict(extra)}
    path_json = path_pt.with_suffix(".json")
    path_json.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path_json


def load_shipped(path_pt: str | os.PathLike) -> tuple[DetectorConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``NAME.pt`` and its ``NAME.json``; verify checksum and config.

    Returns:
        ``(config, state_dict as stored, metadata)``; the shapes are checked against the
        model when it is built (:func:`check_state_dict`).

    Raises:
        CheckpointError: a file is missing or corrupt, the checksum differs, or the
            metadata is not an av-pipeline detector description.
    """
    path_pt = Path(path_pt)
    path_json = path_pt.with_suffix(".json")
    if not path_pt.is_file():
        raise CheckpointError(path_pt, "no such weights file")
    if not path_json.is_file():
        raise CheckpointError(path_json, f"the description of {path_pt.name} is missing (expected beside it)")
    try:
        meta = json.loads(path_json.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path_json, f"not a readable JSON description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != "av-pipeline-detector/1":
        raise CheckpointError(path_json, "not an av-pipeline detector description (field 'format' is not 'av-pipeline-detector/1')")
    actual = sha256_of(path_pt)
    if meta.get("sha256") != actual:
        raise CheckpointError(path_pt, f"checksum mismatch: the description says sha256 {str(meta.get('sha256'))[:16]}..., the file has {actual[:16]}...")
    try:
        config = DetectorConfig.from_dict(meta["config"])
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(path_json, f"field 'config': {exc}") from exc
    state = _torch_load(path_pt)
    return config, state, meta


def save_training_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write a resumable checkpoint atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(dict(payload), tmp)
    os.replace(tmp, path)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`.

    Raises:
        CheckpointError: missing, truncated or foreign file.
    """
    payload = _torch_load(Path(path))
    if not isinstance(payload, dict) or "model" not in payload or "step" not in payload or "config" not in payload:
        raise CheckpointError(path, "not an av-pipeline training checkpoint (expected keys 'model', 'step', 'config')")
    return payload
