"""The bounded cache of open segment files: more logs than descriptors, and nothing changes.

Goal: with the cache's budget at 8 descriptors, 50 logs take appends, rolls, reads of old and
new segments, zero-copy regions, flushes, a clean close and reopen and an unclean one (recovery),
and every byte reads back as written while at most 8 `.log` files are open; a descriptor in use
is never closed under its user; a node whose other files took the headroom (EMFILE) sheds cached
descriptors and goes on.
Method: real logs on tmp_path; the descriptors the process holds are read from /proc/self/fd.
Reference: Kafka keeps every segment open (one descriptor per segment, a high ulimit); this is
the handle cache some Kafka-likes (Redpanda's fd limiter, RocksDB's max_open_files) keep instead.
"""

from __future__ import annotations

import errno
import os
import threading

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.file_region import FileRegion
from freshet.storage.log import CLEAN_SHUTDOWN_FILE_NAME, PartitionLog
from freshet.storage.open_files import BUDGET_MIN, OPEN_FILES, default_budget

from tests.support.storage_helpers import SMALL_CONFIG, batch, read_all, verified_records

BUDGET = 8
LOGS = 50


@pytest.fixture
def budget():
    before = OPEN_FILES.budget
    OPEN_FILES.configure(BUDGET)
    try:
        yield OPEN_FILES
    finally:
        OPEN_FILES.configure(before)


@pytest.fixture
def clock():
    return ManualClock(1_700_000_000_000)


def open_log_files(root) -> list[str]:
    """Paths of the segment files under `root` (`.log`, and `.index`/`.timeindex` held by their
    mappings) this process holds a descriptor on."""
    paths = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used
        if target.startswith(str(root)) and target.endswith((".log", ".index", ".timeindex")):
            paths.append(target)
    return paths


def record_log_fsyncs(monkeypatch) -> list[str]:
    """From now on, the `.log` paths fsynced (through whichever descriptor), in order."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if target.endswith(".log"):
            synced.append(target)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def open_logs(tmp_path, clock, count: int = LOGS) -> list[PartitionLog]:
    return [PartitionLog.open(str(tmp_path / f"t-{number}"), SMALL_CONFIG, clock) for number in range(count)]


def fill(logs: list[PartitionLog], rounds: int) -> None:
    """`rounds` batches into every log, round-robin (each append reopens an evicted file)."""
    for round_number in range(rounds):
        for number, log in enumerate(logs):
            log.append_as_leader(batch(3, value_size=100, tag=number * 1000 + round_number), 0)


def expected_tags(number: int, rounds: int) -> list[bytes]:
    return [
        f"{number * 1000 + round_number}:{record}:".encode()
        for round_number in range(rounds)
        for record in range(3)
    ]


def check_contents(logs: list[PartitionLog], rounds: int) -> None:
    for number, log in enumerate(logs):
        records = verified_records(read_all(log))
        assert [offset for offset, _, _ in records] == list(range(rounds * 3))
        assert [
            value[: len(tag)]
            for (_, _, value), tag in zip(records, expected_tags(number, rounds), strict=True)
        ] == expected_tags(number, rounds)


def test_fifty_logs_with_eight_descriptors_append_roll_and_read_back_everything(tmp_path, clock, budget):
    logs = open_logs(tmp_path, clock)
    fill(logs, rounds=30)
    assert all(log.segment_count >= 3 for log in logs), "the small segments rolled"
    assert len(open_log_files(tmp_path)) <= BUDGET
    assert budget.open_count <= BUDGET
    check_contents(logs, rounds=30)             # from offset 0: sealed segments and their indexes
    held = open_log_files(tmp_path)
    assert len(held) <= BUDGET
    assert any(path.endswith(".index") for path in held), "sealed indexes were mapped, within the budget"
    assert budget.evictions > LOGS
    for log in logs:
        log.flush()
        log.close()
    assert open_log_files(tmp_path) == []


def test_clean_and_unclean_reopen_with_more_logs_than_descriptors(tmp_path, clock, budget):
    logs = open_logs(tmp_path, clock)
    fill(logs, rounds=12)
    for log in logs:
        log.close()
    logs = open_logs(tmp_path, clock)  # clean: tail state from the indexes
    assert len(open_log_files(tmp_path)) <= BUDGET
    check_contents(logs, rounds=12)
    fill(logs, rounds=0)
    for number, log in enumerate(logs):
        log.append_as_leader(batch(3, value_size=100, tag=number * 1000 + 12), 0)
        log.flush()
    # An unclean stop: drop the logs without close (their files stay open until evicted), as a
    # crash would; the reopen recovers every active segment through the cache.
    del logs
    assert not any(
        os.path.exists(tmp_path / f"t-{number}" / CLEAN_SHUTDOWN_FILE_NAME) for number in range(LOGS)
    )
    logs = open_logs(tmp_path, clock)
    assert len(open_log_files(tmp_path)) <= BUDGET
    check_contents(logs, rounds=13)
    for log in logs:
        log.close()


def test_a_region_reads_its_bytes_after_the_cache_closed_the_segment_file(tmp_path, clock, budget):
    logs = open_logs(tmp_path, clock)
    fill(logs, rounds=4)
    first = logs[0]
    copy = first.read(0, 1 << 20).records
    planned = first.read(0, 1 << 20, as_region=True).records
    assert isinstance(planned, FileRegion)
    for log in logs[1:]:
        log.read(0, 1 << 20)  # every other log's file: logs[0]'s is the coldest
    assert first._segments[-1]._fd is None, "the cache closed the segment's own descriptor"
    try:
        assert planned.read() == copy
    finally:
        planned.close()
    for log in logs:
        log.close()


def test_a_pinned_descriptor_is_not_closed_and_a_flush_after_eviction_fsyncs(
    tmp_path, clock, budget, monkeypatch
):
    logs = open_logs(tmp_path, clock, count=BUDGET + 4)
    segment = logs[0]._segments[-1]
    logs[0].append_as_leader(batch(3), 0)
    fd = segment._pin()
    try:
        fill(logs[1:], rounds=2)  # more files than the budget while logs[0]'s is pinned
        assert segment._fd == fd
        assert os.fstat(fd).st_ino == os.stat(segment.log_path).st_ino
    finally:
        OPEN_FILES.unpin(segment)
    fill(logs[1:], rounds=1)
    assert segment._fd is None, "unpinned, the coldest file was closed"
    synced = record_log_fsyncs(monkeypatch)
    logs[0].flush()
    assert synced == [segment.log_path], "the write before the close still gets its fsync"
    synced.clear()
    logs[0].flush()
    assert synced == [segment.log_path]  # the reopened descriptor is fsynced as before
    for log in logs:
        log.close()


def test_out_of_descriptors_sheds_half_the_cache_and_retries(tmp_path, clock, budget, monkeypatch, caplog):
    logs = open_logs(tmp_path, clock, count=BUDGET)
    fill(logs, rounds=1)
    assert budget.open_count == BUDGET
    extra = PartitionLog.open(str(tmp_path / "extra"), SMALL_CONFIG, clock)
    fill(logs, rounds=1)  # extra's file is the coldest: closed
    assert extra._segments[-1]._fd is None
    real_open = os.open
    failures = []

    def open_once_out_of_descriptors(path, flags, mode=0o777):
        if str(path).endswith(".log") and not failures:
            failures.append(path)
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", open_once_out_of_descriptors)
    extra.append_as_leader(batch(3, tag=7), 0)
    assert failures
    assert budget.open_count <= BUDGET // 2 + 1
    assert "out of file descriptors" in caplog.text
    assert [value[:4] for _, _, value in verified_records(read_all(extra))] == [b"7:0:", b"7:1:", b"7:2:"]
    assert [log.log_end_offset for log in logs] == [6] * BUDGET  # two fills of 3 records each
    assert all(len(verified_records(read_all(log))) == 6 for log in logs)
    for log in [*logs, extra]:
        log.close()


def test_threads_appending_to_different_logs_share_the_budget(tmp_path, clock, budget):
    logs = open_logs(tmp_path, clock, count=24)
    errors = []

    def worker(part: list[PartitionLog], offset: int) -> None:
        try:
            for round_number in range(20):
                for number, log in enumerate(part):
                    log.append_as_leader(
                        batch(3, value_size=100, tag=(offset + number) * 1000 + round_number), 0
                    )
                    log.read(0, 1 << 20)
        except Exception as error:  # the assertion below names it
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(logs[start : start + 6], start)) for start in range(0, 24, 6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    check_contents(logs, rounds=20)
    assert len(open_log_files(tmp_path)) <= BUDGET
    for log in logs:
        log.close()


def test_the_default_budget_leaves_headroom_for_everything_else():
    assert default_budget(20_000) == 15_904
    assert default_budget(1_024) == 512
    assert default_budget(1_048_576) == 1_048_576 - 4096
    assert default_budget(10) == BUDGET_MIN


def test_an_active_segment_opened_from_disk_is_fsynced_by_its_first_flush_after_eviction(tmp_path, clock, budget, monkeypatch):
    """What the previous process wrote may be only in the page cache: the reopened log's first
    flush fsyncs the active segment even when the cache closed its file in between."""
    logs = open_logs(tmp_path, clock, count=BUDGET + 2)
    fill(logs, rounds=1)
    for log in logs:
        log.close()
    reopened = PartitionLog.open(str(tmp_path / "t-0"), SMALL_CONFIG, clock)
    others = open_logs(tmp_path, clock, count=BUDGET + 2)[1:]
    fill(others, rounds=1)
    segment = reopened._segments[-1]
    assert segment._fd is None
    synced = record_log_fsyncs(monkeypatch)
    reopened.flush()
    assert synced == [segment.log_path]
    for log in [reopened, *others]:
        log.close()
