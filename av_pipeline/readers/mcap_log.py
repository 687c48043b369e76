"""MCAP drive logs with foxglove protobuf schemas or ROS 2 (cdr) messages.

>>> from av_pipeline.readers import open_log
>>> reader = open_log("drive.mcap", lidar_topic="/lidar/points")   # doctest: +SKIP
>>> frame = reader.load_frame(reader.list_frames()[0])             # doctest: +SKIP

What is read (topic defaults, frame ids, the time axis) is in
:mod:`av_pipeline.readers.mcap_assembly` and docs/formats.md. This module holds
what is MCAP specific:

- **Listing** reads only the summary section and the primary LiDAR channel's message
  index records (no chunk is decompressed), so :meth:`McapLogReader.list_frames` is cheap;
  :meth:`~McapLogReader.load_frame` reads only the chunks overlapping the frame's time
  window (``iter_messages(topics, starting_at, ending_before)``). Files without a summary
  or message indexes are read end to end once to list frames (slow, but correct).
- **Schemas**: ``protobuf`` schemas named ``foxglove.*`` (decoded with the file descriptor
  set stored in the MCAP), ``ros2msg`` schemas of the supported ROS types, decoded with
  ``mcap_ros2``, and the two ``jsonschema`` schemas of our own onboard channels
  (``av_pipeline.PlannedPath``, ``av_pipeline.CameraDetections2D``:
  :mod:`~av_pipeline.readers.mcap_json_decode`). Other schemas and encodings (other JSON,
  ROS 1 in MCAP, IDL) are listed but not read.
- **Out-of-order log times** (allowed by MCAP): frames are listed sorted by ``log_time``
  and a :class:`LogOrderWarning` says how many times the primary LiDAR topic went back in
  file order. Two LiDAR messages with the same ``log_time`` are an error (frame keys would
  collide).
- **Truncated files** (no valid footer / summary): opening raises ``LogFormatError`` naming
  the file and listing what is readable before the cut (messages per topic); partial
  reading is not supported: ``mcap recover`` rewrites the readable part into a valid file.
- **Integrity**: chunks are read with CRC validation on (``validate_crcs=True``), so a flipped
  byte in a chunk is a :class:`LogFormatError` for the frames that read it, never altered
  points; the summary section (schemas, channels, chunk indexes) is checked against the
  footer's ``summary_crc`` when the file is opened (the cost is measured in ``benchmarks/ingest.py``). No record may claim more bytes
  than the file holds, and no chunk more than :data:`MAX_CHUNK_BYTES` uncompressed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from av_pipeline.errors import LogFormatError, short_repr
from av_pipeline.readers.base import LogReader, register_reader
from av_pipeline.readers.mcap_assembly import (
    FrameAssembler,
    LogOrderWarning,
    MessageLogOptions,
    MessageSource,
    RawMessage,
    TopicInfo,
    plan_topics,
    sorted_frame_times,
)
from av_pipeline.readers.mcap_foxglove_decode import FOXGLOVE_DECODERS
from av_pipeline.readers.mcap_json_decode import JSON_DECODERS
from av_pipeline.readers.mcap_ros_decode import ROS_DECODERS, normalize_ros_type
from av_pipeline.records import Frame, FrameRef

__all__ = ["LogOrderWarning", "McapLogReader", "protobuf_message_class", "schema_family"]

#: The 8 bytes every MCAP file starts (and ends) with.
MCAP_MAGIC = b"\x89MCAP0\r\n"
#: Largest accepted uncompressed chunk (writers use about 1-8 MiB; a corrupt size field must
#: not make the reader allocate gigabytes).
MAX_CHUNK_BYTES = 1 << 30
_MESSAGE_INDEX_OPCODE = 0x07


def _read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the mcap library and its decompressors raise on corrupt or cut input."""
    from mcap.exceptions import McapError

    # OverflowError / MemoryError: a corrupt chunk size (zstandard refuses sizes beyond ssize_t).
    errors: list[type[BaseException]] = [McapError, struct.error, EOFError, ValueError, KeyError, IndexError, RuntimeError, OSError, MemoryError, OverflowError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard ships with mcap's extras here
        pass
    return tuple(errors)


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What protobuf, mcap_ros2 and json raise on bytes that do not match the schema (json: a
    nesting deeper than the interpreter's recursion limit is a RecursionError)."""
    from google.protobuf.message import DecodeError

    return (*_read_errors(), DecodeError, AttributeError, TypeError, UnicodeDecodeError, NotImplementedError, OverflowError, RecursionError)


def schema_family(schema_name: str, schema_encoding: str) -> tuple[str, str | None]:
    """``(normalised schema name, family)`` where family is ``"foxglove"``, ``"ros2"``, ``"json"`` or ``None`` (unsupported)."""
    if schema_encoding == "protobuf" and schema_name in FOXGLOVE_DECODERS:
        return schema_name, "foxglove"
    if schema_encoding == "jsonschema" and schema_name in JSON_DECODERS:
        return schema_name, "json"
    if schema_encoding == "ros2msg":
        name = normalize_ros_type(schema_name)
        if name in ROS_DECODERS:
            return name, "ros2"
    return f"{schema_name} ({schema_encoding or 'no schema'})", None


def protobuf_message_class(schema_name: str, descriptor_set: bytes) -> type:
    """The message class for ``schema_name`` built from a serialized ``FileDescriptorSet``
    (the MCAP ``protobuf`` schema encoding)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = list(descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    while files:  # add files after their dependencies
        ready = [f for f in files if all(d in added for d in f.dependency)]
        if not ready:
            missing = sorted({d for f in files for d in f.dependency} - added)
            raise ValueError(f"descriptor set for {schema_name} misses dependencies {missing}")
        for f in ready:
            pool.Add(f)
            added.add(f.name)
        files = [f for f in files if f.name not in added]
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))


class _McapSource(MessageSource):
    """Time-window reads and decoding over an open MCAP."""

    def __init__(self, path: str, reader: Any) -> None:
        self.path = path
        self._reader = reader
        self._decoders: dict[int, Callable[[bytes], Any]] = {}
        self._errors = _read_errors()

    def read(self, topics: Sequence[str], start_ns: int | None, end_ns: int | None, limit: int | None = None) -> list[RawMessage]:
        out: list[RawMessage] = []
        try:
            for schema, channel, message in self._reader.iter_messages(topics=list(topics), starting_at=start_ns, ending_before=end_ns):
                out.append(RawMessage(channel.topic, int(message.log_time), (schema, channel, message)))
                if limit is not None and len(out) >= limit:
                    break  # the generator decompresses chunks lazily: stop reading here
        except self._errors as exc:
            raise LogFormatError(
                self.path, ", ".join(topics), f"cannot read messages in [{start_ns}, {end_ns}): {type(exc).__name__}: {exc}"
            ) from exc
        return out

    def _decoder(self, schema: Any, channel: Any) -> Callable[[bytes], Any]:
        decoder = self._decoders.get(channel.id)
        if decoder is not None:
            return decoder
        if schema is None:
            raise LogFormatError(self.path, channel.topic, "the channel has no schema")
        name, family = schema_family(schema.name, schema.encoding)
        path, topic = self.path, channel.topic
        try:
            if family == "foxglove" and channel.message_encoding == "protobuf":
                message_class = protobuf_message_class(schema.name, schema.data)
                foxglove_sample = FOXGLOVE_DECODERS[name]

                def decoder(data: bytes) -> Any:
                    return foxglove_sample(message_class.FromString(data), path, topic)

            elif family == "ros2" and channel.message_encoding == "cdr":
                from mcap_ros2.decoder import DecoderFactory

                decode_cdr = DecoderFactory().decoder_for("cdr", schema)
                ros_sample = ROS_DECODERS[name]

                def decoder(data: bytes) -> Any:
                    return ros_sample(decode_cdr(data), path, topic)

            elif family == "json" and channel.message_encoding == "json":
                json_sample = JSON_DECODERS[name]

                def decoder(data: bytes) -> Any:
                    return json_sample(json.loads(data), path, topic)

            else:
                raise LogFormatError(path, topic, f"unsupported schema {name} with message encoding {channel.message_encoding!r}")
        except LogFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - schema text comes from the file: any parser failure is a bad schema
            raise LogFormatError(path, f"{topic} schema", f"cannot build a decoder for {short_repr(schema.name)}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        self._decoders[channel.id] = decoder
        return decoder

    def decode(self, message: RawMessage) -> Any:
        schema, channel, record = message.payload
        decoder = self._decoder(schema, channel)
        try:
            return decoder(record.data)
        except LogFormatError:
            raise
        except _decode_errors() as exc:
            raise LogFormatError(
                self.path,
                channel.topic,
                f"message at log_time {message.log_time_ns} does not decode as {schema.name}: {type(exc).__name__}: {exc}",
            ) from exc


@register_reader
class McapLogReader(LogReader):
    """An MCAP log: one frame per message on the primary LiDAR topic.

    Options: see :class:`~av_pipeline.readers.mcap_assembly.MessageLogOptions`.

    Attributes:
        topics: every topic in the file with its normalised schema name and message count.
        plan: which topic feeds which part of a frame.

    Raises:
        LogFormatError: not an MCAP file, a truncated file (no valid footer / summary), or
            topics that do not match the options (the message lists the topics found).
        ConfigError: an unknown option.
    """

    name = "mcap"

    @classmethod
    def sniff(cls, uri: str) -> bool:
        path = Path(uri)
        if not path.is_file():
            return False
        if path.suffix == ".mcap":
            return True
        with path.open("rb") as f:
            return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, **options)
        from mcap.exceptions import InvalidMagic
        from mcap.reader import SeekingReader

        self.reader_options = MessageLogOptions.from_options(self.name, options)
        try:
            self._file = open(self.uri, "rb")  # noqa: SIM115 - closed by close()
            size = self._file.seek(0, 2)
            self._file.seek(0)
        except OSError as exc:
            raise LogFormatError(self.uri, "file", f"cannot open: {exc.strerror or exc}") from exc
        try:
            # CRCs on; no record may claim more bytes than the file holds (a corrupt length
            # field would otherwise make the library try to read up to 4 GiB).
            head = self._file.read(len(MCAP_MAGIC))
            if head != MCAP_MAGIC:
                raise InvalidMagic(head)
            self._file.seek(0)
            self._reader = SeekingReader(self._file, validate_crcs=True, record_size_limit=max(size, 64))
        except (InvalidMagic, *_read_errors()) as exc:
            self._file.close()
            raise LogFormatError(self.uri, "magic", f"not an MCAP file: {exc}") from exc
        self._scanned_times: dict[int, list[tuple[int, int]]] | None = None
        self._bad_chunks: list[tuple[Any, str]] = []
        try:
            channels, schemas, counts = self._load_summary()
            self.topics = self._topic_infos(channels, schemas, counts)
            self.plan = plan_topics(self.uri, self.topics, self.reader_options)
        except BaseException:
            self._file.close()
            raise
        self._channels = channels
        self._source = _McapSource(self.uri, self._reader)
        self._assembler = FrameAssembler(self._source, self.plan, self.reader_options, self.log_id)
        self._times: list[int] | None = None

    # ------------------------------------------------------------------ summary
    def _load_summary(self) -> tuple[dict[int, Any], dict[int, Any], dict[int, int] | None]:
        try:
            summary = self._reader.get_summary()
        except _read_errors() as exc:
            raise LogFormatError(
                self.uri,
                "footer",
                f"no valid footer/summary ({type(exc).__name__}: {exc}): the file is truncated or was not finished "
                f"({self._file_size()} bytes); {self._salvage_report()}. `mcap recover` rewrites the readable part into a valid file",
            ) from exc
        if summary is None or not summary.channels:
            return self._scan_without_summary()
        size = self._file_size()
        for ci in summary.chunk_indexes:
            if ci.uncompressed_size > MAX_CHUNK_BYTES or ci.chunk_start_offset + ci.chunk_length > size:
                raise LogFormatError(
                    self.uri,
                    f"chunk index @{ci.chunk_start_offset}",
                    f"claims a chunk of {ci.chunk_length} bytes ({ci.uncompressed_size} uncompressed) in a file of {size} bytes "
                    f"(limit {MAX_CHUNK_BYTES} uncompressed): corrupt summary",
                )
        self._check_summary_crc(size)
        self._bad_chunks = self._check_chunk_headers(summary.chunk_indexes, size)
        counts = dict(summary.statistics.channel_message_counts) if summary.statistics is not None else None
        self._summary = summary
        return dict(summary.channels), dict(summary.schemas), counts

    def _check_summary_crc(self, size: int) -> None:
        """Compare the footer's ``summary_crc`` with the summary section (schemas, channels,
        chunk indexes): a corrupt schema name would otherwise drop a topic without notice."""
        footer_length = 1 + 8 + 8 + 8 + 4  # opcode, record length, summary_start, summary_offset_start, summary_crc
        self._file.seek(size - len(MCAP_MAGIC) - footer_length)
        footer = self._file.read(footer_length)
        opcode, _, summary_start, _, summary_crc = struct.unpack("<BQQQI", footer)
        if opcode != 0x02 or not summary_start or not summary_crc:
            return  # no footer record here (the library read it otherwise) or no CRC written
        self._file.seek(summary_start)
        covered = self._file.read(size - len(MCAP_MAGIC) - 4 - summary_start)
        if zlib.crc32(covered) != summary_crc:
            raise LogFormatError(
                self.uri, "summary", f"summary section CRC mismatch (expected {summary_crc:#010x}, computed {zlib.crc32(covered):#010x}): corrupt file"
            )

    def _check_chunk_headers(self, chunk_indexes: Sequence[Any], size: int) -> list[tuple[Any, str]]:
        """Chunks whose record header disagrees with their (CRC-checked) chunk index.

        A chunk's own header is outside its CRC, and a zeroed ``uncompressed_crc`` switches the
        check off: a damaged header (compression, sizes, times) would make the chunk read as
        empty and its messages vanish without notice. Returns ``(chunk index, why)`` pairs;
        frames that would read such a chunk fail in :meth:`load_frame`.
        """
        bad = []
        for ci in chunk_indexes:
            self._file.seek(ci.chunk_start_offset)
            head = self._file.read(9 + 8 + 8 + 8 + 4 + 4)
            why = None
            if len(head) != 41:
                why = "the file ends inside the chunk header"
            else:
                opcode, length, start, end, uncompressed, _crc, name_length = struct.unpack("<BQQQQII", head)
                compression = self._file.read(min(name_length, 64)).decode("utf-8", "replace")
                stored = self._file.read(8)
                records_length = struct.unpack("<Q", stored)[0] if len(stored) == 8 else -1
                expected = (0x06, ci.chunk_length - 9, ci.message_start_time, ci.message_end_time, ci.uncompressed_size, ci.compression, ci.compressed_size)
                found = (opcode, length, start, end, uncompressed, compression, records_length)
                names = ("opcode", "record length", "message_start_time", "message_end_time", "uncompressed_size", "compression", "records length")
                wrong = [f"{n} {f!r} (index: {e!r})" for n, f, e in zip(names, found, expected) if f != e]
                if wrong:
                    why = "chunk header disagrees with the chunk index: " + ", ".join(wrong)[:300]
            if why is not None:
                bad.append((ci, why))
        return bad

    def _file_size(self) -> int:
        return Path(self.uri).stat().st_size

    def _salvage_report(self) -> str:
        """What a sequential read gets through before the cut (error path only)."""
        from mcap.reader import NonSeekingReader

        counts: Counter[str] = Counter()
        last_time = None
        stop = "the end of the data"
        with open(self.uri, "rb") as f:
            try:
                for _, channel, message in NonSeekingReader(f, validate_crcs=True, record_size_limit=max(self._file_size(), 64)).iter_messages(log_time_order=False):
                    counts[channel.topic] += 1
                    last_time = message.log_time if last_time is None else max(last_time, message.log_time)
            except _read_errors() as exc:
                stop = f"{type(exc).__name__} at byte {f.tell()}"
        readable = ", ".join(f"{topic}: {n}" for topic, n in sorted(counts.items())) or "no complete messages"
        return f"readable before {stop}: {readable} (last log_time {last_time})"

    def _scan_without_summary(self) -> tuple[dict[int, Any], dict[int, Any], dict[int, int]]:
        """One sequential pass for files without a summary: channels, schemas, message times."""
        from mcap.reader import NonSeekingReader

        channels: dict[int, Any] = {}
        schemas: dict[int, Any] = {}
        times: dict[int, list[tuple[int, int]]] = {}
        self._file.seek(0)
        try:
            for i, (schema, channel, message) in enumerate(NonSeekingReader(self._file, validate_crcs=True, record_size_limit=max(self._file_size(), 64)).iter_messages(log_time_order=False)):
                channels[channel.id] = channel
                if schema is not None:
                    schemas[schema.id] = schema
                times.setdefault(channel.id, []).append((i, int(message.log_time)))
        except _read_errors() as exc:
            raise LogFormatError(self.uri, "data", f"cannot read the file without a summary: {type(exc).__name__}: {exc}") from exc
        self._scanned_times = times
        self._summary = None
        return channels, schemas, {cid: len(t) for cid, t in times.items()}

    @staticmethod
    def _topic_infos(channels: dict[int, Any], schemas: dict[int, Any], counts: dict[int, int] | None) -> list[TopicInfo]:
        per_topic: dict[str, TopicInfo] = {}
        for cid, channel in channels.items():
            schema = schemas.get(channel.schema_id)
            name = schema_family(schema.name, schema.encoding)[0] if schema is not None else "(no schema)"
            count = None if counts is None else int(counts.get(cid, 0))
            if channel.topic in per_topic:  # several channels on one topic: add counts
                old = per_topic[channel.topic]
                count = None if old.message_count is None or count is None else old.message_count + count
            per_topic[channel.topic] = TopicInfo(channel.topic, name, count)
        return list(per_topic.values())

    # ------------------------------------------------------------------ listing
    def _lidar_times_in_file_order(self) -> np.ndarray:
        """``log_time`` of every primary-LiDAR message, in file order."""
        ids = [cid for cid, ch in self._channels.items() if ch.topic == self.plan.lidar_topic]
        if self._scanned_times is not None:
            entries = sorted(e for cid in ids for e in self._scanned_times.get(cid, []))
            return np.array([t for _, t in entries], dtype=np.int64)
        chunk_indexes = self._summary.chunk_indexes
        if not chunk_indexes or any(not ci.message_index_offsets for ci in chunk_indexes):
            return self._lidar_times_by_reading()
        parts = []
        for ci in sorted(chunk_indexes, key=lambda c: c.chunk_start_offset):
            for cid in ids:
                offset = ci.message_index_offsets.get(cid)
                if offset is not None:
                    entries = self._read_message_index(offset, cid)
                    parts.append(entries[np.argsort(entries[:, 1], kind="stable"), 0])  # file order inside the chunk
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _read_message_index(self, offset: int, channel_id: int) -> np.ndarray:
        """``(M, 2)`` uint64 ``(log_time, offset in chunk)`` of one MessageIndex record."""
        self._file.seek(offset)
        head = self._file.read(9)
        if len(head) != 9:
            raise LogFormatError(self.uri, f"message index @{offset}", "the file ends inside the record")
        opcode, length = struct.unpack("<BQ", head)
        if offset + 9 + length > self._file_size():
            raise LogFormatError(
                self.uri, f"message index @{offset}", f"the record claims {length} bytes, past the end of the file ({self._file_size()} bytes)"
            )
        body = self._file.read(length)
        if opcode != _MESSAGE_INDEX_OPCODE or len(body) != length or length < 6:
            raise LogFormatError(
                self.uri, f"message index @{offset}", f"expected a MessageIndex record (opcode 0x07), got opcode {opcode:#x}"
            )
        cid, records_length = struct.unpack_from("<HI", body)
        if cid != channel_id or records_length % 16 or 6 + records_length > length:
            raise LogFormatError(self.uri, f"message index @{offset}", f"corrupt record for channel {channel_id}")
        return np.frombuffer(body, dtype="<u8", count=records_length // 8, offset=6).reshape(-1, 2)

    def _lidar_times_by_reading(self) -> np.ndarray:
        """Slow path (no chunk / message indexes): read the LiDAR topic once."""
        messages = self._source.read([self.plan.lidar_topic], None, None)
        return np.array([m.log_time_ns for m in messages], dtype=np.int64)

    def list_frames(self) -> list[FrameRef]:
        """One :class:`FrameRef` per primary-LiDAR message, sorted by ``log_time``.

        Warns:
            LogOrderWarning: the messages are not in time order in the file.

        Raises:
            LogFormatError: two LiDAR messages share a ``log_time``.
        """
        if self._times is None:
            self._times = sorted_frame_times(self._lidar_times_in_file_order(), self.uri, self.plan.lidar_topic)
        return [FrameRef(self.uri, self.log_id, i, t, self.name) for i, t in enumerate(self._times)]

    def load_frame(self, ref: FrameRef) -> Frame:
        """Assemble the frame of ``ref`` from its time window (see :class:`FrameAssembler`).

        Raises:
            LogFormatError: also when a chunk the frame may read has a damaged header
                (see :meth:`_check_chunk_headers`).
        """
        self._check_ref(ref)
        options = self.reader_options
        margin = max(options.max_pose_window_ns, options.sync_tolerance_ns)
        everywhere = set(self.plan.static_tf_topics) | set(self.plan.calibration_topics.values())  # read once for every frame
        for ci, why in self._bad_chunks:
            topics = {self._channels[cid].topic for cid in ci.message_index_offsets if cid in self._channels}
            if topics & everywhere or ci.message_start_time - margin <= ref.timestamp_ns <= ci.message_end_time + margin:
                raise LogFormatError(self.uri, f"chunk @{ci.chunk_start_offset}", why)
        return self._assembler.assemble(ref.timestamp_ns)

    def close(self) -> None:
        self._file.close()
