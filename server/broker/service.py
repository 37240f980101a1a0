"""The client-facing Broker service (broker.proto): metadata, produce, fetch, offsets, producer ids.

Owns the gRPC handlers; the work is the data plane's (server/broker/data_plane.py):

- `Metadata`, answered from this broker's metadata image: the cluster id, the controller (its
  gRPC endpoint: where admin requests go, although any node forwards them), the unfenced brokers
  (as Kafka), and per topic its id and per partition the leader, leader epoch, replicas, ISR and
  offline replicas (replicas on fenced or unregistered brokers), with LEADER_NOT_AVAILABLE for a
  partition without a leader and UNKNOWN_TOPIC for a requested topic that does not exist. With
  `auto.create.topics.enable` (default false) a requested unknown topic is created through the
  controller with the cluster defaults;
- `Produce` and `ProduceStream` share `DataPlane.produce`. On a stream, each request is appended
  synchronously as it is read, before the next read (stream order is append order), and one
  writer task writes the responses as requests complete, tagged with their correlation_id.
  acks=0 requests on a stream get no response; the first one that fails for a partition ends the
  stream with that error (Kafka closes the connection), see broker.proto. At most
  `REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX` (64) requests of one stream are unanswered: past that the
  broker reads nothing more from it until one is answered, as the Kafka listener does per
  connection, so a client that ignores its own in-flight bound is held by gRPC's flow control
  instead of growing the broker's memory;
- `Fetch` (long poll), `FetchStream` (server push), `ListOffsets`, `InitProducerId`.

Every request is counted and timed per API (server/metrics.py; a stream's per message). Whole-request
failures leave through `status.handler` as gRPC statuses with an ErrorDetail (server/status.py);
per-partition ones are inline.

Imports: asyncio, grpc, freshet.metadata, freshet.server, wire types.
Thread-safety: not thread-safe (grpc.aio handlers run on the node's event loop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping

import grpc
from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.metadata.security import Operation, ResourceType
from freshet.server import status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.cluster.channels import ControllerChannels, forward
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.errors import ForwardedError, PartitionRequestError
from freshet.server.limits import REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX
from freshet.server.security import rules
from freshet.server.security.authorizer import Authorizer
from freshet.v1 import broker_pb2, broker_pb2_grpc, common_pb2, controller_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
AUTO_CREATE_TIMEOUT_S = 10.0


def metadata_response(
    image: MetadataImage,
    config: NodeConfig,
    topics: list[str],
    include_internal: bool,
    refused: Mapping[str, str] | None = None,
    describable: Callable[[list[str]], list[str]] | None = None,
) -> broker_pb2.MetadataResponse:
    """The Metadata answer from an image (pure). `refused`: requested topics the caller may not
    see (or auto-create), answered TOPIC_AUTHORIZATION_FAILED with the reason; `describable`
    filters the listing of every topic (Kafka leaves out what the caller may not Describe)."""
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
    if not topics and describable is not None:
        names = describable(names)
    for name in names:
        if refused and name in refused:
            response.topics.add(name=name, error=status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[name]))
            continue
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


async def auto_create_topics(
    channels: ControllerChannels, controller_hint, publisher: MetadataPublisher, names: list[str], timeout_s: float
) -> bool:
    """Create the non-internal `names` with the cluster defaults through the controller (Kafka's
    auto.create.topics.enable; the caller checked it) and wait until this broker's image has them.
    Returns whether anything was asked; a refusal is logged, not raised (the caller answers
    UNKNOWN_TOPIC as if nothing happened). Used by both front-ends' Metadata."""
    creatable = [name for name in names if not logic.is_internal_topic(name)]
    if not creatable:
        return False
    request = controller_pb2.CreateTopicsRequest(
        request_id=commands.new_request_id(), topics=[controller_pb2.CreatableTopic(name=name) for name in creatable]
    )
    deadline = time.monotonic() + timeout_s
    try:
        response = await forward(channels, "CreateTopics", request, deadline, controller_hint, skip_self=False)
    except ForwardedError as error:
        logger.info("auto-creating %s failed: %s", creatable, error)
        return True
    for result in response.results:
        if result.error.code == E.NONE:
            logger.info("auto-created topic %r with %d partitions", result.name, result.num_partitions)
    await publisher.wait_for_offset(response.metadata_offset, max(0.0, deadline - time.monotonic()))
    return True


class BrokerService(broker_pb2_grpc.BrokerServicer):
    """freshet.v1.Broker on a broker node. Not thread-safe (loop)."""

    def __init__(
        self,
        config: NodeConfig,
        publisher: MetadataPublisher,
        channels: ControllerChannels,
        controller_hint,
        data_plane: DataPlane,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.config = config
        self.authorizer = authorizer or rules.allow_all()
        self.node_id = config.node_id
        self._publisher = publisher
        self._channels = channels
        self._controller_hint = controller_hint
        self._data_plane = data_plane
        # Produce goes straight to the produce path: service -> produce -> partition table ->
        # partition -> replication core, five modules (README, Architecture map).
        self._produce = data_plane.produce_path.produce
        self.metrics = data_plane.metrics
        #: Unanswered requests of one ProduceStream before the broker stops reading it.
        self.stream_in_flight_max = REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX

    def register(self, server: grpc.aio.Server) -> None:
        broker_pb2_grpc.add_BrokerServicer_to_server(self, server)

    @status.handler("Metadata")
    async def Metadata(self, request: broker_pb2.MetadataRequest, context) -> broker_pb2.MetadataResponse:  # noqa: N802
        image = self._publisher.image
        authorizer = self.authorizer
        requested = list(request.topics)
        refused = rules.denials(authorizer, Operation.DESCRIBE, ResourceType.TOPIC, requested)
        missing = [name for name in requested if name not in refused and image.topic(name) is None]
        if missing and self._data_plane.broker_config().auto_create_topics_enable:
            not_creatable = rules.create_denials(authorizer, missing)
            refused.update(not_creatable)
            missing = [name for name in missing if name not in not_creatable]
            if missing:
                await self._auto_create(missing, context)
                image = self._publisher.image
        describable = None
        if authorizer.enabled:
            def describable(names: list[str]) -> list[str]:
                return authorizer.filter(Operation.DESCRIBE, ResourceType.TOPIC, names)
        return metadata_response(image, self.config, requested, request.include_internal, refused, describable)

    # -- produce ---------------------------------------------------------------------------------

    @status.handler("Produce")
    async def Produce(self, request: broker_pb2.ProduceRequest, context) -> broker_pb2.ProduceResponse:  # noqa: N802
        answered: asyncio.Future = asyncio.get_running_loop().create_future()

        def done(response: broker_pb2.ProduceResponse) -> None:
            if not answered.done():
                answered.set_result(response)

        refused = self._write_denials(request) if self.authorizer.enabled else None
        self._produce(request, done, refused)
        return await answered

    def _write_denials(self, request: broker_pb2.ProduceRequest) -> dict[str, str]:
        return rules.denials(self.authorizer, Operation.WRITE, ResourceType.TOPIC, (p.topic for p in request.partitions))

    @status.handler()
    async def ProduceStream(self, request_iterator, context):  # noqa: N802
        """See the module docstring: appends in stream order, responses as requests complete."""
        outbox: collections.deque[broker_pb2.ProduceResponse] = collections.deque()
        wake = asyncio.Event()
        room = asyncio.Event()      # set while fewer than in_flight_max requests are unanswered
        room.set()
        in_flight = 0
        in_flight_max = self.stream_in_flight_max
        failure: list[common_pb2.ErrorDetail] = []
        reading_done = False
        metrics = self.metrics

        def done_for(started: float, acks: int):
            def done(response: broker_pb2.ProduceResponse) -> None:
                nonlocal in_flight
                in_flight -= 1
                room.set()
                metrics.observe_request("ProduceStream", time.monotonic() - started)
                if acks == 0:
                    for result in response.results:
                        if result.error.code != E.NONE and not failure:
                            failure.append(result.error)
                            wake.set()
                    return
                outbox.append(response)
                wake.set()

            return done

        async def write_responses() -> None:
            while True:
                await wake.wait()
                wake.clear()
                while outbox:
                    await context.write(outbox.popleft())
                if failure or (reading_done and in_flight == 0):
                    return

        writer = asyncio.create_task(write_responses(), name="produce-stream-writer")
        try:
            while not failure:
                if in_flight >= in_flight_max:
                    # The client ignores its own in-flight bound: read nothing more until an answer.
                    room.clear()
                    await room.wait()
                    continue
                reading = context.read()
                request = await reading
                if request is grpc.aio.EOF:
                    break
                if writer.done():
                    break
                in_flight += 1
                try:
                    refused = self._write_denials(request) if self.authorizer.enabled else None
                    self._produce(request, done_for(time.monotonic(), request.acks), refused)
                except Exception as error:  # noqa: BLE001 - a refused request: answer it, keep the stream
                    in_flight -= 1
                    detail = status.detail_for(error, self.node_id)
                    response = broker_pb2.ProduceResponse(correlation_id=request.correlation_id)
                    for records in request.partitions:
                        result = response.results.add(topic=records.topic, partition=records.partition)
                        result.error.CopyFrom(detail)
                    if request.acks == 0:
                        failure.append(detail)
                    else:
                        outbox.append(response)
                    wake.set()
            reading_done = True
            wake.set()
            await writer
            if failure:
                logger.info("ending a produce stream after an acks=0 request failed: %s", failure[0].message)
                raise PartitionRequestError(failure[0].code, failure[0])
        finally:
            writer.cancel()

    # -- fetch -----------------------------------------------------------------------------------

    @status.handler("Fetch")
    async def Fetch(self, request: broker_pb2.FetchRequest, context) -> broker_pb2.FetchResponse:  # noqa: N802
        if not self.authorizer.enabled:
            return await self._data_plane.fetch(request)
        allowed, denied = self._split(request, Operation.READ)
        if not denied:
            return await self._data_plane.fetch(request)
        response = await self._data_plane.fetch(allowed) if allowed.partitions else broker_pb2.FetchResponse()
        response.results.extend(denied)
        return response

    @status.handler()
    async def FetchStream(self, request: broker_pb2.FetchRequest, context):  # noqa: N802
        if self.authorizer.enabled:
            request, denied = self._split(request, Operation.READ)
            if denied:
                # A refused partition answers once and leaves the feed, as a failed one does.
                await context.write(broker_pb2.FetchResponse(results=denied))
            if not request.partitions:
                return
        await self._data_plane.fetch_stream(request, context.write)

    def _split(self, request: broker_pb2.FetchRequest, operation: Operation):
        """(the request without the partitions of topics the caller may not `operation`, their
        TOPIC_AUTHORIZATION_FAILED results)."""
        refused = rules.denials(self.authorizer, operation, ResourceType.TOPIC, (p.topic for p in request.partitions))
        if not refused:
            return request, []
        allowed = broker_pb2.FetchRequest()
        allowed.CopyFrom(request)
        del allowed.partitions[:]
        denied = []
        for wanted in request.partitions:
            if wanted.topic in refused:
                denied.append(broker_pb2.PartitionFetchResult(
                    topic=wanted.topic, partition=wanted.partition, high_watermark=-1, log_start_offset=-1,
                    error=status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[wanted.topic]),
                ))
            else:
                allowed.partitions.append(wanted)
        return allowed, denied

    @status.handler("ListOffsets")
    async def ListOffsets(self, request: broker_pb2.ListOffsetsRequest, context) -> broker_pb2.ListOffsetsResponse:  # noqa: N802
        refused = rules.denials(self.authorizer, Operation.DESCRIBE, ResourceType.TOPIC, (q.topic for q in request.partitions))
        if not refused:
            return self._data_plane.list_offsets(request)
        allowed = broker_pb2.ListOffsetsRequest(partitions=[q for q in request.partitions if q.topic not in refused])
        answered = iter(self._data_plane.list_offsets(allowed).results if allowed.partitions else ())
        response = broker_pb2.ListOffsetsResponse()
        for query in request.partitions:
            if query.topic in refused:
                response.results.add(
                    topic=query.topic, partition=query.partition, offset=-1, timestamp=-1,
                    error=status.detail(E.TOPIC_AUTHORIZATION_FAILED, refused[query.topic]),
                )
            else:
                response.results.append(next(answered))
        return response

    @status.handler("DescribeLogDirs")
    async def DescribeLogDirs(self, request: broker_pb2.DescribeLogDirsRequest, context) -> broker_pb2.DescribeLogDirsResponse:  # noqa: N802
        self.authorizer.check(Operation.DESCRIBE, ResourceType.CLUSTER)
        return self._data_plane.describe_log_dirs(request)

    @status.handler("InitProducerId")
    async def InitProducerId(self, request: broker_pb2.InitProducerIdRequest, context) -> broker_pb2.InitProducerIdResponse:  # noqa: N802
        rules.check_idempotent_write(self.authorizer)
        remaining = context.time_remaining()
        timeout_s = self.config.request_timeout_ms / 1000 if remaining is None else min(remaining, self.config.request_timeout_ms / 1000)
        producer_id = await self._data_plane.producer_ids.next_id(time.monotonic() + timeout_s)
        return broker_pb2.InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)

    async def _auto_create(self, names: list[str], context) -> None:
        remaining = context.time_remaining()
        timeout_s = AUTO_CREATE_TIMEOUT_S if remaining is None else min(remaining, AUTO_CREATE_TIMEOUT_S)
        await auto_create_topics(self._channels, self._controller_hint, self._publisher, names, timeout_s)
