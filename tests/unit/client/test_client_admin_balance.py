"""The SDK's self-balancing calls: decommission, broker load, generate, reassignment progress.

Goal: `decommission_broker` sends one request (with a request id; `cancel` sets the flag) and
raises the error class of the code the controller answered; `describe_cluster` carries the
decommissioning mark and replica/leader counts and derives `broker list`'s state;
`generate_reassignment` maps the proposal; `list_partition_reassignments(with_progress=True)`
reports, per adding replica, the offsets and bytes it lacks, from DescribeLogDirs of the leader
and of that replica. Method: Admin with `_call` and `_describe_replicas` replaced by recorders.
"""

from __future__ import annotations

import pytest
from freshet.client import Admin
from freshet.client.errors import BrokerIdNotRegisteredError, InvalidReplicationFactorError
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

E = common_pb2.ErrorCode
OK = common_pb2.ErrorDetail(code=E.NONE)


class Recorder:
    def __init__(self, answers) -> None:
        self.answers = answers
        self.requests: list[tuple[str, object]] = []

    def __call__(self, service, method, request, **_):
        assert service == "controller"
        self.requests.append((method, request))
        return self.answers[method](request)


@pytest.fixture
def admin():
    client = Admin("localhost:1")
    yield client
    client.close()


def _broker(node_id: int, state=controller_pb2.BROKER_ACTIVE, **fields) -> controller_pb2.DescribedBroker:
    endpoint = common_pb2.BrokerEndpoint(node_id=node_id, host="127.0.0.1", port=9000 + node_id)
    return controller_pb2.DescribedBroker(endpoint=endpoint, state=state, **fields)


def test_decommission_sends_one_request_and_raises_the_answered_error(admin, monkeypatch):
    answers = iter([
        OK,
        common_pb2.ErrorDetail(code=E.BROKER_ID_NOT_REGISTERED, message="broker 9 is not registered"),
        common_pb2.ErrorDetail(code=E.INVALID_REPLICATION_FACTOR, message="cannot decommission broker 3"),
        OK,
    ])
    recorder = Recorder({"DecommissionBroker": lambda r: controller_pb2.DecommissionBrokerResponse(error=next(answers))})
    monkeypatch.setattr(admin, "_call", recorder)
    admin.decommission_broker(2)
    with pytest.raises(BrokerIdNotRegisteredError, match="broker 9 is not registered") as raised:
        admin.decommission_broker(9)
    assert not raised.value.retriable
    with pytest.raises(InvalidReplicationFactorError, match="cannot decommission"):
        admin.decommission_broker(3)
    admin.decommission_broker(2, cancel=True)
    sent = [request for _, request in recorder.requests]
    assert [(r.node_id, r.cancel) for r in sent] == [(2, False), (9, False), (3, False), (2, True)]
    assert all(r.request_id for r in sent) and len({r.request_id for r in sent}) == 4


def test_broker_states_for_broker_list(admin, monkeypatch):
    response = controller_pb2.DescribeClusterResponse(brokers=[
        _broker(1, replica_count=5, leader_count=2),
        _broker(2, is_decommissioning=True, replica_count=3, leader_count=1),
        _broker(3, state=controller_pb2.BROKER_FENCED, is_decommissioning=True),
        _broker(4, state=controller_pb2.BROKER_FENCED, replica_count=2),
        _broker(5, state=controller_pb2.BROKER_CONTROLLED_SHUTDOWN, replica_count=1),
    ])
    monkeypatch.setattr(admin, "_call", Recorder({"DescribeCluster": lambda r: response}))
    brokers = admin.describe_cluster().brokers
    assert [(b.node.node_id, b.balance_state, b.replica_count, b.leader_count) for b in brokers] == [
        (1, "active", 5, 2), (2, "decommissioning", 3, 1), (3, "decommissioned", 0, 0), (4, "fenced", 2, 0), (5, "fenced", 1, 0),
    ]


def test_generate_maps_the_proposal(admin, monkeypatch):
    def answer(request):
        assert list(request.topics) == ["orders"] and list(request.broker_ids) == [1, 2, 3]
        return controller_pb2.GenerateReassignmentResponse(partitions=[
            controller_pb2.ProposedReassignment(
                partition=common_pb2.TopicPartition(topic="orders", partition=0), current_replicas=[1, 4], proposed_replicas=[1, 2]
            ),
        ])

    monkeypatch.setattr(admin, "_call", Recorder({"GenerateReassignment": answer}))
    [proposal] = admin.generate_reassignment(["orders"], [1, 2, 3])
    assert (proposal.topic, proposal.partition, proposal.current_replicas, proposal.proposed_replicas) == ("orders", 0, [1, 4], [1, 2])


def test_progress_is_the_leaders_log_end_and_size_minus_the_adding_replicas(admin, monkeypatch):
    ongoing = controller_pb2.ListPartitionReassignmentsResponse(reassignments=[
        controller_pb2.OngoingReassignment(
            partition=common_pb2.TopicPartition(topic="t", partition=0), replicas=[1, 2, 4, 3],
            adding_replicas=[4, 5], removing_replicas=[3], isr=[1, 2, 3], leader=1, by_balancer=True,
        ),
    ])
    cluster = controller_pb2.DescribeClusterResponse(brokers=[_broker(n) for n in (1, 2, 3, 4)])
    monkeypatch.setattr(admin, "_call", Recorder({"ListPartitionReassignments": lambda r: ongoing, "DescribeCluster": lambda r: cluster}))
    asked = []

    def describe(broker_id, address, partitions):
        asked.append((broker_id, address))
        [tp] = partitions
        end, size = {1: (1000, 64_000), 4: (400, 20_000)}[broker_id]
        return {tp: broker_pb2.ReplicaLogInfo(topic=tp.topic, partition=tp.partition, is_leader=broker_id == 1,
                                              log_end_offset=end, size_bytes=size)}

    monkeypatch.setattr(admin, "_describe_replicas", describe)
    [moving] = admin.list_partition_reassignments(with_progress=True)
    assert moving.by_balancer
    four, five = moving.progress
    assert (four.broker_id, four.log_end_offset, four.offsets_left, four.bytes_left, four.error) == (4, 400, 600, 44_000, None)
    assert five.broker_id == 5 and five.offsets_left is None and five.error == "broker 5 is not registered"
    assert asked == [(1, "127.0.0.1:9001"), (4, "127.0.0.1:9004")]
    [plain] = admin.list_partition_reassignments()
    assert plain.progress == [] and plain.by_balancer


def test_broker_log_bytes_sums_the_replicas_a_broker_answers_for(admin, monkeypatch):
    answers = {
        "h:1": broker_pb2.DescribeLogDirsResponse(broker_id=1, replicas=[
            broker_pb2.ReplicaLogInfo(topic="a", partition=0, size_bytes=100, error=OK),
            broker_pb2.ReplicaLogInfo(topic="a", partition=1, size_bytes=50, error=OK),
            broker_pb2.ReplicaLogInfo(topic="b", partition=0, size_bytes=999,
                                      error=common_pb2.ErrorDetail(code=E.KAFKA_STORAGE_ERROR)),
        ]),
        "h:2": "h:2: connection refused",
    }
    monkeypatch.setattr(admin, "_log_dirs", lambda address, partitions: answers[address])
    assert admin.broker_log_bytes({1: "h:1", 2: "h:2"}) == {1: 150, 2: None}
