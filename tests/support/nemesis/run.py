"""One nemesis run: network, cluster, workload, faults, checker, result table.

`python -m tests.support.nemesis --seed S --faults N --acks all --out DIR` (the cluster test runs
exactly this, tests/cluster/test_nemesis.py). Steps: build the Network (namespaces, bridge),
move this process into the client namespace, start a delay proxy and a node in each node
namespace, create the topic (RF 3, min.insync.replicas=2), start the workload, inject `faults`
faults one after another (seeded: kind, target and duration), heal everything, wait for every
replica to converge, let the readers drain, read every replica's log from its segment files and
check. Prints the seed first, a line per fault (the timeline), then the result table; writes
DIR/result.json. A run with anomalies (acks=all) or an error copies the nodes' logs and data
directories to DIR/kept and prints that path. The namespaces, nodes and proxies are removed in
`finally` (and by the caller, which kills this process group and deletes the tag's namespaces, if
this process itself dies). Thread-safety: one main thread plus the workload's threads.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import sys
import time

from tests.support.nemesis import checker
from tests.support.nemesis.faults import FaultRecord, registry
from tests.support.nemesis.netns import Network, enter_namespace
from tests.support.nemesis.report import availability, result_table
from tests.support.nemesis.workload import ConsumerActor, History, ProducerActor
from tests.support.replica_logs import log_records, replica_state, segment_bytes
from tests.support.waiting import wait_until

NODES = [1, 2, 3]
TOPIC = "nemesis"
SESSION_TIMEOUT_MS = 3000
SETS = [f"broker.session.timeout.ms={SESSION_TIMEOUT_MS}", "broker.heartbeat.interval.ms=300",
        "replica.lag.time.max.ms=1500", "auto.balance.enable=false", "group.min.session.timeout.ms=3000"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.support.nemesis", description="One seeded nemesis run.")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FRESHET_NEMESIS_SEED", random.randrange(1 << 31))))
    parser.add_argument("--faults", type=int, default=int(os.environ.get("FRESHET_NEMESIS_FAULTS", 100)))
    parser.add_argument("--acks", choices=["all", "1"], default="all")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="work directory (data, logs, result.json)")
    parser.add_argument("--tag", default=f"fn{os.getpid()}", help="namespace prefix (unique per run)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0, help="records a second per producer")
    parser.add_argument("--only", default="", help="comma-separated fault kinds to draw from (default: all)")
    parser.add_argument("--settle-s", type=float, default=0.0,
                        help="after each heal, wait (up to this long) until every partition was acknowledged again "
                             "before the next fault, so that each fault's unavailability is its own (default 0: "
                             "the next fault follows 0.1-0.4 s after the heal)")
    parser.add_argument("--hold-s", type=float, help="hold every fault this long (default: drawn, mostly short)")
    parser.add_argument("--keep", action="store_true", help="copy the nodes' logs and data to OUT/kept also on success")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    print(f"nemesis seed {options.seed} (replay: FRESHET_NEMESIS_SEED={options.seed}), {options.faults} faults, "
          f"acks={options.acks}, tag {options.tag}", flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a caller giving up) unwinds through `finally`, which removes the namespaces and processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    network = Network(options.tag, NODES)
    cluster = None
    result: dict = {"seed": options.seed, "acks": options.acks, "error": None}
    try:
        network.up()
        enter_namespace(network.namespace("client"))
        from tests.support.nemesis.cluster import NetnsCluster  # gRPC only once inside the namespace

        cluster = NetnsCluster(options.out / "cluster", network, SETS)
        result.update(execute(cluster, options))
    except Exception as error:  # noqa: BLE001 - reported in the result, and the data is kept
        result["error"] = f"{type(error).__name__}: {error}"
        print(f"nemesis run failed: {result['error']}", flush=True)
    finally:
        if cluster is not None:
            cluster.close()
        network.close()
    failed = result["error"] is not None or (options.acks == "all" and any(result.get("anomalies", {}).values()))
    if (failed or options.keep) and cluster is not None:
        kept = options.out / "kept"
        shutil.copytree(cluster.root, kept, dirs_exist_ok=True)
        result["kept"] = str(kept)
        print(f"nemesis: nodes' logs and data kept in {kept}", flush=True)
    (options.out / "result.json").write_text(json.dumps(result, indent=1))
    print("NEMESIS-RESULT " + json.dumps({k: v for k, v in result.items() if k not in ("timeline", "examples")}), flush=True)
    return 1 if failed else 0


def execute(cluster, options: argparse.Namespace) -> dict:
    cluster.topic, cluster.partition_count = TOPIC, options.partitions
    for node_id in NODES:
        cluster.start_proxy(node_id)
        cluster.start(node_id)
    cluster.wait_ready(timeout_s=180)
    create_topic(cluster, options.partitions, min_isr=2)
    history = History()
    bootstrap = cluster.bootstrap()
    producers = [ProducerActor(history, bootstrap, TOPIC, options.partitions, f"p{i}", options.acks, options.rate)
                 for i in range(options.producers)]
    consumers = [ConsumerActor(history, bootstrap, TOPIC, options.partitions, f"g{i}", "nemesis-group") for i in range(2)]
    readers = [ConsumerActor(history, bootstrap, TOPIC, options.partitions, "r0", None)]
    for actor in producers + consumers + readers:
        actor.start()
    wait_until(lambda: len(history.ack_times()) >= 50, 120, "the first acknowledgements")
    origin = time.monotonic()
    records = inject_faults(cluster, options, history)
    heal_everything(cluster)
    time.sleep(3.0)                                   # progress after healing: acks must resume
    for producer in producers:
        producer.stop(flush_s=60)
    ends, logs, reference = converged_logs(cluster, options.partitions)
    drained = drain(readers + consumers, readers, ends)
    for consumer in consumers + readers:
        consumer.stop()
    with history.lock:
        sends, polls = list(history.sends), list(history.polls)
    found = checker.check(sends, polls, logs, reference)
    unavailable = availability(records, history.ack_times_by_partition(), origin)
    acked = sum(1 for send in sends if send["acked"] is not None)
    result = {"faults": len(records), "records_sent": len(sends), "records_acked": acked,
              "records_polled": len(polls), "readers_drained": drained, "commit_failures": history.commit_failures,
              "anomalies": checker.summary(found), "examples": checker.examples(found),
              "unavailability_s": unavailable, "session_timeout_s": SESSION_TIMEOUT_MS / 1000,
              "acks_after_heal": sum(1 for t in history.ack_times() if t > records[-1].stop) if records else 0,
              "timeline": [record.as_json(origin) for record in records],
              "duration_s": round(time.monotonic() - origin, 1),
              "origin_unix": round(time.time() - (time.monotonic() - origin), 3)}  # the timeline's 0 on the logs' clock
    print(result_table(result, records), flush=True)
    return result


def create_topic(cluster, partitions: int, min_isr: int) -> None:
    from freshet.v1 import common_pb2, controller_pb2

    topic = controller_pb2.CreatableTopic(name=TOPIC, num_partitions=partitions, replication_factor=len(NODES))
    topic.configs.add(key="min.insync.replicas", value=str(min_isr))
    node = cluster.active_controller(timeout_s=60)
    response = cluster.admin(node).CreateTopics(controller_pb2.CreateTopicsRequest(topics=[topic]), timeout=30)
    assert response.results[0].error.code == common_pb2.ErrorCode.NONE, response
    for number in range(partitions):
        wait_until(lambda number=number: in_sync(cluster, number), 60, f"{TOPIC}-{number} fully in sync")


def in_sync(cluster, number: int) -> bool:
    """Every replica of TOPIC-number reports the same log end offset == high watermark, and the
    leader's ISR holds them all."""
    states = {node_id: replica_state(cluster, node_id, TOPIC, number) for node_id in NODES}
    if any(state is None for state in states.values()):
        return False
    leaders = [state for state in states.values() if state["role"] == "leader"]
    if len(leaders) != 1 or sorted(leaders[0].get("isr", [])) != NODES:
        return False
    ends = {(state["log_end_offset"], state["high_watermark"]) for state in states.values()}
    return len(ends) == 1 and next(iter(ends))[0] == next(iter(ends))[1]


def inject_faults(cluster, options: argparse.Namespace, history: History) -> list[FaultRecord]:
    """The nemesis loop: draw, inject, hold, heal, (settle,) pause; one line per fault."""
    rng = random.Random(options.seed)
    table = registry()
    if options.only:
        table = {name: table[name] for name in options.only.split(",")}
    records: list[FaultRecord] = []
    restarting: set[int] = set()
    for number in range(options.faults):
        restarting = {node for node in restarting if not cluster.is_ready(node)}
        names = [name for name, fault in table.items() if not (restarting and fault.restarts_node)]
        if not names:
            wait_until(lambda waiting=frozenset(restarting): all(cluster.is_ready(node) for node in waiting), 180, "restarted nodes ready")
            restarting.clear()
            names = list(table)
        name = rng.choices(names, weights=[table[n].weight for n in names])[0]
        record = table[name].inject(cluster, rng)
        record.overlapped_restart = bool(restarting)
        if options.hold_s is not None:
            record.hold_s = options.hold_s
        time.sleep(record.hold_s)
        record.heal()
        record.stop = time.monotonic()
        restarting |= set(record.restarts)
        records.append(record)
        if options.settle_s > 0:
            deadline = record.stop + options.settle_s
            while not history.acked_everywhere_since(record.stop, options.partitions) and time.monotonic() < deadline:
                time.sleep(0.02)
        print(f"fault {number + 1:4d} {record.kind:24s} {record.detail} for {record.hold_s:.2f} s"
              f"{' (a node was restarting)' if record.overlapped_restart else ''}", flush=True)
        time.sleep(rng.uniform(0.1, 0.4))
    return records


def heal_everything(cluster) -> None:
    cluster.network.heal()
    cluster.clear_delays()
    for node_id, process in cluster.processes.items():
        if process.is_alive:
            process.thaw()
        else:
            cluster.start(node_id)
    cluster.wait_ready(timeout_s=180)


def converged_logs(cluster, partitions: int):
    """Once every partition is in sync: its high watermark, every replica's records and the leader."""
    ends, logs, reference = {}, {}, {}
    for number in range(partitions):
        wait_until(lambda number=number: in_sync(cluster, number), 180, f"{TOPIC}-{number}: replicas converged")
        leader = next(n for n in NODES if replica_state(cluster, n, TOPIC, number)["role"] == "leader")
        ends[number] = replica_state(cluster, leader, TOPIC, number)["high_watermark"]
        logs[number] = {}
        for node_id in NODES:
            values, _ = log_records(segment_bytes(cluster.root, node_id, TOPIC, number), f"node {node_id} {TOPIC}-{number}")
            logs[number][node_id] = {offset: value.decode() if value is not None else None for offset, value in values.items()}
        reference[number] = leader
    return ends, logs, reference


def drain(consumers, readers, ends: dict[int, int]) -> bool:
    """Let every reader reach the high watermarks (bounded), and the group (its members' positions
    together) a few seconds more; whether the readers got there."""
    try:
        wait_until(lambda: all(reader.caught_up(ends) for reader in readers), 120, "readers at the high watermarks")
    except AssertionError:
        return False
    members = [consumer for consumer in consumers if consumer not in readers]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        positions: dict[int, int] = {}
        for member in members:
            for number, position in member.position_map().items():
                positions[number] = max(positions.get(number, 0), position)
        if all(positions.get(number, 0) >= end for number, end in ends.items()):
            break
        time.sleep(0.2)
    return True
