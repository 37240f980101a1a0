"""Users and ACLs between the wire and the security model: validation, filters, describes, redaction.

Owns the pure pieces every front-end that manages users and ACLs shares (the gRPC Controller
service, the active controller's `security_requests`, the Kafka listener's ACL and SCRAM APIs):

- `credential_of`: the credential a ScramCredentialUpsertion sets. It carries the SaltedPassword,
  never the password (Kafka's wire form); the stored and server keys are derived here. A bad user
  name is INVALID_REQUEST, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, iterations, salt or
  SaltedPassword out of bounds UNACCEPTABLE_CREDENTIAL.
- `binding_of` / `filter_of` / `filter_message`: ACL bindings and Kafka's AclBindingFilter from
  and to the wire (INVALID_REQUEST naming what is wrong).
- `describe_users` / `describe_acls`: answers from an image (any node's): names, mechanisms and
  iterations only, never salts or keys.
- `redacted_image` / `redacted_command`: the secrets-free forms WatchMetadata serves to a watcher
  that asks for redaction (`freshet metadata dump`).

Errors are `freshet.metadata.errors.ControllerRequestError` with the wire ErrorCode (server/status.py
maps them to both wires).

Imports: dataclasses, freshet.metadata (commands, errors, image, security), freshet.server.status,
wire types. Thread-safety: pure functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from freshet.metadata import commands, security
from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.image import MetadataImage, frozen_mapping
from freshet.metadata.security import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
)
from freshet.server import status
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

E = common_pb2.ErrorCode
ALL_MECHANISMS = 0                          # ScramCredentialDeletion.mechanism: every credential


# -- validation (pure) -----------------------------------------------------------------------------


def mechanism_of(number: int) -> ScramMechanism:
    """Kafka's ScramMechanism `number`. Raises ControllerRequestError (UNSUPPORTED_SASL_MECHANISM)."""
    try:
        return ScramMechanism(number)
    except ValueError:
        raise ControllerRequestError(
            E.UNSUPPORTED_SASL_MECHANISM, f"unknown SCRAM mechanism {number} (1: SCRAM-SHA-256, 2: SCRAM-SHA-512)"
        ) from None


def check_user_name(name: str) -> None:
    problem = security.user_name_problem(name)
    if problem is not None:
        raise ControllerRequestError(E.INVALID_REQUEST, problem)


def credential_of(upsertion: controller_pb2.ScramCredentialUpsertion) -> ScramCredential:
    """The credential an upsertion sets (stored and server keys from its SaltedPassword).

    Raises:
        ControllerRequestError: INVALID_REQUEST (user name), UNSUPPORTED_SASL_MECHANISM,
            UNACCEPTABLE_CREDENTIAL (iterations, salt or SaltedPassword out of bounds).
    """
    check_user_name(upsertion.name)
    mechanism = mechanism_of(upsertion.mechanism)
    salted = bytes(upsertion.salted_password)
    if len(salted) != mechanism.digest_size:
        raise ControllerRequestError(
            E.UNACCEPTABLE_CREDENTIAL,
            f"a {mechanism.mechanism_name} SaltedPassword is {mechanism.digest_size} bytes, not {len(salted)}",
        )
    credential = ScramCredential.from_salted_password(mechanism, bytes(upsertion.salt), salted, upsertion.iterations)
    problem = credential.problem()
    if problem is not None:
        raise ControllerRequestError(E.UNACCEPTABLE_CREDENTIAL, problem)
    return credential


def binding_of(record: metadata_pb2.AclBindingRecord) -> AclBinding:
    """The binding of a wire record. Raises ControllerRequestError (INVALID_REQUEST, naming why)."""
    try:
        binding = commands.acl_binding_from_record(record)
    except ValueError as error:
        raise ControllerRequestError(E.INVALID_REQUEST, f"invalid ACL binding: {error}") from None
    problem = binding.problem()
    if problem is not None:
        raise ControllerRequestError(E.INVALID_REQUEST, f"invalid ACL binding: {problem}")
    return binding


def _filter_enum(kind: type, number: int, what: str):
    try:
        return kind.ANY if number == 0 else kind(number)
    except ValueError:
        raise ControllerRequestError(E.INVALID_REQUEST, f"invalid ACL filter: unknown {what} {number}") from None


def filter_of(message: controller_pb2.AclBindingFilter) -> AclFilter:
    """Kafka's AclBindingFilter of a wire filter (0 counts as ANY). Raises ControllerRequestError."""
    acl_filter = AclFilter(
        resource_type=_filter_enum(ResourceType, message.resource_type, "resource type"),
        resource_name=message.resource_name if message.HasField("resource_name") else None,
        pattern_type=_filter_enum(PatternType, message.pattern_type, "pattern type"),
        principal=message.principal if message.HasField("principal") else None,
        host=message.host if message.HasField("host") else None,
        operation=_filter_enum(Operation, message.operation, "operation"),
        permission=_filter_enum(Permission, message.permission, "permission"),
    )
    if acl_filter.principal is not None:
        problem = security.principal_problem(acl_filter.principal)
        if problem is not None:
            raise ControllerRequestError(E.INVALID_REQUEST, f"invalid ACL filter: {problem}")
    return acl_filter


def filter_message(acl_filter: AclFilter) -> controller_pb2.AclBindingFilter:
    """The wire form of a filter."""
    message = controller_pb2.AclBindingFilter(
        resource_type=int(acl_filter.resource_type),
        pattern_type=int(acl_filter.pattern_type),
        operation=int(acl_filter.operation),
        permission=int(acl_filter.permission),
    )
    if acl_filter.resource_name is not None:
        message.resource_name = acl_filter.resource_name
    if acl_filter.principal is not None:
        message.principal = acl_filter.principal
    if acl_filter.host is not None:
        message.host = acl_filter.host
    return message


# -- describes from an image (pure) -----------------------------------------------------------------


def describe_users(image: MetadataImage, names: Iterable[str]) -> controller_pb2.DescribeUserScramCredentialsResponse:
    """Mechanisms and iterations of the named users (every user when `names` is empty); a named
    user without credentials gets RESOURCE_NOT_FOUND. Never a salt or a key."""
    response = controller_pb2.DescribeUserScramCredentialsResponse(metadata_offset=image.offset)
    wanted = list(names)
    for name in wanted or sorted(image.users):
        described = response.users.add(name=name)
        credentials = image.users.get(name)
        if not credentials:
            described.error.CopyFrom(status.detail(E.RESOURCE_NOT_FOUND, f"user {name!r} has no SCRAM credentials"))
            continue
        described.error.CopyFrom(status.ok_detail())
        for mechanism in sorted(credentials):
            described.credentials.add(mechanism=int(mechanism), iterations=credentials[mechanism].iterations)
    return response


def describe_acls(image: MetadataImage, acl_filter: AclFilter) -> controller_pb2.DescribeAclsResponse:
    """The bindings `acl_filter` matches, sorted."""
    return controller_pb2.DescribeAclsResponse(
        acls=[commands.acl_binding_record(binding) for binding in image.acls.matching(acl_filter)],
        metadata_offset=image.offset,
    )


# -- redaction (pure) -------------------------------------------------------------------------------


def redacted_image(image: MetadataImage) -> MetadataImage:
    """`image` with every credential's salt and keys emptied (names, mechanisms, iterations stay)."""
    if not image.users:
        return image
    users = {
        name: frozen_mapping({
            mechanism: ScramCredential(mechanism, b"", b"", b"", credential.iterations)
            for mechanism, credential in credentials.items()
        })
        for name, credentials in image.users.items()
    }
    return dataclasses.replace(image, users=frozen_mapping(users))


def _redact(command: metadata_pb2.MetadataCommand) -> bool:
    kind = command.WhichOneof("command")
    if kind == "upsert_user_credential":
        credential = command.upsert_user_credential.credential
        credential.salt = b""
        credential.stored_key = b""
        credential.server_key = b""
        return True
    if kind == "atomic_batch":
        changed = False
        for inner in command.atomic_batch.commands:
            changed = _redact(inner) or changed
        return changed
    return False


def redacted_command(data: bytes) -> bytes:
    """An encoded command with the secrets of any credential it sets emptied (same bytes when it
    sets none)."""
    command = commands.decode(data)
    return commands.encode(command) if _redact(command) else data
