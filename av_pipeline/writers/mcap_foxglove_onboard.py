"""The onboard planned path and 2D camera boxes in the foxglove MCAP flavour.

Foxglove has no schema for a path with a time per pose (``foxglove.PosesInFrame`` has one
timestamp for all poses) nor for labelled 2D detections (``foxglove.ImageAnnotations`` only
draws), so each is written twice:

- **data**, read back by the MCAP reader: a JSON channel (MCAP ``json`` message encoding,
  ``jsonschema`` schema) with the schemas of :mod:`av_pipeline.readers.mcap_json_decode`:
  ``av_pipeline.PlannedPath`` on ``/planning/path`` (exact ns time per pose, float64 poses)
  and ``av_pipeline.CameraDetections2D`` on ``/perception/camera/<name>/objects`` (float64
  pixel boxes, labels, float32 scores, int64 track ids);
- **display**, for Foxglove's panels (not read back): ``foxglove.PosesInFrame`` on
  ``/planning/path/poses`` (3D panel: the path as poses in ``base_link``, stamped at the frame
  time) and ``foxglove.ImageAnnotations`` on ``/perception/camera/<name>/annotations`` (Image
  panel: one outlined box per detection and its ``"<class> #<track id> <score>"`` text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from av_pipeline.readers.mcap_json_decode import (
    CAMERA_DETECTIONS_JSON_SCHEMA,
    CAMERA_DETECTIONS_SCHEMA_NAME,
    PLANNED_PATH_JSON_SCHEMA,
    PLANNED_PATH_SCHEMA_NAME,
    time_json,
)
from av_pipeline.writers.publications import ImageBoxes, Path, split_ns, yaw_to_xyzw

#: Outline / text colour (RGBA) of onboard 2D boxes in the Image panel (the onboard cuboids' orange).
_BOX_COLOR = (1.0, 0.6, 0.0, 1.0)
_BOX_THICKNESS_PX = 2.0
_TEXT_FONT_PX = 12.0
#: ``foxglove.PointsAnnotation.Type.LINE_LOOP``.
_LINE_LOOP = 2


@dataclass(frozen=True)
class JsonMessage:
    """A message for a JSON channel: its schema (name and JSON Schema) and the document."""

    schema_name: str
    schema: dict[str, Any]
    document: dict[str, Any]

    @property
    def schema_data(self) -> bytes:
        """The JSON Schema as stored in the MCAP schema record (``jsonschema`` encoding)."""
        return json.dumps(self.schema, separators=(",", ":")).encode("utf-8")

    @property
    def data(self) -> bytes:
        """The message bytes: compact JSON, keys in a fixed order (byte-stable)."""
        return json.dumps(self.document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def planned_path_json(path: Path) -> JsonMessage:
    """``av_pipeline.PlannedPath``: the path with one exact time per pose (float64 values)."""
    planned = path.path
    poses = [
        {"timestamp": time_json(int(t)), "x_m": float(pose[0]), "y_m": float(pose[1]), "yaw_rad": float(pose[2])}
        for t, pose in zip(planned.timestamps_ns, planned.poses_ego)
    ]
    document = {"timestamp": time_json(path.stamp_ns), "frame_id": path.frame_id, "poses": poses}
    return JsonMessage(PLANNED_PATH_SCHEMA_NAME, PLANNED_PATH_JSON_SCHEMA, document)


def poses_in_frame(path: Path) -> Any:
    """``foxglove.PosesInFrame`` of the path for the 3D panel (the per-pose times do not fit: display only)."""
    from foxglove_schemas_protobuf.PosesInFrame_pb2 import PosesInFrame

    planned = path.path
    msg = PosesInFrame(frame_id=path.frame_id)
    msg.timestamp.seconds, msg.timestamp.nanos = split_ns(path.stamp_ns)
    for pose, q in zip(planned.poses_ego, yaw_to_xyzw(planned.poses_ego[:, 2])):
        entry = msg.poses.add()
        entry.position.x, entry.position.y, entry.position.z = float(pose[0]), float(pose[1]), 0.0
        entry.orientation.x, entry.orientation.y, entry.orientation.z, entry.orientation.w = (float(v) for v in q)
    return msg


def camera_detections_json(camera: str, image_boxes: ImageBoxes) -> JsonMessage:
    """``av_pipeline.CameraDetections2D``: one camera's boxes (float64 px, float32 scores as exact decimals)."""
    b = image_boxes.boxes
    detections = [
        {
            "x_min_px": float(b.boxes_px[i, 0]),
            "y_min_px": float(b.boxes_px[i, 1]),
            "x_max_px": float(b.boxes_px[i, 2]),
            "y_max_px": float(b.boxes_px[i, 3]),
            "label": str(b.labels[i]),
            "score": float(b.scores[i]),
            "track_id": int(b.track_ids[i]),
        }
        for i in range(len(b))
    ]
    document = {"timestamp": time_json(image_boxes.stamp_ns), "frame_id": image_boxes.frame_id, "camera": camera, "detections": detections}
    return JsonMessage(CAMERA_DETECTIONS_SCHEMA_NAME, CAMERA_DETECTIONS_JSON_SCHEMA, document)


def image_annotations(image_boxes: ImageBoxes, label_of: Any) -> Any:
    """``foxglove.ImageAnnotations`` drawing one camera's boxes (display only).

    Args:
        label_of: ``(label, track_id, score) -> text`` shown at each box's top-left corner.
    """
    from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations

    b = image_boxes.boxes
    sec, nanos = split_ns(image_boxes.stamp_ns)
    msg = ImageAnnotations()
    for i in range(len(b)):
        x_min, y_min, x_max, y_max = (float(v) for v in b.boxes_px[i])
        outline = msg.points.add(type=_LINE_LOOP, thickness=_BOX_THICKNESS_PX)
        outline.timestamp.seconds, outline.timestamp.nanos = sec, nanos
        for x, y in ((x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max)):
            outline.points.add(x=x, y=y)
        outline.outline_color.r, outline.outline_color.g, outline.outline_color.b, outline.outline_color.a = _BOX_COLOR
        text = msg.texts.add(text=label_of(str(b.labels[i]), int(b.track_ids[i]), float(b.scores[i])), font_size=_TEXT_FONT_PX)
        text.timestamp.seconds, text.timestamp.nanos = sec, nanos
        text.position.x, text.position.y = x_min, y_min
        text.text_color.r, text.text_color.g, text.text_color.b, text.text_color.a = _BOX_COLOR
        text.background_color.a = 0.6
    return msg


__all__ = ["JsonMessage", "camera_detections_json", "image_annotations", "planned_path_json", "poses_in_frame"]
