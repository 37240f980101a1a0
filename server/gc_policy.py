"""The node process's garbage-collector policy, and the metric that shows its pauses.

Owns two things:

- **The start-up heap is frozen** (`freeze_start_up_heap`, called once by `serve()` when the node
  has started). CPython's cyclic collector walks every tracked object of a generation, and a full
  (generation 2) collection walks them all, holding the GIL: the event loop, the metadata quorum's
  thread and every gRPC completion wait. A node that has started holds 150,000-180,000 tracked
  objects that live as long as the process (imported modules, the recovered logs, configuration,
  gRPC and protobuf descriptors). Measured on 3 local nodes (README, Latency): full collections of
  20-290 ms while the nodes start, and in one sync produce run a full collection of 255-419 ms in
  all three nodes within 0.3 s of each other, 28 s after start (that run's sync p99 was 49 ms).
  After the freeze, the one full collection seen in a started node took 7 ms. `gc.freeze()` moves
  those objects to a permanent generation that collections skip (CPython documents it for
  pre-fork servers). What is created later (the metadata image, partitions, requests) is
  collected as before. The cost: cyclic garbage among the frozen objects is never collected, so
  the freeze is preceded by one full collection.
- **GC pauses are a metric** (`GcPauses`, registered in the node's registry):
  `freshet_python_gc_pause_seconds{generation}` (histogram of each collection's wall time) and
  `freshet_python_gc_collected_objects_total{generation}`. The JVM's GC pauses are the first thing
  a Kafka operator looks at when a p99 jumps; this is the Python equivalent.

`FRESHET_GC_FREEZE=off` keeps CPython's behaviour (no freeze; the metric stays).

Imports: gc, prometheus_client. Thread-safety: `gc.callbacks` run on whichever thread triggered a
collection, holding the GIL; prometheus_client metrics are thread-safe.
"""

from __future__ import annotations

import gc
import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

#: Environment variable: "off" leaves the start-up heap to the collector.
GC_FREEZE_ENV = "FRESHET_GC_FREEZE"
_PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def freeze_start_up_heap(environ: dict[str, str] | None = None) -> int:
    """Collect once, then freeze every object alive now (see the module docstring); how many were
    frozen (0 when `FRESHET_GC_FREEZE=off`)."""
    environ = os.environ if environ is None else environ
    if environ.get(GC_FREEZE_ENV, "").lower() == "off":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Records every collection of this process into the node's registry until `close()`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pauses = Histogram(
            "freshet_python_gc_pause_seconds", "wall time of one cyclic garbage collection, by generation",
            ["generation"], buckets=_PAUSE_BUCKETS, registry=registry,
        )
        self.collected = Counter(
            "freshet_python_gc_collected_objects", "objects the cyclic garbage collector freed, by generation",
            ["generation"], registry=registry,
        )
        self._children = [(self.pauses.labels(str(g)), self.collected.labels(str(g))) for g in range(3)]
        self._started_s = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started_s = time.perf_counter()
            return
        pause, collected = self._children[info["generation"]]
        pause.observe(time.perf_counter() - self._started_s)
        collected.inc(info["collected"])

    def close(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
