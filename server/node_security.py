"""The node's security wiring: what every front-end of one node shares to decide who calls and
what they may do, and the HTTP listeners that serve through it.

Owns, for one node:

- the `TlsMaterial` (security.protocol SSL / SASL_SSL): one certificate, key and CA for every
  port: the gRPC port (`add_grpc_port`), HTTP, the Raft tunnel (`raft_tls`, a client certificate
  required whatever ssl.client.auth says), and, through the node, the Kafka listener and every
  inter-node channel;
- the one `Authorizer` (may they), shared by the gRPC services, the Kafka listener and HTTP;
- the one `Authenticator` (who is calling; None with PLAINTEXT, so gRPC handlers and Kafka
  connections skip it), handed to each gRPC servicer by `authenticated`;
- the `SecurityChanges` audit and metric of user and ACL changes;
- the HTTP listeners: the main one (TLS with security on, the console behind a login) and the
  opt-in plaintext metrics listener (http.metrics.plaintext.listen: /metrics /healthz /readyz).

`Node` (server/node.py) builds one at construction and starts its listeners; the roles it wires
(controller, broker, groups, Kafka) take their parts from here.

Imports: freshet.metadata (image, Raft tunnel contexts), freshet.server.security, freshet.server.http
(the listener), server.config/errors; never server.node (the node imports this module).
Thread-safety: built and started on the node's event loop; after that its parts are what they
say (TlsMaterial, Authorizer and Authenticator are thread-safe; the HTTP listeners run on their own
threads and are stopped from the loop's executor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from freshet.metadata.image import MetadataImage
from freshet.metadata.raft_tunnel import RaftTls
from freshet.server.config import NodeConfig
from freshet.server.errors import NodeStartError
from freshet.server.http.server import NodeHttpServer, NodeView
from freshet.server.security.authentication import Authenticator
from freshet.server.security.authorizer import Authorizer, SecuritySettings
from freshet.server.security.changes import SecurityChanges
from freshet.server.security.node_identity import NodeProofVerifier
from freshet.server.security.tls import CLIENT_AUTH_REQUIRED, TlsMaterial
from prometheus_client import CollectorRegistry


class NodeSecurity:
    """One node's TLS material, Authorizer, Authenticator, SecurityChanges and HTTP listeners.
    Not thread-safe: the node's event loop builds, starts and closes it (see the module docstring
    for what its parts allow)."""

    def __init__(self, config: NodeConfig, registry: CollectorRegistry, image: Callable[[], MetadataImage]) -> None:
        """`registry`: the node's metrics (the authorization and authentication counters join it);
        `image`: the node's current metadata image (users and ACLs, read per request).

        Raises:
            NodeStartError: the TLS files cannot be loaded.
        """
        self.config = config
        self.tls: TlsMaterial | None = None
        if config.tls is not None:
            try:
                self.tls = TlsMaterial(config.tls)
            except ValueError as error:             # the files changed since the config was checked
                raise NodeStartError(f"cannot load the TLS files: {error}") from error
        self.registry = registry
        # The node's one Authorizer, shared by every front-end (gRPC services, Kafka listener, HTTP).
        self.authorizer = Authorizer(security_settings(config), image, registry)
        self.security_changes = SecurityChanges(registry)   # audit + metric of user and ACL changes
        # PLAINTEXT: no Authenticator at all, so gRPC handlers and Kafka connections skip it.
        self.authenticator = (
            Authenticator(
                config.security_protocol, config.sasl_enabled_mechanisms, image, registry,
                node_proofs=NodeProofVerifier(self.tls) if self.tls is not None else None,
            )
            if config.is_secure else None
        )
        self.http: NodeHttpServer | None = None
        self.plaintext_metrics: NodeHttpServer | None = None

    def raft_tls(self) -> RaftTls | None:
        """The Raft tunnel's contexts: only nodes talk on the Raft port, so a client certificate
        signed by the CA is required there whatever ssl.client.auth says."""
        material = self.tls
        if material is None:
            return None
        return RaftTls(
            server_context=lambda: material.server_context(client_auth=CLIENT_AUTH_REQUIRED),
            client_context=material.client_context,
        )

    def authenticated(self, servicer):
        """Hand the node's `authenticator` (who is calling: status.handler binds the caller from it)
        to a gRPC servicer; servicers take the `authorizer` (may they) in their constructors."""
        servicer.authenticator = self.authenticator
        return servicer

    def add_grpc_port(self, server: grpc.aio.Server) -> None:
        """Listen on `listen`: with TLS, credentials that pick up rotated files.

        Raises:
            NodeStartError: the port cannot be bound.
        """
        try:
            if self.tls is not None:
                server.add_secure_port(str(self.config.listen), self.tls.grpc_server_credentials())
            else:
                server.add_insecure_port(str(self.config.listen))
        except RuntimeError as error:
            raise NodeStartError(f"cannot listen on {self.config.listen} (gRPC): is another process using it?") from error

    def start_http(self, view: NodeView) -> None:
        """Start the HTTP listener and, if configured, the plaintext metrics listener.

        Raises:
            NodeStartError: a port cannot be bound (a listener already started is left to
                `close_http`).
        """
        config = self.config
        try:
            self.http = NodeHttpServer(
                config.http_listen.host,
                config.http_listen.port,
                view,
                self.registry,
                ssl_context=self.tls.server_context() if self.tls is not None else None,
                authorizer=self.authorizer,
                # One failed-login budget per client address across every port of the node.
                limiter=self.authenticator.limiter if self.authenticator is not None else None,
            )
        except OSError as error:
            raise NodeStartError(f"cannot listen on {config.http_listen} (HTTP): {error.strerror}") from error
        self.http.start()
        plaintext = config.http_metrics_plaintext_listen
        if plaintext is not None:
            try:
                self.plaintext_metrics = NodeHttpServer(plaintext.host, plaintext.port, view, self.registry, metrics_only=True)
            except OSError as error:
                raise NodeStartError(f"cannot listen on {plaintext} (plaintext metrics): {error.strerror}") from error
            self.plaintext_metrics.start()

    async def close_http(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop the HTTP listeners that started (each stop blocks, so it runs on the executor)."""
        if self.http is not None:
            await loop.run_in_executor(None, self.http.stop)
        if self.plaintext_metrics is not None:
            await loop.run_in_executor(None, self.plaintext_metrics.stop)


def security_settings(config: NodeConfig) -> SecuritySettings:
    """The node's authorization switches: enforced when security.protocol is SSL or SASL_SSL."""
    return SecuritySettings(
        enabled=config.is_secure,
        super_users=config.super_users,
        allow_if_no_acl=config.allow_everyone_if_no_acl_found,
    )
