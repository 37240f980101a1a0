"""The follower side of replication: one `ReplicaFetch` stream per leader broker.

Owns `ReplicaFetcherManager` (which partitions this broker follows, from which leader) and one
`LeaderLink` per leader broker: a bidirectional stream (replication.proto) multiplexing every
partition this broker follows from that leader, reconnecting with backoff (50 ms doubling to
1 s) and starting every partition over with a reset position on each new stream.

Per pushed partition (`_on_partition_data`, synchronous, so nothing interleaves with the data
plane's role changes on the loop):

- records that continue the log are appended with `append_as_follower` (no CRC recomputation:
  the leader verified it); whole batches the log already holds are skipped; a gap (a push sent
  before the leader saw our last reset) is dropped, and a reset position is sent unless one is
  already outstanding;
- diverging_epoch: truncate to `truncation_offset(...)` (Kafka's rules; never by high watermark
  alone), then report a reset position with the new last epoch;
- OFFSET_OUT_OF_RANGE: `out_of_range_action`: truncate to the leader's log end (we are ahead
  after an unclean election), or empty the log and start at the leader's log start (retention
  passed us), or retry;
- other errors (fenced or unknown epochs, not the leader, unknown topic id, storage errors on the
  leader): retry the partition with a reset position after `RETRY_BACKOFF_S`; the data plane
  moves it to another link when metadata names a new leader;
- the follower's high watermark becomes min(leader's high watermark, its log end offset);
- the follower's log start offset follows the leader's that every push carries, up to its own
  high watermark (`follower_log_start_offset`; Kafka's followers apply
  FetchResponse.logStartOffset), deleting its segments below; the next position reports it, so
  the leader's DeleteRecords learns when every replica dropped the records.

After each message, one request carries the new positions (acknowledgements) of every partition
that changed (coalesced). The reader task that applied the push writes it at once; the link's
own task writes what is due otherwise (reset positions, removals, retries), never both at once.

Imports: asyncio, grpc, freshet.server, freshet.storage (errors, record batch headers), wire types.
Thread-safety: not thread-safe; everything runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from freshet.server import status
from freshet.server.cluster.channels import CHANNEL_OPTIONS
from freshet.server.replication.core import (
    RETRY,
    START_AT,
    TRUNCATE_TO,
    follower_log_start_offset,
    out_of_range_action,
    truncation_offset,
)
from freshet.server.replication.host import ReplicaHost
from freshet.server.replication.partition import Partition
from freshet.server.security.node_identity import inter_node_channel
from freshet.server.security.tls import TlsMaterial
from freshet.server.tasks import cancel_and_wait
from freshet.storage.errors import LogOffsetGapError, StorageError
from freshet.storage.record_batch import LOG_OVERHEAD, parse_header
from freshet.v1 import common_pb2, replication_pb2, replication_pb2_grpc

logger = logging.getLogger(__name__)

E = common_pb2.ErrorCode
RECONNECT_BACKOFF_S_MIN = 0.05
RECONNECT_BACKOFF_S_MAX = 1.0
RETRY_BACKOFF_S = 0.2


class FetchState:
    """What a follower knows of one partition it fetches. Not thread-safe (loop).

    Attributes:
        partition: the data plane's Partition (its log and high watermark).
        leader_epoch: the leader epoch this broker believes in (sent as current_leader_epoch).
        needs_reset: a reset position must be sent.
        is_reset_outstanding: a reset was sent and no push continuing the log has arrived since.
        needs_ack: the log end offset changed since the last position sent.
        leader_log_end_offset: the leader's log end offset in its last message (for the lag metric).
    """

    __slots__ = ("partition", "leader_epoch", "needs_reset", "is_reset_outstanding", "needs_ack", "leader_log_end_offset", "retry")

    def __init__(self, partition: Partition, leader_epoch: int) -> None:
        self.partition = partition
        self.leader_epoch = leader_epoch
        self.needs_reset = True
        self.is_reset_outstanding = False
        self.needs_ack = False
        self.leader_log_end_offset = -1
        self.retry: asyncio.TimerHandle | None = None


class LeaderLink:
    """The ReplicaFetch stream to one leader broker. Not thread-safe (loop)."""

    def __init__(self, manager: ReplicaFetcherManager, leader_id: int) -> None:
        self.manager = manager
        self.leader_id = leader_id
        self.states: dict[tuple[str, int], FetchState] = {}
        # The states that may have a position to send (needs_reset or needs_ack set), so that a
        # request after each push looks at the partitions it touched, not at every one followed.
        self._due: dict[tuple[str, int], FetchState] = {}
        self._removed: set[tuple[str, int]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._is_writing = False
        self._is_closed = False
        self.streams_opened = 0

    def __repr__(self) -> str:
        return f"LeaderLink(leader {self.leader_id}, {len(self.states)} partitions)"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica-fetcher-{self.leader_id}")

    async def close(self) -> None:
        self._is_closed = True
        for state in self.states.values():
            if state.retry is not None:
                state.retry.cancel()
        await cancel_and_wait(self._task)

    def add(self, partition: Partition, leader_epoch: int) -> None:
        key = partition.key
        previous = self.states.get(key)
        if previous is not None and previous.retry is not None:
            previous.retry.cancel()
        self.states[key] = self._due[key] = FetchState(partition, leader_epoch)
        self._removed.discard(key)
        self._wake.set()

    def note_synced(self, key: tuple[str, int]) -> None:
        """The flusher fsynced the partition: acknowledge the new durable offset to the leader."""
        state = self.states.get(key)
        if state is not None and not state.needs_reset:
            state.needs_ack = True
            self._due[key] = state
            self._wake.set()

    def remove(self, key: tuple[str, int]) -> None:
        state = self.states.pop(key, None)
        if state is not None:
            if state.retry is not None:
                state.retry.cancel()
            self._removed.add(key)
            self._wake.set()

    # -- the stream ------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = RECONNECT_BACKOFF_S_MIN
        while not self._is_closed:
            stub = self.manager.stub(self.leader_id)
            if stub is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_S_MAX)
                continue
            call = stub.ReplicaFetch()
            self.streams_opened += 1
            for state in self.states.values():
                state.needs_reset = True
            self._due = dict(self.states)
            self._removed.clear()
            reader = asyncio.create_task(self._read(call), name=f"replica-fetcher-read-{self.leader_id}")
            reader.add_done_callback(lambda _: self._wake.set())
            try:
                while not reader.done():
                    await self._write_due(call)
                    await self._wake.wait()
                    self._wake.clear()
                await reader
                backoff = RECONNECT_BACKOFF_S_MIN
            except grpc.aio.AioRpcError as error:
                detail = status.detail_from_rpc_error(error)
                logger.info(
                    "replication stream to leader %d ended: %s %s",
                    self.leader_id, error.code().name, detail.message if detail is not None else error.details(),
                )
            except (asyncio.InvalidStateError, grpc.aio.UsageError) as error:
                logger.info("replication stream to leader %d ended: %r", self.leader_id, error)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("replication stream to leader %d failed", self.leader_id)
            finally:
                reader.cancel()
                call.cancel()
            if self._is_closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_BACKOFF_S_MAX)

    async def _read(self, call) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            if self._on_response(response):
                # Acknowledge from here, in the same loop iteration as the append: no wake-up of
                # the stream's task between a push and its acknowledgement.
                await self._write_due(call)

    async def _write_due(self, call) -> None:
        """Write requests while any is due. One writer at a time: the stream's task (resets,
        removals, retries) or the reader (acknowledgements); a call while the other writes
        returns at once, and the writer looks for more after each write."""
        if self._is_writing:
            return
        self._is_writing = True
        try:
            while (request := self._request()) is not None:
                await call.write(request)
        finally:
            self._is_writing = False

    def _request(self) -> replication_pb2.ReplicaFetchRequest | None:
        """The next request: every reset position and acknowledgement due, and removals."""
        positions = []
        due, self._due = self._due, {}
        for key, state in due.items():
            if self.states.get(key) is not state:
                continue                 # removed or replaced meanwhile
            if state.needs_reset:
                state.needs_reset = False
                state.is_reset_outstanding = True
                state.needs_ack = False
                position = self.manager.position(state, is_reset=True)
                if position is not None:
                    positions.append(position)
            elif state.needs_ack:
                state.needs_ack = False
                position = self.manager.position(state, is_reset=False)
                if position is not None:
                    positions.append(position)
        if not positions and not self._removed:
            return None
        request = replication_pb2.ReplicaFetchRequest(
            replica_id=self.manager.node_id,
            broker_epoch=self.manager.broker_epoch(),
            positions=positions,
            removed=[common_pb2.TopicPartition(topic=topic, partition=number) for topic, number in self._removed],
        )
        self._removed.clear()
        return request

    # -- pushes ----------------------------------------------------------------------------------

    def _on_response(self, response: replication_pb2.ReplicaFetchResponse) -> bool:
        """Apply one push; returns whether a request is due (the caller writes it)."""
        changed = False
        for data in response.partitions:
            state = self.states.get((data.topic, data.partition))
            if state is None:
                continue                 # removed meanwhile; the leader hears of it
            self._due[state.partition.key] = state
            try:
                changed |= self._on_partition_data(state, data)
            except StorageError as error:
                # The log was closed (deleted, moved away) or went offline under us.
                logger.warning("%s-%d: cannot apply the leader's data: %s", data.topic, data.partition, error)
                self._retry_later(state)
        return changed

    def _on_partition_data(self, state: FetchState, data: replication_pb2.ReplicaPartitionData) -> bool:
        """Apply one partition's push (see the module docstring). Returns whether a request is due."""
        partition = state.partition
        log = partition.log
        state.leader_log_end_offset = data.leader_log_end_offset
        if data.error.code != E.NONE:
            return self._on_partition_error(state, data)
        if data.HasField("diverging_epoch"):
            return self._on_diverging_epoch(state, data)
        needs_request = False
        records = data.records
        if records:
            end_offset = log.log_end_offset
            base_offset = data.base_offset
            is_misaligned = False
            if base_offset < end_offset:
                records, base_offset, is_misaligned = _skip_held_batches(records, end_offset)
            if is_misaligned:
                logger.warning("%s-%d: a pushed batch straddles the log end %d; asking the leader to resend",
                               data.topic, data.partition, end_offset)
                state.needs_reset = True
                return True
            if records and base_offset == end_offset:
                try:
                    info = log.append_as_follower(records)
                except LogOffsetGapError as error:
                    logger.warning("%s-%d: %s; asking the leader to resend", data.topic, data.partition, error)
                    state.needs_reset = True
                    return True
                state.is_reset_outstanding = False
                state.needs_ack = True
                needs_request = True
                partition.counters.replication_bytes_in.inc(info.size_bytes)
                self.manager.note_appended(info.size_bytes)
                partition.note_unsynced()
            elif records:
                # A gap: pushes sent before the leader saw our last reset. Ask once.
                if not state.is_reset_outstanding:
                    state.needs_reset = True
                    needs_request = True
        high_watermark = min(data.high_watermark, log.log_end_offset)
        if high_watermark > partition.high_watermark:
            partition.set_high_watermark(high_watermark)
        new_start = follower_log_start_offset(data.log_start_offset, log.log_start_offset, partition.high_watermark)
        if new_start is not None:
            log.delete_records_before(new_start, partition.high_watermark)
            state.needs_ack = True
            needs_request = True
        return needs_request

    def _on_partition_error(self, state: FetchState, data: replication_pb2.ReplicaPartitionData) -> bool:
        """The leader refused the partition: out of range moves the log to the leader's range (a
        request is due), anything else retries later. Returns whether a request is due."""
        partition = state.partition
        log = partition.log
        code = data.error.code
        if code == E.OFFSET_OUT_OF_RANGE:
            action, offset = out_of_range_action(log.log_end_offset, data.error.log_start_offset or data.log_start_offset,
                                                 data.error.log_end_offset or data.leader_log_end_offset)
            if action == TRUNCATE_TO:
                logger.warning("%s-%d: ahead of the leader's log end %d: truncating", data.topic, data.partition, offset)
                log.truncate_to(offset)
                partition.clamp_high_watermark()
                state.needs_reset = True
                return True
            if action == START_AT:
                logger.warning("%s-%d: behind the leader's log start %d: starting over there", data.topic, data.partition, offset)
                log.truncate_fully_and_start_at(offset)
                partition.high_watermark = offset
                state.needs_reset = True
                return True
            assert action == RETRY
        logger.debug("%s-%d: leader %d answered %s: %s", data.topic, data.partition, self.leader_id,
                     common_pb2.ErrorCode.Name(code), data.error.message)
        self._retry_later(state)
        return False

    def _on_diverging_epoch(self, state: FetchState, data: replication_pb2.ReplicaPartitionData) -> bool:
        """The log diverges from the leader's: truncate to where they agree and reset. Returns
        whether a request is due (False when truncating changed nothing: retry later instead)."""
        partition = state.partition
        log = partition.log
        diverging = data.diverging_epoch
        end_offset = log.log_end_offset
        offset = truncation_offset(diverging.epoch, diverging.end_offset, log.end_offset_for_epoch(diverging.epoch), end_offset)
        logger.warning(
            "%s-%d: diverges from leader %d after epoch %d: truncating from %d to %d",
            data.topic, data.partition, self.leader_id, diverging.epoch, end_offset, offset,
        )
        before = (end_offset, log.latest_epoch)
        log.truncate_to(offset)
        partition.clamp_high_watermark()
        if (log.log_end_offset, log.latest_epoch) == before:
            # Nothing changed, so the same position would diverge again: never spin.
            logger.error("%s-%d: truncating to %d changed nothing; retrying later", data.topic, data.partition, offset)
            self._retry_later(state)
            return False
        state.needs_reset = True
        return True

    def _retry_later(self, state: FetchState) -> None:
        if state.retry is not None:
            return

        def retry() -> None:
            state.retry = None
            key = state.partition.key
            if self.states.get(key) is state:
                state.needs_reset = True
                self._due[key] = state
                self._wake.set()

        state.retry = asyncio.get_running_loop().call_later(RETRY_BACKOFF_S, retry)


def _skip_held_batches(records: bytes, end_offset: int) -> tuple[bytes | memoryview, int, bool]:
    """Drop the whole batches below `end_offset` (the follower holds them already).

    Returns:
        (the rest, its base offset, is_misaligned). The rest is a view of `records` (appended as
        it is, no copy), empty when every batch is held; is_misaligned when a batch straddles
        `end_offset` (it cannot match the follower's log).
    """
    view = memoryview(records)
    position = 0
    length = len(records)
    while position < length:
        header = parse_header(view, position)
        if header.base_offset >= end_offset:
            return view[position:], header.base_offset, False
        if header.base_offset + header.last_offset_delta + 1 > end_offset:
            return b"", end_offset, True
        position += header.batch_length + LOG_OVERHEAD
    return b"", end_offset, False


class ReplicaFetcherManager:
    """Which partitions this broker follows from which leader (see the module docstring).
    Not thread-safe (loop)."""

    def __init__(
        self, host: ReplicaHost, node_id: int, broker_epoch: Callable[[], int], tls: TlsMaterial | None = None
    ) -> None:
        self.host = host
        self.tls = tls
        self._generation = tls.generation if tls is not None else 0
        self._retired: list[grpc.aio.Channel] = []
        self.node_id = node_id
        self.broker_epoch = broker_epoch
        self.links: dict[int, LeaderLink] = {}
        self._link_of: dict[tuple[str, int], int] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, replication_pb2_grpc.ReplicationStub] = {}
        self._closing: set[asyncio.Task] = set()

    def note_appended(self, size_bytes: int) -> None:
        """A follower append wrote `size_bytes` (the host counts them against free space)."""
        self.host.note_appended(size_bytes)

    def add(self, partition: Partition, leader_id: int, leader_epoch: int) -> None:
        """Follow `partition` from `leader_id` at `leader_epoch` (moving it from another link)."""
        key = partition.key
        current = self._link_of.get(key)
        if current is not None and current != leader_id:
            self.remove(key)
        link = self.links.get(leader_id)
        if link is None:
            link = self.links[leader_id] = LeaderLink(self, leader_id)
            link.start()
        link.add(partition, leader_epoch)
        self._link_of[key] = leader_id

    def remove(self, key: tuple[str, int]) -> None:
        """Stop following `key`; a link left with no partitions closes."""
        leader_id = self._link_of.pop(key, None)
        if leader_id is None:
            return
        link = self.links[leader_id]
        link.remove(key)
        if not link.states:
            del self.links[leader_id]
            task = asyncio.get_running_loop().create_task(link.close(), name=f"close-replica-fetcher-{leader_id}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def is_following(self, key: tuple[str, int]) -> bool:
        return key in self._link_of

    def note_synced(self, key: tuple[str, int]) -> None:
        """The durable flusher fsynced a followed partition: its leader hears the durable offset."""
        leader_id = self._link_of.get(key)
        if leader_id is not None:
            self.links[leader_id].note_synced(key)

    def position(self, state: FetchState, is_reset: bool) -> replication_pb2.ReplicaPosition | None:
        partition = state.partition
        log = partition.log
        try:
            position = replication_pb2.ReplicaPosition(
                topic=partition.topic,
                partition=partition.partition,
                topic_id=partition.topic_id,
                current_leader_epoch=state.leader_epoch,
                fetch_offset=log.log_end_offset,
                last_fetched_epoch=log.latest_epoch,
                log_start_offset=log.log_start_offset,
                is_reset=is_reset,
            )
            if partition.is_durable:
                position.durable_offset = log.durable_offset
            return position
        except StorageError:
            return None

    def stub(self, leader_id: int) -> replication_pb2_grpc.ReplicationStub | None:
        """A stub on the leader's advertised endpoint from metadata (None while unknown)."""
        broker = self.host.image.brokers.get(leader_id)
        if broker is None:
            return None
        address = broker.address
        if self.tls is not None and self.tls.generation != self._generation:
            self._generation = self.tls.generation           # rotated: new channels, new certificate
            self._retired.extend(self._channels.values())
            self._channels, self._stubs = {}, {}
        stub = self._stubs.get(address)
        if stub is None:
            channel = inter_node_channel(address, CHANNEL_OPTIONS, self.tls)
            self._channels[address] = channel
            stub = self._stubs[address] = replication_pb2_grpc.ReplicationStub(channel)
        return stub

    def max_lag(self) -> int:
        """The largest (leader log end offset - own log end offset) over followed partitions
        (Kafka's replica fetcher MaxLag), 0 when nothing is followed."""
        lag = 0
        for link in self.links.values():
            for state in link.states.values():
                if state.leader_log_end_offset >= 0:
                    try:
                        lag = max(lag, state.leader_log_end_offset - state.partition.log.log_end_offset)
                    except StorageError:
                        continue
        return lag

    async def close(self) -> None:
        links, self.links = list(self.links.values()), {}
        self._link_of.clear()
        for link in links:
            await link.close()
        for task in list(self._closing):
            await task
        for channel in [*self._channels.values(), *self._retired]:
            await channel.close()
        self._channels.clear()
        self._retired.clear()
        self._stubs.clear()
