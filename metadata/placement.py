"""Replica placement for new topics and partitions: Kafka's assignReplicasToBrokers, deterministic.

Owns the choice of replica lists for new partitions:

- Rack-unaware (no broker has a rack): the first replica of partition p is broker
  (p + start_index) mod n, so leaders go round robin and per-broker leader counts differ by at most
  one; followers are the next brokers at a shift that grows by one every n partitions (Kafka's
  `nextReplicaShift`), which spreads the followers of a broker's partitions over all the others.
- Rack-aware (any broker has a rack): brokers are arranged alternating racks (Kafka's
  `getRackAlternatedBrokerList`), leaders go round robin over that list, and each further replica
  is the next broker in a rack that has no replica yet (once every rack has one, any broker
  without one). Brokers without a rack count as one rack of their own ("") rather than failing,
  as KRaft's striped placer does with rack-less brokers.
- Kafka picks start_index and the shift at random; here they are inputs, and `spread_start`
  derives them from the current image: the start is the broker leading (preferring) the fewest
  partitions, so many small topics balance across brokers too, and the result is reproducible.

Imports only the standard library and freshet.metadata (errors, image). Thread-safe: pure
functions over immutable inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from freshet.metadata.errors import InvalidReplicationFactorError
from freshet.metadata.image import MetadataImage

# (node id, rack); rack is "" when the broker has none.
BrokerRack = tuple[int, str]


def rack_alternated(brokers: Sequence[BrokerRack]) -> list[int]:
    """Broker ids ordered so that consecutive brokers are in different racks where possible.

    Kafka's getRackAlternatedBrokerList: racks sorted, brokers sorted within each rack, then one
    broker from each rack in turn ("a1 b1 c1 a2 b2 a3" for racks a(1,2,3), b(1,2), c(1)).
    """
    by_rack: dict[str, list[int]] = {}
    for node_id, rack in sorted(brokers):
        by_rack.setdefault(rack, []).append(node_id)
    racks = sorted(by_rack)
    arranged: list[int] = []
    for round_number in range(max(len(members) for members in by_rack.values()) if by_rack else 0):
        for rack in racks:
            members = by_rack[rack]
            if round_number < len(members):
                arranged.append(members[round_number])
    assert sorted(arranged) == sorted(node_id for node_id, _ in brokers)
    return arranged


def _replica_index(first_index: int, shift: int, replica_number: int, broker_count: int) -> int:
    """Kafka's replicaIndex: the position of a follower, never equal to first_index."""
    offset = 1 + (shift + replica_number) % (broker_count - 1)
    return (first_index + offset) % broker_count


def spread_start(image: MetadataImage, broker_ids: Sequence[int]) -> tuple[int, int]:
    """(start_index, replica_shift) for placing on `broker_ids` (in placement order).

    The start is the position of the broker that is the preferred leader (first replica) of the
    fewest partitions (ties: fewest replicas, then lowest id); the shift is the number of existing
    partitions, so consecutive topics spread their followers differently.
    """
    assert broker_ids
    preferred = dict.fromkeys(broker_ids, 0)
    replicas = dict.fromkeys(broker_ids, 0)
    partitions = 0
    for topic in image.topics_by_id.values():
        for partition in topic.partitions:
            partitions += 1
            if partition.replicas and partition.replicas[0] in preferred:
                preferred[partition.replicas[0]] += 1
            for replica in partition.replicas:
                if replica in replicas:
                    replicas[replica] += 1
    position = {node_id: index for index, node_id in enumerate(broker_ids)}
    least = min(broker_ids, key=lambda node_id: (preferred[node_id], replicas[node_id], node_id))
    shift = partitions % (len(broker_ids) - 1) if len(broker_ids) > 1 else 0
    return position[least], shift


def assign_replicas(
    brokers: Sequence[BrokerRack],
    partition_count: int,
    replication_factor: int,
    start_index: int = 0,
    replica_shift: int = 0,
    first_partition: int = 0,
) -> list[tuple[int, ...]]:
    """Replica lists (first = preferred leader) for `partition_count` new partitions.

    Args:
        brokers: the brokers to place on (node id, rack); usually the available ones.
        partition_count: how many partitions to place (>= 0).
        replication_factor: replicas per partition.
        start_index: position (in placement order, see `placement_order`) of the first leader.
        replica_shift: Kafka's nextReplicaShift at the first partition.
        first_partition: the number of the first new partition (existing partitions before it).

    Raises:
        InvalidReplicationFactorError: replication_factor < 1 or > len(brokers).
    """
    count = len(brokers)
    if replication_factor < 1 or replication_factor > count:
        raise InvalidReplicationFactorError(replication_factor, count)
    assert partition_count >= 0
    assert first_partition >= 0
    order = placement_order(brokers)
    start_index %= count
    rack_of = dict(brokers)
    is_rack_aware = is_rack_aware_placement(brokers)
    rack_count = len(set(rack_of.values()))
    shift = replica_shift
    placed: list[tuple[int, ...]] = []
    for partition in range(first_partition, first_partition + partition_count):
        if partition > 0 and partition % count == 0:
            shift += 1
        first_index = (partition + start_index) % count
        leader = order[first_index]
        replicas = [leader]
        if not is_rack_aware:
            for number in range(replication_factor - 1):
                replicas.append(order[_replica_index(first_index, shift, number, count)])
        else:
            racks_used = {rack_of[leader]}
            attempt = 0
            for _ in range(replication_factor - 1):
                while True:
                    assert attempt < count * count, "placement did not converge"
                    candidate = order[_replica_index(first_index, shift * rack_count, attempt, count)]
                    rack = rack_of[candidate]
                    attempt += 1
                    if (rack not in racks_used or len(racks_used) == rack_count) and (
                        candidate not in replicas or len(replicas) == count
                    ):
                        replicas.append(candidate)
                        racks_used.add(rack)
                        break
        assert len(set(replicas)) == len(replicas) == replication_factor
        placed.append(tuple(replicas))
    return placed


def is_rack_aware_placement(brokers: Sequence[BrokerRack]) -> bool:
    """Rack-aware as soon as any broker has a rack."""
    return any(rack for _, rack in brokers)


def placement_order(brokers: Sequence[BrokerRack]) -> list[int]:
    """The order leaders go round robin in: rack-alternated when rack-aware, else by id."""
    if is_rack_aware_placement(brokers):
        return rack_alternated(brokers)
    return sorted(node_id for node_id, _ in brokers)
