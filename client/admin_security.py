"""Admin: users (SCRAM credentials) and ACLs.

Owns `SecurityAdmin`, the Admin methods for users (`create_user`, `delete_user`, `list_users`,
`describe_user_scram_credentials`) and ACLs (`create_acls`, `describe_acls`, `delete_acls`), and
their small value types, named as kafka-python's admin names them: `ACL`, `ACLFilter`,
`ResourcePattern`, `ResourcePatternFilter`, `ACLOperation`, `ACLPermissionType`,
`ACLResourcePatternType`, `ResourceType`, plus `UserScramCredentials` / `ScramCredentialInfo`
for describes. Every enum has Kafka's numbers.

Passwords never leave the client: `create_user` draws a random salt and derives Kafka's
SaltedPassword (PBKDF2-HMAC with the mechanism's hash, RFC 5802 Hi()) itself, and sends
mechanism, iterations, salt and SaltedPassword (Kafka's AlterUserScramCredentials form). Describes
return names, mechanisms and iterations only.

Changes go to the controller (`freshet.v1.Controller`, any node forwards) with a request id;
describes are answered from the receiving node's metadata image.

Imports: hashlib, os, grpc (through the transport), `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: thread-safe (see AdminCalls); the value types are immutable.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
from collections.abc import Iterable, Sequence

from freshet.client._admin_calls import AdminCalls
from freshet.client._transport import raise_for_detail
from freshet.client.errors import InvalidRequestError, UnsupportedSaslMechanismError
from freshet.v1 import controller_pb2, metadata_pb2

#: Kafka's bounds on SCRAM iterations.
SCRAM_ITERATIONS_MIN = 4096
SCRAM_ITERATIONS_MAX = 16384
SCRAM_SALT_BYTES = 32
#: SASL mechanism name -> (Kafka's ScramMechanism number, hashlib name).
SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
_MECHANISM_NAMES = {number: name for name, (number, _) in SCRAM_MECHANISMS.items()}
#: The cluster resource's one name (Kafka's).
CLUSTER_NAME = "kafka-cluster"


def _named(cls, text: str):
    key = text.replace("-", "").replace("_", "").lower()
    for member in cls:
        if member.name.replace("_", "").lower() == key:
            return member
    raise ValueError(f"unknown {cls.__name__} {text!r} (use one of {', '.join(m.kafka_name for m in cls)})")


class _KafkaEnum(enum.IntEnum):
    @property
    def kafka_name(self) -> str:
        """Kafka's spelling ("DescribeConfigs", "Topic")."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_name(cls, text: str):
        """Parse "Read", "read", "DESCRIBE_CONFIGS", "DescribeConfigs". Raises ValueError naming the choices."""
        return _named(cls, text)


class ResourceType(_KafkaEnum):
    """Kafka's ResourceType (ANY only in filters)."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class ACLOperation(_KafkaEnum):
    """Kafka's AclOperation (ANY only in filters)."""

    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class ACLPermissionType(_KafkaEnum):
    """Kafka's AclPermissionType (ANY only in filters)."""

    ANY = 1
    DENY = 2
    ALLOW = 3


class ACLResourcePatternType(_KafkaEnum):
    """Kafka's PatternType (ANY and MATCH only in filters)."""

    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


@dataclasses.dataclass(frozen=True)
class ResourcePattern:
    """The resources an ACL applies to: `ResourcePattern(ResourceType.TOPIC, "orders")`, or every
    topic starting with "orders-" with `pattern_type=ACLResourcePatternType.PREFIXED`."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: ACLResourcePatternType = ACLResourcePatternType.LITERAL

    @classmethod
    def cluster(cls) -> ResourcePattern:
        return cls(ResourceType.CLUSTER, CLUSTER_NAME)


@dataclasses.dataclass(frozen=True)
class ResourcePatternFilter:
    """Matches resource patterns: ANY / None match everything; MATCH matches every pattern that
    applies to `resource_name` (literal, "*" or a prefix of it)."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: ACLResourcePatternType = ACLResourcePatternType.ANY


@dataclasses.dataclass(frozen=True)
class ACL:
    """One ACL binding: `principal` ("User:alice", "User:*") from `host` ("*" for any) may
    (ALLOW) or may not (DENY) do `operation` on the resources of `resource_pattern`."""

    principal: str
    host: str
    operation: ACLOperation
    permission_type: ACLPermissionType
    resource_pattern: ResourcePattern

    def describe(self) -> str:
        """One line: "User:bob from * may Read topic 'a' (literal)"."""
        verb = "may" if self.permission_type is ACLPermissionType.ALLOW else "may not"
        pattern = self.resource_pattern
        return (
            f"{self.principal} from {self.host} {verb} {self.operation.kafka_name} "
            f"{pattern.resource_type.name.lower()} {pattern.resource_name!r} ({pattern.pattern_type.name.lower()})"
        )

    def to_proto(self) -> metadata_pb2.AclBindingRecord:
        return metadata_pb2.AclBindingRecord(
            resource_type=int(self.resource_pattern.resource_type),
            resource_name=self.resource_pattern.resource_name,
            pattern_type=int(self.resource_pattern.pattern_type),
            principal=self.principal,
            host=self.host,
            operation=int(self.operation),
            permission=int(self.permission_type),
        )

    @classmethod
    def from_proto(cls, record: metadata_pb2.AclBindingRecord) -> ACL:
        return cls(
            record.principal,
            record.host,
            ACLOperation(record.operation),
            ACLPermissionType(record.permission),
            ResourcePattern(ResourceType(record.resource_type), record.resource_name, ACLResourcePatternType(record.pattern_type)),
        )


@dataclasses.dataclass(frozen=True)
class ACLFilter:
    """Kafka's AclBindingFilter: None / ANY fields match everything. `ACLFilter()` matches every ACL."""

    principal: str | None = None
    host: str | None = None
    operation: ACLOperation = ACLOperation.ANY
    permission_type: ACLPermissionType = ACLPermissionType.ANY
    resource_pattern: ResourcePatternFilter = ResourcePatternFilter()

    def to_proto(self) -> controller_pb2.AclBindingFilter:
        pattern = self.resource_pattern
        message = controller_pb2.AclBindingFilter(
            resource_type=int(pattern.resource_type),
            pattern_type=int(pattern.pattern_type),
            operation=int(self.operation),
            permission=int(self.permission_type),
        )
        if pattern.resource_name is not None:
            message.resource_name = pattern.resource_name
        if self.principal is not None:
            message.principal = self.principal
        if self.host is not None:
            message.host = self.host
        return message


@dataclasses.dataclass(frozen=True)
class ScramCredentialInfo:
    """One SCRAM credential of a user, as a describe shows it (never its salt or keys)."""

    mechanism: str
    """"SCRAM-SHA-256" or "SCRAM-SHA-512"."""
    iterations: int


@dataclasses.dataclass(frozen=True)
class UserScramCredentials:
    """A user and its SCRAM credentials' mechanisms and iterations."""

    name: str
    credentials: list[ScramCredentialInfo]


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Kafka's SaltedPassword (RFC 5802 Hi()): PBKDF2-HMAC with the mechanism's hash."""
    _, hash_name = SCRAM_MECHANISMS[mechanism]
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def scram_upsertion(name: str, password: str, mechanism: str, iterations: int, salt: bytes | None = None) -> controller_pb2.ScramCredentialUpsertion:
    """The upsertion of one mechanism's credential: a fresh random salt (unless given) and the
    SaltedPassword derived here; the password itself is not in it.

    Raises:
        UnsupportedSaslMechanismError: not SCRAM-SHA-256 or SCRAM-SHA-512.
        InvalidRequestError: an empty password, iterations outside Kafka's bounds.
    """
    key = mechanism.upper()
    if key not in SCRAM_MECHANISMS:
        raise UnsupportedSaslMechanismError(f"unknown SCRAM mechanism {mechanism!r} (use {', '.join(SCRAM_MECHANISMS)})")
    if not password:
        raise InvalidRequestError("the password is empty")
    if not SCRAM_ITERATIONS_MIN <= iterations <= SCRAM_ITERATIONS_MAX:
        raise InvalidRequestError(f"iterations {iterations} are outside {SCRAM_ITERATIONS_MIN}..{SCRAM_ITERATIONS_MAX}")
    salt = os.urandom(SCRAM_SALT_BYTES) if salt is None else salt
    return controller_pb2.ScramCredentialUpsertion(
        name=name,
        mechanism=SCRAM_MECHANISMS[key][0],
        iterations=iterations,
        salt=salt,
        salted_password=salted_password(key, password, salt, iterations),
    )


class SecurityAdmin(AdminCalls):
    """Users and ACLs (see the module docstring). Thread-safe."""

    # ---------------------------------------------------------------------------------------------
    # Users.

    def create_user(
        self,
        name: str,
        password: str,
        mechanisms: Sequence[str] = ("SCRAM-SHA-256", "SCRAM-SHA-512"),
        iterations: int = 8192,
    ) -> None:
        """Create `name` (or replace its credentials of these mechanisms) with `password`.

        The password never leaves this process: a salt and the SaltedPassword are computed here.

        Raises:
            InvalidRequestError: a bad user name, an empty password, no mechanism.
            UnacceptableCredentialError: iterations outside 4096..16384.
            UnsupportedSaslMechanismError: a mechanism other than SCRAM-SHA-256/512.
            ClusterAuthorizationFailedError: the caller may not Alter the cluster.
        """
        if not mechanisms:
            raise InvalidRequestError("give at least one SCRAM mechanism")
        request = controller_pb2.UpsertUserScramCredentialsRequest(
            request_id=self._request_id(),
            upsertions=[scram_upsertion(name, password, mechanism, iterations) for mechanism in mechanisms],
        )
        response = self._call("controller", "UpsertUserScramCredentials", request)
        for result in response.results:
            raise_for_detail(result.error)

    def delete_user(self, name: str) -> None:
        """Delete `name` with every credential it has, at once.

        Raises:
            ResourceNotFoundError: no such user.
            ClusterAuthorizationFailedError: the caller may not Alter the cluster.
        """
        request = controller_pb2.DeleteUserScramCredentialsRequest(
            request_id=self._request_id(), deletions=[controller_pb2.ScramCredentialDeletion(name=name, mechanism=0)]
        )
        response = self._call("controller", "DeleteUserScramCredentials", request)
        for result in response.results:
            raise_for_detail(result.error)

    def describe_user_scram_credentials(self, names: Iterable[str] | None = None) -> list[UserScramCredentials]:
        """The named users (every user when None), sorted by name, with their credentials'
        mechanisms and iterations.

        Raises:
            ResourceNotFoundError: a named user does not exist.
            ClusterAuthorizationFailedError: the caller may not Describe the cluster.
        """
        request = controller_pb2.DescribeUserScramCredentialsRequest(names=sorted(set(names or ())))
        response = self._call("controller", "DescribeUserScramCredentials", request)
        users = []
        for user in response.users:
            raise_for_detail(user.error)
            users.append(UserScramCredentials(
                user.name,
                [ScramCredentialInfo(_MECHANISM_NAMES.get(c.mechanism, str(c.mechanism)), c.iterations) for c in user.credentials],
            ))
        return sorted(users, key=lambda u: u.name)

    def list_users(self) -> list[UserScramCredentials]:
        """Every user, sorted by name (see describe_user_scram_credentials)."""
        return self.describe_user_scram_credentials(None)

    # ---------------------------------------------------------------------------------------------
    # ACLs.

    def create_acls(self, acls: Iterable[ACL]) -> None:
        """Create ACL bindings (one that exists already is kept once).

        Each binding is applied on its own: when one is refused, the ones before it are created
        and the first refusal is raised naming its binding.

        Raises:
            InvalidRequestError: a binding Kafka's model cannot hold (an operation a resource type
                does not have, a cluster not called "kafka-cluster", a malformed principal...).
            ClusterAuthorizationFailedError: the caller may not Alter the cluster.
        """
        acls = list(acls)
        if not acls:
            return
        request = controller_pb2.CreateAclsRequest(request_id=self._request_id(), acls=[acl.to_proto() for acl in acls])
        response = self._call("controller", "CreateAcls", request)
        for acl, result in zip(acls, response.results, strict=True):
            raise_for_detail(result.error, acl.describe())

    def describe_acls(self, acl_filter: ACLFilter | None = None) -> list[ACL]:
        """The ACL bindings `acl_filter` matches (every binding when None), sorted.

        Raises:
            InvalidRequestError: a malformed filter.
            ClusterAuthorizationFailedError: the caller may not Describe the cluster.
        """
        request = controller_pb2.DescribeAclsRequest(filter=(acl_filter or ACLFilter()).to_proto())
        response = self._call("controller", "DescribeAcls", request)
        return [ACL.from_proto(record) for record in response.acls]

    def delete_acls(self, filters: Iterable[ACLFilter]) -> list[list[ACL]]:
        """Delete every ACL binding each filter matches; per filter, the bindings it deleted.

        Raises:
            InvalidRequestError: a malformed filter.
            ClusterAuthorizationFailedError: the caller may not Alter the cluster.
        """
        filters = list(filters)
        if not filters:
            return []
        request = controller_pb2.DeleteAclsRequest(request_id=self._request_id(), filters=[f.to_proto() for f in filters])
        response = self._call("controller", "DeleteAcls", request)
        deleted = []
        for result in response.results:
            raise_for_detail(result.error)
            deleted.append([ACL.from_proto(record) for record in result.acls])
        return deleted
