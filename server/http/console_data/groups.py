"""Every consumer group of the cluster, as the viewer sees it: members, assignment, lag.

Reached the way `freshet group list` / `freshet group describe` reach them (client/admin_groups.py):
ListGroups on every live broker (each coordinates the groups of the __consumer_offsets partitions
it leads), then DescribeGroups on each group's coordinator and ListOffsets (latest = high
watermark) on the partitions' leaders; lag = high watermark - committed offset, lag_seconds is the
coordinator's measurement of the age of the oldest uncommitted record (server/groups/lag.py).

As the viewer (backend.py): the calls carry this node's identity; the viewer sees the groups its
Describe rights cover (ListGroups' own filter: Describe on the cluster shows all, else Describe
on each group), and describing a group it may not Describe raises GROUP_AUTHORIZATION_FAILED,
audited, as DescribeGroups answers. Call `cluster_groups(backend, caller)` for the page.

Bounded time: every call is bounded by backend.request_timeout_s, the brokers are asked and the
groups described in parallel (a pool of DESCRIBE_THREADS), and the whole page by `budget_s`: a
broker or coordinator that did not answer in time is listed in `failures` and the result says
`is_partial`; nothing waits on it longer.

Thread-safety: thread-safe (no state of its own); blocks the calling thread up to `budget_s`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time

import grpc
from freshet.client._transport import translate_rpc_error
from freshet.client.admin_groups import GroupAdmin, GroupDescription
from freshet.client.errors import FreshetError
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType
from freshet.server.errors import AuthorizationError
from freshet.server.http.console_data.backend import (
    ActionRefused,
    ConsoleBackend,
    refused_by_error,
    sdk_call,
    viewer_bound,
)
from freshet.server.security import rules
from freshet.server.security.authorizer import Caller
from freshet.v1 import group_pb2

#: Groups described at the same time (each is one DescribeGroups plus one ListOffsets per leader).
DESCRIBE_THREADS = 8
#: Default bound of a whole `cluster_groups` call.
PAGE_BUDGET_S = 8.0


@dataclasses.dataclass(frozen=True)
class GroupMember:
    """One member: ids, host, and its assignment as (topic, partition) pairs."""

    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    member_epoch: int
    assignment: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class PartitionLag:
    """One partition of a group: committed offset (None: nothing committed), high watermark
    (None: its leader did not answer), lag in records (None when either is unknown), lag in
    seconds (None: not measured), the member owning it (None: unowned), and whether the lag in
    time is above the group's lag.alert.seconds."""

    topic: str
    partition: int
    committed_offset: int | None
    high_watermark: int | None
    lag: int | None
    lag_seconds: float | None
    member_id: str | None
    is_lag_alerting: bool


@dataclasses.dataclass(frozen=True)
class GroupDetail:
    """A described group. `total_lag`: sum of the known per-partition lags (None: none known);
    `max_lag_seconds`: the worst known partition (None: none known)."""

    group: str
    state: str
    generation: int
    assignor: str
    coordinator: str
    lag_alert_seconds: float | None
    members: tuple[GroupMember, ...]
    partitions: tuple[PartitionLag, ...]

    @property
    def total_lag(self) -> int | None:
        known = [p.lag for p in self.partitions if p.lag is not None]
        return sum(known) if known else None

    @property
    def max_lag_seconds(self) -> float | None:
        known = [p.lag_seconds for p in self.partitions if p.lag_seconds is not None]
        return max(known) if known else None


@dataclasses.dataclass(frozen=True)
class Failure:
    """Something that did not answer or refused: a broker address or a group, with the code name
    ("REQUEST_TIMED_OUT", "BROKER_NOT_AVAILABLE", "GROUP_AUTHORIZATION_FAILED", ...) and message."""

    subject: str
    code_name: str
    message: str


@dataclasses.dataclass(frozen=True)
class ClusterGroups:
    """Every group the viewer may see, sorted by id, each described; `failures` lists brokers or
    groups that did not answer in time or refused; `is_partial` is True when any did (the page
    then says the list may be incomplete). `elapsed_s`: the time the call took."""

    groups: tuple[GroupDetail, ...]
    failures: tuple[Failure, ...]
    elapsed_s: float

    @property
    def is_partial(self) -> bool:
        return bool(self.failures)


def _detail(described: GroupDescription) -> GroupDetail:
    members = tuple(
        GroupMember(m.member_id, m.instance_id, m.client_id, m.host, m.member_epoch,
                    tuple((tp.topic, tp.partition) for tp in m.assignment))
        for m in described.members
    )
    partitions = tuple(
        PartitionLag(o.topic, o.partition, o.committed_offset, o.log_end_offset, o.lag, o.lag_seconds, o.member_id,
                     described.is_lag_alerting(o))
        for o in described.offsets
    )
    return GroupDetail(described.group, described.state, described.generation, described.assignor,
                       described.coordinator, described.lag_alert_seconds, members, partitions)


def _admin(backend: ConsoleBackend) -> GroupAdmin:
    return GroupAdmin(transport=backend.transport, request_timeout_ms=int(backend.request_timeout_s * 1000))


def describe_group(backend: ConsoleBackend, caller: Caller, group: str) -> GroupDetail:
    """One group as `freshet group describe` shows it, for the viewer.

    Raises:
        ActionRefused: GROUP_AUTHORIZATION_FAILED (no Describe on the group; audited),
            GROUP_ID_NOT_FOUND, COORDINATOR_NOT_AVAILABLE, REQUEST_TIMED_OUT, ...
    """
    with viewer_bound(caller):
        try:
            rules.refuse(rules.denials(backend.authorizer, Operation.DESCRIBE, ResourceType.GROUP, [group]),
                         ResourceType.GROUP)
        except AuthorizationError as error:
            raise refused_by_error(error, backend.node_id) from error
    return _detail(sdk_call(lambda: _admin(backend).describe_group(group), backend.request_timeout_s))


def _broker_addresses(backend: ConsoleBackend) -> list[str]:
    """The gRPC address of every unfenced broker in this node's image."""
    image = backend.image()
    return [f"{b.host}:{b.port}" for _, b in sorted(image.brokers.items()) if not b.is_fenced]


def _list_on(backend: ConsoleBackend, address: str) -> list[str]:
    """The group ids `address` coordinates (raises FreshetError)."""
    try:
        response = backend.transport.group_stub(address).ListGroups(
            group_pb2.ListGroupsRequest(), timeout=backend.request_timeout_s
        )
    except grpc.RpcError as error:
        raise translate_rpc_error(error, address, "ListGroups") from None
    return [group.group_id for group in response.groups]


def visible_groups(backend: ConsoleBackend, caller: Caller, names: list[str]) -> list[str]:
    """The names among `names` the viewer may see: ListGroups' rule (Describe on the cluster
    shows every group, else Describe on each group; not audited, as a listing filter)."""
    authorizer = backend.authorizer
    if not authorizer.enabled or authorizer.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME, caller):
        return names
    return [name for name in names if authorizer.allows(Operation.DESCRIBE, ResourceType.GROUP, name, caller)]


def _failure(subject: str, error: Exception) -> Failure:
    refused = error if isinstance(error, ActionRefused) else refused_by_error(error)
    return Failure(subject, refused.code_name, refused.message)


def cluster_groups(backend: ConsoleBackend, caller: Caller, budget_s: float = PAGE_BUDGET_S) -> ClusterGroups:
    """Every consumer group of the cluster the viewer may see, each described (members,
    assignment, per-partition lag), within `budget_s` seconds (see the module docstring)."""
    started = time.monotonic()
    deadline = started + budget_s
    failures: list[Failure] = []
    names: set[str] = set()
    pool = concurrent.futures.ThreadPoolExecutor(DESCRIBE_THREADS, thread_name_prefix="console-groups")
    try:
        listings = {pool.submit(_list_on, backend, address): address for address in _broker_addresses(backend)}
        for future, _ in settle(listings, deadline, failures):
            names.update(future.result())
        visible = sorted(visible_groups(backend, caller, sorted(names)))
        describes = {pool.submit(describe_group, backend, caller, name): name for name in visible}
        found = [future.result() for future, _ in settle(describes, deadline, failures)]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    found.sort(key=lambda detail: detail.group)
    return ClusterGroups(tuple(found), tuple(sorted(failures, key=lambda f: f.subject)), time.monotonic() - started)


def settle(futures: dict, deadline: float, failures: list[Failure]):
    """The futures that succeeded by `deadline`, with their subject; the others become failures."""
    done, pending = concurrent.futures.wait(list(futures), timeout=max(0.0, deadline - time.monotonic()))
    for future in pending:
        future.cancel()
        failures.append(Failure(futures[future], "REQUEST_TIMED_OUT", "no answer within the page's time budget"))
    settled = []
    for future in done:
        error = future.exception()
        if error is None:
            settled.append((future, futures[future]))
        elif isinstance(error, (FreshetError, ActionRefused)):
            failures.append(_failure(futures[future], error))
        else:
            raise error
    return settled
