"""Typed configuration of one partition log, with Kafka's names and defaults.

Owns `LogConfig`. Parsing and validating the strings users type (`--config retention.ms=...`)
happens in metadata; this module receives typed values and only asserts that they are coherent
(a violated assertion is a bug in the caller).

Imports: standard library and `freshet.storage.record_batch`. Forbidden: grpc, wire types
(freshet.v1), metadata, server, client, cli (import-linter contract).

Thread-safety: LogConfig is immutable; a log swaps its whole config object at run time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from freshet.storage.record_batch import TimestampType

#: Kafka's Long.MAX_VALUE, the "off" value of flush.messages and flush.ms.
LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1
_DAY_MS = 24 * 60 * 60 * 1000

CLEANUP_POLICY_DELETE = "delete"
CLEANUP_POLICY_COMPACT = "compact"
#: Values of compression.type: "producer" (keep the batch's codec) or a codec to store batches in.
COMPRESSION_TYPE_PRODUCER = "producer"
COMPRESSION_TYPES = frozenset({COMPRESSION_TYPE_PRODUCER, "uncompressed", "gzip", "snappy", "lz4", "zstd"})


@dataclasses.dataclass(frozen=True, slots=True)
class LogConfig:
    """Configuration of one partition log. Field names are Kafka's topic configs with `_` for `.`.

    Immutable and thread-safe. Defaults are Kafka's.
    """

    segment_bytes: int = 1024 * 1024 * 1024
    """segment.bytes: roll the active segment before it would exceed this size."""
    segment_ms: int = 7 * _DAY_MS
    """segment.ms: roll when the active segment's first batch is older than this (by record time)."""
    segment_jitter_ms: int = 0
    """segment.jitter.ms: subtracted from segment.ms so that many partitions do not roll together."""
    segment_index_bytes: int = 10 * 1024 * 1024
    """segment.index.bytes: maximum size of a segment's offset index (and time index); roll when full."""
    index_interval_bytes: int = 4096
    """index.interval.bytes: bytes of batches between two offset-index entries."""
    retention_ms: int = 7 * _DAY_MS
    """retention.ms: delete segments whose newest record is older than this; -1 keeps forever."""
    retention_bytes: int = -1
    """retention.bytes: delete oldest segments while the log is larger than this; -1: no limit."""
    cleanup_policy: frozenset[str] = frozenset({CLEANUP_POLICY_DELETE})
    """cleanup.policy: {"delete"}, {"compact"} or both."""
    delete_retention_ms: int = _DAY_MS
    """delete.retention.ms: how long a tombstone stays readable in a compacted log."""
    min_cleanable_dirty_ratio: float = 0.5
    """min.cleanable.dirty.ratio: compact once dirty bytes / cleanable bytes reaches this."""
    min_compaction_lag_ms: int = 0
    """min.compaction.lag.ms: never compact records younger than this."""
    max_message_bytes: int = 1024 * 1024 + 12
    """max.message.bytes: the largest batch the log accepts (1 MiB + the 12-byte log overhead)."""
    flush_messages: int = LONG_MAX
    """flush.messages: fsync after this many records (off by default: rely on replication)."""
    flush_ms: int = LONG_MAX
    """flush.ms: fsync when the oldest unflushed append is this old (off by default)."""
    message_timestamp_type: TimestampType = TimestampType.CREATE_TIME
    """message.timestamp.type: CreateTime keeps producer timestamps, LogAppendTime stamps the broker's."""
    producer_id_expiration_ms: int = _DAY_MS
    """producer.id.expiration.ms: forget idempotent producers idle for this long."""
    compression_type: str = "producer"
    """compression.type: "producer" stores batches with the producer's codec; a codec name
    ("uncompressed", "gzip", "snappy", "lz4", "zstd") makes the leader re-encode other batches in it."""
    write_caching: bool = True
    """write.caching (Redpanda's name): true acknowledges acks=all writes from the page cache
    (Kafka's default); false waits until the in-sync replicas have fsynced them (durable mode)."""

    def __post_init__(self) -> None:
        # Typed values come from validated configs; a violation here is a bug in the caller.
        assert 14 <= self.segment_bytes <= _INT_MAX, (
            "positions in a segment are uint32 and Kafka caps at int32"
        )
        assert self.segment_ms >= 1
        assert 0 <= self.segment_jitter_ms < self.segment_ms
        assert self.segment_index_bytes >= 12, "room for at least one index entry"
        assert self.index_interval_bytes >= 0
        assert self.retention_ms >= -1
        assert self.retention_bytes >= -1
        assert self.cleanup_policy, "cleanup.policy is delete, compact or both"
        assert self.cleanup_policy <= {CLEANUP_POLICY_DELETE, CLEANUP_POLICY_COMPACT}
        assert self.delete_retention_ms >= 0
        assert 0.0 <= self.min_cleanable_dirty_ratio <= 1.0
        assert self.min_compaction_lag_ms >= 0
        assert self.max_message_bytes >= 0
        assert self.flush_messages >= 1
        assert self.flush_ms >= 0
        assert isinstance(self.message_timestamp_type, TimestampType)
        assert self.producer_id_expiration_ms >= 1
        assert self.compression_type in COMPRESSION_TYPES, self.compression_type

    @property
    def is_compacted(self) -> bool:
        """Whether the cleaner compacts this log (cleanup.policy contains compact)."""
        return CLEANUP_POLICY_COMPACT in self.cleanup_policy

    @property
    def is_delete_enabled(self) -> bool:
        """Whether retention deletes old segments (cleanup.policy contains delete)."""
        return CLEANUP_POLICY_DELETE in self.cleanup_policy

    def with_changes(self, **changes: Any) -> LogConfig:
        """A copy with some fields replaced (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kafka_names(cls, values: Mapping[str, object], base: LogConfig | None = None) -> LogConfig:
        """Build a LogConfig from typed values keyed by Kafka config names.

        Keys this class does not hold (e.g. min.insync.replicas) are ignored. Values must already be
        typed: ints for sizes and times, a float for min.cleanable.dirty.ratio, "compact,delete" or
        an iterable of names for cleanup.policy, "CreateTime"/"LogAppendTime" or a TimestampType for
        message.timestamp.type.

        Args:
            values: Kafka name -> typed value.
            base: the config to override (defaults to Kafka's defaults).
        """
        changes: dict[str, object] = {}
        for name, value in values.items():
            field = KAFKA_CONFIG_NAMES.get(name)
            if field is None:
                continue
            if field == "cleanup_policy":
                parts: Iterable[str] = value.split(",") if isinstance(value, str) else value  # type: ignore[assignment]
                value = frozenset(part.strip() for part in parts if part.strip())
            elif field == "message_timestamp_type" and isinstance(value, str):
                value = {
                    "CreateTime": TimestampType.CREATE_TIME,
                    "LogAppendTime": TimestampType.LOG_APPEND_TIME,
                }[value]
            elif field == "min_cleanable_dirty_ratio":
                value = float(value)  # type: ignore[arg-type]
            changes[field] = value
        return dataclasses.replace(base or cls(), **changes)


#: Kafka topic config name -> LogConfig field.
KAFKA_CONFIG_NAMES: dict[str, str] = {
    field.name.replace("_", "."): field.name for field in dataclasses.fields(LogConfig)
}
