"""Group commit for durable partitions (write.caching=false): the broker's one flusher thread.

Owns a thread that works in rounds. A replica of a durable topic that appends (leader or
follower), or takes a role, marks itself dirty (`mark`, on the event loop). Each round takes every
log marked since the last round, fsyncs each once (`PartitionLog.sync_durably`, which does not hold
the log's lock while the disk works, so appends go on meanwhile) and hands the durable offsets back
to the event loop (`on_synced`), where a leader's high watermark moves on them and a follower
acknowledges them to its leader. Everything appended while a round runs waits for the next round,
so one fsync per log covers every batch since the last one, and one round covers every partition:
the busier the broker, the more each fsync carries.

Kafka has no such mode (its flush.messages=1 fsyncs inside each append); this follows Redpanda's
write.caching=false, minus Raft (see core.LeaderState for why every ISR member must fsync).

Imports: asyncio, threading, freshet.server (metrics, replication), freshet.storage.
Thread-safety: thread-safe: `mark` and `close` from the event loop, the round on its own thread
(the two share only `_dirty`, under `_condition`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from freshet.server.metrics import BrokerMetrics
from freshet.server.replication.partition import Partition
from freshet.storage.errors import StorageError

logger = logging.getLogger(__name__)

#: What a round hands back: each partition fsynced and the durable offset it reached.
SyncedOffsets = list[tuple[Partition, int]]


class DurableFlusher:
    """The broker's group-commit thread (see the module docstring). Thread-safe."""

    def __init__(self, on_synced: Callable[[SyncedOffsets], None], metrics: BrokerMetrics) -> None:
        self._on_synced = on_synced
        self._metrics = metrics
        self._condition = threading.Condition()
        self._dirty: dict[tuple[str, int], Partition] = {}
        self._is_closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="durable-flusher", daemon=True)
        self._thread.start()

    def mark(self, partition: Partition) -> None:
        """`partition` has appended data not yet fsynced: include it in the next round."""
        with self._condition:
            was_idle = not self._dirty
            self._dirty[partition.key] = partition
            if was_idle:
                self._condition.notify()

    async def close(self) -> None:
        """Finish the round in progress and stop the thread."""
        with self._condition:
            self._is_closed = True
            self._condition.notify()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._dirty and not self._is_closed:
                    self._condition.wait()
                if self._is_closed:
                    return
                batch, self._dirty = self._dirty, {}
            synced = self._round(list(batch.values()))
            loop = self._loop
            assert loop is not None
            try:
                loop.call_soon_threadsafe(self._on_synced, synced)
            except RuntimeError:
                return                   # the loop closed under us: the broker is gone

    def _round(self, partitions: list[Partition]) -> SyncedOffsets:
        """fsync each log once; a log that is closed or offline is skipped (its role changes)."""
        started = time.perf_counter()
        synced: SyncedOffsets = []
        for partition in partitions:
            try:
                synced.append((partition, partition.log.sync_durably()))
            except StorageError as error:
                logger.warning("%s-%d: durable flush skipped: %s", partition.topic, partition.partition, error)
        self._metrics.durable_flush_rounds.inc()
        self._metrics.durable_flushes.inc(len(synced))
        self._metrics.durable_flush_round_seconds.observe(time.perf_counter() - started)
        return synced
