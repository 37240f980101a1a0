"""Client SDK benchmark: per-record CPU of the producer and consumer paths, and end-to-end rates.

Run from the repository root: .venv/bin/python -m tests.bench.client_perf [--records N] [--size BYTES]   (about a minute)

Prints one JSON line. The fake cluster (tests/support/fake_broker.py) runs in a child process,
so the figures for the client are its own process's CPU time, not the broker's:

- send_us_per_record: wall time of Producer.send() alone (to a topic whose leader does not exist,
  so nothing is sent during the loop), null key and with a key (murmur2); encode_*_us_per_record:
  encode_batch per record in 64-record batches, which the sender thread does once per batch;
- produce_client_cpu_us_per_record: the producer process's CPU (user+sys) per record for a whole
  run (send, encode once per batch with its CRC, gRPC, completing futures), acks=all, idempotent;
- produce_records_per_s: that run end to end against the fake broker (a Python gRPC server over
  real partition logs: its own speed bounds this figure);
- decode_us_per_record: Consumer.poll(max_records=500) over batches already prefetched, with and
  without CRC checks (decode_batch plus building ConsumerRecords);
- consume_records_per_s, consume_client_cpu_us_per_record: reading the produced records back;
- fetch_mb_per_s / fetch_stream_mb_per_s: raw bytes moved by back-to-back unary Fetch calls and by
  one FetchStream, without decoding, to compare the two transports for the consumer.

Imports the SDK and, in the child process, the fake broker and storage.
Thread-safety: a script; not imported by anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def serve(data_dir: str) -> None:
    """Child process: run a one-broker fake cluster until stdin closes."""
    from tests.support.fake_broker import FakeCluster

    with FakeCluster(data_dir, broker_count=1) as cluster:
        cluster.create_topic("bench", 1)
        cluster.create_topic("bench-parked", 4, leaders=[99, 99, 99, 99])
        print(json.dumps({"bootstrap": cluster.bootstrap}), flush=True)
        sys.stdin.read()


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def bench_send(bootstrap: str, count: int, values: list[bytes]) -> dict:
    """send() alone: the topic's leader (node 99) does not exist, so batches only queue up."""
    from freshet.client import Producer
    from freshet.storage.compression import CompressionType
    from freshet.storage.record_batch import encode_batch

    out = {}
    big = 1 << 31
    with Producer(bootstrap, buffer_memory=big, max_block_ms=600000) as producer:
        for label, keyed in (("send_us_per_record", False), ("send_keyed_us_per_record", True)):
            keys = [b"customer-%d" % (n % 1000) for n in range(count)] if keyed else [None] * count
            start = time.perf_counter()
            for n, key in enumerate(keys):
                producer.send("bench-parked", value=values[n & 63], key=key)
            out[label] = round((time.perf_counter() - start) / count * 1e6, 2)
        producer.close(timeout=0)
    # What the sender thread does once per batch, per record: encode_batch (records + one CRC).
    records = [(1_700_000_000_000 + n, None, values[n], ()) for n in range(64)]
    for codec in (CompressionType.NONE, CompressionType.ZSTD):
        start = time.perf_counter()
        rounds = max(count // 64, 1)
        for _ in range(rounds):
            encode_batch(records, compression=codec, producer_id=1, producer_epoch=0, base_sequence=0)
        out[f"encode_{codec.kafka_name}_us_per_record"] = round((time.perf_counter() - start) / (rounds * 64) * 1e6, 2)
    return out


def bench_produce(bootstrap: str, count: int, values: list[bytes]) -> dict:
    from freshet.client import Producer

    with Producer(bootstrap, acks="all", linger_ms=5, batch_size=65536) as producer:
        assert producer.config["enable_idempotence"]
        producer.send("bench", value=b"warm-up").result(30)
        cpu = _cpu_s()
        start = time.perf_counter()
        for n in range(count):
            producer.send("bench", value=values[n & 63])
        producer.flush(300)
        elapsed = time.perf_counter() - start
        cpu = _cpu_s() - cpu
        metrics = producer.metrics()
    assert metrics["record_error_total"] == 0
    return {
        "produce_records_per_s": round(count / elapsed),
        "produce_mb_per_s": round(count * len(values[0]) / elapsed / 1e6, 1),
        "produce_client_cpu_us_per_record": round(cpu / count * 1e6, 2),
        "produce_request_latency_avg_ms": round(metrics["request_latency_avg_ms"], 2),
        "produce_batches": metrics["batch_send_total"],
    }


def bench_consume(bootstrap: str, count: int) -> dict:
    from freshet.client import Consumer, TopicPartition

    tp = TopicPartition("bench", 0)
    out = {}
    with Consumer(bootstrap, auto_offset_reset="earliest", max_poll_records=5000) as consumer:
        consumer.assign([tp])
        cpu = _cpu_s()
        start = time.perf_counter()
        got = 0
        while got < count:
            got += len(consumer.poll(timeout_ms=5000))
        elapsed = time.perf_counter() - start
        cpu = _cpu_s() - cpu
    out["consume_records_per_s"] = round(got / elapsed)
    out["consume_client_cpu_us_per_record"] = round(cpu / got * 1e6, 2)
    # Decode alone: let the fetcher buffer everything first, then time poll().
    for label, check_crcs in (("decode_us_per_record", True), ("decode_no_crc_us_per_record", False)):
        limit = 1 << 30
        with Consumer(
            bootstrap,
            auto_offset_reset="earliest",
            max_poll_records=limit,
            max_partition_fetch_bytes=limit,
            fetch_max_bytes=limit,
            check_crcs=check_crcs,
        ) as consumer:
            consumer.assign([tp])
            deadline = time.monotonic() + 60
            while consumer.metrics()["bytes_fetched_total"] < count * 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            got = 0
            start = time.perf_counter()
            while True:
                records = consumer.poll(timeout_ms=0, max_records=500)  # Kafka's max.poll.records
                if not records:
                    break
                got += len(records)
            elapsed = time.perf_counter() - start
        assert got >= count
        out[label] = round(elapsed / got * 1e6, 2)
    return out


def bench_fetch_transports(bootstrap: str, seconds: float) -> dict:
    """Bytes per second moved by unary Fetch in a loop versus one FetchStream (no decoding)."""
    import grpc
    from freshet.v1 import broker_pb2, broker_pb2_grpc

    address = bootstrap.split(",")[0]
    options = [("grpc.max_receive_message_length", -1)]
    out = {}
    with grpc.insecure_channel(address, options=options) as channel:
        stub = broker_pb2_grpc.BrokerStub(channel)
        end = stub.ListOffsets(
            broker_pb2.ListOffsetsRequest(partitions=[broker_pb2.PartitionOffsetQuery(topic="bench", partition=0, timestamp=-1)])
        ).results[0].offset

        def request(offset: int) -> broker_pb2.FetchRequest:
            return broker_pb2.FetchRequest(
                max_wait_ms=0,
                min_bytes=1,
                max_bytes=50 << 20,
                partitions=[broker_pb2.PartitionFetch(topic="bench", partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)],
            )

        moved = 0
        offset = 0
        calls = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            result = stub.Fetch(request(offset), timeout=30).results[0]
            moved += len(result.records)
            calls += 1
            offset = result.next_fetch_offset if result.records and result.next_fetch_offset < end else 0
        out["fetch_mb_per_s"] = round(moved / (time.perf_counter() - start) / 1e6, 1)
        out["fetch_calls_per_s"] = round(calls / (time.perf_counter() - start))
        moved = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            stream = stub.FetchStream(request(0), timeout=60)
            for response in stream:
                for result in response.results:
                    moved += len(result.records)
                if not response.results or response.results[-1].next_fetch_offset >= end:
                    break
            stream.cancel()
        out["fetch_stream_mb_per_s"] = round(moved / (time.perf_counter() - start) / 1e6, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    # 64 different random values: compression finds no repeats inside a 64-record batch.
    values = [os.urandom(args.size) for _ in range(64)]
    with tempfile.TemporaryDirectory(prefix="freshet-client-bench-") as data_dir:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.client_perf", "--serve", data_dir],
            cwd=REPO,                                   # the repository root: `tests` is importable
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            bootstrap = json.loads(child.stdout.readline())["bootstrap"]
            result = {"records": args.records, "record_bytes": args.size}
            result |= bench_send(bootstrap, min(args.records, 100_000), values)
            result |= bench_produce(bootstrap, args.records, values)
            result |= bench_consume(bootstrap, args.records)
            result |= bench_fetch_transports(bootstrap, 3.0)
        finally:
            child.stdin.close()
            child.wait(30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
