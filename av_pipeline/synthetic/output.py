"""Write a synthetic drive as real logs (MCAP through the ingest writers, KITTI raw) plus side files.

>>> from av_pipeline.synthetic import SimulationConfig, write_synthetic_log           # doctest: +SKIP
>>> log = write_synthetic_log(SimulationConfig(frames=100, seed=3), "out/sim")       # doctest: +SKIP
>>> from av_pipeline.readers import open_log                                         # doctest: +SKIP
>>> reader = open_log(log.mcap)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from av_pipeline.errors import ConfigError
from av_pipeline.records import CameraImage, Frame
from av_pipeline.synthetic.config import SimulationConfig
from av_pipeline.synthetic.generator import SyntheticDrive, SyntheticFrame, encode_image
from av_pipeline.synthetic.sidecar import SIDECAR_VERSION, _r, anomalies_document, onboard_to_json, truth_to_json, write_json

#: Output formats of :func:`write_synthetic_log`.
FORMATS = ("mcap", "kitti_raw")
#: MCAP message families.
MCAP_SCHEMAS = ("foxglove", "ros2")
#: Version of the generator; it goes into the metadata so logs say what made them.
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class SyntheticLog:
    """What :func:`write_synthetic_log` wrote (paths are ``None`` for formats not requested).

    Attributes:
        out_dir: the output folder.
        log_id: the log's name.
        mcap: the MCAP file.
        kitti_drive: the KITTI raw drive folder (open it with ``open_log``).
        kitti_camera_folders: rig camera -> KITTI camera number (the reader names it ``image_<number>``).
        anomalies, labels, planned_path, meta, rig: the side files.
        frames: frames written.
        seconds: wall-clock time taken.
    """

    out_dir: Path
    log_id: str
    mcap: Path | None
    kitti_drive: Path | None
    kitti_camera_folders: dict[str, str]
    anomalies: Path
    labels: Path
    planned_path: Path
    meta: Path
    rig: Path
    frames: int
    seconds: float


def _kitti_frame(synthetic: SyntheticFrame) -> Frame:
    frame = synthetic.frame
    images = {
        name: CameraImage(name, image.timestamp_ns, "png", encode_image(synthetic.images_rgb[name], "png"), image.width_px, image.height_px)
        for name, image in frame.images.items()
    }
    return replace(frame, images=images)


def write_synthetic_log(
    config: SimulationConfig,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("mcap",),
    mcap_schema: str = "foxglove",
    on_frame: Callable[[SyntheticFrame], None] | None = None,
    on_truth: Callable[[int], None] | None = None,
) -> SyntheticLog:
    """Generate ``config.frames`` frames and write them to ``out_dir``.

    Args:
        config: what to generate.
        out_dir: created if missing; existing files of the same log are overwritten.
        formats: any of :data:`FORMATS`.
        mcap_schema: ``"foxglove"`` (protobuf) or ``"ros2"`` (cdr) messages.
        on_frame: called with every rendered frame (progress bars, previews).
        on_truth: called with each frame index while the ground truth of every frame is
            prepared, before the first frame is rendered (progress bars).

    Returns:
        Where everything went.

    Raises:
        ConfigError: an unknown format or schema.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"formats: expected some of {list(FORMATS)}, got {list(formats)}")
    if mcap_schema not in MCAP_SCHEMAS:
        raise ConfigError(f"mcap_schema: expected one of {list(MCAP_SCHEMAS)}, got {mcap_schema!r}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drive = SyntheticDrive(config, on_truth)
    log_id = config.log_id
    labels: list[dict] = []
    paths: list[dict] = []
    kitti_writer = None
    if "kitti_raw" in formats:
        from av_pipeline.writers.kitti_raw import KittiRawWriter

        kitti_writer = KittiRawWriter(out / "kitti_raw", drive.rig)

    def frames() -> Iterator[Frame]:
        for synthetic in drive:
            truth = synthetic.truth
            labels.append(
                {
                    "index": truth.index,
                    "timestamp_ns": truth.timestamp_ns,
                    "ground_truth": truth_to_json(truth),
                    "onboard": onboard_to_json(synthetic.frame.onboard),
                }
            )
            paths.append(
                {
                    "index": truth.index,
                    "timestamp_ns": truth.timestamp_ns,
                    "max_deviation_m": _r(drive.ego_deviation_m[truth.index], 3),
                    "planned": [_r(row) for row in synthetic.planned_path_ego],
                    "driven": [_r(row) for row in synthetic.driven_path_ego],
                }
            )
            if kitti_writer is not None:
                kitti_writer.write(_kitti_frame(synthetic))
            if on_frame is not None:
                on_frame(synthetic)
            yield synthetic.frame

    mcap_path = None
    if "mcap" in formats:
        mcap_path = out / f"{log_id}.mcap"
        if mcap_schema == "foxglove":
            from av_pipeline.writers.mcap_foxglove import write_foxglove_mcap as write_mcap
        else:
            from av_pipeline.writers.mcap_ros2 import write_ros2_mcap as write_mcap
        write_mcap(mcap_path, frames())
    else:
        for _ in frames():
            pass
    kitti = kitti_writer.close() if kitti_writer is not None else None

    from calibration.formats.native_rig import write_rig

    anomalies_path = out / f"{log_id}.anomalies.json"
    labels_path = out / f"{log_id}.labels.json"
    planned_path = out / f"{log_id}.planned_path.json"
    meta_path = out / f"{log_id}.meta.json"
    rig_path = out / f"{log_id}.rig.yaml"
    write_json(anomalies_path, anomalies_document(log_id, config.seed, config.frames, drive.anomalies))
    write_json(labels_path, {"version": SIDECAR_VERSION, "log_id": log_id, "frames": labels})
    write_json(
        planned_path,
        {
            "version": SIDECAR_VERSION,
            "log_id": log_id,
            "frame": "ego",
            "columns": ["dt_s", "x_m", "y_m", "yaw_rad"],
            "deviation_threshold_m": 0.5,
            "frames": paths,
        },
    )
    write_rig(drive.rig, rig_path, description=f"synthetic log {log_id} (seed {config.seed})")
    files = {"anomalies": anomalies_path.name, "labels": labels_path.name, "planned_path": planned_path.name, "rig": rig_path.name}
    if mcap_path is not None:
        files["mcap"] = mcap_path.name
    if kitti is not None:
        files["kitti_raw"] = str(kitti.drive_dir.relative_to(out))
    write_json(
        meta_path,
        {
            "version": SIDECAR_VERSION,
            "generator_version": GENERATOR_VERSION,
            "log_id": log_id,
            "seed": config.seed,
            "frames": config.frames,
            "timestamps_ns": [drive.timestamp_ns(k) for k in range(config.frames)],
            "mcap_schema": mcap_schema if mcap_path is not None else None,
            "kitti_camera_folders": dict(kitti.camera_folders) if kitti is not None else None,
            "files": files,
            "config": config.to_dict(),
        },
    )
    return SyntheticLog(
        out_dir=out,
        log_id=log_id,
        mcap=mcap_path,
        kitti_drive=kitti.drive_dir if kitti is not None else None,
        kitti_camera_folders=dict(kitti.camera_folders) if kitti is not None else {},
        anomalies=anomalies_path,
        labels=labels_path,
        planned_path=planned_path,
        meta=meta_path,
        rig=rig_path,
        frames=config.frames,
        seconds=round(time.perf_counter() - start, 3),
    )
