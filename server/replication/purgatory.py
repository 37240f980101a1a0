"""The produce purgatory's entries (Kafka's DelayedProduce): requests waiting on high watermarks.

Owns `ProduceOperation` (one produce request in flight: its response under construction, the
partitions still waiting, one timer for the whole request, REQUEST_TIMED_OUT at expiry) and
`ProduceWaiter` (one partition of it waiting for high watermark >= an offset). The heap they sit
in belongs to each `Partition` (server/replication/partition.py).

Imports: asyncio, freshet.server.status, wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from freshet.server import status
from freshet.v1 import broker_pb2, common_pb2

if TYPE_CHECKING:                                     # annotations only: partition.py imports this module
    from freshet.server.replication.partition import Partition

E = common_pb2.ErrorCode


class ProduceOperation:
    """One produce request in flight (Kafka's DelayedProduce). Not thread-safe (loop).

    Completes (calls `on_done(response)` once) when every partition waiting on its high
    watermark has an answer, or at the request's timeout (REQUEST_TIMED_OUT for the rest).
    """

    __slots__ = ("response", "waiting", "remaining", "timer", "on_done", "is_done", "started_s")

    def __init__(self, response: broker_pb2.ProduceResponse, on_done: Callable[[broker_pb2.ProduceResponse], None], started_s: float) -> None:
        self.response = response
        self.waiting: list[ProduceWaiter] = []
        self.remaining = 0
        self.timer: asyncio.TimerHandle | None = None
        self.on_done = on_done
        self.is_done = False
        self.started_s = started_s

    def answer(self, waiter: ProduceWaiter, detail: common_pb2.ErrorDetail | None) -> None:
        """Settle one waiting partition (None: success), finishing the request after the last."""
        if waiter.is_done or self.is_done:
            return
        waiter.is_done = True
        waiter.partition.waiting_count -= 1
        if detail is not None:
            waiter.result.error.CopyFrom(detail)
        self.remaining -= 1
        if self.remaining == 0:
            self.finish()

    def finish(self) -> None:
        if self.is_done:
            return
        self.is_done = True
        if self.timer is not None:
            self.timer.cancel()
        self.on_done(self.response)

    def expire(self) -> None:
        """The request's timeout passed: every partition still waiting gets REQUEST_TIMED_OUT."""
        self.timer = None
        for waiter in self.waiting:
            if not waiter.is_done:
                partition = waiter.partition
                self.answer(
                    waiter,
                    status.detail(
                        E.REQUEST_TIMED_OUT,
                        f"{partition.topic}-{partition.partition}: the in-sync replicas did not acknowledge offset "
                        f"{waiter.required_offset - 1} within the request's timeout (the records may still be committed)",
                        partition=common_pb2.TopicPartition(topic=partition.topic, partition=partition.partition),
                    ),
                )


class ProduceWaiter:
    """One partition of a ProduceOperation waiting for high watermark >= `required_offset`.
    Not thread-safe (loop)."""

    __slots__ = ("required_offset", "operation", "result", "partition", "is_done")

    def __init__(self, required_offset: int, operation: ProduceOperation, result: broker_pb2.PartitionProduceResult, partition: Partition) -> None:
        self.required_offset = required_offset
        self.operation = operation
        self.result = result
        self.partition = partition
        self.is_done = False
