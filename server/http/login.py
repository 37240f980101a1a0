"""Who is calling the HTTP port when security is on, and whether they may see what they ask for.

Owns `HttpGuard`: the console's login (a user's password checked against the SCRAM credential in
the node's current metadata image, either mechanism; or a verified client certificate), its
sessions (`ConsoleSessions`), HTTP Basic authentication of /metrics and /status scrapers, the
per-client-address rate limit of failed attempts (`LoginRateLimiter`, shared by form and Basic),
and the audit trail: one line per login success or failure, logout and refused view, never a
password. Authorization itself is the node's `Authorizer` (the same ACLs the CLI obeys).

What it answers is plain data (`LoginOutcome`, a principal); HTTP plumbing (cookies, redirects,
status codes) stays in server.py.

Imports: standard library, prometheus_client, freshet.metadata (image, security),
freshet.server.security (authorizer, rate_limit), freshet.server.http.sessions.
Thread-safety: thread-safe (its parts are; the image is read once per decision).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import threading
from collections.abc import Callable, Mapping

from freshet.metadata.image import MetadataImage
from freshet.metadata.security import (
    CLUSTER_NAME,
    SCRAM_ITERATIONS_DEFAULT,
    Operation,
    ResourceType,
    ScramCredential,
    ScramMechanism,
    user_principal,
)
from freshet.server.http.sessions import ConsoleSession, ConsoleSessions
from freshet.server.security.authorizer import Authorizer, Caller, audit
from freshet.server.security.rate_limit import LoginRateLimiter
from prometheus_client import CollectorRegistry, Counter

#: The session cookie. `__Host-` makes browsers accept it only with Secure, Path=/ and no Domain,
#: so a sibling host cannot plant or overwrite it.
SESSION_COOKIE = "__Host-freshet-session"
#: The login form's CSRF cookie (double submit: the form must carry the same random value), so a
#: foreign page cannot log a browser in as the attacker's user.
LOGIN_COOKIE = "__Host-freshet-login"
#: Longest user name / password accepted at all (the form is bounded in server.py too).
CREDENTIAL_CHARS_MAX = 1024


def verify_password(image: MetadataImage, user: str, password: str) -> bool:
    """Whether `password` is `user`'s, by any SCRAM credential the image holds for the user.

    An unknown user costs the same PBKDF2 work as a known one, so response times do not tell a
    guesser which user names exist."""
    credentials = [image.scram_credential(user, mechanism) for mechanism in ScramMechanism]
    found = [credential for credential in credentials if credential is not None]
    if not found:
        _dummy_credential().verify_password(password)
        return False
    return any(credential.verify_password(password) for credential in found)


_dummy: list[ScramCredential] = []
_dummy_lock = threading.Lock()


def _dummy_credential() -> ScramCredential:
    with _dummy_lock:
        if not _dummy:
            _dummy.append(ScramCredential.from_password(ScramMechanism.SCRAM_SHA_512, "", SCRAM_ITERATIONS_DEFAULT))
        return _dummy[0]


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header value, or None if it is not one."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    if not colon:
        return None
    return user, password


def cookies_of(header: str) -> dict[str, str]:
    """The cookies of a `Cookie:` header value (first value of a repeated name wins)."""
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, equals, value = part.strip().partition("=")
        if equals and name and name not in found:
            found[name] = value.strip().strip('"')
    return found


@dataclasses.dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt came to. Thread-safe (immutable).

    Exactly one holds: `token` (success: the new session's cookie value, with `session`),
    `retry_after_s` > 0 (refused unchecked: too many recent failures from this address), or
    neither (wrong user name or password; `message` says so without saying which)."""

    token: str | None = None
    session: ConsoleSession | None = None
    retry_after_s: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.token is not None


class HttpGuard:
    """Authentication and authorization of HTTP requests for one node. Thread-safe."""

    def __init__(
        self,
        authorizer: Authorizer,
        image: Callable[[], MetadataImage],
        sessions: ConsoleSessions | None = None,
        limiter: LoginRateLimiter | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.authorizer = authorizer
        self._image = image
        self.sessions = sessions if sessions is not None else ConsoleSessions()
        self.limiter = limiter if limiter is not None else LoginRateLimiter()
        self._attempts = Counter(
            "freshet_http_authentications",
            "HTTP authentications (console login, Basic scrapes, certificates) by method and outcome",
            ["method", "outcome"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        """Whether security is on (else every request is served as before, unauthenticated)."""
        return self.authorizer.enabled

    # -- console --------------------------------------------------------------------------------

    def login(self, user: str, password: str, host: str) -> LoginOutcome:
        """Check a login form's user and password; a session on success. Audited either way."""
        retry_after_s = self.limiter.retry_after_s(host)
        if retry_after_s > 0:
            self._failed("password", user, host, "too many failed attempts")
            return LoginOutcome(retry_after_s=retry_after_s, message="too many failed logins from this address: try again later")
        if not self._password_matches(user, password):
            self.limiter.failed(host)
            self._failed("password", user, host, "bad credentials")
            return LoginOutcome(message="invalid user name or password")
        self.limiter.succeeded(host)
        token, session = self.sessions.create(user_principal(user), "password", host, self._salts(user))
        self._succeeded("password", session.principal, host)
        return LoginOutcome(token=token, session=session)

    def certificate_login(self, principal: str, host: str) -> tuple[str, ConsoleSession]:
        """A session for the principal of a verified client certificate (no form). Audited."""
        token, session = self.sessions.create(principal, "certificate", host)
        self._succeeded("certificate", principal, host)
        return token, session

    def session(self, cookies: Mapping[str, str]) -> ConsoleSession | None:
        """The live session named by the request's session cookie, or None. A password session
        ends once the user's credentials changed or the user was deleted (audited as a logout):
        a changed password logs out every browser that used the old one."""
        token = cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(token)
        if session is None or session.method != "password":
            return session
        user = session.principal.partition(":")[2]
        if self._salts(user) != session.credential_salts:
            self.sessions.end(token)
            audit("logout", principal=session.principal, host=session.host, via="http", reason="credentials changed")
            return None
        return session

    def logout(self, cookies: Mapping[str, str], host: str) -> None:
        ended = self.sessions.end(cookies.get(SESSION_COOKIE, ""))
        if ended is not None:
            audit("logout", principal=ended.principal, host=host, via="http")

    def refused_view(
        self, session: ConsoleSession, caller: Caller, operation: Operation, resource_type: ResourceType, name: str
    ) -> None:
        """Audit a console view the session's caller may not see, once per session and view."""
        key = (operation, resource_type, name)
        if key in session.audited:
            return
        session.audited.add(key)
        self.authorizer.denied(caller, operation, resource_type, name)

    def allows(self, caller: Caller, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        return self.authorizer.allows(operation, resource_type, name, caller)

    # -- scrapers (/metrics, /status) -----------------------------------------------------------

    def basic(self, header: str, host: str) -> tuple[str | None, float]:
        """Authenticate an `Authorization: Basic` header: (principal, 0) on success, (None,
        retry-after seconds) when refused unchecked, (None, 0) for bad credentials. Failures are
        audited; successes are counted but not audited (a scraper authenticates every scrape)."""
        retry_after_s = self.limiter.retry_after_s(host)
        credentials = basic_credentials(header)
        user = "" if credentials is None else credentials[0]
        if retry_after_s > 0:
            self._failed("basic", user, host, "too many failed attempts")
            return None, retry_after_s
        if credentials is None or not self._password_matches(*credentials):
            self.limiter.failed(host)
            self._failed("basic", user, host, "bad credentials")
            return None, 0.0
        self.limiter.succeeded(host)
        self._attempts.labels("basic", "success").inc()
        return user_principal(user), 0.0

    def may_scrape(self, caller: Caller) -> bool:
        """Whether the caller may read /metrics and /status (Describe on the cluster); audits a no."""
        if self.authorizer.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME, caller):
            return True
        self.authorizer.denied(caller, Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
        return False

    # -- helpers --------------------------------------------------------------------------------

    def _salts(self, user: str) -> frozenset[bytes]:
        """The salts of the user's credentials in the current image (fresh on every change)."""
        return frozenset(credential.salt for credential in self._image().users.get(user, {}).values())

    def _password_matches(self, user: str, password: str) -> bool:
        if not user or len(user) > CREDENTIAL_CHARS_MAX or len(password) > CREDENTIAL_CHARS_MAX:
            return False
        return verify_password(self._image(), user, password)

    def _succeeded(self, method: str, principal: str, host: str) -> None:
        self._attempts.labels(method, "success").inc()
        audit("authentication_succeeded", principal=principal, host=host, method=method, via="http")

    def _failed(self, method: str, user: str, host: str, reason: str) -> None:
        self._attempts.labels(method, "failure").inc()
        audit(
            "authentication_failed", user=user[:CREDENTIAL_CHARS_MAX // 4], host=host, method=method,
            reason=reason, via="http",
        )
