"""av-pipeline's own rig file: named cameras and LiDARs with their extrinsics to ``ego``,
in YAML or JSON (the same schema)::

    format: av-pipeline-rig
    version: 1
    description: test vehicle 7, March 2024 calibration   # optional
    ego_frame: base_link                                  # optional name of the ego frame
    cameras:
      front_wide:
        frame: front_wide_optical                         # optional frame name
        intrinsics: {width_px: 1920, height_px: 1200, fx_px: 2152.8, fy_px: 2155.5, cx_px: 971.3, cy_px: 605.9}
        distortion: {model: radtan, coefficients: [-0.1192, 0.162, 0.00073985, 0.0014]}
        ego_SE3_camera: {translation_m: [1.7, 0.0, 1.5], rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}
    lidars:
      top:
        frame: lidar_top                                  # optional
        ego_SE3_lidar: {translation_m: [0.9, 0.0, 1.8], rotation_wxyz: [1.0, 0.0, 0.0, 0.0]}

Cameras are x right, y down, z forward; ``ego`` x forward, y left, z up.
``distortion.model`` is ``pinhole`` (``coefficients: []``), ``radtan`` (OpenCV
``k1, k2, p1, p2[, k3[, k4, k5, k6]]``) or ``fisheye`` (``k1..k4``). Unknown keys are errors
(a typo must not silently drop a value). Numbers are written in shortest round-trip form.

>>> from calibration.camera import CameraModel
>>> from calibration.rig import RigCamera, SensorRig
>>> from calibration.se3 import SE3
>>> rig = SensorRig(
...     cameras={"front": RigCamera(CameraModel(1920, 1080, 1000.0, 1000.0, 960.0, 540.0),
...                                 SE3.from_wxyz([0.5, -0.5, 0.5, -0.5], [1.7, 0.0, 1.5]))},
...     lidars={"top": SE3.from_yaw_translation(0.0, [0.9, 0.0, 1.8])})
>>> text = format_rig(rig, fmt="json", description="demo")
>>> back = parse_rig(text, fmt="json")
>>> back.description, sorted(back.rig.cameras), back.rig.lidars["top"].translation.tolist()
('demo', ['front'], [0.9, 0.0, 1.8])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

from calibration.camera import DISTORTION_SIZES, CameraModel
from calibration.errors import CalibrationError, CalibrationFileError, short_repr
from calibration.formats._common import (
    PathLike,
    Unrepresented,
    load_json,
    load_yaml,
    parse_int,
    parse_number,
    parse_number_list,
    parse_str,
    read_text,
    require_key,
    require_mapping,
    se3_from_wxyz,
)
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

FORMAT_NAME = "av-pipeline-rig"
FORMAT_VERSION = 1
#: Largest accepted ``| |q| - 1 |`` (hand-written quaternions with 4-5 digits pass).
QUATERNION_TOL = 1e-3

RigFileFormat = Literal["yaml", "json"]

_TOP_KEYS = ("format", "version", "description", "ego_frame", "cameras", "lidars")
_CAMERA_KEYS = ("frame", "intrinsics", "distortion", "ego_SE3_camera")
_LIDAR_KEYS = ("frame", "ego_SE3_lidar")
_INTRINSIC_KEYS = ("width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px")
_POSE_KEYS = ("translation_m", "rotation_wxyz")


@dataclass(frozen=True)
class NativeRig:
    """A rig file's contents.

    Attributes:
        rig: the cameras and LiDARs.
        description: free text, or ``None``.
        ego_frame: the name of the ego frame (``"base_link"``), or ``None``.
        frame_names: sensor name -> frame name, for sensors that gave one.
        unrepresented: always empty (the rig file holds nothing a rig cannot); kept so all
            readers answer the same question.
    """

    rig: SensorRig
    description: str | None = None
    ego_frame: str | None = None
    frame_names: Mapping[str, str] = field(default_factory=dict)
    unrepresented: tuple[Unrepresented, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.frame_names) - set(self.rig.cameras) - set(self.rig.lidars))
        if unknown:
            raise CalibrationError(f"frame_names: expected names of the rig's sensors, got unknown {unknown}")
        object.__setattr__(self, "frame_names", MappingProxyType(dict(self.frame_names)))


def read_rig(path: PathLike) -> NativeRig:
    """Read a rig file; ``.json`` is parsed as JSON, anything else as YAML.

    Raises:
        CalibrationFileError: a wrong ``format``/``version`` header, a missing or unknown
            key, a non-number or NaN/inf, a wrong count, a non-unit quaternion, a camera
            model the values do not make (e.g. 3 radtan coefficients).
    """
    fmt: RigFileFormat = "json" if Path(path).suffix.lower() == ".json" else "yaml"
    return parse_rig(read_text(path), fmt=fmt, path=str(path))


def parse_rig(text: str, *, fmt: RigFileFormat = "yaml", path: str = "<string>") -> NativeRig:
    """Parse rig-file text in ``fmt``; see :func:`read_rig`."""
    if fmt == "json":
        doc = load_json(text, path)
    elif fmt == "yaml":
        doc = load_yaml(text, path)
    else:
        raise CalibrationError(f"fmt: expected 'yaml' or 'json', got {fmt!r}")
    doc = require_mapping(doc, path, None)
    _no_unknown(doc, _TOP_KEYS, path, None)
    if doc.get("format") != FORMAT_NAME:
        raise CalibrationFileError(path, "format", f"expected {FORMAT_NAME!r}, got {short_repr(doc.get('format'))}")
    version = doc.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise CalibrationFileError(path, "version", f"expected {FORMAT_VERSION}, got {short_repr(version)}")
    description = _optional_str(doc, "description", path, "description")
    ego_frame = _optional_str(doc, "ego_frame", path, "ego_frame")

    cameras, lidars, frame_names = {}, {}, {}
    for name, entry in _section(doc, "cameras", path).items():
        where = f"cameras.{name}"
        entry = require_mapping(entry, path, where)
        _no_unknown(entry, _CAMERA_KEYS, path, where)
        cameras[name] = RigCamera(_camera_model(entry, path, where), _pose(entry, "ego_SE3_camera", path, where))
        if "frame" in entry:
            frame_names[name] = parse_str(entry["frame"], path, f"{where}.frame")
    for name, entry in _section(doc, "lidars", path).items():
        where = f"lidars.{name}"
        entry = require_mapping(entry, path, where)
        _no_unknown(entry, _LIDAR_KEYS, path, where)
        if name in cameras:
            raise CalibrationFileError(path, where, "expected sensor names unique across cameras and lidars, got a camera of the same name")
        lidars[name] = _pose(entry, "ego_SE3_lidar", path, where)
        if "frame" in entry:
            frame_names[name] = parse_str(entry["frame"], path, f"{where}.frame")
    return NativeRig(SensorRig(cameras=cameras, lidars=lidars), description, ego_frame, frame_names)


def format_rig(
    rig: SensorRig | NativeRig,
    *,
    fmt: RigFileFormat = "yaml",
    description: str | None = None,
    ego_frame: str | None = None,
    frame_names: Mapping[str, str] | None = None,
) -> str:
    """Rig-file text. A :class:`NativeRig` brings its own description and frame names
    (the keyword arguments, when given, take precedence)."""
    if isinstance(rig, NativeRig):
        description = rig.description if description is None else description
        ego_frame = rig.ego_frame if ego_frame is None else ego_frame
        frame_names = dict(rig.frame_names) if frame_names is None else frame_names
        rig = rig.rig
    frame_names = frame_names or {}
    doc: dict = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    if description is not None:
        doc["description"] = description
    if ego_frame is not None:
        doc["ego_frame"] = ego_frame
    doc["cameras"] = {}
    for name, camera in rig.cameras.items():
        m = camera.model
        entry: dict = {"frame": frame_names[name]} if name in frame_names else {}
        entry["intrinsics"] = {"width_px": m.width_px, "height_px": m.height_px, "fx_px": m.fx_px, "fy_px": m.fy_px, "cx_px": m.cx_px, "cy_px": m.cy_px}
        entry["distortion"] = {"model": m.distortion_model, "coefficients": list(m.distortion)}
        entry["ego_SE3_camera"] = _pose_doc(camera.ego_SE3_camera)
        doc["cameras"][name] = entry
    doc["lidars"] = {}
    for name, ego_SE3_lidar in rig.lidars.items():
        entry = {"frame": frame_names[name]} if name in frame_names else {}
        entry["ego_SE3_lidar"] = _pose_doc(ego_SE3_lidar)
        doc["lidars"][name] = entry
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    raise CalibrationError(f"fmt: expected 'yaml' or 'json', got {fmt!r}")


def write_rig(
    rig: SensorRig | NativeRig,
    path: PathLike,
    *,
    description: str | None = None,
    ego_frame: str | None = None,
    frame_names: Mapping[str, str] | None = None,
) -> None:
    """Write a rig file; ``.json`` gets JSON, anything else YAML (see :func:`format_rig`)."""
    fmt: RigFileFormat = "json" if Path(path).suffix.lower() == ".json" else "yaml"
    text = format_rig(rig, fmt=fmt, description=description, ego_frame=ego_frame, frame_names=frame_names)
    Path(path).write_text(text, encoding="utf-8")


def _pose_doc(transform: SE3) -> dict:
    return {"translation_m": transform.translation.tolist(), "rotation_wxyz": transform.as_wxyz().tolist()}


def _pose(entry: dict, key: str, path: str, where: str) -> SE3:
    pose = require_mapping(require_key(entry, key, path, f"{where}.{key}"), path, f"{where}.{key}")
    _no_unknown(pose, _POSE_KEYS, path, f"{where}.{key}")
    field_t, field_q = f"{where}.{key}.translation_m", f"{where}.{key}.rotation_wxyz"
    translation = parse_number_list(require_key(pose, "translation_m", path, field_t), path, field_t, 3)
    rotation = parse_number_list(require_key(pose, "rotation_wxyz", path, field_q), path, field_q, 4)
    return se3_from_wxyz(rotation, translation, path, field_q, QUATERNION_TOL)


def _camera_model(entry: dict, path: str, where: str) -> CameraModel:
    intrinsics = require_mapping(require_key(entry, "intrinsics", path, f"{where}.intrinsics"), path, f"{where}.intrinsics")
    _no_unknown(intrinsics, _INTRINSIC_KEYS, path, f"{where}.intrinsics")
    values = {}
    for key in _INTRINSIC_KEYS:
        field_name = f"{where}.intrinsics.{key}"
        raw = require_key(intrinsics, key, path, field_name)
        values[key] = parse_int(raw, path, field_name) if key.endswith("_px") and key.startswith(("width", "height")) else parse_number(raw, path, field_name)
    distortion = require_mapping(require_key(entry, "distortion", path, f"{where}.distortion"), path, f"{where}.distortion")
    _no_unknown(distortion, ("model", "coefficients"), path, f"{where}.distortion")
    model = parse_str(require_key(distortion, "model", path, f"{where}.distortion.model"), path, f"{where}.distortion.model")
    if model not in DISTORTION_SIZES:
        raise CalibrationFileError(path, f"{where}.distortion.model", f"expected one of {sorted(DISTORTION_SIZES)}, got {short_repr(model)}")
    field_c = f"{where}.distortion.coefficients"
    coefficients = parse_number_list(require_key(distortion, "coefficients", path, field_c), path, field_c, DISTORTION_SIZES[model])
    try:
        return CameraModel(distortion_model=model, distortion=tuple(coefficients), **values)  # type: ignore[arg-type]
    except CalibrationError as exc:
        raise CalibrationFileError(path, where, str(exc)) from exc


def _section(doc: dict, key: str, path: str) -> dict:
    value = doc.get(key, {})
    if value is None:
        return {}
    section = require_mapping(value, path, key)
    for name in section:
        if not isinstance(name, str) or not name:
            raise CalibrationFileError(path, key, f"expected sensor names as non-empty strings, got {short_repr(name)}")
    return section


def _optional_str(doc: dict, key: str, path: str, field_name: str) -> str | None:
    return None if doc.get(key) is None else parse_str(doc[key], path, field_name)


def _no_unknown(mapping: dict, known: tuple[str, ...], path: str, where: str | None) -> None:
    unknown = [key for key in mapping if key not in known]
    if unknown:
        field_name = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise CalibrationFileError(path, field_name, f"unknown key (expected one of {list(known)})")
