"""The client-facing Broker service, as far as this node implements it: Metadata.

Owns `Broker.Metadata` (broker.proto) answered from this broker's metadata image: the cluster id,
the controller (its gRPC endpoint: where admin requests go, although any node forwards them), the
unfenced brokers (as Kafka), and per topic its id and per partition the leader, leader epoch,
replicas, ISR and offline replicas (replicas on fenced or unregistered brokers), with
LEADER_NOT_AVAILABLE for a partition without a leader and UNKNOWN_TOPIC for a requested topic
that does not exist. With `auto.create.topics.enable` (default false) a requested unknown topic
is created through the controller with the cluster defaults.

Only Metadata is registered (`register`): Produce, Fetch, ListOffsets and InitProducerId belong to
the data-plane issue and answer UNIMPLEMENTED until then.

Imports: asyncio, grpc, freshet.metadata, freshet.server, wire types.
Thread-safety: not thread-safe (grpc.aio handlers run on the node's event loop).
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from freshet.metadata import commands, configs
from freshet.metadata import controller as logic
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.server import status
from freshet.server.config import NodeConfig
from freshet.server.controller_client import ControllerChannels, ForwardedError, forward
from freshet.server.metadata_publisher import MetadataPublisher
from freshet.v1 import broker_pb2, common_pb2, controller_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
AUTO_CREATE_TIMEOUT_S = 10.0


def metadata_response(
    image: MetadataImage, config: NodeConfig, topics: list[str], include_internal: bool
) -> broker_pb2.MetadataResponse:
    """The Metadata answer from an image (pure)."""
    response = broker_pb2.MetadataResponse(
        cluster_id=image.cluster_id, controller_id=image.controller_id, metadata_offset=image.offset
    )
    endpoint = config.controller_listeners.get(image.controller_id)
    if endpoint is not None:
        response.controller.CopyFrom(
            common_pb2.BrokerEndpoint(node_id=image.controller_id, host=endpoint.host, port=endpoint.port)
        )
    for node_id in image.active_broker_ids():
        broker = image.brokers[node_id]
        response.brokers.add(node_id=node_id, host=broker.host, port=broker.port, rack=broker.rack)
    names = topics or [name for name in image.topic_names() if include_internal or not logic.is_internal_topic(name)]
    for name in names:
        topic = image.topic(name)
        if topic is None:
            response.topics.add(name=name, error=status.detail(E.UNKNOWN_TOPIC, f"topic {name!r} does not exist"))
            continue
        out = response.topics.add(
            name=name, topic_id=topic.topic_id, is_internal=logic.is_internal_topic(name), error=status.ok_detail()
        )
        for partition in topic.partitions:
            offline = [
                r for r in partition.replicas if image.brokers.get(r) is None or image.brokers[r].is_fenced
            ]
            item = out.partitions.add(
                partition=partition.partition,
                leader_id=partition.leader,
                leader_epoch=partition.leader_epoch,
                replicas=partition.replicas,
                isr=partition.isr,
                offline_replicas=offline,
            )
            if partition.leader == NO_LEADER:
                item.error.CopyFrom(
                    status.detail(E.LEADER_NOT_AVAILABLE, f"{name}-{partition.partition} has no leader", leader_id=-1)
                )
            else:
                item.error.CopyFrom(status.ok_detail())
    return response


class BrokerService:
    """The implemented methods of freshet.v1.Broker. Not thread-safe (loop)."""

    def __init__(self, config: NodeConfig, publisher: MetadataPublisher, channels: ControllerChannels, controller_hint) -> None:
        self.config = config
        self._publisher = publisher
        self._channels = channels
        self._controller_hint = controller_hint

    def register(self, server: grpc.aio.Server) -> None:
        """Add the implemented methods (only) to `server`."""
        handlers = {
            "Metadata": grpc.unary_unary_rpc_method_handler(
                self.Metadata,
                request_deserializer=broker_pb2.MetadataRequest.FromString,
                response_serializer=broker_pb2.MetadataResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("freshet.v1.Broker", handlers),))

    def _auto_create_enabled(self, image: MetadataImage) -> bool:
        layered = dict(self.config.broker_configs)
        layered.update(image.cluster_configs)
        return configs.broker_config(layered, image.broker_configs.get(self.config.node_id, {})).auto_create_topics_enable

    async def Metadata(self, request: broker_pb2.MetadataRequest, context) -> broker_pb2.MetadataResponse:
        try:
            image = self._publisher.image
            missing = [name for name in request.topics if image.topic(name) is None]
            if missing and self._auto_create_enabled(image):
                await self._auto_create(missing, context)
                image = self._publisher.image
            return metadata_response(image, self.config, list(request.topics), request.include_internal)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as error:
            await status.abort(context, error, self.config.node_id)

    async def _auto_create(self, names: list[str], context) -> None:
        creatable = [name for name in names if not logic.is_internal_topic(name)]
        if not creatable:
            return
        request = controller_pb2.CreateTopicsRequest(
            request_id=commands.new_request_id(), topics=[controller_pb2.CreatableTopic(name=name) for name in creatable]
        )
        remaining = context.time_remaining()
        deadline = time.monotonic() + (AUTO_CREATE_TIMEOUT_S if remaining is None else min(remaining, AUTO_CREATE_TIMEOUT_S))
        try:
            response = await forward(self._channels, "CreateTopics", request, deadline, self._controller_hint, skip_self=False)
        except ForwardedError as error:
            logger.info("auto-creating %s failed: %s", creatable, error)
            return
        for result in response.results:
            if result.error.code == E.NONE:
                logger.info("auto-created topic %r with %d partitions", result.name, result.num_partitions)
        await self._publisher.wait_for_offset(response.metadata_offset, max(0.0, deadline - time.monotonic()))
