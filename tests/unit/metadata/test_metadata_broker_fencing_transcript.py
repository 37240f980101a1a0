"""Broker fencing as a golden transcript (testdata/broker_fencing.txt), replayed through the
active controller's pure core (metadata/controller) and the state machine.

Goal: make the controller's liveness protocol reviewable as text. Heartbeats keep a broker
alive; an expired session fences the broker in one command that moves the leadership of the
partitions it led to an ISR member and shrinks the ISRs (DESIGN.md, "Metadata quorum": broker
liveness; Kafka KIP-631); a fenced broker that heartbeats again and has caught up on metadata is
unfenced; a controlled shutdown moves leadership away before the broker is told to stop; a new
incarnation that is behind on metadata stays fenced until it catches up.
Method: each step drives ControllerCore the way server/active_controller.py does (registration,
then a session; heartbeat, then the action it calls for, then the reply; a tick runs `poll` until
it has nothing to do), applies every proposed command with the state machine, and prints the
commands proposed, the heartbeat reply and the resulting brokers and partitions. Time is a
ManualClock set by each step's `t=` (milliseconds); nothing reads real time.

Rewrite the expected output after a deliberate change with FRESHET_REWRITE_TRANSCRIPTS=1.
"""

from __future__ import annotations

import itertools
import pathlib

from freshet.metadata.clock import ManualClock
from freshet.metadata.controller import ControllerAction, ControllerCore, ControllerSettings, plan_topic
from freshet.metadata.image import MetadataImage
from freshet.v1 import metadata_pb2

from tests.support.metadata_script import EPOCH, E, Script
from tests.support.transcript import run_transcript

TESTDATA = pathlib.Path(__file__).parent / "testdata"
POLLS_PER_TICK_MAX = 20


def _describe_inner(image: MetadataImage, command: metadata_pb2.MetadataCommand) -> str:
    kind = command.WhichOneof("command")
    body = getattr(command, kind)
    if kind == "change_partition":
        topic = image.topic_by_id(bytes(body.topic_id))
        name = topic.name if topic is not None else bytes(body.topic_id).hex()
        fields = []
        if body.HasField("leader"):
            fields.append(f"leader={body.leader}")
        if body.HasField("isr"):
            fields.append(f"isr={list(body.isr.replicas)}")
        if body.is_unclean:
            fields.append("unclean")
        return f"change_partition {name}-{body.partition} " + " ".join(fields)
    if kind in ("fence_broker", "unfence_broker", "begin_controlled_shutdown"):
        return f"{kind} broker={body.node_id} epoch={body.broker_epoch}"
    if kind == "register_broker":
        return f"register_broker broker={body.node_id} incarnation={bytes(body.incarnation_id)[1]}"
    return kind


class FencingWorld:
    """One controller, its brokers and the image they share. Not thread-safe (one test)."""

    def __init__(self) -> None:
        self.script = Script()
        self.script.claim(node_id=1, term=EPOCH)
        self.clock = ManualClock(0)
        counter = itertools.count()
        self.core = ControllerCore(
            ControllerSettings(node_id=1, reconnect_grace_ms=1000),
            EPOCH,
            self.clock,
            new_request_id=lambda: f"ctl-{next(counter)}",
        )
        self.core.activate(self.script.image)

    @property
    def image(self) -> MetadataImage:
        return self.script.image

    def handle(self, verb: str, args: dict[str, str]) -> str:
        if "t" in args:
            self.clock.set(int(args.pop("t")))
        handler = getattr(self, "_" + verb.replace("-", "_"), None)
        assert handler is not None, f"unknown transcript command {verb!r}"
        lines = handler(**args)
        return "\n".join([*lines, *self._state()])

    # -- steps -----------------------------------------------------------------------------------

    def _register(self, broker: str, incarnation: str = "1") -> list[str]:
        node_id = int(broker)
        incarnation_id = bytes([node_id, int(incarnation)]) * 8
        action = self.core.registration(self.image, node_id, incarnation_id, "localhost", 9000 + node_id, "")
        lines = self._propose(action)
        self.core.open_session(self.image, node_id)
        return lines

    def _heartbeat(self, broker: str, offset: str | None = None, shutdown: str | None = None) -> list[str]:
        node_id = int(broker)
        epoch = self.image.brokers[node_id].broker_epoch
        metadata_offset = self.image.offset if offset is None else int(offset)
        self.core.heartbeat(self.image, node_id, epoch, metadata_offset, shutdown is not None)
        lines = self._propose(self.core.broker_action(self.image, node_id))
        reply = self.core.reply(self.image, node_id)
        lines.append(
            f"reply: epoch={reply.broker_epoch} fenced={reply.is_fenced} caught_up={reply.is_caught_up} "
            f"shut_down={reply.should_shut_down}"
        )
        return lines

    def _tick(self) -> list[str]:
        lines: list[str] = []
        for _ in range(POLLS_PER_TICK_MAX):
            action = self.core.poll(self.image)
            if action is None:
                return lines or ["nothing to do"]
            lines += self._propose(action)
        raise AssertionError(f"poll still has work after {POLLS_PER_TICK_MAX} actions")

    def _create_topic(self, name: str, partitions: str, rf: str) -> list[str]:
        defaults = self.core.broker_config(self.image, 1)
        plan = plan_topic(self.image, name, int(partitions), int(rf), [], {}, defaults)
        result = self.script.ok(plan.command(self.script.rid(), EPOCH, (name.encode() + bytes(16))[:16]))
        return [f"created {name} at offset {result.offset}"]

    # -- printing --------------------------------------------------------------------------------

    def _propose(self, action: ControllerAction | None) -> list[str]:
        if action is None:
            return []
        before = self.image
        result = self.script.apply(action.command)
        assert result.error_code == E.NONE, (E.Name(result.error_code), result.error_message)
        lines = [f"proposed {action.kind.name} (offset {result.offset}): {action.description}"]
        command = action.command
        inner = command.atomic_batch.commands if command.WhichOneof("command") == "atomic_batch" else [command]
        lines += [f"  {_describe_inner(before, each)}" for each in inner]
        return lines

    def _state(self) -> list[str]:
        brokers = []
        for node_id, broker in sorted(self.image.brokers.items()):
            state = "fenced" if broker.is_fenced else "unfenced"
            if broker.in_controlled_shutdown:
                state += ",shutting-down"
            brokers.append(f"{node_id}={state}@{broker.broker_epoch}")
        lines = ["brokers: " + (" ".join(brokers) or "none")]
        for topic in self.image.topics():
            for p in topic.partitions:
                lines.append(
                    f"{topic.name}-{p.partition}: leader={p.leader} leader_epoch={p.leader_epoch} "
                    f"isr={list(p.isr)} replicas={list(p.replicas)}"
                )
        return lines


def test_broker_fencing_transcript():
    run_transcript(TESTDATA / "broker_fencing.txt", FencingWorld().handle)
