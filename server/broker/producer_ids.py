"""Producer ids for idempotent producers, handed out from blocks the controller allocates.

Owns `ProducerIdManager` (Kafka's RPCProducerIdManager): every broker serves `InitProducerId`
from its current block of ids ([first, first + size), allocated by the active controller through
`AllocateProducerIds`, a metadata command, so no two brokers ever hand out the same id). The next
block is requested in the background once 90% of the current one is used, so a broker rarely
makes a client wait for the controller; when a block runs out before the next arrives, callers
wait for it (bounded by their deadline).

Imports: asyncio, time, freshet.server (controller_client), wire types.
Thread-safety: not thread-safe; the node's event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from freshet.metadata import commands
from freshet.server.cluster.channels import ControllerChannels, forward
from freshet.server.errors import RequestTimedOutError
from freshet.v1 import controller_pb2

logger = logging.getLogger(__name__)

PREFETCH_FRACTION = 0.9
RETRY_S = 0.1


class ProducerIdManager:
    """Producer-id blocks of one broker. Not thread-safe (loop)."""

    def __init__(
        self,
        channels: ControllerChannels,
        node_id: int,
        broker_epoch: Callable[[], int],
        controller_hint: Callable[[], int | None],
        request_timeout_s: float,
    ) -> None:
        self._channels = channels
        self._node_id = node_id
        self._broker_epoch = broker_epoch
        self._controller_hint = controller_hint
        self._request_timeout_s = request_timeout_s
        self._next = 0
        self._end = 0
        self._prefetch_at = 0
        self._fetching: asyncio.Task | None = None
        self._queued: tuple[int, int] | None = None
        self.blocks_allocated = 0

    async def next_id(self, deadline: float) -> int:
        """A fresh producer id (monotonic().deadline: the caller's deadline).

        Raises:
            RequestTimedOutError, NotControllerError, ForwardedError: no block arrived in time.
        """
        while True:
            if self._next >= self._end and self._queued is not None:
                self._next, self._end = self._queued
                self._prefetch_at = self._next + int((self._end - self._next) * PREFETCH_FRACTION)
                self._queued = None
            if self._next < self._end:
                producer_id = self._next
                self._next += 1
                if self._next >= self._prefetch_at and self._queued is None:
                    self._start_fetch()
                return producer_id
            self._start_fetch()
            assert self._fetching is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimedOutError("InitProducerId (waiting for a producer-id block)", 0)
            done, _ = await asyncio.wait({self._fetching}, timeout=remaining)
            if not done:
                raise RequestTimedOutError("InitProducerId (waiting for a producer-id block)", remaining)
            self._fetching.result()      # raises the failure of the allocation

    def _start_fetch(self) -> None:
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.get_running_loop().create_task(self._fetch(), name="allocate-producer-ids")
            self._fetching.add_done_callback(_log_failure)

    async def _fetch(self) -> None:
        request = controller_pb2.AllocateProducerIdsRequest(
            request_id=commands.new_request_id(), broker_id=self._node_id, broker_epoch=self._broker_epoch()
        )
        response = await forward(
            self._channels,
            "AllocateProducerIds",
            request,
            time.monotonic() + self._request_timeout_s,
            self._controller_hint,
            skip_self=False,
        )
        self._queued = (response.first_producer_id, response.first_producer_id + response.size)
        self.blocks_allocated += 1
        logger.info("producer ids [%d, %d) allocated to this broker", *self._queued)

    async def close(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
            try:
                await self._fetching
            except BaseException:  # noqa: BLE001 - closing: whatever ended the fetch does not matter
                pass


def _log_failure(task: asyncio.Task) -> None:
    """Retrieve (and log) a failed allocation, which a waiting caller also sees."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("allocating producer ids failed: %s", task.exception())
