"""Building, encoding and decoding metadata commands (for proposers: the controller, tests, tools).

Owns the typed constructors of every MetadataCommand (one function per command, keyword arguments
named as in metadata.proto), the one encoding used in the Raft log (deterministic protobuf, never
pickle), and id generation for proposers. The state machine itself never generates ids: ids and
epochs are chosen here, by the proposer, before a command is proposed.

Imports only the standard library, freshet.metadata.errors and wire types.
Thread-safe: functions only; each call returns a new message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from freshet.metadata.errors import CommandFailedError
from freshet.metadata.security import (
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
)
from freshet.v1 import common_pb2, metadata_pb2

MetadataCommand = metadata_pb2.MetadataCommand
MetadataResult = metadata_pb2.MetadataResult

# One assignment: (replicas, isr, leader).
Assignment = tuple[Sequence[int], Sequence[int], int]


def new_request_id() -> str:
    """A fresh random request id (32 hex characters)."""
    return uuid.uuid4().hex


def new_topic_id() -> bytes:
    """A fresh random 16-byte topic id (never all zero)."""
    return uuid.uuid4().bytes


def new_incarnation_id() -> bytes:
    """A fresh random 16-byte broker incarnation id."""
    return uuid.uuid4().bytes


def encode(command: MetadataCommand) -> bytes:
    """The bytes written to the Raft log for `command`."""
    return command.SerializeToString(deterministic=True)


def decode(data: bytes) -> MetadataCommand:
    """Parse log bytes. Raises google.protobuf.message.DecodeError on garbage."""
    command = MetadataCommand()
    command.ParseFromString(data)
    return command


def kind(command: MetadataCommand) -> str | None:
    """The name of the command in the oneof ("create_topic", ...), or None when empty."""
    return command.WhichOneof("command")


def raise_for_error(result: MetadataResult, request_id: str) -> MetadataResult:
    """Return `result` when it succeeded; raise CommandFailedError carrying its code otherwise."""
    if result.error_code != common_pb2.NONE:
        raise CommandFailedError(result.error_code, result.error_message, request_id, result.offset)
    return result


def _command(request_id: str, controller_epoch: int) -> MetadataCommand:
    return MetadataCommand(request_id=request_id, controller_epoch=controller_epoch)


def _assignments(values: Iterable[Assignment]) -> list[metadata_pb2.PartitionAssignment]:
    return [
        metadata_pb2.PartitionAssignment(replicas=list(replicas), isr=list(isr), leader=leader)
        for replicas, isr, leader in values
    ]


def _config_entries(values: Mapping[str, str]) -> list[metadata_pb2.ConfigEntry]:
    return [metadata_pb2.ConfigEntry(key=key, value=values[key]) for key in sorted(values)]


def noop(request_id: str, controller_epoch: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.noop.SetInParent()
    return command


def init_cluster(request_id: str, controller_epoch: int, cluster_id: str) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.init_cluster.cluster_id = cluster_id
    return command


def claim_controller(request_id: str, node_id: int, term: int) -> MetadataCommand:
    """The controller at Raft term `term` claims; controller_epoch is the term itself."""
    command = _command(request_id, term)
    command.claim_controller.node_id = node_id
    command.claim_controller.term = term
    return command


def register_broker(
    request_id: str,
    controller_epoch: int,
    node_id: int,
    incarnation_id: bytes,
    host: str,
    port: int,
    rack: str = "",
    listeners: tuple[tuple[str, str, int], ...] = (),
) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.register_broker.CopyFrom(
        metadata_pb2.RegisterBroker(node_id=node_id, incarnation_id=incarnation_id, host=host, port=port, rack=rack)
    )
    for name, listener_host, listener_port in sorted(listeners):
        command.register_broker.listeners.add(name=name, host=listener_host, port=listener_port)
    return command


def fence_broker(request_id: str, controller_epoch: int, node_id: int, broker_epoch: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.fence_broker.node_id = node_id
    command.fence_broker.broker_epoch = broker_epoch
    return command


def unfence_broker(request_id: str, controller_epoch: int, node_id: int, broker_epoch: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.unfence_broker.node_id = node_id
    command.unfence_broker.broker_epoch = broker_epoch
    return command


def begin_controlled_shutdown(request_id: str, controller_epoch: int, node_id: int, broker_epoch: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.begin_controlled_shutdown.node_id = node_id
    command.begin_controlled_shutdown.broker_epoch = broker_epoch
    return command


def decommission_broker(request_id: str, controller_epoch: int, node_id: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.decommission_broker.node_id = node_id
    return command


def cancel_decommission_broker(request_id: str, controller_epoch: int, node_id: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.cancel_decommission_broker.node_id = node_id
    return command


def create_topic(
    request_id: str,
    controller_epoch: int,
    topic_id: bytes,
    name: str,
    assignments: Iterable[Assignment],
    configs: Mapping[str, str] | None = None,
) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.create_topic.CopyFrom(
        metadata_pb2.CreateTopic(
            topic_id=topic_id,
            name=name,
            partitions=_assignments(assignments),
            configs=_config_entries(configs or {}),
        )
    )
    return command


def delete_topic(request_id: str, controller_epoch: int, topic_id: bytes) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.delete_topic.topic_id = topic_id
    return command


def create_partitions(
    request_id: str, controller_epoch: int, topic_id: bytes, partition_count: int, new_partitions: Iterable[Assignment]
) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.create_partitions.CopyFrom(
        metadata_pb2.CreatePartitions(
            topic_id=topic_id, partition_count=partition_count, new_partitions=_assignments(new_partitions)
        )
    )
    return command


def change_partition(
    request_id: str,
    controller_epoch: int,
    topic_id: bytes,
    partition: int,
    expected_partition_epoch: int,
    leader: int | None = None,
    isr: Sequence[int] | None = None,
    replicas: Sequence[int] | None = None,
    is_unclean: bool = False,
) -> MetadataCommand:
    """A compare-and-set partition change; None leaves leader / ISR / replicas as they are."""
    command = _command(request_id, controller_epoch)
    body = command.change_partition
    body.topic_id = topic_id
    body.partition = partition
    body.expected_partition_epoch = expected_partition_epoch
    body.is_unclean = is_unclean
    if leader is not None:
        body.leader = leader
    if isr is not None:
        body.isr.SetInParent()
        body.isr.replicas.extend(isr)
    if replicas is not None:
        body.replicas.SetInParent()
        body.replicas.replicas.extend(replicas)
    return command


def reassign_partition(
    request_id: str,
    controller_epoch: int,
    topic_id: bytes,
    partition: int,
    target_replicas: Sequence[int],
    by_balancer: bool = False,
) -> MetadataCommand:
    """Start a reassignment to `target_replicas`, or cancel the current one when it is empty;
    `by_balancer` records that the controller's replica balancer started it."""
    command = _command(request_id, controller_epoch)
    body = command.reassign_partition
    body.topic_id = topic_id
    body.partition = partition
    body.target_replicas.extend(target_replicas)
    body.by_balancer = by_balancer
    return command


def alter_configs(
    request_id: str,
    controller_epoch: int,
    resource: metadata_pb2.ConfigResource,
    set_configs: Mapping[str, str] | None = None,
    delete_keys: Iterable[str] = (),
) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.alter_configs.CopyFrom(
        metadata_pb2.AlterConfigs(
            resource=resource, set_configs=_config_entries(set_configs or {}), delete_keys=sorted(delete_keys)
        )
    )
    return command


def cluster_resource() -> metadata_pb2.ConfigResource:
    return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_CLUSTER)


def broker_resource(broker_id: int) -> metadata_pb2.ConfigResource:
    return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_BROKER, broker_id=broker_id)


def topic_resource(topic_id: bytes = b"", topic_name: str = "") -> metadata_pb2.ConfigResource:
    return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_id=topic_id, topic_name=topic_name)


def group_resource(group_id: str) -> metadata_pb2.ConfigResource:
    return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_GROUP, group_id=group_id)


def allocate_producer_ids(request_id: str, controller_epoch: int, broker_id: int, broker_epoch: int) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.allocate_producer_ids.broker_id = broker_id
    command.allocate_producer_ids.broker_epoch = broker_epoch
    return command


def atomic_batch(request_id: str, controller_epoch: int, inner: Iterable[MetadataCommand]) -> MetadataCommand:
    """Several commands applied all-or-nothing under one request id and controller epoch.

    The inner commands are built with the builders above with request_id "" and controller_epoch 0
    (use `INNER` for both); they are copied into the batch.
    """
    command = _command(request_id, controller_epoch)
    batch = command.atomic_batch
    batch.SetInParent()
    for item in inner:
        assert item.request_id == "" and item.controller_epoch == 0, "inner commands carry no id or epoch"
        batch.commands.append(item)
    return command


# request_id and controller_epoch of a command inside an atomic batch: `fence_broker(*INNER, ...)`.
INNER: tuple[str, int] = ("", 0)


# ---------------------------------------------------------------------------------------------
# Users and ACLs
# ---------------------------------------------------------------------------------------------


def scram_credential_record(credential: ScramCredential) -> metadata_pb2.ScramCredentialRecord:
    """The wire form of a credential."""
    return metadata_pb2.ScramCredentialRecord(
        mechanism=int(credential.mechanism),
        salt=credential.salt,
        stored_key=credential.stored_key,
        server_key=credential.server_key,
        iterations=credential.iterations,
    )


def acl_binding_record(binding: AclBinding) -> metadata_pb2.AclBindingRecord:
    """The wire form of an ACL binding."""
    return metadata_pb2.AclBindingRecord(
        resource_type=int(binding.resource_type),
        resource_name=binding.resource_name,
        pattern_type=int(binding.pattern_type),
        principal=binding.principal,
        host=binding.host,
        operation=int(binding.operation),
        permission=int(binding.permission),
    )


def scram_credential_from_record(record: metadata_pb2.ScramCredentialRecord) -> ScramCredential:
    """The credential of a wire record. Raises ValueError for an unknown mechanism."""
    return ScramCredential(
        ScramMechanism(record.mechanism), bytes(record.salt), bytes(record.stored_key),
        bytes(record.server_key), record.iterations,
    )


def acl_binding_from_record(record: metadata_pb2.AclBindingRecord) -> AclBinding:
    """The binding of a wire record. Raises ValueError for an enum number Kafka does not define."""
    return AclBinding(
        ResourceType(record.resource_type), record.resource_name, PatternType(record.pattern_type),
        record.principal, record.host, Operation(record.operation), Permission(record.permission),
    )


def upsert_user_credential(request_id: str, controller_epoch: int, user: str, credential: ScramCredential) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.upsert_user_credential.user = user
    command.upsert_user_credential.credential.CopyFrom(scram_credential_record(credential))
    return command


def delete_user_credential(request_id: str, controller_epoch: int, user: str, mechanism: ScramMechanism) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.delete_user_credential.user = user
    command.delete_user_credential.mechanism = int(mechanism)
    return command


def create_acls(request_id: str, controller_epoch: int, acls: Iterable[AclBinding]) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.create_acls.acls.extend(acl_binding_record(b) for b in acls)
    return command


def delete_acls(request_id: str, controller_epoch: int, acls: Iterable[AclBinding]) -> MetadataCommand:
    command = _command(request_id, controller_epoch)
    command.delete_acls.acls.extend(acl_binding_record(b) for b in acls)
    return command
