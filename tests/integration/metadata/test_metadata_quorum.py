"""MetadataQuorum in one process: proposals, images, listeners, watchers, restarts, snapshots.

Voters run in this process on loopback ports, each with its own quorum thread. Waits are bounded
polls, never fixed sleeps.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from freshet.metadata import commands as c
from freshet.metadata import snapshot
from freshet.metadata.errors import (
    CommandTooLargeError,
    DataDirectoryError,
    NotLeaderError,
    ProposalTimeoutError,
    QuorumClosedError,
    SnapshotFormatError,
    TransferDeniedError,
)
from freshet.metadata.quorum import COMMAND_BYTES_MAX, MetadataQuorum, QuorumStatus
from freshet.v1 import common_pb2

from tests.support.quorum_fixtures import claim, config, leader_of, running, voter_addresses
from tests.support.waiting import wait_until


def test_single_voter_applies_commands_publishes_images_and_notifies_listeners(tmp_path):
    voters = voter_addresses(1)
    with running([config(1, voters, tmp_path)]) as quorums:
        quorum = leader_of(quorums)
        assert quorum.wait_for_leader(5) == 1
        seen: list[tuple[int, bytes, int]] = []
        quorum.add_listener(lambda offset, data, result: seen.append((offset, data, result.error_code)))
        epoch = claim(quorum)
        command = c.init_cluster("init", epoch, "cluster-1")
        result = quorum.propose(command).result(5)
        assert result.error_code == common_pb2.NONE
        assert quorum.image.cluster_id == "cluster-1"
        assert quorum.offset == result.offset
        assert seen[-1] == (result.offset, c.encode(command), common_pb2.NONE)
        recent = quorum.recent_commands(result.offset - 1)
        assert [(r.offset, r.command) for r in recent] == [(result.offset, c.encode(command))]
        assert quorum.recent_commands(result.offset) == []
        assert quorum.wait_for_offset(result.offset, 0.1) is True
        assert quorum.wait_for_offset(result.offset + 1, 0.05) is False
        status = quorum.status()
        assert isinstance(status, QuorumStatus)
        assert (status.is_leader, status.leader_id, status.has_quorum, status.applied_offset) == (True, 1, True, result.offset)
        assert status.commit_raft_index >= result.offset
        as_json = status.to_json()
        assert as_json["leader"] == 1 and as_json["voters"][0] == {
            "id": 1, "address": voters[1], "lag": 0, "connected": True, "match_raft_index": status.last_raft_index,
        }


def test_rejected_commands_resolve_the_future_with_an_error_result(tmp_path):
    with running([config(1, voter_addresses(1), tmp_path)]) as quorums:
        quorum = leader_of(quorums)
        epoch = claim(quorum)
        result = quorum.propose(c.delete_topic("d", epoch, b"\x01" * 16)).result(5)
        assert result.error_code == common_pb2.UNKNOWN_TOPIC_ID
        stale = quorum.propose(c.noop("n", epoch - 1)).result(5)
        assert stale.error_code == common_pb2.STALE_CONTROLLER_EPOCH


def test_duplicate_proposals_apply_once(tmp_path):
    """A proposer retries a command whose outcome is unknown with the same request id."""
    with running([config(1, voter_addresses(1), tmp_path)]) as quorums:
        quorum = leader_of(quorums)
        epoch = claim(quorum)
        registered = quorum.propose(c.register_broker("reg", epoch, 1, b"i" * 16, "h", 1)).result(5)
        first = quorum.propose(c.allocate_producer_ids("alloc", epoch, 1, registered.broker_epoch)).result(5)
        second = quorum.propose(c.allocate_producer_ids("alloc", epoch, 1, registered.broker_epoch)).result(5)
        assert second == first
        assert quorum.image.next_producer_id == 1000


def test_three_voters_replicate_identical_images_through_compactions(tmp_path):
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path, snapshot_min_entries=40) for n in voters]) as quorums:
        leader = leader_of(quorums)
        epoch = claim(leader)
        for node_id in (1, 2, 3):
            leader.propose(c.register_broker(f"r{node_id}", epoch, node_id, bytes([node_id]) * 16, "h", 9000 + node_id)).result(5)
        futures = [leader.propose(c.noop(f"n{i}", epoch)) for i in range(300)]
        last = max(f.result(10).offset for f in futures)
        for quorum in quorums.values():
            assert quorum.wait_for_offset(last, 10)
        images = {snapshot.encode_snapshot(q.image) for q in quorums.values()}
        assert len(images) == 1
        # Every voter compacts once its log holds more than 40 entries; the journal is trimmed.
        wait_until(lambda: all(q.status().journal_entries <= 42 for q in quorums.values()), 10, "compactions")
        assert all(q.status().snapshot_raft_index > 0 for q in quorums.values())
        # The leader reports every voter's lag (asked of whoever leads now: on a loaded machine an
        # election may have happened meanwhile, and a follower reports no lag).
        wait_until(
            lambda: all(v.lag is not None and v.lag >= 0 for v in leader_of(quorums).status().voters),
            10, "the leader reporting every voter's lag",
        )
        leader = leader_of(quorums)
        follower = next(q for q in quorums.values() if q is not leader)
        with pytest.raises(NotLeaderError) as raised:
            follower.propose(c.noop("x", epoch)).result(5)
        assert raised.value.leader_id == leader.node_id
        assert not raised.value.outcome_unknown
        assert all(v.lag is None for v in follower.status().voters)


def test_restart_of_every_voter_keeps_the_state(tmp_path):
    voters = voter_addresses(3)
    configs = [config(n, voters, tmp_path, snapshot_min_entries=25) for n in voters]
    with running(configs) as quorums:
        leader = leader_of(quorums)
        epoch = claim(leader)
        futures = [leader.propose(c.noop(f"n{i}", epoch)) for i in range(100)]
        last = max(f.result(10).offset for f in futures)
        wait_until(lambda: all(q.offset >= last for q in quorums.values()), 10, "all voters caught up")
        expected = snapshot.encode_snapshot(leader.image)
    with running(configs) as quorums:
        for quorum in quorums.values():
            assert quorum.wait_for_offset(last, 10)
            assert snapshot.encode_snapshot(quorum.image) == expected
        leader = leader_of(quorums)
        epoch = claim(leader)
        result = leader.propose(c.noop("after-restart", epoch)).result(10)
        assert result.offset > last
        assert leader.image.request_result("n99") is not None


def test_a_follower_that_fell_behind_a_compaction_installs_the_leaders_snapshot(tmp_path):
    voters = voter_addresses(3)
    configs = {n: config(n, voters, tmp_path, snapshot_min_entries=20) for n in voters}
    with running(list(configs.values())) as quorums:
        leader = leader_of(quorums)
        epoch = claim(leader)
        lagging_id = next(n for n in quorums if n != leader.node_id)
        quorums[lagging_id].close()
        futures = [leader.propose(c.noop(f"n{i}", epoch)) for i in range(120)]
        last = max(f.result(10).offset for f in futures)
        wait_until(lambda: leader.status().snapshot_raft_index > 60, 10, "the leader to compact past the gap")
        resets: list[int] = []
        restarted = MetadataQuorum(configs[lagging_id])
        quorums[lagging_id] = restarted
        restarted.add_listener(lambda *args: None, lambda image: resets.append(image.offset))
        assert restarted.wait_for_offset(last, 10)
        assert resets, "the follower should have installed a snapshot rather than replayed"
        assert snapshot.encode_snapshot(restarted.image) == snapshot.encode_snapshot(leader.image)
        assert restarted.recent_commands(resets[0] - 1) is None       # deltas before the snapshot are gone


def test_transfer_leadership_moves_the_leader_and_notifies_listeners(tmp_path):
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path) for n in voters]) as quorums:
        claim(leader_of(quorums))
        changes = []
        lock = threading.Lock()
        for quorum in quorums.values():
            quorum.add_leadership_listener(lambda change, q=quorum: (lock.acquire(), changes.append((q.node_id, change)), lock.release()))
        # Whoever leads when a follower is caught up: on a loaded 2-core CI machine an election may
        # move the leader between the first look and the transfer (CI stop 23 failed on exactly that).
        leader, target = wait_until(lambda: _leader_and_caught_up_follower(quorums), 15, "a follower caught up with the leader")
        old_term = leader.term
        leader.transfer_leadership(target)
        wait_until(lambda: quorums[target].is_leader, 15, "the transfer")
        wait_until(lambda: any(n == target and ch.is_leader for n, ch in changes), 15, "a became-leader notification")
        new_term = quorums[target].term
        assert new_term > old_term
        assert claim(quorums[target]) == new_term                   # the new controller claims at its term
        with pytest.raises(TransferDeniedError):
            quorums[target].transfer_leadership(target)


def _leader_and_caught_up_follower(quorums):
    for quorum in quorums.values():
        status = quorum.status()
        if status.is_leader:
            follower = next((v.node_id for v in status.voters if not v.is_self and v.lag == 0), None)
            return (quorum, follower) if follower is not None else None
    return None


def test_a_proposal_without_a_majority_times_out_with_an_unknown_outcome(tmp_path):
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path, leader_fallback_timeout_s=5.0) for n in voters]) as quorums:
        leader = leader_of(quorums)
        epoch = claim(leader)
        for quorum in quorums.values():
            if quorum is not leader:
                quorum.close()
        with pytest.raises(ProposalTimeoutError) as raised:
            leader.propose(c.noop("lonely", epoch), timeout_s=0.3).result(5)
        assert raised.value.outcome_unknown
        assert "outcome is unknown" in str(raised.value)


def test_close_fails_pending_proposals_and_later_calls(tmp_path):
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path, leader_fallback_timeout_s=5.0) for n in voters]) as quorums:
        leader = leader_of(quorums)
        epoch = claim(leader)
        for quorum in quorums.values():
            if quorum is not leader:
                quorum.close()
        pending = leader.propose(c.noop("pending", epoch), timeout_s=30)
        leader.close()
        with pytest.raises(QuorumClosedError) as raised:
            pending.result(5)
        assert raised.value.outcome_unknown
        with pytest.raises(QuorumClosedError):
            leader.propose(c.noop("late", epoch)).result(1)
        with pytest.raises(QuorumClosedError):
            leader.status()


def test_oversized_commands_are_refused_before_replication(tmp_path):
    with running([config(1, voter_addresses(1), tmp_path)]) as quorums:
        quorum = leader_of(quorums)
        epoch = claim(quorum)
        big = c.init_cluster("big", epoch, "x" * (COMMAND_BYTES_MAX + 1))
        with pytest.raises(CommandTooLargeError):
            quorum.propose(big).result(1)


def test_a_data_directory_is_used_by_one_voter_at_a_time(tmp_path):
    voters = voter_addresses(1)
    with running([config(1, voters, tmp_path)]):
        with pytest.raises(DataDirectoryError, match="in use"):
            MetadataQuorum(config(1, voter_addresses(1) | {1: voter_addresses(1)[1]}, tmp_path))


def test_a_listener_may_propose_and_read_status_without_deadlocking(tmp_path):
    """pysyncobj runs callbacks on its only thread: a blocking call there would stall the quorum."""
    with running([config(1, voter_addresses(1), tmp_path)]) as quorums:
        quorum = leader_of(quorums)
        epoch = claim(quorum)
        chained = []

        def on_apply(offset, data, result):
            if c.decode(data).request_id == "first":
                chained.append(quorum.status().applied_offset)
                chained.append(quorum.propose(c.noop("second", epoch)))

        quorum.add_listener(on_apply)
        quorum.propose(c.noop("first", epoch)).result(5)
        wait_until(lambda: len(chained) == 2, 5, "the listener")
        assert chained[1].result(5).error_code == common_pb2.NONE


def test_a_corrupt_snapshot_stops_the_start_with_a_clear_error_and_releases_the_directory(tmp_path):
    cfg = config(1, voter_addresses(1), tmp_path)
    with running([cfg]) as quorums:
        quorum = leader_of(quorums)
        claim(quorum)
        quorum.force_snapshot()
        wait_until(lambda: quorum.status().snapshot_raft_index > 0, 5, "a snapshot")
    snapshot_file = tmp_path / "voter-1" / "metadata.snapshot"
    data = bytearray(snapshot_file.read_bytes())
    data[-3] ^= 0xFF
    snapshot_file.write_bytes(bytes(data))
    with pytest.raises(SnapshotFormatError, match="checksum"):
        MetadataQuorum(cfg)
    # The voter refuses to start rather than run from a partial state. It released its data
    # directory: an operator can wipe it and let the voter rejoin from the leader's snapshot.
    shutil.rmtree(tmp_path / "voter-1")
    with running([cfg]) as quorums:
        assert leader_of(quorums).offset == 0
