"""Input validation helpers: each returns the normalised value, so call sites read
``points = check_points(points, "points")``.

All raise :class:`~calibration.errors.ShapeError` with the argument name, the expected
shape and what came.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from calibration.errors import ShapeError


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.shape} {value.dtype} array"
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
            return f"{type(value).__name__} of shape {arr.shape}"
        except Exception:  # ragged lists
            return f"ragged {type(value).__name__}"
    return type(value).__name__


def check_array(
    value: object,
    name: str,
    shape: Sequence[int | None],
    *,
    dtype: type | np.dtype | None = np.float64,
    finite: bool = True,
    shape_text: str | None = None,
) -> np.ndarray:
    """Return ``value`` as an array of ``shape`` (``None`` = any size) and ``dtype``.

    Args:
        value: array-like input.
        name: argument name used in messages.
        shape: expected shape, ``None`` for free dimensions, e.g. ``(None, 3)``.
        dtype: dtype to convert to (``None`` keeps a floating dtype, converting others
            to float64).
        finite: reject NaN/inf.
        shape_text: how to print the expected shape, e.g. ``"(N, 3)"``.

    Raises:
        ShapeError: wrong shape, non-numeric or non-finite values.
    """
    expected = shape_text or "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged input
        raise ShapeError(f"{name}: expected {expected} float array, got {_describe(value)}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ShapeError(f"{name}: expected {expected} float array, got {_describe(value)}")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise ShapeError(f"{name}: expected {expected} float array, got {arr.shape}")
    if dtype is None:
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
    elif arr.dtype != dtype:
        arr = arr.astype(dtype)
    if finite and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        raise ShapeError(
            f"{name}: expected finite values, got {len(bad)} NaN/inf entries (first at index "
            f"{tuple(int(i) for i in bad[0])})"
        )
    return arr


def check_points(value: object, name: str = "points", dims: int = 3, *, finite: bool = True) -> np.ndarray:
    """Return ``value`` as an ``(N, dims)`` float array, keeping float32 when given float32."""
    return check_array(value, name, (None, dims), dtype=None, finite=finite)


def check_vector(value: object, name: str, size: int) -> np.ndarray:
    """Return ``value`` as a finite float64 vector of length ``size``."""
    return check_array(value, name, (size,))


def check_matrix(value: object, name: str, rows: int, cols: int) -> np.ndarray:
    """Return ``value`` as a finite float64 ``(rows, cols)`` matrix."""
    return check_array(value, name, (rows, cols))
