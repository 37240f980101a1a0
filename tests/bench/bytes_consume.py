"""Consume 64 KiB records from the page cache: gRPC SDK, Kafka listener with sendfile, Kafka over TLS (not a test).

    .venv/bin/python -m tests.bench.bytes_consume [--records 8192] [--record-size 65536]
        [--tls-records 2048] [--skip-wait] [--max-wait 120] [--skip-limits] [--profile-dir DIR] [--grpc-only]

Issue 20's consume half: how close do consumers get to the machine's limits when the records are
in the page cache? In one run: `../shared/bench/limits.py --only disk,tcp` (page-cache read and
loopback TCP), then a 3-node `freshet cluster up` (RF 3) whose one-partition topic is pre-filled
with `freshet perf produce --acks all` (--records x --record-size bytes), read back from the
beginning by

- `grpc_sdk`: `freshet perf consume` (the Python SDK over gRPC Fetch, checking every batch's
  CRC-32C with crcmod, the SDK's default check_crcs=True, as Kafka's Java consumer);
- `grpc_sdk_no_crc`: the same with `--no-check-crcs` (librdkafka's default: no CRC check);
- `grpc_sdk_untuned`, `grpc_sdk_untuned_no_crc`: both with FRESHET_MALLOC_TUNING=off (since
  bytes6 `perf consume` gives itself the node's malloc policy; this is the A/B);
- `kafka_sendfile`: confluent-kafka (tests/bench/kafka_client_perf.py consume) through the Kafka
  listener, whose Fetch sends the records with sendfile from the segment files;

- the same readers tuned (wave 5): `grpc_sdk_tuned`, `grpc_sdk_tuned_no_crc`, `kafka_tuned` run
  the client with glibc's malloc keeping freed buffers (CLIENT_MALLOC_ENV, what the node does
  itself); `grpc_sdk_tuned_big_no_crc` and `kafka_tuned_big` also fetch 16 MiB per partition;
  `kafka_tuned_big_3p` reads a second, 3-partition topic (leaders on every node);
- the A/Bs of wave 6 (kfetch6), in the same cluster: `kafka_tuned_big_sndbuf_4mib` with the
  broker key socket.send.buffer.bytes=4194304 for that phase (the default, -1, keeps the OS's
  autotuned send buffer), and `kafka_tuned_big_batch1000` with the reader asking consume(1000)
  rather than consume(KAFKA_CONSUME_BATCH) (64 MiB per call at 64 KiB records);

and a `cluster up --secure` cluster (SASL_SSL) with its own pre-filled topic (--tls-records), read by

- `kafka` / `kafka_tuned_big` over TLS (`tls_` in the table): the listener copies the records
  (sendfile would bypass the cipher);

and a third plaintext cluster whose nodes start with FRESHET_MALLOC_TUNING=off
(`nodes_malloc_off_` in the table: `grpc_sdk_no_crc`, `kafka`, `kafka_tuned_big`), the A/B of
the node's malloc tuning in the same run. Every phase records its client command line.

Each phase runs in its own child process (tests/bench/broker_vs_jetstream.measured: the 3 node
processes' CPU from /proc, the client's CPU, and `other_cores_busy`, what the rest of the machine
used meanwhile), in --repeats rounds of every phase in turn (default 3; interleaved, so a drift
over the run, such as the page cache settling, does not favour one phase; the run with the
median MB/s is the phase's figure, every run's MB/s is kept); the machine is gated idle first (wait_quiet.py, at most --max-wait s) and the
load seen is recorded. Per phase: MB/s (record values), its fraction of loopback TCP and of the
page-cache read rate, and CPU µs per MB for the servers and the client (holds up better under
load than MB/s; also with the nodes' idle CPU, sampled before the phases, taken out, and for
the partition leader alone). crcmod's CRC-32C throughput over one record (MB per CPU second) is measured in
the same run: it bounds a consumer that checks CRCs.

`run(...)` is the entry point for a combined bytes benchmark: the consume phases against a
running, pre-filled cluster, returning a dict.

--profile-dir DIR: also `py-spy record` the partition leader during each phase (raw profiles in
DIR); profiling perturbs the figures, so quote a run without it.

Writes tests/bench/results/<date>-bytes-consume.json and prints ONE JSON line. Every process
started is stopped by pid; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

from tests.bench.broker_vs_jetstream import (
    BENCH,
    FRESHET,
    PEER_PYTHON,
    log,
    measured,
    proc_cpu_s,
    wait_for_quiet,
)
from tests.bench.security_overhead import cli, cluster_up

PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))
RESULTS = pathlib.Path(__file__).with_name("results")
MB = 1e6
#: The tuned clients' process setting: glibc keeps freed buffers (the node does the same itself,
#: server/malloc_tuning.py) instead of mapping and zeroing fresh pages for every fetch response.
CLIENT_MALLOC_ENV = "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"
#: Fetch sizes of the `_big` readers: 16 MiB per partition per fetch (Kafka's default is 1 MiB;
#: kafka-consumer-perf-test's --fetch-size and librdkafka's fetch.message.max.bytes set it).
FETCH_PARTITION_BYTES_TUNED = 16 * 1024 * 1024
FETCH_BYTES_TUNED = 64 * 1024 * 1024
SDK_FETCH_BIG = ["--max-partition-fetch-bytes", str(FETCH_PARTITION_BYTES_TUNED), "--fetch-max-bytes", str(FETCH_BYTES_TUNED)]
KAFKA_FETCH_BIG = ["-X", f"max.partition.fetch.bytes={FETCH_PARTITION_BYTES_TUNED}", "-X", f"fetch.max.bytes={FETCH_BYTES_TUNED}",
                     "-X", "queued.max.messages.kbytes=262144"]
#: `_tuned`: the client runs with CLIENT_MALLOC_ENV; `_big`: also with the big fetch sizes.
PLAINTEXT_PHASES = ("grpc_sdk", "grpc_sdk_no_crc", "grpc_sdk_untuned", "grpc_sdk_untuned_no_crc", "grpc_sdk_tuned", "grpc_sdk_tuned_no_crc", "grpc_sdk_tuned_big_no_crc",
                    "kafka", "kafka_tuned", "kafka_tuned_big", "kafka_tuned_big_3p", "kafka_tuned_big_sndbuf_4mib",
                    "kafka_tuned_big_batch1000")
#: --grpc-only: the SDK readers alone (one plaintext cluster, no Kafka, TLS or malloc-off cluster).
GRPC_PHASES = tuple(phase for phase in PLAINTEXT_PHASES if phase.startswith("grpc_"))
#: `_untuned`: `perf consume` with FRESHET_MALLOC_TUNING=off (it tunes its own malloc otherwise, since bytes6).
CLIENT_MALLOC_OFF_ENV = "FRESHET_MALLOC_TUNING=off"
#: Messages the confluent-kafka reader asks of each consume() call. At 64 KiB records, 1000 is
#: 64 MiB: the reader's thread then copies values in 64 MiB bursts while librdkafka's fetches
#: wait in its queue; 100 (6.4 MiB) keeps copying and fetching overlapped.
KAFKA_CONSUME_BATCH = 100
#: Phases run with a broker key set cluster-wide for their duration (then deleted again).
PHASE_BROKER_CONFIGS = {"kafka_tuned_big_sndbuf_4mib": "socket.send.buffer.bytes=4194304"}
SECURE_PHASES = ("kafka", "kafka_tuned_big")
#: The A/B of the nodes' own malloc tuning: a third cluster started with FRESHET_MALLOC_TUNING=off.
UNTUNED_NODE_PHASES = ("grpc_sdk_no_crc", "kafka", "kafka_tuned_big")


def tuned(argv: list[str]) -> list[str]:
    """`argv` run with the tuned clients' malloc setting (CLIENT_MALLOC_ENV)."""
    return ["env", CLIENT_MALLOC_ENV, *argv]


def shown_argv(argv: list[str]) -> list[str]:
    """`argv` as recorded in the JSON: any password after -X is replaced."""
    return [("sasl.password=<secret>" if part.startswith("sasl.password=") else part) for part in argv]


def prefill(info: dict, topic: str, records: int, record_size: int, partitions: int = 1) -> dict:
    """Create `topic` (`partitions` partitions, RF 3, min.insync.replicas 2) and fill it with
    `records` records of `record_size` bytes (`freshet perf produce --acks all`); its JSON line."""
    flags = ["--bootstrap-server", info["bootstrap"], *info["cli"]]
    subprocess.run([FRESHET, "topic", "create", topic, "--partitions", str(partitions), "--replication-factor", "3",
                    "--config", "min.insync.replicas=2", *flags], check=True, capture_output=True, timeout=60)
    time.sleep(1.0)
    done = subprocess.run(
        [FRESHET, "perf", "produce", "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
         "--acks", "all", "--json", *flags],
        capture_output=True, text=True, timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"prefill of {topic} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    os.sync()
    return json.loads(lines[-1])


def kafka_security(info: dict) -> dict[str, str]:
    """librdkafka settings for a `cluster up --secure` cluster's superuser (none when plaintext)."""
    security = info.get("security")
    if not security:
        return {}
    with open(security["password_file"], encoding="utf-8") as file:
        password = file.read().strip()
    return {"security.protocol": security.get("protocol", "SASL_SSL"), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": security["user"], "sasl.password": password, "ssl.ca.location": security["ca_file"]}


def grpc_consume_argv(info: dict, topic: str, records: int, check_crcs: bool = True) -> list[str]:
    return [FRESHET, "perf", "consume", "--topic", topic, "--messages", str(records),
            "--check-crcs" if check_crcs else "--no-check-crcs", "--bootstrap-server", info["bootstrap"], "--json", *info["cli"]]


def crc_throughput(record_size: int, seconds: float = 1.0) -> dict:
    """crcmod's CRC-32C (the one the SDK consumer checks batches with) over `record_size`-byte
    buffers: MB per CPU second, and whether its C extension is the one in use."""
    import crcmod.predefined

    engine = sys.modules["crcmod.crcmod"]
    crc32c = crcmod.predefined.mkCrcFun("crc-32c")
    data = memoryview(os.urandom(record_size))
    count = 0
    cpu_before = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        crc32c(data)
        count += 1
    cpu = time.process_time() - cpu_before
    return {"record_size": record_size, "is_c_extension": bool(engine._usingExtension),
            "mb_per_cpu_s": round(count * record_size / cpu / MB, 1)}


def kafka_consume_argv(info: dict, topic: str, records: int, record_size: int, batch: int = KAFKA_CONSUME_BATCH) -> list[str]:
    argv = [sys.executable, "-m", "tests.bench.kafka_client_perf", "consume", "--bootstrap", info["kafka_bootstrap"],
            "--topic", topic, "--num-records", str(records), "--record-size", str(record_size), "--consume-batch", str(batch)]
    for key, value in kafka_security(info).items():
        argv += ["-X", f"{key}={value}"]
    return argv


def per_megabyte(result: dict, limits: dict) -> dict:
    """The phase's MB/s, fractions of the limits, and CPU µs per MB (servers, client process)."""
    megabytes = max(result.get("bytes", 0), 1) / MB
    rate = result.get("mb_per_s") or 0.0
    tcp = (limits.get("tcp_loopback_1MiB") or {}).get("MB_per_s")
    cache = ((limits.get("disk") or {}).get("read_page_cache_1MiB") or {}).get("MB_per_s")
    return {
        "mb_per_s": rate,
        "fraction_of_tcp_loopback": round(rate / tcp, 3) if tcp else None,
        "fraction_of_page_cache_read": round(rate / cache, 3) if cache else None,
        "servers_cpu_us_per_mb": round(result["servers_cpu_s"] * 1e6 / megabytes, 1),
        # The nodes' idle use over the phase taken out: what serving the bytes cost.
        "servers_cpu_us_per_mb_above_idle": round(
            max(result["servers_cpu_s"] - result["servers_idle_cores"] * result["phase_wall_s"], 0.0) * 1e6 / megabytes, 1),
        "leader_cpu_us_per_mb": round(result["leader_cpu_s"] * 1e6 / megabytes, 1) if result.get("leader_cpu_s") is not None else None,
        "client_cpu_us_per_mb": round(result["client_process_cpu_s"] * 1e6 / megabytes, 1),
        "other_cores_busy": result["other_cores_busy"],
        "errors": result.get("errors"),
    }


def profiled(argv: list[str], pids: list[int], leader_pid: int | None, profile: str | None) -> dict:
    """`measured(argv, pids)`, with py-spy on `leader_pid` meanwhile when `profile` names a file."""
    if profile is None or leader_pid is None:
        return measured(argv, pids)
    spy = subprocess.Popen([PY_SPY, "record", "--pid", str(leader_pid), "-f", "raw", "--nonblocking", "--threads",
                            "-r", "200", "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return measured(argv, pids)
    finally:
        spy.send_signal(2)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(10)


def leader_pid(info: dict, topic: str) -> int | None:
    """The pid of the node leading partition 0 of `topic` (Kafka Metadata), None if unknown."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": info["kafka_bootstrap"], **kafka_security(info)}).list_topics(topic, timeout=10)
    leader = metadata.topics[topic].partitions[0].leader
    return next((node["pid"] for node in info["nodes"] if node["id"] == leader), None)


def run(info: dict, topic: str, records: int, record_size: int, phases: tuple[str, ...] = ("grpc_sdk", "grpc_sdk_no_crc", "kafka"),
        limits: dict | None = None, profile_dir: str | None = None, label: str = "", many_topic: str | None = None,
        repeats: int = 1) -> dict:
    """The consume phases against a running cluster whose `topic` holds `records` records of
    `record_size` bytes: `info` is `cluster up --json`'s line plus "pids" (node pids) and "cli"
    (the CLI's connection flags). Returns {phase: measured result + "summary"}; `limits` (a
    limits.py line) gives the fractions. Phases: those of PHASES (`kafka_tuned_3p` reads
    `many_topic`, a 3-partition topic of as many records); each runs `repeats` times, and the run
    with the median MB/s stands for it."""
    one = {"grpc_sdk": grpc_consume_argv(info, topic, records),
           "grpc_sdk_no_crc": grpc_consume_argv(info, topic, records, check_crcs=False),
           "kafka": kafka_consume_argv(info, topic, records, record_size)}
    argvs = {
        **one,
        "grpc_sdk_untuned": ["env", CLIENT_MALLOC_OFF_ENV, *one["grpc_sdk"]],
        "grpc_sdk_untuned_no_crc": ["env", CLIENT_MALLOC_OFF_ENV, *one["grpc_sdk_no_crc"]],
        "grpc_sdk_tuned": tuned(one["grpc_sdk"]),
        "grpc_sdk_tuned_no_crc": tuned(one["grpc_sdk_no_crc"]),
        "grpc_sdk_tuned_big_no_crc": tuned(one["grpc_sdk_no_crc"] + SDK_FETCH_BIG),
        "kafka_tuned": tuned(one["kafka"]),
        "kafka_tuned_big": tuned(one["kafka"] + KAFKA_FETCH_BIG),
        "kafka_tuned_big_sndbuf_4mib": tuned(one["kafka"] + KAFKA_FETCH_BIG),
        "kafka_tuned_big_batch1000": tuned(kafka_consume_argv(info, topic, records, record_size, batch=1000) + KAFKA_FETCH_BIG),
    }
    if many_topic is not None:
        argvs["kafka_tuned_big_3p"] = tuned(kafka_consume_argv(info, many_topic, records, record_size) + KAFKA_FETCH_BIG)
    pid = leader_pid(info, topic)
    idle = idle_cores(info["pids"])
    runs: dict[str, list[dict]] = {phase: [] for phase in phases}
    for round_number in range(repeats):                 # rounds: every phase once, in order, per round
        for phase in phases:
            log(f"{label} {phase} (round {round_number + 1} of {repeats}): consume {records} x {record_size} B")
            profile = os.path.join(profile_dir, f"{label}-{phase}-{round_number}.txt") if profile_dir else None
            setting = PHASE_BROKER_CONFIGS.get(phase)
            if setting:
                broker_config(info, "--set", setting)
            try:
                runs[phase].append(one_phase(info, argvs[phase], pid if phase != "kafka_tuned_big_3p" else None, profile, idle))
            finally:
                if setting:
                    broker_config(info, "--delete", setting.split("=")[0])
            log(f"  {runs[phase][-1].get('mb_per_s')} MB/s")
    out = {}
    for phase in phases:
        result = sorted(runs[phase], key=lambda run: run.get("mb_per_s") or 0.0)[len(runs[phase]) // 2]
        result.update(broker_config_set=PHASE_BROKER_CONFIGS.get(phase), repeats_mb_per_s=[run.get("mb_per_s") for run in runs[phase]])
        result["summary"] = per_megabyte(result, limits or {})
        result["summary"]["repeats_mb_per_s"] = result["repeats_mb_per_s"]
        out[phase] = result
        log(f"{label} {phase}: {json.dumps(result['summary'])}")
    return out


def one_phase(info: dict, argv: list[str], leader: int | None, profile: str | None, idle: float) -> dict:
    """One run of a phase's reader: `measured` plus the wall time, the leader's CPU (`leader`:
    its pid, None when the phase has several leaders) and the client command line."""
    leader_before, wall_before = proc_cpu_s(leader) if leader else 0.0, time.monotonic()
    result = profiled(argv, info["pids"], leader, profile)
    result.update(phase_wall_s=round(time.monotonic() - wall_before, 2), servers_idle_cores=idle, client_argv=shown_argv(argv),
                  leader_cpu_s=round(proc_cpu_s(leader) - leader_before, 2) if leader else None)
    return result


def broker_config(info: dict, *change: str) -> None:
    """`freshet config --cluster --set K=V` / `--delete K` against the running cluster."""
    cli(info, "config", "--cluster", *change)
    time.sleep(1.0)                                     # every broker applies the new metadata


def idle_cores(pids: list[int], seconds: float = 3.0) -> float:
    """Cores the node processes use with no client (Raft ticks, heartbeats, housekeeping): what
    a phase's server CPU carries whatever it serves."""
    before = sum(proc_cpu_s(pid) for pid in pids)
    time.sleep(seconds)
    return round((sum(proc_cpu_s(pid) for pid in pids) - before) / seconds, 3)


def measure_limits(args) -> dict:
    """`limits.py --only disk,tcp` (a smaller disk test: only the page-cache read matters here)."""
    python = PEER_PYTHON if os.path.exists(PEER_PYTHON) else sys.executable
    done = subprocess.run([python, str(BENCH / "limits.py"), "--only", "disk,tcp", "--disk-mib", "512", "--disk-seconds", "8",
                           "--tmp", args.tmp], capture_output=True, text=True, timeout=200)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}


def ratio(table: dict, numerator: str, denominator: str) -> float:
    """MB/s of phase `numerator` over phase `denominator`."""
    return round(table[numerator]["mb_per_s"] / (table[denominator]["mb_per_s"] or 1), 2)


def one_cluster(args, secure: bool, limits: dict, nodes_malloc_off: bool = False) -> dict:
    label = "secure" if secure else "nodes-malloc-off" if nodes_malloc_off else "plaintext"
    records = args.tls_records if secure else args.records
    if nodes_malloc_off:
        os.environ["FRESHET_MALLOC_TUNING"] = "off"      # inherited by `cluster up` and its nodes
    try:
        with cluster_up(args.tmp, secure) as info:
            return fill_and_read(args, info, secure, limits, label, records, nodes_malloc_off)
    finally:
        os.environ.pop("FRESHET_MALLOC_TUNING", None)


def fill_and_read(args, info: dict, secure: bool, limits: dict, label: str, records: int, nodes_malloc_off: bool) -> dict:
    """Prefill a running cluster's topics, then run the phases of its kind."""
    topic = "bytes-consume"
    log(f"{label}: prefill {records} x {args.record_size} B")
    filled = prefill(info, topic, records, args.record_size)
    log(f"  prefill {filled.get('mb_per_s')} MB/s")
    many = None
    if not secure and not nodes_malloc_off and not args.grpc_only:
        many = prefill(info, "bytes-consume-3p", records, args.record_size, partitions=3)
        log(f"  prefill of 3 partitions {many.get('mb_per_s')} MB/s")
    phases = SECURE_PHASES if secure else UNTUNED_NODE_PHASES if nodes_malloc_off else GRPC_PHASES if args.grpc_only else PLAINTEXT_PHASES
    consumed = run(info, topic, records, args.record_size, phases, limits, args.profile_dir, label,
                   many_topic="bytes-consume-3p" if many else None, repeats=args.repeats)
    return {"prefill": filled, "prefill_3p": many, **consumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=8192, help="records in the plaintext cluster's topic")
    parser.add_argument("--tls-records", type=int, default=2048, help="records in the TLS cluster's topic")
    parser.add_argument("--record-size", type=int, default=65536)
    parser.add_argument("--skip-wait", action="store_true")
    parser.add_argument("--max-wait", type=int, default=120, help="seconds to wait for an idle machine (at most)")
    parser.add_argument("--skip-limits", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each phase (the median MB/s stands for it)")
    parser.add_argument("--profile-dir", default=None)
    parser.add_argument("--grpc-only", action="store_true", help="only the SDK phases (GRPC_PHASES) on the plaintext cluster")
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    parser.add_argument("--out", default=str(RESULTS / f"{time.strftime('%Y-%m-%d')}-bytes-consume.json"))
    args = parser.parse_args()
    args.max_wait = min(args.max_wait, 120)
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    wait_for_quiet(args)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    limits = {} if args.skip_limits else measure_limits(args)
    log(f"limits: tcp {limits.get('tcp_loopback_1MiB', {}).get('MB_per_s')} MB/s, page cache "
        f"{limits.get('disk', {}).get('read_page_cache_1MiB', {}).get('MB_per_s')} MB/s")
    plaintext = one_cluster(args, False, limits)
    secure = None if args.grpc_only else one_cluster(args, True, limits)
    untuned = None if args.grpc_only else one_cluster(args, False, limits, nodes_malloc_off=True)
    crc = crc_throughput(args.record_size)
    log(f"crcmod CRC-32C over {args.record_size} B: {crc}")
    if args.grpc_only:
        grpc_only_report(args, started, limits, crc, plaintext)
        return
    table = {f"{phase}": plaintext[phase]["summary"] for phase in PLAINTEXT_PHASES}
    table.update({f"tls_{phase}": secure[phase]["summary"] for phase in SECURE_PHASES})
    table.update({f"nodes_malloc_off_{phase}": untuned[phase]["summary"] for phase in UNTUNED_NODE_PHASES})

    def best(*phases: str) -> float:
        return max(table[phase]["mb_per_s"] for phase in phases)

    goals = {
        "grpc_sdk_400_mb_per_s": best("grpc_sdk", "grpc_sdk_tuned") >= 400,
        "grpc_sdk_no_crc_400_mb_per_s": best("grpc_sdk_no_crc", "grpc_sdk_tuned_no_crc", "grpc_sdk_tuned_big_no_crc") >= 400,
        "kafka_sendfile_1000_mb_per_s": best("kafka", "kafka_tuned", "kafka_tuned_big", "kafka_tuned_big_3p") >= 1000,
    }
    out = {
        "bench": "bytes_consume", "time": started, "host": platform.node(), "cpus": os.cpu_count(),
        "versions": {"freshet": version("freshet"), "confluent_kafka": version("confluent-kafka")},
        "args": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "limits": limits, "crcmod": crc, "plaintext": plaintext, "secure": secure, "nodes_malloc_off": untuned,
        "client_malloc_env": CLIENT_MALLOC_ENV, "table": table, "goals": goals,
        "ratios": {
            "kafka_sendfile_over_grpc_sdk": ratio(table, "kafka", "grpc_sdk"),
            "kafka_tuned_big_over_kafka": ratio(table, "kafka_tuned_big", "kafka"),
            "kafka_sndbuf_4mib_over_os_default": ratio(table, "kafka_tuned_big_sndbuf_4mib", "kafka_tuned_big"),
            "kafka_consume_batch_100_over_1000": ratio(table, "kafka_tuned_big", "kafka_tuned_big_batch1000"),
            "grpc_sdk_tuned_over_grpc_sdk": ratio(table, "grpc_sdk_tuned", "grpc_sdk"),
            "grpc_sdk_no_crc_over_untuned": ratio(table, "grpc_sdk_no_crc", "grpc_sdk_untuned_no_crc"),
            "kafka_tls_over_sendfile": ratio(table, "tls_kafka", "kafka"),
            "nodes_malloc_on_over_off_grpc_no_crc": ratio(table, "grpc_sdk_no_crc", "nodes_malloc_off_grpc_sdk_no_crc"),
            "nodes_malloc_on_over_off_kafka": ratio(table, "kafka", "nodes_malloc_off_kafka"),
        },
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"bench": "bytes_consume", "table": table, "goals": goals, "ratios": out["ratios"], "crcmod": crc,
                      "file": args.out}))


def grpc_only_report(args, started: str, limits: dict, crc: dict, plaintext: dict) -> None:
    """Write and print the --grpc-only run: the SDK phases' table, the 400 MB/s goals and the
    ratio of `perf consume`'s own malloc tuning (the default since bytes6) over none."""
    table = {phase: plaintext[phase]["summary"] for phase in GRPC_PHASES}
    goals = {"grpc_sdk_400_mb_per_s": table["grpc_sdk"]["mb_per_s"] >= 400,
             "grpc_sdk_no_crc_400_mb_per_s": table["grpc_sdk_no_crc"]["mb_per_s"] >= 400}
    ratios = {"grpc_sdk_over_untuned": ratio(table, "grpc_sdk", "grpc_sdk_untuned"),
              "grpc_sdk_no_crc_over_untuned": ratio(table, "grpc_sdk_no_crc", "grpc_sdk_untuned_no_crc"),
              "grpc_sdk_no_crc_over_grpc_sdk": ratio(table, "grpc_sdk_no_crc", "grpc_sdk")}
    out = {"bench": "bytes_consume", "grpc_only": True, "time": started, "host": platform.node(), "cpus": os.cpu_count(),
           "versions": {"freshet": version("freshet")}, "args": {k: v for k, v in vars(args).items() if k != "out"},
           "limits": limits, "crcmod": crc, "plaintext": plaintext, "client_malloc_env": CLIENT_MALLOC_ENV,
           "table": table, "goals": goals, "ratios": ratios}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"bench": "bytes_consume", "table": table, "goals": goals, "ratios": ratios, "crcmod": crc, "file": args.out}))


if __name__ == "__main__":
    main()
