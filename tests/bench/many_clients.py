"""Many clients: 1,000 idle connections and 100 active producers + 100 consumers at once (not a test).

    .venv/bin/python -m tests.bench.many_clients [--idle 1000] [--active 100] [--rate 20] [--active-s 30]
        [--idle-s 10] [--workers 4] [--skip-wait] [--max-wait 120]
        [--out tests/bench/results/2026-12-07-many_clients.json]

On `freshet cluster up --nodes 3` (tests/bench/broker_vs_jetstream.py's helpers), with a topic of
--active partitions at RF 3 (min.insync.replicas=2):

1. baseline: every broker's resident memory (VmRSS) and the CPU the 3 idle nodes use over --idle-s;
2. idle gRPC: --idle connections spread over the 3 brokers, each its own gRPC channel (own TCP
   connection: a local subchannel pool) that made one Metadata call, as an SDK client does first;
   RSS and idle CPU again, then the connections are closed;
3. idle Kafka: --idle raw Kafka-protocol TCP connections spread over the brokers' Kafka
   listeners, each after ApiVersions v0 and Metadata v1 (no topics), as librdkafka does first;
   RSS and idle CPU again. These stay open through phase 4;
4. active: --active SDK producers and --active SDK consumers at once, in --workers processes;
   producer k sends --rate records/s of 1 KiB with acks=all to partition k, consumer k reads
   partition k from its end (assign mode). Per client: records acknowledged / received per s
   within the window (a record acknowledged after the window's end is not counted), and the
   rate each worker's pacing thread actually sent at.
   No starvation means every client made progress: the JSON gives min / median / max per-client
   rates and how many clients were at zero.

Memory per connection = (RSS with the connections - RSS before) / connections on that broker,
from /proc; idle CPU = the 3 nodes' CPU seconds over --idle-s (cores). Each phase records what
else the machine did meanwhile (`other_cores_busy`). Prints ONE JSON line and writes it to
--out. Every process and socket started is closed; the cluster is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

import grpc
from freshet.v1 import broker_pb2, broker_pb2_grpc

from tests.bench.broker_vs_jetstream import (
    busy_cores,
    create_topic,
    local_cluster,
    log,
    machine_ticks,
    proc_cpu_s,
    wait_for_quiet,
)

HERE = pathlib.Path(__file__).resolve().parent
TOPIC = "many"
API_VERSIONS, METADATA = 18, 3


# -- measurements ------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def idle_window(pids: list[int], seconds: float) -> dict:
    """The nodes' CPU (cores) over `seconds` of doing nothing but holding connections, and the
    other load on the machine meanwhile; RSS and threads per node at the end."""
    time.sleep(2.0)  # let connection set-up work finish before the window
    cpu_before, ticks_before, start = [proc_cpu_s(p) for p in pids], machine_ticks(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    used = [proc_cpu_s(p) - before for p, before in zip(pids, cpu_before, strict=True)]
    machine = busy_cores(ticks_before, machine_ticks())
    return {
        "nodes_idle_cores": round(sum(used) / wall, 3),
        "other_cores_busy": round(max(0.0, machine - sum(used) / wall), 2),
        "rss_mib": [round(rss_bytes(p) / 2**20, 1) for p in pids],
        "threads": [threads_of(p) for p in pids],
    }


def per_connection_kib(before: dict, after: dict, per_node: list[int]) -> list[float]:
    return [round((a - b) * 1024 / max(n, 1), 1) for a, b, n in zip(after["rss_mib"], before["rss_mib"], per_node, strict=True)]


# -- idle connections ------------------------------------------------------------------------------


def open_grpc_connections(addresses: list[str], count: int) -> list[grpc.Channel]:
    """`count` channels, each its own TCP connection, each after one Metadata call."""
    channels = []
    for number in range(count):
        channel = grpc.insecure_channel(addresses[number % len(addresses)],
                                        options=[("grpc.use_local_subchannel_pool", 1)])
        broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(topics=[TOPIC]), timeout=30)
        channels.append(channel)
    return channels


def _kafka_request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"many-clients"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def _read_frame(connection: socket.socket) -> bytes:
    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the Kafka connection")
            data += chunk
        return data

    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)


def open_kafka_connections(addresses: list[str], count: int) -> list[socket.socket]:
    """`count` Kafka-protocol connections, each after ApiVersions v0 and Metadata v1 (no topics)."""
    sockets = []
    for number in range(count):
        host, port = addresses[number % len(addresses)].rsplit(":", 1)
        connection = socket.create_connection((host, int(port)), timeout=30)
        sockets.append(connection)
        connection.sendall(_kafka_request(API_VERSIONS, 0, 1, b""))
        answer = _read_frame(connection)
        assert struct.unpack(">ih", answer[:6]) == (1, 0), f"ApiVersions failed: {answer[:6]!r}"
        connection.sendall(_kafka_request(METADATA, 1, 2, struct.pack(">i", 0)))
        assert struct.unpack(">i", _read_frame(connection)[:4]) == (2,)
    return sockets


# -- active clients (worker processes) -------------------------------------------------------------


def active_worker(args) -> None:
    """Producers and consumers for partitions [first, first + count): one JSON line with each
    client's count over the window after everyone started."""
    from freshet.client import Consumer, Producer, TopicPartition

    partitions = range(args.first, args.first + args.count)
    producers = {p: Producer(args.bootstrap, acks="all", linger_ms=5, client_id=f"active-p{p}") for p in partitions}
    consumers = {}
    for p in partitions:
        consumer = Consumer(args.bootstrap, auto_offset_reset="latest", client_id=f"active-c{p}")
        consumer.assign([TopicPartition(TOPIC, p)])
        consumer.seek_to_end()
        consumer.position(TopicPartition(TOPIC, p))
        consumers[p] = consumer
    for p, producer in producers.items():
        producer.send(TOPIC, value=b"w" * 1024, partition=p).result(60)  # connected and warm
    print("READY", flush=True)
    start, seconds = (float(x) for x in sys.stdin.readline().split())
    acked = dict.fromkeys(partitions, 0)
    received = dict.fromkeys(partitions, 0)
    sent = [0]  # per producer (all producers of a worker send on the same ticks)
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = start + seconds

    def produce() -> None:
        value = b"x" * 1024
        number = 0
        while True:
            due = start + number / args.rate
            if due >= stop_at:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            for p, producer in producers.items():
                producer.send(TOPIC, value=value, partition=p, on_delivery=lambda m, e, p=p: count(p, e))
            number += 1
            sent[0] = number

    def count(p: int, error) -> None:
        with lock:
            if error is None:
                if time.monotonic() < stop_at:
                    acked[p] += 1
            else:
                errors.append(repr(error))

    def consume(p: int, consumer) -> None:
        while time.monotonic() < stop_at:
            records = consumer.poll(timeout_ms=200)
            if time.monotonic() < stop_at:
                received[p] += len(records)

    threads = [threading.Thread(target=produce)] + [threading.Thread(target=consume, args=item) for item in consumers.items()]
    time.sleep(max(0.0, start - time.monotonic()))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in [*producers.values(), *consumers.values()]:
        client.close()
    usage = os.times()
    print(json.dumps({"acked": acked, "received": received, "sent_per_producer": sent[0], "errors": errors[:5], "error_count": len(errors),
                      "cpu_s": round(usage.user + usage.system, 2)}), flush=True)


def active_phase(args, cluster: dict) -> dict:
    """--active producers and consumers in --workers processes; per-client rates."""
    share = args.active // args.workers
    workers = []
    try:
        for index in range(args.workers):
            first = index * share
            count = share if index < args.workers - 1 else args.active - first
            argv = [sys.executable, "-m", "tests.bench.many_clients", "--role", "active", "--bootstrap",
                    cluster["bootstrap"], "--first", str(first), "--count", str(count), "--rate", str(args.rate)]
            workers.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for worker in workers:
            if worker.stdout.readline().strip() != "READY":
                raise RuntimeError(f"an active worker failed to start (exit {worker.poll()})")
        start = time.monotonic() + 1.0
        for worker in workers:
            worker.stdin.write(f"{start} {args.active_s}\n")
            worker.stdin.flush()
        pids = cluster["pids"]
        time.sleep(max(0.0, start - time.monotonic()))
        cpu_before = sum(proc_cpu_s(p) for p in pids)
        clients_before = sum(proc_cpu_s(w.pid) for w in workers)
        ticks_before = machine_ticks()
        time.sleep(args.active_s)
        nodes_cpu = sum(proc_cpu_s(p) for p in pids) - cpu_before
        clients_cpu = sum(proc_cpu_s(w.pid) for w in workers) - clients_before
        machine = busy_cores(ticks_before, machine_ticks())
        reports = [json.loads(worker.stdout.readline()) for worker in workers]
        for worker in workers:
            worker.wait(60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    seconds = args.active_s
    produced = [n / seconds for r in reports for n in r["acked"].values()]
    consumed = [n / seconds for r in reports for n in r["received"].values()]
    return {
        "sent_per_producer_per_s": spread([r["sent_per_producer"] / seconds for r in reports], args.rate),
        "producers": spread(produced, args.rate),
        "consumers": spread(consumed, args.rate),
        "errors": sum(r["error_count"] for r in reports),
        "error_samples": [e for r in reports for e in r["errors"]][:5],
        "nodes_cores": round(nodes_cpu / seconds, 2),
        "clients_cores": round(clients_cpu / seconds, 2),
        "nodes_cpu_us_per_record": round(nodes_cpu / max(sum(produced) * seconds, 1) * 1e6, 1),
        "other_cores_busy": round(max(0.0, machine - (nodes_cpu + clients_cpu) / seconds), 2),
        "rss_mib": [round(rss_bytes(p) / 2**20, 1) for p in pids],
    }


def spread(rates: list[float], target: float) -> dict:
    """Per-client rates: min / median / max, clients at zero, min as a fraction of the target."""
    return {"clients": len(rates), "target_per_s": target, "min_per_s": round(min(rates), 2),
            "median_per_s": round(statistics.median(rates), 2), "max_per_s": round(max(rates), 2),
            "at_zero": sum(1 for rate in rates if rate == 0), "min_over_target": round(min(rates) / target, 2)}


# -- the parent ------------------------------------------------------------------------------------


def run(args) -> dict:
    out: dict = {}
    with local_cluster(args.tmp) as cluster:
        pids = cluster["pids"]
        create_topic(cluster["admin"], TOPIC, 3, partitions=args.active)
        grpc_addresses = [node["listen"] for node in cluster["nodes"]]
        kafka_addresses = [node["kafka"] for node in cluster["nodes"]]
        per_node = [len(range(n, args.idle, len(pids))) for n in range(len(pids))]
        time.sleep(3.0)
        log("baseline")
        out["baseline"] = baseline = idle_window(pids, args.idle_s)
        log(f"  {baseline}")
        log(f"{args.idle} idle gRPC connections")
        channels = open_grpc_connections(grpc_addresses, args.idle)
        try:
            out["idle_grpc"] = idle_grpc = idle_window(pids, args.idle_s)
            idle_grpc["kib_per_connection"] = per_connection_kib(baseline, idle_grpc, per_node)
            log(f"  {idle_grpc}")
        finally:
            for channel in channels:
                channel.close()
        time.sleep(3.0)
        log(f"{args.idle} idle Kafka connections")
        before_kafka = idle_window(pids, 2.0)
        sockets = open_kafka_connections(kafka_addresses, args.idle)
        try:
            out["idle_kafka"] = idle_kafka = idle_window(pids, args.idle_s)
            idle_kafka["kib_per_connection"] = per_connection_kib(before_kafka, idle_kafka, per_node)
            log(f"  {idle_kafka}")
            log(f"{args.active} producers + {args.active} consumers, {args.idle} Kafka connections still open")
            out["active"] = active_phase(args, cluster)
            log(f"  {out['active']}")
            # Every idle connection still answers after the active phase (none was dropped).
            alive = 0
            for connection in sockets:
                connection.sendall(_kafka_request(API_VERSIONS, 0, 3, b""))
                alive += struct.unpack(">i", _read_frame(connection)[:4]) == (3,)
            out["idle_kafka_still_answering"] = alive
        finally:
            for connection in sockets:
                connection.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--active", type=int, default=100, help="producers, and as many consumers")
    parser.add_argument("--rate", type=float, default=20, help="records/s per producer")
    parser.add_argument("--active-s", type=float, default=30)
    parser.add_argument("--idle-s", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true")
    parser.add_argument("--max-wait", type=float, default=120)
    parser.add_argument("--out", default=str(HERE / "results" / "2026-12-07-many_clients.json"))
    parser.add_argument("--role", choices=("active",))
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.role == "active":
        active_worker(args)
        return
    wait_for_quiet(args)
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "idle_connections": args.idle,
              "active_producers": args.active, "active_consumers": args.active, "rate_per_producer": args.rate,
              "waited_for_quiet": not args.skip_wait, "preflight_busy_cores": args.preflight_busy_cores, **run(args)}
    line = json.dumps(result)
    pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
