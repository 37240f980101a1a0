"""A consumer group's state and the reconciliation rules of KIP-848, as pure decisions.

Owns `ConsumerGroup`: members (id, static instance id, member epoch, subscription, the partitions
the coordinator lets it own), the group epoch, the target assignment and committed offsets, and the
decisions on each heartbeat, leave, session expiry and offset commit. No I/O, no clock (every
method takes `now_ms`), no randomness (the caller passes new member ids in): the runtime
(`group_coordinator.py`) persists what a decision returns and answers the client.

Vocabulary (KIP-848):
- group epoch: bumped whenever membership or a subscription changes; the target assignment is
  recomputed for it (so `assignment_epoch == group_epoch` after every change);
- target assignment: what the assignor wants each member to own;
- a member's *assigned* partitions: what the coordinator allows it to own now. Invariant: the
  assigned sets of all members are disjoint, so no partition ever has two owners;
- pending revocation: assigned partitions no longer in the member's target. They stay assigned
  (no one else gets them) until the member's heartbeat reports it no longer owns them;
- member epoch: bumped (to the group epoch) whenever the coordinator sends a member a new
  assignment. A heartbeat must carry the member's epoch or the one before it (its last response may
  have been lost); anything else is FENCED_MEMBER_EPOCH and the member rejoins.

Reconciliation of one member on a heartbeat that reports `owned`:
1. partitions pending revocation that it no longer owns are released;
2. its assignment becomes (assigned ∩ target) ∪ (target partitions no other member holds);
3. the response lists exactly the partitions it should own: assigned ∩ target. Partitions it owns
   that are not listed are to be revoked; partitions listed that it does not own are new.
So a member that keeps its partitions is never asked to stop consuming them.

Static membership (`instance_id`, Kafka's group.instance.id): a member leaving with epoch -2 keeps
its assignment until its session times out; a member joining with the same instance id takes over
the old member's assignment (the old member id is removed: Kafka's classic protocol fences the old
instance the same way). A second live process with the same instance id thus replaces the first.

Imports: standard library, `freshet.server.errors` (the group errors) and `freshet.server.groups.assignors`.
Thread-safety: not thread-safe; the coordinator serialises access per group.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from freshet.server.errors import (
    FencedMemberEpochError,
    InvalidGroupRequestError,
    NonEmptyGroupError,
    StaleMemberEpochError,
    UnknownMemberError,
)
from freshet.server.groups import assignors as group_assignors

TopicPartition = tuple[str, int]

JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

EMPTY = "empty"
ASSIGNING = "assigning"
RECONCILING = "reconciling"
STABLE = "stable"


@dataclasses.dataclass
class Member:
    """One member. Mutable; owned by its ConsumerGroup."""

    member_id: str
    instance_id: str = ""
    member_epoch: int = 0
    previous_member_epoch: int = -1
    client_id: str = ""
    client_host: str = ""
    rack_id: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str = ""
    rebalance_timeout_ms: int = 300000
    session_timeout_ms: int = 45000
    assigned: frozenset[TopicPartition] = frozenset()
    """What the coordinator allows it to own, including partitions pending revocation."""
    session_deadline_ms: int = 0
    revocation_deadline_ms: int | None = None
    """When partitions it must revoke are pending: the time by which it must have revoked them
    (its rebalance timeout), else it is removed (KIP-848's rebalance timeout)."""
    last_sent: frozenset[TopicPartition] | None = None
    """The assignment last sent to the member (None: nothing sent yet)."""
    has_left_static: bool = False
    """A static member that left with epoch -2: kept (with its assignment) until its session ends."""

    def subscribed(self, topics: Iterable[str]) -> set[str]:
        """The topics of `topics` this member subscribes to."""
        if self.subscribed_topic_regex:
            pattern = re.compile(self.subscribed_topic_regex)
            return {topic for topic in topics if pattern.fullmatch(topic) and not topic.startswith("__")}
        return set(self.subscribed_topic_names)


@dataclasses.dataclass(frozen=True)
class HeartbeatResult:
    """The answer to a heartbeat: what to send back, and whether the group must be persisted."""

    member_id: str
    member_epoch: int
    assignment: frozenset[TopicPartition] | None
    """The partitions the member should own now; None when it has nothing new to learn."""
    is_changed: bool
    """The group's persisted state changed (members, epochs, assignments): write a group record."""


@dataclasses.dataclass(frozen=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = 0


def _check_options(assignor: str, subscribed_topic_regex: str | None) -> None:
    """Raises InvalidGroupRequestError for an unknown assignor or a regex that does not compile."""
    if assignor and assignor not in group_assignors.ASSIGNORS:
        raise InvalidGroupRequestError(
            f"unknown assignor {assignor!r}; the coordinator has {', '.join(group_assignors.ASSIGNORS)}"
        )
    if subscribed_topic_regex:
        try:
            re.compile(subscribed_topic_regex)
        except re.error as error:
            raise InvalidGroupRequestError(f"subscribed topic regex {subscribed_topic_regex!r}: {error}") from None


class ConsumerGroup:
    """One group's state and decisions (see the module docstring). Not thread-safe."""

    def __init__(self, group_id: str, assignor: str = group_assignors.UNIFORM) -> None:
        self.group_id = group_id
        self.assignor = assignor
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, Member] = {}
        self.target: dict[str, frozenset[TopicPartition]] = {}
        self.offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        self._topics_seen: dict[str, int] = {}

    # ---- views -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if not self.members:
            return EMPTY
        if self.assignment_epoch != self.group_epoch:
            return ASSIGNING
        for member in self.members.values():
            if member.assigned != self.target.get(member.member_id, frozenset()):
                return RECONCILING
        return STABLE

    def active_member_count(self) -> int:
        return len(self.members)

    def owner_of(self, tp: TopicPartition) -> str | None:
        for member in self.members.values():
            if tp in member.assigned:
                return member.member_id
        return None

    def check_invariants(self) -> None:
        """Assert that no partition has two owners."""
        seen: set[TopicPartition] = set()
        for member in self.members.values():
            assert not (member.assigned & seen), f"partitions {sorted(member.assigned & seen)} owned twice"
            seen |= member.assigned

    # ---- membership --------------------------------------------------------------------------------

    def heartbeat(
        self,
        *,
        member_id: str,
        member_epoch: int,
        new_member_id: str,
        partition_counts: Mapping[str, int],
        now_ms: int,
        owned: Iterable[TopicPartition] | None = None,
        instance_id: str = "",
        subscribed_topic_names: Iterable[str] | None = None,
        subscribed_topic_regex: str | None = None,
        assignor: str = "",
        rebalance_timeout_ms: int = 300000,
        session_timeout_ms: int = 45000,
        client_id: str = "",
        client_host: str = "",
        rack_id: str = "",
    ) -> HeartbeatResult:
        """Join (epoch 0), heartbeat (epoch > 0) or leave (epoch -1 / -2).

        Args:
            member_id: the member's id; empty on a first join.
            member_epoch: see the module docstring.
            new_member_id: the id to give a joining member (chosen by the caller: no randomness here).
            partition_counts: topic -> partition count of every existing topic.
            now_ms: the coordinator's clock.
            owned: the partitions the member owns now; None: not reported.
            subscribed_topic_names, subscribed_topic_regex: the subscription; None: unchanged.

        Raises:
            UnknownMemberError, FencedMemberEpochError, InvalidGroupRequestError.
        """
        _check_options(assignor, subscribed_topic_regex)
        if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(member_id, member_epoch, partition_counts, now_ms)
        is_changed = False
        if member_epoch == JOIN_EPOCH:
            member, is_changed = self._join(member_id, new_member_id, instance_id, now_ms)
        elif member_epoch > 0:
            member = self._known_member(member_id, member_epoch, owned)
        else:
            raise InvalidGroupRequestError(f"member epoch {member_epoch} is not valid")
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        changed_subscription = self._update_subscription(member, subscribed_topic_names, subscribed_topic_regex, assignor)
        member.instance_id = instance_id or member.instance_id
        member.client_id = client_id or member.client_id
        member.client_host = client_host or member.client_host
        member.rack_id = rack_id or member.rack_id
        member.rebalance_timeout_ms = rebalance_timeout_ms or member.rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms or member.session_timeout_ms
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if changed_subscription or is_changed or self._topics_changed(partition_counts):
            self._bump_and_assign(partition_counts)
            is_changed = True
        return self._reconcile(member, owned, is_changed or member_epoch == JOIN_EPOCH, now_ms)

    def _known_member(self, member_id: str, member_epoch: int, owned: Iterable[TopicPartition] | None) -> Member:
        """The member of a heartbeat with epoch > 0, its epoch checked (see the module docstring).

        Raises:
            UnknownMemberError, FencedMemberEpochError.
        """
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r}; rejoin")
        if member_epoch not in (member.member_epoch, member.previous_member_epoch):
            raise FencedMemberEpochError(
                f"member {member_id!r} of group {self.group_id!r} sent epoch {member_epoch}, "
                f"the coordinator has {member.member_epoch}; rejoin"
            )
        if member_epoch != member.member_epoch:
            member.last_sent = None  # it missed our last answer: send the assignment again
        if member_epoch == member.previous_member_epoch and owned is not None:
            # Its last response was lost: it may only own what it had before that response.
            if not set(owned) <= member.assigned:
                raise FencedMemberEpochError(
                    f"member {member_id!r} sent the previous epoch {member_epoch} with partitions it "
                    "was never given; rejoin"
                )
        return member

    def _update_subscription(
        self,
        member: Member,
        subscribed_topic_names: Iterable[str] | None,
        subscribed_topic_regex: str | None,
        assignor: str,
    ) -> bool:
        """Take the heartbeat's subscription (None: unchanged) and assignor; whether either changed."""
        changed_subscription = False
        if subscribed_topic_names is not None:
            names = tuple(sorted(set(subscribed_topic_names)))
            if names != member.subscribed_topic_names:
                member.subscribed_topic_names = names
                changed_subscription = True
        if subscribed_topic_regex is not None and subscribed_topic_regex != member.subscribed_topic_regex:
            member.subscribed_topic_regex = subscribed_topic_regex
            changed_subscription = True
        if assignor and assignor != self.assignor and len(self.members) == 1:
            self.assignor = assignor
            changed_subscription = True
        return changed_subscription

    def _join(self, member_id: str, new_member_id: str, instance_id: str, now_ms: int) -> tuple[Member, bool]:
        if member_id and member_id in self.members:
            # A rejoin of a known member (it was fenced and starts over): it keeps nothing it did
            # not report; its assignment is reconciled from scratch against what it owns.
            member = self.members[member_id]
            member.last_sent = None  # it starts over: send its assignment again
            return member, True
        member = Member(member_id=member_id or new_member_id)
        if instance_id:
            for old in list(self.members.values()):
                if old.instance_id == instance_id:
                    # Static member restart: the new member takes the old one's place.
                    del self.members[old.member_id]
                    member.assigned = old.assigned
                    member.subscribed_topic_names = old.subscribed_topic_names
                    member.subscribed_topic_regex = old.subscribed_topic_regex
                    member.session_timeout_ms = old.session_timeout_ms
                    self.target[member.member_id] = self.target.pop(old.member_id, frozenset())
        self.members[member.member_id] = member
        return member, True

    def _leave(self, member_id: str, member_epoch: int, partition_counts, now_ms: int) -> HeartbeatResult:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r}")
        if member_epoch == STATIC_LEAVE_EPOCH and member.instance_id:
            member.has_left_static = True
            member.session_deadline_ms = now_ms + member.session_timeout_ms
            return HeartbeatResult(member_id, STATIC_LEAVE_EPOCH, None, True)
        self.remove_member(member_id, partition_counts)
        return HeartbeatResult(member_id, LEAVE_EPOCH, None, True)

    def remove_member(self, member_id: str, partition_counts: Mapping[str, int]) -> None:
        """Remove a member; its partitions become free at once (it left or its session ended)."""
        del self.members[member_id]
        self.target.pop(member_id, None)
        self._bump_and_assign(partition_counts)

    def expire(self, now_ms: int, partition_counts: Mapping[str, int]) -> list[str]:
        """Remove members whose session ended, or that did not revoke partitions within their
        rebalance timeout. Returns their ids (sorted)."""
        expired = sorted(m.member_id for m in self.members.values() if self._is_expired(m, now_ms))
        for member_id in expired:
            self.remove_member(member_id, partition_counts)
        return expired

    @staticmethod
    def _is_expired(member: Member, now_ms: int) -> bool:
        if member.session_deadline_ms <= now_ms:
            return True
        return member.revocation_deadline_ms is not None and member.revocation_deadline_ms <= now_ms

    def next_deadline_ms(self) -> int | None:
        """The earliest session or revocation deadline of a member (None without members)."""
        deadlines = [m.session_deadline_ms for m in self.members.values()]
        deadlines += [m.revocation_deadline_ms for m in self.members.values() if m.revocation_deadline_ms is not None]
        return min(deadlines) if deadlines else None

    def on_topics_changed(self, partition_counts: Mapping[str, int]) -> bool:
        """Recompute the target when subscribed topics appeared, vanished or grew. True if it did."""
        if self.members and self._topics_changed(partition_counts):
            self._bump_and_assign(partition_counts)
            return True
        return False

    def _subscribed_counts(self, partition_counts: Mapping[str, int]) -> dict[str, int]:
        wanted: set[str] = set()
        for member in self.members.values():
            wanted |= member.subscribed(partition_counts)
        return {topic: partition_counts[topic] for topic in wanted if topic in partition_counts}

    def _topics_changed(self, partition_counts: Mapping[str, int]) -> bool:
        return self._subscribed_counts(partition_counts) != self._topics_seen

    def _bump_and_assign(self, partition_counts: Mapping[str, int]) -> None:
        self.group_epoch += 1
        self._topics_seen = self._subscribed_counts(partition_counts)
        subscriptions = {
            member_id: member.subscribed(partition_counts) for member_id, member in self.members.items()
        }
        self.target = group_assignors.assign(self.assignor, subscriptions, partition_counts, self.target)
        self.assignment_epoch = self.group_epoch

    def _reconcile(
        self, member: Member, owned: Iterable[TopicPartition] | None, is_changed: bool, now_ms: int
    ) -> HeartbeatResult:
        target = self.target.get(member.member_id, frozenset())
        assigned = member.assigned
        if owned is not None:
            owned_set = frozenset(owned)
            # 1. Release what it was asked to revoke and no longer owns.
            assigned = (assigned & target) | (assigned & owned_set)
        held_by_others: set[TopicPartition] = set()
        for other in self.members.values():
            if other is not member:
                held_by_others |= other.assigned
        # 2. Add target partitions nobody else holds.
        assigned = assigned | frozenset(tp for tp in target if tp not in held_by_others)
        desired = assigned & target
        if assigned - target:
            if member.revocation_deadline_ms is None:
                member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
        else:
            member.revocation_deadline_ms = None
        if assigned != member.assigned:
            is_changed = True
            member.assigned = assigned
        assignment = None
        if desired != member.last_sent:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = max(self.group_epoch, member.member_epoch + 1)
            member.last_sent = desired
            assignment = desired
            is_changed = True
        self.check_invariants()
        return HeartbeatResult(member.member_id, member.member_epoch, assignment, is_changed)

    # ---- offsets ---------------------------------------------------------------------------------

    def validate_commit(self, member_id: str, member_epoch: int, partitions: Iterable[TopicPartition]) -> dict:
        """Check an offset commit. Returns {partition: GroupError} for refused partitions.

        Raises:
            UnknownMemberError, FencedMemberEpochError, NonEmptyGroupError: the whole commit is refused.
        """
        if not member_id:
            # An admin commit (reset offsets): only for a group without members.
            if self.members:
                raise NonEmptyGroupError(
                    f"group {self.group_id!r} has {len(self.members)} active member(s); stop its consumers "
                    "before resetting its offsets"
                )
            return {}
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"member {member_id!r} is not in group {self.group_id!r}")
        if member_epoch > member.member_epoch:
            raise FencedMemberEpochError(
                f"commit with member epoch {member_epoch} from {member_id!r}; the coordinator has {member.member_epoch}"
            )
        refused = {}
        for tp in partitions:
            if tp not in member.assigned:
                refused[tp] = StaleMemberEpochError(
                    f"{tp[0]}-{tp[1]} is not assigned to member {member_id!r} of group {self.group_id!r}"
                )
        return refused

    def commit(self, tp: TopicPartition, value: OffsetAndMetadata) -> None:
        self.offsets[tp] = value

    # ---- persistence -----------------------------------------------------------------------------

    def to_record(self) -> dict:
        """The group's membership as a JSON-able dict (offsets are separate records)."""
        return {
            "assignor": self.assignor,
            "group_epoch": self.group_epoch,
            "assignment_epoch": self.assignment_epoch,
            "members": [
                {
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "member_epoch": m.member_epoch,
                    "previous_member_epoch": m.previous_member_epoch,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "rack_id": m.rack_id,
                    "topics": list(m.subscribed_topic_names),
                    "regex": m.subscribed_topic_regex,
                    "rebalance_timeout_ms": m.rebalance_timeout_ms,
                    "session_timeout_ms": m.session_timeout_ms,
                    "assigned": sorted(m.assigned),
                    "last_sent": None if m.last_sent is None else sorted(m.last_sent),
                    "target": sorted(self.target.get(m.member_id, ())),
                    "left_static": m.has_left_static,
                }
                for m in sorted(self.members.values(), key=lambda m: m.member_id)
            ],
        }

    def load_record(self, record: dict, now_ms: int) -> None:
        """Replace membership with a persisted one; sessions restart at `now_ms` (as Kafka does on
        coordinator failover: members get a full session to find the new coordinator)."""
        self.assignor = record["assignor"]
        self.group_epoch = record["group_epoch"]
        self.assignment_epoch = record["assignment_epoch"]
        self.members = {}
        self.target = {}
        for item in record["members"]:
            member = Member(
                member_id=item["member_id"],
                instance_id=item["instance_id"],
                member_epoch=item["member_epoch"],
                previous_member_epoch=item["previous_member_epoch"],
                client_id=item["client_id"],
                client_host=item["client_host"],
                rack_id=item["rack_id"],
                subscribed_topic_names=tuple(item["topics"]),
                subscribed_topic_regex=item["regex"],
                rebalance_timeout_ms=item["rebalance_timeout_ms"],
                session_timeout_ms=item["session_timeout_ms"],
                assigned=frozenset((t, p) for t, p in item["assigned"]),
                has_left_static=item["left_static"],
            )
            member.session_deadline_ms = now_ms + member.session_timeout_ms
            if item["last_sent"] is not None:
                member.last_sent = frozenset((t, p) for t, p in item["last_sent"])
            self.members[member.member_id] = member
            self.target[member.member_id] = frozenset((t, p) for t, p in item["target"])
        self._topics_seen = {}
        self.check_invariants()
