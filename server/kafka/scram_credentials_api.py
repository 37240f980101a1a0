"""Kafka's SCRAM user APIs: DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), v0.

Owns their translation into the freshet.v1.Controller requests the gRPC path sends (KIP-554):

- DescribeUserScramCredentials answers from this broker's image: per user its mechanisms and
  iterations, never a salt or a key; a named user without credentials is RESOURCE_NOT_FOUND, a
  name given twice DUPLICATE_RESOURCE. Needs Describe on the cluster.
- AlterUserScramCredentials: the client sends, per upsertion, the salt, the iterations and the
  SaltedPassword it derived (never the password). Deletions go to the active controller as one
  DeleteUserScramCredentials, upsertions as one UpsertUserScramCredentials (both forwarded through
  `admin_api.ControllerLink`). Kafka answers one result per user: the user's first error, or
  none. A (user, mechanism) given twice in the request is DUPLICATE_RESOURCE for that user and
  nothing of that user is changed. Needs Alter on the cluster. Each accepted change is one audit
  line and a metric (server.security.changes).

With security off (PLAINTEXT) both are answered (as Kafka answers them without SASL), so that
users can be created before security is turned on.

Imports: kio (through codec), freshet.metadata.security, freshet.server (kafka, security, status),
wire types. Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from freshet.metadata import commands
from freshet.metadata.security import Operation, ScramMechanism
from freshet.server.kafka import codec
from freshet.server.kafka.acls_api import cluster_denial
from freshet.server.kafka.admin_api import ControllerLink, detail_error
from freshet.server.security.authorizer import Authorizer
from freshet.server.security.changes import SecurityChanges
from freshet.server.security.management import describe_users
from freshet.v1 import controller_pb2
from kio.schema.errors import ErrorCode


class DescribeUserScramCredentialsHandler:
    """DescribeUserScramCredentials v0 (module docstring)."""

    api_key = 50
    name = "DescribeUserScramCredentials"
    versions = (0, 0)

    def __init__(self, link: ControllerLink, authorizer: Authorizer) -> None:
        self._link = link
        self._authorizer = authorizer

    def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "DescribeUserScramCredentialsResult")
        info_type = codec.nested(schema, "CredentialInfo")
        denied = cluster_denial(self._authorizer, Operation.DESCRIBE)
        if denied is not None:
            return codec.build(schema, throttle_time=0, error_code=denied[0], error_message=denied[1], results=())
        names = [user.name for user in request.body.users or ()]
        counts = Counter(names)
        unique = [name for name in dict.fromkeys(names) if counts[name] == 1]
        described = {user.name: user for user in describe_users(self._link.image, unique if names else ()).users}
        results = []
        for name in dict.fromkeys(names) if names else described:
            if counts[name] > 1:
                results.append(codec.build(
                    result_type, user=name, error_code=ErrorCode.duplicate_resource,
                    error_message=f"user {name!r} is named more than once", credential_infos=(),
                ))
                continue
            user = described[name]
            code, message = detail_error(user.error)
            results.append(codec.build(
                result_type, user=name, error_code=code, error_message=message,
                credential_infos=tuple(codec.build(info_type, mechanism=c.mechanism, iterations=c.iterations) for c in user.credentials),
            ))
        return codec.build(schema, throttle_time=0, error_code=0, error_message=None, results=tuple(results))


class AlterUserScramCredentialsHandler:
    """AlterUserScramCredentials v0 (module docstring)."""

    api_key = 51
    name = "AlterUserScramCredentials"
    versions = (0, 0)

    def __init__(self, link: ControllerLink, authorizer: Authorizer, changes: SecurityChanges) -> None:
        self._link = link
        self._authorizer = authorizer
        self._changes = changes

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        users = list(dict.fromkeys([d.name for d in body.deletions] + [u.name for u in body.upsertions]))
        errors: dict[str, tuple[int, str | None]] = {}
        denied = cluster_denial(self._authorizer, Operation.ALTER)
        if denied is not None:
            errors = dict.fromkeys(users, denied)
        keys = Counter([(d.name, d.mechanism) for d in body.deletions] + [(u.name, u.mechanism) for u in body.upsertions])
        for (name, mechanism), count in keys.items():
            if count > 1 and name not in errors:
                errors[name] = (ErrorCode.duplicate_resource, f"user {name!r} and mechanism {mechanism} appear more than once")
        deletions = [d for d in body.deletions if d.name not in errors]
        upsertions = [u for u in body.upsertions if u.name not in errors]
        await self._delete(deletions, errors)
        await self._upsert(upsertions, errors)
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "AlterUserScramCredentialsResult")
        results = []
        for name in users:
            code, message = errors.get(name, (0, None))
            results.append(codec.build(result_type, user=name, error_code=code, error_message=message))
        return codec.build(schema, throttle_time=0, results=tuple(results))

    async def _delete(self, deletions, errors: dict) -> None:
        outgoing = controller_pb2.DeleteUserScramCredentialsRequest(
            request_id=commands.new_request_id(),
            deletions=[controller_pb2.ScramCredentialDeletion(name=d.name, mechanism=d.mechanism) for d in deletions],
        )
        refused: dict[int, tuple[int, str]] = {}
        answered = await self._link.call_for("DeleteUserScramCredentials", outgoing, 0, list(range(len(deletions))), refused)
        self._collect(deletions, answered, refused, errors, "delete")

    async def _upsert(self, upsertions, errors: dict) -> None:
        outgoing = controller_pb2.UpsertUserScramCredentialsRequest(
            request_id=commands.new_request_id(),
            upsertions=[
                controller_pb2.ScramCredentialUpsertion(
                    name=u.name, mechanism=u.mechanism, iterations=u.iterations, salt=u.salt, salted_password=u.salted_password
                )
                for u in upsertions
            ],
        )
        refused: dict[int, tuple[int, str]] = {}
        answered = await self._link.call_for("UpsertUserScramCredentials", outgoing, 0, list(range(len(upsertions))), refused)
        self._collect(upsertions, answered, refused, errors, "upsert")

    def _collect(self, items, answered: dict, refused: dict, errors: dict, action: str) -> None:
        for index, item in enumerate(items):
            result = answered.get(index)
            code, message = refused[index] if result is None else detail_error(result.error)
            if code != 0:
                errors.setdefault(item.name, (code, message))
            else:
                self._changes.user_changed(item.name, action, ScramMechanism(item.mechanism))
