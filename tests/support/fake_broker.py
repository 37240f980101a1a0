"""An in-process fake Freshet cluster for the client SDK tests: real gRPC, real partition logs.

Not a test module (no test_ prefix); imported by the client tests.

`FakeCluster` runs N gRPC servers on loopback ("brokers"), each serving the `freshet.v1.Broker`
service as broker.proto specifies it, on top of real `freshet.storage.log.PartitionLog`s: appends
go through `append_as_leader` (CRC checks, offsets, idempotent-producer sequence and duplicate
checks are the storage layer's own), fetches return whole batches as stored. What is simulated:

- replication: every broker "has" every partition's log (one log per partition, shared); a
  partition's leader is whichever node the cluster says, with a leader epoch bumped on each move.
  acks=all completes as soon as the leader appended. The high watermark follows the log end
  offset unless a test freezes it (`freeze_high_watermark`), which bounds what fetches return;
- the metadata image: `Metadata` answers from the cluster's current state, with a metadata offset
  that grows with every change.

Requests follow broker.proto's error model: per-partition results carry an inline ErrorDetail
(NOT_LEADER with the leader hint, UNKNOWN_TOPIC, OFFSET_OUT_OF_RANGE with the valid range, ...);
whole-request failures are gRPC statuses with an ErrorDetail attached via grpc_status.

Fault injection (`FakeCluster.faults`, thread-safe): drop produce responses after appending (the
stream breaks, as if the connection died), fail a partition's next produce or fetch attempts with
a code, delay or stall produce responses, fail Metadata requests, corrupt fetched bytes; plus
`kill`/`restart` of a broker and `move_leader`.

Thread-safety: thread-safe. The cluster state is guarded by one re-entrant lock; its condition
wakes long-polling fetches when logs or high watermarks change.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Iterable
from concurrent import futures

import grpc
from freshet.storage import errors as storage_errors
from freshet.storage.config import LogConfig
from freshet.storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, PartitionLog
from freshet.v1 import broker_pb2, broker_pb2_grpc, common_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

_STORAGE_CODES = [
    (storage_errors.CorruptRecordError, common_pb2.CORRUPT_RECORD),
    (storage_errors.InvalidRecordError, common_pb2.INVALID_RECORD),
    (storage_errors.RecordTooLargeError, common_pb2.RECORD_TOO_LARGE),
    (storage_errors.UnsupportedCompressionError, common_pb2.UNSUPPORTED_COMPRESSION_TYPE),
    (storage_errors.OffsetOutOfRangeError, common_pb2.OFFSET_OUT_OF_RANGE),
    (storage_errors.OutOfOrderSequenceError, common_pb2.OUT_OF_ORDER_SEQUENCE),
    (storage_errors.InvalidProducerEpochError, common_pb2.INVALID_PRODUCER_EPOCH),
    (storage_errors.KafkaStorageError, common_pb2.KAFKA_STORAGE_ERROR),
]


@dataclasses.dataclass
class FakePartition:
    """One partition of the fake cluster. Guarded by the cluster's lock."""

    topic: str
    partition: int
    log: PartitionLog
    leader_id: int
    leader_epoch: int
    replicas: list[int]
    high_watermark: int = 0
    is_high_watermark_frozen: bool = False


@dataclasses.dataclass
class FakeTopic:
    """A topic of the fake cluster. Guarded by the cluster's lock."""

    name: str
    topic_id: bytes
    partitions: list[FakePartition]


class Faults:
    """Scripted failures, consumed as requests arrive. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.drop_produce_responses = 0
        """Produce stream requests still to append and then break the stream (response lost)."""
        self.produce_errors: dict[tuple[str, int], list[int]] = {}
        """(topic, partition) -> codes for its next produce attempts (nothing appended)."""
        self.fetch_errors: dict[tuple[str, int], list[int]] = {}
        self.metadata_errors: list[int] = []
        """Codes for the next Metadata requests (whole-request gRPC status with ErrorDetail)."""
        self.produce_delay_s = 0.0
        self.stall_produce = threading.Event()
        """While set, produce responses are held back; requests are still appended as they arrive."""
        self.corrupt_fetch: set[tuple[str, int]] = set()
        """Partitions whose fetched bytes get one byte flipped in the first batch's records."""
        self.drop_after_append_on: set[tuple[str, int]] = set()
        """Break the stream after appending any request that contains one of these partitions."""
        self.drop_after_append_count = 0
        self.producer_id_errors: list[int] = []
        """Codes for the next InitProducerId requests (PERMISSION_DENIED for the *_AUTHORIZATION_FAILED ones)."""
        self.frozen_nodes: set[int] = set()
        """Brokers that answer nothing and append nothing, as a SIGSTOPped process (connections stay up)."""

    def wait_thawed(self, node_id: int, context: grpc.ServicerContext) -> bool:
        """Block while `node_id` is frozen; False if the call ended meanwhile."""
        while node_id in self.frozen_nodes:
            if not context.is_active():
                return False
            time.sleep(0.01)
        return context.is_active()

    def take_drop(self, keys: Iterable[tuple[str, int]]) -> bool:
        with self._lock:
            if self.drop_produce_responses > 0:
                self.drop_produce_responses -= 1
                return True
            if self.drop_after_append_count > 0 and self.drop_after_append_on.intersection(keys):
                self.drop_after_append_count -= 1
                return True
            return False

    def take_produce_error(self, key: tuple[str, int]) -> int:
        with self._lock:
            codes = self.produce_errors.get(key)
            return codes.pop(0) if codes else common_pb2.NONE

    def take_fetch_error(self, key: tuple[str, int]) -> int:
        with self._lock:
            codes = self.fetch_errors.get(key)
            return codes.pop(0) if codes else common_pb2.NONE

    def take_metadata_error(self) -> int:
        with self._lock:
            return self.metadata_errors.pop(0) if self.metadata_errors else common_pb2.NONE

    def take_producer_id_error(self) -> int:
        with self._lock:
            return self.producer_id_errors.pop(0) if self.producer_id_errors else common_pb2.NONE


class FakeCluster:
    """N fake brokers sharing one cluster state. Thread-safe. Use as a context manager."""

    def __init__(
        self, data_dir: str, broker_count: int = 3, *, log_config: LogConfig | None = None, network=None
    ) -> None:
        """`network`: an InMemoryNetwork (tests/support/memory_transport.py) to serve on
        instead of loopback sockets; clients then reach the brokers through `transport()`."""
        self.data_dir = data_dir
        self.network = network
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.log_config = log_config or LogConfig(segment_bytes=64 * 1024 * 1024, segment_index_bytes=1024 * 1024)
        self.topics: dict[str, FakeTopic] = {}
        self.metadata_offset = 1
        self.next_producer_id = 1000
        self.faults = Faults()
        self.fenced: set[int] = set()
        self.request_counts: dict[str, int] = {}
        #: hook(broker, grpc_server) before each broker server starts (fake_groups adds the Group service).
        self.server_hooks: list = []
        #: listener(topic, partition, old_leader_id, new_leader_id, leader_epoch) on every leader move.
        self.leader_listeners: list = []
        self.brokers = {node_id: FakeBroker(self, node_id) for node_id in range(1, broker_count + 1)}
        for broker in self.brokers.values():
            broker.start()

    # ---------------------------------------------------------------------------------------------
    # Setup and control.

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{broker.port}" for broker in self.brokers.values())

    def transport(self, client_id: str = "in-memory-test"):
        """A client Transport to this cluster over its in-memory network (no sockets)."""
        assert self.network is not None, "the cluster serves on sockets: use bootstrap"
        return self.network.transport(self.bootstrap, client_id=client_id)

    def create_topic(
        self, name: str, partitions: int = 1, *, leaders: list[int] | None = None, config: LogConfig | None = None
    ) -> FakeTopic:
        with self.lock:
            node_ids = sorted(self.brokers)
            parts = []
            for number in range(partitions):
                leader = leaders[number] if leaders else node_ids[number % len(node_ids)]
                log = PartitionLog.open(os.path.join(self.data_dir, f"{name}-{number}"), config or self.log_config)
                parts.append(FakePartition(name, number, log, leader, 0, list(node_ids)))
            topic = FakeTopic(name, os.urandom(16), parts)
            self.topics[name] = topic
            self.metadata_offset += 1
            self.changed.notify_all()
            return topic

    def partition(self, topic: str, partition: int) -> FakePartition:
        return self.topics[topic].partitions[partition]

    def move_leader(self, topic: str, partition: int, new_leader: int) -> None:
        """Make `new_leader` the partition's leader with a new leader epoch (the old one says NOT_LEADER)."""
        with self.lock:
            part = self.partition(topic, partition)
            old_leader = part.leader_id
            part.leader_id = new_leader
            part.leader_epoch += 1
            self.metadata_offset += 1
            self.changed.notify_all()
            epoch = part.leader_epoch
        for listener in list(self.leader_listeners):
            listener(topic, partition, old_leader, new_leader, epoch)

    def freeze_high_watermark(self, topic: str, partition: int, is_frozen: bool = True) -> None:
        with self.lock:
            part = self.partition(topic, partition)
            part.is_high_watermark_frozen = is_frozen
            if not is_frozen:
                part.high_watermark = part.log.log_end_offset
            self.changed.notify_all()

    def set_high_watermark(self, topic: str, partition: int, offset: int) -> None:
        with self.lock:
            part = self.partition(topic, partition)
            part.is_high_watermark_frozen = True
            part.high_watermark = offset
            self.changed.notify_all()

    def kill(self, node_id: int) -> None:
        """Stop a broker's server at once: its streams break, new connections are refused."""
        self.brokers[node_id].stop()

    def restart(self, node_id: int) -> None:
        self.brokers[node_id].start()

    def freeze(self, node_id: int) -> None:
        """SIGSTOP a broker: its open calls and new ones hang (no append, no answer) until `thaw`."""
        self.faults.frozen_nodes.add(node_id)

    def thaw(self, node_id: int) -> None:
        self.faults.frozen_nodes.discard(node_id)

    def count(self, what: str) -> int:
        with self.lock:
            return self.request_counts.get(what, 0)

    def append(
        self,
        topic: str,
        partition: int,
        values: list[bytes | None],
        *,
        key: bytes | None = None,
        timestamps: list[int] | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        compression: int = 0,
    ) -> int:
        """Append one batch as the leader would (offsets, epoch stamp, HW); return its base offset."""
        from freshet.storage.record_batch import Record, encode_batch

        timestamps = timestamps or [1_700_000_000_000 + n for n in range(len(values))]
        batch = encode_batch(
            [Record(ts, key, value, headers or ()) for ts, value in zip(timestamps, values, strict=True)],
            compression=compression,
        )
        with self.lock:
            part = self.partition(topic, partition)
            info = part.log.append_as_leader(batch, part.leader_epoch)
            self.after_append(part)
            return info.first_offset

    def records(self, topic: str, partition: int) -> list:
        """Every record of a partition's log, decoded: [(offset, key, value, headers)]."""
        from freshet.storage.record_batch import decode_batch, iter_batches

        part = self.partition(topic, partition)
        out = []
        offset = part.log.log_start_offset
        while offset < part.log.log_end_offset:
            result = part.log.read(offset, 1 << 20)
            if not result.records:
                break
            for _, view in iter_batches(result.records):
                for record in decode_batch(view).records:
                    out.append((record.offset, record.key, record.value, record.headers))
            offset = result.next_offset
        return out

    def close(self) -> None:
        for broker in self.brokers.values():
            broker.stop()
        with self.lock:
            for topic in self.topics.values():
                for part in topic.partitions:
                    part.log.close()

    def __enter__(self) -> FakeCluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------
    # Internals used by the servicer.

    def count_request(self, what: str) -> None:
        with self.lock:
            self.request_counts[what] = self.request_counts.get(what, 0) + 1

    def endpoint(self, node_id: int) -> common_pb2.BrokerEndpoint:
        broker = self.brokers.get(node_id)
        if broker is None:
            return common_pb2.BrokerEndpoint(node_id=node_id)
        return common_pb2.BrokerEndpoint(node_id=node_id, host="127.0.0.1", port=broker.port)

    def not_leader(self, part: FakePartition) -> common_pb2.ErrorDetail:
        return common_pb2.ErrorDetail(
            code=common_pb2.NOT_LEADER,
            message=f"not the leader of {part.topic}-{part.partition}",
            leader_id=part.leader_id,
            leader=self.endpoint(part.leader_id),
            leader_epoch=part.leader_epoch,
        )

    def after_append(self, part: FakePartition) -> None:
        if not part.is_high_watermark_frozen:
            part.high_watermark = part.log.log_end_offset
        self.changed.notify_all()


def _is_legal_topic_name(name: str) -> bool:
    """Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or ".."."""
    return 0 < len(name) < 250 and name not in (".", "..") and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def _detail(code: int, message: str = "", **fields) -> common_pb2.ErrorDetail:
    return common_pb2.ErrorDetail(code=code, message=message or common_pb2.ErrorCode.Name(code), **fields)


def _storage_code(error: Exception) -> int:
    for cls, code in _STORAGE_CODES:
        if isinstance(error, cls):
            return code
    raise error


def _abort(context: grpc.ServicerContext, grpc_code: grpc.StatusCode, detail: common_pb2.ErrorDetail) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=grpc_code.value[0], message=detail.message, details=[packed])
    context.abort_with_status(rpc_status.to_status(status))


class FakeBroker:
    """One fake broker: a gRPC server bound to a fixed loopback port. Thread-safe."""

    def __init__(self, cluster: FakeCluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = 0
        self.server: grpc.Server | None = None
        self.is_alive = False

    def start(self) -> None:
        network = self.cluster.network
        if network is not None:
            # Fixed addresses: nothing is bound, and a restarted broker keeps its address.
            self.port = self.port or 40000 + self.node_id
            server = network.add_server(f"127.0.0.1:{self.port}")
            broker_pb2_grpc.add_BrokerServicer_to_server(BrokerServicer(self), server)
            for hook in list(self.cluster.server_hooks):
                hook(self, server)
            self.is_alive = True
            return
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"fake-broker-{self.node_id}"))
        broker_pb2_grpc.add_BrokerServicer_to_server(BrokerServicer(self), server)
        for hook in list(self.cluster.server_hooks):
            hook(self, server)
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert port, "could not bind"
        self.port = port
        server.start()
        self.server = server
        self.is_alive = True

    def stop(self) -> None:
        if self.cluster.network is not None and self.is_alive:
            self.is_alive = False
            self.cluster.network.remove_server(f"127.0.0.1:{self.port}")
        if self.server is not None:
            self.is_alive = False
            self.server.stop(grace=None).wait(5)
            self.server = None
        with self.cluster.lock:
            self.cluster.changed.notify_all()


class BrokerServicer(broker_pb2_grpc.BrokerServicer):
    """broker.proto's Broker service over the fake cluster. Thread-safe."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.cluster = broker.cluster

    # ---- Metadata --------------------------------------------------------------------------------

    def Metadata(self, request, context):  # noqa: N802 - gRPC method name
        cluster = self.cluster
        cluster.count_request("Metadata")
        if not cluster.faults.wait_thawed(self.broker.node_id, context):
            context.abort(grpc.StatusCode.CANCELLED, "the call ended while the broker was frozen")
        code = cluster.faults.take_metadata_error()
        if code != common_pb2.NONE:
            _abort(context, grpc.StatusCode.UNAVAILABLE, _detail(code, "injected Metadata failure"))
        with cluster.lock:
            response = broker_pb2.MetadataResponse(
                cluster_id="fake-cluster",
                controller_id=min(cluster.brokers),
                metadata_offset=cluster.metadata_offset,
                controller=cluster.endpoint(min(cluster.brokers)),
            )
            for node_id in sorted(cluster.brokers):
                if node_id not in cluster.fenced:
                    response.brokers.append(cluster.endpoint(node_id))
            names = list(request.topics) or sorted(
                name for name in cluster.topics if request.include_internal or not name.startswith("__")
            )
            for name in names:
                topic = cluster.topics.get(name)
                if not _is_legal_topic_name(name):
                    response.topics.append(
                        broker_pb2.TopicMetadata(name=name, error=_detail(common_pb2.INVALID_TOPIC, f"illegal name {name!r}"))
                    )
                    continue
                if topic is None:
                    response.topics.append(
                        broker_pb2.TopicMetadata(name=name, error=_detail(common_pb2.UNKNOWN_TOPIC, f"no topic {name}"))
                    )
                    continue
                entry = broker_pb2.TopicMetadata(name=name, topic_id=topic.topic_id)
                for part in topic.partitions:
                    entry.partitions.append(
                        broker_pb2.PartitionMetadata(
                            partition=part.partition,
                            leader_id=part.leader_id,
                            leader_epoch=part.leader_epoch,
                            replicas=part.replicas,
                            isr=part.replicas,
                        )
                    )
                response.topics.append(entry)
            return response

    # ---- Produce ---------------------------------------------------------------------------------

    def _produce(self, request: broker_pb2.ProduceRequest) -> broker_pb2.ProduceResponse:
        response = broker_pb2.ProduceResponse(correlation_id=request.correlation_id)
        for records in request.partitions:
            result = self._produce_partition(records)
            if result.error.code != common_pb2.NONE:
                self.cluster.count_request("produce_error:" + common_pb2.ErrorCode.Name(result.error.code))
            response.results.append(result)
        return response

    def _produce_partition(self, records: broker_pb2.PartitionRecords) -> broker_pb2.PartitionProduceResult:
        cluster = self.cluster
        result = broker_pb2.PartitionProduceResult(topic=records.topic, partition=records.partition)
        with cluster.lock:
            topic = cluster.topics.get(records.topic)
            if topic is None or not 0 <= records.partition < len(topic.partitions):
                result.error.CopyFrom(_detail(common_pb2.UNKNOWN_TOPIC, f"no partition {records.topic}-{records.partition}"))
                return result
            part = topic.partitions[records.partition]
            if part.leader_id != self.broker.node_id:
                result.error.CopyFrom(cluster.not_leader(part))
                return result
            code = cluster.faults.take_produce_error((records.topic, records.partition))
            if code != common_pb2.NONE:
                result.error.CopyFrom(_detail(code, "injected produce failure"))
                return result
            try:
                info = part.log.append_as_leader(bytearray(records.records), part.leader_epoch)
            except storage_errors.StorageError as error:
                result.error.CopyFrom(_detail(_storage_code(error), str(error)))
                return result
            cluster.count_request("batches_appended" if not info.is_duplicate else "batches_duplicate")
            cluster.after_append(part)
            result.error.code = common_pb2.NONE
            result.base_offset = info.first_offset
            result.log_append_time_ms = info.log_append_time_ms
            result.log_start_offset = info.log_start_offset
            result.is_duplicate = info.is_duplicate
        return result

    def Produce(self, request, context):  # noqa: N802
        self.cluster.count_request("Produce")
        return self._produce(request)

    def ProduceStream(self, request_iterator, context):  # noqa: N802
        """Requests are appended in arrival order by a reader thread, as they arrive (a leader does
        not wait for one request's acks before appending the next); responses go out in order."""
        cluster = self.cluster
        faults = cluster.faults
        responses: queue.SimpleQueue = queue.SimpleQueue()

        def read_requests() -> None:
            try:
                for request in request_iterator:
                    cluster.count_request("ProduceStreamRequest")
                    if not faults.wait_thawed(self.broker.node_id, context):
                        break
                    if faults.produce_delay_s:
                        time.sleep(faults.produce_delay_s)
                    response = self._produce(request)
                    keys = [(records.topic, records.partition) for records in request.partitions]
                    if faults.take_drop(keys):
                        cluster.count_request("dropped_responses")
                        responses.put(("drop", None))
                        return
                    if request.acks != 0:  # as Kafka: no response for acks=0
                        responses.put(("response", response))
            except Exception:  # the call ended under the reader (cancelled, server stopping)
                pass
            responses.put(("end", None))

        threading.Thread(target=read_requests, name="fake-produce-stream-reader", daemon=True).start()
        while True:
            kind, response = responses.get()
            if kind == "end":
                return
            if kind == "drop":
                context.abort(grpc.StatusCode.UNAVAILABLE, "fault injection: connection lost after append")
            while faults.stall_produce.is_set() and context.is_active():
                time.sleep(0.01)
            if not faults.wait_thawed(self.broker.node_id, context):
                return
            yield response

    # ---- Fetch -----------------------------------------------------------------------------------

    def _read(self, request: broker_pb2.FetchRequest, positions: dict | None = None):
        """One pass over the requested partitions: (results, bytes, has_error). Lock held."""
        cluster = self.cluster
        results = []
        total = 0
        has_error = False
        max_bytes = request.max_bytes or (1 << 30)
        for wanted in request.partitions:
            key = (wanted.topic, wanted.partition)
            offset = positions[key] if positions is not None else wanted.fetch_offset
            result = broker_pb2.PartitionFetchResult(topic=wanted.topic, partition=wanted.partition)
            topic = cluster.topics.get(wanted.topic)
            if topic is None or not 0 <= wanted.partition < len(topic.partitions):
                result.error.CopyFrom(_detail(common_pb2.UNKNOWN_TOPIC))
                results.append(result)
                has_error = True
                continue
            part = topic.partitions[wanted.partition]
            result.high_watermark = part.high_watermark
            result.log_start_offset = part.log.log_start_offset
            result.next_fetch_offset = offset
            error = None
            if part.leader_id != self.broker.node_id:
                error = cluster.not_leader(part)
            elif wanted.current_leader_epoch >= 0 and wanted.current_leader_epoch < part.leader_epoch:
                error = _detail(common_pb2.FENCED_LEADER_EPOCH, leader_id=part.leader_id, leader_epoch=part.leader_epoch)
            elif wanted.current_leader_epoch > part.leader_epoch:
                error = _detail(common_pb2.UNKNOWN_LEADER_EPOCH, leader_epoch=part.leader_epoch)
            else:
                code = cluster.faults.take_fetch_error(key)
                if code != common_pb2.NONE:
                    error = _detail(code, "injected fetch failure")
            if error is None:
                limit = wanted.partition_max_bytes or max_bytes
                limit = max(1, min(limit, max_bytes - total)) if total else limit
                try:
                    read = part.log.read(offset, limit, max_offset=part.high_watermark)
                except storage_errors.OffsetOutOfRangeError as out_of_range:
                    error = _detail(
                        common_pb2.OFFSET_OUT_OF_RANGE,
                        str(out_of_range),
                        log_start_offset=out_of_range.log_start_offset,
                        log_end_offset=out_of_range.log_end_offset,
                    )
                else:
                    data = read.records
                    if data and key in cluster.faults.corrupt_fetch:
                        damaged = bytearray(data)
                        damaged[70] ^= 0xFF  # inside the first batch's records: the CRC no longer matches
                        data = bytes(damaged)
                    result.records = data
                    result.next_fetch_offset = read.next_offset if data else offset
                    total += len(data)
            if error is not None:
                result.error.CopyFrom(error)
                has_error = True
                cluster.count_request("fetch_error:" + common_pb2.ErrorCode.Name(error.code))
            results.append(result)
        return results, total, has_error

    def Fetch(self, request, context):  # noqa: N802
        cluster = self.cluster
        cluster.count_request("Fetch")
        node_id = self.broker.node_id
        if not cluster.faults.wait_thawed(node_id, context):
            context.abort(grpc.StatusCode.CANCELLED, "the call ended while the broker was frozen")
        deadline = time.monotonic() + request.max_wait_ms / 1000
        with cluster.lock:
            while True:
                results, total, has_error = self._read(request)
                remaining = deadline - time.monotonic()
                if node_id in cluster.faults.frozen_nodes:
                    remaining = 1.0  # frozen mid-poll: no answer until thawed
                elif total >= max(request.min_bytes, 1) or has_error or remaining <= 0 or not context.is_active():
                    return broker_pb2.FetchResponse(results=results)
                if not context.is_active():
                    context.abort(grpc.StatusCode.CANCELLED, "the call ended")
                cluster.changed.wait(min(remaining, 0.05))

    def FetchStream(self, request, context):  # noqa: N802
        cluster = self.cluster
        cluster.count_request("FetchStream")
        positions = {(p.topic, p.partition): p.fetch_offset for p in request.partitions}
        while context.is_active() and self.broker.is_alive:
            with cluster.lock:
                results, total, has_error = self._read(request, positions)
                if not total and not has_error:
                    cluster.changed.wait(0.05)
                    continue
            sent = []
            for result in results:
                key = (result.topic, result.partition)
                if result.error.code != common_pb2.NONE:
                    positions.pop(key, None)
                    sent.append(result)
                elif result.records:
                    positions[key] = result.next_fetch_offset
                    sent.append(result)
            yield broker_pb2.FetchResponse(results=sent)
            request = broker_pb2.FetchRequest(
                max_wait_ms=request.max_wait_ms,
                min_bytes=request.min_bytes,
                max_bytes=request.max_bytes,
                partitions=[p for p in request.partitions if (p.topic, p.partition) in positions],
            )
            if not request.partitions:
                return

    # ---- ListOffsets -----------------------------------------------------------------------------

    def ListOffsets(self, request, context):  # noqa: N802
        cluster = self.cluster
        cluster.count_request("ListOffsets")
        response = broker_pb2.ListOffsetsResponse()
        with cluster.lock:
            for query in request.partitions:
                result = broker_pb2.PartitionOffsetResult(topic=query.topic, partition=query.partition, offset=-1, timestamp=-1)
                topic = cluster.topics.get(query.topic)
                if topic is None or not 0 <= query.partition < len(topic.partitions):
                    result.error.CopyFrom(_detail(common_pb2.UNKNOWN_TOPIC))
                    response.results.append(result)
                    continue
                part = topic.partitions[query.partition]
                result.leader_epoch = part.leader_epoch
                if part.leader_id != self.broker.node_id:
                    result.error.CopyFrom(cluster.not_leader(part))
                elif query.timestamp == EARLIEST_TIMESTAMP:
                    result.offset = part.log.log_start_offset
                elif query.timestamp == LATEST_TIMESTAMP:
                    result.offset = part.high_watermark
                else:
                    found = part.log.offsets_for_time(query.timestamp)
                    if found is not None and found.offset < part.high_watermark:
                        result.offset = found.offset
                        result.timestamp = found.timestamp
                response.results.append(result)
        return response

    # ---- InitProducerId --------------------------------------------------------------------------

    def InitProducerId(self, request, context):  # noqa: N802
        cluster = self.cluster
        cluster.count_request("InitProducerId")
        code = cluster.faults.take_producer_id_error()
        if code != common_pb2.NONE:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, _detail(code, "injected InitProducerId refusal"))
        with cluster.lock:
            producer_id = cluster.next_producer_id
            cluster.next_producer_id += 1
        return broker_pb2.InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)
