"""BrokerLifecycle finding the active controller after a partition (issue 16).

In-process, fake controller streams: controller 3 (the one this node's Raft view still names, a
stale view after a partition) never answers; controller 1 answers NOT_CONTROLLER pointing at 3 (its
view is as stale); controller 2 is the active controller. The broker must reach 2 within one reply
timeout plus retries, before broker.session.timeout.ms would fence it; following the stale hints
back to 3 cost a reply timeout per round.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import grpc
import pytest
from freshet.server import status
from freshet.server.broker import lifecycle
from freshet.server.broker.lifecycle import BrokerLifecycle
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.config import HostPort
from freshet.v1 import common_pb2, controller_pb2

SILENT, STALE, ACTIVE = 3, 1, 2
REPLY_TIMEOUT_S = 0.2


class FakeCall:
    """One BrokerHeartbeat stream to a fake controller; `goes_silent`: answers once, then nothing."""

    def __init__(self, target: int, goes_silent: set[int]) -> None:
        self.target = target
        self.goes_silent = goes_silent
        self.replies = 0

    async def write(self, request) -> None:
        return None

    async def read(self):
        if self.target in self.goes_silent and self.replies == 0:
            self.replies += 1
            return controller_pb2.BrokerHeartbeatResponse(broker_epoch=7, controller_id=self.target, controller_epoch=4)
        if self.target == SILENT or self.target in self.goes_silent:
            await asyncio.sleep(3600)             # cut off: no answer, no error
        if self.target == STALE:
            detail = status.detail(common_pb2.NOT_CONTROLLER, "not the active controller", controller_id=SILENT)
            trailing = grpc.aio.Metadata(*status.to_rpc_status(grpc.StatusCode.FAILED_PRECONDITION, detail).trailing_metadata)
            raise grpc.aio.AioRpcError(grpc.StatusCode.FAILED_PRECONDITION, grpc.aio.Metadata(), trailing)
        await asyncio.sleep(0.01)
        return controller_pb2.BrokerHeartbeatResponse(broker_epoch=7, controller_id=ACTIVE, controller_epoch=5)

    def cancel(self) -> None:
        return None


class FakeChannels(ControllerChannels):
    """Real candidate order (ControllerChannels.candidates), fake streams; records the targets."""

    def __init__(self) -> None:
        super().__init__({node: HostPort("127.0.0.1", 1) for node in (1, 2, 3)}, self_id=STALE)
        self.targets: list[int] = []
        self.goes_silent: set[int] = set()
        self.reset_ids: list[int] = []

    def reset(self, node_id: int) -> None:
        self.reset_ids.append(node_id)

    def stub(self, node_id: int):
        def open_stream():
            self.targets.append(node_id)
            return FakeCall(node_id, self.goes_silent)

        return SimpleNamespace(BrokerHeartbeat=open_stream)


def make_lifecycle(channels: FakeChannels, hint=lambda: SILENT) -> BrokerLifecycle:
    config = SimpleNamespace(
        node_id=STALE,
        effective_broker_config=lambda image: SimpleNamespace(broker_heartbeat_interval_ms=30),
        advertised=HostPort("127.0.0.1", 1),
        rack="",
        listeners=[],
    )
    publisher = SimpleNamespace(image=SimpleNamespace(offset=0), add_listener=lambda _: None, remove_listener=lambda _: None)
    return BrokerLifecycle(config, publisher, channels, controller_hint=hint, on_fatal=pytest.fail)


async def until_connected(broker: BrokerLifecycle, controller: int, deadline: float) -> None:
    """Poll until the broker heartbeats to `controller` or monotonic time passes `deadline`."""
    while broker.connected_controller != controller and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_a_silent_controller_named_by_stale_hints_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "REPLY_TIMEOUT_S_MIN", REPLY_TIMEOUT_S)

    async def scenario() -> tuple[float, list[int]]:
        channels = FakeChannels()
        broker = make_lifecycle(channels)
        started = time.monotonic()
        await broker.start()
        try:
            deadline = started + 12 * REPLY_TIMEOUT_S
            await until_connected(broker, ACTIVE, deadline)
            return time.monotonic() - started, list(channels.targets)
        finally:
            await broker.close()

    elapsed, targets = asyncio.run(scenario())
    assert ACTIVE in targets, f"never tried the active controller in {elapsed:.2f} s: {targets}"
    # The first session waits out one reply timeout on the silent controller; then the active one
    # is reached without going back to the silent one.
    assert targets[: targets.index(ACTIVE)].count(SILENT) == 1, targets
    assert elapsed < 2 * REPLY_TIMEOUT_S + 0.5, elapsed


def test_a_silent_controller_is_still_tried_when_no_other_is_left_or_once_the_wait_passed() -> None:
    broker = make_lifecycle(FakeChannels())
    now = time.monotonic()
    # Every candidate stopped answering: the preferred one (the hint) is tried anyway.
    assert broker._pick(SILENT, 0, {1: now, 2: now, 3: now}) == SILENT
    # Passed over only for UNANSWERED_AVOID_S; then forgotten.
    unanswered = {SILENT: now - lifecycle.UNANSWERED_AVOID_S - 0.1}
    assert broker._pick(SILENT, 0, unanswered) == SILENT
    assert unanswered == {}
    # Within the wait, a hint naming it is not followed.
    assert broker._pick(SILENT, 0, {SILENT: now}) != SILENT


def test_a_session_follows_this_nodes_raft_view_to_a_new_controller_without_the_reply_timeout() -> None:
    """Controller 3 answers once and goes silent (cut off); this node's Raft view then names 2:
    the broker moves at the next heartbeat, not after the 2 s reply timeout."""

    async def scenario() -> tuple[float | None, list[int]]:
        channels = FakeChannels()
        channels.goes_silent.add(SILENT)
        leader = {"id": SILENT}
        broker = make_lifecycle(channels, hint=lambda: leader["id"])
        await broker.start()
        try:
            deadline = time.monotonic() + 5
            await until_connected(broker, SILENT, deadline)
            assert broker.connected_controller == SILENT
            leader["id"] = ACTIVE                    # an election this node's Raft replica saw
            moved = time.monotonic()
            await until_connected(broker, ACTIVE, moved + 5)
            return (time.monotonic() - moved if broker.connected_controller == ACTIVE else None), list(channels.targets)
        finally:
            await broker.close()

    waited, targets = asyncio.run(scenario())
    assert waited is not None, targets
    assert waited < lifecycle.REPLY_TIMEOUT_S_MIN / 2, (waited, targets)
    assert targets == [SILENT, ACTIVE], targets


def test_a_stream_that_timed_out_retires_its_channel_and_contact_is_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a cut heals, bytes already sent on the old connection wait out TCP's retransmission
    backoff: a session that got no reply must not be retried on that connection (it stalled past
    the session timeout). And `controller_contact` tells ISR maintenance whether a controller
    answered lately, counting each time contact comes back."""
    monkeypatch.setattr(lifecycle, "REPLY_TIMEOUT_S_MIN", REPLY_TIMEOUT_S)
    monkeypatch.setattr(lifecycle, "CONTACT_MAX_AGE_S_MIN", 0.1)

    async def scenario() -> tuple[list[int], list, int]:
        channels = FakeChannels()
        channels.goes_silent.add(SILENT)
        broker = make_lifecycle(channels)
        contact = [broker.controller_contact()]
        await broker.start()
        try:
            deadline = time.monotonic() + 5
            await until_connected(broker, SILENT, deadline)
            contact.append(broker.controller_contact())       # the first reply
            await asyncio.sleep(0.15)                          # silent longer than the contact age
            contact.append(broker.controller_contact())
            await until_connected(broker, ACTIVE, deadline)
            contact.append(broker.controller_contact())
            return list(channels.reset_ids), contact, broker.contacts_gained
        finally:
            await broker.close()

    reset_ids, contact, gained = asyncio.run(scenario())
    assert reset_ids == [SILENT], reset_ids
    assert contact == [None, 1, None, 2], contact
    assert gained == 2


def test_a_session_left_while_its_controller_was_silent_retires_the_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that leaves a cut-off controller for a new one (its Raft view moved) before the
    reply timeout must not come back to it later on the same connection (it holds the bytes sent
    into the cut); leaving a controller that answered until then keeps the connection."""
    monkeypatch.setattr(lifecycle, "STALE_REPLY_S_MIN", 0.1)

    async def scenario() -> list[int]:
        channels = FakeChannels()
        channels.goes_silent.add(SILENT)
        leader = {"id": SILENT}
        broker = make_lifecycle(channels, hint=lambda: leader["id"])
        await broker.start()
        try:
            deadline = time.monotonic() + 5
            await until_connected(broker, SILENT, deadline)
            await asyncio.sleep(0.3)                           # silent for longer than 0.1 s
            leader["id"] = ACTIVE
            await until_connected(broker, ACTIVE, deadline)
            await asyncio.sleep(0.1)                           # ACTIVE answers every heartbeat
            leader["id"] = STALE                               # leave it while it answers
            while channels.targets[-1] != STALE and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return list(channels.reset_ids)
        finally:
            await broker.close()

    assert asyncio.run(scenario()) == [SILENT]
