"""A tiny driver for scripted state-machine tests: apply commands in order, remember the log.

Not a test module (no test_ prefix); imported by the metadata unit tests.
"""

from __future__ import annotations

from freshet.metadata import commands, state_machine
from freshet.metadata.image import EMPTY_IMAGE, MetadataImage
from freshet.v1 import common_pb2, metadata_pb2

E = common_pb2.ErrorCode
EPOCH = 7


class Script:
    """Applies commands with increasing offsets and keeps the encoded log for replay checks.
    Not thread-safe (one test thread)."""

    def __init__(self, image: MetadataImage = EMPTY_IMAGE, offset_step: int = 1) -> None:
        self.image = image
        self.offset = image.offset
        self.offset_step = offset_step
        self.log: list[tuple[int, bytes]] = []
        self._counter = 0

    def rid(self) -> str:
        self._counter += 1
        return f"req-{self._counter}"

    def apply(self, command: metadata_pb2.MetadataCommand) -> metadata_pb2.MetadataResult:
        self.offset += self.offset_step
        data = commands.encode(command)
        self.log.append((self.offset, data))
        before = self.image
        self.image, result = state_machine.apply(self.image, command, self.offset)
        assert self.image.offset == self.offset
        assert before.offset < self.image.offset
        return result

    def ok(self, command: metadata_pb2.MetadataCommand) -> metadata_pb2.MetadataResult:
        result = self.apply(command)
        assert result.error_code == E.NONE, (result.error_code, result.error_message)
        assert result.error_message == ""
        return result

    def fails(self, command: metadata_pb2.MetadataCommand, code: int, fragment: str = "") -> metadata_pb2.MetadataResult:
        before = self.image
        result = self.apply(command)
        assert result.error_code == code, (E.Name(result.error_code), result.error_message)
        assert fragment in result.error_message, result.error_message
        # A rejected command changes nothing but the offset and the dedup table.
        assert self.image.brokers == before.brokers
        assert self.image.topics_by_id == before.topics_by_id
        assert self.image.cluster_configs == before.cluster_configs
        assert self.image.broker_configs == before.broker_configs
        assert self.image.next_producer_id == before.next_producer_id
        assert self.image.users == before.users
        assert self.image.acls == before.acls
        assert (self.image.controller_id, self.image.controller_epoch) == (before.controller_id, before.controller_epoch)
        return result

    # -- common setups -------------------------------------------------------------------------

    def claim(self, node_id: int = 1, term: int = EPOCH) -> None:
        self.ok(commands.claim_controller(self.rid(), node_id, term))

    def broker(self, node_id: int, unfence: bool = True, rack: str = "") -> int:
        """Register (and by default unfence) a broker; returns its epoch."""
        incarnation = bytes([node_id % 256]) * 16
        result = self.ok(
            commands.register_broker(self.rid(), self.image.controller_epoch, node_id, incarnation, "localhost", 9000 + node_id, rack)
        )
        if unfence:
            self.ok(commands.unfence_broker(self.rid(), self.image.controller_epoch, node_id, result.broker_epoch))
        return result.broker_epoch

    def topic(self, name: str, assignments, configs=None, topic_id: bytes | None = None) -> bytes:
        topic_id = topic_id or (name.encode() + bytes(16))[:16]
        self.ok(commands.create_topic(self.rid(), self.image.controller_epoch, topic_id, name, assignments, configs))
        return topic_id

    def cluster(self, brokers: int = 3) -> None:
        self.claim()
        for node_id in range(1, brokers + 1):
            self.broker(node_id)
