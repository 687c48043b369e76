"""The one interface every drive-log reader implements, and ``open_log`` choosing between them.

A reader lists a log's frames cheaply (:meth:`LogReader.list_frames` returns small
:class:`~av_pipeline.records.FrameRef` records) and loads one frame on demand
(:meth:`LogReader.load_frame`), so a Beam worker reads only what it processes.

Adding a reader: subclass :class:`LogReader`, implement ``sniff``, ``list_frames`` and
``load_frame``, and register it with :func:`register_reader` (see docs/formats.md).
"""

from __future__ import annotations

import abc
import functools
import numbers
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.records import Frame, FrameRef


class LogReader(abc.ABC):
    """A drive log opened for reading.

    Subclasses set ``name`` (used in :class:`FrameRef.reader` and ``open_log(..., reader=)``)
    and implement the abstract methods. Readers are cheap to construct: they may read an
    index or summary, never all sensor data. Use as a context manager to release files.

    A reader is also a sequence of frames: ``len(reader)`` frames, ``reader[i]`` (negative
    and slices too) and ``reader.load_frame(i)`` load by position in :meth:`list_frames`,
    and ``for frame in reader`` loads them in order. The frame list is read once, on the
    first such use.

    Attributes:
        uri: the log's location as given to :func:`open_log`.
        log_id: stable identifier of the log.
    """

    name: ClassVar[str] = ""

    def __init__(self, uri: str, **options: Any) -> None:
        self.uri = str(uri)
        self.options = options
        self.log_id = self._default_log_id()

    def _default_log_id(self) -> str:
        path = Path(self.uri.rstrip("/"))
        return path.stem if path.suffix else path.name

    @classmethod
    @abc.abstractmethod
    def sniff(cls, uri: str) -> bool:
        """True when ``uri`` looks like a log this reader can open (by content and extension)."""

    @abc.abstractmethod
    def list_frames(self) -> list[FrameRef]:
        """The log's frames in time order, without loading sensor data."""

    @abc.abstractmethod
    def load_frame(self, ref: FrameRef | int) -> Frame:
        """Load one frame listed by :meth:`list_frames`, given its ref or its position there.

        Subclasses implement it for a :class:`FrameRef`; an ``int`` (negative counts from the
        end) is turned into the ref before their code runs (see ``__init_subclass__``).

        Raises:
            LogFormatError: the frame's data is corrupt or missing; the message names the
                file and the field.
            IndexError: an index outside the log's frames.
            TypeError: neither a ``FrameRef`` nor an ``int``.
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        load = cls.__dict__.get("load_frame")
        if load is None or getattr(load, "__isabstractmethod__", False) or getattr(load, "_accepts_index", False):
            return

        @functools.wraps(load)
        def load_frame(self: LogReader, ref: FrameRef | int) -> Frame:
            return load(self, self._as_ref(ref))

        load_frame._accepts_index = True  # type: ignore[attr-defined]
        cls.load_frame = load_frame  # type: ignore[method-assign]

    def _frame_refs(self) -> list[FrameRef]:
        refs = getattr(self, "_listed_refs", None)
        if refs is None:
            refs = self._listed_refs = self.list_frames()
        return refs

    def _as_ref(self, ref: FrameRef | int) -> FrameRef:
        if isinstance(ref, FrameRef):
            return ref
        if isinstance(ref, bool) or not isinstance(ref, numbers.Integral):
            raise TypeError(
                f"{self.uri}: load_frame expects a FrameRef from list_frames() or an int index, got {type(ref).__name__}"
            )
        refs = self._frame_refs()
        if not -len(refs) <= int(ref) < len(refs):
            raise IndexError(f"{self.uri}: frame {int(ref)} is out of range; the log has {len(refs)} frames")
        return refs[int(ref)]

    def __len__(self) -> int:
        return len(self._frame_refs())

    def __getitem__(self, index: int | slice) -> Frame | list[Frame]:
        """``reader[i]``: frame ``i`` of :meth:`list_frames`; ``reader[a:b]``: a list of frames."""
        if isinstance(index, slice):
            return [self.load_frame(ref) for ref in self._frame_refs()[index]]
        return self.load_frame(index)

    def __iter__(self) -> Iterator[Frame]:
        return self.iter_frames()

    def skipped_entries(self) -> list[LogFormatError]:
        """Files or rows of the log that :meth:`list_frames` could not list as frames.

        Each is an error naming the file and field (a KITTI velodyne file with a non-numeric
        sample id or an upper-case ``.BIN``, a sweep file without a timestamp line), so
        nothing is left out without notice; ingest dead-letters each one (stage ``entry``).
        Empty by default; call it after :meth:`list_frames`.
        """
        return []

    def iter_frames(self) -> Iterator[Frame]:
        """Load every frame in order (convenience for small logs and tests)."""
        for ref in self.list_frames():
            yield self.load_frame(ref)

    def close(self) -> None:
        """Release open files (no-op by default)."""

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_ref(self, ref: FrameRef) -> None:
        if ref.reader != self.name or ref.log_uri != self.uri:
            raise LogFormatError(
                self.uri, "frame ref", f"expected a ref listed by this {self.name} reader, got {ref.reader} ref for {ref.log_uri}"
            )


_READERS: dict[str, Callable[..., LogReader]] = {}


def register_reader(cls: type[LogReader]) -> type[LogReader]:
    """Class decorator: make a reader available to :func:`open_log` under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set a non-empty 'name'")
    _READERS[cls.name] = cls
    return cls


def available_readers() -> list[str]:
    """Names of the registered readers."""
    _import_builtin_readers()
    return sorted(_READERS)


def _import_builtin_readers() -> None:
    # Imported lazily so `import av_pipeline` stays light; each module registers itself.
    import importlib

    for module in BUILTIN_READER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing optional dependency inside the module
                raise


#: What each built-in reader opens, in the words of a user's data (error messages, docs). A
#: reader registered from elsewhere may set ``format_description`` on its class instead.
READER_FORMATS: dict[str, str] = {
    "kitti_object": "KITTI object (a training/testing folder with velodyne/, calib/, image_2/, label_2/)",
    "kitti_raw": "KITTI raw (a <date>_drive_<nnnn>_sync or _extract folder beside the calib_*.txt files)",
    "nuscenes": "nuScenes / Lyft Level 5 tables (a folder with sample.json, sample_data.json, ...)",
    "mcap": "MCAP (.mcap with foxglove or ROS 2 messages)",
    "rosbag": "ROS 1 bag (.bag) or ROS 2 bag folder (metadata.yaml)",
    "pcd": "PCD point cloud (.pcd)",
    "pcd_folder": "a folder of .pcd sweeps with images and a calibration file (PJLab layout)",
    "av2": "Argoverse 2 sensor log (a log folder with sensors/lidar/*.feather)",
    "pandaset": "PandaSet sequence (a folder with lidar/, camera/, annotations/)",
}


def reader_formats() -> list[str]:
    """One line per registered reader: the format it opens (see :data:`READER_FORMATS`)."""
    _import_builtin_readers()
    return [getattr(cls, "format_description", None) or READER_FORMATS.get(name, name) for name, cls in _READERS.items()]


#: Modules holding the built-in readers (each registers itself on import).
BUILTIN_READER_MODULES: tuple[str, ...] = (
    "av_pipeline.readers.kitti",
    "av_pipeline.readers.nuscenes",
    "av_pipeline.readers.mcap_log",
    "av_pipeline.readers.rosbag",
    "av_pipeline.readers.pcd",
    "av_pipeline.readers.av2",
    "av_pipeline.readers.pandaset",
    "av_pipeline.readers.pcd_folder",
)


def open_log(uri: str | Path, reader: str | None = None, **options: Any) -> LogReader:
    """Open a drive log, choosing the reader by content and extension unless ``reader`` names one.

    Args:
        uri: a file or directory.
        reader: force a reader by name (see :func:`available_readers`).
        **options: reader options (e.g. MCAP topic names).

    Raises:
        LogFormatError: nothing at ``uri``, an unknown reader name, or no reader recognises it.
    """
    _import_builtin_readers()
    uri = str(uri)
    try:
        if reader is not None:
            if reader not in _READERS:
                raise LogFormatError(uri, "reader", f"expected one of {sorted(_READERS)}, got {short_repr(reader)}")
            return _READERS[reader](uri, **options)
        if not Path(uri).exists():
            raise LogFormatError(uri, "path", "no such file or directory (or a broken symlink)")
        for cls in _READERS.values():
            if cls.sniff(uri):  # type: ignore[attr-defined]
                return cls(uri, **options)
    except OSError as exc:  # unreadable folder, symlink loop, ...: the product's error, the OS error as cause
        raise LogFormatError(getattr(exc, "filename", None) or uri, "path", f"cannot read: {exc.strerror or exc}") from exc
    formats = "; ".join(reader_formats())
    raise LogFormatError(uri, "format", f"no reader recognises this log; the formats read are: {formats}")
