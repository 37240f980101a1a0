"""The metadata quorum as 3 real processes on loopback, under kill -9.

Each voter is tests/support/quorum_harness.py (MetadataQuorum plus a controller-like claim on
leadership), driven over stdin/stdout. The workload allocates producer-id blocks: every applied
allocation is visible in the state (the dedup table remembers its first result, and the counter
advances by one block), so "every acknowledged command is present" and "applied exactly once" are
both checkable on every voter:

- every acknowledged request id is remembered by every voter with the same block it acknowledged;
- the remembered blocks are exactly 0, 1000, ..., 1000*(k-1) and next_producer_id is 1000*k
  (no block handed out twice, none skipped);
- every voter ends with a byte-identical snapshot at the same offset;
- no voter ever applied an entry that was later replaced by a different one (never committed).

Fault schedules are seeded; the seed is printed first (set FRESHET_TEST_SEED to replay one).
Reference: Raft §5.4 (safety), Kafka RaftEventSimulationTest invariants.
"""

from __future__ import annotations

import os
import random
import statistics
import time

import pytest

from tests.support.quorum_cluster import HarnessCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

BLOCK = 1000


def seeded_rng() -> random.Random:
    seed = int(os.environ.get("FRESHET_TEST_SEED", str(time.time_ns() % 2**31)))
    print(f"FRESHET_TEST_SEED={seed}")
    return random.Random(seed)


def wait_for_acks(process, prefix: str, count: int, timeout_s: float) -> bool:
    seen = [0]

    def enough(event: dict) -> bool:
        if event["event"] == "ack" and event["rid"].startswith(prefix + "-"):
            seen[0] += 1
        return seen[0] >= count or event["event"] in ("load_done", "crash")

    return process.wait_for(enough, timeout_s) is not None


def converged_images(cluster: HarnessCluster, timeout_s: float = 30.0) -> dict[int, dict]:
    """Images of every voter once the current leader's claim is applied everywhere and all agree.

    Right after a restart every voter may show the same stale image (its snapshot) because no
    leader has committed anything yet; the claim the new leader proposes follows every earlier
    committed entry in the log, so once all voters have applied it they have applied those too.
    """
    deadline = time.monotonic() + timeout_s
    leader = cluster.leader(timeout_s=timeout_s)
    claims = [e for e in leader.events if e["event"] == "claimed"]
    claim_offset = claims[-1]["offset"]
    last = {}
    while time.monotonic() < deadline:
        last = {n: p.request(op="image", timeout_s=5) for n, p in cluster.processes.items()}
        if (
            all(last.values())
            and all(image["offset"] >= claim_offset for image in last.values())
            and len({(i["offset"], i["digest"]) for i in last.values()}) == 1
        ):
            return last
        time.sleep(0.1)
    summary = {n: (i["offset"], i["digest"][:12]) if i else None for n, i in last.items()}
    logs = "\n".join(f"--- voter {p.node_id}\n{p.log_tail()}" for p in cluster.processes.values())
    raise AssertionError(f"voters did not converge past offset {claim_offset} within {timeout_s} s: {summary}\n{logs}")


def check_nothing_lost_and_applied_once(images: dict[int, dict], acked: dict[str, dict]) -> None:
    allocations_acked = {rid: ack for rid, ack in acked.items() if ack["first"] is not None}
    assert allocations_acked, "the workload acknowledged nothing"
    for node_id, image in images.items():
        remembered = image["allocations"]
        lost = sorted(rid for rid in allocations_acked if rid not in remembered)
        assert not lost, f"voter {node_id} lost {len(lost)} acknowledged commands, e.g. {lost[:5]}"
        changed = sorted(rid for rid, ack in allocations_acked.items() if remembered[rid] != ack["first"])
        assert not changed, f"voter {node_id} remembers other results for {changed[:5]}"
        blocks = sorted(remembered.values())
        assert blocks == list(range(0, BLOCK * len(blocks), BLOCK)), f"voter {node_id}: a block was handed out twice or skipped"
        assert image["next_producer_id"] == BLOCK * len(blocks)


def check_no_voter_applied_an_uncommitted_entry(cluster: HarnessCluster) -> None:
    """A voter stops with "broken invariant" if an entry it applied is ever replaced by a
    different one (RaftJournal), i.e. if it applied an entry that was not committed."""
    for process in cluster.all_processes:
        text = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        assert "broken invariant" not in text, f"voter {process.node_id} diverged:\n{process.log_tail()}"
        assert "metadata quorum voter" not in text, f"voter {process.node_id} stopped:\n{process.log_tail()}"
        assert "Traceback" not in text, process.log_tail()


def unacknowledged(acked: dict[str, dict], prefix: str, window: int) -> list[str]:
    """Request ids of `prefix` that may have been in flight when their leader died."""
    indexes = [int(rid.rsplit("-", 1)[1]) for rid in acked if rid.startswith(prefix + "-")]
    top = max(indexes, default=-1) + window
    return [f"{prefix}-{i}" for i in range(top + 1) if f"{prefix}-{i}" not in acked]


def test_killing_the_leader_repeatedly_elects_a_new_one_fast_and_loses_nothing(tmp_path):
    """kill -9 the leader under load, 8 times; each time a survivor leads within about a second.
    Commands in flight at a kill have an unknown outcome: they are retried with the same request id
    on the final leader, which must answer a duplicate with the first result."""
    rng = seeded_rng()
    rounds, window = 8, 16
    failovers = []
    with HarnessCluster(tmp_path, snapshot_min_entries=300) as cluster:
        cluster.start_all()
        for round_number in range(rounds):
            leader = cluster.leader(timeout_s=15)
            prefix = f"f{round_number}"
            leader.send(op="load", prefix=prefix, count=100_000, window=window, kind="allocate")
            assert wait_for_acks(leader, prefix, rng.randint(50, 400), 15), leader.log_tail()
            old_term = max(e["term"] for e in leader.events if e["event"] == "leadership")
            killed_at = time.monotonic()
            cluster.kill(leader.node_id)
            survivors = [p for p in cluster.processes.values() if p.is_alive]
            elected = None
            deadline = time.monotonic() + 10
            while elected is None and time.monotonic() < deadline:
                for process in survivors:
                    elected = elected or process.wait_for(
                        lambda e, old_term=old_term: e["event"] == "leadership" and e["is_leader"] and e["term"] > old_term,
                        0.02,
                    )
            assert elected is not None, "no new leader within 10 s"
            failovers.append(elected["t"] - killed_at)
            restarted = cluster.start(leader.node_id)
            assert restarted.wait_for(lambda e: e["event"] == "ready", 30), restarted.log_tail()

        final = cluster.leader(timeout_s=15)
        acked = cluster.acknowledged()
        retry = [rid for r in range(rounds) for rid in unacknowledged(acked, f"f{r}", window)]
        final.send(op="retry", request_ids=retry)
        assert final.wait_for(lambda e: e["event"] == "retry_done", 60), final.log_tail()
        acked = cluster.acknowledged()
        assert all(rid in acked for rid in retry), "every retried command gets a result"
        check_nothing_lost_and_applied_once(converged_images(cluster), acked)
        check_no_voter_applied_an_uncommitted_entry(cluster)

    print(f"failover seconds: {[round(f, 3) for f in failovers]}")
    assert statistics.median(failovers) < 1.0, failovers
    assert max(failovers) < 3.0, failovers                      # margin for a busy 2-core machine


def test_killing_every_voter_at_once_during_writes_and_snapshots_loses_nothing(tmp_path):
    """kill -9 all three voters during a write load, restart them together, 8 rounds.

    Snapshots are taken every 100 entries and voters also kill themselves at seeded crash points:
    right after a snapshot file is renamed but before the journal is trimmed (the window in which
    plain pysyncobj discards its whole journal), half-way through writing a snapshot, and between
    appending entries and acknowledging them."""
    rng = seeded_rng()
    rounds = 8
    crashes: list[str] = []

    def crash_points(node_id: int) -> list[str]:
        return [
            "--crash-point", "after_snapshot_rename:0.15",
            "--crash-point", "mid_snapshot_write:0.05",
            "--crash-point", "before_acknowledgement:0.0005",
            "--seed", str(rng.randrange(2**31)),
        ]

    with HarnessCluster(tmp_path, snapshot_min_entries=100, extra_args=crash_points) as cluster:
        cluster.start_all()
        for round_number in range(rounds):
            leader = cluster.leader(timeout_s=20)
            for process in cluster.processes.values():
                process.send(op="arm")
            prefix = f"k{round_number}"
            leader.send(op="load", prefix=prefix, count=1000, window=16, kind="allocate")
            wait_for_acks(leader, prefix, rng.randint(1, 900), 15)
            cluster.kill_all()
            crashes += [e["point"] for p in cluster.processes.values() for e in p.events if e["event"] == "crash"]
            cluster.start_all()
            check_nothing_lost_and_applied_once(converged_images(cluster), cluster.acknowledged())
        check_no_voter_applied_an_uncommitted_entry(cluster)
    print(f"self-inflicted crashes: {crashes}")
    assert "after_snapshot_rename" in crashes, "the compaction crash window was never exercised"
