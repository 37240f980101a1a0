"""A subscribed consumer's side of its group: subscription, reconciliation, rebalance callbacks.

Owns

- `ConsumerRebalanceListener` (public, re-exported by `freshet.client`) and the adapter that turns
  subscribe()'s on_revoked/on_assigned/on_lost callables into one;
- `GroupReconciler`: subscribe()/unsubscribe(), and applying the coordinator's target assignment in
  the poll thread (KIP-848, membership and heartbeats are `_group.Membership`'s): for partitions
  taken away it commits their positions (with auto commit), stops fetching them, calls
  `on_partitions_revoked` and acknowledges at once; for new partitions it fetches their committed
  offsets (auto_offset_reset when none) and calls `on_partitions_assigned`. A member the
  coordinator fenced drops everything (`on_partitions_lost`) and rejoins. A callback's exception
  is raised from poll() after the reconciliation step is complete.

Imports: `freshet.client` only (grpc through `_group` and the transport). Forbidden: server,
metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: `GroupReconciler` is driven by the poll thread (reconcile, subscribe,
unsubscribe, close); the heartbeat thread only calls `on_group_event`, which takes the
subscription's lock. Rebalance callbacks run in the poll thread without the lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping

from freshet.client._fetcher import Fetcher
from freshet.client._group import CoordinatorClient, Membership
from freshet.client._offsets import OffsetCommitter
from freshet.client._subscription import SubscriptionState
from freshet.client.errors import FreshetError, IllegalStateError
from freshet.client.structs import TopicPartition

logger = logging.getLogger("freshet.client.consumer")


class ConsumerRebalanceListener:
    """Callbacks around a group's reassignment, called from poll() in the polling thread.

    Override what you need (kafka-python's names). Each receives a set of TopicPartition.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions moving to another member; their positions were already committed (auto commit)."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions newly assigned; positions are their committed offsets (or auto_offset_reset)."""

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Partitions lost without a chance to commit (the member was fenced); defaults to revoked."""
        self.on_partitions_revoked(lost)


class CallbackListener(ConsumerRebalanceListener):
    """subscribe()'s on_revoked / on_assigned / on_lost callables as one listener."""

    def __init__(self, on_revoked, on_assigned, on_lost) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._on_lost = on_lost

    def on_partitions_revoked(self, revoked):
        if self._on_revoked is not None:
            self._on_revoked(revoked)

    def on_partitions_assigned(self, assigned):
        if self._on_assigned is not None:
            self._on_assigned(assigned)

    def on_partitions_lost(self, lost):
        if self._on_lost is not None:
            self._on_lost(lost)
        else:
            self.on_partitions_revoked(lost)


def subscription_arguments(topics, pattern) -> tuple[list[str], str]:
    """(topic names, regex) of subscribe()'s arguments.

    Raises:
        ValueError: neither or both of topics and pattern, an empty name, a bad regex.
    """
    if isinstance(topics, re.Pattern):
        topics, pattern = None, topics
    if isinstance(topics, str):
        raise ValueError(f"topics must be a list of names, not the string {topics!r} (use pattern= for a regex)")
    if (topics is None) == (pattern is None):
        raise ValueError("give topic names or a pattern, not both or neither")
    names: list[str] = []
    regex = ""
    if topics is not None:
        names = list(topics)
        if not names or any(not isinstance(name, str) or not name for name in names):
            raise ValueError(f"topic names must be non-empty strings: {names!r}")
    else:
        regex = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        try:
            re.compile(regex)
        except re.error as error:
            raise ValueError(f"pattern {regex!r}: {error}") from None
    return names, regex


class GroupReconciler:
    """Membership of a subscribed consumer and the reconciliation of its assignment (see the
    module docstring). Driven by the poll thread."""

    def __init__(
        self,
        coordinator: CoordinatorClient,
        subscription: SubscriptionState,
        fetcher: Fetcher,
        committer: OffsetCommitter,
        *,
        assign: Callable[[Iterable[TopicPartition], Mapping], None],
        membership_options: dict,
        is_auto_commit: bool,
        api_timeout_s: float,
    ) -> None:
        """
        Args:
            assign: replaces the consumer's assignment, new partitions at the given offsets.
            membership_options: keyword arguments of `Membership` besides the coordinator and
                on_event (client_id, instance_id, timeouts, assignor, retry_backoff_s).
        """
        self._coordinator = coordinator
        self.group_id = coordinator.group_id
        self._subscription = subscription
        self._fetcher = fetcher
        self._committer = committer
        self._assign = assign
        self._membership_options = membership_options
        self._is_auto_commit = is_auto_commit
        self._api_timeout_s = api_timeout_s
        self.membership: Membership | None = None
        self._listener: ConsumerRebalanceListener | None = None
        self.owned: frozenset[TopicPartition] = frozenset()
        """The partitions the group gave this consumer and it has taken on."""

    def subscribe(self, names: list[str], regex: str, listener: ConsumerRebalanceListener | None) -> None:
        with self._subscription.lock:
            self._subscription.check_open()
            if self._subscription.states and self.membership is None:
                raise IllegalStateError("subscribe() after assign(): call assign([]) first")
        self._listener = listener
        if self.membership is None:
            self.membership = Membership(self._coordinator, on_event=self._on_group_event, **self._membership_options)
        self.membership.subscribe(names, regex)

    def subscription(self) -> set[str] | str | None:
        if self.membership is None:
            return None
        return self.membership._regex or set(self.membership._topics)

    def unsubscribe(self) -> None:
        membership = self.membership
        if membership is None:
            return
        self.revoke_all_and_leave(membership)
        self.membership = None

    def member_epoch(self) -> tuple[str, int]:
        """(member id, epoch) to commit with; ("", -1) when not subscribed."""
        return self.membership.epoch() if self.membership is not None else ("", -1)

    def _on_group_event(self) -> None:
        with self._subscription.lock:
            self._subscription.data_ready.notify_all()

    def _release(self, partitions: set[TopicPartition], why: str) -> BaseException | None:
        """Give partitions up: commit their positions (with auto commit), stop fetching them,
        then call on_partitions_revoked; the callback's error, if any."""
        if self._is_auto_commit:
            try:
                self._committer.commit_sync(self._subscription.positions(partitions), self._api_timeout_s)
            except FreshetError as error:
                logger.warning("commit %s of group %s failed: %s", why, self.group_id, error)
        self._subscription.drop(partitions)
        self._fetcher.interrupt(partitions)
        return self._call_listener("on_partitions_revoked", partitions)

    def revoke_all_and_leave(self, membership: Membership) -> None:
        owned = set(self.owned)
        error: BaseException | None = None
        if owned:
            error = self._release(owned, "before leaving")
        self.owned = frozenset()
        membership.leave(min(self._api_timeout_s, 5.0))
        if error is not None:
            raise error

    def _call_listener(self, method: str, partitions: set[TopicPartition]) -> BaseException | None:
        """Call a rebalance callback outside the lock; return (not raise) what it raised."""
        if self._listener is None:
            return None
        try:
            getattr(self._listener, method)(set(partitions))
        except Exception as error:
            logger.exception("%s raised", method)
            return error
        return None

    def reconcile(self, membership: Membership) -> None:
        """Apply the group's latest assignment (see the module docstring). Poll thread, no lock."""
        event = membership.take_event()  # raises a fatal group error (e.g. UNRELEASED_INSTANCE_ID)
        if event is None:
            return
        kind, target = event
        if kind == "lost":
            errors = [self._on_lost(membership)]
        else:
            errors = [self._revoke(membership, target), self._add(membership, target)]
        for error in errors:
            if error is not None:
                raise error

    def _on_lost(self, membership: Membership) -> BaseException | None:
        lost = set(self.owned)
        self._subscription.drop(lost)
        self._fetcher.interrupt(None)
        self.owned = frozenset()
        error = self._call_listener("on_partitions_lost", lost) if lost else None
        membership.lost_handled()
        return error

    def _revoke(self, membership: Membership, target: frozenset[TopicPartition]) -> BaseException | None:
        revoked = set(self.owned - target)
        if not revoked:
            return None
        error = self._release(revoked, "of revoked partitions")
        self.owned = self.owned - revoked
        membership.set_owned(self.owned)
        return error

    def _add(self, membership: Membership, target: frozenset[TopicPartition]) -> BaseException | None:
        added = set(target - self.owned)
        if not added:
            return None
        try:
            # Bounded, so partitions this member keeps are not held up for long: a failure
            # leaves the new partitions for the next poll() to pick up.
            timeout_s = max(min(self._api_timeout_s, 5.0), 1.0)
            committed = self._committer.committed([TopicPartition(*tp) for tp in added], int(timeout_s * 1000) / 1000)
        except FreshetError as error:
            if not error.retriable:
                raise
            logger.info("group %s: committed offsets of %s not available yet: %s", self.group_id, sorted(added), error)
            return None
        self._assign(self.owned | added, committed)
        self.owned = self.owned | added
        membership.set_owned(self.owned)
        return self._call_listener("on_partitions_assigned", added)
