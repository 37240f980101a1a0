"""The console's charts for the whole cluster: every live broker's History, merged.

Each broker samples its own part (history.py: throughput of the partitions it leads, lag of the
groups it coordinates). `cluster_charts(backend)` reads this node's History directly and asks
every other unfenced broker of the node's image for its series (Replication.ConsoleSeries, over
the node's Transport channels, with the node's identity), in parallel, within `budget_s` (2 s):
a broker that did not answer in time or refused is listed in `missing`; its contribution is
absent from the merge, never counted as zero. Repeat fetches are small: `RemoteSeries` (one per
node, kept beside its History) keeps what each broker sent, and the next request asks only for
points after the newest one received (`since`).

Merging (`merge`), on the common grid of `interval_s` (10 s): each point's time is rounded to
the nearest multiple of the interval (nodes sample at their own phase), then
- rate series ("bytes_in_per_s", topic), ...: the nodes' values at a slot are summed (each node
  counts what it appended or sent as leader; a slot sums the nodes that have a point there);
- lag series ("lag_records", group, topic), ...: one node coordinates a group at a time, so a
  slot normally has one value; when two nodes have one (the coordinator moved within the slot),
  the larger is taken.

Viewer rights are the page's business (console_pages.charts_page filters by Describe).

Thread-safety: thread-safe (RemoteSeries has its lock); blocks the calling thread up to `budget_s`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import weakref
from collections.abc import Iterable, Mapping

import grpc
from freshet.client._transport import translate_rpc_error
from freshet.server.http.console_data.backend import ConsoleBackend
from freshet.server.http.console_data.groups import Failure, settle
from freshet.server.http.console_data.history import RATE_KINDS, History, SeriesData
from freshet.v1 import replication_pb2, replication_pb2_grpc

#: Bound of the whole fetch from the other brokers (the page must stay quick).
FETCH_BUDGET_S = 2.0


@dataclasses.dataclass(frozen=True)
class ClusterCharts:
    """The merged series by key (history.py's keys), the brokers that did not answer
    (`missing`: subject "node N (host:port)"), and the nodes merged (`nodes`: ids)."""

    series: dict[tuple[str, ...], SeriesData]
    missing: tuple[Failure, ...]
    nodes: tuple[int, ...]


def merge(per_node: Mapping[int, Iterable[SeriesData]], interval_s: float) -> dict[tuple[str, ...], SeriesData]:
    """The nodes' series merged on the grid of `interval_s` (see the module docstring)."""
    slots: dict[tuple[str, ...], dict[float, list[float]]] = {}
    units: dict[tuple[str, ...], str] = {}
    for node_id in sorted(per_node):                # one summing order: the same merge, the same floats
        for data in per_node[node_id]:
            units[data.key] = data.unit
            node_slots: dict[float, float] = {}
            for t, value in data.points:           # a node's last point in a slot wins
                node_slots[round(t / interval_s) * interval_s] = value
            by_slot = slots.setdefault(data.key, {})
            for slot, value in node_slots.items():
                by_slot.setdefault(slot, []).append(value)
    merged = {}
    for key, by_slot in slots.items():
        combine = sum if key[0] in RATE_KINDS else max
        merged[key] = SeriesData(key, units[key], tuple((slot, float(combine(by_slot[slot]))) for slot in sorted(by_slot)))
    return merged


def _from_response(response: replication_pb2.ConsoleSeriesResponse) -> list[SeriesData]:
    return [SeriesData(tuple(s.key), s.unit, tuple(zip(s.times, s.values, strict=False))) for s in response.series]


class RemoteSeries:
    """What the other brokers sent before, so a repeat fetch asks only for newer points.

    Per node id: its series' points (its own sample times) and the newest time received; a
    fetch asks with `since` = that time and appends. Points older than the window (`window_s`,
    the History's hours) are dropped, and so are nodes no longer asked. Thread-safe (one lock;
    page loads may run at once: each fetch of a node merges what it got)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._nodes: dict[int, dict[tuple[str, ...], SeriesData]] = {}

    def since(self, node_id: int) -> float:
        with self._lock:
            kept = self._nodes.get(node_id, {})
            return max((data.points[-1][0] for data in kept.values() if data.points), default=0.0)

    def add(self, node_id: int, fresh: list[SeriesData], now: float) -> list[SeriesData]:
        """Append `fresh` (points newer than `since`) to the node's series; its series now."""
        oldest = now - self.window_s
        with self._lock:
            kept = self._nodes.setdefault(node_id, {})
            for data in fresh:
                before = kept.get(data.key)
                newest = before.points[-1][0] if before is not None and before.points else float("-inf")
                added = tuple(point for point in data.points if point[0] > newest)
                kept[data.key] = SeriesData(data.key, data.unit, (before.points if before else ()) + added)
            for key, data in list(kept.items()):
                points = tuple(point for point in data.points if point[0] >= oldest)
                if points:
                    kept[key] = SeriesData(key, data.unit, points)
                else:
                    del kept[key]
            return list(kept.values())

    def keep_only(self, node_ids: Iterable[int]) -> None:
        with self._lock:
            for node_id in set(self._nodes) - set(node_ids):
                del self._nodes[node_id]


def _fetch(backend: ConsoleBackend, remote: RemoteSeries, node_id: int, address: str, timeout_s: float) -> list[SeriesData]:
    """The series `address` samples: the ones kept from earlier fetches plus the newer points it
    sends now (raises FreshetError)."""
    stub = replication_pb2_grpc.ReplicationStub(backend.transport.channel(address))
    try:
        response = stub.ConsoleSeries(replication_pb2.ConsoleSeriesRequest(since=remote.since(node_id)), timeout=timeout_s)
    except grpc.RpcError as error:
        raise translate_rpc_error(error, address, "ConsoleSeries") from None
    return remote.add(node_id, _from_response(response), time.time())


_remote_by_history: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_remote_lock = threading.Lock()


def remote_series(history: History) -> RemoteSeries:
    """The RemoteSeries of the node whose History is `history` (one per node)."""
    with _remote_lock:
        remote = _remote_by_history.get(history)
        if remote is None:
            remote = _remote_by_history[history] = RemoteSeries(history.points * history.interval_s)
        return remote


def cluster_charts(backend: ConsoleBackend, budget_s: float = FETCH_BUDGET_S) -> ClusterCharts:
    """Every live broker's series merged; this node's from its own History (which must exist)."""
    history = backend.history
    assert history is not None
    deadline = time.monotonic() + budget_s
    image = backend.image()
    others = {f"node {node_id} ({b.host}:{b.port})": (node_id, f"{b.host}:{b.port}")
              for node_id, b in sorted(image.brokers.items()) if not b.is_fenced and node_id != backend.node_id}
    per_node: dict[int, list[SeriesData]] = {backend.node_id: history.export()}
    failures: list[Failure] = []
    remote = remote_series(history)
    remote.keep_only(node_id for node_id, _ in others.values())
    pool = concurrent.futures.ThreadPoolExecutor(max(1, len(others)), thread_name_prefix="console-charts")
    try:
        futures = {pool.submit(_fetch, backend, remote, node_id, address, budget_s): subject
                   for subject, (node_id, address) in others.items()}
        for future, subject in settle(futures, deadline, failures):
            per_node[others[subject][0]] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return ClusterCharts(merge(per_node, history.interval_s), tuple(sorted(failures, key=lambda f: f.subject)),
                         tuple(sorted(per_node)))
