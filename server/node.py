"""The node process: start, serve, and stop one Freshet node (`freshet server start`).

Owns the node's lifecycle and wiring, on ONE asyncio event loop with a grpc.aio server hosting
every service the node's roles support:

Start (graceful): lock the data directory (and check it belongs to this node id), recover the
partition logs (LogManager.open; broker role), start the metadata voter (controller role), the
metadata publisher (the local voter, or a WatchMetadata stream for broker-only nodes), the
active-controller role, the gRPC server (Controller service everywhere; Broker and Replication on
brokers) and HTTP; then the broker registers with the active controller, catches up on metadata
(only then does the data plane act on partition roles), is unfenced and becomes ready (/readyz).

Stop (SIGTERM/SIGINT; a second signal is ignored): the broker asks the controller to move its
leaderships away (controlled shutdown, bounded by controlled.shutdown.timeout.ms, and given up
after a couple of seconds when no controller is reachable): the controller elects new leaders
from the ISR, which hold every acknowledged record, and removes this broker from every ISR; this
broker's acks=all requests still waiting answer NOT_LEADER once its metadata shows the move, so
producers retry on the new leaders. An active controller then hands its role over
(transfer_leadership) so the next one takes over without waiting for an election timeout; the
services stop; the data plane checkpoints high watermarks; the voter and the logs close cleanly.
The whole stop is bounded by shutdown.timeout.ms (a watchdog exits the process if anything
hangs). Exit code 0 on a clean stop, 1 when the node could not start or had to stop on a fatal
error.

TLS (security.protocol SSL or SASL_SSL): one `TlsMaterial` serves every port: the gRPC port
(add_secure_port with credentials that pick up rotated files), the Kafka listener, HTTP, the Raft
port (a TLS tunnel in front of pysyncobj, metadata/raft_tunnel.py) and every inter-node channel
(controller channels, replica fetchers: mTLS with the node's certificate). No port listens in
plaintext, except the opt-in http.metrics.plaintext.listen (/metrics /healthz /readyz only).
`NodeSecurity` (server/node_security.py) owns that material, the Authorizer, the Authenticator and
the HTTP listeners; this module hands them to the roles it wires.

Logs: one line per event on stderr: UTC time, level, node id, component, message.

Imports: everything below server (storage, metadata, wire types), grpc, asyncio.
Thread-safety: `Node` is not thread-safe (its loop); the HTTP thread calls only the read-only
view functions, which read immutable images and plain attributes. The Raft thread only hops onto
the loop with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import grpc
from freshet.metadata.errors import MetadataError, TransferDeniedError
from freshet.metadata.image import EMPTY_IMAGE, MetadataImage
from freshet.metadata.quorum import MetadataQuorum, QuorumConfig
from freshet.server import gc_policy, limits, malloc_tuning, node_status
from freshet.server.broker.data_plane import DataPlane
from freshet.server.broker.hosted_replicas import HostedReplicas
from freshet.server.broker.lifecycle import BrokerLifecycle
from freshet.server.broker.service import BrokerService
from freshet.server.cluster.channels import CHANNEL_OPTIONS, ControllerChannels
from freshet.server.cluster.publisher import MetadataPublisher, QuorumPublisher, WatchPublisher
from freshet.server.config import NodeConfig, format_node_addresses
from freshet.server.controller.active import ActiveController
from freshet.server.controller.service import ControllerService
from freshet.server.errors import NodeStartError
from freshet.server.groups.runtime import GroupRuntime
from freshet.server.http.console_data.backend import ConsoleBackend, node_transport
from freshet.server.http.console_data.history import History
from freshet.server.http.server import NodeView
from freshet.server.kafka.front_end import KafkaFrontEnd
from freshet.server.metrics import BrokerMetrics
from freshet.server.node_security import NodeSecurity
from freshet.server.replication.leader_sessions import ReplicationService
from freshet.server.security.grpc_auth import AuthenticationService
from freshet.storage.errors import StorageError
from freshet.storage.log_manager import LogManager
from freshet.storage.open_files import OPEN_FILES, RESERVED_DESCRIPTORS_MIN, descriptor_limit, exhaustion_hint
from freshet.v1 import controller_pb2_grpc, replication_pb2_grpc
from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)

NODE_LOCK_FILE_NAME = "node.lock"
NODE_IDENTITY_FILE_NAME = "node.json"
SERVER_OPTIONS = CHANNEL_OPTIONS + [("grpc.so_reuseport", 0)]
GRPC_STOP_GRACE_S = 1.0
TRANSFER_WAIT_S = 2.0
UNREACHABLE_CONTROLLER_GIVE_UP_S = 2.0

# Logger name prefix -> component shown in the log line.
_COMPONENTS = (
    ("freshet.server.controller.active", "controller"),
    ("freshet.server.controller.heartbeat_streams", "controller"),
    ("freshet.server.controller.service", "controller-rpc"),
    ("freshet.server.cluster.channels", "controller-client"),
    ("freshet.server.broker.lifecycle", "broker"),
    ("freshet.server.broker.service", "broker-rpc"),
    ("freshet.server.broker.hosted_replicas", "replicas"),
    ("freshet.server.broker.data_plane", "data-plane"),
    ("freshet.server.groups", "groups"),
    ("freshet.server.replication.leader_sessions", "replication"),
    ("freshet.server.replication.fetcher", "fetcher"),
    ("freshet.server.broker.producer_ids", "producer-ids"),
    ("freshet.server.cluster.publisher", "metadata"),
    ("freshet.server.http.server", "http"),
    ("freshet.server.node", "node"),
    ("freshet.server.security", "security"),
    ("freshet.audit", "audit"),
    ("freshet.metadata", "quorum"),
    ("freshet.storage", "storage"),
    ("pysyncobj", "raft"),
    ("grpc", "grpc"),
)


class _NodeLogFilter(logging.Filter):
    """Adds `node` and `component` to every record. Thread-safe (immutable)."""

    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node_id
        component = record.name.rsplit(".", 1)[-1]
        for prefix, name in _COMPONENTS:
            if record.name.startswith(prefix):
                component = name
                break
        record.component = component
        return True


def configure_logging(node_id: int, level: str, stream=None) -> None:
    """One line per event on stderr: `2026-11-21T10:00:00.123Z INFO node=1 controller: message`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s node=%(node)s %(component)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_NodeLogFilter(node_id))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


class Node:
    """One node (see the module docstring). Not thread-safe: its event loop owns it."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.loop: asyncio.AbstractEventLoop | None = None
        self.log_manager: LogManager | None = None
        self.quorum: MetadataQuorum | None = None
        self.publisher: MetadataPublisher | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = BrokerMetrics(self.registry)
        # TLS material, Authorizer, Authenticator, SecurityChanges and the HTTP listeners.
        self.security = NodeSecurity(config, self.registry, self._authorization_image)
        self.channels = ControllerChannels(config.controller_listeners, config.node_id, self.security.tls)
        self.controller: ActiveController | None = None
        self.controller_service: ControllerService | None = None
        self.lifecycle: BrokerLifecycle | None = None
        self.hosted_replicas: HostedReplicas | None = None
        self.data_plane: DataPlane | None = None
        self.groups: GroupRuntime | None = None
        self.kafka: KafkaFrontEnd | None = None
        self.history: History | None = None           # the console's sampler (brokers), also answering ConsoleSeries
        self.console: ConsoleBackend | None = None     # the console's data layer (broker role)
        self.grpc_server: grpc.aio.Server | None = None
        self.is_started = False
        self.is_stopping = False
        self.fatal: str | None = None
        self._stop_requested = asyncio.Event()
        self._lock_fd: int | None = None
        self._watch_task: asyncio.Task | None = None

    # -- start -----------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Begin a stop (callers on the loop: signal handlers, fatal errors). A stop requested
        while the node starts takes effect once it has started."""
        if not self._stop_requested.is_set():
            logger.info("stopping: %s", reason)
            self._stop_requested.set()

    def _fatal(self, message: str) -> None:
        if os.strerror(errno.EMFILE) in message:
            message = f"{message} ({exhaustion_hint()})"
        if self.fatal is None:
            self.fatal = message
        self.request_stop(f"fatal: {message}")

    async def start(self) -> None:
        """Start every part of the node. Raises NodeStartError (after undoing what started)."""
        self.loop = asyncio.get_running_loop()
        config = self.config
        try:
            await self._start()
        except BaseException:
            await self._close_all()
            raise
        self.is_started = True
        logger.info(
            "node %d started (%s): roles %s, gRPC %s (advertised %s), HTTP %s%s",
            config.node_id,
            config.security_protocol,
            ",".join(sorted(config.roles)),
            config.listen,
            config.advertised,
            config.http_listen,
            f", raft {config.raft_listen}" if config.raft_listen else "",
        )

    async def _start(self) -> None:
        config = self.config
        loop = self.loop
        assert loop is not None
        self._lock_fd = _lock_data_dir(self.config)
        _claim_node_identity(self.config)
        if config.is_controller and config.cluster_secret_source == "derived":
            logger.warning(
                "no cluster secret given: using one derived from the controller quorum string; it is NOT secret "
                "(fine on loopback only; set FRESHET_CLUSTER_SECRET or --cluster-secret-file)"
            )
        if config.is_broker:
            await self._open_logs()
        if config.is_controller:
            await self._start_voter()
        else:
            self.publisher = WatchPublisher(
                self.channels,
                config.node_id,
                self._controller_hint,
                lambda: 0 if self.lifecycle is None else self.lifecycle.controller_epoch,
            )
        await self.publisher.start()
        if self.controller is not None:
            self.controller.start()
        await self._start_grpc(self._grpc_server())
        self.console = self._console_backend()
        self.security.start_http(self._view())
        if config.is_broker:
            assert self.lifecycle is not None and self.hosted_replicas is not None and self.data_plane is not None
            await self.lifecycle.start()
            await self.data_plane.start()
            assert self.groups is not None
            await self.groups.start()
            await self.hosted_replicas.start()
            if self.kafka is not None:
                await self.kafka.start()
            if self.console is not None and self.console.history is not None:
                self.console.history.start()
        self._watch_task = loop.create_task(self._watch_quorum(), name="quorum-watch")

    async def _open_logs(self) -> None:
        """Open (and recover) the partition logs of a broker."""
        config = self.config
        assert self.loop is not None
        started = time.monotonic()
        configure_open_files(config.log_open_files_max)
        try:
            self.log_manager = await self.loop.run_in_executor(None, lambda: LogManager.open(config.logs_dir, open_threads=limits.LOG_OPEN_THREADS))
        except StorageError as error:
            raise NodeStartError(f"cannot open the partition logs in {config.logs_dir}: {error}") from error
        logger.info(
            "recovered %d partition logs in %.2f s (%d offline)",
            len(self.log_manager.all()),
            time.monotonic() - started,
            len(self.log_manager.offline_partitions),
        )

    async def _start_voter(self) -> None:
        """Start the metadata voter, the publisher over it and the (not yet active) controller role."""
        config = self.config
        loop = self.loop
        assert loop is not None
        assert config.raft_listen is not None
        assert config.cluster_secret
        quorum_config = QuorumConfig(
            node_id=config.node_id,
            voters={node_id: str(address) for node_id, address in config.controller_quorum.items()},
            data_dir=config.metadata_dir,
            password=config.cluster_secret,
            bind_address=str(config.raft_listen),
            fsync=config.metadata_fsync,
            tls=self.security.raft_tls(),
        )
        try:
            self.quorum = await loop.run_in_executor(None, MetadataQuorum, quorum_config)
        except MetadataError as error:
            raise NodeStartError(f"cannot start the metadata voter: {error}") from error
        logger.info(
            "metadata voter %d of %s on %s (image at offset %d)",
            config.node_id,
            format_node_addresses(config.controller_quorum),
            config.raft_listen,
            self.quorum.image.offset,
        )
        self.publisher = QuorumPublisher(self.quorum, loop)
        self.controller = ActiveController(config, self.quorum, loop)
        self.publisher.add_listener(self.controller.on_image)

    def _grpc_server(self) -> grpc.aio.Server:
        """The gRPC server with the Controller service and, on a broker, the broker's parts and services."""
        config = self.config
        security = self.security
        self.controller_service = security.authenticated(ControllerService(
            config, self.publisher, self.channels, self.controller, self.quorum, self._controller_hint, security.authorizer,
            security_changes=security.security_changes,
        ))
        server = grpc.aio.server(options=SERVER_OPTIONS)
        controller_pb2_grpc.add_ControllerServicer_to_server(self.controller_service, server)
        AuthenticationService(config.node_id, security.authenticator, config.security_protocol).register(server)
        if config.is_broker:
            assert self.log_manager is not None
            self.history = History(self.metrics, self._coordinated_groups)
            self.lifecycle = BrokerLifecycle(config, self.publisher, self.channels, self._controller_hint, self._fatal)
            self.hosted_replicas = HostedReplicas(config.node_id, self.log_manager, self.publisher, self._may_delete_logs)
            self.data_plane = DataPlane(
                config,
                self.log_manager,
                self.publisher,
                self.hosted_replicas,
                self.channels,
                self._controller_hint,
                lambda: self.lifecycle.broker_epoch if self.lifecycle is not None else -1,
                self._may_delete_logs,
                self.metrics,
                controller_contact=self.lifecycle.controller_contact,
            )
            self.lifecycle.disk_state = self.data_plane.disk.state
            security.authenticated(BrokerService(
                config, self.publisher, self.channels, self._controller_hint, self.data_plane, security.authorizer
            )).register(server)
            replication_pb2_grpc.add_ReplicationServicer_to_server(
                security.authenticated(ReplicationService(self.data_plane, security.authorizer, self.history)), server
            )
            self.groups = GroupRuntime(
                config, self.publisher, self.data_plane, self.channels, self._controller_hint, security.authorizer
            )
            security.authenticated(self.groups.service)
            self.groups.register(server)
            if config.kafka_listen is not None:
                self.kafka = KafkaFrontEnd(
                    config, self.publisher, self.data_plane, self.channels, self._controller_hint, self.groups, security.tls,
                    security.authorizer,
                    security_changes=security.security_changes,
                    authenticator=security.authenticator,
                )
        return server

    async def _start_grpc(self, server: grpc.aio.Server) -> None:
        self.security.add_grpc_port(server)
        self.grpc_server = server
        await server.start()

    def _authorization_image(self) -> MetadataImage:
        """The node's current metadata image (the security front-ends read it per request)."""
        return self.publisher.image if self.publisher is not None else EMPTY_IMAGE

    def _controller_hint(self) -> int | None:
        """The controller to try first: the Raft leader (controller nodes), else the one whose
        heartbeat replies are newest, else the one in this node's metadata."""
        if self.quorum is not None and self.quorum.leader_id is not None:
            return self.quorum.leader_id
        image_controller = self.publisher.image if self.publisher is not None else None
        lifecycle = self.lifecycle
        if lifecycle is not None and lifecycle.controller_id >= 0 and (
            image_controller is None or lifecycle.controller_epoch >= image_controller.controller_epoch
        ):
            return lifecycle.controller_id
        if image_controller is not None and image_controller.controller_id >= 0:
            return image_controller.controller_id
        return None

    def _may_delete_logs(self, image) -> bool:
        lifecycle = self.lifecycle
        return lifecycle is not None and lifecycle.is_registered and image.offset >= lifecycle.broker_epoch

    async def _watch_quorum(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.quorum is not None and self.quorum.failure is not None:
                self._fatal(f"the metadata voter stopped: {self.quorum.failure}")
                return

    # -- run and stop ----------------------------------------------------------------------------

    async def wait_for_stop(self) -> None:
        await self._stop_requested.wait()

    async def stop(self) -> None:
        """Controlled shutdown (see the module docstring). Idempotent."""
        if self.is_stopping:
            return
        self.is_stopping = True
        config = self.config
        started = time.monotonic()
        if self.lifecycle is not None and self.lifecycle.is_registered and self.fatal is None:
            is_done = await self._controlled_shutdown(config.controlled_shutdown_timeout_ms / 1000)
            if is_done:
                logger.info("controlled shutdown done in %.2f s: this broker leads nothing", time.monotonic() - started)
            else:
                logger.warning("controlled shutdown not confirmed by a controller; stopping anyway")
        if self.lifecycle is not None:
            await self.lifecycle.close()
        if self.quorum is not None and self.quorum.is_leader and len(config.controller_quorum) > 1:
            await self._hand_over_controller()
        await self._close_all()
        logger.info("node %d stopped in %.2f s", self.node_id, time.monotonic() - started)

    async def _controlled_shutdown(self, timeout_s: float) -> bool:
        lifecycle = self.lifecycle
        assert lifecycle is not None
        deadline = time.monotonic() + timeout_s
        shutdown = asyncio.ensure_future(lifecycle.shutdown(timeout_s))
        unreachable_since: float | None = None
        while not shutdown.done():
            await asyncio.wait([shutdown], timeout=0.2)
            if lifecycle.connected_controller is None:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since >= UNREACHABLE_CONTROLLER_GIVE_UP_S:
                    logger.warning("no controller reachable for %.1f s during controlled shutdown", UNREACHABLE_CONTROLLER_GIVE_UP_S)
                    shutdown.cancel()
                    return False
            else:
                unreachable_since = None
            if time.monotonic() >= deadline:
                break
        return shutdown.done() and not shutdown.cancelled() and shutdown.result()

    async def _hand_over_controller(self) -> None:
        quorum = self.quorum
        assert quorum is not None and self.loop is not None
        try:
            await self.loop.run_in_executor(None, quorum.transfer_leadership)
        except (TransferDeniedError, MetadataError, TimeoutError) as error:
            logger.warning("could not hand the controller role over: %s", error)
            return
        deadline = time.monotonic() + TRANSFER_WAIT_S
        while quorum.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        logger.info(
            "handed the controller role over%s",
            "" if quorum.is_leader else f" (leader now {quorum.leader_id})",
        )

    async def _close_all(self) -> None:
        loop = self.loop
        assert loop is not None
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self.console is not None and self.console.history is not None:
            # First: its samples read the group coordinator, which closes next.
            await loop.run_in_executor(None, self.console.history.stop)
        if self.lifecycle is not None:
            await self.lifecycle.close()
        if self.kafka is not None:
            await self.kafka.close()
        if self.groups is not None:
            await self.groups.close()
        if self.data_plane is not None:
            await self.data_plane.close()
        if self.hosted_replicas is not None:
            await self.hosted_replicas.close()
        if self.controller is not None:
            await self.controller.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(GRPC_STOP_GRACE_S)
        if self.publisher is not None:
            await self.publisher.close()
        await self.security.close_http(loop)
        if self.console is not None:
            await loop.run_in_executor(None, self.console.transport.close)
        if self.quorum is not None:
            await loop.run_in_executor(None, self.quorum.close)
        if self.log_manager is not None:
            await loop.run_in_executor(None, self.log_manager.close)
        await self.channels.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- views for HTTP (thread-safe reads) ------------------------------------------------------

    def _console_backend(self) -> ConsoleBackend | None:
        """The console's data layer (server/http/console_data): a broker's, since groups and
        messages are read through this node's Broker and Group services."""
        config = self.config
        if not config.is_broker:
            return None
        assert self.loop is not None and self.controller_service is not None
        return ConsoleBackend(
            node_id=config.node_id,
            image=self._authorization_image,
            authorizer=self.security.authorizer,
            loop=self.loop,
            controller_service=self.controller_service,
            transport=node_transport(str(config.advertised), self.security.tls),
            registry=self.registry,
            coordinated_groups=self._coordinated_groups,
            history=self.history,
        )

    def is_active_controller(self) -> bool:
        return self.controller is not None and self.controller.is_active

    def _coordinated_groups(self) -> list[dict] | None:
        """The groups this node coordinates (console rows with lag); None without a coordinator."""
        # Called on the HTTP thread: the coordinator's state lives on the event loop.
        runtime, loop = self.groups, self.loop
        if runtime is None or loop is None or loop.is_closed():
            return None

        async def snapshot() -> list[dict]:
            return runtime.console_groups()

        try:
            return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(2.0)
        except (concurrent.futures.TimeoutError, RuntimeError):
            return None

    def _view(self) -> NodeView:
        def elections() -> tuple[int, int]:
            metrics = self.controller.metrics if self.controller is not None else None
            return (0, 0) if metrics is None else (metrics.clean_elections, metrics.unclean_elections)

        def hosted() -> tuple[int, int]:
            manager = self.hosted_replicas
            return (0, 0) if manager is None else (len(manager.replicas), manager.leader_count)

        def is_fenced() -> bool | None:
            return None if self.lifecycle is None else self.lifecycle.is_fenced

        def data_plane() -> dict | None:
            plane = self.data_plane
            if plane is None:
                return None
            return {
                "under_replicated_partitions": plane.under_replicated_partitions(),
                "produce_purgatory": plane.produce_waiting(),
                "fetch_purgatory": plane.fetch_waiting,
                "max_follower_lag": plane.fetcher.max_lag(),
                "disk": plane.disk.state(),
                "replication_throttled_bytes": plane.replication_throttle.throttled_bytes,
                "open_files": {"open": OPEN_FILES.open_count, "max": OPEN_FILES.budget, "evicted": OPEN_FILES.evictions},
            }

        return NodeView(
            image=lambda: self.publisher.image,
            readiness=lambda: node_status.readiness(self),
            status=lambda: node_status.status(self),
            is_active_controller=self.is_active_controller,
            elections=elections,
            fenced_by_this_controller=lambda: 0 if self.controller is None else self.controller.metrics.fenced_brokers,
            hosted=hosted,
            is_broker_fenced=is_fenced,
            data_plane=data_plane,
            groups=self._coordinated_groups,
            console_data=lambda: self.console,
        )


async def serve(config: NodeConfig) -> int:
    """Run a node until SIGTERM/SIGINT (or a fatal error); the process exit code."""
    try:
        node = Node(config)
    except NodeStartError as error:
        logger.error("cannot start: %s", error)
        return 1
    loop = asyncio.get_running_loop()
    signals_seen = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signals_seen:
            logger.info("%s received; the shutdown already in progress continues", name)
            return
        signals_seen.append(name)
        node.request_stop(f"{name} received: controlled shutdown")

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    pauses = gc_policy.GcPauses(node.registry)
    try:
        await node.start()
    except NodeStartError as error:
        pauses.close()
        logger.error("cannot start: %s", error)
        return 1
    frozen = gc_policy.freeze_start_up_heap()
    logger.info("garbage collector: %d start-up objects frozen (FRESHET_GC_FREEZE=off to keep them collected)", frozen)
    await node.wait_for_stop()
    watchdog = threading.Timer(config.shutdown_timeout_ms / 1000, _shutdown_overrun, args=(config.shutdown_timeout_ms,))
    watchdog.daemon = True
    watchdog.start()
    try:
        await node.stop()
    finally:
        watchdog.cancel()
        pauses.close()
    return 1 if node.fatal is not None else 0


def configure_open_files(budget: int) -> None:
    """Size the process's cache of open segment files (log.open.files.max; 0: from the limit).

    Raises:
        NodeStartError: the budget leaves too few descriptors for sockets and the rest.
    """
    limit = descriptor_limit()
    if budget > limit - RESERVED_DESCRIPTORS_MIN:
        raise NodeStartError(
            f"log.open.files.max {budget} leaves fewer than {RESERVED_DESCRIPTORS_MIN} of this process's "
            f"{limit} file descriptors (ulimit -n) for sockets, the metadata journal and indexes: "
            f"lower it (0 derives it from the limit) or raise the limit"
        )
    OPEN_FILES.configure(budget)


def _lock_data_dir(config: NodeConfig) -> int:
    """Create the data directory if needed and lock it for this process; the lock's descriptor.

    Raises:
        NodeStartError: the directory cannot be used, or another node process holds it.
    """
    try:
        os.makedirs(config.data_dir, exist_ok=True)
        fd = os.open(os.path.join(config.data_dir, NODE_LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise NodeStartError(f"cannot use data directory {config.data_dir}: {error.strerror}") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise NodeStartError(f"data directory {config.data_dir} is in use by another node process") from None
    return fd


def _claim_node_identity(config: NodeConfig) -> None:
    """Check that the (locked) data directory belongs to this node id, or claim a new one for it.

    Raises:
        NodeStartError: the identity file is unreadable or names another node.
    """
    identity_path = os.path.join(config.data_dir, NODE_IDENTITY_FILE_NAME)
    if os.path.exists(identity_path):
        try:
            with open(identity_path, encoding="utf-8") as file:
                identity = json.load(file)
        except (OSError, ValueError) as error:
            raise NodeStartError(f"{identity_path} is unreadable: {error}") from error
        if identity.get("node_id") != config.node_id:
            raise NodeStartError(
                f"data directory {config.data_dir} belongs to node {identity.get('node_id')}, not node {config.node_id}"
            )
    else:
        with open(identity_path + ".tmp", "w", encoding="utf-8") as file:
            json.dump({"node_id": config.node_id, "version": 1}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(identity_path + ".tmp", identity_path)


def _shutdown_overrun(timeout_ms: int) -> None:
    logger.error("shutdown did not finish within %d ms (shutdown.timeout.ms): exiting now", timeout_ms)
    logging.shutdown()
    os._exit(1)


#: Environment variable choosing the node's event loop: "uvloop" (the default) or "asyncio".
EVENT_LOOP_ENV = "FRESHET_EVENT_LOOP"


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a node runs on: uvloop's (libuv) unless `name` is "asyncio" (None: the
    standard library's). Every produce acknowledgement crosses the loop about a dozen times (gRPC
    completions, task wake-ups), and on this project's 2-core machine a grpc.aio ping-pong costs
    about 200 us of CPU per round trip on each side on uvloop against 330-370 us on asyncio's
    selector loop (README, Performance: Latency). Falls back to asyncio, with a warning, where
    uvloop is not installed.

    Raises:
        NodeStartError: `name` is neither.
    """
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise NodeStartError(f"{EVENT_LOOP_ENV}={name!r} is not an event loop: use uvloop (the default) or asyncio")
    try:
        import uvloop
    except ImportError:
        logger.warning("uvloop is not installed: running on asyncio's own event loop")
        return None
    return uvloop.new_event_loop


#: Environment variable: the node process's GIL switch interval in milliseconds (CPython's own
#: default is 5).
GIL_SWITCH_INTERVAL_ENV = "FRESHET_GIL_SWITCH_INTERVAL_MS"
GIL_SWITCH_INTERVAL_MS_DEFAULT = "1"


def gil_switch_interval_s(value: str) -> float:
    """The switch interval (seconds, for sys.setswitchinterval) that `value` (milliseconds) names.

    A thread that gave the GIL up for a system call waits up to the switch interval to get it
    back while another thread computes. The metadata quorum's thread makes a few system calls per
    tick (poll, send, receive, fdatasync) beside a busy event loop, so under load each cost it up
    to 5 ms. Then a tick took 0.2-0.7 s against an election timeout of 0.25-0.5 s. A 20,000-partition
    create (README, Scale) saw 16 broker session expiries in 4 runs at 5 ms and 2 at 1 ms.
    Creation was never slower, and RF 3 publish, consume and sync latency were no slower.

    Raises:
        NodeStartError: `value` is not a number of milliseconds in (0, 1000].
    """
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = float("nan")
    if not 0 < milliseconds <= 1000:
        raise NodeStartError(f"{GIL_SWITCH_INTERVAL_ENV}={value!r} is not a number of milliseconds in (0, 1000]")
    return milliseconds / 1000


def run(config: NodeConfig) -> int:
    """`freshet server start`: configure logging, run the node in the foreground on the event loop
    `FRESHET_EVENT_LOOP` names (`event_loop_factory`) with the GIL switch interval
    `FRESHET_GIL_SWITCH_INTERVAL_MS` names (`gil_switch_interval_s`), return the exit code. glibc's
    malloc keeps freed buffers first (malloc_tuning.py), before any thread allocates."""
    configure_logging(config.node_id, config.log_level)
    malloc_tuning.keep_freed_memory()
    try:
        loop_factory = event_loop_factory(os.environ.get(EVENT_LOOP_ENV, "uvloop"))
        switch_interval_s = gil_switch_interval_s(os.environ.get(GIL_SWITCH_INTERVAL_ENV, GIL_SWITCH_INTERVAL_MS_DEFAULT))
    except NodeStartError as error:
        logger.error("cannot start: %s", error)
        return 1
    sys.setswitchinterval(switch_interval_s)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(config))
