"""Checks that a loaded :class:`~av_pipeline.records.Frame` is fit to enter the pipeline.

Ingest runs these on every frame after its reader loaded it; a frame that fails goes to the
dead-letter output instead of the index. Each failure is a :class:`FrameValidationError`
whose ``check`` names the rule that failed and whose message names the file and the field.

Rules (one ``check`` name each):

- ``key_mismatch``: the frame's ``(log_id, timestamp_ns)`` differs from the ref it was loaded for.
- ``timestamp_range``: a frame, sweep or image time outside
  ``[MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS]`` (the log clock's zero to 2100-01-01 UTC, well inside
  int64 nanoseconds).
- ``empty_frame``: no LiDAR sweep and no camera image.
- ``points_shape``: points not ``(N, C)`` with ``C >= 3`` float32 (``x, y, z`` first).
- ``empty_sweep``: a sweep with zero points.
- ``non_finite_points``: NaN or +-inf in any point column.
- ``image_decode``: image bytes that do not decode (each image is decoded once).
- ``image_size``: decoded size differs from the declared size or from the camera model's.
- ``non_finite_pose``: NaN or inf in ``world_SE3_ego``.
- ``box_values``: annotation or onboard boxes with a negative ``num_lidar_points`` or a
  non-finite centre, size or yaw.
- ``index_row``: a value the frame index cannot hold (a name that is not UTF-8, an integer
  beyond its column's type); see :func:`av_pipeline.ingest.check_index_row`.
- ``timestamp_order``: within a log, a frame whose timestamp is not after every earlier
  frame's (see :func:`split_out_of_order`; checked on the listed refs, before loading).

Missing calibration for a present sensor is caught earlier, at load: a reader raises
:class:`~calibration.errors.CalibrationFileError` for a calibration file that lacks the
sensor's key, and :class:`~av_pipeline.records.Frame` refuses a sweep or image of a sensor
that is not in its rig (``ShapeError``). Ingest dead-letters both with stage ``"load"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.records import CameraImage, Frame, FrameRef, LidarSweep

_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")

#: Earliest accepted time: the log clock's zero (logs with relative clocks start there).
MIN_TIMESTAMP_NS = 0
#: Latest accepted time: 2100-01-01T00:00:00Z. A later time is a unit or parsing error (and
#: times past 2262 do not fit int64 nanoseconds at all).
MAX_TIMESTAMP_NS = 4_102_444_800 * 1_000_000_000

#: The ``check`` names a :class:`FrameValidationError` can carry.
CHECKS = (
    "key_mismatch",
    "timestamp_range",
    "empty_frame",
    "points_shape",
    "empty_sweep",
    "non_finite_points",
    "image_decode",
    "image_size",
    "non_finite_pose",
    "box_values",
    "index_row",
    "timestamp_order",
)


def timestamp_in_range(timestamp_ns: object) -> bool:
    """True for an integer time in ``[MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS]`` (bools are not times).

    >>> timestamp_in_range(1_532_402_927_647_951_000), timestamp_in_range(-1), timestamp_in_range(10 ** 30)
    (True, False, False)
    """
    if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, (int, np.integer)):
        return False
    return MIN_TIMESTAMP_NS <= int(timestamp_ns) <= MAX_TIMESTAMP_NS


def check_timestamp_ns(timestamp_ns: object, path: object, field: str) -> int:
    """``timestamp_ns`` as an int when :func:`timestamp_in_range`, else a :class:`LogFormatError`.

    Readers call this where they turn a stored time into nanoseconds, so an absurd time
    (a PCD time field of 1e30 s, a year-2300 KITTI timestamp) fails there, naming the field.
    """
    if not timestamp_in_range(timestamp_ns):
        raise LogFormatError(
            path, field, f"expected a time in [{MIN_TIMESTAMP_NS}, {MAX_TIMESTAMP_NS}] ns (up to 2100-01-01 UTC), got {short_repr(timestamp_ns)}"
        )
    return int(timestamp_ns)  # type: ignore[arg-type]


class FrameValidationError(LogFormatError):
    """A frame loaded but breaks one of the rules above.

    Attributes:
        path: the file at fault (image or point file, else the frame's source or the log).
        field: the sensor and field (``"lidar 'velodyne' points"``).
        check: which rule failed, one of :data:`CHECKS`.
    """

    def __init__(self, path: object, field: str | None, message: str, check: str) -> None:
        if check not in CHECKS:
            raise ValueError(f"check: expected one of {CHECKS}, got {check!r}")
        self.check = check
        super().__init__(path, field, message)


@dataclass(frozen=True)
class FrameStats:
    """What validation measured on a valid frame (the numbers the frame index stores).

    Attributes:
        lidar_num_points: LiDAR name -> number of points N, in the frame's sensor order.
        image_sizes_px: camera name -> decoded ``(width_px, height_px)``, in the frame's order.
    """

    lidar_num_points: Mapping[str, int]
    image_sizes_px: Mapping[str, tuple[int, int]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lidar_num_points", MappingProxyType(dict(self.lidar_num_points)))
        object.__setattr__(self, "image_sizes_px", MappingProxyType(dict(self.image_sizes_px)))


def validate_frame(frame: Frame, ref: FrameRef | None = None) -> FrameStats:
    """Check one loaded frame against every rule; return its statistics.

    Args:
        frame: the frame as the reader loaded it.
        ref: the ref it was loaded for; when given, the frame's key must match it.

    Returns:
        The per-sensor point counts and decoded image sizes.

    Raises:
        FrameValidationError: the first rule that fails, in the order of :data:`CHECKS`.
    """
    frame_path = frame.source_uri or (ref.log_uri if ref is not None else frame.log_id)
    if ref is not None and frame.key != ref.key:
        raise FrameValidationError(
            frame_path, "key", f"expected (log_id, timestamp_ns) {ref.key} from the frame list, loaded {frame.key}", "key_mismatch"
        )
    _check_times(frame, frame_path)
    if not frame.lidars and not frame.images:
        raise FrameValidationError(frame_path, "sensors", "frame has no LiDAR sweep and no camera image", "empty_frame")
    lidar_num_points = {name: _check_sweep(sweep, frame_path) for name, sweep in frame.lidars.items()}
    image_sizes_px = {name: _check_image(image, frame, frame_path) for name, image in frame.images.items()}
    if frame.world_SE3_ego is not None:
        pose = frame.world_SE3_ego
        if not (np.isfinite(pose.rotation).all() and np.isfinite(pose.translation).all()):
            raise FrameValidationError(frame_path, "world_SE3_ego", "pose has NaN or inf entries", "non_finite_pose")
    if frame.annotations is not None:
        _check_boxes(frame.annotations, frame_path, "annotations")
    if frame.onboard is not None:
        _check_boxes(frame.onboard.cuboids, frame_path, "onboard cuboids")
    return FrameStats(lidar_num_points, image_sizes_px)


def _check_times(frame: Frame, frame_path: str) -> None:
    stamped = [("timestamp_ns", frame.timestamp_ns)]
    stamped += [(f"lidar '{name}' timestamp_ns", sweep.timestamp_ns) for name, sweep in frame.lidars.items()]
    stamped += [(f"camera '{name}' timestamp_ns", image.timestamp_ns) for name, image in frame.images.items()]
    for field, value in stamped:
        if not timestamp_in_range(value):
            raise FrameValidationError(
                frame_path,
                field,
                f"expected a time in [{MIN_TIMESTAMP_NS}, {MAX_TIMESTAMP_NS}] ns (up to 2100-01-01 UTC), got {short_repr(value)}",
                "timestamp_range",
            )


def _check_boxes(boxes: object, frame_path: str, what: str) -> None:
    counts = getattr(boxes, "num_lidar_points", None)
    if counts is not None and len(counts) and int(np.min(counts)) < 0:
        bad = np.flatnonzero(np.asarray(counts) < 0)
        raise FrameValidationError(
            frame_path, f"{what} num_lidar_points", f"expected counts >= 0, got {int(counts[bad[0]])} for box {int(bad[0])} ({len(bad)} negative)", "box_values"
        )
    for name in ("centers_m", "sizes_m", "yaws_rad"):
        values = getattr(boxes, name, None)
        if values is not None and np.size(values) and not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            raise FrameValidationError(frame_path, f"{what} {name}", "boxes have NaN or inf values", "box_values")


def _check_sweep(sweep: LidarSweep, frame_path: str) -> int:
    field = f"lidar '{sweep.sensor}' points"
    points = sweep.points
    if points.ndim != 2 or points.shape[1] < 3 or points.dtype != np.float32:
        raise FrameValidationError(frame_path, field, f"expected (N, 3+) float32, got {points.shape} {points.dtype}", "points_shape")
    if len(points) == 0:
        raise FrameValidationError(frame_path, field, "sweep has 0 points", "empty_sweep")
    finite = np.isfinite(points)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        bad_columns = [sweep.columns[c] for c in np.flatnonzero(~finite.all(axis=0))]
        raise FrameValidationError(
            frame_path,
            field,
            f"{len(bad_rows)} of {len(points)} points have NaN/inf values (columns {bad_columns}; first at row {bad_rows[0]})",
            "non_finite_points",
        )
    return int(len(points))


def _check_image(image: CameraImage, frame: Frame, frame_path: str) -> tuple[int, int]:
    path = image.source or frame_path
    field = f"camera '{image.camera}' image"
    try:
        pixels = image.decode()
    except LogFormatError as exc:
        # decode() raises for undecodable bytes (with the decoder's error as the cause) and
        # for a decoded size that differs from the declared one (no cause).
        check = "image_decode" if exc.__cause__ is not None else "image_size"
        raise FrameValidationError(path, field, _bare_message(exc), check) from exc
    height_px, width_px = pixels.shape[:2]
    model = frame.rig.cameras[image.camera].model
    if (model.width_px, model.height_px) != (width_px, height_px):
        raise FrameValidationError(
            path,
            field,
            f"decoded {width_px}x{height_px} but the camera model is calibrated for {model.width_px}x{model.height_px}",
            "image_size",
        )
    return (int(width_px), int(height_px))


def _bare_message(exc: LogFormatError) -> str:
    prefix = exc.path + (f": {exc.field}" if exc.field else "") + ": "
    text = str(exc)
    text = text[len(prefix) :] if text.startswith(prefix) else text
    # Pillow names the in-memory buffer by its address; drop it so messages are reproducible.
    return _BUFFER_REPR.sub("the image bytes", text)


def split_out_of_order(refs: Sequence[FrameRef]) -> tuple[list[FrameRef], list[tuple[FrameRef, FrameValidationError]]]:
    """Separate a log's frames whose timestamps do not increase.

    A frame is out of order when its ``timestamp_ns`` is not strictly after every frame
    before it that was kept (equal timestamps would give two frames the same key). The
    first frame is always kept.

    Args:
        refs: one log's frames in listed order.

    Returns:
        ``(in_order, out_of_order)``: the kept refs in listed order, and each rejected ref
        with a ``timestamp_order`` error naming the log, both indices and both times.

    >>> from av_pipeline.records import FrameRef
    >>> refs = [FrameRef("a.log", "a", i, t, "fake") for i, t in enumerate([10, 20, 15, 30])]
    >>> kept, rejected = split_out_of_order(refs)
    >>> [r.index for r in kept], [r.index for r, _ in rejected]
    ([0, 1, 3], [2])
    """
    in_order: list[FrameRef] = []
    out_of_order: list[tuple[FrameRef, FrameValidationError]] = []
    for ref in refs:
        if in_order and ref.timestamp_ns <= in_order[-1].timestamp_ns:
            last = in_order[-1]
            error = FrameValidationError(
                ref.log_uri,
                "timestamp_ns",
                f"frame {ref.index} at {ref.timestamp_ns} ns is not after frame {last.index} at {last.timestamp_ns} ns",
                "timestamp_order",
            )
            out_of_order.append((ref, error))
        else:
            in_order.append(ref)
    return in_order, out_of_order
