"""`freshet user` and `freshet acl`: parsing, exit codes, what reaches the SDK, what is printed.

Goal: INTERFACE.md's commands parse exactly as documented (Kafka's operation names in any case,
exactly one resource, --allow or --deny), bad input exits 2 with one line, a refusal exits 1 with
the server's line, the password is read from stdin only and never echoed. Method: the typer app in
process (CliRunner) with `common.make_admin` replaced by a fake Admin that records its calls.
"""

from __future__ import annotations

import json

import pytest
from freshet.cli import common
from freshet.cli.main import app
from freshet.client import errors
from freshet.client.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramCredentialInfo,
    UserScramCredentials,
)
from typer.testing import CliRunner

PASSWORD = "hunter2-but-longer"
READ_ORDERS = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.TOPIC, "orders"))


class FakeAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.refuse: errors.FreshetError | None = None
        self.deleted: list[list[ACL]] = [[READ_ORDERS]]

    def _record(self, *call):
        self.calls.append(call)
        if self.refuse is not None:
            raise self.refuse

    def create_user(self, name, password, mechanisms, iterations):
        self._record("create_user", name, password, tuple(mechanisms), iterations)

    def delete_user(self, name):
        self._record("delete_user", name)

    def list_users(self):
        self._record("list_users")
        return [UserScramCredentials("alice", [ScramCredentialInfo("SCRAM-SHA-256", 8192), ScramCredentialInfo("SCRAM-SHA-512", 8192)])]

    def create_acls(self, acls):
        self._record("create_acls", list(acls))

    def describe_acls(self, acl_filter):
        self._record("describe_acls", acl_filter)
        return [READ_ORDERS]

    def delete_acls(self, filters):
        self._record("delete_acls", list(filters))
        return self.deleted


@pytest.fixture
def admin(monkeypatch):
    fake = FakeAdmin()
    monkeypatch.setattr(common, "make_admin", lambda bootstrap, timeout_ms=30000: fake)
    return fake


def invoke(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def one_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_user_create_reads_the_password_from_stdin_and_never_prints_it(admin):
    result = invoke("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert admin.calls == [("create_user", "alice", PASSWORD, ("SCRAM-SHA-256", "SCRAM-SHA-512"), 8192)]
    result = invoke("user", "create", "bob", "--password-stdin", "--mechanism", "scram-sha-512", "--iterations", "4096", input=PASSWORD)
    assert result.exit_code == 0, result.output
    assert admin.calls[-1] == ("create_user", "bob", PASSWORD, ("SCRAM-SHA-512",), 4096)


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (("user", "create", "alice"), PASSWORD, "give --password-stdin"),
        (("user", "create", "alice", "--password-stdin"), "", "no password"),
        (("user", "create", "alice", "--password-stdin"), "\n", "no password"),
        (("user", "create", "alice", "--password-stdin", "--mechanism", "PLAIN"), PASSWORD, "SCRAM-SHA-256 or SCRAM-SHA-512"),
    ],
)
def test_user_create_bad_input_exits_2_without_calling_the_cluster(admin, args, stdin, fragment):
    result = invoke(*args, input=stdin)
    assert result.exit_code == 2, result.output
    assert fragment in one_line(result)
    assert PASSWORD not in result.output
    assert admin.calls == []


def test_user_create_an_invalid_name_the_cluster_refuses_is_a_usage_error(admin):
    admin.refuse = errors.InvalidRequestError("user name 'a b' contains a separator, a space or an unprintable character")
    result = invoke("user", "create", "a b", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 2 and "separator" in one_line(result)


def test_user_list_table_and_json(admin):
    table = invoke("user", "list")
    assert table.exit_code == 0 and "alice" in table.output and "SCRAM-SHA-512 (8192)" in table.output
    listed = json.loads(invoke("user", "list", "--output", "json").output)
    assert listed == [{"name": "alice", "credentials": [
        {"mechanism": "SCRAM-SHA-256", "iterations": 8192}, {"mechanism": "SCRAM-SHA-512", "iterations": 8192},
    ]}]


def test_a_refusal_exits_1_with_the_line_naming_the_missing_right(admin):
    admin.refuse = errors.ClusterAuthorizationFailedError("User:bob is not authorized to Alter the cluster")
    result = invoke("user", "delete", "alice")
    assert result.exit_code == 1
    assert one_line(result) == "error: User:bob is not authorized to Alter the cluster"
    result = invoke("acl", "add", "--allow", "--principal", "User:bob", "--operation", "Read", "--topic", "a")
    assert result.exit_code == 1 and "not authorized to Alter the cluster" in one_line(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--allow", "--principal", "User:alice", "--operation", "read", "--topic", "orders"), READ_ORDERS),
        (
            ("--deny", "--principal", "User:*", "--operation", "DESCRIBE_CONFIGS", "--topic", "eu-", "--pattern", "PREFIXED", "--host", "10.0.0.1"),
            ACL("User:*", "10.0.0.1", ACLOperation.DESCRIBE_CONFIGS, ACLPermissionType.DENY,
                ResourcePattern(ResourceType.TOPIC, "eu-", ACLResourcePatternType.PREFIXED)),
        ),
        (
            ("--allow", "--principal", "User:ops", "--operation", "ClusterAction", "--cluster"),
            ACL("User:ops", "*", ACLOperation.CLUSTER_ACTION, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.CLUSTER, "kafka-cluster")),
        ),
        (
            ("--allow", "--principal", "User:app", "--operation", "all", "--group", "billing"),
            ACL("User:app", "*", ACLOperation.ALL, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.GROUP, "billing")),
        ),
    ],
)
def test_acl_add_builds_the_binding_the_options_name(admin, args, expected):
    result = invoke("acl", "add", *args)
    assert result.exit_code == 0, result.output
    assert admin.calls == [("create_acls", [expected])]
    assert result.output.strip() == f"added: {expected.describe()}"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--principal", "User:a", "--operation", "Read", "--topic", "t"), "exactly one of --allow, --deny"),
        (("--allow", "--deny", "--principal", "User:a", "--operation", "Read", "--topic", "t"), "exactly one of --allow, --deny"),
        (("--allow", "--principal", "Group:a", "--operation", "Read", "--topic", "t"), "User:NAME"),
        (("--allow", "--principal", "User:", "--operation", "Read", "--topic", "t"), "User:NAME"),
        (("--allow", "--principal", "User:a", "--operation", "Any", "--topic", "t"), "use one of Read"),
        (("--allow", "--principal", "User:a", "--operation", "Read"), "exactly one of --topic T"),
        (("--allow", "--principal", "User:a", "--operation", "Read", "--topic", "t", "--cluster"), "exactly one of --topic T"),
        (("--allow", "--principal", "User:a", "--operation", "Read", "--topic", "t", "--pattern", "match"), "literal or prefixed"),
        (("--allow", "--principal", "User:a", "--operation", "Read", "--topic", "t", "--host", ""), "--host"),
        (("--allow", "--operation", "Read", "--topic", "t"), "--principal"),
    ],
)
def test_acl_add_bad_input_exits_2_with_one_line(admin, args, fragment):
    result = invoke("acl", "add", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert admin.calls == []


def test_acl_list_filters_by_principal_and_resource(admin):
    result = invoke("acl", "list", "--principal", "User:alice", "--topic", "orders", "--output", "json")
    assert result.exit_code == 0, result.output
    assert admin.calls == [("describe_acls", ACLFilter(
        principal="User:alice", resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders", ACLResourcePatternType.ANY)
    ))]
    assert json.loads(result.output) == [{
        "principal": "User:alice", "host": "*", "operation": "Read", "permission": "allow",
        "resource_type": "topic", "resource_name": "orders", "pattern_type": "literal",
    }]
    invoke("acl", "list", "--group", "g", "--pattern", "match")
    assert admin.calls[-1] == ("describe_acls", ACLFilter(resource_pattern=ResourcePatternFilter(ResourceType.GROUP, "g", ACLResourcePatternType.MATCH)))
    invoke("acl", "list")
    assert admin.calls[-1] == ("describe_acls", ACLFilter())
    both = invoke("acl", "list", "--topic", "t", "--group", "g")
    assert both.exit_code == 2 and "at most one" in one_line(both)


def test_acl_remove_deletes_exactly_the_named_binding_and_says_when_there_was_none(admin):
    result = invoke("acl", "remove", "--allow", "--principal", "User:alice", "--operation", "Read", "--topic", "orders")
    assert result.exit_code == 0, result.output
    [(_, [exact])] = admin.calls
    assert exact == ACLFilter(
        principal="User:alice", host="*", operation=ACLOperation.READ, permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL),
    )
    admin.deleted = [[]]
    missing = invoke("acl", "remove", "--allow", "--principal", "User:alice", "--operation", "Read", "--topic", "orders")
    assert missing.exit_code == 1 and "no such ACL" in one_line(missing)
