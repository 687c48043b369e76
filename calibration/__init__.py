"""av-pipeline's calibration API: rigid transforms, camera models with distortion, a frame
graph with time, sensor rigs, calibration file formats and calibration checks.

Depends on numpy and pyquaternion only. Guide: docs/calibration.md.
"""

from calibration.camera import (
    BEHIND_CAMERA,
    DISTORTION_SIZES,
    MIN_DEPTH_M,
    NOT_FINITE,
    OUTSIDE_IMAGE,
    OUTSIDE_VALID_REGION,
    VISIBLE,
    CameraModel,
    Projection,
    ProjectionStatus,
)
from calibration.errors import (
    AVPipelineError,
    CalibrationError,
    CalibrationFileError,
    ExtrapolationError,
    ShapeError,
    UnknownFrameError,
)
from calibration.frame_graph import FrameEdge, FrameGraph
from calibration.quality import (
    DriftCheck,
    EdgeMap,
    LidarEdges,
    RankedExtrinsic,
    ReprojectionResult,
    RigView,
    alignment_score,
    alignment_scores,
    calibration_drift_check,
    calibration_drift_check_frames,
    perturbation_grid,
    random_perturbations,
    rank_extrinsics,
    reprojection_rms,
    rig_alignment_scores,
)
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3
from calibration.trajectory import EXTRAPOLATION_POLICIES, ExtrapolationPolicy, PoseTrajectory

__all__ = [
    "DriftCheck",
    "EdgeMap",
    "LidarEdges",
    "RankedExtrinsic",
    "ReprojectionResult",
    "RigView",
    "alignment_score",
    "alignment_scores",
    "calibration_drift_check",
    "calibration_drift_check_frames",
    "perturbation_grid",
    "random_perturbations",
    "rank_extrinsics",
    "reprojection_rms",
    "rig_alignment_scores",
    "AVPipelineError",
    "BEHIND_CAMERA",
    "CalibrationError",
    "CalibrationFileError",
    "CameraModel",
    "DISTORTION_SIZES",
    "EXTRAPOLATION_POLICIES",
    "ExtrapolationError",
    "ExtrapolationPolicy",
    "FrameEdge",
    "FrameGraph",
    "MIN_DEPTH_M",
    "NOT_FINITE",
    "OUTSIDE_IMAGE",
    "OUTSIDE_VALID_REGION",
    "PoseTrajectory",
    "Projection",
    "ProjectionStatus",
    "RigCamera",
    "SE3",
    "SensorRig",
    "ShapeError",
    "UnknownFrameError",
    "VISIBLE",
]
