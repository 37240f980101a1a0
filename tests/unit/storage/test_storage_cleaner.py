"""Log compaction: latest value per key, offsets preserved, tombstones, concurrency, crash safety.

Reference: Kafka's LogCleaner (log compaction design, "cleanup.policy=compact") and KIP-58
(min.compaction.lag.ms).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
import threading
import time
from collections.abc import Iterator

import cramjam
import pytest
from freshet.storage import cleaner as cleaner_module
from freshet.storage.cleaner import CleanerConfig, LogCleaner
from freshet.storage.clock import ManualClock
from freshet.storage.compression import XERIAL_MAGIC, CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import (
    ATTRIBUTES_POSITION,
    BATCH_HEADER_SIZE,
    CRC_POSITION,
    LOG_OVERHEAD,
    Record,
    compute_crc,
    decode_batch,
    encode_batch,
    iter_batches,
    parse_header,
)

from tests.support.storage_helpers import crash, headers_of, read_all, segment_files, verified_records

DAY_MS = 24 * 3600 * 1000
COMPACTED = LogConfig(
    segment_bytes=4000,
    index_interval_bytes=256,
    cleanup_policy=frozenset({"compact"}),
    min_cleanable_dirty_ratio=0.01,
)


def records_of(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """(offset, key, value, timestamp) of every record the log serves (CRCs verified)."""
    out = []
    for _, view in iter_batches(read_all(log)):
        out.extend((r.offset, r.key, r.value, r.timestamp) for r in decode_batch(view).records)
    return out


def fill(
    log: PartitionLog, rng: random.Random, batches: int, keys: int, now_ms: int, codec=CompressionType.NONE
):
    """Append random keyed records; return the (offset, key, value) model of what was written."""
    written = []
    for _ in range(batches):
        records = [
            Record(now_ms, b"key-%d" % rng.randrange(keys), b"value-%d" % rng.randrange(10**9))
            for _ in range(rng.randint(1, 6))
        ]
        info = log.append_as_leader(encode_batch(records, compression=codec), 1)
        written.extend((info.first_offset + n, record.key, record.value) for n, record in enumerate(records))
    return written


def expected_after_compaction(written, active_base: int):
    """Latest record per key below the active segment, plus everything in the active segment."""
    latest = {}
    for offset, key, _ in written:
        if offset < active_base:
            latest[key] = offset
    keep = set(latest.values())
    return [(o, k, v) for o, k, v in written if o >= active_base or o in keep]


@pytest.mark.parametrize(
    "codec", [CompressionType.NONE, CompressionType.ZSTD, CompressionType.GZIP, CompressionType.SNAPPY]
)
def test_compaction_keeps_the_latest_record_per_key_at_its_offset(tmp_path, codec):
    """Goal: after cleaning, every key below the active segment appears once, with its latest value
    at its original offset; the active segment, the log end and the batch boundaries survive.

    Method: random keys over many segments; compare with a model computed from what was written.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    written = fill(log, random.Random(1), batches=300, keys=40, now_ms=clock.now_ms(), codec=codec)
    end = log.log_end_offset
    active_base = log.segment_base_offsets()[-1]
    size_before = log.size_bytes
    stats = LogCleaner(lambda: [log], clock).clean_log(log, clock.now_ms())
    assert stats is not None and stats.records_kept < stats.records_read
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == expected_after_compaction(written, active_base)
    assert log.log_end_offset == end
    assert log.log_start_offset == 0
    assert log.size_bytes < size_before
    assert log.size_bytes == sum(os.path.getsize(path) for path in segment_files(log.directory))
    assert all(header.compression == codec for header in headers_of(read_all(log)))
    assert log.cleaner_checkpoint == active_base
    # Reads at any offset still land on the first batch at or after it.
    for offset in range(0, end, 7):
        first = headers_of(log.read(offset, 1).records)[0]
        assert first.last_offset >= offset
    # Reopening finds the same log (indexes of cleaned segments were written).
    log.close()
    reopened = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    assert reopened.repairs == []
    assert [(o, k, v) for o, k, v, _ in records_of(reopened)] == expected_after_compaction(
        written, active_base
    )


def _raw_snappy_batch(records: list[Record]) -> bytearray:
    """A snappy batch as librdkafka writes it: the records section in raw snappy, no xerial framing."""
    plain = encode_batch(records)
    section = bytes(cramjam.snappy.compress_raw(plain[BATCH_HEADER_SIZE:]))
    batch = bytearray(plain[:BATCH_HEADER_SIZE]) + section
    struct.pack_into(">i", batch, 8, len(batch) - LOG_OVERHEAD)  # batch_length
    struct.pack_into(">h", batch, ATTRIBUTES_POSITION, CompressionType.SNAPPY)
    struct.pack_into(">I", batch, CRC_POSITION, compute_crc(batch))
    return batch


def test_compaction_of_raw_snappy_batches_rewrites_them_in_xerial_framing(tmp_path):
    """Goal: the cleaner reads snappy batches from librdkafka (raw snappy) and writes the batches it
    rebuilds as the Java client would (xerial framing), still snappy and at the same offsets."""
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    now = clock.now_ms()
    for round_number in range(3):
        records = [Record(now, b"key-%d" % key, b"value-%d-%d" % (round_number, key) * 20) for key in range(4)]
        log.append_as_leader(_raw_snappy_batch(records), 0)
    log.roll()
    stats = LogCleaner(lambda: [log], clock).clean_log(log, now)
    assert stats is not None and stats.records_kept == 4
    assert [(o, k) for o, k, _, _ in records_of(log)] == [(8 + key, b"key-%d" % key) for key in range(4)]
    (kept,) = list(iter_batches(read_all(log)))
    assert parse_header(kept[1]).compression == CompressionType.SNAPPY
    # The last batch kept all its records, so it is copied as it was: still raw snappy.
    assert bytes(kept[1][BATCH_HEADER_SIZE : BATCH_HEADER_SIZE + 8]) != XERIAL_MAGIC
    log.append_as_leader(_raw_snappy_batch([Record(now, b"key-0", b"newest")]), 0)
    log.roll()
    LogCleaner(lambda: [log], clock).clean_log(log, now)
    rebuilt = [view for _, view in iter_batches(read_all(log))][0]
    assert parse_header(rebuilt).compression == CompressionType.SNAPPY
    assert bytes(rebuilt[BATCH_HEADER_SIZE : BATCH_HEADER_SIZE + 8]) == XERIAL_MAGIC
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == [
        (9, b"key-1", b"value-2-1" * 20),
        (10, b"key-2", b"value-2-2" * 20),
        (11, b"key-3", b"value-2-3" * 20),
        (12, b"key-0", b"newest"),
    ]


def test_cleaning_again_after_more_writes_compacts_old_and_new_together(tmp_path):
    """Goal: a second cleaning dedupes new writes against the already clean section. Method: clean,
    write as much again, check the dirty ratio triggers clean_once and compare with the model.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    rng = random.Random(2)
    cleaner = LogCleaner(lambda: [log], clock)
    written = fill(log, rng, batches=150, keys=30, now_ms=clock.now_ms())
    cleaner.clean_log(log, clock.now_ms())
    assert cleaner.dirty_ratio(log, clock.now_ms()) == 0.0
    assert not cleaner.clean_once()
    written += fill(log, rng, batches=150, keys=30, now_ms=clock.now_ms())
    assert cleaner.dirty_ratio(log, clock.now_ms()) > 0.5
    assert cleaner.clean_once()
    active_base = log.segment_base_offsets()[-1]
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == expected_after_compaction(written, active_base)


def test_tombstones_stay_for_delete_retention_ms_then_go(tmp_path):
    """Goal: a delete marker (null value) is served for delete.retention.ms, then removed with its key."""
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED.with_changes(delete_retention_ms=DAY_MS), clock)
    now = clock.now_ms()
    log.append_as_leader(encode_batch([Record(now, b"a", b"1"), Record(now, b"b", b"1")]), 0)
    log.append_as_leader(encode_batch([Record(now, b"a", None)]), 0)  # tombstone for a
    log.append_as_leader(encode_batch([Record(now, b"c", None), Record(now, b"c", b"back")]), 0)
    log.roll()
    log.append_as_leader(encode_batch([Record(now, b"z", b"active")]), 0)
    cleaner = LogCleaner(lambda: [log], clock)
    cleaner.clean_log(log, clock.now_ms())
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == [
        (1, b"b", b"1"),
        (2, b"a", None),
        (4, b"c", b"back"),
        (5, b"z", b"active"),
    ]
    clock.advance(DAY_MS + 1)
    stats = cleaner.clean_log(log, clock.now_ms())
    assert stats is not None and stats.tombstones_dropped == 1
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == [
        (1, b"b", b"1"),
        (4, b"c", b"back"),
        (5, b"z", b"active"),
    ]
    assert log.log_end_offset == 6


def test_keyless_records_are_dropped_and_empty_batches_disappear(tmp_path):
    """Goal: records without a key have no place in a compacted log (as Kafka). Method: a batch of
    keyless records vanishes, the keyed one stays at its offset.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    now = clock.now_ms()
    log.append_as_leader(encode_batch([Record(now, None, b"no key")] * 3), 0)
    log.append_as_leader(encode_batch([Record(now, b"k", b"1")]), 0)
    log.roll()
    stats = LogCleaner(lambda: [log], clock).clean_log(log, now)
    assert stats is not None and stats.keyless_dropped == 3
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == [(3, b"k", b"1")]
    assert [h.base_offset for h in headers_of(read_all(log))] == [3]


def test_a_compacted_leader_replicates_to_a_follower_with_gaps(tmp_path):
    """Goal: followers of a compacted log accept the offset gaps compaction leaves."""
    clock = ManualClock()
    leader = PartitionLog.open(str(tmp_path / "leader"), COMPACTED, clock)
    fill(leader, random.Random(3), batches=120, keys=10, now_ms=clock.now_ms())
    LogCleaner(lambda: [leader], clock).clean_log(leader, clock.now_ms())
    follower = PartitionLog.open(str(tmp_path / "follower"), COMPACTED, clock)
    offset = 0
    while offset < leader.log_end_offset:
        result = leader.read(offset, 3000)
        follower.append_as_follower(result.records)
        assert result.next_offset >= headers_of(result.records)[-1].next_offset
        offset = result.next_offset
    assert read_all(follower) == read_all(leader)
    assert follower.log_end_offset == leader.log_end_offset


def test_records_younger_than_min_compaction_lag_are_not_compacted(tmp_path):
    """Goal: KIP-58 min.compaction.lag.ms. Method: nothing is cleaned until the clock passes the
    lag.
    """
    clock = ManualClock()
    log = PartitionLog.open(
        str(tmp_path / "c-0"), COMPACTED.with_changes(min_compaction_lag_ms=60_000), clock
    )
    fill(log, random.Random(4), batches=100, keys=5, now_ms=clock.now_ms())
    cleaner = LogCleaner(lambda: [log], clock)
    before = read_all(log)
    assert cleaner.clean_log(log, clock.now_ms()) is None
    assert read_all(log) == before
    clock.advance(60_000)
    assert cleaner.clean_log(log, clock.now_ms()) is not None
    assert len(read_all(log)) < len(before)


def test_a_small_key_map_cleans_in_several_passes(tmp_path):
    """Goal: the offset map is bounded; a pass cleans up to where it filled, the next continues."""
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    written = []
    for round_number in range(2):
        for key in range(200):
            info = log.append_as_leader(
                encode_batch([Record(clock.now_ms(), b"k%d" % key, b"r%d" % round_number)]), 0
            )
            written.append((info.first_offset, b"k%d" % key, b"r%d" % round_number))
    cleaner = LogCleaner(lambda: [log], clock, CleanerConfig(max_map_keys=120))
    passes = 0
    while cleaner.clean_once():
        passes += 1
        assert passes < 20
    assert passes >= 2
    active_base = log.segment_base_offsets()[-1]
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == expected_after_compaction(written, active_base)


def test_appends_and_reads_proceed_while_the_cleaner_works(tmp_path, monkeypatch):
    """Goal: the cleaner never holds the log's lock while it reads, maps and writes.

    Method: stop the cleaner thread inside its first record decode (mid-cleaning); meanwhile the
    test thread appends and reads, each within a deadline; then let the cleaner finish and check
    both the compaction and the new data.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    written = fill(log, random.Random(5), batches=200, keys=20, now_ms=clock.now_ms())
    with _cleaner_paused_mid_cleaning(log, clock, monkeypatch) as results:
        started = time.monotonic()
        more = fill(log, random.Random(6), batches=100, keys=20, now_ms=clock.now_ms())
        assert log.read(0, 1000).records
        assert time.monotonic() - started < 10, "appends waited for the cleaner"
    assert results and results[0] is not None
    served = [(o, k, v) for o, k, v, _ in records_of(log)]
    assert served[-len(more) :] == more
    cleaned_part = [entry for entry in served if entry[0] < more[0][0]]
    assert len(cleaned_part) < len(written)


def test_truncation_while_cleaning_discards_the_cleaned_output(tmp_path, monkeypatch):
    """Goal: a follower truncation during a cleaning wins; the swap is refused. Method: block the
    cleaner mid-map, truncate, release; the log must be exactly the truncated one with no
    leftover files.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    fill(log, random.Random(7), batches=200, keys=20, now_ms=clock.now_ms())
    with _cleaner_paused_mid_cleaning(log, clock, monkeypatch) as results:
        log.truncate_to(log.segment_base_offsets()[1] + 3)
        expected = read_all(log)
    assert results == [None]
    assert read_all(log) == expected
    assert not [name for name in os.listdir(log.directory) if ".cleaned" in name or ".swap" in name]


@contextlib.contextmanager
def _cleaner_paused_mid_cleaning(log: PartitionLog, clock: ManualClock, monkeypatch) -> Iterator[list]:
    """Run clean_log on a thread and hold it inside its first record decode while the body runs.

    Yields the list that receives clean_log's result once the body is done and the thread ends.
    """
    inside, release = threading.Event(), threading.Event()
    real_decode = cleaner_module.decode_raw_records

    def blocking_decode(*args, **kwargs):
        if not inside.is_set():
            inside.set()
            assert release.wait(30), "the test never released the cleaner"
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(cleaner_module, "decode_raw_records", blocking_decode)
    results: list = []
    thread = threading.Thread(
        target=lambda: results.append(LogCleaner(lambda: [log], clock).clean_log(log, clock.now_ms()))
    )
    thread.start()
    try:
        assert inside.wait(10), "the cleaner never started decoding"
        yield results
    finally:
        release.set()
        thread.join(30)
    assert not thread.is_alive()


def test_a_crash_during_the_swap_is_completed_or_discarded_on_open(tmp_path):
    """Goal: Kafka's .cleaned/.swap protocol: unfinished output is discarded, a committed swap is
    finished, and either way the log opens to a consistent state.

    Method: clean a copy of a log; put its cleaned segment files back into the original directory
    under the .swap (committed) or .cleaned (unfinished) suffix, as a crash would leave them.
    """
    clock = ManualClock()
    original = tmp_path / "original"
    log = PartitionLog.open(str(original), COMPACTED, clock)
    fill(log, random.Random(8), batches=200, keys=15, now_ms=clock.now_ms())
    uncleaned = read_all(log)
    crash(log)
    cleaned_dir = tmp_path / "cleaned"
    shutil.copytree(original, cleaned_dir)
    cleaned_log = PartitionLog.open(str(cleaned_dir), COMPACTED, clock)
    LogCleaner(lambda: [cleaned_log], clock, CleanerConfig()).clean_log(cleaned_log, clock.now_ms())
    first_base = cleaned_log.segment_base_offsets()[0]
    crash(cleaned_log)
    stem = f"{first_base:020d}"
    original_files = segment_files(str(original))
    later = b"".join(open(path, "rb").read() for path in original_files[1:])
    # A committed swap of the first group: its cleaned segment, then the untouched later segments.
    swapped = open(cleaned_dir / (stem + ".log"), "rb").read() + later
    assert len(swapped) < len(uncleaned)
    for suffix, expected in ((".swap", swapped), (".cleaned", uncleaned)):
        target = tmp_path / ("crashed" + suffix.replace(".", "-"))
        shutil.copytree(original, target)
        for extension in (".log", ".index", ".timeindex"):
            shutil.copy(cleaned_dir / (stem + extension), target / (stem + extension + suffix))
        reopened = PartitionLog.open(str(target), COMPACTED, clock)
        assert read_all(reopened) == expected, suffix
        verified_records(read_all(reopened))
        assert not [name for name in os.listdir(target) if name.endswith((".swap", ".cleaned"))]


def test_corrupt_data_makes_a_log_uncleanable_without_stopping_the_cleaner(tmp_path):
    """Goal: one corrupt log does not stop compaction of the others. Method: flip a bit in a sealed
    segment of one log; it is marked uncleanable, the healthy log is cleaned.
    """
    clock = ManualClock()
    broken = PartitionLog.open(str(tmp_path / "broken-0"), COMPACTED, clock)
    healthy = PartitionLog.open(str(tmp_path / "healthy-0"), COMPACTED, clock)
    fill(broken, random.Random(9), batches=150, keys=10, now_ms=clock.now_ms())
    fill(healthy, random.Random(10), batches=100, keys=10, now_ms=clock.now_ms())
    first = segment_files(broken.directory)[0]
    with open(first, "r+b") as file:
        file.seek(100)
        byte = file.read(1)
        file.seek(100)
        file.write(bytes([byte[0] ^ 0x40]))
    cleaner = LogCleaner(lambda: [broken, healthy], clock)
    assert cleaner.clean_once() is False  # both are fully dirty; the first one, broken, is tried
    assert broken.directory in cleaner.uncleanable
    while cleaner.clean_once():
        pass
    assert cleaner.uncleanable == frozenset({broken.directory})
    assert cleaner.dirty_ratio(healthy, clock.now_ms()) == 0.0


def test_background_cleaner_thread_compacts_and_stops(tmp_path):
    """Goal: the thread finds dirty logs by itself and stops on request. Method: start, wait until
    the dirty ratio is 0 (bounded), stop, compare with the model.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "c-0"), COMPACTED, clock)
    written = fill(log, random.Random(11), batches=200, keys=10, now_ms=clock.now_ms())
    cleaner = LogCleaner(lambda: [log], clock, CleanerConfig(backoff_ms=20))
    cleaner.start()
    try:
        deadline = time.monotonic() + 20
        while cleaner.dirty_ratio(log, clock.now_ms()) > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        cleaner.stop()
    assert not cleaner.is_running
    active_base = log.segment_base_offsets()[-1]
    assert [(o, k, v) for o, k, v, _ in records_of(log)] == expected_after_compaction(written, active_base)


@pytest.mark.slow
def test_log_stays_consistent_under_random_operations_while_the_cleaner_thread_runs(tmp_path):
    """Goal: the lock discipline between the event-loop thread and the cleaner thread holds.

    Method: for ~3 s the test thread appends, reads at random offsets, truncates, rolls and applies
    retention on a compacted+delete log while the background cleaner keeps compacting it. Every
    read must return CRC-valid whole batches in increasing offset order that match the log bounds,
    and at the end the log must reopen cleanly with the same content.
    """
    clock = ManualClock()
    config = COMPACTED.with_changes(
        cleanup_policy=frozenset({"compact", "delete"}), retention_bytes=60_000, retention_ms=-1
    )
    log = PartitionLog.open(str(tmp_path / "c-0"), config, clock)
    cleaner = LogCleaner(lambda: [log], clock, CleanerConfig(backoff_ms=1))
    rng = random.Random(12)
    cleaner.start()
    operations = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            operations += 1
            choice = rng.random()
            if choice < 0.55:
                fill(log, rng, batches=rng.randint(1, 4), keys=25, now_ms=clock.now_ms())
            elif choice < 0.85 and log.log_end_offset > log.log_start_offset:
                offset = rng.randint(log.log_start_offset, log.log_end_offset - 1)
                result = log.read(offset, rng.randint(1, 5000))
                if result.records:
                    headers = headers_of(result.records)
                    verified_records(result.records)
                    assert headers[0].last_offset >= offset
                    assert [h.base_offset for h in headers] == sorted(h.base_offset for h in headers)
                    assert result.log_start_offset <= headers[0].base_offset
                    assert headers[-1].last_offset < result.log_end_offset
            elif choice < 0.9 and log.log_end_offset > log.log_start_offset:
                log.truncate_to(rng.randint(log.log_start_offset, log.log_end_offset))
            elif choice < 0.95:
                log.roll()
            else:
                log.delete_old_segments(clock.now_ms(), log.log_end_offset)
    finally:
        cleaner.stop()
    assert operations > 100
    assert cleaner.cleanings_completed > 0
    assert cleaner.uncleanable == frozenset()
    content = read_all(log)
    verified_records(content)
    log.close()
    reopened = PartitionLog.open(str(tmp_path / "c-0"), config, clock)
    assert reopened.repairs == []
    assert read_all(reopened) == content
