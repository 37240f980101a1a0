"""Kafka's properties on the console tools: `--property k=v` (the console producer's line reader and
the console consumer's DefaultMessageFormatter) and Kafka client properties
(`--producer-property k=v`, `--producer.config FILE`, `--consumer-property k=v`,
`--consumer.config FILE`) mapped to the SDK's keyword options.

Owns the tables: `PRODUCER_PROPERTIES` / `CONSUMER_PROPERTIES` (Kafka client key -> SDK keyword
and value parser), `KAFKA_ONLY_PROPERTIES` (keys a Kafka client accepts that Freshet does not use:
one warning line each), and the console tools' `--property` keys. Every function is pure: it
returns options (and warnings) or raises `PropertyError`, which the commands turn into a usage
error (exit 2) naming the key. Security keys go through `common.properties_security`, the parser
--command-config uses.

Imports: `freshet.cli.common`. Thread-safety: pure functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from freshet.cli import common


class PropertyError(ValueError):
    """A property that is unknown, unsupported or has a bad value (the message names it)."""


def parse_bool(key: str, text: str) -> bool:
    """Kafka's booleans: true / false (any case)."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise PropertyError(f"{key}={text!r}: expected true or false")
    return value == "true"


def _int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise PropertyError(f"{key}={text!r}: expected an integer") from None


def _text(key: str, text: str) -> str:
    return text


def _acks(key: str, text: str) -> str | int:
    mapping: dict[str, str | int] = {"all": "all", "-1": "all", "1": 1, "0": 0}
    if text.strip() not in mapping:
        raise PropertyError(f"{key}={text!r}: expected all, -1, 1 or 0")
    return mapping[text.strip()]


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(key: str, text: str) -> str:
        if text.strip().lower() not in choices:
            raise PropertyError(f"{key}={text!r}: expected one of {', '.join(choices)}")
        return text.strip().lower()

    return parse


Parser = Callable[[str, str], Any]

#: Kafka producer property -> (SDK Producer keyword, value parser).
PRODUCER_PROPERTIES: dict[str, tuple[str, Parser]] = {
    "acks": ("acks", _acks),
    "linger.ms": ("linger_ms", _int),
    "batch.size": ("batch_size", _int),
    "compression.type": ("compression", _choice("none", "gzip", "snappy", "lz4", "zstd")),
    "compression.gzip.level": ("compression_level", _int),
    "compression.lz4.level": ("compression_level", _int),
    "compression.zstd.level": ("compression_level", _int),
    "enable.idempotence": ("enable_idempotence", parse_bool),
    "client.id": ("client_id", _text),
    "buffer.memory": ("buffer_memory", _int),
    "max.block.ms": ("max_block_ms", _int),
    "max.in.flight.requests.per.connection": ("max_in_flight", _int),
    "max.request.size": ("max_request_size", _int),
    "retries": ("retries", _int),
    "retry.backoff.ms": ("retry_backoff_ms", _int),
    "delivery.timeout.ms": ("delivery_timeout_ms", _int),
    "request.timeout.ms": ("request_timeout_ms", _int),
    "metadata.max.age.ms": ("metadata_max_age_ms", _int),
}

#: Kafka consumer property -> (SDK Consumer keyword, value parser).
CONSUMER_PROPERTIES: dict[str, tuple[str, Parser]] = {
    "group.id": ("group_id", _text),
    "client.id": ("client_id", _text),
    "auto.offset.reset": ("auto_offset_reset", _choice("earliest", "latest", "none")),
    "enable.auto.commit": ("enable_auto_commit", parse_bool),
    "auto.commit.interval.ms": ("auto_commit_interval_ms", _int),
    "max.poll.records": ("max_poll_records", _int),
    "fetch.min.bytes": ("fetch_min_bytes", _int),
    "fetch.max.wait.ms": ("fetch_max_wait_ms", _int),
    "fetch.max.bytes": ("fetch_max_bytes", _int),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", _int),
    "check.crcs": ("check_crcs", parse_bool),
    "request.timeout.ms": ("request_timeout_ms", _int),
    "retry.backoff.ms": ("retry_backoff_ms", _int),
    "metadata.max.age.ms": ("metadata_max_age_ms", _int),
    "default.api.timeout.ms": ("default_api_timeout_ms", _int),
    "group.instance.id": ("group_instance_id", _text),
    "session.timeout.ms": ("session_timeout_ms", _int),
    "max.poll.interval.ms": ("max_poll_interval_ms", _int),
    "group.remote.assignor": ("group_remote_assignor", _text),
}

#: Security keys, read by `common.properties_security` (the --command-config parser).
SECURITY_PROPERTIES = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.certificate.location",
        "ssl.key.location",
    }
)

#: Keys a Kafka client accepts that Freshet's SDK has no use for: a warning, not an error.
KAFKA_ONLY_PROPERTIES = frozenset(
    {
        "key.serializer",
        "value.serializer",
        "key.deserializer",
        "value.deserializer",
        "partitioner.class",
        "partitioner.ignore.keys",
        "partitioner.adaptive.partitioning.enable",
        "interceptor.classes",
        "transactional.id",
        "transaction.timeout.ms",
        "isolation.level",
        "send.buffer.bytes",
        "receive.buffer.bytes",
        "reconnect.backoff.ms",
        "reconnect.backoff.max.ms",
        "retry.backoff.max.ms",
        "connections.max.idle.ms",
        "metrics.sample.window.ms",
        "metrics.num.samples",
        "metrics.recording.level",
        "metric.reporters",
        "client.dns.lookup",
        "socket.connection.setup.timeout.ms",
        "socket.connection.setup.timeout.max.ms",
        "heartbeat.interval.ms",
        "partition.assignment.strategy",
        "exclude.internal.topics",
        "allow.auto.create.topics",
        "client.rack",
        "group.protocol",
        "metadata.max.idle.ms",
        "auto.include.jmx.reporter",
        "ssl.endpoint.identification.algorithm",
        "ssl.truststore.password",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.keystore.type",
        "ssl.key.password",
        "ssl.protocol",
        "ssl.enabled.protocols",
        "sasl.login.callback.handler.class",
        "sasl.client.callback.handler.class",
        "enable.metrics.push",
    }
)


def client_options(
    properties: dict[str, str], table: dict[str, tuple[str, Parser]]
) -> tuple[dict, list[str]]:
    """SDK keyword options (security included) for Kafka client `properties`, and one warning
    line per key a Kafka client accepts but Freshet ignores. `bootstrap.servers` comes back as
    the "bootstrap_servers" keyword.

    Raises:
        PropertyError: an unknown key (naming it), or a bad value.
    """
    options: dict[str, Any] = {}
    warnings: list[str] = []
    for key, text in properties.items():
        if key == "bootstrap.servers":
            options["bootstrap_servers"] = text
        elif key in table:
            name, parse = table[key]
            options[name] = parse(key, text)
        elif key in SECURITY_PROPERTIES:
            continue
        elif key in KAFKA_ONLY_PROPERTIES or key in PRODUCER_PROPERTIES or key in CONSUMER_PROPERTIES:
            warnings.append(f"warning: {key} is not used by freshet (ignored)")
        else:
            raise PropertyError(f"unknown client property {key!r}")
    try:
        options.update(common.properties_security(properties))
    except ValueError as error:
        raise PropertyError(str(error)) from None
    return options, warnings


def read_client_properties(config_file: str | None, pairs: list[str] | None, flag: str) -> dict[str, str]:
    """The properties of a --*.config FILE, then the --*-property k=v items over them (Kafka's order).

    Raises:
        PropertyError: an unreadable file.
        typer.Exit: an item without '=' (exit 2, after one line on stderr).
    """
    properties: dict[str, str] = {}
    if config_file:
        try:
            properties.update(common.read_properties(config_file))
        except ValueError as error:
            raise PropertyError(str(error)) from None
    properties.update(common.parse_pairs(pairs, flag))  # an item without '=': usage error, exit 2
    return properties


# =================================================================================================
# --property on the console tools.


def producer_line_format(pairs: dict[str, str]) -> str | None:
    """The key separator of kafka-console-producer's line reader (parse.key=true, key.separator
    default a tab); None when lines carry no key.

    Raises:
        PropertyError: an unknown or unsupported property, or a bad value.
    """
    supported = ("parse.key", "key.separator")
    for key in pairs:
        if key not in supported:
            raise PropertyError(
                f"--property {key}: not supported by freshet produce (it takes {', '.join(supported)})"
            )
    is_keyed = parse_bool("parse.key", pairs["parse.key"]) if "parse.key" in pairs else False
    separator = pairs.get("key.separator", "\t")
    if not separator:
        raise PropertyError("--property key.separator must not be empty")
    return separator if is_keyed else None


@dataclasses.dataclass(frozen=True)
class RecordFormat:
    """What kafka-console-consumer prints per record (DefaultMessageFormatter's properties)."""

    print_timestamp: bool = False
    print_partition: bool = False
    print_offset: bool = False
    print_headers: bool = False
    print_key: bool = False
    print_value: bool = True
    key_separator: str = "\t"
    line_separator: str = "\n"
    headers_separator: str = ","
    null_literal: str = "null"


#: --property key -> RecordFormat field (booleans parsed, separators as given).
_FORMAT_PROPERTIES = {
    "print.timestamp": "print_timestamp",
    "print.partition": "print_partition",
    "print.offset": "print_offset",
    "print.headers": "print_headers",
    "print.key": "print_key",
    "print.value": "print_value",
    "key.separator": "key_separator",
    "line.separator": "line_separator",
    "headers.separator": "headers_separator",
    "null.literal": "null_literal",
}


def consumer_record_format(pairs: dict[str, str], base: RecordFormat) -> RecordFormat:
    """`base` (from --print-* flags) with the --property values over it.

    Raises:
        PropertyError: an unknown or unsupported property, or a bad value.
    """
    changes: dict[str, Any] = {}
    for key, text in pairs.items():
        field = _FORMAT_PROPERTIES.get(key)
        if field is None:
            supported = ", ".join(_FORMAT_PROPERTIES)
            raise PropertyError(f"--property {key}: not supported by freshet consume (it takes {supported})")
        changes[field] = parse_bool(key, text) if field.startswith("print_") else text
    return dataclasses.replace(base, **changes)
