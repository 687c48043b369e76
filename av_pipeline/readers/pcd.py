"""PCD (Point Cloud Library) files: ``read_pcd``/``write_pcd`` and a one-frame log reader.

Supported: PCD v0.5-0.7 headers with ``DATA ascii``, ``binary`` and ``binary_compressed``
(LZF, field-major), little-endian, any mix of ``TYPE`` ``I``/``U`` (1, 2, 4, 8 bytes) and
``F`` (4, 8 bytes) and ``COUNT`` >= 1. Padding fields named ``_`` are skipped (a real field
whose name merely starts with ``_`` is kept).

Limits: the point data (``POINTS`` x bytes per point) may be at most
:data:`MAX_PCD_DATA_BYTES`; a binary_compressed file is decompressed only after its declared
size was checked against the header and that limit. ASCII values must fit their field's
type (``300`` in a ``U 1`` field is an error) and be at most :data:`MAX_ASCII_TOKEN_CHARS`
characters. Per-point times must put the sweep within the product's time range
(:data:`~av_pipeline.validate.MAX_TIMESTAMP_NS`).

A ``.pcd`` file opened with :func:`~av_pipeline.readers.open_log` is a log with one frame:

- the LiDAR is named ``"lidar"`` (option ``sensor=``) and the ``ego`` frame is the LiDAR
  frame (the rig has ``ego_SE3_lidar = identity``, no cameras, no ego pose);
- points: ``x, y, z`` then every other numeric field in file order, as float32 columns
  (a field with ``COUNT`` k > 1 becomes ``name_0 .. name_{k-1}``);
- a per-point time field ``timestamp`` or ``time`` (seconds on the log clock, float) is
  taken out of the columns: the sweep time is the latest point time (end of sweep) and
  ``time_offsets_ns`` are relative to it (<= 0). Without one the sweep time is the
  ``timestamp_ns=`` option, or 0;
- NaN/inf coordinates (organised clouds mark missing returns with NaN) are kept as stored:
  readers report, the ingest job's validation dead-letters.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "cloud.pcd")
>>> write_pcd(path, ["x", "y", "z", "ring"], [np.zeros(4, np.float32), np.ones(4, np.float32), np.arange(4, dtype=np.float32), np.arange(4, dtype=np.uint16)])
>>> cloud = read_pcd(path)
>>> cloud.num_points, cloud.header.data, cloud.columns["ring"].dtype
(4, 'binary_compressed', dtype('uint16'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from av_pipeline.errors import LogFormatError, ShapeError, short_repr
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.lzf import lzf_compress, lzf_decompress
from av_pipeline.records import Frame, FrameRef, LidarSweep
from av_pipeline.validate import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, check_timestamp_ns
from calibration import SE3
from calibration.rig import SensorRig

#: The ``DATA`` layouts this module reads and writes.
PCD_DATA_FORMATS = ("ascii", "binary", "binary_compressed")
#: Field names taken as per-point capture time in seconds (see the module docstring).
PCD_TIME_FIELDS = ("timestamp", "time")

#: Largest accepted point data section, uncompressed (``POINTS`` x bytes per point): 256 MiB,
#: over 5 million points of 12 float32 fields. Larger headers are refused before decoding.
MAX_PCD_DATA_BYTES = 256 * 1024 * 1024
#: Longest accepted value in an ``ascii`` data section (float64 needs at most 24 characters).
MAX_ASCII_TOKEN_CHARS = 64

_VALID_SIZES = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_MAX_HEADER_BYTES = 1 << 16


@dataclass(frozen=True)
class PcdHeader:
    """A parsed PCD header.

    Attributes:
        version: the ``VERSION`` value (``"0.7"``), ``""`` when absent.
        fields: ``(F,)`` field names.
        sizes: ``(F,)`` bytes per element.
        types: ``(F,)`` ``"I"`` signed, ``"U"`` unsigned, ``"F"`` float.
        counts: ``(F,)`` elements per field.
        width, height: organisation (``height == 1`` for unorganised clouds).
        viewpoint: ``(7,)`` acquisition pose ``tx ty tz qw qx qy qz``.
        points: number of points (``width * height``).
        data: one of :data:`PCD_DATA_FORMATS`.
        data_offset: byte offset of the data section in the file.
    """

    version: str
    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    viewpoint: tuple[float, ...]
    points: int
    data: str
    data_offset: int = 0

    def field_dtype(self, index: int) -> np.dtype:
        """Little-endian numpy dtype of one element of field ``index``."""
        kind = {"F": "f", "I": "i", "U": "u"}[self.types[index]]
        return np.dtype(f"<{kind}{self.sizes[index]}")

    @property
    def record_names(self) -> tuple[str, ...]:
        """``(F,)`` names of the fields in :attr:`point_dtype`: the field names, with each
        padding field ``_`` given a name no real field has (``_pad<i>``, underscores added on a clash)."""
        taken = set(self.fields)
        names = []
        for i, name in enumerate(self.fields):
            if name == "_":
                name = f"_pad{i}"
                while name in taken:
                    name = "_" + name
                taken.add(name)
            names.append(name)
        return tuple(names)

    @property
    def point_dtype(self) -> np.dtype:
        """Structured dtype of one point record (``binary`` layout, padding included; names: :attr:`record_names`)."""
        return np.dtype(
            [
                (record_name, self.field_dtype(i), (self.counts[i],) if self.counts[i] > 1 else ())
                for i, record_name in enumerate(self.record_names)
            ]
        )

    @property
    def point_size(self) -> int:
        """Bytes per point."""
        return int(sum(s * c for s, c in zip(self.sizes, self.counts)))


@dataclass(frozen=True, eq=False)
class PcdCloud:
    """The content of one PCD file.

    Attributes:
        path: the file it came from.
        header: its header.
        columns: field name -> ``(N,)`` array (``(N, COUNT)`` when ``COUNT > 1``) in the
            file's dtype, in file order; padding fields ``_`` are left out.
    """

    path: str
    header: PcdHeader
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))

    @property
    def num_points(self) -> int:
        """Number of points N."""
        return self.header.points

    def xyz(self) -> np.ndarray:
        """``(N, 3)`` float32 coordinates (NaN kept).

        Raises:
            LogFormatError: the file has no ``x``, ``y`` or ``z`` field.
        """
        missing = [name for name in ("x", "y", "z") if name not in self.columns]
        if missing:
            raise LogFormatError(self.path, "FIELDS", f"expected x, y, z, missing {missing} in {short_repr(list(self.header.fields))}")
        counted = [name for name in ("x", "y", "z") if self.columns[name].ndim != 1]
        if counted:
            raise LogFormatError(self.path, "COUNT", f"expected COUNT 1 for x, y, z, got COUNT > 1 for {counted}")
        return np.stack([np.asarray(self.columns[n], dtype=np.float32).reshape(-1) for n in ("x", "y", "z")], axis=1)


# ---------------------------------------------------------------------- reading
def _header_error(path: object, key: str, message: str) -> LogFormatError:
    return LogFormatError(path, key, message)


def _parse_ints(path: object, key: str, values: list[str], *, positive: bool = True) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except ValueError:
        raise _header_error(path, key, f"expected integers, got {' '.join(values)!r}") from None
    if any(v < (1 if positive else 0) for v in out):
        raise _header_error(path, key, f"expected {'positive' if positive else 'non-negative'} integers, got {list(out)}")
    return out


def parse_pcd_header(header_bytes: bytes, path: object = "<pcd>") -> PcdHeader:
    """Parse the header at the start of ``header_bytes`` (up to and including the ``DATA`` line).

    Raises:
        LogFormatError: no ``DATA`` line, a missing ``FIELDS``/``SIZE``/``TYPE``/``WIDTH``/
            ``HEIGHT``, ``SIZE``/``TYPE``/``COUNT`` lengths that differ from ``FIELDS``, an
            unknown ``TYPE`` or size, ``POINTS`` other than ``WIDTH * HEIGHT``, or an
            unknown ``DATA`` layout. The message names the file and the header key.
    """
    entries: dict[str, list[str]] = {}
    offset = 0
    data_seen = False
    while offset < len(header_bytes):
        end = header_bytes.find(b"\n", offset)
        if end < 0:
            break
        raw_line = header_bytes[offset:end]
        offset = end + 1
        try:
            line = raw_line.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _header_error(path, "header", f"non-ASCII header line at byte {offset - len(raw_line) - 1}") from None
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        key = key.upper()
        if key not in _HEADER_KEYS:
            raise _header_error(path, key, f"unknown header key; expected one of {list(_HEADER_KEYS)}")
        if key in entries:
            raise _header_error(path, key, "appears twice in the header")
        entries[key] = values
        if key == "DATA":
            data_seen = True
            break
    if not data_seen:
        raise _header_error(path, "DATA", "header has no DATA line (not a PCD file, or the header is truncated)")

    for key in ("FIELDS", "SIZE", "TYPE", "WIDTH", "HEIGHT"):
        if key not in entries or not entries[key]:
            raise _header_error(path, key, "missing from the header")
    fields = tuple(entries["FIELDS"])
    named = [f for f in fields if f != "_"]
    if len(set(named)) != len(named):
        raise _header_error(path, "FIELDS", f"duplicate field names in {list(fields)}")
    sizes = _parse_ints(path, "SIZE", entries["SIZE"])
    types = tuple(t.upper() for t in entries["TYPE"])
    counts = _parse_ints(path, "COUNT", entries["COUNT"]) if "COUNT" in entries else (1,) * len(fields)
    for key, values in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(values) != len(fields):
            raise _header_error(path, key, f"expected {len(fields)} values (one per field in FIELDS {list(fields)}), got {len(values)}")
    for name, size, kind in zip(fields, sizes, types):
        if kind not in _VALID_SIZES:
            raise _header_error(path, "TYPE", f"field {name!r}: expected I, U or F, got {kind!r}")
        if size not in _VALID_SIZES[kind]:
            raise _header_error(path, "SIZE", f"field {name!r} of TYPE {kind}: expected size in {_VALID_SIZES[kind]}, got {size}")
    (width,) = _parse_ints(path, "WIDTH", entries["WIDTH"][:1], positive=False)
    (height,) = _parse_ints(path, "HEIGHT", entries["HEIGHT"][:1], positive=False)
    points = width * height
    if "POINTS" in entries:
        (declared,) = _parse_ints(path, "POINTS", entries["POINTS"][:1], positive=False)
        if declared != points:
            raise _header_error(path, "POINTS", f"expected WIDTH * HEIGHT = {width} * {height} = {points}, got {declared}")
    viewpoint: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    if "VIEWPOINT" in entries:
        try:
            viewpoint = tuple(float(v) for v in entries["VIEWPOINT"])
        except ValueError:
            raise _header_error(path, "VIEWPOINT", f"expected 7 numbers, got {entries['VIEWPOINT']}") from None
        if len(viewpoint) != 7:
            raise _header_error(path, "VIEWPOINT", f"expected 7 numbers (tx ty tz qw qx qy qz), got {len(viewpoint)}")
    data = entries["DATA"][0].lower() if entries["DATA"] else ""
    if data not in PCD_DATA_FORMATS:
        raise _header_error(path, "DATA", f"expected one of {list(PCD_DATA_FORMATS)}, got {data!r}")
    version = entries.get("VERSION", [""])[0] if entries.get("VERSION") else ""
    return PcdHeader(version, fields, sizes, types, counts, width, height, viewpoint, points, data, offset)


def read_pcd_header(path: str | Path) -> PcdHeader:
    """Read only the header of a PCD file (cheap)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MAX_HEADER_BYTES)
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot read: {exc}") from exc
    return parse_pcd_header(head, path)


def _split_columns(header: PcdHeader, records: np.ndarray) -> dict[str, np.ndarray]:
    return {
        name: np.ascontiguousarray(records[record_name])
        for name, record_name in zip(header.fields, header.record_names)
        if name != "_"
    }


def _decode_ascii(path: object, header: PcdHeader, body: bytes) -> dict[str, np.ndarray]:
    width = sum(header.counts)
    lines = [line for line in body.decode("ascii", errors="replace").splitlines() if line.strip()]
    if len(lines) < header.points:
        raise LogFormatError(path, "DATA", f"ascii data truncated: expected {header.points} point lines (POINTS), got {len(lines)}")
    tokens = []
    for row, line in enumerate(lines[: header.points]):
        values = line.split()
        if len(values) != width:
            raise LogFormatError(path, "DATA", f"ascii line {row + 1} of the data: expected {width} values (sum of COUNT), got {len(values)}")
        if max(map(len, values), default=0) > MAX_ASCII_TOKEN_CHARS:
            raise LogFormatError(path, "DATA", f"ascii line {row + 1} of the data: a value longer than {MAX_ASCII_TOKEN_CHARS} characters")
        tokens.append(values)
    table = np.array(tokens, dtype=str).reshape(header.points, width)
    columns: dict[str, np.ndarray] = {}
    start = 0
    for i, name in enumerate(header.fields):
        count = header.counts[i]
        block = table[:, start : start + count]
        start += count
        if name == "_":
            continue
        dtype = header.field_dtype(i)
        values = _ascii_values(path, name, block, dtype)
        columns[name] = values.reshape(-1) if count == 1 else values
    return columns


def _ascii_values(path: object, name: str, block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Text values -> ``dtype``; an integer outside the type's range is an error, not a wrap-around."""
    field = f"DATA field {short_repr(name, 60)}"
    if dtype.kind == "f":
        try:
            with np.errstate(over="ignore"):
                return block.astype(np.float64).astype(dtype)  # out-of-range floats become +-inf (kept; validation reports)
        except ValueError as exc:
            raise LogFormatError(path, field, f"ascii values are not numbers: {str(exc)[:200]}") from None
    try:
        integers = [int(token) for token in block.ravel()]
    except ValueError:
        bad = next(t for t in block.ravel() if not _is_int(t))
        raise LogFormatError(path, field, f"expected {dtype.name} integers, got {short_repr(str(bad))}") from None
    info = np.iinfo(dtype)
    if integers and (min(integers) < info.min or max(integers) > info.max):
        bad = next(v for v in integers if not info.min <= v <= info.max)
        raise LogFormatError(path, field, f"value {short_repr(bad)} is outside {dtype.name} [{info.min}, {info.max}]")
    return np.array(integers, dtype=dtype).reshape(block.shape)


def _is_int(token: str) -> bool:
    try:
        int(token)
        return True
    except ValueError:
        return False


def _decode_binary(path: object, header: PcdHeader, body: bytes) -> dict[str, np.ndarray]:
    expected = header.points * header.point_size
    if len(body) < expected:
        raise LogFormatError(
            path, "DATA", f"binary data truncated: expected {expected} bytes ({header.points} points x {header.point_size} bytes), got {len(body)}"
        )
    records = np.frombuffer(body, dtype=header.point_dtype, count=header.points)
    return _split_columns(header, records)


def _decode_binary_compressed(path: object, header: PcdHeader, body: bytes) -> dict[str, np.ndarray]:
    if len(body) < 8:
        raise LogFormatError(path, "DATA", f"binary_compressed data truncated: expected an 8-byte size prefix, got {len(body)} bytes")
    compressed_size, uncompressed_size = (int(v) for v in np.frombuffer(body[:8], dtype="<u4"))
    expected = header.points * header.point_size
    if uncompressed_size != expected:
        raise LogFormatError(
            path, "DATA", f"binary_compressed: expected {expected} uncompressed bytes ({header.points} points x {header.point_size}), header says {uncompressed_size}"
        )
    if len(body) - 8 < compressed_size:
        raise LogFormatError(
            path, "DATA", f"binary_compressed data truncated: expected {compressed_size} compressed bytes, got {len(body) - 8}"
        )
    if expected == 0:
        raw = b""
    else:
        raw = lzf_decompress(body[8 : 8 + compressed_size], uncompressed_size, source=str(path))
    columns: dict[str, np.ndarray] = {}
    start = 0
    for i, name in enumerate(header.fields):  # field-major: all values of field 0, then field 1, ...
        count = header.counts[i]
        nbytes = header.points * header.sizes[i] * count
        if name != "_":
            values = np.frombuffer(raw, dtype=header.field_dtype(i), count=header.points * count, offset=start)
            columns[name] = values.copy() if count == 1 else values.reshape(header.points, count).copy()
        start += nbytes
    return columns


def read_pcd(path: str | Path) -> PcdCloud:
    """Read a PCD file.

    Args:
        path: a ``.pcd`` file (``ascii``, ``binary`` or ``binary_compressed``).

    Returns:
        :class:`PcdCloud` with one array per field, ``(N,)`` (``(N, COUNT)``), in the
        file's dtype; N = ``WIDTH * HEIGHT`` (organised clouds are flattened row-major).

    Raises:
        LogFormatError: unreadable file, bad header (see :func:`parse_pcd_header`), or a
            data section that is truncated or corrupt; the message names the file and key.
    """
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot read: {exc}") from exc
    header = parse_pcd_header(blob[:_MAX_HEADER_BYTES], path)
    data_bytes = header.points * header.point_size
    if data_bytes > MAX_PCD_DATA_BYTES:
        raise LogFormatError(
            path,
            "POINTS",
            f"the header declares {header.points} points x {header.point_size} bytes = {data_bytes} bytes of point data, "
            f"more than the {MAX_PCD_DATA_BYTES} bytes this reader accepts (MAX_PCD_DATA_BYTES)",
        )
    body = blob[header.data_offset :]
    if header.data == "ascii":
        columns = _decode_ascii(path, header, body)
    elif header.data == "binary":
        columns = _decode_binary(path, header, body)
    else:
        columns = _decode_binary_compressed(path, header, body)
    return PcdCloud(str(path), header, columns)


# ---------------------------------------------------------------------- writing
def _pcd_type(name: str, array: np.ndarray) -> tuple[str, int]:
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize in (4, 8):
        return "F", array.dtype.itemsize
    if kind in "iu" and array.dtype.itemsize in (1, 2, 4, 8):
        return ("I" if kind == "i" else "U"), array.dtype.itemsize
    if kind == "b":
        return "U", 1
    raise LogFormatError("<write_pcd>", "TYPE", f"column {name!r}: expected an int, uint or float32/float64 array, got {array.dtype}")


def write_pcd(
    path: str | Path,
    columns: Sequence[str],
    arrays: Sequence[np.ndarray],
    data: str = "binary_compressed",
    *,
    viewpoint: Sequence[float] = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
) -> None:
    """Write an unorganised PCD v0.7 file (``HEIGHT 1``).

    Args:
        path: output file.
        columns: ``(F,)`` field names.
        arrays: ``(F,)`` arrays, each ``(N,)`` or ``(N, COUNT)``, int/uint (1-8 bytes) or
            float32/float64; written little-endian in their own dtype.
        data: ``"binary_compressed"`` (LZF, as PCL writes it), ``"binary"`` or ``"ascii"``
            (floats printed with enough digits to read back bit-exactly).
        viewpoint: ``tx ty tz qw qx qy qz``.

    Raises:
        LogFormatError: mismatched column/array counts or lengths, or an unsupported dtype.
    """
    if data not in PCD_DATA_FORMATS:
        raise LogFormatError(path, "DATA", f"expected one of {list(PCD_DATA_FORMATS)}, got {data!r}")
    names = list(columns)
    arrs = [np.asarray(a) for a in arrays]
    if len(names) != len(arrs) or not names:
        raise LogFormatError(path, "FIELDS", f"expected one array per column name, got {len(names)} names and {len(arrs)} arrays")
    n = len(arrs[0])
    blocks = []
    for name, arr in zip(names, arrs):
        if arr.ndim not in (1, 2) or len(arr) != n:
            raise LogFormatError(path, "FIELDS", f"column {name!r}: expected ({n},) or ({n}, COUNT), got {arr.shape}")
        blocks.append(arr.reshape(n, -1))
    kinds = [_pcd_type(name, arr) for name, arr in zip(names, arrs)]
    counts = [b.shape[1] for b in blocks]
    header = "\n".join(
        [
            "# .PCD v0.7 - Point Cloud Data file format",
            "VERSION 0.7",
            "FIELDS " + " ".join(names),
            "SIZE " + " ".join(str(size) for _, size in kinds),
            "TYPE " + " ".join(kind for kind, _ in kinds),
            "COUNT " + " ".join(str(c) for c in counts),
            f"WIDTH {n}",
            "HEIGHT 1",
            "VIEWPOINT " + " ".join(repr(float(v)) for v in viewpoint),
            f"POINTS {n}",
            f"DATA {data}",
            "",
        ]
    ).encode("ascii")
    dtypes = [np.dtype(f"<{ {'F': 'f', 'I': 'i', 'U': 'u'}[kind] }{size}") for kind, size in kinds]
    if data == "ascii":
        rows = []
        formatted = []
        for block, dtype in zip(blocks, dtypes):
            values = block.astype(dtype)
            if dtype.kind == "f":
                text = np.char.mod("%.9g" if dtype.itemsize == 4 else "%.17g", values)
            else:
                text = np.char.mod("%d", values)
            formatted.append(text)
        table = np.concatenate(formatted, axis=1) if formatted else np.zeros((n, 0), dtype=str)
        rows = [" ".join(row) for row in table]
        body = ("\n".join(rows) + ("\n" if rows else "")).encode("ascii")
    elif data == "binary":
        record = np.dtype([(f"f{i}", dt, (c,) if c > 1 else ()) for i, (dt, c) in enumerate(zip(dtypes, counts))])
        records = np.empty(n, dtype=record)
        for i, (block, dtype, c) in enumerate(zip(blocks, dtypes, counts)):
            records[f"f{i}"] = block.astype(dtype) if c > 1 else block[:, 0].astype(dtype)
        body = records.tobytes()
    else:
        raw = b"".join(np.ascontiguousarray(block.astype(dtype)).tobytes() for block, dtype in zip(blocks, dtypes))
        packed = lzf_compress(raw) if raw else b""
        body = np.array([len(packed), len(raw)], dtype="<u4").tobytes() + packed
    Path(path).write_bytes(header + body)


# ---------------------------------------------------------------------- sweep + reader
def _seconds_to_ns(seconds: float) -> int:
    # Decimal(float) is exact, so the float's value is converted without a second rounding.
    return int((Decimal(float(seconds)) * 1_000_000_000).to_integral_value())


def pcd_to_sweep(cloud: PcdCloud, sensor: str = "lidar", timestamp_ns: int | None = None) -> LidarSweep:
    """Turn a PCD cloud into a :class:`LidarSweep` (see the module docstring for the columns).

    Args:
        cloud: from :func:`read_pcd`.
        sensor: the LiDAR name.
        timestamp_ns: sweep time to use when the cloud has no per-point time field
            (default 0); ignored when it has one.

    Raises:
        LogFormatError: no ``x, y, z`` fields, non-finite per-point times, or a sweep that
            spans more than the int32 nanosecond offsets hold (about 2.1 s).
    """
    xyz = cloud.xyz()
    names = ["x", "y", "z"]
    extra = []
    time_field = next((name for name in PCD_TIME_FIELDS if name in cloud.columns and cloud.columns[name].ndim == 1), None)
    for name, values in cloud.columns.items():
        if name in ("x", "y", "z") or name == time_field:
            continue
        if values.ndim == 1:
            names.append(name)
            extra.append(values.astype(np.float32))
        else:
            for k in range(values.shape[1]):
                names.append(f"{name}_{k}")
                extra.append(values[:, k].astype(np.float32))
    points = np.column_stack([xyz] + extra).astype(np.float32) if extra else xyz
    offsets = None
    sweep_ns = 0 if timestamp_ns is None else int(timestamp_ns)
    if time_field is not None and cloud.num_points:
        times_s = cloud.columns[time_field].astype(np.float64)
        if not np.isfinite(times_s).all():
            raise LogFormatError(cloud.path, time_field, f"{int((~np.isfinite(times_s)).sum())} per-point times are NaN/inf")
        latest = float(times_s.max())
        if not MIN_TIMESTAMP_NS <= latest * 1e9 <= MAX_TIMESTAMP_NS:
            raise LogFormatError(
                cloud.path, time_field, f"expected per-point times in [0, {MAX_TIMESTAMP_NS / 1e9:.0f}] s (up to 2100-01-01 UTC), got a latest time of {latest!r} s"
            )
        sweep_ns = _seconds_to_ns(latest)
        delta_ns = np.rint((times_s - latest) * 1e9)
        if delta_ns.min() < np.iinfo(np.int32).min:
            raise LogFormatError(
                cloud.path, time_field, f"the sweep spans {-delta_ns.min() / 1e9:.3f} s; int32 ns offsets hold at most 2.147 s"
            )
        offsets = delta_ns.astype(np.int32)
    try:
        return LidarSweep(sensor, sweep_ns, points, tuple(names), offsets)
    except ShapeError as exc:  # e.g. a field 'a' with COUNT 2 next to a real field 'a_0'
        raise LogFormatError(cloud.path, "FIELDS", str(exc)) from exc


def _looks_like_pcd(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    for line in head.split(b"\n"):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        return line.split()[0].upper() in (b"VERSION", b"FIELDS")
    return False


@register_reader
class PcdReader(LogReader):
    """A single ``.pcd`` file as a one-frame log (see the module docstring).

    Options:
        sensor: LiDAR name (default ``"lidar"``).
        timestamp_ns: sweep time when the file has no per-point time field (default 0).
    """

    name = "pcd"

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        unknown = set(options) - {"sensor", "timestamp_ns"}
        if unknown:
            raise LogFormatError(uri, "options", f"unknown pcd reader options {sorted(unknown)}; expected sensor, timestamp_ns")
        self.sensor = str(options.get("sensor", "lidar"))
        self._timestamp_ns = options.get("timestamp_ns")
        if self._timestamp_ns is not None:
            check_timestamp_ns(self._timestamp_ns, uri, "timestamp_ns option")
        self.header = read_pcd_header(uri)

    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        return path.is_file() and path.suffix.lower() == ".pcd" and _looks_like_pcd(path)

    def _sweep(self) -> LidarSweep:
        return pcd_to_sweep(read_pcd(self.uri), self.sensor, self._timestamp_ns)

    def list_frames(self) -> list[FrameRef]:
        """One frame. With a per-point time field this reads the file to find the sweep time."""
        if any(name in self.header.fields for name in PCD_TIME_FIELDS):
            timestamp_ns = self._sweep().timestamp_ns
        else:
            timestamp_ns = 0 if self._timestamp_ns is None else int(self._timestamp_ns)
        return [FrameRef(self.uri, self.log_id, 0, timestamp_ns, self.name)]

    def load_frame(self, ref: FrameRef) -> Frame:
        """The frame: one sweep in the ``ego`` (= LiDAR) frame, no pose, no images."""
        self._check_ref(ref)
        if ref.index != 0:
            raise LogFormatError(self.uri, "frame ref", f"a PCD log has one frame (index 0), got index {ref.index}")
        sweep = self._sweep()
        rig = SensorRig(lidars={self.sensor: SE3.identity()})
        return Frame(self.log_id, sweep.timestamp_ns, rig, None, {self.sensor: sweep}, source_uri=self.uri)


__all__ = [
    "MAX_ASCII_TOKEN_CHARS",
    "MAX_PCD_DATA_BYTES",
    "PCD_DATA_FORMATS",
    "PCD_TIME_FIELDS",
    "PcdCloud",
    "PcdHeader",
    "PcdReader",
    "parse_pcd_header",
    "pcd_to_sweep",
    "read_pcd",
    "read_pcd_header",
    "write_pcd",
]
