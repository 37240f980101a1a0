"""The server side of SASL: SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and PLAIN (RFC 4616).

Owns the pure state machines a front-end drives with the client's messages, one per
authentication attempt (a Kafka connection's SaslAuthenticate exchange, a gRPC Authenticate
exchange). Each has `evaluate(message) -> challenge` and, once `is_complete`, the authenticated
`user`. They hold no sockets, clocks or metrics: the front-ends (server/kafka/sasl_api.py,
server/security/grpc_auth.py) count, audit and rate limit through `Authenticator`.

SCRAM, as Kafka's ScramSaslServer:
- client-first: GS2 header "n,," or "y,," (no channel binding; "p=" is refused), an optional
  authzid that must name the authenticating user, `n=` user (with =2C / =3D escapes), `r=` nonce,
  extensions ignored; the reserved `m=` is refused. The answer is server-first: the combined nonce
  (client nonce + 32 random bytes), the salt and iterations of the user's credential.
- client-final: `c=` must be base64 of the GS2 header ("biws" for "n,,"), `r=` the combined nonce,
  `p=` the proof, checked with ScramCredential.verify_proof. The answer is server-final
  `v=ServerSignature`.
- An unknown user gets a server-first with a salt derived from the name and a per-process key
  (stable per name, so a second attempt looks the same), and then fails at client-final exactly as
  a wrong password does: no user enumeration.
PLAIN: "authzid NUL authcid NUL passwd", checked with ScramCredential.verify_password (a
credential of either SCRAM mechanism: the user's password is never stored).

Failures raise AuthenticationError with one message per mechanism for every credential problem
(Kafka's text), or IllegalSaslStateError for a message the exchange does not expect (malformed
messages, a message after completion). Secrets never appear in messages or repr.

Imports: standard library, freshet.metadata.security, freshet.server.errors.
Thread-safety: an exchange is not thread-safe (one front-end task drives it at a time); the
module-level fake-salt key is immutable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Protocol

from freshet.metadata.security import (
    SCRAM_ITERATIONS_DEFAULT,
    ScramCredential,
    ScramMechanism,
    salted_password,
)
from freshet.server.errors import AuthenticationError, IllegalSaslStateError, UnsupportedSaslMechanismError

PLAIN = "PLAIN"
SCRAM_NONCE_BYTES = 32
#: Longest SASL message accepted (a SCRAM message is ~200 bytes; PLAIN ~3 names).
SASL_MESSAGE_BYTES_MAX = 4096

#: credential_of(user, mechanism) -> the user's credential, or None (unknown user).
CredentialLookup = Callable[[str, ScramMechanism], ScramCredential | None]

# Derives the fake salts of unknown users (per process: nothing to learn across restarts).
_FAKE_SALT_KEY = os.urandom(32)


def failure_message(mechanism: str) -> str:
    """The one message of every credential failure (Kafka's text): wrong password and unknown user
    read the same."""
    return f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"


class SaslServer(Protocol):
    """One authentication attempt, server side."""

    mechanism: str
    is_complete: bool
    user: str | None

    def evaluate(self, message: bytes) -> bytes:
        """The answer to the client's next message.

        Raises:
            AuthenticationError: bad credentials (the exchange is over).
            IllegalSaslStateError: a malformed or unexpected message (the exchange is over).
        """
        ...


def new_sasl_server(mechanism: str, credential_of: CredentialLookup, enabled: tuple[str, ...]) -> SaslServer:
    """A fresh exchange for `mechanism`.

    Raises:
        UnsupportedSaslMechanismError: `mechanism` is not among `enabled`.
    """
    if mechanism not in enabled:
        raise UnsupportedSaslMechanismError(
            f"SASL mechanism {mechanism!r} is not enabled on this node (enabled: {', '.join(enabled)})"
        )
    if mechanism == PLAIN:
        return PlainServer(credential_of)
    return ScramServer(ScramMechanism.from_name(mechanism), credential_of)


def _decode_text(message: bytes, mechanism: str) -> str:
    if len(message) > SASL_MESSAGE_BYTES_MAX:
        raise IllegalSaslStateError(f"{mechanism}: a message of {len(message)} bytes is longer than {SASL_MESSAGE_BYTES_MAX}")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise IllegalSaslStateError(f"{mechanism}: the message is not UTF-8") from None


def _unescape_name(text: str, mechanism: str) -> str:
    """RFC 5802 saslname: "=2C" is ",", "=3D" is "="; any other "=" is malformed."""
    result, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "=":
            escape = text[index:index + 3]
            if escape == "=2C":
                result.append(",")
            elif escape == "=3D":
                result.append("=")
            else:
                raise IllegalSaslStateError(f"{mechanism}: invalid escape in the user name")
            index += 3
        else:
            result.append(char)
            index += 1
    return "".join(result)


def _b64decode(text: str, what: str, mechanism: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise IllegalSaslStateError(f"{mechanism}: {what} is not base64") from None


class ScramServer:
    """The server side of one SCRAM exchange (module docstring). Not thread-safe."""

    def __init__(self, mechanism: ScramMechanism, credential_of: CredentialLookup, nonce: bytes | None = None) -> None:
        self._scram = mechanism
        self.mechanism = mechanism.mechanism_name
        self._credential_of = credential_of
        self._server_nonce = base64.b64encode(nonce or os.urandom(SCRAM_NONCE_BYTES)).decode("ascii")
        self._state = "first"           # first -> final -> complete | failed
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None
        self._claimed_user = ""
        self.is_complete = False
        self.user: str | None = None

    def __repr__(self) -> str:
        return f"ScramServer({self.mechanism}, state={self._state})"

    @property
    def claimed_user(self) -> str:
        """The user the client names (known or not; for audit lines), "" before client-first."""
        return self._claimed_user

    def evaluate(self, message: bytes) -> bytes:
        if self._state == "first":
            return self._client_first(message)
        if self._state == "final":
            return self._client_final(message)
        raise IllegalSaslStateError(f"{self.mechanism}: unexpected message, the exchange is {self._state}")

    def _fail_state(self, reason: str) -> IllegalSaslStateError:
        self._state = "failed"
        return IllegalSaslStateError(f"{self.mechanism}: {reason}")

    def _client_first(self, message: bytes) -> bytes:
        self._state = "failed"          # until proven otherwise
        text = _decode_text(message, self.mechanism)
        flag, comma, rest = text.partition(",")
        authzid_part, comma2, bare = rest.partition(",")
        if not comma or not comma2:
            raise self._fail_state("malformed client-first message")
        if flag.startswith("p="):
            raise self._fail_state("channel binding is not supported")
        if flag not in ("n", "y"):
            raise self._fail_state("malformed GS2 header")
        authzid = ""
        if authzid_part:
            if not authzid_part.startswith("a="):
                raise self._fail_state("malformed GS2 header")
            authzid = _unescape_name(authzid_part[2:], self.mechanism)
        attributes = bare.split(",")
        if attributes and attributes[0].startswith("m="):
            raise self._fail_state("mandatory extensions are not supported")
        if len(attributes) < 2 or not attributes[0].startswith("n=") or not attributes[1].startswith("r="):
            raise self._fail_state("malformed client-first message")
        user = _unescape_name(attributes[0][2:], self.mechanism)
        client_nonce = attributes[1][2:]
        if not user or not client_nonce or any(ch in client_nonce for ch in ", ") or not client_nonce.isprintable():
            raise self._fail_state("malformed client-first message")
        if authzid and authzid != user:
            raise self._fail_state("the authorization id must be the authenticating user")
        self._claimed_user = user
        self._credential = self._credential_of(user, self._scram)
        if self._credential is None:
            salt, iterations = _fake_salt(user, self._scram), SCRAM_ITERATIONS_DEFAULT
        else:
            salt, iterations = self._credential.salt, self._credential.iterations
        self._gs2_header = f"{flag},{authzid_part},"
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        self._server_first = f"r={self._nonce},s={base64.b64encode(salt).decode('ascii')},i={iterations}"
        self._state = "final"
        return self._server_first.encode("utf-8")

    def _client_final(self, message: bytes) -> bytes:
        self._state = "failed"
        text = _decode_text(message, self.mechanism)
        without_proof, separator, proof_text = text.rpartition(",p=")
        if not separator:
            raise self._fail_state("the client-final message has no proof")
        attributes = without_proof.split(",")
        if len(attributes) < 2 or not attributes[0].startswith("c=") or not attributes[1].startswith("r="):
            raise self._fail_state("malformed client-final message")
        binding = _b64decode(attributes[0][2:], "the channel binding", self.mechanism)
        if binding != self._gs2_header.encode("utf-8"):
            raise self._fail_state("the channel binding does not match the GS2 header")
        if not hmac.compare_digest(attributes[1][2:].encode("utf-8"), self._nonce.encode("utf-8")):
            raise self._fail_state("the nonce does not match this exchange")
        proof = _b64decode(proof_text, "the proof", self.mechanism)
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        credential = self._credential
        if credential is None or not credential.verify_proof(auth_message, proof):
            raise AuthenticationError(failure_message(self.mechanism))
        signature = credential.server_signature(auth_message)
        self._state = "complete"
        self.is_complete = True
        self.user = self._claimed_user
        return b"v=" + base64.b64encode(signature)


def _fake_salt(user: str, mechanism: ScramMechanism) -> bytes:
    """A salt for an unknown user: stable per name and mechanism in this process, unpredictable."""
    return hmac.new(_FAKE_SALT_KEY, f"{mechanism.mechanism_name}:{user}".encode(), hashlib.sha256).digest()


class PlainServer:
    """The server side of one SASL/PLAIN exchange: a single message. Not thread-safe."""

    mechanism = PLAIN

    def __init__(self, credential_of: CredentialLookup) -> None:
        self._credential_of = credential_of
        self._is_done = False
        self._claimed_user = ""
        self.is_complete = False
        self.user: str | None = None

    def __repr__(self) -> str:
        return f"PlainServer(done={self._is_done})"

    @property
    def claimed_user(self) -> str:
        return self._claimed_user

    def evaluate(self, message: bytes) -> bytes:
        if self._is_done:
            raise IllegalSaslStateError("PLAIN: unexpected message, the exchange is over")
        self._is_done = True
        text = _decode_text(message, PLAIN)
        parts = text.split("\0")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise IllegalSaslStateError("PLAIN: malformed message (expected authzid NUL user NUL password)")
        authzid, user, password = parts
        if authzid and authzid != user:
            raise IllegalSaslStateError("PLAIN: the authorization id must be the authenticating user")
        self._claimed_user = user
        credential = self._credential_of(user, ScramMechanism.SCRAM_SHA_512) or self._credential_of(
            user, ScramMechanism.SCRAM_SHA_256
        )
        if credential is None:
            # The same work as a real check, so the answer's timing does not tell the user is unknown.
            salted_password(ScramMechanism.SCRAM_SHA_512, password.encode(), _fake_salt(user, ScramMechanism.SCRAM_SHA_512), SCRAM_ITERATIONS_DEFAULT)
            raise AuthenticationError(failure_message(PLAIN))
        if not credential.verify_password(password):
            raise AuthenticationError(failure_message(PLAIN))
        self.is_complete = True
        self.user = user
        return b""
