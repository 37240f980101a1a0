"""The console's pages and actions over HTTP: routing, rendering, CSRF, the confirmation step, and
that an action runs the node's real admin handler as the logged-in principal, so a principal
without the right gets the CLI's refusal line and nothing changes.

Method: the node's real HTTP server in-process (tests/support/console_server.py) over the image of
tests/support/secure_images.py; the real ControllerService (its handlers, status.handler, the
authorizer) over a recording fake controller, on an event loop in a thread (as in the node);
plain http.client requests that carry the session cookies by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import re
import threading
import types
import urllib.parse

import pytest
from freshet.server import status
from freshet.server.controller.service import ControllerService
from freshet.server.http import console_pages
from freshet.server.http.console_data import actions
from freshet.server.http.console_data.backend import ActionRefused, ConsoleBackend, node_transport
from freshet.server.http.console_data.history import History
from freshet.server.metrics import BrokerMetrics
from freshet.server.security.authorizer import Authorizer, Caller
from freshet.v1 import common_pb2, controller_pb2
from prometheus_client import CollectorRegistry

from tests.support.console_server import console_server
from tests.support.fake_log_dirs import FakeLogDirs
from tests.support.ports import free_ports
from tests.support.secure_images import SETTINGS, password, secure_image


class FakeController:
    """The active controller behind the ControllerService: records what it was asked."""

    is_active = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def delete_topics(self, request):
        self.calls.append(("delete_topics", list(request.names)))
        return controller_pb2.DeleteTopicsResponse(results=[
            controller_pb2.DeleteTopicResult(name=name, error=status.ok_detail()) for name in request.names
        ])

    async def create_topics(self, request):
        self.calls.append(("create_topics", [(t.name, t.num_partitions) for t in request.topics]))
        return controller_pb2.CreateTopicsResponse(results=[
            controller_pb2.CreateTopicResult(name=t.name, error=status.ok_detail(), num_partitions=t.num_partitions,
                                             replication_factor=1) for t in request.topics
        ])

    async def create_partitions(self, request):
        self.calls.append(("create_partitions", [(t.topic, t.count) for t in request.topics]))
        return controller_pb2.CreatePartitionsResponse(results=[
            controller_pb2.CreatePartitionsResult(
                topic=t.topic, error=status.detail(common_pb2.INVALID_PARTITIONS, "orders has 3 partitions; it can only grow"))
            for t in request.topics
        ])


@contextlib.contextmanager
def admin_on_a_loop(secure: bool):
    """A ConsoleBackend over the real ControllerService (security on or off) and its fake controller.
    Its transport is a fake that answers DescribeLogDirs only (the topic page's logs): these tests act
    on topics only."""
    image = secure_image()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    controller = FakeController()
    config = types.SimpleNamespace(node_id=1, request_timeout_ms=2000, controller_listeners={}, broker_configs={})
    authorizer = Authorizer(SETTINGS if secure else type(SETTINGS)(), lambda: image, CollectorRegistry())
    service = ControllerService(config, types.SimpleNamespace(image=image), None, controller, None, lambda: 1, authorizer)
    backend = ConsoleBackend(node_id=1, image=lambda: image, authorizer=authorizer, loop=loop,
                             controller_service=service, transport=FakeLogDirs())
    try:
        yield backend, controller
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_an_action_runs_the_real_handler_as_the_viewer_and_a_refusal_is_the_clis_line():
    with admin_on_a_loop(secure=True) as (backend, controller):
        with pytest.raises(ActionRefused) as refused:
            actions.delete_topic(backend, Caller("User:alice", "127.0.0.1"), "orders")
        assert refused.value.message == "User:alice is not authorized to Delete topic 'orders'"
        assert controller.calls == []                              # refused before any side effect
        actions.delete_topic(backend, Caller("User:admin", "127.0.0.1"), "orders")
        assert controller.calls == [("delete_topics", ["orders"])]
        with pytest.raises(ActionRefused) as invalid:               # a per-result error
            actions.add_partitions(backend, Caller("User:admin", "127.0.0.1"), "orders", 2)
        assert str(invalid.value) == "INVALID_PARTITIONS: orders has 3 partitions; it can only grow"


def test_without_security_everyone_may_act_as_with_the_cli():
    with admin_on_a_loop(secure=False) as (backend, controller):
        result = actions.create_topic(backend, Caller(), "fresh", 4, None)
        assert result.partitions == 4
        assert controller.calls == [("create_topics", [("fresh", 4)])]


# -- over HTTP -------------------------------------------------------------------------------------


class Browser:
    """Requests to one server, keeping its cookies (Secure ones included: 127.0.0.1 only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        connection.close()
        return response.status, text, dict(response.getheaders())

    def log_in(self, user: str) -> None:
        _, page, _ = self.request("GET", "/login")
        status_code, _, _ = self.request("POST", "/login", {"user": user, "password": password(user), "csrf": csrf_of(page)})
        assert status_code == 303


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@contextlib.contextmanager
def server_with_admin(secure: bool):
    with admin_on_a_loop(secure) as (backend, controller), console_server(secure=secure, backend=backend) as server:
        yield Browser(server.port), controller


def test_every_page_renders_and_the_topic_search_filters_on_the_server():
    with server_with_admin(secure=False) as (browser, _):
        for path in ("/", "/brokers", "/topics", "/topics/orders"):
            code, page, headers = browser.request("GET", path)
            assert code == 200, path
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert '<a href="/topics">Topics</a>' in page or 'href="/topics" class="current"' in page
        _, page, _ = browser.request("GET", "/topics?search=PAY")
        assert re.findall(r'<a href="/topics/([^"]+)">', page) == ["payments"]
        assert "1 of 3 topics matching" in page
        _, page, _ = browser.request("GET", "/topics/orders")
        assert '<td title="' in page and ">retention.ms</td>" in page and "default" in page
        code, page, _ = browser.request("GET", "/topics/nope%3Cb%3E")
        assert code == 404 and "no topic nope&lt;b&gt;" in page


def test_an_action_needs_the_form_token_then_a_confirmation_then_runs():
    with server_with_admin(secure=False) as (browser, controller):
        _, page, _ = browser.request("GET", "/topics/orders")
        token = csrf_of(page)
        code, _, _ = browser.request("POST", "/actions/delete-topic", {"topic": "orders", "csrf": "forged"})
        assert code == 403 and controller.calls == []
        code, page, _ = browser.request("POST", "/actions/delete-topic", {"topic": "orders", "csrf": token})
        assert code == 200 and "Delete topic orders and every record in it?" in page
        assert controller.calls == []                              # asking is not doing
        code, page, _ = browser.request("POST", "/actions/delete-topic",
                                        {"topic": "orders", "csrf": token, "confirmed": "yes"})
        assert code == 200 and "deleted topic orders" in page
        assert controller.calls == [("delete_topics", ["orders"])]
        code, page, _ = browser.request("POST", "/actions/add-partitions", {"topic": "orders", "count": "two", "csrf": token})
        assert code == 400 and "count must be a whole number, not &#39;two&#39;" in page


def test_with_security_a_principal_without_the_right_sees_the_refusal_and_nothing_changes():
    with server_with_admin(secure=True) as (browser, controller):
        code, _, headers = browser.request("GET", "/topics")
        assert code == 303 and headers["Location"] == "/login"
        code, _, _ = browser.request("POST", "/actions/delete-topic", {"topic": "orders", "csrf": "x"})
        assert code == 403                                          # no session: no action
        browser.log_in("alice")
        _, page, _ = browser.request("GET", "/topics")
        assert re.findall(r'<a href="/topics/([^"]+)">', page) == ["orders", "payments"]
        token = csrf_of(page)
        code, page, _ = browser.request("POST", "/actions/delete-topic",
                                        {"topic": "orders", "csrf": token, "confirmed": "yes"})
        assert code == 409 and "User:alice is not authorized to Delete topic &#39;orders&#39;" in page
        assert controller.calls == []
        _, page, _ = browser.request("GET", "/brokers")
        assert "User:alice is not authorized to Describe the cluster" in page


def test_the_admin_may_act_with_security_on():
    with server_with_admin(secure=True) as (browser, controller):
        browser.log_in("admin")
        _, page, _ = browser.request("GET", "/topics/orders")
        code, page, _ = browser.request("POST", "/actions/delete-topic",
                                        {"topic": "orders", "csrf": csrf_of(page), "confirmed": "yes"})
        assert code == 200 and "deleted topic orders" in page
        assert controller.calls == [("delete_topics", ["orders"])]


def test_the_browser_and_group_pages_say_why_they_cannot_answer_in_one_line():
    with console_server(secure=False) as server:                   # no data layer: a controller-only node
        browser = Browser(server.port)
        code, page, _ = browser.request("GET", "/topics/orders/messages?offset=ten")
        assert code == 200 and 'id="browse-error">offset must be a whole number, not &#39;ten&#39;<' in page
        code, page, _ = browser.request("GET", "/topics/orders/messages?time=yesterday")
        assert "time must be a date and time such as 2026-12-07T09:00, not &#39;yesterday&#39;" in page
        code, page, _ = browser.request("GET", "/topics/orders/messages")
        assert "this node has no broker role, so no message browser" in page
        code, page, _ = browser.request("GET", "/groups")
        assert code == 200 and "this node has no broker role, so no view of the consumer groups" in page
        code, page, _ = browser.request("GET", "/topics/missing/messages")
        assert code == 404


def test_a_viewer_cannot_open_the_browser_of_a_topic_it_may_not_describe():
    with server_with_admin(secure=True) as (browser, _):
        browser.log_in("alice")
        code, page, _ = browser.request("GET", "/topics/audit-log/messages")
        assert code == 404 and "no topic audit-log (or you may not Describe it)" in page
        code, _, _ = browser.request("GET", "/topics/audit-log")
        assert code == 404                                          # the same answer as for a missing topic


def test_charts_show_the_sampled_series_as_inline_svg_only_for_what_the_viewer_may_describe():
    metrics = BrokerMetrics(CollectorRegistry())
    groups_here = [{"group": "billing", "lag_topics": [
        {"topic": "orders", "lag_records": 42, "lag_seconds": 3.5, "is_alerting": False}]}]
    clock = iter(range(1_700_000_000, 1_700_001_000, 10))
    history = History(metrics, lambda: groups_here, clock=lambda: float(next(clock)))
    for topic in ("orders", "audit-log"):
        metrics.bytes_in.labels(topic).inc(1000)
    history.sample()
    for topic in ("orders", "audit-log"):
        metrics.bytes_in.labels(topic).inc(5000)
    history.sample()
    peer = types.SimpleNamespace(host="127.0.0.1", port=free_ports(1)[0], is_fenced=False)    # nothing listens there
    image = types.SimpleNamespace(brokers={1: types.SimpleNamespace(host="127.0.0.1", port=1, is_fenced=False), 2: peer})
    transport = node_transport(f"127.0.0.1:{peer.port}", None)
    backend = types.SimpleNamespace(history=history, node_id=1, image=lambda: image, transport=transport)
    with console_server(secure=True, backend=backend) as server:
        browser = Browser(server.port)
        browser.log_in("alice")                                     # Describe orders and billing, not audit-log
        code, page, _ = browser.request("GET", "/charts")
        assert code == 200
        labels = re.findall(r'<svg [^>]*aria-label="([^"]+)"', page)
        assert labels == ["orders: bytes in", "billing on orders: lag", "billing on orders: lag time"]
        assert ">500 B/s<" in page                                 # the last value beside the line
        assert "Cluster-wide" in page and "Brokers merged: 1." in page
        missing = re.findall(r'<ul class="warn" id="charts-missing"><li>(node \d+ \([^)]*\)): ([A-Z_]+)', page)
        assert missing == [(f"node 2 (127.0.0.1:{peer.port})", "BROKER_NOT_AVAILABLE")]
        _, page, _ = browser.request("GET", "/charts?search=zzz")
        assert 'id="no-throughput"' in page and 'id="no-lag"' in page
    with console_server(secure=False) as server:
        _, page, _ = Browser(server.port).request("GET", "/charts")
        assert "this node has no broker role, so it samples no throughput or lag" in page


def test_a_reassignment_in_progress_shows_its_target_and_progress_and_the_page_refreshes():
    image = secure_image()
    orders = image.topic("orders")
    moving = dataclasses.replace(orders.partitions[0], replicas=(1, 2, 3), isr=(1, 2), leader=1,
                                 adding_replicas=(3,), removing_replicas=(2,))
    topic = dataclasses.replace(orders, partitions=(moving, *orders.partitions[1:]))
    image = dataclasses.replace(image, topics_by_id={**image.topics_by_id, topic.topic_id: topic})
    code, page = console_pages.topic_page(console_pages.Chrome(None, "t"), image, "orders", None, "")
    assert code == 200
    assert ("<td>0</td><td>user</td><td>1,3</td><td>3</td><td>2</td><td>1,2</td><td>0/1 new replicas in sync</td>"
            in page.decode())
    assert '<meta http-equiv="refresh" content="5">' in page.decode()
    _, quiet = console_pages.topic_page(console_pages.Chrome(None, "t"), secure_image(), "orders", None, "")
    assert b'http-equiv="refresh"' not in quiet and b'id="no-reassignment"' in quiet
