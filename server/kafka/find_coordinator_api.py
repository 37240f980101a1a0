"""FindCoordinator (key 10) over the Kafka protocol — the minimal one the classic group tests need.

Owns the Kafka answer to "which broker coordinates group G": the leader of the group's
`__consumer_offsets` partition (`GroupRuntime.locate`, which creates the topic on first use), at
that broker's Kafka address (`metadata_api.kafka_brokers`). Only key type 0 (groups): a
transaction coordinator (key type 1) is COORDINATOR_NOT_AVAILABLE, since the broker has no
transactions. v4+ batches keys (KIP-699); older versions ask for one key.

Kept in its own module so that a fuller FindCoordinator (branch g-offsets) can replace it.

Imports: freshet.server (groups runtime through a callable, kafka). Thread-safety: not
thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from freshet.server.kafka import codec
from freshet.server.kafka.metadata_api import kafka_brokers
from freshet.v1 import common_pb2, group_pb2

E = common_pb2.ErrorCode
GROUP_KEY_TYPE = 0


class FindCoordinatorHandler:
    """FindCoordinator v0-v4 (module docstring)."""

    api_key = 10
    name = "FindCoordinator"
    versions = (0, 4)

    def __init__(self, locate: Callable[[str], Awaitable[group_pb2.Coordinator]], image) -> None:
        self._locate = locate
        self._image = image

    async def handle(self, request: codec.Request) -> Any:
        body = request.body
        schema = codec.response_schema(self.api_key, request.api_version)
        key_type = getattr(body, "key_type", GROUP_KEY_TYPE)
        if codec.has_field(type(body), "coordinator_keys"):
            entry = codec.nested(schema, "Coordinator")
            answers = [await self._find(key, key_type) for key in body.coordinator_keys]
            coordinators = tuple(
                codec.build(entry, key=key, node_id=node, host=host, port=port, error_code=error, error_message=message)
                for key, (error, message, node, host, port) in zip(body.coordinator_keys, answers, strict=True)
            )
            return codec.build(schema, throttle_time=0, coordinators=coordinators)
        error, message, node, host, port = await self._find(body.key, key_type)
        return codec.build(
            schema, throttle_time=0, error_code=error, error_message=message, node_id=node, host=host, port=port
        )

    async def _find(self, key: str, key_type: int) -> tuple[int, str | None, int, str, int]:
        """(error code, message, node id, host, port) of one key."""
        if key_type != GROUP_KEY_TYPE:
            return E.COORDINATOR_NOT_AVAILABLE, "this broker has no transaction coordinator", -1, "", -1
        found = await self._locate(key)
        if found.error.code != E.NONE:
            return found.error.code, found.error.message or None, -1, "", -1
        for node_id, host, port, _rack in kafka_brokers(self._image()):
            if node_id == found.coordinator.node_id:
                return E.NONE, None, node_id, host, port
        return (
            E.COORDINATOR_NOT_AVAILABLE,
            f"coordinator node {found.coordinator.node_id} has no Kafka listener right now",
            -1, "", -1,
        )
