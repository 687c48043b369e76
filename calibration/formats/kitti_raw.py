"""KITTI raw-data calibration files (one set per recording day, e.g. ``2011_09_26/``).

``calib_cam_to_cam.txt``::

    calib_time: 09-Jan-2012 13:57:47
    corner_dist: <1>            checkerboard corner spacing of the calibration target (m)
    S_xx: <2>                   image size before rectification (width height)
    K_xx: <9>                   intrinsics before rectification
    D_xx: <5>                   distortion before rectification (k1 k2 p1 p2 k3)
    R_xx: <9>   T_xx: <3>       camera 00 -> camera xx (x_xx = R_xx x_00 + T_xx)
    S_rect_xx: <2>              image size after rectification
    R_rect_xx: <9>              rectifying rotation of camera xx
    P_rect_xx: <12>             projection of rectified camera-00 coordinates into image xx

for ``xx`` = ``00`` .. ``03``; ``calib_velo_to_cam.txt``: ``calib_time``, ``R`` <9>, ``T`` <3>
(velodyne -> camera 00), ``delta_f`` <2>, ``delta_c`` <2> (deprecated);
``calib_imu_to_velo.txt``: ``calib_time``, ``R`` <9>, ``T`` <3> (IMU -> velodyne).

A velodyne point reaches rectified image ``xx`` through
``P_rect_xx @ R_rect_00 @ [R | T]_velo_to_cam``.

Two views of the same files: the **unrectified** cameras (``K_xx``, ``D_xx``, ``S_xx``,
``R_xx``, ``T_xx``: the images of ``*_extract`` drives, and of drives written by
:mod:`av_pipeline.writers.kitti_raw`) and the **rectified** ones (``P_rect_xx``, ``S_rect_xx``,
``R_rect_00``: the images of ``*_sync`` drives). :func:`kitti_raw_view_for` picks the one
that matches a drive folder, as the KITTI raw log reader does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.checks import check_matrix, check_vector
from calibration.errors import CalibrationError, CalibrationFileError
from calibration.formats._common import (
    DEFAULT_REORTHONORMALIZE_TOL,
    PathLike,
    Unrepresented,
    camera_from_K,
    format_float,
    format_floats,
    orthonormality_note,
    parse_number_tokens,
    read_text,
    rectified_camera_from_P,
    se3_from_rotation,
)
from calibration.formats._keyed_text import KeyedLine, split_keyed_lines
from calibration.formats.kitti_object import KITTI_LIDAR, projection_notes
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

#: The two camera views of a KITTI raw calibration (see the module docstring).
KITTI_RAW_VIEWS = ("unrectified", "rectified")
#: Default KITTI camera numbers for rig cameras not named ``image_xx``: the colour pair first.
_DEFAULT_CAMERA_NUMBERS = ("02", "03", "01", "00")

CAM_TO_CAM_FILE = "calib_cam_to_cam.txt"
VELO_TO_CAM_FILE = "calib_velo_to_cam.txt"
IMU_TO_VELO_FILE = "calib_imu_to_velo.txt"

_CAMERA_SIZES = {"S": 2, "K": 9, "D": 5, "R": 9, "T": 3, "S_rect": 2, "R_rect": 9, "P_rect": 12}


@dataclass(frozen=True, eq=False)
class KittiRawCamera:
    """One camera ``xx`` of ``calib_cam_to_cam.txt``.

    Attributes:
        size_px: ``S_xx`` ``(width, height)`` before rectification.
        K: ``(3, 3)`` intrinsics before rectification.
        D: ``(5,)`` distortion ``k1, k2, p1, p2, k3`` before rectification.
        camera_SE3_cam00: ``R_xx``, ``T_xx``: camera 00 -> this camera.
        rect_size_px: ``S_rect_xx`` ``(width, height)`` after rectification.
        R_rect: ``(3, 3)`` rectifying rotation, as in the file.
        P_rect: ``(3, 4)`` rectified projection matrix.
    """

    size_px: tuple[int, int]
    K: NDArrayFloat
    D: NDArrayFloat
    camera_SE3_cam00: SE3
    rect_size_px: tuple[int, int]
    R_rect: NDArrayFloat
    P_rect: NDArrayFloat

    def __post_init__(self) -> None:
        for name, shape in (("K", (3, 3)), ("R_rect", (3, 3)), ("P_rect", (3, 4))):
            value = np.array(check_matrix(getattr(self, name), name, *shape))
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        D = np.array(check_vector(self.D, "D", 5))
        D.setflags(write=False)
        object.__setattr__(self, "D", D)
        for name in ("size_px", "rect_size_px"):
            width, height = getattr(self, name)
            object.__setattr__(self, name, (int(width), int(height)))
        SE3.from_rotation_matrix(self.R_rect, name="R_rect")  # validates


@dataclass(frozen=True, eq=False)
class KittiRawCamToCam:
    """``calib_cam_to_cam.txt``.

    Attributes:
        calib_time: the calibration date as written (``"09-Jan-2012 13:57:47"``).
        corner_dist_m: checkerboard corner spacing of the calibration target.
        cameras: ``"00"`` .. ``"03"`` -> :class:`KittiRawCamera` (``"00"`` is required).
        unrepresented: what a rig does not carry.
        path: the file it was read from.
    """

    calib_time: str
    corner_dist_m: float
    cameras: Mapping[str, KittiRawCamera]
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        if "00" not in self.cameras:
            raise CalibrationError(f"cameras: expected the reference camera '00', got {sorted(self.cameras)}")
        object.__setattr__(self, "cameras", MappingProxyType(dict(sorted(self.cameras.items()))))
        object.__setattr__(self, "unrepresented", tuple(self.unrepresented))


@dataclass(frozen=True, eq=False)
class KittiRawVeloToCam:
    """``calib_velo_to_cam.txt``: ``cam00_SE3_velo`` plus the deprecated ``delta_f``, ``delta_c``."""

    calib_time: str
    cam00_SE3_velo: SE3
    delta_f: tuple[float, float] = (0.0, 0.0)
    delta_c: tuple[float, float] = (0.0, 0.0)
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)


@dataclass(frozen=True, eq=False)
class KittiRawImuToVelo:
    """``calib_imu_to_velo.txt``: ``velo_SE3_imu``."""

    calib_time: str
    velo_SE3_imu: SE3
    unrepresented: tuple[Unrepresented, ...] = ()
    path: str = field(default="<string>", compare=False)


@dataclass(frozen=True, eq=False)
class KittiRawCalib:
    """The three calibration files of one KITTI raw recording day.

    Attributes:
        cam_to_cam, velo_to_cam: the camera and velodyne calibrations.
        imu_to_velo: the IMU calibration, or ``None`` when the folder has no such file.
    """

    cam_to_cam: KittiRawCamToCam
    velo_to_cam: KittiRawVeloToCam
    imu_to_velo: KittiRawImuToVelo | None = None

    @property
    def unrepresented(self) -> tuple[Unrepresented, ...]:
        """The notes of all three files, prefixed with their file names."""
        notes = []
        parts = (self.cam_to_cam, self.velo_to_cam, self.imu_to_velo)
        for name, part in zip((CAM_TO_CAM_FILE, VELO_TO_CAM_FILE, IMU_TO_VELO_FILE), parts):
            if part is None:
                notes.append(Unrepresented(name, "file not found; velo_SE3_imu unknown"))
                continue
            notes += [Unrepresented(f"{name}: {note.field}", note.reason) for note in part.unrepresented]
        return tuple(notes)

    @classmethod
    def from_rig(
        cls,
        rig: SensorRig,
        *,
        camera_numbers: Mapping[str, str] | None = None,
        lidar: str | None = None,
        calib_time: str = "01-Jan-2024 00:00:00",
        corner_dist_m: float = 0.0995,
    ) -> KittiRawCalib:
        """The calibration files of ``rig``: unrectified cameras, velodyne = ``lidar``, IMU = ego.

        Each camera is written with its ``K``, distortion (``D`` = ``k1 k2 p1 p2 k3``, zero
        padded) and image size; ``R_xx, T_xx`` place it relative to camera ``00``. The
        rectification keys say "no rectification" (``R_rect = I``, ``P_rect = [K | 0]``,
        ``S_rect = S``), so read the result back with the unrectified view
        (``to_rig(rectified=False)``). When no rig camera is numbered ``00``, the first
        camera is written as ``00`` too (the file's reference).

        Args:
            rig: cameras with the ``pinhole`` or ``radtan`` model (at most 5 coefficients)
                and at least one LiDAR.
            camera_numbers: rig camera name -> ``"00"`` .. ``"03"``; default: cameras named
                ``image_xx`` keep ``xx``, the others take ``02``, ``03``, ``01``, ``00`` in
                rig order. Cameras left out are not written.
            lidar: the LiDAR that plays the velodyne (default: the rig's first).

        Raises:
            CalibrationError: no LiDAR or no camera, more than four cameras, a camera model
                KITTI cannot hold, or a bad ``camera_numbers`` mapping.
        """
        if not rig.lidars:
            raise CalibrationError("KITTI raw calibration: the rig has no LiDAR; the files are relative to the velodyne")
        lidar = lidar or rig.lidar_names[0]
        if lidar not in rig.lidars:
            raise CalibrationError(f"lidar: {lidar!r} is not in the rig {list(rig.lidar_names)}")
        numbers = dict(camera_numbers) if camera_numbers is not None else _default_camera_numbers(rig)
        if not numbers:
            raise CalibrationError("KITTI raw calibration: the rig has no camera; calib_cam_to_cam.txt needs camera 00")
        values = list(numbers.values())
        if len(set(values)) != len(values) or not set(values) <= {"00", "01", "02", "03"}:
            raise CalibrationError(f"camera_numbers: expected distinct values among 00..03, got {numbers}")
        for name in numbers:
            if name not in rig.cameras:
                raise CalibrationError(f"camera_numbers: {name!r} is not a rig camera {list(rig.camera_names)}")
            model = rig.cameras[name].model
            if model.distortion_model not in ("pinhole", "radtan") or len(model.distortion) > 5:
                raise CalibrationError(
                    f"camera {name!r}: KITTI raw stores radial-tangential distortion with 5 coefficients, "
                    f"got {model.distortion_model} with {len(model.distortion)}"
                )
        reference = next((n for n, xx in numbers.items() if xx == "00"), next(iter(numbers)))
        ego_SE3_cam00 = rig.cameras[reference].ego_SE3_camera
        entries = {}
        for name, xx in list(numbers.items()) + ([(reference, "00")] if "00" not in values else []):
            camera = rig.cameras[name]
            model = camera.model
            D = np.zeros(5)
            D[: len(model.distortion)] = model.distortion
            size = (model.width_px, model.height_px)
            entries[xx] = KittiRawCamera(
                size_px=size, K=model.K, D=D, camera_SE3_cam00=camera.ego_SE3_camera.inverse().compose(ego_SE3_cam00),
                rect_size_px=size, R_rect=np.eye(3), P_rect=np.column_stack([model.K, np.zeros(3)]),
            )  # fmt: skip
        ego_SE3_lidar = rig.lidars[lidar]
        return cls(
            KittiRawCamToCam(calib_time, corner_dist_m, entries),
            KittiRawVeloToCam(calib_time, ego_SE3_cam00.inverse().compose(ego_SE3_lidar)),
            KittiRawImuToVelo(calib_time, ego_SE3_lidar.inverse()),
        )

    def view_notes(self, *, rectified: bool) -> tuple[Unrepresented, ...]:
        """What a rig of one view ignores: one note per key that describes the other view,
        its field listing the key for every camera (``"P_rect_00, P_rect_01, ..."``)."""
        keys = ("S_rect", "R_rect", "P_rect") if not rectified else ("S", "K", "D", "R", "T")
        view, other = ("rectified", "unrectified") if rectified else ("unrectified", "rectified")
        return tuple(
            Unrepresented(
                ", ".join(f"{key}_{xx}" for xx in self.cam_to_cam.cameras),
                f"ignored: describes the {other} cameras, this rig is the {view} view",
            )
            for key in keys
        )

    def to_rig(self, *, rectified: bool = True) -> SensorRig:
        """A rig with ego = the velodyne frame, cameras ``image_00`` .. ``image_03``, LiDAR ``velodyne``.

        Args:
            rectified: ``True`` for the rectified images (``*_sync`` ``image_xx/data``): each
                camera is rectified camera 00 shifted by ``K^-1 P_rect_xx[:, 3]``, with
                ``S_rect_xx`` and no distortion. ``False`` for the unrectified images
                (``*_extract``): ``K_xx``, ``D_xx`` (radtan), ``S_xx`` and ``R_xx``, ``T_xx``.
        """
        cam00_SE3_velo = self.velo_to_cam.cam00_SE3_velo
        reference = self.cam_to_cam.cameras["00"]
        rect_SE3_velo = SE3.from_rotation_matrix(reference.R_rect, name="R_rect_00").compose(cam00_SE3_velo)
        cameras = {}
        for xx, camera in self.cam_to_cam.cameras.items():
            if rectified:
                split = rectified_camera_from_P(camera.P_rect, camera.rect_size_px, self.cam_to_cam.path, f"P_rect_{xx}")
                if isinstance(split, str):
                    continue  # reported in unrepresented
                model, cam_SE3_rect = split
                cam_SE3_velo = cam_SE3_rect.compose(rect_SE3_velo)
            else:
                model = camera_from_K(camera.K, camera.size_px, self.cam_to_cam.path, f"K_{xx}", "radtan", camera.D)
                cam_SE3_velo = camera.camera_SE3_cam00.compose(cam00_SE3_velo)
            cameras[f"image_{xx}"] = RigCamera(model, cam_SE3_velo.inverse())
        return SensorRig(cameras=cameras, lidars={KITTI_LIDAR: SE3.identity()})


def kitti_raw_view_for(path: PathLike) -> str:
    """The camera view (one of :data:`KITTI_RAW_VIEWS`) whose images a KITTI raw path holds.

    A drive folder ``*_sync`` holds rectified images and ``*_extract`` unrectified ones (the
    KITTI raw log reader decides the same way). A recording-day folder (or a file in it)
    whose drive folders are all ``*_sync`` gets ``"rectified"``; anything else, a folder
    with only the calibration files included, gets ``"unrectified"``: the cameras as they
    are, with their distortion and their own extrinsics.
    """
    p = Path(path)
    if p.is_dir() and "_drive_" in p.name:
        return "unrectified" if p.name.endswith("_extract") else "rectified"
    day = p if p.is_dir() else p.parent
    drives = [d.name for d in day.iterdir() if d.is_dir() and "_drive_" in d.name] if day.is_dir() else []
    return "rectified" if drives and all(name.endswith("_sync") for name in drives) else "unrectified"


def _default_camera_numbers(rig: SensorRig) -> dict[str, str]:
    numbers = {}
    for name in rig.camera_names:
        prefix, _, number = name.partition("_")  # image_02 (KITTI raw) or image_2 (KITTI object)
        xx = f"{int(number):02d}" if prefix == "image" and number.isdigit() and int(number) <= 3 else None
        if xx is not None and xx not in numbers.values():
            numbers[name] = xx
    free = [xx for xx in _DEFAULT_CAMERA_NUMBERS if xx not in numbers.values()]
    others = [name for name in rig.camera_names if name not in numbers]
    if len(others) > len(free):
        raise CalibrationError(
            f"KITTI raw holds at most 4 cameras (00..03), the rig has {len(rig.camera_names)}: {list(rig.camera_names)}"
        )
    numbers.update(zip(others, free))
    return {name: numbers[name] for name in rig.camera_names}


# ---------------------------------------------------------------------- reading
def read_kitti_raw_calib(folder: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> KittiRawCalib:
    """Read ``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt`` and (if present)
    ``calib_imu_to_velo.txt`` from a recording-day folder.

    Raises:
        CalibrationFileError: see :func:`parse_kitti_raw_cam_to_cam`; ``OSError`` when one of
            the first two files is missing.
    """
    folder = Path(folder)
    cam_to_cam = read_kitti_raw_cam_to_cam(folder / CAM_TO_CAM_FILE, rotation_tol=rotation_tol)
    velo_to_cam = read_kitti_raw_velo_to_cam(folder / VELO_TO_CAM_FILE, rotation_tol=rotation_tol)
    imu_path = folder / IMU_TO_VELO_FILE
    imu_to_velo = read_kitti_raw_imu_to_velo(imu_path, rotation_tol=rotation_tol) if imu_path.exists() else None
    return KittiRawCalib(cam_to_cam, velo_to_cam, imu_to_velo)


def read_kitti_raw_cam_to_cam(path: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> KittiRawCamToCam:
    """Read ``calib_cam_to_cam.txt``; see :func:`parse_kitti_raw_cam_to_cam`."""
    return parse_kitti_raw_cam_to_cam(read_text(path), path=str(path), rotation_tol=rotation_tol)


def parse_kitti_raw_cam_to_cam(
    text: str, *, path: str = "<string>", rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL
) -> KittiRawCamToCam:
    """Parse ``calib_cam_to_cam.txt`` text.

    Every camera ``xx`` that has any ``*_xx`` key must have all eight; ``00`` is required.

    Raises:
        CalibrationFileError: a missing key, malformed number, wrong count, NaN/inf,
            non-integer image size, or a rotation further than ``rotation_tol`` from orthonormal.
    """
    lines = split_keyed_lines(text, path)
    calib_time = _required(lines, "calib_time", path).text
    corner_dist = float(parse_number_tokens(_required(lines, "corner_dist", path).tokens, path, "corner_dist", 1)[0])
    notes = [
        Unrepresented("calib_time", "calibration date; kept on the result, not in a rig"),
        Unrepresented("corner_dist", "checkerboard corner spacing of the calibration target; not in a rig"),
    ]
    suffixes = sorted({key.rsplit("_", 1)[1] for key in lines if _camera_key(key)})
    if "00" not in suffixes:
        suffixes.insert(0, "00")
    cameras = {}
    for xx in suffixes:
        v = {name: parse_number_tokens(_required(lines, f"{name}_{xx}", path).tokens, path, f"{name}_{xx}", size)
             for name, size in _CAMERA_SIZES.items()}
        camera_SE3_cam00 = se3_from_rotation(v["R"].reshape(3, 3), v["T"], path, f"R_{xx}", rotation_tol)
        rect = se3_from_rotation(v["R_rect"].reshape(3, 3), np.zeros(3), path, f"R_rect_{xx}", rotation_tol)
        notes += orthonormality_note(f"R_{xx}", camera_SE3_cam00)
        if xx == "00":
            notes += orthonormality_note("R_rect_00", rect)
        else:
            notes.append(
                Unrepresented(f"R_rect_{xx}", "not used by a rig: rectified cameras share R_rect_00's orientation")
            )
        cameras[xx] = KittiRawCamera(
            size_px=_size(v["S"], path, f"S_{xx}"),
            K=v["K"].reshape(3, 3),
            D=v["D"],
            camera_SE3_cam00=camera_SE3_cam00,
            rect_size_px=_size(v["S_rect"], path, f"S_rect_{xx}"),
            R_rect=v["R_rect"].reshape(3, 3),
            P_rect=v["P_rect"].reshape(3, 4),
        )
    known = {"calib_time", "corner_dist"} | {f"{name}_{xx}" for xx in suffixes for name in _CAMERA_SIZES}
    notes += [Unrepresented(key, "unknown key; ignored") for key in lines if key not in known]
    notes += projection_notes({f"P_rect_{xx}": cam.P_rect for xx, cam in cameras.items()}, reference="P_rect_00")
    return KittiRawCamToCam(calib_time, corner_dist, cameras, tuple(notes), path)


def read_kitti_raw_velo_to_cam(path: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> KittiRawVeloToCam:
    """Read ``calib_velo_to_cam.txt``; see :func:`parse_kitti_raw_velo_to_cam`."""
    return parse_kitti_raw_velo_to_cam(read_text(path), path=str(path), rotation_tol=rotation_tol)


def parse_kitti_raw_velo_to_cam(
    text: str, *, path: str = "<string>", rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL
) -> KittiRawVeloToCam:
    """Parse ``calib_velo_to_cam.txt`` text (``delta_f``, ``delta_c`` optional, default 0).

    Raises:
        CalibrationFileError: see :func:`parse_kitti_raw_cam_to_cam`.
    """
    lines = split_keyed_lines(text, path)
    calib_time, transform, notes = _parse_RT(lines, path, rotation_tol)
    deltas = {}
    for key in ("delta_f", "delta_c"):
        deltas[key] = (0.0, 0.0)
        if key in lines:
            value = parse_number_tokens(lines[key].tokens, path, key, 2)
            deltas[key] = (float(value[0]), float(value[1]))
            notes.append(Unrepresented(key, "deprecated in the KITTI devkit; kept on the result, not in a rig"))
    notes += [Unrepresented(key, "unknown key; ignored") for key in lines if key not in {"calib_time", "R", "T", "delta_f", "delta_c"}]
    return KittiRawVeloToCam(calib_time, transform, deltas["delta_f"], deltas["delta_c"], tuple(notes), path)


def read_kitti_raw_imu_to_velo(path: PathLike, *, rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL) -> KittiRawImuToVelo:
    """Read ``calib_imu_to_velo.txt``; see :func:`parse_kitti_raw_imu_to_velo`."""
    return parse_kitti_raw_imu_to_velo(read_text(path), path=str(path), rotation_tol=rotation_tol)


def parse_kitti_raw_imu_to_velo(
    text: str, *, path: str = "<string>", rotation_tol: float = DEFAULT_REORTHONORMALIZE_TOL
) -> KittiRawImuToVelo:
    """Parse ``calib_imu_to_velo.txt`` text.

    Raises:
        CalibrationFileError: see :func:`parse_kitti_raw_cam_to_cam`.
    """
    lines = split_keyed_lines(text, path)
    calib_time, transform, notes = _parse_RT(lines, path, rotation_tol)
    notes.append(Unrepresented("R, T", "SensorRig has no IMU; kept as velo_SE3_imu, not in a rig"))
    notes += [Unrepresented(key, "unknown key; ignored") for key in lines if key not in {"calib_time", "R", "T"}]
    return KittiRawImuToVelo(calib_time, transform, tuple(notes), path)


# ---------------------------------------------------------------------- writing
def format_kitti_raw_cam_to_cam(cam_to_cam: KittiRawCamToCam) -> str:
    """The text of ``calib_cam_to_cam.txt`` (numbers in shortest round-trip form)."""
    lines = [f"calib_time: {cam_to_cam.calib_time}", f"corner_dist: {format_float(cam_to_cam.corner_dist_m)}"]
    for xx, camera in cam_to_cam.cameras.items():
        matrix = camera.camera_SE3_cam00.as_matrix()
        lines += [
            f"S_{xx}: {format_floats(camera.size_px)}",
            f"K_{xx}: {format_floats(camera.K)}",
            f"D_{xx}: {format_floats(camera.D)}",
            f"R_{xx}: {format_floats(matrix[:3, :3])}",
            f"T_{xx}: {format_floats(matrix[:3, 3])}",
            f"S_rect_{xx}: {format_floats(camera.rect_size_px)}",
            f"R_rect_{xx}: {format_floats(camera.R_rect)}",
            f"P_rect_{xx}: {format_floats(camera.P_rect)}",
        ]
    return "\n".join(lines) + "\n"


def format_kitti_raw_velo_to_cam(velo_to_cam: KittiRawVeloToCam) -> str:
    """The text of ``calib_velo_to_cam.txt``."""
    return _format_RT(velo_to_cam.calib_time, velo_to_cam.cam00_SE3_velo) + (
        f"delta_f: {format_floats(velo_to_cam.delta_f)}\ndelta_c: {format_floats(velo_to_cam.delta_c)}\n"
    )


def format_kitti_raw_imu_to_velo(imu_to_velo: KittiRawImuToVelo) -> str:
    """The text of ``calib_imu_to_velo.txt``."""
    return _format_RT(imu_to_velo.calib_time, imu_to_velo.velo_SE3_imu)


def write_kitti_raw_calib(calib: KittiRawCalib, folder: PathLike) -> None:
    """Write the (two or three) calibration files into ``folder`` (created if needed)."""
    folder = Path(folder)
    os.makedirs(folder, exist_ok=True)
    (folder / CAM_TO_CAM_FILE).write_text(format_kitti_raw_cam_to_cam(calib.cam_to_cam), encoding="utf-8")
    (folder / VELO_TO_CAM_FILE).write_text(format_kitti_raw_velo_to_cam(calib.velo_to_cam), encoding="utf-8")
    if calib.imu_to_velo is not None:
        (folder / IMU_TO_VELO_FILE).write_text(format_kitti_raw_imu_to_velo(calib.imu_to_velo), encoding="utf-8")


# ---------------------------------------------------------------------- helpers
def _camera_key(key: str) -> bool:
    name, _, suffix = key.rpartition("_")
    return name in _CAMERA_SIZES and len(suffix) == 2 and suffix.isdigit()


def _required(lines: dict[str, KeyedLine], key: str, path: str) -> KeyedLine:
    if key not in lines:
        raise CalibrationFileError(path, key, "missing (required)")
    return lines[key]


def _size(values: NDArrayFloat, path: str, field: str) -> tuple[int, int]:
    if np.any(values != np.round(values)) or np.any(values <= 0):
        raise CalibrationFileError(path, field, f"expected two positive whole numbers (width height), got {values.tolist()}")
    return int(values[0]), int(values[1])


def _parse_RT(lines: dict[str, KeyedLine], path: str, rotation_tol: float) -> tuple[str, SE3, list[Unrepresented]]:
    calib_time = _required(lines, "calib_time", path).text
    R = parse_number_tokens(_required(lines, "R", path).tokens, path, "R", 9)
    T = parse_number_tokens(_required(lines, "T", path).tokens, path, "T", 3)
    transform = se3_from_rotation(R.reshape(3, 3), T, path, "R", rotation_tol)
    notes = [Unrepresented("calib_time", "calibration date; kept on the result, not in a rig")]
    return calib_time, transform, notes + orthonormality_note("R", transform)


def _format_RT(calib_time: str, transform: SE3) -> str:
    matrix = transform.as_matrix()
    return f"calib_time: {calib_time}\nR: {format_floats(matrix[:3, :3])}\nT: {format_floats(matrix[:3, 3])}\n"
