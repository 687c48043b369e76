"""A folder of PCD sweeps with camera images and a calibration file beside them (``pcd_folder``).

The layout of LiDAR-camera calibration data (PJLab-ADG SensorsCalibration, many lab rigs)::

    <folder>/calib.txt                 calibration (PJLab K/D/T; any single file that
                                       calibration.formats.read_any_rig reads, or option
                                       calibration=)
    <folder>/<stem>.pcd                one sweep per file
    <folder>/<stem>.jpg|.jpeg|.png     its image, for a rig with one camera
    <folder>/<camera>/<stem>.jpg|...   its image from camera <camera>, for rigs with several

``open_log(folder)`` reads it as one log (``log_id`` = the folder's name):

- one frame per ``.pcd`` file, in name order. A file with a per-point time field
  (``timestamp``/``time``) is at its sweep time (the latest point, see
  :mod:`av_pipeline.readers.pcd`; listing reads those files); a file without one is at
  ``timestamp_ns + k * frame_period_ns`` (options; defaults 0 and 100 ms) for the k-th file.
- rig: from the calibration file (PJLab: camera ``"camera"``, LiDAR ``"lidar"``, ego = the
  LiDAR frame). Formats that do not record the image size get it from the first image.
  Points are in the rig's (first) LiDAR frame, columns as the PCD reader gives them.
- images: the image with the sweep's stem. If the folder holds exactly one ``.pcd`` and one
  image, they are a pair whatever their names. The layout has no image times: an image is
  taken at its sweep's time.

Errors (:class:`~av_pipeline.errors.LogFormatError`, naming the folder or file): images but
no calibration file, several calibration files (pass ``calibration=``), a calibration without
a LiDAR, images beside the sweeps for a rig with several cameras, an unreadable image header.
Calibration values raise :class:`~calibration.errors.CalibrationFileError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from av_pipeline.errors import CalibrationFileError, LogFormatError
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.pcd import PCD_TIME_FIELDS, pcd_to_sweep, read_pcd, read_pcd_header
from av_pipeline.records import CameraImage, Frame, FrameRef
from calibration import SE3
from calibration.rig import SensorRig

#: Image file extensions (lower case) and their :class:`CameraImage` encodings.
IMAGE_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}
#: File extensions tried as the calibration file.
CALIBRATION_EXTENSIONS = (".txt", ".yaml", ".yml", ".json")
#: Default spacing of sweeps without per-point times.
PCD_FOLDER_PERIOD_NS = 100_000_000


def _image_files(folder: Path) -> dict[str, Path]:
    """stem -> image path of the images directly in ``folder``."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise LogFormatError(path, "image", f"cannot read the image header: {exc}") from exc


def find_calibration_file(folder: Path) -> Path | None:
    """The one file in ``folder`` that :func:`calibration.formats.detect.detect_format` recognises.

    Raises:
        LogFormatError: several files are recognised.
    """
    from calibration.formats.detect import detect_format

    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in CALIBRATION_EXTENSIONS:
            continue
        try:
            detect_format(path)
        except (CalibrationFileError, OSError, UnicodeDecodeError):
            continue
        found.append(path)
    if len(found) > 1:
        raise LogFormatError(folder, "calibration", f"several calibration files {[p.name for p in found]}: pass calibration=<file>")
    return found[0] if found else None


@register_reader
class PcdFolderReader(LogReader):
    """A folder of ``.pcd`` sweeps with images and a calibration file; see the module docstring.

    Options:
        calibration: the calibration file (default: the one file in the folder that a
            calibration reader recognises).
        timestamp_ns: time of the first sweep without per-point times (default 0).
        frame_period_ns: spacing of sweeps without per-point times (default 100 ms).

    Attributes:
        rig: the sensor rig (LiDAR only when the folder has no calibration and no images).
        calibration_path: the calibration file used, or ``None``.
        unrepresented: what the calibration reader could not carry or had to assume.
    """

    name = "pcd_folder"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"calibration", "timestamp_ns", "frame_period_ns"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown pcd_folder options {sorted(unknown)}; expected calibration, timestamp_ns, frame_period_ns")
        self.root = Path(uri)
        self.log_id = self.root.name
        self._start_ns = int(options.get("timestamp_ns", 0))
        self._period_ns = int(options.get("frame_period_ns", PCD_FOLDER_PERIOD_NS))
        self._pcds = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() == ".pcd")
        if not self._pcds:
            raise LogFormatError(self.root, None, "expected a folder with .pcd files")
        beside = _image_files(self.root)

        calibration = options.get("calibration")
        self.calibration_path = Path(calibration) if calibration is not None else find_calibration_file(self.root)
        self.unrepresented: tuple = ()
        if self.calibration_path is None:
            if beside or any(_image_files(p) for p in self.root.iterdir() if p.is_dir()):
                raise LogFormatError(self.root, "calibration", "images beside the sweeps but no calibration file (calib.txt, ...): pass calibration=<file>")
            self.rig = SensorRig(lidars={"lidar": SE3.identity()})
        else:
            self.rig, self.unrepresented = self._read_rig(self.calibration_path, beside)
        if not self.rig.lidars:
            raise LogFormatError(self.calibration_path, "calibration", "the calibration has no LiDAR: the sweeps cannot be placed in the rig")
        self.lidar = self.rig.lidar_names[0]
        cameras = self.rig.camera_names
        self._images: dict[str, dict[str, Path]] = {}  # camera -> stem -> image
        if len(cameras) == 1:
            self._images[cameras[0]] = {**_image_files(self.root / cameras[0]), **beside}
            if len(self._pcds) == 1 and len(beside) == 1:
                self._images[cameras[0]] = {self._pcds[0].stem: next(iter(beside.values()))}
        else:
            if beside:
                raise LogFormatError(
                    self.root, "images", f"images beside the sweeps, but the rig has cameras {list(cameras)}: put each camera's images in a folder named after it"
                )
            for camera in cameras:
                self._images[camera] = _image_files(self.root / camera)
        self._times: list[int] | None = None

    def _read_rig(self, path: Path, beside: dict[str, Path]) -> tuple[SensorRig, tuple]:
        from calibration.formats.detect import read_any_rig

        first_image = next(iter(beside.values()), None)
        if first_image is None:
            for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
                first_image = next(iter(_image_files(sub).values()), None)
                if first_image is not None:
                    break
        size = _image_size(first_image) if first_image is not None else None
        result = read_any_rig(path, image_size_px=size)
        return result.rig, result.unrepresented

    # ------------------------------------------------------------------ LogReader
    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        try:
            return path.is_dir() and any(p.suffix.lower() == ".pcd" and p.is_file() for p in path.iterdir())
        except OSError:
            return False

    def _frame_times(self) -> list[int]:
        if self._times is None:
            times = []
            for k, path in enumerate(self._pcds):
                header = read_pcd_header(path)
                if any(name in header.fields for name in PCD_TIME_FIELDS):
                    times.append(pcd_to_sweep(read_pcd(path), self.lidar).timestamp_ns)
                else:
                    times.append(self._start_ns + k * self._period_ns)
            self._times = times
        return self._times

    def list_frames(self) -> list[FrameRef]:
        """One ref per ``.pcd`` file (files with per-point times are read to find the sweep time)."""
        return [FrameRef(self.uri, self.log_id, k, t, self.name) for k, t in enumerate(self._frame_times())]

    def load_frame(self, ref: FrameRef) -> Frame:
        """One sweep in the rig's LiDAR frame with its images (module docstring)."""
        self._check_ref(ref)
        times = self._frame_times()
        if not 0 <= ref.index < len(self._pcds) or times[ref.index] != ref.timestamp_ns:
            raise LogFormatError(self.uri, "frame ref", f"no sweep {ref.index} at {ref.timestamp_ns} ns in this folder")
        path = self._pcds[ref.index]
        sweep = pcd_to_sweep(read_pcd(path), self.lidar, ref.timestamp_ns)
        images = {}
        for camera, by_stem in self._images.items():
            image_path = by_stem.get(path.stem)
            if image_path is None:
                continue
            model = self.rig.cameras[camera].model
            try:
                data = image_path.read_bytes()
            except OSError as exc:
                raise LogFormatError(image_path, f"{camera} image", f"cannot read: {exc}") from exc
            encoding = IMAGE_EXTENSIONS[image_path.suffix.lower()]
            images[camera] = CameraImage(camera, sweep.timestamp_ns, encoding, data, model.width_px, model.height_px, source=str(image_path))
        return Frame(self.log_id, sweep.timestamp_ns, self.rig, None, {self.lidar: sweep}, images, source_uri=str(path))


__all__ = ["CALIBRATION_EXTENSIONS", "IMAGE_EXTENSIONS", "PCD_FOLDER_PERIOD_NS", "PcdFolderReader", "find_calibration_file"]
