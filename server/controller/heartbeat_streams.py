"""Brokers' heartbeat streams on the active controller: registration, session renewal, replies.

Owns one stream per registered broker (KRaft's BrokerHeartbeatManager seen from the RPC side):

- The first request registers the broker (a RegisterBroker command when its incarnation is new)
  and opens its session in ControllerCore; a second stream of the same broker replaces the first.
- A reader task renews the session on every heartbeat and asks the controller's work task to
  look at a broker that wants to shut down or is fenced.
- The writer replies on every heartbeat and whenever the broker's state in the image changes;
  it ends the stream with NOT_CONTROLLER (and the hint) once the controller loses its role, and
  with STALE_BROKER_EPOCH once the broker's registration is replaced.

Imports: asyncio, grpc (the stream's context), freshet.metadata (controller logic, commands,
errors), freshet.server (errors), wire types; the ActiveController only for type hints.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

import grpc
from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.errors import StaleBrokerEpochError
from freshet.metadata.quorum import MetadataQuorum
from freshet.server.errors import InvalidRequestError
from freshet.v1 import controller_pb2

if TYPE_CHECKING:
    from freshet.server.controller.active import ActiveController

logger = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class _Stream:
    """One broker's heartbeat stream on this controller. Not thread-safe (loop)."""

    node_id: int
    broker_epoch: int
    activation: int
    event: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    last_reply: logic.HeartbeatReply | None = None
    needs_reply: bool = True
    is_replaced: bool = False


class HeartbeatStreams:
    """The open heartbeat streams of one controller (see the module docstring). Not thread-safe (loop)."""

    def __init__(self, controller: ActiveController, quorum: MetadataQuorum, loop: asyncio.AbstractEventLoop) -> None:
        self._controller = controller
        self._quorum = quorum
        self._loop = loop
        self._streams: dict[int, _Stream] = {}

    def wake_all(self) -> None:
        """Make every stream look again (the image changed, or the controller lost its role)."""
        for stream in self._streams.values():
            stream.event.set()

    async def serve(self, context: grpc.aio.ServicerContext, first: controller_pb2.BrokerHeartbeatRequest) -> None:
        """Run one broker's heartbeat stream until it ends (see ActiveController.serve_heartbeats)."""
        self._controller.require_active()
        registration = _checked_registration(first)
        core, broker_epoch = await self._register(registration)
        stream = self._attach(registration.node_id, broker_epoch)
        reader = self._loop.create_task(self._read(context, stream), name=f"heartbeats-{stream.node_id}")
        try:
            await self._write(context, core, stream, reader)
        finally:
            reader.cancel()
            self._detach(core, stream)

    async def _register(self, registration: controller_pb2.BrokerRegistrationRequest) -> tuple[logic.ControllerCore, int]:
        """Register the broker if its incarnation is new and open its session: (core, broker epoch)."""
        controller = self._controller
        node_id = registration.node_id
        async with controller.lock:
            core = controller.require_active()
            listeners = tuple(sorted((item.name, item.host, item.port) for item in registration.listeners))
            action = core.registration(
                self._quorum.image, node_id, bytes(registration.incarnation_id), registration.host, registration.port,
                registration.rack, listeners,
            )
            if action is not None:
                result = await controller.propose_for_request(action.command)
                commands.raise_for_error(result, action.command.request_id)
                logger.info("%s (epoch %d)", action.description, result.offset)
                controller.metrics.clean_elections += action.clean_elections
                controller.metrics.unclean_elections += action.unclean_elections
            core = controller.require_active()
            session = core.open_session(self._quorum.image, node_id)
        return core, session.broker_epoch

    def _attach(self, node_id: int, broker_epoch: int) -> _Stream:
        """The broker's new stream, replacing (and ending) its previous one."""
        stream = _Stream(node_id, broker_epoch, self._controller.activation)
        previous = self._streams.get(node_id)
        if previous is not None:
            previous.is_replaced = True
            previous.event.set()
        self._streams[node_id] = stream
        stream.event.set()                       # answer the registration at once
        return stream

    def _detach(self, core: logic.ControllerCore, stream: _Stream) -> None:
        if self._streams.get(stream.node_id) is stream:
            del self._streams[stream.node_id]
            if self._controller.core is core:
                core.stream_closed(stream.node_id, stream.broker_epoch)
                self._controller.wake_work()

    async def _write(
        self, context: grpc.aio.ServicerContext, core: logic.ControllerCore, stream: _Stream, reader: asyncio.Task
    ) -> None:
        """Reply whenever the stream is woken, until the broker closes its side or an error ends it."""
        controller = self._controller
        node_id = stream.node_id
        while True:
            await stream.event.wait()
            stream.event.clear()
            if stream.activation != controller.activation or controller.core is not core or not controller.is_active:
                raise controller.not_controller_error()    # with the hint: the broker moves on at once
            if reader.done():
                error = reader.exception()
                if error is not None:
                    raise error
                return                           # the broker closed its side
            image = self._quorum.image
            broker = image.brokers.get(node_id)
            if stream.is_replaced or broker is None or broker.broker_epoch != stream.broker_epoch:
                raise StaleBrokerEpochError(node_id, stream.broker_epoch, -1 if broker is None else broker.broker_epoch)
            reply = core.reply(image, node_id)
            if stream.needs_reply or reply != stream.last_reply:
                stream.needs_reply = False
                stream.last_reply = reply
                await context.write(
                    controller_pb2.BrokerHeartbeatResponse(
                        broker_epoch=reply.broker_epoch,
                        is_fenced=reply.is_fenced,
                        should_shut_down=reply.should_shut_down,
                        controller_id=controller.node_id,
                        controller_epoch=core.controller_epoch,
                        is_caught_up=reply.is_caught_up,
                    )
                )

    async def _read(self, context: grpc.aio.ServicerContext, stream: _Stream) -> None:
        """Renew the broker's session on every heartbeat and wake the writer; ends on EOF."""
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                core = self._controller.core
                if core is None:
                    return
                if request.node_id != stream.node_id or request.broker_epoch != stream.broker_epoch:
                    image = self._quorum.image
                    broker = image.brokers.get(stream.node_id)
                    raise StaleBrokerEpochError(
                        request.node_id, request.broker_epoch, -1 if broker is None else broker.broker_epoch
                    )
                session = core.heartbeat(
                    self._quorum.image, request.node_id, request.broker_epoch, request.metadata_offset, request.want_shutdown
                )
                if request.log_dir_total_bytes > 0:
                    session.disk = (request.log_dir_free_bytes, request.log_dir_total_bytes, request.is_log_dir_full)
                stream.needs_reply = True
                stream.event.set()
                if session.want_shutdown or self._quorum.image.brokers[stream.node_id].is_fenced:
                    self._controller.look_at_broker(stream.node_id)
        finally:
            stream.event.set()


def _checked_registration(first: controller_pb2.BrokerHeartbeatRequest) -> controller_pb2.BrokerRegistrationRequest:
    """The registration the first request of a stream must carry. Raises InvalidRequestError."""
    registration = first.registration
    if not first.HasField("registration"):
        raise InvalidRequestError("the first request of a heartbeat stream must carry registration")
    if (
        registration.node_id < 0
        or len(registration.incarnation_id) != 16
        or not registration.host
        or not 0 < registration.port < 65536
    ):
        raise InvalidRequestError(
            "registration needs node_id >= 0, a 16-byte incarnation_id, a host and a port in 1..65535"
        )
    return registration
