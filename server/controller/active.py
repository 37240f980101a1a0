"""The active controller role of a node: claiming, broker sessions, periodic work, admin requests.

Owns what the Raft leader does once its ClaimController is applied (KRaft's QuorumController):

- Claiming: when the local voter becomes leader at term T it proposes ClaimController(T) (and
  InitCluster with a fresh cluster id the first time); it is the *active* controller only after
  that claim is applied, and every command it proposes carries epoch T. Losing leadership (or a
  newer term) deactivates it at once: heartbeat streams are closed with NOT_CONTROLLER so brokers
  move to the new controller, and in-flight proposals fail (the state machine would reject them
  as STALE_CONTROLLER_EPOCH anyway).
- Activation gives every registered broker a fresh session (ControllerCore.activate) before
  anyone is judged; brokers on voters the Raft layer cannot reach get the shorter takeover grace.
- Broker sessions: `serve_heartbeats` runs one broker's heartbeat stream (registration, session
  renewal, replies on every heartbeat and whenever the broker's state changes).
- One work task proposes what ControllerCore decides (fencing on expiry, unfencing, controlled
  shutdown, leaderless elections, reassignment completion, rebalance), one command at a time.
- Admin requests (create/delete topics, partitions, elections, reassignments, configs,
  AlterPartition, producer ids), each item a command with request id "<request id>/<item>";
  a request id the quorum remembers returns its first result without new validation.

All writes are serialised by one asyncio lock and computed from the newest image
(`quorum.image`), so a command never races another of this controller's commands.

Imports: asyncio, freshet.metadata (controller logic, commands, quorum), freshet.server
(config, errors), freshet.metadata.clock (the system clock), wire types.
Thread-safety: not thread-safe; runs on the node's event loop. The quorum's leadership
listener (Raft thread) only calls `loop.call_soon_threadsafe`. `metrics` may be read from the
HTTP thread (plain ints).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import uuid
from collections.abc import Callable

import grpc
from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.clock import SystemClock
from freshet.metadata.errors import (
    CommandFailedError,
    ControllerRequestError,
    NotLeaderError,
    QuorumClosedError,
    StaleBrokerEpochError,
)
from freshet.metadata.image import MetadataImage
from freshet.metadata.quorum import LeadershipChange, MetadataQuorum
from freshet.server import limits, status
from freshet.server.config import NodeConfig
from freshet.server.errors import InvalidRequestError, NotControllerError
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
WORK_INTERVAL_S = 0.1
# Answers of an "every partition" election that are not worth reporting.
_NOTHING_TO_ELECT = frozenset({E.ELECTION_NOT_NEEDED, E.PREFERRED_LEADER_NOT_AVAILABLE, E.ELIGIBLE_LEADERS_NOT_AVAILABLE})
INIT_CLUSTER_REQUEST_ID = "init-cluster"


@dataclasses.dataclass
class ControllerMetrics:
    """Counters of the active controller. Written on the loop, read by /metrics (ints)."""

    clean_elections: int = 0
    unclean_elections: int = 0
    fenced_brokers: int = 0
    activations: int = 0


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


def new_cluster_id() -> str:
    """A random cluster id, 22 URL-safe characters like Kafka's."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class ActiveController:
    """The active-controller role of one node (see the module docstring). Not thread-safe (loop)."""

    def __init__(self, config: NodeConfig, quorum: MetadataQuorum, loop: asyncio.AbstractEventLoop, clock=None) -> None:
        self.config = config
        self.node_id = config.node_id
        self._quorum = quorum
        self._loop = loop
        self._clock = clock or SystemClock()
        self.settings = logic.ControllerSettings(
            node_id=config.node_id,
            static_broker_configs=dict(config.broker_configs),
            reconnect_grace_ms=config.reconnect_grace_ms,
        )
        self.core: logic.ControllerCore | None = None
        self.metrics = ControllerMetrics()
        self._activation = 0
        self._claiming_term = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending_brokers: set[int] = set()
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task] = set()
        self._work_task: asyncio.Task | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._quorum.add_leadership_listener(self._on_leadership_thread)

    async def close(self) -> None:
        self._closed = True
        self._deactivate("the node is stopping")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def is_active(self) -> bool:
        core = self.core
        return (
            core is not None
            and self._quorum.is_leader
            and self._quorum.term == core.controller_epoch
            and self._quorum.image.controller_epoch == core.controller_epoch
            and self._quorum.image.controller_id == self.node_id
        )

    def describe(self) -> dict:
        """The controller part of /status (any thread: copies of plain values)."""
        core = self.core
        result: dict = {"is_active": self.is_active, "epoch": self.controller_epoch, "activations": self.metrics.activations}
        if core is not None:
            now = self._clock.monotonic_ms()
            result["sessions"] = [
                {
                    "broker": session.node_id,
                    "broker_epoch": session.broker_epoch,
                    "connected": session.is_connected,
                    "expires_in_ms": session.deadline_ms - now,
                    "metadata_offset": session.metadata_offset,
                    "want_shutdown": session.want_shutdown,
                }
                for session in sorted(list(core.sessions.values()), key=lambda s: s.node_id)
            ]
        return result

    @property
    def controller_epoch(self) -> int:
        core = self.core
        return 0 if core is None else core.controller_epoch

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = self._loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_leadership_thread(self, change: LeadershipChange) -> None:
        # Raft thread: hop onto the loop, never block.
        try:
            self._loop.call_soon_threadsafe(self._on_leadership, change)
        except RuntimeError:
            pass

    def _on_leadership(self, change: LeadershipChange) -> None:
        if self._closed:
            return
        core = self.core
        if core is not None and (not change.is_leader or change.term != core.controller_epoch):
            self._deactivate(f"leadership moved (term {change.term}, leader {change.leader_id})")
        if change.is_leader and change.term > self._claiming_term:
            self._claiming_term = change.term
            self._spawn(self._claim(change.term), f"claim-{change.term}")

    def _deactivate(self, reason: str) -> None:
        if self.core is None:
            return
        logger.info("no longer the active controller (epoch %d): %s", self.core.controller_epoch, reason)
        self.core = None
        self._activation += 1
        if self._work_task is not None:
            self._work_task.cancel()
            self._work_task = None
        for stream in self._streams.values():
            stream.event.set()

    async def _propose(self, command: metadata_pb2.MetadataCommand, timeout_s: float | None = None) -> metadata_pb2.MetadataResult:
        return await asyncio.wrap_future(self._quorum.propose(command, timeout_s))

    async def _claim(self, term: int) -> None:
        quorum = self._quorum
        command = commands.claim_controller(f"claim-{self.node_id}-{term}", self.node_id, term)
        while quorum.is_leader and quorum.term == term and not self._closed:
            try:
                result = await self._propose(command)
            except (NotLeaderError, QuorumClosedError):
                return
            except Exception as error:                 # outcome unknown or busy: the same request again
                logger.warning("claiming the controller at term %d: %s; retrying", term, error)
                await asyncio.sleep(0.05)
                continue
            if result.error_code != E.NONE:
                logger.warning("claim at term %d refused: %s", term, result.error_message)
                return
            break
        else:
            return
        image = quorum.image
        if not image.cluster_id:
            try:
                result = await self._propose(commands.init_cluster(INIT_CLUSTER_REQUEST_ID, term, new_cluster_id()))
                if result.error_code == E.NONE:
                    logger.info("cluster id %s", quorum.image.cluster_id)
            except Exception as error:
                logger.warning("could not set the cluster id yet: %s", error)
        if not (quorum.is_leader and quorum.term == term) or self._closed:
            return
        unreachable = await self._unreachable_voters()
        if not (quorum.is_leader and quorum.term == term) or self._closed:
            return
        core = logic.ControllerCore(self.settings, term, self._clock)
        core.activate(quorum.image, unreachable)
        self.core = core
        self._activation += 1
        self.metrics.activations += 1
        logger.info(
            "active controller at epoch %d (offset %d, %d brokers registered%s)",
            term,
            quorum.image.offset,
            len(quorum.image.brokers),
            f"; brokers on unreachable voters {sorted(unreachable)} get {self.settings.reconnect_grace_ms} ms" if unreachable else "",
        )
        self._work_task = self._spawn(self._work(core), f"controller-work-{term}")

    async def _unreachable_voters(self) -> list[int]:
        """Voters (other than this one) the Raft layer has no connection to right now."""
        try:
            quorum_status = await self._loop.run_in_executor(None, self._quorum.status)
        except Exception as error:
            logger.warning("quorum status unavailable at takeover: %s", error)
            return []
        return [voter.node_id for voter in quorum_status.voters if not voter.is_self and not voter.is_connected]

    # -- periodic work ---------------------------------------------------------------------------

    async def _work(self, core: logic.ControllerCore) -> None:
        while self.core is core:
            try:
                await asyncio.wait_for(self._wake.wait(), WORK_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._work_round(core)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one round must not stop the controller's periodic work: log, go on.
                logger.exception("controller work round failed")

    async def _work_round(self, core: logic.ControllerCore) -> None:
        async with self._lock:
            if self.core is not core or not self.is_active:
                return
            pending, self._pending_brokers = self._pending_brokers, set()
            for node_id in sorted(pending):
                action = core.broker_action(self._quorum.image, node_id)
                if action is not None:
                    await self._run(action)
            for _ in range(limits.CONTROLLER_ACTIONS_PER_ROUND_MAX):
                if self.core is not core:
                    break
                action = core.poll(self._quorum.image)
                if action is None or not await self._run(action):
                    break

    async def _run(self, action: logic.ControllerAction) -> bool:
        """Propose one action; True when it was applied. Called with the lock held."""
        try:
            result = await self._propose(action.command)
        except Exception as error:
            logger.warning("%s: not applied (%s)", action.description, error)
            return False
        if result.error_code != E.NONE:
            logger.warning(
                "%s: refused with %s: %s", action.description, E.Name(result.error_code), result.error_message
            )
            return False
        logger.info("%s (offset %d)", action.description, result.offset)
        self.metrics.clean_elections += action.clean_elections
        self.metrics.unclean_elections += action.unclean_elections
        if action.kind is logic.ActionKind.FENCE:
            self.metrics.fenced_brokers += 1
        return True

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        """Publisher listener (loop): brokers' states may have changed; look again."""
        for stream in self._streams.values():
            stream.event.set()
        if self.core is not None:
            self._wake.set()

    # -- broker heartbeats -----------------------------------------------------------------------

    def not_controller_error(self) -> NotControllerError:
        image = self._quorum.image
        hint = self._quorum.leader_id if self._quorum.leader_id is not None else image.controller_id
        if hint == self.node_id and not self.is_active:
            hint = image.controller_id if image.controller_id != self.node_id else -1
        endpoint = self.config.controller_listeners.get(hint) if hint is not None and hint >= 0 else None
        return NotControllerError(
            hint if hint is not None else -1,
            endpoint.host if endpoint else "",
            endpoint.port if endpoint else 0,
            f"node {self.node_id} is not the active controller",
        )

    def _require_active(self) -> logic.ControllerCore:
        core = self.core
        if core is None or not self.is_active:
            raise self.not_controller_error()
        return core

    async def serve_heartbeats(self, context: grpc.aio.ServicerContext, first: controller_pb2.BrokerHeartbeatRequest) -> None:
        """Run one broker's heartbeat stream until it ends.

        Raises:
            NotControllerError: this node is not (or stops being) the active controller.
            InvalidRequestError: the first request does not register.
            StaleBrokerEpochError: the broker's registration was replaced by another incarnation.
        """
        core = self._require_active()
        registration = first.registration
        if not first.HasField("registration"):
            raise InvalidRequestError("the first request of a heartbeat stream must carry registration")
        node_id = registration.node_id
        if node_id < 0 or len(registration.incarnation_id) != 16 or not registration.host or not 0 < registration.port < 65536:
            raise InvalidRequestError(
                "registration needs node_id >= 0, a 16-byte incarnation_id, a host and a port in 1..65535"
            )
        async with self._lock:
            core = self._require_active()
            action = core.registration(
                self._quorum.image, node_id, bytes(registration.incarnation_id), registration.host, registration.port, registration.rack
            )
            if action is not None:
                result = await self._propose_for_request(action.command)
                commands.raise_for_error(result, action.command.request_id)
                logger.info("%s (epoch %d)", action.description, result.offset)
                self.metrics.clean_elections += action.clean_elections
                self.metrics.unclean_elections += action.unclean_elections
            core = self._require_active()
            session = core.open_session(self._quorum.image, node_id)
        stream = _Stream(node_id, session.broker_epoch, self._activation)
        previous = self._streams.get(node_id)
        if previous is not None:
            previous.is_replaced = True
            previous.event.set()
        self._streams[node_id] = stream
        stream.event.set()                       # answer the registration at once
        reader = self._loop.create_task(self._read_heartbeats(context, stream), name=f"heartbeats-{node_id}")
        try:
            while True:
                await stream.event.wait()
                stream.event.clear()
                if stream.activation != self._activation or self.core is not core or not self.is_active:
                    raise self.not_controller_error()    # with the hint: the broker moves on at once
                if reader.done():
                    error = reader.exception()
                    if error is not None:
                        raise error
                    return                       # the broker closed its side
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
                            controller_id=self.node_id,
                            controller_epoch=core.controller_epoch,
                            is_caught_up=reply.is_caught_up,
                        )
                    )
        finally:
            reader.cancel()
            if self._streams.get(node_id) is stream:
                del self._streams[node_id]
                if self.core is core:
                    core.stream_closed(node_id, stream.broker_epoch)
                    self._wake.set()

    async def _read_heartbeats(self, context: grpc.aio.ServicerContext, stream: _Stream) -> None:
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                core = self.core
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
                stream.needs_reply = True
                stream.event.set()
                if session.want_shutdown or self._quorum.image.brokers[stream.node_id].is_fenced:
                    self._pending_brokers.add(stream.node_id)
                    self._wake.set()
        finally:
            stream.event.set()

    # -- admin -----------------------------------------------------------------------------------

    async def _propose_for_request(self, command: metadata_pb2.MetadataCommand) -> metadata_pb2.MetadataResult:
        """Propose a command of a client request. Not the leader (any more): NotControllerError,
        so that the caller forwards the request (same request ids) to the new controller."""
        try:
            return await self._propose(command)
        except (NotLeaderError, QuorumClosedError):
            raise self.not_controller_error() from None

    def _remembered(self, request_id: str) -> metadata_pb2.MetadataResult | None:
        return self._quorum.image.request_result(request_id)

    async def _item(
        self,
        request_id: str,
        error: common_pb2.ErrorDetail,
        response,
        build: Callable[[], metadata_pb2.MetadataCommand],
        validate_only: bool = False,
    ) -> metadata_pb2.MetadataResult | None:
        """One item of an admin request (called with the lock held): the result remembered for
        `request_id`, or the command build() validates and returns, proposed now (build raises
        ControllerRequestError to refuse the item). Fills `error` and the response's
        metadata_offset; None when nothing was proposed (refused, or validate_only)."""
        remembered = None if validate_only else self._remembered(request_id)
        if remembered is None:
            try:
                command = build()
            except ControllerRequestError as refused:
                error.CopyFrom(status.detail_for(refused))
                return None
            if validate_only:
                error.CopyFrom(status.ok_detail())
                return None
            remembered = await self._propose_for_request(command)
        self._fill_outcome(error, remembered, response)
        return remembered

    async def create_topics(self, request: controller_pb2.CreateTopicsRequest) -> controller_pb2.CreateTopicsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.CreateTopicsResponse()
        names = [topic.name for topic in request.topics]
        async with self._lock:
            core = self._require_active()
            for item, topic in enumerate(request.topics):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(name=topic.name)
                if names.count(topic.name) > 1:
                    result.error.CopyFrom(status.detail(E.INVALID_REQUEST, f"topic {topic.name!r} appears more than once in the request"))
                    continue

                def build(topic=topic, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    image = self._quorum.image
                    plan = logic.plan_topic(
                        image,
                        topic.name,
                        topic.num_partitions if topic.HasField("num_partitions") else None,
                        topic.replication_factor if topic.HasField("replication_factor") else None,
                        [list(a.replicas) for a in topic.assignments],
                        _config_map(topic.configs),
                        core.broker_config(image, self.node_id),
                    )
                    _fill_assignments(result.assignments, [replicas for replicas, _, _ in plan.assignments])
                    result.num_partitions = len(plan.assignments)
                    result.replication_factor = plan.replication_factor
                    return plan.command(rid, core.controller_epoch, commands.new_topic_id())

                outcome = await self._item(rid, result.error, response, build, request.validate_only)
                if outcome is not None and outcome.error_code == E.NONE:
                    result.topic_id = outcome.topic_id
                    created = self._quorum.image.topic_by_id(outcome.topic_id)
                    if created is not None and not result.assignments:      # a remembered creation
                        _fill_assignments(result.assignments, [p.replicas for p in created.partitions])
                        result.num_partitions = len(created.partitions)
                        result.replication_factor = created.replication_factor
        return response

    async def delete_topics(self, request: controller_pb2.DeleteTopicsRequest) -> controller_pb2.DeleteTopicsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.DeleteTopicsResponse()
        async with self._lock:
            core = self._require_active()
            for item, name in enumerate(request.names):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(name=name)

                def build(name=name, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    topic = logic.topic_by_name(self._quorum.image, name)
                    result.topic_id = topic.topic_id
                    return commands.delete_topic(rid, core.controller_epoch, topic.topic_id)

                await self._item(rid, result.error, response, build)
        return response

    async def create_partitions(self, request: controller_pb2.CreatePartitionsRequest) -> controller_pb2.CreatePartitionsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.CreatePartitionsResponse()
        async with self._lock:
            core = self._require_active()
            for item, increase in enumerate(request.topics):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(topic=increase.topic)

                def build(increase=increase, result=result, rid=rid) -> metadata_pb2.MetadataCommand:
                    topic, states = logic.plan_partitions(
                        self._quorum.image, increase.topic, increase.count, [list(a.replicas) for a in increase.assignments]
                    )
                    _fill_assignments(result.assignments, [replicas for replicas, _, _ in states])
                    return commands.create_partitions(rid, core.controller_epoch, topic.topic_id, increase.count, states)

                await self._item(rid, result.error, response, build, request.validate_only)
        return response

    async def elect_leaders(self, request: controller_pb2.ElectLeadersRequest) -> controller_pb2.ElectLeadersResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.ElectLeadersResponse()
        is_unclean = request.type == controller_pb2.ELECTION_UNCLEAN
        async with self._lock:
            core = self._require_active()
            if request.partitions:
                targets = [(tp.topic, tp.partition) for tp in request.partitions]
                quiet = False
            else:
                targets = [(topic.name, partition.partition) for topic, partition in logic.all_partitions(self._quorum.image)]
                quiet = True                     # "all": report only the partitions that changed
            for item, (topic_name, number) in enumerate(targets):
                rid = logic.item_request_id(request.request_id, item)
                outcome = controller_pb2.ElectLeaderResult(
                    partition=common_pb2.TopicPartition(topic=topic_name, partition=number), leader=-1
                )
                elections: list[logic.PartitionChange] = []

                def build(topic_name=topic_name, number=number, outcome=outcome, elections=elections, rid=rid):
                    image = self._quorum.image
                    topic, partition = logic.partition_of(image, topic_name, number)
                    outcome.leader = partition.leader
                    if is_unclean:
                        change = logic.unclean_election(image, topic, partition)
                    else:
                        change = logic.preferred_election(image, topic, partition)
                    elections.append(change)
                    return change.command(rid, core.controller_epoch)

                applied = await self._item(rid, outcome.error, response, build)
                if applied is None and quiet and outcome.error.code in _NOTHING_TO_ELECT:
                    continue
                if applied is not None and applied.error_code == E.NONE:
                    outcome.leader = applied.partition.leader
                    if elections and elections[0].is_unclean:
                        self.metrics.unclean_elections += 1
                    elif elections:
                        self.metrics.clean_elections += 1
                response.results.append(outcome)
        return response

    async def alter_reassignments(
        self, request: controller_pb2.AlterPartitionReassignmentsRequest
    ) -> controller_pb2.AlterPartitionReassignmentsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.AlterPartitionReassignmentsResponse()
        async with self._lock:
            core = self._require_active()
            for item, reassignment in enumerate(request.reassignments):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(partition=reassignment.partition)

                def build(reassignment=reassignment, rid=rid) -> metadata_pb2.MetadataCommand:
                    image = self._quorum.image
                    topic, partition = logic.partition_of(image, reassignment.partition.topic, reassignment.partition.partition)
                    targets = list(reassignment.target_replicas)
                    logic.check_reassignment_targets(image, topic, partition, targets)
                    return commands.reassign_partition(rid, core.controller_epoch, topic.topic_id, partition.partition, targets)

                await self._item(rid, result.error, response, build)
        self._wake.set()
        return response

    async def incremental_alter_configs(
        self, request: controller_pb2.IncrementalAlterConfigsRequest
    ) -> controller_pb2.IncrementalAlterConfigsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.IncrementalAlterConfigsResponse()
        async with self._lock:
            core = self._require_active()
            for item, resource in enumerate(request.resources):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(resource=resource.resource)

                def build(resource=resource, rid=rid) -> metadata_pb2.MetadataCommand:
                    to_set: dict[str, str] = {}
                    to_delete: list[str] = []
                    for entry in resource.configs:
                        if entry.key in to_set or entry.key in to_delete:
                            raise ControllerRequestError(E.INVALID_REQUEST, f"configuration {entry.key!r} appears twice")
                        if entry.operation == controller_pb2.CONFIG_DELETE:
                            to_delete.append(entry.key)
                        else:
                            to_set[entry.key] = entry.value
                    logic.check_config_changes(
                        self._quorum.image, resource.resource, to_set, to_delete, self.settings.static_broker_configs
                    )
                    return commands.alter_configs(rid, core.controller_epoch, resource.resource, to_set, to_delete)

                await self._item(rid, result.error, response, build, request.validate_only)
        return response

    async def alter_partition(self, request: controller_pb2.AlterPartitionRequest) -> controller_pb2.AlterPartitionResponse:
        request_id = request.request_id or commands.new_request_id()
        logic.check_request_id(request_id)
        response = controller_pb2.AlterPartitionResponse()
        async with self._lock:
            core = self._require_active()
            for item, change in enumerate(request.changes):
                rid = logic.item_request_id(request_id, item)
                result = response.results.add(topic_id=change.topic_id, partition=change.partition)

                def build(change=change, rid=rid) -> metadata_pb2.MetadataCommand:
                    planned = logic.alter_partition_change(
                        self._quorum.image,
                        request.broker_id,
                        request.broker_epoch,
                        bytes(change.topic_id),
                        change.partition,
                        change.leader_epoch,
                        change.partition_epoch,
                        list(change.new_isr),
                    )
                    return planned.command(rid, core.controller_epoch)

                applied = await self._item(rid, result.error, response, build)
                if applied is not None and applied.error_code == E.NONE:
                    result.partition_state.CopyFrom(applied.partition)
        self._wake.set()                         # a reassignment may be able to complete now
        return response

    async def allocate_producer_ids(
        self, request: controller_pb2.AllocateProducerIdsRequest
    ) -> controller_pb2.AllocateProducerIdsResponse:
        request_id = request.request_id or commands.new_request_id()
        logic.check_request_id(request_id)
        rid = logic.item_request_id(request_id, 0)
        async with self._lock:
            core = self._require_active()
            remembered = self._remembered(rid)
            if remembered is None:
                broker = self._quorum.image.brokers.get(request.broker_id)
                if broker is None or broker.broker_epoch != request.broker_epoch:
                    raise StaleBrokerEpochError(request.broker_id, request.broker_epoch, -1 if broker is None else broker.broker_epoch)
                remembered = await self._propose_for_request(
                    commands.allocate_producer_ids(rid, core.controller_epoch, request.broker_id, request.broker_epoch)
                )
        if remembered.error_code != E.NONE:
            raise CommandFailedError(remembered.error_code, remembered.error_message, rid, remembered.offset)
        block = remembered.producer_ids
        return controller_pb2.AllocateProducerIdsResponse(
            first_producer_id=block.first_producer_id, size=block.size, metadata_offset=remembered.offset
        )

    async def describe_quorum(self) -> controller_pb2.DescribeQuorumResponse:
        self._require_active()
        quorum_status = await self._loop.run_in_executor(None, self._quorum.status)
        response = controller_pb2.DescribeQuorumResponse(
            leader_id=-1 if quorum_status.leader_id is None else quorum_status.leader_id,
            term=quorum_status.term,
            commit_raft_index=quorum_status.commit_raft_index,
            last_raft_index=quorum_status.last_raft_index,
            applied_offset=quorum_status.applied_offset,
            has_quorum=quorum_status.has_quorum,
            snapshot_raft_index=quorum_status.snapshot_raft_index,
        )
        for voter in quorum_status.voters:
            response.voters.add(
                node_id=voter.node_id,
                raft_address=voter.address,
                is_connected=voter.is_connected,
                match_raft_index=-1 if voter.match_raft_index is None else voter.match_raft_index,
                lag=-1 if voter.lag is None else voter.lag,
            )
        return response

    @staticmethod
    def _fill_outcome(error: common_pb2.ErrorDetail, result: metadata_pb2.MetadataResult, response) -> None:
        if result.error_code == E.NONE:
            error.CopyFrom(status.ok_detail())
            response.metadata_offset = max(response.metadata_offset, result.offset)
        else:
            error.CopyFrom(status.detail(result.error_code, result.error_message))


def _config_map(entries) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in entries:
        if entry.key in values:
            raise ControllerRequestError(E.INVALID_CONFIG, f"configuration {entry.key!r} is given more than once")
        values[entry.key] = entry.value
    return values


def _fill_assignments(target, assignments) -> None:
    del target[:]
    for replicas in assignments:
        target.add(replicas=list(replicas))
