"""`PartitionLog.timestamp_at`: the timestamp of the record at an offset, from batch headers only.

Goal: consumer lag in time (README "Consumer lag in time") needs, per group and partition, the
timestamp of the first uncommitted record, cheaply enough to ask for every group on a timer. The
lookup answers from the header of the batch holding the offset (offset index, then a short header
scan), so it is compared here with a scan that decodes every record.
Reference: Kafka's LogSegment.translateOffset (offset index + batch scan); kafka-lag-exporter's
"time lag" estimate, which this replaces with the broker's own answer.
"""

from __future__ import annotations

import random

from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import (
    NO_TIMESTAMP,
    Record,
    TimestampType,
    decode_batch,
    encode_batch,
    iter_batches,
)

from tests.support.storage_helpers import SMALL_CONFIG, read_all


def open_log(tmp_path, config=SMALL_CONFIG, clock=None):
    return PartitionLog.open(str(tmp_path / "t-0"), config, clock or ManualClock(1_700_000_000_000))


def _append_batches(log, rng, batches: int) -> list[tuple[int, int, int]]:
    """Append `batches` CreateTime batches of 1..5 records stamped in order; returns
    (base offset, last offset, first timestamp) per batch."""
    placed = []
    now = 1_000_000
    for _ in range(batches):
        count = rng.randint(1, 5)
        timestamps = [now + step * rng.randint(0, 40) for step in range(count)]
        timestamps.sort()
        info = log.append_as_leader(encode_batch([Record(ts, b"k", b"v" * 30) for ts in timestamps]), 0)
        placed.append((info.first_offset, info.last_offset, timestamps[0]))
        now = timestamps[-1] + rng.randint(1, 500)
    return placed


def test_timestamp_at_is_the_first_timestamp_of_the_batch_holding_the_offset(tmp_path):
    """Goal: every offset answers its batch's first timestamp, across many segments and index
    entries; the answer is <= the record's own timestamp and the difference is bounded by the
    batch's time span.

    Method: random batches over many small segments; every offset is compared with a full decode.
    """
    rng = random.Random(7)
    log = open_log(tmp_path, config=LogConfig(segment_bytes=2000, index_interval_bytes=150))
    placed = _append_batches(log, rng, 120)
    assert log.segment_count >= 5
    own = {}
    for _, view in iter_batches(read_all(log)):
        decoded = decode_batch(view)
        for number, record in enumerate(decoded.records):
            own[decoded.header.base_offset + number] = (record.timestamp, decoded.header.max_timestamp)
    high_watermark = log.log_end_offset
    for base, last, first_timestamp in placed:
        for offset in range(base, last + 1):
            found = log.timestamp_at(offset, high_watermark)
            assert found == first_timestamp, offset
            record_timestamp, batch_max = own[offset]
            assert found <= record_timestamp <= batch_max


def test_timestamp_at_or_above_the_high_watermark_is_none(tmp_path):
    """Goal: a group caught up to the high watermark (or beyond the log end) has no uncommitted
    record: None, even when records above the high watermark exist (not yet committed)."""
    log = open_log(tmp_path)
    placed = _append_batches(log, random.Random(1), 10)
    end = log.log_end_offset
    assert log.timestamp_at(end, end) is None
    assert log.timestamp_at(end + 100, end) is None
    high_watermark = placed[5][0]
    assert log.timestamp_at(high_watermark, high_watermark) is None
    assert log.timestamp_at(high_watermark - 1, high_watermark) == placed[4][2]
    assert log.timestamp_at(0, 0) is None


def test_timestamp_below_the_log_start_answers_the_first_record_still_there(tmp_path):
    """Goal: an offset that retention (or DeleteRecords) removed answers the age of the first
    record still in the log: the consumer's next fetch resets there or later.

    Method: many segments; delete the old ones through retention.bytes, then DeleteRecords inside
    a batch; ask for offset 0.
    """
    log = open_log(tmp_path, config=LogConfig(segment_bytes=1500, index_interval_bytes=150, retention_bytes=3000))
    placed = _append_batches(log, random.Random(3), 80)
    high_watermark = log.log_end_offset
    assert log.delete_old_segments(0, high_watermark) > 0
    start = log.log_start_offset
    assert start > 0
    holding = next(p for p in placed if p[0] <= start <= p[1])
    assert log.timestamp_at(0, high_watermark) == holding[2]
    inside = next(p for p in placed if p[1] > p[0] and p[0] > start)
    log.delete_records_before(inside[0] + 1, high_watermark)
    assert log.log_start_offset == inside[0] + 1
    assert log.timestamp_at(0, high_watermark) == inside[2]


def test_log_append_time_batches_answer_the_append_time(tmp_path):
    """Goal: with message.timestamp.type=LogAppendTime every record carries the broker's append
    time (the header's max timestamp), whatever the producer stamped."""
    clock = ManualClock(1_700_000_000_000)
    log = open_log(
        tmp_path, config=SMALL_CONFIG.with_changes(message_timestamp_type=TimestampType.LOG_APPEND_TIME), clock=clock
    )
    log.append_as_leader(encode_batch([Record(5, b"k", b"a"), Record(6, b"k", b"b")]), 0)
    clock.advance(60_000)
    log.append_as_leader(encode_batch([Record(7, b"k", b"c")]), 0)
    end = log.log_end_offset
    assert [log.timestamp_at(offset, end) for offset in range(3)] == [
        1_700_000_000_000, 1_700_000_000_000, 1_700_000_060_000,
    ]


def test_a_batch_without_timestamps_answers_no_timestamp(tmp_path):
    """Goal: a batch whose records carry no timestamp (-1) says so instead of a made-up age."""
    log = open_log(tmp_path)
    log.append_as_leader(encode_batch([Record(NO_TIMESTAMP, b"k", b"a")]), 0)
    assert log.timestamp_at(0, log.log_end_offset) == NO_TIMESTAMP
