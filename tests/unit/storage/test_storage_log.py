"""The partition log: offsets, reads, rolls, truncation, retention, epochs, config and lifecycle.

Reference: Kafka's UnifiedLog / LocalLog / LogSegment behaviour (KIP-74 for "at least one batch",
KIP-101/279 for leader epochs).
"""

from __future__ import annotations

import os
import random
import time

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.compression import CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.errors import (
    CorruptRecordError,
    InconsistentTopicIdError,
    InvalidRecordError,
    LogClosedError,
    LogOffsetGapError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)
from freshet.storage.log import (
    CLEAN_SHUTDOWN_FILE_NAME,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    TIMESTAMP_MAX,
    PartitionLog,
)
from freshet.storage.record_batch import (
    ATTRIBUTES_POSITION,
    CRC_POSITION,
    Record,
    TimestampType,
    compute_crc,
    decode_batch,
    encode_batch,
    iter_batches,
    parse_header,
)
from freshet.storage.segment import LogSegment

from tests.support.storage_helpers import (
    SMALL_CONFIG,
    batch,
    crash,
    headers_of,
    read_all,
    segment_files,
    verified_records,
)

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def clock():
    return ManualClock(1_700_000_000_000)


def open_log(tmp_path, config=SMALL_CONFIG, clock=None, name="topic-0", **options):
    return PartitionLog.open(str(tmp_path / name), config, clock or ManualClock(), **options)


# ------------------------------------------------------------------------------------------------
# Append as leader.


def test_leader_append_assigns_contiguous_offsets_and_stamps_the_epoch(tmp_path, clock):
    """Goal: offsets are assigned from the log end, the leader epoch is stamped, bytes kept.

    Method: append batches of 1..5 records; read everything back and decode.
    """
    log = open_log(tmp_path, clock=clock)
    expected_offset = 0
    for count in range(1, 6):
        info = log.append_as_leader(batch(count, tag=count), leader_epoch=3)
        assert (info.first_offset, info.last_offset) == (expected_offset, expected_offset + count - 1)
        assert info.record_count == count and not info.is_duplicate
        assert info.log_append_time_ms == -1
        expected_offset += count
    assert log.log_end_offset == 15
    data = read_all(log)
    assert [h.partition_leader_epoch for h in headers_of(data)] == [3] * 5
    records = verified_records(data)
    assert [offset for offset, _, _ in records] == list(range(15))
    assert records[0][2].startswith(b"1:0:") and records[-1][2].startswith(b"5:4:")
    assert log.leader_epoch_entries == [(3, 0)]


def test_leader_append_of_concatenated_batches_assigns_offsets_across_them(tmp_path):
    """Goal: one produce request may carry several batches; offsets run on across them."""
    log = open_log(tmp_path)
    data = bytes(batch(2, tag=1)) + bytes(batch(3, tag=2)) + bytes(batch(1, tag=3))
    info = log.append_as_leader(data, 0)
    assert (info.first_offset, info.last_offset, info.record_count) == (0, 5, 6)
    assert [h.base_offset for h in headers_of(read_all(log))] == [0, 2, 5]


def test_leader_append_stamps_a_bytearray_in_place_without_copying(tmp_path):
    """Goal: a bytearray handed to the leader is stamped in place (the zero-copy path the server
    uses).
    """
    log = open_log(tmp_path)
    log.append_as_leader(batch(2), 0)
    data = batch(1)
    log.append_as_leader(data, 9)
    assert parse_header(data).base_offset == 2
    assert parse_header(data).partition_leader_epoch == 9


def _corrupted(data: bytearray) -> bytearray:
    data[-1] ^= 0xFF
    return data


def _with_header_field(data: bytearray, position: int, value: int, size: int = 4) -> bytearray:
    data[position : position + size] = value.to_bytes(size, "big", signed=True)
    data[CRC_POSITION : CRC_POSITION + 4] = compute_crc(data).to_bytes(4, "big")
    return data


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: _corrupted(batch(3)), CorruptRecordError, "CRC"),
        (lambda: batch(3)[:-5], CorruptRecordError, "truncated"),
        (lambda: bytearray(b"\x00" * 10), CorruptRecordError, "header"),
        (lambda: batch(1, value_size=5000), RecordTooLargeError, "larger than"),
        (lambda: _with_header_field(batch(3), 57, 2), InvalidRecordError, "record_count"),
        (lambda: _with_header_field(batch(3), 23, 5), InvalidRecordError, "record_count"),
        (lambda: batch(1, is_control=True), InvalidRecordError, "control"),
        (lambda: batch(1, is_transactional=True), InvalidRecordError, "transactional"),
        (
            lambda: _with_header_field(batch(1), ATTRIBUTES_POSITION, 5, 2),
            UnsupportedCompressionError,
            "unknown codec id 5",
        ),
        (lambda: bytearray(), InvalidRecordError, "at least one batch"),
        (lambda: batch(1, producer_id=5, producer_epoch=0, base_sequence=-1), InvalidRecordError, "sequence"),
    ],
)
def test_leader_append_rejects_bad_batches_and_writes_nothing(tmp_path, make, error, match):
    """Goal: every validation failure raises its specific error and leaves the log unchanged."""
    log = open_log(tmp_path, config=SMALL_CONFIG.with_changes(max_message_bytes=2000))
    log.append_as_leader(batch(2), 0)
    before = read_all(log)
    bad = bytes(make())
    good_then_bad = bytes(batch(1)) + bad if bad else b""
    with pytest.raises(error, match=match):
        log.append_as_leader(good_then_bad, 0)
    assert log.log_end_offset == 2
    assert read_all(log) == before


def test_append_larger_than_a_segment_is_rejected(tmp_path):
    """Goal: an append that cannot fit any segment raises RecordTooLargeError (Kafka's
    RecordBatchTooLargeException).
    """
    log = open_log(tmp_path, config=SMALL_CONFIG.with_changes(max_message_bytes=10_000))
    with pytest.raises(RecordTooLargeError, match="append"):
        log.append_as_leader(batch(1, value_size=5000), 0)


def test_log_append_time_stamps_the_broker_clock_and_a_valid_crc(tmp_path, clock):
    """Goal: message.timestamp.type=LogAppendTime replaces timestamps with the append time."""
    log = open_log(
        tmp_path,
        config=SMALL_CONFIG.with_changes(message_timestamp_type=TimestampType.LOG_APPEND_TIME),
        clock=clock,
    )
    clock.advance(12_345)
    info = log.append_as_leader(batch(3, timestamp=5), 0)
    assert info.log_append_time_ms == clock.now_ms()
    assert info.max_timestamp == clock.now_ms()
    data = read_all(log)
    decoded = decode_batch(data)  # verifies the recomputed CRC
    assert decoded.header.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert {record.timestamp for record in decoded.records} == {clock.now_ms()}


# ------------------------------------------------------------------------------------------------
# Read.


def test_read_returns_whole_batches_from_the_one_holding_the_offset(tmp_path):
    """Goal: read(offset) starts at the batch containing offset and returns whole batches only."""
    log = open_log(tmp_path, config=LogConfig(index_interval_bytes=100))
    for tag in range(20):
        log.append_as_leader(batch(5, tag=tag), 0)
    for offset in range(100):
        result = log.read(offset, 400)
        headers = headers_of(result.records)
        assert headers[0].base_offset <= offset <= headers[0].last_offset
        assert result.first_offset == headers[0].base_offset
        assert result.next_offset == headers[-1].next_offset
        assert len(result.records) <= 400 or len(headers) == 1
        for previous, following in zip(headers, headers[1:], strict=False):
            assert following.base_offset == previous.next_offset
        assert (result.log_start_offset, result.log_end_offset) == (0, 100)


def test_read_returns_at_least_one_batch_larger_than_max_bytes(tmp_path):
    """Goal: KIP-74: a batch larger than max_bytes is still returned, whole."""
    log = open_log(tmp_path, config=LogConfig())
    log.append_as_leader(batch(10, value_size=500), 0)
    log.append_as_leader(batch(1), 0)
    result = log.read(3, 10)
    assert headers_of(result.records) == [parse_header(result.records)]
    assert parse_header(result.records).record_count == 10


def test_read_at_the_end_is_empty_and_outside_the_range_raises(tmp_path):
    """Goal: reading at the log end returns nothing; below the start or past the end raises
    OffsetOutOfRangeError carrying both bounds.
    """
    log = open_log(tmp_path)
    log.append_as_leader(batch(3), 0)
    assert log.read(3, 100).records == b""
    assert log.read(3, 100).first_offset == -1
    with pytest.raises(OffsetOutOfRangeError) as raised:
        log.read(4, 100)
    assert (raised.value.offset, raised.value.log_start_offset, raised.value.log_end_offset) == (4, 0, 3)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)


def test_read_bounded_by_max_offset_returns_only_batches_entirely_below_it(tmp_path):
    """Goal: consumers never see a batch that reaches the high watermark."""
    log = open_log(tmp_path, config=LogConfig())
    for _ in range(4):
        log.append_as_leader(batch(5), 0)  # batches [0,4] [5,9] [10,14] [15,19]
    assert [h.last_offset for h in headers_of(log.read(0, 1 << 20, max_offset=12).records)] == [4, 9]
    assert [h.last_offset for h in headers_of(log.read(0, 1 << 20, max_offset=10).records)] == [4, 9]
    assert log.read(10, 1 << 20, max_offset=12).records == b""
    assert log.read(12, 1 << 20, max_offset=12).records == b""
    assert [h.last_offset for h in headers_of(log.read(11, 1 << 20, max_offset=15).records)] == [14]
    assert len(headers_of(log.read(0, 1, max_offset=20).records)) == 1


def test_read_stops_at_the_end_of_a_segment(tmp_path):
    """Goal: as Kafka, one read serves one segment; the next read continues in the next one."""
    log = open_log(tmp_path)
    for _ in range(30):
        log.append_as_leader(batch(2, value_size=100), 0)
    assert log.segment_count > 2
    second_base = log.segment_base_offsets()[1]
    result = log.read(0, 1 << 20)
    assert headers_of(result.records)[-1].next_offset == second_base


def test_lookup_of_random_offsets_equals_a_linear_scan_across_many_segments(tmp_path):
    """Goal: segment search + sparse offset index + header scan find the same batch as a scan.

    Method: ~60 segments of random-size batches; for 2000 random offsets compare the first batch
    read() returns with the batch a linear scan over every segment file finds.
    """
    rng = random.Random(7)
    log = open_log(tmp_path, config=LogConfig(segment_bytes=8192, index_interval_bytes=512))
    for tag in range(900):
        log.append_as_leader(batch(rng.randint(1, 8), value_size=rng.randint(1, 300), tag=tag), 0)
    assert log.segment_count >= 40
    scanned = []
    for path in segment_files(log.directory):
        with open(path, "rb") as file:
            scanned.extend(
                (header.base_offset, header.last_offset, bytes(view))
                for header, view in iter_batches(file.read())
            )
    assert [entry[0] for entry in scanned] == sorted(entry[0] for entry in scanned)
    for offset in (rng.randrange(log.log_end_offset) for _ in range(2000)):
        expected = next(entry for entry in scanned if entry[1] >= offset)
        records = log.read(offset, 1).records
        assert records == expected[2], offset


# ------------------------------------------------------------------------------------------------
# Rolling.


def test_roll_by_segment_bytes_keeps_each_segment_under_the_limit(tmp_path):
    """Goal: segment.bytes bounds every segment, and files are named by 20-digit base offsets."""
    log = open_log(tmp_path)
    for _ in range(50):
        log.append_as_leader(batch(3, value_size=60), 0)
    sizes = [os.path.getsize(path) for path in segment_files(log.directory)]
    assert len(sizes) > 3
    assert max(sizes) <= SMALL_CONFIG.segment_bytes
    names = [os.path.basename(path) for path in segment_files(log.directory)]
    assert names[0] == "00000000000000000000.log"
    assert names == [f"{base:020d}.log" for base in log.segment_base_offsets()]


def test_roll_by_segment_ms_uses_the_first_batch_timestamp(tmp_path, clock):
    """Goal: segment.ms measures from the first batch's timestamp to the new batch's (Kafka)."""
    log = open_log(
        tmp_path, config=SMALL_CONFIG.with_changes(segment_bytes=1 << 20, segment_ms=60_000), clock=clock
    )
    start = clock.now_ms()
    log.append_as_leader(batch(1, timestamp=start), 0)
    log.append_as_leader(batch(1, timestamp=start + 59_999), 0)
    assert log.segment_count == 1
    log.append_as_leader(batch(1, timestamp=start + 60_001), 0)
    assert log.segment_base_offsets() == [0, 2]


def test_roll_when_the_offset_index_is_full(tmp_path):
    """Goal: a full offset index (segment.index.bytes) rolls the segment and the log stays readable."""
    config = LogConfig(segment_bytes=1 << 20, index_interval_bytes=0, segment_index_bytes=8 * 4)
    log = open_log(tmp_path, config=config)
    for _ in range(12):
        log.append_as_leader(batch(1), 0)
    assert log.segment_count >= 2
    assert verified_records(read_all(log))[-1][0] == 11


def test_explicit_roll_starts_a_segment_at_the_log_end_and_is_idempotent_when_empty(tmp_path):
    """Goal: roll() starts a segment at the log end; rolling an empty active segment does nothing."""
    log = open_log(tmp_path)
    log.append_as_leader(batch(4), 0)
    log.roll()
    log.roll()
    assert log.segment_base_offsets() == [0, 4]


def test_config_update_applies_to_the_next_roll(tmp_path):
    """Goal: update_config takes effect at run time: a smaller segment.bytes rolls on the next
    append.
    """
    log = open_log(tmp_path, config=LogConfig())
    log.append_as_leader(batch(1, value_size=500), 0)
    log.update_config(LogConfig(segment_bytes=600))
    log.append_as_leader(batch(1, value_size=500), 0)
    assert log.segment_base_offsets() == [0, 1]


# ------------------------------------------------------------------------------------------------
# Follower append.


def _leader_batches(count: int, start: int = 0, epoch: int = 1) -> list[bytearray]:
    batches = []
    offset = start
    for tag in range(count):
        data = batch(2, tag=tag, base_offset=offset, partition_leader_epoch=epoch)
        batches.append(data)
        offset += 2
    return batches


def test_follower_append_keeps_offsets_and_epochs(tmp_path):
    """Goal: a follower stores the leader's bytes unchanged and learns epochs from batch headers."""
    log = open_log(tmp_path)
    batches = _leader_batches(3, epoch=4) + _leader_batches(2, start=6, epoch=6)
    info = log.append_as_follower(b"".join(bytes(b) for b in batches))
    assert (info.first_offset, info.last_offset, info.record_count) == (0, 9, 10)
    assert read_all(log) == b"".join(bytes(b) for b in batches)
    assert log.leader_epoch_entries == [(4, 0), (6, 6)]
    assert log.end_offset_for_epoch(4) == (4, 6)
    assert log.end_offset_for_epoch(6) == (6, 10)


def test_follower_append_rejects_overlaps_and_gaps(tmp_path):
    """Goal: offsets that overlap the log or leave a gap in a non-compacted log raise
    LogOffsetGapError with both offsets; nothing is written.
    """
    log = open_log(tmp_path)
    log.append_as_follower(bytes(_leader_batches(1)[0]))
    with pytest.raises(LogOffsetGapError, match="overlaps") as raised:
        log.append_as_follower(bytes(batch(2, base_offset=1)))
    assert (raised.value.expected_offset, raised.value.received_offset) == (2, 1)
    with pytest.raises(LogOffsetGapError, match="gap"):
        log.append_as_follower(bytes(batch(2, base_offset=3)))
    with pytest.raises(LogOffsetGapError, match="gap"):
        log.append_as_follower(bytes(batch(2, base_offset=2)) + bytes(batch(1, base_offset=5)))
    assert log.log_end_offset == 2


def test_follower_of_a_compacted_log_accepts_gaps_and_rolls_past_the_relative_offset_range(tmp_path):
    """Goal: compaction removes whole batches on the leader, so a compacted follower accepts gaps;
    a gap beyond what a segment can address (uint32 relative offsets) rolls a new segment.
    """
    log = open_log(tmp_path, config=SMALL_CONFIG.with_changes(cleanup_policy=frozenset({"compact"})))
    log.append_as_follower(bytes(batch(2, base_offset=0)))
    log.append_as_follower(bytes(batch(2, base_offset=10)))
    log.append_as_follower(bytes(batch(1, base_offset=2**33)))
    assert log.log_end_offset == 2**33 + 1
    assert log.segment_base_offsets() == [0, 2**33]
    assert [h.base_offset for h in headers_of(read_all(log))] == [0, 10, 2**33]
    assert headers_of(log.read(5, 1000).records)[0].base_offset == 10


def test_follower_can_verify_crcs_when_asked(tmp_path):
    """Goal: verify_crc=True gives Kafka's follower behaviour: a batch with a bad CRC is refused."""
    log = open_log(tmp_path)
    bad = _corrupted(batch(1))
    log.append_as_follower(bytes(batch(1, base_offset=0)))
    with pytest.raises(CorruptRecordError, match="CRC"):
        log.append_as_follower(bytes(_with_header_field(bad, 0, 1, 8)[:-1]) + b"\x00", verify_crc=True)
    assert log.log_end_offset == 1


# ------------------------------------------------------------------------------------------------
# Truncation.


def test_truncate_to_a_batch_boundary_and_inside_a_batch(tmp_path):
    """Goal: truncation works at batch boundaries; an offset inside a batch removes that whole batch."""
    log = open_log(tmp_path)
    for tag in range(40):
        log.append_as_leader(batch(3, tag=tag, value_size=50), tag // 10)
    assert log.segment_count >= 3
    assert log.truncate_to(60) is True
    assert log.log_end_offset == 60
    assert log.truncate_to(55) is True  # batch [54, 56] goes entirely
    assert log.log_end_offset == 54
    assert log.truncate_to(54) is False
    assert log.truncate_to(1000) is False
    assert verified_records(read_all(log))[-1][0] == 53
    assert all(base < 54 for base in log.segment_base_offsets())
    assert log.leader_epoch_entries == [(0, 0), (1, 30)]
    info = log.append_as_leader(batch(1), 5)
    assert info.first_offset == 54
    assert log.leader_epoch_entries == [(0, 0), (1, 30), (5, 54)]


def test_truncate_at_the_log_end_drops_an_epoch_that_holds_no_batch(tmp_path):
    """Goal: a replica that became leader (epoch start recorded at its log end) and appended
    nothing before becoming a follower again loses that epoch entry when it truncates to its log
    end, so its last epoch is the epoch of its last batch (Kafka's UnifiedLog.truncateTo). Method:
    assign an epoch start at the end, truncate to the end and past it, check the entries and that
    no data went."""
    log = open_log(tmp_path)
    log.append_as_leader(batch(3), 0)
    log.assign_epoch_start_offset(1, 3)
    assert log.leader_epoch_entries == [(0, 0), (1, 3)]
    assert log.truncate_to(3) is False
    assert log.leader_epoch_entries == [(0, 0)]
    assert log.latest_epoch == 0 and log.log_end_offset == 3
    log.assign_epoch_start_offset(2, 3)
    assert log.truncate_to(10) is False
    assert log.leader_epoch_entries == [(0, 0)]
    assert [offset for offset, *_ in verified_records(read_all(log))] == [0, 1, 2]


def test_truncate_below_the_log_start_empties_the_log_at_that_offset(tmp_path):
    """Goal: truncating below the log start restarts the log there (Kafka's truncateFullyAndStartAt)
    and clears the epoch cache.
    """
    log = open_log(tmp_path)
    log.truncate_fully_and_start_at(100)
    log.append_as_leader(batch(5), 1)
    log.truncate_to(50)
    assert (log.log_start_offset, log.log_end_offset) == (50, 50)
    assert log.leader_epoch_entries == []
    assert log.read(50, 100).records == b""


def test_truncate_fully_and_start_at_moves_both_ends(tmp_path):
    """Goal: truncate_fully_and_start_at leaves one empty segment named by the new offset; appends
    continue there.
    """
    log = open_log(tmp_path)
    for _ in range(20):
        log.append_as_leader(batch(3, value_size=100), 2)
    log.truncate_fully_and_start_at(1000)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (1000, 1000, 0)
    assert segment_files(log.directory) == [os.path.join(log.directory, "00000000000000001000.log")]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    assert log.append_as_leader(batch(1), 3).first_offset == 1000


# ------------------------------------------------------------------------------------------------
# Lookups by time.


def test_offsets_for_time_finds_the_first_record_at_or_after_a_timestamp(tmp_path):
    """Goal: ListOffsets semantics, compared with a scan over every record.

    Method: batches with jittered, partly decreasing timestamps over many segments.
    """
    rng = random.Random(3)
    log = open_log(tmp_path, config=LogConfig(segment_bytes=3000, index_interval_bytes=200))
    timestamps = []
    base = 1_000_000
    for tag in range(150):
        count = rng.randint(1, 4)
        batch_timestamps = [base + tag * 100 + rng.randint(-150, 150) for _ in range(count)]
        records = [Record(ts, b"k", b"%d" % tag) for ts in batch_timestamps]
        log.append_as_leader(encode_batch(records), 0)
        timestamps.extend(batch_timestamps)
    assert log.segment_count >= 5
    for target in [
        0,
        base,
        base + 7_777,
        base + 14_999,
        base + 15_200,
        *[rng.randint(base - 200, base + 15_200) for _ in range(100)],
    ]:
        expected = next(((ts, off) for off, ts in enumerate(timestamps) if ts >= target), None)
        found = log.offsets_for_time(target)
        assert (None if found is None else (found.timestamp, found.offset)) == expected, target
    assert log.offsets_for_time(EARLIEST_TIMESTAMP).offset == 0
    assert log.offsets_for_time(LATEST_TIMESTAMP).offset == len(timestamps)
    assert log.offsets_for_time(TIMESTAMP_MAX).timestamp == max(timestamps)
    with pytest.raises(ValueError):
        log.offsets_for_time(-4)


@pytest.mark.parametrize("compression", [CompressionType.NONE, CompressionType.GZIP])
def test_max_timestamp_is_the_offset_of_the_record_not_of_its_batch(tmp_path, compression):
    """Goal: ListOffsets MAX_TIMESTAMP (KIP-734, KAFKA-16310) answers the offset of the first record
    carrying the largest timestamp, inside a batch of several records, in a sealed segment and in
    the active one, compressed or not.

    Method: batches whose largest timestamp sits on their middle record; roll after the first
    batches so the answer is first in a sealed segment, then in the active one.
    """
    log = open_log(tmp_path)
    log.append_as_leader(encode_batch([Record(100, b"k", b"a"), Record(900, b"k", b"b"), Record(50, b"k", b"c")],
                                      compression=compression), 0)
    log.append_as_leader(encode_batch([Record(200, b"k", b"d"), Record(900, b"k", b"e")], compression=compression), 0)
    found = log.offsets_for_time(TIMESTAMP_MAX)
    assert (found.timestamp, found.offset) == (900, 1)
    log.roll()
    log.append_as_leader(encode_batch([Record(300, b"k", b"f"), Record(950, b"k", b"g"), Record(950, b"k", b"h")],
                                      compression=compression), 0)
    found = log.offsets_for_time(TIMESTAMP_MAX)
    assert (found.timestamp, found.offset) == (950, 6)
    log.close()
    reopened = open_log(tmp_path)
    found = reopened.offsets_for_time(TIMESTAMP_MAX)
    assert (found.timestamp, found.offset) == (950, 6)


# ------------------------------------------------------------------------------------------------
# Leader epochs.


def test_end_offset_for_epoch_follows_kafka(tmp_path):
    """Goal: OffsetsForLeaderEpoch answers (KIP-101/279): largest epoch <= requested and where the
    next epoch starts, the latest epoch ends at the log end, unknown is (-1, -1).
    """
    log = open_log(tmp_path)
    assert log.end_offset_for_epoch(0) == (-1, -1)
    log.assign_epoch_start_offset(2, 0)
    log.append_as_leader(batch(5), 2)
    log.append_as_leader(batch(5), 5)
    log.append_as_leader(batch(5), 7)
    assert log.leader_epoch_entries == [(2, 0), (5, 5), (7, 10)]
    assert log.latest_epoch == 7
    assert log.end_offset_for_epoch(7) == (7, 15)
    assert log.end_offset_for_epoch(6) == (5, 10)
    assert log.end_offset_for_epoch(5) == (5, 10)
    assert log.end_offset_for_epoch(3) == (2, 5)
    assert log.end_offset_for_epoch(1) == (1, 0)
    assert log.end_offset_for_epoch(8) == (-1, -1)
    assert log.end_offset_for_epoch(-1) == (-1, -1)


# ------------------------------------------------------------------------------------------------
# Retention.


def test_retention_by_time_deletes_whole_old_segments_below_the_high_watermark(tmp_path, clock):
    """Goal: retention.ms deletes only whole expired segments that end at or below the high
    watermark. Method: old and new batches, first with a low then with a full high watermark.
    """
    log = open_log(tmp_path, config=SMALL_CONFIG.with_changes(retention_ms=DAY_MS), clock=clock)
    old = clock.now_ms() - 2 * DAY_MS
    for _ in range(20):
        log.append_as_leader(batch(3, value_size=100, timestamp=old), 0)
    log.roll()
    for _ in range(5):
        log.append_as_leader(batch(3, value_size=100, timestamp=clock.now_ms()), 0)
    old_segments = log.segment_base_offsets()[:-1]
    assert log.delete_old_segments(clock.now_ms(), high_watermark=30) == sum(
        1 for base in old_segments[1:] if base <= 30
    )
    assert log.log_start_offset <= 30
    deleted = log.delete_old_segments(clock.now_ms(), high_watermark=log.log_end_offset)
    assert deleted > 0
    assert log.log_start_offset == 60
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    assert verified_records(read_all(log))[0][0] == 60
    assert log.size_bytes == sum(os.path.getsize(path) for path in segment_files(log.directory))


def test_retention_by_bytes_keeps_the_newest_segments_within_the_limit(tmp_path, clock):
    """Goal: Kafka's retention.bytes: delete oldest segments while the log stays at or above the
    limit.
    """
    log = open_log(
        tmp_path, config=SMALL_CONFIG.with_changes(retention_bytes=10_000, retention_ms=-1), clock=clock
    )
    for _ in range(100):
        log.append_as_leader(batch(3, value_size=100), 0)
    assert log.size_bytes > 20_000
    assert log.delete_old_segments(clock.now_ms(), log.log_end_offset) > 0
    # Kafka keeps at least retention.bytes: deleting one more segment would go below it.
    assert log.size_bytes >= 10_000
    assert log.size_bytes - os.path.getsize(segment_files(log.directory)[0]) < 10_000
    assert log.log_end_offset == 300


def test_retention_of_every_segment_rolls_first_and_keeps_the_log_end(tmp_path, clock):
    """Goal: when every segment expires the log rolls first, so log start = log end and appends
    continue at the same offset.
    """
    log = open_log(tmp_path, config=SMALL_CONFIG.with_changes(retention_ms=1000), clock=clock)
    for _ in range(10):
        log.append_as_leader(batch(2, timestamp=clock.now_ms()), 0)
    clock.advance(5000)
    assert log.delete_old_segments(clock.now_ms(), high_watermark=20) >= 1
    assert (log.log_start_offset, log.log_end_offset) == (20, 20)
    assert log.append_as_leader(batch(1), 0).first_offset == 20


def test_compact_only_logs_are_not_deleted_by_retention(tmp_path, clock):
    """Goal: retention applies only when cleanup.policy contains delete."""
    log = open_log(
        tmp_path,
        config=SMALL_CONFIG.with_changes(retention_ms=1, cleanup_policy=frozenset({"compact"})),
        clock=clock,
    )
    for _ in range(30):
        log.append_as_leader(batch(3, value_size=100, timestamp=0), 0)
    assert log.delete_old_segments(clock.now_ms(), log.log_end_offset) == 0
    assert log.log_start_offset == 0


# ------------------------------------------------------------------------------------------------
# Flush, close, reopen, delete.


def _count_segment_flushes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real_flush = LogSegment.flush

    def counting_flush(segment: LogSegment) -> None:
        calls.append(segment.log_path)
        real_flush(segment)

    monkeypatch.setattr(LogSegment, "flush", counting_flush)
    return calls


def test_flush_messages_fsyncs_after_that_many_records(tmp_path, monkeypatch):
    """Goal: flush.messages fsyncs once that many records are unflushed. Method: count segment
    flushes.
    """
    log = open_log(tmp_path, config=LogConfig(flush_messages=5))
    calls = _count_segment_flushes(monkeypatch)
    log.append_as_leader(batch(3), 0)
    assert calls == []
    log.append_as_leader(batch(3), 0)
    assert len(calls) == 1
    log.append_as_leader(batch(1), 0)
    assert len(calls) == 1


def test_flush_ms_fsyncs_when_the_interval_has_passed(tmp_path, monkeypatch, clock):
    """Goal: flush.ms fsyncs (through the periodic maybe_flush) once the interval has passed since
    the last flush.
    """
    log = open_log(tmp_path, config=LogConfig(flush_ms=1000), clock=clock)
    calls = _count_segment_flushes(monkeypatch)
    log.append_as_leader(batch(1), 0)
    assert not log.maybe_flush()
    clock.advance(1000)
    assert log.maybe_flush()
    assert len(calls) == 1
    assert not log.maybe_flush()


def test_clean_close_and_reopen_keeps_everything(tmp_path, clock):
    """Goal: a clean close writes the marker; the next open trusts it (no repairs), removes it, and
    restores offsets, epochs and segments.
    """
    log = open_log(tmp_path, clock=clock, topic_id="t-id")
    for tag in range(30):
        log.append_as_leader(batch(2, value_size=80, tag=tag), tag // 10)
    before = read_all(log)
    state = (log.log_start_offset, log.log_end_offset, log.leader_epoch_entries, log.segment_base_offsets())
    log.close()
    log.close()
    assert os.path.exists(os.path.join(log.directory, CLEAN_SHUTDOWN_FILE_NAME))
    with pytest.raises(LogClosedError):
        log.read(0, 10)
    reopened = open_log(tmp_path, clock=clock, topic_id="t-id")
    assert not os.path.exists(os.path.join(reopened.directory, CLEAN_SHUTDOWN_FILE_NAME))
    assert reopened.repairs == []
    assert (
        reopened.log_start_offset,
        reopened.log_end_offset,
        reopened.leader_epoch_entries,
        reopened.segment_base_offsets(),
    ) == state
    assert read_all(reopened) == before
    assert reopened.append_as_leader(batch(1), 2).first_offset == 60
    assert reopened.topic_id == "t-id"


def test_a_directory_of_another_topic_id_is_refused(tmp_path):
    """Goal: a partition directory of a deleted-and-recreated topic is not served as the new topic
    (partition.metadata).
    """
    open_log(tmp_path, topic_id="first").close()
    with pytest.raises(InconsistentTopicIdError) as raised:
        open_log(tmp_path, topic_id="second")
    assert (raised.value.expected_topic_id, raised.value.found_topic_id) == ("second", "first")


def test_delete_removes_the_directory(tmp_path):
    """Goal: delete() removes every file and the log refuses further use, its offsets too (a
    storage error the broker handles, not an IndexError)."""
    log = open_log(tmp_path)
    log.append_as_leader(batch(3), 0)
    log.delete()
    assert os.listdir(tmp_path) == []
    with pytest.raises(LogClosedError):
        log.append_as_leader(batch(1), 0)
    with pytest.raises(LogClosedError):
        _ = log.log_end_offset
    with pytest.raises(LogClosedError):
        _ = log.log_start_offset


def test_reads_and_appends_after_an_unclean_stop_continue_where_the_log_ended(tmp_path, clock):
    """Goal: a process crash (no marker, data in the page cache) loses nothing; recovery re-reads
    the active segment.
    """
    log = open_log(tmp_path, clock=clock)
    for tag in range(25):
        log.append_as_leader(batch(2, value_size=90, tag=tag, compression=CompressionType.LZ4), 1)
    before = read_all(log)
    crash(log)
    reopened = open_log(tmp_path, clock=clock)
    assert read_all(reopened) == before
    assert reopened.append_as_leader(batch(1), 1).first_offset == 50


def test_active_producers_lists_each_idempotent_producer_with_its_last_batch(tmp_path):
    """Goal: DescribeProducers' view of a partition (producer id, epoch, last sequence, last
    timestamp), surviving a reopen. Method: two idempotent producers and one plain one append."""
    log = open_log(tmp_path)
    now = int(time.time() * 1000)                 # recent, so the reopen does not expire them
    log.append_as_leader(encode_batch([Record(now + 100, b"k", b"v")] * 2, producer_id=9, producer_epoch=1, base_sequence=0), 0)
    log.append_as_leader(encode_batch([Record(now + 300, b"k", b"v")], producer_id=9, producer_epoch=1, base_sequence=2), 0)
    log.append_as_leader(encode_batch([Record(now + 200, b"k", b"v")], producer_id=4, producer_epoch=0, base_sequence=0), 0)
    log.append_as_leader(encode_batch([Record(now + 400, b"k", b"v")]), 0)
    assert log.active_producers() == [(4, 0, 0, now + 200), (9, 1, 2, now + 300)]
    log.close()
    assert open_log(tmp_path).active_producers() == [(4, 0, 0, now + 200), (9, 1, 2, now + 300)]
