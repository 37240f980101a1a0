"""gRPC session tokens: what a client sends as `authorization: Bearer TOKEN` after a SCRAM exchange.

Owns `SessionTable`: token -> (principal, expiry), per node (tokens are per broker: a client
authenticates with every node it talks to). Tokens are 32 random bytes (urlsafe base64); the table
keys them by their SHA-256, so the table itself never holds a usable token. Sessions expire after
`lifetime_ms`; the table holds at most `sessions_max` of them: when full it drops the expired
ones, then the oldest (that client re-authenticates, as after an expiry).

Also `LoginRateLimiter`: failed logins per source host as a token bucket (Kafka has no such thing;
it is our answer to password guessing). Each host may fail `failures_max` times in a burst and
regains one attempt every `window_ms / failures_max`; a host whose bucket is empty is refused at
once, without checking its credentials, until an attempt is regained. Bounded to `hosts_max`
hosts (full buckets go first, then the least recently updated).

Imports: standard library only. Thread-safety: both classes are thread-safe (one lock each); the
clock is injected (`time.monotonic` seconds by default).
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
LOGIN_FAILURES_MAX_DEFAULT = 10
LOGIN_WINDOW_MS_DEFAULT = 60_000
RATE_LIMITED_HOSTS_MAX_DEFAULT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """One authenticated gRPC session. Thread-safe (immutable)."""

    principal: str
    expires_at_s: float


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

    def issue(self, principal: str) -> str:
        """A new token for `principal`, valid for lifetime_ms."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        with self._lock:
            if len(self._sessions) >= self.sessions_max:
                self._purge_expired(now)
            while len(self._sessions) >= self.sessions_max:
                self._sessions.popitem(last=False)
            self._sessions[_digest(token)] = Session(principal, now + self.lifetime_ms / 1000)
        return token

    def principal(self, token: str) -> str | None:
        """The principal of a valid token; None when unknown or expired (an expired one is dropped)."""
        key = _digest(token)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.expires_at_s <= now:
                del self._sessions[key]
                return None
            return session.principal

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


class LoginRateLimiter:
    """Failed logins per source host (module docstring). Thread-safe."""

    def __init__(
        self,
        failures_max: int = LOGIN_FAILURES_MAX_DEFAULT,
        window_ms: int = LOGIN_WINDOW_MS_DEFAULT,
        hosts_max: int = RATE_LIMITED_HOSTS_MAX_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert failures_max > 0
        assert window_ms > 0
        assert hosts_max > 0
        self.failures_max = failures_max
        self._refill_per_s = failures_max / (window_ms / 1000)
        self.hosts_max = hosts_max
        self._clock = clock
        self._lock = threading.Lock()
        # host -> (attempts left, as of time s); least recently updated first.
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def _level(self, host: str, now: float) -> float:
        found = self._buckets.get(host)
        if found is None:
            return float(self.failures_max)
        tokens, since = found
        return min(float(self.failures_max), tokens + (now - since) * self._refill_per_s)

    def is_blocked(self, host: str) -> bool:
        """Whether `host` has used up its failed attempts (refuse it without checking credentials)."""
        with self._lock:
            return self._level(host, self._clock()) < 1.0

    def retry_after_s(self, host: str) -> float:
        """Seconds until `host` may try again (0 when it may now)."""
        with self._lock:
            level = self._level(host, self._clock())
        return 0.0 if level >= 1.0 else (1.0 - level) / self._refill_per_s

    def record_failure(self, host: str) -> None:
        """Count one failed login from `host`."""
        now = self._clock()
        with self._lock:
            level = max(0.0, self._level(host, now) - 1.0)
            self._buckets[host] = (level, now)
            self._buckets.move_to_end(host)
            if len(self._buckets) > self.hosts_max:
                self._evict(now)

    def _evict(self, now: float) -> None:
        full = [host for host in self._buckets if self._level(host, now) >= self.failures_max]
        for host in full:
            del self._buckets[host]
        while len(self._buckets) > self.hosts_max:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
