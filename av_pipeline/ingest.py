"""Ingest as plain functions: log patterns -> logs -> frame refs -> validated frame-index rows.

The Beam job (:mod:`beam_jobs.ingest`) only wires these together; they run the same in a
unit test, a benchmark or a notebook::

    uris = expand_log_patterns(["logs/*.mcap"])
    for uri in uris:
        with open_log(uri) as reader:
            kept, out_of_order = split_out_of_order(reader.list_frames())
            rows = [frame_index_row(ref, reader.load_frame(ref)) for ref in kept]

The frame index has one row per valid frame; :data:`INDEX_COLUMNS` documents its columns
and :func:`index_schema` gives the matching Arrow schema. :func:`frame_index_row` checks that
the row converts to that schema, so one frame's values can never fail the Parquet write.

Log ids must be unique per job: :func:`disambiguate_log_ids` renames ids that two logs share
(``drive`` from ``a/drive.mcap`` and ``b/drive.mcap`` become ``drive@a/drive.mcap`` and
``drive@b/drive.mcap``). File names that are not UTF-8 are written with backslash escapes
(:func:`display_text`).
"""

from __future__ import annotations

import glob
import importlib
import json
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from av_pipeline.errors import ConfigError, short_repr
from av_pipeline.records import Frame, FrameRef
from av_pipeline.validate import FrameStats, FrameValidationError, split_out_of_order, validate_frame

if TYPE_CHECKING:  # pyarrow is imported only where a schema is built
    import pyarrow as pa

__all__ = [
    "INDEX_COLUMNS",
    "check_index_row",
    "disambiguate_log_ids",
    "display_text",
    "expand_log_patterns",
    "frame_index_row",
    "import_reader_modules",
    "index_schema",
    "index_sort_key",
    "parse_reader_options",
    "split_out_of_order",
]

#: Frame-index columns: name -> (Arrow type, meaning). Lists of one sensor kind are parallel:
#: ``lidar_num_points[i]`` belongs to ``lidar_names[i]``, ``image_widths_px[i]`` and
#: ``image_heights_px[i]`` to ``camera_names[i]``, in the frame's sensor order.
INDEX_COLUMNS: dict[str, tuple[str, str]] = {
    "log_id": ("string", "stable log identifier (the key's first half)"),
    "timestamp_ns": ("int64", "frame reference time in ns on the log clock (the key's second half)"),
    "frame_index": ("int64", "position in the log's frame list (FrameRef.index)"),
    "lidar_names": ("list<string>", "LiDARs with a sweep in this frame"),
    "lidar_num_points": ("list<int64>", "points per sweep, parallel to lidar_names"),
    "camera_names": ("list<string>", "cameras with an image in this frame"),
    "image_widths_px": ("list<int32>", "decoded image width, parallel to camera_names"),
    "image_heights_px": ("list<int32>", "decoded image height, parallel to camera_names"),
    "num_annotations": ("int64 | null", "ground-truth boxes; null when the log has no labels"),
    "num_onboard_objects": ("int64 | null", "onboard-perception 3D objects; null when the log has none"),
    "pose_translation_m": ("list<float64>[3] | null", "world_SE3_ego translation x, y, z in metres; null without a pose"),
    "pose_rotation_wxyz": ("list<float64>[4] | null", "world_SE3_ego rotation quaternion w, x, y, z; null without a pose"),
    "source_uri": ("string", "the file or log record the frame was loaded from"),
    "log_uri": ("string", "the log as given to open_log"),
    "reader": ("string", "name of the reader that loaded it"),
}


def index_schema() -> pa.Schema:
    """The Arrow schema of the frame index (see :data:`INDEX_COLUMNS`)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("log_id", pa.string(), nullable=False),
            pa.field("timestamp_ns", pa.int64(), nullable=False),
            pa.field("frame_index", pa.int64(), nullable=False),
            pa.field("lidar_names", pa.list_(pa.string()), nullable=False),
            pa.field("lidar_num_points", pa.list_(pa.int64()), nullable=False),
            pa.field("camera_names", pa.list_(pa.string()), nullable=False),
            pa.field("image_widths_px", pa.list_(pa.int32()), nullable=False),
            pa.field("image_heights_px", pa.list_(pa.int32()), nullable=False),
            pa.field("num_annotations", pa.int64()),
            pa.field("num_onboard_objects", pa.int64()),
            pa.field("pose_translation_m", pa.list_(pa.float64())),
            pa.field("pose_rotation_wxyz", pa.list_(pa.float64())),
            pa.field("source_uri", pa.string(), nullable=False),
            pa.field("log_uri", pa.string(), nullable=False),
            pa.field("reader", pa.string(), nullable=False),
        ]
    )


def expand_log_patterns(patterns: Iterable[str]) -> list[str]:
    """Expand log paths and glob patterns to the logs they name.

    A log is a file (``.mcap``, ``.bag``, ...) or a directory (a KITTI or nuScenes tree);
    ``**`` matches across directories. Paths come back absolute, sorted and de-duplicated.

    Args:
        patterns: paths or glob patterns (``logs/*.mcap``, ``kitti/training``).

    Raises:
        ConfigError: no pattern given, or a pattern matches nothing (the message names it).
    """
    patterns = list(patterns)
    if not patterns:
        raise ConfigError("logs: expected at least one log path or glob pattern, got none")
    uris: set[str] = set()
    for pattern in patterns:
        if "://" in pattern:
            raise ConfigError(f"logs: {pattern!r}: readers open local (or mounted) paths only, not URLs")
        expanded = os.path.expanduser(pattern)
        matches = glob.glob(expanded, recursive=True) if glob.has_magic(expanded) else [expanded] if os.path.exists(expanded) else []
        if not matches:
            raise ConfigError(f"logs: {pattern!r} matches no file or directory")
        uris.update(os.path.abspath(match) for match in matches)
    return sorted(uris)


def parse_reader_options(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` reader options; a value that is valid JSON is decoded.

    >>> parse_reader_options(["lidar_topic=/points", 'camera_topics=["/cam_front"]', "max_frames=10"])
    {'lidar_topic': '/points', 'camera_topics': ['/cam_front'], 'max_frames': 10}

    Raises:
        ConfigError: an item without ``=`` or with an empty key.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"reader option: expected KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def import_reader_modules(modules: Iterable[str]) -> None:
    """Import modules that register extra readers (``@register_reader``) in this process.

    Beam workers run this in ``DoFn.setup`` so readers from outside the package exist there.

    Raises:
        ConfigError: a module cannot be imported.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"reader module {module!r} cannot be imported: {exc}") from exc


def frame_index_row(ref: FrameRef, frame: Frame) -> dict[str, Any]:
    """Validate a loaded frame and describe it as one frame-index row.

    Args:
        ref: the ref the frame was loaded for.
        frame: the loaded frame.

    Returns:
        A dict with exactly the keys of :data:`INDEX_COLUMNS`.

    Raises:
        FrameValidationError: the frame breaks a rule of :mod:`av_pipeline.validate`, or a
            value does not fit its index column (check ``index_row``).
    """
    stats: FrameStats = validate_frame(frame, ref)
    pose = frame.world_SE3_ego
    row = {
        "log_id": frame.log_id,
        "timestamp_ns": frame.timestamp_ns,
        "frame_index": ref.index,
        "lidar_names": list(stats.lidar_num_points),
        "lidar_num_points": list(stats.lidar_num_points.values()),
        "camera_names": list(stats.image_sizes_px),
        "image_widths_px": [size[0] for size in stats.image_sizes_px.values()],
        "image_heights_px": [size[1] for size in stats.image_sizes_px.values()],
        "num_annotations": None if frame.annotations is None else len(frame.annotations),
        "num_onboard_objects": None if frame.onboard is None else len(frame.onboard.cuboids),
        "pose_translation_m": None if pose is None else [float(v) for v in pose.translation],
        "pose_rotation_wxyz": None if pose is None else [float(v) for v in pose.as_wxyz()],
        "source_uri": frame.source_uri or ref.log_uri,
        "log_uri": ref.log_uri,
        "reader": ref.reader,
    }
    for column in ("log_id", "source_uri", "log_uri", "reader"):
        row[column] = display_text(row[column])
    for column in ("lidar_names", "camera_names"):
        row[column] = [display_text(name) for name in row[column]]
    return check_index_row(row, frame.source_uri or ref.log_uri)


def display_text(text: str) -> str:
    """``text`` as valid UTF-8: undecodable bytes of a file name (``surrogateescape``) become ``\\xNN``.

    >>> import os
    >>> display_text(os.fsdecode(b"cloud_\\xff.pcd"))
    'cloud_\\\\xff.pcd'
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def check_index_row(row: dict[str, Any], path: object = "<row>") -> dict[str, Any]:
    """Check that ``row`` converts to :func:`index_schema` (so the Parquet write cannot fail on it).

    Returns:
        ``row`` unchanged.

    Raises:
        FrameValidationError: check ``index_row``, naming the first column that does not fit
            (an int beyond int64/int32, a string that is not UTF-8, a wrong type).
    """
    import pyarrow as pa

    schema = index_schema()
    for field in schema:
        try:
            pa.array([row.get(field.name)], type=field.type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError) as exc:
            raise FrameValidationError(
                path, field.name, f"value {short_repr(row.get(field.name))} does not fit the index column ({field.type}): {str(exc)[:200]}", "index_row"
            ) from exc
        if row.get(field.name) is None and not field.nullable:
            raise FrameValidationError(path, field.name, f"expected a value for the non-null index column ({field.type}), got None", "index_row")
    return row


def disambiguate_log_ids(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """New log ids for ids that several logs of one job share.

    Args:
        pairs: ``(log_id, log_uri)`` of every listed log (a log with several ids, such as a
            nuScenes root with several scenes, gives several pairs; repeats are fine).

    Returns:
        ``(log_id, log_uri) -> new log_id`` for the colliding pairs only: the id, ``@`` and
        the log's path relative to the deepest folder the colliding logs share. Pairs not in
        the result keep their id.

    >>> disambiguate_log_ids([("drive", "/d/a/drive.mcap"), ("drive", "/d/b/drive.mcap"), ("x", "/d/x.pcd")])
    {('drive', '/d/a/drive.mcap'): 'drive@a/drive.mcap', ('drive', '/d/b/drive.mcap'): 'drive@b/drive.mcap'}
    """
    uris_of: dict[str, set[str]] = {}
    for log_id, log_uri in pairs:
        uris_of.setdefault(log_id, set()).add(log_uri)
    taken = set(uris_of)
    renamed: dict[tuple[str, str], str] = {}
    for log_id, uris in sorted(uris_of.items()):
        if len(uris) < 2:
            continue
        try:
            common = os.path.commonpath(sorted(uris))
        except ValueError:  # mixed absolute and relative paths
            common = ""
        for uri in sorted(uris):
            suffix = os.path.relpath(uri, common) if common and uri != common else uri
            new_id = f"{log_id}@{suffix}"
            while new_id in taken:
                new_id += "~"
            taken.add(new_id)
            renamed[(log_id, uri)] = new_id
    return renamed


def index_sort_key(row: Mapping[str, Any]) -> tuple[str, int, str]:
    """Order of index rows for comparisons and reports: by key, then log uri."""
    return (row["log_id"], row["timestamp_ns"], row["log_uri"])
