"""The record-batch codec: Kafka's v2 layout, exact round trips, header fast path, hostile input.

Reference: Kafka protocol guide, "Record Batch" (magic 2), and KIP-98 for the producer fields.
"""

from __future__ import annotations

import struct

import crcmod.predefined
import pytest
from freshet.storage.compression import CompressionType
from freshet.storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    StorageError,
    UnsupportedCompressionError,
)
from freshet.storage.record_batch import (
    ATTRIBUTES_POSITION,
    BATCH_HEADER_SIZE,
    CRC_POSITION,
    DecodedRecord,
    Record,
    TimestampType,
    compute_crc,
    decode_batch,
    decode_raw_records,
    encode_batch,
    encode_varint,
    increment_sequence,
    is_crc_valid,
    iter_batches,
    parse_header,
    rebuild_batch,
    stamp_batch,
    stamp_log_append_time,
    verify_crc,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

CODECS = [
    CompressionType.NONE,
    CompressionType.GZIP,
    CompressionType.SNAPPY,
    CompressionType.LZ4,
    CompressionType.ZSTD,
]
INT64 = st.integers(min_value=-(2**62), max_value=2**62)  # deltas between two of them fit int64

headers_strategy = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=16))), max_size=3
)
record_strategy = st.builds(
    Record,
    timestamp=st.integers(min_value=0, max_value=2**45),
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
    headers=headers_strategy,
)
records_strategy = st.lists(record_strategy, min_size=1, max_size=25)


def _crc32c(data: bytes) -> int:
    return crcmod.predefined.mkCrcFun("crc-32c")(data)


def test_crc_is_crc32c_castagnoli():
    """Goal: the CRC variant is CRC-32C. Method: the catalogue check value of "123456789"."""
    assert _crc32c(b"123456789") == 0xE3069283


def test_encoded_batch_matches_kafka_v2_layout_field_for_field():
    """Goal: bytes on disk are exactly Kafka's v2 RecordBatch.

    Method: build the expected bytes by hand from the protocol guide (big-endian header fields,
    zigzag varints in records, CRC-32C over attributes..end) and compare with encode_batch.
    """
    records = [
        Record(1_000, b"k1", b"value-1", [("h", b"x")]),
        Record(1_003, None, b"v2"),
        Record(999, b"k3", None),
    ]
    encoded = encode_batch(
        records,
        base_offset=42,
        partition_leader_epoch=7,
        producer_id=1234,
        producer_epoch=5,
        base_sequence=100,
    )

    def record(attributes_and_deltas: bytes, key: bytes | None, value: bytes | None, headers: bytes) -> bytes:
        key_part = b"\x01" if key is None else bytes([len(key) * 2]) + key
        value_part = b"\x01" if value is None else bytes([len(value) * 2]) + value
        body = attributes_and_deltas + key_part + value_part + headers
        return bytes([len(body) * 2]) + body

    records_section = (
        record(b"\x00" + b"\x00" + b"\x00", b"k1", b"value-1", b"\x02" + b"\x02h" + b"\x02x")
        + record(b"\x00" + b"\x06" + b"\x02", None, b"v2", b"\x00")  # ts delta 3 -> 6, offset delta 1 -> 2
        + record(b"\x00" + b"\x01" + b"\x04", b"k3", None, b"\x00")  # ts delta -1 -> 1, offset delta 2 -> 4
    )
    after_crc = struct.pack(">hiqqqhii", 0, 2, 1_000, 1_003, 1234, 5, 100, 3) + records_section
    expected = (
        struct.pack(">qiib", 42, len(after_crc) + 9, 7, 2) + struct.pack(">I", _crc32c(after_crc)) + after_crc
    )
    assert bytes(encoded) == expected
    assert len(expected) == BATCH_HEADER_SIZE + len(records_section)


def test_varint_encoding_is_zigzag_leb128():
    """Goal: varints follow protobuf's zigzag LEB128, as Kafka's ByteUtils. Method: known values."""
    assert encode_varint(0) == b"\x00"
    assert encode_varint(-1) == b"\x01"
    assert encode_varint(1) == b"\x02"
    assert encode_varint(63) == b"\x7e"
    assert encode_varint(-64) == b"\x7f"
    assert encode_varint(64) == b"\x80\x01"
    assert encode_varint(1024) == b"\x80\x10"
    assert encode_varint(2**31 - 1) == b"\xfe\xff\xff\xff\x0f"
    assert encode_varint(-(2**63)) == b"\xff" * 9 + b"\x01"
    with pytest.raises(InvalidRecordError):
        encode_varint(2**63)


@settings(max_examples=150, deadline=None)
@given(
    records=records_strategy,
    codec=st.sampled_from(CODECS),
    base_offset=st.integers(min_value=0, max_value=2**62),
    leader_epoch=st.integers(min_value=-1, max_value=2**31 - 1),
    producer=st.one_of(
        st.just((-1, -1, -1)),
        st.tuples(
            st.integers(min_value=0, max_value=2**63 - 1),
            st.integers(min_value=0, max_value=2**15 - 1),
            st.integers(min_value=0, max_value=2**31 - 1),
        ),
    ),
    is_control=st.booleans(),
)
def test_decode_returns_exactly_what_was_encoded(
    records, codec, base_offset, leader_epoch, producer, is_control
):
    """Goal: decode_batch is the exact inverse of encode_batch for CreateTime batches.

    Method: random records (null keys/values, headers with null values, out-of-order timestamps)
    under every codec; compare records, absolute offsets and timestamps, and header fields.
    """
    producer_id, producer_epoch, base_sequence = producer
    encoded = encode_batch(
        records,
        compression=codec,
        base_offset=base_offset,
        partition_leader_epoch=leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        is_control=is_control,
    )
    decoded = decode_batch(encoded)
    header = decoded.header
    assert header.size_bytes == len(encoded)
    assert header.base_offset == base_offset
    assert header.partition_leader_epoch == leader_epoch
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == producer
    assert header.record_count == len(records)
    assert header.last_offset == base_offset + len(records) - 1
    assert header.compression == codec
    assert header.is_control == is_control
    assert header.timestamp_type == TimestampType.CREATE_TIME
    assert header.base_timestamp == records[0].timestamp
    assert header.max_timestamp == max(record.timestamp for record in records)
    assert decoded.records == [
        DecodedRecord(base_offset + number, record.timestamp, record.key, record.value, list(record.headers))
        for number, record in enumerate(records)
    ]


@settings(max_examples=100, deadline=None)
@given(records=records_strategy, codec=st.sampled_from(CODECS))
def test_encoding_decoded_records_reproduces_the_bytes(records, codec):
    """Goal: encode_batch(decode_batch(b)) == b: no information is lost either way.

    Method: encode, decode, re-encode the decoded records with the same header fields, compare bytes
    (every codec used here is deterministic for equal input and level).
    """
    encoded = encode_batch(records, compression=codec, base_offset=9, partition_leader_epoch=3)
    decoded = decode_batch(encoded)
    again = encode_batch(
        [Record(record.timestamp, record.key, record.value, record.headers) for record in decoded.records],
        compression=codec,
        base_offset=decoded.header.base_offset,
        partition_leader_epoch=decoded.header.partition_leader_epoch,
    )
    assert again == encoded


def test_log_append_time_batch_reports_the_append_time_for_every_record():
    """Goal: Kafka's LogAppendTime semantics. Method: stamp a CreateTime batch, decode, compare."""
    batch = encode_batch([Record(10, b"a", b"1"), Record(30, b"b", b"2"), Record(20, b"c", b"3")])
    stamp_log_append_time(batch, 5_000)
    header = parse_header(batch)
    assert header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == 5_000
    assert is_crc_valid(header, batch)
    assert [record.timestamp for record in decode_batch(batch).records] == [5_000, 5_000, 5_000]


def test_stamping_offset_and_leader_epoch_keeps_the_crc_valid():
    """Goal: a leader stamps base offset and leader epoch without recomputing the CRC.

    Method: stamp in place and check that the stored CRC is unchanged and still matches.
    """
    batch = encode_batch([Record(1, b"k", b"v")] * 3)
    crc_before = parse_header(batch).crc
    stamp_batch(batch, base_offset=2**40, partition_leader_epoch=77)
    header = parse_header(batch)
    assert (header.base_offset, header.partition_leader_epoch, header.crc) == (2**40, 77, crc_before)
    verify_crc(header, batch)
    assert [record.offset for record in decode_batch(batch).records] == [2**40, 2**40 + 1, 2**40 + 2]


def test_stamping_through_a_view_of_a_larger_buffer_touches_only_that_batch():
    """Goal: iter_batches views are writable and stamp in place. Method: stamp the second of two."""
    first = encode_batch([Record(1, b"a", b"1")])
    second = encode_batch([Record(2, b"b", b"2")] * 2)
    buffer = bytearray(first + second)
    views = list(iter_batches(buffer))
    stamp_batch(views[1][1], 100, 4)
    headers = [header for header, _ in iter_batches(buffer)]
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, -1), (100, 4)]
    assert bytes(buffer[: len(first)]) == bytes(first)


def test_iter_batches_splits_concatenated_batches():
    """Goal: the broker splits a produce request into batches by headers alone."""
    batches = [encode_batch([Record(n, b"k", b"v" * n)] * (n + 1), base_offset=10 * n) for n in range(5)]
    buffer = b"".join(bytes(batch) for batch in batches)
    split = list(iter_batches(buffer))
    assert [bytes(view) for _, view in split] == [bytes(batch) for batch in batches]
    assert [header.base_offset for header, _ in split] == [0, 10, 20, 30, 40]


@pytest.mark.parametrize("cut", [1, 11, 12, 60, 61, 62])
def test_iter_batches_rejects_a_partial_trailing_batch(cut):
    """Goal: a cut batch is corrupt, with its position. Method: append a truncated second batch."""
    first = bytes(encode_batch([Record(1, b"a", b"1")]))
    second = bytes(encode_batch([Record(2, b"b", b"2" * 100)]))
    with pytest.raises(CorruptRecordError) as raised:
        list(iter_batches(first + second[:cut]))
    assert raised.value.position == len(first)


def test_header_checks_reject_bad_magic_length_and_counts():
    """Goal: parse_header refuses headers that cannot describe a v2 batch."""
    good = bytearray(encode_batch([Record(1, b"a", b"1")]))

    def patched(position: int, fmt: str, value: int) -> bytearray:
        copy = bytearray(good)
        struct.pack_into(fmt, copy, position, value)
        return copy

    with pytest.raises(CorruptRecordError, match="magic"):
        parse_header(patched(16, ">b", 1))
    with pytest.raises(CorruptRecordError, match="batch_length"):
        parse_header(patched(8, ">i", 48))
    with pytest.raises(CorruptRecordError, match="last_offset_delta"):
        parse_header(patched(23, ">i", -1))
    with pytest.raises(CorruptRecordError, match="record_count"):
        parse_header(patched(57, ">i", -5))
    with pytest.raises(CorruptRecordError, match="needs 61 bytes"):
        parse_header(good[:60])


def test_crc_mismatch_is_reported_with_position():
    """Goal: verify_crc names the batch position. Method: flip a payload byte, verify at position 7."""
    batch = bytearray(encode_batch([Record(1, b"a", b"hello")]))
    batch[-1] ^= 0x01
    with pytest.raises(CorruptRecordError, match="CRC mismatch") as raised:
        verify_crc(parse_header(batch), batch, position=7)
    assert raised.value.position == 7
    with pytest.raises(CorruptRecordError, match="CRC mismatch"):
        decode_batch(batch)


def _kafka_python_batch(compression_type: int, records: list[tuple[int, bytes | None, bytes | None, list]]) -> bytes:
    """A v2 batch built by kafka-python's own DefaultRecordBatchBuilder (its snappy is xerial)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression_type, is_transactional=False,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )
    for offset, (timestamp, key, value, headers) in enumerate(records):
        assert builder.append(offset, timestamp=timestamp, key=key, value=value, headers=headers) is not None
    return bytes(builder.build())


def test_a_snappy_batch_built_by_kafka_python_decodes():
    """Goal: a v2 snappy batch as kafka-python produces it decodes record for record.

    Method: kafka-python's DefaultRecordBatchBuilder with compression_type=2 (xerial framing, 32 KiB
    blocks: its `snappy_encode` default); enough data for several blocks.
    """
    records = [
        (1_700_000_000_000 + index, b"key-%d" % index, (b"value-%d " % index) * 50, [("h", b"%d" % index)])
        for index in range(400)
    ] + [(1_700_000_001_000, None, None, [])]
    batch = _kafka_python_batch(2, records)
    header, decoded = decode_batch(batch)
    assert header.compression == CompressionType.SNAPPY
    assert batch[BATCH_HEADER_SIZE : BATCH_HEADER_SIZE + 8] == b"\x82SNAPPY\x00"
    assert [(record.timestamp, record.key, record.value, record.headers) for record in decoded] == records
    assert [record.offset for record in decoded] == list(range(len(records)))


def test_kafka_python_decodes_a_snappy_batch_we_build():
    """Goal: the other direction: kafka-python's reader (DefaultRecordBatch) reads our snappy batch."""
    from kafka.record.default_records import DefaultRecordBatch

    records = [Record(1_700_000_000_000 + index, b"k%d" % index, b"v" * index, [("h", b"x")]) for index in range(300)]
    batch = DefaultRecordBatch(encode_batch(records, compression=CompressionType.SNAPPY))
    assert batch.compression_type == CompressionType.SNAPPY
    assert [(record.timestamp, record.key, record.value, list(record.headers)) for record in batch] == [
        (record.timestamp, record.key, record.value, record.headers) for record in records
    ]


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_codec_ids_raise_unsupported_compression(codec_id):
    """Goal: codec ids 5-7 (reserved) raise UnsupportedCompressionError carrying the id."""
    batch = bytearray(encode_batch([Record(1, b"a", b"1")]))
    struct.pack_into(">h", batch, ATTRIBUTES_POSITION, codec_id)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    with pytest.raises(UnsupportedCompressionError) as raised:
        decode_batch(batch)
    assert raised.value.codec_id == codec_id


@pytest.mark.parametrize(
    "codec", [CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD]
)
def test_decompression_bomb_is_refused_before_it_is_materialised(codec):
    """Goal: a small batch cannot make a consumer allocate gigabytes.

    Method: 32 MiB of zeros in one record compresses to a few KiB; decoding with a 1 MiB limit
    must raise RecordTooLargeError.
    """
    batch = encode_batch([Record(1, None, bytes(32 * 1024 * 1024))], compression=codec)
    assert len(batch) < 2 * 1024 * 1024
    with pytest.raises(RecordTooLargeError):
        decode_batch(batch, max_decompressed_bytes=1024 * 1024)


def test_encode_rejects_what_a_batch_cannot_hold():
    """Goal: encoding bad arguments raises InvalidRecordError, never struct.error."""
    with pytest.raises(InvalidRecordError, match="at least one record"):
        encode_batch([])
    with pytest.raises(InvalidRecordError, match="producer_epoch"):
        encode_batch([Record(1, b"a", b"1")], producer_id=1, producer_epoch=2**15, base_sequence=0)
    with pytest.raises(InvalidRecordError, match="base_sequence"):
        encode_batch([Record(1, b"a", b"1")], base_sequence=2**31)
    with pytest.raises(InvalidRecordError, match="header key"):
        encode_batch([Record(1, b"a", b"1", [(b"bytes-key", b"v")])])  # type: ignore[list-item]
    with pytest.raises(InvalidRecordError):
        encode_batch([Record(-(2**63), b"a", b"1"), Record(2**63 - 1, b"b", b"2")])


def test_sequence_numbers_wrap_at_int32_max():
    """Goal: Kafka's DefaultRecordBatch.incrementSequence. Method: values around int32 max."""
    assert increment_sequence(5, 3) == 8
    assert increment_sequence(2**31 - 1, 1) == 0
    assert increment_sequence(2**31 - 2, 3) == 1
    assert increment_sequence(-1, 4) == -1
    batch = encode_batch(
        [Record(1, b"a", b"1")] * 3, producer_id=1, producer_epoch=0, base_sequence=2**31 - 2
    )
    assert parse_header(batch).last_sequence == 0


@pytest.mark.parametrize("codec", CODECS)
def test_rebuilt_batch_keeps_identity_and_copies_kept_records(codec):
    """Goal: the cleaner's rebuild keeps offsets, last_offset_delta, producer fields; records byte-exact.

    Method: keep records 1 and 3 of 5, decode the rebuilt batch and compare with the originals.
    """
    records = [Record(100 + n, b"k%d" % n, b"v%d" % n, [("n", b"%d" % n)]) for n in range(5)]
    original = encode_batch(
        records,
        compression=codec,
        base_offset=50,
        partition_leader_epoch=2,
        producer_id=9,
        producer_epoch=1,
        base_sequence=7,
    )
    header, section, raw = decode_raw_records(original)
    rebuilt = rebuild_batch(header, section, [raw[1], raw[3]])
    new_header = parse_header(rebuilt)
    assert is_crc_valid(new_header, rebuilt)
    assert new_header.base_offset == 50
    assert new_header.last_offset_delta == 4
    assert new_header.record_count == 2
    assert (new_header.producer_id, new_header.producer_epoch, new_header.base_sequence) == (9, 1, 7)
    assert new_header.partition_leader_epoch == 2
    assert new_header.max_timestamp == 103
    decoded = decode_batch(rebuilt).records
    assert [(r.offset, r.timestamp, r.key, r.value) for r in decoded] == [
        (51, 101, b"k1", b"v1"),
        (53, 103, b"k3", b"v3"),
    ]
    empty = rebuild_batch(header, section, [])
    assert decode_batch(empty).records == []
    assert parse_header(empty).last_offset_delta == 4


# ------------------------------------------------------------------------------------------------
# Hostile input: never anything but a StorageError, never a hang, never a huge allocation.


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_random_bytes_raise_only_storage_errors(data):
    """Goal: arbitrary bytes never leak IndexError/struct.error/MemoryError. Method: fuzz everything."""
    for function in (decode_batch, lambda b: list(iter_batches(b)), parse_header):
        try:
            function(data)
        except StorageError:
            pass
    try:
        decode_batch(data, verify_crc=False)
    except StorageError:
        pass


def _valid_batch(codec: int) -> bytes:
    return bytes(
        encode_batch(
            [
                Record(1_000 + n, b"key-%d" % n, b"value-%d" % n * 3, [("h", b"x")] if n % 2 else [])
                for n in range(6)
            ],
            compression=codec,
            producer_id=3,
            producer_epoch=1,
            base_sequence=0,
        )
    )


@pytest.mark.parametrize("codec", CODECS)
def test_every_truncation_of_a_batch_is_corrupt(codec):
    """Goal: a batch cut at any length is rejected as corrupt. Method: try every non-empty prefix."""
    batch = _valid_batch(codec)
    with pytest.raises(CorruptRecordError):
        decode_batch(b"")
    assert list(iter_batches(b"")) == []
    for length in range(1, len(batch)):
        with pytest.raises(CorruptRecordError):
            decode_batch(batch[:length])
        with pytest.raises(CorruptRecordError):
            list(iter_batches(batch[:length]))


@settings(max_examples=300, deadline=2000)
@given(codec=st.sampled_from(CODECS), flips=st.lists(st.integers(min_value=0), min_size=1, max_size=4))
def test_bit_flips_are_caught_by_the_crc_or_are_outside_it(codec, flips):
    """Goal: any bit flip in the CRC'd range fails the CRC check; flips elsewhere never crash.

    Method: flip random bits; decode with CRC verification and expect a StorageError unless every
    flip landed in base_offset/batch_length/leader epoch (outside the CRC), which may still decode.
    """
    batch = bytearray(_valid_batch(codec))
    positions = set()
    for flip in flips:
        bit = flip % (len(batch) * 8)
        batch[bit // 8] ^= 1 << (bit % 8)
        positions ^= {bit}
    touched = {bit // 8 for bit in positions}
    assume(touched)
    try:
        decode_batch(batch)
    except StorageError:
        return
    outside_crc_and_framing = set(range(0, 8)) | set(range(12, 16))  # base_offset, partition_leader_epoch
    assert touched <= outside_crc_and_framing


@settings(max_examples=500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    codec=st.sampled_from([CompressionType.NONE, CompressionType.NONE, CompressionType.ZSTD]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=6
    ),
    record_count=st.integers(min_value=-3, max_value=2**31 - 1),
)
def test_garbled_records_with_a_valid_crc_raise_only_storage_errors(codec, edits, record_count):
    """Goal: the records parser validates every length itself (a buggy or hostile producer can send
    a correct CRC over garbage).

    Method: overwrite random bytes of the records section and the record count, recompute the CRC,
    decode; anything but a StorageError (or a clean decode) is a bug.
    """
    batch = bytearray(_valid_batch(CompressionType.NONE))
    for position, value in edits:
        batch[BATCH_HEADER_SIZE + position % (len(batch) - BATCH_HEADER_SIZE)] = value
    struct.pack_into(">i", batch, 57, record_count)
    if codec == CompressionType.ZSTD:
        from freshet.storage.compression import compress

        section = compress(codec, bytes(batch[BATCH_HEADER_SIZE:]))
        batch = batch[:BATCH_HEADER_SIZE] + section
        struct.pack_into(">i", batch, 8, len(batch) - 12)
        struct.pack_into(">h", batch, ATTRIBUTES_POSITION, codec)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    try:
        decoded = decode_batch(batch)
    except StorageError:
        return
    assert len(decoded.records) == decoded.header.record_count


def _with_valid_crc(batch: bytearray) -> bytearray:
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    return batch


def test_records_section_cut_anywhere_is_corrupt_even_with_a_valid_crc():
    """Goal: a records section shorter than its records declare is caught by the parser itself.

    Method: cut the uncompressed records section at every length, fix batch_length and the CRC so
    that only the record parser can notice, and expect CorruptRecordError.
    """
    batch = _valid_batch(CompressionType.NONE)
    for length in range(BATCH_HEADER_SIZE, len(batch)):
        with pytest.raises(CorruptRecordError):
            decode_batch(_with_valid_crc(bytearray(batch[:length])))


def test_records_section_with_trailing_bytes_is_corrupt():
    """Goal: bytes after the last declared record are not silently ignored."""
    batch = _with_valid_crc(bytearray(_valid_batch(CompressionType.NONE)) + b"\x00")
    with pytest.raises(CorruptRecordError, match="after the last"):
        decode_batch(batch)


def test_huge_declared_lengths_fail_fast_without_allocating():
    """Goal: lengths are checked against the bytes present before anything is allocated.

    Method: a record claiming a 2**31-byte value, and a record count of int32 max, each with a valid CRC.
    """
    batch = bytearray(encode_batch([Record(1, None, b"x")]))
    # Record: length(1) attributes(1) ts(1) offset(1) key(-1 => 0x01) value-length(...)
    value_length_position = BATCH_HEADER_SIZE + 5
    batch[value_length_position : value_length_position + 1] = encode_varint(2**31 - 1)
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    with pytest.raises(CorruptRecordError):
        decode_batch(batch)
    batch = bytearray(encode_batch([Record(1, None, b"x")]))
    struct.pack_into(">i", batch, 57, 2**31 - 1)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    with pytest.raises(CorruptRecordError, match="ends inside record 1"):
        decode_batch(batch)


def test_client_shared_modules_import_no_other_storage_module():
    """Goal: the client SDK can import the codec without the log, cleaner or any thread.

    Method: import record_batch in a fresh interpreter and list the freshet.storage modules loaded.
    """
    import subprocess
    import sys

    code = (
        "import sys, freshet.storage.record_batch, freshet.storage.compression, freshet.storage.errors\n"
        "print(sorted(m for m in sys.modules if m.startswith('freshet.storage')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == str(
        [
            "freshet.storage",
            "freshet.storage.compression",
            "freshet.storage.errors",
            "freshet.storage.record_batch",
        ]
    )


def test_crc32c_is_crcmods_c_function_called_directly():
    """Every hot CRC call goes to crcmod's C extension without its Python wrapper, and gives the
    same CRC-32C as crcmod's predefined function (and the standard check value)."""
    import os
    import sys
    import types

    from freshet.storage import record_batch

    assert sys.modules["crcmod.crcmod"]._usingExtension
    assert isinstance(record_batch._crc32c_c, types.BuiltinFunctionType)
    assert record_batch.crc32c(b"123456789") == 0xE3069283
    reference = crcmod.predefined.mkCrcFun("crc-32c")
    for size in (0, 1, 61, 4096, 65536 + 7):
        data = os.urandom(size)
        assert record_batch.crc32c(data) == reference(data)
        assert record_batch.crc32c(memoryview(bytearray(data))) == reference(data)
    batch = encode_batch([Record(1, b"k", os.urandom(1000))])
    assert compute_crc(batch) == reference(bytes(batch[21:])) == parse_header(batch).crc
