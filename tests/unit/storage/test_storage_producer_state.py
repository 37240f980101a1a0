"""Idempotent producers: duplicates, sequence gaps, fencing, and state rebuilt from the log.

Reference: KIP-98 (idempotent producer), KIP-360 (unknown producer ids), Kafka's
ProducerStateManager / ProducerAppendInfo.
"""

from __future__ import annotations

import os

import pytest
from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from freshet.storage.log import PartitionLog
from freshet.storage.producer_state import ProducerStateManager

from tests.support.storage_helpers import batch, crash, headers_of, read_all

CONFIG = LogConfig(segment_bytes=3000, index_interval_bytes=200)
PRODUCER = 4242


def produce(
    log: PartitionLog, sequence: int, count: int = 2, epoch: int = 0, producer_id: int = PRODUCER, **options
):
    return log.append_as_leader(
        batch(count, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence, **options), 1
    )


@pytest.fixture
def log(tmp_path):
    return PartitionLog.open(str(tmp_path / "p-0"), CONFIG, ManualClock())


def test_retry_of_any_of_the_last_five_batches_returns_the_original_offsets(log):
    """Goal: a retried batch is not appended twice; the producer gets the offsets it already has."""
    infos = [produce(log, sequence) for sequence in range(0, 12, 2)]  # 6 batches, sequences 0..11
    end = log.log_end_offset
    for info, sequence in zip(infos[1:], range(2, 12, 2), strict=True):
        duplicate = produce(log, sequence)
        assert duplicate.is_duplicate
        assert (duplicate.first_offset, duplicate.last_offset) == (info.first_offset, info.last_offset)
    assert log.log_end_offset == end
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 0)  # the oldest batch fell out of the five remembered


def test_sequence_gap_is_out_of_order_and_nothing_is_written(log):
    """Goal: a gap in sequence numbers raises OutOfOrderSequenceError with both sequences and writes
    nothing; the right sequence then succeeds.
    """
    produce(log, 0)
    with pytest.raises(OutOfOrderSequenceError) as raised:
        produce(log, 5)
    assert (raised.value.producer_id, raised.value.first_sequence, raised.value.last_sequence) == (
        PRODUCER,
        5,
        1,
    )
    assert log.log_end_offset == 2
    assert produce(log, 2).first_offset == 2


def test_stale_epoch_is_fenced_and_a_new_epoch_starts_at_sequence_zero(log):
    """Goal: an older producer epoch is fenced (InvalidProducerEpochError); a newer epoch must start
    at sequence 0.
    """
    produce(log, 0, epoch=3)
    with pytest.raises(InvalidProducerEpochError) as raised:
        produce(log, 2, epoch=2)
    assert (raised.value.producer_epoch, raised.value.current_epoch) == (2, 3)
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 7, epoch=4)
    assert produce(log, 0, epoch=4).first_offset == 2
    assert log.producer_state(PRODUCER) == (4, 1, 3)


def test_unknown_producer_may_start_at_any_sequence(log):
    """Goal: KIP-360: a producer whose state expired or was never seen is accepted at any sequence."""
    assert produce(log, 1000).first_offset == 0
    assert produce(log, 1002).first_offset == 2


def test_sequences_wrap_from_int32_max_to_zero(log):
    """Goal: sequences continue from int32 max to 0 as in Kafka."""
    produce(log, 2**31 - 2, count=2)  # sequences 2**31-2, 2**31-1
    assert produce(log, 0, count=3).first_offset == 2
    assert log.producer_state(PRODUCER) == (0, 2, 4)
    produce(log, 3, count=1)
    wrapping = produce(log, 4, count=2)
    assert not wrapping.is_duplicate


def test_batches_in_one_append_are_checked_against_each_other(log):
    """Goal: several batches of one producer in one append are validated in order; a gap between
    them rejects the whole append.
    """
    data = bytes(batch(2, producer_id=PRODUCER, producer_epoch=0, base_sequence=0)) + bytes(
        batch(2, producer_id=PRODUCER, producer_epoch=0, base_sequence=2)
    )
    assert log.append_as_leader(data, 1).last_offset == 3
    gap = bytes(batch(1, producer_id=PRODUCER, producer_epoch=0, base_sequence=4)) + bytes(
        batch(1, producer_id=PRODUCER, producer_epoch=0, base_sequence=9)
    )
    with pytest.raises(OutOfOrderSequenceError):
        log.append_as_leader(gap, 1)
    assert log.log_end_offset == 4
    assert log.producer_state(PRODUCER) == (0, 3, 3)


def test_state_is_rebuilt_after_clean_and_unclean_restarts(tmp_path):
    """Goal: duplicates are still detected after a restart, from a snapshot or by replaying headers."""
    directory = str(tmp_path / "p-0")
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    infos = [produce(log, sequence, value_size=150) for sequence in range(0, 40, 2)]
    assert log.segment_count > 2
    log.close()
    assert any(name.endswith(".snapshot") for name in os.listdir(directory))
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    assert produce(log, 38).first_offset == infos[-1].first_offset
    produce(log, 40)
    crash(log)
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    assert produce(log, 40).is_duplicate
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 44)


def test_state_is_rebuilt_from_the_log_when_snapshots_are_gone_or_corrupt(tmp_path):
    """Goal: without usable snapshots the state is replayed from batch headers. Method: corrupt the
    newest snapshot, delete the others, reopen.
    """
    directory = str(tmp_path / "p-0")
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    for sequence in range(0, 40, 2):
        produce(log, sequence, value_size=150)
    log.close()
    snapshots = sorted(name for name in os.listdir(directory) if name.endswith(".snapshot"))
    with open(os.path.join(directory, snapshots[-1]), "r+b") as file:
        file.seek(10)
        file.write(b"\xff\xff")
    for name in snapshots[:-1]:
        os.unlink(os.path.join(directory, name))
    log = PartitionLog.open(directory, CONFIG, ManualClock())
    assert produce(log, 38).is_duplicate
    assert produce(log, 40).first_offset == 40


def test_truncation_forgets_batches_it_removes(log):
    """Goal: after a follower truncates a batch away, a retry of it is appended again (not a duplicate)."""
    for sequence in range(0, 10, 2):
        produce(log, sequence)
    log.roll()
    produce(log, 10)
    produce(log, 12)
    log.truncate_to(12)
    assert log.producer_state(PRODUCER) == (0, 11, 11)
    retry = produce(log, 12)
    assert not retry.is_duplicate and retry.first_offset == 12
    log.truncate_to(8)
    assert log.producer_state(PRODUCER) == (0, 7, 7)
    with pytest.raises(OutOfOrderSequenceError):
        produce(log, 12)


def test_followers_track_producers_so_a_new_leader_detects_duplicates(tmp_path):
    """Goal: producer state survives leader failover because followers rebuild it from headers."""
    leader = PartitionLog.open(str(tmp_path / "leader"), CONFIG, ManualClock())
    follower = PartitionLog.open(str(tmp_path / "follower"), CONFIG, ManualClock())
    for sequence in range(0, 8, 2):
        produce(leader, sequence)
    follower.append_as_follower(read_all(leader))
    assert follower.producer_state(PRODUCER) == leader.producer_state(PRODUCER)
    duplicate = produce(follower, 6)
    assert duplicate.is_duplicate and duplicate.first_offset == 6
    assert [h.base_offset for h in headers_of(read_all(follower))] == [0, 2, 4, 6]


def test_idle_producers_expire(tmp_path):
    """Goal: producers idle for producer.id.expiration.ms are forgotten (Kafka's isProducerExpired:
    >=), then accepted at any sequence.
    """
    clock = ManualClock()
    log = PartitionLog.open(str(tmp_path / "p-0"), CONFIG.with_changes(producer_id_expiration_ms=1000), clock)
    produce(log, 0, timestamp=clock.now_ms())
    clock.advance(999)
    assert log.remove_expired_producers(clock.now_ms()) == 0
    clock.advance(2)
    assert log.remove_expired_producers(clock.now_ms()) == 1
    assert log.producer_state(PRODUCER) is None
    assert produce(log, 77).first_offset == 2


def test_snapshot_encoding_round_trips_and_rejects_damage(tmp_path):
    """Goal: snapshots decode to the same state and any single damaged byte or truncation is
    detected (CRC, layout).
    """
    manager = ProducerStateManager(str(tmp_path), 1000)
    append = manager.begin_append(is_validated=True)
    from freshet.storage.record_batch import parse_header

    offset = 0
    for producer_id in (1, 2, 3):
        for sequence in range(0, 14, 2):
            header = parse_header(
                batch(2, producer_id=producer_id, producer_epoch=producer_id, base_sequence=sequence)
            )
            append.append(header, offset, offset + 1)
            offset += 2
    manager.commit(append, offset)
    data = manager.encode_snapshot()
    assert ProducerStateManager.decode_snapshot(data) == manager.entries
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        with pytest.raises(ValueError):
            ProducerStateManager.decode_snapshot(bytes(damaged))
    with pytest.raises(ValueError):
        ProducerStateManager.decode_snapshot(data[:-1])
