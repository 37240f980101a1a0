"""Kafka's ACL APIs: CreateAcls (30), DescribeAcls (29) and DeleteAcls (31), v1-v3.

Owns their translation into the freshet.v1.Controller requests the gRPC path sends (the same
controller path: CreateAcls and DeleteAcls are forwarded to the active controller through
`admin_api.ControllerLink`; DescribeAcls reads this broker's image), and their answers in Kafka's
shapes for every advertised version. kio has no schema of v0 (Kafka 4 removed it), so v1 is the
oldest served; every client of the last years sends v1 or later.

Authorization (Kafka's): CreateAcls and DeleteAcls need Alter on the cluster, DescribeAcls
Describe on the cluster; a refusal is CLUSTER_AUTHORIZATION_FAILED on every item and changes
nothing. Each accepted change is one audit line and a metric (server.security.changes), written
here because only this broker knows the client's principal.

Imports: kio (through codec), freshet.metadata (commands, security), freshet.server (errors,
kafka, security, status), wire types. Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from freshet.metadata import commands
from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.errors import AuthorizationError
from freshet.server.kafka import codec
from freshet.server.kafka.admin_api import ControllerLink, detail_error
from freshet.server.security.authorizer import Authorizer
from freshet.server.security.changes import SecurityChanges
from freshet.server.security.management import binding_of, describe_acls, filter_of
from freshet.v1 import controller_pb2, metadata_pb2

ACL_VERSIONS = (1, 3)


def _record(resource_type, resource_name, pattern_type, principal, host, operation, permission) -> metadata_pb2.AclBindingRecord:
    return metadata_pb2.AclBindingRecord(
        resource_type=int(resource_type),
        resource_name=resource_name,
        pattern_type=int(pattern_type),
        principal=principal,
        host=host,
        operation=int(operation),
        permission=int(permission),
    )


def _filter(resource_type, resource_name, pattern_type, principal, host, operation, permission) -> controller_pb2.AclBindingFilter:
    message = controller_pb2.AclBindingFilter(
        resource_type=int(resource_type), pattern_type=int(pattern_type), operation=int(operation), permission=int(permission)
    )
    if resource_name is not None:
        message.resource_name = resource_name
    if principal is not None:
        message.principal = principal
    if host is not None:
        message.host = host
    return message


def cluster_denial(authorizer: Authorizer, operation: Operation) -> tuple[int, str] | None:
    """(Kafka code, message) when the caller may not `operation` the cluster, else None."""
    try:
        authorizer.check(operation, ResourceType.CLUSTER)
    except AuthorizationError as error:
        return status.kafka_error_of(error)
    return None


def _alter_refusals(authorizer: Authorizer, count: int) -> tuple[list[int], dict[int, tuple[int, str]]]:
    """(the items to send to the controller, refusals by item): without Alter on the cluster
    every item is refused with the same (code, message), as Kafka answers each one."""
    denied = cluster_denial(authorizer, Operation.ALTER)
    if denied:
        return [], dict.fromkeys(range(count), denied)
    return list(range(count)), {}


class CreateAclsHandler:
    """CreateAcls v1-v3: one result per creation, in order."""

    api_key = 30
    name = "CreateAcls"
    versions = ACL_VERSIONS

    def __init__(self, link: ControllerLink, authorizer: Authorizer, changes: SecurityChanges) -> None:
        self._link = link
        self._authorizer = authorizer
        self._changes = changes

    async def handle(self, request: codec.Request) -> Any:
        creations = request.body.creations
        asked, refused = _alter_refusals(self._authorizer, len(creations))
        outgoing = controller_pb2.CreateAclsRequest(
            request_id=commands.new_request_id(),
            acls=[
                _record(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal, c.host, c.operation, c.permission_type)
                for c in creations
            ] if asked else [],
        )
        answered = await self._link.call_for("CreateAcls", outgoing, 0, asked, refused)
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "AclCreationResult")
        results = []
        for index in range(len(creations)):
            result = answered.get(index)
            code, message = refused[index] if result is None else detail_error(result.error)
            if result is not None and code == 0:
                self._changes.acls_created([binding_of(result.acl)])
            results.append(codec.build(result_type, error_code=code, error_message=message))
        return codec.build(schema, throttle_time=0, results=tuple(results))


def acl_resources(schema: type, records) -> tuple:
    """DescribeAclsResource entries of sorted bindings: one per (type, name, pattern)."""
    resource_type = codec.nested(schema, "DescribeAclsResource")
    description_type = codec.nested(schema, "AclDescription")
    resources = []
    for (kind, name, pattern), group in groupby(records, key=lambda r: (r.resource_type, r.resource_name, r.pattern_type)):
        resources.append(codec.build(
            resource_type,
            resource_type=kind,
            resource_name=name,
            pattern_type=pattern,
            acls=tuple(
                codec.build(description_type, principal=r.principal, host=r.host, operation=r.operation, permission_type=r.permission)
                for r in group
            ),
        ))
    return tuple(resources)


class DescribeAclsHandler:
    """DescribeAcls v1-v3: the bindings one filter matches, from this broker's image."""

    api_key = 29
    name = "DescribeAcls"
    versions = ACL_VERSIONS

    def __init__(self, link: ControllerLink, authorizer: Authorizer) -> None:
        self._link = link
        self._authorizer = authorizer

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        failure = cluster_denial(self._authorizer, Operation.DESCRIBE)
        records = []
        if failure is None:
            try:
                acl_filter = filter_of(_filter(
                    body.resource_type_filter, body.resource_name_filter, body.pattern_type_filter,
                    body.principal_filter, body.host_filter, body.operation, body.permission_type,
                ))
            except ControllerRequestError as error:
                failure = status.kafka_error_of(error)
            else:
                records = list(describe_acls(self._link.image, acl_filter).acls)
        code, message = failure if failure is not None else (0, None)
        return codec.build(
            schema, throttle_time=0, error_code=code, error_message=message, resources=acl_resources(schema, records)
        )


class DeleteAclsHandler:
    """DeleteAcls v1-v3: per filter, the bindings it matched and the controller deleted."""

    api_key = 31
    name = "DeleteAcls"
    versions = ACL_VERSIONS

    def __init__(self, link: ControllerLink, authorizer: Authorizer, changes: SecurityChanges) -> None:
        self._link = link
        self._authorizer = authorizer
        self._changes = changes

    async def handle(self, request: codec.Request) -> Any:
        filters = request.body.filters
        asked, refused = _alter_refusals(self._authorizer, len(filters))
        outgoing = controller_pb2.DeleteAclsRequest(
            request_id=commands.new_request_id(),
            filters=[
                _filter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter, f.principal_filter,
                        f.host_filter, f.operation, f.permission_type)
                for f in filters
            ] if asked else [],
        )
        answered = await self._link.call_for("DeleteAcls", outgoing, 0, asked, refused)
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "DeleteAclsFilterResult")
        matching_type = codec.nested(schema, "DeleteAclsMatchingAcl")
        results = []
        for index in range(len(filters)):
            result = answered.get(index)
            code, message = refused[index] if result is None else detail_error(result.error)
            matching = () if result is None else tuple(result.acls)
            if matching:
                self._changes.acls_deleted([binding_of(record) for record in matching])
            results.append(codec.build(
                result_type,
                error_code=code,
                error_message=message,
                matching_acls=tuple(
                    codec.build(
                        matching_type, error_code=0, error_message=None, resource_type=r.resource_type,
                        resource_name=r.resource_name, pattern_type=r.pattern_type, principal=r.principal,
                        host=r.host, operation=r.operation, permission_type=r.permission,
                    )
                    for r in matching
                ),
            ))
        return codec.build(schema, throttle_time=0, filter_results=tuple(results))
