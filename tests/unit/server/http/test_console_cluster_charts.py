"""The console's cluster-wide charts: every broker's series merged, and the RPC that serves them.

Goal: rates are summed per topic on the common 10 s grid (each node's times aligned to it), a
node without a point at a slot adds nothing there (absent, not zero), lag comes from whichever
node coordinates the group (the larger value when two report the same slot after a move), the
ConsoleSeries handler answers the local History with its filters, and a broker that does not
answer within the budget is named and left out. Method: SeriesData built by hand for the merge;
a real History with a fake clock behind a real ReplicationService for the handler; the fetch of
other brokers replaced by functions for the budget.
"""

from __future__ import annotations

import asyncio
import threading
import types

import pytest
from freshet.client.errors import BrokerUnavailableError
from freshet.server.errors import InvalidRequestError
from freshet.server.http.console_data import cluster_charts
from freshet.server.http.console_data.history import History, SeriesData
from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.leader_sessions import ReplicationService
from freshet.v1 import replication_pb2
from prometheus_client import CollectorRegistry

T0 = 1_700_000_000.0          # a multiple of 10


def rate(topic, *points):
    return SeriesData(("bytes_in_per_s", topic), "B/s", tuple(points))


def lag(group, topic, *points):
    return SeriesData(("lag_records", group, topic), "records", tuple(points))


def test_rates_are_aligned_to_the_grid_and_summed_per_topic():
    merged = cluster_charts.merge({
        1: [rate("orders", (T0 + 0.4, 100.0), (T0 + 10.3, 110.0), (T0 + 20.2, 120.0))],
        2: [rate("orders", (T0 + 3.9, 5.0), (T0 + 13.8, 6.0), (T0 + 23.7, 7.0)), rate("refunds", (T0 + 13.8, 1.0))],
        3: [rate("orders", (T0 + 6.1, 1000.0))],          # 6.1 s rounds to the next slot
    }, 10.0)
    assert merged[("bytes_in_per_s", "orders")].points == ((T0, 105.0), (T0 + 10, 1116.0), (T0 + 20, 127.0))
    assert merged[("bytes_in_per_s", "refunds")].points == ((T0 + 10, 1.0),)
    assert merged[("bytes_in_per_s", "orders")].unit == "B/s"


def test_a_node_without_a_point_adds_nothing_and_a_slot_nobody_has_stays_absent():
    merged = cluster_charts.merge({
        1: [rate("orders", (T0, 10.0), (T0 + 10, 10.0), (T0 + 40, 10.0))],
        2: [rate("orders", (T0, 2.0))],                  # node 2 stopped answering after T0
    }, 10.0)
    assert merged[("bytes_in_per_s", "orders")].points == ((T0, 12.0), (T0 + 10, 10.0), (T0 + 40, 10.0))


def test_lag_comes_from_the_coordinator_and_the_larger_value_after_a_move():
    merged = cluster_charts.merge({
        1: [lag("billing", "orders", (T0 + 1, 40.0), (T0 + 11, 42.0))],           # coordinator until T0 + 11
        2: [lag("billing", "orders", (T0 + 8, 45.0), (T0 + 18, 44.0), (T0 + 28, 30.0)),
            rate("orders", (T0 + 8, 3.0))],
        3: [],
    }, 10.0)
    # slot T0+10: node 1 says 42 and node 2 (the new coordinator) 45: the larger, not the sum
    assert merged[("lag_records", "billing", "orders")].points == ((T0, 40.0), (T0 + 10, 45.0), (T0 + 20, 44.0), (T0 + 30, 30.0))
    assert merged[("lag_records", "billing", "orders")].unit == "records"
    assert merged[("bytes_in_per_s", "orders")].points == ((T0 + 10, 3.0),)


def _history():
    metrics = BrokerMetrics(CollectorRegistry())
    clock = types.SimpleNamespace(now=T0)
    groups = [{"group": "billing", "lag_topics": [{"topic": "orders", "lag_records": 7, "lag_seconds": 1.5}]}]
    history = History(metrics, lambda: groups, clock=lambda: clock.now)
    for _ in range(3):
        metrics.bytes_in.labels("orders").inc(1000)
        metrics.bytes_in.labels("refunds").inc(500)
        history.sample()
        clock.now += 10
    return history


def _ask(service: ReplicationService, request: replication_pb2.ConsoleSeriesRequest):
    return asyncio.run(type(service).ConsoleSeries.__wrapped__(service, request, None))


def _service(history):
    counted = []
    host = types.SimpleNamespace(node_id=4, metrics=types.SimpleNamespace(count_request=counted.append))
    return ReplicationService(host, None, history), counted


def test_the_handler_answers_the_local_history_with_its_filters():
    service, counted = _service(_history())
    every = _ask(service, replication_pb2.ConsoleSeriesRequest())
    assert (every.node_id, every.interval_s) == (4, 10.0)
    keys = sorted(tuple(s.key) for s in every.series)
    assert keys == [("bytes_in_per_s", "orders"), ("bytes_in_per_s", "refunds"),
                    ("lag_records", "billing", "orders"), ("lag_seconds", "billing", "orders")]
    orders = next(s for s in every.series if tuple(s.key) == ("bytes_in_per_s", "orders"))
    assert (list(orders.times), list(orders.values), orders.unit) == ([T0 + 10, T0 + 20], [100.0, 100.0], "B/s")
    assert counted == ["ConsoleSeries"]
    only = _ask(service, replication_pb2.ConsoleSeriesRequest(kinds=["bytes_in_per_s"], topics=["refunds"], since=T0 + 10))
    assert [(tuple(s.key), list(s.times), list(s.values)) for s in only.series] == [(("bytes_in_per_s", "refunds"), [T0 + 20], [50.0])]
    lags = _ask(service, replication_pb2.ConsoleSeriesRequest(groups=["billing"]))
    assert sorted(tuple(s.key) for s in lags.series) == [("lag_records", "billing", "orders"), ("lag_seconds", "billing", "orders")]
    assert _ask(service, replication_pb2.ConsoleSeriesRequest(groups=["other"])).series == []
    assert _ask(service, replication_pb2.ConsoleSeriesRequest(since=T0 + 30)).series == []


def test_a_node_without_history_refuses_with_a_clear_error():
    service, _ = _service(None)
    with pytest.raises(InvalidRequestError, match="node 4 keeps no console history"):
        _ask(service, replication_pb2.ConsoleSeriesRequest())


def test_brokers_are_asked_in_parallel_and_a_silent_one_is_named_missing(monkeypatch):
    history = _history()
    broker = lambda port, fenced=False: types.SimpleNamespace(host="127.0.0.1", port=port, is_fenced=fenced)   # noqa: E731
    image = types.SimpleNamespace(brokers={1: broker(9001), 2: broker(9002), 3: broker(9003), 4: broker(9004), 5: broker(9005, True)})
    backend = types.SimpleNamespace(history=history, node_id=1, image=lambda: image)
    release = threading.Event()
    asked = []

    def fetch(backend_, remote, node_id, address, timeout_s):
        asked.append(address)
        if address.endswith("9003"):
            release.wait(10)                               # never answers within the budget
        if address.endswith("9004"):
            raise BrokerUnavailableError("connection refused")
        return [rate("orders", (T0 + 12, 1.0), (T0 + 22, 2.0))]

    monkeypatch.setattr(cluster_charts, "_fetch", fetch)
    try:
        charts = cluster_charts.cluster_charts(backend, budget_s=0.5)
    finally:
        release.set()
    assert sorted(asked) == ["127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004"]    # not itself, not fenced
    assert charts.nodes == (1, 2)
    assert [(f.subject, f.code_name) for f in charts.missing] == [
        ("node 3 (127.0.0.1:9003)", "REQUEST_TIMED_OUT"), ("node 4 (127.0.0.1:9004)", "BROKER_NOT_AVAILABLE")]
    # node 1 (local: 100 B/s) + node 2 (1, 2 B/s) on the grid
    assert charts.series[("bytes_in_per_s", "orders")].points == ((T0 + 10, 101.0), (T0 + 20, 102.0))
    assert charts.series[("lag_records", "billing", "orders")].points[-1] == (T0 + 20, 7.0)


def test_repeat_fetches_ask_only_for_newer_points_and_keep_the_window():
    remote = cluster_charts.RemoteSeries(window_s=60.0)
    assert remote.since(2) == 0.0
    first = remote.add(2, [rate("orders", (T0, 1.0), (T0 + 10, 2.0)), lag("billing", "orders", (T0, 5.0))], T0 + 10)
    assert sorted(data.key for data in first) == [("bytes_in_per_s", "orders"), ("lag_records", "billing", "orders")]
    assert remote.since(2) == T0 + 10
    # the next answer: newer points only (a repeated one is not doubled)
    now = remote.add(2, [rate("orders", (T0 + 10, 2.0), (T0 + 20, 3.0))], T0 + 20)
    assert {data.key: data.points for data in now}[("bytes_in_per_s", "orders")] == ((T0, 1.0), (T0 + 10, 2.0), (T0 + 20, 3.0))
    # 65 s later: the points older than the 60 s window are gone, and the series with none left
    now = remote.add(2, [rate("orders", (T0 + 70, 4.0))], T0 + 75)
    assert [(data.key, data.points) for data in now] == [(("bytes_in_per_s", "orders"), ((T0 + 20, 3.0), (T0 + 70, 4.0)))]
    remote.add(3, [rate("orders", (T0, 9.0))], T0)
    remote.keep_only([3])                                  # node 2 left the cluster
    assert (remote.since(2), remote.since(3)) == (0.0, T0)
