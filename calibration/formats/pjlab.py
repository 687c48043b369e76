"""The three-line ``calib.txt`` of PJLab-ADG's SensorsCalibration (OpenCalib) LiDAR-camera
tools, a common hand-rolled layout::

    K: fx 0 cx 0 fy cy 0 0 1              # (3, 3) intrinsics, or 12 numbers: a (3, 4) P
    D: k1 k2 p1 p2 [k3 ...]               # OpenCV radial-tangential; "D: 0" = none
    T: r11 r12 r13 tx ... r33 tz          # (3, 4) LiDAR -> camera

The tools read the lines by position and ignore the labels (``K``/``P2``, ``D``, ``T``/``Tr``
all occur); so does this reader. With a 3x4 projection matrix the tools treat the image as
rectified and skip ``D``; so does :meth:`PjlabCalib.to_rig` (reported in ``unrepresented``).

>>> calib = parse_pjlab_calib_txt('''K: 1000 0 960 0 1000 600 0 0 1
... D: -0.1 0.05 0.001 0.002
... T: 0 -1 0 0 0 0 -1 -0.4 1 0 0 -0.1''')
>>> calib.to_rig((1920, 1200)).cameras["camera"].model.distortion
(-0.1, 0.05, 0.001, 0.002)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.checks import check_array
from calibration.errors import CalibrationError, CalibrationFileError
from calibration.formats._common import (
    DEFAULT_REORTHONORMALIZE_TOL,
    PathLike,
    Unrepresented,
    camera_from_K,
    format_floats,
    intrinsics_problem,
    orthonormality_note,
    parse_number_tokens,
    read_text,
    rectified_camera_from_P,
    se3_from_matrix,
)
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

_DISTORTION_COUNTS = (4, 5, 8)


@dataclass(frozen=True, eq=False)
class PjlabCalib:
    """A PJLab ``calib.txt``.

    Attributes:
        intrinsic: ``(3, 3)`` K, or ``(3, 4)`` P for rectified images, as in the file.
        distortion: OpenCV radtan coefficients (``()`` for "D: 0").
        camera_SE3_lidar: the ``T`` line.
        labels: the three line labels as written (``("K", "D", "T")``).
        unrepresented: what :meth:`to_rig` does not carry.
        path: the file it was read from.
    """

    intrinsic: NDArrayFloat
    distortion: tuple[float, ...]
    camera_SE3_lidar: SE3
    labels: tuple[str, str, str] = ("K", "D", "T")
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        intrinsic = np.array(check_array(self.intrinsic, "intrinsic", (3, None), shape_text="(3, 3) or (3, 4)"))
        if intrinsic.shape[1] not in (3, 4):
            raise CalibrationError(f"intrinsic: expected (3, 3) or (3, 4), got {intrinsic.shape}")
        intrinsic.setflags(write=False)
        object.__setattr__(self, "intrinsic", intrinsic)
        object.__setattr__(self, "distortion", tuple(float(v) for v in self.distortion))
        if self.distortion and len(self.distortion) not in _DISTORTION_COUNTS:
            raise CalibrationError(f"distortion: expected 0, 4, 5 or 8 coefficients, got {len(self.distortion)}")

    def to_rig(self, image_size_px: tuple[int, int], *, camera_name: str = "camera", lidar_name: str = "lidar") -> SensorRig:
        """A rig with ego = the LiDAR frame, one camera and one LiDAR.

        Args:
            image_size_px: ``(width, height)`` (the file does not record it).

        Raises:
            CalibrationFileError: intrinsics a :class:`CameraModel` cannot hold (skew; listed
                in :attr:`unrepresented`).
        """
        size = (int(image_size_px[0]), int(image_size_px[1]))
        if self.intrinsic.shape == (3, 4):
            split = rectified_camera_from_P(self.intrinsic, size, self.path, self.labels[0])
            if isinstance(split, str):
                raise CalibrationFileError(self.path, self.labels[0], split)
            model, camera_SE3_reference = split
            camera_SE3_lidar = camera_SE3_reference.compose(self.camera_SE3_lidar)
        else:
            distortion_model = "radtan" if any(self.distortion) else "pinhole"
            coefficients = self.distortion if distortion_model == "radtan" else ()
            model = camera_from_K(self.intrinsic, size, self.path, self.labels[0], distortion_model, coefficients)
            camera_SE3_lidar = self.camera_SE3_lidar
        return SensorRig(cameras={camera_name: RigCamera(model, camera_SE3_lidar.inverse())}, lidars={lidar_name: SE3.identity()})


def read_pjlab_calib_txt(path: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> PjlabCalib:
    """Read a PJLab SensorsCalibration ``calib.txt``.

    Raises:
        CalibrationFileError: fewer than three lines, a wrong count (9 or 12; 1 zero, 4, 5
            or 8; 12), a malformed number or NaN/inf, or a ``T`` rotation further than
            ``rotation_tol`` from orthonormal.
    """
    return parse_pjlab_calib_txt(read_text(path), path=str(path), rotation_tol=rotation_tol)


def parse_pjlab_calib_txt(text: str, *, path: str = "<string>", rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> PjlabCalib:
    """Parse the text of a PJLab ``calib.txt``; see :func:`read_pjlab_calib_txt`."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 3:
        raise CalibrationFileError(path, None, f"expected 3 lines (K, D, T), got {len(lines)}")
    labels = tuple(tokens[0].rstrip(":") for tokens in lines[:3])
    k_label, d_label, t_label = labels
    intrinsic = parse_number_tokens(lines[0][1:], path, k_label, (9, 12))
    intrinsic = intrinsic.reshape(3, -1)
    raw_distortion = parse_number_tokens(lines[1][1:], path, d_label, (1,) + _DISTORTION_COUNTS)
    if len(raw_distortion) == 1 and raw_distortion[0] != 0.0:
        raise CalibrationFileError(path, d_label, f"expected 0 (no distortion) or 4, 5 or 8 coefficients, got the single value {float(raw_distortion[0])!r}")
    distortion = () if len(raw_distortion) == 1 else tuple(float(v) for v in raw_distortion)
    camera_SE3_lidar = se3_from_matrix(parse_number_tokens(lines[2][1:], path, t_label, 12).reshape(3, 4), path, t_label, rotation_tol)

    notes = orthonormality_note(t_label, camera_SE3_lidar)
    problem = intrinsics_problem(intrinsic[:, :3])
    if problem is not None:
        notes.append(Unrepresented(k_label, f"{problem}; to_rig() cannot build the camera"))
    if intrinsic.shape == (3, 4) and any(distortion):
        notes.append(Unrepresented(d_label, "ignored: with a 3x4 projection matrix the image is rectified (as the PJLab tools do)"))
    notes += [Unrepresented(f"line {i + 4}", "extra line; ignored") for i in range(len(lines) - 3)]
    return PjlabCalib(intrinsic, distortion, camera_SE3_lidar, labels, tuple(notes), path)  # type: ignore[arg-type]


def format_pjlab_calib_txt(calib: PjlabCalib) -> str:
    """The ``calib.txt`` text (``D: 0`` for no distortion; numbers in shortest round-trip form)."""
    k_label, d_label, t_label = calib.labels
    distortion = format_floats(calib.distortion) if calib.distortion else "0"
    return (
        f"{k_label}: {format_floats(calib.intrinsic)}\n"
        f"{d_label}: {distortion}\n"
        f"{t_label}: {format_floats(calib.camera_SE3_lidar.as_matrix()[:3])}\n"
    )


def write_pjlab_calib_txt(calib: PjlabCalib, path: PathLike) -> None:
    """Write :func:`format_pjlab_calib_txt` to ``path``."""
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(format_pjlab_calib_txt(calib))
