"""Value types of the client SDK: partitions, brokers, record metadata and consumed records.

Owns the small immutable tuples users see: `TopicPartition`, `Node`, `RecordMetadata`,
`ConsumerRecord` and `OffsetAndTimestamp`. They are NamedTuples so that building one costs a tuple
allocation (the consumer builds one per record) and they compare, hash and unpack like tuples.

Imports: standard library only.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Thread-safety: every type here is immutable and thread-safe.
"""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """A partition of a topic: `TopicPartition("orders", 0)`. Immutable, hashable, thread-safe."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class Node(NamedTuple):
    """A broker as the metadata names it: where it serves clients. Immutable, thread-safe."""

    node_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> str:
        """`host:port`, the gRPC target of the broker (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


class RecordMetadata(NamedTuple):
    """Where a produced record landed (the result of `Producer.send(...).result()`). Thread-safe.

    Attributes:
        topic: the topic.
        partition: the partition.
        offset: the record's offset; -1 when unknown (acks=0, or a retry the broker recognised as a
            duplicate older than the batches it remembers, Kafka's DUPLICATE_SEQUENCE_NUMBER).
        timestamp: the record's timestamp in ms: the create time the producer stamped, or the
            broker's append time when the topic uses LogAppendTime.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int


class ConsumerRecord(NamedTuple):
    """One record returned by `Consumer.poll`. Immutable, thread-safe.

    Attributes:
        topic, partition, offset: where the record is.
        timestamp: ms since the epoch; its meaning is given by `timestamp_type`.
        timestamp_type: 0 CreateTime (set by the producer), 1 LogAppendTime (set by the broker).
        key, value: bytes, or None when null (a null value is a tombstone in compacted topics).
        headers: (name, value) pairs in the order the producer gave them; names may repeat.
        leader_epoch: the leader epoch of the batch the record was appended in, -1 if unknown.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    leader_epoch: int


class OffsetAndTimestamp(NamedTuple):
    """The answer of `Consumer.offsets_for_times` for one partition. Immutable, thread-safe.

    Attributes:
        offset: the first offset whose record timestamp is >= the timestamp asked for.
        timestamp: that record's timestamp (ms).
        leader_epoch: the leader epoch of that record's batch, -1 if unknown.
    """

    offset: int
    timestamp: int
    leader_epoch: int = -1
