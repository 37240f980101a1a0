"""The ordered segments of one partition log, and what is done to them as a whole.

Owns the list of `LogSegment`s of one partition directory (ascending base offsets; the last one is
active and takes appends), the parallel list of base offsets that offset lookups bisect, and the
running total of `.log` bytes. It does what spans segments: find the segment holding an offset and
read from it, walk batch headers across segments, decide and perform a roll, cut the list at an
offset (truncation), drop a prefix (retention), start over empty, and swap cleaned segments in.

It does not own offsets handed to producers, the leader-epoch cache, producer state or the flush
policy (all `PartitionLog`), the cleaner checkpoint (`log_compaction`), nor opening a directory and
recovery (`log_loader`). A roll here only creates the new segment; `PartitionLog` takes the producer-state
snapshot that goes with it. Errors propagate unchanged; `PartitionLog` takes the log offline on a
`KafkaStorageError`.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: not thread-safe. Only its `PartitionLog` calls it, always holding the log's lock.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence

from freshet.storage.checkpoint import fsync_directory
from freshet.storage.config import LogConfig
from freshet.storage.errors import KafkaStorageError, LogDirFullError
from freshet.storage.file_region import FileRegion
from freshet.storage.record_batch import NO_TIMESTAMP, BatchHeader
from freshet.storage.segment import SWAP_FILE_SUFFIX, LogSegment

logger = logging.getLogger(__name__)


class LogSegments:
    """A partition's segments in offset order; indexable and iterable like a list. Not thread-safe.

    Invariant: `base_offsets()[i] == self[i].base_offset` for every i, ascending; and
    `size_bytes == sum(segment.size for segment in self)` after every completed operation.
    """

    def __init__(self, directory: str, segments: list[LogSegment]) -> None:
        self.directory = directory
        self._segments = segments
        self._base_offsets = [segment.base_offset for segment in segments]
        #: Total bytes of all segment `.log` files.
        self.size_bytes = sum(segment.size for segment in segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[LogSegment]:
        return iter(self._segments)

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        return self._segments[key]

    def base_offsets(self) -> list[int]:
        """Base offsets of the segments, ascending (a copy)."""
        return list(self._base_offsets)

    @property
    def end_offset(self) -> int:
        """The log end offset: the active segment's next offset."""
        return self._segments[-1].next_offset

    # =============================================================================================
    # Lookups and reads.

    def iter_headers_from(self, offset: int) -> Iterator[BatchHeader]:
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

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None, as_region: bool = False
    ) -> tuple[bytes | FileRegion, int, int] | None:
        """`LogSegment.read` on the first segment, from the one holding `offset`, that reaches `offset`."""
        number = bisect.bisect_right(self._base_offsets, offset) - 1
        for segment in self._segments[number:]:
            result = segment.read(offset, max_bytes, max_offset, as_region)
            if result is not None:
                return result
        return None

    def find_offset_by_timestamp(self, timestamp: int, start_offset: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record at or after `start_offset` stamped >= `timestamp`."""
        for segment in self._segments:
            if segment.max_timestamp < timestamp:
                continue
            found = segment.find_offset_by_timestamp(timestamp, start_offset)
            if found is not None:
                return found
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(largest timestamp, offset of the first record carrying it), or None when no batch has
        a timestamp (the earliest segment wins a tie, as the earliest record does)."""
        best = max(self._segments, key=lambda segment: segment.max_timestamp)
        if best.max_timestamp == NO_TIMESTAMP:
            return None
        return best.find_max_timestamp_record()

    # =============================================================================================
    # Append and roll.

    def is_roll_due(
        self, size_bytes: int, max_timestamp: int, last_offset: int, config: LogConfig, now_ms: int
    ) -> bool:
        """Whether an append must go to a new segment (Kafka's LogSegment.shouldRoll)."""
        segment = self._segments[-1]
        if segment.size > 0:
            return (
                segment.size + size_bytes > config.segment_bytes
                or segment.time_waited_for_roll(now_ms, max_timestamp)
                > config.segment_ms - config.segment_jitter_ms
                or segment.is_index_full()
                or not segment.can_hold_offset(last_offset)
            )
        return not segment.can_hold_offset(last_offset)

    def append(self, data: memoryview, placements: Sequence[tuple[int, int, int, int, int]]) -> None:
        """Append validated, stamped batches to the active segment (see `LogSegment.append`)."""
        self._segments[-1].append(data, placements)
        self.size_bytes += len(data)

    def roll(self, base_offset: int, config: LogConfig, now_ms: int) -> LogSegment:
        """Seal the active segment and create a new one at max(`base_offset`, log end offset).

        Returns:
            The active segment afterwards: the old one when it is empty and already starts there.
        """
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
        try:
            segment = LogSegment.create(self.directory, base_offset, config, now_ms)
        except LogDirFullError as error:
            if active.size == 0:        # the empty active segment is gone: the log needs a restart
                raise KafkaStorageError(self.directory, "roll", error) from error
            active.unseal()             # no roll happened: the old segment takes appends again
            raise
        self._segments.append(segment)
        self._base_offsets.append(base_offset)
        fsync_directory(self.directory)
        return segment

    # =============================================================================================
    # Truncation, retention, replacement.

    def truncate_to(self, offset: int) -> None:
        """Delete the segments based above `offset`, then cut the last one at `offset` (batch boundary)."""
        while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
            segment = self._segments.pop()
            self._base_offsets.pop()
            segment.delete()
        self._segments[-1].truncate_to(offset)
        self.size_bytes = sum(segment.size for segment in self._segments)

    def restart_at(self, offset: int, config: LogConfig, now_ms: int) -> None:
        """Delete every segment and start over with one empty segment based at `offset`."""
        for segment in self._segments:
            segment.delete()
        self._segments = [LogSegment.create(self.directory, offset, config, now_ms)]
        self._base_offsets = [offset]
        fsync_directory(self.directory)
        self.size_bytes = 0

    def delete_prefix(self, count: int) -> None:
        """Delete the first `count` segments (retention: `log_retention` picks `count`); at least one must remain."""
        assert 0 < count < len(self._segments)
        doomed = self._segments[:count]
        del self._segments[:count]
        del self._base_offsets[:count]
        for segment in doomed:
            logger.info("%s: retention deletes %s", self.directory, segment.log_path)
            segment.delete()
            self.size_bytes -= segment.size

    def find_sealed_run(self, old: list[LogSegment]) -> int | None:
        """Where `old` sits as a run of consecutive sealed segments, or None if it no longer does."""
        first = next((number for number, segment in enumerate(self._segments) if segment is old[0]), None)
        if first is None or self._segments[first : first + len(old)] != old:
            return None
        if first + len(old) >= len(self._segments):
            return None  # never replace the active segment
        return first

    def swap_in(self, first: int, old: list[LogSegment], cleaned: LogSegment) -> None:
        """Replace the run `old` (at `first`) by `cleaned`, crash-safely through `.swap` names."""
        cleaned.rename_suffix(SWAP_FILE_SUFFIX)
        fsync_directory(self.directory)
        for segment in old:
            segment.delete()
        cleaned.rename_suffix("")
        fsync_directory(self.directory)
        self._segments[first : first + len(old)] = [cleaned]
        self._base_offsets[first : first + len(old)] = [cleaned.base_offset]
        self.size_bytes = sum(segment.size for segment in self._segments)

    def release_all(self) -> None:
        """Drop every segment's file descriptors and mappings without writing anything."""
        for segment in self._segments:
            segment.release()

    def close_all(self) -> None:
        """Close every segment (the active one writes its indexes and fsyncs)."""
        for segment in self._segments:
            segment.close()

    def clear(self) -> None:
        """Release every segment and forget them all (the log is being deleted)."""
        self.release_all()
        self._segments = []
        self._base_offsets = []
