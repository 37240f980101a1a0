"""One segment of a partition log: a `.log` file of whole batches plus its two indexes.

Owns the files `<base_offset>.log`, `<base_offset>.index` and `<base_offset>.timeindex` (20-digit,
zero-padded base offset), and what can be done to one segment: append batches, read a byte range
of whole batches, translate an offset to a position, find an offset by timestamp, truncate, recover
after a crash (verify every CRC, cut the torn tail, rebuild the indexes), seal on roll, and delete.

Positions are byte positions in the `.log` file (uint32: a segment is smaller than 4 GiB). Reads
use `os.pread` on the segment's file descriptor and never decode records; only the headers of the
batches near an index entry are parsed.

A segment is *active* (the last one of its log; takes appends; its indexes are in memory) or
*sealed* (read-only; indexes memory-mapped on demand). Either kind's `.log` descriptor is opened on
first use and may be closed while idle by the process-wide cache of open segment files
(`open_files`): every system call on it goes through `_pin` ... `unpin`, and a segment written since
its last fsync is fsynced by `flush` through whatever descriptor it then holds.

The loops that walk the file's batch headers live in `segment_scan` (the plain forward scan, the
read path's boundary search, and recovery's verifying scan), and the read path's lookups
(`translate_offset`, `read`, `find_offset_by_timestamp`) in `segment_reader`, whose functions this
class's methods of the same names call; this class owns the file descriptor, the indexes and the
state those scans update.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: not thread-safe. The owning PartitionLog serialises access with its lock; the
compaction cleaner reads sealed segments' files through its own file descriptors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from freshet.storage import segment_reader
from freshet.storage.config import LogConfig
from freshet.storage.errors import (
    CorruptIndexError,
    CorruptRecordError,
    KafkaStorageError,
    LogDirFullError,
    is_disk_full,
)
from freshet.storage.file_region import FileRegion
from freshet.storage.offset_index import RELATIVE_OFFSET_MAX, OffsetIndex
from freshet.storage.open_files import OPEN_FILES
from freshet.storage.record_batch import BATCH_HEADER_SIZE, NO_TIMESTAMP, BatchHeader, parse_header
from freshet.storage.segment_scan import RecoveryScan, scan_headers
from freshet.storage.time_index import TimeIndex

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_FILE_SUFFIX = ".log"
OFFSET_INDEX_FILE_SUFFIX = ".index"
TIME_INDEX_FILE_SUFFIX = ".timeindex"
#: Suffix of segment files the cleaner is still writing; deleted on open.
CLEANED_FILE_SUFFIX = ".cleaned"
#: Suffix of cleaned segment files that replace old segments; the swap is completed on open.
SWAP_FILE_SUFFIX = ".swap"


def segment_file_name(base_offset: int, extension: str, suffix: str = "") -> str:
    """`00000000000000368769.log` and friends: base offset zero-padded to 20 digits."""
    assert base_offset >= 0
    return f"{base_offset:020d}{extension}{suffix}"


def parse_segment_file_name(name: str) -> tuple[int, str, str] | None:
    """(base_offset, extension, suffix) of a segment file name, or None if it is not one."""
    stem, dot, rest = name.partition(".")
    if not dot or len(stem) != 20 or not stem.isdigit():
        return None
    extension, _, suffix = rest.partition(".")
    extension = "." + extension
    if extension not in (LOG_FILE_SUFFIX, OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX):
        return None
    return int(stem), extension, ("." + suffix) if suffix else ""


class LogSegment:
    """A `.log` file of whole batches with its offset index and time index. Not thread-safe."""

    def __init__(
        self,
        directory: str,
        base_offset: int,
        config: LogConfig,
        *,
        is_active: bool,
        created_ms: int,
        suffix: str = "",
    ) -> None:
        """Use `create` or `open`."""
        self.directory = directory
        self.base_offset = base_offset
        self.suffix = suffix
        self.created_ms = created_ms
        self.index_interval_bytes = config.index_interval_bytes
        self._segment_index_bytes = config.segment_index_bytes
        self.log_path = os.path.join(directory, segment_file_name(base_offset, LOG_FILE_SUFFIX, suffix))
        # The `.log` descriptor and how many system calls are using it: both belong to OPEN_FILES,
        # which opens and closes the descriptor (never while pinned).
        self._fd: int | None = None
        self._pins = 0
        self._creating = False
        # Written (or cut) since the last fsync: a closed descriptor still leaves an fsync to do.
        self._unflushed = False
        self._is_active = is_active
        self.size = 0
        # Offset after the last batch, the largest timestamp and its batch's base offset: computed
        # on demand for sealed segments opened from disk (None until then).
        self._next_offset: int | None = None
        self._max_timestamp: int | None = None
        self._offset_of_max_timestamp: int | None = None
        # Max timestamp of the first batch: what segment.ms measures from (Kafka's rollingBasedTimestamp).
        self._first_batch_timestamp: int | None = None
        self._bytes_since_last_index_entry = 0
        #: Set by `open` when the indexes failed their checks; `recover()` clears it.
        self.needs_recovery = False
        self.recovery_reason = ""
        self.offset_index: OffsetIndex
        self.time_index: TimeIndex

    # ---------------------------------------------------------------------------------------------
    # Construction.

    @classmethod
    def create(
        cls, directory: str, base_offset: int, config: LogConfig, now_ms: int, suffix: str = ""
    ) -> LogSegment:
        """Create a new, empty, active segment; its files must not exist yet.

        Raises:
            KafkaStorageError: the files cannot be created (or already exist).
        """
        segment = cls(directory, base_offset, config, is_active=True, created_ms=now_ms, suffix=suffix)
        segment._creating = True
        try:
            segment._pin("create segment")
            OPEN_FILES.unpin(segment)
        finally:
            segment._creating = False
        for path in (segment._offset_index_path(), segment._time_index_path()):
            if os.path.exists(path):
                os.unlink(path)  # stale index of a segment that was deleted half-way
        segment.offset_index = OffsetIndex(
            segment._offset_index_path(), base_offset, config.segment_index_bytes, is_mutable=True
        )
        segment.time_index = TimeIndex(
            segment._time_index_path(), base_offset, config.segment_index_bytes, is_mutable=True
        )
        segment._next_offset = base_offset
        segment._max_timestamp = NO_TIMESTAMP
        segment._offset_of_max_timestamp = base_offset
        return segment

    @classmethod
    def open(
        cls,
        directory: str,
        base_offset: int,
        config: LogConfig,
        now_ms: int,
        *,
        is_active: bool,
        suffix: str = "",
    ) -> LogSegment:
        """Open an existing segment and sanity-check its indexes.

        A missing or corrupt index does not raise: the segment comes back with `needs_recovery`
        set (and the reason in `recovery_reason`), and the caller runs `recover()`, which rebuilds
        the indexes from the log file.

        Args:
            now_ms: the segment's creation time for segment.ms when it holds no timestamps (Kafka
                also restarts that clock when it loads a segment).

        Raises:
            KafkaStorageError: the log file cannot be read.
        """
        segment = cls(directory, base_offset, config, is_active=is_active, created_ms=now_ms, suffix=suffix)
        try:
            segment.size = os.path.getsize(segment.log_path)
        except OSError as error:
            raise KafkaStorageError(segment.log_path, "open segment", error) from error
        # What an earlier process wrote to the active segment may still be only in the page cache:
        # its first flush fsyncs it even if the cache closed the descriptor by then.
        segment._unflushed = is_active
        try:
            for path in (segment._offset_index_path(), segment._time_index_path()):
                if not os.path.exists(path):
                    raise CorruptIndexError(path, "index file is missing")
            segment.offset_index = OffsetIndex(
                segment._offset_index_path(), base_offset, config.segment_index_bytes, is_mutable=is_active
            )
            segment.time_index = TimeIndex(
                segment._time_index_path(), base_offset, config.segment_index_bytes, is_mutable=is_active
            )
            segment.offset_index.sanity_check(segment.size)
        except CorruptIndexError as error:
            segment.needs_recovery = True
            segment.recovery_reason = str(error)
            segment._reset_indexes()
            return segment
        if segment.size > RELATIVE_OFFSET_MAX:
            segment.needs_recovery = True
            segment.recovery_reason = f"{segment.size} bytes is more than positions can address"
        elif is_active:
            try:
                segment._load_tail_state()
            except CorruptRecordError as error:
                segment.needs_recovery = True
                segment.recovery_reason = str(error)
        return segment

    def _reset_indexes(self) -> None:
        """Start from empty mutable indexes (after a failed sanity check; recover() fills them)."""
        for path in (self._offset_index_path(), self._time_index_path()):
            if os.path.exists(path):
                os.unlink(path)
        self.offset_index = OffsetIndex(
            self._offset_index_path(), self.base_offset, self._segment_index_bytes, is_mutable=True
        )
        self.time_index = TimeIndex(
            self._time_index_path(), self.base_offset, self._segment_index_bytes, is_mutable=True
        )

    def _offset_index_path(self) -> str:
        return os.path.join(
            self.directory, segment_file_name(self.base_offset, OFFSET_INDEX_FILE_SUFFIX, self.suffix)
        )

    def _time_index_path(self) -> str:
        return os.path.join(
            self.directory, segment_file_name(self.base_offset, TIME_INDEX_FILE_SUFFIX, self.suffix)
        )

    def _cache_open(self) -> None:
        """OPEN_FILES opens the `.log` file (creating it exclusively inside `create`)."""
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if self._creating else 0)
        self._fd = os.open(self.log_path, flags, 0o644)

    def _cache_close(self) -> None:
        """OPEN_FILES closes the `.log` file (nobody has it pinned)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _pin(self, operation: str = "open segment") -> int:
        """The `.log` descriptor, open until `OPEN_FILES.unpin(self)` (the caller's `finally`).

        Raises:
            LogDirFullError: creating the file found the filesystem full.
            KafkaStorageError: the file cannot be opened.
        """
        try:
            OPEN_FILES.pin(self)
        except OSError as error:
            if is_disk_full(error):
                raise LogDirFullError(self.log_path, operation, cause=error) from error
            raise KafkaStorageError(self.log_path, operation, error) from error
        assert self._fd is not None
        return self._fd

    def _with_fd(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        """`call(fd, *args)` on the pinned descriptor; an OSError becomes KafkaStorageError."""
        fd = self._pin()
        try:
            return call(fd, *args)
        except OSError as error:
            raise KafkaStorageError(self.log_path, operation, error) from error
        finally:
            OPEN_FILES.unpin(self)

    # ---------------------------------------------------------------------------------------------
    # State.

    @property
    def is_active(self) -> bool:
        return self._is_active

    @property
    def next_offset(self) -> int:
        """The offset after the last batch; the base offset when the segment is empty."""
        if self._next_offset is None:
            self._load_tail_state()
        assert self._next_offset is not None
        return self._next_offset

    @property
    def max_timestamp(self) -> int:
        """Largest batch max timestamp in the segment (ms), NO_TIMESTAMP if none."""
        if self._max_timestamp is None:
            if not self._is_active and self.time_index.entries:
                # Sealing appends a final time-index entry, so a sealed segment's last entry is
                # exact; it is checked against its batch first (retention trusts it).
                self._max_timestamp, self._offset_of_max_timestamp = self._checked_last_time_entry()
            else:
                self._load_tail_state()
        assert self._max_timestamp is not None
        return self._max_timestamp

    @property
    def offset_of_max_timestamp(self) -> int:
        """Base offset of the batch holding `max_timestamp`."""
        _ = self.max_timestamp
        assert self._offset_of_max_timestamp is not None
        return self._offset_of_max_timestamp

    @property
    def last_modified_ms(self) -> int:
        """The log file's modification time (ms)."""
        try:
            return os.stat(self.log_path).st_mtime_ns // 1_000_000
        except OSError as error:
            raise KafkaStorageError(self.log_path, "stat segment", error) from error

    @property
    def largest_timestamp(self) -> int:
        """Kafka's segment.largestTimestamp: max record timestamp, or the file mtime if none."""
        timestamp = self.max_timestamp
        return timestamp if timestamp > NO_TIMESTAMP else self.last_modified_ms

    def is_index_full(self) -> bool:
        return self.offset_index.is_full or self.time_index.is_full

    def can_hold_offset(self, offset: int) -> bool:
        """Whether `offset` is expressible relative to this segment's base offset."""
        return 0 <= offset - self.base_offset <= RELATIVE_OFFSET_MAX

    def time_waited_for_roll(self, now_ms: int, max_timestamp_in_append: int) -> int:
        """How old the segment is for segment.ms (Kafka's timeWaitedForRoll).

        Measured between the first batch's max timestamp and the newest timestamp being appended,
        when the first batch has one; otherwise from the segment's creation time to now.
        """
        if self._first_batch_timestamp is None and self.size >= BATCH_HEADER_SIZE:
            self._first_batch_timestamp = self._read_header(0).max_timestamp
        first = self._first_batch_timestamp
        if first is not None and first >= 0:
            return max_timestamp_in_append - first
        return now_ms - self.created_ms

    def _load_tail_state(self) -> None:
        """Compute next offset and max timestamp from the last index entries plus a short scan.

        The time index's last entry covers every batch up to the one it names, and the offset index
        has an entry at or before that batch, so scanning from there to the end sees the rest.
        """
        timestamp, timestamp_offset = self.time_index.last_entry()
        last_indexed_offset = 2**63 - 1
        if self.time_index.entries:
            _, position = self.offset_index.lookup(timestamp_offset)
        else:
            _, position = self.offset_index.lookup(last_indexed_offset)
        max_timestamp, offset_of_max = timestamp, timestamp_offset
        next_offset = self.base_offset
        for _, header in self.scan_headers(position, self.size):
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max = header.max_timestamp, header.base_offset
            next_offset = header.next_offset
        self._next_offset = next_offset
        self._max_timestamp = max_timestamp
        self._offset_of_max_timestamp = offset_of_max
        _, last_position = self.offset_index.lookup(last_indexed_offset)
        self._bytes_since_last_index_entry = self.size - last_position

    # ---------------------------------------------------------------------------------------------
    # Append.

    def append(
        self, data: bytes | bytearray | memoryview, batches: Sequence[tuple[int, int, int, int, int]]
    ) -> None:
        """Append whole batches to the end of the `.log` file and index them.

        Args:
            data: the batches' bytes, already validated and stamped.
            batches: per batch (position in `data`, size, base offset, next offset, max timestamp),
                in order; offsets increase and fit this segment.

        Raises:
            LogDirFullError: the filesystem is full; the file was cut back to its previous size
                and the segment is unchanged (a retry may succeed).
            KafkaStorageError: the write failed otherwise (the file is cut back if possible).
        """
        assert self._is_active
        assert batches
        assert self.can_hold_offset(batches[-1][3] - 1)
        assert self.size + len(data) <= RELATIVE_OFFSET_MAX
        fd = self._pin()
        start = self.size
        self._unflushed = True
        try:
            view = memoryview(data)
            position = start
            while view:
                written = os.pwrite(fd, view, position)
                view = view[written:]
                position += written
        except OSError as error:
            try:
                os.ftruncate(fd, start)
            except OSError:
                logger.exception(
                    "could not cut %s back to %d bytes after a failed append", self.log_path, start
                )
                raise KafkaStorageError(self.log_path, "append", error) from error
            if is_disk_full(error):
                # Cut back to the previous end: no torn batch, the segment is as before the append.
                raise LogDirFullError(self.log_path, "append", cause=error) from error
            raise KafkaStorageError(self.log_path, "append", error) from error
        finally:
            OPEN_FILES.unpin(self)
        if self.size == 0:
            self._first_batch_timestamp = batches[0][4]
        assert self._max_timestamp is not None
        max_timestamp = self._max_timestamp
        offset_of_max = self._offset_of_max_timestamp
        since = self._bytes_since_last_index_entry
        interval = self.index_interval_bytes
        offset_index = self.offset_index
        for relative_position, size, base_offset, _, batch_max_timestamp in batches:
            if batch_max_timestamp > max_timestamp:
                max_timestamp = batch_max_timestamp
                offset_of_max = base_offset
            if since > interval:
                # A full index only makes lookups scan further; the log rolls before the next append.
                if not offset_index.is_full:
                    offset_index.append(base_offset, start + relative_position)
                    assert offset_of_max is not None
                    self.time_index.maybe_append(max_timestamp, offset_of_max)
                since = 0
            since += size
        self._bytes_since_last_index_entry = since
        self._max_timestamp = max_timestamp
        self._offset_of_max_timestamp = offset_of_max
        self._next_offset = batches[-1][3]
        self.size = start + len(data)

    # ---------------------------------------------------------------------------------------------
    # Read (the lookups are `segment_reader`'s).

    def pread(self, size: int, position: int) -> bytes:
        """`size` bytes of the `.log` file from `position` (fewer at the end of the file)."""
        return self._with_fd("read", os.pread, size, position)

    def _read_header(self, position: int) -> BatchHeader:
        raw = self.pread(BATCH_HEADER_SIZE, position)
        try:
            return parse_header(raw)
        except CorruptRecordError as error:
            raise CorruptRecordError(error.reason, position=position, path=self.log_path) from None

    def scan_headers(self, position: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from `position` (a batch start) until `end`; see `scan_headers`."""
        return scan_headers(self.pread, position, end, self.log_path)

    def position_for(self, offset: int, by_position: bool = False) -> int:
        """Where a header scan for `offset` (or, `by_position`, for the last batch boundary at or
        before position `offset`) may start: the offset index's entry, checked against the batch
        header it points at. An entry that does not point at a batch with its offset (a damaged
        index file: the open-time check only looks at the last entry) rebuilds the indexes from
        the batch headers, then answers from the rebuilt index."""
        lookup = self.offset_index.lookup_by_position if by_position else self.offset_index.lookup
        indexed, position = lookup(offset)
        if position == 0 and indexed == self.base_offset:
            return 0
        try:
            is_valid = position < self.size and self._read_header(position).base_offset == indexed
        except CorruptRecordError:
            is_valid = False
        if not is_valid:
            self._rebuild_indexes(f"offset index entry ({indexed}, {position}) does not point at that batch")
            indexed, position = lookup(offset)
        return position

    def _checked_last_time_entry(self) -> tuple[int, int]:
        """The sealed time index's last entry once its batch and every batch after it agree (a
        header scan from that batch; once per segment, as `_load_tail_state` scans the tail)."""
        timestamp, offset = self.time_index.last_entry()
        matches, largest = False, NO_TIMESTAMP
        for _, header in self.scan_headers(self.position_for(offset), self.size):
            matches = matches or (header.base_offset == offset and header.max_timestamp == timestamp)
            largest = max(largest, header.max_timestamp)
        if not matches or largest > timestamp:
            self._rebuild_indexes(f"last time index entry ({timestamp}, {offset}) is not the segment's largest timestamp")
            timestamp, offset = self.time_index.last_entry()
        return timestamp, offset

    def offset_for_timestamp(self, timestamp: int) -> int:
        """Where a search for the first record stamped >= `timestamp` may start: the time index's
        entry, checked like `position_for` (the batch at its offset must carry its timestamp as
        max timestamp); a damaged entry rebuilds the indexes first."""
        indexed_timestamp, indexed_offset = self.time_index.lookup(timestamp)
        if indexed_timestamp == NO_TIMESTAMP:
            return indexed_offset
        found = self.translate_offset(indexed_offset)
        if found is None or found[1].base_offset != indexed_offset or found[1].max_timestamp != indexed_timestamp:
            self._rebuild_indexes(f"time index entry ({indexed_timestamp}, {indexed_offset}) does not match its batch")
            indexed_timestamp, indexed_offset = self.time_index.lookup(timestamp)
        return indexed_offset

    def _rebuild_indexes(self, reason: str) -> None:
        """Rebuild both indexes from the batch headers (the `.log` file is not changed; a header
        that does not parse raises CorruptRecordError, as a read of it would)."""
        logger.warning("%s: an index is damaged (%s); rebuilding the indexes", self.log_path, reason)
        was_active = self._is_active
        self.offset_index.release()
        self.time_index.release()
        self._reset_indexes()
        bytes_since_last_entry = 0
        max_timestamp, offset_of_max = NO_TIMESTAMP, self.base_offset
        for position, header in self.iter_headers(0):
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max = header.max_timestamp, header.base_offset
            if bytes_since_last_entry > self.index_interval_bytes and not self.offset_index.is_full:
                self.offset_index.append(header.base_offset, position)
                self.time_index.maybe_append(max_timestamp, offset_of_max)
                bytes_since_last_entry = 0
            bytes_since_last_entry += header.size_bytes
        self._bytes_since_last_index_entry = bytes_since_last_entry
        if not was_active:
            if max_timestamp > NO_TIMESTAMP:
                self.time_index.maybe_append(max_timestamp, offset_of_max, skip_full_check=True)
            for index in (self.offset_index, self.time_index):
                index.flush()
                index.seal()

    def translate_offset(self, offset: int, start_position: int = 0) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset is >= `offset`; see `segment_reader`."""
        return segment_reader.translate_offset(self, offset, start_position)

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None = None, as_region: bool = False
    ) -> tuple[bytes | FileRegion, int, int] | None:
        """Whole batches from the one holding `offset`: (bytes or region, first offset, next offset); see `segment_reader.read`."""
        return segment_reader.read(self, offset, max_bytes, max_offset, as_region)

    def region(self, position: int, count: int) -> FileRegion:
        """`count` bytes from `position` as a FileRegion over a duplicate of this segment's descriptor."""
        fd = self._pin()
        try:
            return FileRegion.of(fd, position, count, self.log_path)
        finally:
            OPEN_FILES.unpin(self)

    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        """The bytes of the batch at `position` whose header was already parsed."""
        data = self.pread(header.size_bytes, position)
        if len(data) != header.size_bytes:
            raise CorruptRecordError(
                "batch is cut short by the end of the file", position=position, path=self.log_path
            )
        return data

    def iter_headers(self, start_position: int = 0) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of every batch from `start_position` (a batch start) to the end."""
        return self.scan_headers(start_position, self.size)

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record at or after `starting_offset` stamped >= `timestamp`; see `segment_reader`."""
        return segment_reader.find_offset_by_timestamp(self, timestamp, starting_offset)

    def find_max_timestamp_record(self) -> tuple[int, int] | None:
        """(largest timestamp, offset of the first record carrying it); see `segment_reader`."""
        return segment_reader.find_max_timestamp_record(self)

    # ---------------------------------------------------------------------------------------------
    # Recovery and truncation.

    def recover(self, *, allows_gaps: bool) -> int:
        """Re-read the whole `.log` file, verify every batch, cut it at the first bad one, rebuild indexes.

        A batch is bad when its header does not parse, it runs past the end of the file (a torn
        write), its CRC does not match, or its offsets do not continue the previous batch (with
        `allows_gaps`, for compacted logs, they only have to increase) or do not fit the segment.
        The offset check also catches damage to base_offset, which the CRC does not cover; damage
        to partition_leader_epoch (also outside the CRC, as in Kafka) cannot be detected.
        The segment ends up active with in-memory indexes (the caller seals it if it is not the last).

        Args:
            allows_gaps: whether offsets may jump between batches (compacted logs).

        Returns:
            The number of bytes cut from the end of the file.

        Raises:
            KafkaStorageError: the file cannot be read or cut.
        """
        self._is_active = True
        self.needs_recovery = False
        self.recovery_reason = ""
        self._unflushed = True
        self.offset_index.release()
        self.time_index.release()
        self._reset_indexes()
        file_size = self._with_fd("recover", os.fstat).st_size
        self.size = 0
        self._next_offset = self.base_offset
        self._max_timestamp = NO_TIMESTAMP
        self._offset_of_max_timestamp = self.base_offset
        self._first_batch_timestamp = None
        self._bytes_since_last_index_entry = 0
        scan = RecoveryScan(self.pread, file_size, self.base_offset, allows_gaps=allows_gaps)
        for position, header in scan:
            self._index_recovered_batch(position, header)
        position = scan.end_position
        truncated = file_size - position
        if truncated:
            logger.warning(
                "recovery of %s: cut %d bytes at position %d (%s)",
                self.log_path,
                truncated,
                position,
                scan.reason,
            )
            self._unflushed = True
            self._with_fd("truncate during recovery", os.ftruncate, position)
        self.size = position
        return truncated

    def _index_recovered_batch(self, position: int, header: BatchHeader) -> None:
        if self.size == 0:
            self._first_batch_timestamp = header.max_timestamp
        assert self._max_timestamp is not None
        if header.max_timestamp > self._max_timestamp:
            self._max_timestamp = header.max_timestamp
            self._offset_of_max_timestamp = header.base_offset
        if self._bytes_since_last_index_entry > self.index_interval_bytes and not self.offset_index.is_full:
            self.offset_index.append(header.base_offset, position)
            assert self._offset_of_max_timestamp is not None
            self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += header.size_bytes
        self._next_offset = header.next_offset
        self.size = position + header.size_bytes

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= `offset`; the segment becomes active.

        Truncation happens at batch boundaries: when `offset` falls inside a batch, that whole batch
        is removed, so the segment then ends before `offset` (as Kafka's LogSegment.truncateTo).

        Returns:
            The number of bytes removed.
        """
        found = self.translate_offset(offset)
        if not self._is_active:
            self.unseal()
        if found is None:
            return 0
        position, header = found
        removed = self.size - position
        self.offset_index.truncate_to_position(position)
        self.time_index.truncate_to(header.base_offset)
        self._unflushed = True
        self._with_fd("truncate", os.ftruncate, position)
        self.size = position
        if position == 0:
            self._first_batch_timestamp = None
        self._load_tail_state()
        return removed

    # ---------------------------------------------------------------------------------------------
    # Lifecycle.

    def flush(self) -> None:
        """fsync the `.log` file (indexes are rebuilt by recovery, so they are written at seal/close).

        A segment whose descriptor the cache closed after a write is reopened for the fsync."""
        if self._fd is None and not self._unflushed:
            return
        self._with_fd("flush", os.fsync)
        self._unflushed = False

    def duplicate_fd(self) -> int:
        """A duplicate of the `.log` file's descriptor, for an fsync outside the log's lock (the
        broker's durable flusher: group commit). The caller closes it; a roll or close meanwhile
        leaves it valid, and an fsync through it still covers the file's writes."""
        return self._with_fd("flush", os.dup)

    def seal(self) -> None:
        """Stop taking appends: record the final max timestamp, fsync the log and both indexes.

        Both indexes are written before either turns read-only, so a write that fails (a full
        disk) leaves the segment active and unchanged: sealing can be retried."""
        if not self._is_active:
            return
        self._append_final_time_index_entry()
        self.flush()
        self.offset_index.flush()
        self.time_index.flush()
        self.offset_index.seal()
        self.time_index.seal()
        self._is_active = False

    def unseal(self) -> None:
        """Take appends again (the segment became the last one after a truncation)."""
        self.offset_index.unseal()
        self.time_index.unseal()
        self._is_active = True
        self._load_tail_state()

    def _append_final_time_index_entry(self) -> None:
        if self._max_timestamp is not None and self._max_timestamp > NO_TIMESTAMP:
            assert self._offset_of_max_timestamp is not None
            self.time_index.maybe_append(
                self._max_timestamp, self._offset_of_max_timestamp, skip_full_check=True
            )

    def close(self) -> None:
        """Write indexes and fsync everything (for the active segment), then release the files."""
        if self._is_active:
            self._append_final_time_index_entry()
            self.flush()
        self.offset_index.close()
        self.time_index.close()
        self._close_fd()

    def release(self) -> None:
        """Drop file descriptors and mappings without writing anything (before deletion or replacement)."""
        self.offset_index.release()
        self.time_index.release()
        self._close_fd()

    def _close_fd(self) -> None:
        OPEN_FILES.close(self)

    def delete(self) -> None:
        """Release the segment and delete its three files (the log file first)."""
        self.release()
        for path in (self.log_path, self._offset_index_path(), self._time_index_path()):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                raise KafkaStorageError(path, "delete segment", error) from error

    def rename_suffix(self, suffix: str) -> None:
        """Rename the three files to carry `suffix` ("" for the live names)."""
        old_log_path = self.log_path
        self.suffix = suffix
        new_log_path = os.path.join(
            self.directory, segment_file_name(self.base_offset, LOG_FILE_SUFFIX, suffix)
        )
        try:
            os.replace(old_log_path, new_log_path)
        except OSError as error:
            raise KafkaStorageError(old_log_path, "rename segment", error) from error
        self.log_path = new_log_path
        self.offset_index.rename(self._offset_index_path())
        self.time_index.rename(self._time_index_path())

    def set_last_modified_ms(self, timestamp_ms: int) -> None:
        """Set the log file's modification time (the cleaner keeps the newest source's)."""
        try:
            os.utime(self.log_path, ns=(timestamp_ms * 1_000_000, timestamp_ms * 1_000_000))
        except OSError as error:
            raise KafkaStorageError(self.log_path, "set mtime", error) from error

    def __repr__(self) -> str:
        state = "active" if self._is_active else "sealed"
        return f"LogSegment({self.log_path!r}, {state}, {self.size} bytes)"
