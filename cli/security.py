"""`freshet user ...` and `freshet acl ...`: SCRAM users and Kafka-model ACLs (kafka-configs.sh's
SCRAM half and kafka-acls.sh). Thin: parses, calls `freshet.client.Admin`, renders.

A password is read from stdin only (`--password-stdin`), never from the command line (it would
show in `ps` and shell history), and never printed; the SDK derives the SCRAM credential before
anything leaves the process. Bad input exits 2 with one line; a refusal (a missing right) exits 1
with the server's line naming the right.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from freshet.cli import common
from freshet.cli.common import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    Output,
    OutputFormat,
    reporting_errors,
    usage_error,
)
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
)

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
OPERATIONS_HELP = "Read, Write, Create, Delete, Alter, Describe, AlterConfigs, DescribeConfigs, ClusterAction, IdempotentWrite, All"

user_app = typer.Typer(name="user", help="Create, list and delete SCRAM users (kafka-configs --entity-type users).", no_args_is_help=True)
acl_app = typer.Typer(name="acl", help="Add, list and remove ACLs (kafka-acls).", no_args_is_help=True)


# =================================================================================================
# Users.


def read_password(stream=None) -> str:
    """The password on stdin: its first line without the line ending. Empty: a usage error."""
    stream = sys.stdin if stream is None else stream
    line = stream.readline()
    password = line.rstrip("\r\n")
    if not password:
        usage_error("--password-stdin: stdin holds no password (pipe one in, e.g. from a file)")
    return password


@user_app.command("create")
def user_create(
    name: str = typer.Argument(..., help="User name (no ':', ';', ',', '=', spaces), the principal is User:NAME."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin (required)."),
    mechanism: Annotated[
        list[str] | None, typer.Option("--mechanism", help="SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).")
    ] = None,
    iterations: int = typer.Option(8192, "--iterations", min=4096, max=16384, help="SCRAM iterations."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Create a user, or set a new password for one (its credentials of these mechanisms).

    Examples:

      printf '%s\\n' "$PASSWORD" | freshet user create alice --password-stdin

      freshet user create bob --password-stdin --mechanism SCRAM-SHA-512 < bob.password
    """
    if not password_stdin:
        usage_error("give --password-stdin: the password is read from stdin, never from the command line")
    mechanisms = [m.upper() for m in mechanism] if mechanism else list(SCRAM_MECHANISMS)
    unknown = [m for m in mechanisms if m not in SCRAM_MECHANISMS]
    if unknown:
        usage_error(f"--mechanism {unknown[0]!r}: use {' or '.join(SCRAM_MECHANISMS)}")
    password = read_password()
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        try:
            admin.create_user(name, password, mechanisms=mechanisms, iterations=iterations)
        except errors.InvalidRequestError as error:
            usage_error(error.message)
    typer.echo(f"user {name}: {', '.join(mechanisms)} credentials set ({iterations} iterations)")


@user_app.command("list")
def user_list(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.table) -> None:
    """List users with their SCRAM mechanisms and iterations (never salts or keys).

    Examples:

      freshet user list

      freshet user list --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        users = admin.list_users()
    if output == OutputFormat.json:
        common.print_json([
            {"name": u.name, "credentials": [{"mechanism": c.mechanism, "iterations": c.iterations} for c in u.credentials]}
            for u in users
        ])
        return
    if not users:
        typer.echo("no users (create one with: freshet user create NAME --password-stdin)")
        return
    common.print_table(
        ["USER", "MECHANISMS"],
        [(u.name, ", ".join(f"{c.mechanism} ({c.iterations})" for c in u.credentials)) for u in users],
    )


@user_app.command("delete")
def user_delete(name: str = typer.Argument(..., help="The user."), bootstrap: Bootstrap = DEFAULT_BOOTSTRAP) -> None:
    """Delete a user and every credential it has. Its ACLs stay (remove them with freshet acl remove).

    Example:

      freshet user delete alice
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        admin.delete_user(name)
    typer.echo(f"deleted user {name}")


# =================================================================================================
# ACLs.


def parse_principal(text: str) -> str:
    kind, colon, name = text.partition(":")
    if not colon or kind != "User" or not name:
        usage_error(f"--principal {text!r}: expected User:NAME (User:* for everyone)")
    return text


def parse_operation(text: str) -> ACLOperation:
    try:
        operation = ACLOperation.from_name(text)
    except ValueError:
        operation = ACLOperation.ANY
    if operation is ACLOperation.ANY:
        usage_error(f"--operation {text!r}: use one of {OPERATIONS_HELP}")
    return operation


def parse_pattern(text: str, allowed: tuple[str, ...]) -> ACLResourcePatternType:
    if text.lower() not in allowed:
        usage_error(f"--pattern {text!r}: use {' or '.join(allowed)}")
    return ACLResourcePatternType.from_name(text)


def resource_of(topic: str | None, group: str | None, cluster: bool) -> tuple[ResourceType, str]:
    """The one resource --topic / --group / --cluster names (usage error unless exactly one)."""
    given = [(ResourceType.TOPIC, topic), (ResourceType.GROUP, group), (ResourceType.CLUSTER, "kafka-cluster" if cluster else None)]
    chosen = [(kind, name) for kind, name in given if name is not None]
    if len(chosen) != 1:
        usage_error("give exactly one of --topic T, --group G, --cluster")
    kind, name = chosen[0]
    if not name:
        usage_error(f"--{kind.name.lower()}: the name is empty")
    return kind, name


def binding_from_options(
    allow: bool, deny: bool, principal: str, operation: str, topic: str | None, group: str | None, cluster: bool,
    pattern: str, host: str,
) -> ACL:
    """The one ACL that `acl add` / `acl remove` options describe (usage errors for bad input)."""
    if allow == deny:
        usage_error("give exactly one of --allow, --deny")
    kind, name = resource_of(topic, group, cluster)
    pattern_type = parse_pattern(pattern, ("literal", "prefixed"))
    if not host:
        usage_error("--host: empty (use '*' for every host)")
    return ACL(
        parse_principal(principal),
        host,
        parse_operation(operation),
        ACLPermissionType.ALLOW if allow else ACLPermissionType.DENY,
        ResourcePattern(kind, name, pattern_type),
    )


def acl_json(acl: ACL) -> dict:
    pattern = acl.resource_pattern
    return {
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation.kafka_name,
        "permission": acl.permission_type.name.lower(),
        "resource_type": pattern.resource_type.name.lower(),
        "resource_name": pattern.resource_name,
        "pattern_type": pattern.pattern_type.name.lower(),
    }


def print_acls(acls: list[ACL]) -> None:
    common.print_table(
        ["PRINCIPAL", "HOST", "PERMISSION", "OPERATION", "RESOURCE", "NAME", "PATTERN"],
        [
            (a.principal, a.host, a.permission_type.name.lower(), a.operation.kafka_name,
             a.resource_pattern.resource_type.name.lower(), a.resource_pattern.resource_name,
             a.resource_pattern.pattern_type.name.lower())
            for a in acls
        ],
    )


Allow = Annotated[bool, typer.Option("--allow", help="Grant the operation.")]
Deny = Annotated[bool, typer.Option("--deny", help="Refuse the operation (deny beats allow).")]
Principal = Annotated[str, typer.Option("--principal", help="User:NAME, or User:* for everyone.")]
OperationOption = Annotated[str, typer.Option("--operation", help=f"Kafka's operation: {OPERATIONS_HELP} (any case).")]
Topic = Annotated[str | None, typer.Option("--topic", help="A topic (or topic prefix with --pattern prefixed); '*' for every topic.")]
Group = Annotated[str | None, typer.Option("--group", help="A consumer group (or prefix); '*' for every group.")]
Cluster = Annotated[bool, typer.Option("--cluster", help="The cluster itself (create topics, alter configs and ACLs...).")]
Pattern = Annotated[str, typer.Option("--pattern", help="literal (the exact name) or prefixed (every name starting with it).")]
Host = Annotated[str, typer.Option("--host", help="The client address it applies to ('*': any).")]


@acl_app.command("add")
def acl_add(
    allow: Allow = False,
    deny: Deny = False,
    principal: Principal = ...,
    operation: OperationOption = ...,
    topic: Topic = None,
    group: Group = None,
    cluster: Cluster = False,
    pattern: Pattern = "literal",
    host: Host = "*",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Add an ACL. Every broker enforces it within about a second.

    Examples:

      freshet acl add --allow --principal User:alice --operation Read --topic orders

      freshet acl add --allow --principal User:alice --operation Write --topic orders- --pattern prefixed

      freshet acl add --allow --principal User:alice --operation Read --group billing

      freshet acl add --deny --principal User:mallory --operation All --cluster
    """
    acl = binding_from_options(allow, deny, principal, operation, topic, group, cluster, pattern, host)
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        try:
            admin.create_acls([acl])
        except errors.InvalidRequestError as error:
            usage_error(error.message)
    typer.echo(f"added: {acl.describe()}")


@acl_app.command("list")
def acl_list(
    principal: Annotated[str | None, typer.Option("--principal", help="Only this principal's ACLs (User:NAME).")] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="Only ACLs whose pattern is this topic name.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only ACLs whose pattern is this group name.")] = None,
    cluster: Annotated[bool, typer.Option("--cluster", help="Only ACLs of the cluster.")] = False,
    pattern: Annotated[
        str, typer.Option("--pattern", help="any (default), literal, prefixed, or match: every ACL that applies to the named resource.")
    ] = "any",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """List ACLs, optionally only a principal's or a resource's.

    Examples:

      freshet acl list

      freshet acl list --principal User:alice --output json

      freshet acl list --topic orders-eu --pattern match    # what applies to topic orders-eu
    """
    if principal is not None:
        parse_principal(principal)
    if sum(x is not None for x in (topic, group)) + cluster > 1:
        usage_error("give at most one of --topic, --group, --cluster")
    pattern_type = parse_pattern(pattern, ("any", "literal", "prefixed", "match"))
    if topic is not None or group is not None or cluster:
        kind, name = resource_of(topic, group, cluster)
        resource = ResourcePatternFilter(kind, name, pattern_type)
    else:
        resource = ResourcePatternFilter(pattern_type=pattern_type)
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        acls = admin.describe_acls(ACLFilter(principal=principal, resource_pattern=resource))
    if output == OutputFormat.json:
        common.print_json([acl_json(a) for a in acls])
        return
    if not acls:
        typer.echo("no ACLs")
        return
    print_acls(acls)


@acl_app.command("remove")
def acl_remove(
    allow: Allow = False,
    deny: Deny = False,
    principal: Principal = ...,
    operation: OperationOption = ...,
    topic: Topic = None,
    group: Group = None,
    cluster: Cluster = False,
    pattern: Pattern = "literal",
    host: Host = "*",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Remove the ACL these options name exactly (the same options as acl add).

    Example:

      freshet acl remove --allow --principal User:alice --operation Read --topic orders
    """
    acl = binding_from_options(allow, deny, principal, operation, topic, group, cluster, pattern, host)
    exact = ACLFilter(
        principal=acl.principal,
        host=acl.host,
        operation=acl.operation,
        permission_type=acl.permission_type,
        resource_pattern=ResourcePatternFilter(
            acl.resource_pattern.resource_type, acl.resource_pattern.resource_name, acl.resource_pattern.pattern_type
        ),
    )
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        [removed] = admin.delete_acls([exact])
    if not removed:
        common.fail(f"no such ACL: {acl.describe()}; see them with: freshet acl list")
    typer.echo(f"removed: {acl.describe()}")
