"""Errors of the av_pipeline library (the base classes come from :mod:`calibration.errors`)."""

from __future__ import annotations

from calibration.errors import (
    AVPipelineError,
    CalibrationError,
    CalibrationFileError,
    ExtrapolationError,
    ShapeError,
    UnknownFrameError,
    cap_message,
    short_repr,
)


class LogFormatError(AVPipelineError, ValueError):
    """A drive log or sensor file cannot be read: corrupt, truncated, wrong header, missing topic.

    Attributes:
        path: the file or log URI.
        field: the field, topic, record or byte range that failed (or ``None``).
    """

    def __init__(self, path: object, field: str | None, message: str) -> None:
        self.path = str(path)
        self.field = field
        where = self.path + (f": {field}" if field else "")
        super().__init__(cap_message(f"{where}: {message}"))


class ConfigError(AVPipelineError, ValueError):
    """A configuration value (CLI option, pipeline option, voxel grid) is invalid."""


__all__ = [
    "AVPipelineError",
    "CalibrationError",
    "CalibrationFileError",
    "ConfigError",
    "ExtrapolationError",
    "LogFormatError",
    "ShapeError",
    "UnknownFrameError",
    "cap_message",
    "short_repr",
]
