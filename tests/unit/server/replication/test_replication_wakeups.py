"""Messages and wake-ups per acknowledgement on the replication streams (issue 18), without a network.

Goal: while records flow, every push carries the leader's high watermark and no push goes out for
the high watermark alone; it goes alone only after the partition had no push for
HIGH_WATERMARK_PUSH_DELAY_S; an acknowledgement wakes the leader's writer only when it freed
window for data that waited; a follower acknowledges a push from the task that applied it.
Method: a leader `FollowerSession` over a real PartitionLog and Partition, with a fake host and a
fake stream context that records what is written and when; a follower `LeaderLink` whose reader
is fed pushes through a fake call with no stream task running.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from freshet.server import limits
from freshet.server.metrics import BrokerMetrics, TopicCounters
from freshet.server.replication import leader_sessions
from freshet.server.replication.core import LeaderState
from freshet.server.replication.leader_sessions import HIGH_WATERMARK_PUSH_DELAY_S, FollowerSession
from freshet.server.replication.partition import LEADER, Partition
from freshet.storage.config import LogConfig
from freshet.storage.log import PartitionLog
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import replication_pb2
from prometheus_client import CollectorRegistry

from tests.unit.server.replication.test_server_fetcher_log_start import follower, leader_batches

TOPIC_ID = b"\x01" * 16


class Clock:
    @staticmethod
    def monotonic_ms() -> int:
        return int(time.monotonic() * 1000)


class NoThrottle:
    @staticmethod
    def is_throttled(topic: str, partition: int, replica: int) -> bool:
        return False


class Host:
    """The broker as the session sees it (server/replication/host.py), for one partition."""

    node_id = 1
    clock = Clock()
    replication_throttle = NoThrottle()

    def __init__(self, partition: Partition) -> None:
        self.metrics = BrokerMetrics(CollectorRegistry())
        self.partitions = {partition.key: partition}
        self.sessions: set = set()

    def request_isr_check(self, partition: Partition) -> None:
        raise AssertionError("the follower is in the ISR")


class Context:
    """The ReplicaFetch stream's server context: what the leader writes, with the loop time."""

    def __init__(self) -> None:
        self.written: list[tuple[float, replication_pb2.ReplicaFetchResponse]] = []

    async def write(self, message: replication_pb2.ReplicaFetchResponse) -> None:
        self.written.append((asyncio.get_running_loop().time(), message))


def leader_partition(tmp_path) -> Partition:
    """Partition t-0 led by broker 1 with one follower, 2, in the ISR: its acknowledgements alone
    move the high watermark."""
    log = PartitionLog.open(str(tmp_path / "t-0"), LogConfig())
    partition = Partition("t", 0, TOPIC_ID, log, 0, TopicCounters(BrokerMetrics(CollectorRegistry()), "t"))
    partition.role = LEADER
    partition.leader_epoch = 0
    partition.leader = LeaderState(1, 0, 0, (1, 2), (1, 2), 0, 0, 0, Clock.monotonic_ms())
    return partition


def position(offset: int, is_reset: bool = False) -> replication_pb2.ReplicaFetchRequest:
    return replication_pb2.ReplicaFetchRequest(replica_id=2, broker_epoch=1, positions=[replication_pb2.ReplicaPosition(
        topic="t", partition=0, topic_id=TOPIC_ID, current_leader_epoch=0, fetch_offset=offset, last_fetched_epoch=-1,
        is_reset=is_reset,
    )])


def append(partition: Partition, value: bytes = b"v") -> int:
    info = partition.log.append_as_leader(encode_batch([Record(0, None, value, ())]), 0)
    partition.leader_appended(info.last_offset + 1, Clock.monotonic_ms())
    return info.last_offset + 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_high_watermark_rides_the_next_push_and_goes_alone_only_after_a_quiet_delay(tmp_path):
    partition = leader_partition(tmp_path)

    async def scenario() -> tuple[list, list[float]]:
        context = Context()
        session = FollowerSession(Host(partition), 2, 1, context)  # type: ignore[arg-type]
        writer = asyncio.create_task(session.run_writer())
        session.on_request(position(0, is_reset=True))
        await settle()
        context.written.clear()                 # the answer to the reset position
        acknowledged_at = []
        for _ in range(5):
            end = append(partition)
            await settle()
            session.on_request(position(end))
            assert partition.high_watermark == end
            assert not session._wake.is_set(), "an acknowledgement with nothing left to push woke the writer"
            acknowledged_at.append(asyncio.get_running_loop().time())
            await settle()
        await asyncio.sleep(HIGH_WATERMARK_PUSH_DELAY_S * 4)
        writer.cancel()
        return context.written, acknowledged_at

    written, acknowledged_at = asyncio.run(scenario())
    data_pushes = [(at, message.partitions[0]) for at, message in written if message.partitions[0].records]
    alone = [(at, message.partitions[0]) for at, message in written if not message.partitions[0].records]
    assert [part.base_offset for _, part in data_pushes] == [0, 1, 2, 3, 4]
    assert [part.high_watermark for _, part in data_pushes] == [0, 1, 2, 3, 4], "each push carries the HW of the last ack"
    assert len(alone) == 1, f"one high-watermark-only push after the records stopped, not {len(alone)}"
    sent_at, part = alone[0]
    assert part.high_watermark == 5
    assert sent_at - data_pushes[-1][0] >= HIGH_WATERMARK_PUSH_DELAY_S * 0.99
    assert sent_at >= acknowledged_at[-1]


def test_an_acknowledgement_that_frees_window_for_waiting_data_wakes_the_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "REPLICATION_PARTITION_WINDOW_BYTES", 1)   # one batch in flight
    assert leader_sessions.limits.REPLICATION_PARTITION_WINDOW_BYTES == 1
    partition = leader_partition(tmp_path)

    async def scenario() -> list:
        context = Context()
        session = FollowerSession(Host(partition), 2, 1, context)  # type: ignore[arg-type]
        writer = asyncio.create_task(session.run_writer())
        session.on_request(position(0, is_reset=True))
        await settle()
        append(partition, b"first")
        append(partition, b"second")
        await settle()
        assert [m.partitions[0].base_offset for _, m in context.written if m.partitions[0].records] == [0]
        session.on_request(position(1))
        assert session._wake.is_set(), "the ack freed the window: the second batch must go"
        await settle()
        writer.cancel()
        return [m.partitions[0].base_offset for _, m in context.written if m.partitions[0].records]

    assert asyncio.run(scenario()) == [0, 1]


class Call:
    """A follower's ReplicaFetch call: pushes queued for `read`, requests recorded by `write`."""

    def __init__(self) -> None:
        self.pushes: asyncio.Queue = asyncio.Queue()
        self.written: list[replication_pb2.ReplicaFetchRequest] = []

    async def read(self):
        return await self.pushes.get()

    async def write(self, request: replication_pb2.ReplicaFetchRequest) -> None:
        self.written.append(request)


def test_a_follower_acknowledges_a_push_from_the_task_that_applied_it(tmp_path):
    link, state = follower(tmp_path)
    batches = leader_batches(tmp_path, 2)

    async def scenario() -> list[int]:
        call = Call()
        reader = asyncio.create_task(link._read(call))      # no stream task runs: only the reader can write
        base = 0
        for records in batches:
            await call.pushes.put(replication_pb2.ReplicaFetchResponse(partitions=[replication_pb2.ReplicaPartitionData(
                topic="t", partition=0, records=records, base_offset=base, high_watermark=base, leader_epoch=3,
            )]))
            await settle()
            base = state.partition.log.log_end_offset
        await call.pushes.put(grpc.aio.EOF)
        await reader
        return [request.positions[0].fetch_offset for request in call.written]

    assert asyncio.run(scenario()) == [2, 4]
