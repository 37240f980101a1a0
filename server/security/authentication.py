"""Who is calling: the node's `Authenticator`, shared by the gRPC port and the Kafka listener.

Owns, per node:

- the mode (security.protocol): PLAINTEXT authenticates nobody (the node builds no
  Authenticator at all, so the hot path pays one attribute check); SSL names a caller by its TLS
  client certificate (`User:<CN>`) or `User:ANONYMOUS`; SASL_SSL requires a login: a SASL exchange
  on the Kafka listener, a session token from the Authenticate RPC on gRPC, or a client
  certificate (mTLS; nodes present theirs to each other);
- new SASL exchanges over the current image's credentials (server/security/sasl.py), for the
  enabled mechanisms (sasl.enabled.mechanisms);
- the bookkeeping of every login, whichever listener: the per-host rate limit of failures
  (`LoginRateLimiter`), one audit line per success and per failure (never a password or token),
  and the metrics `freshet_authentication_successes_total` / `freshet_authentication_failures_total`
  by listener and mechanism;
- the gRPC side of a call: `enter(context)` resolves and binds the call's `Caller` (the
  `status.handler` decorator calls it through the servicer's `authenticator` attribute, before the
  handler runs) and refuses an unauthenticated call on SASL_SSL with AuthenticationError
  (UNAUTHENTICATED / SASL_AUTHENTICATION_FAILED); `exit(token)` unbinds it.

Imports: standard library, grpc (types only), prometheus_client, freshet.metadata (image,
security), freshet.server (errors, security). Thread-safety: thread-safe (the session table and the
rate limiter lock; everything else is immutable or a prometheus metric).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Callable

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import ANONYMOUS, ScramCredential, ScramMechanism, user_principal
from freshet.server.errors import AuthenticationError
from freshet.server.security import sasl
from freshet.server.security.authorizer import Caller, audit, bind_caller, unbind_caller
from freshet.server.security.node_identity import NodeProofVerifier, principal_from_call
from freshet.server.security.rate_limit import LoginRateLimiter
from freshet.server.security.sessions import SessionTable
from prometheus_client import CollectorRegistry, Counter

logger = logging.getLogger(__name__)

PLAINTEXT = "PLAINTEXT"
SSL = "SSL"
SASL_SSL = "SASL_SSL"
LISTENER_GRPC = "grpc"
LISTENER_KAFKA = "kafka"
#: The metadata key (lower case, as gRPC delivers it) carrying `Bearer TOKEN`.
AUTHORIZATION_METADATA_KEY = "authorization"
BEARER_PREFIX = "Bearer "
#: The auth_context key of the client certificate's subject common name (grpc core's name).
UNAUTHENTICATED_MESSAGE = (
    "authentication required: log in first (SASL SCRAM-SHA-256/512 or PLAIN), or present a client certificate"
)
EXPIRED_TOKEN_MESSAGE = "the session token is expired or unknown to this node: authenticate again"


def grpc_peer_host(peer: str | None) -> str:
    """The client's IP address in a grpc peer string ("ipv4:10.0.0.1:5000", "ipv6:[::1]:5000"),
    "" when there is none (a unix socket, an in-process channel)."""
    if not peer:
        return ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        host = rest.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return ""


def bearer_token(context) -> str | None:
    """The token of the call's `authorization: Bearer TOKEN` metadata, or None."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            if text.startswith(BEARER_PREFIX):
                return text[len(BEARER_PREFIX):].strip() or None
            return None
    return None


class Authenticator:
    """The node's authentication (module docstring). Thread-safe."""

    def __init__(
        self,
        protocol: str,
        mechanisms: tuple[str, ...],
        image: Callable[[], MetadataImage],
        registry: CollectorRegistry | None = None,
        sessions: SessionTable | None = None,
        limiter: LoginRateLimiter | None = None,
        node_proofs: NodeProofVerifier | None = None,
    ) -> None:
        """`node_proofs`: verifies the certificate proofs other nodes send on inter-node calls
        (grpcio cannot ask a client for an optional certificate; see security/node_identity.py)."""
        assert protocol in (SSL, SASL_SSL), "PLAINTEXT nodes build no Authenticator"
        self.protocol = protocol
        self.mechanisms = mechanisms
        self._image = image
        self.sessions = sessions or SessionTable()
        self.limiter = limiter or LoginRateLimiter()
        self._node_proofs = node_proofs
        self._successes = Counter(
            "freshet_authentication_successes",
            "successful logins (SASL exchanges), by listener and mechanism",
            ["listener", "mechanism"],
            registry=registry,
        )
        self._failures = Counter(
            "freshet_authentication_failures",
            "failed logins and refused unauthenticated calls, by listener and mechanism",
            ["listener", "mechanism"],
            registry=registry,
        )

    def __repr__(self) -> str:
        return f"Authenticator({self.protocol}, {','.join(self.mechanisms)})"

    @property
    def is_sasl(self) -> bool:
        """Whether callers must log in (SASL_SSL)."""
        return self.protocol == SASL_SSL

    # -- logins (both listeners) -------------------------------------------------------------------

    def credential_of(self, user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        return self._image().scram_credential(user, mechanism)

    def new_exchange(self, mechanism: str) -> sasl.SaslServer:
        """A fresh SASL exchange for `mechanism`.

        Raises:
            UnsupportedSaslMechanismError: not enabled (or SASL is off).
        """
        enabled = self.mechanisms if self.is_sasl else ()
        return sasl.new_sasl_server(mechanism, self.credential_of, enabled)

    def refuse_if_blocked(self, listener: str, mechanism: str, host: str) -> None:
        """Raise AuthenticationError when `host` has used up its failed logins (counted and
        audited as a failure); return otherwise."""
        retry_s = self.limiter.retry_after_s(host)
        if retry_s <= 0:
            return
        self._failures.labels(listener, mechanism).inc()
        audit("authentication_failed", listener=listener, mechanism=mechanism, host=host, user=None,
              reason="rate limited")
        raise AuthenticationError(
            f"too many failed authentication attempts from {host or 'this address'}; retry in {max(1, round(retry_s))} s"
        )

    def succeeded(self, listener: str, mechanism: str, host: str, user: str) -> Caller:
        """Count and audit a completed login; the caller it makes."""
        self._successes.labels(listener, mechanism).inc()
        self.limiter.succeeded(host)
        principal = user_principal(user)
        audit("authentication_succeeded", listener=listener, mechanism=mechanism, host=host, principal=principal)
        return Caller(principal, host)

    def failed(self, listener: str, mechanism: str, host: str, user: str | None, reason: str) -> None:
        """Count, audit and rate limit a failed login (`reason` never holds a secret)."""
        self.limiter.failed(host)
        self._failures.labels(listener, mechanism).inc()
        audit("authentication_failed", listener=listener, mechanism=mechanism, host=host, user=user or None,
              reason=reason)

    # -- gRPC calls --------------------------------------------------------------------------------

    def caller_of(self, context) -> Caller:
        """The caller of a gRPC call.

        Raises:
            AuthenticationError: SASL_SSL and neither a valid session token nor a client certificate.
        """
        host = grpc_peer_host(context.peer())
        token = bearer_token(context) if self.is_sasl else None
        if token is not None:
            session = self.sessions.session(token)
            if session is not None:
                if session.credentials == self.credentials_fingerprint(session.principal):
                    return Caller(session.principal, host)
                self.sessions.revoke(token)         # password changed or user deleted since login
        certificate = principal_from_call(context, self._node_proofs)
        if certificate is not None:
            return Caller(certificate, host, is_from_certificate=True)
        if not self.is_sasl:
            return Caller(ANONYMOUS, host)
        self._failures.labels(LISTENER_GRPC, "token" if token is not None else "none").inc()
        audit("authentication_failed", listener=LISTENER_GRPC, mechanism="token" if token is not None else "none",
              host=host, user=None, reason="expired or unknown session token" if token is not None else "no credentials")
        raise AuthenticationError(EXPIRED_TOKEN_MESSAGE if token is not None else UNAUTHENTICATED_MESSAGE)

    def issue_session(self, principal: str) -> str:
        """A session token for `principal`, bound to its user's current credentials: changing the
        password or deleting the user ends the session at the next call (the client logs in
        again, and fails if its password is no longer right)."""
        return self.sessions.issue(principal, self.credentials_fingerprint(principal))

    def credentials_fingerprint(self, principal: str) -> bytes:
        """A digest of the user's current SCRAM stored keys (b"" for no such user)."""
        credentials = self._image().users.get(principal.partition(":")[2])
        if not credentials:
            return b""
        digest = hashlib.sha256()
        for mechanism, credential in sorted(credentials.items()):
            digest.update(bytes([mechanism]) + credential.stored_key)
        return digest.digest()

    def enter(self, context) -> contextvars.Token:
        """Bind the call's caller (see caller_of; raises AuthenticationError); `exit` undoes it."""
        return bind_caller(self.caller_of(context))

    def exit(self, token: contextvars.Token) -> None:
        unbind_caller(token)
