"""Opening a partition directory: the directory layout, crash recovery, and derived state rebuilt from it.

Owns the partition directory's files other than the segments themselves:

    partition.metadata            the topic id (written on first open, checked afterwards)
    .clean-shutdown               present only between close() and open()
    cleaner-offset-checkpoint     first dirty offset (compacted logs only)
    log-start-offset-checkpoint   the log start offset, when DeleteRecords moved it inside a segment
    *.cleaned / *.swap            compaction output a crash interrupted (discarded / completed)

and the work of `PartitionLog.open` (Kafka's LogLoader): remove stale temporary files, complete an
interrupted compaction swap, drop orphan indexes, open every segment, recover the segments that need
it (the last one after an unclean stop, any whose indexes fail their checks) and cut everything
after the first corrupt batch, then restore the log start offset (`max(checkpointed, first segment's
base offset)`, deleting whole segments below it, or restarting the log empty there when recovery
left the log end below it, as Kafka's LogLoader), then load or rebuild the leader-epoch cache, the
idempotent-producer state and the cleaner checkpoint. `rebuild_producer_state` is also what truncation uses.

The loader only reads and repairs; what the loaded log then does belongs to `PartitionLog`.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: not thread-safe. `PartitionLog.open` runs one loader, under the new log's lock,
before the log is shared.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from freshet.storage.checkpoint import (
    fsync_directory,
    parse_int_fields,
    read_checkpoint,
    remove_stale_temp_files,
    write_atomically,
)
from freshet.storage.config import LogConfig
from freshet.storage.errors import CorruptCheckpointError, InconsistentTopicIdError, KafkaStorageError
from freshet.storage.leader_epoch import LeaderEpochCache
from freshet.storage.log_segments import LogSegments
from freshet.storage.producer_state import ProducerStateManager
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
CLEANER_CHECKPOINT_VERSION = 0
LOG_START_OFFSET_CHECKPOINT_FILE_NAME = "log-start-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT_VERSION = 0
_PARTITION_METADATA_VERSION = 0


@dataclasses.dataclass(slots=True)
class LoadedLog:
    """What `LogLoader.load` found and repaired; `PartitionLog` takes it over."""

    segments: LogSegments
    topic_id: str | None
    epoch_cache: LeaderEpochCache
    cleaner_checkpoint: int
    repairs: list[tuple[str, int, int]]
    """What recovery cut: (file, position, bytes cut)."""
    log_start_offset: int
    """The first readable offset: in [segments[0].base_offset, end offset]."""
    checkpointed_log_start_offset: int
    """What the log-start-offset checkpoint holds now (-1: no file)."""


def rebuild_producer_state(state: ProducerStateManager, segments: LogSegments, end_offset: int) -> None:
    """Load the newest producer snapshot at or below `end_offset`, then replay batch headers from it.

    Snapshots above `end_offset` are deleted first. A snapshot taken at `end_offset` needs no
    replay: no batch ends at or after the log end offset.
    """
    state.delete_snapshots_after(end_offset)
    loaded = state.load_latest_snapshot(end_offset)
    if loaded != end_offset:
        replay_from = loaded if loaded is not None else segments[0].base_offset
        state.map_end_offset = replay_from
        state.apply_headers(segments.iter_headers_from(replay_from))
    state.map_end_offset = end_offset


class LogLoader:
    """Opens and recovers one partition directory (Kafka's LogLoader). Not thread-safe; used once."""

    def __init__(self, directory: str, config: LogConfig) -> None:
        self.directory = directory
        self._config = config
        #: Every segment opened so far, so that a failed load can release them.
        self.segments: list[LogSegment] = []
        self._repairs: list[tuple[str, int, int]] = []
        #: The base offset of the first segment recovery re-read (None: none was).
        self._recovered_from: int | None = None

    def load(self, topic_id: str | None, producer_state: ProducerStateManager, now_ms: int) -> LoadedLog:
        """Create the directory if needed, open its segments, recovering what needs it; rebuild `producer_state` in place.

        A load that fails releases the segments it opened before raising.

        Raises:
            InconsistentTopicIdError: the directory belongs to another topic id.
            KafkaStorageError: the directory cannot be read or written, or a segment cannot be
                read or repaired.
            CorruptRecordError: a sealed segment's batch headers do not parse while rebuilding state.
        """
        try:
            os.makedirs(self.directory, exist_ok=True)
            return self._load(topic_id, producer_state, now_ms)
        except BaseException as error:
            for segment in self.segments:
                segment.release()
            if isinstance(error, OSError):
                raise KafkaStorageError(self.directory, "open log", error) from error
            raise

    def _load(self, topic_id: str | None, producer_state: ProducerStateManager, now_ms: int) -> LoadedLog:
        """`load` without the clean-up; an OSError propagates as it is."""
        directory = self.directory
        marker = os.path.join(directory, CLEAN_SHUTDOWN_FILE_NAME)
        had_clean_shutdown = os.path.exists(marker)
        stored_topic_id = self._load_topic_id(topic_id)
        for name in remove_stale_temp_files(directory):
            logger.info("%s: removed %s left by an interrupted write", directory, name)
        self._complete_interrupted_swaps(now_ms)
        self._open_segments(now_ms)
        checkpointed_start = self._load_log_start_offset_checkpoint()
        if self.segments:
            self._recover_segments(had_clean_shutdown)
        start_offset = self._apply_log_start_offset(checkpointed_start, producer_state, now_ms)
        segments = LogSegments(directory, self.segments)

        end_offset = segments.end_offset
        assert segments[0].base_offset <= start_offset <= end_offset
        epoch_cache = self._load_epoch_cache(segments)
        if self._recovered_from is not None:
            self._reassign_recovered_epochs(segments, epoch_cache)
        epoch_cache.truncate_from_end(end_offset)
        epoch_cache.truncate_from_start(start_offset)
        rebuild_producer_state(producer_state, segments, end_offset)
        producer_state.remove_expired_producers(now_ms)
        cleaner_checkpoint = self._load_cleaner_checkpoint(start_offset, end_offset)
        if had_clean_shutdown:
            os.unlink(marker)
            fsync_directory(directory)
        return LoadedLog(
            segments, stored_topic_id, epoch_cache, cleaner_checkpoint, self._repairs, start_offset, checkpointed_start
        )

    def _load_log_start_offset_checkpoint(self) -> int:
        """The checkpointed log start offset, -1 when there is none.

        A file that does not parse is not fatal: the start falls back to the first segment's base
        offset, as for a log that never had DeleteRecords (records below the lost start become
        readable again; nothing acknowledged is lost).
        """
        path = os.path.join(self.directory, LOG_START_OFFSET_CHECKPOINT_FILE_NAME)
        try:
            entries = read_checkpoint(path, LOG_START_OFFSET_CHECKPOINT_VERSION, parse_int_fields(1))
        except CorruptCheckpointError as error:
            logger.warning("%s; the log start offset falls back to the first segment's base offset", error)
            return -1
        return entries[0][0] if entries else -1

    def _apply_log_start_offset(self, checkpointed: int, producer_state: ProducerStateManager, now_ms: int) -> int:
        """The log start offset: max(checkpointed, first base offset). Deletes whole segments
        below it (a crash came between the checkpoint and their deletion), or, when recovery left
        the log end below it, every segment, restarting the log empty at it (Kafka's LogLoader)."""
        directory = self.directory
        segments = self.segments
        if not segments:
            start = max(checkpointed, 0)
            self.segments = [LogSegment.create(directory, start, self._config, now_ms)]
            return start
        start = max(checkpointed, segments[0].base_offset)
        end_offset = segments[-1].next_offset
        if start > end_offset:
            logger.warning(
                "%s: the log end offset %d is below the checkpointed log start offset %d; deleting every segment",
                directory, end_offset, start,
            )
            for segment in segments:
                segment.delete()
            producer_state.delete_snapshots_after(-1)
            producer_state.reset(start)
            self.segments = [LogSegment.create(directory, start, self._config, now_ms)]
            fsync_directory(directory)
            return start
        doomed = 0
        while doomed + 1 < len(segments) and segments[doomed + 1].base_offset <= start:
            doomed += 1
        if doomed:
            for segment in segments[:doomed]:
                logger.info("%s: deleting %s, below the log start offset %d", directory, segment.log_path, start)
                segment.delete()
            del segments[:doomed]
            producer_state.delete_snapshots_before(segments[0].base_offset)
            fsync_directory(directory)
        return start

    def _open_segments(self, now_ms: int) -> None:
        base_offsets = sorted(
            parsed[0]
            for parsed in map(parse_segment_file_name, os.listdir(self.directory))
            if parsed is not None and parsed[1] == LOG_FILE_SUFFIX and parsed[2] == ""
        )
        self._remove_orphan_indexes(set(base_offsets))
        segments = []
        for number, base_offset in enumerate(base_offsets):
            is_last = number == len(base_offsets) - 1
            segments.append(
                LogSegment.open(self.directory, base_offset, self._config, now_ms, is_active=is_last)
            )
        self.segments = segments

    def _recover_segments(self, had_clean_shutdown: bool) -> None:
        """Re-read segments that need it; cut everything after the first corrupt batch found."""
        segments = self.segments
        number = 0
        while number < len(segments):
            segment = segments[number]
            is_last = number == len(segments) - 1
            if segment.needs_recovery or (is_last and not had_clean_shutdown):
                reason = segment.recovery_reason or "unclean shutdown"
                logger.warning("recovering %s (%s)", segment.log_path, reason)
                if self._recovered_from is None:
                    self._recovered_from = segment.base_offset
                cut = segment.recover(allows_gaps=self._config.is_compacted)
                if cut:
                    self._repairs.append((segment.log_path, segment.size, cut))
                    later = segments[number + 1 :]
                    if later:
                        # The log is the prefix of intact batches: what follows a hole cannot be served.
                        logger.error(
                            "%s: corrupt batch at position %d of a sealed segment; deleting %d later segments",
                            segment.log_path,
                            segment.size,
                            len(later),
                        )
                        for stale in later:
                            self._repairs.append((stale.log_path, 0, stale.size))
                            stale.delete()
                        del segments[number + 1 :]
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

    def _load_topic_id(self, topic_id: str | None) -> str | None:
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
        return stored

    def _reassign_recovered_epochs(self, segments: LogSegments, cache: LeaderEpochCache) -> None:
        """Assign the leader epochs of the recovered batches again (Kafka's LogSegment.recover):
        the checkpoint is fsynced with the segments, not on every assign (leader_epoch.py), so
        after a machine crash it may miss the epochs of an unflushed tail that did reach the disk."""
        assert self._recovered_from is not None
        is_changed = False
        for header in segments.iter_headers_from(self._recovered_from):
            if header.partition_leader_epoch >= 0:
                is_changed = cache.assign_in_memory(header.partition_leader_epoch, header.base_offset) or is_changed
        if is_changed:
            logger.warning("%s: leader epochs of the recovered batches re-assigned: %s", self.directory, cache.entries)
            cache.flush()

    def _load_epoch_cache(self, segments: LogSegments) -> LeaderEpochCache:
        try:
            return LeaderEpochCache.load(self.directory)
        except CorruptCheckpointError as error:
            logger.warning("%s; rebuilding it from batch headers", error)
        cache = LeaderEpochCache(self.directory)
        for header in segments.iter_headers_from(segments[0].base_offset):
            if header.partition_leader_epoch >= 0:
                cache.assign_in_memory(header.partition_leader_epoch, header.base_offset)
        cache.flush()
        return cache

    def _load_cleaner_checkpoint(self, start_offset: int, end_offset: int) -> int:
        path = os.path.join(self.directory, CLEANER_CHECKPOINT_FILE_NAME)
        try:
            entries = read_checkpoint(path, CLEANER_CHECKPOINT_VERSION, parse_int_fields(1))
        except CorruptCheckpointError as error:
            logger.warning("%s; cleaning restarts from the log start", error)
            entries = None
        offset = entries[0][0] if entries else start_offset
        return min(max(offset, start_offset), end_offset)
