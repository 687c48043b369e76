"""ROS ``CameraInfo`` YAML, as read and written by ``camera_calibration_parsers``::

    image_width: 1920
    image_height: 1200
    camera_name: front_wide
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob          # or rational_polynomial, equidistant
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

``plumb_bob`` and ``rational_polynomial`` map to the ``radtan`` model (4, 5 or 8
coefficients), ``equidistant`` to ``fisheye`` (4); all-zero coefficients to ``pinhole``.

>>> info = RosCameraInfo.from_camera_model(CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0), "cam")
>>> parse_ros_camera_info(format_ros_camera_info(info)).model == info.model
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.camera import CameraModel
from calibration.checks import check_matrix
from calibration.errors import CalibrationFileError, short_repr
from calibration.formats._common import (
    PathLike,
    Unrepresented,
    camera_from_K,
    format_floats,
    load_yaml,
    parse_int,
    parse_number_list,
    parse_str,
    read_text,
    require_key,
    require_mapping,
    yaml_string,
)

_TO_MODEL = {"plumb_bob": "radtan", "rational_polynomial": "radtan", "equidistant": "fisheye"}
_KNOWN_KEYS = (
    "image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
    "distortion_coefficients", "rectification_matrix", "projection_matrix",
)


@dataclass(frozen=True, eq=False)
class RosCameraInfo:
    """A ROS camera calibration.

    Attributes:
        camera_name: the ``camera_name`` value.
        model: intrinsics and distortion of the raw (unrectified) image.
        rectification: ``(3, 3)`` ``R`` (identity for monocular cameras).
        projection: ``(3, 4)`` ``P`` of the rectified image.
        unrepresented: what :attr:`model` does not carry (a non-identity ``R``, a ``P``
            other than ``[K | 0]``, unknown keys).
        path: the file it was read from.
    """

    camera_name: str
    model: CameraModel
    rectification: NDArrayFloat
    projection: NDArrayFloat
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        for name, shape in (("rectification", (3, 3)), ("projection", (3, 4))):
            value = np.array(check_matrix(getattr(self, name), name, *shape))
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @classmethod
    def from_camera_model(cls, model: CameraModel, camera_name: str) -> RosCameraInfo:
        """A monocular calibration: ``R = I``, ``P = [K | 0]``."""
        return cls(camera_name, model, np.eye(3), np.hstack([model.K, np.zeros((3, 1))]))


def read_ros_camera_info(path: PathLike) -> RosCameraInfo:
    """Read a ``camera_calibration_parsers`` YAML file.

    Raises:
        CalibrationFileError: not YAML, a missing key, ``rows * cols`` not matching ``data``,
            a non-number or NaN/inf, skew in ``camera_matrix``, an unknown
            ``distortion_model`` or a coefficient count that model does not take.
    """
    return parse_ros_camera_info(read_text(path), path=str(path))


def parse_ros_camera_info(text: str, *, path: str = "<string>") -> RosCameraInfo:
    """Parse CameraInfo YAML text; see :func:`read_ros_camera_info`."""
    doc = require_mapping(load_yaml(text, path), path, None)
    width = parse_int(require_key(doc, "image_width", path), path, "image_width")
    height = parse_int(require_key(doc, "image_height", path), path, "image_height")
    name = doc.get("camera_name", "")
    camera_name = "" if name is None else parse_str(name, path, "camera_name")
    K = _matrix(doc, "camera_matrix", path, (3, 3))
    model_name = parse_str(require_key(doc, "distortion_model", path), path, "distortion_model")
    if model_name not in _TO_MODEL:
        raise CalibrationFileError(path, "distortion_model", f"expected one of {sorted(_TO_MODEL)}, got {short_repr(model_name)}")
    coefficients = _matrix(doc, "distortion_coefficients", path, None).ravel()
    if model_name == "rational_polynomial" and len(coefficients) in (12, 14) and not np.any(coefficients[8:]):
        coefficients = coefficients[:8]  # trailing thin-prism / tilt terms that are all zero
    model = "pinhole" if not np.any(coefficients) else _TO_MODEL[model_name]
    camera = camera_from_K(K, (width, height), path, "camera_matrix", model, () if model == "pinhole" else coefficients)
    R = _matrix(doc, "rectification_matrix", path, (3, 3)) if "rectification_matrix" in doc else np.eye(3)
    P = _matrix(doc, "projection_matrix", path, (3, 4)) if "projection_matrix" in doc else np.hstack([K, np.zeros((3, 1))])

    notes = []
    if not np.allclose(R, np.eye(3), rtol=0.0, atol=1e-12):
        notes.append(Unrepresented("rectification_matrix", "not identity (stereo rectification); kept as rectification, not in model"))
    if not np.allclose(P, np.hstack([K, np.zeros((3, 1))]), rtol=1e-12, atol=1e-12):
        notes.append(Unrepresented("projection_matrix", "differs from [K | 0] (rectified-image intrinsics or baseline); kept as projection, not in model"))
    notes += [Unrepresented(key, "unknown key; ignored") for key in doc if key not in _KNOWN_KEYS]
    return RosCameraInfo(camera_name, camera, R, P, tuple(notes), path)


def format_ros_camera_info(info: RosCameraInfo) -> str:
    """The YAML text ``camera_calibration_parsers`` writes (numbers exact).

    ``radtan`` with 8 coefficients is written as ``rational_polynomial``, with 4 or 5 as
    ``plumb_bob``; ``fisheye`` as ``equidistant``; ``pinhole`` as ``plumb_bob`` with five zeros.
    """
    model = info.model
    if model.distortion_model == "fisheye":
        ros_model, coefficients = "equidistant", model.distortion
    elif model.distortion_model == "radtan":
        ros_model = "rational_polynomial" if len(model.distortion) == 8 else "plumb_bob"
        coefficients = model.distortion
    else:
        ros_model, coefficients = "plumb_bob", (0.0,) * 5
    name = yaml_string(info.camera_name)
    return (
        f"image_width: {model.width_px}\n"
        f"image_height: {model.height_px}\n"
        f"camera_name: {name}\n"
        + _format_matrix("camera_matrix", model.K)
        + f"distortion_model: {ros_model}\n"
        + _format_matrix("distortion_coefficients", np.asarray(coefficients, dtype=np.float64).reshape(1, -1))
        + _format_matrix("rectification_matrix", info.rectification)
        + _format_matrix("projection_matrix", info.projection)
    )


def write_ros_camera_info(info: RosCameraInfo, path: PathLike) -> None:
    """Write :func:`format_ros_camera_info` to ``path``."""
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(format_ros_camera_info(info))


def _format_matrix(key: str, matrix: NDArrayFloat) -> str:
    rows, cols = matrix.shape
    data = format_floats(matrix).replace(" ", ", ")
    return f"{key}:\n  rows: {rows}\n  cols: {cols}\n  data: [{data}]\n"


def _matrix(doc: dict, key: str, path: str, shape: tuple[int, int] | None) -> NDArrayFloat:
    entry = require_mapping(require_key(doc, key, path), path, key)
    rows = parse_int(require_key(entry, "rows", path, f"{key}.rows"), path, f"{key}.rows", positive=False)
    cols = parse_int(require_key(entry, "cols", path, f"{key}.cols"), path, f"{key}.cols", positive=False)
    if shape is not None and (rows, cols) != shape:
        raise CalibrationFileError(path, key, f"expected {shape[0]} x {shape[1]}, got rows: {rows}, cols: {cols}")
    data = parse_number_list(require_key(entry, "data", path, f"{key}.data"), path, f"{key}.data", rows * cols)
    return data.reshape(rows, cols)
