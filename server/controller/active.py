"""The active controller role of a node: claiming, periodic work, and the parts it delegates to.

Owns what the Raft leader does once its ClaimController is applied (KRaft's QuorumController):

- Claiming: when the local voter becomes leader at term T it proposes ClaimController(T) (and
  InitCluster with a fresh cluster id the first time); it is the *active* controller only after
  that claim is applied, and every command it proposes carries epoch T. Losing leadership (or a
  newer term) deactivates it at once: heartbeat streams are closed with NOT_CONTROLLER so brokers
  move to the new controller, and in-flight proposals fail (the state machine would reject them
  as STALE_CONTROLLER_EPOCH anyway).
- Activation gives every registered broker a fresh session (ControllerCore.activate) before
  anyone is judged; brokers on voters the Raft layer cannot reach get the shorter takeover grace.
- One work task proposes what ControllerCore decides (fencing on expiry, unfencing, controlled
  shutdown, leaderless elections, reassignment completion, rebalance), one command at a time.
- The bootstrap user (security.bootstrap.user + security.bootstrap.password.file): after each
  activation, the controller proposes a SCRAM-SHA-256 and a SCRAM-SHA-512 credential for that
  user for each mechanism the user has none of, so `cluster up --secure` and the Kubernetes
  Secret have a superuser to log in with. Idempotent across failovers (the next controller finds
  the credentials in the image); an existing credential is never overwritten; the password is
  only hashed, never logged.
- Topic defaults of a server.properties file (NodeConfig.topic_defaults, e.g. Kafka's
  log.retention.ms as retention.ms): after each activation, the controller writes as cluster-wide
  configs those the cluster has no value for yet, in one AlterConfigs. A value set later with
  `freshet config --cluster` is never overwritten by a restart; the first controller's file wins.
- The public API of the role (used by the Controller servicer and the node). Two parts do the
  request work: `heartbeat_streams` (`serve_heartbeats`: registration, session renewal, replies)
  and `admin_requests` (create/delete topics, partitions, elections, reassignments, configs,
  AlterPartition, producer ids, DescribeQuorum), with `security_requests` (users and ACLs). They
  reach the role through its "for the controller's parts" section: the write lock, the current
  core, proposals, waking work.

All writes are serialised by one asyncio lock (`lock`) and computed from the newest image
(`quorum.image`), so a command never races another of this controller's commands.

Imports: asyncio, freshet.metadata (controller logic, commands, quorum), freshet.server
(config, errors, limits, its controller parts), freshet.metadata.clock (the system clock), wire
types.
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

import grpc
from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.clock import SystemClock
from freshet.metadata.errors import NotLeaderError, QuorumClosedError
from freshet.metadata.image import MetadataImage
from freshet.metadata.quorum import LeadershipChange, MetadataQuorum
from freshet.metadata.security import ScramCredential, ScramMechanism
from freshet.server import limits
from freshet.server.config import NodeConfig
from freshet.server.controller.admin_requests import AdminRequests
from freshet.server.controller.heartbeat_streams import HeartbeatStreams
from freshet.server.controller.security_requests import SecurityRequests
from freshet.server.errors import NotControllerError
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
WORK_INTERVAL_S = 0.1
INIT_CLUSTER_REQUEST_ID = "init-cluster"


@dataclasses.dataclass
class ControllerMetrics:
    """Counters of the active controller. Written on the loop, read by /metrics (ints)."""

    clean_elections: int = 0
    unclean_elections: int = 0
    fenced_brokers: int = 0
    activations: int = 0


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
        self.lock = asyncio.Lock()           # held by every write: work rounds, registrations, admin items
        self._wake = asyncio.Event()
        self._pending_brokers: set[int] = set()
        self._heartbeat_streams = HeartbeatStreams(self, quorum, loop)
        self._admin = AdminRequests(self, quorum, loop)
        self._security = SecurityRequests(self, quorum, loop)
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

    def disk_reports(self) -> dict[int, tuple[int, int, bool] | None]:
        """Per broker with a session: its log directory (free bytes, total bytes, is full) from its
        last heartbeat, None before one reported it; {} when this node is not the active controller."""
        core = self.core
        if core is None or not self.is_active:
            return {}
        return {node_id: session.disk for node_id, session in list(core.sessions.items())}

    def describe(self) -> dict:
        """The controller part of /status (any thread: copies of plain values)."""
        core = self.core
        result: dict = {"is_active": self.is_active, "epoch": self.controller_epoch, "activations": self.metrics.activations}
        if core is not None:
            balancer = core.balancer
            result["balancer"] = {
                "batches_started": balancer.batches_started,
                "moves_started": balancer.moves_started,
                "last_plan_size": balancer.last_plan_size,
            }
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
        self._heartbeat_streams.wake_all()

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
        if self.config.bootstrap_user is not None:
            self._spawn(self._ensure_bootstrap_user(core), f"controller-bootstrap-user-{term}")
        if self.config.topic_defaults:
            self._spawn(self._ensure_topic_defaults(core), f"controller-topic-defaults-{term}")

    async def _ensure_topic_defaults(self, core: logic.ControllerCore) -> None:
        """Write the file's topic defaults the cluster has no value for (module docstring); retried
        while this activation lasts and a proposal fails."""
        while self.core is core and not self._closed:
            async with self.lock:
                if self.core is not core or not self.is_active:
                    return
                present = self._quorum.image.cluster_configs
                missing = {key: value for key, value in self.config.topic_defaults.items() if key not in present}
                if not missing:
                    return
                command = commands.alter_configs(
                    commands.new_request_id(), core.controller_epoch, commands.cluster_resource(), missing
                )
                try:
                    result = await self._propose(command)
                except Exception as error:
                    logger.warning("writing the topic defaults of the config file: %s; retrying", error)
                    result = None
            if result is not None and result.error_code == E.NONE:
                logger.info("cluster-wide topic defaults from the config file: %s", ", ".join(f"{k}={v}" for k, v in sorted(missing.items())))
                return
            if result is not None:
                logger.warning("writing the topic defaults of the config file refused: %s", result.error_message)
                return
            await asyncio.sleep(0.5)

    async def _ensure_bootstrap_user(self, core: logic.ControllerCore) -> None:
        """Create the bootstrap user's missing SCRAM credentials (module docstring); retried while
        this activation lasts and a proposal fails."""
        user, password = self.config.bootstrap_user, self.config.bootstrap_password
        assert user is not None and password is not None
        for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            while self.core is core and not self._closed:
                if self._quorum.image.scram_credential(user, mechanism) is not None:
                    break
                credential = await self._loop.run_in_executor(None, ScramCredential.from_password, mechanism, password)
                async with self.lock:
                    if self.core is not core or not self.is_active:
                        return
                    if self._quorum.image.scram_credential(user, mechanism) is not None:
                        break
                    command = commands.upsert_user_credential(commands.new_request_id(), core.controller_epoch, user, credential)
                    try:
                        result = await self._propose(command)
                    except Exception as error:
                        logger.warning("creating the bootstrap user %r: %s; retrying", user, error)
                        result = None
                if result is not None and result.error_code == E.NONE:
                    logger.info("created the bootstrap user %r (%s)", user, mechanism.mechanism_name)
                    break
                if result is not None:
                    logger.warning("creating the bootstrap user %r refused: %s", user, result.error_message)
                    return
                await asyncio.sleep(0.5)

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
        async with self.lock:
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
        self._heartbeat_streams.wake_all()
        if self.core is not None:
            self._wake.set()

    # -- broker heartbeats (see heartbeat_streams) -----------------------------------------------

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

    async def serve_heartbeats(self, context: grpc.aio.ServicerContext, first: controller_pb2.BrokerHeartbeatRequest) -> None:
        """Run one broker's heartbeat stream until it ends.

        Raises:
            NotControllerError: this node is not (or stops being) the active controller.
            InvalidRequestError: the first request does not register.
            StaleBrokerEpochError: the broker's registration was replaced by another incarnation.
        """
        await self._heartbeat_streams.serve(context, first)

    # -- admin requests (see admin_requests) -----------------------------------------------------

    async def create_topics(self, request: controller_pb2.CreateTopicsRequest) -> controller_pb2.CreateTopicsResponse:
        return await self._admin.create_topics(request)

    async def delete_topics(self, request: controller_pb2.DeleteTopicsRequest) -> controller_pb2.DeleteTopicsResponse:
        return await self._admin.delete_topics(request)

    async def create_partitions(self, request: controller_pb2.CreatePartitionsRequest) -> controller_pb2.CreatePartitionsResponse:
        return await self._admin.create_partitions(request)

    async def elect_leaders(self, request: controller_pb2.ElectLeadersRequest) -> controller_pb2.ElectLeadersResponse:
        return await self._admin.elect_leaders(request)

    async def alter_reassignments(
        self, request: controller_pb2.AlterPartitionReassignmentsRequest
    ) -> controller_pb2.AlterPartitionReassignmentsResponse:
        return await self._admin.alter_reassignments(request)

    async def incremental_alter_configs(
        self, request: controller_pb2.IncrementalAlterConfigsRequest
    ) -> controller_pb2.IncrementalAlterConfigsResponse:
        return await self._admin.incremental_alter_configs(request)

    async def decommission_broker(
        self, request: controller_pb2.DecommissionBrokerRequest
    ) -> controller_pb2.DecommissionBrokerResponse:
        return await self._admin.decommission_broker(request)

    async def alter_partition(self, request: controller_pb2.AlterPartitionRequest) -> controller_pb2.AlterPartitionResponse:
        return await self._admin.alter_partition(request)

    async def allocate_producer_ids(
        self, request: controller_pb2.AllocateProducerIdsRequest
    ) -> controller_pb2.AllocateProducerIdsResponse:
        return await self._admin.allocate_producer_ids(request)

    async def describe_quorum(self) -> controller_pb2.DescribeQuorumResponse:
        return await self._admin.describe_quorum()

    # -- users and ACLs (see security_requests) --------------------------------------------------

    async def upsert_user_scram_credentials(
        self, request: controller_pb2.UpsertUserScramCredentialsRequest
    ) -> controller_pb2.UpsertUserScramCredentialsResponse:
        return await self._security.upsert_user_scram_credentials(request)

    async def delete_user_scram_credentials(
        self, request: controller_pb2.DeleteUserScramCredentialsRequest
    ) -> controller_pb2.DeleteUserScramCredentialsResponse:
        return await self._security.delete_user_scram_credentials(request)

    async def create_acls(self, request: controller_pb2.CreateAclsRequest) -> controller_pb2.CreateAclsResponse:
        return await self._security.create_acls(request)

    async def delete_acls(self, request: controller_pb2.DeleteAclsRequest) -> controller_pb2.DeleteAclsResponse:
        return await self._security.delete_acls(request)

    # -- for the controller's parts (heartbeat streams, admin requests) --------------------------

    @property
    def activation(self) -> int:
        """Bumped on every activation and deactivation: a stream of an older one must end."""
        return self._activation

    def require_active(self) -> logic.ControllerCore:
        """The core of the current activation. Raises NotControllerError (with the hint) if none."""
        core = self.core
        if core is None or not self.is_active:
            raise self.not_controller_error()
        return core

    async def propose_for_request(self, command: metadata_pb2.MetadataCommand) -> metadata_pb2.MetadataResult:
        """Propose a command of a client request. Not the leader (any more): NotControllerError,
        so that the caller forwards the request (same request ids) to the new controller."""
        try:
            return await self._propose(command)
        except (NotLeaderError, QuorumClosedError):
            raise self.not_controller_error() from None

    def wake_work(self) -> None:
        """Run a work round soon instead of at the next interval."""
        self._wake.set()

    def look_at_broker(self, node_id: int) -> None:
        """Ask the next work round what this broker's state calls for (shut down, unfence)."""
        self._pending_brokers.add(node_id)
        self._wake.set()
