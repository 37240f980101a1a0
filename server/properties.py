"""Kafka's `server.properties` for `freshet server start --config`: the parser and the mapping.

Owns two things:

- `parse_properties(text)`: java.util.Properties' file syntax (comments `#` and `!`, `key=value`,
  `key: value`, `key value`, a trailing backslash continues the line, escapes `\\t \\n \\r \\f
  \\uXXXX` and `\\<char>`; a later duplicate wins), with the line number of every entry. Written on
  the standard library (about 80 lines) rather than depending on a PyPI parser: the error messages
  need the line of each entry, which the maintained libraries do not give.
- `map_kafka_properties(entries, path)`: Kafka's broker setting names -> Freshet's keys, through one
  table per kind of setting: KAFKA_RENAMED (same meaning, other name), KAFKA_TOPIC_DEFAULTS
  (Kafka's broker-level topic defaults -> Freshet topic keys, written once as cluster-wide
  defaults), KAFKA_TIME_KEYS (`log.retention.hours|minutes|ms`, `log.roll.hours|ms`: the finest unit
  wins, as Kafka), KAFKA_IGNORED (known, no effect in Freshet: one warning each), and a few keys
  read together (`listeners` with `advertised.listeners`, `listener.security.protocol.map` and
  `controller.listener.names`; `log.dirs`/`log.dir`; the `ssl.keystore.*`/`ssl.truststore.*` keys).
  Freshet's own keys pass through under their own names, so one file can mix both.

Listeners: the listener named in `controller.listener.names` (default CONTROLLER) is the Raft
listener; a listener named FRESHET is the gRPC listener (Kafka has no such port: clients of the
Freshet SDK and CLI, the nodes among themselves); the one other listener is the Kafka protocol
listener, and its protocol in `listener.security.protocol.map` (PLAINTEXT, SSL or SASL_SSL) is the
node's security.protocol (Freshet has one protocol for every port).

Imports: standard library, freshet.server.errors. Thread-safety: pure functions over their inputs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from freshet.server.errors import NodeConfigError

#: The listener name that carries Freshet's gRPC port in `listeners` / `advertised.listeners`.
FRESHET_LISTENER = "FRESHET"
#: Kafka's default of controller.listener.names in its KRaft example configurations.
DEFAULT_CONTROLLER_LISTENER = "CONTROLLER"
#: Kafka's default listener.security.protocol.map (names not in it must be mapped explicitly).
DEFAULT_PROTOCOL_MAP = {"PLAINTEXT": "PLAINTEXT", "SSL": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL"}

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_SEPARATORS = "=: \t\f"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One `key = value` of a properties file; `line` is where its logical line starts (1-based)."""

    key: str
    value: str
    line: int


def _unescape(text: str, line: int) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out.append(char if char != "\\" else "")
            index += 1
            continue
        escaped = text[index + 1]
        if escaped == "u":
            digits = text[index + 2 : index + 6]
            if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"line {line}: malformed \\uxxxx escape {text[index : index + 6]!r}")
            out.append(chr(int(digits, 16)))
            index += 6
            continue
        out.append(_ESCAPES.get(escaped, escaped))
        index += 2
    return "".join(out)


def _logical_lines(text: str) -> list[tuple[str, int]]:
    """(logical line, first line number): continuations joined, comments and blank lines dropped."""
    natural = re.split(r"\r\n|\r|\n", text)
    result: list[tuple[str, int]] = []
    index = 0
    while index < len(natural):
        start = index
        line = natural[index].lstrip(" \t\f")
        index += 1
        if not line or line[0] in "#!":
            continue
        parts = []
        while True:
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 0 or index == len(natural):
                parts.append(line[:-1] if trailing % 2 else line)
                break
            parts.append(line[:-1])
            line = natural[index].lstrip(" \t\f")
            index += 1
        result.append(("".join(parts), start + 1))
    return result


def parse_properties(text: str) -> list[Entry]:
    """The entries of a java.util.Properties file, in file order (duplicates kept: the caller
    takes the last, as Properties.load does).

    Raises:
        ValueError: a malformed \\uXXXX escape ("line N: ...").
    """
    entries: list[Entry] = []
    for logical, line in _logical_lines(text):
        index = 0
        while index < len(logical) and logical[index] not in _SEPARATORS:
            index += 2 if logical[index] == "\\" else 1
        key_end = min(index, len(logical))
        while index < len(logical) and logical[index] in " \t\f":
            index += 1
        if index < len(logical) and logical[index] in "=:":
            index += 1
            while index < len(logical) and logical[index] in " \t\f":
                index += 1
        entries.append(Entry(_unescape(logical[:key_end], line), _unescape(logical[index:], line), line))
    return entries


# -- the mapping tables -------------------------------------------------------------------------

#: Kafka's name -> Freshet's node or broker key (same meaning and values).
KAFKA_RENAMED: Mapping[str, str] = {
    "node.id": "node.id",
    "broker.id": "node.id",
    "process.roles": "roles",
    "controller.quorum.voters": "controller.quorum",
    "broker.rack": "rack",
}

#: Kafka's broker-level topic defaults -> Freshet topic keys (become cluster-wide topic defaults).
KAFKA_TOPIC_DEFAULTS: Mapping[str, str] = {
    "log.retention.bytes": "retention.bytes",
    "log.segment.bytes": "segment.bytes",
    "log.cleanup.policy": "cleanup.policy",
    "min.insync.replicas": "min.insync.replicas",
    "message.max.bytes": "max.message.bytes",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    "compression.type": "compression.type",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
}

#: Freshet topic key -> Kafka's keys for it in one unit each, finest first (the first given wins).
KAFKA_TIME_KEYS: Mapping[str, tuple[tuple[str, int], ...]] = {
    "retention.ms": (("log.retention.ms", 1), ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)),
    "segment.ms": (("log.roll.ms", 1), ("log.roll.hours", 3_600_000)),
}

_THREADS = "Freshet sizes its own threads and asyncio loop"
_RAFT = "the metadata quorum's timing is pysyncobj's (README, Metadata quorum)"
_REPLICATION = "followers fetch over one gRPC stream per leader broker"
#: Kafka broker settings under an ignored prefix that Freshet honours (broker keys, same meaning).
KAFKA_HONOURED = frozenset({"socket.send.buffer.bytes"})
#: Kafka settings Freshet knows and does not use: accepted with one warning line each.
KAFKA_IGNORED: Mapping[str, str] = {
    "num.network.threads": _THREADS,
    "num.io.threads": _THREADS,
    "background.threads": _THREADS,
    "queued.max.requests": _THREADS,
    "num.recovery.threads.per.data.dir": "logs are opened and recovered by 8 threads per node",
    "num.replica.fetchers": _REPLICATION,
    "replica.fetch.": _REPLICATION,
    "replica.socket.": _REPLICATION,
    "replica.high.watermark.checkpoint.interval.ms": "the high watermark is checkpointed every 5 s",
    "socket.": "Freshet uses the operating system's socket buffers and gRPC's message limits "
               "(socket.send.buffer.bytes sets the Kafka listener's)",
    "zookeeper.": "Freshet runs its own Raft quorum (controller.quorum.voters), never ZooKeeper",
    "transaction.state.log.": "Freshet has no transactions yet",
    "transactional.id.": "Freshet has no transactions yet",
    "log.flush.": "Freshet flushes on its own schedule; log.flush.interval.messages / .ms map to flush.messages / flush.ms",
    "log.cleaner.threads": "one compaction cleaner thread per node",
    "log.cleaner.dedupe.buffer.size": "the cleaner bounds its key map by count, not bytes",
    "log.cleaner.io.": "the cleaner is not throttled",
    "log.cleaner.backoff.ms": "the cleaner's backoff is fixed (15 s)",
    "log.preallocate": "segments are not preallocated",
    "log.segment.delete.delay.ms": "segments are deleted at once",
    "metadata.log.dir": "metadata lives in <log.dirs>/metadata",
    "metadata.log.": _RAFT,
    "metadata.max.": _RAFT,
    "controller.quorum.": _RAFT,
    "delete.topic.enable": "topics can always be deleted (with the Delete right when security is on)",
    "inter.broker.listener.name": "brokers talk to each other on the FRESHET listener",
    "security.inter.broker.protocol": "brokers talk to each other on the FRESHET listener, with the node's security.protocol",
    "sasl.mechanism.inter.broker.protocol": "brokers authenticate to each other with their TLS certificates",
    "sasl.mechanism.controller.protocol": "controllers authenticate with the cluster secret",
    "authorizer.class.name": "ACLs are enforced whenever security.protocol is SSL or SASL_SSL",
    "ssl.endpoint.identification.algorithm": "clients always verify the broker's host name",
    "ssl.enabled.protocols": "TLS 1.2 and 1.3 are enabled",
    "ssl.protocol": "TLS 1.2 and 1.3 are enabled",
    "ssl.cipher.suites": "the TLS library's default cipher suites are used",
    "ssl.keystore.password": "PEM key files are not encrypted",
    "ssl.truststore.password": "PEM trust files are not encrypted",
    "offsets.commit.": "offset commits follow the topic's acks=all",
    "offsets.load.buffer.size": "the coordinator reads __consumer_offsets in fetch-sized chunks",
    "producer.id.expiration.ms": "idempotent producer state expires with the log",
    "log.message.format.version": "Freshet writes record batch format v2 only",
    "inter.broker.protocol.version": "Freshet nodes speak one protocol version",
    "auto.include.jmx.reporter": "metrics are served on /metrics (Prometheus)",
    "metric.reporters": "metrics are served on /metrics (Prometheus)",
    "share.": "Freshet has no share groups (KIP-932)",
    "remote.log.": "Freshet has no tiered storage: every segment stays in log.dirs",
    "log.local.retention.": "Freshet has no tiered storage: retention.ms / retention.bytes apply",
}

#: Keys read by the special-case functions below (listeners, log directories, key stores).
_LISTENER_KEYS = ("listeners", "advertised.listeners", "listener.security.protocol.map", "controller.listener.names")
_LOG_DIR_KEYS = ("log.dirs", "log.dir")
_STORE_KEYS = (
    "ssl.keystore.type", "ssl.keystore.location", "ssl.truststore.type", "ssl.truststore.location",
    "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.certificates", "ssl.key.password",
)


def ignored_reason(key: str) -> str | None:
    """Why Kafka's `key` has no effect in Freshet (KAFKA_IGNORED; a key ending in "." is a prefix),
    or None when it is not an ignored key."""
    if key in KAFKA_IGNORED:
        return KAFKA_IGNORED[key]
    if key in KAFKA_HONOURED:
        return None
    for prefix, reason in KAFKA_IGNORED.items():
        if prefix.endswith(".") and key.startswith(prefix):
            return reason
    return None


@dataclasses.dataclass(frozen=True)
class MappedProperties:
    """A server.properties file in Freshet's keys. Thread-safe (immutable after construction).

    Attributes:
        values: (Freshet node or broker key, value, origin) in file order; origin names the file,
            the line and, when it differs, Kafka's key ("server.properties line 7, Kafka's log.dirs").
            Keys no table knows pass through under their own name (the caller refuses unknown ones).
        topic_defaults: Freshet topic key -> (value, origin): the cluster-wide topic defaults.
        warnings: one line per ignored Kafka setting.
    """

    values: list[tuple[str, str, str]]
    topic_defaults: dict[str, tuple[str, str]]
    warnings: list[str]


class _Mapper:
    """Builds one MappedProperties (the last entry of a key wins, as Properties.load). Not thread-safe."""

    def __init__(self, entries: Sequence[Entry], path: str) -> None:
        self.path = path
        self.last: dict[str, Entry] = {}
        for entry in entries:
            self.last.pop(entry.key, None)          # keep file order of the winning entries
            self.last[entry.key] = entry
        self.values: dict[str, tuple[str, str, Entry]] = {}
        self.topic_defaults: dict[str, tuple[str, str]] = {}
        self.warnings: list[str] = []

    def where(self, entry: Entry) -> str:
        return f"{entry.key} (in {self.path} line {entry.line})"

    def origin(self, key: str, entry: Entry) -> str:
        origin = f"{self.path} line {entry.line}"
        return origin if key == entry.key else f"{origin}, Kafka's {entry.key}"

    def put(self, key: str, value: str, entry: Entry) -> None:
        """Set a node or broker key; two different values from two spellings are refused."""
        previous = self.values.get(key)
        if previous is not None and previous[0] != value:
            other = previous[2]
            raise NodeConfigError(
                self.where(entry), f"{value!r} disagrees with {other.key} = {previous[0]!r} (line {other.line})"
            )
        self.values[key] = (value, self.origin(key, entry), entry)

    def put_topic(self, key: str, value: str, entry: Entry) -> None:
        self.topic_defaults[key] = (value, self.origin(key, entry))

    def result(self) -> MappedProperties:
        values = [(key, value, origin) for key, (value, origin, _entry) in self.values.items()]
        return MappedProperties(values, self.topic_defaults, self.warnings)


def map_kafka_properties(entries: Sequence[Entry], path: str) -> MappedProperties:
    """Kafka's broker settings in Freshet's keys (module docstring).

    Raises:
        NodeConfigError: a setting Freshet cannot honour (two log directories, a JKS key store, a
            SASL_PLAINTEXT listener, ...), naming Kafka's key, the file and the line.
    """
    mapper = _Mapper(entries, path)
    _map_listeners(mapper)
    _map_log_dirs(mapper)
    _map_stores(mapper)
    _map_times(mapper)
    handled = set(_LISTENER_KEYS) | set(_LOG_DIR_KEYS) | set(_STORE_KEYS)
    handled |= {kafka_key for spellings in KAFKA_TIME_KEYS.values() for kafka_key, _unit in spellings}
    for key, entry in mapper.last.items():
        if key in handled:
            continue
        if key in KAFKA_RENAMED:
            mapper.put(KAFKA_RENAMED[key], entry.value, entry)
        elif key in KAFKA_TOPIC_DEFAULTS:
            mapper.put_topic(KAFKA_TOPIC_DEFAULTS[key], entry.value, entry)
        elif key == "controller.quorum.bootstrap.servers":
            raise NodeConfigError(
                mapper.where(entry), "dynamic quorums are not supported: list the voters in controller.quorum.voters"
            )
        elif (reason := ignored_reason(key)) is not None:
            mapper.warnings.append(f"ignoring Kafka setting {key} ({path} line {entry.line}): {reason}")
        else:
            mapper.put(key, entry.value, entry)
    return mapper.result()


def _listener_list(mapper: _Mapper, entry: Entry) -> dict[str, str]:
    """NAME://HOST:PORT,... -> {NAME: "HOST:PORT"} (an empty host binds every interface)."""
    result: dict[str, str] = {}
    for part in (part.strip() for part in entry.value.split(",")):
        if not part:
            continue
        name, separator, address = part.partition("://")
        host, colon, port = address.rpartition(":")
        if not separator or not name or not colon:
            raise NodeConfigError(mapper.where(entry), f"{part!r} is not NAME://HOST:PORT")
        if name.upper() in result:
            raise NodeConfigError(mapper.where(entry), f"listener {name.upper()} appears twice")
        result[name.upper()] = f"{host or '0.0.0.0'}:{port}"
    return result


def _names(entry: Entry | None, default: set[str]) -> set[str]:
    if entry is None:
        return default
    return {name.strip().upper() for name in entry.value.split(",") if name.strip()}


def _protocol_map(mapper: _Mapper) -> dict[str, str]:
    return {**DEFAULT_PROTOCOL_MAP, **_explicit_protocols(mapper)}


def _explicit_protocols(mapper: _Mapper) -> dict[str, str]:
    """listener.security.protocol.map as given ({} when absent)."""
    protocols: dict[str, str] = {}
    entry = mapper.last.get("listener.security.protocol.map")
    if entry is not None:
        for part in (part.strip() for part in entry.value.split(",")):
            name, colon, protocol = part.partition(":")
            if part and (not colon or not name.strip() or not protocol.strip()):
                raise NodeConfigError(mapper.where(entry), f"{part!r} is not NAME:PROTOCOL")
            if part:
                protocols[name.strip().upper()] = protocol.strip().upper()
    return protocols


def _map_listeners(mapper: _Mapper) -> None:
    """listeners and advertised.listeners -> listen, raft.listen, kafka.listen, advertised,
    kafka.advertised and security.protocol (module docstring)."""
    entry = mapper.last.get("listeners")
    advertised_entry = mapper.last.get("advertised.listeners")
    if entry is None:
        if advertised_entry is not None:
            raise NodeConfigError(mapper.where(advertised_entry), "needs listeners (where each listener binds)")
        return
    listeners = _listener_list(mapper, entry)
    controller_names = _names(mapper.last.get("controller.listener.names"), {DEFAULT_CONTROLLER_LISTENER})
    raft = [name for name in listeners if name in controller_names]
    kafka = [name for name in listeners if name not in controller_names and name != FRESHET_LISTENER]
    if len(raft) > 1 or len(kafka) > 1:
        several = raft if len(raft) > 1 else kafka
        raise NodeConfigError(
            mapper.where(entry), f"a Freshet node has one {'controller' if several is raft else 'Kafka'} listener, not {', '.join(several)}"
        )
    if raft:
        mapper.put("raft.listen", listeners[raft[0]], entry)
    if FRESHET_LISTENER in listeners:
        mapper.put("listen", listeners[FRESHET_LISTENER], entry)
    if kafka:
        mapper.put("kafka.listen", listeners[kafka[0]], entry)
        _map_protocol(mapper, kafka[0], entry)
    elif FRESHET_LISTENER in _explicit_protocols(mapper):
        map_entry = mapper.last["listener.security.protocol.map"]
        mapper.put("security.protocol", _explicit_protocols(mapper)[FRESHET_LISTENER], map_entry)
    if advertised_entry is None:
        return
    for name, address in _listener_list(mapper, advertised_entry).items():
        if name == FRESHET_LISTENER and FRESHET_LISTENER in listeners:
            mapper.put("advertised", address, advertised_entry)
        elif name in kafka:
            mapper.put("kafka.advertised", address, advertised_entry)
        elif name in raft:
            mapper.warnings.append(
                f"ignoring controller listener {name} in advertised.listeners ({mapper.path} line "
                f"{advertised_entry.line}): voters reach each other at their controller.quorum.voters addresses"
            )
        else:
            raise NodeConfigError(mapper.where(advertised_entry), f"listener {name} is not in listeners")


def _map_protocol(mapper: _Mapper, kafka_name: str, listeners_entry: Entry) -> None:
    """The Kafka listener's protocol -> security.protocol (the FRESHET listener must agree)."""
    protocols = _protocol_map(mapper)
    map_entry = mapper.last.get("listener.security.protocol.map") or listeners_entry
    protocol = protocols.get(kafka_name)
    if protocol is None:
        raise NodeConfigError(
            mapper.where(map_entry),
            f"listener {kafka_name} has no security protocol: add {kafka_name}:PLAINTEXT (or SSL, SASL_SSL) "
            "to listener.security.protocol.map",
        )
    if protocol == "SASL_PLAINTEXT":
        raise NodeConfigError(
            mapper.where(map_entry), f"listener {kafka_name} is SASL_PLAINTEXT: Freshet authenticates only over TLS (use SASL_SSL)"
        )
    freshet_protocol = protocols.get(FRESHET_LISTENER, protocol)
    if freshet_protocol != protocol:
        raise NodeConfigError(
            mapper.where(map_entry),
            f"FRESHET is {freshet_protocol} but {kafka_name} is {protocol}: a Freshet node has one security protocol on every port",
        )
    mapper.put("security.protocol", protocol, map_entry)


def _map_log_dirs(mapper: _Mapper) -> None:
    """log.dirs (else log.dir) -> data.dir: exactly one directory."""
    entry = mapper.last.get("log.dirs") or mapper.last.get("log.dir")
    if entry is None:
        return
    directories = [part.strip() for part in entry.value.split(",") if part.strip()]
    if len(directories) != 1:
        given = f"{len(directories)}: {', '.join(directories)}" if directories else "none"
        raise NodeConfigError(
            mapper.where(entry), f"Freshet keeps every log of a node in one directory; give exactly one (got {given})"
        )
    mapper.put("data.dir", directories[0], entry)


def _map_stores(mapper: _Mapper) -> None:
    """ssl.keystore.* / ssl.truststore.* -> ssl.certificate.location, ssl.key.location,
    ssl.ca.location: PEM files only."""
    for key in ("ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.certificates"):
        if key in mapper.last:
            raise NodeConfigError(
                mapper.where(mapper.last[key]),
                "PEM given inline is not supported: put it in a file and set ssl.keystore.location "
                "(ssl.keystore.type=PEM) / ssl.truststore.location (ssl.truststore.type=PEM)",
            )
    password = mapper.last.get("ssl.key.password")
    if password is not None and password.value:
        raise NodeConfigError(
            mapper.where(password), "encrypted private keys are not supported: decrypt it (openssl pkey -in KEY -out PLAIN)"
        )
    for store, targets in (
        ("keystore", ("ssl.certificate.location", "ssl.key.location")),
        ("truststore", ("ssl.ca.location",)),
    ):
        location = mapper.last.get(f"ssl.{store}.location")
        if location is None:
            continue
        type_entry = mapper.last.get(f"ssl.{store}.type")
        store_type = type_entry.value.strip().upper() if type_entry is not None else "JKS"
        if store_type != "PEM":
            raise NodeConfigError(
                mapper.where(location),
                f"a {store_type} {store} is not supported: convert it to PEM and set ssl.{store}.type=PEM "
                f"(or Freshet's {' and '.join(targets)})",
            )
        for target in targets:
            mapper.put(target, location.value, location)


def _map_times(mapper: _Mapper) -> None:
    """log.retention.ms|minutes|hours and log.roll.ms|hours -> retention.ms / segment.ms (the finest
    unit given wins; a negative retention is -1, unlimited, as Kafka)."""
    for target, spellings in KAFKA_TIME_KEYS.items():
        for kafka_key, unit_ms in spellings:
            entry = mapper.last.get(kafka_key)
            if entry is None:
                continue
            try:
                amount = int(entry.value.strip(), 10)
            except ValueError:
                raise NodeConfigError(mapper.where(entry), f"{entry.value!r} is not an integer") from None
            mapper.put_topic(target, str(-1 if amount < 0 else amount * unit_ms), entry)
            break
