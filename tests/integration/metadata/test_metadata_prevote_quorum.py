"""PreVote (metadata/prevote.py): a voter that cannot hear the leader does not depose it (issue 16).

Method: three in-process voters on loopback; one follower drops every message from the leader
(a one-way cut: the leader still hears it). Without PreVote that follower starts an election at
every election timeout with a higher term, and the leader steps down on seeing it; with PreVote
its rounds are refused, the leader and its term stay, and after the heal the follower catches up
at the same term. Waits are bounded polls.
"""

from __future__ import annotations

import time

from tests.support.quorum_fixtures import claim, config, leader_of, running, voter_addresses
from tests.support.waiting import wait_until

CUT_S = 3.0


def test_a_voter_that_cannot_hear_the_leader_does_not_depose_it(tmp_path):
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path) for n in voters]) as quorums:
        leader = leader_of(quorums)
        claim(leader)
        term = leader.term
        deaf = next(quorum for quorum in quorums.values() if quorum is not leader)
        prevote = deaf._node.prevote
        # Rounds of the first election (before the cut) do not count.
        started_before, won_before = prevote.rounds_started, prevote.rounds_won
        sees = prevote.on_message                      # every received message passes here first
        leader_address = voters[leader.node_id]
        # True: consumed, so neither PreVote nor pysyncobj sees what the leader sends.
        prevote.on_message = lambda node, message: True if node.address == leader_address else sees(node, message)
        try:
            deadline = time.monotonic() + CUT_S
            while time.monotonic() < deadline:
                assert leader.is_leader and leader.term == term, (
                    f"the leader was deposed: term {term} -> {leader.term}, leading: {leader.is_leader}"
                )
                time.sleep(0.02)
            started, won = prevote.rounds_started - started_before, prevote.rounds_won - won_before
            assert started >= 2 and won == 0, (started, won)
            refused = sum(q._node.prevote.votes_refused for q in quorums.values() if q is not deaf)
            assert refused >= 2
        finally:
            del prevote.on_message                              # the heal
        wait_until(lambda: deaf.term == term and deaf.status().leader_id == leader.node_id, 15, "the deaf voter back behind the leader")
        assert claim(leader) == term


def test_elections_still_happen_when_the_leader_is_gone(tmp_path):
    """A round is granted by voters that hear no leader: closing the leader elects another."""
    voters = voter_addresses(3)
    with running([config(n, voters, tmp_path) for n in voters]) as quorums:
        leader = leader_of(quorums)
        term = leader.term
        leader.close()
        survivors = {n: q for n, q in quorums.items() if q is not leader}
        successor = leader_of(survivors, timeout_s=15)
        assert successor.term > term
        assert successor._node.prevote.rounds_won >= 1
        claim(successor)
