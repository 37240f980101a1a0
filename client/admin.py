"""The Admin client: topics, partitions, configs, leaders, reassignments, cluster and quorum.

Owns `Admin` (Kafka's AdminClient for Freshet) and the cluster and quorum methods
(`describe_cluster`, `describe_quorum`, `metadata_image`); the rest of Admin's methods come from
one class per concern, which `Admin` inherits:

- `admin_topics.TopicAdmin`: topics and configs;
- `admin_partitions.PartitionAdmin`: leader elections and reassignments;
- `admin_groups.GroupAdmin`: consumer groups;
- `admin_security.SecurityAdmin`: users (SCRAM credentials) and ACLs;
- `_admin_calls.AdminCalls` (their common base): calling nodes within the deadline.

The typed results live in `admin_results` and are re-exported here. Every method is one blocking
call (or a few) with a deadline (`request_timeout_ms`):

- admin RPCs (`freshet.v1.Controller`) go to any node; a node that is not the active controller
  forwards them (Kafka's KIP-590), so the client only walks its bootstrap list when a node cannot
  be reached. Every request that changes metadata carries one client-chosen `request_id`, reused
  when the same request is retried on another node, so a retry after a timeout or a failover
  gets the first result instead of a second application (README "Controller");
- reads of topics and partitions use `Broker.Metadata` (any broker), and the offsets of
  `describe_topics` use `Broker.ListOffsets` on each partition's leader;
- consumer groups (`list_groups`, `describe_group`, `delete_group`, `reset_offsets`) come from
  `freshet.client.admin_groups.GroupAdmin`, which `Admin` inherits: they go to each group's
  coordinator (`freshet.v1.Group`);
- `metadata_image()` reads the metadata snapshot a controller node streams on `WatchMetadata`
  (the first message, from offset -1), decoded into a plain dict. It asks the node to redact
  secrets (SCRAM salts and keys) and strips any that still arrive (an older node), so a dump
  never holds one.

Errors are `freshet.client.errors` classes only: a node that cannot be reached becomes
BrokerUnavailableError naming every address tried; a refused request becomes the class of its
error code (InvalidReplicationFactorError, UnknownTopicError, InvalidConfigError, ...) carrying
the server's message. No raw `grpc.RpcError` leaves this module.

Imports: grpc (through the transport), protobuf's json_format, `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage (import-linter contracts).

Thread-safety: `Admin` is thread-safe (the transport is; the methods keep no shared state beyond
it). Results are frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from freshet.client._admin_calls import short_error
from freshet.client._config import AdminConfig
from freshet.client._retry import Deadline
from freshet.client._transport import (
    Transport,
    node_from_endpoint,
    translate_rpc_error,
)
from freshet.client.admin_partitions import PartitionAdmin
from freshet.client.admin_results import (
    BrokerDescription,
    ClusterDescription,
    ConfigEntry,
    ConfigResource,
    ControllerDescription,
    ElectionResult,
    OngoingReassignment,
    PartitionDescription,
    QuorumDescription,
    ReassignmentResult,
    ReassignmentStatus,
    TopicCreated,
    TopicDescription,
    TopicListing,
    VoterDescription,
)
from freshet.client.admin_security import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramCredentialInfo,
    SecurityAdmin,
    UserScramCredentials,
)
from freshet.client.admin_topics import TopicAdmin
from freshet.client.errors import (
    BrokerUnavailableError,
    FreshetError,
)
from freshet.v1 import controller_pb2, metadata_pb2
from google.protobuf import json_format

_BROKER_STATES = {
    controller_pb2.BROKER_ACTIVE: "active",
    controller_pb2.BROKER_FENCED: "fenced",
    controller_pb2.BROKER_CONTROLLED_SHUTDOWN: "controlled_shutdown",
}


# =================================================================================================
# The client.


class Admin(TopicAdmin, PartitionAdmin, SecurityAdmin):
    """Administration of a Freshet cluster (group methods: see GroupAdmin; users and ACLs: see
    SecurityAdmin). Thread-safe.

    Example::

        admin = Admin("localhost:9092")
        admin.create_topic("orders", partitions=3, replication_factor=3, configs={"retention.ms": "86400000"})
        for topic in admin.describe_topics(["orders"]):
            print(topic.partitions[0].leader, topic.partitions[0].isr)
        admin.close()
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "freshet-admin",
        request_timeout_ms: int = 30000,
        transport: Transport | None = None,
        **security,
    ) -> None:
        """Create an admin client; it connects lazily.

        Args:
            bootstrap_servers: "host:port,host:port" (any live node will do); None reads
                `FRESHET_BOOTSTRAP`, else "localhost:9092".
            client_id: names this client in node logs.
            request_timeout_ms: bound on each method (across retries on other nodes).
            transport: the connections to use instead of opening gRPC channels to
                bootstrap_servers (tests pass one over an in-memory channel); its bootstrap list is
                used, and closing it is left to the caller.
            **security: kafka-python's names (freshet.client._security): security_protocol
                ("PLAINTEXT", "SSL", "SASL_SSL"), ssl_cafile, ssl_certfile, ssl_keyfile,
                sasl_mechanism ("SCRAM-SHA-512" default, "SCRAM-SHA-256", "PLAIN"),
                sasl_plain_username, sasl_plain_password (never logged or shown). Wrong
                credentials fail the first call with SaslAuthenticationFailedError (not retriable).

        Raises:
            ValueError: a malformed bootstrap list, a non-positive timeout, or both
                bootstrap_servers and transport.
        """
        AdminConfig(client_id=client_id, request_timeout_ms=request_timeout_ms)  # raises ValueError
        super().__init__(
            bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=request_timeout_ms,
            transport=transport,
            **security,
        )

    # ---------------------------------------------------------------------------------------------
    # Cluster and quorum.

    def describe_cluster(self) -> ClusterDescription:
        """Cluster id, active controller, voters, brokers with their state, and partition counts."""
        response = self._call("controller", "DescribeCluster", controller_pb2.DescribeClusterRequest())
        return ClusterDescription(
            cluster_id=response.cluster_id,
            controller_id=response.controller_id if response.controller_id >= 0 else None,
            controller_epoch=response.controller_epoch,
            brokers=[
                BrokerDescription(
                    node_from_endpoint(b.endpoint),
                    _BROKER_STATES.get(b.state, str(b.state)),
                    b.broker_epoch,
                    is_decommissioning=b.is_decommissioning,
                    replica_count=b.replica_count,
                    leader_count=b.leader_count,
                    **_disk_report(b),
                )
                for b in sorted(response.brokers, key=lambda b: b.endpoint.node_id)
            ],
            controllers=[
                ControllerDescription(c.node_id, c.host, c.port)
                for c in sorted(response.controllers, key=lambda c: c.node_id)
            ],
            metadata_offset=response.metadata_offset,
            topic_count=response.topic_count,
            partition_count=response.partition_count,
            under_replicated_partitions=response.under_replicated_partitions,
            offline_partitions=response.offline_partitions,
            answering_node_id=response.answering_node_id,
        )

    def describe_quorum(self) -> QuorumDescription:
        """Raft leader, term, indexes and every voter's lag, as the Raft leader reports them."""
        response = self._call("controller", "DescribeQuorum", controller_pb2.DescribeQuorumRequest())
        return QuorumDescription(
            leader_id=response.leader_id if response.leader_id >= 0 else None,
            term=response.term,
            commit_raft_index=response.commit_raft_index,
            last_raft_index=response.last_raft_index,
            applied_offset=response.applied_offset,
            snapshot_raft_index=response.snapshot_raft_index,
            has_quorum=response.has_quorum,
            voters=[
                VoterDescription(
                    node_id=v.node_id,
                    raft_address=v.raft_address,
                    is_connected=v.is_connected,
                    match_raft_index=v.match_raft_index if v.match_raft_index >= 0 else None,
                    lag=v.lag if v.lag >= 0 else None,
                )
                for v in sorted(response.voters, key=lambda v: v.node_id)
            ],
        )

    def metadata_image(self) -> dict[str, Any]:
        """The current metadata image of a controller node as a dict (the snapshot's fields).

        Reads the first message of `WatchMetadata` from offset -1 (a snapshot) on the first
        controller node of the bootstrap list that answers (broker-only nodes answer
        NOT_CONTROLLER and are skipped), then cancels the stream.
        """
        deadline = Deadline(self._timeout_s)
        failures: list[str] = []
        addresses = list(self._transport.bootstrap_addresses)
        try:
            cluster = self.describe_cluster()
            addresses += [
                f"{c.host}:{c.port}" for c in cluster.controllers if f"{c.host}:{c.port}" not in addresses
            ]
        except BrokerUnavailableError:
            raise
        except FreshetError:
            pass
        for address in addresses:
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            stream = self._controller(address).WatchMetadata(
                controller_pb2.WatchMetadataRequest(from_offset=-1, watcher="freshet metadata dump", redact_secrets=True),
                timeout=remaining,
            )
            try:
                for message in stream:
                    if message.WhichOneof("body") == "snapshot":
                        snapshot = metadata_pb2.MetadataSnapshot.FromString(message.snapshot.snapshot)
                        image = json_format.MessageToDict(
                            snapshot,
                            preserving_proto_field_name=True,
                            always_print_fields_with_no_presence=True,
                        )
                        image["offset"] = message.snapshot.offset
                        return redact_secrets(image)
                    break
            except grpc.RpcError as rpc_error:
                failures.append(
                    f"{address}: {short_error(rpc_error, translate_rpc_error(rpc_error, address, 'WatchMetadata'))}"
                )
            finally:
                stream.cancel()
        raise BrokerUnavailableError(
            f"cannot read the metadata image from any controller at {','.join(addresses)}"
            + (f" ({failures[-1]})" if failures else "")
        )


#: Fields of a SCRAM credential that must never reach a dump.
SECRET_CREDENTIAL_FIELDS = ("salt", "stored_key", "server_key")


def redact_secrets(image: dict[str, Any]) -> dict[str, Any]:
    """`image` (a snapshot as a dict) without any SCRAM salt or key: users keep their names,
    mechanisms and iterations."""
    for user in image.get("users", ()):
        for credential in user.get("credentials", ()):
            for field in SECRET_CREDENTIAL_FIELDS:
                credential.pop(field, None)
    return image


__all__ = [
    "ACL",
    "ACLFilter",
    "ACLOperation",
    "ACLPermissionType",
    "ACLResourcePatternType",
    "Admin",
    "ResourcePattern",
    "ResourcePatternFilter",
    "ResourceType",
    "ScramCredentialInfo",
    "UserScramCredentials",
    "BrokerDescription",
    "ClusterDescription",
    "ConfigEntry",
    "ConfigResource",
    "ControllerDescription",
    "ElectionResult",
    "OngoingReassignment",
    "PartitionDescription",
    "QuorumDescription",
    "ReassignmentResult",
    "ReassignmentStatus",
    "TopicCreated",
    "TopicDescription",
    "TopicListing",
    "VoterDescription",
]


def _disk_report(broker) -> dict:
    """A DescribedBroker's log-directory report as BrokerDescription fields (None: not reported)."""
    if not broker.has_disk_report:
        return {}
    return {
        "disk_state": "full" if broker.is_log_dir_full else "ok",
        "disk_free_bytes": broker.log_dir_free_bytes,
        "disk_total_bytes": broker.log_dir_total_bytes,
    }
