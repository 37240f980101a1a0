"""PreVote's decisions (metadata/prevote.py) against a scripted Raft node: when a round starts,
when a voter grants, when the real election may go ahead. The three-voter behaviour is in
tests/integration/metadata/test_metadata_prevote_quorum.py."""

from __future__ import annotations

from freshet.metadata.prevote import PRE_VOTE, PRE_VOTE_RESPONSE, PreVote


class FakeRaft:
    def __init__(self) -> None:
        self.peers = ["b", "c"]
        self.term = 5
        self.last_log = (5, 40)
        self.is_leader = False
        self.deadline = 10.0
        self.transfer = False
        self.sent: list[tuple[str, dict]] = []

    def prevote_peers(self):
        return list(self.peers)

    def prevote_term(self):
        return self.term

    def prevote_last_log(self):
        return self.last_log

    def prevote_is_leader(self):
        return self.is_leader

    def prevote_election_due(self, now):
        return not self.is_leader and self.deadline < now

    def prevote_transfer_in_progress(self):
        return self.transfer

    def prevote_postpone_election(self, now):
        self.deadline = now + 0.3

    def prevote_elect_now(self):
        self.deadline = 0

    def prevote_send(self, peer, message):
        self.sent.append((peer, message))


def voter(now: list[float]) -> tuple[FakeRaft, PreVote]:
    raft = FakeRaft()
    return raft, PreVote(raft, min_election_timeout_s=0.25, clock=lambda: now[0])


def test_a_due_election_becomes_a_round_and_a_majority_of_yeses_lets_it_run():
    now = [11.0]
    raft, prevote = voter(now)
    prevote.before_tick()
    assert raft.deadline > now[0], "the real election was not postponed"
    assert raft.term == 5
    assert [(peer, m["type"], m["term"]) for peer, m in raft.sent] == [("b", PRE_VOTE, 6), ("c", PRE_VOTE, 6)]
    prevote.on_message("b", {"type": PRE_VOTE_RESPONSE, "term": 6, "granted": False})
    assert raft.deadline > now[0]
    prevote.on_message("c", {"type": PRE_VOTE_RESPONSE, "term": 6, "granted": True})
    assert raft.deadline == 0 and prevote.rounds_won == 1
    raft.sent.clear()
    prevote.before_tick()                         # this tick: pysyncobj's own election goes ahead
    assert raft.deadline == 0 and raft.sent == []


def test_a_yes_for_an_older_round_does_not_count():
    now = [11.0]
    raft, prevote = voter(now)
    prevote.before_tick()
    prevote.on_message("c", {"type": PRE_VOTE_RESPONSE, "term": 5, "granted": True})
    assert raft.deadline != 0 and prevote.rounds_won == 0


def test_a_voter_that_heard_the_leader_recently_or_leads_says_no():
    now = [11.0]
    raft, prevote = voter(now)
    ask = {"type": PRE_VOTE, "term": 6, "last_log_term": 5, "last_log_index": 40}
    prevote.on_message("a", {"type": "append_entries", "term": 5})
    prevote.on_message("b", ask)
    now[0] += 0.3                                 # past the minimum election timeout
    prevote.on_message("b", ask)
    raft.is_leader = True
    prevote.on_message("b", ask)
    assert [m["granted"] for _, m in raft.sent] == [False, True, False]


def test_a_voter_refuses_an_asker_with_an_older_log_or_term():
    now = [11.0]
    raft, prevote = voter(now)
    for last_log_term, last_log_index, term in [(4, 99, 6), (5, 39, 6), (5, 40, 4), (5, 40, 6), (6, 1, 6)]:
        prevote.on_message("b", {"type": PRE_VOTE, "term": term, "last_log_term": last_log_term, "last_log_index": last_log_index})
    assert [m["granted"] for _, m in raft.sent] == [False, False, False, True, True]


def test_a_leadership_transfer_and_a_single_voter_skip_the_round():
    now = [11.0]
    raft, prevote = voter(now)
    raft.transfer = True
    prevote.before_tick()
    raft.transfer, raft.peers = False, []
    prevote.before_tick()
    assert raft.sent == [] and raft.deadline == 10.0


def test_a_round_won_before_a_leader_was_heard_does_not_let_a_later_election_through():
    """A voter won a round but another voter became leader first (as at a cluster's start): the
    won round is spent. When this voter's election is due again, it must hold a new round, not
    go straight to a real election that would depose the leader (seen in the three-voter test:
    term 1 -> 2 during a one-way cut)."""
    now = [11.0]
    raft, prevote = voter(now)
    prevote.before_tick()
    prevote.on_message("c", {"type": PRE_VOTE_RESPONSE, "term": 6, "granted": True})
    assert prevote.rounds_won == 1
    prevote.on_message("b", {"type": "append_entries", "term": 6})     # b leads at term 6 first
    raft.term = 6
    raft.deadline = now[0] + 0.3                                       # pysyncobj heard its leader
    raft.sent.clear()
    now[0] += 1.0                                                      # the leader goes quiet
    prevote.before_tick()
    assert prevote.rounds_started == 2 and raft.deadline > now[0], "the due election went ahead without a round"
    assert [m["type"] for _, m in raft.sent] == [PRE_VOTE, PRE_VOTE]
