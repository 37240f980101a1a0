"""OpenMessaging-style end-to-end latency: Freshet vs the NATS JetStream R3 peer, one run (not a test).

    .venv/bin/python -m tests.bench.omb_latency [--rates 5000,10000] [--warmup-s 10] [--measure-s 30]
        [--partitions 100] [--size 1024] [--producers 4] [--consumers 4] [--systems jetstream,freshet,kafka]
        [--skip-wait] [--max-wait 120] [--out tests/bench/results/2026-12-07-omb_latency.json]

The workload of OpenMessaging Benchmark's "1 topic / 100 partitions / 1 KiB" driver files: one
topic of 100 partitions at RF 3 with min.insync.replicas=2, 4 producer processes and 4 consumer
processes, acks=all, a fixed target rate (split evenly over the producers, paced on a schedule),
a warm-up, then a measured window. Every record carries its send time (CLOCK_MONOTONIC, shared by
all processes of the machine) in its first 8 bytes:

- publish latency: send() to the delivery callback (acknowledged by the ISR), for records sent in
  the measured window;
- end-to-end latency: send() to the consumer's poll() returning the record, for records sent in
  the measured window (consumers keep reading 3 s past its end to drain).

Freshet side (this process's venv): `freshet cluster up --nodes 3` (tests/bench/broker_vs_jetstream.py's
helpers), SDK producers (linger_ms=1, idempotent, round-robin over partitions as OMB's no-key
distributor) and SDK consumers in assign mode (25 partitions each, from the end, no commits).
JetStream side: tests/bench/omb_jetstream.py, run with the peer venv (/tmp/peers-venv): one R3
file stream over 100 subjects, 4 async publishers, 4 push subscribers of one queue group (no
acks), the same rates and windows. Third column (`kafka`): the same Freshet cluster and topic driven
by confluent-kafka (librdkafka) on the Kafka listener: acks=all, idempotent, linger.ms=1; consumers
in assign mode from the ends, fetch.wait.max.ms=100. Every side writes its raw samples to a temp
dir; this script computes all percentiles with one function (nearest rank).

For each (system, rate) the JSON records what else the machine did during the measured window
(`other_cores_busy`), the servers' and the clients' CPU (µs per record), the rates achieved, and
errors. Prints ONE JSON line and writes it to --out. Every process started is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array

from tests.bench.broker_vs_jetstream import (
    PEER_PYTHON,
    busy_cores,
    create_topic,
    local_cluster,
    log,
    machine_ticks,
    proc_cpu_s,
    run_json,
    wait_for_quiet,
)
from tests.bench.kafka_client_perf import percentiles

HERE = pathlib.Path(__file__).resolve().parent
TOPIC = "omb"
DRAIN_S = 3.0
#: Worker processes wait this long after "go" for everyone's first send (imports are done by then).
START_MARGIN_S = 1.0


# -- workers (child processes) ----------------------------------------------------------------------


def _wait_for_go() -> tuple[float, float, float]:
    """Tell the parent we are ready; read "start warmup_s measure_s" (monotonic seconds) back."""
    print("READY", flush=True)
    start, warmup_s, measure_s = (float(x) for x in sys.stdin.readline().split())
    return start, start + warmup_s, start + warmup_s + measure_s


class LatencyLog:
    """Samples (µs) and counters of one worker; callbacks may come from client threads."""

    def __init__(self) -> None:
        self.samples = array("q")
        self.counters = {"sent": 0, "acked": 0, "errors": 0, "measured_sent": 0, "received": 0}
        self.lock = threading.Lock()

    def delivered(self, error, sent_ns: int, is_measured: bool) -> None:
        now_ns = time.monotonic_ns()
        with self.lock:
            if error is not None:
                self.counters["errors"] += 1
                return
            self.counters["acked"] += 1
            if is_measured:
                self.samples.append((now_ns - sent_ns) // 1000)

    def finish(self, args, prefix: str) -> None:
        with open(os.path.join(args.samples, f"{prefix}-{args.client}-{args.index}.bin"), "wb") as f:
            self.samples.tofile(f)
        usage = os.times()
        print(json.dumps({**self.counters, "measured": len(self.samples),
                          "cpu_s": round(usage.user + usage.system, 2)}), flush=True)


def paced_sends(args, log_: LatencyLog, send) -> None:
    """Call send(value, partition, sent_ns, is_measured) args.rate times per s on a fixed schedule
    from "go" to the end of the measured window, round-robin over the partitions."""
    filler = os.urandom(args.size - 8)
    start, measure_from, measure_to = _wait_for_go()
    interval_s = 1.0 / args.rate
    number = 0
    while True:
        due = start + number * interval_s
        if due >= measure_to:
            return
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent_ns = time.monotonic_ns()
        is_measured = measure_from <= sent_ns / 1e9 < measure_to
        partition = (number * args.producers + args.index) % args.partitions
        send(sent_ns.to_bytes(8, "big") + filler, partition, sent_ns, is_measured)
        number += 1
        log_.counters["sent"] += 1
        log_.counters["measured_sent"] += is_measured


def timed_reads(args, log_: LatencyLog, poll) -> None:
    """Call poll() -> [value] until DRAIN_S after the measured window; log send-to-poll latencies."""
    _, measure_from, measure_to = _wait_for_go()
    from_ns, to_ns = int(measure_from * 1e9), int(measure_to * 1e9)
    while time.monotonic() < measure_to + DRAIN_S:
        values = poll()
        now_ns = time.monotonic_ns()
        for value in values:
            sent_ns = int.from_bytes(value[:8], "big")
            if from_ns <= sent_ns < to_ns:
                log_.samples.append((now_ns - sent_ns) // 1000)
        log_.counters["received"] += len(values)


def sdk_producer(args) -> None:
    """The Freshet SDK: acks=all, idempotent (the default), linger_ms=1."""
    from freshet.client import Producer

    producer = Producer(args.bootstrap, acks="all", linger_ms=1, client_id=f"omb-producer-{args.index}")
    producer.send(TOPIC, value=bytes(args.size), partition=args.index % args.partitions).result(60)
    log_ = LatencyLog()

    def send(value: bytes, partition: int, sent_ns: int, is_measured: bool) -> None:
        producer.send(TOPIC, value=value, partition=partition,
                      on_delivery=lambda m, e: log_.delivered(e, sent_ns, is_measured))

    paced_sends(args, log_, send)
    producer.flush(60)
    producer.close(10)
    log_.finish(args, "publish")


def sdk_consumer(args) -> None:
    """The Freshet SDK in assign mode over its share of the partitions, from their ends."""
    from freshet.client import Consumer, TopicPartition

    consumer = Consumer(args.bootstrap, auto_offset_reset="latest", client_id=f"omb-consumer-{args.index}")
    mine = [TopicPartition(TOPIC, p) for p in range(args.index, args.partitions, args.consumers)]
    consumer.assign(mine)
    consumer.seek_to_end()
    for tp in mine:
        consumer.position(tp)  # resolved before the clock starts
    log_ = LatencyLog()
    timed_reads(args, log_, lambda: [record.value for record in consumer.poll(timeout_ms=100)])
    consumer.close()
    log_.finish(args, "e2e")


def kafka_producer(args) -> None:
    """confluent-kafka on the Kafka listener: acks=all, idempotent, linger.ms=1 (as the SDK)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 1, "client.id": f"omb-kafka-producer-{args.index}"})
    producer.produce(TOPIC, value=bytes(args.size), partition=args.index % args.partitions)
    producer.flush(60)
    log_ = LatencyLog()

    def send(value: bytes, partition: int, sent_ns: int, is_measured: bool) -> None:
        producer.produce(TOPIC, value=value, partition=partition,
                         on_delivery=lambda error, message: log_.delivered(error, sent_ns, is_measured))
        producer.poll(0)

    paced_sends(args, log_, send)
    producer.flush(60)
    log_.finish(args, "publish")


def kafka_consumer(args) -> None:
    """confluent-kafka in assign mode from the ends (the binding needs a group.id; never used)."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"omb-unused-{args.index}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                         "client.id": f"omb-kafka-consumer-{args.index}"})
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_END) for p in range(args.index, args.partitions, args.consumers)])
    consumer.consume(num_messages=1, timeout=2)  # connected and positioned before the clock
    log_ = LatencyLog()

    def poll() -> list[bytes]:
        return [m.value() for m in consumer.consume(num_messages=1000, timeout=0.1) if m.error() is None]

    timed_reads(args, log_, poll)
    consumer.close()
    log_.finish(args, "e2e")


WORKERS = {("producer", "sdk"): sdk_producer, ("consumer", "sdk"): sdk_consumer,
           ("producer", "kafka"): kafka_producer, ("consumer", "kafka"): kafka_consumer}


# -- the parent ------------------------------------------------------------------------------------


def summarize(samples: array) -> dict:
    """Nearest-rank percentiles of µs samples, in ms (kafka_client_perf's, shared with `perf`)."""
    if not samples:
        return {"count": 0}
    found = percentiles([sample / 1000 for sample in samples])
    return {"count": len(samples), "p50_ms": found["p50_ms"], "p99_ms": found["p99_ms"],
            "p99_9_ms": found["p999_ms"], "max_ms": found["max_ms"]}


def read_samples(directory: str, prefix: str) -> array:
    merged = array("q")
    for path in sorted(pathlib.Path(directory).glob(f"{prefix}-*.bin")):
        merged.frombytes(path.read_bytes())
    return merged


def latency_summary(directory: str) -> dict:
    return {"publish": summarize(read_samples(directory, "publish")),
            "end_to_end": summarize(read_samples(directory, "e2e"))}


def start_workers(args, client: str, bootstrap: str, rate: int, samples: str) -> list[subprocess.Popen]:
    common = ["--client", client, "--bootstrap", bootstrap, "--samples", samples, "--partitions", str(args.partitions),
              "--size", str(args.size), "--producers", str(args.producers), "--consumers", str(args.consumers)]
    workers = []
    for role, count in (("consumer", args.consumers), ("producer", args.producers)):
        for index in range(count):
            argv = [sys.executable, "-m", "tests.bench.omb_latency", "--role", role, "--index", str(index),
                    "--rate", str(rate / args.producers), *common]
            workers.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def run_rate(args, cluster: dict, client: str, rate: int) -> dict:
    """One measured window at `rate` records/s on the Freshet cluster, with `client` (sdk: the
    SDK over gRPC; kafka: confluent-kafka on the Kafka listener)."""
    samples = tempfile.mkdtemp(prefix="omb-samples-", dir=args.tmp)
    bootstrap = cluster["bootstrap"] if client == "sdk" else ",".join(node["kafka"] for node in cluster["nodes"])
    workers = start_workers(args, client, bootstrap, rate, samples)
    try:
        for worker in workers:
            line = worker.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError(f"a worker failed to start (exit {worker.poll()}): {line!r}")
        start = time.monotonic() + START_MARGIN_S
        for worker in workers:
            worker.stdin.write(f"{start} {args.warmup_s} {args.measure_s}\n")
            worker.stdin.flush()
        window = measure_load(cluster["pids"], [w.pid for w in workers], start + args.warmup_s, args.measure_s)
        reports = [json.loads(worker.stdout.readline()) for worker in workers]
        for worker in workers:
            worker.wait(60)
        producers = reports[args.consumers:]
        consumers = reports[: args.consumers]
        measured_sent = sum(r["measured_sent"] for r in producers)
        result = {
            "target_rate": rate,
            **latency_summary(samples),
            "sent": sum(r["sent"] for r in producers),
            "acked": sum(r["acked"] for r in producers),
            "errors": sum(r["errors"] for r in producers),
            "received": sum(r["received"] for r in consumers),
            "achieved_send_rate": round(measured_sent / args.measure_s),
            **window,
        }
        window_records = max(measured_sent, 1)
        result["servers_cpu_us_per_record"] = round(window["servers_cpu_s"] / window_records * 1e6, 1)
        result["clients_cpu_us_per_record"] = round(window["clients_cpu_s"] / window_records * 1e6, 1)
        return result
    finally:
        stop_workers(workers)
        shutil.rmtree(samples, ignore_errors=True)


def measure_load(server_pids: list[int], client_pids: list[int], at: float, seconds: float) -> dict:
    """CPU of the servers and the clients, and the rest of the machine, over [at, at + seconds)."""
    time.sleep(max(0.0, at - time.monotonic()))

    def cpu(pids):
        total = 0.0
        for pid in pids:
            try:
                total += proc_cpu_s(pid)
            except OSError:
                pass
        return total

    before = (cpu(server_pids), cpu(client_pids), machine_ticks(), time.monotonic())
    time.sleep(seconds)
    servers, clients = cpu(server_pids) - before[0], cpu(client_pids) - before[1]
    wall = time.monotonic() - before[3]
    machine = busy_cores(before[2], machine_ticks())
    return {"servers_cpu_s": round(servers, 2), "clients_cpu_s": round(clients, 2),
            "cores_busy_ours": round((servers + clients) / wall, 2),
            "other_cores_busy": round(max(0.0, machine - (servers + clients) / wall), 2)}


def freshet_side(args, clients: list[str]) -> dict[str, list[dict]]:
    """Each client kind at each rate on one cluster (the topic is reused; consumers start at its end)."""
    runs: dict[str, list[dict]] = {client: [] for client in clients}
    with local_cluster(args.tmp) as cluster:
        create_topic(cluster["admin"], TOPIC, 3, partitions=args.partitions)
        for rate in args.rates:
            for client in clients:
                log(f"Freshet ({client}) at {rate} records/s")
                runs[client].append(run_rate(args, cluster, client, rate))
                log("  " + json.dumps({k: runs[client][-1][k] for k in ("end_to_end", "publish", "other_cores_busy")}))
    return runs


def jetstream_side(args) -> list[dict]:
    samples_root = tempfile.mkdtemp(prefix="omb-js-samples-", dir=args.tmp)
    try:
        argv = [PEER_PYTHON, str(HERE / "omb_jetstream.py"), "--rates", ",".join(map(str, args.rates)),
                "--warmup-s", str(args.warmup_s), "--measure-s", str(args.measure_s), "--subjects",
                str(args.partitions), "--size", str(args.size), "--publishers", str(args.producers),
                "--subscribers", str(args.consumers), "--samples-root", samples_root]
        # Beyond the peer script's own hard limit (rates x (warm-up + window + 90 s) + 60 s), which
        # stops its servers and workers and still prints its JSON line.
        budget = len(args.rates) * (args.warmup_s + args.measure_s + 90) + 120
        peer = run_json(argv, budget)
        if "error" in peer:
            raise RuntimeError(f"the JetStream side failed: {peer['error']}")
        for run in peer["runs"]:
            run.update(latency_summary(os.path.join(samples_root, str(run["target_rate"]))))
        return peer["runs"]
    finally:
        shutil.rmtree(samples_root, ignore_errors=True)


def ratios(freshet: list[dict], jetstream: list[dict]) -> dict:
    """freshet / JetStream per rate and percentile (below 1: Freshet is faster)."""
    out = {}
    for mine in freshet:
        theirs = next((r for r in jetstream if r["target_rate"] == mine["target_rate"]), None)
        if theirs is None:
            continue
        entry = {}
        for kind in ("end_to_end", "publish"):
            for key in ("p50_ms", "p99_ms", "p99_9_ms", "max_ms"):
                if key in mine[kind] and key in theirs[kind] and theirs[kind][key] > 0:
                    entry[f"{kind}_{key[:-3]}"] = round(mine[kind][key] / theirs[kind][key], 2)
        entry["servers_cpu_per_record"] = round(mine["servers_cpu_us_per_record"] / max(theirs["servers_cpu_us_per_record"], 0.1), 2)
        out[str(mine["target_rate"])] = entry
    return out


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=lambda text: [int(x) for x in text.split(",")], default=[5000, 10000])
    parser.add_argument("--warmup-s", type=float, default=10)
    parser.add_argument("--measure-s", type=float, default=30)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--systems", default="jetstream,freshet,kafka",
                        help="jetstream (the peer), freshet (SDK over gRPC), kafka (confluent-kafka on the Kafka listener)")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=120, help="give up waiting for an idle machine after this many s")
    parser.add_argument("--out", default=str(HERE / "results" / "2026-12-07-omb_latency.json"))
    # Worker-only options (the parent passes them).
    parser.add_argument("--role", choices=("producer", "consumer"))
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--samples", default="")
    parser.add_argument("--client", choices=("sdk", "kafka"), default="sdk")
    args = parser.parse_args()
    if args.size < 16:
        parser.error("--size must be at least 16 bytes (the first 8 carry the send time)")
    return args


def main() -> None:
    args = parse_args()
    if args.role is not None:
        WORKERS[(args.role, args.client)](args)
        return
    systems = args.systems.split(",")
    wait_for_quiet(args)
    result: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "partitions": args.partitions,
                    "size": args.size, "producers": args.producers, "consumers": args.consumers,
                    "warmup_s": args.warmup_s, "measure_s": args.measure_s, "waited_for_quiet": not args.skip_wait,
                    "preflight_busy_cores": args.preflight_busy_cores}
    # A side that fails is reported in the JSON line ("<side>_error") and the other sides still run.
    if "jetstream" in systems:
        log("JetStream peer")
        try:
            result["jetstream"] = jetstream_side(args)
        except Exception as error:  # noqa: BLE001 - recorded, not hidden
            result["jetstream_error"] = repr(error)
    clients = [client for system, client in (("freshet", "sdk"), ("kafka", "kafka")) if system in systems]
    if clients:
        log("Freshet")
        try:
            runs = freshet_side(args, clients)
            result["freshet"], result["freshet_kafka"] = runs.get("sdk"), runs.get("kafka")
        except Exception as error:  # noqa: BLE001 - recorded, not hidden
            result["freshet_error"] = repr(error)
    for mine in ("freshet", "freshet_kafka"):
        if result.get("jetstream") and result.get(mine):
            result[f"ratios_{mine}_over_jetstream"] = ratios(result[mine], result["jetstream"])
    line = json.dumps(result)
    pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
