"""Kafka's SaslHandshake (key 17, v0-1) and SaslAuthenticate (key 36, v0-2), and the per-connection
authentication state the listener consults.

Owns `ConnectionAuth`, one per connection of a node with security on, created by the listener
when the connection opens (`Authenticator` in server/security/authentication.py decides who may
log in and counts, audits and rate limits the attempts):

- SSL: the caller is the TLS client certificate's `User:<CN>`, else `User:ANONYMOUS`, at once.
- SASL_SSL: until a SASL exchange completes, only ApiVersions, SaslHandshake and SaslAuthenticate
  are served; any other request closes the connection (Kafka does the same). SaslHandshake picks
  the mechanism (UNSUPPORTED_SASL_MECHANISM with the enabled list otherwise); the client's
  messages then arrive in SaslAuthenticate requests (handshake v1) or, after a v0 handshake, as
  raw size-prefixed frames answered the same way (Kafka's legacy framing; `raw_token`). A failed
  exchange answers SASL_AUTHENTICATION_FAILED with Kafka's message, and the connection closes once
  that answer is written. A completed one sets `caller`; the listener binds it in the connection's
  reader task, so every later request of the connection (and the tasks they spawn) sees it.
  Re-authentication (KIP-368) is not offered: the session lifetime answered is 0.

The handlers find the connection through a context variable the listener sets in the
connection's reader task (`enter_connection`), since `handle(request)` runs synchronously there.

Imports: asyncio, contextvars, kio (through codec), freshet.metadata.security,
freshet.server (errors, kafka, security). Thread-safety: not thread-safe (loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import struct

from freshet.metadata.security import ANONYMOUS
from freshet.server.errors import AuthenticationError, IllegalSaslStateError, UnsupportedSaslMechanismError
from freshet.server.kafka import codec
from freshet.server.security.authentication import LISTENER_KAFKA, Authenticator
from freshet.server.security.authorizer import Caller
from freshet.server.security.sasl import SaslServer
from freshet.server.security.tls import principal_from_ssl
from freshet.v1 import common_pb2

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
#: What a connection that has not authenticated may ask (Kafka's SaslServerAuthenticator).
PRE_AUTHENTICATION_KEYS = frozenset({codec.API_VERSIONS_KEY, SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY})
_SIZE = struct.Struct(">i")

_CONNECTION: contextvars.ContextVar[ConnectionAuth | None] = contextvars.ContextVar("freshet_kafka_connection", default=None)


def enter_connection(auth: ConnectionAuth) -> None:
    """Make `auth` the state the SASL handlers see in this (the connection's reader) task."""
    _CONNECTION.set(auth)


def current_connection() -> ConnectionAuth | None:
    return _CONNECTION.get()


class ConnectionAuth:
    """One Kafka connection's authentication (module docstring). Not thread-safe (loop)."""

    def __init__(self, authenticator: Authenticator, host: str, ssl_object=None) -> None:
        self.authenticator = authenticator
        self.host = host
        self.exchange: SaslServer | None = None
        self.is_raw = False                 # v0 handshake: raw SASL frames follow
        self.is_busy = False                # a message is being evaluated
        self.is_failed = False              # close once the answer is written
        self.caller: Caller | None = None
        if not authenticator.is_sasl:
            principal = principal_from_ssl(ssl_object)
            self.caller = Caller(principal or ANONYMOUS, host, is_from_certificate=principal is not None)

    def may_serve(self, api_key: int) -> bool:
        """Whether a request of `api_key` may be served now (False: close the connection)."""
        return not self.is_failed and (self.caller is not None or api_key in PRE_AUTHENTICATION_KEYS)

    @property
    def expects_raw_token(self) -> bool:
        return self.is_raw and self.exchange is not None and self.caller is None and not self.is_failed

    async def evaluate(self, message: bytes) -> tuple[bytes, int, str | None]:
        """Run the exchange one step: (answer, Kafka error code, error message)."""
        exchange = self.exchange
        authenticator = self.authenticator
        if exchange is None or exchange.is_complete or self.is_busy:
            self.is_failed = True
            return b"", E.ILLEGAL_SASL_STATE, "SaslAuthenticate is not expected now (SaslHandshake first, one message at a time)"
        mechanism = exchange.mechanism
        self.is_busy = True
        try:
            try:
                authenticator.refuse_if_blocked(LISTENER_KAFKA, mechanism, self.host)
                answer = await asyncio.get_running_loop().run_in_executor(None, exchange.evaluate, message)
            except AuthenticationError as error:
                self._fail(mechanism, exchange, "invalid credentials" if "too many" not in str(error) else None)
                return b"", E.SASL_AUTHENTICATION_FAILED, str(error)
            except IllegalSaslStateError as error:
                self._fail(mechanism, exchange, str(error))
                return b"", E.ILLEGAL_SASL_STATE, str(error)
        finally:
            self.is_busy = False
        if exchange.is_complete:
            assert exchange.user is not None
            self.caller = authenticator.succeeded(LISTENER_KAFKA, mechanism, self.host, exchange.user)
        return answer, E.NONE, None

    def _fail(self, mechanism: str, exchange: SaslServer, reason: str | None) -> None:
        """Record a failure (rate limit, audit, metric; `reason` None: already counted as rate limited)."""
        self.is_failed = True
        if reason is not None:
            self.authenticator.failed(LISTENER_KAFKA, mechanism, self.host, getattr(exchange, "claimed_user", None) or None, reason)

    async def raw_token(self, frame: bytes) -> bytes | None:
        """The answer frame to a raw SASL token (after a v0 handshake); None closes the connection."""
        answer, error_code, _ = await self.evaluate(frame)
        if error_code != E.NONE:
            return None
        return _SIZE.pack(len(answer)) + answer


class SaslHandshakeHandler:
    """SaslHandshake (key 17): pick the connection's mechanism."""

    api_key = SASL_HANDSHAKE_KEY
    name = "SaslHandshake"
    versions = (0, 1)

    def __init__(self, mechanisms: tuple[str, ...]) -> None:
        self._mechanisms = mechanisms

    def handle(self, request: codec.Request):
        schema = codec.response_schema(self.api_key, request.api_version)
        auth = current_connection()
        mechanisms = tuple(self._mechanisms)
        if auth is None or not auth.authenticator.is_sasl:
            return codec.build(schema, error_code=E.ILLEGAL_SASL_STATE, mechanisms=())
        if auth.caller is not None or auth.exchange is not None:
            auth.is_failed = True
            return codec.build(schema, error_code=E.ILLEGAL_SASL_STATE, mechanisms=mechanisms)
        try:
            auth.exchange = auth.authenticator.new_exchange(request.body.mechanism)
        except (UnsupportedSaslMechanismError, ValueError):
            logger.info("Kafka connection from %s asked for SASL mechanism %r, not enabled", auth.host, request.body.mechanism)
            return codec.build(schema, error_code=E.UNSUPPORTED_SASL_MECHANISM, mechanisms=mechanisms)
        auth.is_raw = request.api_version == 0
        return codec.build(schema, error_code=E.NONE, mechanisms=mechanisms)


class SaslAuthenticateHandler:
    """SaslAuthenticate (key 36): one message of the connection's SASL exchange."""

    api_key = SASL_AUTHENTICATE_KEY
    name = "SaslAuthenticate"
    versions = (0, 2)

    def handle(self, request: codec.Request):
        schema = codec.response_schema(self.api_key, request.api_version)
        auth = current_connection()
        if auth is None or not auth.authenticator.is_sasl or auth.is_raw:
            if auth is not None:
                auth.is_failed = True
            return codec.build(schema, error_code=E.ILLEGAL_SASL_STATE, error_message="SASL is not expected on this connection",
                               auth_bytes=b"", session_lifetime=0)
        return self._answer(auth, schema, bytes(request.body.auth_bytes))

    async def _answer(self, auth: ConnectionAuth, schema, message: bytes):
        answer, error_code, error_message = await auth.evaluate(message)
        return codec.build(schema, error_code=error_code, error_message=error_message, auth_bytes=answer, session_lifetime=0)
