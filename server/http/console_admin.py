"""The web console's actions: the node's own gRPC admin handlers, called in-process as the
logged-in principal.

Owns the bridge from the HTTP thread to the handlers on the node's event loop. The CLI's admin
calls (freshet.client.Admin) reach `ControllerService.CreateTopics` and friends over gRPC, where
`status.handler` binds the caller and the handler asks the authorizer; the console calls the very
same handler objects with an `InProcessCall` context that names the viewer's principal as the
caller. So a console user gets exactly the CLI's answer: the same validation, the same ACL check
(a principal without Alter on the topic gets the CLI's refusal line), the same forwarding to the
active controller, the same audit line. With security off the handler binds no caller and allows
everything, as it does for the CLI.

A refusal or error becomes `ActionError` with one readable line (the handler's ErrorDetail
message, or the call's status details).

Imports: asyncio, uuid, freshet.server.security.authentication (InProcessCall), wire types.
Thread-safety: `ConsoleAdmin` is thread-safe (each call is a coroutine scheduled on the loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Callable, Sequence

from freshet.server.security.authentication import InProcessCall, InProcessCallError
from freshet.server.security.authorizer import Caller
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

#: How long an action may take (a create waits for the metadata quorum to apply it).
ACTION_TIMEOUT_S = 15.0


class ActionError(Exception):
    """An action the node refused or could not do; str() is one readable line."""


def _check(error: common_pb2.ErrorDetail, what: str) -> None:
    if error.code != common_pb2.NONE:
        name = common_pb2.ErrorCode.Name(error.code)
        raise ActionError(f"{what}: {error.message or name} ({name})")


class ConsoleAdmin:
    """Runs the controller's admin handlers for the console. Thread-safe.

    Args:
        controller_service: the node's ControllerService (its handlers are `async def` decorated
            with `status.handler`, which binds the InProcessCall's caller).
        loop: the node's event loop, where the handlers run.
    """

    def __init__(self, controller_service, loop: asyncio.AbstractEventLoop | Callable[[], asyncio.AbstractEventLoop]) -> None:
        self._controller = controller_service
        self._loop = loop

    def _call(self, caller: Caller, method: str, request):
        loop = self._loop() if callable(self._loop) else self._loop
        if loop is None or loop.is_closed():
            raise ActionError("the node is shutting down: try again on another node")
        handler = getattr(self._controller, method)
        future = asyncio.run_coroutine_threadsafe(handler(request, InProcessCall(caller)), loop)
        try:
            return future.result(ACTION_TIMEOUT_S)
        except InProcessCallError as error:
            raise ActionError(error.details or str(error.code)) from error
        except concurrent.futures.TimeoutError as error:
            future.cancel()
            raise ActionError(f"{method} did not finish within {ACTION_TIMEOUT_S:.0f} s: the outcome is unknown") from error

    @staticmethod
    def _request_id() -> str:
        return uuid.uuid4().hex

    def create_topic(self, caller: Caller, name: str, partitions: int | None, replication_factor: int | None,
                     configs: Sequence[tuple[str, str]] = ()) -> controller_pb2.CreateTopicResult:
        topic = controller_pb2.CreatableTopic(
            name=name, configs=[metadata_pb2.ConfigEntry(key=key, value=value) for key, value in configs]
        )
        if partitions is not None:
            topic.num_partitions = partitions
        if replication_factor is not None:
            topic.replication_factor = replication_factor
        request = controller_pb2.CreateTopicsRequest(request_id=self._request_id(), topics=[topic])
        result = self._call(caller, "CreateTopics", request).results[0]
        _check(result.error, f"cannot create topic {name}")
        return result

    def delete_topic(self, caller: Caller, name: str) -> None:
        request = controller_pb2.DeleteTopicsRequest(request_id=self._request_id(), names=[name])
        _check(self._call(caller, "DeleteTopics", request).results[0].error, f"cannot delete topic {name}")

    def add_partitions(self, caller: Caller, name: str, count: int) -> None:
        increase = controller_pb2.PartitionsIncrease(topic=name, count=count)
        request = controller_pb2.CreatePartitionsRequest(request_id=self._request_id(), topics=[increase])
        _check(self._call(caller, "CreatePartitions", request).results[0].error,
               f"cannot grow topic {name} to {count} partitions")

    def alter_topic_config(self, caller: Caller, name: str, key: str, value: str | None) -> None:
        """Set `key` to `value` on the topic, or delete the override when `value` is None."""
        operation = controller_pb2.CONFIG_DELETE if value is None else controller_pb2.CONFIG_SET
        resource = controller_pb2.AlterConfigsResource(
            resource=metadata_pb2.ConfigResource(type=metadata_pb2.CONFIG_RESOURCE_TOPIC, topic_name=name),
            configs=[controller_pb2.AlterableConfig(key=key, value=value or "", operation=operation)],
        )
        request = controller_pb2.IncrementalAlterConfigsRequest(request_id=self._request_id(), resources=[resource])
        _check(self._call(caller, "IncrementalAlterConfigs", request).results[0].error,
               f"cannot change {key} of topic {name}")

    def elect_preferred_leaders(self, caller: Caller, name: str, partitions: Sequence[int]) -> list[str]:
        """Preferred-leader election on the partitions; one line per partition (its outcome)."""
        request = controller_pb2.ElectLeadersRequest(
            request_id=self._request_id(), type=controller_pb2.ELECTION_PREFERRED,
            partitions=[common_pb2.TopicPartition(topic=name, partition=p) for p in partitions],
        )
        lines = []
        for result in self._call(caller, "ElectLeaders", request).results:
            where = f"{result.partition.topic}-{result.partition.partition}"
            if result.error.code == common_pb2.NONE:
                lines.append(f"{where}: leader is now {result.leader}")
            elif result.error.code == common_pb2.ELECTION_NOT_NEEDED:
                lines.append(f"{where}: already led by its preferred replica")
            else:
                lines.append(f"{where}: {result.error.message or common_pb2.ErrorCode.Name(result.error.code)}")
        return lines

    def reassign(self, caller: Caller, name: str, partition: int, replicas: Sequence[int]) -> None:
        """Move the partition to `replicas` (empty: cancel the reassignment in progress)."""
        request = controller_pb2.AlterPartitionReassignmentsRequest(
            request_id=self._request_id(),
            reassignments=[controller_pb2.PartitionReassignment(
                partition=common_pb2.TopicPartition(topic=name, partition=partition), target_replicas=list(replicas),
            )],
        )
        _check(self._call(caller, "AlterPartitionReassignments", request).results[0].error,
               f"cannot reassign {name}-{partition}")
