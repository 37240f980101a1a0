"""Reading segment files offline, for `freshet dump-log` (Kafka's DumpLogSegments).

Owns the inspection of a partition's `.log`, `.index` and `.timeindex` files: every batch header
of a `.log` with its CRC checked (and, on request, its records decoded), where a torn or corrupt
tail starts and why, and whether the index entries agree with the log. The batch parsing is
storage's (`segment_scan.scan_headers`, `record_batch`), the index entries are read through
storage's `OffsetIndex` / `TimeIndex` opened sealed (a read-only map): there is no second decoder.

Files are only read (`os.pread` on a read-only descriptor, read-only maps), so a live broker's
files can be dumped. A live active segment may show what a crash would show: an index file that
lags its log (entries are flushed later; a shorter index is not a mismatch) or, right after a
truncation, entries not yet cut from the file.

Index rules checked (Freshet's, see storage/offset_index.py and storage/time_index.py):

- `.index`: entries increase in offset and position; each points at the start of a batch whose
  base offset is the entry's offset (Kafka indexes a batch's last offset, Freshet its base offset).
- `.timeindex`: entries increase in timestamp, not decreasing in offset; each names the base offset
  of a batch whose max timestamp is the entry's timestamp, and no batch up to that one has a larger
  max timestamp.

Imports: standard library and `freshet.storage`. Forbidden: grpc, the cli (server does not depend
on it). Thread-safety: not thread-safe; one dump per thread.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

from freshet.storage.compression import CompressionType
from freshet.storage.errors import StorageError
from freshet.storage.offset_index import OffsetIndex
from freshet.storage.record_batch import NO_TIMESTAMP, BatchHeader, DecodedRecord, decode_batch, is_crc_valid
from freshet.storage.segment import (
    LOG_FILE_SUFFIX,
    OFFSET_INDEX_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    parse_segment_file_name,
)
from freshet.storage.segment_scan import scan_headers
from freshet.storage.time_index import TimeIndex

#: Index files are opened with this cap: large enough never to matter for reading.
_INDEX_BYTES_MAX = 2**31 - 1
KIND_LOG = "log"
KIND_OFFSET_INDEX = "offset_index"
KIND_TIME_INDEX = "time_index"
_KINDS = {LOG_FILE_SUFFIX: KIND_LOG, OFFSET_INDEX_FILE_SUFFIX: KIND_OFFSET_INDEX, TIME_INDEX_FILE_SUFFIX: KIND_TIME_INDEX}


class DumpUsageError(Exception):
    """A path that cannot be dumped: missing, unreadable, or not a segment file name."""


@dataclasses.dataclass(frozen=True)
class SegmentFile:
    """A segment file named `<20-digit base offset>.<log|index|timeindex>[.suffix]`."""

    path: str
    base_offset: int
    kind: str
    suffix: str

    def sibling(self, extension: str) -> str:
        """The path of the same segment's file with `extension` (and the same suffix)."""
        directory = os.path.dirname(self.path)
        return os.path.join(directory, f"{self.base_offset:020d}{extension}{self.suffix}")

    @property
    def topic_partition(self) -> tuple[str, int]:
        """(topic, partition) from the directory name `<topic>-<partition>`; ("", -1) if not one."""
        name = os.path.basename(os.path.dirname(os.path.abspath(self.path)))
        topic, dash, number = name.rpartition("-")
        return (topic, int(number)) if dash and number.isdigit() else ("", -1)


def segment_file(path: str) -> SegmentFile:
    """Check that `path` is a readable segment file and name what it is.

    Raises:
        DumpUsageError: missing, unreadable, a directory, or an unknown name or extension.
    """
    parsed = parse_segment_file_name(os.path.basename(path))
    if parsed is None:
        raise DumpUsageError(
            f"{path}: not a segment file (expected <20-digit base offset>.log, .index or .timeindex)"
        )
    if not os.path.isfile(path):
        raise DumpUsageError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise DumpUsageError(f"{path}: not readable")
    base_offset, extension, suffix = parsed
    return SegmentFile(path, base_offset, _KINDS[extension], suffix)


@dataclasses.dataclass
class BatchDump:
    """One batch of a `.log`: where it is, its header, whether its CRC holds, its records if decoded.

    Attributes:
        records: the decoded records (when asked for and the batch decodes), else None.
        error: why the records could not be decoded, or None.
    """

    position: int
    header: BatchHeader
    is_valid: bool
    records: list[DecodedRecord] | None = None
    error: str | None = None

    def summary(self) -> dict:
        """The batch's fields as JSON values (snake_case; Kafka's text names are in the CLI)."""
        header = self.header
        codec = header.compression
        return {
            "base_offset": header.base_offset,
            "last_offset": header.last_offset,
            "count": header.record_count,
            "position": self.position,
            "timestamp_type": "LogAppendTime" if header.timestamp_type else "CreateTime",
            "max_timestamp": header.max_timestamp,
            "base_timestamp": header.base_timestamp,
            "size_bytes": header.size_bytes,
            "magic": header.magic,
            "compression": _codec_name(codec),
            "crc": header.crc,
            "is_valid": self.is_valid,
            "producer_id": header.producer_id,
            "producer_epoch": header.producer_epoch,
            "base_sequence": header.base_sequence,
            "last_sequence": header.last_sequence,
            "is_transactional": header.is_transactional,
            "is_control": header.is_control,
            "partition_leader_epoch": header.partition_leader_epoch,
        }


@dataclasses.dataclass
class IndexDump:
    """The entries of one `.index` ((offset, position)) or `.timeindex` ((timestamp, offset)) file.

    Attributes:
        mismatches: one line per entry that disagrees with the log (Kafka's "Index mismatch").
        checked_against: the `.log` the entries were checked against, or None when it is missing.
    """

    path: str
    kind: str
    entries: list[tuple[int, int]]
    mismatches: list[str]
    checked_against: str | None


class LogDump:
    """Scans one `.log` file; `batches()` yields each batch, then the tail and indexes can be read.

    After `batches()` is exhausted: `tail` is (position, reason) of a torn or corrupt tail, or None;
    `size_bytes` the file size scanned. Not thread-safe.
    """

    def __init__(self, segment: SegmentFile, *, decode_records: bool) -> None:
        assert segment.kind == KIND_LOG
        self.segment = segment
        self.decode_records = decode_records
        self.tail: tuple[int, str] | None = None
        self.size_bytes = 0
        self.invalid_batches = 0
        # Per batch, in file order: (position, base offset, max timestamp).
        self._boundaries: list[tuple[int, int, int]] = []

    @property
    def has_problems(self) -> bool:
        """Whether a CRC failed, records did not decode, or the tail is torn (after `batches()`)."""
        return self.invalid_batches > 0 or self.tail is not None

    def batches(self) -> Iterator[BatchDump]:
        """Each batch from position 0, in order, stopping where the framing breaks (see `tail`)."""
        path = self.segment.path
        fd = os.open(path, os.O_RDONLY)
        try:
            self.size_bytes = os.fstat(fd).st_size
            pread = lambda size, position: os.pread(fd, size, position)  # noqa: E731
            try:
                for position, header in scan_headers(pread, 0, self.size_bytes, path):
                    yield self._batch(pread(header.size_bytes, position), position, header)
            except StorageError as error:
                reason = getattr(error, "reason", str(error))
                self.tail = (getattr(error, "position", None) or 0, reason)
        finally:
            os.close(fd)

    def _batch(self, data: bytes, position: int, header: BatchHeader) -> BatchDump:
        dump = BatchDump(position, header, is_crc_valid(header, data))
        self._boundaries.append((position, header.base_offset, header.max_timestamp))
        if not dump.is_valid:
            self.invalid_batches += 1
        elif self.decode_records:
            try:
                dump.records = decode_batch(data, verify_crc=False).records
            except StorageError as error:
                dump.error = str(error)
                self.invalid_batches += 1
        return dump

    def check_index(self, segment: SegmentFile) -> IndexDump:
        """The entries of an index file of this segment and those that disagree with the batches."""
        try:
            entries = read_index_entries(segment)
        except StorageError as error:
            return IndexDump(segment.path, segment.kind, [], [f"Index file is unreadable: {error}"], self.segment.path)
        if segment.kind == KIND_OFFSET_INDEX:
            mismatches = self._offset_index_mismatches(entries)
        else:
            mismatches = self._time_index_mismatches(entries)
        return IndexDump(segment.path, segment.kind, entries, mismatches, self.segment.path)

    def _offset_index_mismatches(self, entries: list[tuple[int, int]]) -> list[str]:
        """Lines for the (offset, position) entries that break the `.index` rules (module docstring)."""
        by_position = {position: base_offset for position, base_offset, _ in self._boundaries}
        mismatches = []
        previous = (-1, -1)
        for offset, position in entries:
            if offset <= previous[0] or position <= previous[1]:
                mismatches.append(
                    f"Index mismatch: entry (offset {offset}, position {position}) does not follow {previous}"
                )
            elif position not in by_position:
                if position >= self.size_bytes:
                    where = "past the end of the log"
                elif self.tail is not None and position >= self.tail[0]:
                    where = f"inside the corrupt tail that starts at {self.tail[0]}"
                else:
                    where = "not at a batch start"
                mismatches.append(f"Index mismatch: offset {offset} points at position {position}, {where}")
            elif by_position[position] != offset:
                mismatches.append(
                    f"Index mismatch: index offset {offset}, log offset {by_position[position]} at position {position}"
                )
            previous = (offset, position)
        return mismatches

    def _time_index_mismatches(self, entries: list[tuple[int, int]]) -> list[str]:
        """Lines for the (timestamp, offset) entries that break the `.timeindex` rules (module docstring)."""
        # For each batch base offset: (its max timestamp, the largest max timestamp up to it).
        by_offset: dict[int, tuple[int, int]] = {}
        running = NO_TIMESTAMP
        for _, base_offset, max_timestamp in self._boundaries:
            running = max(running, max_timestamp)
            by_offset[base_offset] = (max_timestamp, running)
        mismatches = []
        previous = (NO_TIMESTAMP, -1)
        for timestamp, offset in entries:
            found = by_offset.get(offset)
            if timestamp <= previous[0] or offset < previous[1]:
                mismatches.append(
                    f"Timeindex mismatch: entry (timestamp {timestamp}, offset {offset}) does not follow {previous}"
                )
            elif found is None:
                mismatches.append(f"Timeindex mismatch: offset {offset} is not the base offset of a batch in the log")
            elif found[0] != timestamp:
                mismatches.append(
                    f"Timeindex mismatch: index timestamp {timestamp}, log timestamp {found[0]} at offset {offset}"
                )
            elif found[1] > timestamp:
                mismatches.append(
                    f"Timeindex mismatch: index timestamp {timestamp} at offset {offset} is below the earlier "
                    f"batch timestamp {found[1]}"
                )
            previous = (timestamp, offset)
        return mismatches


def sibling_index_files(segment: SegmentFile) -> list[SegmentFile]:
    """The `.index` and `.timeindex` files of the segment of a `.log`, those that exist."""
    siblings = [segment.sibling(OFFSET_INDEX_FILE_SUFFIX), segment.sibling(TIME_INDEX_FILE_SUFFIX)]
    return [segment_file(path) for path in siblings if os.path.isfile(path)]


def read_index_entries(segment: SegmentFile) -> list[tuple[int, int]]:
    """The entries of a `.index` as (offset, position) or of a `.timeindex` as (timestamp, offset),
    with absolute offsets, read through a sealed (read-only) index whose map is released after.

    Raises:
        CorruptIndexError: the file is not a whole number of entries.
        KafkaStorageError: the file cannot be read or mapped.
    """
    assert segment.kind in (KIND_OFFSET_INDEX, KIND_TIME_INDEX)
    index_class = OffsetIndex if segment.kind == KIND_OFFSET_INDEX else TimeIndex
    index = index_class(segment.path, segment.base_offset, _INDEX_BYTES_MAX, is_mutable=False)
    try:
        raw = [index.entry(number) for number in range(index.entries)]
    finally:
        index.release()
    base = segment.base_offset
    if segment.kind == KIND_OFFSET_INDEX:
        return [(base + relative, position) for relative, position in raw]
    return [(timestamp, base + relative) for timestamp, relative in raw]


def dump_index(segment: SegmentFile) -> IndexDump:
    """An index file's entries, checked against the sibling `.log` when there is one (an unreadable
    index is reported as a mismatch line)."""
    log_path = segment.sibling(LOG_FILE_SUFFIX)
    if not os.path.isfile(log_path):
        try:
            return IndexDump(segment.path, segment.kind, read_index_entries(segment), [], None)
        except StorageError as error:
            return IndexDump(segment.path, segment.kind, [], [f"Index file is unreadable: {error}"], None)
    log = LogDump(segment_file(log_path), decode_records=False)
    for _ in log.batches():
        pass
    return log.check_index(segment)


def _codec_name(codec: int) -> str:
    """Kafka's name of a codec id ("none", "zstd", ...), or the id itself when it is not one."""
    try:
        return CompressionType(codec).kafka_name
    except ValueError:
        return str(codec)
