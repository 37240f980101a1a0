"""Roles, produce and fetch of the broker's data plane, with a fake log, a fake clock and no I/O.

Goal: the parts `DataPlane` is made of behave as Kafka's ReplicaManager does, checked without a
socket, a thread, a disk or the wall clock. Method: a `FakeLog` holds appended "batches" in a
list (one record each), a `FakeImage` answers the leader hints, a `FakeFetcher` records what the
roles ask to follow, and a storage `ManualClock` is the only time. Each test drives the pieces
directly on a fresh event loop.

Reference: Kafka's ReplicaManager.appendRecords / fetchMessages / makeLeaders / makeFollowers;
KIP-320 (leader epoch fencing of fetches); STYLE.md §6 (transitions that check where they come from).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading

import pytest
from freshet.metadata import configs
from freshet.metadata.image import NO_LEADER
from freshet.server.broker.disk_watch import DiskWatch
from freshet.server.broker.fetch import FetchPath
from freshet.server.broker.hosted_replicas import HostedReplica
from freshet.server.broker.partition_table import PartitionTable
from freshet.server.broker.produce import ProducePath
from freshet.server.broker.roles import ReplicaRoles
from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.core import LeaderState
from freshet.server.replication.partition import FOLLOWER, LEADER, STOPPED, Partition
from freshet.storage.clock import ManualClock
from freshet.storage.config import LogConfig
from freshet.storage.disk_space import DiskSpaceMonitor
from freshet.storage.errors import OffsetOutOfRangeError
from freshet.storage.file_region import FileRegion
from freshet.storage.log import LogAppendInfo, LogReadResult
from freshet.v1 import broker_pb2, common_pb2, replication_pb2
from prometheus_client import CollectorRegistry

E = common_pb2.ErrorCode
NODE = 1
TOPIC_ID = b"\x01" * 16
#: One "batch" of a fake log: 80 bytes whose header says so (batch length 68 after the 12-byte log overhead).
BATCH = bytes(8) + (68).to_bytes(4, "big") + bytes(68)


class FakeLog:
    """A partition log in memory: each append is one batch of one record."""

    def __init__(self) -> None:
        self.batches: list[bytes] = []
        self.log_start_offset = 0
        self.latest_epoch = -1
        self.epoch_starts: dict[int, int] = {}
        self.size_bytes = 0
        self.config = LogConfig()          # write caching on: acks=all commits on log end offsets
        self.durable_offset = 0

    @property
    def log_end_offset(self) -> int:
        return len(self.batches)

    def assign_epoch_start_offset(self, epoch: int, offset: int) -> None:
        self.latest_epoch = epoch
        self.epoch_starts[epoch] = offset

    def append_as_leader(self, data: bytearray, leader_epoch: int) -> LogAppendInfo:
        offset = len(self.batches)
        self.batches.append(bytes(data))
        self.size_bytes += len(data)
        return LogAppendInfo(offset, offset, -1, offset, -1, self.log_start_offset, 1, len(data))

    def timestamp_at(self, offset: int, high_watermark: int) -> int | None:
        """Record n is stamped 5000 + n (PartitionLog.timestamp_at's contract, in memory)."""
        offset = max(offset, self.log_start_offset)
        return None if offset >= min(high_watermark, self.log_end_offset) else 5000 + offset

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None, as_region: bool = False) -> LogReadResult:
        end = self.log_end_offset if max_offset is None else max_offset
        if not self.log_start_offset <= offset <= self.log_end_offset:
            raise OffsetOutOfRangeError(offset, self.log_start_offset, self.log_end_offset)
        records = b"".join(self.batches[offset:end])[: max(max_bytes, len(BATCH))]
        count = len(records) // len(BATCH)
        if as_region and records:
            records = memory_region(records)
        return LogReadResult(records, offset if count else -1, offset + count, self.log_start_offset, self.log_end_offset)


def memory_region(data: bytes) -> FileRegion:
    """`data` as a FileRegion over an anonymous in-memory file (what a segment read hands out)."""
    fd = os.memfd_create("fake-segment", os.MFD_CLOEXEC)
    os.write(fd, data)
    return FileRegion(fd, 0, len(data), "<memory>")


@dataclasses.dataclass
class FakeBroker:
    host: str
    port: int
    rack: str = ""


@dataclasses.dataclass
class FakePartitionImage:
    leader: int
    leader_epoch: int


class FakeImage:
    """What the leader hints read of a MetadataImage."""

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], FakePartitionImage] = {}
        self.brokers = {2: FakeBroker("b2", 9102), 3: FakeBroker("b3", 9103)}

    def partition(self, topic: str, number: int):
        return self.partitions.get((topic, number))

    def topic(self, name: str):
        return name if any(topic == name for topic, _ in self.partitions) else None


class FakePublisher:
    def __init__(self) -> None:
        self.image = FakeImage()

    def add_listener(self, listener) -> None:
        pass


class FakeFetcher:
    """Records which partitions the roles follow, from whom."""

    def __init__(self) -> None:
        self.following: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, partition: Partition, leader_id: int, leader_epoch: int) -> None:
        self.following[partition.key] = (leader_id, leader_epoch)

    def remove(self, key: tuple[str, int]) -> None:
        self.following.pop(key, None)


@dataclasses.dataclass
class Broker:
    """The pieces of one broker's data plane over fakes."""

    clock: ManualClock
    publisher: FakePublisher
    table: PartitionTable
    fetcher: FakeFetcher
    roles: ReplicaRoles
    produce: ProducePath
    fetch: FetchPath
    log: FakeLog
    leadership: list


def make_broker(loop: asyncio.AbstractEventLoop, may_act: bool = True) -> Broker:
    clock = ManualClock(1_000)
    publisher = FakePublisher()
    table = PartitionTable(NODE, publisher, BrokerMetrics(CollectorRegistry()))
    fetcher = FakeFetcher()
    roles = ReplicaRoles(table, publisher, fetcher, lambda image: may_act, clock)
    produce = ProducePath(table, clock)
    fetch = FetchPath(table, table.metrics)
    leadership: list = []
    roles.add_leadership_listener(lambda topic, number, is_leader, epoch: leadership.append((topic, number, is_leader, epoch)))
    for part in (roles, produce, fetch):
        part.start(loop)
    return Broker(clock, publisher, table, fetcher, roles, produce, fetch, FakeLog(), leadership)


def hosted(broker: Broker, leader: int, epoch: int, isr=(1, 2, 3), partition_epoch: int = 0, min_isr: int = 2) -> HostedReplica:
    role = LEADER if leader == NODE else FOLLOWER
    broker.publisher.image.partitions[("t", 0)] = FakePartitionImage(leader, epoch)
    return HostedReplica("t", 0, TOPIC_ID, role, leader, epoch, partition_epoch, broker.log, (1, 2, 3), tuple(isr), min_isr)


def apply(broker: Broker, replica: HostedReplica | None) -> None:
    old = broker.roles.hosted.get(("t", 0))
    broker.roles._on_replica_change(old, replica)


def produce(broker: Broker, acks: int, timeout_ms: int = 1000) -> list:
    answers: list = []
    request = broker_pb2.ProduceRequest(
        acks=acks, timeout_ms=timeout_ms, partitions=[broker_pb2.PartitionRecords(topic="t", partition=0, records=BATCH)]
    )
    broker.produce.produce(request, answers.append)
    return answers


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# -- roles ---------------------------------------------------------------------------------------


def test_roles_wait_until_metadata_caught_up_with_the_registration(loop):
    broker = make_broker(loop, may_act=False)
    apply(broker, hosted(broker, leader=NODE, epoch=3))
    assert broker.table.partitions == {}
    assert not broker.roles.is_active


def test_role_changes_from_the_worker_apply_in_order_a_bounded_number_per_loop_turn(loop):
    # A 250-partition topic arrives as 250 changes from the HostedReplicas worker thread. They
    # must all apply, in order, but not in one turn of the loop: a callback that became ready
    # after the first ones (a heartbeat, a request) runs before the rest.
    from freshet.server.broker.roles import ROLE_CHANGES_PER_TURN

    broker = make_broker(loop)
    count = 2 * ROLE_CHANGES_PER_TURN + 50
    seen_by_other_callback: list[int] = []

    def worker() -> None:
        for number in range(count):
            broker.publisher.image.partitions[("t", number)] = FakePartitionImage(2, 0)
            replica = HostedReplica("t", number, TOPIC_ID, FOLLOWER, 2, 0, 0, FakeLog(), (1, 2, 3), (1, 2, 3), 2)
            broker.roles.on_replica_change_thread(None, replica)
        loop.call_soon_threadsafe(lambda: seen_by_other_callback.append(len(broker.fetcher.following)))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert seen_by_other_callback == [ROLE_CHANGES_PER_TURN]
    assert list(broker.fetcher.following) == [("t", number) for number in range(count)]
    assert all(broker.table.partitions[("t", number)].role == FOLLOWER for number in range(count))


def test_become_leader_records_the_epoch_start_and_tells_listeners(loop):
    broker = make_broker(loop)
    broker.log.batches = [BATCH] * 4
    apply(broker, hosted(broker, leader=NODE, epoch=3))
    partition = broker.table.partitions[("t", 0)]
    assert partition.role == LEADER
    assert partition.leader is not None and partition.leader.leader_epoch == 3
    assert broker.log.epoch_starts == {3: 4}
    assert broker.leadership == [("t", 0, True, 3)]
    assert ("t", 0) not in broker.fetcher.following


def test_leader_to_follower_answers_waiting_acks_all_with_the_new_leader(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=3))
    answers = produce(broker, acks=-1)
    assert answers == []                                   # waiting for followers
    apply(broker, hosted(broker, leader=2, epoch=4))
    partition = broker.table.partitions[("t", 0)]
    assert partition.role == FOLLOWER
    assert partition.leader is None
    assert broker.fetcher.following[("t", 0)] == (2, 4)
    assert broker.leadership[-1] == ("t", 0, False, 4)
    (response,) = answers
    error = response.results[0].error
    assert error.code == E.NOT_LEADER
    assert error.leader_id == 2 and error.leader.host == "b2"


def test_follower_without_a_leader_fetches_from_nobody(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=2, epoch=1))
    assert broker.fetcher.following[("t", 0)] == (2, 1)
    apply(broker, hosted(broker, leader=NO_LEADER, epoch=2))
    assert ("t", 0) not in broker.fetcher.following
    assert broker.table.partitions[("t", 0)].role == FOLLOWER


def test_removed_replica_is_stopped_and_forgotten(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1))
    partition = broker.table.partitions[("t", 0)]
    broker.roles._on_replica_change(broker.roles.hosted[("t", 0)], None)
    assert partition.role == STOPPED
    assert broker.table.partitions == {}
    assert broker.leadership[-1][2] is False


def test_transitions_refuse_an_older_epoch_and_a_repeated_leadership():
    log = FakeLog()
    counters = PartitionTable(NODE, FakePublisher(), BrokerMetrics(CollectorRegistry())).counters("t")
    partition = Partition("t", 0, TOPIC_ID, log, 0, counters)
    leader = LeaderState(NODE, 5, 0, (1, 2), (1, 2), 0, 0, 0, 0, 1)
    assert partition.become_leader(leader, NODE) == STOPPED
    with pytest.raises(AssertionError, match="leader -> leader at the same epoch"):
        partition.become_leader(LeaderState(NODE, 5, 0, (1, 2), (1, 2), 0, 0, 0, 0, 1), NODE)
    with pytest.raises(AssertionError, match="follower epoch 4"):
        partition.become_follower(2, 4, lambda p: common_pb2.ErrorDetail())
    assert partition.become_follower(2, 6, lambda p: common_pb2.ErrorDetail()) == LEADER
    with pytest.raises(AssertionError, match="the same leader at the same epoch"):
        partition.become_follower(2, 6, lambda p: common_pb2.ErrorDetail())


def test_high_watermark_never_passes_the_log_end():
    log = FakeLog()
    counters = PartitionTable(NODE, FakePublisher(), BrokerMetrics(CollectorRegistry())).counters("t")
    partition = Partition("t", 0, TOPIC_ID, log, 0, counters)
    log.batches = [BATCH] * 3
    assert partition.set_high_watermark(3)
    assert not partition.set_high_watermark(2)            # never backwards
    with pytest.raises(AssertionError):
        partition.set_high_watermark(4)


# -- produce -------------------------------------------------------------------------------------


def test_acks_1_is_answered_at_once_with_the_offset(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1))
    produce(broker, acks=1)
    (response,) = produce(broker, acks=1)
    result = response.results[0]
    assert result.error.code == E.NONE
    assert result.base_offset == 1
    assert broker.log.log_end_offset == 2


def test_acks_all_completes_when_the_isr_acknowledged(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1))
    partition = broker.table.partitions[("t", 0)]
    answers = produce(broker, acks=-1)
    broker.clock.advance(5)
    partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
    assert answers == [] and partition.high_watermark == 0     # replica 3 has not reported
    partition.follower_acknowledged(3, 1, broker.clock.monotonic_ms())
    assert partition.high_watermark == 1
    (response,) = answers
    assert response.results[0].error.code == E.NONE
    assert response.results[0].base_offset == 0


def test_acks_all_with_a_short_isr_appends_nothing(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1,), min_isr=2))
    (response,) = produce(broker, acks=-1)
    assert response.results[0].error.code == E.NOT_ENOUGH_REPLICAS
    assert broker.log.log_end_offset == 0


def test_acks_all_times_out_with_the_outcome_unknown(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1))
    answers = produce(broker, acks=-1, timeout_ms=20)
    loop.run_until_complete(asyncio.sleep(0.05))
    (response,) = answers
    assert response.results[0].error.code == E.REQUEST_TIMED_OUT
    assert "may still be committed" in response.results[0].error.message


def test_produce_to_a_follower_is_not_leader_with_the_hint(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=3, epoch=7))
    (response,) = produce(broker, acks=1)
    error = response.results[0].error
    assert error.code == E.NOT_LEADER
    assert (error.leader_id, error.leader_epoch, error.leader.port) == (3, 7, 9103)
    assert broker.log.log_end_offset == 0


# -- fetch ---------------------------------------------------------------------------------------


def fetch_request(offset: int, epoch: int = -1, max_wait_ms: int = 0, min_bytes: int = 0) -> broker_pb2.FetchRequest:
    return broker_pb2.FetchRequest(
        max_wait_ms=max_wait_ms, min_bytes=min_bytes,
        partitions=[broker_pb2.PartitionFetch(topic="t", partition=0, fetch_offset=offset, current_leader_epoch=epoch)],
    )


def test_fetch_reads_only_below_the_high_watermark(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1,), min_isr=1))
    partition = broker.table.partitions[("t", 0)]
    produce(broker, acks=1)
    assert partition.high_watermark == 1                   # the leader alone is the ISR
    partition.leader.isr = (1, 2)                          # a follower rejoined: the next write waits for it
    produce(broker, acks=1)
    result = loop.run_until_complete(broker.fetch.fetch(fetch_request(0))).results[0]
    assert result.error.code == E.NONE
    assert (result.high_watermark, result.next_fetch_offset, len(result.records)) == (1, 1, len(BATCH))


def test_long_poll_wakes_when_the_high_watermark_moves(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1, 2), min_isr=1))
    partition = broker.table.partitions[("t", 0)]

    async def scenario():
        waiting = asyncio.ensure_future(broker.fetch.fetch(fetch_request(0, max_wait_ms=5_000, min_bytes=1)))
        await asyncio.sleep(0)
        assert broker.fetch.fetch_waiting == 1
        produce(broker, acks=1)
        await asyncio.sleep(0)
        assert not waiting.done()                          # appended, not committed
        partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
        return await asyncio.wait_for(waiting, 1.0)

    response = loop.run_until_complete(scenario())
    assert response.results[0].next_fetch_offset == 1
    assert broker.fetch.fetch_waiting == 0


def test_fetch_with_another_leader_epoch_is_fenced_or_unknown(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=5))
    older = loop.run_until_complete(broker.fetch.fetch(fetch_request(0, epoch=4))).results[0]
    newer = loop.run_until_complete(broker.fetch.fetch(fetch_request(0, epoch=6))).results[0]
    assert older.error.code == E.FENCED_LEADER_EPOCH
    assert newer.error.code == E.UNKNOWN_LEADER_EPOCH
    assert older.error.leader_epoch == 5


def test_fetch_out_of_range_names_the_readable_range(loop):
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1))
    result = loop.run_until_complete(broker.fetch.fetch(fetch_request(9))).results[0]
    assert result.error.code == E.OFFSET_OUT_OF_RANGE
    assert "[0, 0]" in result.error.message


# -- ISR maintenance -----------------------------------------------------------------------------


@dataclasses.dataclass
class FakeBrokerRegistration:
    is_fenced: bool = False
    in_controlled_shutdown: bool = False


def test_a_lagging_follower_is_shrunk_out_through_alter_partition(loop, monkeypatch):
    """Kafka's ISR expiration: a follower not caught up for replica.lag.time.max.ms leaves the
    ISR, through one AlterPartition to the controller; the answer is adopted and counted."""
    from freshet.server.broker import alter_partition
    from freshet.v1 import controller_pb2

    broker = make_broker(loop)
    broker.publisher.image.brokers = {2: FakeBrokerRegistration(), 3: FakeBrokerRegistration()}
    apply(broker, hosted(broker, leader=NODE, epoch=1, partition_epoch=4))
    partition = broker.table.partitions[("t", 0)]
    sent: list = []

    async def fake_forward(channels, method, request, deadline, hint, skip_self):
        request = request()                               # built at each attempt
        sent.append((method, request))
        (change,) = request.changes
        response = controller_pb2.AlterPartitionResponse()
        result = response.results.add(topic_id=change.topic_id, partition=change.partition)
        result.partition_state.partition_epoch = change.partition_epoch + 1
        result.partition_state.leader_epoch = change.leader_epoch
        result.partition_state.isr.extend(change.new_isr)
        return response

    monkeypatch.setattr(alter_partition, "forward", fake_forward)
    config = type("Config", (), {"replica_lag_time_max_ms": 30_000})()
    manager = alter_partition.AlterPartitionManager(broker.table, None, lambda: 1, lambda: 7, lambda: config, broker.clock)
    manager._loop = loop
    produce(broker, acks=1)
    broker.clock.advance(10)
    partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
    broker.clock.advance(30_000)                          # replica 3 never reported: lagging 30,010 ms
    assert partition.high_watermark == 0                  # held back by replica 3
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    (method, request), = sent
    assert method == "AlterPartition"
    assert (request.broker_id, request.broker_epoch) == (NODE, 7)
    assert list(request.changes[0].new_isr) == [1, 2]
    assert partition.leader.isr == (1, 2)
    assert partition.leader.partition_epoch == 5
    assert partition.high_watermark == 1                  # the answer's HW move is applied
    assert broker.table.metrics.isr_shrinks._value.get() == 1
    manager.check([partition])                            # nothing more to change
    loop.run_until_complete(asyncio.sleep(0))
    assert len(sent) == 1


# -- ISR maintenance after a partition heals (issue 16) -----------------------------------------


def committing_forward(sent: list, attempts_before: list | None = None, in_flight=lambda: None):
    """A fake `forward` that commits every change as asked. `attempts_before`: functions run
    between attempts; each first builds (and records) an attempt that gets no answer.
    `in_flight`: runs after the last attempt was sent, before its answer."""
    from freshet.v1 import controller_pb2

    async def fake_forward(channels, method, build, deadline, hint, skip_self):
        for between in attempts_before or []:
            sent.append(build())                          # an attempt lost in the cut
            between()
        request = build()
        sent.append(request)
        in_flight()
        response = controller_pb2.AlterPartitionResponse()
        for change in request.changes:
            result = response.results.add(topic_id=change.topic_id, partition=change.partition)
            result.partition_state.partition_epoch = change.partition_epoch + 1
            result.partition_state.leader_epoch = change.leader_epoch
            result.partition_state.isr.extend(change.new_isr)
        return response

    return fake_forward


def isr_manager(loop, monkeypatch, fake_forward, contact=lambda: 0):
    """A leader of t-0 (replicas 1, 2, 3, ISR all, one record written) and its ISR maintenance."""
    from freshet.server.broker import alter_partition

    broker = make_broker(loop)
    broker.publisher.image.brokers = {2: FakeBrokerRegistration(), 3: FakeBrokerRegistration()}
    apply(broker, hosted(broker, leader=NODE, epoch=1, partition_epoch=4))
    monkeypatch.setattr(alter_partition, "forward", fake_forward)
    config = type("Config", (), {"replica_lag_time_max_ms": 1_500})()
    manager = alter_partition.AlterPartitionManager(
        broker.table, None, lambda: 1, lambda: 7, lambda: config, broker.clock, controller_contact=contact
    )
    manager._loop = loop
    produce(broker, acks=1)
    return broker, broker.table.partitions[("t", 0)], manager


def test_a_leader_without_controller_contact_does_not_shrink_and_restarts_the_lag_when_contact_returns(loop, monkeypatch):
    """A leader cut off from everyone sees its followers lag; shrinking then is what the
    controller committed the moment the cut healed (NOT_ENOUGH_REPLICAS after the heal). No
    shrink without contact, and after contact returns each follower has a full lag window."""
    sent: list = []
    contact: dict = {"now": 0}
    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent), lambda: contact["now"])
    contact["now"] = None                                 # the heartbeats get no replies
    broker.clock.advance(5_000)                           # no follower acknowledged for 5 s
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert sent == [] and partition.leader.isr == (1, 2, 3)
    contact["now"] = 1                                    # contact came back
    manager.check([partition])
    broker.clock.advance(1_000)
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert sent == [], "shrank followers whose lag was measured while the leader was cut off"
    partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
    broker.clock.advance(600)                             # 3 silent 1.6 s since contact: really lagging
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1, 2]]
    assert partition.leader.isr == (1, 2)


def test_a_leader_that_hears_a_follower_shrinks_a_lagging_one_without_controller_contact(loop, monkeypatch):
    """When the node cut off was the controller (and a follower), a leader still hearing its other
    follower is not isolated: it shrinks the lagging follower at its usual time, and regaining
    controller contact does not give that follower a new lag window."""
    sent: list = []
    contact: dict = {"now": 0}
    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent), lambda: contact["now"])
    contact["now"] = None
    broker.clock.advance(1_000)
    partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
    contact["now"] = 1                                    # a new controller answers
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert sent == []                                     # 3 lags 1 s < 1.5 s
    contact["now"] = None
    broker.clock.advance(600)                             # 3 lags 1.6 s; 2 acknowledged 0.6 s ago
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1, 2]]

def test_a_retried_alter_partition_keeps_a_follower_that_caught_up_meanwhile(loop, monkeypatch):
    """The AlterPartition is rebuilt at each attempt from the followers' current state: a shrink
    decided before a follower caught up is not sent as it was."""
    sent: list = []
    holder: dict = {}

    def follower_2_catches_up() -> None:
        holder["partition"].follower_acknowledged(2, 1, holder["broker"].clock.monotonic_ms())

    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent, [follower_2_catches_up]))
    holder.update(broker=broker, partition=partition)
    broker.clock.advance(2_000)                           # both followers lag 2 s
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1], [1, 2]]
    assert sent[0].request_id != sent[1].request_id       # another change: another request id
    assert partition.leader.isr == (1, 2)
    assert partition.high_watermark == 1                  # committed by 1 and 2


def test_an_unchanged_retry_keeps_its_request_id(loop, monkeypatch):
    """A retry whose change is still the same is the same request (the controller deduplicates
    by request id: a lost answer must not apply it twice)."""
    sent: list = []
    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent, [lambda: None]))
    broker.clock.advance(2_000)
    manager.check([partition])
    loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1], [1]]
    assert sent[0].request_id == sent[1].request_id


def test_a_follower_that_caught_up_during_a_shrink_rejoins_right_after_it(loop, monkeypatch):
    """A shrink in flight blocks other ISR changes; once it is committed, a follower that caught
    up meanwhile is re-added at once, not at the next periodic pass (acks=all is refused while
    the ISR is below min.insync.replicas)."""
    sent: list = []
    holder: dict = {}

    def both_catch_up() -> None:
        now = holder["broker"].clock.monotonic_ms()
        holder["partition"].follower_acknowledged(2, 1, now)
        holder["partition"].follower_acknowledged(3, 1, now)

    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent, in_flight=both_catch_up))
    holder.update(broker=broker, partition=partition)
    broker.clock.advance(2_000)
    partition.follower_acknowledged(2, 1, broker.clock.monotonic_ms())
    manager.check([partition])                            # shrinks 3 out; 3 catches up in flight
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1, 2], [1, 2, 3]]
    assert partition.leader.isr == (1, 2, 3)


def test_a_shrink_no_longer_needed_when_it_would_be_sent_is_not_sent(loop, monkeypatch):
    """Followers that caught up between the decision and the send: nothing is sent at all."""
    sent: list = []
    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent))
    broker.clock.advance(2_000)
    manager.check([partition])                            # decides to shrink both followers
    assert partition.leader.pending is not None
    now = broker.clock.monotonic_ms()
    partition.follower_acknowledged(2, 1, now)
    partition.follower_acknowledged(3, 1, now)
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    assert sent == [] and partition.leader.pending is None and partition.leader.isr == (1, 2, 3)


def test_a_shrink_by_metadata_is_followed_by_an_isr_check(loop, monkeypatch):
    """The controller shrank the ISR (a stale AlterPartition, a fenced follower): the leader
    checks at once whether the caught-up follower may rejoin."""
    sent: list = []
    broker, partition, manager = isr_manager(loop, monkeypatch, committing_forward(sent))
    broker.roles.leader_metadata_applied = manager.request_check
    now = broker.clock.monotonic_ms()
    partition.follower_acknowledged(2, 1, now)
    partition.follower_acknowledged(3, 1, now)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1, 2), partition_epoch=5))
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))
    assert [list(request.changes[0].new_isr) for request in sent] == [[1, 2, 3]]
    assert partition.leader.isr == (1, 2, 3)


def test_produce_to_a_full_log_directory_is_a_retriable_storage_error_and_nothing_is_written(loop, tmp_path):
    """Goal: below the low-water mark a client's produce fails fast, before any write, with
    KAFKA_STORAGE_ERROR naming the directory and the free bytes, and succeeds by itself once space
    is back above high-water; __consumer_offsets is not refused. Method: the DiskWatch's monitor
    looks at an injected statvfs."""
    free = [500_000]
    broker_config = configs.broker_config({"disk.free.min.bytes": "1000000", "disk.free.min.percent": "0", "disk.reserve.bytes": "0"}, {})
    watch = DiskWatch(str(tmp_path), str(tmp_path), lambda: broker_config, lambda: None)
    watch.monitor = DiskSpaceMonitor(
        str(tmp_path), watch.monitor.limits,
        statvfs=lambda path: os.statvfs_result((1, 1, 10**9, free[0], free[0], 0, 0, 0, 0, 255)),
    )
    watch.monitor.poll()
    broker = make_broker(loop)
    broker.produce = ProducePath(broker.table, broker.clock, watch)
    broker.produce.start(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1,), min_isr=1))
    (response,) = produce(broker, acks=1)
    error = response.results[0].error
    assert error.code == E.KAFKA_STORAGE_ERROR
    assert str(tmp_path) in error.message
    assert "500000 bytes free" in error.message
    assert broker.log.log_end_offset == 0
    watch.check_produce("__consumer_offsets", 100)                   # internal topics are not refused
    free[0] = 1_200_000                                               # above low, below high (low + 1 MiB)
    watch.monitor.poll()
    assert produce(broker, acks=1)[0].results[0].error.code == E.KAFKA_STORAGE_ERROR
    free[0] = 2_100_000
    watch.monitor.poll()
    assert produce(broker, acks=1)[0].results[0].error.code == E.NONE
    assert broker.log.log_end_offset == 1


# -- record timestamps (consumer lag in time) ----------------------------------------------------


def test_record_timestamps_answer_from_the_leader_below_the_high_watermark(loop):
    """Goal: Replication.RecordTimestamps as the group coordinator uses it: per query (a partition
    may come twice), the timestamp at the offset and the high watermark, is_caught_up at the high
    watermark (records above it do not count); a follower answers NOT_LEADER with the hint."""
    broker = make_broker(loop)
    apply(broker, hosted(broker, leader=NODE, epoch=1, isr=(1, 2), min_isr=1))
    partition = broker.table.partitions[("t", 0)]
    partition.leader.isr = (1,)
    produce(broker, acks=1)
    produce(broker, acks=1)
    partition.leader.isr = (1, 2)                          # the third record waits for the follower
    produce(broker, acks=1)
    assert (partition.high_watermark, broker.log.log_end_offset) == (2, 3)
    query = replication_pb2.RecordTimestampQuery
    response = broker.fetch.record_timestamps(replication_pb2.RecordTimestampsRequest(queries=[
        query(topic="t", partition=0, offset=1), query(topic="t", partition=0, offset=2), query(topic="u", partition=0),
    ]))
    first, caught_up, unknown = response.results
    assert (first.error.code, first.offset, first.timestamp, first.high_watermark, first.is_caught_up) == (E.NONE, 1, 5001, 2, False)
    assert (caught_up.error.code, caught_up.timestamp, caught_up.is_caught_up) == (E.NONE, -1, True)
    assert unknown.error.code != E.NONE and unknown.high_watermark == -1
    apply(broker, hosted(broker, leader=3, epoch=2))
    (moved,) = broker.fetch.record_timestamps(replication_pb2.RecordTimestampsRequest(queries=[query(topic="t", partition=0)])).results
    assert (moved.error.code, moved.error.leader_id) == (E.NOT_LEADER, 3)
