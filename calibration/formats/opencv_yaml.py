"""OpenCV ``cv::FileStorage`` YAML camera calibrations (as written by OpenCV's
``calibration.cpp`` sample and most OpenCV-based tools)::

    %YAML:1.0
    ---
    image_width: 1920
    image_height: 1200
    camera_matrix: !!opencv-matrix
       rows: 3
       cols: 3
       dt: d
       data: [ 2152.8, 0., 971.3, 0., 2155.5, 605.9, 0., 0., 1. ]
    distortion_coefficients: !!opencv-matrix
       rows: 1
       cols: 5
       dt: d
       data: [ -0.1192, 0.162, 0.00073985, 0.0014, 0. ]

OpenCV stores no distortion-model name: 4, 5 or 8 coefficients are read as ``radtan``
(``cv::projectPoints``) unless an optional ``distortion_model`` key says ``fisheye`` (or
``equidistant``; ``cv::fisheye``) or ``pinhole``. The writer always writes that key.
``cameraMatrix``/``K`` and ``distCoeffs``/``D`` are accepted as aliases.

The reader needs no OpenCV: the ``%YAML`` directive is dropped and the ``!!opencv-matrix``
tag removed before ``yaml.safe_load``; any other tag is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.camera import CameraModel
from calibration.errors import CalibrationFileError, short_repr
from calibration.formats._common import (
    PathLike,
    Unrepresented,
    camera_from_K,
    format_float,
    load_yaml,
    parse_int,
    parse_number_list,
    parse_str,
    read_text,
    require_key,
    require_mapping,
)

_DIRECTIVE = re.compile(r"\A(?:[ \t]*(?:%[^\n]*|#[^\n]*)?\n)*")
_MATRIX_TAG = re.compile(r"!!opencv-(?:nd-)?matrix(?=[ \t\n])")
_MATRIX_KEYS = {"camera_matrix": ("camera_matrix", "cameraMatrix", "K"), "distortion_coefficients": ("distortion_coefficients", "distCoeffs", "D")}
_MODELS = {"radtan": "radtan", "plumb_bob": "radtan", "rational_polynomial": "radtan", "fisheye": "fisheye", "equidistant": "fisheye", "pinhole": "pinhole"}
_DTYPES = ("u", "c", "w", "s", "i", "f", "d", "h")


@dataclass(frozen=True, eq=False)
class OpenCvCameraCalib:
    """A camera read from OpenCV FileStorage YAML.

    Attributes:
        model: intrinsics, size and distortion.
        unrepresented: keys that are not part of a camera model (reprojection error,
            per-view extrinsics, flags, ...), ignored.
        path: the file it was read from.
    """

    model: CameraModel
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)


def read_opencv_yaml(path: PathLike) -> OpenCvCameraCalib:
    """Read an OpenCV FileStorage YAML camera calibration.

    Raises:
        CalibrationFileError: not YAML, a missing key, ``rows * cols`` not matching ``data``,
            a multi-channel ``dt``, a non-number or NaN/inf, skew, or a coefficient count the
            model does not take (thin-prism / tilt terms must be zero).
    """
    return parse_opencv_yaml(read_text(path), path=str(path))


def parse_opencv_yaml(text: str, *, path: str = "<string>") -> OpenCvCameraCalib:
    """Parse OpenCV FileStorage YAML text; see :func:`read_opencv_yaml`."""
    body = _MATRIX_TAG.sub("", _DIRECTIVE.sub("", text, count=1))
    doc = require_mapping(load_yaml(body, path), path, None)
    width = parse_int(require_key(doc, "image_width", path), path, "image_width")
    height = parse_int(require_key(doc, "image_height", path), path, "image_height")
    K_key = _find(doc, "camera_matrix", path, required=True)
    K = _matrix(doc[K_key], path, K_key)
    if K.shape != (3, 3):
        raise CalibrationFileError(path, K_key, f"expected a 3 x 3 matrix, got {K.shape[0]} x {K.shape[1]}")
    D_key = _find(doc, "distortion_coefficients", path, required=False)
    coefficients = np.zeros(0)
    if D_key:
        D = _matrix(doc[D_key], path, D_key)
        if 1 not in D.shape:
            raise CalibrationFileError(path, D_key, f"expected a 1 x N or N x 1 matrix, got {D.shape[0]} x {D.shape[1]}")
        coefficients = D.ravel()
    if len(coefficients) in (12, 14) and not np.any(coefficients[8:]):
        coefficients = coefficients[:8]  # thin-prism / tilt terms, all zero
    if "distortion_model" in doc:
        name = parse_str(doc["distortion_model"], path, "distortion_model")
        if name not in _MODELS:
            raise CalibrationFileError(path, "distortion_model", f"expected one of {sorted(_MODELS)}, got {short_repr(name)}")
        model = _MODELS[name]
        if model == "pinhole" and np.any(coefficients):
            raise CalibrationFileError(path, D_key, "expected all-zero coefficients for distortion_model 'pinhole', got non-zero ones")
    else:
        model = "radtan" if np.any(coefficients) else "pinhole"
    camera = camera_from_K(K, (width, height), path, K_key, model, () if model == "pinhole" else coefficients)
    known = {"image_width", "image_height", "distortion_model", K_key, D_key}
    notes = tuple(Unrepresented(key, "not part of a camera model; ignored") for key in doc if key not in known)
    return OpenCvCameraCalib(camera, notes, path)


def format_opencv_yaml(model: CameraModel) -> str:
    """FileStorage YAML that ``cv2.FileStorage`` and :func:`parse_opencv_yaml` read back equal.

    ``pinhole`` is written as five zero coefficients; ``distortion_model`` is always written.
    """
    coefficients = np.asarray(model.distortion if model.distortion_model != "pinhole" else (0.0,) * 5, dtype=np.float64)
    return (
        "%YAML:1.0\n---\n"
        f"image_width: {model.width_px}\n"
        f"image_height: {model.height_px}\n"
        + _format_matrix("camera_matrix", model.K)
        + f"distortion_model: {model.distortion_model}\n"
        + _format_matrix("distortion_coefficients", coefficients.reshape(1, -1))
    )


def write_opencv_yaml(model: CameraModel, path: PathLike) -> None:
    """Write :func:`format_opencv_yaml` to ``path``."""
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(format_opencv_yaml(model))


def _format_matrix(key: str, matrix: NDArrayFloat) -> str:
    rows, cols = matrix.shape
    data = ", ".join(format_float(v) for v in matrix.ravel())
    return f"{key}: !!opencv-matrix\n   rows: {rows}\n   cols: {cols}\n   dt: d\n   data: [ {data} ]\n"


def _find(doc: dict, key: str, path: str, *, required: bool) -> str | None:
    present = [alias for alias in _MATRIX_KEYS[key] if alias in doc]
    if len(present) > 1:
        raise CalibrationFileError(path, key, f"expected one of {list(_MATRIX_KEYS[key])}, got several: {present}")
    if not present and required:
        raise CalibrationFileError(path, key, f"missing (expected one of {list(_MATRIX_KEYS[key])})")
    return present[0] if present else None


def _matrix(entry: object, path: str, key: str) -> NDArrayFloat:
    entry = require_mapping(entry, path, key)
    rows = parse_int(require_key(entry, "rows", path, f"{key}.rows"), path, f"{key}.rows", positive=False)
    cols = parse_int(require_key(entry, "cols", path, f"{key}.cols"), path, f"{key}.cols", positive=False)
    dt = require_key(entry, "dt", path, f"{key}.dt")
    if not isinstance(dt, str) or dt not in _DTYPES:
        raise CalibrationFileError(path, f"{key}.dt", f"expected a single-channel type {list(_DTYPES)}, got {short_repr(dt)}")
    data = parse_number_list(require_key(entry, "data", path, f"{key}.data"), path, f"{key}.data", rows * cols)
    return data.reshape(rows, cols)
