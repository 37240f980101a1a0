"""The broker role's session with the active controller (KRaft's BrokerLifecycleManager).

Owns the broker side of liveness:

- one incarnation id per process start (16 random bytes): a restarted broker is a new
  incarnation, which the controller registers with a new broker epoch, replacing the old one;
- one long-lived BrokerHeartbeat stream to the active controller: the first message registers,
  then a heartbeat every `broker.heartbeat.interval.ms` carrying the offset of this broker's
  metadata image, and one at once when the image reaches the registration offset (so the
  controller can unfence without waiting an interval) or when a controlled shutdown starts;
- finding the active controller: the hint of a NOT_CONTROLLER answer, else the controller this
  node believes in, else each controller in turn, retrying every 100 ms; a stream that gets no
  answer for a while (a frozen or cut-off controller) is dropped and another controller is tried.
  That controller is then passed over for `UNANSWERED_AVOID_S` whenever another candidate is left,
  even when this node's Raft view or another node's NOT_CONTROLLER hint still names it: after a
  partition such views lag behind the new election, and following them back to the silent
  controller cost a whole reply timeout per round until the session expired (issue 16). The other
  way round, a session is left at the next heartbeat once this node's own Raft view names another
  controller (on controller nodes an election is seen at once), without waiting for the reply
  timeout. A stream dropped for lack of replies also retires its channel
  (`ControllerChannels.reset`): the next session to that controller opens a new connection,
  since bytes sent into a partition wait out TCP's retransmission backoff after the heal, and a
  session on the old connection stalled until the broker was fenced (issue 16). So does a stream
  left or ended for another reason when its controller had not answered for `stale_reply_s()`
  (it was left for a new controller during a cut, and a later session would reuse the
  connection); a connection that failed outright (UNAVAILABLE) or answered NOT_CONTROLLER is kept;
- `controller_contact()`: whether a controller answered within `contact_max_age_s()`, and how
  many times contact came back after a longer silence (ISR maintenance shrinks only with contact
  and restarts its followers' lag clocks when it comes back: server/broker/alter_partition.py);
- controlled shutdown: `shutdown()` sets want_shutdown and waits (bounded) until the controller
  says should_shut_down (its leaderships moved, it left every ISR);
- a STALE_BROKER_EPOCH answer means another process registered with this node id: fatal.

Imports: asyncio, grpc, freshet.metadata (image), freshet.server, wire types.
Thread-safety: not thread-safe (the node's loop); the state attributes may be read from the HTTP
thread (plain values).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import grpc
from freshet.metadata.image import MetadataImage
from freshet.server import status
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.tasks import cancel_and_wait
from freshet.storage.disk_space import DiskSpaceState
from freshet.v1 import common_pb2, controller_pb2

logger = logging.getLogger(__name__)

RETRY_S = 0.1
REPLY_TIMEOUT_S_MIN = 2.0
#: How long a controller that stopped answering is tried only when no other candidate is left.
UNANSWERED_AVOID_S = 2.0
#: No reply for this long (or 3 heartbeat intervals, if longer) means this broker lost contact.
CONTACT_MAX_AGE_S_MIN = 1.0
#: A session ending with no reply for this long (or 2 heartbeat intervals) retires its channel.
STALE_REPLY_S_MIN = 0.5


class BrokerLifecycle:
    """One broker's registration and heartbeats (see the module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        config: NodeConfig,
        publisher: MetadataPublisher,
        channels: ControllerChannels,
        controller_hint: Callable[[], int | None],
        on_fatal: Callable[[str], None],
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.incarnation_id = uuid.uuid4().bytes
        self._publisher = publisher
        self._channels = channels
        self._controller_hint = controller_hint
        self._on_fatal = on_fatal
        self.broker_epoch = -1
        self.is_fenced = True
        self.should_shut_down = False
        self.want_shutdown = False
        self.controller_id = -1
        self.controller_epoch = 0                # the newest controller epoch a reply carried
        #: The log directory's state for heartbeats (the node sets it once the data plane exists).
        self.disk_state: Callable[[], DiskSpaceState | None] = lambda: None
        self.connected_controller: int | None = None
        self.sessions_opened = 0
        #: time.monotonic() of the last reply from a controller (None: none yet).
        self.last_reply_at: float | None = None
        #: How many times a reply came after a silence longer than contact_max_age_s() (or first).
        self.contacts_gained = 0
        #: controller -> time.monotonic() of its last reply (see `_retire_if_stale`).
        self._replied: dict[int, float] = {}
        self._send_now = asyncio.Event()
        self._changed = asyncio.Event()
        self._reported_caught_up = False
        self._task: asyncio.Task | None = None
        self._stopped = False
        #: The controller this node's Raft view moved to while a session ran (see `_session`).
        self._moved_to: int | None = None

    # -- state -----------------------------------------------------------------------------------

    @property
    def is_registered(self) -> bool:
        return self.broker_epoch > 0

    def is_ready(self, image: MetadataImage) -> bool:
        """Registered, unfenced in this node's own image, and that image caught up to the
        registration (KRaft: a broker serves once it is unfenced)."""
        broker = image.brokers.get(self.node_id)
        return (
            self.is_registered
            and broker is not None
            and broker.broker_epoch == self.broker_epoch
            and not broker.is_fenced
            and image.offset >= self.broker_epoch
        )

    def contact_max_age_s(self) -> float:
        return max(CONTACT_MAX_AGE_S_MIN, 3 * self._heartbeat_interval_s())

    def controller_contact(self) -> int | None:
        """None when no controller answered this broker's heartbeats within `contact_max_age_s()`,
        else `contacts_gained` (it changes each time contact comes back after a silence)."""
        last = self.last_reply_at
        if last is None or time.monotonic() - last > self.contact_max_age_s():
            return None
        return self.contacts_gained

    def stale_reply_s(self) -> float:
        return max(STALE_REPLY_S_MIN, 2 * self._heartbeat_interval_s())

    def _retire_if_stale(self, target: int) -> None:
        """A session with `target` ended: retire its channel when `target` had not answered for
        `stale_reply_s()` (its connection may hold bytes sent into a partition)."""
        last = self._replied.get(target)
        if last is None or time.monotonic() - last > self.stale_reply_s():
            self._channels.reset(target)

    def _heartbeat_interval_s(self) -> float:
        return self.config.effective_broker_config(self._publisher.image).broker_heartbeat_interval_ms / 1000

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._publisher.add_listener(self._on_image)
        self._task = asyncio.create_task(self._run(), name="broker-lifecycle")
        logger.info("broker %d incarnation %s registering", self.node_id, self.incarnation_id.hex())

    async def close(self) -> None:
        self._stopped = True
        self._publisher.remove_listener(self._on_image)
        await cancel_and_wait(self._task)

    async def shutdown(self, timeout_s: float) -> bool:
        """Ask for a controlled shutdown; True once the controller says this broker may stop."""
        self.want_shutdown = True
        self._send_now.set()
        deadline = time.monotonic() + timeout_s
        while not self.should_shut_down:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        if self.is_registered and not self._reported_caught_up and new.offset >= self.broker_epoch:
            self._reported_caught_up = True
            self._send_now.set()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the session loop ------------------------------------------------------------------------

    def _pick(self, hinted: int | None, attempt: int, unanswered: dict[int, float]) -> int:
        """The controller to open the next session with: the NOT_CONTROLLER hint, else candidates
        in turn from this node's own hint, passing over the ones in `unanswered` (controller ->
        monotonic time it stopped answering) for UNANSWERED_AVOID_S while another one is left."""
        candidates = self._channels.candidates(hinted if hinted is not None else self._controller_hint())
        start = 0 if hinted is not None else attempt % len(candidates)
        ordered = candidates[start:] + candidates[:start]
        now = time.monotonic()
        for target, since in list(unanswered.items()):
            if now - since >= UNANSWERED_AVOID_S:
                del unanswered[target]
        return next((target for target in ordered if target not in unanswered), ordered[0])

    async def _run(self) -> None:
        hinted: int | None = None
        attempt = 0
        unanswered: dict[int, float] = {}
        while not self._stopped:
            target = self._pick(hinted, attempt, unanswered)
            attempt += 1
            hinted = None
            try:
                await self._session(target)
                logger.info("heartbeat stream to controller %d ended", target)
                self._retire_if_stale(target)
                hinted, self._moved_to = self._moved_to, None
                if hinted is not None:
                    continue
            except grpc.aio.AioRpcError as error:
                detail = status.detail_from_metadata(error.trailing_metadata())
                if detail is not None and detail.code == common_pb2.STALE_BROKER_EPOCH:
                    message = f"the controller refused this broker: {detail.message}"
                    logger.critical(message)
                    self._on_fatal(message)
                    return
                if detail is not None and detail.code == common_pb2.NOT_CONTROLLER:
                    if detail.controller_id >= 0 and detail.controller_id != target:
                        hinted = detail.controller_id
                        await asyncio.sleep(RETRY_S / 5)
                        continue
                elif self.connected_controller == target:
                    logger.info("heartbeat stream to controller %d broke: %s", target, error.code().name)
                if error.code() != grpc.StatusCode.UNAVAILABLE and (detail is None or detail.code != common_pb2.NOT_CONTROLLER):
                    self._retire_if_stale(target)
            except TimeoutError:
                logger.warning("controller %d stopped answering heartbeats; trying another on a new connection", target)
                unanswered[target] = time.monotonic()
                self._channels.reset(target)
            except Exception:
                # Anything else must not end the broker's session loop: log it and reconnect.
                logger.exception("heartbeat stream to controller %d failed", target)
            finally:
                self.connected_controller = None
            await asyncio.sleep(RETRY_S)

    def _request(self, registration: bool) -> controller_pb2.BrokerHeartbeatRequest:
        request = controller_pb2.BrokerHeartbeatRequest(
            node_id=self.node_id,
            broker_epoch=0 if registration else self.broker_epoch,
            metadata_offset=self._publisher.image.offset,
            want_shutdown=self.want_shutdown,
        )
        disk = self.disk_state()
        if disk is not None and disk.total_bytes > 0:
            request.log_dir_free_bytes = disk.free_bytes
            request.log_dir_total_bytes = disk.total_bytes
            request.is_log_dir_full = disk.is_full
        if registration:
            advertised = self.config.advertised
            request.registration.CopyFrom(
                controller_pb2.BrokerRegistrationRequest(
                    node_id=self.node_id,
                    incarnation_id=self.incarnation_id,
                    host=advertised.host,
                    port=advertised.port,
                    rack=self.config.rack,
                    listeners=[common_pb2.Listener(name=name, host=host, port=port) for name, host, port in self.config.listeners],
                )
            )
        return request

    async def _session(self, target: int) -> None:
        call = self._channels.stub(target).BrokerHeartbeat()
        try:
            await call.write(self._request(registration=True))
            reply_timeout = max(REPLY_TIMEOUT_S_MIN, 4 * self._heartbeat_interval_s())
            first = await asyncio.wait_for(call.read(), reply_timeout)
            if first is grpc.aio.EOF:
                return
            self._on_reply(first, target)
            self.connected_controller = target
            self.sessions_opened += 1
            logger.info(
                "heartbeating to controller %d (epoch %d): broker epoch %d, %s",
                target,
                first.controller_epoch,
                first.broker_epoch,
                "fenced" if first.is_fenced else "unfenced",
            )
            reader = asyncio.create_task(self._read(call, target, reply_timeout), name="heartbeat-replies")
            try:
                while not reader.done():
                    try:
                        await asyncio.wait_for(self._send_now.wait(), self._heartbeat_interval_s())
                    except TimeoutError:
                        pass
                    self._send_now.clear()
                    if reader.done():
                        break
                    moved = self._controller_hint()
                    if moved is not None and moved != target and moved in self._channels.listeners:
                        # This node's Raft view names a newer leader (a controller node sees an
                        # election at once; the old controller may be cut off and silent).
                        logger.info("controller %d is now the Raft leader: leaving controller %d", moved, target)
                        self._moved_to = moved
                        return
                    try:
                        await call.write(self._request(registration=False))
                    except asyncio.InvalidStateError:
                        break                    # the call ended: the reader has its status
                await reader
            finally:
                reader.cancel()
        finally:
            call.cancel()

    async def _read(self, call, target: int, reply_timeout: float) -> None:
        while True:
            reply = await asyncio.wait_for(call.read(), reply_timeout)
            if reply is grpc.aio.EOF:
                return
            self._on_reply(reply, target)

    def _on_reply(self, reply: controller_pb2.BrokerHeartbeatResponse, target: int) -> None:
        now = time.monotonic()
        if self.last_reply_at is None or now - self.last_reply_at > self.contact_max_age_s():
            self.contacts_gained += 1
        self.last_reply_at = now
        self._replied[target] = now
        if reply.broker_epoch != self.broker_epoch:
            self.broker_epoch = reply.broker_epoch
            # Report catching up at once; when the image is not there yet, _on_image will.
            self._reported_caught_up = self._publisher.image.offset >= reply.broker_epoch
            if self._reported_caught_up:
                self._send_now.set()
        if reply.is_fenced != self.is_fenced:
            logger.info("broker %d is %s by controller %d", self.node_id, "fenced" if reply.is_fenced else "unfenced", target)
        self.is_fenced = reply.is_fenced
        self.controller_id = reply.controller_id
        self.controller_epoch = max(self.controller_epoch, reply.controller_epoch)
        if reply.should_shut_down and not self.should_shut_down:
            logger.info("controller %d: controlled shutdown complete, this broker may stop", target)
        self.should_shut_down = reply.should_shut_down
        self._notify()
