"""The leader-epoch cache of a partition: which leader epoch started at which offset.

Owns `leader-epoch-checkpoint` (Kafka's LeaderEpochFileCache): an ordered list of
(leader_epoch, start_offset) entries, strictly increasing in both fields, persisted atomically on
every change. It answers OffsetsForLeaderEpoch (KIP-101/KIP-279): a follower that became a follower
asks the leader for the end offset of its latest epoch and truncates any divergent suffix.

Durability (as Kafka since KAFKA-15046): `assign`, which runs on the append path (a new leader,
every partition's first follower append of an epoch), writes the file without fsync; `sync`
fsyncs it, and the log calls it before every fsync of its own (roll, flush, close). So after a
machine crash the file is exact for every segment that was fsynced, and the unflushed tail is
re-read by recovery, which assigns the epochs of its batch headers again (log_loader.py, as
Kafka's LogSegment.recover). Truncations and rebuilds still write with fsync. Two fsyncs per
assign were, with thousands of partitions, seconds of a broker's event loop after a topic was
created or a broker failed.

Imports: standard library and `freshet.storage` (checkpoint, errors). Forbidden: grpc, wire types
(freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: not thread-safe; guarded by the owning log's lock.
"""

from __future__ import annotations

import logging
import os

from freshet.storage.checkpoint import parse_int_fields, read_checkpoint, write_checkpoint
from freshet.storage.errors import CorruptCheckpointError, KafkaStorageError

logger = logging.getLogger(__name__)

LEADER_EPOCH_CHECKPOINT_FILE_NAME = "leader-epoch-checkpoint"
_CHECKPOINT_VERSION = 0
#: Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    """Leader epoch -> start offset, persisted in `leader-epoch-checkpoint`. Not thread-safe."""

    def __init__(self, directory: str, entries: list[tuple[int, int]] | None = None) -> None:
        """A cache backed by `<directory>/leader-epoch-checkpoint` holding `entries` (not yet written)."""
        self.path = os.path.join(directory, LEADER_EPOCH_CHECKPOINT_FILE_NAME)
        self._entries: list[tuple[int, int]] = list(entries or [])
        self._is_synced = True      # False: the file holds the entries but was not fsynced
        self._check_invariant()

    @classmethod
    def load(cls, directory: str) -> LeaderEpochCache:
        """Read the checkpoint file; an absent file gives an empty cache.

        Raises:
            CorruptCheckpointError: the file does not parse or its entries are not increasing (the
                caller rebuilds the cache from batch headers).
        """
        cache = cls(directory)
        entries = read_checkpoint(cache.path, _CHECKPOINT_VERSION, parse_int_fields(2))
        if entries is None:
            return cache
        previous_epoch = previous_start = -1
        for line_number, (epoch, start) in enumerate(entries, start=3):
            if epoch < 0 or start < 0 or epoch <= previous_epoch or start <= previous_start:
                raise CorruptCheckpointError(
                    cache.path, line_number, f"entry ({epoch}, {start}) is out of order"
                )
            previous_epoch, previous_start = epoch, start
        cache._entries = [(epoch, start) for epoch, start in entries]
        return cache

    def _check_invariant(self) -> None:
        # Invariant: epochs and start offsets both strictly increase.
        for (epoch, start), (next_epoch, next_start) in zip(self._entries, self._entries[1:], strict=False):
            assert epoch < next_epoch
            assert start < next_start

    def flush(self, is_synced: bool = True) -> None:
        """Write the entries to the checkpoint file atomically (fsynced unless `is_synced` is False)."""
        self._check_invariant()
        write_checkpoint(self.path, _CHECKPOINT_VERSION, self._entries, is_synced)
        self._is_synced = is_synced

    def sync(self) -> None:
        """fsync what `assign` wrote without (the log calls this before fsyncing its segments)."""
        if not self._is_synced:
            self.flush()

    @property
    def entries(self) -> list[tuple[int, int]]:
        """A copy of the (epoch, start_offset) entries, oldest first."""
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, or UNDEFINED_EPOCH (-1) when the cache is empty."""
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset` (Kafka's LeaderEpochFileCache.assign).

        A no-op when `epoch` is already the latest and starts no later. Otherwise entries with an
        epoch >= `epoch` or a start offset >= `start_offset` are removed first (they belong to a
        divergent history), the entry is appended, and the file is rewritten.

        Returns:
            Whether the cache changed.
        """
        before = list(self._entries)
        if self.assign_in_memory(epoch, start_offset):
            try:
                self.flush(is_synced=False)     # see the module docstring
            except KafkaStorageError:
                self._entries = before  # memory matches the file: a retry assigns and writes again
                raise
            return True
        return False

    def assign_in_memory(self, epoch: int, start_offset: int) -> bool:
        """`assign` without writing the file (for rebuilding the cache; call `flush` after)."""
        assert epoch >= 0
        assert start_offset >= 0
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if epoch == last_epoch and start_offset >= last_start:
                return False
        removed = [entry for entry in self._entries if entry[0] >= epoch or entry[1] >= start_offset]
        if removed and (len(removed) > 1 or removed[0][1] != start_offset):
            logger.warning(
                "%s: epoch %d at offset %d replaces later entries %s", self.path, epoch, start_offset, removed
            )
        self._entries = [entry for entry in self._entries if entry[0] < epoch and entry[1] < start_offset]
        self._entries.append((epoch, start_offset))
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries that start at or after `end_offset` (the log was truncated to it)."""
        kept = [entry for entry in self._entries if entry[1] < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop entries before the new log start offset, keeping the epoch in force at it.

        The last entry that starts at or before `start_offset` is kept with its start moved to
        `start_offset` (Kafka's truncateFromStart).
        """
        before = [entry for entry in self._entries if entry[1] <= start_offset]
        if not before:
            return
        kept = [(before[-1][0], start_offset)] + [entry for entry in self._entries if entry[1] > start_offset]
        if kept != self._entries:
            self._entries = kept
            self.flush()

    def clear(self) -> None:
        """Remove every entry (the log was emptied)."""
        self._entries = []
        self.flush()

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's endOffsetFor: the answer to OffsetsForLeaderEpoch for `requested_epoch`.

        Returns:
            - (-1, -1) when `requested_epoch` is -1, the cache is empty, or `requested_epoch` is
              newer than every epoch in the cache (and not the latest one);
            - (requested_epoch, log_end_offset) when it is the latest epoch;
            - otherwise (the largest epoch <= requested, the start offset of the next epoch), or
              (requested_epoch, start of the first epoch) when it is older than every epoch.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self._entries[-1][0]:
            return requested_epoch, log_end_offset
        higher = next((entry for entry in self._entries if entry[0] > requested_epoch), None)
        if higher is None:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        floor = None
        for entry in self._entries:
            if entry[0] <= requested_epoch:
                floor = entry
        if floor is None:
            return requested_epoch, higher[1]
        return floor[0], higher[1]

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch in force at `offset`, or UNDEFINED_EPOCH if `offset` precedes every entry."""
        epoch = UNDEFINED_EPOCH
        for entry_epoch, start in self._entries:
            if start > offset:
                break
            epoch = entry_epoch
        return epoch
