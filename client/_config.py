"""The clients' options, validated once: `ProducerConfig`, `ConsumerConfig`, `AdminConfig`.

Owns each client's options as one frozen dataclass built from the constructor's keyword arguments
(same names, same defaults; the constructors keep their signatures). Building one validates it:
`validate()` raises ValueError naming the first option out of range or the options that contradict
each other, with the messages the constructors have always raised. `as_dict()` is the client's
public `config` dict (Kafka's names in snake_case, resolved values: acks as -1/0/1, the compression
type's Kafka name, whether idempotence is on, whether auto commit is on).

Imports: storage's compression module (codec names), `freshet.client`. No grpc.
Forbidden: server, metadata, cli, pysyncobj (import-linter contracts).

Thread-safety: immutable, so thread-safe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from freshet.storage.compression import SUPPORTED_COMPRESSION_TYPES, CompressionType
from freshet.storage.errors import UnsupportedCompressionError

_ACKS = {"all": -1, "-1": -1, -1: -1, "1": 1, 1: 1, "0": 0, 0: 0}
INT32_MAX = 2**31 - 1
#: Kafka's limit for idempotence: the broker remembers 5 batches per producer and partition.
MAX_IN_FLIGHT_FOR_IDEMPOTENCE = 5
_RESETS = ("earliest", "latest", "none")


def check_int(name: str, value: int, minimum: int) -> None:
    """Raise ValueError unless `value` is an int (not a bool) >= `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")


@dataclass(frozen=True)
class ProducerConfig:
    """The Producer's options (see `Producer.__init__`). Validated when built."""

    client_id: str = "freshet-producer"
    acks: str | int = "all"
    linger_ms: int = 5
    batch_size: int = 65536
    compression: str = "none"
    compression_level: int | None = None
    buffer_memory: int = 32 * 1024 * 1024
    max_block_ms: int = 60000
    max_in_flight: int = 5
    max_request_size: int = 1024 * 1024
    retries: int = INT32_MAX
    retry_backoff_ms: int = 100
    delivery_timeout_ms: int = 120000
    request_timeout_ms: int = 30000
    enable_idempotence: bool | None = None
    metadata_max_age_ms: int = 300000
    topic_metadata_propagation_max_ms: int = 5000
    stalled_request_ms: int = 1000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError: an option out of range, or options that contradict each other."""
        if self.acks not in _ACKS:
            raise ValueError(f"acks must be 'all', -1, 1 or 0, not {self.acks!r}")
        try:
            codec = CompressionType.from_name(self.compression)
        except UnsupportedCompressionError:
            codec = None
        if codec is None or codec not in SUPPORTED_COMPRESSION_TYPES:
            names = ", ".join(known.kafka_name for known in sorted(SUPPORTED_COMPRESSION_TYPES))
            raise ValueError(f"compression must be one of {names}, not {self.compression!r}")
        for name, minimum in (
            ("linger_ms", 0),
            ("batch_size", 1),
            ("buffer_memory", 1),
            ("max_block_ms", 0),
            ("max_in_flight", 1),
            ("max_request_size", 1),
            ("retries", 0),
            ("retry_backoff_ms", 0),
            ("request_timeout_ms", 1),
            ("metadata_max_age_ms", 1),
            ("topic_metadata_propagation_max_ms", 0),
            ("stalled_request_ms", 1),
        ):
            check_int(name, getattr(self, name), minimum)
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise ValueError(
                f"delivery_timeout_ms ({self.delivery_timeout_ms}) must be at least linger_ms + "
                f"request_timeout_ms ({self.linger_ms + self.request_timeout_ms}), as in Kafka"
            )
        if self.enable_idempotence:
            if self.acks_value != -1:
                raise ValueError("enable_idempotence=True needs acks='all'")
            if self.max_in_flight > MAX_IN_FLIGHT_FOR_IDEMPOTENCE:
                raise ValueError(f"enable_idempotence=True needs max_in_flight <= {MAX_IN_FLIGHT_FOR_IDEMPOTENCE}")
            if self.retries == 0:
                raise ValueError("enable_idempotence=True needs retries > 0")

    @property
    def acks_value(self) -> int:
        """acks as the wire's -1 (all), 1 or 0."""
        return _ACKS[self.acks]

    @property
    def codec(self) -> CompressionType:
        return CompressionType.from_name(self.compression)

    @property
    def is_idempotent(self) -> bool:
        """enable_idempotence, resolved: None means on when acks="all", max_in_flight <= 5 and
        retries > 0, as Kafka 3.x."""
        if self.enable_idempotence is None:
            return (
                self.acks_value == -1 and self.max_in_flight <= MAX_IN_FLIGHT_FOR_IDEMPOTENCE and self.retries > 0
            )
        return bool(self.enable_idempotence)

    def as_dict(self) -> dict:
        """The producer's public `config` dict (resolved values)."""
        values = asdict(self)
        values["acks"] = self.acks_value
        values["compression"] = self.codec.kafka_name
        values["enable_idempotence"] = self.is_idempotent
        return values


@dataclass(frozen=True)
class ConsumerConfig:
    """The Consumer's options (see `Consumer.__init__`). Validated when built."""

    group_id: str | None = None
    client_id: str = "freshet-consumer"
    auto_offset_reset: str = "latest"
    enable_auto_commit: bool = True
    max_poll_records: int = 500
    fetch_min_bytes: int = 1
    fetch_max_wait_ms: int = 500
    fetch_max_bytes: int = 50 * 1024 * 1024
    max_partition_fetch_bytes: int = 1024 * 1024
    check_crcs: bool = True
    request_timeout_ms: int = 30000
    retry_backoff_ms: int = 100
    metadata_max_age_ms: int = 300000
    default_api_timeout_ms: int = 60000
    group_instance_id: str | None = None
    auto_commit_interval_ms: int = 5000
    session_timeout_ms: int = 45000
    max_poll_interval_ms: int = 300000
    group_remote_assignor: str = "uniform"
    stalled_request_ms: int = 1000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError: an option out of range."""
        if self.auto_offset_reset not in _RESETS:
            raise ValueError(
                f"auto_offset_reset must be 'earliest', 'latest' or 'none', not {self.auto_offset_reset!r}"
            )
        for name, minimum in (
            ("max_poll_records", 1),
            ("fetch_min_bytes", 0),
            ("fetch_max_wait_ms", 0),
            ("fetch_max_bytes", 1),
            ("max_partition_fetch_bytes", 1),
            ("request_timeout_ms", 1),
            ("retry_backoff_ms", 0),
            ("metadata_max_age_ms", 1),
            ("default_api_timeout_ms", 0),
            ("auto_commit_interval_ms", 1),
            ("session_timeout_ms", 1),
            ("max_poll_interval_ms", 1),
            ("stalled_request_ms", 1),
        ):
            check_int(name, getattr(self, name), minimum)
        group_id = self.group_id
        if group_id is not None and (not isinstance(group_id, str) or not group_id):
            raise ValueError(f"group_id must be a non-empty string, not {group_id!r}")
        if self.group_remote_assignor not in ("uniform", "range"):
            raise ValueError(
                f"group_remote_assignor must be 'uniform' or 'range', not {self.group_remote_assignor!r}"
            )

    @property
    def is_auto_commit(self) -> bool:
        """Auto commit is on only with a group_id (as kafka-python)."""
        return bool(self.enable_auto_commit) and self.group_id is not None

    def as_dict(self) -> dict:
        """The consumer's public `config` dict (every option but group_id, auto commit resolved)."""
        values = asdict(self)
        del values["group_id"]
        values["enable_auto_commit"] = self.enable_auto_commit and self.group_id is not None
        return values


@dataclass(frozen=True)
class AdminConfig:
    """The Admin client's options (see `Admin.__init__`). Validated when built."""

    client_id: str = "freshet-admin"
    request_timeout_ms: int = 30000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError: a non-positive timeout."""
        timeout = self.request_timeout_ms
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"request_timeout_ms must be a positive int, not {timeout!r}")
