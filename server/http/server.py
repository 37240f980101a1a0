"""HTTP on every node: / (web console), /healthz, /readyz, /metrics (Prometheus), /status (JSON).

Owns the node's HTTP listener (stdlib ThreadingHTTPServer on its own thread: the endpoints are a
few reads of immutable state, so a thread costs less than an HTTP stack on the event loop) and the
Prometheus collector that reads the node's state at scrape time (no gauges to keep in sync):

    freshet_active_controller_count       1 on the active controller, 0 elsewhere (ActiveControllerCount)
    freshet_active_broker_count           unfenced brokers in this node's image
    freshet_fenced_broker_count           fenced brokers in this node's image
    freshet_offline_partitions_count      partitions without a leader (OfflinePartitionsCount)
    freshet_under_replicated_partitions   partitions whose ISR is smaller than the replica set
    freshet_metadata_offset               offset of this node's metadata image
    freshet_leader_elections_total{type}  elections this node made as active controller (clean, unclean)
    freshet_broker_fenced_total           brokers this node fenced as active controller (session expiry)
    freshet_controller_epoch              the controller epoch in this node's image
    freshet_broker_partition_count        replicas hosted here (PartitionCount)
    freshet_broker_leader_count           replicas led here (LeaderCount)
    freshet_broker_is_fenced              1 while this broker is fenced
    freshet_replica_manager_under_replicated_partitions  partitions led here whose ISR is short
                                          (Kafka's per-broker UnderReplicatedPartitions)
    freshet_purgatory_size{type}          produce: acks=all partitions waiting; fetch: long polls waiting
    freshet_replica_fetcher_max_lag       largest (leader LEO - own LEO) over followed partitions

The data plane's counters and histograms (server/metrics.py) are registered in the same registry.

The node provides the readers (`NodeView`); this module imports nothing of the node.

TLS: given an `ssl_context` (security.protocol SSL / SASL_SSL), every accepted connection is
wrapped in it and its handshake runs on the connection's own thread (bounded by
HANDSHAKE_TIMEOUT_S), so a slow or plaintext client never blocks the accept loop; the context
swaps in the current certificate per handshake (rotation without restart). `metrics_only` makes
the opt-in plaintext listener (http.metrics.plaintext.listen): /metrics, /healthz and /readyz,
404 for everything else (no console, no /status).

Imports: stdlib http.server, ssl, threading, json, prometheus_client, freshet.metadata.image, freshet.server.http.console.
Thread-safety: the server runs on its own threads; every reader it calls must be thread-safe
(they read immutable images and plain attributes).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable

from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.server.http import console
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

#: A client gets this long to complete its TLS handshake (and to send each request after it).
HANDSHAKE_TIMEOUT_S = 10.0
METRICS_ONLY_PATHS = ("/metrics", "/healthz", "/readyz")


@dataclasses.dataclass(frozen=True)
class NodeView:
    """Thread-safe readers of the node's state, for HTTP. Thread-safe (immutable)."""

    image: Callable[[], MetadataImage]
    readiness: Callable[[], tuple[bool, str]]
    status: Callable[[], dict]
    is_active_controller: Callable[[], bool]
    elections: Callable[[], tuple[int, int]]          # (clean, unclean)
    fenced_by_this_controller: Callable[[], int]
    hosted: Callable[[], tuple[int, int]]             # (partitions, leaders); (0, 0) without the broker role
    is_broker_fenced: Callable[[], bool | None]       # None without the broker role
    data_plane: Callable[[], dict | None] = lambda: None   # gauges of the data plane; None without the broker role
    groups: Callable[[], list[dict] | None] = lambda: None  # groups coordinated here (console); None: no coordinator


class NodeCollector:
    """A Prometheus collector reading a NodeView at scrape time. Thread-safe (reads only)."""

    def __init__(self, view: NodeView) -> None:
        self._view = view

    def collect(self):
        view = self._view
        image = view.image()
        fenced = sum(1 for broker in image.brokers.values() if broker.is_fenced)
        offline = under_replicated = 0
        for topic in image.topics_by_id.values():
            for partition in topic.partitions:
                offline += partition.leader == NO_LEADER
                under_replicated += len(partition.isr) < len(partition.replicas)

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation)
            family.add_metric([], value)
            return family

        yield gauge("freshet_active_controller_count", "1 on the active controller, 0 elsewhere", int(view.is_active_controller()))
        yield gauge("freshet_active_broker_count", "unfenced registered brokers (this node's image)", len(image.brokers) - fenced)
        yield gauge("freshet_fenced_broker_count", "fenced registered brokers (this node's image)", fenced)
        yield gauge("freshet_offline_partitions_count", "partitions without a leader", offline)
        yield gauge("freshet_under_replicated_partitions", "partitions whose ISR is smaller than the replica set", under_replicated)
        yield gauge("freshet_metadata_offset", "offset of this node's metadata image", image.offset)
        yield gauge("freshet_controller_epoch", "controller epoch in this node's image", image.controller_epoch)
        clean, unclean = view.elections()
        elections = CounterMetricFamily(
            "freshet_leader_elections", "leader elections made by this node as active controller", labels=["type"]
        )
        elections.add_metric(["clean"], clean)
        elections.add_metric(["unclean"], unclean)
        yield elections
        fenced_family = CounterMetricFamily("freshet_broker_fenced", "brokers fenced by this node as active controller")
        fenced_family.add_metric([], view.fenced_by_this_controller())
        yield fenced_family
        partitions, leaders = view.hosted()
        yield gauge("freshet_broker_partition_count", "partition replicas hosted by this broker", partitions)
        yield gauge("freshet_broker_leader_count", "partitions led by this broker", leaders)
        is_fenced = view.is_broker_fenced()
        if is_fenced is not None:
            yield gauge("freshet_broker_is_fenced", "1 while this broker is fenced", int(is_fenced))
        plane = view.data_plane()
        if plane is not None:
            yield gauge(
                "freshet_replica_manager_under_replicated_partitions",
                "partitions this broker leads whose ISR is smaller than the replica set",
                plane["under_replicated_partitions"],
            )
            purgatory = GaugeMetricFamily("freshet_purgatory_size", "requests waiting in a purgatory", labels=["type"])
            purgatory.add_metric(["produce"], plane["produce_purgatory"])
            purgatory.add_metric(["fetch"], plane["fetch_purgatory"])
            yield purgatory
            yield gauge(
                "freshet_replica_fetcher_max_lag",
                "largest number of offsets a followed partition is behind its leader",
                plane["max_follower_lag"],
            )
        groups = view.groups()
        if groups is not None:
            yield gauge("freshet_group_count", "consumer groups this node coordinates", len(groups))
            members = GaugeMetricFamily("freshet_group_members", "members of a group coordinated here", labels=["group"])
            lag = GaugeMetricFamily(
                "freshet_group_lag", "sum over a group's committed partitions of high watermark - committed offset",
                labels=["group"],
            )
            for group in groups:
                members.add_metric([group["group"]], group["members"])
                if group["lag"] is not None:
                    lag.add_metric([group["group"]], group["lag"])
            yield members
            yield lag


class NodeHttpServer:
    """The HTTP listener on its own thread. Thread-safe (start/stop from one thread)."""

    def __init__(
        self,
        host: str,
        port: int,
        view: NodeView,
        registry: CollectorRegistry | None = None,
        ssl_context: ssl.SSLContext | None = None,
        metrics_only: bool = False,
    ) -> None:
        """`registry`: where the node's metrics are; the NodeCollector is registered in it unless
        `metrics_only` (the plaintext metrics listener shares the main listener's registry)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        if not metrics_only:
            self.registry.register(NodeCollector(view))
        registry = self.registry

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if metrics_only and path not in METRICS_ONLY_PATHS:
                    self._send(404, b"not found: this plaintext listener serves /metrics /healthz /readyz only\n", "text/plain; charset=utf-8")
                elif path == "/healthz":
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    ready, reason = view.readiness()
                    self._send(200 if ready else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
                elif path == "/metrics":
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/":
                    page = console.render(view.image(), view.status(), view.groups())
                    self._send(200, page, "text/html; charset=utf-8")
                elif path == "/status":
                    self._send(200, (json.dumps(view.status(), indent=2) + "\n").encode(), "application/json")
                else:
                    self._send(404, b"not found: try / /healthz /readyz /metrics /status\n", "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
                logger.debug("http %s %s", self.address_string(), format % args)

        class server_class(http.server.ThreadingHTTPServer):  # noqa: N801 - a local class
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def finish_request(self, request, client_address) -> None:
                # On the connection's thread: the TLS handshake first (a failure only ends this one).
                if ssl_context is None:
                    super().finish_request(request, client_address)
                    return
                request.settimeout(HANDSHAKE_TIMEOUT_S)
                try:
                    tls_socket = ssl_context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    logger.debug("http %s: TLS handshake failed: %s", client_address[0], error)
                    return                          # wrap_socket closed it; shutdown_request copes
                try:
                    tls_socket.settimeout(None)
                    super().finish_request(tls_socket, client_address)
                finally:
                    tls_socket.close()

            def shutdown_request(self, request) -> None:
                try:
                    super().shutdown_request(request)
                except OSError:
                    pass

        self.is_tls = ssl_context is not None
        self._server = server_class((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
