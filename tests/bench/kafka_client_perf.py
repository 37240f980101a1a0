"""confluent-kafka (librdkafka) client phases against a Kafka listener, one per run (not a test).

    .venv/bin/python -m tests.bench.kafka_client_perf produce|sync|consume --bootstrap HOST:PORT,...
        --topic T [--num-records 100000] [--record-size 1024] [--batch-size 262144] [--linger-ms 5]
        [-X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512 -X ... (librdkafka settings)]

tests/bench/kafka_vs_grpc.py runs it as a child process, one phase per run, so that the client's
CPU is measured apart from the benchmark driver's and the brokers' (the counterpart of
`freshet perf produce` / `perf consume` for the SDK over gRPC). Prints ONE JSON line on stdout with
the same keys as `freshet perf ... --json` (records, records_per_s, mb_per_s, p50_ms..max_ms,
client_cpu_us_per_record, errors, first_error) plus the client settings used (any setting
whose name says password is printed as "<secret>").

- produce: a Producer with acks=all, enable.idempotence, linger.ms, batch.size (and
  batch.num.messages = batch.size / record size: the SDK's perf batches are 256 KiB),
  compression none, at most 5 requests in flight and a 32 MiB buffer (the SDK's defaults), sends
  N random records of --record-size bytes, unkeyed, to partition 0. The clock runs from the first
  produce() to the end of flush() (the last delivery report). Send-to-ack latency per record is
  librdkafka's own (Message.latency(): from produce() to the delivery report being served, as the
  SDK measures its own at its delivery callback); poll(0) after every produce() serves reports.
- sync: one record at a time, produce() then flush(), N samples (linger.ms 0, as `perf produce
  --sync`); the latency is the wall time of produce()+flush() for each.
- consume: a Consumer in assign mode from offset 0 of partition 0, reading N records in
  consume(--consume-batch) batches, never asking for more than remain (consume(n) waits its
  whole timeout when fewer than n messages come). The Python binding insists on a group.id; it is set but never used: no
  subscribe(), no commit. (When the README's run was measured the broker did not advertise
  FindCoordinator, so librdkafka sent no group request at all; now it may look the coordinator up,
  but it never joins or commits.)

Metadata is fetched before the clock starts, as the SDK's perf does; the producer phases also
send one warm-up record first (see `produce`), so the topic holds one more record than counted. CPU is this process's
(time.process_time, all librdkafka threads included) from creating the client to closing it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles, as `freshet perf produce` and the JetStream peer compute them."""
    if not latencies_ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(latencies_ms)

    def rank(p: float) -> float:
        return round(ordered[max(0, min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1))], 3)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "p999_ms": rank(0.999),
            "max_ms": round(ordered[-1], 3)}


def shown(config: dict) -> dict:
    """The config as printed: secrets (sasl.password) replaced by a marker."""
    return {key: "<secret>" if "password" in key else value for key, value in config.items()}


def extra_settings(pairs: list[str]) -> dict[str, str]:
    """`-X key=value` librdkafka settings (security.protocol, sasl.*, ssl.ca.location, ...)."""
    settings = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise SystemExit(f"-X {pair!r}: expected key=value")
        settings[key] = value
    return settings


def producer_config(args, sync: bool, on_delivery) -> dict:
    return {
        "bootstrap.servers": args.bootstrap,
        "client.id": "kafka-bench-producer",
        "acks": "all",
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 1 if sync else 5,
        "linger.ms": 0 if sync else args.linger_ms,
        "batch.size": args.batch_size,
        "batch.num.messages": max(1, args.batch_size // max(args.record_size, 1)),
        "compression.type": "none",
        "queue.buffering.max.kbytes": 32 * 1024,
        "on_delivery": on_delivery,
        **args.extra,
    }


def produce(args, sync: bool) -> dict:
    payload = os.urandom(args.record_size)
    latencies: list[float] = []
    errors: list[str] = []

    def on_delivery(error, message) -> None:
        if error is None:
            latencies.append(message.latency() * 1000)
        else:
            errors.append(str(error))

    cpu_before = time.process_time()
    config = producer_config(args, sync, on_delivery)
    producer = Producer(config)
    producer.list_topics(args.topic, timeout=10)           # metadata first: not part of the clock
    topic, n = args.topic, args.num_records
    # One warm-up record, not part of the clock or the figures: librdkafka's idempotence FSM
    # sometimes finds no broker up when it first asks for a producer id and retries on a timer,
    # which put a ~1 s first record into a smoke run (a client start-up artefact, not the broker).
    producer.produce(topic, payload, partition=0)
    producer.flush(30)
    if errors:
        raise SystemExit(f"warm-up record failed: {errors[0]}")
    latencies.clear()
    started = time.perf_counter()
    if sync:
        for _ in range(n):
            delivered = len(latencies)
            sent_at = time.perf_counter()
            producer.produce(topic, payload, partition=0)
            producer.flush(30)
            if len(latencies) > delivered:                 # acknowledged: the wall time is its latency
                latencies[-1] = (time.perf_counter() - sent_at) * 1000
    else:
        for _ in range(n):
            while True:
                try:
                    producer.produce(topic, payload, partition=0)
                    break
                except BufferError:                        # the 32 MiB buffer is full: serve reports
                    producer.poll(0.001)
            producer.poll(0)
    left = producer.flush(60)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    records = len(latencies)
    if left:
        errors.append(f"{left} records still unacknowledged after flush(60)")
    config.pop("on_delivery")
    config = shown(config)
    return {
        "client": "confluent-kafka", "mode": "sync" if sync else "async", "topic": topic, "records": records,
        "record_size": args.record_size, "acks": "all", "batch_size": args.batch_size, "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1), "mb_per_s": round(records * args.record_size / seconds / 1e6, 3),
        **percentiles(latencies), "client_cpu_us_per_record": round(cpu * 1e6 / max(n, 1), 1),
        "errors": len(errors), "first_error": errors[0] if errors else None, "config": config,
    }


def consume(args) -> dict:
    cpu_before = time.process_time()
    config = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "kafka-bench-consumer",
        "group.id": "kafka-bench-unused",                  # required by the binding; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "max.partition.fetch.bytes": 1024 * 1024,          # the SDK's max_partition_fetch_bytes
        "fetch.max.bytes": 50 * 1024 * 1024,               # the SDK's fetch_max_bytes
        **args.extra,
    }
    consumer = Consumer(config)
    metadata = consumer.list_topics(args.topic, timeout=10)  # metadata first: not part of the clock
    partitions = sorted(metadata.topics[args.topic].partitions)
    count = size = 0
    errors: list[str] = []
    started = time.perf_counter()
    consumer.assign([TopicPartition(args.topic, partition, 0) for partition in partitions])
    last_record = started
    while count < args.num_records:
        # Never ask for more than is left: consume(n) waits its whole timeout for n messages, so
        # asking for 1000 when 192 remain would add 0.2 s of waiting to the clock.
        batch = consumer.consume(min(args.consume_batch, args.num_records - count), 0.2)
        now = time.perf_counter()
        for message in batch:
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(str(message.error()))
                continue
            count += 1
            size += len(message.value())
        if batch:
            last_record = now
        elif now - last_record > 30:
            errors.append(f"only {count} of {args.num_records} records within 30 s of silence")
            break
    seconds = time.perf_counter() - started
    consumer.close()
    cpu = time.process_time() - cpu_before
    config = shown(config)
    return {
        "client": "confluent-kafka", "topic": args.topic, "records": count, "bytes": size,
        "bytes_ok": size == count * args.record_size, "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds, 1), "mb_per_s": round(size / seconds / 1e6, 3),
        "client_cpu_us_per_record": round(cpu * 1e6 / max(count, 1), 1),
        "errors": len(errors), "first_error": errors[0] if errors else None, "config": config,
        "partitions": len(partitions), "consume_batch": args.consume_batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("produce", "sync", "consume"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--num-records", type=int, default=100_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=262144)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--consume-batch", type=int, default=1000, help="consume: messages asked of each consume() call")
    parser.add_argument("-X", dest="extra_pairs", action="append", default=[],
                        help="a librdkafka setting key=value (repeatable), e.g. security.protocol=SASL_SSL")
    args = parser.parse_args()
    args.extra = extra_settings(args.extra_pairs)
    result = consume(args) if args.phase == "consume" else produce(args, sync=args.phase == "sync")
    print(json.dumps(result), flush=True)
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
