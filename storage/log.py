"""The partition log: an ordered list of segments with offsets, epochs, producer state and recovery.

Owns one partition directory `<data>/<topic>-<partition>/`:

    00000000000000000000.log / .index / .timeindex    segments, named by 20-digit base offset
    00000000000000368769.log / .index / .timeindex
    00000000000000368769.snapshot                     idempotent-producer state at that offset
    leader-epoch-checkpoint                           epoch -> start offset (KIP-101)
    partition.metadata                                the topic id
    cleaner-offset-checkpoint                         first dirty offset (compacted logs only)
    .clean-shutdown                                   present only between close() and open()

What it does: assigns offsets to producer batches and stamps them (`append_as_leader`), takes a
leader's batches as they are (`append_as_follower`), reads whole batches by offset (`read`),
truncates (`truncate_to`, `truncate_fully_and_start_at`), rolls segments by size, age, index
capacity and offset range, deletes old segments (`delete_old_segments`), looks up offsets by time
and epochs by offset, flushes by flush.messages / flush.ms, and recovers after an unclean stop:
without the clean-shutdown marker the last segment is re-read, every CRC verified, the torn or
corrupt tail cut off and its indexes rebuilt; a segment whose index is missing or fails its check is
re-read the same way. Whatever recovery cuts is logged with the file and position.

Offsets: `log_start_offset` is the base offset of the first segment; `log_end_offset` (LEO) is the
offset the next record gets. The high watermark belongs to the caller (replication); it bounds
`read` through `max_offset` and `delete_old_segments` never deletes data at or above it.

The hot paths touch batch headers only: append validates framing and CRC, stamps the base offset
and leader epoch (outside the CRC'd range) and writes the bytes with one `pwrite`; read finds a
position through the offset index and returns bytes from one `pread`.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: thread-safe. Every public method holds the log's lock, so the server's event-loop
thread and the compaction cleaner thread can use one log at the same time; the cleaner holds the
lock only to take a snapshot of the segment list and to swap in cleaned segments.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

from freshet.storage.checkpoint import (
    fsync_directory,
    parse_int_fields,
    read_checkpoint,
    remove_stale_temp_files,
    write_atomically,
    write_checkpoint,
)
from freshet.storage.clock import Clock, SystemClock
from freshet.storage.compression import SUPPORTED_COMPRESSION_TYPES
from freshet.storage.config import LONG_MAX, LogConfig
from freshet.storage.errors import (
    CorruptCheckpointError,
    CorruptRecordError,
    InconsistentTopicIdError,
    InvalidRecordError,
    KafkaStorageError,
    LogClosedError,
    LogOffsetGapError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)
from freshet.storage.leader_epoch import LeaderEpochCache
from freshet.storage.producer_state import ProducerStateManager
from freshet.storage.record_batch import (
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    BatchHeader,
    TimestampType,
    parse_header,
    stamp_batch,
    stamp_log_append_time,
)
from freshet.storage.record_batch import verify_crc as verify_batch_crc
from freshet.storage.segment import (
    CLEANED_FILE_SUFFIX,
    LOG_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    LogSegment,
    parse_segment_file_name,
)

logger = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE_NAME = ".clean-shutdown"
PARTITION_METADATA_FILE_NAME = "partition.metadata"
CLEANER_CHECKPOINT_FILE_NAME = "cleaner-offset-checkpoint"
#: Suffix of a partition directory being deleted.
DELETE_DIR_SUFFIX = "-delete"
_CLEANER_CHECKPOINT_VERSION = 0
_PARTITION_METADATA_VERSION = 0

#: offsets_for_time sentinels (Kafka ListOffsets): the log end offset, the log start offset, and
#: the offset of the record with the largest timestamp.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
TIMESTAMP_MAX = -3


class LogAppendInfo(NamedTuple):
    """What an append did (Kafka's LogAppendInfo).

    Attributes:
        first_offset: offset of the first record appended (of the original batch for a duplicate).
        last_offset: offset of the last record appended.
        max_timestamp: largest batch max timestamp appended (the append time for LogAppendTime).
        offset_of_max_timestamp: base offset of the batch holding `max_timestamp`.
        log_append_time_ms: the broker time stamped into the batches, or -1 for CreateTime.
        log_start_offset: the log start offset after the append.
        record_count: records appended (from the batch headers).
        size_bytes: bytes appended.
        is_duplicate: the batch repeated one of the producer's last 5 batches; nothing was written
            and the offsets are those of the original (Kafka's DUPLICATE_SEQUENCE, a success).
    """

    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time_ms: int
    log_start_offset: int
    record_count: int
    size_bytes: int
    is_duplicate: bool = False


class LogReadResult(NamedTuple):
    """Bytes of whole batches and the log's bounds at the time of the read.

    Attributes:
        records: concatenated whole batches, possibly empty.
        first_offset: base offset of the first batch in `records`, -1 when empty.
        next_offset: where the next read should start: the base offset of the first batch not
            returned (or the end of the segment read), the requested offset when empty.
        log_start_offset: first readable offset.
        log_end_offset: offset the next appended record gets.
    """

    records: bytes
    first_offset: int
    next_offset: int
    log_start_offset: int
    log_end_offset: int


class TimestampAndOffset(NamedTuple):
    """A record found by `offsets_for_time`: its timestamp (NO_TIMESTAMP for the sentinels) and offset."""

    timestamp: int
    offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentSnapshot:
    """What the cleaner needs of one sealed segment, captured under the log's lock.

    The cleaner reads the segment through its own file descriptor on `log_path` and never calls
    into `segment`, which the log owns; `segment` only identifies it for `replace_segments`.
    """

    segment: LogSegment
    log_path: str
    base_offset: int
    upper_offset: int
    """Base offset of the next segment: the segment owns offsets [base_offset, upper_offset)."""
    next_offset: int
    size_bytes: int
    largest_timestamp: int
    last_modified_ms: int
    index_entries: int


class PartitionLog:
    """One partition's log on disk. Thread-safe (see the module docstring)."""

    def __init__(self, directory: str, config: LogConfig, clock: Clock) -> None:
        """Use `PartitionLog.open`."""
        self.directory = directory
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._segments: list[LogSegment] = []
        self._base_offsets: list[int] = []
        self._size_bytes = 0
        self._is_closed = False
        self._offline_error: KafkaStorageError | None = None
        self._unflushed_records = 0
        self._last_flush_monotonic_ms = clock.monotonic_ms()
        self._topic_id: str | None = None
        self._epoch_cache: LeaderEpochCache
        self._producer_state = ProducerStateManager(directory, config.producer_id_expiration_ms)
        self._cleaner_checkpoint = 0
        # Bumped by every change that can invalidate a compaction in progress (truncation, deletion).
        self._generation = 0
        #: What the last open repaired, for tests and operators: (file, position, bytes cut).
        self.repairs: list[tuple[str, int, int]] = []

    # =============================================================================================
    # Open and recovery.

    @classmethod
    def open(
        cls, directory: str, config: LogConfig, clock: Clock | None = None, *, topic_id: str | None = None
    ) -> PartitionLog:
        """Open (creating if needed) the log in `directory`, recovering it if it was not closed cleanly.

        Args:
            directory: the partition directory.
            config: the topic's log config.
            clock: time source (defaults to the system clock).
            topic_id: if given, stored in partition.metadata on first open and checked afterwards.

        Raises:
            InconsistentTopicIdError: the directory belongs to another topic id.
            KafkaStorageError: the directory cannot be read or written.
            CorruptRecordError: a sealed segment's batch headers do not parse while rebuilding state.
        """
        log = cls(directory, config, clock or SystemClock())
        try:
            os.makedirs(directory, exist_ok=True)
            with log._lock:
                log._load(topic_id)
        except BaseException as error:
            for segment in log._segments:
                segment.release()
            if isinstance(error, OSError):
                raise KafkaStorageError(directory, "open log", error) from error
            raise
        return log

    def _load(self, topic_id: str | None) -> None:
        directory = self.directory
        now_ms = self._clock.now_ms()
        marker = os.path.join(directory, CLEAN_SHUTDOWN_FILE_NAME)
        had_clean_shutdown = os.path.exists(marker)
        self._load_topic_id(topic_id)
        for name in remove_stale_temp_files(directory):
            logger.info("%s: removed %s left by an interrupted write", directory, name)
        self._complete_interrupted_swaps(now_ms)

        base_offsets = sorted(
            parsed[0]
            for parsed in map(parse_segment_file_name, os.listdir(directory))
            if parsed is not None and parsed[1] == LOG_FILE_SUFFIX and parsed[2] == ""
        )
        self._remove_orphan_indexes(set(base_offsets))
        segments = []
        for number, base_offset in enumerate(base_offsets):
            is_last = number == len(base_offsets) - 1
            segments.append(LogSegment.open(directory, base_offset, self._config, now_ms, is_active=is_last))
        self._segments = segments
        self._base_offsets = [segment.base_offset for segment in segments]
        if segments:
            self._recover_segments(had_clean_shutdown)
        else:
            self._segments = [LogSegment.create(directory, 0, self._config, now_ms)]
            self._base_offsets = [0]
        self._size_bytes = sum(segment.size for segment in self._segments)

        self._load_epoch_cache()
        self._epoch_cache.truncate_from_end(self.log_end_offset)
        self._epoch_cache.truncate_from_start(self.log_start_offset)
        self._load_producer_state(now_ms)
        self._load_cleaner_checkpoint()
        if had_clean_shutdown:
            os.unlink(marker)
            fsync_directory(directory)

    def _recover_segments(self, had_clean_shutdown: bool) -> None:
        """Re-read segments that need it; cut everything after the first corrupt batch found."""
        number = 0
        while number < len(self._segments):
            segment = self._segments[number]
            is_last = number == len(self._segments) - 1
            if segment.needs_recovery or (is_last and not had_clean_shutdown):
                reason = segment.recovery_reason or "unclean shutdown"
                logger.warning("recovering %s (%s)", segment.log_path, reason)
                cut = segment.recover(allows_gaps=self._config.is_compacted)
                if cut:
                    self.repairs.append((segment.log_path, segment.size, cut))
                    later = self._segments[number + 1 :]
                    if later:
                        # The log is the prefix of intact batches: what follows a hole cannot be served.
                        logger.error(
                            "%s: corrupt batch at position %d of a sealed segment; deleting %d later segments",
                            segment.log_path,
                            segment.size,
                            len(later),
                        )
                        for stale in later:
                            self.repairs.append((stale.log_path, 0, stale.size))
                            stale.delete()
                        del self._segments[number + 1 :]
                        del self._base_offsets[number + 1 :]
                        is_last = True
                if not is_last:
                    segment.seal()
            number += 1

    def _complete_interrupted_swaps(self, now_ms: int) -> None:
        """Finish (or discard) a compaction swap that a crash interrupted (Kafka's .cleaned/.swap files)."""
        directory = self.directory
        names = os.listdir(directory)
        for name in names:
            parsed = parse_segment_file_name(name)
            if parsed is not None and parsed[2] == CLEANED_FILE_SUFFIX:
                os.unlink(os.path.join(directory, name))
                logger.info("%s: removed unfinished cleaner output %s", directory, name)
        swap_bases = sorted(
            parsed[0]
            for parsed in map(parse_segment_file_name, names)
            if parsed is not None and parsed[1] == LOG_FILE_SUFFIX and parsed[2] == SWAP_FILE_SUFFIX
        )
        for base_offset in swap_bases:
            swap = LogSegment.open(
                directory, base_offset, self._config, now_ms, is_active=False, suffix=SWAP_FILE_SUFFIX
            )
            if swap.needs_recovery:
                swap.recover(allows_gaps=True)
                swap.seal()
            end = max(swap.next_offset, base_offset + 1)
            for parsed in map(parse_segment_file_name, os.listdir(directory)):
                if parsed is None or parsed[1] != LOG_FILE_SUFFIX or parsed[2] != "":
                    continue
                if base_offset <= parsed[0] < end:
                    old = LogSegment.open(directory, parsed[0], self._config, now_ms, is_active=False)
                    old.delete()
            swap.rename_suffix("")
            swap.release()
            fsync_directory(directory)
            logger.info("%s: completed an interrupted compaction swap at offset %d", directory, base_offset)
        for name in os.listdir(directory):
            parsed = parse_segment_file_name(name)
            if parsed is not None and parsed[2] == SWAP_FILE_SUFFIX:
                # Index files of a swap whose log file was already renamed: the live segment
                # rebuilds its indexes because they are missing.
                os.unlink(os.path.join(directory, name))

    def _remove_orphan_indexes(self, base_offsets: set[int]) -> None:
        for name in os.listdir(self.directory):
            parsed = parse_segment_file_name(name)
            if (
                parsed is not None
                and parsed[2] == ""
                and parsed[1] != LOG_FILE_SUFFIX
                and parsed[0] not in base_offsets
            ):
                os.unlink(os.path.join(self.directory, name))

    def _load_topic_id(self, topic_id: str | None) -> None:
        path = os.path.join(self.directory, PARTITION_METADATA_FILE_NAME)
        stored = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                fields = dict(line.split(": ", 1) for line in file.read().splitlines() if ": " in line)
            stored = fields.get("topic_id")
        if stored is None and topic_id is not None:
            text = f"version: {_PARTITION_METADATA_VERSION}\ntopic_id: {topic_id}\n"
            write_atomically(path, text.encode("utf-8"))
            stored = topic_id
        if topic_id is not None and stored != topic_id:
            assert stored is not None
            raise InconsistentTopicIdError(self.directory, topic_id, stored)
        self._topic_id = stored

    def _load_epoch_cache(self) -> None:
        try:
            self._epoch_cache = LeaderEpochCache.load(self.directory)
            return
        except CorruptCheckpointError as error:
            logger.warning("%s; rebuilding it from batch headers", error)
        cache = LeaderEpochCache(self.directory)
        for header in self._iter_headers_from(self.log_start_offset):
            if header.partition_leader_epoch >= 0:
                cache.assign_in_memory(header.partition_leader_epoch, header.base_offset)
        cache.flush()
        self._epoch_cache = cache

    def _load_producer_state(self, now_ms: int) -> None:
        self._rebuild_producer_state(self.log_end_offset)
        self._producer_state.remove_expired_producers(now_ms)

    def _rebuild_producer_state(self, end_offset: int) -> None:
        """Load the newest producer snapshot at or below `end_offset`, then replay batch headers from it.

        Snapshots above `end_offset` are deleted first. A snapshot taken at `end_offset` needs no
        replay: no batch ends at or after the log end offset.
        """
        state = self._producer_state
        state.delete_snapshots_after(end_offset)
        loaded = state.load_latest_snapshot(end_offset)
        if loaded != end_offset:
            replay_from = loaded if loaded is not None else self.log_start_offset
            state.map_end_offset = replay_from
            state.apply_headers(self._iter_headers_from(replay_from))
        state.map_end_offset = end_offset

    def _load_cleaner_checkpoint(self) -> None:
        path = os.path.join(self.directory, CLEANER_CHECKPOINT_FILE_NAME)
        try:
            entries = read_checkpoint(path, _CLEANER_CHECKPOINT_VERSION, parse_int_fields(1))
        except CorruptCheckpointError as error:
            logger.warning("%s; cleaning restarts from the log start", error)
            entries = None
        offset = entries[0][0] if entries else self.log_start_offset
        self._cleaner_checkpoint = min(max(offset, self.log_start_offset), self.log_end_offset)

    def _iter_headers_from(self, offset: int) -> Iterator[BatchHeader]:
        """Headers of every batch whose last offset is >= `offset`, in order (no CRC checks)."""
        number = max(bisect.bisect_right(self._base_offsets, offset) - 1, 0)
        for segment in self._segments[number:]:
            start = 0
            if segment.base_offset < offset:
                found = segment.translate_offset(offset)
                if found is None:
                    continue
                start = found[0]
            for _, header in segment.iter_headers(start):
                yield header

    # =============================================================================================
    # Properties.

    @property
    def config(self) -> LogConfig:
        return self._config

    @property
    def topic_id(self) -> str | None:
        """The topic id from partition.metadata, if one was ever given."""
        return self._topic_id

    @property
    def log_start_offset(self) -> int:
        """The first offset that can be read: the base offset of the first segment.

        Raises:
            LogClosedError: the log was deleted (it has no segments left).
        """
        with self._lock:
            if not self._segments:
                raise LogClosedError(self.directory)
            return self._segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets (LEO).

        Raises:
            LogClosedError: the log was deleted (it has no segments left).
        """
        with self._lock:
            if not self._segments:
                raise LogClosedError(self.directory)
            active = self._segments[-1]
            return active.next_offset

    @property
    def size_bytes(self) -> int:
        """Total bytes of all segment `.log` files."""
        with self._lock:
            return self._size_bytes

    @property
    def segment_count(self) -> int:
        with self._lock:
            return len(self._segments)

    @property
    def latest_epoch(self) -> int:
        """The newest leader epoch in the leader-epoch cache, -1 if none."""
        with self._lock:
            return self._epoch_cache.latest_epoch

    @property
    def leader_epoch_entries(self) -> list[tuple[int, int]]:
        """(epoch, start offset) entries of the leader-epoch cache, oldest first."""
        with self._lock:
            return self._epoch_cache.entries

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    def segment_base_offsets(self) -> list[int]:
        """Base offsets of the segments, ascending."""
        with self._lock:
            return list(self._base_offsets)

    def _check_usable(self) -> None:
        if self._is_closed:
            raise LogClosedError(self.directory)
        if self._offline_error is not None:
            raise KafkaStorageError(self.directory, "use an offline log", self._offline_error)

    def _go_offline(self, error: KafkaStorageError) -> None:
        logger.error("log %s goes offline: %s", self.directory, error)
        self._offline_error = error

    # =============================================================================================
    # Append.

    def append_as_leader(self, data: bytes | bytearray | memoryview, leader_epoch: int) -> LogAppendInfo:
        """Append producer batches: validate, assign offsets, stamp the leader epoch, write.

        Validation reads headers only: framing, magic, CRC, size <= max.message.bytes,
        record_count == last_offset_delta + 1 (>= 1), a supported codec, no control or
        transactional batches, and the idempotent-producer rules. Nothing is written unless every
        batch passes. Batches keep their bytes except the stamped base offset and partition leader
        epoch (outside the CRC), and for message.timestamp.type=LogAppendTime the timestamp type and
        max timestamp (whose CRC is then recomputed).

        Args:
            data: one or more concatenated batches. A bytearray is stamped in place (no copy); other
                buffers are copied once.
            leader_epoch: the current leader epoch, stamped into every batch and recorded in the
                leader-epoch cache.

        Returns:
            LogAppendInfo; `is_duplicate` when a batch repeats one of its producer's last 5 batches
            (nothing is written; the original offsets are returned).

        Raises:
            CorruptRecordError: bad framing or CRC.
            InvalidRecordError: counts that do not add up, control/transactional batches, an empty
                append, idempotent fields missing.
            RecordTooLargeError: a batch above max.message.bytes, or an append above segment.bytes.
            UnsupportedCompressionError: a codec this build cannot decode.
            OutOfOrderSequenceError, InvalidProducerEpochError: idempotence violations.
            KafkaStorageError: the write failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        buffer = data if isinstance(data, bytearray) else bytearray(data)
        view = memoryview(buffer)
        with self._lock:
            self._check_usable()
            config = self._config
            batches = self._validate_leader_batches(view, config.max_message_bytes)
            total = len(buffer)
            if total > config.segment_bytes:
                raise RecordTooLargeError(total, config.segment_bytes, what="append")
            now_ms = self._clock.now_ms()
            is_log_append_time = config.message_timestamp_type == TimestampType.LOG_APPEND_TIME
            first_offset = self.log_end_offset
            producer_append = self._producer_state.begin_append(is_validated=True)
            placements: list[tuple[int, int, int, int, int]] = []
            offset = first_offset
            record_count = 0
            max_timestamp = NO_TIMESTAMP
            offset_of_max = first_offset
            for position, header in batches:
                next_offset = offset + header.last_offset_delta + 1
                if header.producer_id >= 0:
                    duplicate = producer_append.find_duplicate(header)
                    if duplicate is not None:
                        return LogAppendInfo(
                            duplicate.first_offset,
                            duplicate.last_offset,
                            duplicate.max_timestamp,
                            duplicate.first_offset,
                            duplicate.max_timestamp if is_log_append_time else -1,
                            self.log_start_offset,
                            0,
                            0,
                            is_duplicate=True,
                        )
                    producer_append.append(header, offset, next_offset - 1)
                batch_max_timestamp = now_ms if is_log_append_time else header.max_timestamp
                if batch_max_timestamp > max_timestamp:
                    max_timestamp, offset_of_max = batch_max_timestamp, offset
                placements.append(
                    (position, header.batch_length + LOG_OVERHEAD, offset, next_offset, batch_max_timestamp)
                )
                record_count += header.record_count
                offset = next_offset
            for position, _, base_offset, _, _ in placements:
                stamp_batch(view, base_offset, leader_epoch, position)
                if is_log_append_time:
                    stamp_log_append_time(view, now_ms, position)
            self._write(view, placements, max_timestamp, now_ms)
            if leader_epoch >= 0:
                self._epoch_cache.assign(leader_epoch, first_offset)
            self._producer_state.commit(producer_append, offset)
            self._after_append(record_count)
            return LogAppendInfo(
                first_offset,
                offset - 1,
                max_timestamp,
                offset_of_max,
                now_ms if is_log_append_time else -1,
                self._segments[0].base_offset,
                record_count,
                total,
            )

    @staticmethod
    def _validate_leader_batches(view: memoryview, max_message_bytes: int) -> list[tuple[int, BatchHeader]]:
        batches: list[tuple[int, BatchHeader]] = []
        position = 0
        end = len(view)
        while position < end:
            header = parse_header(view, position)
            size = header.batch_length + LOG_OVERHEAD
            if position + size > end:
                raise CorruptRecordError(
                    f"batch of {size} bytes is truncated to {end - position} bytes", position=position
                )
            if size > max_message_bytes:
                raise RecordTooLargeError(size, max_message_bytes)
            verify_batch_crc(header, view[position : position + size], position)
            if header.record_count < 1 or header.record_count != header.last_offset_delta + 1:
                raise InvalidRecordError(
                    f"batch at position {position} has record_count {header.record_count} and "
                    f"last_offset_delta {header.last_offset_delta}; a producer batch needs count == delta + 1 >= 1"
                )
            if header.is_control:
                raise InvalidRecordError("producers may not write control batches")
            if header.is_transactional:
                raise InvalidRecordError("transactional batches are not supported")
            if header.compression not in SUPPORTED_COMPRESSION_TYPES:
                raise UnsupportedCompressionError(header.compression)
            if header.producer_id >= 0 and (header.producer_epoch < 0 or header.base_sequence < 0):
                raise InvalidRecordError(
                    f"idempotent batch of producer {header.producer_id} has epoch {header.producer_epoch} "
                    f"and base sequence {header.base_sequence}"
                )
            batches.append((position, header))
            position += size
        if not batches:
            raise InvalidRecordError("an append needs at least one batch")
        return batches

    def append_as_follower(
        self, data: bytes | bytearray | memoryview, *, verify_crc: bool = False
    ) -> LogAppendInfo:
        """Append a leader's batches with the offsets and leader epochs they carry.

        Validates framing and offsets: the first batch must start at the log end offset, and each
        batch right after the previous one. Compacted logs (cleanup.policy contains compact) accept
        gaps between batches, because the leader's cleaner removes whole batches; any overlap is
        rejected. CRCs are not recomputed by default (DESIGN.md: the leader verified them and
        replication moves bytes unchanged); pass `verify_crc=True` for Kafka's follower behaviour.
        Batch leader epochs update the leader-epoch cache; idempotent batches update producer state.

        Raises:
            CorruptRecordError: bad framing (or a bad CRC when `verify_crc`).
            LogOffsetGapError: the offsets overlap the log or leave a gap in a non-compacted log.
            InvalidRecordError: an empty append.
            KafkaStorageError: the write failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        with self._lock:
            self._check_usable()
            allows_gaps = self._config.is_compacted
            expected = self._segments[-1].next_offset
            placements: list[tuple[int, int, int, int, int]] = []
            epochs: list[tuple[int, int]] = []
            headers: list[BatchHeader] = []
            record_count = 0
            max_timestamp = NO_TIMESTAMP
            offset_of_max = expected
            latest_epoch = self._epoch_cache.latest_epoch
            position = 0
            end = len(view)
            while position < end:
                header = parse_header(view, position)
                # One unpack instead of a dozen attribute lookups: this loop is the replication hot path.
                (
                    base_offset,
                    batch_length,
                    epoch,
                    _,
                    _,
                    _,
                    last_offset_delta,
                    _,
                    batch_max_timestamp,
                    _,
                    _,
                    _,
                    count,
                ) = header
                size = batch_length + LOG_OVERHEAD
                if position + size > end:
                    raise CorruptRecordError(
                        f"batch of {size} bytes is truncated to {end - position} bytes", position=position
                    )
                if verify_crc:
                    verify_batch_crc(header, view[position : position + size], position)
                if base_offset != expected:
                    if base_offset < expected:
                        raise LogOffsetGapError(expected, base_offset, "overlaps offsets already in the log")
                    if not allows_gaps:
                        raise LogOffsetGapError(expected, base_offset, "leaves a gap in a non-compacted log")
                if count > last_offset_delta + 1:
                    raise CorruptRecordError(
                        f"{count} records cannot fit {last_offset_delta + 1} offsets", position=position
                    )
                next_offset = base_offset + last_offset_delta + 1
                placements.append((position, size, base_offset, next_offset, batch_max_timestamp))
                if epoch >= 0 and epoch != latest_epoch:
                    epochs.append((epoch, base_offset))
                    latest_epoch = epoch
                if batch_max_timestamp > max_timestamp:
                    max_timestamp, offset_of_max = batch_max_timestamp, base_offset
                headers.append(header)
                record_count += count
                expected = next_offset
                position += size
            if not placements:
                raise InvalidRecordError("an append needs at least one batch")
            now_ms = self._clock.now_ms()
            self._write(view, placements, max_timestamp, now_ms)
            for epoch, start_offset in epochs:
                self._epoch_cache.assign(epoch, start_offset)
            self._producer_state.apply_headers(headers)
            self._after_append(record_count)
            return LogAppendInfo(
                placements[0][2],
                expected - 1,
                max_timestamp,
                offset_of_max,
                -1,
                self._segments[0].base_offset,
                record_count,
                end,
            )

    def _write(
        self,
        data: memoryview,
        placements: list[tuple[int, int, int, int, int]],
        max_timestamp: int,
        now_ms: int,
    ) -> None:
        """Roll if needed, then append to the active segment. Holds the lock."""
        try:
            segment = self._maybe_roll(
                len(data), max_timestamp, placements[0][2], placements[-1][3] - 1, now_ms
            )
            segment.append(data, placements)
        except KafkaStorageError as error:
            self._go_offline(error)
            raise
        self._size_bytes += len(data)

    def _maybe_roll(
        self, size_bytes: int, max_timestamp: int, first_offset: int, last_offset: int, now_ms: int
    ) -> LogSegment:
        """Roll when the append would not fit the active segment (Kafka's LogSegment.shouldRoll)."""
        segment = self._segments[-1]
        config = self._config
        if segment.size > 0:
            is_due = (
                segment.size + size_bytes > config.segment_bytes
                or segment.time_waited_for_roll(now_ms, max_timestamp)
                > config.segment_ms - config.segment_jitter_ms
                or segment.is_index_full()
                or not segment.can_hold_offset(last_offset)
            )
        else:
            is_due = not segment.can_hold_offset(last_offset)
        if is_due:
            return self._roll(first_offset, now_ms)
        return segment

    def roll(self) -> None:
        """Seal the active segment and start a new one at the log end offset (if the active one is not empty)."""
        with self._lock:
            self._check_usable()
            try:
                self._roll(self.log_end_offset, self._clock.now_ms())
            except KafkaStorageError as error:
                self._go_offline(error)
                raise

    def _roll(self, base_offset: int, now_ms: int) -> LogSegment:
        active = self._segments[-1]
        base_offset = max(base_offset, active.next_offset)
        if active.size == 0:
            if active.base_offset == base_offset:
                return active
            # An empty active segment cannot take offsets this far ahead: replace it (Kafka does too).
            active.delete()
            self._segments.pop()
            self._base_offsets.pop()
        else:
            active.seal()
        segment = LogSegment.create(self.directory, base_offset, self._config, now_ms)
        self._segments.append(segment)
        self._base_offsets.append(base_offset)
        fsync_directory(self.directory)
        self._producer_state.map_end_offset = base_offset
        self._producer_state.remove_expired_producers(now_ms)
        self._producer_state.take_snapshot()
        return segment

    def _after_append(self, record_count: int) -> None:
        """Apply the flush policy (flush.messages / flush.ms)."""
        self._unflushed_records += record_count
        config = self._config
        if self._unflushed_records >= config.flush_messages or (
            config.flush_ms != LONG_MAX
            and self._clock.monotonic_ms() - self._last_flush_monotonic_ms >= config.flush_ms
        ):
            self._flush()

    def assign_epoch_start_offset(self, leader_epoch: int, start_offset: int) -> None:
        """Record that `leader_epoch` starts at `start_offset` (a replica becoming leader does this
        with its log end offset, as Kafka's maybeAssignEpochStartOffset)."""
        with self._lock:
            self._check_usable()
            self._epoch_cache.assign(leader_epoch, start_offset)

    # =============================================================================================
    # Read.

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> LogReadResult:
        """Read whole batches starting with the batch that contains `offset` (or the first after it).

        Returns at least one whole batch when one is available, even if it is larger than
        `max_bytes` (Kafka KIP-74), and never a partial batch. Reads stop at the end of the segment
        holding the first batch, as in Kafka; the caller reads on from where the bytes end.

        Args:
            offset: first offset wanted, in [log_start_offset, log_end_offset].
            max_bytes: soft bound on the bytes returned.
            max_offset: if set (the high watermark, for consumers), only batches whose last offset
                is < `max_offset` are returned.

        Returns:
            LogReadResult; `records` is empty at the log end or when `max_offset` stops the first batch.

        Raises:
            OffsetOutOfRangeError: `offset` is below the log start or above the log end.
            CorruptRecordError: a batch header on the way does not parse.
            KafkaStorageError: the read failed; the log goes offline.
            LogClosedError: the log was closed.
        """
        with self._lock:
            self._check_usable()
            start_offset = self._segments[0].base_offset
            end_offset = self._segments[-1].next_offset
            if offset < start_offset or offset > end_offset:
                raise OffsetOutOfRangeError(offset, start_offset, end_offset)
            if offset == end_offset or (max_offset is not None and offset >= max_offset):
                return LogReadResult(b"", -1, offset, start_offset, end_offset)
            number = bisect.bisect_right(self._base_offsets, offset) - 1
            try:
                for segment in self._segments[number:]:
                    result = segment.read(offset, max_bytes, max_offset)
                    if result is not None:
                        records, first_offset, next_offset = result
                        if not records:
                            return LogReadResult(b"", -1, offset, start_offset, end_offset)
                        return LogReadResult(records, first_offset, next_offset, start_offset, end_offset)
            except KafkaStorageError as error:
                self._go_offline(error)
                raise
            return LogReadResult(b"", -1, offset, start_offset, end_offset)

    def offsets_for_time(self, timestamp: int) -> TimestampAndOffset | None:
        """The first record whose timestamp is >= `timestamp` (Kafka ListOffsets).

        Special values: LATEST_TIMESTAMP (-1) gives the log end offset, EARLIEST_TIMESTAMP (-2) the
        log start offset, TIMESTAMP_MAX (-3) the batch holding the largest timestamp.

        Returns:
            TimestampAndOffset, or None when no record is that new.

        Raises:
            ValueError: `timestamp` is negative and not one of the special values.
            CorruptRecordError: the batch holding the record fails its CRC or does not decode.
        """
        with self._lock:
            self._check_usable()
            if timestamp == LATEST_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, self.log_end_offset)
            if timestamp == EARLIEST_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, self.log_start_offset)
            if timestamp == TIMESTAMP_MAX:
                best = max(self._segments, key=lambda segment: segment.max_timestamp)
                if best.max_timestamp == NO_TIMESTAMP:
                    return None
                return TimestampAndOffset(best.max_timestamp, best.offset_of_max_timestamp)
            if timestamp < 0:
                raise ValueError(f"timestamp {timestamp} is negative and not a special value")
            start_offset = self.log_start_offset
            for segment in self._segments:
                if segment.max_timestamp < timestamp:
                    continue
                found = segment.find_offset_by_timestamp(timestamp, start_offset)
                if found is not None:
                    return TimestampAndOffset(*found)
            return None

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (largest epoch <= `leader_epoch`, its end offset); see LeaderEpochCache.end_offset_for."""
        with self._lock:
            self._check_usable()
            return self._epoch_cache.end_offset_for(leader_epoch, self.log_end_offset)

    def producer_state(self, producer_id: int) -> tuple[int, int, int] | None:
        """(producer epoch, last sequence, last offset) of an idempotent producer, or None if unknown."""
        with self._lock:
            entry = self._producer_state.entries.get(producer_id)
            if entry is None:
                return None
            return entry.producer_epoch, entry.last_sequence, entry.last_offset

    # =============================================================================================
    # Truncation.

    def truncate_to(self, offset: int) -> bool:
        """Remove every batch whose last offset is >= `offset` (a follower dropping a divergent suffix).

        Works at batch boundaries: if `offset` falls inside a batch, that whole batch is removed and
        the log end offset becomes the batch's base offset, below `offset` (as Kafka). An `offset`
        below the log start empties the log and restarts it at `offset`. An `offset` at or past the
        log end does nothing.

        An `offset` at or past the log end removes no data but still drops leader-epoch entries
        that start at or after the log end (Kafka's UnifiedLog.truncateTo): a replica that became
        leader, recorded its epoch's start offset and appended nothing before losing leadership
        holds such an entry, and as a follower it would otherwise keep reporting an epoch no batch
        carries, and never stop diverging.

        Returns:
            Whether anything was removed.

        Raises:
            KafkaStorageError: the files could not be changed; the log goes offline.
            LogClosedError: the log was closed.
        """
        assert offset >= 0
        with self._lock:
            self._check_usable()
            if offset >= self.log_end_offset:
                self._epoch_cache.truncate_from_end(self.log_end_offset)
                return False
            if offset < self.log_start_offset:
                self._truncate_fully_and_start_at(offset)
                return True
            try:
                while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
                    segment = self._segments.pop()
                    self._base_offsets.pop()
                    segment.delete()
                self._segments[-1].truncate_to(offset)
            except KafkaStorageError as error:
                self._go_offline(error)
                raise
            self._size_bytes = sum(segment.size for segment in self._segments)
            self._after_truncation()
            return True

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and restart the log, empty, at `offset` (log start = LEO = `offset`).

        Raises:
            KafkaStorageError: the files could not be changed; the log goes offline.
            LogClosedError: the log was closed.
        """
        assert offset >= 0
        with self._lock:
            self._check_usable()
            self._truncate_fully_and_start_at(offset)

    def _truncate_fully_and_start_at(self, offset: int) -> None:
        try:
            for segment in self._segments:
                segment.delete()
            self._segments = [LogSegment.create(self.directory, offset, self._config, self._clock.now_ms())]
            self._base_offsets = [offset]
            fsync_directory(self.directory)
            self._epoch_cache.clear()
            self._producer_state.delete_snapshots_after(-1)
        except KafkaStorageError as error:
            self._go_offline(error)
            raise
        self._producer_state.reset(offset)
        self._size_bytes = 0
        self._after_truncation()

    def _after_truncation(self) -> None:
        end_offset = self.log_end_offset
        self._epoch_cache.truncate_from_end(end_offset)
        self._rebuild_producer_state(end_offset)
        if self._cleaner_checkpoint > end_offset or self._cleaner_checkpoint < self.log_start_offset:
            self._write_cleaner_checkpoint(
                min(max(self._cleaner_checkpoint, self.log_start_offset), end_offset)
            )
        self._generation += 1

    # =============================================================================================
    # Retention.

    def delete_old_segments(self, now_ms: int, high_watermark: int) -> int:
        """Delete whole old segments by retention.ms and retention.bytes (cleanup.policy delete).

        Only a prefix of segments is deleted, and only segments that end at or below
        `high_watermark`: data not yet on every in-sync replica is never deleted. If every segment
        qualifies, a new empty segment is rolled first so the log keeps its end offset. The log
        start offset moves to the first remaining segment.

        Args:
            now_ms: the current time.
            high_watermark: the partition's high watermark.

        Returns:
            The number of segments deleted.

        Raises:
            KafkaStorageError: the files could not be deleted; the log goes offline.
        """
        with self._lock:
            self._check_usable()
            self._producer_state.remove_expired_producers(now_ms)
            config = self._config
            if not config.is_delete_enabled:
                return 0
            deleted = 0
            if config.retention_ms >= 0:
                deleted += self._delete_segments(
                    lambda segment: now_ms - segment.largest_timestamp > config.retention_ms,
                    high_watermark,
                    now_ms,
                )
            if config.retention_bytes >= 0:
                excess = [self._size_bytes - config.retention_bytes]

                def is_over_size(segment: LogSegment) -> bool:
                    if excess[0] - segment.size >= 0:
                        excess[0] -= segment.size
                        return True
                    return False

                deleted += self._delete_segments(is_over_size, high_watermark, now_ms)
            return deleted

    def _delete_segments(
        self, should_delete: Callable[[LogSegment], bool], high_watermark: int, now_ms: int
    ) -> int:
        count = 0
        for number, segment in enumerate(self._segments):
            is_last = number == len(self._segments) - 1
            upper_bound = segment.next_offset if is_last else self._segments[number + 1].base_offset
            if is_last and segment.size == 0:
                break
            if high_watermark < upper_bound or not should_delete(segment):
                break
            count += 1
        if count == 0:
            return 0
        try:
            if count == len(self._segments):
                self._roll(self.log_end_offset, now_ms)
            doomed = self._segments[:count]
            del self._segments[:count]
            del self._base_offsets[:count]
            for segment in doomed:
                logger.info("%s: retention deletes %s", self.directory, segment.log_path)
                segment.delete()
                self._size_bytes -= segment.size
            start_offset = self._segments[0].base_offset
            self._epoch_cache.truncate_from_start(start_offset)
            self._producer_state.delete_snapshots_before(start_offset)
            if self._cleaner_checkpoint < start_offset:
                self._write_cleaner_checkpoint(start_offset)
        except KafkaStorageError as error:
            self._go_offline(error)
            raise
        self._generation += 1
        return count

    def remove_expired_producers(self, now_ms: int) -> int:
        """Forget idempotent producers idle for producer.id.expiration.ms; return how many."""
        with self._lock:
            return self._producer_state.remove_expired_producers(now_ms)

    # =============================================================================================
    # Configuration, flush, close.

    def update_config(self, config: LogConfig) -> None:
        """Use `config` from now on (segment sizes apply from the next roll)."""
        with self._lock:
            self._config = config
            self._producer_state.producer_id_expiration_ms = config.producer_id_expiration_ms

    def flush(self) -> None:
        """fsync the active segment: every append so far survives a machine crash.

        Raises:
            KafkaStorageError: fsync failed; the log goes offline.
        """
        with self._lock:
            self._check_usable()
            self._flush()

    def _flush(self) -> None:
        try:
            self._segments[-1].flush()
        except KafkaStorageError as error:
            self._go_offline(error)
            raise
        self._unflushed_records = 0
        self._last_flush_monotonic_ms = self._clock.monotonic_ms()

    def maybe_flush(self) -> bool:
        """Flush if flush.ms has passed since the last flush and there is unflushed data (for a periodic task)."""
        with self._lock:
            self._check_usable()
            if self._unflushed_records and (
                self._clock.monotonic_ms() - self._last_flush_monotonic_ms >= self._config.flush_ms
            ):
                self._flush()
                return True
            return False

    def close(self) -> None:
        """Flush everything, write a producer snapshot and the clean-shutdown marker, release files.

        Idempotent. A log that went offline is released without the marker, so the next open recovers.
        """
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
            if self._offline_error is not None:
                for segment in self._segments:
                    segment.release()
                return
            for segment in self._segments:
                segment.close()
            self._producer_state.map_end_offset = self.log_end_offset
            self._producer_state.take_snapshot()
            write_atomically(os.path.join(self.directory, CLEAN_SHUTDOWN_FILE_NAME), b"")

    def delete(self) -> None:
        """Release every file and remove the directory. The log is unusable afterwards.

        The directory is first renamed to `<name>.<random>-delete` (and the parent fsynced), then
        removed, so a crash half-way through never leaves a partial log that would be loaded again;
        LogManager removes leftover `-delete` directories on start.

        Raises:
            KafkaStorageError: the directory could not be renamed or removed.
        """
        with self._lock:
            self._is_closed = True
            for segment in self._segments:
                segment.release()
            self._segments = []
            self._base_offsets = []
            remove_log_directory(self.directory)

    # =============================================================================================
    # Compaction support (used by freshet.storage.cleaner).

    @property
    def cleaner_checkpoint(self) -> int:
        """First offset not yet compacted (the start of the dirty section)."""
        with self._lock:
            return self._cleaner_checkpoint

    def _write_cleaner_checkpoint(self, offset: int) -> None:
        self._cleaner_checkpoint = offset
        write_checkpoint(
            os.path.join(self.directory, CLEANER_CHECKPOINT_FILE_NAME),
            _CLEANER_CHECKPOINT_VERSION,
            [(offset,)],
        )

    @property
    def generation(self) -> int:
        """Changes whenever truncation or deletion may have invalidated a compaction in progress."""
        with self._lock:
            return self._generation

    def cleanable_segments(self) -> tuple[list[SegmentSnapshot], int, int]:
        """A snapshot for the cleaner: (sealed segments in order, first dirty offset, generation).

        Raises:
            LogClosedError, KafkaStorageError: the log is closed or offline.
        """
        with self._lock:
            self._check_usable()
            snapshots = []
            for number, segment in enumerate(self._segments[:-1]):
                snapshots.append(
                    SegmentSnapshot(
                        segment,
                        segment.log_path,
                        segment.base_offset,
                        self._segments[number + 1].base_offset,
                        segment.next_offset,
                        segment.size,
                        segment.largest_timestamp,
                        segment.last_modified_ms,
                        segment.offset_index.entries,
                    )
                )
            return snapshots, self._cleaner_checkpoint, self._generation

    def replace_segments(
        self, old: list[LogSegment], cleaned: LogSegment, generation: int, dirty_end_offset: int
    ) -> bool:
        """Swap the cleaner's output in for `old`, unless the log changed under the cleaner.

        The swap renames the cleaned files to `.swap`, deletes the old segments and renames the
        `.swap` files to their live names; open() completes a swap a crash interrupted.

        Returns:
            Whether the swap happened (False: the log was truncated, emptied, closed or had those
            segments deleted since `cleanable_segments`; the caller discards `cleaned`).
        """
        with self._lock:
            if self._is_closed or self._offline_error is not None or generation != self._generation:
                return False
            first = next((number for number, segment in enumerate(self._segments) if segment is old[0]), None)
            if first is None or self._segments[first : first + len(old)] != old:
                return False
            if first + len(old) >= len(self._segments):
                return False  # never replace the active segment
            try:
                cleaned.rename_suffix(SWAP_FILE_SUFFIX)
                fsync_directory(self.directory)
                for segment in old:
                    segment.delete()
                cleaned.rename_suffix("")
                fsync_directory(self.directory)
            except KafkaStorageError as error:
                self._go_offline(error)
                raise
            self._segments[first : first + len(old)] = [cleaned]
            self._base_offsets[first : first + len(old)] = [cleaned.base_offset]
            self._size_bytes = sum(segment.size for segment in self._segments)
            if dirty_end_offset > self._cleaner_checkpoint:
                self._write_cleaner_checkpoint(dirty_end_offset)
            return True

    def update_cleaner_checkpoint(self, offset: int, generation: int) -> bool:
        """Move the cleaner checkpoint forward when nothing needed rewriting; False if the log changed."""
        with self._lock:
            if self._is_closed or generation != self._generation:
                return False
            if offset > self._cleaner_checkpoint:
                self._write_cleaner_checkpoint(min(offset, self.log_end_offset))
            return True

    def __repr__(self) -> str:
        return f"PartitionLog({self.directory!r})"


def remove_log_directory(directory: str) -> None:
    """Remove a partition directory so that a crash half-way never resurrects it.

    Renames it to `<name>.<random>-delete` and fsyncs the parent first (LogManager removes such
    leftovers on start), then removes the renamed tree.

    Raises:
        KafkaStorageError: the directory could not be renamed or removed.
    """
    parent = os.path.dirname(os.path.abspath(directory))
    doomed = os.path.join(parent, f"{os.path.basename(directory)}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
    try:
        os.rename(directory, doomed)
        fsync_directory(parent)
        shutil.rmtree(doomed)
    except OSError as error:
        raise KafkaStorageError(directory, "delete log", error) from error
