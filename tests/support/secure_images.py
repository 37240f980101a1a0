"""A metadata image with users and ACLs, for the console's security tests (unit, HTTP, browser).

Not a test module. Built through the real commands and state machine (tests/support/metadata_script.py),
so the image is what a node would hold after `freshet user create` and `freshet acl add`:

    users (password = "<name>-pw"): alice, bob, eve, scraper, admin (a super user)
    topics: orders, payments, audit-log; groups (console rows): billing, shipping
    alice   Describe topic orders (literal), Read topics prefixed "pay" (implies Describe),
            Describe group billing; nothing on the cluster
    bob     Describe on the cluster; nothing on topics or groups
    eve     All on every topic ("*") but Deny Describe on payments (deny beats allow)
    scraper Describe on the cluster (reads /metrics)
"""

from __future__ import annotations

from freshet.metadata import commands
from freshet.metadata.image import MetadataImage
from freshet.metadata.security import (
    CLUSTER_NAME,
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
    ScramMechanism,
)
from freshet.server.security.authorizer import SecuritySettings

from tests.support.metadata_script import Script

USERS = ("alice", "bob", "eve", "scraper", "admin")
TOPICS = ("orders", "payments", "audit-log")
GROUPS = [
    {"group": "billing", "state": "stable", "generation": 3, "members": 2, "lag": 17},
    {"group": "shipping", "state": "empty", "generation": 1, "members": 0, "lag": 0},
]
SETTINGS = SecuritySettings(enabled=True, super_users=frozenset({"User:admin"}))


def password(user: str) -> str:
    return f"{user}-pw"


def _acl(resource_type, name, principal, operation, permission=Permission.ALLOW, pattern=PatternType.LITERAL):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


ACLS = (
    _acl(ResourceType.TOPIC, "orders", "User:alice", Operation.DESCRIBE),
    _acl(ResourceType.TOPIC, "pay", "User:alice", Operation.READ, pattern=PatternType.PREFIXED),
    _acl(ResourceType.GROUP, "billing", "User:alice", Operation.DESCRIBE),
    _acl(ResourceType.CLUSTER, CLUSTER_NAME, "User:bob", Operation.DESCRIBE),
    _acl(ResourceType.TOPIC, "*", "User:eve", Operation.ALL),
    _acl(ResourceType.TOPIC, "payments", "User:eve", Operation.DESCRIBE, Permission.DENY),
    _acl(ResourceType.CLUSTER, CLUSTER_NAME, "User:scraper", Operation.DESCRIBE),
)


def secure_image() -> MetadataImage:
    """The image described in the module docstring (a 3-broker cluster)."""
    s = Script()
    s.cluster(3)
    for topic in TOPICS:
        s.topic(topic, [([1, 2, 3], [1, 2, 3], 1)])
    for index, user in enumerate(USERS):
        # Alternate the mechanisms: a login must accept a user holding either one.
        mechanism = ScramMechanism.SCRAM_SHA_512 if index % 2 else ScramMechanism.SCRAM_SHA_256
        credential = ScramCredential.from_password(mechanism, password(user), 4096)
        s.ok(commands.upsert_user_credential(s.rid(), s.image.controller_epoch, user, credential))
    s.ok(commands.create_acls(s.rid(), s.image.controller_epoch, ACLS))
    return s.image
