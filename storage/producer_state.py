"""Idempotent-producer state of a partition: duplicate and sequence checks, rebuilt from the log.

Owns, per producer id, the producer epoch and the metadata of its last 5 batches (first and last
sequence, first and last offset, max timestamp), read from batch headers only (Kafka's
ProducerStateManager without transactions). The leader uses it to

- answer a retried batch that is one of the last 5 with the offsets it already has (a duplicate),
- reject a sequence gap (OutOfOrderSequenceError) and a stale epoch (InvalidProducerEpochError).

The state must survive leader failover, so it lives with the log and is derived from it: every
replica applies the headers of the batches it appends, and on open the state is rebuilt from the
newest snapshot at or below the log end offset plus a replay of the batch headers after it.
Snapshots (`<20-digit offset>.snapshot`, the state after every batch below that offset) are written
at each segment roll and at clean close, so the replay covers about one segment.

Snapshot layout (big-endian; every field below the CRC is covered by it):

    =========================  ======  ============================================================
    field                      type    meaning
    =========================  ======  ============================================================
    version                    int16   1
    crc                        uint32  CRC-32C of everything after this field
    producer_count             int32
    per producer:
      producer_id              int64
      producer_epoch           int16
      last_timestamp           int64   max timestamp of its last batch (ms), for expiration
      batch_count              int8    1..5
      per batch:
        first_sequence         int32
        last_sequence          int32
        first_offset           int64
        last_offset            int64
        max_timestamp          int64
    =========================  ======  ============================================================

Imports: standard library, crcmod and `freshet.storage` (checkpoint, errors, record_batch).
Forbidden: grpc, wire types (freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: not thread-safe; guarded by the owning log's lock.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from typing import NamedTuple

import crcmod.predefined
from freshet.storage.checkpoint import write_atomically
from freshet.storage.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from freshet.storage.record_batch import NO_PRODUCER_EPOCH, NO_SEQUENCE, BatchHeader

logger = logging.getLogger(__name__)

#: How many recent batches per producer are remembered for duplicate detection (Kafka's 5, which
#: is also the client's max.in.flight.requests.per.connection limit for idempotence).
PRODUCER_BATCHES_MAX = 5
SNAPSHOT_FILE_SUFFIX = ".snapshot"
_SNAPSHOT_VERSION = 1
_INT32_MAX = 2**31 - 1

_SNAPSHOT_HEADER = struct.Struct(
    ">"
    "h"  # version
    "I"  # crc: CRC-32C of the bytes after this field
    "i"  # producer_count
)
_SNAPSHOT_PRODUCER = struct.Struct(
    ">"
    "q"  # producer_id
    "h"  # producer_epoch
    "q"  # last_timestamp: max timestamp of the producer's last batch, ms
    "b"  # batch_count: 1..PRODUCER_BATCHES_MAX
)
_SNAPSHOT_BATCH = struct.Struct(
    ">"
    "i"  # first_sequence
    "i"  # last_sequence
    "q"  # first_offset
    "q"  # last_offset
    "q"  # max_timestamp
)
_crc32c = crcmod.predefined.mkCrcFun("crc-32c")


class BatchMetadata(NamedTuple):
    """What is remembered of one idempotent batch."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    max_timestamp: int


class ProducerStateEntry:
    """One producer's epoch and last batches. Not thread-safe."""

    __slots__ = ("producer_id", "producer_epoch", "batches", "last_timestamp")

    def __init__(
        self, producer_id: int, producer_epoch: int, batches: list[BatchMetadata], last_timestamp: int
    ) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.batches = batches
        self.last_timestamp = last_timestamp

    def copy(self) -> ProducerStateEntry:
        return ProducerStateEntry(
            self.producer_id, self.producer_epoch, list(self.batches), self.last_timestamp
        )

    @property
    def last_sequence(self) -> int:
        """Last sequence written, NO_SEQUENCE if no batch is remembered."""
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        """The remembered batch that `header` repeats (same epoch, same sequence range), if any."""
        if header.producer_epoch != self.producer_epoch:
            return None
        first, last = header.base_sequence, header.last_sequence
        for batch in self.batches:
            if batch.first_sequence == first and batch.last_sequence == last:
                return batch
        return None

    def add_batch(self, producer_epoch: int, batch: BatchMetadata) -> None:
        """Remember `batch`; a new epoch forgets the batches of the old one."""
        if producer_epoch != self.producer_epoch:
            self.producer_epoch = producer_epoch
            self.batches = []
        self.batches.append(batch)
        if len(self.batches) > PRODUCER_BATCHES_MAX:
            del self.batches[0]
        self.last_timestamp = batch.max_timestamp

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProducerStateEntry):
            return NotImplemented
        return (self.producer_id, self.producer_epoch, self.batches, self.last_timestamp) == (
            other.producer_id,
            other.producer_epoch,
            other.batches,
            other.last_timestamp,
        )

    def __repr__(self) -> str:
        return f"ProducerStateEntry({self.producer_id}, epoch={self.producer_epoch}, batches={self.batches})"


def _is_in_sequence(last_sequence: int, next_sequence: int) -> bool:
    """Whether `next_sequence` directly follows `last_sequence`, wrapping at int32 max (Kafka inSequence)."""
    return next_sequence == last_sequence + 1 or (next_sequence == 0 and last_sequence == _INT32_MAX)


class ProducerAppend:
    """The producer-state changes of one append, applied only if the append succeeds (Kafka's
    ProducerAppendInfo). Not thread-safe."""

    def __init__(self, manager: ProducerStateManager, *, is_validated: bool) -> None:
        self._manager = manager
        self._is_validated = is_validated
        self.updated: dict[int, ProducerStateEntry] = {}

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        """The already-written batch that `header` repeats, looking at the committed state only."""
        entry = self._manager.entries.get(header.producer_id)
        return entry.find_duplicate(header) if entry is not None else None

    def append(self, header: BatchHeader, first_offset: int, last_offset: int) -> None:
        """Check (when validating) and record one idempotent batch placed at [first_offset, last_offset].

        Raises:
            InvalidProducerEpochError: the batch's epoch is older than the producer's current one.
            OutOfOrderSequenceError: the batch's first sequence does not follow the last one.
        """
        assert header.producer_id >= 0
        entry = self.updated.get(header.producer_id)
        if entry is None:
            current = self._manager.entries.get(header.producer_id)
            entry = (
                current.copy()
                if current is not None
                else ProducerStateEntry(header.producer_id, NO_PRODUCER_EPOCH, [], header.max_timestamp)
            )
            self.updated[header.producer_id] = entry
        if self._is_validated:
            self._check(entry, header)
        entry.add_batch(
            header.producer_epoch,
            BatchMetadata(
                header.base_sequence, header.last_sequence, first_offset, last_offset, header.max_timestamp
            ),
        )

    @staticmethod
    def _check(entry: ProducerStateEntry, header: BatchHeader) -> None:
        epoch = header.producer_epoch
        if entry.producer_epoch != NO_PRODUCER_EPOCH and epoch < entry.producer_epoch:
            raise InvalidProducerEpochError(header.producer_id, epoch, entry.producer_epoch)
        first = header.base_sequence
        if entry.producer_epoch == NO_PRODUCER_EPOCH or not entry.batches:
            # Unknown producer (new, or expired): accept any sequence, as Kafka does since KIP-360.
            return
        if epoch != entry.producer_epoch:
            if first != 0:
                raise OutOfOrderSequenceError(header.producer_id, epoch, first, entry.last_sequence)
            return
        if not _is_in_sequence(entry.last_sequence, first):
            raise OutOfOrderSequenceError(header.producer_id, epoch, first, entry.last_sequence)


class ProducerStateManager:
    """Per-producer epochs and recent batches of one partition, with snapshots. Not thread-safe."""

    def __init__(self, directory: str, producer_id_expiration_ms: int) -> None:
        self.directory = directory
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.entries: dict[int, ProducerStateEntry] = {}
        #: The log offset up to which (exclusive) the state reflects the log.
        self.map_end_offset = 0

    # ---------------------------------------------------------------------------------------------
    # Appends.

    def begin_append(self, *, is_validated: bool) -> ProducerAppend:
        """Start collecting the changes of one append; validate sequences and epochs when asked (leader)."""
        return ProducerAppend(self, is_validated=is_validated)

    def commit(self, append: ProducerAppend, end_offset: int) -> None:
        """Apply the changes of a successful append that ended the log at `end_offset`."""
        self.entries.update(append.updated)
        self.map_end_offset = end_offset

    def apply_headers(self, headers: Iterable[BatchHeader]) -> None:
        """Replay batches already in the log (no validation), in offset order."""
        append: ProducerAppend | None = None
        end_offset = self.map_end_offset
        for header in headers:
            if header.producer_id >= 0:
                if append is None:
                    append = self.begin_append(is_validated=False)
                append.append(header, header.base_offset, header.base_offset + header.last_offset_delta)
            end_offset = header.base_offset + header.last_offset_delta + 1
        if append is not None:
            self.entries.update(append.updated)
        self.map_end_offset = max(end_offset, self.map_end_offset)

    def remove_expired_producers(self, now_ms: int) -> int:
        """Forget producers whose last batch is older than producer.id.expiration.ms; return how many."""
        expiration_ms = self.producer_id_expiration_ms
        expired = [
            producer_id
            for producer_id, entry in self.entries.items()
            if now_ms - entry.last_timestamp >= expiration_ms  # Kafka's isProducerExpired
        ]
        for producer_id in expired:
            del self.entries[producer_id]
        return len(expired)

    def reset(self, offset: int) -> None:
        """Forget everything; the state now reflects an empty log ending at `offset`."""
        self.entries = {}
        self.map_end_offset = offset

    # ---------------------------------------------------------------------------------------------
    # Snapshots.

    def snapshot_path(self, offset: int) -> str:
        return os.path.join(self.directory, f"{offset:020d}{SNAPSHOT_FILE_SUFFIX}")

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files in the directory, ascending."""
        offsets = []
        for name in os.listdir(self.directory):
            stem, _, suffix = name.partition(".")
            if "." + suffix == SNAPSHOT_FILE_SUFFIX and len(stem) == 20 and stem.isdigit():
                offsets.append(int(stem))
        return sorted(offsets)

    def take_snapshot(self) -> None:
        """Write the current state as `<map_end_offset>.snapshot` (atomically)."""
        write_atomically(self.snapshot_path(self.map_end_offset), self.encode_snapshot())

    def encode_snapshot(self) -> bytes:
        body = bytearray()
        for producer_id in sorted(self.entries):
            entry = self.entries[producer_id]
            if not entry.batches:
                continue
            body += _SNAPSHOT_PRODUCER.pack(
                producer_id, entry.producer_epoch, entry.last_timestamp, len(entry.batches)
            )
            for batch in entry.batches:
                body += _SNAPSHOT_BATCH.pack(*batch)
        count = sum(1 for entry in self.entries.values() if entry.batches)
        count_bytes = struct.pack(">i", count)
        crc = _crc32c(count_bytes + body)
        return _SNAPSHOT_HEADER.pack(_SNAPSHOT_VERSION, crc, count) + bytes(body)

    @staticmethod
    def decode_snapshot(data: bytes) -> dict[int, ProducerStateEntry]:
        """Parse snapshot bytes.

        Raises:
            ValueError: wrong version, CRC mismatch, or a layout that does not add up.
        """
        if len(data) < _SNAPSHOT_HEADER.size:
            raise ValueError("snapshot shorter than its header")
        version, crc, count = _SNAPSHOT_HEADER.unpack_from(data, 0)
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {version}")
        if _crc32c(memoryview(data)[6:]) != crc:
            raise ValueError("snapshot CRC mismatch")
        entries: dict[int, ProducerStateEntry] = {}
        position = _SNAPSHOT_HEADER.size
        for _ in range(count):
            if position + _SNAPSHOT_PRODUCER.size > len(data):
                raise ValueError("snapshot ends inside a producer")
            producer_id, epoch, last_timestamp, batch_count = _SNAPSHOT_PRODUCER.unpack_from(data, position)
            position += _SNAPSHOT_PRODUCER.size
            if not 1 <= batch_count <= PRODUCER_BATCHES_MAX:
                raise ValueError(f"snapshot producer {producer_id} has {batch_count} batches")
            if position + batch_count * _SNAPSHOT_BATCH.size > len(data):
                raise ValueError("snapshot ends inside a batch")
            batches = [
                BatchMetadata(*_SNAPSHOT_BATCH.unpack_from(data, position + number * _SNAPSHOT_BATCH.size))
                for number in range(batch_count)
            ]
            position += batch_count * _SNAPSHOT_BATCH.size
            entries[producer_id] = ProducerStateEntry(producer_id, epoch, batches, last_timestamp)
        if position != len(data):
            raise ValueError(f"{len(data) - position} stray bytes after the snapshot")
        return entries

    def load_latest_snapshot(self, max_offset: int) -> int | None:
        """Load the newest readable snapshot at or below `max_offset`; unreadable ones are deleted.

        Returns:
            The snapshot's offset (the state now reflects the log below it), or None if none loaded
            (the state is then empty).
        """
        for offset in reversed(self.snapshot_offsets()):
            if offset > max_offset:
                continue
            path = self.snapshot_path(offset)
            try:
                with open(path, "rb") as file:
                    entries = self.decode_snapshot(file.read())
            except (OSError, ValueError) as error:
                logger.warning("deleting unreadable producer snapshot %s: %s", path, error)
                self._delete_snapshot(offset)
                continue
            self.entries = entries
            self.map_end_offset = offset
            return offset
        self.entries = {}
        return None

    def delete_snapshots_after(self, offset: int) -> None:
        """Delete snapshots of offsets > `offset` (the log was truncated to `offset`)."""
        for snapshot_offset in self.snapshot_offsets():
            if snapshot_offset > offset:
                self._delete_snapshot(snapshot_offset)

    def delete_snapshots_before(self, offset: int) -> None:
        """Delete snapshots of offsets < `offset` (their segments were deleted)."""
        for snapshot_offset in self.snapshot_offsets():
            if snapshot_offset < offset:
                self._delete_snapshot(snapshot_offset)

    def _delete_snapshot(self, offset: int) -> None:
        try:
            os.unlink(self.snapshot_path(offset))
        except FileNotFoundError:
            pass
