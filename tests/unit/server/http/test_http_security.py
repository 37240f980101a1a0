"""The node's real HTTP server with security on, spoken to over HTTP: the login flow, sessions,
CSRF, rate limits, ACL-filtered pages and authenticated scrapes; and with security off, nothing
changed. (TLS on the port arrives with the TLS branch; nothing here depends on it.)"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import urllib.parse

import pytest
from freshet.server.security.rate_limit import LoginRateLimiter

from tests.support.console_server import console_server
from tests.support.secure_images import password

SESSION = "__Host-freshet-session"
LOGIN = "__Host-freshet-login"


class Browser:
    """A tiny cookie-keeping HTTP client that does not follow redirects. Not thread-safe."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        connection.close()
        return response, text

    def login_form_token(self) -> str:
        response, page = self.request("GET", "/login")
        assert response.status == 200
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    def login(self, user: str, secret: str):
        return self.request("POST", "/login", {"user": user, "password": secret, "csrf": self.login_form_token()})


def audit_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]


@pytest.fixture
def server():
    with console_server(limiter=LoginRateLimiter(failures_max=3, window_s=60)) as running:
        yield running


def test_the_console_redirects_to_login_refuses_a_bad_password_and_shows_acl_filtered_content(server, caplog):
    browser = Browser(server.port)
    response, _ = browser.request("GET", "/")
    assert response.status == 303 and response.headers["Location"] == "/login"

    response, page = browser.request("GET", "/login")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(LOGIN + "=") and all(a in cookie for a in ("HttpOnly", "Secure", "SameSite=Strict"))
    assert response.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert 'type="password"' in page

    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        response, page = browser.login("alice", "wrong")
        assert response.status == 401 and "invalid user name or password" in page and "Traceback" not in page
        assert SESSION not in browser.cookies
        response, _ = browser.login("alice", password("alice"))
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = next(c for c in response.headers.get_all("Set-Cookie") if c.startswith(SESSION))
    assert all(a in cookie for a in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=28800"))
    lines = audit_lines(caplog)
    assert [(line["event"], line.get("user") or line.get("principal")) for line in lines] == [
        ("authentication_failed", "alice"), ("authentication_succeeded", "User:alice"),
    ]
    assert "wrong" not in caplog.text and password("alice") not in caplog.text

    response, page = browser.request("GET", "/")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert "<h3>orders " in page and "<h3>payments " in page and "<h3>audit-log " not in page
    assert "<td>billing</td>" in page and "<td>shipping</td>" not in page
    assert "User:alice is not authorized to Describe the cluster: brokers are not shown." in page
    assert "localhost:9001" not in page

    response, _ = browser.request("GET", "/login")              # logged in: the form is not needed
    assert response.status == 303 and response.headers["Location"] == "/"


def test_logout_needs_the_sessions_csrf_token_and_ends_the_session(server, caplog):
    browser = Browser(server.port)
    browser.login("bob", password("bob"))
    _, page = browser.request("GET", "/")
    assert "localhost:9001" in page and "<h3>orders " not in page       # cluster yes, topics no
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        response, text = browser.request("POST", "/logout", {"csrf": "forged"})
    assert response.status == 403 and text.startswith("refused:")
    assert audit_lines(caplog)[-1]["event"] == "csrf_rejected"
    response, _ = browser.request("GET", "/")
    assert response.status == 200                                        # still logged in

    response, _ = browser.request("POST", "/logout", {"csrf": token})
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert SESSION not in browser.cookies
    response, _ = browser.request("GET", "/")
    assert response.status == 303


def test_a_login_without_the_forms_own_token_is_refused(server):
    """Login CSRF: a foreign page posting credentials has neither the login cookie nor its value."""
    browser = Browser(server.port)
    response, page = browser.request("POST", "/login", {"user": "admin", "password": password("admin"), "csrf": "x"})
    assert response.status == 403 and "log in again" in page
    assert SESSION not in browser.cookies


def test_failed_logins_from_one_address_are_rate_limited(server):
    browser = Browser(server.port)
    for _ in range(3):
        assert browser.login("eve", "guess")[0].status == 401
    response, page = browser.login("eve", password("eve"))
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    assert "too many failed logins" in page and SESSION not in browser.cookies


def test_bad_form_posts_get_one_line_answers(server):
    browser = Browser(server.port)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/login", body=b"x" * 9000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    assert response.status == 413 and response.read() == b"a form is at most 8192 bytes\n"
    connection.close()
    response, text = browser.request("POST", "/login", headers={"Content-Type": "text/plain", "Content-Length": "0"})
    assert response.status == 415 and text.count("\n") == 1


def test_metrics_and_status_need_basic_auth_and_describe_on_the_cluster(server, caplog):
    browser = Browser(server.port)
    response, _ = browser.request("GET", "/metrics")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith('Basic realm="freshet"')

    def basic(user: str, secret: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    response, text = browser.request("GET", "/metrics", headers=basic("scraper", password("scraper")))
    assert response.status == 200 and "freshet_active_controller_count 1.0" in text
    response, text = browser.request("GET", "/status", headers=basic("scraper", password("scraper")))
    assert response.status == 200 and json.loads(text)["node_id"] == 1
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        response, text = browser.request("GET", "/metrics", headers=basic("alice", password("alice")))
    assert response.status == 403 and text == "User:alice is not authorized to Describe the cluster\n"
    assert audit_lines(caplog)[-1]["event"] == "authorization_denied"
    response, _ = browser.request("GET", "/metrics", headers=basic("scraper", "wrong"))
    assert response.status == 401

    browser.login("bob", password("bob"))                                # a session works too
    response, text = browser.request("GET", "/metrics")
    assert response.status == 200 and "freshet_http_authentications_total" in text

    for path in ("/healthz", "/readyz"):                                 # probes stay open
        response, text = Browser(server.port).request("GET", path)
        assert response.status == 200 and text in ("ok\n", "ready\n")


def test_with_security_off_everything_is_open_as_before():
    with console_server(secure=False) as server:
        browser = Browser(server.port)
        response, page = browser.request("GET", "/")
        assert response.status == 200 and "<h3>audit-log " in page and "signed in" not in page
        assert "Cache-Control" not in response.headers and "Set-Cookie" not in response.headers
        response, text = browser.request("GET", "/metrics")
        assert response.status == 200 and "freshet_http_authentications" not in text
        assert browser.request("GET", "/login")[0].status == 404
        assert browser.request("POST", "/login", {"user": "a"})[0].status == 501
