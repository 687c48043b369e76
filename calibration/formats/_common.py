"""Shared pieces of the calibration file readers and writers.

Every reader raises :class:`~calibration.errors.CalibrationFileError` naming the file, the
field, what was expected and what came; every reader returns a frozen result with an
``unrepresented`` tuple of :class:`Unrepresented` notes instead of dropping content silently.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.camera import CameraModel
from calibration.errors import CalibrationError, CalibrationFileError, ShapeError, short_repr
from calibration.se3 import DEFAULT_REORTHONORMALIZE_TOL, SE3

PathLike = Union[str, "os.PathLike[str]"]

#: JSON and YAML documents nested deeper than about this (the interpreter's recursion
#: limit) are refused with a :class:`CalibrationFileError`; real calibration files nest < 10.
MAX_NESTING = 1000
#: Most characters of a library's own error text quoted in a message.
SHORT_TEXT_CHARS = 300
#: Deepest accepted nesting of YAML flow collections (``[`` / ``{``). PyYAML's scanner takes
#: time quadratic in this depth (a 1500-deep ``[[[...`` takes tens of seconds), so deeper
#: text is refused before parsing; real calibration files nest 2 or 3 levels.
MAX_YAML_FLOW_DEPTH = 64

_QUOTED_SCALAR = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'')

#: Orthonormality deviations above this (float64 round-off) are reported as
#: "re-orthonormalised" in a reader's ``unrepresented`` notes.
REPORTED_ORTHONORMALITY = 1e-9

__all__ = ["DEFAULT_REORTHONORMALIZE_TOL", "MAX_NESTING", "PathLike", "Unrepresented"]


@dataclass(frozen=True)
class Unrepresented:
    """Something a file holds that the reader's result (or its ``to_rig()``) does not carry
    exactly: ignored keys, values a :class:`~calibration.rig.SensorRig` has no place for,
    rotations that were re-orthonormalised.

    Attributes:
        field: the key or field in the file (``"Tr_imu_to_velo"``, ``"calibrated_sensor[3]"``).
        reason: one line saying what happened to it and why.

    >>> str(Unrepresented("corner_dist", "calibration target spacing; not part of a rig"))
    'corner_dist: calibration target spacing; not part of a rig'
    """

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


# ---------------------------------------------------------------------- reading
def read_text(path: PathLike) -> str:
    """The file's text (UTF-8; a BOM is dropped).

    Raises:
        CalibrationFileError: the file cannot be read (missing, unreadable, a directory, a
            symlink loop; the ``OSError`` is the cause), or the bytes are not UTF-8 text.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CalibrationFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CalibrationFileError(path, None, f"expected UTF-8 text, got undecodable bytes at offset {exc.start}") from exc


def parse_number_tokens(tokens: Sequence[str], path: str, field: str, expected: int | Sequence[int]) -> NDArrayFloat:
    """Parse whitespace-split tokens into a finite float64 vector of an expected length.

    Args:
        tokens: the value tokens of one field.
        path: the file, for messages.
        field: the field, for messages.
        expected: the accepted element count(s).

    Raises:
        CalibrationFileError: a wrong count, a malformed number, or NaN/inf.
    """
    counts = (expected,) if isinstance(expected, int) else tuple(expected)
    if len(tokens) not in counts:
        raise CalibrationFileError(path, field, f"expected {_counts_text(counts)} numbers, got {len(tokens)}")
    values = np.empty(len(tokens))
    for i, token in enumerate(tokens):
        try:
            values[i] = float(token)
        except ValueError:
            raise CalibrationFileError(
                path, field, f"expected a number at position {i + 1}, got malformed {short_repr(token)}"
            ) from None
        if not math.isfinite(values[i]):
            raise CalibrationFileError(path, field, f"expected finite numbers, got {short_repr(token)} at position {i + 1}")
    return values


def parse_number_list(value: object, path: str, field: str, expected: int | Sequence[int] | None = None) -> NDArrayFloat:
    """Validate a list of numbers that came from JSON/YAML.

    Strings that parse as floats are accepted (YAML 1.1 reads ``1e-5`` as a string);
    booleans, nulls and nested lists are not.

    Raises:
        CalibrationFileError: not a list, a wrong count, a non-number, or NaN/inf.
    """
    if not isinstance(value, (list, tuple)):
        raise CalibrationFileError(path, field, f"expected a list of numbers, got {_describe(value)}")
    if expected is not None:
        counts = (expected,) if isinstance(expected, int) else tuple(expected)
        if len(value) not in counts:
            raise CalibrationFileError(path, field, f"expected {_counts_text(counts)} numbers, got {len(value)}")
    return np.array([parse_number(item, path, field, position=i + 1) for i, item in enumerate(value)], dtype=np.float64)


def parse_number(value: object, path: str, field: str, *, position: int | None = None) -> float:
    """One finite number from a JSON/YAML scalar (see :func:`parse_number_list`)."""
    where = f" at position {position}" if position is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CalibrationFileError(path, field, f"expected a number{where}, got {_describe(value)}")
    text = value
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in (".nan", ".inf"):
        text = value.strip().lower().replace(".", "")  # YAML / OpenCV spellings (.Nan, -.Inf)
    try:
        number = float(text)
    except ValueError:
        raise CalibrationFileError(path, field, f"expected a number{where}, got malformed {short_repr(value)}") from None
    except OverflowError:  # an int beyond float64 (YAML/JSON integers have no size limit)
        raise CalibrationFileError(path, field, f"expected a number within float64 range{where}, got {short_repr(value)}") from None
    if not math.isfinite(number):
        raise CalibrationFileError(path, field, f"expected a finite number{where}, got {short_repr(value)}")
    return number


def parse_int(value: object, path: str, field: str, *, positive: bool = True) -> int:
    """A (positive) integer from a JSON/YAML scalar; integral floats such as ``1242.0`` pass."""
    number = parse_number(value, path, field)
    if number != int(number) or (positive and number <= 0):
        kind = "a positive integer" if positive else "an integer"
        raise CalibrationFileError(path, field, f"expected {kind}, got {short_repr(value)}")
    return int(number)


def parse_str(value: object, path: str, field: str) -> str:
    """A string from a JSON/YAML scalar."""
    if not isinstance(value, str):
        raise CalibrationFileError(path, field, f"expected a string, got {_describe(value)}")
    return value


def require_mapping(value: object, path: str, field: str | None) -> dict:
    """``value`` as a dict, or a :class:`CalibrationFileError` saying what came instead."""
    if not isinstance(value, dict):
        raise CalibrationFileError(path, field, f"expected a mapping, got {_describe(value)}")
    return value


def require_key(mapping: dict, key: str, path: str, field: str | None = None) -> object:
    """``mapping[key]`` or a :class:`CalibrationFileError` naming the missing field."""
    if key not in mapping:
        raise CalibrationFileError(path, field or key, "missing (required)")
    return mapping[key]


def se3_from_matrix(matrix: NDArrayFloat, path: str, field: str, tol: float) -> SE3:
    """An SE3 from a ``(3, 4)`` / ``(4, 4)`` matrix read from ``path``, re-orthonormalised within ``tol``.

    Raises:
        CalibrationFileError: a rotation further than ``tol`` from orthonormal or a reflection.
    """
    try:
        return SE3.from_matrix(matrix, tol=tol, name=field)
    except (CalibrationError, ShapeError) as exc:
        raise CalibrationFileError(path, field, _strip_name(str(exc), field)) from exc


def se3_from_rotation(rotation: NDArrayFloat, translation: NDArrayFloat, path: str, field: str, tol: float) -> SE3:
    """Like :func:`se3_from_matrix` from a ``(3, 3)`` rotation and a ``(3,)`` translation."""
    try:
        return SE3.from_rotation_matrix(rotation, translation, tol=tol, name=field)
    except (CalibrationError, ShapeError) as exc:
        raise CalibrationFileError(path, field, _strip_name(str(exc), field)) from exc


def se3_from_wxyz(wxyz: Sequence[float], translation: Sequence[float], path: str, field: str, tol: float) -> SE3:
    """An SE3 from a scalar-first quaternion and a translation read from ``path``.

    Raises:
        CalibrationFileError: the quaternion's norm is off by more than ``tol``.
    """
    try:
        return SE3.from_wxyz(np.asarray(wxyz, dtype=np.float64), np.asarray(translation, dtype=np.float64), tol=tol)
    except (CalibrationError, ShapeError) as exc:
        raise CalibrationFileError(path, field, _strip_name(str(exc), "wxyz")) from exc


def orthonormality_note(field: str, transform: SE3) -> list[Unrepresented]:
    """A note when ``transform`` was re-orthonormalised beyond round-off, else nothing."""
    if transform.orthonormality_error <= REPORTED_ORTHONORMALITY:
        return []
    return [
        Unrepresented(
            field,
            f"rotation re-orthonormalised (|R^T R - I|_F = {transform.orthonormality_error:.2g} in the file); "
            "the result holds the nearest rotation",
        )
    ]


def camera_from_K(
    K: NDArrayFloat,
    size_px: tuple[int, int],
    path: str,
    field: str,
    distortion_model: str = "pinhole",
    distortion: Sequence[float] = (),
) -> CameraModel:
    """A :class:`CameraModel` from a ``(3, 3)`` K read from ``path``.

    Raises:
        CalibrationFileError: skew, a last row other than ``[0, 0, 0, 1]``, a non-positive
            focal length, or a coefficient count the model does not take.
    """
    problem = intrinsics_problem(K)
    if problem is not None:
        raise CalibrationFileError(path, field, problem)
    try:
        return CameraModel.from_K(K, size_px[0], size_px[1], distortion_model, tuple(distortion), name=field)  # type: ignore[arg-type]
    except (CalibrationError, ShapeError) as exc:
        raise CalibrationFileError(path, field, _strip_name(str(exc), field)) from exc


def intrinsics_problem(K: NDArrayFloat) -> str | None:
    """Why a ``(3, 3)`` block is not a zero-skew upper-triangular K with ``K[2, 2] = 1``, or ``None``."""
    K = np.asarray(K, dtype=np.float64).tolist()  # plain floats print without np.float64(...)
    scale = max(abs(K[0][0]), abs(K[1][1]), 1.0)
    if abs(K[1][0]) > 1e-9 * scale or abs(K[2][0]) > 1e-12 or abs(K[2][1]) > 1e-12:
        return f"expected an upper-triangular intrinsic matrix, got lower part {[K[1][0], K[2][0], K[2][1]]}"
    if abs(K[2][2] - 1.0) > 1e-12:
        return f"expected K[2, 2] = 1, got {K[2][2]!r}"
    if abs(K[0][1]) > 1e-9 * scale:
        return f"expected zero skew K[0, 1], got {K[0][1]!r} (CameraModel has no skew)"
    if K[0][0] <= 0 or K[1][1] <= 0:
        return f"expected positive focal lengths, got fx={K[0][0]!r}, fy={K[1][1]!r}"
    return None


def rectified_camera_from_P(
    P: NDArrayFloat, size_px: tuple[int, int], path: str, field: str
) -> tuple[CameraModel, SE3] | str:
    """Split a rectified projection matrix ``P = K [I | t]`` into a camera and ``camera_SE3_rect``.

    ``P`` projects points of a reference (rectified) frame; the camera it describes is that
    frame shifted by ``t = K^-1 P[:, 3]``, with the same orientation.

    Returns:
        ``(camera model, camera_SE3_rect)``, or a string saying why ``P`` has no such form.
    """
    K = P[:, :3]
    problem = intrinsics_problem(K)
    if problem is not None:
        return problem
    t = np.linalg.solve(K, P[:, 3])
    return camera_from_K(K, size_px, path, field), SE3(np.eye(3), t)


def format_float(value: float) -> str:
    """Shortest text that reads back to the same float64, always with a ``.`` (YAML 1.1 floats)."""
    text = repr(float(value))
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def format_floats(values: NDArrayFloat | Sequence[float]) -> str:
    """Space-separated :func:`format_float` of ``values`` (flattened row-major)."""
    return " ".join(format_float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def load_yaml(text: str, path: str) -> object:
    """``yaml.safe_load(text)`` (PyYAML is imported here: only the YAML formats need it).

    Raises:
        CalibrationFileError: a YAML syntax error or a tag safe_load does not construct.
    """
    import yaml

    depth = _flow_depth(text)
    if depth > MAX_YAML_FLOW_DEPTH:
        raise CalibrationFileError(path, None, f"expected YAML with [ ] / {{ }} nested at most {MAX_YAML_FLOW_DEPTH} levels deep, got {depth} levels")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CalibrationFileError(path, None, f"expected YAML, got {str(problem)[:SHORT_TEXT_CHARS]}{where}") from exc
    except RecursionError as exc:
        raise CalibrationFileError(path, None, f"expected YAML nested at most {MAX_NESTING} levels deep, got deeper nesting") from exc
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. an integer of more than 4300 digits
        raise CalibrationFileError(path, None, f"expected YAML with representable values, got {str(exc)[:SHORT_TEXT_CHARS]}") from exc


def _flow_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` outside quoted scalars (vectorised: linear in the text)."""
    codes = np.frombuffer(_QUOTED_SCALAR.sub("", text).encode("utf-8", "replace"), dtype=np.uint8)
    if not codes.size:
        return 0
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def load_json(text: str, path: str) -> object:
    """``json.loads(text)`` with every failure as a :class:`CalibrationFileError`.

    Raises:
        CalibrationFileError: a syntax error, nesting deeper than the interpreter's recursion
            limit (:data:`MAX_NESTING`), or an integer too long to convert (more than 4300 digits).
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationFileError(path, None, f"expected JSON, got a syntax error at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise CalibrationFileError(path, None, f"expected JSON nested at most {MAX_NESTING} levels deep, got deeper nesting") from exc
    except (ValueError, OverflowError) as exc:  # int digits limit
        raise CalibrationFileError(path, None, f"expected JSON with representable values, got {str(exc)[:SHORT_TEXT_CHARS]}") from exc


def yaml_string(value: str) -> str:
    """``value`` as a YAML scalar: plain when it reads back as the same string, else double-quoted."""
    import yaml

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _counts_text(counts: Sequence[int]) -> str:
    return " or ".join(str(c) for c in counts)


def _strip_name(message: str, name: str) -> str:
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"a mapping with keys {short_repr(sorted(short_repr(key, 40) for key in value)[:6])}"
    return f"{type(value).__name__} {short_repr(value)}"
