"""Who is calling, and whether they may: the caller of the current request and the `Authorizer`.

Owns:
- `Caller` (principal + client host) and the context variable holding the caller of the request
  being served. Front-ends bind it once they know who is calling: the gRPC handler decorator
  (server/status.py) per call, the Kafka listener per connection (its one task serves every
  request of the connection, and tasks it spawns copy the context). Code deeper down reads
  `current_caller()`; nothing passes principals through call chains.
- `SecuritySettings`: the node's security switches (from NodeConfig).
- `Authorizer`: binds the settings and the node's current metadata image to the pure
  `freshet.metadata.security.authorize`, raises `AuthorizationError` with the resource type's
  error code, and writes every denial as one structured audit line (logger "freshet.audit") and a
  metric. With security off (PLAINTEXT) every check passes: that is today's open cluster.

Imports: standard library, prometheus_client, freshet.metadata (image, security), the server's
errors and wire error codes. Thread-safety: Authorizer is immutable apart from its metrics
(thread-safe); the context variable is per task/thread by construction.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
from collections.abc import Callable, Iterable

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import (
    ANONYMOUS,
    CLUSTER_NAME,
    Operation,
    ResourceType,
    authorize,
)
from freshet.server.errors import AuthorizationError
from freshet.v1 import common_pb2
from prometheus_client import CollectorRegistry, Counter

E = common_pb2.ErrorCode
audit_log = logging.getLogger("freshet.audit")

#: The error code a denial on each resource type answers with (Kafka's).
DENIAL_CODES = {
    ResourceType.TOPIC: E.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: E.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: E.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request being served: a principal ("User:alice"), the client's IP address
    ("" when unknown, e.g. a unix socket), and whether a certificate proved the principal (a TLS
    client certificate or a node proof) rather than a login. Thread-safe (immutable)."""

    principal: str = ANONYMOUS
    host: str = ""
    is_from_certificate: bool = False


ANONYMOUS_CALLER = Caller()
_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("freshet_caller", default=ANONYMOUS_CALLER)


def current_caller() -> Caller:
    """The caller of the request this task (or thread) serves; anonymous when none was bound."""
    return _CALLER.get()


def bind_caller(caller: Caller) -> contextvars.Token:
    """Make `caller` the current caller of this task; `unbind_caller(token)` restores the previous."""
    return _CALLER.set(caller)


def unbind_caller(token: contextvars.Token) -> None:
    _CALLER.reset(token)


def audit(event: str, **fields) -> None:
    """One structured audit line: {"event": ..., fields...} as JSON on logger "freshet.audit".
    Callers pass no secrets (passwords, keys, tokens); names and principals only."""
    audit_log.info(json.dumps({"event": event, **fields}, sort_keys=True))


@dataclasses.dataclass(frozen=True, slots=True)
class SecuritySettings:
    """The node's security switches. Thread-safe (immutable).

    Attributes:
        enabled: authorization is enforced (security.protocol SSL or SASL_SSL).
        super_users: principals that may do everything (Kafka's super.users).
        allow_if_no_acl: Kafka's allow.everyone.if.no.acl.found.
    """

    enabled: bool = False
    super_users: frozenset[str] = frozenset()
    allow_if_no_acl: bool = False


class Authorizer:
    """Authorization of the current caller against the node's current image. Thread-safe."""

    def __init__(self, settings: SecuritySettings, image: Callable[[], MetadataImage], registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self._image = image
        self._denials = Counter(
            "freshet_authorization_denials",
            "requests refused for a missing right, by resource type and operation",
            ["resource_type", "operation"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def image(self) -> MetadataImage:
        """The metadata image decisions are taken on (the node's current one)."""
        return self._image()

    def allows(self, operation: Operation, resource_type: ResourceType, name: str, caller: Caller | None = None) -> bool:
        """Whether the caller (the current one by default) may; no audit, no metric (for filtering
        listings, as Kafka filters Metadata and ListGroups)."""
        if not self.settings.enabled:
            return True
        caller = current_caller() if caller is None else caller
        return authorize(
            self._image().acls,
            caller.principal,
            caller.host,
            operation,
            resource_type,
            name,
            self.settings.super_users,
            self.settings.allow_if_no_acl,
        )

    def is_node(self, caller: Caller | None = None) -> bool:
        """Whether the caller (the current one by default) is a node: a super user whose principal
        a certificate proved (nodes call each other with their certificate; a user who logs in
        with a password is never one, whatever its name). Always True with security off, where
        nothing is authenticated and every caller may do everything anyway."""
        if not self.settings.enabled:
            return True
        caller = current_caller() if caller is None else caller
        return caller.is_from_certificate and caller.principal in self.settings.super_users

    def check(self, operation: Operation, resource_type: ResourceType, name: str = CLUSTER_NAME) -> None:
        """Return when the current caller may; else audit, count and raise AuthorizationError."""
        caller = current_caller()
        if self.allows(operation, resource_type, name, caller):
            return
        self.denied(caller, operation, resource_type, name)
        raise AuthorizationError(DENIAL_CODES[resource_type], denial_message(caller, operation, resource_type, name))

    def denied(self, caller: Caller, operation: Operation, resource_type: ResourceType, name: str) -> None:
        """Record one denial (audit line + metric) that the caller answers without raising."""
        self._denials.labels(resource_type.name.lower(), operation.kafka_name).inc()
        audit(
            "authorization_denied",
            principal=caller.principal,
            host=caller.host,
            operation=operation.kafka_name,
            resource_type=resource_type.name.lower(),
            resource=name,
        )

    def filter(self, operation: Operation, resource_type: ResourceType, names: Iterable[str]) -> list[str]:
        """The names the current caller may `operation` (unlisted ones are neither audited nor counted)."""
        caller = current_caller()
        return [name for name in names if self.allows(operation, resource_type, name, caller)]


def denial_message(caller: Caller, operation: Operation, resource_type: ResourceType, name: str) -> str:
    """One line naming the missing right: "User:bob may not Write topic 'a'"."""
    target = "the cluster" if resource_type is ResourceType.CLUSTER else f"{resource_type.name.lower().replace('_', ' ')} {name!r}"
    return f"{caller.principal} is not authorized to {operation.kafka_name} {target}"
