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
    freshet_consumer_group_lag_seconds{group,topic}  age of the oldest uncommitted record (max
                                          over partitions) of the groups coordinated here
    freshet_consumer_group_lag_records{group,topic}  high watermark - committed offset (sum)
    freshet_consumer_group_lag_alert{group,topic}    1 when above the group's lag.alert.seconds
    freshet_reassigning_partitions{started_by}  partitions being reassigned (balancer, user)
    freshet_decommissioning_broker_count  brokers marked decommissioning (this node's image)
    freshet_replication_throttled_bytes_total  bytes this leader sent through the replication throttle
    freshet_log_open_files                segment files and sealed-index mappings open now (storage/open_files.py)
    freshet_log_open_files_max            how many may be open at once (log.open.files.max)
    freshet_log_open_files_evicted_total  closed to make room (reopened on their next use)

The data plane's counters and histograms (server/metrics.py) are registered in the same registry.

The node provides the readers (`NodeView`); this module imports nothing of the node.

Classes: `NodeHttpServer` (one listener's lifecycle: bind, serve on a thread, stop), `_Listener`
(the socket server: TLS handshake per connection, and the state every request reads through
`handler.server`: the view, the registry, the guard), `_Handler` (a connection's requests:
routing, the console's login/logout flow, scraper authentication, forms, answers).

TLS: given an `ssl_context` (security.protocol SSL / SASL_SSL), every accepted connection is
wrapped in it and its handshake runs on the connection's own thread (bounded by
HANDSHAKE_TIMEOUT_S), so a slow or plaintext client never blocks the accept loop; the context
swaps in the current certificate per handshake (rotation without restart). `metrics_only` makes
the opt-in plaintext listener (http.metrics.plaintext.listen): /metrics, /healthz and /readyz,
404 for everything else (no console, no /status).


With security on, module `login` authenticates callers (console sessions, HTTP Basic, client
certificates) and the node's `Authorizer` decides what they see; /healthz and /readyz stay open
(Kubernetes probes; they reveal readiness only).

Imports: stdlib http.server, ssl, threading, json, prometheus_client, freshet.metadata (image, security),
freshet.server.security (authorizer, rate_limit), freshet.server.http (console, login, sessions).
Thread-safety: the server runs on its own threads; every reader it calls must be thread-safe
(they read immutable images and plain attributes).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import math
import secrets
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Sequence

from freshet.metadata.image import NO_LEADER, MetadataImage
from freshet.metadata.security import ANONYMOUS, CLUSTER_NAME, Operation, ResourceType
from freshet.server.http import console, console_pages
from freshet.server.http.console_pages import Chrome
from freshet.server.http.console_routes import ConsoleRoutes
from freshet.server.http.login import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    HttpGuard,
    cookies_of,
)
from freshet.server.http.sessions import ConsoleSessions
from freshet.server.security.authorizer import (
    Authorizer,
    Caller,
    SecuritySettings,
    audit,
    bind_caller,
    denial_message,
    unbind_caller,
)
from freshet.server.security.rate_limit import LoginRateLimiter
from freshet.server.security.tls import principal_from_peercert
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

#: A client gets this long to complete its TLS handshake (and to send each request after it).
HANDSHAKE_TIMEOUT_S = 10.0
METRICS_ONLY_PATHS = ("/metrics", "/healthz", "/readyz")

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
#: Bounds of a POSTed form (login: user, password, CSRF token).
FORM_BYTES_MAX = 8192
FORM_FIELDS_MAX = 16
#: How long a login form stays valid (its CSRF cookie's lifetime).
LOGIN_FORM_MAX_AGE_S = 600
#: With security on, every answer: never cached, never framed (clickjacking), no script at all.
SECURE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
)


def _cookie(name: str, value: str, max_age_s: int) -> str:
    """A Set-Cookie value: script cannot read it, only HTTPS carries it, no other site sends it."""
    return f"{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict"


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
    # The console's data layer (server/http/console_data/backend.py ConsoleBackend); None without the broker role.
    console_data: Callable[[], object | None] = lambda: None


def _balance_families(image: MetadataImage):
    """Self-balancing gauges from the image: reassignments by who started them, decommissioning brokers."""
    reassigning = GaugeMetricFamily(
        "freshet_reassigning_partitions", "partitions being reassigned, by who started it", labels=["started_by"]
    )
    moves = [p.is_balancer_move for t in image.topics_by_id.values() for p in t.partitions if p.is_reassigning]
    reassigning.add_metric(["balancer"], sum(moves))
    reassigning.add_metric(["user"], len(moves) - sum(moves))
    yield reassigning
    decommissioning = GaugeMetricFamily(
        "freshet_decommissioning_broker_count", "brokers marked decommissioning (this node's image)"
    )
    decommissioning.add_metric([], sum(1 for broker in image.brokers.values() if broker.is_decommissioning))
    yield decommissioning


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
        yield _gauge("freshet_active_controller_count", "1 on the active controller, 0 elsewhere", int(view.is_active_controller()))
        yield _gauge("freshet_active_broker_count", "unfenced registered brokers (this node's image)", len(image.brokers) - fenced)
        yield _gauge("freshet_fenced_broker_count", "fenced registered brokers (this node's image)", fenced)
        yield _gauge("freshet_offline_partitions_count", "partitions without a leader", offline)
        yield _gauge("freshet_under_replicated_partitions", "partitions whose ISR is smaller than the replica set", under_replicated)
        yield _gauge("freshet_metadata_offset", "offset of this node's metadata image", image.offset)
        yield _gauge("freshet_controller_epoch", "controller epoch in this node's image", image.controller_epoch)
        yield from _balance_families(image)
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
        yield _gauge("freshet_broker_partition_count", "partition replicas hosted by this broker", partitions)
        yield _gauge("freshet_broker_leader_count", "partitions led by this broker", leaders)
        is_fenced = view.is_broker_fenced()
        if is_fenced is not None:
            yield _gauge("freshet_broker_is_fenced", "1 while this broker is fenced", int(is_fenced))
        plane = view.data_plane()
        if plane is not None:
            yield from _data_plane_families(plane)
        groups = view.groups()
        if groups is not None:
            yield from _group_families(groups)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _data_plane_families(plane: dict):
    """The broker's data plane: under-replicated partitions it leads, purgatories, follower lag,
    the log directory, the replication throttle."""
    yield _gauge(
        "freshet_replica_manager_under_replicated_partitions",
        "partitions this broker leads whose ISR is smaller than the replica set",
        plane["under_replicated_partitions"],
    )
    purgatory = GaugeMetricFamily("freshet_purgatory_size", "requests waiting in a purgatory", labels=["type"])
    purgatory.add_metric(["produce"], plane["produce_purgatory"])
    purgatory.add_metric(["fetch"], plane["fetch_purgatory"])
    yield purgatory
    yield _gauge(
        "freshet_replica_fetcher_max_lag",
        "largest number of offsets a followed partition is behind its leader",
        plane["max_follower_lag"],
    )
    yield from _disk_gauges(plane["disk"])
    throttled = CounterMetricFamily(
        "freshet_replication_throttled_bytes", "bytes this leader sent to reassignment replicas through the throttle"
    )
    throttled.add_metric([], plane.get("replication_throttled_bytes", 0))
    yield throttled
    if "open_files" in plane:
        open_files = plane["open_files"]
        yield _gauge("freshet_log_open_files", "segment files and sealed-index mappings open now", open_files["open"])
        yield _gauge("freshet_log_open_files_max", "segment files and mappings allowed open (log.open.files.max)", open_files["max"])
        evicted = CounterMetricFamily("freshet_log_open_files_evicted", "segment files and mappings closed to make room")
        evicted.add_metric([], open_files["evicted"])
        yield evicted


def _group_families(groups: Sequence[dict]):
    """The groups this node coordinates: count, members, records lag, lag in time."""
    yield _gauge("freshet_group_count", "consumer groups this node coordinates", len(groups))
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
    yield from _lag_time_gauges(groups)


def _lag_time_gauges(groups: Sequence[dict]) -> list[GaugeMetricFamily]:
    """Consumer lag in time per (group, topic) coordinated here (README "Consumer lag in time"):
    the worst partition's age of the oldest uncommitted record, the records lag as last measured,
    and 1/0 for "above the group's lag.alert.seconds". Topics not measured yet are left out."""
    labels = ["group", "topic"]
    seconds = GaugeMetricFamily(
        "freshet_consumer_group_lag_seconds",
        "age of the oldest uncommitted record, max over the topic's partitions (0 when caught up)", labels=labels,
    )
    records = GaugeMetricFamily(
        "freshet_consumer_group_lag_records", "sum over the topic's partitions of high watermark - committed offset",
        labels=labels,
    )
    alert = GaugeMetricFamily(
        "freshet_consumer_group_lag_alert", "1 when the group's lag in time is above its lag.alert.seconds", labels=labels,
    )
    for group in groups:
        for topic in group.get("lag_topics", ()):
            key = [group["group"], topic["topic"]]
            if topic["lag_seconds"] is not None:
                seconds.add_metric(key, topic["lag_seconds"])
            if topic["lag_records"] is not None:
                records.add_metric(key, topic["lag_records"])
            alert.add_metric(key, int(topic["is_alerting"]))
    return [seconds, records, alert]


def _disk_gauges(disk) -> list[GaugeMetricFamily]:
    """The log directory's space (a DiskSpaceState, storage/disk_space.py), labelled by directory."""
    families = []
    for name, documentation, value in (
        ("freshet_log_dir_free_bytes", "free bytes of the log directory's filesystem (-1: not looked at yet)", disk.free_bytes),
        ("freshet_log_dir_total_bytes", "size of the log directory's filesystem", disk.total_bytes),
        ("freshet_log_dir_low_water_bytes", "produce is refused below this many free bytes", disk.low_water_bytes),
        ("freshet_log_dir_full", "1 while the log directory is full and produce is refused", int(disk.is_full)),
        ("freshet_log_dir_reserve_bytes", "bytes held by the disk reserve file (0 once released)", disk.reserve_bytes),
    ):
        family = GaugeMetricFamily(name, documentation, labels=["dir"])
        family.add_metric([disk.directory], value)
        families.append(family)
    return families


class _Listener(http.server.ThreadingHTTPServer):
    """The socket server: accepts, runs the TLS handshake on the connection's thread, and carries
    what every request's handler reads through `self.server` (the node's readers, the registry,
    the guard). Thread-safe (its attributes are set once, before serve_forever)."""

    daemon_threads = True

    def __init__(
        self,
        host: str,
        port: int,
        view: NodeView,
        registry: CollectorRegistry,
        guard: HttpGuard,
        ssl_context: ssl.SSLContext | None,
        metrics_only: bool,
    ) -> None:
        # TCPServer.__init__ creates the socket from address_family: set it before binding.
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.view = view
        self.registry = registry
        self.guard = guard
        self.ssl_context = ssl_context
        self.metrics_only = metrics_only
        self.session_cookie_max_age_s = int(guard.sessions.lifetime_s)
        self.routes = ConsoleRoutes(view)
        # Security off: no session to bind a CSRF token to; the forms carry this listener's own
        # token, which another site cannot read (same-origin policy), so it cannot forge a POST.
        self.form_token = secrets.token_urlsafe(32)
        super().__init__((host, port), _Handler)

    def finish_request(self, request, client_address) -> None:
        # On the connection's thread: the TLS handshake first (a failure only ends this one).
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls_socket = self.ssl_context.wrap_socket(request, server_side=True)
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


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection's requests: routing, the console's login/logout flow (CSRF, session
    cookies), the scrapers' authentication, forms and answers. Reaches the node's state through
    `self.server` (a `_Listener`). Not thread-safe: http.server makes one per connection, on that
    connection's thread."""

    server: _Listener

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        metrics_only = self.server.metrics_only
        view = self.server.view
        guard = self.server.guard
        registry = self.server.registry
        path = self.path.split("?", 1)[0]
        if metrics_only and path not in METRICS_ONLY_PATHS:
            self._send(404, b"not found: this plaintext listener serves /metrics /healthz /readyz only\n", TEXT)
        elif path == "/healthz":
            self._send(200, b"ok\n", TEXT)
        elif path == "/readyz":
            ready, reason = view.readiness()
            self._send(200 if ready else 503, (reason + "\n").encode(), TEXT)
        elif path in ("/metrics", "/status"):
            if guard.enabled and not self._scraper_is_allowed():
                return
            if path == "/metrics":
                self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(200, (json.dumps(view.status(), indent=2) + "\n").encode(), "application/json")
        elif path == "/":
            self._console()
        elif path == "/favicon.ico":
            self._send(204, b"", TEXT)           # browsers ask on every page: no icon, and no error
        elif self.server.routes.serves(path):
            self._console_page(path, self.path.partition("?")[2])
        elif path == "/login" and guard.enabled:
            self._login_page()
        else:
            self._send(404, b"not found: try / /healthz /readyz /metrics /status\n", TEXT)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        guard = self.server.guard
        path = self.path.split("?", 1)[0]
        if self.server.metrics_only or not (guard.enabled or path.startswith("/actions/")):
            # What http.server answers for a method without a handler, as before.
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        form = self._read_form()
        if form is None:
            return
        if path.startswith("/actions/"):
            self._console_action(path, form)
        elif path == "/login":
            self._login(form)
        elif path == "/logout":
            self._logout(form)
        else:
            self._send(404, b"not found: POST /login, /logout or /actions/...\n", TEXT)

    # -- console -------------------------------------------------------------------------

    def _visitor(self, may_redirect: bool = True) -> tuple[Caller, console.Viewer | None, list[tuple[str, str]]] | None:
        """Who is asking: the caller, the Viewer (None with security off) and the headers to add
        (a session cookie made from a client certificate). None once answered (sent to /login)."""
        guard = self.server.guard
        host = self.client_address[0]
        if not guard.enabled:
            return Caller(ANONYMOUS, host), None, []
        headers: list[tuple[str, str]] = []
        session = guard.session(self._cookies())
        if session is None:
            principal = principal_from_peercert(self._peer_certificate())
            if principal is None:
                if may_redirect:
                    self._redirect("/login")
                else:
                    self._send(403, b"refused: your session ended; log in again\n", TEXT)
                return None
            token, session = guard.certificate_login(principal, host)
            headers.append(("Set-Cookie", _cookie(SESSION_COOKIE, token, self.server.session_cookie_max_age_s)))
        caller = Caller(session.principal, host)
        viewer = console.Viewer(
            session.principal,
            session.csrf_token,
            allows=lambda operation, resource_type, name: guard.allows(caller, operation, resource_type, name),
            refused=lambda operation, resource_type, name: guard.refused_view(session, caller, operation, resource_type, name),
        )
        return caller, viewer, headers

    def _console(self) -> None:
        view = self.server.view
        visitor = self._visitor()
        if visitor is None:
            return
        caller, viewer, headers = visitor
        # Bound for the request, so anything deeper that asks current_caller() sees the viewer.
        token_of_caller = bind_caller(caller)
        try:
            chrome = Chrome(viewer, viewer.csrf_token if viewer is not None else self.server.form_token)
            page = console_pages.overview_page(chrome, view.image(), view.status(), view.groups())
        finally:
            unbind_caller(token_of_caller)
        self._send(200, page, HTML, headers)

    def _console_page(self, path: str, query: str) -> None:
        visitor = self._visitor()
        if visitor is None:
            return
        caller, viewer, headers = visitor
        chrome = Chrome(viewer, viewer.csrf_token if viewer is not None else self.server.form_token)
        token_of_caller = bind_caller(caller)
        try:
            answer = self.server.routes.get(path, query, chrome, caller)
        finally:
            unbind_caller(token_of_caller)
        self._send(answer.code, answer.body, HTML, headers)

    def _console_action(self, path: str, form: dict[str, str]) -> None:
        """POST /actions/NAME: the form's CSRF token must be the session's (security on) or this
        listener's (off); then the confirmation page or, confirmed, the action as the visitor."""
        visitor = self._visitor(may_redirect=False)
        if visitor is None:
            return
        caller, viewer, headers = visitor
        expected = viewer.csrf_token if viewer is not None else self.server.form_token
        if not secrets.compare_digest(expected.encode(), form.get("csrf", "").encode()):
            audit("csrf_rejected", principal=caller.principal, host=caller.host, path=path, via="http")
            self._send(403, b"refused: this form does not belong to your session; reload the page\n", TEXT)
            return
        answer = self.server.routes.post(path, form, Chrome(viewer, expected), caller)
        self._send(answer.code, answer.body, HTML, headers)

    def _login_page(self, message: str = "", code: int = 200, headers: Sequence[tuple[str, str]] = ()) -> None:
        guard = self.server.guard
        if code == 200 and guard.session(self._cookies()) is not None:
            self._redirect("/")
            return
        csrf = secrets.token_urlsafe(32)
        page = console_pages.login_page(csrf, message, principal_from_peercert(self._peer_certificate()))
        cookie = _cookie(LOGIN_COOKIE, csrf, LOGIN_FORM_MAX_AGE_S)
        self._send(code, page, HTML, [("Set-Cookie", cookie), *headers])

    def _login(self, form: dict[str, str]) -> None:
        guard, session_cookie_max_age_s = self.server.guard, self.server.session_cookie_max_age_s
        expected = self._cookies().get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(expected.encode(), form.get("csrf", "").encode()):
            audit("csrf_rejected", host=self.client_address[0], path="/login", via="http")
            self._login_page("the login form expired or came from another site: please log in again", 403)
            return
        outcome = guard.login(form.get("user", ""), form.get("password", ""), self.client_address[0])
        if outcome.ok:
            assert outcome.token is not None
            self._redirect("/", [
                ("Set-Cookie", _cookie(SESSION_COOKIE, outcome.token, session_cookie_max_age_s)),
                ("Set-Cookie", _cookie(LOGIN_COOKIE, "", 0)),
            ])
        elif outcome.retry_after_s > 0:
            self._login_page(outcome.message, 429, [("Retry-After", str(math.ceil(outcome.retry_after_s)))])
        else:
            self._login_page(outcome.message, 401)

    def _logout(self, form: dict[str, str]) -> None:
        guard = self.server.guard
        cookies = self._cookies()
        session = guard.session(cookies)
        if session is not None and not session.csrf_matches(form.get("csrf", "")):
            audit("csrf_rejected", principal=session.principal, host=self.client_address[0], path="/logout", via="http")
            self._send(403, b"refused: this logout form does not belong to your session; reload the page\n", TEXT)
            return
        guard.logout(cookies, self.client_address[0])
        self._redirect("/login", [("Set-Cookie", _cookie(SESSION_COOKIE, "", 0))])

    # -- scrapers ------------------------------------------------------------------------

    def _scraper_is_allowed(self) -> bool:
        """Authenticate and authorize a /metrics or /status request; answer it if refused."""
        guard = self.server.guard
        host = self.client_address[0]
        header = self.headers.get("Authorization")
        if header:
            principal, retry_after_s = guard.basic(header, host)
            if principal is None and retry_after_s > 0:
                retry = [("Retry-After", str(math.ceil(retry_after_s)))]
                self._send(429, b"too many failed logins from this address: try again later\n", TEXT, retry)
                return False
        else:
            session = guard.session(self._cookies())
            principal = session.principal if session is not None else principal_from_peercert(self._peer_certificate())
        if principal is None:
            challenge = [("WWW-Authenticate", 'Basic realm="freshet", charset="UTF-8"')]
            self._send(401, b"authentication required: HTTP Basic with a user's password\n", TEXT, challenge)
            return False
        caller = Caller(principal, host)
        if not guard.may_scrape(caller):
            line = denial_message(caller, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
            self._send(403, (line + "\n").encode(), TEXT)
            return False
        return True

    # -- plumbing ------------------------------------------------------------------------

    def _cookies(self) -> dict[str, str]:
        return cookies_of(self.headers.get("Cookie", ""))

    def _peer_certificate(self) -> dict | None:
        """The client's verified certificate on a TLS connection (mTLS), else None."""
        getpeercert = getattr(self.connection, "getpeercert", None)
        if getpeercert is None:
            return None
        try:
            return getpeercert() or None
        except (ValueError, OSError):      # not connected / handshake not done
            return None

    def _read_form(self) -> dict[str, str] | None:
        """The urlencoded form of a POST (first value of each field); None once refused."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse_body(411, b"send the form with a Content-Length\n")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse_body(411, b"send the form with a Content-Length\n")
            return None
        if not 0 <= length <= FORM_BYTES_MAX:
            self._refuse_body(413, f"a form is at most {FORM_BYTES_MAX} bytes\n".encode())
            return None
        body = self.rfile.read(length)
        if self.headers.get_content_type() != "application/x-www-form-urlencoded":
            self._send(415, b"send an application/x-www-form-urlencoded form\n", TEXT)
            return None
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX)
        except (UnicodeDecodeError, ValueError):
            self._send(400, b"the form is not valid UTF-8 urlencoded fields\n", TEXT)
            return None
        return {name: values[0] for name, values in fields.items()}

    def _refuse_body(self, code: int, body: bytes) -> None:
        # The request body was not read: the connection cannot carry another request.
        self.close_connection = True
        self._send(code, body, TEXT, [("Connection", "close")])

    def _redirect(self, location: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._send(303, b"", TEXT, [("Location", location), *headers])

    def _send(self, code: int, body: bytes, content_type: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        guard = self.server.guard
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if guard.enabled:
            for name, value in SECURE_HEADERS:
                self.send_header(name, value)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        logger.debug("http %s %s", self.address_string(), format % args)


class NodeHttpServer:
    """The HTTP listener on its own thread. Thread-safe (start/stop from one thread).

    With security on (`authorizer.enabled`) every page but /healthz and /readyz needs a principal:
    the console (`/`) a login session (form at /login, or a verified client certificate), /metrics
    and /status HTTP Basic, a session or a certificate plus Describe on the cluster (module
    `login` decides; this class does the HTTP). With security off nothing changes.
    """

    def __init__(
        self,
        host: str,
        port: int,
        view: NodeView,
        registry: CollectorRegistry | None = None,
        ssl_context: ssl.SSLContext | None = None,
        metrics_only: bool = False,
        authorizer: Authorizer | None = None,
        sessions: ConsoleSessions | None = None,
        limiter: LoginRateLimiter | None = None,
    ) -> None:
        """`registry`: where the node's metrics are; the NodeCollector is registered in it unless
        `metrics_only` (the plaintext metrics listener shares the main listener's registry; it
        serves /metrics, /healthz and /readyz without authentication: the documented opt-in)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        if not metrics_only:
            self.registry.register(NodeCollector(view))
        registry = self.registry
        if authorizer is None:
            authorizer = Authorizer(SecuritySettings(), view.image)     # security off: allow-all
        # The authentication counter exists only with security on: /metrics stays as it was without.
        self.guard = HttpGuard(authorizer, view.image, sessions, limiter, registry if authorizer.enabled else None)
        self.is_tls = ssl_context is not None
        self._server = _Listener(host, port, view, registry, self.guard, ssl_context, metrics_only)
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
