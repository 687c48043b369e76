"""A small mining output folder built by hand (no detector, no Beam run): hand-built logs mined
with the real triggers, cases and writers, plus planted dead letters; for the report's tests.

- ``drive_a`` (40 frames): onboard misses a car for 6 frames, reports a ghost car, and calls
  a pedestrian a cyclist for a while;
- :data:`HOSTILE_LOG_ID` (20 frames): a log whose name is HTML (``<img ... onerror=...>``),
  where onboard misses a pedestrian: the report must show the name as text;
- ``drive_b`` (20 frames): no onboard perception, so every onboard trigger is skipped;
- three dead letters: two frames of ``drive_a`` whose LiDAR chunk is truncated (stage
  ``load``) and a log ``/logs/<b>broken</b>.mcap`` that does not open (stage ``list``).

:func:`write_fixture_logs` writes ``drive_a`` and the hostile log as real MCAP files (small
JPEG camera images, a LiDAR sweep with points on every object, the onboard cuboids), so the
report can draw its pictures from them; the mining folder's ``prelabels/`` holds the shadow
boxes the triggers saw, as ``avp mine`` writes its refined pre-labels.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from av_pipeline.mining import load_campaign, mine_log, select
from av_pipeline.mining.outputs import write_cases
from calibration.camera import CameraModel
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3
from tests.av_pipeline.mining_fixtures import PERIOD_NS, T0_NS, Scene, SceneObject

#: A log id that is HTML: a report that does not escape it shows a broken image and runs script.
HOSTILE_LOG_ID = "drive_<img src=x onerror=alert(1)>"
#: Dead-lettered frames of the fixture (frames listed = mined + these).
DEAD_FRAMES = 2
OBJECTS = [
    SceneObject(1, "car", (12.0, 3.5), (5.0, 0.0)),
    SceneObject(2, "car", (45.0, -3.5), (-4.0, 0.0)),
    SceneObject(3, "pedestrian", (15.0, 6.0), (0.0, -0.8)),
]
HOSTILE_OBJECTS = [SceneObject(7, "pedestrian", (9.0, -4.0), (0.0, 0.6)), SceneObject(8, "car", (25.0, 3.5), (0.0, 0.0))]
DEAD_LETTERS = [
    {"stage": "load", "log_uri": "/logs/drive_a.mcap", "log_id": "drive_a", "frame_index": 30, "timestamp_ns": 1, "error_type": "LogFormatError",
     "expected": True, "check": None, "path": "/logs/drive_a.mcap", "field": "/lidar_top", "message": "/logs/drive_a.mcap: /lidar_top: truncated chunk"},
    {"stage": "load", "log_uri": "/logs/drive_a.mcap", "log_id": "drive_a", "frame_index": 31, "timestamp_ns": 2, "error_type": "LogFormatError",
     "expected": True, "check": None, "path": "/logs/drive_a.mcap", "field": "/lidar_top", "message": "/logs/drive_a.mcap: /lidar_top: truncated chunk"},
    {"stage": "list", "log_uri": "/logs/<b>broken</b>.mcap", "log_id": None, "frame_index": None, "timestamp_ns": None, "error_type": "LogFormatError",
     "expected": True, "check": None, "path": "/logs/<b>broken</b>.mcap", "field": "magic", "message": "x" * 500},
]  # fmt: skip


def small_rig() -> SensorRig:
    """One forward pinhole camera (320x180, 75 degrees wide) 1.5 m up, and LiDAR ``top`` at ``ego``."""
    model = CameraModel(320, 180, 210.0, 210.0, 159.5, 89.5)
    # camera x right, y down, z forward -> ego x forward, y left, z up
    rotation = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return SensorRig(cameras={"front": RigCamera(model, SE3(rotation, np.array([1.5, 0.0, 1.5])))}, lidars={"top": SE3(np.eye(3), np.zeros(3))})


def _edit(*edits):
    def apply(k: int, rows: list[dict]) -> list[dict]:
        for edit in edits:
            rows = edit(k, rows)
        return rows

    return apply


def _drop(track: int, first: int, last: int):
    return lambda k, rows: [r for r in rows if not (r["track"] == track and first <= k <= last)]


def _relabel(track: int, label: str, first: int, last: int):
    return lambda k, rows: [dict(r, label=label) if r["track"] == track and first <= k <= last else r for r in rows]


def _ghost(first: int, last: int):
    ghost = {"track": 99, "label": "car", "center": np.array([22.0, -9.0, 0.8]), "size": np.array([4.5, 1.9, 1.6]), "yaw": 0.0, "score": 0.8, "points": 0}
    return lambda k, rows: rows + [dict(ghost)] if first <= k <= last else rows


def scenes() -> list[Scene]:
    """The fixture's three logs (module docstring)."""
    rig = small_rig()
    return [
        Scene(OBJECTS, frames=40, log_id="drive_a", rig=rig, edit_onboard=_edit(_drop(1, 8, 13), _ghost(24, 27), _relabel(3, "cyclist", 33, 37))),
        Scene(HOSTILE_OBJECTS, frames=20, log_id=HOSTILE_LOG_ID, rig=rig, edit_onboard=_drop(7, 5, 10)),
        Scene(OBJECTS, frames=20, log_id="drive_b", rig=rig, with_onboard=False),
    ]  # fmt: skip


def write_mining_folder(out: Path) -> Path:
    """Write ``out`` as ``avp mine`` would: cases of the three :func:`scenes` mined with the
    default campaign, ``mining.json``, ``summary.json``, ``prelabels/<log>/`` (the shadow
    boxes) and three dead letters (two frames, one log)."""
    from av_pipeline.detect.prelabel_io import write_prelabels
    from beam_jobs.mine import mining_summary
    from beam_jobs.prelabel import safe_name

    out = Path(out)
    campaign = load_campaign("default")
    results, frames_mined = [], 0
    for scene in scenes():
        frames = scene.build()
        results.append(mine_log(frames, campaign, scene.rig))
        frames_mined += len(frames)
        write_prelabels(out / "prelabels" / safe_name(scene.log_id), [((f.log_id, f.timestamp_ns), f.shadow, -1) for f in frames], "fixture")
    cases = select(results, campaign)
    write_cases(out, cases, campaign, {"frames_mined": frames_mined, "logs": [r.log_id for r in results]})
    (out / "mining.json").write_text(json.dumps(mining_summary(results, cases, campaign), indent=2))
    (out / "dead_letters").mkdir()
    (out / "dead_letters" / "dead_letters-00000-of-00001.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DEAD_LETTERS))
    summary = {
        "out": str(out), "runner": "hand-built", "campaign": "default", "logs": len(results) + 1, "frames_listed": frames_mined + DEAD_FRAMES,
        "frames_mined": frames_mined, "frames_dead_lettered": DEAD_FRAMES, "logs_dead_lettered": 1, "events": sum(len(r.events) for r in results),
        "cases": len(cases), "elapsed_s": 0.0,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out


def _jpeg(k: int, width_px: int, height_px: int) -> bytes:
    from PIL import Image

    rows = np.linspace(0.0, 1.0, height_px)[:, None, None]
    sky, road = np.array([150.0, 190.0, 235.0]), np.array([95.0, 95.0, 100.0])
    pixels = np.where(rows < 0.5, sky, road) * np.ones((1, width_px, 1))
    pixels += np.random.default_rng(k).normal(0.0, 6.0, pixels.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=80)
    return out.getvalue()


def _sweep_points(rows: list[dict], rng: np.random.Generator) -> np.ndarray:
    """``(N, 3)`` float32: a ground grid around ``ego`` and 150 points inside every box."""
    grid = np.stack(np.meshgrid(np.arange(-30.0, 60.0, 1.5), np.arange(-20.0, 20.0, 1.5)), -1).reshape(-1, 2)
    parts = [np.column_stack([grid, np.zeros(len(grid))])]
    for row in rows:
        local = (rng.random((150, 3)) - 0.5) * row["size"]
        c, s = np.cos(row["yaw"]), np.sin(row["yaw"])
        parts.append(local @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + row["center"])
    return np.vstack(parts).astype(np.float32)


def write_fixture_logs(folder: Path) -> dict[str, str]:
    """Write the logs with cases (``drive_a`` and the hostile one) as foxglove MCAP files into
    ``folder``; returns ``{log_id: path}`` for :func:`~av_pipeline.report.build_report`'s
    ``log_uris``. Each frame holds one 320x180 JPEG, one LiDAR sweep and the onboard cuboids
    the mining saw."""
    from av_pipeline.records import CameraImage, Frame, LidarSweep, OnboardPerception
    from av_pipeline.writers import write_foxglove_mcap

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    rng = np.random.default_rng(0)
    for scene in scenes()[:2]:
        camera = scene.rig.camera("front").model
        frames = []
        for k, mined in enumerate(scene.build()):
            t_ns = T0_NS + k * PERIOD_NS
            assert mined.timestamp_ns == t_ns
            frames.append(Frame(
                scene.log_id, t_ns, scene.rig, scene.pose(k),
                {"top": LidarSweep("top", t_ns, _sweep_points(scene.rows(k), rng))},
                {"front": CameraImage("front", t_ns, "jpeg", _jpeg(k, camera.width_px, camera.height_px), camera.width_px, camera.height_px)},
                OnboardPerception(mined.onboard.cuboids),
            ))  # fmt: skip
        path = folder / f"{scene.log_id}.mcap"
        write_foxglove_mcap(path, frames)
        uris[scene.log_id] = str(path)
    return uris
