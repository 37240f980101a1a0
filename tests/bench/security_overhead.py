"""What TLS + SCRAM authentication + ACLs cost, against plaintext, in one run (not a test).

    .venv/bin/python -m tests.bench.security_overhead [--msgs 100000] [--size 1024] [--lat-samples 2000]
        [--skip-wait] [--max-wait 600]

The issue's question: with TLS and SCRAM on, does a cluster keep at least 80% of its plaintext
throughput (RF 3, 1 KiB records, acks=all)? Two 3-node clusters run one after the other on this
machine: `freshet cluster up` (PLAINTEXT) and `freshet cluster up --secure` (SASL_SSL: TLS on
every port including replication and Raft, SCRAM-SHA-512 logins, ACLs enforced; the client is
the superuser `admin`, so every request is authorized through the authorizer's super-user path,
and the benchmark also grants a plain user its rights by ACL and measures that user, so the ACL
lookup is on the measured path). On each, a one-partition topic with RF=3 and
min.insync.replicas=2, and the phases of tests/bench/kafka_vs_grpc.py, each in its own child
process (client CPU apart; servers' CPU per record from /proc):

- gRPC + SDK: `freshet perf produce --acks all`, `perf consume`, `perf produce --sync`.
- Kafka + confluent-kafka (tests/bench/kafka_client_perf.py, -X for security.protocol,
  sasl.mechanism SCRAM-SHA-512, sasl.username/password, ssl.ca.location on the secure side).

Prints ONE JSON line: every phase of both clusters, a compact `table` and the ratios
secure/plaintext (throughput: 1.0 means no cost; latency and CPU: above 1 is the cost). Progress
on stderr. Every process started is stopped; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

from tests.bench.broker_vs_jetstream import (
    FRESHET,
    PUBLISH_BATCH,
    free_base_port,
    log,
    run_phases,
    wait_for_quiet,
)
from tests.bench.kafka_vs_grpc import summary

BENCH_USER = "bench"


@contextlib.contextmanager
def cluster_up(tmp: str, secure: bool):
    """`freshet cluster up --nodes 3 --json [--secure]` in a temp dir: yields its JSON line plus
    "pids" and "cli" (the CLI's connection flags); stops it and removes the dir on exit."""
    directory = tempfile.mkdtemp(prefix="freshet-bench-sec-", dir=tmp)
    argv = [FRESHET, "cluster", "up", "--nodes", "3", "--data-dir", directory, "--base-port", str(free_base_port()), "--json"]
    process = subprocess.Popen([*argv, *(["--secure"] if secure else [])], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(process.stdout.readline())
        info["pids"] = [node["pid"] for node in info["nodes"]]
        info["cli"] = []
        if secure:
            security = info["security"]
            info["cli"] = ["--tls-ca", security["ca_file"], "--user", security["user"],
                           "--password-file", security["password_file"]]
        yield info
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(directory, ignore_errors=True)


def cli(info: dict, *args: str, stdin: str | None = None) -> None:
    subprocess.run([FRESHET, *args, "--bootstrap", info["bootstrap"], *info["cli"]], check=True, input=stdin,
                   text=True, capture_output=True, timeout=60)


def bench_user(info: dict, topic: str, directory: str) -> tuple[list[str], str]:
    """Create user `bench` with Write+Read on `topic` (and Read on its groups, IdempotentWrite on
    the cluster) by ACL; return the CLI flags that log in as it, and its password."""
    password = os.urandom(12).hex()
    cli(info, "user", "create", BENCH_USER, "--password-stdin", stdin=password + "\n")
    for operation in ("Write", "Read", "Describe"):
        cli(info, "acl", "add", "--allow", "--principal", f"User:{BENCH_USER}", "--operation", operation, "--topic", topic)
    cli(info, "acl", "add", "--allow", "--principal", f"User:{BENCH_USER}", "--operation", "Read",
        "--group", "*")
    cli(info, "acl", "add", "--allow", "--principal", f"User:{BENCH_USER}", "--operation", "IdempotentWrite", "--cluster")
    path = os.path.join(directory, "bench.password")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(password + "\n")
    time.sleep(1.0)                                             # ACLs reach every broker
    return ["--tls-ca", info["security"]["ca_file"], "--user", BENCH_USER, "--password-file", path], password


def sdk_phases(info: dict, flags: list[str], topic: str, args) -> list[tuple[str, list[str]]]:
    common = ["--topic", topic, "--record-size", str(args.size), "--bootstrap-server", info["bootstrap"], "--json", *flags]
    return [
        ("publish", [FRESHET, "perf", "produce", "--num-records", str(args.msgs), "--acks", "all", *PUBLISH_BATCH, *common]),
        ("consume", [FRESHET, "perf", "consume", "--topic", topic, "--messages", str(args.msgs),
                     "--bootstrap-server", info["bootstrap"], "--json", *flags]),
        ("latency", [FRESHET, "perf", "produce", "--num-records", str(args.lat_samples), "--acks", "all", "--sync", *common]),
    ]


def kafka_phases(info: dict, settings: dict[str, str], topic: str, args) -> list[tuple[str, list[str]]]:
    client = [sys.executable, "-m", "tests.bench.kafka_client_perf"]
    common = ["--bootstrap", info["kafka_bootstrap"], "--topic", topic, "--record-size", str(args.size)]
    for key, value in settings.items():
        common += ["-X", f"{key}={value}"]
    return [
        ("publish", [*client, "produce", *common, "--num-records", str(args.msgs)]),
        ("consume", [*client, "consume", *common, "--num-records", str(args.msgs)]),
        ("latency", [*client, "sync", *common, "--num-records", str(args.lat_samples)]),
    ]


def one_cluster(args, secure: bool) -> dict:
    label = "secure" if secure else "plaintext"
    log(f"{label} cluster")
    work = tempfile.mkdtemp(prefix="freshet-bench-creds-", dir=args.tmp)
    try:
        with cluster_up(args.tmp, secure) as info:
            for topic in ("bench-grpc", "bench-kafka"):
                cli(info, "topic", "create", topic, "--partitions", "1", "--replication-factor", "3",
                    "--config", "min.insync.replicas=2")
            time.sleep(1.0)
            sdk_flags: list[str] = []
            kafka_settings: dict[str, str] = {}
            if secure:
                sdk_flags, password = bench_user(info, "bench-grpc", work)
                bench_user_kafka(info, "bench-kafka")
                kafka_settings = {
                    "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": BENCH_USER, "sasl.password": password,
                    "ssl.ca.location": info["security"]["ca_file"],
                }
            grpc_side = run_phases(sdk_phases(info, sdk_flags, "bench-grpc", args), info["pids"], f"{label} grpc")
            kafka_side = run_phases(kafka_phases(info, kafka_settings, "bench-kafka", args), info["pids"], f"{label} kafka")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"grpc_sdk": grpc_side, "kafka_confluent": kafka_side}


def bench_user_kafka(info: dict, topic: str) -> None:
    """The bench user's rights on the Kafka side's topic too."""
    for operation in ("Write", "Read", "Describe"):
        cli(info, "acl", "add", "--allow", "--principal", f"User:{BENCH_USER}", "--operation", operation, "--topic", topic)
    time.sleep(1.0)


def ratios(secure: dict, plain: dict) -> dict:
    return {
        key: round(secure[key] / plain[key], 2)
        for key in secure
        if key != "other_cores_busy_max" and secure[key] is not None and plain.get(key)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msgs", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--lat-samples", type=int, default=2000)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--skip-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--max-wait", type=float, default=600, help="give up waiting for an idle machine after this many s")
    args = parser.parse_args()
    wait_for_quiet(args)
    started = time.monotonic()
    plain = one_cluster(args, secure=False)
    secure = one_cluster(args, secure=True)
    table = {
        f"{side}_{label}": summary(run["publish"], run["consume"], run["latency"])
        for label, result in (("plaintext", plain), ("secure", secure))
        for side, run in result.items()
    }
    print(json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "msgs": args.msgs, "size": args.size,
        "lat_samples": args.lat_samples, "waited_for_quiet": not args.skip_wait,
        "preflight_busy_cores": args.preflight_busy_cores,
        "versions": {"python": platform.python_version(), "confluent_kafka": version("confluent-kafka"),
                     "grpcio": version("grpcio"), "openssl": __import__("ssl").OPENSSL_VERSION},
        "table": table,
        "ratios_secure_over_plaintext": {
            "grpc_sdk": ratios(table["grpc_sdk_secure"], table["grpc_sdk_plaintext"]),
            "kafka_confluent": ratios(table["kafka_confluent_secure"], table["kafka_confluent_plaintext"]),
        },
        "phases": {"plaintext": plain, "secure": secure},
        "seconds": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
