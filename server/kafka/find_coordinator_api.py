"""FindCoordinator (key 10) over the Kafka protocol, minimal: group coordinators only.

Owns the Kafka answer to "which broker coordinates this group": the broker leading the group's
`__consumer_offsets` partition (found by `GroupRuntime.locate`, which also creates the topic on
first use, as the gRPC FindCoordinator does), at its Kafka address (`metadata_api.kafka_brokers`).
COORDINATOR_NOT_AVAILABLE when the partition has no leader or its leader has no Kafka listener;
key type 1 (transactions, which Freshet refuses) is INVALID_REQUEST. v0-v3 carry one key, v4
(KIP-699) a batch.

Imports: freshet.server (kafka, status), freshet.v1, freshet.metadata (image).
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from freshet.metadata.image import MetadataImage
from freshet.server import status
from freshet.server.kafka import codec
from freshet.server.kafka.metadata_api import kafka_brokers
from freshet.v1 import group_pb2

GROUP_KEY_TYPE = 0
COORDINATOR_NOT_AVAILABLE = 15
INVALID_REQUEST = 42

Locate = Callable[[str], Awaitable[group_pb2.Coordinator]]


class FindCoordinatorHandler:
    """FindCoordinator v0-v4 for groups (module docstring)."""

    api_key = 10
    name = "FindCoordinator"
    versions = (0, 4)

    def __init__(self, locate: Locate, image: Callable[[], MetadataImage]) -> None:
        self._locate = locate
        self._image = image

    def handle(self, request: codec.Request) -> Any:
        return self._respond(request.api_version, request.body)

    async def _respond(self, api_version: int, body: Any) -> Any:
        schema = codec.response_schema(self.api_key, api_version)
        key_type = getattr(body, "key_type", GROUP_KEY_TYPE)
        keys = body.coordinator_keys if codec.has_field(type(body), "coordinator_keys") else (body.key,)
        found = [await self._find(key, key_type) for key in keys]
        if codec.has_field(schema, "coordinators"):
            entry = codec.nested(schema, "Coordinator")
            coordinators = tuple(
                codec.build(entry, key=key, node_id=node, host=host, port=port, error_code=code, error_message=message)
                for key, (node, host, port, code, message) in zip(keys, found, strict=True)
            )
            return codec.build(schema, throttle_time=0, coordinators=coordinators)
        node, host, port, code, message = found[0]
        return codec.build(
            schema, throttle_time=0, error_code=code, error_message=message, node_id=node, host=host, port=port
        )

    async def _find(self, key: str, key_type: int) -> tuple[int, str, int, int, str | None]:
        """(node id, host, port, error code, error message) of one key."""
        if key_type != GROUP_KEY_TYPE:
            return -1, "", -1, INVALID_REQUEST, f"key type {key_type}: this broker coordinates groups (0) only"
        located = await self._locate(key)
        if located.error.code:
            return -1, "", -1, status.kafka_code(located.error.code), located.error.message
        node_id = located.coordinator.node_id
        for broker_id, host, port, _ in kafka_brokers(self._image()):
            if broker_id == node_id:
                return node_id, host, port, 0, None
        return -1, "", -1, COORDINATOR_NOT_AVAILABLE, f"coordinator {node_id} of group {key!r} has no Kafka listener"
