"""ASAM OpenLABEL 1.0 JSON: shadow and onboard cuboids of a case (or a whole log), with the
sensors, poses and the mining events.

Layout (field meanings in docs/datasets.md):

- ``metadata``: ``schema_version`` ``"1.0.0"``, ``annotator`` (product and version),
  ``comment``, ``name`` (case id or log id), ``tagged_file`` (the source log) and an
  ``av_pipeline`` object with the case's id, rank, score, triggers and key frames.
- ``coordinate_systems``: ``world`` (``scene_cs``, the log's world frame) with child
  ``ego`` (``local_cs``: x forward, y left, z up) whose children are the sensors
  (``sensor_cs``; cameras in their optical frame x right, y down, z forward).
  ``pose_wrt_parent`` is ``matrix4x4``, row-major, mapping child coordinates to parent
  coordinates (``X_parent = M X_child``, the convention of the VCD toolkit's
  ``get_transform``), i.e. ``ego_SE3_sensor``. Without any ego pose in the log there is no
  ``world`` and ``ego`` is the root.
- ``streams``: one per LiDAR (``lidar``) and camera (``camera``, with
  ``stream_properties.intrinsics_pinhole``: ``camera_matrix`` 3x4 ``[K | 0]``,
  ``distortion_coeffs`` in OpenCV order, at least 5, and ``width_px``, ``height_px``;
  fisheye cameras get ``intrinsics_custom`` with ``model: "opencv_fisheye"``).
- ``frames``: keyed by the frame's index in its log; ``frame_properties.timestamp`` is the
  frame time in seconds as exact decimal text (``"1715680800.100000000"``),
  ``timestamp_ns`` the same as an integer, ``streams.<sensor>.stream_properties.sync``
  each sensor's own capture time, ``transforms.ego_to_world`` the ego pose
  (``transform_src_to_dst.matrix4x4`` = ``world_SE3_ego``). A sensor whose extrinsics or
  intrinsics differ from the first frame's gets a per-frame ``<sensor>_to_ego`` transform or
  ``stream_properties`` entry.
- ``objects``: one per track and source (an untracked box is an object of its own); ``type``
  is the track's most frequent class; per frame ``object_data.cuboid`` named ``box`` in
  ``ego`` with ``val = [x, y, z, qx, qy, qz, qw, sx, sy, sz]`` (centre, the rotation about
  +z as a quaternion, length, width, height) and attributes ``source`` (text ``shadow`` |
  ``onboard``), ``class`` (text), ``score`` (num), ``track_id`` (num, -1 untracked),
  ``num_lidar_points`` (num, when counted), ``source_class`` (text, when the dataset's own
  name differs). ``object_data_pointers`` index them.
- ``actions``: one per mining event, ``type`` = trigger, ``frame_intervals`` = the event's
  frames, ``action_data`` texts ``trigger``, ``reason``, ``label`` and nums ``score``,
  ``peak_frame``, ``range_m``; ``relations`` of type ``involves`` link an action to the
  tracked objects its event names.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from av_pipeline import __version__
from av_pipeline.boxes import Cuboids
from av_pipeline.export.records import BOX_SOURCES, ExportError, IndexedFrame, atomic_write_text
from calibration import SE3
from calibration.camera import CameraModel

SCHEMA_VERSION = "1.0.0"
WORLD_CS, EGO_CS = "world", "ego"
#: Name of every cuboid (the object data pointer key).
CUBOID_NAME = "box"


def time_text(timestamp_ns: int) -> str:
    """Integer ns -> exact decimal seconds, ``1715680800100000000`` -> ``"1715680800.100000000"``."""
    seconds, nanos = divmod(int(timestamp_ns), 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def cuboid_val(center_m: Sequence[float], size_m: Sequence[float], yaw_rad: float) -> list[float]:
    """OpenLABEL's 10-value cuboid ``[x, y, z, qx, qy, qz, qw, sx, sy, sz]`` of one product box.

    >>> cuboid_val([10.0, 2.0, 0.8], [4.0, 1.8, 1.6], np.pi / 2)[3:7]   # doctest: +ELLIPSIS
    [0.0, 0.0, 0.7071067811865..., 0.7071067811865...]
    """
    half = float(yaw_rad) / 2.0
    return [float(v) for v in center_m] + [0.0, 0.0, float(np.sin(half)), float(np.cos(half))] + [float(v) for v in size_m]


def matrix4x4(pose: SE3) -> list[float]:
    """Row-major flattened homogeneous matrix of ``pose`` (``X_dst = M X_src``)."""
    return [float(v) for v in pose.as_matrix().ravel()]


def _runs(indices: Iterable[int]) -> list[dict[str, int]]:
    """Frame intervals covering sorted distinct ``indices`` (consecutive numbers join)."""
    runs: list[dict[str, int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1]["frame_end"] == i - 1:
            runs[-1]["frame_end"] = i
        else:
            runs.append({"frame_start": i, "frame_end": i})
    return runs


def camera_stream_properties(model: CameraModel) -> dict[str, Any]:
    """``stream_properties`` of a camera: ``intrinsics_pinhole`` (pinhole, radtan) or ``intrinsics_custom`` (fisheye)."""
    if model.distortion_model == "fisheye":
        return {"intrinsics_custom": {
            "model": "opencv_fisheye", "fx_px": model.fx_px, "fy_px": model.fy_px, "cx_px": model.cx_px, "cy_px": model.cy_px,
            "distortion_coeffs": list(model.distortion), "width_px": model.width_px, "height_px": model.height_px,
        }}  # fmt: skip
    coeffs = list(model.distortion) + [0.0] * max(0, 5 - len(model.distortion))
    K = model.K
    return {"intrinsics_pinhole": {
        "camera_matrix": [float(v) for v in np.hstack([K, np.zeros((3, 1))]).ravel()],
        "distortion_coeffs": [float(c) for c in coeffs], "width_px": model.width_px, "height_px": model.height_px,
    }}  # fmt: skip


class OpenLabelBuilder:
    """Build one OpenLABEL document frame by frame (frames are not kept, only their labels).

    Args:
        name: the document's name (case id or log id).
        source_uri: the log the frames come from (``metadata.tagged_file``).
        comment: free text (``metadata.comment``).
        sources: box sources to include, any of ``("shadow", "onboard")``.
        case_metadata: JSON-safe values for ``metadata.av_pipeline``.
    """

    def __init__(self, name: str, source_uri: str, *, comment: str = "", sources: Sequence[str] = BOX_SOURCES,
                 case_metadata: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.name, self.source_uri, self.comment = name, source_uri, comment
        self.sources = tuple(s for s in BOX_SOURCES if s in sources)
        self.case_metadata = dict(case_metadata or {})
        self._frames: dict[int, dict[str, Any]] = {}
        self._objects: dict[str, dict[str, Any]] = {}
        self._object_frames: dict[str, list[int]] = {}
        self._object_labels: dict[str, Counter] = {}
        self._object_attributes: dict[str, dict[str, str]] = {}
        self._track_uid: dict[tuple[str, int], str] = {}
        self._actions: dict[str, dict[str, Any]] = {}
        self._relations: dict[str, dict[str, Any]] = {}
        self._rig: tuple[dict[str, SE3], dict[str, CameraModel]] | None = None
        self._posed: list[bool] = []
        self.num_boxes = {source: 0 for source in self.sources}

    # ------------------------------------------------------------------ frames
    def add_frame(self, item: IndexedFrame) -> None:
        """Add one frame's sensors, pose and the cuboids of :attr:`sources`.

        Raises:
            ExportError: the frame index was added before, the ego pose is missing while
                other frames have one (or the other way round), or a box value is not finite.
        """
        frame = item.frame
        if item.index in self._frames:
            raise ExportError(item.where, "index", f"frame {item.index} was added twice")
        self._posed.append(frame.world_SE3_ego is not None)
        if len(set(self._posed)) > 1:
            raise ExportError(item.where, "world_SE3_ego", "some frames of the document have an ego pose and others none; "
                              "OpenLABEL's ego_to_world transform needs one for every frame (or for none)")  # fmt: skip
        sensors = {**dict(frame.rig.lidars), **{n: c.ego_SE3_camera for n, c in frame.rig.cameras.items()}}
        clashes = sorted((set(frame.rig.lidars) & set(frame.rig.cameras)) | (set(sensors) & {EGO_CS, WORLD_CS}))
        if clashes:
            raise ExportError(item.where, "rig", f"sensor names {clashes} clash (a camera and a LiDAR, or {EGO_CS!r} / {WORLD_CS!r})")
        models = {n: c.model for n, c in frame.rig.cameras.items()}
        if self._rig is None:
            self._rig = (sensors, models)
        properties: dict[str, Any] = {"timestamp": time_text(frame.timestamp_ns), "timestamp_ns": frame.timestamp_ns}
        streams: dict[str, Any] = {}
        for name, sweep in frame.lidars.items():
            streams[name] = {"stream_properties": {"sync": {"timestamp": time_text(sweep.timestamp_ns)}}}
        for name, image in frame.images.items():
            streams[name] = {"stream_properties": {"sync": {"timestamp": time_text(image.timestamp_ns)}}}
        static_sensors, static_models = self._rig
        for name, model in models.items():
            if name in static_models and model != static_models[name]:
                streams.setdefault(name, {"stream_properties": {}})["stream_properties"].update(camera_stream_properties(model))
        transforms: dict[str, Any] = {}
        if frame.world_SE3_ego is not None:
            transforms[f"{EGO_CS}_to_{WORLD_CS}"] = {"src": EGO_CS, "dst": WORLD_CS, "transform_src_to_dst": {"matrix4x4": matrix4x4(frame.world_SE3_ego)}}
        for name, pose in sensors.items():
            if name not in static_sensors:
                raise ExportError(item.where, f"rig {name}", f"sensor not in the first frame's rig {sorted(static_sensors)}")
            if not pose.allclose(static_sensors[name], atol_rad=0.0, atol_m=0.0):
                transforms[f"{name}_to_{EGO_CS}"] = {"src": name, "dst": EGO_CS, "transform_src_to_dst": {"matrix4x4": matrix4x4(pose)}}
        if streams:
            properties["streams"] = streams
        if transforms:
            properties["transforms"] = transforms
        entry: dict[str, Any] = {"frame_properties": properties}
        objects: dict[str, Any] = {}
        for source in self.sources:
            boxes = item.boxes(source)
            if boxes is not None:
                self._add_boxes(item, source, boxes, objects)
        if objects:
            entry["objects"] = objects
        self._frames[item.index] = entry

    def _add_boxes(self, item: IndexedFrame, source: str, boxes: Cuboids, objects: dict[str, Any]) -> None:
        used: set[str] = set()
        for i in range(len(boxes)):
            values = np.concatenate([boxes.centers_m[i], boxes.sizes_m[i], [boxes.yaws_rad[i], boxes.scores[i]]])
            if not np.isfinite(values).all():
                raise ExportError(item.where, f"{source} box {i}", f"expected finite centre, size, yaw and score, got {values.tolist()}")
            track = int(boxes.track_ids[i])
            uid = self._track_uid.get((source, track)) if track >= 0 else None
            if uid is None or uid in used:  # untracked, or a second box of one track in this frame: an object of its own
                uid = str(len(self._objects))
                label = str(boxes.labels[i])
                self._objects[uid] = {"name": f"{source} {label}" + (f" #{track}" if track >= 0 else f" (frame {item.index}, box {i})")}
                self._object_frames[uid], self._object_labels[uid], self._object_attributes[uid] = [], Counter(), {}
                if track >= 0:
                    self._track_uid.setdefault((source, track), uid)
            used.add(uid)
            texts = [{"name": "source", "val": source}, {"name": "class", "val": str(boxes.labels[i])}]
            if boxes.source_labels is not None and str(boxes.source_labels[i]) != str(boxes.labels[i]):
                texts.append({"name": "source_class", "val": str(boxes.source_labels[i])})
            nums = [{"name": "score", "val": float(boxes.scores[i])}, {"name": "track_id", "val": track}]
            if boxes.num_lidar_points is not None:
                nums.append({"name": "num_lidar_points", "val": int(boxes.num_lidar_points[i])})
            cuboid = {"name": CUBOID_NAME, "val": cuboid_val(boxes.centers_m[i], boxes.sizes_m[i], boxes.yaws_rad[i]),
                      "coordinate_system": EGO_CS, "attributes": {"text": texts, "num": nums}}  # fmt: skip
            objects[uid] = {"object_data": {"cuboid": [cuboid]}}
            self._object_frames[uid].append(item.index)
            self._object_labels[uid][str(boxes.labels[i])] += 1
            self._object_attributes[uid].update({t["name"]: "text" for t in texts} | {n["name"]: "num" for n in nums})
            self.num_boxes[source] += 1

    # ------------------------------------------------------------------ events
    def add_events(self, events: Iterable[Any]) -> None:
        """Add mining events (:class:`~av_pipeline.mining.records.Event`) as actions, and
        ``involves`` relations to the tracked objects they name."""
        for event in events:
            uid = str(len(self._actions))
            self._actions[uid] = {
                "name": f"{event.trigger} {uid}", "type": event.trigger,
                "frame_intervals": [{"frame_start": int(event.first_frame), "frame_end": int(event.last_frame)}],
                "action_data": {
                    "text": [{"name": "trigger", "val": event.trigger}, {"name": "reason", "val": event.reason}, {"name": "label", "val": event.label}],
                    "num": [{"name": "score", "val": float(event.score)}, {"name": "peak_frame", "val": int(event.peak_frame)},
                            {"name": "range_m", "val": float(event.range_m)}],
                },
            }  # fmt: skip
            involved = []
            for ref in event.objects:
                object_uid = self._track_uid.get((ref.source, int(ref.track_id))) if ref.track_id >= 0 else None
                if object_uid is not None and object_uid not in involved:
                    involved.append(object_uid)
            if involved:
                self._relations[str(len(self._relations))] = {
                    "name": f"{event.trigger} {uid} involves", "type": "involves",
                    "rdf_subjects": [{"type": "action", "uid": uid}], "rdf_objects": [{"type": "object", "uid": o} for o in involved],
                }  # fmt: skip

    # ------------------------------------------------------------------ document
    def document(self) -> dict[str, Any]:
        """The ``{"openlabel": {...}}`` document.

        Raises:
            ExportError: no frame was added.
        """
        if self._rig is None:
            raise ExportError(self.name, "frames", "no frame to export")
        sensors, models = self._rig
        posed = all(self._posed)
        frames = {str(i): dict(self._frames[i]) for i in sorted(self._frames)}
        for uid, action in self._actions.items():
            for run in action["frame_intervals"]:
                for i in range(run["frame_start"], run["frame_end"] + 1):
                    if str(i) in frames:
                        frames[str(i)].setdefault("actions", {})[uid] = {}
        coordinate_systems: dict[str, Any] = {}
        if posed:
            coordinate_systems[WORLD_CS] = {"type": "scene_cs", "parent": "", "children": [EGO_CS]}
        coordinate_systems[EGO_CS] = {"type": "local_cs", "parent": WORLD_CS if posed else "", "children": list(sensors)}
        for name, pose in sensors.items():
            coordinate_systems[name] = {"type": "sensor_cs", "parent": EGO_CS, "children": [], "pose_wrt_parent": {"matrix4x4": matrix4x4(pose)}}
        streams: dict[str, Any] = {}
        for name in sensors:
            if name in models:
                streams[name] = {"type": "camera", "description": f"camera {name}", "stream_properties": camera_stream_properties(models[name])}
            else:
                streams[name] = {"type": "lidar", "description": f"LiDAR {name} (points in its sensor frame)"}
        objects = {}
        for uid, obj in self._objects.items():
            runs = _runs(self._object_frames[uid])
            objects[uid] = {
                **obj, "type": self._object_labels[uid].most_common(1)[0][0], "coordinate_system": EGO_CS, "frame_intervals": runs,
                "object_data_pointers": {CUBOID_NAME: {"type": "cuboid", "frame_intervals": runs, "attribute_pointers": self._object_attributes[uid]}},
            }  # fmt: skip
        metadata = {
            "schema_version": SCHEMA_VERSION, "annotator": f"av-pipeline {__version__}", "name": self.name,
            "comment": self.comment, "tagged_file": self.source_uri, "file_version": "1",
            "av_pipeline": {**self.case_metadata, "sources": list(self.sources), "num_boxes": dict(self.num_boxes)},
        }  # fmt: skip
        root: dict[str, Any] = {
            "metadata": metadata, "coordinate_systems": coordinate_systems, "streams": streams,
            "frame_intervals": _runs(self._frames), "frames": frames, "objects": objects,
        }  # fmt: skip
        if self._actions:
            root["actions"] = self._actions
        if self._relations:
            root["relations"] = self._relations
        return {"openlabel": root}


def write_openlabel(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as JSON (written under a temporary name, then renamed).

    Raises:
        ExportError: a value JSON cannot hold (NaN, infinity).
    """
    path = Path(path)
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)  # compact: the C encoder (indent makes it pure Python)
    except ValueError as exc:
        raise ExportError(str(path), "document", f"not representable as JSON: {exc}") from exc
    return atomic_write_text(path, text + "\n")


def openlabel_schema() -> dict[str, Any]:
    """The ASAM OpenLABEL 1.0.0 JSON Schema (draft-07), as shipped by ``openlabel-checker``
    (``openlabel_checker/schema_data/openlabel_json_schema-v1.0.0.json``, fetched unmodified
    from ``https://openlabel.asam.net/V1-0-0/schema/openlabel_json_schema.json``).

    Raises:
        ModuleNotFoundError: ``openlabel-checker`` is not installed (``pip install "av-pipeline[export]"``).
    """
    from importlib import resources

    text = resources.files("openlabel_checker.schema_data").joinpath("openlabel_json_schema-v1.0.0.json").read_text(encoding="utf-8")
    return json.loads(text)


def check_openlabel(path: str | Path) -> list[str]:
    """Problems ``openlabel-checker`` finds in a file (schema and structural checks), one line
    each: ``"error check_json_schema: ... [path]"``; warnings count too. Empty when clean."""
    from openlabel_checker import check_file

    report = check_file(str(path))
    return [f"{i.severity.value} {i.checker_id}: {i.message}" + (f" [{i.path}]" if i.path else "") for i in report.issues]


__all__ = [
    "CUBOID_NAME",
    "OpenLabelBuilder",
    "SCHEMA_VERSION",
    "camera_stream_properties",
    "check_openlabel",
    "cuboid_val",
    "matrix4x4",
    "openlabel_schema",
    "time_text",
    "write_openlabel",
]
