"""The broker's durable flusher (server/broker/durable_flusher.py): group commit off the event loop.

Goal: marks made while a round runs wait for the next round, one round fsyncs each marked log
once however many appends marked it, the durable offsets come back on the event loop, a closed
log is skipped without stopping the thread, and close() ends the thread.
Method: real PartitionLogs in tmp_path behind minimal partition objects; os.fdatasync recorded.
"""

from __future__ import annotations

import asyncio
import os
import threading
import types

from freshet.server.broker.durable_flusher import DurableFlusher
from freshet.server.metrics import BrokerMetrics
from freshet.storage.log import PartitionLog
from prometheus_client import CollectorRegistry

from tests.support.storage_helpers import SMALL_CONFIG, batch


def partition(tmp_path, name: str):
    log = PartitionLog.open(str(tmp_path / f"{name}-0"), SMALL_CONFIG)
    return types.SimpleNamespace(key=(name, 0), topic=name, partition=0, log=log)


def test_one_round_fsyncs_each_marked_log_once_and_answers_on_the_loop(tmp_path, monkeypatch):
    first, second, closed = partition(tmp_path, "a"), partition(tmp_path, "b"), partition(tmp_path, "c")
    closed.log.append_as_leader(batch(1), 0)
    closed.log.close()
    fsyncs: list[str] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (fsyncs.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    answers: list[tuple[list, int]] = []
    metrics = BrokerMetrics(CollectorRegistry())

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        done = asyncio.Event()

        def on_synced(synced) -> None:
            answers.append(([(p.key, offset) for p, offset in synced], threading.get_ident() == loop_thread))
            done.set()

        flusher = DurableFlusher(on_synced, metrics)
        for _ in range(3):                       # three appends to each log before the round starts
            first.log.append_as_leader(batch(2), 0)
            second.log.append_as_leader(batch(1), 0)
        flusher.mark(first)
        flusher.mark(second)
        flusher.mark(first)
        flusher.mark(closed)
        flusher.start(asyncio.get_running_loop())
        await asyncio.wait_for(done.wait(), 10)
        await flusher.close()

    asyncio.run(scenario())
    assert answers == [([(("a", 0), 6), (("b", 0), 3)], True)], "one answer, on the loop, without the closed log"
    assert sorted(os.path.basename(os.path.dirname(path)) for path in fsyncs) == ["a-0", "b-0"]
    assert metrics.durable_flushes._value.get() == 2
    assert metrics.durable_flush_rounds._value.get() == 1
    assert first.log.durable_offset == 6
    first.log.close()
    second.log.close()
