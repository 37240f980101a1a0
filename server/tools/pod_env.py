"""A node's identity from its Kubernetes pod environment (`freshet server start --from-env`).

Owns the mapping from a StatefulSet pod's environment to the node keys of freshet.server.config,
so the manifests stay declarative: every pod of a StatefulSet runs the same command and env, and
the pod's ordinal (the `-N` suffix of its name) decides who it is.

- node id = ordinal + FRESHET_NODE_ID_OFFSET (default 1: pod freshet-0 is node 1).
- advertised address = the pod's stable DNS name, `POD.SERVICE[.NAMESPACE.svc[.DOMAIN]]:PORT`.
- controller quorum = the pods of FRESHET_QUORUM_STATEFULSET (default: this pod's StatefulSet)
  under FRESHET_QUORUM_SERVICE (default: FRESHET_SERVICE), FRESHET_QUORUM_REPLICAS of them, voter
  ids ordinal + FRESHET_QUORUM_NODE_ID_OFFSET (default 1), Raft on FRESHET_PORT + 1.
- ports: gRPC FRESHET_PORT (default 9092), Raft + 1, HTTP + 2 (the Dockerfile's EXPOSE, and the
  layout of `cluster up`), bound on every interface.
- Kafka protocol listener: only when FRESHET_KAFKA_PORT is set (absent or empty: none, so older
  manifests keep their behaviour) and the pod has the broker role (a controller-only pod has no
  Kafka listener and ignores it, as the StatefulSet's env is shared). It binds where gRPC binds and
  advertises the same stable DNS name, `POD.SERVICE[.NAMESPACE.svc[.DOMAIN]]:KAFKAPORT`, which is
  what Kafka clients get in Metadata (Kafka's advertised.listeners). The manifests use gRPC + 3
  (9095), the port `cluster up` gives it.
- FRESHET_HOST_ALIASES="name=ip,..." is a hosts mapping read by the node (like a pod's
  `hostAliases`): every derived name it lists is replaced by its address, and a pod whose own name
  is listed binds that address instead of every interface. It exists so the pod layout can run on
  one machine (each "pod" on its own loopback address); in a real cluster DNS does this.

Everything here only fills keys that were not given as flags: an explicit `--node-id`,
`--listen`, ... still wins. The secret stays where freshet.server.config reads it
(FRESHET_CLUSTER_SECRET, from a Kubernetes Secret).

Imports: standard library, freshet.server.errors. Thread-safety: pure functions of the mapping
they are given.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from collections.abc import Mapping

from freshet.server.errors import NodeConfigError

DEFAULT_PORT = 9092
DEFAULT_DATA_DIR = "/var/lib/freshet"
DEFAULT_ROLES = "broker,controller"
RAFT_PORT_OFFSET = 1
HTTP_PORT_OFFSET = 2

# Every variable --from-env reads, with what it means (deploy/README.md shows the same table; a
# test checks the manifests set only these).
ENV_VARS: Mapping[str, str] = {
    "POD_NAME": "the pod's name, NAME-ORDINAL (downward API metadata.name; default: the hostname)",
    "POD_NAMESPACE": "the pod's namespace (downward API); DNS names become POD.SERVICE.NAMESPACE.svc",
    "FRESHET_CLUSTER_DOMAIN": "appended after .svc when set (e.g. cluster.local)",
    "FRESHET_SERVICE": "the headless Service governing this pod's StatefulSet (required)",
    "FRESHET_ROLES": f"broker, controller or broker,controller (default {DEFAULT_ROLES})",
    "FRESHET_NODE_ID_OFFSET": "node id = ordinal + this (default 1)",
    "FRESHET_QUORUM_STATEFULSET": "the StatefulSet whose pods are the metadata voters (default: this pod's)",
    "FRESHET_QUORUM_SERVICE": "the headless Service of the voters (default: FRESHET_SERVICE)",
    "FRESHET_QUORUM_REPLICAS": "how many voters (odd; required)",
    "FRESHET_QUORUM_NODE_ID_OFFSET": "voter id = voter ordinal + this (default 1)",
    "FRESHET_PORT": f"gRPC port (default {DEFAULT_PORT}); Raft is +1, HTTP +2",
    "FRESHET_KAFKA_PORT": "Kafka protocol port of a broker (absent or empty: no Kafka listener)",
    "FRESHET_DATA_DIR": f"the data directory (default {DEFAULT_DATA_DIR})",
    "FRESHET_CONFIG": "a TOML settings file (the ConfigMap), optional",
    "FRESHET_RACK": "the broker's rack, optional",
    "FRESHET_CLUSTER_SECRET": "the Raft password, from a Secret (read by the config loader)",
    "FRESHET_HOST_ALIASES": "name=ip,... a hosts mapping for derived names (local pod simulation)",
}

_POD_NAME = re.compile(r"^(?P<set>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>[0-9]+)$")


@dataclasses.dataclass(frozen=True, slots=True)
class PodIdentity:
    """What the pod environment says. Thread-safe (immutable).

    Attributes:
        flags: node keys ("node.id", "listen", ...) as `freshet server start` flags would give them.
        config_file: FRESHET_CONFIG, or None.
    """

    flags: Mapping[str, str]
    config_file: str | None


def _int_var(environ: Mapping[str, str], name: str, default: int | None, minimum: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        if default is None:
            raise NodeConfigError(name, "is required with --from-env")
        return default
    if not text.isdigit() or int(text) < minimum:
        raise NodeConfigError(name, f"{text!r} is not an integer >= {minimum}")
    return int(text)


def parse_host_aliases(text: str) -> dict[str, str]:
    """"name=ip,name=ip" -> {name: ip}. Raises NodeConfigError naming the bad entry."""
    aliases: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, address = item.partition("=")
        name, address = name.strip().lower(), address.strip()
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise NodeConfigError("FRESHET_HOST_ALIASES", f"{item!r} is not NAME=IP") from None
        if not equals or not name:
            raise NodeConfigError("FRESHET_HOST_ALIASES", f"{item!r} is not NAME=IP")
        aliases[name] = address
    return aliases


def _split_pod_name(pod_name: str) -> tuple[str, int]:
    match = _POD_NAME.match(pod_name)
    if match is None:
        raise NodeConfigError(
            "POD_NAME", f"{pod_name!r} is not a StatefulSet pod name (NAME-ORDINAL, e.g. freshet-0)"
        )
    return match["set"], int(match["ordinal"])


def _kafka_port(environ: Mapping[str, str], port: int, controller: bool) -> int | None:
    """FRESHET_KAFKA_PORT, or None when absent or empty. Raises NodeConfigError (naming the
    variable) for a non-port or a port the node already binds for gRPC, HTTP or Raft."""
    if not environ.get("FRESHET_KAFKA_PORT", "").strip():
        return None
    kafka_port = _int_var(environ, "FRESHET_KAFKA_PORT", None, 1)
    if kafka_port > 65535:
        raise NodeConfigError("FRESHET_KAFKA_PORT", f"{kafka_port} is not a port")
    taken = {port: "gRPC (FRESHET_PORT)", port + HTTP_PORT_OFFSET: "HTTP (FRESHET_PORT + 2)"}
    if controller:
        taken[port + RAFT_PORT_OFFSET] = "Raft (FRESHET_PORT + 1)"
    if kafka_port in taken:
        raise NodeConfigError("FRESHET_KAFKA_PORT", f"{kafka_port} is already the {taken[kafka_port]} port")
    return kafka_port


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def pod_identity(environ: Mapping[str, str]) -> PodIdentity:
    """The node keys a StatefulSet pod's environment implies.

    Raises:
        NodeConfigError: naming the variable that is missing or wrong.
    """
    pod_name = environ.get("POD_NAME", "").strip() or socket.gethostname().split(".")[0]
    statefulset, ordinal = _split_pod_name(pod_name)
    service = environ.get("FRESHET_SERVICE", "").strip()
    if not service:
        raise NodeConfigError("FRESHET_SERVICE", "is required with --from-env (the StatefulSet's headless Service)")
    suffix = ""
    namespace = environ.get("POD_NAMESPACE", "").strip()
    if namespace:
        suffix = f".{namespace}.svc"
        domain = environ.get("FRESHET_CLUSTER_DOMAIN", "").strip().strip(".")
        if domain:
            suffix += f".{domain}"
    aliases = parse_host_aliases(environ.get("FRESHET_HOST_ALIASES", ""))

    def resolve(name: str) -> str:
        return _host(aliases.get(name.lower(), name))

    roles = environ.get("FRESHET_ROLES", "").strip() or DEFAULT_ROLES
    port = _int_var(environ, "FRESHET_PORT", DEFAULT_PORT, 1)
    if port + HTTP_PORT_OFFSET > 65535:
        raise NodeConfigError("FRESHET_PORT", f"{port}: the HTTP port {port + HTTP_PORT_OFFSET} would not be a port")
    kafka_port = _kafka_port(environ, port, "controller" in roles)
    node_id = ordinal + _int_var(environ, "FRESHET_NODE_ID_OFFSET", 1, 0)

    quorum_set = environ.get("FRESHET_QUORUM_STATEFULSET", "").strip() or statefulset
    quorum_service = environ.get("FRESHET_QUORUM_SERVICE", "").strip() or service
    replicas = _int_var(environ, "FRESHET_QUORUM_REPLICAS", None, 1)
    if replicas % 2 == 0:
        raise NodeConfigError("FRESHET_QUORUM_REPLICAS", f"{replicas}: the metadata quorum needs an odd number of voters")
    voter_offset = _int_var(environ, "FRESHET_QUORUM_NODE_ID_OFFSET", 1, 0)
    voters = {
        voter_offset + index: f"{resolve(f'{quorum_set}-{index}.{quorum_service}{suffix}')}:{port + RAFT_PORT_OFFSET}"
        for index in range(replicas)
    }
    if "controller" in roles and (quorum_set != statefulset or ordinal >= replicas):
        raise NodeConfigError(
            "FRESHET_ROLES",
            f"pod {pod_name} has the controller role but the voters are {quorum_set}-0..{replicas - 1}: "
            "scale brokers with a broker-only StatefulSet (overlay dedicated-controllers), not the voters'",
        )

    own_name = f"{pod_name}.{service}{suffix}"
    own_alias = aliases.get(own_name.lower())
    bind_host = _host(own_alias) if own_alias else "0.0.0.0"
    flags = {
        "node.id": str(node_id),
        "data.dir": environ.get("FRESHET_DATA_DIR", "").strip() or DEFAULT_DATA_DIR,
        "listen": f"{bind_host}:{port}",
        "advertised": f"{resolve(own_name)}:{port}",
        "http.listen": f"{bind_host}:{port + HTTP_PORT_OFFSET}",
        "roles": roles,
        "controller.quorum": ",".join(f"{voter}@{address}" for voter, address in sorted(voters.items())),
    }
    if "controller" in roles:
        flags["raft.listen"] = f"{bind_host}:{port + RAFT_PORT_OFFSET}"
    if kafka_port is not None and "broker" in roles:
        flags["kafka.listen"] = f"{bind_host}:{kafka_port}"
        flags["kafka.advertised"] = f"{resolve(own_name)}:{kafka_port}"
    rack = environ.get("FRESHET_RACK", "").strip()
    if rack:
        flags["rack"] = rack
    return PodIdentity(flags=flags, config_file=environ.get("FRESHET_CONFIG", "").strip() or None)
