"""The classic (JoinGroup/SyncGroup) group state machine, with a manual clock."""

from __future__ import annotations

import itertools

import pytest
from freshet.server.errors import IllegalGenerationError, UnknownMemberError
from freshet.server.groups import classic
from freshet.server.groups.classic import ClassicGroup
from freshet.v1 import common_pb2

RANGE = (("range", b"r-meta"),)


class Harness:
    def __init__(self) -> None:
        self.group = ClassicGroup("g")
        self.now = 0
        self.ids = (f"m{i}" for i in itertools.count(1))
        self.joins: dict[str, classic.JoinResult] = {}
        self.syncs: dict[str, classic.SyncResult] = {}

    def absorb(self, done: classic.Completions) -> None:
        self.joins.update(done.joins)
        self.syncs.update(done.syncs)

    def join(self, member_id="", instance_id="", protocols=RANGE, session=10000, rebalance=30000, v4=True):
        result, done = self.group.join(
            member_id=member_id, instance_id=instance_id, protocol_type="consumer", protocols=protocols,
            new_member_id=next(self.ids), now_ms=self.now, session_timeout_ms=session,
            rebalance_timeout_ms=rebalance, require_known_member_id=v4,
        )
        self.absorb(done)
        return result

    def join_new(self, **kw) -> tuple[str, classic.JoinResult | None]:
        first = self.join(**kw)
        assert first.error == classic.MEMBER_ID_REQUIRED
        return first.member_id, self.join(member_id=first.member_id, **kw)

    def sync(self, member_id, generation, assignments=None, instance_id=""):
        result, done = self.group.sync(
            member_id=member_id, generation_id=generation, instance_id=instance_id,
            assignments=assignments or {}, now_ms=self.now,
        )
        self.absorb(done)
        return result

    def tick(self, to_ms):
        self.now = to_ms
        expired, done = self.group.tick(self.now)
        self.absorb(done)
        return expired


def test_error_codes_are_kafkas():
    assert classic.UNKNOWN_MEMBER_ID == 25 == common_pb2.ErrorCode.UNKNOWN_MEMBER
    assert (classic.ILLEGAL_GENERATION, classic.INCONSISTENT_GROUP_PROTOCOL, classic.REBALANCE_IN_PROGRESS) == (22, 23, 27)
    assert (classic.FENCED_INSTANCE_ID, classic.MEMBER_ID_REQUIRED) == (82, 79)


def test_first_member_needs_an_id_then_leads_generation_one():
    h = Harness()
    first = h.join()
    assert first.error == classic.MEMBER_ID_REQUIRED and first.member_id == "m1"
    assert h.group.members == {}
    result = h.join(member_id="m1")
    assert result.error == 0 and result.generation_id == 1 and result.leader == "m1"
    assert result.protocol_name == "range" and result.members == (("m1", "", b"r-meta"),)
    assert h.group.state == classic.COMPLETING_REBALANCE
    assert h.sync("m1", 1, {"m1": b"A1"}) == classic.SyncResult(0, b"A1", "range")
    assert h.group.state == classic.STABLE


def test_unknown_member_id_without_pending_is_refused():
    h = Harness()
    assert h.join(member_id="nobody").error == classic.UNKNOWN_MEMBER_ID


def test_v3_join_gets_an_id_at_once():
    h = Harness()
    result = h.join(v4=False)
    assert result.error == 0 and result.member_id == "m1" and result.generation_id == 1


def stable_pair(h: Harness) -> tuple[str, str]:
    a, _ = h.join_new()
    h.sync(a, 1, {a: b"all"})
    b, parked = h.join_new()
    assert parked is None                                         # waits for a to rejoin
    assert h.group.state == classic.PREPARING_REBALANCE
    assert h.group.heartbeat(member_id=a, generation_id=1, instance_id="", now_ms=h.now) == classic.REBALANCE_IN_PROGRESS
    assert h.sync(a, 1).error == classic.REBALANCE_IN_PROGRESS
    again = h.join(member_id=a)
    assert again.error == 0 and again.generation_id == 2 and again.leader == a
    assert {m for m, _, _ in again.members} == {a, b}            # the leader learns every member
    assert h.joins[b].generation_id == 2 and h.joins[b].members == () and h.joins[b].leader == a
    assert h.sync(b, 2) is None                                   # parked until the leader syncs
    assert h.sync(a, 2, {a: b"A", b: b"B"}).assignment == b"A"
    assert h.syncs[b] == classic.SyncResult(0, b"B", "range")
    assert h.group.state == classic.STABLE
    return a, b


def test_join_barrier_leader_and_sync():
    stable_pair(Harness())


def test_heartbeat_errors():
    h = Harness()
    a, b = stable_pair(h)
    hb = h.group.heartbeat
    assert hb(member_id=a, generation_id=2, instance_id="", now_ms=h.now) == 0
    assert hb(member_id=a, generation_id=1, instance_id="", now_ms=h.now) == classic.ILLEGAL_GENERATION
    assert hb(member_id="x", generation_id=2, instance_id="", now_ms=h.now) == classic.UNKNOWN_MEMBER_ID
    assert h.sync(b, 1).error == classic.ILLEGAL_GENERATION
    assert h.sync(b, 2).assignment == b"B"                         # stable: its assignment again


def test_rebalance_timeout_drops_members_that_did_not_rejoin():
    h = Harness()
    a, b = stable_pair(h)
    c, parked = h.join_new(rebalance=5000)
    assert parked is None
    h.join(member_id=a)                                          # a rejoins, b only heartbeats
    start = h.now
    for at in range(start + 5000, start + 30000, 5000):
        h.tick(at)
        assert h.group.heartbeat(member_id=b, generation_id=2, instance_id="", now_ms=at) == classic.REBALANCE_IN_PROGRESS
    h.tick(start + 29999)
    assert c not in h.joins
    h.tick(start + 30000)                                         # max rebalance timeout (30 s) passed
    assert h.joins[c].generation_id == 3 and h.joins[a].generation_id == 3
    assert set(h.group.members) == {a, c}


def test_session_expiry_removes_the_member_and_rebalances():
    h = Harness()
    a, b = stable_pair(h)
    h.now += 6000
    assert h.group.heartbeat(member_id=a, generation_id=2, instance_id="", now_ms=h.now) == 0
    assert h.tick(9999) == []
    assert h.tick(10000) == [b]                                   # b's 10 s session ended
    assert h.group.state == classic.PREPARING_REBALANCE
    assert h.group.heartbeat(member_id=a, generation_id=2, instance_id="", now_ms=h.now) == classic.REBALANCE_IN_PROGRESS
    result = h.join(member_id=a)
    assert result.generation_id == 3 and result.leader == a and len(result.members) == 1


def test_leader_leaving_hands_leadership_over():
    h = Harness()
    a, b = stable_pair(h)
    errors, _ = h.group.leave([(a, ""), ("ghost", "")], h.now)
    assert errors == [0, classic.UNKNOWN_MEMBER_ID]
    result = h.join(member_id=b)
    assert result.leader == b and result.generation_id == 3


def test_last_member_leaving_empties_the_group():
    h = Harness()
    a, _ = h.join_new()
    h.group.leave([(a, "")], h.now)
    assert h.group.state == classic.EMPTY and h.group.generation_id == 2 and not h.group.members


def test_static_member_restart_takes_its_place_without_rebalance():
    h = Harness()
    first = h.join(instance_id="i1")                             # static: no MEMBER_ID_REQUIRED
    assert first.error == 0 and first.generation_id == 1
    h.sync(first.member_id, 1, {first.member_id: b"S"})
    b, _ = h.join_new()
    h.join(member_id=first.member_id, instance_id="i1")
    h.sync(first.member_id, 2, {first.member_id: b"S", b: b"B"})
    h.sync(b, 2)
    assert h.group.state == classic.STABLE
    restarted = h.join(instance_id="i1")                         # new process, same instance id
    assert restarted.error == 0 and restarted.generation_id == 2 and restarted.member_id != first.member_id
    assert h.group.state == classic.STABLE                        # no rebalance
    assert h.sync(restarted.member_id, 2, instance_id="i1").assignment == b"S"
    # The old process is fenced.
    assert h.group.heartbeat(member_id=first.member_id, generation_id=2, instance_id="i1", now_ms=h.now) == (
        classic.FENCED_INSTANCE_ID)
    assert h.sync(first.member_id, 2, instance_id="i1").error == classic.FENCED_INSTANCE_ID
    assert h.join(member_id=first.member_id, instance_id="i1").error == classic.FENCED_INSTANCE_ID
    assert h.join(member_id=b, instance_id="i1").error == classic.FENCED_INSTANCE_ID


def test_inconsistent_protocols_are_refused():
    h = Harness()
    a, _ = h.join_new()
    assert h.join(protocols=(("roundrobin", b""),)).error == classic.INCONSISTENT_GROUP_PROTOCOL
    result, _ = h.group.join(
        member_id="", instance_id="", protocol_type="connect", protocols=RANGE, new_member_id="z",
        now_ms=0, session_timeout_ms=10000, rebalance_timeout_ms=10000, require_known_member_id=True,
    )
    assert result.error == classic.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_selection_picks_one_every_member_supports():
    h = Harness()
    both = (("cooperative-sticky", b"c"), ("range", b"r"))
    a, _ = h.join_new(protocols=both)
    h.sync(a, 1, {})
    b, _ = h.join_new(protocols=(("range", b"r2"),))
    result = h.join(member_id=a, protocols=both)
    assert result.protocol_name == "range" and dict((m, md) for m, _, md in result.members) == {a: b"r", b: b"r2"}


def test_leader_not_syncing_restarts_the_rebalance():
    h = Harness()
    a, b = stable_pair(h)
    h.join(member_id=a)
    h.join(member_id=b)                                           # generation 3, leader a
    assert h.sync(b, 3) is None
    h.tick(h.now + 30000)                                         # a never syncs
    assert set(h.group.members) == {b}
    assert h.syncs[b].error == classic.REBALANCE_IN_PROGRESS
    assert h.join(member_id=b).generation_id == 4


def test_commit_checks_member_and_generation():
    h = Harness()
    a, b = stable_pair(h)
    assert h.group.validate_commit(a, 2, []) == {}
    with pytest.raises(UnknownMemberError):
        h.group.validate_commit("x", 2, [])
    with pytest.raises(IllegalGenerationError):
        h.group.validate_commit(a, 1, [])


def test_consumer_protocol_decoding():
    import struct

    sub = struct.pack(">hih", 0, 1, 1) + b"t" + struct.pack(">i", -1)
    assert classic.consumer_topics(sub) == ["t"]
    assignment = struct.pack(">hih", 0, 1, 1) + b"t" + struct.pack(">iii", 2, 0, 3) + struct.pack(">i", -1)
    assert classic.consumer_assignment(assignment) == [("t", 0), ("t", 3)]
    assert classic.consumer_assignment(b"x") == []


def test_static_leader_restart_skips_assignment():
    h = Harness()
    first = h.join(instance_id="i1")
    h.sync(first.member_id, 1, {first.member_id: b"S"})
    again = h.join(instance_id="i1")
    assert again.leader == again.member_id and again.skip_assignment and again.generation_id == 1
    assert h.group.state == classic.STABLE
    assert h.sync(again.member_id, 1, {again.member_id: b"other"}, instance_id="i1").assignment == b"S"
