"""Damaged files on a minority (1 of 3) while it is down: the node detects the damage on restart,
cuts or rebuilds what it must, re-replicates, and nothing acknowledged is lost.

Faults are tests/support/disk_faults.py's, driven by a seeded rng (FRESHET_TEST_SEED replays a
run; the seed is printed).

- `test_damaged_partition_files_and_raft_journal_on_one_node_heal`: a 3-node cluster (every node
  broker + controller) under an acks=all idempotent producer; round after round one node (in turn)
  is killed with SIGKILL, one of its files is damaged (segment, offset index, time index,
  high-watermark checkpoint, Raft journal; flip or truncation), and it restarts. At the end the
  replicas are checked as tests/cluster/test_replication_cluster.py checks them (every
  acknowledged record at its offset, no gaps, no duplicates, byte-identical replicas).
- `test_damaged_raft_journal_and_snapshot_on_one_voter_heal`: three metadata voters
  (tests/support/quorum_cluster.py) with a snapshot every 100 entries; the Raft journal or the
  snapshot of one voter is damaged while it is down. A damaged journal tail is cut and re-sent
  by the leader. A damaged snapshot (or a journal with nothing readable) stops the voter with a
  clear error instead (starting empty could bring a one-voter cluster back with no metadata); the
  test then does the operator's step from the README ("Damaged files": move the snapshot and the
  journal aside, keep raft.meta) and restarts it. Either way every voter then converges on the
  same image holding every acknowledged command (test_metadata_cluster.py's checks).
"""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.cluster.test_metadata_cluster import (
    check_nothing_lost_and_applied_once,
    converged_images,
    seeded_rng,
    wait_for_acks,
)
from tests.cluster.test_replication_cluster import AckedProducer, create, isr_of, verify_replicas
from tests.support import disk_faults
from tests.support.node_cluster import NodeCluster
from tests.support.quorum_cluster import HarnessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
SETS = ["replica.lag.time.max.ms=4000", "broker.session.timeout.ms=6000"]
ASSIGNMENTS = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]
NODE_FAULTS = (*disk_faults.BROKER_FAULTS, "raft journal bit flip", "raft journal truncation")


def test_damaged_partition_files_and_raft_journal_on_one_node_heal(tmp_path):
    rng = seeded_rng()
    topic = "damaged"
    timeline: list[str] = []
    with NodeCluster(tmp_path, controllers=3, sets=SETS) as cluster:
        for node_id in cluster.ports:
            cluster.start(node_id)
        cluster.wait_ready(timeout_s=90)
        # Small segments and a dense index, so that sealed segments with non-empty indexes exist.
        create(cluster, topic, ASSIGNMENTS, configs={"segment.bytes": str(48 * 1024), "index.interval.bytes": "512"})
        producer = AckedProducer(cluster, topic, len(ASSIGNMENTS), "d")
        producer.start()
        try:
            producer.wait_acks(1500, 90)
            for round_number, name in enumerate(NODE_FAULTS):
                victim = 1 + round_number % 3
                data_dir = str(pathlib.Path(cluster.root) / f"node-{victim}")
                wait_until(lambda data_dir=data_dir: list(pathlib.Path(data_dir).rglob(disk_faults.HIGH_WATERMARK_CHECKPOINT)),
                           15, "a high-watermark checkpoint")
                cluster.processes[victim].kill()
                timeline.append(f"node {victim}: {name}: {disk_faults.FAULTS[name](data_dir, rng)}")
                print(timeline[-1])
                cluster.start(victim)
                cluster.wait_ready([victim], timeout_s=90)
                for number, replicas in enumerate(ASSIGNMENTS):
                    wait_until(lambda number=number, replicas=replicas: isr_of(cluster, topic, number) == sorted(replicas),
                               90, f"{topic}-{number} back in sync after {timeline[-1]}")
                producer.wait_acks(300, 60)
        finally:
            producer.stop()
        checked = verify_replicas(cluster, topic, ASSIGNMENTS, producer.acked)
        assert checked == len(producer.acked) >= 1500 + 300 * len(NODE_FAULTS)
        assert len(timeline) == len(NODE_FAULTS)


def test_damaged_raft_journal_and_snapshot_on_one_voter_heal(tmp_path):
    rng = seeded_rng()
    refusals: list[str] = []
    with HarnessCluster(tmp_path, snapshot_min_entries=100) as cluster:
        cluster.start_all()
        for round_number, name in enumerate(disk_faults.RAFT_FAULTS * 2):
            leader = cluster.leader(timeout_s=20)
            prefix = f"r{round_number}"
            leader.send(op="load", prefix=prefix, count=250, window=16, kind="allocate")
            assert wait_for_acks(leader, prefix, 250, 30), leader.log_tail()
            for process in cluster.processes.values():
                assert process.send(op="snapshot"), process.log_tail()
            for node_id in cluster.processes:
                snapshot_file = tmp_path / f"voter-{node_id}" / disk_faults.RAFT_SNAPSHOT
                wait_until(lambda snapshot_file=snapshot_file: snapshot_file.exists() and snapshot_file.stat().st_size, 15,
                           f"voter {node_id}'s snapshot")
            victim = 1 + round_number % 3
            cluster.kill(victim)
            description = disk_faults.FAULTS[name](str(tmp_path / f"voter-{victim}"), rng)
            print(f"voter {victim}: {name}: {description}")
            restarted = cluster.start(victim)
            started = restarted.wait_for(lambda e: e["event"] in ("ready", "eof"), 60)
            assert started is not None, restarted.log_tail()
            if started["event"] == "eof":
                error = restarted.log_tail(80)
                assert "not a valid Freshet metadata snapshot" in error or "shorter than the journal header" in error, error
                refusals.append(name)
                cluster.kill(victim)         # reap it: its output ended a moment before the process did
                set_raft_state_aside(tmp_path / f"voter-{victim}")
                restarted = cluster.start(victim)
                assert restarted.wait_for(lambda e: e["event"] == "ready", 60), restarted.log_tail()
            check_nothing_lost_and_applied_once(converged_images(cluster, timeout_s=60), cluster.acknowledged())
    assert refusals.count("raft snapshot bit flip") == 2, refusals
    assert refusals.count("raft snapshot truncation") == 2, refusals


def set_raft_state_aside(voter_dir: pathlib.Path) -> None:
    """The operator's step for a voter that refused its damaged Raft files (README "Damaged
    files"): move the snapshot and the journal aside, keep raft.meta (term and vote)."""
    for name in (disk_faults.RAFT_SNAPSHOT, disk_faults.RAFT_JOURNAL):
        if (voter_dir / name).exists():
            os.replace(voter_dir / name, voter_dir / f"{name}.damaged")
