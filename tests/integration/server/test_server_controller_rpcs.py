"""The Controller and Broker.Metadata RPCs of real nodes, in-process (3 combined nodes on one loop).

Goal: every admin RPC works from ANY node (KIP-590 forwarding), errors arrive as gRPC statuses with
a freshet ErrorDetail naming the problem, and a request retried with the same request id is
applied once. Method: one module-scoped 3-node cluster (real gRPC, Raft and HTTP on loopback);
tests use fresh topic names so they do not depend on each other.
"""

from __future__ import annotations

import grpc
import pytest
from freshet.metadata import commands
from freshet.server import status
from freshet.storage.record_batch import Record, encode_batch
from freshet.v1 import broker_pb2, common_pb2, controller_pb2, metadata_pb2

from tests.support.inprocess_nodes import InProcessCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
E = common_pb2.ErrorCode


def non_controller(cluster: InProcessCluster) -> int:
    active = cluster.active_controller().node_id
    return next(node_id for node_id in cluster.nodes if node_id != active)


def error_of(call) -> tuple[grpc.StatusCode, common_pb2.ErrorDetail]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    detail = status.detail_from_metadata(raised.value.trailing_metadata())
    assert detail is not None, f"no ErrorDetail on {raised.value.code()}: {raised.value.details()}"
    return raised.value.code(), detail


def test_create_topic_through_a_non_controller_node_is_forwarded_and_readable_there(cluster):
    """Goal: a client may use any node. Method: create through a node that is not the active
    controller; the answer has the topic id, and that same node's Metadata already shows the
    topic (the forwarder waits for its own image to reach the write)."""
    node_id = non_controller(cluster)
    response = cluster.create_topic(node_id, "forwarded", 6, 3)
    [result] = response.results
    assert result.error.code == E.NONE, result.error.message
    assert len(result.topic_id) == 16 and result.num_partitions == 6 and result.replication_factor == 3
    metadata = cluster.broker(node_id).Metadata(broker_pb2.MetadataRequest(topics=["forwarded"]), timeout=5)
    [topic] = metadata.topics
    assert topic.topic_id == result.topic_id
    leaders = [p.leader_id for p in topic.partitions]
    assert sorted(leaders.count(b) for b in (1, 2, 3)) == [2, 2, 2], leaders
    assert all(sorted(p.isr) == [1, 2, 3] for p in topic.partitions)


def test_invalid_replication_factor_has_kafkas_message_as_a_per_topic_error(cluster):
    response = cluster.create_topic(non_controller(cluster), "too-wide", 1, 4)
    [result] = response.results
    assert result.error.code == E.INVALID_REPLICATION_FACTOR
    assert result.error.message == "replication factor: 4 larger than available brokers: 3"
    assert not result.topic_id


def test_bad_topic_names_and_counts_are_refused_naming_the_problem(cluster):
    request = controller_pb2.CreateTopicsRequest(
        request_id="bad-names",
        topics=[
            controller_pb2.CreatableTopic(name="has space", num_partitions=1, replication_factor=1),
            controller_pb2.CreatableTopic(name="..", num_partitions=1, replication_factor=1),
            controller_pb2.CreatableTopic(name="zero", num_partitions=0, replication_factor=1),
            controller_pb2.CreatableTopic(name="badconfig", num_partitions=1, replication_factor=1,
                                          configs=[metadata_pb2.ConfigEntry(key="retention.ms", value="forever")]),
        ],
    )
    results = cluster.admin(1).CreateTopics(request, timeout=10).results
    assert [r.error.code for r in results] == [E.INVALID_TOPIC, E.INVALID_TOPIC, E.INVALID_PARTITIONS, E.INVALID_CONFIG]
    assert "retention.ms" in results[3].error.message
    metadata = cluster.broker(1).Metadata(broker_pb2.MetadataRequest(), timeout=5)
    assert not {"has space", "..", "zero", "badconfig"} & {t.name for t in metadata.topics}


def test_a_retried_request_id_is_applied_once_and_answers_the_first_result(cluster):
    """Goal: exactly once for retries. Method: the same CreateTopics twice with one request id,
    through two different nodes: the second answers success with the first topic id instead of
    TOPIC_ALREADY_EXISTS; a new request id gets TOPIC_ALREADY_EXISTS."""
    first = cluster.create_topic(1, "once", 2, 2, request_id="create-once")
    again = cluster.create_topic(2, "once", 2, 2, request_id="create-once")
    assert first.results[0].error.code == again.results[0].error.code == E.NONE
    assert first.results[0].topic_id == again.results[0].topic_id
    other = cluster.create_topic(3, "once", 2, 2, request_id="create-once-again")
    assert other.results[0].error.code == E.TOPIC_ALREADY_EXISTS


def test_validate_only_creates_nothing(cluster):
    request = controller_pb2.CreateTopicsRequest(
        request_id="dry-run", validate_only=True,
        topics=[controller_pb2.CreatableTopic(name="dry", num_partitions=4, replication_factor=2)],
    )
    [result] = cluster.admin(2).CreateTopics(request, timeout=10).results
    assert result.error.code == E.NONE and not result.topic_id and len(result.assignments) == 4
    metadata = cluster.broker(2).Metadata(broker_pb2.MetadataRequest(topics=["dry"]), timeout=5)
    assert metadata.topics[0].error.code == E.UNKNOWN_TOPIC


def test_delete_and_create_partitions(cluster):
    cluster.create_topic(1, "grows", 1, 2)
    response = cluster.admin(2).CreatePartitions(
        controller_pb2.CreatePartitionsRequest(topics=[controller_pb2.PartitionsIncrease(topic="grows", count=3)]), timeout=10
    )
    assert response.results[0].error.code == E.NONE and len(response.results[0].assignments) == 2
    shrink = cluster.admin(2).CreatePartitions(
        controller_pb2.CreatePartitionsRequest(topics=[controller_pb2.PartitionsIncrease(topic="grows", count=2)]), timeout=10
    )
    assert shrink.results[0].error.code == E.INVALID_PARTITIONS
    deleted = cluster.admin(3).DeleteTopics(controller_pb2.DeleteTopicsRequest(names=["grows", "never-was"]), timeout=10)
    assert [r.error.code for r in deleted.results] == [E.NONE, E.UNKNOWN_TOPIC]
    metadata = cluster.broker(3).Metadata(broker_pb2.MetadataRequest(topics=["grows"]), timeout=5)
    assert metadata.topics[0].error.code == E.UNKNOWN_TOPIC


def test_configs_are_validated_altered_and_described_with_their_source(cluster):
    topic_resource = metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name="configured")
    cluster.create_topic(1, "configured", 1, 1)
    bad = cluster.admin(2).IncrementalAlterConfigs(
        controller_pb2.IncrementalAlterConfigsRequest(
            resources=[controller_pb2.AlterConfigsResource(
                resource=topic_resource, configs=[controller_pb2.AlterableConfig(key="segment.bytes", value="-5")]
            )]
        ),
        timeout=10,
    )
    assert bad.results[0].error.code == E.INVALID_CONFIG and "segment.bytes" in bad.results[0].error.message
    good = cluster.admin(2).IncrementalAlterConfigs(
        controller_pb2.IncrementalAlterConfigsRequest(
            resources=[controller_pb2.AlterConfigsResource(
                resource=topic_resource, configs=[controller_pb2.AlterableConfig(key="retention.ms", value="60000")]
            )]
        ),
        timeout=10,
    )
    assert good.results[0].error.code == E.NONE
    described = cluster.admin(2).DescribeConfigs(
        controller_pb2.DescribeConfigsRequest(resources=[topic_resource], keys=["retention.ms", "cleanup.policy"]), timeout=5
    )
    values = {c.key: (c.value, c.source) for c in described.results[0].configs}
    assert values == {
        "retention.ms": ("60000", controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC),
        "cleanup.policy": ("delete", controller_pb2.CONFIG_SOURCE_DEFAULT),
    }


def test_replace_all_deletes_every_override_not_given_as_the_controller_sees_them(cluster):
    """Kafka's legacy AlterConfigs (whole set): the keys to delete are decided by the active
    controller from its own image, so an override set a moment ago through another node, which the
    forwarding broker may not have seen yet, is deleted too."""
    topic_resource = metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name="replaced")
    cluster.create_topic(1, "replaced", 1, 1)
    overrides = [controller_pb2.AlterableConfig(key="retention.ms", value="90000"),
                 controller_pb2.AlterableConfig(key="cleanup.policy", value="compact")]
    first = cluster.admin(1).IncrementalAlterConfigs(
        controller_pb2.IncrementalAlterConfigsRequest(
            resources=[controller_pb2.AlterConfigsResource(resource=topic_resource, configs=overrides)]
        ),
        timeout=10,
    )
    assert first.results[0].error.code == E.NONE
    replaced = cluster.admin(non_controller(cluster)).IncrementalAlterConfigs(
        controller_pb2.IncrementalAlterConfigsRequest(
            resources=[controller_pb2.AlterConfigsResource(
                resource=topic_resource, replace_all=True,
                configs=[controller_pb2.AlterableConfig(key="segment.ms", value="7200000")],
            )]
        ),
        timeout=10,
    )
    assert replaced.results[0].error.code == E.NONE
    topic = cluster.active_controller().quorum.image.topic("replaced")
    assert dict(topic.configs) == {"segment.ms": "7200000"}


def test_preferred_leader_election_and_a_reassignment_that_moves_data_to_a_new_replica(cluster):
    """Goal: elections on request, and a reassignment that adds a replica completes once the new
    replica caught up through replication and joined the ISR (the leader's AlterPartition); its
    log then holds the partition's records. (Cancelling an ongoing reassignment is covered by the
    state machine's tests: here the new replica catches up too fast to catch one in progress.)"""
    created = cluster.create_topic(1, "elect", 2, 2)
    response = cluster.admin(3).ElectLeaders(
        controller_pb2.ElectLeadersRequest(partitions=[common_pb2.TopicPartition(topic="elect", partition=0)]), timeout=10
    )
    assert response.results[0].error.code == E.ELECTION_NOT_NEEDED
    replicas = list(created.results[0].assignments[1].replicas)
    [missing] = {1, 2, 3} - set(replicas)
    leader = wait_until(
        lambda: next((n for n, node in cluster.nodes.items()
                      if node.data_plane.partitions.get(("elect", 1)) is not None and node.data_plane.partitions[("elect", 1)].is_leader), None),
        10, "a leader for elect-1",
    )
    batch = bytes(encode_batch([Record(0, None, b"moved", ())] * 3))
    produced = cluster.broker(leader).Produce(
        broker_pb2.ProduceRequest(acks=-1, timeout_ms=10000, partitions=[broker_pb2.PartitionRecords(topic="elect", partition=1, records=batch)]),
        timeout=20,
    ).results[0]
    assert produced.error.code == E.NONE, produced
    target = [replicas[0], missing]
    reassign = cluster.admin(3).AlterPartitionReassignments(
        controller_pb2.AlterPartitionReassignmentsRequest(
            reassignments=[controller_pb2.PartitionReassignment(
                partition=common_pb2.TopicPartition(topic="elect", partition=1), target_replicas=target
            )]
        ),
        timeout=10,
    )
    assert reassign.results[0].error.code == E.NONE

    def done():
        [topic] = cluster.broker(2).Metadata(broker_pb2.MetadataRequest(topics=["elect"]), timeout=5).topics
        partition = topic.partitions[1]
        return partition if list(partition.replicas) == target and sorted(partition.isr) == sorted(target) else None

    wait_until(done, 20, "the reassignment to complete")
    listed = cluster.admin(3).ListPartitionReassignments(controller_pb2.ListPartitionReassignmentsRequest(), timeout=5)
    assert not [r for r in listed.reassignments if r.partition.topic == "elect"]
    moved = cluster.nodes[missing].data_plane.partitions[("elect", 1)]
    assert moved.log.log_end_offset == 3 and moved.high_watermark == 3


def test_reassignment_that_only_removes_a_replica_completes_by_itself(cluster):
    """Goal: reassignment completes without data-plane help when nothing must catch up. Method:
    shrink [a,b,c] to two replicas; every target is already in the ISR, so the controller
    finishes it (final replica set, leader moved if it was removed)."""
    response = cluster.create_topic(1, "shrink", 1, 3)
    replicas = list(response.results[0].assignments[0].replicas)
    target = replicas[1:]
    cluster.admin(2).AlterPartitionReassignments(
        controller_pb2.AlterPartitionReassignmentsRequest(
            reassignments=[controller_pb2.PartitionReassignment(
                partition=common_pb2.TopicPartition(topic="shrink", partition=0), target_replicas=target
            )]
        ),
        timeout=10,
    )

    def done():
        [topic] = cluster.broker(2).Metadata(broker_pb2.MetadataRequest(topics=["shrink"]), timeout=5).topics
        partition = topic.partitions[0]
        return partition if list(partition.replicas) == target else None

    partition = wait_until(done, 10, "the reassignment to complete")
    assert partition.leader_id in target and sorted(partition.isr) == sorted(target)


def test_alter_partition_and_producer_ids_from_brokers(cluster):
    response = cluster.create_topic(1, "isr", 1, 3)
    topic_id = response.results[0].topic_id
    [topic] = cluster.broker(1).Metadata(broker_pb2.MetadataRequest(topics=["isr"]), timeout=5).topics
    partition = topic.partitions[0]
    leader = partition.leader_id
    describe = cluster.admin(1).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
    epoch = next(b.broker_epoch for b in describe.brokers if b.endpoint.node_id == leader)
    follower = next(r for r in partition.replicas if r != leader)
    new_isr = [r for r in partition.isr if r != follower]
    changes = [controller_pb2.PartitionIsrChange(
        topic_id=topic_id, partition=0, leader_epoch=partition.leader_epoch, partition_epoch=0, new_isr=new_isr
    )]
    stale = cluster.admin(2).AlterPartition(
        controller_pb2.AlterPartitionRequest(broker_id=leader, broker_epoch=epoch, changes=[
            controller_pb2.PartitionIsrChange(topic_id=topic_id, partition=0, leader_epoch=partition.leader_epoch,
                                              partition_epoch=7, new_isr=new_isr)
        ]),
        timeout=10,
    )
    assert stale.results[0].error.code == E.INVALID_UPDATE_VERSION
    applied = cluster.admin(2).AlterPartition(
        controller_pb2.AlterPartitionRequest(broker_id=leader, broker_epoch=epoch, changes=changes), timeout=10
    )
    assert applied.results[0].error.code == E.NONE
    assert sorted(applied.results[0].partition_state.isr) == sorted(new_isr)
    assert applied.results[0].partition_state.partition_epoch == 1
    first = cluster.admin(3).AllocateProducerIds(
        controller_pb2.AllocateProducerIdsRequest(broker_id=leader, broker_epoch=epoch), timeout=10
    )
    second = cluster.admin(3).AllocateProducerIds(
        controller_pb2.AllocateProducerIdsRequest(broker_id=leader, broker_epoch=epoch), timeout=10
    )
    assert second.first_producer_id == first.first_producer_id + first.size
    code, detail = error_of(lambda: cluster.admin(3).AllocateProducerIds(
        controller_pb2.AllocateProducerIdsRequest(broker_id=leader, broker_epoch=epoch + 1000), timeout=10
    ))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and detail.code == E.STALE_BROKER_EPOCH


def test_alter_partition_commits_every_valid_change_of_a_request_in_one_command(cluster):
    """A leader's AlterPartition for many partitions is one metadata command (an atomic batch
    under "<request id>/isr"), not one Raft commit per partition; a refused change stays out of
    it with its own error, and a retry of the request applies nothing twice."""
    response = cluster.create_topic(1, "isr-batch", 6, 3)
    topic_id = response.results[0].topic_id
    wait_until(lambda: all(
        len(p.isr) == 3 for t in cluster.broker(1).Metadata(broker_pb2.MetadataRequest(topics=["isr-batch"]), timeout=5).topics
        for p in t.partitions), 30, "every ISR full")
    [topic] = cluster.broker(1).Metadata(broker_pb2.MetadataRequest(topics=["isr-batch"]), timeout=5).topics
    leader = max({p.leader_id for p in topic.partitions}, key=lambda n: sum(p.leader_id == n for p in topic.partitions))
    led = [p for p in topic.partitions if p.leader_id == leader]
    assert len(led) >= 2, [(p.partition, p.leader_id) for p in topic.partitions]
    describe = cluster.admin(1).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
    epoch = next(b.broker_epoch for b in describe.brokers if b.endpoint.node_id == leader)
    image = cluster.active_controller().quorum.image
    changes = []
    for p in led:
        state = image.topic("isr-batch").partitions[p.partition]
        follower = next(r for r in state.isr if r != leader)
        changes.append(controller_pb2.PartitionIsrChange(
            topic_id=topic_id, partition=p.partition, leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch, new_isr=[r for r in state.isr if r != follower]))
    stale = controller_pb2.PartitionIsrChange(topic_id=topic_id, partition=led[0].partition, leader_epoch=changes[0].leader_epoch,
                                              partition_epoch=changes[0].partition_epoch + 7, new_isr=changes[0].new_isr)
    request = controller_pb2.AlterPartitionRequest(request_id="isr-batch-1", broker_id=leader, broker_epoch=epoch,
                                                   changes=[*changes, stale])
    applied = cluster.admin(2).AlterPartition(request, timeout=10)
    assert [r.error.code for r in applied.results] == [E.NONE] * len(changes) + [E.INVALID_UPDATE_VERSION]
    for change, result in zip(changes, applied.results[: len(changes)], strict=True):
        assert result.partition_state.partition_epoch > change.partition_epoch
        assert result.partition_state.leader_epoch == change.leader_epoch
    controller = cluster.active_controller()
    batch = controller.quorum.image.request_result("isr-batch-1/isr-0")
    assert batch is not None and batch.error_code == E.NONE, batch
    assert len(batch.batch.results) == len(changes)              # one command held every valid change
    assert batch.offset == applied.metadata_offset
    assert all(controller.quorum.image.request_result(f"isr-batch-1/{item}") is None for item in range(len(changes)))
    again = cluster.admin(3).AlterPartition(request, timeout=10)      # the same request id: nothing applied twice
    assert [r.error.code for r in again.results] == [r.error.code for r in applied.results]
    assert controller.quorum.image.request_result("isr-batch-1/isr-0").offset == batch.offset
    assert all(controller.quorum.image.request_result(f"isr-batch-1/{item}") is None for item in range(len(changes)))


def test_an_alter_partition_batch_the_state_machine_rejects_is_proposed_change_by_change(cluster):
    """Two changes of one partition in a request both pass validation against the same image, but
    the second is stale once the first applied: the batch is rejected as a whole, and the changes
    then go one by one (the first applied, the second refused with INVALID_UPDATE_VERSION)."""
    response = cluster.create_topic(1, "isr-twice", 1, 3)
    topic_id = response.results[0].topic_id
    wait_until(lambda: len(cluster.active_controller().quorum.image.topic("isr-twice").partitions[0].isr) == 3, 30, "ISR full")
    state = cluster.active_controller().quorum.image.topic("isr-twice").partitions[0]
    describe = cluster.admin(1).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
    epoch = next(b.broker_epoch for b in describe.brokers if b.endpoint.node_id == state.leader)
    followers = [r for r in state.isr if r != state.leader]
    changes = [controller_pb2.PartitionIsrChange(
        topic_id=topic_id, partition=0, leader_epoch=state.leader_epoch, partition_epoch=state.partition_epoch,
        new_isr=[r for r in state.isr if r != follower]) for follower in followers]
    answer = cluster.admin(2).AlterPartition(controller_pb2.AlterPartitionRequest(
        request_id="isr-twice-1", broker_id=state.leader, broker_epoch=epoch, changes=changes), timeout=10)
    assert [r.error.code for r in answer.results] == [E.NONE, E.INVALID_UPDATE_VERSION]
    assert answer.results[0].partition_state.partition_epoch == state.partition_epoch + 1
    image = cluster.active_controller().quorum.image
    assert image.request_result("isr-twice-1/isr-0").error_code == E.INVALID_UPDATE_VERSION
    assert image.request_result("isr-twice-1/0").error_code == E.NONE


def test_describe_cluster_and_quorum_from_any_node(cluster):
    for node_id in cluster.nodes:
        described = cluster.admin(node_id).DescribeCluster(controller_pb2.DescribeClusterRequest(), timeout=5)
        assert described.cluster_id and described.controller_id == cluster.active_controller().node_id
        assert [(b.endpoint.node_id, b.state) for b in described.brokers] == [
            (1, controller_pb2.BROKER_ACTIVE), (2, controller_pb2.BROKER_ACTIVE), (3, controller_pb2.BROKER_ACTIVE)
        ]
        assert [c.node_id for c in described.controllers] == [1, 2, 3]
        quorum = cluster.admin(node_id).DescribeQuorum(controller_pb2.DescribeQuorumRequest(), timeout=10)
        assert quorum.leader_id == cluster.active_controller().node_id
        assert [v.node_id for v in quorum.voters] == [1, 2, 3]
        assert all(v.lag >= 0 for v in quorum.voters)


def test_non_controllers_turn_broker_sessions_away_with_the_controller_hint(cluster):
    node_id = non_controller(cluster)
    stub = cluster.admin(node_id)
    request = controller_pb2.BrokerHeartbeatRequest(
        registration=controller_pb2.BrokerRegistrationRequest(node_id=99, incarnation_id=b"x" * 16, host="h", port=1)
    )
    code, detail = error_of(lambda: list(stub.BrokerHeartbeat(iter([request]), timeout=5)))
    assert detail.code == E.NOT_CONTROLLER and code == grpc.StatusCode.UNAVAILABLE
    assert detail.controller_id == cluster.active_controller().node_id
    assert detail.controller.port == cluster.ports[detail.controller_id]


def test_watch_metadata_sends_a_snapshot_then_deltas_in_offset_order(cluster):
    from freshet.metadata import snapshot, state_machine

    stub = cluster.admin(non_controller(cluster))
    call = stub.WatchMetadata(controller_pb2.WatchMetadataRequest(from_offset=-1, watcher="test"), timeout=20)
    first = next(call)
    assert first.HasField("snapshot")
    image = snapshot.decode_snapshot(first.snapshot.snapshot)
    assert image.offset == first.snapshot.offset
    cluster.create_topic(1, "watched", 1, 1)
    while image.topic("watched") is None:
        message = next(call)
        assert message.HasField("deltas")
        assert message.deltas.previous_offset == image.offset
        for delta in message.deltas.deltas:
            image, _ = state_machine.apply_bytes(image, delta.command, delta.offset)
    call.cancel()
    assert image.topic("watched").topic_id == cluster.nodes[1].publisher.image.topic("watched").topic_id


def test_metrics_and_status_expose_the_controller_and_hosted_replicas(cluster):
    active = cluster.active_controller().node_id
    cluster.create_topic(1, "observed", 3, 3)
    for node_id in cluster.nodes:
        code, text = cluster.http(node_id, "/metrics")
        assert code == 200
        assert f"freshet_active_controller_count {1.0 if node_id == active else 0.0}" in text
        assert "freshet_fenced_broker_count 0.0" in text and "freshet_active_broker_count 3.0" in text
        assert 'freshet_leader_elections_total{type="unclean"}' in text
        replicas = wait_until(
            lambda node_id=node_id: [r for r in cluster.status(node_id)["replicas"] if r["topic"] == "observed"],
            10, "replicas of 'observed'",
        )
        assert len(replicas) == 3
        assert {r["role"] for r in replicas} <= {"leader", "follower"}
        assert cluster.http(node_id, "/readyz") == (200, "ready\n")
        assert cluster.http(node_id, "/healthz") == (200, "ok\n")
        status = cluster.status(node_id)
        assert status["controller"]["is_active"] == (node_id == active)
        assert status["broker"]["heartbeating_to"] == active
    sessions = cluster.status(active)["controller"]["sessions"]
    assert [(s["broker"], s["connected"]) for s in sessions] == [(1, True), (2, True), (3, True)]
    assert all(0 < s["expires_in_ms"] <= 6000 for s in sessions)


def test_unknown_topics_are_not_auto_created_by_default(cluster):
    metadata = cluster.broker(2).Metadata(broker_pb2.MetadataRequest(topics=["typo-topic"]), timeout=5)
    assert metadata.topics[0].error.code == E.UNKNOWN_TOPIC
    assert cluster.nodes[1].publisher.image.topic("typo-topic") is None
    assert commands.new_request_id() != commands.new_request_id()


def test_auto_creation_when_enabled_as_a_dynamic_cluster_config(cluster):
    """Goal: Kafka's auto.create.topics.enable works when turned on (default off). Method: set it
    on the cluster with IncrementalAlterConfigs, ask a broker's Metadata for an unknown topic: it
    exists afterwards with the cluster's num.partitions; internal names are never auto-created;
    turning it off again restores the default."""
    cluster_resource = metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_CLUSTER)

    def set_auto_create(value: str | None):
        change = controller_pb2.AlterableConfig(key="auto.create.topics.enable", value=value or "")
        if value is None:
            change.operation = controller_pb2.CONFIG_DELETE
        extra = [] if value is None else [controller_pb2.AlterableConfig(key="num.partitions", value="3")]
        response = cluster.admin(1).IncrementalAlterConfigs(
            controller_pb2.IncrementalAlterConfigsRequest(
                resources=[controller_pb2.AlterConfigsResource(resource=cluster_resource, configs=[change, *extra])]
            ),
            timeout=10,
        )
        assert response.results[0].error.code == E.NONE, response

    set_auto_create("true")
    try:
        # Dynamic configs reach every node through metadata; node 3 may be a few ms behind node 1.
        wait_until(
            lambda: cluster.nodes[3].publisher.image.cluster_configs.get("auto.create.topics.enable") == "true",
            10, "the config on node 3",
        )
        metadata = cluster.broker(3).Metadata(broker_pb2.MetadataRequest(topics=["made-on-demand", "__internal"]), timeout=15)
        made, internal = metadata.topics
        assert made.error.code == E.NONE and len(made.partitions) == 3
        assert internal.error.code == E.UNKNOWN_TOPIC
    finally:
        set_auto_create(None)
        cluster.admin(1).IncrementalAlterConfigs(
            controller_pb2.IncrementalAlterConfigsRequest(
                resources=[controller_pb2.AlterConfigsResource(
                    resource=cluster_resource,
                    configs=[controller_pb2.AlterableConfig(key="num.partitions", operation=controller_pb2.CONFIG_DELETE)],
                )]
            ),
            timeout=10,
        )
    wait_until(lambda: not cluster.nodes[3].publisher.image.cluster_configs, 10, "the default again on node 3")
    metadata = cluster.broker(3).Metadata(broker_pb2.MetadataRequest(topics=["not-made"]), timeout=5)
    assert metadata.topics[0].error.code == E.UNKNOWN_TOPIC
