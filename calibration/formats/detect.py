"""Read any supported calibration file into a rig, choosing the format by name and content.

>>> from calibration.formats.detect import detect_format
>>> detect_format("calib/000001.txt", "P0: 1 0 0 0 0 1 0 0 0 0 1 0\\n")
'kitti_object'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calibration.camera import CameraModel
from calibration.errors import CalibrationError, CalibrationFileError
from calibration.formats._common import PathLike, Unrepresented
from calibration.rig import RigCamera, SensorRig
from calibration.se3 import SE3

#: Format names :func:`read_any_rig` accepts.
RIG_FORMATS = ("rig", "kitti_object", "kitti_raw", "nuscenes", "ros_camera_info", "opencv_yaml", "pjlab")


@dataclass(frozen=True)
class AnyRig:
    """A rig read from any format.

    Attributes:
        rig: the sensor rig (single-camera formats give one camera at the ego origin).
        format: the format name (one of :data:`RIG_FORMATS`).
        unrepresented: what the file holds that the rig does not carry, plus assumptions
            this reader had to make (e.g. an image size the file does not record).
    """

    rig: SensorRig
    format: str
    unrepresented: tuple[Unrepresented, ...]


def detect_format(path: PathLike, head: str | None = None) -> str:
    """Guess the calibration format of ``path`` from its name and first bytes.

    Raises:
        CalibrationFileError: no format matches.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "calib_cam_to_cam.txt").is_file() or (p.parent / "calib_cam_to_cam.txt").is_file():
            return "kitti_raw"  # a recording-day folder, or a drive folder in one
        if (p / "calibrated_sensor.json").is_file() or any(p.glob("*/calibrated_sensor.json")):
            return "nuscenes"
        raise CalibrationFileError(
            path, None, "a directory without calib_cam_to_cam.txt (nor in its parent) or calibrated_sensor.json"
        )
    if head is None:
        try:
            with open(p, encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError as exc:
            raise CalibrationFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    text = head.lstrip()
    if "av-pipeline-rig" in head:
        return "rig"
    if text.startswith("%YAML") or "!!opencv-matrix" in head:
        return "opencv_yaml"
    if "camera_matrix" in head and "distortion_model" in head:
        return "ros_camera_info"
    if text.startswith("P0") or "Tr_velo_to_cam" in head or "R0_rect" in head:
        return "kitti_object"
    if p.name.startswith("calib_cam_to_cam"):
        return "kitti_raw"
    if text.startswith("K:") or text.startswith("P:"):
        return "pjlab"
    raise CalibrationFileError(path, None, f"not a recognised calibration format; supported: {list(RIG_FORMATS)}")


def _first_nuscenes_sample(root: Path) -> tuple[str, Path]:
    """The token of the earliest sample and the tables folder (``root`` or its one sub-folder with sample.json)."""
    from calibration.formats._common import load_json, parse_number, parse_str, read_text

    tables = root if (root / "sample.json").is_file() else next((p.parent for p in sorted(root.glob("*/sample.json"))), None)
    if tables is None:
        raise CalibrationFileError(root, "sample.json", "expected the nuScenes tables here or in a sub-folder, found no sample.json")
    path = str(tables / "sample.json")
    samples = load_json(read_text(path), path)
    if not isinstance(samples, list) or not samples:
        raise CalibrationFileError(path, None, "expected a non-empty list of sample records")
    first: tuple[float, str] | None = None
    for i, record in enumerate(samples):
        if not isinstance(record, dict) or "timestamp" not in record or "token" not in record:
            raise CalibrationFileError(path, f"sample[{i}]", "expected a record with token and timestamp")
        if isinstance(record["timestamp"], str):
            raise CalibrationFileError(path, f"sample[{i}].timestamp", "expected a number, got a string")
        entry = (parse_number(record["timestamp"], path, f"sample[{i}].timestamp"), parse_str(record["token"], path, f"sample[{i}].token"))
        first = entry if first is None or entry < first else first
    assert first is not None
    return first[1], tables


def read_any_rig(
    path: PathLike,
    fmt: str | None = None,
    *,
    image_size_px: tuple[int, int] | None = None,
    kitti_raw_view: str | None = None,
) -> AnyRig:
    """Read a calibration file (or KITTI raw / nuScenes directory) of any supported format.

    Args:
        path: the file or directory (for KITTI raw: the recording-day folder, a drive
            folder in it, or one of its calibration files).
        fmt: force a format (see :data:`RIG_FORMATS`); guessed with :func:`detect_format` if ``None``.
        image_size_px: ``(width, height)`` for formats that do not record it (KITTI object,
            PJLab). Without it, KITTI object uses 1242x375 and PJLab 1920x1200, noted in
            ``unrepresented``.
        kitti_raw_view: KITTI raw only: ``"unrectified"`` (``K_xx``, ``D_xx``, ``R_xx``,
            ``T_xx``) or ``"rectified"`` (``P_rect_xx``) cameras; default
            :func:`~calibration.formats.kitti_raw.kitti_raw_view_for` ``(path)``, the view the
            drive's images have (unrectified unless every drive is ``*_sync``). The view is
            a ``"camera view"`` note in ``unrepresented``, with the keys it ignores.

    Raises:
        CalibrationFileError: unreadable or invalid file (see the format's reader).
        CalibrationError: an unknown ``kitti_raw_view``.
    """
    from calibration import formats

    fmt = fmt or detect_format(path)
    notes: list[Unrepresented] = []

    def size(default: tuple[int, int]) -> tuple[int, int]:
        if image_size_px is not None:
            return image_size_px
        notes.append(Unrepresented("image size", f"not in the file; assumed {default[0]}x{default[1]} px"))
        return default

    def single(model: CameraModel, name: str) -> SensorRig:
        notes.append(Unrepresented("extrinsics", f"a camera-only file: '{name}' placed at the ego origin"))
        return SensorRig({name: RigCamera(model, SE3.identity())}, {})

    if fmt == "rig":
        result = formats.read_rig(path)
        rig = result.rig
    elif fmt == "kitti_object":
        result = formats.read_kitti_object_calib(path)
        rig = result.to_rig(size((1242, 375)))
    elif fmt == "kitti_raw":
        from calibration.formats.kitti_raw import CAM_TO_CAM_FILE, KITTI_RAW_VIEWS, kitti_raw_view_for

        view = kitti_raw_view or kitti_raw_view_for(path)
        if view not in KITTI_RAW_VIEWS:
            raise CalibrationError(f"kitti_raw_view: expected one of {list(KITTI_RAW_VIEWS)}, got {view!r}")
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        if not (folder / CAM_TO_CAM_FILE).is_file() and (folder.parent / CAM_TO_CAM_FILE).is_file():
            folder = folder.parent  # a drive folder: the calibration is the recording day's
        result = formats.read_kitti_raw_calib(folder)
        rectified = view == "rectified"
        rig = result.to_rig(rectified=rectified)
        chosen = "default for this path" if kitti_raw_view is None else "as asked"
        notes.append(
            Unrepresented(
                "camera view",
                (
                    "rectified: P_rect_xx, S_rect_xx, R_rect_00 (the images of *_sync drives)"
                    if rectified
                    else "unrectified: K_xx, D_xx, S_xx, R_xx, T_xx (the images of *_extract drives)"
                )
                + f", {chosen}",
            )
        )
        view_notes = result.view_notes(rectified=rectified)
        # The parser's own R_rect_xx notes assume the rectified view; the unrectified one ignores them all.
        ignored = {key for note in view_notes for key in note.field.split(", ")}
        file_notes = tuple(note for note in result.unrepresented if note.field.rpartition(": ")[2] not in ignored)
        notes.extend(view_notes)
    elif fmt == "nuscenes":
        token, tables = _first_nuscenes_sample(Path(path))
        notes.append(Unrepresented("sample", f"the rig of the first sample ({token}); other samples may differ"))
        result = formats.read_nuscenes_rig(tables, sample_token=token)
        rig = result.rig
    elif fmt == "ros_camera_info":
        result = formats.read_ros_camera_info(path)
        rig = single(result.model, result.camera_name or "camera")
    elif fmt == "opencv_yaml":
        result = formats.read_opencv_yaml(path)
        rig = single(result.model, "camera")
    elif fmt == "pjlab":
        result = formats.read_pjlab_calib_txt(path)
        rig = result.to_rig(size((1920, 1200)))
    else:
        raise CalibrationFileError(path, "format", f"expected one of {list(RIG_FORMATS)}, got {fmt!r}")
    if fmt != "kitti_raw":
        file_notes = tuple(getattr(result, "unrepresented", ()))
    return AnyRig(rig, fmt, file_notes + tuple(notes))
