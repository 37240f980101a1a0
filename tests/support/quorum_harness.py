"""One metadata voter in its own process, for cluster tests and the benchmark.

Usage:
    python quorum_harness.py --node-id 1 --voters 1=127.0.0.1:7001,2=...,3=... --data-dir DIR \
        --password SECRET [--snapshot-min-entries N] [--no-fsync] [--crash-point NAME:PROBABILITY ...]
        [--seed S] [--raw]

Control channel: one JSON object per line on stdin (requests), one per line on stdout (events).
Every event has "event" and "node"; times are time.monotonic() (CLOCK_MONOTONIC, comparable
between processes on one machine).

Requests ("op"):
    load      {"prefix", "count", "window", "kind": "allocate"|"noop"|"isr", "report": true}: propose
              `count` commands with request ids "<prefix>-<i>", at most `window` in flight; stops
              early when this voter stops leading. Emits one "ack"/"nack" per command (unless
              report is false: the benchmark), then "load_done".
    retry     {"request_ids": [...]}: propose allocations with these ids again (dedup makes it safe).
    image     emits "image": offset, next_producer_id, controller, snapshot digest and every remembered
              allocation {request id: first producer id}.
    status    emits "status" (MetadataQuorum.status().to_json()).
    snapshot  forces a log compaction.
    arm       arms the crash points (they are inert until then, so a restarted voter can be checked).
    exit      closes the voter cleanly and exits 0 (EOF on stdin does the same).

Events: "ready", "leadership" {term, leader, is_leader, t}, "claimed" {epoch}, "ack" {rid, offset,
code, first}, "nack" {rid, error, unknown}, "load_done" {count, seconds, acked}, "image", "status",
"crash" {point} (written just before the process SIGKILLs itself at a crash point).

Crash points (once armed, each fires with its probability every time the code passes it, seeded
by --seed):
    after_snapshot_rename   the snapshot file was renamed into place, the journal not yet trimmed
    mid_snapshot_write      half of the new snapshot file is written
    before_acknowledgement  entries were appended, acknowledgements not yet sent
    after_journal_sync      the journal was fdatasynced, nothing sent yet

--raw runs plain pysyncobj (same transport settings, its own FileJournal, one trivial replicated
method) instead of MetadataQuorum: the benchmark's baseline. Only load/status/exit work then.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time

from freshet.metadata import commands as c
from freshet.metadata import journal as journal_module
from freshet.metadata import quorum as quorum_module
from freshet.metadata import snapshot
from freshet.metadata.errors import NotLeaderError, QuorumClosedError
from freshet.metadata.quorum import MetadataQuorum, QuorumConfig

BROKER_ID = 1
ISR_PARTITIONS = 1000


class Emitter:
    """Writes events as JSON lines; thread-safe."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self._lock = threading.Lock()

    def emit(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, "node": self.node_id, **fields}, separators=(",", ":"))
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


ARMED = threading.Event()


def install_crash_points(specs: list[str], seed: int, out: Emitter) -> None:
    """Monkeypatch the voter so that it SIGKILLs itself at the named points (test-only seams)."""
    chances = {}
    for spec in specs:
        name, _, probability = spec.partition(":")
        chances[name] = float(probability or 1.0)
    rng = random.Random(seed)
    lock = threading.Lock()

    def maybe_crash(point: str) -> None:
        if not ARMED.is_set():
            return
        with lock:
            hit = point in chances and rng.random() < chances[point]
        if hit:
            out.emit("crash", point=point, t=time.monotonic())
            os.kill(os.getpid(), signal.SIGKILL)

    real_trim = journal_module.RaftJournal.deleteEntriesTo

    def trim(self, entry_to):
        maybe_crash("after_snapshot_rename")
        return real_trim(self, entry_to)

    real_write = MetadataQuorum._write_snapshot_file

    def write(self, path, data):
        if "mid_snapshot_write" in chances and ARMED.is_set():
            with lock:
                hit = rng.random() < chances["mid_snapshot_write"]
            if hit:
                image = self._image
                contents = snapshot.encode_snapshot(image)
                with open(path, "wb") as f:
                    f.write(contents[: len(contents) // 2])
                out.emit("crash", point="mid_snapshot_write", t=time.monotonic())
                os.kill(os.getpid(), signal.SIGKILL)
        return real_write(self, path, data)

    real_flush = quorum_module._DurableTransport.flush_deferred

    def flush(self):
        if self._deferred:
            maybe_crash("before_acknowledgement")
        return real_flush(self)

    real_sync = journal_module.RaftJournal.sync

    def sync(self):
        worked = real_sync(self)
        if worked:
            maybe_crash("after_journal_sync")
        return worked

    journal_module.RaftJournal.deleteEntriesTo = trim
    MetadataQuorum._write_snapshot_file = write
    quorum_module._DurableTransport.flush_deferred = flush
    journal_module.RaftJournal.sync = sync


class FreshetVoter:
    """MetadataQuorum plus the controller-like behaviour the tests need (claim on leadership).
    Thread-safe as far as the harness needs: loads run on their own threads, over a thread-safe
    quorum."""

    def __init__(self, args, out: Emitter) -> None:
        self.out = out
        self.node_id = args.node_id
        self.quorum = MetadataQuorum(
            QuorumConfig(
                node_id=args.node_id,
                voters=args.voters,
                data_dir=args.data_dir,
                password=args.password,
                snapshot_min_entries=args.snapshot_min_entries,
                fsync=args.fsync,
                proposal_timeout_s=5.0,
            )
        )
        self.quorum.add_leadership_listener(self._on_leadership)
        self._load_stop = threading.Event()

    def _on_leadership(self, change) -> None:
        self.out.emit("leadership", term=change.term, leader=change.leader_id, is_leader=change.is_leader, t=time.monotonic())
        if change.is_leader:
            # As the active controller will: claim before proposing anything else.
            future = self.quorum.propose(c.claim_controller(f"claim-{self.node_id}-{change.term}", self.node_id, change.term))
            future.add_done_callback(lambda f, term=change.term: self._on_claimed(f, term))

    def _on_claimed(self, future, term: int) -> None:
        if future.exception() is None and future.result().error_code == 0:
            self.out.emit("claimed", epoch=term, offset=future.result().offset, t=time.monotonic())

    def _controller_epoch(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            image, term = self.quorum.image, self.quorum.term
            if self.quorum.is_leader and image.controller_id == self.node_id and image.controller_epoch == term:
                return term
            time.sleep(0.005)
        return None

    def _prepare(self, epoch: int, kind: str) -> dict:
        """Broker(s) and topic the load needs; idempotent thanks to fixed request ids."""
        context = {}
        incarnation = b"harness-broker-1"[:16].ljust(16, b"\0")
        registered = self.quorum.propose(c.register_broker("harness-register-1", epoch, BROKER_ID, incarnation, "127.0.0.1", 9092)).result(10)
        context["broker_epoch"] = registered.broker_epoch
        if kind == "isr":
            for node_id in (2, 3):
                result = self.quorum.propose(
                    c.register_broker(f"harness-register-{node_id}", epoch, node_id, bytes([node_id]) * 16, "127.0.0.1", 9092 + node_id)
                ).result(10)
                self.quorum.propose(c.unfence_broker(f"harness-unfence-{node_id}-{result.broker_epoch}", epoch, node_id, result.broker_epoch)).result(10)
            self.quorum.propose(c.unfence_broker(f"harness-unfence-1-{registered.broker_epoch}", epoch, 1, registered.broker_epoch)).result(10)
            topic_id = b"harness-isr-topc"
            if self.quorum.image.topic_by_id(topic_id) is None:
                assignments = [([1, 2, 3], [1, 2, 3], 1)] * ISR_PARTITIONS
                self.quorum.propose(c.create_topic("harness-topic", epoch, topic_id, "bench", assignments)).result(10)
            context["topic_id"] = topic_id
        return context

    def _command(self, kind: str, rid: str, i: int, epoch: int, context: dict):
        if kind == "noop":
            return c.noop(rid, epoch)
        if kind == "allocate":
            return c.allocate_producer_ids(rid, epoch, BROKER_ID, context["broker_epoch"])
        assert kind == "isr"
        partition = i % ISR_PARTITIONS
        current = self.quorum.image.topic_by_id(context["topic_id"]).partitions[partition]
        isr = [1, 2] if len(current.isr) == 3 else [1, 2, 3]
        return c.change_partition(rid, epoch, context["topic_id"], partition, current.partition_epoch, isr=isr)

    def load(self, prefix: str, count: int, window: int, kind: str, report: bool = True) -> None:
        epoch = self._controller_epoch(10.0)
        if epoch is None:
            self.out.emit("load_done", prefix=prefix, count=0, seconds=0.0, acked=0, reason="not the controller")
            return
        try:
            context = self._prepare(epoch, kind)
        except Exception as error:  # noqa: BLE001 - reported to the test, which decides
            self.out.emit("load_done", prefix=prefix, count=0, seconds=0.0, acked=0, reason=repr(error))
            return
        slots = threading.Semaphore(window)
        acked = [0]
        outstanding = threading.Semaphore(0)
        issued = 0
        reason = "done"
        started = time.monotonic()
        self._load_stop.clear()
        for i in range(count):
            if self._load_stop.is_set():
                reason = "stopped"
                break
            slots.acquire()
            rid = f"{prefix}-{i}"
            image = self.quorum.image
            if image.controller_id == self.node_id:
                epoch = image.controller_epoch          # re-elected: the controller claimed again
            future = self.quorum.propose(self._command(kind, rid, i, epoch, context))
            issued += 1

            def done(f, rid=rid):
                error = f.exception()
                if error is None:
                    result = f.result()
                    acked[0] += 1
                    if report:
                        first = result.producer_ids.first_producer_id if result.HasField("producer_ids") else None
                        self.out.emit("ack", rid=rid, offset=result.offset, code=result.error_code, first=first)
                else:
                    self.out.emit("nack", rid=rid, error=type(error).__name__, unknown=bool(getattr(error, "outcome_unknown", True)))
                    if isinstance(error, (NotLeaderError, QuorumClosedError)):
                        self._load_stop.set()
                slots.release()
                outstanding.release()

            future.add_done_callback(done)
        for _ in range(issued):
            outstanding.acquire()
        elapsed = time.monotonic() - started
        self.out.emit("load_done", prefix=prefix, count=issued, seconds=elapsed, acked=acked[0], reason=reason)

    def retry(self, request_ids: list[str]) -> None:
        epoch = self._controller_epoch(10.0)
        if epoch is None:
            self.out.emit("retry_done", count=0, reason="not the controller")
            return
        broker_epoch = self._prepare(epoch, "allocate")["broker_epoch"]
        futures = [(rid, self.quorum.propose(c.allocate_producer_ids(rid, epoch, BROKER_ID, broker_epoch))) for rid in request_ids]
        for rid, future in futures:
            try:
                result = future.result(10)
                first = result.producer_ids.first_producer_id if result.HasField("producer_ids") else None
                self.out.emit("ack", rid=rid, offset=result.offset, code=result.error_code, first=first)
            except Exception as error:  # noqa: BLE001
                self.out.emit("nack", rid=rid, error=type(error).__name__, unknown=bool(getattr(error, "outcome_unknown", True)))
        self.out.emit("retry_done", count=len(futures), reason="done")

    def image(self) -> None:
        image = self.quorum.image
        allocations = {}
        for rid, data in image.recent_requests.items():
            result = image.request_result(rid)
            if result.HasField("producer_ids") and result.error_code == 0:
                allocations[rid] = result.producer_ids.first_producer_id
            del data
        self.out.emit(
            "image",
            offset=image.offset,
            next_producer_id=image.next_producer_id,
            controller=image.controller_id,
            controller_epoch=image.controller_epoch,
            digest=hashlib.sha256(snapshot.encode_snapshot(image)).hexdigest(),
            allocations=allocations,
        )

    def handle(self, request: dict) -> None:
        op = request["op"]
        if op == "load":
            args = (request["prefix"], request["count"], request.get("window", 16), request.get("kind", "allocate"), request.get("report", True))
            threading.Thread(target=self.load, args=args, daemon=True).start()
        elif op == "stop_load":
            self._load_stop.set()
        elif op == "retry":
            threading.Thread(target=self.retry, args=(request["request_ids"],), daemon=True).start()
        elif op == "image":
            self.image()
        elif op == "status":
            self.out.emit("status", **self.quorum.status().to_json())
        elif op == "snapshot":
            self.quorum.force_snapshot()
        elif op == "arm":
            ARMED.set()
        else:
            raise ValueError(f"unknown op {op!r}")

    def close(self) -> None:
        self.quorum.close()


class RawVoter:
    """Plain pysyncobj with Freshet's transport settings: the benchmark's baseline. Thread-safe
    as pysyncobj's replicated calls with callbacks are."""

    def __init__(self, args, out: Emitter) -> None:
        from pysyncobj import SyncObj, SyncObjConf, replicated

        class Plain(SyncObj):
            def __init__(self, address, others, conf):
                super().__init__(address, others, conf)
                self.applied = 0

            @replicated
            def apply(self, data: bytes) -> int:
                self.applied += 1
                return self.applied

        self.out = out
        self.node_id = args.node_id
        address = args.voters[args.node_id]
        os.makedirs(args.data_dir, exist_ok=True)
        conf = SyncObjConf(
            password=args.password,
            appendEntriesUseBatch=False,
            bindAddress=address,
            raftMinTimeout=0.25,
            raftMaxTimeout=0.5,
            appendEntriesPeriod=0.05,
            connectionTimeout=30.0,
            connectionRetryTime=0.5,
            leaderFallbackTimeout=1.0,
            commandsWaitLeader=False,
            journalFile=os.path.join(args.data_dir, "plain.journal"),
            logCompactionMinEntries=10**9,
            logCompactionMinTime=10**9,
            tcp_keepalive=(10, 3, 3),
        )
        self.node = Plain(address, [a for n, a in args.voters.items() if n != args.node_id], conf)

    def load(self, prefix: str, count: int, window: int, kind: str) -> None:
        deadline = time.monotonic() + 10
        while not self.node._isLeader() and time.monotonic() < deadline:
            time.sleep(0.005)
        payload = c.encode(c.noop(f"{prefix}-0", 1))
        slots = threading.Semaphore(window)
        outstanding = threading.Semaphore(0)
        acked = [0]
        started = time.monotonic()
        for _ in range(count):
            slots.acquire()

            def done(result, error):
                if error == 0:
                    acked[0] += 1
                slots.release()
                outstanding.release()

            self.node.apply(payload, callback=done)
        for _ in range(count):
            outstanding.acquire()
        self.out.emit("load_done", prefix=prefix, count=count, seconds=time.monotonic() - started, acked=acked[0], reason="done")

    def handle(self, request: dict) -> None:
        op = request["op"]
        if op == "load":
            threading.Thread(
                target=self.load, args=(request["prefix"], request["count"], request.get("window", 16), "noop"), daemon=True
            ).start()
        elif op == "status":
            self.out.emit("status", is_leader=self.node._isLeader(), leader=str(self.node._getLeader()))
        else:
            raise ValueError(f"unknown op {op!r} in --raw mode")

    def close(self) -> None:
        self.node.destroy_synchronous()


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-id", type=int, required=True)
    parser.add_argument("--voters", required=True, help="1=host:port,2=host:port,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--snapshot-min-entries", type=int, default=20_000)
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    parser.add_argument("--crash-point", action="append", default=[], help="NAME:PROBABILITY")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args(argv)
    args.voters = {int(k): v for k, v in (item.split("=", 1) for item in args.voters.split(","))}
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = Emitter(args.node_id)
    if args.crash_point:
        install_crash_points(args.crash_point, args.seed, out)
    voter = RawVoter(args, out) if args.raw else FreshetVoter(args, out)
    out.emit("ready", pid=os.getpid(), t=time.monotonic())
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request["op"] == "exit":
                break
            voter.handle(request)
    finally:
        voter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
