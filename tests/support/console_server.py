"""A node's real HTTP server (server/http/server.py) in-process, on loopback, with security on or
off, serving the image of tests/support/secure_images.py. Not a test module.

TLS is not part of this server yet (another branch wraps the port); the tests speak plain HTTP to
127.0.0.1, which browsers treat as a secure context, so Secure cookies still work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from freshet.server.http.server import NodeHttpServer, NodeView
from freshet.server.http.sessions import ConsoleSessions
from freshet.server.security.authorizer import Authorizer
from freshet.server.security.rate_limit import LoginRateLimiter
from prometheus_client import CollectorRegistry

from tests.support.secure_images import GROUPS, SETTINGS, secure_image

STATUS = {"node_id": 1, "roles": ["broker", "controller"], "ready": True, "readiness": "ready",
          "controller_id": 1, "quorum": {"leader": 1, "term": 5}}


def node_view(image, backend=None) -> NodeView:
    return NodeView(
        image=lambda: image,
        readiness=lambda: (True, "ready"),
        status=lambda: dict(STATUS),
        is_active_controller=lambda: True,
        elections=lambda: (2, 0),
        fenced_by_this_controller=lambda: 0,
        hosted=lambda: (3, 3),
        is_broker_fenced=lambda: False,
        groups=lambda: [dict(group) for group in GROUPS],
        console_data=lambda: backend,
    )


@contextlib.contextmanager
def console_server(
    secure: bool = True, limiter: LoginRateLimiter | None = None, sessions: ConsoleSessions | None = None,
    backend=None,
) -> Iterator[NodeHttpServer]:
    """A started server on 127.0.0.1 (port in `.port`), stopped on exit."""
    image = secure_image()
    registry = CollectorRegistry(auto_describe=False)
    authorizer = Authorizer(SETTINGS, lambda: image, registry) if secure else None
    server = NodeHttpServer("127.0.0.1", 0, node_view(image, backend), registry, authorizer=authorizer,
                            sessions=sessions, limiter=limiter)
    server.start()
    try:
        yield server
    finally:
        server.stop()
