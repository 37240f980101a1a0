"""gRPC session tokens: what a client sends as `authorization: Bearer TOKEN` after a SCRAM exchange.

Owns `SessionTable`: token -> (principal, expiry), per node (tokens are per broker: a client
authenticates with every node it talks to). Tokens are 32 random bytes (urlsafe base64); the table
keys them by their SHA-256, so the table itself never holds a usable token. Sessions expire after
`lifetime_ms`; the table holds at most `sessions_max` of them: when full it drops the expired
ones, then the oldest (that client re-authenticates, as after an expiry).

Imports: standard library only. Thread-safety: thread-safe (one lock); the clock is injected
(`time.monotonic` seconds by default).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable

SESSION_LIFETIME_MS_DEFAULT = 60 * 60 * 1000
SESSIONS_MAX_DEFAULT = 100_000
TOKEN_BYTES = 32


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """One authenticated gRPC session. Thread-safe (immutable)."""

    principal: str
    expires_at_s: float
    # What the user's credentials were when the session began (Authenticator.credentials_fingerprint):
    # a session whose user changed password or was deleted since is no longer honoured.
    credentials: bytes = b""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class SessionTable:
    """Session tokens of one node (module docstring). Thread-safe."""

    def __init__(
        self,
        lifetime_ms: int = SESSION_LIFETIME_MS_DEFAULT,
        sessions_max: int = SESSIONS_MAX_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert lifetime_ms > 0
        assert sessions_max > 0
        self.lifetime_ms = lifetime_ms
        self.sessions_max = sessions_max
        self._clock = clock
        self._lock = threading.Lock()
        # digest -> session, in issue order (the oldest first, which is also the soonest to expire).
        self._sessions: collections.OrderedDict[bytes, Session] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"SessionTable({len(self._sessions)} sessions)"

    def issue(self, principal: str, credentials: bytes = b"") -> str:
        """A new token for `principal`, valid for lifetime_ms; `credentials`: the fingerprint of the
        user's credentials now (see Session)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        with self._lock:
            if len(self._sessions) >= self.sessions_max:
                self._purge_expired(now)
            while len(self._sessions) >= self.sessions_max:
                self._sessions.popitem(last=False)
            self._sessions[_digest(token)] = Session(principal, now + self.lifetime_ms / 1000, credentials)
        return token

    def principal(self, token: str) -> str | None:
        """The principal of a valid token; None when unknown or expired (an expired one is dropped)."""
        session = self.session(token)
        return None if session is None else session.principal

    def session(self, token: str) -> Session | None:
        """The session of a valid token; None when unknown or expired (an expired one is dropped)."""
        key = _digest(token)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.expires_at_s <= now:
                del self._sessions[key]
                return None
            return session

    def revoke(self, token: str) -> None:
        """Forget one token (its user's credentials changed)."""
        with self._lock:
            self._sessions.pop(_digest(token), None)

    def revoke_principal(self, principal: str) -> int:
        """Drop every session of `principal` (its user was deleted); how many there were."""
        with self._lock:
            keys = [key for key, session in self._sessions.items() if session.principal == principal]
            for key in keys:
                del self._sessions[key]
        return len(keys)

    def _purge_expired(self, now: float) -> None:
        while self._sessions:
            key, session = next(iter(self._sessions.items()))
            if session.expires_at_s > now:
                return
            del self._sessions[key]
