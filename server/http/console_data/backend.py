"""The node's parts the console's data modules use, and how they act as the viewer.

Owns `ConsoleBackend` (built by the node, `Node._console_backend`; the UI reaches it through
`NodeView.console_data()`), `node_transport` (an SDK `Transport` whose channels carry this node's
identity), `ActionRefused` (one error type for every refusal the console shows) and
`viewer_bound` (make a viewer the current caller of the HTTP thread).

Acting as the viewer (security on). A console viewer logged in with a password the node does not
keep, so the node cannot open gRPC sessions in the viewer's name on other nodes. Two paths, each
giving the viewer exactly the CLI's answer:
- handlers of THIS node (the Controller service: every topic, partition, config and reassignment
  change) run in-process on the node's event loop with the viewer bound as the current caller
  (`Caller` contextvar of server/security/authorizer.py): the handler's own authorization runs on
  the viewer, then the handler forwards to the active controller as it does for the CLI;
- reads and group changes that need other nodes (the group coordinators, partition leaders) go
  through the SDK (`GroupAdmin`, Fetch, ListOffsets: the CLI's code) with this node's identity,
  AFTER the rights the handler would check were checked for the viewer with the same `rules`
  helpers and the node's `Authorizer` (same ACL image, same refusal text and code, audited).
  Listings are filtered by the viewer's Describe rights, as ListGroups and Metadata filter them.

Imports: asyncio, grpc, freshet.client (transport), freshet.server (status, security).
Thread-safety: ConsoleBackend is immutable; `run_handler` blocks the calling (HTTP) thread up to
its timeout while the handler runs on the node's loop; the Transport is thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from freshet.client._transport import Transport
from freshet.client.errors import FreshetError
from freshet.metadata.image import MetadataImage
from freshet.server import status
from freshet.server.errors import ActionRefusedError
from freshet.server.http.console_data.history import History
from freshet.server.security.authorizer import Authorizer, Caller, bind_caller, unbind_caller
from freshet.server.security.node_identity import node_call_credentials
from freshet.server.security.tls import TlsMaterial
from freshet.v1 import common_pb2
from prometheus_client import CollectorRegistry

#: Bound of one console call that reaches other nodes (a slow node must not hang the page).
REQUEST_TIMEOUT_S = 5.0
#: Wait between retries of a retriable SDK error.
RETRY_BACKOFF_S = 0.1

T = TypeVar("T")


#: What every console function raises when refused: `code`, `code_name`, `message` (the CLI's).
ActionRefused = ActionRefusedError


def refused_by_detail(detail: common_pb2.ErrorDetail) -> ActionRefusedError:
    """The refusal an ErrorDetail describes."""
    return ActionRefusedError(detail.code, detail.message)


def refused_by_error(error: Exception, node_id: int = -1) -> ActionRefusedError:
    """The refusal a gRPC client would get for a handler's exception (server/status.py's table),
    or for an SDK error (its code; UNKNOWN_SERVER_ERROR when it has none)."""
    if isinstance(error, ActionRefusedError):
        return error
    if isinstance(error, FreshetError):
        code = error.code if error.code is not None else common_pb2.UNKNOWN_SERVER_ERROR
        return ActionRefusedError(code, error.message)
    _, detail = status.status_of(error, node_id)
    return ActionRefusedError(detail.code, detail.message)


def raise_for_detail(detail: common_pb2.ErrorDetail) -> None:
    """Raise ActionRefused for a per-item ErrorDetail that is not NONE."""
    if detail.code != common_pb2.NONE:
        raise refused_by_detail(detail)


def sdk_call(call: Callable[[], T], timeout_s: float) -> T:
    """`call()` (an SDK method), retried while it fails with a retriable error (a coordinator
    still loading, a leader moving) for up to `timeout_s`, as the CLI's user would retry.

    Raises:
        ActionRefused: the SDK error's code and message (the last one when retries ran out).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except FreshetError as error:
            if not error.retriable or time.monotonic() + RETRY_BACKOFF_S >= deadline:
                raise refused_by_error(error) from error
        time.sleep(RETRY_BACKOFF_S)


@contextlib.contextmanager
def viewer_bound(caller: Caller) -> Iterator[None]:
    """Make `caller` the current caller of this thread for the block (authorization checks)."""
    token = bind_caller(caller)
    try:
        yield
    finally:
        unbind_caller(token)


class _LocalContext:
    """The part of grpc.aio.ServicerContext the Controller handlers use, for an in-process call."""

    def __init__(self, timeout_s: float, host: str) -> None:
        self._deadline = asyncio.get_running_loop().time() + timeout_s
        self._host = host

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def invocation_metadata(self):
        return ()

    def peer(self) -> str:
        return f"ipv4:{self._host or '127.0.0.1'}:0"


def node_transport(address: str, tls: TlsMaterial | None, client_id: str = "freshet-console") -> Transport:
    """An SDK Transport bootstrapped at `address` (this node) whose channels present this node's
    identity (TLS with its certificate and the node proof; plaintext with security off)."""

    def channel(target: str, options: list[tuple[str, int]]) -> grpc.Channel:
        if tls is None:
            return grpc.insecure_channel(target, options=options)
        credentials = grpc.composite_channel_credentials(tls.grpc_channel_credentials(), node_call_credentials(tls))
        return grpc.secure_channel(target, credentials, options=options)

    return Transport([address], client_id=client_id, channel_factory=channel)


@dataclasses.dataclass(frozen=True)
class ConsoleBackend:
    """The node's parts the console data modules use. Thread-safe (immutable; its parts are).

    Attributes:
        node_id: this node.
        image: the node's current metadata image.
        authorizer: the node's one Authorizer (security off: allows everything).
        loop: the node's event loop (handlers run there).
        controller_service: the node's Controller servicer (server/controller/service.py).
        transport: SDK channels with this node's identity (see `node_transport`).
        registry: the node's metrics (history samples its counters).
        coordinated_groups: the groups this node coordinates with their lag (NodeView.groups).
        request_timeout_s: bound of one call that reaches other nodes.
        history: the throughput and lag sampler (history.py), started and stopped by the node.
    """

    node_id: int
    image: Callable[[], MetadataImage]
    authorizer: Authorizer
    loop: asyncio.AbstractEventLoop
    controller_service: object
    transport: Transport
    registry: CollectorRegistry | None = None
    coordinated_groups: Callable[[], list[dict] | None] = lambda: None
    request_timeout_s: float = REQUEST_TIMEOUT_S
    history: History | None = None

    def run_handler(self, caller: Caller, method: str, request, timeout_s: float | None = None):
        """Run the Controller handler `method` ("CreateTopics") in-process as `caller` and return
        its response: the CLI's path (authorization on the caller, then forwarding to the active
        controller). Blocks the calling thread (never the loop's) up to `timeout_s`.

        Raises:
            ActionRefused: the handler refused (the code and message a CLI gets).
        """
        timeout_s = self.request_timeout_s * 2 if timeout_s is None else timeout_s
        service = self.controller_service
        handle = getattr(type(service), method).__wrapped__       # under status.handler's wrapper

        async def call():
            # The task has its own copy of the context: the binding ends with it.
            bind_caller(caller)
            return await handle(service, request, _LocalContext(timeout_s, caller.host))

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(timeout_s + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ActionRefused(common_pb2.REQUEST_TIMED_OUT, f"{method} did not complete within {timeout_s:.0f} s") from None
        except Exception as error:                 # noqa: BLE001 - every handler error maps to a refusal
            raise refused_by_error(error, self.node_id) from error
