"""The `freshet.v1.Authentication` gRPC service: a SASL exchange that yields a session token.

Owns the servicer of proto/freshet/v1/authentication.proto and the exchanges in progress between
its rounds: exchange id (16 random bytes, hex) -> the SASL server, the client's host and a
deadline (EXCHANGE_TIMEOUT_S), at most EXCHANGES_MAX of them (the oldest go first). An exchange
continues only from the host that began it. Credential checks (PBKDF2 for PLAIN) run on the
default executor, off the event loop. Successes, failures and the per-host rate limit go through
the node's `Authenticator`; the token comes from its `SessionTable`.

This servicer has no `authenticator` attribute on purpose: `status.handler` then binds no caller
and refuses nothing, so an unauthenticated client can reach it (it is how one authenticates).

Imports: asyncio, standard library, freshet.server (status, errors, security), wire types.
Thread-safety: not thread-safe; handlers run on the node's event loop.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import time

from freshet.server import status
from freshet.server.errors import AuthenticationError, IllegalSaslStateError, SecurityDisabledError
from freshet.server.security.authentication import LISTENER_GRPC, Authenticator, grpc_peer_host
from freshet.server.security.sasl import SaslServer
from freshet.v1 import authentication_pb2, authentication_pb2_grpc

EXCHANGE_TIMEOUT_S = 30.0
EXCHANGES_MAX = 1024


@dataclasses.dataclass(slots=True)
class _Exchange:
    server: SaslServer
    host: str
    deadline_s: float


class AuthenticationService(authentication_pb2_grpc.AuthenticationServicer):
    """freshet.v1.Authentication on one node. Not thread-safe (loop)."""

    def __init__(self, node_id: int, authenticator: Authenticator | None, protocol: str = "PLAINTEXT") -> None:
        self.node_id = node_id
        self._authenticator = authenticator
        self._protocol = protocol
        self._exchanges: collections.OrderedDict[str, _Exchange] = collections.OrderedDict()

    def register(self, server) -> None:
        authentication_pb2_grpc.add_AuthenticationServicer_to_server(self, server)

    @status.handler()
    async def Authenticate(self, request, context):  # noqa: N802 - gRPC method name
        authenticator = self._authenticator
        if authenticator is None or not authenticator.is_sasl:
            raise SecurityDisabledError(
                f"node {self.node_id} does not authenticate clients (security.protocol={self._protocol})"
            )
        host = grpc_peer_host(context.peer())
        now = time.monotonic()
        self._expire(now)
        mechanism = request.mechanism
        if request.exchange_id:
            exchange = self._exchanges.pop(request.exchange_id, None)
            if exchange is None or exchange.host != host:
                raise IllegalSaslStateError("unknown or expired authentication exchange: start again")
            if exchange.server.mechanism != mechanism:
                raise IllegalSaslStateError("the mechanism changed during the exchange")
        else:
            authenticator.refuse_if_blocked(LISTENER_GRPC, mechanism, host)
            exchange = _Exchange(authenticator.new_exchange(mechanism), host, now + EXCHANGE_TIMEOUT_S)
        server = exchange.server
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(None, server.evaluate, bytes(request.message))
        except (AuthenticationError, IllegalSaslStateError) as error:
            authenticator.failed(LISTENER_GRPC, mechanism, host, getattr(server, "claimed_user", None), _reason(error))
            raise
        if not server.is_complete:
            exchange_id = os.urandom(16).hex()
            self._exchanges[exchange_id] = exchange
            while len(self._exchanges) > EXCHANGES_MAX:
                self._exchanges.popitem(last=False)
            return authentication_pb2.AuthenticateResponse(exchange_id=exchange_id, message=answer)
        assert server.user is not None
        caller = authenticator.succeeded(LISTENER_GRPC, mechanism, host, server.user)
        return authentication_pb2.AuthenticateResponse(
            message=answer,
            is_complete=True,
            token=authenticator.issue_session(caller.principal),
            session_lifetime_ms=authenticator.sessions.lifetime_ms,
            principal=caller.principal,
        )

    def _expire(self, now: float) -> None:
        while self._exchanges:
            exchange_id, exchange = next(iter(self._exchanges.items()))
            if exchange.deadline_s > now:
                return
            del self._exchanges[exchange_id]


def _reason(error: Exception) -> str:
    """The audit reason of a failed exchange (the error's message never holds a secret)."""
    return "invalid credentials" if isinstance(error, AuthenticationError) else str(error)
