"""Decoded sensor messages ("samples") and the numeric decoding both message families share.

The MCAP reader (foxglove protobuf and ROS 2 cdr) and the ROS bag reader turn each message
into one of the small records below before a frame is assembled
(:mod:`av_pipeline.readers.mcap_assembly`). The helpers here hold the logic that does not
depend on the schema family: unpacking interleaved point fields, per-point time units,
raw image layouts, and ``CameraInfo``-style intrinsics.

Errors are :class:`~av_pipeline.errors.LogFormatError` with ``path`` = the log and
``field`` = ``"<topic> <field>"``, so a message names the topic and the field that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from av_pipeline.boxes import Cuboids
from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.records import CameraBoxes
from calibration import SE3
from calibration.camera import CameraModel
from calibration.errors import AVPipelineError

#: Point-field names read as per-point capture time, in order of preference. They become
#: :attr:`~av_pipeline.records.LidarSweep.time_offsets_ns`, not a column. Units accepted:
#: integer fields are nanoseconds, float fields are seconds; values that look like epoch
#: times (integers above 1e15, floats above 1e12 = nanoseconds, floats above 1e6 = seconds)
#: are absolute, anything smaller is relative to the message stamp.
TIME_FIELD_NAMES: tuple[str, ...] = ("t", "time", "timestamp", "offset_time")

#: numpy type per ``sensor_msgs/PointField.datatype``.
ROS_POINT_FIELD_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
#: numpy type per ``foxglove.PackedElementField.NumericType`` (a different numbering).
FOXGLOVE_NUMERIC_DTYPES: dict[int, str] = {1: "u1", 2: "i1", 3: "u2", 4: "i2", 5: "u4", 6: "i4", 7: "f4", 8: "f8"}

#: Raw pixel encodings (ROS ``sensor_msgs/Image.encoding`` / foxglove ``RawImage.encoding``)
#: -> (:data:`~av_pipeline.records.IMAGE_ENCODINGS` name, bytes per pixel).
RAW_IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("rgb8", 3),
    "bgr8": ("bgr8", 3),
    "rgba8": ("rgba8", 4),
    "bgra8": ("bgra8", 4),
    "mono8": ("mono8", 1),
    "8UC1": ("mono8", 1),
}

#: ``distortion_model`` strings accepted in CameraInfo / CameraCalibration -> our model.
DISTORTION_MODEL_NAMES: dict[str, str] = {
    "plumb_bob": "radtan",
    "rational_polynomial": "radtan",
    "equidistant": "fisheye",
    "kannala_brandt": "fisheye",
    "fisheye": "fisheye",
}

_INT32 = np.iinfo(np.int32)
INT32_MAX = int(np.iinfo(np.int32).max)
INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def parse_int_text(text: object, path: str, field: str, lo: int, hi: int) -> int:
    """A decimal integer from message text (metadata values, ids) within ``[lo, hi]``.

    Raises:
        LogFormatError: not a decimal integer, or outside the range (a 20-digit track id
            does not fit int64; a negative point count is not a count).
    """
    value = str(text).strip()
    digits = value[1:] if value[:1] in "+-" else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 40:
        raise LogFormatError(path, field, f"expected a decimal integer, got {short_repr(text)}")
    number = int(value)
    if not lo <= number <= hi:
        raise LogFormatError(path, field, f"expected an integer in [{lo}, {hi}], got {short_repr(text)}")
    return number


# ---------------------------------------------------------------------- sample records
@dataclass(frozen=True, eq=False)
class CloudSample:
    """A decoded point cloud message.

    Attributes:
        frame_id: the sensor frame (becomes the LiDAR name in the rig).
        stamp_ns: the message's own stamp (header / ``timestamp``).
        points: ``(N, C)`` float32, columns ``x, y, z, ...`` in ``frame_id``.
        columns: ``(C,)`` names.
        time_offsets_ns: ``(N,)`` int64 capture times relative to ``stamp_ns``, or ``None``.
    """

    frame_id: str
    stamp_ns: int
    points: np.ndarray
    columns: tuple[str, ...]
    time_offsets_ns: np.ndarray | None


@dataclass(frozen=True)
class ImageSample:
    """A decoded image message (pixels stay encoded).

    Attributes:
        frame_id: the camera's optical frame (x right, y down, z forward).
        stamp_ns: the message stamp.
        encoding: a :data:`~av_pipeline.records.IMAGE_ENCODINGS` name.
        data: PNG/JPEG bytes or tightly packed raw rows.
        width_px, height_px: known for raw images; ``None`` for compressed ones (taken from
            the calibration or the file header when the frame is assembled).
    """

    frame_id: str
    stamp_ns: int
    encoding: str
    data: bytes
    width_px: int | None = None
    height_px: int | None = None


@dataclass(frozen=True)
class CalibrationSample:
    """Camera intrinsics from ``CameraInfo`` / ``CameraCalibration``; ``frame_id`` is the optical frame."""

    frame_id: str
    stamp_ns: int
    model: CameraModel


@dataclass(frozen=True)
class TransformSample:
    """One ``parent_SE3_child`` transform (ROS / foxglove: the pose of ``child`` in ``parent``)."""

    parent: str
    child: str
    stamp_ns: int
    parent_SE3_child: SE3


@dataclass(frozen=True)
class CuboidSample:
    """3D boxes of one message, in ``frame_id`` (``cuboids.frame == frame_id``)."""

    frame_id: str
    stamp_ns: int
    cuboids: Cuboids


@dataclass(frozen=True, eq=False)
class PathSample:
    """A planned path of one message, in ``frame_id`` (made a
    :class:`~av_pipeline.records.PlannedPath` in ``ego`` when the frame is assembled).

    Attributes:
        frame_id: the frame the poses are in.
        stamp_ns: the message stamp.
        timestamps_ns: ``(K,)`` int64 time of each pose.
        positions_m: ``(K, 3)`` float64 positions in ``frame_id``.
        yaws_rad: ``(K,)`` float64 heading about +z of each pose in ``frame_id``.
    """

    frame_id: str
    stamp_ns: int
    timestamps_ns: np.ndarray
    positions_m: np.ndarray
    yaws_rad: np.ndarray


@dataclass(frozen=True)
class CameraBoxesSample:
    """Onboard 2D boxes of one message; ``frame_id`` is the camera's frame. ``boxes.camera`` is
    what the message says (possibly ``""``): assembly names the camera after its topic."""

    frame_id: str
    stamp_ns: int
    boxes: CameraBoxes


# ---------------------------------------------------------------------- helpers
def as_bytes(value: object) -> bytes:
    """Bytes of a decoded ``uint8[]`` / ``bytes`` field (numpy array, memoryview, list or bytes)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, np.ndarray):
        return value.astype(np.uint8, copy=False).tobytes()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return bytes(bytearray(value))  # list of ints


def normalize_frame_id(frame_id: str) -> str:
    """TF frame ids without the ROS 1 leading slash (``"/base_link"`` -> ``"base_link"``)."""
    return str(frame_id).lstrip("/")


def se3_from_xyzw(translation_m: Sequence[float], xyzw: Sequence[float], path: str, field: str) -> SE3:
    """``SE3`` from a ROS / foxglove translation and scalar-last quaternion.

    An all-zero quaternion (an unset protobuf field) means identity.

    Raises:
        LogFormatError: a quaternion that is not unit norm within 1e-3, or non-finite values.
    """
    q = np.asarray(xyzw, dtype=np.float64)
    if not np.any(q):
        q = np.array([0.0, 0.0, 0.0, 1.0])
    try:
        return SE3.from_xyzw(q, np.asarray(translation_m, dtype=np.float64))
    except AVPipelineError as exc:
        raise LogFormatError(path, field, f"bad transform: {exc}") from exc


def yaw_from_xyzw(xyzw: np.ndarray) -> np.ndarray:
    """``(K,)`` heading about +z of the rotated +x axis for ``(K, 4)`` ``x, y, z, w`` quaternions."""
    x, y, z, w = xyzw[:, 0], xyzw[:, 1], xyzw[:, 2], xyzw[:, 3]
    unset = ~np.any(xyzw, axis=1)
    w = np.where(unset, 1.0, w)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


# ---------------------------------------------------------------------- points
@dataclass(frozen=True)
class PackedField:
    """One interleaved field of a point record: ``name`` at byte ``offset``, ``count`` values of ``dtype``."""

    name: str
    offset: int
    dtype: np.dtype
    count: int = 1


def unpack_points(
    data: bytes,
    fields: Sequence[PackedField],
    point_step: int,
    width: int,
    height: int,
    row_step: int,
    stamp_ns: int,
    *,
    path: str,
    topic: str,
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """Unpack interleaved point records into float32 columns and per-point times.

    Args:
        data: ``height * row_step`` bytes; each row holds ``width`` records of ``point_step`` bytes
            (then padding).
        fields: the record layout; must contain ``x``, ``y``, ``z``.
        stamp_ns: the message stamp; per-point times are returned relative to it.

    Returns:
        ``points (N, C) float32`` with ``x, y, z`` first then the other fields in message order
        (values converted to float32; float32 fields are copied bit for bit), ``columns (C,)``,
        and ``time_offsets_ns (N,) int64`` from the first :data:`TIME_FIELD_NAMES` field (or
        ``None``). A field with ``count > 1`` gives columns ``name_0 .. name_{count-1}``.

    Raises:
        LogFormatError: field ``"<topic> point_step"`` when a field does not fit in a record,
            ``"<topic> data"`` when the byte length disagrees with the declared size,
            ``"<topic> fields"`` when x/y/z are missing or names repeat.
    """
    where = f"{topic} "
    if point_step <= 0:
        raise LogFormatError(path, where + "point_step", f"expected a positive point_step, got {point_step}")
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    for f in fields:
        size = f.dtype.itemsize * max(f.count, 1)
        if f.offset < 0 or f.offset + size > point_step:
            raise LogFormatError(
                path,
                where + "point_step",
                f"field {f.name!r} at offset {f.offset} with {size} bytes does not fit in point_step {point_step}",
            )
        if f.count <= 1:
            names.append(f.name)
            formats.append(f.dtype)
            offsets.append(f.offset)
        else:
            for i in range(f.count):
                names.append(f"{f.name}_{i}")
                formats.append(f.dtype)
                offsets.append(f.offset + i * f.dtype.itemsize)
    if len(set(names)) != len(names):
        raise LogFormatError(path, where + "fields", f"duplicate field names in {names}")
    missing = [axis for axis in ("x", "y", "z") if axis not in names]
    if missing:
        raise LogFormatError(path, where + "fields", f"expected fields x, y, z; missing {missing} in {names}")
    if width < 0 or height < 0:
        raise LogFormatError(path, where + "data", f"expected non-negative width/height, got {width}x{height}")
    if row_step < width * point_step:
        raise LogFormatError(
            path, where + "row_step", f"row_step {row_step} is smaller than width {width} x point_step {point_step}"
        )
    expected = row_step * height
    if len(data) != expected:
        raise LogFormatError(
            path,
            where + "data",
            f"expected {expected} bytes (height {height} x row_step {row_step}; width {width}, point_step {point_step}), got {len(data)}",
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    if row_step != width * point_step:  # padded rows: keep the records only
        raw = np.ascontiguousarray(raw.reshape(height, row_step)[:, : width * point_step]).reshape(-1)
    record = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    records = raw.view(record) if raw.size else np.zeros(0, dtype=record)

    time_name = next((n for n in TIME_FIELD_NAMES if n in names), None)
    columns = ["x", "y", "z"] + [n for n in names if n not in ("x", "y", "z") and n != time_name]
    points = np.empty((len(records), len(columns)), dtype=np.float32)
    for i, name in enumerate(columns):
        points[:, i] = records[name]
    offsets_ns = None
    if time_name is not None:
        offsets_ns = point_times_to_offsets(records[time_name], stamp_ns, path=path, field=where + time_name)
    return points, tuple(columns), offsets_ns


def point_times_to_offsets(values: np.ndarray, stamp_ns: int, *, path: str, field: str) -> np.ndarray:
    """Per-point times (units per :data:`TIME_FIELD_NAMES`) -> ``(N,)`` int64 ns relative to ``stamp_ns``.

    Raises:
        LogFormatError: offsets beyond the int32 range (about +-2.1 s): the unit guess is
            wrong or the stamp is not the sweep's time.
    """
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(values.dtype, np.integer):
        ints = values.astype(np.int64)
        offsets = ints - int(stamp_ns) if int(np.abs(ints).max()) > 10**15 else ints
        unit = "ns"
    else:
        floats = values.astype(np.float64)
        if not np.all(np.isfinite(floats)):
            raise LogFormatError(path, field, "per-point times contain NaN or inf")
        magnitude = float(np.median(np.abs(floats)))
        if magnitude > 1e12:  # absolute epoch nanoseconds stored as float
            offsets = np.round(floats - float(stamp_ns)).astype(np.int64)
            unit = "ns (float, absolute)"
        elif magnitude > 1e6:  # absolute epoch seconds: subtract whole seconds first to keep precision
            whole_s = int(stamp_ns) // 1_000_000_000
            rest_ns = int(stamp_ns) - whole_s * 1_000_000_000
            offsets = np.round((floats - whole_s) * 1e9 - rest_ns).astype(np.int64)
            unit = "s (absolute)"
        else:
            offsets = np.round(floats * 1e9).astype(np.int64)
            unit = "s (relative)"
    if offsets.min() < _INT32.min or offsets.max() > _INT32.max:
        raise LogFormatError(
            path,
            field,
            f"per-point times read as {unit} span [{int(offsets.min())}, {int(offsets.max())}] ns around the stamp "
            f"{stamp_ns}, beyond the int32 range of LidarSweep.time_offsets_ns",
        )
    return offsets


# ---------------------------------------------------------------------- images
def raw_image_bytes(
    encoding: str, width: int, height: int, step: int, data: bytes, *, path: str, topic: str
) -> tuple[str, bytes]:
    """Validate a raw image and drop row padding.

    Returns:
        ``(encoding name, tightly packed bytes)`` for :class:`~av_pipeline.records.CameraImage`.

    Raises:
        LogFormatError: an encoding not in :data:`RAW_IMAGE_ENCODINGS`, ``step`` shorter
            than a row, or a data length other than ``step * height``.
    """
    if encoding not in RAW_IMAGE_ENCODINGS:
        raise LogFormatError(path, f"{topic} encoding", f"expected one of {sorted(RAW_IMAGE_ENCODINGS)}, got {encoding!r}")
    name, channels = RAW_IMAGE_ENCODINGS[encoding]
    row = width * channels
    if step < row:
        raise LogFormatError(path, f"{topic} step", f"step {step} is smaller than width {width} x {channels} bytes")
    if len(data) != step * height:
        raise LogFormatError(path, f"{topic} data", f"expected step {step} x height {height} = {step * height} bytes, got {len(data)}")
    if step != row:
        data = np.frombuffer(data, np.uint8).reshape(height, step)[:, :row].tobytes()
    return name, data


def compressed_format_to_encoding(fmt: str, *, path: str, topic: str) -> str:
    """``"png"`` / ``"jpeg"`` from a CompressedImage ``format`` (ROS forms like ``"bgr8; jpeg compressed bgr8"`` too).

    Raises:
        LogFormatError: neither PNG nor JPEG.
    """
    text = fmt.lower()
    if "png" in text:
        return "png"
    if "jpeg" in text or "jpg" in text:
        return "jpeg"
    raise LogFormatError(path, f"{topic} format", f"expected a png or jpeg CompressedImage, got format {fmt!r}")


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG/JPEG header without decoding pixels, or ``None``."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]), int(img.size[1])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError):
        return None


# ---------------------------------------------------------------------- intrinsics
def camera_model_from_info(
    distortion_model: str, d: Sequence[float], k: Sequence[float], width: int, height: int, *, path: str, topic: str
) -> CameraModel:
    """A :class:`CameraModel` from ``CameraInfo`` / ``CameraCalibration`` values.

    Empty ``D`` -> ``"pinhole"``; ``plumb_bob`` / ``rational_polynomial`` -> ``"radtan"``
    (4, 5 or 8 coefficients; trailing zeros beyond 8 are dropped); ``equidistant`` /
    ``kannala_brandt`` -> ``"fisheye"`` (4). ``R`` and ``P`` are not used (unrectified images).

    Raises:
        LogFormatError: unknown model, a coefficient count the model does not take, an
            all-zero (uncalibrated) or skewed ``K``.
    """
    coeffs = [float(c) for c in np.asarray(d, dtype=np.float64).ravel()]
    K = np.asarray(k, dtype=np.float64).ravel()
    if K.shape != (9,):
        raise LogFormatError(path, f"{topic} K", f"expected 9 values, got {K.shape[0]}")
    if not np.any(K):
        raise LogFormatError(path, f"{topic} K", "K is all zeros: the camera is not calibrated")
    if not coeffs:
        model = "pinhole"
    else:
        if distortion_model not in DISTORTION_MODEL_NAMES:
            raise LogFormatError(
                path, f"{topic} distortion_model", f"expected one of {sorted(DISTORTION_MODEL_NAMES)}, got {distortion_model!r}"
            )
        model = DISTORTION_MODEL_NAMES[distortion_model]
        if model == "radtan" and len(coeffs) > 8 and not any(coeffs[8:]):
            coeffs = coeffs[:8]
    try:
        return CameraModel.from_K(
            K.reshape(3, 3), int(width), int(height), model, tuple(coeffs), name=f"{topic} K"  # type: ignore[arg-type]
        )
    except AVPipelineError as exc:
        raise LogFormatError(path, f"{topic} calibration", str(exc)) from exc


def camera_model_to_info(model: CameraModel, family: str) -> tuple[str, list[float], list[float], list[float], list[float]]:
    """``(distortion_model, D, K, R, P)`` for writing ``CameraInfo`` (``family="ros"``) or
    ``CameraCalibration`` (``family="foxglove"``); inverse of :func:`camera_model_from_info`.

    ``"pinhole"`` is written as ``plumb_bob`` with an empty ``D``; ``R`` is identity and
    ``P = [K | 0]``.
    """
    if model.distortion_model == "fisheye":
        name = "kannala_brandt" if family == "foxglove" else "equidistant"
    elif len(model.distortion) == 8:
        name = "rational_polynomial"
    else:
        name = "plumb_bob"
    K = model.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return name, list(model.distortion), K.ravel().tolist(), np.eye(3).ravel().tolist(), P.ravel().tolist()
