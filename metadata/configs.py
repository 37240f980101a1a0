"""The configuration schema: every dynamic config key Freshet stores in metadata.

Owns the list of keys (type, Kafka's default, validator, scopes), parsing of the string values the
metadata log stores, and the typed, defaults-merged views the server and controller read
(`TopicConfig`, `BrokerConfig`). The state machine validates AlterConfigs and CreateTopic with it;
the server reuses it to validate `--set key=value` and requests before proposing anything.

Scopes:
    topic    set on one topic (AlterConfigs on a topic, or CreateTopic's configs).
    broker   set on one broker id.
    group    set on one consumer group (Kafka 4's GROUP config resource, KIP-848): group keys.
    cluster  set cluster-wide. Broker keys set here apply to every broker without an override of
             its own; topic keys set here become the default of every topic without an override
             (Kafka spells those defaults differently, e.g. log.retention.ms; Freshet uses the topic
             key itself at cluster scope); group keys set here are every group's default.

Merge order (later wins): schema default, cluster value, broker/topic/group value.

Values are stored as the strings the user gave (after validation), as Kafka does, and parsed on
read. Imports only the standard library and freshet.metadata.errors. Thread-safe: module-level
data is immutable, functions are pure.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from freshet.metadata.errors import InvalidConfigError

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class ConfigType(enum.Enum):
    """The type a config string parses to."""

    BOOLEAN = "boolean"
    INT = "int"                 # 32-bit signed
    LONG = "long"               # 64-bit signed
    DOUBLE = "double"
    STRING = "string"


class ConfigScope(enum.Enum):
    """Where a key may be set (see the module docstring)."""

    TOPIC = "topic"
    BROKER = "broker"
    CLUSTER = "cluster"
    GROUP = "group"


TOPIC_SCOPES = frozenset({ConfigScope.TOPIC, ConfigScope.CLUSTER})
BROKER_SCOPES = frozenset({ConfigScope.BROKER, ConfigScope.CLUSTER})
CLUSTER_ONLY = frozenset({ConfigScope.CLUSTER})
GROUP_SCOPES = frozenset({ConfigScope.GROUP, ConfigScope.CLUSTER})


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of the schema. Thread-safe (immutable).

    Attributes:
        name: the key, e.g. "retention.ms".
        type: what the string value parses to.
        default: the typed default (Kafka's, unless INTERFACE.md says otherwise).
        scopes: where the key may be set.
        check: returns None when a parsed value is acceptable, else the problem ("must be >= 1").
        doc: one line for `freshet topic config --help` and the console.
    """

    name: str
    type: ConfigType
    default: Any
    scopes: frozenset[ConfigScope]
    check: Callable[[Any], str | None]
    doc: str

    @property
    def attribute(self) -> str:
        """The attribute name in TopicConfig/BrokerConfig: dots become underscores."""
        return self.name.replace(".", "_")


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be >= {minimum}"

    return check


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _any(value: Any) -> str | None:
    return None


_DAY_MS = 24 * 60 * 60 * 1000

# Topic keys (Kafka's TopicConfig names and defaults; cleanup.policy is restricted to one policy
# per INTERFACE.md). flush.* defaults of Long.MAX_VALUE mean "rely on replication", as Kafka.
_TOPIC_KEYS = [
    ConfigKey("retention.ms", ConfigType.LONG, 7 * _DAY_MS, TOPIC_SCOPES, _at_least(-1),
              "delete segments older than this; -1 keeps them forever"),
    ConfigKey("retention.bytes", ConfigType.LONG, -1, TOPIC_SCOPES, _at_least(-1),
              "delete old segments while a partition is larger than this; -1 is unlimited"),
    ConfigKey("segment.bytes", ConfigType.INT, 1024 * 1024 * 1024, TOPIC_SCOPES, _at_least(14),
              "roll a new segment when the active one reaches this size"),
    ConfigKey("segment.ms", ConfigType.LONG, 7 * _DAY_MS, TOPIC_SCOPES, _at_least(1),
              "roll a new segment when the active one is this old"),
    ConfigKey("cleanup.policy", ConfigType.STRING, "delete", TOPIC_SCOPES, _one_of("delete", "compact"),
              "delete old segments, or compact to the latest record per key"),
    ConfigKey("min.insync.replicas", ConfigType.INT, 1, TOPIC_SCOPES, _at_least(1),
              "acks=all fails with NOT_ENOUGH_REPLICAS when the ISR is smaller"),
    ConfigKey("max.message.bytes", ConfigType.INT, 1048588, TOPIC_SCOPES, _at_least(0),
              "largest record batch the leader accepts"),
    ConfigKey("unclean.leader.election.enable", ConfigType.BOOLEAN, False, TOPIC_SCOPES, _any,
              "allow a replica outside the ISR to become leader (may lose data)"),
    ConfigKey("compression.type", ConfigType.STRING, "producer", TOPIC_SCOPES,
              _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
              "codec of stored batches; producer keeps the producer's"),
    ConfigKey("message.timestamp.type", ConfigType.STRING, "CreateTime", TOPIC_SCOPES,
              _one_of("CreateTime", "LogAppendTime"),
              "record timestamps as the producer set them, or as the leader appended them"),
    ConfigKey("delete.retention.ms", ConfigType.LONG, _DAY_MS, TOPIC_SCOPES, _at_least(0),
              "how long compaction keeps delete markers (tombstones)"),
    ConfigKey("index.interval.bytes", ConfigType.INT, 4096, TOPIC_SCOPES, _at_least(0),
              "bytes between two entries of the sparse offset index"),
    ConfigKey("flush.messages", ConfigType.LONG, LONG_MAX, TOPIC_SCOPES, _at_least(1),
              "fsync the log after this many records"),
    ConfigKey("flush.ms", ConfigType.LONG, LONG_MAX, TOPIC_SCOPES, _at_least(0),
              "fsync the log at least this often"),
    ConfigKey("min.cleanable.dirty.ratio", ConfigType.DOUBLE, 0.5, TOPIC_SCOPES, _between(0.0, 1.0),
              "compact when this fraction of the log is not yet compacted"),
    ConfigKey("write.caching", ConfigType.BOOLEAN, True, TOPIC_SCOPES, _any,
              "false: acks=all waits until every in-sync replica has fsynced the write"),
]

# Broker and cluster keys. Liveness defaults are INTERFACE.md's (Kafka's are 2000/9000 ms); the rest
# are Kafka's. Kafka names the imbalance setting leader.imbalance.per.broker.percentage.
_BROKER_KEYS = [
    ConfigKey("broker.heartbeat.interval.ms", ConfigType.INT, 500, BROKER_SCOPES, _at_least(1),
              "how often a broker heartbeats to the active controller"),
    ConfigKey("broker.session.timeout.ms", ConfigType.INT, 6000, BROKER_SCOPES, _at_least(1),
              "a broker without a heartbeat for this long is fenced"),
    ConfigKey("replica.lag.time.max.ms", ConfigType.LONG, 30000, BROKER_SCOPES, _at_least(0),
              "a follower not caught up for this long leaves the ISR"),
    ConfigKey("default.replication.factor", ConfigType.INT, 1, BROKER_SCOPES, _at_least(1),
              "replication factor of topics created without one"),
    ConfigKey("num.partitions", ConfigType.INT, 1, BROKER_SCOPES, _at_least(1),
              "partition count of topics created without one"),
    # Kafka's default is 50. Freshet's is 10: every partition is a replicated log with its own
    # replication traffic and coordinator loading on a Python broker; 10 still spreads coordinators
    # over up to 10 brokers. Set it before the first group is used: the topic is created then.
    ConfigKey("offsets.topic.num.partitions", ConfigType.INT, 10, CLUSTER_ONLY, _at_least(1),
              "partitions of __consumer_offsets"),
    ConfigKey("offsets.topic.replication.factor", ConfigType.INT, 3, CLUSTER_ONLY, _at_least(1),
              "replication factor of __consumer_offsets (capped by the live brokers)"),
    ConfigKey("offsets.retention.minutes", ConfigType.INT, 10080, CLUSTER_ONLY, _at_least(1),
              "committed offsets of an empty group expire after this"),
    # Kafka's default is true; Freshet's is false: a typo in a producer's topic name should fail,
    # not silently create a topic with the default partitions and replication factor (Kafka
    # itself recommends false in production).
    ConfigKey("auto.create.topics.enable", ConfigType.BOOLEAN, False, BROKER_SCOPES, _any,
              "create a topic on first metadata request for it"),
    ConfigKey("auto.leader.rebalance.enable", ConfigType.BOOLEAN, True, CLUSTER_ONLY, _any,
              "move leadership back to preferred replicas when imbalanced"),
    ConfigKey("leader.imbalance.per.broker.percentage", ConfigType.INT, 10, CLUSTER_ONLY, _between(0, 100),
              "rebalance when a broker leads more than this percentage of non-preferred partitions"),
    ConfigKey("leader.imbalance.check.interval.seconds", ConfigType.LONG, 300, CLUSTER_ONLY, _at_least(1),
              "how often the controller checks leader imbalance"),
    ConfigKey("group.initial.rebalance.delay.ms", ConfigType.INT, 3000, BROKER_SCOPES, _at_least(0),
              "how long a new group waits for more members before the first rebalance"),
    ConfigKey("group.min.session.timeout.ms", ConfigType.INT, 6000, BROKER_SCOPES, _at_least(1),
              "smallest session timeout a group member may ask for"),
    ConfigKey("group.max.session.timeout.ms", ConfigType.INT, 1800000, BROKER_SCOPES, _at_least(1),
              "largest session timeout a group member may ask for"),
    # KIP-848 consumer groups. Kafka's heartbeat interval default is 5000 ms; Freshet's 500 ms bounds
    # a rebalance to about two heartbeats (old owner revokes, new owner picks up) well under 2 s.
    ConfigKey("group.consumer.heartbeat.interval.ms", ConfigType.INT, 500, BROKER_SCOPES, _at_least(1),
              "how often consumer-group members heartbeat to the coordinator"),
    ConfigKey("group.consumer.session.timeout.ms", ConfigType.INT, 45000, BROKER_SCOPES, _at_least(1),
              "session timeout of members that do not ask for one"),
    ConfigKey("group.consumer.max.size", ConfigType.INT, 1000, BROKER_SCOPES, _at_least(1),
              "most members a consumer group may have"),
    # A full disk (README "A full disk"; Kafka has no such marks and its brokers die at ENOSPC).
    # low-water = max(disk.free.min.bytes, disk.free.min.percent of the filesystem); produce is
    # refused below it and accepted again at low-water + max(low-water / 4, 1 MiB).
    ConfigKey("disk.free.min.bytes", ConfigType.LONG, 256 * 1024 * 1024, BROKER_SCOPES, _at_least(0),
              "refuse produce when the log directory has fewer free bytes than this"),
    ConfigKey("disk.free.min.percent", ConfigType.DOUBLE, 5.0, BROKER_SCOPES, _between(0.0, 100.0),
              "refuse produce when the log directory has less than this percentage of its filesystem free"),
    ConfigKey("disk.reserve.bytes", ConfigType.LONG, 64 * 1024 * 1024, BROKER_SCOPES, _at_least(0),
              "space held in a reserve file and released when the log directory is full"),
    # Consumer lag in time (README "Consumer lag in time"): one RPC per leader broker per refresh.
    ConfigKey("group.lag.refresh.interval.ms", ConfigType.INT, 5000, BROKER_SCOPES, _at_least(100),
              "how often a group coordinator measures the lag in time of its groups"),
    # Self-balancing (README "Self-balancing"). Names follow Kafka's auto.leader.rebalance.* and
    # Cruise Control's thresholds: Cruise Control's replica.count.balance.threshold is 1.10 (10%
    # above the mean), its num.concurrent.partition.movements.per.broker is 5, its anomaly
    # detection interval 5 minutes. Events (a broker registers or unfences, a decommission)
    # trigger a check at once; the interval only catches skew that builds up slowly.
    ConfigKey("auto.balance.enable", ConfigType.BOOLEAN, True, CLUSTER_ONLY, _any,
              "move replicas off decommissioning brokers, onto new ones, and even out skew"),
    ConfigKey("auto.balance.threshold.percentage", ConfigType.INT, 10, CLUSTER_ONLY, _between(0, 100),
              "a broker is imbalanced when its replica or preferred-leader count is this far from the mean"),
    ConfigKey("auto.balance.max.concurrent.moves", ConfigType.INT, 5, CLUSTER_ONLY, _at_least(1),
              "partition reassignments the balancer starts in one batch (the next after they complete)"),
    ConfigKey("auto.balance.check.interval.seconds", ConfigType.LONG, 300, CLUSTER_ONLY, _at_least(1),
              "how often the controller checks replica balance without a triggering event"),
    # Kafka's leader.replication.throttled.rate (applied to the replicas a reassignment adds, as
    # Kafka's reassignment tool sets up). 0 turns throttling off.
    ConfigKey("replication.throttle.bytes.per.second", ConfigType.LONG, 10 * 1024 * 1024, BROKER_SCOPES,
              _at_least(0), "bytes/s a leader sends to replicas a reassignment adds (0: unlimited)"),
    # Kafka's name and default; before, a fixed 300 s (server/limits.py). Read at every pass, so a
    # dynamic change applies from the next check on.
    ConfigKey("log.retention.check.interval.ms", ConfigType.LONG, 300_000, BROKER_SCOPES, _at_least(1),
              "how often the broker deletes segments past retention.ms / retention.bytes"),
    # Kafka's name and meaning (-1: the OS default, autotuned). Kafka's default is 102400; here -1,
    # because 4 MiB read no faster than the OS default in an A/B (README "Zero-copy reads").
    # Applied to each new connection; above net.core.wmem_max the OS default stays.
    ConfigKey("socket.send.buffer.bytes", ConfigType.INT, -1, BROKER_SCOPES, _at_least(-1),
              "SO_SNDBUF of each new Kafka listener connection; -1 keeps the OS default"),
]

# Group keys (set on one group, or cluster-wide as every group's default).
_GROUP_KEYS = [
    ConfigKey("lag.alert.seconds", ConfigType.DOUBLE, 0.0, GROUP_SCOPES, _at_least(0),
              "alert when the group's oldest uncommitted record is older than this; 0: no alert"),
]

SCHEMA: Mapping[str, ConfigKey] = {key.name: key for key in _TOPIC_KEYS + _BROKER_KEYS + _GROUP_KEYS}
TOPIC_KEYS: tuple[str, ...] = tuple(key.name for key in _TOPIC_KEYS)
BROKER_KEYS: tuple[str, ...] = tuple(key.name for key in _BROKER_KEYS)
GROUP_KEYS: tuple[str, ...] = tuple(key.name for key in _GROUP_KEYS)

assert len(SCHEMA) == len(_TOPIC_KEYS) + len(_BROKER_KEYS) + len(_GROUP_KEYS), "duplicate config key"
for _key in SCHEMA.values():
    assert _key.check(_key.default) is None, f"default of {_key.name} fails its own validator"

CONFIG_VALUE_LENGTH_MAX = 1024


def parse_value(key: str, value: str) -> Any:
    """Parse and validate one value.

    Args:
        key: a key of SCHEMA.
        value: the string form, as stored in metadata.

    Returns:
        The typed value (bool, int, float or str).

    Raises:
        InvalidConfigError: unknown key, unparsable value, or a value the validator refuses.
    """
    spec = SCHEMA.get(key)
    if spec is None:
        raise InvalidConfigError(key, None, "unknown configuration key")
    if len(value) > CONFIG_VALUE_LENGTH_MAX:
        raise InvalidConfigError(key, value[:64] + "...", f"longer than {CONFIG_VALUE_LENGTH_MAX} characters")
    typed: Any
    text = value.strip()
    if spec.type is ConfigType.BOOLEAN:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise InvalidConfigError(key, value, "must be true or false")
        typed = lowered == "true"
    elif spec.type in (ConfigType.INT, ConfigType.LONG):
        try:
            typed = int(text, 10)
        except ValueError:
            raise InvalidConfigError(key, value, "must be an integer") from None
        bound = INT_MAX if spec.type is ConfigType.INT else LONG_MAX
        if not -bound - 1 <= typed <= bound:
            raise InvalidConfigError(key, value, f"out of range for a {spec.type.value}")
    elif spec.type is ConfigType.DOUBLE:
        try:
            typed = float(text)
        except ValueError:
            raise InvalidConfigError(key, value, "must be a number") from None
        if not math.isfinite(typed):
            raise InvalidConfigError(key, value, "must be a finite number")
    else:
        typed = value
    problem = spec.check(typed)
    if problem is not None:
        raise InvalidConfigError(key, value, problem)
    return typed


def validate_entries(scope: ConfigScope, entries: Iterable[tuple[str, str]]) -> None:
    """Check that every (key, value) may be set at `scope` and is valid.

    Raises:
        InvalidConfigError: naming the first bad key and its problem.
    """
    for key, value in entries:
        spec = SCHEMA.get(key)
        if spec is None:
            raise InvalidConfigError(key, None, "unknown configuration key")
        if scope not in spec.scopes:
            allowed = ", ".join(sorted(s.value for s in spec.scopes))
            raise InvalidConfigError(key, None, f"cannot be set on a {scope.value} (only on: {allowed})")
        parse_value(key, value)


def validate_delete_keys(scope: ConfigScope, keys: Iterable[str]) -> None:
    """Check that every key may be deleted at `scope` (it must exist and belong to the scope).

    Raises:
        InvalidConfigError: naming the first bad key.
    """
    for key in keys:
        spec = SCHEMA.get(key)
        if spec is None:
            raise InvalidConfigError(key, None, "unknown configuration key")
        if scope not in spec.scopes:
            raise InvalidConfigError(key, None, f"cannot be set on a {scope.value}")


def _merged(keys: Iterable[str], *layers: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in keys:
        value = SCHEMA[key].default
        for layer in layers:
            text = layer.get(key)
            if text is not None:
                value = parse_value(key, text)
        values[SCHEMA[key].attribute] = value
    return values


@dataclasses.dataclass(frozen=True, slots=True)
class TopicConfig:
    """Typed topic configuration with defaults merged. Thread-safe (immutable)."""

    retention_ms: int
    retention_bytes: int
    segment_bytes: int
    segment_ms: int
    cleanup_policy: str
    min_insync_replicas: int
    max_message_bytes: int
    unclean_leader_election_enable: bool
    compression_type: str
    message_timestamp_type: str
    delete_retention_ms: int
    index_interval_bytes: int
    flush_messages: int
    flush_ms: int
    min_cleanable_dirty_ratio: float
    write_caching: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Typed broker configuration with defaults merged. Thread-safe (immutable)."""

    broker_heartbeat_interval_ms: int
    broker_session_timeout_ms: int
    replica_lag_time_max_ms: int
    default_replication_factor: int
    num_partitions: int
    offsets_topic_num_partitions: int
    offsets_topic_replication_factor: int
    offsets_retention_minutes: int
    auto_create_topics_enable: bool
    auto_leader_rebalance_enable: bool
    leader_imbalance_per_broker_percentage: int
    leader_imbalance_check_interval_seconds: int
    group_initial_rebalance_delay_ms: int
    group_min_session_timeout_ms: int
    group_max_session_timeout_ms: int
    group_consumer_heartbeat_interval_ms: int
    group_consumer_session_timeout_ms: int
    group_consumer_max_size: int
    disk_free_min_bytes: int
    disk_free_min_percent: float
    disk_reserve_bytes: int
    group_lag_refresh_interval_ms: int
    auto_balance_enable: bool
    auto_balance_threshold_percentage: int
    auto_balance_max_concurrent_moves: int
    auto_balance_check_interval_seconds: int
    replication_throttle_bytes_per_second: int
    log_retention_check_interval_ms: int
    socket_send_buffer_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class GroupConfig:
    """Typed configuration of one consumer group with defaults merged. Thread-safe (immutable)."""

    lag_alert_seconds: float


assert [f.name for f in dataclasses.fields(TopicConfig)] == [SCHEMA[k].attribute for k in TOPIC_KEYS]
assert [f.name for f in dataclasses.fields(BrokerConfig)] == [SCHEMA[k].attribute for k in BROKER_KEYS]
assert [f.name for f in dataclasses.fields(GroupConfig)] == [SCHEMA[k].attribute for k in GROUP_KEYS]


def topic_config(cluster_values: Mapping[str, str], topic_values: Mapping[str, str]) -> TopicConfig:
    """The typed configuration of a topic: defaults, then cluster values, then the topic's own.

    Stored values were validated when they were set, so this does not raise for state produced by
    the state machine.
    """
    return TopicConfig(**_merged(TOPIC_KEYS, cluster_values, topic_values))


def broker_config(cluster_values: Mapping[str, str], broker_values: Mapping[str, str]) -> BrokerConfig:
    """The typed configuration of a broker: defaults, then cluster values, then the broker's own."""
    return BrokerConfig(**_merged(BROKER_KEYS, cluster_values, broker_values))


def group_config(cluster_values: Mapping[str, str], group_values: Mapping[str, str]) -> GroupConfig:
    """The typed configuration of a group: defaults, then cluster values, then the group's own."""
    return GroupConfig(**_merged(GROUP_KEYS, cluster_values, group_values))
