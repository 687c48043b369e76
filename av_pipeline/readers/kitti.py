"""KITTI readers: the object-detection layout and raw drives.

Frames and names (both layouts):

- ``ego`` is the velodyne frame (x forward, y left, z up, metres), the LiDAR is named
  ``"velodyne"`` with ``ego_SE3_lidar = identity``. The velodyne frame is where KITTI's
  points and most KITTI tooling (mmdet3d, OpenPCDet) put boxes, and it already has the
  product's axes, so no extra ego frame (IMU, rear axle) is invented.
- Cameras are named after their folders: ``image_0`` .. ``image_3`` (object layout) and
  ``image_00`` .. ``image_03`` (raw drives); their models and extrinsics come from the
  calibration readers in :mod:`calibration.formats` (rectified cameras, no distortion).
- Points: ``(N, 4)`` float32 ``x, y, z, intensity`` (reflectance in ``[0, 1]``), no
  per-point time. NaN/inf values are loaded as stored (readers report, ingest validation
  dead-letters).

**Object layout** (``training/`` or ``testing/`` with ``velodyne/``, ``image_2/``,
``calib/``, ``label_2/``): one frame per sample id (``velodyne/<id>.bin``). KITTI object
samples are unrelated snapshots without time; the reader puts sample id ``k`` at
``k * 100 ms`` (:data:`KITTI_OBJECT_PERIOD_NS`), so keys are stable whichever subset of a
split is present, but neighbouring frames are not consecutive in time. ``label_2`` boxes
become ``Frame.annotations`` in ``ego`` with ``num_lidar_points`` counted in the sweep;
``DontCare`` rows are 2D-only "not labelled here" regions, not objects: they are left out of
the annotations and kept in :class:`KittiLabels` (``dontcare_boxes_px``) and logged.

**Raw drive layout** (``<date>/<date>_drive_<nnnn>_sync/`` with ``velodyne_points``,
``oxts``, ``image_0x`` folders, calibration files in ``<date>/``): one frame per velodyne
sweep at its ``velodyne_points/timestamps.txt`` time (the instant the scanner faced forward,
when the cameras were triggered); each camera contributes its nearest image (within
``max_image_offset_ns``); ``world_SE3_ego`` comes from OXTS (see :func:`oxts_world_SE3_imu`)
interpolated to the sweep time. Timestamps are read as written, to the nanosecond, as UTC
(KITTI wrote local time; only differences matter inside a log). A ``planned_path/`` side
folder (our addition, :mod:`av_pipeline.readers.kitti_planned_path`) gives
``Frame.onboard.planned_path`` (with empty cuboids: KITTI raw has no onboard objects).
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from av_pipeline.boxes import Cuboids, kitti_camera_boxes_to_cuboids
from av_pipeline.taxonomy import with_product_labels
from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.bin_points import read_float32_points
from av_pipeline.readers.kitti_planned_path import PlannedPathFolder
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep, check_decode_size
from av_pipeline.validate import MAX_TIMESTAMP_NS, check_timestamp_ns
from calibration import SE3
from calibration.errors import CalibrationFileError
from calibration.formats.kitti_object import KITTI_CAMERAS, KITTI_LIDAR, KittiObjectCalib, read_kitti_object_calib
from calibration.formats.kitti_raw import KittiRawCalib, read_kitti_raw_calib

_log = logging.getLogger(__name__)

#: Columns of a KITTI velodyne sweep (``intensity`` is the reflectance, 0..1).
KITTI_LIDAR_COLUMNS = ("x", "y", "z", "intensity")
#: Spacing of the synthetic timestamps of KITTI object samples: sample id k is at k * 100 ms.
KITTI_OBJECT_PERIOD_NS = 100_000_000
#: Image size assumed for the rig when an object sample has no image (the common KITTI size).
KITTI_DEFAULT_IMAGE_SIZE_PX = (1242, 375)
#: Earth radius used by the KITTI devkit's Mercator projection (metres).
EARTH_RADIUS_M = 6378137.0
#: The 30 values of one OXTS line, in file order (KITTI raw ``dataformat.txt``).
OXTS_FIELDS = (
    "lat", "lon", "alt", "roll", "pitch", "yaw",
    "vn", "ve", "vf", "vl", "vu",
    "ax", "ay", "az", "af", "al", "au",
    "wx", "wy", "wz", "wf", "wl", "wu",
    "pos_accuracy", "vel_accuracy", "navstat", "numsats", "posmode", "velmode", "orimode",
)  # fmt: skip

_IMAGE_ENCODINGS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


# ---------------------------------------------------------------------- shared pieces
def read_velodyne_bin(path: str | Path) -> np.ndarray:
    """Read a KITTI velodyne file: ``(N, 4)`` float32 ``x, y, z, reflectance`` in the velodyne frame.

    Raises:
        LogFormatError: unreadable, or a size that is not a multiple of 16 bytes.
    """
    return read_float32_points(path, len(KITTI_LIDAR_COLUMNS), field="velodyne points")


def _image_size_px(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # reads the header only
            width, height = int(img.size[0]), int(img.size[1])
        check_decode_size(width, height)
        return width, height
    except Image.DecompressionBombError as exc:
        raise LogFormatError(path, "image", f"image too large to decode safely (Pillow's decompression-bomb limit): {str(exc)[:200]}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise LogFormatError(path, "image", f"not a readable image, cannot tell its size: {str(exc)[:200]}") from exc


def _camera_image(camera: str, timestamp_ns: int, path: Path, size_px: tuple[int, int] | None = None) -> CameraImage:
    """Encoded image bytes; decoding (and its errors) happen in :meth:`CameraImage.decode`."""
    encoding = _IMAGE_ENCODINGS.get(path.suffix.lower())
    if encoding is None:
        raise LogFormatError(path, "image", f"expected one of {sorted(_IMAGE_ENCODINGS)}, got {path.suffix!r}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogFormatError(path, "image", f"cannot read: {exc}") from exc
    width, height = size_px if size_px is not None else _image_size_px(path)
    return CameraImage(camera, timestamp_ns, encoding, data, width, height, source=str(path))


# ---------------------------------------------------------------------- labels
@dataclass(frozen=True, eq=False)
class KittiLabels:
    """The rows of one ``label_2`` file, split into objects and ``DontCare`` regions.

    Attributes (K objects, in file order, ``DontCare`` excluded):
        path: the file.
        types: ``(K,)`` class names (``Car``, ``Pedestrian``, ...).
        truncated: ``(K,)`` float 0..1.
        occluded: ``(K,)`` int 0..3.
        alpha_rad: ``(K,)`` observation angle.
        boxes_px: ``(K, 4)`` 2D box ``left, top, right, bottom`` in image_2 pixels.
        dimensions_hwl_m: ``(K, 3)`` height, width, length.
        locations_cam_m: ``(K, 3)`` bottom centre in the rectified camera-0 frame.
        rotation_y_rad: ``(K,)`` ``ry`` about camera +y.
        scores: ``(K,)`` float32 (the optional 16th column of result files; 1.0 when absent).
        dontcare_boxes_px: ``(D, 4)`` 2D regions marked ``DontCare``.
    """

    path: str
    types: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha_rad: np.ndarray
    boxes_px: np.ndarray
    dimensions_hwl_m: np.ndarray
    locations_cam_m: np.ndarray
    rotation_y_rad: np.ndarray
    scores: np.ndarray
    dontcare_boxes_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.types)

    def to_cuboids(self, calib: KittiObjectCalib, frame: str = "ego") -> Cuboids:
        """The objects as product cuboids in the velodyne frame (named ``frame``).

        Uses ``velo_SE3_rect = (R0_rect @ Tr_velo_to_cam)^-1`` from ``calib``; see
        :func:`~av_pipeline.boxes.kitti_camera_boxes_to_cuboids` for the convention change
        (``h, w, l`` -> ``l, w, h``, ``ry`` -> yaw about +z). The bottom centre is mapped to
        the velodyne frame and raised by ``h / 2`` along velodyne +z (``height_axis="frame_z"``),
        as mmdet3d and OpenPCDet do: this reproduces published per-box point counts.
        """
        return kitti_camera_boxes_to_cuboids(
            self.locations_cam_m,
            self.dimensions_hwl_m,
            self.rotation_y_rad,
            list(self.types),
            calib.rect_SE3_velo.inverse(),
            frame=frame,
            scores=self.scores,
            height_axis="frame_z",
        )


def read_kitti_labels(path: str | Path) -> KittiLabels:
    """Read a KITTI ``label_2`` file (15 columns, or 16 with a score).

    Raises:
        LogFormatError: a line with another column count, a malformed number, or an object
            with a non-positive dimension; the message names the file and line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(path, "label", f"cannot read: {exc}") from exc
    rows: list[list[float]] = []
    types: list[str] = []
    dontcare: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) not in (15, 16):
            raise LogFormatError(path, f"line {line_no}", f"expected 15 or 16 columns (type ... rotation_y [score]), got {len(tokens)}")
        try:
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            raise LogFormatError(path, f"line {line_no}", f"expected numbers after the type, got {tokens[1:]}") from None
        if len(values) == 14:
            values.append(1.0)
        if tokens[0] == "DontCare":
            dontcare.append(values[3:7])
            continue
        if not np.isfinite(values).all():
            raise LogFormatError(path, f"line {line_no}", f"expected finite numbers, got {tokens[1:]}")
        if min(values[7:10]) <= 0:
            raise LogFormatError(path, f"line {line_no}", f"{tokens[0]}: expected positive h, w, l, got {values[7:10]}")
        types.append(tokens[0])
        rows.append(values)
    table = np.array(rows, dtype=np.float64).reshape(-1, 15)
    return KittiLabels(
        path=str(path),
        types=np.array(types, dtype=str),
        truncated=table[:, 0].copy(),
        occluded=table[:, 1].astype(np.int64),
        alpha_rad=table[:, 2].copy(),
        boxes_px=table[:, 3:7].copy(),
        dimensions_hwl_m=table[:, 7:10].copy(),
        locations_cam_m=table[:, 10:13].copy(),
        rotation_y_rad=table[:, 13].copy(),
        scores=table[:, 14].astype(np.float32),
        dontcare_boxes_px=np.array(dontcare, dtype=np.float64).reshape(-1, 4),
    )


# ---------------------------------------------------------------------- object layout
def _sample_id_number(path: object, sample_id: str) -> int:
    """The number of a sample id; its time (number x 100 ms) must be in the product's time range."""
    if not (sample_id.isascii() and sample_id.isdigit()):
        raise LogFormatError(path, "sample id", f"expected a numeric KITTI sample id such as '000001', got {short_repr(sample_id)}")
    number = int(sample_id)
    if number * KITTI_OBJECT_PERIOD_NS > MAX_TIMESTAMP_NS:
        raise LogFormatError(
            path, "sample id", f"sample id {short_repr(sample_id)} puts the frame at {number} x 100 ms, past the latest time {MAX_TIMESTAMP_NS} ns"
        )
    return number


@register_reader
class KittiObjectReader(LogReader):
    """KITTI object-detection split (``training/`` or ``testing/``); see the module docstring.

    ``uri`` is the split folder, or a dataset folder holding ``training/`` and/or
    ``testing/`` (``training`` first; option ``split="testing"`` picks the other one).

    Attributes:
        split_dir: the folder with ``velodyne/``, ``calib/``, ``image_2/``, ``label_2/``.

    Raises:
        LogFormatError: no ``velodyne/`` folder; or the flat mmdet3d demo layout
            (``000008.bin``/``.png``/``.txt`` side by side), which this reader does not
            read because its ``.txt`` holds only ``P2`` (no ``Tr_velo_to_cam``, ``R0_rect``):
            neither the camera extrinsics nor LiDAR-frame boxes can be derived from it.
    """

    name = "kitti_object"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"split"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown kitti_object options {sorted(unknown)}; expected split")
        root = Path(uri)
        split = options.get("split")
        if split is not None:
            root = root / str(split)
        elif not (root / "velodyne").is_dir():
            root = next((root / s for s in ("training", "testing") if (root / s / "velodyne").is_dir()), root)
        if not (root / "velodyne").is_dir():
            if _is_flat_kitti_layout(Path(uri)):
                raise LogFormatError(
                    uri,
                    "layout",
                    "flat KITTI demo layout (<id>.bin, <id>.png, <id>.txt side by side) is not supported: its .txt "
                    "holds only P2, without R0_rect and Tr_velo_to_cam, so camera extrinsics and LiDAR-frame boxes "
                    "cannot be derived; use the KITTI object layout (training/{velodyne,image_2,calib,label_2})",
                )
            raise LogFormatError(uri, "velodyne", f"expected a KITTI object split folder with velodyne/, got none under {root}")
        self.split_dir = root
        self.log_id = root.name
        self._sample_ids: list[str] | None = None
        self._skipped: list[LogFormatError] = []

    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        if not path.is_dir():
            return False
        if (path / "velodyne").is_dir() and ((path / "calib").is_dir() or (path / "image_2").is_dir()):
            return True
        if (path / "training" / "velodyne").is_dir() or (path / "testing" / "velodyne").is_dir():
            return True
        return _is_flat_kitti_layout(path)

    def sample_ids(self) -> list[str]:
        """Sample ids (``"000001"``) in numeric order: the stems of ``velodyne/*.bin`` (listed once).

        Files in ``velodyne/`` that cannot be samples (a non-numeric or out-of-range id, an
        upper-case ``.BIN``) are left out and reported by :meth:`skipped_entries`.
        """
        if self._sample_ids is None:
            ids: list[tuple[int, str]] = []
            skipped: list[LogFormatError] = []
            velodyne = self.split_dir / "velodyne"
            try:
                entries = sorted(velodyne.iterdir())
            except OSError as exc:
                raise LogFormatError(velodyne, "velodyne", f"cannot list the folder: {exc.strerror or exc}") from exc
            for path in entries:
                if path.suffix.lower() != ".bin":
                    continue
                if path.suffix != ".bin":
                    skipped.append(LogFormatError(path, "file name", f"expected the extension '.bin' (lower case), got {short_repr(path.suffix)}: not read"))
                    continue
                try:
                    ids.append((_sample_id_number(path, path.stem), path.stem))
                except LogFormatError as exc:
                    skipped.append(exc)
            self._sample_ids = [sid for _, sid in sorted(ids)]
            self._skipped = skipped
        return self._sample_ids

    def skipped_entries(self) -> list[LogFormatError]:
        """``velodyne/`` files that are not listed as frames (see :meth:`sample_ids`)."""
        self.sample_ids()
        return list(self._skipped)

    def list_frames(self) -> list[FrameRef]:
        """One ref per sample id, at ``int(id) * 100 ms`` (directory listing only)."""
        return [
            FrameRef(self.uri, self.log_id, index, _sample_id_number(self.split_dir, sid) * KITTI_OBJECT_PERIOD_NS, self.name, sid)
            for index, sid in enumerate(self.sample_ids())
        ]

    def read_calib(self, sample_id: str) -> KittiObjectCalib:
        """The sample's calibration (via :func:`calibration.formats.kitti_object.read_kitti_object_calib`).

        Raises:
            LogFormatError: the calib file is missing.
            CalibrationFileError: the calib file lacks a key or has a malformed value
                (names the file and the key).
        """
        path = self.split_dir / "calib" / f"{sample_id}.txt"
        if not path.is_file():
            raise LogFormatError(path, "calib", f"missing calibration file for sample {sample_id}")
        return read_kitti_object_calib(path)

    def load_frame(self, ref: FrameRef) -> Frame:
        """Load one sample: sweep, every ``image_0..3`` image present, rig, labels (training).

        Raises:
            LogFormatError: missing/truncated velodyne file, missing calib file, unreadable
                image header, malformed label file.
            CalibrationFileError: a bad calib file.
        """
        self._check_ref(ref)
        ids = self.sample_ids()
        if not 0 <= ref.index < len(ids):
            raise LogFormatError(self.uri, "frame ref", f"index {ref.index} out of range for {len(ids)} samples")
        sample_id = ids[ref.index]
        timestamp_ns = _sample_id_number(self.split_dir, sample_id) * KITTI_OBJECT_PERIOD_NS
        if timestamp_ns != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"sample {sample_id} is at {timestamp_ns} ns, the ref says {ref.timestamp_ns}")
        velodyne_path = self.split_dir / "velodyne" / f"{sample_id}.bin"
        points = read_velodyne_bin(velodyne_path)
        sweep = LidarSweep(KITTI_LIDAR, timestamp_ns, points, KITTI_LIDAR_COLUMNS)

        images: dict[str, CameraImage] = {}
        for k in range(4):
            folder = self.split_dir / f"image_{k}"
            candidates = [folder / f"{sample_id}{ext}" for ext in (".png", ".jpg", ".jpeg")]
            found = next((p for p in candidates if p.is_file()), None)
            if found is not None:
                images[f"image_{k}"] = _camera_image(f"image_{k}", timestamp_ns, found)
        sizes = {name: (img.width_px, img.height_px) for name, img in images.items()}
        default_size = next(iter(sizes.values()), KITTI_DEFAULT_IMAGE_SIZE_PX)
        calib = self.read_calib(sample_id)
        rig = calib.to_rig({f"image_{k}": sizes.get(f"image_{k}", default_size) for k in range(4)})
        for name, image in images.items():
            if name not in rig.cameras:  # an image whose camera the calib file cannot describe: say so
                key = next(k for k, camera in KITTI_CAMERAS.items() if camera == name)
                reason = next((note.reason for note in calib.unrepresented if note.field == key), "no usable projection matrix")
                raise CalibrationFileError(calib.path, key, f"camera {name} has an image ({image.source}) but {reason}")

        annotations = None
        label_path = self.split_dir / "label_2" / f"{sample_id}.txt"
        if label_path.is_file():
            labels = read_kitti_labels(label_path)
            if len(labels.dontcare_boxes_px):
                _log.debug("%s: %d DontCare regions not in the annotations", label_path, len(labels.dontcare_boxes_px))
            boxes = with_product_labels(labels.to_cuboids(calib, "ego"), "kitti")  # "Car" -> "car", "Car" kept as source label
            annotations = boxes.with_num_lidar_points(boxes.count_points(points))
        return Frame(
            self.log_id,
            timestamp_ns,
            rig,
            None,
            {KITTI_LIDAR: sweep},
            images,
            annotations=annotations,
            source_uri=str(velodyne_path),
        )


def _is_flat_kitti_layout(path: Path) -> bool:
    if not path.is_dir() or (path / "velodyne").exists():
        return False
    for bin_path in path.glob("*.bin"):
        if bin_path.stem.isdigit() and bin_path.with_suffix(".txt").is_file():
            return True
    return False


# ---------------------------------------------------------------------- raw drives: time and OXTS
def parse_kitti_timestamp(text: str) -> int:
    """``"2011-09-26 13:02:25.964389445"`` -> integer nanoseconds since 1970 (read as UTC).

    Raises:
        ValueError: not of that form.
    """
    text = text.strip()
    date_time, _, fraction = text.partition(".")
    seconds = calendar.timegm(time.strptime(date_time, "%Y-%m-%d %H:%M:%S"))
    if fraction and (not fraction.isdigit() or len(fraction) > 9):
        raise ValueError(f"expected up to 9 fractional digits, got {fraction!r}")
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def read_kitti_timestamps(path: str | Path, *, strict: bool = True) -> np.ndarray:
    """Read a KITTI raw ``timestamps.txt``: ``(T,)`` int64 nanoseconds, one per line.

    Args:
        path: the file.
        strict: require strictly increasing times.

    Raises:
        LogFormatError: unreadable file, a malformed line, or (``strict``) a time that is not
            after the previous line's; the message names the file and the line.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(path, "timestamps", f"cannot read: {exc}") from exc
    times: list[int] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = parse_kitti_timestamp(line)
        except (ValueError, OverflowError) as exc:
            raise LogFormatError(
                path, f"line {line_no}", f"expected 'YYYY-MM-DD HH:MM:SS.fffffffff', got {short_repr(line.strip())} ({str(exc)[:100]})"
            ) from None
        check_timestamp_ns(value, path, f"line {line_no}")
        if strict and times and value <= times[-1]:
            raise LogFormatError(
                path,
                f"line {line_no}",
                f"timestamps out of order: {short_repr(line.strip())} ({value} ns) is not after the previous line ({times[-1]} ns)",
            )
        times.append(value)
    return np.array(times, dtype=np.int64)


def read_oxts_packet(path: str | Path) -> np.ndarray:
    """Read one OXTS file: ``(30,)`` float64 in :data:`OXTS_FIELDS` order.

    Angles are radians (roll, pitch, yaw; yaw 0 = east, counter-clockwise), lat/lon degrees,
    alt metres.

    Raises:
        LogFormatError: unreadable, not 30 numbers, or a non-finite lat/lon/alt/roll/pitch/yaw.
    """
    try:
        tokens = Path(path).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogFormatError(path, "oxts", f"cannot read: {exc}") from exc
    if len(tokens) != len(OXTS_FIELDS):
        raise LogFormatError(path, "oxts", f"expected {len(OXTS_FIELDS)} values ({', '.join(OXTS_FIELDS[:6])}, ...), got {len(tokens)}")
    try:
        packet = np.array([float(t) for t in tokens])
    except ValueError:
        raise LogFormatError(path, "oxts", f"expected numbers, got {tokens}") from None
    if not np.isfinite(packet[:6]).all():
        bad = [OXTS_FIELDS[i] for i in range(6) if not np.isfinite(packet[i])]
        raise LogFormatError(path, "oxts", f"expected finite pose values, got NaN/inf in {bad}")
    return packet


def mercator_scale(lat_deg: float) -> float:
    """The devkit's Mercator scale ``cos(lat)`` of the reference latitude."""
    return float(np.cos(np.deg2rad(lat_deg)))


def oxts_world_SE3_imu(packet: np.ndarray, scale: float, origin_m: np.ndarray | None = None) -> SE3:
    """The IMU pose of one OXTS packet, as in the KITTI devkit (``convertOxtsToPose``) and pykitti.

    Translation: Mercator ``x = s * lon * pi * r / 180``, ``y = s * r * ln(tan((90 + lat) * pi / 360))``,
    ``z = alt`` with ``r`` = :data:`EARTH_RADIUS_M` and ``s`` = :func:`mercator_scale` of the
    drive's first latitude, minus ``origin_m``. Rotation: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``.
    The world frame is x east, y north, z up (altitude), metres.

    Args:
        packet: ``(30,)`` (or at least ``(6,)``) from :func:`read_oxts_packet`.
        scale: Mercator scale.
        origin_m: ``(3,)`` subtracted from the translation (the first packet's), or ``None``.
    """
    lat, lon, alt, roll, pitch, yaw = (float(v) for v in packet[:6])
    tx = scale * lon * np.pi * EARTH_RADIUS_M / 180.0
    ty = scale * EARTH_RADIUS_M * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    translation = np.array([tx, ty, alt])
    if origin_m is not None:
        translation = translation - np.asarray(origin_m, dtype=np.float64)
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    return SE3(rz @ ry @ rx, translation)


# ---------------------------------------------------------------------- raw drives: reader
@register_reader
class KittiRawReader(LogReader):
    """A KITTI raw drive folder (``<date>/<date>_drive_<nnnn>_sync``); see the module docstring.

    The recording day's calibration files (``calib_cam_to_cam.txt``,
    ``calib_velo_to_cam.txt``, ``calib_imu_to_velo.txt``) are read from the drive's parent
    folder with :func:`calibration.formats.kitti_raw.read_kitti_raw_calib`. ``*_extract``
    drives (unrectified images) get the unrectified camera models.

    Options:
        strict_timestamps: (default ``True``) a velodyne ``timestamps.txt`` that does not
            increase line by line is a :class:`LogFormatError` naming the file and line;
            ``False`` lists frames in file order and leaves the out-of-order ones to ingest
            validation (``timestamp_order``).
        max_image_offset_ns: a camera's nearest image further than this from the sweep is
            not attached (default 50 ms; KITTI cameras fire at the sweep's forward instant).
        max_pose_offset_ns: how far outside the OXTS time span a sweep may be and still
            take the nearest pose (default 100 ms); further is a :class:`LogFormatError`.

    The world frame is the devkit's local Mercator frame with its origin at the drive's
    first OXTS position (x east, y north, z altitude); ``world_SE3_ego =
    world_SE3_imu @ (velo_SE3_imu)^-1``. Without ``oxts/`` or ``calib_imu_to_velo.txt``
    frames have no pose (``world_SE3_ego = None``).
    """

    name = "kitti_raw"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"strict_timestamps", "max_image_offset_ns", "max_pose_offset_ns"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown kitti_raw options {sorted(unknown)}")
        self.drive_dir = Path(uri)
        self.calib_dir = self.drive_dir.parent
        self.strict_timestamps = bool(options.get("strict_timestamps", True))
        try:
            self.max_image_offset_ns = int(options.get("max_image_offset_ns", 50_000_000))
            self.max_pose_offset_ns = int(options.get("max_pose_offset_ns", 100_000_000))
        except (TypeError, ValueError) as exc:
            raise LogFormatError(uri, "options", f"max_image_offset_ns / max_pose_offset_ns: expected integers (ns): {exc}") from None
        if not (self.drive_dir / "velodyne_points").is_dir():
            raise LogFormatError(uri, "velodyne_points", "expected a KITTI raw drive folder with velodyne_points/")
        self._calib: KittiRawCalib | None = None
        self._sweep_times: np.ndarray | None = None
        self._camera_times: dict[str, np.ndarray] | None = None
        self._oxts_times: np.ndarray | None = None
        self._oxts_origin: tuple[float, np.ndarray] | None = None
        self._planned_paths = PlannedPathFolder(self.drive_dir)

    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        return path.is_dir() and (path / "velodyne_points" / "timestamps.txt").is_file()

    # ------------------------------------------------------------------ listing
    def sweep_times_ns(self) -> np.ndarray:
        """``(T,)`` int64 sweep times from ``velodyne_points/timestamps.txt`` (read once)."""
        if self._sweep_times is None:
            self._sweep_times = read_kitti_timestamps(self.drive_dir / "velodyne_points" / "timestamps.txt", strict=self.strict_timestamps)
        return self._sweep_times

    def list_frames(self) -> list[FrameRef]:
        """One ref per line of ``velodyne_points/timestamps.txt`` (reads that file only).

        Raises:
            LogFormatError: a malformed line, or (``strict_timestamps``) out-of-order times;
                the message names the file and the line.
        """
        return [FrameRef(self.uri, self.log_id, i, int(t), self.name, f"{i:010d}") for i, t in enumerate(self.sweep_times_ns())]

    def skipped_entries(self) -> list[LogFormatError]:
        """Sweep files in ``velodyne_points/data`` beyond the last line of its ``timestamps.txt``
        (no time, so no frame), e.g. all of them when ``timestamps.txt`` is empty."""
        stamps = self.drive_dir / "velodyne_points" / "timestamps.txt"
        count = len(self.sweep_times_ns())
        skipped = []
        try:
            files = sorted((self.drive_dir / "velodyne_points" / "data").glob("*.bin"))
        except OSError:
            return []
        for path in files:
            if not (path.stem.isascii() and path.stem.isdigit()):
                skipped.append(LogFormatError(path, "file name", "expected a 10-digit sweep number such as 0000000000.bin: not read"))
            elif int(path.stem) >= count:
                skipped.append(LogFormatError(path, "timestamps", f"sweep {int(path.stem)} has no line in {stamps} ({count} lines): not read"))
        return skipped

    # ------------------------------------------------------------------ loading
    def read_calib(self) -> KittiRawCalib:
        """The recording day's calibration (cached).

        Raises:
            LogFormatError: ``calib_cam_to_cam.txt`` or ``calib_velo_to_cam.txt`` is missing.
            CalibrationFileError: a file lacks a key or has a malformed value.
        """
        if self._calib is None:
            for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
                if not (self.calib_dir / name).is_file():
                    raise LogFormatError(self.calib_dir / name, "calib", "missing KITTI raw calibration file (expected next to the drive folder)")
            self._calib = read_kitti_raw_calib(self.calib_dir)
        return self._calib

    def _cameras(self) -> dict[str, np.ndarray]:
        if self._camera_times is None:
            times = {}
            for folder in sorted(self.drive_dir.glob("image_0[0-3]")):
                stamps = folder / "timestamps.txt"
                if stamps.is_file():
                    times[folder.name] = read_kitti_timestamps(stamps, strict=True)
            self._camera_times = times
        return self._camera_times

    def _origin(self) -> tuple[float, np.ndarray]:
        if self._oxts_origin is None:
            first = read_oxts_packet(self.drive_dir / "oxts" / "data" / f"{0:010d}.txt")
            scale = mercator_scale(first[0])
            self._oxts_origin = (scale, oxts_world_SE3_imu(first, scale).translation.copy())
        return self._oxts_origin

    def world_SE3_imu_at(self, timestamp_ns: int) -> SE3 | None:
        """IMU pose at ``timestamp_ns``: the OXTS poses around it, interpolated (slerp + linear).

        Returns ``None`` when the drive has no ``oxts/timestamps.txt``.

        Raises:
            LogFormatError: the time is more than ``max_pose_offset_ns`` outside the OXTS
                span, or an OXTS file is missing or malformed.
        """
        stamps = self.drive_dir / "oxts" / "timestamps.txt"
        if not stamps.is_file():
            return None
        if self._oxts_times is None:
            self._oxts_times = read_kitti_timestamps(stamps, strict=True)
        times = self._oxts_times
        if len(times) == 0:
            raise LogFormatError(stamps, "timestamps", "no OXTS timestamps")
        scale, origin = self._origin()

        def pose(index: int) -> SE3:
            return oxts_world_SE3_imu(read_oxts_packet(self.drive_dir / "oxts" / "data" / f"{index:010d}.txt"), scale, origin)

        k = int(np.searchsorted(times, timestamp_ns))
        if k < len(times) and times[k] == timestamp_ns:
            return pose(k)
        if k == 0 or k == len(times):
            nearest = 0 if k == 0 else len(times) - 1
            gap = abs(int(times[nearest]) - int(timestamp_ns))
            if gap > self.max_pose_offset_ns:
                raise LogFormatError(
                    stamps, "timestamps", f"no OXTS pose within {self.max_pose_offset_ns} ns of {timestamp_ns} ns (nearest is {gap} ns away)"
                )
            return pose(nearest)
        fraction = (timestamp_ns - int(times[k - 1])) / float(int(times[k]) - int(times[k - 1]))
        return pose(k - 1).interpolate(pose(k), fraction)

    def load_frame(self, ref: FrameRef) -> Frame:
        """Load one sweep with the nearest image of each camera, the rig, the OXTS pose and,
        when ``planned_path/`` has a file for the sweep, the planned path (``Frame.onboard``).

        Raises:
            LogFormatError: a missing/truncated velodyne file, a missing image or OXTS file,
                a malformed timestamps file, a missing calibration file, a malformed
                planned-path file (see :class:`~av_pipeline.readers.kitti_planned_path.PlannedPathFolder`).
            CalibrationFileError: a bad calibration file.
        """
        self._check_ref(ref)
        times = self.sweep_times_ns()
        if not 0 <= ref.index < len(times) or int(times[ref.index]) != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"no sweep {ref.index} at {ref.timestamp_ns} ns in this drive")
        timestamp_ns = ref.timestamp_ns
        velodyne_path = self.drive_dir / "velodyne_points" / "data" / f"{ref.index:010d}.bin"
        if not velodyne_path.is_file():
            raise LogFormatError(velodyne_path, "velodyne points", f"missing sweep file for line {ref.index + 1} of velodyne_points/timestamps.txt")
        sweep = LidarSweep(KITTI_LIDAR, timestamp_ns, read_velodyne_bin(velodyne_path), KITTI_LIDAR_COLUMNS)

        calib = self.read_calib()
        rig = calib.to_rig(rectified=not self.drive_dir.name.endswith("_extract"))
        images: dict[str, CameraImage] = {}
        for camera, camera_times in self._cameras().items():
            if camera not in rig.cameras or len(camera_times) == 0:
                continue
            j = int(np.argmin(np.abs(camera_times - timestamp_ns)))
            if abs(int(camera_times[j]) - timestamp_ns) > self.max_image_offset_ns:
                continue
            folder = self.drive_dir / camera / "data"
            found = next((folder / f"{j:010d}{ext}" for ext in (".png", ".jpg") if (folder / f"{j:010d}{ext}").is_file()), None)
            if found is None:
                raise LogFormatError(folder / f"{j:010d}.png", "image", f"missing image for line {j + 1} of {camera}/timestamps.txt")
            model = rig.cameras[camera].model
            images[camera] = _camera_image(camera, int(camera_times[j]), found, (model.width_px, model.height_px))

        world_SE3_ego = None
        world_SE3_imu = self.world_SE3_imu_at(timestamp_ns)
        if world_SE3_imu is not None and calib.imu_to_velo is not None:
            world_SE3_ego = world_SE3_imu.compose(calib.imu_to_velo.velo_SE3_imu.inverse())
        velo_SE3_imu = calib.imu_to_velo.velo_SE3_imu if calib.imu_to_velo is not None else None
        onboard = self._planned_paths.onboard_at(ref.index, timestamp_ns, velo_SE3_imu)
        return Frame(self.log_id, timestamp_ns, rig, world_SE3_ego, {KITTI_LIDAR: sweep}, images, onboard, source_uri=str(velodyne_path))


__all__ = [
    "EARTH_RADIUS_M",
    "KITTI_DEFAULT_IMAGE_SIZE_PX",
    "KITTI_LIDAR_COLUMNS",
    "KITTI_OBJECT_PERIOD_NS",
    "KittiLabels",
    "KittiObjectReader",
    "KittiRawReader",
    "OXTS_FIELDS",
    "mercator_scale",
    "oxts_world_SE3_imu",
    "parse_kitti_timestamp",
    "read_kitti_labels",
    "read_kitti_timestamps",
    "read_oxts_packet",
    "read_velodyne_bin",
]
