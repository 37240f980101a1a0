"""The follower's side of the log start offset (server/replication/fetcher.py), without a network.

Goal: a follower moves its log start offset to the leader's that a push carries, only forward and
up to its own high watermark, deletes its segments below it, and reports the new start in its
next position (Kafka's ReplicaFetcherThread applies FetchResponse.logStartOffset; KIP-107).
Method: a real PartitionLog and Partition, a LeaderLink whose push handler is called directly with
the messages a leader sends; the position the follower would send next is read back.
"""

from __future__ import annotations

from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication.fetcher import FetchState, LeaderLink
from freshet.server.replication.partition import FOLLOWER, Partition
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import replication_pb2
from prometheus_client import CollectorRegistry

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=256)


class FakeManager:
    node_id = 2

    def broker_epoch(self) -> int:
        return 7

    position = staticmethod(lambda state, is_reset: _position(state, is_reset))
    note_appended = staticmethod(lambda size_bytes: None)


def _position(state: FetchState, is_reset: bool) -> replication_pb2.ReplicaPosition:
    log = state.partition.log
    return replication_pb2.ReplicaPosition(
        topic="t", partition=0, fetch_offset=log.log_end_offset, log_start_offset=log.log_start_offset, is_reset=is_reset
    )


def leader_batches(tmp_path, count: int) -> list[bytes]:
    """What a leader would push: `count` batches of 2 records, offsets from 0, epoch 3."""
    leader_log = PartitionLog.open(str(tmp_path / "leader" / "t-0"), CONFIG)
    out = []
    for number in range(count):
        leader_log.append_as_leader(encode_batch([Record(number, b"k", b"v" * 100)] * 2), 3)
    offset = 0
    while offset < leader_log.log_end_offset:
        read = leader_log.read(offset, 1)
        out.append(read.records)
        offset = read.next_offset
    return out


def follower(tmp_path) -> tuple[LeaderLink, FetchState]:
    log = PartitionLog.open(str(tmp_path / "follower" / "t-0"), CONFIG)
    partition = Partition("t", 0, b"\x01" * 16, log, 0, TopicCounters(BrokerMetrics(CollectorRegistry()), "t"))
    partition.role = FOLLOWER
    partition.leader_id = 1
    partition.leader_epoch = 3
    link = LeaderLink(FakeManager(), 1)  # type: ignore[arg-type]
    state = FetchState(partition, 3)
    link.states[partition.key] = state
    state.needs_reset = False
    return link, state


def push(link: LeaderLink, state: FetchState, *, records: bytes = b"", base_offset: int = -1, high_watermark: int,
         log_start_offset: int) -> bool:
    """Deliver one push as the stream's reader does; return whether a position is due."""
    data = replication_pb2.ReplicaPartitionData(
        topic="t", partition=0, high_watermark=high_watermark, log_start_offset=log_start_offset,
        leader_log_end_offset=100, records=records, base_offset=base_offset, leader_epoch=3,
    )
    link._on_response(replication_pb2.ReplicaFetchResponse(partitions=[data]))
    return state.needs_ack


def test_a_follower_follows_the_leaders_log_start_up_to_its_high_watermark_and_reports_it(tmp_path):
    link, state = follower(tmp_path)
    log = state.partition.log
    for records in leader_batches(tmp_path, 40):
        base = log.log_end_offset
        push(link, state, records=records, base_offset=base, high_watermark=0, log_start_offset=0)
    assert log.log_end_offset == 80 and log.segment_count > 3
    assert link._request().positions[-1].fetch_offset == 80

    # The leader deleted records before 40 but the follower only knows offsets below 30 committed.
    assert push(link, state, high_watermark=30, log_start_offset=40) is True
    assert (state.partition.high_watermark, log.log_start_offset) == (30, 30)
    request = link._request()
    assert request is not None and request.positions[0].log_start_offset == 30

    # The high watermark catches up: the start follows to the leader's, segments below go.
    segments_before = log.segment_count
    assert push(link, state, high_watermark=80, log_start_offset=60) is True
    assert log.log_start_offset == 60
    assert log.segment_count < segments_before
    assert log.segment_base_offsets()[0] <= 60 < log.segment_base_offsets()[1]
    assert link._request().positions[0].log_start_offset == 60

    # Nothing new: no request; an older leader start (a stale push) never moves it back.
    assert push(link, state, high_watermark=80, log_start_offset=60) is False
    assert push(link, state, high_watermark=80, log_start_offset=20) is False
    assert log.log_start_offset == 60
    assert link._request() is None
