"""Snapshot codecs: a MetadataImage as MetadataSnapshot bytes, and the quorum's snapshot file.

Owns two formats, both versioned:

1. `encode_snapshot(image) -> bytes` / `decode_snapshot(bytes) -> MetadataImage`: the whole state as
   a MetadataSnapshot message (proto/freshet/v1/metadata.proto). The bytes are exactly
   `SerializeToString(deterministic=True)` of a message whose repeated fields are sorted, so equal
   states give byte-identical snapshots and the same command sequence gives the same bytes on every
   replica. Per-topic encodings are cached on the immutable TopicImage, so a snapshot after a few
   changes re-encodes only the topics that changed (the rest is concatenation). Brokers' watch RPC
   serves these bytes too.

2. The snapshot *file* a voter writes when it compacts its Raft log (and ships to a follower that
   fell behind). Byte layout:

       offset  size  field
       0       8     magic b"FRSHSNAP"
       8       4     format version, u32 big-endian (1)
       12      4     CRC-32 (zlib) of the payload, u32 big-endian
       16      8     payload length in bytes, u64 big-endian
       24      n     payload: a RaftSnapshotFile message (the two Raft entries the Raft library
                     needs to resume, the voters, and the MetadataSnapshot bytes)

Imports only the standard library, freshet.metadata (image, errors) and wire types.
Thread-safe: functions are pure; the per-topic cache is idempotent.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from freshet.metadata import commands
from freshet.metadata.errors import SnapshotFormatError
from freshet.metadata.image import (
    NO_LEADER,
    REQUEST_LOG_CAPACITY,
    REQUEST_LOG_CHUNK_SIZE,
    BrokerRegistration,
    MetadataImage,
    PartitionImage,
    RequestLog,
    TopicImage,
    frozen_mapping,
)
from freshet.metadata.security import AclSet
from freshet.v1 import common_pb2, metadata_pb2
from google.protobuf.message import DecodeError

SNAPSHOT_FORMAT_VERSION = 1
SNAPSHOT_FILE_FORMAT_VERSION = 1
SNAPSHOT_FILE_MAGIC = b"FRSHSNAP"
_FILE_HEADER = struct.Struct(">8sIIQ")   # magic, format version, CRC-32 of payload, payload length
SNAPSHOT_FILE_BYTES_MAX = 1 << 32         # a sanity bound on the payload length field

# Field numbers of MetadataSnapshot that the encoder writes by hand (wire type 2: length-delimited).
_RECENT_REQUESTS_FIELD = 10
_TOPICS_FIELD = 100
_REQUEST_ID_FIELD = 1
_REQUEST_RESULT_FIELD = 2
assert metadata_pb2.MetadataSnapshot.DESCRIPTOR.fields_by_name["recent_requests"].number == _RECENT_REQUESTS_FIELD
assert metadata_pb2.MetadataSnapshot.DESCRIPTOR.fields_by_name["topics"].number == _TOPICS_FIELD
assert max(f.number for f in metadata_pb2.MetadataSnapshot.DESCRIPTOR.fields) == _TOPICS_FIELD, (
    "topics must stay the last field: the encoder appends it after everything else"
)


def _varint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _sorted_configs(values: Mapping[str, str]) -> list[metadata_pb2.ConfigEntry]:
    return [metadata_pb2.ConfigEntry(key=key, value=values[key]) for key in sorted(values)]


def encode_topic(topic: TopicImage) -> bytes:
    """The deterministic TopicRecord encoding of `topic` (cached on the topic)."""
    cached = topic.encoded
    if cached is not None:
        return cached
    record = metadata_pb2.TopicRecord(topic_id=topic.topic_id, name=topic.name, configs=_sorted_configs(topic.configs))
    for p in topic.partitions:
        record.partitions.add(
            partition=p.partition,
            replicas=p.replicas,
            isr=p.isr,
            leader=p.leader,
            leader_epoch=p.leader_epoch,
            partition_epoch=p.partition_epoch,
            adding_replicas=p.adding_replicas,
            removing_replicas=p.removing_replicas,
            is_balancer_move=p.is_balancer_move,
        )
    encoded = record.SerializeToString(deterministic=True)
    object.__setattr__(topic, "encoded", encoded)   # idempotent cache on an immutable object
    return encoded


def encode_snapshot(image: MetadataImage) -> bytes:
    """The MetadataSnapshot bytes of `image` (deterministic; see the module docstring)."""
    head = metadata_pb2.MetadataSnapshot(
        format_version=SNAPSHOT_FORMAT_VERSION,
        offset=image.offset,
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        controller_epoch=image.controller_epoch,
        next_producer_id=image.next_producer_id,
        cluster_configs=_sorted_configs(image.cluster_configs),
    )
    for node_id in sorted(image.brokers):
        b = image.brokers[node_id]
        head.brokers.add(
            node_id=b.node_id,
            incarnation_id=b.incarnation_id,
            host=b.host,
            port=b.port,
            rack=b.rack,
            broker_epoch=b.broker_epoch,
            is_fenced=b.is_fenced,
            in_controlled_shutdown=b.in_controlled_shutdown,
            listeners=[common_pb2.Listener(name=n, host=h, port=p) for n, h, p in b.listeners],
            is_decommissioning=b.is_decommissioning,
        )
    for broker_id in sorted(image.broker_configs):
        head.broker_configs.add(broker_id=broker_id, configs=_sorted_configs(image.broker_configs[broker_id]))
    parts = [head.SerializeToString(deterministic=True)]
    for request_id, result in image.recent_requests.items():
        record = _length_delimited(_REQUEST_ID_FIELD, request_id.encode()) + _length_delimited(
            _REQUEST_RESULT_FIELD, result
        )
        parts.append(_length_delimited(_RECENT_REQUESTS_FIELD, record))
    security_part = metadata_pb2.MetadataSnapshot(
        users=[
            metadata_pb2.UserRecord(
                name=name,
                credentials=[commands.scram_credential_record(c) for _, c in sorted(image.users[name].items())],
            )
            for name in sorted(image.users)
        ],
        acls=[commands.acl_binding_record(binding) for binding in image.acls],
    )
    parts.append(security_part.SerializeToString(deterministic=True))   # fields 11, 12: after 10
    group_part = metadata_pb2.MetadataSnapshot(
        group_configs=[
            metadata_pb2.GroupConfigRecord(group_id=group_id, configs=_sorted_configs(image.group_configs[group_id]))
            for group_id in sorted(image.group_configs)
        ],
    )
    parts.append(group_part.SerializeToString(deterministic=True))      # field 13: after 12, before 100
    for topic_id in sorted(image.topics_by_id):
        parts.append(_length_delimited(_TOPICS_FIELD, encode_topic(image.topics_by_id[topic_id])))
    return b"".join(parts)


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise SnapshotFormatError(reason)


def _strictly_sorted(keys: Iterable) -> bool:
    keys = list(keys)
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


def _configs_from(entries: Iterable[metadata_pb2.ConfigEntry], what: str) -> Mapping[str, str]:
    entries = list(entries)
    _check(_strictly_sorted(e.key for e in entries), f"{what}: configs not sorted or duplicated")
    return frozen_mapping({e.key: e.value for e in entries})


def _partition_from(record: metadata_pb2.PartitionRecord, number: int, what: str) -> PartitionImage:
    p = PartitionImage(
        partition=record.partition,
        replicas=tuple(record.replicas),
        isr=tuple(record.isr),
        leader=record.leader,
        leader_epoch=record.leader_epoch,
        partition_epoch=record.partition_epoch,
        adding_replicas=tuple(record.adding_replicas),
        removing_replicas=tuple(record.removing_replicas),
        is_balancer_move=record.is_balancer_move,
    )
    where = f"{what}-{number}"
    _check(p.partition == number, f"{where}: partitions out of order")
    _check(len(p.replicas) > 0 and len(set(p.replicas)) == len(p.replicas), f"{where}: bad replicas")
    _check(set(p.isr) <= set(p.replicas), f"{where}: ISR is not a subset of replicas")
    _check(p.leader == NO_LEADER or p.leader in p.replicas, f"{where}: leader is not a replica")
    _check(set(p.adding_replicas) | set(p.removing_replicas) <= set(p.replicas), f"{where}: bad reassignment")
    _check(p.is_reassigning or not p.is_balancer_move, f"{where}: a balancer move without a reassignment")
    return p


def decode_snapshot(data: bytes) -> MetadataImage:
    """The image encoded by `encode_snapshot`.

    Raises:
        SnapshotFormatError: undecodable bytes, an unknown format version, or broken invariants.
    """
    snapshot = metadata_pb2.MetadataSnapshot()
    try:
        snapshot.ParseFromString(data)
    except DecodeError as error:
        raise SnapshotFormatError(f"undecodable MetadataSnapshot: {error}") from None
    _check(
        snapshot.format_version == SNAPSHOT_FORMAT_VERSION,
        f"format version {snapshot.format_version}, this build reads {SNAPSHOT_FORMAT_VERSION}",
    )
    _check(snapshot.offset >= 0, "negative offset")
    _check(_strictly_sorted(b.node_id for b in snapshot.brokers), "brokers not sorted by node id")
    brokers = {
        b.node_id: BrokerRegistration(
            node_id=b.node_id,
            incarnation_id=bytes(b.incarnation_id),
            host=b.host,
            port=b.port,
            rack=b.rack,
            broker_epoch=b.broker_epoch,
            is_fenced=b.is_fenced,
            in_controlled_shutdown=b.in_controlled_shutdown,
            listeners=tuple((listener.name, listener.host, listener.port) for listener in b.listeners),
            is_decommissioning=b.is_decommissioning,
        )
        for b in snapshot.brokers
    }
    _check(_strictly_sorted(c.broker_id for c in snapshot.broker_configs), "broker configs not sorted")
    broker_configs = {
        c.broker_id: _configs_from(c.configs, f"broker {c.broker_id}") for c in snapshot.broker_configs
    }
    _check(_strictly_sorted(g.group_id for g in snapshot.group_configs), "group configs not sorted")
    group_configs = {g.group_id: _configs_from(g.configs, f"group {g.group_id}") for g in snapshot.group_configs}
    _check(_strictly_sorted(t.topic_id for t in snapshot.topics), "topics not sorted by topic id")
    topics_by_id: dict[bytes, TopicImage] = {}
    names: dict[str, bytes] = {}
    for record in snapshot.topics:
        partitions = tuple(_partition_from(p, n, record.name) for n, p in enumerate(record.partitions))
        topic = TopicImage(bytes(record.topic_id), record.name, partitions, _configs_from(record.configs, record.name))
        _check(topic.name not in names, f"topic name {topic.name!r} appears twice")
        topics_by_id[topic.topic_id] = topic
        names[topic.name] = topic.topic_id
    _check(_strictly_sorted(u.name for u in snapshot.users), "users not sorted by name")
    users = {}
    acls = []
    try:
        for user in snapshot.users:
            credentials = [commands.scram_credential_from_record(c) for c in user.credentials]
            _check(_strictly_sorted(c.mechanism for c in credentials), f"credentials of {user.name!r} not sorted")
            users[user.name] = frozen_mapping({c.mechanism: c for c in credentials})
        acls = [commands.acl_binding_from_record(record) for record in snapshot.acls]
    except ValueError as error:
        raise SnapshotFormatError(f"undecodable user or ACL: {error}") from None
    _check(_strictly_sorted(acls), "ACL bindings not sorted")
    items = [(r.request_id, r.result.SerializeToString(deterministic=True)) for r in snapshot.recent_requests]
    _check(len({rid for rid, _ in items}) == len(items), "a request id appears twice")
    _check(len(items) < REQUEST_LOG_CAPACITY + REQUEST_LOG_CHUNK_SIZE, f"{len(items)} request ids exceed the table")
    return MetadataImage(
        offset=snapshot.offset,
        cluster_id=snapshot.cluster_id,
        controller_id=snapshot.controller_id,
        controller_epoch=snapshot.controller_epoch,
        next_producer_id=snapshot.next_producer_id,
        brokers=frozen_mapping(brokers),
        topics_by_id=frozen_mapping(topics_by_id),
        topic_ids_by_name=frozen_mapping(names),
        cluster_configs=_configs_from(snapshot.cluster_configs, "cluster"),
        broker_configs=frozen_mapping(broker_configs),
        recent_requests=RequestLog.from_items(items),
        users=frozen_mapping(users),
        acls=AclSet(acls),
        group_configs=frozen_mapping(group_configs),
    )


# ---------------------------------------------------------------------------------------------
# The quorum's snapshot file
# ---------------------------------------------------------------------------------------------


class RaftEntry(NamedTuple):
    """A Raft log entry as the Raft library handles it: (data, raft_index, term).

    Equal to the plain tuple the library stores, so it can be compared with and handed to it.
    Thread-safe (immutable).
    """

    data: bytes
    raft_index: int
    term: int


class SnapshotFile(NamedTuple):
    """The decoded content of a snapshot file. Thread-safe (immutable)."""

    last_applied: RaftEntry
    previous: RaftEntry
    voters: tuple[str, ...]
    state: bytes                 # MetadataSnapshot bytes


def _entry_message(entry: RaftEntry) -> metadata_pb2.RaftEntry:
    return metadata_pb2.RaftEntry(raft_index=entry.raft_index, term=entry.term, data=entry.data)


def encode_snapshot_file(last_applied: RaftEntry, previous: RaftEntry, voters: Iterable[str], state: bytes) -> bytes:
    """The bytes of a snapshot file (layout in the module docstring)."""
    assert previous.raft_index + 1 == last_applied.raft_index, (previous.raft_index, last_applied.raft_index)
    payload = metadata_pb2.RaftSnapshotFile(
        format_version=SNAPSHOT_FILE_FORMAT_VERSION,
        last_applied=_entry_message(last_applied),
        previous=_entry_message(previous),
        voters=sorted(voters),
        state=state,
    ).SerializeToString(deterministic=True)
    header = _FILE_HEADER.pack(SNAPSHOT_FILE_MAGIC, SNAPSHOT_FILE_FORMAT_VERSION, zlib.crc32(payload), len(payload))
    return header + payload


def decode_snapshot_file(data: bytes) -> SnapshotFile:
    """Parse and verify a snapshot file.

    Raises:
        SnapshotFormatError: wrong magic or version, truncated, checksum mismatch, undecodable.
    """
    _check(len(data) >= _FILE_HEADER.size, f"{len(data)} bytes is shorter than the header")
    magic, version, crc, length = _FILE_HEADER.unpack_from(data)
    _check(magic == SNAPSHOT_FILE_MAGIC, f"bad magic {magic!r}")
    _check(version == SNAPSHOT_FILE_FORMAT_VERSION, f"file format version {version}, expected {SNAPSHOT_FILE_FORMAT_VERSION}")
    _check(length <= SNAPSHOT_FILE_BYTES_MAX, f"payload length {length} is implausible")
    payload = data[_FILE_HEADER.size :]
    _check(len(payload) == length, f"payload is {len(payload)} bytes, header says {length}")
    _check(zlib.crc32(payload) == crc, "checksum mismatch")
    message = metadata_pb2.RaftSnapshotFile()
    try:
        message.ParseFromString(payload)
    except DecodeError as error:
        raise SnapshotFormatError(f"undecodable RaftSnapshotFile: {error}") from None
    _check(message.format_version == SNAPSHOT_FILE_FORMAT_VERSION, "payload format version mismatch")
    last = RaftEntry(bytes(message.last_applied.data), message.last_applied.raft_index, message.last_applied.term)
    previous = RaftEntry(bytes(message.previous.data), message.previous.raft_index, message.previous.term)
    _check(previous.raft_index + 1 == last.raft_index, "entries are not consecutive")
    return SnapshotFile(last, previous, tuple(message.voters), bytes(message.state))
