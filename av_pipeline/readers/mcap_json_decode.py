"""JSON message -> sample decoders (MCAP channels with ``json`` message encoding and a
``jsonschema`` schema), and the JSON Schemas of the two onboard channels the foxglove writer adds.

Foxglove has no schema for a path with a time per pose, nor for labelled 2D detections, so
the foxglove flavour carries them as JSON (the writer also publishes ``foxglove.PosesInFrame``
and ``foxglove.ImageAnnotations`` next to them for display; the reader does not read those).

- ``av_pipeline.PlannedPath`` (:data:`PLANNED_PATH_JSON_SCHEMA`): ``timestamp`` (the frame
  time), ``frame_id`` (the frame of the poses), ``poses``: one
  ``{timestamp, x_m, y_m, yaw_rad}`` per pose.
- ``av_pipeline.CameraDetections2D`` (:data:`CAMERA_DETECTIONS_JSON_SCHEMA`): ``timestamp``,
  ``frame_id`` (the camera's frame), ``camera``, ``detections``: one
  ``{x_min_px, y_min_px, x_max_px, y_max_px, label, score, track_id}`` per box.

Times are foxglove's JSON time objects ``{"sec", "nsec"}`` (exact in JavaScript too, unlike
19-digit integers); numbers are written with Python's shortest round-trip ``repr``, so float64
values (poses, boxes) and float32 scores read back bit for bit. Bad documents are
:class:`~av_pipeline.errors.LogFormatError` naming the topic and the field.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.readers.mcap_samples import INT64_MAX, INT64_MIN, CameraBoxesSample, PathSample, normalize_frame_id
from av_pipeline.records import CameraBoxes
from calibration.errors import AVPipelineError

PLANNED_PATH_SCHEMA_NAME = "av_pipeline.PlannedPath"
CAMERA_DETECTIONS_SCHEMA_NAME = "av_pipeline.CameraDetections2D"

_TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "time",
    "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    },
    "required": ["sec", "nsec"],
    "additionalProperties": False,
}

#: JSON Schema of ``av_pipeline.PlannedPath`` messages.
PLANNED_PATH_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": PLANNED_PATH_SCHEMA_NAME,
    "description": "The path the vehicle's planner intended at one frame: timed planar poses of the ego origin",
    "type": "object",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Time of the frame the path belongs to"},
        "frame_id": {"type": "string", "description": "Frame of the poses (the ego frame at that time)"},
        "poses": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "timestamp": {**_TIME_SCHEMA, "description": "When the ego should be at this pose"},
                    "x_m": {"type": "number", "description": "Forward, metres"},
                    "y_m": {"type": "number", "description": "Left, metres"},
                    "yaw_rad": {"type": "number", "description": "Heading about +z from +x, radians"},
                },
                "required": ["timestamp", "x_m", "y_m", "yaw_rad"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["timestamp", "frame_id", "poses"],
    "additionalProperties": False,
}

#: JSON Schema of ``av_pipeline.CameraDetections2D`` messages.
CAMERA_DETECTIONS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": CAMERA_DETECTIONS_SCHEMA_NAME,
    "description": "2D boxes the vehicle's perception reported in one camera image",
    "type": "object",
    "properties": {
        "timestamp": {**_TIME_SCHEMA, "description": "Time of the frame"},
        "frame_id": {"type": "string", "description": "The camera's frame"},
        "camera": {"type": "string", "description": "Camera name"},
        "detections": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "x_min_px": {"type": "number"},
                    "y_min_px": {"type": "number"},
                    "x_max_px": {"type": "number"},
                    "y_max_px": {"type": "number"},
                    "label": {"type": "string", "description": "Class name"},
                    "score": {"type": "number", "description": "Confidence"},
                    "track_id": {"type": "integer", "description": "Track id, -1 when unknown"},
                },
                "required": ["x_min_px", "y_min_px", "x_max_px", "y_max_px", "label", "score", "track_id"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["timestamp", "frame_id", "camera", "detections"],
    "additionalProperties": False,
}


def time_json(time_ns: int) -> dict[str, int]:
    """``{"sec", "nsec"}`` of a non-negative integer time."""
    sec, nsec = divmod(int(time_ns), 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def _object(value: Any, path: str, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LogFormatError(path, field, f"expected a JSON object, got {short_repr(value)}")
    return value


def _list(document: dict[str, Any], key: str, path: str, field: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise LogFormatError(path, field, f"expected a JSON array, got {short_repr(value)}")
    return value


def _number(document: dict[str, Any], key: str, path: str, field: str) -> float:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(float(value)):
        raise LogFormatError(path, field, f"expected a finite number, got {short_repr(value)}")
    return float(value)


def _integer(document: dict[str, Any], key: str, path: str, field: str, lo: int, hi: int) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise LogFormatError(path, field, f"expected an integer in [{lo}, {hi}], got {short_repr(value)}")
    return value


def _string(document: dict[str, Any], key: str, path: str, field: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise LogFormatError(path, field, f"expected a string, got {short_repr(value)}")
    return value


def _time_ns(document: dict[str, Any], key: str, path: str, field: str) -> int:
    stamp = _object(document.get(key), path, field)
    sec = _integer(stamp, "sec", path, f"{field}.sec", 0, INT64_MAX // 1_000_000_000 - 1)
    return sec * 1_000_000_000 + _integer(stamp, "nsec", path, f"{field}.nsec", 0, 999_999_999)


def decode_planned_path_json(document: Any, path: str, topic: str) -> PathSample:
    """``av_pipeline.PlannedPath`` -> :class:`PathSample` (z = 0; values as written)."""
    document = _object(document, path, topic)
    stamp = _time_ns(document, "timestamp", path, f"{topic} timestamp")
    frame_id = normalize_frame_id(_string(document, "frame_id", path, f"{topic} frame_id"))
    times, positions, yaws = [], [], []
    for i, pose in enumerate(_list(document, "poses", path, f"{topic} poses")):
        where = f"{topic} poses[{i}]"
        pose = _object(pose, path, where)
        times.append(_time_ns(pose, "timestamp", path, f"{where}.timestamp"))
        positions.append([_number(pose, "x_m", path, f"{where}.x_m"), _number(pose, "y_m", path, f"{where}.y_m"), 0.0])
        yaws.append(_number(pose, "yaw_rad", path, f"{where}.yaw_rad"))
    return PathSample(
        frame_id, stamp, np.asarray(times, dtype=np.int64), np.asarray(positions, dtype=np.float64).reshape(-1, 3), np.asarray(yaws, dtype=np.float64)
    )


def decode_camera_detections_json(document: Any, path: str, topic: str) -> CameraBoxesSample:
    """``av_pipeline.CameraDetections2D`` -> :class:`CameraBoxesSample` (scores as float32)."""
    document = _object(document, path, topic)
    stamp = _time_ns(document, "timestamp", path, f"{topic} timestamp")
    frame_id = normalize_frame_id(_string(document, "frame_id", path, f"{topic} frame_id"))
    camera = _string(document, "camera", path, f"{topic} camera")
    boxes, labels, scores, tracks = [], [], [], []
    for i, detection in enumerate(_list(document, "detections", path, f"{topic} detections")):
        where = f"{topic} detections[{i}]"
        detection = _object(detection, path, where)
        boxes.append([_number(detection, key, path, f"{where}.{key}") for key in ("x_min_px", "y_min_px", "x_max_px", "y_max_px")])
        labels.append(_string(detection, "label", path, f"{where}.label"))
        scores.append(_number(detection, "score", path, f"{where}.score"))
        tracks.append(_integer(detection, "track_id", path, f"{where}.track_id", INT64_MIN, INT64_MAX))
    try:
        camera_boxes = CameraBoxes(camera, np.reshape(boxes, (-1, 4)), labels, scores, tracks)
    except (AVPipelineError, ValueError) as exc:
        raise LogFormatError(path, f"{topic} detections", str(exc)) from exc
    return CameraBoxesSample(frame_id, stamp, camera_boxes)


#: JSON schema name -> decoder ``(parsed JSON document, path, topic) -> sample``.
JSON_DECODERS: dict[str, Callable[[Any, str, str], Any]] = {
    PLANNED_PATH_SCHEMA_NAME: decode_planned_path_json,
    CAMERA_DETECTIONS_SCHEMA_NAME: decode_camera_detections_json,
}

__all__ = [
    "CAMERA_DETECTIONS_JSON_SCHEMA",
    "CAMERA_DETECTIONS_SCHEMA_NAME",
    "JSON_DECODERS",
    "PLANNED_PATH_JSON_SCHEMA",
    "PLANNED_PATH_SCHEMA_NAME",
    "decode_camera_detections_json",
    "decode_planned_path_json",
    "time_json",
]
