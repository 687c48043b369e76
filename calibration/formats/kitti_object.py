"""KITTI object-detection calibration files (``training/calib/000001.txt``).

One ``key: numbers`` line per matrix, row-major::

    P0: <12>   P1: <12>   P2: <12>   P3: <12>     rectified projection matrices (3, 4)
    R0_rect: <9>                                  rectifying rotation of camera 0 (3, 3)
    Tr_velo_to_cam: <12>                          velodyne -> camera 0 (3, 4)
    Tr_imu_to_velo: <12>                          IMU -> velodyne (3, 4)

A velodyne point reaches camera ``i``'s pixels through ``P_i @ R0_rect @ Tr_velo_to_cam``.
The KITTI tracking files' spellings (``R_rect``, ``Tr_velo_cam``, ``Tr_imu_velo``, lines
without a colon) are read too.

>>> text = '''P0: 700 0 600 0 0 700 180 0 0 0 1 0
... P1: 700 0 600 -380 0 700 180 0 0 0 1 0
... P2: 700 0 600 45 0 700 180 0.2 0 0 1 0.003
... P3: 700 0 600 -340 0 700 180 2.2 0 0 1 0.003
... R0_rect: 1 0 0 0 1 0 0 0 1
... Tr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.08 1 0 0 -0.27
... Tr_imu_to_velo: 1 0 0 -0.8 0 1 0 0.3 0 0 1 -0.8'''
>>> calib = parse_kitti_object_calib(text)
>>> rig = calib.to_rig(image_size_px=(1242, 375))
>>> sorted(rig.cameras), sorted(rig.lidars)
(['image_0', 'image_1', 'image_2', 'image_3'], ['velodyne'])
>>> [str(note) for note in calib.unrepresented]  # doctest: +ELLIPSIS
['Tr_imu_to_velo: SensorRig has no IMU; kept as velo_SE3_imu, not in to_rig()']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.checks import check_matrix
from calibration.errors import CalibrationError, CalibrationFileError, short_repr
from calibration.formats._common import (
    DEFAULT_REORTHONORMALIZE_TOL,
    PathLike,
    Unrepresented,
    format_floats,
    intrinsics_problem,
    orthonormality_note,
    parse_number_tokens,
    read_text,
    rectified_camera_from_P,
    se3_from_matrix,
    se3_from_rotation,
)
from calibration.formats._keyed_text import split_keyed_lines
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

#: Projection-matrix keys and the rig camera names they become (KITTI's folder names).
KITTI_CAMERAS: Mapping[str, str] = MappingProxyType({"P0": "image_0", "P1": "image_1", "P2": "image_2", "P3": "image_3"})
#: Name of the LiDAR in rigs built from KITTI files (its frame is the rig's ``ego``).
KITTI_LIDAR = "velodyne"

_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
_SIZES = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12, "Tr_imu_to_velo": 12}


@dataclass(frozen=True, eq=False)
class KittiObjectCalib:
    """The contents of a KITTI object calib file.

    Attributes:
        P: ``"P0"`` .. ``"P3"`` -> ``(3, 4)`` rectified projection matrices, as in the file.
        R0_rect: ``(3, 3)`` rectifying rotation, as in the file (``rect_SE3_cam0``'s matrix
            before re-orthonormalisation).
        cam0_SE3_velo: ``Tr_velo_to_cam``: velodyne -> (unrectified) camera 0.
        velo_SE3_imu: ``Tr_imu_to_velo``: IMU -> velodyne, or ``None`` when absent.
        unrepresented: what :meth:`to_rig` does not carry (see the module docs).
        path: the file it was read from (``"<string>"`` for text).

    Raises:
        CalibrationError: wrong keys in ``P``, wrong shapes, or an ``R0_rect`` far from a rotation.
    """

    P: Mapping[str, NDArrayFloat]
    R0_rect: NDArrayFloat
    cam0_SE3_velo: SE3
    velo_SE3_imu: SE3 | None = None
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        if set(self.P) != set(KITTI_CAMERAS):
            raise CalibrationError(f"P: expected keys {sorted(KITTI_CAMERAS)}, got {sorted(self.P)}")
        matrices = {}
        for key in KITTI_CAMERAS:
            matrix = np.array(check_matrix(self.P[key], key, 3, 4))
            matrix.setflags(write=False)
            matrices[key] = matrix
        rect = np.array(check_matrix(self.R0_rect, "R0_rect", 3, 3))
        rect.setflags(write=False)
        SE3.from_rotation_matrix(rect, name="R0_rect")  # validates
        object.__setattr__(self, "P", MappingProxyType(matrices))
        object.__setattr__(self, "R0_rect", rect)
        object.__setattr__(self, "unrepresented", tuple(self.unrepresented))

    @property
    def rect_SE3_cam0(self) -> SE3:
        """``R0_rect`` as a transform (nearest rotation): camera 0 -> rectified camera 0."""
        return SE3.from_rotation_matrix(self.R0_rect, name="R0_rect")

    @property
    def rect_SE3_velo(self) -> SE3:
        """Velodyne -> rectified camera 0 (the frame ``P_i`` and ``label_2`` boxes live in)."""
        return self.rect_SE3_cam0.compose(self.cam0_SE3_velo)

    def to_rig(self, image_size_px: tuple[int, int] | Mapping[str, tuple[int, int]]) -> SensorRig:
        """A rig with ego = the velodyne frame, cameras ``image_0`` .. ``image_3``, LiDAR ``velodyne``.

        Camera ``i`` is the rectified camera 0 frame shifted by ``K_i^-1 P_i[:, 3]``, so its
        model (``K_i``, no distortion: KITTI images are rectified) reproduces
        ``P_i @ R0_rect @ Tr_velo_to_cam``. Cameras whose ``P_i`` has no ``K [I | t]`` form
        (listed in :attr:`unrepresented`) are left out.

        Args:
            image_size_px: ``(width, height)`` for all cameras, or camera name -> size. KITTI
                calib files do not record it (object images are 1224..1242 x 370..376).
        """
        rect_SE3_velo = self.rect_SE3_velo
        cameras = {}
        for key, name in KITTI_CAMERAS.items():
            size = image_size_px[name] if isinstance(image_size_px, Mapping) else image_size_px
            split = rectified_camera_from_P(self.P[key], (int(size[0]), int(size[1])), self.path, key)
            if isinstance(split, str):
                continue
            model, cam_SE3_rect = split
            cameras[name] = RigCamera(model, cam_SE3_rect.compose(rect_SE3_velo).inverse())
        return SensorRig(cameras=cameras, lidars={KITTI_LIDAR: SE3.identity()})


def read_kitti_object_calib(path: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> KittiObjectCalib:
    """Read a KITTI object calib file.

    Args:
        path: the ``calib/XXXXXX.txt`` file.
        rotation_tol: largest accepted ``|R^T R - I|_F`` of ``R0_rect`` and the transforms
            (the files' 7 significant digits leave about ``1e-7``).

    Raises:
        CalibrationFileError: a missing key, malformed number, wrong count, NaN/inf, or a
            rotation further than ``rotation_tol`` from orthonormal.
    """
    return parse_kitti_object_calib(read_text(path), path=str(path), rotation_tol=rotation_tol)


def parse_kitti_object_calib(
    text: str, *, path: str = "<string>", rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL
) -> KittiObjectCalib:
    """Parse the text of a KITTI object calib file; see :func:`read_kitti_object_calib`."""
    lines = split_keyed_lines(text, path, colon_optional=True)
    values: dict[str, NDArrayFloat] = {}
    notes: list[Unrepresented] = []
    for key, line in lines.items():
        canonical = _ALIASES.get(key, key)
        if canonical not in _SIZES:
            notes.append(Unrepresented(key, "unknown key; ignored"))
            continue
        if canonical in values:
            raise CalibrationFileError(path, key, f"given twice (as {canonical!r} and {short_repr(key)})")
        values[canonical] = parse_number_tokens(line.tokens, path, key, _SIZES[canonical])
    for key in _SIZES:
        if key not in values and key != "Tr_imu_to_velo":
            raise CalibrationFileError(path, key, f"missing (expected a line '{key}: <{_SIZES[key]} numbers>')")

    P = {key: values[key].reshape(3, 4) for key in KITTI_CAMERAS}
    rect = se3_from_rotation(values["R0_rect"].reshape(3, 3), np.zeros(3), path, "R0_rect", rotation_tol)
    cam0_SE3_velo = se3_from_matrix(values["Tr_velo_to_cam"].reshape(3, 4), path, "Tr_velo_to_cam", rotation_tol)
    velo_SE3_imu = None
    if "Tr_imu_to_velo" in values:
        velo_SE3_imu = se3_from_matrix(values["Tr_imu_to_velo"].reshape(3, 4), path, "Tr_imu_to_velo", rotation_tol)

    notes += orthonormality_note("R0_rect", rect) + orthonormality_note("Tr_velo_to_cam", cam0_SE3_velo)
    if velo_SE3_imu is not None:
        notes += orthonormality_note("Tr_imu_to_velo", velo_SE3_imu)
        notes.append(Unrepresented("Tr_imu_to_velo", "SensorRig has no IMU; kept as velo_SE3_imu, not in to_rig()"))
    notes += projection_notes(P, reference="P0")
    return KittiObjectCalib(P, values["R0_rect"].reshape(3, 3), cam0_SE3_velo, velo_SE3_imu, tuple(notes), path)


def projection_notes(P: Mapping[str, NDArrayFloat], reference: str) -> list[Unrepresented]:
    """Notes for rectified projection matrices a rig cannot hold, or whose K differs from the reference's."""
    notes = []
    for key, matrix in P.items():
        problem = intrinsics_problem(matrix[:, :3])
        if problem is not None:
            notes.append(Unrepresented(key, f"not of the form K [I | t] ({problem}); camera left out of to_rig()"))
        elif key != reference and not np.allclose(matrix[:, :3], P[reference][:, :3], rtol=1e-9, atol=1e-9):
            notes.append(
                Unrepresented(
                    key,
                    f"intrinsic block differs from {reference}'s (rectified cameras normally share one K); "
                    "to_rig() keeps each camera's own K",
                )
            )
    return notes


def format_kitti_object_calib(calib: KittiObjectCalib) -> str:
    """The calib file text: ``P0``..``P3``, ``R0_rect``, ``Tr_velo_to_cam`` and, when set,
    ``Tr_imu_to_velo``, with numbers printed exactly (shortest round-trip form)."""
    lines = [f"{key}: {format_floats(calib.P[key])}" for key in KITTI_CAMERAS]
    lines.append(f"R0_rect: {format_floats(calib.R0_rect)}")
    lines.append(f"Tr_velo_to_cam: {format_floats(calib.cam0_SE3_velo.as_matrix()[:3])}")
    if calib.velo_SE3_imu is not None:
        lines.append(f"Tr_imu_to_velo: {format_floats(calib.velo_SE3_imu.as_matrix()[:3])}")
    return "\n".join(lines) + "\n"


def write_kitti_object_calib(calib: KittiObjectCalib, path: PathLike) -> None:
    """Write :func:`format_kitti_object_calib` to ``path``."""
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(format_kitti_object_calib(calib))
