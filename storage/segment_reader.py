"""The read path of one segment: offset to position, whole batches by offset, offset by timestamp.

Owns the lookups that answer a read from one segment's indexes and batch headers, as functions of
a `LogSegment` (its `LogSegment` methods of the same names call them):

- `translate_offset`: the offset index gives a position at or before the offset, then a short
  header scan finds the batch holding it;
- `read`: the byte range of whole batches from that batch on, bounded by a soft byte limit (the
  first batch is always whole, KIP-74) and an optional offset limit (the high watermark), read
  with one `pread` and never decoded;
- `find_offset_by_timestamp`: the time index, then the offset index, then a header scan; only the
  one batch holding the answer is decoded;
- `find_max_timestamp_record`: the record carrying the segment's largest timestamp (ListOffsets
  MAX_TIMESTAMP, KIP-734): the segment knows the batch, and only that batch is decoded.

The file descriptor, the indexes and the size belong to the segment, which also writes, recovers
and truncates; these functions only read them. The header loops themselves are `segment_scan`'s.

Imports: standard library and `freshet.storage`. Forbidden: grpc, wire types (freshet.v1), metadata,
server, client, cli (import-linter contract).

Thread-safety: the functions keep no state and take no lock. The owning PartitionLog calls them,
through the segment, under its lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from freshet.storage.errors import CorruptRecordError
from freshet.storage.file_region import FileRegion
from freshet.storage.record_batch import LOG_OVERHEAD, BatchHeader, decode_batch
from freshet.storage.segment_scan import last_boundary_at_or_before

if TYPE_CHECKING:
    from freshet.storage.segment import LogSegment


def translate_offset(
    segment: LogSegment, offset: int, start_position: int = 0
) -> tuple[int, BatchHeader] | None:
    """Find the first batch whose last offset is >= `offset`, searching from `start_position`.

    Returns:
        (position, header) of that batch, or None if every batch in the segment ends before `offset`.
    """
    position = max(segment.position_for(offset), start_position)
    for found, header in segment.scan_headers(position, segment.size):
        if header.base_offset + header.last_offset_delta >= offset:
            return found, header
    return None


def read(
    segment: LogSegment, offset: int, max_bytes: int, max_offset: int | None = None, as_region: bool = False
) -> tuple[bytes | FileRegion, int, int] | None:
    """Read whole batches starting with the batch that contains (or follows) `offset`.

    Args:
        segment: the segment to read.
        offset: the first offset wanted.
        max_bytes: soft size limit; the first batch is returned whole even if it is larger.
        max_offset: if set, return only batches whose last offset is < `max_offset`.
        as_region: return the byte range as a FileRegion over a duplicate descriptor (for a
            zero-copy send) instead of reading it; empty ranges are still b"".

    Returns:
        (bytes, base offset of the first batch returned, next offset to read: the base offset
        of the first batch not returned, or the segment's next offset); the bytes are empty
        when `max_offset` stops the first batch. None when no batch in this segment reaches
        `offset`.

    Raises:
        CorruptRecordError: a batch header on the way does not parse, or the file is shorter
            than the segment.
        KafkaStorageError: the read failed.
    """
    found = translate_offset(segment, offset)
    if found is None:
        return None
    start, first = found
    if max_offset is not None and first.base_offset + first.last_offset_delta >= max_offset:
        return b"", first.base_offset, first.base_offset
    end = segment.size
    next_offset: int | None = None
    if max_offset is not None and max_offset < segment.next_offset:
        bound = translate_offset(segment, max_offset, start)
        if bound is not None:
            end = bound[0]
            next_offset = bound[1].base_offset
    first_end = start + first.batch_length + LOG_OVERHEAD
    limit = start + max_bytes
    if limit < end:
        if limit <= first_end:
            end = first_end
            next_offset = first.base_offset + first.last_offset_delta + 1
        else:
            boundary, boundary_offset = _last_boundary_at_or_before(segment, limit, start, end)
            end = boundary
            if boundary_offset is not None:
                next_offset = boundary_offset
    first_offset = first.base_offset
    next_offset = segment.next_offset if next_offset is None else next_offset
    if as_region:
        return segment.region(start, end - start), first_offset, next_offset
    data = segment.pread(end - start, start)
    if len(data) != end - start:
        raise CorruptRecordError(
            f"read {len(data)} of {end - start} bytes: the file is shorter than the segment",
            position=start,
            path=segment.log_path,
        )
    return data, first_offset, next_offset


def _last_boundary_at_or_before(
    segment: LogSegment, limit: int, start: int, end: int
) -> tuple[int, int | None]:
    """The largest batch boundary <= `limit`, for a read from `start` whose first batch ends before it.

    Scans batch headers from the offset-index entry at or before `limit` (or from `start`).

    Returns:
        (boundary position, base offset of the batch that starts there), the offset being None
        when the boundary is `end`.
    """
    position = max(segment.position_for(limit, by_position=True), start)
    return last_boundary_at_or_before(segment.scan_headers(position, end), position, limit)


def find_offset_by_timestamp(
    segment: LogSegment, timestamp: int, starting_offset: int
) -> tuple[int, int] | None:
    """The first record at or after `starting_offset` whose timestamp is >= `timestamp`.

    Returns:
        (record timestamp, record offset), or None if this segment has no such record.

    Raises:
        CorruptRecordError: the batch holding the record fails its CRC or does not decode.
    """
    indexed_offset = segment.offset_for_timestamp(timestamp)
    position = segment.position_for(max(indexed_offset, starting_offset))
    for found, header in segment.scan_headers(position, segment.size):
        if (
            header.max_timestamp < timestamp
            or header.base_offset + header.last_offset_delta < starting_offset
        ):
            continue
        try:
            decoded = decode_batch(segment.read_batch(found, header))
        except CorruptRecordError as error:
            raise CorruptRecordError(error.reason, position=found, path=segment.log_path) from None
        for record in decoded.records:
            if record.timestamp >= timestamp and record.offset >= starting_offset:
                return record.timestamp, record.offset
    return None


def find_max_timestamp_record(segment: LogSegment) -> tuple[int, int] | None:
    """(largest timestamp, offset of the first record carrying it) of the segment, None when no
    batch has a timestamp. KIP-734 (as fixed by KAFKA-16310) answers the record's offset, not its
    batch's: the segment records the batch, so this decodes that one batch.

    Raises:
        CorruptRecordError: the batch fails its CRC or does not decode.
    """
    max_timestamp = segment.max_timestamp
    if max_timestamp < 0:
        return None
    batch_offset = segment.offset_of_max_timestamp
    position = segment.position_for(batch_offset)
    for found, header in segment.scan_headers(position, segment.size):
        if header.base_offset + header.last_offset_delta < batch_offset:
            continue
        try:
            decoded = decode_batch(segment.read_batch(found, header))
        except CorruptRecordError as error:
            raise CorruptRecordError(error.reason, position=found, path=segment.log_path) from None
        for record in decoded.records:
            if record.timestamp == max_timestamp:
                return record.timestamp, record.offset
        break
    # The batch's max timestamp is the largest of its records' (storage validates nothing finer for
    # CreateTime), so a producer that lied in the header gets its batch's base offset, as Kafka
    # did before KAFKA-16310.
    return max_timestamp, batch_offset
