"""The Producer: `send()` records to topics, asynchronously, batched, retried, optionally idempotent.

Owns the public producer API and its configuration (Kafka's names in snake_case, Kafka's defaults
unless said otherwise below). `send()` validates the record, picks its partition (explicit, a
custom partitioner, murmur2 of the key, or the sticky partition for records without a key), and
appends it to the accumulator (`_accumulator.py`); the sender thread (`_sender.py`) batches,
encodes once per batch, sends over one ProduceStream per broker, retries and completes futures.

Defaults that differ from Kafka's Java client, and why:

- `batch_size` 64 KiB (Kafka: 16 KiB). A batch costs the broker a fixed amount of Python per
  append, and a request costs both sides a fixed gRPC overhead, so bigger batches buy throughput
  (the storage benchmark: 0.28 GB/s leader appends at 16 KiB, 0.35 GB/s at 64 KiB). Under light
  load a batch never fills and `linger_ms` decides, so latency is unchanged; memory is accounted by
  the bytes records really use, not by whole batches. librdkafka's default is larger still (1 MB).
- `linger_ms` 5 (Kafka 4.0 and librdkafka: 5; Kafka before 4.0: 0).
- `topic_metadata_propagation_max_ms` (librdkafka's name) 5 s: how long a topic may stay unknown
  before send() says UnknownTopicError, so a topic created a moment ago is found but a typo is not
  waited on for the whole `max_block_ms`.

Imports: grpc (through the transport), `freshet.v1`, `freshet.storage` codec modules, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, and storage beyond record_batch, compression
and errors (import-linter contracts).

Options are validated by `_config.ProducerConfig` (one frozen dataclass, one `validate`).

Thread-safety: `Producer` is thread-safe: any number of threads may call `send()`, `flush()` and
`metrics()` concurrently; `close()` may be called from any thread (from a delivery callback it
does not wait). Delivery callbacks run on the sender thread and must not block for long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from freshet.client._accumulator import (
    BATCH_OVERHEAD_BYTES,
    RECORD_OVERHEAD_BYTES,
    DeliveryCallback,
    RecordAccumulator,
    RecordFuture,
)
from freshet.client._config import INT32_MAX, MAX_IN_FLIGHT_FOR_IDEMPOTENCE, ProducerConfig
from freshet.client._metadata import Metadata
from freshet.client._sender import Sender
from freshet.client._transport import Transport, client_transport
from freshet.client.errors import (
    ClientTimeoutError,
    IllegalStateError,
    ProducerClosedError,
    RecordTooLargeError,
    UnknownTopicError,
)
from freshet.client.partitioner import PartitionerFunction, partition_for_key

logger = logging.getLogger("freshet.client.producer")

__all__ = ["MAX_IN_FLIGHT_FOR_IDEMPOTENCE", "Producer"]


class Producer:
    """Sends records to Freshet topics. Thread-safe (see the module docstring).

    Example::

        with Producer("localhost:9092", acks="all", compression="zstd") as producer:
            metadata = producer.send("orders", value=b"v", key=b"k", headers={"h": b"x"}).result()
            producer.flush()
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "freshet-producer",
        acks: str | int = "all",
        linger_ms: int = 5,
        batch_size: int = 65536,
        compression: str = "none",
        compression_level: int | None = None,
        buffer_memory: int = 32 * 1024 * 1024,
        max_block_ms: int = 60000,
        max_in_flight: int = 5,
        max_request_size: int = 1024 * 1024,
        retries: int = INT32_MAX,
        retry_backoff_ms: int = 100,
        delivery_timeout_ms: int = 120000,
        request_timeout_ms: int = 30000,
        enable_idempotence: bool | None = None,
        partitioner: PartitionerFunction | None = None,
        metadata_max_age_ms: int = 300000,
        topic_metadata_propagation_max_ms: int = 5000,
        stalled_request_ms: int = 1000,
        transport: Transport | None = None,
        **security,
    ) -> None:
        """Create a producer; it connects lazily, on the first send.

        Args:
            bootstrap_servers: "host:port,host:port" (any live broker will do); None reads
                `FRESHET_BOOTSTRAP`, else "localhost:9092".
            client_id: names this client in broker logs.
            acks: "all" / -1 (every in-sync replica), 1 (the leader), 0 (no acknowledgement; offsets
                come back as -1).
            linger_ms: how long a batch may wait for more records before it is sent.
            batch_size: target batch size in bytes (records plus framing, before compression); a
                record larger than this gets a batch of its own.
            compression: "none", "gzip", "snappy", "lz4" or "zstd", per batch (snappy in the
                xerial framing the Java client writes).
            compression_level: codec level; None for the codec's default.
            buffer_memory: bytes of records the producer holds before send() blocks.
            max_block_ms: how long send() blocks for buffer space or topic metadata.
            max_in_flight: unacknowledged requests per broker (at most 5 with idempotence).
            max_request_size: the largest record, and the target size of one request.
            retries: how many times a batch may be retried (bounded by delivery_timeout_ms anyway).
            retry_backoff_ms: wait before retrying a batch, and between metadata refresh attempts.
            delivery_timeout_ms: upper bound on the time from send() until success or failure.
            request_timeout_ms: how long to wait for a response before giving up on the stream.
            enable_idempotence: exactly-once, in-order delivery per partition despite retries.
                None (default): on when acks="all", max_in_flight <= 5 and retries > 0, as Kafka 3.x.
            partitioner: a function (key, all partitions, available partitions) -> partition,
                replacing the default (murmur2 of the key; sticky partitions without a key).
            metadata_max_age_ms: refresh metadata at least this often.
            topic_metadata_propagation_max_ms: how long send() waits for a topic that brokers say
                does not exist (it may have been created a moment ago).
            stalled_request_ms: a request unanswered this long makes the producer refresh metadata
                (asking other brokers first) a few times a second; when a partition of the request
                has a new leader, the request is abandoned and resent there (same sequence
                numbers), instead of waiting out request_timeout_ms on a stopped or cut-off leader.
            transport: the connections to use instead of opening gRPC channels to
                bootstrap_servers (tests pass one over an in-memory channel); its bootstrap list is
                used, and closing it is left to the caller.
            **security: kafka-python's names (freshet.client._security): security_protocol
                ("PLAINTEXT", "SSL", "SASL_SSL"), ssl_cafile, ssl_certfile, ssl_keyfile,
                sasl_mechanism ("SCRAM-SHA-512" default, "SCRAM-SHA-256", "PLAIN"),
                sasl_plain_username, sasl_plain_password (never logged or shown). Wrong
                credentials fail the first call with SaslAuthenticationFailedError (not retriable).

        Raises:
            ValueError: an option out of range, or options that contradict each other (e.g.
                enable_idempotence=True with acks=1), or both bootstrap_servers and transport.
        """
        options = ProducerConfig(
            client_id=client_id,
            acks=acks,
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression=compression,
            compression_level=compression_level,
            buffer_memory=buffer_memory,
            max_block_ms=max_block_ms,
            max_in_flight=max_in_flight,
            max_request_size=max_request_size,
            retries=retries,
            retry_backoff_ms=retry_backoff_ms,
            delivery_timeout_ms=delivery_timeout_ms,
            request_timeout_ms=request_timeout_ms,
            enable_idempotence=enable_idempotence,
            metadata_max_age_ms=metadata_max_age_ms,
            topic_metadata_propagation_max_ms=topic_metadata_propagation_max_ms,
            stalled_request_ms=stalled_request_ms,
        )
        self.config = options.as_dict()
        self._transport, self._owns_transport = client_transport(bootstrap_servers, transport, client_id=client_id, security=security)
        self._partitioner = partitioner
        self._build(options)

    def _build(self, options: ProducerConfig) -> None:
        """Create the metadata cache, the accumulator and the sender, and start the sender thread."""
        self._metadata = Metadata(
            self._transport,
            metadata_max_age_ms=options.metadata_max_age_ms,
            retry_backoff_ms=options.retry_backoff_ms,
            request_timeout_ms=options.request_timeout_ms,
        )
        self._accumulator = RecordAccumulator(batch_size=options.batch_size, buffer_memory=options.buffer_memory)
        self._sender = Sender(
            accumulator=self._accumulator,
            metadata=self._metadata,
            transport=self._transport,
            client_id=options.client_id,
            acks=options.acks_value,
            linger_ms=options.linger_ms,
            max_in_flight=options.max_in_flight,
            max_request_size=options.max_request_size,
            retries=options.retries,
            retry_backoff_ms=options.retry_backoff_ms,
            delivery_timeout_ms=options.delivery_timeout_ms,
            request_timeout_ms=options.request_timeout_ms,
            stalled_request_ms=options.stalled_request_ms,
            is_idempotent=options.is_idempotent,
            compression=int(options.codec),
            compression_level=options.compression_level,
            on_exit=self._release,
        )
        self._max_block_s = options.max_block_ms / 1000
        self._propagation_s = options.topic_metadata_propagation_max_ms / 1000
        self._max_record_bytes = min(options.max_request_size, options.buffer_memory) - BATCH_OVERHEAD_BYTES
        self._close_lock = threading.Lock()
        self._is_closed = False
        self._sender.start()

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap addresses in use."""
        return list(self._transport.bootstrap_addresses)

    # ---------------------------------------------------------------------------------------------
    # Sending.

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> RecordFuture:
        """Queue one record for `topic` and return its future at once.

        Blocks only for topic metadata the first time a topic is used, and when buffer_memory is
        full (both at most max_block_ms in total).

        Args:
            topic: the topic.
            value: the payload (bytes-like), or None (a tombstone in compacted topics).
            key: the key (bytes-like) or None; it picks the partition unless `partition` is given.
            headers: {name: value} or (name, value) pairs; names are str, values bytes or None.
            partition: send to this partition instead of the partitioner's choice.
            timestamp_ms: CreateTime of the record; now when None.
            on_delivery: called as on_delivery(metadata, None) or on_delivery(None, error) from the
                sender thread once the record is acknowledged or has failed.

        Returns:
            A concurrent.futures.Future resolving to RecordMetadata(topic, partition, offset,
            timestamp), or failing with a FreshetError (DeliveryTimeoutError, RecordTooLargeError,
            ...). It cannot be cancelled.

        Raises:
            ProducerClosedError: the producer is closed.
            TypeError: key, value or headers of the wrong type.
            RecordTooLargeError: the record is larger than max_request_size or buffer_memory.
            UnknownTopicError: the topic or the given partition does not exist.
            MaxBlockTimeoutError: no metadata for the topic within max_block_ms.
            BufferFullError: no buffer space within max_block_ms.
        """
        if self._is_closed:
            raise ProducerClosedError("cannot send: the producer is closed")
        size = RECORD_OVERHEAD_BYTES
        if value is not None:
            if type(value) is not bytes:
                value = _as_bytes(value, "value")
            size += len(value)
        if key is not None:
            if type(key) is not bytes:
                key = _as_bytes(key, "key")
            size += len(key)
        header_list: list[tuple[str, bytes | None]] | tuple = ()
        if headers:
            header_list, header_bytes = _headers(headers)
            size += header_bytes
        if size > self._max_record_bytes:
            raise RecordTooLargeError(
                f"a record of about {size} bytes is larger than max_request_size "
                f"({self.config['max_request_size']}) or buffer_memory ({self.config['buffer_memory']}) allows"
            )
        max_block_s = self._max_block_s
        info = self._metadata.view.topics.get(topic)
        if info is None or not info.partitions:
            if not isinstance(topic, str) or not topic:
                raise TypeError(f"topic must be a non-empty str, not {topic!r}")
            start = time.monotonic()
            info = self._metadata.wait_for_topic(topic, max_block_s, self._propagation_s)
            max_block_s = max(max_block_s - (time.monotonic() - start), 0.0)  # one budget for both waits
        count = len(info.partitions)
        if partition is not None:
            if not 0 <= partition < count:
                raise UnknownTopicError(f"partition {partition} of topic {topic!r} does not exist ({count} partitions)")
        elif self._partitioner is not None:
            partition = self._partitioner(key, range(count), info.available_partitions)
            if not isinstance(partition, int) or not 0 <= partition < count:
                raise UnknownTopicError(f"the partitioner chose partition {partition!r} of {count} for {topic!r}")
        elif key is not None:
            partition = partition_for_key(key, count)
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        return self._accumulator.append(
            topic,
            partition,
            count,
            info.available_partitions,
            (timestamp_ms, key, value, header_list),
            size,
            on_delivery,
            max_block_s,
        )

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now and wait until every record sent before this call completes.

        Args:
            timeout: seconds to wait; None waits until every record succeeded or failed (which
                delivery_timeout_ms bounds).

        Raises:
            ClientTimeoutError: records were still undelivered after `timeout`.
            IllegalStateError: called from a delivery callback (the sender thread).
        """
        if threading.current_thread() is self._sender.thread:
            raise IllegalStateError("flush() from a delivery callback would wait for itself")
        accumulator = self._accumulator
        with accumulator.lock:
            pending = set(accumulator.incomplete)
            accumulator.flushes_in_progress += 1
            accumulator.wake_sender_locked()
        try:
            left = accumulator.wait_for(pending, timeout)
        finally:
            with accumulator.lock:
                accumulator.flushes_in_progress -= 1
        if left:
            records = sum(len(batch.futures) for batch in left)
            raise ClientTimeoutError(f"flush timed out after {timeout} s with {records} record(s) undelivered")

    # ---------------------------------------------------------------------------------------------
    # Closing.

    def close(self, timeout: float | None = None) -> None:
        """Send everything buffered, wait for it, then release threads and connections.

        Idempotent. After close() starts, send() raises ProducerClosedError.

        Args:
            timeout: seconds to wait for buffered records; None waits for all of them (at most about
                delivery_timeout_ms). Records still undelivered when it passes fail with
                ProducerClosedError. Called from a delivery callback, close() does not wait.
        """
        with self._close_lock:
            first = not self._is_closed
            self._is_closed = True
        accumulator = self._accumulator
        if first:
            with accumulator.lock:
                accumulator.is_closed = True
                accumulator.wake_sender_locked()
                # Threads blocked in send() for buffer space must learn that the producer closed.
                accumulator._space_freed.notify_all()
        if threading.current_thread() is self._sender.thread:
            return  # the sender finishes the buffered records, then releases everything itself
        self._sender.thread.join(timeout)
        if self._sender.thread.is_alive():
            self._sender.force_close()
            self._sender.thread.join()
        self._release()

    def _release(self) -> None:
        self._metadata.close()
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------
    # Introspection.

    def metrics(self) -> dict[str, float]:
        """Counters since the producer started (Kafka's producer metric names, snake_case).

        Keys: record_send_total (records acknowledged), record_error_total (records failed),
        record_retry_total (records re-sent), batch_send_total, byte_send_total (encoded batch
        bytes acknowledged), request_total, request_latency_avg_ms / request_latency_max_ms
        (send to response), producer_id_resets_total, buffer_total_bytes, buffer_available_bytes,
        waiting_threads (blocked in send() for space), records_queued (not yet completed).
        """
        metrics = self._sender.metrics()
        accumulator = self._accumulator
        with accumulator.lock:
            metrics["buffer_total_bytes"] = accumulator.buffer_memory
            metrics["buffer_available_bytes"] = accumulator.buffer_memory - accumulator.buffer_used
            metrics["waiting_threads"] = accumulator.waiting_threads
            metrics["records_queued"] = sum(len(batch.futures) for batch in accumulator.incomplete)
        return metrics

    def partitions_for(self, topic: str) -> list[int]:
        """The partition numbers of `topic` (blocking up to max_block_ms for metadata).

        Raises:
            UnknownTopicError, MaxBlockTimeoutError: as send().
        """
        info = self._metadata.wait_for_topic(topic, self._max_block_s, self._propagation_s)
        return list(range(len(info.partitions)))


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be bytes, bytearray, memoryview or None, not {type(data).__name__}")


def _headers(
    headers: Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]],
) -> tuple[list[tuple[str, bytes | None]], int]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    size = 0
    checked: list[tuple[str, bytes | None]] = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"a header must be a (name, value) pair, not {pair!r}")
        name, value = pair
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, not {type(name).__name__}")
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, f"header {name!r} value")
        size += len(name) * 4 + (len(value) if value is not None else 0) + 10
        checked.append((name, value))
    return checked, size

