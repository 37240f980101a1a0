#!/usr/bin/env python3
"""The JetStream side of tests/bench/omb_latency.py (not a test; run with the peer venv).

    /tmp/peers-venv/bin/python tests/bench/omb_jetstream.py --samples-root DIR [--rates 5000,10000]
        [--warmup-s 10] [--measure-s 30] [--subjects 100] [--size 1024] [--publishers 4] [--subscribers 4]

The OpenMessaging-style workload on NATS JetStream, the way omb_latency.py runs it on Freshet: a
3-node cluster (../shared/bench/jetstream_bench.py's `start_cluster`, imported), per rate one R3
file stream `OMB_<rate>` over subjects omb<rate>.0 .. omb<rate>.<subjects-1> (JetStream's
counterpart of 100 partitions; one stream is one Raft group, so this is the peer's usual shape),
4 publisher processes connected to the stream leader (async publishes with PubAcks, paced on a
schedule, round-robin over the subjects) and 4 subscriber processes sharing one durable push
consumer through a queue group (ack policy none, deliver new: like Freshet's consumers, which
commit nothing). Every message carries its send time (CLOCK_MONOTONIC) in its first 8 bytes.
Samples (µs) go to DIR/<rate>/publish-<i>.bin and DIR/<rate>/e2e-<i>.bin; omb_latency.py computes
the percentiles of both systems with one function.

Prints ONE JSON line: per rate the counts, the rates achieved, the servers' and clients' CPU and
`other_cores_busy` over the measured window. Processes are stopped by pid; temp dirs removed.
"""

import argparse
import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from array import array

BENCH = pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "bench"
sys.path.insert(0, str(BENCH.resolve()))

import jetstream_bench as jb  # noqa: E402 - found through BENCH
import nats  # noqa: E402
from nats.js import api  # noqa: E402

DRAIN_S = 3.0
START_MARGIN_S = 1.0


def wait_for_go():
    """Tell the parent we are ready; read "start warmup_s measure_s" (monotonic seconds) back."""
    print("READY", flush=True)
    start, warmup_s, measure_s = (float(x) for x in sys.stdin.readline().split())
    return start, start + warmup_s, start + warmup_s + measure_s


async def publisher(args):
    nc = await nats.connect(servers=[args.url], connect_timeout=5, pending_size=8 * 1024 * 1024)
    js = nc.jetstream(timeout=30, publish_async_max_pending=4000)
    filler = os.urandom(args.size - 8)
    await js.publish(f"{args.prefix}.{args.index}", b"\0" * 8 + filler)
    latencies = array("q")
    counters = {"sent": 0, "acked": 0, "errors": 0, "measured_sent": 0}
    start, measure_from, measure_to = wait_for_go()

    def on_done(future, sent_ns, is_measured):
        now_ns = time.monotonic_ns()
        if future.cancelled() or future.exception() is not None:
            counters["errors"] += 1
            return
        counters["acked"] += 1
        if is_measured:
            latencies.append((now_ns - sent_ns) // 1000)

    interval_s = 1.0 / args.rate
    number = 0
    while True:
        due = start + number * interval_s
        if due >= measure_to:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_ns = time.monotonic_ns()
        is_measured = measure_from <= sent_ns / 1e9 < measure_to
        subject = f"{args.prefix}.{(number * args.publishers + args.index) % args.subjects}"
        future = await js.publish_async(subject, sent_ns.to_bytes(8, "big") + filler)
        future.add_done_callback(lambda f, s=sent_ns, m=is_measured: on_done(f, s, m))
        number += 1
        counters["sent"] += 1
        counters["measured_sent"] += is_measured
    # Bounded: a server that stopped answering must not keep this worker alive.
    await asyncio.wait_for(js.publish_async_completed(), DRAIN_S + 60)
    await nc.close()
    with open(os.path.join(args.samples, f"publish-{args.index}.bin"), "wb") as f:
        latencies.tofile(f)
    usage = os.times()
    print(json.dumps({**counters, "cpu_s": round(usage.user + usage.system, 2)}), flush=True)


async def subscriber(args):
    nc = await nats.connect(servers=args.url.split(","), connect_timeout=5, pending_size=64 * 1024 * 1024)
    latencies = array("q")
    counters = {"received": 0}
    window = [0, 0]

    async def on_message(message):
        now_ns = time.monotonic_ns()
        counters["received"] += 1
        sent_ns = int.from_bytes(message.data[:8], "big")
        if window[0] <= sent_ns < window[1]:
            latencies.append((now_ns - sent_ns) // 1000)

    await nc.subscribe(args.deliver, queue="omb", cb=on_message, pending_msgs_limit=1_000_000,
                       pending_bytes_limit=1 << 30)
    await nc.flush()
    _, measure_from, measure_to = await asyncio.get_running_loop().run_in_executor(None, wait_for_go)
    window[:] = [int(measure_from * 1e9), int(measure_to * 1e9)]
    await asyncio.sleep(max(0.0, measure_to + DRAIN_S - time.monotonic()))
    await nc.close()
    with open(os.path.join(args.samples, f"e2e-{args.index}.bin"), "wb") as f:
        latencies.tofile(f)
    usage = os.times()
    print(json.dumps({**counters, "measured": len(latencies), "cpu_s": round(usage.user + usage.system, 2)}), flush=True)


async def prepare(servers, rate, args):
    """The stream and the durable push consumer of one rate; returns (leader url, deliver subject)."""
    admin, ajs = await jb.wait_jetstream_ready(servers)
    name, prefix, deliver = f"OMB_{rate}", f"omb{rate}", f"deliver.omb{rate}"
    leader = await jb.create_stream(ajs, name, f"{prefix}.*", 3)
    await ajs.add_consumer(name, api.ConsumerConfig(
        durable_name="omb", deliver_subject=deliver, deliver_group="omb", ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.NEW))
    await admin.close()
    url = next(s["url"] for s in servers if s["name"] == leader)
    return url, prefix, deliver, name


async def drop_stream(servers, name):
    admin, ajs = await jb.wait_jetstream_ready(servers)
    await ajs.delete_stream(name)
    await admin.close()


def run_rate(args, servers, rate):
    url, prefix, deliver, name = asyncio.run(prepare(servers, rate, args))
    samples = os.path.join(args.samples_root, str(rate))
    os.makedirs(samples, exist_ok=True)
    common = ["--samples", samples, "--size", str(args.size), "--subjects", str(args.subjects),
              "--publishers", str(args.publishers), "--prefix", prefix, "--deliver", deliver]
    everyone = ",".join(s["url"] for s in servers)
    workers = []
    try:
        for role, count, where in (("subscriber", args.subscribers, everyone), ("publisher", args.publishers, url)):
            for index in range(count):
                argv = [sys.executable, __file__, "--role", role, "--index", str(index), "--url", where,
                        "--rate", str(rate / args.publishers), *common]
                workers.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
                jb.CHILDREN.append(workers[-1])  # stopped by jb.stop_children even after the hard time limit
        for worker in workers:
            line = worker.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError(f"a worker failed to start (exit {worker.poll()}): {line!r}")
        start = time.monotonic() + START_MARGIN_S
        for worker in workers:
            worker.stdin.write(f"{start} {args.warmup_s} {args.measure_s}\n")
            worker.stdin.flush()
        time.sleep(max(0.0, start + args.warmup_s - time.monotonic()))
        server_meter = jb.CpuMeter([s["pid"] for s in servers])
        client_meter = jb.CpuMeter([w.pid for w in workers])
        before = (server_meter.snap(), client_meter.snap())
        time.sleep(args.measure_s)
        after = (server_meter.snap(), client_meter.snap())
        reports = [json.loads(worker.stdout.readline()) for worker in workers]
        for worker in workers:
            worker.wait(60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    subscribers, publishers = reports[: args.subscribers], reports[args.subscribers:]
    measured_sent = sum(r["measured_sent"] for r in publishers)
    servers_cpu = after[0][2] - before[0][2]
    clients_cpu = after[1][2] - before[1][2]
    wall = after[0][0] - before[0][0]
    ticks = [y - x for x, y in zip(before[0][3], after[0][3], strict=True)]
    machine = (sum(ticks) - ticks[3] - ticks[4]) / (sum(ticks) or 1) * (os.cpu_count() or 1)
    asyncio.run(drop_stream(servers, name))
    return {
        "target_rate": rate,
        "sent": sum(r["sent"] for r in publishers),
        "acked": sum(r["acked"] for r in publishers),
        "errors": sum(r["errors"] for r in publishers),
        "received": sum(r["received"] for r in subscribers),
        "achieved_send_rate": round(measured_sent / args.measure_s),
        "servers_cpu_s": round(servers_cpu, 2),
        "clients_cpu_s": round(clients_cpu, 2),
        "cores_busy_ours": round((servers_cpu + clients_cpu) / wall, 2),
        "other_cores_busy": round(max(0.0, machine - (servers_cpu + clients_cpu) / wall), 2),
        "servers_cpu_us_per_record": round(servers_cpu / max(measured_sent, 1) * 1e6, 1),
        "clients_cpu_us_per_record": round(clients_cpu / max(measured_sent, 1) * 1e6, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="5000,10000")
    parser.add_argument("--warmup-s", type=float, default=10)
    parser.add_argument("--measure-s", type=float, default=30)
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--samples-root", default="")
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--role", choices=("publisher", "subscriber"))
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--samples", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--deliver", default="")
    args = parser.parse_args()
    if args.role == "publisher":
        asyncio.run(publisher(args))
        return
    if args.role == "subscriber":
        asyncio.run(subscriber(args))
        return
    if not args.samples_root:
        parser.error("--samples-root is required")
    rates = [int(x) for x in args.rates.split(",")]
    signal.signal(signal.SIGALRM, jb.hard_timeout)
    signal.alarm(int(len(rates) * (args.warmup_s + args.measure_s + 90) + 60))
    signal.signal(signal.SIGTERM, jb.on_sigterm)
    out = {"bench": "omb-jetstream", "server_version": subprocess.run(["nats-server", "--version"], capture_output=True,
           text=True).stdout.strip(), "runs": []}
    jb.TMPDIR = tempfile.mkdtemp(prefix="omb-js-", dir=args.tmp)
    try:
        servers = jb.start_cluster(jb.TMPDIR)
        for rate in rates:
            jb.log(f"OMB JetStream at {rate} msgs/s")
            out["runs"].append(run_rate(args, servers, rate))
    except BaseException as error:  # noqa: BLE001 - reported in the JSON line, then cleaned up
        out["error"] = repr(error)
        jb.dump_logs()
    finally:
        signal.alarm(0)
        jb.stop_children()
    print(json.dumps(out), flush=True)
    sys.exit(1 if "error" in out else 0)


if __name__ == "__main__":
    main()
