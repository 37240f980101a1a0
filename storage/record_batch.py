"""The record batch: Kafka's v2 RecordBatch byte layout, its codec and its header fast path.

Owns the on-disk and on-the-wire unit of data. A batch is a 61-byte header followed by a records
section, which is compressed as a whole when the batch has a codec. All integers are big-endian.

Batch header (61 bytes, `_HEADER` below, offsets in bytes):

    ====  ======================  =====  ===========================================================
    pos   field                   type   meaning
    ====  ======================  =====  ===========================================================
    0     base_offset             int64  offset of the first record; stamped by the leader
    8     batch_length            int32  bytes after this field: total size - 12 (>= 49)
    12    partition_leader_epoch  int32  leader epoch of the appending leader; stamped by the leader
    16    magic                   int8   format version, always 2
    17    crc                     uint32 CRC-32C (Castagnoli) of bytes [21, end of batch)
    21    attributes              int16  bits 0-2 compression (0 none, 1 gzip, 2 snappy, 3 lz4,
                                         4 zstd); bit 3 timestamp type (0 CreateTime,
                                         1 LogAppendTime); bit 4 transactional; bit 5 control
    23    last_offset_delta       int32  offset of the last record - base_offset
    27    base_timestamp          int64  timestamp of the first record (ms)
    35    max_timestamp           int64  largest record timestamp (ms); the append time for
                                         LogAppendTime batches
    43    producer_id             int64  idempotent producer id, -1 if none
    51    producer_epoch          int16  producer epoch, -1 if none
    53    base_sequence           int32  sequence number of the first record, -1 if none
    57    record_count            int32  number of records in the records section
    ====  ======================  =====  ===========================================================

Because the CRC starts at `attributes`, the leader stamps `base_offset` and `partition_leader_epoch`
into a batch without recomputing it.

Each record in the records section (varint = zigzag LEB128 int32, varlong = zigzag LEB128 int64):

    ==================  ================  ===================================================
    field               type              meaning
    ==================  ================  ===================================================
    length              varint            bytes of the record after this field
    attributes          int8              unused, 0
    timestamp_delta     varlong           timestamp - base_timestamp (ms)
    offset_delta        varint            offset - base_offset
    key_length          varint            -1 for a null key
    key                 bytes
    value_length        varint            -1 for a null value (a tombstone)
    value               bytes
    header_count        varint
    headers             header_count x    (varint key_length, UTF-8 key,
                                          varint value_length (-1 null), value)
    ==================  ================  ===================================================

The broker's hot path uses only the header functions (`parse_header`, `iter_batches`, `verify_crc`,
`stamp_batch`); records are decoded by clients and by the compaction cleaner. Decoding validates
every length against the bytes that are actually there before using it, so malformed input of any
shape raises CorruptRecordError (or RecordTooLargeError / UnsupportedCompressionError), never an
IndexError, struct.error or MemoryError, and never loops for long.

Imports: standard library, crcmod, `freshet.storage.compression` and `freshet.storage.errors` only:
the client SDK imports this module, so no other storage module. Forbidden: grpc, wire types
(freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: every function is thread-safe; functions that stamp a buffer mutate only the buffer
they are given.
"""

from __future__ import annotations

import enum
import struct
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import crcmod.predefined
from freshet.storage.compression import DECOMPRESSED_BYTES_MAX, CompressionType, compress, decompress
from freshet.storage.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError

_HEADER = struct.Struct(
    ">"
    "q"  # base_offset: offset of the first record (outside the CRC: the leader stamps it)
    "i"  # batch_length: bytes after this field, i.e. total batch size - 12
    "i"  # partition_leader_epoch: epoch of the leader that appended it (outside the CRC)
    "b"  # magic: format version, 2
    "I"  # crc: CRC-32C of [attributes, end of batch)
    "h"  # attributes: compression (bits 0-2), timestamp type (3), transactional (4), control (5)
    "i"  # last_offset_delta: last record's offset - base_offset
    "q"  # base_timestamp: first record's timestamp, ms
    "q"  # max_timestamp: largest record timestamp (or the log append time), ms
    "q"  # producer_id: -1 when the producer is not idempotent
    "h"  # producer_epoch: -1 when the producer is not idempotent
    "i"  # base_sequence: first record's sequence number, -1 when not idempotent
    "i"  # record_count: number of records that follow
)
assert _HEADER.size == 61

_BASE_OFFSET = struct.Struct(">q")
_PARTITION_LEADER_EPOCH = struct.Struct(">i")
_BATCH_LENGTH = struct.Struct(">i")
_CRC = struct.Struct(">I")
_ATTRIBUTES = struct.Struct(">h")
_MAX_TIMESTAMP = struct.Struct(">q")

#: Size of the batch header in bytes.
BATCH_HEADER_SIZE = _HEADER.size
#: Bytes before batch_length's coverage starts: base_offset + batch_length.
LOG_OVERHEAD = 12
#: The smallest legal batch_length: a header with an empty records section.
BATCH_LENGTH_MIN = BATCH_HEADER_SIZE - LOG_OVERHEAD
#: Largest batch_length the int32 field can hold.
BATCH_LENGTH_MAX = 2**31 - 1
#: Byte position of the fields the leader stamps and of the CRC'd range.
BASE_OFFSET_POSITION = 0
PARTITION_LEADER_EPOCH_POSITION = 12
MAGIC_POSITION = 16
CRC_POSITION = 17
ATTRIBUTES_POSITION = 21
MAX_TIMESTAMP_POSITION = 35
#: The only format version this module reads or writes.
MAGIC = 2

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

_INT16_MAX = 2**15 - 1
_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# CRC-32C through crcmod's C extension, called directly on every hot call: mkCrcFun returns a
# Python closure, `xor_out ^ fun(data, xor_out ^ crc, table)`, whose C `fun` and packed `table` are
# its default arguments. Calling them inline saves a Python frame per batch; without the
# extension crcmod would fall back to pure Python (~100x slower), which must never happen.
assert sys.modules["crcmod.crcmod"]._usingExtension, "crcmod's C extension is missing: CRC-32C would run in pure Python"
_CRC32C_XOR_OUT = 0xFFFFFFFF
_, _CRC32C_TABLE, _crc32c_c = crcmod.predefined.mkCrcFun("crc-32c").__defaults__
assert isinstance(_crc32c_c, types.BuiltinFunctionType), _crc32c_c


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli) of `data`, computed by crcmod's C extension (cold paths and tests;
    the batch functions below inline the same call)."""
    return _crc32c_c(data, _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT


# Builds a NamedTuple from a tuple without a Python-level __new__ call (the header fast path).
_new_tuple = tuple.__new__


class TimestampType(enum.IntEnum):
    """Meaning of record timestamps in a batch (attribute bit 3)."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class BatchHeader(NamedTuple):
    """The 61-byte header of a batch, field for field (see the layout table in the module docstring)."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size_bytes(self) -> int:
        """Total size of the batch in bytes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        """Offset of the last record (inclusive)."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset after the last record: where the next batch starts."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        """Compression codec id (a CompressionType value when known)."""
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> TimestampType:
        """CreateTime or LogAppendTime."""
        return (
            TimestampType.LOG_APPEND_TIME
            if self.attributes & TIMESTAMP_TYPE_MASK
            else TimestampType.CREATE_TIME
        )

    @property
    def first_record_timestamp(self) -> int:
        """The first record's timestamp read from the header alone: the base timestamp for
        CreateTime batches (record timestamps are deltas from it), the batch's max timestamp for
        LogAppendTime batches (every record carries the append time). NO_TIMESTAMP when unset."""
        if self.timestamp_type == TimestampType.LOG_APPEND_TIME:
            return self.max_timestamp
        return self.base_timestamp

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_producer_id(self) -> bool:
        """Whether the batch comes from an idempotent producer."""
        return self.producer_id >= 0

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last record, wrapping past int32 max to 0 as Kafka does."""
        return increment_sequence(self.base_sequence, self.last_offset_delta)


def increment_sequence(sequence: int, increment: int) -> int:
    """`sequence + increment`, wrapping from int32 max to 0 (Kafka DefaultRecordBatch.incrementSequence).

    A negative `sequence` (NO_SEQUENCE) is returned unchanged.
    """
    if sequence < 0:
        return sequence
    if sequence > _INT32_MAX - increment:
        return sequence - (_INT32_MAX - increment) - 1
    return sequence + increment


class Record(NamedTuple):
    """One record to encode: a producer's view (offsets are assigned by position in the batch)."""

    timestamp: int
    """Milliseconds since the epoch (CreateTime)."""
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


class DecodedRecord(NamedTuple):
    """One record read back from a batch, with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    """CreateTime of the record, or the batch's max timestamp for LogAppendTime batches."""
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class DecodedBatch(NamedTuple):
    """A decoded batch: its header and its records in offset order."""

    header: BatchHeader
    records: list[DecodedRecord]


class RawRecord(NamedTuple):
    """A record as stored inside an uncompressed records section, with its byte span.

    The compaction cleaner copies the span [start, end) verbatim into a rebuilt batch, which keeps
    the record's offset and timestamp deltas exact.
    """

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    start: int
    end: int


# --------------------------------------------------------------------------------------------------
# Header fast path: what the broker touches.


def parse_header(buffer: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    """Parse and sanity-check the 61-byte header at `position`, without touching the records.

    Checks the magic byte, a batch_length that can hold a header, and non-negative counts. Does not
    check that the whole batch is present in `buffer` (use `iter_batches` for that) nor the CRC.

    Raises:
        CorruptRecordError: fewer than 61 bytes at `position`, or a field out of range.
    """
    if position < 0 or len(buffer) - position < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"batch header needs {BATCH_HEADER_SIZE} bytes, {max(len(buffer) - position, 0)} available",
            position=position,
        )
    header = _new_tuple(BatchHeader, _HEADER.unpack_from(buffer, position))
    if header.magic != MAGIC:
        raise CorruptRecordError(f"magic {header.magic} is not {MAGIC}", position=position)
    if header.batch_length < BATCH_LENGTH_MIN:
        raise CorruptRecordError(
            f"batch_length {header.batch_length} is below the minimum {BATCH_LENGTH_MIN}", position=position
        )
    if header.last_offset_delta < 0:
        raise CorruptRecordError(
            f"last_offset_delta {header.last_offset_delta} is negative", position=position
        )
    if header.record_count < 0:
        raise CorruptRecordError(f"record_count {header.record_count} is negative", position=position)
    return header


def iter_batches(buffer: bytes | bytearray | memoryview) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Split concatenated batches: yield each batch's parsed header and a view of its bytes.

    Validates framing only (header sanity and that every batch is complete); CRCs are checked by
    `verify_crc`. The views share memory with `buffer`: a view of a bytearray can be stamped.

    Raises:
        CorruptRecordError: a bad header, or trailing bytes that do not form a whole batch (the
            error's position is where the bad batch starts).
    """
    view = memoryview(buffer)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    end = len(view)
    position = 0
    while position < end:
        header = parse_header(view, position)
        batch_end = position + header.batch_length + LOG_OVERHEAD
        if batch_end > end:
            raise CorruptRecordError(
                f"batch of {header.batch_length + LOG_OVERHEAD} bytes is truncated to {end - position} bytes",
                position=position,
            )
        yield header, view[position:batch_end]
        position = batch_end


def compute_crc(batch: bytes | bytearray | memoryview) -> int:
    """CRC-32C of a whole batch's CRC'd range [attributes, end)."""
    return _crc32c_c(memoryview(batch)[ATTRIBUTES_POSITION:], _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT


def is_crc_valid(header: BatchHeader, batch: bytes | bytearray | memoryview) -> bool:
    """Whether the stored CRC matches the batch bytes (`batch` holds exactly this one batch)."""
    assert len(batch) == header.size_bytes
    actual = _crc32c_c(memoryview(batch)[ATTRIBUTES_POSITION:], _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT
    return actual == header.crc


def verify_crc(
    header: BatchHeader, batch: bytes | bytearray | memoryview, position: int | None = None
) -> None:
    """Check the stored CRC of one batch.

    Args:
        header: the batch's parsed header.
        batch: exactly the batch's bytes.
        position: where the batch sits (for the error message), if known.

    Raises:
        CorruptRecordError: the CRC does not match.
    """
    assert len(batch) == header.size_bytes
    actual = _crc32c_c(memoryview(batch)[ATTRIBUTES_POSITION:], _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT
    if actual != header.crc:
        raise CorruptRecordError(
            f"CRC mismatch: stored {header.crc:#010x}, computed {actual:#010x}", position=position
        )


def stamp_batch(
    buffer: bytearray | memoryview, base_offset: int, partition_leader_epoch: int, position: int = 0
) -> None:
    """Write `base_offset` and `partition_leader_epoch` into the batch at `position`, in place.

    Both fields lie before the CRC'd range, so the CRC stays valid.
    """
    _BASE_OFFSET.pack_into(buffer, position + BASE_OFFSET_POSITION, base_offset)
    _PARTITION_LEADER_EPOCH.pack_into(
        buffer, position + PARTITION_LEADER_EPOCH_POSITION, partition_leader_epoch
    )


def stamp_log_append_time(buffer: bytearray | memoryview, timestamp_ms: int, position: int = 0) -> None:
    """Turn the batch at `position` into a LogAppendTime batch stamped `timestamp_ms`, in place.

    Sets attribute bit 3 and max_timestamp, then recomputes the CRC (these fields are CRC'd, so this
    is the one stamping path that pays for a CRC). Records keep their deltas; readers report
    max_timestamp as every record's timestamp for such batches, as Kafka does.
    """
    view = memoryview(buffer)
    (batch_length,) = _BATCH_LENGTH.unpack_from(view, position + 8)
    (attributes,) = _ATTRIBUTES.unpack_from(view, position + ATTRIBUTES_POSITION)
    _ATTRIBUTES.pack_into(view, position + ATTRIBUTES_POSITION, attributes | TIMESTAMP_TYPE_MASK)
    _MAX_TIMESTAMP.pack_into(view, position + MAX_TIMESTAMP_POSITION, timestamp_ms)
    end = position + batch_length + LOG_OVERHEAD
    crc = _crc32c_c(view[position + ATTRIBUTES_POSITION : end], _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT
    _CRC.pack_into(view, position + CRC_POSITION, crc)


# --------------------------------------------------------------------------------------------------
# Varints (zigzag LEB128).


def _encode_unsigned_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


# Precomputed encodings of 0..16383, the values almost every record uses for its deltas and lengths.
_VARINT_CACHE_SIZE = 16384
_VARINT = [_encode_unsigned_varint(_zigzag(v)) for v in range(_VARINT_CACHE_SIZE)]
_NULL_LENGTH = _encode_unsigned_varint(_zigzag(-1))


def encode_varint(value: int) -> bytes:
    """Zigzag varint encoding of a signed int64 `value`."""
    if 0 <= value < _VARINT_CACHE_SIZE:
        return _VARINT[value]
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidRecordError(f"{value} does not fit a varlong (int64)")
    return _encode_unsigned_varint(_zigzag(value))


class _Truncated(Exception):
    """Internal: a varint or field ran past the end of its record."""


def _read_varint(data: bytes, position: int, end: int, max_bytes: int) -> tuple[int, int]:
    """Decode a zigzag varint at `position` that must end before `end`; return (value, next position)."""
    result = 0
    shift = 0
    limit = min(end, position + max_bytes)
    while position < limit:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
    if position >= end:
        raise _Truncated
    raise CorruptRecordError(f"varint longer than {max_bytes} bytes")


# --------------------------------------------------------------------------------------------------
# Encoding.


def _encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    parts = [encode_varint(len(headers))]
    for name, value in headers:
        if not isinstance(name, str):
            raise InvalidRecordError(f"header key must be str, got {type(name).__name__}")
        name_bytes = name.encode("utf-8")
        parts.append(encode_varint(len(name_bytes)))
        parts.append(name_bytes)
        if value is None:
            parts.append(_NULL_LENGTH)
        else:
            parts.append(encode_varint(len(value)))
            parts.append(value)
    return b"".join(parts)


def encode_batch(
    records: Iterable[Record] | Sequence[Record],
    *,
    compression: int = CompressionType.NONE,
    compression_level: int | None = None,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    is_transactional: bool = False,
    is_control: bool = False,
) -> bytearray:
    """Encode records into one v2 batch with a valid CRC.

    Record i gets offset delta i and timestamp delta `timestamp - records[0].timestamp`.

    Args:
        records: at least one Record (timestamp ms, key, value, headers).
        compression: a CompressionType id; the records section is compressed as a whole.
        compression_level: codec level, None for the codec's default.
        base_offset: offset of the first record (producers leave 0: the leader assigns offsets).
        partition_leader_epoch: leader epoch (producers leave -1: the leader stamps it).
        producer_id, producer_epoch, base_sequence: idempotent-producer fields, -1 when unused.
        timestamp_type: CreateTime (producers) or LogAppendTime.
        is_transactional, is_control: attribute bits 4 and 5.

    Returns:
        The batch as a bytearray (mutable, so a leader can stamp it in place without a copy).

    Raises:
        InvalidRecordError: no records, or a header field outside its integer range.
        RecordTooLargeError: the batch would exceed the int32 batch_length.
        UnsupportedCompressionError: an unknown codec id.
    """
    if not isinstance(records, Sequence):
        records = list(records)
    count = len(records)
    if count == 0:
        raise InvalidRecordError("a batch needs at least one record")
    _check_range("producer_id", producer_id, _INT64_MIN, _INT64_MAX)
    _check_range("producer_epoch", producer_epoch, -(2**15), _INT16_MAX)
    _check_range("base_sequence", base_sequence, -(2**31), _INT32_MAX)
    _check_range("partition_leader_epoch", partition_leader_epoch, -(2**31), _INT32_MAX)
    _check_range("base_offset", base_offset, _INT64_MIN, _INT64_MAX)
    _check_range("record count", count, 1, _INT32_MAX)

    parts, base_timestamp, max_timestamp = _encode_records(records)
    _check_range("timestamp", base_timestamp, _INT64_MIN, _INT64_MAX)
    _check_range("timestamp", max_timestamp, _INT64_MIN, _INT64_MAX)

    attributes = _attributes(compression, timestamp_type, is_transactional, is_control)
    if compression == CompressionType.NONE:
        parts.insert(0, bytes(BATCH_HEADER_SIZE))
        batch = bytearray().join(parts)
    else:
        batch = bytearray(BATCH_HEADER_SIZE)
        batch += compress(compression, b"".join(parts), compression_level)
    batch_length = len(batch) - LOG_OVERHEAD
    if batch_length > BATCH_LENGTH_MAX:
        raise RecordTooLargeError(len(batch), BATCH_LENGTH_MAX + LOG_OVERHEAD, what="encoded batch")
    _HEADER.pack_into(
        batch,
        0,
        base_offset,
        batch_length,
        partition_leader_epoch,
        MAGIC,
        0,
        attributes,
        count - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = _crc32c_c(memoryview(batch)[ATTRIBUTES_POSITION:], _CRC32C_XOR_OUT, _CRC32C_TABLE) ^ _CRC32C_XOR_OUT
    _CRC.pack_into(batch, CRC_POSITION, crc)
    return batch


def _encode_records(records: Sequence[Record]) -> tuple[list[bytes | bytearray], int, int]:
    """The records section's parts (unframed, uncompressed), the first and the largest timestamp.

    This is the codec's per-record hot loop, kept whole and inlined: every lookup is a local and
    there is no call per record except for varints past the cache (DESIGN.md: ~1 µs per record).
    """
    base_timestamp = records[0][0]
    max_timestamp = base_timestamp
    varint = _VARINT
    cache_size = _VARINT_CACHE_SIZE
    null_length = _NULL_LENGTH
    parts: list[bytes | bytearray] = []
    extend = parts.extend
    for offset_delta, (timestamp, key, value, headers) in enumerate(records):
        if timestamp > max_timestamp:
            max_timestamp = timestamp
        timestamp_delta = timestamp - base_timestamp
        timestamp_bytes = (
            varint[timestamp_delta] if 0 <= timestamp_delta < cache_size else encode_varint(timestamp_delta)
        )
        offset_bytes = varint[offset_delta] if offset_delta < cache_size else encode_varint(offset_delta)
        if key is None:
            key = b""
            key_length_bytes = null_length
        else:
            key_length = len(key)
            key_length_bytes = varint[key_length] if key_length < cache_size else encode_varint(key_length)
        if value is None:
            value = b""
            value_length_bytes = null_length
        else:
            value_length = len(value)
            value_length_bytes = (
                varint[value_length] if value_length < cache_size else encode_varint(value_length)
            )
        header_bytes = _encode_headers(headers) if headers else b"\x00"
        body_length = (
            1
            + len(timestamp_bytes)
            + len(offset_bytes)
            + len(key_length_bytes)
            + len(key)
            + len(value_length_bytes)
            + len(value)
            + len(header_bytes)
        )
        extend(
            (
                varint[body_length] if body_length < cache_size else encode_varint(body_length),
                b"\x00",
                timestamp_bytes,
                offset_bytes,
                key_length_bytes,
                key,
                value_length_bytes,
                value,
                header_bytes,
            )
        )
    return parts, base_timestamp, max_timestamp


def _attributes(
    compression: int, timestamp_type: TimestampType, is_transactional: bool, is_control: bool
) -> int:
    """The batch attributes field (compression codec, timestamp type, transactional and control bits)."""
    attributes = int(compression) & COMPRESSION_MASK
    if compression != attributes:
        raise InvalidRecordError(f"compression id {compression} does not fit attribute bits 0-2")
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    if is_transactional:
        attributes |= TRANSACTIONAL_MASK
    if is_control:
        attributes |= CONTROL_MASK
    return attributes


def _check_range(name: str, value: int, lowest: int, highest: int) -> None:
    if not lowest <= value <= highest:
        raise InvalidRecordError(f"{name} {value} is outside [{lowest}, {highest}]")


def rebuild_batch(
    header: BatchHeader,
    section: bytes,
    kept: Sequence[RawRecord],
    compression_level: int | None = None,
) -> bytearray:
    """Build a batch holding only the `kept` records of an existing batch (the compaction cleaner).

    Keeps every header field that identifies the batch: base offset, last_offset_delta (so the log
    end offset and producer sequence numbers survive compaction, as in Kafka), base timestamp,
    producer fields, attributes, partition leader epoch. Each kept record is copied byte for byte
    from `section`, so its offset and timestamp deltas are unchanged. The record count and,
    for CreateTime batches, max_timestamp are recomputed; the CRC is recomputed.

    Args:
        header: the original batch's header.
        section: the original batch's uncompressed records section.
        kept: records from `decode_raw_records` of that batch, in offset order; may be empty (an
            empty batch preserves a producer's last sequence, as Kafka's cleaner does).
        compression_level: level for re-compression with the batch's own codec.
    """
    payload = b"".join(section[record.start : record.end] for record in kept)
    if header.compression != CompressionType.NONE:
        payload = compress(header.compression, payload, compression_level)
    if header.timestamp_type == TimestampType.CREATE_TIME and kept:
        max_timestamp = header.base_timestamp + max(record.timestamp_delta for record in kept)
    else:
        max_timestamp = header.max_timestamp
    batch = bytearray(BATCH_HEADER_SIZE)
    batch += payload
    _HEADER.pack_into(
        batch,
        0,
        header.base_offset,
        len(batch) - LOG_OVERHEAD,
        header.partition_leader_epoch,
        MAGIC,
        0,
        header.attributes,
        header.last_offset_delta,
        header.base_timestamp,
        max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        len(kept),
    )
    _CRC.pack_into(batch, CRC_POSITION, crc32c(memoryview(batch)[ATTRIBUTES_POSITION:]))
    return batch


def recompress_batch(
    batch: bytes | bytearray | memoryview,
    compression: int,
    *,
    compression_level: int | None = None,
    max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX,
) -> bytearray:
    """The same batch with its records section re-encoded in `compression` (topic compression.type).

    Kafka's LogValidator does this on the leader when a topic's compression.type names a codec other
    than the batch's. Every record is parsed first (a batch whose records do not decode exactly is
    refused, as Kafka refuses it while re-encoding), then the uncompressed section is compressed as
    it is: each record keeps its bytes, so offset and timestamp deltas, keys, values and headers are
    unchanged. Every header field is kept except the codec bits of `attributes`, `batch_length` and
    the CRC, which is computed once over the new batch. The caller verified the CRC already.

    Args:
        batch: exactly one batch (control batches are the caller's to skip: Kafka leaves them be).
        compression: the target CompressionType (NONE for compression.type=uncompressed).
        compression_level: codec level, None for the codec's default.
        max_decompressed_bytes: bound on the decompressed records section.

    Raises:
        CorruptRecordError: records that do not parse, or malformed compressed data.
        RecordTooLargeError: decompression would exceed `max_decompressed_bytes`, or the result
            overflows the int32 batch_length.
        UnsupportedCompressionError: an unknown codec id, source or target.
    """
    header, section, _ = decode_raw_records(
        batch, verify_crc=False, max_decompressed_bytes=max_decompressed_bytes
    )
    attributes = (header.attributes & ~COMPRESSION_MASK) | _attributes(
        compression, TimestampType.CREATE_TIME, False, False
    )
    payload = section if compression == CompressionType.NONE else compress(compression, section, compression_level)
    result = bytearray(BATCH_HEADER_SIZE)
    result += payload
    if len(result) - LOG_OVERHEAD > BATCH_LENGTH_MAX:
        raise RecordTooLargeError(len(result), BATCH_LENGTH_MAX + LOG_OVERHEAD, what="recompressed batch")
    fields = header._replace(batch_length=len(result) - LOG_OVERHEAD, crc=0, attributes=attributes)
    _HEADER.pack_into(result, 0, *fields)
    _CRC.pack_into(result, CRC_POSITION, crc32c(memoryview(result)[ATTRIBUTES_POSITION:]))
    return result


# --------------------------------------------------------------------------------------------------
# Decoding.


def _batch_and_header(batch: bytes | bytearray | memoryview, verify: bool) -> tuple[BatchHeader, memoryview]:
    view = memoryview(batch)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    header = parse_header(view, 0)
    if header.size_bytes != len(view):
        raise CorruptRecordError(
            f"batch_length says {header.size_bytes} bytes but the buffer holds {len(view)}", position=0
        )
    if verify:
        verify_crc(header, view, 0)
    return header, view


def records_section(
    batch: bytes | bytearray | memoryview,
    *,
    verify_crc: bool = True,
    max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX,
) -> tuple[BatchHeader, bytes]:
    """The header and the uncompressed records section of exactly one batch.

    Raises:
        CorruptRecordError, RecordTooLargeError, UnsupportedCompressionError: see `decode_batch`.
    """
    header, view = _batch_and_header(batch, verify_crc)
    payload = view[BATCH_HEADER_SIZE:]
    if header.compression == CompressionType.NONE:
        return header, bytes(payload)
    return header, decompress(header.compression, payload, max_decompressed_bytes)


def decode_raw_records(
    batch: bytes | bytearray | memoryview,
    *,
    verify_crc: bool = True,
    max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX,
) -> tuple[BatchHeader, bytes, list[RawRecord]]:
    """Decode one batch into its header, uncompressed records section and records with their spans.

    Returns:
        (header, records_section, records); each RawRecord's [start, end) indexes records_section.

    Raises:
        CorruptRecordError, RecordTooLargeError, UnsupportedCompressionError: see `decode_batch`.
    """
    header, data = records_section(
        batch, verify_crc=verify_crc, max_decompressed_bytes=max_decompressed_bytes
    )
    return header, data, _parse_records(header, data, is_raw=True)


def decode_batch(
    batch: bytes | bytearray | memoryview,
    *,
    verify_crc: bool = True,
    max_decompressed_bytes: int = DECOMPRESSED_BYTES_MAX,
) -> DecodedBatch:
    """Decode exactly one batch into its header and records with absolute offsets and timestamps.

    Args:
        batch: the bytes of one whole batch (e.g. a view from `iter_batches`).
        verify_crc: check the CRC first (leave True unless the caller just did).
        max_decompressed_bytes: bound on the decompressed records section.

    Returns:
        DecodedBatch(header, records). For LogAppendTime batches every record's timestamp is the
        batch's max_timestamp, as in Kafka.

    Raises:
        CorruptRecordError: bad framing, CRC mismatch, malformed compression, or records that do not
            parse exactly (lengths past their record, bad varints, count mismatch, offset deltas
            not increasing within [0, last_offset_delta], header keys not UTF-8, trailing bytes).
        RecordTooLargeError: decompression would exceed `max_decompressed_bytes`.
        UnsupportedCompressionError: an unknown codec id.
    """
    header, data = records_section(
        batch, verify_crc=verify_crc, max_decompressed_bytes=max_decompressed_bytes
    )
    return DecodedBatch(header, _parse_records(header, data, is_raw=False))


# Kept whole on purpose, past the ~70-line guide (STYLE.md allows it for codec hot loops): this is
# the per-record decode loop. Any cut that leaves a loop this size moves per-record work into a
# helper, and a Python call costs ~85 ns more than inline code on the 2-core bench machine (timeit:
# 95 ns vs 11 ns for building a 7-tuple), i.e. 3-8% of decoding a small record (1-3 us); the
# single-byte varint fast paths are inlined for the same reason.
def _parse_records(header: BatchHeader, data: bytes, is_raw: bool) -> list:
    """Parse a records section, validating every length before use. See decode_batch for the rules.

    Returns RawRecords when `is_raw`, else DecodedRecords with absolute offsets and timestamps.
    """
    records: list = []
    new = tuple.__new__  # builds NamedTuples without a Python-level __new__ call per record
    base_offset = header.base_offset
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        base_timestamp = header.max_timestamp
        timestamp_scale = 0  # every record reports the append time
    else:
        base_timestamp = header.base_timestamp
        timestamp_scale = 1
    end = len(data)
    position = 0
    last_offset_delta = header.last_offset_delta
    previous_offset_delta = -1
    count = header.record_count
    try:
        for _ in range(count):
            if position >= end:
                raise _Truncated
            start = position
            byte = data[position]
            if byte < 0x80:
                length = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                length, position = _read_varint(data, position, end, 5)
            if length < 6 or position + length > end:
                raise CorruptRecordError(
                    f"record at byte {start} of the records section declares length {length}, "
                    f"{end - position} bytes remain"
                )
            record_end = position + length
            position += 1  # attributes: unused
            byte = data[position]
            if byte < 0x80:
                timestamp_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                timestamp_delta, position = _read_varint(data, position, record_end, 10)
            byte = data[position] if position < record_end else 0x80
            if byte < 0x80:
                offset_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                offset_delta, position = _read_varint(data, position, record_end, 5)
            if not previous_offset_delta < offset_delta <= last_offset_delta:
                raise CorruptRecordError(
                    f"record offset delta {offset_delta} does not follow {previous_offset_delta} "
                    f"within last_offset_delta {last_offset_delta}"
                )
            previous_offset_delta = offset_delta
            key, position = _read_bytes(data, position, record_end)
            value, position = _read_bytes(data, position, record_end)
            if position == record_end - 1 and data[position] == 0:
                # The usual record: no headers, the count is the record's last byte.
                headers: list[tuple[str, bytes | None]] = []
                position = record_end
            else:
                header_count, position = _read_varint(data, position, record_end, 5)
                headers = _read_headers(data, position, record_end, header_count)
                position = record_end
            if position != record_end:
                raise CorruptRecordError(
                    f"record at byte {start} of the records section has {record_end - position} stray bytes"
                )
            if is_raw:
                records.append(
                    new(RawRecord, (offset_delta, timestamp_delta, key, value, headers, start, record_end))
                )
            else:
                records.append(
                    new(
                        DecodedRecord,
                        (
                            base_offset + offset_delta,
                            base_timestamp + timestamp_scale * timestamp_delta,
                            key,
                            value,
                            headers,
                        ),
                    )
                )
    except _Truncated:
        raise CorruptRecordError(f"records section ends inside record {len(records)} of {count}") from None
    if position != end:
        raise CorruptRecordError(f"{end - position} bytes after the last of {count} records")
    return records


def _read_bytes(data: bytes, position: int, record_end: int) -> tuple[bytes | None, int]:
    if position >= record_end:
        raise _Truncated
    byte = data[position]
    if byte < 0x80:
        length = (byte >> 1) ^ -(byte & 1)
        position += 1
    elif position + 1 < record_end and data[position + 1] < 0x80:
        # Two-byte lengths (64 B - 8 KiB values) are the common case for payloads.
        length = (byte & 0x7F) | (data[position + 1] << 7)
        length = (length >> 1) ^ -(length & 1)
        position += 2
    else:
        length, position = _read_varint(data, position, record_end, 5)
    if length == -1:
        return None, position
    if length < -1 or position + length > record_end:
        raise CorruptRecordError(f"field length {length} does not fit its record")
    return data[position : position + length], position + length


def _read_headers(
    data: bytes, position: int, record_end: int, header_count: int
) -> list[tuple[str, bytes | None]]:
    # Each header takes at least 2 bytes, which bounds the loop before any allocation.
    if header_count < 0 or 2 * header_count > record_end - position:
        raise CorruptRecordError(f"header count {header_count} does not fit its record")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        name, position = _read_bytes(data, position, record_end)
        if name is None:
            raise CorruptRecordError("header key is null")
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptRecordError(f"header key is not UTF-8: {error}") from None
        value, position = _read_bytes(data, position, record_end)
        headers.append((text, value))
    if position != record_end:
        raise CorruptRecordError(f"record has {record_end - position} stray bytes after its headers")
    return headers
