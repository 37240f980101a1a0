"""Domain errors of the storage layer.

Owns every exception `freshet.storage` raises for operating errors: bad input (a corrupt or invalid
batch from a producer), requests outside the log (offsets out of range, follower offset gaps),
idempotent-producer violations, and I/O failures. Each error carries the data a caller needs to act
(offsets, positions, sizes) and knows nothing of gRPC: `server/status.py` maps them to wire codes.

Broken invariants are not errors: they are `assert`s and crash the process (STYLE.md section 3).

Tree::

    StorageError
    |-- CorruptRecordError            bytes fail framing or CRC checks (DATA_LOSS / CORRUPT_RECORD)
    |-- InvalidRecordError            well-formed bytes that break a rule (INVALID_ARGUMENT)
    |-- RecordTooLargeError           a batch above max.message.bytes, or decompressing past a limit
    |-- UnsupportedCompressionError   an unknown compression codec id (5-7)
    |-- OffsetOutOfRangeError         read/lookup outside [log_start_offset, log_end_offset]
    |-- LogOffsetGapError             follower append whose offsets do not continue the log
    |-- OutOfOrderSequenceError       idempotent producer skipped a sequence number
    |-- InvalidProducerEpochError     idempotent producer with a stale epoch (fenced)
    |-- CorruptCheckpointError        a checkpoint file that does not parse
    |-- CorruptIndexError             an index file that fails its sanity check (rebuilt, not raised)
    |-- InconsistentTopicIdError      a partition directory that belongs to another topic id
    |-- LogClosedError                the log was closed or deleted
    `-- KafkaStorageError             the disk failed (an OSError underneath)
        `-- LogDirFullError           the log directory is (nearly) full; nothing was written

Imports: standard library only. This module is shared with the client SDK, which imports
`record_batch`, `compression` and `errors` and nothing else from storage, so it must import no other
storage module. Forbidden: grpc, wire types (freshet.v1), metadata, server, client, cli (import-
linter contract).

Thread-safety: exception classes are immutable after construction.
"""

from __future__ import annotations

import errno


class StorageError(Exception):
    """Base class of every error raised by `freshet.storage`."""


class CorruptRecordError(StorageError):
    """Bytes that do not form a valid record batch: bad framing, bad CRC, truncated or garbled records.

    Attributes:
        reason: what check failed, in words.
        position: byte position of the offending batch in the buffer or file, or None if unknown.
        path: the file the bytes came from, or None for an in-memory buffer.
    """

    def __init__(self, reason: str, *, position: int | None = None, path: str | None = None) -> None:
        self.reason = reason
        self.position = position
        self.path = path
        where = ""
        if path is not None:
            where += f" in {path}"
        if position is not None:
            where += f" at position {position}"
        super().__init__(f"corrupt record batch{where}: {reason}")


class InvalidRecordError(StorageError):
    """A well-formed batch that breaks a rule of the log (bad counts, control batch from a client, ...).

    Attributes:
        reason: the rule that was broken, in words.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid record batch: {reason}")


class RecordTooLargeError(StorageError):
    """A batch (or an append, or decompressed records) larger than the configured maximum.

    Attributes:
        size_bytes: the size that was found.
        max_bytes: the limit it exceeded.
        what: what was measured ("batch", "append", "decompressed records").
    """

    def __init__(self, size_bytes: int, max_bytes: int, what: str = "batch") -> None:
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes
        self.what = what
        super().__init__(f"{what} of {size_bytes} bytes is larger than the maximum of {max_bytes} bytes")


class UnsupportedCompressionError(StorageError):
    """A batch compressed with a codec this build cannot decode or encode (an id Kafka does not define).

    Attributes:
        codec_id: the compression codec id from the batch attributes (bits 0-2).
    """

    def __init__(self, codec_id: int, detail: str = "") -> None:
        self.codec_id = codec_id
        names = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
        name = names.get(codec_id, f"unknown codec id {codec_id}")
        message = f"compression {name} is not supported"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class OffsetOutOfRangeError(StorageError):
    """An offset outside the readable range [log_start_offset, log_end_offset].

    Attributes:
        offset: the offset that was asked for.
        log_start_offset: the first readable offset at the time of the request.
        log_end_offset: the next offset to be appended at the time of the request.
    """

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}] of the log")


class LogOffsetGapError(StorageError):
    """A follower append whose first offset does not continue the log (overlap, or gap where not allowed).

    Attributes:
        expected_offset: the log end offset the append had to start at (or after, for compacted logs).
        received_offset: the base offset of the offending batch.
    """

    def __init__(self, expected_offset: int, received_offset: int, reason: str) -> None:
        self.expected_offset = expected_offset
        self.received_offset = received_offset
        self.reason = reason
        super().__init__(
            f"follower append at offset {received_offset} does not continue the log "
            f"(log end offset {expected_offset}): {reason}"
        )


class OutOfOrderSequenceError(StorageError):
    """An idempotent producer sent a batch whose first sequence does not follow its last one.

    Attributes:
        producer_id: the producer.
        producer_epoch: the epoch of the batch.
        first_sequence: the base sequence of the batch.
        last_sequence: the last sequence the log holds for that producer, or -1 if none.
    """

    def __init__(
        self, producer_id: int, producer_epoch: int, first_sequence: int, last_sequence: int
    ) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.first_sequence = first_sequence
        self.last_sequence = last_sequence
        super().__init__(
            f"out of order sequence for producer {producer_id} epoch {producer_epoch}: "
            f"got first sequence {first_sequence} after last sequence {last_sequence}"
        )


class InvalidProducerEpochError(StorageError):
    """An idempotent producer wrote with an epoch older than the one the log has seen (it is fenced).

    Attributes:
        producer_id: the producer.
        producer_epoch: the epoch in the batch.
        current_epoch: the newest epoch the log has seen for that producer.
    """

    def __init__(self, producer_id: int, producer_epoch: int, current_epoch: int) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.current_epoch = current_epoch
        super().__init__(
            f"producer {producer_id} wrote with epoch {producer_epoch}, older than the current epoch {current_epoch}"
        )


class CorruptCheckpointError(StorageError):
    """A checkpoint file that does not parse.

    Attributes:
        path: the file.
        line_number: 1-based line that failed (0 when the problem is the file as a whole).
        reason: what was wrong.
    """

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"corrupt checkpoint file {path} at line {line_number}: {reason}")


class CorruptIndexError(StorageError):
    """An index file that fails its sanity check; the segment rebuilds it from its log file.

    Attributes:
        path: the index file.
        reason: what the check found.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"corrupt index {path}: {reason}")


class InconsistentTopicIdError(StorageError):
    """A partition directory whose partition.metadata names a different topic id than expected.

    Happens when a topic was deleted and re-created with the same name while a broker held the old
    log; the old data must not be served as the new topic's.

    Attributes:
        path: the partition directory.
        expected_topic_id: the id the caller asked for.
        found_topic_id: the id stored in the directory.
    """

    def __init__(self, path: str, expected_topic_id: str, found_topic_id: str) -> None:
        self.path = path
        self.expected_topic_id = expected_topic_id
        self.found_topic_id = found_topic_id
        super().__init__(f"log {path} belongs to topic id {found_topic_id}, not {expected_topic_id}")


class LogClosedError(StorageError):
    """An operation on a log that was closed or deleted.

    Attributes:
        path: the log directory.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"log {path} is closed")


class KafkaStorageError(StorageError):
    """The disk failed under the log (an OSError while reading or writing); the log goes offline.

    Named as Kafka's KAFKA_STORAGE_ERROR so the mapping to the wire code is obvious.

    Attributes:
        path: the file or directory involved.
        operation: what the log was doing ("append", "read", "flush", ...).
    """

    def __init__(self, path: str, operation: str, cause: BaseException | None = None) -> None:
        self.path = path
        self.operation = operation
        detail = f": {cause}" if cause is not None else ""
        super().__init__(f"storage failure during {operation} on {path}{detail}")


class LogDirFullError(KafkaStorageError):
    """The log directory has no room: free space is below the low-water mark (refused before any
    write), or a write hit ENOSPC and was rolled back. Unlike its parent, the log stays online:
    nothing was written, so a retry succeeds once space is back.

    Attributes:
        path: the log directory (or the file whose write hit ENOSPC).
        operation: what was refused ("produce", "append", "write checkpoint", ...).
        free_bytes: free bytes of the filesystem when refused (-1 if unknown).
        low_water_bytes: the low-water mark it was under (-1 for an ENOSPC).
    """

    def __init__(
        self, path: str, operation: str, free_bytes: int = -1, low_water_bytes: int = -1,
        cause: BaseException | None = None,
    ) -> None:
        self.free_bytes = free_bytes
        self.low_water_bytes = low_water_bytes
        super().__init__(path, operation, cause)
        if low_water_bytes >= 0:
            message = (
                f"log directory {path} is full: {free_bytes} bytes free, below the low-water mark of "
                f"{low_water_bytes} bytes; {operation} is refused until space is freed (retriable)"
            )
        else:
            message = f"no space left on device writing {path} during {operation}; nothing was written (retriable)"
        self.args = (message,)


def is_disk_full(error: BaseException) -> bool:
    """Whether an OSError means the filesystem is out of space (ENOSPC, or EDQUOT: a quota)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
