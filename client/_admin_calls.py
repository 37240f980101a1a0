"""How the Admin client calls nodes: the base class every Admin concern builds on.

Owns `AdminCalls` (a `GroupAdmin`, so it has the transport, the timeout and closing): the
Controller stubs (one per node, over the transport's channel), `_call`, which tries each node of
the bootstrap list in turn within `request_timeout_ms` (at most 3 rounds, 0.2 s x round apart:
`_retry.retry_until_deadline`), skipping unreachable nodes and nodes whose forward found no active
controller (NOT_CONTROLLER), and the request ids that make a retried metadata change idempotent.

Imports: grpc (through the transport), `freshet.v1`, `freshet.client`.
Forbidden: server, metadata, cli, pysyncobj, storage (import-linter contracts).

Thread-safety: thread-safe (stubs are cached without a lock: two threads may each create one for
a node, and either is fine, since both use the transport's one channel).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import grpc
from freshet.client._retry import Deadline, Retry, retry_until_deadline
from freshet.client._transport import (
    Transport,
    error_from_detail,
    translate_rpc_error,
)
from freshet.client.admin_groups import GroupAdmin
from freshet.client.errors import (
    BrokerUnavailableError,
    FreshetError,
    NotControllerError,
    RequestTimedOutError,
    UnknownServerError,
)
from freshet.client.structs import TopicPartition
from freshet.v1 import broker_pb2, common_pb2, controller_pb2_grpc

#: Rounds over the node list before `_call` gives up (time permitting), 0.2 s x round apart.
_CALL_ROUNDS = 3


class AdminCalls(GroupAdmin):
    """Calls to any node of the cluster, retried within the request timeout. Thread-safe."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "freshet-admin",
        request_timeout_ms: int = 30000,
        transport: Transport | None = None,
        **security,
    ) -> None:
        """`security`: the security options (security_protocol, sasl_*), as GroupAdmin takes them."""
        super().__init__(
            bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=request_timeout_ms,
            transport=transport,
            **security,
        )
        self._controller_stubs: dict[str, controller_pb2_grpc.ControllerStub] = {}

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap addresses in use."""
        return list(self._transport.bootstrap_addresses)

    # ---------------------------------------------------------------------------------------------
    # Calling nodes.

    def _controller(self, address: str) -> controller_pb2_grpc.ControllerStub:
        stub = self._controller_stubs.get(address)
        if stub is None:
            # One channel per node: the transport creates, caches and closes it.
            stub = controller_pb2_grpc.ControllerStub(self._transport.channel(address))
            self._controller_stubs[address] = stub
        return stub

    def _call(self, service: str, method: str, request, *, addresses: Sequence[str] | None = None):
        """Call `service.method` on the first node that answers, within the request timeout.

        A node that cannot be reached (UNAVAILABLE), or answers NOT_CONTROLLER (no controller
        answered its forward in time), is skipped for the next; a refusal is raised as the
        FreshetError of its code.

        Raises:
            BrokerUnavailableError: no node in `addresses` (default: the bootstrap list) could be reached.
            RequestTimedOutError: the deadline passed.
            FreshetError: the node refused the request.
        """
        targets = list(addresses) if addresses else list(self._transport.bootstrap_addresses)
        failures: list[str] = []

        def round_over_targets(deadline: Deadline):
            """Try each node once; Retry when every one was unreachable or had no controller."""
            last_error: FreshetError | None = None
            for address in targets:
                remaining = deadline.remaining()
                if remaining <= 0:
                    break
                stub = self._controller(address) if service == "controller" else self._transport.stub(address)
                try:
                    return getattr(stub, method)(request, timeout=remaining)
                except ValueError as closed:  # the channel was closed: close() ran
                    raise BrokerUnavailableError(f"the admin client is closed ({method})") from closed
                except grpc.RpcError as rpc_error:
                    error = translate_rpc_error(rpc_error, address, method)
                    code = rpc_error.code() if hasattr(rpc_error, "code") else None
                    if code == grpc.StatusCode.UNAVAILABLE or isinstance(error, NotControllerError):
                        failures.append(f"{address}: {short_error(rpc_error, error)}")
                        last_error = error
                        continue
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise RequestTimedOutError(
                            f"{method} got no answer from {address} within {self._timeout_s:g} s"
                        ) from None
                    raise error from None
            raise Retry(last_error)

        def give_up(last_error: FreshetError | None) -> FreshetError:
            if isinstance(last_error, NotControllerError):
                return NotControllerError(
                    f"{method}: no active controller answered in time ({'; '.join(failures[-len(targets) :])}); "
                    "the metadata quorum may have lost its majority",
                    controller_id=last_error.controller_id,
                )
            return BrokerUnavailableError(
                f"cannot reach any broker at {','.join(targets)} ({method}: {failures[-1] if failures else 'timed out'})"
            )

        return retry_until_deadline(
            round_over_targets,
            Deadline(self._timeout_s),
            backoff_s=lambda rounds: 0.2 * rounds,
            give_up=give_up,
            max_attempts=_CALL_ROUNDS,
            is_cause_kept=False,
        )

    def _log_dirs(self, address: str, partitions: Sequence[TopicPartition]) -> broker_pb2.DescribeLogDirsResponse | str:
        """One DescribeLogDirs to the broker at `address` (empty `partitions`: every replica it
        hosts); the error text when it cannot answer."""
        request = broker_pb2.DescribeLogDirsRequest(
            partitions=[common_pb2.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in partitions]
        )
        try:
            return self._transport.stub(address).DescribeLogDirs(request, timeout=min(self._timeout_s, 5.0))
        except ValueError as closed:
            raise BrokerUnavailableError("the admin client is closed (DescribeLogDirs)") from closed
        except grpc.RpcError as rpc_error:
            return str(translate_rpc_error(rpc_error, address, "DescribeLogDirs"))

    def _describe_replicas(
        self, broker_id: int, address: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, broker_pb2.ReplicaLogInfo | str]:
        """{partition: broker `broker_id`'s replica info (log end, size, role)} or the error text,
        from one DescribeLogDirs to that broker."""
        response = self._log_dirs(address, partitions)
        if isinstance(response, str):
            return dict.fromkeys(partitions, response)
        answered = {TopicPartition(r.topic, r.partition): r for r in response.replicas}
        out: dict[TopicPartition, broker_pb2.ReplicaLogInfo | str] = {}
        for tp in partitions:
            info = answered.get(tp)
            error = None if info is None else error_from_detail(info.error)
            if info is None:
                out[tp] = f"broker {broker_id} did not describe {tp.topic}-{tp.partition}"
            elif error is not None:
                out[tp] = str(error)
            else:
                out[tp] = info
        return out

    @staticmethod
    def _request_id() -> str:
        return uuid.uuid4().hex




def short_error(rpc_error: grpc.RpcError, error: FreshetError) -> str:
    code = rpc_error.code() if hasattr(rpc_error, "code") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        details = rpc_error.details() if hasattr(rpc_error, "details") else ""
        return "connection refused" if "refused" in (details or "").lower() else f"unavailable ({details})"
    return str(error)


def single_result(results, what: str):
    if len(results) != 1:
        raise UnknownServerError(f"{what}: expected one result, the node answered {len(results)}")
    return results[0]


