"""The replication decisions of a partition, as pure functions and classes that return actions.

Owns, with no I/O, no clock and no network (STYLE.md: like etcd's Ready/Advance; the high
watermark like `CommittedIndex` in etcd's quorum/majority.go):

- `high_watermark`: the committed offset of a partition, min log end offset (LEO) over the
  *maximal* ISR (the committed ISR plus members an in-flight AlterPartition adds, KIP-497),
  never decreasing, and frozen while any member's LEO is unknown (a new leader knows no
  follower's LEO until each reports, as Kafka);
- `LeaderState`: what a partition leader knows of its followers (LEO, when each last caught up),
  its ISR (committed and pending), and the ISR maintenance decision (`alter_isr`): shrink
  followers not caught up for `replica.lag.time.max.ms`, expand followers whose LEO reached the
  high watermark and the start of this leader epoch; at most one AlterPartition in flight,
  recomputed when sent (`refresh_pending`: a removed follower that caught up meanwhile stays);
  no shrink of every follower at once while the broker has no controller contact, and then
  their lag restarts when contact comes back (`restart_lag_clocks`), since a cut-off leader
  cannot tell its followers' lag from its own isolation (issue 16);
- `PushCursor`: per follower and partition, where the leader's next push starts and how many
  bytes are sent but unacknowledged (the in-flight window);
- `check_follower_position`: the leader's validation of a follower's reset position (topic id,
  leader epoch fencing, divergence by leader epoch as KIP-320/KIP-595, offset range);
- `truncation_offset` and `out_of_range_action`: the follower's answer to diverging_epoch and
  OFFSET_OUT_OF_RANGE (Kafka's AbstractFetcherThread), never truncating by high watermark alone;
- the log start offset (DeleteRecords, KIP-107): `follower_log_start_offset`, where a follower
  moves its own start when a push carries the leader's (Kafka's follower applies
  FetchResponse.logStartOffset), and `LeaderState.low_watermark`, the smallest log start over
  the leader and its live followers (Kafka's lowWatermarkIfLeader), which a DeleteRecords
  request waits to pass its offset.

Time enters as `now_ms` arguments. Imports: standard library and the wire enum of error codes.
Thread-safety: not thread-safe; each instance belongs to one partition on the node's event loop.
Functions are pure.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping

from freshet.v1 import common_pb2

E = common_pb2.ErrorCode

UNKNOWN_OFFSET = -1
UNDEFINED_EPOCH = -1
#: Coarsest spacing of the leader's (log end offset, time) samples used to decide when a follower
#: last caught up: a coarser sample only makes a follower look less caught up (conservative).
CAUGHT_UP_SAMPLE_MS = 10
#: Bound on the samples kept (older ones are dropped first; again conservative).
CAUGHT_UP_SAMPLES_MAX = 4096


def high_watermark(
    current: int,
    leader_id: int,
    leader_log_end_offset: int,
    follower_log_end_offsets: Mapping[int, int],
    maximal_isr: Collection[int],
    min_insync_replicas: int = 1,
) -> int:
    """The high watermark: min LEO over the maximal ISR, never below `current`, and frozen while
    the maximal ISR has fewer than `min_insync_replicas` members (KIP-966: what fewer replicas
    hold than min.insync.replicas promises is not committed, so acks=1 writes taken while the ISR
    is short, and acks=all writes that timed out before it shrank, stay invisible until enough
    replicas hold them).

    Args:
        current: the high watermark now.
        leader_id: the leader (its LEO is `leader_log_end_offset`).
        leader_log_end_offset: the leader's LEO.
        follower_log_end_offsets: replica id -> LEO it acknowledged (UNKNOWN_OFFSET: not yet).
        maximal_isr: committed ISR plus pending additions.

        min_insync_replicas: the topic's min.insync.replicas (already capped at the replica count).

    Returns:
        The new high watermark (>= current). A member with an unknown LEO freezes it.
    """
    if len(maximal_isr) < min_insync_replicas:
        return current
    candidate = leader_log_end_offset
    for replica in maximal_isr:
        if replica == leader_id:
            continue
        offset = follower_log_end_offsets.get(replica, UNKNOWN_OFFSET)
        if offset == UNKNOWN_OFFSET:
            return current
        if offset < candidate:
            candidate = offset
    return candidate if candidate > current else current


@dataclasses.dataclass(slots=True)
class FollowerState:
    """The leader's view of one follower. Not thread-safe (one partition's state).

    Attributes:
        log_end_offset: the LEO it last acknowledged (UNKNOWN_OFFSET until it reports in this
            leader epoch).
        last_caught_up_ms: the last time it held everything the leader had then (Kafka's
            lastCaughtUpTimeMs).
        log_start_offset: the log start offset it last reported (UNKNOWN_OFFSET until then).
        durable_offset: the offset below which it reported everything fsynced (UNKNOWN_OFFSET
            until then; only durable topics report it).
    """

    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_ms: int = 0
    log_start_offset: int = UNKNOWN_OFFSET
    durable_offset: int = UNKNOWN_OFFSET


@dataclasses.dataclass(frozen=True, slots=True)
class AlterIsr:
    """An action: ask the controller for `new_isr` (AlterPartition), compare-and-set on
    `partition_epoch`, fenced by `leader_epoch`. Thread-safe (immutable)."""

    new_isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int
    removed: tuple[int, ...]
    added: tuple[int, ...]


class LeaderState:
    """A partition leader's replication state (see the module docstring). Not thread-safe.

    Invariants: the leader is in `isr`; `high_watermark` never decreases and never exceeds
    `log_end_offset`; every follower state belongs to a replica other than the leader.

    Durable mode (`is_durable`, the topic's write.caching=false): the high watermark is the same
    function of *durable* offsets (what each replica reported fsynced, the leader's own from its
    flusher) instead of log end offsets, so an acks=all write is answered only once every member of
    the maximal ISR has it on stable storage. Every ISR member, not a majority: the controller may
    elect any ISR member after a crash of all of them (there is no Raft-style vote comparing logs),
    so each must hold every acknowledged record after an OS crash.
    """

    def __init__(
        self,
        leader_id: int,
        leader_epoch: int,
        partition_epoch: int,
        replicas: Iterable[int],
        isr: Iterable[int],
        epoch_start_offset: int,
        high_watermark: int,
        log_end_offset: int,
        now_ms: int,
        min_insync_replicas: int = 1,
        is_durable: bool = False,
        durable_offset: int = UNKNOWN_OFFSET,
    ) -> None:
        """A new leader. `high_watermark` is the replica's own (checkpointed or last known one),
        clamped to `log_end_offset`; followers in the ISR count as caught up now (Kafka), the
        others as never."""
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.epoch_start_offset = epoch_start_offset
        self.log_end_offset = log_end_offset
        self.high_watermark = min(high_watermark, log_end_offset)
        self.pending: AlterIsr | None = None
        self._min_insync_config = min_insync_replicas
        self.is_durable = is_durable
        #: The leader's own durable offset (its flusher's last answer).
        self.durable_offset = min(durable_offset, log_end_offset)
        # Set when the controller refused our view (stale partition epoch, fenced): no new
        # AlterPartition until metadata brings a newer partition epoch.
        self.awaiting_metadata = False
        self.followers: dict[int, FollowerState] = {}
        for replica in self.replicas:
            if replica != leader_id:
                self.followers[replica] = FollowerState(UNKNOWN_OFFSET, now_ms if replica in self.isr else 0)
        # (leader LEO, time) samples, both increasing: the follower that acknowledges >= the LEO of
        # a sample held everything the leader had at that time.
        self._samples: deque[tuple[int, int]] = deque()
        self._samples.append((log_end_offset, now_ms))
        self._check()

    def _check(self) -> None:
        assert self.leader_id in self.isr, (self.leader_id, self.isr)
        assert 0 <= self.high_watermark <= self.log_end_offset, (self.high_watermark, self.log_end_offset)

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The committed ISR plus the members a pending AlterPartition adds (KIP-497)."""
        if self.pending is None:
            return self.isr
        return self.isr + tuple(r for r in self.pending.added if r not in self.isr)

    def _advance(self) -> bool:
        if self.is_durable:
            leader_offset = self.durable_offset
            follower_offsets = {replica: state.durable_offset for replica, state in self.followers.items()}
        else:
            leader_offset = self.log_end_offset
            follower_offsets = {replica: state.log_end_offset for replica, state in self.followers.items()}
        new = high_watermark(
            self.high_watermark,
            self.leader_id,
            leader_offset,
            follower_offsets,
            self.maximal_isr,
            self.min_insync_replicas,
        )
        if new != self.high_watermark:
            self.high_watermark = new
            return True
        return False

    @property
    def min_insync_replicas(self) -> int:
        """The topic's min.insync.replicas, capped at the replica count (a topic configured with
        more than it has replicas would otherwise never commit anything)."""
        return max(1, min(self._min_insync_config, len(self.replicas)))

    def set_min_insync_replicas(self, value: int) -> bool:
        """The topic's min.insync.replicas changed. Returns whether the high watermark moved."""
        self._min_insync_config = value
        return self._advance()

    def on_append(self, log_end_offset: int, now_ms: int) -> bool:
        """The leader appended up to `log_end_offset`. Returns whether the high watermark moved
        (only when the leader is the whole maximal ISR)."""
        assert log_end_offset >= self.log_end_offset
        if log_end_offset > self.log_end_offset:
            # A follower at the old log end held everything the leader had until now: with push
            # replication an idle follower sends nothing, so this is when it stops being caught up.
            for state in self.followers.values():
                if state.log_end_offset >= self.log_end_offset:
                    state.last_caught_up_ms = now_ms
        self.log_end_offset = log_end_offset
        samples = self._samples
        if samples and now_ms - samples[-1][1] < CAUGHT_UP_SAMPLE_MS:
            # Keeping the older time with the newer offset only understates followers.
            samples[-1] = (log_end_offset, samples[-1][1])
        else:
            samples.append((log_end_offset, now_ms))
            if len(samples) > CAUGHT_UP_SAMPLES_MAX:
                samples.popleft()
        return self._advance()

    def set_durable(self, is_durable: bool) -> bool:
        """The topic's write.caching changed. Returns whether the high watermark moved."""
        self.is_durable = is_durable
        return self._advance()

    def on_durable(self, durable_offset: int) -> bool:
        """The leader's flusher fsynced its log below `durable_offset`. Returns whether the high
        watermark moved."""
        offset = min(durable_offset, self.log_end_offset)
        if offset <= self.durable_offset:
            return False
        self.durable_offset = offset
        return self._advance()

    def on_follower_position(
        self, replica: int, log_end_offset: int, now_ms: int, durable_offset: int = UNKNOWN_OFFSET
    ) -> bool:
        """A follower acknowledged `log_end_offset` (it holds every offset below it, matching this
        leader's log) and, for a durable topic, `durable_offset` (fsynced below it). Returns
        whether the high watermark moved.

        Raises nothing: the caller checked that `replica` is a follower and the offset <= LEO."""
        state = self.followers[replica]
        assert 0 <= log_end_offset <= self.log_end_offset, (log_end_offset, self.log_end_offset)
        state.log_end_offset = log_end_offset
        state.durable_offset = min(durable_offset, log_end_offset)
        if log_end_offset >= self.log_end_offset:
            state.last_caught_up_ms = now_ms
        else:
            caught_up_at = None
            for sample_offset, sample_ms in reversed(self._samples):
                if sample_offset <= log_end_offset:
                    caught_up_at = sample_ms
                    break
            if caught_up_at is not None and caught_up_at > state.last_caught_up_ms:
                state.last_caught_up_ms = caught_up_at
        self._prune_samples()
        return self._advance()

    def on_follower_log_start_offset(self, replica: int, log_start_offset: int) -> bool:
        """A follower reported its log start offset. Returns whether it changed."""
        state = self.followers.get(replica)
        if state is None or state.log_start_offset == log_start_offset:
            return False
        state.log_start_offset = log_start_offset
        return True

    def low_watermark(self, leader_log_start_offset: int, is_alive: Callable[[int], bool]) -> int:
        """Kafka's lowWatermarkIfLeader: the smallest log start offset over the leader and its
        live followers (`is_alive`: registered and unfenced). A live follower that has not
        reported yet counts as UNKNOWN_OFFSET (-1), as in Kafka, so a DeleteRecords waits for it."""
        low = leader_log_start_offset
        for replica, state in self.followers.items():
            if is_alive(replica) and state.log_start_offset < low:
                low = state.log_start_offset
        return low

    def _prune_samples(self) -> None:
        """Drop samples every follower that reported has passed, keeping the newest such one."""
        slowest = min(
            (state.log_end_offset for state in self.followers.values() if state.log_end_offset != UNKNOWN_OFFSET),
            default=UNKNOWN_OFFSET,
        )
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= slowest:
            samples.popleft()

    def is_caught_up(self, replica: int, now_ms: int, lag_max_ms: int) -> bool:
        """Kafka's in-sync test: at the leader's LEO, or caught up within `lag_max_ms`."""
        state = self.followers[replica]
        return state.log_end_offset >= self.log_end_offset or now_ms - state.last_caught_up_ms <= lag_max_ms

    def follower_lag(self, replica: int) -> int:
        """Offsets the follower is behind the leader's LEO (the whole log when unknown)."""
        state = self.followers[replica]
        known = max(state.log_end_offset, 0)
        return self.log_end_offset - known

    def alter_isr(
        self, now_ms: int, lag_max_ms: int, is_eligible: Callable[[int], bool], may_shrink: bool = True
    ) -> AlterIsr | None:
        """The ISR maintenance decision (pure): an AlterIsr to send, recorded as pending, or None.

        Shrink: ISR followers not caught up for more than `lag_max_ms`, but not when every one of
        them lags while the broker has no controller contact (`may_shrink` false): such a leader
        is probably cut off itself, cannot tell its followers' lag from its own isolation, and a
        shrink it queued was committed the moment the cut healed. Expand: followers outside
        the ISR, eligible (registered, unfenced, not shutting down: KIP-841), whose LEO reached the
        high watermark and the start offset of this leader epoch (Kafka's isFollowerInSync).
        Nothing while an AlterPartition is in flight or after a refusal until metadata moves.
        """
        if self.pending is not None or self.awaiting_metadata:
            return None
        removed = self._shrinkable(now_ms, lag_max_ms, may_shrink)
        added = tuple(
            replica
            for replica in self.replicas
            if replica != self.leader_id
            and replica not in self.isr
            and self.followers[replica].log_end_offset >= max(self.high_watermark, self.epoch_start_offset)
            and self.followers[replica].log_end_offset != UNKNOWN_OFFSET
            and is_eligible(replica)
        )
        if not removed and not added:
            return None
        new_isr = tuple(replica for replica in self.isr if replica not in removed) + added
        action = AlterIsr(new_isr, self.leader_epoch, self.partition_epoch, removed, added)
        self.pending = action
        return action

    def _lagging(self, now_ms: int, lag_max_ms: int) -> tuple[int, ...]:
        """ISR followers not caught up within `lag_max_ms` (the ones a shrink removes)."""
        return tuple(
            replica
            for replica in self.isr
            if replica != self.leader_id and not self.is_caught_up(replica, now_ms, lag_max_ms)
        )

    def _shrinkable(self, now_ms: int, lag_max_ms: int, may_shrink: bool) -> tuple[int, ...]:
        """The lagging ISR followers a shrink may remove (see `alter_isr`)."""
        lagging = self._lagging(now_ms, lag_max_ms)
        if not may_shrink and len(lagging) == len(self.isr) - 1:
            return ()                                      # nobody heard: maybe this leader is cut off
        return lagging

    def refresh_pending(self, now_ms: int, lag_max_ms: int, may_shrink: bool = True) -> AlterIsr | None:
        """Recompute the pending change just before it is (re)sent: a follower it removes that has
        caught up since (or that `alter_isr` would not remove now) is kept instead. Returns the
        action to send (the pending one, or its replacement), None when nothing is left to change
        (then nothing is pending)."""
        action = self.pending
        if action is None or not action.removed:
            return action
        lagging = set(self._shrinkable(now_ms, lag_max_ms, may_shrink))
        removed = tuple(replica for replica in action.removed if replica in lagging)
        if removed == action.removed:
            return action
        if not removed and not action.added:
            self.pending = None
            return None
        new_isr = tuple(replica for replica in self.isr if replica not in removed)
        new_isr += tuple(replica for replica in action.added if replica not in new_isr)
        self.pending = AlterIsr(new_isr, action.leader_epoch, action.partition_epoch, removed, action.added)
        return self.pending

    def restart_lag_clocks(self, now_ms: int, lag_max_ms: int) -> None:
        """This broker regained contact with a controller: if every ISR follower lags (nobody was
        heard: this leader was probably cut off), each counts as caught up now (as for a new
        leader), so that its lag is measured while the leader can be heard. A leader that heard
        some follower was not cut off: its lagging followers keep their lag."""
        if len(self.isr) < 2 or len(self._lagging(now_ms, lag_max_ms)) < len(self.isr) - 1:
            return
        for replica, state in self.followers.items():
            if replica in self.isr:
                state.last_caught_up_ms = max(state.last_caught_up_ms, now_ms)

    def on_alter_isr_result(
        self,
        action: AlterIsr,
        now_ms: int,
        error_code: int,
        partition_epoch: int = -1,
        isr: Collection[int] = (),
        leader_epoch: int = -1,
    ) -> bool:
        """The controller answered `action`. Returns whether the high watermark moved.

        NONE: adopt the new ISR and partition epoch (unless metadata already brought a newer one).
        Any error: drop the pending change; stale-view errors (INVALID_UPDATE_VERSION,
        FENCED_LEADER_EPOCH, NOT_LEADER, UNKNOWN_LEADER_EPOCH) wait for newer metadata first.
        """
        if self.pending is not action:
            return False
        self.pending = None
        if error_code == E.NONE:
            if leader_epoch == self.leader_epoch and partition_epoch > self.partition_epoch:
                self.partition_epoch = partition_epoch
                self._set_isr(tuple(isr), now_ms)
        elif error_code in (E.INVALID_UPDATE_VERSION, E.FENCED_LEADER_EPOCH, E.NOT_LEADER, E.UNKNOWN_LEADER_EPOCH):
            self.awaiting_metadata = True
        return self._advance()

    def on_alter_isr_lost(self, action: AlterIsr) -> None:
        """The AlterPartition call failed without an answer: the change may or may not have been
        applied; drop the pending change (metadata will tell) and allow a retry."""
        if self.pending is action:
            self.pending = None

    def update_partition(
        self, replicas: Iterable[int], isr: Iterable[int], partition_epoch: int, now_ms: int
    ) -> bool:
        """Metadata brought a newer state of this partition under the same leader epoch (an ISR
        change, a reassignment step, the controller removing a fenced broker). Returns whether the
        high watermark moved."""
        if partition_epoch <= self.partition_epoch:
            return False
        self.partition_epoch = partition_epoch
        self.replicas = tuple(replicas)
        self.awaiting_metadata = False
        if self.pending is not None and self.pending.partition_epoch < partition_epoch:
            self.pending = None
        for replica in list(self.followers):
            if replica not in self.replicas:
                del self.followers[replica]
        for replica in self.replicas:
            if replica != self.leader_id and replica not in self.followers:
                self.followers[replica] = FollowerState(UNKNOWN_OFFSET, 0)
        self._set_isr(tuple(isr), now_ms)
        return self._advance()

    def _set_isr(self, isr: tuple[int, ...], now_ms: int) -> None:
        """Adopt a committed ISR. A follower that joins counts as caught up now: it was in sync
        when the leader asked for it, and an old last-caught-up time must not shrink it at once."""
        for replica in isr:
            if replica not in self.isr and replica in self.followers:
                state = self.followers[replica]
                state.last_caught_up_ms = max(state.last_caught_up_ms, now_ms)
        self.isr = isr
        self._check()


@dataclasses.dataclass(frozen=True, slots=True)
class PositionCheck:
    """The leader's answer to a follower's reset position. Thread-safe (immutable).

    Attributes:
        error_code: NONE, or the error to answer (then push nothing until the next reset).
        message: what is wrong, for the ErrorDetail.
        diverging_epoch, diverging_end_offset: set (>= 0) when the follower must truncate first.
    """

    error_code: int
    message: str = ""
    diverging_epoch: int = UNDEFINED_EPOCH
    diverging_end_offset: int = UNKNOWN_OFFSET

    @property
    def is_diverging(self) -> bool:
        return self.diverging_end_offset != UNKNOWN_OFFSET


POSITION_OK = PositionCheck(E.NONE)


def check_follower_position(
    *,
    leader_epoch: int,
    topic_id: bytes,
    is_replica: bool,
    log_start_offset: int,
    log_end_offset: int,
    end_offset_for_epoch: Callable[[int], tuple[int, int]],
    position_topic_id: bytes,
    position_leader_epoch: int,
    fetch_offset: int,
    last_fetched_epoch: int,
) -> PositionCheck:
    """Validate a follower's reset position against the leader's log (pure).

    Order: topic id (UNKNOWN_TOPIC_ID: deleted and re-created), leader epoch (older:
    FENCED_LEADER_EPOCH, the follower must learn newer metadata; newer: UNKNOWN_LEADER_EPOCH, this
    leader is behind), replica set (UNKNOWN_LEADER_EPOCH: this leader's metadata does not list it
    yet), divergence (KIP-595: the leader's end offset for `last_fetched_epoch` is below
    `fetch_offset`, or the leader knows only an older epoch: truncate to it), then the range
    [log start, log end] (OFFSET_OUT_OF_RANGE). A last epoch the leader cannot place at all is
    OFFSET_OUT_OF_RANGE too (Kafka), which the follower resolves against the leader's range.
    """
    if position_topic_id and position_topic_id != topic_id:
        return PositionCheck(E.UNKNOWN_TOPIC_ID, f"topic id {position_topic_id.hex()} is not {topic_id.hex()}")
    if position_leader_epoch < leader_epoch:
        return PositionCheck(E.FENCED_LEADER_EPOCH, f"leader epoch {position_leader_epoch} is older than {leader_epoch}")
    if position_leader_epoch > leader_epoch:
        return PositionCheck(E.UNKNOWN_LEADER_EPOCH, f"leader epoch {position_leader_epoch} is newer than {leader_epoch}")
    if not is_replica:
        return PositionCheck(E.UNKNOWN_LEADER_EPOCH, "the follower is not a replica in this leader's metadata (yet)")
    if last_fetched_epoch >= 0 and fetch_offset > log_start_offset:
        epoch, end_offset = end_offset_for_epoch(last_fetched_epoch)
        if epoch == UNDEFINED_EPOCH or end_offset == UNKNOWN_OFFSET:
            return PositionCheck(
                E.OFFSET_OUT_OF_RANGE, f"cannot place the follower's last fetched epoch {last_fetched_epoch} in the leader's log"
            )
        if end_offset < fetch_offset or epoch < last_fetched_epoch:
            return PositionCheck(E.NONE, diverging_epoch=epoch, diverging_end_offset=end_offset)
    if fetch_offset < log_start_offset or fetch_offset > log_end_offset:
        return PositionCheck(
            E.OFFSET_OUT_OF_RANGE, f"fetch offset {fetch_offset} is outside [{log_start_offset}, {log_end_offset}]"
        )
    return POSITION_OK


def truncation_offset(
    diverging_epoch: int, diverging_end_offset: int, own_end_offset_for_epoch: tuple[int, int], log_end_offset: int
) -> int:
    """Where a follower truncates on diverging_epoch (Kafka's getOffsetTruncationState, pure).

    Args:
        diverging_epoch, diverging_end_offset: the leader's answer (the largest epoch it has at or
            below the follower's last fetched epoch, and where that epoch ends in its log).
        own_end_offset_for_epoch: the follower's own end_offset_for_epoch(diverging_epoch).
        log_end_offset: the follower's LEO.

    Returns:
        The offset to truncate to; after truncating, the follower reports a reset position with
        its new last epoch, and the leader checks again (several rounds for several epochs).
    """
    own_epoch, own_end = own_end_offset_for_epoch
    if own_epoch == UNDEFINED_EPOCH or own_end == UNKNOWN_OFFSET:
        return min(diverging_end_offset, log_end_offset)
    if own_epoch == diverging_epoch:
        return min(diverging_end_offset, own_end, log_end_offset)
    return min(own_end, log_end_offset)


TRUNCATE_TO = "truncate_to"
START_AT = "start_at"
RETRY = "retry"


def out_of_range_action(log_end_offset: int, leader_log_start_offset: int, leader_log_end_offset: int) -> tuple[str, int]:
    """A follower's answer to OFFSET_OUT_OF_RANGE (Kafka's handleOutOfRangeError, pure).

    Returns:
        (TRUNCATE_TO, leader LEO) when the follower is ahead of the leader (an unclean election);
        (START_AT, leader log start) when it is behind the leader's log start (retention deleted
        what it needs: empty the log and start there); (RETRY, own LEO) otherwise.
    """
    if log_end_offset > leader_log_end_offset:
        return TRUNCATE_TO, leader_log_end_offset
    if log_end_offset < leader_log_start_offset:
        return START_AT, leader_log_start_offset
    return RETRY, log_end_offset


def follower_log_start_offset(leader_log_start_offset: int, log_start_offset: int, high_watermark: int) -> int | None:
    """Where a follower moves its log start when a push carries the leader's (pure).

    The follower follows the leader's start forward, but only over what it holds and knows to be
    committed: never past its own high watermark (min(leader's high watermark, its log end)), the
    bound `PartitionLog.delete_records_before` enforces. A follower behind the leader's start
    gets OFFSET_OUT_OF_RANGE from the leader instead and starts over there (`out_of_range_action`).

    Returns:
        The new log start offset, or None when it does not move.
    """
    target = min(leader_log_start_offset, high_watermark)
    return target if target > log_start_offset else None


class PushCursor:
    """Where the leader's next push to one follower for one partition starts, and what is in flight.

    Not thread-safe. `awaiting_reset` after an error or diverging answer: nothing is pushed until
    the follower's next reset position.
    """

    __slots__ = (
        "next_offset", "acknowledged", "in_flight", "in_flight_bytes", "awaiting_reset", "sent_high_watermark",
        "sent_log_start_offset", "records_sent_s",
    )

    def __init__(self) -> None:
        self.next_offset = UNKNOWN_OFFSET
        self.acknowledged = UNKNOWN_OFFSET
        self.in_flight: deque[tuple[int, int]] = deque()   # (end offset, bytes) of unacknowledged pushes
        self.in_flight_bytes = 0
        self.awaiting_reset = True
        self.sent_high_watermark = -1
        self.sent_log_start_offset = -1
        #: When records were last pushed (the session's clock, seconds); -inf before any push.
        self.records_sent_s = float("-inf")

    def reset(self, fetch_offset: int) -> None:
        """A validated reset position: push from `fetch_offset`; nothing is in flight any more."""
        self.next_offset = fetch_offset
        self.acknowledged = fetch_offset
        self.in_flight.clear()
        self.in_flight_bytes = 0
        self.awaiting_reset = False
        self.sent_high_watermark = -1
        self.sent_log_start_offset = -1

    def refuse(self) -> None:
        """An error or diverging answer was sent: wait for the follower's next reset."""
        self.awaiting_reset = True
        self.in_flight.clear()
        self.in_flight_bytes = 0

    def acknowledge(self, fetch_offset: int) -> None:
        """An acknowledgement: the follower holds everything below `fetch_offset`."""
        if fetch_offset > self.acknowledged:
            self.acknowledged = fetch_offset
        if fetch_offset > self.next_offset:
            self.next_offset = fetch_offset
        in_flight = self.in_flight
        while in_flight and in_flight[0][0] <= fetch_offset:
            self.in_flight_bytes -= in_flight.popleft()[1]

    def on_sent(self, next_offset: int, size_bytes: int) -> None:
        """A push of `size_bytes` up to `next_offset` went out."""
        assert next_offset > self.next_offset
        self.next_offset = next_offset
        self.in_flight.append((next_offset, size_bytes))
        self.in_flight_bytes += size_bytes

    def wants_data(self, log_end_offset: int, window_bytes: int) -> bool:
        """Whether there is data to push and room in the partition's window."""
        return (
            not self.awaiting_reset
            and self.next_offset < log_end_offset
            and self.in_flight_bytes < window_bytes
        )
