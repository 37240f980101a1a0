"""The partition log's side of compaction: the cleaner checkpoint, the generation, snapshots and swaps.

Owns, for one partition directory, the `cleaner-offset-checkpoint` file (the first offset not yet
compacted; `log_loader` reads it on open), the generation that tells the cleaner the log changed
under it, and the two things the cleaner asks of the log: a snapshot of the sealed segments
(`cleanable_segments`, giving `SegmentSnapshot`s) and swapping a cleaned segment in for the run of
segments it replaces (`swap_in`, through `LogSegments.swap_in`).

It does not own the segments (`log_segments`), the closed/offline checks or taking the log offline
on a `KafkaStorageError` (`PartitionLog`, which calls this under its lock and keeps the checkpoint
in step with truncation and retention), nor the cleaning itself (`cleaner`).

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: not thread-safe. Only its `PartitionLog` calls it, always holding the log's lock.
"""

from __future__ import annotations

import dataclasses
import os

from freshet.storage.checkpoint import write_checkpoint
from freshet.storage.log_loader import CLEANER_CHECKPOINT_FILE_NAME, CLEANER_CHECKPOINT_VERSION
from freshet.storage.log_segments import LogSegments
from freshet.storage.segment import LogSegment


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


class CompactionState:
    """One log's cleaner checkpoint and generation. Not thread-safe (see the module docstring)."""

    def __init__(self, directory: str, checkpoint: int) -> None:
        """Start from `checkpoint`, the offset `log_loader` read (already within the log's bounds)."""
        assert checkpoint >= 0
        self._path = os.path.join(directory, CLEANER_CHECKPOINT_FILE_NAME)
        #: First offset not yet compacted (the start of the dirty section).
        self.checkpoint = checkpoint
        #: Bumped by every change that can invalidate a compaction in progress (truncation, deletion).
        self.generation = 0

    def write(self, offset: int) -> None:
        """Move the checkpoint to `offset` and write the checkpoint file (atomically).

        Raises:
            KafkaStorageError: the file could not be written (the checkpoint has moved in memory).
        """
        assert offset >= 0
        self.checkpoint = offset
        write_checkpoint(self._path, CLEANER_CHECKPOINT_VERSION, [(offset,)])

    def after_truncation(self, start_offset: int, end_offset: int) -> None:
        """The log was cut back or restarted: keep the checkpoint in [start_offset, end_offset], bump the generation."""
        if self.checkpoint > end_offset or self.checkpoint < start_offset:
            self.write(min(max(self.checkpoint, start_offset), end_offset))
        self.generation += 1

    def after_start_moved(self, start_offset: int) -> None:
        """Retention deleted leading segments: the checkpoint is at least `start_offset`; bump the generation."""
        if self.checkpoint < start_offset:
            self.write(start_offset)
        self.generation += 1

    def cleanable_segments(self, segments: LogSegments) -> tuple[list[SegmentSnapshot], int, int]:
        """A snapshot for the cleaner: (sealed segments in order, first dirty offset, generation)."""
        snapshots = []
        for number, segment in enumerate(segments[:-1]):
            snapshots.append(
                SegmentSnapshot(
                    segment,
                    segment.log_path,
                    segment.base_offset,
                    segments[number + 1].base_offset,
                    segment.next_offset,
                    segment.size,
                    segment.largest_timestamp,
                    segment.last_modified_ms,
                    segment.offset_index.entries,
                )
            )
        return snapshots, self.checkpoint, self.generation

    def swap_in(
        self, segments: LogSegments, old: list[LogSegment], cleaned: LogSegment, generation: int
    ) -> bool:
        """Swap `cleaned` in for the sealed run `old`, unless the log changed since `generation`.

        The swap renames the cleaned files to `.swap`, deletes the old segments and renames the
        `.swap` files to their live names; `log_loader` completes a swap a crash interrupted.

        Returns:
            Whether the swap happened (False: the log was truncated or had those segments deleted
            since `cleanable_segments`; the caller discards `cleaned`).

        Raises:
            KafkaStorageError: the files could not be renamed or deleted.
        """
        if generation != self.generation:
            return False
        first = segments.find_sealed_run(old)
        if first is None:
            return False
        segments.swap_in(first, old, cleaned)
        return True

    def advance(self, offset: int, generation: int, end_offset: int) -> bool:
        """Move the checkpoint forward to `offset` (at most `end_offset`) unless the log changed since `generation`.

        Returns:
            False if the log changed (nothing is written), True otherwise.

        Raises:
            KafkaStorageError: the checkpoint file could not be written.
        """
        if generation != self.generation:
            return False
        if offset > self.checkpoint:
            self.write(min(offset, end_offset))
        return True
