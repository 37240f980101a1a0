"""One log read per pushed range, shared by every follower session of a leader.

Owns the leader's recent push reads: with replication factor 3 an append wakes two follower
sessions (server/replication/leader_sessions.py), which on the same turn of the event loop ask the
log for the same records from the same offset. The first read goes to the log (one `pread` from
the page cache, as Kafka reads its segment files); the others get the same `LogReadResult`
object, so each byte leaves the file once however many followers push it.

A kept read is reused only when the answer a fresh read would give cannot differ in content:
same log object, same leader epoch (a leader's log only appends within its epoch; truncation
happens on becoming a follower, which ends the epoch), same start offset, the log end and log
start offsets unchanged since the read, and records that fit the asking session's byte budget
(any whole-batch prefix of the log is a valid push; when two budgets differ a fresh read is
taken instead). An entry is dropped once every other session pushing the partition has taken it,
when a later read of the partition replaces it, and oldest first when the entries together pass
`SHARED_READS_BYTES_MAX` (one stream window), so the memory held stays bounded however many
partitions a broker leads.

Imports: freshet.server (limits, replication.partition), freshet.storage's read result.
Thread-safety: not thread-safe; used on the node's event loop only.
"""

from __future__ import annotations

from typing import NamedTuple

from freshet.server import limits
from freshet.server.replication.partition import Partition
from freshet.storage.log import LogReadResult, PartitionLog

#: Bytes of kept reads across every partition: beyond this the oldest entries are dropped.
SHARED_READS_BYTES_MAX = limits.REPLICATION_STREAM_WINDOW_BYTES


class _SharedRead(NamedTuple):
    log: PartitionLog
    leader_epoch: int
    offset: int
    max_bytes: int
    result: LogReadResult


class SharedPushReads:
    """The recent push reads of the partitions a broker leads (module docstring). Not thread-safe (loop)."""

    def __init__(self, bytes_max: int = SHARED_READS_BYTES_MAX) -> None:
        self.bytes_max = bytes_max
        self._entries: dict[tuple[str, int], tuple[_SharedRead, int]] = {}
        """(topic, partition) -> (the read, how many other sessions may still take it); oldest first."""
        self.bytes_kept = 0
        self.reads = 0
        """Reads that went to the log."""
        self.shared = 0
        """Reads answered from a kept read."""

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, partition: Partition, offset: int, max_bytes: int) -> LogReadResult:
        """`partition.log.read(offset, max_bytes)`, or the same answer kept from another session's read.

        Raises:
            StorageError: the read failed (OffsetOutOfRangeError: `offset` is outside the log).
        """
        key = partition.key
        log = partition.log
        kept = self._entries.get(key)
        if kept is not None:
            entry, users_left = kept
            result = entry.result
            if (
                entry.log is log
                and entry.leader_epoch == partition.leader_epoch
                and entry.offset == offset
                and result.log_end_offset == log.log_end_offset
                and result.log_start_offset == log.log_start_offset
                and (len(result.records) <= max_bytes or entry.max_bytes == max_bytes)
            ):
                self.shared += 1
                if users_left <= 1:
                    self._remove(key)
                else:
                    self._entries[key] = (entry, users_left - 1)
                return result
            self._remove(key)
        result = log.read(offset, max_bytes)
        self.reads += 1
        others = len(partition.sessions) - 1
        if result.records and others > 0:
            self._entries[key] = (_SharedRead(log, partition.leader_epoch, offset, max_bytes, result), others)
            self.bytes_kept += len(result.records)
            self._evict()
        return result

    def _remove(self, key: tuple[str, int]) -> None:
        entry, _ = self._entries.pop(key)
        self.bytes_kept -= len(entry.result.records)

    def _evict(self) -> None:
        while self.bytes_kept > self.bytes_max and self._entries:
            self._remove(next(iter(self._entries)))
