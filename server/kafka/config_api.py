"""Kafka's config APIs: DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44).

Owns the Kafka view of Freshet's configs (freshet.metadata.configs) and the translation of
Kafka's config changes into the controller's IncrementalAlterConfigs (SET and DELETE), forwarded
like every admin write (admin_api.ControllerLink).

- Resources: a TOPIC (2) by name; a BROKER (4) by its id, or with the empty name the cluster-wide
  default (Kafka's `--entity-default`), which is Freshet's cluster resource; a GROUP (32, Kafka
  4's group configs, KIP-848) by group id (lag.alert.seconds; source GROUP_CONFIG). Other types
  (BROKER_LOGGER, CLIENT_METRICS) are INVALID_REQUEST: Freshet has no such configs.
- DescribeConfigs answers from this broker's image through the controller logic's
  `describe_configs` (as the gRPC service), with Kafka's config sources (topic override:
  DYNAMIC_TOPIC_CONFIG, per-broker: DYNAMIC_BROKER_CONFIG, cluster-wide:
  DYNAMIC_DEFAULT_BROKER_CONFIG, the node's own file: STATIC_BROKER_CONFIG, schema default:
  DEFAULT_CONFIG); synonyms are the same key at every lower layer that has a value, highest
  first (Freshet names a key alike at every level); read_only for a key the resource cannot set
  (cluster-only keys of one broker); nothing is sensitive. Unknown requested keys are left out,
  as Kafka.
- AlterConfigs keeps Kafka's legacy whole-set semantics: the resource's dynamic keys not given
  are deleted. As in Kafka, the active controller decides which keys those are, against its own
  image when it builds the command (`replace_all`); a broker's image may not have caught up yet
  with a topic or a key set a moment earlier through another node.
- IncrementalAlterConfigs: SET and DELETE pass through; APPEND and SUBTRACT are allowed on
  Kafka's list-typed keys only (cleanup.policy) and become a SET of the resulting list computed
  from the effective value in this broker's image (the controller then validates that value).

Imports: kio, freshet.metadata (configs, controller logic, errors), freshet.server (kafka,
status), wire types. Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from freshet.metadata import commands, configs
from freshet.metadata import controller as logic
from freshet.metadata.errors import ControllerRequestError
from freshet.metadata.image import MetadataImage
from freshet.metadata.security import Operation
from freshet.server import status
from freshet.server.errors import ServerError
from freshet.server.kafka import codec
from freshet.server.kafka.admin_api import ControllerLink, _Refused, detail_error
from freshet.server.security import rules
from freshet.server.security.authorizer import DENIAL_CODES, Authorizer
from freshet.v1 import controller_pb2, metadata_pb2
from kio.schema.errors import ErrorCode

# Kafka's ConfigResource.Type.
TOPIC = 2
BROKER = 4
GROUP = 32

# Kafka's DescribeConfigsResponse ConfigSource.
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
GROUP_CONFIG = 8
KAFKA_SOURCES: Mapping[logic.ConfigSource, int] = {
    logic.ConfigSource.DYNAMIC_GROUP: GROUP_CONFIG,
    logic.ConfigSource.DYNAMIC_TOPIC: DYNAMIC_TOPIC_CONFIG,
    logic.ConfigSource.DYNAMIC_BROKER: DYNAMIC_BROKER_CONFIG,
    logic.ConfigSource.DYNAMIC_CLUSTER: DYNAMIC_DEFAULT_BROKER_CONFIG,
    logic.ConfigSource.STATIC_BROKER: STATIC_BROKER_CONFIG,
    logic.ConfigSource.DEFAULT: DEFAULT_CONFIG,
}

# Kafka's ConfigDef types (DescribeConfigs v3+ config_type).
KAFKA_TYPES: Mapping[configs.ConfigType, int] = {
    configs.ConfigType.BOOLEAN: 1,
    configs.ConfigType.STRING: 2,
    configs.ConfigType.INT: 3,
    configs.ConfigType.LONG: 5,
    configs.ConfigType.DOUBLE: 6,
}
KAFKA_LIST_TYPE = 7
#: Freshet's keys that Kafka types as lists (APPEND/SUBTRACT apply to them only).
LIST_KEYS = frozenset({"cleanup.policy"})

# IncrementalAlterConfigs operations.
SET = 0
DELETE = 1
APPEND = 2
SUBTRACT = 3


def config_resource(resource_type: int, name: str) -> metadata_pb2.ConfigResource:
    """Freshet's ConfigResource of a Kafka (resource type, name).

    Raises:
        _Refused: INVALID_REQUEST for a type Freshet has no configs of, or a broker name that is
            not an id.
    """
    if resource_type == TOPIC:
        return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name=name)
    if resource_type == BROKER:
        if name == "":
            return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_CLUSTER)
        if not name.isdigit():
            raise _Refused(ErrorCode.invalid_request, f"broker resource name {name!r} is not a broker id")
        return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_BROKER, broker_id=int(name))
    if resource_type == GROUP:
        return metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_GROUP, group_id=name)
    raise _Refused(
        ErrorCode.invalid_request,
        f"unsupported config resource type {resource_type} (Freshet has topic, broker and group configs)",
    )


def default_text(value: object) -> str:
    """A schema default as DescribeConfigs shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scope(resource: metadata_pb2.ConfigResource) -> configs.ConfigScope:
    if resource.type == metadata_pb2.CONFIG_RESOURCE_TOPIC:
        return configs.ConfigScope.TOPIC
    if resource.type == metadata_pb2.CONFIG_RESOURCE_BROKER:
        return configs.ConfigScope.BROKER
    if resource.type == metadata_pb2.CONFIG_RESOURCE_GROUP:
        return configs.ConfigScope.GROUP
    return configs.ConfigScope.CLUSTER


def layers(
    image: MetadataImage, resource: metadata_pb2.ConfigResource, static: Mapping[str, str] | None
) -> list[tuple[int, Mapping[str, str]]]:
    """(Kafka config source, values) of every layer above the defaults, highest first, in the
    precedence `describe_configs` applies (topic > cluster; broker > cluster > static)."""
    scope = _scope(resource)
    if scope is configs.ConfigScope.TOPIC:
        return [(DYNAMIC_TOPIC_CONFIG, logic.own_config_values(image, resource)), (DYNAMIC_DEFAULT_BROKER_CONFIG, image.cluster_configs)]
    if scope is configs.ConfigScope.GROUP:
        return [(GROUP_CONFIG, logic.own_config_values(image, resource)), (DYNAMIC_DEFAULT_BROKER_CONFIG, image.cluster_configs)]
    if scope is configs.ConfigScope.BROKER:
        found = [(DYNAMIC_BROKER_CONFIG, logic.own_config_values(image, resource)), (DYNAMIC_DEFAULT_BROKER_CONFIG, image.cluster_configs)]
        return found + ([(STATIC_BROKER_CONFIG, static)] if static is not None else [])
    return [(DYNAMIC_DEFAULT_BROKER_CONFIG, image.cluster_configs)]


def synonyms(found_layers: list[tuple[int, Mapping[str, str]]], key: str) -> list[tuple[str, int]]:
    """(value, Kafka source) of `key` at every layer that sets it, highest first, then its default."""
    values = [(values[key], source) for source, values in found_layers if key in values]
    return values + [(default_text(configs.SCHEMA[key].default), DEFAULT_CONFIG)]


def is_read_only(resource: metadata_pb2.ConfigResource, key: str) -> bool:
    """Whether `key` cannot be set on this resource (a cluster-only key of one broker)."""
    return _scope(resource) not in configs.SCHEMA[key].scopes


def config_type(key: str) -> int:
    return KAFKA_LIST_TYPE if key in LIST_KEYS else KAFKA_TYPES[configs.SCHEMA[key].type]


def topic_config_entries(image: MetadataImage, topic_values: Mapping[str, str]) -> list[tuple[str, str, int, bool]]:
    """A topic's effective configs as (key, value, Kafka source, read only), sorted by key, for
    the given topic values (CreateTopics v5+ answers them, also for validate_only)."""
    entries = []
    for key in sorted(configs.TOPIC_KEYS):
        if key in topic_values:
            entries.append((key, topic_values[key], DYNAMIC_TOPIC_CONFIG, False))
        elif key in image.cluster_configs:
            entries.append((key, image.cluster_configs[key], DYNAMIC_DEFAULT_BROKER_CONFIG, False))
        else:
            entries.append((key, default_text(configs.SCHEMA[key].default), DEFAULT_CONFIG, False))
    return entries


class DescribeConfigsHandler:
    """DescribeConfigs v1-v4 (module docstring), from this broker's image."""

    api_key = 32
    name = "DescribeConfigs"
    versions = (1, 4)

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._link.image
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "DescribeConfigsResult")
        results = []
        for asked in body.resources:
            try:
                resource = config_resource(asked.resource_type, asked.resource_name)
                authorize_config(self.authorizer, Operation.DESCRIBE_CONFIGS, image, resource)
                is_self = resource.type == metadata_pb2.CONFIG_RESOURCE_BROKER and resource.broker_id == self._link.node_id
                static = self._link.static_broker_configs if is_self else None
                described = logic.describe_configs(image, resource, (), static)
            except _Refused as error:
                code, message = error.code, error.message
            except ControllerRequestError as error:
                code, message = status.kafka_error_of(error, self._link.node_id)
            else:
                entries = self._entries(schema, body, image, resource, static, described, asked.configuration_keys)
                results.append(codec.build(
                    result_type, error_code=0, error_message=None, resource_type=asked.resource_type,
                    resource_name=asked.resource_name, configs=entries,
                ))
                continue
            results.append(codec.build(
                result_type, error_code=code, error_message=message, resource_type=asked.resource_type,
                resource_name=asked.resource_name, configs=(),
            ))
        return codec.build(schema, throttle_time=0, results=tuple(results))

    @staticmethod
    def _entries(schema, body, image, resource, static, described, keys) -> tuple:
        entry_type = codec.nested(schema, "DescribeConfigsResourceResult")
        synonym_type = codec.nested(schema, "DescribeConfigsSynonym")
        found_layers = layers(image, resource, static)
        wanted = None if keys is None else set(keys)
        include_synonyms = getattr(body, "include_synonyms", False)
        include_documentation = getattr(body, "include_documentation", False)
        entries = []
        for item in described:
            if wanted is not None and item.key not in wanted:
                continue
            found = synonyms(found_layers, item.key)
            assert found[0] == (item.value, KAFKA_SOURCES[item.source]), (item, found)
            entries.append(codec.build(
                entry_type,
                name=item.key,
                value=item.value,
                read_only=is_read_only(resource, item.key),
                config_source=KAFKA_SOURCES[item.source],
                is_sensitive=False,
                synonyms=tuple(
                    codec.build(synonym_type, name=item.key, value=value, source=source) for value, source in found
                ) if include_synonyms else (),
                config_type=config_type(item.key),
                documentation=item.doc if include_documentation else None,
            ))
        return tuple(entries)


def authorize_config(authorizer: Authorizer, operation: Operation, image: MetadataImage, resource) -> None:
    """Kafka's rule for config resources: `operation` on the topic or the group, or on the cluster
    for broker and cluster configs (CLUSTER/TOPIC/GROUP_AUTHORIZATION_FAILED for that resource only).

    Raises:
        _Refused: the caller may not.
    """
    resource_type, name = rules.config_resource(image, resource)
    refused = rules.denials(authorizer, operation, resource_type, (name,))
    if refused:
        raise _Refused(status.kafka_code(DENIAL_CODES[resource_type]), refused[name])


def _resource_key(resource) -> tuple[int, str]:
    return resource.resource_type, resource.resource_name


class _AlterConfigs(abc.ABC):
    """What AlterConfigs and IncrementalAlterConfigs share: per resource, a controller
    AlterConfigsResource (or a refusal), one forwarded IncrementalAlterConfigs, the answer."""

    api_key: int

    def __init__(self, link: ControllerLink, authorizer: Authorizer | None = None) -> None:
        self._link = link
        self.authorizer = authorizer or rules.allow_all()

    @abc.abstractmethod
    def alteration(self, image: MetadataImage, asked, resource: metadata_pb2.ConfigResource) -> controller_pb2.AlterConfigsResource | None:
        """The controller's change of one resource; None when there is nothing to change (the
        resource exists). Raises _Refused or ControllerRequestError to refuse it."""

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        image = self._link.image
        counts: dict[tuple[int, str], int] = {}
        for asked in body.resources:
            counts[_resource_key(asked)] = counts.get(_resource_key(asked), 0) + 1
        outgoing = controller_pb2.IncrementalAlterConfigsRequest(request_id=commands.new_request_id(), validate_only=body.validate_only)
        answers: dict[int, tuple[int, str | None]] = {}
        sent: list[int] = []
        for index, asked in enumerate(body.resources):
            try:
                if counts[_resource_key(asked)] > 1:
                    raise _Refused(ErrorCode.invalid_request, f"resource {asked.resource_name!r} appears more than once in the request")
                resource = config_resource(asked.resource_type, asked.resource_name)
                authorize_config(self.authorizer, Operation.ALTER_CONFIGS, image, resource)
                change = self.alteration(image, asked, resource)
            except _Refused as error:
                answers[index] = (error.code, error.message)
                continue
            except ControllerRequestError as error:
                answers[index] = status.kafka_error_of(error, self._link.node_id)
                continue
            if change is None:
                answers[index] = (0, None)
                continue
            outgoing.resources.append(change)
            sent.append(index)
        if sent:
            try:
                response = await self._link.call("IncrementalAlterConfigs", outgoing, 0)
            except ServerError as error:
                failure = self._link.error_of(error)
                answers.update({index: failure for index in sent})
            else:
                for index, result in zip(sent, response.results, strict=True):
                    answers[index] = detail_error(result.error)
        schema = codec.response_schema(self.api_key, request.api_version)
        result_type = codec.nested(schema, "AlterConfigsResourceResponse")
        results = tuple(
            codec.build(
                result_type, error_code=answers[index][0], error_message=answers[index][1],
                resource_type=asked.resource_type, resource_name=asked.resource_name,
            )
            for index, asked in enumerate(body.resources)
        )
        return codec.build(schema, throttle_time=0, responses=results)


class AlterConfigsHandler(_AlterConfigs):
    """AlterConfigs v0-v2: the given values replace the resource's whole dynamic set (module
    docstring)."""

    api_key = 33
    name = "AlterConfigs"
    versions = (0, 2)

    def alteration(self, image, asked, resource):
        change = controller_pb2.AlterConfigsResource(resource=resource)
        given: set[str] = set()
        for config in asked.configs:
            if config.name in given:
                raise _Refused(ErrorCode.invalid_request, f"configuration {config.name!r} is given more than once")
            if config.value is None:
                raise _Refused(ErrorCode.invalid_request, f"null value not supported for configuration {config.name!r}")
            given.add(config.name)
            change.configs.add(key=config.name, value=config.value, operation=controller_pb2.CONFIG_SET)
        change.replace_all = True         # the keys not given are deleted by the active controller
        return change


class IncrementalAlterConfigsHandler(_AlterConfigs):
    """IncrementalAlterConfigs v0-v1: SET, DELETE, APPEND, SUBTRACT (module docstring)."""

    api_key = 44
    name = "IncrementalAlterConfigs"
    versions = (0, 1)

    def alteration(self, image, asked, resource):
        change = controller_pb2.AlterConfigsResource(resource=resource)
        for config in asked.configs:
            operation = config.config_operation
            if operation == SET:
                if config.value is None:
                    raise _Refused(ErrorCode.invalid_request, f"null value not supported for configuration {config.name!r}")
                change.configs.add(key=config.name, value=config.value, operation=controller_pb2.CONFIG_SET)
            elif operation == DELETE:
                change.configs.add(key=config.name, operation=controller_pb2.CONFIG_DELETE)
            elif operation in (APPEND, SUBTRACT):
                value = self._list_value(image, resource, config.name, operation, config.value)
                change.configs.add(key=config.name, value=value, operation=controller_pb2.CONFIG_SET)
            else:
                raise _Refused(ErrorCode.invalid_request, f"unknown config operation {operation} for {config.name!r}")
        if not change.configs:
            logic.config_resource_scope(image, resource)
            return None
        return change

    def _list_value(self, image: MetadataImage, resource, key: str, operation: int, value: str | None) -> str:
        verb = "append" if operation == APPEND else "subtract"
        if key not in LIST_KEYS:
            raise _Refused(ErrorCode.invalid_config, f"config value {verb} is not allowed for config key {key!r}: it is not a list")
        is_self = resource.type == metadata_pb2.CONFIG_RESOURCE_BROKER and resource.broker_id == self._link.node_id
        static = self._link.static_broker_configs if is_self else None
        (current,) = logic.describe_configs(image, resource, [key], static)
        items = [item.strip() for item in current.value.split(",") if item.strip()]
        given = [item.strip() for item in (value or "").split(",") if item.strip()]
        if operation == APPEND:
            items += [item for item in given if item not in items]
        else:
            items = [item for item in items if item not in given]
        return ",".join(items)
