"""Crash recovery: torn writes, bit flips, zero-filled tails, damaged or missing indexes.

The promise (DESIGN.md, "Partition log"): after an unclean stop the log is exactly the prefix of
fully intact batches, it opens, it says what it repaired (file and position), and it never serves
a batch whose CRC fails. Reference: Kafka LogSegment.recover / LogLoader.
"""

from __future__ import annotations

import logging
import os
import random
import shutil

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.compression import CompressionType
from freshet.storage.config import LogConfig
from freshet.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT_FILE_NAME
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import PARTITION_LEADER_EPOCH_POSITION, iter_batches

from tests.support.storage_helpers import batch, crash, headers_of, read_all, segment_files, verified_records

CONFIG = LogConfig(segment_bytes=6000, index_interval_bytes=300)
CODECS = [
    CompressionType.NONE,
    CompressionType.GZIP,
    CompressionType.SNAPPY,
    CompressionType.LZ4,
    CompressionType.ZSTD,
]


def _build(directory: str, batches: int = 40, seed: int = 1) -> tuple[list[bytes], PartitionLog]:
    """A log with several segments of mixed-codec batches, left as after a kill -9."""
    rng = random.Random(seed)
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    for tag in range(batches):
        log.append_as_leader(
            batch(rng.randint(1, 6), value_size=rng.randint(5, 120), tag=tag, compression=rng.choice(CODECS)),
            tag // 10,
        )
    stored = [bytes(view) for _, view in iter_batches(read_all(log))]
    crash(log)
    return stored, log


def _batches_of_active_segment(directory: str) -> tuple[str, list[tuple[int, int]]]:
    """(active segment path, [(position, size)] of its batches)."""
    path = segment_files(directory)[-1]
    with open(path, "rb") as file:
        data = file.read()
    spans = []
    position = 0
    for header, _ in iter_batches(data):
        spans.append((position, header.size_bytes))
        position += header.size_bytes
    return path, spans


def _assert_log_is_prefix(log: PartitionLog, stored: list[bytes], kept: int) -> None:
    expected = b"".join(stored[:kept])
    served = read_all(log)
    assert served == expected
    verified_records(served)  # every served batch passes its CRC
    last = headers_of(expected)[-1].next_offset if kept else 0
    assert log.log_end_offset == last


def test_cutting_the_last_batch_at_every_byte_recovers_the_batches_before_it(tmp_path):
    """Goal: a torn final write loses exactly the torn batch.

    Method: for every cut position inside the last batch of the active segment, copy the crashed
    log, truncate the file there, reopen without the clean-shutdown marker, compare with the prefix.
    """
    stored, _ = _build(str(tmp_path / "original"))
    path, spans = _batches_of_active_segment(str(tmp_path / "original"))
    last_position, last_size = spans[-1]
    for cut in range(last_position, last_position + last_size):
        copy = tmp_path / f"cut-{cut}"
        shutil.copytree(tmp_path / "original", copy)
        with open(copy / os.path.basename(path), "r+b") as file:
            file.truncate(cut)
        log = PartitionLog.open(str(copy), CONFIG, ManualClock())
        _assert_log_is_prefix(log, stored, len(stored) - 1)
        assert log.repairs == (
            []
            if cut == last_position
            else [(str(copy / os.path.basename(path)), last_position, cut - last_position)]
        )
        assert log.append_as_leader(batch(1), 9).first_offset == log.log_end_offset - 1
        crash(log)  # no clean close: the loop must not pay a dozen fsyncs per position
        shutil.rmtree(copy)


@pytest.mark.slow
def test_cutting_the_active_segment_anywhere_keeps_exactly_the_whole_batches_before_the_cut(tmp_path):
    """Goal: the same for cuts anywhere in the active segment (400 random positions)."""
    stored, _ = _build(str(tmp_path / "original"), batches=60, seed=5)
    path, spans = _batches_of_active_segment(str(tmp_path / "original"))
    first_in_active = len(stored) - len(spans)
    end = spans[-1][0] + spans[-1][1]
    for cut in sorted(random.Random(11).sample(range(end), min(end, 400))):
        copy = tmp_path / f"cut-{cut}"
        shutil.copytree(tmp_path / "original", copy)
        with open(copy / os.path.basename(path), "r+b") as file:
            file.truncate(cut)
        log = PartitionLog.open(str(copy), CONFIG, ManualClock())
        whole = sum(1 for position, size in spans if position + size <= cut)
        _assert_log_is_prefix(log, stored, first_in_active + whole)
        crash(log)  # no clean close: the loop must not pay a dozen fsyncs per position
        shutil.rmtree(copy)


@pytest.mark.parametrize("seed", range(40))
def test_random_bit_flips_keep_the_batches_before_the_first_damaged_one(tmp_path, seed):
    """Goal: silent damage in the active segment is caught by the CRC or the offset check.

    Method: flip 1-3 random bits anywhere in the active segment except the partition leader epoch
    (outside the CRC and unverifiable, as in Kafka); reopen uncleanly; the log must equal the batches
    before the first damaged one.
    """
    rng = random.Random(seed)
    stored, _ = _build(str(tmp_path), batches=30, seed=seed)
    path, spans = _batches_of_active_segment(str(tmp_path))
    first_in_active = len(stored) - len(spans)
    data = bytearray(open(path, "rb").read())
    damaged = set()
    for _ in range(rng.randint(1, 3)):
        while True:
            position = rng.randrange(len(data))
            number = next(n for n, (start, size) in enumerate(spans) if start <= position < start + size)
            offset_in_batch = position - spans[number][0]
            if not PARTITION_LEADER_EPOCH_POSITION <= offset_in_batch < PARTITION_LEADER_EPOCH_POSITION + 4:
                break
        data[position] ^= 1 << rng.randrange(8)
        damaged.add(number)
    with open(path, "wb") as file:
        file.write(data)
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    _assert_log_is_prefix(log, stored, first_in_active + min(damaged))
    assert log.repairs and log.repairs[0][0] == path and log.repairs[0][1] == spans[min(damaged)][0]


def test_zero_filled_tail_is_cut(tmp_path):
    """Goal: a preallocated or zero-filled tail (a crash after the file grew) is removed."""
    stored, _ = _build(str(tmp_path))
    path = segment_files(str(tmp_path))[-1]
    size = os.path.getsize(path)
    with open(path, "ab") as file:
        file.write(bytes(4096))
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    _assert_log_is_prefix(log, stored, len(stored))
    assert log.repairs == [(path, size, 4096)]
    assert os.path.getsize(path) == size


def test_recovery_logs_the_file_and_position_it_cut(tmp_path, caplog):
    """Goal: an operator can see what recovery repaired: the file and the position appear in the
    warning.
    """
    stored, _ = _build(str(tmp_path))
    path, spans = _batches_of_active_segment(str(tmp_path))
    with open(path, "r+b") as file:
        file.truncate(spans[-1][0] + 7)
    with caplog.at_level(logging.WARNING, logger="freshet.storage"):
        PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    message = "\n".join(record.getMessage() for record in caplog.records)
    assert path in message
    assert f"at position {spans[-1][0]}" in message


def _close_cleanly(tmp_path) -> list[bytes]:
    stored, _ = _build(str(tmp_path), batches=80)
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    log.close()
    return stored


def test_missing_index_of_a_sealed_segment_is_rebuilt(tmp_path, caplog):
    """Goal: a missing index is rebuilt from the log file (logged), and the rebuilt one equals the
    original.
    """
    stored = _close_cleanly(tmp_path)
    first = segment_files(str(tmp_path))[0]
    index_path = first[: -len(".log")] + ".index"
    entries_before = os.path.getsize(index_path)
    os.unlink(index_path)
    os.unlink(first[: -len(".log")] + ".timeindex")
    with caplog.at_level(logging.WARNING, logger="freshet.storage"):
        log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    assert "index file is missing" in caplog.text and index_path in caplog.text
    _assert_log_is_prefix(log, stored, len(stored))
    log.close()
    assert os.path.getsize(index_path) == entries_before


def test_index_pointing_past_the_end_of_its_log_is_rebuilt(tmp_path):
    """Goal: an offset index whose last entry points past its log file is rebuilt, with no data cut."""
    stored = _close_cleanly(tmp_path)
    first = segment_files(str(tmp_path))[0]
    with open(first[: -len(".log")] + ".index", "ab") as file:
        file.write((7).to_bytes(4, "big") + (10**6).to_bytes(4, "big"))
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    _assert_log_is_prefix(log, stored, len(stored))
    assert log.repairs == []


def test_index_of_a_partial_entry_is_rebuilt(tmp_path):
    """Goal: a time index with a partial trailing entry is rebuilt and the log reads back in full."""
    stored = _close_cleanly(tmp_path)
    second = segment_files(str(tmp_path))[1]
    with open(second[: -len(".log")] + ".timeindex", "ab") as file:
        file.write(b"\x01\x02\x03")
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    _assert_log_is_prefix(log, stored, len(stored))


def test_damaged_sealed_segment_cuts_the_log_there_and_drops_later_segments(tmp_path):
    """Goal: a sealed segment cut short (e.g. a lost write-back) ends the log at its last intact
    batch: what came after a hole cannot be served, so later segments are deleted and logged.
    """
    stored = _close_cleanly(tmp_path)
    files = segment_files(str(tmp_path))
    assert len(files) >= 3
    second = files[1]
    with open(second, "rb") as file:
        spans = [(header.base_offset, header.size_bytes) for header, _ in iter_batches(file.read())]
    cut = sum(size for _, size in spans[:2]) + 10
    with open(second, "r+b") as file:
        file.truncate(cut)
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    in_first = len(list(iter_batches(open(files[0], "rb").read())))
    _assert_log_is_prefix(log, stored, in_first + 2)
    assert segment_files(str(tmp_path)) == files[:2]
    assert [repair[0] for repair in log.repairs] == [second, *files[2:]]
    assert log.append_as_leader(batch(1), 9).first_offset == spans[2][0]


def test_corrupt_leader_epoch_checkpoint_is_rebuilt_from_batch_headers(tmp_path):
    """Goal: the leader-epoch cache survives a damaged checkpoint: it is rebuilt from batch headers
    to the same entries.
    """
    stored = _close_cleanly(tmp_path)
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    entries = log.leader_epoch_entries
    log.close()
    assert len(entries) == 8
    with open(tmp_path / LEADER_EPOCH_CHECKPOINT_FILE_NAME, "w") as file:
        file.write("0\n7\n1 2\n")
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    assert log.leader_epoch_entries == entries
    _assert_log_is_prefix(log, stored, len(stored))


def test_torn_checkpoint_temp_files_are_removed(tmp_path):
    """Goal: a .tmp file left by a crash during an atomic checkpoint write is cleaned up on open."""
    _close_cleanly(tmp_path)
    (tmp_path / (LEADER_EPOCH_CHECKPOINT_FILE_NAME + ".tmp")).write_text("0\n")
    PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    assert not (tmp_path / (LEADER_EPOCH_CHECKPOINT_FILE_NAME + ".tmp")).exists()


def test_an_unclean_stop_after_truncation_recovers_the_truncated_log(tmp_path):
    """Goal: a truncated active segment's stale index on disk is not trusted after a crash."""
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    for tag in range(30):
        log.append_as_leader(batch(3, value_size=60, tag=tag), 0)
    log.close()
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    log.truncate_to(40)
    expected = read_all(log)
    crash(log)
    log = PartitionLog.open(str(tmp_path), CONFIG, ManualClock())
    assert read_all(log) == expected
    assert log.log_end_offset == 39
