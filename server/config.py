"""The node's configuration: one NodeConfig from flags, `--set key=value`, a config file and defaults.

Owns every setting of `freshet server start`, its parsing, precedence and validation:

- Precedence: flags > `--set` > the `--config FILE` file > defaults. The cluster secret also
  reads FRESHET_CLUSTER_SECRET, between `--set` and the file (a Kubernetes Secret in the
  environment overrides a ConfigMap file); `--cluster-secret-file PATH` is a flag.
- The file is TOML, or Kafka's server.properties (extension `.properties`, or text that is not
  TOML): freshet.server.properties parses it and maps Kafka's names; each of its keys is a layer of
  its own so that an error names the file and the line. Its topic defaults (Kafka's
  log.retention.ms, ...) become NodeConfig.topic_defaults, which the active controller writes as
  cluster-wide configs; its ignored Kafka keys become NodeConfig.config_warnings.
- Keys are dotted names. In the TOML file nested tables are flattened (`[broker.session]
  timeout.ms = 3000` is `broker.session.timeout.ms`); lists of strings are joined with ",".
- Node keys (this module): node.id, data.dir, listen, controller.quorum, raft.listen, http.listen,
  advertised, kafka.listen, kafka.advertised, roles, rack, controller.listeners, cluster.secret, cluster.secret.file,
  broker.reconnect.grace.ms, controlled.shutdown.timeout.ms, shutdown.timeout.ms,
  request.timeout.ms, metadata.fsync, log.level, log.cleaner.enable, log.open.files.max; security (README, Security): security.protocol
  (PLAINTEXT | SSL | SASL_SSL, every port of the node), ssl.certificate.location,
  ssl.key.location, ssl.ca.location, ssl.client.auth (none | requested | required),
  http.metrics.plaintext.listen (an opt-in plaintext listener serving only /metrics, /healthz and
  /readyz when TLS is on), super.users, allow.everyone.if.no.acl.found, sasl.enabled.mechanisms,
  security.bootstrap.user, security.bootstrap.password.file (read at load time; the password is
  kept out of repr and never logged).
- Broker keys (freshet.metadata.configs, broker and cluster scope): the node's static values, the
  layer between the schema default and the dynamic values stored in metadata (Kafka's order:
  default < static < dynamic cluster < dynamic broker). Topic keys are refused here: topic
  defaults are cluster-wide dynamic configs (`freshet config --cluster`).
- Controller endpoints: a controller's gRPC endpoint is its Raft host with port RAFTPORT-1 unless
  `controller.listeners` says otherwise (true for `cluster up` and the Kubernetes layout).
- Cluster secret: required for the controller role (the Raft password); when none is given and
  the Raft listener is a loopback address, one is derived from the quorum string (logged as a
  WARNING: it is not secret); on any other address the node refuses to start.

Unknown keys and bad values raise NodeConfigError naming the key (the CLI exits 2 with one line).
`NodeConfig.validate()` checks the relationships between settings (heartbeat interval < session
timeout, ports distinct, node id among the voters for the controller role, ...).

Imports: standard library, freshet.metadata (configs, image), freshet.server (errors, properties),
freshet.server.security.tls (TlsSettings and the check that the TLS files load).
Thread-safety: NodeConfig is immutable; functions are pure (they read files and the environment
they are given).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from freshet.metadata import configs
from freshet.metadata.errors import InvalidConfigError
from freshet.metadata.image import MetadataImage
from freshet.metadata.security import parse_super_users, user_name_problem
from freshet.server import properties
from freshet.server.errors import NodeConfigError
from freshet.server.security.tls import CLIENT_AUTH_REQUESTED, CLIENT_AUTH_VALUES, TlsSettings, check_files

SECRET_ENV = "FRESHET_CLUSTER_SECRET"
ROLE_BROKER = "broker"
ROLE_CONTROLLER = "controller"
ROLES = (ROLE_BROKER, ROLE_CONTROLLER)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The registered listener name of the Kafka protocol endpoint (BrokerRegistration.listeners).
KAFKA_LISTENER = "kafka"
PROTOCOL_PLAINTEXT = "PLAINTEXT"
PROTOCOL_SSL = "SSL"
PROTOCOL_SASL_SSL = "SASL_SSL"
SECURITY_PROTOCOLS = (PROTOCOL_PLAINTEXT, PROTOCOL_SSL, PROTOCOL_SASL_SSL)
SSL_FILE_KEYS = ("ssl.certificate.location", "ssl.key.location", "ssl.ca.location")

# Flag spelling of each node key, for messages ("--node-id" rather than "node.id").
FLAG_NAMES = {
    "node.id": "--node-id",
    "data.dir": "--data-dir",
    "listen": "--listen",
    "controller.quorum": "--controller-quorum",
    "raft.listen": "--raft-listen",
    "http.listen": "--http-listen",
    "advertised": "--advertised",
    "kafka.listen": "--kafka-listen",
    "kafka.advertised": "--kafka-advertised",
    "roles": "--roles",
    "rack": "--rack",
    "controller.listeners": "--controller-listeners",
    "cluster.secret.file": "--cluster-secret-file",
}

# Where a required key comes from in Kafka's server.properties, for the "is required" message.
_PROPERTIES_HINTS = {
    "node.id": "; node.id in server.properties",
    "data.dir": "; log.dirs in server.properties",
    "listen": f"; a {properties.FRESHET_LISTENER}://HOST:PORT entry of listeners in server.properties",
    "controller.quorum": "; controller.quorum.voters in server.properties",
}


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class HostPort:
    """A host and port. Thread-safe (immutable)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::", "")


def parse_host_port(text: str) -> HostPort:
    """"host:port" or "[v6]:port" (port 1..65535). Raises ValueError naming the problem."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [HOST]:PORT")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or not host:
            raise ValueError(f"{text!r} is not HOST:PORT")
        if ":" in host:
            raise ValueError(f"{text!r}: write IPv6 hosts in brackets, [HOST]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number in 1..65535")
    return HostPort(host, int(port_text))


def parse_node_addresses(text: str) -> dict[int, HostPort]:
    """"1@host:port,2@host:port" -> {1: HostPort, 2: ...}. Raises ValueError."""
    result: dict[int, HostPort] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        node, at, address = item.partition("@")
        if not at or not node.strip().isdigit():
            raise ValueError(f"{item!r} is not ID@HOST:PORT")
        node_id = int(node)
        if node_id in result:
            raise ValueError(f"node {node_id} is listed twice")
        result[node_id] = parse_host_port(address)
    if not result:
        raise ValueError("no ID@HOST:PORT entries")
    return result


def format_node_addresses(addresses: Mapping[int, HostPort]) -> str:
    return ",".join(f"{node_id}@{address}" for node_id, address in sorted(addresses.items()))


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, not {value}")
        return value

    return parse


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{text!r} is not true or false")
    return lowered == "true"


def _roles(text: str) -> frozenset[str]:
    roles = {part.strip() for part in str(text).split(",") if part.strip()}
    unknown = sorted(roles - set(ROLES))
    if unknown or not roles:
        raise ValueError(f"{text!r}: roles are a comma-separated subset of {', '.join(ROLES)}")
    return frozenset(roles)


def _non_empty(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not str(text):
            raise ValueError("must not be empty")
        if len(str(text)) > limit:
            raise ValueError(f"longer than {limit} characters")
        return str(text)

    return parse


def _rack(text: str) -> str:
    if len(str(text)) > 255:
        raise ValueError("longer than 255 characters")
    return str(text)


#: SASL mechanisms a node can enable (sasl.enabled.mechanisms).
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


def _security_protocol(text: str) -> str:
    protocol = str(text).strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(f"{text!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
    return protocol


def _client_auth(text: str) -> str:
    value = str(text).strip().lower()
    if value not in CLIENT_AUTH_VALUES:
        raise ValueError(f"{text!r} is not one of {', '.join(CLIENT_AUTH_VALUES)}")
    return value


def _super_users(text: str) -> frozenset[str]:
    return parse_super_users(str(text))


def _sasl_mechanisms(text: str) -> tuple[str, ...]:
    mechanisms = tuple(dict.fromkeys(part.strip().upper() for part in str(text).split(",") if part.strip()))
    unknown = [m for m in mechanisms if m not in SASL_MECHANISMS]
    if unknown or not mechanisms:
        raise ValueError(f"{text!r}: a comma-separated subset of {', '.join(SASL_MECHANISMS)}")
    return mechanisms


def _user_name(text: str) -> str:
    problem = user_name_problem(str(text))
    if problem is not None:
        raise ValueError(problem)
    return str(text)


def _log_level(text: str) -> str:
    level = str(text).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


NODE_KEYS: Mapping[str, Callable[[str], Any]] = {
    "node.id": _int(0),
    "data.dir": _non_empty(4096),
    "listen": parse_host_port,
    "controller.quorum": parse_node_addresses,
    "raft.listen": parse_host_port,
    "http.listen": parse_host_port,
    "advertised": parse_host_port,
    "kafka.listen": parse_host_port,
    "kafka.advertised": parse_host_port,
    "roles": _roles,
    "rack": _rack,
    "controller.listeners": parse_node_addresses,
    "cluster.secret": _non_empty(4096),
    "cluster.secret.file": _non_empty(4096),
    "broker.reconnect.grace.ms": _int(1),
    "controlled.shutdown.timeout.ms": _int(0),
    "shutdown.timeout.ms": _int(1000),
    "request.timeout.ms": _int(1),
    "metadata.fsync": _bool,
    "log.level": _log_level,
    "security.protocol": _security_protocol,
    "ssl.certificate.location": _non_empty(4096),
    "ssl.key.location": _non_empty(4096),
    "ssl.ca.location": _non_empty(4096),
    "ssl.client.auth": _client_auth,
    "http.metrics.plaintext.listen": parse_host_port,
    "super.users": _super_users,
    "allow.everyone.if.no.acl.found": _bool,
    "sasl.enabled.mechanisms": _sasl_mechanisms,
    "security.bootstrap.user": _user_name,
    "security.bootstrap.password.file": _non_empty(4096),
    "log.cleaner.enable": _bool,
    "log.open.files.max": _int(0),
}

NODE_DEFAULTS: Mapping[str, str] = {
    "roles": "broker,controller",
    "rack": "",
    "broker.reconnect.grace.ms": "1000",
    "controlled.shutdown.timeout.ms": "10000",
    "shutdown.timeout.ms": "20000",
    "request.timeout.ms": "30000",
    "metadata.fsync": "true",
    "log.level": "INFO",
    "security.protocol": PROTOCOL_PLAINTEXT,
    "ssl.client.auth": CLIENT_AUTH_REQUESTED,
    "super.users": "",
    "allow.everyone.if.no.acl.found": "false",
    "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
    "log.cleaner.enable": "true",
    "log.open.files.max": "0",
}


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Everything `freshet server start` runs with. Thread-safe (immutable).

    Attributes:
        node_id: this node's id (unique across the cluster).
        data_dir: the node's directory: `logs/` (partition logs) and `metadata/` (Raft voter).
        listen: where the gRPC server binds.
        advertised: where other nodes and clients reach it (default: listen).
        controller_quorum: voter id -> Raft address.
        controller_listeners: voter id -> gRPC endpoint (default: Raft host, Raft port - 1).
        raft_listen: where this node's voter binds (controller role; default: its quorum entry).
        http_listen: HTTP (/metrics /healthz /readyz /status); default: listen port + 2.
        roles: {"broker"}, {"controller"} or both.
        rack: the broker's rack ("" none).
        cluster_secret: the Raft password (None for broker-only nodes).
        cluster_secret_source: where it came from ("env", "file", "--set", "config file", "derived").
        broker_configs: static broker-scope values (validated strings).
        reconnect_grace_ms: controller: a broker whose stream broke has this long to reconnect.
        controlled_shutdown_timeout_ms: how long a stopping broker waits for the controller to move
            its leaderships before it stops anyway.
        shutdown_timeout_ms: bound on the whole shutdown; the process exits when it passes.
        request_timeout_ms: default deadline of forwarded admin requests.
        metadata_fsync: fsync the metadata journal (see README, Metadata quorum).
        log_level: DEBUG, INFO, WARNING or ERROR.
        kafka_listen: where the Kafka protocol listener binds (None: no Kafka listener).
        kafka_advertised: where Kafka clients reach it (default: kafka_listen).
        security_protocol: PLAINTEXT, SSL or SASL_SSL (every port of the node).
        tls: the TLS files and client-auth setting (None with PLAINTEXT).
        http_metrics_plaintext_listen: the opt-in plaintext /metrics listener (None: none).
        super_users: principals that may do everything (super.users, "User:a;User:b").
        allow_everyone_if_no_acl_found: Kafka's allow.everyone.if.no.acl.found.
        sasl_enabled_mechanisms: the SASL mechanisms clients may use, in preference order.
        bootstrap_user: the user the active controller creates when it does not exist (or None).
        bootstrap_password: that user's password, read from security.bootstrap.password.file
            (never in repr or logs).
        log_cleaner_enable: run the compaction cleaner (Kafka's log.cleaner.enable).
        log_open_files_max: segment files held open at once (storage/open_files.py); 0 derives it
            from the descriptor limit (the limit less min(4096, half of it)).
        topic_defaults: cluster-wide topic defaults from a server.properties file (Kafka's
            log.retention.ms, ...): the active controller writes each one the cluster has no value
            for yet (README, Kafka's server.properties).
        config_warnings: one line per Kafka setting of the file that has no effect.
    """

    node_id: int
    data_dir: str
    listen: HostPort
    advertised: HostPort
    controller_quorum: Mapping[int, HostPort]
    controller_listeners: Mapping[int, HostPort]
    raft_listen: HostPort | None
    http_listen: HostPort
    roles: frozenset[str]
    rack: str
    cluster_secret: str | None
    cluster_secret_source: str
    broker_configs: Mapping[str, str]
    reconnect_grace_ms: int
    controlled_shutdown_timeout_ms: int
    shutdown_timeout_ms: int
    request_timeout_ms: int
    metadata_fsync: bool
    log_level: str
    kafka_listen: HostPort | None = None
    kafka_advertised: HostPort | None = None
    security_protocol: str = PROTOCOL_PLAINTEXT
    tls: TlsSettings | None = None
    http_metrics_plaintext_listen: HostPort | None = None
    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False
    sasl_enabled_mechanisms: tuple[str, ...] = SASL_MECHANISMS
    bootstrap_user: str | None = None
    bootstrap_password: str | None = dataclasses.field(default=None, repr=False)
    log_cleaner_enable: bool = True
    log_open_files_max: int = 0
    topic_defaults: Mapping[str, str] = dataclasses.field(default_factory=dict)
    config_warnings: tuple[str, ...] = ()

    @property
    def is_tls(self) -> bool:
        """TLS on every port (SSL or SASL_SSL)."""
        return self.security_protocol != PROTOCOL_PLAINTEXT

    @property
    def is_secure(self) -> bool:
        """Whether security is on (SSL or SASL_SSL): TLS, and authorization enforced."""
        return self.security_protocol != PROTOCOL_PLAINTEXT

    @property
    def is_sasl(self) -> bool:
        """Whether clients must authenticate (SASL_SSL)."""
        return self.security_protocol == PROTOCOL_SASL_SSL

    @property
    def listeners(self) -> tuple[tuple[str, str, int], ...]:
        """The further listeners this broker registers (name, advertised host, port), by name."""
        if self.kafka_advertised is None:
            return ()
        return ((KAFKA_LISTENER, self.kafka_advertised.host, self.kafka_advertised.port),)

    @property
    def is_broker(self) -> bool:
        return ROLE_BROKER in self.roles

    @property
    def is_controller(self) -> bool:
        return ROLE_CONTROLLER in self.roles

    @property
    def static_broker_config(self) -> configs.BrokerConfig:
        """Schema defaults overlaid with this node's static values (no dynamic values)."""
        return configs.broker_config(self.broker_configs, {})

    def effective_broker_config(self, image: MetadataImage) -> configs.BrokerConfig:
        """This broker's effective config in `image`: defaults < static values (flags, --set) <
        dynamic cluster values < this broker's dynamic values."""
        layered = dict(self.broker_configs)
        layered.update(image.cluster_configs)
        return configs.broker_config(layered, image.broker_configs.get(self.node_id, {}))

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.data_dir, "logs")

    @property
    def metadata_dir(self) -> str:
        return os.path.join(self.data_dir, "metadata")

    def validate(self) -> None:
        """Check the relationships between settings.

        Raises:
            NodeConfigError: naming the key whose value breaks a relationship.
        """
        # One concern at a time, in this order: the first broken relationship is the one named.
        self._validate_quorum()
        self._validate_endpoints()
        self._validate_timeouts()

    def _validate_quorum(self) -> None:
        """The metadata quorum, this node's place in it, and the controllers' gRPC endpoints."""
        quorum = self.controller_quorum
        if len(quorum) % 2 == 0:
            raise NodeConfigError(
                "controller.quorum", f"{len(quorum)} voters: the metadata quorum needs an odd number (1, 3 or 5)"
            )
        if len(set(quorum.values())) != len(quorum):
            raise NodeConfigError("controller.quorum", "two voters share an address")
        if self.is_controller and self.node_id not in quorum:
            raise NodeConfigError(
                "node.id",
                f"node {self.node_id} runs the controller role but is not in controller.quorum "
                f"({format_node_addresses(quorum)})",
            )
        if not self.is_controller and self.node_id in quorum:
            raise NodeConfigError(
                "node.id",
                f"node {self.node_id} is a voter in controller.quorum; a node without the controller role "
                f"needs an id of its own",
            )
        missing = sorted(set(quorum) - set(self.controller_listeners))
        if missing:
            raise NodeConfigError("controller.listeners", f"no gRPC endpoint for controller {missing[0]}")
        if self.is_controller:
            own = self.controller_listeners[self.node_id]
            if own.port != self.advertised.port:
                raise NodeConfigError(
                    "controller.listeners",
                    f"controller {self.node_id} is reached at {own} (its Raft port - 1 unless "
                    f"--controller-listeners says otherwise), but it listens on {self.listen} "
                    f"(advertised {self.advertised}): make them agree",
                )
            assert self.raft_listen is not None
            assert self.cluster_secret, "the controller role always has a secret (load_node_config)"

    def _validate_endpoints(self) -> None:
        """Which listeners this node may have, and that no two of them share a port."""
        endpoints = [("listen", self.listen), ("http.listen", self.http_listen)]
        if self.kafka_listen is not None:
            if not self.is_broker:
                raise NodeConfigError("kafka.listen", "only a node with the broker role serves the Kafka protocol")
            endpoints.append(("kafka.listen", self.kafka_listen))
        if self.raft_listen is not None:
            endpoints.append(("raft.listen", self.raft_listen))
        if self.http_metrics_plaintext_listen is not None:
            if not self.is_tls:
                raise NodeConfigError(
                    "http.metrics.plaintext.listen",
                    "only with security.protocol SSL or SASL_SSL (with PLAINTEXT, http.listen serves /metrics already)",
                )
            endpoints.append(("http.metrics.plaintext.listen", self.http_metrics_plaintext_listen))
        assert self.is_tls == (self.tls is not None)
        for index, (name, endpoint) in enumerate(endpoints):
            for other_name, other in endpoints[:index]:
                if endpoint.port == other.port and (
                    endpoint.host == other.host or endpoint.is_wildcard or other.is_wildcard
                ):
                    raise NodeConfigError(name, f"{endpoint} is also {other_name}")

    def _validate_timeouts(self) -> None:
        """The timeouts that must nest: heartbeat < session, reconnect grace < session, controlled
        shutdown < shutdown."""
        broker = self.static_broker_config
        if broker.broker_heartbeat_interval_ms >= broker.broker_session_timeout_ms:
            raise NodeConfigError(
                "broker.heartbeat.interval.ms",
                f"{broker.broker_heartbeat_interval_ms} must be less than broker.session.timeout.ms "
                f"({broker.broker_session_timeout_ms})",
            )
        if self.reconnect_grace_ms >= broker.broker_session_timeout_ms:
            raise NodeConfigError(
                "broker.reconnect.grace.ms",
                f"{self.reconnect_grace_ms} must be less than broker.session.timeout.ms "
                f"({broker.broker_session_timeout_ms})",
            )
        if self.controlled_shutdown_timeout_ms >= self.shutdown_timeout_ms:
            raise NodeConfigError(
                "controlled.shutdown.timeout.ms",
                f"{self.controlled_shutdown_timeout_ms} must be less than shutdown.timeout.ms ({self.shutdown_timeout_ms})",
            )


@dataclasses.dataclass(frozen=True, slots=True)
class _Value:
    text: Any
    origin: str                        # how to name the key in an error


def _display(key: str, origin: str) -> str:
    if origin == "flag":
        return FLAG_NAMES.get(key, key)
    if origin == "--set":
        return f"--set {key}"
    return f"{key} (in {origin})"


def _flatten(table: Mapping[str, Any], prefix: str, into: dict[str, Any], path: str) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", into, path)
        elif isinstance(value, list):
            if not all(isinstance(item, str | int) and not isinstance(item, bool) for item in value):
                raise NodeConfigError(f"{name} (in {path})", "a list may hold only strings or integers")
            into[name] = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            into[name] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            into[name] = str(value)
        else:
            raise NodeConfigError(f"{name} (in {path})", f"unsupported TOML value {value!r}")


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """What `--config FILE` gave: layers of node and broker keys (one layer per key for a
    properties file, so that an error names its line), topic defaults and warnings."""

    layers: list[tuple[str, Mapping[str, Any]]]
    topic_defaults: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def read_config_file(path: str) -> ConfigFile:
    """Read `--config FILE`: Kafka's server.properties (by the extension `.properties`, or, for
    another extension, when the text is not TOML) or Freshet's TOML (`.toml`, or text that parses).

    Raises:
        NodeConfigError: the file cannot be read, does not parse, or holds a Kafka setting Freshet
            cannot honour.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise NodeConfigError("--config", f"cannot read {path}: {error.strerror}") from None
    is_properties = path.endswith(".properties")
    if not is_properties:
        try:
            table = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            if path.endswith(".toml"):
                raise NodeConfigError("--config", f"{path} is not valid TOML: {error}") from None
            is_properties = True
        else:
            flat: dict[str, str] = {}
            _flatten(table, "", flat, path)
            return ConfigFile([(f"config file {path}", flat)])
    return _read_properties(path, data)


def _read_properties(path: str, data: bytes) -> ConfigFile:
    """A server.properties file (UTF-8; Latin-1, java.util.Properties' encoding, when not UTF-8)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        entries = properties.parse_properties(text)
    except ValueError as error:
        raise NodeConfigError("--config", f"{path}: {error}") from None
    mapped = properties.map_kafka_properties(entries, path)
    layers: list[tuple[str, Mapping[str, Any]]] = [(origin, {key: value}) for key, value, origin in mapped.values]
    return ConfigFile(layers, mapped.topic_defaults, tuple(mapped.warnings))


def _topic_defaults(config_file: ConfigFile | None) -> dict[str, str]:
    """The file's topic defaults, validated. Raises NodeConfigError naming Kafka's key and line."""
    result: dict[str, str] = {}
    for key, (value, origin) in (config_file.topic_defaults.items() if config_file else ()):
        try:
            configs.parse_value(key, value)
        except InvalidConfigError as error:
            raise NodeConfigError(_display(key, origin), error.reason) from None
        result[key] = value
    return result


def parse_set_options(options: Sequence[str]) -> dict[str, str]:
    """`--set key=value` options as a dict (a later one wins).

    Raises:
        NodeConfigError: an option without "=" or with an empty key.
    """
    result: dict[str, str] = {}
    for option in options:
        key, equals, value = option.partition("=")
        if not equals or not key.strip():
            raise NodeConfigError("--set", f"expected key=value, got {option!r}")
        result[key.strip()] = value
    return result


def _read_secret_file(path: str, display: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            secret = file.read().strip()
    except OSError as error:
        raise NodeConfigError(display, f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise NodeConfigError(display, f"{path} is not UTF-8 text") from None
    if not secret:
        raise NodeConfigError(display, f"{path} is empty")
    return secret


def derived_secret(quorum_text: str) -> str:
    """The development default secret: derived from the quorum string, hence NOT secret."""
    return hashlib.sha256(f"freshet-insecure-default-secret:{quorum_text}".encode()).hexdigest()


def load_node_config(
    flags: Mapping[str, Any | None],
    set_options: Sequence[str] = (),
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Build and validate the NodeConfig.

    Args:
        flags: node keys given as command-line flags (None or absent: not given), keyed by the
            dotted key ("node.id", "listen", ..., "cluster.secret.file").
        set_options: the `--set key=value` options.
        config_file: path of a TOML file, or None.
        environ: the environment (FRESHET_CLUSTER_SECRET); default os.environ.

    Raises:
        NodeConfigError: naming the first bad key.
    """
    environ = os.environ if environ is None else environ
    file = read_config_file(config_file) if config_file else None
    layers = _layers(flags, set_options, file)
    parsed = _parse_node_keys(layers)
    broker_values = _parse_broker_keys(layers)
    node_id: int = parsed["node.id"]
    roles: frozenset[str] = parsed["roles"]
    quorum: dict[int, HostPort] = parsed["controller.quorum"]
    listen: HostPort = parsed["listen"]
    advertised, raft_listen, http_listen = _resolve_listeners(parsed)
    kafka_listen, kafka_advertised = _resolve_kafka_listener(parsed)
    listeners = parsed.get("controller.listeners") or {
        voter: HostPort(address.host, address.port - 1) for voter, address in quorum.items()
    }
    secret, source = None, ""
    if ROLE_CONTROLLER in roles and raft_listen is not None:
        secret, source = _choose_secret(layers, environ, quorum, raft_listen)

    config = NodeConfig(
        node_id=node_id,
        data_dir=parsed["data.dir"],
        listen=listen,
        advertised=advertised,
        controller_quorum=quorum,
        controller_listeners=listeners,
        raft_listen=raft_listen,
        http_listen=http_listen,
        roles=roles,
        rack=parsed["rack"],
        cluster_secret=secret,
        cluster_secret_source=source,
        broker_configs=broker_values,
        reconnect_grace_ms=parsed["broker.reconnect.grace.ms"],
        controlled_shutdown_timeout_ms=parsed["controlled.shutdown.timeout.ms"],
        shutdown_timeout_ms=parsed["shutdown.timeout.ms"],
        request_timeout_ms=parsed["request.timeout.ms"],
        metadata_fsync=parsed["metadata.fsync"],
        log_level=parsed["log.level"],
        kafka_listen=kafka_listen,
        kafka_advertised=kafka_advertised,
        security_protocol=parsed["security.protocol"],
        tls=_resolve_tls(parsed, layers),
        http_metrics_plaintext_listen=parsed.get("http.metrics.plaintext.listen"),
        super_users=parsed["super.users"],
        allow_everyone_if_no_acl_found=parsed["allow.everyone.if.no.acl.found"],
        sasl_enabled_mechanisms=parsed["sasl.enabled.mechanisms"],
        **_bootstrap_user(layers, parsed),
        log_cleaner_enable=parsed["log.cleaner.enable"],
        log_open_files_max=parsed["log.open.files.max"],
        topic_defaults=_topic_defaults(file),
        config_warnings=file.warnings if file else (),
    )
    config.validate()
    return config


def _layers(
    flags: Mapping[str, Any | None], set_options: Sequence[str], config_file: ConfigFile | None
) -> list[tuple[str, Mapping[str, Any]]]:
    """(origin, values) of every source, highest precedence first: flags, --set, the config file.

    Raises:
        NodeConfigError: a key that is not a node or broker configuration.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = []        # highest precedence first
    layers.append(("flag", {k: v for k, v in flags.items() if v is not None}))
    layers.append(("--set", parse_set_options(set_options)))
    layers.extend(config_file.layers if config_file else [("config file", {})])

    for origin, values in layers:
        for key in values:
            if key not in NODE_KEYS and key not in configs.BROKER_KEYS:
                if key in configs.TOPIC_KEYS:
                    raise NodeConfigError(
                        _display(key, origin),
                        "a topic configuration: set topic defaults for the whole cluster with "
                        "`freshet config --cluster`, or per topic",
                    )
                if key in configs.GROUP_KEYS:
                    raise NodeConfigError(
                        _display(key, origin),
                        "a consumer group configuration: set it per group with `freshet config --group G`, "
                        "or as every group's default with `freshet config --cluster`",
                    )
                raise NodeConfigError(_display(key, origin), "unknown configuration key")
    return layers


def _lookup(layers: list[tuple[str, Mapping[str, Any]]], key: str) -> _Value | None:
    """The value of `key` from the first layer that has it, else its node default, else None."""
    for origin, values in layers:
        if key in values:
            return _Value(values[key], origin)
    if key in NODE_DEFAULTS:
        return _Value(NODE_DEFAULTS[key], "default")
    return None


def _parse_node_keys(layers: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Every node key that has a value, parsed. Raises NodeConfigError (bad or missing required key)."""
    parsed: dict[str, Any] = {}
    for key, parser in NODE_KEYS.items():
        found = _lookup(layers, key)
        if found is None:
            continue
        try:
            parsed[key] = parser(found.text)
        except ValueError as error:
            raise NodeConfigError(_display(key, found.origin), str(error)) from None
    for key in ("node.id", "data.dir", "listen", "controller.quorum"):
        if key not in parsed:
            hint = _PROPERTIES_HINTS.get(key, "")
            raise NodeConfigError(FLAG_NAMES[key], f"is required (or {key} in --config / --set{hint})")
    return parsed


def _parse_broker_keys(layers: list[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """The static broker configurations given, checked but kept as text. Raises NodeConfigError."""
    broker_values: dict[str, str] = {}
    for key in configs.BROKER_KEYS:
        found = _lookup(layers, key)
        if found is None:
            continue
        try:
            configs.parse_value(key, str(found.text))
        except InvalidConfigError as error:
            raise NodeConfigError(_display(key, found.origin), error.reason) from None
        broker_values[key] = str(found.text)
    return broker_values


def _bootstrap_user(layers: list[tuple[str, Mapping[str, Any]]], parsed: Mapping[str, Any]) -> dict[str, Any]:
    """bootstrap_user and bootstrap_password (read from its file now, so a missing file stops the
    start with one line). Raises NodeConfigError when only one of the two keys is given."""
    user, path = parsed.get("security.bootstrap.user"), parsed.get("security.bootstrap.password.file")
    if user is None and path is None:
        return {}
    if user is None or path is None:
        given, missing = ("security.bootstrap.user", "security.bootstrap.password.file")
        if user is None:
            given, missing = missing, given
        raise NodeConfigError(given, f"needs {missing} too")
    found = _lookup(layers, "security.bootstrap.password.file")
    assert found is not None
    password = _read_secret_file(path, _display("security.bootstrap.password.file", found.origin))
    return {"bootstrap_user": user, "bootstrap_password": password}


def _resolve_listeners(parsed: Mapping[str, Any]) -> tuple[HostPort, HostPort | None, HostPort]:
    """(advertised, raft_listen, http_listen) with their defaults filled in from `listen` and the
    quorum. Raises NodeConfigError when a default cannot apply."""
    listen: HostPort = parsed["listen"]
    advertised: HostPort | None = parsed.get("advertised")
    if advertised is None:
        if listen.is_wildcard:
            raise NodeConfigError("--advertised", f"is required when --listen binds every interface ({listen})")
        advertised = listen
    raft_listen: HostPort | None = None
    if ROLE_CONTROLLER in parsed["roles"]:
        raft_listen = parsed.get("raft.listen") or parsed["controller.quorum"].get(parsed["node.id"])
    http_listen = parsed.get("http.listen")
    if http_listen is None:
        if listen.port + 2 > 65535:
            raise NodeConfigError("--http-listen", f"is required: {listen.port} + 2 is not a port")
        http_listen = HostPort(listen.host, listen.port + 2)
    return advertised, raft_listen, http_listen


def _resolve_kafka_listener(parsed: Mapping[str, Any]) -> tuple[HostPort | None, HostPort | None]:
    """(kafka_listen, kafka_advertised): both None without a Kafka listener; the advertised
    address defaults to the listen one. Raises NodeConfigError for an advertised address without a
    listener, or a wildcard listener without an advertised address."""
    kafka_listen: HostPort | None = parsed.get("kafka.listen")
    kafka_advertised: HostPort | None = parsed.get("kafka.advertised")
    if kafka_listen is None:
        if kafka_advertised is not None:
            raise NodeConfigError("--kafka-advertised", "needs --kafka-listen (where the Kafka listener binds)")
        return None, None
    if kafka_advertised is None:
        if kafka_listen.is_wildcard:
            raise NodeConfigError("--kafka-advertised", f"is required when --kafka-listen binds every interface ({kafka_listen})")
        kafka_advertised = kafka_listen
    return kafka_listen, kafka_advertised


def _resolve_tls(parsed: Mapping[str, Any], layers: list[tuple[str, Mapping[str, Any]]]) -> TlsSettings | None:
    """The TLS settings of an SSL or SASL_SSL node, after checking that its files exist, parse and
    belong together; None with PLAINTEXT. Raises NodeConfigError (one line naming the key)."""
    if parsed["security.protocol"] == PROTOCOL_PLAINTEXT:
        return None
    protocol_origin = _lookup(layers, "security.protocol")
    assert protocol_origin is not None
    missing = [key for key in SSL_FILE_KEYS if key not in parsed]
    if missing:
        raise NodeConfigError(
            _display("security.protocol", protocol_origin.origin),
            f"{parsed['security.protocol']} needs {', '.join(missing)} (PEM files: the node's certificate, its key, "
            f"the CA bundle that signs the nodes' and clients' certificates)",
        )
    settings = TlsSettings(
        certificate_location=parsed["ssl.certificate.location"],
        key_location=parsed["ssl.key.location"],
        ca_location=parsed["ssl.ca.location"],
        client_auth=parsed["ssl.client.auth"],
    )
    try:
        check_files(settings)
    except ValueError as error:
        key = next((key for key in SSL_FILE_KEYS if str(error).startswith(key)), "ssl.certificate.location")
        found = _lookup(layers, key)
        raise NodeConfigError(_display(key, found.origin) if found else key, str(error).removeprefix(key + " ")) from None
    return settings


def _choose_secret(
    layers: list[tuple[str, Mapping[str, Any]]],
    environ: Mapping[str, str],
    quorum: Mapping[int, HostPort],
    raft_listen: HostPort,
) -> tuple[str, str]:
    """(secret, source): flags, --set, FRESHET_CLUSTER_SECRET, config file, then the loopback default."""
    ordered = list(layers[:2]) + [("env", {"cluster.secret": environ[SECRET_ENV]} if environ.get(SECRET_ENV) else {})]
    ordered += layers[2:]
    for origin, values in ordered:
        text, path = values.get("cluster.secret"), values.get("cluster.secret.file")
        if text is not None and path is not None:
            raise NodeConfigError(
                _display("cluster.secret", origin), "give either cluster.secret or cluster.secret.file, not both"
            )
        if path is not None:
            return _read_secret_file(str(path), _display("cluster.secret.file", origin)), "file"
        if text is not None:
            if not str(text):
                raise NodeConfigError(_display("cluster.secret", origin), "must not be empty")
            return str(text), "env" if origin == "env" else ("--set" if origin == "--set" else "config file")
    if raft_listen.is_loopback and all(address.is_loopback for address in quorum.values()):
        return derived_secret(format_node_addresses(quorum)), "derived"
    raise NodeConfigError(
        "cluster.secret",
        f"required when the Raft listener ({raft_listen}) is not a loopback address: set {SECRET_ENV}, "
        "--cluster-secret-file PATH or --set cluster.secret=...",
    )
