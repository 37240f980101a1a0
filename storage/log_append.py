"""Validating and placing the batches of one append, before anything is written.

Owns the checks and arithmetic of the two append paths, as functions over the request's bytes and
batch headers (no files, no log state beyond what is passed in):

- leader: `validate_leader_batches` (framing, CRC, size, counts, codec, no control/transactional
  batches, idempotent fields present), `recompress_leader_batches` (the topic's compression.type,
  when it names a codec other than a batch's), `plan_leader_append` (assign offsets, run the idempotence
  checks through a `ProducerAppend`, find duplicates) and `stamp_batches` (base offset, leader epoch
  and, for LogAppendTime, the append time);
- follower: `plan_follower_append` (framing, optional CRC, offsets continuing the log, epoch changes).

Both return an `AppendPlan`; `PartitionLog` writes it through `LogSegments` and then applies the
bookkeeping (leader-epoch cache, producer state, flush policy). Only batch headers are read: one
header parse per batch, never a per-record loop, and the data is neither copied nor re-encoded,
except when compression.type names a codec a batch is not in (then that batch is decoded and
re-encoded once, as Kafka's LogValidator does); compression.type=producer stays zero-decode.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: the functions keep no state; `PartitionLog` calls them under its lock because the
`ProducerAppend` and the buffers they are given are the log's.
"""

from __future__ import annotations

from typing import NamedTuple

from freshet.storage.compression import SUPPORTED_COMPRESSION_TYPES, CompressionType
from freshet.storage.config import COMPRESSION_TYPE_PRODUCER
from freshet.storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogOffsetGapError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)
from freshet.storage.producer_state import BatchMetadata, ProducerAppend
from freshet.storage.record_batch import (
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    BatchHeader,
    parse_header,
    recompress_batch,
    stamp_batch,
    stamp_log_append_time,
)
from freshet.storage.record_batch import verify_crc as verify_batch_crc

#: Per batch: (position in the data, size in bytes, base offset, next offset, max timestamp).
Placement = tuple[int, int, int, int, int]


class AppendPlan(NamedTuple):
    """Where the batches of one append go and what they add up to.

    Attributes:
        placements: one Placement per batch, in order (what `LogSegment.append` takes).
        end_offset: one past the last offset appended.
        record_count: records appended (from the batch headers).
        max_timestamp: largest batch max timestamp (the append time for LogAppendTime).
        offset_of_max_timestamp: base offset of the batch holding `max_timestamp`.
        epochs: follower only: (leader epoch, start offset) where the batches' epoch changes.
        headers: follower only: every batch header, for producer state.
    """

    placements: list[Placement]
    end_offset: int
    record_count: int
    max_timestamp: int
    offset_of_max_timestamp: int
    epochs: list[tuple[int, int]]
    headers: list[BatchHeader]


def validate_leader_batches(view: memoryview, max_message_bytes: int) -> list[tuple[int, BatchHeader]]:
    """(position, header) of each producer batch in `view`, after checking every one of them.

    Raises:
        CorruptRecordError, RecordTooLargeError, InvalidRecordError, UnsupportedCompressionError:
            as `PartitionLog.append_as_leader` documents.
    """
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


def recompress_leader_batches(
    view: memoryview, batches: list[tuple[int, BatchHeader]], compression_type: str, max_message_bytes: int
) -> tuple[bytearray, list[tuple[int, BatchHeader]]] | None:
    """Re-encode the batches whose codec is not the topic's compression.type; None when none is.

    Control batches keep their codec, as in Kafka. Each re-encoded batch keeps its records and
    header fields (`recompress_batch`); the others are copied as they are.

    Args:
        view: the validated producer batches.
        batches: their (position, header), from `validate_leader_batches`.
        compression_type: the topic's compression.type ("producer" returns None at once).
        max_message_bytes: the topic's max.message.bytes, checked again on the re-encoded batches
            (Kafka's UnifiedLog.append does the same when the size "maybe changed").

    Returns:
        (new buffer, (position, header) of each batch in it), or None when nothing changes.

    Raises:
        CorruptRecordError: records that do not decode.
        RecordTooLargeError: a re-encoded batch above `max_message_bytes`, or a batch whose
            records decompress past the decompression bound.
    """
    if compression_type == COMPRESSION_TYPE_PRODUCER:
        return None
    target = CompressionType.NONE if compression_type == "uncompressed" else CompressionType.from_name(compression_type)
    if all(header.is_control or header.compression == target for _, header in batches):
        return None
    buffer = bytearray()
    placed: list[tuple[int, BatchHeader]] = []
    for position, header in batches:
        original = view[position : position + header.batch_length + LOG_OVERHEAD]
        if header.is_control or header.compression == target:
            placed.append((len(buffer), header))
            buffer += original
            continue
        batch = recompress_batch(original, target)
        if len(batch) > max_message_bytes:
            raise RecordTooLargeError(len(batch), max_message_bytes, what=f"batch recompressed as {compression_type}")
        placed.append((len(buffer), parse_header(batch)))
        buffer += batch
    return buffer, placed


def plan_leader_append(
    batches: list[tuple[int, BatchHeader]],
    first_offset: int,
    producer_append: ProducerAppend,
    now_ms: int,
    is_log_append_time: bool,
) -> AppendPlan | BatchMetadata:
    """Assign offsets from `first_offset` and record idempotent batches in `producer_append`.

    Returns:
        The plan, or the original batch's metadata when a batch repeats one of its producer's last
        5 batches (then nothing may be written).

    Raises:
        OutOfOrderSequenceError, InvalidProducerEpochError: idempotence violations.
    """
    placements: list[Placement] = []
    offset = first_offset
    record_count = 0
    max_timestamp = NO_TIMESTAMP
    offset_of_max = first_offset
    for position, header in batches:
        next_offset = offset + header.last_offset_delta + 1
        if header.producer_id >= 0:
            duplicate = producer_append.find_duplicate(header)
            if duplicate is not None:
                return duplicate
            producer_append.append(header, offset, next_offset - 1)
        batch_max_timestamp = now_ms if is_log_append_time else header.max_timestamp
        if batch_max_timestamp > max_timestamp:
            max_timestamp, offset_of_max = batch_max_timestamp, offset
        placements.append(
            (position, header.batch_length + LOG_OVERHEAD, offset, next_offset, batch_max_timestamp)
        )
        record_count += header.record_count
        offset = next_offset
    return AppendPlan(placements, offset, record_count, max_timestamp, offset_of_max, [], [])


def stamp_batches(
    view: memoryview, placements: list[Placement], leader_epoch: int, log_append_time_ms: int | None
) -> None:
    """Stamp each batch's base offset and leader epoch in place (and the append time, if given)."""
    for position, _, base_offset, _, _ in placements:
        stamp_batch(view, base_offset, leader_epoch, position)
        if log_append_time_ms is not None:
            stamp_log_append_time(view, log_append_time_ms, position)


def plan_follower_append(
    view: memoryview, expected: int, *, allows_gaps: bool, latest_epoch: int, verify_crc: bool
) -> AppendPlan:
    """Check a leader's batches against the log end offset `expected` and place them as they are.

    Raises:
        CorruptRecordError, LogOffsetGapError, InvalidRecordError: as
            `PartitionLog.append_as_follower` documents.
    """
    placements: list[Placement] = []
    epochs: list[tuple[int, int]] = []
    headers: list[BatchHeader] = []
    record_count = 0
    max_timestamp = NO_TIMESTAMP
    offset_of_max = expected
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
    return AppendPlan(placements, expected, record_count, max_timestamp, offset_of_max, epochs, headers)
