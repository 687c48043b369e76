"""av-pipeline's calibration API: rigid transforms, camera models with distortion, a frame
graph with time, sensor rigs, calibration file formats and calibration checks.

Depends on numpy and pyquaternion only.
"""

from calibration.errors import (
    AVPipelineError,
    CalibrationError,
    CalibrationFileError,
    ExtrapolationError,
    ShapeError,
    UnknownFrameError,
)
from calibration.se3 import SE3

__all__ = [
    "AVPipelineError",
    "CalibrationError",
    "CalibrationFileError",
    "ExtrapolationError",
    "SE3",
    "ShapeError",
    "UnknownFrameError",
]
