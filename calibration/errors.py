"""The error hierarchy shared by the whole product.

Every error the product raises on purpose is an :class:`AVPipelineError`, so callers can
catch the product's failures without catching programming errors. Messages name the file,
frame or field, what was expected and what came.

``av_pipeline`` re-exports these names and adds its own subclasses; they live here because
the calibration package must stand alone (numpy + pyquaternion only).
"""

from __future__ import annotations


class AVPipelineError(Exception):
    """Base class of every error the product raises deliberately."""


class ShapeError(AVPipelineError, ValueError):
    """An array has the wrong shape, dtype or non-finite values.

    The message shows the argument name, the expected shape and the actual one:
    ``points: expected (N, 3) float array, got (1200,)``.
    """


class CalibrationError(AVPipelineError, ValueError):
    """A calibration value is invalid (e.g. a rotation far from orthonormal)."""


class CalibrationFileError(CalibrationError):
    """A calibration file cannot be read: missing key, malformed number, wrong size.

    Attributes:
        path: the file (or ``"<string>"`` for in-memory text).
        field: the key or field that failed, or ``None`` when the whole file is bad.
    """

    def __init__(self, path: object, field: str | None, message: str) -> None:
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f": field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


class UnknownFrameError(CalibrationError, KeyError):
    """A frame name is not in a :class:`~calibration.FrameGraph`; the message lists known frames."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ExtrapolationError(CalibrationError):
    """A time-stamped transform was asked for outside the time range it is known for."""
