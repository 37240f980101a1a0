"""The nemesis' faults: one registry table, name -> Fault(inject, keeps_majority, weight).

Not a test module. `inject(cluster, rng)` breaks something at once and returns a FaultRecord
whose `heal()` undoes it (the runner holds the fault for `hold_s`, then heals and stamps `stop`).
`cluster` is a NetnsCluster (its `.network` is the Network; `.topic` and `.partition_count` name
the workload's topic); `rng` is the run's seeded random.Random, so a seed replays the same
schedule of kinds, targets and durations (the workload's timing is not replayed).

Faults that restart a node (kill, the crash combos, clock skew) do not wait for it in heal(): the
runner lets network faults run on while a node restarts and draws only network faults until every
node is ready again; such overlap is recorded (`overlapped_restart`) so the availability goal is
judged on faults that really left a majority connected.

Disk faults come from tests/support/disk_faults.py (bit flips and truncation of segment, index,
checkpoint and Raft journal files): each is a `stopped_node_fault`: kill -9 one node, damage its
data directory while it is down, restart it. A damaged Raft snapshot is left out on purpose: the
voter refuses to start until an operator moves it aside (README "Damaged files"), which is a
documented stop, not something a node heals from. Thread-safety: called from the runner's nemesis
thread only.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable

from tests.support import disk_faults
from tests.support.replica_logs import replica_state

SHORT_S = (0.3, 1.5)
LONG_S = (3.0, 7.0)          # longer than broker.session.timeout.ms (3 s): fencing, elections
LONG_SHARE = 0.15


@dataclasses.dataclass
class FaultRecord:
    """One injected fault: what, on whom, when (monotonic seconds), and how to undo it."""

    kind: str
    detail: str
    start: float
    hold_s: float
    heal: Callable[[], None]
    restarts: list[int] = dataclasses.field(default_factory=list)
    stop: float | None = None
    overlapped_restart: bool = False
    keeps_majority: bool | None = None      # None: as the kind's registry row says
    unavailable_s: float | None = None      # set by report.availability
    ran_into_next: bool = False             # set by report.availability: not recovered when the next fault began

    def as_json(self, origin: float) -> dict:
        return {"kind": self.kind, "detail": self.detail, "start_s": round(self.start - origin, 3),
                "stop_s": round((self.stop or self.start) - origin, 3), "overlapped_restart": self.overlapped_restart,
                "unavailable_s": self.unavailable_s, "ran_into_next": self.ran_into_next}


@dataclasses.dataclass(frozen=True)
class Fault:
    inject: Callable[..., FaultRecord]
    keeps_majority: bool        # a majority of nodes stays connected and running
    restarts_node: bool         # drawn only while every node is ready
    weight: float


def hold(rng: random.Random) -> float:
    low, high = LONG_S if rng.random() < LONG_SHARE else SHORT_S
    return round(rng.uniform(low, high), 2)


def _record(kind: str, detail: str, rng: random.Random, heal: Callable[[], None], restarts=()) -> FaultRecord:
    return FaultRecord(kind, detail, time.monotonic(), hold(rng), heal, list(restarts))


def leader_of(cluster, number: int) -> int | None:
    """The node that leads topic-number by its own /status (highest leader epoch), None if none."""
    best = None
    for node_id in cluster.alive():
        state = replica_state(cluster, node_id, cluster.topic, number)
        if state and state.get("role") == "leader" and (best is None or state["leader_epoch"] > best[0]):
            best = (state["leader_epoch"], node_id)
    return None if best is None else best[1]


def active_controller(cluster) -> int | None:
    for node_id in cluster.alive():
        status = cluster.status(node_id)
        if status is not None and status.get("is_active_controller"):
            return node_id
    return None


def _nodes(cluster) -> list[int]:
    return list(cluster.network.node_ids)


def _isolate(cluster, node: int, kind: str, rng: random.Random) -> FaultRecord:
    network = cluster.network
    for other in _nodes(cluster):
        if other != node:
            network.cut_both(node, other)
    return _record(kind, f"node {node} cut from the other nodes", rng, network.heal)


def isolate_leader(cluster, rng: random.Random) -> FaultRecord:
    number = rng.randrange(cluster.partition_count)
    node = leader_of(cluster, number) or rng.choice(_nodes(cluster))
    return _isolate(cluster, node, "isolate-leader", rng)


def isolate_controller(cluster, rng: random.Random) -> FaultRecord:
    node = active_controller(cluster) or rng.choice(_nodes(cluster))
    return _isolate(cluster, node, "isolate-controller", rng)


def majority_minority(cluster, rng: random.Random) -> FaultRecord:
    """Split the nodes 1 | 2 with the client on a random side (its links to the other side cut)."""
    nodes = _nodes(cluster)
    rng.shuffle(nodes)
    minority, majority = nodes[:1], nodes[1:]
    client_side = rng.choice(["minority", "majority"])
    network = cluster.network
    for a in minority:
        for b in majority:
            network.cut_both(a, b)
    for node in majority if client_side == "minority" else minority:
        network.cut_both("client", node)
    record = _record("majority-minority", f"{minority} | {majority}, client with the {client_side}", rng, network.heal)
    record.keeps_majority = client_side == "majority"     # a client that reaches only the minority cannot write
    return record


def bridge(cluster, rng: random.Random) -> FaultRecord:
    """Non-transitive: the bridge node sees both others, which do not see each other."""
    nodes = _nodes(cluster)
    rng.shuffle(nodes)
    middle, left, right = nodes[0], nodes[1], nodes[2]
    cluster.network.cut_both(left, right)
    return _record("bridge", f"{left} x {right}, both see {middle}", rng, cluster.network.heal)


def one_way(cluster, rng: random.Random) -> FaultRecord:
    """One direction only, between the roles where it hurts most half the time: the leader of a
    partition and the active controller (either way round: a leader whose requests reach the
    controller but whose replies do not, or the reverse), else a random pair."""
    nodes = _nodes(cluster)
    leader = leader_of(cluster, rng.randrange(cluster.partition_count))
    controller = active_controller(cluster)
    if leader is not None and controller is not None and leader != controller and rng.random() < 0.5:
        source, target = leader, controller
    else:
        source = leader if leader is not None and rng.random() < 0.5 else rng.choice(nodes)
        target = rng.choice([n for n in nodes if n != source])
    if rng.random() < 0.5:
        source, target = target, source
    cluster.network.cut(source, target)
    roles = {leader: "leader ", controller: "controller "}
    source_name, target_name = (f"{roles.get(node, '')}{node}" for node in (source, target))
    return _record("one-way", f"{source_name} -> {target_name} dropped", rng, cluster.network.heal)


def packet_loss(cluster, rng: random.Random) -> FaultRecord:
    """20-60% random loss (nftables numgen) on both directions of one or two links."""
    nodes = _nodes(cluster)
    node = rng.choice(nodes)
    others = [n for n in nodes if n != node]
    chosen = others if rng.random() < 0.5 else [rng.choice(others)]
    percent = rng.randrange(20, 61)
    for other in chosen:
        cluster.network.lose(node, other, percent)
        cluster.network.lose(other, node, percent)
    return _record("packet-loss", f"{percent}% between {node} and {chosen}", rng, cluster.network.heal)


def delay(cluster, rng: random.Random) -> FaultRecord:
    """Delay and jitter (userspace proxy) into one node from every other node and the client."""
    node = rng.choice(_nodes(cluster))
    delay_ms, jitter_ms = rng.randrange(50, 400), rng.randrange(0, 300)
    for source in [n for n in _nodes(cluster) if n != node] + ["client"]:
        cluster.set_delay(source, node, delay_ms, jitter_ms)
    return _record("delay", f"into {node}: {delay_ms} ms + jitter {jitter_ms} ms", rng, cluster.clear_delays)


def reorder(cluster, rng: random.Random) -> FaultRecord:
    """Reordering on every link of one node, both directions (NFQUEUE: tests/support/nemesis/
    reorder.py): 10-40% of the packets held back 5-30 ms + 0-20 ms jitter, so later ones pass them."""
    node = rng.choice(_nodes(cluster))
    percent, hold_ms, jitter_ms = rng.randrange(10, 41), rng.randrange(5, 31), rng.randrange(0, 21)
    seed = rng.randrange(1 << 30)
    for other in [n for n in _nodes(cluster) if n != node] + ["client"]:
        cluster.network.reorder(node, other, percent, hold_ms, jitter_ms, seed)
        cluster.network.reorder(other, node, percent, hold_ms, jitter_ms, seed)
    return _record("reorder", f"{percent}% of packets to and from {node} held {hold_ms} ms + jitter {jitter_ms} ms",
                   rng, cluster.network.heal)


def _restart(cluster, node: int) -> None:
    if not cluster.processes[node].is_alive:
        cluster.start(node)


def kill(cluster, rng: random.Random) -> FaultRecord:
    """kill -9 one node (a partition leader half the time); heal restarts it."""
    leader = leader_of(cluster, rng.randrange(cluster.partition_count))
    node = leader if leader is not None and rng.random() < 0.5 else rng.choice(_nodes(cluster))
    cluster.processes[node].kill()
    return _record("kill", f"kill -9 node {node}", rng, lambda: _restart(cluster, node), [node])


def pause(cluster, rng: random.Random) -> FaultRecord:
    """SIGSTOP one node (the leader of a partition or the active controller half the time)."""
    target = leader_of(cluster, rng.randrange(cluster.partition_count)) if rng.random() < 0.5 else active_controller(cluster)
    node = target if target is not None and rng.random() < 0.7 else rng.choice(_nodes(cluster))
    process = cluster.processes[node]
    process.freeze()
    return _record("pause", f"SIGSTOP node {node}", rng, process.thaw)


def crash_while_partitioned(cluster, rng: random.Random) -> FaultRecord:
    """NATS' combination: one node isolated while another is killed -9 (and restarted at heal)."""
    nodes = _nodes(cluster)
    rng.shuffle(nodes)
    isolated, crashed = nodes[0], nodes[1]
    for other in nodes[1:]:
        cluster.network.cut_both(isolated, other)
    cluster.processes[crashed].kill()

    def heal() -> None:
        cluster.network.heal()
        _restart(cluster, crashed)

    return _record("crash-while-partitioned", f"node {isolated} isolated, node {crashed} kill -9", rng, heal, [crashed])


def crash_while_paused(cluster, rng: random.Random) -> FaultRecord:
    """NATS' combination: one node SIGSTOPped while another is killed -9."""
    nodes = _nodes(cluster)
    rng.shuffle(nodes)
    paused, crashed = nodes[0], nodes[1]
    cluster.processes[paused].freeze()
    cluster.processes[crashed].kill()

    def heal() -> None:
        cluster.processes[paused].thaw()
        _restart(cluster, crashed)

    return _record("crash-while-paused", f"node {paused} SIGSTOP, node {crashed} kill -9", rng, heal, [crashed])


def clock_skew(cluster, rng: random.Random) -> FaultRecord:
    """Restart one node under libfaketime, its clock 5 s to 10 min ahead (the node's time, wall and
    monotonic, jumps forward at the restart); heal restarts it on the real clock (a jump back)."""
    node = rng.choice(_nodes(cluster))
    offset = f"+{rng.randrange(5, 600)}s"
    _stop_gracefully(cluster, node)
    cluster.clock_offsets[node] = offset
    cluster.start(node)
    cluster.wait_ready([node], timeout_s=180)      # the fault is the node running on its skewed clock

    def heal() -> None:
        _stop_gracefully(cluster, node)
        cluster.clock_offsets.pop(node, None)
        cluster.start(node)

    return _record("clock-skew", f"node {node} restarted at {offset}", rng, heal, [node])


def _stop_gracefully(cluster, node: int) -> None:
    process = cluster.processes[node]
    if process.is_alive and process.terminate(15) is None:
        process.kill()


def stopped_node_fault(kind: str, damage: Callable[..., object]) -> Callable[..., FaultRecord]:
    """A registry row for a disk fault: kill -9 one node, `damage(data_dir, rng)` while it is
    down, restart it at heal (the restart runs the node's recovery over the damage). A node without
    such a file (no snapshot or index yet) passes to the next; with none anywhere it was a kill."""

    def inject(cluster, rng: random.Random) -> FaultRecord:
        nodes = _nodes(cluster)
        node = rng.choice(nodes)
        cluster.processes[node].kill()
        what = "no such file on it: a plain kill -9"
        try:
            what = damage(str(cluster.root / f"node-{node}"), rng)
        except disk_faults.NoTargetError:
            pass
        return _record(kind, f"node {node}: {what}", rng, lambda: _restart(cluster, node), [node])

    return inject


FAULTS: dict[str, Fault] = {
    "isolate-leader": Fault(isolate_leader, True, False, 3),
    "isolate-controller": Fault(isolate_controller, True, False, 2),
    "majority-minority": Fault(majority_minority, True, False, 2),
    "bridge": Fault(bridge, True, False, 1.5),
    "one-way": Fault(one_way, True, False, 1.5),
    "packet-loss": Fault(packet_loss, True, False, 2),
    "delay": Fault(delay, True, False, 1.5),
    "reorder": Fault(reorder, True, False, 1.5),
    "pause": Fault(pause, True, False, 3),
    "kill": Fault(kill, True, True, 1),
    "crash-while-partitioned": Fault(crash_while_partitioned, False, True, 0.5),
    "crash-while-paused": Fault(crash_while_paused, False, True, 0.5),
    "clock-skew": Fault(clock_skew, True, True, 0.5),
}


#: Disk faults drawn by the nemesis: every kind of tests/support/disk_faults.py but the Raft
#: snapshot's (see the module docstring), all together about as often as one kill.
DISK_FAULT_WEIGHT = 0.1


def registry() -> dict[str, Fault]:
    """FAULTS plus one row per disk fault of tests/support/disk_faults.py."""
    table = dict(FAULTS)
    for name, damage in disk_faults.FAULTS.items():
        if not name.startswith("raft snapshot"):
            table[name.replace(" ", "-")] = Fault(stopped_node_fault(name.replace(" ", "-"), damage), True, True, DISK_FAULT_WEIGHT)
    return table
