"""`freshet perf`: performance tools.

`freshet perf storage` benchmarks the storage engine against raw file I/O on this machine and
prints one JSON line (see `freshet.server.tools.storage_bench`). The benchmark module is imported only when the
command runs, so the CLI starts fast.

`freshet perf produce` / `perf consume` measure a running cluster through the SDK's Producer and
Consumer (kafka-producer-perf-test / kafka-consumer-perf-test): records/s, MB/s, and for produce
the send-to-ack latency of every record (p50/p95/p99/p999/max); `--sync` sends one record at a
time, each waiting for its ack (the JetStream peer's latency phase). Progress goes to stderr
(a bar on a terminal, periodic lines otherwise); `--json` prints one JSON line on stdout.

Both commands first give their own process the node's malloc policy (`freshet.server.malloc_tuning`:
freed multi-megabyte request and response buffers are kept for the next one instead of being
unmapped and faulted in again); `FRESHET_MALLOC_TUNING=off` keeps glibc's defaults, and the JSON
line says which (`malloc_tuned`). `perf produce` sends 1,000,000-byte batches by default, just
under the producer's `max_request_size` and the topic's default `max.message.bytes` (1,048,588),
so records of tens of KiB share a batch; the SDK's own default stays 65536.

Thread-safety: a command runs on the main thread; delivery callbacks (the SDK's sender thread)
append latencies under a lock.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap
from freshet.client.errors import FreshetError
from freshet.server import malloc_tuning

app = typer.Typer(name="perf", help="Measure Freshet's performance.", no_args_is_help=True)

#: `perf produce --batch-size` default: one batch per request, under max.message.bytes' 1,048,588.
PERF_BATCH_SIZE = 1_000_000


@app.command("storage")
def storage(
    quick: bool = typer.Option(False, "--quick", help="A short run: smaller logs and one repeat."),
    directory: str | None = typer.Option(
        None, "--dir", help="Parent directory of the temporary benchmark files (default: the temp dir)."
    ),
) -> None:
    """Benchmark the storage engine (append, read, random read, codec) against raw file I/O.

    Prints one JSON line on stdout; progress goes to stderr. Temporary files are removed.

    Examples:

      freshet perf storage
    """
    from freshet.server.tools import storage_bench as bench

    typer.echo(json.dumps(bench.run(quick=quick, directory=directory)))


# -- perf produce / perf consume -----------------------------------------------------------------



def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles (as the JetStream peer's bench) of send-to-ack latencies."""
    if not latencies_ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(latencies_ms)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1))
        return round(ordered[index], 3)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "p999_ms": rank(0.999), "max_ms": round(ordered[-1], 3)}


class _Progress:
    """Live progress on stderr: a rich progress bar on a terminal, else one line every 2 s."""

    def __init__(self, what: str, total: int, quiet: bool) -> None:
        self._what, self._total = what, total
        self._started = time.monotonic()
        self._next_line = self._started + 2.0
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(what, total=total)
            self._bar.start()
        self._quiet = quiet

    def update(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            return
        now = time.monotonic()
        if not self._quiet and now >= self._next_line:
            self._next_line = now + 2.0
            rate = done / max(now - self._started, 1e-9)
            print(f"{self._what}: {done}/{self._total} records, {rate:,.0f} records/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _summary_line(result: dict, kind: str) -> str:
    line = (f"{result['records']} records {kind} in {result['seconds']:.2f} s: {result['records_per_s']:,.0f} records/s, "
            f"{result['mb_per_s']:.2f} MB/s")
    if "p50_ms" in result:
        line += (f"; latency ms p50 {result['p50_ms']} p95 {result['p95_ms']} p99 {result['p99_ms']} "
                 f"p999 {result['p999_ms']} max {result['max_ms']}")
    if result.get("errors"):
        line += f"; {result['errors']} failed ({result['first_error']})"
    return line


@app.command("produce")
def produce(
    topic: str = typer.Option(..., "--topic", help="Topic to write to (it must exist)."),
    num_records: int = typer.Option(..., "--num-records", min=1, help="Records to send."),
    record_size: int = typer.Option(..., "--record-size", min=0, help="Bytes per record value (random, sent unkeyed)."),
    acks: str = typer.Option("all", "--acks", help="0, 1 or all."),
    batch_size: int = typer.Option(
        PERF_BATCH_SIZE, "--batch-size", min=1,
        help="Producer batch size in bytes (the SDK's default is 65536; 1,000,000 fits under max.message.bytes).",
    ),
    linger_ms: int = typer.Option(5, "--linger-ms", min=0, help="How long a batch waits for more records."),
    compression: str = typer.Option("none", "--compression", help="none, gzip, snappy, lz4 or zstd."),
    throughput: int = typer.Option(-1, "--throughput", help="Records/s to aim at; -1: as fast as possible."),
    max_in_flight: int = typer.Option(5, "--max-in-flight", min=1, help="Unacknowledged requests per broker."),
    sync: bool = typer.Option(False, "--sync", help="One record at a time, each waiting for its ack (latency mode)."),
    round_robin: bool = typer.Option(
        False, "--round-robin",
        help="Send record i to partition i mod the partition count (Kafka's RoundRobinPartitioner), not to sticky partitions.",
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line instead of the summary."),
) -> None:
    """Send records as fast as allowed and report records/s, MB/s and send-to-ack latency
    percentiles per record (p50/p95/p99/p999/max), like kafka-producer-perf-test.

    Examples:

      freshet perf produce --topic bench --num-records 100000 --record-size 1024 --acks all

      freshet perf produce --topic bench --num-records 2000 --record-size 1024 --sync --json

      freshet perf produce --topic bench --num-records 100000 --record-size 1024 --throughput 5000

      freshet perf produce --topic many --num-records 100000 --record-size 1024 --round-robin
    """
    acks_value = _acks_value(acks)
    malloc_tuned = malloc_tuning.keep_freed_memory()
    payload = os.urandom(record_size)
    deliveries = _Deliveries()
    cpu_before = time.process_time()
    producer = _open_producer(bootstrap, acks_value, batch_size, linger_ms, compression, max_in_flight, sync)
    progress = _Progress("produce", num_records, as_json)
    try:
        seconds = _send_records(producer, topic, payload, num_records, throughput, sync, round_robin, deliveries, progress)
    except FreshetError as error:
        progress.close()
        producer.close(5)
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    progress.close()
    producer.close()
    cpu = time.process_time() - cpu_before
    records = len(deliveries.latencies)
    result = {
        "mode": "sync" if sync else "async",
        "topic": topic,
        "records": records,
        "record_size": record_size,
        "acks": acks,
        "batch_size": batch_size,
        "partitioner": "round-robin" if round_robin else "sticky",
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1) if seconds > 0 else 0.0,
        "mb_per_s": round(records * record_size / seconds / 1e6, 3) if seconds > 0 else 0.0,
        **_percentiles(deliveries.latencies),
        "client_cpu_us_per_record": round(cpu * 1e6 / max(num_records, 1), 1),
        "errors": len(deliveries.errors),
        "first_error": deliveries.errors[0] if deliveries.errors else None,
        "malloc_tuned": malloc_tuned,
    }
    typer.echo(json.dumps(result) if as_json else _summary_line(result, "acknowledged"))
    if deliveries.errors:
        raise typer.Exit(1)


def _acks_value(acks: str) -> str | int:
    """The Producer's acks for --acks; a bad value is a usage error (exit 2)."""
    if acks not in ("0", "1", "all", "-1"):
        raise typer.BadParameter("--acks must be 0, 1 or all")
    return "all" if acks in ("all", "-1") else int(acks)


def _open_producer(
    bootstrap: str,
    acks: str | int,
    batch_size: int,
    linger_ms: int,
    compression: str,
    max_in_flight: int,
    sync: bool,
):
    """The perf Producer; an option value the SDK refuses (ValueError) is a usage error (exit 2).
    With `sync` it sends at once (no linger) and keeps one request in flight."""
    from freshet.client import Producer

    try:
        return Producer(
            bootstrap,
            acks=acks,
            batch_size=batch_size,
            linger_ms=0 if sync else linger_ms,
            compression=compression,
            max_in_flight=1 if sync else max_in_flight,
            client_id="freshet-perf-producer",
            **common.client_security(),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


class _Deliveries:
    """Send-to-ack latencies (ms) of the delivered records and the reprs of delivery errors.
    Thread-safe: delivery callbacks run on the SDK's sender thread and append under `lock`; read
    only after the producer is flushed. `_send_records` builds the callbacks inline (see there)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()


def _send_records(
    producer,
    topic: str,
    payload: bytes,
    num_records: int,
    throughput: int,
    sync: bool,
    round_robin: bool,
    deliveries: _Deliveries,
    progress: _Progress,
) -> float:
    """Send `num_records` records of `payload` (paced to `throughput` records/s when > 0; with
    `sync` each waits for its ack; with `round_robin` record i goes to partition i mod the
    partition count, else the SDK's sticky partitioner chooses) and flush; return the seconds
    taken, from the first send.

    Raises:
        FreshetError: fetching the topic's metadata or flushing failed.
    """
    partition_count = len(producer.partitions_for(topic))  # metadata first: not part of the clock
    latencies, errors, lock = deliveries.latencies, deliveries.errors, deliveries.lock
    started = time.monotonic()
    for index in range(num_records):
        if throughput > 0:
            ahead = index / throughput - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        sent_at = time.perf_counter()

        # The callback is built here, not by a method: this loop is the benchmark's hot path, and
        # one more Python call per record cost ~10% of records/s (py-spy: GIL hand-offs at the call).
        def on_delivery(metadata, error, sent_at=sent_at) -> None:
            elapsed_ms = (time.perf_counter() - sent_at) * 1000
            with lock:
                if error is None:
                    latencies.append(elapsed_ms)
                else:
                    errors.append(repr(error))

        partition = index % partition_count if round_robin else None
        future = producer.send(topic, value=payload, partition=partition, on_delivery=on_delivery)
        if sync:
            try:
                future.result()
            except FreshetError:
                pass  # counted by on_delivery
        if index % 1000 == 0:
            progress.update(index)
    producer.flush()
    return time.monotonic() - started


@app.command("consume")
def consume(
    topic: str = typer.Option(..., "--topic", help="Topic to read (every partition, from the beginning)."),
    messages: int = typer.Option(..., "--messages", min=1, help="Records to read before stopping."),
    group: str | None = typer.Option(
        None, "--group",
        help="Consume as a member of this group (subscribe: its committed offsets, else the beginning; auto commit).",
    ),
    timeout_ms: int = typer.Option(30000, "--timeout-ms", min=1, help="Give up when no record arrived for this long."),
    check_crcs: bool = typer.Option(
        True, "--check-crcs/--no-check-crcs",
        help="Verify each batch's CRC-32C before decoding it (the SDK's check_crcs, Kafka's check.crcs; on by default).",
    ),
    max_partition_fetch_bytes: int = typer.Option(
        1024 * 1024, "--max-partition-fetch-bytes", min=1,
        help="The SDK's max_partition_fetch_bytes: bytes per partition per fetch, and the prefetch bound (Kafka's fetch size).",
    ),
    fetch_max_bytes: int = typer.Option(
        50 * 1024 * 1024, "--fetch-max-bytes", min=1, help="The SDK's fetch_max_bytes: bytes per fetch response.",
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line instead of the summary."),
) -> None:
    """Read records from the beginning of every partition and report records/s and MB/s.

    Examples:

      freshet perf consume --topic bench --messages 100000

      freshet perf consume --topic bench --messages 100000 --group bench-readers --json

      freshet perf consume --topic bench --messages 100000 --no-check-crcs

      freshet perf consume --topic bench --messages 100000 --max-partition-fetch-bytes 16777216
    """
    malloc_tuned = malloc_tuning.keep_freed_memory()
    cpu_before = time.process_time()
    fetch_sizes = {"max_partition_fetch_bytes": max_partition_fetch_bytes, "fetch_max_bytes": fetch_max_bytes}
    consumer, partitions = _open_consumer(bootstrap, topic, group, check_crcs, fetch_sizes)
    progress = _Progress("consume", messages, as_json)
    try:
        count, size, seconds = _read_records(
            consumer, topic, group, partitions, messages, timeout_ms, progress
        )
    except FreshetError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        progress.close()
        consumer.close()
    cpu = time.process_time() - cpu_before
    result = {
        "topic": topic,
        "records": count,
        "bytes": size,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds, 1) if seconds > 0 else 0.0,
        "mb_per_s": round(size / seconds / 1e6, 3) if seconds > 0 else 0.0,
        "client_cpu_us_per_record": round(cpu * 1e6 / max(count, 1), 1),
        "check_crcs": check_crcs,
        "malloc_tuned": malloc_tuned,
        **fetch_sizes,
        "errors": 0 if count >= messages else 1,
        "first_error": None if count >= messages else f"only {count} of {messages} records within {timeout_ms} ms of silence",
    }
    typer.echo(json.dumps(result) if as_json else _summary_line(result, "read"))
    if count < messages:
        raise typer.Exit(1)


def _open_consumer(bootstrap: str, topic: str, group: str | None, check_crcs: bool = True,
                   fetch_sizes: dict[str, int] | None = None):
    """The perf Consumer (`fetch_sizes`: Consumer fetch-size options) and the sorted partition
    numbers of `topic`; a client error is printed and exits 1."""
    from freshet.client import Consumer

    try:
        consumer = Consumer(
            bootstrap,
            group_id=group,
            enable_auto_commit=group is not None,
            auto_offset_reset="earliest",
            client_id="freshet-perf-consumer",
            **common.client_security(),
            max_poll_records=10000,
            check_crcs=check_crcs,
            **(fetch_sizes or {}),
        )
    except FreshetError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        return consumer, sorted(consumer.partitions_for_topic(topic))
    except FreshetError as error:
        consumer.close()
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def _read_records(
    consumer,
    topic: str,
    group: str | None,
    partitions: list[int],
    messages: int,
    timeout_ms: int,
    progress: _Progress,
) -> tuple[int, int, float]:
    """Read until `messages` records or `timeout_ms` without one: subscribe as `group`, else
    assign every partition from the beginning. Return (records, value bytes, seconds); with a
    group the seconds include joining it.

    Raises:
        FreshetError: the consumer failed.
    """
    from freshet.client import TopicPartition

    count = 0
    size = 0
    started = time.monotonic()  # with --group the time includes joining the group
    if group is not None:
        consumer.subscribe([topic])
    else:
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
    last_record = started
    while count < messages:
        records = consumer.poll(timeout_ms=200)
        now = time.monotonic()
        if records:
            last_record = now
            count += len(records)
            size += sum(len(r.value or b"") for r in records)
            progress.update(count)
        elif (now - last_record) * 1000 > timeout_ms:
            break
    return count, size, time.monotonic() - started
