"""PreVote for the metadata quorum (Raft thesis §9.6; Kafka's KIP-996): an election only when it can win.

Owns one voter's pre-vote rounds. Without them, a voter that stops hearing the leader while the
leader still hears it (a one-way cut, or a link that drops one direction) starts an election at
every election timeout: its RequestVote carries a higher term, the leader steps down on seeing it,
and the whole cluster loses its controller, again and again, although a majority never lost the
leader (issue 16 counted 38-47 controller activations in a 40-fault run). With PreVote a voter
whose election timeout passed first asks the others whether they would vote for it at its next
term, without changing any term. A voter says yes only when it has not heard from a leader for the
minimum election timeout itself (and is not the leader) and the asker's log is at least as up to
date as its own; only with a majority of yeses does the asker start the real election. A voter
that merely cannot hear the leader gets no, and the leader stays.

A leadership transfer (TimeoutNow) skips the round: the leader asked for that election.

The protocol rides on pysyncobj's message channel as two message types pysyncobj itself ignores
(a voter of an older version never answers, so with one such voter in three, the other two still
reach a majority). `RaftState` is what this module reads and changes of the Raft node; quorum.py
implements it over pysyncobj's internals, so this module imports nothing of pysyncobj.

Thread-safety: not thread-safe; the quorum thread calls everything (before each tick, and for each
message received).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

PRE_VOTE = "freshet_pre_vote"
PRE_VOTE_RESPONSE = "freshet_pre_vote_response"


class RaftState(Protocol):
    """The Raft node as PreVote sees it (quorum.py's _RaftNode implements it over pysyncobj)."""

    def prevote_peers(self) -> list[Hashable]: ...

    def prevote_term(self) -> int: ...

    def prevote_last_log(self) -> tuple[int, int]:
        """(term of the last log entry, index of the last log entry)."""

    def prevote_is_leader(self) -> bool: ...

    def prevote_election_due(self, now: float) -> bool:
        """A follower or candidate whose election timeout has passed."""

    def prevote_transfer_in_progress(self) -> bool: ...

    def prevote_postpone_election(self, now: float) -> None:
        """Draw a new election timeout from now (the round runs meanwhile)."""

    def prevote_elect_now(self) -> None:
        """Let the next tick start the real election."""

    def prevote_send(self, peer: Hashable, message: dict) -> None: ...


class PreVote:
    """One voter's pre-vote rounds (see the module docstring). Not thread-safe (quorum thread)."""

    def __init__(self, raft: RaftState, min_election_timeout_s: float, clock: Callable[[], float]) -> None:
        self._raft = raft
        self._min_timeout_s = min_election_timeout_s
        self._clock = clock
        self._leader_heard_at = float("-inf")
        self._round_term: int | None = None
        self._granted: set[Hashable] = set()
        self._won = False
        self.rounds_started = 0
        self.rounds_won = 0
        self.votes_refused = 0

    def before_tick(self) -> None:
        """Run before each pysyncobj tick: where pysyncobj would start an election, start a
        pre-vote round instead (and postpone the election), unless a round was just won."""
        raft = self._raft
        now = self._clock()
        peers = raft.prevote_peers()
        if not peers or raft.prevote_is_leader() or raft.prevote_transfer_in_progress():
            self._won = False
            return
        if not raft.prevote_election_due(now):
            return
        if self._won:                       # this tick's election is the one the round won
            self._won = False
            self._round_term = None
            return
        last_term, last_index = raft.prevote_last_log()
        self._round_term = raft.prevote_term() + 1
        self._granted = set()
        self.rounds_started += 1
        raft.prevote_postpone_election(now)
        message = {"type": PRE_VOTE, "term": self._round_term, "last_log_term": last_term, "last_log_index": last_index}
        for peer in peers:
            raft.prevote_send(peer, message)

    def on_message(self, peer: Hashable, message: dict) -> bool:
        """See every message before pysyncobj; True when it was a pre-vote message (consumed)."""
        kind = message.get("type")
        if kind == "append_entries":
            if message.get("term", -1) >= self._raft.prevote_term():
                self._leader_heard_at = self._clock()
                self._round_term = None             # a leader is there: no election to prepare
                self._won = False                   # nor one to let through: a later one needs its own round
            return False
        if kind == PRE_VOTE:
            granted = self._would_vote(message)
            self.votes_refused += not granted
            self._raft.prevote_send(peer, {"type": PRE_VOTE_RESPONSE, "term": message.get("term"), "granted": granted})
            return True
        if kind == PRE_VOTE_RESPONSE:
            if message.get("granted") and self._round_term is not None and message.get("term") == self._round_term:
                self._granted.add(peer)
                voters = len(self._raft.prevote_peers()) + 1
                if 1 + len(self._granted) > voters / 2 and not self._won:
                    self._won = True
                    self.rounds_won += 1
                    self._raft.prevote_elect_now()
            return True
        return False

    def _would_vote(self, message: dict) -> bool:
        """Whether this voter would grant the asker a vote at the asked term now."""
        raft = self._raft
        if raft.prevote_is_leader():
            return False
        if self._clock() - self._leader_heard_at < self._min_timeout_s:
            return False                            # the leader is alive as far as this voter knows
        term = message.get("term")
        if not isinstance(term, int) or term < raft.prevote_term():
            return False
        last_term, last_index = raft.prevote_last_log()
        asked = (message.get("last_log_term", -1), message.get("last_log_index", -1))
        return asked >= (last_term, last_index)
