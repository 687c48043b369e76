"""Cheap synthetic logs for the scale tests and benchmarks/scale.py, and a digest of a run's
outputs to compare runs file by file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: Files whose content legitimately differs between two runs of the same job (timings, the
#: runner's name, the output folder) or is rebuilt from the others (the report's HTML).
VOLATILE = ("summary.json", "report/")


def cheap_config(frames: int, seed: int = 3, log_id: str | None = None):
    """A synthetic log that is quick to make and to process: every other HDL-64E beam (32),
    1,024 firings per turn, one 160x90 front camera; the default scene and planted anomalies."""
    from av_pipeline.synthetic import LidarConfig, SimulationConfig, default_cameras, hdl64e_elevations_deg

    return SimulationConfig(
        frames=frames, seed=seed, log_id=log_id or f"scale{frames}", cameras=default_cameras(0.2)[:1],
        lidar=LidarConfig(elevations_deg=hdl64e_elevations_deg()[::2], azimuth_steps=1024),
    )  # fmt: skip


def write_cheap_log(folder: Path, frames: int, seed: int = 3, log_id: str | None = None) -> Path:
    """Write :func:`cheap_config` as MCAP (with its side files) into ``folder``; return the MCAP path."""
    from av_pipeline.synthetic import write_synthetic_log

    return write_synthetic_log(cheap_config(frames, seed, log_id), folder).mcap


def output_digest(out: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file in a run's ``out`` (the output folder's own
    path replaced in text files); files in :data:`VOLATILE` count by name only."""
    digest = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel.startswith(VOLATILE):
            digest[rel] = "volatile"
            continue
        data = path.read_bytes()
        if path.suffix in (".json", ".jsonl", ".yaml", ".txt"):
            data = data.replace(str(out).encode(), b"<out>")
        digest[rel] = hashlib.sha256(data).hexdigest()
    return digest


def summary_counts(out: Path) -> dict:
    """``summary.json`` without what differs between runs of the same job."""
    summary = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in ("elapsed_s", "runner", "out", "figures")}
