"""The SDK's security options, the gRPC channels they make, and its side of authentication.

Owns

- `SecurityConfig`: kafka-python's option names, validated once (a bad option or an unreadable
  file is a ValueError naming it, in one line; the files are read once):

      security_protocol    "PLAINTEXT" (default) | "SSL" | "SASL_SSL" (TLS on every connection)
      ssl_cafile           PEM bundle that signed the nodes' certificates (None: the system's roots)
      ssl_certfile         PEM client certificate, for mTLS (the principal is User:<its CN>)
      ssl_keyfile          its private key (both or neither)
      sasl_mechanism       "SCRAM-SHA-512" (default), "SCRAM-SHA-256", "PLAIN"
      sasl_plain_username, sasl_plain_password   (the password is never in repr or messages)

  SASL_PLAINTEXT is refused: a password never crosses the network in clear.
  `channel_factory()` is what the Transport makes its channels with (TLS credentials when TLS).
- `ScramClient`: the client side of SCRAM (RFC 5802/7677) with hashlib.pbkdf2_hmac and hmac:
  client-first "n,,n=USER,r=NONCE", client-final with the proof, and the check of the node's
  ServerSignature (a node that cannot prove it holds the credential is not trusted). Salted
  passwords are cached per (mechanism, salt, iterations), so authenticating with every broker of a
  cluster costs one PBKDF2. The node's iteration count must be within [4096, 65536].
- `authenticated_channel`: wraps a broker's channel in an interceptor that sends
  `authorization: Bearer TOKEN` with every call. The token comes from the node's Authenticate RPC
  (proto/freshet/v1/authentication.proto), obtained on the channel's first call, renewed before it
  expires (at 80% of its lifetime), and dropped when a call is refused UNAUTHENTICATED (the node
  restarted and forgot it): a blocking unary call is then retried once with a fresh token; other
  calls (futures, streams) fail once, as retriable (UNAVAILABLE / BROKER_NOT_AVAILABLE, like a
  dropped connection), and the next call authenticates again. A rolling restart of the nodes is
  then invisible to producers and consumers, as in Kafka. Tokens are per broker: each channel
  authenticates with the node it talks to.
  PLAIN on gRPC sends "\\0user\\0password" to the node over the channel (TLS with SASL_SSL), which
  checks it against the user's SCRAM credential, as Kafka's SASL/PLAIN does.
- Bad credentials surface as the failed call's error: UNAUTHENTICATED with an ErrorDetail of code
  SASL_AUTHENTICATION_FAILED naming the user, which `translate_rpc_error` turns into
  `SaslAuthenticationFailedError` (not retriable) like any other call error.

Imports: standard library (base64, hashlib, hmac, os, threading), grpc, protobuf's Status,
`freshet.v1`. Forbidden: freshet.metadata, server (import-linter): SCRAM is written here again.
Thread-safety: `SecurityConfig` and `ScramClient`'s functions are immutable/pure apart from the
locked salted-password cache; a channel's token source is thread-safe (one lock; one
authentication at a time per channel).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping

import grpc
from freshet.v1 import authentication_pb2, authentication_pb2_grpc, common_pb2
from google.rpc import status_pb2

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
SCRAM_ITERATIONS_MIN = 4096
SCRAM_ITERATIONS_MAX = 65536
AUTHENTICATE_TIMEOUT_S = 10.0
RENEW_AT_LIFETIME_FRACTION = 0.8
_DETAILS_KEY = "grpc-status-details-bin"
_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def _read_pem(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ValueError(f"{option}: cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{option}: {path} is not a PEM file")
    return data


@dataclasses.dataclass(frozen=True)
class SecurityConfig:
    """The security options of a client (kafka-python's names; module docstring). Validated when
    built. Thread-safe (immutable)."""

    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = dataclasses.field(default=None, repr=False)
    _pems: tuple = dataclasses.field(default=(None, None, None), repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> SecurityConfig:
        """From a client constructor's extra keyword options.

        Raises:
            TypeError: an option that is not a security option (as for any unknown keyword).
            ValueError: a bad value or an unreadable file.
        """
        known = {field.name for field in dataclasses.fields(cls) if not field.name.startswith("_")}
        for name in options:
            if name not in known:
                raise TypeError(f"unexpected keyword argument {name!r}")
        return cls(**options)  # type: ignore[arg-type]

    def validate(self) -> None:
        """Raises ValueError naming the bad option (never showing the password)."""
        protocol = self.security_protocol
        if not isinstance(protocol, str):
            raise ValueError(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, not {protocol!r}")
        protocol = protocol.upper()
        object.__setattr__(self, "security_protocol", protocol)
        if protocol == "SASL_PLAINTEXT":
            raise ValueError(
                "security_protocol 'SASL_PLAINTEXT' is not supported: passwords are only sent over TLS (use 'SASL_SSL')"
            )
        if protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, not {protocol!r}")
        if self.sasl_mechanism is not None and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, not {self.sasl_mechanism!r}")
        if protocol == "SASL_SSL":
            if not self.sasl_plain_username:
                raise ValueError("security_protocol 'SASL_SSL' needs sasl_plain_username")
            if self.sasl_plain_password is None:
                raise ValueError("security_protocol 'SASL_SSL' needs sasl_plain_password")
        elif self.sasl_plain_username is not None or self.sasl_plain_password is not None:
            raise ValueError(f"sasl_plain_username and sasl_plain_password need security_protocol 'SASL_SSL', not {protocol!r}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both (mTLS) or neither")
        if not self.is_tls:
            for name in ("ssl_cafile", "ssl_certfile"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} needs security_protocol='SSL' or 'SASL_SSL', not {protocol!r}")
            return
        pems = tuple(
            _read_pem(name, path) if path is not None else None
            for name, path in (
                ("ssl_cafile", self.ssl_cafile),
                ("ssl_certfile", self.ssl_certfile),
                ("ssl_keyfile", self.ssl_keyfile),
            )
        )
        object.__setattr__(self, "_pems", pems)

    @property
    def is_tls(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    @property
    def is_sasl(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    @property
    def mechanism(self) -> str:
        """The SASL mechanism used (SCRAM-SHA-512 unless one was given)."""
        return self.sasl_mechanism or "SCRAM-SHA-512"

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials of every channel (None: plaintext)."""
        if not self.is_tls:
            return None
        ca, certificate, key = self._pems
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=certificate)

    def channel_factory(self) -> Callable[[str, list[tuple[str, int]]], grpc.Channel]:
        """What the Transport makes its channels with (address, gRPC options) -> channel."""
        credentials = self.channel_credentials()
        if credentials is None:

            def plaintext_channel(address: str, options: list[tuple[str, int]]) -> grpc.Channel:
                return grpc.insecure_channel(address, options=options)

            return plaintext_channel

        def secure_channel(address: str, options: list[tuple[str, int]]) -> grpc.Channel:
            return grpc.secure_channel(address, credentials, options=options)

        return secure_channel


# -------------------------------------------------------------------------------------------------
# SCRAM, client side.

_salted_cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
_salted_lock = threading.Lock()
_SALTED_CACHE_MAX = 64


def _salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    key = (hash_name, hashlib.sha256(password.encode()).digest(), salt, iterations)
    with _salted_lock:
        found = _salted_cache.get(key)
    if found is not None:
        return found
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)
    with _salted_lock:
        _salted_cache[key] = salted
        while len(_salted_cache) > _SALTED_CACHE_MAX:
            _salted_cache.popitem(last=False)
    return salted


class ScramError(Exception):
    """The node's SCRAM message is malformed or its signature is wrong (it may not be the node)."""


def _escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """One SCRAM exchange, client side (module docstring). Not thread-safe."""

    def __init__(self, mechanism: str, user: str, password: str, nonce: str | None = None) -> None:
        assert mechanism in _HASHES, mechanism
        self.mechanism = mechanism
        self._hash = _HASHES[mechanism]
        self.user = user
        self._password = password
        self._nonce = nonce or base64.b64encode(os.urandom(24)).decode("ascii")
        self._bare = f"n={_escape(user)},r={self._nonce}"
        self._server_signature: bytes | None = None

    def __repr__(self) -> str:
        return f"ScramClient({self.mechanism}, user={self.user!r})"

    def first_message(self) -> bytes:
        return f"n,,{self._bare}".encode()

    def final_message(self, server_first: bytes) -> bytes:
        """The client-final message answering `server_first`. Raises ScramError."""
        try:
            text = server_first.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("the server-first message is not UTF-8") from None
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt_text, iterations_text = fields.get("r", ""), fields.get("s", ""), fields.get("i", "")
        if not nonce.startswith(self._nonce) or len(nonce) <= len(self._nonce):
            raise ScramError("the server's nonce does not extend the client's")
        if not iterations_text.isdigit() or not SCRAM_ITERATIONS_MIN <= int(iterations_text) <= SCRAM_ITERATIONS_MAX:
            raise ScramError(f"the server's iteration count {iterations_text!r} is outside {SCRAM_ITERATIONS_MIN}..{SCRAM_ITERATIONS_MAX}")
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except binascii.Error:
            raise ScramError("the server's salt is not base64") from None
        salted = _salted_password(self._hash, self._password, salt, int(iterations_text))
        client_key = hmac.new(salted, b"Client Key", self._hash).digest()
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self._hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", self._hash).digest()
        self._server_signature = hmac.new(server_key, auth_message, self._hash).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode()

    def verify_final(self, server_final: bytes) -> None:
        """Check the node's ServerSignature. Raises ScramError."""
        text = server_final.decode("utf-8", "replace")
        if text.startswith("e="):
            raise ScramError(f"the server refused: {text[2:]}")
        if not text.startswith("v=") or self._server_signature is None:
            raise ScramError("malformed server-final message")
        try:
            signature = base64.b64decode(text[2:], validate=True)
        except binascii.Error:
            raise ScramError("the server signature is not base64") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError("the server signature is wrong: the node does not hold this user's credential")


# -------------------------------------------------------------------------------------------------
# Session tokens as call credentials.


class AuthenticationFailure(grpc.RpcError, grpc.Call, grpc.Future):
    """A call that failed before it was sent, because authenticating with the node failed: an
    UNAUTHENTICATED (or the node's) status whose ErrorDetail names the user. It is what the call
    returns (blocking calls raise it; futures and streams fail with it), so the clients' usual
    error path (`translate_rpc_error`) turns it into the SDK's error."""

    def __init__(self, code: grpc.StatusCode, detail: common_pb2.ErrorDetail) -> None:
        super().__init__()
        self._code = code
        self._detail = detail

    def __repr__(self) -> str:
        return f"AuthenticationFailure({self._code.name}, {self._detail.message!r})"

    # grpc.Call
    def initial_metadata(self):
        return ()

    def trailing_metadata(self):
        status = status_pb2.Status(code=self._code.value[0], message=self._detail.message)
        status.details.add().Pack(self._detail)
        return ((_DETAILS_KEY, status.SerializeToString()),)

    def code(self):
        return self._code

    def details(self):
        return self._detail.message

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def add_callback(self, callback):
        callback()
        return True

    # grpc.Future
    def cancel(self):
        return False

    def cancelled(self):
        return False

    def running(self):
        return False

    def done(self):
        return True

    def result(self, timeout=None):
        raise self

    def exception(self, timeout=None):
        return self

    def traceback(self, timeout=None):
        return None

    def add_done_callback(self, fn):
        fn(self)

    # a failed response stream
    def __iter__(self):
        return self

    def __next__(self):
        raise self


def _failure_from_rpc_error(error: grpc.RpcError, user: str, address: str) -> AuthenticationFailure:
    """The failure a call returns when the Authenticate RPC itself failed: the node's code and
    detail, with the user and node named in the message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNAVAILABLE
    detail = None
    for key, value in (error.trailing_metadata() if hasattr(error, "trailing_metadata") else None) or ():
        if key == _DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for item in status.details:
                if item.Is(common_pb2.ErrorDetail.DESCRIPTOR):
                    detail = common_pb2.ErrorDetail()
                    item.Unpack(detail)
    if detail is None:
        detail = common_pb2.ErrorDetail(
            code=common_pb2.SASL_AUTHENTICATION_FAILED if code == grpc.StatusCode.UNAUTHENTICATED else common_pb2.UNKNOWN_SERVER_ERROR,
            message=(error.details() if hasattr(error, "details") else None) or code.name,
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        detail = common_pb2.ErrorDetail(code=common_pb2.UNKNOWN_SERVER_ERROR, message=detail.message)
        return AuthenticationFailure(code, detail)
    detail.message = f"authenticating user {user!r} with {address}: {detail.message}"
    return AuthenticationFailure(code, detail)


def _scram_failure(user: str, address: str, reason: str) -> AuthenticationFailure:
    detail = common_pb2.ErrorDetail(
        code=common_pb2.SASL_AUTHENTICATION_FAILED, message=f"authenticating user {user!r} with {address}: {reason}"
    )
    return AuthenticationFailure(grpc.StatusCode.UNAUTHENTICATED, detail)


class _TokenSource:
    """The session token of one channel (one node). Thread-safe."""

    def __init__(self, channel: grpc.Channel, address: str, security: SecurityConfig, clock=time.monotonic) -> None:
        self._stub = authentication_pb2_grpc.AuthenticationStub(channel)
        self._address = address
        self._security = security
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def __repr__(self) -> str:
        return f"_TokenSource({self._address}, has_token={self._token is not None})"

    def token(self) -> str | AuthenticationFailure:
        """A valid token, authenticating first when there is none (or it is due for renewal)."""
        with self._lock:
            if self._token is not None and self._clock() < self._renew_at:
                return self._token
            started = self._clock()
            outcome = self._authenticate()
            if isinstance(outcome, AuthenticationFailure):
                self._token = None
                return outcome
            token, lifetime_ms = outcome
            self._token = token
            self._renew_at = started + lifetime_ms / 1000 * RENEW_AT_LIFETIME_FRACTION
            return token

    def invalidate(self, token: str) -> None:
        """The node refused `token`: authenticate again on the next call."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _call(self, request: authentication_pb2.AuthenticateRequest) -> authentication_pb2.AuthenticateResponse:
        return self._stub.Authenticate(request, timeout=AUTHENTICATE_TIMEOUT_S)

    def _authenticate(self) -> tuple[str, int] | AuthenticationFailure:
        security = self._security
        user, password = security.sasl_plain_username, security.sasl_plain_password
        assert user is not None and password is not None
        mechanism = security.mechanism
        try:
            if mechanism == "PLAIN":
                response = self._call(authentication_pb2.AuthenticateRequest(
                    mechanism=mechanism, message=f"\0{user}\0{password}".encode()
                ))
            else:
                scram = ScramClient(mechanism, user, password)
                first = self._call(authentication_pb2.AuthenticateRequest(mechanism=mechanism, message=scram.first_message()))
                try:
                    final = scram.final_message(first.message)
                except ScramError as error:
                    return _scram_failure(user, self._address, str(error))
                response = self._call(authentication_pb2.AuthenticateRequest(
                    mechanism=mechanism, exchange_id=first.exchange_id, message=final
                ))
                try:
                    scram.verify_final(response.message)
                except ScramError as error:
                    return _scram_failure(user, self._address, str(error))
        except grpc.RpcError as error:
            return _failure_from_rpc_error(error, user, self._address)
        if not response.is_complete or not response.token:
            return _scram_failure(user, self._address, "the node did not complete the exchange")
        return response.token, max(1, response.session_lifetime_ms)


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


def _with_token(details: grpc.ClientCallDetails, token: str) -> _CallDetails:
    metadata = [item for item in (details.metadata or ()) if item[0] != "authorization"]
    metadata.append(("authorization", f"Bearer {token}"))
    return _CallDetails(
        details.method, details.timeout, metadata, details.credentials,
        getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
    )


def _session_refused(call) -> AuthenticationFailure | None:
    """What a call made with a session token reports when the node refused that token, else None.

    UNAUTHENTICATED on a call that carried a token means the node no longer knows the session (it
    restarted, or the session expired): like a dropped connection in Kafka, where the client logs
    in again. So it reads as UNAVAILABLE / BROKER_NOT_AVAILABLE, which every client retries; the
    retry authenticates afresh and surfaces a real credential problem (a deleted user, a changed
    password) as the Authenticate RPC's own SASL_AUTHENTICATION_FAILED.
    """
    try:
        code = call.code()
    except Exception:  # noqa: BLE001 - a call that never started has no code
        return None
    if code != grpc.StatusCode.UNAUTHENTICATED:
        return None
    return AuthenticationFailure(
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ErrorDetail(
            code=common_pb2.BROKER_NOT_AVAILABLE,
            message="the node no longer knows this session (it restarted, or the session expired): logging in again",
        ),
    )


class _SessionCall:
    """A streaming call or future made with a session token, whose refusal of the token reads as
    retriable (`_session_refused`); everything else is the call's own. Thread-safe as the call."""

    def __init__(self, call) -> None:
        self._call = call

    def __getattr__(self, name: str):
        return getattr(self._call, name)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._call)
        except grpc.RpcError:
            refused = _session_refused(self._call)
            if refused is not None:
                raise refused from None
            raise

    def code(self):
        refused = _session_refused(self._call)
        return self._call.code() if refused is None else refused.code()

    def details(self):
        refused = _session_refused(self._call)
        return self._call.details() if refused is None else refused.details()

    def trailing_metadata(self):
        refused = _session_refused(self._call)
        return self._call.trailing_metadata() if refused is None else refused.trailing_metadata()

    def result(self, timeout=None):
        try:
            return self._call.result(timeout)
        except grpc.RpcError:
            refused = _session_refused(self._call)
            if refused is not None:
                raise refused from None
            raise

    def exception(self, timeout=None):
        error = self._call.exception(timeout)
        if error is None:
            return None
        return _session_refused(self._call) or error

    def add_done_callback(self, fn) -> None:
        self._call.add_done_callback(lambda _call: fn(self))


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Sends the channel's session token with every call (module docstring). Thread-safe."""

    def __init__(self, source: _TokenSource) -> None:
        self._source = source

    def _forget_if_refused(self, call, token: str) -> None:
        def done(*_args) -> None:
            try:
                code = call.code()
            except Exception:  # noqa: BLE001 - a call that never started has no code
                return
            if code == grpc.StatusCode.UNAUTHENTICATED:
                self._source.invalidate(token)

        if hasattr(call, "add_done_callback") and isinstance(call, grpc.Future):
            call.add_done_callback(done)
        elif hasattr(call, "add_callback"):
            call.add_callback(done)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        token = self._source.token()
        if isinstance(token, AuthenticationFailure):
            return token
        outcome = continuation(_with_token(client_call_details, token), request)
        if not outcome.done():                  # a future: it cannot be retried from here
            self._forget_if_refused(outcome, token)
            return _SessionCall(outcome)
        if outcome.code() != grpc.StatusCode.UNAUTHENTICATED:
            return outcome
        # The node no longer knows the token (it restarted, or the token expired): once more.
        self._source.invalidate(token)
        token = self._source.token()
        if isinstance(token, AuthenticationFailure):
            return token
        return continuation(_with_token(client_call_details, token), request)

    def _streaming(self, continuation, client_call_details, request_or_iterator):
        """A call that cannot be retried from here (a stream, either way): sent with the token; a
        refusal for a forgotten token fails it retriable and the next call logs in again."""
        token = self._source.token()
        if isinstance(token, AuthenticationFailure):
            return token
        call = continuation(_with_token(client_call_details, token), request_or_iterator)
        self._forget_if_refused(call, token)
        return _SessionCall(call)

    intercept_unary_stream = _streaming
    intercept_stream_unary = _streaming
    intercept_stream_stream = _streaming


def authenticated_channel(channel: grpc.Channel, address: str, security: SecurityConfig) -> grpc.Channel:
    """`channel` with the session token of `security`'s user attached to every call (SASL_SSL);
    the channel itself otherwise."""
    if not security.is_sasl:
        return channel
    return grpc.intercept_channel(channel, _BearerInterceptor(_TokenSource(channel, address, security)))
