"""The console's login sessions: who a session cookie stands for, and its CSRF token.

Owns `ConsoleSessions`, the node's table of logged-in console users. A session is created by a
successful login (form or client certificate) and is named by a random 256-bit token that only the
browser's cookie holds: the table keys sessions by the token's SHA-256, so neither a memory dump
nor a timing difference in the dictionary lookup reveals a live token. Each session carries its
own random CSRF token, which every form the console serves embeds and every POST must echo
(SameSite=Strict alone does not protect users of older browsers).

Bounds: a session ends `lifetime_s` after login whatever happens (the page refreshes itself, so an
idle limit alone would never fire while a tab stays open) and `idle_s` after its last use; the
table holds at most `sessions_max`, and a login into a full table ends the session used least
recently.

Imports: standard library only. Time is injected (`clock`, seconds, monotonic).
Thread-safety: thread-safe (one lock around the table; sessions are immutable apart from the set
of denials already audited, which only grows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable

LIFETIME_S = 8 * 3600.0
IDLE_S = 3600.0
SESSIONS_MAX = 1000
TOKEN_BYTES = 32


@dataclasses.dataclass(eq=False)
class ConsoleSession:
    """One logged-in console user. Thread-safe (fields fixed at login; `audited` only grows).

    Attributes:
        principal: "User:alice".
        method: how it logged in: "password" or "certificate".
        host: the client address it logged in from.
        csrf_token: echoed by every POST of this session (never the session token itself).
        expires_s: the clock time at which it ends whatever its use.
        credential_salts: for a password login, the salts of the user's credentials then; when the
            image's differ (password changed, user deleted) the session ends. Empty otherwise.
        audited: views refused to this session whose denial was already audited (a page that
            refreshes every few seconds writes one audit line per refused view, not one a refresh).
    """

    principal: str
    method: str
    host: str
    csrf_token: str = dataclasses.field(repr=False)
    expires_s: float
    credential_salts: frozenset[bytes] = dataclasses.field(default=frozenset(), repr=False)
    audited: set = dataclasses.field(default_factory=set)

    def csrf_matches(self, token: str) -> bool:
        return secrets.compare_digest(self.csrf_token.encode(), token.encode())


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ConsoleSessions:
    """The table of console sessions. Thread-safe."""

    def __init__(
        self,
        lifetime_s: float = LIFETIME_S,
        idle_s: float = IDLE_S,
        sessions_max: int = SESSIONS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert lifetime_s > 0
        assert 0 < idle_s
        assert sessions_max >= 1
        self.lifetime_s = lifetime_s
        self.idle_s = idle_s
        self.sessions_max = sessions_max
        self._clock = clock
        self._lock = threading.Lock()
        # SHA-256(token) -> (session, last use); insertion order is not use order.
        self._sessions: dict[bytes, tuple[ConsoleSession, float]] = {}

    def create(
        self, principal: str, method: str, host: str, credential_salts: frozenset[bytes] = frozenset()
    ) -> tuple[str, ConsoleSession]:
        """A new session; returns (token for the cookie, session)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            now = self._clock()
            session = ConsoleSession(
                principal, method, host, secrets.token_urlsafe(TOKEN_BYTES), now + self.lifetime_s, credential_salts
            )
            self._expire(now)
            while len(self._sessions) >= self.sessions_max:
                least_recent = min(self._sessions, key=lambda key: self._sessions[key][1])
                del self._sessions[least_recent]
            self._sessions[_key(token)] = (session, now)
        return token, session

    def get(self, token: str) -> ConsoleSession | None:
        """The live session the token names (its use refreshes the idle limit), or None."""
        if not token:
            return None
        key = _key(token)
        with self._lock:
            now = self._clock()
            found = self._sessions.get(key)
            if found is None:
                return None
            session, last_use = found
            if now >= session.expires_s or now >= last_use + self.idle_s:
                del self._sessions[key]
                return None
            self._sessions[key] = (session, now)
            return session

    def end(self, token: str) -> ConsoleSession | None:
        """End the session the token names (logout); the ended session, or None."""
        with self._lock:
            found = self._sessions.pop(_key(token), None)
        return None if found is None else found[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        """Drop ended sessions. Under the lock."""
        ended = [
            key for key, (session, last_use) in self._sessions.items()
            if now >= session.expires_s or now >= last_use + self.idle_s
        ]
        for key in ended:
            del self._sessions[key]
