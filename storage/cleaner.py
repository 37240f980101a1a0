"""Log compaction: keep the latest record per key in logs with cleanup.policy=compact.

Owns the compaction cleaner (Kafka's LogCleaner, without transactions): the only thread the
storage layer runs. For a compacted log whose dirty ratio (bytes written since the last cleaning
over all cleanable bytes) reaches min.cleanable.dirty.ratio, it

1. takes a snapshot of the sealed segments under the log's lock (the active segment is never
   cleaned, so appends never wait for the cleaner);
2. builds a key -> latest offset map over the dirty segments, reading them through its own file
   descriptors (decoding records, the one place outside clients that does);
3. rewrites every cleanable segment, grouped up to segment.bytes, into `.cleaned` files keeping a
   record only if it is the latest for its key: keyless records are dropped (a compacted topic has
   no use for them, as in Kafka), and tombstones (null values) are dropped once their timestamp is
   older than delete.retention.ms. Batches keep their base offset, last offset delta, producer
   fields and leader epoch; kept records are copied byte for byte, so offsets never change.
4. swaps each cleaned group in under the log's lock, unless the log was truncated, emptied or had
   those segments deleted meanwhile (then the work is discarded and retried later).

Memory is bounded: the map holds a 16-byte BLAKE2b digest per key and at most
`CleanerConfig.max_map_keys` keys; when the dirty section has more keys, one pass cleans up to the
segment where the map filled and the next pass continues from there.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: `LogCleaner` runs one background thread; `clean_log`/`clean_once` may also be
called directly (tests, tools) but not concurrently with the thread for the same log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator

from freshet.storage.clock import Clock
from freshet.storage.compression import DECOMPRESSED_BYTES_MAX
from freshet.storage.errors import CorruptRecordError, StorageError
from freshet.storage.log import PartitionLog
from freshet.storage.log_compaction import SegmentSnapshot
from freshet.storage.offset_index import RELATIVE_OFFSET_MAX
from freshet.storage.record_batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    TimestampType,
    decode_raw_records,
    is_crc_valid,
    parse_header,
    rebuild_batch,
)
from freshet.storage.segment import CLEANED_FILE_SUFFIX, LogSegment

logger = logging.getLogger(__name__)

_READ_CHUNK_BYTES = 4 * 1024 * 1024
_WRITE_CHUNK_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Settings of the compaction cleaner (Kafka's log.cleaner.* broker configs). Immutable."""

    backoff_ms: int = 15_000
    """log.cleaner.backoff.ms: sleep between passes that found nothing to clean."""
    max_map_keys: int = 1_000_000
    """Keys held in the offset map per pass (about 150 bytes each: ~150 MB at the default)."""
    max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX
    """Bound on one batch's decompressed records section."""

    def __post_init__(self) -> None:
        assert self.backoff_ms >= 0
        assert self.max_map_keys >= 1
        assert self.max_decompressed_bytes >= 0


@dataclasses.dataclass(slots=True)
class CleanerStats:
    """What one cleaning of one log did."""

    segments_read: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    tombstones_dropped: int = 0
    keyless_dropped: int = 0
    dirty_end_offset: int = -1


def _key_digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=16).digest()


class _SegmentReader:
    """Reads the batches of one sealed segment through the cleaner's own file descriptor."""

    def __init__(self, segment: SegmentSnapshot) -> None:
        self.path = segment.log_path
        self.size = segment.size_bytes
        self._fd = os.open(segment.log_path, os.O_RDONLY | os.O_CLOEXEC)

    def batches(self) -> Iterator[tuple[BatchHeader, memoryview]]:
        position = 0
        chunk = b""
        chunk_start = 0
        while position < self.size:
            offset_in_chunk = position - chunk_start
            if offset_in_chunk + BATCH_HEADER_SIZE > len(chunk):
                chunk = os.pread(self._fd, min(_READ_CHUNK_BYTES, self.size - position), position)
                chunk_start, offset_in_chunk = position, 0
            try:
                header = parse_header(chunk, offset_in_chunk)
            except CorruptRecordError as error:
                raise CorruptRecordError(error.reason, position=position, path=self.path) from None
            size = header.batch_length + LOG_OVERHEAD
            if offset_in_chunk + size > len(chunk):
                chunk = os.pread(self._fd, max(min(_READ_CHUNK_BYTES, self.size - position), size), position)
                chunk_start, offset_in_chunk = position, 0
                if len(chunk) < size:
                    raise CorruptRecordError(
                        "batch is cut short by the end of the file", position=position, path=self.path
                    )
            yield header, memoryview(chunk)[offset_in_chunk : offset_in_chunk + size]
            position += size

    def close(self) -> None:
        os.close(self._fd)


class LogCleaner:
    """Compacts logs with cleanup.policy=compact on one background thread.

    Thread-safe: start/stop from any thread; the logs it cleans are thread-safe themselves.
    """

    def __init__(
        self, logs: Callable[[], Iterable[PartitionLog]], clock: Clock, config: CleanerConfig | None = None
    ) -> None:
        """Clean the logs that `logs()` returns on each pass (the LogManager's current logs)."""
        self._logs = logs
        self._clock = clock
        self.config = config or CleanerConfig()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uncleanable: set[str] = set()
        self._lock = threading.Lock()
        #: Cleanings that swapped their output in, and the statistics of the last one (for metrics).
        self.cleanings_completed = 0
        self.last_stats: CleanerStats | None = None

    # ---------------------------------------------------------------------------------------------
    # Thread.

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="freshet-log-cleaner", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to stop after the current cleaning and wait for it."""
        with self._lock:
            thread = self._thread
            self._thread = None
        self._stop.set()
        if thread is not None:
            thread.join(timeout_s)
            assert not thread.is_alive(), "the cleaner did not stop in time"

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                did_clean = self.clean_once()
            except Exception:  # noqa: BLE001 - the thread must survive a bad log; the log is marked
                logger.exception("log cleaner pass failed")
                did_clean = False
            if not did_clean:
                self._stop.wait(self.config.backoff_ms / 1000)

    # ---------------------------------------------------------------------------------------------
    # Choosing what to clean.

    @property
    def uncleanable(self) -> frozenset[str]:
        """Directories of logs the cleaner gave up on (corrupt or undecodable data)."""
        return frozenset(self._uncleanable)

    def dirty_ratio(self, log: PartitionLog, now_ms: int) -> float:
        """Dirty bytes / cleanable bytes of `log` (0.0 when nothing is cleanable)."""
        segments, first_dirty, _ = log.cleanable_segments()
        segments = self._old_enough(log, segments, now_ms)
        clean = dirty = 0
        for segment in segments:
            if segment.upper_offset <= first_dirty:
                clean += segment.size_bytes
            else:
                dirty += segment.size_bytes
        total = clean + dirty
        return dirty / total if total else 0.0

    @staticmethod
    def _old_enough(log: PartitionLog, segments: list[SegmentSnapshot], now_ms: int) -> list[SegmentSnapshot]:
        """The prefix of `segments` older than min.compaction.lag.ms."""
        lag = log.config.min_compaction_lag_ms
        if lag <= 0:
            return segments
        kept = []
        for segment in segments:
            if now_ms - segment.largest_timestamp < lag:
                break
            kept.append(segment)
        return kept

    def clean_once(self) -> bool:
        """Clean the dirtiest compacted log above its min.cleanable.dirty.ratio; return whether one was cleaned."""
        now_ms = self._clock.now_ms()
        best: tuple[float, PartitionLog] | None = None
        for log in self._logs():
            if not log.config.is_compacted or log.directory in self._uncleanable or log.is_closed:
                continue
            try:
                ratio = self.dirty_ratio(log, now_ms)
            except StorageError:  # closed or offline meanwhile
                continue
            if (
                ratio > 0
                and ratio >= log.config.min_cleanable_dirty_ratio
                and (best is None or ratio > best[0])
            ):
                best = (ratio, log)
        if best is None:
            return False
        return self.clean_log(best[1], now_ms) is not None

    # ---------------------------------------------------------------------------------------------
    # Cleaning one log.

    def clean_log(self, log: PartitionLog, now_ms: int) -> CleanerStats | None:
        """Compact `log` once (regardless of its dirty ratio).

        With no dirty segment the clean ones are still rewritten, which drops tombstones that have
        outlived delete.retention.ms (`clean_once` only picks logs with dirty data, so in the
        background such tombstones go with the next cleaning, as in Kafka before KIP-534).

        Returns:
            Statistics, or None when there was nothing to clean or the log changed under the cleaner.
        """
        try:
            segments, first_dirty, generation = log.cleanable_segments()
        except StorageError:  # closed or offline meanwhile
            return None
        segments = self._old_enough(log, segments, now_ms)
        if not segments:
            return None
        stats = CleanerStats()
        try:
            offset_map, dirty_end = self._build_offset_map(log, segments, first_dirty, stats)
            if dirty_end is None:
                # Nothing new since the last cleaning: rewriting the clean segments still removes
                # tombstones that have outlived delete.retention.ms since then.
                dirty_end = segments[-1].upper_offset
            stats.dirty_end_offset = dirty_end
            to_clean = [segment for segment in segments if segment.base_offset < dirty_end]
            groups = self._group_segments(log, to_clean)
            for number, group in enumerate(groups):
                is_last_group = number == len(groups) - 1
                if not self._clean_group(
                    log, group, offset_map, now_ms, generation, dirty_end if is_last_group else 0, stats
                ):
                    logger.info(
                        "%s changed while being cleaned; the cleaning is retried later", log.directory
                    )
                    return None
        except (OSError, StorageError) as error:
            if log.is_closed or log.generation != generation:
                return None
            logger.error("cannot clean %s, giving up on it: %s", log.directory, error)
            self._uncleanable.add(log.directory)
            return None
        self.cleanings_completed += 1
        self.last_stats = stats
        logger.info(
            "cleaned %s up to offset %d: %d -> %d bytes, kept %d of %d records",
            log.directory,
            dirty_end,
            stats.bytes_read,
            stats.bytes_written,
            stats.records_kept,
            stats.records_read,
        )
        return stats

    def _build_offset_map(
        self, log: PartitionLog, segments: list[SegmentSnapshot], first_dirty: int, stats: CleanerStats
    ) -> tuple[dict[bytes, int], int | None]:
        """Map key digest -> latest offset over the dirty segments, whole segments at a time.

        Returns:
            (map, dirty end offset): the offset up to which the map is complete (a segment boundary),
            or None when no dirty segment exists.
        """
        offset_map: dict[bytes, int] = {}
        dirty_end: int | None = None
        for segment in segments:
            if segment.upper_offset <= first_dirty:
                continue
            segment_map: dict[bytes, int] = {}
            reader = _SegmentReader(segment)
            try:
                for header, batch in reader.batches():
                    if header.is_control:
                        continue
                    _, _, records = decode_raw_records(
                        batch, verify_crc=True, max_decompressed_bytes=self.config.max_decompressed_bytes
                    )
                    base_offset = header.base_offset
                    for record in records:
                        if record.key is not None:
                            segment_map[_key_digest(record.key)] = base_offset + record.offset_delta
            finally:
                reader.close()
            new_keys = sum(1 for key in segment_map if key not in offset_map)
            if len(offset_map) + new_keys > self.config.max_map_keys:
                if dirty_end is None:
                    raise StorageError(
                        f"segment {segment.log_path} has more keys than the cleaner map holds "
                        f"({self.config.max_map_keys}); raise CleanerConfig.max_map_keys"
                    )
                break
            offset_map.update(segment_map)
            dirty_end = segment.upper_offset
        return offset_map, dirty_end

    @staticmethod
    def _group_segments(log: PartitionLog, segments: list[SegmentSnapshot]) -> list[list[SegmentSnapshot]]:
        """Consecutive segments that fit one cleaned segment (size, index capacity, offset range)."""
        config = log.config
        max_index_entries = config.segment_index_bytes // 12
        groups: list[list[SegmentSnapshot]] = []
        for segment in segments:
            if groups:
                group = groups[-1]
                size = sum(member.size_bytes for member in group) + segment.size_bytes
                entries = sum(member.index_entries + 1 for member in group) + segment.index_entries + 1
                offset_range = segment.upper_offset - 1 - group[0].base_offset
                if (
                    size <= config.segment_bytes
                    and entries <= max_index_entries
                    and offset_range <= RELATIVE_OFFSET_MAX
                ):
                    group.append(segment)
                    continue
            groups.append([segment])
        return groups

    def _clean_group(
        self,
        log: PartitionLog,
        group: list[SegmentSnapshot],
        offset_map: dict[bytes, int],
        now_ms: int,
        generation: int,
        dirty_end: int,
        stats: CleanerStats,
    ) -> bool:
        config = log.config
        delete_horizon_ms = now_ms - config.delete_retention_ms
        directory = log.directory
        cleaned_path = group[0].log_path + CLEANED_FILE_SUFFIX
        if os.path.exists(cleaned_path):
            os.unlink(cleaned_path)
        cleaned = LogSegment.create(
            directory, group[0].base_offset, config, now_ms, suffix=CLEANED_FILE_SUFFIX
        )
        is_swapped = False
        try:
            pending: list[bytes | bytearray | memoryview] = []
            placements: list[tuple[int, int, int, int, int]] = []
            pending_bytes = 0
            newest_modified_ms = 0
            for segment in group:
                newest_modified_ms = max(newest_modified_ms, segment.last_modified_ms)
                stats.segments_read += 1
                reader = _SegmentReader(segment)
                try:
                    for header, batch in reader.batches():
                        stats.bytes_read += len(batch)
                        output = self._clean_batch(header, batch, offset_map, delete_horizon_ms, stats)
                        if output is None:
                            continue
                        output_header = parse_header(output)
                        placements.append(
                            (
                                pending_bytes,
                                len(output),
                                header.base_offset,
                                header.next_offset,
                                output_header.max_timestamp,
                            )
                        )
                        pending.append(output)
                        pending_bytes += len(output)
                        if pending_bytes >= _WRITE_CHUNK_BYTES:
                            cleaned.append(b"".join(pending), placements)
                            stats.bytes_written += pending_bytes
                            pending, placements, pending_bytes = [], [], 0
                finally:
                    reader.close()
            if pending:
                cleaned.append(b"".join(pending), placements)
                stats.bytes_written += pending_bytes
            cleaned.seal()
            cleaned.set_last_modified_ms(newest_modified_ms)
            is_swapped = log.replace_segments(
                [member.segment for member in group], cleaned, generation, dirty_end
            )
            return is_swapped
        finally:
            if not is_swapped:
                cleaned.delete()

    def _clean_batch(
        self,
        header: BatchHeader,
        batch: memoryview,
        offset_map: dict[bytes, int],
        delete_horizon_ms: int,
        stats: CleanerStats,
    ) -> bytes | bytearray | memoryview | None:
        """The batch with only the records worth keeping, the batch itself if all are, or None."""
        if header.is_control:
            return batch
        _, section, records = decode_raw_records(
            batch, verify_crc=True, max_decompressed_bytes=self.config.max_decompressed_bytes
        )
        stats.records_read += len(records)
        is_log_append_time = header.timestamp_type == TimestampType.LOG_APPEND_TIME
        kept = []
        for record in records:
            key = record.key
            if key is None:
                stats.keyless_dropped += 1
                continue
            offset = header.base_offset + record.offset_delta
            latest = offset_map.get(_key_digest(key))
            if latest is not None and offset < latest:
                continue
            if record.value is None:
                timestamp = (
                    header.max_timestamp
                    if is_log_append_time
                    else header.base_timestamp + record.timestamp_delta
                )
                if timestamp < delete_horizon_ms:
                    stats.tombstones_dropped += 1
                    continue
            kept.append(record)
        stats.records_kept += len(kept)
        if len(kept) == len(records):
            return batch
        if not kept:
            return None
        rebuilt = rebuild_batch(header, section, kept)
        # Pair check (STYLE.md): the CRC was verified when the batch was read; verify the new one
        # before it is written, since recovery would cut the log at a bad CRC.
        assert is_crc_valid(parse_header(rebuilt), rebuilt), "a rebuilt batch must carry a valid CRC"
        return rebuilt
