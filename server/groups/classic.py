"""A classic consumer group (Kafka's JoinGroup/SyncGroup protocol) as pure decisions.

Owns `ClassicGroup`: the members (id, static instance id, session and rebalance timeouts, the
protocols each supports with their opaque metadata, the assignment the leader gave it), the
generation, the leader, the selected protocol, and the rebalance barrier of Kafka's classic
GroupCoordinator:

- a JoinGroup from a new dynamic member on v4+ gets MEMBER_ID_REQUIRED with an id (KIP-394); the
  id is pending until the member joins with it (or its session timeout passes);
- a join that changes membership or metadata starts a rebalance (PreparingRebalance): every known
  member must rejoin (heartbeats answer REBALANCE_IN_PROGRESS) until the largest rebalance timeout
  of the members; members that did not rejoin by then are removed; then the generation is bumped,
  a protocol every member supports is selected (the members' preferences vote), a leader is kept or
  chosen, and every parked JoinGroup is answered — the leader's with all members' metadata;
- SyncGroup (CompletingRebalance) parks until the leader's SyncGroup brings the assignments, then
  every member gets its own (Stable); a leader that does not sync within the rebalance timeout
  starts a new rebalance without the members that did not sync;
- heartbeats and commits check member id and generation (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION);
- a member whose session ends without a heartbeat is removed, which starts a rebalance; LeaveGroup
  removes members at once;
- static membership (KIP-345): a JoinGroup without member id but with a known group.instance.id
  replaces the old member id; in a Stable group with unchanged protocols no rebalance happens (the
  member gets the current generation and SyncGroup gives it the old assignment). A request with an
  instance id that belongs to another member id is FENCED_INSTANCE_ID.

Parked requests are not futures here: every decision returns `Completions`, the answers of parked
JoinGroup/SyncGroup requests (by member id) that the decision released; the coordinator owns the
futures. No I/O, no clock (every method takes `now_ms`), no randomness (new member ids are passed
in).

Imports: standard library, freshet.v1 (error code numbers, which are Kafka's), freshet.server.errors.
Thread-safety: not thread-safe; the coordinator serialises access per group.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Mapping

from freshet.server.errors import IllegalGenerationError, NonEmptyGroupError, UnknownMemberError
from freshet.v1 import common_pb2

E = common_pb2.ErrorCode
NONE = 0
UNKNOWN_MEMBER_ID = E.UNKNOWN_MEMBER
ILLEGAL_GENERATION = E.ILLEGAL_GENERATION
INCONSISTENT_GROUP_PROTOCOL = E.INCONSISTENT_GROUP_PROTOCOL
REBALANCE_IN_PROGRESS = E.REBALANCE_IN_PROGRESS
FENCED_INSTANCE_ID = E.FENCED_INSTANCE_ID
GROUP_MAX_SIZE_REACHED = E.GROUP_MAX_SIZE_REACHED
NOT_COORDINATOR = E.NOT_COORDINATOR
MEMBER_ID_REQUIRED = 79                    # Kafka's MEMBER_ID_REQUIRED (KIP-394)

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"

Protocols = tuple[tuple[str, bytes], ...]


@dataclasses.dataclass
class ClassicMember:
    """One member of a classic group. Mutable; owned by its ClassicGroup."""

    member_id: str
    instance_id: str = ""
    client_id: str = ""
    client_host: str = ""
    session_timeout_ms: int = 45000
    rebalance_timeout_ms: int = 300000
    protocols: Protocols = ()
    assignment: bytes = b""
    is_awaiting_join: bool = False
    is_awaiting_sync: bool = False
    session_deadline_ms: int = 0

    def metadata(self, protocol: str) -> bytes:
        return dict(self.protocols).get(protocol, b"")


@dataclasses.dataclass(frozen=True)
class JoinResult:
    error: int
    member_id: str
    generation_id: int = -1
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str, bytes], ...] = ()
    """(member id, instance id, metadata) of every member: the leader's answer only."""
    skip_assignment: bool = False


@dataclasses.dataclass(frozen=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_name: str | None = None


@dataclasses.dataclass
class Completions:
    """Answers of parked requests released by a decision, by member id."""

    joins: dict[str, JoinResult] = dataclasses.field(default_factory=dict)
    syncs: dict[str, SyncResult] = dataclasses.field(default_factory=dict)

    def merge(self, other: Completions) -> Completions:
        self.joins.update(other.joins)
        self.syncs.update(other.syncs)
        return self


class ClassicGroup:
    """One classic group's state and decisions (module docstring). Not thread-safe."""

    kind = "classic"

    def __init__(self, group_id: str, protocol_type: str = "") -> None:
        self.group_id = group_id
        self.protocol_type = protocol_type
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id = ""
        self.state = EMPTY
        self.members: dict[str, ClassicMember] = {}
        self.pending: dict[str, int] = {}
        """Member ids handed out with MEMBER_ID_REQUIRED -> the deadline to join with them."""
        self.rebalance_deadline_ms: int | None = None
        self.offsets: dict = {}

    # ---- views shared with ConsumerGroup -----------------------------------------------------------

    @property
    def group_epoch(self) -> int:
        return self.generation_id

    def commit(self, tp, value) -> None:
        self.offsets[tp] = value

    def by_instance(self, instance_id: str) -> ClassicMember | None:
        for member in self.members.values():
            if instance_id and member.instance_id == instance_id:
                return member
        return None

    def check_invariants(self) -> None:
        if self.state == EMPTY:
            assert not self.members
        if self.state in (COMPLETING_REBALANCE, STABLE):
            assert self.leader_id in self.members

    # ---- JoinGroup -------------------------------------------------------------------------------

    def join(
        self,
        *,
        member_id: str,
        instance_id: str,
        protocol_type: str,
        protocols: Iterable[tuple[str, bytes]],
        new_member_id: str,
        now_ms: int,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        require_known_member_id: bool,
        client_id: str = "",
        client_host: str = "",
    ) -> tuple[JoinResult | None, Completions]:
        """A JoinGroup. Returns (its answer, or None when it is parked until the barrier, and the
        answers of parked requests it released — including its own when the barrier completed)."""
        protocols = tuple((name, bytes(metadata)) for name, metadata in protocols)
        done = Completions()
        if not protocols or (self.members and protocol_type != self.protocol_type):
            return JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id), done
        if self.members and not self._candidates({name for name, _ in protocols}):
            return JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id), done
        if not self.members:
            self.protocol_type = protocol_type

        def refresh(member: ClassicMember) -> None:
            member.session_timeout_ms = session_timeout_ms
            member.rebalance_timeout_ms = rebalance_timeout_ms
            member.client_id = client_id or member.client_id
            member.client_host = client_host or member.client_host
            member.session_deadline_ms = now_ms + session_timeout_ms

        if not member_id:
            if instance_id:
                old = self.by_instance(instance_id)
                if old is not None:
                    return self._replace_static(old, new_member_id, protocols, refresh, now_ms)
                member = ClassicMember(new_member_id, instance_id, protocols=protocols)
            elif require_known_member_id:
                self.pending[new_member_id] = now_ms + session_timeout_ms
                return JoinResult(MEMBER_ID_REQUIRED, new_member_id), done
            else:
                member = ClassicMember(new_member_id, protocols=protocols)
            refresh(member)
            self.members[member.member_id] = member
            return self._park(member, now_ms, done)

        if self._is_fenced(member_id, instance_id):
            return JoinResult(FENCED_INSTANCE_ID, member_id), done
        member = self.members.get(member_id)
        if member is None:
            if member_id not in self.pending:
                return JoinResult(UNKNOWN_MEMBER_ID, member_id), done
            del self.pending[member_id]
            member = ClassicMember(member_id, instance_id, protocols=protocols)
            refresh(member)
            self.members[member_id] = member
            return self._park(member, now_ms, done)
        if instance_id and member.instance_id and instance_id != member.instance_id:
            return JoinResult(FENCED_INSTANCE_ID, member_id), done
        refresh(member)
        is_same = protocols == member.protocols
        if self.state == COMPLETING_REBALANCE and is_same:
            return self._current(member), done
        if self.state == STABLE and is_same and member_id != self.leader_id:
            return self._current(member), done
        member.protocols = protocols
        # A join resent while one is parked replaces it (the caller answers the old request).
        return self._park(member, now_ms, done)

    def _replace_static(self, old: ClassicMember, new_member_id: str, protocols: Protocols, refresh, now_ms: int):
        """A restarted static member takes `old`'s place under a new member id."""
        done = Completions()
        del self.members[old.member_id]
        if old.is_awaiting_join:
            done.joins[old.member_id] = JoinResult(FENCED_INSTANCE_ID, old.member_id)
        if old.is_awaiting_sync:
            done.syncs[old.member_id] = SyncResult(FENCED_INSTANCE_ID)
        member = dataclasses.replace(
            old, member_id=new_member_id, is_awaiting_join=False, is_awaiting_sync=False
        )
        refresh(member)
        self.members[new_member_id] = member
        if self.leader_id == old.member_id:
            self.leader_id = new_member_id
        if self.state == STABLE and protocols == old.protocols:
            # KIP-345: no rebalance; it syncs to get its old assignment. A leader is told not to
            # assign again (KIP-814's skip_assignment; the assignments stay as they are anyway).
            return dataclasses.replace(self._current(member), skip_assignment=member.member_id == self.leader_id), done
        member.protocols = protocols
        result, more = self._park(member, now_ms, done)
        return result, more

    def _current(self, member: ClassicMember) -> JoinResult:
        """The current generation, for a member whose join changes nothing."""
        members = ()
        if member.member_id == self.leader_id:
            members = self._member_list()
        return JoinResult(NONE, member.member_id, self.generation_id, self.protocol_name, self.leader_id, members)

    def _park(self, member: ClassicMember, now_ms: int, done: Completions) -> tuple[JoinResult | None, Completions]:
        member.is_awaiting_join = True
        if self.state != PREPARING_REBALANCE:
            done.merge(self._prepare_rebalance(now_ms))
        done.merge(self._maybe_complete_join(now_ms))
        return done.joins.pop(member.member_id, None), done

    # ---- the barrier ------------------------------------------------------------------------------

    def _prepare_rebalance(self, now_ms: int) -> Completions:
        done = Completions()
        for member in self.members.values():
            if member.is_awaiting_sync:
                done.syncs[member.member_id] = SyncResult(REBALANCE_IN_PROGRESS)
                member.is_awaiting_sync = False
        self.state = PREPARING_REBALANCE
        timeouts = [m.rebalance_timeout_ms for m in self.members.values()]
        self.rebalance_deadline_ms = now_ms + (max(timeouts) if timeouts else 0)
        return done

    def _maybe_complete_join(self, now_ms: int, *, is_deadline: bool = False) -> Completions:
        if self.state != PREPARING_REBALANCE:
            return Completions()
        is_all_joined = not self.pending and all(m.is_awaiting_join for m in self.members.values())
        if not is_all_joined and not is_deadline:
            return Completions()
        done = Completions()
        for member in [m for m in self.members.values() if not m.is_awaiting_join]:
            self._remove(member.member_id, done)
        self.pending.clear()
        self.generation_id += 1
        self.rebalance_deadline_ms = None
        if not self.members:
            self.state = EMPTY
            self.protocol_name = None
            self.leader_id = ""
            return done
        self.protocol_name = self._select_protocol()
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        self.state = COMPLETING_REBALANCE
        self.rebalance_deadline_ms = now_ms + max(m.rebalance_timeout_ms for m in self.members.values())
        for member in self.members.values():
            member.is_awaiting_join = False
            member.session_deadline_ms = now_ms + member.session_timeout_ms
            done.joins[member.member_id] = self._current(member)
        return done

    def _candidates(self, extra: set[str] | None = None) -> list[str]:
        """Protocols every member (and `extra`) supports, in the first member's preference order."""
        sets = [{name for name, _ in m.protocols} for m in self.members.values()]
        if extra is not None:
            sets.append(extra)
        if not sets:
            return []
        common = set.intersection(*sets)
        first = next(iter(self.members.values())).protocols if self.members else ()
        return [name for name, _ in first if name in common] or sorted(common)

    def _select_protocol(self) -> str:
        """Kafka's vote: each member votes for the first protocol it lists among the candidates."""
        candidates = self._candidates()
        votes = {name: 0 for name in candidates}
        for member in self.members.values():
            choice = next(name for name, _ in member.protocols if name in votes)
            votes[choice] += 1
        return max(candidates, key=lambda name: (votes[name], -candidates.index(name)))

    def _member_list(self) -> tuple[tuple[str, str, bytes], ...]:
        assert self.protocol_name is not None
        return tuple((m.member_id, m.instance_id, m.metadata(self.protocol_name)) for m in self.members.values())

    def _remove(self, member_id: str, done: Completions) -> None:
        member = self.members.pop(member_id)
        if member.is_awaiting_join:
            done.joins[member_id] = JoinResult(UNKNOWN_MEMBER_ID, member_id)
        if member.is_awaiting_sync:
            done.syncs[member_id] = SyncResult(UNKNOWN_MEMBER_ID)

    # ---- SyncGroup, Heartbeat ---------------------------------------------------------------------

    def _is_fenced(self, member_id: str, instance_id: str) -> bool:
        """A static instance id now held by another member id (a newer process took its place)."""
        holder = self.by_instance(instance_id) if instance_id else None
        return holder is not None and holder.member_id != member_id

    def _check(self, member_id: str, generation_id: int, instance_id: str) -> tuple[int, ClassicMember | None]:
        if self._is_fenced(member_id, instance_id):
            return FENCED_INSTANCE_ID, None
        member = self.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID, None
        if generation_id != self.generation_id:
            return ILLEGAL_GENERATION, None
        return NONE, member

    def sync(
        self, *, member_id: str, generation_id: int, instance_id: str, assignments: Mapping[str, bytes], now_ms: int
    ) -> tuple[SyncResult | None, Completions]:
        """A SyncGroup; `assignments` (member id -> bytes) counts only from the leader."""
        done = Completions()
        error, member = self._check(member_id, generation_id, instance_id)
        if member is None:
            return SyncResult(error), done
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if self.state == PREPARING_REBALANCE:
            return SyncResult(REBALANCE_IN_PROGRESS), done
        if self.state == STABLE:
            return SyncResult(NONE, member.assignment, self.protocol_name), done
        member.is_awaiting_sync = True
        if member_id == self.leader_id:
            for other in self.members.values():
                other.assignment = bytes(assignments.get(other.member_id, b""))
            self.state = STABLE
            self.rebalance_deadline_ms = None
            for other in self.members.values():
                if other.is_awaiting_sync:
                    other.is_awaiting_sync = False
                    done.syncs[other.member_id] = SyncResult(NONE, other.assignment, self.protocol_name)
        return done.syncs.pop(member_id, None), done

    def heartbeat(self, *, member_id: str, generation_id: int, instance_id: str, now_ms: int) -> int:
        """A Heartbeat: its error code."""
        error, member = self._check(member_id, generation_id, instance_id)
        if member is None:
            return error
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if self.state == PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return NONE

    def validate_commit(self, member_id: str, generation_id: int, partitions) -> dict:
        """An offset commit's checks (the shape ConsumerGroup.validate_commit has).

        Raises:
            UnknownMemberError, IllegalGenerationError, NonEmptyGroupError.
        """
        if not member_id and generation_id < 0:
            if self.members:
                raise NonEmptyGroupError(f"group {self.group_id!r} has {len(self.members)} active member(s)")
            return {}
        error, _ = self._check(member_id, generation_id, "")
        if error == UNKNOWN_MEMBER_ID:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r}")
        if error != NONE:
            raise IllegalGenerationError(
                f"generation {generation_id} of group {self.group_id!r} is not the current {self.generation_id}"
            )
        return {}

    # ---- LeaveGroup and expiry --------------------------------------------------------------------

    def leave(self, members: Iterable[tuple[str, str]], now_ms: int) -> tuple[list[int], Completions]:
        """LeaveGroup of (member id, instance id) pairs (an empty member id: by instance id).
        Returns an error code per pair and the released answers."""
        done = Completions()
        errors = []
        removed = False
        for member_id, instance_id in members:
            if not member_id and instance_id:
                found = self.by_instance(instance_id)
                member_id = found.member_id if found is not None else ""
            if member_id in self.pending:
                del self.pending[member_id]
                errors.append(NONE)
                removed = True
                continue
            member = self.members.get(member_id)
            if member is None:
                errors.append(UNKNOWN_MEMBER_ID)
                continue
            if instance_id and member.instance_id != instance_id:
                errors.append(FENCED_INSTANCE_ID)
                continue
            self._remove(member_id, done)
            errors.append(NONE)
            removed = True
        if removed:
            done.merge(self._rebalance_after_removal(now_ms))
        return errors, done

    def _rebalance_after_removal(self, now_ms: int) -> Completions:
        done = Completions()
        if self.state != PREPARING_REBALANCE:
            done.merge(self._prepare_rebalance(now_ms))
        done.merge(self._maybe_complete_join(now_ms))
        return done

    def tick(self, now_ms: int) -> tuple[list[str], Completions]:
        """Remove members whose session ended (not those with a parked request), pending ids past
        their deadline; complete a barrier whose rebalance timeout passed; restart a rebalance
        whose leader did not sync in time. Returns (removed member ids, released answers)."""
        done = Completions()
        expired = sorted(
            m.member_id for m in self.members.values()
            if m.session_deadline_ms <= now_ms and not m.is_awaiting_join and not m.is_awaiting_sync
        )
        for member_id in expired:
            self._remove(member_id, done)
        stale = [member_id for member_id, deadline in self.pending.items() if deadline <= now_ms]
        for member_id in stale:
            del self.pending[member_id]
        is_late = self.rebalance_deadline_ms is not None and self.rebalance_deadline_ms <= now_ms
        if self.state == COMPLETING_REBALANCE and is_late:
            for member in [m for m in self.members.values() if not m.is_awaiting_sync]:
                expired.append(member.member_id)
                self._remove(member.member_id, done)
            done.merge(self._prepare_rebalance(now_ms))
            done.merge(self._maybe_complete_join(now_ms))
        elif expired or stale:
            done.merge(self._rebalance_after_removal(now_ms))
        elif self.state == PREPARING_REBALANCE and is_late:
            done.merge(self._maybe_complete_join(now_ms, is_deadline=True))
        return expired, done

    def next_deadline_ms(self) -> int | None:
        deadlines = [m.session_deadline_ms for m in self.members.values()]
        deadlines += list(self.pending.values())
        if self.rebalance_deadline_ms is not None:
            deadlines.append(self.rebalance_deadline_ms)
        return min(deadlines) if deadlines else None

    def fail_parked(self, error: int) -> Completions:
        """Answer every parked request with `error` (the coordinator is moving away)."""
        done = Completions()
        for member in self.members.values():
            if member.is_awaiting_join:
                done.joins[member.member_id] = JoinResult(error, member.member_id)
            if member.is_awaiting_sync:
                done.syncs[member.member_id] = SyncResult(error)
        return done


def consumer_topics(metadata: bytes) -> list[str]:
    """The topics of a ConsumerProtocolSubscription (any version); [] if it does not parse."""
    try:
        offset = 2
        (count,) = struct.unpack_from(">i", metadata, offset)
        offset += 4
        topics = []
        for _ in range(max(count, 0)):
            (size,) = struct.unpack_from(">h", metadata, offset)
            offset += 2
            topics.append(metadata[offset:offset + size].decode())
            offset += size
        return topics
    except (struct.error, UnicodeDecodeError):
        return []


def consumer_assignment(assignment: bytes) -> list[tuple[str, int]]:
    """The partitions of a ConsumerProtocolAssignment (any version); [] if it does not parse."""
    try:
        offset = 2
        (count,) = struct.unpack_from(">i", assignment, offset)
        offset += 4
        found = []
        for _ in range(max(count, 0)):
            (size,) = struct.unpack_from(">h", assignment, offset)
            offset += 2
            topic = assignment[offset:offset + size].decode()
            offset += size
            (partitions,) = struct.unpack_from(">i", assignment, offset)
            offset += 4
            for _ in range(max(partitions, 0)):
                (partition,) = struct.unpack_from(">i", assignment, offset)
                offset += 4
                found.append((topic, partition))
        return sorted(found)
    except (struct.error, UnicodeDecodeError):
        return []
