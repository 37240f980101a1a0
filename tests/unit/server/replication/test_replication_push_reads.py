"""One log read per pushed range, shared by a leader's follower sessions (server/replication/push_reads.py).

Goal: with two followers asking for the same range on the same turn of the loop, the log is read
once and both get the same bytes; a read is never reused when a fresh one could answer
differently (the log grew, the log start moved, a new leader epoch, another log object, a
smaller byte budget), and the bytes kept stay within the bound however many partitions there are.
Method: a real PartitionLog in a temporary directory behind a Partition whose `log.read` is
counted; the sessions pushing the partition are stand-in objects in `partition.sessions`.
"""

from __future__ import annotations

from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication.partition import LEADER, Partition
from freshet.server.replication.push_reads import SharedPushReads
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from prometheus_client import CollectorRegistry


class CountedLog:
    """A PartitionLog whose reads are counted (everything else passes through)."""

    def __init__(self, log: PartitionLog) -> None:
        self._log = log
        self.reads = 0

    def read(self, offset, max_bytes, max_offset=None):
        self.reads += 1
        return self._log.read(offset, max_bytes, max_offset)

    def __getattr__(self, name):
        return getattr(self._log, name)


def leading(tmp_path, name: str = "t", followers: int = 2, batches: int = 3) -> tuple[Partition, CountedLog]:
    log = CountedLog(PartitionLog.open(str(tmp_path / f"{name}-0"), LogConfig()))
    for number in range(batches):
        log.append_as_leader(encode_batch([Record(number, None, b"v" * 1000, ())] * 2), 0)
    partition = Partition(name, 0, b"\x01" * 16, log, 0, TopicCounters(BrokerMetrics(CollectorRegistry()), name))
    partition.role = LEADER
    partition.leader_epoch = 0
    partition.sessions.update(object() for _ in range(followers))
    return partition, log


def test_followers_asking_for_the_same_range_share_one_read(tmp_path):
    partition, log = leading(tmp_path)
    reads = SharedPushReads()
    first = reads.read(partition, 0, 1 << 20)
    second = reads.read(partition, 0, 1 << 20)
    assert log.reads == 1
    assert second is first
    assert first.records == log._log.read(0, 1 << 20).records and len(first.records) > 3000
    assert (reads.reads, reads.shared) == (1, 1)
    assert len(reads) == 0 and reads.bytes_kept == 0, "taken by every other follower: dropped"
    reads.read(partition, 0, 1 << 20)
    assert log.reads == 2, "nothing kept any more: a third ask reads again"


def test_three_followers_keep_the_read_until_the_last_one_took_it(tmp_path):
    partition, log = leading(tmp_path, followers=3)
    reads = SharedPushReads()
    results = [reads.read(partition, 0, 1 << 20) for _ in range(3)]
    assert log.reads == 1 and results[0] is results[1] is results[2]
    assert len(reads) == 0


def test_a_read_is_not_reused_once_the_log_grew_or_its_start_moved(tmp_path):
    partition, log = leading(tmp_path)
    reads = SharedPushReads()
    before = reads.read(partition, 0, 1 << 20)
    log.append_as_leader(encode_batch([Record(9, None, b"new", ())]), 0)
    after = reads.read(partition, 0, 1 << 20)
    assert log.reads == 2
    assert after.log_end_offset == before.log_end_offset + 1
    assert after.records.endswith(log._log.read(before.log_end_offset, 1 << 20).records)
    log.delete_records_before(2, log.log_end_offset)
    moved = reads.read(partition, 2, 1 << 20)
    assert log.reads == 3 and moved.log_start_offset == 2


def test_a_new_leader_epoch_or_another_log_reads_afresh(tmp_path):
    partition, log = leading(tmp_path)
    reads = SharedPushReads()
    reads.read(partition, 0, 1 << 20)
    partition.leader_epoch = 1
    reads.read(partition, 0, 1 << 20)
    assert log.reads == 2
    replacement = CountedLog(PartitionLog.open(str(tmp_path / "replacement-0"), LogConfig()))
    replacement.append_as_leader(encode_batch([Record(0, None, b"other", ())]), 1)
    partition.log = replacement
    other = reads.read(partition, 0, 1 << 20)
    assert replacement.reads == 1 and b"other" in other.records


def test_a_smaller_budget_reads_afresh_and_gets_what_fits(tmp_path):
    partition, log = leading(tmp_path)
    reads = SharedPushReads()
    whole = reads.read(partition, 0, 1 << 20)
    one_batch = len(log._log.read(0, 1).records)
    small = reads.read(partition, 0, one_batch)
    assert log.reads == 2, "the smaller budget did not take the kept read"
    assert len(small.records) == one_batch < len(whole.records)
    assert small.next_offset == 2


def test_a_read_at_a_different_offset_is_not_shared(tmp_path):
    partition, log = leading(tmp_path)
    reads = SharedPushReads()
    reads.read(partition, 0, 1 << 20)
    lagging = reads.read(partition, 2, 1 << 20)
    assert log.reads == 2 and lagging.first_offset == 2


def test_nothing_is_kept_for_a_single_follower_or_an_empty_read(tmp_path):
    partition, log = leading(tmp_path, followers=1)
    reads = SharedPushReads()
    reads.read(partition, 0, 1 << 20)
    assert len(reads) == 0
    partition.sessions.add(object())
    empty = reads.read(partition, log.log_end_offset, 1 << 20)
    assert empty.records == b"" and len(reads) == 0


def test_the_bytes_kept_stay_within_the_bound_oldest_dropped_first(tmp_path):
    reads = SharedPushReads(bytes_max=10_000)
    partitions = [leading(tmp_path, f"p{number}")[0] for number in range(6)]
    for partition in partitions:
        reads.read(partition, 0, 1 << 20)                  # about 6 KB each, none taken by a second follower
        assert reads.bytes_kept <= 10_000
    assert len(reads) == 1
    kept_log = partitions[-1].log
    reads.read(partitions[-1], 0, 1 << 20)
    assert kept_log.reads == 1, "the newest read was still kept"
    reads.read(partitions[0], 0, 1 << 20)
    assert partitions[0].log.reads == 2, "the oldest was dropped"


def test_two_follower_sessions_of_one_leader_push_from_one_read(tmp_path):
    """The wiring: FollowerSessions given the service's SharedPushReads read the log once for a
    range both push; a session built alone keeps its reads to itself."""
    from freshet.server.replication.core import PushCursor
    from freshet.server.replication.leader_sessions import FollowerSession

    partition, log = leading(tmp_path, followers=0)
    shared = SharedPushReads()
    sessions = [FollowerSession(None, replica, 1, None, shared) for replica in (2, 3)]
    partition.sessions.update(sessions)
    pushes = []
    for session in sessions:
        cursor = PushCursor()
        cursor.reset(0)
        pushes.append(session._read_next(partition, cursor))
    assert log.reads == 1
    assert pushes[0] is pushes[1] and pushes[0].next_offset == log.log_end_offset
    alone = FollowerSession(None, 4, 1, None)
    cursor = PushCursor()
    cursor.reset(0)
    alone._read_next(partition, cursor)
    assert log.reads == 2 and shared.reads == 1
