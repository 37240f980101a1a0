"""The console's login with security on: passwords against SCRAM credentials, sessions, CSRF
tokens, rate limits, audit lines, and pages filtered by the same ACLs the CLI obeys."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from freshet.metadata import commands
from freshet.metadata.security import CLUSTER_NAME, ScramCredential, ScramMechanism
from freshet.server.http import console, console_pages
from freshet.server.http.login import (
    HttpGuard,
    basic_credentials,
    cookies_of,
    verify_password,
)
from freshet.server.http.sessions import ConsoleSessions
from freshet.server.security.authorizer import Authorizer, Caller
from freshet.server.security.rate_limit import LoginRateLimiter
from freshet.server.security.tls import principal_from_peercert
from prometheus_client import CollectorRegistry

from tests.support.metadata_script import Script
from tests.support.secure_images import GROUPS, SETTINGS, password, secure_image

IMAGE = secure_image()
SESSION = "__Host-freshet-session"
STATUS = {"node_id": 1, "roles": ["broker", "controller"], "ready": True, "controller_id": 1,
          "quorum": {"leader": 1, "term": 5}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def guard(clock=None, registry=None, failures_max=3) -> HttpGuard:
    clock = clock or FakeClock()
    authorizer = Authorizer(SETTINGS, lambda: IMAGE, registry)
    return HttpGuard(
        authorizer, lambda: IMAGE, ConsoleSessions(lifetime_s=100, idle_s=30, sessions_max=3, clock=clock),
        LoginRateLimiter(failures_max=failures_max, window_s=60, clock=clock), registry,
    )


def audit_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]


# -- passwords -------------------------------------------------------------------------------------


def test_a_password_is_verified_against_either_scram_mechanism_and_unknown_users_fail():
    assert verify_password(IMAGE, "alice", password("alice"))        # SCRAM-SHA-256 credential
    assert verify_password(IMAGE, "bob", password("bob"))            # SCRAM-SHA-512 credential
    assert not verify_password(IMAGE, "alice", password("bob"))
    assert not verify_password(IMAGE, "alice", "")
    assert not verify_password(IMAGE, "mallory", password("mallory"))


def test_header_parsers_take_only_what_they_should():
    token = base64.b64encode(b"scraper:pw:with:colons").decode()
    assert basic_credentials(f"Basic {token}") == ("scraper", "pw:with:colons")
    assert basic_credentials("Bearer abc") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert cookies_of('a=1; b="2"; a=3; junk') == {"a": "1", "b": "2"}
    subject = ((("countryName", "NO"),), (("commonName", "carol"),))
    assert principal_from_peercert({"subject": subject}) == "User:carol"
    assert principal_from_peercert({}) is None and principal_from_peercert(None) is None
    assert principal_from_peercert({"subject": ((("organizationName", "x"),),)}) is None


# -- login, sessions, audit ------------------------------------------------------------------------


def test_login_success_and_failure_are_audited_without_the_password(caplog):
    registry = CollectorRegistry()
    g = guard(registry=registry)
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        bad = g.login("alice", "not-her-password", "10.0.0.7")
        good = g.login("alice", password("alice"), "10.0.0.7")
    assert not bad.ok and bad.message == "invalid user name or password" and bad.retry_after_s == 0
    assert good.ok and good.session.principal == "User:alice" and good.session.method == "password"
    assert g.session({"__Host-freshet-session": good.token}) is good.session
    lines = audit_lines(caplog)
    assert lines == [
        {"event": "authentication_failed", "user": "alice", "host": "10.0.0.7", "method": "password",
         "reason": "bad credentials", "via": "http"},
        {"event": "authentication_succeeded", "principal": "User:alice", "host": "10.0.0.7",
         "method": "password", "via": "http"},
    ]
    assert "not-her-password" not in caplog.text and password("alice") not in caplog.text
    assert registry.get_sample_value("freshet_http_authentications_total", {"method": "password", "outcome": "failure"}) == 1


def test_failed_logins_are_rate_limited_per_address_before_the_password_is_checked(caplog):
    clock = FakeClock()
    g = guard(clock, failures_max=3)
    for _ in range(3):
        assert not g.login("alice", "guess", "10.0.0.9").ok
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        refused = g.login("alice", password("alice"), "10.0.0.9")   # even the right password waits
    assert not refused.ok and refused.retry_after_s == 60
    assert audit_lines(caplog)[-1]["reason"] == "too many failed attempts"
    assert g.login("alice", password("alice"), "10.0.0.10").ok      # another address is not held up
    clock.now += 61
    assert g.login("alice", password("alice"), "10.0.0.9").ok


def test_sessions_end_by_logout_idle_time_lifetime_and_table_bound(caplog):
    clock = FakeClock()
    g = guard(clock)
    token = g.login("bob", password("bob"), "h").token
    cookies = {"__Host-freshet-session": token}
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        g.logout(cookies, "h")
    assert g.session(cookies) is None
    assert audit_lines(caplog) == [{"event": "logout", "principal": "User:bob", "host": "h", "via": "http"}]

    token = g.login("bob", password("bob"), "h").token
    clock.now += 29
    assert g.session({"__Host-freshet-session": token}) is not None   # used: idle limit restarts
    clock.now += 29
    assert g.session({"__Host-freshet-session": token}) is not None
    clock.now += 31
    assert g.session({"__Host-freshet-session": token}) is None       # idle for 31 s > 30 s

    token = g.login("bob", password("bob"), "h").token
    for _ in range(4):
        clock.now += 25
        found = g.session({"__Host-freshet-session": token})
    assert found is None                                               # 100 s lifetime, used or not

    tokens = [g.login("bob", password("bob"), "h").token for _ in range(4)]
    assert len(g.sessions) == 3
    assert g.session({"__Host-freshet-session": tokens[0]}) is None    # least recently used went
    assert g.session({"__Host-freshet-session": tokens[3]}) is not None
    assert g.session({"__Host-freshet-session": "forged"}) is None and g.session({}) is None


def test_each_session_has_its_own_csrf_token_distinct_from_the_session_token():
    g = guard()
    first, second = g.login("bob", password("bob"), "h"), g.login("bob", password("bob"), "h")
    assert first.session.csrf_token != second.session.csrf_token
    assert first.session.csrf_token != first.token
    assert first.session.csrf_matches(first.session.csrf_token)
    assert not first.session.csrf_matches(second.session.csrf_token)
    assert not first.session.csrf_matches("")


def test_basic_authentication_of_scrapers_shares_the_rate_limit_and_needs_describe_cluster(caplog):
    g = guard(failures_max=2)
    header = "Basic " + base64.b64encode(f"scraper:{password('scraper')}".encode()).decode()
    assert g.basic(header, "h1") == ("User:scraper", 0)
    assert g.may_scrape(Caller("User:scraper", "h1"))
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        assert not g.may_scrape(Caller("User:alice", "h1"))
    assert audit_lines(caplog)[-1] == {"event": "authorization_denied", "principal": "User:alice", "host": "h1",
                                       "operation": "Describe", "resource_type": "cluster", "resource": CLUSTER_NAME}
    wrong = "Basic " + base64.b64encode(b"scraper:wrong").decode()
    assert g.basic(wrong, "h2") == (None, 0)
    assert g.login("scraper", "wrong", "h2").retry_after_s == 0
    principal, retry_after_s = g.basic(header, "h2")
    assert principal is None and retry_after_s > 0


# -- what a principal sees -------------------------------------------------------------------------


def viewer(g: HttpGuard, principal: str) -> console.Viewer:
    token, session = g.sessions.create(principal, "password", "h")
    caller = Caller(principal, "h")
    return console.Viewer(
        principal, session.csrf_token,
        allows=lambda op, rt, name: g.allows(caller, op, rt, name),
        refused=lambda op, rt, name: g.refused_view(session, caller, op, rt, name),
    )


def overview(v: console.Viewer | None) -> str:
    """The overview as the server renders it for `v` (None: security off)."""
    chrome = console_pages.Chrome(v, v.csrf_token if v is not None else "form-token")
    return console_pages.overview_page(chrome, IMAGE, STATUS, GROUPS).decode()


def page_for(g: HttpGuard, principal: str) -> str:
    return overview(viewer(g, principal))


def topics_on(page: str) -> set[str]:
    return {name for name in ("orders", "payments", "audit-log") if f"<h3>{name} " in page}


@pytest.mark.parametrize(
    ("principal", "topics", "groups", "cluster"),
    [
        ("User:alice", {"orders", "payments"}, {"billing"}, False),   # literal + prefixed Read
        ("User:bob", set(), set(), True),                               # cluster only
        ("User:eve", {"orders", "audit-log"}, set(), False),            # deny beats the wildcard allow
        ("User:admin", {"orders", "payments", "audit-log"}, {"billing", "shipping"}, True),  # super user
        ("User:nobody", set(), set(), False),                           # no ACL: deny
    ],
)
def test_the_page_shows_only_what_the_principal_may_describe(principal, topics, groups, cluster):
    page = page_for(guard(), principal)
    assert topics_on(page) == topics
    assert {g for g in ("billing", "shipping") if f"<td>{g}</td>" in page} == groups
    assert f'signed in as <b id="principal">{principal}</b>' in page
    denial = f"{principal} is not authorized to Describe the cluster: brokers are not shown."
    if cluster:
        assert "localhost:9001" in page
        assert "Raft leader: 1, term 5" in page and denial not in page
    else:
        assert "localhost:9001" not in page and "Raft leader" not in page
        assert denial in page and page.count('class="denied"') == 2
        assert "Traceback" not in page
    assert f"{len(topics)} topics, {len(topics)} partitions" in page
    if not topics:
        assert "no topic that you may Describe" in page


def test_a_refused_panel_is_audited_once_per_session_not_on_every_refresh(caplog):
    g = guard()
    v = viewer(g, "User:alice")
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        for _ in range(3):
            overview(v)
    denials = [line for line in audit_lines(caplog) if line["event"] == "authorization_denied"]
    assert denials == [{"event": "authorization_denied", "principal": "User:alice", "host": "h",
                        "operation": "Describe", "resource_type": "cluster", "resource": CLUSTER_NAME}]


def test_the_logout_form_carries_the_sessions_csrf_token_and_the_page_without_viewer_has_none():
    g = guard()
    v = viewer(g, "User:bob")
    page = overview(v)
    assert f'<input type="hidden" name="csrf" value="{v.csrf_token}">' in page
    assert 'action="/logout"' in page
    assert "/logout" not in overview(None)


def test_the_login_page_escapes_and_embeds_the_login_token():
    page = console_pages.login_page("tok<en>", "invalid user name or password", "User:<carol>").decode()
    assert 'name="csrf" value="tok&lt;en&gt;"' in page
    assert 'type="password" name="password"' in page and 'action="/login"' in page
    assert "User:&lt;carol&gt;" in page and "invalid user name or password" in page


def test_a_password_change_or_user_deletion_ends_the_users_sessions(caplog):
    current = {"image": IMAGE}
    clock = FakeClock()
    g = HttpGuard(
        Authorizer(SETTINGS, lambda: current["image"]), lambda: current["image"],
        ConsoleSessions(clock=clock), LoginRateLimiter(clock=clock),
    )
    alice = {SESSION: g.login("alice", password("alice"), "h").token}
    bob = {SESSION: g.login("bob", password("bob"), "h").token}
    script = Script(IMAGE)
    script.rid = lambda: f"later-{script.offset}"      # fresh request ids (the image remembers req-N)
    rotated = ScramCredential.from_password(ScramMechanism.SCRAM_SHA_256, "new-pw", 4096)
    script.ok(commands.upsert_user_credential(script.rid(), script.image.controller_epoch, "alice", rotated))
    current["image"] = script.image
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        assert g.session(alice) is None
    assert g.session(bob) is not None                                  # other users keep theirs
    assert audit_lines(caplog) == [{"event": "logout", "principal": "User:alice", "host": "h", "via": "http",
                                    "reason": "credentials changed"}]
    assert g.session({SESSION: g.login("alice", "new-pw", "h").token}) is not None
    for mechanism in ScramMechanism:
        if script.image.scram_credential("bob", mechanism) is not None:
            script.ok(commands.delete_user_credential(script.rid(), script.image.controller_epoch, "bob", mechanism))
    current["image"] = script.image
    assert g.session(bob) is None
