"""The classic consumer group protocol over Kafka: JoinGroup (11), SyncGroup (14), Heartbeat (12)
and LeaveGroup (13), as thin handlers over the GroupCoordinator's classic groups.

Owns the wire side only: field mapping per version (v4+ JoinGroup requires a known member id,
KIP-394: a first join gets MEMBER_ID_REQUIRED with an id; v0 has no rebalance timeout, which is
then the session timeout; v3+ LeaveGroup batches members, KIP-345; v5+ SyncGroup echoes protocol
type and name) and domain errors to Kafka error codes (`status.error_code_of`; Kafka's codes are
Freshet's ErrorCode numbers). The barrier, generations, assignments, sessions and static members
are `server/groups/classic.py`'s, their wiring `GroupCoordinator.classic_*`. A JoinGroup or
SyncGroup response may come much later than its request (the rebalance barrier); the listener
answers a connection's requests in order, as a Kafka broker does, so requests sent behind a parked
one on the same connection wait for it (clients expect that).

Imports: freshet.server (groups, kafka, status). Thread-safety: not thread-safe; runs on the
node's event loop.
"""

from __future__ import annotations

import logging
from typing import Any

from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.groups.coordinator import GroupCoordinator
from freshet.server.kafka import codec
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer

logger = logging.getLogger(__name__)

def _error_of(error: Exception) -> int:
    code = status.error_code_of(error)
    if code == -1:
        logger.error("classic group request failed", exc_info=error)
    return code


class JoinGroupHandler:
    """JoinGroup v0-v9."""

    api_key = 11
    name = "JoinGroup"
    versions = (0, 9)

    def __init__(self, coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        member_type = codec.nested(schema, "JoinGroupResponseMember")
        session_timeout_ms = codec.milliseconds(body.session_timeout)
        rebalance_timeout_ms = (
            codec.milliseconds(body.rebalance_timeout) if hasattr(body, "rebalance_timeout") else session_timeout_ms
        )
        try:
            self.authorizer.check(Operation.READ, ResourceType.GROUP, body.group_id)
            result = await self._coordinator.classic_join(
                body.group_id,
                member_id=body.member_id,
                instance_id=getattr(body, "group_instance_id", None) or "",
                protocol_type=body.protocol_type,
                protocols=[(protocol.name, protocol.metadata) for protocol in body.protocols],
                session_timeout_ms=session_timeout_ms,
                rebalance_timeout_ms=rebalance_timeout_ms,
                require_known_member_id=request.api_version >= 4,
                client_id=request.client_id,
            )
        except Exception as error:
            return codec.build(
                schema, throttle_time=0, error_code=_error_of(error), generation_id=-1, protocol_type=None,
                protocol_name=None if request.api_version >= 7 else "", leader="", skip_assignment=False,
                member_id=body.member_id, members=(),
            )
        protocol_name = result.protocol_name
        if protocol_name is None and request.api_version < 7:
            protocol_name = ""
        return codec.build(
            schema,
            throttle_time=0,
            error_code=result.error,
            generation_id=result.generation_id,
            protocol_type=body.protocol_type if result.error == 0 else None,
            protocol_name=protocol_name,
            leader=result.leader,
            skip_assignment=result.skip_assignment,
            member_id=result.member_id,
            members=tuple(
                codec.build(member_type, member_id=member_id, group_instance_id=instance_id or None, metadata=metadata)
                for member_id, instance_id, metadata in result.members
            ),
        )


class SyncGroupHandler:
    """SyncGroup v0-v5."""

    api_key = 14
    name = "SyncGroup"
    versions = (0, 5)

    def __init__(self, coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        try:
            self.authorizer.check(Operation.READ, ResourceType.GROUP, body.group_id)
            result = await self._coordinator.classic_sync(
                body.group_id,
                member_id=body.member_id,
                generation_id=body.generation_id,
                instance_id=getattr(body, "group_instance_id", None) or "",
                assignments={item.member_id: item.assignment for item in body.assignments},
            )
        except Exception as error:
            return codec.build(schema, throttle_time=0, error_code=_error_of(error), protocol_type=None,
                               protocol_name=None, assignment=b"")
        return codec.build(
            schema,
            throttle_time=0,
            error_code=result.error,
            protocol_type=getattr(body, "protocol_type", None) if result.error == 0 else None,
            protocol_name=result.protocol_name if result.error == 0 else None,
            assignment=result.assignment,
        )


class HeartbeatHandler:
    """Heartbeat v0-v4."""

    api_key = 12
    name = "Heartbeat"
    versions = (0, 4)

    def __init__(self, coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        try:
            self.authorizer.check(Operation.READ, ResourceType.GROUP, body.group_id)
            error = self._coordinator.classic_heartbeat(
                body.group_id,
                member_id=body.member_id,
                generation_id=body.generation_id,
                instance_id=getattr(body, "group_instance_id", None) or "",
            )
        except Exception as failure:
            error = _error_of(failure)
        return codec.build(schema, throttle_time=0, error_code=error)


class LeaveGroupHandler:
    """LeaveGroup v0-v5 (v3+: a batch of members, each with its own error)."""

    api_key = 13
    name = "LeaveGroup"
    versions = (0, 5)

    def __init__(self, coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> None:
        self._coordinator = coordinator
        self.authorizer = authorizer or rules.allow_all()

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        if hasattr(body, "members"):
            members = [(item.member_id, item.group_instance_id or "") for item in body.members]
        else:
            members = [(body.member_id, "")]
        try:
            self.authorizer.check(Operation.READ, ResourceType.GROUP, body.group_id)
            errors = await self._coordinator.classic_leave(body.group_id, members)
        except Exception as failure:
            return codec.build(schema, throttle_time=0, error_code=_error_of(failure), members=())
        if not hasattr(body, "members"):
            return codec.build(schema, throttle_time=0, error_code=errors[0])
        member_type = codec.nested(schema, "MemberResponse")
        return codec.build(
            schema,
            throttle_time=0,
            error_code=0,
            members=tuple(
                codec.build(member_type, member_id=member_id, group_instance_id=instance_id or None, error_code=error)
                for (member_id, instance_id), error in zip(members, errors, strict=True)
            ),
        )


def classic_group_handlers(coordinator: GroupCoordinator, authorizer: Authorizer | None = None) -> list:
    """The classic group handlers; each needs Read on its group (Kafka: GROUP_AUTHORIZATION_FAILED)."""
    return [
        JoinGroupHandler(coordinator, authorizer),
        SyncGroupHandler(coordinator, authorizer),
        HeartbeatHandler(coordinator, authorizer),
        LeaveGroupHandler(coordinator, authorizer),
    ]
