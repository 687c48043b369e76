"""Side files written next to a synthetic log (JSON; schema in docs/synthetic.md).

- ``<log_id>.anomalies.json``: the answer key: every planted anomaly (kind, track id,
  frames, times, reason, details).
- ``<log_id>.labels.json``: per frame, the ground truth (3D boxes with track ids, point
  counts, visibility, velocity, per-camera projected / visible 2D boxes) and the onboard
  perception (3D cuboids and per-camera 2D boxes). MCAP logs carry the cuboids too; KITTI
  raw has no place for either, and no MCAP schema carries the 2D boxes.
- ``<log_id>.planned_path.json``: per frame, the planner's path and the driven path over
  the next 3 s in the frame's ``ego`` frame, and their largest distance.
- ``<log_id>.meta.json``: the configuration, the files written, frame times, the KITTI
  camera mapping.
- ``<log_id>.rig.yaml``: the sensor rig (:func:`calibration.formats.native_rig.write_rig`).

:func:`load_labels` and :func:`load_anomalies` read them back into product records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError
from av_pipeline.records import CameraBoxes, OnboardPerception
from av_pipeline.synthetic.ground_truth import FrameTruth
from av_pipeline.synthetic.perception import Anomaly

#: Schema version of the side files.
SIDECAR_VERSION = 1


def _r(values: Any, digits: int = 4) -> Any:
    """Round floats (and arrays of them) for compact, stable JSON; NaN becomes ``None``."""
    array = np.round(np.asarray(values, dtype=np.float64), digits)
    if np.isfinite(array).all():
        return array.tolist()
    if array.ndim == 0:
        return None
    return [_r(v, digits) for v in array]


def truth_to_json(truth: FrameTruth) -> dict[str, Any]:
    """One frame's ground truth as JSON-safe values."""
    c = truth.cuboids
    objects = []
    for k in range(len(c)):
        cameras = {}
        for name, visibility in truth.camera_visibility.items():
            pixels = int(truth.visible_pixels[name][k]) if name in truth.visible_pixels else 0
            if visibility[k] <= 0.0 and pixels == 0:
                continue
            entry = {"visibility": _r(visibility[k], 3), "projected_box_px": _r(truth.projected_boxes_px[name][k], 1)}
            if name in truth.visible_boxes_px:
                entry["visible_box_px"] = _r(truth.visible_boxes_px[name][k], 1)
                entry["visible_pixels"] = pixels
            cameras[name] = entry
        objects.append(
            {
                "track_id": int(c.track_ids[k]),
                "label": str(c.labels[k]),
                "center_m": _r(c.centers_m[k]),
                "size_m": _r(c.sizes_m[k]),
                "yaw_rad": _r(c.yaws_rad[k], 5),
                "num_lidar_points": None if c.num_lidar_points is None else int(c.num_lidar_points[k]),
                "lidar_hits": None if truth.lidar_hits is None else int(truth.lidar_hits[k]),
                "lidar_visibility": _r(truth.lidar_visibility[k], 3),
                "range_m": _r(truth.range_m[k], 3),
                "velocity_mps": _r(truth.velocities_mps[k], 3),
                "cameras": cameras,
            }
        )
    return {"frame": c.frame, "objects": objects}


def onboard_to_json(onboard: OnboardPerception) -> dict[str, Any]:
    """One frame's onboard perception as JSON-safe values."""
    c = onboard.cuboids
    objects = [
        {
            "track_id": int(c.track_ids[k]),
            "label": str(c.labels[k]),
            "score": _r(c.scores[k], 3),
            "center_m": _r(c.centers_m[k]),
            "size_m": _r(c.sizes_m[k]),
            "yaw_rad": _r(c.yaws_rad[k], 5),
        }
        for k in range(len(c))
    ]
    camera_boxes = {
        name: [
            {"track_id": int(b.track_ids[k]), "label": str(b.labels[k]), "score": _r(b.scores[k], 3), "box_px": _r(b.boxes_px[k], 1)}
            for k in range(len(b))
        ]
        for name, b in onboard.camera_boxes.items()
    }
    return {"frame": c.frame, "objects": objects, "camera_boxes": camera_boxes}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Compact, key-ordered JSON with a trailing newline (byte-stable for a given input)."""
    path.write_text(json.dumps(document, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")


def anomalies_document(log_id: str, seed: int, frames: int, anomalies: Iterable[Anomaly]) -> dict[str, Any]:
    """The answer-key document."""
    return {"version": SIDECAR_VERSION, "log_id": log_id, "seed": seed, "frames": frames, "anomalies": [a.to_dict() for a in anomalies]}


# ---------------------------------------------------------------------- reading
def _read(path: str | Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogFormatError(path, None, f"cannot read side file: {exc}") from exc
    if not isinstance(document, dict) or document.get("version") != SIDECAR_VERSION:
        raise LogFormatError(path, "version", f"expected a synthetic-log side file of version {SIDECAR_VERSION}")
    return document


def load_anomalies(path: str | Path) -> list[Anomaly]:
    """The anomalies of an ``<log_id>.anomalies.json`` file.

    Raises:
        LogFormatError: unreadable, or not a side file of this version.
    """
    return [Anomaly.from_dict(a) for a in _read(path)["anomalies"]]


def _cuboids(objects: list[dict[str, Any]], frame: str, with_counts: bool) -> Cuboids:
    if not objects:
        return Cuboids.empty(frame)
    counts = [o["num_lidar_points"] for o in objects] if with_counts and all(o.get("num_lidar_points") is not None for o in objects) else None
    return Cuboids.from_arrays(
        frame,
        [o["center_m"] for o in objects],
        [o["size_m"] for o in objects],
        [o["yaw_rad"] for o in objects],
        [o["label"] for o in objects],
        [o.get("score", 1.0) for o in objects],
        [o["track_id"] for o in objects],
        counts,
    )


def load_labels(path: str | Path) -> dict[int, tuple[Cuboids, OnboardPerception]]:
    """``timestamp_ns -> (ground-truth cuboids, onboard perception)`` from ``<log_id>.labels.json``.

    Values are rounded as stored (0.1 mm, 1e-5 rad, 0.1 px).

    Raises:
        LogFormatError: unreadable, or not a side file of this version.
    """
    out = {}
    for entry in _read(path)["frames"]:
        truth = entry["ground_truth"]
        onboard = entry["onboard"]
        boxes = {
            name: CameraBoxes(
                name,
                np.array([b["box_px"] for b in rows], dtype=np.float64).reshape(-1, 4),
                np.array([b["label"] for b in rows], dtype=str),
                np.array([b["score"] for b in rows], dtype=np.float32),
                np.array([b["track_id"] for b in rows], dtype=np.int64),
            )
            for name, rows in onboard["camera_boxes"].items()
        }
        out[int(entry["timestamp_ns"])] = (
            _cuboids(truth["objects"], truth["frame"], True),
            OnboardPerception(_cuboids(onboard["objects"], onboard["frame"], False), boxes),
        )
    return out
