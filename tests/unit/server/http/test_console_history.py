"""The console's in-memory history and its SVG charts.

Goal: rates are counter differences over the time between samples, lags are the coordinator's
values, the rings keep only the last `points` samples, the number of series (so the memory) is
bounded, and every chart is well-formed SVG with its labels. Method: a real BrokerMetrics in its
own registry, a fake clock, a fake coordinator listing; charts parsed with xml.etree.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ElementTree

from freshet.server.http.console_data.history import History, SeriesData, format_value, render_svg
from freshet.server.metrics import BrokerMetrics
from prometheus_client import CollectorRegistry

from tests.support.waiting import wait_until

SVG = "{http://www.w3.org/2000/svg}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _history(groups=None, clock=None, **kwargs):
    metrics = BrokerMetrics(CollectorRegistry())
    clock = clock or Clock()
    history = History(metrics, lambda: groups, clock=clock, **kwargs)
    return metrics, clock, history


def test_rates_are_counter_differences_per_second():
    metrics, clock, history = _history()
    metrics.bytes_in.labels("orders").inc(1000)
    history.sample()                                        # the first sample has no rate yet
    assert history.series("bytes_in_per_s", "orders").points == ()
    metrics.bytes_in.labels("orders").inc(5000)
    metrics.messages_in.labels("orders").inc(50)
    metrics.bytes_out.labels("orders").inc(20_000)
    clock.now += 10
    history.sample()
    assert history.series("bytes_in_per_s", "orders").points == ((clock.now, 500.0),)
    assert history.series("records_in_per_s", "orders").last == 5.0
    assert history.series("bytes_out_per_s", "orders").last == 2000.0
    assert history.series("bytes_in_per_s", "orders").unit == "B/s"
    assert ("records_in_per_s", "orders") in history.keys()


def test_lags_come_from_the_coordinators_rows():
    groups = [{"group": "billing", "lag_topics": [
        {"topic": "orders", "lag_records": 42, "lag_seconds": 3.5, "is_alerting": False},
        {"topic": "refunds", "lag_records": None, "lag_seconds": None, "is_alerting": False},
    ]}]
    _, _, history = _history(groups)
    history.sample()
    assert history.series("lag_records", "billing", "orders").last == 42.0
    assert history.series("lag_seconds", "billing", "orders").last == 3.5
    assert ("lag_records", "billing", "refunds") not in history.keys()


def test_the_ring_keeps_the_last_points_only():
    metrics, clock, history = _history(points=5)
    for i in range(12):
        metrics.bytes_in.labels("t").inc(10 * i)
        clock.now += 1
        history.sample()
    points = history.series("bytes_in_per_s", "t").points
    assert [value for _, value in points] == [70.0, 80.0, 90.0, 100.0, 110.0]
    assert [t for t, _ in points] == sorted(t for t, _ in points)


def test_series_are_bounded_and_stale_ones_make_room():
    groups: list[dict] = []
    _, _, history = _history(groups, points=3, series_max=2)

    def lag(*names):
        groups[:] = [{"group": name, "lag_topics": [{"topic": "t", "lag_records": 1, "lag_seconds": None}]} for name in names]

    lag("a", "b", "c")
    history.sample()
    assert len(history.keys()) == 2 and history.dropped_series == 1
    assert history.memory_bytes() <= (2 + 1) * 3 * 8
    lag("c")
    for _ in range(3):
        history.sample()
    assert ("lag_records", "c", "t") in history.keys()          # a series idle for a whole ring made room
    assert len(history.keys()) == 2


def test_the_sampler_thread_samples_until_stopped():
    metrics, _, history = _history(interval_s=0.02, clock=time.time)
    history.start()
    try:
        metrics.bytes_in.labels("live").inc(100)
        wait_until(lambda: history.series("bytes_in_per_s", "live").points, 5, "a rate sampled by the thread")
    finally:
        history.stop()
    assert not history._thread.is_alive()


def test_charts_are_well_formed_svg_with_their_labels():
    series = SeriesData(("bytes_in_per_s", "a<b&c"), "B/s", ((1_700_000_000.0, 100.0), (1_700_000_010.0, 2500.0), (1_700_000_020.0, 1200.0)))
    svg = render_svg(series)
    root = ElementTree.fromstring(svg)
    assert root.tag == SVG + "svg"
    texts = [element.text for element in root.iter(SVG + "text")]
    assert "bytes_in_per_s / a<b&c" in texts                  # escaped in the markup, intact once parsed
    assert "2.5k B/s" in texts and "0 B/s" in texts and "1.2k B/s" in texts
    assert "22:13 UTC" in texts
    (line,) = root.iter(SVG + "polyline")
    assert len(line.get("points").split()) == 3
    empty = ElementTree.fromstring(render_svg(SeriesData(("lag_seconds", "g", "t"), "s", ())))
    assert "no data yet" in [element.text for element in empty.iter(SVG + "text")]
    flat = ElementTree.fromstring(render_svg(SeriesData(("lag_records", "g", "t"), "records", ((1.0, 0.0),))))
    assert flat.find(SVG + "polyline") is not None


def test_values_are_formatted_short():
    assert [format_value(v) for v in (0, 7.5, 950, 1234, 5_600_000, 7.2e9)] == ["0", "7.5", "950", "1.2k", "5.6M", "7.2G"]
    assert format_value(3.25, "s") == "3.2 s"
