"""A tiny synthetic drive-log format for ingest tests, and its reader ``fake``.

A log is a directory ``NAME.fakelog/`` holding ``log.json`` and the files it names::

    {"log_id": "drive_a",
     "cameras": {"front": [width_px, height_px]},      # the rig: calibrated cameras ...
     "lidars": ["top"],                                # ... and LiDARs (identity extrinsics)
     "frames": [{"timestamp_ns": 100,
                 "lidars": {"top": "top_000.npy"},     # (N, 4) float32 x, y, z, intensity
                 "images": {"front": ["front_000.png", width_px, height_px]},
                 "pose": [tx, ty, tz, qw, qx, qy, qz] | null,
                 "num_annotations": 2}]}

Importing this module registers the reader, so Beam workers get it with
``--reader_module tests.beam_jobs.fake_log`` (the repository root must be importable
there: pass it in ``PYTHONPATH``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep
from calibration import SE3, CalibrationFileError
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig

COLUMNS = ("x", "y", "z", "intensity")


@register_reader
class FakeLogReader(LogReader):
    """Reads ``*.fakelog`` directories (see the module docstring)."""

    name = "fake"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        self.root = Path(self.uri)
        manifest_path = self.root / "log.json"
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LogFormatError(manifest_path, None, f"cannot read the log manifest: {exc}") from exc
        self.log_id = self.manifest["log_id"]
        cameras = {
            name: RigCamera(CameraModel(width_px=w, height_px=h, fx_px=100.0, fy_px=100.0, cx_px=w / 2, cy_px=h / 2), SE3.identity())
            for name, (w, h) in self.manifest["cameras"].items()
        }
        self.rig = SensorRig(cameras=cameras, lidars={name: SE3.identity() for name in self.manifest["lidars"]})

    @classmethod
    def sniff(cls, uri: str) -> bool:
        return uri.rstrip("/").endswith(".fakelog")

    def list_frames(self) -> list[FrameRef]:
        return [FrameRef(self.uri, self.log_id, i, f["timestamp_ns"], self.name) for i, f in enumerate(self.manifest["frames"])]

    def load_frame(self, ref: FrameRef) -> Frame:
        self._check_ref(ref)
        spec = self.manifest["frames"][ref.index]
        lidars = {}
        for name, file_name in spec.get("lidars", {}).items():
            path = self.root / file_name
            if name not in self.rig.lidars:
                raise CalibrationFileError(self.root / "log.json", f"lidars/{name}", "no extrinsics for this LiDAR")
            try:
                points = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise LogFormatError(path, f"lidar '{name}' points", f"cannot read: {exc}") from exc
            lidars[name] = LidarSweep(name, ref.timestamp_ns, points.astype(np.float32).reshape(-1, len(COLUMNS)), COLUMNS)
        images = {}
        for name, (file_name, width_px, height_px) in spec.get("images", {}).items():
            path = self.root / file_name
            if name not in self.rig.cameras:
                raise CalibrationFileError(self.root / "log.json", f"cameras/{name}", "no intrinsics for this camera")
            images[name] = CameraImage(name, ref.timestamp_ns, "png", path.read_bytes(), width_px, height_px, source=str(path))
        pose = spec.get("pose")
        world_SE3_ego = None if pose is None else SE3.from_wxyz(pose[3:], pose[:3])
        num_annotations = spec.get("num_annotations")
        annotations = None
        if num_annotations is not None:
            k = num_annotations
            annotations = Cuboids.from_arrays("ego", np.zeros((k, 3)), np.ones((k, 3)), np.zeros(k), ["car"] * k)
        return Frame(
            self.log_id,
            ref.timestamp_ns,
            self.rig,
            world_SE3_ego=world_SE3_ego,
            lidars=lidars,
            images=images,
            annotations=annotations,
            source_uri=f"{self.uri}#{ref.index}",
        )


def png_bytes(width_px: int, height_px: int, seed: int = 0) -> bytes:
    """A small random RGB PNG."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (height_px, width_px, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def good_points(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 4)`` float32 finite points."""
    return np.random.default_rng(seed).uniform(-20, 20, (n, 4)).astype(np.float32)


def write_fake_log(root: Path, log_id: str, frames: list[dict[str, Any]], cameras: dict[str, tuple[int, int]] | None = None) -> Path:
    """Write ``root/{log_id}.fakelog`` from frame specs; return its path.

    Each spec: ``timestamp_ns``; optional ``points`` (array, or ``"missing"`` for a named
    file that does not exist), ``image`` (PNG bytes, written for camera ``front`` with size
    ``image_size`` or the camera's), ``image_camera``, ``pose`` (7 numbers),
    ``num_annotations``.
    """
    cameras = {"front": (8, 6)} if cameras is None else cameras
    log_dir = root / f"{log_id}.fakelog"
    log_dir.mkdir(parents=True)
    manifest_frames = []
    for i, spec in enumerate(frames):
        entry: dict[str, Any] = {"timestamp_ns": spec["timestamp_ns"]}
        if "points" in spec:
            file_name = f"top_{i:03d}.npy"
            if not isinstance(spec["points"], str):
                np.save(log_dir / file_name, spec["points"], allow_pickle=False)
            entry["lidars"] = {"top": file_name}
        if "image" in spec:
            camera = spec.get("image_camera", "front")
            width_px, height_px = spec.get("image_size", cameras.get(camera, (8, 6)))
            file_name = f"{camera}_{i:03d}.png"
            (log_dir / file_name).write_bytes(spec["image"])
            entry["images"] = {camera: [file_name, width_px, height_px]}
        entry["pose"] = spec.get("pose")
        entry["num_annotations"] = spec.get("num_annotations")
        manifest_frames.append(entry)
    manifest = {"log_id": log_id, "cameras": {k: list(v) for k, v in cameras.items()}, "lidars": ["top"], "frames": manifest_frames}
    (log_dir / "log.json").write_text(json.dumps(manifest))
    return log_dir
