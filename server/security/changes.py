"""The trail of user and ACL changes: one audit line and one metric per accepted change.

Owns `SecurityChanges`, which the front-ends that accept a user or ACL change from a client (the
gRPC Controller service of the node the client called, the Kafka listener) call once the active
controller applied it. They record it there, not on the active controller, because only the
front-end knows who asked: a forwarded request reaches the controller as the forwarding node.
Every accepted change is one JSON line on logger "freshet.audit" (`authorizer.audit`):

    {"event": "user_changed", "principal": "User:admin", "host": "10.0.0.5", "user": "alice",
     "action": "upsert", "mechanism": "SCRAM-SHA-512"}
    {"event": "acl_created", "principal": ..., "host": ..., "acl": "User:bob from * may Read topic 'a' (literal)",
     "resource_type": "topic", "resource": "a", "pattern": "literal", "acl_principal": "User:bob",
     "acl_host": "*", "operation": "Read", "permission": "allow"}
    {"event": "acl_deleted", ...the same fields}

and one increment of `freshet_security_changes_total{event}`. Names and principals only: never a
salt, a key or a password.

Imports: prometheus_client, freshet.metadata.security, this package's authorizer.
Thread-safety: thread-safe (prometheus counters; logging).
"""

from __future__ import annotations

from collections.abc import Iterable

from freshet.metadata.security import AclBinding, Permission, ScramMechanism
from freshet.server.security.authorizer import Caller, audit, current_caller
from prometheus_client import CollectorRegistry, Counter

USER_CHANGED = "user_changed"
ACL_CREATED = "acl_created"
ACL_DELETED = "acl_deleted"


class SecurityChanges:
    """Audit lines and counters of accepted user and ACL changes. Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = CollectorRegistry() if registry is None else registry
        self._changes = Counter(
            "freshet_security_changes",
            "user credential and ACL changes accepted, by event (user_changed, acl_created, acl_deleted)",
            ["event"],
            registry=self._registry,
        )

    def count(self, event: str) -> float:
        """How many changes of `event` were recorded (for /metrics readers and tests)."""
        return self._registry.get_sample_value("freshet_security_changes_total", {"event": event}) or 0.0

    def user_changed(self, user: str, action: str, mechanism: ScramMechanism | None, caller: Caller | None = None) -> None:
        """A credential of `user` was set ("upsert") or removed ("delete"; mechanism None: all)."""
        caller = current_caller() if caller is None else caller
        audit(
            USER_CHANGED,
            principal=caller.principal,
            host=caller.host,
            user=user,
            action=action,
            mechanism="all" if mechanism is None else mechanism.mechanism_name,
        )
        self._changes.labels(USER_CHANGED).inc()

    def acls_created(self, bindings: Iterable[AclBinding], caller: Caller | None = None) -> None:
        self._acls(ACL_CREATED, bindings, caller)

    def acls_deleted(self, bindings: Iterable[AclBinding], caller: Caller | None = None) -> None:
        self._acls(ACL_DELETED, bindings, caller)

    def _acls(self, event: str, bindings: Iterable[AclBinding], caller: Caller | None) -> None:
        caller = current_caller() if caller is None else caller
        for binding in bindings:
            audit(
                event,
                principal=caller.principal,
                host=caller.host,
                acl=binding.describe(),
                resource_type=binding.resource_type.name.lower(),
                resource=binding.resource_name,
                pattern=binding.pattern_type.name.lower(),
                acl_principal=binding.principal,
                acl_host=binding.host,
                operation=binding.operation.kafka_name,
                permission="allow" if binding.permission is Permission.ALLOW else "deny",
            )
            self._changes.labels(event).inc()
