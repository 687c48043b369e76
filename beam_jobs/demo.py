"""The main job on the bundled default data (``avp demo`` / ``make demo``).

What exists of the pipeline today, end to end, on the synthetic log shipped in the package
(or on logs you name):

1. **Ingest** (the Beam job :mod:`beam_jobs.ingest`): list, load and validate every frame;
   Parquet frame index + dead letters, counts in = indexed + dead-lettered.
2. **Fusion and voxelization** of every indexed frame (:func:`av_pipeline.frame_products.frame_products`):
   per-point de-skew with the ego trajectory from the index, ego-motion compensation to each
   image time, z-buffered depth, painting, onboard cuboids projected into the cameras, voxels
   for the detector. One JSON line per frame.
3. **Pictures** of one frame (:func:`av_pipeline.figures.save_frame_figures`): a bird's-eye
   view and each camera with LiDAR depth, every box source the frame has (ground truth,
   onboard perception) with a legend, titles saying what was done.
4. **Calibration**: the targetless drift check per camera, scores summed over
   :data:`DRIFT_CHECK_FRAMES` frames (the calibrated extrinsic, and one panned by
   :data:`DRIFT_PAN_DEG`), and the rig converted to the rig, ROS CameraInfo and OpenCV formats.

Later stages (detector pre-labels, mining, reports) join here as they land.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

#: The simulated calibration drift the demo checks for: a pan about the camera's y axis.
DRIFT_PAN_DEG = 1.0
#: Printed above the drift-check results and stored in summary.json beside them.
DRIFT_CONTROL_NOTE = (
    f"The 'panned {DRIFT_PAN_DEG:g} deg' result is a control, not a finding: the demo pans each camera's "
    f"calibrated extrinsic by {DRIFT_PAN_DEG:g} deg on purpose and checks that the drift check flags it "
    "(DRIFTED is the expected outcome there; 'not flagged' means the check cannot see such a drift on this data)."
)
#: What the demo writes in its output folder (replaced as a whole with --overwrite).
DEMO_OUTPUTS = ("ingest", "frames.jsonl", "figures", "calibration", "summary.json")


def prepare_demo_output(out: Path, overwrite: bool) -> None:
    """Make sure ``out`` holds no earlier demo results, or remove them when ``overwrite``.

    Only the demo's own outputs (:data:`DEMO_OUTPUTS`) are removed; other files stay.

    Raises:
        ConfigError: earlier results exist and ``overwrite`` is false (the message names them).
    """
    import shutil

    from av_pipeline.errors import ConfigError

    out = Path(out)
    earlier = [out / name for name in DEMO_OUTPUTS if (out / name).exists()]
    if earlier and not overwrite:
        names = ", ".join(p.name for p in earlier)
        raise ConfigError(
            f"out: {out} already holds an earlier demo run ({names}); pass --overwrite to replace it, or choose another --out"
        )
    for path in earlier:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _pan(angle_deg: float):
    from calibration import SE3

    a = math.radians(angle_deg)
    return SE3(np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]]), [0.0, 0.0, 0.0])


def _read_index(index_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(index_dir).to_pylist(), key=lambda row: (row["log_id"], row["timestamp_ns"]))


#: How many frames, spread over the log, the calibration drift check sums its scores over.
DRIFT_CHECK_FRAMES = 10


class DriftChecks:
    """Per camera, the alignment-score observations of several frames (image edges, LiDAR
    edges of the de-skewed sweep, the motion-compensated extrinsic), checked together."""

    def __init__(self) -> None:
        self.observations: dict[str, list] = {}
        self.cameras: dict[str, object] = {}

    def add(self, frame, products, decoded: dict[str, np.ndarray]) -> None:
        """Add one frame's observations for every matched camera."""
        from calibration import EdgeMap, LidarEdges

        sweep = frame.lidar
        ring = sweep.column("ring").astype(np.int64) if "ring" in sweep.columns else None
        intensity = sweep.column("intensity") if "intensity" in sweep.columns else None
        edges = LidarEdges.from_points(products.fusion.points_lidar, ring=ring, intensity=intensity)
        for camera, camera_SE3_lidar in products.fusion.camera_SE3_lidar.items():
            self.cameras[camera] = frame.rig.cameras[camera].model
            self.observations.setdefault(camera, []).append((EdgeMap.from_image(decoded[camera]), edges, camera_SE3_lidar))

    def results(self) -> dict[str, dict]:
        """camera -> fractions of perturbations that score at least as high, for the
        calibrated extrinsic and for one panned by :data:`DRIFT_PAN_DEG`, and the verdicts."""
        from calibration import calibration_drift_check_frames

        pan = _pan(DRIFT_PAN_DEG)
        results = {}
        for camera, observations in self.observations.items():
            model = self.cameras[camera]
            calibrated = calibration_drift_check_frames(model, observations)
            panned = calibration_drift_check_frames(model, [(e, l, pan.compose(t)) for e, l, t in observations])
            results[camera] = {
                "frames": len(observations),
                "fraction_better": calibrated.fraction_better,
                "drifted": calibrated.drifted,
                "panned_fraction_better": panned.fraction_better,
                "panned_drifted": panned.drifted,
            }
        return results


def run_demo(
    out: Path, logs: Sequence[str] | None = None, *, figure_frame: int = 0, workers: int = 1, overwrite: bool = False
) -> dict:
    """Run the main job; write everything under ``out``; return the summary (``out/summary.json``).

    Args:
        out: output folder (created). Earlier demo results in it are refused unless
            ``overwrite``, which removes them first (see :func:`prepare_demo_output`).
        logs: drive logs or globs; default: the bundled synthetic log.
        figure_frame: which indexed frame (in time order) gets pictures and the rig conversion.
        workers: Beam worker processes for the ingest job (1 = in this process).
        overwrite: replace an earlier demo run in ``out``.

    Raises:
        ConfigError: ``out`` holds an earlier run and ``overwrite`` is false.
    """
    from rich.console import Console
    from rich.progress import Progress

    from av_pipeline.figures import save_frame_figures
    from av_pipeline.frame_products import frame_products, summarize_rows, trajectory_from_poses
    from av_pipeline.readers import open_log
    from beam_jobs import ingest

    console = Console(highlight=False)
    started = time.perf_counter()
    out = Path(out)
    prepare_demo_output(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    bundled = None
    if not logs:
        from av_pipeline.synthetic import bundled_log

        bundled = bundled_log()
        logs = [str(bundled.mcap)]
    console.rule("1. ingest")
    argv = ["--out", str(out / "ingest"), "--overwrite"] + [arg for log in logs for arg in ("--logs", log)]
    if workers > 1:
        argv += ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing"]
    ingested = ingest.run(argv)
    rows = _read_index(out / "ingest" / "index")
    if not rows:
        raise SystemExit(f"no frame could be indexed; see {out / 'ingest' / 'dead_letters'}")

    console.rule("2. fusion and voxelization")
    by_log: dict[str, list[dict]] = {}
    for row in rows:
        by_log.setdefault(row["log_id"], []).append(row)
    trajectories = {
        log_id: trajectory_from_poses(
            [r["timestamp_ns"] for r in log_rows], [r["pose_translation_m"] for r in log_rows], [r["pose_rotation_wxyz"] for r in log_rows]
        )
        for log_id, log_rows in by_log.items()
    }
    figure_frame = min(max(figure_frame, 0), len(rows) - 1)
    readers: dict[str, object] = {}
    frame_rows = []
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    drift = DriftChecks()
    check_positions = set(np.linspace(0, len(rows) - 1, min(DRIFT_CHECK_FRAMES, len(rows))).round().astype(int).tolist())
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("frames", total=len(rows))
            for position, row in enumerate(rows):
                reader = readers.get(row["log_uri"])
                if reader is None:
                    reader = readers[row["log_uri"]] = open_log(row["log_uri"], row["reader"])
                refs = reader.list_frames()
                frame = reader.load_frame(refs[row["frame_index"]])
                decoded = {name: image.decode() for name, image in frame.images.items()}
                products = frame_products(frame, trajectories[row["log_id"]], decoded_images=decoded)
                frame_rows.append(products.summary_row())
                if position in check_positions:
                    drift.add(frame, products, decoded)
                if position == figure_frame:
                    save_frame_figures(figures, frame, products, decoded)
                    _convert_rig(out / "calibration", frame.rig)
                progress.advance(task)
    finally:
        for reader in readers.values():
            reader.close()
    with open(out / "frames.jsonl", "w", encoding="utf-8") as stream:
        for frame_row in frame_rows:
            stream.write(json.dumps(frame_row) + "\n")
    mean = lambda key: float(np.mean([r[key] for r in frame_rows]))  # noqa: E731
    console.print(
        f"{len(frame_rows)} frames: {mean('points'):,.0f} points, {mean('points_painted'):,.0f} painted, "
        f"{mean('voxels'):,.0f} voxels per frame (means); de-skewed {sum(r['deskewed'] for r in frame_rows)}/{len(frame_rows)}; "
        f"max camera skew {max((r['max_abs_skew_ms'] or 0.0) for r in frame_rows):.1f} ms"
    )

    calibration = drift.results()
    console.rule(f"3. calibration drift check ({len(check_positions)} frames)")
    console.print(DRIFT_CONTROL_NOTE)
    for camera, check in calibration.items():
        console.print(
            f"  {camera:>10}: as calibrated {'DRIFTED' if check['drifted'] else 'ok'} "
            f"({100 * check['fraction_better']:.0f}% of perturbations score higher); panned {DRIFT_PAN_DEG:g} deg "
            f"{'DRIFTED' if check['panned_drifted'] else 'not flagged'} ({100 * check['panned_fraction_better']:.0f}%)"
        )
    summary = {
        "logs": list(logs),
        "bundled": bundled is not None,
        "ingest": ingested.to_json(),
        "frames_processed": len(frame_rows),
        **summarize_rows(frame_rows),
        "figure_frame": figure_frame,
        "figures": sorted(p.name for p in figures.glob("*.png")),
        "calibration_drift_check": calibration,
        "calibration_drift_check_note": DRIFT_CONTROL_NOTE,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.rule()
    console.print(f"demo finished in {summary['seconds']} s: {out}/ (ingest/, frames.jsonl, figures/, calibration/, summary.json)")
    return summary


def _convert_rig(folder: Path, rig) -> None:
    from calibration import formats

    folder.mkdir(exist_ok=True)
    formats.write_rig(rig, folder / "rig.yaml")
    for camera in rig.camera_names:
        model = rig.cameras[camera].model
        formats.write_ros_camera_info(formats.RosCameraInfo.from_camera_model(model, camera), folder / f"{camera}_camera_info.yaml")
        formats.write_opencv_yaml(model, folder / f"{camera}_opencv.yaml")
