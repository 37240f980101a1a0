"""Admin: topics and their configs.

Owns `TopicAdmin`, the Admin methods for topics (`create_topic`, `delete_topic`,
`create_partitions`, `list_topics`, `describe_topics` with each partition's offsets from its
leader) and configs of topics, brokers and the cluster (`describe_configs`, `alter_configs`).
Changes go to the controller (`freshet.v1.Controller`, any node forwards) with a request id;
reads of topics use `Broker.Metadata` and `Broker.ListOffsets`.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: thread-safe (see AdminCalls).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from freshet.client._admin_calls import AdminCalls, single_result
from freshet.client._transport import (
    error_from_detail,
    node_from_endpoint,
    raise_for_detail,
)
from freshet.client.admin_results import (
    ConfigEntry,
    ConfigResource,
    PartitionDescription,
    TopicCreated,
    TopicDescription,
    TopicListing,
)
from freshet.client.errors import (
    InvalidRequestError,
    UnknownTopicError,
)
from freshet.client.structs import Node, TopicPartition
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

_CONFIG_SOURCES = {
    controller_pb2.CONFIG_SOURCE_DEFAULT: "default",
    controller_pb2.CONFIG_SOURCE_STATIC_BROKER: "static_broker",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_CLUSTER: "dynamic_cluster",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_BROKER: "dynamic_broker",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC: "dynamic_topic",
    controller_pb2.CONFIG_SOURCE_DYNAMIC_GROUP: "dynamic_group",
}


class TopicAdmin(AdminCalls):
    """Topics and configs (see the module docstring). Thread-safe."""

    # ---------------------------------------------------------------------------------------------
    # Topics.

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        *,
        configs: Mapping[str, str] | None = None,
        assignments: Sequence[Sequence[int]] | None = None,
        validate_only: bool = False,
    ) -> TopicCreated:
        """Create one topic.

        Args:
            name: the topic name (Kafka's rules: [a-zA-Z0-9._-], at most 249 characters).
            partitions: number of partitions; None for the cluster's num.partitions.
            replication_factor: replicas per partition; None for default.replication.factor.
            configs: topic configs, e.g. {"retention.ms": "86400000"}.
            assignments: explicit replicas per partition (preferred leader first).
            validate_only: check everything, create nothing.

        Raises:
            TopicAlreadyExistsError, InvalidReplicationFactorError, InvalidPartitionsError,
            InvalidTopicError, InvalidConfigError, InvalidReplicaAssignmentError: refused.
            BrokerUnavailableError: no node reachable.
        """
        topic = controller_pb2.CreatableTopic(name=name)
        if partitions is not None:
            topic.num_partitions = partitions
        if replication_factor is not None:
            topic.replication_factor = replication_factor
        for replicas in assignments or ():
            topic.assignments.add(replicas=list(replicas))
        for key, value in (configs or {}).items():
            topic.configs.add(key=key, value=str(value))
        request = controller_pb2.CreateTopicsRequest(
            request_id=self._request_id(), topics=[topic], validate_only=validate_only
        )
        response = self._call("controller", "CreateTopics", request)
        result = single_result(response.results, f"CreateTopics {name}")
        raise_for_detail(result.error)
        return TopicCreated(
            name=result.name,
            topic_id=result.topic_id.hex(),
            partitions=result.num_partitions,
            replication_factor=result.replication_factor,
            assignments=[list(a.replicas) for a in result.assignments],
        )

    def delete_topic(self, name: str) -> str:
        """Delete a topic; the hex id of the deleted topic.

        Raises:
            UnknownTopicError: no such topic.
        """
        request = controller_pb2.DeleteTopicsRequest(request_id=self._request_id(), names=[name])
        response = self._call("controller", "DeleteTopics", request)
        result = single_result(response.results, f"DeleteTopics {name}")
        raise_for_detail(result.error)
        return result.topic_id.hex()

    def create_partitions(
        self,
        topic: str,
        total: int,
        *,
        assignments: Sequence[Sequence[int]] | None = None,
        validate_only: bool = False,
    ) -> list[list[int]]:
        """Increase a topic's partition count to `total`; the replicas of each new partition.

        Raises:
            InvalidPartitionsError: `total` is not larger than the current count.
            UnknownTopicError: no such topic.
        """
        increase = controller_pb2.PartitionsIncrease(topic=topic, count=total)
        for replicas in assignments or ():
            increase.assignments.add(replicas=list(replicas))
        request = controller_pb2.CreatePartitionsRequest(
            request_id=self._request_id(), topics=[increase], validate_only=validate_only
        )
        response = self._call("controller", "CreatePartitions", request)
        result = single_result(response.results, f"CreatePartitions {topic}")
        raise_for_detail(result.error)
        return [list(a.replicas) for a in result.assignments]

    def _metadata(self, topics: Sequence[str] | None, include_internal: bool) -> broker_pb2.MetadataResponse:
        request = broker_pb2.MetadataRequest(topics=list(topics or ()), include_internal=include_internal)
        return self._call("broker", "Metadata", request)

    def list_topics(self, *, include_internal: bool = False) -> list[TopicListing]:
        """Every topic, sorted by name (internal ones such as __consumer_offsets on request)."""
        response = self._metadata(None, include_internal)
        listings = []
        for topic in response.topics:
            if topic.error.code != common_pb2.NONE:
                continue
            replication = max((len(p.replicas) for p in topic.partitions), default=0)
            listings.append(
                TopicListing(
                    topic.name, topic.topic_id.hex(), len(topic.partitions), replication, topic.is_internal
                )
            )
        return sorted(listings, key=lambda t: t.name)

    def describe_topics(
        self, names: Iterable[str] | None = None, *, include_internal: bool = False, with_offsets: bool = True
    ) -> list[TopicDescription]:
        """Topics with, per partition, leader, replicas, ISR and (from the leaders) offsets.

        Args:
            names: the topics; None for every topic.
            include_internal: with names None, also internal topics.
            with_offsets: ask each partition's leader for its log start offset and high watermark
                (ListOffsets); a leader that cannot answer leaves that partition's offsets None.

        Raises:
            UnknownTopicError: a named topic does not exist.
        """
        wanted = sorted(set(names)) if names is not None else None
        response = self._metadata(wanted, include_internal or bool(wanted))
        brokers = {b.node_id: node_from_endpoint(b) for b in response.brokers}
        found = {}
        for topic in response.topics:
            error = error_from_detail(topic.error, f"topic {topic.name}")
            if error is not None:
                if wanted is not None:
                    if isinstance(error, UnknownTopicError):
                        raise UnknownTopicError(f"topic {topic.name!r} does not exist")
                    raise error
                continue
            found[topic.name] = topic
        if wanted is not None:
            missing = [n for n in wanted if n not in found]
            if missing:
                raise UnknownTopicError(f"topic {missing[0]!r} does not exist")
        offsets: dict[TopicPartition, dict[int | str, int] | str] = {}
        if with_offsets:
            offsets = self._partition_offsets(found.values(), brokers)
        configs = self._topic_overrides(list(found)) if found else {}
        descriptions = []
        for name in sorted(found):
            topic = found[name]
            partitions = []
            for p in sorted(topic.partitions, key=lambda p: p.partition):
                tp = TopicPartition(name, p.partition)
                known = offsets.get(tp)
                info = known if isinstance(known, broker_pb2.ReplicaLogInfo) else None
                partitions.append(
                    PartitionDescription(
                        partition=p.partition,
                        leader=p.leader_id if p.leader_id >= 0 else None,
                        leader_epoch=p.leader_epoch,
                        replicas=list(p.replicas),
                        isr=list(p.isr),
                        offline_replicas=list(p.offline_replicas),
                        log_start_offset=None if info is None else info.log_start_offset,
                        high_watermark=None if info is None else info.high_watermark,
                        log_end_offset=None if info is None else info.log_end_offset,
                        size_bytes=None if info is None else info.size_bytes,
                        offsets_error=known if isinstance(known, str) else None,
                    )
                )
            descriptions.append(
                TopicDescription(
                    name, topic.topic_id.hex(), topic.is_internal, partitions, configs.get(name, {})
                )
            )
        return descriptions

    def _partition_offsets(
        self, topics, brokers: dict[int, Node]
    ) -> dict[TopicPartition, broker_pb2.ReplicaLogInfo | str]:
        """{partition: its leader's replica info (log start, log end, high watermark, size)} or
        the error text, from one DescribeLogDirs per leader."""
        by_leader: dict[int, list[TopicPartition]] = {}
        out: dict[TopicPartition, broker_pb2.ReplicaLogInfo | str] = {}
        for topic in topics:
            for p in topic.partitions:
                tp = TopicPartition(topic.name, p.partition)
                if p.leader_id < 0:
                    out[tp] = "no leader"
                elif p.leader_id not in brokers:
                    out[tp] = f"leader {p.leader_id} is not an available broker"
                else:
                    by_leader.setdefault(p.leader_id, []).append(tp)
        for leader_id, tps in sorted(by_leader.items()):
            for tp, info in self._describe_replicas(leader_id, brokers[leader_id].address, tps).items():
                if not isinstance(info, str) and not info.is_leader:
                    info = f"broker {leader_id} no longer leads {tp.topic}-{tp.partition}"
                out[tp] = info
        return out

    def _topic_overrides(self, names: list[str]) -> dict[str, dict[str, str]]:
        request = controller_pb2.DescribeConfigsRequest(
            resources=[ConfigResource.topic(n).to_proto() for n in names]
        )
        response = self._call("controller", "DescribeConfigs", request)
        out: dict[str, dict[str, str]] = {}
        for result in response.results:
            if result.error.code != common_pb2.NONE:
                continue
            out[result.resource.topic_name] = {
                c.key: c.value
                for c in result.configs
                if c.source == controller_pb2.CONFIG_SOURCE_DYNAMIC_TOPIC
            }
        return out

    # ---------------------------------------------------------------------------------------------
    # Configs.

    def describe_configs(self, resource: ConfigResource, keys: Sequence[str] = ()) -> list[ConfigEntry]:
        """Every config of `resource` (or only `keys`) with its value and source, sorted by key.

        Raises:
            UnknownTopicError: the topic does not exist.
            InvalidConfigError / InvalidRequestError: an unknown key or broker.
        """
        request = controller_pb2.DescribeConfigsRequest(resources=[resource.to_proto()], keys=list(keys))
        response = self._call("controller", "DescribeConfigs", request)
        result = single_result(response.results, f"DescribeConfigs {resource}")
        raise_for_detail(result.error)
        return [
            ConfigEntry(c.key, c.value, _CONFIG_SOURCES.get(c.source, str(c.source)), c.doc)
            for c in result.configs
        ]

    def alter_configs(
        self,
        resource: ConfigResource,
        *,
        set: Mapping[str, str] | None = None,  # noqa: A002 - Kafka's operation name
        delete: Iterable[str] = (),
        validate_only: bool = False,
    ) -> None:
        """Set and delete dynamic configs of one resource in one step (IncrementalAlterConfigs).

        A deleted key falls back to the next lower level (topic -> cluster -> default).

        Raises:
            InvalidConfigError: an unknown key, a bad value, or a value inconsistent with others.
            UnknownTopicError: the topic does not exist.
        """
        to_set = dict(set or {})
        to_delete = list(delete)
        both = sorted(k for k in to_delete if k in to_set)
        if both:
            raise InvalidRequestError(f"config {both[0]!r} is both set and deleted; give it once")
        if not to_set and not to_delete:
            raise InvalidRequestError("nothing to change: give configs to set or delete")
        entry = controller_pb2.AlterConfigsResource(resource=resource.to_proto())
        for key, value in to_set.items():
            entry.configs.add(key=key, value=str(value), operation=controller_pb2.CONFIG_SET)
        for key in to_delete:
            entry.configs.add(key=key, operation=controller_pb2.CONFIG_DELETE)
        request = controller_pb2.IncrementalAlterConfigsRequest(
            request_id=self._request_id(), resources=[entry], validate_only=validate_only
        )
        response = self._call("controller", "IncrementalAlterConfigs", request)
        result = single_result(response.results, f"IncrementalAlterConfigs {resource}")
        raise_for_detail(result.error)

