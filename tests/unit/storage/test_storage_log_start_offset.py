"""The log start offset moved by DeleteRecords: forward only, bounded by the high watermark,
durable through log-start-offset-checkpoint, respected by reads, ListOffsets, retention,
compaction, truncation and recovery.

Reference: Kafka's UnifiedLog.maybeIncrementLogStartOffset and deleteLogStartOffsetBreachedSegments,
LogLoader (log start offset from the checkpoint, segments below it, a log end below it), KIP-107
(DeleteRecords).
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.checkpoint import read_checkpoint, write_checkpoint
from freshet.storage.cleaner import CleanerConfig, LogCleaner
from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.errors import KafkaStorageError, LogClosedError, OffsetOutOfRangeError
from freshet.storage.log import EARLIEST_TIMESTAMP, PartitionLog
from freshet.storage.log_loader import (
    LOG_START_OFFSET_CHECKPOINT_FILE_NAME,
    LOG_START_OFFSET_CHECKPOINT_VERSION,
)
from freshet.storage.log_segments import LogSegments
from freshet.storage.record_batch import Record, encode_batch

from tests.support.storage_helpers import (
    SMALL_CONFIG,
    batch,
    crash,
    read_all,
    segment_files,
    verified_records,
)


@pytest.fixture
def clock():
    return ManualClock(1_700_000_000_000)


def open_log(tmp_path, config=SMALL_CONFIG, clock=None):
    return PartitionLog.open(str(tmp_path / "topic-0"), config, clock or ManualClock())


def filled_log(tmp_path, clock, batches=40, records_per_batch=3, config=SMALL_CONFIG):
    """A log of `batches` batches of `records_per_batch` records over several segments."""
    log = open_log(tmp_path, config, clock)
    for tag in range(batches):
        log.append_as_leader(batch(records_per_batch, value_size=100, tag=tag, timestamp=clock.now_ms()), 1)
    assert log.segment_count > 3
    return log


def checkpointed(log: PartitionLog) -> int | None:
    entries = read_checkpoint(
        os.path.join(log.directory, LOG_START_OFFSET_CHECKPOINT_FILE_NAME),
        LOG_START_OFFSET_CHECKPOINT_VERSION,
        lambda fields: int(fields[0]),
    )
    return None if entries is None else entries[0]


def first_record_offset(log: PartitionLog, offset: int) -> int:
    """The offset of the first record a read at `offset` returns (its batch may start earlier)."""
    return verified_records(log.read(offset, 1 << 20).records)[0][0]


def test_delete_records_moves_the_start_inside_a_segment_and_deletes_the_segments_below(tmp_path, clock):
    """Goal: Kafka's maybeIncrementLogStartOffset: the start moves to any offset, even inside a
    batch; whole segments below it go; reads below it are OUT_OF_RANGE; ListOffsets earliest
    answers it. Method: 120 records over several segments, delete before 40 (inside a batch).
    """
    log = filled_log(tmp_path, clock)
    bases = log.segment_base_offsets()
    assert log.delete_records_before(40, high_watermark=log.log_end_offset) == 40
    assert log.log_start_offset == 40
    assert log.segment_base_offsets() == [base for base in bases if base > 40 or base == max(b for b in bases if b <= 40)]
    assert log.segment_base_offsets()[0] <= 40
    with pytest.raises(OffsetOutOfRangeError) as raised:
        log.read(10, 1000)
    assert raised.value.log_start_offset == 40
    with pytest.raises(OffsetOutOfRangeError):
        log.read(39, 1000)
    assert first_record_offset(log, 40) == 39             # the batch [39, 41] holding offset 40
    assert log.offsets_for_time(EARLIEST_TIMESTAMP).offset == 40
    assert log.append_as_leader(batch(1), 1).log_start_offset == 40
    assert checkpointed(log) == 40


def test_delete_records_only_moves_forward_and_never_past_the_high_watermark(tmp_path, clock):
    """Goal: the start never goes back and never passes the caller's high watermark (Kafka:
    OffsetOutOfRangeException above it). Method: delete before 30, then 20, then above the HW.
    """
    log = filled_log(tmp_path, clock)
    assert log.delete_records_before(30, high_watermark=100) == 30
    assert log.delete_records_before(20, high_watermark=100) == 30
    assert log.delete_records_before(30, high_watermark=100) == 30
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(101, high_watermark=100)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(-1, high_watermark=100)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(log.log_end_offset + 1, high_watermark=10**9)
    assert log.log_start_offset == 30
    assert log.delete_records_before(100, high_watermark=100) == 100


def test_delete_records_up_to_the_log_end_empties_the_readable_log(tmp_path, clock):
    """Goal: deleting everything (offset = high watermark = log end) leaves start = end, appends
    continue at the end, and the active segment is kept (as Kafka, which never deletes it here).
    """
    log = filled_log(tmp_path, clock)
    end = log.log_end_offset
    assert log.delete_records_before(end, high_watermark=end) == end
    assert (log.log_start_offset, log.log_end_offset) == (end, end)
    assert read_all(log) == b""
    assert log.append_as_leader(batch(2), 1).first_offset == end
    assert first_record_offset(log, end) == end


def test_the_start_survives_a_clean_restart_and_a_crash(tmp_path, clock):
    """Goal: the start is durable before delete_records_before returns. Method: delete, then
    close and reopen; delete further, then crash (no marker) and reopen.
    """
    log = filled_log(tmp_path, clock)
    log.delete_records_before(40, high_watermark=log.log_end_offset)
    log.close()
    log = open_log(tmp_path, clock=clock)
    assert log.log_start_offset == 40
    with pytest.raises(OffsetOutOfRangeError):
        log.read(10, 1000)
    log.delete_records_before(50, high_watermark=log.log_end_offset)
    before = read_all(log)
    crash(log)
    log = open_log(tmp_path, clock=clock)
    assert log.log_start_offset == 50
    assert read_all(log) == before
    assert log.offsets_for_time(EARLIEST_TIMESTAMP).offset == 50


def test_a_crash_between_the_checkpoint_and_the_segment_deletion_deletes_them_on_open(tmp_path, clock, monkeypatch):
    """Goal: the checkpoint is written before segments are deleted; a crash in between leaves
    segments below the start, which the next open deletes (Kafka's LogLoader drops segments
    below the checkpointed start). Method: make the segment deletion fail (the log goes offline),
    crash, reopen.
    """
    log = filled_log(tmp_path, clock)
    old_files = segment_files(log.directory)

    def fail(self, count):
        raise KafkaStorageError(self.directory, "delete segment", OSError(5, "simulated crash"))

    monkeypatch.setattr(LogSegments, "delete_prefix", fail)
    with pytest.raises(KafkaStorageError):
        log.delete_records_before(70, high_watermark=log.log_end_offset)
    monkeypatch.undo()
    assert segment_files(log.directory) == old_files        # nothing deleted yet
    assert checkpointed(log) == 70                          # but the start is durable
    crash(log)
    log = open_log(tmp_path, clock=clock)
    assert log.log_start_offset == 70
    assert len(segment_files(log.directory)) < len(old_files)
    assert log.segment_base_offsets()[0] <= 70 < (log.segment_base_offsets() + [log.log_end_offset + 1])[1]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(69, 1000)
    assert first_record_offset(log, 70) == 69


def test_a_crash_between_the_segment_deletion_and_the_checkpoint_takes_the_first_base_offset(tmp_path, clock):
    """Goal: segments deleted while the checkpoint still names an older start (retention deletes
    without writing it; a crash after deleting and before a checkpoint write looks the same) open
    with start = max(checkpoint, first base offset). Method: checkpoint at 10, delete the first
    segments by hand (as a crash would leave them), crash, reopen.
    """
    log = filled_log(tmp_path, clock)
    log.delete_records_before(10, high_watermark=log.log_end_offset)
    crash(log)
    files = segment_files(log.directory)
    for path in files[:2]:
        for suffix in (".log", ".index", ".timeindex"):
            os.unlink(path[: -len(".log")] + suffix)
    expected_start = int(os.path.basename(files[2])[:-4])
    log = open_log(tmp_path, clock=clock)
    assert checkpointed(log) == 10
    assert log.log_start_offset == expected_start
    assert first_record_offset(log, expected_start) == expected_start


def test_a_checkpointed_start_above_the_recovered_log_end_restarts_the_log_there(tmp_path, clock):
    """Goal: Kafka's LogLoader: when recovery leaves the log end below the checkpointed start
    (an OS crash lost the tail), every segment goes and the log restarts empty at the start.
    Method: write a checkpoint above the log end, crash, reopen.
    """
    log = filled_log(tmp_path, clock)
    end = log.log_end_offset
    crash(log)
    write_checkpoint(os.path.join(log.directory, LOG_START_OFFSET_CHECKPOINT_FILE_NAME), 0, [(end + 5,)])
    log = open_log(tmp_path, clock=clock)
    assert (log.log_start_offset, log.log_end_offset) == (end + 5, end + 5)
    assert log.segment_base_offsets() == [end + 5]
    assert log.append_as_leader(batch(1), 2).first_offset == end + 5


def test_a_corrupt_checkpoint_falls_back_to_the_first_base_offset(tmp_path, clock):
    """Goal: an unreadable log-start-offset-checkpoint does not take the log offline."""
    log = filled_log(tmp_path, clock)
    log.delete_records_before(40, high_watermark=log.log_end_offset)
    first_base = log.segment_base_offsets()[0]
    log.close()
    with open(os.path.join(log.directory, LOG_START_OFFSET_CHECKPOINT_FILE_NAME), "wb") as file:
        file.write(b"garbage")
    log = open_log(tmp_path, clock=clock)
    assert log.log_start_offset == first_base


def test_retention_keeps_a_start_inside_a_segment_and_moves_it_with_deleted_segments(tmp_path, clock):
    """Goal: retention respects the start: deleting segments before it keeps it; deleting the
    segment holding it moves it to the next segment's base. Method: delete records inside a
    segment, then retention by bytes.
    """
    config = SMALL_CONFIG.with_changes(retention_ms=-1, retention_bytes=-1)
    log = filled_log(tmp_path, clock, config=config)
    log.delete_records_before(40, high_watermark=log.log_end_offset)
    assert log.delete_old_segments(clock.now_ms(), log.log_end_offset) == 0
    assert log.log_start_offset == 40
    log.update_config(config.with_changes(retention_bytes=1))
    assert log.delete_old_segments(clock.now_ms(), log.log_end_offset) > 0
    assert log.log_start_offset == log.segment_base_offsets()[0] > 40
    crash(log)
    assert open_log(tmp_path, config, clock).log_start_offset == log.segment_base_offsets()[0]


def test_truncation_keeps_the_start_at_or_below_the_log_end(tmp_path, clock):
    """Goal: a follower truncating inside the batch that holds the start brings the start back
    to the new log end (Kafka: min(target offset, log start)), durably; truncating below the
    start restarts the log at the target. Method: start 40 in batch [39, 41], truncate to 40;
    then truncate to 20.
    """
    log = filled_log(tmp_path, clock)
    log.delete_records_before(40, high_watermark=log.log_end_offset)
    log.truncate_to(40)
    assert (log.log_start_offset, log.log_end_offset) == (39, 39)
    crash(log)
    log = open_log(tmp_path, clock=clock)
    assert (log.log_start_offset, log.log_end_offset) == (39, 39)
    log.truncate_to(20)
    assert (log.log_start_offset, log.log_end_offset) == (20, 20)
    crash(log)
    log = open_log(tmp_path, clock=clock)
    assert (log.log_start_offset, log.log_end_offset) == (20, 20)


def test_compaction_never_moves_the_cleaner_checkpoint_below_the_start(tmp_path, clock):
    """Goal: compaction respects the start: the dirty section begins at or after it, and a
    cleaned segment keeps it (records below it stay unreadable). Method: a compacted log,
    delete before 40, clean, read.
    """
    config = LogConfig(segment_bytes=4000, index_interval_bytes=256, cleanup_policy=frozenset({"compact"}),
                       min_cleanable_dirty_ratio=0.01)
    log = open_log(tmp_path, config, clock)
    for number in range(200):
        log.append_as_leader(encode_batch([Record(clock.now_ms(), b"key-%d" % (number % 7), b"v%d" % number)]), 1)
    log.delete_records_before(40, high_watermark=log.log_end_offset)
    assert log.cleaner_checkpoint >= 40
    cleaner = LogCleaner(lambda: [log], clock, CleanerConfig())
    cleaner.clean_log(log, clock.now_ms())
    assert log.log_start_offset == 40
    assert all(offset >= 40 for offset, _, _ in verified_records(read_all(log)) if offset >= log.log_start_offset)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(39, 1000)


def test_delete_records_on_a_closed_log_raises(tmp_path, clock):
    log = filled_log(tmp_path, clock)
    log.close()
    with pytest.raises(LogClosedError):
        log.delete_records_before(10, high_watermark=100)
