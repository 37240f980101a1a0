"""Users and access control as replicated metadata: SCRAM credentials, ACL bindings, `authorize`.

Owns the security model every front-end shares (gRPC, the Kafka listener, the console):

- `ScramCredential`: what verifies a password without being one (RFC 5802/7677: salt,
  iterations, StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
  HMAC(SaltedPassword, "Server Key")), its derivation and the server side of the proof check.
- `AclBinding` (Kafka's model: principal, host, operation, allow/deny on a resource pattern, with
  Kafka's enum numbers), `AclFilter` (Kafka's DescribeAcls/DeleteAcls filters) and `AclSet`, the
  image's indexed, sorted set of bindings.
- `authorize(...)`: the one pure decision, as Kafka's StandardAuthorizer decides it: super users
  may do everything; a matching DENY beats any ALLOW; ALL matches every operation; Describe is
  implied by Read, Write, Delete and Alter, DescribeConfigs by AlterConfigs; a resource no binding
  matches is allowed only when `allow_if_no_acl` (Kafka's allow.everyone.if.no.acl.found).
  Bindings match a resource by literal name, the literal wildcard "*", or a prefix.

Imports: standard library only (hashlib, hmac). Randomness only in `ScramCredential.from_password`
(a fresh salt), which proposers call; the state machine never does.
Thread-safety: every class is immutable; functions are pure.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator, Mapping

# ---------------------------------------------------------------------------------------------
# Principals
# ---------------------------------------------------------------------------------------------

USER_TYPE = "User"
#: The principal of a connection that did not authenticate.
ANONYMOUS = "User:ANONYMOUS"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
USER_NAME_CHARS_MAX = 255


def user_principal(name: str) -> str:
    """The principal text of the user called `name` ("User:NAME")."""
    return f"{USER_TYPE}:{name}"


def principal_problem(principal: str) -> str | None:
    """Why `principal` is not a valid "Type:name" principal, or None."""
    kind, colon, name = principal.partition(":")
    if not colon or not kind or not name:
        return f"principal {principal!r} is not of the form User:NAME"
    if kind != USER_TYPE:
        return f"principal type {kind!r} is not supported (only {USER_TYPE})"
    return None


def parse_super_users(text: str) -> frozenset[str]:
    """Kafka's `super.users` ("User:a;User:b") as a set of principals. Raises ValueError."""
    principals = frozenset(part.strip() for part in text.split(";") if part.strip())
    for principal in principals:
        problem = principal_problem(principal)
        if problem is not None:
            raise ValueError(problem)
    return principals


# ---------------------------------------------------------------------------------------------
# SCRAM credentials
# ---------------------------------------------------------------------------------------------


class ScramMechanism(enum.IntEnum):
    """Kafka's ScramMechanism numbers."""

    SCRAM_SHA_256 = 1
    SCRAM_SHA_512 = 2

    @property
    def mechanism_name(self) -> str:
        """The SASL name ("SCRAM-SHA-256")."""
        return self.name.replace("_", "-")

    @property
    def hash_name(self) -> str:
        """hashlib's name of the mechanism's hash."""
        return "sha256" if self is ScramMechanism.SCRAM_SHA_256 else "sha512"

    @property
    def digest_size(self) -> int:
        return hashlib.new(self.hash_name).digest_size

    @classmethod
    def from_name(cls, name: str) -> ScramMechanism:
        """The mechanism called `name` ("SCRAM-SHA-512"). Raises ValueError naming the choices."""
        for mechanism in cls:
            if mechanism.mechanism_name == name.upper():
                return mechanism
        choices = ", ".join(m.mechanism_name for m in cls)
        raise ValueError(f"unknown SCRAM mechanism {name!r} (use {choices})")


#: Kafka's bounds on SCRAM iterations (ScramMechanism.minIterations / maxIterations).
SCRAM_ITERATIONS_MIN = 4096
SCRAM_ITERATIONS_MAX = 16384
SCRAM_ITERATIONS_DEFAULT = 8192
SCRAM_SALT_BYTES = 32
SCRAM_SALT_BYTES_MAX = 64


def salted_password(mechanism: ScramMechanism, password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 Hi(Normalize(password), salt, i): PBKDF2-HMAC with the mechanism's hash."""
    return hashlib.pbkdf2_hmac(mechanism.hash_name, password, salt, iterations)


def _hmac(mechanism: ScramMechanism, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, mechanism.hash_name).digest()


@dataclasses.dataclass(frozen=True, slots=True)
class ScramCredential:
    """One user's credential for one SCRAM mechanism. Thread-safe (immutable).

    `repr` leaves out the keys and salt: a credential may be logged by accident, its secrets not.
    """

    mechanism: ScramMechanism
    salt: bytes = dataclasses.field(repr=False)
    stored_key: bytes = dataclasses.field(repr=False)
    server_key: bytes = dataclasses.field(repr=False)
    iterations: int

    @classmethod
    def from_salted_password(
        cls, mechanism: ScramMechanism, salt: bytes, salted: bytes, iterations: int
    ) -> ScramCredential:
        """The credential of a SaltedPassword (what Kafka's AlterUserScramCredentials carries)."""
        client_key = _hmac(mechanism, salted, b"Client Key")
        stored_key = hashlib.new(mechanism.hash_name, client_key).digest()
        server_key = _hmac(mechanism, salted, b"Server Key")
        return cls(mechanism, salt, stored_key, server_key, iterations)

    @classmethod
    def from_password(
        cls, mechanism: ScramMechanism, password: str, iterations: int = SCRAM_ITERATIONS_DEFAULT,
        salt: bytes | None = None,
    ) -> ScramCredential:
        """A credential for `password` with a fresh random salt unless `salt` is given."""
        salt = os.urandom(SCRAM_SALT_BYTES) if salt is None else salt
        salted = salted_password(mechanism, password.encode(), salt, iterations)
        return cls.from_salted_password(mechanism, salt, salted, iterations)

    def problem(self) -> str | None:
        """Why this credential is unacceptable (Kafka's UNACCEPTABLE_CREDENTIAL), or None."""
        if not SCRAM_ITERATIONS_MIN <= self.iterations <= SCRAM_ITERATIONS_MAX:
            return (
                f"{self.mechanism.mechanism_name} iterations {self.iterations} are outside "
                f"{SCRAM_ITERATIONS_MIN}..{SCRAM_ITERATIONS_MAX}"
            )
        if not 1 <= len(self.salt) <= SCRAM_SALT_BYTES_MAX:
            return f"the salt must be 1..{SCRAM_SALT_BYTES_MAX} bytes, not {len(self.salt)}"
        size = self.mechanism.digest_size
        if len(self.stored_key) != size or len(self.server_key) != size:
            return f"{self.mechanism.mechanism_name} keys must be {size} bytes"
        return None

    def client_key_matches(self, client_key: bytes) -> bool:
        """Whether H(client_key) is the stored key (constant time)."""
        return hmac.compare_digest(hashlib.new(self.mechanism.hash_name, client_key).digest(), self.stored_key)

    def verify_password(self, password: str) -> bool:
        """Whether `password` is this credential's password (SASL/PLAIN, the console's login)."""
        salted = salted_password(self.mechanism, password.encode(), self.salt, self.iterations)
        return self.client_key_matches(_hmac(self.mechanism, salted, b"Client Key"))

    def verify_proof(self, auth_message: bytes, proof: bytes) -> bool:
        """Whether a SCRAM ClientProof is valid for `auth_message` (RFC 5802 §3, server side)."""
        signature = _hmac(self.mechanism, self.stored_key, auth_message)
        if len(proof) != len(signature):
            return False
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        return self.client_key_matches(client_key)

    def server_signature(self, auth_message: bytes) -> bytes:
        """The ServerSignature the client checks to know the server holds the credential."""
        return _hmac(self.mechanism, self.server_key, auth_message)


def user_name_problem(name: str) -> str | None:
    """Why `name` cannot be a user name, or None."""
    if not 1 <= len(name) <= USER_NAME_CHARS_MAX:
        return f"a user name must be 1..{USER_NAME_CHARS_MAX} characters"
    if any(ch in name for ch in ":;,= \t\r\n") or not name.isprintable():
        return f"user name {name!r} contains a separator, a space or an unprintable character"
    return None


# ---------------------------------------------------------------------------------------------
# ACLs
# ---------------------------------------------------------------------------------------------


class ResourceType(enum.IntEnum):
    """Kafka's ResourceType numbers (ANY only in filters)."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(enum.IntEnum):
    """Kafka's PatternType numbers (ANY and MATCH only in filters)."""

    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    """Kafka's AclOperation numbers (ANY only in filters)."""

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

    @property
    def kafka_name(self) -> str:
        """Kafka's spelling ("DescribeConfigs")."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_name(cls, text: str) -> Operation:
        """Parse "Read", "read", "DESCRIBE_CONFIGS", "DescribeConfigs". Raises ValueError."""
        key = text.replace("-", "").replace("_", "").lower()
        for operation in cls:
            if operation is not Operation.ANY and operation.name.replace("_", "").lower() == key:
                return operation
        choices = ", ".join(o.kafka_name for o in cls if o is not Operation.ANY)
        raise ValueError(f"unknown operation {text!r} (use one of {choices})")


class Permission(enum.IntEnum):
    """Kafka's AclPermissionType numbers (ANY only in filters)."""

    ANY = 1
    DENY = 2
    ALLOW = 3


#: The one cluster resource's name (Kafka's).
CLUSTER_NAME = "kafka-cluster"
WILDCARD_RESOURCE = "*"

#: Operations each resource type has (Kafka's), besides ALL.
RESOURCE_OPERATIONS: Mapping[ResourceType, frozenset[Operation]] = {
    ResourceType.TOPIC: frozenset({
        Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE, Operation.ALTER,
        Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS,
    }),
    ResourceType.GROUP: frozenset({Operation.READ, Operation.DELETE, Operation.DESCRIBE}),
    ResourceType.CLUSTER: frozenset({
        Operation.CREATE, Operation.ALTER, Operation.DESCRIBE, Operation.CLUSTER_ACTION,
        Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE,
    }),
    ResourceType.TRANSACTIONAL_ID: frozenset({Operation.WRITE, Operation.DESCRIBE}),
}

#: An allowed operation that implies others (Kafka: Describe from Read/Write/Delete/Alter,
#: DescribeConfigs from AlterConfigs).
_IMPLIED_BY: Mapping[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ACL: `permission` for `principal` from `host` to do `operation` on the resources that
    `resource_name` names under `pattern_type`. Ordered field by field (the snapshot's order).
    Thread-safe (immutable)."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def problem(self) -> str | None:
        """Why this binding cannot be stored (Kafka's INVALID_REQUEST reasons), or None."""
        if self.resource_type not in RESOURCE_OPERATIONS:
            return f"resource type {self.resource_type.name} cannot carry an ACL"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"pattern type {self.pattern_type.name} cannot be stored (use LITERAL or PREFIXED)"
        if not self.resource_name:
            return "the resource name is empty"
        if self.resource_type is ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            return f"the cluster resource is called {CLUSTER_NAME!r}, not {self.resource_name!r}"
        if self.pattern_type is PatternType.PREFIXED and self.resource_name == WILDCARD_RESOURCE:
            return "a prefixed pattern of '*' is not allowed (use a literal '*')"
        if self.operation is Operation.ANY or (
            self.operation is not Operation.ALL and self.operation not in RESOURCE_OPERATIONS[self.resource_type]
        ):
            return f"operation {self.operation.kafka_name} does not apply to a {self.resource_type.name.lower()}"
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            return "the permission must be ALLOW or DENY"
        if not self.host:
            return "the host is empty (use '*' for every host)"
        principal = principal_problem(self.principal)
        if principal is not None:
            return principal
        return None

    def matches_resource(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this binding's pattern covers the resource `name` of `resource_type`."""
        if self.resource_type is not resource_type:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return self.resource_name in (name, WILDCARD_RESOURCE)

    def describe(self) -> str:
        """One readable line ("User:alice from * may Read topic a (literal)") for logs and the CLI."""
        verb = "may" if self.permission is Permission.ALLOW else "may not"
        return (
            f"{self.principal} from {self.host} {verb} {self.operation.kafka_name} "
            f"{self.resource_type.name.lower()} {self.resource_name!r} ({self.pattern_type.name.lower()})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's AclBindingFilter: None or ANY matches everything in that field; pattern MATCH
    matches every binding that applies to the named resource (literal, wildcard or prefix)."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        if self.resource_type is not ResourceType.ANY and binding.resource_type is not self.resource_type:
            return False
        if not self._matches_pattern(binding):
            return False
        if self.principal is not None and binding.principal != self.principal:
            return False
        if self.host is not None and binding.host != self.host:
            return False
        if self.operation is not Operation.ANY and binding.operation is not self.operation:
            return False
        return self.permission is Permission.ANY or binding.permission is self.permission

    def _matches_pattern(self, binding: AclBinding) -> bool:
        if self.pattern_type is PatternType.MATCH:
            if self.resource_name is None:
                return True
            return binding.matches_resource(binding.resource_type, self.resource_name)
        if self.pattern_type is not PatternType.ANY and binding.pattern_type is not self.pattern_type:
            return False
        return self.resource_name is None or binding.resource_name == self.resource_name


class AclSet:
    """The image's ACL bindings, sorted and indexed by resource. Thread-safe (immutable).

    Lookups cost a dict probe per literal name plus a scan of the prefixed bindings of one
    resource type, so thousands of literal bindings do not slow an authorization down.
    """

    __slots__ = ("_bindings", "_literal", "_prefixed")

    def __init__(self, bindings: Iterable[AclBinding] = ()) -> None:
        self._bindings: tuple[AclBinding, ...] = tuple(sorted(set(bindings)))
        literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        prefixed: dict[ResourceType, list[AclBinding]] = {}
        for binding in self._bindings:
            if binding.pattern_type is PatternType.PREFIXED:
                prefixed.setdefault(binding.resource_type, []).append(binding)
            else:
                literal.setdefault((binding.resource_type, binding.resource_name), []).append(binding)
        self._literal = {key: tuple(value) for key, value in literal.items()}
        self._prefixed = {key: tuple(value) for key, value in prefixed.items()}

    def __iter__(self) -> Iterator[AclBinding]:
        return iter(self._bindings)

    def __len__(self) -> int:
        return len(self._bindings)

    def __contains__(self, binding: object) -> bool:
        return isinstance(binding, AclBinding) and binding in self._literal_or_prefixed(binding)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AclSet) and self._bindings == other._bindings

    def __hash__(self) -> int:
        return hash(self._bindings)

    def __repr__(self) -> str:
        return f"AclSet({len(self._bindings)} bindings)"

    def _literal_or_prefixed(self, binding: AclBinding) -> tuple[AclBinding, ...]:
        if binding.pattern_type is PatternType.PREFIXED:
            return self._prefixed.get(binding.resource_type, ())
        return self._literal.get((binding.resource_type, binding.resource_name), ())

    def with_changes(self, added: Iterable[AclBinding] = (), removed: Iterable[AclBinding] = ()) -> AclSet:
        """A new set with `added` bindings and without `removed` ones."""
        gone = set(removed)
        return AclSet([b for b in self._bindings if b not in gone] + list(added))

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        """The bindings `acl_filter` matches, in order."""
        return [binding for binding in self._bindings if acl_filter.matches(binding)]

    def covering(self, resource_type: ResourceType, name: str) -> Iterator[AclBinding]:
        """Every binding whose pattern covers the resource (literal, wildcard, prefixes)."""
        yield from self._literal.get((resource_type, name), ())
        if name != WILDCARD_RESOURCE:
            yield from self._literal.get((resource_type, WILDCARD_RESOURCE), ())
        for binding in self._prefixed.get(resource_type, ()):
            if name.startswith(binding.resource_name):
                yield binding


EMPTY_ACLS = AclSet()


def authorize(
    acls: AclSet,
    principal: str,
    host: str,
    operation: Operation,
    resource_type: ResourceType,
    resource_name: str,
    super_users: frozenset[str] = frozenset(),
    allow_if_no_acl: bool = False,
) -> bool:
    """Whether `principal` connecting from `host` may do `operation` on the resource.

    Kafka's StandardAuthorizer: super users always may; a DENY binding for this principal (or
    User:*) and host (or *) with this operation (or ALL) refuses; otherwise an ALLOW binding with
    this operation, ALL, or an operation that implies it allows; a resource no binding covers at
    all is allowed only when `allow_if_no_acl`. Pure.
    """
    assert operation not in (Operation.ANY, Operation.ALL), "authorize a concrete operation"
    if principal in super_users:
        return True
    principals = (principal, WILDCARD_PRINCIPAL)
    hosts = (host, WILDCARD_HOST)
    allowing = {operation, Operation.ALL} | _IMPLIED_BY.get(operation, frozenset())
    any_binding = False
    allowed = False
    for binding in acls.covering(resource_type, resource_name):
        any_binding = True
        if binding.principal not in principals or binding.host not in hosts:
            continue
        if binding.permission is Permission.DENY:
            if binding.operation in (operation, Operation.ALL):
                return False
        elif binding.operation in allowing:
            allowed = True
    if not any_binding:
        return allow_if_no_acl
    return allowed
