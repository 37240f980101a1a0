"""Throughput and lag over the last hours, kept in memory, and `render_svg` to chart one series.

Owns `History`: a sampler thread started with the node (Node._start, broker role) that every
`interval_s` (10 s) records, per series, one value into a fixed ring of `points` slots (2160: six
hours), all series sharing one ring of sample times:

    ("bytes_in_per_s", topic)          bytes appended as leader on THIS node, per second
    ("records_in_per_s", topic)        records appended as leader on this node, per second
    ("bytes_out_per_s", topic)         record bytes sent to consumers by this node, per second
    ("lag_records", group, topic)      high watermark - committed offset (sum over partitions)
    ("lag_seconds", group, topic)      age of the oldest uncommitted record (worst partition)

Sources: the rates are differences of the node's data-plane counters (server/metrics.py
BrokerMetrics: messages_in, bytes_in, bytes_out) between two samples; the lags come from the lag
tracker of the group coordinator on this node (NodeView.groups: the groups this node coordinates,
measured by server/groups/lag.py on its own refresh). So a node's History holds what that node
sees: the partitions it leads and the groups it coordinates. The console's /charts page is
cluster-wide: the serving node merges every live broker's History (cluster_charts.py, which asks
the others over Replication.ConsoleSeries, answered from `export`); the per-topic Prometheus
counters of every node remain the place for long-term dashboards. Records out are not counted
by the data plane, so there is no records-out series.

Memory is bounded: at most `series_max` (512) series of `points` doubles each plus the shared
time ring: 513 x 2160 x 8 B = 8.9 MB at the defaults, whatever the number of topics and groups;
a series not updated for a whole ring is dropped to make room for a new one, and a new series
that finds no room is counted in `dropped_series` and not kept.

`render_svg(series)` is a pure function: one series as an inline SVG (axes, min and max labels,
first and last sample times in UTC, the last value), for the UI to embed as is.

Imports: stdlib (array, math, threading, time, html), prometheus_client's Counter objects (read
only). Thread-safety: `History` is thread-safe (one lock around the rings; the sampler thread
writes, HTTP threads read copies).
"""

from __future__ import annotations

import array
import dataclasses
import html
import logging
import math
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 10.0
POINTS = 6 * 3600 // 10
SERIES_MAX = 512
_NAN = float("nan")
#: The counter a rate series is computed from, by series kind (attribute names of BrokerMetrics).
RATE_KINDS = {"bytes_in_per_s": "bytes_in", "records_in_per_s": "messages_in", "bytes_out_per_s": "bytes_out"}
UNITS = {"bytes_in_per_s": "B/s", "records_in_per_s": "records/s", "bytes_out_per_s": "B/s",
         "lag_records": "records", "lag_seconds": "s"}


@dataclasses.dataclass(frozen=True)
class SeriesData:
    """One series as sampled: `key` (kind, then labels: topic, or group and topic), its unit, and
    the (unix time s, value) points oldest first (samples where it had no value left out)."""

    key: tuple[str, ...]
    unit: str
    points: tuple[tuple[float, float], ...]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None


class _Ring:
    """One series' values. Not thread-safe (History's lock)."""

    __slots__ = ("values", "updated")

    def __init__(self, points: int) -> None:
        self.values = array.array("d", [_NAN]) * points
        self.updated = -1                      # the sample number it was last given a value at


class History:
    """The sampler and its rings (see the module docstring). Thread-safe."""

    def __init__(
        self,
        counters: object,
        coordinated_groups: Callable[[], list[dict] | None],
        interval_s: float = SAMPLE_INTERVAL_S,
        points: int = POINTS,
        series_max: int = SERIES_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`counters`: the node's BrokerMetrics (its messages_in, bytes_in, bytes_out counters);
        `coordinated_groups`: NodeView.groups (rows with "group" and "lag_topics")."""
        assert interval_s > 0 and points > 1 and series_max > 0
        self.interval_s = interval_s
        self.points = points
        self.series_max = series_max
        self.dropped_series = 0
        self._counters = counters
        self._coordinated_groups = coordinated_groups
        self._clock = clock
        self._lock = threading.Lock()
        self._times = array.array("d", [_NAN]) * points
        self._rings: dict[tuple[str, ...], _Ring] = {}
        self._samples = 0                       # samples taken; the next goes to slot samples % points
        self._previous: dict[tuple[str, str], float] = {}     # (counter, topic) -> value at the last sample
        self._previous_time: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the sampler ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:                   # noqa: BLE001 - a bad sample must not end the charts
                logger.exception("console history: a sample failed")

    def _counter_values(self) -> dict[tuple[str, str], float]:
        values = {}
        for counter_name in RATE_KINDS.values():
            for family in getattr(self._counters, counter_name).collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        values[(counter_name, sample.labels["topic"])] = sample.value
        return values

    def sample(self) -> None:
        """Take one sample now (the sampler thread calls it every interval_s; tests call it)."""
        now = self._clock()
        counters = self._counter_values()
        values: dict[tuple[str, ...], float] = {}
        if self._previous_time is not None and now > self._previous_time:
            elapsed = now - self._previous_time
            for kind, counter_name in RATE_KINDS.items():
                for (name, topic), value in counters.items():
                    if name == counter_name:
                        values[(kind, topic)] = max(0.0, value - self._previous.get((name, topic), 0.0)) / elapsed
        for group in self._coordinated_groups() or ():
            for topic in group.get("lag_topics", ()):
                for kind in ("lag_records", "lag_seconds"):
                    if topic.get(kind) is not None:
                        values[(kind, group["group"], topic["topic"])] = float(topic[kind])
        self._previous, self._previous_time = counters, now
        self._record(now, values)

    def _record(self, now: float, values: dict[tuple[str, ...], float]) -> None:
        with self._lock:
            slot = self._samples % self.points
            self._times[slot] = now
            for ring in self._rings.values():
                ring.values[slot] = _NAN
            for key, value in values.items():
                ring = self._rings.get(key) or self._new_ring(key)
                if ring is not None:
                    ring.values[slot] = value
                    ring.updated = self._samples
            self._samples += 1

    def _new_ring(self, key: tuple[str, ...]) -> _Ring | None:
        """A ring for a new series, dropping one not updated for a whole ring if full. Lock held."""
        if len(self._rings) >= self.series_max:
            stale = [k for k, ring in self._rings.items() if self._samples - ring.updated >= self.points]
            if not stale:
                self.dropped_series += 1
                return None
            del self._rings[stale[0]]
        ring = self._rings[key] = _Ring(self.points)
        return ring

    # -- readers -------------------------------------------------------------------------------

    def keys(self) -> list[tuple[str, ...]]:
        """Every series kept, sorted: ("bytes_in_per_s", topic), ("lag_seconds", group, topic), ..."""
        with self._lock:
            return sorted(self._rings)

    def series(self, *key: str) -> SeriesData:
        """One series, oldest point first (empty when unknown or not sampled yet)."""
        with self._lock:
            ring = self._rings.get(key)
            samples = self._samples
            count = min(samples, self.points)
            slots = [(samples - count + i) % self.points for i in range(count)]
            points = () if ring is None else tuple(
                (self._times[s], ring.values[s]) for s in slots if not math.isnan(ring.values[s])
            )
        return SeriesData(tuple(key), UNITS.get(key[0], "") if key else "", points)

    def export(self, kinds=(), topics=(), groups=(), since: float = 0.0) -> list[SeriesData]:
        """Every series kept whose kind is in `kinds`, topic in `topics` and (lag series) group in
        `groups` (an empty filter matches all), with its points after `since` (unix s) only;
        series left with no point are left out. One snapshot (every series cut at the same
        sample, so a caller may ask next for the points after the newest time it got). What the
        ConsoleSeries RPC answers."""
        with self._lock:
            count = min(self._samples, self.points)
            slots = [s for s in ((self._samples - count + i) % self.points for i in range(count)) if self._times[s] > since]
            rows = [(key, [(self._times[s], ring.values[s]) for s in slots]) for key, ring in self._rings.items()
                    if (not kinds or key[0] in kinds) and (not topics or key[-1] in topics)
                    and (not groups or (len(key) == 3 and key[1] in groups))]
        found = []
        for key, points in sorted(rows):
            kept = tuple((t, v) for t, v in points if not math.isnan(v))
            if kept:
                found.append(SeriesData(key, UNITS.get(key[0], ""), kept))
        return found

    def memory_bytes(self) -> int:
        """Bytes the rings hold now (at most (series_max + 1) x points x 8)."""
        with self._lock:
            return (len(self._rings) + 1) * self.points * 8


# -- rendering -------------------------------------------------------------------------------------


def format_value(value: float, unit: str = "") -> str:
    """A short label: 950, 1.2k, 3.4M, 5.6G (then the unit), seconds with one decimal below 10."""
    magnitude = abs(value)
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= factor:
            text = f"{value / factor:.1f}{suffix}"
            break
    else:
        text = f"{value:.1f}" if magnitude < 10 and value != int(value) else f"{value:.0f}"
    return f"{text} {unit}".strip()


def _clock_label(unix_s: float) -> str:
    return time.strftime("%H:%M", time.gmtime(unix_s)) + " UTC"


def render_svg(series: SeriesData, width: int = 480, height: int = 140, title: str | None = None) -> str:
    """One series as an inline SVG document fragment (<svg>...</svg>, well-formed XML): axes, the
    line, min and max labels on the value axis, the first and last sample times (UTC) on the time
    axis, and the last value beside the line's end. Values start at 0 unless negative ones exist.
    No script, no external reference (the console's CSP allows inline SVG as markup)."""
    assert width >= 200 and height >= 80
    left, right, top, bottom = 60, 70, 18, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    label = title if title is not None else " / ".join(series.key)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(label)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="12" font-weight="bold">{html.escape(label)}</text>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
    ]
    points = series.points
    if not points:
        parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" fill="#888">no data yet</text>')
        parts.append("</svg>")
        return "".join(parts)
    values = [value for _, value in points]
    low, high = min(0.0, min(values)), max(values)
    if high <= low:
        high = low + 1.0
    first_t, last_t = points[0][0], points[-1][0]
    span_t = max(last_t - first_t, 1e-9)

    def x(t: float) -> float:
        return left + (t - first_t) / span_t * plot_w if len(points) > 1 else left + plot_w

    def y(value: float) -> float:
        return top + plot_h - (value - low) / (high - low) * plot_h

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    unit = series.unit
    last_t, last_v = points[-1]
    parts += [
        f'<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{line}"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{html.escape(format_value(high, unit))}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{html.escape(format_value(low, unit))}</text>',
        f'<text x="{left}" y="{height - 4}">{_clock_label(first_t)}</text>',
        f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end">{_clock_label(last_t)}</text>',
        f'<circle cx="{x(last_t):.1f}" cy="{y(last_v):.1f}" r="2.5" fill="#1f6feb"/>',
        f'<text x="{left + plot_w + 6}" y="{y(last_v) + 4:.1f}">{html.escape(format_value(last_v, unit))}</text>',
        "</svg>",
    ]
    return "".join(parts)
