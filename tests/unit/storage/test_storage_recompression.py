"""Topic compression.type: the leader re-encodes batches whose codec is not the topic's.

Reference: Kafka LogValidator.validateMessagesAndAssignOffsetsCompressed (the "inPlaceAssignment"
test: a batch is rebuilt when the source codec differs from the target codec) and UnifiedLog.append
(batch sizes are checked against max.message.bytes again when they "maybe changed").
"""

from __future__ import annotations

import itertools
import os

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.compression import CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.errors import CorruptRecordError, OutOfOrderSequenceError, RecordTooLargeError
from freshet.storage.log import PartitionLog
from freshet.storage.log_append import recompress_leader_batches, validate_leader_batches
from freshet.storage.record_batch import (
    BATCH_HEADER_SIZE,
    CRC_POSITION,
    Record,
    TimestampType,
    compute_crc,
    decode_batch,
    encode_batch,
    is_crc_valid,
    iter_batches,
    recompress_batch,
)

from tests.support.storage_helpers import read_all

CODECS = list(CompressionType)
_RECORDS = [
    Record(1_700_000_000_000, b"key-0", b"value " * 40, [("trace", b"abc"), ("null", None)]),
    Record(1_700_000_000_009, None, None),
    Record(1_699_999_999_990, b"k\xff", bytes(range(256)), []),
]


def _open(tmp_path, compression_type: str, **changes) -> PartitionLog:
    config = LogConfig(compression_type=compression_type, **changes)
    return PartitionLog.open(str(tmp_path / "topic-0"), config, ManualClock(1_800_000_000_000))


def _stored(log: PartitionLog) -> list[tuple]:
    return [(header, decode_batch(view).records) for header, view in iter_batches(read_all(log))]


@pytest.mark.parametrize(("source", "target"), list(itertools.product(CODECS, CODECS)))
def test_recompress_batch_round_trips_every_codec_pair(source, target):
    """Goal: every (source, target) codec pair keeps the records and identifying header fields.

    Method: encode with `source`, re-encode with `target`, decode; compare records and headers; the
    CRC is valid and only the codec bits, batch_length and CRC may differ.
    """
    original = encode_batch(
        _RECORDS, compression=source, producer_id=7, producer_epoch=2, base_sequence=40, base_offset=100,
        partition_leader_epoch=3,
    )
    result = recompress_batch(original, target)
    before, after = decode_batch(original), decode_batch(result)
    assert after.records == before.records
    assert after.header.compression == target
    assert after.header.crc == compute_crc(result)
    for field in ("base_offset", "partition_leader_epoch", "last_offset_delta", "base_timestamp",
                  "max_timestamp", "producer_id", "producer_epoch", "base_sequence", "record_count"):
        assert getattr(after.header, field) == getattr(before.header, field), field
    assert after.header.attributes & ~0x07 == before.header.attributes & ~0x07


def test_recompress_batch_refuses_records_that_do_not_decode():
    """Goal: a batch whose CRC is right but whose records are malformed is refused, not re-encoded.

    Method: cut the last record's final byte off the records section, fix batch_length and the CRC.
    """
    good = encode_batch(_RECORDS)
    bad = bytearray(good[:-1])
    bad[8:12] = (len(bad) - 12).to_bytes(4, "big")
    bad[CRC_POSITION : CRC_POSITION + 4] = compute_crc(bad).to_bytes(4, "big")
    with pytest.raises(CorruptRecordError):
        recompress_batch(bad, CompressionType.ZSTD)


def test_leader_stores_batches_in_the_topic_codec(tmp_path):
    """Goal: compression.type=zstd stores an uncompressed producer batch as zstd, records intact.

    Method: append an uncompressed and a gzip batch; read back; codec, CRC, offsets, records.
    """
    log = _open(tmp_path, "zstd")
    log.append_as_leader(encode_batch(_RECORDS), 5)
    log.append_as_leader(encode_batch(_RECORDS[:1], compression=CompressionType.GZIP), 5)
    stored = _stored(log)
    assert [header.compression for header, _ in stored] == [CompressionType.ZSTD, CompressionType.ZSTD]
    assert [header.base_offset for header, _ in stored] == [0, 3]
    assert [header.partition_leader_epoch for header, _ in stored] == [5, 5]
    assert [(r.key, r.value, r.headers) for r in stored[0][1]] == [(r.key, r.value, list(r.headers)) for r in _RECORDS]
    assert all(is_crc_valid(header, view) for header, view in iter_batches(read_all(log)))
    log.close()


def test_producer_compression_type_keeps_the_batch_bytes(tmp_path):
    """Goal: compression.type=producer is the zero-decode path: stored bytes equal the producer's.

    Method: append a gzip batch; the stored batch equals it but for the stamped base offset/epoch.
    """
    log = _open(tmp_path, "producer")
    original = encode_batch(_RECORDS, compression=CompressionType.GZIP)
    log.append_as_leader(bytearray(original), 4)
    stored = read_all(log)
    assert stored[12:16] == (4).to_bytes(4, "big")
    assert stored[16:] == original[16:]
    assert recompress_leader_batches(memoryview(original), validate_leader_batches(memoryview(original), 1 << 20),
                                     "gzip", 1 << 20) is None
    log.close()


def test_idempotent_sequences_are_checked_on_recompressed_batches(tmp_path):
    """Goal: the producer fields survive re-encoding, so duplicates and gaps are still detected.

    Method: sequences 0 and 3 (one record each) from producer 9 to an lz4 topic: a retry of
    sequence 0 is a duplicate with its original offset; sequence 5 is out of order.
    """
    log = _open(tmp_path, "lz4")
    first = encode_batch(_RECORDS, producer_id=9, producer_epoch=0, base_sequence=0)
    assert log.append_as_leader(bytearray(first), 1).first_offset == 0
    log.append_as_leader(encode_batch(_RECORDS[:1], producer_id=9, producer_epoch=0, base_sequence=3), 1)
    retry = log.append_as_leader(bytearray(first), 1)
    assert retry.is_duplicate and retry.first_offset == 0
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(encode_batch(_RECORDS[:1], producer_id=9, producer_epoch=0, base_sequence=5), 1)
    assert log.log_end_offset == 4
    headers = [header for header, _ in _stored(log)]
    assert [(h.producer_id, h.base_sequence, h.compression) for h in headers] == [
        (9, 0, CompressionType.LZ4), (9, 3, CompressionType.LZ4)
    ]
    log.close()


def test_batch_too_large_after_recompression_is_refused_and_nothing_written(tmp_path):
    """Goal: as Kafka, a batch that exceeds max.message.bytes once re-encoded gets RECORD_TOO_LARGE.

    Method: a gzip batch of 64 KiB of zeros (about 100 bytes compressed) to a compression.type=
    uncompressed topic with max.message.bytes=4096: refused, the log stays empty; a small batch
    is accepted afterwards.
    """
    log = _open(tmp_path, "uncompressed", max_message_bytes=4096)
    compressible = encode_batch([Record(1, None, bytes(64 * 1024))], compression=CompressionType.GZIP)
    assert len(compressible) < 4096
    with pytest.raises(RecordTooLargeError) as caught:
        log.append_as_leader(compressible, 1)
    assert caught.value.max_bytes == 4096
    assert log.log_end_offset == 0
    log.append_as_leader(encode_batch(_RECORDS, compression=CompressionType.SNAPPY), 1)
    assert [header.compression for header, _ in _stored(log)] == [CompressionType.NONE]
    log.close()


def test_log_append_time_is_stamped_on_recompressed_batches(tmp_path):
    """Goal: LogAppendTime and re-encoding compose: the stored batch is zstd, stamped, CRC valid.

    Method: message.timestamp.type=LogAppendTime, compression.type=zstd; decode the stored batch.
    """
    log = _open(tmp_path, "zstd", message_timestamp_type=TimestampType.LOG_APPEND_TIME)
    log.append_as_leader(encode_batch(_RECORDS), 1)
    ((header, records),) = _stored(log)
    assert header.compression == CompressionType.ZSTD
    assert header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert {record.timestamp for record in records} == {1_800_000_000_000}
    log.close()


def test_follower_keeps_the_leader_bytes_whatever_its_compression_type(tmp_path):
    """Goal: followers copy the leader's bytes: no re-encoding on the follower path.

    Method: a follower log configured zstd takes a gzip batch; the file holds exactly those bytes.
    """
    log = _open(tmp_path, "zstd")
    leader_batch = encode_batch(_RECORDS, compression=CompressionType.GZIP, partition_leader_epoch=2)
    log.append_as_follower(bytes(leader_batch))
    assert read_all(log) == bytes(leader_batch)
    log.close()
    with open(os.path.join(str(tmp_path / "topic-0"), "00000000000000000000.log"), "rb") as file:
        assert file.read() == bytes(leader_batch)


def test_control_batches_keep_their_codec():
    """Goal: control batches are left alone when the topic codec differs (Kafka does the same).

    Method: recompress_leader_batches over a control batch and a normal one, target zstd.
    """
    control = encode_batch([Record(1, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")], is_control=True)
    normal = encode_batch(_RECORDS)
    data = memoryview(bytes(control + normal))
    batches = [(0, next(iter_batches(control))[0]), (len(control), next(iter_batches(normal))[0])]
    buffer, placed = recompress_leader_batches(data, batches, "zstd", 1 << 20)
    assert bytes(buffer[: len(control)]) == bytes(control)
    assert [header.compression for _, header in placed] == [CompressionType.NONE, CompressionType.ZSTD]
    assert placed[1][0] == len(control)
    assert len(buffer) > BATCH_HEADER_SIZE * 2


def test_topic_config_compression_type_reaches_the_log_config():
    """Goal: the topic's compression.type (a Kafka name) lands in LogConfig, default producer."""
    assert LogConfig().compression_type == "producer"
    assert LogConfig.from_kafka_names({"compression.type": "snappy"}).compression_type == "snappy"
    with pytest.raises(AssertionError):
        LogConfig(compression_type="brotli")
