"""What the replication streams need of the broker that hosts them: the `ReplicaHost` protocol.

The leader's push sessions and the follower's fetcher live below the broker (the broker creates
them); instead of importing the broker's data plane back, they are given an object with exactly
this surface. `freshet.server.broker.data_plane.DataPlane` implements it; unit tests can pass a
small fake.

Imports: typing only (plus annotations). Thread-safety: a protocol; implementations say.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSet
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from freshet.metadata.image import MetadataImage
    from freshet.server.metrics import BrokerMetrics
    from freshet.server.replication.partition import Partition
    from freshet.server.replication.throttle import ReplicationThrottle
    from freshet.storage.clock import Clock
    from freshet.v1 import common_pb2, replication_pb2


class ReplicaHost(Protocol):
    """The broker as its replication streams see it."""

    node_id: int
    clock: Clock
    metrics: BrokerMetrics
    #: (topic, partition) -> the run-time partition, for every replica applied here.
    partitions: Mapping[tuple[str, int], Partition]
    #: The leader's open FollowerSessions (one per follower stream).
    sessions: MutableSet
    #: The leader's throttle for replicas a reassignment adds (replication.throttle.bytes.per.second).
    replication_throttle: ReplicationThrottle

    @property
    def image(self) -> MetadataImage:
        """The broker's current metadata (the leaders' advertised addresses)."""
        ...

    def not_leader_detail(self, topic: str, partition_number: int) -> common_pb2.ErrorDetail:
        """NOT_LEADER (or UNKNOWN_TOPIC / LEADER_NOT_AVAILABLE) with the leader hint."""
        ...

    def request_isr_check(self, partition: Partition) -> None:
        """A follower outside the ISR acknowledged: check soon whether it may rejoin."""
        ...

    def record_timestamps(self, request: replication_pb2.RecordTimestampsRequest) -> replication_pb2.RecordTimestampsResponse:
        """Replication.RecordTimestamps, answered from the partitions this broker leads."""
        ...

    def check_follower_broker(self, replica_id: int, broker_epoch: int) -> None:
        """Raise StaleBrokerEpochError for a replaced incarnation of a follower."""
        ...

    def note_appended(self, size_bytes: int) -> None:
        """A follower append wrote `size_bytes` to the log directory (free-space accounting)."""
        ...
