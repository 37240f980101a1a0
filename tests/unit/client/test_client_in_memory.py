"""The client SDK over the `transport=` seam: Producer, Consumer and Admin with no sockets.

Goal: the clients' behaviour (delivery, polling, commits, retries until the deadline) can be tested
without a gRPC server. Method: the fake cluster's servicers, or small scripted ones, are mounted on
an InMemoryNetwork (tests/support/memory_transport.py) and the clients get
`transport=network.transport(...)`, a real Transport whose channels are in-memory (STYLE.md section
4: "fake channel (httpx MockTransport idea)").
"""

from __future__ import annotations

import time

import grpc
import pytest
from freshet.client import Admin, Consumer, Producer, TopicPartition
from freshet.client._group import CoordinatorClient
from freshet.client._retry import Deadline, Retry, retry_until_deadline
from freshet.client.errors import (
    BrokerUnavailableError,
    ClientTimeoutError,
    CoordinatorNotAvailableError,
    NotControllerError,
    UnknownTopicError,
)
from freshet.v1 import common_pb2, controller_pb2, controller_pb2_grpc, group_pb2, group_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from tests.support.memory_transport import InMemoryNetwork

T0 = TopicPartition("orders", 0)


def _poll_until(consumer, count, timeout_s=10.0):
    records = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        assert time.monotonic() < deadline, f"only {len(records)} of {count} records arrived"
        records += consumer.poll(timeout_ms=200)
    return records


# =================================================================================================
# Producer.


def test_producer_send_and_flush_deliver_in_order_without_sockets(memory_cluster):
    """send() + flush() over the in-memory transport: every future resolves, offsets are
    consecutive per partition, and the partition logs hold the values in send order."""
    memory_cluster.create_topic("orders", 2)
    transport = memory_cluster.transport()
    with Producer(transport=transport, linger_ms=20) as producer:
        futures = [producer.send("orders", value=b"v%d" % i, partition=i % 2) for i in range(10)]
        producer.flush(timeout=10)
        assert all(future.done() for future in futures)
        metadata = [future.result() for future in futures]
    assert [m.offset for m in metadata if m.partition == 0] == [0, 1, 2, 3, 4]
    assert [m.offset for m in metadata if m.partition == 1] == [0, 1, 2, 3, 4]
    assert [value for _, _, value, _ in memory_cluster.records("orders", 0)] == [b"v0", b"v2", b"v4", b"v6", b"v8"]
    assert memory_cluster.network.calls_started > 0
    transport.close()


def test_producer_send_to_a_missing_topic_fails_without_sockets(memory_cluster):
    """The metadata path runs over the seam too: an unknown topic is UnknownTopicError once
    topic_metadata_propagation_max_ms has passed."""
    transport = memory_cluster.transport()
    with Producer(transport=transport, topic_metadata_propagation_max_ms=200, max_block_ms=5000) as producer:
        with pytest.raises(UnknownTopicError):
            producer.send("missing", value=b"v")
    transport.close()


def test_a_client_leaves_an_injected_transport_open(memory_cluster):
    """The caller built the transport, so closing the client does not close it."""
    memory_cluster.create_topic("orders", 1)
    transport = memory_cluster.transport()
    with Producer(transport=transport) as producer:
        producer.send("orders", value=b"a").result(10)
    with Producer(transport=transport) as producer:  # the same transport still works
        assert producer.send("orders", value=b"b").result(10).offset == 1
    transport.close()


def test_bootstrap_servers_and_transport_together_are_refused(memory_cluster):
    transport = memory_cluster.transport()
    with pytest.raises(ValueError, match="not both"):
        Producer("127.0.0.1:9092", transport=transport)
    with pytest.raises(ValueError, match="not both"):
        Consumer("127.0.0.1:9092", transport=transport)
    with pytest.raises(ValueError, match="not both"):
        Admin("127.0.0.1:9092", transport=transport)
    transport.close()


# =================================================================================================
# Consumer.


def test_consumer_poll_and_commit_without_sockets(memory_cluster, memory_groups):
    """assign() + poll() return the stored records in order; commit() stores the position with
    the group's coordinator and committed() reads it back."""
    memory_cluster.create_topic("orders", 1)
    memory_cluster.append("orders", 0, [b"a", b"b", b"c"])
    transport = memory_cluster.transport()
    with Consumer(transport=transport, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        consumer.assign([T0])
        records = _poll_until(consumer, 3)
        assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c")]
        assert consumer.committed(T0) is None
        consumer.commit()
        assert consumer.committed(T0) == 3
        assert consumer.position(T0) == 3
    transport.close()


def test_consumer_seek_refetches_from_the_new_position_without_sockets(memory_cluster):
    """A seek cuts the parked long poll short and the next records start at the new offset."""
    memory_cluster.create_topic("orders", 1)
    memory_cluster.append("orders", 0, [b"a", b"b", b"c", b"d"])
    transport = memory_cluster.transport()
    with Consumer(transport=transport, auto_offset_reset="earliest", fetch_max_wait_ms=5000) as consumer:
        consumer.assign([T0])
        assert [r.offset for r in _poll_until(consumer, 4)] == [0, 1, 2, 3]
        started = time.monotonic()
        consumer.seek(T0, 1)
        assert [r.offset for r in _poll_until(consumer, 3)] == [1, 2, 3]
        assert time.monotonic() - started < 4  # not held up by the 5 s long poll
    transport.close()


# =================================================================================================
# Retrying until the deadline: Admin, the group coordinator client, and the helper itself.


class _ScriptedController(controller_pb2_grpc.ControllerServicer):
    """Answers DescribeCluster with NOT_CONTROLLER `refusals` times, then with cluster "c1"."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    def DescribeCluster(self, request, context):  # noqa: N802 - gRPC method name
        self.calls += 1
        if self.calls <= self.refusals:
            detail = common_pb2.ErrorDetail(code=common_pb2.NOT_CONTROLLER, message="not the controller", controller_id=2)
            packed = any_pb2.Any()
            packed.Pack(detail)
            status = status_pb2.Status(
                code=grpc.StatusCode.FAILED_PRECONDITION.value[0], message="not the controller", details=[packed]
            )
            context.abort_with_status(rpc_status.to_status(status))
        return controller_pb2.DescribeClusterResponse(cluster_id="c1", controller_id=2)


def _admin_with_controller(network: InMemoryNetwork, refusals: int, request_timeout_ms: int):
    controller = _ScriptedController(refusals)
    controller_pb2_grpc.add_ControllerServicer_to_server(controller, network.add_server("127.0.0.1:1"))
    transport = network.transport("127.0.0.1:1")
    return Admin(transport=transport, request_timeout_ms=request_timeout_ms), controller


def test_admin_retries_not_controller_with_backoff_until_it_answers():
    """Two NOT_CONTROLLER answers, then success: the third round (after 0.2 s and 0.4 s of backoff)
    returns the result."""
    with InMemoryNetwork() as network:
        admin, controller = _admin_with_controller(network, refusals=2, request_timeout_ms=5000)
        started = time.monotonic()
        cluster = admin.describe_cluster()
        elapsed = time.monotonic() - started
    assert cluster.cluster_id == "c1"
    assert controller.calls == 3
    assert 0.55 <= elapsed < 3


def test_admin_gives_up_at_its_deadline_with_the_last_not_controller():
    """A node that keeps answering NOT_CONTROLLER: Admin stops at request_timeout_ms (before its
    third round) and raises NotControllerError naming the controller the node knew."""
    with InMemoryNetwork() as network:
        admin, controller = _admin_with_controller(network, refusals=100, request_timeout_ms=300)
        started = time.monotonic()
        with pytest.raises(NotControllerError, match="no active controller answered in time") as caught:
            admin.describe_cluster()
        elapsed = time.monotonic() - started
    assert caught.value.controller_id == 2
    assert controller.calls == 2
    assert elapsed < 1.5


def test_admin_gives_up_after_three_rounds_when_no_node_is_reachable():
    """No server at either address: 3 rounds x 2 nodes, then BrokerUnavailableError naming both."""
    with InMemoryNetwork() as network:
        admin = Admin(transport=network.transport("127.0.0.1:1,127.0.0.1:2"), request_timeout_ms=5000)
        with pytest.raises(BrokerUnavailableError, match="cannot reach any broker at 127.0.0.1:1,127.0.0.1:2"):
            admin.describe_cluster()
        assert network.calls_started == 6


class _NoCoordinatorYet(group_pb2_grpc.GroupServicer):
    def __init__(self) -> None:
        self.calls = 0

    def FindCoordinator(self, request, context):  # noqa: N802 - gRPC method name
        self.calls += 1
        response = group_pb2.FindCoordinatorResponse()
        response.coordinators.add().coordinator.node_id = -1
        return response


def test_coordinator_lookup_retries_until_the_deadline():
    """FindCoordinator keeps saying "no coordinator yet" (retriable): the call retries every
    retry_backoff and ends with ClientTimeoutError caused by CoordinatorNotAvailableError."""
    with InMemoryNetwork() as network:
        servicer = _NoCoordinatorYet()
        group_pb2_grpc.add_GroupServicer_to_server(servicer, network.add_server("127.0.0.1:1"))
        client = CoordinatorClient(network.transport("127.0.0.1:1"), "g", retry_backoff_s=0.05, request_timeout_s=1)
        started = time.monotonic()
        with pytest.raises(ClientTimeoutError, match="no coordinator found for group 'g'") as caught:
            client.call("DescribeGroups", group_pb2.DescribeGroupsRequest(group_ids=["g"]), 0.5)
        elapsed = time.monotonic() - started
    assert isinstance(caught.value.__cause__, CoordinatorNotAvailableError)
    assert 0.45 <= elapsed < 1.5
    assert servicer.calls >= 4


def test_retry_until_deadline_stops_at_max_attempts_with_the_last_error_as_cause():
    attempts = []

    def attempt(deadline):
        attempts.append(deadline.remaining())
        raise Retry(BrokerUnavailableError(f"attempt {len(attempts)}"))

    with pytest.raises(ClientTimeoutError, match="gave up") as caught:
        retry_until_deadline(
            attempt, Deadline(10), backoff_s=0.0, give_up=lambda error: ClientTimeoutError("gave up"), max_attempts=3
        )
    assert len(attempts) == 3
    assert str(caught.value.__cause__).endswith("attempt 3")


def test_retry_until_deadline_returns_the_first_success_and_propagates_other_errors():
    results = iter([Retry(None), Retry(None, is_backoff=False), "done"])

    def attempt(deadline):
        item = next(results)
        if isinstance(item, Retry):
            raise item
        return item

    assert retry_until_deadline(attempt, Deadline(10), backoff_s=0.0, give_up=ClientTimeoutError) == "done"

    def failing(deadline):
        raise UnknownTopicError("not retried")

    with pytest.raises(UnknownTopicError):
        retry_until_deadline(failing, Deadline(10), backoff_s=0.0, give_up=ClientTimeoutError)


def test_retry_until_deadline_gives_up_when_the_deadline_passes():
    calls = []

    def attempt(deadline):
        calls.append(1)
        raise Retry(None)

    started = time.monotonic()
    with pytest.raises(ClientTimeoutError):
        retry_until_deadline(
            attempt, Deadline(0.2), backoff_s=0.05, give_up=lambda error: ClientTimeoutError("late"), is_cause_kept=False
        )
    assert 0.15 <= time.monotonic() - started < 1.0
    assert 3 <= len(calls) <= 6
