"""The producer's idempotence state: producer ids and per-partition sequence numbers.

Owns Kafka's TransactionManager duties without transactions (see `_sender.py`'s module docstring
for the ordering rules):

- `PartitionState`: per partition, the producer id and epoch its batches are numbered under, the
  next sequence number, whether the leader has confirmed the id, what is in flight, and the
  sequence hole a batch that failed for good leaves;
- `ProducerIdManager`: getting a producer id with `InitProducerId` (any broker, retried after
  `retry_backoff_ms`), deciding whether a partition's head batch may go now (`may_send`), and
  moving a quiet partition with a sequence hole to a fresh producer id, renumbering its queue
  (`reset_partition`), or failing queued batches a broker may already hold.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`. Forbidden: server, metadata,
cli, pysyncobj, storage (import-linter contracts).

Thread-safety: sender thread only, like the Sender that owns it; `may_send` and `reset_partition`
run with the accumulator lock held. gRPC callbacks only post events to the sender.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import grpc
from freshet.client._accumulator import ProducerBatch, RecordAccumulator
from freshet.client._metadata import Metadata
from freshet.client._transport import Transport, translate_rpc_error
from freshet.client.errors import BrokerUnavailableError, FreshetError
from freshet.v1 import broker_pb2

logger = logging.getLogger("freshet.client.producer")


class PartitionState:
    """Sender-side state of one partition: in-flight count and idempotent sequence numbers.

    Sender thread only.
    """

    __slots__ = (
        "producer_id",
        "producer_epoch",
        "next_sequence",
        "is_confirmed",
        "in_flight",
        "in_flight_node",
        "needs_reset",
        "hole_maybe_written",
        "unresolved",
    )

    def __init__(self, producer_id: int, producer_epoch: int) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.next_sequence = 0
        self.is_confirmed = False
        """The leader acknowledged a batch with this producer id, so it checks our sequences."""
        self.in_flight = 0
        self.in_flight_node = -1
        self.needs_reset = False
        """A sequenced batch failed for good: renumber under a fresh producer id once quiet."""
        self.hole_maybe_written = False
        """The batch that made the hole may have been written (its outcome was unknown)."""
        self.unresolved: list[ProducerBatch] = []
        """Batches numbered under `producer_id` and not yet completed, in sequence order."""



class ProducerIdManager:
    """The producer id and the idempotence ordering rules (see the module docstring). Sender thread only."""

    def __init__(
        self,
        *,
        accumulator: RecordAccumulator,
        metadata: Metadata,
        transport: Transport,
        client_id: str,
        request_timeout_s: float,
        backoff_s: float,
        post_event: Callable[[tuple], None],
        post_locked: Callable[[tuple], None],
        metrics: dict,
    ) -> None:
        """
        Args:
            post_event: hands an event to the sender thread (thread-safe).
            post_locked: the same, for a caller that holds the accumulator lock.
            metrics: the sender's counters; producer_id_resets_total is counted here.
        """
        self._accumulator = accumulator
        self._metadata = metadata
        self._transport = transport
        self._client_id = client_id
        self._request_timeout_s = request_timeout_s
        self._backoff_s = backoff_s
        self._post_event = post_event
        self._post_locked = post_locked
        self._metrics = metrics
        self.producer_id = -1
        """The newest producer id (-1: none yet, or the current one must not be used again)."""
        self.producer_epoch = -1
        self.error: FreshetError | None = None
        """Why the last InitProducerId failed (None after a success)."""
        self._is_requested = False
        self._retry_s = 0.0
        self._address_index = 0

    def new_partition_state(self) -> PartitionState:
        return PartitionState(self.producer_id, self.producer_epoch)

    def may_send(
        self, key: tuple[str, int], state: PartitionState | None, batch: ProducerBatch
    ) -> bool:
        """Whether the idempotence ordering rules let `batch`, head of its queue, go now (lock held)."""
        if self.producer_id < 0:
            return False
        if state is None:
            return True
        if state.needs_reset:
            if not state.in_flight:
                self.reset_partition(key, state)
            return False  # the renumbered queue is drained on the next turn
        if state.in_flight and (
            not state.is_confirmed
            or batch.base_sequence >= 0
            or any(unresolved.attempts > 1 for unresolved in state.unresolved)
        ):
            return False  # unconfirmed producer, or a retry under way: one batch in flight
        return True

    def reset_partition(self, key: tuple[str, int], state: PartitionState) -> None:
        """Move a quiet partition with a sequence hole to a fresh producer id (lock held)."""
        if state.producer_id == self.producer_id:
            # The partition needs an id it never used; every other partition keeps its own.
            self.producer_id = -1
            self._retry_s = 0.0
            return
        queue = self._accumulator.queues.get(key, deque())
        keep: deque[ProducerBatch] = deque()
        failed: list[ProducerBatch] = []
        for batch in queue:
            if batch.base_sequence >= 0 and batch.maybe_written and state.hole_maybe_written:
                failed.append(batch)
                continue
            batch.base_sequence = -1
            batch.producer_id = -1
            batch.producer_epoch = -1
            batch.encoded = None
            keep.append(batch)
        queue.clear()
        queue.extend(keep)
        state.producer_id = self.producer_id
        state.producer_epoch = self.producer_epoch
        state.next_sequence = 0
        state.is_confirmed = False
        state.needs_reset = False
        state.hole_maybe_written = False
        state.unresolved = []
        self._metrics["producer_id_resets_total"] += 1
        logger.warning(
            "%s-%d: sequence numbers restart at 0 under producer id %d after a failed batch; "
            "%d queued batch(es) that may already be written fail instead of being renumbered",
            key[0],
            key[1],
            self.producer_id,
            len(failed),
        )
        # Completing takes the accumulator lock, which the caller holds: hand them to the next turn.
        self._post_locked(("fail_batches", failed))


    def maybe_request(self, now: float) -> None:
        if self.producer_id >= 0 or self._is_requested or now < self._retry_s:
            return
        with self._accumulator.lock:
            if not self._accumulator.incomplete:
                return  # nothing to send: ask when there is
        view = self._metadata.view
        addresses = [node.address for node in view.brokers.values()] or []
        addresses += [a for a in self._transport.bootstrap_addresses if a not in addresses]
        address = addresses[self._address_index % len(addresses)]
        self._address_index += 1
        self._is_requested = True
        request = broker_pb2.InitProducerIdRequest(client_id=self._client_id)
        try:
            future = self._transport.stub(address).InitProducerId.future(request, timeout=self._request_timeout_s)
        except ValueError as error:  # closed channel
            self._post_event(("producer_id", address, None, error))
            return
        future.add_done_callback(lambda done: self._post_event(("producer_id", address, done, None)))

    def on_producer_id(self, address: str, future: grpc.Future | None, failure: Exception | None) -> None:
        self._is_requested = False
        error: FreshetError | None = None
        if future is None:
            error = BrokerUnavailableError(f"InitProducerId on {address} failed: {failure}")
        else:
            try:
                response = future.result()
            except grpc.RpcError as rpc_error:
                error = translate_rpc_error(rpc_error, address, "InitProducerId")
            except grpc.FutureCancelledError:
                error = BrokerUnavailableError(f"InitProducerId on {address} was cancelled")
            else:
                self.producer_id = response.producer_id
                self.producer_epoch = response.producer_epoch
                self.error = None
                logger.debug("producer id %d epoch %d from %s", response.producer_id, response.producer_epoch, address)
                return
        self.error = error
        self._retry_s = time.monotonic() + self._backoff_s
        logger.info("could not get a producer id, retrying: %s", error)

